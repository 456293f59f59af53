//! A process-shared, robust pthread mutex placed in shared memory (the raw half), and the guard
//! that unlocks it (the safe half), after lock_api's split of `RawMutex` and `Mutex`.

use std::cell::UnsafeCell;
use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::time::Instant;

use crossbeam_utils::Backoff;

use super::atomic::{AtomicI32, Ordering::Relaxed};

use super::semaphore::POLL_FOR;
use crate::sys::{self, LockFail, Locked};

/// A robust, process-shared pthread mutex that lives inside a shared segment.
///
/// It occupies one 64-byte-aligned, 64-byte block (glibc's `pthread_mutex_t` is 40 bytes on
/// x86-64). A `RawMutex` is never constructed by value: it is reached through a reference into a
/// mapped segment (see [`Segment::mutex_at`](crate::Segment::mutex_at)) and initialised once by the
/// segment's creator.
///
/// When a thread dies holding it (a process killed with SIGKILL, say), the kernel marks it, and
/// the next [`lock`](Self::lock) succeeds with a guard whose
/// [`owner_died`](MutexGuard::owner_died) is true. Unless that guard calls
/// [`make_consistent`](MutexGuard::make_consistent) before it is dropped, the mutex becomes
/// permanently unusable ([`LockError::NotRecoverable`]), as POSIX prescribes.
///
/// # Examples
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let seg = shmq::Segment::anonymous(4096)?;
/// let m = seg.init_mutex(128)?;
/// let guard = m.lock()?;
/// assert!(!guard.owner_died());
/// assert!(m.try_lock().is_err());
/// drop(guard);
/// assert!(m.try_lock().is_ok());
/// # Ok(())
/// # }
/// ```
#[repr(C, align(64))]
pub struct RawMutex {
    inner: UnsafeCell<MaybeUninit<libc::pthread_mutex_t>>,
}

const _: () = assert!(std::mem::size_of::<RawMutex>() == 64);

// SAFETY: a pthread mutex is made to be used concurrently from many threads (and, process-shared,
// from many processes); all access goes through the pthread functions.
unsafe impl Sync for RawMutex {}
// SAFETY: as above; the mutex holds no thread-local state.
unsafe impl Send for RawMutex {}

/// Why a lock attempt did not return a guard.
#[derive(Debug, thiserror::Error)]
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
    /// Any other failure of the pthread call.
    #[error("lock failed: {0}")]
    Io(#[from] io::Error),
}

impl From<LockFail> for LockError {
    fn from(f: LockFail) -> Self {
        match f {
            LockFail::WouldBlock => LockError::WouldBlock,
            LockFail::NotRecoverable => LockError::NotRecoverable,
            LockFail::Deadlock => LockError::Deadlock,
            LockFail::Io(e) => LockError::Io(e),
        }
    }
}

impl RawMutex {
    fn raw(&self) -> *mut libc::pthread_mutex_t {
        self.inner.get().cast()
    }

    /// Initialises the mutex as process-shared and robust.
    ///
    /// # Safety
    ///
    /// Call exactly once, by the creator of the segment, before any other thread or process can
    /// reach this mutex; re-initialising a mutex in use is undefined behaviour.
    pub unsafe fn init(&self) -> io::Result<()> {
        // SAFETY: `raw()` points to 64 writable, aligned bytes; exclusivity is the caller's
        // contract.
        unsafe { sys::robust_mutex_init(self.raw()) }
    }

    fn guard(&self, l: Locked) -> MutexGuard<'_> {
        MutexGuard {
            mutex: self,
            owner_died: l == Locked::OwnerDied,
            _not_send: PhantomData,
        }
    }

    /// Takes the lock without waiting.
    ///
    /// # Errors
    ///
    /// [`LockError::WouldBlock`] when someone else holds it, and the errors of [`lock`](Self::lock).
    pub fn try_lock(&self) -> Result<MutexGuard<'_>, LockError> {
        // SAFETY: a `RawMutex` is only reachable once initialised (contract of `init`), and the
        // borrow of `self` keeps its memory mapped.
        let l = unsafe { sys::mutex_trylock(self.raw()) }?;
        Ok(self.guard(l))
    }

    /// Takes the lock, spinning briefly and then sleeping in the kernel until it is free.
    ///
    /// # Errors
    ///
    /// [`LockError::NotRecoverable`] after an unrepaired owner death, [`LockError::Deadlock`]
    /// when this thread holds it already, [`LockError::Io`] for anything else.
    pub fn lock(&self) -> Result<MutexGuard<'_>, LockError> {
        if let Some(g) = self.spin(None)? {
            return Ok(g);
        }
        // SAFETY: as in `try_lock`.
        let l = unsafe { sys::mutex_lock(self.raw()) }?;
        Ok(self.guard(l))
    }

    /// Takes the lock, waiting at most until `deadline` (on the monotonic clock).
    ///
    /// # Errors
    ///
    /// [`LockError::WouldBlock`] when the deadline passes, and the errors of [`lock`](Self::lock).
    pub fn lock_until(&self, deadline: Instant) -> Result<MutexGuard<'_>, LockError> {
        if let Some(g) = self.spin(Some(deadline))? {
            return Ok(g);
        }
        // SAFETY: as in `try_lock`.
        let l = unsafe { sys::mutex_lock_until(self.raw(), deadline) }?;
        Ok(self.guard(l))
    }

    /// A hint, read without writing: whether the lock word is non-zero (held, or held and
    /// waited for). glibc's `pthread_mutex_t` starts with its futex word `__lock` (owner TID
    /// plus the `FUTEX_WAITERS`/`FUTEX_OWNER_DIED` bits for a robust mutex; 0 when free), which
    /// glibc itself only accesses atomically (after an owner death it reads `FUTEX_OWNER_DIED`
    /// until the next lock repairs it, so the spin gives way to the blocking lock, which does).
    /// A stale or wrong answer costs a failed or a skipped `try_lock`, never correctness: only
    /// the pthread calls take the lock.
    fn looks_locked(&self) -> bool {
        // SAFETY: `inner` is 64-aligned and at least 4 bytes long, so its first 4 bytes are a
        // valid, aligned `AtomicI32`; every writer of that word (glibc, the kernel's robust-list
        // handling) writes it atomically, so an atomic load is no data race.
        let word = unsafe { &*self.inner.get().cast::<AtomicI32>() };
        word.load(Relaxed) != 0
    }

    /// Rounds of `try_lock` with exponential backoff, then yielding the CPU, for up to
    /// [`POLL_FOR`] in all: a futex sleep and wake-up cost microseconds (tens across CPUs of a
    /// virtual machine), while critical sections here are a copy of one message or a batch.
    /// Never polls past `deadline`.
    fn spin(&self, deadline: Option<Instant>) -> Result<Option<MutexGuard<'_>>, LockError> {
        let backoff = Backoff::new();
        let mut poll_until = None;
        loop {
            // Test, then test-and-set: a `try_lock` is a compare-and-swap that takes the cache
            // line away from the holder, which then stalls on its own unlock.
            if !self.looks_locked() {
                match self.try_lock() {
                    Ok(g) => return Ok(Some(g)),
                    Err(LockError::WouldBlock) => {}
                    Err(e) => return Err(e),
                }
            }
            if !backoff.is_completed() {
                backoff.snooze();
                continue;
            }
            let now = Instant::now();
            let until = *poll_until.get_or_insert(now + POLL_FOR);
            if now >= until || deadline.is_some_and(|d| now >= d) {
                return Ok(None);
            }
            std::thread::yield_now();
        }
    }
}

