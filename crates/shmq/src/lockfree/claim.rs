//! Claim and publish: the producer side of the ring, which takes no lock. A producer reads its
//! room from `tail` and the cached `head_seen` ([`Core::reserve`]: a closed ring or a pipe with
//! no receiver left refuses first), claims up to [`MAX_CLAIM`] slots at `tail` with one CAS of
//! the first slot's sequence word, which names the claim's owner and count ([`Core::claim`]),
//! moves `tail` past the claim (anyone who sees a claim at `tail` helps it past), writes the
//! slots word by word with `Release` stores ([`Core::write`]; a large message's descriptor with
//! [`Core::write_descriptor`]), and commits with one store of `FULL` into the first slot's
//! sequence word ([`Core::publish`]: a `Release` store and the light side of the asymmetric
//! barrier, or a SeqCst store in a process the kernel did not register for it). A claim whose
//! owner dies before that store is voided (`repair.rs`); consumers never see half of it.
//! [`Core::push_one`] is the same steps for the common single put in one inlined step, which
//! declines, having changed nothing, whenever the case is not plain (a position lost to a
//! producer that has moved `tail` on is tried again at the new tail, a few times).

use super::{
    Core, FULL, LARGE, MAX_CLAIM, ONE_STEP_TRIES, PushFail, RESERVED, RING_CLOSED,
    RING_RECEIVERS_GONE, Slot, claimed, slot_state, word, write_words,
};
use crate::sync::atomic::AtomicU64;
use crate::sync::atomic::Ordering::{Acquire, Relaxed, Release, SeqCst};
use crate::sync::atomic::{light_barrier, light_publish};

