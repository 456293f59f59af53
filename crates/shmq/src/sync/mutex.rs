//! A robust, process-shared lock of our own, made only of atomics (the raw half), and the guard
//! that unlocks it (the safe half), after lock_api's split of `RawMutex` and `Mutex`.
//!
//! It replaces glibc's robust pthread mutex, whose bytes a peer with write access to the segment
//! could set to states that make glibc abort the process (robust|PI kind with a dead owner), hang
//! (a zeroed kind is no longer robust) or write through pointers (the robust list).
//! `docs/protocol.md` ("The lock") gives the states and the reasons.
//!
//! | word       | bits | meaning |
//! |------------|------|---------|
//! | `owner`    | 64   | 0 free; `start << 32 \| tid` held by thread `tid` (1 to 2²²) that started at `start` (low 32 bits of its start time); `NOT_RECOVERABLE`; anything else is `Corrupt` |
//! | `seq`      | 32   | the futex word sleepers wait on; bumped by an unlock that finds sleepers |
//! | `sleepers` | 32   | how many threads may sleep on `seq` (a hint) |
//! | `state`    | 32   | under the lock: 0 consistent, 1 an owner died and repair is pending; anything else is `Corrupt` |

// Under loom only the protocol is compiled; the OS-facing parts it leaves unused are not.
#![cfg_attr(loom, allow(dead_code))]

use std::fmt;
use std::marker::PhantomData;
use std::time::{Duration, Instant};

use super::atomic::{AtomicU32, AtomicU64, Ordering::SeqCst, dekker_fence};
use super::futex;

/// `owner` of a free lock.
const FREE: u64 = 0;
/// `owner` of a lock whose owner died and whose next owner released it without repairing it.
const NOT_RECOVERABLE: u64 = 0xffff_ffff;
/// The largest thread id Linux hands out (`PID_MAX_LIMIT`, 2²²).
const TID_LIMIT: u64 = 1 << 22;
/// `state`: the protected data is consistent.
const CONSISTENT: u32 = 0;
/// `state`: an owner died holding the lock; its successor has not called `make_consistent` yet.
const REPAIR_PENDING: u32 = 1;

/// How long a waiter sees the same owner before it first checks that the owner still lives.
pub(crate) const FIRST_CHECK_AFTER: Duration = Duration::from_millis(1);
/// How often a waiter checks again while the same owner keeps the lock.
pub(crate) const CHECK_EVERY: Duration = Duration::from_millis(20);

/// What an `owner` word says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    Free,
    Held(u64),
    NotRecoverable,
    Corrupt(u64),
}

fn classify(word: u64) -> Owner {
    let tid = word & 0xffff_ffff;
    match word {
        FREE => Owner::Free,
        NOT_RECOVERABLE => Owner::NotRecoverable,
        _ if (1..=TID_LIMIT).contains(&tid) => Owner::Held(word),
        _ => Owner::Corrupt(word),
    }
}

/// The `owner` word of thread `tid` that started at `start` (clock ticks since boot).
pub(crate) fn owner_word(tid: u32, start: u64) -> u64 {
    ((start & 0xffff_ffff) << 32) | u64::from(tid)
}

fn corrupt_owner(word: u64) -> LockError {
    LockError::Corrupt(format!("lock owner word {word:#018x} names no thread"))
}

fn corrupt_state(state: u32) -> LockError {
    LockError::Corrupt(format!("lock state word {state} is neither 0 nor 1"))
}

/// Who the calling thread is, and whether another owner still lives: the operating system's
/// answer normally ([`OsOwners`]), a model's under loom.
pub(crate) trait Owners {
    /// The calling thread's `owner` word.
    fn me(&self) -> u64;
    /// Whether a liveness check of `owner` is due (it has held the lock long enough).
    fn check_due(&self, owner: u64) -> bool;
    /// Whether the thread named by `owner` still runs.
    fn alive(&self, owner: u64) -> bool;
    /// When the next liveness check of `owner` would be due (bounds a sleep).
    fn next_check(&self, owner: u64) -> Option<Instant>;
    /// A tag that changes in a forked child (the guard does not unlock a copy of the parent's).
    fn generation(&self) -> u64;
}

