//! Loom models of the protocol: every interleaving (within the preemption bound) of a producer
//! and one or two consumers, with participants that die (stop for good) at each step. Puts and
//! gets go through the one-step put and get first, as a queue's do. Run with
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p shmq --lib --release loom`.

use super::*;
use loom::sync::Arc;
use loom::thread;

/// Two messages of different lengths, so that a torn read (the length of one with the
/// payload of the other) cannot pass for either.
const A: &[u8] = &[1];
const B: &[u8] = &[2; 8];

fn intact(m: &[u8]) -> bool {
    m == A || m == B
}

/// Takes the front message, by the one-step get or else the general one (as a queue's get
/// does); `None` when empty or while a put is in flight there.
fn pop(c: &Core<'_>) -> Option<Vec<u8>> {
    if let Some(m) = c.pop_one_vec() {
        return Some(m);
    }
    match c.pop_vec() {
        Ok(m) => m,
        Err(PopFail::Pending { .. }) => None,
        Err(e) => panic!("{e:?}"),
    }
}

/// Puts `msg` as participant 1, yielding while the ring is full.
fn put(h: &HeapCore, msg: &[u8]) {
    put_as(h, msg, 1);
}

/// Puts `msg` as participant `owner`, yielding while the ring is full.
fn put_as(h: &HeapCore, msg: &[u8], owner: u8) {
    loop {
        match h.push_as(msg, owner) {
            Ok(()) => return,
            Err(PushFail::Full) => thread::yield_now(),
            Err(e) => panic!("{e:?}"),
        }
    }
}

/// A capacity-1 ring reused while two consumers copy and claim concurrently: the
/// producer rewrites the slot as soon as one consumer's claim frees it, while the other may
/// still be copying it. Each message is taken once, whole, in order.
#[test]
fn loom_two_consumers_take_each_message_once_and_whole() {
    loom::model(|| {
        let h = Arc::new(HeapCore::new(1, 8));
        let consumer = |h: Arc<HeapCore>| {
            thread::spawn(move || {
                let m = pop(&h.core());
                if let Some(m) = &m {
                    assert!(intact(m), "torn message {m:?}");
                }
                m
            })
        };
        h.push(A).unwrap();
        let c1 = consumer(Arc::clone(&h));
        let c2 = consumer(Arc::clone(&h));
        let pushed_b = h.push(B).is_ok();
        let mut got: Vec<Vec<u8>> = [c1.join().unwrap(), c2.join().unwrap()]
            .into_iter()
            .flatten()
            .collect();
        while let Some(m) = pop(&h.core()) {
            got.push(m);
        }
        got.sort();
        let mut want = vec![A.to_vec()];
        if pushed_b {
            want.push(B.to_vec());
        }
        assert_eq!(got, want);
    });
}

/// A consumer that dies after copying (before its claim) takes nothing: the survivor gets
/// every message, and the producer can reuse the slot.
#[test]
fn loom_a_consumer_dead_mid_get_loses_nothing() {
    loom::model(|| {
        let h = Arc::new(HeapCore::new(1, 8));
        let dying = {
            let h = Arc::clone(&h);
            thread::spawn(move || h.core().copy_and_die())
        };
        let survivor = {
            let h = Arc::clone(&h);
            thread::spawn(move || {
                let mut got = Vec::new();
                while got.len() < 2 {
                    match pop(&h.core()) {
                        Some(m) => got.push(m),
                        None => thread::yield_now(),
                    }
                }
                got
            })
        };
        put(&h, A);
        put(&h, B);
        dying.join().unwrap();
        assert_eq!(survivor.join().unwrap(), vec![A.to_vec(), B.to_vec()]);
    });
}

/// Where a dying producer stops for good.
#[derive(Clone, Copy)]
enum Stop {
    /// After naming its position in its lane, before the CAS of `tail` (a stale intent).
    Named,
    /// After the CAS of `tail` that claims, before writing.
    Claimed,
    /// After the claim, with the payload half written.
    HalfWritten,
    /// After writing, before the publishing store.
    Written,
}

/// A producer (participant 2) that stops forever at `stop`, a live producer (participant 1)
/// putting A at the same time, and a consumer that, at a claim in flight, voids it when no
/// lane of a live participant (1) covers it (participant 2 "is dead"): the consumer gets A,
/// whole, and never any of B; a live claim that a dead producer's stale intent also covers
/// is waited for, not voided.
fn dead_producer(stop: Stop) {
    loom::model(move || {
        let h = Arc::new(HeapCore::new(2, 8));
        let dying = {
            let h = Arc::clone(&h);
            thread::spawn(move || {
                let c = h.core();
                let Ok((tail, _)) = c.reserve(1) else { return };
                c.lane(2, 0).store(intent(tail, 2, 1), SeqCst);
                if let Stop::Named = stop {
                    return;
                }
                if c.tail
                    .compare_exchange(tail, tail + 1, SeqCst, Relaxed)
                    .is_err()
                {
                    return;
                }
                match stop {
                    Stop::HalfWritten => c.write(tail, &B[..4]),
                    Stop::Written => c.write(tail, B),
                    _ => {}
                }
            })
        };
        let consumer = {
            let h = Arc::clone(&h);
            thread::spawn(move || {
                let c = h.core();
                loop {
                    match c.pop_vec() {
                        Ok(Some(m)) => return m,
                        Ok(None) => thread::yield_now(),
                        Err(PopFail::Pending { pos, word }) => {
                            if !is_mark(word) && !c.cover(pos).contains(&1) {
                                c.void_claim(pos, word);
                            } else {
                                thread::yield_now();
                            }
                        }
                        Err(e) => panic!("{e:?}"),
                    }
                }
            })
        };
        put_as(&h, A, 1);
        dying.join().unwrap();
        assert_eq!(consumer.join().unwrap(), A.to_vec());
    });
}

#[test]
fn loom_a_stale_intent_of_a_dead_producer_does_not_void_a_live_claim() {
    dead_producer(Stop::Named);
}

#[test]
fn loom_a_producer_dead_after_its_tail_claim_never_half_appears() {
    dead_producer(Stop::Claimed);
}

#[test]
fn loom_a_producer_dead_mid_write_never_half_appears() {
    dead_producer(Stop::HalfWritten);
}

#[test]
fn loom_a_producer_dead_before_publishing_never_half_appears() {
    dead_producer(Stop::Written);
}

/// Two lock-free producers and a consumer on a capacity-1 ring (every put reuses the slot
/// the consumer just freed): each message is delivered once and whole, and a consumer that
/// meets a claim in flight sleeps on `items` until it is published (a lost wake-up would be
/// a deadlock that loom reports).
#[test]
fn loom_two_producers_and_a_sleeping_consumer() {
    loom::model(|| {
        let h = Arc::new(HeapCore::new(1, 8));
        let producer = |msg: &'static [u8], owner: u8| {
            let h = Arc::clone(&h);
            thread::spawn(move || {
                loop {
                    match h.push_as(msg, owner) {
                        Ok(()) => return,
                        Err(PushFail::Full) => {
                            let c = h.core();
                            wait_for(
                                c.free_event(),
                                || c.has_free(),
                                None,
                                Duration::from_secs(60),
                            );
                        }
                        Err(e) => panic!("{e:?}"),
                    }
                }
            })
        };
        let p1 = producer(A, 1);
        let p2 = producer(B, 2);
        let c = h.core();
        let mut got = Vec::new();
        while got.len() < 2 {
            match c.pop_vec() {
                Ok(Some(m)) => {
                    c.free_event().notify();
                    got.push(m);
                }
                Ok(None) => {
                    wait_for(
                        c.items_event(),
                        || c.has_items(),
                        None,
                        Duration::from_secs(60),
                    );
                }
                Err(PopFail::Pending { pos, word }) => {
                    wait_for(
                        c.items_event(),
                        || !c.holds(pos, word),
                        None,
                        Duration::from_secs(60),
                    );
                }
                Err(e) => panic!("{e:?}"),
            }
        }
        p1.join().unwrap();
        p2.join().unwrap();
        got.sort();
        assert_eq!(got, vec![A.to_vec(), B.to_vec()]);
    });
}

/// A close racing a put in flight: if the put returns Ok, the consumer (which reports
/// Closed only once it saw the close and then `tail` at the free front) delivers its message;
/// if the put saw the close (before its claim, or after it: then it withdraws and voids the
/// claim) it returns Closed and nothing is delivered.
#[test]
fn loom_close_never_loses_a_put_in_flight() {
    loom::model(|| {
        let h = Arc::new(HeapCore::new(2, 8));
        let producer = {
            let h = Arc::clone(&h);
            thread::spawn(move || match h.push_as(A, 1) {
                Ok(()) => true,
                Err(PushFail::Closed) => false,
                Err(e) => panic!("{e:?}"),
            })
        };
        let consumer = {
            let h = Arc::clone(&h);
            thread::spawn(move || {
                let c = h.core();
                let mut got = Vec::new();
                loop {
                    match c.pop_vec() {
                        Ok(Some(m)) => got.push(m),
                        Ok(None) => {
                            if c.flags() & RING_CLOSED != 0 && c.drained().unwrap() {
                                return got;
                            }
                            thread::yield_now();
                        }
                        Err(PopFail::Pending { .. }) => thread::yield_now(),
                        Err(e) => panic!("{e:?}"),
                    }
                }
            })
        };
        h.close();
        let put = producer.join().unwrap();
        let got = consumer.join().unwrap();
        assert_eq!(got, if put { vec![A.to_vec()] } else { vec![] });
    });
}

/// The event-count handshake: a consumer asleep on `items` and a producer asleep on `free`
/// (capacity 1, two messages) are always woken; a lost wake-up would be a deadlock that loom
/// reports.
#[test]
fn loom_sleepers_on_items_and_free_are_always_woken() {
    loom::model(|| {
        let h = Arc::new(HeapCore::new(1, 8));
        let consumer = {
            let h = Arc::clone(&h);
            thread::spawn(move || {
                let mut got = Vec::new();
                while got.len() < 2 {
                    let c = h.core();
                    if let Some(m) = pop(&c) {
                        c.free_event().notify();
                        got.push(m);
                        continue;
                    }
                    wait_for(
                        c.items_event(),
                        || c.has_items(),
                        None,
                        Duration::from_secs(60),
                    );
                }
                got
            })
        };
        for m in [A, B] {
            loop {
                match h.push(m) {
                    Ok(()) => break,
                    Err(PushFail::Full) => {
                        let c = h.core();
                        wait_for(
                            c.free_event(),
                            || c.has_free(),
                            None,
                            Duration::from_secs(60),
                        );
                    }
                    Err(e) => panic!("{e:?}"),
                }
            }
        }
        assert_eq!(consumer.join().unwrap(), vec![A.to_vec(), B.to_vec()]);
    });
}

/// A close reaches a consumer asleep on an empty ring.
#[test]
fn loom_close_wakes_a_sleeping_consumer() {
    loom::model(|| {
        let h = Arc::new(HeapCore::new(1, 8));
        let consumer = {
            let h = Arc::clone(&h);
            thread::spawn(move || {
                let c = h.core();
                let ready = || c.has_items() || c.flags() & RING_CLOSED != 0;
                while !ready() {
                    wait_for(c.items_event(), ready, None, Duration::from_secs(60));
                }
                pop(&c)
            })
        };
        h.close();
        assert_eq!(consumer.join().unwrap(), None);
        assert_eq!(h.push(A), Err(PushFail::Closed));
    });
}

/// The ring's robust lock, as the ring sees it: exclusion, and `owner_died` for the next
/// locker after a holder that died (the lock itself is modelled in `sync`). The flag is
/// "the last holder died holding it".
struct ModelLock(loom::sync::Mutex<bool>);

impl ModelLock {
    /// Locks; after a dead holder, repairs as `Ring::lock` does.
    fn lock(&self, c: &Core<'_>) -> loom::sync::MutexGuard<'_, bool> {
        let mut g = self.0.lock().unwrap();
        if *g {
            c.clear_reservation();
            *g = false;
        }
        assert_eq!(
            c.head.load(SeqCst) & RESERVED,
            0,
            "a reservation outlived its reader"
        );
        g
    }
}

/// A zero-copy reader (lock, reserve, read in place, then take it, or die inside its read),
/// a lock-free consumer (which waits on the lock when it meets the reservation) and a
/// producer reusing the only slot: every message is read whole, taken once, and a reader
/// that dies takes nothing (the next locker repairs, and the message is still there).
fn reader_vs_consumer_vs_producer(reader_dies: bool) {
    loom::model(move || {
        let h = Arc::new(HeapCore::new(1, 8));
        let lock = Arc::new(ModelLock(loom::sync::Mutex::new(false)));
        h.push(A).unwrap();
        let reader = {
            let (h, lock) = (Arc::clone(&h), Arc::clone(&lock));
            thread::spawn(move || {
                let c = h.core();
                let mut g = lock.lock(&c);
                // (A put in flight at the front: the reader gives up, as if empty.)
                let Ok(Some((head, _))) = c.reserve_front() else {
                    return None;
                };
                let mut m = Vec::new();
                c.copy_reserved(head, &mut m, c.reserved_len(head).unwrap());
                assert!(intact(&m), "torn read in place {m:?}");
                if reader_dies {
                    // Stops forever inside its read: the lock reports the death.
                    *g = true;
                    return None;
                }
                c.release(head, 1);
                Some(m)
            })
        };
        let consumer = {
            let (h, lock) = (Arc::clone(&h), Arc::clone(&lock));
            thread::spawn(move || {
                let c = h.core();
                loop {
                    match c.pop_vec() {
                        Ok(m) => {
                            if let Some(m) = &m {
                                assert!(intact(m), "torn copy {m:?}");
                            }
                            return m;
                        }
                        Err(PopFail::Reserved) => drop(lock.lock(&c)),
                        Err(PopFail::Pending { .. }) => thread::yield_now(),
                        Err(e) => panic!("{e:?}"),
                    }
                }
            })
        };
        let pushed_b = {
            let c = h.core();
            let _g = lock.lock(&c);
            h.push(B).is_ok()
        };
        let mut got: Vec<Vec<u8>> = [reader.join().unwrap(), consumer.join().unwrap()]
            .into_iter()
            .flatten()
            .collect();
        let c = h.core();
        drop(lock.lock(&c));
        while let Some(m) = pop(&c) {
            got.push(m);
        }
        got.sort();
        let mut want = vec![A.to_vec()];
        if pushed_b {
            want.push(B.to_vec());
        }
        assert_eq!(got, want);
    });
}

#[test]
fn loom_a_reserving_reader_a_consumer_and_a_producer_take_each_message_once() {
    reader_vs_consumer_vs_producer(false);
}

#[test]
fn loom_a_reader_dead_inside_its_read_takes_nothing_and_is_repaired() {
    reader_vs_consumer_vs_producer(true);
}

/// A lock holder that checks the positions ([`Core::check_positions`], as `task_done`,
/// `join`, `close` and the zero-copy gets do on taking the ring's lock), then takes the
/// front in place and marks it done, while a lock-free producer puts twice (taking what it
/// finds while the ring is full, as a consumer), on a capacity-1 ring where `head` catches up with `tail` after every
/// put. At every instant `head <= tail <= head + capacity` (a checker's adjacent loads see
/// no other state), the check never reports this healthy ring, the lock holder's
/// `tail - done` never goes below zero, and `len` never exceeds the capacity.
#[test]
fn loom_a_moving_tail_is_never_reported_corrupt_by_the_lock_holders_check() {
    loom::model(|| {
        let h = Arc::new(HeapCore::new(1, 8));
        let lock = Arc::new(ModelLock(loom::sync::Mutex::new(false)));
        let done = Arc::new(AtomicU64::new(0));
        let holder = {
            let (h, lock, done) = (Arc::clone(&h), Arc::clone(&lock), Arc::clone(&done));
            thread::spawn(move || {
                let c = h.core();
                let head = c.head.load(SeqCst) & !RESERVED;
                let tail = c.tail.load(SeqCst);
                assert!(head <= tail, "head {head} passed tail {tail}");
                assert_eq!(c.check_positions(&done, true), Ok(()));
                let mut got = None;
                {
                    let _g = lock.lock(&c);
                    assert_eq!(c.check_positions(&done, false), Ok(()));
                    // A zero-copy get (`get_with`): reserve, read in place, take.
                    if let Ok(Some((head, _))) = c.reserve_front() {
                        let mut m = Vec::new();
                        c.copy_reserved(head, &mut m, c.reserved_len(head).unwrap());
                        c.release(head, 1);
                        got = Some(m);
                    }
                    assert!(c.len() <= 1);
                }
                if got.is_some() {
                    // Its `task_done`, as `Locked::task_done`: `done` holds still under
                    // the lock, `tail` only grows.
                    let _g = lock.lock(&c);
                    assert_eq!(c.check_positions(&done, false), Ok(()));
                    let d = done.load(SeqCst);
                    let left = c.tail.load(SeqCst).checked_sub(d).expect("done <= tail");
                    assert!(left >= 1, "a taken message is an unfinished task");
                    done.store(d + 1, SeqCst);
                }
                got
            })
        };
        put(&h, A);
        let c = h.core();
        let mut got: Vec<Vec<u8>> = Vec::new();
        // The second put waits for room, taking what the others left.
        loop {
            match h.push(B) {
                Ok(()) => break,
                Err(PushFail::Full) => {
                    match c.pop_vec() {
                        Ok(m) => got.extend(m),
                        Err(PopFail::Pending { .. } | PopFail::Reserved) => {}
                        Err(e) => panic!("{e:?}"),
                    }
                    thread::yield_now();
                }
                Err(e) => panic!("{e:?}"),
            }
        }
        got.extend(holder.join().unwrap());
        while let Some(m) = pop(&c) {
            got.push(m);
        }
        got.sort();
        assert_eq!(got, vec![A.to_vec(), B.to_vec()]);
        assert_eq!(c.check_positions(&done, false), Ok(()));
    });
}

/// Why the check's order matters: loads of `tail`, then `head`, made while a put and a get
/// go on, can see `head` past `tail` although it never was (the model finds the
/// interleaving, and this test passes only if it does). The lock's check read them in that
/// order and reported a healthy ring corrupt.
#[test]
#[should_panic(expected = "stale read")]
fn loom_tail_read_before_head_can_see_head_past_tail() {
    loom::model(|| {
        let h = Arc::new(HeapCore::new(1, 8));
        let checker = {
            let h = Arc::clone(&h);
            thread::spawn(move || {
                let c = h.core();
                let tail = c.tail.load(SeqCst);
                let head = c.head.load(SeqCst) & !RESERVED;
                (head, tail)
            })
        };
        put(&h, A);
        assert!(pop(&h.core()).is_some());
        let (head, tail) = checker.join().unwrap();
        assert!(head <= tail, "stale read: head {head} past tail {tail}");
    });
}

/// A committer (the out-bridge's take, `lockfree/peek.rs`) on a capacity-1 ring while a
/// producer puts two descriptors of large messages, the second into the slot the first
/// commit frees: a commit never takes a claim before its publication, and the descriptors
/// it hands back are the ones published at the positions it took, whole.
#[test]
fn loom_a_commit_takes_only_published_messages_and_hands_back_their_descriptors() {
    use super::peek::Commit;
    const D1: &[u8] = &[1; 16];
    const D2: &[u8] = &[2; 16];
    loom::model(|| {
        let h = Arc::new(HeapCore::new(1, 16));
        let producer = {
            let h = Arc::clone(&h);
            thread::spawn(move || {
                for d in [D1, D2] {
                    let c = h.core();
                    loop {
                        match c.claim(1, 1, 0) {
                            Ok(cl) => {
                                c.write_descriptor(cl.pos, d);
                                c.publish(cl);
                                break;
                            }
                            Err(PushFail::Full) => thread::yield_now(),
                            Err(e) => panic!("{e:?}"),
                        }
                    }
                }
            })
        };
        let c = h.core();
        let mut large = Vec::new();
        for (pos, d) in [(0, D1), (1, D2)] {
            loop {
                match c.commit(pos, 1, &mut large) {
                    Commit::Done => {
                        assert_eq!(large, [d.to_vec()]);
                        break;
                    }
                    Commit::NotThere(_) => thread::yield_now(),
                    other => panic!("{other:?}"),
                }
            }
        }
        producer.join().unwrap();
    });
}
