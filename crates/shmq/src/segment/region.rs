//! [`AtomicRegion`]: the safe door to a mapped segment for code outside this crate, for the
//! segments whose memory is only ever accessed atomically (dicts and locks, crate `shmq-dict`).

use super::{Fresh, Segment, check_mode};
use crate::error::OpenError;
use crate::layout::{HEADER_SIZE, Kind, LINE, Params};
use crate::sync::atomic::AtomicU64;
use crate::sync::{FutexWord, RawMutex};

/// A mapped segment whose memory every user accesses only atomically: the segments of kind
/// [`Kind::Dict`] and [`Kind::Lock`] (crate `shmq-dict`). It holds the header, a robust lock at
/// [`LOCK_OFFSET`](Self::LOCK_OFFSET) and, from [`WORDS_OFFSET`](Self::WORDS_OFFSET) to the
/// end, 64-bit words ([`words`](Self::words)).
///
/// This is the safe door to shared memory for code outside this crate: a queue or a pipe (whose
/// slots are copied byte by byte under their lock) cannot be opened as a region, and the lock
/// and the words never overlap, so every access to the mapping is an atomic access of one size.
///
/// # Examples
///
/// ```
/// # fn main() -> Result<(), shmq::OpenError> {
/// use shmq::substrate::layout::{Kind, Params};
/// use shmq::substrate::segment::AtomicRegion;
/// use std::sync::atomic::Ordering::SeqCst;
///
/// let name = format!("shmq-doc-region-{}", std::process::id());
/// let params = Params { kind: Kind::Dict, capacity: 1, message_size: 8, slot_stride: 8, aux: 0, total_size: 264 };
/// let a = AtomicRegion::create(&name, &params, 0o600, |words| Ok(words[0].store(7, SeqCst)))?;
/// let b = AtomicRegion::open(&name, Kind::Dict)?;
/// assert_eq!(b.params(), &params);
/// let g = b.lock().lock().unwrap();
/// assert_eq!(a.words()[0].fetch_add(1, SeqCst), 7);
/// drop(g);
/// assert!(matches!(AtomicRegion::open(&name, Kind::Lock), Err(shmq::OpenError::Incompatible(_))));
/// AtomicRegion::unlink(&name)?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct AtomicRegion {
    seg: Segment,
    params: Params,
}

impl AtomicRegion {
    /// Offset of the lock.
    pub const LOCK_OFFSET: usize = HEADER_SIZE;
    /// Offset of the first word.
    pub const WORDS_OFFSET: usize = HEADER_SIZE + LINE;

    fn check_params(params: &Params) -> Result<usize, String> {
        if !matches!(params.kind, Kind::Dict | Kind::Lock) {
            return Err(format!(
                "a {} is not made of atomics only; only dicts and locks are regions",
                params.kind
            ));
        }
        let bytes = params
            .total_size
            .checked_sub(Self::WORDS_OFFSET as u64)
            .filter(|b| b % 8 == 0)
            .ok_or_else(|| {
                format!(
                    "a region of {} bytes has no room for its lock, or ends inside a word",
                    params.total_size
                )
            })?;
        usize::try_from(bytes / 8).map_err(|_| "too large".into())
    }

    fn over(seg: &Segment, params: &Params) -> Result<usize, OpenError> {
        let n = Self::check_params(params).map_err(OpenError::Corrupt)?;
        seg.slice_at::<AtomicU64>(Self::WORDS_OFFSET, n)?;
        seg.mutex_at(Self::LOCK_OFFSET)?;
        Ok(n)
    }

    fn make(
        fresh: Fresh,
        params: &Params,
        init: impl FnOnce(&[AtomicU64]) -> Result<(), OpenError>,
    ) -> Result<AtomicRegion, OpenError> {
        let n = Self::over(&fresh, params)?;
        init(fresh.slice_at::<AtomicU64>(Self::WORDS_OFFSET, n)?)?;
        Ok(AtomicRegion {
            seg: fresh.publish(params),
            params: *params,
        })
    }

