//! Helpers of the kill tests and the torture run: children whose binary records are collected
//! while they run, and a small generator.

#![allow(dead_code, unreachable_pub)]

use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::{Proc, spawn};

/// `id` bit of a consumer record written before its get committed (`tests/src/child/kill.rs`).
pub const TAG_PENDING: u32 = 1 << 31;
/// `id` bit of a worker's record written after its `task_done` returned.
pub const TAG_DONE: u32 = 1 << 30;
/// The record of a message that failed its checksum.
pub const CORRUPT: u32 = u32::MAX;

pub fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A child and the little-endian `u32` words it writes, collected by a thread.
pub struct Recorded {
    pub proc: Proc,
    pub words: Arc<Mutex<Vec<u32>>>,
    reader: Option<std::thread::JoinHandle<()>>,
    pub killed: bool,
}

impl Recorded {
    pub fn spawn(role: &str, args: &[&str]) -> Recorded {
        let mut proc = spawn(role, args);
        let mut out = proc.take_output().expect("stdout");
        let words = Arc::new(Mutex::new(Vec::new()));
        let w = Arc::clone(&words);
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            let mut rest: Vec<u8> = Vec::new();
            loop {
                let n = match out.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                rest.extend_from_slice(&buf[..n]);
                let whole = rest.len() / 4 * 4;
                let mut v = w.lock().unwrap();
                v.extend(
                    rest[..whole]
                        .chunks_exact(4)
                        .map(|c| u32::from_le_bytes(c.try_into().unwrap())),
                );
                drop(v);
                rest.drain(..whole);
            }
            assert!(rest.is_empty(), "a torn record");
        });
        Recorded {
            proc,
            words,
            reader: Some(reader),
            killed: false,
        }
    }

    pub fn len(&self) -> usize {
        self.words.lock().unwrap().len()
    }

    /// Committed records written so far (consumers).
    pub fn committed(&self) -> usize {
        self.words
            .lock()
            .unwrap()
            .chunks_exact(2)
            .filter(|r| r[0] & TAG_PENDING == 0)
            .count()
    }

    pub fn kill(&mut self) {
        self.proc.kill9();
        self.killed = true;
    }

    /// Waits for the child to end and its output to be read; returns the words.
    pub fn collect(&mut self) -> Vec<u32> {
        if !self.killed {
            let status = self.proc.wait_status();
            assert!(status.success(), "{} failed: {status}", self.proc.what);
        }
        if let Some(r) = self.reader.take() {
            r.join().expect("reader");
        }
        self.words.lock().unwrap().clone()
    }
}

/// Waits (no limit: the test's watchdog is the limit) until `f` holds.
pub fn wait_for(mut f: impl FnMut() -> bool) {
    while !f() {
        std::thread::sleep(Duration::from_micros(200));
    }
}

pub struct Rng(pub u64);

impl Rng {
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}
