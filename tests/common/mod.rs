//! Shared helpers of the multi-process tests: unique segment names that are removed on drop, a
//! watchdog that turns a deadlock into a failure, and children run from the `shmq-child` helper.

#![allow(dead_code, unreachable_pub)]

#[path = "../src/shared.rs"]
pub mod shared;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The helper binary.
pub const CHILD: &str = env!("CARGO_BIN_EXE_shmq-child");

/// A segment name unique to this process, test and call, removed (if it still exists) on drop,
/// also when the test fails.
pub struct Name(pub String);

impl Name {
    pub fn new(tag: &str) -> Name {
        static N: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "shmq-test-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        names()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(name.clone());
        Name(name)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl Drop for Name {
    fn drop(&mut self) {
        let _ = shmq::Segment::unlink(&self.0);
    }
}

/// Every name handed out, so that the watchdog can remove them before failing.
fn names() -> &'static Mutex<Vec<String>> {
    static N: Mutex<Vec<String>> = Mutex::new(Vec::new());
    &N
}

/// Pids of the children alive, so that the watchdog can kill them before failing.
fn children() -> &'static Mutex<Vec<u32>> {
    static C: Mutex<Vec<u32>> = Mutex::new(Vec::new());
    &C
}

/// Fails the whole test binary (exit 101, after killing every child) if it is still running
/// `limit` after creation and not dropped: a deadlock becomes a failure instead of a hang.
pub struct Watchdog {
    done: Option<mpsc::Sender<()>>,
}

impl Watchdog {
    pub fn new(what: &'static str, limit: Duration) -> Watchdog {
        let (tx, rx) = mpsc::channel::<()>();
        std::thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
                eprintln!("WATCHDOG: {what} still running after {limit:?}: deadlock? failing");
                for pid in children().lock().unwrap_or_else(|e| e.into_inner()).iter() {
                    kill(*pid, libc::SIGKILL);
                }
                for name in names().lock().unwrap_or_else(|e| e.into_inner()).iter() {
                    let _ = shmq::Segment::unlink(name);
                }
                std::process::exit(101);
            }
        });
        Watchdog { done: Some(tx) }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        if let Some(tx) = self.done.take() {
            let _ = tx.send(());
        }
    }
}

/// Sends `sig` to `pid`.
pub fn kill(pid: u32, sig: libc::c_int) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

/// A running `shmq-child`.
pub struct Proc {
    pub child: Child,
    pub stdout: Option<BufReader<ChildStdout>>,
    pub role: String,
}

/// Starts `shmq-child ROLE ARGS...` with piped stdout.
pub fn spawn(role: &str, args: &[&str]) -> Proc {
    let child = Command::new(CHILD)
        .arg(role)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {CHILD}: {e}"));
    children()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(child.id());
    let mut child = child;
    let stdout = child.stdout.take().map(BufReader::new);
    Proc {
        child,
        stdout,
        role: role.to_owned(),
    }
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Reads one line of the child's output (without the newline).
    pub fn line(&mut self) -> String {
        let mut s = String::new();
        self.stdout
            .as_mut()
            .expect("stdout already taken")
            .read_line(&mut s)
            .expect("read child stdout");
        s.trim_end_matches('\n').to_owned()
    }

    /// Waits for the child, asserts it exited with status 0 and returns everything it printed.
    pub fn finish(mut self) -> Vec<u8> {
        let mut out = Vec::new();
        if let Some(mut r) = self.stdout.take() {
            r.read_to_end(&mut out).expect("read child stdout");
        }
        let status = self.child.wait().expect("wait for child");
        assert!(
            status.success(),
            "child {} ({}) failed: {status}",
            self.role,
            self.child.id()
        );
        out
    }

    /// [`finish`](Self::finish) as text lines.
    pub fn finish_lines(self) -> Vec<String> {
        String::from_utf8(self.finish())
            .expect("child printed UTF-8")
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// SIGKILLs the child and reaps it.
    pub fn kill9(&mut self) {
        self.child.kill().expect("SIGKILL the child"); // std sends SIGKILL on Unix
        let status = self.child.wait().expect("wait for child");
        assert!(!status.success(), "child should have died of SIGKILL");
    }

    /// Waits for the child to exit and returns its status.
    pub fn wait_status(&mut self) -> std::process::ExitStatus {
        self.child.wait().expect("wait for child")
    }
}

impl Drop for Proc {
    /// A child still running when its test ends (a failed assertion, say) is killed, so that no
    /// process outlives the test blocked on a segment that is about to be removed.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Finishes every process in parallel (so that no pipe fills up while we wait on another
/// child) and returns their outputs in order.
pub fn finish_all(procs: Vec<Proc>) -> Vec<Vec<u8>> {
    let outs = Arc::new(Mutex::new(vec![Vec::new(); procs.len()]));
    std::thread::scope(|s| {
        for (i, p) in procs.into_iter().enumerate() {
            let outs = Arc::clone(&outs);
            s.spawn(move || {
                let out = p.finish();
                outs.lock().unwrap()[i] = out;
            });
        }
    });
    Arc::try_unwrap(outs).unwrap().into_inner().unwrap()
}

/// Asserts that `f` returns true within `limit`, polling.
pub fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    f()
}
