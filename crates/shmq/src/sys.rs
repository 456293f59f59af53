//! The only module that calls libc.
//!
//! Every function returns `io::Result` (or a plain value where the call cannot fail) and never
//! panics on an errno. Blocking calls hand `EINTR` back as a spurious wake-up; the callers loop
//! and measure time against the deadline they stored.

#![allow(unsafe_code)]

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::AtomicU32;
use std::time::{Duration, Instant};

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Retries a call that failed with `EINTR`.
fn retry<T>(mut f: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match f() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// `shm_open(3)`: `name` must start with `/`.
pub(crate) fn shm_open(name: &CStr, flags: libc::c_int, mode: u32) -> io::Result<OwnedFd> {
    retry(|| {
        // SAFETY: `name` is a valid NUL-terminated string; shm_open reads it and returns a new fd.
        #[allow(clippy::disallowed_methods)]
        let fd = cvt(unsafe {
            libc::shm_open(name.as_ptr(), flags | libc::O_CLOEXEC, mode as libc::mode_t)
        })?;
        // SAFETY: `fd` was just returned by shm_open and is owned by nobody else.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    })
}

/// `shm_unlink(3)`.
pub(crate) fn shm_unlink(name: &CStr) -> io::Result<()> {
    // SAFETY: `name` is a valid NUL-terminated string.
    #[allow(clippy::disallowed_methods)]
    cvt(unsafe { libc::shm_unlink(name.as_ptr()) }).map(drop)
}

/// `fchmod(2)`: sets the exact mode, which `shm_open` filters through the umask.
pub(crate) fn fchmod(fd: BorrowedFd<'_>, mode: u32) -> io::Result<()> {
    // SAFETY: plain syscall on a valid fd.
    retry(|| cvt(unsafe { libc::fchmod(fd.as_raw_fd(), mode as libc::mode_t) }).map(drop))
}

/// Size of the object behind `fd` in bytes (`fstat(2)`).
pub(crate) fn fd_size(fd: BorrowedFd<'_>) -> io::Result<u64> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `st` is a valid out-pointer for one `stat`.
    cvt(unsafe { libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()) })?;
    // SAFETY: fstat succeeded, so it initialised `st`.
    let st = unsafe { st.assume_init() };
    Ok(st.st_size as u64)
}

/// Reserves `len` bytes for `fd` so that a full tmpfs is `ENOSPC` now rather than `SIGBUS` at the
/// first touch of a page. Filesystems without `fallocate` fall back to `ftruncate`.
pub(crate) fn allocate(fd: BorrowedFd<'_>, len: u64) -> io::Result<()> {
    let len_off = libc::off_t::try_from(len)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "segment too large"))?;
    // SAFETY: plain syscall on a valid fd.
    let r = retry(|| cvt(unsafe { libc::fallocate(fd.as_raw_fd(), 0, 0, len_off) }));
    match r {
        Ok(_) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => {
            // SAFETY: plain syscall on a valid fd.
            retry(|| cvt(unsafe { libc::ftruncate(fd.as_raw_fd(), len_off) })).map(drop)
        }
        Err(e) => Err(e),
    }
}

