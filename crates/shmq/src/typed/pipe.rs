//! [`TypedPipe`] and [`TypedPipeEnd`]: typed views of a pipe's ends, each operation the byte
//! end's with the value encoded on the way in and decoded on the way out.

use std::marker::PhantomData;
use std::time::Duration;

use super::*;

/// Both ends of a new typed pipe, `(A, B)`.
pub type TypedEnds<T, C> = (TypedPipeEnd<T, C>, TypedPipeEnd<T, C>);

/// A typed pipe: [`create`](Self::create) makes both [`TypedPipeEnd`]s, recording the type.
///
/// # Examples
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use shmq::{Options, TypedPipe, codec::Pod};
/// let name = format!("shmq-doc-typedpipe-{}", std::process::id());
/// let (a, b) = TypedPipe::<u64, Pod>::create(&name, &Options { capacity: 2, message_size: 8, ..Default::default() })?;
/// a.send(1)?;
/// assert_eq!(b.recv()?, 1);
/// shmq::Pipe::unlink(&name)?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct TypedPipe<T, C: Codec<T>>(PhantomData<fn(T) -> (T, C)>);

impl<T, C: Codec<T>> TypedPipe<T, C> {
    /// Creates a named duplex pipe of `T` (tag [`TypeTag::of`]) and returns both ends.
    ///
    /// # Errors
    ///
    /// As [`Pipe::create`].
    ///
    /// # Examples
    ///
    /// See [`TypedPipe`].
    pub fn create(name: &str, opts: &Options) -> Result<TypedEnds<T, C>, OpenError> {
        Self::create_tagged(name, opts, TypeTag::of::<T, C>())
    }

    /// Creates a named duplex pipe recording `tag` as its type.
    ///
    /// # Errors
    ///
    /// As [`Pipe::create`].
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmq::{End, Options, TypeTag, TypedPipe, TypedPipeEnd, codec::Pod};
    /// let name = format!("shmq-doc-typedpipe-tag-{}", std::process::id());
    /// let tag = TypeTag::named("ticks");
    /// let (_a, _b) = TypedPipe::<u64, Pod>::create_tagged(&name, &Options { capacity: 2, message_size: 8, ..Default::default() }, tag)?;
    /// assert!(TypedPipeEnd::<u64, Pod>::open_tagged(&name, End::B, tag).is_ok());
    /// assert!(TypedPipeEnd::<u64, Pod>::open(&name, End::B).is_err());
    /// shmq::Pipe::unlink(&name)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn create_tagged(
        name: &str,
        opts: &Options,
        tag: TypeTag,
    ) -> Result<TypedEnds<T, C>, OpenError> {
        let (a, b) = with_type_tag(tag.words(), || Pipe::create(name, opts))?;
        Ok((TypedPipeEnd::wrap(a, name), TypedPipeEnd::wrap(b, name)))
    }
}

/// A typed view of a [`PipeEnd`]: `send`/`recv` of `T` with the codec `C`; see [`TypedQueue`]
/// for the errors and [`TypedPipe`] to create one.
pub struct TypedPipeEnd<T, C: Codec<T>> {
    p: PipeEnd,
    name: String,
    _types: PhantomData<fn(T) -> (T, C)>,
}

impl<T, C: Codec<T>> fmt::Debug for TypedPipeEnd<T, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TypedPipeEnd")
            .field("name", &self.name)
            .field("end", &self.p.end())
            .field("type", &std::any::type_name::<T>())
            .finish()
    }
}

impl<T, C: Codec<T>> TypedPipeEnd<T, C> {
    fn wrap(p: PipeEnd, name: &str) -> Self {
        TypedPipeEnd {
            p,
            name: name.to_string(),
            _types: PhantomData,
        }
    }

