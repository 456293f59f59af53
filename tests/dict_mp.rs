//! The shared dict and the named lock across real processes: the seed's 100 → 30 race with and
//! without the lock, `add`, holders killed inside the critical section, the Manager-dict
//! semantics and bad input. Every test uses its own segment names (removed on drop) and a
//! watchdog.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{Name, Proc, Watchdog, eventually, finish_all, spawn};
use shmq::substrate::layout::{Kind, Params};
use shmq::{OpenError, Options as QueueOptions, Queue, substrate::segment::AtomicRegion};
use shmq_dict::{AcquireError, DictError, Lock, Options, ProcessLock, SharedDict};

/// Processes per run, as in the seed.
const PROCS: i64 = 70;
/// The counter's start value; every run must end at `START - PROCS` = 30 when nothing is lost.
const START: i64 = 100;
/// Whole runs per race test.
const RUNS: usize = 10;
/// The pause between read and write that widens the unlocked race window (microseconds).
const WIDE_PAUSE_US: u64 = 3000;

fn dict(name: &str) -> SharedDict {
    SharedDict::create(
        name,
        &Options {
            capacity: 16,
            max_key_len: 16,
            ..Default::default()
        },
    )
    .unwrap()
}

/// One run of the seed: sets `count` to `START`, starts `PROCS` decrementers in `mode`, releases
/// them together once all have reported in, waits for each to exit successfully, and returns the
/// final `count`.
fn race(d: &SharedDict, name: &str, mode: &str, pause_us: u64) -> i64 {
    d.clear().unwrap();
    d.insert("count", START).unwrap();
    let pause = pause_us.to_string();
    let procs: Vec<Proc> = (0..PROCS)
        .map(|_| spawn("dict-decrement", &[name, mode, &pause]))
        .collect();
    assert!(
        eventually(Duration::from_secs(30), || d.get("ready").unwrap()
            == Some(PROCS)),
        "every decrementer reports in"
    );
    d.insert("go", 1).unwrap();
    finish_all(procs);
    d.get("count").unwrap().expect("count is set")
}

/// The seed's fix: 70 processes each decrement `count` from 100 under the dict's lock, with the
/// same widened window between read and write as the unlocked test (which loses updates), so
/// the lock is the only difference; every one of 10 runs ends at exactly 30.
#[test]
fn race_locked_ends_at_exactly_30_every_run() {
    let _w = Watchdog::new("race locked", Duration::from_secs(120));
    let name = Name::new("race-locked");
    let d = dict(&name);
    let finals: Vec<i64> = (0..RUNS)
        .map(|_| race(&d, &name, "locked", WIDE_PAUSE_US))
        .collect();
    eprintln!("race locked, {WIDE_PAUSE_US} us window: finals {finals:?}");
    assert_eq!(finals, vec![START - PROCS; RUNS]);
}

/// The seed's other form: the read and the write inside a separate named [`Lock`]
/// (`lock.acquire(); dic['count'] -= 1; lock.release()`), with the widened window: exactly 30.
#[test]
fn race_under_a_named_lock_ends_at_exactly_30() {
    let _w = Watchdog::new("race named lock", Duration::from_secs(120));
    let name = Name::new("race-named");
    let lock_name = Name::new("race-named-lock");
    let _lock = Lock::create(&lock_name).unwrap();
    let d = dict(&name);
    let mode = format!("lock:{}", lock_name.as_str());
    let finals: Vec<i64> = (0..3)
        .map(|_| race(&d, &name, &mode, WIDE_PAUSE_US))
        .collect();
    eprintln!("race under a named lock, {WIDE_PAUSE_US} us window: finals {finals:?}");
    assert_eq!(finals, vec![START - PROCS; 3]);
}

/// The bug the lock fixes, made reproducible: a get and an insert without the lock, with a pause
/// between them, lose updates. At least one of 10 runs ends above 30, which proves the race
/// tests can see the race they exist for; no run ends outside 30..=99.
#[test]
fn race_unlocked_with_a_widened_window_loses_updates() {
    let _w = Watchdog::new("race unlocked wide", Duration::from_secs(120));
    let name = Name::new("race-wide");
    let d = dict(&name);
    let finals: Vec<i64> = (0..RUNS)
        .map(|_| race(&d, &name, "unlocked", WIDE_PAUSE_US))
        .collect();
    eprintln!("race unlocked, {WIDE_PAUSE_US} us window: finals {finals:?}");
    assert!(
        finals.iter().all(|f| (START - PROCS..START).contains(f)),
        "{finals:?}"
    );
    assert!(
        finals.iter().any(|&f| f > START - PROCS),
        "no lost update in {RUNS} runs: {finals:?}"
    );
}

