//! The native half of the Python package `shmq` (module `shmq._shmq`): thin PyO3 wrappers over
//! shmq's [`Queue`], [`PipeEnd`], and shmq-dict's [`SharedDict`], [`ProcessLock`] and [`Lock`].
//!
//! The Python half (`python/shmq/`) gives them `multiprocessing`'s API: pickling, names,
//! exceptions and the lifetime of anonymous objects. This half does what needs native code:
//!
//! - Every call that may wait releases the GIL and waits in slices of [`SLICE`]; between slices
//!   it runs Python's signal handlers, so Ctrl-C interrupts a blocked `get`, `recv`, `join` or
//!   `acquire` with `KeyboardInterrupt` within one slice, and leaves the object as it was.
//! - A call first tries without waiting while it holds the GIL (a put into a queue with room,
//!   a get from a queue with messages), which is the fast path; only then does it release the
//!   GIL and wait.
//! - A put copies a message once from its Python `bytes` object (or from the object's tagged
//!   encoding, [`codec`]) into shared memory; a get copies a small message out of shared memory
//!   without the ring's lock, into a buffer on the stack, and from there into the `bytes` or
//!   the object it builds.
//! - A `str` is encoded from the UTF-8 the `str` object holds, through the interpreter's
//!   `PyUnicode_AsUTF8AndSize` where it is visible ([`pystr`], the crate's only `unsafe`
//!   code), without an intermediate `bytes` object.

#![deny(unsafe_code)]

mod codec;
mod fd;
mod join;
mod pystr;

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use pyo3::exceptions::{
    PyBrokenPipeError, PyEOFError, PyFileExistsError, PyFileNotFoundError, PyOSError,
    PyOverflowError, PyRuntimeError, PyValueError,
};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyType};

use shmq::{End, OpenError, Options, Pipe, PipeEnd, Queue};
use shmq_dict::{AcquireError, DictError, Lock, LockGuard, ProcessLock, SharedDict};

/// The longest a blocked call waits with the GIL released before it runs Python's signal
/// handlers (and so the bound on how late Ctrl-C is noticed, plus the handler's own time).
const SLICE: Duration = Duration::from_millis(20);

/// Messages (or slots) from this size on are copied with the GIL released: other threads run
/// while a large message moves. Below it, the copy is shorter than releasing the GIL.
const COPY_WITHOUT_GIL: usize = 64 * 1024;

/// What the Python half hands over at import (`_init`): the exception classes `queue.Full`,
/// `queue.Empty` and `shmq.ShutDown`, and its functions that pickle an object into a message
/// and unpickle one (see [`codec`] for the objects that travel without them).
struct Classes {
    full: Py<PyType>,
    empty: Py<PyType>,
    shutdown: Py<PyType>,
    dumps_pickled: Py<PyAny>,
    loads_pickled: Py<PyAny>,
}

static CLASSES: OnceLock<Classes> = OnceLock::new();

fn raise(py: Python<'_>, pick: fn(&Classes) -> &Py<PyType>, msg: &str) -> PyErr {
    match CLASSES.get() {
        Some(c) => PyErr::from_type(pick(c).bind(py).clone(), msg.to_string()),
        None => PyRuntimeError::new_err("shmq._shmq._init was not called"),
    }
}

/// `queue.Full` or `queue.Empty` without arguments, as the standard library's queues raise
/// them (and cheaper: these are the non-blocking calls' ordinary outcome).
fn raise_bare(py: Python<'_>, pick: fn(&Classes) -> &Py<PyType>) -> PyErr {
    match CLASSES.get() {
        Some(c) => PyErr::from_type(pick(c).bind(py).clone(), ()),
        None => PyRuntimeError::new_err("shmq._shmq._init was not called"),
    }
}

/// What went wrong, in a form that crosses the GIL boundary (`Send`), turned into a Python
/// exception once the GIL is held again.
#[derive(Debug)]
enum Failure {
    Full,
    Empty,
    ShutDown,
    Eof,
    Broken,
    WrongDirection(String),
    TooLarge(String),
    Value(String),
    Overflow(String),
    Other(String),
}

impl Failure {
    fn into_py(self, py: Python<'_>) -> PyErr {
        match self {
            Failure::Full => raise_bare(py, |c| &c.full),
            Failure::Empty => raise_bare(py, |c| &c.empty),
            Failure::ShutDown => raise(py, |c| &c.shutdown, "the queue is shut down"),
            Failure::Eof => PyEOFError::new_err("the other end of the pipe is closed"),
            Failure::Broken => PyBrokenPipeError::new_err("the other end of the pipe is closed"),
            Failure::WrongDirection(s) => PyOSError::new_err(s),
            Failure::TooLarge(s) | Failure::Value(s) => PyValueError::new_err(s),
            Failure::Overflow(s) => PyOverflowError::new_err(s),
            Failure::Other(s) => PyRuntimeError::new_err(s),
        }
    }
}

fn open_error(e: OpenError) -> PyErr {
    match e {
        OpenError::NotFound(s) => PyFileNotFoundError::new_err(s),
        OpenError::AlreadyExists(s) => PyFileExistsError::new_err(s),
        OpenError::Io(e) => PyOSError::new_err(e.to_string()),
        OpenError::Disconnected(s) => PyEOFError::new_err(s),
        other => PyValueError::new_err(other.to_string()),
    }
}

/// The deadline `timeout` seconds from now; `None` waits without end.
fn deadline(timeout: Option<f64>) -> Option<Instant> {
    let t = timeout?;
    let t = if t.is_finite() { t.max(0.0) } else { 1e9 };
    Instant::now().checked_add(Duration::from_secs_f64(t.min(1e9)))
}

/// With the GIL released, checks `ready`, yielding the CPU between checks, for up to [`POLL`]
/// (not past `deadline`); returns whether it held. The checks are at least `every` apart, the
/// first one `every` after the start. Yielding from the first check, not spinning: on a busy
/// machine the peer may need this CPU to answer (measured on the loaded two-core machine, a
/// queue round trip took 3.4 µs at the median polling this way before the blocking call, 5.4
/// µs going straight to it).
fn poll_until(
    py: Python<'_>,
    deadline: Option<Instant>,
    every: Duration,
    ready: impl Fn() -> bool + Sync,
) -> bool {
    py.detach(|| {
        let start = Instant::now();
        let mut until = start + POLL;
        if let Some(d) = deadline {
            until = until.min(d);
        }
        let mut check = start + every;
        loop {
            let now = Instant::now();
            if now >= check {
                if ready() {
                    return true;
                }
                check = now + every;
            }
            if now >= until {
                return false;
            }
            std::thread::yield_now();
        }
    })
}

/// How long a blocking queue call polls before it waits in the queue's blocking call.
const POLL: Duration = Duration::from_micros(50);

