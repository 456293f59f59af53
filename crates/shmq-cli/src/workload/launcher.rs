//! The parent's side: starting children with a role, reading their protocol lines, and the
//! named queues a workload creates and removes.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, ChildStderr, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result, anyhow, bail, ensure};
use serde::Deserialize;
use shmq::{Options, Queue};

use super::roles::Role;
use super::{CHILD_ENV, CPU_ENV, READY, REPORT};

/// How to start a child: an executable and the arguments that make it call [`run_child`](super::run_child) (the
/// role itself travels in [`CHILD_ENV`]).
#[derive(Debug, Clone)]
pub struct Launcher {
    exe: PathBuf,
    args: Vec<OsString>,
    pin: bool,
}

impl Launcher {
    /// Children run `exe args..` with the role in the environment.
    pub fn new(exe: PathBuf, args: Vec<OsString>) -> Launcher {
        Launcher {
            exe,
            args,
            pin: false,
        }
    }

    /// With `pin`, every sending side (producers, the ping client, the parent's lock hammer
    /// peer excepted) runs on CPU 0 and every receiving side on CPU 1, so that a run measures
    /// the cross-CPU case rather than wherever the scheduler happens to place the processes.
    pub fn pinned(mut self, pin: bool) -> Launcher {
        self.pin = pin;
        self
    }

    fn cpu_for(role: &Role) -> usize {
        match role {
            Role::ShmqProducer { .. }
            | Role::PipeProducer { .. }
            | Role::SocketProducer { .. }
            | Role::PingClient { .. }
            | Role::FloorProducer { .. }
            | Role::FloorPing { .. } => 0,
            _ => 1,
        }
    }

    /// Children run the current executable with `args`.
    ///
    /// # Errors
    ///
    /// If the path of the current executable is unknown.
    pub fn current_exe(args: &[&str]) -> Result<Launcher> {
        let exe = std::env::current_exe().context("locating the current executable")?;
        Ok(Launcher::new(
            exe,
            args.iter().map(OsString::from).collect(),
        ))
    }

    pub(super) fn spawn(&self, role: &Role, stdin: Stdio, stdout: Stdio) -> Result<Proc> {
        let mut cmd = Command::new(&self.exe);
        if self.pin {
            cmd.env(CPU_ENV, Self::cpu_for(role).to_string());
        }
        let mut child = cmd
            .args(&self.args)
            .env(CHILD_ENV, serde_json::to_string(role)?)
            .stdin(stdin)
            .stdout(stdout)
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", self.exe.display()))?;
        let err = child
            .stderr
            .take()
            .map(BufReader::new)
            .ok_or_else(|| anyhow!("child without stderr"))?;
        Ok(Proc {
            child,
            err,
            what: role_name(role),
            log: String::new(),
        })
    }
}

fn role_name(role: &Role) -> String {
    serde_json::to_value(role)
        .ok()
        .and_then(|v| v.get("role").and_then(|r| r.as_str()).map(str::to_owned))
        .unwrap_or_else(|| "child".into())
}

/// A running child and its stderr.
pub(super) struct Proc {
    child: Child,
    err: BufReader<ChildStderr>,
    what: String,
    log: String,
}

impl Proc {
    /// Reads stderr up to the next protocol line starting with `tag`; returns its rest.
    fn expect(&mut self, tag: &str) -> Result<String> {
        let mut line = String::new();
        loop {
            line.clear();
            if self.err.read_line(&mut line)? == 0 {
                let status = self.child.wait()?;
                bail!(
                    "{} exited ({status}) before {}: {}",
                    self.what,
                    tag.trim(),
                    self.log.trim()
                );
            }
            if let Some(rest) = line.strip_prefix(tag) {
                return Ok(rest.trim_end().to_owned());
            }
            self.log.push_str(&line);
        }
    }

    pub(super) fn ready(&mut self) -> Result<()> {
        self.expect(READY).map(drop)
    }

    pub(super) fn report<T: for<'de> Deserialize<'de>>(&mut self) -> Result<T> {
        let json = self.expect(REPORT)?;
        serde_json::from_str(&json).with_context(|| format!("bad report from {}", self.what))
    }

    /// Waits for the exit; an error if it failed.
    pub(super) fn finish(mut self) -> Result<()> {
        let mut rest = String::new();
        self.err.read_to_string(&mut rest)?;
        self.log.push_str(&rest);
        let status = self.child.wait()?;
        ensure!(
            status.success(),
            "{} failed ({status}): {}",
            self.what,
            self.log.trim()
        );
        Ok(())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // A child left running after an error would hold its end of a pipe or a queue forever.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A named queue that is unlinked when dropped.
pub(super) struct Named {
    pub(super) name: String,
    pub(super) queue: Queue,
}

impl Named {
    pub(super) fn create(tag: &str, capacity: usize, message_size: usize) -> Result<Named> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "shmq-bench-{}-{}-{tag}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let queue = Queue::create(
            &name,
            &Options {
                capacity,
                message_size,
                ..Options::default()
            },
        )
        .with_context(|| format!("creating {name}"))?;
        Ok(Named { name, queue })
    }
}

impl Drop for Named {
    fn drop(&mut self) {
        let _ = Queue::unlink(&self.name);
    }
}
