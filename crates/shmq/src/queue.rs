//! The bounded multi-producer/multi-consumer queue between processes, with Python's
//! `JoinableQueue` task counter and a `close` that ends the work without sentinels.
//!
//! This is the public face: the type, its creation and state here, the put family in
//! `queue/put.rs`, the get family in `queue/get.rs`, peek and commit in `queue/peek.rs`. Each
//! method is one call into the queue's message port (`crate::port`) and one error mapper.

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

mod get;
mod peek;
mod put;
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
        crate::port::unlink(name)
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
        pub(crate) fn ring(&self) -> &crate::ring::Ring<'_> {
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
        assert_eq!(mine(ring), 1);
        // Every entry taken by a live process (pid 1, start unknown): puts go under the lock.
        for p in ring.participants() {
            p.id.store(1, SeqCst);
            p.start.store(0, SeqCst);
        }
        let q2 = Arc::clone(&q);
        std::thread::spawn(move || q2.put(b"c").unwrap())
            .join()
            .unwrap();
        assert_eq!(mine(ring), 0);
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
