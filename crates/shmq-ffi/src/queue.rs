//! `shmq_queue_*`: the bounded MPMC queue with the JoinableQueue task counter and `close`.

use std::ffi::{c_char, c_int, c_void};
use std::time::{Duration, Instant};

use shmq_core::{GetTimeoutError, Queue};

use crate::error::{Failure, Res, ShmqStatus, boundary};
use crate::{
    ShmqOptions, bytes, bytes_mut, deadline, free_handle, handle, into_handle, options, string,
    write, write_opt,
};

/// A queue handle: an opaque pointer, made by `shmq_queue_create`, `shmq_queue_open`,
/// `shmq_queue_open_or_create` or `shmq_queue_anonymous`, freed by `shmq_queue_free`. One
/// handle serves any number of threads; a child made by `fork` may use its copy.
#[derive(Debug)]
pub struct ShmqQueue(Queue);

/// A reader of a message in place, in shared memory (`data`, `len` bytes, valid only during
/// the call), with the caller's `ctx`. Returning 0 takes the message; any other value leaves
/// it first in the queue and the get returns `SHMQ_REFUSED`.
pub type ShmqReadFn =
    Option<unsafe extern "C" fn(data: *const u8, len: usize, ctx: *mut c_void) -> c_int>;

/// A reader of each message of a batch in place (`data`, `len` bytes, valid only during the
/// call), with the caller's `ctx`.
pub type ShmqBatchFn = Option<unsafe extern "C" fn(data: *const u8, len: usize, ctx: *mut c_void)>;

unsafe fn queue<'a>(q: *const ShmqQueue) -> Res<&'a Queue> {
    // SAFETY: the caller's contract for `q`.
    Ok(&unsafe { handle(q, "queue") }?.0)
}

fn made(out: *mut *mut ShmqQueue, make: impl FnOnce() -> Res<Queue>) -> Res {
    if out.is_null() {
        return Err(Failure::null("out"));
    }
    let q = make()?;
    // SAFETY: checked non-NULL; the caller's contract makes it writable.
    unsafe { out.write(into_handle(ShmqQueue(q))) };
    Ok(())
}

/// Creates a named queue (`/dev/shm/NAME`) with `opts` (NULL: the defaults) and stores its
/// handle in `*out`. Fails with `SHMQ_ALREADY_EXISTS` if the name exists; also
/// `SHMQ_INVALID_NAME`, `SHMQ_INVALID_OPTIONS`, `SHMQ_SYSTEM`. Does not block.
///
/// # Safety
///
/// `name` is NULL or a NUL-terminated string; `opts` NULL or a `shmq_options`; `out` NULL or
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_queue_create(
    name: *const c_char,
    opts: *const ShmqOptions,
    out: *mut *mut ShmqQueue,
) -> ShmqStatus {
    boundary(|| {
        // SAFETY: the caller's contract.
        let (name, opts) = (unsafe { string(name, "name") }?, unsafe { options(opts) });
        made(out, || Queue::create(name, &opts).map_err(Into::into))
    })
}

/// Opens the named queue `name`, or creates it with `opts` (NULL: the defaults) if it does
/// not exist. Errors as `shmq_queue_create` and `shmq_queue_open`.
///
/// # Safety
///
/// As `shmq_queue_create`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_queue_open_or_create(
    name: *const c_char,
    opts: *const ShmqOptions,
    out: *mut *mut ShmqQueue,
) -> ShmqStatus {
    boundary(|| {
        // SAFETY: the caller's contract.
        let (name, opts) = (unsafe { string(name, "name") }?, unsafe { options(opts) });
        made(out, || {
            Queue::open_or_create(name, &opts).map_err(Into::into)
        })
    })
}

