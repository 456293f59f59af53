//! Roles over a [`shmq::PipeEnd`]. Each role takes the pipe's name and (but `p-fork-python`,
//! which creates the pipe) an end (`A` or `B`), prints `ready` once it holds that end, and exits
//! with status 0 only if its own checks held. The `p-fork-*` roles fork, which is sound here
//! because this helper is single-threaded.

use std::process::ExitCode;
use std::time::Duration;

use shmq::{End, Options, Pipe, PipeEnd, RecvError};

use crate::shared::pattern_message;
use crate::{arg, say};

fn parse_end(s: &str) -> End {
    match s {
        "A" => End::A,
        "B" => End::B,
        other => {
            eprintln!("shmq-child: end must be A or B, not {other:?}");
            std::process::exit(64)
        }
    }
}

/// Opens `args[0]` at end `args[1]` and says `ready`, or exits with status 65.
fn open(args: &[String]) -> PipeEnd {
    let name = args.first().map(String::as_str).unwrap_or("");
    let end = parse_end(args.get(1).map(String::as_str).unwrap_or(""));
    let p = PipeEnd::open(name, end).unwrap_or_else(|e| {
        eprintln!("shmq-child: open pipe {name} end {end}: {e}");
        std::process::exit(65)
    });
    say("ready");
    p
}

/// Forks this process: `Some(pid)` in the parent, `None` in the child.
///
/// Sound here because the helper is single-threaded (in `c-async-fork`, its only other thread
/// is shmq's async notifier, whose lock the child never takes: that is what the role tests):
/// the child is a whole copy of the process, with no lock it uses held by a thread that does
/// not exist in it (glibc's allocator takes its own locks across `fork`).
#[allow(unsafe_code)]
pub(crate) fn fork() -> Option<u32> {
    // SAFETY: see above: no lock the child uses can be held by a thread lost in the fork.
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => {
            eprintln!("shmq-child: fork: {}", std::io::Error::last_os_error());
            std::process::exit(70)
        }
        0 => None,
        pid => Some(pid as u32),
    }
}

/// Ends a forked child at once (no exit handlers, nothing flushed twice).
#[allow(unsafe_code)]
pub(crate) fn exit_child(code: i32) -> ! {
    // SAFETY: `_exit` ends the process; nothing runs after it.
    unsafe { libc::_exit(code) }
}

/// The forked child's side: sends every message back on `p` until "stop", then closes `p` and
/// exits 0 (3 if the pipe failed).
fn echo_until_stop(p: PipeEnd) -> ! {
    loop {
        match p.recv() {
            Ok(m) if m == b"stop" => break,
            Ok(m) => {
                if p.send(m).is_err() {
                    exit_child(3);
                }
            }
            Err(_) => exit_child(3),
        }
    }
    drop(p);
    exit_child(0)
}

/// Runs a pipe role, or returns `None` if `role` is not one.
pub(crate) fn run(role: &str, args: &[String]) -> Option<ExitCode> {
    Some(match role {
        // p-producer NAME END COUNT: sends "0".."COUNT-1", then closes
        "p-producer" => {
            let p = open(args);
            let count: u32 = arg(args, 2);
            for i in 0..count {
                p.send(i.to_string()).expect("send");
            }
            p.close().expect("close");
            ExitCode::SUCCESS
        }
        // p-consumer NAME END: prints each message received until end-of-file, then "eof"
        "p-consumer" => {
            let p = open(args);
            loop {
                match p.recv() {
                    Ok(m) => say(String::from_utf8_lossy(&m)),
                    Err(RecvError::Disconnected) => {
                        say("eof");
                        break ExitCode::SUCCESS;
                    }
                    Err(e) => panic!("recv: {e}"),
                }
            }
        }
        // p-echo NAME END: sends every message back until it receives "stop", then closes
        "p-echo" => {
            let p = open(args);
            loop {
                let m = p.recv().expect("recv");
                if m == b"stop" {
                    p.close().expect("close");
                    break ExitCode::SUCCESS;
                }
                p.send(m).expect("send back");
            }
        }
        // p-send-each NAME END MSG...: sends each argument as one message, then closes
        "p-send-each" => {
            let p = open(args);
            for m in &args[2..] {
                p.send(m.as_bytes()).expect("send");
            }
            p.close().expect("close");
            ExitCode::SUCCESS
        }
        // p-hold NAME END: holds the end until killed
        "p-hold" => {
            let _p = open(args);
            loop {
                std::thread::sleep(std::time::Duration::from_secs(3600));
            }
        }
        // p-pattern-sender NAME END ID COUNT MIN_LEN: sends COUNT pattern messages of lengths
        // MIN_LEN.., then closes
        "p-pattern-sender" => {
            let p = open(args);
            let (id, count, min_len): (u32, u32, usize) =
                (arg(args, 2), arg(args, 3), arg(args, 4));
            let spread = p.message_size().saturating_sub(min_len).max(1);
            for seq in 0..count {
                let len = min_len + (seq as usize * 37) % spread;
                p.send(pattern_message(id, seq, len)).expect("send");
            }
            p.close().expect("close");
            ExitCode::SUCCESS
        }
        // p-fork-python NAME: Python's canonical pattern with fork: creates the pipe, forks a
        // child that echoes on end B, closes its own copy of B at once, and checks that end B
        // stays held by the child (a ping comes back) until the child closes it (end-of-file).
        // Prints "forked", "echoed", "eof".
        "p-fork-python" => {
            let name = args.first().map(String::as_str).unwrap_or("");
            let opts = Options {
                capacity: 4,
                message_size: 64,
                ..Default::default()
            };
            let (parent, child) = Pipe::create(name, &opts).expect("create");
            match fork() {
                None => {
                    drop(parent); // the child's copy of the parent's end
                    echo_until_stop(child)
                }
                Some(_) => {
                    child.close().expect("close the child's end");
                    say("forked");
                    parent
                        .send(b"ping")
                        .expect("send while the child holds end B");
                    assert_eq!(parent.recv().expect("recv"), b"ping");
                    say("echoed");
                    parent.send(b"stop").expect("send stop");
                    assert_eq!(parent.recv(), Err(RecvError::Disconnected));
                    say("eof");
                    ExitCode::SUCCESS
                }
            }
        }
        // p-fork-hold NAME END: opens the end, forks a child that echoes on it until "stop",
        // closes its own copy, prints "closed CHILD_PID" and exits at once.
        "p-fork-hold" => {
            let p = open(args);
            match fork() {
                None => echo_until_stop(p),
                Some(pid) => {
                    p.close().expect("close");
                    say(format!("closed {pid}"));
                    ExitCode::SUCCESS
                }
            }
        }
        // p-hand-off NAME END WITHIN_MS: opens the end, hands it off for WITHIN_MS, prints
        // "handed" and holds the end until killed
        "p-hand-off" => {
            let p = open(args);
            let within: u64 = arg(args, 2);
            let _token = p.hand_off(Duration::from_millis(within)).expect("hand off");
            say("handed");
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        }
        _ => return None,
    })
}
