//! The only module that talks to the operating system.
//!
//! Every call goes through [rustix](https://docs.rs/rustix), which wraps the system calls safely:
//! opening and unlinking segments (`open`/`unlink` under `/dev/shm`, what glibc's `shm_open`
//! does), `fchmod`, `fstat`, `fallocate`, `ftruncate`, `pread`, `mmap`/`munmap`, the futex,
//! `clock_gettime`, `kill(pid, 0)`, `gettid` and `membarrier`; it also reads `/proc/ID/stat` for the
//! liveness test, whose rules are in `liveness`. Three calls remain `unsafe`: mapping and
//! unmapping memory, which no wrapper can make safe (the caller owns what the mapping aliases),
//! and `pthread_atfork`.
//!
//! libc is used for that one call only: `pthread_atfork` ([`at_fork`]) registers fork handlers
//! (the lock's per-thread identity, [`fork_generation`]; the pipe's inherited ends). It is a
//! C-library feature (glibc runs the handlers inside `fork()`), so rustix cannot offer it.
//! (glibc's robust mutex and `pthread_mutex_clocklock` are gone: the lock is shmq's own,
//! `sync::mutex`.)
//!
//! Every function returns `io::Result` (or a plain value where the call cannot fail) and never
//! panics on an errno. Blocking calls hand `EINTR` back as a spurious wake-up; the callers loop
//! and measure time against the deadline they stored.

#![allow(unsafe_code)]

use std::cell::Cell;
use std::ffi::c_void;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::Once;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use rustix::fs::{FileType, Mode, OFlags};
use rustix::mm::{MapFlags, ProtFlags};
use rustix::thread::futex;

/// Where Linux keeps named POSIX shared-memory objects.
pub(crate) const SHM_DIR: &str = "/dev/shm";

/// Retries a call that failed with `EINTR`.
fn retry<T>(mut f: impl FnMut() -> rustix::io::Result<T>) -> io::Result<T> {
    loop {
        match f() {
            Err(rustix::io::Errno::INTR) => continue,
            other => return other.map_err(io::Error::from),
        }
    }
}

/// The path of the shared-memory object `name` (already validated: no `/`, no NUL).
fn shm_path(name: &str) -> String {
    format!("{SHM_DIR}/{name}")
}

/// Flags of every open of a segment: never follow a symbolic link, never block (a FIFO would
/// block a plain open until a writer comes), never leak the descriptor into an `exec`.
fn open_flags() -> OFlags {
    OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC
}

/// Creates the shared-memory object `name` exclusively with permission `mode` (filtered by the
/// umask; see [`fchmod`]).
pub(crate) fn shm_create(name: &str, mode: u32) -> io::Result<OwnedFd> {
    let path = shm_path(name);
    retry(|| {
        rustix::fs::open(
            path.as_str(),
            open_flags() | OFlags::CREATE | OFlags::EXCL | OFlags::RDWR,
            Mode::from_raw_mode(mode),
        )
    })
}

/// Opens the existing shared-memory object `name`, read-write or read-only, without following
/// a symbolic link and without blocking. The caller checks the file type ([`file_kind`]).
pub(crate) fn shm_open(name: &str, write: bool) -> io::Result<OwnedFd> {
    let path = shm_path(name);
    let access = if write { OFlags::RDWR } else { OFlags::RDONLY };
    retry(|| rustix::fs::open(path.as_str(), open_flags() | access, Mode::empty()))
}

/// Removes the shared-memory object `name`.
pub(crate) fn shm_unlink(name: &str) -> io::Result<()> {
    retry(|| rustix::fs::unlink(shm_path(name).as_str()))
}

/// Creates the file at `path` exclusively with permission `mode` (as [`shm_create`], for a side
/// file of a file-backed queue or a path under `/dev/shm`).
pub(crate) fn create_at(path: &std::path::Path, mode: u32) -> io::Result<OwnedFd> {
    retry(|| {
        rustix::fs::open(
            path,
            open_flags() | OFlags::CREATE | OFlags::EXCL | OFlags::RDWR,
            Mode::from_raw_mode(mode),
        )
    })
}

/// Opens the existing file at `path` (as [`shm_open`]).
pub(crate) fn open_at(path: &std::path::Path, write: bool) -> io::Result<OwnedFd> {
    let access = if write { OFlags::RDWR } else { OFlags::RDONLY };
    retry(|| rustix::fs::open(path, open_flags() | access, Mode::empty()))
}

