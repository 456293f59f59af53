//! The lock-free protocol of the ring: puts and gets that take no lock, over slots whose
//! sequence words say what each position holds (free, claimed by a named owner, full, void),
//! and intent lanes that name who is claiming which positions; the slot format, written and
//! read word by word through atomics; and the event
//! counts that blocked callers sleep on, whose wake-up check after a put's commit rests on the
//! asymmetric barrier of `sync::atomic` (a `Release` commit store; the sleeper issues
//! `membarrier`). One file per protocol step:
//!
//! - `claim.rs`, claim and publish (producers): the producer names the positions it is about
//!   to claim in an intent lane of its registry row (its participant number), claims them with
//!   one CAS of `tail` (its own line, not the slot a consumer has just read), checks the flags
//!   again, writes the slots and publishes them with one store; then clears its lane. A claim
//!   of several slots also marks its first slot with a claim word (owner and count) before
//!   writing anything. (A process that finds the registry full claims as [`LOCK_OWNER`],
//!   holding the ring's lock.) `Core::push_one` is the same steps for the common single put,
//!   in one inlined step that declines, having changed nothing, whenever the case is not
//!   plain.
//! - `pop.rs`, pop and commit (consumers): copy the front message out, then take it with one
//!   CAS of `head`; a copy that loses the race is discarded. A free word at the front with
//!   `tail` past it is a claim in flight. A consumer that saw the ring closed and then finds
//!   `tail` at `head` knows it drained for good: a claim after that sees the close when it
//!   checks the flags again, and withdraws. `Core::pop_one_into`/`pop_one_vec` are the common
//!   single get in one step, declining likewise.
//! - `reserve.rs`, the zero-copy readers, the only consumers that take the ring's lock: they
//!   reserve the front with the [`RESERVED`] bit of `head` and read it in place (lock-free
//!   consumers wait for them on the lock), then release it with one store.
//! - `repair.rs`, void and repair (under the ring's lock, decided by `ring.rs` and
//!   `engine.rs`): a dead owner's claim becomes tombstones that consumers step over (a claim
//!   in flight that no live intent covers is a dead one); a dead reader's reservation is
//!   cleared.
//! - `peek.rs`, peek and commit: a copy at a known position, taken later with one CAS of `head`.
//!
//! A message longer than a slot travels as a descriptor ([`LARGE`] in the slot's length word),
//! its bytes in a side segment (`crate::large`). This file holds what the steps share: the
//! sequence word's encoding ([`Slot`]), the flag bits, the failures ([`PushFail`],
//! [`PopFail`]), the event counts ([`Event`], [`wait_for`]), the borrowed words of one ring
//! ([`Core`]) with its lock-free queries and position checks, and `HeapCore`, heap memory for
//! the unit tests (`tests.rs`) and the loom models (`loom_tests.rs`).
//!
//! Everything is made of atomics borrowed from the caller, so the same code runs over a shared
//! segment, over heap memory in unit tests, and under loom (`--cfg loom`) with loom's atomics.
//! The protocol, its state table and its crash points are in `docs/protocol.md`.
//!
//! Why it is safe to read a slot that a producer may be rewriting: the producer stores each
//! word with `Release` only after it has seen (`Acquire`) `head` pass the slot's previous
//! message; the consumer loads the words `Relaxed`, then issues an `Acquire` fence, then claims
//! with a CAS on `head` from the position it copied. If any word it read came from the rewrite,
//! the fence makes the consumer's CAS see `head` past that position, so the CAS fails and the
//! copy is discarded (the seqlock argument, with `head` as the sequence).

#![cfg_attr(loom, allow(dead_code))]

use std::time::{Duration, Instant};

use crate::sync::atomic::Ordering::{Acquire, Relaxed, Release, SeqCst};
use crate::sync::atomic::{AtomicU32, AtomicU64};
use crate::sync::futex;

mod claim;
mod peek;
mod pop;
mod repair;
mod reserve;
pub(crate) use claim::{Claim, OnePut};
#[cfg(not(loom))]
pub(crate) use peek::{Commit, Peek};

// Public through `layout` (not compiled under loom, where these are crate-visible only).
/// `Counters::flags` bit: the ring was closed.
#[cfg_attr(loom, allow(unreachable_pub))]
pub const RING_CLOSED: u32 = 1;
/// `Counters::flags` bit: no holder of the sending side is left (pipes).
#[cfg_attr(loom, allow(unreachable_pub))]
pub const RING_SENDERS_GONE: u32 = 2;
/// `Counters::flags` bit: no holder of the receiving side is left (pipes).
#[cfg_attr(loom, allow(unreachable_pub))]
pub const RING_RECEIVERS_GONE: u32 = 4;