/// Opens the existing named queue `name` and stores its handle in `*out`. Fails with
/// `SHMQ_NOT_FOUND`, `SHMQ_INCOMPATIBLE` (another kind of segment, or another layout version
/// than this library's), `SHMQ_CORRUPT`, `SHMQ_INVALID_NAME`, `SHMQ_SYSTEM`. Does not block.
///
/// # Safety
///
/// `name` is NULL or a NUL-terminated string; `out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_queue_open(
    name: *const c_char,
    out: *mut *mut ShmqQueue,
) -> ShmqStatus {
    boundary(|| {
        // SAFETY: the caller's contract.
        let name = unsafe { string(name, "name") }?;
        made(out, || Queue::open(name).map_err(Into::into))
    })
}

/// Creates a queue in an anonymous shared mapping, with `opts` (NULL: the defaults): it has no
/// name; children made by `fork` after this call share it through their copy of the handle.
/// Messages larger than a slot travel in hidden side segments in /dev/shm, removed when the
/// last holder frees the queue. Fails with `SHMQ_INVALID_OPTIONS`, `SHMQ_SYSTEM`.
///
/// # Safety
///
/// `opts` is NULL or a `shmq_options`; `out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_queue_anonymous(
    opts: *const ShmqOptions,
    out: *mut *mut ShmqQueue,
) -> ShmqStatus {
    boundary(|| {
        // SAFETY: the caller's contract.
        let opts = unsafe { options(opts) };
        made(out, || Queue::anonymous(&opts).map_err(Into::into))
    })
}

/// Removes the name `name` (and the side segments of its large messages). Handles that are
/// open keep working; the memory goes when the last one is freed. Fails with
/// `SHMQ_NOT_FOUND`, `SHMQ_INVALID_NAME`, `SHMQ_SYSTEM`.
///
/// # Safety
///
/// `name` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_queue_unlink(name: *const c_char) -> ShmqStatus {
    boundary(|| {
        // SAFETY: the caller's contract.
        let name = unsafe { string(name, "name") }?;
        Queue::unlink(name).map_err(Into::into)
    })
}

/// Frees a queue handle (NULL: nothing). The queue itself stays for its other holders.
///
/// # Safety
///
/// `q` is NULL or a handle not freed yet, which no other thread is using.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_queue_free(q: *mut ShmqQueue) {
    // SAFETY: the caller's contract.
    unsafe { free_handle(q) }
}

/// Puts the `len` bytes at `data` (any length up to the maximum message size; 0 is a
/// message), waiting while the queue is full. When it returns `SHMQ_OK` the message is in
/// shared memory. Fails with `SHMQ_CLOSED`, `SHMQ_TOO_LARGE`, `SHMQ_NO_SPACE`, `SHMQ_CORRUPT`.
///
/// # Safety
///
/// `q` is NULL or a live handle; `data` NULL or `len` readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_queue_put(
    q: *const ShmqQueue,
    data: *const u8,
    len: usize,
) -> ShmqStatus {
    boundary(|| {
        // SAFETY: the caller's contract.
        let (q, msg) = unsafe { (queue(q)?, bytes(data, len, "data")?) };
        q.put(msg).map_err(Into::into)
    })
}

/// Puts the message if a slot is free now; `SHMQ_FULL` otherwise (it does not wait for room),
/// and the errors of `shmq_queue_put`.
///
/// # Safety
///
/// As `shmq_queue_put`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_queue_try_put(
    q: *const ShmqQueue,
    data: *const u8,
    len: usize,
) -> ShmqStatus {
    boundary(|| {
        // SAFETY: the caller's contract.
        let (q, msg) = unsafe { (queue(q)?, bytes(data, len, "data")?) };
        q.try_put(msg).map_err(Into::into)
    })
}

/// Puts the message, waiting at most `timeout_ms` milliseconds for a free slot;
/// `SHMQ_TIMEOUT` then, and the errors of `shmq_queue_put`.
///
/// # Safety
///
/// As `shmq_queue_put`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_queue_put_timeout(
    q: *const ShmqQueue,
    data: *const u8,
    len: usize,
    timeout_ms: u64,
) -> ShmqStatus {
    boundary(|| {
        // SAFETY: the caller's contract.
        let (q, msg) = unsafe { (queue(q)?, bytes(data, len, "data")?) };
        q.put_timeout(msg, Duration::from_millis(timeout_ms))
            .map_err(Into::into)
    })
}

