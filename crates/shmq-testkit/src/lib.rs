//! Child processes, unique segment names and watchdogs, shared by shmq's multi-process tests
//! (`tests/common`), the `shmq demo` scenarios and the benchmark workloads of `shmq-cli`.
//! Internal to the workspace: not published, not documented for users.
//!
//! - [`Proc`]: a child process with one of its output streams read line by line; killed and
//!   reaped on drop, so that no child outlives the code that started it.
//! - [`Name`]: a segment name unique to this process and call, removed on drop.
//! - [`Watchdog`]: turns a deadlock into a failure: after its limit it kills every child started
//!   through [`Proc`], removes every [`Name`], and exits the process with status 101.
//! - [`run_with_limit`]: runs a command to completion with input and a time limit.

pub mod nats;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Where named segments live on Linux.
const SHM_DIR: &str = "/dev/shm";

fn lock<T>(m: &'static Mutex<T>) -> MutexGuard<'static, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Every [`Name`] alive, so that the watchdog can remove them before failing.
static NAMES: Mutex<Vec<String>> = Mutex::new(Vec::new());
/// Pids of the children started and not yet reaped, so that the watchdog can kill them.
static CHILDREN: Mutex<Vec<u32>> = Mutex::new(Vec::new());

pub mod big;

/// Removes the segment `name` from `/dev/shm` if it is there, with the side segments of its
/// large messages (`<name>.big.*`).
pub fn unlink(name: &str) {
    let _ = std::fs::remove_file(std::path::Path::new(SHM_DIR).join(name));
    for side in big::side_segments(name) {
        let _ = std::fs::remove_file(std::path::Path::new(SHM_DIR).join(side));
    }
}

/// A segment name unique to this process and call, removed (if it still exists) on drop, also
/// when a test fails or the watchdog fires.
#[derive(Debug)]
pub struct Name(pub String);

impl Name {
    /// `{prefix}-{tag}-{pid}-{n}`.
    pub fn with_prefix(prefix: &str, tag: &str) -> Name {
        static N: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "{prefix}-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        lock(&NAMES).push(name.clone());
        Name(name)
    }

    /// A test segment name: `shmq-test-{tag}-{pid}-{n}`.
    pub fn new(tag: &str) -> Name {
        Name::with_prefix("shmq-test", tag)
    }

    /// The name.
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
        unlink(&self.0);
        lock(&NAMES).retain(|n| *n != self.0);
    }
}

/// Fails the whole process (exit 101, after killing every child and removing every name) if it
/// is still alive `limit` after creation: a deadlock becomes a failure instead of a hang.
#[derive(Debug)]
pub struct Watchdog {
    done: Option<mpsc::Sender<()>>,
}

impl Watchdog {
    /// Starts the watchdog; dropping it disarms it.
    pub fn new(what: &'static str, limit: Duration) -> Watchdog {
        let (tx, rx) = mpsc::channel::<()>();
        std::thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
                eprintln!("WATCHDOG: {what} still running after {limit:?}: deadlock? failing");
                for pid in children() {
                    kill(pid, 9);
                }
                unlink_all_names();
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

/// The pids of the children started through [`Proc`] in this process and not reaped yet.
pub fn children() -> Vec<u32> {
    lock(&CHILDREN).clone()
}

/// Removes the segment of every [`Name`] alive in this process (with its side segments), for a
/// process about to exit without running their destructors.
pub fn unlink_all_names() {
    for name in lock(&NAMES).iter() {
        unlink(name);
    }
}

/// Sends signal number `sig` to `pid` (through kill(1): no unsafe code here).
pub fn kill(pid: u32, sig: i32) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Which output stream of a child [`Proc`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Its stdout (stderr is left as the command says).
    Stdout,
    /// Its stderr (stdout is left as the command says).
    Stderr,
}

/// A running child with one output stream piped to us. Killed and reaped on drop if it is
/// still running.
pub struct Proc {
    /// The child (for `id`, `kill`, `wait` beyond what [`Proc`] offers).
    pub child: Child,
    reader: Option<BufReader<Box<dyn Read + Send>>>,
    /// What it is, for messages.
    pub what: String,
    /// The lines [`expect`](Self::expect) skipped, for error messages.
    pub log: String,
}

impl std::fmt::Debug for Proc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proc")
            .field("pid", &self.child.id())
            .field("what", &self.what)
            .finish_non_exhaustive()
    }
}

