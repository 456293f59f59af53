//! Reserve and release: the zero-copy reader, which holds the ring's lock. Instead of claiming
//! the front it reserves it ([`Core::reserve_front_up_to`]: one CAS sets [`RESERVED`] in `head`
//! and keeps the position), so that no lock-free consumer takes those messages and no producer
//! rewrites their slots while the caller reads them in place ([`Core::payload`]) or copies them
//! ([`Core::copy_reserved`], [`Core::reserved_descriptor`] for a large message's descriptor).
//! One store of `head` ends the reservation, taking the messages read or none
//! ([`Core::release`]). A reader that dies holding a reservation leaves the bit to the next
//! locker, which clears it (`repair.rs`). See docs/protocol.md, "Zero-copy gets".

use super::{Core, LARGE, PopFail, RESERVED, Slot, slot_state};
use crate::sync::atomic::Ordering::{Acquire, Relaxed, SeqCst};

impl Core<'_> {
    /// Tests: [`reserve_front_up_to`](Self::reserve_front_up_to) counting up to the capacity.
    #[cfg(any(test, loom))]
    pub(crate) fn reserve_front(&self) -> Result<Option<(u64, u64)>, PopFail> {
        self.reserve_front_up_to(self.capacity)
    }

    /// Reader under the lock: reserves the front, so that no consumer takes it and no producer
    /// rewrites it until [`release`](Self::release). Returns `(head, available)` (`head`
    /// without the bit; `available` the published messages from `head` on, at least 1 and at
    /// most `max`: a reader of one message does not scan a full ring), `None` when empty
    /// (nothing reserved), [`PopFail::Pending`] when a claim in flight is at the front.
    pub(crate) fn reserve_front_up_to(&self, max: u64) -> Result<Option<(u64, u64)>, PopFail> {
        let max = max.clamp(1, self.capacity);
        loop {
            let head = self.head.load(Acquire);
            if head & RESERVED != 0 {
                // Only a lock holder sets the bit, and the locker after a dead one clears it.
                return Err(PopFail::Corrupt(format!(
                    "head {} is reserved, but its reader does not hold the lock",
                    head & !RESERVED
                )));
            }
            let Some(head) = self.front_full()? else {
                return Ok(None);
            };
            // SYNC POINT: the reservation; a lock-free consumer's take from `head` fails
            // after it, and one that won before it moved `head` (we then retry).
            if self
                .head
                .compare_exchange(head, head | RESERVED, SeqCst, Relaxed)
                .is_ok()
            {
                // The published messages from `head` on (a tombstone or a claim ends the run).
                let mut n = 1;
                while n < max
                    && slot_state(self.seq(head + n).load(Acquire), head + n, self.capacity)
                        == Slot::Full
                {
                    n += 1;
                }
                return Ok(Some((head, n)));
            }
        }
    }

    /// Reader under the lock: the checked length of reserved position `pos`.
    pub(crate) fn reserved_len(&self, pos: u64) -> Result<usize, PopFail> {
        let len = self.raw_len(pos);
        if len <= self.message_size as u64 {
            Ok(len as usize)
        } else {
            Err(PopFail::Corrupt(format!(
                "slot {} claims {len} bytes, more than the slot size {}",
                pos % self.capacity,
                self.message_size
            )))
        }
    }

    /// Reader under the lock: copies reserved position `pos` (of length `len`) into `dst`.
    #[cfg_attr(all(target_endian = "little", not(loom)), allow(dead_code))]
    pub(crate) fn copy_reserved(&self, pos: u64, dst: &mut Vec<u8>, len: usize) {
        dst.clear();
        dst.resize(len, 0);
        self.copy_to(pos, dst);
    }

    /// Reader under the lock: the descriptor held by reserved position `pos` if its length
    /// word has [`LARGE`] set (`None` for an ordinary message).
    pub(crate) fn reserved_descriptor(&self, pos: u64) -> Result<Option<Vec<u8>>, PopFail> {
        let w = self.raw_len(pos);
        if w & LARGE == 0 {
            return Ok(None);
        }
        let len = w & !LARGE;
        if len > self.message_size as u64 {
            return Err(self.oversized(pos, w));
        }
        let mut d = vec![0; len as usize];
        self.copy_to(pos, &mut d);
        Ok(Some(d))
    }

    /// Reader under the lock: ends the reservation of `head`, taking `n` messages (0: the
    /// front stays first). The commit point of a zero-copy get: one store.
    pub(crate) fn release(&self, head: u64, n: u64) {
        // SYNC POINT: commit; the Release half pairs with the producer's Acquire load of
        // `head` before it reuses these slots.
        self.head.store(head + n, SeqCst);
    }

    /// Whether a zero-copy reader has reserved the front.
    pub(crate) fn is_reserved(&self) -> bool {
        self.head.load(SeqCst) & RESERVED != 0
    }

    /// The position of the front message (`head` without the [`RESERVED`] bit): exact for a
    /// reader that holds the reservation.
    pub(crate) fn front_position(&self) -> u64 {
        self.head.load(SeqCst) & !RESERVED
    }
}