/// The same without the pause: whether an update is lost is left to the scheduler, so the
/// outcome is reported, not asserted (beyond the range every interleaving stays in).
#[test]
fn race_unlocked_without_a_pause_is_reported() {
    let _w = Watchdog::new("race unlocked", Duration::from_secs(120));
    let name = Name::new("race-nopause");
    let d = dict(&name);
    let finals: Vec<i64> = (0..RUNS).map(|_| race(&d, &name, "unlocked", 0)).collect();
    let lost = finals.iter().filter(|&&f| f > START - PROCS).count();
    eprintln!("race unlocked, no pause: finals {finals:?} ({lost} of {RUNS} runs lost updates)");
    assert!(
        finals.iter().all(|f| (START - PROCS..START).contains(f)),
        "{finals:?}"
    );
}

/// `add(-1)` from 70 processes, no explicit lock: one atomic read-modify-write each, so every
/// run ends at exactly 30.
#[test]
fn add_from_70_processes_ends_at_exactly_30() {
    let _w = Watchdog::new("race add", Duration::from_secs(120));
    let name = Name::new("race-add");
    let d = dict(&name);
    let finals: Vec<i64> = (0..RUNS).map(|_| race(&d, &name, "add", 0)).collect();
    eprintln!("add: finals {finals:?}");
    assert_eq!(finals, vec![START - PROCS; RUNS]);
}

/// A holder SIGKILLed inside the critical section, before and after its write: the next locker
/// is told the owner died, `count` holds the old value (before) or the new one (after), the next
/// lock after that is clean, and a full 70-process locked run ends exactly 70 lower.
#[test]
fn holder_killed_inside_the_critical_section_is_reported_and_the_lock_keeps_working() {
    let _w = Watchdog::new("dict holder killed", Duration::from_secs(120));
    let name = Name::new("dict-kill");
    let d = dict(&name);
    for (when, expected) in [("before", START), ("after", START - 1)] {
        d.insert("count", START).unwrap();
        let mut crasher = spawn("crash-dict-hold", &[&name, when]);
        assert_eq!(crasher.line(), format!("holding {START}"));
        assert_eq!(d.try_lock().unwrap_err(), AcquireError::WouldBlock);
        crasher.kill9();

        let mut g = d.lock().unwrap();
        assert!(g.previous_owner_died(), "{when}: the death is reported");
        let c = g.get("count").unwrap();
        assert!(c == Some(START) || c == Some(START - 1), "{when}: {c:?}");
        assert_eq!(c, Some(expected), "{when}");
        assert_eq!(g.len().unwrap(), 1);
        g.insert("count", START).unwrap();
        drop(g);
        let g = d.lock().unwrap();
        assert!(!g.previous_owner_died(), "reported once, then repaired");
        drop(g);
    }
    let after = race(&d, &name, "locked", 0);
    assert_eq!(after, START - PROCS);
}

