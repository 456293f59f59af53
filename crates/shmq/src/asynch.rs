//! The async API (feature `tokio`): `put_async`/`get_async` on [`Queue`] and
//! [`TypedQueue`], `send_async`/`recv_async` on [`PipeEnd`] and [`TypedPipeEnd`], and
//! `Stream`/`Sink` adapters ([`QueueStream`], [`QueueSink`], [`PipeStream`], [`PipeSink`]).
//!
//! The futures are runtime-agnostic (they only use `std::task`); they are tested on tokio's
//! multi-thread runtime. A future first tries the non-blocking operation; if it would block,
//! it announces itself on the ring's event word, tries once more, and registers its waker with
//! the per-process notifier thread (see `notifier.rs`), which sleeps in `futex_waitv` on every
//! registered word: no thread per future. The futures, streams and sinks are written once,
//! over the private `Port` and `GivePort` traits that queues, pipe ends and their typed views
//! implement (their watched ring and their non-blocking take and give).
//!
//! **Cancel safety.** A message is only ever taken (or put) by one non-blocking call inside
//! `poll`, which then returns `Ready` with it: there is no await point between taking a
//! message and handing it over. A future dropped while pending has taken nothing and holds no
//! slot (a pending put keeps its message in the future, not in the queue). So
//! `tokio::time::timeout(d, q.get_async())` that times out loses no message, and
//! `tokio::select!` over these futures is safe.
//!
//! The non-blocking calls never sleep on a condition; like `try_put`, they may wait up to
//! [`TRY_LOCK_WAIT`](crate::TRY_LOCK_WAIT) for the producers' lock while another process holds
//! it (normally microseconds).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_core::Stream;
use futures_sink::Sink;

use crate::error::{
    GetError, PutError, RecvError, SendError, TryGetError, TryPutError, TryRecvError, TrySendError,
};
use crate::pipe::PipeEnd;
use crate::port::wait::{Dir, Watch};
use crate::queue::Queue;
use crate::typed::{Codec, TypedError, TypedPipeEnd, TypedPutError, TypedQueue};

/// How long a future spins on its condition before it registers with the notifier.
const SPIN_FOR: Duration = Duration::from_micros(20);

/// A registration with the notifier, removed when dropped.
#[derive(Default)]
struct Waiter {
    id: Option<u64>,
}

impl Waiter {
    /// Tries `attempt`; if it would block, announces on the watch's word, tries again, and
    /// registers the waker.
    fn poll_op<R>(
        &mut self,
        cx: &mut Context<'_>,
        watch: &Watch<'_>,
        mut attempt: impl FnMut() -> Option<R>,
    ) -> Poll<R> {
        if let Some(r) = attempt() {
            self.cancel();
            return Poll::Ready(r);
        }
        if self.id.is_none() {
            // First wait of this operation: a peer on another CPU often answers within
            // microseconds, and a wake-up through the notifier thread costs tens of them. Spin
            // briefly, as the blocking calls do (a few microseconds at most on this thread).
            let until = Instant::now() + SPIN_FOR;
            while !watch.ready() && Instant::now() < until {
                std::hint::spin_loop();
            }
            if let Some(r) = attempt() {
                return Poll::Ready(r);
            }
        }
        let Some(ev) = watch.event() else {
            // No ring this way: `attempt` reports the wrong direction at once; never here.
            cx.waker().wake_by_ref();
            return Poll::Pending;
        };
        let v = ev.prepare();
        if let Some(r) = attempt() {
            self.cancel();
            return Poll::Ready(r);
        }
        self.id = Some(crate::port::notifier::register(
            self.id,
            ev.0,
            v,
            cx.waker(),
            watch.needs_liveness(),
        ));
        Poll::Pending
    }

    fn cancel(&mut self) {
        if let Some(id) = self.id.take() {
            crate::port::notifier::deregister(id);
        }
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        self.cancel();
    }
}

/// A future made of a watched ring and a non-blocking attempt.
struct OpFuture<'a, F> {
    watch: Watch<'a>,
    attempt: F,
    waiter: Waiter,
}

impl<F> Unpin for OpFuture<'_, F> {}