/// Bytes of slots one batch get copies at most (a quarter of a typical L2 cache): a batch of
/// large messages copied into a buffer larger than the cache would be read back from memory.
const BATCH_BYTES: usize = 128 * 1024;

/// Head-word bit: a zero-copy reader holding the ring's lock reads the front message in place
/// (`head & !RESERVED` is the position; see docs/layout.md). Lock-free consumers neither copy
/// nor claim while it is set; the next locker after the reader's death clears it.
pub(crate) const RESERVED: u64 = 1 << 63;

/// Bit 63 of a slot's length word: the slot holds a descriptor (its length in bits 0–62) and
/// the message lives outside the slot (`crate::large`; `docs/protocol.md`, "Large messages").
/// Ordinary messages never set it.
pub(crate) const LARGE: u64 = 1 << 63;

/// Sequence word, bits 0..3: the slot's state. The zeroed word (state 0) is "free for the
/// slot's first position"; a slot free for position `p >= capacity` holds `FULL(p - capacity)`
/// or `VOID(p - capacity)`. See docs/protocol.md, "Lock-free puts". (State 4, a seal, was
/// layout 3's and is never written.)
const STATE_MASK: u64 = 7;
/// Claimed for a position by a producer (owner and count in the word), not yet published: the
/// mark of a claim of several slots, and the encoding of every intent.
const CLAIMED: u64 = 1;
/// Published: the message of the word's position is in the slot.
const FULL: u64 = 2;
/// A tombstone: the claim of the word's position died unpublished; consumers skip it.
const VOID: u64 = 3;
const OWNER_SHIFT: u32 = 3;
const COUNT_SHIFT: u32 = 11;
const POS_SHIFT: u32 = 24;
/// The most slots one claim takes (a batch put claims in pieces of at most this many).
pub(crate) const MAX_CLAIM: usize = 1 << 13;
/// Tries of the one-step put and get (`Core::push_one`, `Core::pop_one_into`) before they leave
/// a contended position to the general path: each lost race means another participant moved
/// `tail` or `head` on, so the next try is at a new position.
pub(crate) const ONE_STEP_TRIES: usize = 4;
/// The owner number of a claim made under the ring's lock (a full registry): its death is
/// repaired by the next locker. Registry entry `i` claims as owner `i + 1`.
pub(crate) const LOCK_OWNER: u8 = 0;
/// Positions are kept modulo 2^40 in sequence words and intents.
const POS_MASK: u64 = (1 << 40) - 1;

/// The intent of a claim of `n` positions from `pos` by `owner`, as it stands in an intent
/// lane: the encoding of a claim word. 0 is an idle lane.
fn intent(pos: u64, owner: u8, n: u64) -> u64 {
    claimed(pos, owner, n)
}

/// Whether intent `i` (a lane's word) covers position `pos`.
fn covers(i: u64, pos: u64) -> bool {
    state(i) == CLAIMED && (pos & POS_MASK).wrapping_sub(i >> POS_SHIFT) & POS_MASK < claim_count(i)
}

/// The sequence word of `pos` in `state` (positions are kept modulo 2^40, which no stalled
/// reader can wrap).
fn word(pos: u64, state: u64) -> u64 {
    (pos << POS_SHIFT) | state
}

/// The word of a claim of `n` slots from `pos` by `owner`.
fn claimed(pos: u64, owner: u8, n: u64) -> u64 {
    debug_assert!((1..=MAX_CLAIM as u64).contains(&n));
    word(pos, CLAIMED) | u64::from(owner) << OWNER_SHIFT | (n - 1) << COUNT_SHIFT
}

/// Whether word `w` names position `pos`.
fn at(w: u64, pos: u64) -> bool {
    w >> POS_SHIFT == (pos << POS_SHIFT) >> POS_SHIFT
}

/// The state bits of `w`.
fn state(w: u64) -> u64 {
    w & STATE_MASK
}

/// The owner named by a claim word.
pub(crate) fn claim_owner(w: u64) -> u8 {
    (w >> OWNER_SHIFT) as u8
}

/// Whether `w` is a claim word (a mark), not a free, full or void one.
pub(crate) fn is_mark(w: u64) -> bool {
    state(w) == CLAIMED
}

/// How many slots a claim word covers.
pub(crate) fn claim_count(w: u64) -> u64 {
    ((w >> COUNT_SHIFT) & (MAX_CLAIM as u64 - 1)) + 1
}

