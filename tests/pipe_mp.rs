//! The pipe across real processes: the seed's scenario, echo, message boundaries, a SIGKILLed
//! peer, several holders of one end, concurrent senders, handing an end to a forked or a spawned
//! child, and bad input. Every test uses its own
//! segment name (removed on drop) and a watchdog; children are `shmq-child` roles from
//! `tests/src/child/pipe.rs`.

mod common;

use common::shared::pattern_message;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{Name, Proc, Watchdog, finish_all, kill, spawn};
use shmq::{
    End, LIVENESS_SLICE, OpenError, Options, Pipe, PipeEnd, Queue, RecvError, RecvTimeoutError,
    SendError, TryRecvError, TrySendError,
};

fn opts(capacity: usize, message_size: usize) -> Options {
    Options {
        capacity,
        message_size,
        ..Default::default()
    }
}

/// Starts a pipe role on `end` of `name` and waits until it holds that end.
fn start(role: &str, name: &str, end: &str, extra: &[&str]) -> Proc {
    let mut args = vec![name, end];
    args.extend_from_slice(extra);
    let mut p = spawn(role, &args);
    assert_eq!(p.line(), "ready", "{role} did not open the pipe");
    p
}

/// The seed: one producer process sends 10 messages and closes; three consumer processes share
/// the receiving end. Every message is received exactly once in total, and each consumer ends
/// on `Disconnected` (end-of-file), with no sentinel and no timeout.
#[test]
fn seed_one_producer_three_consumers_end_on_disconnected() {
    let _w = Watchdog::new("pipe seed", Duration::from_secs(60));
    let name = Name::new("pipe-seed");
    let (a, b) = Pipe::create(&name, &opts(4, 64)).unwrap();
    let consumers: Vec<Proc> = (0..3)
        .map(|_| start("p-consumer", &name, "A", &[]))
        .collect();
    let producer = start("p-producer", &name, "B", &["10"]);
    // Every child holds its end now: the parent lets go of both, so that end B is gone once the
    // producer closes.
    drop((a, b));

    let mut procs = vec![producer];
    procs.extend(consumers);
    let outs = finish_all(procs);
    let mut got = Vec::new();
    for out in &outs[1..] {
        let text = String::from_utf8(out.clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.last(), Some(&"eof"), "a consumer did not end on EOF");
        got.extend(
            lines[..lines.len() - 1]
                .iter()
                .map(|l| l.parse::<u32>().unwrap()),
        );
    }
    got.sort_unstable();
    assert_eq!(
        got,
        (0..10).collect::<Vec<_>>(),
        "each message exactly once"
    );
}

/// A child echoes every message back until "stop": an empty message, a small one and one of
/// exactly `message_size` bytes make the round trip intact; `poll` is false on an idle pipe
/// (after at least its timeout) and true once a message waits, without taking it; once the
/// child closes its end, the parent's `recv` is `Disconnected` and `send` hands the message back.
#[test]
fn echo_round_trips_poll_and_end_of_file() {
    let _w = Watchdog::new("pipe echo", Duration::from_secs(60));
    let name = Name::new("pipe-echo");
    // The maximum message size is the slot size here (see tests/large_mp.rs for larger ones).
    let (a, b) = Pipe::create(
        &name,
        &Options {
            max_message_size: 64,
            ..opts(4, 64)
        },
    )
    .unwrap();
    let child = start("p-echo", &name, "B", &[]);
    drop(b);

    let t = Instant::now();
    assert!(!a.poll(Duration::from_millis(100)).unwrap());
    assert!(t.elapsed() >= Duration::from_millis(100));

    let full: Vec<u8> = (0..64u8).map(|i| i.wrapping_mul(37)).collect();
    for msg in [Vec::new(), b"hello".to_vec(), full] {
        a.send(&msg).unwrap();
        assert_eq!(a.recv().unwrap(), msg);
    }
    match a.send(vec![0u8; 65]) {
        Err(SendError::TooLarge {
            msg,
            len: 65,
            max: 64,
        }) => assert_eq!(msg.len(), 65),
        other => panic!("expected TooLarge, got {other:?}"),
    }

    a.send(b"ping").unwrap();
    assert!(a.poll(Duration::from_secs(10)).unwrap());
    assert!(
        a.poll(Duration::ZERO).unwrap(),
        "poll must not take the message"
    );
    assert_eq!(a.recv().unwrap(), b"ping");

    a.send(b"stop").unwrap();
    assert_eq!(a.recv(), Err(RecvError::Disconnected));
    assert!(matches!(
        a.send(b"late"),
        Err(SendError::Disconnected(b"late"))
    ));
    child.finish();
}

