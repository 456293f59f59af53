//! Typed messages over the byte API: [`TypedQueue`] and [`TypedPipeEnd`], generic over a
//! [`Codec`].
//!
//! - [`Pod`]: plain-old-data types (`T: bytemuck::Pod`) move as their bytes, with no
//!   serialisation and no intermediate buffer: a put copies `bytes_of(&value)` into the slot
//!   like a byte put, and a get copies the slot straight into the bytes of the value it returns
//!   (`bytes_of_mut`) with the byte API's lock-free get ([`Codec::value_bytes`],
//!   [`Codec::read_in_place`]). (Decoding in place under the zero-copy get's lock was measured
//!   first: 0.57× the byte API's rate; see `docs/benchmarks.md`.)
//! - [`Postcard`] (feature `serde`): any `Serialize + DeserializeOwned` type, encoded with
//!   [postcard](https://docs.rs/postcard) into a per-thread buffer, and decoded from a
//!   per-thread copy of the slot. postcard rather than bincode: postcard's wire format is stable since 1.0 and
//!   documented, its varint encoding makes small structs smaller than bincode's fixed-width
//!   integers (a struct of a `u32` id, a `f64` and a short string is 14 bytes, 24 with
//!   bincode's legacy format), it is actively maintained, while bincode's development ceased
//!   in 2025 (its last release, 3.0.0, only carries a compile error; RUSTSEC-2025-0141).
//!
//! The type's identity is a 128-bit [`TypeTag`] recorded in the segment's header (bytes
//! 80–95, `docs/layout.md`) when a typed handle creates it: opening it as another type is
//! [`OpenError::Incompatible`]. A segment created by the byte API has a zero tag and may be
//! opened as any type.
//!
//! A message that does not decode (a wrong length for a `Pod` type, bytes postcard refuses) is
//! taken off the queue and reported as [`TypedError::Decode`], naming the queue and the
//! message's position; the next get goes on with the next message.

use std::cell::RefCell;
use std::fmt;
use std::marker::PhantomData;
use std::time::{Duration, Instant};

use crate::error::{
    GetError, GetTimeoutError, OpenError, PutError, PutTimeoutError, RecvError, RecvTimeoutError,
    SendError, SendTimeoutError, TryGetError, TryPutError, TryRecvError, TrySendError,
};
use crate::options::Options;
use crate::pipe::{End, Pipe, PipeEnd};
use crate::port::with_type_tag;
use crate::port::{Fail, Wait};
use crate::queue::{Queue, get_error, get_timeout_error, try_get_error};
use crate::segment::CreationMode;

