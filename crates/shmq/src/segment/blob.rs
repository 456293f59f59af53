//! One side segment, mapped: the file that holds one large message (or, pooled, one message at
//! a time) with the head that `crate::large` writes before it. [`Blob`] creates or opens the
//! file, maps it whole, and gives the raw copies, the atomic state word and the borrows that
//! the large-message protocol needs, each with the protocol argument that makes it sound.

#![allow(unsafe_code)]

use std::fmt;
use std::os::fd::AsFd;
use std::path::Path;
use std::ptr::NonNull;

use super::stream::{STREAM_FROM, copy_streaming};
use crate::sys;

/// One mapped side segment holding a large message (`crate::large`): a file of its own
/// (`/dev/shm/NAME`, or a side file beside a file-backed queue), no shmq header, mapped whole
/// and read-write on both sides (a consumer flips the state word of its head). Its message bytes
/// are written only by its creator while no descriptor of it is queued, and only read while one
/// is (`docs/protocol.md`, "Large messages"), so a reader holding the front reserved may borrow
/// them; a peeker, which holds nothing, copies them (`read_at`) and validates the copy after.
/// The head's state word is only reached as an atomic.
pub(crate) struct Blob {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is owned by the value (unmapped on drop) and only reached through
// raw-pointer copies (`write_at`, `fill_at`, `read_at`), atomics (`word`) or borrows whose
// protocol is stated at `slice`.
unsafe impl Send for Blob {}
// SAFETY: as above; `write_at` copies through a raw pointer and is only called by the creator
// while no descriptor of the blob is queued.
unsafe impl Sync for Blob {}

impl Blob {
    /// Creates the file `path` (exclusive, `mode`; `/dev/shm/NAME` or a side file beside a
    /// file-backed queue) of `len` bytes, reserved with `fallocate` (a full `/dev/shm` is
    /// `ENOSPC` here, not `SIGBUS` later) and mapped with its page tables filled. `path` is
    /// built by `crate::large` from a validated segment name or path.
    pub(crate) fn create_at(path: &Path, len: usize, mode: u32) -> std::io::Result<Blob> {
        let fd = sys::create_at(path, mode)?;
        let made = (|| {
            sys::fchmod(fd.as_fd(), mode)?;
            sys::allocate(fd.as_fd(), len as u64)?;
            sys::mmap_populated(fd.as_fd(), len, true)
        })();
        match made {
            Ok(ptr) => Ok(Blob { ptr, len }),
            Err(e) => {
                let _ = std::fs::remove_file(path);
                Err(e)
            }
        }
    }

