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
//! the other end is gone, which a process killed with SIGKILL never announces: someone must
//! sweep the holder table. The armed future does not (sweeping 20 times a second per idle
//! connection would cost about 0.3 ms of CPU a second each); instead one liveness thread per
//! process re-checks every armed receive fd once per [`PEER_CHECK`] (a sweep, which reads the
//! holders' `/proc` entries). So a killed peer shows as end-of-file on the fd within about one
//! `PEER_CHECK`; a closed or exited one at once.
//!
//! **Fork.** The fd, the armed future and the notifier registration belong to the process
//! that made them ([`ReadyFd::pid`]). A forked child must not touch them (the parent's
//! notifier thread may have held their lock at the fork), so the Python half makes a new
//! `ReadyFd` in the child, and dropping or closing a `ReadyFd` in another process than its
//! maker's leaves its state alone (its copy of the fd stays open in the child until exit).

use std::future::Future;
use std::os::fd::{AsRawFd, OwnedFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Wake, Waker};
use std::time::Duration;

use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use rustix::event::{EventfdFlags, eventfd};

use shmq::{PipeEnd, Queue};

type ReadyFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// How often the liveness thread re-checks the peers of armed receive fds (see the module's
/// docs).
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
            self.arms.fetch_add(1, Relaxed);
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
    /// The liveness thread's check of an armed receive fd: `poll` sweeps the holder table,
    /// so a peer killed without closing turns into end-of-file, and the fd is set.
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
}

/// The receive fds the liveness thread checks, and the process that made the list.
struct Watched {
    pid: u32,
    fds: Arc<Mutex<Vec<Weak<Shared>>>>,
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
        }
        let fds: Arc<Mutex<Vec<Weak<Shared>>>> = Arc::default();
        let list = Arc::clone(&fds);
        let started = std::thread::Builder::new()
            .name("shmq-py-liveness".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(PEER_CHECK);
                    let live: Vec<Arc<Shared>> = {
                        let mut l = list.lock().unwrap_or_else(|p| p.into_inner());
                        l.retain(|w| w.strong_count() > 0);
                        l.iter().filter_map(Weak::upgrade).collect()
                    };
                    for s in live {
                        s.check_peer();
                    }
                }
            });
        if started.is_err() {
            // Without the thread, a killed peer shows on the fd at the next refresh only.
            return;
        }
        *g = Some(Watched { pid, fds });
    }
    if let Some(w) = g.as_ref() {
        w.fds
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Arc::downgrade(shared));
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
        if st.armed.is_some() {
            self.poll_armed(&mut st);
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
        });
        if matches!(shared.source, Source::Recv(_)) {
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
