//! The receive family of [`PipeEnd`]: into a new vector, into a buffer, in place with a
//! closure, in batches, and `poll`, each with every wait flavour. Each is one call into the
//! end's incoming port and one error mapper; end-of-file is `Disconnected` once drained.

use super::*;

impl PipeEnd {
    /// A copying receive (no lock) into `buf` (at least `message_size` bytes); returns the
    /// message's position in the incoming ring and its length. `None` on the sending end of a
    /// one-way pipe. For typed readers.
    pub(crate) fn recv_into_with_position(
        &self,
        buf: &mut [u8],
        wait: Wait,
    ) -> Option<Result<(u64, usize), Fail>> {
        let ring = self.incoming().ok()?;
        Some(self.with_port(ring, |p| p.get_into_with_position(buf, wait)))
    }

    fn recv_impl(&self, ring: Direction<'_>, wait: Wait) -> Result<Vec<u8>, Fail> {
        self.with_port(ring, |p| p.get_vec(wait))
    }

    /// Receives the oldest message, waiting while none is there.
    ///
    /// # Errors
    ///
    /// [`RecvError::Disconnected`] (end-of-file) once the incoming ring is empty and no live
    /// holder of the other end remains; [`RecvError::WrongDirection`] on the sending end of a
    /// one-way pipe; [`RecvError::Corrupt`].
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmq::{Options, Pipe, RecvError};
    /// let name = format!("shmq-doc-pipe-recv-{}", std::process::id());
    /// let (a, b) = Pipe::create(&name, &Options { capacity: 2, message_size: 8, ..Default::default() })?;
    /// let t = std::thread::spawn(move || {
    ///     std::thread::sleep(std::time::Duration::from_millis(10));
    ///     b.send(b"late").map_err(|e| e.to_string())?;
    ///     b.close().map_err(|e| e.to_string()) // the other end's recv sees end-of-file
    /// });
    /// assert_eq!(a.recv()?, b"late");
    /// assert_eq!(a.recv(), Err(RecvError::Disconnected));
    /// t.join().unwrap()?;
    /// Pipe::unlink(&name)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn recv(&self) -> Result<Vec<u8>, RecvError> {
        let Ok(ring) = self.incoming() else {
            return Err(RecvError::WrongDirection);
        };
        self.recv_impl(ring, Wait::Forever).map_err(recv_error)
    }

    /// Receives the oldest message if there is one now.
    ///
    /// # Errors
    ///
    /// [`TryRecvError::Empty`], and the errors of [`recv`](Self::recv).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmq::{Options, Pipe, TryRecvError};
    /// let name = format!("shmq-doc-pipe-tryrecv-{}", std::process::id());
    /// let (a, b) = Pipe::create(&name, &Options { capacity: 2, message_size: 8, ..Default::default() })?;
    /// assert_eq!(a.try_recv(), Err(TryRecvError::Empty));
    /// b.send(b"now")?;
    /// assert_eq!(a.try_recv()?, b"now");
    /// Pipe::unlink(&name)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn try_recv(&self) -> Result<Vec<u8>, TryRecvError> {
        let Ok(ring) = self.incoming() else {
            return Err(TryRecvError::WrongDirection);
        };
        self.recv_impl(ring, Wait::Never).map_err(try_recv_error)
    }

    /// Receives the oldest message, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`RecvTimeoutError::Timeout`], and the errors of [`recv`](Self::recv).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmq::{Options, Pipe, RecvTimeoutError};
    /// use std::time::{Duration, Instant};
    /// let name = format!("shmq-doc-pipe-recvtimeout-{}", std::process::id());
    /// let (a, _b) = Pipe::create(&name, &Options { capacity: 2, message_size: 8, ..Default::default() })?;
    /// let t = Instant::now();
    /// assert_eq!(a.recv_timeout(Duration::from_millis(20)), Err(RecvTimeoutError::Timeout));
    /// assert!(t.elapsed() >= Duration::from_millis(20));
    /// Pipe::unlink(&name)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Vec<u8>, RecvTimeoutError> {
        self.recv_deadline_impl(Wait::after(timeout))
    }

    /// Receives the oldest message, waiting until `deadline` at most.
    ///
    /// # Errors
    ///
    /// As [`recv_timeout`](Self::recv_timeout).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmq::{Options, Pipe};
    /// use std::time::{Duration, Instant};
    /// let name = format!("shmq-doc-pipe-recvdeadline-{}", std::process::id());
    /// let (a, b) = Pipe::create(&name, &Options { capacity: 2, message_size: 8, ..Default::default() })?;
    /// b.send(b"here")?;
    /// assert_eq!(a.recv_deadline(Instant::now() + Duration::from_secs(1))?, b"here");
    /// Pipe::unlink(&name)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn recv_deadline(&self, deadline: Instant) -> Result<Vec<u8>, RecvTimeoutError> {
        self.recv_deadline_impl(Wait::Until(deadline))
    }

    fn recv_deadline_impl(&self, wait: Wait) -> Result<Vec<u8>, RecvTimeoutError> {
        let Ok(ring) = self.incoming() else {
            return Err(RecvTimeoutError::WrongDirection);
        };
        self.recv_impl(ring, wait).map_err(recv_timeout_error)
    }

    /// Receives the oldest message into `buf` without allocating; returns its length.
    ///
    /// # Errors
    ///
    /// [`RecvError::BufferTooSmall`] if the message does not fit (it stays in the pipe, for a
    /// later call with a larger buffer), and the errors of [`recv`](Self::recv).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmq::{Options, Pipe, RecvError};
    /// let name = format!("shmq-doc-pipe-recvinto-{}", std::process::id());
    /// let (a, b) = Pipe::create(&name, &Options { capacity: 2, message_size: 8, ..Default::default() })?;
    /// b.send(b"four")?;
    /// let mut small = [0u8; 2];
    /// assert_eq!(a.recv_into(&mut small), Err(RecvError::BufferTooSmall { needed: 4, available: 2 }));
    /// let mut buf = [0u8; 8];
    /// let n = a.recv_into(&mut buf)?;
    /// assert_eq!(&buf[..n], b"four");
    /// Pipe::unlink(&name)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn recv_into(&self, buf: &mut [u8]) -> Result<usize, RecvError> {
        let Ok(ring) = self.incoming() else {
            return Err(RecvError::WrongDirection);
        };
        self.with_port(ring, |p| p.get_into(buf, Wait::Forever))
            .map_err(recv_error)
    }

    /// [`recv_into`](Self::recv_into) that does not wait: `Empty` if no message is there now.
    ///
    /// # Errors
    ///
    /// [`TryRecvError::Empty`], and the errors of [`recv_into`](Self::recv_into).
    pub fn try_recv_into(&self, buf: &mut [u8]) -> Result<usize, TryRecvError> {
        let Ok(ring) = self.incoming() else {
            return Err(TryRecvError::WrongDirection);
        };
        self.with_port(ring, |p| p.get_into(buf, Wait::Never))
            .map_err(try_recv_error)
    }

    /// [`recv_into`](Self::recv_into), waiting until `deadline` at most.
    ///
    /// # Errors
    ///
    /// [`RecvTimeoutError::Timeout`], and the errors of [`recv_into`](Self::recv_into).
    pub fn recv_into_deadline(
        &self,
        buf: &mut [u8],
        deadline: Instant,
    ) -> Result<usize, RecvTimeoutError> {
        let Ok(ring) = self.incoming() else {
            return Err(RecvTimeoutError::WrongDirection);
        };
        self.with_port(ring, |p| p.get_into(buf, Wait::Until(deadline)))
            .map_err(recv_timeout_error)
    }

    /// Zero-copy receive: `read` sees the oldest message in place (a large one in its side
    /// segment) and the message is taken once it returns; waits while none is there. As
    /// [`Queue::get_with`](crate::Queue::get_with): a process that dies inside `read` takes
    /// nothing, and other receivers of this direction wait for `read` to finish, so keep it
    /// short.
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmq::{Options, Pipe, TryRecvError};
    /// let name = format!("shmq-doc-pipe-with-{}", std::process::id());
    /// let (a, b) = Pipe::create(&name, &Options { capacity: 4, message_size: 8, ..Default::default() })?;
    /// a.send_with(|buf| { buf[..3].copy_from_slice(b"abc"); 3 })?;
    /// assert_eq!(b.recv_with(|m| m.len())?, 3);
    /// assert_eq!(b.try_recv_with(|m| m.len()), Err(TryRecvError::Empty));
    /// Pipe::unlink(&name)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn recv_with<R>(&self, read: impl FnOnce(&[u8]) -> R) -> Result<R, RecvError> {
        let Ok(ring) = self.incoming() else {
            return Err(RecvError::WrongDirection);
        };
        self.with_port(ring, |p| p.get_with(read, Wait::Forever))
            .map_err(recv_error)
    }

    /// [`recv_with`](Self::recv_with) of a message that is there now.
    ///
    /// # Errors
    ///
    /// [`TryRecvError::Empty`], and the errors of [`recv`](Self::recv).
    pub fn try_recv_with<R>(&self, read: impl FnOnce(&[u8]) -> R) -> Result<R, TryRecvError> {
        let Ok(ring) = self.incoming() else {
            return Err(TryRecvError::WrongDirection);
        };
        self.with_port(ring, |p| p.get_with(read, Wait::Never))
            .map_err(try_recv_error)
    }

    /// Waits for at least one message, then receives up to `max` with one claim, as
    /// [`Queue::get_many`](crate::Queue::get_many) does (`recv_many(0)` returns at once with
    /// nothing).
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmq::{Options, Pipe};
    /// let name = format!("shmq-doc-pipe-many-{}", std::process::id());
    /// let (a, b) = Pipe::create(&name, &Options { capacity: 4, message_size: 8, ..Default::default() })?;
    /// a.send_many(&[b"x", b"y", b"z"])?;
    /// assert_eq!(b.recv_many(2)?, vec![b"x".to_vec(), b"y".to_vec()]);
    /// let mut rest = Vec::new();
    /// b.recv_many_with(8, |m| rest.push(m.to_vec()))?;
    /// assert_eq!(rest, [b"z".to_vec()]);
    /// assert_eq!(b.try_recv_many(8)?.len(), 0);
    /// Pipe::unlink(&name)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn recv_many(&self, max: usize) -> Result<Vec<Vec<u8>>, RecvError> {
        let Ok(ring) = self.incoming() else {
            return Err(RecvError::WrongDirection);
        };
        let mut out = Vec::new();
        self.with_port(ring, |p| {
            p.get_many(max, |m| out.push(m.to_vec()), Wait::Forever)
        })
        .map_err(recv_error)?;
        Ok(out)
    }

    /// Receives up to `max` messages that are there now: an empty vector if none is (not
    /// `Empty`, as [`Queue::try_get_many`](crate::Queue::try_get_many)).
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv), but end-of-file only once the pipe is drained.
    pub fn try_recv_many(&self, max: usize) -> Result<Vec<Vec<u8>>, TryRecvError> {
        let Ok(ring) = self.incoming() else {
            return Err(TryRecvError::WrongDirection);
        };
        let mut out = Vec::new();
        match self.with_port(ring, |p| {
            p.get_many(max, |m| out.push(m.to_vec()), Wait::Never)
        }) {
            Ok(_) | Err(Fail::WouldBlock) => Ok(out),
            Err(f) => Err(try_recv_error(f)),
        }
    }

    /// Zero-copy [`recv_many`](Self::recv_many): up to `max` messages read in place, each
    /// passed to `read`; returns how many were taken.
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv).
    pub fn recv_many_with(&self, max: usize, read: impl FnMut(&[u8])) -> Result<usize, RecvError> {
        let Ok(ring) = self.incoming() else {
            return Err(RecvError::WrongDirection);
        };
        self.with_port(ring, |p| p.get_many_with(max, read, Wait::Forever))
            .map_err(recv_error)
    }

    /// Whether a message is ready to be received, waiting at most `timeout` for one; the message
    /// stays in the pipe.
    ///
    /// # Errors
    ///
    /// [`RecvError::Disconnected`] when the pipe is empty and no live holder of the other end
    /// remains (a `recv` would return end-of-file), [`RecvError::WrongDirection`],
    /// [`RecvError::Corrupt`].
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmq::{Options, Pipe};
    /// use std::time::Duration;
    /// let name = format!("shmq-doc-pipe-poll-{}", std::process::id());
    /// let (a, b) = Pipe::create(&name, &Options { capacity: 2, message_size: 8, ..Default::default() })?;
    /// assert!(!a.poll(Duration::from_millis(10))?);
    /// b.send(b"ready")?;
    /// assert!(a.poll(Duration::from_millis(10))?);
    /// assert_eq!(a.recv()?, b"ready"); // poll did not take it
    /// Pipe::unlink(&name)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn poll(&self, timeout: Duration) -> Result<bool, RecvError> {
        self.poll_wait(Wait::after(timeout))
    }

    /// [`poll`](Self::poll), waiting until `deadline` at most.
    ///
    /// # Errors
    ///
    /// As [`poll`](Self::poll).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmq::{Options, Pipe};
    /// use std::time::Instant;
    /// let name = format!("shmq-doc-pipe-polldeadline-{}", std::process::id());
    /// let (a, _b) = Pipe::create(&name, &Options { capacity: 2, message_size: 8, ..Default::default() })?;
    /// assert!(!a.poll_deadline(Instant::now())?);
    /// Pipe::unlink(&name)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn poll_deadline(&self, deadline: Instant) -> Result<bool, RecvError> {
        self.poll_wait(Wait::Until(deadline))
    }

    fn poll_wait(&self, wait: Wait) -> Result<bool, RecvError> {
        let Ok(ring) = self.incoming() else {
            return Err(RecvError::WrongDirection);
        };
        self.with_port(ring, |p| p.poll(wait)).map_err(recv_error)
    }
}
