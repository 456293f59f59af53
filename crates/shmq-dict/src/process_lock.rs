//! [`ProcessLock`]: a named lock that any process or thread may release, Python's
//! `multiprocessing.Lock` exactly (a lock segment of format 1: a holder word and a futex word).

use std::fmt;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::time::{Duration, Instant};

use shmq::substrate::layout::{HEADER_SIZE, Kind, LINE, Params};
use shmq::substrate::segment::{
    AtomicRegion, DEFAULT_MODE, check_mode, create_named, process_alive, process_start_time,
};
use shmq::substrate::sync::FutexWord;
use shmq::{CreationMode, OpenError, substrate::segment::Segment, substrate::sync::LockState};

use crate::error::AcquireError;

/// `Header::aux` of a lock segment that holds a [`ProcessLock`] (0 is [`Lock`](crate::Lock)).
pub(crate) const PROCESS_LOCK_FORMAT: u64 = 1;
/// Index (in the region's words) of the holder word: 0 when free, else the holder's token.
const HOLDER: usize = 0;
/// Index of the futex word, bumped by every release.
const RELEASES: usize = 1;
/// Longest sleep of a waiter before it checks whether the holder still lives.
const LIVENESS_SLICE: Duration = Duration::from_millis(20);

pub(crate) fn process_lock_params() -> Params {
    let size = (HEADER_SIZE + 2 * LINE) as u64;
    Params {
        kind: Kind::Lock,
        capacity: 0,
        message_size: 0,
        slot_stride: 0,
        aux: PROCESS_LOCK_FORMAT,
        total_size: size,
    }
}

fn check_params(p: &Params) -> Result<(), OpenError> {
    if p.aux == 0 {
        return Err(OpenError::Incompatible(
            "the segment holds a lock owned by a thread (shmq_dict::Lock, C's shmq_lock, \
             Python's shmq.RobustMutex), not a lock any process may release"
                .into(),
        ));
    }
    if *p != process_lock_params() {
        return Err(OpenError::Corrupt(format!(
            "lock header ({p}) does not match the process-lock layout ({})",
            process_lock_params()
        )));
    }
    Ok(())
}

/// This process's token: its pid in the low 32 bits, the low 32 bits of its start time above.
/// Computed once per process (a forked child has another pid and computes its own).
fn my_token() -> u64 {
    static CACHE: AtomicU64 = AtomicU64::new(0);
    let pid = std::process::id();
    let cached = CACHE.load(Relaxed);
    if cached != 0 && cached as u32 == pid {
        return cached;
    }
    let start = process_start_time(pid).unwrap_or(0) & 0xffff_ffff;
    let token = (start << 32) | u64::from(pid);
    CACHE.store(token, Relaxed);
    token
}

/// Whether the process named by `token` still runs (a zombie does not).
fn token_alive(token: u64) -> bool {
    let pid = token as u32;
    let start = token >> 32;
    process_alive(pid, 0)
        && match process_start_time(pid) {
            Ok(s) => start == 0 || s & 0xffff_ffff == start,
            Err(_) => false,
        }
}

/// How an acquisition went: whether the lock was taken over from a holder process that died.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct Acquired {
    /// The previous holder process ended (exited or was killed) without releasing: the lock
    /// was taken over from it. Whatever the lock protects may be half-updated.
    pub previous_owner_died: bool,
}

/// Why [`ProcessLock::release`] did nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReleaseError {
    /// Nobody holds the lock.
    #[error("release of a lock that is not held")]
    NotHeld,
}

/// A named lock shared by processes that any process or thread may release: Python's
/// `multiprocessing.Lock` (a semaphore of one), with the robust repair of shmq's locks.
///
/// The holder is a process, not a thread: [`acquire`](Self::acquire) records the calling
/// process, and [`release`](Self::release) from any thread of any process frees the lock. A
/// second `acquire` from the holder waits (for another thread or process to release), as
/// `multiprocessing.Lock` does. If the holder process ends without releasing (killed with
/// SIGKILL, or exited), the next acquirer takes the lock over and is told
/// ([`Acquired::previous_owner_died`]): a waiter notices within 20 ms.
///
/// [`Lock`](crate::Lock) is the other lock of this crate: a robust mutex owned by the thread
/// that locked it (released by dropping its guard), which C's `shmq_lock_*` use. The two live
/// in segments of kind lock with different formats; opening one as the other is
/// [`OpenError::Incompatible`].
///
/// # Examples
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use shmq_dict::ProcessLock;
/// let name = format!("shmq-doc-plock-{}", std::process::id());
/// let lock = ProcessLock::create(&name)?;
/// let other = ProcessLock::open(&name)?; // usually in another process
/// assert!(!lock.acquire()?.previous_owner_died);
/// assert!(other.try_acquire().is_err());
/// std::thread::scope(|s| {
///     s.spawn(|| other.release().unwrap()); // another thread releases
/// });
/// assert!(lock.try_acquire().is_ok());
/// lock.release()?;
/// ProcessLock::unlink(&name)?;
/// # Ok(())
/// # }
/// ```
pub struct ProcessLock {
    seg: AtomicRegion,
}

