//! [`SharedDict`]: a fixed-capacity `String -> i64` map in one named segment, behind a robust
//! process-shared mutex, with Python's Manager-dict semantics: every call is atomic on its own.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use shmq::substrate::layout::Kind;
use shmq::substrate::segment::{AtomicRegion, DEFAULT_MODE, check_mode, create_named};
use shmq::{
    CreationMode, OpenError,
    substrate::segment::Segment,
    substrate::sync::{LockState, MutexGuard},
};

use crate::error::{AcquireError, DictError};
use crate::table::{COUNT_OFFSET, Geometry, LOCK_OFFSET, Table};

/// The geometry and permissions of a new dict.
///
/// # Examples
///
/// ```
/// let opts = shmq_dict::Options { capacity: 1000, max_key_len: 32, ..Default::default() };
/// assert_eq!(opts.mode, 0o600);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// How many keys fit; 1 to [`MAX_ENTRIES`](crate::MAX_ENTRIES). Every entry reserves room for
    /// a key of `max_key_len` bytes.
    pub capacity: usize,
    /// The longest key in bytes (UTF-8); 1 to [`MAX_KEY_LEN`](crate::MAX_KEY_LEN).
    pub max_key_len: usize,
    /// Permission bits of the segment (default `0o600`).
    pub mode: u32,
}

impl Default for Options {
    /// 256 keys of up to 64 bytes, mode `0o600`.
    fn default() -> Self {
        Options {
            capacity: 256,
            max_key_len: 64,
            mode: DEFAULT_MODE,
        }
    }
}

impl Options {
    fn geometry(&self) -> Result<Geometry, OpenError> {
        check_mode(self.mode)?;
        Geometry::new(self.capacity as u64, self.max_key_len as u64)
            .map_err(OpenError::InvalidOptions)
    }
}

/// A shared `String -> i64` dict: Python's `Manager().dict()` for counters, in one shared-memory
/// segment instead of a server process.
///
/// Each call ([`get`](Self::get), [`insert`](Self::insert), [`remove`](Self::remove),
/// [`add`](Self::add), [`snapshot`](Self::snapshot), …) takes the dict's lock, does its work and
/// releases it: it is atomic on its own. A read-modify-write made of two calls is not — another
/// process can write between them and its update is lost. Use [`add`](Self::add) (one atomic
/// read-modify-write) or [`lock`](Self::lock), whose guard offers the same operations inside
/// one critical section.
///
/// A process killed at any point (holding the lock included) leaves every entry with its old or
/// its new value; the next [`lock`](Self::lock) reports the death through
/// [`DictGuard::previous_owner_died`], and the dict keeps working. Single calls repair the
/// same way without reporting it.
///
/// Single calls ([`get`](Self::get), [`insert`](Self::insert), [`len`](Self::len), ...) have no
/// deadline: like a `multiprocessing` Manager dict's, they wait as long as the lock's holder
/// lives, however long it keeps the lock (a process inside a long `lock()` section, a stuck one,
/// or a lock word written to name a live thread, which cannot be told from a real holder).
/// Failing them after a fixed bound instead would turn ordinary contention into spurious
/// errors on every call. When a peer is not trusted to let go, take the lock with a deadline,
/// [`try_lock_for`](Self::try_lock_for) or [`try_lock_until`](Self::try_lock_until), and call
/// the same operations on the guard; [`inspect`](Self::inspect) never waits.
///
/// # Examples
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use shmq_dict::{Options, SharedDict};
///
/// let name = format!("shmq-doc-dict-{}", std::process::id());
/// let d = SharedDict::create(&name, &Options { capacity: 16, max_key_len: 16, ..Default::default() })?;
/// d.insert("count", 100)?;
///
/// // In another process: the same dict by name.
/// let other = SharedDict::open(&name)?;
/// {
///     let mut g = other.lock()?; // lock.acquire()
///     let v = g.get("count")?.unwrap_or(0);
///     g.insert("count", v - 1)?; // dic['count'] -= 1
/// } // lock.release()
/// assert_eq!(other.add("count", -1)?, 98); // the same in one call
/// assert_eq!(d.get("count")?, Some(98));
///
/// SharedDict::unlink(&name)?;
/// # Ok(())
/// # }
/// ```
pub struct SharedDict {
    seg: AtomicRegion,
    geo: Geometry,
}

