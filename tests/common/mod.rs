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

/// Checks what the `q-stress-consumer` children printed (each an `(id, seq)` pair of `u32`s per
/// message, `producers` producers of `per` messages each): every message exactly once. Returns
/// how many there were.
pub fn check_stress_outputs(outs: Vec<Vec<u8>>, producers: usize, per: usize) -> usize {
    let mut seen = vec![vec![false; per]; producers];
    let mut total = 0usize;
    for out in outs {
        assert_eq!(out.len() % 8, 0, "a consumer's output is torn");
        for pair in out.chunks_exact(8) {
            let id = u32::from_le_bytes(pair[..4].try_into().unwrap()) as usize;
            let seq = u32::from_le_bytes(pair[4..].try_into().unwrap()) as usize;
            assert!(!seen[id][seq], "message {id}:{seq} delivered twice");
            seen[id][seq] = true;
            total += 1;
        }
    }
    assert_eq!(total, producers * per, "messages lost");
    total
}

/// Overwrites bytes of the segment `name` in `/dev/shm` at `offset`, as a damaged or hostile
/// peer would.
pub fn write_segment_bytes(name: &str, offset: u64, bytes: &[u8]) {
    std::os::unix::fs::FileExt::write_at(
        &std::fs::OpenOptions::new()
            .write(true)
            .open(format!("/dev/shm/{name}"))
            .unwrap(),
        bytes,
        offset,
    )
    .unwrap();
}
