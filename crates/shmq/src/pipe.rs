//! The pipe: two connected ends (Python's `multiprocessing.Pipe()`), each held by any number of
//! processes, with end-of-file once every holder of the other end is gone — closed, dropped or
//! dead.
//!
//! One segment holds a holder table and two rings (A→B and B→A; a one-way pipe has only B→A).
//! The rings are the queue's, and each direction moves messages through the same message port
//! as a queue; this file and `pipe/send.rs`, `pipe/recv.rs` are the public face. Below it,
//! `port/pipe_handle.rs` creates and opens ends and makes the pipe's ports, and
//! `port/pipe_handle/holders.rs` keeps the holder table. What the pipe adds to a queue is that
//! table:
//!
//! - Every handle registers in the table (its end, pid and the process's start time, so a
//!   recycled pid is not mistaken for a live holder) and deregisters on [`PipeEnd::close`] or
//!   drop. Table changes happen under the table's own robust mutex. A forked child holds what
//!   its parent held from the fork on, and [`PipeEnd::hand_off`] keeps an end open for a process
//!   that will attach by name (`holders` has the table, the tokens and the fork handlers).
//! - When the last holder of an end leaves (and no hand-off token or fork reservation keeps it
//!   open), its bit in the `gone` word is set for good and the
//!   rings learn it at once through their flags: `SENDERS_GONE` on the ring that end sent on,
//!   `RECEIVERS_GONE` on the ring it received from. Those flags wake every blocked caller on the
//!   other side: a `recv` drains what is left and then returns `Disconnected`, a `send` returns
//!   `Disconnected` with the message.
//! - A holder that died without closing is found by a sweep of the table, which drops entries
//!   whose process no longer runs and then applies the same rule. Every operation sweeps when
//!   its handle's last sweep is older than [`LIVENESS_SLICE`] (50 ms), and blocked callers sleep
//!   in slices of that length and sweep after each one: a blocked `recv` returns `Disconnected`
//!   within about 50 ms of the death of the last peer (plus one scan of `/proc`).
//!
//! End-of-file is final: once an end is gone, [`PipeEnd::open`] of that end fails with
//! [`OpenError::Disconnected`]. The protocol is in `docs/protocol.md`, the bytes in
//! `docs/layout.md`.

mod recv;
mod send;

use std::fmt;
use std::time::{Duration, Instant};

use crate::error::{
    OpenError, RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError, TrySendError,
};
use crate::options::Options;
use crate::port::Port;
pub(crate) use crate::port::pipe_errors::{
    recv_error, recv_timeout_error, send_error, send_timeout_error, try_recv_error, try_send_error,
};
use crate::port::pipe_handle::{Direction, HandOffToken, PipeHandle, WrongDirection};
use crate::port::wait::{Dir, Watch};
use crate::port::{Fail, Wait};
use crate::segment::Segment;

pub use crate::port::pipe_handle::{End, PeerHolders, PipeInfo};
pub use crate::port::wait::LIVENESS_SLICE;

/// Creates pipes: a namespace for [`create`](Self::create),
/// [`create_one_way`](Self::create_one_way) and [`unlink`](Self::unlink); the ends are
/// [`PipeEnd`]s.
///
/// # Examples
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use shmq::{Options, Pipe, PipeEnd, End, RecvError};
///
/// let name = format!("shmq-doc-pipe-{}", std::process::id());
/// let (a, b) = Pipe::create(&name, &Options { capacity: 4, message_size: 64, ..Default::default() })?;
/// // Usually another process attaches to an end by name:
/// let b2 = PipeEnd::open(&name, End::B)?;
/// drop(b); // b2 still holds end B
/// a.send(b"ping")?;
/// assert_eq!(b2.recv()?, b"ping");
/// b2.send(b"pong")?;
/// b2.close()?; // the last holder of B leaves
/// assert_eq!(a.recv()?, b"pong"); // what was sent is still delivered...
/// assert_eq!(a.recv(), Err(RecvError::Disconnected)); // ...then end-of-file
/// Pipe::unlink(&name)?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub enum Pipe {}