/// How often a put that found the queue full looks again while it polls. Looking reads the
/// consumers' `head`, which takes its cache line away from the consumer that writes it at
/// every get: a producer that looked after every yield (a fraction of a microsecond apart
/// when its CPU has nothing else to run, about as often as a Python consumer takes a message)
/// made the consumer's gets miss on `head`, and the consumer, which bounds a full queue, took
/// 1.33–1.40× as long per message (`bench.py`'s 1 → 1 rows, 64 B, two CPUs). Looking every
/// 5 µs, the consumer frees a run of slots between looks and the producer fills them without
/// reading `head` again (the ring caches the `head` it saw).
/// A get that finds the queue empty keeps looking after every yield: its wait is the round
/// trip's latency.
const FULL_POLL_EVERY: Duration = Duration::from_micros(5);

/// Runs `step` with the GIL released, one slice at a time, until it returns `Some`, the
/// deadline passes (`Ok(None)`) or a signal handler raises (Ctrl-C: `KeyboardInterrupt`).
/// `step(slice)` waits at most `slice` and returns `None` if nothing happened in it.
fn wait_loop<R: Send>(
    py: Python<'_>,
    deadline: Option<Instant>,
    step: impl Fn(Duration) -> Option<R> + Sync,
) -> PyResult<Option<R>> {
    loop {
        let slice = match deadline {
            Some(d) => {
                let now = Instant::now();
                if now >= d {
                    return Ok(None);
                }
                (d - now).min(SLICE)
            }
            None => SLICE,
        };
        if let Some(r) = py.detach(|| step(slice)) {
            return Ok(Some(r));
        }
        py.check_signals()?;
    }
}

fn put_failure<M>(e: shmq::PutTimeoutError<M>) -> Option<Failure> {
    use shmq::PutTimeoutError as E;
    match e {
        E::Timeout(_) => None,
        E::Closed(_) => Some(Failure::ShutDown),
        E::TooLarge { len, max, .. } => Some(Failure::TooLarge(format!(
            "a message of {len} bytes does not fit the queue's slots of {max} bytes"
        ))),
        other => Some(Failure::Other(other.to_string())),
    }
}

fn try_put_failure<M>(e: shmq::TryPutError<M>) -> Failure {
    use shmq::TryPutError as E;
    match e {
        E::Full(_) => Failure::Full,
        E::Closed(_) => Failure::ShutDown,
        E::TooLarge { len, max, .. } => Failure::TooLarge(format!(
            "a message of {len} bytes does not fit the queue's slots of {max} bytes"
        )),
        other => Failure::Other(other.to_string()),
    }
}

/// A queue handle: shmq's [`Queue`] for the Python half.
#[pyclass(frozen, module = "shmq._shmq")]
struct RawQueue {
    q: Arc<Queue>,
    name: String,
}

/// Messages of queues whose slots are up to this size (the default slot size) are taken into
/// a buffer on the stack (zeroed at each call: kept small).
const STACK_MESSAGE: usize = 256;

impl RawQueue {
    /// A put of `data`: first without releasing the GIL (a queue with room takes it at once:
    /// releasing and taking back the GIL would cost more than the put), then, if the queue is
    /// full and the caller may wait, with the GIL released, one slice at a time.
    fn put_slice(
        &self,
        py: Python<'_>,
        data: &[u8],
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<()> {
        let first = if data.len() >= COPY_WITHOUT_GIL {
            py.detach(|| self.q.try_put(data))
        } else {
            self.q.try_put(data)
        };
        match first {
            Ok(()) => return Ok(()),
            Err(shmq::TryPutError::Full(_)) if block => {}
            Err(e) => return Err(try_put_failure(e).into_py(py)),
        }
        // A slot often frees within microseconds: poll briefly (GIL released) before sleeping.
        let dl = deadline(timeout);
        if data.len() < COPY_WITHOUT_GIL
            && poll_until(py, dl, FULL_POLL_EVERY, || {
                !self.q.is_full() || self.q.is_closed()
            })
            && self.q.try_put(data).is_ok()
        {
            return Ok(());
        }
        let got = wait_loop(py, dl, |slice| match self.q.put_timeout(data, slice) {
            Ok(()) => Some(Ok(())),
            Err(e) => put_failure(e).map(Err),
        })?;
        match got {
            Some(Ok(())) => Ok(()),
            Some(Err(f)) => Err(f.into_py(py)),
            None => Err(Failure::Full.into_py(py)),
        }
    }

    /// A get that hands the message to `make` (with the GIL held). A message that is there
    /// now is copied out without the ring's lock and without releasing the GIL, into a buffer
    /// on the stack (small slots) and from there straight into what `make` builds; only if
    /// the queue is empty and the caller may wait is the GIL released, one slice at a time.
    fn take<'py, T>(
        &self,
        py: Python<'py>,
        block: bool,
        timeout: Option<f64>,
        make: impl FnOnce(Python<'py>, &[u8]) -> PyResult<T>,
    ) -> PyResult<T> {
        let slot = self.q.message_size();
        let first = if slot >= COPY_WITHOUT_GIL {
            // Large slots: copy out of shared memory with the GIL released.
            py.detach(|| self.q.try_get())
        } else if slot <= STACK_MESSAGE {
            let mut buf = [0u8; STACK_MESSAGE];
            match self.q.try_get_into(&mut buf[..slot]) {
                Ok(n) => return make(py, &buf[..n]),
                Err(e) => Err(e),
            }
        } else {
            let mut buf = vec![0u8; slot];
            self.q.try_get_into(&mut buf).map(|n| {
                buf.truncate(n);
                buf
            })
        };
        let first = match first {
            // A message larger than a slot (in a side segment): take it as a vector.
            Err(shmq::TryGetError::BufferTooSmall { .. }) => self.q.try_get(),
            other => other,
        };
        match first {
            Ok(v) => return make(py, &v),
            Err(shmq::TryGetError::Empty) if block => {}
            Err(shmq::TryGetError::Empty) => return Err(Failure::Empty.into_py(py)),
            Err(shmq::TryGetError::Closed) => return Err(Failure::ShutDown.into_py(py)),
            Err(e) => return Err(Failure::Other(e.to_string()).into_py(py)),
        }
        // A message often comes within microseconds: poll briefly (GIL released) before
        // sleeping, then take it as above.
        let dl = deadline(timeout);
        if slot <= STACK_MESSAGE
            && poll_until(py, dl, Duration::ZERO, || {
                !self.q.is_empty() || self.q.is_closed()
            })
        {
            let mut buf = [0u8; STACK_MESSAGE];
            if let Ok(n) = self.q.try_get_into(&mut buf[..slot]) {
                return make(py, &buf[..n]);
            }
        }
        let got = wait_loop(py, dl, |slice| match self.q.get_timeout(slice) {
            Ok(v) => Some(Ok(v)),
            Err(shmq::GetTimeoutError::Timeout) => None,
            Err(shmq::GetTimeoutError::Closed) => Some(Err(Failure::ShutDown)),
            Err(e) => Some(Err(Failure::Other(e.to_string()))),
        })?;
        match got {
            Some(Ok(v)) => make(py, &v),
            Some(Err(f)) => Err(f.into_py(py)),
            None => Err(Failure::Empty.into_py(py)),
        }
    }
}

#[pymethods]
impl RawQueue {
    /// Creates the named queue `name` of `capacity` slots of `slot_size` bytes.
    #[staticmethod]
    fn create(name: &str, capacity: usize, slot_size: usize) -> PyResult<RawQueue> {
        let opts = Options {
            capacity,
            message_size: slot_size,
            ..Default::default()
        };
        let q = Queue::create(name, &opts).map_err(open_error)?;
        Ok(RawQueue {
            q: Arc::new(q),
            name: name.to_string(),
        })
    }

