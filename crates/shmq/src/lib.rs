//! # shmq — shared-memory IPC between processes, robust against SIGKILL
//!
//! shmq gives separate OS processes what Python's `multiprocessing` gives Python programs — a
//! bounded multi-producer/multi-consumer [`Queue`] with `put`/`get`, non-blocking, timeout and
//! deadline variants, the `JoinableQueue` task counter (`task_done`/`join`) and `close`, and a
//! duplex [`Pipe`] whose [`PipeEnd`]s read end-of-file once every holder of the other end is gone
//! — through one mapped shared-memory segment per object, with no feeder thread and no server
//! process.
//!
//! - When `put` returns, the message is in shared memory; `len`, `is_empty` and `is_full` agree.
//! - A process killed with SIGKILL at any point, even holding the lock, leaves the queue usable:
//!   the next process to lock it repairs the derived state and goes on.
//! - Every blocking call has a `_timeout` (relative) and a `_deadline` (monotonic `Instant`)
//!   variant; a failed put hands the message back; bad input is a typed error.
//! - A pipe end whose peers are all gone — closed, dropped or killed — reads as end-of-file
//!   ([`RecvError::Disconnected`]) once drained.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use shmq::{GetError, Options, Queue};
//!
//! let name = format!("shmq-doc-lib-{}", std::process::id());
//! let q = Queue::create(&name, &Options { capacity: 8, message_size: 64, ..Default::default() })?;
//!
//! // In a producer process:
//! let producer = Queue::open(&name)?;
//! for i in 0..3u8 {
//!     producer.put([i])?;
//! }
//! producer.close()?; // the end of work is a state, not a sentinel
//!
//! // In a consumer process:
//! let mut got = Vec::new();
//! loop {
//!     match q.get() {
//!         Ok(msg) => got.push(msg[0]),
//!         Err(GetError::Closed) => break,
//!         Err(e) => return Err(e.into()),
//!     }
//! }
//! assert_eq!(got, [0, 1, 2]);
//! Queue::unlink(&name)?;
//! # Ok(())
//! # }
//! ```
//!
//! ## Layers
//!
//! `sys` (private) is the only module that calls the operating system; [`segment`] maps memory
//! and inspects segments; [`layout`] is the byte
//! format (`docs/layout.md`); [`sync`] holds the robust mutex and futex semaphores; `ring` is the
//! algorithm; [`Queue`], [`Pipe`] and [`PipeEnd`] are the public API. The protocol is in
//! `docs/protocol.md`.

#![deny(unsafe_code)]
#![warn(missing_docs)]

#[cfg(not(target_os = "linux"))]
compile_error!("shmq runs on Linux only (futexes, /dev/shm, glibc robust mutexes): see the README");

// Under `--cfg loom` only the protocol modules that loom can model are compiled (their atomics
// and futex calls are loom's; see `sync::futex`), with their loom tests:
// `RUSTFLAGS="--cfg loom" cargo test -p shmq --lib --release loom`.
#[cfg(all(not(loom), feature = "tokio"))]
mod asynch;
#[cfg(not(loom))]
mod engine;
#[cfg(not(loom))]
mod error;
#[cfg(not(loom))]
mod iter;
#[cfg(not(loom))]
pub mod large;
#[cfg(not(loom))]
pub mod layout;
mod lockfree;
#[cfg(all(not(loom), feature = "tokio"))]
mod notifier;
#[cfg(not(loom))]
mod options;
#[cfg(not(loom))]
mod pipe;
#[cfg(not(loom))]
mod port;
#[cfg(not(loom))]
mod queue;
#[cfg(not(loom))]
mod ring;
#[cfg(not(loom))]
pub mod segment;
#[cfg(not(loom))]
mod select;
#[cfg(not(loom))]
mod side;
#[cfg(not(loom))]
pub mod snapshot;
pub mod sync;
#[cfg(not(loom))]
mod sys;
#[cfg(all(test, not(loom)))]
mod test_util;
#[cfg(not(loom))]
mod typed;

#[cfg(all(not(loom), feature = "tokio"))]
pub use asynch::{PipeSink, PipeStream, QueueSink, QueueStream};
#[cfg(not(loom))]
pub use error::{
    GetError, GetTimeoutError, JoinError, OpenError, PutError, PutTimeoutError, RecvError,
    RecvTimeoutError, SendError, SendTimeoutError, TaskDoneError, TryGetError, TryPutError,
    TryRecvError, TrySendError,
};
#[cfg(not(loom))]
pub use iter::{Iter, PipeIter, PipeTryIter, TryIter, TypedIter, TypedPipeIter};
#[cfg(not(loom))]
pub use options::{OPEN_LOCK_WAIT, Options, TRY_LOCK_WAIT};
#[cfg(not(loom))]
pub use pipe::{End, HandOff, LIVENESS_SLICE, Pipe, PipeEnd, PipeInfo};
#[cfg(not(loom))]
pub use queue::{CommitError, PeekError};
#[cfg(not(loom))]
pub use queue::{Queue, QueueInfo};
#[cfg(not(loom))]
pub use segment::{AtomicRegion, Backing, CreationMode, Segment};
#[cfg(not(loom))]
pub use select::{Select, SelectTimeoutError};
#[cfg(not(loom))]
pub use snapshot::Snapshot;
#[cfg(not(loom))]
pub use sync::{LockError, LockState, MutexGuard, RawMutex};
#[cfg(not(loom))]
pub use typed::{
    Codec, DecodeError, Pod, PodPipeEnd, PodQueue, TypeTag, TypedEnds, TypedError, TypedPipe,
    TypedPipeEnd, TypedPutError, TypedQueue,
};
#[cfg(all(not(loom), feature = "serde"))]
pub use typed::{Postcard, SerdePipeEnd, SerdeQueue};

/// The README's examples, compiled and run as doctests so that they cannot rot.
#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