/// What the sequence word says about position `pos`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    /// Free for `pos` (its previous message was taken or voided): nothing claimed it yet.
    Free,
    /// Claimed for `pos` and marked (a claim of several slots, or one made under the lock),
    /// not published: `(owner, count)`.
    Claimed(u8, u64),
    /// Free for `pos` as far as its word says, but `tail` is past `pos`: a claim in flight,
    /// not marked; its owner is named by an intent lane. Only [`Core`]'s reads that also load
    /// `tail` report it; [`slot_state`] says `Free`.
    InFlight,
    Full,
    Void,
    /// Belongs to another lap: `pos` is stale (or the segment is damaged).
    Other,
}

/// Decodes `w` as seen for position `pos` of a ring of `capacity` slots.
fn slot_state(w: u64, pos: u64, capacity: u64) -> Slot {
    if at(w, pos) {
        match state(w) {
            CLAIMED => return Slot::Claimed(claim_owner(w), claim_count(w)),
            FULL => return Slot::Full,
            VOID => return Slot::Void,
            _ => {}
        }
    }
    let free = if pos >= capacity {
        w == word(pos - capacity, FULL) || w == word(pos - capacity, VOID)
    } else {
        w == 0
    };
    if free { Slot::Free } else { Slot::Other }
}

/// Event-count bit: someone is about to sleep, or sleeps, on the word.
const WAITING: u32 = 1;

#[cfg(not(loom))]
fn acquire_fence() {
    std::sync::atomic::fence(Acquire);
}

#[cfg(loom)]
fn acquire_fence() {
    crate::sync::atomic::fence(Acquire);
}

/// Why a put did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PushFail {
    /// No free slot.
    Full,
    /// The ring is closed.
    Closed,
    /// No receiver is left (pipes).
    ReceiversGone,
    /// The message is longer than a slot.
    TooLarge { len: usize, max: usize },
    /// The shared state is impossible (a damaged segment); nothing was published.
    Corrupt(String),
    /// Every intent lane of this process's registry row is taken (as many of its threads are
    /// inside a put): nothing was claimed; put under the lock instead.
    Busy,
    /// The claim was made, then the ring was found closed (or a pipe's side gone): void it
    /// under the lock, release its lane and report [`Core::closed_fail`].
    Withdrawn(Claim),
}

/// Why a get did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PopFail {
    /// The front message is longer than the caller's buffer; it stays queued.
    TooSmall { needed: usize, available: usize },
    /// The shared state is impossible (a damaged segment); nothing was taken.
    Corrupt(String),
    /// A zero-copy reader has reserved the front; nothing was taken. Wait on the ring's lock
    /// (it is released when the reader finishes, or repaired after its death), then retry.
    Reserved,
    /// The front slot is claimed by a producer that has not published it yet: `word` is its
    /// sequence word at position `pos`, a mark that names the owner ([`claim_owner`]), or the
    /// free word of a claim in flight whose owner an intent lane names
    /// ([`Core::cover`]). Wait for a change of the word; if the owner is dead, void the
    /// claim under the ring's lock.
    Pending { pos: u64, word: u64 },
    /// The front slot holds a descriptor of a large message ([`LARGE`]); nothing was taken.
    /// Read it through the reserved front (`crate::large`).
    Large,
}

/// An event count on a futex word: bit 0 is [`WAITING`], the rest a generation. A sleeper sets
/// the bit, re-checks its condition, and sleeps on the value it saw; a waker that changed the
/// condition looks at the word and, only if the bit is set, changes the word and wakes every
/// sleeper. A sleeper killed while the bit is set costs one spurious wake-up, then the bit is
/// clear again: nothing to repair.
///
/// The second field says whether a waker may have changed the condition with a put's commit,
/// whose store carries only the light side of the asymmetric barrier (`items`): a sleeper on
/// such a word issues the heavy side. Wakers of the other words (`free`: the consumers' `head`
/// CAS) write with a `SeqCst` RMW, so their sleepers make no system call for it.
#[derive(Clone, Copy)]
pub(crate) struct Event<'a>(pub(crate) &'a AtomicU32, pub(crate) bool);

