//! The send family of [`PipeEnd`]: single messages of any size, zero-copy sends, batches,
//! each with every wait flavour. Each is one call into the end's outgoing port and one error
//! mapper; the receiving end of a one-way pipe answers `WrongDirection`.

use super::*;

impl PipeEnd {
    fn send_impl(&self, ring: Direction<'_>, msg: &[u8], wait: Wait) -> Result<(), Fail> {
        self.with_port(ring, |p| p.put(msg, wait))
    }

    /// Sends a message, waiting while the outgoing ring is full.
    ///
    /// # Errors
    ///
    /// [`SendError::Disconnected`] when no live holder of the other end remains,
    /// [`SendError::TooLarge`], [`SendError::WrongDirection`] on the receiving end of a one-way
    /// pipe, [`SendError::Corrupt`]; each hands the message back.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmq::{Options, Pipe, SendError};
    /// let name = format!("shmq-doc-pipe-send-{}", std::process::id());
    /// let (a, b) = Pipe::create(&name, &Options { capacity: 2, message_size: 4, ..Default::default() })?;
    /// a.send(b"abcd")?;
    /// assert!(matches!(a.send(b"abcde"), Err(SendError::TooLarge { len: 5, max: 4, .. })));
    /// drop(b);
    /// assert!(matches!(a.send(b"late"), Err(SendError::Disconnected(b"late"))));
    /// Pipe::unlink(&name)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn send<M: AsRef<[u8]>>(&self, msg: M) -> Result<(), SendError<M>> {
        let Ok(ring) = self.outgoing() else {
            return Err(SendError::WrongDirection(msg));
        };
        self.send_impl(ring, msg.as_ref(), Wait::Forever)
            .map_err(|f| send_error(f, msg))
    }

    /// Sends a message if a slot is free now.
    ///
    /// # Errors
    ///
    /// [`TrySendError::Full`] with the message, and the errors of [`send`](Self::send). `Full`
    /// means "would block": the outgoing ring is full, or its lock stayed held by another live
    /// process for [`TRY_LOCK_WAIT`](crate::TRY_LOCK_WAIT).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmq::{Options, Pipe, TrySendError};
    /// let name = format!("shmq-doc-pipe-trysend-{}", std::process::id());
    /// let (a, _b) = Pipe::create(&name, &Options { capacity: 1, message_size: 8, ..Default::default() })?;
    /// a.try_send(vec![1u8])?;
    /// match a.try_send(vec![2u8]) {
    ///     Err(TrySendError::Full(msg)) => assert_eq!(msg, vec![2u8]), // nothing is lost
    ///     other => panic!("{other:?}"),
    /// }
    /// Pipe::unlink(&name)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn try_send<M: AsRef<[u8]>>(&self, msg: M) -> Result<(), TrySendError<M>> {
        let Ok(ring) = self.outgoing() else {
            return Err(TrySendError::WrongDirection(msg));
        };
        self.send_impl(ring, msg.as_ref(), Wait::Never)
            .map_err(|f| try_send_error(f, msg))
    }

    /// Sends a message, waiting at most `timeout` for a free slot.
    ///
    /// # Errors
    ///
    /// [`SendTimeoutError::Timeout`] with the message, and the errors of [`send`](Self::send).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmq::{Options, Pipe, SendTimeoutError};
    /// use std::time::{Duration, Instant};
    /// let name = format!("shmq-doc-pipe-sendtimeout-{}", std::process::id());
    /// let (a, _b) = Pipe::create(&name, &Options { capacity: 1, message_size: 8, ..Default::default() })?;
    /// a.send_timeout(b"1", Duration::from_millis(10))?;
    /// let t = Instant::now();
    /// assert!(matches!(a.send_timeout(b"2", Duration::from_millis(20)), Err(SendTimeoutError::Timeout(b"2"))));
    /// assert!(t.elapsed() >= Duration::from_millis(20));
    /// Pipe::unlink(&name)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn send_timeout<M: AsRef<[u8]>>(
        &self,
        msg: M,
        timeout: Duration,
    ) -> Result<(), SendTimeoutError<M>> {
        self.send_wait(msg, Wait::after(timeout))
    }

    /// Sends a message, waiting until `deadline` at most for a free slot.
    ///
    /// # Errors
    ///
    /// As [`send_timeout`](Self::send_timeout).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmq::{Options, Pipe};
    /// use std::time::{Duration, Instant};
    /// let name = format!("shmq-doc-pipe-senddeadline-{}", std::process::id());
    /// let (a, b) = Pipe::create(&name, &Options { capacity: 1, message_size: 8, ..Default::default() })?;
    /// a.send_deadline(b"soon", Instant::now() + Duration::from_millis(10))?;
    /// assert_eq!(b.recv()?, b"soon");
    /// Pipe::unlink(&name)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn send_deadline<M: AsRef<[u8]>>(
        &self,
        msg: M,
        deadline: Instant,
    ) -> Result<(), SendTimeoutError<M>> {
        self.send_wait(msg, Wait::Until(deadline))
    }

    fn send_wait<M: AsRef<[u8]>>(&self, msg: M, wait: Wait) -> Result<(), SendTimeoutError<M>> {
        let Ok(ring) = self.outgoing() else {
            return Err(SendTimeoutError::WrongDirection(msg));
        };
        self.send_impl(ring, msg.as_ref(), wait)
            .map_err(|f| send_timeout_error(f, msg))
    }

    /// Zero-copy send within the slot size: `fill` writes the message into the claimed slot
    /// and returns its length (at most [`message_size`](Self::message_size)); it runs at most
    /// once, once a slot is free. Waits while the outgoing ring is full.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send), with `()` in place of the message.
    pub fn send_with(&self, fill: impl FnOnce(&mut [u8]) -> usize) -> Result<(), SendError<()>> {
        let Ok(ring) = self.outgoing() else {
            return Err(SendError::WrongDirection(()));
        };
        self.with_port(ring, |p| p.put_with(fill, Wait::Forever))
            .map_err(|f| send_error(f, ()))
    }

    /// [`send_with`](Self::send_with) if a slot is free now.
    ///
    /// # Errors
    ///
    /// [`TrySendError::Full`], and the errors of [`send`](Self::send).
    pub fn try_send_with(
        &self,
        fill: impl FnOnce(&mut [u8]) -> usize,
    ) -> Result<(), TrySendError<()>> {
        let Ok(ring) = self.outgoing() else {
            return Err(TrySendError::WrongDirection(()));
        };
        self.with_port(ring, |p| p.put_with(fill, Wait::Never))
            .map_err(|f| try_send_error(f, ()))
    }

    /// Zero-copy send of exactly `len` bytes of any size up to
    /// [`max_message_size`](Self::max_message_size), as
    /// [`Queue::put_with_len`](crate::Queue::put_with_len): a large message is written straight
    /// into its side segment.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send), with `()` in place of the message; `TooLarge` without calling
    /// `fill`.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmq::{Options, Pipe};
    /// let name = format!("shmq-doc-pipe-len-{}", std::process::id());
    /// let opts = Options { capacity: 2, message_size: 64, max_message_size: 1 << 20, ..Default::default() };
    /// let (a, b) = Pipe::create(&name, &opts)?;
    /// a.send_with_len(100_000, |buf| buf.fill(7))?;
    /// assert_eq!(b.recv()?, vec![7u8; 100_000]);
    /// Pipe::unlink(&name)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn send_with_len(
        &self,
        len: usize,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<(), SendError<()>> {
        let Ok(ring) = self.outgoing() else {
            return Err(SendError::WrongDirection(()));
        };
        self.with_port(ring, |p| p.put_with_len(len, fill, Wait::Forever))
            .map_err(|f| send_error(f, ()))
    }

    /// Sends every message of `msgs` in order, waiting while the outgoing ring is full; every
    /// length is checked first, and the batch goes in claims, as
    /// [`Queue::put_many`](crate::Queue::put_many) (whose documentation says what a batch
    /// guarantees).
    ///
    /// # Errors
    ///
    /// [`SendError::TooLarge`]`{ msg: 0, .. }` before anything is sent; the others carry how
    /// many messages were sent before them.
    pub fn send_many<M: AsRef<[u8]>>(&self, msgs: &[M]) -> Result<(), SendError<usize>> {
        let Ok(ring) = self.outgoing() else {
            return Err(SendError::WrongDirection(0));
        };
        let mut sent = 0;
        self.with_port(ring, |p| {
            p.put_many(msgs, Wait::Forever).map_err(|(n, f)| {
                sent = n;
                f
            })
        })
        .map(|_| ())
        .map_err(|f| send_error(f, sent))
    }

    /// Sends what fits now of `msgs` with one claim, as
    /// [`Queue::try_put_many`](crate::Queue::try_put_many): returns how many were sent.
    ///
    /// # Errors
    ///
    /// [`TrySendError::Full`]`(0)` when nothing fits, and the errors of
    /// [`send_many`](Self::send_many).
    pub fn try_send_many<M: AsRef<[u8]>>(&self, msgs: &[M]) -> Result<usize, TrySendError<usize>> {
        let Ok(ring) = self.outgoing() else {
            return Err(TrySendError::WrongDirection(0));
        };
        let mut sent = 0;
        self.with_port(ring, |p| {
            p.put_many(msgs, Wait::Never).map_err(|(n, f)| {
                sent = n;
                f
            })
        })
        .map_err(|f| try_send_error(f, sent))
    }

    /// [`send_with_len`](Self::send_with_len) if a slot is free now.
    ///
    /// # Errors
    ///
    /// [`TrySendError::Full`], and the errors of [`send_with_len`](Self::send_with_len).
    pub fn try_send_with_len(
        &self,
        len: usize,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<(), TrySendError<()>> {
        let Ok(ring) = self.outgoing() else {
            return Err(TrySendError::WrongDirection(()));
        };
        self.with_port(ring, |p| p.put_with_len(len, fill, Wait::Never))
            .map_err(|f| try_send_error(f, ()))
    }
}
