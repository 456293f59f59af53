//! Waiting on several queues and pipe ends at once, across processes, with no thread per
//! object: [`Select`].
//!
//! Every ring has two event-count words, `items` ("a message was published") and `free` ("a
//! slot was freed"), each followed by `notify` whenever its condition changes (see
//! `docs/protocol.md`). A select announces itself on the word of every operation
//! (`Event::prepare`, which sets the word's WAITING bit), re-checks every condition, and then
//! sleeps on all the words in one `futex_waitv` call (Linux ≥ 5.16): any producer or consumer
//! that changes one of them wakes it. On an older kernel it sleeps in 1 ms slices instead.
//!
//! The references are Python's `multiprocessing.connection.wait` (wait for several objects,
//! with a timeout, and get the ready ones) and crossbeam-channel's `Select` (register
//! operations, get the index of a ready one, then perform it). As in crossbeam's `ready`, a
//! ready operation is a hint: another process may take the message first, so perform it with
//! a `try_*` call and select again if it reports `Empty`/`Full`.

use std::cell::Cell;
use std::fmt;
use std::time::{Duration, Instant};

use crate::pipe::PipeEnd;
use crate::port::Wait;
use crate::port::wait::{Dir, Watch, wait_any};
use crate::queue::Queue;

/// The deadline passed before any operation of a [`Select`] was ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SelectTimeoutError;

impl fmt::Display for SelectTimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("timed out waiting on select operations")
    }
}

impl std::error::Error for SelectTimeoutError {}

/// Waits until any of several operations — a get or put on a [`Queue`], a recv or send on a
/// [`PipeEnd`] — is ready, in one thread, across processes, with a timeout.
///
/// Add operations with [`get`](Self::get), [`put`](Self::put), [`recv`](Self::recv) and
/// [`send`](Self::send); each returns the operation's index. Then [`ready`](Self::ready)
/// (or [`ready_timeout`](Self::ready_timeout), [`ready_deadline`](Self::ready_deadline),
/// [`try_ready`](Self::try_ready)) returns the index of an operation that would not block: a
/// message or a free slot is there, or the operation would fail at once (closed, end-of-file,
/// wrong direction). Perform it with the `try_*` call: another process may have been faster,
/// and then it reports `Empty`/`Full` and you select again. Successive calls start their
/// search after the last index returned, so a busy object does not starve the others.
/// [`ready_list`](Self::ready_list) returns every ready index, like Python's
/// `multiprocessing.connection.wait`.
///
/// Sleeping costs no thread per object: one `futex_waitv` call waits on the event words of
/// every ring (Linux ≥ 5.16; older kernels poll in 1 ms slices).
///
/// # Examples
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use shmq::{Options, Pipe, Queue, Select};
/// use std::time::Duration;
///
/// let opts = Options { capacity: 4, message_size: 16, ..Default::default() };
/// let jobs = Queue::anonymous(&opts)?;
/// let urgent = Queue::anonymous(&opts)?;
/// let name = format!("shmq-doc-select-{}", std::process::id());
/// let (ctl, ctl_peer) = Pipe::create(&name, &opts)?;
///
/// let mut sel = Select::new();
/// let j = sel.get(&jobs);
/// let u = sel.get(&urgent);
/// let c = sel.recv(&ctl);
/// assert_eq!(sel.ready_timeout(Duration::from_millis(10)), Err(shmq::SelectTimeoutError));
///
/// urgent.put(b"now")?; // in another process, usually
/// assert_eq!(sel.ready()?, u);
/// assert_eq!(urgent.try_get()?, b"now");
///
/// ctl_peer.send(b"stop")?;
/// let i = sel.ready()?;
/// assert_eq!(i, c);
/// assert_ne!(i, j);
/// assert_eq!(ctl.try_recv()?, b"stop");
/// Pipe::unlink(&name)?;
/// # Ok(())
/// # }
/// ```
pub struct Select<'a> {
    watches: Vec<Watch<'a>>,
    next: Cell<usize>,
}

impl Default for Select<'_> {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Select<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ops: Vec<_> = self
            .watches
            .iter()
            .map(|w| {
                let what = if w.needs_liveness() { "pipe" } else { "queue" };
                (what, w.dir())
            })
            .collect();
        f.debug_struct("Select").field("operations", &ops).finish()
    }
}

