//! The bounded ring: an array of fixed-size slots with monotonic positions, whose puts and gets
//! take no lock (`lockfree.rs`), and a robust lock for what is rare: repair after a death,
//! `task_done`, `join`, `close`, the zero-copy gets and the puts of a process that found the
//! participant registry full.
//!
//! - `head`, `tail` and `done` are positions that only grow; slot `p % capacity` holds message `p`.
//! - A put names position `tail` in an intent lane of its registry row, claims it with one CAS
//!   of `tail`, writes, then publishes with one store of the slot's sequence word. A get copies
//!   slot `head` out, then claims it with one CAS of `head` (a failed CAS discards the copy).
//!   `task_done` stores `done + 1` under the lock; `close` stores the `CLOSED` bit under it. A
//!   death before the commit store (or CAS) leaves the operation undone; after it, done. A claim
//!   whose owner died is voided under the lock.
//! - `len = tail - head`, `unfinished = tail - done`, `free = capacity - len`. Only `done`
//!   holds still under the lock: positions are checked in an order that tells damage from a
//!   ring that moved between two loads (`Core::check_positions`).
//! - Sleepers wait on two event counts (`items`, `free`) and on the join generation; nothing
//!   derived needs rebuilding after a death, so a repair voids the dead holder's claims, bumps
//!   the join generation and wakes everyone.
//!
//! This module also places a ring in a segment (`Segment::ring`, the open-time check and the
//! creator's initialisation), so that `segment` knows nothing of rings, and keeps a ring's view
//! together with its segment (`HeldRing`), built once per handle. The state tables are in
//! `docs/protocol.md`.

#![allow(unsafe_code)]

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use crate::error::OpenError;
use crate::layout::LANES;
use crate::layout::Participant;
use crate::layout::{self, Params, RING_CONTROL_SIZE, RingControl, RingLayout, VOIDED_PENDING};
use crate::lockfree::{Claim, Core, Event, LOCK_OWNER, RESERVED, index_mask};
pub(crate) use crate::lockfree::{PopFail, PushFail};
use crate::segment::{Fresh, Segment};
use crate::sync::atomic::AtomicU64;
use crate::sync::atomic::Ordering::SeqCst;
use crate::sync::{LockError, LockState, MutexGuard};

/// A ring over a validated layout. Cheap to make; borrows the segment it lives in.
pub(crate) struct Ring<'a> {
    ctrl: &'a RingControl,
    core: Core<'a>,
}

/// Why a ring could not be locked.
#[derive(Debug)]
pub(crate) enum RingError {
    /// The deadline passed while someone else held the lock.
    Timeout,
    /// The shared state is impossible, or the lock is broken.
    Corrupt(String),
}

impl From<LockError> for RingError {
    fn from(e: LockError) -> Self {
        match e {
            LockError::WouldBlock => RingError::Timeout,
            other => RingError::Corrupt(other.to_string()),
        }
    }
}

impl<'a> Ring<'a> {
    /// A ring over `ctrl` and the slot words `slots` (`capacity * stride / 8` of them).
    fn new(ctrl: &'a RingControl, slots: &'a [AtomicU64], layout: &RingLayout) -> Self {
        debug_assert_eq!(slots.len(), layout.capacity as usize * layout.stride / 8);
        Ring {
            ctrl,
            core: Core {
                head: &ctrl.head.0,
                tail: &ctrl.tail.0.tail,
                head_seen: &ctrl.tail.0.head_seen,
                flags: &ctrl.counters.0.flags,
                items: &ctrl.items.0,
                free: &ctrl.free.0,
                slots,
                capacity: layout.capacity,
                mask: index_mask(layout.capacity),
                message_size: layout.message_size,
                words: layout.stride / 8,
                intents: &ctrl.intents.0,
                lanes: LANES,
            },
        }
    }

    /// Initialises a zeroed ring: its lock.
    ///
    /// # Safety
    ///
    /// Only the creator may call this, once, before any other thread or process can reach the
    /// ring.
    unsafe fn init(&self) -> std::io::Result<()> {
        // SAFETY: forwarded to the caller.
        unsafe { self.ctrl.lock.0.init() }
    }

    pub(crate) fn control(&self) -> &'a RingControl {
        self.ctrl
    }

    /// The lock-free consumer side.
    pub(crate) fn core(&self) -> &Core<'a> {
        &self.core
    }

    pub(crate) fn items(&self) -> Event<'a> {
        self.core.items_event()
    }

    pub(crate) fn free(&self) -> Event<'a> {
        self.core.free_event()
    }

    /// Messages waiting, read without the lock (exact whenever no put or get is in flight).
    pub(crate) fn len(&self) -> u64 {
        self.core.len()
    }

    /// Unfinished tasks, read without the lock.
    pub(crate) fn unfinished(&self) -> u64 {
        let done = self.ctrl.counters.0.done.load(SeqCst);
        let tail = self.ctrl.tail.0.tail.load(SeqCst);
        tail.saturating_sub(done)
    }

    /// The ring's state bits, read without the lock.
    pub(crate) fn flags(&self) -> u32 {
        self.core.flags()
    }

    /// Takes the front message into `buf` (see [`Core::pop_into`]).
    pub(crate) fn pop_into(&self, buf: &mut [u8]) -> Result<Option<usize>, PopFail> {
        self.core.pop_into(buf)
    }

    /// Takes the front message into a new vector.
    pub(crate) fn pop_vec(&self) -> Result<Option<Vec<u8>>, PopFail> {
        self.core.pop_vec()
    }

    /// Checks the positions without the lock: `done <= tail`, `head <= tail <= head +
    /// capacity`, read in an order that no peer's put or get can make fail
    /// ([`Core::check_positions`]). A reserved front (a zero-copy reader, live or dead) is
    /// still at its position.
    pub(crate) fn check_unlocked(&self) -> Result<(), String> {
        self.core.check_positions(&self.ctrl.counters.0.done, true)
    }

    /// Takes the lock (until `deadline`, or without limit). If the previous owner died holding
    /// it, checks the positions, marks the lock consistent and wakes every sleeper;
    /// [`Locked::repaired`] then says so.
    pub(crate) fn lock(&self, deadline: Option<Instant>) -> Result<Locked<'_, 'a>, RingError> {
        let guard = match deadline {
            Some(d) => self.ctrl.lock.0.lock_until(d)?,
            None => self.ctrl.lock.0.lock()?,
        };
        let repaired = guard.owner_died();
        if repaired {
            // A zero-copy reader that died inside its read took nothing: its reservation of
            // the front is cleared before anything else looks at `head`.
            self.core.clear_reservation();
        }
        let mut locked = Locked {
            ring: self,
            guard,
            repaired,
        };
        locked.check().map_err(RingError::Corrupt)?;
        if repaired {
            // A holder that died inside a void is finished; claims made under the lock by a
            // holder that died are voided (their puts never returned).
            locked.finish_void();
            locked.void_claims_of(LOCK_OWNER, &crate::liveness::process_alive);
            // Nothing derived to rebuild: the dead owner's put either stored `tail` or did
            // not. Joiners re-check on a new generation.
            self.ctrl.joined.0.fetch_add(1);
            locked
                .guard
                .make_consistent()
                .map_err(|e| RingError::Corrupt(format!("cannot mark the lock consistent: {e}")))?;
            self.wake_everyone();
        }
        Ok(locked)
    }

    /// The participant registry.
    pub(crate) fn participants(&self) -> &'a [Participant] {
        &self.ctrl.participants
    }

    /// Whether registry row `row` (an owner number) belongs to a live process, by `alive(pid,
    /// start)`; the lock holder's row never does for a caller that holds the lock.
    fn row_alive(&self, row: u8, alive: &dyn Fn(u32, u64) -> bool) -> bool {
        let Some(p) = (row as usize)
            .checked_sub(1)
            .and_then(|i| self.ctrl.participants.get(i))
        else {
            return false;
        };
        let pid = p.id.load(SeqCst) as u32;
        pid != 0 && alive(pid, p.start.load(SeqCst))
    }

    /// Whether a live process other than the lock holder covers position `pos` with an
    /// intent (for a holder of the lock deciding whether a claim in flight is dead).
    pub(crate) fn live_intent(&self, pos: u64, alive: &dyn Fn(u32, u64) -> bool) -> bool {
        self.core
            .cover(pos)
            .into_iter()
            .any(|row| self.row_alive(row, alive))
    }

    /// Wakes every sleeper on every word of the ring.
    pub(crate) fn wake_everyone(&self) {
        self.items().notify_all();
        self.free().notify_all();
        self.ctrl.joined.0.wake_all();
    }
}

