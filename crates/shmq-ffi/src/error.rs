//! The status codes every function returns, the per-thread last error, and the boundary that
//! turns a Rust panic into a code instead of letting it unwind into C.

use std::cell::RefCell;
use std::ffi::{CString, c_char, c_int};
use std::panic::{AssertUnwindSafe, catch_unwind};

use shmq_core::{
    GetError, GetTimeoutError, JoinError, OpenError, PutError, PutTimeoutError, RecvError,
    RecvTimeoutError, SendError, SendTimeoutError, TaskDoneError, TryGetError, TryPutError,
    TryRecvError, TrySendError,
};
use shmq_dict::{AcquireError, DictError};

/// What a call of libshmq did: `SHMQ_OK`, or why it failed. Every fallible function returns
/// one; `shmq_strerror` names it and `shmq_last_error` gives the message of the calling
/// thread's last failure.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum ShmqStatus {
    /// Success.
    SHMQ_OK = 0,
    /// A pointer argument is NULL, a string is not UTF-8, or an argument is out of range.
    SHMQ_INVALID_ARGUMENT = 1,
    /// No segment of that name.
    SHMQ_NOT_FOUND = 2,
    /// A segment of that name already exists.
    SHMQ_ALREADY_EXISTS = 3,
    /// The name is not a valid segment name (empty, too long, or holds a `/`).
    SHMQ_INVALID_NAME = 4,
    /// The segment is another kind of object or another layout version than this library's.
    SHMQ_INCOMPATIBLE = 5,
    /// The segment holds something impossible (a foreign writer, not a crash).
    SHMQ_CORRUPT = 6,
    /// The options are out of range (a zero capacity, a message size over the maximum, ...).
    SHMQ_INVALID_OPTIONS = 7,
    /// A pipe's holder table stayed locked by another live process for a second.
    SHMQ_BUSY = 8,
    /// A pipe's holder table is full.
    SHMQ_TOO_MANY_HOLDERS = 9,
    /// The name is a file that is not a shared-memory segment.
    SHMQ_NOT_A_SEGMENT = 10,
    /// The operating system refused (see `shmq_last_errno` and `errno`).
    SHMQ_SYSTEM = 11,
    /// A non-blocking put or send found no free slot.
    SHMQ_FULL = 12,
    /// A non-blocking get or receive found no message.
    SHMQ_EMPTY = 13,
    /// A call with a timeout timed out.
    SHMQ_TIMEOUT = 14,
    /// The queue is closed: a put is refused, a get found it closed and drained.
    SHMQ_CLOSED = 15,
    /// The pipe's other end is gone (end-of-file once drained), or the end cannot be opened.
    SHMQ_DISCONNECTED = 16,
    /// A send on the receiving end, or a receive on the sending end, of a one-way pipe.
    SHMQ_WRONG_DIRECTION = 17,
    /// The message is longer than the queue's or pipe's maximum message size.
    SHMQ_TOO_LARGE = 18,
    /// No room in /dev/shm for the side segment of a message larger than a slot.
    SHMQ_NO_SPACE = 19,
    /// The caller's buffer is shorter than the message; the message stays queued and the
    /// length it needs is reported.
    SHMQ_BUFFER_TOO_SMALL = 20,
    /// `task_done` was called more times than there were unfinished tasks.
    SHMQ_NO_UNFINISHED_TASKS = 21,
    /// A non-blocking lock attempt found the lock held by another owner.
    SHMQ_WOULD_BLOCK = 22,
    /// The calling thread already holds this lock.
    SHMQ_DEADLOCK = 23,
    /// A release of a lock that the calling thread does not hold.
    SHMQ_NOT_OWNER = 24,
    /// The lock failed (an unrecoverable mutex).
    SHMQ_LOCK_FAILED = 25,
    /// The dict has no such key.
    SHMQ_KEY_NOT_FOUND = 26,
    /// The key is empty or longer than the dict's maximum key length.
    SHMQ_INVALID_KEY = 27,
    /// A new key does not fit: every entry of the dict holds a key.
    SHMQ_DICT_FULL = 28,
    /// An add would leave the range of `int64_t`.
    SHMQ_OVERFLOW = 29,
    /// The caller's callback refused the message (returned non-zero); it stays queued.
    SHMQ_REFUSED = 30,
    /// A handle that `shmq_pipe_close` already released, or a close while another thread is
    /// inside a call on the same handle.
    SHMQ_HANDLE_CLOSED = 31,
    /// A bug inside libshmq (a Rust panic, caught at the boundary); the message says where.
    SHMQ_INTERNAL = 32,
}

