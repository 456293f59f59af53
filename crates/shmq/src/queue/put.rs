//! The put family of [`Queue`]: single messages of any size, zero-copy puts, batches, each
//! with every wait flavour (blocking, `try_`, `_timeout`, `_deadline`). Each is one call into
//! the queue's port and one error mapper.

use super::*;

impl Queue {
    #[inline]
    fn put_impl<M: AsRef<[u8]>>(&self, msg: &M, wait: Wait) -> Result<(), Fail> {
        self.port().put(msg.as_ref(), wait)
    }

    /// Puts a message, waiting while the queue is full.
    ///
    /// # Errors
    ///
    /// [`PutError::Closed`], [`PutError::TooLarge`], [`PutError::Corrupt`]; each hands the
    /// message back.
    pub fn put<M: AsRef<[u8]>>(&self, msg: M) -> Result<(), PutError<M>> {
        self.put_impl(&msg, Wait::Forever)
            .map_err(|f| put_error(f, msg))
    }

    /// Puts a message if a slot is free now (Python's `put_nowait`).
    ///
    /// # Errors
    ///
    /// [`TryPutError::Full`] with the message, and the errors of [`put`](Self::put). `Full`
    /// means "would block": no slot is free (or, in a process that found the queue's registry
    /// of 64 lock-free producers full and puts under the queue's lock, that lock stayed held by
    /// another live process for [`TRY_LOCK_WAIT`](crate::TRY_LOCK_WAIT): a non-blocking call
    /// does not wait without bound on a holder; see the trust model in `docs/protocol.md`).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), shmq::OpenError> {
    /// use shmq::{Options, Queue, TryPutError};
    /// let q = Queue::anonymous(&Options { capacity: 1, message_size: 8, ..Default::default() })?;
    /// assert!(q.try_put(vec![1u8]).is_ok());
    /// match q.try_put(vec![2u8]) {
    ///     Err(TryPutError::Full(msg)) => assert_eq!(msg, vec![2u8]), // nothing is lost
    ///     other => panic!("{other:?}"),
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn try_put<M: AsRef<[u8]>>(&self, msg: M) -> Result<(), TryPutError<M>> {
        self.put_impl(&msg, Wait::Never)
            .map_err(|f| try_put_error(f, msg))
    }

    /// Puts a message, waiting at most `timeout` for a free slot.
    ///
    /// # Errors
    ///
    /// [`PutTimeoutError::Timeout`] with the message, and the errors of [`put`](Self::put).
    pub fn put_timeout<M: AsRef<[u8]>>(
        &self,
        msg: M,
        timeout: Duration,
    ) -> Result<(), PutTimeoutError<M>> {
        self.put_impl(&msg, Wait::after(timeout))
            .map_err(|f| put_timeout_error(f, msg))
    }

    /// Puts a message, waiting until `deadline` at most for a free slot.
    ///
    /// # Errors
    ///
    /// As [`put_timeout`](Self::put_timeout).
    pub fn put_deadline<M: AsRef<[u8]>>(
        &self,
        msg: M,
        deadline: Instant,
    ) -> Result<(), PutTimeoutError<M>> {
        self.put_impl(&msg, Wait::Until(deadline))
            .map_err(|f| put_timeout_error(f, msg))
    }

    /// Put with a closure: waits for a free slot, then lets `fill` write the message into a
    /// buffer of [`message_size`](Self::message_size) bytes and return its length; the message
    /// is then copied into the slot. `fill` runs while the slot is claimed (consumers wait at
    /// it, in order): keep it short.
    ///
    /// # Errors
    ///
    /// As [`put`](Self::put); `TooLarge` if `fill` returns a length over the slot size, in which
    /// case nothing is published.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let q = shmq::Queue::anonymous(&shmq::Options { capacity: 2, message_size: 8, ..Default::default() })?;
    /// q.put_with(|buf| { buf[..2].copy_from_slice(b"hi"); 2 })?;
    /// assert_eq!(q.get_with(|msg| msg.to_vec())?, b"hi");
    /// # Ok(())
    /// # }
    /// ```
    pub fn put_with(&self, fill: impl FnOnce(&mut [u8]) -> usize) -> Result<(), PutError<()>> {
        self.put_with_impl(fill, Wait::Forever)
            .map_err(|f| put_error(f, ()))
    }

    /// Zero-copy put if a slot is free now; see [`put_with`](Self::put_with).
    ///
    /// # Errors
    ///
    /// As [`try_put`](Self::try_put).
    pub fn try_put_with(
        &self,
        fill: impl FnOnce(&mut [u8]) -> usize,
    ) -> Result<(), TryPutError<()>> {
        self.put_with_impl(fill, Wait::Never)
            .map_err(|f| try_put_error(f, ()))
    }

    fn put_with_impl(&self, fill: impl FnOnce(&mut [u8]) -> usize, wait: Wait) -> Result<(), Fail> {
        self.port().put_with(fill, wait)
    }

