//! Readiness file descriptors: an eventfd per watched handle (`Connection.fileno()`,
//! `Queue.fileno()`, and the write-side and join waits of the coroutines), readable exactly
//! while the watched operation would return at once, so that `select`, `selectors`,
//! `multiprocessing.connection.wait` and an asyncio loop's `add_reader` can wait on shmq
//! objects next to sockets and process sentinels.
//!
//! **How the fd follows the ring.** The fd holds a count (readable) only while the
//! operation is ready. [`ReadyFd::refresh`] (called by `fileno()`, before every asyncio wait and
//! after every take that may have drained the ring) checks the condition: ready, the fd is set;
//! not ready, the fd is cleared and a readiness future of the `shmq` crate
//! (`get_ready_async` and friends) is armed. That future registers with shmq's per-process
//! notifier thread, which sleeps in `futex_waitv` on the ring's event word and calls this
//! module's waker when the word changes; the waker polls the future again and sets the fd once
//! it completes. So no thread per fd, and an idle queue's fd costs nothing.
//!
//! **A peer killed without closing.** A pipe end's fd also turns readable when every holder of
//! the other end is gone, which a process killed with SIGKILL never announces. The armed future
//! does not sweep the holder table (sweeping 20 times a second per idle connection would cost
//! about 0.3 ms of CPU a second each); instead one liveness thread per process waits for the
//! holders to exit. It asks each receive fd's pipe who holds the other end
//! ([`PipeEnd::peer_holders`], which sweeps first), opens a pidfd per holder process and
//! checks after `pidfd_open` that the pid still has the holder's start time (a recycled pid
//! means the holder is dead: it looks again at once), and sleeps in `poll` on the pidfds and
//! an eventfd of its own. It looks at a pipe again (another sweep, which turns a dead last
//! holder into end-of-file and sets the fd) when:
//!
//! - a holder process exits (its pidfd turns readable);
//! - the ring's event word changed without a message (the armed future woke and is still
//!   pending): a holder released its handle, which wakes the rings' waiters, so one that
//!   handed the end on (say, to a child it forked) is followed by the new holders; at most
//!   once per [`LIVENESS_SLICE`] per fd;
//! - a future is armed again after a message (a holder may have left while none was armed),
//!   then once more a slice later, after which an idle fd is left alone;
//! - the pipe has handles in transit (hand-off tokens, fork reservations): at their deadline,
//!   and every [`PEER_CHECK`] until then, since taking one over announces nothing;
//! - a holder cannot be watched (`pidfd_open` failed: a kernel before 5.3, a seccomp filter, no
//!   fds left; or `SHMQ_PY_NO_PIDFD` is set): every [`PEER_CHECK`], as a poll.
//!
//! So a killed peer shows as end-of-file on the fd within a thread wake-up and a sweep (a
//! closed or exited one at once, through the ring's flags), and the liveness thread of an idle
//! process sleeps (what still runs is shmq's notifier, which re-arms its wait on the armed
//! fds' words every 200 ms).
//!
//! **Fork.** The fd, the armed future and the notifier registration belong to the process
//! that made them ([`ReadyFd::pid`]). A forked child must not touch them (the parent's
//! notifier thread may have held their lock at the fork), so the Python half makes a new
//! `ReadyFd` in the child, and dropping or closing a `ReadyFd` in another process than its
//! maker's leaves its state alone (its copy of the fd stays open in the child until exit).
//! Likewise the liveness thread: a child's first receive fd starts its own, and the parent's
//! list, pidfds and eventfd are left as they are.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::os::fd::{AsRawFd, OwnedFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::task::{Context, Wake, Waker};
use std::time::{Duration, Instant};

use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use rustix::event::{EventfdFlags, PollFd, PollFlags, Timespec, eventfd};
use rustix::process::{Pid, PidfdFlags, pidfd_open};