impl Pipe {
    /// Creates a named duplex pipe and returns its two ends, `(A, B)`, both held by this process;
    /// other processes attach with [`PipeEnd::open`]. Each direction has `opts.capacity` slots of
    /// `opts.message_size` bytes.
    ///
    /// # Errors
    ///
    /// [`OpenError::InvalidOptions`], [`OpenError::InvalidName`], [`OpenError::AlreadyExists`],
    /// [`OpenError::Io`].
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmq::{Options, Pipe};
    /// let name = format!("shmq-doc-pipe-create-{}", std::process::id());
    /// let (a, b) = Pipe::create(&name, &Options { capacity: 2, message_size: 16, ..Default::default() })?;
    /// a.send(b"to b")?;
    /// b.send(b"to a")?;
    /// assert_eq!((a.recv()?, b.recv()?), (b"to a".to_vec(), b"to b".to_vec()));
    /// assert!(a.is_duplex() && a.can_send() && a.can_recv());
    /// Pipe::unlink(&name)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn create(name: &str, opts: &Options) -> Result<(PipeEnd, PipeEnd), OpenError> {
        Self::create_named(name, opts, true)
    }

    /// Creates a named one-way pipe (Python's `Pipe(duplex=False)`) and returns
    /// `(receiver, sender)`: end A only receives, end B only sends. Using the missing direction
    /// is a `WrongDirection` error.
    ///
    /// # Errors
    ///
    /// As [`create`](Self::create).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmq::{Options, Pipe, RecvError, SendError};
    /// let name = format!("shmq-doc-pipe-oneway-{}", std::process::id());
    /// let (rx, tx) = Pipe::create_one_way(&name, &Options { capacity: 2, message_size: 16, ..Default::default() })?;
    /// tx.send(b"one way")?;
    /// assert_eq!(rx.recv()?, b"one way");
    /// assert!(matches!(rx.send(b"back"), Err(SendError::WrongDirection(b"back"))));
    /// assert_eq!(tx.recv(), Err(RecvError::WrongDirection));
    /// Pipe::unlink(&name)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn create_one_way(name: &str, opts: &Options) -> Result<(PipeEnd, PipeEnd), OpenError> {
        Self::create_named(name, opts, false)
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

    fn create_named(
        name: &str,
        opts: &Options,
        duplex: bool,
    ) -> Result<(PipeEnd, PipeEnd), OpenError> {
        PipeHandle::create_named(name, opts, duplex)
            .map(|(a, b)| (PipeEnd { h: a }, PipeEnd { h: b }))
    }

    /// A pipe in an anonymous mapping, for the unit tests.
    #[cfg(test)]
    pub(crate) fn anonymous(opts: &Options, duplex: bool) -> Result<(PipeEnd, PipeEnd), OpenError> {
        PipeHandle::anonymous(opts, duplex).map(|(a, b)| (PipeEnd { h: a }, PipeEnd { h: b }))
    }
}

impl Pipe {
    /// Looks at a pipe without attaching to it (no holder is registered, nothing changes): for
    /// tools such as `shmq stat`.
    ///
    /// # Errors
    ///
    /// As [`PipeEnd::open`], except that a gone end is reported, not refused.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmq::{Options, Pipe};
    /// let name = format!("shmq-doc-inspect-{}", std::process::id());
    /// let (a, b) = Pipe::create(&name, &Options { capacity: 4, message_size: 16, ..Default::default() })?;
    /// a.send(b"x")?;
    /// let info = Pipe::inspect(&name)?;
    /// assert_eq!((info.holders, info.gone, info.queued), ([1, 1], [false, false], (Some(1), 0)));
    /// drop((a, b));
    /// assert_eq!(Pipe::inspect(&name)?.gone, [true, true]);
    /// Pipe::unlink(&name)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn inspect(name: &str) -> Result<PipeInfo, OpenError> {
        PipeHandle::inspect(name)
    }
}

