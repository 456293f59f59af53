//! Roles over large messages on file-backed and anonymous queues, and over zero-copy puts of
//! any size (`Queue::put_with_len`): checksummed messages from `shmq_testkit::big`.

use std::path::Path;
use std::process::ExitCode;

use shmq::{GetError, Options, Queue};
use shmq_testkit::big;

use crate::{arg, say};

/// Puts `count` messages of producer `id` (bodies of skewed sizes up to `max`), every other
/// one with `put_with_len` (written in place), the others with `put`.
fn produce(q: &Queue, id: u32, count: u32, max: usize) -> Result<(), String> {
    let mut rng = big::Rng::new(u64::from(id) * 31 + 7);
    for seq in 0..count {
        let m = big::message(id, seq, big::skewed_size(rng.word(), max));
        if seq % 2 == 0 {
            q.put(&m).map_err(|e| e.to_string())?;
        } else {
            q.put_with_len(m.len(), |buf| buf.copy_from_slice(&m))
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

/// Gets until the queue is closed and drained, printing "id:seq len" per message; a damaged
/// message is exit status 66.
fn consume(q: &Queue) -> Result<(), String> {
    loop {
        match q.get() {
            Ok(m) => match big::check(&m) {
                Some((id, seq)) => say(format!("{id}:{seq} {}", m.len())),
                None => return Err(format!("a damaged message of {} bytes", m.len())),
            },
            Err(GetError::Closed) => return Ok(()),
            Err(e) => return Err(e.to_string()),
        }
    }
}

fn exit(r: Result<(), String>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shmq-child: {e}");
            ExitCode::from(66)
        }
    }
}

/// Forks; the child runs `f` and leaves with `_exit` (status 0 when `f` is true). Returns the
/// child's pid. Only for this single-threaded helper process.
#[allow(unsafe_code)]
fn fork(f: impl FnOnce() -> bool) -> i32 {
    // SAFETY: this process has one thread, so the child inherits no lock held by another.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let ok = f();
        // SAFETY: ends the forked child at once, without running the parent's exit handlers.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    pid
}

#[allow(unsafe_code)]
fn wait(pid: i32) -> bool {
    let mut status = 0;
    // SAFETY: waits for a child of this process; `status` is a valid out-pointer.
    let r = unsafe { libc::waitpid(pid, &mut status, 0) };
    r == pid && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0
}

/// Runs a role of this module, or returns `None` if `role` is not one.
pub(crate) fn run(role: &str, args: &[String]) -> Option<ExitCode> {
    Some(match role {
        // file-producer PATH ID COUNT MAX
        "file-producer" => {
            let q = Queue::open_file(Path::new(&args[0])).expect("open_file");
            exit(produce(&q, arg(args, 1), arg(args, 2), arg(args, 3)))
        }
        // file-consumer PATH
        "file-consumer" => {
            let q = Queue::open_file(Path::new(&args[0])).expect("open_file");
            exit(consume(&q))
        }
        // anon-fork COUNT MAX: an anonymous queue of 4 KiB slots shared with 2 forked
        // producers of COUNT messages each; this process consumes, prints "id:seq len" per
        // message and the queue's instance id (hex) first, and drops the queue at the end.
        "anon-fork" => {
            let (count, max): (u32, usize) = (arg(args, 0), arg(args, 1));
            let q = Queue::anonymous(&Options {
                capacity: 4,
                message_size: 4096,
                max_message_size: 8 << 20,
                ..Default::default()
            })
            .expect("anonymous");
            say(format!("{:016x}", q.segment().instance_id()));
            let kids: Vec<i32> = (0..2)
                .map(|id| fork(|| produce(&q, id, count, max).is_ok()))
                .collect();
            let mut r = Ok(());
            for _ in 0..2 * count {
                match q.get() {
                    Ok(m) => match big::check(&m) {
                        Some((id, seq)) => say(format!("{id}:{seq} {}", m.len())),
                        None => r = Err(format!("a damaged message of {} bytes", m.len())),
                    },
                    Err(e) => r = Err(e.to_string()),
                }
            }
            let waited: Vec<bool> = kids.into_iter().map(wait).collect();
            if waited.contains(&false) {
                r = Err("a producer failed".into());
            }
            drop(q);
            exit(r)
        }
        // anon-hold BODY: an anonymous queue; a forked child puts one large message of BODY
        // bytes and hangs; this process prints the instance id and the child's pid, then
        // hangs (the test kills both: nobody drops the queue).
        "anon-hold" => {
            let body: usize = arg(args, 0);
            let q = Queue::anonymous(&Options {
                capacity: 4,
                message_size: 64,
                max_message_size: 8 << 20,
                ..Default::default()
            })
            .expect("anonymous");
            let pid = fork(|| {
                if q.put(big::message(9, 0, body)).is_err() {
                    return false;
                }
                crate::hang()
            });
            while q.is_empty() {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            say(format!("{:016x} {pid}", q.segment().instance_id()));
            crate::hang()
        }
        _ => return None,
    })
}