impl Event<'_> {
    /// Sleeper, step 1: announce. Returns the value to sleep on.
    pub(crate) fn prepare(self) -> u32 {
        let v = self.announce();
        self.barrier();
        v
    }

    /// The sleeper's barrier between [`announce`](Self::announce) and the re-check. On a word
    /// that a put's commit changes, a producer may have published with a `Release` store and
    /// no fence: the heavy side of the asymmetric barrier makes it either see the bit or have
    /// its message seen by the re-check. (Under loom both are the `SeqCst` fence of a Dekker
    /// handshake.)
    pub(crate) fn barrier(self) {
        sleeper_barrier(self.1);
    }

    /// [`prepare`](Self::prepare) without its [`barrier`](Self::barrier), for a sleeper that
    /// announces itself on several words and then issues the barrier once for all of them.
    pub(crate) fn announce(self) -> u32 {
        // SYNC POINT: sleeper side of the handshake: this RMW, the barrier, then the caller's
        // SeqCst reads of the condition.
        self.0.fetch_or(WAITING, SeqCst) | WAITING
    }

    /// Sleeper, step 2 (after re-checking the condition): sleeps while the word is `v`.
    pub(crate) fn sleep(self, v: u32, deadline: Option<Instant>) {
        futex::wait(self.0, v, deadline);
    }

    /// Waker: call after the SeqCst write that changed the condition.
    #[inline]
    pub(crate) fn notify(self) {
        crate::sync::atomic::dekker_fence();
        self.notify_published();
    }

    /// Waker, after a put's commit store (`claim.rs`, `commit`), which carries its own barrier
    /// (a `SeqCst` store, or the light side of the asymmetric barrier): [`notify`](Self::notify)
    /// without the fence that models a `SeqCst` write under loom, so that the loom models check
    /// the commit's barrier itself.
    #[inline]
    pub(crate) fn notify_published(self) {
        // SYNC POINT: waker side: the condition was written before this load.
        let mut v = self.0.load(SeqCst);
        while v & WAITING != 0 {
            // (gen, WAITING) + 1 = (gen + 1, clear).
            match self
                .0
                .compare_exchange(v, v.wrapping_add(1), SeqCst, SeqCst)
            {
                Ok(_) => {
                    futex::wake(self.0, u32::MAX);
                    return;
                }
                Err(now) => v = now,
            }
        }
    }

    /// Changes the word and wakes every sleeper, whatever the bit says (close, repair).
    pub(crate) fn notify_all(self) {
        self.0.fetch_add(2, SeqCst);
        futex::wake(self.0, u32::MAX);
    }
}

/// The sleeper's barrier after announcing itself on words of which any (`heavy`) is changed by
/// a put's commit ([`Event::barrier`]).
pub(crate) fn sleeper_barrier(heavy: bool) {
    if heavy {
        crate::sync::atomic::heavy_barrier();
    } else {
        crate::sync::atomic::dekker_fence();
    }
}

/// Spins while the wait is likely short (a peer on the other CPU about to publish): checks
/// after every [`SPIN_STEP`] spin-loop hints, [`SPIN_CHECKS`] times (128 hints, a few
/// microseconds: about one round trip of a peer on the other CPU, so that a ping-pong answers
/// within the spin). A fixed short step, not a growing one: the waiter notices a message at
/// most two hints after it lands, where a step of 64 hints made it late by a microsecond.
#[cfg(not(loom))]
const SPIN_CHECKS: u32 = 64;
/// Spin-loop hints between two checks of the spin.
#[cfg(not(loom))]
const SPIN_STEP: u32 = 2;
/// Then yields the CPU between checks for at least this long before sleeping...
#[cfg(not(loom))]
const POLL_FOR: Duration = Duration::from_micros(50);
/// ...and until it has yielded this many times, but no longer than [`POLL_MAX`]. With nothing
/// else to run, a yield returns at once and the poll lasts about [`POLL_FOR`]; with more
/// runnable processes than CPUs, every yield lets the others run (the peer the waiter waits for
/// among them), so the poll lasts about as many of their turns and the waiter rarely needs a
/// futex wake-up (a system call for its waker and a `membarrier` for itself). Either way the
/// waiter's own CPU per poll is about the same: this many yields.
#[cfg(not(loom))]
const POLL_YIELDS: u32 = 64;
/// The longest poll before sleeping, however few yields it made.
#[cfg(not(loom))]
const POLL_MAX: Duration = Duration::from_millis(1);

/// Waits until `ready()` holds, sleeping on `ev` after a short spin. Returns true when `ready()`
/// held, false when `deadline` passed; also returns (true) after `slice` passed with no change,
/// so that the caller can re-check what lives outside the ring (liveness of peers).
pub(crate) fn wait_for(
    ev: Event<'_>,
    ready: impl Fn() -> bool,
    deadline: Option<Instant>,
    slice: Duration,
) -> bool {
    #[cfg(not(loom))]
    {
        for _ in 0..SPIN_CHECKS {
            if ready() {
                return true;
            }
            for _ in 0..SPIN_STEP {
                futex::spin_loop();
            }
        }
        let start = Instant::now();
        let mut yields = 0u32;
        loop {
            if ready() {
                return true;
            }
            let spent = start.elapsed();
            if (spent >= POLL_FOR && yields >= POLL_YIELDS)
                || spent >= POLL_MAX
                || deadline.is_some_and(|d| Instant::now() >= d)
            {
                break;
            }
            futex::yield_now();
            yields += 1;
        }
    }
    loop {
        let v = ev.prepare();
        if ready() {
            return true;
        }
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            return false;
        }
        let wake_at = match deadline {
            Some(d) => d.min(now + slice),
            None => now + slice,
        };
        ev.sleep(v, Some(wake_at));
        if ready() {
            return true;
        }
        #[cfg(not(loom))]
        if Instant::now() >= wake_at {
            return deadline.is_none_or(|d| Instant::now() < d);
        }
    }
}

