//! Inspection: what a named segment holds, read from its file with `pread`, without mapping
//! it and without taking any lock ([`inspect`], [`Inspection`]), and whether a file is a shmq
//! segment at all ([`check_is_segment`]). Inspecting never waits on a peer and never changes
//! anything.

use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use super::{READY_WAIT, header_error, map_io, regular_size, validate_name};
use crate::error::OpenError;
use crate::layout::{self, HEADER_SIZE, Header, HeaderError, Kind, Params};
use crate::liveness::process_alive;
use crate::sync::LockState;
use crate::sys;

/// What a named segment holds, read from its file (`pread`) without mapping it and without
/// taking any lock: inspecting never waits on a peer and never changes anything (an owner-died
/// report stays for the next locker). Made by [`inspect`].
///
/// Values read while other processes work are a snapshot: each word is whole, but two words
/// may come from different moments.
#[derive(Debug)]
pub struct Inspection {
    name: String,
    fd: OwnedFd,
    params: Params,
    version: u32,
    creator: (u32, u64),
}

/// Opens the named segment read-only (without blocking, without following a symbolic link),
/// checks that it is a regular file holding a ready shmq header of this layout version, and
/// returns what the header says. Waits up to [`READY_WAIT`] for a creator still writing it.
///
/// # Errors
///
/// [`OpenError::NotFound`], [`OpenError::InvalidName`], [`OpenError::NotASegment`] (a FIFO, a
/// directory, a link…), [`OpenError::Corrupt`] (not a shmq segment, impossible fields),
/// [`OpenError::Incompatible`] (another layout version), [`OpenError::System`].
///
/// # Examples
///
/// ```
/// # fn main() -> Result<(), shmq::OpenError> {
/// use shmq::substrate::{layout::Kind, segment};
/// use shmq::{Options, Queue};
/// let name = format!("shmq-doc-inspect-{}", std::process::id());
/// let q = Queue::create(&name, &Options { capacity: 6, message_size: 64, ..Default::default() })?;
/// let info = segment::inspect(&name)?;
/// assert_eq!(info.kind(), Kind::Queue);
/// assert_eq!((info.params().capacity, info.size()), (6, q.segment().len() as u64));
/// assert_eq!(info.creator(), (std::process::id(), true));
/// Queue::unlink(&name)?;
/// # Ok(())
/// # }
/// ```
pub fn inspect(name: &str) -> Result<Inspection, OpenError> {
    inspect_within(name, READY_WAIT)
}

