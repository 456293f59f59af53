//! Roles of the kill tests and the torture run (`tests/kill_mp.rs`, `tests/torture_mp.rs`):
//! producers and consumers that run until SIGKILLed and report, record by record, what the queue
//! acknowledged to them, so that the parent can tell after any kill what must still be there.
//!
//! Records are little-endian `u32`s written to stdout with one `write` each, bypassing `std`'s
//! line buffering (a record is far below `PIPE_BUF`, so it is never torn, and once `write`
//! returned it survives our death):
//!
//! - a producer writes the sequence number of each message whose put returned `Ok` (for a batch,
//!   the last of it), after the put returned;
//! - a consumer writes `(id, seq)` pairs: with [`TAG_PENDING`] in the top bits of `id` from
//!   inside `get_with`'s closure (the message is being read, the get has not committed), then
//!   plain after the get returned (committed), and (workers) with [`TAG_DONE`] after its
//!   `task_done` returned. A message that fails its checksum is reported as `(CORRUPT, CORRUPT)`.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use shmq::{GetError, Queue};

use crate::shared::{check_stress, stress_message};
use crate::{arg, say};

/// `id` bit of a consumer record written before its get committed.
pub(crate) const TAG_PENDING: u32 = 1 << 31;
/// `id` bit of a worker's record written after its `task_done` for that message returned.
pub(crate) const TAG_DONE: u32 = 1 << 30;
/// Both words of the record of a message that failed its checksum.
pub(crate) const CORRUPT: u32 = u32::MAX;

fn open(name: &str) -> Queue {
    Queue::open(name).unwrap_or_else(|e| {
        eprintln!("shmq-child: open {name}: {e}");
        std::process::exit(65)
    })
}

/// Writes `words` as one record.
fn record(words: &[u32]) {
    let mut b = [0u8; 64];
    for (i, w) in words.iter().enumerate() {
        b[i * 4..i * 4 + 4].copy_from_slice(&w.to_le_bytes());
    }
    raw_stdout()
        .write_all(&b[..words.len() * 4])
        .expect("write record");
}

/// Standard output without `std`'s line buffering, which splits a write at a newline byte: one
/// `write` per record.
fn raw_stdout() -> &'static std::fs::File {
    static OUT: std::sync::OnceLock<std::fs::File> = std::sync::OnceLock::new();
    OUT.get_or_init(|| {
        std::fs::OpenOptions::new()
            .write(true)
            .open("/proc/self/fd/1")
            .expect("open standard output")
    })
}

/// Writes the records of a batch of consumed messages in one `write`.
fn record_batch(msgs: &[(u32, u32)]) {
    let mut b = Vec::with_capacity(msgs.len() * 8);
    for (id, seq) in msgs {
        b.extend_from_slice(&id.to_le_bytes());
        b.extend_from_slice(&seq.to_le_bytes());
    }
    raw_stdout().write_all(&b).expect("write records");
}

fn checked(m: &[u8]) -> (u32, u32) {
    check_stress(m).unwrap_or((CORRUPT, CORRUPT))
}

