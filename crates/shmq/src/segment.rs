//! One mapped region of shared memory: a named POSIX shared-memory object (the default), a file
//! mapped with memmap2, or an anonymous shared mapping inherited by forked children.
//!
//! A `Segment` creates, opens, maps and unlinks, and (inside the crate only) hands out
//! references to the shared types of [`layout`] and [`sync`](crate::sync) at checked offsets.
//!
//! The public face of this module is safe by construction: [`inspect`] reads a segment's header
//! and words from its file without mapping it or taking any lock, and [`AtomicRegion`] maps the
//! segments whose memory is only ever accessed atomically (dicts and locks, crate `shmq-dict`).
//! Raw access to a mapping ([`Segment`]'s offsets and slices) stays inside this crate, where
//! the rings' slots are read and written through atomics, and read in place only by a
//! zero-copy reader that holds its ring's lock.
//!
//! Submodules: `inspection` (the reads above), `region` ([`AtomicRegion`]), and for the
//! large-message module the mapping of one side segment (`blob`) and its streaming copy
//! (`stream`), kept here because they are unsafe code.

#![allow(unsafe_code)]

use std::fmt;
use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use crate::error::OpenError;
use crate::layout::{self, HEADER_SIZE, Header, HeaderError, Kind, Params, RingControl};
use crate::sync::atomic::{AtomicU32, AtomicU64};
use crate::sync::{FutexWord, RawMutex, Semaphore};
use crate::sys;

pub use crate::limits::{DEFAULT_MODE, MAX_NAME_LEN};
pub(crate) use blob::Blob;
pub use inspection::{Inspection, check_is_segment, inspect, inspect_within};
pub use region::AtomicRegion;

mod blob;
mod inspection;
mod region;
mod stream;

/// How long an opener waits for a segment's creator to finish writing it before reporting it as
/// corrupt (a creator that died half-way leaves such a segment behind).
pub const READY_WAIT: Duration = Duration::from_secs(1);

/// What to do when creating a named object whose name may already exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CreationMode {
    /// Fail with [`OpenError::AlreadyExists`] if the name exists.
    #[default]
    CreateExclusive,
    /// Unlink whatever has the name, then create.
    PurgeAndCreate,
    /// Open the existing object if there is one (checking that it matches), else create it.
    OpenOrCreate,
}

/// Checks permission bits for a new segment: only `0o777` may be set.
///
/// # Errors
///
/// [`OpenError::InvalidOptions`] naming the mode.
pub fn check_mode(mode: u32) -> Result<(), OpenError> {
    if mode & !0o777 != 0 {
        return Err(OpenError::InvalidOptions(format!(
            "mode {mode:#o} has bits outside 0o777"
        )));
    }
    Ok(())
}