/// How values of `T` become the bytes of a message and back.
///
/// Implemented by [`Pod`] and (feature `serde`) [`Postcard`]; implement it for another format.
///
/// # Examples
///
/// ```
/// use shmq::{Codec, TypedQueue};
///
/// /// UTF-8 strings as their bytes.
/// struct Utf8;
/// impl Codec<String> for Utf8 {
///     const FORMAT: &'static str = "utf8";
///     fn encode(value: &String, buf: &mut [u8]) -> Result<usize, String> {
///         let b = value.as_bytes();
///         buf.get_mut(..b.len()).ok_or("too long")?.copy_from_slice(b);
///         Ok(b.len())
///     }
///     fn decode(bytes: &[u8]) -> Result<String, String> {
///         String::from_utf8(bytes.to_vec()).map_err(|e| e.to_string())
///     }
/// }
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let q = TypedQueue::<String, Utf8>::anonymous(&shmq::Options { capacity: 2, message_size: 16, ..Default::default() })?;
/// q.put("héllo".to_string())?;
/// assert_eq!(q.get()?, "héllo");
/// # Ok(())
/// # }
/// ```
pub trait Codec<T>: 'static {
    /// The name of the wire format, part of the derived [`TypeTag`].
    const FORMAT: &'static str;

    /// Writes `value` into `buf` (a slot's size) and returns the length written.
    ///
    /// # Errors
    ///
    /// A reason when `value` cannot be encoded or does not fit.
    fn encode(value: &T, buf: &mut [u8]) -> Result<usize, String>;

    /// Reads a value from the bytes of one message.
    ///
    /// # Errors
    ///
    /// A reason when the bytes are not a valid encoding.
    fn decode(bytes: &[u8]) -> Result<T, String>;

    /// Extra identity mixed into the derived [`TypeTag`] (the size of a `Pod` type).
    fn shape() -> u64 {
        0
    }

    /// The value's own bytes, for a codec whose encoding of a value is its memory ([`Pod`]):
    /// a typed put then copies them into the slot as they are, with no encoding step and no
    /// buffer. `None` (the default): the put calls [`encode`](Self::encode) into a per-thread
    /// buffer of a slot's size.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmq::{Codec, Pod};
    /// assert_eq!(<Pod as Codec<u16>>::value_bytes(&0x0102), Some(&0x0102u16.to_ne_bytes()[..]));
    /// ```
    fn value_bytes(value: &T) -> Option<&[u8]> {
        let _ = value;
        None
    }

    /// Reads a message straight into a value, for a codec whose encoding of a value is its
    /// memory ([`Pod`]): calls `read` with the bytes of a fresh (zeroed) value, which `read`
    /// fills with one message, and returns the value and what `read` returned. A typed get
    /// takes a message of exactly that many bytes this way (no buffer, no decoding); a message
    /// of another length is a [`DecodeError`]. `None` (the default): the get copies the
    /// message into a per-thread buffer and calls [`decode`](Self::decode).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmq::{Codec, Pod};
    /// let (v, n) = <Pod as Codec<u32>>::read_in_place(|b| { b.copy_from_slice(&7u32.to_ne_bytes()); b.len() }).unwrap();
    /// assert_eq!((v, n), (7, 4));
    /// ```
    fn read_in_place<R>(read: impl FnOnce(&mut [u8]) -> R) -> Option<(T, R)> {
        let _ = read;
        None
    }
}

/// The codec of plain-old-data types: a value is its bytes (`bytemuck::bytes_of`), put from the
/// value and read straight into one (`bytemuck::bytes_of_mut`), with no serialisation and no
/// buffer either way. Both sides must agree on the
/// layout (`#[repr(C)]`, same target); the derived tag includes the type's size.
///
/// # Examples
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use shmq::{PodQueue, Options};
///
/// #[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
/// #[repr(C)]
/// struct Tick { id: u64, price: f64 }
///
/// let q = PodQueue::<Tick>::anonymous(&Options { capacity: 4, message_size: 16, ..Default::default() })?;
/// q.put(Tick { id: 7, price: 1.5 })?;
/// assert_eq!(q.get()?, Tick { id: 7, price: 1.5 });
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Pod;

impl<T: bytemuck::Pod> Codec<T> for Pod {
    const FORMAT: &'static str = "pod";

    fn encode(value: &T, buf: &mut [u8]) -> Result<usize, String> {
        let b = bytemuck::bytes_of(value);
        let room = buf.len();
        let dst = buf
            .get_mut(..b.len())
            .ok_or_else(|| format!("{} bytes do not fit in {room}", b.len()))?;
        dst.copy_from_slice(b);
        Ok(b.len())
    }

    fn decode(bytes: &[u8]) -> Result<T, String> {
        if bytes.len() != size_of::<T>() {
            return Err(format!(
                "a message of {} bytes is not a {} of {} bytes",
                bytes.len(),
                std::any::type_name::<T>(),
                size_of::<T>()
            ));
        }
        Ok(bytemuck::pod_read_unaligned(bytes))
    }

    fn shape() -> u64 {
        size_of::<T>() as u64
    }

    fn value_bytes(value: &T) -> Option<&[u8]> {
        Some(bytemuck::bytes_of(value))
    }

    fn read_in_place<R>(read: impl FnOnce(&mut [u8]) -> R) -> Option<(T, R)> {
        let mut value = T::zeroed();
        let r = read(bytemuck::bytes_of_mut(&mut value));
        Some((value, r))
    }
}