/// `flock(2)`: takes a shared lock (`exclusive` false, waiting) or tries an exclusive one
/// without waiting; returns whether it holds the lock. The lock belongs to the open file
/// description, so a forked child shares it, and it goes with the last descriptor of it.
pub(crate) fn flock(fd: BorrowedFd<'_>, exclusive: bool) -> io::Result<bool> {
    use rustix::fs::FlockOperation;
    let op = if exclusive {
        FlockOperation::NonBlockingLockExclusive
    } else {
        FlockOperation::LockShared
    };
    match retry(|| rustix::fs::flock(fd, op)) {
        Ok(()) => Ok(true),
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::WOULDBLOCK.raw_os_error()) => {
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// The (device, inode) of an open file, to tell whether a path still names it.
pub(crate) fn file_id(fd: BorrowedFd<'_>) -> io::Result<(u64, u64)> {
    let st = retry(|| rustix::fs::fstat(fd))?;
    Ok((st.st_dev, st.st_ino))
}

/// `fchmod(2)`: sets the exact mode, which the open filtered through the umask.
pub(crate) fn fchmod(fd: BorrowedFd<'_>, mode: u32) -> io::Result<()> {
    retry(|| rustix::fs::fchmod(fd, Mode::from_raw_mode(mode)))
}

/// What an open file is, by `fstat(2)`: its size if it is a regular file, or the name of its
/// type ("FIFO", "directory", …) if it is not.
pub(crate) fn file_kind(fd: BorrowedFd<'_>) -> io::Result<Result<u64, &'static str>> {
    let st = retry(|| rustix::fs::fstat(fd))?;
    Ok(match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile => Ok(u64::try_from(st.st_size).unwrap_or(0)),
        FileType::Fifo => Err("FIFO"),
        FileType::Directory => Err("directory"),
        FileType::Symlink => Err("symbolic link"),
        FileType::Socket => Err("socket"),
        FileType::CharacterDevice => Err("character device"),
        FileType::BlockDevice => Err("block device"),
        FileType::Unknown => Err("file of unknown type"),
    })
}

/// Reads up to `buf.len()` bytes at `offset` (`pread(2)`); returns how many were read.
pub(crate) fn read_at(fd: BorrowedFd<'_>, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        let n = retry(|| rustix::io::pread(fd, &mut buf[done..], offset + done as u64))?;
        if n == 0 {
            break;
        }
        done += n;
    }
    Ok(done)
}

/// Reserves `len` bytes for `fd` so that a full tmpfs is `ENOSPC` now rather than `SIGBUS` at the
/// first touch of a page. Filesystems without `fallocate` fall back to `ftruncate`.
pub(crate) fn allocate(fd: BorrowedFd<'_>, len: u64) -> io::Result<()> {
    match retry(|| rustix::fs::fallocate(fd, rustix::fs::FallocateFlags::empty(), 0, len)) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::OPNOTSUPP.raw_os_error()) => {
            retry(|| rustix::fs::ftruncate(fd, len))
        }
        Err(e) => Err(e),
    }
}