    /// Zero-copy put of a message of exactly `len` bytes, of any size up to
    /// [`max_message_size`](Self::max_message_size): `fill` writes the message into the buffer
    /// it is lent (`len` bytes, zeroed). Waits while the queue is full.
    ///
    /// A message that fits a slot is written into a buffer that is copied into the slot once
    /// it is claimed (as [`put_with`](Self::put_with) does; keep `fill` short then). A larger
    /// one is written straight into its side segment, before any slot is claimed, and is not
    /// copied again (`docs/protocol.md`, "Large messages"). If `fill` panics, nothing is put
    /// and nothing is left behind.
    ///
    /// # Errors
    ///
    /// As [`put`](Self::put): `TooLarge` for a `len` over the maximum, without calling `fill`.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmq::{Options, PutError, Queue};
    /// let name = format!("shmq-doc-put-with-len-{}", std::process::id());
    /// let q = Queue::create(&name, &Options { capacity: 2, message_size: 64, max_message_size: 1 << 20, ..Default::default() })?;
    /// q.put_with_len(3, |buf| buf.copy_from_slice(b"abc"))?;
    /// // 100 kB, written in place in shared memory: no buffer of the caller's, no copy.
    /// q.put_with_len(100_000, |buf| buf.fill(7))?;
    /// assert_eq!(q.get()?, b"abc");
    /// assert_eq!(q.get()?, vec![7u8; 100_000]);
    /// assert!(matches!(q.put_with_len((1 << 20) + 1, |_| unreachable!()), Err(PutError::TooLarge { .. })));
    /// Queue::unlink(&name)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn put_with_len(
        &self,
        len: usize,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<(), PutError<()>> {
        self.put_with_len_impl(len, fill, Wait::Forever)
            .map_err(|f| put_error(f, ()))
    }

