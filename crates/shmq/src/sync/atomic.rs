//! The atomics every shared word is made of, routed through one module so that a model checker
//! (loom) can replace them: under `--cfg loom` these are loom's atomics, and the protocol code
//! that uses them runs under loom's exhaustive scheduler (see `sync::futex` for the futex mock).
//! It also holds the two sides of the asymmetric barrier between a put's commit and a sleeper
//! ([`light_barrier`], [`heavy_barrier`]: a compiler barrier, and `membarrier`) and whether
//! this process may use the light side ([`light_publish`]).

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

#[cfg(loom)]
#[allow(unused_imports)] // each loom test build uses a subset
pub(crate) use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};

/// Marks the middle of a Dekker-style handshake (a `SeqCst` write of one word, then a `SeqCst`
/// read of another, on each side). The C++20 model, and x86-64, already order the two accesses;
/// loom models `SeqCst` accesses as `AcqRel` and would report a lost wake-up that cannot happen,
/// so under loom this is a `SeqCst` fence, and otherwise nothing.
#[inline(always)]
pub(crate) fn dekker_fence() {
    #[cfg(loom)]
    fence(Ordering::SeqCst);
}

/// The asymmetric barrier of the put/sleeper handshake on an event word: a producer publishes
/// a message with a `Release` store followed by [`light_barrier`] (no fence instruction, only a
/// compiler barrier), and then reads the event word; a sleeper sets the event's `WAITING` bit,
/// issues [`heavy_barrier`] (`membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)`), and then re-checks
/// the ring. The kernel makes every running thread of every registered process execute a full
/// barrier during the heavy one, so the pair orders like two `SeqCst` fences: either the
/// producer's read sees `WAITING` or the sleeper's re-check sees the message (the argument is
/// in `docs/protocol.md`, "Waking sleepers"). The light side is only taken by a process whose
/// registration succeeded ([`light_publish`]); any other publishes with a `SeqCst` store, which
/// needs nothing of the sleeper. Under loom both barriers are `SeqCst` fences, the model of
/// what the kernel guarantees.
#[cfg(not(loom))]
static LIGHT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Whether this process publishes with the light side of the asymmetric barrier: it registered
/// for global expedited barriers in its current fork generation ([`enable_light_publish`]).
#[inline(always)]
pub(crate) fn light_publish() -> bool {
    #[cfg(loom)]
    return true;
    #[cfg(not(loom))]
    {
        LIGHT.load(Ordering::Relaxed) == crate::sys::fork_generation_now() + 1
    }
}

/// Registers this process for global expedited barriers, once per fork generation, so that it
/// may publish with the light side; does nothing if the kernel refuses. Call it before the
/// first put of a process (the participant registration does).
#[cfg(not(loom))]
#[cold]
pub(crate) fn enable_light_publish() {
    let generation = crate::sys::fork_generation();
    if LIGHT.load(Ordering::Relaxed) != generation + 1 && crate::sys::membarrier_register().is_ok()
    {
        LIGHT.store(generation + 1, Ordering::Relaxed);
    }
}

/// The producer's side: after the `Release` store that published, before reading an event word.
#[inline(always)]
pub(crate) fn light_barrier() {
    #[cfg(loom)]
    fence(Ordering::SeqCst);
    #[cfg(not(loom))]
    std::sync::atomic::compiler_fence(Ordering::SeqCst);
}

/// The sleeper's side: after setting `WAITING`, before re-checking the condition. A kernel that
/// refuses the barrier refuses the registration too, so that no process of it publishes with
/// the light side (`docs/protocol.md` says what a mix of policies costs).
#[inline]
pub(crate) fn heavy_barrier() {
    #[cfg(loom)]
    fence(Ordering::SeqCst);
    #[cfg(not(loom))]
    {
        let _ = crate::sys::membarrier_global();
    }
}
