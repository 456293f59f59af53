//! `shmq_lock_*`: the named cross-process lock, with its owner-died report.

use std::cell::RefCell;
use std::ffi::c_char;
use std::sync::Arc;
use std::time::Duration;

use shmq_dict::{Lock, LockGuard};

use crate::error::{Failure, Res, ShmqStatus, boundary};
use crate::{free_handle, handle, into_handle, string, write_opt};

/// A handle on a named lock shared by processes (a robust mutex with an owner): an opaque
/// pointer, made by `shmq_lock_create`, `shmq_lock_open` or `shmq_lock_open_or_create`, freed
/// by `shmq_lock_free`. The thread that acquires it must release it. It is Rust's
/// `shmq_dict::Lock` and Python's `shmq.RobustMutex` by name; Python's `shmq.Lock` (which any
/// process may release) is another format, which `shmq_lock_open` refuses with
/// `SHMQ_INCOMPATIBLE`.
#[derive(Debug)]
pub struct ShmqLock(Arc<Lock>);

/// A lock this thread holds: the guard, and the lock it borrows (kept alive by the `Arc`,
/// dropped after the guard: fields drop in order).
struct Held {
    _guard: LockGuard<'static>,
    lock: Arc<Lock>,
}

thread_local! {
    /// The locks the calling thread holds through libshmq. A thread that ends holding one
    /// releases it here.
    static HELD: RefCell<Vec<Held>> = const { RefCell::new(Vec::new()) };
}

unsafe fn lock_of<'a>(l: *const ShmqLock) -> Res<&'a Arc<Lock>> {
    // SAFETY: the caller's contract.
    Ok(&unsafe { handle(l, "lock") }?.0)
}

fn made(out: *mut *mut ShmqLock, make: impl FnOnce() -> Res<Lock>) -> Res {
    if out.is_null() {
        return Err(Failure::null("out"));
    }
    let l = make()?;
    // SAFETY: checked non-NULL; the caller's contract makes it writable.
    unsafe { out.write(into_handle(ShmqLock(Arc::new(l)))) };
    Ok(())
}

/// Creates the named lock `name` (mode 0600). Fails with `SHMQ_ALREADY_EXISTS`,
/// `SHMQ_INVALID_NAME`, `SHMQ_SYSTEM`.
///
/// # Safety
///
/// `name` is NULL or a NUL-terminated string; `out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_lock_create(
    name: *const c_char,
    out: *mut *mut ShmqLock,
) -> ShmqStatus {
    boundary(|| {
        // SAFETY: the caller's contract.
        let name = unsafe { string(name, "name") }?;
        made(out, || Lock::create(name).map_err(Into::into))
    })
}

/// Opens the existing named lock `name`. Fails with `SHMQ_NOT_FOUND`, `SHMQ_INCOMPATIBLE`,
/// `SHMQ_CORRUPT`, `SHMQ_INVALID_NAME`, `SHMQ_SYSTEM`.
///
/// # Safety
///
/// `name` is NULL or a NUL-terminated string; `out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_lock_open(
    name: *const c_char,
    out: *mut *mut ShmqLock,
) -> ShmqStatus {
    boundary(|| {
        // SAFETY: the caller's contract.
        let name = unsafe { string(name, "name") }?;
        made(out, || Lock::open(name).map_err(Into::into))
    })
}

/// Opens the named lock `name`, creating it if it does not exist.
///
/// # Safety
///
/// `name` is NULL or a NUL-terminated string; `out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_lock_open_or_create(
    name: *const c_char,
    out: *mut *mut ShmqLock,
) -> ShmqStatus {
    boundary(|| {
        // SAFETY: the caller's contract.
        let name = unsafe { string(name, "name") }?;
        made(out, || Lock::open_or_create(name).map_err(Into::into))
    })
}

/// Removes the name `name`; open handles keep working. Fails with `SHMQ_NOT_FOUND`,
/// `SHMQ_INVALID_NAME`, `SHMQ_SYSTEM`.
///
/// # Safety
///
/// `name` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_lock_unlink(name: *const c_char) -> ShmqStatus {
    boundary(|| {
        // SAFETY: the caller's contract.
        let name = unsafe { string(name, "name") }?;
        Lock::unlink(name).map_err(Into::into)
    })
}

