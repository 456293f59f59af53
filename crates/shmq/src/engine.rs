//! The blocking loops under the message port (`port.rs`), shared by [`Queue`](crate::Queue)
//! and the pipe.
//!
//! The common put and get first try one step that declines, having changed nothing, when the
//! case is not plain ([`put_one`], [`get_one_into`], [`get_one_vec`]); the loops below sort out
//! the rest. A put claims a slot without the lock (as its registered participant, named in an
//! intent lane of its row; under the lock only when the registry is full or every lane of the
//! row is busy) and, if the ring is full, waits on the `free` event count; a get takes no lock
//! and waits on the `items` event count, voiding under the lock a claim that no live process's
//! lane covers (or whose mark names a dead owner), except the zero-copy gets
//! ([`get_reserved`]), which read the front in place under the lock. A wait spins briefly,
//! then sleeps in slices; after each slice the caller's `recheck` runs (pipes use it to notice
//! dead peers), and at the deadline one last attempt is made, so a wake-up that arrives
//! together with the deadline is never lost.

use std::cell::Cell;
use std::time::{Duration, Instant};

use crate::layout::{RING_CLOSED, RING_RECEIVERS_GONE, RING_SENDERS_GONE};
use crate::limits::TRY_LOCK_WAIT;
use crate::lockfree::{Core, LOCK_OWNER, OnePut, PopFail, claim_owner, is_mark, wait_for};
use crate::ring::{Locked, Producer, PushFail, Ring, RingError, withdraw};
use crate::sync::semaphore::SLEEP_SLICE;

/// How long a consumer waits for an unpublished claim at the front before it checks whether
/// the claim's owner still lives (and again after each such period).
const CLAIM_PATIENCE: Duration = Duration::from_millis(10);

/// How long a `try_*` get waits for an unpublished claim at the front before it checks the
/// owner (a live owner's claim makes it `Empty`: that put has not returned yet).
const CLAIM_PATIENCE_NOW: Duration = Duration::from_micros(50);

thread_local! {
    /// This thread's view of its process: `(fork generation, pid, start time)`.
    static PROCESS: Cell<Option<(u64, u32, u64)>> = const { Cell::new(None) };
    /// The participant entry last used: `(ring control address, fork generation, entry word,
    /// owner, light, lane)`; owner 0 means "the registry was full: put under the lock"; light is
    /// [`light_publish`](crate::sync::atomic::light_publish) in that generation; lane is the
    /// index of this thread's first intent lane in the ring's lanes ([`Core::lane_index`]).
    static PARTICIPANT: Cell<(usize, u64, u64, u8, bool, usize)> =
        const { Cell::new((0, 0, 0, 0, false, 0)) };
    /// This thread's first intent lane in its process's registry row (+ 1; 0: not yet
    /// chosen): threads take lanes in turn, so that the threads of a process that put at once
    /// rarely try the same lane.
    static LANE: Cell<usize> = const { Cell::new(0) };
}

/// The intent lane this thread tries first ([`LANE`]).
#[inline]
fn lane() -> usize {
    let l = LANE.get();
    if l != 0 {
        return l - 1;
    }
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let l = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % crate::layout::LANES;
    LANE.set(l + 1);
    l
}

/// The calling process's pid and start time (cached; refreshed after a fork).
fn process() -> (u64, u32, u64) {
    let generation = crate::sys::fork_generation();
    match PROCESS.get() {
        Some(p) if p.0 == generation => p,
        _ => {
            let pid = crate::sys::getpid();
            let start = crate::liveness::process_start_time(pid).unwrap_or(0);
            let p = (generation, pid, start);
            PROCESS.set(Some(p));
            p
        }
    }
}

/// This process's participant number in `ring` (its registry entry + 1), or
/// [`LOCK_OWNER`] when the registry is full of live processes. Cached per thread and ring, and
/// checked against the entry's word (one load of a line nobody writes), so a put makes no
/// system call; a fork (new generation) or a freed entry makes the next put look again.
#[inline]
fn participant(ring: &Ring<'_>) -> u8 {
    participant_and_light(ring).0
}