    /// [`put_with_len`](Self::put_with_len) if a slot is free now (`fill` is not called
    /// otherwise).
    ///
    /// # Errors
    ///
    /// As [`try_put`](Self::try_put).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), shmq::OpenError> {
    /// use shmq::{Options, Queue, TryPutError};
    /// let q = Queue::anonymous(&Options { capacity: 1, message_size: 8, ..Default::default() })?;
    /// assert!(q.try_put_with_len(2, |buf| buf.copy_from_slice(b"hi")).is_ok());
    /// assert!(matches!(q.try_put_with_len(2, |_| unreachable!()), Err(TryPutError::Full(()))));
    /// # Ok(())
    /// # }
    /// ```
    pub fn try_put_with_len(
        &self,
        len: usize,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<(), TryPutError<()>> {
        self.put_with_len_impl(len, fill, Wait::Never)
            .map_err(|f| try_put_error(f, ()))
    }

    /// [`put_with_len`](Self::put_with_len), waiting at most `timeout` for a free slot.
    ///
    /// # Errors
    ///
    /// As [`put_timeout`](Self::put_timeout).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), shmq::OpenError> {
    /// use shmq::{Options, PutTimeoutError, Queue};
    /// use std::time::Duration;
    /// let q = Queue::anonymous(&Options { capacity: 1, message_size: 8, ..Default::default() })?;
    /// q.put_with_len_timeout(1, Duration::from_millis(10), |buf| buf[0] = 1).unwrap();
    /// let full = q.put_with_len_timeout(1, Duration::from_millis(10), |buf| buf[0] = 2);
    /// assert!(matches!(full, Err(PutTimeoutError::Timeout(()))));
    /// # Ok(())
    /// # }
    /// ```
    pub fn put_with_len_timeout(
        &self,
        len: usize,
        timeout: Duration,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<(), PutTimeoutError<()>> {
        self.put_with_len_impl(len, fill, Wait::after(timeout))
            .map_err(|f| put_timeout_error(f, ()))
    }

    /// [`put_with_len`](Self::put_with_len), waiting until `deadline` at most for a free slot.
    ///
    /// # Errors
    ///
    /// As [`put_timeout`](Self::put_timeout).
    pub fn put_with_len_deadline(
        &self,
        len: usize,
        deadline: Instant,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<(), PutTimeoutError<()>> {
        self.put_with_len_impl(len, fill, Wait::Until(deadline))
            .map_err(|f| put_timeout_error(f, ()))
    }

    fn put_with_len_impl(
        &self,
        len: usize,
        fill: impl FnOnce(&mut [u8]),
        wait: Wait,
    ) -> Result<(), Fail> {
        self.port().put_with_len(len, fill, wait)
    }

    /// Puts every message of `msgs`, in order, waiting while the queue is full. An empty `msgs`
    /// returns `Ok(())` at once.
    ///
    /// Every length is checked against [`max_message_size`](Self::max_message_size) first: a
    /// batch holding a message over it is refused at once, before anything is put.
    ///
    /// The batch goes in claims, each all-or-nothing: a run of messages within the slot size
    /// takes as many consecutive slots as are free (up to 8192) with one claim and one commit;
    /// a large message (over the slot size) is a claim of its own, written into its side
    /// segment first and committed by the put of its descriptor. So:
    ///
    /// - `Ok(())`: every message is queued, in order; another producer's messages may come
    ///   between two claims, and consumers may take a claim's messages before the next one is
    ///   put.
    /// - An error after some claims (`Closed`, `NoSpace`, `Corrupt`) carries `n`, how many
    ///   were put: exactly `msgs[..n]` were queued, none of the rest; the side segment of a
    ///   large message not put is freed or removed.
    /// - A process killed during the call leaves the claims it committed (a prefix of `msgs`
    ///   ending at a claim's end) and none of the claim in progress (voided by the next
    ///   process that meets it); a side segment it was writing, or whose descriptor it had
    ///   not committed, is removed by a later open's sweep, as after a single large put.
    ///
    /// # Errors
    ///
    /// [`PutError::TooLarge`]`{ msg: 0, len, .. }` before anything is put, `len` being the
    /// length of the first message over the maximum; [`PutError::Closed`]`(n)`;
    /// [`PutError::NoSpace`]`{ msg: n, .. }` if the side segment of a large message cannot be
    /// made; [`PutError::Corrupt`]`{ msg: n, .. }`, each with `n` messages put before it.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmq::{Options, PutError, Queue};
    /// let q = Queue::anonymous(&Options { capacity: 8, message_size: 8, ..Default::default() })?;
    /// q.put_many(&[b"a", b"b", b"c"])?;
    /// assert_eq!(q.get_many(10)?, vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
    /// // One message over the maximum (here the slot size): none of the batch is put.
    /// let e = q.put_many(&[&b"ok"[..], b"9 bytes!!"]).unwrap_err();
    /// assert!(matches!(e, PutError::TooLarge { msg: 0, len: 9, max: 8 }));
    /// assert!(q.is_empty());
    /// # Ok(())
    /// # }
    /// ```
    pub fn put_many<M: AsRef<[u8]>>(&self, msgs: &[M]) -> Result<(), PutError<usize>> {
        self.port()
            .put_many(msgs, Wait::Forever)
            .map(|_| ())
            .map_err(|(n, f)| put_error(f, n))
    }

    /// Puts what one claim of [`put_many`](Self::put_many) holds, if a slot is free now, and
    /// returns how many: as many of the messages within the slot size at the front of `msgs`
    /// as there are free slots (up to 8192, and not past the first large message), with one
    /// claim and one commit, or the large message at the front alone. A producer killed
    /// meanwhile puts none of them. An empty `msgs` returns `Ok(0)` at once, whatever the
    /// state of the queue.
    ///
    /// Every length of `msgs` (not only those put now) is checked against
    /// [`max_message_size`](Self::max_message_size) first, so a caller that calls again with
    /// the rest until all is put never puts part of a batch that holds a message over it.
    ///
    /// # Errors
    ///
    /// [`TryPutError::TooLarge`]`{ msg: 0, len, .. }` before anything is put, `len` being the
    /// length of the first message of `msgs` over the maximum; [`TryPutError::Full`]`(0)` if
    /// no slot is free (and `msgs` is not empty), as for [`try_put`](Self::try_put);
    /// [`TryPutError::Closed`]`(0)`, [`TryPutError::NoSpace`] and [`TryPutError::Corrupt`]
    /// (carrying 0: an error puts nothing).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmq::{Options, Queue, TryPutError};
    /// let q = Queue::anonymous(&Options { capacity: 2, message_size: 8, ..Default::default() })?;
    /// assert_eq!(q.try_put_many(&[b"a", b"b", b"c"])?, 2);
    /// assert!(matches!(q.try_put_many(&[b"c"]), Err(TryPutError::Full(0))));
    /// q.get_many(2)?;
    /// let e = q.try_put_many(&[&b"ok"[..], b"9 bytes!!"]).unwrap_err();
    /// assert!(matches!(e, TryPutError::TooLarge { msg: 0, len: 9, max: 8 }));
    /// assert!(q.is_empty());
    /// # Ok(())
    /// # }
    /// ```
    pub fn try_put_many<M: AsRef<[u8]>>(&self, msgs: &[M]) -> Result<usize, TryPutError<usize>> {
        self.port()
            .put_many(msgs, Wait::Never)
            .map_err(|(n, f)| try_put_error(f, n))
    }

    /// `TooLarge` for the first message of `msgs` over the maximum message size: a batch is
    /// checked whole before any of it is put.
    /// Test hook (feature `test-hooks`): claims and writes slots for `msgs` (one claim) and
    /// publishes all but the first, the commit; the caller then stops for good, as a producer
    /// killed before its commit. Returns whether it claimed.
    #[cfg(feature = "test-hooks")]
    #[doc(hidden)]
    pub fn claim_and_stop(&self, msgs: &[&[u8]]) -> bool {
        self.port().claim_and_stop(msgs)
    }

    /// Test hook (feature `test-hooks`): names the next position in an intent lane of this
    /// process's registry row, as a put does before its claim (its CAS of `tail`), and claims
    /// nothing; the caller then stops for good. Returns whether it named one.
    #[cfg(feature = "test-hooks")]
    #[doc(hidden)]
    pub fn name_and_stop(&self) -> bool {
        self.port().name_and_stop()
    }
}
