//! The bounded multi-producer/multi-consumer queue between processes, with Python's
//! `JoinableQueue` task counter and a `close` that ends the work without sentinels.

use std::fmt;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::{
    GetError, GetTimeoutError, JoinError, OpenError, PutError, PutTimeoutError, TaskDoneError,
    TryGetError, TryPutError,
};
use crate::options::Options;
pub use crate::port::QueueInfo;
pub(crate) use crate::port::queue_errors::{
    get_error, get_timeout_error, put_error, put_timeout_error, try_get_error, try_put_error,
};
use crate::port::wait::{Dir, Watch};
use crate::port::{Fail, Wait};
use crate::port::{Port, QueueSegment};
use crate::segment::{CreationMode, Segment};

mod peek;
mod voided;
pub use peek::{CommitError, PeekError};

/// A bounded MPMC queue of byte messages in one shared-memory segment.
///
/// Any number of processes open the same queue by name; one handle is `Send + Sync` and serves
/// any number of threads. Every put is also an unfinished task until [`task_done`](Self::task_done)
/// (Python's `JoinableQueue`), and [`close`](Self::close) ends the work without sentinels.
///
/// A process killed at any point (even holding the lock, or holding a claimed slot) leaves the
/// queue usable: the next process to lock it repairs, and a consumer that meets a slot claimed
/// by a dead producer steps over it. A put that returned `Ok` is never lost; one that was
/// interrupted is simply not there.
///
/// # Examples
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use shmq::{Options, Queue, TryGetError};
///
/// let name = format!("shmq-doc-queue-{}", std::process::id());
/// let q = Queue::create(&name, &Options { capacity: 4, message_size: 64, ..Default::default() })?;
/// q.put(b"hello")?;
///
/// // Usually another process; any handle opened by name sees the same queue.
/// let other = Queue::open(&name)?;
/// assert_eq!(other.get()?, b"hello");
/// assert_eq!(other.try_get(), Err(TryGetError::Empty));
///
/// Queue::unlink(&name)?;
/// # Ok(())
/// # }
/// ```
pub struct Queue {
    shm: QueueSegment,
}

impl Queue {
    /// Creates a named queue; fails if the name exists.
    ///
    /// # Errors
    ///
    /// [`OpenError::InvalidOptions`] (zero or oversized capacity or message size, bad mode),
    /// [`OpenError::InvalidName`], [`OpenError::AlreadyExists`], [`OpenError::Io`].
    pub fn create(name: &str, opts: &Options) -> Result<Queue, OpenError> {
        Self::create_with(name, opts, CreationMode::CreateExclusive)
    }