impl ProcessLock {
    /// Creates a named lock (mode `0o600`); fails if the name exists.
    ///
    /// # Errors
    ///
    /// [`OpenError::InvalidName`], [`OpenError::AlreadyExists`], [`OpenError::Io`].
    pub fn create(name: &str) -> Result<ProcessLock, OpenError> {
        Self::create_with(name, CreationMode::CreateExclusive, DEFAULT_MODE)
    }

    /// Creates a named lock with permission bits `perm`, with `mode` deciding what happens if
    /// the name exists.
    ///
    /// # Errors
    ///
    /// As [`create`](Self::create) and [`open`](Self::open), and
    /// [`OpenError::InvalidOptions`] for `perm` bits outside `0o777`.
    pub fn create_with(
        name: &str,
        mode: CreationMode,
        perm: u32,
    ) -> Result<ProcessLock, OpenError> {
        check_mode(perm)?;
        let create = || -> Result<ProcessLock, OpenError> {
            Ok(ProcessLock {
                seg: AtomicRegion::create(name, &process_lock_params(), perm, |_| Ok(()))?,
            })
        };
        create_named(name, mode, create, Self::open)
    }

    /// Opens an existing named lock.
    ///
    /// # Errors
    ///
    /// [`OpenError::NotFound`], [`OpenError::InvalidName`], [`OpenError::Incompatible`]
    /// (another kind of object, a thread-owned [`Lock`](crate::Lock), another layout
    /// version), [`OpenError::Corrupt`], [`OpenError::Io`].
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmq_dict::{Lock, ProcessLock};
    /// let name = format!("shmq-doc-plock-open-{}", std::process::id());
    /// let _mutex = Lock::create(&name)?;
    /// assert!(matches!(ProcessLock::open(&name), Err(shmq::OpenError::Incompatible(_))));
    /// Lock::unlink(&name)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn open(name: &str) -> Result<ProcessLock, OpenError> {
        let seg = AtomicRegion::open(name, Kind::Lock)?;
        check_params(seg.params())?;
        let lock = ProcessLock { seg };
        lock.futex()?;
        Ok(lock)
    }

    /// Removes the name. Handles that are open keep working.
    ///
    /// # Errors
    ///
    /// [`OpenError::NotFound`], [`OpenError::InvalidName`], [`OpenError::Io`].
    pub fn unlink(name: &str) -> Result<(), OpenError> {
        Segment::unlink(name)
    }

    /// The segment behind this lock.
    pub fn segment(&self) -> &Segment {
        self.seg.segment()
    }

    fn holder(&self) -> &AtomicU64 {
        &self.seg.words()[HOLDER]
    }

    fn futex(&self) -> Result<&FutexWord, OpenError> {
        self.seg.futex(RELEASES)
    }

    fn releases(&self) -> Result<&FutexWord, AcquireError> {
        self.futex()
            .map_err(|e| AcquireError::Failed(e.to_string()))
    }

    /// One attempt: takes a free lock, or one whose holder died if `check_holder`.
    fn attempt(&self, check_holder: bool) -> Option<Acquired> {
        let me = my_token();
        let held = match self.holder().compare_exchange(0, me, Acquire, Relaxed) {
            Ok(_) => {
                return Some(Acquired {
                    previous_owner_died: false,
                });
            }
            Err(h) => h,
        };
        if check_holder && !token_alive(held) {
            // COMMIT: one exchange from the dead holder's token to ours; a racing acquirer
            // that wins instead leaves us waiting.
            if self
                .holder()
                .compare_exchange(held, me, Acquire, Relaxed)
                .is_ok()
            {
                return Some(Acquired {
                    previous_owner_died: true,
                });
            }
        }
        None
    }

    /// Takes the lock if it is free now, or if its holder process has ended.
    ///
    /// # Errors
    ///
    /// [`AcquireError::WouldBlock`] if a live process holds it.
    pub fn try_acquire(&self) -> Result<Acquired, AcquireError> {
        self.attempt(true).ok_or(AcquireError::WouldBlock)
    }

    /// Takes the lock, waiting as long as it takes.
    ///
    /// # Errors
    ///
    /// [`AcquireError::Failed`] if the segment is damaged.
    pub fn acquire(&self) -> Result<Acquired, AcquireError> {
        self.acquire_until(None)
    }

    /// Takes the lock, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`AcquireError::Timeout`] if it stayed held.
    pub fn acquire_for(&self, timeout: Duration) -> Result<Acquired, AcquireError> {
        self.acquire_until(Instant::now().checked_add(timeout))
    }

    /// Takes the lock, waiting at most until `deadline` (`None`: without end).
    ///
    /// # Errors
    ///
    /// [`AcquireError::Timeout`] if it stayed held.
    pub fn acquire_until(&self, deadline: Option<Instant>) -> Result<Acquired, AcquireError> {
        let releases = self.releases()?;
        // The holder's liveness is read from /proc only when no release came for a while.
        let mut check_holder = false;
        loop {
            let seen = releases.load();
            if let Some(a) = self.attempt(check_holder) {
                return Ok(a);
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                // A last look at a dead holder before giving up.
                return self.attempt(true).ok_or(AcquireError::Timeout);
            }
            let wake = now + LIVENESS_SLICE;
            let wake = deadline.map_or(wake, |d| d.min(wake));
            // SYNC POINT: a release stores 0 into the holder word, then bumps `releases` and
            // wakes; `seen` was read before the attempt, so a release after it ends this sleep.
            releases.wait_while(seen, Some(wake));
            check_holder = releases.load() == seen;
        }
    }

    /// Releases the lock, whoever holds it (any thread of any process).
    ///
    /// # Errors
    ///
    /// [`ReleaseError::NotHeld`] if nobody holds it (nothing changes).
    pub fn release(&self) -> Result<(), ReleaseError> {
        let holder = self.holder();
        let mut cur = holder.load(Relaxed);
        loop {
            if cur == 0 {
                return Err(ReleaseError::NotHeld);
            }
            // COMMIT: the holder word becomes 0.
            match holder.compare_exchange_weak(cur, 0, Release, Relaxed) {
                Ok(_) => break,
                Err(h) => cur = h,
            }
        }
        if let Ok(f) = self.futex() {
            f.fetch_add(1);
            f.wake(1);
        }
        Ok(())
    }

    /// The pid of the holder process, `None` if the lock is free (a snapshot).
    pub fn holder_pid(&self) -> Option<u32> {
        match self.holder().load(Acquire) {
            0 => None,
            t => Some(t as u32),
        }
    }

    /// The lock's state read from its file without taking it: free, or held by a process
    /// (`owner_tid` is then the holder's pid, `owner_alive` whether it still runs).
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open).
    pub fn inspect(name: &str) -> Result<LockState, OpenError> {
        let info = shmq::substrate::segment::inspect(name)?;
        if info.kind() != Kind::Lock {
            return Err(OpenError::Incompatible(format!(
                "the segment holds a {}, not a lock",
                info.kind()
            )));
        }
        check_params(info.params())?;
        Ok(state_of(
            info.word(AtomicRegion::WORDS_OFFSET + 8 * HOLDER)?,
        ))
    }
}