impl<R, F: FnMut() -> Option<R>> Future for OpFuture<'_, F> {
    type Output = R;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<R> {
        let this = self.get_mut();
        this.waiter.poll_op(cx, &this.watch, &mut this.attempt)
    }
}

fn op<'a, R>(
    watch: Watch<'a>,
    attempt: impl FnMut() -> Option<R> + Send + 'a,
) -> impl Future<Output = R> + Send + 'a {
    OpFuture {
        watch,
        attempt,
        waiter: Waiter::default(),
    }
}

/// The error of a non-blocking take (`try_get`, `try_recv` and their typed twins): "nothing
/// there now", or the error that ends the wait of the blocking (and async) call.
trait TryTakeError {
    /// The blocking call's error.
    type Blocking;
    /// `None` for "empty" (wait), else the error the async call returns.
    fn into_blocking(self) -> Option<Self::Blocking>;
}

impl TryTakeError for TryGetError {
    type Blocking = GetError;
    fn into_blocking(self) -> Option<GetError> {
        Some(match self {
            TryGetError::Empty => return None,
            TryGetError::Closed => GetError::Closed,
            TryGetError::BufferTooSmall { needed, available } => {
                GetError::BufferTooSmall { needed, available }
            }
            TryGetError::Corrupt(s) => GetError::Corrupt(s),
        })
    }
}

impl TryTakeError for TryRecvError {
    type Blocking = RecvError;
    fn into_blocking(self) -> Option<RecvError> {
        Some(match self {
            TryRecvError::Empty => return None,
            TryRecvError::Disconnected => RecvError::Disconnected,
            TryRecvError::WrongDirection => RecvError::WrongDirection,
            TryRecvError::BufferTooSmall { needed, available } => {
                RecvError::BufferTooSmall { needed, available }
            }
            TryRecvError::Corrupt(s) => RecvError::Corrupt(s),
        })
    }
}

impl<E: TryTakeError> TryTakeError for TypedError<E> {
    type Blocking = TypedError<E::Blocking>;
    fn into_blocking(self) -> Option<Self::Blocking> {
        match self {
            TypedError::Queue(e) => e.into_blocking().map(TypedError::Queue),
            TypedError::Decode(e) => Some(TypedError::Decode(e)),
        }
    }
}

/// The error of a non-blocking give of `M` (`try_put`, `try_send` and their typed twins):
/// "no room now" with the message handed back, or the error that ends the wait.
trait TryGiveError<M> {
    /// The blocking call's error.
    type Blocking;
    /// `Err(msg)` for "full" (wait, and try again with `msg`), else the error the async call
    /// returns.
    fn into_blocking(self) -> Result<Self::Blocking, M>;
}

impl<M> TryGiveError<M> for TryPutError<M> {
    type Blocking = PutError<M>;
    fn into_blocking(self) -> Result<PutError<M>, M> {
        Ok(match self {
            TryPutError::Full(m) => return Err(m),
            TryPutError::Closed(m) => PutError::Closed(m),
            TryPutError::TooLarge { msg, len, max } => PutError::TooLarge { msg, len, max },
            TryPutError::Corrupt { msg, reason } => PutError::Corrupt { msg, reason },
            TryPutError::NoSpace {
                msg,
                needed,
                reason,
            } => PutError::NoSpace {
                msg,
                needed,
                reason,
            },
        })
    }
}

impl<M> TryGiveError<M> for TrySendError<M> {
    type Blocking = SendError<M>;
    fn into_blocking(self) -> Result<SendError<M>, M> {
        Ok(match self {
            TrySendError::Full(m) => return Err(m),
            TrySendError::Disconnected(m) => SendError::Disconnected(m),
            TrySendError::WrongDirection(m) => SendError::WrongDirection(m),
            TrySendError::TooLarge { msg, len, max } => SendError::TooLarge { msg, len, max },
            TrySendError::Corrupt { msg, reason } => SendError::Corrupt { msg, reason },
            TrySendError::NoSpace {
                msg,
                needed,
                reason,
            } => SendError::NoSpace {
                msg,
                needed,
                reason,
            },
        })
    }
}