    /// Opens end `end` of a named pipe of `T`.
    ///
    /// # Errors
    ///
    /// As [`PipeEnd::open`]; [`OpenError::Incompatible`] for a pipe of another type.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmq::{End, OpenError, Options, PodPipeEnd, TypedPipe, codec::Pod};
    /// let name = format!("shmq-doc-typedpipe-open-{}", std::process::id());
    /// let (a, _b) = TypedPipe::<u32, Pod>::create(&name, &Options { capacity: 2, message_size: 8, ..Default::default() })?;
    /// let b2 = PodPipeEnd::<u32>::open(&name, End::B)?;
    /// a.send(3)?;
    /// assert_eq!(b2.recv()?, 3);
    /// assert!(matches!(PodPipeEnd::<u16>::open(&name, End::B), Err(OpenError::Incompatible(_))));
    /// shmq::Pipe::unlink(&name)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn open(name: &str, end: End) -> Result<Self, OpenError> {
        Self::open_tagged(name, end, TypeTag::of::<T, C>())
    }

    /// Opens end `end` of a named pipe whose recorded type is `tag` (or none).
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open).
    ///
    /// # Examples
    ///
    /// See [`TypedPipe::create_tagged`].
    pub fn open_tagged(name: &str, end: End, tag: TypeTag) -> Result<Self, OpenError> {
        let p = PipeEnd::open(name, end)?;
        check_tag(p.segment().type_tag(), tag, &format!("pipe {name}"))?;
        Ok(Self::wrap(p, name))
    }

    /// The byte pipe end underneath.
    ///
    /// # Examples
    ///
    /// See [`TypedPipe`]; `end.pipe_end().end()` tells which end it is.
    pub fn pipe_end(&self) -> &PipeEnd {
        &self.p
    }

    /// Closes this end (the peer reads end-of-file once drained).
    ///
    /// # Errors
    ///
    /// As [`PipeEnd::close`].
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmq::{Options, TypedPipe, TypedError, RecvError, codec::Pod};
    /// let name = format!("shmq-doc-typedpipe-close-{}", std::process::id());
    /// let (a, b) = TypedPipe::<u8, Pod>::create(&name, &Options { capacity: 2, message_size: 1, ..Default::default() })?;
    /// a.close()?;
    /// assert_eq!(b.recv(), Err(TypedError::Queue(RecvError::Disconnected)));
    /// shmq::Pipe::unlink(&name)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn close(self) -> Result<(), RecvError> {
        self.p.close()
    }

    fn send_bytes<E: Rewrap<T>>(
        &self,
        value: T,
        send: impl FnOnce(&PipeEnd, &[u8]) -> Result<(), E>,
    ) -> Result<(), TypedPutError<E2Of<E, T>, T>> {
        match encode_then::<T, C, E>(&value, self.p.message_size(), |b| send(&self.p, b)) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(rewrap(e, value)),
            Err(reason) => Err(TypedPutError::Encode { value, reason }),
        }
    }

    /// Sends `value`, waiting while the outgoing ring is full.
    ///
    /// # Errors
    ///
    /// As [`PipeEnd::send`], wrapped; or an encoding failure.
    ///
    /// # Examples
    ///
    /// See [`TypedPipe`].
    pub fn send(&self, value: T) -> Result<(), TypedPutError<SendError<T>, T>> {
        self.send_bytes(value, |p, b| p.send(b).map_err(|e| e.map(drop)))
    }

    /// Sends `value` if a slot is free now.
    ///
    /// # Errors
    ///
    /// As [`PipeEnd::try_send`], wrapped; or an encoding failure.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmq::{Options, TypedPipe, codec::Pod};
    /// let name = format!("shmq-doc-typedpipe-trysend-{}", std::process::id());
    /// let (a, _b) = TypedPipe::<u8, Pod>::create(&name, &Options { capacity: 1, message_size: 1, ..Default::default() })?;
    /// a.try_send(1)?;
    /// assert!(a.try_send(2).is_err());
    /// shmq::Pipe::unlink(&name)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn try_send(&self, value: T) -> Result<(), TypedPutError<TrySendError<T>, T>> {
        self.send_bytes(value, |p, b| p.try_send(b).map_err(|e| e.map(drop)))
    }

    /// Sends `value`, waiting for `timeout` at most.
    ///
    /// # Errors
    ///
    /// As [`PipeEnd::send_timeout`], wrapped; or an encoding failure.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmq::{Options, TypedPipe, codec::Pod};
    /// use std::time::Duration;
    /// let name = format!("shmq-doc-typedpipe-sendto-{}", std::process::id());
    /// let (a, _b) = TypedPipe::<u8, Pod>::create(&name, &Options { capacity: 1, message_size: 1, ..Default::default() })?;
    /// a.send_timeout(1, Duration::from_millis(1))?;
    /// assert!(a.send_timeout(2, Duration::from_millis(1)).is_err());
    /// shmq::Pipe::unlink(&name)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn send_timeout(
        &self,
        value: T,
        timeout: Duration,
    ) -> Result<(), TypedPutError<SendTimeoutError<T>, T>> {
        self.send_bytes(value, |p, b| {
            p.send_timeout(b, timeout).map_err(|e| e.map(drop))
        })
    }

    fn recv_wait(&self, wait: Wait) -> Result<Result<T, DecodeError>, Option<Fail>> {
        take_typed::<T, C, _>(
            &self.name,
            self.p.message_size(),
            |buf| {
                self.p
                    .recv_into_with_position(buf, wait)
                    .ok_or(None)?
                    .map_err(Some)
            },
            |f| matches!(f, Some(Fail::TooSmall { .. })),
        )
    }

    /// Receives the oldest value, waiting while none is there.
    ///
    /// # Errors
    ///
    /// As [`PipeEnd::recv`], wrapped; [`TypedError::Decode`] (the message is taken).
    ///
    /// # Examples
    ///
    /// See [`TypedPipe`].
    pub fn recv(&self) -> Result<T, TypedError<RecvError>> {
        match self.recv_wait(Wait::Forever) {
            Ok(r) => r.map_err(TypedError::Decode),
            Err(None) => Err(TypedError::Queue(RecvError::WrongDirection)),
            Err(Some(f)) => Err(TypedError::Queue(crate::pipe::recv_error(f))),
        }
    }

    /// Receives the oldest value if there is one now.
    ///
    /// # Errors
    ///
    /// As [`PipeEnd::try_recv`], wrapped; [`TypedError::Decode`].
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmq::{Options, TypedPipe, TypedError, TryRecvError, codec::Pod};
    /// let name = format!("shmq-doc-typedpipe-tryrecv-{}", std::process::id());
    /// let (a, _b) = TypedPipe::<u8, Pod>::create(&name, &Options { capacity: 1, message_size: 1, ..Default::default() })?;
    /// assert_eq!(a.try_recv(), Err(TypedError::Queue(TryRecvError::Empty)));
    /// shmq::Pipe::unlink(&name)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn try_recv(&self) -> Result<T, TypedError<TryRecvError>> {
        match self.recv_wait(Wait::Never) {
            Ok(r) => r.map_err(TypedError::Decode),
            Err(None) => Err(TypedError::Queue(TryRecvError::WrongDirection)),
            Err(Some(f)) => Err(TypedError::Queue(crate::pipe::try_recv_error(f))),
        }
    }

    /// Receives the oldest value, waiting for `timeout` at most.
    ///
    /// # Errors
    ///
    /// As [`PipeEnd::recv_timeout`], wrapped; [`TypedError::Decode`].
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmq::{Options, TypedPipe, TypedError, RecvTimeoutError, codec::Pod};
    /// use std::time::Duration;
    /// let name = format!("shmq-doc-typedpipe-recvto-{}", std::process::id());
    /// let (a, _b) = TypedPipe::<u8, Pod>::create(&name, &Options { capacity: 1, message_size: 1, ..Default::default() })?;
    /// assert_eq!(a.recv_timeout(Duration::from_millis(1)), Err(TypedError::Queue(RecvTimeoutError::Timeout)));
    /// shmq::Pipe::unlink(&name)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, TypedError<RecvTimeoutError>> {
        match self.recv_wait(Wait::after(timeout)) {
            Ok(r) => r.map_err(TypedError::Decode),
            Err(None) => Err(TypedError::Queue(RecvTimeoutError::WrongDirection)),
            Err(Some(f)) => Err(TypedError::Queue(crate::pipe::recv_timeout_error(f))),
        }
    }
}