/// [`participant`], whether this process publishes with the light side of the asymmetric
/// barrier (`sync::atomic::light_publish`), and this thread's first intent lane (an index into
/// the ring's lanes), from the same cache.
#[inline]
fn participant_and_light(ring: &Ring<'_>) -> (u8, bool, usize) {
    let addr = std::ptr::from_ref(ring.control()) as usize;
    let generation = crate::sys::fork_generation_now();
    let (a, g, w, o, light, lane) = PARTICIPANT.get();
    if a == addr && g == generation {
        if o == LOCK_OWNER {
            return (o, light, lane);
        }
        if ring.participants()[o as usize - 1]
            .id
            .load(crate::sync::atomic::Ordering::Relaxed)
            == w
        {
            return (o, light, lane);
        }
    }
    register(ring, addr)
}

#[cold]
#[inline(never)]
fn register(ring: &Ring<'_>, addr: usize) -> (u8, bool, usize) {
    use crate::sync::atomic::Ordering::SeqCst;
    crate::sync::atomic::enable_light_publish();
    let (generation, pid, start) = process();
    let entries = ring.participants();
    let found = |entries: &[crate::layout::Participant]| {
        // An entry of this process (another thread took it), then a free one.
        for (i, p) in entries.iter().enumerate() {
            let id = p.id.load(SeqCst);
            if id as u32 == pid && p.start.load(SeqCst) == start {
                return Some((i, id));
            }
        }
        for (i, p) in entries.iter().enumerate() {
            let id = p.id.load(SeqCst);
            if id as u32 == 0 {
                let mine = (id & !0xffff_ffff) | u64::from(pid);
                if p.id.compare_exchange(id, mine, SeqCst, SeqCst).is_ok() {
                    p.start.store(start, SeqCst);
                    return Some((i, mine));
                }
            }
        }
        None
    };
    let mut taken = found(entries);
    if taken.is_none() {
        // Full: free the entries of dead processes (under the lock, waited for no longer
        // than a `try_*` call waits), then look again.
        if let Ok(mut l) = ring.lock(Instant::now().checked_add(TRY_LOCK_WAIT)) {
            l.reclaim(crate::liveness::process_alive);
            drop(l);
            ring.wake_everyone();
        }
        taken = found(entries);
    }
    let (id, owner) = match taken {
        Some((i, id)) => (id, i as u8 + 1),
        None => (0, LOCK_OWNER),
    };
    let light = crate::sync::atomic::light_publish();
    let lane = ring.core().lane_index(owner, lane());
    PARTICIPANT.set((addr, generation, id, owner, light, lane));
    (owner, light, lane)
}

/// Whether participant `owner` of `ring` (not [`LOCK_OWNER`]) still lives.
fn owner_alive(ring: &Ring<'_>, owner: u8) -> bool {
    use crate::sync::atomic::Ordering::SeqCst;
    let Some(p) = (owner as usize)
        .checked_sub(1)
        .and_then(|i| ring.participants().get(i))
    else {
        return false;
    };
    let pid = p.id.load(SeqCst) as u32;
    if pid == 0 {
        return false;
    }
    let (_, me, _) = process();
    pid == me || crate::liveness::process_alive(pid, p.start.load(SeqCst))
}

/// How long an operation may wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    /// Not at all (`try_*`).
    Never,
    /// Until this instant (`*_deadline`, `*_timeout`).
    Until(Instant),
    /// As long as it takes.
    Forever,
}

impl Wait {
    /// `Until(now + d)`, or `Forever` if that instant is not representable.
    pub(crate) fn after(d: Duration) -> Wait {
        Instant::now()
            .checked_add(d)
            .map_or(Wait::Forever, Wait::Until)
    }

    fn deadline(self) -> Option<Instant> {
        match self {
            Wait::Until(d) => Some(d),
            _ => None,
        }
    }
}

/// Why an operation did not complete; the public error types are made from this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fail {
    /// Full / Empty for `Wait::Never`, Timeout otherwise.
    WouldBlock,
    Closed,
    Disconnected,
    TooLarge {
        len: usize,
        max: usize,
    },
    TooSmall {
        needed: usize,
        available: usize,
    },
    Corrupt(String),
    /// No room in `/dev/shm` for a large message's side segment of `needed` bytes.
    NoSpace {
        needed: usize,
        reason: String,
    },
    /// A zero-copy reader holds the front ([`PopFail::Reserved`]); never leaves this module
    /// ([`get`] waits on the ring's lock and retries).
    Reserved,
    /// An unpublished claim is at the front ([`PopFail::Pending`]); never leaves this module
    /// ([`get`] waits for it, or voids it when its owner is dead).
    Pending {
        pos: u64,
        word: u64,
    },
    /// The front holds a large message ([`PopFail::Large`]): the caller reads it through the
    /// reserved front (`crate::large`).
    Large,
}