/// The shared words of one ring and its slots, borrowed.
///
/// Slot `i` is `words` consecutive `u64`s of `slots`, starting at `i * words`: word 0 holds the
/// payload length, the payload follows in little-endian words (the last one zero-padded).
#[derive(Clone, Copy)]
pub(crate) struct Core<'a> {
    /// Messages ever taken (consumers CAS it).
    pub(crate) head: &'a AtomicU64,
    /// Positions ever claimed by producers (each claim CASes it, no lock).
    pub(crate) tail: &'a AtomicU64,
    /// A value `head` had (the producers' cache, on `tail`'s line; `<= head`).
    pub(crate) head_seen: &'a AtomicU64,
    /// [`RING_CLOSED`], [`RING_SENDERS_GONE`], [`RING_RECEIVERS_GONE`] (changed under the lock).
    pub(crate) flags: &'a AtomicU32,
    /// Event count of "a message was published".
    pub(crate) items: &'a AtomicU32,
    /// Event count of "a slot was freed".
    pub(crate) free: &'a AtomicU32,
    /// The slot array: `capacity * words` words.
    pub(crate) slots: &'a [AtomicU64],
    pub(crate) capacity: u64,
    /// `capacity - 1` when the capacity is a power of two above 1 (a slot's index is then a
    /// mask of the position), else 0 (a remainder): [`index_mask`].
    pub(crate) mask: u64,
    pub(crate) message_size: usize,
    /// Words per slot: 1 + ceil(message_size / 8), or more.
    pub(crate) words: usize,
    /// The intent lanes: `lanes` words per registry row, row 0 the lock holder's, row `i + 1`
    /// registry entry `i`'s (each row on its own line in a segment).
    pub(crate) intents: &'a [AtomicU64],
    /// Lanes per row of [`intents`](Self::intents).
    pub(crate) lanes: usize,
}

