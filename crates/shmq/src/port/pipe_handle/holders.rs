//! The pipe's holder table: which processes hold which end, and when an end is gone for good.
//!
//! The table has [`PIPE_HOLDERS`] entries of two words, `tag` and `deadline`, guarded by the
//! table's robust mutex together with the `gone` word (`docs/layout.md`, "Pipe segment"). An
//! entry is one of three kinds:
//!
//! - a **holder**: a process that holds the end through a handle ([`PipeEnd`](crate::PipeEnd));
//!   live while that process runs (pid and start time, [`process_alive`](crate::liveness::process_alive));
//! - a **fork reservation**: made in the parent just before a `fork` for every handle the process
//!   holds, and turned into the child's holder entry by the child before `fork` returns there;
//!   live until [`FORK_CLAIM_WINDOW`] after the fork (it only outlives the fork when the fork
//!   failed or the child died before running);
//! - a **hand-off token** ([`PipeEnd::hand_off`](crate::PipeEnd::hand_off)): keeps the end held
//!   for a process that will attach by name; [`PipeEnd::open`](crate::PipeEnd::open) of that end
//!   takes it over as its holder entry; live until its deadline, whatever happens to the process
//!   that made it.
//!
//! **End-of-file:** an end without any live entry is gone: its bit in `gone` is set for good and
//! the rings learn it through their flags ([`Table::apply`]). A sweep ([`Table::sweep`]) frees
//! entries that are no longer live; every table operation starts with one.
//!
//! Every entry changes with one store or compare-and-swap of its `tag` (its commit point), so a
//! process that dies anywhere leaves each entry whole or free. All writes happen under the lock
//! except the one a forked child makes: it swaps its reservation's tag for its own holder tag
//! with a compare-and-swap, which cannot create an entry (so it cannot race with the end-of-file
//! rule) and which fails if a sweep freed the reservation first.

use std::cell::RefCell;
use std::sync::{Arc, Mutex, MutexGuard as StdGuard, Once, PoisonError};
use std::time::{Duration, Instant};

use super::End;
use crate::engine::{self, Fail};
use crate::error::OpenError;
use crate::layout::{PIPE_HOLDERS, PipeLayout, RING_RECEIVERS_GONE, RING_SENDERS_GONE};
use crate::segment::Segment;
use crate::sync::atomic::{AtomicU64, Ordering::SeqCst};
use crate::sync::{LockError, MutexGuard};
use crate::sys;

/// How long a fork reservation keeps an end held if the child does not take it over (the fork
/// failed, or the child was killed before it ran). A child that runs takes it within
/// microseconds of the fork.
pub(crate) const FORK_CLAIM_WINDOW: Duration = Duration::from_secs(10);

/// The longest a `fork` waits for a holder table's lock to reserve an entry for the child; the
/// child of a fork that could not reserve one does not hold that end.
const FORK_LOCK_WAIT: Duration = Duration::from_secs(1);

/// What an entry stands for (bits 2–3 of its tag).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A process holding the end through a handle.
    Holder = 0,
    /// Reserved by a parent at `fork` for its child.
    Fork = 1,
    /// Left by [`PipeEnd::hand_off`](crate::PipeEnd::hand_off) for a process that will open the end.
    HandOff = 2,
}

/// Bits of the pid in a tag: Linux pids are below `2^22` (`PID_MAX_LIMIT`).
const PID_BITS: u32 = 22;
/// Where the start time begins in a tag.
const START_SHIFT: u32 = 4 + PID_BITS;
/// The largest start time a tag stores (38 bits: 87 years of uptime at 100 ticks a second); a
/// later one is stored as 0, "unknown", and the pid alone decides liveness.
const START_MAX: u64 = (1 << (64 - START_SHIFT)) - 1;

/// A decoded entry tag: `end | kind << 2 | pid << 4 | start << 26`; 0 is a free entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tag {
    pub(crate) end: End,
    pub(crate) kind: Kind,
    /// The holder's pid (for tokens and reservations: the process that made them).
    pub(crate) pid: u32,
    /// That process's start time in clock ticks since boot, 0 if unknown.
    pub(crate) start: u64,
}

impl Tag {
    /// A tag, or `None` if `pid` does not fit (it always does on Linux).
    pub(crate) fn new(end: End, kind: Kind, pid: u32, start: u64) -> Option<Tag> {
        (pid != 0 && pid < 1 << PID_BITS).then_some(Tag {
            end,
            kind,
            pid,
            start: if start > START_MAX { 0 } else { start },
        })
    }

