//! # libshmq — shmq's queue, pipe, dict counters and lock for C and C++
//!
//! This crate builds `libshmq.so` and `libshmq.a` with the C API declared in `include/shmq.h`
//! (generated from this crate by cbindgen), over the public API of the `shmq` and `shmq-dict`
//! crates: a C process shares queues, pipes, dicts and locks with Rust and Python processes.
//!
//! Conventions of every exported function (`docs/c.md` is the guide):
//!
//! - It returns a [`ShmqStatus`]: `SHMQ_OK`, or a code saying why it failed; results go through
//!   out-pointers, written only on success (and, for `SHMQ_BUFFER_TOO_SMALL`, the length
//!   needed). `shmq_last_error()` gives the calling thread's last message; a failure the OS gave
//!   an error number for leaves it in `errno` and in `shmq_last_errno()`.
//! - A NULL handle or pointer, a string that is not UTF-8, a length that does not fit: the code
//!   `SHMQ_INVALID_ARGUMENT`, never a crash. A Rust panic is caught at the boundary and becomes
//!   `SHMQ_INTERNAL`.
//! - Every handle is an opaque pointer freed by exactly one `*_free` (NULL is accepted there).
//!   A handle serves any number of threads; freeing it while another thread uses it is the
//!   caller's bug, as with `free`.

#![warn(missing_docs)]

use std::ffi::{CStr, c_char};
use std::time::{Duration, Instant};

mod dict;
mod error;
mod lock;
mod pipe;
mod queue;

pub use dict::*;
pub use error::*;
pub use lock::*;
pub use pipe::*;
pub use queue::*;

use error::{Failure, Res, boundary};

/// The version of libshmq's C interface: `shmq.h` defines `SHMQ_ABI_VERSION` to the version it
/// declares, and `shmq_abi_version()` returns the library's; a program compares the two at
/// start. It changes whenever a declaration in `shmq.h` changes incompatibly.
pub const SHMQ_ABI_VERSION: u32 = 1;

/// The version of the shared-memory layout this library reads and writes (the segment header's
/// version word). A segment of another version is refused with `SHMQ_INCOMPATIBLE`, so two
/// programs linked against mismatched libraries never misread each other's segments.
pub const SHMQ_LAYOUT_VERSION: u32 = 4;

const _: () = assert!(SHMQ_LAYOUT_VERSION == shmq_core::substrate::layout::LAYOUT_VERSION);

/// The version of the C interface this library implements; compare it with `SHMQ_ABI_VERSION`
/// from the header the program was compiled with.
#[unsafe(no_mangle)]
pub extern "C" fn shmq_abi_version() -> u32 {
    SHMQ_ABI_VERSION
}

/// The shared-memory layout version this library reads and writes; compare it with
/// `SHMQ_LAYOUT_VERSION`.
#[unsafe(no_mangle)]
pub extern "C" fn shmq_layout_version() -> u32 {
    shmq_core::substrate::layout::LAYOUT_VERSION
}

/// The library's version, such as `"0.1.0"`: a static string, never freed.
#[unsafe(no_mangle)]
pub extern "C" fn shmq_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// The geometry and permissions of a new queue or pipe. Fill it with `shmq_options_default`,
/// then change what you need; a NULL `shmq_options *` means the defaults.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ShmqOptions {
    /// How many messages fit (for a pipe, in each direction); at least 1. Default 128.
    pub capacity: usize,
    /// The slot size in bytes: the largest message that travels in a slot. Default 4096.
    pub message_size: usize,
    /// The largest message a put accepts (default 1 GiB); a message longer than a slot
    /// travels in a side segment of its own (named queues and pipes only).
    pub max_message_size: usize,
    /// Permission bits of a named segment; default 0600.
    pub mode: u32,
}

impl From<&ShmqOptions> for shmq_core::Options {
    fn from(o: &ShmqOptions) -> Self {
        shmq_core::Options {
            capacity: o.capacity,
            message_size: o.message_size,
            max_message_size: o.max_message_size,
            mode: o.mode,
        }
    }
}

/// Fills `*out` with the defaults: 128 slots of 4 KiB, messages of up to 1 GiB, mode 0600.
///
/// Returns `SHMQ_INVALID_ARGUMENT` if `out` is NULL.
///
/// # Safety
///
/// `out` is NULL or points to writable memory for a `shmq_options`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_options_default(out: *mut ShmqOptions) -> ShmqStatus {
    boundary(|| {
        let d = shmq_core::Options::default();
        // SAFETY: the caller's contract for `out`.
        unsafe {
            write(
                out,
                "out",
                ShmqOptions {
                    capacity: d.capacity,
                    message_size: d.message_size,
                    max_message_size: d.max_message_size,
                    mode: d.mode,
                },
            )
        }
    })
}