use shmq::substrate::liveness::process_start_time;
use shmq::{LIVENESS_SLICE, PipeEnd, Queue};

type ReadyFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// How often the liveness thread looks at a pipe whose holders it cannot wait for (no pidfd)
/// or that has handles in transit (see the module's docs).
pub(crate) const PEER_CHECK: Duration = Duration::from_secs(1);

/// What a readiness fd watches.
#[derive(Clone)]
pub(crate) enum Source {
    /// A message to get (or the queue closed).
    Get(Arc<Queue>),
    /// A free slot (or the queue closed).
    Put(Arc<Queue>),
    /// A message to receive (or end-of-file).
    Recv(Arc<PipeEnd>),
    /// A free slot to send into (or the other end gone).
    Send(Arc<PipeEnd>),
}

impl Source {
    /// A future that completes when the operation is ready; it owns its handle.
    fn future(&self) -> ReadyFuture {
        match self.clone() {
            Source::Get(q) => Box::pin(async move { q.get_ready_async().await }),
            Source::Put(q) => Box::pin(async move { q.put_ready_async().await }),
            // The liveness thread watches the peer of an idle receive fd (cheaply, slowly).
            Source::Recv(e) => Box::pin(async move { e.recv_ready_async(false).await }),
            // A send fd is armed only while a coroutine waits on a full pipe: watch the peer.
            Source::Send(e) => Box::pin(async move { e.send_ready_async(true).await }),
        }
    }

    /// Whether the operation would return now (never waits; a pipe end sweeps its holder
    /// table when due). End-of-file, a shut-down queue and a wrong direction count as ready:
    /// the operation returns at once, with its error.
    fn ready_now(&self) -> bool {
        match self {
            Source::Get(q) => !q.is_empty() || q.is_closed(),
            Source::Put(q) => !q.is_full() || q.is_closed(),
            Source::Recv(e) => e.recv_ready(),
            Source::Send(e) => e.send_ready(),
        }
    }
}

/// The state the notifier's waker and the Python calls share.
struct State {
    /// The eventfd; `None` once closed.
    efd: Option<OwnedFd>,
    /// The readiness future, registered with the notifier, while the fd is clear.
    armed: Option<ReadyFuture>,
    /// Coroutines waiting on a coroutine fd ([`ReadyFd::begin_wait`]); 0 for a `fileno()` fd.
    waiters: usize,
}

/// One readiness fd; the notifier's waker.
struct Shared {
    source: Source,
    state: Mutex<State>,
    /// Whether the eventfd holds a count (is readable). Changed under `state`'s lock.
    set: AtomicBool,
    /// How many readiness futures were armed (registered with the notifier) for this fd.
    arms: AtomicU64,
    /// The liveness thread's eventfd (receive fds only).
    poke: OnceLock<Arc<OwnedFd>>,
    /// The holders of the other end may have changed since the liveness thread looked.
    peers_stale: AtomicBool,
    /// The liveness thread will look at this fd again without a poke.
    peers_watched: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes the fd readable (under the lock).
    fn signal(&self, st: &State) {
        if let Some(fd) = &st.efd
            && !self.set.swap(true, SeqCst)
        {
            let _ = rustix::io::write(fd, &1u64.to_ne_bytes());
        }
    }

    /// Makes the fd not readable (under the lock).
    fn clear(&self, st: &State) {
        if let Some(fd) = &st.efd
            && self.set.swap(false, SeqCst)
        {
            let mut buf = [0u8; 8];
            let _ = rustix::io::read(fd, &mut buf);
        }
    }

    /// Polls the armed future (arming one first if none is); sets the fd if it completed.
    fn poll_armed(self: &Arc<Self>, st: &mut State) -> bool {
        if st.efd.is_none() {
            return false;
        }
        let waker = Waker::from(Arc::clone(self));
        let fut = st.armed.get_or_insert_with(|| {
            self.arms.fetch_add(1, SeqCst);
            self.armed_new();
            self.source.future()
        });
        if fut
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_ready()
        {
            st.armed = None;
            self.signal(st);
            true
        } else {
            self.clear(st);
            false
        }
    }