    /// A tag for this process (its pid and start time).
    pub(crate) fn mine(end: End, kind: Kind) -> Result<Tag, OpenError> {
        let pid = std::process::id();
        let start = crate::liveness::process_start_time(pid).unwrap_or(0);
        Tag::new(end, kind, pid, start)
            .ok_or_else(|| OpenError::Corrupt(format!("pid {pid} does not fit a holder entry")))
    }

    pub(crate) fn encode(self) -> u64 {
        self.end.code()
            | (self.kind as u64) << 2
            | u64::from(self.pid) << 4
            | self.start << START_SHIFT
    }

    /// The tag in `word`, or `None` for a free entry or an impossible one.
    pub(crate) fn decode(word: u64) -> Option<Tag> {
        let end = End::from_code(word & 3)?;
        let kind = match (word >> 2) & 3 {
            0 => Kind::Holder,
            1 => Kind::Fork,
            2 => Kind::HandOff,
            _ => return None,
        };
        let pid = ((word >> 4) & ((1 << PID_BITS) - 1)) as u32;
        (pid != 0).then_some(Tag {
            end,
            kind,
            pid,
            start: word >> START_SHIFT,
        })
    }
}

pub(crate) fn table_full() -> OpenError {
    OpenError::TooManyHolders(format!(
        "the pipe's holder table is full ({PIPE_HOLDERS} handles, hand-offs and forks in progress hold its ends)"
    ))
}

/// The holder table, the `gone` word and the lock that guards them, over a segment.
pub(crate) struct Table<'a> {
    seg: &'a Segment,
    layout: &'a PipeLayout,
    words: &'a [AtomicU64],
    pub(crate) gone: &'a AtomicU64,
}

