//! The error types of the dict and the lock. Creating and opening a segment fails with shmq's
//! [`OpenError`](shmq::OpenError); taking a lock with [`AcquireError`]; a dict operation with
//! [`DictError`]. A call that fails changes nothing.

/// Why a lock was not taken.
///
/// # Examples
///
/// ```
/// use shmq_dict::AcquireError;
/// assert_eq!(AcquireError::Timeout.to_string(), "timed out waiting for the lock");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AcquireError {
    /// `try_lock`: another owner holds the lock.
    #[error("lock is held by another owner")]
    WouldBlock,
    /// `try_lock_for` / `try_lock_until`: the lock stayed held until the deadline.
    #[error("timed out waiting for the lock")]
    Timeout,
    /// The calling thread already holds this lock (the mutex checks for errors, so relocking is
    /// reported instead of hanging).
    #[error("lock is already held by this thread")]
    Deadlock,
    /// The mutex failed, or is unrecoverable; the string says why.
    #[error("lock failed: {0}")]
    Failed(String),
}

impl AcquireError {
    /// Maps shmq's raw lock error; `timed` says whether a `WouldBlock` means a deadline passed.
    pub(crate) fn from_raw(e: shmq::substrate::sync::LockError, timed: bool) -> AcquireError {
        match e {
            shmq::substrate::sync::LockError::WouldBlock if timed => AcquireError::Timeout,
            shmq::substrate::sync::LockError::WouldBlock => AcquireError::WouldBlock,
            shmq::substrate::sync::LockError::Deadlock => AcquireError::Deadlock,
            other => AcquireError::Failed(other.to_string()),
        }
    }
}

/// Why a dict operation failed. The table is unchanged.
///
/// # Examples
///
/// ```
/// use shmq_dict::DictError;
/// let e = DictError::KeyTooLong { len: 9, max: 8 };
/// assert_eq!(e.to_string(), "key of 9 bytes exceeds the maximum key length of 8 bytes");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DictError {
    /// The key is the empty string.
    #[error("the key is empty")]
    EmptyKey,
    /// The key is longer than the maximum chosen at create.
    #[error("key of {len} bytes exceeds the maximum key length of {max} bytes")]
    KeyTooLong {
        /// Length of the key in bytes.
        len: usize,
        /// The longest key the dict stores.
        max: usize,
    },
    /// A new key does not fit: every entry holds a key.
    #[error("the dict is full: all {capacity} entries hold a key")]
    Full {
        /// Number of entries of the table.
        capacity: usize,
    },
    /// [`add`](crate::SharedDict::add) would leave the range of `i64`.
    #[error("adding {delta} to {value} overflows i64")]
    Overflow {
        /// The value stored.
        value: i64,
        /// The delta asked for.
        delta: i64,
    },
    /// The lock could not be taken.
    #[error(transparent)]
    Lock(#[from] AcquireError),
    /// The segment holds something impossible (a foreign writer, not a crash).
    #[error("corrupt segment: {0}")]
    Corrupt(String),
}