impl std::fmt::Display for Fail {
    /// The text users see when a `Fail` ends up inside a `Corrupt` error's reason.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fail::WouldBlock => f.write_str("the operation would block"),
            Fail::Closed => f.write_str("the queue is closed"),
            Fail::Disconnected => f.write_str("the other side is gone"),
            Fail::TooLarge { len, max } => {
                write!(f, "a message of {len} bytes exceeds the limit of {max}")
            }
            Fail::TooSmall { needed, available } => {
                write!(f, "a buffer of {available} bytes is too small for {needed}")
            }
            Fail::Corrupt(s) => f.write_str(s),
            Fail::NoSpace { needed, reason } => {
                write!(f, "no room for {needed} bytes in /dev/shm: {reason}")
            }
            Fail::Reserved => f.write_str("a zero-copy reader holds the front"),
            Fail::Pending { .. } => f.write_str("an unpublished put holds the front"),
            Fail::Large => f.write_str("the front message is a large one"),
        }
    }
}

impl From<RingError> for Fail {
    fn from(e: RingError) -> Self {
        match e {
            RingError::Timeout => Fail::WouldBlock,
            RingError::Corrupt(s) => Fail::Corrupt(s),
        }
    }
}

/// How a caller waits: the sleep slice and what to re-check after each one.
#[derive(Clone, Copy)]
pub(crate) struct Waiting<'a> {
    pub(crate) slice: Duration,
    pub(crate) recheck: Option<&'a dyn Fn()>,
}

impl Waiting<'_> {
    pub(crate) const PLAIN: Waiting<'static> = Waiting {
        slice: SLEEP_SLICE,
        recheck: None,
    };
}

impl From<PopFail> for Fail {
    fn from(e: PopFail) -> Self {
        match e {
            PopFail::TooSmall { needed, available } => Fail::TooSmall { needed, available },
            PopFail::Corrupt(s) => Fail::Corrupt(s),
            PopFail::Reserved => Fail::Reserved,
            PopFail::Pending { pos, word } => Fail::Pending { pos, word },
            PopFail::Large => Fail::Large,
        }
    }
}

/// Takes the ring's lock: until the caller's deadline, for [`TRY_LOCK_WAIT`] at most for a
/// `try_*` call (which must not wait without bound on a holder that lives but never lets go),
/// or as long as the holder lives for a call without a deadline.
fn lock<'r, 'a>(ring: &'r Ring<'a>, wait: Wait) -> Result<Locked<'r, 'a>, Fail> {
    let deadline = match wait {
        Wait::Never => Instant::now().checked_add(TRY_LOCK_WAIT),
        Wait::Until(d) => Some(d),
        Wait::Forever => None,
    };
    Ok(ring.lock(deadline)?)
}

/// Runs `op` as a lock-free producer (or under the lock when the participant registry is
/// full) until it publishes something, waiting for free slots in between. `op` returns how
/// many messages it published and a result.
/// The common put of one message within the slot size, in one step ([`Core::push_one`]) by a
/// process with a registry entry: true when it is published (and sleepers are woken). False,
/// having changed nothing, whenever anything is not plain; the caller then calls [`put`].
#[inline]
pub(crate) fn put_one(ring: &Ring<'_>, msg: &[u8]) -> bool {
    if msg.len() > ring.core().message_size {
        return false;
    }
    let (owner, light, lane) = participant_and_light(ring);
    if owner == LOCK_OWNER {
        return false;
    }
    match ring.core().push_one(msg, owner, lane, light) {
        OnePut::Done => {
            ring.items().notify_published();
            true
        }
        OnePut::Declined => false,
        OnePut::Withdrawn(c) => {
            // Closed under the claim: voided; the general path then reports the close.
            withdraw(ring, None, c);
            false
        }
    }
}

/// The common get into `buf`, in one step ([`Core::pop_one_into`]): the length of the message
/// taken (and sleepers woken), or `None`, having taken nothing; the caller then calls [`get`].
#[inline]
pub(crate) fn get_one_into(ring: &Ring<'_>, buf: &mut [u8]) -> Option<usize> {
    let n = ring.core().pop_one_into(buf)?;
    ring.free().notify();
    Some(n)
}

/// [`get_one_into`] into a new vector.
#[inline]
pub(crate) fn get_one_vec(ring: &Ring<'_>) -> Option<Vec<u8>> {
    let v = ring.core().pop_one_vec()?;
    ring.free().notify();
    Some(v)
}