impl<'a> Table<'a> {
    pub(crate) fn new(seg: &'a Segment, layout: &'a PipeLayout) -> Result<Table<'a>, OpenError> {
        seg.mutex_at(layout.lock)?;
        Ok(Table {
            seg,
            layout,
            words: seg.slice_at::<AtomicU64>(layout.holders, 2 * PIPE_HOLDERS)?,
            gone: seg.at::<AtomicU64>(layout.gone)?,
        })
    }

    /// Takes the table's lock, waiting until `deadline` at most (`None`: as long as it takes). A
    /// previous owner that died left every entry whole or free (see the module), so the lock is
    /// marked consistent at once; the sweep every caller runs next removes the dead owner's
    /// entries and re-applies the ring flags it may not have set.
    pub(crate) fn lock(&self, deadline: Option<Instant>) -> Result<MutexGuard<'a>, Fail> {
        let m = self
            .seg
            .mutex_at(self.layout.lock)
            .map_err(|e| Fail::Corrupt(e.to_string()))?;
        let locked = match deadline {
            None => m.lock(),
            Some(d) => m.lock_until(d),
        };
        let mut g = locked.map_err(|e| match e {
            // The deadline passed with the lock still held by a live owner.
            LockError::WouldBlock => Fail::WouldBlock,
            e => Fail::Corrupt(format!("pipe holder table: {e}")),
        })?;
        g.make_consistent()
            .map_err(|e| Fail::Corrupt(format!("cannot mark the pipe lock consistent: {e}")))?;
        Ok(g)
    }

    pub(crate) fn tag(&self, i: usize) -> &AtomicU64 {
        &self.words[2 * i]
    }

    /// The `deadline` word of entry `i`: `CLOCK_MONOTONIC` nanoseconds until which a token or a
    /// reservation is live (unused by holders).
    pub(crate) fn deadline(&self, i: usize) -> &AtomicU64 {
        &self.words[2 * i + 1]
    }

    /// Writes an entry into a free slot; `None` if the table is full. Under the lock, or before
    /// publishing.
    pub(crate) fn insert(&self, tag: Tag, deadline: u64) -> Option<usize> {
        let i = (0..PIPE_HOLDERS).find(|&i| self.tag(i).load(SeqCst) == 0)?;
        self.deadline(i).store(deadline, SeqCst);
        // Commit point: the entry exists from this store on.
        self.tag(i).store(tag.encode(), SeqCst);
        Some(i)
    }

    /// Turns a live hand-off token of `tag.end` into the entry `tag`; returns its index, or
    /// `None` if there is no token. Under the lock, after a sweep (so the token is live).
    pub(crate) fn take_hand_off(&self, tag: Tag) -> Option<usize> {
        (0..PIPE_HOLDERS).find(|&i| {
            let word = self.tag(i).load(SeqCst);
            Tag::decode(word).is_some_and(|t| t.kind == Kind::HandOff && t.end == tag.end)
                // Commit point: the token is the opener's entry from here on.
                && self.tag(i).compare_exchange(word, tag.encode(), SeqCst, SeqCst).is_ok()
        })
    }

    /// Frees entry `i` if it still holds `word`; whether it did. Under the lock.
    pub(crate) fn release(&self, i: usize, word: u64) -> bool {
        // Commit point: the entry is gone from here on.
        self.tag(i)
            .compare_exchange(word, 0, SeqCst, SeqCst)
            .is_ok()
    }

    /// Replaces the reservation `from` in entry `i` with the holder entry `to`, without the
    /// lock (a forked child); fails if a sweep freed the reservation first.
    fn claim(&self, i: usize, from: u64, to: u64) -> bool {
        // Commit point: the child holds the end from here on.
        self.tag(i)
            .compare_exchange(from, to, SeqCst, SeqCst)
            .is_ok()
    }

    /// Which ends have an entry of any kind (bits as in `gone`), without checking liveness.
    pub(crate) fn held(&self) -> u64 {
        (0..PIPE_HOLDERS)
            .filter_map(|i| Tag::decode(self.tag(i).load(SeqCst)))
            .fold(0, |bits, t| bits | t.end.bit())
    }

    /// Whether entry `i`, holding `word`, is live at `now` (`CLOCK_MONOTONIC` nanoseconds).
    fn live(&self, i: usize, word: u64, now: u64) -> Option<Tag> {
        let t = Tag::decode(word)?;
        let live = match t.kind {
            Kind::Holder => crate::liveness::process_alive(t.pid, t.start),
            Kind::Fork | Kind::HandOff => now < self.deadline(i).load(SeqCst),
        };
        live.then_some(t)
    }

    /// Live holders, and live tokens and reservations, of end A and of end B, as seen at `now`;
    /// changes nothing (for [`Pipe::inspect`](crate::Pipe::inspect)).
    pub(crate) fn census(&self, now: u64) -> ([usize; 2], [usize; 2]) {
        let (mut holders, mut pending) = ([0; 2], [0; 2]);
        for i in 0..PIPE_HOLDERS {
            if let Some(t) = self.live(i, self.tag(i).load(SeqCst), now) {
                let side = usize::from(t.end == End::B);
                match t.kind {
                    Kind::Holder => holders[side] += 1,
                    Kind::Fork | Kind::HandOff => pending[side] += 1,
                }
            }
        }
        (holders, pending)
    }

    /// The live holder entries of `end` as seen at `now`, and the earliest deadline of its live
    /// tokens and reservations (`None` if it has none); changes nothing (for
    /// [`PipeEnd::peer_holders`](crate::PipeEnd::peer_holders)).
    pub(crate) fn holders_of(&self, end: End, now: u64) -> (Vec<Tag>, Option<u64>) {
        let (mut holders, mut until) = (Vec::new(), None::<u64>);
        for i in 0..PIPE_HOLDERS {
            let Some(t) = self.live(i, self.tag(i).load(SeqCst), now) else {
                continue;
            };
            if t.end != end {
                continue;
            }
            match t.kind {
                Kind::Holder => holders.push(t),
                Kind::Fork | Kind::HandOff => {
                    let d = self.deadline(i).load(SeqCst);
                    until = Some(until.map_or(d, |u| u.min(d)));
                }
            }
        }
        (holders, until)
    }

    /// Wakes every sleeper on the pipe's rings (their event words change): after a holder
    /// left, so that a waiter that watches the holders (a liveness watcher waiting for their
    /// exits) looks at the table again. Without the lock.
    pub(crate) fn wake_rings(&self) -> Result<(), Fail> {
        for ring in [self.layout.a_to_b, Some(self.layout.b_to_a)]
            .into_iter()
            .flatten()
        {
            self.seg
                .ring(&ring)
                .map_err(|e| Fail::Corrupt(e.to_string()))?
                .wake_everyone();
        }
        Ok(())
    }

    /// Frees every entry that is not live at `now` (a holder whose process no longer runs, an
    /// expired token or reservation, an impossible tag), then marks every end without an entry
    /// as gone. Returns the `gone` word. Under the lock.
    pub(crate) fn sweep(&self, now: u64) -> u64 {
        for i in 0..PIPE_HOLDERS {
            let word = self.tag(i).load(SeqCst);
            if word != 0 && self.live(i, word, now).is_none() {
                // A compare-and-swap: a forked child may be taking its reservation right now,
                // without the lock; then its entry stays.
                self.release(i, word);
            }
        }
        self.mark_unheld()
    }

    /// Sets the `gone` bit of every end without an entry; returns the `gone` word.
    pub(crate) fn mark_unheld(&self) -> u64 {
        let unheld = !self.held() & (End::A.bit() | End::B.bit());
        if unheld != 0 {
            // Commit point: an end is gone for good from this store on.
            self.gone.fetch_or(unheld, SeqCst);
        }
        self.gone.load(SeqCst)
    }

    /// Mirrors `gone` into the rings' flags (idempotent): each ring learns whether its sender
    /// and its receiver are gone, which wakes every caller blocked on it. Under the lock (lock
    /// order: table, then ring).
    pub(crate) fn apply(&self, gone: u64) -> Result<(), Fail> {
        let rings = [
            (self.layout.a_to_b, End::A, End::B),
            (Some(self.layout.b_to_a), End::B, End::A),
        ];
        for (ring, sender, receiver) in rings {
            let Some(ring) = ring else { continue };
            let mut bits = 0;
            if gone & sender.bit() != 0 {
                bits |= RING_SENDERS_GONE;
            }
            if gone & receiver.bit() != 0 {
                bits |= RING_RECEIVERS_GONE;
            }
            let ring = self
                .seg
                .ring(&ring)
                .map_err(|e| Fail::Corrupt(e.to_string()))?;
            if bits != 0 && ring.flags() & bits != bits {
                engine::set_flags(&ring, bits, true)?;
            }
        }
        Ok(())
    }

    /// Under the lock: sweeps, runs `f` with the swept `gone` word, marks ends left without an
    /// entry as gone and applies the flags.
    pub(crate) fn update<R>(&self, f: impl FnOnce(&Self, u64) -> R) -> Result<R, Fail> {
        self.update_until(None, f)
    }

    /// [`update`](Self::update), waiting for the lock until `deadline` at most
    /// ([`Fail::WouldBlock`] when it passes).
    pub(crate) fn update_until<R>(
        &self,
        deadline: Option<Instant>,
        f: impl FnOnce(&Self, u64) -> R,
    ) -> Result<R, Fail> {
        let guard = self.lock(deadline)?;
        let gone = self.sweep(sys::monotonic_ns());
        let r = f(self, gone);
        self.apply(self.mark_unheld())?;
        drop(guard);
        Ok(r)
    }
}