/// Maps `len` bytes `MAP_SHARED` read-write, of `fd` or of anonymous memory (shared with forked
/// children).
pub(crate) fn mmap_shared(fd: Option<BorrowedFd<'_>>, len: usize) -> io::Result<NonNull<u8>> {
    let prot = ProtFlags::READ | ProtFlags::WRITE;
    let ptr = match fd {
        // SAFETY: a fresh mapping chosen by the kernel (addr = NULL) cannot alias existing memory.
        Some(fd) => unsafe {
            rustix::mm::mmap(std::ptr::null_mut(), len, prot, MapFlags::SHARED, fd, 0)
        },
        // SAFETY: as above.
        None => unsafe {
            rustix::mm::mmap_anonymous(std::ptr::null_mut(), len, prot, MapFlags::SHARED)
        },
    }?;
    NonNull::new(ptr.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned NULL"))
}

/// Maps all `len` bytes of `fd` `MAP_SHARED | MAP_POPULATE` (read-write, or read-only): the
/// page tables are filled in one call instead of one fault per page.
pub(crate) fn mmap_populated(
    fd: BorrowedFd<'_>,
    len: usize,
    write: bool,
) -> io::Result<NonNull<u8>> {
    let prot = if write {
        ProtFlags::READ | ProtFlags::WRITE
    } else {
        ProtFlags::READ
    };
    // SAFETY: a fresh mapping chosen by the kernel (addr = NULL) cannot alias existing memory.
    let ptr = unsafe {
        rustix::mm::mmap(
            std::ptr::null_mut(),
            len,
            prot,
            MapFlags::SHARED | MapFlags::POPULATE,
            fd,
            0,
        )
    }?;
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
    let _ = unsafe { rustix::mm::munmap(ptr.as_ptr().cast::<c_void>(), len) };
}

/// The calling process's id.
pub(crate) fn getpid() -> u32 {
    std::process::id()
}

/// Whether a process or thread with this id exists (`kill(id, 0)`: `EPERM` counts as existing).
pub(crate) fn id_exists(id: u32) -> bool {
    let Some(pid) = i32::try_from(id)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    match rustix::process::test_kill_process(pid) {
        Ok(()) => true,
        Err(e) => e != rustix::io::Errno::SRCH,
    }
}

/// The text of a `/proc` file (`/proc/ID/stat`), read whole.
pub(crate) fn read_proc_file(path: &str) -> io::Result<String> {
    std::fs::read_to_string(path)
}

/// `CLOCK_MONOTONIC` in nanoseconds (the clock of [`Instant`]): one clock for every process of
/// the machine, so a deadline written into a segment by one process means the same to another.
pub(crate) fn monotonic_ns() -> u64 {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    u64::try_from(now.tv_sec)
        .unwrap_or(0)
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::try_from(now.tv_nsec).unwrap_or(0))
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

/// Bumped in every child right after `fork()` (a `pthread_atfork` child handler), so that
/// per-thread caches of the thread's identity know they were copied from the parent.
static FORK_GENERATION: AtomicU64 = AtomicU64::new(0);

extern "C" fn after_fork_in_child() {
    // Async-signal-safe: one atomic add, no allocation, no lock.
    FORK_GENERATION.fetch_add(1, Relaxed);
}

/// How many forks lie between this process and the first one that asked. Registers the fork
/// hook on the first call; a fork before that call cannot have copied any cache that depends on
/// this value, because such caches are only filled after calling it.
#[inline]
pub(crate) fn fork_generation() -> u64 {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        extern "C" fn nothing() {}
        // It fails only for lack of memory; forked children would then keep the parent's
        // identity (as a guard copied by `fork` is theirs to drop, nothing else breaks).
        let _ = at_fork(nothing, nothing, after_fork_in_child);
    });
    FORK_GENERATION.load(Relaxed)
}

/// [`fork_generation`] for a caller that has called it before (the hook is registered).
#[inline]
pub(crate) fn fork_generation_now() -> u64 {
    FORK_GENERATION.load(Relaxed)
}

thread_local! {
    /// This thread's fork generation, kernel thread id and start time, once read.
    static IDENTITY: Cell<Option<(u64, u32, u64)>> = const { Cell::new(None) };
}

/// The calling thread's identity: its kernel thread id and its start time (clock ticks since
/// boot, 0 if `/proc` cannot tell), cached per thread and refreshed after a `fork`.
#[inline]
pub(crate) fn thread_identity() -> (u32, u64) {
    let generation = fork_generation();
    match IDENTITY.get() {
        Some((g, tid, start)) if g == generation => (tid, start),
        _ => read_identity(generation),
    }
}

#[cold]
#[inline(never)]
fn read_identity(generation: u64) -> (u32, u64) {
    let tid = rustix::thread::gettid().as_raw_nonzero().get() as u32;
    let start = crate::liveness::thread_start_time(tid);
    IDENTITY.set(Some((generation, tid, start)));
    (tid, start)
}

fn timespec_from(d: Duration) -> futex::Timespec {
    futex::Timespec {
        tv_sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: i64::from(d.subsec_nanos()),
    }
}

/// `membarrier(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED)`: from now on this process's running
/// threads take part in the global expedited barriers that other processes issue
/// ([`membarrier_global`]). Fails where the kernel (before 4.16) or a seccomp policy forbids it.
pub(crate) fn membarrier_register() -> io::Result<()> {
    use rustix::thread::{MembarrierCommand, membarrier};
    membarrier(MembarrierCommand::RegisterGlobalExpedited)?;
    // A registration is of no use if this process may not issue the barrier itself.
    membarrier(MembarrierCommand::GlobalExpedited)?;
    Ok(())
}

/// `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)`: when it returns, every running thread of every
/// registered process has executed a full memory barrier since the call began (and a thread that
/// was not running is ordered by its context switch).
pub(crate) fn membarrier_global() -> io::Result<()> {
    use rustix::thread::{MembarrierCommand, membarrier};
    Ok(membarrier(MembarrierCommand::GlobalExpedited)?)
}