/// The real answers: thread ids and start times from the kernel and `/proc`.
#[cfg(not(loom))]
#[derive(Debug, Clone, Copy)]
pub(crate) struct OsOwners;

#[cfg(not(loom))]
mod os {
    use super::*;
    use std::cell::Cell;

    thread_local! {
        /// The owner this thread last waited behind, when it first saw it, and when its next
        /// liveness check is due.
        static WATCH: Cell<Option<(u64, Instant)>> = const { Cell::new(None) };
    }

    impl Owners for OsOwners {
        #[inline]
        fn me(&self) -> u64 {
            let (tid, start) = crate::sys::thread_identity();
            owner_word(tid, start)
        }

        fn check_due(&self, owner: u64) -> bool {
            self.next_check(owner)
                .is_some_and(|due| Instant::now() >= due)
        }

        fn next_check(&self, owner: u64) -> Option<Instant> {
            Some(WATCH.with(|w| match w.get() {
                Some((o, due)) if o == owner => due,
                _ => {
                    let due = Instant::now() + FIRST_CHECK_AFTER;
                    w.set(Some((owner, due)));
                    due
                }
            }))
        }

        fn alive(&self, owner: u64) -> bool {
            WATCH.with(|w| w.set(Some((owner, Instant::now() + CHECK_EVERY))));
            crate::liveness::owner_word_alive(owner)
        }

        #[inline]
        fn generation(&self) -> u64 {
            crate::sys::fork_generation_now()
        }
    }
}

/// A robust, process-shared lock that lives inside a shared segment, made only of atomics.
///
/// It occupies one 64-byte-aligned block of 64 bytes, and all-zero bytes are a free lock, so a
/// fresh (zeroed) segment needs no initialisation. Every bit pattern of its words is either a
/// state it handles or one it reports as [`LockError::Corrupt`]: a peer that scribbles over it can
/// make calls fail, never make this process abort, run undefined behaviour, or wait on an owner
/// that does not exist.
///
/// The owner is a thread, named by its kernel thread id and start time, so that a recycled id is
/// not taken for it. When the owner dies holding the lock (a process killed with SIGKILL, a
/// thread that ends with a guard forgotten), a waiter that has seen the same owner for a
/// millisecond checks `/proc`, finds it gone and takes the lock over: its guard's
/// [`owner_died`](MutexGuard::owner_died) is true. Unless that guard calls
/// [`make_consistent`](MutexGuard::make_consistent) before it is dropped, the lock becomes
/// permanently unusable ([`LockError::NotRecoverable`]), as POSIX prescribes for robust mutexes.
/// Relocking from the owning thread is [`LockError::Deadlock`], not a hang.
///
/// Owners are compared as this process sees thread ids, so every user of one lock must live in
/// the same PID namespace (see `docs/protocol.md`).
///
/// # Examples
///
/// ```
/// use shmq::substrate::sync::{LockError, RawMutex};
///
/// let m = RawMutex::new(); // in a segment: reached through a reference, never moved
/// let guard = m.lock()?;
/// assert!(!guard.owner_died());
/// assert!(matches!(m.try_lock(), Err(LockError::Deadlock)));
/// drop(guard);
/// assert!(m.try_lock().is_ok());
/// # Ok::<(), LockError>(())
/// ```
#[repr(C, align(64))]
pub struct RawMutex {
    owner: AtomicU64,
    seq: AtomicU32,
    sleepers: AtomicU32,
    state: AtomicU32,
}

#[cfg(not(loom))]
const _: () = assert!(std::mem::size_of::<RawMutex>() == 64);

/// Why a lock attempt did not return a guard.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// The lock is held by someone else (`try_lock`), or the deadline passed (`lock_until`).
    #[error("lock is held by another owner")]
    WouldBlock,
    /// An owner died, and its successor released the lock without repairing it.
    #[error("lock is not recoverable: an owner died and the state was never repaired")]
    NotRecoverable,
    /// The calling thread already holds this lock.
    #[error("lock is already held by this thread")]
    Deadlock,
    /// The lock's words hold a value no lock ever writes (a foreign writer, not a crash).
    #[error("corrupt lock: {0}")]
    Corrupt(String),
}

