//! `coro_join`'s wait: a thread that sleeps in the queue's blocking `join` (on the join word's
//! futex, as a registered sleeper, so the last `task_done` wakes it) and then makes an eventfd
//! readable, for the event loop's `add_reader`.
//!
//! The join word is not one of the event words the notifier thread waits on (a `task_done`
//! that brings the count to zero wakes only registered sleepers), so without this a coroutine
//! could only poll the count. One thread per waiting `coro_join`, made when it starts to wait
//! and gone when the join completes or the wait is given up (`close`, e.g. on cancellation:
//! the thread notices within [`STOP_CHECK`]).

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering::SeqCst};
use std::time::Duration;

use pyo3::exceptions::{PyOSError, PyRuntimeError};
use pyo3::prelude::*;
use rustix::event::{EventfdFlags, eventfd};

use shmq::Queue;

/// How long the thread sleeps in `join` before it checks whether its waiter gave up.
const STOP_CHECK: Duration = Duration::from_millis(100);

/// The thread's outcome, in [`Shared::state`].
const WAITING: u8 = 0;
const JOINED: u8 = 1;
const FAILED: u8 = 2;

struct Shared {
    efd: OwnedFd,
    stop: AtomicBool,
    state: AtomicU8,
}

/// A wait for a queue's unfinished count to reach zero, readable through an fd once it has.
#[pyclass(frozen, module = "shmq._shmq")]
pub(crate) struct JoinWaiter {
    shared: Arc<Shared>,
    fd: i32,
}

impl JoinWaiter {
    /// Starts the thread that waits in `q.join()`.
    pub(crate) fn start(q: Arc<Queue>) -> PyResult<JoinWaiter> {
        let efd = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)
            .map_err(|e| PyOSError::new_err(format!("eventfd: {e}")))?;
        let fd = efd.as_raw_fd();
        let shared = Arc::new(Shared {
            efd,
            stop: AtomicBool::new(false),
            state: AtomicU8::new(WAITING),
        });
        let s = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("shmq-py-join".into())
            .spawn(move || {
                let outcome = loop {
                    if s.stop.load(SeqCst) {
                        return;
                    }
                    match q.join_timeout(STOP_CHECK) {
                        Ok(()) => break JOINED,
                        Err(shmq::JoinError::Timeout) => {}
                        Err(_) => break FAILED,
                    }
                };
                s.state.store(outcome, SeqCst);
                let _ = rustix::io::write(&s.efd, &1u64.to_ne_bytes());
            })
            .map_err(|e| PyOSError::new_err(format!("starting the join thread: {e}")))?;
        Ok(JoinWaiter { shared, fd })
    }
}

#[pymethods]
impl JoinWaiter {
    /// The fd: readable once the wait ended.
    #[getter]
    fn fd(&self) -> i32 {
        self.fd
    }

    /// Whether the join completed (every task done); `RuntimeError` if it failed.
    fn done(&self) -> PyResult<bool> {
        match self.shared.state.load(SeqCst) {
            WAITING => Ok(false),
            JOINED => Ok(true),
            _ => Err(PyRuntimeError::new_err("join failed: the queue is damaged")),
        }
    }

    /// Gives the wait up: the thread ends within a short slice (it holds the fd until then).
    fn close(&self) {
        self.shared.stop.store(true, SeqCst);
    }
}

impl Drop for JoinWaiter {
    fn drop(&mut self) {
        self.shared.stop.store(true, SeqCst);
    }
}
