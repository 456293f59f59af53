//! The futex calls and the CPU hints of the blocking paths, routed through one module so that
//! loom can replace them.
//!
//! Without `--cfg loom` these are `FUTEX_WAIT`/`FUTEX_WAKE` (shared, never private) from `sys`,
//! `std::hint::spin_loop` and `std::thread::yield_now`.
//!
//! Under `--cfg loom` the futex is a mock with the kernel's contract, built from a loom mutex and
//! condition variable: `wait` checks the word and goes to sleep in one step (under the mock's
//! mutex), `wake` wakes every sleeper. Time does not pass under loom, so a wait with a deadline
//! sleeps like one without: a sleeper is only woken by a `wake`, and a lost wake-up shows up as a
//! deadlock that loom reports, instead of as a delay.

use std::time::Instant;

use super::atomic::AtomicU32;

/// Sleeps while `*word == expected`, at most until `deadline`; returns on a wake-up, a change, a
/// signal or the deadline. The caller re-checks its condition in every case.
#[cfg(not(loom))]
#[inline]
pub(crate) fn wait(word: &AtomicU32, expected: u32, deadline: Option<Instant>) {
    crate::sys::futex_wait(word, expected, deadline);
}

/// Wakes up to `n` sleepers on `word`.
#[cfg(not(loom))]
#[inline]
pub(crate) fn wake(word: &AtomicU32, n: u32) {
    crate::sys::futex_wake(word, n);
}

/// How long [`wait_any`] sleeps per slice when the kernel has no `futex_waitv`.
#[cfg(not(loom))]
pub(crate) const WAITV_FALLBACK_SLICE: std::time::Duration = std::time::Duration::from_millis(1);

/// Sleeps while every `(word, expected)` pair holds, at most until `deadline`: one
/// `futex_waitv` call (Linux ≥ 5.16; shared 32-bit futexes, at most 128 words). Without it
/// (an older kernel, or more than 128 words) it sleeps one short slice
/// ([`WAITV_FALLBACK_SLICE`]) unless a word already changed. Returns on a wake-up, a change, a
/// signal, the deadline or the end of a fallback slice; the caller re-checks in every case.
#[cfg(not(loom))]
pub(crate) fn wait_any(words: &[(&AtomicU32, u32)], deadline: Option<Instant>) {
    use super::atomic::Ordering::SeqCst;
    let raw: Vec<(*const AtomicU32, u32)> =
        words.iter().map(|&(w, v)| (w as *const _, v)).collect();
    if crate::sys::futex_waitv(&raw, deadline) != crate::sys::WaitvResult::Unsupported {
        return;
    }
    if words.iter().any(|(w, v)| w.load(SeqCst) != *v) {
        return;
    }
    let mut until = Instant::now() + WAITV_FALLBACK_SLICE;
    if let Some(d) = deadline {
        until = until.min(d);
    }
    std::thread::sleep(until.saturating_duration_since(Instant::now()));
}

/// A busy-wait hint (`pause`).
#[inline]
pub(crate) fn spin_loop() {
    #[cfg(not(loom))]
    std::hint::spin_loop();
    #[cfg(loom)]
    loom::hint::spin_loop();
}

/// Gives the CPU away.
#[inline]
pub(crate) fn yield_now() {
    #[cfg(not(loom))]
    std::thread::yield_now();
    #[cfg(loom)]
    loom::thread::yield_now();
}

#[cfg(loom)]
mod mock {
    use loom::sync::{Condvar, Mutex};

    loom::lazy_static! {
        /// One table for every word: a wake-up wakes every sleeper, which is allowed (a futex
        /// sleeper re-checks after every return).
        pub(super) static ref TABLE: (Mutex<()>, Condvar) = (Mutex::new(()), Condvar::new());
    }
}

/// Loom's model of `FUTEX_WAIT`: the check and the sleep are one step under the mock's mutex,
/// as the kernel makes them one step under the futex hash bucket's lock.
#[cfg(loom)]
pub(crate) fn wait(word: &AtomicU32, expected: u32, _deadline: Option<Instant>) {
    use super::atomic::Ordering::SeqCst;
    let (lock, cond) = &*mock::TABLE;
    let guard = lock.lock().unwrap();
    if word.load(SeqCst) == expected {
        drop(cond.wait(guard).unwrap());
    }
}

/// Loom's model of `FUTEX_WAKE`: wakes every sleeper of the mock.
#[cfg(loom)]
pub(crate) fn wake(_word: &AtomicU32, _n: u32) {
    let (lock, cond) = &*mock::TABLE;
    let _guard = lock.lock().unwrap();
    cond.notify_all();
}