/// The names of the codes, for `shmq_strerror`.
fn describe(s: ShmqStatus) -> &'static std::ffi::CStr {
    use ShmqStatus::*;
    match s {
        SHMQ_OK => c"success",
        SHMQ_INVALID_ARGUMENT => c"invalid argument",
        SHMQ_NOT_FOUND => c"no such segment",
        SHMQ_ALREADY_EXISTS => c"segment already exists",
        SHMQ_INVALID_NAME => c"invalid segment name",
        SHMQ_INCOMPATIBLE => c"incompatible segment (another kind or layout version)",
        SHMQ_CORRUPT => c"corrupt segment",
        SHMQ_INVALID_OPTIONS => c"invalid options",
        SHMQ_BUSY => c"holder table busy",
        SHMQ_TOO_MANY_HOLDERS => c"too many holders",
        SHMQ_NOT_A_SEGMENT => c"not a shared-memory segment",
        SHMQ_SYSTEM => c"system error",
        SHMQ_FULL => c"full",
        SHMQ_EMPTY => c"empty",
        SHMQ_TIMEOUT => c"timed out",
        SHMQ_CLOSED => c"closed",
        SHMQ_DISCONNECTED => c"disconnected",
        SHMQ_WRONG_DIRECTION => c"wrong direction on a one-way pipe",
        SHMQ_TOO_LARGE => c"message too large",
        SHMQ_NO_SPACE => c"no space for a large message",
        SHMQ_BUFFER_TOO_SMALL => c"buffer too small",
        SHMQ_NO_UNFINISHED_TASKS => c"no unfinished tasks",
        SHMQ_WOULD_BLOCK => c"lock held by another owner",
        SHMQ_DEADLOCK => c"lock already held by this thread",
        SHMQ_NOT_OWNER => c"lock not held by this thread",
        SHMQ_LOCK_FAILED => c"lock failed",
        SHMQ_KEY_NOT_FOUND => c"no such key",
        SHMQ_INVALID_KEY => c"invalid key",
        SHMQ_DICT_FULL => c"dict full",
        SHMQ_OVERFLOW => c"integer overflow",
        SHMQ_REFUSED => c"refused by the callback",
        SHMQ_HANDLE_CLOSED => c"handle closed",
        SHMQ_INTERNAL => c"internal error",
    }
}

/// Every code, for `shmq_strerror` of an integer.
const ALL: [ShmqStatus; 33] = {
    use ShmqStatus::*;
    [
        SHMQ_OK,
        SHMQ_INVALID_ARGUMENT,
        SHMQ_NOT_FOUND,
        SHMQ_ALREADY_EXISTS,
        SHMQ_INVALID_NAME,
        SHMQ_INCOMPATIBLE,
        SHMQ_CORRUPT,
        SHMQ_INVALID_OPTIONS,
        SHMQ_BUSY,
        SHMQ_TOO_MANY_HOLDERS,
        SHMQ_NOT_A_SEGMENT,
        SHMQ_SYSTEM,
        SHMQ_FULL,
        SHMQ_EMPTY,
        SHMQ_TIMEOUT,
        SHMQ_CLOSED,
        SHMQ_DISCONNECTED,
        SHMQ_WRONG_DIRECTION,
        SHMQ_TOO_LARGE,
        SHMQ_NO_SPACE,
        SHMQ_BUFFER_TOO_SMALL,
        SHMQ_NO_UNFINISHED_TASKS,
        SHMQ_WOULD_BLOCK,
        SHMQ_DEADLOCK,
        SHMQ_NOT_OWNER,
        SHMQ_LOCK_FAILED,
        SHMQ_KEY_NOT_FOUND,
        SHMQ_INVALID_KEY,
        SHMQ_DICT_FULL,
        SHMQ_OVERFLOW,
        SHMQ_REFUSED,
        SHMQ_HANDLE_CLOSED,
        SHMQ_INTERNAL,
    ]
};