impl<T, E: TryGiveError<T>> TryGiveError<T> for TypedPutError<E, T> {
    type Blocking = TypedPutError<E::Blocking, T>;
    fn into_blocking(self) -> Result<Self::Blocking, T> {
        match self {
            TypedPutError::Queue(e) => e.into_blocking().map(TypedPutError::Queue),
            TypedPutError::Encode { value, reason } => Ok(TypedPutError::Encode { value, reason }),
        }
    }
}

/// What the futures, streams and sinks need of a [`Queue`], a [`PipeEnd`] or their typed
/// views: the ring to watch each way and the non-blocking take. The async API is written once
/// over it ([`take_async`], [`Taker`]) and over [`GivePort`] ([`give_async`], [`Giver`]).
trait Port: Sync {
    /// What a take returns.
    type Item;
    /// The error of [`try_take`](Self::try_take).
    type TakeError: TryTakeError;
    /// The watch of the operation `dir` (for a pipe end, its incoming or outgoing ring).
    fn watch(&self, dir: Dir) -> Watch<'_>;
    /// `try_get` / `try_recv`.
    fn try_take(&self) -> Result<Self::Item, Self::TakeError>;
}

/// A [`Port`] that gives messages of type `M`.
trait GivePort<M>: Port {
    /// The error of [`try_give`](Self::try_give).
    type GiveError: TryGiveError<M>;
    /// `try_put` / `try_send`.
    fn try_give(&self, msg: M) -> Result<(), Self::GiveError>;
}

impl Port for Queue {
    type Item = Vec<u8>;
    type TakeError = TryGetError;
    fn watch(&self, dir: Dir) -> Watch<'_> {
        self.watch(dir)
    }
    fn try_take(&self) -> Result<Vec<u8>, TryGetError> {
        self.try_get()
    }
}

impl<M: AsRef<[u8]>> GivePort<M> for Queue {
    type GiveError = TryPutError<M>;
    fn try_give(&self, msg: M) -> Result<(), TryPutError<M>> {
        self.try_put(msg)
    }
}

impl Port for PipeEnd {
    type Item = Vec<u8>;
    type TakeError = TryRecvError;
    fn watch(&self, dir: Dir) -> Watch<'_> {
        PipeEnd::watch(self, dir)
    }
    fn try_take(&self) -> Result<Vec<u8>, TryRecvError> {
        self.try_recv()
    }
}

impl<M: AsRef<[u8]>> GivePort<M> for PipeEnd {
    type GiveError = TrySendError<M>;
    fn try_give(&self, msg: M) -> Result<(), TrySendError<M>> {
        self.try_send(msg)
    }
}

impl<T, C: Codec<T>> Port for TypedQueue<T, C> {
    type Item = T;
    type TakeError = TypedError<TryGetError>;
    fn watch(&self, dir: Dir) -> Watch<'_> {
        self.queue().watch(dir)
    }
    fn try_take(&self) -> Result<T, Self::TakeError> {
        self.try_get()
    }
}

impl<T, C: Codec<T>> GivePort<T> for TypedQueue<T, C> {
    type GiveError = TypedPutError<TryPutError<T>, T>;
    fn try_give(&self, value: T) -> Result<(), Self::GiveError> {
        self.try_put(value)
    }
}

impl<T, C: Codec<T>> Port for TypedPipeEnd<T, C> {
    type Item = T;
    type TakeError = TypedError<TryRecvError>;
    fn watch(&self, dir: Dir) -> Watch<'_> {
        self.pipe_end().watch(dir)
    }
    fn try_take(&self) -> Result<T, Self::TakeError> {
        self.try_recv()
    }
}

impl<T, C: Codec<T>> GivePort<T> for TypedPipeEnd<T, C> {
    type GiveError = TypedPutError<TrySendError<T>, T>;
    fn try_give(&self, value: T) -> Result<(), Self::GiveError> {
        self.try_send(value)
    }
}

/// The error of an async take from `P`.
type TakeErr<P> = <<P as Port>::TakeError as TryTakeError>::Blocking;
/// The error of an async give of `M` to `P`.
type GiveErr<P, M> = <<P as GivePort<M>>::GiveError as TryGiveError<M>>::Blocking;

/// One non-blocking take: `None` while empty, else the item or the error that ends the wait.
fn take_once<P: Port>(p: &P) -> Option<Result<P::Item, TakeErr<P>>> {
    match p.try_take() {
        Ok(m) => Some(Ok(m)),
        Err(e) => e.into_blocking().map(Err),
    }
}