    /// Attaches to the existing queue `name`.
    #[staticmethod]
    fn open(name: &str) -> PyResult<RawQueue> {
        let q = Queue::open(name).map_err(open_error)?;
        Ok(RawQueue {
            q: Arc::new(q),
            name: name.to_string(),
        })
    }

    /// Removes the name `name` (of any shmq object).
    #[staticmethod]
    fn unlink(name: &str) -> PyResult<()> {
        Queue::unlink(name).map_err(open_error)
    }

    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    /// Puts `data`; raises `queue.Full` if it cannot within `timeout` (or at once if not
    /// `block`), `ShutDown` after `shutdown`, `ValueError` if it is too large.
    #[pyo3(signature = (data, block = true, timeout = None))]
    fn put(&self, py: Python<'_>, data: &[u8], block: bool, timeout: Option<f64>) -> PyResult<()> {
        self.put_slice(py, data, block, timeout)
    }

    /// Puts the object `obj` (tagged, or pickled by the Python half); raises as `put`.
    #[pyo3(signature = (obj, block = true, timeout = None))]
    fn put_obj(&self, obj: &Bound<'_, PyAny>, block: bool, timeout: Option<f64>) -> PyResult<()> {
        with_message(obj, |m| self.put_slice(obj.py(), m, block, timeout))
    }

    /// Takes the oldest message as `bytes`; raises `queue.Empty` if none comes within
    /// `timeout` (or at once if not `block`), `ShutDown` once a shut-down queue is drained.
    #[pyo3(signature = (block = true, timeout = None))]
    fn get<'py>(
        &self,
        py: Python<'py>,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        self.take(py, block, timeout, |py, m| Ok(PyBytes::new(py, m)))
    }

    /// Takes the oldest message as the object it holds; raises as `get`.
    #[pyo3(signature = (block = true, timeout = None))]
    fn get_obj<'py>(
        &self,
        py: Python<'py>,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.take(py, block, timeout, loads_slice)
    }

    /// Marks one message processed; `ValueError` if no task is unfinished.
    fn task_done(&self, py: Python<'_>) -> PyResult<()> {
        self.q.task_done().map_err(|e| match e {
            shmq::TaskDoneError::NoUnfinishedTasks => {
                Failure::Value("task_done() called too many times".into()).into_py(py)
            }
            other => Failure::Other(other.to_string()).into_py(py),
        })
    }

    /// Waits until every message put has been marked done; returns false if `timeout` passed.
    #[pyo3(signature = (timeout = None))]
    fn join(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        if self.q.unfinished() == 0 {
            return Ok(true);
        }
        let got = wait_loop(py, deadline(timeout), |slice| {
            match self.q.join_timeout(slice) {
                Ok(()) => Some(Ok(())),
                Err(shmq::JoinError::Timeout) => None,
                Err(e) => Some(Err(e.to_string())),
            }
        })?;
        match got {
            Some(Ok(())) => Ok(true),
            Some(Err(s)) => Err(PyRuntimeError::new_err(s)),
            None => Ok(false),
        }
    }

    /// A wait for the unfinished count to reach zero by a thread of its own, whose fd turns
    /// readable once it has (for `coro_join`).
    fn join_waiter(&self) -> PyResult<join::JoinWaiter> {
        join::JoinWaiter::start(Arc::clone(&self.q))
    }

    /// How many messages were put and not yet marked done.
    fn unfinished(&self) -> u64 {
        self.q.unfinished()
    }

    /// shmq's `close`: later puts fail everywhere, gets drain and then fail.
    fn shutdown(&self) -> PyResult<()> {
        self.q
            .close()
            .map_err(|e| PyRuntimeError::new_err(e.to_string()))
    }

    fn is_shutdown(&self) -> bool {
        self.q.is_closed()
    }

    fn qsize(&self) -> usize {
        self.q.len()
    }

    fn empty(&self) -> bool {
        self.q.is_empty()
    }

    fn full(&self) -> bool {
        self.q.is_full()
    }

    fn capacity(&self) -> usize {
        self.q.capacity()
    }

    fn slot_size(&self) -> usize {
        self.q.message_size()
    }

    /// A readiness fd of this queue: `"get"` (readable while a message waits or the queue is
    /// shut down) or `"put"` (readable while a slot is free or the queue is shut down).
    fn ready_fd(&self, op: &str) -> PyResult<fd::ReadyFd> {
        fd::ReadyFd::make(match op {
            "get" => fd::Source::Get(Arc::clone(&self.q)),
            "put" => fd::Source::Put(Arc::clone(&self.q)),
            _ => return Err(PyValueError::new_err("op must be \"get\" or \"put\"")),
        })
    }
}

/// A truth value as Python tests one (`block=1` blocks, `block=None` does not).
struct Truth(bool);

impl<'a, 'py> FromPyObject<'a, 'py> for Truth {
    type Error = PyErr;

    fn extract(obj: pyo3::Borrowed<'a, 'py, PyAny>) -> PyResult<Truth> {
        Ok(Truth(obj.is_truthy()?))
    }
}

/// The base class of `shmq.Queue` (and so of `JoinableQueue` and `SimpleQueue`): its
/// per-message calls `put`, `get`, `put_bytes` and `get_bytes`, so that a call is one native
/// call, without a Python frame around it. The Python class binds it to its [`RawQueue`]
/// (`_bind`) and keeps everything else.
#[pyclass(subclass, frozen, module = "shmq._shmq")]
struct QueueCore {
    raw: OnceLock<Py<RawQueue>>,
    /// `close()` was called on this handle.
    closed: AtomicBool,
    /// The `fileno()` fd, once made: a get clears it when it drains the queue. Locked only
    /// with the GIL held (never across a release), so never held at a fork made from Python.
    getfd: Mutex<Option<Py<fd::ReadyFd>>>,
    /// Whether `getfd` holds one (read without the lock).
    has_getfd: AtomicBool,
}

impl QueueCore {
    /// The queue, if this handle is open: else what `_check_closed` raises (`ValueError`
    /// for a `Queue`, `OSError` for a `SimpleQueue`).
    fn open<'a>(slf: &'a Bound<'_, Self>) -> PyResult<&'a RawQueue> {
        let me = slf.get();
        if me.closed.load(Relaxed) {
            slf.call_method0("_check_closed")?;
            return Err(PyValueError::new_err("the queue handle is closed"));
        }
        match me.raw.get() {
            Some(r) => Ok(r.get()),
            None => Err(PyRuntimeError::new_err(
                "the queue handle is not initialised",
            )),
        }
    }

