//! `shmq_pipe_*`: a duplex (or one-way) pipe between processes with end-of-file.

use std::ffi::c_char;
use std::sync::{RwLock, TryLockError};
use std::time::Duration;

use shmq_core::substrate::segment::Backing;
use shmq_core::{End, Pipe, PipeEnd};

use crate::error::{Failure, Res, ShmqStatus, boundary};
use crate::{
    ShmqOptions, bytes, bytes_mut, deadline, free_handle, handle, into_handle, options, string,
    write, write_opt,
};

/// Which end of a pipe. In a one-way pipe, end A receives and end B sends.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum ShmqEnd {
    /// The first end (the receiving end of a one-way pipe).
    SHMQ_END_A = 0,
    /// The second end (the sending end of a one-way pipe).
    SHMQ_END_B = 1,
}

impl From<End> for ShmqEnd {
    fn from(e: End) -> Self {
        match e {
            End::A => ShmqEnd::SHMQ_END_A,
            End::B => ShmqEnd::SHMQ_END_B,
        }
    }
}

/// A handle on one end of a pipe: an opaque pointer, made by `shmq_pipe_create`,
/// `shmq_pipe_create_one_way`, `shmq_pipe_open` or `shmq_pipe_open_token`, freed by
/// `shmq_pipe_free`. It is one of the end's holders from then until `shmq_pipe_close` or
/// `shmq_pipe_free`; the other side reads end-of-file once every holder of this end is gone
/// (closed, freed, or its process dead). A child made by `fork` holds every end its parent
/// held, through its copy of the handle.
#[derive(Debug)]
pub struct ShmqPipeEnd {
    /// `None` once closed.
    end: RwLock<Option<PipeEnd>>,
}

/// Runs `f` on the end behind `e`.
///
/// # Safety
///
/// `e` is NULL or a live handle.
unsafe fn with_end<R>(e: *const ShmqPipeEnd, f: impl FnOnce(&PipeEnd) -> Res<R>) -> Res<R> {
    // SAFETY: the caller's contract.
    let h = unsafe { handle(e, "pipe end") }?;
    let guard = h.end.read().unwrap_or_else(|p| p.into_inner());
    match guard.as_ref() {
        Some(end) => f(end),
        None => Err(Failure::new(
            ShmqStatus::SHMQ_HANDLE_CLOSED,
            "the pipe end was closed with shmq_pipe_close",
        )),
    }
}

fn new_handle(end: PipeEnd) -> *mut ShmqPipeEnd {
    into_handle(ShmqPipeEnd {
        end: RwLock::new(Some(end)),
    })
}

fn made_pair(
    a_out: *mut *mut ShmqPipeEnd,
    b_out: *mut *mut ShmqPipeEnd,
    make: impl FnOnce() -> Res<(PipeEnd, PipeEnd)>,
) -> Res {
    if a_out.is_null() || b_out.is_null() {
        return Err(Failure::null(if a_out.is_null() {
            "a_out"
        } else {
            "b_out"
        }));
    }
    let (a, b) = make()?;
    // SAFETY: checked non-NULL; the caller's contract makes them writable.
    unsafe {
        a_out.write(new_handle(a));
        b_out.write(new_handle(b));
    }
    Ok(())
}

/// Creates the named duplex pipe `name` with `opts` (NULL: the defaults; the capacity is per
/// direction) and stores handles on its two ends in `*a_out` and `*b_out`, both held by this
/// process; other processes attach with `shmq_pipe_open`. Fails with `SHMQ_ALREADY_EXISTS`,
/// `SHMQ_INVALID_NAME`, `SHMQ_INVALID_OPTIONS`, `SHMQ_SYSTEM`.
///
/// # Safety
///
/// `name` is NULL or a NUL-terminated string; `opts` NULL or a `shmq_options`; `a_out` and
/// `b_out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_pipe_create(
    name: *const c_char,
    opts: *const ShmqOptions,
    a_out: *mut *mut ShmqPipeEnd,
    b_out: *mut *mut ShmqPipeEnd,
) -> ShmqStatus {
    boundary(|| {
        // SAFETY: the caller's contract.
        let (name, opts) = (unsafe { string(name, "name") }?, unsafe { options(opts) });
        made_pair(a_out, b_out, || {
            Pipe::create(name, &opts).map_err(Into::into)
        })
    })
}

