//! Unit tests of the lock-free protocol, driven through [`HeapCore`](super::HeapCore).

use super::*;

fn msg(i: u8, len: usize) -> Vec<u8> {
    (0..len).map(|k| i.wrapping_add(k as u8)).collect()
}

#[test]
fn messages_of_every_length_round_trip_in_order_across_wraps() {
    let h = HeapCore::new(3, 20);
    let c = h.core();
    for len in 0..=20 {
        h.push(&msg(len as u8, len)).unwrap();
        let mut buf = [0u8; 20];
        let n = c.pop_into(&mut buf).unwrap().unwrap();
        assert_eq!(&buf[..n], &msg(len as u8, len)[..]);
    }
    assert_eq!(c.pop_vec().unwrap(), None);
}

#[test]
fn closed_wins_over_full_and_impossible_positions_are_corrupt() {
    let h = HeapCore::new(1, 8);
    let c = h.core();
    h.push(b"x").unwrap();
    assert_eq!(c.reserve(1), Err(PushFail::Full));
    h.close();
    assert_eq!(c.reserve(1), Err(PushFail::Closed));

    let h = HeapCore::new(2, 8);
    let c = h.core();
    c.head.store(u64::MAX, SeqCst);
    c.tail.store(u64::MAX, SeqCst);
    assert!(matches!(c.reserve(1), Err(PushFail::Corrupt(_))));
    c.head.store(5, SeqCst);
    c.tail.store(9, SeqCst);
    assert!(matches!(c.pop_vec(), Err(PopFail::Corrupt(_))));
    assert!(matches!(c.reserve(1), Err(PushFail::Corrupt(_))));
}

#[test]
fn a_consumer_dead_after_its_copy_loses_nothing() {
    let h = HeapCore::new(2, 8);
    let c = h.core();
    h.push(b"one").unwrap();
    c.copy_and_die();
    assert_eq!(c.pop_vec().unwrap(), Some(b"one".to_vec()));
}

/// The claim word at `pos`, and that a get waits at it.
fn pending(c: &Core<'_>, pos: u64) -> u64 {
    let w = c.seq(pos).load(SeqCst);
    assert_eq!(c.pop_vec(), Err(PopFail::Pending { pos, word: w }));
    assert!(!c.has_items());
    w
}

#[test]
fn a_producer_dead_before_its_claim_leaves_nothing() {
    let h = HeapCore::new(2, 8);
    let c = h.core();
    let (tail, _) = c.reserve(1).unwrap();
    // Died here, having claimed nothing.
    assert_eq!(c.pop_vec().unwrap(), None);
    h.push(b"next").unwrap();
    assert_eq!(c.tail.load(SeqCst), tail + 1);
    assert_eq!(c.pop_vec().unwrap(), Some(b"next".to_vec()));
}

#[test]
fn a_producer_dead_after_its_tail_claim_is_voided_and_stepped_over() {
    let h = HeapCore::new(4, 8);
    let c = h.core();
    // Owner 2 names position 0 in its lane, moves `tail` past it and dies.
    let cl = c.claim(1, 2, 0).unwrap();
    assert_eq!((cl.pos, c.tail.load(SeqCst)), (0, 1));
    // Another producer puts behind it.
    h.push_as(b"later", 3).unwrap();
    assert_eq!(c.tail.load(SeqCst), 2);
    let w = pending(&c, 0);
    assert_eq!(w, 0, "a claim in flight leaves the word free");
    assert_eq!(c.cover(0), vec![2], "its owner's lane names it");
    // A consumer finds owner 2 dead: the position becomes a tombstone, stepped over.
    assert_eq!(c.void_claim(0, w), 1);
    assert_eq!(c.void_claim(0, w), 0, "a void happens once");
    assert_eq!(c.pop_vec().unwrap(), Some(b"later".to_vec()));
    assert_eq!(c.len(), 0);
    // The dead row's lanes are cleared by the repair; its stale intent covers nothing live.
    assert_eq!(c.in_flight_of(2), vec![]);
    c.clear_lanes(2);
    assert_eq!(c.cover(0), Vec::<u8>::new());
}

