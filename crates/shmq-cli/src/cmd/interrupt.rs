//! Ctrl-C (SIGINT) and SIGTERM for a command that starts child processes and makes segments
//! (`shmq demo`): instead of dying at once, leaving its children blocked on a queue nobody
//! drains and its segments in /dev/shm, the process ends every child, removes what it made and
//! exits with 128 + the signal's number (130 for Ctrl-C).
//!
//! [`install`] starts a thread that waits for either signal (tokio's signal handling, so no
//! `unsafe` here). On one, it records it ([`signalled`]) and SIGKILLs every child started
//! through `shmq_testkit::Proc` that is not reaped yet, again every few milliseconds (a child
//! started just then is caught too). The main thread, woken by its children's deaths, stops
//! starting new ones ([`check`]), drops its children (reaping them) and its segment names
//! (removing the segments) on the way out, and `main` exits with [`exit_code`]. Should the main
//! thread still be busy after [`GRACE`], the signal thread removes every segment name still
//! alive and exits itself.

use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rustix::process::{Pid, Signal, kill_process};

/// The signal received, 0 before one.
static SIGNAL: AtomicI32 = AtomicI32::new(0);

/// How long the main thread has to end its children and remove its segments itself.
pub(crate) const GRACE: Duration = Duration::from_secs(5);

/// Starts handling SIGINT and SIGTERM as the module says; returns once both are handled.
///
/// # Errors
///
/// If the thread or the handlers cannot be set up.
pub(crate) fn install() -> Result<()> {
    let (tx, rx) = std::sync::mpsc::channel::<std::io::Result<()>>();
    std::thread::Builder::new()
        .name("shmq-signals".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            };
            let signo = rt.block_on(async {
                use tokio::signal::unix::{SignalKind, signal};
                let (mut int, mut term) = match (
                    signal(SignalKind::interrupt()),
                    signal(SignalKind::terminate()),
                ) {
                    (Ok(i), Ok(t)) => (i, t),
                    (Err(e), _) | (_, Err(e)) => {
                        let _ = tx.send(Err(e));
                        return None;
                    }
                };
                let _ = tx.send(Ok(()));
                tokio::select! {
                    _ = int.recv() => Some(Signal::INT),
                    _ = term.recv() => Some(Signal::TERM),
                }
            });
            if let Some(sig) = signo {
                stop(sig.as_raw());
            }
        })
        .context("starting the signal thread")?;
    rx.recv()
        .context("the signal thread ended")?
        .context("handling SIGINT and SIGTERM")
}

/// The signal thread's work once a signal came: end the children, give the main thread
/// [`GRACE`] to finish, then clean up and exit in its place.
fn stop(signo: i32) -> ! {
    SIGNAL.store(signo, Ordering::SeqCst);
    eprintln!("shmq: interrupted: ending the child processes and removing the segments");
    let start = Instant::now();
    while start.elapsed() < GRACE {
        kill_children();
        std::thread::sleep(Duration::from_millis(5));
    }
    kill_children();
    shmq_testkit::unlink_all_names();
    std::process::exit(128 + signo);
}

fn kill_children() {
    for pid in shmq_testkit::children() {
        if let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
            // Not reaped yet (the list drops a child once it is), so the pid is still ours.
            let _ = kill_process(pid, Signal::KILL);
        }
    }
}

/// The signal received (its number), if one was.
pub(crate) fn signalled() -> Option<i32> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// The exit status after an interruption: 128 + the signal's number.
pub(crate) fn exit_code() -> Option<u8> {
    signalled().and_then(|s| u8::try_from(128 + s).ok())
}

/// An error once a signal came: work that would start processes or make segments stops.
///
/// # Errors
///
/// After SIGINT or SIGTERM.
pub(crate) fn check() -> Result<()> {
    if let Some(s) = signalled() {
        bail!("interrupted by signal {s}");
    }
    Ok(())
}
