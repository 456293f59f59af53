//! The per-process notifier of the async API: one thread that sleeps in `futex_waitv` on the
//! event words that pending futures registered, and wakes their tasks' wakers. No thread per
//! future, no thread per queue.
//!
//! A pending future has announced itself on its word (`Event::prepare`, which sets WAITING,
//! so the next change of the condition is followed by a change of the word and a wake-up) and
//! registered `(word, value it saw, waker)`. The notifier waits on every registered word at
//! once, plus a process-local control word that a new registration changes (so the notifier
//! adds the new word). When the kernel says:
//!
//! - woken on word *i*: the wakers registered on that word fire;
//! - a word did not hold its value (`EAGAIN`): if the control word changed, it waits again
//!   with the new registrations; otherwise some registered word changed and every waker fires
//!   (a fired future that is still not ready simply registers again);
//! - the slice ended: the wakers of pipe ends fire, so their tasks sweep the holder table and
//!   notice a peer killed without closing (`LIVENESS_SLICE`); without pipe ends, it waits
//!   again with the same words, each quiet slice twice as long as the last (200 ms up to
//!   3.2 s, `IDLE_SLICE_MAX`), so that idle futures cost next to no CPU while a wake-up lost
//!   by a killed waker is still recovered;
//! - an address is not mapped (a future leaked with `mem::forget` after its queue was
//!   dropped): every waker fires and every entry is dropped, so it cannot repeat.
//!
//! The notifier never dereferences a registered address: it only hands addresses to the
//! kernel, which checks them. A deregistered word may stay in the kernel's wait until the next
//! wake-up; that costs nothing but that wake-up.
//!
//! Without `futex_waitv` (Linux < 5.16), or with more than 127 distinct registered words, it
//! sleeps 1 ms slices and fires every waker after each (polling).
//!
//! **Fork.** The notifier is per process ([`PerProcess`]): a child made by `fork()` does not
//! have its parent's notifier thread, so its first registration makes a new notifier and starts
//! its thread. The parent's copy (its map, and its lock, which the parent's notifier thread may
//! have held at the fork) is never touched in the child. Registration ids come from one
//! process-wide counter that a fork copies, so a future made before the fork and dropped in
//! the child cannot remove a registration of the child's.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Mutex, MutexGuard};
use std::task::Waker;
use std::time::{Duration, Instant};

use super::wait::LIVENESS_SLICE;
use crate::sync::per_process::PerProcess;
use crate::sys::{WaitvResult, futex_waitv};

/// What a pending future waits for.
struct Entry {
    /// The event word's address (only given to the kernel).
    addr: usize,
    /// The value the future saw after `prepare`.
    expected: u32,
    waker: Waker,
    /// Fire after every [`LIVENESS_SLICE`] (pipe ends).
    periodic: bool,
}

#[derive(Default)]
struct State {
    entries: HashMap<u64, Entry>,
}

/// The last registration id handed out, in this process and (copied by `fork`) its children.
static LAST_ID: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Set on the notifier thread: a waker that registers again from there (a future polled
    /// by its own waker) need not wake the notifier, which snapshots every entry before it
    /// sleeps again.
    static ON_NOTIFIER: Cell<bool> = const { Cell::new(false) };
}

/// The notifier's shared state and its control word.
struct Notifier {
    state: Mutex<State>,
    /// Changed (and woken) by every registration, so that the notifier's wait ends and it
    /// picks the new word up.
    control: AtomicU32,
}

/// How long the notifier sleeps per slice without `futex_waitv`, or with too many words.
const POLL_SLICE: Duration = Duration::from_millis(1);

/// The longest slice of an idle notifier (no periodic entry): after a slice in which nothing
/// happened, the next one is twice as long, from [`SLEEP_SLICE`] up to this; any wake-up,
/// change or registration starts again from [`SLEEP_SLICE`]. Each slice's end re-arms the wait
/// on every registered word, which the kernel charges per word (about 2 µs each here), so an
/// idle process with 100 armed futures would otherwise spend about 1 ms of CPU a second on it.
/// What the slice's end recovers, a wake-up lost by a waker killed between its change of a
/// word and its `FUTEX_WAKE`, is then recovered within this long.
///
/// [`SLEEP_SLICE`]: crate::sync::semaphore::SLEEP_SLICE
const IDLE_SLICE_MAX: Duration = Duration::from_millis(3200);

/// Words one `futex_waitv` call takes (the kernel's limit), the control word included.
const MAX_WORDS: usize = 128;