/// `b"a"`, `b"b"`, `b"cd"` sent by a child arrive as three messages, in order, then EOF: no two
/// sends merge.
#[test]
fn three_sends_arrive_as_three_messages_in_order() {
    let _w = Watchdog::new("pipe boundaries", Duration::from_secs(60));
    let name = Name::new("pipe-bounds");
    let (a, b) = Pipe::create(&name, &opts(8, 16)).unwrap();
    let child = start("p-send-each", &name, "B", &["a", "b", "cd"]);
    drop(b);
    child.finish();
    assert_eq!(a.recv().unwrap(), b"a");
    assert_eq!(a.recv().unwrap(), b"b");
    assert_eq!(a.recv().unwrap(), b"cd");
    assert_eq!(a.recv(), Err(RecvError::Disconnected));
}

/// The child holding the other end is SIGKILLed while the parent is blocked in `recv`: the
/// `recv` returns `Disconnected` within a second (the latency is printed), although the child is
/// still an unreaped zombie, and `send` returns `Disconnected` with the message.
#[test]
fn crash_sigkilled_peer_is_end_of_file_for_a_blocked_reader() {
    let _w = Watchdog::new("pipe crash", Duration::from_secs(60));
    // Kill delays that are not multiples of the 50 ms liveness slice, so the kill lands at
    // different points of the blocked reader's slice.
    for (round, delay_ms) in [310u64, 322, 334, 346, 358].into_iter().enumerate() {
        let name = Name::new("pipe-crash");
        let (a, b) = Pipe::create(&name, &opts(4, 16)).unwrap();
        let child = start("p-hold", &name, "B", &[]);
        drop(b);
        let killer = std::thread::spawn(move || {
            let mut child = child;
            std::thread::sleep(Duration::from_millis(delay_ms));
            let killed_at = Instant::now();
            child.child.kill().expect("SIGKILL"); // not reaped until the reader is done
            (child, killed_at)
        });
        let r = a.recv();
        let eof_at = Instant::now();
        let (mut child, killed_at) = killer.join().unwrap();
        assert_eq!(r, Err(RecvError::Disconnected));
        assert!(eof_at >= killed_at, "recv returned before the kill");
        let latency = eof_at - killed_at;
        eprintln!("pipe crash round {round}: SIGKILL -> blocked recv Disconnected in {latency:?}");
        assert!(latency < Duration::from_secs(1), "{latency:?}");
        match a.send(b"after".to_vec()) {
            Err(SendError::Disconnected(msg)) => assert_eq!(msg, b"after"),
            other => panic!("expected Disconnected, got {other:?}"),
        }
        assert!(!child.wait_status().success());
    }
}

/// Two processes hold end B: killing one is not end-of-file (the other still holds B), killing
/// the second is.
#[test]
fn end_of_file_waits_for_every_holder_of_the_other_end() {
    let _w = Watchdog::new("pipe holders", Duration::from_secs(60));
    let name = Name::new("pipe-holders");
    let (a, b) = Pipe::create(&name, &opts(4, 16)).unwrap();
    let mut first = start("p-hold", &name, "B", &[]);
    let mut second = start("p-hold", &name, "B", &[]);
    drop(b);
    first.kill9();
    assert_eq!(
        a.recv_timeout(Duration::from_millis(300)),
        Err(RecvTimeoutError::Timeout)
    );
    assert!(a.try_send(b"still held").is_ok());
    second.kill9();
    assert_eq!(
        a.recv_timeout(Duration::from_secs(10)),
        Err(RecvTimeoutError::Disconnected)
    );
    assert!(matches!(
        a.try_send(b"x"),
        Err(TrySendError::Disconnected(_))
    ));
    // End-of-file is final: nobody can become a holder of end B again.
    assert!(matches!(
        PipeEnd::open(&name, End::B),
        Err(OpenError::Disconnected(_))
    ));
}

