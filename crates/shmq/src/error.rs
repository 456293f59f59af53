//! The error types of opening and of every queue and pipe operation.
//!
//! Setup (create/open) has its own type, [`OpenError`]. Each hot-path operation family has its
//! own, in crossbeam's shape: a failed put hands the message back (`TryPutError::Full(msg)`), so
//! nothing is lost silently, and `Debug` does not require the message to be `Debug`. Peek and
//! commit have [`PeekError`] and [`CommitError`].
//!
//! Three faces wrap these in types of their own, defined beside them: the typed views
//! (`TypedError`, `TypedPutError`, `DecodeError` in `typed`) and `Select`
//! (`SelectTimeoutError`). The substrate's robust lock reports `LockError`.

use std::fmt;
use std::io;

/// Why a segment could not be created or opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// No object has this name (or path).
    #[error("no shmq segment named {0:?}")]
    NotFound(String),
    /// `create` found the name taken.
    #[error("a segment named {0:?} already exists")]
    AlreadyExists(String),
    /// The name breaks the naming rules.
    #[error("invalid segment name {name:?}: {reason}")]
    InvalidName {
        /// The name given.
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// A valid segment, but of another kind, layout version or geometry.
    #[error("incompatible segment: {0}")]
    Incompatible(String),
    /// Not a shmq segment, truncated, or with impossible contents.
    #[error("corrupt segment: {0}")]
    Corrupt(String),
    /// Capacity, message size or mode out of range.
    #[error("invalid options: {0}")]
    InvalidOptions(String),
    /// A pipe end that every holder has left: end-of-file is final, so it cannot be opened
    /// again.
    #[error("{0}")]
    Disconnected(String),
    /// A lock that opening must take stayed held by another live process for
    /// [`OPEN_LOCK_WAIT`](crate::OPEN_LOCK_WAIT): a peer inside a long critical section, a stuck
    /// one, or a lock word written to name a live thread. Nothing changed; try again later.
    #[error("{0}")]
    Busy(String),
    /// A pipe's holder table is full: too many handles hold its ends at once.
    #[error("{0}")]
    TooManyHolders(String),
    /// The name exists but is not a regular file (a FIFO, a directory, a symbolic link, a
    /// device): not something shmq made. It is refused without blocking on it.
    #[error("{name:?} is a {file_type}, not a shared-memory segment")]
    NotASegment {
        /// The name (or path) given.
        name: String,
        /// What it is instead.
        file_type: &'static str,
    },
    /// The operating system refused an operation on `what` (permissions, `ENOSPC`, …); the
    /// source keeps its `errno` ([`OpenError::raw_os_error`]).
    #[error("{what}: {source}")]
    System {
        /// The name, path or object concerned.
        what: String,
        /// The error, with its `errno`.
        #[source]
        source: io::Error,
    },
    /// The operating system refused (permissions, `ENOSPC`, …).
    #[error("{0}")]
    Io(#[from] io::Error),
}

impl OpenError {
    /// The `errno` behind this error, if the operating system reported one.
    ///
    /// # Examples
    ///
    /// ```
    /// // /dev/shm/. is a directory: opening it is refused by name checks before any system call.
    /// let e = shmq::Queue::open(".").unwrap_err();
    /// assert_eq!(e.raw_os_error(), None);
    /// ```
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            OpenError::System { source, .. } | OpenError::Io(source) => source.raw_os_error(),
            _ => None,
        }
    }
}

