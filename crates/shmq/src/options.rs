//! The geometry and permissions of a new queue or pipe, and their validation: shared by
//! [`Queue`](crate::Queue) and [`Pipe`](crate::Pipe), above the layout and below both.

use std::time::Duration;

use crate::error::OpenError;
use crate::layout;
use crate::segment::DEFAULT_MODE;

/// How long a `try_*` call that must lock (`try_put`, `try_put_with`, `try_put_many`,
/// `try_send`) waits for a lock held by another live process before it gives up with
/// `Full` (it would block). A holder that lives but never lets go (a stuck or hostile peer,
/// or a forged owner word naming a live thread) is indistinguishable from a slow one, so a
/// non-blocking call bounds its wait instead of trusting the holder. See the trust model in
/// `docs/protocol.md`.
///
/// # Examples
///
/// ```
/// assert!(shmq::TRY_LOCK_WAIT < shmq::OPEN_LOCK_WAIT);
/// ```
pub const TRY_LOCK_WAIT: Duration = Duration::from_millis(100);

/// How long opening a pipe end ([`PipeEnd::open`](crate::PipeEnd::open),
/// [`PipeEnd::hand_off`](crate::PipeEnd::hand_off)) waits for the holder table's lock while
/// another live process holds it, before it returns [`OpenError::Busy`]. Opening never
/// blocks on a peer without bound.
///
/// # Examples
///
/// ```
/// assert_eq!(shmq::OPEN_LOCK_WAIT.as_secs(), 1);
/// ```
pub const OPEN_LOCK_WAIT: Duration = Duration::from_secs(1);

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