impl fmt::Debug for Ring<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ring")
            .field("capacity", &self.core.capacity)
            .field("message_size", &self.core.message_size)
            .field("control", self.ctrl)
            .finish()
    }
}

/// A locked ring: producers and the rare operations run inside it. Dropping it unlocks.
pub(crate) struct Locked<'r, 'a> {
    ring: &'r Ring<'a>,
    guard: MutexGuard<'r>,
    /// Whether this lock repaired the state left by an owner that died.
    repaired: bool,
}

impl Locked<'_, '_> {
    pub(crate) fn core(&self) -> &Core<'_> {
        &self.ring.core
    }

    /// Checks the positions on taking the lock ([`Core::check_positions`]). Only `done` holds
    /// still under the lock: lock-free producers move `tail` and consumers `head` meanwhile,
    /// so the check reads them in the order that tells damage from a moving ring. `head` must
    /// not be reserved: only a lock holder reserves, and a dead one's bit was cleared by the
    /// repair before this check.
    fn check(&self) -> Result<(), String> {
        self.core()
            .check_positions(&self.ring.ctrl.counters.0.done, false)
    }

    fn tail(&self) -> u64 {
        self.ring.ctrl.tail.0.tail.load(SeqCst)
    }

    pub(crate) fn unfinished(&self) -> u64 {
        self.tail()
            .saturating_sub(self.ring.ctrl.counters.0.done.load(SeqCst))
    }

    /// Sets (`on`) or clears ring state bits. The caller wakes sleepers after unlocking.
    pub(crate) fn set_flags(&mut self, bits: u32, on: bool) {
        let c = &self.ring.ctrl.counters.0.flags;
        // Commit point: one store of the new flags.
        if on {
            c.fetch_or(bits, SeqCst);
        } else {
            c.fetch_and(!bits, SeqCst);
        }
    }

    /// Zero-copy reader: the payload of position `pos`, which this lock holder reserved
    /// (`Core::reserve_front`) and has not released, lent in place (on little-endian
    /// targets; elsewhere copied into `scratch`). The bytes are not a copy: they are the
    /// slot, unchanged until the reservation ends.
    pub(crate) fn reserved_bytes<'l>(
        &'l self,
        pos: u64,
        scratch: &'l mut Vec<u8>,
    ) -> Result<&'l [u8], PopFail> {
        let core = self.core();
        let len = core.reserved_len(pos)?;
        let words = core.payload(pos);
        debug_assert!(len <= words.len() * 8);
        #[cfg(target_endian = "little")]
        {
            let _ = scratch;
            // SAFETY: `words` is `ceil(message_size / 8)` initialised `AtomicU64`s of the
            // segment (borrowed for `'a`, longer than `'l`), and `len <= message_size` was just
            // checked, so the `len` bytes are in bounds; `AtomicU64` has the size, alignment
            // and bit validity of `u64`, and on a little-endian target its bytes in memory are
            // the payload bytes in order (`Core::write` stores them as little-endian words).
            // Nothing writes these bytes while the slice lives: slots are written only by
            // `Core::write`, which only a holder of the ring's lock calls, and we hold that
            // lock for all of `'l` (the slice borrows `self`); besides, a producer reuses this
            // slot only once `head` has passed `pos`, and `head` stays `pos | RESERVED` until
            // the reservation ends after the slice is gone. Lock-free consumers that looked
            // before the reservation may still load these words (atomically): reads do not
            // conflict with reads, so there is no data race. A process that ignores the
            // protocol is outside the trust model (README, "Trust model").
            Ok(unsafe { std::slice::from_raw_parts(words.as_ptr().cast::<u8>(), len) })
        }
        #[cfg(not(target_endian = "little"))]
        {
            core.copy_reserved(pos, scratch, len);
            Ok(scratch)
        }
    }

    /// Voids the claim `w` at `pos` (its owner is dead, or it was made under the lock by a
    /// holder that died) if it still stands, counts its positions as done tasks (they will
    /// never be delivered) and as voided positions ([`voided`](Self::voided)). A journal in
    /// the counters line makes the three steps one: a locker after a holder that died in
    /// between finishes it ([`finish_void`](Self::finish_void)). Returns how many positions
    /// were voided. The caller wakes sleepers after unlocking.
    pub(crate) fn void(&mut self, pos: u64, w: u64) -> u64 {
        self.void_steps(pos, w, u32::MAX)
    }

    /// [`void`](Self::void), stopping after its first `steps` stores to shared memory (the
    /// tests' holder that dies inside a void; `u32::MAX`: all of them).
    fn void_steps(&mut self, pos: u64, w: u64, steps: u32) -> u64 {
        let core = self.ring.core;
        if !core.holds(pos, w) {
            return 0;
        }
        let c = &self.ring.ctrl.counters.0;
        let done = c.done.load(SeqCst);
        let after = done + Core::claim_extent(w);
        // Under the lock, after the repair of any earlier void: no pending bit is set.
        let voided = c.voided.load(SeqCst) & !VOIDED_PENDING;
        c.void_pos.store(pos, SeqCst);
        c.void_done.store(after, SeqCst);
        c.voided.store(voided | VOIDED_PENDING, SeqCst);
        if steps == 1 {
            return 0;
        }
        // Commit point: the CAS of the claim's first word to a tombstone.
        let n = core.void_claim(pos, w);
        if steps == 2 {
            return n;
        }
        // The count first, then `done`: a repair that finds the pending bit set knows that
        // `done` was not stored either, and so how many positions the claim had.
        c.voided.store(voided + n, SeqCst);
        if steps == 3 {
            return n;
        }
        if n > 0 {
            c.done.store(after, SeqCst);
            if self.unfinished() == 0 {
                self.ring.ctrl.joined.0.fetch_add(1);
            }
        }
        if steps == 4 {
            return n;
        }
        c.void_done.store(0, SeqCst);
        n
    }

    /// Repair: finishes a void whose locker died between its journal and its end: counts a
    /// committed void's positions as voided (if the pending bit says they were not) and as
    /// done (if `done` is short); an uncommitted one changes nothing (the claim still stands).
    fn finish_void(&mut self) {
        let c = &self.ring.ctrl.counters.0;
        let after = c.void_done.load(SeqCst);
        if after == 0 {
            return;
        }
        let pos = c.void_pos.load(SeqCst);
        // Committed: the tombstone is there, or consumers stepped over it already (they never
        // pass a claim without voiding it, which needs this lock, hence this repair first).
        let core = self.ring.core;
        let committed =
            core.holds(pos, Core::void_word(pos)) || core.head.load(SeqCst) & !RESERVED > pos;
        let done = c.done.load(SeqCst);
        let voided = c.voided.load(SeqCst);
        if voided & VOIDED_PENDING != 0 {
            // The count was not stored, hence neither was `done`: `after - done` positions.
            let count = voided & !VOIDED_PENDING;
            let n = if committed {
                after.saturating_sub(done)
            } else {
                0
            };
            c.voided.store(count + n, SeqCst);
        }
        if committed && done < after {
            c.done.store(after, SeqCst);
        }
        c.void_done.store(0, SeqCst);
    }

    /// Positions ever voided on this ring (every void is counted under the lock, and a void
    /// cut short by its holder's death is counted by this locker's repair).
    pub(crate) fn voided(&self) -> u64 {
        self.ring.ctrl.counters.0.voided.load(SeqCst) & !VOIDED_PENDING
    }

    /// Frees the registry entries of dead processes (`alive(pid, start)` says which), after
    /// voiding every claim they left, so that a recycled entry never makes a dead claim look
    /// alive. Returns how many entries it freed.
    pub(crate) fn reclaim(&mut self, alive: impl Fn(u32, u64) -> bool) -> usize {
        let mut freed = 0;
        for (i, p) in self.ring.ctrl.participants.iter().enumerate() {
            let id = p.id.load(SeqCst);
            let pid = id as u32;
            if pid == 0 || alive(pid, p.start.load(SeqCst)) {
                continue;
            }
            self.void_claims_of(i as u8 + 1, &alive);
            let next = ((id >> 32).wrapping_add(1) & 0xffff_ffff) << 32;
            if p.id.compare_exchange(id, next, SeqCst, SeqCst).is_ok() {
                freed += 1;
            }
        }
        freed
    }

    /// Voids every claim that row `row`, whose process is dead (or the lock holder's row after
    /// its death), left standing: its marked claims, and the claims in flight its intent lanes
    /// cover that no live process covers too (a live producer that named the same position
    /// and lost the race for it still names it for a moment). Then clears the row's lanes, so
    /// that the row can be given to another process.
    pub(crate) fn void_claims_of(&mut self, row: u8, alive: &dyn Fn(u32, u64) -> bool) {
        for (pos, w) in self.ring.core.claims_of(row) {
            self.void(pos, w);
        }
        for (pos, w) in self.ring.core.in_flight_of(row) {
            if !self.ring.live_intent(pos, alive) {
                self.void(pos, w);
            }
        }
        self.ring.core.clear_lanes(row);
    }

    /// Test hook: a producer under the lock that claims and writes the next slot and dies
    /// before publishing it.
    #[cfg(test)]
    fn write_and_die(&mut self, msg: &[u8]) {
        let _ = self.ring.core.claim_and_die(msg, LOCK_OWNER);
    }

    /// Marks `n` tasks done. Returns the unfinished count left, or `Err(left)` without changing
    /// anything if fewer than `n` are unfinished. Reaching zero bumps the join generation.
    pub(crate) fn task_done(&mut self, n: u64) -> Result<u64, u64> {
        let done = self.ring.ctrl.counters.0.done.load(SeqCst);
        // `done` holds still under the lock, and `tail` only grows: `check` at lock time
        // proved done <= tail.
        let left = self.tail() - done;
        if n > left {
            return Err(left);
        }
        // Commit point: one store.
        self.ring.ctrl.counters.0.done.store(done + n, SeqCst);
        if left == n {
            self.ring.ctrl.joined.0.fetch_add(1);
        }
        Ok(left - n)
    }

    /// The join generation (changes whenever unfinished tasks reach zero, and after a repair).
    pub(crate) fn join_generation(&self) -> u32 {
        self.ring.ctrl.joined.0.load()
    }
}