/// Creates the named one-way pipe `name`: `*rx_out` receives the receiving end (A), `*tx_out`
/// the sending end (B). Sending on A or receiving on B fails with `SHMQ_WRONG_DIRECTION`.
/// Errors as `shmq_pipe_create`.
///
/// # Safety
///
/// As `shmq_pipe_create`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_pipe_create_one_way(
    name: *const c_char,
    opts: *const ShmqOptions,
    rx_out: *mut *mut ShmqPipeEnd,
    tx_out: *mut *mut ShmqPipeEnd,
) -> ShmqStatus {
    boundary(|| {
        // SAFETY: the caller's contract.
        let (name, opts) = (unsafe { string(name, "name") }?, unsafe { options(opts) });
        made_pair(rx_out, tx_out, || {
            Pipe::create_one_way(name, &opts).map_err(Into::into)
        })
    })
}

fn opened(out: *mut *mut ShmqPipeEnd, name: &str, end: End) -> Res {
    if out.is_null() {
        return Err(Failure::null("out"));
    }
    let e = PipeEnd::open(name, end)?;
    // SAFETY: checked non-NULL; the caller's contract makes it writable.
    unsafe { out.write(new_handle(e)) };
    Ok(())
}

/// Attaches to end `end` of the existing named pipe `name` as one more holder. Fails with
/// `SHMQ_NOT_FOUND`, `SHMQ_INCOMPATIBLE`, `SHMQ_CORRUPT`, `SHMQ_DISCONNECTED` (every holder
/// of that end has left: end-of-file is final), `SHMQ_TOO_MANY_HOLDERS`, `SHMQ_BUSY` (the
/// holder table stayed locked for a second), `SHMQ_INVALID_NAME`, `SHMQ_SYSTEM`;
/// `SHMQ_INVALID_ARGUMENT` for an `end` that is neither `SHMQ_END_A` nor `SHMQ_END_B`.
///
/// # Safety
///
/// `name` is NULL or a NUL-terminated string; `out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_pipe_open(
    name: *const c_char,
    end: u32,
    out: *mut *mut ShmqPipeEnd,
) -> ShmqStatus {
    boundary(|| {
        // SAFETY: the caller's contract.
        let name = unsafe { string(name, "name") }?;
        let end = match end {
            0 => End::A,
            1 => End::B,
            other => {
                return Err(Failure::new(
                    ShmqStatus::SHMQ_INVALID_ARGUMENT,
                    format!("end {other} is neither SHMQ_END_A (0) nor SHMQ_END_B (1)"),
                ));
            }
        };
        opened(out, name, end)
    })
}

/// Attaches to the end named by a token from `shmq_pipe_hand_off` (in a process started
/// after the hand-off, typically given the token as an argument), taking over the hand-off's
/// place among the end's holders. Errors as `shmq_pipe_open`, and `SHMQ_INVALID_ARGUMENT` for
/// a string that is not a token.
///
/// # Safety
///
/// `token` is NULL or a NUL-terminated string; `out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_pipe_open_token(
    token: *const c_char,
    out: *mut *mut ShmqPipeEnd,
) -> ShmqStatus {
    boundary(|| {
        // SAFETY: the caller's contract.
        let token = unsafe { string(token, "token") }?;
        let (name, end) = parse_token(token)?;
        opened(out, name, end)
    })
}

/// The pipe name and end of a token `NAME:A` or `NAME:B`.
fn parse_token(token: &str) -> Res<(&str, End)> {
    let bad = || {
        Failure::new(
            ShmqStatus::SHMQ_INVALID_ARGUMENT,
            format!("{token:?} is not a pipe hand-off token (NAME:A or NAME:B)"),
        )
    };
    let (name, end) = token.rsplit_once(':').ok_or_else(bad)?;
    let end = match end {
        "A" => End::A,
        "B" => End::B,
        _ => return Err(bad()),
    };
    if name.is_empty() {
        return Err(bad());
    }
    Ok((name, end))
}

/// Removes the name `name`. Handles that are open keep working; the memory goes when the last
/// one is freed. Fails with `SHMQ_NOT_FOUND`, `SHMQ_INVALID_NAME`, `SHMQ_SYSTEM`.
///
/// # Safety
///
/// `name` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_pipe_unlink(name: *const c_char) -> ShmqStatus {
    boundary(|| {
        // SAFETY: the caller's contract.
        let name = unsafe { string(name, "name") }?;
        Pipe::unlink(name).map_err(Into::into)
    })
}

