//! The get family of [`Queue`]: into a new vector, into a buffer, in place with a closure, in
//! batches, each with every wait flavour. Each is one call into the queue's port (which reads a
//! message of any size) and one error mapper.

use super::*;

impl Queue {
    fn get_with_impl<R>(&self, read: impl FnOnce(&[u8]) -> R, wait: Wait) -> Result<R, Fail> {
        self.port().get_with(read, wait)
    }

    #[inline]
    fn get_vec_impl(&self, wait: Wait) -> Result<Vec<u8>, Fail> {
        self.port().get_vec(wait)
    }

    /// Takes the oldest message, waiting while the queue is empty.
    ///
    /// # Errors
    ///
    /// [`GetError::Closed`] once the queue is closed and drained; [`GetError::Corrupt`].
    pub fn get(&self) -> Result<Vec<u8>, GetError> {
        self.get_vec_impl(Wait::Forever).map_err(get_error)
    }

    /// Takes the oldest message if there is one now (Python's `get_nowait`).
    ///
    /// # Errors
    ///
    /// [`TryGetError::Empty`], and the errors of [`get`](Self::get).
    pub fn try_get(&self) -> Result<Vec<u8>, TryGetError> {
        self.get_vec_impl(Wait::Never).map_err(try_get_error)
    }

    /// Takes the oldest message, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`GetTimeoutError::Timeout`], and the errors of [`get`](Self::get).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), shmq::OpenError> {
    /// use shmq::{GetTimeoutError, Options, Queue};
    /// use std::time::{Duration, Instant};
    /// let q = Queue::anonymous(&Options { capacity: 1, message_size: 8, ..Default::default() })?;
    /// let t = Instant::now();
    /// assert_eq!(q.get_timeout(Duration::from_millis(20)), Err(GetTimeoutError::Timeout));
    /// assert!(t.elapsed() >= Duration::from_millis(20));
    /// # Ok(())
    /// # }
    /// ```
    pub fn get_timeout(&self, timeout: Duration) -> Result<Vec<u8>, GetTimeoutError> {
        self.get_vec_impl(Wait::after(timeout))
            .map_err(get_timeout_error)
    }

    /// Takes the oldest message, waiting until `deadline` at most.
    ///
    /// # Errors
    ///
    /// As [`get_timeout`](Self::get_timeout).
    pub fn get_deadline(&self, deadline: Instant) -> Result<Vec<u8>, GetTimeoutError> {
        self.get_vec_impl(Wait::Until(deadline))
            .map_err(get_timeout_error)
    }

    /// Get with a closure: waits for a message and hands it to `read` in place, in shared
    /// memory (no copy); the message is taken when `read` returns. While `read` runs, this
    /// process holds the queue's lock and has reserved the message: puts and other gets wait
    /// for it, so keep `read` short. If the process dies inside `read` (SIGKILL included) or
    /// `read` panics, nothing is taken: the message stays first in the queue.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let q = shmq::Queue::anonymous(&shmq::Options { capacity: 2, message_size: 8, ..Default::default() })?;
    /// q.put(b"abc")?;
    /// assert_eq!(q.get_with(|msg| msg.len())?, 3);
    /// assert!(q.is_empty());
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub fn get_with<R>(&self, read: impl FnOnce(&[u8]) -> R) -> Result<R, GetError> {
        self.get_with_impl(read, Wait::Forever).map_err(get_error)
    }

    /// Zero-copy get of a message that is there now; see [`get_with`](Self::get_with). Like
    /// [`try_put`](Self::try_put), it waits for the queue's lock (held by puts, and by other
    /// zero-copy readers while their closures run), never for a message.
    ///
    /// # Errors
    ///
    /// As [`try_get`](Self::try_get).
    pub fn try_get_with<R>(&self, read: impl FnOnce(&[u8]) -> R) -> Result<R, TryGetError> {
        self.get_with_impl(read, Wait::Never).map_err(try_get_error)
    }

    /// A get that removes the message only if `read` accepts it: `read` sees the oldest
    /// message in place, reserved as in [`get_with`](Self::get_with) (no other consumer can
    /// take it meanwhile, and a process that dies inside `read` takes nothing); if it returns
    /// `Err(e)`, the message stays at the front of the queue as if it had never been looked
    /// at, and the call returns `Ok(Err(e))`. Waits until `deadline` at most (`None`: as long
    /// as it takes). `shmq get` writes each message to its output this way, so a failed write
    /// loses nothing.
    ///
    /// # Errors
    ///
    /// As [`get_deadline`](Self::get_deadline) (`Timeout` only with a deadline).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmq::{Options, Queue};
    /// let q = Queue::anonymous(&Options { capacity: 2, message_size: 8, ..Default::default() })?;
    /// q.put(b"first")?;
    /// q.put(b"second")?;
    /// let refused = q.get_with_or_keep(None, |_| Err::<(), _>("cannot use it now"))?;
    /// assert_eq!(refused, Err("cannot use it now"));
    /// assert_eq!(q.len(), 2); // still there, still first
    /// let taken = q.get_with_or_keep(None, |m| Ok::<_, ()>(m.to_vec()))?;
    /// assert_eq!(taken, Ok(b"first".to_vec()));
    /// # Ok(())
    /// # }
    /// ```
    pub fn get_with_or_keep<R, E>(
        &self,
        deadline: Option<Instant>,
        read: impl FnOnce(&[u8]) -> Result<R, E>,
    ) -> Result<Result<R, E>, GetTimeoutError> {
        let wait = deadline.map_or(Wait::Forever, Wait::Until);
        self.port()
            .get_with_or_keep(read, wait)
            .map_err(get_timeout_error)
    }