/// Creates a named object according to `mode`, the one place that implements the three
/// [`CreationMode`]s for every kind of object. `create` makes the object exclusively (failing
/// with [`OpenError::AlreadyExists`] if the name is taken); `open` opens an existing one.
///
/// With [`CreationMode::OpenOrCreate`], racing processes get one creator and openers that wait
/// for it (up to [`READY_WAIT`]); a name that vanishes between a failed create and the
/// open (someone unlinked it) is tried again, a bounded number of times.
///
/// # Errors
///
/// [`OpenError::InvalidName`], and whatever `create` or `open` return.
///
/// # Examples
///
/// ```
/// # fn main() -> Result<(), shmq::OpenError> {
/// use shmq::substrate::segment::create_named;
/// use shmq::{CreationMode, Options, Queue};
/// let name = format!("shmq-doc-create-named-{}", std::process::id());
/// let opts = Options { capacity: 2, message_size: 8, ..Default::default() };
/// let make = || Queue::create(&name, &opts);
/// let a = create_named(&name, CreationMode::OpenOrCreate, make, Queue::open)?;
/// let b = create_named(&name, CreationMode::OpenOrCreate, make, Queue::open)?;
/// a.put(b"x").unwrap();
/// assert_eq!(b.len(), 1);
/// let c = create_named(&name, CreationMode::PurgeAndCreate, make, Queue::open)?;
/// assert_eq!(c.len(), 0);
/// Queue::unlink(&name)?;
/// # Ok(())
/// # }
/// ```
pub fn create_named<T>(
    name: &str,
    mode: CreationMode,
    mut create: impl FnMut() -> Result<T, OpenError>,
    open: impl Fn(&str) -> Result<T, OpenError>,
) -> Result<T, OpenError> {
    validate_name(name)?;
    match mode {
        CreationMode::CreateExclusive => create(),
        CreationMode::PurgeAndCreate => {
            match Segment::unlink(name) {
                Ok(()) | Err(OpenError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
            create()
        }
        CreationMode::OpenOrCreate => {
            let mut last = None;
            for _ in 0..100 {
                match create() {
                    Err(OpenError::AlreadyExists(_)) => {}
                    other => return other,
                }
                match open(name) {
                    Err(e @ OpenError::NotFound(_)) => last = Some(e),
                    other => return other,
                }
            }
            Err(last.unwrap_or_else(|| OpenError::NotFound(name.to_owned())))
        }
    }
}

/// Types that may be referenced inside a shared mapping.
///
/// # Safety
///
/// An implementor is `#[repr(C)]`, holds no pointers, references or handles, accepts every bit
/// pattern as a valid value, and is made only of atomics (and padding), so that a shared
/// reference to bytes that another process writes concurrently is sound: every read is an
/// atomic load, every write an atomic store or read-modify-write.
pub(crate) unsafe trait Shared: Sync {}

// SAFETY: atomics of plain integers accept every bit pattern and are only accessed atomically.
unsafe impl Shared for AtomicU32 {}
// SAFETY: as above.
unsafe impl Shared for AtomicU64 {}
// SAFETY: one AtomicU64 and three AtomicU32 (plus padding); every bit pattern is a state the
// lock handles or reports as corrupt, never undefined behaviour.
unsafe impl Shared for RawMutex {}
// SAFETY: two AtomicU32.
unsafe impl Shared for FutexWord {}
// SAFETY: one FutexWord.
unsafe impl Shared for Semaphore {}
// SAFETY: atomics only.
unsafe impl Shared for Header {}
// SAFETY: made of Shared fields and padding.
unsafe impl Shared for RingControl {}
// SAFETY: a Shared value plus padding.
unsafe impl<T: Shared> Shared for layout::Line<T> {}

/// Where a segment's memory comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backing {
    /// A POSIX shared-memory object, `/dev/shm/NAME` on Linux.
    Named(String),
    /// A regular file.
    File(PathBuf),
    /// An anonymous shared mapping, reachable only by forked children.
    Anonymous,
}

enum Map {
    /// Made by `sys::mmap_shared`; unmapped in `Segment::drop`.
    Raw,
    /// Owned by memmap2, which unmaps it when dropped.
    File(#[allow(dead_code, reason = "held for its Drop")] memmap2::MmapRaw),
}

/// One mapped shared-memory region.
///
/// Its public face is inspection and removal: [`len`](Self::len), [`backing`](Self::backing),
/// [`creator`](Self::creator), [`unlink`](Self::unlink). Reading and writing the mapping is
/// reserved to this crate (the types built on it: [`Queue`](crate::Queue),
/// [`PipeEnd`](crate::PipeEnd), [`AtomicRegion`]), so safe code cannot race a slot being copied
/// under a lock.
///
/// # Examples
///
/// ```
/// # fn main() -> Result<(), shmq::OpenError> {
/// use shmq::substrate::segment::{Backing, Segment};
/// use shmq::{Options, Queue};
///
/// let name = format!("shmq-doc-segment-{}", std::process::id());
/// let q = Queue::create(&name, &Options { capacity: 4, message_size: 8, ..Default::default() })?;
/// let seg: &Segment = q.segment();
/// assert_eq!(seg.backing(), &Backing::Named(name.clone()));
/// assert_eq!(seg.creator(), (std::process::id(), true));
/// Segment::unlink(&name)?;
/// assert!(matches!(Segment::unlink(&name), Err(shmq::OpenError::NotFound(_))));
/// # Ok(())
/// # }
/// ```
pub struct Segment {
    ptr: NonNull<u8>,
    len: usize,
    map: Map,
    backing: Backing,
}

// SAFETY: the mapping is plain memory; every access to it goes through `Shared` types (atomics
// only) or through raw pointers under a ring's lock.
unsafe impl Send for Segment {}
// SAFETY: as above.
unsafe impl Sync for Segment {}

/// Checks a segment name: 1 to 200 bytes of `[A-Za-z0-9._-]`, and not `.` or `..`.
///
/// # Errors
///
/// [`OpenError::InvalidName`] with the reason.
///
/// # Examples
///
/// ```
/// assert!(shmq::substrate::segment::validate_name("jobs-1.q").is_ok());
/// assert!(shmq::substrate::segment::validate_name("a/b").is_err());
/// assert!(shmq::substrate::segment::validate_name("..").is_err());
/// ```
pub fn validate_name(name: &str) -> Result<(), OpenError> {
    let bad = |reason: &'static str| {
        Err(OpenError::InvalidName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("the name is empty");
    }
    if name.len() > MAX_NAME_LEN {
        return bad("the name is longer than 200 bytes");
    }
    if name == "." || name == ".." {
        return bad("`.` and `..` are not names");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return bad("only ASCII letters, digits, `.`, `_` and `-` are allowed");
    }
    Ok(())
}

fn map_io(e: io::Error, what: &str) -> OpenError {
    match e.kind() {
        io::ErrorKind::NotFound => OpenError::NotFound(what.to_owned()),
        io::ErrorKind::AlreadyExists => OpenError::AlreadyExists(what.to_owned()),
        _ if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
            // O_NOFOLLOW met a symbolic link.
            OpenError::NotASegment {
                name: what.to_owned(),
                file_type: "symbolic link",
            }
        }
        _ => OpenError::System {
            what: what.to_owned(),
            source: e,
        },
    }
}

/// Checks that an opened file is a regular file, and returns its size.
fn regular_size(fd: BorrowedFd<'_>, what: &str) -> Result<u64, OpenError> {
    match sys::file_kind(fd).map_err(|e| map_io(e, what))? {
        Ok(size) => Ok(size),
        Err(file_type) => Err(OpenError::NotASegment {
            name: what.to_owned(),
            file_type,
        }),
    }
}

/// Registers the fork hook that refreshes the lock's per-thread identity in a forked child
/// before any segment exists: a hook registered while a `fork` runs its handlers (the pipe's
/// `prepare` handler takes a lock) would not run for that fork.
fn ensure_fork_hook() {
    sys::fork_generation();
}

fn check_len(len: u64) -> Result<usize, OpenError> {
    if len < HEADER_SIZE as u64 {
        return Err(OpenError::InvalidOptions(format!(
            "a segment needs at least {HEADER_SIZE} bytes, not {len}"
        )));
    }
    if len > layout::MAX_SEGMENT_SIZE {
        return Err(OpenError::InvalidOptions(format!(
            "segment of {len} bytes exceeds the maximum {}",
            layout::MAX_SEGMENT_SIZE
        )));
    }
    usize::try_from(len)
        .map_err(|_| OpenError::InvalidOptions("size exceeds the address space".into()))
}

impl Segment {
    /// Creates a named shared-memory object of `len` bytes (zeroed) with permission `mode`,
    /// failing if the name exists. The space is reserved with `fallocate`, so a full `/dev/shm`
    /// is an error here rather than a `SIGBUS` later.
    ///
    /// # Errors
    ///
    /// [`OpenError::InvalidName`], [`OpenError::AlreadyExists`], [`OpenError::InvalidOptions`]
    /// for a size below the header or above the maximum, [`OpenError::Io`] (`ENOSPC`, …).
    pub(crate) fn create(name: &str, len: u64, mode: u32) -> Result<Fresh, OpenError> {
        ensure_fork_hook();
        validate_name(name)?;
        let len = check_len(len)?;
        let fd = sys::shm_create(name, mode).map_err(|e| map_io(e, name))?;
        let made = (|| {
            sys::fchmod(fd.as_fd(), mode)?;
            sys::allocate(fd.as_fd(), len as u64)?;
            sys::mmap_shared(Some(fd.as_fd()), len)
        })();
        match made {
            Ok(ptr) => Ok(Fresh(Some(Segment {
                ptr,
                len,
                map: Map::Raw,
                backing: Backing::Named(name.to_owned()),
            }))),
            Err(e) => {
                // Do not leave a half-made object behind.
                let _ = sys::shm_unlink(name);
                Err(map_io(e, name))
            }
        }
    }

    /// Opens and maps an existing named object without looking at its contents. The open never
    /// blocks and never follows a symbolic link, and anything but a regular file is refused
    /// before it is mapped. A zero-length object (its creator is between the open and
    /// `fallocate`) is waited for up to [`READY_WAIT`].
    ///
    /// # Errors
    ///
    /// [`OpenError::NotFound`], [`OpenError::InvalidName`], [`OpenError::NotASegment`] for a
    /// FIFO, directory, link or device, [`OpenError::Corrupt`] for an object that stays empty or
    /// is smaller than a header, [`OpenError::System`].
    pub(crate) fn open_raw(name: &str) -> Result<Segment, OpenError> {
        ensure_fork_hook();
        validate_name(name)?;
        let fd = sys::shm_open(name, true).map_err(|e| map_io(e, name))?;
        let len = wait_for_size(fd.as_fd(), name)?;
        let ptr = sys::mmap_shared(Some(fd.as_fd()), len).map_err(|e| map_io(e, name))?;
        Ok(Segment {
            ptr,
            len,
            map: Map::Raw,
            backing: Backing::Named(name.to_owned()),
        })
    }

    /// Creates a regular file of `len` bytes (zeroed, exclusive, with `mode`) and maps it shared.
    ///
    /// # Errors
    ///
    /// As [`create`](Self::create), for a path.
    pub(crate) fn create_file(path: &Path, len: u64, mode: u32) -> Result<Fresh, OpenError> {
        ensure_fork_hook();
        let len = check_len(len)?;
        let shown = path.display().to_string();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)
            .map_err(|e| map_io(e, &shown))?;
        let made = (|| {
            sys::allocate(file.as_fd(), len as u64)?;
            memmap2::MmapRaw::map_raw(&file)
        })();
        match made {
            Ok(map) => Ok(Fresh(Some(Segment::from_mmap(
                map,
                Backing::File(path.to_owned()),
            )))),
            Err(e) => {
                let _ = std::fs::remove_file(path);
                Err(map_io(e, &shown))
            }
        }
    }

    /// Opens and maps an existing file without looking at its contents: without blocking, and
    /// only a regular file (a symbolic link to one is followed: the path is the caller's).
    ///
    /// # Errors
    ///
    /// As [`open_raw`](Self::open_raw), for a path.
    pub(crate) fn open_file_raw(path: &Path) -> Result<Segment, OpenError> {
        ensure_fork_hook();
        let shown = path.display().to_string();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
            .open(path)
            .map_err(|e| map_io(e, &shown))?;
        let fd: OwnedFd = file.into();
        wait_for_size(fd.as_fd(), &shown)?;
        let map = memmap2::MmapRaw::map_raw(&fd).map_err(|e| map_io(e, &shown))?;
        Ok(Segment::from_mmap(map, Backing::File(path.to_owned())))
    }

    fn from_mmap(map: memmap2::MmapRaw, backing: Backing) -> Segment {
        let ptr = NonNull::new(map.as_mut_ptr()).unwrap_or(NonNull::dangling());
        Segment {
            ptr,
            len: map.len(),
            map: Map::File(map),
            backing,
        }
    }

    /// An anonymous shared mapping of `len` zeroed bytes. Children forked after this call share
    /// it with the parent; nothing else can reach it.
    ///
    /// # Errors
    ///
    /// [`OpenError::InvalidOptions`] for a bad size, [`OpenError::Io`] if `mmap` fails.
    pub(crate) fn anonymous(len: u64) -> Result<Fresh, OpenError> {
        ensure_fork_hook();
        let len = check_len(len)?;
        let ptr = sys::mmap_shared(None, len).map_err(|e| map_io(e, "anonymous mapping"))?;
        Ok(Fresh(Some(Segment {
            ptr,
            len,
            map: Map::Raw,
            backing: Backing::Anonymous,
        })))
    }

    /// Removes a named object. Processes that have it mapped keep using it; the memory is freed
    /// when the last of them unmaps it.
    ///
    /// # Errors
    ///
    /// [`OpenError::NotFound`], [`OpenError::InvalidName`], [`OpenError::System`].
    pub fn unlink(name: &str) -> Result<(), OpenError> {
        validate_name(name)?;
        sys::shm_unlink(name).map_err(|e| map_io(e, name))
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: a segment holds at least a header.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Where the memory comes from.
    pub fn backing(&self) -> &Backing {
        &self.backing
    }

    /// The random id its creator gave this segment (header offset 96): it tells two segments
    /// of the same name (or two anonymous ones) apart, and names an anonymous queue's side
    /// segments (`.shmq-anon-<id, 16 hex digits>.big.*` in `/dev/shm`).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), shmq::OpenError> {
    /// let opts = shmq::Options { capacity: 2, message_size: 8, ..Default::default() };
    /// let (a, b) = (shmq::Queue::anonymous(&opts)?, shmq::Queue::anonymous(&opts)?);
    /// assert_ne!(a.segment().instance_id(), b.segment().instance_id());
    /// assert_ne!(a.segment().instance_id(), 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn instance_id(&self) -> u64 {
        self.header().instance_id()
    }

    /// A reference to a `T` at `offset`.
    ///
    /// # Errors
    ///
    /// [`OpenError::Corrupt`] if `offset` is misaligned for `T` or the value would reach past the
    /// end of the segment.
    pub(crate) fn at<T: Shared>(&self, offset: usize) -> Result<&T, OpenError> {
        self.slice_at::<T>(offset, 1).map(|s| &s[0])
    }

    /// A slice of `n` values of `T` starting at `offset`.
    ///
    /// # Errors
    ///
    /// As [`at`](Self::at).
    pub(crate) fn slice_at<T: Shared>(&self, offset: usize, n: usize) -> Result<&[T], OpenError> {
        let size = std::mem::size_of::<T>()
            .checked_mul(n)
            .and_then(|b| b.checked_add(offset));
        if size.is_none_or(|end| end > self.len) {
            return Err(OpenError::Corrupt(format!(
                "{n} value(s) of {} bytes at offset {offset} reach past the segment's {} bytes",
                std::mem::size_of::<T>(),
                self.len
            )));
        }
        if !offset.is_multiple_of(std::mem::align_of::<T>()) {
            return Err(OpenError::Corrupt(format!(
                "offset {offset} is not aligned to {}",
                std::mem::align_of::<T>()
            )));
        }
        // SAFETY: the range lies inside the mapping (checked above), is aligned for T (checked
        // above; the mapping is page-aligned), lives as long as `self`, and `T: Shared` makes a
        // shared reference to concurrently written bytes sound.
        Ok(unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().add(offset).cast::<T>(), n) })
    }

    /// The creator's process id, and whether that process still runs (the same pid with the
    /// same start time, so a recycled pid does not count).
    pub fn creator(&self) -> (u32, bool) {
        let (pid, start) = self.header().creator();
        (pid, process_alive(pid, start))
    }

    /// The robust lock at `offset`.
    ///
    /// # Errors
    ///
    /// As [`at`](Self::at).
    pub(crate) fn mutex_at(&self, offset: usize) -> Result<&RawMutex, OpenError> {
        self.at(offset)
    }

    /// The common header at offset 0.
    pub(crate) fn header(&self) -> &Header {
        // SAFETY: every constructor checks len >= HEADER_SIZE; offset 0 is page-aligned.
        unsafe { &*self.ptr.as_ptr().cast::<Header>() }
    }

    /// Reads the header, waiting up to [`READY_WAIT`] for a creator that is still writing it, and
    /// checks it against the mapping and (if given) the expected kind.
    ///
    /// # Errors
    ///
    /// [`OpenError::Incompatible`] for another kind or layout version, [`OpenError::Corrupt`] for
    /// a foreign file, impossible fields or a creator that never finished.
    pub(crate) fn read_header(&self, expected: Option<Kind>) -> Result<Params, OpenError> {
        let start = Instant::now();
        loop {
            let r = match expected {
                Some(k) => self.header().read_kind(self.len as u64, k),
                None => self.header().read(self.len as u64),
            };
            match r {
                Ok(p) => return Ok(p),
                Err(HeaderError::NotReady) if start.elapsed() < READY_WAIT => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) => return Err(header_error(e)),
            }
        }
    }
}