/// Releases this holder of the end, as `shmq_pipe_free` does, but reports a failure; the
/// handle must still be freed with `shmq_pipe_free`, and every other call on it fails with
/// `SHMQ_HANDLE_CLOSED`. If it was the end's last holder, the other side drains what is left
/// and then reads end-of-file (`SHMQ_DISCONNECTED`), and its blocked callers wake.
/// `SHMQ_HANDLE_CLOSED` if already closed or if another thread is inside a call on this
/// handle (nothing changes then); `SHMQ_CORRUPT`.
///
/// # Safety
///
/// `e` is NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_pipe_close(e: *const ShmqPipeEnd) -> ShmqStatus {
    boundary(|| {
        // SAFETY: the caller's contract.
        let h = unsafe { handle(e, "pipe end") }?;
        let mut guard = match h.end.try_write() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => {
                return Err(Failure::new(
                    ShmqStatus::SHMQ_HANDLE_CLOSED,
                    "another thread is inside a call on this pipe end: it cannot be closed now",
                ));
            }
        };
        let end = guard.take().ok_or_else(|| {
            Failure::new(
                ShmqStatus::SHMQ_HANDLE_CLOSED,
                "the pipe end was already closed",
            )
        })?;
        end.close().map_err(Into::into)
    })
}

/// Frees a pipe-end handle (NULL: nothing), releasing its holder if `shmq_pipe_close` did
/// not.
///
/// # Safety
///
/// `e` is NULL or a handle not freed yet, which no other thread is using.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_pipe_free(e: *mut ShmqPipeEnd) {
    // SAFETY: the caller's contract.
    unsafe { free_handle(e) }
}

/// Sends the `len` bytes at `data` (any length up to the maximum message size), waiting while
/// the outgoing direction is full. Fails with `SHMQ_DISCONNECTED` once no live holder of the
/// other end remains, `SHMQ_WRONG_DIRECTION`, `SHMQ_TOO_LARGE`, `SHMQ_NO_SPACE`,
/// `SHMQ_CORRUPT`, `SHMQ_HANDLE_CLOSED`.
///
/// # Safety
///
/// `e` is NULL or a live handle; `data` NULL or `len` readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_pipe_send(
    e: *const ShmqPipeEnd,
    data: *const u8,
    len: usize,
) -> ShmqStatus {
    boundary(|| {
        // SAFETY: the caller's contract.
        let msg = unsafe { bytes(data, len, "data") }?;
        // SAFETY: the caller's contract.
        unsafe { with_end(e, |p| p.send(msg).map_err(Into::into)) }
    })
}

/// `shmq_pipe_send` if a slot is free now; `SHMQ_FULL` otherwise.
///
/// # Safety
///
/// As `shmq_pipe_send`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_pipe_try_send(
    e: *const ShmqPipeEnd,
    data: *const u8,
    len: usize,
) -> ShmqStatus {
    boundary(|| {
        // SAFETY: the caller's contract.
        let msg = unsafe { bytes(data, len, "data") }?;
        // SAFETY: the caller's contract.
        unsafe { with_end(e, |p| p.try_send(msg).map_err(Into::into)) }
    })
}

/// `shmq_pipe_send`, waiting at most `timeout_ms` milliseconds for a free slot;
/// `SHMQ_TIMEOUT` then.
///
/// # Safety
///
/// As `shmq_pipe_send`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_pipe_send_timeout(
    e: *const ShmqPipeEnd,
    data: *const u8,
    len: usize,
    timeout_ms: u64,
) -> ShmqStatus {
    boundary(|| {
        // SAFETY: the caller's contract.
        let msg = unsafe { bytes(data, len, "data") }?;
        // SAFETY: the caller's contract.
        unsafe {
            with_end(e, |p| {
                p.send_timeout(msg, Duration::from_millis(timeout_ms))
                    .map_err(Into::into)
            })
        }
    })
}

/// How a receive waits.
#[derive(Clone, Copy)]
enum Wait {
    Forever,
    Never,
    Ms(u64),
}