#[test]
fn a_claim_in_flight_is_voided_only_when_no_live_lane_covers_it() {
    let h = HeapCore::new(4, 8);
    let c = h.core();
    // Owner 3 named position 0 and lost the race for it (a stale intent, then it died);
    // owner 2 claimed position 0 and is alive, not yet published.
    let stale = c.lane(3, 0);
    stale.store(intent(0, 3, 1), SeqCst);
    let cl = c.claim(1, 2, 0).unwrap();
    assert_eq!(cl.pos, 0);
    let w = pending(&c, 0);
    assert_eq!(
        c.cover(0),
        vec![2, 3],
        "both rows cover it: owner 2 is alive, so it waits"
    );
    // Owner 2 publishes and clears its lane: a void decided on the stale row alone fails.
    c.write(0, b"live");
    c.publish(cl);
    assert_eq!(c.cover(0), vec![3]);
    assert_eq!(
        c.void_claim(0, w),
        0,
        "a published position is never voided"
    );
    assert_eq!(c.pop_vec().unwrap(), Some(b"live".to_vec()));

    // A claim in flight whose lane was cleared by a repair (no row covers it): an orphan,
    // voided by the first consumer that finds no live lane.
    let cl = c.claim(1, 2, 0).unwrap();
    c.clear_lanes(2);
    let w = pending(&c, cl.pos);
    assert!(c.cover(cl.pos).is_empty());
    assert_eq!(c.in_flight_of(2), vec![]);
    assert_eq!(c.void_claim(cl.pos, w), 1);
    assert_eq!(c.pop_vec().unwrap(), None);

    // A batch claim marks its first slot at once: its count is in the slot, not only in the
    // lane, and its void covers all of it.
    let cl = c.claim(3, 1, 1).unwrap();
    assert_eq!(cl.n, 3);
    let w = pending(&c, cl.pos);
    assert_eq!(claim_count(w), 3);
    assert_eq!(claim_owner(w), 1);
    assert_eq!(c.claims_of(1), vec![(cl.pos, w)]);
    assert_eq!(c.void_claim(cl.pos, w), 3);
    c.release_lane(cl);
    assert_eq!(c.pop_vec().unwrap(), None);
    assert_eq!(c.len(), 0);
}

#[test]
fn a_producer_dead_mid_write_or_before_publishing_never_half_appears() {
    for written in [0usize, 3, 8] {
        let h = HeapCore::new(2, 8);
        let c = h.core();
        let pos = c.claim_and_die(&b"halfhalf"[..written], 2).unwrap();
        assert_eq!(c.tail.load(SeqCst), 1);
        let w = pending(&c, pos);
        let mut buf = [0u8; 8];
        assert_eq!(c.pop_into(&mut buf), Err(PopFail::Pending { pos, word: w }));
        let (mut bytes, mut lens) = (Vec::new(), Vec::new());
        assert_eq!(
            c.pop_batch(4, &mut bytes, &mut lens),
            Err(PopFail::Pending { pos, word: w })
        );
        assert_eq!(c.void_claim(pos, w), 1);
        assert!(
            c.has_items(),
            "a tombstone wakes a sleeper, which steps over it"
        );
        assert_eq!(c.pop_vec().unwrap(), None);
        // The slot is reused on the next lap.
        for m in [&b"a"[..], b"b", b"c"] {
            h.push(m).unwrap();
            assert_eq!(c.pop_vec().unwrap(), Some(m.to_vec()));
        }
    }
}

#[test]
fn a_producer_dead_after_publishing_delivers_its_message() {
    let h = HeapCore::new(2, 8);
    let c = h.core();
    let cl = c.claim(1, 2, 0).unwrap();
    c.write(cl.pos, b"whole");
    // Died after the commit, before clearing its lane (and before notifying): a sleeper
    // re-checks after its slice; the message is there, and the stale lane covers nothing
    // in flight.
    c.publish_words(cl.pos, 1);
    assert!(c.has_items());
    assert_eq!(c.in_flight_of(2), vec![]);
    assert_eq!(c.pop_vec().unwrap(), Some(b"whole".to_vec()));
}

