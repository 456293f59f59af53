//! The queue across real processes: the seed's scenarios, semantics, stress, crash repair and
//! bad input. Every test uses its own segment name (removed on drop) and a watchdog.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::shared::{check_stress, stress_message};
use common::{Name, Watchdog, finish_all, spawn};
use shmq::substrate::layout::{Kind, Params};
use shmq::{
    GetError, GetTimeoutError, OpenError, Options, PutTimeoutError, Queue, TryGetError,
    TryPutError, substrate::segment::AtomicRegion,
};

fn opts(capacity: usize, message_size: usize) -> Options {
    Options {
        capacity,
        message_size,
        ..Default::default()
    }
}

/// The seed: 3 producer processes put 10 items each, 2 consumer processes take them; the parent
/// closes the queue once every producer is done; each consumer ends on `Closed` (no sentinel, no
/// timeout) and every item is consumed exactly once.
#[test]
fn seed_producers_and_consumers_end_on_close() {
    let _w = Watchdog::new("seed", Duration::from_secs(60));
    let name = Name::new("seed");
    let q = Queue::create(&name, &opts(5, 64)).unwrap();
    let consumers: Vec<_> = (0..2).map(|_| spawn("q-consumer", &[&name])).collect();
    let producers: Vec<_> = (0..3)
        .map(|id| spawn("q-producer", &[&name, &id.to_string(), "10"]))
        .collect();
    finish_all(producers);
    q.close().unwrap();
    let outs = finish_all(consumers);
    let mut seen = Vec::new();
    for out in &outs {
        seen.extend(String::from_utf8_lossy(out).lines().map(str::to_owned));
    }
    let unique: HashSet<_> = seen.iter().cloned().collect();
    let expected: HashSet<_> = (0..3)
        .flat_map(|p| (0..10).map(move |i| format!("{p}:{i}")))
        .collect();
    assert_eq!(seen.len(), 30, "every item exactly once: {seen:?}");
    assert_eq!(unique, expected);
    assert!(q.is_empty() && q.is_closed());
}

/// Python's JoinableQueue: 10 producer processes put 10 items each and `join`; 5 consumer
/// processes call `task_done` after each item. Every producer gets past `join`, and afterwards
/// no task is unfinished.
#[test]
fn joinable_producers_join_until_consumers_are_done() {
    let _w = Watchdog::new("joinable", Duration::from_secs(60));
    let name = Name::new("joinable");
    let q = Queue::create(&name, &opts(8, 64)).unwrap();
    let consumers: Vec<_> = (0..5).map(|_| spawn("q-join-consumer", &[&name])).collect();
    let producers: Vec<_> = (0..10)
        .map(|id| spawn("q-join-producer", &[&name, &id.to_string(), "10"]))
        .collect();
    for out in finish_all(producers) {
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text.trim(),
            "joined",
            "a producer exits only after join returns"
        );
    }
    assert_eq!(q.unfinished(), 0);
    assert!(q.is_empty());
    q.close().unwrap();
    let consumed: usize = finish_all(consumers)
        .iter()
        .map(|o| String::from_utf8_lossy(o).lines().count())
        .sum();
    assert_eq!(consumed, 100);
}