    /// Opens and maps the existing file `path` read-write, whole; anything but a regular
    /// file of at least `min_len` bytes (and at most 64 GiB) is refused (`InvalidData`).
    pub(crate) fn open_at(path: &Path, min_len: usize) -> std::io::Result<Blob> {
        let fd = sys::open_at(path, true)?;
        let len = match sys::file_kind(fd.as_fd())? {
            Ok(size) if size >= min_len as u64 && size <= 1 << 36 => size as usize,
            Ok(size) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{size} bytes, not at least {min_len}"),
                ));
            }
            Err(kind) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("a {kind}, not a side segment"),
                ));
            }
        };
        let ptr = sys::mmap_populated(fd.as_fd(), len, true)?;
        Ok(Blob { ptr, len })
    }

    /// Bytes of the mapping.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Copies `data` to offset `at`; from [`STREAM_FROM`] bytes up with non-temporal stores
    /// (see [`copy_streaming`]), which are ordered before anything this thread stores after
    /// the call.
    ///
    /// # Panics
    ///
    /// If `at + data.len()` is beyond the mapping (a bug of the caller).
    pub(crate) fn write_at(&self, at: usize, data: &[u8]) {
        assert!(
            at.checked_add(data.len())
                .is_some_and(|end| end <= self.len)
        );
        // SAFETY: in bounds (checked above) of a live read-write mapping of ours; the caller
        // (`crate::large`) writes only while no descriptor of the blob is queued, so no other
        // process reads these bytes, and never over a word reached through `word`. `data` is
        // a borrowed slice elsewhere (not in this mapping's written range: the caller's own
        // message), so the two ranges do not overlap.
        unsafe {
            let dst = self.ptr.as_ptr().add(at);
            if data.len() >= STREAM_FROM {
                copy_streaming(data.as_ptr(), dst, data.len());
            } else {
                std::ptr::copy_nonoverlapping(data.as_ptr(), dst, data.len());
            }
        }
    }

    /// Lends bytes `at..at + len` to `fill`, to be written in place (a zero-copy put of a
    /// large message), and returns what it returns.
    ///
    /// # Panics
    ///
    /// If the range is beyond the mapping (a bug of the caller).
    pub(crate) fn fill_at<R>(
        &mut self,
        at: usize,
        len: usize,
        fill: impl FnOnce(&mut [u8]) -> R,
    ) -> R {
        assert!(at.checked_add(len).is_some_and(|end| end <= self.len));
        // SAFETY: in bounds (checked above) of a live read-write mapping of ours, borrowed
        // mutably with `self` (no other slice of this mapping exists in this process while it
        // lives); the caller (`crate::large`) fills only a blob it holds (new, or claimed from
        // its pool) while no descriptor of it is queued, so no other process reads or writes
        // these bytes, and never the range of the state word.
        let bytes = unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr().add(at), len) };
        fill(bytes)
    }

    /// The aligned u64 at offset `at`, as an atomic (the state word of the head).
    ///
    /// # Panics
    ///
    /// If `at` is not a multiple of 8 or the word is beyond the mapping (a bug of the caller).
    pub(crate) fn word(&self, at: usize) -> &std::sync::atomic::AtomicU64 {
        assert!(at.is_multiple_of(8) && at + 8 <= self.len);
        // SAFETY: in bounds and 8-aligned (the mapping is page-aligned) in a live mapping that
        // `self` owns and the reference borrows; every process reaches this word only through
        // atomics.
        unsafe { std::sync::atomic::AtomicU64::from_ptr(self.ptr.as_ptr().add(at).cast::<u64>()) }
    }

    /// Copies `dst.len()` bytes from offset `at` into `dst` without borrowing the mapping: for
    /// a reader that holds no reservation (a peek, `crate::large`), whose copy may race the
    /// creator's rewrite of a reused segment and is validated after it (the state word's
    /// generation; `docs/protocol.md`, "Peek and commit of a large message").
    ///
    /// # Panics
    ///
    /// If the range is beyond the mapping (a bug of the caller).
    pub(crate) fn read_at(&self, at: usize, dst: &mut [u8]) {
        assert!(at.checked_add(dst.len()).is_some_and(|end| end <= self.len));
        // SAFETY: the source is in bounds (checked above) of a live mapping owned by `self`,
        // reached through the raw pointer only (no reference to bytes another process may be
        // writing is made); `dst` cannot overlap it: the only mutable borrow of this mapping
        // (`fill_at`) needs `&mut self`, and another mapping of the same file has other
        // addresses. Bytes the creator rewrites meanwhile may end up in `dst`; the caller
        // discards such a copy (it checks the state word after an acquire fence).
        unsafe {
            std::ptr::copy_nonoverlapping(self.ptr.as_ptr().add(at), dst.as_mut_ptr(), dst.len())
        };
    }

    /// `len` bytes from offset `at`.
    ///
    /// # Panics
    ///
    /// If the range is beyond the mapping (a bug of the caller).
    pub(crate) fn slice(&self, at: usize, len: usize) -> &[u8] {
        assert!(at.checked_add(len).is_some_and(|end| end <= self.len));
        // SAFETY: in bounds of a live mapping owned by `self` (the slice borrows it). The
        // caller (`crate::large`) borrows only the head's magic and descriptor or the message,
        // never the state word, and only while a descriptor of this blob that it holds
        // reserved is queued: the creator writes those bytes only before publishing that
        // descriptor (a Release store that the reader acquired) and again only once a reader
        // has set the state word to free after its take, so nothing changes them while the
        // slice lives. A process that ignores the protocol is outside the trust model
        // (README, "Trust model").
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().add(at), len) }
    }
}

impl Drop for Blob {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly the mapping made in `create`/`open`; no borrow of it
        // outlives `self`.
        unsafe { sys::munmap(self.ptr, self.len) };
    }
}

impl fmt::Debug for Blob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Blob").field("len", &self.len).finish()
    }
}
