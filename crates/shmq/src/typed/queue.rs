//! [`TypedQueue`]: a typed view of a [`Queue`], each operation the byte queue's with the value
//! encoded on the way in and decoded on the way out.

use std::marker::PhantomData;
use std::time::{Duration, Instant};

use super::*;

/// A typed view of a [`Queue`]: values of `T`, encoded by the codec `C` ([`Pod`] or, with the
/// feature `serde`, `Postcard`). Aliases: [`PodQueue`], `SerdeQueue`.
///
/// Every operation of the byte queue has its typed twin, with the byte API's errors wrapped in
/// [`TypedError`] (gets) and [`TypedPutError`] (puts); [`queue`](Self::queue) gives the byte
/// queue for everything else (`close`, `join`, `len`, ...).
///
/// # Examples
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use shmq::{Options, PodQueue, OpenError};
///
/// let name = format!("shmq-doc-typed-{}", std::process::id());
/// let q = PodQueue::<u64>::create(&name, &Options { capacity: 4, message_size: 8, ..Default::default() })?;
/// let other = PodQueue::<u64>::open(&name)?; // usually in another process
/// other.put(42)?;
/// assert_eq!(q.get()?, 42);
/// // Opening it as another type is refused.
/// assert!(matches!(PodQueue::<u32>::open(&name), Err(OpenError::Incompatible(_))));
/// shmq::Queue::unlink(&name)?;
/// # Ok(())
/// # }
/// ```
pub struct TypedQueue<T, C: Codec<T>> {
    q: Queue,
    name: String,
    _types: PhantomData<fn(T) -> (T, C)>,
}

impl<T, C: Codec<T>> fmt::Debug for TypedQueue<T, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TypedQueue")
            .field("name", &self.name)
            .field("type", &std::any::type_name::<T>())
            .field("codec", &C::FORMAT)
            .finish()
    }
}