    /// A get through `take`, then the `fileno()` fd cleared if this get drained the queue
    /// (or found it empty: another consumer took what the fd announced).
    fn get_then_clear<'py, T>(
        slf: &Bound<'py, Self>,
        take: impl FnOnce(&RawQueue) -> PyResult<T>,
    ) -> PyResult<T> {
        let r = take(Self::open(slf)?);
        let me = slf.get();
        if me.has_getfd.load(Relaxed) {
            let fd = me
                .getfd
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_ref()
                .map(|f| f.clone_ref(slf.py()));
            if let Some(fd) = fd {
                fd.get().after_take();
            }
        }
        r
    }
}

#[pymethods]
impl QueueCore {
    #[new]
    #[pyo3(signature = (*_args, **_kwargs))]
    fn new(_args: &Bound<'_, PyAny>, _kwargs: Option<&Bound<'_, PyAny>>) -> QueueCore {
        QueueCore {
            raw: OnceLock::new(),
            closed: AtomicBool::new(false),
            getfd: Mutex::new(None),
            has_getfd: AtomicBool::new(false),
        }
    }

    /// Binds this handle to its queue (once).
    fn _bind(&self, raw: Py<RawQueue>) -> PyResult<()> {
        self.raw
            .set(raw)
            .map_err(|_| PyRuntimeError::new_err("the queue handle is bound already"))
    }

    #[getter(_closed)]
    fn get_closed(&self) -> bool {
        self.closed.load(Relaxed)
    }

    #[setter(_closed)]
    fn set_closed(&self, closed: bool) {
        self.closed.store(closed, Relaxed);
    }

    #[getter(_getfd)]
    fn get_getfd(&self, py: Python<'_>) -> Option<Py<fd::ReadyFd>> {
        self.getfd
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|f| f.clone_ref(py))
    }

    #[setter(_getfd)]
    fn set_getfd(&self, fd: Option<Py<fd::ReadyFd>>) {
        let mut g = self.getfd.lock().unwrap_or_else(|p| p.into_inner());
        self.has_getfd.store(fd.is_some(), Relaxed);
        // (The old fd, if any, is dropped after the lock: its handle closes it.)
        let _old = std::mem::replace(&mut *g, fd);
        drop(g);
    }

    /// Puts `obj` (common builtins behind a type tag, anything else pickled with protocol 5:
    /// see `docs/python.md`); waits while the queue is full, up to `timeout` seconds, and
    /// raises `queue.Full` then (at once if not `block`).
    #[pyo3(signature = (obj, block = Truth(true), timeout = None),
           text_signature = "(self, obj, block=True, timeout=None)")]
    fn put(
        slf: &Bound<'_, Self>,
        obj: &Bound<'_, PyAny>,
        block: Truth,
        timeout: Option<f64>,
    ) -> PyResult<()> {
        let raw = Self::open(slf)?;
        with_message(obj, |m| raw.put_slice(obj.py(), m, block.0, timeout))
    }

    /// Takes the oldest object; waits while the queue is empty, up to `timeout` seconds, and
    /// raises `queue.Empty` then (at once if not `block`).
    #[pyo3(signature = (block = Truth(true), timeout = None),
           text_signature = "(self, block=True, timeout=None)")]
    fn get<'py>(
        slf: &Bound<'py, Self>,
        block: Truth,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        Self::get_then_clear(slf, |raw| raw.take(py, block.0, timeout, loads_slice))
    }

    /// Puts the bytes of `data` (any bytes-like object) without pickling.
    #[pyo3(signature = (data, block = Truth(true), timeout = None),
           text_signature = "(self, data, block=True, timeout=None)")]
    fn put_bytes(
        slf: &Bound<'_, Self>,
        data: &Bound<'_, PyAny>,
        block: Truth,
        timeout: Option<f64>,
    ) -> PyResult<()> {
        let raw = Self::open(slf)?;
        let py = slf.py();
        match data.cast_exact::<PyBytes>() {
            Ok(b) => raw.put_slice(py, b.as_bytes(), block.0, timeout),
            Err(_) => {
                let b = py.get_type::<PyBytes>().call1((data,))?;
                raw.put_slice(py, b.cast::<PyBytes>()?.as_bytes(), block.0, timeout)
            }
        }
    }

    /// Takes the oldest message as `bytes`, without unpickling.
    #[pyo3(signature = (block = Truth(true), timeout = None),
           text_signature = "(self, block=True, timeout=None)")]
    fn get_bytes<'py>(
        slf: &Bound<'py, Self>,
        block: Truth,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let py = slf.py();
        Self::get_then_clear(slf, |raw| {
            raw.take(py, block.0, timeout, |py, m| Ok(PyBytes::new(py, m)))
        })
    }
}

/// A pipe end: shmq's [`PipeEnd`] for the Python half. Closing it drops the handle; a
/// blocked call on another thread sees the close at its next slice.
#[pyclass(frozen, module = "shmq._shmq")]
struct RawPipeEnd {
    end: RwLock<Option<Arc<PipeEnd>>>,
    name: String,
    which: End,
}

fn end_name(e: End) -> &'static str {
    match e {
        End::A => "A",
        End::B => "B",
    }
}

fn closed_handle() -> Failure {
    Failure::WrongDirection("handle is closed".into())
}

impl RawPipeEnd {
    fn new(end: PipeEnd, name: &str) -> RawPipeEnd {
        RawPipeEnd {
            which: end.end(),
            end: RwLock::new(Some(Arc::new(end))),
            name: name.to_string(),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&PipeEnd) -> Result<R, Failure>) -> Result<R, Failure> {
        let g = self.end.read().unwrap_or_else(|p| p.into_inner());
        match g.as_ref() {
            Some(e) => f(e),
            None => Err(closed_handle()),
        }
    }

    /// The next message if one is there now (`None`: nothing yet); end-of-file and a
    /// write-only end as their failures.
    fn try_recv_now(&self) -> Result<Option<Vec<u8>>, Failure> {
        self.with(|e| match e.try_recv() {
            Ok(v) => Ok(Some(v)),
            Err(shmq::TryRecvError::Empty) => Ok(None),
            Err(shmq::TryRecvError::Disconnected) => Err(Failure::Eof),
            Err(shmq::TryRecvError::WrongDirection) => {
                Err(Failure::WrongDirection("connection is write-only".into()))
            }
            Err(other) => Err(Failure::Other(other.to_string())),
        })
    }