impl<'a> Core<'a> {
    pub(crate) fn items_event(&self) -> Event<'a> {
        Event(self.items, true)
    }

    pub(crate) fn free_event(&self) -> Event<'a> {
        Event(self.free, false)
    }

    pub(crate) fn flags(&self) -> u32 {
        self.flags.load(SeqCst)
    }

    /// Messages waiting (exact when no put or get is in flight).
    pub(crate) fn len(&self) -> u64 {
        let head = self.head.load(SeqCst) & !RESERVED;
        let tail = self.tail.load(SeqCst);
        tail.saturating_sub(head).min(self.capacity)
    }

    /// Whether a get would find something at the front now (a message, a tombstone, the end
    /// of a closed ring; not an unpublished claim).
    pub(crate) fn has_items(&self) -> bool {
        let flags = self.flags.load(SeqCst);
        let head = self.head.load(SeqCst) & !RESERVED;
        let w = self.seq(head).load(SeqCst);
        match slot_state(w, head, self.capacity) {
            // (A published or voided position is below `tail`; a word that says otherwise is
            // damage, and a sleeper must not spin on it.)
            Slot::Full | Slot::Void => self.tail.load(SeqCst) > head,
            // Closed and drained: a get returns at once.
            Slot::Free => {
                flags & (RING_CLOSED | RING_SENDERS_GONE) != 0 && self.tail.load(SeqCst) == head
            }
            _ => false,
        }
    }

    /// The index in [`intents`](Self::intents) of lane `lane` (modulo the lanes of a row, a
    /// power of two) of registry row `row`.
    #[inline]
    pub(crate) fn lane_index(&self, row: u8, lane: usize) -> usize {
        debug_assert!(self.lanes.is_power_of_two());
        row as usize * self.lanes + (lane & (self.lanes - 1))
    }

    /// Lane `lane` (modulo the lanes of a row) of registry row `row`.
    #[inline]
    pub(super) fn lane(&self, row: u8, lane: usize) -> &'a AtomicU64 {
        &self.intents[self.lane_index(row, lane)]
    }

    /// The registry rows (owner numbers) with an intent lane that covers position `pos`, in
    /// order, each once; for a consumer at a claim in flight, which voids it only when none of
    /// them is a live process. Every claim names its positions in its owner's lane before its
    /// CAS of `tail`, and clears the lane only after publishing them: so a caller that read
    /// `tail` past `pos` before this scan, and then still finds `pos` unpublished, finds its
    /// claimer's row here (a row that covers `pos` may also be a producer that lost the race
    /// for `pos` and will name another position).
    pub(crate) fn cover(&self, pos: u64) -> Vec<u8> {
        let rows = self.intents.len() / self.lanes.max(1);
        let mut found = Vec::new();
        for row in 0..rows {
            for l in 0..self.lanes {
                // SYNC POINT: pairs with the producer's store of its intent before its CAS of
                // `tail` (which the caller's SeqCst load of `tail` saw), and with its clear
                // (Release) after its publish.
                if covers(self.lane(row as u8, l).load(SeqCst), pos) {
                    found.push(row as u8);
                    break;
                }
            }
        }
        found
    }

    /// The positions of `head..tail` that lanes of `row` cover and that still hold the free word
    /// of a claim in flight: `(position, word)` (for repairs, under the lock).
    pub(crate) fn in_flight_of(&self, row: u8) -> Vec<(u64, u64)> {
        let tail = self.tail.load(SeqCst);
        let head = self.head.load(SeqCst) & !RESERVED;
        let mut found = Vec::new();
        for l in 0..self.lanes {
            let i = self.lane(row, l).load(SeqCst);
            if state(i) != CLAIMED {
                continue;
            }
            // The claim's first position, the one below `tail` whose low 40 bits it names.
            let start = tail.wrapping_sub(tail.wrapping_sub(i >> POS_SHIFT) & POS_MASK);
            for pos in start.max(head)..start.saturating_add(claim_count(i)).min(tail) {
                let w = self.seq(pos).load(SeqCst);
                if slot_state(w, pos, self.capacity) == Slot::Free && !found.contains(&(pos, w)) {
                    found.push((pos, w));
                }
            }
        }
        found
    }

    /// Clears every intent lane of `row` (under the lock, its owner dead).
    pub(crate) fn clear_lanes(&self, row: u8) {
        for l in 0..self.lanes {
            self.lane(row, l).store(0, SeqCst);
        }
    }

    /// Whether a put could find a free slot now.
    pub(crate) fn has_free(&self) -> bool {
        let tail = self.tail.load(SeqCst);
        let head = self.head.load(SeqCst) & !RESERVED;
        tail.wrapping_sub(head) < self.capacity
    }

    /// Checks the relations between the positions that hold at every instant — `done <= tail`,
    /// `head <= tail <= head + capacity` — while other processes move them: producers move
    /// `tail` and consumers `head` without any lock, so even a holder of the ring's lock reads
    /// them at different instants. Each comparison is made between loads in the one order that
    /// makes it hold for a healthy ring, whatever happens between the loads (all three words
    /// only grow):
    ///
    /// - `done`, then `tail`: `done(t0) <= tail(t0) <= tail(t1)`;
    /// - `head`, then `tail`: `head(t1) <= tail(t1) <= tail(t2)`;
    /// - `tail`, then `head` again (only when the first `head` is more than a capacity behind):
    ///   `tail(t2) <= head(t2) + capacity <= head(t3) + capacity`.
    ///
    /// So an error means the relation was false at some instant: damage, never a stale read.
    /// `done` is the task counter (it lives outside the core). A head word with [`RESERVED`]
    /// set is an error unless `reserved_ok` (a checker that holds the ring's lock knows that no
    /// live reader holds a reservation, and a dead one's was cleared by its repair).
    pub(crate) fn check_positions(
        &self,
        done: &AtomicU64,
        reserved_ok: bool,
    ) -> Result<(), String> {
        let cap = self.capacity;
        let done = done.load(SeqCst);
        let head_word = self.head.load(SeqCst);
        if head_word & RESERVED != 0 && !reserved_ok {
            return Err(format!(
                "head {} is reserved, but its reader does not hold the lock",
                head_word & !RESERVED
            ));
        }
        let head = head_word & !RESERVED;
        let tail = self.tail.load(SeqCst);
        if done > tail {
            return Err(format!("impossible task count: done {done} > tail {tail}"));
        }
        if head > tail {
            return Err(format!(
                "impossible positions: head {head} passed tail {tail} (capacity {cap})"
            ));
        }
        if tail - head > cap {
            // `head` may have moved on since it was read: only a `head` read after `tail` bounds
            // it (a later `head` may also be past this `tail`: then `tail` was within reach).
            let now = self.head.load(SeqCst) & !RESERVED;
            if now <= tail && tail - now > cap {
                return Err(format!(
                    "impossible positions: tail {tail} is more than the capacity {cap} ahead of \
                     head {now}"
                ));
            }
        }
        Ok(())
    }

    /// The first word of position `pos`'s slot. A mask, not a division, when the capacity is a
    /// power of two (the branch is the same for every call on a ring, so it predicts).
    #[inline]
    fn base(&self, pos: u64) -> usize {
        let index = if self.mask != 0 {
            pos & self.mask
        } else {
            pos % self.capacity
        };
        index as usize * self.words
    }

    /// The words of position `pos`'s slot: its length word, its sequence word, its payload.
    #[inline]
    pub(super) fn slot(&self, pos: u64) -> &'a [AtomicU64] {
        let base = self.base(pos);
        &self.slots[base..base + self.words]
    }

    /// The sequence word of position `pos`'s slot.
    pub(crate) fn seq(&self, pos: u64) -> &'a AtomicU64 {
        &self.slots[self.base(pos) + 1]
    }

    #[cold]
    fn impossible(&self, pos: u64, w: u64) -> PopFail {
        PopFail::Corrupt(format!(
            "slot {} holds sequence word {w:#x}, impossible for the head {pos}",
            pos % self.capacity
        ))
    }

    /// Whether `head` is still `pos`, with everything read before ordered before the check.
    fn still(&self, pos: u64) -> bool {
        acquire_fence();
        self.head.load(Relaxed) == pos
    }

    /// The length word of position `pos`, unchecked.
    fn raw_len(&self, pos: u64) -> u64 {
        self.slots[self.base(pos)].load(Relaxed)
    }

    /// The error for a length word over the slot size, seen while `head` stood still.
    #[cold]
    fn oversized(&self, pos: u64, len: u64) -> PopFail {
        PopFail::Corrupt(format!(
            "slot {} claims {len} bytes, more than the slot size {}",
            pos % self.capacity,
            self.message_size
        ))
    }

    /// Copies `dst.len()` payload bytes of position `pos` into `dst`.
    fn copy_to(&self, pos: u64, dst: &mut [u8]) {
        self.copy_words(self.base(pos) + 2, dst);
    }

    /// Copies `dst.len()` bytes from the words starting at word `base` into `dst`.
    fn copy_words(&self, base: usize, dst: &mut [u8]) {
        read_words(&self.slots[base..base + dst.len().div_ceil(8)], dst);
    }

    /// Every descriptor that a published slot of `head..tail` holds now (a racy snapshot, no
    /// lock: a slot rewritten meanwhile may give a garbled or newer one; a descriptor of a
    /// message present from the first load of `head` to the end of the scan is always among
    /// them).
    pub(crate) fn descriptors(&self) -> Vec<Vec<u8>> {
        let mut head = self.head.load(SeqCst) & !RESERVED;
        let tail = self.tail.load(SeqCst);
        let mut out = Vec::new();
        if tail.saturating_sub(head) > self.capacity {
            // Gets moved `head` between the loads (see `check_positions`): a `head` read after
            // `tail` is within a capacity of it.
            head = head.max(self.head.load(SeqCst) & !RESERVED);
        }
        if tail < head || tail - head > self.capacity {
            return out;
        }
        for pos in head..tail {
            let w = self.raw_len(pos);
            if w & LARGE != 0 && w & !LARGE <= self.message_size as u64 {
                let mut d = vec![0; (w & !LARGE) as usize];
                self.copy_to(pos, &mut d);
                out.push(d);
            }
        }
        out
    }

    /// The first payload word of position `pos`.
    pub(crate) fn payload(&self, pos: u64) -> &'a [AtomicU64] {
        let base = self.base(pos) + 2;
        &self.slots[base..base + self.words - 2]
    }
}