/// A holder SIGKILLed at a random instant of a burst of inserts, adds and removes (so inside
/// some operation): every entry afterwards is one that was fully written (each value of `kI` is
/// congruent to I modulo 1000), `len` agrees with the entries, and the dict goes on working.
#[test]
fn holder_killed_mid_operation_leaves_no_torn_entry() {
    let _w = Watchdog::new("dict churn killed", Duration::from_secs(120));
    const KEYS: usize = 24;
    let name = Name::new("dict-churn");
    let d = SharedDict::create(
        &name,
        &Options {
            capacity: 32,
            max_key_len: 8,
            ..Default::default()
        },
    )
    .unwrap();
    for (i, delay_ms) in [5u64, 23, 61].into_iter().enumerate() {
        let mut crasher = spawn("crash-dict-churn", &[&name, &KEYS.to_string()]);
        assert_eq!(crasher.line(), "holding");
        std::thread::sleep(Duration::from_millis(delay_ms));
        crasher.kill9();

        let mut g = d.lock().unwrap();
        assert!(g.previous_owner_died(), "kill {i}");
        let snap = g.snapshot().unwrap();
        assert_eq!(g.len().unwrap(), snap.len(), "count rebuilt: {snap:?}");
        assert!(!snap.is_empty(), "the burst wrote something: {snap:?}");
        for (k, v) in &snap {
            let idx: i64 = k
                .strip_prefix('k')
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("unexpected key {k:?}"));
            assert!((0..KEYS as i64).contains(&idx), "{k}");
            assert!(
                *v >= 0 && v % 1000 == idx,
                "torn or foreign value {k} = {v}"
            );
        }
        // One insertion order, which pop_last drains backwards.
        let order = g.entries().unwrap();
        assert_eq!(order.len(), snap.len());
        let mut popped = Vec::new();
        while let Some(e) = g.pop_last().unwrap() {
            popped.push(e);
        }
        popped.reverse();
        assert_eq!(popped, order, "pop_last walks the insertion order back");
        // Every key can be written, read and removed again.
        for i in 0..KEYS {
            let k = format!("k{i}");
            g.insert(&k, -(i as i64)).unwrap();
            assert_eq!(g.get(&k).unwrap(), Some(-(i as i64)));
        }
        assert_eq!(g.len().unwrap(), KEYS);
        g.clear().unwrap();
    }
    assert!(!d.lock().unwrap().previous_owner_died());
}

/// The named lock: held by another process, `try_lock` and `try_lock_for` fail; after that
/// process is SIGKILLed, the next lock says the owner died, and the one after is clean.
#[test]
fn named_lock_holder_killed_is_reported_and_the_lock_keeps_working() {
    let _w = Watchdog::new("lock holder killed", Duration::from_secs(60));
    let name = Name::new("lock-kill");
    let lock = Lock::create(&name).unwrap();
    let mut holder = spawn("crash-lock-hold", &[&name]);
    assert_eq!(holder.line(), "holding");
    assert_eq!(lock.try_lock().unwrap_err(), AcquireError::WouldBlock);
    let t = std::time::Instant::now();
    assert_eq!(
        lock.try_lock_for(Duration::from_millis(50)).unwrap_err(),
        AcquireError::Timeout
    );
    assert!(t.elapsed() >= Duration::from_millis(50));
    holder.kill9();

    let g = lock.lock().unwrap();
    assert!(g.previous_owner_died());
    drop(g);
    let reopened = Lock::open(&name).unwrap();
    let g = reopened.try_lock().unwrap();
    assert!(!g.previous_owner_died());
    drop(g);
    let other = Lock::open_or_create(&name).unwrap();
    assert!(!other.lock().unwrap().previous_owner_died());
}

/// The process lock: held by a live process, a second process releases it and the parent takes
/// it; held by a process that is then SIGKILLed, the next acquirer takes it over and is told.
#[test]
fn process_lock_is_released_by_another_process_and_taken_over_from_a_killed_one() {
    let _w = Watchdog::new("process lock", Duration::from_secs(60));
    let name = Name::new("plock");
    let lock = ProcessLock::create(&name).unwrap();
    let mut holder = spawn("crash-plock-hold", &[&name]);
    assert_eq!(holder.line(), "holding");
    assert_eq!(lock.try_acquire().unwrap_err(), AcquireError::WouldBlock);
    assert_eq!(lock.holder_pid(), Some(holder.pid()));
    assert!(matches!(
        Lock::inspect(&name).unwrap(),
        shmq::substrate::sync::LockState::Held { owner_tid, owner_alive: true, .. } if owner_tid == holder.pid()
    ));
    let mut releaser = spawn("plock-release", &[&name]);
    assert_eq!(releaser.line(), "released");
    finish_all(vec![releaser]);
    let a = lock.acquire_for(Duration::from_secs(10)).unwrap();
    assert!(!a.previous_owner_died, "released, not taken over");
    lock.release().unwrap();
    holder.kill9();

    let mut holder = spawn("crash-plock-hold", &[&name]);
    assert_eq!(holder.line(), "holding");
    holder.kill9();
    let a = lock.acquire_for(Duration::from_secs(10)).unwrap();
    assert!(a.previous_owner_died, "taken over from the killed holder");
    lock.release().unwrap();
    assert_eq!(
        Lock::inspect(&name).unwrap(),
        shmq::substrate::sync::LockState::Free
    );
    assert!(matches!(Lock::open(&name), Err(OpenError::Incompatible(_))));
}

