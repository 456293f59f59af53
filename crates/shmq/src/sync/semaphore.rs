//! A futex word with a sleeper count, and a counting semaphore with two state bits built on it.

use std::fmt;
use std::time::{Duration, Instant};

use super::atomic::{AtomicU32, Ordering::SeqCst, dekker_fence};
use super::futex;

/// A 32-bit word that processes sleep on with `FUTEX_WAIT` (shared), plus a count of sleepers so
/// that a waker skips the `FUTEX_WAKE` system call when nobody sleeps.
///
/// The sleeper count is a hint: a sleeper killed while registered leaves it one too high, which
/// costs a wasted wake-up later and nothing else.
///
/// Sleep/wake handshake (Dekker-style, every access `SeqCst`): the sleeper increments `waiters`,
/// then re-reads `word` and sleeps only if it still holds the expected value; the waker changes
/// `word`, then reads `waiters`. One of the two always sees the other's write, so a change is
/// never missed (`FUTEX_WAIT` re-checks the word atomically in the kernel).
#[repr(C)]
pub struct FutexWord {
    word: AtomicU32,
    waiters: AtomicU32,
}

impl FutexWord {
    /// A word holding `value` with no sleepers (for heap-backed tests; in a segment the bytes
    /// start zeroed and are set with [`store`](Self::store)).
    pub fn new(value: u32) -> Self {
        Self {
            word: AtomicU32::new(value),
            waiters: AtomicU32::new(0),
        }
    }

    /// The current value.
    pub fn load(&self) -> u32 {
        self.word.load(SeqCst)
    }

    /// Replaces the value (no wake-up; see [`wake`](Self::wake)).
    pub fn store(&self, value: u32) {
        self.word.store(value, SeqCst);
    }

    /// Adds `n` (wrapping) and returns the previous value; no wake-up.
    pub fn fetch_add(&self, n: u32) -> u32 {
        self.word.fetch_add(n, SeqCst)
    }

    /// How many threads are registered as sleeping (a hint, see the type's docs).
    pub fn waiters(&self) -> u32 {
        self.waiters.load(SeqCst)
    }

    /// Sleeps while the word equals `expected`, at most until `deadline` (`None`: no limit).
    /// Returns on a wake-up, a change, a signal or the deadline: the caller re-checks.
    pub fn wait_while(&self, expected: u32, deadline: Option<Instant>) {
        // SYNC POINT: sleeper side of the handshake described on the type.
        self.waiters.fetch_add(1, SeqCst);
        dekker_fence();
        if self.word.load(SeqCst) == expected {
            futex::wait(&self.word, expected, deadline);
        }
        self.waiters.fetch_sub(1, SeqCst);
    }

    /// Wakes up to `n` sleepers, but makes the system call only if someone is registered.
    pub fn wake(&self, n: u32) {
        // SYNC POINT: waker side; the caller changed `word` before this load.
        dekker_fence();
        if n > 0 && self.waiters.load(SeqCst) > 0 {
            futex::wake(&self.word, n);
        }
    }

    /// Wakes every sleeper (if any is registered).
    pub fn wake_all(&self) {
        self.wake(u32::MAX);
    }
}

impl fmt::Debug for FutexWord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FutexWord")
            .field("word", &self.load())
            .field("waiters", &self.waiters())
            .finish()
    }
}

/// Why a [`Semaphore`] wait ended without a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitError {
    /// The deadline passed.
    Timeout,
    /// A state bit is set (the value holds the bits, [`Semaphore::CLOSED`] and/or
    /// [`Semaphore::DISCONNECTED`]).
    Flagged(u32),
}

/// A counting semaphore in shared memory, on a [`FutexWord`].
///
/// | bits   | meaning |
/// |--------|---------|
/// | 0..=29 | the count (at most [`Semaphore::MAX_COUNT`]) |
/// | 30     | [`Semaphore::DISCONNECTED`]: the other side of a pipe is gone |
/// | 31     | [`Semaphore::CLOSED`]: the queue was closed |
///
/// Keeping the state bits in the same word as the count means that setting one changes the
/// word a sleeper waits on, so no close or disconnect can slip between a sleeper's check and its
/// `FUTEX_WAIT`.
///
/// # Examples
///
/// ```
/// use shmq::substrate::sync::{Semaphore, WaitError};
/// use std::time::{Duration, Instant};
///
/// let sem = Semaphore::new(1);
/// assert!(sem.try_wait());
/// assert!(!sem.try_wait());
/// let deadline = Instant::now() + Duration::from_millis(10);
/// assert_eq!(sem.wait_deadline(Some(deadline)), Err(WaitError::Timeout));
/// sem.post(2);
/// assert_eq!(sem.count(), 2);
/// sem.set_flags(Semaphore::CLOSED);
/// assert_eq!(sem.count(), 2);
/// assert_eq!(sem.flags(), Semaphore::CLOSED);
/// ```
#[repr(C)]
pub struct Semaphore {
    futex: FutexWord,
}

