//! Iterators over queues and pipe ends, byte and typed: `iter()` blocks and ends when the queue
//! is closed and drained (a pipe: end-of-file), `try_iter()` takes what is there now, and
//! `for msg in &queue` is `iter()`.
//!
//! A byte iterator also ends on an error that is not the end of work (a corrupt segment, the
//! wrong direction of a one-way pipe): call `get`/`recv` afterwards to see it. A typed
//! iterator yields `Result<T, DecodeError>`: a message that does not decode is an item, and
//! the iteration goes on.

use std::fmt;

use crate::pipe::PipeEnd;
use crate::queue::Queue;
use crate::typed::{Codec, DecodeError, TypedError, TypedPipeEnd, TypedQueue};

/// The blocking iterator of [`Queue::iter`].
pub struct Iter<'a> {
    q: &'a Queue,
}

/// The non-blocking iterator of [`Queue::try_iter`].
pub struct TryIter<'a> {
    q: &'a Queue,
}

/// The blocking iterator of [`PipeEnd::iter`].
pub struct PipeIter<'a> {
    p: &'a PipeEnd,
}

/// The non-blocking iterator of [`PipeEnd::try_iter`].
pub struct PipeTryIter<'a> {
    p: &'a PipeEnd,
}

macro_rules! debug_named {
    ($($t:ident),*) => {$(
        impl fmt::Debug for $t<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($t), " { .. }"))
            }
        }
    )*};
}
debug_named!(Iter, TryIter, PipeIter, PipeTryIter);

impl Iterator for Iter<'_> {
    type Item = Vec<u8>;
    fn next(&mut self) -> Option<Vec<u8>> {
        self.q.get().ok()
    }
}

impl Iterator for TryIter<'_> {
    type Item = Vec<u8>;
    fn next(&mut self) -> Option<Vec<u8>> {
        self.q.try_get().ok()
    }
}

impl Iterator for PipeIter<'_> {
    type Item = Vec<u8>;
    fn next(&mut self) -> Option<Vec<u8>> {
        self.p.recv().ok()
    }
}

impl Iterator for PipeTryIter<'_> {
    type Item = Vec<u8>;
    fn next(&mut self) -> Option<Vec<u8>> {
        self.p.try_recv().ok()
    }
}

impl Queue {
    /// A blocking iterator: each item is [`get`](Self::get); it ends once the queue is closed
    /// and drained (or on a corrupt segment).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let q = shmq::Queue::anonymous(&shmq::Options { capacity: 4, message_size: 8, ..Default::default() })?;
    /// q.put(b"a")?;
    /// q.put(b"b")?;
    /// q.close()?;
    /// let all: Vec<Vec<u8>> = q.iter().collect();
    /// assert_eq!(all, [b"a".to_vec(), b"b".to_vec()]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn iter(&self) -> Iter<'_> {
        Iter { q: self }
    }

    /// A non-blocking iterator: the messages there now ([`try_get`](Self::try_get) until
    /// `Empty`).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let q = shmq::Queue::anonymous(&shmq::Options { capacity: 4, message_size: 8, ..Default::default() })?;
    /// q.put(b"a")?;
    /// assert_eq!(q.try_iter().count(), 1);
    /// assert_eq!(q.try_iter().count(), 0); // does not wait
    /// # Ok(())
    /// # }
    /// ```
    pub fn try_iter(&self) -> TryIter<'_> {
        TryIter { q: self }
    }
}

impl<'a> IntoIterator for &'a Queue {
    type Item = Vec<u8>;
    type IntoIter = Iter<'a>;
    /// [`Queue::iter`].
    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl PipeEnd {
    /// A blocking iterator: each item is [`recv`](Self::recv); it ends at end-of-file (every
    /// holder of the other end gone and the ring drained), or on the sending end of a one-way
    /// pipe, or on a corrupt segment.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmq::{Options, Pipe};
    /// let name = format!("shmq-doc-pipe-iter-{}", std::process::id());
    /// let (a, b) = Pipe::create(&name, &Options { capacity: 4, message_size: 8, ..Default::default() })?;
    /// b.send(b"x")?;
    /// b.send(b"y")?;
    /// b.close()?;
    /// let mut n = 0;
    /// for msg in &a {
    ///     assert_eq!(msg.len(), 1);
    ///     n += 1;
    /// }
    /// assert_eq!(n, 2);
    /// Pipe::unlink(&name)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn iter(&self) -> PipeIter<'_> {
        PipeIter { p: self }
    }

    /// A non-blocking iterator over the messages there now.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmq::{Options, Pipe};
    /// let name = format!("shmq-doc-pipe-tryiter-{}", std::process::id());
    /// let (a, b) = Pipe::create(&name, &Options { capacity: 4, message_size: 8, ..Default::default() })?;
    /// b.send(b"x")?;
    /// assert_eq!(a.try_iter().collect::<Vec<_>>(), [b"x".to_vec()]);
    /// Pipe::unlink(&name)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn try_iter(&self) -> PipeTryIter<'_> {
        PipeTryIter { p: self }
    }
}

impl<'a> IntoIterator for &'a PipeEnd {
    type Item = Vec<u8>;
    type IntoIter = PipeIter<'a>;
    /// [`PipeEnd::iter`].
    fn into_iter(self) -> PipeIter<'a> {
        self.iter()
    }
}