    /// The next message, waiting up to `timeout` seconds (`None`: without end, GIL released
    /// while it waits); `Ok(None)` on timeout.
    fn recv_vec(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<Vec<u8>>> {
        match self.try_recv_now() {
            Ok(Some(v)) => return Ok(Some(v)),
            Ok(None) => {}
            Err(f) => return Err(f.into_py(py)),
        }
        let got = wait_loop(py, deadline(timeout), |slice| {
            match self.with(|e| Ok(e.recv_timeout(slice))) {
                Ok(Ok(v)) => Some(Ok(v)),
                Ok(Err(e)) => recv_failure(e).map(Err),
                Err(f) => Some(Err(f)),
            }
        })?;
        match got {
            Some(Ok(v)) => Ok(Some(v)),
            Some(Err(f)) => Err(f.into_py(py)),
            None => Ok(None),
        }
    }
}

fn recv_failure(e: shmq::RecvTimeoutError) -> Option<Failure> {
    use shmq::RecvTimeoutError as E;
    match e {
        E::Timeout => None,
        E::Disconnected => Some(Failure::Eof),
        E::WrongDirection => Some(Failure::WrongDirection("connection is write-only".into())),
        other => Some(Failure::Other(other.to_string())),
    }
}

#[pymethods]
impl RawPipeEnd {
    /// Creates the named pipe `name` and returns its two ends (A, B).
    #[staticmethod]
    fn create(
        name: &str,
        capacity: usize,
        slot_size: usize,
        duplex: bool,
    ) -> PyResult<(RawPipeEnd, RawPipeEnd)> {
        let opts = Options {
            capacity,
            message_size: slot_size,
            ..Default::default()
        };
        let (a, b) = if duplex {
            Pipe::create(name, &opts)
        } else {
            Pipe::create_one_way(name, &opts)
        }
        .map_err(open_error)?;
        Ok((RawPipeEnd::new(a, name), RawPipeEnd::new(b, name)))
    }

    /// Attaches to end `end` ("A" or "B") of the pipe `name`.
    #[staticmethod]
    fn open(name: &str, end: &str) -> PyResult<RawPipeEnd> {
        let which = match end {
            "A" => End::A,
            "B" => End::B,
            _ => return Err(PyValueError::new_err("end must be \"A\" or \"B\"")),
        };
        let e = PipeEnd::open(name, which).map_err(open_error)?;
        Ok(RawPipeEnd::new(e, name))
    }

    /// The number of live hand-off tokens of the pipe `name` (ends pickled and not yet
    /// attached); `None` if `name` is not a pipe.
    #[staticmethod]
    fn pending_handoffs(name: &str) -> Option<usize> {
        Pipe::inspect(name)
            .ok()
            .map(|i| i.handoffs[0] + i.handoffs[1])
    }

    /// Keeps this end open for `within` seconds for a process that will `open` it by name.
    fn hand_off(&self, py: Python<'_>, within: f64) -> PyResult<()> {
        let within = Duration::from_secs_f64(within.clamp(0.0, 1e9));
        self.with(|e| {
            e.hand_off(within)
                .map(drop)
                .map_err(|e| Failure::Other(e.to_string()))
        })
        .map_err(|f| f.into_py(py))
    }

    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    #[getter]
    fn end(&self) -> &'static str {
        end_name(self.which)
    }

    #[getter]
    fn closed(&self) -> bool {
        self.end.read().unwrap_or_else(|p| p.into_inner()).is_none()
    }

    fn can_send(&self) -> bool {
        self.with(|e| Ok(e.can_send())).unwrap_or(false)
    }

    fn can_recv(&self) -> bool {
        self.with(|e| Ok(e.can_recv())).unwrap_or(false)
    }

    fn slot_size(&self) -> usize {
        self.with(|e| Ok(e.message_size())).unwrap_or(0)
    }

    /// Sends `data`, waiting while the other side's ring is full; `BrokenPipeError` once the
    /// other end is gone.
    fn send(&self, py: Python<'_>, data: &[u8]) -> PyResult<()> {
        let first = self.with(|e| match e.try_send(data) {
            Ok(()) => Ok(true),
            Err(shmq::TrySendError::Full(_)) => Ok(false),
            Err(shmq::TrySendError::Disconnected(_)) => Err(Failure::Broken),
            Err(shmq::TrySendError::TooLarge { len, max, .. }) => Err(Failure::TooLarge(format!(
                "a message of {len} bytes does not fit the pipe's slots of {max} bytes"
            ))),
            Err(shmq::TrySendError::WrongDirection(_)) => {
                Err(Failure::WrongDirection("connection is read-only".into()))
            }
            Err(other) => Err(Failure::Other(other.to_string())),
        });
        match first {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(f) => return Err(f.into_py(py)),
        }
        let got = wait_loop(py, None, |slice| {
            let r = self.with(|e| match e.send_timeout(data, slice) {
                Ok(()) => Ok(true),
                Err(shmq::SendTimeoutError::Timeout(_)) => Ok(false),
                Err(shmq::SendTimeoutError::Disconnected(_)) => Err(Failure::Broken),
                Err(other) => Err(Failure::Other(other.to_string())),
            });
            match r {
                Ok(false) => None,
                Ok(true) => Some(Ok(())),
                Err(f) => Some(Err(f)),
            }
        })?;
        match got {
            Some(Ok(())) | None => Ok(()),
            Some(Err(f)) => Err(f.into_py(py)),
        }
    }

    /// Sends `data` if the other side's ring has room; returns whether it did (`False`: full,
    /// nothing sent). Raises as `send` otherwise.
    fn try_send(&self, py: Python<'_>, data: &[u8]) -> PyResult<bool> {
        self.with(|e| match e.try_send(data) {
            Ok(()) => Ok(true),
            Err(shmq::TrySendError::Full(_)) => Ok(false),
            Err(shmq::TrySendError::Disconnected(_)) => Err(Failure::Broken),
            Err(shmq::TrySendError::TooLarge { len, max, .. }) => Err(Failure::TooLarge(format!(
                "a message of {len} bytes does not fit the pipe's slots of {max} bytes"
            ))),
            Err(shmq::TrySendError::WrongDirection(_)) => {
                Err(Failure::WrongDirection("connection is read-only".into()))
            }
            Err(other) => Err(Failure::Other(other.to_string())),
        })
        .map_err(|f| f.into_py(py))
    }

