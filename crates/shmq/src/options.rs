//! The geometry and permissions of a new queue or pipe, and their validation: shared by
//! [`Queue`](crate::Queue) and [`Pipe`](crate::Pipe), above the layout and below both.

use crate::error::OpenError;
use crate::layout;
use crate::limits::{DEFAULT_MAX_MESSAGE, DEFAULT_MODE, MAX_LARGE_MESSAGE};

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
    /// The slot size: the largest message that travels in a slot, in bytes; at least 1. Every
    /// slot reserves this much.
    pub message_size: usize,
    /// The largest message a put accepts (default 1 GiB, at most 64 GiB; at least
    /// `message_size`). A message longer than `message_size` travels in a shared-memory segment
    /// of its own, named after the queue (`<name>.big.<pid>.<start>.<n>`), referenced from a
    /// slot. Only named queues and pipes with slots of at least 32 bytes carry such messages:
    /// for the others the maximum is `message_size`. `docs/protocol.md`, "Large messages".
    pub max_message_size: usize,
    /// Permission bits of a named segment (default `0o600`).
    pub mode: u32,
}

impl Default for Options {
    /// 128 slots of 4 KiB, messages of up to 1 GiB, mode `0o600`.
    fn default() -> Self {
        Options {
            capacity: 128,
            message_size: 4096,
            max_message_size: DEFAULT_MAX_MESSAGE,
            mode: DEFAULT_MODE,
        }
    }
}

impl Options {
    /// Checks the mode and the ring geometry: [`OpenError::InvalidOptions`] for a zero or
    /// oversized capacity or message size, a maximum message size below the slot size or
    /// above 64 GiB, or a mode with bits beyond `0o777`.
    pub(crate) fn check(&self) -> Result<(), OpenError> {
        crate::segment::check_mode(self.mode)?;
        if self.max_message_size < self.message_size
            || self.max_message_size as u64 > MAX_LARGE_MESSAGE
        {
            return Err(OpenError::InvalidOptions(format!(
                "maximum message size {} is below the slot size {} or above {}",
                self.max_message_size, self.message_size, MAX_LARGE_MESSAGE
            )));
        }
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
        let below = Options {
            max_message_size: 100,
            ..Default::default()
        };
        assert!(matches!(below.check(), Err(OpenError::InvalidOptions(_))));
    }
}