/// What [`SharedDict::inspect`] reads from a dict without taking its lock.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DictInfo {
    /// How many keys fit.
    pub capacity: usize,
    /// The longest key in bytes.
    pub max_key_len: usize,
    /// The live-entry count as stored (exact when no operation is in flight and no holder died
    /// since the last repair).
    pub len: u64,
    /// The state of the dict's lock.
    pub lock: LockState,
}

impl SharedDict {
    /// Creates a named dict; fails if the name exists.
    ///
    /// # Errors
    ///
    /// [`OpenError::InvalidOptions`] (capacity or key length zero or too large, bad mode),
    /// [`OpenError::InvalidName`], [`OpenError::AlreadyExists`], [`OpenError::Io`].
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), shmq::OpenError> {
    /// use shmq_dict::{Options, SharedDict};
    /// let name = format!("shmq-doc-dict-create-{}", std::process::id());
    /// let d = SharedDict::create(&name, &Options::default())?;
    /// assert!(matches!(SharedDict::create(&name, &Options::default()), Err(shmq::OpenError::AlreadyExists(_))));
    /// assert_eq!((d.capacity(), d.max_key_len()), (256, 64));
    /// SharedDict::unlink(&name)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn create(name: &str, opts: &Options) -> Result<SharedDict, OpenError> {
        Self::create_with(name, opts, CreationMode::CreateExclusive)
    }

    /// Creates a named dict, with `mode` deciding what happens if the name exists.
    ///
    /// With [`CreationMode::OpenOrCreate`], processes that race get one creator and openers that
    /// wait for it; an existing dict of another capacity or key length is
    /// [`OpenError::Incompatible`].
    ///
    /// # Errors
    ///
    /// As [`create`](Self::create) and [`open`](Self::open).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmq::CreationMode;
    /// use shmq_dict::{Options, SharedDict};
    /// let name = format!("shmq-doc-dict-purge-{}", std::process::id());
    /// let d = SharedDict::create(&name, &Options::default())?;
    /// d.insert("old", 1)?;
    /// let fresh = SharedDict::create_with(&name, &Options::default(), CreationMode::PurgeAndCreate)?;
    /// assert!(fresh.is_empty()?);
    /// SharedDict::unlink(&name)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn create_with(
        name: &str,
        opts: &Options,
        mode: CreationMode,
    ) -> Result<SharedDict, OpenError> {
        let geo = opts.geometry()?;
        let create = || -> Result<SharedDict, OpenError> {
            let seg = AtomicRegion::create(name, &geo.params(), opts.mode, Table::init)?;
            Ok(SharedDict { seg, geo })
        };
        create_named(name, mode, create, Self::open)?.matching(opts)
    }

    /// [`create_with`](Self::create_with) with [`CreationMode::OpenOrCreate`].
    ///
    /// # Errors
    ///
    /// As [`create_with`](Self::create_with).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmq_dict::{Options, SharedDict};
    /// let name = format!("shmq-doc-dict-ooc-{}", std::process::id());
    /// let opts = Options { capacity: 4, max_key_len: 8, ..Default::default() };
    /// let a = SharedDict::open_or_create(&name, &opts)?;
    /// let b = SharedDict::open_or_create(&name, &opts)?;
    /// a.insert("k", 1)?;
    /// assert_eq!(b.get("k")?, Some(1));
    /// let other = Options { capacity: 5, ..opts };
    /// assert!(matches!(SharedDict::open_or_create(&name, &other), Err(shmq::OpenError::Incompatible(_))));
    /// SharedDict::unlink(&name)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn open_or_create(name: &str, opts: &Options) -> Result<SharedDict, OpenError> {
        Self::create_with(name, opts, CreationMode::OpenOrCreate)
    }

    fn matching(self, opts: &Options) -> Result<SharedDict, OpenError> {
        if self.geo.capacity != opts.capacity || self.geo.max_key_len != opts.max_key_len {
            return Err(OpenError::Incompatible(format!(
                "the existing dict has capacity {} and maximum key length {}, not {} and {}",
                self.geo.capacity, self.geo.max_key_len, opts.capacity, opts.max_key_len
            )));
        }
        Ok(self)
    }

    /// Opens an existing named dict, waiting briefly for a creator that is still writing it.
    ///
    /// # Errors
    ///
    /// [`OpenError::NotFound`], [`OpenError::InvalidName`], [`OpenError::Incompatible`] (another
    /// kind of object, such as a queue, or another layout version), [`OpenError::Corrupt`] (not
    /// a shmq segment, or a geometry that does not reproduce the segment's size),
    /// [`OpenError::Io`].
    ///
    /// # Examples
    ///
    /// ```
    /// let name = format!("shmq-doc-dict-missing-{}", std::process::id());
    /// assert!(matches!(shmq_dict::SharedDict::open(&name), Err(shmq::OpenError::NotFound(_))));
    /// assert!(matches!(shmq_dict::SharedDict::open("a/b"), Err(shmq::OpenError::InvalidName { .. })));
    /// ```
    pub fn open(name: &str) -> Result<SharedDict, OpenError> {
        let seg = AtomicRegion::open(name, Kind::Dict)?;
        let geo = Geometry::from_params(seg.params())?;
        // Every part must lie inside the mapping (the header already matched its length).
        Table::new(&seg, geo)?;
        Ok(SharedDict { seg, geo })
    }

    /// Reads a dict's geometry, entry count and lock state from its file, without mapping it
    /// and without taking its lock: it never waits for a holder and leaves an owner-died report
    /// for the next locker (what `shmq stat` shows).
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
    /// use shmq_dict::{Options, SharedDict};
    /// let name = format!("shmq-doc-dict-inspect-{}", std::process::id());
    /// let d = SharedDict::create(&name, &Options { capacity: 8, max_key_len: 8, ..Default::default() })?;
    /// d.insert("a", 1)?;
    /// let g = d.lock()?;
    /// let info = SharedDict::inspect(&name)?; // does not wait for the holder
    /// assert_eq!((info.capacity, info.max_key_len, info.len), (8, 8, 1));
    /// assert!(matches!(info.lock, LockState::Held { owner_alive: true, .. }));
    /// drop(g);
    /// assert_eq!(SharedDict::inspect(&name)?.lock, LockState::Free);
    /// SharedDict::unlink(&name)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn inspect(name: &str) -> Result<DictInfo, OpenError> {
        let info = shmq::substrate::segment::inspect(name)?;
        if info.kind() != Kind::Dict {
            return Err(OpenError::Incompatible(format!(
                "the segment holds a {}, not a dict",
                info.kind()
            )));
        }
        let geo = Geometry::from_params(info.params())?;
        Ok(DictInfo {
            capacity: geo.capacity,
            max_key_len: geo.max_key_len,
            len: info.word(COUNT_OFFSET)?,
            lock: info.lock_state(LOCK_OFFSET)?,
        })
    }

    /// Removes the name. Handles that are open keep working; the memory goes when the last one
    /// is dropped.
    ///
    /// # Errors
    ///
    /// [`OpenError::NotFound`], [`OpenError::InvalidName`], [`OpenError::Io`].
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmq_dict::{Options, SharedDict};
    /// let name = format!("shmq-doc-dict-unlink-{}", std::process::id());
    /// let d = SharedDict::create(&name, &Options::default())?;
    /// SharedDict::unlink(&name)?;
    /// d.insert("still", 1)?; // the open handle keeps working
    /// assert!(matches!(SharedDict::open(&name), Err(shmq::OpenError::NotFound(_))));
    /// assert!(matches!(SharedDict::unlink(&name), Err(shmq::OpenError::NotFound(_))));
    /// # Ok(())
    /// # }
    /// ```
    pub fn unlink(name: &str) -> Result<(), OpenError> {
        Segment::unlink(name)
    }

    /// The segment behind this dict.
    pub fn segment(&self) -> &Segment {
        self.seg.segment()
    }

    /// How many keys fit.
    pub fn capacity(&self) -> usize {
        self.geo.capacity
    }

    /// The longest key in bytes.
    pub fn max_key_len(&self) -> usize {
        self.geo.max_key_len
    }

    fn table(&self) -> Result<Table<'_>, DictError> {
        // Checked at open or create; the geometry is immutable, so this does not fail.
        Table::new(&self.seg, self.geo).map_err(|e| DictError::Corrupt(e.to_string()))
    }

    fn guard<'a>(
        &'a self,
        table: Table<'a>,
        locked: Result<MutexGuard<'a>, shmq::substrate::sync::LockError>,
        timed: bool,
    ) -> Result<DictGuard<'a>, AcquireError> {
        let mut inner = locked.map_err(|e| AcquireError::from_raw(e, timed))?;
        let died = inner.owner_died();
        if died {
            // The entries are consistent by construction (one commit store per operation);
            // only the derived count needs rebuilding before the lock is declared consistent.
            table
                .repair()
                .map_err(|e| AcquireError::Failed(format!("cannot repair the dict: {e}")))?;
            inner.make_consistent().map_err(|e| {
                AcquireError::Failed(format!("cannot mark the lock consistent: {e}"))
            })?;
        }
        Ok(DictGuard {
            table,
            _inner: inner,
            died,
        })
    }

    /// Takes the dict's lock, waiting as long as it takes. The guard offers every operation
    /// inside one critical section and releases the lock when dropped.
    ///
    /// If the previous holder died holding the lock, the lock is taken all the same, the dict is
    /// repaired, and [`DictGuard::previous_owner_died`] returns true.
    ///
    /// # Errors
    ///
    /// [`AcquireError::Deadlock`] if this thread holds the lock already, [`AcquireError::Failed`].
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmq_dict::{AcquireError, DictError, Options, SharedDict};
    /// let name = format!("shmq-doc-dict-lock-{}", std::process::id());
    /// let d = SharedDict::create(&name, &Options::default())?;
    /// let mut g = d.lock()?;
    /// assert!(!g.previous_owner_died());
    /// g.insert("a", 1)?;
    /// assert_eq!(g.add("a", 2)?, 3);
    /// // A single call from the thread that holds the lock is an error, not a hang.
    /// assert_eq!(d.get("a"), Err(DictError::Lock(AcquireError::Deadlock)));
    /// drop(g);
    /// assert_eq!(d.get("a")?, Some(3));
    /// SharedDict::unlink(&name)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn lock(&self) -> Result<DictGuard<'_>, AcquireError> {
        let table = self
            .table()
            .map_err(|e| AcquireError::Failed(e.to_string()))?;
        let locked = table.lock.lock();
        self.guard(table, locked, false)
    }

    /// Takes the lock if it is free now.
    ///
    /// # Errors
    ///
    /// [`AcquireError::WouldBlock`] if another owner holds it, and the errors of
    /// [`lock`](Self::lock).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmq_dict::{AcquireError, Options, SharedDict};
    /// let name = format!("shmq-doc-dict-try-{}", std::process::id());
    /// let d = SharedDict::create(&name, &Options::default())?;
    /// let g = d.try_lock()?;
    /// let other = SharedDict::open(&name)?;
    /// std::thread::scope(|s| {
    ///     s.spawn(|| assert_eq!(other.try_lock().unwrap_err(), AcquireError::WouldBlock));
    /// });
    /// drop(g);
    /// SharedDict::unlink(&name)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn try_lock(&self) -> Result<DictGuard<'_>, AcquireError> {
        let table = self
            .table()
            .map_err(|e| AcquireError::Failed(e.to_string()))?;
        let locked = table.lock.try_lock();
        self.guard(table, locked, false)
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
    /// use shmq_dict::{AcquireError, Options, SharedDict};
    /// let name = format!("shmq-doc-dict-for-{}", std::process::id());
    /// let d = SharedDict::create(&name, &Options::default())?;
    /// let g = d.lock()?;
    /// std::thread::scope(|s| {
    ///     s.spawn(|| {
    ///         let t = Instant::now();
    ///         assert_eq!(d.try_lock_for(Duration::from_millis(20)).unwrap_err(), AcquireError::Timeout);
    ///         assert!(t.elapsed() >= Duration::from_millis(20));
    ///     });
    /// });
    /// drop(g);
    /// assert!(d.try_lock_for(Duration::from_millis(20)).is_ok());
    /// SharedDict::unlink(&name)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn try_lock_for(&self, timeout: Duration) -> Result<DictGuard<'_>, AcquireError> {
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
    /// use shmq_dict::{Options, SharedDict};
    /// let name = format!("shmq-doc-dict-until-{}", std::process::id());
    /// let d = SharedDict::create(&name, &Options::default())?;
    /// let mut g = d.try_lock_until(Instant::now() + Duration::from_millis(10))?;
    /// g.insert("k", 7)?;
    /// assert_eq!(g.len()?, 1);
    /// drop(g);
    /// SharedDict::unlink(&name)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn try_lock_until(&self, deadline: Instant) -> Result<DictGuard<'_>, AcquireError> {
        let table = self
            .table()
            .map_err(|e| AcquireError::Failed(e.to_string()))?;
        let locked = table.lock.lock_until(deadline);
        self.guard(table, locked, true)
    }

    /// Runs `f` under the lock; a key is checked before the lock is taken.
    fn with<R>(
        &self,
        key: Option<&str>,
        f: impl FnOnce(&mut DictGuard<'_>) -> Result<R, DictError>,
    ) -> Result<R, DictError> {
        if let Some(key) = key {
            self.table()?.check_key(key)?;
        }
        f(&mut self.lock()?)
    }

    /// The value of `key`, if present.
    ///
    /// # Errors
    ///
    /// [`DictError::EmptyKey`], [`DictError::KeyTooLong`], [`DictError::Lock`],
    /// [`DictError::Corrupt`].
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmq_dict::{DictError, Options, SharedDict};
    /// let name = format!("shmq-doc-dict-get-{}", std::process::id());
    /// let d = SharedDict::create(&name, &Options { max_key_len: 4, ..Default::default() })?;
    /// assert_eq!(d.get("k")?, None);
    /// d.insert("k", -3)?;
    /// assert_eq!(d.get("k")?, Some(-3));
    /// assert_eq!(d.get(""), Err(DictError::EmptyKey));
    /// assert_eq!(d.get("12345"), Err(DictError::KeyTooLong { len: 5, max: 4 }));
    /// SharedDict::unlink(&name)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn get(&self, key: &str) -> Result<Option<i64>, DictError> {
        self.with(Some(key), |g| g.get(key))
    }

    /// Sets `key` to `value`; returns the previous value.
    ///
    /// # Errors
    ///
    /// [`DictError::Full`] for a new key when every entry holds a key, and the errors of
    /// [`get`](Self::get). The dict is unchanged.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmq_dict::{DictError, Options, SharedDict};
    /// let name = format!("shmq-doc-dict-insert-{}", std::process::id());
    /// let d = SharedDict::create(&name, &Options { capacity: 1, ..Default::default() })?;
    /// assert_eq!(d.insert("a", 1)?, None);
    /// assert_eq!(d.insert("a", 2)?, Some(1));
    /// assert_eq!(d.insert("b", 3), Err(DictError::Full { capacity: 1 }));
    /// assert_eq!(d.len()?, 1);
    /// SharedDict::unlink(&name)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn insert(&self, key: &str, value: i64) -> Result<Option<i64>, DictError> {
        self.with(Some(key), |g| g.insert(key, value))
    }

    /// Adds `delta` to the value of `key` (created at 0 if missing) in one atomic
    /// read-modify-write; returns the new value.
    ///
    /// # Errors
    ///
    /// [`DictError::Overflow`] if the sum leaves `i64`, and the errors of
    /// [`insert`](Self::insert). The dict is unchanged.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmq_dict::{DictError, Options, SharedDict};
    /// let name = format!("shmq-doc-dict-add-{}", std::process::id());
    /// let d = SharedDict::create(&name, &Options::default())?;
    /// assert_eq!(d.add("hits", 5)?, 5);
    /// assert_eq!(d.add("hits", -1)?, 4);
    /// assert_eq!(d.add("hits", i64::MAX), Err(DictError::Overflow { value: 4, delta: i64::MAX }));
    /// assert_eq!(d.get("hits")?, Some(4));
    /// SharedDict::unlink(&name)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn add(&self, key: &str, delta: i64) -> Result<i64, DictError> {
        self.with(Some(key), |g| g.add(key, delta))
    }

    /// Removes `key`; returns its value if it was present.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmq_dict::{Options, SharedDict};
    /// let name = format!("shmq-doc-dict-remove-{}", std::process::id());
    /// let d = SharedDict::create(&name, &Options::default())?;
    /// d.insert("k", 1)?;
    /// assert_eq!(d.remove("k")?, Some(1));
    /// assert_eq!(d.remove("k")?, None);
    /// assert!(!d.contains_key("k")?);
    /// SharedDict::unlink(&name)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn remove(&self, key: &str) -> Result<Option<i64>, DictError> {
        self.with(Some(key), |g| g.remove(key))
    }

    /// Whether `key` is present.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmq_dict::{Options, SharedDict};
    /// let name = format!("shmq-doc-dict-contains-{}", std::process::id());
    /// let d = SharedDict::create(&name, &Options::default())?;
    /// d.insert("k", 0)?;
    /// assert!(d.contains_key("k")? && !d.contains_key("j")?);
    /// SharedDict::unlink(&name)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn contains_key(&self, key: &str) -> Result<bool, DictError> {
        self.with(Some(key), |g| g.contains_key(key))
    }

    /// The number of keys.
    ///
    /// # Errors
    ///
    /// [`DictError::Lock`], [`DictError::Corrupt`].
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmq_dict::{Options, SharedDict};
    /// let name = format!("shmq-doc-dict-len-{}", std::process::id());
    /// let d = SharedDict::create(&name, &Options::default())?;
    /// assert!(d.is_empty()?);
    /// d.insert("a", 1)?;
    /// d.insert("b", 1)?;
    /// assert_eq!(d.len()?, 2);
    /// SharedDict::unlink(&name)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn len(&self) -> Result<usize, DictError> {
        self.with(None, |g| g.len())
    }

    /// Whether the dict holds no key.
    ///
    /// # Errors
    ///
    /// As [`len`](Self::len).
    pub fn is_empty(&self) -> Result<bool, DictError> {
        self.with(None, |g| g.is_empty())
    }

    /// Every key, in insertion order (Python's dict order: updating a key keeps its place;
    /// removing it and inserting it again puts it last).
    ///
    /// # Errors
    ///
    /// As [`len`](Self::len).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmq_dict::{Options, SharedDict};
    /// let name = format!("shmq-doc-dict-keys-{}", std::process::id());
    /// let d = SharedDict::create(&name, &Options::default())?;
    /// d.insert("b", 2)?;
    /// d.insert("a", 1)?;
    /// d.insert("b", 3)?;
    /// assert_eq!(d.keys()?, ["b", "a"]);
    /// SharedDict::unlink(&name)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn keys(&self) -> Result<Vec<String>, DictError> {
        self.with(None, |g| g.keys())
    }

    /// A copy of every entry in insertion order (as [`keys`](Self::keys)), taken in one
    /// critical section.
    ///
    /// # Errors
    ///
    /// As [`len`](Self::len).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmq_dict::{Options, SharedDict};
    /// let name = format!("shmq-doc-dict-entries-{}", std::process::id());
    /// let d = SharedDict::create(&name, &Options::default())?;
    /// d.insert("y", 2)?;
    /// d.insert("x", 1)?;
    /// assert_eq!(d.entries()?, [("y".to_string(), 2), ("x".to_string(), 1)]);
    /// SharedDict::unlink(&name)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn entries(&self) -> Result<Vec<(String, i64)>, DictError> {
        self.with(None, |g| g.entries())
    }

    /// Removes and returns the most recently inserted entry, `None` if the dict is empty
    /// (Python's `dict.popitem()`).
    ///
    /// # Errors
    ///
    /// As [`len`](Self::len).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmq_dict::{Options, SharedDict};
    /// let name = format!("shmq-doc-dict-pop-{}", std::process::id());
    /// let d = SharedDict::create(&name, &Options::default())?;
    /// d.insert("a", 1)?;
    /// d.insert("b", 2)?;
    /// assert_eq!(d.pop_last()?, Some(("b".to_string(), 2)));
    /// assert_eq!(d.pop_last()?, Some(("a".to_string(), 1)));
    /// assert_eq!(d.pop_last()?, None);
    /// SharedDict::unlink(&name)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn pop_last(&self) -> Result<Option<(String, i64)>, DictError> {
        self.with(None, |g| g.pop_last())
    }

    /// A copy of every entry, taken in one critical section.
    ///
    /// # Errors
    ///
    /// As [`len`](Self::len).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::collections::BTreeMap;
    /// use shmq_dict::{Options, SharedDict};
    /// let name = format!("shmq-doc-dict-snapshot-{}", std::process::id());
    /// let d = SharedDict::create(&name, &Options::default())?;
    /// d.insert("x", 1)?;
    /// d.insert("y", -1)?;
    /// assert_eq!(d.snapshot()?, BTreeMap::from([("x".to_string(), 1), ("y".to_string(), -1)]));
    /// SharedDict::unlink(&name)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn snapshot(&self) -> Result<BTreeMap<String, i64>, DictError> {
        self.with(None, |g| g.snapshot())
    }

    /// Removes every key, with one store.
    ///
    /// # Errors
    ///
    /// As [`len`](Self::len).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmq_dict::{Options, SharedDict};
    /// let name = format!("shmq-doc-dict-clear-{}", std::process::id());
    /// let d = SharedDict::create(&name, &Options::default())?;
    /// d.insert("x", 1)?;
    /// d.clear()?;
    /// assert_eq!((d.len()?, d.get("x")?), (0, None));
    /// SharedDict::unlink(&name)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn clear(&self) -> Result<(), DictError> {
        self.with(None, |g| g.clear())
    }
}