/// The blocking iterator of [`TypedQueue::iter`]: decoded values or decode errors, until the
/// queue is closed and drained.
pub struct TypedIter<'a, T, C: Codec<T>> {
    q: &'a TypedQueue<T, C>,
    blocking: bool,
}

/// The blocking iterator of [`TypedPipeEnd::iter`]: decoded values or decode errors, until
/// end-of-file.
pub struct TypedPipeIter<'a, T, C: Codec<T>> {
    p: &'a TypedPipeEnd<T, C>,
    blocking: bool,
}

impl<T, C: Codec<T>> fmt::Debug for TypedIter<'_, T, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TypedIter")
            .field("blocking", &self.blocking)
            .finish_non_exhaustive()
    }
}

impl<T, C: Codec<T>> fmt::Debug for TypedPipeIter<'_, T, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TypedPipeIter")
            .field("blocking", &self.blocking)
            .finish_non_exhaustive()
    }
}

/// An item from a typed get: a value, a decode error (an item), or the end.
fn item<T, E>(r: Result<T, TypedError<E>>) -> Option<Result<T, DecodeError>> {
    match r {
        Ok(v) => Some(Ok(v)),
        Err(TypedError::Decode(e)) => Some(Err(e)),
        Err(TypedError::Queue(_)) => None,
    }
}

impl<T, C: Codec<T>> Iterator for TypedIter<'_, T, C> {
    type Item = Result<T, DecodeError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.blocking {
            item(self.q.get())
        } else {
            item(self.q.try_get())
        }
    }
}

impl<T, C: Codec<T>> Iterator for TypedPipeIter<'_, T, C> {
    type Item = Result<T, DecodeError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.blocking {
            item(self.p.recv())
        } else {
            item(self.p.try_recv())
        }
    }
}

impl<T, C: Codec<T>> TypedQueue<T, C> {
    /// A blocking iterator of `Result<T, DecodeError>`; it ends once the queue is closed and
    /// drained.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let q = shmq::PodQueue::<u16>::anonymous(&shmq::Options { capacity: 4, message_size: 2, ..Default::default() })?;
    /// q.put(1)?;
    /// q.queue().put(b"?")?; // one byte: not a u16
    /// q.put(3)?;
    /// q.queue().close()?;
    /// let items: Vec<_> = q.iter().collect();
    /// assert_eq!(items.len(), 3);
    /// assert_eq!(items[0], Ok(1));
    /// assert_eq!(items[1].as_ref().unwrap_err().position, 1);
    /// assert_eq!(items[2], Ok(3));
    /// # Ok(())
    /// # }
    /// ```
    pub fn iter(&self) -> TypedIter<'_, T, C> {
        TypedIter {
            q: self,
            blocking: true,
        }
    }

    /// A non-blocking iterator over the values there now.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let q = shmq::PodQueue::<u16>::anonymous(&shmq::Options { capacity: 4, message_size: 2, ..Default::default() })?;
    /// q.put(1)?;
    /// q.put(2)?;
    /// let v: Result<Vec<u16>, _> = q.try_iter().collect();
    /// assert_eq!(v?, [1, 2]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn try_iter(&self) -> TypedIter<'_, T, C> {
        TypedIter {
            q: self,
            blocking: false,
        }
    }
}

impl<'a, T, C: Codec<T>> IntoIterator for &'a TypedQueue<T, C> {
    type Item = Result<T, DecodeError>;
    type IntoIter = TypedIter<'a, T, C>;
    /// [`TypedQueue::iter`].
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<T, C: Codec<T>> TypedPipeEnd<T, C> {
    /// A blocking iterator of `Result<T, DecodeError>`; it ends at end-of-file.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmq::{Options, TypedPipe, codec::Pod};
    /// let name = format!("shmq-doc-typedpipe-iter-{}", std::process::id());
    /// let (a, b) = TypedPipe::<u32, Pod>::create(&name, &Options { capacity: 4, message_size: 4, ..Default::default() })?;
    /// a.send(1)?;
    /// a.send(2)?;
    /// a.close()?;
    /// let sum: u32 = b.iter().map(Result::unwrap).sum();
    /// assert_eq!(sum, 3);
    /// shmq::Pipe::unlink(&name)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn iter(&self) -> TypedPipeIter<'_, T, C> {
        TypedPipeIter {
            p: self,
            blocking: true,
        }
    }

    /// A non-blocking iterator over the values there now.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmq::{Options, TypedPipe, codec::Pod};
    /// let name = format!("shmq-doc-typedpipe-tryiter-{}", std::process::id());
    /// let (a, b) = TypedPipe::<u32, Pod>::create(&name, &Options { capacity: 4, message_size: 4, ..Default::default() })?;
    /// a.send(5)?;
    /// assert_eq!(b.try_iter().count(), 1);
    /// shmq::Pipe::unlink(&name)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn try_iter(&self) -> TypedPipeIter<'_, T, C> {
        TypedPipeIter {
            p: self,
            blocking: false,
        }
    }
}

impl<'a, T, C: Codec<T>> IntoIterator for &'a TypedPipeEnd<T, C> {
    type Item = Result<T, DecodeError>;
    type IntoIter = TypedPipeIter<'a, T, C>;
    /// [`TypedPipeEnd::iter`].
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}