/// What a lock looks like from outside, read without taking it ([`RawMutex::inspect`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LockState {
    /// Nobody holds it.
    Free,
    /// A thread holds it.
    Held {
        /// The owner's kernel thread id (as this process's PID namespace sees it).
        owner_tid: u32,
        /// Whether that thread still runs; if not, the next locker is told the owner died.
        owner_alive: bool,
        /// The owner took it over from a dead owner and has not declared the state repaired.
        repair_pending: bool,
    },
    /// An owner died and its successor released it unrepaired: every lock fails.
    NotRecoverable,
    /// Its words hold values no lock writes; the string says which.
    Corrupt(String),
}

impl fmt::Display for LockState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockState::Free => f.write_str("free"),
            LockState::Held {
                owner_tid,
                owner_alive,
                repair_pending,
            } => {
                write!(f, "held by thread {owner_tid}")?;
                if !owner_alive {
                    f.write_str(" (dead: the next locker repairs)")?;
                }
                if *repair_pending {
                    f.write_str(" (repairing after an owner died)")?;
                }
                Ok(())
            }
            LockState::NotRecoverable => f.write_str("not recoverable"),
            LockState::Corrupt(s) => write!(f, "corrupt: {s}"),
        }
    }
}

impl LockState {
    /// Decodes the two words of a lock (its `owner` word and its `state` word), asking `alive`
    /// about a holder.
    pub(crate) fn decode(owner: u64, state: u32, alive: impl Fn(u64) -> bool) -> LockState {
        match classify(owner) {
            Owner::Free => LockState::Free,
            Owner::NotRecoverable => LockState::NotRecoverable,
            Owner::Corrupt(w) => LockState::Corrupt(corrupt_owner(w).to_string()),
            Owner::Held(_) if state > REPAIR_PENDING => {
                LockState::Corrupt(corrupt_state(state).to_string())
            }
            Owner::Held(w) => LockState::Held {
                owner_tid: w as u32,
                owner_alive: alive(w),
                repair_pending: state == REPAIR_PENDING,
            },
        }
    }

    /// Decodes a lock from its 64 bytes as stored (native-endian), e.g. read from the file.
    pub(crate) fn from_bytes(bytes: &[u8; 64], alive: impl Fn(u64) -> bool) -> LockState {
        let word = |at: usize, n: usize| {
            let mut b = [0u8; 8];
            b[..n].copy_from_slice(&bytes[at..at + n]);
            u64::from_ne_bytes(b)
        };
        // Offsets as in the struct: owner at 0, seq at 8, sleepers at 12, state at 16.
        LockState::decode(word(0, 8), word(16, 4) as u32, alive)
    }
}

impl Default for RawMutex {
    fn default() -> Self {
        Self::new()
    }
}

impl RawMutex {
    /// A free lock (all zero), for memory outside a segment; in a segment, zeroed bytes are a
    /// free lock already.
    pub fn new() -> Self {
        RawMutex {
            owner: AtomicU64::new(FREE),
            seq: AtomicU32::new(0),
            sleepers: AtomicU32::new(0),
            state: AtomicU32::new(CONSISTENT),
        }
    }

    /// Resets the lock to free and consistent.
    ///
    /// # Safety
    ///
    /// No other thread or process may use the lock (it could be taken from a holder, breaking
    /// the mutual exclusion that the data it protects relies on): call it only on a segment that
    /// is not published yet.
    pub(crate) unsafe fn init(&self) -> std::io::Result<()> {
        self.owner.store(FREE, SeqCst);
        self.state.store(CONSISTENT, SeqCst);
        self.sleepers.store(0, SeqCst);
        Ok(())
    }

    /// The lock's state, read without taking it and without changing anything (an owner-died
    /// report stays for the next locker).
    #[cfg(not(loom))]
    pub fn inspect(&self) -> LockState {
        LockState::decode(self.owner.load(SeqCst), self.state.load(SeqCst), |w| {
            crate::liveness::owner_word_alive(w)
        })
    }

