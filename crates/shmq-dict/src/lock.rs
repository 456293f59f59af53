//! [`Lock`]: a named cross-process robust mutex owned by the thread that locked it
//! (a robust process-shared mutex in a segment of kind `Lock`).

use std::fmt;
use std::time::{Duration, Instant};

use shmq::substrate::layout::{Kind, Params};
use shmq::substrate::segment::{AtomicRegion, DEFAULT_MODE, check_mode, create_named};
use shmq::{
    CreationMode, OpenError,
    substrate::segment::Segment,
    substrate::sync::{LockState, MutexGuard, RawMutex},
};

use crate::error::AcquireError;
use crate::process_lock::PROCESS_LOCK_FORMAT;
use crate::table::{LOCK_OFFSET, LOCK_SEGMENT_SIZE};

const _: () = assert!(LOCK_OFFSET == AtomicRegion::LOCK_OFFSET);

fn check_params(p: &Params) -> Result<(), OpenError> {
    if p.aux == PROCESS_LOCK_FORMAT {
        return Err(OpenError::Incompatible(
            "the segment holds a lock any process may release (shmq_dict::ProcessLock, \
             Python's shmq.Lock), not a lock owned by a thread"
                .into(),
        ));
    }
    if *p != params() {
        return Err(OpenError::Corrupt(format!(
            "lock header ({p}) does not match the lock layout ({})",
            params()
        )));
    }
    Ok(())
}

fn params() -> Params {
    Params {
        kind: Kind::Lock,
        capacity: 0,
        message_size: 0,
        slot_stride: 0,
        aux: 0,
        total_size: LOCK_SEGMENT_SIZE,
    }
}

/// A named lock shared by processes, owned by the thread that locked it (a robust mutex). For
/// Python's `multiprocessing.Lock`, which any process may release, see
/// [`ProcessLock`](crate::ProcessLock).
///
/// Only the thread that took it can release it (by dropping the [`LockGuard`]); taking it twice
/// from one thread is [`AcquireError::Deadlock`], not a hang. If its holder dies (a process
/// killed with SIGKILL), the next locker gets the lock with
/// [`LockGuard::previous_owner_died`] true and the lock keeps working.
///
/// # Examples
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use shmq_dict::{AcquireError, Lock};
///
/// let name = format!("shmq-doc-lock-{}", std::process::id());
/// let lock = Lock::create(&name)?;
/// let other = Lock::open(&name)?; // usually in another process
/// let guard = lock.lock()?;
/// std::thread::scope(|s| {
///     s.spawn(|| assert_eq!(other.try_lock().unwrap_err(), AcquireError::WouldBlock));
/// });
/// drop(guard); // release
/// assert!(other.try_lock().is_ok());
/// Lock::unlink(&name)?;
/// # Ok(())
/// # }
/// ```
pub struct Lock {
    seg: AtomicRegion,
}

