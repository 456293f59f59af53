//! The atomics every shared word is made of, routed through one module so that a model checker
//! (loom) can replace them: under `--cfg loom` these are loom's atomics, and the protocol code
//! that uses them runs under loom's exhaustive scheduler (see `sync::futex` for the futex mock).

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