/// One end of a pipe, held by this process: sends to and receives from the other end.
///
/// A handle is registered in the pipe's holder table from [`open`](Self::open) (or
/// [`Pipe::create`]) until [`close`](Self::close) or drop; any number of processes and handles
/// may hold the same end. Sends from several holders of one end never interleave: each message
/// arrives whole (unlike an OS pipe, where writes above `PIPE_BUF` may). Messages keep their
/// boundaries: an empty message is a message, and two sends never merge.
///
/// `recv` returns [`RecvError::Disconnected`] (end-of-file) once the incoming ring is empty and
/// no live holder of the other end remains; `send` returns [`SendError::Disconnected`] with the
/// message once no live holder of the other end remains. A holder killed without closing
/// counts as gone within about [`LIVENESS_SLICE`].
///
/// One handle is `Send + Sync` and serves any number of threads.
///
/// # Handing an end to a child process
///
/// Python's `parent, child = Pipe(); Process(target=f, args=(child,)).start(); child.close()`
/// works in both of its forms; in each, the parent closes its copy of the child's end at once
/// and end-of-file comes when the child closes or exits.
///
/// - **fork:** a child made by `fork()` holds every end its parent held, from the moment of the
///   fork: fork handlers reserve an entry for it in the parent and the child takes it over before
///   `fork` returns there. (A child that `exec`s keeps holding them until it exits; processes
///   started by [`std::process::Command`] without `pre_exec` are made by `posix_spawn`, which
///   runs no fork handlers, and hold nothing.)
/// - **spawn:** a child that attaches by name ([`open`](Self::open)) is handed the end with
///   [`hand_off`](Self::hand_off) before the parent closes its copy (example there).
///
/// ```standalone_crate
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use shmq::{Options, Pipe, RecvError};
///
/// let name = format!("shmq-doc-pipeend-fork-{}", std::process::id());
/// let (parent, child) = Pipe::create(&name, &Options { capacity: 4, message_size: 16, ..Default::default() })?;
/// // SAFETY: this program is single-threaded, so the child may run anything; it ends with
/// // `_exit`.
/// match unsafe { libc::fork() } {
///     -1 => return Err(std::io::Error::last_os_error().into()),
///     0 => {
///         drop(parent); // the child's copy of the parent's end
///         let ok = child.recv().map(|m| child.send(m).is_ok()).unwrap_or(false);
///         drop(child); // end-of-file for the parent
///         // SAFETY: ends the child at once.
///         unsafe { libc::_exit(if ok { 0 } else { 1 }) }
///     }
///     pid => {
///         child.close()?; // at once: the forked child holds end B
///         parent.send(b"ping")?;
///         assert_eq!(parent.recv()?, b"ping");
///         assert_eq!(parent.recv(), Err(RecvError::Disconnected));
///         let mut status = 0;
///         // SAFETY: reaps our own child; `status` outlives the call.
///         assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
///         assert_eq!(status, 0);
///     }
/// }
/// Pipe::unlink(&name)?;
/// # Ok(())
/// # }
/// ```
///
/// A pipe end has every get and put variant of a [`Queue`](crate::Queue), named `send*` for
/// `put*` and `recv*` for `get*`, on the same message port: waiting, `try_`, deadline, zero-copy
/// (`send_with`, `send_with_len`, `recv_with`, `recv_many_with`), batch (`send_many`,
/// `recv_many`) and large messages. What a queue has and a pipe end has not: the task counter
/// (`task_done`, `join`: a pipe's work ends at end-of-file), a `close` of the whole object (an
/// end closes itself; end-of-file follows when the other end's last holder leaves), peek and
/// commit (the bridge's exactly-once take, on queues), and `len` (a direction's depth is in
/// [`Pipe::inspect`]).
///
/// # Examples
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use shmq::{End, Options, Pipe, PipeEnd, TryRecvError};
///
/// let name = format!("shmq-doc-pipeend-{}", std::process::id());
/// let (a, b) = Pipe::create(&name, &Options { capacity: 4, message_size: 16, ..Default::default() })?;
/// a.send(b"")?; // an empty message is a message
/// a.send(b"x")?;
/// assert_eq!(b.recv()?, b"");
/// assert_eq!(b.recv()?, b"x");
/// assert_eq!(b.try_recv(), Err(TryRecvError::Empty));
/// drop(a); // the only holder of end A leaves
/// assert_eq!(b.try_recv(), Err(TryRecvError::Disconnected));
/// // End-of-file is final: end A cannot be opened again.
/// assert!(matches!(PipeEnd::open(&name, End::A), Err(shmq::OpenError::Disconnected(_))));
/// Pipe::unlink(&name)?;
/// # Ok(())
/// # }
/// ```
pub struct PipeEnd {
    h: PipeHandle,
}