/// "No entry": a released handle, or a forked child's handle that could not take over its
/// reservation.
const NONE: u64 = u64::MAX;

/// One handle's entry in a holder table, shared by the handle and this process's list of live
/// handles, which the fork handlers walk.
pub(crate) struct Holding {
    pub(crate) seg: Arc<Segment>,
    pub(crate) layout: PipeLayout,
    pub(crate) end: End,
    /// The entry this handle holds, or [`NONE`].
    entry: AtomicU64,
    /// The tag it holds the entry with (what a release compares against).
    tag: AtomicU64,
    /// During a fork: the entry reserved for the child, or [`NONE`].
    reserved: AtomicU64,
    /// During a fork: the reservation's tag.
    reserved_tag: AtomicU64,
}

/// Every handle of this process that holds an entry; locked from the `prepare` fork handler to
/// the `parent` or `child` one.
static LIVE: Mutex<Vec<Arc<Holding>>> = Mutex::new(Vec::new());

/// The fork handlers, registered when the first handle is made.
static HOOKS: Once = Once::new();

thread_local! {
    /// [`LIVE`]'s guard, held by the forking thread across the fork.
    static FORKING: RefCell<Option<StdGuard<'static, Vec<Arc<Holding>>>>> = const { RefCell::new(None) };
}