/// Maps `len` bytes `MAP_SHARED`, of `fd` or anonymous memory (shared with forked children).
pub(crate) fn mmap_shared(fd: Option<BorrowedFd<'_>>, len: usize) -> io::Result<NonNull<u8>> {
    let (flags, raw) = match fd {
        Some(fd) => (libc::MAP_SHARED, fd.as_raw_fd()),
        None => (libc::MAP_SHARED | libc::MAP_ANONYMOUS, -1),
    };
    // SAFETY: a fresh mapping chosen by the kernel (addr = NULL) cannot alias existing memory.
    #[allow(clippy::disallowed_methods)]
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            flags,
            raw,
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    NonNull::new(ptr.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned NULL"))
}

/// Unmaps a mapping made by [`mmap_shared`].
///
/// # Safety
///
/// `ptr` and `len` must describe exactly one live mapping returned by [`mmap_shared`], and no
/// reference into it may be used afterwards.
pub(crate) unsafe fn munmap(ptr: NonNull<u8>, len: usize) {
    // SAFETY: forwarded to the caller. munmap of a valid mapping cannot fail.
    unsafe { libc::munmap(ptr.as_ptr().cast(), len) };
}

/// The calling process's id.
pub(crate) fn getpid() -> u32 {
    std::process::id()
}

/// Whether a process with this id exists (`kill(pid, 0)`; `EPERM` counts as existing).
pub(crate) fn pid_exists(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks for existence and permission; nothing is delivered.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// The start time of process `pid` in clock ticks since boot (field 22 of `/proc/PID/stat`).
/// Together with the pid it names one process for the life of the system: a recycled pid has a
/// later start time.
pub(crate) fn process_start_time(pid: u32) -> io::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_start_time(&stat)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unparsable /proc/PID/stat"))
}

/// Whether process `pid` has exited but not been reaped yet (a zombie: `/proc/PID/stat` field 3
/// is `Z` or `X`). Such a process still has a pid, but it will never run again.
pub(crate) fn process_is_zombie(pid: u32) -> io::Result<bool> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_state(&stat)
        .map(|s| matches!(s, 'Z' | 'X'))
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unparsable /proc/PID/stat"))
}

/// Parses field 3 (`state`) of a `/proc/PID/stat` line.
pub(crate) fn parse_state(stat: &str) -> Option<char> {
    stat[stat.rfind(')')? + 1..].trim_start().chars().next()
}

/// Parses field 22 (`starttime`) of a `/proc/PID/stat` line. The command name (field 2) may hold
/// spaces and parentheses, so fields are counted from the last `)`.
pub(crate) fn parse_start_time(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // After ")" come field 3 (state) onwards; starttime is field 22, the 20th of these.
    rest.split_ascii_whitespace().nth(19)?.parse().ok()
}

/// `CLOCK_MONOTONIC` in nanoseconds (the clock of [`Instant`]): one clock for every process of
/// the machine, so a deadline written into a segment by one process means the same to another.
pub(crate) fn monotonic_ns() -> u64 {
    let mut now = std::mem::MaybeUninit::<libc::timespec>::uninit();
    // SAFETY: `now` is a valid out-pointer; CLOCK_MONOTONIC always exists.
    let now = unsafe {
        libc::clock_gettime(libc::CLOCK_MONOTONIC, now.as_mut_ptr());
        now.assume_init()
    };
    (now.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(now.tv_nsec as u64)
}

/// Registers fork handlers (`pthread_atfork`): `prepare` runs in the parent before a `fork`,
/// `parent` in the parent after it, `child` in the new child before `fork` returns there. They
/// run for `fork()` (and `libc`'s wrappers of it), not for `posix_spawn`, `vfork` or `clone`.
pub(crate) fn at_fork(
    prepare: extern "C" fn(),
    parent: extern "C" fn(),
    child: extern "C" fn(),
) -> io::Result<()> {
    // SAFETY: the handlers are `extern "C"` functions without arguments, valid for the life of
    // the program, as `pthread_atfork` requires.
    let r = unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(r))
    }
}