/// The [`Core::mask`] of a ring of `capacity` slots.
pub(crate) fn index_mask(capacity: u64) -> u64 {
    if capacity > 1 && capacity.is_power_of_two() {
        capacity - 1
    } else {
        0
    }
}

/// Copies `dst.len()` bytes out of `words` (little-endian, at least `ceil(len / 8)` of them)
/// with `Relaxed` loads.
#[inline]
fn read_words(words: &[AtomicU64], dst: &mut [u8]) {
    let (chunks, rest) = dst.as_chunks_mut::<8>();
    let full = chunks.len();
    for (c, w) in chunks.iter_mut().zip(words) {
        *c = w.load(Relaxed).to_le_bytes();
    }
    if !rest.is_empty() {
        let last = words[full].load(Relaxed).to_le_bytes();
        for (d, b) in rest.iter_mut().zip(last) {
            *d = b;
        }
    }
}

/// Writes `msg` into `words` as little-endian words with `Release` stores, the last one
/// zero-padded (`words` holds at least `ceil(msg.len() / 8)`).
#[inline]
fn write_words(words: &[AtomicU64], msg: &[u8]) {
    let (chunks, rest) = msg.as_chunks::<8>();
    for (w, c) in words.iter().zip(chunks) {
        w.store(u64::from_le_bytes(*c), Release);
    }
    if !rest.is_empty() {
        let mut last = 0u64;
        for (i, &b) in rest.iter().enumerate() {
            last |= u64::from(b) << (8 * i);
        }
        words[chunks.len()].store(last, Release);
    }
}