/// The deadline of a `_timeout` call: `Wait::after`, which saturates to "forever".
fn after(d: Duration) -> Wait {
    Wait::after(d)
}

impl<'a> Select<'a> {
    /// An empty selection.
    ///
    /// # Examples
    ///
    /// ```
    /// let sel = shmq::Select::new();
    /// assert_eq!(sel.try_ready(), None);
    /// ```
    pub fn new() -> Select<'a> {
        Select {
            watches: Vec::new(),
            next: Cell::new(0),
        }
    }

    fn add(&mut self, w: Watch<'a>) -> usize {
        self.watches.push(w);
        self.watches.len() - 1
    }

    /// Adds "a get on `q` would not block"; returns its index.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let q = shmq::Queue::anonymous(&shmq::Options { capacity: 1, message_size: 8, ..Default::default() })?;
    /// let mut sel = shmq::Select::new();
    /// let i = sel.get(&q);
    /// assert_eq!(sel.try_ready(), None);
    /// q.close()?; // a get on a closed, drained queue returns at once (Closed)
    /// assert_eq!(sel.try_ready(), Some(i));
    /// # Ok(())
    /// # }
    /// ```
    pub fn get(&mut self, q: &'a Queue) -> usize {
        self.add(q.watch(Dir::Take))
    }

    /// Adds "a put on `q` would not block"; returns its index.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let q = shmq::Queue::anonymous(&shmq::Options { capacity: 1, message_size: 8, ..Default::default() })?;
    /// let mut sel = shmq::Select::new();
    /// let i = sel.put(&q);
    /// assert_eq!(sel.try_ready(), Some(i));
    /// q.put(b"x")?;
    /// assert_eq!(sel.try_ready(), None); // full
    /// # Ok(())
    /// # }
    /// ```
    pub fn put(&mut self, q: &'a Queue) -> usize {
        self.add(q.watch(Dir::Give))
    }

    /// Adds "a recv on `end` would not block" (a message, end-of-file, or the wrong direction);
    /// returns its index. A peer killed without closing is noticed within about
    /// [`LIVENESS_SLICE`](crate::LIVENESS_SLICE).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmq::{Options, Pipe};
    /// let name = format!("shmq-doc-select-recv-{}", std::process::id());
    /// let (a, b) = Pipe::create(&name, &Options { capacity: 2, message_size: 8, ..Default::default() })?;
    /// let mut sel = shmq::Select::new();
    /// let i = sel.recv(&a);
    /// b.close()?; // end-of-file is "ready": recv returns Disconnected at once
    /// assert_eq!(sel.ready()?, i);
    /// assert_eq!(a.try_recv(), Err(shmq::TryRecvError::Disconnected));
    /// Pipe::unlink(&name)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn recv(&mut self, end: &'a PipeEnd) -> usize {
        self.add(end.watch(Dir::Take))
    }

    /// Adds "a send on `end` would not block"; returns its index.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmq::{Options, Pipe};
    /// let name = format!("shmq-doc-select-send-{}", std::process::id());
    /// let (a, _b) = Pipe::create(&name, &Options { capacity: 1, message_size: 8, ..Default::default() })?;
    /// let mut sel = shmq::Select::new();
    /// let i = sel.send(&a);
    /// assert_eq!(sel.try_ready(), Some(i));
    /// a.send(b"x")?;
    /// assert_eq!(sel.try_ready(), None);
    /// Pipe::unlink(&name)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn send(&mut self, end: &'a PipeEnd) -> usize {
        self.add(end.watch(Dir::Give))
    }

    /// How many operations were added.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(shmq::Select::new().is_empty());
    /// ```
    pub fn len(&self) -> usize {
        self.watches.len()
    }

    /// Whether no operation was added.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(shmq::Select::new().len(), 0);
    /// ```
    pub fn is_empty(&self) -> bool {
        self.watches.is_empty()
    }

    fn wait(&self, wait: Wait) -> Option<usize> {
        let start = self.next.get();
        let r = wait_any(&self.watches, start, wait);
        if let Some(i) = r {
            self.next.set(i + 1);
        }
        r
    }

    /// The index of an operation that is ready now, if any.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let q = shmq::Queue::anonymous(&shmq::Options { capacity: 1, message_size: 8, ..Default::default() })?;
    /// let mut sel = shmq::Select::new();
    /// let i = sel.get(&q);
    /// q.put(b"x")?;
    /// assert_eq!(sel.try_ready(), Some(i));
    /// # Ok(())
    /// # }
    /// ```
    pub fn try_ready(&self) -> Option<usize> {
        if self.watches.is_empty() {
            return None;
        }
        self.wait(Wait::Never)
    }

    /// Waits until an operation is ready; returns its index.
    ///
    /// # Errors
    ///
    /// [`SelectTimeoutError`] only if no operation was added (it would wait forever).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let q = shmq::Queue::anonymous(&shmq::Options { capacity: 1, message_size: 8, ..Default::default() })?;
    /// let mut sel = shmq::Select::new();
    /// let i = sel.put(&q);
    /// assert_eq!(sel.ready()?, i);
    /// assert!(shmq::Select::new().ready().is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn ready(&self) -> Result<usize, SelectTimeoutError> {
        if self.watches.is_empty() {
            return Err(SelectTimeoutError);
        }
        self.wait(Wait::Forever).ok_or(SelectTimeoutError)
    }

    /// Waits until an operation is ready, for `timeout` at most.
    ///
    /// # Errors
    ///
    /// [`SelectTimeoutError`] when the time is up.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::{Duration, Instant};
    /// let q = shmq::Queue::anonymous(&shmq::Options { capacity: 1, message_size: 8, ..Default::default() })?;
    /// let mut sel = shmq::Select::new();
    /// sel.get(&q);
    /// let t = Instant::now();
    /// assert!(sel.ready_timeout(Duration::from_millis(20)).is_err());
    /// assert!(t.elapsed() >= Duration::from_millis(20));
    /// # Ok(())
    /// # }
    /// ```
    pub fn ready_timeout(&self, timeout: Duration) -> Result<usize, SelectTimeoutError> {
        self.ready_wait(after(timeout))
    }

    /// Waits until an operation is ready, until `deadline` at most.
    ///
    /// # Errors
    ///
    /// [`SelectTimeoutError`] when the deadline passes.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let q = shmq::Queue::anonymous(&shmq::Options { capacity: 1, message_size: 8, ..Default::default() })?;
    /// let mut sel = shmq::Select::new();
    /// sel.get(&q);
    /// assert!(sel.ready_deadline(std::time::Instant::now()).is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn ready_deadline(&self, deadline: Instant) -> Result<usize, SelectTimeoutError> {
        self.ready_wait(Wait::Until(deadline))
    }

    fn ready_wait(&self, wait: Wait) -> Result<usize, SelectTimeoutError> {
        if self.watches.is_empty() {
            if let Wait::Until(d) = wait {
                std::thread::sleep(d.saturating_duration_since(Instant::now()));
            }
            return Err(SelectTimeoutError);
        }
        self.wait(wait).ok_or(SelectTimeoutError)
    }

    /// Waits until at least one operation is ready, for `timeout` at most, and returns every
    /// ready index in order (empty when the time is up): Python's
    /// `multiprocessing.connection.wait(objects, timeout)`.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// let opts = shmq::Options { capacity: 1, message_size: 8, ..Default::default() };
    /// let (a, b) = (shmq::Queue::anonymous(&opts)?, shmq::Queue::anonymous(&opts)?);
    /// let mut sel = shmq::Select::new();
    /// sel.get(&a);
    /// sel.get(&b);
    /// assert!(sel.ready_list(Duration::from_millis(1)).is_empty());
    /// a.put(b"1")?;
    /// b.put(b"2")?;
    /// assert_eq!(sel.ready_list(Duration::from_secs(5)), vec![0, 1]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn ready_list(&self, timeout: Duration) -> Vec<usize> {
        if self.ready_timeout(timeout).is_err() {
            return Vec::new();
        }
        (0..self.watches.len())
            .filter(|&i| self.watches[i].ready())
            .collect()
    }
}
