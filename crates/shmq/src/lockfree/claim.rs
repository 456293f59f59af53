//! Claim and publish: the producer side of the ring, which takes no lock. A producer reads its
//! room from `tail` and the cached `head_seen` ([`Core::reserve`]: a closed ring or a pipe with
//! no receiver left refuses first), names the positions it is about to claim in an intent lane
//! of its registry row, claims up to [`MAX_CLAIM`] slots with one CAS of `tail`
//! ([`Core::claim`]), then checks the flags again: a close that came before the claim
//! withdraws it ([`PushFail::Withdrawn`]; the caller voids it under the lock). A claim of
//! several slots marks its first slot with a claim word (owner and count). The producer writes
//! the slots word by word with `Release` stores ([`Core::write`]; a large message's descriptor
//! with [`Core::write_descriptor`]) and commits with one store of `FULL` into the first slot's
//! sequence word ([`Core::publish`]: a `Release` store and the light side of the asymmetric
//! barrier, or a SeqCst store in a process the kernel did not register for it), then clears
//! its lane. A claim whose owner dies before that store is voided (`repair.rs`); consumers
//! never see half of it. [`Core::push_one`] is the same steps for the common single put in one
//! inlined step, which declines, having changed nothing, whenever the case is not plain (a
//! position lost to another producer is tried again at the new tail, a few times).
//!
//! Why `tail` and not the slot: the claim is the one locked instruction every put must make,
//! and the slot's line is the one a consumer has just read, so a CAS there waits for that line
//! to come back; `tail` is the producers' own line. The owner, which the slot's word can no
//! longer name in the same step, is named before the step, in the lane.

use super::{
    Core, FULL, LARGE, LOCK_OWNER, MAX_CLAIM, ONE_STEP_TRIES, PushFail, RESERVED, RING_CLOSED,
    RING_RECEIVERS_GONE, claimed, intent, word, write_words,
};
use crate::sync::atomic::AtomicU64;
use crate::sync::atomic::Ordering::{Acquire, Relaxed, Release, SeqCst};
use crate::sync::atomic::{dekker_fence, light_barrier, light_publish};

/// Slots claimed by one producer, not yet published: positions `pos..pos + n`, named in
/// intent lane number `lane` (an index into [`Core::intents`]) until [`Core::publish`] (or
/// [`Core::release_lane`]) clears it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Claim {
    pub(crate) pos: u64,
    pub(crate) n: usize,
    pub(crate) lane: usize,
}

/// How the one-step put ended ([`Core::push_one`]).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum OnePut {
    /// The message is published.
    Done,
    /// Not a plain case: nothing changed; the general path sorts it out.
    Declined,
    /// Claimed, then found the ring closed (or a pipe's side gone): the caller voids the
    /// claim under the lock and releases its lane ([`Claim`]), then reports the close.
    Withdrawn(Claim),
}

impl<'a> Core<'a> {
    /// Producer: the ring's room from `tail`, refusing a closed ring first (Closed wins over
    /// Full): returns `(tail, n)` with `1 <= n <= wanted` free slots. Claims nothing.
    #[inline]
    pub(crate) fn reserve(&self, wanted: usize) -> Result<(u64, usize), PushFail> {
        loop {
            let flags = self.flags.load(SeqCst);
            if flags & RING_CLOSED != 0 {
                return Err(PushFail::Closed);
            }
            if flags & RING_RECEIVERS_GONE != 0 {
                return Err(PushFail::ReceiversGone);
            }
            let tail = self.tail.load(Acquire);
            // SYNC POINT: pairs with the Release store of `head_seen` by the producer that read
            // it from `head` (Acquire): the consumers' copies of the slots we reuse happen
            // before our writes.
            let seen = self.head_seen.load(Acquire);
            let mut used = tail.wrapping_sub(seen);
            if seen > tail || used > self.capacity || self.capacity - used < wanted as u64 {
                // SYNC POINT: pairs with the consumers' CAS of `head`. A reserved front is not
                // free.
                let head = self.head.load(Acquire) & !RESERVED;
                if head > tail || tail - head > self.capacity {
                    if self.tail.load(SeqCst) != tail {
                        continue;
                    }
                    return Err(PushFail::Corrupt(format!(
                        "impossible positions: head {head} tail {tail} capacity {}",
                        self.capacity
                    )));
                }
                self.head_seen.store(head, Release);
                used = tail - head;
            }
            let free = self.capacity - used;
            if free == 0 {
                return Err(PushFail::Full);
            }
            let n = (wanted as u64).min(free);
            // Positions live below the head word's `RESERVED` bit.
            if tail.checked_add(n).is_none_or(|t| t >= RESERVED) {
                return Err(PushFail::Corrupt(format!(
                    "impossible positions: tail {tail} cannot grow by {n}"
                )));
            }
            return Ok((tail, n as usize));
        }
    }

