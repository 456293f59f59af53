//! Roles over large messages (messages over the slot size, `shmq::substrate::large`): checksummed messages
//! from `shmq_testkit::big`, sent through a queue or a pipe and checked on arrival.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use shmq::{
    CommitError, End, GetError, GetTimeoutError, PeekError, PipeEnd, Queue, RecvError, TryGetError,
};
use shmq_testkit::big;

use crate::{arg, say};

fn open(name: &str) -> Queue {
    Queue::open(name).unwrap_or_else(|e| {
        eprintln!("shmq-child: open {name}: {e}");
        std::process::exit(65)
    })
}

/// Checks a message and prints "id:seq len", or exits with status 66 on a damaged one.
fn report(m: &[u8]) {
    match big::check(m) {
        Some((id, seq)) => say(format!("{id}:{seq} {}", m.len())),
        None => {
            eprintln!("shmq-child: a damaged message of {} bytes", m.len());
            std::process::exit(66)
        }
    }
}

/// Checks a message and returns "id:seq,len", or exits with status 66 on a damaged one.
fn key(m: &[u8]) -> String {
    match big::check(m) {
        Some((id, seq)) => format!("{id}:{seq},{}", m.len()),
        None => {
            eprintln!("shmq-child: a damaged message of {} bytes", m.len());
            std::process::exit(66)
        }
    }
}