    /// Receives the next message as `bytes`, waiting up to `timeout` seconds (`None`: without
    /// end); `EOFError` once the pipe is drained and the other end is gone; `None` on timeout.
    #[pyo3(signature = (timeout = None))]
    fn recv<'py>(
        &self,
        py: Python<'py>,
        timeout: Option<f64>,
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        Ok(self.recv_vec(py, timeout)?.map(|v| PyBytes::new(py, &v)))
    }

    /// Sends the object `obj` (tagged, or pickled by the Python half), as `send` sends bytes.
    fn send_obj(&self, obj: &Bound<'_, PyAny>) -> PyResult<()> {
        with_message(obj, |m| self.send(obj.py(), m))
    }

    /// Receives the next message as the object it holds, waiting without end; `EOFError` at
    /// end-of-file.
    fn recv_obj<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        match self.recv_vec(py, None)? {
            Some(v) => loads_slice(py, &v),
            None => Err(PyRuntimeError::new_err(
                "a receive without a timeout timed out",
            )),
        }
    }

    /// Receives the next message if one is there now, as the object it holds (`obj` made
    /// by `again` otherwise: nothing was received); `EOFError` at end-of-file. For the
    /// coroutines: one native call per attempt.
    fn try_recv_obj<'py>(
        &self,
        py: Python<'py>,
        again: Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let got = self.try_recv_now();
        match got {
            Ok(Some(v)) => loads_slice(py, &v),
            Ok(None) => Ok(again),
            Err(f) => Err(f.into_py(py)),
        }
    }

    /// Whether a message is ready (or end-of-file reached) within `timeout` seconds
    /// (`None`: wait without end; 0: do not wait).
    #[pyo3(signature = (timeout = Some(0.0)))]
    fn poll(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let step = |slice: Duration| match self.with(|e| Ok(e.poll(slice))) {
            Ok(Ok(true)) => Some(Ok(true)),
            Ok(Ok(false)) => None,
            // End-of-file counts as ready, as in multiprocessing: the next recv raises.
            Ok(Err(shmq::RecvError::Disconnected)) => Some(Ok(true)),
            Ok(Err(shmq::RecvError::WrongDirection)) => Some(Err(Failure::WrongDirection(
                "connection is write-only".into(),
            ))),
            Ok(Err(other)) => Some(Err(Failure::Other(other.to_string()))),
            Err(f) => Some(Err(f)),
        };
        if let Some(r) = step(Duration::ZERO) {
            return r.map_err(|f| f.into_py(py));
        }
        match wait_loop(py, deadline(timeout), step)? {
            Some(r) => r.map_err(|f| f.into_py(py)),
            None => Ok(false),
        }
    }

    /// Releases this holder of the end (idempotent).
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let taken = self.end.write().unwrap_or_else(|p| p.into_inner()).take();
        match taken {
            // A readiness fd that is still open holds the end too: it releases it when closed.
            Some(e) => match Arc::try_unwrap(e) {
                Ok(e) => py
                    .detach(|| e.close())
                    .map_err(|e| PyRuntimeError::new_err(e.to_string())),
                Err(shared) => {
                    drop(shared);
                    Ok(())
                }
            },
            None => Ok(()),
        }
    }

    /// A readiness fd of this end: `"recv"` (readable while a message waits, or at
    /// end-of-file) or `"send"` (readable while a slot is free, or the other end is gone).
    fn ready_fd(&self, op: &str) -> PyResult<fd::ReadyFd> {
        let g = self.end.read().unwrap_or_else(|p| p.into_inner());
        let Some(e) = g.as_ref() else {
            return Err(PyOSError::new_err("handle is closed"));
        };
        fd::ReadyFd::make(match op {
            "recv" => fd::Source::Recv(Arc::clone(e)),
            "send" => fd::Source::Send(Arc::clone(e)),
            _ => return Err(PyValueError::new_err("op must be \"recv\" or \"send\"")),
        })
    }
}

type Guard<'a> = LockGuard<'a>;

self_cell::self_cell!(
    /// A held lock: the handle and its guard, kept in the holding thread's [`HELD`].
    struct Held {
        owner: Arc<Lock>,
        #[covariant]
        dependent: Guard,
    }
);

thread_local! {
    /// The locks this thread holds, by the address of their handle. A guard must be dropped
    /// by the thread that took it (the robust mutex is owned by a thread).
    static HELD: RefCell<Vec<(usize, Held)>> = const { RefCell::new(Vec::new()) };
}

/// How a lock attempt ended.
enum Attempt {
    Taken,
    Busy,
    SelfHeld,
    Failed(String),
}

fn attempt(lock: &Arc<Lock>, wait: Option<Duration>) -> Attempt {
    let id = Arc::as_ptr(lock) as usize;
    let held = Held::try_new(Arc::clone(lock), |l| match wait {
        None => l.try_lock(),
        Some(d) => l.try_lock_for(d),
    });
    match held {
        Ok(h) => {
            HELD.with(|v| v.borrow_mut().push((id, h)));
            Attempt::Taken
        }
        Err(AcquireError::WouldBlock | AcquireError::Timeout) => Attempt::Busy,
        Err(AcquireError::Deadlock) => Attempt::SelfHeld,
        Err(e) => Attempt::Failed(e.to_string()),
    }
}

/// A named cross-process robust mutex owned by the thread that locked it (shmq-dict's
/// [`Lock`]; Python's `shmq.RobustMutex`).
#[pyclass(frozen, module = "shmq._shmq")]
struct RawLock {
    lock: Arc<Lock>,
    name: String,
}

#[pymethods]
impl RawLock {
    #[staticmethod]
    fn create(name: &str) -> PyResult<RawLock> {
        Ok(RawLock {
            lock: Arc::new(Lock::create(name).map_err(open_error)?),
            name: name.to_string(),
        })
    }

    #[staticmethod]
    fn open(name: &str) -> PyResult<RawLock> {
        Ok(RawLock {
            lock: Arc::new(Lock::open(name).map_err(open_error)?),
            name: name.to_string(),
        })
    }

    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    /// Takes the lock; `False` if it stayed held for `timeout` seconds (or at once if not
    /// `block`). A holder that died is replaced as if it had released.
    #[pyo3(signature = (block = true, timeout = None))]
    fn acquire(&self, py: Python<'_>, block: bool, timeout: Option<f64>) -> PyResult<bool> {
        let wait_self_held = |py: Python<'_>| -> PyResult<bool> {
            // Python's Lock would wait for itself: wait out the timeout, then fail.
            match timeout {
                None => Err(PyRuntimeError::new_err(
                    "acquire() would deadlock: this thread already holds the lock",
                )),
                Some(_) => {
                    wait_loop(py, deadline(timeout), |s| {
                        std::thread::sleep(s);
                        None::<()>
                    })?;
                    Ok(false)
                }
            }
        };
        match attempt(&self.lock, None) {
            Attempt::Taken => return Ok(true),
            Attempt::Busy if block => {}
            Attempt::Busy => return Ok(false),
            Attempt::SelfHeld if block => return wait_self_held(py),
            Attempt::SelfHeld => return Ok(false),
            Attempt::Failed(s) => return Err(PyRuntimeError::new_err(s)),
        }
        let lock = &self.lock;
        // The attempt must run on this thread (the guard stays in its HELD): `detach` runs
        // the closure here, with the GIL released.
        let got = wait_loop(py, deadline(timeout), |slice| {
            match attempt(lock, Some(slice)) {
                Attempt::Taken => Some(Ok(())),
                Attempt::Busy => None,
                Attempt::SelfHeld => Some(Err(None)),
                Attempt::Failed(s) => Some(Err(Some(s))),
            }
        })?;
        match got {
            Some(Ok(())) => Ok(true),
            Some(Err(None)) => wait_self_held(py),
            Some(Err(Some(s))) => Err(PyRuntimeError::new_err(s)),
            None => Ok(false),
        }
    }

    /// Releases the lock; `ValueError` if this thread does not hold it.
    fn release(&self) -> PyResult<()> {
        let id = Arc::as_ptr(&self.lock) as usize;
        let held = HELD.with(|v| {
            let mut v = v.borrow_mut();
            let i = v.iter().position(|(k, _)| *k == id)?;
            Some(v.swap_remove(i))
        });
        match held {
            Some(h) => {
                drop(h);
                Ok(())
            }
            None => Err(PyValueError::new_err(
                "release() of a lock that this thread does not hold",
            )),
        }
    }

    /// Whether this thread holds the lock.
    fn held(&self) -> bool {
        let id = Arc::as_ptr(&self.lock) as usize;
        HELD.with(|v| v.borrow().iter().any(|(k, _)| *k == id))
    }
}