    /// Takes the lock without waiting. If its owner is dead, takes it over (the guard's
    /// [`owner_died`](MutexGuard::owner_died) is then true).
    ///
    /// # Errors
    ///
    /// [`LockError::WouldBlock`] when a live owner holds it, and the errors of
    /// [`lock`](Self::lock).
    #[cfg(not(loom))]
    pub fn try_lock(&self) -> Result<MutexGuard<'_>, LockError> {
        self.try_lock_with(&OsOwners)
    }

    /// Takes the lock, spinning briefly and then sleeping until it is free or its owner is found
    /// dead.
    ///
    /// # Errors
    ///
    /// [`LockError::NotRecoverable`] after an unrepaired owner death, [`LockError::Deadlock`]
    /// when this thread holds it already, [`LockError::Corrupt`] for words no lock writes.
    #[cfg(not(loom))]
    pub fn lock(&self) -> Result<MutexGuard<'_>, LockError> {
        self.lock_with(None, &OsOwners)
    }

    /// Takes the lock, waiting at most until `deadline` (on the monotonic clock).
    ///
    /// # Errors
    ///
    /// [`LockError::WouldBlock`] when the deadline passes, and the errors of [`lock`](Self::lock).
    #[cfg(not(loom))]
    pub fn lock_until(&self, deadline: Instant) -> Result<MutexGuard<'_>, LockError> {
        self.lock_with(Some(deadline), &OsOwners)
    }

    /// One compare-and-swap from free; on failure, what the word held.
    fn try_acquire(&self, me: u64) -> Result<(), u64> {
        self.owner
            .compare_exchange(FREE, me, SeqCst, SeqCst)
            .map(drop)
    }

    /// The guard of a lock just taken (`took_over`: from a dead owner), after checking `state`.
    fn acquired<'a>(
        &'a self,
        me: u64,
        took_over: bool,
        o: &impl Owners,
    ) -> Result<MutexGuard<'a>, LockError> {
        let guard = |owner_died| MutexGuard {
            mutex: self,
            me,
            generation: o.generation(),
            owner_died,
            _not_send: PhantomData,
        };
        match self.state.load(SeqCst) {
            CONSISTENT if !took_over => Ok(guard(false)),
            CONSISTENT | REPAIR_PENDING => {
                if took_over {
                    self.state.store(REPAIR_PENDING, SeqCst);
                }
                Ok(guard(true))
            }
            bad => {
                // Hand the lock back so the next caller sees the same report.
                self.release(me, FREE);
                Err(corrupt_state(bad))
            }
        }
    }

    /// What to do about an owner word that is not free: an error, or `Ok(owner)` to wait on.
    fn judge(&self, word: u64, me: u64) -> Result<u64, LockError> {
        match classify(word) {
            Owner::Free => Ok(FREE),
            Owner::NotRecoverable => Err(LockError::NotRecoverable),
            Owner::Corrupt(w) => Err(corrupt_owner(w)),
            Owner::Held(w) if w == me => Err(LockError::Deadlock),
            Owner::Held(w) => Ok(w),
        }
    }

    /// Takes the lock over from `owner` if it is dead; `None` if it lives or the word moved on.
    fn take_over<'a>(
        &'a self,
        owner: u64,
        me: u64,
        o: &impl Owners,
    ) -> Option<Result<MutexGuard<'a>, LockError>> {
        if o.alive(owner) {
            return None;
        }
        // The compare-and-swap fails if the word changed since it was read: then the owner
        // released it, or another waiter took it over first.
        self.owner
            .compare_exchange(owner, me, SeqCst, SeqCst)
            .ok()
            .map(|_| self.acquired(me, true, o))
    }

    pub(crate) fn try_lock_with<'a>(
        &'a self,
        o: &impl Owners,
    ) -> Result<MutexGuard<'a>, LockError> {
        let me = o.me();
        match self.try_acquire(me) {
            Ok(()) => self.acquired(me, false, o),
            Err(word) => {
                let owner = self.judge(word, me)?;
                if owner == FREE {
                    return Err(LockError::WouldBlock);
                }
                self.take_over(owner, me, o)
                    .unwrap_or(Err(LockError::WouldBlock))
            }
        }
    }

    /// Test-and-test-and-set with backoff, then yielding the CPU, for up to
    /// [`POLL_FOR`](super::semaphore::POLL_FOR) in all (never past `deadline`): a futex sleep
    /// and wake-up cost microseconds (tens across the CPUs of a virtual machine), while critical
    /// sections here are a copy of one message or a batch. `Ok(true)`: acquired.
    #[cfg(not(loom))]
    fn spin(&self, me: u64, deadline: Option<Instant>) -> Result<bool, LockError> {
        let backoff = crossbeam_utils::Backoff::new();
        let mut poll_until = None;
        loop {
            // Test, then test-and-set: a compare-and-swap takes the cache line away from the
            // holder, which then stalls on its own unlock.
            let word = self.owner.load(SeqCst);
            if word == FREE {
                if self.try_acquire(me).is_ok() {
                    return Ok(true);
                }
            } else {
                self.judge(word, me)?;
            }
            if !backoff.is_completed() {
                backoff.snooze();
                continue;
            }
            let now = Instant::now();
            let until = *poll_until.get_or_insert(now + super::semaphore::POLL_FOR);
            if now >= until || deadline.is_some_and(|d| now >= d) {
                return Ok(false);
            }
            std::thread::yield_now();
        }
    }

    pub(crate) fn lock_with<'a>(
        &'a self,
        deadline: Option<Instant>,
        o: &impl Owners,
    ) -> Result<MutexGuard<'a>, LockError> {
        let me = o.me();
        match self.try_acquire(me) {
            Ok(()) => return self.acquired(me, false, o),
            Err(word) => {
                self.judge(word, me)?;
            }
        }
        #[cfg(not(loom))]
        if self.spin(me, deadline)? {
            return self.acquired(me, false, o);
        }
        loop {
            let word = self.owner.load(SeqCst);
            let owner = self.judge(word, me)?;
            if owner == FREE {
                if self.try_acquire(me).is_ok() {
                    return self.acquired(me, false, o);
                }
                continue;
            }
            if o.check_due(owner)
                && let Some(r) = self.take_over(owner, me, o)
            {
                return r;
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                return Err(LockError::WouldBlock);
            }
            // Sleep until woken, the deadline, or the next liveness check of this owner.
            let wake_at = match (deadline, o.next_check(owner)) {
                (Some(d), Some(c)) => Some(d.min(c)),
                (d, c) => d.or(c),
            };
            self.sleep_while_owned_by(owner, wake_at, o);
        }
    }

    /// The sleeper's side of the handshake: register, read `seq`, and sleep on it only if the
    /// lock still belongs to `owner` (and, when a liveness check is due, only if that owner
    /// lives). An unlock stores the owner word, then reads `sleepers`, and bumps `seq` and wakes
    /// if it is non-zero: either the sleeper sees the new owner word, or the waker sees the
    /// sleeper (and the bump makes `FUTEX_WAIT` return at once). An owner that dies never
    /// unlocks: the sleep ends at the next liveness check (`wake_at`), which finds it dead.
    fn sleep_while_owned_by(&self, owner: u64, wake_at: Option<Instant>, o: &impl Owners) {
        // SYNC POINT: sleeper side.
        self.sleepers.fetch_add(1, SeqCst);
        dekker_fence();
        let seq = self.seq.load(SeqCst);
        let still_owned = self.owner.load(SeqCst) == owner;
        if still_owned && (!o.check_due(owner) || o.alive(owner)) {
            futex::wait(&self.seq, seq, wake_at);
        }
        self.sleepers.fetch_sub(1, SeqCst);
    }

    /// Loom's model of time passing after an owner died: every sleeper's slice ends (as a
    /// timed `FUTEX_WAIT` returns), and each re-checks the owner.
    #[cfg(loom)]
    pub(crate) fn model_slices_expire(&self) {
        self.seq.fetch_add(1, SeqCst);
        futex::wake(&self.seq, u32::MAX);
    }

    /// The owner and state words, for loom's assertions.
    #[cfg(loom)]
    pub(crate) fn model_words(&self) -> (u64, u32) {
        (self.owner.load(SeqCst), self.state.load(SeqCst))
    }

    /// Hands the lock from `me` to `to` (free, or not recoverable) and wakes sleepers: one for a
    /// free lock, all of them for a not recoverable one. Does nothing if `me` no longer holds it.
    fn release(&self, me: u64, to: u64) {
        if self.owner.compare_exchange(me, to, SeqCst, SeqCst).is_err() {
            return;
        }
        // SYNC POINT: waker side; the owner word changed just above.
        dekker_fence();
        if self.sleepers.load(SeqCst) > 0 {
            self.seq.fetch_add(1, SeqCst);
            futex::wake(&self.seq, if to == FREE { 1 } else { u32::MAX });
        }
    }
}