impl Lock {
    /// Creates a named lock (mode `0o600`); fails if the name exists.
    ///
    /// # Errors
    ///
    /// [`OpenError::InvalidName`], [`OpenError::AlreadyExists`], [`OpenError::Io`].
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), shmq::OpenError> {
    /// use shmq_dict::Lock;
    /// let name = format!("shmq-doc-lock-create-{}", std::process::id());
    /// let _lock = Lock::create(&name)?;
    /// assert!(matches!(Lock::create(&name), Err(shmq::OpenError::AlreadyExists(_))));
    /// assert!(matches!(Lock::create("no/slash"), Err(shmq::OpenError::InvalidName { .. })));
    /// Lock::unlink(&name)?;
    /// assert!(matches!(Lock::unlink(&name), Err(shmq::OpenError::NotFound(_))));
    /// # Ok(())
    /// # }
    /// ```
    pub fn create(name: &str) -> Result<Lock, OpenError> {
        Self::create_with(name, CreationMode::CreateExclusive, DEFAULT_MODE)
    }

    /// Creates a named lock with permission bits `perm`, with `mode` deciding what happens if
    /// the name exists.
    ///
    /// # Errors
    ///
    /// As [`create`](Self::create) and [`open`](Self::open), and
    /// [`OpenError::InvalidOptions`] for `perm` bits outside `0o777`.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), shmq::OpenError> {
    /// use shmq::CreationMode;
    /// use shmq_dict::Lock;
    /// let name = format!("shmq-doc-lock-with-{}", std::process::id());
    /// let a = Lock::create_with(&name, CreationMode::OpenOrCreate, 0o600)?;
    /// let b = Lock::create_with(&name, CreationMode::OpenOrCreate, 0o600)?;
    /// drop((a, b));
    /// Lock::unlink(&name)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn create_with(name: &str, mode: CreationMode, perm: u32) -> Result<Lock, OpenError> {
        check_mode(perm)?;
        let create = || -> Result<Lock, OpenError> {
            Ok(Lock {
                seg: AtomicRegion::create(name, &params(), perm, |_| Ok(()))?,
            })
        };
        create_named(name, mode, create, Self::open)
    }

    /// Opens the named lock, or creates it if there is none; racing processes get one lock.
    ///
    /// # Errors
    ///
    /// As [`create`](Self::create) and [`open`](Self::open).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmq_dict::Lock;
    /// let name = format!("shmq-doc-lock-ooc-{}", std::process::id());
    /// let a = Lock::open_or_create(&name)?;
    /// let b = Lock::open_or_create(&name)?;
    /// let g = a.lock()?;
    /// std::thread::scope(|s| { s.spawn(|| assert!(b.try_lock().is_err())); });
    /// drop(g);
    /// Lock::unlink(&name)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn open_or_create(name: &str) -> Result<Lock, OpenError> {
        Self::create_with(name, CreationMode::OpenOrCreate, DEFAULT_MODE)
    }

    /// Opens an existing named lock.
    ///
    /// # Errors
    ///
    /// [`OpenError::NotFound`], [`OpenError::InvalidName`], [`OpenError::Incompatible`] (another
    /// kind of object or layout version), [`OpenError::Corrupt`], [`OpenError::Io`].
    ///
    /// # Examples
    ///
    /// ```
    /// let name = format!("shmq-doc-lock-missing-{}", std::process::id());
    /// assert!(matches!(shmq_dict::Lock::open(&name), Err(shmq::OpenError::NotFound(_))));
    /// ```
    pub fn open(name: &str) -> Result<Lock, OpenError> {
        let seg = AtomicRegion::open(name, Kind::Lock)?;
        check_params(seg.params())?;
        Ok(Lock { seg })
    }

    /// The state of the named lock, read from its file without taking it: it never waits for
    /// the holder, and a holder's death stays reported to the next locker (what `shmq stat`
    /// shows). A [`ProcessLock`](crate::ProcessLock)'s segment is read too (as
    /// [`ProcessLock::inspect`](crate::ProcessLock::inspect)): its holder is a process, and
    /// `owner_tid` is that process's pid.
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmq::substrate::sync::LockState;
    /// use shmq_dict::Lock;
    /// let name = format!("shmq-doc-lock-inspect-{}", std::process::id());
    /// let lock = Lock::create(&name)?;
    /// assert_eq!(Lock::inspect(&name)?, LockState::Free);
    /// let g = lock.lock()?;
    /// assert!(matches!(Lock::inspect(&name)?, LockState::Held { owner_alive: true, .. }));
    /// drop(g);
    /// Lock::unlink(&name)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn inspect(name: &str) -> Result<LockState, OpenError> {
        let info = shmq::substrate::segment::inspect(name)?;
        if info.kind() != Kind::Lock {
            return Err(OpenError::Incompatible(format!(
                "the segment holds a {}, not a lock",
                info.kind()
            )));
        }
        if info.params().aux == PROCESS_LOCK_FORMAT {
            return crate::ProcessLock::inspect(name);
        }
        check_params(info.params())?;
        info.lock_state(LOCK_OFFSET)
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

    fn mutex(&self) -> Result<&RawMutex, AcquireError> {
        Ok(self.seg.lock())
    }

    fn guard<'a>(
        locked: Result<MutexGuard<'a>, shmq::substrate::sync::LockError>,
        timed: bool,
    ) -> Result<LockGuard<'a>, AcquireError> {
        let inner = locked.map_err(|e| AcquireError::from_raw(e, timed))?;
        Ok(LockGuard {
            died: inner.owner_died(),
            inner,
        })
    }

    /// Takes the lock, waiting as long as it takes.
    ///
    /// # Errors
    ///
    /// [`AcquireError::Deadlock`] if this thread holds it already, [`AcquireError::Failed`].
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmq_dict::{AcquireError, Lock};
    /// let name = format!("shmq-doc-lock-lock-{}", std::process::id());
    /// let lock = Lock::create(&name)?;
    /// let g = lock.lock()?;
    /// assert_eq!(lock.lock().unwrap_err(), AcquireError::Deadlock); // not a hang
    /// drop(g);
    /// assert!(lock.try_lock().is_ok());
    /// Lock::unlink(&name)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn lock(&self) -> Result<LockGuard<'_>, AcquireError> {
        Self::guard(self.mutex()?.lock(), false)
    }

    /// Takes the lock if it is free now.
    ///
    /// # Errors
    ///
    /// [`AcquireError::WouldBlock`] if another owner holds it, and the errors of
    /// [`lock`](Self::lock).
    pub fn try_lock(&self) -> Result<LockGuard<'_>, AcquireError> {
        Self::guard(self.mutex()?.try_lock(), false)
    }

    /// Takes the lock, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`AcquireError::Timeout`] if it stayed held, and the errors of [`lock`](Self::lock).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::{Duration, Instant};
    /// use shmq_dict::{AcquireError, Lock};
    /// let name = format!("shmq-doc-lock-for-{}", std::process::id());
    /// let lock = Lock::create(&name)?;
    /// let g = lock.lock()?;
    /// std::thread::scope(|s| {
    ///     s.spawn(|| {
    ///         let t = Instant::now();
    ///         assert_eq!(lock.try_lock_for(Duration::from_millis(20)).unwrap_err(), AcquireError::Timeout);
    ///         assert!(t.elapsed() >= Duration::from_millis(20));
    ///     });
    /// });
    /// assert_eq!(lock.lock().unwrap_err(), AcquireError::Deadlock);
    /// drop(g);
    /// Lock::unlink(&name)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn try_lock_for(&self, timeout: Duration) -> Result<LockGuard<'_>, AcquireError> {
        match Instant::now().checked_add(timeout) {
            Some(deadline) => self.try_lock_until(deadline),
            None => self.lock(),
        }
    }

    /// Takes the lock, waiting at most until `deadline` (monotonic clock).
    ///
    /// # Errors
    ///
    /// [`AcquireError::Timeout`] if it stayed held, and the errors of [`lock`](Self::lock).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::{Duration, Instant};
    /// use shmq_dict::Lock;
    /// let name = format!("shmq-doc-lock-until-{}", std::process::id());
    /// let lock = Lock::create(&name)?;
    /// let g = lock.try_lock_until(Instant::now() + Duration::from_millis(10))?;
    /// assert!(!g.previous_owner_died());
    /// drop(g);
    /// Lock::unlink(&name)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn try_lock_until(&self, deadline: Instant) -> Result<LockGuard<'_>, AcquireError> {
        Self::guard(self.mutex()?.lock_until(deadline), true)
    }
}