    /// Creates the named region described by `params` (kind dict or lock, `total_size` bytes)
    /// with permission bits `mode`, runs `init` on its words before anyone else can open it,
    /// then publishes it. Fails if the name exists; nothing is left behind on failure.
    ///
    /// # Errors
    ///
    /// [`OpenError::InvalidOptions`] for another kind or a size that does not fit, and the
    /// errors of creating a segment ([`OpenError::AlreadyExists`], …) and of `init`.
    pub fn create(
        name: &str,
        params: &Params,
        mode: u32,
        init: impl FnOnce(&[AtomicU64]) -> Result<(), OpenError>,
    ) -> Result<AtomicRegion, OpenError> {
        check_mode(mode)?;
        Self::check_params(params).map_err(OpenError::InvalidOptions)?;
        Self::make(
            Segment::create(name, params.total_size, mode)?,
            params,
            init,
        )
    }

    /// An anonymous region (shared with children forked afterwards), as [`create`](Self::create).
    ///
    /// # Errors
    ///
    /// As [`create`](Self::create).
    pub fn anonymous(
        params: &Params,
        init: impl FnOnce(&[AtomicU64]) -> Result<(), OpenError>,
    ) -> Result<AtomicRegion, OpenError> {
        Self::check_params(params).map_err(OpenError::InvalidOptions)?;
        Self::make(Segment::anonymous(params.total_size)?, params, init)
    }

    /// Opens the named region, which must hold a `kind` (dict or lock).
    ///
    /// # Errors
    ///
    /// [`OpenError::Incompatible`] for another kind or layout version, [`OpenError::Corrupt`],
    /// and the errors of [`inspect`](super::inspect).
    pub fn open(name: &str, kind: Kind) -> Result<AtomicRegion, OpenError> {
        let seg = Segment::open_raw(name)?;
        let params = seg.read_header(Some(kind))?;
        Self::over(&seg, &params)?;
        Ok(AtomicRegion { seg, params })
    }

    /// Removes the name (see [`Segment::unlink`]).
    ///
    /// # Errors
    ///
    /// As [`Segment::unlink`].
    pub fn unlink(name: &str) -> Result<(), OpenError> {
        Segment::unlink(name)
    }

    /// The geometry in the header.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// The segment (for its name, length and creator).
    pub fn segment(&self) -> &Segment {
        &self.seg
    }

    /// The region's robust lock.
    pub fn lock(&self) -> &RawMutex {
        self.seg
            .mutex_at(Self::LOCK_OFFSET)
            .unwrap_or_else(|_| unreachable!("checked at open"))
    }

    /// Word `index` of [`words`](Self::words) as a [`FutexWord`] (a 32-bit value and its
    /// sleeper count) that processes sleep on. The caller dedicates that word to it: it never
    /// reaches the same word through [`words`](Self::words), so every access to those bytes
    /// stays atomic of one size.
    ///
    /// # Errors
    ///
    /// [`OpenError::Corrupt`] if the word lies outside the region.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), shmq::OpenError> {
    /// use shmq::substrate::layout::{Kind, Params};
    /// use shmq::substrate::segment::AtomicRegion;
    /// let params = Params { kind: Kind::Lock, capacity: 0, message_size: 0, slot_stride: 0, aux: 1, total_size: 384 };
    /// let r = AtomicRegion::anonymous(&params, |_| Ok(()))?;
    /// let f = r.futex(1)?;
    /// f.fetch_add(1);
    /// f.wake_all(); // nobody sleeps: no system call
    /// assert_eq!(f.load(), 1);
    /// assert!(r.futex(16).is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn futex(&self, index: usize) -> Result<&FutexWord, OpenError> {
        let offset = index
            .checked_mul(8)
            .and_then(|o| o.checked_add(Self::WORDS_OFFSET))
            .ok_or_else(|| OpenError::Corrupt(format!("futex word {index} is out of range")))?;
        self.seg.at::<FutexWord>(offset)
    }

    /// Every word from [`WORDS_OFFSET`](Self::WORDS_OFFSET) to the end.
    pub fn words(&self) -> &[AtomicU64] {
        let n = (self.seg.len - Self::WORDS_OFFSET) / 8;
        self.seg
            .slice_at(Self::WORDS_OFFSET, n)
            .unwrap_or_else(|_| unreachable!("checked at open"))
    }
}