/// One error type of a put or send family: its own variants (each carrying the message back),
/// plus `TooLarge` and `Corrupt`, with `into_inner`, an `is_*` per own variant, `Debug` that does
/// not need `M: Debug`, lowercase `Display`, and (with `from Base { .. }`) a conversion from the
/// family's blocking error, whose listed variants it shares.
macro_rules! message_error {
    (
        $(#[$meta:meta])*
        $name:ident {
            $($(#[$vmeta:meta])* $variant:ident => $text:literal, $is:ident;)*
        }
        $(from $base:ident { $($shared:ident),* })?
    ) => {
        $(#[$meta])*
        #[non_exhaustive]
        pub enum $name<M> {
            $($(#[$vmeta])* $variant(M),)*
            /// The message is longer than the maximum message size.
            TooLarge {
                /// The message.
                msg: M,
                /// Its length.
                len: usize,
                /// The largest length accepted.
                max: usize,
            },
            /// The segment is damaged beyond repair, or its lock failed.
            Corrupt {
                /// The message.
                msg: M,
                /// What is wrong.
                reason: String,
            },
            /// A large message found no room in `/dev/shm` for its side segment (`ENOSPC`,
            /// after a sweep of dead processes' leftovers and a retry); nothing was queued
            /// and nothing is left behind.
            NoSpace {
                /// The message.
                msg: M,
                /// Bytes the side segment needed.
                needed: usize,
                /// The system's words.
                reason: String,
            },
        }

        impl<M> $name<M> {
            /// The message that did not go through.
            pub fn into_inner(self) -> M {
                match self {
                    $(Self::$variant(m) => m,)*
                    Self::TooLarge { msg, .. }
                    | Self::Corrupt { msg, .. }
                    | Self::NoSpace { msg, .. } => msg,
                }
            }

            $(
                /// Whether this is the variant of the same name.
                pub fn $is(&self) -> bool {
                    matches!(self, Self::$variant(_))
                }
            )*

            /// The same error, carrying `f(message)` instead of the message (e.g. the typed
            /// value whose encoding did not go through).
            pub fn map<N>(self, f: impl FnOnce(M) -> N) -> $name<N> {
                match self {
                    $(Self::$variant(m) => $name::$variant(f(m)),)*
                    Self::TooLarge { msg, len, max } => $name::TooLarge { msg: f(msg), len, max },
                    Self::Corrupt { msg, reason } => $name::Corrupt { msg: f(msg), reason },
                    Self::NoSpace { msg, needed, reason } => {
                        $name::NoSpace { msg: f(msg), needed, reason }
                    }
                }
            }
        }

        impl<M> fmt::Debug for $name<M> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $(Self::$variant(_) => f.write_str(concat!(stringify!($variant), "(..)")),)*
                    Self::TooLarge { len, max, .. } => f
                        .debug_struct("TooLarge")
                        .field("len", len)
                        .field("max", max)
                        .finish_non_exhaustive(),
                    Self::Corrupt { reason, .. } => f
                        .debug_struct("Corrupt")
                        .field("reason", reason)
                        .finish_non_exhaustive(),
                    Self::NoSpace { needed, reason, .. } => f
                        .debug_struct("NoSpace")
                        .field("needed", needed)
                        .field("reason", reason)
                        .finish_non_exhaustive(),
                }
            }
        }

        impl<M> fmt::Display for $name<M> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $(Self::$variant(_) => f.write_str($text),)*
                    Self::TooLarge { len, max, .. } => write!(
                        f,
                        "message of {len} bytes exceeds the maximum message size of {max} bytes"
                    ),
                    Self::Corrupt { reason, .. } => write!(f, "corrupt segment: {reason}"),
                    Self::NoSpace { needed, reason, .. } => {
                        write!(f, "no room for a side segment of {needed} bytes: {reason}")
                    }
                }
            }
        }

        impl<M> std::error::Error for $name<M> {}

        $(
            impl<M> From<$base<M>> for $name<M> {
                fn from(e: $base<M>) -> Self {
                    match e {
                        $($base::$shared(m) => Self::$shared(m),)*
                        $base::TooLarge { msg, len, max } => Self::TooLarge { msg, len, max },
                        $base::Corrupt { msg, reason } => Self::Corrupt { msg, reason },
                        $base::NoSpace { msg, needed, reason } => {
                            Self::NoSpace { msg, needed, reason }
                        }
                    }
                }
            }
        )?
    };
}