/// A named lock that any process or thread may release (shmq-dict's [`ProcessLock`];
/// Python's `shmq.Lock`).
#[pyclass(frozen, module = "shmq._shmq")]
struct RawProcessLock {
    lock: ProcessLock,
    name: String,
}

#[pymethods]
impl RawProcessLock {
    #[staticmethod]
    fn create(name: &str) -> PyResult<RawProcessLock> {
        Ok(RawProcessLock {
            lock: ProcessLock::create(name).map_err(open_error)?,
            name: name.to_string(),
        })
    }

    #[staticmethod]
    fn open(name: &str) -> PyResult<RawProcessLock> {
        Ok(RawProcessLock {
            lock: ProcessLock::open(name).map_err(open_error)?,
            name: name.to_string(),
        })
    }

    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    /// Takes the lock; `False` if it stayed held for `timeout` seconds (or at once if not
    /// `block`). A holder process that ended without releasing is taken over.
    #[pyo3(signature = (block = true, timeout = None))]
    fn acquire(&self, py: Python<'_>, block: bool, timeout: Option<f64>) -> PyResult<bool> {
        let lock = &self.lock;
        match py.detach(|| lock.try_acquire()) {
            Ok(_) => return Ok(true),
            Err(AcquireError::WouldBlock) if block => {}
            Err(AcquireError::WouldBlock) => return Ok(false),
            Err(e) => return Err(PyRuntimeError::new_err(e.to_string())),
        }
        let got = wait_loop(py, deadline(timeout), |slice| {
            match lock.acquire_for(slice) {
                Ok(_) => Some(Ok(())),
                Err(AcquireError::Timeout | AcquireError::WouldBlock) => None,
                Err(e) => Some(Err(e.to_string())),
            }
        })?;
        match got {
            Some(Ok(())) => Ok(true),
            Some(Err(s)) => Err(PyRuntimeError::new_err(s)),
            None => Ok(false),
        }
    }

    /// Releases the lock, whoever took it; `ValueError` if it is not held.
    fn release(&self) -> PyResult<()> {
        self.lock
            .release()
            .map_err(|_| PyValueError::new_err("semaphore or lock released too many times"))
    }

    /// The pid of the holder process, `None` if the lock is free.
    fn holder_pid(&self) -> Option<u32> {
        self.lock.holder_pid()
    }
}

fn dict_failure(e: DictError) -> Failure {
    match e {
        DictError::Overflow { .. } => Failure::Overflow(e.to_string()),
        DictError::Full { capacity } => Failure::Value(format!(
            "{e}: make a larger one, e.g. SharedDict(capacity={}), and copy the keys into it",
            capacity.saturating_mul(2).max(1)
        )),
        DictError::EmptyKey | DictError::KeyTooLong { .. } => Failure::Value(e.to_string()),
        other => Failure::Other(other.to_string()),
    }
}

/// A shared `str -> int` dict (shmq-dict's [`SharedDict`]). Every call takes the dict's lock
/// with the GIL released.
#[pyclass(frozen, module = "shmq._shmq")]
struct RawDict {
    d: SharedDict,
    name: String,
}

impl RawDict {
    fn run<R: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&SharedDict) -> Result<R, DictError> + Send,
    ) -> PyResult<R> {
        py.detach(|| f(&self.d))
            .map_err(|e| dict_failure(e).into_py(py))
    }
}

#[pymethods]
impl RawDict {
    #[staticmethod]
    fn create(name: &str, capacity: usize, max_key_len: usize) -> PyResult<RawDict> {
        let opts = shmq_dict::Options {
            capacity,
            max_key_len,
            ..Default::default()
        };
        Ok(RawDict {
            d: SharedDict::create(name, &opts).map_err(open_error)?,
            name: name.to_string(),
        })
    }

    #[staticmethod]
    fn open(name: &str) -> PyResult<RawDict> {
        Ok(RawDict {
            d: SharedDict::open(name).map_err(open_error)?,
            name: name.to_string(),
        })
    }

    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    fn get(&self, py: Python<'_>, key: &str) -> PyResult<Option<i64>> {
        self.run(py, |d| d.get(key))
    }

    fn insert(&self, py: Python<'_>, key: &str, value: i64) -> PyResult<Option<i64>> {
        self.run(py, |d| d.insert(key, value))
    }

    fn add(&self, py: Python<'_>, key: &str, delta: i64) -> PyResult<i64> {
        self.run(py, |d| d.add(key, delta))
    }

    fn remove(&self, py: Python<'_>, key: &str) -> PyResult<Option<i64>> {
        self.run(py, |d| d.remove(key))
    }

    fn contains(&self, py: Python<'_>, key: &str) -> PyResult<bool> {
        self.run(py, |d| d.contains_key(key))
    }

    fn len(&self, py: Python<'_>) -> PyResult<usize> {
        self.run(py, |d| d.len())
    }

    fn keys(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        self.run(py, |d| d.keys())
    }

    /// Every entry in insertion order, in one critical section.
    fn items(&self, py: Python<'_>) -> PyResult<Vec<(String, i64)>> {
        self.run(py, |d| d.entries())
    }

    /// Removes and returns the most recently inserted entry; `None` if the dict is empty.
    fn popitem(&self, py: Python<'_>) -> PyResult<Option<(String, i64)>> {
        self.run(py, |d| d.pop_last())
    }

    fn clear(&self, py: Python<'_>) -> PyResult<()> {
        self.run(py, |d| d.clear())
    }

    /// The value of `key`, inserting `default` first if it is absent (one critical section).
    fn setdefault(&self, py: Python<'_>, key: &str, default: i64) -> PyResult<i64> {
        self.run(py, |d| {
            let mut g = d.lock().map_err(DictError::from)?;
            match g.get(key)? {
                Some(v) => Ok(v),
                None => {
                    g.insert(key, default)?;
                    Ok(default)
                }
            }
        })
    }

