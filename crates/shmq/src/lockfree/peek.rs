//! Peek and commit: a consumer copies a message at a known position without taking it, and
//! takes it later (after it has been delivered somewhere else) with one CAS of `head` from that
//! position. The copy is validated as a lock-free get's is (the seqlock argument in the parent
//! module): a producer rewrites the slot of position `p` only after `head` has passed `p`, so a
//! copy after which `head <= p` still holds was not torn. No lock is taken, so a peeker may
//! hold a copy as long as it likes (a network round trip) without blocking anyone.
//!
//! A large message (the slot holds a descriptor, [`LARGE`]) is peeked in two steps: here the
//! descriptor is copied and validated like any slot ([`Peek::Large`]); `crate::large` then
//! copies the message from its side segment and validates that copy against the segment's
//! state word. A commit reads the descriptors of the large messages it takes before its CAS,
//! so that its caller can release their side segments after it.

use super::{
    Core, LARGE, PopFail, RESERVED, RING_CLOSED, RING_SENDERS_GONE, Slot, acquire_fence, slot_state,
};
use crate::sync::atomic::Ordering::{Acquire, Relaxed, SeqCst};

/// What [`Core::peek_at`] found at a position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Peek {
    /// The message was copied; its length.
    Copied(usize),
    /// The slot holds the descriptor of a large message (its length word has [`LARGE`]): the
    /// descriptor was copied (validated as a message is); the message is in a side segment.
    Large,
    /// Nothing claimed it yet.
    NotYet,
    /// A tombstone: the put that claimed the position died unpublished; no message is there.
    Void,
    /// Closed (or the last sender gone) with `tail` at the position: no message will be there.
    Closed,
    /// Already taken (or stepped over): `head` (the position of the oldest message) is past it.
    Taken(u64),
}

/// What [`Core::commit`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Commit {
    /// The messages were taken.
    Done,
    /// `head` is not at the position (holds this position): nothing was taken.
    Moved(u64),
    /// Fewer positions are claimed than asked for (`tail` holds this position).
    NotThere(u64),
    /// A zero-copy reader has reserved the front at this position; wait on the ring's lock,
    /// then retry.
    Reserved,
}