impl fmt::Debug for Locked<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Locked")
            .field("tail", &self.tail())
            .field("repaired", &self.repaired)
            .finish()
    }
}

/// A producer: claims slots without the lock as participant `owner` (a registry entry + 1,
/// naming its claims in its row's intent lanes, `lane` first), or, when the registry is full
/// or every lane of its row is busy, as [`LOCK_OWNER`] while holding the lock.
pub(crate) struct Producer<'r, 'a> {
    ring: &'r Ring<'a>,
    owner: u8,
    lane: usize,
    locked: Option<Locked<'r, 'a>>,
}

impl<'r, 'a> Producer<'r, 'a> {
    /// A producer named `owner` that tries intent lane `lane` of its row first; `locked` must
    /// be given exactly when `owner` is [`LOCK_OWNER`].
    pub(crate) fn new(
        ring: &'r Ring<'a>,
        owner: u8,
        lane: usize,
        locked: Option<Locked<'r, 'a>>,
    ) -> Self {
        debug_assert_eq!(owner == LOCK_OWNER, locked.is_some());
        Producer {
            ring,
            owner,
            lane,
            locked,
        }
    }

    fn core(&self) -> &Core<'a> {
        &self.ring.core
    }

    /// Whether a put can go ahead now: `Closed`/`ReceiversGone` first, then `Full`.
    pub(crate) fn can_push(&self) -> Result<(), PushFail> {
        self.core().reserve(1).map(|_| ())
    }

    /// Claims up to `wanted` slots ([`Core::claim`]); a claim withdrawn because the ring was
    /// closed under it is voided here (under the lock) and reported as the close.
    fn claim(&mut self, wanted: usize) -> Result<Claim, PushFail> {
        match self.core().claim(wanted, self.owner, self.lane) {
            Err(PushFail::Withdrawn(c)) => {
                withdraw(self.ring, self.locked.as_mut(), c);
                Err(self.core().closed_fail())
            }
            r => r,
        }
    }

    /// Claims the next slot, copies `msg` into it and publishes it.
    pub(crate) fn push(&mut self, msg: &[u8]) -> Result<(), PushFail> {
        let max = self.core().message_size;
        if msg.len() > max {
            return Err(PushFail::TooLarge {
                len: msg.len(),
                max,
            });
        }
        let c = self.claim(1)?;
        self.core().write(c.pos, msg);
        self.core().publish(c);
        Ok(())
    }

    /// Claims the next slot and publishes descriptor `d` of a large message (`crate::large`)
    /// in it.
    pub(crate) fn push_descriptor(&mut self, d: &[u8]) -> Result<(), PushFail> {
        let c = self.claim(1)?;
        self.core().write_descriptor(c.pos, d);
        self.core().publish(c);
        Ok(())
    }

    /// Claims the next slot, lets `fill` write the message (up to `message_size` bytes, into a
    /// private buffer that is then copied into the slot) and return its length, then publishes
    /// it. A length over the slot size (or a panic in `fill`) voids the claim: nothing is
    /// published.
    ///
    /// `fill` is taken out of its option only once the slot is claimed: a failed claim (`Full`,
    /// `Closed`) leaves it for the next try.
    ///
    /// # Panics
    ///
    /// If `fill` is `None` when a slot is claimed (the claim is then voided).
    pub(crate) fn push_with(
        &mut self,
        fill: &mut Option<impl FnOnce(&mut [u8]) -> usize>,
    ) -> Result<(), PushFail> {
        let c = self.claim(1)?;
        let max = self.core().message_size;
        let mut undo = Undo {
            ring: self.ring,
            claim: c,
            locked: self.locked.take(),
            armed: true,
        };
        let mut buf = vec![0u8; max];
        let Some(fill) = fill.take() else {
            panic!("push_with called again after its fill ran");
        };
        let len = fill(&mut buf);
        if len > max {
            drop(undo);
            return Err(PushFail::TooLarge { len, max });
        }
        self.core().write(c.pos, &buf[..len]);
        self.core().publish(c);
        undo.armed = false;
        self.locked = undo.locked.take();
        Ok(())
    }

    /// Puts as many of `msgs` as there are free slots (at most [`MAX_CLAIM`](crate::lockfree::MAX_CLAIM)),
    /// with one claim and one commit (all or none of them is ever delivered); returns how many.
    /// Refuses the whole batch, before claiming anything, if any message is too large.
    pub(crate) fn push_many<M: AsRef<[u8]>>(&mut self, msgs: &[M]) -> Result<usize, PushFail> {
        let max = self.core().message_size;
        if let Some(m) = msgs.iter().find(|m| m.as_ref().len() > max) {
            return Err(PushFail::TooLarge {
                len: m.as_ref().len(),
                max,
            });
        }
        if msgs.is_empty() {
            return self.can_push().map(|()| 0);
        }
        let c = self.claim(msgs.len())?;
        for (i, m) in msgs[..c.n].iter().enumerate() {
            self.core().write(c.pos + i as u64, m.as_ref());
        }
        self.core().publish(c);
        Ok(c.n)
    }
}