/// Three processes send on the same end at once, messages of 4200 to 8191 bytes (above
/// `PIPE_BUF`, where OS pipe writes may interleave): every message arrives whole, each sender's
/// in order, none lost or duplicated.
#[test]
fn three_processes_send_on_one_end_concurrently() {
    let _w = Watchdog::new("pipe concurrent senders", Duration::from_secs(120));
    const COUNT: u32 = 2000;
    const MIN_LEN: usize = 4200;
    const SIZE: usize = 8192;
    let name = Name::new("pipe-senders");
    let (a, b) = Pipe::create(&name, &opts(8, SIZE)).unwrap();
    let senders: Vec<Proc> = (0..3u32)
        .map(|id| {
            start(
                "p-pattern-sender",
                &name,
                "B",
                &[&id.to_string(), &COUNT.to_string(), &MIN_LEN.to_string()],
            )
        })
        .collect();
    drop(b);
    let mut next: BTreeMap<u32, u32> = BTreeMap::new();
    let mut buf = vec![0u8; SIZE];
    let (mut last_id, mut switches) = (u32::MAX, 0u32);
    let t = Instant::now();
    loop {
        let n = match a.recv_into(&mut buf) {
            Ok(n) => n,
            Err(RecvError::Disconnected) => break,
            Err(e) => panic!("recv: {e}"),
        };
        let m = &buf[..n];
        let id = u32::from_le_bytes(m[..4].try_into().unwrap());
        let seq = u32::from_le_bytes(m[4..8].try_into().unwrap());
        assert!(id < 3, "bad sender id {id}");
        if id != last_id {
            switches += 1;
            last_id = id;
        }
        let expected = next.entry(id).or_insert(0);
        assert_eq!(seq, *expected, "sender {id} out of order or lost a message");
        *expected += 1;
        let len = MIN_LEN + (seq as usize * 37) % (SIZE - MIN_LEN);
        assert!(
            m == pattern_message(id, seq, len),
            "message {id}:{seq} damaged"
        );
    }
    eprintln!(
        "pipe concurrent senders: {} messages of 4200..8191 bytes in {:?}, sender changed {switches} times",
        3 * COUNT,
        t.elapsed()
    );
    assert_eq!(next, (0..3).map(|id| (id, COUNT)).collect());
    // Three senders one after the other would change 3 times: the sends did interleave.
    assert!(switches > 3, "the senders never overlapped");
    finish_all(senders);
}

