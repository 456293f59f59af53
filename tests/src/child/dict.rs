//! Roles over a [`shmq_dict::SharedDict`], a [`shmq_dict::Lock`] and a
//! [`shmq_dict::ProcessLock`]: the seed's `count -= 1` race in its locked, unlocked and `add`
//! forms, holders that die inside a critical section, and a lock released by another process.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use shmq_dict::{Lock, ProcessLock, SharedDict};

use crate::{arg, say};

/// The key every decrementer reports in on before the start.
pub(crate) const READY: &str = "ready";
/// The key the parent sets to 1 to start every decrementer at once.
pub(crate) const GO: &str = "go";
/// The shared counter.
pub(crate) const COUNT: &str = "count";

fn open(name: &str) -> SharedDict {
    SharedDict::open(name).unwrap_or_else(|e| {
        eprintln!("shmq-child: open dict {name}: {e}");
        std::process::exit(65)
    })
}

fn open_lock(name: &str) -> Lock {
    Lock::open(name).unwrap_or_else(|e| {
        eprintln!("shmq-child: open lock {name}: {e}");
        std::process::exit(65)
    })
}

/// Reports in (`ready += 1`) and waits until the parent sets `go`, so that every process starts
/// its read-modify-write at about the same moment.
fn start_line(d: &SharedDict) {
    d.add(READY, 1).expect("add ready");
    let give_up = Instant::now() + Duration::from_secs(30);
    while d.get(GO).expect("get go") != Some(1) {
        if Instant::now() > give_up {
            eprintln!("shmq-child: no start signal within 30 s");
            std::process::exit(66);
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

fn pause(us: u64) {
    if us > 0 {
        std::thread::sleep(Duration::from_micros(us));
    }
}

/// Runs a dict role, or returns `None` if `role` is not one.
pub(crate) fn run(role: &str, args: &[String]) -> Option<ExitCode> {
    let name = args.first().map(String::as_str).unwrap_or("");
    Some(match role {
        // dict-decrement NAME MODE PAUSE_US: one `count -= 1` after the start line, with a pause
        // of PAUSE_US between the read and the write. MODE is `locked` (under the dict's guard),
        // `unlocked` (a get and an insert, two separate atomic calls), `add` (one add(-1)), or
        // `lock:LOCKNAME` (get and insert inside a separate named Lock).
        "dict-decrement" => {
            let d = open(name);
            let (mode, pause_us): (String, u64) = (arg(args, 1), arg(args, 2));
            start_line(&d);
            match mode.as_str() {
                "locked" => {
                    let mut g = d.lock().expect("lock");
                    let v = g.get(COUNT).expect("get").expect("count is set");
                    pause(pause_us);
                    g.insert(COUNT, v - 1).expect("insert");
                }
                "unlocked" => {
                    let v = d.get(COUNT).expect("get").expect("count is set");
                    pause(pause_us);
                    d.insert(COUNT, v - 1).expect("insert");
                }
                "add" => {
                    d.add(COUNT, -1).expect("add");
                }
                other => {
                    let Some(lock_name) = other.strip_prefix("lock:") else {
                        eprintln!("shmq-child: unknown mode {other:?}");
                        return Some(ExitCode::from(64));
                    };
                    let lock = open_lock(lock_name);
                    let g = lock.lock().expect("lock");
                    let v = d.get(COUNT).expect("get").expect("count is set");
                    pause(pause_us);
                    d.insert(COUNT, v - 1).expect("insert");
                    drop(g);
                }
            }
            ExitCode::SUCCESS
        }
        // Takes the dict's lock, reads `count`, prints "holding V", writes V-1 if the second
        // argument is `after` (not if `before`), then waits for SIGKILL.
        #[cfg(feature = "crash-points")]
        "crash-dict-hold" => {
            let d = open(name);
            let when: String = arg(args, 1);
            let mut g = d.lock().expect("lock");
            let v = g.get(COUNT).expect("get").expect("count is set");
            if when == "after" {
                g.insert(COUNT, v - 1).expect("insert");
            }
            say(format!("holding {v}"));
            crate::hang()
        }
        // Takes the dict's lock, inserts `kI` = I for I in 0..N, prints "holding", then inserts,
        // updates, adds and removes those keys without pause until killed: the kill lands inside
        // some operation. Every value written to `kI` is congruent to I modulo 1000, so a torn
        // entry would show.
        #[cfg(feature = "crash-points")]
        "crash-dict-churn" => {
            let d = open(name);
            let n: usize = arg(args, 1);
            let mut g = d.lock().expect("lock");
            for i in 0..n {
                g.insert(&format!("k{i}"), i as i64).expect("insert");
            }
            say("holding");
            let mut round: i64 = 1;
            loop {
                for i in 0..n {
                    let key = format!("k{i}");
                    let v = 1000 * round + i as i64;
                    let present = g.contains_key(&key).expect("contains_key");
                    match (round + i as i64) % 3 {
                        0 => {
                            g.insert(&key, v).expect("insert");
                        }
                        // add only to a present key, so that values stay congruent to I
                        1 if present => {
                            g.add(&key, 1000).expect("add");
                        }
                        1 => {
                            g.insert(&key, v).expect("insert");
                        }
                        _ => {
                            g.remove(&key).expect("remove");
                        }
                    }
                }
                round += 1;
            }
        }
        // Takes the named Lock LOCKNAME, prints "holding", then waits for SIGKILL.
        #[cfg(feature = "crash-points")]
        "crash-lock-hold" => {
            let lock = open_lock(name);
            let _g = lock.lock().expect("lock");
            say("holding");
            crate::hang()
        }
        // Takes the ProcessLock LOCKNAME, prints "holding", then waits for SIGKILL.
        #[cfg(feature = "crash-points")]
        "crash-plock-hold" => {
            let lock = ProcessLock::open(name).unwrap_or_else(|e| {
                eprintln!("shmq-child: open process lock {name}: {e}");
                std::process::exit(65)
            });
            let a = lock.acquire().expect("acquire");
            say(if a.previous_owner_died {
                "holding after a dead owner"
            } else {
                "holding"
            });
            crate::hang()
        }
        // plock-release LOCKNAME: releases the ProcessLock that another process holds, prints
        // "released" (or the error) and exits.
        "plock-release" => {
            let lock = ProcessLock::open(name).unwrap_or_else(|e| {
                eprintln!("shmq-child: open process lock {name}: {e}");
                std::process::exit(65)
            });
            match lock.release() {
                Ok(()) => say("released"),
                Err(e) => say(format!("error: {e}")),
            }
            ExitCode::SUCCESS
        }
        _ => return None,
    })
}