impl Core<'_> {
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

    /// Producer: claims up to `wanted` (at most [`MAX_CLAIM`]) consecutive free slots at the
    /// tail for `owner`, with one CAS of the first slot's sequence word that names the owner and
    /// the count; then moves `tail` past them (anyone who sees the claim does that too).
    /// Returns `(pos, n)`. The slots are the caller's to [`write`](Self::write) and
    /// [`publish`](Self::publish); until then consumers wait at `pos` (and void the claim if
    /// `owner` dies).
    pub(crate) fn claim(&self, wanted: usize, owner: u8) -> Result<(u64, usize), PushFail> {
        let wanted = wanted.clamp(1, MAX_CLAIM);
        loop {
            let (tail, n) = self.reserve(wanted)?;
            let seq = self.seq(tail);
            let w = seq.load(Acquire);
            match slot_state(w, tail, self.capacity) {
                Slot::Free => {
                    // SYNC POINT: the claim; names its owner in the same step. A consumer that
                    // loads this word (Acquire) sees the registry entry it names.
                    if seq
                        .compare_exchange(w, claimed(tail, owner, n as u64), SeqCst, Relaxed)
                        .is_ok()
                    {
                        let _ = self
                            .tail
                            .compare_exchange(tail, tail + n as u64, SeqCst, Relaxed);
                        return Ok((tail, n));
                    }
                }
                Slot::Claimed(_, k) => self.help_tail(tail, k),
                Slot::Sealed => return Err(self.sealed_fail()),
                Slot::Full | Slot::Void | Slot::Other => {
                    // A claim of `tail` moves `tail` before it is published or voided, so
                    // `tail` has moved since we read it; if not, the segment is damaged.
                    if self.tail.load(SeqCst) == tail {
                        return Err(PushFail::Corrupt(format!(
                            "slot {} holds sequence word {w:#x}, impossible for the tail {tail}",
                            tail % self.capacity
                        )));
                    }
                }
            }
        }
    }

    /// Producer, the common put in one step: when the ring is open, has room by the cached
    /// `head_seen`, and the slot at `tail` is free from a published message (or was never
    /// used), claims it for `owner`, moves `tail`, writes `msg` (at most `message_size`
    /// bytes) and publishes it (`light`: with the light side of the asymmetric barrier, which
    /// the caller read from [`light_publish`]): the same steps, in the same order, as [`claim`](Self::claim),
    /// [`write`](Self::write) and [`publish`](Self::publish). Returns false, having changed
    /// nothing, in every other case (closed, full or maybe full, a tombstone or a claim at the
    /// tail that `tail` still names, [`ONE_STEP_TRIES`] lost races): the caller then takes the
    /// general path, which sorts them out. A position lost to another producer, which has moved
    /// `tail` on, is retried at the new tail, so that producers racing each other stay on this
    /// path. Call [`Event::notify`](super::Event::notify) on the items event after a true.
    #[inline]
    pub(crate) fn push_one(&self, msg: &[u8], owner: u8, light: bool) -> bool {
        let tail = self.tail.load(Acquire);
        match self.push_one_at(tail, msg, owner, light) {
            OneStep::Done => true,
            OneStep::Declined => false,
            OneStep::Lost => self.push_one_again(tail, msg, owner, light),
        }
    }

    /// [`push_one`](Self::push_one) after a race lost at `lost`: tries again at the new tail,
    /// while `tail` has moved on (the winner moves it right after its claim).
    #[cold]
    #[inline(never)]
    pub(super) fn push_one_again(&self, mut lost: u64, msg: &[u8], owner: u8, light: bool) -> bool {
        for _ in 1..ONE_STEP_TRIES {
            let tail = self.tail.load(Acquire);
            if tail == lost {
                return false;
            }
            match self.push_one_at(tail, msg, owner, light) {
                OneStep::Done => return true,
                OneStep::Declined => return false,
                OneStep::Lost => lost = tail,
            }
        }
        false
    }

    /// One try of [`push_one`](Self::push_one) at `tail`, a value of `tail` just read.
    #[inline(always)]
    fn push_one_at(&self, tail: u64, msg: &[u8], owner: u8, light: bool) -> OneStep {
        debug_assert!(msg.len() <= self.message_size);
        if self.flags.load(SeqCst) != 0 {
            return OneStep::Declined;
        }
        // SYNC POINT: as in `reserve`, pairs with the Release store of `head_seen`.
        let seen = self.head_seen.load(Acquire);
        // (`seen > tail` wraps to a huge value; positions stay below `RESERVED`.)
        if tail.wrapping_sub(seen) >= self.capacity || tail >= RESERVED - 1 {
            return OneStep::Declined;
        }
        let free = if tail >= self.capacity {
            word(tail - self.capacity, FULL)
        } else {
            0
        };
        let slot = self.slot(tail);
        // SYNC POINT: the claim, as in `claim`.
        if slot[1]
            .compare_exchange(free, claimed(tail, owner, 1), SeqCst, Relaxed)
            .is_err()
        {
            return OneStep::Lost;
        }
        self.help_tail(tail, 1);
        write_slot(slot, msg);
        commit(&slot[1], word(tail, FULL), light);
        OneStep::Done
    }

    /// Moves `tail` from `pos` past a claim of `k` slots there (if nobody did yet).
    #[inline]
    pub(super) fn help_tail(&self, pos: u64, k: u64) {
        let _ = self.tail.compare_exchange(pos, pos + k, SeqCst, Relaxed);
    }

    /// Why a put meets a sealed slot.
    fn sealed_fail(&self) -> PushFail {
        if self.flags.load(SeqCst) & RING_RECEIVERS_GONE != 0
            && self.flags.load(SeqCst) & RING_CLOSED == 0
        {
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

    /// Producer: publishes the `n` messages claimed (and written) from position `pos`, the
    /// later ones first and `pos` last: the store of `FULL(pos)` is the commit point of the
    /// whole claim. Call [`Event::notify`](super::Event::notify) on the items event afterwards.
    #[inline]
    pub(crate) fn publish(&self, pos: u64, n: usize) {
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

    /// Test hook: a producer that claims and writes a slot and dies before publishing it.
    #[cfg(any(test, loom))]
    pub(crate) fn claim_and_die(&self, msg: &[u8], owner: u8) -> Option<u64> {
        let (pos, _) = self.claim(1, owner).ok()?;
        self.write(pos, msg);
        Some(pos)
    }
}

/// How one try of the one-step put ended.
enum OneStep {
    /// The message is published.
    Done,
    /// Not a plain case (closed, maybe full, a position out of range): nothing changed.
    Declined,
    /// The slot at the tail was not free as expected (most often another producer claimed it
    /// first): nothing changed.
    Lost,
}

/// Writes `msg` into the words of a claimed slot: its length word, then its payload.
#[inline(always)]
fn write_slot(slot: &[AtomicU64], msg: &[u8]) {
    slot[0].store(msg.len() as u64, Release);
    write_words(&slot[2..], msg);
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