impl fmt::Debug for RawMutex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawMutex")
            .field("owner", &format_args!("{:#x}", self.owner.load(SeqCst)))
            .field("state", &self.state.load(SeqCst))
            .finish_non_exhaustive()
    }
}

/// Proof that the calling thread holds a [`RawMutex`]; unlocks it on drop.
///
/// A guard is not `Send`: the lock is owned by the thread that took it.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct MutexGuard<'a> {
    mutex: &'a RawMutex,
    me: u64,
    #[cfg_attr(loom, allow(dead_code))]
    generation: u64,
    owner_died: bool,
    _not_send: PhantomData<*const ()>,
}

// SAFETY: sharing `&MutexGuard` between threads only allows reading its plain fields and
// comparing addresses (`holds`); unlocking needs the guard by value.
unsafe impl Sync for MutexGuard<'_> {}

impl MutexGuard<'_> {
    /// Whether the previous owner died holding the lock and the state it protects still waits
    /// for repair (until [`make_consistent`](Self::make_consistent) is called).
    pub fn owner_died(&self) -> bool {
        self.owner_died
    }

    /// Declares the protected state repaired. Without this, dropping a guard whose
    /// [`owner_died`](Self::owner_died) is true leaves the lock permanently unusable.
    ///
    /// # Errors
    ///
    /// [`LockError::Corrupt`] if the lock's owner word no longer names this thread (a foreign
    /// writer changed it).
    pub fn make_consistent(&mut self) -> Result<(), LockError> {
        if self.owner_died {
            let word = self.mutex.owner.load(SeqCst);
            if word != self.me {
                return Err(LockError::Corrupt(format!(
                    "lock owner word {word:#018x} changed under its holder"
                )));
            }
            self.mutex.state.store(CONSISTENT, SeqCst);
            self.owner_died = false;
        }
        Ok(())
    }

    /// Whether this guard holds `mutex` (used to tie a guard to the state it protects).
    pub fn holds(&self, mutex: &RawMutex) -> bool {
        std::ptr::eq(self.mutex, mutex)
    }
}