/// One non-blocking give of the message in `slot`: `None` while full (the message is back in
/// `slot`), else the outcome. `None` at once if `slot` is empty (never, in the callers).
fn give_once<P: GivePort<M>, M>(p: &P, slot: &mut Option<M>) -> Option<Result<(), GiveErr<P, M>>> {
    let m = slot.take()?;
    match p.try_give(m) {
        Ok(()) => Some(Ok(())),
        Err(e) => match e.into_blocking() {
            Ok(e) => Some(Err(e)),
            Err(m) => {
                *slot = Some(m);
                None
            }
        },
    }
}

/// `get_async` / `recv_async` of every port.
fn take_async<P: Port>(p: &P) -> impl Future<Output = Result<P::Item, TakeErr<P>>> + Send + '_ {
    op(p.watch(Dir::Take), move || take_once(p))
}

/// `put_async` / `send_async` of every port.
fn give_async<'a, P: GivePort<M>, M: Send + 'a>(
    p: &'a P,
    msg: M,
) -> impl Future<Output = Result<(), GiveErr<P, M>>> + Send + 'a {
    let mut slot = Some(msg);
    op(p.watch(Dir::Give), move || give_once(p, &mut slot))
}

impl Queue {
    /// Takes the oldest message, waiting (asynchronously) while the queue is empty.
    /// Cancel-safe: a dropped future has taken nothing.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// let q = shmq::Queue::anonymous(&shmq::Options { capacity: 2, message_size: 8, ..Default::default() })?;
    /// // A timed-out get takes nothing...
    /// assert!(tokio::time::timeout(Duration::from_millis(5), q.get_async()).await.is_err());
    /// q.put(b"later")?;
    /// // ...so the message is there for the next one.
    /// assert_eq!(q.get_async().await?, b"later");
    /// # Ok(())
    /// # }
    /// ```
    pub fn get_async(&self) -> impl Future<Output = Result<Vec<u8>, GetError>> + Send + '_ {
        take_async(self)
    }

    /// Puts `msg`, waiting (asynchronously) while the queue is full. Cancel-safe: a dropped
    /// future has put nothing and holds no slot (the message is dropped with it).
    ///
    /// # Errors
    ///
    /// As [`put`](Self::put).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let q = shmq::Queue::anonymous(&shmq::Options { capacity: 1, message_size: 8, ..Default::default() })?;
    /// q.put_async(b"one").await?;
    /// let (put, got) = tokio::join!(q.put_async(b"two"), async { q.get_async().await });
    /// put?;
    /// assert_eq!(got?, b"one");
    /// assert_eq!(q.get()?, b"two");
    /// # Ok(())
    /// # }
    /// ```
    pub fn put_async<'a, M: AsRef<[u8]> + Send + 'a>(
        &'a self,
        msg: M,
    ) -> impl Future<Output = Result<(), PutError<M>>> + Send + 'a {
        give_async(self, msg)
    }

    /// A [`Stream`] of the messages, ending once the queue is closed and drained (or on a
    /// corrupt segment).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use futures_util::StreamExt;
    /// let q = shmq::Queue::anonymous(&shmq::Options { capacity: 4, message_size: 8, ..Default::default() })?;
    /// q.put(b"a")?;
    /// q.put(b"b")?;
    /// q.close()?;
    /// let all: Vec<Vec<u8>> = q.stream().collect().await;
    /// assert_eq!(all.len(), 2);
    /// # Ok(())
    /// # }
    /// ```
    pub fn stream(&self) -> QueueStream<'_> {
        QueueStream(Taker::new(self))
    }

    /// A [`Sink`] of messages (one is buffered by `start_send`; `poll_ready`/`poll_flush` put
    /// it, waiting while the queue is full).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use futures_util::SinkExt;
    /// let q = shmq::Queue::anonymous(&shmq::Options { capacity: 4, message_size: 8, ..Default::default() })?;
    /// let mut sink = q.sink::<&[u8]>();
    /// sink.send(b"x").await?;
    /// assert_eq!(q.get()?, b"x");
    /// # Ok(())
    /// # }
    /// ```
    pub fn sink<M: AsRef<[u8]>>(&self) -> QueueSink<'_, M> {
        QueueSink(Giver::new(self))
    }
}