/// A failure on its way to C: the code, the message, and the OS error number if there is one.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) status: ShmqStatus,
    pub(crate) message: String,
    pub(crate) errno: Option<i32>,
    /// For `SHMQ_BUFFER_TOO_SMALL`: the length the message needs.
    pub(crate) needed: Option<usize>,
}

impl Failure {
    pub(crate) fn new(status: ShmqStatus, message: impl Into<String>) -> Failure {
        Failure {
            status,
            message: message.into(),
            errno: None,
            needed: None,
        }
    }

    pub(crate) fn null(what: &str) -> Failure {
        Failure::new(
            ShmqStatus::SHMQ_INVALID_ARGUMENT,
            format!("{what} is a NULL pointer"),
        )
    }
}

pub(crate) type Res<T = ()> = Result<T, Failure>;

struct LastError {
    message: CString,
    errno: c_int,
}

thread_local! {
    static LAST: RefCell<LastError> = RefCell::new(LastError { message: CString::default(), errno: 0 });
}

fn record(f: &Failure) {
    let msg = CString::new(f.message.replace('\0', "\\0")).unwrap_or_default();
    let errno = f.errno.unwrap_or(0);
    LAST.with(|l| {
        *l.borrow_mut() = LastError {
            message: msg,
            errno,
        }
    });
    if let Some(e) = f.errno {
        // SAFETY: `__errno_location` returns the calling thread's errno, always valid.
        unsafe { *libc::__errno_location() = e };
    }
}

/// Runs the body of an exported function: its failure is recorded for `shmq_last_error` and
/// turned into its code; a panic is caught here and becomes `SHMQ_INTERNAL`, so that no
/// unwinding ever crosses into C.
pub(crate) fn boundary(body: impl FnOnce() -> Res) -> ShmqStatus {
    let failure = match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => return ShmqStatus::SHMQ_OK,
        Ok(Err(f)) => f,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".into());
            Failure::new(
                ShmqStatus::SHMQ_INTERNAL,
                format!("libshmq panicked: {what}"),
            )
        }
    };
    record(&failure);
    failure.status
}

impl From<OpenError> for Failure {
    fn from(e: OpenError) -> Failure {
        use ShmqStatus as S;
        let status = match &e {
            OpenError::NotFound(_) => S::SHMQ_NOT_FOUND,
            OpenError::AlreadyExists(_) => S::SHMQ_ALREADY_EXISTS,
            OpenError::InvalidName { .. } => S::SHMQ_INVALID_NAME,
            OpenError::Incompatible(_) => S::SHMQ_INCOMPATIBLE,
            OpenError::Corrupt(_) => S::SHMQ_CORRUPT,
            OpenError::InvalidOptions(_) => S::SHMQ_INVALID_OPTIONS,
            OpenError::Disconnected(_) => S::SHMQ_DISCONNECTED,
            OpenError::Busy(_) => S::SHMQ_BUSY,
            OpenError::TooManyHolders(_) => S::SHMQ_TOO_MANY_HOLDERS,
            OpenError::NotASegment { .. } => S::SHMQ_NOT_A_SEGMENT,
            OpenError::System { .. } | OpenError::Io(_) => S::SHMQ_SYSTEM,
            _ => S::SHMQ_INTERNAL,
        };
        Failure {
            status,
            errno: e.raw_os_error(),
            message: e.to_string(),
            needed: None,
        }
    }
}