impl Proc {
    /// Starts `cmd` with its stdout piped to us (stdin and stderr as `cmd` says).
    ///
    /// # Errors
    ///
    /// If the process cannot be started.
    pub fn spawn(cmd: &mut Command, what: &str) -> std::io::Result<Proc> {
        Proc::spawn_reading(cmd, what, Stream::Stdout)
    }

    /// Starts `cmd` with `stream` piped to us.
    ///
    /// # Errors
    ///
    /// If the process cannot be started.
    pub fn spawn_reading(cmd: &mut Command, what: &str, stream: Stream) -> std::io::Result<Proc> {
        match stream {
            Stream::Stdout => cmd.stdout(Stdio::piped()),
            Stream::Stderr => cmd.stderr(Stdio::piped()),
        };
        let mut child = cmd.spawn()?;
        lock(&CHILDREN).push(child.id());
        let reader: Option<Box<dyn Read + Send>> = match stream {
            Stream::Stdout => child.stdout.take().map(|s| Box::new(s) as _),
            Stream::Stderr => child.stderr.take().map(|s| Box::new(s) as _),
        };
        Ok(Proc {
            child,
            reader: reader.map(BufReader::new),
            what: what.to_owned(),
            log: String::new(),
        })
    }

    /// Takes the piped output, to read it elsewhere (a thread); bytes already buffered come
    /// first. Line reads on this `Proc` then see end of output.
    pub fn take_output(&mut self) -> Option<BufReader<Box<dyn Read + Send>>> {
        self.reader.take()
    }

    /// The child's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The next line of output without its newline; `None` at end of output.
    ///
    /// # Errors
    ///
    /// A read error.
    pub fn try_line(&mut self) -> std::io::Result<Option<String>> {
        let mut s = String::new();
        let Some(r) = &mut self.reader else {
            return Ok(None);
        };
        if r.read_line(&mut s)? == 0 {
            return Ok(None);
        }
        Ok(Some(s.strip_suffix('\n').unwrap_or(&s).to_owned()))
    }

    /// The next line of output (without the newline; empty at end of output).
    ///
    /// # Panics
    ///
    /// On a read error.
    pub fn line(&mut self) -> String {
        self.try_line()
            .unwrap_or_else(|e| panic!("reading from {}: {e}", self.what))
            .unwrap_or_default()
    }

    /// Reads lines up to the next one starting with `tag` and returns its rest (trimmed at the
    /// end); other lines are kept in [`log`](Self::log).
    ///
    /// # Errors
    ///
    /// If the output ends first (with the exit status and what it printed), or a read error.
    pub fn expect(&mut self, tag: &str) -> std::io::Result<String> {
        loop {
            match self.try_line()? {
                Some(line) => match line.strip_prefix(tag) {
                    Some(rest) => return Ok(rest.trim_end().to_owned()),
                    None => {
                        self.log.push_str(&line);
                        self.log.push('\n');
                    }
                },
                None => {
                    let status = self.reap()?;
                    return Err(std::io::Error::other(format!(
                        "{} exited ({status}) before {}: {}",
                        self.what,
                        tag.trim(),
                        self.log.trim()
                    )));
                }
            }
        }
    }

    fn reap(&mut self) -> std::io::Result<ExitStatus> {
        let status = self.child.wait()?;
        let pid = self.child.id();
        lock(&CHILDREN).retain(|p| *p != pid);
        Ok(status)
    }

    /// Reads the rest of the output and waits for the exit.
    ///
    /// # Errors
    ///
    /// A read or wait error.
    pub fn try_finish(mut self) -> std::io::Result<(Vec<u8>, ExitStatus)> {
        let mut out = Vec::new();
        if let Some(mut r) = self.reader.take() {
            r.read_to_end(&mut out)?;
        }
        let status = self.reap()?;
        Ok((out, status))
    }