fn live() -> StdGuard<'static, Vec<Arc<Holding>>> {
    LIVE.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Holding {
    /// Records a handle that holds entry `entry` with `tag`, so that a `fork` passes it on.
    pub(crate) fn register(
        seg: Arc<Segment>,
        layout: PipeLayout,
        end: End,
        entry: usize,
        tag: Tag,
    ) -> Arc<Holding> {
        HOOKS.call_once(|| {
            // Without the handlers (the call fails only without memory) a forked child holds
            // nothing, as before they existed; nothing else changes.
            let _ = sys::at_fork(prepare_fork, parent_after_fork, child_after_fork);
        });
        let h = Arc::new(Holding {
            seg,
            layout,
            end,
            entry: AtomicU64::new(entry as u64),
            tag: AtomicU64::new(tag.encode()),
            reserved: AtomicU64::new(NONE),
            reserved_tag: AtomicU64::new(0),
        });
        live().push(Arc::clone(&h));
        h
    }

    pub(crate) fn table(&self) -> Table<'_> {
        // Checked when the handle was made; the layout is immutable, so this cannot fail.
        Table::new(&self.seg, &self.layout)
            .unwrap_or_else(|e| unreachable!("validated holder table: {e}"))
    }

    /// This handle's entry, if it holds one (for the tests).
    #[cfg(test)]
    pub(crate) fn entry(&self) -> Option<usize> {
        let i = self.entry.load(SeqCst);
        (i != NONE).then_some(i as usize)
    }

    /// Leaves the table (idempotent). If this was the end's last entry, the end is gone.
    pub(crate) fn release(self: &Arc<Self>) -> Result<(), Fail> {
        live().retain(|h| !Arc::ptr_eq(h, self));
        let i = self.entry.swap(NONE, SeqCst);
        let word = self.tag.load(SeqCst);
        // A copy of the handle in a child made without the fork handlers (a raw `clone`) still
        // names the parent's entry: it must not free it. One `getpid` per release, not per
        // message.
        let mine = Tag::decode(word).is_some_and(|t| t.pid == std::process::id());
        if i == NONE || !mine {
            return Ok(());
        }
        let t = self.table();
        t.update(|t, _| {
            t.release(i as usize, word);
        })?;
        // A holder left without (necessarily) ending the end: waiters that watch the holders
        // look again (the end's last holder's `apply` woke them already).
        t.wake_rings()
    }
}

/// `prepare` fork handler: reserves an entry for the child for every handle this process holds.
extern "C" fn prepare_fork() {
    let live = live();
    let pid = std::process::id();
    let start = crate::liveness::process_start_time(pid).unwrap_or(0);
    let until = sys::monotonic_ns().saturating_add(FORK_CLAIM_WINDOW.as_nanos() as u64);
    for h in live.iter() {
        h.reserved.store(NONE, SeqCst);
        let Some(tag) = Tag::new(h.end, Kind::Fork, pid, start) else {
            continue;
        };
        if h.entry.load(SeqCst) == NONE {
            continue;
        }
        let t = h.table();
        let wait = Instant::now() + FORK_LOCK_WAIT;
        if let Ok(Some(i)) = t.update_until(Some(wait), |t, _| t.insert(tag, until)) {
            h.reserved_tag.store(tag.encode(), SeqCst);
            h.reserved.store(i as u64, SeqCst);
        }
    }
    // Keep the list locked across the fork, so that the child finds it whole.
    // (Were the thread's locals gone, the closure, and with it the guard, would be dropped.)
    let _ = FORKING.try_with(move |f| {
        f.replace(Some(live));
    });
}

/// `parent` fork handler: the reservations are the child's now.
extern "C" fn parent_after_fork() {
    let _ = FORKING.try_with(|f| {
        if let Some(live) = f.take() {
            for h in live.iter() {
                h.reserved.store(NONE, SeqCst);
            }
        }
    });
}