/// Voids claim `c` of this (live) process, withdrawn because the ring was closed under it,
/// under the lock (`locked`, or taken here), then clears its lane and wakes sleepers: the
/// positions become tombstones counted as done, as a dead producer's would.
pub(crate) fn withdraw(ring: &Ring<'_>, locked: Option<&mut Locked<'_, '_>>, c: Claim) {
    let w = ring.core.seq(c.pos).load(SeqCst);
    match locked {
        Some(l) => {
            l.void(c.pos, w);
        }
        None => {
            if let Ok(mut l) = ring.lock(None) {
                l.void(c.pos, w);
            }
        }
    }
    ring.core.release_lane(c);
    ring.items().notify_all();
    ring.free().notify();
    ring.ctrl.joined.0.wake_all();
}

/// Voids a claim of this process when dropped armed (a `fill` that panicked or returned a
/// length over the slot size), under the lock: the slot becomes a tombstone at once instead
/// of waiting for a consumer to find its owner dead, which it is not.
struct Undo<'r, 'a> {
    ring: &'r Ring<'a>,
    claim: Claim,
    locked: Option<Locked<'r, 'a>>,
    armed: bool,
}

impl Drop for Undo<'_, '_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        withdraw(self.ring, self.locked.as_mut(), self.claim);
    }
}

/// A view of one ring built once, together with the segment it lives in, which it keeps
/// mapped: a handle holds one and lends [`ring`](Self::ring) to every put and get, which then
/// build nothing and check nothing (building and checking the view was about 150 instructions
/// of each put + get).
pub(crate) struct HeldRing {
    /// Borrows the mapping of `seg` (never the `Segment` value itself, which may move).
    ring: Ring<'static>,
    seg: Arc<Segment>,
}

impl HeldRing {
    /// Checks the ring described by `layout` in `seg` and keeps its view.
    ///
    /// # Errors
    ///
    /// As [`Segment::ring`].
    pub(crate) fn new(seg: Arc<Segment>, layout: &RingLayout) -> Result<Self, OpenError> {
        let view = seg.ring(layout)?;
        // SAFETY: `view` borrows the mapping of `*seg` (its control block and slots), which
        // stays at the same address until the last `Arc` of that `Segment` is dropped: a
        // `Segment` never remaps (its `ptr` and `len` are fixed when it is made) and unmaps
        // only in its `Drop`. This value holds one of those `Arc`s for as long as the view is
        // kept, and the view is lent out only for the lifetime of a borrow of `self`
        // ([`ring`](Self::ring)), so no reference of the `'static` view outlives the mapping.
        // `Ring` has no `Drop` that could touch the mapping while `seg` is dropped.
        let ring = unsafe { std::mem::transmute::<Ring<'_>, Ring<'static>>(view) };
        Ok(HeldRing { ring, seg })
    }

    /// The ring, for as long as this value is borrowed.
    #[inline]
    pub(crate) fn ring(&self) -> &Ring<'_> {
        &self.ring
    }

    /// The segment the ring lives in.
    pub(crate) fn segment(&self) -> &Arc<Segment> {
        &self.seg
    }
}

impl fmt::Debug for HeldRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.ring.fmt(f)
    }
}