    /// Re-checks the condition: sets the fd if ready, else clears it and makes sure a future
    /// is armed. Returns whether the operation is ready.
    fn refresh(self: &Arc<Self>) -> bool {
        let mut st = self.lock();
        if st.efd.is_none() {
            return false;
        }
        if self.source.ready_now() {
            st.armed = None;
            self.signal(&st);
            true
        } else if st.armed.is_some() {
            // Armed and registered: the notifier sets the fd when the word changes.
            self.clear(&st);
            false
        } else {
            self.poll_armed(&mut st)
        }
    }
}

impl Shared {
    /// The liveness thread's check of an armed receive fd: `recv_ready` sees end-of-file once
    /// a sweep found the peer gone, and the fd is set.
    fn check_peer(self: &Arc<Self>) {
        let Source::Recv(e) = &self.source else {
            return;
        };
        let mut st = self.lock();
        if st.efd.is_none() || st.armed.is_none() {
            return;
        }
        if e.recv_ready() {
            st.armed = None;
            self.signal(&st);
        }
    }

    /// Tells the liveness thread that the holders of this fd's pipe may have changed.
    fn poke_liveness(&self) {
        self.peers_stale.store(true, SeqCst);
        if let Some(fd) = self.poke.get() {
            let _ = rustix::io::write(&**fd, &1u64.to_ne_bytes());
        }
    }

    /// A receive future was armed: if the liveness thread does not plan to look at this fd
    /// again (it went idle), poke it, since a holder may have left while no future was armed
    /// (a release wakes armed futures only).
    fn armed_new(&self) {
        if matches!(self.source, Source::Recv(_)) && !self.peers_watched.swap(true, SeqCst) {
            self.poke_liveness();
        }
    }
}

/// The receive fds the liveness thread watches, and the process that made the list.
struct Watched {
    pid: u32,
    fds: Arc<Mutex<Vec<Weak<Shared>>>>,
    /// The eventfd that wakes the thread: a new fd, or holders that may have changed.
    poke: Arc<OwnedFd>,
}

/// This process's list (a forked child makes its own, with its own thread: the parent's
/// thread may have held the list's lock at the fork). Locked only by threads holding the GIL,
/// so never during a fork made from Python.
static WATCHED: Mutex<Option<Watched>> = Mutex::new(None);

/// Adds a receive fd to the liveness thread's list, starting the thread on first use in each
/// process.
fn watch_peer(shared: &Arc<Shared>) {
    let mut g = WATCHED.lock().unwrap_or_else(|p| p.into_inner());
    let pid = std::process::id();
    if g.as_ref().is_none_or(|w| w.pid != pid) {
        if let Some(old) = g.take() {
            // The parent's list: never touched in the child.
            std::mem::forget(old.fds);
            std::mem::forget(old.poke);
        }
        let Ok(poke) = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK) else {
            // Without the thread, a killed peer shows on the fd at the next refresh only.
            return;
        };
        let poke = Arc::new(poke);
        let fds: Arc<Mutex<Vec<Weak<Shared>>>> = Arc::default();
        let (list, wake) = (Arc::clone(&fds), Arc::clone(&poke));
        let started = std::thread::Builder::new()
            .name("shmq-py-liveness".into())
            .spawn(move || Liveness::default().run(&list, &wake));
        if started.is_err() {
            return;
        }
        *g = Some(Watched { pid, fds, poke });
    }
    if let Some(w) = g.as_ref() {
        let _ = shared.poke.set(Arc::clone(&w.poke));
        w.fds
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Arc::downgrade(shared));
        shared.peers_watched.store(true, SeqCst);
        shared.poke_liveness();
    }
}