pub(crate) fn put<R>(
    ring: &Ring<'_>,
    wait: Wait,
    how: Waiting<'_>,
    mut op: impl FnMut(&mut Producer<'_, '_>) -> Result<(usize, R), PushFail>,
) -> Result<R, Fail> {
    let mut last_try = wait == Wait::Never;
    let mut owner = participant(ring);
    let lane = lane();
    loop {
        let r = if owner == LOCK_OWNER {
            let l = lock(ring, wait)?;
            op(&mut Producer::new(ring, owner, 0, Some(l)))
        } else {
            op(&mut Producer::new(ring, owner, lane, None))
        };
        match r {
            Ok((n, r)) => {
                if n > 0 {
                    ring.items().notify_published();
                }
                return Ok(r);
            }
            Err(PushFail::Full) => {}
            Err(PushFail::Closed) => return Err(Fail::Closed),
            Err(PushFail::ReceiversGone) => return Err(Fail::Disconnected),
            Err(PushFail::TooLarge { len, max }) => return Err(Fail::TooLarge { len, max }),
            Err(PushFail::Corrupt(s)) => return Err(Fail::Corrupt(s)),
            Err(PushFail::Busy) => {
                // Every lane of this process's row is in use: this put goes under the lock.
                owner = LOCK_OWNER;
                continue;
            }
            Err(PushFail::Withdrawn(c)) => {
                withdraw(ring, None, c);
                return Err(match ring.core().closed_fail() {
                    PushFail::ReceiversGone => Fail::Disconnected,
                    _ => Fail::Closed,
                });
            }
        }
        if last_try {
            return Err(Fail::WouldBlock);
        }
        let core = ring.core();
        let ready = || core.has_free() || core.flags() & (RING_CLOSED | RING_RECEIVERS_GONE) != 0;
        if !wait_for(ring.free(), ready, wait.deadline(), how.slice) {
            last_try = true;
        }
        if let Some(f) = how.recheck {
            f();
        }
    }
}

/// A get met an unpublished claim at the front (`word` at `pos`): waits for the word to change
/// (the put publishes and notifies `items`), and after [`CLAIM_PATIENCE`] (a `try_*` get:
/// [`CLAIM_PATIENCE_NOW`]) checks its owner: a dead owner's claim (or one made under the lock,
/// whose holder must have died if we get the lock) is voided under the lock. Returns
/// `WouldBlock` when the owner lives and the caller may wait no longer.
pub(crate) fn wait_out_claim(ring: &Ring<'_>, wait: Wait, pos: u64, word: u64) -> Result<(), Fail> {
    let core = ring.core();
    let changed = || !core.holds(pos, word);
    let now = Instant::now();
    let patience = if wait == Wait::Never {
        CLAIM_PATIENCE_NOW
    } else {
        CLAIM_PATIENCE
    };
    let until = match wait.deadline() {
        Some(d) => d.min(now + patience),
        None => now + patience,
    };
    if wait_for(ring.items(), changed, Some(until), patience) && changed() {
        return Ok(());
    }
    let dead = if is_mark(word) {
        // A mark names the owner.
        let owner = claim_owner(word);
        owner == LOCK_OWNER || !owner_alive(ring, owner)
    } else {
        // A claim in flight: dead unless a live process names the position in a lane (the
        // lock holder's row is decided by taking the lock, below).
        !core
            .cover(pos)
            .into_iter()
            .any(|row| row != LOCK_OWNER && owner_alive(ring, row))
    };
    if dead {
        let mut l = lock(ring, wait)?;
        if !is_mark(word) && ring.live_intent(pos, &crate::liveness::process_alive) {
            // A producer that named `pos` took the lane after our scan: not dead after all.
            return Ok(());
        }
        let n = l.void(pos, word);
        let idle = l.unfinished() == 0;
        drop(l);
        if n > 0 {
            ring.items().notify_all();
            ring.free().notify();
            if idle {
                ring.control().joined.0.wake_all();
            }
        }
        return Ok(());
    }
    if wait == Wait::Never || wait.deadline().is_some_and(|d| Instant::now() >= d) {
        return Err(Fail::WouldBlock);
    }
    Ok(())
}