impl Segment {
    /// The ring described by `layout`.
    ///
    /// # Errors
    ///
    /// [`OpenError::Corrupt`] if the ring does not fit in the segment or is misaligned.
    pub(crate) fn ring(&self, layout: &RingLayout) -> Result<Ring<'_>, OpenError> {
        if layout.slots < layout.control + RING_CONTROL_SIZE
            || layout.stride < layout.message_size + layout::SLOT_HEADER
            || !layout.stride.is_multiple_of(8)
            || layout.capacity == 0
        {
            return Err(OpenError::Corrupt(format!(
                "a ring of {} slots of stride {} at offset {} does not fit a segment of {} bytes",
                layout.capacity,
                layout.stride,
                layout.control,
                self.len()
            )));
        }
        let control = self.at::<RingControl>(layout.control)?;
        let words = usize::try_from(layout.capacity)
            .ok()
            .and_then(|c| c.checked_mul(layout.stride / 8))
            .ok_or_else(|| {
                OpenError::Corrupt(format!(
                    "a ring of {} slots of stride {} overflows",
                    layout.capacity, layout.stride
                ))
            })?;
        let slots = self.slice_at::<AtomicU64>(layout.slots, words)?;
        Ok(Ring::new(control, slots, layout))
    }

    /// Checks, when the segment is opened, that the header's geometry is the one its own
    /// parameters produce (`expected`), and then each ring's positions, without taking its
    /// lock (a live or dead holder of the lock cannot make an open wait).
    ///
    /// # Errors
    ///
    /// [`OpenError::Corrupt`] naming the mismatch or the impossible ring state.
    pub(crate) fn check_opened<'r>(
        &self,
        found: &Params,
        expected: &Params,
        rings: impl IntoIterator<Item = &'r RingLayout>,
    ) -> Result<(), OpenError> {
        if found != expected {
            return Err(OpenError::Corrupt(format!(
                "header geometry ({found}) does not match its own layout ({expected})"
            )));
        }
        for layout in rings {
            let ring = self.ring(layout)?;
            // The lock's words are validated without taking it (a damaged owner or state word
            // is `Corrupt`; a dead owner is repaired by the next locker).
            match ring.control().lock.0.inspect() {
                LockState::Corrupt(s) => {
                    return Err(OpenError::Corrupt(format!("the ring's lock: {s}")));
                }
                LockState::NotRecoverable => {
                    return Err(OpenError::Corrupt(
                        "the ring's lock is not recoverable (a repair was abandoned)".into(),
                    ));
                }
                LockState::Free | LockState::Held { .. } => {}
            }
            ring.check_unlocked().map_err(OpenError::Corrupt)?;
        }
        Ok(())
    }
}

