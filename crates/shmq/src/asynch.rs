//! The async API (feature `tokio`): `put_async`/`get_async` on [`Queue`] and
//! [`TypedQueue`], `send_async`/`recv_async` on [`PipeEnd`] and [`TypedPipeEnd`], and
//! `Stream`/`Sink` adapters ([`QueueStream`], [`QueueSink`], [`PipeStream`], [`PipeSink`]).
//!
//! The futures are runtime-agnostic (they only use `std::task`); they are tested on tokio's
//! multi-thread runtime. A future first tries the non-blocking operation; if it would block,
//! it announces itself on the ring's event word, tries once more, and registers its waker with
//! the per-process notifier thread (see `notifier.rs`), which sleeps in `futex_waitv` on every
//! registered word: no thread per future.
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
use crate::queue::Queue;
use crate::select::{Dir, Watch};
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
        self.id = Some(crate::notifier::register(
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
            crate::notifier::deregister(id);
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

fn put_error_of<M>(e: TryPutError<M>) -> PutError<M> {
    match e {
        TryPutError::Full(m) | TryPutError::Closed(m) => PutError::Closed(m),
        TryPutError::TooLarge { msg, len, max } => PutError::TooLarge { msg, len, max },
        TryPutError::Corrupt { msg, reason } => PutError::Corrupt { msg, reason },
    }
}

fn send_error_of<M>(e: TrySendError<M>) -> SendError<M> {
    match e {
        TrySendError::Full(m) | TrySendError::Disconnected(m) => SendError::Disconnected(m),
        TrySendError::WrongDirection(m) => SendError::WrongDirection(m),
        TrySendError::TooLarge { msg, len, max } => SendError::TooLarge { msg, len, max },
        TrySendError::Corrupt { msg, reason } => SendError::Corrupt { msg, reason },
    }
}

fn get_error_of(e: TryGetError) -> GetError {
    match e {
        TryGetError::Empty | TryGetError::Closed => GetError::Closed,
        TryGetError::BufferTooSmall { needed, available } => {
            GetError::BufferTooSmall { needed, available }
        }
        TryGetError::Corrupt(s) => GetError::Corrupt(s),
    }
}

fn recv_error_of(e: TryRecvError) -> RecvError {
    match e {
        TryRecvError::Empty | TryRecvError::Disconnected => RecvError::Disconnected,
        TryRecvError::WrongDirection => RecvError::WrongDirection,
        TryRecvError::BufferTooSmall { needed, available } => {
            RecvError::BufferTooSmall { needed, available }
        }
        TryRecvError::Corrupt(s) => RecvError::Corrupt(s),
    }
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
        op(Watch::queue(self, Dir::Take), move || {
            match self.try_get() {
                Ok(m) => Some(Ok(m)),
                Err(TryGetError::Empty) => None,
                Err(e) => Some(Err(get_error_of(e))),
            }
        })
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
        let mut msg = Some(msg);
        op(Watch::queue(self, Dir::Give), move || {
            let m = msg.take()?;
            match self.try_put(m) {
                Ok(()) => Some(Ok(())),
                Err(TryPutError::Full(m)) => {
                    msg = Some(m);
                    None
                }
                Err(e) => Some(Err(put_error_of(e))),
            }
        })
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
        QueueStream {
            q: self,
            watch: Watch::queue(self, Dir::Take),
            waiter: Waiter::default(),
            done: false,
        }
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
        QueueSink {
            q: self,
            watch: Watch::queue(self, Dir::Give),
            waiter: Waiter::default(),
            pending: None,
        }
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
        op(Watch::pipe(self, Dir::Take), move || {
            match self.try_recv() {
                Ok(m) => Some(Ok(m)),
                Err(TryRecvError::Empty) => None,
                Err(e) => Some(Err(recv_error_of(e))),
            }
        })
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
        let mut msg = Some(msg);
        op(Watch::pipe(self, Dir::Give), move || {
            let m = msg.take()?;
            match self.try_send(m) {
                Ok(()) => Some(Ok(())),
                Err(TrySendError::Full(m)) => {
                    msg = Some(m);
                    None
                }
                Err(e) => Some(Err(send_error_of(e))),
            }
        })
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
        PipeStream {
            p: self,
            watch: Watch::pipe(self, Dir::Take),
            waiter: Waiter::default(),
            done: false,
        }
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
        PipeSink {
            p: self,
            watch: Watch::pipe(self, Dir::Give),
            waiter: Waiter::default(),
            pending: None,
        }
    }
}

/// The [`Stream`] of [`Queue::stream`].
pub struct QueueStream<'a> {
    q: &'a Queue,
    watch: Watch<'a>,
    waiter: Waiter,
    done: bool,
}

/// The [`Stream`] of [`PipeEnd::stream`].
pub struct PipeStream<'a> {
    p: &'a PipeEnd,
    watch: Watch<'a>,
    waiter: Waiter,
    done: bool,
}

/// The [`Sink`] of [`Queue::sink`].
pub struct QueueSink<'a, M> {
    q: &'a Queue,
    watch: Watch<'a>,
    waiter: Waiter,
    pending: Option<M>,
}

/// The [`Sink`] of [`PipeEnd::sink`].
pub struct PipeSink<'a, M> {
    p: &'a PipeEnd,
    watch: Watch<'a>,
    waiter: Waiter,
    pending: Option<M>,
}

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

impl Unpin for QueueStream<'_> {}
impl Unpin for PipeStream<'_> {}
impl<M> Unpin for QueueSink<'_, M> {}
impl<M> Unpin for PipeSink<'_, M> {}