/// Heap memory for a ring: the words a [`Core`] borrows, made with `new` (so that loom tracks
/// them). Unit tests and loom tests drive the protocol through it.
#[cfg(any(test, loom))]
pub(crate) struct HeapCore {
    words: Vec<AtomicU64>,
    small: Vec<AtomicU32>,
    slots: Vec<AtomicU64>,
    intents: Vec<AtomicU64>,
    capacity: u64,
    message_size: usize,
}

/// Intent lanes per row of a [`HeapCore`] (few, so that loom's state stays small).
#[cfg(any(test, loom))]
pub(crate) const HEAP_LANES: usize = 2;
/// Registry rows of a [`HeapCore`]: the lock holder and owners 1 to 3.
#[cfg(any(test, loom))]
const HEAP_ROWS: usize = 4;

#[cfg(any(test, loom))]
impl HeapCore {
    pub(crate) fn new(capacity: u64, message_size: usize) -> HeapCore {
        let words = 2 + message_size.div_ceil(8);
        HeapCore {
            words: (0..3).map(|_| AtomicU64::new(0)).collect(),
            small: (0..3).map(|_| AtomicU32::new(0)).collect(),
            slots: (0..capacity as usize * words)
                .map(|_| AtomicU64::new(0))
                .collect(),
            intents: (0..HEAP_ROWS * HEAP_LANES)
                .map(|_| AtomicU64::new(0))
                .collect(),
            capacity,
            message_size,
        }
    }

    pub(crate) fn core(&self) -> Core<'_> {
        Core {
            head: &self.words[0],
            tail: &self.words[1],
            head_seen: &self.words[2],
            flags: &self.small[0],
            items: &self.small[1],
            free: &self.small[2],
            slots: &self.slots,
            capacity: self.capacity,
            mask: index_mask(self.capacity),
            message_size: self.message_size,
            words: 2 + self.message_size.div_ceil(8),
            intents: &self.intents,
            lanes: HEAP_LANES,
        }
    }

    /// A whole put by participant 1: claim, write, publish, notify.
    pub(crate) fn push(&self, msg: &[u8]) -> Result<(), PushFail> {
        self.push_as(msg, 1)
    }

    /// A whole put by participant `owner`: the one-step put, else the general one (as
    /// `engine::put_one` and `engine::put` do).
    pub(crate) fn push_as(&self, msg: &[u8], owner: u8) -> Result<(), PushFail> {
        let c = self.core();
        match c.push_one(
            msg,
            owner,
            c.lane_index(owner, 0),
            crate::sync::atomic::light_publish(),
        ) {
            OnePut::Done => {}
            OnePut::Withdrawn(cl) => return Err(self.withdraw(cl)),
            OnePut::Declined => match c.claim(1, owner, 0) {
                Ok(cl) => {
                    c.write(cl.pos, msg);
                    c.publish(cl);
                }
                Err(PushFail::Withdrawn(cl)) => return Err(self.withdraw(cl)),
                Err(e) => return Err(e),
            },
        }
        c.items_event().notify_published();
        Ok(())
    }

    /// A claim withdrawn after a close: voided (as `ring::withdraw` does under the lock),
    /// its lane cleared, sleepers woken; returns the close to report.
    fn withdraw(&self, cl: Claim) -> PushFail {
        let c = self.core();
        c.void_claim(cl.pos, c.seq(cl.pos).load(SeqCst));
        c.release_lane(cl);
        c.items_event().notify_all();
        c.closed_fail()
    }

    /// A batch put: claims as many slots as are free (one claim), writes, publishes.
    pub(crate) fn push_many(&self, msgs: &[&[u8]]) -> Result<usize, PushFail> {
        let c = self.core();
        let cl = c.claim(msgs.len(), 1, 0)?;
        for (i, m) in msgs[..cl.n].iter().enumerate() {
            c.write(cl.pos + i as u64, m);
        }
        c.publish(cl);
        c.items_event().notify_published();
        Ok(cl.n)
    }

    /// Closes the ring (the flag; a claim after it withdraws) and wakes everyone.
    pub(crate) fn close(&self) {
        let c = self.core();
        c.flags.fetch_or(RING_CLOSED, SeqCst);
        c.items_event().notify_all();
        c.free_event().notify_all();
    }
}

#[cfg(all(test, not(loom)))]
mod tests;

#[cfg(all(loom, test))]
mod loom_tests;