fn timespec_from(d: Duration) -> libc::timespec {
    libc::timespec {
        tv_sec: libc::time_t::try_from(d.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: d.subsec_nanos() as libc::c_long,
    }
}

/// `FUTEX_WAIT` (shared, not private) on `word`: sleeps while `*word == expected`, at most until
/// `deadline`. Returns when woken, when the word differs, on a signal or at the deadline; the
/// caller re-checks its condition in every case.
pub(crate) fn futex_wait(word: &AtomicU32, expected: u32, deadline: Option<Instant>) {
    let ts;
    let ts_ptr = match deadline {
        Some(d) => {
            let left = d.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            ts = timespec_from(left);
            &ts as *const libc::timespec
        }
        None => std::ptr::null(),
    };
    // SAFETY: `word` is a valid, aligned u32 for the duration of the call; FUTEX_WAIT only reads
    // it. A relative timeout of FUTEX_WAIT is measured on CLOCK_MONOTONIC, like `Instant`.
    // The result (0, EAGAIN, EINTR or ETIMEDOUT) is deliberately ignored: the caller re-checks.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            ts_ptr,
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

/// `FUTEX_WAKE` (shared) of up to `n` waiters on `word`; returns how many were woken.
pub(crate) fn futex_wake(word: &AtomicU32, n: u32) -> usize {
    let n = libc::c_int::try_from(n).unwrap_or(libc::c_int::MAX);
    // SAFETY: `word` is a valid, aligned u32; FUTEX_WAKE does not access it beyond its address.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            n,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0u32,
        )
    };
    usize::try_from(r).unwrap_or(0)
}

unsafe extern "C" {
    // glibc >= 2.30; not (yet) bound by the libc crate.
    fn pthread_mutex_clocklock(
        mutex: *mut libc::pthread_mutex_t,
        clockid: libc::clockid_t,
        abstime: *const libc::timespec,
    ) -> libc::c_int;
}

/// The outcome of a successful lock of a robust mutex.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Locked {
    /// Acquired normally.
    Clean,
    /// Acquired, but the previous owner died holding it (`EOWNERDEAD`): the protected state may
    /// be inconsistent and the mutex must be marked consistent before it is unlocked.
    OwnerDied,
}

/// Why a lock attempt failed.
#[derive(Debug)]
pub(crate) enum LockFail {
    /// `EBUSY` or `ETIMEDOUT`: someone else holds it.
    WouldBlock,
    /// `ENOTRECOVERABLE`: an owner died and its successor unlocked without repairing.
    NotRecoverable,
    /// `EDEADLK`: the calling thread already holds it.
    Deadlock,
    /// Any other errno.
    Io(io::Error),
}

fn lock_result(r: libc::c_int) -> Result<Locked, LockFail> {
    match r {
        0 => Ok(Locked::Clean),
        libc::EOWNERDEAD => Ok(Locked::OwnerDied),
        libc::EBUSY | libc::ETIMEDOUT => Err(LockFail::WouldBlock),
        libc::ENOTRECOVERABLE => Err(LockFail::NotRecoverable),
        libc::EDEADLK => Err(LockFail::Deadlock),
        e => Err(LockFail::Io(io::Error::from_raw_os_error(e))),
    }
}

/// Initialises a process-shared, robust, error-checking pthread mutex in place.
///
/// # Safety
///
/// `m` must point to writable memory of at least `size_of::<pthread_mutex_t>()` bytes, suitably
/// aligned, that no other thread or process uses until this returns.
pub(crate) unsafe fn robust_mutex_init(m: *mut libc::pthread_mutex_t) -> io::Result<()> {
    let mut attr = std::mem::MaybeUninit::<libc::pthread_mutexattr_t>::uninit();
    // SAFETY: `attr` is a valid out-pointer; it is destroyed below on every path after init.
    unsafe {
        let a = attr.as_mut_ptr();
        let r = libc::pthread_mutexattr_init(a);
        if r != 0 {
            return Err(io::Error::from_raw_os_error(r));
        }
        let mut r = libc::pthread_mutexattr_setpshared(a, libc::PTHREAD_PROCESS_SHARED);
        if r == 0 {
            r = libc::pthread_mutexattr_setrobust(a, libc::PTHREAD_MUTEX_ROBUST);
        }
        if r == 0 {
            // A relock by the owner is EDEADLK instead of a silent self-deadlock.
            r = libc::pthread_mutexattr_settype(a, libc::PTHREAD_MUTEX_ERRORCHECK);
        }
        if r == 0 {
            r = libc::pthread_mutex_init(m, a);
        }
        libc::pthread_mutexattr_destroy(a);
        if r != 0 {
            return Err(io::Error::from_raw_os_error(r));
        }
    }
    Ok(())
}