impl PipeEnd {
    /// Attaches to end `end` of an existing named pipe and registers this handle as one of its
    /// holders.
    ///
    /// # Errors
    ///
    /// [`OpenError::NotFound`], [`OpenError::InvalidName`], [`OpenError::Incompatible`] (another
    /// kind of object, such as a queue, or another layout version), [`OpenError::Corrupt`],
    /// [`OpenError::Disconnected`] if every holder of that end has already left (end-of-file is
    /// final), [`OpenError::TooManyHolders`] if the holder table is full, [`OpenError::Busy`] if
    /// the holder table's lock stayed held by another live process for
    /// [`OPEN_LOCK_WAIT`](crate::OPEN_LOCK_WAIT) (opening never waits on a peer without bound),
    /// [`OpenError::Io`].
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmq::{End, OpenError, Options, Pipe, PipeEnd, Queue};
    /// let name = format!("shmq-doc-pipe-open-{}", std::process::id());
    /// let (_a, b) = Pipe::create(&name, &Options { capacity: 2, message_size: 8, ..Default::default() })?;
    /// let b2 = PipeEnd::open(&name, End::B)?;
    /// assert_eq!(b2.end(), End::B);
    /// b.send(b"hi")?;
    /// assert!(matches!(PipeEnd::open("shmq-doc-no-such-pipe", End::A), Err(OpenError::NotFound(_))));
    /// Pipe::unlink(&name)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn open(name: &str, end: End) -> Result<PipeEnd, OpenError> {
        PipeHandle::open(name, end).map(|h| PipeEnd { h })
    }

    /// The ring this end sends on.
    fn outgoing(&self) -> Result<Direction<'_>, WrongDirection> {
        self.h.outgoing()
    }

    /// The ring this end receives from.
    fn incoming(&self) -> Result<Direction<'_>, WrongDirection> {
        self.h.incoming()
    }

    /// Readiness and the event word of a receive (`Take`) or a send (`Give`), for the waiting
    /// layer (select, async), which sweeps the holder table between sleeps (`Recheck`) so
    /// that a peer killed without closing is noticed. A direction this end does not have is
    /// always ready (the operation reports `WrongDirection`).
    pub(crate) fn watch(&self, dir: Dir) -> Watch<'_> {
        self.h.watch(dir)
    }

    /// Runs an operation of the port over `ring` (one direction) with the pipe's waiting
    /// policy: slices of [`LIVENESS_SLICE`], sweeping the holder table after each (a failed
    /// sweep is retried after the next slice; a broken ring reports itself through the
    /// operation).
    fn with_port<R>(
        &self,
        dir: Direction<'_>,
        run: impl FnOnce(&Port<'_>) -> Result<R, Fail>,
    ) -> Result<R, Fail> {
        self.h.with_port(dir, run)
    }

    /// Hands this end over to a process that will attach to it by name: leaves a hand-off token
    /// in the holder table that keeps the end open — although this handle may be closed at once
    /// — until a [`PipeEnd::open`] of this end takes it over, or until `within` has passed. This
    /// is the spawn form of Python's `Process(target=f, args=(child,)).start(); child.close()`:
    /// hand off, start the child (which calls `PipeEnd::open(name, end)`), close.
    ///
    /// Each token serves one `open`; hand off once per child. A token that no process takes
    /// expires at its deadline and then counts as a holder that left (end-of-file, as usual). It
    /// does not depend on this process: it stays valid until its deadline if this process exits
    /// or dies first. [`HandOff::cancel`] withdraws it (say, when the child could not be started).
    /// A forked child needs no token: it holds every end its parent held from the fork on.
    ///
    /// # Errors
    ///
    /// [`OpenError::TooManyHolders`] if the holder table is full, [`OpenError::Disconnected`] if
    /// the end is gone (possible only for a handle that a forked child could not take over),
    /// [`OpenError::Busy`] as for [`open`](Self::open), [`OpenError::Corrupt`].
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmq::{End, Options, Pipe, PipeEnd, RecvError};
    /// use std::time::Duration;
    ///
    /// let name = format!("shmq-doc-hand-off-{}", std::process::id());
    /// let (parent, child) = Pipe::create(&name, &Options { capacity: 4, message_size: 16, ..Default::default() })?;
    /// let token = child.hand_off(Duration::from_secs(30))?;
    /// // Start the child process here, e.g. `Command::new(worker).arg(&name).spawn()?`, then
    /// // close the parent's copy of the child's end at once:
    /// child.close()?;
    /// assert_eq!(token.end(), End::B);
    ///
    /// // In the child process, whenever it gets there: the token becomes its holder entry.
    /// let mine = PipeEnd::open(&name, End::B)?;
    /// mine.send(b"hello")?;
    /// drop(mine); // the child exits
    ///
    /// assert_eq!(parent.recv()?, b"hello");
    /// assert_eq!(parent.recv(), Err(RecvError::Disconnected));
    /// Pipe::unlink(&name)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn hand_off(&self, within: Duration) -> Result<HandOff, OpenError> {
        self.h.hand_off(within).map(|token| HandOff { token })
    }

    /// Who keeps the other end open, for callers that wait for those processes' exits (with
    /// pidfds, say) instead of sweeping on a timer to notice a peer killed without closing:
    /// sweeps the holder table now (a holder found dead is removed, and the other end is gone
    /// if that was its last entry: the rings' flags change and waiters wake), then lists the
    /// other end's live holder processes and the earliest deadline of its handles in transit
    /// ([`PeerHolders`]).
    ///
    /// The list is a snapshot. It changes without any of its processes exiting only when a
    /// handle is added (an `open`, a hand-off token taken over, a holder's fork) or released;
    /// a release wakes every waiter on the pipe's rings (their event words change), so a
    /// watcher that asks again when a listed process exits, when a ring's event word changes
    /// and at `in_transit_until` sees end-of-file as soon as the last holder is gone. A
    /// watcher should not trust a listed process whose start time differs from the one its
    /// pid has now: that pid was recycled, and the holder is dead.
    ///
    /// # Errors
    ///
    /// Only a corrupt segment ([`RecvError::Corrupt`]).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmq::substrate::liveness::process_start_time;
    /// use shmq::{Options, Pipe};
    /// use std::time::{Duration, Instant};
    /// let name = format!("shmq-doc-pipe-peers-{}", std::process::id());
    /// let (a, b) = Pipe::create(&name, &Options { capacity: 2, message_size: 8, ..Default::default() })?;
    /// let me = (std::process::id(), process_start_time(std::process::id())?);
    /// let peers = a.peer_holders()?;
    /// assert_eq!((peers.processes, peers.in_transit_until, peers.gone), (vec![me], None, false));
    /// let token = b.hand_off(Duration::from_secs(30))?;
    /// b.close()?;
    /// let peers = a.peer_holders()?;
    /// assert!(peers.processes.is_empty() && !peers.gone);
    /// let until = peers.in_transit_until.expect("the token is in transit");
    /// assert!(until > Instant::now() + Duration::from_secs(29));
    /// assert!(until < Instant::now() + Duration::from_secs(31));
    /// token.cancel()?;
    /// assert!(a.peer_holders()?.gone);
    /// Pipe::unlink(&name)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn peer_holders(&self) -> Result<PeerHolders, RecvError> {
        self.h.peer_holders().map_err(recv_error)
    }

    /// Releases this holder of the end (as dropping the handle does). If it was the last live
    /// holder, the end is gone: the other side's `recv` drains what is left and then returns
    /// `Disconnected`, its `send` returns `Disconnected`, and blocked callers wake at once.
    ///
    /// # Errors
    ///
    /// Only a corrupt segment ([`RecvError::Corrupt`]); the handle is released regardless.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmq::{Options, Pipe, SendError};
    /// let name = format!("shmq-doc-pipe-close-{}", std::process::id());
    /// let (a, b) = Pipe::create(&name, &Options { capacity: 2, message_size: 8, ..Default::default() })?;
    /// a.close()?;
    /// assert!(matches!(b.send(b"x"), Err(SendError::Disconnected(_))));
    /// Pipe::unlink(&name)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn close(self) -> Result<(), RecvError> {
        self.h.release().map_err(recv_error)
    }

    /// Which end this handle holds.
    pub fn end(&self) -> End {
        self.h.end()
    }

    /// Whether the pipe is duplex (both ends send and receive).
    pub fn is_duplex(&self) -> bool {
        self.h.is_duplex()
    }

    /// Whether this end can send (false only for end A of a one-way pipe).
    pub fn can_send(&self) -> bool {
        self.outgoing().is_ok()
    }

    /// Whether this end can receive (false only for end B of a one-way pipe).
    pub fn can_recv(&self) -> bool {
        self.incoming().is_ok()
    }

    /// How many messages each direction holds.
    pub fn capacity(&self) -> usize {
        self.h.capacity()
    }

    /// The slot size: the largest message that travels in a slot, in bytes.
    pub fn message_size(&self) -> usize {
        self.h.message_size()
    }

    /// The largest message a send accepts ([`Options::max_message_size`]); larger messages
    /// than [`message_size`](Self::message_size) travel in side segments (`docs/protocol.md`,
    /// "Large messages").
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmq::{Options, Pipe};
    /// let name = format!("shmq-doc-pipe-max-{}", std::process::id());
    /// let (a, b) = Pipe::create(&name, &Options { capacity: 2, message_size: 64, ..Default::default() })?;
    /// assert_eq!(a.max_message_size(), 1 << 30);
    /// let big = vec![3u8; 200_000];
    /// a.send(big.clone())?;
    /// assert_eq!(b.recv()?, big);
    /// Pipe::unlink(&name)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn max_message_size(&self) -> usize {
        self.h.max_message_size()
    }

    /// The segment behind this pipe.
    pub fn segment(&self) -> &Segment {
        self.h.segment()
    }
}