/// Runs `create` and, if the name exists, opens it instead; bounded, because each round either
/// creates, opens, or saw the name vanish between the two (someone unlinked it).
impl fmt::Debug for SharedDict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedDict")
            .field("segment", &self.seg)
            .field("capacity", &self.geo.capacity)
            .field("max_key_len", &self.geo.max_key_len)
            .finish()
    }
}

/// Holds a [`SharedDict`]'s lock: every operation through it runs in one critical section.
/// Dropping it releases the lock. Not `Send`: the thread that locked must unlock.
///
/// # Examples
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use shmq_dict::{Options, SharedDict};
/// let name = format!("shmq-doc-guard-{}", std::process::id());
/// let d = SharedDict::create(&name, &Options::default())?;
/// d.insert("count", 100)?;
/// let mut g = d.lock()?;
/// let v = g.get("count")?.unwrap_or(0);
/// g.insert("count", v - 1)?; // nobody can write between the get and the insert
/// assert_eq!(g.snapshot()?.get("count"), Some(&99));
/// drop(g);
/// SharedDict::unlink(&name)?;
/// # Ok(())
/// # }
/// ```
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct DictGuard<'a> {
    table: Table<'a>,
    _inner: MutexGuard<'a>,
    died: bool,
}

impl DictGuard<'_> {
    /// Whether the previous holder of the lock died holding it (SIGKILL inside a critical
    /// section, say). The dict was repaired before this guard was handed out: every entry holds
    /// its old or its new value, and the lock keeps working. What the caller may want to check
    /// is its own multi-call invariant (a read-modify-write the dead holder did half of).
    ///
    /// # Examples
    ///
    /// A thread that ends holding the lock counts as a dead owner, like a killed process:
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmq_dict::{Options, SharedDict};
    /// let name = format!("shmq-doc-guard-died-{}", std::process::id());
    /// let d = SharedDict::create(&name, &Options::default())?;
    /// d.insert("count", 100)?;
    /// std::thread::scope(|s| {
    ///     s.spawn(|| {
    ///         let mut g = d.lock().unwrap();
    ///         let v = g.get("count").unwrap().unwrap();
    ///         g.insert("count", v - 1).unwrap();
    ///         std::mem::forget(g); // dies holding the lock
    ///     });
    /// });
    /// let g = d.lock()?;
    /// assert!(g.previous_owner_died());
    /// assert_eq!(g.get("count")?, Some(99));
    /// drop(g);
    /// assert!(!d.lock()?.previous_owner_died()); // repaired, and reported once
    /// SharedDict::unlink(&name)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn previous_owner_died(&self) -> bool {
        self.died
    }

    /// As [`SharedDict::get`].
    ///
    /// # Errors
    ///
    /// As [`SharedDict::get`], without [`DictError::Lock`].
    pub fn get(&self, key: &str) -> Result<Option<i64>, DictError> {
        self.table.get(key)
    }

    /// As [`SharedDict::insert`].
    ///
    /// # Errors
    ///
    /// As [`SharedDict::insert`], without [`DictError::Lock`].
    pub fn insert(&mut self, key: &str, value: i64) -> Result<Option<i64>, DictError> {
        self.table.insert(key, value)
    }

    /// As [`SharedDict::add`].
    ///
    /// # Errors
    ///
    /// As [`SharedDict::add`], without [`DictError::Lock`].
    pub fn add(&mut self, key: &str, delta: i64) -> Result<i64, DictError> {
        self.table.add(key, delta)
    }

    /// As [`SharedDict::remove`].
    ///
    /// # Errors
    ///
    /// As [`SharedDict::remove`], without [`DictError::Lock`].
    pub fn remove(&mut self, key: &str) -> Result<Option<i64>, DictError> {
        self.table.remove(key)
    }

    /// As [`SharedDict::contains_key`].
    ///
    /// # Errors
    ///
    /// As [`SharedDict::contains_key`], without [`DictError::Lock`].
    pub fn contains_key(&self, key: &str) -> Result<bool, DictError> {
        Ok(self.table.get(key)?.is_some())
    }

    /// As [`SharedDict::len`].
    ///
    /// # Errors
    ///
    /// [`DictError::Corrupt`].
    pub fn len(&self) -> Result<usize, DictError> {
        self.table.len()
    }

    /// As [`SharedDict::is_empty`].
    ///
    /// # Errors
    ///
    /// [`DictError::Corrupt`].
    pub fn is_empty(&self) -> Result<bool, DictError> {
        Ok(self.table.len()? == 0)
    }

    /// As [`SharedDict::keys`].
    ///
    /// # Errors
    ///
    /// [`DictError::Corrupt`].
    pub fn keys(&self) -> Result<Vec<String>, DictError> {
        self.table.keys()
    }

    /// As [`SharedDict::entries`].
    ///
    /// # Errors
    ///
    /// [`DictError::Corrupt`].
    pub fn entries(&self) -> Result<Vec<(String, i64)>, DictError> {
        self.table.entries()
    }

    /// As [`SharedDict::pop_last`].
    ///
    /// # Errors
    ///
    /// [`DictError::Corrupt`].
    pub fn pop_last(&mut self) -> Result<Option<(String, i64)>, DictError> {
        self.table.pop_last()
    }

    /// As [`SharedDict::snapshot`].
    ///
    /// # Errors
    ///
    /// [`DictError::Corrupt`].
    pub fn snapshot(&self) -> Result<BTreeMap<String, i64>, DictError> {
        self.table.snapshot()
    }

    /// As [`SharedDict::clear`].
    ///
    /// # Errors
    ///
    /// [`DictError::Corrupt`].
    pub fn clear(&mut self) -> Result<(), DictError> {
        self.table.clear()
    }

    /// How many keys fit.
    pub fn capacity(&self) -> usize {
        self.table.capacity()
    }

    /// The longest key in bytes.
    pub fn max_key_len(&self) -> usize {
        self.table.max_key_len()
    }
}

impl fmt::Debug for DictGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DictGuard")
            .field("previous_owner_died", &self.died)
            .finish_non_exhaustive()
    }
}