#[test]
fn a_batch_producer_dead_before_publishing_leaves_none_of_the_batch() {
    let h = HeapCore::new(4, 8);
    let c = h.core();
    let cl = c.claim(3, 2, 0).unwrap();
    assert_eq!((cl.pos, cl.n), (0, 3));
    assert_eq!(c.tail.load(SeqCst), 3);
    for (i, m) in [&b"x1"[..], b"x2", b"x3"].iter().enumerate() {
        c.write(cl.pos + i as u64, m);
    }
    // Publishes the later two (back to front) and dies before the first, the commit.
    for p in [2, 1] {
        c.seq(p).store(word(p, FULL), SeqCst);
    }
    let w = pending(&c, 0);
    assert_eq!(claim_count(w), 3);
    assert_eq!(c.void_claim(0, w), 3);
    assert_eq!(c.pop_vec().unwrap(), None, "none of the batch is delivered");
    assert_eq!(c.len(), 0);
    c.clear_lanes(2);
    h.push(b"next").unwrap();
    assert_eq!(c.pop_vec().unwrap(), Some(b"next".to_vec()));
}

#[test]
fn a_batch_is_claimed_once_and_published_whole() {
    let h = HeapCore::new(4, 8);
    let c = h.core();
    h.push(b"a").unwrap();
    assert_eq!(h.push_many(&[b"b", b"c", b"d", b"e"]), Ok(3));
    assert_eq!(h.push_many(&[b"e"]), Err(PushFail::Full));
    let (mut bytes, mut lens) = (Vec::new(), Vec::new());
    assert_eq!(c.pop_batch(8, &mut bytes, &mut lens), Ok(4));
    assert_eq!(bytes, b"abcd");
}

#[test]
fn two_producers_interleave_claims_and_each_keeps_its_order() {
    let h = HeapCore::new(8, 8);
    let c = h.core();
    let c1 = c.claim(1, 1, 0).unwrap();
    let c2 = c.claim(1, 2, 0).unwrap();
    let c3 = c.claim(1, 1, 1).unwrap();
    assert_eq!((c1.pos, c2.pos, c3.pos), (0, 1, 2));
    // Publishing out of order: consumers wait at the front claim.
    c.write(c3.pos, b"1b");
    c.publish(c3);
    c.write(c2.pos, b"2a");
    c.publish(c2);
    pending(&c, c1.pos);
    c.write(c1.pos, b"1a");
    c.publish(c1);
    for m in [&b"1a"[..], b"2a", b"1b"] {
        assert_eq!(c.pop_vec().unwrap(), Some(m.to_vec()));
    }
}

#[test]
fn a_close_never_loses_a_put_in_flight() {
    let h = HeapCore::new(2, 8);
    let c = h.core();
    // A producer passed its check of the flags and claimed; then the ring is closed.
    let cl = c.claim(1, 2, 0).unwrap();
    h.close();
    assert_eq!(c.claim(1, 3, 0), Err(PushFail::Closed));
    // A consumer must not report Closed while the claim stands: `tail` is past the front.
    assert_eq!(c.drained(), Ok(false));
    pending(&c, cl.pos);
    c.write(cl.pos, b"late");
    c.publish(cl);
    assert_eq!(c.pop_vec().unwrap(), Some(b"late".to_vec()));
    assert_eq!(c.drained(), Ok(true));
    assert!(c.has_items(), "a closed, drained ring wakes its sleepers");
    // A producer that read the flags before the close claims after the consumer saw it
    // drained: its check of the flags after the CAS sees the close, and it withdraws.
    c.flags.store(0, SeqCst);
    let (tail, _) = c.reserve(1).unwrap();
    c.flags.store(RING_CLOSED, SeqCst);
    let lane = c.lane(3, 0);
    lane.store(intent(tail, 3, 1), SeqCst);
    assert!(
        c.tail
            .compare_exchange(tail, tail + 1, SeqCst, Relaxed)
            .is_ok()
    );
    assert_ne!(
        c.flags.load(SeqCst),
        0,
        "the check after the CAS sees the close"
    );
    // ...and one that names its claim with `claim` gets the claim back to void.
    c.flags.store(0, SeqCst);
    let (t2, _) = c.reserve(1).unwrap();
    assert_eq!(t2, tail + 1);
    c.flags.store(RING_CLOSED, SeqCst);
    assert_eq!(
        c.push_one(b"x", 2, c.lane_index(2, 0), false),
        OnePut::Declined
    );
}