/// Puts `count` messages (message `i` is the `lens[i]` bytes at `msgs[i]`), in order,
/// waiting while the queue is full. Every length is checked first: one over the maximum
/// fails the call with `SHMQ_TOO_LARGE` before anything is put. On other failures
/// (`SHMQ_CLOSED`, `SHMQ_NO_SPACE`, `SHMQ_CORRUPT`) exactly the first `*put` messages were
/// queued. `put` may be NULL.
///
/// # Safety
///
/// `q` is NULL or a live handle; `msgs` and `lens` NULL or arrays of `count`, each `msgs[i]`
/// NULL or `lens[i]` readable bytes; `put` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_queue_put_many(
    q: *const ShmqQueue,
    msgs: *const *const u8,
    lens: *const usize,
    count: usize,
    put: *mut usize,
) -> ShmqStatus {
    boundary(|| {
        // SAFETY: the caller's contract.
        let (q, batch) = unsafe { (queue(q)?, batch(msgs, lens, count)?) };
        match q.put_many(&batch) {
            Ok(()) => {
                // SAFETY: the caller's contract.
                unsafe { write_opt(put, count) };
                Ok(())
            }
            // SAFETY: the caller's contract; `map` hands over how many were put.
            Err(e) => Err(Failure::from(e.map(|n| unsafe { write_opt(put, n) }))),
        }
    })
}

/// Puts the front of a batch if slots are free now, with one claim, and stores in `*put` how
/// many it put (at least 1 on success): as many of the messages that fit a slot as there
/// are free slots, or one larger message alone. `SHMQ_FULL` if no slot is free (nothing is
/// put), `SHMQ_TOO_LARGE` before anything is put, and the errors of `shmq_queue_put`. Call
/// again with the rest until all is put.
///
/// # Safety
///
/// As `shmq_queue_put_many`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_queue_try_put_many(
    q: *const ShmqQueue,
    msgs: *const *const u8,
    lens: *const usize,
    count: usize,
    put: *mut usize,
) -> ShmqStatus {
    boundary(|| {
        // SAFETY: the caller's contract.
        let (q, batch) = unsafe { (queue(q)?, batch(msgs, lens, count)?) };
        let n = q
            .try_put_many(&batch)
            .map_err(|e| Failure::from(e.map(|_| ())));
        // SAFETY: the caller's contract.
        unsafe { write_opt(put, *n.as_ref().unwrap_or(&0)) };
        n.map(|_| ())
    })
}

/// The messages of a batch as slices.
///
/// # Safety
///
/// As `shmq_queue_put_many`.
unsafe fn batch<'a>(
    msgs: *const *const u8,
    lens: *const usize,
    count: usize,
) -> Res<Vec<&'a [u8]>> {
    if count == 0 {
        return Ok(Vec::new());
    }
    if msgs.is_null() || lens.is_null() {
        return Err(Failure::null(if msgs.is_null() { "msgs" } else { "lens" }));
    }
    // SAFETY: the caller's contract: arrays of `count`.
    let (ptrs, lens) = unsafe {
        (
            std::slice::from_raw_parts(msgs, count),
            std::slice::from_raw_parts(lens, count),
        )
    };
    ptrs.iter()
        .zip(lens)
        // SAFETY: the caller's contract for each message.
        .map(|(&p, &l)| unsafe { bytes(p, l, "msgs[i]") })
        .collect()
}

/// How a get waits.
#[derive(Clone, Copy)]
enum Wait {
    Forever,
    Never,
    Until(Instant),
}

impl Wait {
    fn after_ms(timeout_ms: u64) -> Wait {
        deadline(timeout_ms).map_or(Wait::Forever, Wait::Until)
    }
}

fn get_into(q: &Queue, buf: &mut [u8], wait: Wait) -> Res<usize> {
    match wait {
        Wait::Forever => q.get_into(buf).map_err(Into::into),
        Wait::Never => q.try_get_into(buf).map_err(Into::into),
        Wait::Until(d) => q.get_into_deadline(buf, d).map_err(Into::into),
    }
}

