//! `shmq-child ROLE ARGS...`: the helper process of the multi-process tests. Each role is one
//! side of a scenario (a producer, a consumer, a process that dies inside a critical section);
//! the segment's name comes on the command line. Exit status 0 means the role's own checks held.
//!
//! Roles whose name starts with `crash-` are only built with the `crash-points` feature.

// The only unsafe code is the `fork` of the pipe's fork roles (`pipe::fork`) and of the
// anonymous-queue roles (`paths::fork`).
#![deny(unsafe_code)]

mod chan;
mod dict;
mod fuzz;
mod kill;
mod large;
mod paths;
mod pipe;
mod queue;
#[path = "../shared.rs"]
mod shared;

use std::io::Write;
use std::process::ExitCode;

/// Prints a line and flushes, so the parent can read it while the child still runs.
pub(crate) fn say(line: impl std::fmt::Display) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Parses argument `i` or exits with status 64.
pub(crate) fn arg<T: std::str::FromStr>(args: &[String], i: usize) -> T {
    args.get(i).and_then(|a| a.parse().ok()).unwrap_or_else(|| {
        eprintln!("shmq-child: argument {i} missing or malformed in {args:?}");
        std::process::exit(64)
    })
}

/// Sleeps until killed (the parent SIGKILLs us inside a critical section).
#[cfg(feature = "crash-points")]
pub(crate) fn hang() -> ! {
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(role) = args.first() else {
        eprintln!("usage: shmq-child ROLE ARGS...");
        return ExitCode::from(64);
    };
    let rest = &args[1..];
    if let Some(code) = chan::run(role, rest) {
        return code;
    }
    if let Some(code) = queue::run(role, rest) {
        return code;
    }
    if let Some(code) = pipe::run(role, rest) {
        return code;
    }
    if let Some(code) = dict::run(role, rest) {
        return code;
    }
    if let Some(code) = large::run(role, rest) {
        return code;
    }
    if let Some(code) = paths::run(role, rest) {
        return code;
    }
    if let Some(code) = kill::run(role, rest) {
        return code;
    }
    if let Some(code) = fuzz::run(role, rest) {
        return code;
    }
    eprintln!("shmq-child: unknown role {role:?}");
    ExitCode::from(64)
}
