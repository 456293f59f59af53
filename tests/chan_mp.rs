//! The channel API of issue 13 across real processes: typed messages (serde and Pod), the type
//! recorded in the segment, decode errors, iterator ends, `Select` with timeouts, and the async
//! API's cancel safety. Children are `shmq-child` roles from `tests/src/child/chan.rs`.

mod common;

use std::time::{Duration, Instant};

use common::shared::Order;
use common::{Name, Watchdog, finish_all, spawn};
use shmq::{
    GetError, OpenError, Options, Pipe, PodQueue, Queue, RecvError, Select, SelectTimeoutError,
    SerdeQueue, TryRecvError, TypedError,
};

fn opts(capacity: usize, message_size: usize) -> Options {
    Options {
        capacity,
        message_size,
        ..Default::default()
    }
}

/// A producer process puts serde structs; this process reads them back, equal and in order,
/// with a blocking typed iterator that ends when the producer closes the queue.
#[test]
fn serde_structs_between_processes_and_iter_ends_on_close() {
    let _w = Watchdog::new("serde between processes", Duration::from_secs(60));
    let name = Name::new("chan-serde");
    let q = SerdeQueue::<Order>::create(&name, &opts(8, 128)).unwrap();
    let producer = spawn("c-serde-producer", &[&name, "500"]);
    let got: Vec<Order> = q.iter().map(Result::unwrap).collect();
    finish_all(vec![producer]);
    assert_eq!(got.len(), 500);
    for (i, o) in got.iter().enumerate() {
        assert_eq!(*o, Order::sample(i as u32));
    }
    // The iterator ended because the queue is closed and drained.
    assert_eq!(q.get(), Err(TypedError::Queue(GetError::Closed)));
}

/// The type is recorded in the segment: another process opening a `PodQueue<u64>` as a
/// `PodQueue<u32>` or a `SerdeQueue<Order>` gets `Incompatible`; as `PodQueue<u64>` it works.
/// A queue made by the byte API opens as any type.
#[test]
fn type_mismatch_on_open_is_incompatible() {
    let _w = Watchdog::new("type mismatch", Duration::from_secs(60));
    let name = Name::new("chan-tag");
    let _q = PodQueue::<u64>::create(&name, &opts(4, 64)).unwrap();
    let out = finish_all(vec![spawn("c-open-as", &[&name])]);
    let text = String::from_utf8(out[0].clone()).unwrap();
    assert_eq!(
        text.lines().collect::<Vec<_>>(),
        ["ok", "incompatible", "incompatible"]
    );
    assert!(matches!(
        PodQueue::<i64>::open(&name),
        Err(OpenError::Incompatible(_))
    ));

    let untyped = Name::new("chan-untyped");
    let _b = Queue::create(&untyped, &opts(4, 64)).unwrap();
    let out = finish_all(vec![spawn("c-open-as", &[&untyped])]);
    let text = String::from_utf8(out[0].clone()).unwrap();
    assert_eq!(text.lines().collect::<Vec<_>>(), ["ok", "ok", "ok"]);
}

/// A message that does not decode is a typed error naming the queue and the position; it is
/// taken, and the values after it arrive.
#[test]
fn decode_error_names_queue_and_position_and_queue_stays_usable() {
    let _w = Watchdog::new("decode error", Duration::from_secs(60));
    let name = Name::new("chan-decode");
    let q = PodQueue::<u64>::create(&name, &opts(16, 8)).unwrap();
    finish_all(vec![spawn("c-pod-with-garbage", &[&name, "10", "4"])]);
    for i in 0..10u64 {
        match q.get() {
            Ok(v) => assert_eq!(v, i),
            Err(TypedError::Decode(e)) => {
                assert_eq!(i, 4, "only message 4 is bad");
                assert_eq!(e.queue, name.as_str());
                assert_eq!(e.position, 4);
                assert!(e.reason.contains("3 bytes"), "{}", e.reason);
            }
            Err(e) => panic!("get: {e}"),
        }
    }
    assert!(q.queue().is_empty());
    // Still usable both ways.
    q.put(99).unwrap();
    assert_eq!(q.get().unwrap(), 99);

    // The serde decoder refuses garbage the same way, with the position.
    let sname = Name::new("chan-decode-serde");
    let s = SerdeQueue::<Order>::create(&sname, &opts(4, 64)).unwrap();
    s.put(Order::sample(1)).unwrap();
    s.queue().put([0xffu8; 3]).unwrap();
    s.put(Order::sample(2)).unwrap();
    assert_eq!(s.get().unwrap(), Order::sample(1));
    match s.get() {
        Err(TypedError::Decode(e)) => assert_eq!((e.queue.as_str(), e.position), (&*sname, 1)),
        other => panic!("{other:?}"),
    }
    assert_eq!(s.get().unwrap(), Order::sample(2));
}