    #[inline]
    fn get_into_impl(&self, buf: &mut [u8], wait: Wait) -> Result<usize, Fail> {
        self.port().get_into(buf, wait)
    }

    /// Takes the oldest message into `buf` without allocating; returns its length.
    ///
    /// # Errors
    ///
    /// [`GetError::BufferTooSmall`] if the message does not fit (it stays in the queue), and
    /// the errors of [`get`](Self::get).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmq::{GetError, Options, Queue};
    /// let q = Queue::anonymous(&Options { capacity: 2, message_size: 8, ..Default::default() })?;
    /// q.put(b"four")?;
    /// let mut small = [0u8; 2];
    /// assert_eq!(q.get_into(&mut small), Err(GetError::BufferTooSmall { needed: 4, available: 2 }));
    /// let mut buf = [0u8; 8];
    /// let n = q.get_into(&mut buf)?;
    /// assert_eq!(&buf[..n], b"four");
    /// # Ok(())
    /// # }
    /// ```
    pub fn get_into(&self, buf: &mut [u8]) -> Result<usize, GetError> {
        self.get_into_impl(buf, Wait::Forever).map_err(get_error)
    }

    /// [`get_into`](Self::get_into) if a message is there now.
    ///
    /// # Errors
    ///
    /// As [`try_get`](Self::try_get), plus `BufferTooSmall`.
    pub fn try_get_into(&self, buf: &mut [u8]) -> Result<usize, TryGetError> {
        self.get_into_impl(buf, Wait::Never).map_err(try_get_error)
    }

    /// [`get_into`](Self::get_into), waiting until `deadline` at most.
    ///
    /// # Errors
    ///
    /// As [`get_deadline`](Self::get_deadline), plus `BufferTooSmall`.
    pub fn get_into_deadline(
        &self,
        buf: &mut [u8],
        deadline: Instant,
    ) -> Result<usize, GetTimeoutError> {
        self.get_into_impl(buf, Wait::Until(deadline))
            .map_err(get_timeout_error)
    }

    fn get_many_impl(
        &self,
        max: usize,
        read: impl FnMut(&[u8]),
        wait: Wait,
    ) -> Result<usize, Fail> {
        self.port().get_many(max, read, wait)
    }

    /// Waits for at least one message, then takes up to `max` with one claim (and no more
    /// than fill 128 KiB of slots, but at least one, so that large messages are copied through
    /// the cache).
    ///
    /// `get_many(0)` asks for nothing: it returns `Ok(vec![])` at once, whatever the state of
    /// the queue (as every `*_many` call with nothing to do).
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let q = shmq::Queue::anonymous(&shmq::Options { capacity: 4, message_size: 8, ..Default::default() })?;
    /// q.put_many(&[b"a", b"b"])?;
    /// assert_eq!(q.get_many(0)?, Vec::<Vec<u8>>::new());
    /// assert_eq!(q.get_many(5)?, vec![b"a".to_vec(), b"b".to_vec()]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn get_many(&self, max: usize) -> Result<Vec<Vec<u8>>, GetError> {
        let mut out = Vec::new();
        self.get_many_impl(max, |m| out.push(m.to_vec()), Wait::Forever)
            .map_err(get_error)?;
        Ok(out)
    }

    /// Takes up to `max` messages that are there now, with one claim.
    ///
    /// `try_get_many(0)` returns `Ok(vec![])` at once, whatever the state of the queue.
    ///
    /// # Errors
    ///
    /// As [`try_get`](Self::try_get).
    pub fn try_get_many(&self, max: usize) -> Result<Vec<Vec<u8>>, TryGetError> {
        let mut out = Vec::new();
        self.get_many_impl(max, |m| out.push(m.to_vec()), Wait::Never)
            .map_err(try_get_error)?;
        Ok(out)
    }

    /// Batch get with a closure: waits for at least one message, hands up to `max` of them
    /// to `read` in order, in place (as [`get_with`](Self::get_with)), then takes them all with
    /// one store; returns how many. If the process dies inside `read`, or `read` panics,
    /// none of the batch is taken.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let q = shmq::Queue::anonymous(&shmq::Options { capacity: 4, message_size: 8, ..Default::default() })?;
    /// q.put_many(&[&b"a"[..], b"bb", b"ccc"])?;
    /// let mut lens = Vec::new();
    /// assert_eq!(q.get_many_with(2, |m| lens.push(m.len()))?, 2);
    /// assert_eq!(lens, [1, 2]);
    /// assert_eq!(q.len(), 1);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// `get_many_with(0, ..)` returns `Ok(0)` at once, without calling `read`.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub fn get_many_with(&self, max: usize, read: impl FnMut(&[u8])) -> Result<usize, GetError> {
        self.port()
            .get_many_with(max, read, Wait::Forever)
            .map_err(get_error)
    }

    /// Test hook (feature `test-hooks`): copies the front message as a lock-free get does,
    /// and returns it without taking it (no CAS of `head`); the caller then stops for good, as
    /// a consumer killed mid-copy.
    #[cfg(feature = "test-hooks")]
    #[doc(hidden)]
    pub fn copy_and_stop(&self) -> Option<Vec<u8>> {
        self.port().copy_and_stop()
    }
}