/// One error type of a get or receive family: its own variants, plus `BufferTooSmall` and
/// `Corrupt`, an `is_*` per own variant, and (with `from Base { .. }`) a conversion from the
/// family's blocking error.
macro_rules! status_error {
    (
        $(#[$meta:meta])*
        $name:ident {
            $($(#[$vmeta:meta])* $variant:ident => $text:literal, $is:ident;)*
        }
        $(from $base:ident { $($shared:ident),* })?
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
        #[non_exhaustive]
        pub enum $name {
            $($(#[$vmeta])* #[error($text)] $variant,)*
            /// The buffer given to a `*_into` call is shorter than the next message, which stays
            /// where it is.
            #[error("buffer of {available} bytes is too small for a message of {needed} bytes")]
            BufferTooSmall {
                /// Length of the message.
                needed: usize,
                /// Length of the buffer.
                available: usize,
            },
            /// The segment is damaged beyond repair, or its lock failed.
            #[error("corrupt segment: {0}")]
            Corrupt(String),
        }

        impl $name {
            $(
                /// Whether this is the variant of the same name.
                pub fn $is(&self) -> bool {
                    matches!(self, Self::$variant)
                }
            )*
        }

        $(
            impl From<$base> for $name {
                fn from(e: $base) -> Self {
                    match e {
                        $($base::$shared => Self::$shared,)*
                        $base::BufferTooSmall { needed, available } => {
                            Self::BufferTooSmall { needed, available }
                        }
                        $base::Corrupt(s) => Self::Corrupt(s),
                    }
                }
            }
        )?
    };
}

message_error! {
    /// The error of a blocking put ([`Queue::put`](crate::Queue::put)); the message comes back.
    PutError {
        /// The queue is closed: nothing can be put any more.
        Closed => "putting into a closed queue", is_closed;
    }
}

message_error! {
    /// The error of [`Queue::try_put`](crate::Queue::try_put); the message comes back.
    TryPutError {
        /// Every slot is taken.
        Full => "putting into a full queue", is_full;
        /// The queue is closed: nothing can be put any more.
        Closed => "putting into a closed queue", is_closed;
    }
    from PutError { Closed }
}

message_error! {
    /// The error of [`Queue::put_timeout`](crate::Queue::put_timeout) and
    /// [`Queue::put_deadline`](crate::Queue::put_deadline); the message comes back.
    PutTimeoutError {
        /// The queue stayed full until the deadline.
        Timeout => "timed out putting into a full queue", is_timeout;
        /// The queue is closed: nothing can be put any more.
        Closed => "putting into a closed queue", is_closed;
    }
    from PutError { Closed }
}

status_error! {
    /// The error of a blocking get ([`Queue::get`](crate::Queue::get)).
    GetError {
        /// The queue is closed and empty: nothing will ever arrive.
        Closed => "receiving from a closed and empty queue", is_closed;
    }
}

status_error! {
    /// The error of [`Queue::try_get`](crate::Queue::try_get).
    TryGetError {
        /// No message is ready.
        Empty => "receiving from an empty queue", is_empty;
        /// The queue is closed and empty: nothing will ever arrive.
        Closed => "receiving from a closed and empty queue", is_closed;
    }
    from GetError { Closed }
}

status_error! {
    /// The error of [`Queue::get_timeout`](crate::Queue::get_timeout) and
    /// [`Queue::get_deadline`](crate::Queue::get_deadline).
    GetTimeoutError {
        /// Nothing arrived before the deadline.
        Timeout => "timed out waiting on an empty queue", is_timeout;
        /// The queue is closed and empty: nothing will ever arrive.
        Closed => "receiving from a closed and empty queue", is_closed;
    }
    from GetError { Closed }
}

message_error! {
    /// The error of a blocking send on a pipe end ([`PipeEnd::send`](crate::PipeEnd::send));
    /// the message comes back.
    SendError {
        /// No live holder of the other end is left.
        Disconnected => "sending on a disconnected pipe", is_disconnected;
        /// This end of a one-way pipe only receives.
        WrongDirection => "sending on the receiving end of a one-way pipe", is_wrong_direction;
    }
}

message_error! {
    /// The error of [`PipeEnd::try_send`](crate::PipeEnd::try_send); the message comes back.
    TrySendError {
        /// Every slot of the outgoing ring is taken.
        Full => "sending on a full pipe", is_full;
        /// No live holder of the other end is left.
        Disconnected => "sending on a disconnected pipe", is_disconnected;
        /// This end of a one-way pipe only receives.
        WrongDirection => "sending on the receiving end of a one-way pipe", is_wrong_direction;
    }
    from SendError { Disconnected, WrongDirection }
}

message_error! {
    /// The error of [`PipeEnd::send_timeout`](crate::PipeEnd::send_timeout) and
    /// [`PipeEnd::send_deadline`](crate::PipeEnd::send_deadline); the message comes back.
    SendTimeoutError {
        /// The outgoing ring stayed full until the deadline.
        Timeout => "timed out sending on a full pipe", is_timeout;
        /// No live holder of the other end is left.
        Disconnected => "sending on a disconnected pipe", is_disconnected;
        /// This end of a one-way pipe only receives.
        WrongDirection => "sending on the receiving end of a one-way pipe", is_wrong_direction;
    }
    from SendError { Disconnected, WrongDirection }
}

status_error! {
    /// The error of a blocking receive on a pipe end ([`PipeEnd::recv`](crate::PipeEnd::recv)).
    RecvError {
        /// End-of-file: the incoming ring is empty and no live holder of the other end is
        /// left, so nothing will ever arrive (Python's `EOFError`).
        Disconnected => "receiving on an empty and disconnected pipe", is_disconnected;
        /// This end of a one-way pipe only sends.
        WrongDirection => "receiving on the sending end of a one-way pipe", is_wrong_direction;
    }
}

status_error! {
    /// The error of [`PipeEnd::try_recv`](crate::PipeEnd::try_recv).
    TryRecvError {
        /// No message is ready (but the other end is still held).
        Empty => "receiving on an empty pipe", is_empty;
        /// End-of-file: the incoming ring is empty and no live holder of the other end is
        /// left, so nothing will ever arrive (Python's `EOFError`).
        Disconnected => "receiving on an empty and disconnected pipe", is_disconnected;
        /// This end of a one-way pipe only sends.
        WrongDirection => "receiving on the sending end of a one-way pipe", is_wrong_direction;
    }
    from RecvError { Disconnected, WrongDirection }
}

status_error! {
    /// The error of [`PipeEnd::recv_timeout`](crate::PipeEnd::recv_timeout) and
    /// [`PipeEnd::recv_deadline`](crate::PipeEnd::recv_deadline).
    RecvTimeoutError {
        /// Nothing arrived before the deadline.
        Timeout => "timed out waiting on an empty pipe", is_timeout;
        /// End-of-file: the incoming ring is empty and no live holder of the other end is
        /// left, so nothing will ever arrive (Python's `EOFError`).
        Disconnected => "receiving on an empty and disconnected pipe", is_disconnected;
        /// This end of a one-way pipe only sends.
        WrongDirection => "receiving on the sending end of a one-way pipe", is_wrong_direction;
    }
    from RecvError { Disconnected, WrongDirection }
}

/// The error of [`Queue::task_done`](crate::Queue::task_done).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TaskDoneError {
    /// `task_done` was called more times than items were put (Python's `ValueError`).
    #[error("task_done() called more times than there were unfinished tasks")]
    NoUnfinishedTasks,
    /// The segment is damaged beyond repair, or its lock failed.
    #[error("corrupt segment: {0}")]
    Corrupt(String),
}

/// The error of [`Queue::join`](crate::Queue::join) and its timed variants.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JoinError {
    /// Unfinished tasks remained at the deadline.
    #[error("timed out waiting for unfinished tasks")]
    Timeout,
    /// The segment is damaged beyond repair, or its lock failed.
    #[error("corrupt segment: {0}")]
    Corrupt(String),
}

/// Why [`Queue::peek_at`](crate::Queue::peek_at) returned no message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PeekError {
    /// The message at the position was taken already; `head` is the position of the oldest
    /// message now.
    #[error("the message at that position was taken already (the oldest is at {head})")]
    Taken {
        /// The position of the oldest message in the queue.
        head: u64,
    },
    /// No message reached the position before the deadline.
    #[error("timed out waiting for a message")]
    Timeout,
    /// The queue is closed and no message will ever reach the position.
    #[error("the queue is closed")]
    Closed,
    /// The segment's shared state is impossible.
    #[error("corrupt queue: {0}")]
    Corrupt(String),
}

/// Why [`Queue::commit`](crate::Queue::commit) took nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommitError {
    /// The oldest message is not at the position (another consumer took it, or the position
    /// is wrong): nothing was taken.
    #[error("the oldest message is at {head}, not at the committed position")]
    Moved {
        /// The position of the oldest message in the queue.
        head: u64,
    },
    /// Fewer messages are in the queue than the commit names: nothing was taken.
    #[error("only messages below position {tail} exist")]
    NotThere {
        /// One past the newest message's position.
        tail: u64,
    },
    /// The segment's shared state is impossible.
    #[error("corrupt queue: {0}")]
    Corrupt(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NotDebug;

    #[test]
    fn put_errors_hand_the_message_back_and_print_without_it() {
        let e: TryPutError<NotDebug> = TryPutError::Full(NotDebug);
        assert!(e.is_full());
        assert_eq!(format!("{e:?}"), "Full(..)");
        assert_eq!(e.to_string(), "putting into a full queue");
        let _msg: NotDebug = e.into_inner();
        let e = PutTimeoutError::TooLarge {
            msg: vec![0u8; 9],
            len: 9,
            max: 8,
        };
        assert_eq!(
            e.to_string(),
            "message of 9 bytes exceeds the maximum message size of 8 bytes"
        );
        assert_eq!(e.into_inner().len(), 9);
        let e: TryPutError<&str> = PutError::Closed("x").into();
        assert!(e.is_closed());
    }

    #[test]
    fn send_errors_hand_the_message_back_and_print_without_it() {
        let e: TrySendError<NotDebug> = TrySendError::Full(NotDebug);
        assert!(e.is_full() && !e.is_disconnected());
        assert_eq!(format!("{e:?}"), "Full(..)");
        assert_eq!(e.to_string(), "sending on a full pipe");
        let _msg: NotDebug = e.into_inner();
        let e: SendTimeoutError<&str> = SendError::Disconnected("x").into();
        assert!(e.is_disconnected());
        assert_eq!(e.to_string(), "sending on a disconnected pipe");
        assert_eq!(e.into_inner(), "x");
        let e: TrySendError<&str> = SendError::WrongDirection("y").into();
        assert_eq!(
            e.to_string(),
            "sending on the receiving end of a one-way pipe"
        );
        assert_eq!(format!("{e:?}"), "WrongDirection(..)");
        assert!(SendTimeoutError::Timeout(1).is_timeout());
    }

    #[test]
    fn recv_errors_convert_between_families() {
        let e: TryRecvError = RecvError::Disconnected.into();
        assert!(e.is_disconnected());
        assert!(TryRecvError::Empty.is_empty());
        assert!(RecvTimeoutError::Timeout.is_timeout());
        let e: RecvTimeoutError = RecvError::WrongDirection.into();
        assert_eq!(e, RecvTimeoutError::WrongDirection);
        assert_eq!(
            RecvError::Disconnected.to_string(),
            "receiving on an empty and disconnected pipe"
        );
    }

    #[test]
    fn get_errors_convert_between_families() {
        let e: TryGetError = GetError::Closed.into();
        assert!(e.is_closed());
        assert!(TryGetError::Empty.is_empty());
        assert!(GetTimeoutError::Timeout.is_timeout());
        assert_eq!(
            GetError::BufferTooSmall {
                needed: 5,
                available: 2
            }
            .to_string(),
            "buffer of 2 bytes is too small for a message of 5 bytes"
        );
    }
}