/// Runs a kill-test role, or returns `None` if `role` is not one.
pub(crate) fn run(role: &str, args: &[String]) -> Option<ExitCode> {
    let name = args.first().map(String::as_str).unwrap_or("");
    Some(match role {
        // k-producer NAME ID MODE [COUNT]: puts stress messages ID:0, ID:1, ... (up to COUNT,
        // default without end) with MODE `single` (put), `many` (put_many of 1 to 7), `with`
        // (put_with); records each acknowledged seq. Exits 0 after COUNT, or on Closed.
        "k-producer" => {
            let q = open(name);
            let (id, mode): (u32, String) = (arg(args, 1), arg(args, 2));
            let count: u32 = args.get(3).and_then(|c| c.parse().ok()).unwrap_or(u32::MAX);
            let mut seq = 0u32;
            while seq < count {
                let acked = match mode.as_str() {
                    "single" => q
                        .put(stress_message(id, seq))
                        .map(|()| 1)
                        .map_err(|e| e.is_closed()),
                    "many" => {
                        let n = (1 + seq % 7).min(count - seq);
                        let batch: Vec<[u8; 24]> =
                            (seq..seq + n).map(|s| stress_message(id, s)).collect();
                        q.put_many(&batch).map(|()| n).map_err(|e| e.is_closed())
                    }
                    "with" => q
                        .put_with(|buf| {
                            let m = stress_message(id, seq);
                            // Byte by byte, so that a kill can land half-way through.
                            for (d, s) in buf.iter_mut().zip(m) {
                                *d = s;
                            }
                            m.len()
                        })
                        .map(|()| 1)
                        .map_err(|e| e.is_closed()),
                    other => {
                        eprintln!("shmq-child: unknown mode {other:?}");
                        return Some(ExitCode::from(64));
                    }
                };
                match acked {
                    Ok(n) => {
                        seq += n;
                        record(&[seq - 1]);
                    }
                    Err(true) => break,
                    Err(false) => panic!("put failed"),
                }
            }
            ExitCode::SUCCESS
        }
        // k-consumer NAME MODE: takes messages until Closed with MODE `single` (get_into),
        // `many` (get_many of up to 8), `with` (get_with) or `many-with` (get_many_with of up
        // to 8), and records each (pending records only where a closure sees the message
        // before the get commits). The first record is written only after `ready`.
        "k-consumer" => {
            let q = open(name);
            let mode: String = arg(args, 1);
            let mut buf = [0u8; 64];
            let pending = |m: &[u8]| {
                let (id, seq) = checked(m);
                record(&[id | TAG_PENDING, seq]);
                (id, seq)
            };
            loop {
                let got: Result<Vec<(u32, u32)>, GetError> = match mode.as_str() {
                    "single" => q.get_into(&mut buf).map(|n| vec![checked(&buf[..n])]),
                    "many" => q
                        .get_many(8)
                        .map(|ms| ms.iter().map(|m| checked(m)).collect()),
                    "with" => q.get_with(pending).map(|m| vec![m]),
                    "many-with" => {
                        let mut got = Vec::new();
                        q.get_many_with(8, |m| got.push(pending(m))).map(|_| got)
                    }
                    other => {
                        eprintln!("shmq-child: unknown mode {other:?}");
                        return Some(ExitCode::from(64));
                    }
                };
                match got {
                    Ok(ms) => record_batch(&ms),
                    Err(GetError::Closed) => break ExitCode::SUCCESS,
                    Err(e) => panic!("get: {e}"),
                }
            }
        }
        // k-joiner NAME: joins in a loop, recording 1 after each join that returned,
        // until the queue is closed and nothing is unfinished.
        "k-joiner" => {
            let q = open(name);
            loop {
                q.join().expect("join");
                record(&[1]);
                if q.is_closed() && q.unfinished() == 0 {
                    break ExitCode::SUCCESS;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        // k-worker NAME MODE: as `k-consumer` with MODE `with` or `many-with` (pending, then
        // committed records), then task_done for each message taken and a done record for
        // each, until Closed.
        "k-worker" => {
            let q = open(name);
            let mode: String = arg(args, 1);
            let pending = |m: &[u8]| {
                let (id, seq) = checked(m);
                record(&[id | TAG_PENDING, seq]);
                (id, seq)
            };
            loop {
                let got = match mode.as_str() {
                    "with" => q.get_with(pending).map(|m| vec![m]),
                    "many-with" => {
                        let mut got = Vec::new();
                        q.get_many_with(8, |m| got.push(pending(m))).map(|_| got)
                    }
                    other => {
                        eprintln!("shmq-child: unknown mode {other:?}");
                        return Some(ExitCode::from(64));
                    }
                };
                match got {
                    Ok(ms) => {
                        record_batch(&ms);
                        for (id, seq) in ms {
                            q.task_done().expect("task_done");
                            record(&[id | TAG_DONE, seq]);
                        }
                    }
                    Err(GetError::Closed) => break ExitCode::SUCCESS,
                    Err(e) => panic!("get: {e}"),
                }
            }
        }
        // Dies inside get_many_with, after the first of the messages has been seen.
        #[cfg(feature = "crash-points")]
        "crash-in-get-many" => {
            let q = open(name);
            let mut first = true;
            let _ = q.get_many_with(8, |m| {
                if !first {
                    say(format!("holding {}", String::from_utf8_lossy(m)));
                    crate::hang()
                }
                first = false;
            });
            ExitCode::from(1)
        }
        _ => return None,
    })
}