/// A hand-off token, made by [`PipeEnd::hand_off`]: it keeps an end open for a process that
/// will attach to it by name, until one does or its deadline passes. Dropping this value leaves
/// the token in place (that is the point: the handle that made it is usually closed next).
pub struct HandOff {
    token: HandOffToken,
}

impl HandOff {
    /// The end that was handed off.
    pub fn end(&self) -> End {
        self.token.end()
    }

    /// When the token expires if no process has taken it (`None`: too far to represent).
    pub fn deadline(&self) -> Option<Instant> {
        self.token.deadline()
    }

    /// Withdraws the token if no process has taken it yet; returns whether it was still there.
    /// If it was the end's last entry, the end is gone.
    ///
    /// # Errors
    ///
    /// Only a corrupt segment ([`OpenError::Corrupt`]).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmq::{End, Options, Pipe, PipeEnd, TryRecvError};
    /// use std::time::Duration;
    /// let name = format!("shmq-doc-hand-off-cancel-{}", std::process::id());
    /// let (a, b) = Pipe::create(&name, &Options { capacity: 2, message_size: 8, ..Default::default() })?;
    /// let token = b.hand_off(Duration::from_secs(60))?;
    /// drop(b);
    /// assert_eq!(a.try_recv(), Err(TryRecvError::Empty)); // the token holds end B
    /// // Starting the child failed: withdraw the token, and end B is gone at once.
    /// assert!(token.cancel()?);
    /// assert_eq!(a.try_recv(), Err(TryRecvError::Disconnected));
    /// Pipe::unlink(&name)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn cancel(self) -> Result<bool, OpenError> {
        self.token.cancel()
    }
}

impl fmt::Debug for HandOff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandOff")
            .field("backing", self.token.segment().backing())
            .field("end", &self.end())
            .field("deadline", &self.deadline())
            .finish()
    }
}