impl Core<'_> {
    /// Copies the message at position `pos` into `dst` (resized to it; its earlier bytes are
    /// overwritten, so a reused buffer is not zero-filled first) without taking it.
    /// [`PopFail::Pending`] for a claim not published yet (the caller waits it out, and voids
    /// it if its owner is dead, as a get does).
    pub(crate) fn peek_at(&self, pos: u64, dst: &mut Vec<u8>) -> Result<Peek, PopFail> {
        loop {
            // (Before `tail`: a close seen here and `tail` at `pos` after it mean that nothing
            // will be published at `pos`, as for a get, `Core::drained`.)
            let flags = self.flags.load(SeqCst);
            let head = self.head.load(Acquire) & !RESERVED;
            if pos < head {
                return Ok(Peek::Taken(head));
            }
            if pos - head >= self.capacity {
                // The slot still holds an earlier lap's message.
                if flags & (RING_CLOSED | RING_SENDERS_GONE) != 0 && {
                    crate::sync::atomic::dekker_fence();
                    self.tail.load(SeqCst) <= pos
                } {
                    return Ok(Peek::Closed);
                }
                return Ok(Peek::NotYet);
            }
            // SYNC POINT: pairs with `publish`: a FULL word makes the payload visible.
            let w = self.seq(pos).load(Acquire);
            match slot_state(w, pos, self.capacity) {
                Slot::Full => {
                    let mut len = self.raw_len(pos);
                    let mut large = false;
                    if len > self.message_size as u64 {
                        if len & LARGE != 0 && len & !LARGE <= self.message_size as u64 {
                            // A descriptor: copied and validated as a message is (a torn one
                            // is refused below, with the copy).
                            len &= !LARGE;
                            large = true;
                        } else {
                            if self.not_passed(pos) {
                                return Err(self.oversized(pos, len));
                            }
                            continue;
                        }
                    }
                    // Resized, not cleared first: a reused buffer of this length (or longer)
                    // is not zero-filled again; the copy overwrites every byte of it.
                    dst.resize(len as usize, 0);
                    self.copy_to(pos, dst);
                    if self.not_passed(pos) {
                        return Ok(if large {
                            Peek::Large
                        } else {
                            Peek::Copied(len as usize)
                        });
                    }
                    // Taken (and maybe rewritten) while we copied: the next round reports it.
                }
                Slot::Void => return Ok(Peek::Void),
                Slot::Free => {
                    // SYNC POINT: as in `front`: a free word with `tail` past it is a claim
                    // in flight; and as in `drained`, `tail` after the flags.
                    crate::sync::atomic::dekker_fence();
                    let tail = self.tail.load(SeqCst);
                    if tail > pos {
                        return Err(PopFail::Pending { pos, word: w });
                    }
                    if flags & (RING_CLOSED | RING_SENDERS_GONE) != 0 {
                        return Ok(Peek::Closed);
                    }
                    return Ok(Peek::NotYet);
                }
                Slot::Claimed(..) | Slot::InFlight => {
                    return Err(PopFail::Pending { pos, word: w });
                }
                Slot::Other => {
                    if self.not_passed(pos) {
                        return Err(self.impossible(pos, w));
                    }
                }
            }
        }
    }

    /// Whether `head` has not passed `pos`, with everything read before ordered before the
    /// check: a copy of `pos` made before it returned true was not torn by a rewrite.
    fn not_passed(&self, pos: u64) -> bool {
        acquire_fence();
        self.head.load(Relaxed) & !RESERVED <= pos
    }

    /// `Some(head)` if `head` has passed `pos` (the message there was taken), with everything
    /// read before ordered before the check (as [`not_passed`](Self::not_passed)): a peek of a
    /// large message whose side segment changed under it asks this to tell a take (then the
    /// change was the taker's release, or the creator's reuse after it) from damage.
    pub(crate) fn passed(&self, pos: u64) -> Option<u64> {
        acquire_fence();
        let head = self.head.load(Relaxed) & !RESERVED;
        (head > pos).then_some(head)
    }

    /// Takes the positions `from..from + n` if `head` is at `from` and each of them is
    /// published (the commit point: one CAS, as a get's take). Tombstones between `head` and
    /// `from` are stepped over first (they hold no message; a get would step over them too).
    ///
    /// `large` receives (cleared first) the descriptors of the large messages among them, read
    /// in the same pass over the positions that checks they are published, before the CAS: a
    /// slot of `p >= from` is rewritten only after `head` passed `p`, so after a successful CAS
    /// from `from` they are the descriptors of the messages taken (the acquire fence before
    /// the CAS orders the reads before it, as a get's copy). The caller releases their side
    /// segments once this returned [`Commit::Done`].
    pub(crate) fn commit(&self, from: u64, n: u64, large: &mut Vec<Vec<u8>>) -> Commit {
        loop {
            let tail = self.tail.load(SeqCst);
            let Some(end) = from.checked_add(n).filter(|&end| end <= tail) else {
                return Commit::NotThere(tail);
            };
            // One pass: the sequence word (published?) and the length word of each position,
            // in one cache line; a descriptor is read only behind a LARGE length word.
            large.clear();
            let mut unpublished = None;
            for p in from..end {
                // SYNC POINT: pairs with `publish`: a FULL word makes the descriptor visible.
                let w = self.seq(p).load(Acquire);
                match slot_state(w, p, self.capacity) {
                    Slot::Full => {
                        let len = self.raw_len(p);
                        if len & LARGE != 0 && len & !LARGE <= self.message_size as u64 {
                            let mut d = vec![0; (len & !LARGE) as usize];
                            self.copy_to(p, &mut d);
                            large.push(d);
                        }
                    }
                    Slot::Void => {}
                    // A claim not published yet (or a slot of a later lap: then `head` moved
                    // and the CAS below would fail anyway): nothing is taken.
                    _ => {
                        unpublished = Some(p);
                        break;
                    }
                }
            }
            if !large.is_empty() {
                acquire_fence();
            }
            let cas = match unpublished {
                // SYNC POINT: commit of a get; the Release half pairs with the producer's
                // Acquire load of `head` before it reuses these slots.
                None => self.head.compare_exchange(from, from + n, SeqCst, SeqCst),
                Some(_) => Err(self.head.load(SeqCst)),
            };
            match cas {
                Ok(_) => return Commit::Done,
                // Only with `unpublished`: `head` is here, but a position is not published.
                Err(h) if h == from => return Commit::NotThere(unpublished.unwrap_or(from)),
                Err(h) if h == from | RESERVED => return Commit::Reserved,
                Err(h) if h < from && h & RESERVED == 0 => {
                    let w = self.seq(h).load(SeqCst);
                    if slot_state(w, h, self.capacity) != Slot::Void {
                        return Commit::Moved(h);
                    }
                    // Step over the tombstone (if nobody did meanwhile), then try again.
                    if self
                        .head
                        .compare_exchange(h, h + 1, SeqCst, Relaxed)
                        .is_ok()
                    {
                        self.free_event().notify();
                    }
                }
                Err(h) => return Commit::Moved(h & !RESERVED),
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::super::HeapCore;
    use super::*;

    #[test]
    fn a_peek_copies_without_taking_and_a_commit_takes() {
        let h = HeapCore::new(4, 16);
        let c = h.core();
        let mut v = Vec::new();
        assert_eq!(c.peek_at(0, &mut v), Ok(Peek::NotYet));
        assert_eq!(
            c.peek_at(4, &mut v),
            Ok(Peek::NotYet),
            "beyond the capacity"
        );
        h.push(b"one").unwrap();
        h.push(b"two").unwrap();
        assert_eq!(c.peek_at(1, &mut v), Ok(Peek::Copied(3)));
        assert_eq!(v, b"two");
        assert_eq!(c.peek_at(0, &mut v), Ok(Peek::Copied(3)));
        assert_eq!(v, b"one");
        assert_eq!(c.len(), 2, "peeking takes nothing");
        assert_eq!(
            c.commit(1, 1, &mut Vec::new()),
            Commit::Moved(0),
            "only from head"
        );
        assert_eq!(
            c.commit(0, 3, &mut Vec::new()),
            Commit::NotThere(2),
            "only what is published"
        );
        assert_eq!(c.commit(0, 1, &mut Vec::new()), Commit::Done);
        assert_eq!(c.peek_at(0, &mut v), Ok(Peek::Taken(1)));
        assert_eq!(
            c.commit(0, 1, &mut Vec::new()),
            Commit::Moved(1),
            "a second commit takes nothing"
        );
        assert_eq!(c.pop_vec(), Ok(Some(b"two".to_vec())));
    }

    #[test]
    fn a_peeker_dead_before_its_commit_takes_nothing() {
        let h = HeapCore::new(2, 8);
        let c = h.core();
        h.push(b"kept").unwrap();
        let mut v = Vec::new();
        assert_eq!(c.peek_at(0, &mut v), Ok(Peek::Copied(4)));
        // Died here: no commit. Everything is still there for the next consumer.
        assert_eq!(c.pop_vec(), Ok(Some(b"kept".to_vec())));
    }

    #[test]
    fn a_commit_after_another_consumer_took_the_message_fails() {
        // Capacity 1: another consumer takes position 0 and a producer reuses the slot for
        // position 1; the stale peek of 0 must neither commit nor read the new message as 0.
        let h = HeapCore::new(1, 8);
        let c = h.core();
        h.push(b"old").unwrap();
        let mut v = Vec::new();
        assert_eq!(c.peek_at(0, &mut v), Ok(Peek::Copied(3)));
        assert_eq!(c.pop_vec(), Ok(Some(b"old".to_vec())));
        h.push(b"new").unwrap();
        assert_eq!(c.commit(0, 1, &mut Vec::new()), Commit::Moved(1));
        assert_eq!(c.peek_at(0, &mut v), Ok(Peek::Taken(1)));
        assert_eq!(c.peek_at(1, &mut v), Ok(Peek::Copied(3)));
        assert_eq!(v, b"new");
    }

    #[test]
    fn a_reserved_front_can_be_peeked_but_not_committed() {
        let h = HeapCore::new(2, 8);
        let c = h.core();
        h.push(b"a").unwrap();
        assert_eq!(c.reserve_front(), Ok(Some((0, 1))));
        let mut v = Vec::new();
        assert_eq!(c.peek_at(0, &mut v), Ok(Peek::Copied(1)));
        assert_eq!(c.commit(0, 1, &mut Vec::new()), Commit::Reserved);
        c.release(0, 0);
        assert_eq!(c.commit(0, 1, &mut Vec::new()), Commit::Done);
    }

    #[test]
    fn a_dead_claim_is_pending_then_void_and_commits_step_over_it() {
        let h = HeapCore::new(4, 8);
        let c = h.core();
        h.push(b"a").unwrap();
        let dead = c.claim_and_die(b"lost", 2).unwrap();
        h.push(b"b").unwrap();
        let mut v = Vec::new();
        assert!(matches!(
            c.peek_at(dead, &mut v),
            Err(PopFail::Pending { pos: 1, .. })
        ));
        assert_eq!(c.peek_at(2, &mut v), Ok(Peek::Copied(1)));
        let w = c.seq(dead).load(SeqCst);
        assert_eq!(c.void_claim(dead, w), 1);
        assert_eq!(c.peek_at(dead, &mut v), Ok(Peek::Void));
        assert_eq!(c.commit(0, 1, &mut Vec::new()), Commit::Done);
        // Position 1 is a tombstone: committing 2 steps over it.
        assert_eq!(c.commit(2, 1, &mut Vec::new()), Commit::Done);
        assert_eq!(c.pop_vec(), Ok(None));
    }

    #[test]
    fn impossible_lengths_are_corrupt() {
        let h = HeapCore::new(2, 8);
        let c = h.core();
        h.push(b"x").unwrap();
        let base = c.base(0);
        c.slots[base].store(1000, SeqCst);
        let mut v = Vec::new();
        assert!(matches!(c.peek_at(0, &mut v), Err(PopFail::Corrupt(_))));
    }

    /// A put of descriptor `d` (a large message's, `crate::large`) by participant 1.
    fn push_descriptor(h: &HeapCore, d: &[u8]) {
        let c = h.core();
        let cl = c.claim(1, 1, 0).unwrap();
        let pos = cl.pos;
        c.write_descriptor(pos, d);
        c.publish(cl);
    }

    #[test]
    fn a_descriptor_is_peeked_as_large_and_a_commit_hands_back_the_descriptors_it_took() {
        let h = HeapCore::new(4, 32);
        let c = h.core();
        h.push(b"small").unwrap();
        push_descriptor(&h, &[7; 32]);
        h.push(b"").unwrap();
        push_descriptor(&h, &[9; 32]);
        let mut v = Vec::new();
        assert_eq!(c.peek_at(1, &mut v), Ok(Peek::Large));
        assert_eq!(v, [7; 32], "the descriptor, whole");
        assert_eq!(c.peek_at(2, &mut v), Ok(Peek::Copied(0)));
        let mut large = vec![b"stale".to_vec()];
        assert_eq!(c.commit(0, 3, &mut large), Commit::Done);
        assert_eq!(large, [vec![7; 32]], "cleared first; only the large ones");
        assert_eq!(c.peek_at(3, &mut v), Ok(Peek::Large));
        assert_eq!(c.commit(3, 1, &mut large), Commit::Done);
        assert_eq!(large, [vec![9; 32]]);
        assert_eq!(c.peek_at(1, &mut v), Ok(Peek::Taken(4)));
        assert_eq!(c.passed(3), Some(4));
        assert_eq!(c.passed(4), None);
    }

    #[test]
    fn a_commit_over_a_claim_not_yet_published_takes_nothing() {
        let h = HeapCore::new(4, 8);
        let c = h.core();
        h.push(b"a").unwrap();
        let pending = c.claim_and_die(b"b", 2).unwrap();
        h.push(b"c").unwrap();
        let mut large = Vec::new();
        assert_eq!(
            c.commit(0, 3, &mut large),
            Commit::NotThere(pending),
            "a claim in flight is not taken (its put would be lost)"
        );
        assert_eq!(c.len(), 3);
        assert_eq!(c.commit(0, 1, &mut large), Commit::Done);
        assert_eq!(c.commit(0, 1, &mut large), Commit::Moved(1));
    }
}