#[test]
fn a_damaged_sequence_word_is_corrupt_not_a_hang() {
    let h = HeapCore::new(2, 8);
    let c = h.core();
    c.seq(0).store(word(7, FULL), SeqCst);
    assert!(matches!(c.pop_vec(), Err(PopFail::Corrupt(_))));
    c.flags.store(RING_CLOSED, SeqCst);
    assert!(matches!(c.drained(), Err(PopFail::Corrupt(_))));

    // A word in the state layout 3 called a seal (now never written), and a published word
    // at `tail` (found by fuzz_segments: a sleeper spun on them past its deadline).
    let h = HeapCore::new(2, 8);
    let c = h.core();
    c.seq(0).store(word(0, 4), SeqCst);
    assert!(matches!(c.pop_vec(), Err(PopFail::Corrupt(_))));
    c.seq(0).store(word(0, FULL), SeqCst);
    assert!(!c.has_items(), "nothing below tail 0");
}

#[test]
fn a_batch_get_of_large_messages_claims_only_what_fills_the_batch_bytes() {
    let size = BATCH_BYTES / 2;
    let h = HeapCore::new(4, size);
    let c = h.core();
    for i in 0..3 {
        h.push(&msg(i, size)).unwrap();
    }
    let (mut bytes, mut lens) = (Vec::new(), Vec::new());
    assert_eq!(c.pop_batch(10, &mut bytes, &mut lens), Ok(2));
    assert_eq!(lens, [size, size]);
    assert_eq!(bytes, [msg(0, size), msg(1, size)].concat());
    assert_eq!(c.pop_batch(10, &mut bytes, &mut lens), Ok(1));
    assert_eq!(bytes, msg(2, size));

    let h = HeapCore::new(2, BATCH_BYTES * 2);
    h.push(&msg(7, 3)).unwrap();
    h.push(&msg(8, 3)).unwrap();
    let c = h.core();
    assert_eq!(c.pop_batch(10, &mut bytes, &mut lens), Ok(1));
    assert_eq!(bytes, msg(7, 3));
}

#[test]
fn a_batch_consumer_dead_mid_copy_takes_nothing() {
    let h = HeapCore::new(4, 8);
    let c = h.core();
    for m in [&b"a"[..], b"bb", b"ccc"] {
        h.push(m).unwrap();
    }
    // A batch consumer copies the first two messages and dies before its claim.
    let head = c.head.load(SeqCst);
    let mut scratch = [0u8; 8];
    for pos in head..head + 2 {
        let len = c.len_at(head, pos).unwrap().unwrap();
        c.copy_to(pos, &mut scratch[..len]);
    }
    // (no claim)
    let (mut bytes, mut lens) = (Vec::new(), Vec::new());
    assert_eq!(c.pop_batch(8, &mut bytes, &mut lens), Ok(3));
    assert_eq!((&bytes[..], &lens[..]), (&b"abbccc"[..], &[1, 2, 3][..]));
}

#[test]
fn a_reserved_front_is_neither_taken_nor_overwritten_and_still_counted() {
    let h = HeapCore::new(1, 8);
    let c = h.core();
    h.push(b"one").unwrap();
    assert_eq!(c.reserve_front(), Ok(Some((0, 1))));
    assert_eq!(c.head.load(SeqCst), RESERVED);
    assert_eq!(c.pop_vec(), Err(PopFail::Reserved));
    let mut buf = [0u8; 8];
    assert_eq!(c.pop_into(&mut buf), Err(PopFail::Reserved));
    let (mut bytes, mut lens) = (Vec::new(), Vec::new());
    assert_eq!(
        c.pop_batch(4, &mut bytes, &mut lens),
        Err(PopFail::Reserved)
    );
    assert_eq!(h.push(b"two"), Err(PushFail::Full));
    assert_eq!((c.len(), c.has_items(), c.has_free()), (1, true, false));
    let mut v = Vec::new();
    c.copy_reserved(0, &mut v, c.reserved_len(0).unwrap());
    assert_eq!(v, b"one");
    c.release(0, 1);
    assert_eq!(c.pop_vec(), Ok(None));
    h.push(b"two").unwrap();
    assert_eq!(c.pop_vec(), Ok(Some(b"two".to_vec())));
}