    /// Inserts every pair in one critical section; nothing is written if one fails.
    fn update(&self, py: Python<'_>, pairs: Vec<(String, i64)>) -> PyResult<()> {
        self.run(py, |d| {
            let mut g = d.lock().map_err(DictError::from)?;
            let new_keys = pairs
                .iter()
                .filter(|(k, _)| !matches!(g.contains_key(k), Ok(true)))
                .count();
            let free = g.capacity() - g.len()?;
            if new_keys > free {
                return Err(DictError::Full {
                    capacity: g.capacity(),
                });
            }
            for (k, v) in &pairs {
                g.insert(k, *v)?;
            }
            Ok(())
        })
    }

    fn capacity(&self) -> usize {
        self.d.capacity()
    }

    fn max_key_len(&self) -> usize {
        self.d.max_key_len()
    }
}

/// Hands over the exception classes to raise (`queue.Full`, `queue.Empty`, `shmq.ShutDown`)
/// and the functions that pickle an object into a message (`obj -> bytes`) and unpickle one
/// (`bytes -> obj`).
#[pyfunction]
fn _init(
    full: Bound<'_, PyType>,
    empty: Bound<'_, PyType>,
    shutdown: Bound<'_, PyType>,
    dumps_pickled: Bound<'_, PyAny>,
    loads_pickled: Bound<'_, PyAny>,
) {
    let _ = CLASSES.set(Classes {
        full: full.unbind(),
        empty: empty.unbind(),
        shutdown: shutdown.unbind(),
        dumps_pickled: dumps_pickled.unbind(),
        loads_pickled: loads_pickled.unbind(),
    });
}

fn classes() -> PyResult<&'static Classes> {
    CLASSES
        .get()
        .ok_or_else(|| PyRuntimeError::new_err("shmq._shmq._init was not called"))
}

/// Runs `f` on the message of `obj`: its tagged encoding (in this thread's scratch buffer) or,
/// for any other object, its pickle (made by the Python half).
fn with_message<R>(obj: &Bound<'_, PyAny>, f: impl FnOnce(&[u8]) -> PyResult<R>) -> PyResult<R> {
    let mut buf = codec::Scratch::take();
    if codec::encode(obj, &mut buf)? {
        return f(&buf);
    }
    drop(buf);
    let pickled = classes()?.dumps_pickled.bind(obj.py()).call1((obj,))?;
    f(pickled.cast::<PyBytes>()?.as_bytes())
}

/// An object's message as `bytes` (tagged, or pickled by the Python half).
#[pyfunction]
fn dumps<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let py = obj.py();
    let mut buf = codec::Scratch::take();
    if codec::encode(obj, &mut buf)? {
        return Ok(PyBytes::new(py, &buf).into_any());
    }
    drop(buf);
    classes()?.dumps_pickled.bind(py).call1((obj,))
}

/// The object of a message `data` made by [`dumps`] (or by a put of an object).
fn loads_slice<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    match codec::decode(py, data)? {
        Some(obj) => Ok(obj),
        None => classes()?
            .loads_pickled
            .bind(py)
            .call1((PyBytes::new(py, data),)),
    }
}

/// The object of the message `data` (made by `dumps`, a `put` or a `send` of an object).
#[pyfunction]
fn loads<'py>(data: &Bound<'py, PyBytes>) -> PyResult<Bound<'py, PyAny>> {
    let py = data.py();
    match codec::decode(py, data.as_bytes())? {
        Some(obj) => Ok(obj),
        None => classes()?.loads_pickled.bind(py).call1((data,)),
    }
}

/// Whether a `str` is encoded by borrowing its UTF-8 from the object (the interpreter's
/// `PyUnicode_AsUTF8AndSize` was found), rather than into a new `bytes` object.
#[pyfunction]
fn _borrows_str_utf8() -> bool {
    pystr::borrows_utf8()
}

/// A look at every shmq segment in /dev/shm whose name starts with `prefix`, read without
/// taking any lock (as `shmq top --once --json`): a list of dicts, one per segment.
#[pyfunction]
#[pyo3(signature = (prefix = None))]
fn snapshot<'py>(py: Python<'py>, prefix: Option<&str>) -> PyResult<Bound<'py, PyList>> {
    use shmq::snapshot::{Detail, Snapshot};
    let prefix = prefix.unwrap_or("");
    let snap = py
        .detach(|| Snapshot::take_matching(None, |n| n.starts_with(prefix)))
        .map_err(|e| PyOSError::new_err(format!("reading /dev/shm: {e}")))?;
    let rows = PyList::empty(py);
    for s in &snap.segments {
        let d = PyDict::new(py);
        d.set_item("name", &s.name)?;
        d.set_item("kind", s.kind.map(|k| k.name()))?;
        d.set_item("state", s.state.word())?;
        d.set_item("reason", s.state.reason())?;
        d.set_item("size", s.size)?;
        d.set_item("side_segments", s.side_segments)?;
        d.set_item("side_bytes", s.side_bytes)?;
        let procs = PyList::empty(py);
        for p in &s.processes {
            let pd = PyDict::new(py);
            pd.set_item("pid", p.pid)?;
            pd.set_item("alive", p.alive)?;
            pd.set_item("role", p.role.to_string())?;
            procs.append(pd)?;
        }
        d.set_item("processes", procs)?;
        let rings = PyList::empty(py);
        for r in s.rings() {
            let rd = PyDict::new(py);
            rd.set_item("len", r.len)?;
            rd.set_item("capacity", r.capacity)?;
            rd.set_item("message_size", r.message_size)?;
            rd.set_item("puts_total", r.puts)?;
            rd.set_item("gets_total", r.gets)?;
            rd.set_item("voided_total", r.voided)?;
            rd.set_item("unfinished", r.unfinished)?;
            rd.set_item("closed", r.closed)?;
            rd.set_item("producers_waiting", r.producers_waiting)?;
            rd.set_item("consumers_waiting", r.consumers_waiting)?;
            rd.set_item("joiners", r.joiners)?;
            rd.set_item("dead_claims", r.dead_claims)?;
            rings.append(rd)?;
        }
        d.set_item("rings", rings)?;
        d.set_item("lock", s.lock().map(|l| l.to_string()))?;
        if let Detail::Dict { len, .. } = &s.detail {
            d.set_item("keys", len)?;
        }
        rows.append(d)?;
    }
    Ok(rows)
}

/// Native part of the `shmq` package.
#[pymodule]
fn _shmq(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<RawQueue>()?;
    m.add_class::<QueueCore>()?;
    m.add_class::<RawPipeEnd>()?;
    m.add_class::<RawLock>()?;
    m.add_class::<RawProcessLock>()?;
    m.add_class::<RawDict>()?;
    m.add_class::<fd::ReadyFd>()?;
    m.add_class::<join::JoinWaiter>()?;
    m.add_function(wrap_pyfunction!(_init, m)?)?;
    m.add_function(wrap_pyfunction!(dumps, m)?)?;
    m.add_function(wrap_pyfunction!(loads, m)?)?;
    m.add_function(wrap_pyfunction!(_borrows_str_utf8, m)?)?;
    m.add_function(wrap_pyfunction!(snapshot, m)?)?;
    Ok(())
}
