//! The geometry and permissions of a new queue or pipe, and their validation: shared by
//! [`Queue`](crate::Queue) and [`Pipe`](crate::Pipe), above the layout and below both.

use crate::error::OpenError;
use crate::layout;
use crate::segment::DEFAULT_MODE;

/// The geometry and permissions of a new queue or pipe.
///
/// # Examples
///
/// ```
/// let opts = shmq::Options { capacity: 16, message_size: 256, ..Default::default() };
/// assert_eq!(opts.mode, 0o600);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// How many messages fit (Python's `maxsize`; for a pipe, in each direction); at least 1.
    pub capacity: usize,
    /// The largest message in bytes; at least 1. Every slot reserves this much.
    pub message_size: usize,
    /// Permission bits of a named segment (default `0o600`).
    pub mode: u32,
}

impl Default for Options {
    /// 128 messages of up to 4 KiB, mode `0o600`.
    fn default() -> Self {
        Options {
            capacity: 128,
            message_size: 4096,
            mode: DEFAULT_MODE,
        }
    }
}

impl Options {
    /// Checks the mode and the ring geometry: [`OpenError::InvalidOptions`] for a zero or
    /// oversized capacity or message size, or a mode with bits beyond `0o777`.
    pub(crate) fn check(&self) -> Result<(), OpenError> {
        crate::segment::check_mode(self.mode)?;
        layout::check_ring_options(self.capacity as u64, self.message_size as u64)
            .map_err(OpenError::InvalidOptions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_refuses_empty_rings_and_bad_modes() {
        assert!(Options::default().check().is_ok());
        let zero = Options {
            capacity: 0,
            ..Default::default()
        };
        assert!(matches!(zero.check(), Err(OpenError::InvalidOptions(_))));
        let empty = Options {
            message_size: 0,
            ..Default::default()
        };
        assert!(matches!(empty.check(), Err(OpenError::InvalidOptions(_))));
        let mode = Options {
            mode: 0o4777,
            ..Default::default()
        };
        assert!(matches!(mode.check(), Err(OpenError::InvalidOptions(_))));
    }
}
