//! The parent's side: starting children with a role, reading their protocol lines, and the
//! named queues a workload creates and removes.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, ensure};
use serde::Deserialize;
use shmq::{Options, Queue};
use shmq_testkit::{Name, Stream};

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
            | Role::FloorPing { .. }
            | Role::VyukovProducer { .. }
            | Role::VyukovPing { .. } => 0,
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
        cmd.args(&self.args)
            .env(CHILD_ENV, serde_json::to_string(role)?)
            .stdin(stdin)
            .stdout(stdout);
        let p = shmq_testkit::Proc::spawn_reading(&mut cmd, &role_name(role), Stream::Stderr)
            .with_context(|| format!("starting {}", self.exe.display()))?;
        Ok(Proc(p))
    }
}

fn role_name(role: &Role) -> String {
    serde_json::to_value(role)
        .ok()
        .and_then(|v| v.get("role").and_then(|r| r.as_str()).map(str::to_owned))
        .unwrap_or_else(|| "child".into())
}

/// A running child whose stderr carries the protocol lines (killed on drop if still running).
pub(super) struct Proc(shmq_testkit::Proc);

impl Proc {
    pub(super) fn ready(&mut self) -> Result<()> {
        self.0.expect(READY)?;
        Ok(())
    }

    pub(super) fn report<T: for<'de> Deserialize<'de>>(&mut self) -> Result<T> {
        let json = self.0.expect(REPORT)?;
        serde_json::from_str(&json).with_context(|| format!("bad report from {}", self.0.what))
    }

    /// Waits for the exit; an error if it failed.
    pub(super) fn finish(self) -> Result<()> {
        let (what, log) = (self.0.what.clone(), self.0.log.clone());
        let (rest, status) = self.0.try_finish()?;
        ensure!(
            status.success(),
            "{what} failed ({status}): {}{}",
            log,
            String::from_utf8_lossy(&rest).trim()
        );
        Ok(())
    }
}

/// A named queue that is unlinked when dropped.
pub(super) struct Named {
    pub(super) name: String,
    pub(super) queue: Queue,
    /// Removes the segment on drop.
    _unlink: Name,
}

impl Named {
    pub(super) fn create(tag: &str, capacity: usize, message_size: usize) -> Result<Named> {
        let name = Name::with_prefix("shmq-bench", tag);
        let queue = Queue::create(
            &name,
            &Options {
                capacity,
                message_size,
                ..Options::default()
            },
        )
        .with_context(|| format!("creating {}", name.as_str()))?;
        Ok(Named {
            name: name.0.clone(),
            queue,
            _unlink: name,
        })
    }
}