/// Runs `op` (which takes no lock) until it takes something, waiting for ready messages in
/// between. `op` returns `None` when the ring is empty, else how many it took and a result.
pub(crate) fn get<R>(
    ring: &Ring<'_>,
    wait: Wait,
    how: Waiting<'_>,
    mut op: impl FnMut(&Ring<'_>) -> Result<Option<(usize, R)>, Fail>,
) -> Result<R, Fail> {
    let mut last_try = wait == Wait::Never;
    loop {
        match op(ring) {
            Ok(Some((n, r))) => {
                if n > 0 {
                    ring.free().notify();
                }
                return Ok(r);
            }
            Ok(None) => {}
            Err(Fail::Reserved) => {
                wait_out_reservation(ring, wait)?;
                continue;
            }
            Err(Fail::Pending { pos, word }) => {
                wait_out_claim(ring, wait, pos, word)?;
                if let Some(f) = how.recheck {
                    f();
                }
                continue;
            }
            Err(f) => return Err(f),
        }
        wait_for_items(ring, wait, how, &mut last_try)?;
    }
}

/// Waits until a zero-copy reader's reservation of the front ends: it holds the ring's lock
/// for as long as it reads, and the lock is repaired (the reservation cleared) if it dies.
/// Like a put, `Wait::Never` waits for the lock ([`TRY_LOCK_WAIT`] at most), never for messages.
fn wait_out_reservation(ring: &Ring<'_>, wait: Wait) -> Result<(), Fail> {
    let l = lock(ring, wait)?;
    // Every reader ends its reservation before it unlocks, and a dead one's is cleared by the
    // repair: a bit still set under our lock is damage, not a reader.
    if ring.core().is_reserved() {
        return Err(Fail::Corrupt(
            "the ring's head is reserved, but its reader does not hold the lock".into(),
        ));
    }
    drop(l);
    Ok(())
}

/// After a get found the ring empty: `Closed`/`Disconnected` once a close is seen and the
/// ring is drained, `WouldBlock` after the last try, else waits for items (or returns at once
/// when the close bit was seen with items left); the caller then tries again.
fn wait_for_items(
    ring: &Ring<'_>,
    wait: Wait,
    how: Waiting<'_>,
    last_try: &mut bool,
) -> Result<(), Fail> {
    // Empty when `op` looked. After a close (or the last sender leaving) a put may still be
    // in flight (it passed its check of the flags before): the ring is drained for good once
    // `tail` is at the free front after the close was seen (a claim after that checks the
    // flags again and withdraws); a claim that won the race is delivered first.
    let flags = ring.flags();
    if flags & (RING_CLOSED | RING_SENDERS_GONE) != 0 {
        if ring.core().drained()? {
            return Err(if flags & RING_CLOSED != 0 {
                Fail::Closed
            } else {
                Fail::Disconnected
            });
        }
        return Ok(());
    }
    if *last_try {
        return Err(Fail::WouldBlock);
    }
    let core = ring.core();
    let ready = || core.has_items() || core.flags() & (RING_CLOSED | RING_SENDERS_GONE) != 0;
    // (A deadline that passed while the condition held, which only a damaged segment makes
    // last, ends the wait too: the caller makes its last try.)
    if !wait_for(ring.items(), ready, wait.deadline(), how.slice)
        || wait.deadline().is_some_and(|d| Instant::now() >= d)
    {
        *last_try = true;
    }
    if let Some(f) = how.recheck {
        f();
    }
    Ok(())
}

/// Ends a reservation of the front when dropped: `head` moves by `taken` (0 unless the read
/// committed), so a read that fails or panics leaves the messages first.
struct Reservation<'c, 'a> {
    core: &'c Core<'a>,
    head: u64,
    taken: u64,
}

impl Drop for Reservation<'_, '_> {
    fn drop(&mut self) {
        self.core.release(self.head, self.taken);
    }
}

/// A zero-copy get: under the ring's lock, reserves the front (no consumer takes it and no
/// producer rewrites it meanwhile), runs `op` on it in place, then ends the reservation,
/// taking as many messages as `op` says (0: they stay first), and unlocks; waits for items in
/// between. `op` gets the locked ring, the front position and how many messages are ready,
/// and returns how many it took and a result. A reader that dies inside `op` takes nothing:
/// the next locker clears its reservation.
pub(crate) fn get_reserved<R>(
    ring: &Ring<'_>,
    wait: Wait,
    how: Waiting<'_>,
    op: impl FnMut(&Locked<'_, '_>, u64, u64) -> Result<(u64, R), Fail>,
) -> Result<R, Fail> {
    get_reserved_up_to(ring, wait, how, 1, op)
}

/// [`get_reserved`] for a reader of up to `max` messages: `op` is told how many of them (at
/// least 1, at most `max`) are ready.
pub(crate) fn get_reserved_up_to<R>(
    ring: &Ring<'_>,
    wait: Wait,
    how: Waiting<'_>,
    max: u64,
    mut op: impl FnMut(&Locked<'_, '_>, u64, u64) -> Result<(u64, R), Fail>,
) -> Result<R, Fail> {
    let mut last_try = wait == Wait::Never;
    loop {
        let l = lock(ring, wait)?;
        let front = match ring.core().reserve_front_up_to(max) {
            Err(PopFail::Pending { pos, word }) => {
                drop(l);
                wait_out_claim(ring, wait, pos, word)?;
                continue;
            }
            other => other?,
        };
        if let Some((head, avail)) = front {
            let mut res = Reservation {
                core: ring.core(),
                head,
                taken: 0,
            };
            let r = op(&l, head, avail);
            if let Ok((n, _)) = &r {
                res.taken = *n;
            }
            let n = res.taken;
            drop(res);
            drop(l);
            if n > 0 {
                ring.free().notify();
            }
            return r.map(|(_, r)| r);
        }
        drop(l);
        wait_for_items(ring, wait, how, &mut last_try)?;
    }
}

/// Marks `n` tasks done; wakes joiners when none is left.
pub(crate) fn task_done(ring: &Ring<'_>, n: u64) -> Result<u64, Result<u64, Fail>> {
    let mut l = lock(ring, Wait::Forever).map_err(Err)?;
    let left = l.task_done(n).map_err(Ok)?;
    drop(l);
    if left == 0 {
        ring.control().joined.0.wake_all();
    }
    Ok(left)
}

/// Waits until no task is unfinished.
pub(crate) fn join(ring: &Ring<'_>, wait: Wait) -> Result<(), Fail> {
    loop {
        let l = lock(ring, wait)?;
        if l.unfinished() == 0 {
            return Ok(());
        }
        let generation = l.join_generation();
        drop(l);
        let now = Instant::now();
        let wake_at = match wait.deadline() {
            Some(d) if now >= d => return Err(Fail::WouldBlock),
            Some(d) => d.min(now + SLEEP_SLICE),
            None => now + SLEEP_SLICE,
        };
        ring.control()
            .joined
            .0
            .wait_while(generation, Some(wake_at));
    }
}

/// Sets or clears ring state bits under the lock, then wakes every sleeper.
pub(crate) fn set_flags(ring: &Ring<'_>, bits: u32, on: bool) -> Result<(), Fail> {
    let mut l = lock(ring, Wait::Forever)?;
    l.set_flags(bits, on);
    drop(l);
    ring.wake_everyone();
    Ok(())
}

/// Copies the front message into `buf`, or reports that it does not fit (leaving it queued).
pub(crate) fn pop_into(ring: &Ring<'_>, buf: &mut [u8]) -> Result<Option<(usize, usize)>, Fail> {
    Ok(ring.pop_into(buf)?.map(|n| (1, n)))
}

/// Test hook: names the next position in an intent lane of this process's row, as a put does
/// before its CAS of `tail`, and claims nothing: the caller is to stop for good there.
#[cfg(feature = "test-hooks")]
pub(crate) fn name_and_stop(ring: &Ring<'_>) -> Option<u64> {
    ring.core().name_and_die(participant(ring), lane())
}

/// Test hook: claims slots for `msgs` as this process's participant, writes them and
/// publishes all but the first (the commit), then returns the claim's position: the caller is
/// to stop for good (be SIGKILLed) there, as a producer that dies before its commit.
#[cfg(feature = "test-hooks")]
pub(crate) fn claim_and_stop(ring: &Ring<'_>, msgs: &[&[u8]]) -> Result<u64, Fail> {
    let owner = participant(ring);
    let core = ring.core();
    let c = core.claim(msgs.len(), owner, lane()).map_err(|e| match e {
        PushFail::Corrupt(s) => Fail::Corrupt(s),
        _ => Fail::WouldBlock,
    })?;
    for (i, m) in msgs[..c.n].iter().enumerate() {
        core.write(c.pos + i as u64, m);
    }
    if c.n > 1 {
        core.publish_words(c.pos + 1, c.n - 1);
    }
    Ok(c.pos)
}
