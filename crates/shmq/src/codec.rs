//! How typed values become the bytes of a message and back: the [`Codec`] trait, its two
//! implementations — [`Pod`] (plain-old-data types as their bytes, no serialisation) and, with
//! the feature `serde`, `Postcard` — and the [`TypeTag`] that a typed segment records so
//! that opening it as another type is refused. The typed faces that use them are
//! [`TypedQueue`](crate::TypedQueue) and [`TypedPipeEnd`](crate::TypedPipeEnd).
//!
//! The codecs live in this module rather than at the crate root so that `shmq::codec::Pod`
//! (the codec) is never confused with `bytemuck::Pod` (the trait its types implement).

use std::fmt;

/// How values of `T` become the bytes of a message and back.
///
/// Implemented by [`Pod`] and (feature `serde`) `Postcard`; implement it for another format.
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
    /// use shmq::{Codec, codec::Pod};
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
    /// of another length is a [`DecodeError`](crate::DecodeError). `None` (the default): the get copies the
    /// message into a per-thread buffer and calls [`decode`](Self::decode).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmq::{Codec, codec::Pod};
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
/// use shmq::{TypeTag, codec::Pod};
/// assert_eq!(TypeTag::named("orders.Order/v2"), TypeTag::named("orders.Order/v2"));
/// assert_ne!(TypeTag::of::<u64, Pod>(), TypeTag::of::<u32, Pod>());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TypeTag([u64; 2]);

impl TypeTag {
    /// The tag whose two words are `words` (as recorded in a segment's header).
    pub(crate) fn from_words(words: [u64; 2]) -> TypeTag {
        TypeTag(words)
    }
}

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
    /// use shmq::{TypeTag, codec::Pod};
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

    pub(crate) fn words(self) -> [u64; 2] {
        self.0
    }
}

/// `type_name` without module paths (`alloc::vec::Vec<app::Order>` is `Vec<Order>`), so that
/// one struct compiled into two binaries (a library's type seen from two crates, or a module
/// shared with `#[path]`) gets one tag.
pub(crate) fn short_type_name(full: &str) -> String {
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
