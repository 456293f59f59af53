//! Loom model tests of the futex sleep/wake handshake (run with `--cfg loom`; see `sync::futex`
//! for the futex mock, under which a lost wake-up is a deadlock that loom reports).

use loom::sync::Arc;
use loom::thread;

use super::semaphore::{FutexWord, Semaphore};

/// A sleeper that finds the word unchanged sleeps; a waker that changes the word and then wakes
/// must reach it, whatever the interleaving (the Dekker-style handshake on `waiters`).
#[test]
fn loom_futex_word_change_is_never_missed() {
    loom::model(|| {
        let w = Arc::new(FutexWord::new(0));
        let w2 = Arc::clone(&w);
        let sleeper = thread::spawn(move || {
            while w2.load() == 0 {
                w2.wait_while(0, None);
            }
        });
        w.store(1);
        w.wake_all();
        sleeper.join().unwrap();
        assert_eq!(w.waiters(), 0);
    });
}

/// A post followed by a wake reaches a waiter blocked in `wait_deadline`, which then takes the
/// unit: no interleaving loses the unit or the wake-up.
#[test]
fn loom_semaphore_post_reaches_a_waiter() {
    loom::model(|| {
        let s = Arc::new(Semaphore::new(0));
        let s2 = Arc::clone(&s);
        let waiter = thread::spawn(move || s2.wait_deadline(None));
        s.post(1);
        s.wake(1);
        assert_eq!(waiter.join().unwrap(), Ok(()));
        assert_eq!(s.count(), 0);
    });
}