unsafe fn recv_common(
    e: *const ShmqPipeEnd,
    buf: *mut u8,
    cap: usize,
    len: *mut usize,
    wait: Wait,
) -> ShmqStatus {
    let mut needed = None;
    let status = boundary(|| {
        // SAFETY: the caller's contract.
        let buf = unsafe { bytes_mut(buf, cap, "buf") }?;
        if len.is_null() {
            return Err(Failure::null("len"));
        }
        // SAFETY: the caller's contract.
        let n = unsafe {
            with_end(e, |p| match wait {
                Wait::Forever => p.recv_into(buf).map_err(Failure::from),
                Wait::Never => p.try_recv_into(buf).map_err(Failure::from),
                Wait::Ms(ms) => match deadline(ms) {
                    Some(d) => p.recv_into_deadline(buf, d).map_err(Failure::from),
                    None => p.recv_into(buf).map_err(Failure::from),
                },
            })
        }
        .inspect_err(|f| needed = f.needed)?;
        // SAFETY: checked non-NULL; the caller's contract.
        unsafe { write(len, "len", n) }
    });
    if let Some(n) = needed {
        // SAFETY: checked non-NULL before the receive.
        unsafe { len.write(n) };
    }
    status
}

/// Receives the oldest incoming message into `buf` (`cap` bytes) and stores its length in
/// `*len`, waiting while there is none. If it is longer than `cap`: `SHMQ_BUFFER_TOO_SMALL`,
/// the length needed in `*len`, and the message stays in the pipe. `SHMQ_DISCONNECTED`
/// (end-of-file) once the pipe is drained and no live holder of the other end remains;
/// `SHMQ_WRONG_DIRECTION`, `SHMQ_CORRUPT`, `SHMQ_HANDLE_CLOSED`.
///
/// # Safety
///
/// `e` is NULL or a live handle; `buf` NULL or `cap` writable bytes; `len` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_pipe_recv(
    e: *const ShmqPipeEnd,
    buf: *mut u8,
    cap: usize,
    len: *mut usize,
) -> ShmqStatus {
    // SAFETY: the caller's contract.
    unsafe { recv_common(e, buf, cap, len, Wait::Forever) }
}

/// `shmq_pipe_recv` if a message is there now; `SHMQ_EMPTY` otherwise (and
/// `SHMQ_DISCONNECTED` at end-of-file).
///
/// # Safety
///
/// As `shmq_pipe_recv`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_pipe_try_recv(
    e: *const ShmqPipeEnd,
    buf: *mut u8,
    cap: usize,
    len: *mut usize,
) -> ShmqStatus {
    // SAFETY: the caller's contract.
    unsafe { recv_common(e, buf, cap, len, Wait::Never) }
}

/// `shmq_pipe_recv`, waiting at most `timeout_ms` milliseconds; `SHMQ_TIMEOUT` then.
///
/// # Safety
///
/// As `shmq_pipe_recv`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_pipe_recv_timeout(
    e: *const ShmqPipeEnd,
    buf: *mut u8,
    cap: usize,
    len: *mut usize,
    timeout_ms: u64,
) -> ShmqStatus {
    // SAFETY: the caller's contract.
    unsafe { recv_common(e, buf, cap, len, Wait::Ms(timeout_ms)) }
}

/// Hands `msg` to C as a `malloc`ed buffer in `*data`, its length in `*len`.
///
/// # Safety
///
/// `data` and `len` are non-NULL and writable.
unsafe fn hand_out(msg: &[u8], data: *mut *mut u8, len: *mut usize) -> Res {
    // SAFETY: malloc of at least one byte; checked below.
    let p = unsafe { libc::malloc(msg.len().max(1)) }.cast::<u8>();
    if p.is_null() {
        return Err(Failure {
            errno: Some(libc::ENOMEM),
            ..Failure::new(
                ShmqStatus::SHMQ_SYSTEM,
                format!("cannot allocate {} bytes for a message", msg.len()),
            )
        });
    }
    // SAFETY: `p` holds `msg.len()` bytes; the caller's contract for the outputs.
    unsafe {
        std::ptr::copy_nonoverlapping(msg.as_ptr(), p, msg.len());
        data.write(p);
        len.write(msg.len());
    }
    Ok(())
}