/// Opening a missing pipe, opening a queue as a pipe, using the missing direction of a one-way
/// pipe, and reopening an end that is gone: each a typed error, never a panic or a hang.
#[test]
fn bad_input_is_a_typed_error() {
    let _w = Watchdog::new("pipe bad input", Duration::from_secs(60));
    let missing = Name::new("pipe-missing");
    assert!(matches!(
        PipeEnd::open(&missing, End::A),
        Err(OpenError::NotFound(_))
    ));
    assert!(matches!(
        PipeEnd::open("bad/name", End::A),
        Err(OpenError::InvalidName { .. })
    ));

    let queue = Name::new("pipe-queue");
    let _q = Queue::create(&queue, &opts(2, 8)).unwrap();
    match PipeEnd::open(&queue, End::A) {
        Err(OpenError::Incompatible(why)) => assert!(why.contains("queue"), "{why}"),
        other => panic!("expected Incompatible, got {other:?}"),
    }
    assert!(matches!(
        Pipe::create(&queue, &opts(2, 8)),
        Err(OpenError::AlreadyExists(_))
    ));
    assert!(matches!(
        Pipe::create(&missing, &opts(0, 8)),
        Err(OpenError::InvalidOptions(_))
    ));

    let name = Name::new("pipe-oneway");
    let (rx, tx) = Pipe::create_one_way(&name, &opts(2, 8)).unwrap();
    match rx.send(b"back".to_vec()) {
        Err(SendError::WrongDirection(msg)) => assert_eq!(msg, b"back"),
        other => panic!("expected WrongDirection, got {other:?}"),
    }
    assert!(matches!(
        rx.try_send(b"x"),
        Err(TrySendError::WrongDirection(_))
    ));
    assert_eq!(tx.recv(), Err(RecvError::WrongDirection));
    assert_eq!(tx.try_recv(), Err(TryRecvError::WrongDirection));
    assert_eq!(tx.poll(Duration::ZERO), Err(RecvError::WrongDirection));
    // A handle opened by name knows its direction too.
    let rx2 = PipeEnd::open(&name, End::A).unwrap();
    assert!(matches!(
        rx2.send_timeout(b"x", Duration::ZERO),
        Err(shmq::SendTimeoutError::WrongDirection(_))
    ));
    drop(rx2);
    let child = start("p-send-each", &name, "B", &["over"]);
    child.finish();
    assert_eq!(rx.recv().unwrap(), b"over");
    drop(tx);
    assert_eq!(rx.recv(), Err(RecvError::Disconnected));
    assert!(matches!(
        PipeEnd::open(&name, End::B),
        Err(OpenError::Disconnected(_))
    ));
}

/// Python's canonical pattern with fork (`parent, child = Pipe(); fork; child.close()`), run in
/// the single-threaded helper: the forked child holds end B from the fork on, so the parent's
/// close of its own copy is not end-of-file, its `send` is not `Disconnected`, a ping comes
/// back, and end-of-file comes when the child closes.
#[test]
fn fork_python_pattern_parent_closes_the_child_end_at_once() {
    let _w = Watchdog::new("pipe fork python", Duration::from_secs(60));
    let name = Name::new("pipe-fork-python");
    let p = spawn("p-fork-python", &[&name]);
    assert_eq!(p.finish_lines(), ["forked", "echoed", "eof"]);
}

/// A process opens end B, forks, closes its copy and exits: the forked child alone holds B. The
/// test (end A) sends and gets the echo; end-of-file comes when the child closes.
#[test]
fn fork_child_keeps_the_end_after_its_parent_closed_it_and_exited() {
    let _w = Watchdog::new("pipe fork hold", Duration::from_secs(60));
    let name = Name::new("pipe-fork-hold");
    let (a, b) = Pipe::create(&name, &opts(4, 16)).unwrap();
    let mut parent = start("p-fork-hold", &name, "B", &[]);
    drop(b);
    assert!(parent.line().starts_with("closed "));
    // Only the parent, not the child (which shares its stdout), is waited for.
    assert!(parent.wait_status().success());
    // End B has one entry: the child's, or still the reservation made for it at the fork if the
    // child has not run yet.
    let info = Pipe::inspect(&name).unwrap();
    assert_eq!(info.gone, [false, false]);
    assert_eq!(
        (info.holders[1] + info.handoffs[1], info.holders[0]),
        (1, 1)
    );
    a.send(b"ping").expect("the forked child holds end B");
    assert_eq!(a.recv().unwrap(), b"ping");
    a.send(b"stop").unwrap();
    assert_eq!(a.recv(), Err(RecvError::Disconnected));
}

/// As above, but the forked child is SIGKILLed: its death is end-of-file for a blocked reader.
#[test]
fn fork_child_killed_is_end_of_file() {
    let _w = Watchdog::new("pipe fork kill", Duration::from_secs(60));
    let name = Name::new("pipe-fork-kill");
    let (a, b) = Pipe::create(&name, &opts(4, 16)).unwrap();
    let mut parent = start("p-fork-hold", &name, "B", &[]);
    drop(b);
    let line = parent.line();
    let pid: u32 = line.strip_prefix("closed ").unwrap().parse().unwrap();
    assert!(parent.wait_status().success());
    a.send(b"ping").expect("the forked child holds end B");
    assert_eq!(a.recv().unwrap(), b"ping");
    let killed_at = Instant::now();
    kill(pid, libc::SIGKILL);
    assert_eq!(
        a.recv_timeout(Duration::from_secs(30)),
        Err(RecvTimeoutError::Disconnected)
    );
    eprintln!(
        "pipe fork kill: SIGKILL of the forked child -> Disconnected in {:?}",
        killed_at.elapsed()
    );
}

