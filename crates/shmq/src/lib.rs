//! # shmq — shared-memory IPC between processes, robust against SIGKILL
//!
//! shmq gives separate OS processes what Python's `multiprocessing` gives Python programs — a
//! bounded multi-producer/multi-consumer [`Queue`] with `put`/`get`, non-blocking, timeout and
//! deadline variants, the `JoinableQueue` task counter (`task_done`/`join`) and `close`, and a
//! duplex [`Pipe`] whose [`PipeEnd`]s read end-of-file once every holder of the other end is gone
//! — through one mapped shared-memory segment per object, with no feeder thread and no server
//! process.
//!
//! - Puts and gets take no lock: a producer claims its slot with one compare-and-swap that names
//!   it as the owner, a consumer takes the front message with one compare-and-swap. Sleepers wait
//!   on futex words and are woken only when someone sleeps.
//! - When `put` returns, the message is in shared memory; `len`, `is_empty` and `is_full` agree.
//! - A process killed with SIGKILL at any instruction leaves the queue usable: a slot claimed by
//!   a dead producer is skipped, never delivered half-written, and a message whose put returned
//!   is never lost. What is rare (that repair, `task_done`, `join`, `close`) goes through shmq's
//!   own robust lock, which a waiter takes over from a dead owner.
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
//! ## Where things are
//!
//! - **Queues**: [`Queue`] moves byte messages. Named in `/dev/shm` ([`Queue::create`],
//!   [`Queue::open`], [`Queue::open_or_create`], [`Queue::unlink`]), in a file
//!   ([`Queue::create_file`]) or anonymous for forked children ([`Queue::anonymous`]); sized by
//!   [`Options`] (capacity, slot size, largest message, file mode). Besides `put`/`get`: batches
//!   (`put_many`, `get_many`, `get_many_with`), zero-copy `put_with`/`get_with`, `get_into` a
//!   buffer, iterators (`for msg in &queue`, [`Queue::iter`], [`Queue::try_iter`]), and
//!   [`Queue::inspect`] to look at a queue without attaching.
//! - **Pipes**: [`Pipe::create`] (duplex) and [`Pipe::create_one_way`] give both ends;
//!   [`PipeEnd::open`] attaches to one ([`End::A`] or [`End::B`]) from another process;
//!   [`PipeEnd::hand_off`] keeps an end open until a spawned child has opened it.
//! - **Typed messages**: [`TypedQueue`] and [`TypedPipe`] with a [`Codec`]: [`PodQueue`] and
//!   [`PodPipeEnd`] for `#[repr(C)]` structs ([`codec::Pod`]: `bytemuck::Pod` types as their
//!   bytes, no serialisation), and with the `serde` feature `SerdeQueue` / `SerdePipeEnd`
//!   ([`codec`]'s `Postcard`). The element type is recorded in the segment: opening it as
//!   another type is [`OpenError::Incompatible`].
//! - **Waiting on several objects**: [`Select`] waits until one of several queues or pipe ends
//!   can be read or written, with a timeout, in one system call.
//! - **Async** (feature `tokio`): `put_async`/`get_async` on queues, `send_async`/`recv_async`
//!   on pipe ends, and `Stream`/`Sink` adapters (`QueueStream`, `QueueSink`, `PipeStream`,
//!   `PipeSink`); cancel-safe, woken by one notifier thread per process. The futures use only
//!   `std::task` (any executor); they are tested on tokio's.
//! - **Large messages**: a message larger than a slot (up to [`Options::max_message_size`],
//!   1 GiB by default) travels in a side segment of its own, on every put and get path.
//! - **Errors**: one type per call family ([`PutError`], [`GetError`], [`TryPutError`],
//!   [`OpenError`], …): a put that fails hands the message back.
//! - **Watching**: [`Snapshot`] looks at every shmq segment of the machine without attaching
//!   (what `shmq top` and `shmq metrics` show).
//! - **Below the queue**: [`substrate`] holds what the companion crates build on — segments
//!   and their inspection, the byte layout, the robust lock, liveness of processes, side
//!   segments. A program that moves messages does not need it.
//! - **A shared dict and a named lock** are in the companion crate `shmq-dict` (`SharedDict`, a
//!   `String -> i64` map with Python's Manager-dict semantics, and `Lock`).
//!
//! Feature flags (all off by default):
//!
//! | feature | gives |
//! |---|---|
//! | `serde` | `SerdeQueue`, `SerdePipeEnd` and the `Postcard` codec (serde + postcard) |
//! | `tokio` | the async methods and the `Stream`/`Sink` adapters (futures-core, futures-sink) |
//!
//! The repository's `docs/` has the protocol (what each operation does in shared memory and why
//! a killed process leaves everything usable), the segment layout, the benchmarks and a
//! getting-started page for Rust, Python and the shell.