/// A dict segment of table format 1 (no insertion numbers) is refused with a clear error.
#[test]
fn a_dict_of_the_previous_table_format_is_incompatible() {
    let name = Name::new("dict-format1");
    // Format 1: 16 entries, keys of 8 bytes, stride 8 × (2 + 1).
    let params = Params {
        kind: Kind::Dict,
        capacity: 16,
        message_size: 8,
        slot_stride: 24,
        aux: 1,
        total_size: 384 + 16 * 24,
    };
    let _r = AtomicRegion::create(&name, &params, 0o600, |w| {
        w[0].store(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    })
    .unwrap();
    match SharedDict::open(&name) {
        Err(OpenError::Incompatible(m)) => assert!(m.contains("table format 1"), "{m}"),
        other => panic!("{other:?}"),
    }
}

/// Bug 5 at the library level: inspecting a named lock whose holder was SIGKILLed (what
/// `shmq stat` does) shows the dead holder without taking the lock, as often as asked, and the
/// next locker is still told that the owner died. The death is detected within a bounded time.
#[test]
fn inspecting_a_lock_whose_holder_was_killed_leaves_the_report_for_the_next_locker() {
    let _w = Watchdog::new("lock inspect killed", Duration::from_secs(60));
    let name = Name::new("lock-inspect");
    let lock = Lock::create(&name).unwrap();
    let mut holder = spawn("crash-lock-hold", &[&name]);
    assert_eq!(holder.line(), "holding");
    assert!(matches!(
        Lock::inspect(&name).unwrap(),
        shmq::substrate::sync::LockState::Held {
            owner_alive: true,
            ..
        }
    ));
    holder.kill9();
    for _ in 0..3 {
        match Lock::inspect(&name).unwrap() {
            shmq::substrate::sync::LockState::Held {
                owner_alive: false,
                repair_pending: false,
                ..
            } => {}
            other => panic!("after the kill: {other}"),
        }
    }
    let t = std::time::Instant::now();
    let g = lock
        .try_lock_for(Duration::from_secs(30))
        .expect("the dead holder's lock is taken over");
    eprintln!("killed holder's lock taken over after {:?}", t.elapsed());
    assert!(g.previous_owner_died());
    drop(g);
    assert_eq!(
        Lock::inspect(&name).unwrap(),
        shmq::substrate::sync::LockState::Free
    );
    assert!(!lock.lock().unwrap().previous_owner_died());
}

/// Writes a lock's `owner` word (offset 0 of the lock) and `state` word (offset 16) into the
/// file of segment `name`, as a broken or hostile peer could.
fn scribble_lock(name: &str, lock_offset: u64, owner: u64, state: u32) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/dev/shm/{name}"))
        .unwrap();
    f.write_at(&owner.to_ne_bytes(), lock_offset).unwrap();
    f.write_at(&state.to_ne_bytes(), lock_offset + 16).unwrap();
}