/// The code of a put or send error; the message handed back is dropped (the caller still has
/// its own bytes).
macro_rules! message_errors {
    ($($ty:ident { $($variant:ident => $status:ident),* }),* $(,)?) => {$(
        impl<M> From<$ty<M>> for Failure {
            fn from(e: $ty<M>) -> Failure {
                let message = e.to_string();
                let status = match e {
                    $($ty::$variant(_) => ShmqStatus::$status,)*
                    $ty::TooLarge { .. } => ShmqStatus::SHMQ_TOO_LARGE,
                    $ty::Corrupt { .. } => ShmqStatus::SHMQ_CORRUPT,
                    $ty::NoSpace { .. } => ShmqStatus::SHMQ_NO_SPACE,
                    _ => ShmqStatus::SHMQ_INTERNAL,
                };
                Failure::new(status, message)
            }
        }
    )*};
}

message_errors! {
    PutError { Closed => SHMQ_CLOSED },
    TryPutError { Full => SHMQ_FULL, Closed => SHMQ_CLOSED },
    PutTimeoutError { Timeout => SHMQ_TIMEOUT, Closed => SHMQ_CLOSED },
    SendError { Disconnected => SHMQ_DISCONNECTED, WrongDirection => SHMQ_WRONG_DIRECTION },
    TrySendError { Full => SHMQ_FULL, Disconnected => SHMQ_DISCONNECTED, WrongDirection => SHMQ_WRONG_DIRECTION },
    SendTimeoutError {
        Timeout => SHMQ_TIMEOUT, Disconnected => SHMQ_DISCONNECTED, WrongDirection => SHMQ_WRONG_DIRECTION
    },
}

macro_rules! status_errors {
    ($($ty:ident { $($variant:ident => $status:ident),* }),* $(,)?) => {$(
        impl From<$ty> for Failure {
            fn from(e: $ty) -> Failure {
                let message = e.to_string();
                let mut needed = None;
                let status = match e {
                    $($ty::$variant => ShmqStatus::$status,)*
                    $ty::BufferTooSmall { needed: n, .. } => {
                        needed = Some(n);
                        ShmqStatus::SHMQ_BUFFER_TOO_SMALL
                    }
                    $ty::Corrupt(_) => ShmqStatus::SHMQ_CORRUPT,
                    _ => ShmqStatus::SHMQ_INTERNAL,
                };
                Failure { needed, ..Failure::new(status, message) }
            }
        }
    )*};
}

status_errors! {
    GetError { Closed => SHMQ_CLOSED },
    TryGetError { Empty => SHMQ_EMPTY, Closed => SHMQ_CLOSED },
    GetTimeoutError { Timeout => SHMQ_TIMEOUT, Closed => SHMQ_CLOSED },
    RecvError { Disconnected => SHMQ_DISCONNECTED, WrongDirection => SHMQ_WRONG_DIRECTION },
    TryRecvError { Empty => SHMQ_EMPTY, Disconnected => SHMQ_DISCONNECTED, WrongDirection => SHMQ_WRONG_DIRECTION },
    RecvTimeoutError {
        Timeout => SHMQ_TIMEOUT, Disconnected => SHMQ_DISCONNECTED, WrongDirection => SHMQ_WRONG_DIRECTION
    },
}

impl From<TaskDoneError> for Failure {
    fn from(e: TaskDoneError) -> Failure {
        let status = match e {
            TaskDoneError::NoUnfinishedTasks => ShmqStatus::SHMQ_NO_UNFINISHED_TASKS,
            TaskDoneError::Corrupt(_) => ShmqStatus::SHMQ_CORRUPT,
            _ => ShmqStatus::SHMQ_INTERNAL,
        };
        Failure::new(status, e.to_string())
    }
}

impl From<JoinError> for Failure {
    fn from(e: JoinError) -> Failure {
        let status = match e {
            JoinError::Timeout => ShmqStatus::SHMQ_TIMEOUT,
            JoinError::Corrupt(_) => ShmqStatus::SHMQ_CORRUPT,
            _ => ShmqStatus::SHMQ_INTERNAL,
        };
        Failure::new(status, e.to_string())
    }
}