/// Capacity, full/empty, the non-blocking and timed variants, `len`, FIFO order, message sizes.
#[test]
fn semantics_of_a_six_slot_queue() {
    let _w = Watchdog::new("semantics", Duration::from_secs(60));
    let name = Name::new("semantics");
    // The maximum message size is the slot size here: larger messages are refused (large
    // messages have their own tests, tests/large_mp.rs).
    let q = Queue::create(
        &name,
        &Options {
            max_message_size: 32,
            ..opts(6, 32)
        },
    )
    .unwrap();
    let other = Queue::open(&name).unwrap();
    assert_eq!((q.capacity(), q.message_size()), (6, 32));

    // len follows 0, 1, 2, 1, 0, seen from another handle.
    assert_eq!(other.len(), 0);
    q.put(b"a").unwrap();
    assert_eq!(other.len(), 1);
    q.put(b"b").unwrap();
    assert_eq!(other.len(), 2);
    assert_eq!(other.get().unwrap(), b"a");
    assert_eq!(other.len(), 1);
    assert_eq!(other.get().unwrap(), b"b");
    assert_eq!(other.len(), 0);
    assert!(other.is_empty());

    // Empty: try_get fails at once, get_timeout waits at least its timeout.
    assert_eq!(q.try_get(), Err(TryGetError::Empty));
    let t = Instant::now();
    assert_eq!(
        q.get_timeout(Duration::from_millis(200)),
        Err(GetTimeoutError::Timeout)
    );
    assert!(t.elapsed() >= Duration::from_millis(200));
    let t = Instant::now();
    let d = t + Duration::from_millis(50);
    assert_eq!(q.get_deadline(d), Err(GetTimeoutError::Timeout));
    assert!(Instant::now() >= d);

    // Six puts fill it.
    for i in 0..6u8 {
        assert!(!q.is_full());
        q.put([i]).unwrap();
    }
    assert!(q.is_full() && other.is_full());
    assert_eq!(q.len(), 6);
    let t = Instant::now();
    match q.try_put(vec![9u8]) {
        Err(TryPutError::Full(m)) => assert_eq!(m, vec![9u8]),
        other => panic!("expected Full, got {other:?}"),
    }
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "try_put fails at once"
    );
    let t = Instant::now();
    match q.put_timeout(vec![10u8], Duration::from_millis(200)) {
        Err(PutTimeoutError::Timeout(m)) => assert_eq!(m, vec![10u8]),
        other => panic!("expected Timeout, got {other:?}"),
    }
    assert!(t.elapsed() >= Duration::from_millis(200));
    assert!(
        q.put_deadline(b"x", Instant::now() + Duration::from_millis(20))
            .unwrap_err()
            .is_timeout()
    );

    // FIFO with one producer.
    for i in 0..6u8 {
        assert_eq!(other.get().unwrap(), [i]);
    }

    // Empty messages and messages of exactly message_size round-trip; larger are refused.
    q.put(b"").unwrap();
    q.put([7u8; 32]).unwrap();
    assert_eq!(other.get().unwrap(), b"");
    assert_eq!(other.get().unwrap(), [7u8; 32]);
    let e = q.put(vec![0u8; 33]).unwrap_err();
    assert!(matches!(
        e,
        shmq::PutError::TooLarge {
            len: 33,
            max: 32,
            ..
        }
    ));
    assert_eq!(e.into_inner().len(), 33);
    assert!(q.try_put([0u8; 33]).is_err());
    assert!(q.is_empty());

    // get_into with a short buffer leaves the message in place.
    q.put(b"12345").unwrap();
    let mut small = [0u8; 4];
    assert_eq!(
        other.get_into(&mut small),
        Err(GetError::BufferTooSmall {
            needed: 5,
            available: 4
        })
    );
    assert_eq!(q.len(), 1);
    let mut buf = [0u8; 32];
    let n = other.get_into(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"12345");

    // Batches and the zero-copy pair.
    q.put_many(&[b"m1", b"m2", b"m3"]).unwrap();
    let mut got = Vec::new();
    assert_eq!(other.get_many_with(2, |m| got.push(m.to_vec())).unwrap(), 2);
    assert_eq!(got, [b"m1".to_vec(), b"m2".to_vec()]);
    q.put_with(|b| {
        b[..2].copy_from_slice(b"zc");
        2
    })
    .unwrap();
    assert_eq!(
        other.try_get_many(10).unwrap(),
        [b"m3".to_vec(), b"zc".to_vec()]
    );
    assert_eq!(q.unfinished(), 15);
}

/// 4 producer and 4 consumer processes move 1,000,000 checksummed, numbered messages: none is
/// lost or duplicated, and each consumer sees each producer's messages in order.
#[test]
fn stress_four_producer_and_four_consumer_processes() {
    let _w = Watchdog::new("stress processes", Duration::from_secs(300));
    const PER_PRODUCER: u32 = 250_000;
    let name = Name::new("stress");
    let q = Queue::create(&name, &opts(256, 24)).unwrap();
    let consumers: Vec<_> = (0..4)
        .map(|_| spawn("q-stress-consumer", &[&name]))
        .collect();
    // Drain the consumers' output while they run, so that no pipe fills up and stalls them.
    let consumers = std::thread::spawn(move || finish_all(consumers));
    let producers: Vec<_> = (0..4)
        .map(|id| {
            spawn(
                "q-stress-producer",
                &[&name, &id.to_string(), &PER_PRODUCER.to_string()],
            )
        })
        .collect();
    let start = Instant::now();
    finish_all(producers);
    q.close().unwrap();
    let outs = consumers.join().unwrap();
    let elapsed = start.elapsed();
    common::check_stress_outputs(outs, 4, PER_PRODUCER as usize);
    assert_eq!(q.unfinished(), u64::from(4 * PER_PRODUCER));
    eprintln!("stress: 1,000,000 messages through 4x4 processes in {elapsed:?}");
}