    /// Creates a named queue, with `mode` deciding what happens if the name exists.
    ///
    /// With [`CreationMode::OpenOrCreate`], two processes racing get one creator and one opener,
    /// and the opener waits for the creator to finish; an existing queue of another capacity or
    /// message size is [`OpenError::Incompatible`].
    ///
    /// # Errors
    ///
    /// As [`create`](Self::create) and [`open`](Self::open).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), shmq::OpenError> {
    /// use shmq::{CreationMode, Options, Queue};
    /// let name = format!("shmq-doc-ooc-{}", std::process::id());
    /// let opts = Options { capacity: 2, message_size: 8, ..Default::default() };
    /// let a = Queue::create_with(&name, &opts, CreationMode::OpenOrCreate)?;
    /// let b = Queue::create_with(&name, &opts, CreationMode::OpenOrCreate)?;
    /// a.try_put(b"x").unwrap();
    /// assert_eq!(b.len(), 1);
    /// let other = Options { capacity: 3, ..opts };
    /// assert!(matches!(Queue::open_or_create(&name, &other), Err(shmq::OpenError::Incompatible(_))));
    /// Queue::unlink(&name)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn create_with(name: &str, opts: &Options, mode: CreationMode) -> Result<Queue, OpenError> {
        QueueSegment::create_named(name, opts, mode).map(|shm| Queue { shm })
    }

    /// [`create_with`](Self::create_with) with [`CreationMode::OpenOrCreate`].
    ///
    /// # Errors
    ///
    /// As [`create_with`](Self::create_with).
    pub fn open_or_create(name: &str, opts: &Options) -> Result<Queue, OpenError> {
        Self::create_with(name, opts, CreationMode::OpenOrCreate)
    }

    /// Opens an existing named queue, waiting briefly for a creator that is still writing it.
    ///
    /// # Errors
    ///
    /// [`OpenError::NotFound`], [`OpenError::InvalidName`], [`OpenError::Incompatible`] (another
    /// kind of object or layout version), [`OpenError::Corrupt`] (not a shmq segment, truncated,
    /// impossible header or positions), [`OpenError::Io`].
    pub fn open(name: &str) -> Result<Queue, OpenError> {
        QueueSegment::open(name).map(|shm| Queue { shm })
    }

    /// Creates a queue in a new file at `path` (a file-backed segment; `/dev/shm` is not needed).
    /// Messages larger than a slot travel in side files beside it (`<path>.big.*`); remove the
    /// queue with [`unlink_file`](Self::unlink_file), which removes them too.
    ///
    /// # Errors
    ///
    /// As [`create`](Self::create).
    pub fn create_file(path: &Path, opts: &Options) -> Result<Queue, OpenError> {
        QueueSegment::create_file(path, opts).map(|shm| Queue { shm })
    }

    /// Opens a queue made by [`create_file`](Self::create_file).
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open).
    pub fn open_file(path: &Path) -> Result<Queue, OpenError> {
        QueueSegment::open_file(path).map(|shm| Queue { shm })
    }

    /// Removes the file of a queue made by [`create_file`](Self::create_file), then the side
    /// files of its large messages (`<path>.big.*`, beside it), as [`unlink`](Self::unlink)
    /// does for a named queue. Handles that are open keep working, but a large message still
    /// queued goes with its side file (a get of it is then `Corrupt`), as with `unlink`.
    ///
    /// # Errors
    ///
    /// [`OpenError::NotFound`], [`OpenError::Io`].
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmq::{Options, Queue};
    /// let path = std::env::temp_dir().join(format!("shmq-doc-file-{}", std::process::id()));
    /// let q = Queue::create_file(&path, &Options { capacity: 2, message_size: 64, ..Default::default() })?;
    /// q.put(vec![1u8; 10_000])?; // larger than a slot: in a side file beside `path`
    /// let other = Queue::open_file(&path)?;
    /// assert_eq!(other.get()?, vec![1u8; 10_000]);
    /// Queue::unlink_file(&path)?;
    /// assert!(!path.exists());
    /// # Ok(())
    /// # }
    /// ```
    pub fn unlink_file(path: &Path) -> Result<(), OpenError> {
        QueueSegment::unlink_file(path)
    }

    /// A queue in an anonymous shared mapping: share it with children by forking after this call.
    ///
    /// Messages larger than a slot (up to [`Options::max_message_size`]) travel in side
    /// segments in `/dev/shm` under a hidden name (`.shmq-anon-<instance id>.big.*`); they are
    /// removed when the last process holding the queue drops it (or, if every holder was
    /// killed, by the next anonymous queue made on the machine). Where no anchor can be made
    /// in `/dev/shm`, the slot size is the maximum.
    ///
    /// # Errors
    ///
    /// [`OpenError::InvalidOptions`], [`OpenError::Io`].
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let q = shmq::Queue::anonymous(&shmq::Options { capacity: 2, message_size: 8, ..Default::default() })?;
    /// q.put(b"one")?;
    /// assert_eq!((q.len(), q.is_full(), q.is_empty()), (1, false, false));
    /// # Ok(())
    /// # }
    /// ```
    pub fn anonymous(opts: &Options) -> Result<Queue, OpenError> {
        QueueSegment::anonymous(opts).map(|shm| Queue { shm })
    }

    /// Looks at a named queue without attaching to it: reads its geometry, its length, its
    /// unfinished tasks and whether it is closed, without taking its lock (so it never waits for
    /// a holder) and without changing anything (unlike [`open`](Self::open), it does not sweep
    /// the side segments that dead processes left). For tools such as `shmq gc`.
    ///
    /// The counts are read at one instant each; while other processes put and get, they are
    /// exact only when no operation is in flight.
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmq::{Options, Queue};
    /// let name = format!("shmq-doc-queue-inspect-{}", std::process::id());
    /// let q = Queue::create(&name, &Options { capacity: 4, message_size: 16, ..Default::default() })?;
    /// q.put(b"a")?;
    /// q.put(b"b")?;
    /// q.get()?;
    /// let info = Queue::inspect(&name)?;
    /// assert_eq!((info.capacity, info.len, info.unfinished, info.closed), (4, 1, 2, false));
    /// Queue::unlink(&name)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn inspect(name: &str) -> Result<QueueInfo, OpenError> {
        QueueSegment::inspect(name)
    }

    /// Removes the name. Handles that are open keep working; the memory goes when the last one
    /// is dropped.
    ///
    /// # Errors
    ///
    /// [`OpenError::NotFound`], [`OpenError::InvalidName`], [`OpenError::Io`].
    pub fn unlink(name: &str) -> Result<(), OpenError> {
        QueueSegment::unlink(name)
    }

    /// The segment behind this queue.
    pub fn segment(&self) -> &Segment {
        self.shm.segment()
    }

    /// Readiness and the event word of a get (`Take`) or a put (`Give`), for the waiting
    /// layer (select, async).
    pub(crate) fn watch(&self, dir: Dir) -> Watch<'_> {
        self.shm.watch(dir)
    }

    /// A copying get (no lock, like [`get_into`](Self::get_into)) into `buf`, which must hold
    /// [`message_size`](Self::message_size) bytes; returns the message's position (messages
    /// ever taken before it) and length. For typed readers.
    pub(crate) fn get_into_with_position(
        &self,
        buf: &mut [u8],
        wait: Wait,
    ) -> Result<(u64, usize), Fail> {
        self.port().get_into_with_position(buf, wait)
    }

    /// The queue's one direction of messages.
    #[inline]
    pub(crate) fn port(&self) -> Port<'_> {
        self.shm.port()
    }

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

    /// Test hook (feature `test-hooks`): copies the front message as a lock-free get does,
    /// and returns it without taking it (no CAS of `head`); the caller then stops for good, as
    /// a consumer killed mid-copy.
    #[cfg(feature = "test-hooks")]
    #[doc(hidden)]
    pub fn copy_and_stop(&self) -> Option<Vec<u8>> {
        self.port().copy_and_stop()
    }

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

    /// Marks one task done (Python's `task_done`).
    ///
    /// # Errors
    ///
    /// [`TaskDoneError::NoUnfinishedTasks`] if every put is already done; nothing changes.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmq::{Options, Queue, TaskDoneError};
    /// let q = Queue::anonymous(&Options { capacity: 2, message_size: 8, ..Default::default() })?;
    /// q.put(b"job")?;
    /// assert_eq!(q.unfinished(), 1);
    /// q.get()?;
    /// assert_eq!(q.unfinished(), 1); // taken, but not done yet
    /// q.task_done()?;
    /// q.join()?; // returns at once: nothing unfinished
    /// assert_eq!(q.task_done(), Err(TaskDoneError::NoUnfinishedTasks));
    /// # Ok(())
    /// # }
    /// ```
    pub fn task_done(&self) -> Result<(), TaskDoneError> {
        match self.port().task_done(1) {
            Ok(_) => Ok(()),
            Err(Ok(_)) => Err(TaskDoneError::NoUnfinishedTasks),
            Err(Err(f)) => Err(TaskDoneError::Corrupt(f.to_string())),
        }
    }

    /// Puts minus tasks done: how many tasks are unfinished.
    pub fn unfinished(&self) -> u64 {
        self.port().unfinished()
    }

    fn join_impl(&self, wait: Wait) -> Result<(), JoinError> {
        self.port().join(wait).map_err(|f| match f {
            Fail::WouldBlock => JoinError::Timeout,
            other => JoinError::Corrupt(other.to_string()),
        })
    }

    /// Waits until every task is done (Python's `join`).
    ///
    /// A task is done only when some process calls [`task_done`](Self::task_done) for it. A
    /// consumer killed between its `get` and its `task_done` leaves that task unfinished for
    /// good, and `join` then waits forever, as in Python: nothing in the queue knows what the
    /// dead consumer had finished. Use [`join_timeout`](Self::join_timeout) where consumers may
    /// die, and mark their lost tasks done (or redo them) in the recovery path.
    ///
    /// # Errors
    ///
    /// [`JoinError::Corrupt`] only.
    pub fn join(&self) -> Result<(), JoinError> {
        self.join_impl(Wait::Forever)
    }

    /// Waits at most `timeout` for every task to be done.
    ///
    /// # Errors
    ///
    /// [`JoinError::Timeout`] if tasks remain unfinished.
    pub fn join_timeout(&self, timeout: Duration) -> Result<(), JoinError> {
        self.join_impl(Wait::after(timeout))
    }

    /// Waits until `deadline` at most for every task to be done.
    ///
    /// # Errors
    ///
    /// As [`join_timeout`](Self::join_timeout).
    pub fn join_deadline(&self, deadline: Instant) -> Result<(), JoinError> {
        self.join_impl(Wait::Until(deadline))
    }

    /// Closes the queue for every process: later puts fail with `Closed` (handing the message
    /// back), gets drain what is left and then fail with `Closed`, and every blocked caller wakes
    /// up. Closing twice is harmless.
    ///
    /// # Errors
    ///
    /// Only a corrupt segment.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmq::{GetError, Options, PutError, Queue};
    /// let q = Queue::anonymous(&Options { capacity: 2, message_size: 8, ..Default::default() })?;
    /// q.put(b"last")?;
    /// q.close()?;
    /// assert!(q.is_closed());
    /// assert!(matches!(q.put(b"late"), Err(PutError::Closed(b"late"))));
    /// assert_eq!(q.get()?, b"last");
    /// assert_eq!(q.get(), Err(GetError::Closed));
    /// # Ok(())
    /// # }
    /// ```
    pub fn close(&self) -> Result<(), GetError> {
        self.port().close().map_err(get_error)
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.port().is_closed()
    }

    /// Messages in the queue now.
    pub fn len(&self) -> usize {
        self.port().len()
    }

    /// Whether no message is in the queue.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether every slot is taken.
    pub fn is_full(&self) -> bool {
        self.len() == self.capacity()
    }

    /// How many messages fit.
    pub fn capacity(&self) -> usize {
        self.shm.capacity()
    }

    /// The slot size: the largest message that travels in a slot, in bytes.
    pub fn message_size(&self) -> usize {
        self.shm.message_size()
    }

    /// The largest message a put accepts ([`Options::max_message_size`]); larger than
    /// [`message_size`](Self::message_size) for a named queue whose messages may leave the
    /// slots.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmq::{Options, Queue};
    /// let name = format!("shmq-doc-max-{}", std::process::id());
    /// let opts = Options { capacity: 4, message_size: 64, max_message_size: 1 << 20, ..Default::default() };
    /// let q = Queue::create(&name, &opts)?;
    /// assert_eq!(q.max_message_size(), 1 << 20);
    /// let big = vec![7u8; 100_000];
    /// q.put(big.clone())?;
    /// assert_eq!(q.get()?, big);
    /// assert!(matches!(q.put(vec![0u8; (1 << 20) + 1]), Err(shmq::PutError::TooLarge { .. })));
    /// Queue::unlink(&name)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn max_message_size(&self) -> usize {
        self.shm.max_message_size()
    }
}