unsafe fn recv_alloc(
    e: *const ShmqPipeEnd,
    data: *mut *mut u8,
    len: *mut usize,
    wait: Wait,
) -> ShmqStatus {
    boundary(|| {
        if data.is_null() || len.is_null() {
            return Err(Failure::null(if data.is_null() { "data" } else { "len" }));
        }
        // SAFETY: the caller's contract.
        let msg = unsafe {
            with_end(e, |p| match wait {
                Wait::Forever => p.recv().map_err(Into::into),
                Wait::Never => p.try_recv().map_err(Into::into),
                Wait::Ms(ms) => match deadline(ms) {
                    Some(d) => p.recv_deadline(d).map_err(Into::into),
                    None => p.recv().map_err(Into::into),
                },
            })
        }?;
        // SAFETY: checked non-NULL; the caller's contract.
        unsafe { hand_out(&msg, data, len) }
    })
}

/// Receives the oldest incoming message, of any length, into a new buffer from `malloc`:
/// `*data` (free it with `free`) and `*len`. Waits while there is none. Errors as
/// `shmq_pipe_recv`, without `SHMQ_BUFFER_TOO_SMALL`.
///
/// # Safety
///
/// `e` is NULL or a live handle; `data` and `len` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_pipe_recv_alloc(
    e: *const ShmqPipeEnd,
    data: *mut *mut u8,
    len: *mut usize,
) -> ShmqStatus {
    // SAFETY: the caller's contract.
    unsafe { recv_alloc(e, data, len, Wait::Forever) }
}

/// `shmq_pipe_recv_alloc` if a message is there now; `SHMQ_EMPTY` otherwise (and
/// `SHMQ_DISCONNECTED` at end-of-file).
///
/// # Safety
///
/// As `shmq_pipe_recv_alloc`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_pipe_try_recv_alloc(
    e: *const ShmqPipeEnd,
    data: *mut *mut u8,
    len: *mut usize,
) -> ShmqStatus {
    // SAFETY: the caller's contract.
    unsafe { recv_alloc(e, data, len, Wait::Never) }
}

/// `shmq_pipe_recv_alloc`, waiting at most `timeout_ms` milliseconds; `SHMQ_TIMEOUT` then.
///
/// # Safety
///
/// As `shmq_pipe_recv_alloc`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_pipe_recv_alloc_timeout(
    e: *const ShmqPipeEnd,
    data: *mut *mut u8,
    len: *mut usize,
    timeout_ms: u64,
) -> ShmqStatus {
    // SAFETY: the caller's contract.
    unsafe { recv_alloc(e, data, len, Wait::Ms(timeout_ms)) }
}

/// Stores in `*ready` whether a message is ready to be received, waiting at most
/// `timeout_ms` milliseconds for one; the message stays in the pipe. `SHMQ_DISCONNECTED` if
/// a receive would read end-of-file.
///
/// # Safety
///
/// `e` is NULL or a live handle; `ready` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_pipe_poll(
    e: *const ShmqPipeEnd,
    timeout_ms: u64,
    ready: *mut bool,
) -> ShmqStatus {
    boundary(|| {
        if ready.is_null() {
            return Err(Failure::null("ready"));
        }
        // SAFETY: the caller's contract.
        let r = unsafe {
            with_end(e, |p| {
                p.poll(Duration::from_millis(timeout_ms))
                    .map_err(Into::into)
            })
        }?;
        // SAFETY: checked non-NULL; the caller's contract.
        unsafe { write(ready, "ready", r) }
    })
}