/// 4 producer and 4 consumer processes on a queue of 256 slots, the consumers taking with the
/// reserving gets (two with `get_with`, two with `try_get_with`) and calling `task_done` after
/// each message: both take the queue's lock while lock-free puts and gets move the positions,
/// and none may report the healthy queue corrupt (a consumer that meets any error but Closed
/// fails). Every message arrives once, in each producer's order, and every task is done.
#[test]
fn reserving_gets_and_task_done_beside_lock_free_traffic_never_report_corrupt() {
    let _w = Watchdog::new("reserving gets", Duration::from_secs(300));
    const PER_PRODUCER: u32 = 100_000;
    let name = Name::new("reserving");
    let q = Queue::create(&name, &opts(256, 128)).unwrap();
    let consumers: Vec<_> = ["with", "try-with", "with", "try-with"]
        .iter()
        .map(|mode| spawn("q-stress-consumer", &[&name, mode]))
        .collect();
    let consumers = std::thread::spawn(move || finish_all(consumers));
    let producers: Vec<_> = (0..4)
        .map(|id| {
            spawn(
                "q-stress-producer",
                &[&name, &id.to_string(), &PER_PRODUCER.to_string()],
            )
        })
        .collect();
    finish_all(producers);
    q.close().unwrap();
    let outs = consumers.join().unwrap();
    common::check_stress_outputs(outs, 4, PER_PRODUCER as usize);
    assert_eq!(q.unfinished(), 0, "every consumer marked each message done");
}