/// This process's notifier, made (and its thread started) on the first use in each process.
fn notifier() -> &'static Notifier {
    static N: PerProcess<Notifier> = PerProcess::new();
    let (n, made) = N.get(|| Notifier {
        state: Mutex::new(State::default()),
        control: AtomicU32::new(0),
    });
    if made {
        // If the thread cannot start, registrations still work: `register` then fires the
        // waker at once (the future polls again), which is a busy loop but not a hang.
        let started = std::thread::Builder::new()
            .name("shmq-notifier".into())
            .spawn(move || run(n));
        if started.is_err() {
            n.control.store(u32::MAX, SeqCst);
        }
    }
    n
}

impl Notifier {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A waker that panicked while we held the lock poisons it; the map is still sound.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Registers (or, with `id`, replaces) a pending future's wait on `word`, which held
/// `expected` after the future's `prepare`. Returns the registration's id.
pub(crate) fn register(
    id: Option<u64>,
    word: &AtomicU32,
    expected: u32,
    waker: &Waker,
    periodic: bool,
) -> u64 {
    let n = notifier();
    if n.control.load(SeqCst) == u32::MAX {
        // No notifier thread: poll.
        waker.wake_by_ref();
        return id.unwrap_or(0);
    }
    let addr = word as *const AtomicU32 as usize;
    let id = id.unwrap_or_else(|| LAST_ID.fetch_add(1, Relaxed) + 1);
    {
        let mut st = n.lock();
        st.entries.insert(
            id,
            Entry {
                addr,
                expected,
                waker: waker.clone(),
                periodic,
            },
        );
    }
    if ON_NOTIFIER.with(Cell::get) {
        return id;
    }
    // 0 ..= u32::MAX - 1: u32::MAX means "no thread".
    let _ = n
        .control
        .fetch_update(SeqCst, SeqCst, |c| Some((c + 1) % (u32::MAX - 1)));
    crate::sys::futex_wake(&n.control, 1);
    id
}

/// Removes a registration (a future that completed or was dropped).
pub(crate) fn deregister(id: u64) {
    notifier().lock().entries.remove(&id);
}

/// The notifier thread.
fn run(n: &'static Notifier) {
    ON_NOTIFIER.with(|f| f.set(true));
    let mut words: Vec<(*const AtomicU32, u32)> = Vec::with_capacity(MAX_WORDS);
    let mut fire: Vec<Waker> = Vec::new();
    let mut idle_slice = crate::sync::semaphore::SLEEP_SLICE;
    loop {
        // Snapshot: the control word first, then every distinct (word, value).
        let (control, periodic, overflow) = {
            let st = n.lock();
            let control = n.control.load(SeqCst);
            words.clear();
            words.push((&n.control as *const AtomicU32, control));
            let mut overflow = false;
            for e in st.entries.values() {
                let w = (e.addr as *const AtomicU32, e.expected);
                if !words.contains(&w) {
                    if words.len() == MAX_WORDS {
                        overflow = true;
                        break;
                    }
                    words.push(w);
                }
            }
            (control, st.entries.values().any(|e| e.periodic), overflow)
        };
        let slice = if periodic { LIVENESS_SLICE } else { idle_slice };
        let deadline = Instant::now() + slice;
        let r = if overflow {
            WaitvResult::Unsupported
        } else {
            futex_waitv(&words, Some(deadline))
        };
        // A slice that ended with nothing to do makes the next one longer (IDLE_SLICE_MAX).
        let quiet = matches!(r, WaitvResult::Returned) && Instant::now() >= deadline;
        idle_slice = if quiet && !periodic {
            (idle_slice * 2).min(IDLE_SLICE_MAX)
        } else {
            crate::sync::semaphore::SLEEP_SLICE
        };
        {
            let mut st = n.lock();
            match r {
                WaitvResult::Woken(0) => {}
                WaitvResult::Woken(i) => {
                    let addr = words[i].0 as usize;
                    take(&mut st, &mut fire, |e| e.addr == addr);
                }
                WaitvResult::Changed => {
                    if n.control.load(SeqCst) == control {
                        take(&mut st, &mut fire, |_| true);
                    }
                }
                WaitvResult::Returned => {
                    if Instant::now() >= deadline {
                        take(&mut st, &mut fire, |e| e.periodic);
                    }
                }
                WaitvResult::Fault => take(&mut st, &mut fire, |_| true),
                WaitvResult::Unsupported => {
                    drop(st);
                    std::thread::sleep(POLL_SLICE);
                    st = n.lock();
                    take(&mut st, &mut fire, |_| true);
                }
            }
        }
        for w in fire.drain(..) {
            w.wake();
        }
    }
}

/// Moves the wakers of the entries that `hit` selects into `fire`, removing the entries.
fn take(st: &mut State, fire: &mut Vec<Waker>, hit: impl Fn(&Entry) -> bool) {
    st.entries.retain(|_, e| {
        if hit(e) {
            fire.push(e.waker.clone());
            false
        } else {
            true
        }
    });
}