impl Drop for MutexGuard<'_> {
    fn drop(&mut self) {
        #[cfg(not(loom))]
        if crate::sys::fork_generation_now() != self.generation {
            // A forked child dropping its copy of the parent's guard: the lock is the parent's.
            return;
        }
        let to = if self.owner_died {
            NOT_RECOVERABLE
        } else {
            FREE
        };
        self.mutex.release(self.me, to);
    }
}

impl fmt::Debug for MutexGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MutexGuard")
            .field("owner_died", &self.owner_died)
            .finish()
    }
}

/// Writes raw words into a lock, for tests that damage it.
#[cfg(all(test, not(loom)))]
pub(crate) fn scribble(m: &RawMutex, owner: u64, state: u32) {
    m.owner.store(owner, SeqCst);
    m.state.store(state, SeqCst);
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn relock_by_the_same_thread_is_an_error_not_a_hang() {
        let m = RawMutex::new();
        let _g = m.lock().unwrap();
        assert_eq!(m.try_lock().unwrap_err(), LockError::Deadlock);
        assert_eq!(m.lock().unwrap_err(), LockError::Deadlock);
        let t = Instant::now() + Duration::from_millis(10);
        assert_eq!(m.lock_until(t).unwrap_err(), LockError::Deadlock);
    }

    #[test]
    fn lock_until_times_out_while_another_thread_holds_it() {
        let m = RawMutex::new();
        let g = m.lock().unwrap();
        std::thread::scope(|s| {
            s.spawn(|| {
                let t = Instant::now();
                let d = t + Duration::from_millis(50);
                assert_eq!(m.lock_until(d).unwrap_err(), LockError::WouldBlock);
                assert!(t.elapsed() >= Duration::from_millis(50));
                assert_eq!(m.try_lock().unwrap_err(), LockError::WouldBlock);
            });
        });
        drop(g);
        assert!(m.try_lock().is_ok());
    }

    #[test]
    fn a_waiter_sleeping_behind_the_owner_is_woken_by_the_unlock() {
        let m = RawMutex::new();
        let g = m.lock().unwrap();
        std::thread::scope(|s| {
            let t = s.spawn(|| {
                let g = m.lock().unwrap();
                assert!(!g.owner_died());
            });
            // Long enough for the waiter to be asleep (its spin lasts 50 µs).
            std::thread::sleep(Duration::from_millis(30));
            drop(g);
            t.join().unwrap();
        });
        assert_eq!(m.inspect(), LockState::Free);
    }

    #[test]
    fn thread_death_is_reported_and_repairable() {
        let m = RawMutex::new();
        std::thread::scope(|s| {
            // A thread that ends holding the lock: its id names no thread afterwards.
            s.spawn(|| std::mem::forget(m.lock().unwrap()));
        });
        // The kernel finishes the thread's exit shortly after the join returns.
        let limit = Instant::now() + Duration::from_secs(10);
        while !matches!(
            m.inspect(),
            LockState::Held {
                owner_alive: false,
                ..
            }
        ) {
            assert!(Instant::now() < limit, "{}", m.inspect());
            std::thread::sleep(Duration::from_millis(1));
        }
        let mut g = m.lock().unwrap();
        assert!(g.owner_died());
        assert!(matches!(
            m.inspect(),
            LockState::Held {
                owner_alive: true,
                repair_pending: true,
                ..
            }
        ));
        g.make_consistent().unwrap();
        assert!(!g.owner_died());
        drop(g);
        assert!(!m.lock().unwrap().owner_died());
    }

    #[test]
    fn try_lock_takes_over_from_a_dead_owner_too() {
        let m = RawMutex::new();
        std::thread::scope(|s| {
            s.spawn(|| std::mem::forget(m.lock().unwrap()));
        });
        // Each try checks the holder; the kernel finishes its exit shortly after the join.
        let limit = Instant::now() + Duration::from_secs(10);
        let g = loop {
            match m.try_lock() {
                Ok(g) => break g,
                Err(LockError::WouldBlock) if Instant::now() < limit => {
                    std::thread::sleep(Duration::from_millis(1))
                }
                Err(e) => panic!("{e}"),
            }
        };
        assert!(g.owner_died());
    }

    #[test]
    fn a_repairer_that_dies_leaves_the_report_for_the_next_locker() {
        let m = RawMutex::new();
        std::thread::scope(|s| {
            s.spawn(|| std::mem::forget(m.lock().unwrap()));
        });
        std::thread::scope(|s| {
            s.spawn(|| {
                let g = m.lock().unwrap();
                assert!(g.owner_died());
                std::mem::forget(g);
            });
        });
        let mut g = m.lock().unwrap();
        assert!(g.owner_died());
        g.make_consistent().unwrap();
    }

    #[test]
    fn unrepaired_owner_death_makes_the_lock_unrecoverable() {
        let m = RawMutex::new();
        std::thread::scope(|s| {
            s.spawn(|| std::mem::forget(m.lock().unwrap()));
        });
        let g = m.lock().unwrap();
        assert!(g.owner_died());
        drop(g);
        assert_eq!(m.lock().unwrap_err(), LockError::NotRecoverable);
        assert_eq!(m.try_lock().unwrap_err(), LockError::NotRecoverable);
        assert_eq!(m.inspect(), LockState::NotRecoverable);
    }

    #[test]
    fn a_recycled_thread_id_with_another_start_time_is_a_dead_owner() {
        let m = RawMutex::new();
        let (tid, start) = crate::sys::thread_identity();
        // This very thread's id, with a start time it does not have: an earlier thread that
        // had the same id and died holding the lock.
        scribble(&m, owner_word(tid, start.wrapping_add(1)), 0);
        let g = m.lock().unwrap();
        assert!(g.owner_died());
    }

    #[test]
    fn garbage_lock_words_are_corrupt_never_a_hang() {
        let m = RawMutex::new();
        let never = 0x7fff_ffffu64; // above any thread id Linux hands out
        for (owner, state) in [
            (never, 0),
            (1u64 << 40, 0), // no thread id, a start time
            (u64::MAX, 0),
            (owner_word(7, 0).wrapping_add(TID_LIMIT), 0),
        ] {
            scribble(&m, owner, state);
            assert!(matches!(m.lock(), Err(LockError::Corrupt(_))), "{owner:#x}");
            assert!(matches!(m.try_lock(), Err(LockError::Corrupt(_))));
            let d = Instant::now() + Duration::from_millis(5);
            assert!(matches!(m.lock_until(d), Err(LockError::Corrupt(_))));
            assert!(matches!(m.inspect(), LockState::Corrupt(_)));
        }
        // A free lock with a state word no lock writes: the locker reports it and leaves it free.
        scribble(&m, FREE, 7);
        assert!(matches!(m.lock(), Err(LockError::Corrupt(_))));
        assert!(matches!(m.try_lock(), Err(LockError::Corrupt(_))));
        // A free lock whose state says a repair is pending: the next locker is told.
        scribble(&m, FREE, REPAIR_PENDING);
        let mut g = m.lock().unwrap();
        assert!(g.owner_died());
        g.make_consistent().unwrap();
        drop(g);
        // Every 32-bit value of the state word under a dead owner: taken over or Corrupt.
        for state in [0, 1, 2, 3, 0x8000_0000, u32::MAX] {
            scribble(
                &m,
                owner_word(never as u32 & 0x3f_ffff, 0) | (1 << 32),
                state,
            );
            match m.lock() {
                Ok(mut g) => {
                    assert!(state <= 1 && g.owner_died());
                    g.make_consistent().unwrap();
                }
                Err(LockError::Corrupt(_)) => assert!(state > 1),
                Err(e) => panic!("state {state}: {e}"),
            }
        }
    }

    #[test]
    fn a_guard_dropped_in_a_forked_child_does_not_unlock_the_parents_lock() {
        let seg = crate::segment::Segment::anonymous(4096).unwrap();
        let m = seg.mutex_at(128).unwrap();
        let g = m.lock().unwrap();
        // SAFETY: the child only drops the guard and leaves with _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            drop(g);
            let still_held = matches!(m.inspect(), LockState::Held { .. });
            // SAFETY: _exit is async-signal-safe.
            unsafe { libc::_exit(if still_held { 0 } else { 1 }) };
        }
        let mut status = 0;
        // SAFETY: waits for the child forked above.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
        assert!(!g.owner_died());
        drop(g);
        assert_eq!(m.inspect(), LockState::Free);
    }

    #[test]
    fn a_forked_child_locks_as_itself_not_as_its_parent() {
        let seg = crate::segment::Segment::anonymous(4096).unwrap();
        let m = seg.mutex_at(128).unwrap();
        drop(m.lock().unwrap()); // the parent's identity is cached now
        // SAFETY: the child only locks, forgets the guard and leaves with _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let ok = m.lock().map(std::mem::forget).is_ok();
            // SAFETY: _exit is async-signal-safe.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        let mut status = 0;
        // SAFETY: waits for the child forked above.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
        // Had the child locked under the parent's identity, this would be Deadlock.
        let g = m.lock().unwrap();
        assert!(g.owner_died());
    }

    #[test]
    fn a_killed_process_holding_the_lock_is_detected_and_repaired() {
        let seg = crate::segment::Segment::anonymous(4096).unwrap();
        let m = seg.mutex_at(128).unwrap();
        use std::io::{Read, Write};
        let (mut rx, mut tx) = std::os::unix::net::UnixStream::pair().unwrap();
        // SAFETY: the child only locks (no allocation on this path once the identity is read),
        // reports, and waits for SIGKILL.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let g = m.lock();
            let _ = tx.write_all(&[u8::from(g.is_ok())]);
            std::mem::forget(g);
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        let mut b = [0u8; 1];
        rx.read_exact(&mut b).unwrap();
        assert_eq!(b[0], 1, "the child took the lock");
        assert_eq!(m.try_lock().unwrap_err(), LockError::WouldBlock);
        // SAFETY: plain signal to the child forked above; then reap it.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
        let t = Instant::now();
        let g = m.lock_until(t + Duration::from_secs(10)).unwrap();
        assert!(g.owner_died());
        eprintln!("killed holder detected after {:?}", t.elapsed());
    }
}
