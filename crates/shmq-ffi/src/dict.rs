//! `shmq_dict_*`: the shared string -> int64 dict's counters.

use std::ffi::c_char;

use shmq_dict::{Options, SharedDict};

use crate::error::{Failure, Res, ShmqStatus, boundary};
use crate::{free_handle, handle, into_handle, string, write, write_opt};

/// A handle on a shared dict of counters (string keys, `int64_t` values): an opaque pointer,
/// made by `shmq_dict_create` or `shmq_dict_open`, freed by `shmq_dict_free`. Every call is
/// atomic across processes (the dict's robust lock).
#[derive(Debug)]
pub struct ShmqDict(SharedDict);

unsafe fn dict<'a>(d: *const ShmqDict) -> Res<&'a SharedDict> {
    // SAFETY: the caller's contract.
    Ok(&unsafe { handle(d, "dict") }?.0)
}

fn made(out: *mut *mut ShmqDict, make: impl FnOnce() -> Res<SharedDict>) -> Res {
    if out.is_null() {
        return Err(Failure::null("out"));
    }
    let d = make()?;
    // SAFETY: checked non-NULL; the caller's contract makes it writable.
    unsafe { out.write(into_handle(ShmqDict(d))) };
    Ok(())
}

fn key_missing(key: &str) -> Failure {
    Failure::new(ShmqStatus::SHMQ_KEY_NOT_FOUND, format!("no key {key:?}"))
}

/// Creates the named dict `name` with room for `capacity` keys of up to `max_key_len` bytes
/// (0 for either: the default, 256 keys of 64 bytes), mode 0600. Fails with
/// `SHMQ_ALREADY_EXISTS`, `SHMQ_INVALID_NAME`, `SHMQ_INVALID_OPTIONS`, `SHMQ_SYSTEM`.
///
/// # Safety
///
/// `name` is NULL or a NUL-terminated string; `out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_dict_create(
    name: *const c_char,
    capacity: usize,
    max_key_len: usize,
    out: *mut *mut ShmqDict,
) -> ShmqStatus {
    boundary(|| {
        // SAFETY: the caller's contract.
        let name = unsafe { string(name, "name") }?;
        let d = Options::default();
        let opts = Options {
            capacity: if capacity == 0 { d.capacity } else { capacity },
            max_key_len: if max_key_len == 0 {
                d.max_key_len
            } else {
                max_key_len
            },
            ..d
        };
        made(out, || SharedDict::create(name, &opts).map_err(Into::into))
    })
}

/// Opens the existing named dict `name`. Fails with `SHMQ_NOT_FOUND`, `SHMQ_INCOMPATIBLE`,
/// `SHMQ_CORRUPT`, `SHMQ_INVALID_NAME`, `SHMQ_SYSTEM`.
///
/// # Safety
///
/// `name` is NULL or a NUL-terminated string; `out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_dict_open(
    name: *const c_char,
    out: *mut *mut ShmqDict,
) -> ShmqStatus {
    boundary(|| {
        // SAFETY: the caller's contract.
        let name = unsafe { string(name, "name") }?;
        made(out, || SharedDict::open(name).map_err(Into::into))
    })
}

/// Removes the name `name`; open handles keep working. Fails with `SHMQ_NOT_FOUND`,
/// `SHMQ_INVALID_NAME`, `SHMQ_SYSTEM`.
///
/// # Safety
///
/// `name` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_dict_unlink(name: *const c_char) -> ShmqStatus {
    boundary(|| {
        // SAFETY: the caller's contract.
        let name = unsafe { string(name, "name") }?;
        SharedDict::unlink(name).map_err(Into::into)
    })
}

/// Frees a dict handle (NULL: nothing).
///
/// # Safety
///
/// `d` is NULL or a handle not freed yet, which no other thread is using.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_dict_free(d: *mut ShmqDict) {
    // SAFETY: the caller's contract.
    unsafe { free_handle(d) }
}

