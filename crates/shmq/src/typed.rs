//! Typed messages over the byte API: [`TypedQueue`] and [`TypedPipeEnd`], generic over a
//! [`Codec`].
//!
//! - [`Pod`]: plain-old-data types (`T: bytemuck::Pod`) move as their bytes, with no
//!   serialisation and no intermediate buffer: a put copies `bytes_of(&value)` into the slot
//!   like a byte put, and a get copies the slot straight into the bytes of the value it returns
//!   (`bytes_of_mut`) with the byte API's lock-free get ([`Codec::value_bytes`],
//!   [`Codec::read_in_place`]). (Decoding in place under the zero-copy get's lock was measured
//!   first: 0.57× the byte API's rate; see `docs/benchmarks.md`.)
//! - `Postcard` (feature `serde`): any `Serialize + DeserializeOwned` type, encoded with
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

use crate::codec::Pod;
#[cfg(feature = "serde")]
use crate::codec::Postcard;
pub use crate::codec::{Codec, TypeTag};

mod pipe;
mod queue;

pub use pipe::{TypedEnds, TypedPipe, TypedPipeEnd};
pub use queue::TypedQueue;

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

/// Checks a segment's recorded tag against the one expected: zero (untyped) or equal.
fn check_tag(found: [u64; 2], expected: TypeTag, what: &str) -> Result<(), OpenError> {
    if found == [0, 0] || found == expected.words() {
        Ok(())
    } else {
        Err(OpenError::Incompatible(format!(
            "{what} holds messages of another type ({:?}, not {expected:?})",
            TypeTag::from_words(found)
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
    use crate::codec::short_type_name;
    use crate::test_util::UnlinkOnDrop;
    use std::time::Duration;

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
        assert_ne!(TypeTag::named(""), TypeTag::from_words([0, 0]));
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
