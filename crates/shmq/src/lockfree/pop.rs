//! Pop and commit: the consumer side of the ring, which takes no lock. A consumer reads `head`
//! and the front slot's sequence word ([`Core::front`]: tombstones are stepped over, a
//! reservation by a zero-copy reader is waited out for a few spins), copies a published message
//! out word by word, and commits with one CAS of `head` from the position it copied
//! ([`Core::take`]); a CAS that fails discards the copy (the seqlock argument in the parent
//! module). [`Core::pop_vec`], [`Core::pop_into`] and [`Core::pop_batch`] are the gets built on
//! it; an unpublished claim at the front (a mark, or a free word with `tail` past it) is
//! reported as [`PopFail::Pending`], a large message's descriptor as [`PopFail::Large`]. A
//! consumer that saw a close and then finds `tail` at `head` knows the ring is drained for
//! good ([`Core::drained`]): a claim made after that sees the close when it checks the flags
//! after its CAS, and withdraws.
//! [`Core::pop_one_into`] and [`Core::pop_one_vec`] are the same steps for the common single
//! get in one inlined step, which declines, having taken nothing, whenever the case is not
//! plain (a race lost to another consumer is tried again at the new front, a few times).

use super::{
    BATCH_BYTES, Core, FULL, LARGE, ONE_STEP_TRIES, PopFail, RESERVED, Slot, acquire_fence,
    read_words, slot_state, word,
};
use crate::sync::atomic::AtomicU64;
use crate::sync::atomic::Ordering::{Acquire, Relaxed, SeqCst};
use crate::sync::futex;

/// Spin rounds a lock-free consumer waits for a reservation to end before it reports
/// [`PopFail::Reserved`] (and its caller waits on the ring's lock).
#[cfg(not(loom))]
const RESERVED_SPINS: u32 = 64;
#[cfg(loom)]
const RESERVED_SPINS: u32 = 0;