/// A thread id no thread has: ids are below `pid_max` (at most 2^22).
fn absent_tid() -> u64 {
    std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Bugs 7 and 4 on a dict's lock: bytes written into the lock by a peer. A lock word naming a
/// thread that does not exist is taken over and reported (never a hang); words no lock writes
/// are a typed error from every call at once (never an abort or a hang); opening and inspecting
/// never take the lock; zeroed bytes are a free lock.
#[test]
fn a_damaged_dict_lock_is_repaired_or_corrupt_never_a_hang_or_an_abort() {
    let _w = Watchdog::new("dict lock bytes", Duration::from_secs(60));
    let name = Name::new("dict-lockbytes");
    let d = dict(&name);
    d.insert("k", 1).unwrap();

    scribble_lock(&name, 128, absent_tid(), 0);
    assert!(matches!(
        SharedDict::inspect(&name).unwrap().lock,
        shmq::substrate::sync::LockState::Held {
            owner_alive: false,
            ..
        }
    ));
    let g = d.lock().unwrap();
    assert!(g.previous_owner_died());
    drop(g);
    assert_eq!(d.get("k"), Ok(Some(1)));

    for (owner, state) in [(0xdead_beef_dead_beef, 0), (1 << 40, 0), (0, 7)] {
        scribble_lock(&name, 128, owner, state);
        assert!(
            matches!(d.get("k"), Err(DictError::Lock(AcquireError::Failed(_)))),
            "{owner:#x} {state}"
        );
        assert!(matches!(d.try_lock(), Err(AcquireError::Failed(_))));
        assert!(matches!(
            d.try_lock_for(Duration::from_millis(10)),
            Err(AcquireError::Failed(_))
        ));
        let other = SharedDict::open(&name).expect("opening does not lock");
        assert!(matches!(other.len(), Err(DictError::Lock(_))));
        let info = SharedDict::inspect(&name).unwrap();
        if owner != 0 {
            assert!(
                matches!(info.lock, shmq::substrate::sync::LockState::Corrupt(_)),
                "{owner:#x}"
            );
        }
    }
    scribble_lock(&name, 128, 0, 0);
    assert_eq!(d.get("k"), Ok(Some(1)));
}

/// The Manager-dict test of the seed: five keys inserted, `snapshot` equals the expected map,
/// `keys` sorted equals the keys, `remove` and `contains_key` agree (seen from another handle),
/// and a full table or a too-long key is an error that changes nothing.
#[test]
fn manager_dict_semantics() {
    let _w = Watchdog::new("dict semantics", Duration::from_secs(60));
    let name = Name::new("dict-semantics");
    let d = SharedDict::create(
        &name,
        &Options {
            capacity: 5,
            max_key_len: 10,
            ..Default::default()
        },
    )
    .unwrap();
    let other = SharedDict::open(&name).unwrap();
    assert_eq!((other.capacity(), other.max_key_len()), (5, 10));
    let expected: BTreeMap<String, i64> = [("apple", 1), ("banana", -2), ("cherry", 3)]
        .into_iter()
        .chain([("date", i64::MAX), ("elderberry", i64::MIN)])
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    for (k, v) in &expected {
        assert_eq!(d.insert(k, *v).unwrap(), None);
    }
    assert_eq!(other.snapshot().unwrap(), expected);
    let mut keys = other.keys().unwrap();
    keys.sort();
    assert_eq!(keys, expected.keys().cloned().collect::<Vec<_>>());
    assert_eq!(other.len().unwrap(), 5);
    assert!(!other.is_empty().unwrap());

    // A full table and a too-long key: errors, and nothing changes.
    assert_eq!(d.insert("fig", 6), Err(DictError::Full { capacity: 5 }));
    assert_eq!(d.add("fig", 1), Err(DictError::Full { capacity: 5 }));
    assert_eq!(
        d.insert("a-too-long-key", 1),
        Err(DictError::KeyTooLong { len: 14, max: 10 })
    );
    assert_eq!(d.insert("", 1), Err(DictError::EmptyKey));
    assert_eq!(
        other.snapshot().unwrap(),
        expected,
        "failed calls changed nothing"
    );
    // An existing key can still be updated in a full table.
    assert_eq!(d.insert("apple", 10).unwrap(), Some(1));
    assert_eq!(d.add("apple", 5).unwrap(), 15);

    // remove and contains_key agree, from either handle.
    assert!(other.contains_key("banana").unwrap());
    assert_eq!(d.remove("banana").unwrap(), Some(-2));
    assert!(!other.contains_key("banana").unwrap());
    assert_eq!(other.get("banana").unwrap(), None);
    assert_eq!(other.remove("banana").unwrap(), None);
    assert_eq!(other.len().unwrap(), 4);
    // The freed entry takes a new key.
    assert_eq!(d.insert("fig", 6).unwrap(), None);
    assert!(other.contains_key("fig").unwrap());
    let mut now = expected.clone();
    now.remove("banana");
    now.insert("apple".into(), 15);
    now.insert("fig".into(), 6);
    assert_eq!(other.snapshot().unwrap(), now);

    // Inside one guard the same operations, then clear.
    let mut g = other.lock().unwrap();
    assert_eq!(g.snapshot().unwrap(), now);
    assert_eq!(g.add("cherry", -3).unwrap(), 0);
    g.clear().unwrap();
    assert!(g.is_empty().unwrap());
    drop(g);
    assert!(d.snapshot().unwrap().is_empty());
    assert!(d.keys().unwrap().is_empty());
}

/// Each bad input is a typed error, never a panic or a hang: an empty key, bad names, a missing
/// segment, a queue (or a lock) opened as a dict and the reverse, another layout version, bad
/// options, and a header whose geometry does not reproduce the segment.
#[test]
fn bad_input_is_a_typed_error() {
    let _w = Watchdog::new("dict bad input", Duration::from_secs(60));
    let name = Name::new("dict-bad");
    assert!(matches!(
        SharedDict::open(&name),
        Err(OpenError::NotFound(_))
    ));
    assert!(matches!(Lock::open(&name), Err(OpenError::NotFound(_))));
    let d = dict(&name);
    assert!(matches!(
        SharedDict::create(&name, &Options::default()),
        Err(OpenError::AlreadyExists(_))
    ));
    for op in [d.get(""), d.insert("", 1), d.remove("")] {
        assert_eq!(op, Err(DictError::EmptyKey));
    }
    assert_eq!(d.add("", 1), Err(DictError::EmptyKey));
    assert_eq!(d.contains_key(""), Err(DictError::EmptyKey));
    assert_eq!(
        d.get(&"x".repeat(17)),
        Err(DictError::KeyTooLong { len: 17, max: 16 })
    );
    assert!(d.is_empty().unwrap());

    for bad in ["", ".", "..", "a/b", "sp ace", &"n".repeat(201)] {
        assert!(
            matches!(SharedDict::open(bad), Err(OpenError::InvalidName { .. })),
            "{bad:?}"
        );
        assert!(matches!(
            SharedDict::create(bad, &Options::default()),
            Err(OpenError::InvalidName { .. })
        ));
        assert!(matches!(
            Lock::create(bad),
            Err(OpenError::InvalidName { .. })
        ));
    }
    for (capacity, max_key_len, mode) in [(0, 8, 0o600), (8, 0, 0o600), (1 << 30, 8, 0o600)]
        .into_iter()
        .chain([(8, 5000, 0o600), (8, 8, 0o1777)])
    {
        let n = Name::new("dict-opts");
        let e = SharedDict::create(
            &n,
            &Options {
                capacity,
                max_key_len,
                mode,
            },
        )
        .unwrap_err();
        assert!(matches!(e, OpenError::InvalidOptions(_)), "{e}");
        assert!(
            matches!(SharedDict::open(&n), Err(OpenError::NotFound(_))),
            "nothing left behind"
        );
    }

    // A queue opened as a dict and as a lock, a lock as a dict and a dict as a lock.
    let q = Name::new("dict-queue");
    let _queue = Queue::create(
        &q,
        &QueueOptions {
            capacity: 2,
            message_size: 8,
            ..Default::default()
        },
    )
    .unwrap();
    let e = SharedDict::open(&q).unwrap_err();
    assert!(matches!(e, OpenError::Incompatible(_)), "{e}");
    assert!(e.to_string().contains("queue"), "{e}");
    assert!(matches!(Lock::open(&q), Err(OpenError::Incompatible(_))));
    let l = Name::new("dict-lock");
    let _lock = Lock::create(&l).unwrap();
    assert!(matches!(
        SharedDict::open(&l),
        Err(OpenError::Incompatible(_))
    ));
    let e = Lock::open(&name).unwrap_err();
    assert!(e.to_string().contains("dict"), "{e}");
    let e = Queue::open(&name).unwrap_err();
    assert!(matches!(e, OpenError::Incompatible(_)), "{e}");

    // Another layout version.
    let v = Name::new("dict-version");
    let _vd = dict(&v);
    common::write_segment_bytes(&v, 8, &99u32.to_ne_bytes());
    let e = SharedDict::open(&v).unwrap_err();
    assert!(matches!(e, OpenError::Incompatible(_)), "{e}");
    assert!(e.to_string().contains("99"), "{e}");

    // A dict header whose geometry does not reproduce the segment.
    let g = Name::new("dict-geometry");
    let _seg = AtomicRegion::create(
        &g,
        &Params {
            kind: Kind::Dict,
            capacity: 8,
            message_size: 16,
            slot_stride: 40,
            aux: 2,
            total_size: 4096,
        },
        0o600,
        |_| Ok(()),
    )
    .unwrap();
    let e = SharedDict::open(&g).unwrap_err();
    assert!(matches!(e, OpenError::Corrupt(_)), "{e}");
}