/// The [`LockState`] of a process lock whose holder word is `token`.
pub(crate) fn state_of(token: u64) -> LockState {
    match token {
        0 => LockState::Free,
        t => LockState::Held {
            owner_tid: t as u32,
            owner_alive: token_alive(t),
            repair_pending: false,
        },
    }
}

impl fmt::Debug for ProcessLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessLock")
            .field("segment", &self.seg)
            .field("holder_pid", &self.holder_pid())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn anon() -> ProcessLock {
        ProcessLock {
            seg: AtomicRegion::anonymous(&process_lock_params(), |_| Ok(())).unwrap(),
        }
    }

    #[test]
    fn any_thread_releases_and_a_second_acquire_waits() {
        let l = anon();
        assert!(!l.acquire().unwrap().previous_owner_died);
        assert_eq!(l.holder_pid(), Some(std::process::id()));
        assert_eq!(
            l.acquire_for(Duration::from_millis(30)),
            Err(AcquireError::Timeout)
        );
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(50));
                l.release().unwrap();
            });
            let t = Instant::now();
            assert!(l.acquire().is_ok(), "woken by the other thread's release");
            assert!(t.elapsed() >= Duration::from_millis(40));
        });
        l.release().unwrap();
        assert_eq!(l.release(), Err(ReleaseError::NotHeld));
        assert_eq!(l.holder_pid(), None);
    }

    #[test]
    fn a_dead_holder_is_taken_over_and_reported() {
        let l = anon();
        // A pid that runs no process (pid_max is at most 2^22).
        l.holder().store((1 << 32) | 0x7fff_fff0, Relaxed);
        assert!(!state_of(l.holder().load(Relaxed)).eq(&LockState::Free));
        let a = l.try_acquire().unwrap();
        assert!(a.previous_owner_died);
        l.release().unwrap();
        l.holder().store((1 << 32) | 0x7fff_fff0, Relaxed);
        let a = l.acquire_for(Duration::from_secs(5)).unwrap();
        assert!(a.previous_owner_died);
        // A live holder (this process) is not taken over.
        assert_eq!(l.try_acquire(), Err(AcquireError::WouldBlock));
    }
}