/// How long one sleep lasts at most before the sleeper re-checks by itself. A wake-up consumed
/// by a process that was then killed is recovered within this time.
pub(crate) const SLEEP_SLICE: Duration = Duration::from_millis(200);

/// How long a waiter keeps polling (spinning, then yielding the CPU) before it sleeps in the
/// kernel. A `FUTEX_WAKE` that has to reach a sleeping process on the other CPU costs tens of
/// microseconds on a virtual machine (a pipe round trip measured 40 µs at p50 on the 2-core VM of
/// `docs/benchmarks.md`), while the other side of a queue usually answers within a few: polling
/// this long turns most waits into a cache-line transfer. Yielding rather than spinning after
/// the first microseconds hands the CPU to the peer when both share one core. See
/// `docs/protocol.md`, "Spinning and parking".
pub(crate) const POLL_FOR: Duration = Duration::from_micros(50);

/// Rounds of busy-waiting (doubling from 1 `pause`) before a waiter starts yielding.
const SPIN_ROUNDS: u32 = 4;

impl Semaphore {
    /// Mask of the count bits.
    pub const COUNT_MASK: u32 = (1 << 30) - 1;
    /// The largest count.
    pub const MAX_COUNT: u32 = Self::COUNT_MASK;
    /// State bit: the other side is gone.
    pub const DISCONNECTED: u32 = 1 << 30;
    /// State bit: closed.
    pub const CLOSED: u32 = 1 << 31;

    /// A semaphore with `count` units and no state bits (heap-backed use and tests).
    pub fn new(count: u32) -> Self {
        Self {
            futex: FutexWord::new(count & Self::COUNT_MASK),
        }
    }

    /// The underlying futex word.
    pub fn futex(&self) -> &FutexWord {
        &self.futex
    }

    /// The current count.
    pub fn count(&self) -> u32 {
        self.futex.load() & Self::COUNT_MASK
    }

    /// The state bits currently set.
    pub fn flags(&self) -> u32 {
        self.futex.load() & !Self::COUNT_MASK
    }

    /// Sets count and state bits at once (used when rebuilding after a crash).
    pub fn reset(&self, count: u32, flags: u32) {
        self.futex
            .store((count & Self::COUNT_MASK) | (flags & !Self::COUNT_MASK));
    }

    /// Adds `n` units without waking anyone (call [`wake`](Self::wake) after releasing any
    /// lock). The count saturates at [`MAX_COUNT`](Self::MAX_COUNT).
    pub fn post(&self, n: u32) {
        let mut cur = self.futex.load();
        loop {
            let count = ((cur & Self::COUNT_MASK) + n.min(Self::MAX_COUNT)).min(Self::MAX_COUNT);
            let new = (cur & !Self::COUNT_MASK) | count;
            match self
                .futex
                .word
                .compare_exchange_weak(cur, new, SeqCst, SeqCst)
            {
                Ok(_) => return,
                Err(actual) => cur = actual,
            }
        }
    }

    /// Takes one unit if there is one.
    pub fn try_wait(&self) -> bool {
        self.try_take(1) == 1
    }

    /// Takes up to `n` units, as many as there are; returns how many were taken.
    pub fn try_take(&self, n: u32) -> u32 {
        let mut cur = self.futex.load();
        loop {
            let count = cur & Self::COUNT_MASK;
            let take = count.min(n);
            if take == 0 {
                return 0;
            }
            match self
                .futex
                .word
                .compare_exchange_weak(cur, cur - take, SeqCst, SeqCst)
            {
                Ok(_) => return take,
                Err(actual) => cur = actual,
            }
        }
    }

    /// Sets state bits (no wake-up; see [`wake_all`](Self::wake_all)).
    pub fn set_flags(&self, flags: u32) {
        self.futex.word.fetch_or(flags & !Self::COUNT_MASK, SeqCst);
    }

    /// Takes one unit, waiting until there is one, a state bit is set or `deadline` passes.
    ///
    /// # Errors
    ///
    /// [`WaitError::Flagged`] when a state bit is set and no unit is left;
    /// [`WaitError::Timeout`] at the deadline.
    pub fn wait_deadline(&self, deadline: Option<Instant>) -> Result<(), WaitError> {
        loop {
            if self.try_wait() {
                return Ok(());
            }
            if self.flags() != 0 {
                return Err(WaitError::Flagged(self.flags()));
            }
            if !self.wait_available(deadline) {
                return Err(WaitError::Timeout);
            }
        }
    }