pub use crate::liveness::{process_alive, process_start_time};

fn header_error(e: HeaderError) -> OpenError {
    match e {
        HeaderError::BadMagic(m) => OpenError::Corrupt(format!(
            "not a shmq segment (magic {m:#018x}, expected {:#018x})",
            layout::MAGIC
        )),
        HeaderError::Version(v) => OpenError::Incompatible(format!(
            "layout version {v}, this library reads version {}",
            layout::LAYOUT_VERSION
        )),
        HeaderError::Kind { expected, found } => {
            OpenError::Incompatible(match Kind::from_raw(found) {
                Some(k) => format!("the segment holds a {k}, not a {expected}"),
                None => format!("the segment holds an unknown kind {found}, not a {expected}"),
            })
        }
        HeaderError::NotReady => OpenError::Corrupt(format!(
            "its creator did not finish writing it within {} ms",
            READY_WAIT.as_millis()
        )),
        HeaderError::Corrupt(s) => OpenError::Corrupt(s),
    }
}

fn wait_for_size(fd: BorrowedFd<'_>, what: &str) -> Result<usize, OpenError> {
    let start = Instant::now();
    loop {
        let size = regular_size(fd, what)?;
        if size == 0 && start.elapsed() < READY_WAIT {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        if size < HEADER_SIZE as u64 {
            return Err(OpenError::Corrupt(format!(
                "{what} is {size} bytes, smaller than a header ({HEADER_SIZE})"
            )));
        }
        if size > layout::MAX_SEGMENT_SIZE {
            return Err(OpenError::Corrupt(format!(
                "{what} is {size} bytes, larger than any shmq segment"
            )));
        }
        return usize::try_from(size).map_err(|_| OpenError::Corrupt("too large to map".into()));
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        if let Map::Raw = self.map {
            // SAFETY: `ptr`/`len` are the mapping made in a constructor; every reference into it
            // borrows `self`, so none outlives this point.
            unsafe { sys::munmap(self.ptr, self.len) };
        }
    }
}

/// A segment its creator has not published yet: only the creator can reach its contents (an
/// opener waits for the header's ready state), so initialising the shared words in it is safe.
/// Dereferences to [`Segment`]. Dropped unpublished, a named segment is unlinked again.
pub(crate) struct Fresh(Option<Segment>);

impl Fresh {
    fn seg(&self) -> &Segment {
        // Only `publish` takes the segment out, consuming `self`.
        self.0
            .as_ref()
            .unwrap_or_else(|| unreachable!("Fresh used after publish"))
    }

    /// The lock at `offset`. A fresh segment is zeroed, and zeroed bytes are a free lock, so
    /// there is nothing to initialise (and no way to re-initialise a lock someone holds).
    ///
    /// # Errors
    ///
    /// [`OpenError::Corrupt`] for a bad offset.
    pub(crate) fn init_mutex(&self, offset: usize) -> Result<&RawMutex, OpenError> {
        self.seg().mutex_at(offset)
    }

    /// Writes the header (with this process as creator) and publishes it with the ready state,
    /// after which openers may use the segment.
    /// Records the largest message of a queue or pipe (header field `max_message`); call
    /// before [`publish`](Self::publish).
    pub(crate) fn set_max_message(&self, max: u64) {
        self.header()
            .max_message
            .store(max, crate::sync::atomic::Ordering::Relaxed);
    }

    pub(crate) fn publish(mut self, params: &Params) -> Segment {
        let seg = self
            .0
            .take()
            .unwrap_or_else(|| unreachable!("Fresh published twice"));
        let pid = sys::getpid();
        let start = crate::liveness::process_start_time(pid).unwrap_or(0);
        seg.header().write(params, pid, start);
        let tag = PENDING_TYPE_TAG.get();
        for (word, value) in seg.header().type_tag.iter().zip(tag) {
            word.store(value, std::sync::atomic::Ordering::Relaxed);
        }
        seg.header()
            .instance
            .store(new_instance_id(pid), crate::sync::atomic::Ordering::Relaxed);
        seg.header().publish();
        seg
    }
}

thread_local! {
    /// The type tag that [`Fresh::publish`] writes into the header of a segment this thread
    /// creates (header bytes 80–95; zero: untyped). Set only for the duration of
    /// [`with_type_tag`].
    static PENDING_TYPE_TAG: std::cell::Cell<[u64; 2]> = const { std::cell::Cell::new([0; 2]) };
}

/// Runs `create` (which creates and publishes segments in this thread) so that every segment
/// it publishes records `tag` as the type of its messages (typed queues and pipes).
pub(crate) fn with_type_tag<R>(tag: [u64; 2], create: impl FnOnce() -> R) -> R {
    struct Reset([u64; 2]);
    impl Drop for Reset {
        fn drop(&mut self) {
            PENDING_TYPE_TAG.set(self.0);
        }
    }
    let _reset = Reset(PENDING_TYPE_TAG.replace(tag));
    create()
}

impl Segment {
    /// The type tag in the header (both words 0 for an untyped segment).
    pub(crate) fn type_tag(&self) -> [u64; 2] {
        let t = &self.header().type_tag;
        // SYNC POINT: written before the header's Release publish, read after the opener's
        // Acquire load of the ready state.
        [
            t[0].load(std::sync::atomic::Ordering::Relaxed),
            t[1].load(std::sync::atomic::Ordering::Relaxed),
        ]
    }
}

/// A random non-zero 64-bit number for a new segment's header (`Header::instance`): SipHash
/// with the standard library's randomly seeded keys over the pid, the wall clock in
/// nanoseconds and a per-process counter, so that two segments (in one process or two) get
/// different ids with overwhelming probability.
fn new_instance_id(pid: u32) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    static MADE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(pid);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    h.write_u128(now);
    h.write_u64(MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    h.finish().max(1)
}

impl std::ops::Deref for Fresh {
    type Target = Segment;
    fn deref(&self) -> &Segment {
        self.seg()
    }
}

impl Drop for Fresh {
    fn drop(&mut self) {
        if let Some(seg) = self.0.take() {
            match &seg.backing {
                Backing::Named(name) => drop(Segment::unlink(name)),
                Backing::File(path) => drop(std::fs::remove_file(path)),
                Backing::Anonymous => {}
            }
        }
    }
}

impl fmt::Debug for Fresh {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Fresh").field(&self.0).finish()
    }
}