impl fmt::Debug for RawMutex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawMutex").finish_non_exhaustive()
    }
}

/// Proof that the calling thread holds a [`RawMutex`]; unlocks it on drop.
///
/// A guard is not `Send`: a pthread mutex must be unlocked by the thread that locked it.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct MutexGuard<'a> {
    mutex: &'a RawMutex,
    owner_died: bool,
    _not_send: PhantomData<*const ()>,
}

// SAFETY: sharing `&MutexGuard` between threads only allows reading `owner_died`.
unsafe impl Sync for MutexGuard<'_> {}

impl MutexGuard<'_> {
    /// Whether the previous owner died holding the lock and the state it protects still waits
    /// for repair (until [`make_consistent`](Self::make_consistent) is called).
    pub fn owner_died(&self) -> bool {
        self.owner_died
    }

    /// Declares the protected state repaired. Without this, dropping a guard whose
    /// [`owner_died`](Self::owner_died) is true leaves the mutex permanently unusable.
    ///
    /// # Errors
    ///
    /// The errno of `pthread_mutex_consistent`.
    pub fn make_consistent(&mut self) -> io::Result<()> {
        if self.owner_died {
            // SAFETY: this thread holds the mutex after an EOWNERDEAD lock.
            unsafe { sys::mutex_consistent(self.mutex.raw()) }?;
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
        // SAFETY: the guard exists only while this thread holds the mutex. Unlock of a held
        // mutex cannot fail, so its result carries nothing to act on.
        let _ = unsafe { sys::mutex_unlock(self.mutex.raw()) };
    }
}

impl fmt::Debug for MutexGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MutexGuard")
            .field("owner_died", &self.owner_died)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh() -> Box<RawMutex> {
        // SAFETY: an all-zero pthread_mutex_t is valid storage to initialise.
        let m: Box<RawMutex> = Box::new(unsafe { std::mem::zeroed() });
        // SAFETY: fresh heap memory, not shared yet.
        unsafe { m.init().unwrap() };
        m
    }

    #[test]
    fn relock_by_the_same_thread_is_an_error_not_a_hang() {
        let m = fresh();
        let _g = m.lock().unwrap();
        assert!(matches!(m.try_lock(), Err(LockError::Deadlock)));
        assert!(matches!(m.lock(), Err(LockError::Deadlock)));
        let t = Instant::now() + std::time::Duration::from_millis(10);
        assert!(matches!(m.lock_until(t), Err(LockError::Deadlock)));
    }

    #[test]
    fn lock_until_times_out_while_another_thread_holds_it() {
        let m = fresh();
        let g = m.lock().unwrap();
        std::thread::scope(|s| {
            s.spawn(|| {
                let t = Instant::now();
                let d = t + std::time::Duration::from_millis(50);
                assert!(matches!(m.lock_until(d), Err(LockError::WouldBlock)));
                assert!(t.elapsed() >= std::time::Duration::from_millis(50));
            });
        });
        drop(g);
    }

    #[test]
    fn thread_death_is_reported_and_repairable() {
        let m = fresh();
        std::thread::scope(|s| {
            // A thread that exits holding the lock: glibc's robust list reports it as dead.
            s.spawn(|| std::mem::forget(m.lock().unwrap()));
        });
        let mut g = m.lock().unwrap();
        assert!(g.owner_died());
        g.make_consistent().unwrap();
        assert!(!g.owner_died());
        drop(g);
        assert!(!m.lock().unwrap().owner_died());
    }

    #[test]
    fn unrepaired_owner_death_makes_the_lock_unrecoverable() {
        let m = fresh();
        std::thread::scope(|s| {
            s.spawn(|| std::mem::forget(m.lock().unwrap()));
        });
        let g = m.lock().unwrap();
        assert!(g.owner_died());
        drop(g);
        assert!(matches!(m.lock(), Err(LockError::NotRecoverable)));
    }
}