impl PipeEnd {
    /// Receives the oldest message, waiting (asynchronously) while none is there. Cancel-safe.
    /// A peer killed without closing is noticed within about
    /// [`LIVENESS_SLICE`](crate::LIVENESS_SLICE).
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmq::{Options, Pipe, RecvError};
    /// let name = format!("shmq-doc-pipe-recvasync-{}", std::process::id());
    /// let (a, b) = Pipe::create(&name, &Options { capacity: 2, message_size: 8, ..Default::default() })?;
    /// b.send_async(b"hi").await?;
    /// assert_eq!(a.recv_async().await?, b"hi");
    /// b.close()?;
    /// assert_eq!(a.recv_async().await, Err(RecvError::Disconnected));
    /// Pipe::unlink(&name)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn recv_async(&self) -> impl Future<Output = Result<Vec<u8>, RecvError>> + Send + '_ {
        take_async(self)
    }

    /// Sends `msg`, waiting (asynchronously) while the outgoing ring is full. Cancel-safe.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    ///
    /// # Examples
    ///
    /// See [`recv_async`](Self::recv_async).
    pub fn send_async<'a, M: AsRef<[u8]> + Send + 'a>(
        &'a self,
        msg: M,
    ) -> impl Future<Output = Result<(), SendError<M>>> + Send + 'a {
        give_async(self, msg)
    }

    /// A [`Stream`] of the incoming messages, ending at end-of-file.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use futures_util::StreamExt;
    /// use shmq::{Options, Pipe};
    /// let name = format!("shmq-doc-pipe-stream-{}", std::process::id());
    /// let (a, b) = Pipe::create(&name, &Options { capacity: 4, message_size: 8, ..Default::default() })?;
    /// b.send(b"1")?;
    /// b.close()?;
    /// assert_eq!(a.stream().count().await, 1);
    /// Pipe::unlink(&name)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn stream(&self) -> PipeStream<'_> {
        PipeStream(Taker::new(self))
    }

    /// A [`Sink`] of outgoing messages.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use futures_util::SinkExt;
    /// use shmq::{Options, Pipe};
    /// let name = format!("shmq-doc-pipe-sink-{}", std::process::id());
    /// let (a, b) = Pipe::create(&name, &Options { capacity: 4, message_size: 8, ..Default::default() })?;
    /// a.sink::<Vec<u8>>().send(b"s".to_vec()).await?;
    /// assert_eq!(b.recv()?, b"s");
    /// Pipe::unlink(&name)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn sink<M: AsRef<[u8]>>(&self) -> PipeSink<'_, M> {
        PipeSink(Giver::new(self))
    }
}

/// A future that completes once an operation would return at once (the watch is ready),
/// without doing it: the readiness half of [`op`], for callers that wait on an event word and
/// then do the operation themselves (`*_ready_async`). It does not spin: a caller polls it to
/// arm a wake-up, not to get a message fast. Dropped while pending, it deregisters.
struct ReadyFuture<'a> {
    watch: Watch<'a>,
    waiter: Waiter,
    /// Whether to sweep a pipe's holder table when due and wake every [`LIVENESS_SLICE`]
    /// to do so (a peer killed without closing), or only on a change of the event word.
    ///
    /// [`LIVENESS_SLICE`]: crate::LIVENESS_SLICE
    liveness: bool,
}

impl Unpin for ReadyFuture<'_> {}

impl Future for ReadyFuture<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        // A pipe end sweeps its holder table when due, so a peer killed without closing
        // becomes `SENDERS_GONE`/`RECEIVERS_GONE` (ready: the operation reports it).
        if this.liveness {
            this.watch.recheck();
        }
        if this.watch.ready() {
            this.waiter.cancel();
            return Poll::Ready(());
        }
        let Some(ev) = this.watch.event() else {
            this.waiter.cancel();
            return Poll::Ready(());
        };
        let v = ev.prepare();
        if this.watch.ready() {
            this.waiter.cancel();
            return Poll::Ready(());
        }
        this.waiter.id = Some(crate::port::notifier::register(
            this.waiter.id,
            ev.0,
            v,
            cx.waker(),
            this.liveness && this.watch.needs_liveness(),
        ));
        Poll::Pending
    }
}