    /// Producer: a free intent lane of row `owner` (trying lane `hint` first, then the
    /// others), taken by CAS with `value`; [`LOCK_OWNER`], which holds the ring's lock, always
    /// has lane 0 of row 0. `None` when every lane of the row is busy (as many threads of this
    /// process are inside a put).
    fn take_lane(&self, owner: u8, hint: usize, value: u64) -> Option<usize> {
        if owner == LOCK_OWNER {
            // Ordered before the CAS of `tail` by that CAS (a SeqCst RMW).
            self.intents[0].store(value, Release);
            return Some(0);
        }
        for i in 0..self.lanes {
            let at = self.lane_index(owner, hint.wrapping_add(i));
            let lane = &self.intents[at];
            // SYNC POINT: the lane is this thread's from here until it clears it.
            if lane.load(Relaxed) == 0 && lane.compare_exchange(0, value, SeqCst, Relaxed).is_ok() {
                return Some(at);
            }
        }
        None
    }

    /// Clears the intent lane of claim `c` (after its publish, or its void).
    #[inline]
    pub(crate) fn release_lane(&self, c: Claim) {
        // SYNC POINT: pairs with a consumer's scan of the lanes: a clear lane it sees comes
        // after the commit (or the void).
        self.intents[c.lane].store(0, Release);
    }

    /// Producer: claims up to `wanted` (at most [`MAX_CLAIM`]) consecutive free slots at the
    /// tail for `owner` (intent lane `hint` of its row first): names them in the lane, moves
    /// `tail` past them with one CAS (retried at the new tail), checks the flags again, and
    /// marks the first slot when it claimed several. The slots are the caller's to
    /// [`write`](Self::write) and [`publish`](Self::publish) (which clears the lane); until then
    /// consumers wait at the first position (and void the claim if `owner` dies).
    ///
    /// [`PushFail::Busy`] when every lane of the row is taken; [`PushFail::Withdrawn`] when the
    /// ring was closed (or a pipe's side left) before the claim: the caller voids it under the
    /// lock.
    pub(crate) fn claim(&self, wanted: usize, owner: u8, hint: usize) -> Result<Claim, PushFail> {
        let wanted = wanted.clamp(1, MAX_CLAIM);
        let (mut tail, mut n) = self.reserve(wanted)?;
        let Some(lane) = self.take_lane(owner, hint, intent(tail, owner, n as u64)) else {
            return Err(PushFail::Busy);
        };
        // SYNC POINT: the claim. Its intent is in the lane before it (a consumer that sees
        // `tail` past the claim then sees the intent).
        while self
            .tail
            .compare_exchange(tail, tail + n as u64, SeqCst, Relaxed)
            .is_err()
        {
            match self.reserve(wanted) {
                Ok((t, k)) => {
                    (tail, n) = (t, k);
                    self.intents[lane].store(intent(tail, owner, n as u64), Release);
                }
                Err(e) => {
                    self.intents[lane].store(0, Release);
                    return Err(e);
                }
            }
        }
        let claim = Claim { pos: tail, n, lane };
        if n > 1 {
            // The mark: names the owner and the count in the slot, before any of the claim is
            // written or published (a consumer finds a claim in flight without it only while
            // none of it is published, so a void of one position at a time then never leaves
            // half of a batch).
            self.seq(tail)
                .store(claimed(tail, owner, n as u64), Release);
        }
        // SYNC POINT: the flags again, after the claim: with a consumer's load of the flags and
        // then of `tail` (`Core::drained`), a Dekker handshake: either it sees this claim, or
        // this load sees the close it saw.
        dekker_fence();
        if self.flags.load(SeqCst) != 0 {
            return Err(PushFail::Withdrawn(claim));
        }
        Ok(claim)
    }