impl fmt::Debug for Lock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lock").field("segment", &self.seg).finish()
    }
}

/// Holds a [`Lock`]; releases it when dropped. Not `Send`: the thread that locked must unlock.
///
/// If [`previous_owner_died`](Self::previous_owner_died) is true, whatever the lock protects may
/// be half-updated: repair it while holding this guard. The lock is marked consistent when the
/// guard is dropped, so a repairer that dies too leaves the next locker told again.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct LockGuard<'a> {
    inner: MutexGuard<'a>,
    died: bool,
}

impl LockGuard<'_> {
    /// Whether the previous holder died holding the lock (killed inside its critical section).
    ///
    /// # Examples
    ///
    /// A thread that ends holding the lock counts as a dead owner, like a killed process:
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmq_dict::Lock;
    /// let name = format!("shmq-doc-lock-died-{}", std::process::id());
    /// let lock = Lock::create(&name)?;
    /// std::thread::scope(|s| {
    ///     s.spawn(|| std::mem::forget(lock.lock().unwrap()));
    /// });
    /// let g = lock.lock()?;
    /// assert!(g.previous_owner_died()); // repair what the lock protects, then drop
    /// drop(g);
    /// assert!(!lock.lock()?.previous_owner_died());
    /// Lock::unlink(&name)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn previous_owner_died(&self) -> bool {
        self.died
    }
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        // Declares the protected state repaired; without it POSIX makes the mutex unusable.
        // It fails only if this thread does not hold the lock, which the guard rules out, and
        // a drop has no caller to report to.
        let _ = self.inner.make_consistent();
    }
}

impl fmt::Debug for LockGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard")
            .field("previous_owner_died", &self.died)
            .finish()
    }
}