/// `Select` over two queues and a pipe end, with the other sides in other processes: a timeout
/// with nothing ready lasts at least its length and reports the timeout; a put by another
/// process wakes it with that queue's index; a message on the pipe wakes it with the pipe's;
/// the peer killed with SIGKILL makes the pipe end ready (end-of-file).
#[test]
fn select_across_processes_with_timeouts() {
    let _w = Watchdog::new("select", Duration::from_secs(60));
    let (n1, n2, np) = (
        Name::new("chan-sel-1"),
        Name::new("chan-sel-2"),
        Name::new("chan-sel-p"),
    );
    let q1 = Queue::create(&n1, &opts(4, 16)).unwrap();
    let q2 = Queue::create(&n2, &opts(4, 16)).unwrap();
    let (a, b) = Pipe::create(&np, &opts(4, 16)).unwrap();
    let mut sel = Select::new();
    let i1 = sel.get(&q1);
    let i2 = sel.get(&q2);
    let ip = sel.recv(&a);

    let t = Instant::now();
    assert_eq!(
        sel.ready_timeout(Duration::from_millis(100)),
        Err(SelectTimeoutError)
    );
    assert!(t.elapsed() >= Duration::from_millis(100));

    let putter = spawn("c-put-after", &[&n2, "50"]);
    assert_eq!(sel.ready_timeout(Duration::from_secs(20)), Ok(i2));
    assert_eq!(q2.try_get().unwrap(), b"go");
    finish_all(vec![putter]);

    let mut sender = spawn("c-pipe-send-then-hang", &[&np, "50"]);
    assert_eq!(sender.line(), "ready");
    drop(b); // only the child holds end B now
    assert_eq!(sel.ready_timeout(Duration::from_secs(20)), Ok(ip));
    assert_eq!(sender.line(), "sent");
    assert_eq!(a.try_recv().unwrap(), b"hello");

    // Nothing is ready: a short timeout again.
    let t = Instant::now();
    assert_eq!(
        sel.ready_timeout(Duration::from_millis(30)),
        Err(SelectTimeoutError)
    );
    assert!(t.elapsed() >= Duration::from_millis(30));

    sender.kill9();
    assert_eq!(sel.ready_timeout(Duration::from_secs(20)), Ok(ip));
    assert_eq!(a.try_recv(), Err(TryRecvError::Disconnected));
    assert!(q1.is_empty());
    let _ = i1;
}

/// Async on both sides, in two processes: a producer process puts with `put_async` under very
/// short timeouts (cancelled puts are retried), and this process gets with `get_async` under
/// `tokio::time::timeout` of a few microseconds on a multi-thread runtime, so many gets are
/// cancelled while pending. Every value arrives exactly once and in order: a cancelled get
/// lost no message, and a cancelled put took no slot.
#[test]
fn async_cancelled_gets_and_puts_lose_nothing_across_processes() {
    let _w = Watchdog::new("async cancel", Duration::from_secs(120));
    const COUNT: u64 = 3000;
    let name = Name::new("chan-async");
    let q = PodQueue::<u64>::create(&name, &opts(4, 8)).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // One get that is surely pending when it is cancelled (the queue is empty until the
    // producer starts): on a quiet machine the loop below may find a message at every poll.
    let early =
        rt.block_on(async { tokio::time::timeout(Duration::from_millis(20), q.get_async()).await });
    assert!(early.is_err(), "a get on an empty queue returned {early:?}");
    let producer = spawn("c-async-producer", &[&name, &COUNT.to_string()]);
    let (got, cancelled) = rt.block_on(async {
        let mut got = Vec::new();
        let mut cancelled = 1u64;
        loop {
            let t = Duration::from_micros(if got.len() % 2 == 0 { 1 } else { 300 });
            match tokio::time::timeout(t, q.get_async()).await {
                Ok(Ok(v)) => got.push(v),
                Ok(Err(TypedError::Queue(GetError::Closed))) => break,
                Ok(Err(e)) => panic!("get_async: {e}"),
                Err(_) => cancelled += 1,
            }
        }
        (got, cancelled)
    });
    let out = finish_all(vec![producer]);
    let text = String::from_utf8(out[0].clone()).unwrap();
    assert!(text.starts_with("cancelled "), "{text}");
    assert_eq!(got, (0..COUNT).collect::<Vec<_>>());
    assert!(
        cancelled > 0,
        "no get was cancelled: the test tested nothing"
    );
}

/// A pipe's async receiver notices a peer killed with SIGKILL (end-of-file) without any
/// message, through the notifier's liveness slice.
#[test]
fn async_recv_sees_killed_peer_as_end_of_file() {
    let _w = Watchdog::new("async eof", Duration::from_secs(60));
    let name = Name::new("chan-async-eof");
    let (a, b) = Pipe::create(&name, &opts(4, 16)).unwrap();
    let mut sender = spawn("c-pipe-send-then-hang", &[&name, "0"]);
    assert_eq!(sender.line(), "ready");
    drop(b);
    assert_eq!(sender.line(), "sent");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        assert_eq!(a.recv_async().await.unwrap(), b"hello");
        let pending = tokio::spawn(async move {
            let r = a.recv_async().await;
            (r, a)
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        sender.kill9();
        let (r, _a) = pending.await.unwrap();
        assert_eq!(r, Err(RecvError::Disconnected));
    });
}

/// The async notifier is per process: a process that used the async API (its notifier thread
/// runs) forks, and the child's `get_async`, pending on an empty queue, is woken when this
/// process puts a value. (Before, the child inherited the parent's notifier state but not its
/// thread, and the get was never woken.)
#[test]
fn async_get_in_a_forked_child_of_an_async_process_is_woken() {
    let _w = Watchdog::new("async fork", Duration::from_secs(60));
    let name = Name::new("chan-async-fork");
    let q = PodQueue::<u64>::create(&name, &opts(4, 8)).unwrap();
    let mut p = spawn("c-async-fork", &[&name]);
    assert_eq!(p.line(), "waiting");
    q.put(42).unwrap();
    assert_eq!(p.finish_lines(), ["got 42", "child 0"]);
    assert!(q.queue().is_empty());
}