/// The same with threads sharing one handle (`Queue: Send + Sync`).
#[test]
fn stress_threads_sharing_one_handle() {
    let _w = Watchdog::new("stress threads", Duration::from_secs(300));
    const PER_PRODUCER: u32 = 250_000;
    let name = Name::new("stress-threads");
    let q = Arc::new(Queue::create(&name, &opts(256, 24)).unwrap());
    let consumers: Vec<_> = (0..4)
        .map(|_| {
            let q = Arc::clone(&q);
            std::thread::spawn(move || {
                let mut got = Vec::new();
                let mut last: BTreeMap<u32, u32> = BTreeMap::new();
                let mut buf = [0u8; 24];
                while let Ok(n) = q.get_into(&mut buf) {
                    let (id, seq) = check_stress(&buf[..n]).expect("corrupt message");
                    if let Some(&l) = last.get(&id) {
                        assert!(seq > l, "producer {id} out of order");
                    }
                    last.insert(id, seq);
                    got.push((id, seq));
                }
                got
            })
        })
        .collect();
    let producers: Vec<_> = (0..4u32)
        .map(|id| {
            let q = Arc::clone(&q);
            std::thread::spawn(move || {
                for seq in 0..PER_PRODUCER {
                    q.put(stress_message(id, seq)).unwrap();
                }
            })
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    q.close().unwrap();
    let mut seen = vec![vec![false; PER_PRODUCER as usize]; 4];
    let mut total = 0;
    for c in consumers {
        for (id, seq) in c.join().unwrap() {
            assert!(!std::mem::replace(
                &mut seen[id as usize][seq as usize],
                true
            ));
            total += 1;
        }
    }
    assert_eq!(total, 4 * PER_PRODUCER as usize);
}

/// A process SIGKILLed inside a put (payload half-written, slot claimed): a process blocked in
/// `get` finds the claim's owner dead, voids it and goes on, the half-done put is not there, the parent's
/// next put and get succeed, `len` is right, and no message whose put returned `Ok` is lost.
#[test]
fn crash_inside_put_is_repaired_and_loses_nothing() {
    let _w = Watchdog::new("crash in put", Duration::from_secs(60));
    let name = Name::new("crash-put");
    let q = Queue::create(&name, &opts(4, 16)).unwrap();

    let mut getter = spawn("q-getter", &[&name]);
    assert_eq!(getter.line(), "ready");
    let mut crasher = spawn("crash-in-put", &[&name]);
    assert_eq!(crasher.line(), "holding");
    // The slot is claimed and the half-written message is not published: nothing to take
    // (the claim, a put in flight, counts in `len`).
    assert_eq!(q.try_get(), Err(TryGetError::Empty));
    assert_eq!(q.len(), 1);
    crasher.kill9();

    q.put(b"after").unwrap();
    assert_eq!(
        getter.line(),
        "after",
        "the blocked getter woke and got the next put"
    );
    getter.finish();
    assert_eq!(q.len(), 0);
    q.put(b"one").unwrap();
    q.put(b"two").unwrap();
    assert_eq!(q.len(), 2);
    assert_eq!(q.get().unwrap(), b"one");
    assert_eq!(q.get().unwrap(), b"two");
    assert_eq!(
        q.try_get(),
        Err(TryGetError::Empty),
        "the partial put is not there"
    );
}

/// A process SIGKILLed inside the closure of a `get_with` (issue 11): the closure reads the
/// message in place, reserved, before anything is taken, so the message stays first in the
/// queue; `len`, the free slots and the task count are all right, and the queue works on (the
/// next locker clears the dead reader's reservation).
#[test]
fn crash_inside_get_with_takes_nothing() {
    let _w = Watchdog::new("crash in get", Duration::from_secs(60));
    let name = Name::new("crash-get");
    let q = Queue::create(&name, &opts(4, 16)).unwrap();
    q.put(b"first").unwrap();
    q.put(b"second").unwrap();
    let mut crasher = spawn("crash-in-get", &[&name]);
    assert_eq!(crasher.line(), "holding first");
    crasher.kill9();
    assert_eq!(q.len(), 2);
    assert!(!q.is_full() && !q.is_empty());
    assert_eq!(q.get().unwrap(), b"first");
    assert_eq!(q.get().unwrap(), b"second");
    for i in 0..4u8 {
        q.try_put([i]).unwrap();
    }
    assert!(q.try_put([9]).unwrap_err().is_full());
    assert_eq!(q.unfinished(), 6);
}

/// Several processes race `open_or_create` on one name: all succeed on the same queue.
#[test]
fn open_or_create_race_gives_one_queue() {
    let _w = Watchdog::new("open_or_create race", Duration::from_secs(60));
    for round in 0..5 {
        let name = Name::new(&format!("race{round}"));
        let procs: Vec<_> = (0..6)
            .map(|id| spawn("q-open-or-create", &[&name, "16", "8", &id.to_string()]))
            .collect();
        finish_all(procs);
        let q = Queue::open(&name).unwrap();
        let mut ids: Vec<String> = (0..6)
            .map(|_| String::from_utf8(q.try_get().unwrap()).unwrap())
            .collect();
        ids.sort();
        assert_eq!(ids, ["0", "1", "2", "3", "4", "5"]);
    }
}

/// Each create/open error is produced: none panics or hangs.
#[test]
fn bad_input_is_a_typed_error() {
    let _w = Watchdog::new("bad input", Duration::from_secs(60));
    let name = Name::new("bad");
    assert!(matches!(Queue::open(&name), Err(OpenError::NotFound(_))));
    let _q = Queue::create(&name, &opts(2, 8)).unwrap();
    assert!(matches!(
        Queue::create(&name, &opts(2, 8)),
        Err(OpenError::AlreadyExists(_))
    ));
    for bad in ["", ".", "..", "a/b", "sp ace", &"n".repeat(201)] {
        assert!(
            matches!(Queue::open(bad), Err(OpenError::InvalidName { .. })),
            "{bad:?}"
        );
        assert!(matches!(
            Queue::create(bad, &opts(2, 8)),
            Err(OpenError::InvalidName { .. })
        ));
    }
    for (c, m) in [(0, 8), (2, 0), (1 << 40, 8), (8, 1 << 40)] {
        let n = Name::new("opts");
        assert!(matches!(
            Queue::create(&n, &opts(c, m)),
            Err(OpenError::InvalidOptions(_))
        ));
        assert!(
            matches!(Queue::open(&n), Err(OpenError::NotFound(_))),
            "nothing left behind"
        );
    }

    // A segment of another kind.
    let other = Name::new("kind");
    let _seg = AtomicRegion::create(
        &other,
        &Params {
            kind: Kind::Dict,
            capacity: 1,
            message_size: 1,
            slot_stride: 1,
            aux: 0,
            total_size: 4096,
        },
        0o600,
        |_| Ok(()),
    )
    .unwrap();
    let e = Queue::open(&other).unwrap_err();
    assert!(matches!(e, OpenError::Incompatible(_)), "{e}");
    assert!(e.to_string().contains("dict"), "{e}");

    // Another layout version.
    let v = Name::new("version");
    let _q = Queue::create(&v, &opts(2, 8)).unwrap();
    common::write_segment_bytes(&v, 8, &99u32.to_ne_bytes());
    let e = Queue::open(&v).unwrap_err();
    assert!(matches!(e, OpenError::Incompatible(_)), "{e}");
    assert!(e.to_string().contains("99"), "{e}");

    // A truncated segment.
    let t = Name::new("trunc");
    drop(Queue::create(&t, &opts(4, 64)).unwrap());
    let path = format!("/dev/shm/{}", t.as_str());
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(600)
        .unwrap();
    let e = Queue::open(&t).unwrap_err();
    assert!(matches!(e, OpenError::Corrupt(_)), "{e}");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(10)
        .unwrap();
    assert!(matches!(Queue::open(&t), Err(OpenError::Corrupt(_))));

    // A file of random bytes.
    let r = Name::new("random");
    let mut f = std::fs::File::create(format!("/dev/shm/{}", r.as_str())).unwrap();
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let bytes: Vec<u8> = (0..8192)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    f.write_all(&bytes).unwrap();
    drop(f);
    let e = Queue::open(&r).unwrap_err();
    assert!(matches!(e, OpenError::Corrupt(_)), "{e}");
    assert!(e.to_string().contains("not a shmq segment"), "{e}");
}

/// A file-backed queue: created at a path, opened again, garbage refused.
#[test]
fn file_backed_queue() {
    let dir = std::env::temp_dir().join(format!("shmq-test-file-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("q");
    let _ = std::fs::remove_file(&path);
    let q = Queue::create_file(&path, &opts(3, 8)).unwrap();
    q.put(b"disk").unwrap();
    let again = Queue::open_file(&path).unwrap();
    assert_eq!(again.get().unwrap(), b"disk");
    assert!(matches!(
        Queue::create_file(&path, &opts(3, 8)),
        Err(OpenError::AlreadyExists(_))
    ));
    let junk = dir.join("junk");
    std::fs::write(&junk, vec![0xabu8; 4096]).unwrap();
    assert!(matches!(
        Queue::open_file(&junk),
        Err(OpenError::Corrupt(_))
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Processes SIGKILLed while asleep in `get` (registered as sleepers, holding no lock) leave
/// nothing behind that matters: their stale sleeper count only costs a needless wake-up, and the
/// next getter is served as usual.
#[test]
fn crash_of_sleeping_getters_leaves_the_queue_working() {
    let _w = Watchdog::new("crash of sleepers", Duration::from_secs(60));
    let name = Name::new("crash-sleepers");
    let q = Queue::create(&name, &opts(2, 16)).unwrap();
    for _ in 0..3 {
        let mut sleeper = spawn("q-getter", &[&name]);
        assert_eq!(sleeper.line(), "ready");
        // Let it pass its spin and poll phases and sleep in FUTEX_WAIT.
        std::thread::sleep(Duration::from_millis(100));
        sleeper.kill9();
    }
    let mut getter = spawn("q-getter", &[&name]);
    assert_eq!(getter.line(), "ready");
    q.put(b"served").unwrap();
    assert_eq!(getter.line(), "served");
    getter.finish();
    assert!(q.is_empty());
    q.put(b"again").unwrap();
    assert_eq!(q.try_get().unwrap(), b"again");
}
