//! Shared helpers of the multi-process tests: unique segment names that are removed on drop, a
//! watchdog that turns a deadlock into a failure, and children run from the `shmq-child` helper.
//! Everything but [`spawn`] comes from the `shmq-testkit` crate (shared with `shmq demo` and the
//! benchmark workloads).

#![allow(dead_code, unreachable_pub, unused_imports)]

#[path = "../src/shared.rs"]
pub mod shared;

use std::process::{Command, Stdio};

pub use shmq_testkit::{Name, Proc, Watchdog, eventually, finish_all, kill};

/// The helper binary.
pub const CHILD: &str = env!("CARGO_BIN_EXE_shmq-child");

/// Starts `shmq-child ROLE ARGS...` with piped stdout (stderr inherited), registered with the
/// watchdog.
pub fn spawn(role: &str, args: &[&str]) -> Proc {
    Proc::spawn(
        Command::new(CHILD)
            .arg(role)
            .args(args)
            .stdin(Stdio::null())
            .stderr(Stdio::inherit()),
        role,
    )
    .unwrap_or_else(|e| panic!("cannot start {CHILD}: {e}"))
}
