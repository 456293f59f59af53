//! Helpers shared by the unit tests of several modules.

use std::time::Duration;

/// Runs `f` on another thread and aborts the test binary if it does not return within a
/// minute (a hang fails instead of stalling the run; no maximum duration is asserted).
pub(crate) fn within_watchdog<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(f()).unwrap());
    rx.recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| {
            // Abort: unwinding would drop handles whose release waits on the same lock.
            eprintln!("the call hung on a lock held by a live owner");
            std::process::abort()
        })
}

/// Unlinks a unit test's named segment when dropped: at the end of the test, and also when an
/// assertion fails first (no segment is left in /dev/shm).
pub(crate) struct UnlinkOnDrop(pub(crate) String);

impl Drop for UnlinkOnDrop {
    fn drop(&mut self) {
        let _ = crate::Queue::unlink(&self.0);
    }
}