    /// Producer, the common put in one step: when the ring is open and has room by the cached
    /// `head_seen`, and intent lane `lane` (an index into [`intents`](Core::intents), in row
    /// `owner`: [`lane_index`](Core::lane_index)) is free, names `tail` in the lane, claims it
    /// with one CAS of `tail`, checks the flags again, writes `msg` (at most `message_size`
    /// bytes), publishes it (`light`: with the light side of the asymmetric barrier, which the
    /// caller read from [`light_publish`]) and clears the lane: the steps of
    /// [`claim`](Self::claim), [`write`](Self::write) and [`publish`](Self::publish), in their
    /// order. [`OnePut::Declined`], having changed nothing, in every other case (closed, full
    /// or maybe full, a busy lane, [`ONE_STEP_TRIES`] lost races); [`OnePut::Withdrawn`] when
    /// the flags changed under the claim. A position lost to another producer is retried at
    /// the tail that producer moved to, so that producers racing each other stay on this path.
    /// Call [`Event::notify`](super::Event::notify) on the items event after
    /// [`OnePut::Done`]. `owner` is not [`LOCK_OWNER`].
    #[inline]
    pub(crate) fn push_one(&self, msg: &[u8], owner: u8, lane: usize, light: bool) -> OnePut {
        debug_assert!(msg.len() <= self.message_size);
        debug_assert!(owner != LOCK_OWNER);
        debug_assert_eq!(lane / self.lanes, owner as usize);
        let tail = self.tail.load(Acquire);
        if !self.room_for_one(tail) {
            return OnePut::Declined;
        }
        let Some(lane_word) = self.intents.get(lane) else {
            return OnePut::Declined;
        };
        // SYNC POINT: the intent, as in `take_lane`.
        if lane_word
            .compare_exchange(0, intent(tail, owner, 1), SeqCst, Relaxed)
            .is_err()
        {
            return OnePut::Declined;
        }
        // SYNC POINT: the claim, as in `claim`.
        match self.tail.compare_exchange(tail, tail + 1, SeqCst, Relaxed) {
            Ok(_) => self.fill_one(tail, lane, lane_word, msg, light),
            Err(now) => self.push_one_again(now, lane, msg, owner, light),
        }
    }

    /// [`push_one`](Self::push_one) after a race lost to a producer that moved `tail` to
    /// `tail`: tries again there, holding the lane.
    #[cold]
    #[inline(never)]
    pub(super) fn push_one_again(
        &self,
        mut tail: u64,
        lane: usize,
        msg: &[u8],
        owner: u8,
        light: bool,
    ) -> OnePut {
        for _ in 1..ONE_STEP_TRIES {
            if !self.room_for_one(tail) {
                break;
            }
            self.intents[lane].store(intent(tail, owner, 1), Release);
            match self.tail.compare_exchange(tail, tail + 1, SeqCst, Relaxed) {
                Ok(_) => return self.fill_one(tail, lane, &self.intents[lane], msg, light),
                Err(now) => tail = now,
            }
        }
        self.intents[lane].store(0, Release);
        OnePut::Declined
    }

    /// Whether a single put at `tail` is the plain case: no flag set, room by `head_seen`, a
    /// position far from the end of the counter.
    #[inline(always)]
    fn room_for_one(&self, tail: u64) -> bool {
        if self.flags.load(SeqCst) != 0 {
            return false;
        }
        // SYNC POINT: as in `reserve`, pairs with the Release store of `head_seen`.
        let seen = self.head_seen.load(Acquire);
        // (`seen > tail` wraps to a huge value; positions stay below `RESERVED`.)
        tail.wrapping_sub(seen) < self.capacity && tail < RESERVED - 1
    }

    /// The rest of a one-step put after its claim of position `pos`, named in lane number
    /// `lane` (the word `lane_word`): the flags again, the write, the commit, the lane cleared.
    #[inline(always)]
    fn fill_one(
        &self,
        pos: u64,
        lane: usize,
        lane_word: &AtomicU64,
        msg: &[u8],
        light: bool,
    ) -> OnePut {
        // SYNC POINT: the flags again, as in `claim`.
        dekker_fence();
        if self.flags.load(SeqCst) != 0 {
            return OnePut::Withdrawn(Claim { pos, n: 1, lane });
        }
        let slot = self.slot(pos);
        write_slot_payload_first(slot, msg);
        commit(&slot[1], word(pos, FULL), light);
        // SYNC POINT: as in `release_lane`.
        lane_word.store(0, Release);
        OnePut::Done
    }

