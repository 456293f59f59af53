//! Cross-process synchronisation primitives that live inside a shared segment.
//!
//! - [`RawMutex`]: a robust, process-shared lock made only of atomics (owner = thread id and
//!   start time). When its owner dies holding it, a waiter finds the owner gone and takes the
//!   lock over with a guard whose [`owner_died`](MutexGuard::owner_died) is true; the caller
//!   repairs the protected state and calls [`make_consistent`](MutexGuard::make_consistent).
//! - [`FutexWord`]: a 32-bit word to sleep on with `FUTEX_WAIT` (shared, never
//!   `FUTEX_PRIVATE_FLAG`), with a count of sleepers so that `FUTEX_WAKE` is only called when
//!   someone sleeps.
//! - [`Semaphore`]: a counting semaphore on a [`FutexWord`], whose two top bits carry the
//!   `CLOSED` and `DISCONNECTED` states so that a sleeper is woken by a state change as reliably
//!   as by a count change.
//! - `PerProcess` (feature `tokio`): a process-local value that a forked child makes afresh
//!   (the async notifier), found without a lock.
//! - `atomic` and `futex`: the atomics and futex calls every shared word uses, in one place
//!   each so that loom can replace them (`--cfg loom`; the loom models are `loom_tests.rs` and
//!   `loom_lock_tests.rs`).
//!
//! The state tables are in `docs/protocol.md`.

#![allow(unsafe_code)]

pub(crate) mod atomic;
pub(crate) mod futex;
mod mutex;
#[cfg(all(not(loom), feature = "tokio"))]
pub(crate) mod per_process;
pub(crate) mod semaphore;

#[cfg(loom)]
mod loom_lock_tests;
#[cfg(loom)]
mod loom_tests;

#[cfg(loom)]
pub(crate) use mutex::Owners;
pub use mutex::{LockError, LockState, MutexGuard, RawMutex};
#[cfg(all(test, not(loom)))]
pub(crate) use mutex::{owner_word, scribble};
pub use semaphore::{FutexWord, Semaphore, WaitError};