/// `FUTEX_WAIT` (shared, not private) on `word`: sleeps while `*word == expected`, at most until
/// `deadline`. Returns when woken, when the word differs, on a signal or at the deadline; the
/// caller re-checks its condition in every case.
pub(crate) fn futex_wait(word: &AtomicU32, expected: u32, deadline: Option<Instant>) {
    let ts = match deadline {
        Some(d) => {
            let left = d.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            Some(timespec_from(left))
        }
        None => None,
    };
    // A relative timeout of FUTEX_WAIT is measured on CLOCK_MONOTONIC, like `Instant`. The
    // result (woken, EAGAIN, EINTR or ETIMEDOUT) is deliberately ignored: the caller re-checks.
    let _ = futex::wait(word, futex::Flags::empty(), expected, ts.as_ref());
}

/// `FUTEX_WAKE` (shared) of up to `n` waiters on `word`; returns how many were woken.
pub(crate) fn futex_wake(word: &AtomicU32, n: u32) -> usize {
    let n = n.min(i32::MAX as u32);
    futex::wake(word, futex::Flags::empty(), n).unwrap_or(0)
}

/// What one `futex_waitv` call ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WaitvResult {
    /// The word at this index was woken (or several were; this is one of them).
    Woken(usize),
    /// A word did not hold its expected value when the call began (`EAGAIN`).
    Changed,
    /// The deadline passed, or a signal arrived: the caller re-checks.
    Returned,
    /// An address is not mapped (`EFAULT`).
    Fault,
    /// The kernel has no `futex_waitv` (Linux < 5.16), or refuses the arguments (more than 128
    /// words): the caller falls back to sleeping in short slices.
    Unsupported,
}

/// `futex_waitv` (Linux ≥ 5.16) over `(address, expected)` pairs of shared (not private)
/// 32-bit futexes: sleeps while every word holds its expected value, at most until `deadline`
/// (made absolute on `CLOCK_MONOTONIC`, the clock of [`Instant`]). At most 128 words.
///
/// The addresses are only handed to the kernel, never dereferenced here: one that is no longer
/// mapped is [`WaitvResult::Fault`], not undefined behaviour.
pub(crate) fn futex_waitv(
    words: &[(*const AtomicU32, u32)],
    deadline: Option<Instant>,
) -> WaitvResult {
    let mut waiters = [futex::Wait::new(); 128];
    if words.is_empty() || words.len() > waiters.len() {
        return WaitvResult::Unsupported;
    }
    for (w, &(word, expected)) in waiters.iter_mut().zip(words) {
        w.val = u64::from(expected);
        w.uaddr = futex::WaitPtr::new(word.cast_mut().cast::<c_void>());
        w.flags = futex::WaitFlags::SIZE_U32;
    }
    let ts = match deadline {
        Some(d) => {
            let left = d.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return WaitvResult::Returned;
            }
            let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
            let abs = Duration::new(
                u64::try_from(now.tv_sec).unwrap_or(0),
                u32::try_from(now.tv_nsec).unwrap_or(0),
            )
            .saturating_add(left);
            Some(timespec_from(abs))
        }
        None => None,
    };
    match futex::waitv(
        &waiters[..words.len()],
        futex::WaitvFlags::empty(),
        ts.as_ref(),
        rustix::time::ClockId::Monotonic,
    ) {
        Ok(i) => WaitvResult::Woken(i),
        Err(rustix::io::Errno::AGAIN) => WaitvResult::Changed,
        Err(rustix::io::Errno::FAULT) => WaitvResult::Fault,
        Err(rustix::io::Errno::NOSYS | rustix::io::Errno::INVAL) => WaitvResult::Unsupported,
        Err(_) => WaitvResult::Returned,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn futex_waitv_sleeps_until_the_deadline_and_sees_changes() {
        let a = AtomicU32::new(5);
        let b = AtomicU32::new(7);
        let words = [(&a as *const AtomicU32, 5), (&b as *const AtomicU32, 7)];
        let t = Instant::now();
        let r = futex_waitv(&words, Some(t + Duration::from_millis(20)));
        // This kernel (Linux >= 5.16) has futex_waitv; an older one reports Unsupported.
        if r != WaitvResult::Unsupported {
            assert_eq!(r, WaitvResult::Returned);
            assert!(t.elapsed() >= Duration::from_millis(20));
            b.store(8, Relaxed);
            assert_eq!(futex_waitv(&words, None), WaitvResult::Changed);
        }
    }

    #[test]
    fn a_fifo_is_reported_as_such_and_not_blocked_on() {
        let name = format!("shmq-test-sys-fifo-{}", getpid());
        let path = std::ffi::CString::new(shm_path(&name)).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
        let fd = shm_open(&name, false);
        let kind = fd.map(|fd| file_kind(std::os::fd::AsFd::as_fd(&fd)).unwrap());
        shm_unlink(&name).unwrap();
        assert_eq!(kind.unwrap(), Err("FIFO"));
    }
}