/// Frees a lock handle (NULL: nothing). A lock still held through it by the calling thread
/// is released; one held by another thread stays held until that thread releases it (the
/// lock's memory lives until then).
///
/// # Safety
///
/// `l` is NULL or a handle not freed yet.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_lock_free(l: *mut ShmqLock) {
    // SAFETY: the caller's contract.
    if let Some(h) = unsafe { l.as_ref() } {
        let _ = take_held(&h.0);
    }
    // SAFETY: the caller's contract.
    unsafe { free_handle(l) }
}

/// Removes the calling thread's hold of `lock`, if any.
fn take_held(lock: &Arc<Lock>) -> Option<Held> {
    HELD.with(|h| {
        let mut h = h.borrow_mut();
        let i = h.iter().position(|held| Arc::ptr_eq(&held.lock, lock))?;
        Some(h.swap_remove(i))
    })
}

fn acquired(
    lock: &Arc<Lock>,
    owner_died: *mut bool,
    take: impl FnOnce(&'static Lock) -> Result<LockGuard<'static>, shmq_dict::AcquireError>,
) -> Res {
    // SAFETY: the reference lives as long as the `Arc` that `Held` keeps next to the guard,
    // which drops first.
    let r: &'static Lock = unsafe { &*Arc::as_ptr(lock) };
    let guard = take(r)?;
    // SAFETY: the caller's contract.
    unsafe { write_opt(owner_died, guard.previous_owner_died()) };
    HELD.with(|h| {
        h.borrow_mut().push(Held {
            _guard: guard,
            lock: Arc::clone(lock),
        })
    });
    Ok(())
}

/// Acquires the lock, waiting while another owner holds it. `*owner_died` (NULL allowed) is
/// set to whether the previous holder died holding it (a process killed in its critical
/// section): repair what the lock protects before releasing. `SHMQ_DEADLOCK` if the calling
/// thread holds it already; `SHMQ_LOCK_FAILED`.
///
/// # Safety
///
/// `l` is NULL or a live handle; `owner_died` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_lock_acquire(
    l: *const ShmqLock,
    owner_died: *mut bool,
) -> ShmqStatus {
    boundary(|| {
        // SAFETY: the caller's contract.
        let lock = unsafe { lock_of(l) }?;
        acquired(lock, owner_died, |r| r.lock())
    })
}

/// Acquires the lock if it is free now; `SHMQ_WOULD_BLOCK` otherwise. As `shmq_lock_acquire`.
///
/// # Safety
///
/// As `shmq_lock_acquire`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_lock_try_acquire(
    l: *const ShmqLock,
    owner_died: *mut bool,
) -> ShmqStatus {
    boundary(|| {
        // SAFETY: the caller's contract.
        let lock = unsafe { lock_of(l) }?;
        acquired(lock, owner_died, |r| r.try_lock())
    })
}

/// Acquires the lock, waiting at most `timeout_ms` milliseconds; `SHMQ_TIMEOUT` then. As
/// `shmq_lock_acquire`.
///
/// # Safety
///
/// As `shmq_lock_acquire`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_lock_acquire_timeout(
    l: *const ShmqLock,
    timeout_ms: u64,
    owner_died: *mut bool,
) -> ShmqStatus {
    boundary(|| {
        // SAFETY: the caller's contract.
        let lock = unsafe { lock_of(l) }?;
        acquired(lock, owner_died, |r| {
            r.try_lock_for(Duration::from_millis(timeout_ms))
        })
    })
}

/// Releases the lock, which the calling thread holds; `SHMQ_NOT_OWNER` if it does not
/// (nothing changes).
///
/// # Safety
///
/// `l` is NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_lock_release(l: *const ShmqLock) -> ShmqStatus {
    boundary(|| {
        // SAFETY: the caller's contract.
        let lock = unsafe { lock_of(l) }?;
        match take_held(lock) {
            Some(held) => {
                drop(held);
                Ok(())
            }
            None => Err(Failure::new(
                ShmqStatus::SHMQ_NOT_OWNER,
                "this thread does not hold the lock",
            )),
        }
    })
}
