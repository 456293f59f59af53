//! Loom model tests of the robust lock (run with `--cfg loom`): mutual exclusion and wake-ups
//! between live threads, and the take-over of a lock whose owner died.
//!
//! Thread identities and liveness come from a model ([`Model`]) instead of the kernel and
//! `/proc`: a participant "dies" by ending with its guard forgotten and marking itself dead. A
//! real waiter notices a death when its sleep slice ends and it re-checks the owner; time does
//! not pass under loom, so the model ends every sleeper's slice right after the death
//! ([`RawMutex::model_slices_expire`]). Every waiter checks liveness before each sleep
//! (`check_due` is always true here), so the tests cover every order of a death against a
//! waiter's check, registration and sleep.

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::sync::atomic::AtomicBool;
use loom::thread;

use super::Owners;
use super::atomic::Ordering::SeqCst;
use super::mutex::{LockError, RawMutex};

/// Up to four participants, numbered 1 to 4 (their thread ids), and which of them are dead.
struct Model {
    dead: [AtomicBool; 5],
}

impl Model {
    fn new() -> Arc<Model> {
        Arc::new(Model {
            dead: std::array::from_fn(|_| AtomicBool::new(false)),
        })
    }

    /// Participant `id` dies: marks itself dead, then the sleepers' slices end.
    fn die(&self, id: u64, m: &RawMutex) {
        self.dead[id as usize].store(true, SeqCst);
        m.model_slices_expire();
    }
}

/// Participant `id`'s view of `model`.
fn who(model: &Arc<Model>, id: u64) -> As {
    As {
        model: Arc::clone(model),
        id,
    }
}

/// The view of one participant.
struct As {
    model: Arc<Model>,
    id: u64,
}

impl Owners for As {
    fn me(&self) -> u64 {
        self.id
    }
    fn check_due(&self, _owner: u64) -> bool {
        true
    }
    fn alive(&self, owner: u64) -> bool {
        !self.model.dead[owner as usize].load(SeqCst)
    }
    fn next_check(&self, _owner: u64) -> Option<std::time::Instant> {
        None
    }
    fn generation(&self) -> u64 {
        0
    }
}

/// Two live threads increment a plain (non-atomic) counter under the lock: loom's cell reports
/// any overlap of the two critical sections, and a lost wake-up shows up as a deadlock.
#[test]
fn loom_lock_excludes_and_wakes() {
    loom::model(|| {
        let model = Model::new();
        let m = Arc::new(RawMutex::new());
        let n = Arc::new(UnsafeCell::new(0u32));
        let spawn = |id| {
            let (m, n, me) = (Arc::clone(&m), Arc::clone(&n), who(&model, id));
            thread::spawn(move || {
                let g = m.lock_with(None, &me).unwrap();
                assert!(!g.owner_died());
                // SAFETY: the lock makes this access exclusive, which loom checks.
                n.with_mut(|p| unsafe { *p += 1 });
                drop(g);
            })
        };
        let (a, b) = (spawn(1), spawn(2));
        a.join().unwrap();
        b.join().unwrap();
        // SAFETY: both writers have ended.
        assert_eq!(n.with(|p| unsafe { *p }), 2);
        assert_eq!(m.model_words(), (0, 0));
    });
}

/// A participant takes the lock and dies holding it while another waits, in every order: the
/// survivor (or, if the survivor went first, the next locker) takes it over and is told the
/// owner died, exactly once; after `make_consistent` the lock is clean again.
#[test]
fn loom_lock_dead_owner_is_taken_over_and_reported_once() {
    loom::model(|| {
        let model = Model::new();
        let m = Arc::new(RawMutex::new());
        let dying = {
            let (m, model, me) = (Arc::clone(&m), Arc::clone(&model), who(&model, 1));
            thread::spawn(move || {
                std::mem::forget(m.lock_with(None, &me).unwrap());
                model.die(1, &m);
            })
        };
        let survivor = {
            let (m, me) = (Arc::clone(&m), who(&model, 2));
            thread::spawn(move || {
                let mut g = m.lock_with(None, &me).unwrap();
                let died = g.owner_died();
                g.make_consistent().unwrap();
                died
            })
        };
        dying.join().unwrap();
        let survivor_told = survivor.join().unwrap();
        // Whoever locks last: told only if the dead participant held the lock when it died.
        let mut g = m.try_lock_with(&who(&model, 3)).unwrap();
        assert_ne!(survivor_told, g.owner_died(), "reported exactly once");
        g.make_consistent().unwrap();
        drop(g);
        assert_eq!(m.model_words(), (0, 0));
    });
}

/// A dead owner's successor that releases without repairing leaves the lock not recoverable,
/// for a waiter that was asleep too.
#[test]
fn loom_unrepaired_death_is_not_recoverable_for_every_waiter() {
    loom::model(|| {
        let model = Model::new();
        let m = Arc::new(RawMutex::new());
        std::mem::forget(m.lock_with(None, &who(&model, 1)).unwrap());
        let waiter = {
            let (m, me) = (Arc::clone(&m), who(&model, 3));
            thread::spawn(move || match m.lock_with(None, &me) {
                // It took the lock over first and repairs: fine, but then the other is clean.
                Ok(mut g) => {
                    assert!(g.owner_died());
                    g.make_consistent().unwrap();
                    true
                }
                Err(e) => {
                    assert_eq!(e, LockError::NotRecoverable);
                    false
                }
            })
        };
        model.die(1, &m);
        let second = m.lock_with(None, &who(&model, 2));
        // Only this thread ever releases unrepaired, so it is never refused itself: either it
        // takes the lock over (and leaves it not recoverable), or the waiter did and repaired.
        let second_took_over = match second {
            Ok(g) => {
                let died = g.owner_died();
                drop(g); // released unrepaired if it took over
                died
            }
            Err(e) => panic!("{e}"),
        };
        let waiter_repaired = waiter.join().unwrap();
        assert_ne!(second_took_over, waiter_repaired);
    });
}
