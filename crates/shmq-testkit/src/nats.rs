//! A throwaway `nats-server -js` for the bridge's tests, demo and benchmark: a free localhost
//! port, a temporary store directory, killed (and its directory removed) on drop.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::Proc;

/// The program started.
pub const NATS_SERVER: &str = "nats-server";

/// One line saying how to get the server (Debian's package has JetStream).
pub const INSTALL_HINT: &str = "the bridge needs nats-server on PATH: `apt-get install nats-server` \
     (Debian/Ubuntu, 2.9 or later, with JetStream), or a release from nats.io";

/// Whether `nats-server` can be run.
pub fn available() -> bool {
    Command::new(NATS_SERVER)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// For a test that needs the server (marked `#[ignore = "…"]` so that a plain `cargo test`
/// counts it as ignored, not passed): panics with [`INSTALL_HINT`] when it cannot be run, so
/// that `cargo test -- --ignored` without the server fails instead of passing untested.
///
/// # Panics
///
/// If `nats-server` cannot be run.
pub fn require(test: &str) {
    assert!(available(), "{test}: {INSTALL_HINT}");
}

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A running `nats-server -js` on 127.0.0.1.
#[derive(Debug)]
pub struct NatsServer {
    proc: Option<Proc>,
    /// Its port.
    pub port: u16,
    /// Its JetStream store directory (and log file `server.log`).
    pub dir: PathBuf,
    /// Extra command-line arguments given at start (e.g. `--max_payload`), kept for restarts.
    extra: Vec<String>,
}

impl NatsServer {
    /// Starts a server with JetStream on a free port and a new temporary store directory, and
    /// waits (10 s at most) until it accepts connections.
    ///
    /// # Errors
    ///
    /// If it cannot be started or does not listen in time.
    pub fn start(extra: &[&str]) -> std::io::Result<NatsServer> {
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "shmq-nats-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)?;
        let mut s = NatsServer {
            proc: None,
            port: free_port()?,
            dir,
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
        };
        s.launch()?;
        Ok(s)
    }

    fn launch(&mut self) -> std::io::Result<()> {
        let mut cmd = Command::new(NATS_SERVER);
        cmd.args(["-js", "-a", "127.0.0.1", "-p"])
            .arg(self.port.to_string())
            .arg("-sd")
            .arg(&self.dir)
            .arg("-l")
            .arg(self.dir.join("server.log"))
            .args(&self.extra)
            .stdin(Stdio::null())
            .stderr(Stdio::null());
        self.proc = Some(Proc::spawn(&mut cmd, "nats-server")?);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            if let Some(p) = &mut self.proc
                && let Ok(Some(status)) = p.child.try_wait()
            {
                return Err(std::io::Error::other(format!(
                    "nats-server exited with {status}; log in {}",
                    self.dir.display()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(std::io::Error::other(
            "nats-server did not listen within 10 s",
        ))
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Stops the server (SIGTERM, then SIGKILL after 5 s) and waits for it; the store stays.
    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            crate::kill(p.pid(), 15);
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(5) {
                if let Ok(Some(_)) = p.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            drop(p); // SIGKILL and reap
        }
    }

    /// Stops the server and starts it again on the same port and store.
    ///
    /// # Errors
    ///
    /// As [`start`](Self::start).
    pub fn restart(&mut self) -> std::io::Result<()> {
        self.stop();
        self.launch()
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        drop(self.proc.take()); // SIGKILL and reap
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
