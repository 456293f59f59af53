//! # shmq-dict — a shared counter dict and a named lock between processes
//!
//! [`SharedDict`] is Python's `Manager().dict()` for `String -> i64` counters, in one
//! shared-memory segment instead of a server process: a fixed-capacity open-addressing table
//! behind a robust process-shared lock. Every call is atomic on its own; [`SharedDict::add`] is
//! one atomic read-modify-write; [`SharedDict::lock`] gives a guard with the same operations in
//! one critical section. [`ProcessLock`] is a named lock on its own that any process may release
//! (Python's `multiprocessing.Lock`); [`Lock`] is a robust mutex owned by the thread that locked
//! it.
//!
//! A process killed with SIGKILL while holding either lock does not wedge it: the next locker
//! gets the lock and is told, through `previous_owner_died()` on its guard, and the dict is
//! consistent because each operation commits with one store (`docs/dict.md`).
//!
//! The race of Python multiprocessing's classic Manager-dict example: 70 processes each run
//! `dic['count'] -= 1` from 100. As two calls, `get` then `insert`, another process can write in
//! between and an update is lost (the total ends above 30); inside one guard, or as one `add`, it
//! always ends at 30.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use shmq_dict::{Options, SharedDict};
//!
//! let name = format!("shmq-doc-dict-lib-{}", std::process::id());
//! let dict = SharedDict::create(&name, &Options { capacity: 64, max_key_len: 32, ..Default::default() })?;
//! dict.insert("count", 100)?;
//!
//! // In each of many processes (here: one):
//! let d = SharedDict::open(&name)?;
//! let mut guard = d.lock()?;          // lock.acquire()
//! let v = guard.get("count")?.unwrap_or(0);
//! guard.insert("count", v - 1)?;      // dic['count'] -= 1
//! drop(guard);                        // lock.release()
//! d.add("count", -1)?;                // or: one atomic read-modify-write
//!
//! assert_eq!(dict.get("count")?, Some(98));
//! SharedDict::unlink(&name)?;
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod dict;
mod error;
mod lock;
mod process_lock;
mod table;

pub use dict::{DictGuard, DictInfo, Options, SharedDict};
pub use error::{AcquireError, DictError};
pub use lock::{Lock, LockGuard};
pub use process_lock::{Acquired, ProcessLock, ReleaseError};
pub use table::{MAX_ENTRIES, MAX_KEY_LEN};

#[cfg(test)]
mod tests {
    fn send_sync<T: Send + Sync>() {}

    #[test]
    fn handles_are_send_and_sync() {
        send_sync::<super::SharedDict>();
        send_sync::<super::Lock>();
        send_sync::<super::ProcessLock>();
    }
}
