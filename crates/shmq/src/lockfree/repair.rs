//! Void and repair: what a holder of the ring's lock does about a participant that died inside
//! the protocol. A claim whose owner died before publishing becomes tombstones
//! ([`Core::void_claim`]: a marked claim gets `VOID` in every slot, the first slot last as the
//! commit point; an unmarked one, a claim in flight, is voided one position at a time), which
//! consumers step over; [`Core::claims_of`] finds every marked claim standing in the name of a
//! dead owner and [`Core::in_flight_of`] the positions its intent lanes cover, so that its
//! registry entry can be freed. A zero-copy reader that died
//! holding a reservation took nothing: the next locker clears the bit
//! ([`Core::clear_reservation`]). Deciding who is dead and taking the lock are the callers'
//! (`engine.rs`, `ring.rs`), and so are the journal and the count of voids (`ring.rs`). See
//! docs/protocol.md, "Crash repair".

use super::{CLAIMED, Core, RESERVED, Slot, VOID, at, claim_count, slot_state, state, word};
use crate::sync::atomic::Ordering::{Relaxed, SeqCst};

impl Core<'_> {
    /// How many positions a void of the claim whose first word is `w` covers: a mark's count,
    /// or 1 for a claim in flight (its word still free).
    pub(crate) fn claim_extent(w: u64) -> u64 {
        if state(w) == CLAIMED {
            claim_count(w)
        } else {
            1
        }
    }

    /// Under the ring's lock, with the claim's owner dead (or the claim made under the lock by
    /// a holder that died, or withdrawn by its live owner): turns the claim whose first word
    /// is `w` at `pos` into tombstones, the later slots first and `pos` last (the commit
    /// point). `w` is a mark, or the free word of a claim in flight (`tail` past `pos`), which
    /// is voided alone: a batch marks its first slot before it publishes any, so an unmarked
    /// claim has nothing published to leave half. Returns how many positions it voided (0 if
    /// the claim is no longer there).
    pub(crate) fn void_claim(&self, pos: u64, w: u64) -> u64 {
        let seq = self.seq(pos);
        if seq.load(SeqCst) != w {
            return 0;
        }
        if state(w) != CLAIMED || !at(w, pos) {
            if slot_state(w, pos, self.capacity) != Slot::Free || self.tail.load(SeqCst) <= pos {
                return 0;
            }
            // SYNC POINT: a claim in flight whose owner is dead: one CAS, against nobody but
            // a (mistaken) publish.
            return u64::from(
                seq.compare_exchange(w, word(pos, VOID), SeqCst, Relaxed)
                    .is_ok(),
            );
        }
        let k = claim_count(w);
        for p in (pos + 1..pos + k).rev() {
            self.seq(p).store(word(p, VOID), SeqCst);
        }
        if seq
            .compare_exchange(w, word(pos, VOID), SeqCst, Relaxed)
            .is_ok()
        {
            k
        } else {
            0
        }
    }

    /// The marked claims (position, word) standing in the ring whose owner is `owner` (a scan
    /// of every slot; for repairs).
    pub(crate) fn claims_of(&self, owner: u8) -> Vec<(u64, u64)> {
        let head = self.head.load(SeqCst) & !RESERVED;
        let tail = self.tail.load(SeqCst);
        let mut found = Vec::new();
        let end = tail.min(head.saturating_add(self.capacity));
        for pos in head..end {
            let w = self.seq(pos).load(SeqCst);
            if let Slot::Claimed(o, _) = slot_state(w, pos, self.capacity)
                && o == owner
            {
                found.push((pos, w));
            }
        }
        found
    }

    /// The word of a tombstone at `pos`.
    pub(crate) fn void_word(pos: u64) -> u64 {
        word(pos, VOID)
    }

    /// Whether the slot of `pos` still holds `w`.
    pub(crate) fn holds(&self, pos: u64, w: u64) -> bool {
        self.seq(pos).load(SeqCst) == w
    }

    /// Repair by a locker whose predecessor died: a reservation it left took nothing.
    /// Returns whether there was one.
    pub(crate) fn clear_reservation(&self) -> bool {
        let head = self.head.load(SeqCst);
        if head & RESERVED == 0 {
            return false;
        }
        self.head.store(head & !RESERVED, SeqCst);
        true
    }
}