/// As [`inspect`], waiting at most `wait` (instead of [`READY_WAIT`]) for a creator still
/// writing the header: `Duration::ZERO` never waits, for a watcher that looks at many segments
/// (a segment not ready yet is then [`OpenError::Corrupt`], as after the wait).
///
/// # Errors
///
/// As [`inspect`].
pub fn inspect_within(name: &str, wait: Duration) -> Result<Inspection, OpenError> {
    validate_name(name)?;
    let fd = sys::shm_open(name, false).map_err(|e| map_io(e, name))?;
    let started = Instant::now();
    loop {
        let size = regular_size(fd.as_fd(), name)?;
        let mut bytes = [0u8; HEADER_SIZE];
        let n = sys::read_at(fd.as_fd(), &mut bytes, 0).map_err(|e| map_io(e, name))?;
        if size > 0 && n < HEADER_SIZE {
            return Err(OpenError::Corrupt(format!(
                "{name} is {size} bytes, smaller than a header ({HEADER_SIZE})"
            )));
        }
        let header = Header::from_bytes(&bytes);
        // An empty file is a creator between its open and `fallocate`: waited for.
        let read = if size == 0 {
            Err(HeaderError::NotReady)
        } else {
            header.read(size)
        };
        match read {
            Ok(params) => {
                return Ok(Inspection {
                    name: name.to_owned(),
                    fd,
                    params,
                    version: layout::LAYOUT_VERSION,
                    creator: header.creator(),
                });
            }
            Err(HeaderError::NotReady) if started.elapsed() < wait => {
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(HeaderError::NotReady) if size == 0 => {
                return Err(OpenError::Corrupt(format!(
                    "{name} stayed empty for {} ms: its creator never finished it",
                    wait.as_millis()
                )));
            }
            Err(e) => return Err(header_error(e)),
        }
    }
}

/// Whether `name` is a regular file that starts with shmq's magic number, of any layout
/// version: what `shmq rm` checks before removing a name, so that a typo removes nothing and an
/// older segment can still be removed. Never blocks.
///
/// # Errors
///
/// As [`inspect`], without the version and field checks.
pub fn check_is_segment(name: &str) -> Result<(), OpenError> {
    validate_name(name)?;
    let fd = sys::shm_open(name, false).map_err(|e| map_io(e, name))?;
    regular_size(fd.as_fd(), name)?;
    let mut magic = [0u8; 8];
    let n = sys::read_at(fd.as_fd(), &mut magic, 0).map_err(|e| map_io(e, name))?;
    if n < 8 || u64::from_ne_bytes(magic) != layout::MAGIC {
        return Err(OpenError::Corrupt(format!("{name} is not a shmq segment")));
    }
    Ok(())
}

impl Inspection {
    /// The segment's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What it holds.
    pub fn kind(&self) -> Kind {
        self.params.kind
    }

    /// Its geometry as the header records it.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Its layout version (always this library's: another is refused).
    pub fn layout_version(&self) -> u32 {
        self.version
    }

    /// Its length in bytes.
    pub fn size(&self) -> u64 {
        self.params.total_size
    }

    /// The creator's process id, and whether that process still runs (the same pid with the
    /// same start time).
    pub fn creator(&self) -> (u32, bool) {
        let (pid, start) = self.creator;
        (pid, process_alive(pid, start))
    }

    /// The bytes from `offset` (a multiple of 8) on, as stored now, into `buf`: one read for
    /// many words (each aligned word is whole; two words may come from different moments).
    ///
    /// # Errors
    ///
    /// As [`word`](Self::word), for any byte past the end.
    pub fn read(&self, offset: usize, buf: &mut [u8]) -> Result<(), OpenError> {
        let end = offset.checked_add(buf.len());
        if end.is_none_or(|e| e as u64 > self.params.total_size) || !offset.is_multiple_of(8) {
            return Err(OpenError::InvalidOptions(format!(
                "{} bytes at offset {offset} are not an aligned part of a segment of {} bytes",
                buf.len(),
                self.params.total_size
            )));
        }
        let n =
            sys::read_at(self.fd.as_fd(), buf, offset as u64).map_err(|e| map_io(e, &self.name))?;
        if n < buf.len() {
            return Err(OpenError::Corrupt(format!(
                "{} shrank below {} bytes while being read",
                self.name, self.params.total_size
            )));
        }
        Ok(())
    }

    /// The 64-bit word at `offset` (a multiple of 8), as stored now.
    ///
    /// # Errors
    ///
    /// [`OpenError::InvalidOptions`] for an offset outside the segment or not a multiple of 8,
    /// [`OpenError::Corrupt`] if the file shrank.
    pub fn word(&self, offset: usize) -> Result<u64, OpenError> {
        let mut b = [0u8; 8];
        self.read(offset, &mut b)?;
        Ok(u64::from_ne_bytes(b))
    }

    /// The state of the lock at `offset`, read without taking it.
    ///
    /// # Errors
    ///
    /// As [`word`](Self::word).
    pub fn lock_state(&self, offset: usize) -> Result<LockState, OpenError> {
        let mut b = [0u8; 64];
        self.read(offset, &mut b)?;
        Ok(LockState::from_bytes(&b, |w| {
            crate::liveness::owner_word_alive(w)
        }))
    }
}