/// Whether the liveness thread may use pidfds: not when `SHMQ_PY_NO_PIDFD` is set (as if
/// the kernel had no `pidfd_open`; for tests of the fallback).
fn pidfds_allowed() -> bool {
    static ALLOWED: OnceLock<bool> = OnceLock::new();
    *ALLOWED.get_or_init(|| std::env::var_os("SHMQ_PY_NO_PIDFD").is_none())
}

/// A holder process: pid and start time (0: unknown).
type Holder = (u32, u64);

/// What the liveness thread knows of one receive fd.
struct Known {
    fd: Weak<Shared>,
    /// The holders of the other end at the last look.
    holders: Vec<Holder>,
    /// When it looked last, and the fd's arm count then.
    looked: Instant,
    arms: u64,
    /// When to look again without being woken (`None`: only when woken).
    again: Option<Instant>,
}

/// The liveness thread's state (see the module's docs).
#[derive(Default)]
struct Liveness {
    /// Per receive fd, by the address of its [`Shared`].
    known: HashMap<usize, Known>,
    /// A pidfd per watched holder process.
    pidfds: HashMap<Holder, OwnedFd>,
    /// Holders that no pidfd watches (`pidfd_open` failed: old kernel, seccomp, no fds left;
    /// or its pidfd said it exited and the table still lists it as live, as `kill(pid, 0)`
    /// does for a zombie where `/proc` is hidden): their fds are looked at every
    /// [`PEER_CHECK`].
    unwatched: HashSet<Holder>,
    /// Holders whose pidfd said they exited.
    exited: HashSet<Holder>,
}

impl Liveness {
    fn run(mut self, list: &Mutex<Vec<Weak<Shared>>>, poke: &OwnedFd) -> ! {
        let mut exited: HashSet<Holder> = HashSet::new();
        loop {
            let fds: Vec<Arc<Shared>> = {
                let mut l = list.lock().unwrap_or_else(|p| p.into_inner());
                l.retain(|w| w.strong_count() > 0);
                l.iter().filter_map(Weak::upgrade).collect()
            };
            self.known.retain(|_, k| k.fd.strong_count() > 0);
            let now = Instant::now();
            for s in &fds {
                self.look(s, now, &exited);
            }
            self.watch_holders();
            exited.clear();
            let timeout = self
                .known
                .values()
                .filter_map(|k| k.again)
                .min()
                .map(|t| t.saturating_duration_since(Instant::now()));
            let mut polled: Vec<PollFd<'_>> = Vec::with_capacity(1 + self.pidfds.len());
            polled.push(PollFd::new(poke, PollFlags::IN));
            let ids: Vec<Holder> = self.pidfds.keys().copied().collect();
            for id in &ids {
                polled.push(PollFd::new(&self.pidfds[id], PollFlags::IN));
            }
            let ts = timeout.map(|d| Timespec {
                tv_sec: d.as_secs().min(i64::MAX as u64) as i64,
                tv_nsec: i64::from(d.subsec_nanos()),
            });
            if rustix::event::poll(&mut polled, ts.as_ref()).is_err() {
                // (EINTR; ENOMEM) Look again after a pause, never in a busy loop.
                drop(polled);
                std::thread::sleep(LIVENESS_SLICE);
                continue;
            }
            let fired: Vec<bool> = polled.iter().map(|p| !p.revents().is_empty()).collect();
            drop(polled);
            if fired[0] {
                let mut buf = [0u8; 8];
                let _ = rustix::io::read(poke, &mut buf);
            }
            for (id, f) in ids.iter().zip(&fired[1..]) {
                if *f {
                    // The process exited: its pidfd has said all it will.
                    self.pidfds.remove(id);
                    exited.insert(*id);
                    self.exited.insert(*id);
                }
            }
        }
    }

