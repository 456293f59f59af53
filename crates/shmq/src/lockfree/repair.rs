//! Void and repair: what a holder of the ring's lock does about a participant that died inside
//! the protocol. A claim whose owner died before publishing becomes tombstones
//! ([`Core::void_claim`]: `VOID` in every slot of the claim, the first slot last as the commit
//! point), which consumers step over; [`Core::claims_of`] finds every claim standing in the name
//! of a dead owner, so that its registry entry can be freed. A zero-copy reader that died
//! holding a reservation took nothing: the next locker clears the bit
//! ([`Core::clear_reservation`]). Deciding who is dead and taking the lock are the callers'
//! (`engine.rs`, `ring.rs`), and so are the journal and the count of voids (`ring.rs`). See
//! docs/protocol.md, "Crash repair".

use super::{CLAIMED, Core, RESERVED, Slot, VOID, at, claim_count, slot_state, state, word};
use crate::sync::atomic::Ordering::{Relaxed, SeqCst};

impl Core<'_> {
    /// Under the ring's lock, with the claim's owner dead (or the claim made under the lock by
    /// a holder that died): turns the claim `w` at `pos` into tombstones, the later slots
    /// first and `pos` last (the commit point). Returns how many positions it voided (0 if the
    /// claim is no longer there).
    pub(crate) fn void_claim(&self, pos: u64, w: u64) -> u64 {
        let seq = self.seq(pos);
        if seq.load(SeqCst) != w || state(w) != CLAIMED || !at(w, pos) {
            return 0;
        }
        let k = claim_count(w);
        self.help_tail(pos, k);
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

    /// The claims (position, word) standing in the ring whose owner is `owner` (a scan of
    /// every slot; for repairs).
    pub(crate) fn claims_of(&self, owner: u8) -> Vec<(u64, u64)> {
        let head = self.head.load(SeqCst) & !RESERVED;
        let tail = self.tail.load(SeqCst);
        let mut found = Vec::new();
        // A claim whose `tail` move is not done yet sits at `tail` itself.
        let end = tail
            .saturating_add(1)
            .min(head.saturating_add(self.capacity));
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