impl Stream for QueueStream<'_> {
    type Item = Vec<u8>;
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Vec<u8>>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        let q = this.q;
        let r = this.waiter.poll_op(cx, &this.watch, || match q.try_get() {
            Ok(m) => Some(Some(m)),
            Err(TryGetError::Empty) => None,
            Err(_) => Some(None),
        });
        if let Poll::Ready(None) = r {
            this.done = true;
        }
        r
    }
}

impl Stream for PipeStream<'_> {
    type Item = Vec<u8>;
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Vec<u8>>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        let p = this.p;
        let r = this.waiter.poll_op(cx, &this.watch, || match p.try_recv() {
            Ok(m) => Some(Some(m)),
            Err(TryRecvError::Empty) => None,
            Err(_) => Some(None),
        });
        if let Poll::Ready(None) = r {
            this.done = true;
        }
        r
    }
}

/// Drives a sink's buffered message: `Ready(Ok)` once it is put (or there is none).
fn flush_pending<M, E>(
    pending: &mut Option<M>,
    waiter: &mut Waiter,
    watch: &Watch<'_>,
    cx: &mut Context<'_>,
    mut try_put: impl FnMut(M) -> Result<(), Result<M, E>>,
) -> Poll<Result<(), E>> {
    if pending.is_none() {
        return Poll::Ready(Ok(()));
    }
    waiter.poll_op(cx, watch, || {
        let m = pending.take()?;
        match try_put(m) {
            Ok(()) => Some(Ok(())),
            Err(Ok(m)) => {
                *pending = Some(m);
                None
            }
            Err(Err(e)) => Some(Err(e)),
        }
    })
}

impl<M: AsRef<[u8]>> Sink<M> for QueueSink<'_, M> {
    type Error = PutError<M>;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let this = self.get_mut();
        let q = this.q;
        flush_pending(
            &mut this.pending,
            &mut this.waiter,
            &this.watch,
            cx,
            |m| match q.try_put(m) {
                Ok(()) => Ok(()),
                Err(TryPutError::Full(m)) => Err(Ok(m)),
                Err(e) => Err(Err(put_error_of(e))),
            },
        )
    }

    fn start_send(self: Pin<&mut Self>, item: M) -> Result<(), Self::Error> {
        let this = self.get_mut();
        debug_assert!(this.pending.is_none(), "start_send without poll_ready");
        this.pending = Some(item);
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.poll_ready(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.poll_ready(cx)
    }
}

impl<M: AsRef<[u8]>> Sink<M> for PipeSink<'_, M> {
    type Error = SendError<M>;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let this = self.get_mut();
        let p = this.p;
        flush_pending(
            &mut this.pending,
            &mut this.waiter,
            &this.watch,
            cx,
            |m| match p.try_send(m) {
                Ok(()) => Ok(()),
                Err(TrySendError::Full(m)) => Err(Ok(m)),
                Err(e) => Err(Err(send_error_of(e))),
            },
        )
    }

    fn start_send(self: Pin<&mut Self>, item: M) -> Result<(), Self::Error> {
        let this = self.get_mut();
        debug_assert!(this.pending.is_none(), "start_send without poll_ready");
        this.pending = Some(item);
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.poll_ready(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.poll_ready(cx)
    }
}

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
        op(Watch::queue(self.queue(), Dir::Take), move || {
            match self.try_get() {
                Ok(v) => Some(Ok(v)),
                Err(TypedError::Queue(TryGetError::Empty)) => None,
                Err(TypedError::Queue(e)) => Some(Err(TypedError::Queue(get_error_of(e)))),
                Err(TypedError::Decode(e)) => Some(Err(TypedError::Decode(e))),
            }
        })
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
        let mut value = Some(value);
        op(Watch::queue(self.queue(), Dir::Give), move || {
            let v = value.take()?;
            match self.try_put(v) {
                Ok(()) => Some(Ok(())),
                Err(TypedPutError::Queue(TryPutError::Full(v))) => {
                    value = Some(v);
                    None
                }
                Err(TypedPutError::Queue(e)) => Some(Err(TypedPutError::Queue(put_error_of(e)))),
                Err(TypedPutError::Encode { value, reason }) => {
                    Some(Err(TypedPutError::Encode { value, reason }))
                }
            }
        })
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
    /// use shmq::{Options, Pod, TypedPipe};
    /// let name = format!("shmq-doc-typedpipe-async-{}", std::process::id());
    /// let (a, b) = TypedPipe::<u32, Pod>::create(&name, &Options { capacity: 2, message_size: 4, ..Default::default() })?;
    /// a.send_async(7).await?;
    /// assert_eq!(b.recv_async().await?, 7);
    /// shmq::Pipe::unlink(&name)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn recv_async(&self) -> impl Future<Output = Result<T, TypedError<RecvError>>> + Send + '_ {
        op(
            Watch::pipe(self.pipe_end(), Dir::Take),
            move || match self.try_recv() {
                Ok(v) => Some(Ok(v)),
                Err(TypedError::Queue(TryRecvError::Empty)) => None,
                Err(TypedError::Queue(e)) => Some(Err(TypedError::Queue(recv_error_of(e)))),
                Err(TypedError::Decode(e)) => Some(Err(TypedError::Decode(e))),
            },
        )
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
        let mut value = Some(value);
        op(Watch::pipe(self.pipe_end(), Dir::Give), move || {
            let v = value.take()?;
            match self.try_send(v) {
                Ok(()) => Some(Ok(())),
                Err(TypedPutError::Queue(TrySendError::Full(v))) => {
                    value = Some(v);
                    None
                }
                Err(TypedPutError::Queue(e)) => Some(Err(TypedPutError::Queue(send_error_of(e)))),
                Err(TypedPutError::Encode { value, reason }) => {
                    Some(Err(TypedPutError::Encode { value, reason }))
                }
            }
        })
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
