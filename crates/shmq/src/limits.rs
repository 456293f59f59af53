//! The numbers every layer agrees on: size limits of rings, messages, segments and names, the
//! default geometry and mode, and how long a call waits for a lock that another live process
//! holds. This module imports nothing, so any module may use it without making a cycle.

use std::time::Duration;

/// The largest capacity (slots per ring) accepted.
pub const MAX_CAPACITY: u64 = 1 << 24;

/// The largest slot size accepted (64 MiB): the largest message that travels in a slot.
pub const MAX_MESSAGE_SIZE: u64 = 1 << 26;

/// The largest segment accepted (64 GiB).
pub const MAX_SEGMENT_SIZE: u64 = 1 << 36;

/// The largest `max_message_size` accepted (64 GiB, the largest segment).
pub const MAX_LARGE_MESSAGE: u64 = 1 << 36;

/// The default maximum message size of a new queue or pipe (1 GiB).
pub const DEFAULT_MAX_MESSAGE: usize = 1 << 30;

/// The longest segment name accepted, in bytes.
pub const MAX_NAME_LEN: usize = 200;

/// The default permission mode of new segments: read and write for the owner only.
pub const DEFAULT_MODE: u32 = 0o600;

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
/// another live process holds it, before it returns [`OpenError::Busy`](crate::OpenError::Busy). Opening never
/// blocks on a peer without bound.
///
/// # Examples
///
/// ```
/// assert_eq!(shmq::OPEN_LOCK_WAIT.as_secs(), 1);
/// ```
pub const OPEN_LOCK_WAIT: Duration = Duration::from_secs(1);