    /// Looks at the holders of `s`'s pipe again if due: new, poked, a holder exited, or its
    /// time came. The look sweeps the holder table, so a dead holder is found and end-of-file
    /// reaches the fd.
    fn look(&mut self, s: &Arc<Shared>, now: Instant, exited: &HashSet<Holder>) {
        let Source::Recv(end) = &s.source else {
            return;
        };
        let key = Arc::as_ptr(s) as usize;
        let k = self.known.entry(key).or_insert_with(|| Known {
            fd: Arc::downgrade(s),
            holders: Vec::new(),
            looked: now,
            arms: u64::MAX,
            again: Some(now),
        });
        // Poked: at most once per LIVENESS_SLICE (a busy pipe with several readers wakes
        // armed futures often), else at the end of that slice.
        let mut due =
            k.again.is_some_and(|t| t <= now) || k.holders.iter().any(|h| exited.contains(h));
        if s.peers_stale.load(SeqCst) {
            let earliest = k.looked + LIVENESS_SLICE;
            if earliest <= now || k.arms == u64::MAX {
                due = true;
            } else {
                k.again = Some(k.again.map_or(earliest, |t| t.min(earliest)));
            }
        }
        if !due {
            return;
        }
        s.peers_stale.store(false, SeqCst);
        let arms = s.arms.load(SeqCst);
        let mut again: Option<Instant> = None;
        let mut soon = |t: Instant| again = Some(again.map_or(t, |a: Instant| a.min(t)));
        match end.peer_holders() {
            Ok(p) => {
                k.holders = p.processes;
                k.holders.sort_unstable();
                k.holders.dedup();
                if let Some(t) = p.in_transit_until {
                    // A handle in transit becomes a holder that no event announces: look when
                    // it expires, and every PEER_CHECK until then.
                    soon(t.min(now + PEER_CHECK));
                }
                if !p.swept {
                    soon(now + LIVENESS_SLICE);
                }
            }
            Err(_) => {
                // A corrupt segment: the fd's own calls report it; keep looking slowly.
                k.holders.clear();
                soon(now + PEER_CHECK);
            }
        }
        if arms != k.arms && k.arms != u64::MAX {
            // Armed again since the last look: a holder may have left while no future was
            // armed. Look once more a slice later; an idle fd stops there.
            soon(now + LIVENESS_SLICE);
        }
        if k.holders.iter().any(|h| self.unwatched.contains(h)) {
            soon(now + PEER_CHECK);
        }
        k.looked = now;
        k.arms = arms;
        k.again = again;
        if again.is_none() {
            s.peers_watched.store(false, SeqCst);
            if s.arms.load(SeqCst) != arms {
                // Armed meanwhile, without a poke (it saw `peers_watched` still set).
                s.peers_watched.store(true, SeqCst);
                k.again = Some(now + LIVENESS_SLICE);
            }
        } else {
            s.peers_watched.store(true, SeqCst);
        }
        s.check_peer();
    }