/// The serde codec: [postcard](https://docs.rs/postcard) (feature `serde`). See the module
/// docs for why postcard.
///
/// # Examples
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use shmq::{Options, SerdeQueue};
///
/// #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
/// struct Order { id: u32, item: String }
///
/// let q = SerdeQueue::<Order>::anonymous(&Options { capacity: 4, message_size: 64, ..Default::default() })?;
/// q.put(Order { id: 1, item: "tea".into() })?;
/// assert_eq!(q.get()?, Order { id: 1, item: "tea".into() });
/// # Ok(())
/// # }
/// ```
#[cfg(feature = "serde")]
#[derive(Debug, Clone, Copy, Default)]
pub struct Postcard;

#[cfg(feature = "serde")]
impl<T: serde::Serialize + serde::de::DeserializeOwned> Codec<T> for Postcard {
    const FORMAT: &'static str = "postcard-1";

    fn encode(value: &T, buf: &mut [u8]) -> Result<usize, String> {
        let len = buf.len();
        match postcard::to_slice(value, buf) {
            Ok(used) => Ok(used.len()),
            Err(postcard::Error::SerializeBufferFull) => {
                Err(format!("the encoded message does not fit in {len} bytes"))
            }
            Err(e) => Err(e.to_string()),
        }
    }

    fn decode(bytes: &[u8]) -> Result<T, String> {
        postcard::from_bytes(bytes).map_err(|e| e.to_string())
    }
}

/// A [`TypedQueue`] of plain-old-data values ([`Pod`] codec).
pub type PodQueue<T> = TypedQueue<T, Pod>;
/// A [`TypedPipeEnd`] of plain-old-data values ([`Pod`] codec).
pub type PodPipeEnd<T> = TypedPipeEnd<T, Pod>;
/// A [`TypedQueue`] of serde values ([`Postcard`] codec, feature `serde`).
#[cfg(feature = "serde")]
pub type SerdeQueue<T> = TypedQueue<T, Postcard>;
/// A [`TypedPipeEnd`] of serde values ([`Postcard`] codec, feature `serde`).
#[cfg(feature = "serde")]
pub type SerdePipeEnd<T> = TypedPipeEnd<T, Postcard>;

/// The identity of a message type, recorded in a typed segment's header: 128 bits, never
/// zero (zero marks an untyped segment).
///
/// [`TypeTag::of`] derives it from `std::any::type_name::<T>()` without module paths (so
/// `app::Order` seen from two binaries is `Order` in both), the codec's format and (for `Pod`)
/// the size. Two different types of the same short name get the same derived tag: to tell
/// them apart, or to version a type, choose a name with [`TypeTag::named`] (e.g.
/// `"orders.Order/v2"`) and use the `*_tagged` constructors.
///
/// # Examples
///
/// ```
/// use shmq::{Pod, TypeTag};
/// assert_eq!(TypeTag::named("orders.Order/v2"), TypeTag::named("orders.Order/v2"));
/// assert_ne!(TypeTag::of::<u64, Pod>(), TypeTag::of::<u32, Pod>());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TypeTag([u64; 2]);

impl fmt::Debug for TypeTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TypeTag({:016x}{:016x})", self.0[0], self.0[1])
    }
}