fn ready_async(watch: Watch<'_>, liveness: bool) -> impl Future<Output = ()> + Send + '_ {
    ReadyFuture {
        watch,
        waiter: Waiter::default(),
        liveness,
    }
}

impl Queue {
    /// Completes once a `get` would return at once (a message waits, or the queue is closed),
    /// taking nothing: for callers that wait on several things and then call
    /// [`try_get`](Self::try_get). Another consumer may take the message first, so the
    /// `try_get` may still find the queue empty. Cancel-safe.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let q = shmq::Queue::anonymous(&shmq::Options { capacity: 2, message_size: 8, ..Default::default() })?;
    /// let ((), put) = tokio::join!(q.get_ready_async(), async { q.put(b"m") });
    /// put?;
    /// assert_eq!(q.len(), 1); // the wait took nothing
    /// assert_eq!(q.try_get()?, b"m");
    /// # Ok(())
    /// # }
    /// ```
    pub fn get_ready_async(&self) -> impl Future<Output = ()> + Send + '_ {
        ready_async(self.watch(Dir::Take), false)
    }

    /// Completes once a `put` would return at once (a free slot, or the queue is closed),
    /// putting nothing (see [`get_ready_async`](Self::get_ready_async)). Cancel-safe.
    pub fn put_ready_async(&self) -> impl Future<Output = ()> + Send + '_ {
        ready_async(self.watch(Dir::Give), false)
    }
}

impl PipeEnd {
    /// Whether a `recv` would return at once (a message waits, or end-of-file; `true` for an
    /// end that cannot receive), without receiving and without waiting. Sweeps the holder
    /// table if this handle's last sweep is [`LIVENESS_SLICE`](crate::LIVENESS_SLICE) old,
    /// so a peer killed without closing counts as gone.
    pub fn recv_ready(&self) -> bool {
        let w = self.watch(Dir::Take);
        w.recheck();
        w.ready()
    }

    /// Whether a `send` would return at once (a free slot, or the other end gone; `true` for
    /// an end that cannot send), without sending and without waiting; sweeps as
    /// [`recv_ready`](Self::recv_ready).
    pub fn send_ready(&self) -> bool {
        let w = self.watch(Dir::Give);
        w.recheck();
        w.ready()
    }

    /// Completes once a `recv` would return at once (a message waits, or end-of-file; at
    /// once for an end that cannot receive), receiving nothing. Cancel-safe.
    ///
    /// With `watch_peer`, a peer killed without closing is noticed within
    /// [`LIVENESS_SLICE`](crate::LIVENESS_SLICE): the future sweeps the holder table that
    /// often, which costs a little CPU per slice while it waits. Without, it completes on a
    /// message or a close only, and a killed peer is noticed by the next call on this handle
    /// that sweeps (such as [`poll`](Self::poll)): for callers that watch the peers of many
    /// idle ends themselves ([`peer_holders`](Self::peer_holders)).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmq::{Options, Pipe};
    /// let name = format!("shmq-doc-pipe-recvready-{}", std::process::id());
    /// let (a, b) = Pipe::create(&name, &Options { capacity: 2, message_size: 8, ..Default::default() })?;
    /// assert!(!a.recv_ready());
    /// let ((), sent) = tokio::join!(a.recv_ready_async(true), async { b.send(b"hi") });
    /// sent?;
    /// assert!(a.recv_ready()); // nothing was received
    /// assert_eq!(a.recv()?, b"hi");
    /// b.close()?;
    /// a.recv_ready_async(false).await; // end-of-file is ready too
    /// assert!(a.recv_ready());
    /// Pipe::unlink(&name)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn recv_ready_async(&self, watch_peer: bool) -> impl Future<Output = ()> + Send + '_ {
        ready_async(self.watch(Dir::Take), watch_peer)
    }

    /// Completes once a `send` would return at once (a free slot, or the other end gone; at
    /// once for an end that cannot send), sending nothing. `watch_peer` as for
    /// [`recv_ready_async`](Self::recv_ready_async). Cancel-safe.
    pub fn send_ready_async(&self, watch_peer: bool) -> impl Future<Output = ()> + Send + '_ {
        ready_async(self.watch(Dir::Give), watch_peer)
    }
}

