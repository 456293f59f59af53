//! Readiness and waiting on several rings at once, for `Select`, the iterators and the async
//! faces: a [`Watch`] says whether an operation would return now and which event word to sleep
//! on; [`wait_any`] sleeps on all of them in one `futex_waitv` call (Linux >= 5.16; older
//! kernels sleep in 1 ms slices). See `select.rs` for the public face and `docs/protocol.md`
//! for the event words.

use std::time::{Duration, Instant};

use crate::engine::Wait;
use crate::layout::{RING_CLOSED, RING_RECEIVERS_GONE, RING_SENDERS_GONE};
use crate::lockfree::Event;
use crate::ring::Ring;
use crate::sync::futex;
use crate::sync::semaphore::SLEEP_SLICE;

/// How often holders re-check that the other end still has a live holder: the sleep slice of
/// a blocked call, and the longest a handle goes without sweeping the holder table when it is
/// used. A blocked `recv` notices a peer killed without closing within about this long.
pub const LIVENESS_SLICE: Duration = Duration::from_millis(50);

/// Which way an operation moves messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dir {
    /// get / recv: ready when a message waits, or the ring is closed or has no sender left.
    Take,
    /// put / send: ready when a slot is free, or the ring is closed or has no receiver left.
    Give,
}

/// What a face re-checks between sleeps (a pipe end sweeps its holder table, so that a dead
/// peer becomes `SENDERS_GONE`/`RECEIVERS_GONE` on the ring).
pub(crate) trait Recheck: Sync {
    fn recheck(&self);
}

/// One watched ring: its event word and its readiness, plus what is re-checked between
/// sleeps.
pub(crate) struct Watch<'a> {
    /// `None`: the end cannot move messages this way (a one-way pipe); always "ready", so the
    /// operation itself reports `WrongDirection`.
    ring: Option<&'a Ring<'a>>,
    dir: Dir,
    peer: Option<&'a dyn Recheck>,
}

impl<'a> Watch<'a> {
    /// A watch of `ring` (`None`: a direction the face does not have) for `dir`; `peer` is
    /// re-checked every [`LIVENESS_SLICE`] of a sleep.
    pub(crate) fn new(ring: Option<&'a Ring<'a>>, dir: Dir, peer: Option<&'a dyn Recheck>) -> Self {
        Watch { ring, dir, peer }
    }

    /// Which way the watched operation moves messages.
    pub(crate) fn dir(&self) -> Dir {
        self.dir
    }

    /// Whether the operation would return now (with a message, a slot, or an error).
    pub(crate) fn ready(&self) -> bool {
        let Some(ring) = self.ring else {
            return true;
        };
        let core = ring.core();
        match self.dir {
            Dir::Take => core.has_items() || core.flags() & (RING_CLOSED | RING_SENDERS_GONE) != 0,
            Dir::Give => core.has_free() || core.flags() & (RING_CLOSED | RING_RECEIVERS_GONE) != 0,
        }
    }

    /// The event word to sleep on; `None` when [`ready`](Self::ready) is always true.
    pub(crate) fn event(&self) -> Option<Event<'a>> {
        let ring = self.ring?;
        Some(match self.dir {
            Dir::Take => ring.items(),
            Dir::Give => ring.free(),
        })
    }

    /// Whether a sleep must end after [`LIVENESS_SLICE`] to sweep a pipe's holder table.
    pub(crate) fn needs_liveness(&self) -> bool {
        self.peer.is_some()
    }

    /// Sweeps the pipe's holder table when its slice is up (a dead peer becomes
    /// `SENDERS_GONE`/`RECEIVERS_GONE` on the ring).
    pub(crate) fn recheck(&self) {
        if let Some(p) = self.peer {
            p.recheck();
        }
    }
}

/// Sleeps until one of `watches` is ready or `wait` ends; returns the index of a ready one
/// (searching from `start`), or `None` at the deadline (or at once for `Wait::Never`).
pub(crate) fn wait_any(watches: &[Watch<'_>], start: usize, wait: Wait) -> Option<usize> {
    let n = watches.len();
    let first_ready = || {
        (0..n)
            .map(|k| (start + k) % n)
            .find(|&i| watches[i].ready())
    };
    let slice = if watches.iter().any(Watch::needs_liveness) {
        LIVENESS_SLICE
    } else {
        SLEEP_SLICE
    };
    let deadline = match wait {
        Wait::Never => return first_ready(),
        Wait::Until(d) => Some(d),
        Wait::Forever => None,
    };
    for w in watches {
        w.recheck();
    }
    let mut words = Vec::with_capacity(n);
    loop {
        if let Some(i) = first_ready() {
            return Some(i);
        }
        // Announce on every word, issue the sleeper's barrier once for all of them, then
        // re-check every condition: a change after the re-check is followed by a notify that
        // sees WAITING and changes the word, so the sleep below returns at once.
        words.clear();
        let mut heavy = false;
        words.extend(watches.iter().filter_map(|w| {
            w.event().map(|e| {
                heavy |= e.1;
                (e.0, e.announce())
            })
        }));
        crate::lockfree::sleeper_barrier(heavy);
        if let Some(i) = first_ready() {
            return Some(i);
        }
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            return None;
        }
        let wake_at = match deadline {
            Some(d) => d.min(now + slice),
            None => now + slice,
        };
        futex::wait_any(&words, Some(wake_at));
        for w in watches {
            w.recheck();
        }
    }
}