/// FNV-1a (64 bits) of `bytes`, from `basis`.
fn fnv1a(basis: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(basis, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

impl TypeTag {
    /// The tag of a name the user chooses.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_ne!(shmq::TypeTag::named("a"), shmq::TypeTag::named("b"));
    /// ```
    pub fn named(name: &str) -> TypeTag {
        // Two FNV-1a hashes from different bases, the second over the name reversed.
        let a = fnv1a(0xcbf2_9ce4_8422_2325, name.as_bytes());
        let rev: Vec<u8> = name.bytes().rev().collect();
        let b = fnv1a(0x6c62_272e_07bb_0142, &rev);
        TypeTag(if a == 0 && b == 0 { [1, 0] } else { [a, b] })
    }

    /// The tag derived from `T`'s name and the codec `C`.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmq::{Pod, TypeTag};
    /// assert_eq!(TypeTag::of::<[u8; 4], Pod>(), TypeTag::of::<[u8; 4], Pod>());
    /// mod a { #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)] #[repr(C)] pub struct P(pub u32); }
    /// mod b { #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)] #[repr(C)] pub struct P(pub u32); }
    /// assert_eq!(TypeTag::of::<a::P, Pod>(), TypeTag::of::<b::P, Pod>()); // module paths do not count
    /// ```
    pub fn of<T, C: Codec<T>>() -> TypeTag {
        TypeTag::named(&format!(
            "{}|{}|{}",
            short_type_name(std::any::type_name::<T>()),
            C::FORMAT,
            C::shape()
        ))
    }

    fn words(self) -> [u64; 2] {
        self.0
    }
}

/// `type_name` without module paths (`alloc::vec::Vec<app::Order>` is `Vec<Order>`), so that
/// one struct compiled into two binaries (a library's type seen from two crates, or a module
/// shared with `#[path]`) gets one tag.
fn short_type_name(full: &str) -> String {
    let mut out = String::with_capacity(full.len());
    let mut token = String::new();
    let flush = |token: &mut String, out: &mut String| {
        out.push_str(token.rsplit("::").next().unwrap_or(""));
        token.clear();
    };
    for c in full.chars() {
        if c.is_alphanumeric() || c == '_' || c == ':' {
            token.push(c);
        } else {
            flush(&mut token, &mut out);
            out.push(c);
        }
    }
    flush(&mut token, &mut out);
    out
}

/// Checks a segment's recorded tag against the one expected: zero (untyped) or equal.
fn check_tag(found: [u64; 2], expected: TypeTag, what: &str) -> Result<(), OpenError> {
    if found == [0, 0] || found == expected.words() {
        Ok(())
    } else {
        Err(OpenError::Incompatible(format!(
            "{what} holds messages of another type ({:?}, not {expected:?})",
            TypeTag(found)
        )))
    }
}

/// A message that could not be decoded; it was taken off the queue (or pipe), which stays
/// usable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// The queue's or pipe's name (`"(anonymous)"` for an anonymous segment).
    pub queue: String,
    /// The message's position: how many messages were taken from the ring before it.
    pub position: u64,
    /// What the codec said.
    pub reason: String,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "message {} of {} does not decode: {}",
            self.position, self.queue, self.reason
        )
    }
}

impl std::error::Error for DecodeError {}

/// The error of a typed get or receive: the byte API's error `E`, or a message that did not
/// decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypedError<E> {
    /// The byte operation's error (`Empty`, `Timeout`, `Closed`, `Disconnected`, ...).
    Queue(E),
    /// A message was taken but did not decode.
    Decode(DecodeError),
}

impl<E> TypedError<E> {
    /// The byte operation's error, if this is one.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let q = shmq::PodQueue::<u32>::anonymous(&shmq::Options { capacity: 1, message_size: 4, ..Default::default() })?;
    /// assert_eq!(q.try_get().unwrap_err().queue_error(), Some(&shmq::TryGetError::Empty));
    /// # Ok(())
    /// # }
    /// ```
    pub fn queue_error(&self) -> Option<&E> {
        match self {
            TypedError::Queue(e) => Some(e),
            TypedError::Decode(_) => None,
        }
    }
}

impl<E> From<E> for TypedError<E> {
    fn from(e: E) -> Self {
        TypedError::Queue(e)
    }
}

impl<E: fmt::Display> fmt::Display for TypedError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TypedError::Queue(e) => e.fmt(f),
            TypedError::Decode(e) => e.fmt(f),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for TypedError<E> {}

/// The error of a typed put or send: the byte API's error `E` (which hands the value back),
/// or a value that could not be encoded (handed back too).
pub enum TypedPutError<E, T> {
    /// The byte operation's error, carrying the value.
    Queue(E),
    /// The value could not be encoded into a slot.
    Encode {
        /// The value.
        value: T,
        /// What the codec said (e.g. it does not fit in a slot).
        reason: String,
    },
}

impl<E, T> fmt::Debug for TypedPutError<E, T>
where
    E: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TypedPutError::Queue(e) => f.debug_tuple("Queue").field(e).finish(),
            TypedPutError::Encode { reason, .. } => f
                .debug_struct("Encode")
                .field("reason", reason)
                .finish_non_exhaustive(),
        }
    }
}