/// The options behind `opts`, the defaults for NULL.
///
/// # Safety
///
/// `opts` is NULL or points to a `shmq_options`.
unsafe fn options(opts: *const ShmqOptions) -> shmq_core::Options {
    // SAFETY: the caller's contract.
    match unsafe { opts.as_ref() } {
        Some(o) => o.into(),
        None => shmq_core::Options::default(),
    }
}

/// The string behind `s`.
///
/// # Safety
///
/// `s` is NULL or points to a NUL-terminated string that lives for `'a`.
unsafe fn string<'a>(s: *const c_char, what: &str) -> Res<&'a str> {
    if s.is_null() {
        return Err(Failure::null(what));
    }
    // SAFETY: the caller's contract.
    unsafe { CStr::from_ptr(s) }.to_str().map_err(|_| {
        Failure::new(
            ShmqStatus::SHMQ_INVALID_ARGUMENT,
            format!("{what} is not valid UTF-8"),
        )
    })
}

/// The `len` bytes at `data` (NULL allowed for `len == 0`).
///
/// # Safety
///
/// `data` is NULL or points to `len` readable bytes that live for `'a`.
unsafe fn bytes<'a>(data: *const u8, len: usize, what: &str) -> Res<&'a [u8]> {
    if len == 0 {
        return Ok(&[]);
    }
    if data.is_null() {
        return Err(Failure::null(what));
    }
    if len > isize::MAX as usize {
        return Err(Failure::new(
            ShmqStatus::SHMQ_INVALID_ARGUMENT,
            format!("{what}: length {len} is out of range"),
        ));
    }
    // SAFETY: the caller's contract; the length is in range.
    Ok(unsafe { std::slice::from_raw_parts(data, len) })
}

/// The `cap` writable bytes at `buf` (NULL allowed for `cap == 0`).
///
/// # Safety
///
/// `buf` is NULL or points to `cap` writable bytes that live for `'a`, aliased by nothing else.
unsafe fn bytes_mut<'a>(buf: *mut u8, cap: usize, what: &str) -> Res<&'a mut [u8]> {
    if cap == 0 {
        return Ok(&mut []);
    }
    if buf.is_null() {
        return Err(Failure::null(what));
    }
    if cap > isize::MAX as usize {
        return Err(Failure::new(
            ShmqStatus::SHMQ_INVALID_ARGUMENT,
            format!("{what}: capacity {cap} is out of range"),
        ));
    }
    // SAFETY: the caller's contract; the length is in range.
    Ok(unsafe { std::slice::from_raw_parts_mut(buf, cap) })
}

/// Writes `value` to `out`, or fails for NULL.
///
/// # Safety
///
/// `out` is NULL or points to writable memory for a `T`.
unsafe fn write<T>(out: *mut T, what: &str, value: T) -> Res {
    if out.is_null() {
        return Err(Failure::null(what));
    }
    // SAFETY: the caller's contract.
    unsafe { out.write(value) };
    Ok(())
}

/// Writes `value` to `out` if it is not NULL.
///
/// # Safety
///
/// `out` is NULL or points to writable memory for a `T`.
unsafe fn write_opt<T>(out: *mut T, value: T) {
    if !out.is_null() {
        // SAFETY: the caller's contract.
        unsafe { out.write(value) };
    }
}

/// The handle behind `h`.
///
/// # Safety
///
/// `h` is NULL or a live handle made by this library.
unsafe fn handle<'a, T>(h: *const T, what: &str) -> Res<&'a T> {
    // SAFETY: the caller's contract.
    unsafe { h.as_ref() }.ok_or_else(|| Failure::null(what))
}

/// The deadline `timeout_ms` milliseconds from now (`None`: too far to represent, i.e. never).
fn deadline(timeout_ms: u64) -> Option<Instant> {
    Instant::now().checked_add(Duration::from_millis(timeout_ms))
}

/// Moves `value` into a new handle for C.
fn into_handle<T>(value: T) -> *mut T {
    Box::into_raw(Box::new(value))
}

/// Frees a handle made by [`into_handle`].
///
/// # Safety
///
/// `h` is NULL or a handle made by `into_handle::<T>` and not freed yet.
unsafe fn free_handle<T>(h: *mut T) {
    if !h.is_null() {
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            // SAFETY: the caller's contract.
            drop(unsafe { Box::from_raw(h) })
        }));
    }
}