/// Hands this end over to a process that will attach to it with `shmq_pipe_open_token` (or
/// `shmq_pipe_open`): leaves a token in the pipe's holder table that keeps the end open —
/// although this handle may be closed at once — until a process attaches, or until
/// `within_ms` milliseconds have passed. Writes the token, a NUL-terminated string such as
/// `"jobs:B"`, into `token` (`cap` bytes) and its length (without the NUL) into `*len`
/// (NULL allowed). If `cap` is too short nothing is handed off: `SHMQ_BUFFER_TOO_SMALL`, the
/// length needed (with the NUL) in `*len`. One token serves one process. Fails also with
/// `SHMQ_INVALID_ARGUMENT` for an end of an anonymous pipe, `SHMQ_TOO_MANY_HOLDERS`,
/// `SHMQ_DISCONNECTED`, `SHMQ_BUSY`, `SHMQ_CORRUPT`. A child made by `fork` needs no token.
///
/// # Safety
///
/// `e` is NULL or a live handle; `token` NULL or `cap` writable bytes; `len` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_pipe_hand_off(
    e: *const ShmqPipeEnd,
    within_ms: u64,
    token: *mut c_char,
    cap: usize,
    len: *mut usize,
) -> ShmqStatus {
    let mut needed = None;
    let status = boundary(|| {
        // SAFETY: the caller's contract.
        let buf = unsafe { bytes_mut(token.cast::<u8>(), cap, "token") }?;
        // SAFETY: the caller's contract.
        unsafe {
            with_end(e, |p| {
                let Backing::Named(name) = p.segment().backing() else {
                    return Err(Failure::new(
                        ShmqStatus::SHMQ_INVALID_ARGUMENT,
                        "only an end of a named pipe can be handed off by token",
                    ));
                };
                let text = format!("{name}:{}", p.end());
                if text.len() + 1 > buf.len() {
                    needed = Some(text.len() + 1);
                    return Err(Failure {
                        needed,
                        ..Failure::new(
                            ShmqStatus::SHMQ_BUFFER_TOO_SMALL,
                            format!(
                                "the token needs {} bytes, the buffer has {}",
                                text.len() + 1,
                                buf.len()
                            ),
                        )
                    });
                }
                p.hand_off(Duration::from_millis(within_ms))?;
                buf[..text.len()].copy_from_slice(text.as_bytes());
                buf[text.len()] = 0;
                write_opt(len, text.len());
                Ok(())
            })
        }
    });
    if let Some(n) = needed {
        // SAFETY: the caller's contract.
        unsafe { write_opt(len, n) };
    }
    status
}

/// Stores in `*out` which end this handle holds.
///
/// # Safety
///
/// `e` is NULL or a live handle; `out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_pipe_which_end(
    e: *const ShmqPipeEnd,
    out: *mut ShmqEnd,
) -> ShmqStatus {
    // SAFETY: the caller's contract.
    boundary(|| unsafe { with_end(e, |p| write(out, "out", p.end().into())) })
}

/// Stores in `*out` whether this end can send (false only for end A of a one-way pipe).
///
/// # Safety
///
/// `e` is NULL or a live handle; `out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_pipe_can_send(e: *const ShmqPipeEnd, out: *mut bool) -> ShmqStatus {
    // SAFETY: the caller's contract.
    boundary(|| unsafe { with_end(e, |p| write(out, "out", p.can_send())) })
}

/// Stores in `*out` whether this end can receive (false only for end B of a one-way pipe).
///
/// # Safety
///
/// `e` is NULL or a live handle; `out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_pipe_can_recv(e: *const ShmqPipeEnd, out: *mut bool) -> ShmqStatus {
    // SAFETY: the caller's contract.
    boundary(|| unsafe { with_end(e, |p| write(out, "out", p.can_recv())) })
}

/// Stores in `*out` how many messages each direction holds.
///
/// # Safety
///
/// `e` is NULL or a live handle; `out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_pipe_capacity(e: *const ShmqPipeEnd, out: *mut usize) -> ShmqStatus {
    // SAFETY: the caller's contract.
    boundary(|| unsafe { with_end(e, |p| write(out, "out", p.capacity())) })
}

/// Stores in `*out` the slot size: the largest message that travels in a slot.
///
/// # Safety
///
/// `e` is NULL or a live handle; `out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_pipe_message_size(
    e: *const ShmqPipeEnd,
    out: *mut usize,
) -> ShmqStatus {
    // SAFETY: the caller's contract.
    boundary(|| unsafe { with_end(e, |p| write(out, "out", p.message_size())) })
}

/// Stores in `*out` the largest message a send accepts.
///
/// # Safety
///
/// `e` is NULL or a live handle; `out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_pipe_max_message_size(
    e: *const ShmqPipeEnd,
    out: *mut usize,
) -> ShmqStatus {
    // SAFETY: the caller's contract.
    boundary(|| unsafe { with_end(e, |p| write(out, "out", p.max_message_size())) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_name_a_pipe_and_an_end() {
        assert!(matches!(parse_token("jobs:B"), Ok(("jobs", End::B))));
        assert!(matches!(parse_token("a:b:A"), Ok(("a:b", End::A))));
        for bad in ["jobs", "jobs:C", ":A", ""] {
            assert!(parse_token(bad).is_err(), "{bad}");
        }
    }
}