impl<E: fmt::Display, T> fmt::Display for TypedPutError<E, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TypedPutError::Queue(e) => e.fmt(f),
            TypedPutError::Encode { reason, .. } => write!(f, "cannot encode the value: {reason}"),
        }
    }
}

impl<E: fmt::Debug + fmt::Display, T> std::error::Error for TypedPutError<E, T> {}

thread_local! {
    /// The encoding buffer of typed puts in this thread.
    static ENCODE_BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Runs `put` on the bytes of `value`: its own bytes if the codec gives them
/// ([`Codec::value_bytes`]), else its encoding by `C` in this thread's buffer (a slot's size);
/// an encoding failure hands the value back.
fn encode_then<T, C: Codec<T>, E>(
    value: &T,
    message_size: usize,
    put: impl FnOnce(&[u8]) -> Result<(), E>,
) -> Result<Result<(), E>, String> {
    if let Some(b) = C::value_bytes(value) {
        // The value's own bytes (Pod): put as they are, no buffer.
        if b.len() > message_size {
            return Err(format!("{} bytes do not fit in {message_size}", b.len()));
        }
        return Ok(put(b));
    }
    ENCODE_BUF.with(|cell| {
        // A codec whose encoder puts on a typed queue itself re-enters: use a fresh buffer.
        let mut own;
        let mut borrowed;
        let buf: &mut Vec<u8> = match cell.try_borrow_mut() {
            Ok(b) => {
                borrowed = b;
                &mut borrowed
            }
            Err(_) => {
                own = Vec::new();
                &mut own
            }
        };
        if buf.len() < message_size {
            buf.resize(message_size, 0);
        }
        let n = C::encode(value, &mut buf[..message_size])?;
        if n > message_size {
            return Err(format!(
                "the codec wrote {n} bytes into a slot of {message_size}"
            ));
        }
        Ok(put(&buf[..n]))
    })
}

thread_local! {
    /// The receive buffer of typed gets in this thread: the message is copied out of the slot
    /// (no lock, as a byte get) and decoded from here.
    static DECODE_BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with this thread's receive buffer of at least `size` bytes (a fresh one if a
/// decoder re-enters).
fn with_decode_buf<R>(size: usize, f: impl FnOnce(&mut [u8]) -> R) -> R {
    DECODE_BUF.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            if buf.len() < size {
                buf.resize(size, 0);
            }
            f(&mut buf[..size])
        }
        Err(_) => f(&mut vec![0; size]),
    })
}

/// Takes one message with `take` (which copies it into the buffer it is given and returns its
/// position and length, or `E`) and makes a `T` of it: straight into the value's bytes when the
/// codec reads in place ([`Codec::read_in_place`]), else through this thread's buffer of
/// `message_size` bytes and [`Codec::decode`]. A message longer than the value (`too_small`
/// says so; it stays queued) is taken through the buffer and refused there.
fn take_typed<T, C: Codec<T>, E>(
    queue: &str,
    message_size: usize,
    mut take: impl FnMut(&mut [u8]) -> Result<(u64, usize), E>,
    too_small: impl Fn(&E) -> bool,
) -> Result<Result<T, DecodeError>, E> {
    let in_place = C::read_in_place(|b| {
        let want = b.len();
        match take(b) {
            Ok((_, n)) if n == want => Some(Ok(Ok(()))),
            Ok((position, n)) => Some(Ok(Err(DecodeError {
                queue: queue.to_string(),
                position,
                reason: format!(
                    "a message of {n} bytes is not a {} of {want} bytes",
                    std::any::type_name::<T>()
                ),
            }))),
            Err(e) if too_small(&e) => None,
            Err(e) => Some(Err(e)),
        }
    });
    match in_place {
        Some((value, Some(r))) => r.map(|d| d.map(|()| value)),
        Some((_, None)) | None => with_decode_buf(message_size, |buf| {
            let (pos, n) = take(buf)?;
            Ok(decode_taken::<T, C>(queue, pos, buf, n))
        }),
    }
}