/// Runs a large-message role, or returns `None` if `role` is not one.
pub(crate) fn run(role: &str, args: &[String]) -> Option<ExitCode> {
    let name = args.first().map(String::as_str).unwrap_or("");
    Some(match role {
        // big-producer NAME ID COUNT MAX PATH: COUNT messages of skewed sizes up to MAX bytes
        // of body; PATH: put, try, timeout, many (batches of 3)
        "big-producer" => {
            let q = open(name);
            let (id, count, max): (u32, u32, usize) = (arg(args, 1), arg(args, 2), arg(args, 3));
            let path: String = arg(args, 4);
            let mut rng = big::Rng::new(u64::from(id) * 7919 + 1);
            let mut seq = 0;
            while seq < count {
                let m = big::message(id, seq, big::skewed_size(rng.word(), max));
                match path.as_str() {
                    "put" => q.put(&m).map_err(|e| e.to_string()),
                    "try" => loop {
                        match q.try_put(&m) {
                            Err(shmq::TryPutError::Full(_)) => {
                                std::thread::sleep(Duration::from_millis(1))
                            }
                            r => break r.map_err(|e| e.to_string()),
                        }
                    },
                    "timeout" => loop {
                        match q.put_timeout(&m, Duration::from_millis(5)) {
                            Err(shmq::PutTimeoutError::Timeout(_)) => {}
                            r => break r.map_err(|e| e.to_string()),
                        }
                    },
                    "many" => {
                        let mut batch = vec![m];
                        while batch.len() < 3 && seq + (batch.len() as u32) < count {
                            let s = seq + batch.len() as u32;
                            batch.push(big::message(id, s, big::skewed_size(rng.word(), max)));
                        }
                        seq += batch.len() as u32 - 1;
                        q.put_many(&batch).map_err(|e| e.to_string())
                    }
                    other => panic!("unknown path {other}"),
                }
                .expect("put");
                seq += 1;
            }
            ExitCode::SUCCESS
        }
        // big-consumer NAME PATH: takes messages until Closed, printing "id:seq len" per
        // message; PATH: get, with, into, many, try, timeout
        "big-consumer" => {
            let q = open(name);
            let path: String = arg(args, 1);
            let mut buf = vec![0u8; 70 << 20];
            loop {
                let r: Result<(), GetError> = match path.as_str() {
                    "get" => q.get().map(|m| report(&m)),
                    "with" => q.get_with(report),
                    "into" => q.get_into(&mut buf).map(|n| report(&buf[..n])),
                    "many" => q.get_many_with(4, report).map(|_| ()),
                    "try" => match q.try_get() {
                        Ok(m) => {
                            report(&m);
                            Ok(())
                        }
                        Err(TryGetError::Empty) => {
                            std::thread::sleep(Duration::from_millis(1));
                            Ok(())
                        }
                        Err(TryGetError::Closed) => Err(GetError::Closed),
                        Err(e) => panic!("try_get: {e}"),
                    },
                    "timeout" => match q.get_timeout(Duration::from_millis(5)) {
                        Ok(m) => {
                            report(&m);
                            Ok(())
                        }
                        Err(GetTimeoutError::Timeout) => Ok(()),
                        Err(GetTimeoutError::Closed) => Err(GetError::Closed),
                        Err(e) => panic!("get_timeout: {e}"),
                    },
                    other => panic!("unknown path {other}"),
                };
                match r {
                    Ok(()) => {}
                    Err(GetError::Closed) => break ExitCode::SUCCESS,
                    Err(e) => panic!("get: {e}"),
                }
            }
        }
        // big-no-space NAME: run in a mount namespace of its own whose /dev/shm is a tmpfs of
        // 1 MiB: makes queue NAME (4 KiB slots), checks that a 2 MiB message is `NoSpace`, handed
        // back whole and leaves no side segment, that a 100 KiB one still fits, that the queue
        // still works, then unlinks it; prints "no-space ok NEEDED"
        "big-no-space" => {
            let opts = shmq::Options {
                capacity: 4,
                message_size: 4096,
                max_message_size: 64 << 20,
                ..Default::default()
            };
            let q = Queue::create(name, &opts).expect("create in the small /dev/shm");
            let m = big::message(4, 0, 2 << 20);
            let needed = match q.put(&m) {
                Err(shmq::PutError::NoSpace {
                    msg,
                    needed,
                    reason,
                }) => {
                    assert!(msg == &m[..], "the message handed back is not the one put");
                    assert!(needed > m.len(), "needed {needed} for {} bytes", m.len());
                    assert!(!reason.is_empty());
                    needed
                }
                other => {
                    eprintln!("shmq-child: a 2 MiB put into a 1 MiB /dev/shm gave {other:?}");
                    return Some(ExitCode::from(67));
                }
            };
            assert!(matches!(
                q.try_put(&m),
                Err(shmq::TryPutError::NoSpace { .. })
            ));
            assert!(
                big::side_segments(name).is_empty(),
                "a failed put left a side segment"
            );
            assert!(q.is_empty(), "a failed put queued something");
            // A batch goes claim by claim: the claim before the message that finds no room
            // stays put, and the error counts it; nothing after it is put.
            let batch = [b"a".to_vec(), b"b".to_vec(), m.clone(), b"c".to_vec()];
            match q.put_many(&batch) {
                Err(shmq::PutError::NoSpace { msg: 2, .. }) => {}
                other => {
                    eprintln!("shmq-child: put_many with a 2 MiB message third gave {other:?}");
                    return Some(ExitCode::from(67));
                }
            }
            assert!(matches!(
                q.try_put_many(&batch[2..]),
                Err(shmq::TryPutError::NoSpace { msg: 0, .. })
            ));
            assert_eq!(q.get_many(10).expect("get_many"), [b"a", b"b"]);
            assert!(
                big::side_segments(name).is_empty(),
                "a failed batch left a side segment"
            );
            let fits = big::message(4, 1, 100 << 10);
            q.put(&fits).expect("a 100 KiB message fits");
            q.put(b"small").expect("a small message");
            assert_eq!(q.get().expect("get"), fits);
            assert_eq!(q.get().expect("get"), b"small");
            Queue::unlink(name).expect("unlink");
            assert!(big::side_segments(name).is_empty());
            say(format!("no-space ok {needed}"));
            ExitCode::SUCCESS
        }
        // big-peek-consumer NAME AHEAD DELAY_US: peeks the front message and up to AHEAD - 1
        // after it (checking each), prints "peek POS id:seq,len ..." before its commit_many of
        // them (after a random pause of up to DELAY_US µs: the network round trip of a
        // bridge), then "done" if the commit took them or "moved" if another consumer took
        // the front first; until the queue is closed and empty
        "big-peek-consumer" => {
            let q = open(name);
            let (ahead, delay): (u64, u64) = (arg(args, 1), arg(args, 2));
            let mut rng = big::Rng::new(u64::from(std::process::id()));
            loop {
                let soon = Instant::now() + Duration::from_millis(100);
                let (pos, m) = match q.peek_with_position(Some(soon)) {
                    Ok(x) => x,
                    Err(PeekError::Timeout) => continue,
                    Err(PeekError::Closed) => break ExitCode::SUCCESS,
                    Err(e) => panic!("peek: {e}"),
                };
                let mut keys = vec![key(&m)];
                while (keys.len() as u64) < ahead {
                    match q.peek_at(pos + keys.len() as u64, Some(Instant::now())) {
                        Ok(Some(m)) => keys.push(key(&m)),
                        Ok(None) | Err(PeekError::Timeout | PeekError::Taken { .. }) => break,
                        Err(PeekError::Closed) => break,
                        Err(e) => panic!("peek ahead: {e}"),
                    }
                }
                say(format!("peek {pos} {}", keys.join(" ")));
                if delay > 0 {
                    std::thread::sleep(Duration::from_micros(rng.word() % delay));
                }
                match q.commit_many(pos, keys.len() as u64) {
                    Ok(()) => say("done"),
                    Err(CommitError::Moved { .. }) => say("moved"),
                    Err(e) => panic!("commit: {e}"),
                }
            }
        }
        // crash-commit-and-hang NAME N: peeks the N messages at the front, takes them with a
        // commit that stops before releasing their side segments, says "committed" and hangs
        // (the parent kills it there)
        #[cfg(feature = "crash-points")]
        "crash-commit-and-hang" => {
            let q = open(name);
            let n: u64 = arg(args, 1);
            let (pos, m) = q.peek_with_position(None).expect("peek");
            let mut keys = vec![key(&m)];
            for i in 1..n {
                keys.push(key(&q
                    .peek_at(pos + i, None)
                    .expect("peek")
                    .expect("a message")));
            }
            q.commit_and_stop(pos, n).expect("commit");
            say(format!("committed {}", keys.join(" ")));
            crate::hang()
        }
        // big-put-one NAME BODY: puts one message of BODY bytes (the parent kills it while it
        // writes)
        "big-put-one" => {
            let q = open(name);
            let body: usize = arg(args, 1);
            let m = big::message(1, 0, body);
            say("writing");
            q.put(&m).expect("put");
            say("put");
            ExitCode::SUCCESS
        }
        // big-put-forever NAME BODY: puts messages 0, 1, 2, ... of BODY bytes (id 3) through
        // its pool of side segments until killed
        "big-put-forever" => {
            let q = open(name);
            let body: usize = arg(args, 1);
            say("putting");
            let mut seq = 0u32;
            loop {
                q.put(big::message(3, seq, body)).expect("put");
                seq += 1;
            }
        }
        // big-read-and-hang NAME: reads the front message in place, says so, and hangs inside
        // the read until killed
        "big-read-and-hang" => {
            let q = open(name);
            let _ = q.get_with(|m| {
                say(format!("reading {}", m.len()));
                loop {
                    std::thread::sleep(Duration::from_secs(3600));
                }
            });
            ExitCode::from(1)
        }
        // big-copy-forever NAME: copies the front message over and over, never taking it (the
        // parent kills it at a random moment)
        "big-copy-forever" => {
            let q = open(name);
            say("copying");
            loop {
                let r = q.get_with_or_keep(None, |m| Err::<(), usize>(m.len()));
                if !matches!(r, Ok(Err(_))) {
                    panic!("{r:?}");
                }
            }
        }
        // big-pipe-echo NAME: receives on end B and sends every message back until EOF
        "big-pipe-echo" => {
            let b = PipeEnd::open(name, End::B).expect("open B");
            say("ready");
            loop {
                match b.recv() {
                    Ok(m) => b.send(m).expect("send"),
                    Err(RecvError::Disconnected) => break ExitCode::SUCCESS,
                    Err(e) => panic!("recv: {e}"),
                }
            }
        }
        _ => return None,
    })
}