#[test]
fn a_reader_dead_inside_its_read_takes_nothing_once_repaired() {
    let h = HeapCore::new(2, 8);
    let c = h.core();
    h.push(b"one").unwrap();
    assert_eq!(c.reserve_front(), Ok(Some((0, 1))));
    // Died inside its read: the next locker (owner died) clears the reservation.
    assert!(c.clear_reservation());
    assert!(!c.clear_reservation());
    assert_eq!(c.pop_vec(), Ok(Some(b"one".to_vec())));
}

#[test]
fn a_batch_reader_dead_inside_its_read_takes_none_of_the_batch() {
    let h = HeapCore::new(4, 8);
    let c = h.core();
    for m in [&b"a"[..], b"bb", b"ccc"] {
        h.push(m).unwrap();
    }
    assert_eq!(c.reserve_front(), Ok(Some((0, 3))));
    let mut v = Vec::new();
    for pos in 0..2 {
        c.copy_reserved(pos, &mut v, c.reserved_len(pos).unwrap());
    }
    assert!(c.clear_reservation());
    let (mut bytes, mut lens) = (Vec::new(), Vec::new());
    assert_eq!(c.pop_batch(8, &mut bytes, &mut lens), Ok(3));
    assert_eq!((&bytes[..], &lens[..]), (&b"abbccc"[..], &[1, 2, 3][..]));
}

#[test]
fn a_reservation_released_with_nothing_taken_leaves_the_front_first() {
    let h = HeapCore::new(2, 8);
    let c = h.core();
    h.push(b"one").unwrap();
    h.push(b"two").unwrap();
    let (head, n) = c.reserve_front().unwrap().unwrap();
    assert_eq!(n, 2);
    c.release(head, 0);
    assert_eq!(c.pop_vec(), Ok(Some(b"one".to_vec())));
}

#[test]
fn a_consumer_claim_from_before_a_reservation_fails() {
    let h = HeapCore::new(2, 8);
    let c = h.core();
    h.push(b"one").unwrap();
    // A lock-free consumer read head 0 and copied; then a reader reserved the front.
    assert_eq!(c.reserve_front(), Ok(Some((0, 1))));
    assert!(!c.take(0, 1));
    assert_eq!(c.head.load(SeqCst), RESERVED);
    c.release(0, 1);
    assert_eq!(c.len(), 0);
}

#[test]
fn a_reserved_bit_under_the_lock_with_no_death_is_corrupt() {
    let h = HeapCore::new(2, 8);
    let c = h.core();
    h.push(b"one").unwrap();
    c.head.store(RESERVED, SeqCst);
    assert!(matches!(c.reserve_front(), Err(PopFail::Corrupt(_))));
}

#[test]
fn a_copy_that_loses_the_race_is_discarded() {
    // Consumer X reads position 0, then consumer Y takes it and a producer reuses the slot
    // for position 1 (capacity 1): X's claim from 0 must fail.
    let h = HeapCore::new(1, 8);
    let c = h.core();
    h.push(b"old").unwrap();
    let head = c.head.load(SeqCst);
    let mut x = [0u8; 3];
    c.copy_to(head, &mut x);
    assert_eq!(c.pop_vec().unwrap(), Some(b"old".to_vec()));
    h.push(b"new").unwrap();
    assert!(!c.take(head, 1));
    assert_eq!(c.pop_vec().unwrap(), Some(b"new".to_vec()));
}