    /// Waits, without taking anything, until the count is non-zero or a state bit is set;
    /// returns false if `deadline` passed first. Spins briefly, then yields the CPU for up to
    /// `POLL_FOR` (50 µs) before sleeping, and sleeps at most
    /// one slice (200 ms) at a time so that a lost wake-up costs a delay, never a hang.
    pub fn wait_available(&self, deadline: Option<Instant>) -> bool {
        self.wait_available_sliced(deadline, SLEEP_SLICE)
    }

    /// [`wait_available`](Self::wait_available) with a chosen sleep slice.
    pub(crate) fn wait_available_sliced(&self, deadline: Option<Instant>, slice: Duration) -> bool {
        let mut spins = 0;
        let mut poll_until = None;
        loop {
            let w = self.futex.load();
            if w != 0 {
                return true;
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                return false;
            }
            if spins < SPIN_ROUNDS {
                // 1 + 2 + 4 + 8 pauses: well under a microsecond, enough for a peer that is
                // running on the other CPU and about to publish.
                for _ in 0..1u32 << spins {
                    futex::spin_loop();
                }
                spins += 1;
            } else if now < *poll_until.get_or_insert(now + POLL_FOR) {
                // Then give the CPU away between checks: if the peer shares this CPU, it runs
                // now instead of after our time slice.
                futex::yield_now();
            } else {
                let wake_at = match deadline {
                    Some(d) => d.min(now + slice),
                    None => now + slice,
                };
                self.futex.wait_while(w, Some(wake_at));
                if Instant::now() >= wake_at && self.futex.load() == 0 {
                    // A full slice passed without a change: report back so the caller can
                    // re-check conditions that live outside this word (liveness of peers).
                    return deadline.is_none_or(|d| Instant::now() < d);
                }
            }
        }
    }

    /// Wakes up to `n` sleepers, only if someone sleeps.
    pub fn wake(&self, n: u32) {
        self.futex.wake(n);
    }

    /// Wakes every sleeper, only if someone sleeps.
    pub fn wake_all(&self) {
        self.futex.wake_all();
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore")
            .field("count", &self.count())
            .field("flags", &format_args!("{:#x}", self.flags()))
            .field("waiters", &self.futex.waiters())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn post_wakes_a_sleeping_waiter() {
        let sem = Arc::new(Semaphore::new(0));
        let s2 = Arc::clone(&sem);
        let t = std::thread::spawn(move || s2.wait_deadline(None));
        std::thread::sleep(Duration::from_millis(50));
        sem.post(1);
        sem.wake(1);
        assert_eq!(t.join().unwrap(), Ok(()));
        assert_eq!(sem.count(), 0);
    }

    #[test]
    fn a_flag_ends_a_wait_once_the_count_is_drained() {
        let sem = Semaphore::new(1);
        sem.set_flags(Semaphore::CLOSED);
        assert_eq!(sem.wait_deadline(None), Ok(()));
        assert_eq!(
            sem.wait_deadline(None),
            Err(WaitError::Flagged(Semaphore::CLOSED))
        );
    }

    #[test]
    fn wait_times_out_no_earlier_than_its_deadline() {
        let sem = Semaphore::new(0);
        let start = Instant::now();
        let d = start + Duration::from_millis(30);
        assert_eq!(sem.wait_deadline(Some(d)), Err(WaitError::Timeout));
        assert!(start.elapsed() >= Duration::from_millis(30));
    }

    #[test]
    fn count_saturates_and_take_is_bounded() {
        let sem = Semaphore::new(0);
        sem.post(Semaphore::MAX_COUNT);
        sem.post(5);
        assert_eq!(sem.count(), Semaphore::MAX_COUNT);
        assert_eq!(sem.flags(), 0);
        sem.reset(3, Semaphore::DISCONNECTED);
        assert_eq!(sem.try_take(10), 3);
        assert_eq!(sem.try_take(1), 0);
        assert_eq!(sem.flags(), Semaphore::DISCONNECTED);
    }

    #[test]
    fn wake_skips_the_syscall_without_sleepers() {
        let w = FutexWord::new(0);
        assert_eq!(w.waiters(), 0);
        w.wake_all(); // nothing to wake; must not block or fail
        w.wait_while(1, None); // value differs: returns at once
        assert_eq!(w.waiters(), 0);
    }
}