/// A [`Stream`] of the items taken from a port, ending at the first error (closed and
/// drained, end-of-file, corrupt): the one implementation behind [`QueueStream`] and
/// [`PipeStream`].
struct Taker<'a, P> {
    p: &'a P,
    watch: Watch<'a>,
    waiter: Waiter,
    done: bool,
}

impl<'a, P: Port> Taker<'a, P> {
    fn new(p: &'a P) -> Self {
        Taker {
            p,
            watch: p.watch(Dir::Take),
            waiter: Waiter::default(),
            done: false,
        }
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<P::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        let p = self.p;
        let r = self
            .waiter
            .poll_op(cx, &self.watch, || take_once(p).map(Result::ok));
        if let Poll::Ready(None) = r {
            self.done = true;
        }
        r
    }
}

/// A [`Sink`] of messages to a port, buffering one: the one implementation behind
/// [`QueueSink`] and [`PipeSink`].
struct Giver<'a, P, M> {
    p: &'a P,
    watch: Watch<'a>,
    waiter: Waiter,
    pending: Option<M>,
}

impl<'a, P: GivePort<M>, M> Giver<'a, P, M> {
    fn new(p: &'a P) -> Self {
        Giver {
            p,
            watch: p.watch(Dir::Give),
            waiter: Waiter::default(),
            pending: None,
        }
    }

    /// `Ready(Ok)` once the buffered message is put (or there is none).
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), GiveErr<P, M>>> {
        if self.pending.is_none() {
            return Poll::Ready(Ok(()));
        }
        let (p, pending) = (self.p, &mut self.pending);
        self.waiter
            .poll_op(cx, &self.watch, || give_once(p, pending))
    }

    fn start_send(&mut self, item: M) {
        debug_assert!(self.pending.is_none(), "start_send without poll_ready");
        self.pending = Some(item);
    }
}

/// The [`Stream`] of [`Queue::stream`].
pub struct QueueStream<'a>(Taker<'a, Queue>);

/// The [`Stream`] of [`PipeEnd::stream`].
pub struct PipeStream<'a>(Taker<'a, PipeEnd>);

/// The [`Sink`] of [`Queue::sink`].
pub struct QueueSink<'a, M>(Giver<'a, Queue, M>);

/// The [`Sink`] of [`PipeEnd::sink`].
pub struct PipeSink<'a, M>(Giver<'a, PipeEnd, M>);

macro_rules! debug_opaque {
    ($($t:ident $(<$m:ident>)?),*) => {$(
        impl<$($m)?> fmt::Debug for $t<'_ $(, $m)?> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($t), " { .. }"))
            }
        }
    )*};
}
debug_opaque!(QueueStream, PipeStream, QueueSink<M>, PipeSink<M>);

impl<P> Unpin for Taker<'_, P> {}
impl<P, M> Unpin for Giver<'_, P, M> {}

macro_rules! byte_stream {
    ($($t:ident),*) => {$(
        impl Stream for $t<'_> {
            type Item = Vec<u8>;
            fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Vec<u8>>> {
                self.get_mut().0.poll_next(cx)
            }
        }
    )*};
}
byte_stream!(QueueStream, PipeStream);

macro_rules! byte_sink {
    ($($t:ident: $err:ident),*) => {$(
        impl<M: AsRef<[u8]>> Sink<M> for $t<'_, M> {
            type Error = $err<M>;

            fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
                self.get_mut().0.poll_ready(cx)
            }

            fn start_send(self: Pin<&mut Self>, item: M) -> Result<(), Self::Error> {
                self.get_mut().0.start_send(item);
                Ok(())
            }

            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
                self.poll_ready(cx)
            }

            fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
                self.poll_ready(cx)
            }
        }
    )*};
}
byte_sink!(QueueSink: PutError, PipeSink: SendError);