impl From<AcquireError> for Failure {
    fn from(e: AcquireError) -> Failure {
        let status = match e {
            AcquireError::WouldBlock => ShmqStatus::SHMQ_WOULD_BLOCK,
            AcquireError::Timeout => ShmqStatus::SHMQ_TIMEOUT,
            AcquireError::Deadlock => ShmqStatus::SHMQ_DEADLOCK,
            _ => ShmqStatus::SHMQ_LOCK_FAILED,
        };
        Failure::new(status, e.to_string())
    }
}

impl From<DictError> for Failure {
    fn from(e: DictError) -> Failure {
        let status = match &e {
            DictError::EmptyKey | DictError::KeyTooLong { .. } => ShmqStatus::SHMQ_INVALID_KEY,
            DictError::Full { .. } => ShmqStatus::SHMQ_DICT_FULL,
            DictError::Overflow { .. } => ShmqStatus::SHMQ_OVERFLOW,
            DictError::Lock(a) => return Failure::from(a.clone()),
            DictError::Corrupt(_) => ShmqStatus::SHMQ_CORRUPT,
            _ => ShmqStatus::SHMQ_INTERNAL,
        };
        Failure::new(status, e.to_string())
    }
}

/// The name of a status code, as a static string ("unknown status code" for a value that is
/// not one). Never NULL; never freed.
#[unsafe(no_mangle)]
pub extern "C" fn shmq_strerror(status: c_int) -> *const c_char {
    ALL.iter()
        .find(|s| **s as c_int == status)
        .map_or(c"unknown status code", |s| describe(*s))
        .as_ptr()
}

/// The message of the calling thread's last failed call ("" if none failed yet): it says
/// what failed and why, with the names and sizes involved. Valid until the next failing call
/// on this thread; never NULL; never freed by the caller.
#[unsafe(no_mangle)]
pub extern "C" fn shmq_last_error() -> *const c_char {
    LAST.with(|l| l.borrow().message.as_ptr())
}

/// The OS error number (`errno`) of the calling thread's last failed call, 0 if the system
/// gave none. A failure with an OS error also leaves it in `errno`.
#[unsafe(no_mangle)]
pub extern "C" fn shmq_last_errno() -> c_int {
    LAST.with(|l| l.borrow().errno)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_its_own_name() {
        for (i, s) in ALL.iter().enumerate() {
            assert_eq!(*s as usize, i);
        }
        let names: std::collections::HashSet<_> = ALL.iter().map(|s| describe(*s)).collect();
        assert_eq!(names.len(), ALL.len());
    }

    /// The codes no C test can provoke through the public API (a holder table held for a
    /// second by a live process, an unrecoverable mutex, a panic) still map as documented.
    #[test]
    fn unreachable_from_c_codes_map_as_documented() {
        let busy = Failure::from(OpenError::Busy("held".into()));
        assert_eq!(busy.status, ShmqStatus::SHMQ_BUSY);
        let failed = Failure::from(AcquireError::Failed("unrecoverable".into()));
        assert_eq!(failed.status, ShmqStatus::SHMQ_LOCK_FAILED);
        let via_dict = Failure::from(DictError::Lock(AcquireError::Timeout));
        assert_eq!(via_dict.status, ShmqStatus::SHMQ_TIMEOUT);
        let status = boundary(|| panic!("a bug"));
        assert_eq!(status, ShmqStatus::SHMQ_INTERNAL);
        // SAFETY: the message is a valid C string until the next failure on this thread.
        let msg = unsafe { std::ffi::CStr::from_ptr(shmq_last_error()) };
        assert_eq!(msg.to_str(), Ok("libshmq panicked: a bug"));
        let io = Failure::from(OpenError::Io(std::io::Error::from_raw_os_error(
            libc::EMFILE,
        )));
        assert_eq!(
            (io.status, io.errno),
            (ShmqStatus::SHMQ_SYSTEM, Some(libc::EMFILE))
        );
    }
}