/// Shared by the copying gets: the length on success, or the length needed when the buffer is
/// too small.
unsafe fn get_common(
    q: *const ShmqQueue,
    buf: *mut u8,
    cap: usize,
    len: *mut usize,
    wait: Wait,
) -> ShmqStatus {
    let mut needed = None;
    let status = boundary(|| {
        // SAFETY: the caller's contract.
        let (q, buf) = unsafe { (queue(q)?, bytes_mut(buf, cap, "buf")?) };
        if len.is_null() {
            return Err(Failure::null("len"));
        }
        match get_into(q, buf, wait) {
            // SAFETY: checked non-NULL; the caller's contract.
            Ok(n) => unsafe { write(len, "len", n) },
            Err(f) => {
                needed = f.needed;
                Err(f)
            }
        }
    });
    if let Some(n) = needed {
        // SAFETY: checked non-NULL above (a too-small buffer is reported only past the check).
        unsafe { len.write(n) };
    }
    status
}

/// Takes the oldest message into `buf` (`cap` bytes) and stores its length in `*len`,
/// waiting while the queue is empty. If the message is longer than `cap`, it fails with
/// `SHMQ_BUFFER_TOO_SMALL`, stores the length needed in `*len`, and leaves the message first
/// in the queue. `SHMQ_CLOSED` once the queue is closed and drained; `SHMQ_CORRUPT`.
///
/// # Safety
///
/// `q` is NULL or a live handle; `buf` NULL or `cap` writable bytes; `len` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_queue_get(
    q: *const ShmqQueue,
    buf: *mut u8,
    cap: usize,
    len: *mut usize,
) -> ShmqStatus {
    // SAFETY: the caller's contract.
    unsafe { get_common(q, buf, cap, len, Wait::Forever) }
}

/// `shmq_queue_get` if a message is there now; `SHMQ_EMPTY` otherwise (it does not wait).
///
/// # Safety
///
/// As `shmq_queue_get`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_queue_try_get(
    q: *const ShmqQueue,
    buf: *mut u8,
    cap: usize,
    len: *mut usize,
) -> ShmqStatus {
    // SAFETY: the caller's contract.
    unsafe { get_common(q, buf, cap, len, Wait::Never) }
}

/// `shmq_queue_get`, waiting at most `timeout_ms` milliseconds; `SHMQ_TIMEOUT` then.
///
/// # Safety
///
/// As `shmq_queue_get`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_queue_get_timeout(
    q: *const ShmqQueue,
    buf: *mut u8,
    cap: usize,
    len: *mut usize,
    timeout_ms: u64,
) -> ShmqStatus {
    // SAFETY: the caller's contract.
    unsafe { get_common(q, buf, cap, len, Wait::after_ms(timeout_ms)) }
}

unsafe fn get_with_common(
    q: *const ShmqQueue,
    read: ShmqReadFn,
    ctx: *mut c_void,
    wait: Wait,
) -> ShmqStatus {
    boundary(|| {
        // SAFETY: the caller's contract.
        let q = unsafe { queue(q) }?;
        let read = read.ok_or_else(|| Failure::null("read"))?;
        let d = match wait {
            Wait::Forever => None,
            Wait::Never => Some(Instant::now()),
            Wait::Until(d) => Some(d),
        };
        // SAFETY: the caller's contract for `read` and `ctx`; `m` lives for the call.
        let r = q.get_with_or_keep(d, |m| match unsafe { read(m.as_ptr(), m.len(), ctx) } {
            0 => Ok(()),
            code => Err(code),
        });
        match r {
            Ok(Ok(())) => Ok(()),
            Ok(Err(code)) => Err(Failure::new(
                ShmqStatus::SHMQ_REFUSED,
                format!("the callback returned {code}: the message stays in the queue"),
            )),
            Err(GetTimeoutError::Timeout) if matches!(wait, Wait::Never) => Err(Failure::new(
                ShmqStatus::SHMQ_EMPTY,
                "receiving from an empty queue",
            )),
            Err(e) => Err(e.into()),
        }
    })
}