    /// Waits for the child, asserts it exited with status 0 and returns the rest of its output.
    ///
    /// # Panics
    ///
    /// If it failed.
    pub fn finish(self) -> Vec<u8> {
        let (what, pid) = (self.what.clone(), self.pid());
        let (out, status) = self
            .try_finish()
            .unwrap_or_else(|e| panic!("waiting for {what} ({pid}): {e}"));
        assert!(status.success(), "child {what} ({pid}) failed: {status}");
        out
    }

    /// [`finish`](Self::finish) as text lines.
    ///
    /// # Panics
    ///
    /// If it failed or did not print UTF-8.
    pub fn finish_lines(self) -> Vec<String> {
        String::from_utf8(self.finish())
            .expect("child printed UTF-8")
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// SIGKILLs the child and reaps it.
    ///
    /// # Panics
    ///
    /// If it had already exited by itself (whatever its status: a child that failed before
    /// the kill, on an error it should not have met, must not pass for one that was killed).
    pub fn kill9(&mut self) {
        self.child.kill().expect("SIGKILL the child"); // std sends SIGKILL on Unix
        let status = self.reap().expect("wait for child");
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9),
            "{} had already exited by itself before the SIGKILL ({status}; its stderr says why)",
            self.what
        );
    }

    /// Waits for the child to exit and returns its status.
    ///
    /// # Panics
    ///
    /// If waiting fails.
    pub fn wait_status(&mut self) -> ExitStatus {
        self.reap().expect("wait for child")
    }
}

impl Drop for Proc {
    /// A child still running when its owner is dropped (a failed assertion, an error path) is
    /// killed, so that no process outlives it blocked on a segment that is about to go.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.reap();
    }
}

/// Finishes every process in parallel (so that none blocks on a full pipe while we wait on
/// another) and returns their outputs and exit statuses in order.
pub fn try_finish_all(procs: Vec<Proc>) -> Vec<std::io::Result<(Vec<u8>, ExitStatus)>> {
    std::thread::scope(|s| {
        let handles: Vec<_> = procs
            .into_iter()
            .map(|p| s.spawn(move || p.try_finish()))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(std::io::Error::other("reader panicked")))
            })
            .collect()
    })
}

/// [`try_finish_all`], asserting that each exited with status 0; returns their outputs.
///
/// # Panics
///
/// If one failed.
pub fn finish_all(procs: Vec<Proc>) -> Vec<Vec<u8>> {
    let names: Vec<String> = procs
        .iter()
        .map(|p| format!("{} ({})", p.what, p.pid()))
        .collect();
    try_finish_all(procs)
        .into_iter()
        .zip(names)
        .map(|(r, name)| {
            let (out, status) = r.unwrap_or_else(|e| panic!("waiting for {name}: {e}"));
            assert!(status.success(), "child {name} failed: {status}");
            out
        })
        .collect()
}

/// Whether `f` returns true within `limit`, polling every 5 ms.
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

/// Runs `cmd` to completion with `input` on its stdin and its stdout and stderr captured; a
/// run still going after `limit` is SIGKILLed and the call panics (a hang becomes a failure).
///
/// # Panics
///
/// If the command cannot be started, or outlives `limit`.
pub fn run_with_limit(cmd: &mut Command, input: &[u8], limit: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let pid = child.id();
    lock(&CHILDREN).push(pid);
    let mut stdin = child.stdin.take();
    let input = input.to_vec();
    let (tx, rx) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        // Fed from its own thread: a child that does not read its input must not block us.
        let feeder = std::thread::spawn(move || {
            if let Some(s) = &mut stdin {
                let _ = s.write_all(&input);
            }
        });
        let out = child.wait_with_output();
        let _ = feeder.join();
        let _ = tx.send(());
        out
    });
    if rx.recv_timeout(limit).is_err() {
        kill(pid, 9);
        panic!("{cmd:?} still running after {limit:?}");
    }
    lock(&CHILDREN).retain(|p| *p != pid);
    waiter
        .join()
        .expect("waiter thread")
        .unwrap_or_else(|e| panic!("waiting for {cmd:?}: {e}"))
}