/// Decodes the message of `n` bytes taken at `position` into `buf`; a length over `buf`
/// (a large message of the byte API, never copied here) is refused.
fn decode_taken<T, C: Codec<T>>(
    queue: &str,
    position: u64,
    buf: &[u8],
    n: usize,
) -> Result<T, DecodeError> {
    match buf.get(..n) {
        Some(bytes) => decode_at::<T, C>(queue, position, bytes),
        None => Err(DecodeError {
            queue: queue.to_string(),
            position,
            reason: format!(
                "a large message of {n} bytes, over the slot size {}",
                buf.len()
            ),
        }),
    }
}

/// Decodes one message taken at `position`, naming `queue` on failure.
fn decode_at<T, C: Codec<T>>(queue: &str, position: u64, bytes: &[u8]) -> Result<T, DecodeError> {
    C::decode(bytes).map_err(|reason| DecodeError {
        queue: queue.to_string(),
        position,
        reason,
    })
}

/// A typed view of a [`Queue`]: values of `T`, encoded by the codec `C` ([`Pod`] or, with the
/// feature `serde`, [`Postcard`]). Aliases: [`PodQueue`], [`SerdeQueue`].
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

/// Both ends of a new typed pipe, `(A, B)`.
pub type TypedEnds<T, C> = (TypedPipeEnd<T, C>, TypedPipeEnd<T, C>);

/// A typed pipe: [`create`](Self::create) makes both [`TypedPipeEnd`]s, recording the type.
///
/// # Examples
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use shmq::{Options, Pod, TypedPipe};
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
    /// use shmq::{End, Options, Pod, TypeTag, TypedPipe, TypedPipeEnd};
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
    /// use shmq::{End, OpenError, Options, PodPipeEnd, TypedPipe, Pod};
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
    /// use shmq::{Options, Pod, TypedPipe, TypedError, RecvError};
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
    /// use shmq::{Options, Pod, TypedPipe};
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
    /// use shmq::{Options, Pod, TypedPipe};
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
    /// use shmq::{Options, Pod, TypedPipe, TypedError, TryRecvError};
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
    /// use shmq::{Options, Pod, TypedPipe, TypedError, RecvTimeoutError};
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

/// A byte put error that can carry the typed value instead of the bytes.
trait Rewrap<T> {
    type With;
    fn with(self, value: T) -> Self::With;
}

type E2Of<E, T> = <E as Rewrap<T>>::With;

macro_rules! rewrap_for {
    ($($name:ident),*) => {$(
        impl<T> Rewrap<T> for $name<()> {
            type With = $name<T>;
            fn with(self, value: T) -> $name<T> {
                self.map(|_| value)
            }
        }
    )*};
}

rewrap_for!(
    PutError,
    TryPutError,
    PutTimeoutError,
    SendError,
    TrySendError,
    SendTimeoutError
);