/// `pthread_mutex_lock`.
///
/// # Safety
///
/// `m` must point to a mutex initialised by [`robust_mutex_init`] that stays mapped for the call.
pub(crate) unsafe fn mutex_lock(m: *mut libc::pthread_mutex_t) -> Result<Locked, LockFail> {
    // SAFETY: forwarded to the caller.
    lock_result(unsafe { libc::pthread_mutex_lock(m) })
}

/// `pthread_mutex_trylock`.
///
/// # Safety
///
/// As for [`mutex_lock`].
pub(crate) unsafe fn mutex_trylock(m: *mut libc::pthread_mutex_t) -> Result<Locked, LockFail> {
    // SAFETY: forwarded to the caller.
    lock_result(unsafe { libc::pthread_mutex_trylock(m) })
}

/// `pthread_mutex_clocklock` on `CLOCK_MONOTONIC`, so that a deadline is immune to changes of the
/// wall clock.
///
/// # Safety
///
/// As for [`mutex_lock`].
pub(crate) unsafe fn mutex_lock_until(
    m: *mut libc::pthread_mutex_t,
    deadline: Instant,
) -> Result<Locked, LockFail> {
    let mut now = std::mem::MaybeUninit::<libc::timespec>::uninit();
    // SAFETY: `now` is a valid out-pointer; CLOCK_MONOTONIC always exists.
    let now = unsafe {
        libc::clock_gettime(libc::CLOCK_MONOTONIC, now.as_mut_ptr());
        now.assume_init()
    };
    let left = deadline.saturating_duration_since(Instant::now());
    let now = Duration::new(now.tv_sec as u64, now.tv_nsec as u32);
    let abs = timespec_from(now.saturating_add(left));
    // SAFETY: forwarded to the caller; `abs` outlives the call.
    lock_result(unsafe { pthread_mutex_clocklock(m, libc::CLOCK_MONOTONIC, &abs) })
}

/// `pthread_mutex_unlock`.
///
/// # Safety
///
/// `m` must be a mutex initialised by [`robust_mutex_init`] and held by the calling thread.
pub(crate) unsafe fn mutex_unlock(m: *mut libc::pthread_mutex_t) -> io::Result<()> {
    // SAFETY: forwarded to the caller.
    match unsafe { libc::pthread_mutex_unlock(m) } {
        0 => Ok(()),
        e => Err(io::Error::from_raw_os_error(e)),
    }
}

/// `pthread_mutex_consistent`: marks a robust mutex whose owner died as repaired.
///
/// # Safety
///
/// `m` must be a robust mutex held by the calling thread after an `EOWNERDEAD` lock.
pub(crate) unsafe fn mutex_consistent(m: *mut libc::pthread_mutex_t) -> io::Result<()> {
    // SAFETY: forwarded to the caller.
    match unsafe { libc::pthread_mutex_consistent(m) } {
        0 => Ok(()),
        e => Err(io::Error::from_raw_os_error(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_parses_names_with_spaces_and_parens() {
        let line = "42 (a b) c)) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(parse_start_time(line), Some(987654));
        assert_eq!(parse_start_time("garbage"), None);
        assert_eq!(parse_state(line), Some('S'));
        assert_eq!(parse_state("1 (x) Z 0"), Some('Z'));
        assert_eq!(parse_state("garbage"), None);
    }

    #[test]
    fn own_process_is_alive_and_has_a_start_time() {
        assert!(pid_exists(getpid()));
        assert!(process_start_time(getpid()).unwrap() > 0);
        assert!(!pid_exists(0));
    }
}