impl<T, C: Codec<T>> TypedQueue<T, C> {
    /// Creates a named queue of `T` (the tag [`TypeTag::of::<T, C>`](TypeTag::of)); fails if
    /// the name exists.
    ///
    /// # Errors
    ///
    /// As [`Queue::create`].
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let name = format!("shmq-doc-typed-create-{}", std::process::id());
    /// let q = shmq::PodQueue::<u16>::create(&name, &shmq::Options { capacity: 2, message_size: 2, ..Default::default() })?;
    /// q.put(7)?;
    /// assert_eq!(q.queue().len(), 1);
    /// shmq::Queue::unlink(&name)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn create(name: &str, opts: &Options) -> Result<Self, OpenError> {
        Self::create_tagged(
            name,
            opts,
            CreationMode::CreateExclusive,
            TypeTag::of::<T, C>(),
        )
    }

    /// Creates (or, with [`CreationMode::OpenOrCreate`], opens) a named queue of `T` recording
    /// `tag` as its type.
    ///
    /// # Errors
    ///
    /// As [`Queue::create_with`]; [`OpenError::Incompatible`] if an existing queue holds
    /// another type.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmq::{CreationMode, PodQueue, TypeTag};
    /// let name = format!("shmq-doc-typed-tagged-{}", std::process::id());
    /// let opts = shmq::Options { capacity: 2, message_size: 8, ..Default::default() };
    /// let tag = TypeTag::named("prices/v1");
    /// let a = PodQueue::<f64>::create_tagged(&name, &opts, CreationMode::OpenOrCreate, tag)?;
    /// let b = PodQueue::<f64>::open_tagged(&name, tag)?;
    /// a.put(1.5)?;
    /// assert_eq!(b.get()?, 1.5);
    /// assert!(PodQueue::<f64>::open_tagged(&name, TypeTag::named("prices/v2")).is_err());
    /// shmq::Queue::unlink(&name)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn create_tagged(
        name: &str,
        opts: &Options,
        mode: CreationMode,
        tag: TypeTag,
    ) -> Result<Self, OpenError> {
        let q = with_type_tag(tag.words(), || Queue::create_with(name, opts, mode))?;
        check_tag(q.segment().type_tag(), tag, &format!("queue {name}"))?;
        Ok(Self::wrap(q, name))
    }

    /// Opens a named queue of `T`.
    ///
    /// # Errors
    ///
    /// As [`Queue::open`]; [`OpenError::Incompatible`] if the queue was created for another
    /// type. A queue created by the byte API (no type recorded) opens as any type.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let name = format!("shmq-doc-typed-open-{}", std::process::id());
    /// let bytes = shmq::Queue::create(&name, &shmq::Options { capacity: 2, message_size: 4, ..Default::default() })?;
    /// bytes.put(9u32.to_ne_bytes())?;
    /// assert_eq!(shmq::PodQueue::<u32>::open(&name)?.get()?, 9);
    /// shmq::Queue::unlink(&name)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn open(name: &str) -> Result<Self, OpenError> {
        Self::open_tagged(name, TypeTag::of::<T, C>())
    }

    /// Opens a named queue whose recorded type is `tag` (or none).
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmq::{CreationMode, PodQueue, TypeTag};
    /// let name = format!("shmq-doc-typed-opentagged-{}", std::process::id());
    /// let opts = shmq::Options { capacity: 2, message_size: 8, ..Default::default() };
    /// let _q = PodQueue::<u64>::create_tagged(&name, &opts, CreationMode::CreateExclusive, TypeTag::named("ids"))?;
    /// assert!(PodQueue::<u64>::open_tagged(&name, TypeTag::named("ids")).is_ok());
    /// assert!(PodQueue::<u64>::open(&name).is_err()); // the derived tag differs
    /// shmq::Queue::unlink(&name)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn open_tagged(name: &str, tag: TypeTag) -> Result<Self, OpenError> {
        let q = Queue::open(name)?;
        check_tag(q.segment().type_tag(), tag, &format!("queue {name}"))?;
        Ok(Self::wrap(q, name))
    }

    /// A typed queue in an anonymous shared mapping (share it by forking).
    ///
    /// # Errors
    ///
    /// As [`Queue::anonymous`].
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let q = shmq::PodQueue::<i32>::anonymous(&shmq::Options { capacity: 2, message_size: 4, ..Default::default() })?;
    /// q.put(-1)?;
    /// assert_eq!(q.get()?, -1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn anonymous(opts: &Options) -> Result<Self, OpenError> {
        let q = with_type_tag(TypeTag::of::<T, C>().words(), || Queue::anonymous(opts))?;
        Ok(Self::wrap(q, "(anonymous)"))
    }

    fn wrap(q: Queue, name: &str) -> Self {
        TypedQueue {
            q,
            name: name.to_string(),
            _types: PhantomData,
        }
    }

    /// The byte queue underneath (`close`, `task_done`, `join`, `len`, ...).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let q = shmq::PodQueue::<u8>::anonymous(&shmq::Options { capacity: 2, message_size: 1, ..Default::default() })?;
    /// q.put(1)?;
    /// assert_eq!(q.queue().len(), 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn queue(&self) -> &Queue {
        &self.q
    }

    /// The name given at create or open.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let q = shmq::PodQueue::<u8>::anonymous(&shmq::Options { capacity: 2, message_size: 1, ..Default::default() })?;
    /// assert_eq!(q.name(), "(anonymous)");
    /// # Ok(())
    /// # }
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    fn put_bytes<E: Rewrap<T>>(
        &self,
        value: T,
        put: impl FnOnce(&Queue, &[u8]) -> Result<(), E>,
    ) -> Result<(), TypedPutError<E2Of<E, T>, T>> {
        match encode_then::<T, C, E>(&value, self.q.message_size(), |b| put(&self.q, b)) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(rewrap(e, value)),
            Err(reason) => Err(TypedPutError::Encode { value, reason }),
        }
    }

    /// Puts `value`, waiting while the queue is full.
    ///
    /// # Errors
    ///
    /// [`TypedPutError::Queue`] with the errors of [`Queue::put`], or
    /// [`TypedPutError::Encode`]; both hand `value` back.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let q = shmq::PodQueue::<u8>::anonymous(&shmq::Options { capacity: 2, message_size: 1, ..Default::default() })?;
    /// q.put(5)?;
    /// q.queue().close()?;
    /// assert!(matches!(q.put(6), Err(shmq::TypedPutError::Queue(shmq::PutError::Closed(6)))));
    /// # Ok(())
    /// # }
    /// ```
    pub fn put(&self, value: T) -> Result<(), TypedPutError<PutError<T>, T>> {
        self.put_bytes(value, |q, b| q.put(b).map_err(|e| e.map(drop)))
    }

    /// Puts `value` if a slot is free now.
    ///
    /// # Errors
    ///
    /// As [`Queue::try_put`] (`Full(value)`), wrapped; or an encoding failure.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let q = shmq::PodQueue::<u8>::anonymous(&shmq::Options { capacity: 1, message_size: 1, ..Default::default() })?;
    /// q.try_put(1)?;
    /// assert!(matches!(q.try_put(2), Err(shmq::TypedPutError::Queue(shmq::TryPutError::Full(2)))));
    /// # Ok(())
    /// # }
    /// ```
    pub fn try_put(&self, value: T) -> Result<(), TypedPutError<TryPutError<T>, T>> {
        self.put_bytes(value, |q, b| q.try_put(b).map_err(|e| e.map(drop)))
    }

    /// Puts `value`, waiting for `timeout` at most.
    ///
    /// # Errors
    ///
    /// As [`Queue::put_timeout`], wrapped; or an encoding failure.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// let q = shmq::PodQueue::<u8>::anonymous(&shmq::Options { capacity: 1, message_size: 1, ..Default::default() })?;
    /// q.put_timeout(1, Duration::from_millis(1))?;
    /// assert!(q.put_timeout(2, Duration::from_millis(1)).is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn put_timeout(
        &self,
        value: T,
        timeout: Duration,
    ) -> Result<(), TypedPutError<PutTimeoutError<T>, T>> {
        self.put_bytes(value, |q, b| {
            q.put_timeout(b, timeout).map_err(|e| e.map(drop))
        })
    }

    /// Puts `value`, waiting until `deadline` at most.
    ///
    /// # Errors
    ///
    /// As [`Queue::put_deadline`], wrapped; or an encoding failure.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let q = shmq::PodQueue::<u8>::anonymous(&shmq::Options { capacity: 1, message_size: 1, ..Default::default() })?;
    /// q.put_deadline(1, std::time::Instant::now())?;
    /// assert!(q.put_deadline(2, std::time::Instant::now()).is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn put_deadline(
        &self,
        value: T,
        deadline: Instant,
    ) -> Result<(), TypedPutError<PutTimeoutError<T>, T>> {
        self.put_bytes(value, |q, b| {
            q.put_deadline(b, deadline).map_err(|e| e.map(drop))
        })
    }

    fn get_wait(&self, wait: Wait) -> Result<Result<T, DecodeError>, Fail> {
        take_typed::<T, C, _>(
            &self.name,
            self.q.message_size(),
            |buf| self.q.get_into_with_position(buf, wait),
            |f| matches!(f, Fail::TooSmall { .. }),
        )
    }

    /// Takes the oldest value, waiting while the queue is empty.
    ///
    /// # Errors
    ///
    /// [`TypedError::Queue`] with the errors of [`Queue::get`]; [`TypedError::Decode`] for a
    /// message that does not decode (it is taken; the next get goes on).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmq::{PodQueue, TypedError};
    /// let name = format!("shmq-doc-typed-get-{}", std::process::id());
    /// let q = PodQueue::<u32>::create(&name, &shmq::Options { capacity: 4, message_size: 8, ..Default::default() })?;
    /// q.queue().put(b"bad")?; // 3 bytes: not a u32
    /// q.put(1)?;
    /// match q.get() {
    ///     Err(TypedError::Decode(e)) => assert_eq!((e.queue.as_str(), e.position), (name.as_str(), 0)),
    ///     other => panic!("{other:?}"),
    /// }
    /// assert_eq!(q.get()?, 1);
    /// shmq::Queue::unlink(&name)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn get(&self) -> Result<T, TypedError<GetError>> {
        match self.get_wait(Wait::Forever) {
            Ok(r) => r.map_err(TypedError::Decode),
            Err(f) => Err(TypedError::Queue(get_error(f))),
        }
    }

    /// Takes the oldest value if there is one now.
    ///
    /// # Errors
    ///
    /// As [`Queue::try_get`], wrapped; [`TypedError::Decode`].
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let q = shmq::PodQueue::<u8>::anonymous(&shmq::Options { capacity: 1, message_size: 1, ..Default::default() })?;
    /// assert_eq!(q.try_get(), Err(shmq::TypedError::Queue(shmq::TryGetError::Empty)));
    /// # Ok(())
    /// # }
    /// ```
    pub fn try_get(&self) -> Result<T, TypedError<TryGetError>> {
        match self.get_wait(Wait::Never) {
            Ok(r) => r.map_err(TypedError::Decode),
            Err(f) => Err(TypedError::Queue(try_get_error(f))),
        }
    }

    /// Takes the oldest value, waiting for `timeout` at most.
    ///
    /// # Errors
    ///
    /// As [`Queue::get_timeout`], wrapped; [`TypedError::Decode`].
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// let q = shmq::PodQueue::<u8>::anonymous(&shmq::Options { capacity: 1, message_size: 1, ..Default::default() })?;
    /// assert_eq!(q.get_timeout(Duration::from_millis(1)), Err(shmq::TypedError::Queue(shmq::GetTimeoutError::Timeout)));
    /// # Ok(())
    /// # }
    /// ```
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, TypedError<GetTimeoutError>> {
        self.get_deadline_wait(Wait::after(timeout))
    }

    /// Takes the oldest value, waiting until `deadline` at most.
    ///
    /// # Errors
    ///
    /// As [`Queue::get_deadline`], wrapped; [`TypedError::Decode`].
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let q = shmq::PodQueue::<u8>::anonymous(&shmq::Options { capacity: 1, message_size: 1, ..Default::default() })?;
    /// q.put(3)?;
    /// assert_eq!(q.get_deadline(std::time::Instant::now())?, 3);
    /// # Ok(())
    /// # }
    /// ```
    pub fn get_deadline(&self, deadline: Instant) -> Result<T, TypedError<GetTimeoutError>> {
        self.get_deadline_wait(Wait::Until(deadline))
    }

    fn get_deadline_wait(&self, wait: Wait) -> Result<T, TypedError<GetTimeoutError>> {
        match self.get_wait(wait) {
            Ok(r) => r.map_err(TypedError::Decode),
            Err(f) => Err(TypedError::Queue(get_timeout_error(f))),
        }
    }
}