impl fmt::Debug for Queue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("backing", self.shm.segment().backing())
            .field("capacity", &self.capacity())
            .field("message_size", &self.message_size())
            .field("len", &self.len())
            .field("unfinished", &self.unfinished())
            .field("closed", &self.is_closed())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Queue {
        /// The ring, for tests that look inside.
        pub(crate) fn ring(&self) -> crate::ring::Ring<'_> {
            self.shm.ring()
        }
    }
    use std::sync::Arc;

    fn q(capacity: usize, message_size: usize) -> Queue {
        Queue::anonymous(&Options {
            capacity,
            message_size,
            ..Default::default()
        })
        .unwrap()
    }

    use crate::test_util::within_watchdog;

    #[test]
    fn puts_take_no_ring_lock_even_one_held_by_a_live_owner() {
        let q = q(8, 8);
        // Pid 1 (with start time 0, "unknown") exists in every PID namespace: the lock looks
        // held by a live process that never lets go, as a forged word or a stuck peer makes it.
        let forged = crate::sync::owner_word(1, 0);
        crate::sync::scribble(&q.ring().control().lock.0, forged, 0);
        let (q, put, with, many, timeout) = within_watchdog(move || {
            let put = q.try_put(b"x");
            let with = q.try_put_with(|b| {
                b[0] = 1;
                1
            });
            let many = q.try_put_many(&[b"a", b"b"]);
            let timeout = q.put_timeout(b"t", Duration::from_millis(20));
            (q, put, with, many, timeout)
        });
        assert!(put.is_ok(), "{put:?}");
        assert!(with.is_ok(), "{with:?}");
        assert_eq!(many.ok(), Some(2));
        assert!(timeout.is_ok(), "{timeout:?}");
        assert_eq!(q.len(), 5);
        crate::sync::scribble(&q.ring().control().lock.0, 0, 0);
        assert_eq!(q.get().unwrap(), b"x");
        assert_eq!(q.get().unwrap(), [1]);
    }

    #[test]
    fn puts_register_once_and_a_full_registry_reclaims_the_dead_or_falls_back_to_the_lock() {
        use crate::sync::atomic::Ordering::SeqCst;
        let q = Arc::new(q(8, 8));
        let me = std::process::id();
        // A fresh thread (an empty per-thread cache) registers this process once.
        let q2 = Arc::clone(&q);
        std::thread::spawn(move || {
            q2.put(b"a").unwrap();
            q2.put(b"b").unwrap();
        })
        .join()
        .unwrap();
        let ring = q.ring();
        let mine = |ring: &crate::ring::Ring<'_>| {
            ring.participants()
                .iter()
                .filter(|p| p.id.load(SeqCst) as u32 == me)
                .count()
        };
        assert_eq!(mine(&ring), 1);
        // Every entry taken by a live process (pid 1, start unknown): puts go under the lock.
        for p in ring.participants() {
            p.id.store(1, SeqCst);
            p.start.store(0, SeqCst);
        }
        let q2 = Arc::clone(&q);
        std::thread::spawn(move || q2.put(b"c").unwrap())
            .join()
            .unwrap();
        assert_eq!(mine(&ring), 0);
        // Entry 5 names a dead process (pid 1 with another start time) that left a claim:
        // the next registration voids the claim, frees the entry and takes it.
        ring.participants()[5].start.store(u64::MAX, SeqCst);
        let pos = ring.core().claim_and_die(b"dead", 6).unwrap();
        let q2 = Arc::clone(&q);
        std::thread::spawn(move || q2.put(b"d").unwrap())
            .join()
            .unwrap();
        assert_eq!(ring.participants()[5].id.load(SeqCst) as u32, me);
        assert!(
            ring.core()
                .holds(pos, crate::lockfree::Core::void_word(pos))
        );
        let got: Vec<Vec<u8>> = (0..4).map(|_| q.get().unwrap()).collect();
        assert_eq!(got, [b"a", b"b", b"c", b"d"]);
        assert_eq!(q.try_get(), Err(TryGetError::Empty));
        assert_eq!(q.unfinished(), 4, "the voided claim is no unfinished task");
    }

    #[test]
    fn a_read_that_panics_takes_nothing() {
        let q = q(4, 8);
        q.put_many(&[&b"a"[..], b"bb", b"ccc"]).unwrap();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            q.get_with(|_| panic!("reader fails"))
        }));
        assert!(r.is_err());
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            q.get_many_with(3, |m| assert_ne!(m, b"bb"))
        }));
        assert!(r.is_err());
        assert_eq!(q.len(), 3);
        assert_eq!(q.get_many(3).unwrap(), [&b"a"[..], b"bb", b"ccc"]);
    }

    #[test]
    fn get_with_reads_in_place_and_waits_for_a_message() {
        let q = Arc::new(q(2, 16));
        let q2 = Arc::clone(&q);
        let t = std::thread::spawn(move || q2.get_with(|m| m.to_vec()).unwrap());
        q.put(b"in place").unwrap();
        assert_eq!(t.join().unwrap(), b"in place");
        assert!(q.is_empty());
        assert_eq!(q.try_get_with(|m| m.len()), Err(TryGetError::Empty));
    }

    #[test]
    fn queue_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Queue>();
    }

    #[test]
    fn invalid_options_are_refused() {
        for (c, m) in [(0, 8), (8, 0), (usize::MAX, 8), (8, usize::MAX)] {
            let e = Queue::anonymous(&Options {
                capacity: c,
                message_size: m,
                ..Default::default()
            })
            .unwrap_err();
            assert!(matches!(e, OpenError::InvalidOptions(_)), "{c} {m}: {e}");
        }
        let e = Queue::anonymous(&Options {
            mode: 0o4777,
            ..Default::default()
        })
        .unwrap_err();
        assert!(matches!(e, OpenError::InvalidOptions(_)));
    }

    #[test]
    fn a_blocked_get_is_woken_by_a_put_from_another_thread() {
        let q = Arc::new(q(1, 8));
        let q2 = Arc::clone(&q);
        let t = std::thread::spawn(move || q2.get());
        std::thread::sleep(Duration::from_millis(50));
        q.put(b"x").unwrap();
        assert_eq!(t.join().unwrap().unwrap(), b"x");
    }

    #[test]
    fn close_wakes_blocked_getters_and_putters() {
        let q = Arc::new(q(1, 8));
        let getter = {
            let q = Arc::clone(&q);
            std::thread::spawn(move || q.get())
        };
        std::thread::sleep(Duration::from_millis(30));
        q.close().unwrap();
        assert_eq!(getter.join().unwrap(), Err(GetError::Closed));

        let q = Arc::new(self::q(1, 8));
        q.put(b"a").unwrap();
        let putter = {
            let q = Arc::clone(&q);
            std::thread::spawn(move || q.put(b"b").map_err(|e| e.is_closed()))
        };
        std::thread::sleep(Duration::from_millis(30));
        q.close().unwrap();
        assert_eq!(putter.join().unwrap(), Err(true));
    }

    #[test]
    fn join_waits_for_task_done_from_another_thread() {
        let q = Arc::new(q(2, 8));
        q.put(b"a").unwrap();
        assert_eq!(
            q.join_timeout(Duration::from_millis(20)),
            Err(JoinError::Timeout)
        );
        let q2 = Arc::clone(&q);
        let worker = std::thread::spawn(move || {
            q2.get().unwrap();
            std::thread::sleep(Duration::from_millis(30));
            q2.task_done().unwrap();
        });
        q.join().unwrap();
        assert_eq!(q.unfinished(), 0);
        worker.join().unwrap();
    }

    #[test]
    fn try_put_many_reports_full_with_zero() {
        let q = q(2, 8);
        assert_eq!(q.try_put_many(&[b"1", b"2", b"3"]).unwrap(), 2);
        assert!(matches!(q.try_put_many(&[b"4"]), Err(TryPutError::Full(0))));
        assert_eq!(q.try_put_many::<&[u8]>(&[]).unwrap(), 0);
        assert_eq!(q.try_get_many(1).unwrap(), vec![b"1".to_vec()]);
    }

    #[test]
    fn a_batch_with_a_message_over_the_maximum_puts_nothing() {
        // Slots of 8 bytes, too small for a large message's descriptor: the maximum is 8.
        let q = Arc::new(q(2, 8));
        assert_eq!(q.max_message_size(), 8);
        let over = [0u8; 9];
        let batch: [&[u8]; 2] = [b"ok", &over];
        match q.put_many(&batch) {
            Err(PutError::TooLarge { msg, len, max }) => assert_eq!((msg, len, max), (0, 9, 8)),
            other => panic!("put_many: {other:?}"),
        }
        assert_eq!(q.len(), 0, "put_many put nothing");
        match q.try_put_many(&batch) {
            Err(TryPutError::TooLarge { msg, len, max }) => {
                assert_eq!((msg, len, max), (0, 9, 8))
            }
            other => panic!("try_put_many: {other:?}"),
        }
        assert_eq!(q.len(), 0, "try_put_many put nothing");
        // Longer than the queue: refused at once, not after filling it and waiting for room.
        let q2 = Arc::clone(&q);
        let r = within(
            "put_many of more than fits, over the maximum last",
            move || {
                let long: [&[u8]; 4] = [b"a", b"b", b"c", &[7u8; 10]];
                q2.put_many(&long).map_err(|e| match e {
                    PutError::TooLarge { msg, len, .. } => (msg, len),
                    other => panic!("{other:?}"),
                })
            },
        );
        assert_eq!(r, Err((0, 10)));
        assert_eq!(q.len(), 0);
        // Checked before Closed, as a single put is.
        q.close().unwrap();
        assert!(matches!(
            q.try_put_many(&batch),
            Err(TryPutError::TooLarge { msg: 0, .. })
        ));
    }

    /// Runs `f` on a thread and waits at most 20 s for it (a hang fails instead of blocking).
    fn within<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(f()));
        rx.recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("{what} did not return"))
    }

    #[test]
    fn closed_wins_over_full_on_every_put_path() {
        let q = Arc::new(q(1, 8));
        q.put(b"x").unwrap();
        q.close().unwrap();
        assert!(matches!(q.try_put(b"y"), Err(TryPutError::Closed(_))));
        assert!(matches!(
            q.try_put_with(|_| 1),
            Err(TryPutError::Closed(()))
        ));
        assert!(matches!(
            q.try_put_many(&[b"y"]),
            Err(TryPutError::Closed(0))
        ));
        assert!(matches!(
            q.put_timeout(b"y", Duration::from_millis(10)),
            Err(PutTimeoutError::Closed(_))
        ));
        let q2 = Arc::clone(&q);
        let r = within("put_with on a closed, full queue", move || {
            q2.put_with(|_| 1).map_err(|e| e.is_closed())
        });
        assert_eq!(r, Err(true));
        let q2 = Arc::clone(&q);
        let r = within("put_many on a closed, full queue", move || {
            q2.put_many(&[b"y"]).map_err(|e| e.is_closed())
        });
        assert_eq!(r, Err(true));
        assert_eq!(q.get().unwrap(), b"x");
    }

    #[test]
    fn positions_near_the_end_of_u64_are_corrupt_and_nothing_is_acknowledged() {
        let q = q(4, 8);
        let ctrl = q.ring().control();
        for pos in [u64::MAX, u64::MAX - 1] {
            ctrl.head
                .0
                .store(pos, crate::sync::atomic::Ordering::SeqCst);
            ctrl.tail
                .0
                .tail
                .store(u64::MAX, crate::sync::atomic::Ordering::SeqCst);
            ctrl.counters
                .0
                .done
                .store(u64::MAX, crate::sync::atomic::Ordering::SeqCst);
            ctrl.tail
                .0
                .head_seen
                .store(pos, crate::sync::atomic::Ordering::SeqCst);
            assert!(matches!(q.try_put(b"x"), Err(TryPutError::Corrupt { .. })));
            assert!(matches!(q.put(b"x"), Err(PutError::Corrupt { .. })));
            assert!(matches!(
                q.try_put_many(&[b"x"]),
                Err(TryPutError::Corrupt { .. })
            ));
            assert!(matches!(
                q.try_put_with(|_| 1),
                Err(TryPutError::Corrupt { .. })
            ));
            assert_eq!(q.unfinished(), 0);
        }
        ctrl.head.0.store(3, crate::sync::atomic::Ordering::SeqCst);
        ctrl.tail
            .0
            .tail
            .store(1, crate::sync::atomic::Ordering::SeqCst);
        assert!(matches!(q.try_get(), Err(TryGetError::Corrupt(_))));
    }

    #[test]
    fn many_with_zero_asks_for_nothing_and_gets_it() {
        let q = q(4, 8);
        q.put_many(&[b"a", b"b"]).unwrap();
        q.put_many::<&[u8]>(&[]).unwrap();
        assert_eq!(q.try_put_many::<&[u8]>(&[]).unwrap(), 0);
        assert_eq!(q.try_get_many(0).unwrap(), Vec::<Vec<u8>>::new());
        assert_eq!(q.get_many(0).unwrap(), Vec::<Vec<u8>>::new());
        assert_eq!(
            q.get_many_with(0, |_| panic!("nothing to read")).unwrap(),
            0
        );
        assert_eq!(q.len(), 2);
        q.close().unwrap();
        assert_eq!(q.try_get_many(0).unwrap(), Vec::<Vec<u8>>::new());
        assert_eq!(q.get_many(0).unwrap(), Vec::<Vec<u8>>::new());
        assert_eq!(q.get_many(5).unwrap(), vec![b"a".to_vec(), b"b".to_vec()]);
        assert_eq!(q.try_get_many(0).unwrap(), Vec::<Vec<u8>>::new());
        assert_eq!(q.try_get_many(1), Err(TryGetError::Closed));
    }

    #[test]
    fn open_and_get_do_not_wait_for_a_held_lock() {
        struct Unlink(String);
        impl Drop for Unlink {
            fn drop(&mut self) {
                let _ = Queue::unlink(&self.0);
            }
        }
        let name = format!("shmq-test-lf-open-{}", std::process::id());
        let _unlink = Unlink(name.clone());
        let q = Queue::create(
            &name,
            &Options {
                capacity: 2,
                message_size: 8,
                ..Default::default()
            },
        )
        .unwrap();
        q.put(b"m").unwrap();
        let (held_tx, held_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let holder = {
            let name = name.clone();
            std::thread::spawn(move || {
                let q = Queue::open(&name).unwrap();
                let ring = q.ring();
                let _guard = ring.control().lock.0.lock().unwrap();
                held_tx.send(()).unwrap();
                let _ = stop_rx.recv();
            })
        };
        held_rx.recv().unwrap();
        let n = name.clone();
        let got = within(
            "open and get while a live thread holds the lock",
            move || {
                let q = Queue::open(&n).map_err(|e| e.to_string())?;
                q.get().map_err(|e| e.to_string())
            },
        );
        stop_tx.send(()).unwrap();
        holder.join().unwrap();
        assert_eq!(got.unwrap(), b"m");
    }
}