    /// Why a claim is refused or withdrawn on a closed ring (or a pipe's side gone).
    pub(crate) fn closed_fail(&self) -> PushFail {
        let flags = self.flags.load(SeqCst);
        if flags & RING_RECEIVERS_GONE != 0 && flags & RING_CLOSED == 0 {
            PushFail::ReceiversGone
        } else {
            PushFail::Closed
        }
    }

    /// Producer: writes `msg` (at most `message_size` bytes) into the slot of position `pos`,
    /// which this producer claimed. Visible to nobody until published.
    #[inline]
    pub(crate) fn write(&self, pos: u64, msg: &[u8]) {
        debug_assert!(msg.len() <= self.message_size);
        write_slot(self.slot(pos), msg);
    }

    /// Producer: publishes the claim `c` (written), the later slots first and its first
    /// position last: the store of `FULL(pos)` is the commit point of the whole claim. Then
    /// clears its lane. Call [`Event::notify`](super::Event::notify) on the items event
    /// afterwards.
    #[inline]
    pub(crate) fn publish(&self, c: Claim) {
        self.publish_words(c.pos, c.n);
        self.release_lane(c);
    }

    /// The stores of [`publish`](Self::publish), without clearing the lane (a test hook
    /// publishes the later part of a claim and stops).
    pub(crate) fn publish_words(&self, pos: u64, n: usize) {
        for p in (pos + 1..pos + n as u64).rev() {
            // Nobody reads these before `pos` is published (consumers go in order).
            self.seq(p).store(word(p, FULL), Release);
        }
        commit(self.seq(pos), word(pos, FULL), light_publish());
    }

    /// Producer: writes descriptor `d` into the slot of position `pos` as [`write`](Self::write)
    /// does, with [`LARGE`] set in the length word.
    pub(crate) fn write_descriptor(&self, pos: u64, d: &[u8]) {
        self.write(pos, d);
        self.slots[self.base(pos)].store(d.len() as u64 | LARGE, Release);
    }

    /// Test hook: names the tail in a free lane of `owner`'s row, as a producer does before
    /// its CAS of `tail`, and claims nothing: the caller then stops for good (a producer
    /// killed between the two). Returns the position named.
    #[cfg(any(test, loom, feature = "test-hooks"))]
    pub(crate) fn name_and_die(&self, owner: u8, hint: usize) -> Option<u64> {
        let (tail, _) = self.reserve(1).ok()?;
        self.take_lane(owner, hint, intent(tail, owner, 1))?;
        Some(tail)
    }

    /// Test hook: a producer that claims and writes a slot and dies before publishing it.
    #[cfg(any(test, loom))]
    pub(crate) fn claim_and_die(&self, msg: &[u8], owner: u8) -> Option<u64> {
        let c = self.claim(1, owner, 0).ok()?;
        self.write(c.pos, msg);
        Some(c.pos)
    }
}

/// Writes `msg` into the words of a claimed slot: its length word, then its payload.
#[inline(always)]
fn write_slot(slot: &[AtomicU64], msg: &[u8]) {
    slot[0].store(msg.len() as u64, Release);
    write_words(&slot[2..], msg);
}

/// [`write_slot`] in the other order, payload first, then the length word, for the one-step
/// put: the length word shares its line with the sequence word, which a waiting consumer
/// reads in a loop. Stored first, it fetched that line for the producer, the consumer's next
/// read took it back, and the commit had to fetch it again; stored last, the length word and
/// the commit find the line once (64 B round trip p50 1.5 → 1.1 × the Vyukov ring's). Batches
/// keep the length first: at 4 KiB, going back to the slot's first line after its payload
/// made them slower.
#[inline(always)]
fn write_slot_payload_first(slot: &[AtomicU64], msg: &[u8]) {
    write_words(&slot[2..], msg);
    slot[0].store(msg.len() as u64, Release);
}

/// The commit store of a put: `w` into the first claimed slot's sequence word.
#[inline(always)]
fn commit(seq: &AtomicU64, w: u64, light: bool) {
    // SYNC POINT: commit of a put; pairs with the consumers' Acquire loads of the word (the
    // payload is visible with it) and with a sleeper's re-check: through the asymmetric
    // barrier where this process may (`light`: `sync::atomic::light_publish`), else as a
    // SeqCst store.
    if light {
        seq.store(w, Release);
        light_barrier();
    } else {
        seq.store(w, SeqCst);
    }
}