impl fmt::Debug for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Segment")
            .field("backing", &self.backing)
            .field("len", &self.len)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated() {
        for ok in ["a", "shmq-1", "A.b_c-9", &"x".repeat(200)] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "a b", "é", &"x".repeat(201), "a\0b"] {
            assert!(
                matches!(validate_name(bad), Err(OpenError::InvalidName { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn an_anonymous_queue_is_shared_with_a_forked_child() {
        let q = crate::Queue::anonymous(&crate::Options {
            capacity: 4,
            message_size: 8,
            ..Default::default()
        })
        .unwrap();
        q.put(*b"parent").unwrap();
        // SAFETY: the child touches only the queue (no allocation, no lock another thread of
        // this process could hold) and leaves with _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let ok = matches!(q.get_with(|m| m == b"parent"), Ok(true)) && q.put(*b"child").is_ok();
            // SAFETY: _exit is async-signal-safe and ends the forked child at once.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        let mut status = 0;
        // SAFETY: waits for the child forked above; `status` is a valid out-pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(r, pid);
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
        assert_eq!(q.get().unwrap(), b"child");
        assert!(q.is_empty());
    }

    #[test]
    fn errors_keep_their_errno_and_non_regular_files_are_refused() {
        let name = format!("shmq-test-seg-dir-{}", std::process::id());
        let path = format!("/dev/shm/{name}");
        std::fs::create_dir(&path).unwrap();
        let opened = Segment::open_raw(&name).map(drop);
        let inspected = inspect(&name).map(drop);
        let removable = check_is_segment(&name);
        std::fs::remove_dir(&path).unwrap();
        // Opening a directory read-write: EISDIR, kept as the errno of the error.
        let e = opened.unwrap_err();
        assert_eq!(e.raw_os_error(), Some(21), "{e}");
        assert!(e.to_string().starts_with(&name), "{e}");
        // Read-only, it opens, and the type check refuses it.
        for e in [inspected.unwrap_err(), removable.unwrap_err()] {
            assert!(
                matches!(&e, OpenError::NotASegment { file_type, .. } if *file_type == "directory"),
                "{e}"
            );
            assert_eq!(
                e.to_string(),
                format!("{name:?} is a directory, not a shared-memory segment")
            );
        }
    }

    #[test]
    fn a_short_foreign_file_is_corrupt() {
        let name = format!("shmq-test-seg-short-{}", std::process::id());
        std::fs::write(format!("/dev/shm/{name}"), b"twelve bytes").unwrap();
        let e = inspect(&name).unwrap_err();
        Segment::unlink(&name).unwrap();
        assert!(matches!(e, OpenError::Corrupt(_)), "{e}");
        assert!(e.to_string().contains("smaller than a header"), "{e}");
    }

    #[test]
    fn a_recycled_pid_with_another_start_time_is_not_alive() {
        let me = std::process::id();
        let start = process_start_time(me).unwrap();
        assert!(process_alive(me, start));
        assert!(process_alive(me, 0));
        assert!(!process_alive(me, start + 1));
        assert!(!process_alive(0, 0));
    }

    #[test]
    fn offsets_are_bounds_and_alignment_checked() {
        let seg = Segment::anonymous(4096).unwrap();
        assert!(seg.at::<AtomicU64>(4088).is_ok());
        assert!(seg.at::<AtomicU64>(4090).is_err());
        assert!(seg.at::<AtomicU64>(4).is_err());
        assert!(seg.slice_at::<AtomicU64>(0, 513).is_err());
        assert!(seg.slice_at::<AtomicU64>(usize::MAX - 3, 2).is_err());
        assert!(matches!(
            Segment::anonymous(10),
            Err(OpenError::InvalidOptions(_))
        ));
    }

    #[test]
    fn an_unfinished_segment_is_waited_for_then_reported_and_a_foreign_one_is_corrupt() {
        let seg = Segment::anonymous(4096).unwrap();
        let t = Instant::now();
        assert!(matches!(seg.read_header(None), Err(OpenError::Corrupt(_))));
        assert!(t.elapsed() >= READY_WAIT);
        seg.header()
            .magic
            .store(1, crate::sync::atomic::Ordering::SeqCst);
        let e = seg.read_header(None).unwrap_err().to_string();
        assert!(e.contains("not a shmq segment"), "{e}");
    }
}