#[test]
fn batches_take_what_is_there_and_too_small_buffers_leave_the_message() {
    let h = HeapCore::new(4, 8);
    let c = h.core();
    for m in [&b"a"[..], b"bb", b"ccc"] {
        h.push(m).unwrap();
    }
    let mut small = [0u8; 1];
    assert_eq!(c.pop_into(&mut small), Ok(Some(1)));
    assert_eq!(
        c.pop_into(&mut small),
        Err(PopFail::TooSmall {
            needed: 2,
            available: 1
        })
    );
    let (mut bytes, mut lens) = (Vec::new(), Vec::new());
    assert_eq!(c.pop_batch(0, &mut bytes, &mut lens), Ok(0));
    assert_eq!(c.pop_batch(10, &mut bytes, &mut lens), Ok(2));
    assert_eq!((&bytes[..], &lens[..]), (&b"bbccc"[..], &[2, 3][..]));
    assert_eq!(c.pop_batch(10, &mut bytes, &mut lens), Ok(0));
}

/// The whole state a one-step call must leave alone when it declines.
fn state(c: &Core<'_>) -> (u64, u64, u64, Vec<u64>, Vec<u64>) {
    (
        c.head.load(SeqCst),
        c.tail.load(SeqCst),
        c.head_seen.load(SeqCst),
        c.slots.iter().map(|w| w.load(SeqCst)).collect(),
        c.intents.iter().map(|w| w.load(SeqCst)).collect(),
    )
}

#[test]
fn the_one_step_put_declines_everything_but_a_plain_case_and_changes_nothing() {
    // Closed.
    let h = HeapCore::new(2, 8);
    let c = h.core();
    h.close();
    let before = state(&c);
    assert_eq!(
        c.push_one(b"x", 1, c.lane_index(1, 0), false),
        OnePut::Declined
    );
    assert_eq!(state(&c), before);

    // Full, then maybe full by the cached `head_seen` (the general path refreshes it).
    let h = HeapCore::new(2, 8);
    let c = h.core();
    assert_eq!(c.push_one(b"a", 1, c.lane_index(1, 0), false), OnePut::Done);
    assert_eq!(c.push_one(b"b", 1, c.lane_index(1, 0), true), OnePut::Done);
    let before = state(&c);
    assert_eq!(
        c.push_one(b"c", 1, c.lane_index(1, 0), false),
        OnePut::Declined
    );
    assert_eq!(state(&c), before);
    assert_eq!(c.pop_one_vec(), Some(b"a".to_vec()));
    let before = state(&c);
    assert_eq!(
        c.push_one(b"c", 1, c.lane_index(1, 0), false),
        OnePut::Declined,
        "head_seen is stale: the general path decides"
    );
    assert_eq!(state(&c), before);
    h.push(b"c").unwrap();
    assert_eq!(c.pop_one_vec(), Some(b"b".to_vec()));
    assert_eq!(c.pop_one_vec(), Some(b"c".to_vec()));

    // The lane it tries is busy (another thread of the process is inside a put): the general
    // path takes another lane.
    let h = HeapCore::new(4, 8);
    let c = h.core();
    let held = c.claim(1, 1, 0).unwrap();
    let before = state(&c);
    assert_eq!(
        c.push_one(b"x", 1, c.lane_index(1, 0), false),
        OnePut::Declined
    );
    assert_eq!(state(&c), before);
    let other = c.claim(1, 1, 0).unwrap();
    assert_ne!(other.lane, held.lane);
    // Every lane busy: the general path says so (the caller puts under the lock).
    assert_eq!(c.claim(1, 1, 0), Err(PushFail::Busy));
    c.write(held.pos, b"1");
    c.publish(held);
    c.write(other.pos, b"2");
    c.publish(other);
    assert_eq!(c.pop_one_vec(), Some(b"1".to_vec()));
    assert_eq!(c.pop_one_vec(), Some(b"2".to_vec()));
    assert!(
        c.intents.iter().all(|w| w.load(SeqCst) == 0),
        "every lane clear"
    );
}