/// `child` fork handler (in the child, before `fork` returns there): takes over the reserved
/// entries, so that each inherited handle is this process's own holder. Only atomics, reads of
/// `/proc/self/stat` and `getpid`.
extern "C" fn child_after_fork() {
    let _ = FORKING.try_with(|f| {
        let Some(live) = f.take() else { return };
        let pid = std::process::id();
        let start = crate::liveness::process_start_time(pid).unwrap_or(0);
        for h in live.iter() {
            let i = h.reserved.swap(NONE, SeqCst);
            let mine = Tag::new(h.end, Kind::Holder, pid, start);
            let took = match (i, mine) {
                (NONE, _) | (_, None) => false,
                (i, Some(mine)) => {
                    h.table()
                        .claim(i as usize, h.reserved_tag.load(SeqCst), mine.encode())
                }
            };
            if took {
                h.entry.store(i, SeqCst);
                h.tag.store(mine.map_or(0, Tag::encode), SeqCst);
            } else {
                h.entry.store(NONE, SeqCst);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::Options;
    use crate::{Pipe, PipeEnd, TryRecvError};

    fn pipe() -> (PipeEnd, PipeEnd) {
        let opts = Options {
            capacity: 2,
            message_size: 8,
            ..Default::default()
        };
        Pipe::anonymous(&opts, true).unwrap()
    }

    /// A token or a reservation keeps its end held up to its deadline, not one nanosecond longer;
    /// then the end is gone and the other side reads end-of-file.
    #[test]
    fn tokens_and_reservations_hold_their_end_until_their_deadline() {
        for kind in [Kind::HandOff, Kind::Fork] {
            let (a, b) = pipe();
            let t = a.table();
            let deadline = sys::monotonic_ns() + 3_600_000_000_000;
            let tag = Tag::mine(End::B, kind).unwrap();
            let i = t.update(|t, _| t.insert(tag, deadline)).unwrap().unwrap();
            drop(b); // the token is now end B's only entry
            assert_eq!(
                a.try_recv(),
                Err(TryRecvError::Empty),
                "{kind:?} holds end B"
            );
            assert_eq!(a.table().census(deadline - 1), ([1, 0], [0, 1]));
            let guard = t.lock(None).unwrap();
            assert_eq!(
                t.sweep(deadline - 1) & End::B.bit(),
                0,
                "{kind:?} before its deadline"
            );
            assert_eq!(t.tag(i).load(SeqCst), tag.encode());
            let gone = t.sweep(deadline);
            assert_eq!(
                gone & End::B.bit(),
                End::B.bit(),
                "{kind:?} at its deadline"
            );
            assert_eq!(t.tag(i).load(SeqCst), 0, "the expired {kind:?} is freed");
            t.apply(gone).unwrap();
            drop(guard);
            assert_eq!(a.try_recv(), Err(TryRecvError::Disconnected));
        }
    }

    /// `open` takes over a hand-off token of its own end (no new entry), never one of the other
    /// end, and a fork reservation never; without a token it takes a free entry.
    #[test]
    fn open_takes_a_hand_off_token_of_its_end_only() {
        let (a, b) = pipe();
        let t = a.table();
        let far = sys::monotonic_ns() + 3_600_000_000_000;
        let token_a = t
            .update(|t, _| t.insert(Tag::mine(End::A, Kind::HandOff).unwrap(), far))
            .unwrap()
            .unwrap();
        let fork_b = t
            .update(|t, _| t.insert(Tag::mine(End::B, Kind::Fork).unwrap(), far))
            .unwrap()
            .unwrap();
        let token_b = t
            .update(|t, _| t.insert(Tag::mine(End::B, Kind::HandOff).unwrap(), far))
            .unwrap()
            .unwrap();
        let mine = Tag::mine(End::B, Kind::Holder).unwrap();
        assert_eq!(
            t.update(|t, _| t.take_hand_off(mine)).unwrap(),
            Some(token_b)
        );
        assert_eq!(t.tag(token_b).load(SeqCst), mine.encode());
        assert_eq!(t.update(|t, _| t.take_hand_off(mine)).unwrap(), None);
        assert_eq!(
            Tag::decode(t.tag(token_a).load(SeqCst)).unwrap().kind,
            Kind::HandOff
        );
        assert_eq!(
            Tag::decode(t.tag(fork_b).load(SeqCst)).unwrap().kind,
            Kind::Fork
        );
        drop((a, b));
    }

    #[test]
    fn tags_round_trip_and_reject_impossible_words() {
        for (end, kind) in [
            (End::A, Kind::Holder),
            (End::B, Kind::Fork),
            (End::A, Kind::HandOff),
        ] {
            let t = Tag::new(end, kind, (1 << PID_BITS) - 1, START_MAX).unwrap();
            assert_eq!(Tag::decode(t.encode()), Some(t));
        }
        let late = Tag::new(End::B, Kind::Holder, 7, START_MAX + 1).unwrap();
        assert_eq!(late.start, 0, "a start time that does not fit is unknown");
        assert_eq!(Tag::new(End::A, Kind::Holder, 1 << PID_BITS, 0), None);
        assert_eq!(Tag::new(End::A, Kind::Holder, 0, 0), None);
        assert_eq!(Tag::decode(0), None);
        assert_eq!(Tag::decode(3 | 1 << 4), None, "end code 3");
        assert_eq!(Tag::decode(1 | 3 << 2 | 1 << 4), None, "kind 3");
        assert_eq!(Tag::decode(1), None, "pid 0");
    }
}