impl<T: Send, C: Codec<T>> TypedQueue<T, C> {
    /// Takes the oldest value asynchronously; cancel-safe. A message that does not decode is
    /// taken and reported.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let q = shmq::PodQueue::<u64>::anonymous(&shmq::Options { capacity: 2, message_size: 8, ..Default::default() })?;
    /// q.put_async(5).await?;
    /// assert_eq!(q.get_async().await?, 5);
    /// # Ok(())
    /// # }
    /// ```
    pub fn get_async(&self) -> impl Future<Output = Result<T, TypedError<GetError>>> + Send + '_ {
        take_async(self)
    }

    /// Puts `value` asynchronously; cancel-safe (a dropped future puts nothing).
    ///
    /// # Errors
    ///
    /// As [`put`](Self::put).
    ///
    /// # Examples
    ///
    /// See [`get_async`](Self::get_async).
    pub fn put_async<'a>(
        &'a self,
        value: T,
    ) -> impl Future<Output = Result<(), TypedPutError<PutError<T>, T>>> + Send + 'a
    where
        T: 'a,
    {
        give_async(self, value)
    }
}

impl<T: Send, C: Codec<T>> TypedPipeEnd<T, C> {
    /// Receives the oldest value asynchronously; cancel-safe.
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmq::{Options, TypedPipe, codec::Pod};
    /// let name = format!("shmq-doc-typedpipe-async-{}", std::process::id());
    /// let (a, b) = TypedPipe::<u32, Pod>::create(&name, &Options { capacity: 2, message_size: 4, ..Default::default() })?;
    /// a.send_async(7).await?;
    /// assert_eq!(b.recv_async().await?, 7);
    /// shmq::Pipe::unlink(&name)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn recv_async(&self) -> impl Future<Output = Result<T, TypedError<RecvError>>> + Send + '_ {
        take_async(self)
    }

    /// Sends `value` asynchronously; cancel-safe.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    ///
    /// # Examples
    ///
    /// See [`recv_async`](Self::recv_async).
    pub fn send_async<'a>(
        &'a self,
        value: T,
    ) -> impl Future<Output = Result<(), TypedPutError<SendError<T>, T>>> + Send + 'a
    where
        T: 'a,
    {
        give_async(self, value)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::{Options, Queue};

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    }

    fn opts(capacity: usize) -> Options {
        Options {
            capacity,
            message_size: 8,
            ..Default::default()
        }
    }

    /// A put_async cancelled while the queue is full takes no slot: after one get, the queue
    /// is empty, not refilled by the cancelled put.
    #[test]
    fn cancelled_put_takes_no_slot() {
        let q = Queue::anonymous(&opts(1)).unwrap();
        q.put(b"a").unwrap();
        rt().block_on(async {
            let r = tokio::time::timeout(Duration::from_millis(20), q.put_async(b"b")).await;
            assert!(r.is_err(), "the put must have been pending");
        });
        assert_eq!(q.get().unwrap(), b"a");
        assert!(q.is_empty());
    }

    /// More pending futures than `futex_waitv` takes words (128): every one completes once
    /// its queue gets a message (the notifier polls beyond the limit).
    #[test]
    fn many_pending_gets_on_many_queues_all_complete() {
        let queues: Vec<Queue> = (0..200)
            .map(|_| Queue::anonymous(&opts(2)).unwrap())
            .collect();
        let queues: &'static [Queue] = Box::leak(queues.into_boxed_slice());
        rt().block_on(async {
            let tasks: Vec<_> = queues
                .iter()
                .map(|q| tokio::spawn(async move { q.get_async().await }))
                .collect();
            tokio::time::sleep(Duration::from_millis(20)).await;
            for (i, q) in queues.iter().enumerate() {
                q.put((i as u32).to_le_bytes()).unwrap();
            }
            for (i, t) in tasks.into_iter().enumerate() {
                let got = tokio::time::timeout(Duration::from_secs(30), t)
                    .await
                    .expect("a pending get was never woken")
                    .unwrap()
                    .unwrap();
                assert_eq!(got, (i as u32).to_le_bytes());
            }
        });
    }

    /// A closed queue ends a pending get with `Closed`, and a stream with `None`.
    #[test]
    fn close_wakes_pending_get() {
        let q: &'static Queue = Box::leak(Box::new(Queue::anonymous(&opts(2)).unwrap()));
        rt().block_on(async {
            let t = tokio::spawn(async move { q.get_async().await });
            tokio::time::sleep(Duration::from_millis(10)).await;
            q.close().unwrap();
            assert_eq!(t.await.unwrap(), Err(crate::GetError::Closed));
        });
    }
}