#[test]
fn the_one_step_get_declines_everything_but_a_published_message_that_fits() {
    // Empty, and a claim not yet published at the front.
    let h = HeapCore::new(2, 8);
    let c = h.core();
    assert_eq!(c.pop_one_vec(), None);
    let pos = c.claim_and_die(b"half", 1).unwrap();
    let before = state(&c);
    assert_eq!(c.pop_one_vec(), None);
    assert_eq!(c.pop_one_into(&mut [0; 8]), None);
    assert_eq!(state(&c), before);
    c.publish_words(pos, 1);

    // A buffer too small leaves the message for the general path (which says `TooSmall`).
    let before = state(&c);
    assert_eq!(c.pop_one_into(&mut [0; 3]), None);
    assert_eq!(state(&c), before);
    let mut buf = [0; 8];
    assert_eq!(c.pop_one_into(&mut buf), Some(4));
    assert_eq!(&buf[..4], b"half");

    // A large message's descriptor.
    let h = HeapCore::new(2, 16);
    let c = h.core();
    let cl = c.claim(1, 1, 0).unwrap();
    c.write_descriptor(cl.pos, b"descriptor");
    c.publish(cl);
    let before = state(&c);
    assert_eq!(c.pop_one_vec(), None);
    assert_eq!(c.pop_one_into(&mut [0; 16]), None);
    assert_eq!(state(&c), before);
    assert_eq!(c.pop_vec(), Err(PopFail::Large));

    // A front reserved by a zero-copy reader.
    let h = HeapCore::new(2, 8);
    let c = h.core();
    h.push(b"kept").unwrap();
    c.head.fetch_or(RESERVED, SeqCst);
    let before = state(&c);
    assert_eq!(c.pop_one_vec(), None);
    assert_eq!(state(&c), before);
    c.head.fetch_and(!RESERVED, SeqCst);
    assert_eq!(c.pop_one_vec(), Some(b"kept".to_vec()));
}

/// A one-step put that lost its position to another producer tries the tail that producer
/// moved it to, holding its lane; a retry that finds no room declines with its lane cleared and
/// nothing else changed.
#[test]
fn the_one_step_put_retries_a_lost_position_at_the_moved_tail() {
    let h = HeapCore::new(4, 8);
    let c = h.core();
    // Producer 2 claimed and published position 0 (and moved `tail`) between producer 1's
    // read of `tail` (0) and its CAS, which returned 1: producer 1 retries at 1, holding its
    // lane, and clears it once published.
    assert_eq!(
        c.push_one(b"won", 2, c.lane_index(2, 0), false),
        OnePut::Done
    );
    let lane = c.lane_index(1, 0);
    c.intents[lane].store(intent(0, 1, 1), SeqCst);
    assert_eq!(
        c.push_one_again(1, lane, b"retried", 1, false),
        OnePut::Done
    );
    assert_eq!(c.intents[lane].load(SeqCst), 0);
    assert_eq!(c.tail.load(SeqCst), 2);
    assert_eq!(c.pop_one_vec(), Some(b"won".to_vec()));
    assert_eq!(c.pop_one_vec(), Some(b"retried".to_vec()));

    // A retry that finds the ring full declines, its lane cleared, nothing else changed.
    let h = HeapCore::new(1, 8);
    let c = h.core();
    assert_eq!(
        c.push_one(b"won", 2, c.lane_index(2, 0), false),
        OnePut::Done
    );
    let lane = c.lane_index(1, 0);
    c.intents[lane].store(intent(0, 1, 1), SeqCst);
    let mut before = state(&c);
    before.4[lane] = 0;
    assert_eq!(c.push_one_again(1, lane, b"x", 1, false), OnePut::Declined);
    assert_eq!(state(&c), before);
}

/// A one-step get whose CAS of `head` lost (another consumer took the front) tries the new
/// front, and takes nothing from an empty ring.
#[test]
fn the_one_step_get_retries_at_the_new_front() {
    let h = HeapCore::new(4, 8);
    let c = h.core();
    h.push(b"first").unwrap();
    h.push(b"second").unwrap();
    h.push(b"third").unwrap();
    // Another consumer took "first" after this one read the front.
    assert_eq!(c.pop_one_vec(), Some(b"first".to_vec()));
    let mut buf = [0; 8];
    assert_eq!(c.pop_one_into_again(&mut buf), Some(6));
    assert_eq!(&buf[..6], b"second");
    assert_eq!(c.pop_one_vec_again(Vec::new()), Some(b"third".to_vec()));
    let before = state(&c);
    assert_eq!(c.pop_one_into_again(&mut buf), None);
    assert_eq!(c.pop_one_vec_again(Vec::new()), None);
    assert_eq!(state(&c), before);
}