/// Zero-copy get: waits for a message and calls `read(data, len, ctx)` on it in place, in
/// shared memory. If `read` returns 0 the message is taken; otherwise it stays first in the
/// queue and the call returns `SHMQ_REFUSED`. While `read` runs, this process has reserved
/// the message and holds the queue's lock: other puts and gets wait, so keep it short, and do
/// not call libshmq on this queue from inside it. A process killed inside `read` takes
/// nothing. `SHMQ_CLOSED` once closed and drained.
///
/// # Safety
///
/// `q` is NULL or a live handle; `read` NULL or a function safe to call with `ctx`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_queue_get_with(
    q: *const ShmqQueue,
    read: ShmqReadFn,
    ctx: *mut c_void,
) -> ShmqStatus {
    // SAFETY: the caller's contract.
    unsafe { get_with_common(q, read, ctx, Wait::Forever) }
}

/// `shmq_queue_get_with` if a message is there now; `SHMQ_EMPTY` otherwise.
///
/// # Safety
///
/// As `shmq_queue_get_with`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_queue_try_get_with(
    q: *const ShmqQueue,
    read: ShmqReadFn,
    ctx: *mut c_void,
) -> ShmqStatus {
    // SAFETY: the caller's contract.
    unsafe { get_with_common(q, read, ctx, Wait::Never) }
}

/// `shmq_queue_get_with`, waiting at most `timeout_ms` milliseconds; `SHMQ_TIMEOUT` then.
///
/// # Safety
///
/// As `shmq_queue_get_with`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_queue_get_with_timeout(
    q: *const ShmqQueue,
    read: ShmqReadFn,
    ctx: *mut c_void,
    timeout_ms: u64,
) -> ShmqStatus {
    // SAFETY: the caller's contract.
    unsafe { get_with_common(q, read, ctx, Wait::after_ms(timeout_ms)) }
}

/// Batch get: waits for at least one message, then calls `read(data, len, ctx)` on up to
/// `max` messages in order, in place, and takes them all; stores how many in `*got` (NULL
/// allowed). A process killed inside `read` takes none of the batch. `max == 0` returns at
/// once with 0. `SHMQ_CLOSED` once closed and drained.
///
/// # Safety
///
/// `q` is NULL or a live handle; `read` NULL or a function safe to call with `ctx`; `got`
/// NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_queue_get_many(
    q: *const ShmqQueue,
    max: usize,
    read: ShmqBatchFn,
    ctx: *mut c_void,
    got: *mut usize,
) -> ShmqStatus {
    boundary(|| {
        // SAFETY: the caller's contract.
        let q = unsafe { queue(q) }?;
        let read = read.ok_or_else(|| Failure::null("read"))?;
        // SAFETY: the caller's contract for `read` and `ctx`; `m` lives for the call.
        let n = q.get_many_with(max, |m| unsafe { read(m.as_ptr(), m.len(), ctx) })?;
        // SAFETY: the caller's contract.
        unsafe { write_opt(got, n) };
        Ok(())
    })
}

/// Batch get of the messages there now: takes up to `max` with one claim and calls `read`
/// on each (copies, in order); `SHMQ_EMPTY` if there is none. `*got` (NULL allowed) is how
/// many.
///
/// # Safety
///
/// As `shmq_queue_get_many`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_queue_try_get_many(
    q: *const ShmqQueue,
    max: usize,
    read: ShmqBatchFn,
    ctx: *mut c_void,
    got: *mut usize,
) -> ShmqStatus {
    boundary(|| {
        // SAFETY: the caller's contract.
        let q = unsafe { queue(q) }?;
        let read = read.ok_or_else(|| Failure::null("read"))?;
        let msgs = q.try_get_many(max)?;
        for m in &msgs {
            // SAFETY: the caller's contract for `read` and `ctx`.
            unsafe { read(m.as_ptr(), m.len(), ctx) };
        }
        // SAFETY: the caller's contract.
        unsafe { write_opt(got, msgs.len()) };
        Ok(())
    })
}