impl Core<'_> {
    /// Whether the ring is drained for good, for a consumer that found the front empty and then
    /// loaded the flags and saw a close (or the last sender gone): true when `head`'s slot is
    /// still free and `tail` is `head` (a claim at `head` made after this load checks the
    /// flags after its CAS of `tail`, sees them, and withdraws; one made before it is in
    /// flight and is waited for); false when anything is at the front.
    pub(crate) fn drained(&self) -> Result<bool, PopFail> {
        // SYNC POINT: the consumer's side of the handshake with a claim's second check of the
        // flags (`claim.rs`): the caller's load of the flags, then this load of `tail`.
        crate::sync::atomic::dekker_fence();
        let head = self.head.load(SeqCst);
        if head & RESERVED != 0 {
            return Ok(false);
        }
        let w = self.seq(head).load(SeqCst);
        match slot_state(w, head, self.capacity) {
            // SYNC POINT: after the caller's SeqCst load of the flags (see above).
            Slot::Free => Ok(self.tail.load(SeqCst) == head),
            Slot::Other if self.still(head) => Err(self.impossible(head, w)),
            _ => Ok(false),
        }
    }

    /// The front position and what its slot holds, spinning a little while a zero-copy
    /// reader holds it ([`PopFail::Reserved`] after that).
    #[inline]
    fn front(&self) -> Result<(u64, u64, Slot), PopFail> {
        let mut spins = 0;
        loop {
            let head = self.head.load(Acquire);
            if head & RESERVED != 0 {
                if spins == RESERVED_SPINS {
                    return Err(PopFail::Reserved);
                }
                spins += 1;
                futex::spin_loop();
                continue;
            }
            // SYNC POINT: pairs with `publish`: a FULL word makes the payload visible.
            let w = self.seq(head).load(Acquire);
            match slot_state(w, head, self.capacity) {
                Slot::Other => {
                    if self.still(head) {
                        return Err(self.impossible(head, w));
                    }
                }
                Slot::Void => {
                    // A tombstone: step over it (taking nothing).
                    if self.take(head, 1) {
                        self.free_event().notify();
                    }
                }
                Slot::Free => {
                    // Empty when `tail` is `head`; a claim in flight when `tail` is past it
                    // (never behind it).
                    let tail = self.tail.load(SeqCst);
                    if tail == head {
                        return Ok((head, w, Slot::Free));
                    }
                    if tail > head && tail - head <= self.capacity {
                        return Ok((head, w, Slot::InFlight));
                    }
                    if self.still(head) {
                        return Err(PopFail::Corrupt(format!(
                            "impossible positions: head {head} tail {tail} capacity {}",
                            self.capacity
                        )));
                    }
                }
                s => return Ok((head, w, s)),
            }
        }
    }

    /// The front for a single get: `Ok(None)` when empty, the position of a published message,
    /// or [`PopFail::Pending`] for an unpublished claim.
    #[inline]
    pub(super) fn front_full(&self) -> Result<Option<u64>, PopFail> {
        let (head, w, s) = self.front()?;
        match s {
            Slot::Full => Ok(Some(head)),
            Slot::Claimed(..) | Slot::InFlight => Err(PopFail::Pending { pos: head, word: w }),
            _ => Ok(None),
        }
    }

    /// The checked length of position `pos`; `Ok(None)` if the read raced a rewrite.
    pub(super) fn len_at(&self, head: u64, pos: u64) -> Result<Option<usize>, PopFail> {
        let len = self.raw_len(pos);
        if len <= self.message_size as u64 {
            return Ok(Some(len as usize));
        }
        if self.still(head) {
            if len & LARGE != 0 && len & !LARGE <= self.message_size as u64 {
                return Err(PopFail::Large);
            }
            return Err(self.oversized(pos, len));
        }
        Ok(None)
    }

    /// The commit point of a get: claims positions `head..head + n` if nobody moved `head`.
    pub(super) fn take(&self, head: u64, n: u64) -> bool {
        acquire_fence();
        // SYNC POINT: commit of a get; the Release half pairs with the producer's Acquire load
        // of `head` before it reuses these slots.
        self.head
            .compare_exchange(head, head + n, SeqCst, Relaxed)
            .is_ok()
    }

    /// Takes the front message into `buf`; returns its length, or `None` if the ring is empty.
    /// A message longer than `buf` stays queued (`TooSmall`).
    pub(crate) fn pop_into(&self, buf: &mut [u8]) -> Result<Option<usize>, PopFail> {
        Ok(self.pop_into_at(buf)?.map(|(_, len)| len))
    }

    /// [`pop_into`](Self::pop_into) that also returns the message's position (the value of
    /// `head` its claim moved from), for typed readers that name a message they refuse.
    pub(crate) fn pop_into_at(&self, buf: &mut [u8]) -> Result<Option<(u64, usize)>, PopFail> {
        loop {
            let Some(head) = self.front_full()? else {
                return Ok(None);
            };
            let Some(len) = self.len_at(head, head)? else {
                continue;
            };
            if len > buf.len() {
                if self.still(head) {
                    return Err(PopFail::TooSmall {
                        needed: len,
                        available: buf.len(),
                    });
                }
                continue;
            }
            self.copy_to(head, &mut buf[..len]);
            if self.take(head, 1) {
                return Ok(Some((head, len)));
            }
        }
    }

    /// The front of the common get: its position, slot and length when it holds a published
    /// message within the slot size and no zero-copy reader holds it; `None` in every other
    /// case (empty, a claim or a tombstone at the front, a reservation, a large or
    /// oversized message), which the general path sorts out.
    #[inline(always)]
    fn front_one(&self) -> Option<(u64, &[AtomicU64], usize)> {
        let head = self.head.load(Acquire);
        if head & RESERVED != 0 {
            return None;
        }
        let slot = self.slot(head);
        // SYNC POINT: pairs with `publish`, as in `front`.
        if slot[1].load(Acquire) != word(head, FULL) {
            return None;
        }
        let len = slot[0].load(Relaxed);
        // (A descriptor's `LARGE` bit makes its length word larger than any slot.)
        if len > self.message_size as u64 {
            return None;
        }
        Some((head, slot, len as usize))
    }

    /// The common get in one step: when the front holds a published message that fits `buf`
    /// ([`front_one`](Self::front_one)), copies it out and takes it with one CAS of `head` (the
    /// steps of [`pop_into`](Self::pop_into), in its order) and returns its length. Returns
    /// `None`, having taken nothing, in every other case: the caller then takes the general
    /// path. A message lost to another consumer (the CAS failed: `head` moved) is followed by
    /// a try at the new front, [`ONE_STEP_TRIES`] tries in all, so that consumers racing each
    /// other stay on this path. Call [`Event::notify`](super::Event::notify) on the free event
    /// after a `Some`.
    #[inline]
    pub(crate) fn pop_one_into(&self, buf: &mut [u8]) -> Option<usize> {
        let (head, slot, len) = self.front_one()?;
        read_words(&slot[2..], buf.get_mut(..len)?);
        if self.take(head, 1) {
            return Some(len);
        }
        self.pop_one_into_again(buf)
    }

    /// [`pop_one_into`](Self::pop_one_into) after a lost race: tries at the new front.
    #[cold]
    #[inline(never)]
    pub(super) fn pop_one_into_again(&self, buf: &mut [u8]) -> Option<usize> {
        for _ in 1..ONE_STEP_TRIES {
            let (head, slot, len) = self.front_one()?;
            read_words(&slot[2..], buf.get_mut(..len)?);
            if self.take(head, 1) {
                return Some(len);
            }
        }
        None
    }

    /// [`pop_one_into`](Self::pop_one_into) into a new vector of the message's length.
    #[inline]
    pub(crate) fn pop_one_vec(&self) -> Option<Vec<u8>> {
        let (head, slot, len) = self.front_one()?;
        let mut v = vec![0; len];
        read_words(&slot[2..], &mut v);
        if self.take(head, 1) {
            return Some(v);
        }
        self.pop_one_vec_again(v)
    }

    /// [`pop_one_vec`](Self::pop_one_vec) after a lost race: tries at the new front, reusing
    /// the vector.
    #[cold]
    #[inline(never)]
    pub(super) fn pop_one_vec_again(&self, mut v: Vec<u8>) -> Option<Vec<u8>> {
        for _ in 1..ONE_STEP_TRIES {
            let (head, slot, len) = self.front_one()?;
            v.resize(len, 0);
            read_words(&slot[2..], &mut v);
            if self.take(head, 1) {
                return Some(v);
            }
        }
        None
    }

    /// Takes the front message into a new vector, or `None` if the ring is empty.
    pub(crate) fn pop_vec(&self) -> Result<Option<Vec<u8>>, PopFail> {
        let mut v = Vec::new();
        loop {
            let Some(head) = self.front_full()? else {
                return Ok(None);
            };
            let Some(len) = self.len_at(head, head)? else {
                continue;
            };
            v.resize(len, 0);
            self.copy_to(head, &mut v);
            if self.take(head, 1) {
                return Ok(Some(v));
            }
        }
    }

    /// Takes up to `max` front messages (and no more than [`BATCH_BYTES`] of slots, but at least
    /// one): their bytes end to end in `bytes`, their lengths in `lens` (both cleared first).
    /// Tombstones among them are stepped over. Returns how many (0 if empty or `max` is 0).
    pub(crate) fn pop_batch(
        &self,
        max: usize,
        bytes: &mut Vec<u8>,
        lens: &mut Vec<usize>,
    ) -> Result<usize, PopFail> {
        if max == 0 {
            return Ok(0);
        }
        'retry: loop {
            bytes.clear();
            lens.clear();
            let Some(head) = self.front_full()? else {
                return Ok(0);
            };
            let n = (max as u64).min(self.batch_limit()).min(self.capacity);
            // One allocation and one zero-fill for the whole batch (cut back to what the
            // messages fill); the slot index advances without a division. A slot larger than
            // BATCH_BYTES (then `n` is 1) gets only the room its message fills.
            let room = n as usize * self.message_size;
            bytes.resize(if room <= BATCH_BYTES { room } else { 0 }, 0);
            lens.reserve(n as usize);
            let mut at = 0;
            let mut base = self.base(head);
            let end = self.capacity as usize * self.words;
            let mut pos = head;
            while (lens.len() as u64) < n && pos - head < self.capacity {
                // SYNC POINT: pairs with `publish` (Acquire: the payload is visible).
                let w = self.slots[base + 1].load(Acquire);
                match slot_state(w, pos, self.capacity) {
                    Slot::Full => {
                        let len = self.slots[base].load(Relaxed);
                        if len & LARGE != 0 && pos > head {
                            // A large message ends the batch; it is taken on its own.
                            break;
                        }
                        if len > self.message_size as u64 {
                            if self.still(head) {
                                if len & LARGE != 0 && len & !LARGE <= self.message_size as u64 {
                                    return Err(PopFail::Large);
                                }
                                return Err(self.oversized(pos, len));
                            }
                            continue 'retry;
                        }
                        let len = len as usize;
                        if bytes.len() < at + len {
                            bytes.resize(at + len, 0);
                        }
                        self.copy_words(base + 2, &mut bytes[at..at + len]);
                        at += len;
                        lens.push(len);
                    }
                    Slot::Void => {}
                    _ => break,
                }
                pos += 1;
                base += self.words;
                if base >= end {
                    base = 0;
                }
            }
            bytes.truncate(at);
            if self.take(head, pos - head) {
                if lens.is_empty() {
                    // Only tombstones: they are gone; look again.
                    self.free_event().notify();
                    continue;
                }
                return Ok(lens.len());
            }
        }
    }

    /// The most messages one batch get claims: as many as fill [`BATCH_BYTES`], at least one,
    /// so that the copy and the caller's reading of it stay in the cache.
    fn batch_limit(&self) -> u64 {
        (BATCH_BYTES / self.message_size.max(1)).max(1) as u64
    }

    /// Test hook: a consumer that copies the front message and dies before its claim (its
    /// CAS of `head`). Returns the copy.
    #[cfg(any(test, loom, feature = "test-hooks"))]
    pub(crate) fn copy_and_die(&self) -> Option<Vec<u8>> {
        if let Ok(Some(head)) = self.front_full()
            && let Ok(Some(len)) = self.len_at(head, head)
        {
            let mut v = vec![0; len];
            self.copy_to(head, &mut v);
            return Some(v);
        }
        None
    }
}
