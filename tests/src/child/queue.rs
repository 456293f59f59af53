//! Roles over a [`shmq::Queue`].

use std::io::Write;
use std::process::ExitCode;

use shmq::{GetError, Queue};

use crate::shared::{check_stress, stress_message};
use crate::{arg, say};

fn open(name: &str) -> Queue {
    Queue::open(name).unwrap_or_else(|e| {
        eprintln!("shmq-child: open {name}: {e}");
        std::process::exit(65)
    })
}

/// Runs a queue role, or returns `None` if `role` is not one.
pub(crate) fn run(role: &str, args: &[String]) -> Option<ExitCode> {
    let name = args.first().map(String::as_str).unwrap_or("");
    Some(match role {
        // put "ID:i" for i in 0..COUNT
        "q-producer" => {
            let q = open(name);
            let (id, count): (u32, u32) = (arg(args, 1), arg(args, 2));
            for i in 0..count {
                q.put(format!("{id}:{i}")).expect("put");
            }
            ExitCode::SUCCESS
        }
        // get until Closed, one line per message
        "q-consumer" => {
            let q = open(name);
            loop {
                match q.get() {
                    Ok(m) => say(String::from_utf8_lossy(&m)),
                    Err(GetError::Closed) => break ExitCode::SUCCESS,
                    Err(e) => panic!("get: {e}"),
                }
            }
        }
        // put "ID:i" for i in 0..COUNT, then join; prints "joined"
        "q-join-producer" => {
            let q = open(name);
            let (id, count): (u32, u32) = (arg(args, 1), arg(args, 2));
            for i in 0..count {
                q.put(format!("{id}:{i}")).expect("put");
            }
            q.join().expect("join");
            say("joined");
            ExitCode::SUCCESS
        }
        // get and task_done until Closed, one line per message
        "q-join-consumer" => {
            let q = open(name);
            loop {
                match q.get() {
                    Ok(m) => {
                        say(String::from_utf8_lossy(&m));
                        q.task_done().expect("task_done");
                    }
                    Err(GetError::Closed) => break ExitCode::SUCCESS,
                    Err(e) => panic!("get: {e}"),
                }
            }
        }
        // put COUNT stress messages of producer ID
        "q-stress-producer" => {
            let q = open(name);
            let (id, count): (u32, u32) = (arg(args, 1), arg(args, 2));
            for seq in 0..count {
                q.put(stress_message(id, seq)).expect("put");
            }
            ExitCode::SUCCESS
        }
        // q-stress-consumer NAME [MODE]: gets until Closed with MODE `into` (get_into, the
        // default), `with` (get_with) or `try-with` (try_get_with, yielding on Empty), each
        // followed by task_done with `with` and `try-with`; checks each message and each
        // producer's order; writes (id, seq) pairs as little-endian u32s to stdout. Any error
        // but Closed (a false Corrupt among them) ends it with a panic.
        "q-stress-consumer" => {
            let q = open(name);
            let mode = args.get(1).map_or("into", String::as_str).to_owned();
            let mut last: Vec<Option<u32>> = Vec::new();
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            let mut buf = [0u8; 64];
            let copy = |buf: &mut [u8; 64], m: &[u8]| {
                buf[..m.len()].copy_from_slice(m);
                m.len()
            };
            loop {
                let got = match mode.as_str() {
                    "into" => q.get_into(&mut buf),
                    "with" => q.get_with(|m| copy(&mut buf, m)),
                    "try-with" => match q.try_get_with(|m| copy(&mut buf, m)) {
                        Ok(n) => Ok(n),
                        Err(e) if e.is_empty() => {
                            std::thread::yield_now();
                            continue;
                        }
                        Err(e) if e.is_closed() => Err(GetError::Closed),
                        Err(e) => panic!("try_get_with: {e}"),
                    },
                    other => {
                        eprintln!("shmq-child: unknown mode {other:?}");
                        return Some(ExitCode::from(64));
                    }
                };
                if got.is_ok() && mode != "into" {
                    q.task_done().expect("task_done");
                }
                match got {
                    Ok(n) => {
                        let Some((id, seq)) = check_stress(&buf[..n]) else {
                            eprintln!("shmq-child: corrupt message {:?}", &buf[..n]);
                            return Some(ExitCode::from(2));
                        };
                        let i = id as usize;
                        if last.len() <= i {
                            last.resize(i + 1, None);
                        }
                        if last[i].is_some_and(|l| l >= seq) {
                            eprintln!(
                                "shmq-child: producer {id} out of order: {seq} after {:?}",
                                last[i]
                            );
                            return Some(ExitCode::from(3));
                        }
                        last[i] = Some(seq);
                        out.write_all(&id.to_le_bytes()).expect("write");
                        out.write_all(&seq.to_le_bytes()).expect("write");
                    }
                    Err(GetError::Closed) => break,
                    Err(e) => panic!("get: {e}"),
                }
            }
            out.flush().expect("flush");
            ExitCode::SUCCESS
        }
        // one blocking get, printed
        "q-getter" => {
            let q = open(name);
            say("ready");
            let m = q.get().expect("get");
            say(String::from_utf8_lossy(&m));
            ExitCode::SUCCESS
        }
        // open_or_create NAME CAPACITY SIZE, then put ID
        "q-open-or-create" => {
            let (cap, size, id): (usize, usize, u32) = (arg(args, 1), arg(args, 2), arg(args, 3));
            let opts = shmq::Options {
                capacity: cap,
                message_size: size,
                ..Default::default()
            };
            let q = Queue::open_or_create(name, &opts).expect("open_or_create");
            q.put(id.to_string()).expect("put");
            ExitCode::SUCCESS
        }
        // dies (SIGKILL from the parent) inside the critical section of a put, half-way
        // through writing the payload
        #[cfg(feature = "crash-points")]
        "crash-in-put" => {
            let q = open(name);
            let _ = q.put_with(|buf| {
                buf[..7].copy_from_slice(b"partial");
                say("holding");
                crate::hang()
            });
            ExitCode::from(1)
        }
        // claims N slots for stress messages of producer ID from sequence FROM (one claim),
        // writes them, publishes all but the first (the commit), and waits to be SIGKILLed
        #[cfg(feature = "crash-points")]
        "crash-after-claim" => {
            let q = open(name);
            let (id, from, n): (u32, u32, u32) = (arg(args, 1), arg(args, 2), arg(args, 3));
            let msgs: Vec<_> = (from..from + n)
                .map(|s| crate::shared::stress_message(id, s))
                .collect();
            let refs: Vec<&[u8]> = msgs.iter().map(|m| &m[..]).collect();
            if !q.claim_and_stop(&refs) {
                return Some(ExitCode::from(1));
            }
            say("holding");
            crate::hang()
        }
        // names the next position in an intent lane, as a put does before its claim (the CAS
        // of `tail`), claims nothing, and waits to be SIGKILLed
        #[cfg(feature = "crash-points")]
        "crash-after-naming" => {
            let q = open(name);
            if !q.name_and_stop() {
                return Some(ExitCode::from(1));
            }
            say("holding");
            crate::hang()
        }
        // copies the front message as a lock-free get does, reports it, and waits to be
        // SIGKILLed before its claim (the CAS of `head`)
        #[cfg(feature = "crash-points")]
        "crash-mid-copy" => {
            let q = open(name);
            let Some(m) = q.copy_and_stop() else {
                return Some(ExitCode::from(1));
            };
            say(format!("holding {:?}", crate::shared::check_stress(&m)));
            crate::hang()
        }
        // dies inside the critical section of a get, after reading the message
        #[cfg(feature = "crash-points")]
        "crash-in-get" => {
            let q = open(name);
            let _ = q.get_with(|m| {
                say(format!("holding {}", String::from_utf8_lossy(m)));
                crate::hang()
            });
            ExitCode::from(1)
        }
        _ => return None,
    })
}
