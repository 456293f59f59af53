//! Roles over a [`shmq::PipeEnd`]. Each role takes the pipe's name and an end (`A` or `B`),
//! prints `ready` once it holds that end, and exits with status 0 only if its own checks held.

use std::process::ExitCode;

use shmq::{End, PipeEnd, RecvError};

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
        _ => return None,
    })
}