impl Fresh {
    /// Initialises the ring described by `layout` (its lock).
    ///
    /// # Errors
    ///
    /// [`OpenError::Corrupt`] for a layout that does not fit, [`OpenError::Io`] if pthread
    /// refuses.
    pub(crate) fn init_ring(&self, layout: &RingLayout) -> Result<(), OpenError> {
        let ring = self.ring(layout)?;
        // SAFETY: the segment is unpublished (a `Fresh`), so nobody else can reach the ring yet.
        unsafe {
            ring.init().map_err(|source| OpenError::System {
                what: "ring".into(),
                source,
            })?
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::{RING_CLOSED, RingLayout};
    use std::alloc::{Layout, alloc_zeroed, dealloc};

    /// A ring over zeroed heap memory aligned like a segment, as in a freshly created one.
    struct HeapRing {
        mem: *mut u8,
        alloc: Layout,
        layout: RingLayout,
    }

    impl HeapRing {
        fn new(capacity: u64, message_size: u64) -> HeapRing {
            let layout = RingLayout::at(0, capacity, message_size).unwrap();
            let alloc = Layout::from_size_align(layout.end(), 4096).unwrap();
            // SAFETY: a non-zero size (the control block alone is 896 bytes).
            let mem = unsafe { alloc_zeroed(alloc) };
            assert!(!mem.is_null());
            let hr = HeapRing { mem, alloc, layout };
            // SAFETY: fresh memory, not shared yet.
            unsafe { hr.ring().init().unwrap() };
            hr
        }

        fn ring(&self) -> Ring<'_> {
            // SAFETY: `mem` is 4096-aligned, zero-initialised (a valid bit pattern for every
            // atomic and for the pthread mutex before `init`), holds the whole layout, and lives
            // as long as the returned ring borrows `self`.
            unsafe {
                let ctrl = &*self.mem.cast::<RingControl>();
                let words = self.layout.capacity as usize * self.layout.stride / 8;
                let slots = std::slice::from_raw_parts(
                    self.mem.add(self.layout.slots).cast::<AtomicU64>(),
                    words,
                );
                Ring::new(ctrl, slots, &self.layout)
            }
        }
    }

    #[test]
    fn voids_are_counted_exactly_once_even_when_the_voider_dies_inside_one() {
        // steps: 1 journal (pending bit), 2 commit CAS, 3 count stored, 4 done stored,
        // 5 journal cleared (a void that finished).
        for steps in 1..=5u32 {
            let hr = HeapRing::new(4, 16);
            let ring = hr.ring();
            assert_eq!(ring.lock(None).unwrap().voided(), 0);
            producer(&ring).push(b"kept").unwrap();
            let pos = ring.core().claim_and_die(b"dead", 2).unwrap();
            let w = ring.core().seq(pos).load(SeqCst);
            std::thread::scope(|s| {
                s.spawn(|| {
                    let mut l = ring.lock(None).unwrap();
                    l.void_steps(pos, w, steps);
                    if steps < 5 {
                        // Dies holding the lock inside the void: the guard is never dropped.
                        std::mem::forget(l);
                    }
                });
            });
            let mut l = ring.lock(None).unwrap();
            assert_eq!(l.repaired, steps < 5, "steps {steps}");
            if steps == 1 {
                // Not committed: the claim still stands, uncounted; a later void counts it.
                assert_eq!(l.voided(), 0, "steps {steps}");
                assert_eq!(l.void(pos, w), 1);
            } else {
                assert!(
                    ring.core().holds(pos, Core::void_word(pos)),
                    "steps {steps}"
                );
                assert_eq!(l.void(pos, w), 0, "a void happens once");
            }
            assert_eq!(l.voided(), 1, "steps {steps}");
            assert_eq!(
                l.unfinished(),
                1,
                "steps {steps}: the voided position is done"
            );
            drop(l);
            assert_eq!(ring.pop_vec().unwrap(), Some(b"kept".to_vec()));
            assert_eq!(
                ring.pop_vec().unwrap(),
                None,
                "the tombstone is stepped over"
            );
            assert_eq!(ring.lock(None).unwrap().voided(), 1);
        }
    }

    #[test]
    fn a_void_whose_tombstone_was_stepped_over_before_the_repair_is_counted() {
        // The holder dies after its commit; a lock-free consumer steps over the tombstone and
        // a producer reuses the slot before anyone locks: the repair still counts the void.
        let hr = HeapRing::new(2, 16);
        let ring = hr.ring();
        let pos = ring.core().claim_and_die(b"dead", 2).unwrap();
        let w = ring.core().seq(pos).load(SeqCst);
        std::thread::scope(|s| {
            s.spawn(|| {
                let mut l = ring.lock(None).unwrap();
                l.void_steps(pos, w, 2);
                std::mem::forget(l);
            });
        });
        for m in [&b"a"[..], b"b", b"c"] {
            producer(&ring).push(m).unwrap();
            assert_eq!(ring.pop_vec().unwrap(), Some(m.to_vec()));
        }
        assert!(
            !ring.core().holds(pos, Core::void_word(pos)),
            "the slot was reused"
        );
        let l = ring.lock(None).unwrap();
        assert!(l.repaired);
        assert_eq!((l.voided(), l.unfinished()), (1, 3));
    }

    #[test]
    fn a_held_ring_is_its_segments_ring_and_keeps_the_mapping_alive() {
        let (big, big_params) = layout::queue_layout(64, 64).unwrap();
        let (_, small_params) = layout::queue_layout(2, 64).unwrap();
        let a = Arc::new(
            Segment::anonymous(big_params.total_size)
                .unwrap()
                .publish(&big_params),
        );
        let held = HeldRing::new(Arc::clone(&a), &big).unwrap();
        {
            let slow = a.ring(&big).unwrap();
            assert!(std::ptr::eq(held.ring().control(), slow.control()));
            assert_eq!(
                held.ring().core().slots.as_ptr(),
                slow.core().slots.as_ptr()
            );
            assert_eq!(held.ring().core().slots.len(), slow.core().slots.len());
            assert_eq!(held.ring().core().capacity, 64);
            assert_eq!(held.ring().core().mask, 63);
        }
        // The held ring's own `Arc` keeps the mapping after every other handle is gone.
        drop(a);
        let core = held.ring().core();
        assert_eq!(
            core.push_one(b"kept", 1, core.lane_index(1, 0), false),
            crate::lockfree::OnePut::Done
        );
        assert_eq!(core.pop_one_vec(), Some(b"kept".to_vec()));
        // A geometry that does not fit the segment is refused, as by `Segment::ring`.
        let b = Arc::new(
            Segment::anonymous(small_params.total_size)
                .unwrap()
                .publish(&small_params),
        );
        assert!(matches!(HeldRing::new(b, &big), Err(OpenError::Corrupt(_))));
    }

    impl Drop for HeapRing {
        fn drop(&mut self) {
            // SAFETY: allocated in `new` with this layout; no ring outlives `self`.
            unsafe { dealloc(self.mem, self.alloc) };
        }
    }

    /// A producer as participant 1 (tests do not register).
    fn producer<'r, 'a>(ring: &'r Ring<'a>) -> Producer<'r, 'a> {
        Producer::new(ring, 1, 0, None)
    }

    #[test]
    fn fifo_len_and_wraparound() {
        let hr = HeapRing::new(3, 8);
        let ring = hr.ring();
        {
            let mut l = producer(&ring);
            l.push(b"a").unwrap();
            l.push(b"").unwrap();
            l.push(b"12345678").unwrap();
            assert_eq!(l.push(b"x"), Err(PushFail::Full));
            assert_eq!(
                l.push(b"123456789"),
                Err(PushFail::TooLarge { len: 9, max: 8 })
            );
        }
        assert_eq!(ring.len(), 3);
        assert_eq!(ring.pop_vec().unwrap(), Some(b"a".to_vec()));
        assert_eq!(ring.pop_vec().unwrap(), Some(vec![]));
        producer(&ring).push(b"wrap").unwrap();
        let (mut bytes, mut lens) = (Vec::new(), Vec::new());
        assert_eq!(ring.core().pop_batch(10, &mut bytes, &mut lens), Ok(2));
        assert_eq!(bytes, b"12345678wrap");
        assert_eq!(lens, [8, 4]);
        assert_eq!(ring.pop_vec().unwrap(), None);
        assert_eq!(ring.len(), 0);
        assert_eq!(ring.unfinished(), 4);
    }

    #[test]
    fn batches_fill_only_the_free_slots_and_refuse_oversized_messages_whole() {
        let hr = HeapRing::new(4, 4);
        let ring = hr.ring();
        let mut l = producer(&ring);
        assert_eq!(l.push_many(&[b"1", b"2", b"3"]).unwrap(), 3);
        assert_eq!(l.push_many(&[b"4", b"5", b"6"]).unwrap(), 1);
        assert_eq!(l.push_many(&[b"7"]), Err(PushFail::Full));
        assert_eq!(
            l.push_many(&[&b"ok"[..], &b"too long"[..]]),
            Err(PushFail::TooLarge { len: 8, max: 4 })
        );
        drop(l);
        assert_eq!(ring.len(), 4);
    }

    #[test]
    fn push_with_fills_a_buffer_and_rejects_lengths_over_the_slot() {
        let hr = HeapRing::new(2, 4);
        let ring = hr.ring();
        let mut l = producer(&ring);
        l.push_with(&mut Some(|b: &mut [u8]| {
            b[..3].copy_from_slice(b"xyz");
            3
        }))
        .unwrap();
        assert_eq!(
            l.push_with(&mut Some(|_: &mut [u8]| 5)),
            Err(PushFail::TooLarge { len: 5, max: 4 })
        );
        drop(l);
        // The refused claim is a tombstone (counted done), stepped over by the next get.
        assert_eq!((ring.len(), ring.unfinished()), (2, 1));
        assert_eq!(ring.pop_vec().unwrap(), Some(b"xyz".to_vec()));
        assert_eq!(ring.pop_vec().unwrap(), None);
        assert_eq!(ring.len(), 0);
        producer(&ring).push(b"ok").unwrap();
        assert_eq!(ring.pop_vec().unwrap(), Some(b"ok".to_vec()));
    }

    #[test]
    fn task_counter_never_goes_below_zero_and_bumps_the_join_generation() {
        let hr = HeapRing::new(4, 4);
        let ring = hr.ring();
        producer(&ring).push(b"a").unwrap();
        producer(&ring).push(b"b").unwrap();
        let mut l = ring.lock(None).unwrap();
        let g = l.join_generation();
        assert_eq!(l.task_done(1), Ok(1));
        assert_eq!(l.join_generation(), g);
        assert_eq!(l.task_done(2), Err(1));
        assert_eq!(l.task_done(1), Ok(0));
        assert_ne!(l.join_generation(), g);
        assert_eq!(l.task_done(1), Err(0));
    }

    #[test]
    fn close_wins_over_full_on_every_put_path() {
        let hr = HeapRing::new(1, 4);
        let ring = hr.ring();
        producer(&ring).push(b"a").unwrap();
        ring.lock(None).unwrap().set_flags(RING_CLOSED, true);
        let mut l = producer(&ring);
        assert_eq!(l.push(b"b"), Err(PushFail::Closed));
        assert_eq!(l.push_many(&[b"b"]), Err(PushFail::Closed));
        assert_eq!(
            l.push_with(&mut Some(|_: &mut [u8]| 1)),
            Err(PushFail::Closed)
        );
        assert_eq!(l.can_push(), Err(PushFail::Closed));
        drop(l);
        assert_eq!(ring.pop_vec().unwrap(), Some(b"a".to_vec()));
    }

    #[test]
    fn owner_death_is_repaired_and_reported() {
        let hr = HeapRing::new(4, 4);
        let ring = hr.ring();
        producer(&ring).push(b"a").unwrap();
        let ctrl = ring.control();
        let g = ctrl.joined.0.load();
        std::thread::scope(|s| {
            s.spawn(|| std::mem::forget(ctrl.lock.0.lock().unwrap()));
        });
        let l = ring.lock(None).unwrap();
        assert!(l.repaired);
        assert_ne!(ctrl.joined.0.load(), g);
        drop(l);
        assert!(!ring.lock(None).unwrap().repaired);
        assert_eq!(ring.pop_vec().unwrap(), Some(b"a".to_vec()));
    }

    #[test]
    fn a_reader_dead_holding_a_reservation_is_repaired_by_the_next_locker() {
        let hr = HeapRing::new(4, 4);
        let ring = hr.ring();
        producer(&ring).push_many(&[&b"a"[..], b"bb"]).unwrap();
        std::thread::scope(|s| {
            s.spawn(|| {
                let l = ring.lock(None).unwrap();
                assert_eq!(ring.core().reserve_front(), Ok(Some((0, 2))));
                let mut scratch = Vec::new();
                assert_eq!(l.reserved_bytes(1, &mut scratch).unwrap(), b"bb");
                // Dies inside its read: the thread ends holding the lock and the reservation.
                std::mem::forget(l);
            });
        });
        assert_eq!(ring.len(), 2);
        assert_eq!(ring.pop_vec(), Err(PopFail::Reserved));
        let l = ring.lock(None).unwrap();
        assert!(l.repaired);
        drop(l);
        assert_eq!(ring.pop_vec().unwrap(), Some(b"a".to_vec()));
        assert_eq!(ring.pop_vec().unwrap(), Some(b"bb".to_vec()));
    }

    #[test]
    fn impossible_positions_are_reported_not_trusted() {
        let hr = HeapRing::new(4, 4);
        let ring = hr.ring();
        ring.control().tail.0.tail.store(10, SeqCst);
        assert!(matches!(ring.lock(None), Err(RingError::Corrupt(_))));
        assert!(ring.check_unlocked().is_err());
        ring.control().tail.0.tail.store(0, SeqCst);
        assert!(ring.check_unlocked().is_ok());
        producer(&ring).push(b"abc").unwrap();
        ring.core().slots[0].store(1000, SeqCst);
        assert!(
            matches!(ring.pop_vec(), Err(PopFail::Corrupt(s)) if s.contains("claims 1000 bytes"))
        );
    }

    #[test]
    fn positions_at_the_end_of_u64_are_corrupt_before_anything_is_acknowledged() {
        // A head word with every bit set is reserved with no reader holding the lock.
        let hr = HeapRing::new(4, 4);
        let ring = hr.ring();
        ring.control().head.0.store(u64::MAX, SeqCst);
        ring.control().tail.0.tail.store(u64::MAX, SeqCst);
        assert!(matches!(ring.lock(None), Err(RingError::Corrupt(_))));
        // Positions end below the head word's reserved bit.
        let end = RESERVED - 1;
        let hr = HeapRing::new(4, 4);
        let ring = hr.ring();
        ring.control().head.0.store(end, SeqCst);
        ring.control().tail.0.tail.store(end, SeqCst);
        ring.control().counters.0.done.store(end, SeqCst);
        drop(ring.lock(None).unwrap());
        let mut l = producer(&ring);
        assert!(matches!(l.push(b"x"), Err(PushFail::Corrupt(_))));
        assert!(matches!(l.push_many(&[b"x"]), Err(PushFail::Corrupt(_))));
        assert!(matches!(
            l.push_with(&mut Some(|_: &mut [u8]| 1)),
            Err(PushFail::Corrupt(_))
        ));
        drop(l);
        assert_eq!(ring.unfinished(), 0);
        assert_eq!(ring.len(), 0);
    }

    #[test]
    fn a_forked_child_claims_under_its_own_participant_number() {
        use crate::sync::atomic::Ordering::SeqCst;
        let q = crate::Queue::anonymous(&crate::Options {
            capacity: 4,
            message_size: 8,
            ..Default::default()
        })
        .unwrap();
        q.put(*b"parent").unwrap();
        // SAFETY: the child touches only the queue (its registration reads /proc through std,
        // which glibc's fork handlers make safe in the child) and leaves with _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let ok = q.put(*b"child").is_ok();
            // SAFETY: _exit is async-signal-safe and ends the forked child at once.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        let mut status = 0;
        // SAFETY: waits for the child forked above; `status` is a valid out-pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(r, pid);
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
        let pids: Vec<u32> = q
            .ring()
            .participants()
            .iter()
            .map(|p| p.id.load(SeqCst) as u32)
            .filter(|&p| p != 0)
            .collect();
        assert_eq!(pids, [std::process::id(), pid as u32]);
        assert_eq!(q.get().unwrap(), b"parent");
        assert_eq!(q.get().unwrap(), b"child");
    }

    /// The model test: random sequences of operations, with simulated deaths at each step,
    /// against a `VecDeque` model of the queue and a counter of unfinished tasks.
    mod model {
        use super::*;
        use proptest::prelude::*;
        use std::collections::VecDeque;

        const CAP: u64 = 4;
        const SIZE: usize = 12;

        #[derive(Debug, Clone)]
        enum Op {
            Put(Vec<u8>),
            PutMany(Vec<Vec<u8>>),
            Get,
            GetInto(usize),
            GetBatch(usize),
            TaskDone,
            Close,
            /// A producer writes its slot and dies holding the lock (owner death).
            ProducerDies(Vec<u8>),
            /// A lock-free producer claims and writes a slot and dies before publishing it.
            ParticipantDies(Vec<u8>),
            /// A consumer copies the front message and dies before its claim.
            ConsumerDiesMidCopy,
            /// A consumer claims the front message and dies with it.
            ConsumerDiesAfterClaim,
        }

        fn msg() -> impl Strategy<Value = Vec<u8>> {
            proptest::collection::vec(any::<u8>(), 0..=SIZE)
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                4 => msg().prop_map(Op::Put),
                2 => proptest::collection::vec(msg(), 0..6).prop_map(Op::PutMany),
                4 => Just(Op::Get),
                1 => (0..=SIZE).prop_map(Op::GetInto),
                2 => (0..6usize).prop_map(Op::GetBatch),
                2 => Just(Op::TaskDone),
                1 => Just(Op::Close),
                1 => msg().prop_map(Op::ProducerDies),
                1 => msg().prop_map(Op::ParticipantDies),
                1 => Just(Op::ConsumerDiesMidCopy),
                1 => Just(Op::ConsumerDiesAfterClaim),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

            #[test]
            fn the_ring_behaves_like_a_vecdeque_whoever_dies(ops in proptest::collection::vec(op(), 1..60)) {
                let hr = HeapRing::new(CAP, SIZE as u64);
                let ring = hr.ring();
                // `None`: the tombstone of a put whose producer died after its claim; it takes
                // a slot until a get steps over it, and is never delivered.
                let mut model: VecDeque<Option<Vec<u8>>> = VecDeque::new();
                let mut unfinished = 0u64;
                let mut closed = false;
                fn skip(model: &mut VecDeque<Option<Vec<u8>>>) {
                    while let Some(None) = model.front() {
                        model.pop_front();
                    }
                }
                for op in ops {
                    match op {
                        Op::Put(m) => {
                            let r = producer(&ring).push(&m);
                            let want = if closed {
                                Err(PushFail::Closed)
                            } else if model.len() as u64 == CAP {
                                Err(PushFail::Full)
                            } else {
                                Ok(())
                            };
                            prop_assert_eq!(&r, &want);
                            if r.is_ok() {
                                model.push_back(Some(m));
                                unfinished += 1;
                            }
                        }
                        Op::PutMany(ms) => {
                            let r = producer(&ring).push_many(&ms);
                            let free = CAP as usize - model.len();
                            if closed {
                                prop_assert_eq!(r, Err(PushFail::Closed));
                            } else if ms.is_empty() {
                                prop_assert_eq!(r, if free == 0 { Err(PushFail::Full) } else { Ok(0) });
                            } else if free == 0 {
                                prop_assert_eq!(r, Err(PushFail::Full));
                            } else {
                                let n = ms.len().min(free);
                                prop_assert_eq!(r, Ok(n));
                                model.extend(ms[..n].iter().cloned().map(Some));
                                unfinished += n as u64;
                            }
                        }
                        Op::Get | Op::ConsumerDiesAfterClaim => {
                            skip(&mut model);
                            prop_assert_eq!(ring.pop_vec().unwrap(), model.pop_front().flatten());
                        }
                        Op::GetInto(n) => {
                            let mut buf = vec![0u8; n];
                            let r = ring.pop_into(&mut buf);
                            skip(&mut model);
                            match model.front() {
                                None => prop_assert_eq!(r, Ok(None)),
                                Some(Some(m)) if m.len() > n => prop_assert_eq!(
                                    r,
                                    Err(PopFail::TooSmall { needed: m.len(), available: n })
                                ),
                                Some(_) => {
                                    let m = model.pop_front().flatten().unwrap();
                                    prop_assert_eq!(r, Ok(Some(m.len())));
                                    prop_assert_eq!(&buf[..m.len()], &m[..]);
                                }
                            }
                        }
                        Op::GetBatch(max) => {
                            let (mut bytes, mut lens) = (Vec::new(), Vec::new());
                            let n = ring.core().pop_batch(max, &mut bytes, &mut lens).unwrap();
                            let mut want = Vec::new();
                            let mut taken = 0;
                            if max > 0 {
                                skip(&mut model);
                                while taken < max {
                                    match model.pop_front() {
                                        Some(Some(m)) => {
                                            want.extend(m);
                                            taken += 1;
                                        }
                                        Some(None) => {}
                                        None => break,
                                    }
                                }
                            }
                            prop_assert_eq!(n, taken);
                            prop_assert_eq!(bytes, want);
                        }
                        Op::TaskDone => {
                            let r = ring.lock(None).unwrap().task_done(1);
                            if unfinished == 0 {
                                prop_assert_eq!(r, Err(0));
                            } else {
                                unfinished -= 1;
                                prop_assert_eq!(r, Ok(unfinished));
                            }
                        }
                        Op::Close => {
                            ring.lock(None).unwrap().set_flags(crate::layout::RING_CLOSED, true);
                            closed = true;
                        }
                        Op::ProducerDies(m) => {
                            // A put under the lock (a full registry) that dies after its claim:
                            // the next locker voids it.
                            let r = &ring;
                            std::thread::scope(|s| {
                                s.spawn(|| {
                                    let mut l = r.lock(None).unwrap();
                                    l.write_and_die(&m);
                                    // Dies holding the lock: the guard is never dropped.
                                    std::mem::forget(l);
                                });
                            });
                            let l = ring.lock(None).unwrap();
                            prop_assert!(l.repaired);
                            if !closed && (model.len() as u64) < CAP {
                                model.push_back(None);
                            }
                        }
                        Op::ParticipantDies(m) => {
                            // A lock-free put that dies after its claim; a consumer finds the
                            // owner dead and voids the claim under the lock.
                            if let Some(pos) = ring.core().claim_and_die(&m, 2) {
                                prop_assert!(!closed && (model.len() as u64) < CAP);
                                if model.iter().all(Option::is_none) {
                                    let pending = matches!(ring.pop_vec(), Err(PopFail::Pending { .. }));
                                    prop_assert!(pending);
                                    model.clear();
                                }
                                let w = ring.core().seq(pos).load(SeqCst);
                                prop_assert_eq!(ring.lock(None).unwrap().void(pos, w), 1);
                                model.push_back(None);
                            }
                        }
                        Op::ConsumerDiesMidCopy => {
                            ring.core().copy_and_die();
                            skip(&mut model);
                        }
                    }
                    prop_assert_eq!(ring.len(), model.len() as u64);
                    prop_assert_eq!(ring.unfinished(), unfinished);
                    prop_assert_eq!(ring.flags() & crate::layout::RING_CLOSED != 0, closed);
                    prop_assert!(ring.check_unlocked().is_ok());
                }
                // Drain: exactly the model's messages, in order.
                while let Some(m) = ring.pop_vec().unwrap() {
                    skip(&mut model);
                    prop_assert_eq!(Some(m), model.pop_front().flatten());
                }
                skip(&mut model);
                prop_assert!(model.is_empty());
            }
        }
    }
}