/// The spawn form: the parent hands end B off, closes its copy, and only then starts the child,
/// which opens end B by name and takes the token over. The pipe works; end-of-file comes when
/// the child closes, and end B cannot be opened again.
#[test]
fn hand_off_lets_a_spawned_child_attach_after_the_parent_closed_its_end() {
    let _w = Watchdog::new("pipe hand-off", Duration::from_secs(60));
    let name = Name::new("pipe-hand-off");
    let (a, b) = Pipe::create(&name, &opts(4, 16)).unwrap();
    let token = b.hand_off(Duration::from_secs(60)).unwrap();
    assert_eq!(token.end(), End::B);
    b.close().unwrap();
    let info = Pipe::inspect(&name).unwrap();
    assert_eq!(
        (info.holders, info.handoffs, info.gone),
        ([1, 0], [0, 1], [false, false])
    );
    assert!(a.try_send(b"early").is_ok(), "the token holds end B");
    let child = start("p-echo", &name, "B", &[]);
    let info = Pipe::inspect(&name).unwrap();
    assert_eq!(
        (info.holders, info.handoffs),
        ([1, 1], [0, 0]),
        "taken over"
    );
    assert_eq!(a.recv().unwrap(), b"early");
    a.send(b"stop").unwrap();
    assert_eq!(a.recv(), Err(RecvError::Disconnected));
    child.finish();
    assert!(matches!(
        PipeEnd::open(&name, End::B),
        Err(OpenError::Disconnected(_))
    ));
}

/// A token that no process takes expires: end-of-file comes at its deadline, not before.
#[test]
fn hand_off_token_nobody_takes_expires_into_end_of_file() {
    let _w = Watchdog::new("pipe hand-off expiry", Duration::from_secs(60));
    let name = Name::new("pipe-hand-off-expiry");
    let (a, b) = Pipe::create(&name, &opts(4, 16)).unwrap();
    let within = Duration::from_millis(300);
    let t = Instant::now();
    b.hand_off(within).unwrap();
    drop(b);
    assert_eq!(
        a.recv_timeout(Duration::from_secs(30)),
        Err(RecvTimeoutError::Disconnected)
    );
    assert!(t.elapsed() >= within, "end-of-file before the deadline");
    assert!(matches!(
        PipeEnd::open(&name, End::B),
        Err(OpenError::Disconnected(_))
    ));
}

/// The token does not depend on the process that made it: that process is SIGKILLed after
/// handing off (the only holder of end B but the token), and a child started afterwards still
/// attaches and talks.
#[test]
fn hand_off_token_outlives_the_process_that_made_it() {
    let _w = Watchdog::new("pipe hand-off orphan", Duration::from_secs(60));
    let name = Name::new("pipe-hand-off-orphan");
    let (a, b) = Pipe::create(&name, &opts(4, 16)).unwrap();
    let mut giver = start("p-hand-off", &name, "B", &["60000"]);
    drop(b);
    assert_eq!(giver.line(), "handed");
    giver.kill9();
    // Long enough for any sweep to have found the dead giver.
    assert_eq!(
        a.recv_timeout(LIVENESS_SLICE * 4),
        Err(RecvTimeoutError::Timeout)
    );
    let info = Pipe::inspect(&name).unwrap();
    assert_eq!((info.holders, info.handoffs), ([1, 0], [0, 1]));
    let child = start("p-echo", &name, "B", &[]);
    a.send(b"hi").unwrap();
    assert_eq!(a.recv().unwrap(), b"hi");
    a.send(b"stop").unwrap();
    assert_eq!(a.recv(), Err(RecvError::Disconnected));
    child.finish();
}