fn rewrap<E: Rewrap<T>, T>(e: E, value: T) -> TypedPutError<E::With, T> {
    TypedPutError::Queue(e.with(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::UnlinkOnDrop;

    #[test]
    fn short_type_names_drop_module_paths() {
        assert_eq!(
            short_type_name("alloc::vec::Vec<app::model::Order>"),
            "Vec<Order>"
        );
        assert_eq!(short_type_name("(u32, [f64; 4])"), "(u32, [f64; 4])");
        assert_eq!(
            short_type_name("std::collections::HashMap<a::K, b::c::V>"),
            "HashMap<K, V>"
        );
    }

    #[test]
    fn tags_differ_by_type_codec_and_size() {
        assert_ne!(TypeTag::of::<u64, Pod>(), TypeTag::of::<i64, Pod>());
        assert_ne!(TypeTag::of::<[u8; 4], Pod>(), TypeTag::of::<[u8; 8], Pod>());
        assert_ne!(TypeTag::named(""), TypeTag([0, 0]));
        assert!(check_tag([0, 0], TypeTag::named("x"), "q").is_ok());
        assert!(check_tag(TypeTag::named("x").words(), TypeTag::named("x"), "q").is_ok());
        assert!(matches!(
            check_tag(TypeTag::named("y").words(), TypeTag::named("x"), "q"),
            Err(OpenError::Incompatible(_))
        ));
    }

    #[test]
    fn a_large_message_is_a_decode_error_and_is_taken() {
        let name = UnlinkOnDrop(format!("shmq-test-typed-large-{}", std::process::id()));
        let q = PodQueue::<u64>::create(
            &name.0,
            &Options {
                capacity: 4,
                message_size: 32,
                max_message_size: 1024,
                ..Default::default()
            },
        )
        .unwrap();
        q.queue().put(vec![1u8; 100]).unwrap(); // over the 32-byte slots: a large message
        q.put(5).unwrap();
        match q.get() {
            Err(TypedError::Decode(e)) => {
                assert_eq!(e.position, 0);
                assert!(e.reason.contains("100 bytes"), "{}", e.reason);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(q.get().unwrap(), 5);
    }

    /// A message longer than the `Pod` type but within the slot does not fit the value the
    /// get reads into: it is taken (through the buffer) and refused, shorter ones too, and
    /// the values around them arrive.
    #[test]
    fn pod_messages_of_another_length_are_decode_errors_and_are_taken() {
        let q = PodQueue::<u32>::anonymous(&Options {
            capacity: 8,
            message_size: 16,
            ..Default::default()
        })
        .unwrap();
        q.put(1).unwrap();
        q.queue().put([9u8; 12]).unwrap();
        q.put(2).unwrap();
        q.queue().put([9u8; 2]).unwrap();
        q.put(3).unwrap();
        assert_eq!(q.get().unwrap(), 1);
        match q.get() {
            Err(TypedError::Decode(e)) => {
                assert_eq!((e.queue.as_str(), e.position), ("(anonymous)", 1));
                assert!(e.reason.contains("12 bytes"), "{}", e.reason);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(q.try_get().unwrap(), 2);
        match q.get_timeout(Duration::from_secs(1)) {
            Err(TypedError::Decode(e)) => {
                assert_eq!(e.position, 3);
                assert!(e.reason.contains("2 bytes"), "{}", e.reason);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(q.get().unwrap(), 3);
        assert!(q.queue().is_empty());
    }

    /// The `Pod` codec puts a value's own bytes and reads them straight into a value; a
    /// custom codec without those hooks goes through `encode`/`decode`.
    #[test]
    fn pod_reads_and_writes_in_place_and_other_codecs_do_not() {
        assert_eq!(
            <Pod as Codec<[u8; 3]>>::value_bytes(&[1, 2, 3]),
            Some(&[1u8, 2, 3][..])
        );
        let (v, len) = <Pod as Codec<[u16; 2]>>::read_in_place(|b| {
            b.copy_from_slice(bytemuck::bytes_of(&[4u16, 5]));
            b.len()
        })
        .unwrap();
        assert_eq!((v, len), ([4, 5], 4));
        struct Text;
        impl Codec<String> for Text {
            const FORMAT: &'static str = "text";
            fn encode(value: &String, buf: &mut [u8]) -> Result<usize, String> {
                buf[..value.len()].copy_from_slice(value.as_bytes());
                Ok(value.len())
            }
            fn decode(bytes: &[u8]) -> Result<String, String> {
                String::from_utf8(bytes.to_vec()).map_err(|e| e.to_string())
            }
        }
        assert!(<Text as Codec<String>>::value_bytes(&"x".into()).is_none());
        assert!(<Text as Codec<String>>::read_in_place(|b| b.len()).is_none());
        let q = TypedQueue::<String, Text>::anonymous(&Options {
            capacity: 2,
            message_size: 8,
            ..Default::default()
        })
        .unwrap();
        q.put("abc".into()).unwrap();
        assert_eq!(q.get().unwrap(), "abc");
    }

    #[test]
    fn encode_failure_hands_the_value_back_and_puts_nothing() {
        let q = PodQueue::<[u8; 16]>::anonymous(&Options {
            capacity: 2,
            message_size: 8,
            ..Default::default()
        })
        .unwrap();
        match q.put([7; 16]) {
            Err(TypedPutError::Encode { value, reason }) => {
                assert_eq!(value, [7; 16]);
                assert!(reason.contains("do not fit"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        assert!(q.queue().is_empty());
    }
}