    /// Opens a pidfd for every holder the fds' pipes have (checking that the pid still names
    /// that process), and closes those of holders no pipe has any more.
    fn watch_holders(&mut self) {
        let wanted: HashSet<Holder> = self
            .known
            .values()
            .flat_map(|k| k.holders.iter().copied())
            .collect();
        self.pidfds.retain(|h, _| wanted.contains(h));
        self.unwatched.retain(|h| wanted.contains(h));
        self.exited.retain(|h| wanted.contains(h));
        for h in &self.exited {
            // Exited, yet listed as live after a sweep: no new pidfd (it would fire at once,
            // again and again); look every PEER_CHECK until the table lets it go.
            self.unwatched.insert(*h);
        }
        let mut gone = Vec::new();
        for &h in &wanted {
            if self.pidfds.contains_key(&h) || self.unwatched.contains(&h) {
                continue;
            }
            let Some(pid) = i32::try_from(h.0).ok().and_then(Pid::from_raw) else {
                gone.push(h);
                continue;
            };
            let opened = if pidfds_allowed() {
                pidfd_open(pid, PidfdFlags::empty())
            } else {
                Err(rustix::io::Errno::NOSYS)
            };
            match opened {
                // The pidfd names whatever process has the pid now: the holder only if its
                // start time is the holder's (0: unknown; an unreadable /proc: the pid alone).
                Ok(fd) => match (h.1, process_start_time(h.0)) {
                    (0, _) | (_, Err(_)) => {
                        self.pidfds.insert(h, fd);
                    }
                    (start, Ok(now)) if now == start => {
                        self.pidfds.insert(h, fd);
                    }
                    _ => gone.push(h), // the pid was recycled: the holder is dead
                },
                Err(rustix::io::Errno::SRCH) => gone.push(h),
                Err(_) => {
                    self.unwatched.insert(h);
                }
            }
        }
        // A holder that died between the look and here: look again at once (after a slice,
        // so that a sweep that cannot see it dead yet is no busy loop).
        let now = Instant::now();
        for k in self.known.values_mut() {
            if k.holders.iter().any(|h| gone.contains(h)) {
                k.again = Some(now + Duration::from_millis(5));
            }
            if k.holders.iter().any(|h| self.unwatched.contains(h)) {
                let t = now + PEER_CHECK;
                k.again = Some(k.again.map_or(t, |a| a.min(t)));
            }
        }
    }
}

impl Wake for Shared {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    /// Called by the notifier thread (outside its lock) when the watched word changed, or
    /// at a liveness slice: poll the armed future again.
    fn wake_by_ref(self: &Arc<Self>) {
        let mut st = self.lock();
        if st.armed.is_some() && !self.poll_armed(&mut st) && matches!(self.source, Source::Recv(_))
        {
            // The word changed but no message came: maybe a holder of the other end left
            // (a release wakes the rings' waiters), so the liveness thread looks again.
            drop(st);
            self.poke_liveness();
        }
    }
}

/// A readiness file descriptor of a queue or pipe end (see the module's docs).
#[pyclass(frozen, module = "shmq._shmq")]
pub(crate) struct ReadyFd {
    shared: Arc<Shared>,
    fd: i32,
    pid: u32,
    closed: AtomicBool,
}

impl ReadyFd {
    pub(crate) fn make(source: Source) -> PyResult<ReadyFd> {
        let efd = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)
            .map_err(|e| PyOSError::new_err(format!("eventfd: {e}")))?;
        let fd = efd.as_raw_fd();
        let shared = Arc::new(Shared {
            source,
            state: Mutex::new(State {
                efd: Some(efd),
                armed: None,
                waiters: 0,
            }),
            set: AtomicBool::new(false),
            arms: AtomicU64::new(0),
            poke: OnceLock::new(),
            peers_stale: AtomicBool::new(false),
            peers_watched: AtomicBool::new(false),
        });
        // (A write-only end's receive fd is always readable: nothing to watch.)
        if matches!(&shared.source, Source::Recv(e) if e.can_recv()) {
            watch_peer(&shared);
        }
        Ok(ReadyFd {
            shared,
            fd,
            pid: std::process::id(),
            closed: AtomicBool::new(false),
        })
    }

    fn mine(&self) -> bool {
        self.pid == std::process::id()
    }

    fn live(&self) -> PyResult<()> {
        if self.closed.load(SeqCst) {
            return Err(PyOSError::new_err("handle is closed"));
        }
        if !self.mine() {
            return Err(PyOSError::new_err(
                "this readiness fd belongs to the parent process (made before a fork)",
            ));
        }
        Ok(())
    }
}

#[pymethods]
impl ReadyFd {
    /// Re-checks the condition and returns the fd (readable while the operation is ready).
    fn fileno(&self) -> PyResult<i32> {
        self.live()?;
        self.shared.refresh();
        Ok(self.fd)
    }

    /// Re-checks the condition (sets or clears the fd); returns whether it is ready.
    fn refresh(&self) -> PyResult<bool> {
        self.live()?;
        Ok(self.shared.refresh())
    }

