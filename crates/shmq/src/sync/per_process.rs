//! A value of which every process has its own: [`PerProcess`]. A child made by `fork()` gets
//! a fresh one on its first use there instead of the copy of its parent's, whose threads (and
//! whatever locks they held at the fork) do not exist in the child.
//!
//! The value of the current process is found with one atomic load and one comparison with
//! the process's fork generation (`sys::fork_generation`, bumped by a `pthread_atfork` child
//! handler): no lock, so a child never waits on a lock that a thread of its parent held at the
//! moment of the fork. This is process-local memory, not shared memory: std's atomics, no
//! loom model.

use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};

use crate::sys;

/// One process's value and the fork generation it was made in.
struct Made<T> {
    generation: u64,
    value: T,
}

/// A lazily made value per process (see the module docs). Every value made is leaked: the
/// current process's lives for the rest of the process, and a parent's copy in a forked child
/// is never used there (dropping it could touch locks or threads of the parent).
pub(crate) struct PerProcess<T: 'static> {
    /// Null until the first use; then a leaked `Made<T>`, replaced (never freed) by a forked
    /// child's own.
    current: AtomicPtr<Made<T>>,
}

impl<T: Sync + 'static> PerProcess<T> {
    /// No value yet.
    pub(crate) const fn new() -> Self {
        PerProcess {
            current: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// The value of this process, made by `make` on the first use in this process (after a
    /// fork, in the child), and whether this call made it (then the caller starts what goes
    /// with it, e.g. a thread, exactly once per process). When two threads race to make it,
    /// one value wins and the other is dropped unused: `make` must not start anything itself.
    pub(crate) fn get(&self, make: impl FnOnce() -> T) -> (&'static T, bool) {
        let generation = sys::fork_generation();
        // SYNC POINT: pairs with the Release half of the compare-exchange below (the value is
        // fully made before its pointer is seen).
        let p = self.current.load(Ordering::Acquire);
        // SAFETY: `current` is null or points to a `Made<T>` leaked by `Box::into_raw` below
        // and never freed, so it is valid for `'static`; `T: Sync`, so shared references to it
        // may be used from any thread.
        if let Some(m) = unsafe { p.as_ref() }
            && m.generation == generation
        {
            return (&m.value, false);
        }
        let fresh = Box::into_raw(Box::new(Made {
            generation,
            value: make(),
        }));
        match self
            .current
            .compare_exchange(p, fresh, Ordering::AcqRel, Ordering::Acquire)
        {
            // SAFETY: `fresh` was leaked from a Box just above and is now `current`, never
            // freed.
            Ok(_) => (unsafe { &(*fresh).value }, true),
            Err(now) => {
                // SAFETY: `fresh` was never published; this thread alone owns it.
                drop(unsafe { Box::from_raw(fresh) });
                // Another thread of this process made it first: `current` changed after our
                // load, and in this process only its own threads (of this generation) change
                // it; a parent's value was there before the fork.
                // SAFETY: as for `p` above; `now` differs from `p`, so it is not null.
                let m = unsafe { &*now };
                debug_assert_eq!(m.generation, generation);
                (&m.value, false)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_value_per_process_made_once() {
        static P: PerProcess<u32> = PerProcess::new();
        let (a, made_a) = P.get(|| 7);
        let (b, made_b) = P.get(|| 8);
        assert_eq!((*a, made_a), (7, true));
        assert_eq!((*b, made_b), (7, false));
        assert!(ptr::eq(a, b));
    }

    #[test]
    fn racing_threads_get_one_value() {
        static P: PerProcess<std::thread::ThreadId> = PerProcess::new();
        let got: Vec<(usize, bool)> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        let (v, made) = P.get(|| std::thread::current().id());
                        (v as *const _ as usize, made)
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(got.iter().all(|g| g.0 == got[0].0));
        assert_eq!(got.iter().filter(|g| g.1).count(), 1);
    }
}