impl fmt::Debug for PipeEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipeEnd")
            .field("backing", self.h.segment().backing())
            .field("end", &self.end())
            .field("duplex", &self.is_duplex())
            .field("capacity", &self.capacity())
            .field("message_size", &self.message_size())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout;
    use crate::port::pipe_handle::holders::{Kind as EntryKind, Table, Tag};
    use crate::sync::atomic::Ordering::SeqCst;
    use std::sync::Arc;

    impl PipeEnd {
        /// The holder table, for tests that look inside.
        pub(crate) fn table(&self) -> Table<'_> {
            self.h.table()
        }

        /// The holder table's lock, for tests that look inside.
        fn table_lock(&self) -> &crate::sync::RawMutex {
            self.h.table_lock()
        }
    }

    fn pipe(duplex: bool) -> (PipeEnd, PipeEnd) {
        let opts = Options {
            capacity: 4,
            message_size: 8,
            ..Default::default()
        };
        Pipe::anonymous(&opts, duplex).unwrap()
    }

    /// Registers a holder of `end` with a given pid and start time, as another process would.
    fn fake_holder(e: &PipeEnd, end: End, pid: u32, start: u64) -> usize {
        let t = e.table();
        let tag = Tag::new(end, EntryKind::Holder, pid, start).unwrap();
        t.update(|t, _| t.insert(tag, 0)).unwrap().unwrap()
    }

    use crate::test_util::within_watchdog;

    /// An owner word naming pid 1 (start time 0, "unknown"), which exists in every PID
    /// namespace: the lock looks held by a live process that never lets go.
    fn live_forged_owner() -> u64 {
        crate::sync::owner_word(1, 0)
    }

    /// `peer_holders` sweeps, then lists the other end's live holders only (a dead or
    /// recycled-pid entry is removed, this end's entries are not listed), its handles in
    /// transit as a deadline, and end-of-file once nothing holds it; a holder's release that
    /// leaves the end held still changes the rings' event words (wakes their waiters).
    #[test]
    fn peer_holders_lists_the_live_holders_of_the_other_end() {
        let name = format!("shmq-test-pipe-peer-holders-{}", std::process::id());
        let _unlink = crate::test_util::UnlinkOnDrop(name.clone());
        let opts = Options {
            capacity: 4,
            message_size: 8,
            ..Default::default()
        };
        let (a, b) = Pipe::create(&name, &opts).unwrap();
        let me = std::process::id();
        let start = crate::liveness::process_start_time(me).unwrap();
        let b2 = PipeEnd::open(&name, End::B).unwrap();
        fake_holder(&a, End::B, me, start + 1); // this pid, another start time: recycled
        fake_holder(&a, End::A, 1, 0); // a live holder of this end: not listed
        let peers = a.peer_holders().unwrap();
        assert_eq!(peers.processes, vec![(me, start), (me, start)]);
        assert_eq!(
            (peers.in_transit_until, peers.gone, peers.swept),
            (None, false, true)
        );
        assert_eq!(
            Pipe::inspect(&name).unwrap().holders,
            [2, 2],
            "the dead entry was swept"
        );

        let word = |e: &PipeEnd| e.watch(Dir::Take).event().unwrap().0.load(SeqCst);
        let (wa, wb) = (word(&a), word(&b));
        drop(b2);
        assert_ne!(word(&a), wa, "a release wakes the receivers of end A");
        assert_ne!(word(&b), wb, "and of end B");
        assert_eq!(a.peer_holders().unwrap().processes, vec![(me, start)]);

        let before = Instant::now();
        let token = b.hand_off(Duration::from_secs(60)).unwrap();
        drop(b);
        let peers = a.peer_holders().unwrap();
        assert!(peers.processes.is_empty() && !peers.gone);
        let until = peers.in_transit_until.unwrap();
        assert!(
            until >= before + Duration::from_secs(59)
                && until <= Instant::now() + Duration::from_secs(60)
        );
        assert!(token.cancel().unwrap());
        let peers = a.peer_holders().unwrap();
        assert_eq!(
            (peers.processes.len(), peers.in_transit_until, peers.gone),
            (0, None, true)
        );
    }

    #[test]
    fn open_and_hand_off_report_busy_on_a_holder_lock_held_by_a_live_owner() {
        let name = format!("shmq-test-pipe-open-busy-{}", std::process::id());
        let (a, b) = Pipe::create(
            &name,
            &Options {
                capacity: 2,
                message_size: 8,
                ..Default::default()
            },
        )
        .unwrap();
        let lock = a.table_lock();
        crate::sync::scribble(lock, live_forged_owner(), 0);
        let name_again = name.clone();
        let (a, open, hand_off) = within_watchdog(move || {
            let open = PipeEnd::open(&name, End::B);
            let _ = Pipe::unlink(&name);
            let hand_off = a.hand_off(Duration::from_secs(5)).map(|_| ());
            (a, open, hand_off)
        });
        // Freed before the assertions: a failed one must not hang in the ends' drops.
        crate::sync::scribble(a.table_lock(), 0, 0);
        drop((a, b));
        // Removed again at the end: the name must not outlive the test whatever ran meanwhile.
        let _ = Pipe::unlink(&name_again);
        assert!(matches!(open, Err(OpenError::Busy(_))), "{open:?}");
        assert!(matches!(hand_off, Err(OpenError::Busy(_))), "{hand_off:?}");
    }

    #[test]
    fn a_send_takes_no_ring_lock_even_one_held_by_a_live_owner() {
        let (a, b) = pipe(true);
        let ring = a.outgoing().ok().unwrap();
        crate::sync::scribble(&ring.0.control().lock.0, live_forged_owner(), 0);
        let (a, sent, timed) = within_watchdog(move || {
            let sent = a.try_send(b"x");
            let timed = a.send_timeout(b"t", Duration::from_millis(20));
            (a, sent, timed)
        });
        let ring = a.outgoing().ok().unwrap();
        crate::sync::scribble(&ring.0.control().lock.0, 0, 0);
        assert!(sent.is_ok(), "{sent:?}");
        assert!(timed.is_ok(), "{timed:?}");
        assert_eq!(b.recv().unwrap(), b"x");
        assert_eq!(b.recv().unwrap(), b"t");
    }

    #[test]
    fn pipe_end_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<PipeEnd>();
    }

    #[test]
    fn a_recycled_pid_does_not_keep_a_dead_holder_alive() {
        let me = std::process::id();
        let start = crate::liveness::process_start_time(me).unwrap();

        // Control: a holder of B with this process's real start time keeps B alive.
        let (a, b) = pipe(true);
        let live = fake_holder(&a, End::B, me, start);
        drop(b);
        assert_eq!(a.try_recv(), Err(TryRecvError::Empty));
        assert!(a.try_send(b"x").is_ok());
        assert_ne!(a.table().tag(live).load(SeqCst), 0);

        // The same pid with another start time: the process that registered is dead and its
        // pid was handed to a new one. It must not count.
        let (a, b) = pipe(true);
        let stale = fake_holder(&a, End::B, me, start + 1);
        drop(b);
        assert_eq!(a.try_recv(), Err(TryRecvError::Disconnected));
        assert!(matches!(
            a.try_send(b"x"),
            Err(TrySendError::Disconnected(_))
        ));
        assert_eq!(
            a.table().tag(stale).load(SeqCst),
            0,
            "the stale entry is freed"
        );
    }

    #[test]
    fn a_holder_with_an_exited_pid_is_swept_by_a_blocked_receiver() {
        // A child process that has exited and been reaped: its pid no longer exists.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead_pid = child.id();
        child.wait().unwrap();
        let (a, b) = pipe(true);
        fake_holder(&a, End::B, dead_pid, 0);
        // Release b's entry without waking anyone through its own drop: the only holder of B
        // left is the dead one, which only a sweep can find.
        b.table().tag(b.h.entry().unwrap()).store(0, SeqCst);
        // Not a Timeout: the blocked receiver found the dead holder by itself.
        assert_eq!(
            a.recv_timeout(Duration::from_secs(10)),
            Err(RecvTimeoutError::Disconnected)
        );
        drop(b);
    }

    #[test]
    fn messages_keep_boundaries_and_are_drained_before_end_of_file() {
        let (a, b) = pipe(true);
        for m in [&b""[..], b"a", b"bc", b"12345678"] {
            b.send(m).unwrap();
        }
        b.close().unwrap();
        assert_eq!(a.recv().unwrap(), b"");
        assert_eq!(a.recv().unwrap(), b"a");
        let mut buf = [0u8; 1];
        assert_eq!(
            a.recv_into(&mut buf),
            Err(RecvError::BufferTooSmall {
                needed: 2,
                available: 1
            })
        );
        assert_eq!(a.try_recv().unwrap(), b"bc");
        assert!(a.poll(Duration::ZERO).unwrap());
        assert_eq!(a.recv().unwrap(), b"12345678");
        assert_eq!(a.poll(Duration::ZERO), Err(RecvError::Disconnected));
        assert_eq!(a.recv(), Err(RecvError::Disconnected));
        assert!(matches!(a.send(b"x"), Err(SendError::Disconnected(_))));
    }

    #[test]
    fn close_wakes_a_blocked_receiver_and_a_blocked_sender() {
        let (a, b) = pipe(true);
        let a = Arc::new(a);
        let a2 = Arc::clone(&a);
        let receiver = std::thread::spawn(move || a2.recv());
        for i in 0..4u8 {
            a.send([i]).unwrap(); // fills A→B
        }
        let a3 = Arc::clone(&a);
        let sender = std::thread::spawn(move || a3.send(b"blocked").map_err(|e| e.into_inner()));
        std::thread::sleep(Duration::from_millis(100));
        b.close().unwrap();
        assert_eq!(receiver.join().unwrap(), Err(RecvError::Disconnected));
        assert_eq!(sender.join().unwrap(), Err(b"blocked"));
    }

    #[test]
    fn one_way_pipes_refuse_the_missing_direction() {
        let (rx, tx) = pipe(false);
        assert!(!rx.is_duplex() && rx.can_recv() && !rx.can_send());
        assert!(tx.can_send() && !tx.can_recv());
        assert!(matches!(rx.send(b"x"), Err(SendError::WrongDirection(_))));
        assert!(matches!(
            rx.try_send(b"x"),
            Err(TrySendError::WrongDirection(_))
        ));
        assert!(matches!(
            rx.send_timeout(b"x", Duration::ZERO),
            Err(SendTimeoutError::WrongDirection(_))
        ));
        assert_eq!(tx.recv(), Err(RecvError::WrongDirection));
        assert_eq!(tx.try_recv(), Err(TryRecvError::WrongDirection));
        assert_eq!(
            tx.recv_timeout(Duration::ZERO),
            Err(RecvTimeoutError::WrongDirection)
        );
        assert_eq!(tx.recv_into(&mut []), Err(RecvError::WrongDirection));
        assert_eq!(tx.poll(Duration::ZERO), Err(RecvError::WrongDirection));
        assert_eq!(tx.try_recv_into(&mut []), Err(TryRecvError::WrongDirection));
        assert_eq!(tx.recv_with(|_| ()), Err(RecvError::WrongDirection));
        assert_eq!(tx.recv_many(1), Err(RecvError::WrongDirection));
        assert_eq!(tx.recv_many_with(1, |_| ()), Err(RecvError::WrongDirection));
        assert!(matches!(
            rx.send_with(|_| 0),
            Err(SendError::WrongDirection(()))
        ));
        assert!(matches!(
            rx.send_many(&[b"x"]),
            Err(SendError::WrongDirection(0))
        ));
        assert!(matches!(
            rx.try_send_with_len(1, |_| ()),
            Err(TrySendError::WrongDirection(()))
        ));
        tx.send(b"fine").unwrap();
        assert_eq!(rx.recv().unwrap(), b"fine");
        drop(rx);
        assert!(matches!(tx.send(b"x"), Err(SendError::Disconnected(_))));
    }

    /// Every get and put variant a queue has, on a pipe end, through the same port: waits,
    /// `try_` forms, batches (all-or-nothing on a length over the maximum), zero-copy reads and
    /// large messages, and end-of-file for each receive once the other end is gone.
    #[test]
    fn a_pipe_end_has_the_queues_variants_and_they_end_on_end_of_file() {
        let opts = Options {
            capacity: 2,
            message_size: 32,
            max_message_size: 1 << 20,
            ..Default::default()
        };
        let name = format!("shmq-test-pipe-variants-{}", std::process::id());
        // Unlinked at the end, or when an assertion fails first (`Queue::unlink` removes any
        // segment of that name, with its side segments).
        let _unlink = crate::test_util::UnlinkOnDrop(name.clone());
        let (a, b) = Pipe::create(&name, &opts).unwrap();
        let mut buf = [0u8; 32];
        assert_eq!(b.try_recv_into(&mut buf), Err(TryRecvError::Empty));
        let soon = Instant::now() + Duration::from_millis(20);
        assert_eq!(
            b.recv_into_deadline(&mut buf, soon),
            Err(RecvTimeoutError::Timeout)
        );
        a.try_send_with(|w| {
            w[..2].copy_from_slice(b"hi");
            2
        })
        .unwrap();
        a.try_send_with_len(70_000, |w| w.fill(3)).unwrap();
        assert!(matches!(
            a.try_send_with(|_| 0),
            Err(TrySendError::Full(()))
        ));
        assert_eq!(b.try_recv_into(&mut buf), Ok(2));
        assert_eq!(&buf[..2], b"hi");
        // A large message is read in place, whole.
        assert_eq!(b.recv_with(|m| (m.len(), m[69_999])), Ok((70_000, 3)));
        assert!(matches!(
            a.send_many(&[&b"ok"[..], &[0u8; (1 << 20) + 1][..]]),
            Err(SendError::TooLarge { msg: 0, .. })
        ));
        assert_eq!(b.try_recv_many(4), Ok(vec![]), "the batch put nothing");
        assert!(matches!(a.try_send_many(&[b"1", b"2", b"3"]), Ok(2)));
        assert_eq!(b.recv_many(8).unwrap(), [b"1".to_vec(), b"2".to_vec()]);
        a.send_with_len(9, |w| w.fill(9)).unwrap();
        let mut seen = Vec::new();
        assert_eq!(b.recv_many_with(8, |m| seen.push(m.to_vec())), Ok(1));
        assert_eq!(seen, [vec![9u8; 9]]);
        drop(a);
        assert_eq!(b.recv_with(|_| ()), Err(RecvError::Disconnected));
        assert_eq!(b.recv_many(1), Err(RecvError::Disconnected));
        assert_eq!(b.try_recv_many(1), Err(TryRecvError::Disconnected));
        assert_eq!(b.try_recv_into(&mut buf), Err(TryRecvError::Disconnected));
    }

    #[test]
    fn an_owner_that_died_holding_the_table_lock_is_repaired_after() {
        let (a, b) = pipe(true);
        let t = a.table();
        // Like a process killed half-way through registering: `start` written, `tag` not, and
        // the lock still held when its thread ends.
        let half = (0..layout::PIPE_HOLDERS)
            .find(|&i| t.tag(i).load(SeqCst) == 0)
            .unwrap();
        std::thread::scope(|s| {
            s.spawn(|| {
                let guard = t.lock(None).unwrap();
                t.deadline(half).store(12345, SeqCst);
                std::mem::forget(guard);
            });
        });
        // The next table operation (b's release) repairs the lock and goes on; the half-written
        // entry never counted as a holder.
        drop(b);
        assert_eq!(a.try_recv(), Err(TryRecvError::Disconnected));
        assert_eq!(t.held(), End::A.bit());
        assert!(!t.lock(None).unwrap().owner_died());
    }

    #[test]
    fn the_holder_table_has_a_limit_and_entries_are_reused() {
        let (a, _b) = pipe(true);
        let me = std::process::id();
        let start = crate::liveness::process_start_time(me).unwrap();
        let t = a.table();
        let tag = Tag::new(End::A, EntryKind::Holder, me, start).unwrap();
        let taken: Vec<usize> = (2..layout::PIPE_HOLDERS)
            .map(|_| t.update(|t, _| t.insert(tag, 0)).unwrap().unwrap())
            .collect();
        assert_eq!(t.update(|t, _| t.insert(tag, 0)).unwrap(), None);
        t.tag(taken[0]).store(0, SeqCst);
        assert_eq!(t.update(|t, _| t.insert(tag, 0)).unwrap(), Some(taken[0]));
    }
}
