//! Cross-process synchronisation primitives that live inside a shared segment.
//!
//! - [`RawMutex`]: a process-shared, robust pthread mutex. When its owner dies holding it, the
//!   next [`lock`](RawMutex::lock) succeeds with a guard whose
//!   [`owner_died`](MutexGuard::owner_died) is true; the caller repairs the protected state and
//!   calls [`make_consistent`](MutexGuard::make_consistent).
//! - [`FutexWord`]: a 32-bit word to sleep on with `FUTEX_WAIT` (shared, never
//!   `FUTEX_PRIVATE_FLAG`), with a count of sleepers so that `FUTEX_WAKE` is only called when
//!   someone sleeps.
//! - [`Semaphore`]: a counting semaphore on a [`FutexWord`], whose two top bits carry the
//!   `CLOSED` and `DISCONNECTED` states so that a sleeper is woken by a state change as reliably
//!   as by a count change.
//!
//! The state tables are in `docs/protocol.md`.

#![allow(unsafe_code)]

pub(crate) mod atomic;
pub(crate) mod futex;
#[cfg(not(loom))]
mod mutex;
pub(crate) mod semaphore;

#[cfg(loom)]
mod loom_tests;

#[cfg(not(loom))]
pub use mutex::{LockError, MutexGuard, RawMutex};
pub use semaphore::{FutexWord, Semaphore, WaitError};