/// Marks one task done (JoinableQueue's `task_done`): every put is a task until then.
/// `SHMQ_NO_UNFINISHED_TASKS` if every put is already done (nothing changes).
///
/// # Safety
///
/// `q` is NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_queue_task_done(q: *const ShmqQueue) -> ShmqStatus {
    // SAFETY: the caller's contract.
    boundary(|| unsafe { queue(q) }?.task_done().map_err(Into::into))
}

/// Waits until every task put so far is done (`task_done` as many times as puts).
///
/// # Safety
///
/// `q` is NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_queue_join(q: *const ShmqQueue) -> ShmqStatus {
    // SAFETY: the caller's contract.
    boundary(|| unsafe { queue(q) }?.join().map_err(Into::into))
}

/// `shmq_queue_join`, waiting at most `timeout_ms` milliseconds; `SHMQ_TIMEOUT` then.
///
/// # Safety
///
/// `q` is NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_queue_join_timeout(
    q: *const ShmqQueue,
    timeout_ms: u64,
) -> ShmqStatus {
    boundary(|| {
        // SAFETY: the caller's contract.
        let q = unsafe { queue(q) }?;
        q.join_timeout(Duration::from_millis(timeout_ms))
            .map_err(Into::into)
    })
}

/// Stores in `*out` the number of tasks put and not yet marked done. Does not block.
///
/// # Safety
///
/// `q` is NULL or a live handle; `out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_queue_unfinished(q: *const ShmqQueue, out: *mut u64) -> ShmqStatus {
    // SAFETY: the caller's contract.
    boundary(|| unsafe { write(out, "out", queue(q)?.unfinished()) })
}

/// Closes the queue for every holder: puts fail with `SHMQ_CLOSED` from now on, gets drain
/// what is queued and then fail with `SHMQ_CLOSED`, blocked callers wake. Final.
///
/// # Safety
///
/// `q` is NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_queue_close(q: *const ShmqQueue) -> ShmqStatus {
    // SAFETY: the caller's contract.
    boundary(|| unsafe { queue(q) }?.close().map_err(Into::into))
}

/// Stores in `*out` whether the queue is closed (1) or not (0).
///
/// # Safety
///
/// `q` is NULL or a live handle; `out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_queue_is_closed(q: *const ShmqQueue, out: *mut bool) -> ShmqStatus {
    // SAFETY: the caller's contract.
    boundary(|| unsafe { write(out, "out", queue(q)?.is_closed()) })
}

/// Stores in `*out` the number of messages waiting.
///
/// # Safety
///
/// `q` is NULL or a live handle; `out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_queue_len(q: *const ShmqQueue, out: *mut usize) -> ShmqStatus {
    // SAFETY: the caller's contract.
    boundary(|| unsafe { write(out, "out", queue(q)?.len()) })
}

/// Stores in `*out` how many messages fit.
///
/// # Safety
///
/// `q` is NULL or a live handle; `out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_queue_capacity(q: *const ShmqQueue, out: *mut usize) -> ShmqStatus {
    // SAFETY: the caller's contract.
    boundary(|| unsafe { write(out, "out", queue(q)?.capacity()) })
}

/// Stores in `*out` the slot size: the largest message that travels in a slot.
///
/// # Safety
///
/// `q` is NULL or a live handle; `out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_queue_message_size(
    q: *const ShmqQueue,
    out: *mut usize,
) -> ShmqStatus {
    // SAFETY: the caller's contract.
    boundary(|| unsafe { write(out, "out", queue(q)?.message_size()) })
}

/// Stores in `*out` the largest message a put accepts.
///
/// # Safety
///
/// `q` is NULL or a live handle; `out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_queue_max_message_size(
    q: *const ShmqQueue,
    out: *mut usize,
) -> ShmqStatus {
    // SAFETY: the caller's contract.
    boundary(|| unsafe { write(out, "out", queue(q)?.max_message_size()) })
}