    /// Polls (yielding the CPU between checks, holding the GIL) up to `seconds` until the
    /// operation is ready; returns whether it is. Does not touch the fd. For the short wait before a
    /// coroutine falls back to the event loop: a peer in another process often answers within
    /// microseconds, sooner than a wake-up through the notifier and the fd.
    fn spin(&self, seconds: f64) -> PyResult<bool> {
        self.live()?;
        let until = std::time::Instant::now() + Duration::from_secs_f64(seconds.clamp(0.0, 0.01));
        loop {
            if self.shared.source.ready_now() {
                return Ok(true);
            }
            if std::time::Instant::now() >= until {
                return Ok(false);
            }
            // Yield rather than spin: on a busy machine the peer may need this CPU to answer
            // (the blocking calls poll the same way before they sleep).
            std::thread::yield_now();
        }
    }

    /// A coroutine starts waiting on this fd (a coroutine fd: one that only coroutines wait
    /// on): counts it, re-checks the condition and returns whether the operation is ready
    /// (the fd is set) or arms the fd (the notifier sets it). Pair with `end_wait`.
    fn begin_wait(&self) -> PyResult<bool> {
        self.live()?;
        self.shared.lock().waiters += 1;
        Ok(self.shared.refresh())
    }

    /// A coroutine's wait on this fd ended. When none waits any more, the fd stops watching
    /// until the next `begin_wait`: the armed future is dropped (the notifier forgets it) and
    /// the fd cleared, so messages that pass while no coroutine waits (taken by the coroutine's
    /// own attempts) cost no wake-up of the notifier and no re-arming.
    fn end_wait(&self) {
        if self.closed.load(SeqCst) || !self.mine() {
            return;
        }
        let armed = {
            let mut st = self.shared.lock();
            st.waiters = st.waiters.saturating_sub(1);
            if st.waiters > 0 {
                return;
            }
            self.shared.clear(&st);
            st.armed.take()
        };
        // Outside the lock: dropping the future deregisters it from the notifier.
        drop(armed);
    }

    /// After a take (or a take that found nothing) by this process: clears the fd if the
    /// ring is drained now, by this take or by another consumer (cheap while the fd is not
    /// set).
    pub(crate) fn after_take(&self) {
        if self.shared.set.load(SeqCst) && !self.closed.load(SeqCst) && self.mine() {
            self.shared.refresh();
        }
    }

    /// The fd's number, without re-checking (see [`fileno`](Self::fileno)).
    #[getter]
    fn fd(&self) -> i32 {
        self.fd
    }

    /// How many times this fd armed a readiness future (registered with the notifier, which
    /// then wakes for it): for tests and diagnostics.
    #[getter]
    fn arms(&self) -> u64 {
        self.shared.arms.load(Relaxed)
    }

    /// The process that made this fd (a forked child makes its own).
    #[getter]
    fn pid(&self) -> u32 {
        self.pid
    }

    #[getter]
    fn closed(&self) -> bool {
        self.closed.load(SeqCst)
    }

    /// Closes the fd and drops the armed future (idempotent). In a forked child, leaves the
    /// parent's state alone.
    fn close(&self) {
        if self.closed.swap(true, SeqCst) || !self.mine() {
            return;
        }
        let (armed, efd) = {
            let mut st = self.shared.lock();
            (st.armed.take(), st.efd.take())
        };
        // Outside the lock: dropping the future deregisters it from the notifier.
        drop(armed);
        drop(efd);
    }
}

impl Drop for ReadyFd {
    fn drop(&mut self) {
        if self.mine() {
            self.close();
        } else {
            // Made before a fork: the parent's notifier may have held the state's lock at the
            // fork, so the child never touches it (a leak of one fd, until exit).
            std::mem::forget(Arc::clone(&self.shared));
        }
    }
}