#![deny(unsafe_code)]
#![warn(missing_docs)]

#[cfg(not(target_os = "linux"))]
compile_error!(
    "shmq runs on Linux only: its lock-free ring and robust lock sleep on futexes, its segments live in /dev/shm, and it tells live owners from dead ones through /proc (see the README)"
);

// The layers, top down; each module uses only those below it (docs/architecture.md):
//
// - faces: `queue` (+ `put`, `get`, `peek`, `voided`), `pipe` (+ `send`, `recv`), `typed`
//   (+ `queue`, `pipe`), `codec`, `iter`, `select`, `asynch`; their public types in `error` and
//   `options`; `snapshot` (watching every segment, for `shmq top`).
// - port: `port` (one direction of messages, the put and get families, the error mappers)
//   with `port::queue_segment` and `port::pipe_handle` (+ `holders`: what a queue and a pipe
//   end stand on: creation, opening, the pipe's holder table), `port::peek`, `port::wait`
//   (readiness, waiting on several rings) and `port::notifier` (the async wake-ups).
// - message path: `engine` (blocking loops, participants, voiding dead claims), `large`
//   (+ `put`, `side`: messages larger than a slot, in side segments).
// - ring: `ring` (the ring in a segment, its robust lock, repair, tasks, close), `lockfree`
//   (+ `claim`, `pop`, `reserve`, `repair`, `peek`: the lock-free protocol, under loom too).
// - substrate: `segment` (+ `blob`, `stream`, `inspection`, `region`), `layout`, `sync`
//   (+ `mutex`, `semaphore`, `futex`, `atomic`, `per_process`), `liveness`, `sys` (every system
//   call), `limits` (numbers that import nothing); `substrate` re-exports the public part.
//
// Under `--cfg loom` only the protocol modules that loom can model are compiled (their atomics
// and futex calls are loom's; see `sync::futex`), with their loom tests:
// `RUSTFLAGS="--cfg loom" cargo test -p shmq --lib --release loom`.
#[cfg(all(not(loom), feature = "tokio"))]
mod asynch;
#[cfg(not(loom))]
pub mod codec;
#[cfg(not(loom))]
mod engine;
#[cfg(not(loom))]
mod error;
#[cfg(not(loom))]
mod iter;
#[cfg(not(loom))]
mod large;
#[cfg(not(loom))]
mod layout;
#[cfg(not(loom))]
mod limits;
#[cfg(not(loom))]
mod liveness;
mod lockfree;
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
mod segment;
#[cfg(not(loom))]
mod select;
#[cfg(not(loom))]
pub mod snapshot;
#[cfg(not(loom))]
pub mod substrate;
// Under loom only `sync` and `lockfree` are compiled; `sync` stays public there, as a private
// module's public items would be unreachable. Otherwise `substrate` re-exports it.
#[cfg(loom)]
pub mod sync;
#[cfg(not(loom))]
mod sync;
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
pub use limits::{OPEN_LOCK_WAIT, TRY_LOCK_WAIT};
#[cfg(not(loom))]
pub use options::Options;
#[cfg(not(loom))]
pub use pipe::{End, HandOff, LIVENESS_SLICE, PeerHolders, Pipe, PipeEnd, PipeInfo};
#[cfg(not(loom))]
pub use queue::{CommitError, PeekError};
#[cfg(not(loom))]
pub use queue::{Queue, QueueInfo};
#[cfg(not(loom))]
pub use segment::CreationMode;
#[cfg(not(loom))]
pub use select::{Select, SelectTimeoutError};
#[cfg(not(loom))]
pub use snapshot::Snapshot;
#[cfg(not(loom))]
pub use typed::{
    Codec, DecodeError, PodPipeEnd, PodQueue, TypeTag, TypedEnds, TypedError, TypedPipe,
    TypedPipeEnd, TypedPutError, TypedQueue,
};
#[cfg(all(not(loom), feature = "serde"))]
pub use typed::{SerdePipeEnd, SerdeQueue};

/// The README's examples, compiled and run as doctests so that they cannot rot.
#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