/// Stores the value of `key` in `*value`; `SHMQ_KEY_NOT_FOUND` if there is none,
/// `SHMQ_INVALID_KEY` for an empty or too long key.
///
/// # Safety
///
/// `d` is NULL or a live handle; `key` NULL or a NUL-terminated string; `value` NULL or
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_dict_get(
    d: *const ShmqDict,
    key: *const c_char,
    value: *mut i64,
) -> ShmqStatus {
    boundary(|| {
        // SAFETY: the caller's contract.
        let (d, key) = unsafe { (dict(d)?, string(key, "key")?) };
        if value.is_null() {
            return Err(Failure::null("value"));
        }
        let v = d.get(key)?.ok_or_else(|| key_missing(key))?;
        // SAFETY: checked non-NULL; the caller's contract.
        unsafe { write(value, "value", v) }
    })
}

/// Sets `key` to `value`. `SHMQ_DICT_FULL` for a new key when every entry holds one,
/// `SHMQ_INVALID_KEY`.
///
/// # Safety
///
/// `d` is NULL or a live handle; `key` NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_dict_set(
    d: *const ShmqDict,
    key: *const c_char,
    value: i64,
) -> ShmqStatus {
    boundary(|| {
        // SAFETY: the caller's contract.
        let (d, key) = unsafe { (dict(d)?, string(key, "key")?) };
        d.insert(key, value).map(|_| ()).map_err(Into::into)
    })
}

/// Adds `delta` to the counter `key` (created at 0 if missing) in one atomic step across
/// processes, and stores the new value in `*value` (NULL allowed). `SHMQ_OVERFLOW` if the
/// result leaves the range of `int64_t` (nothing changes), `SHMQ_DICT_FULL`,
/// `SHMQ_INVALID_KEY`.
///
/// # Safety
///
/// `d` is NULL or a live handle; `key` NULL or a NUL-terminated string; `value` NULL or
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_dict_add(
    d: *const ShmqDict,
    key: *const c_char,
    delta: i64,
    value: *mut i64,
) -> ShmqStatus {
    boundary(|| {
        // SAFETY: the caller's contract.
        let (d, key) = unsafe { (dict(d)?, string(key, "key")?) };
        let v = d.add(key, delta)?;
        // SAFETY: the caller's contract.
        unsafe { write_opt(value, v) };
        Ok(())
    })
}

/// Removes `key` and stores its value in `*value` (NULL allowed); `SHMQ_KEY_NOT_FOUND` if
/// there is none.
///
/// # Safety
///
/// `d` is NULL or a live handle; `key` NULL or a NUL-terminated string; `value` NULL or
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_dict_remove(
    d: *const ShmqDict,
    key: *const c_char,
    value: *mut i64,
) -> ShmqStatus {
    boundary(|| {
        // SAFETY: the caller's contract.
        let (d, key) = unsafe { (dict(d)?, string(key, "key")?) };
        let v = d.remove(key)?.ok_or_else(|| key_missing(key))?;
        // SAFETY: the caller's contract.
        unsafe { write_opt(value, v) };
        Ok(())
    })
}

/// Stores in `*out` the number of keys.
///
/// # Safety
///
/// `d` is NULL or a live handle; `out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_dict_len(d: *const ShmqDict, out: *mut usize) -> ShmqStatus {
    boundary(|| {
        // SAFETY: the caller's contract.
        let d = unsafe { dict(d) }?;
        if out.is_null() {
            return Err(Failure::null("out"));
        }
        let n = d.len()?;
        // SAFETY: checked non-NULL; the caller's contract.
        unsafe { write(out, "out", n) }
    })
}

/// Removes every key.
///
/// # Safety
///
/// `d` is NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_dict_clear(d: *const ShmqDict) -> ShmqStatus {
    // SAFETY: the caller's contract.
    boundary(|| unsafe { dict(d) }?.clear().map_err(Into::into))
}
