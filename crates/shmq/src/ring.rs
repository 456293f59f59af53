//! The bounded ring: a lock-protected array of fixed-size slots with monotonic positions.
//!
//! This is the classic bounded buffer of Dijkstra's "Cooperating sequential processes" (two
//! counting semaphores, free slots and ready items, around a critical section), arranged so that
//! a process can die at any instruction: every operation commits with a single store, and the
//! semaphores are derived state that the next lock holder rebuilds.
//!
//! - `head`, `tail` and `done` are positions that only grow; slot `p % capacity` holds message `p`.
//! - A put writes the payload and its length into slot `tail`, then publishes it with one store
//!   of `tail + 1`. A get copies slot `head` out, then frees it with one store of `head + 1`.
//!   `task_done` stores `done + 1`. `close` stores the `CLOSED` bit. A death before the store
//!   leaves the operation undone; after it, done.
//! - `len = tail - head`, `unfinished = tail - done`, `free = capacity - len`.
//! - The semaphores `items` and `free` change only under the lock, together with the store; their
//!   sleepers wait outside it. After an owner death ([`Ring::lock`]) the counts are rebuilt from
//!   the positions and every sleeper is woken.
//!
//! No names and no system calls; it runs over any memory (the unit tests use the heap). The
//! state tables are in `docs/protocol.md`.

#![allow(unsafe_code)]

use std::fmt;
use std::io;
use std::ptr::NonNull;
use std::time::Instant;

use crate::layout::{
    RING_CLOSED, RING_RECEIVERS_GONE, RING_SENDERS_GONE, RingControl, RingLayout, SLOT_HEADER,
};
use crate::sync::atomic::Ordering::SeqCst;
use crate::sync::{LockError, MutexGuard, Semaphore};

/// A ring over a validated layout. Cheap to make; borrows the segment it lives in.
pub(crate) struct Ring<'a> {
    ctrl: &'a RingControl,
    slots: NonNull<u8>,
    capacity: u64,
    message_size: usize,
    stride: usize,
}

/// Why a ring could not be locked.
#[derive(Debug)]
pub(crate) enum RingError {
    /// The deadline passed while someone else held the lock.
    Timeout,
    /// The shared state is impossible, or the lock is broken.
    Corrupt(String),
}

impl From<LockError> for RingError {
    fn from(e: LockError) -> Self {
        match e {
            LockError::WouldBlock => RingError::Timeout,
            other => RingError::Corrupt(other.to_string()),
        }
    }
}

/// Why a put did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PushFail {
    /// No free slot.
    Full,
    /// The ring is closed.
    Closed,
    /// No receiver is left (pipes).
    ReceiversGone,
    /// The message is longer than a slot.
    TooLarge { len: usize, max: usize },
}

impl<'a> Ring<'a> {
    /// A ring over `ctrl` and the slot array at `slots`.
    ///
    /// # Safety
    ///
    /// `slots` must point to `layout.capacity * layout.stride` bytes, valid for reads and writes
    /// for `'a`, that every thread and process touches only while holding `ctrl.lock`;
    /// `layout.stride` must be at least `SLOT_HEADER + layout.message_size` and a multiple of 8,
    /// and `slots` 8-aligned.
    pub(crate) unsafe fn new(
        ctrl: &'a RingControl,
        slots: NonNull<u8>,
        layout: &RingLayout,
    ) -> Self {
        Ring {
            ctrl,
            slots,
            capacity: layout.capacity,
            message_size: layout.message_size,
            stride: layout.stride,
        }
    }

    /// Initialises a zeroed ring: the lock, and `free = capacity`.
    ///
    /// # Safety
    ///
    /// Only the creator may call this, once, before any other thread or process can reach the
    /// ring.
    pub(crate) unsafe fn init(&self) -> io::Result<()> {
        // SAFETY: forwarded to the caller.
        unsafe { self.ctrl.lock.0.init()? };
        self.ctrl.items.0.reset(0, 0);
        self.ctrl.free.0.reset(self.capacity as u32, 0);
        Ok(())
    }

    pub(crate) fn control(&self) -> &'a RingControl {
        self.ctrl
    }

    pub(crate) fn items(&self) -> &'a Semaphore {
        &self.ctrl.items.0
    }

    pub(crate) fn free(&self) -> &'a Semaphore {
        &self.ctrl.free.0
    }

    /// Messages waiting, read without the lock (exact whenever no put or get is in flight).
    pub(crate) fn len(&self) -> u64 {
        // `head` first: `tail` read later is at least the `tail` of that moment.
        let head = self.ctrl.head.0.load(SeqCst);
        let tail = self.ctrl.tail.0.load(SeqCst);
        tail.saturating_sub(head).min(self.capacity)
    }

    /// Unfinished tasks, read without the lock.
    pub(crate) fn unfinished(&self) -> u64 {
        let done = self.ctrl.counters.0.done.load(SeqCst);
        let tail = self.ctrl.tail.0.load(SeqCst);
        tail.saturating_sub(done)
    }

    /// The ring's state bits, read without the lock.
    pub(crate) fn flags(&self) -> u32 {
        self.ctrl.counters.0.flags.load(SeqCst)
    }

    /// Takes the lock (until `deadline`, or without limit). If the previous owner died holding
    /// it, first rebuilds the derived state from the positions, marks the lock consistent and
    /// wakes every sleeper; [`Locked::repaired`] then says so.
    pub(crate) fn lock(&self, deadline: Option<Instant>) -> Result<Locked<'_, 'a>, RingError> {
        let guard = match deadline {
            Some(d) => self.ctrl.lock.0.lock_until(d)?,
            None => self.ctrl.lock.0.lock()?,
        };
        let repaired = guard.owner_died();
        let mut locked = Locked {
            head: self.ctrl.head.0.load(SeqCst),
            tail: self.ctrl.tail.0.load(SeqCst),
            ring: self,
            guard,
            repaired,
        };
        locked.check().map_err(RingError::Corrupt)?;
        if repaired {
            locked.rebuild();
            locked
                .guard
                .make_consistent()
                .map_err(|e| RingError::Corrupt(format!("cannot mark the lock consistent: {e}")))?;
            self.wake_everyone();
        }
        Ok(locked)
    }

    /// Wakes every sleeper on every word of the ring.
    pub(crate) fn wake_everyone(&self) {
        self.ctrl.items.0.wake_all();
        self.ctrl.free.0.wake_all();
        self.ctrl.joined.0.wake_all();
    }

    /// The slot index of position `pos`: reduced modulo the capacity validated at open, never
    /// trusted raw.
    fn index(&self, pos: u64) -> usize {
        (pos % self.capacity) as usize
    }

    /// The index after `index`, wrapping at the capacity (batches walk the slots without a
    /// division per message).
    fn next_index(&self, index: usize) -> usize {
        if index + 1 == self.capacity as usize {
            0
        } else {
            index + 1
        }
    }

    /// The start of slot `index`, which must be below the capacity: every index in this module
    /// comes from [`index`](Self::index) (a remainder by the capacity) or
    /// [`next_index`](Self::next_index) (which wraps at it), never from shared memory.
    #[inline]
    fn slot_at(&self, index: usize) -> *mut u8 {
        debug_assert!(index < self.capacity as usize, "slot index out of range");
        // SAFETY: index < capacity (see above), so the offset stays inside the slot array
        // (contract of `new`).
        unsafe { self.slots.as_ptr().add(index * self.stride) }
    }

    fn slot(&self, pos: u64) -> *mut u8 {
        self.slot_at(self.index(pos))
    }
}

impl fmt::Debug for Ring<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ring")
            .field("capacity", &self.capacity)
            .field("message_size", &self.message_size)
            .field("control", self.ctrl)
            .finish()
    }
}

/// A locked ring: every method runs inside the critical section. Dropping it unlocks.
pub(crate) struct Locked<'r, 'a> {
    ring: &'r Ring<'a>,
    guard: MutexGuard<'r>,
    head: u64,
    tail: u64,
    /// Whether this lock repaired the state left by an owner that died.
    repaired: bool,
}

impl Locked<'_, '_> {
    fn check(&self) -> Result<(), String> {
        let done = self.ring.ctrl.counters.0.done.load(SeqCst);
        if self.head > self.tail || self.tail - self.head > self.ring.capacity {
            return Err(format!(
                "impossible positions: head {} tail {} capacity {}",
                self.head, self.tail, self.ring.capacity
            ));
        }
        if done > self.tail {
            return Err(format!(
                "impossible task count: done {done} > tail {}",
                self.tail
            ));
        }
        Ok(())
    }

    fn sem_flags(flags: u32) -> (u32, u32) {
        let closed = if flags & RING_CLOSED != 0 {
            Semaphore::CLOSED
        } else {
            0
        };
        let items = closed
            | if flags & RING_SENDERS_GONE != 0 {
                Semaphore::DISCONNECTED
            } else {
                0
            };
        let free = closed
            | if flags & RING_RECEIVERS_GONE != 0 {
                Semaphore::DISCONNECTED
            } else {
                0
            };
        (items, free)
    }

    /// Rebuilds both semaphores and bumps the join generation from the committed state.
    fn rebuild(&mut self) {
        let (items_flags, free_flags) = Self::sem_flags(self.flags());
        let len = self.len() as u32;
        self.ring.items().reset(len, items_flags);
        self.ring
            .free()
            .reset(self.ring.capacity as u32 - len, free_flags);
        self.ring.ctrl.joined.0.fetch_add(1);
    }

    pub(crate) fn len(&self) -> u64 {
        self.tail - self.head
    }

    pub(crate) fn flags(&self) -> u32 {
        self.ring.ctrl.counters.0.flags.load(SeqCst)
    }

    pub(crate) fn is_full(&self) -> bool {
        self.len() == self.ring.capacity
    }

    pub(crate) fn unfinished(&self) -> u64 {
        self.tail - self.ring.ctrl.counters.0.done.load(SeqCst)
    }

    /// Sets (`on`) or clears ring state bits and mirrors them into the semaphores. The caller
    /// wakes sleepers after unlocking.
    pub(crate) fn set_flags(&mut self, bits: u32, on: bool) {
        let c = &self.ring.ctrl.counters.0.flags;
        // Commit point: one store of the new flags.
        if on {
            c.fetch_or(bits, SeqCst);
        } else {
            c.fetch_and(!bits, SeqCst);
        }
        self.rebuild_flags_only();
    }

    fn rebuild_flags_only(&self) {
        let (items_flags, free_flags) = Self::sem_flags(self.flags());
        let len = self.len() as u32;
        self.ring.items().reset(len, items_flags);
        self.ring
            .free()
            .reset(self.ring.capacity as u32 - len, free_flags);
    }

    fn can_push(&self) -> Result<(), PushFail> {
        let flags = self.flags();
        if flags & RING_CLOSED != 0 {
            return Err(PushFail::Closed);
        }
        if flags & RING_RECEIVERS_GONE != 0 {
            return Err(PushFail::ReceiversGone);
        }
        if self.len() == self.ring.capacity {
            return Err(PushFail::Full);
        }
        Ok(())
    }

    fn publish(&mut self, n: u64) {
        self.tail += n;
        // SYNC POINT: commit of a put (or a batch); the slot bytes written before it become
        // visible to whoever takes the lock next.
        self.ring.ctrl.tail.0.store(self.tail, SeqCst);
        self.ring.items().post(n as u32);
        self.ring.free().try_take(n as u32);
    }

    /// Copies `msg` into the next slot and publishes it.
    pub(crate) fn push(&mut self, msg: &[u8]) -> Result<(), PushFail> {
        let max = self.ring.message_size;
        if msg.len() > max {
            return Err(PushFail::TooLarge {
                len: msg.len(),
                max,
            });
        }
        self.can_push()?;
        let slot = self.ring.slot(self.tail);
        // SAFETY: we hold the lock, so nobody else touches this slot; the slot has room for the
        // 8-byte header and `max >= msg.len()` payload bytes (contract of `Ring::new`), and is
        // 8-aligned.
        unsafe {
            slot.cast::<u32>().write(msg.len() as u32);
            std::ptr::copy_nonoverlapping(msg.as_ptr(), slot.add(SLOT_HEADER), msg.len());
        }
        self.publish(1);
        Ok(())
    }

    /// Lets `fill` write the next message into the slot (up to `message_size` bytes) and return
    /// its length, then publishes it. A length over the slot size publishes nothing.
    pub(crate) fn push_with(
        &mut self,
        fill: impl FnOnce(&mut [u8]) -> usize,
    ) -> Result<(), PushFail> {
        self.can_push()?;
        let max = self.ring.message_size;
        let slot = self.ring.slot(self.tail);
        // SAFETY: we hold the lock, so this slot's payload is ours alone until `publish`; the
        // slice covers exactly the payload area and does not outlive this call.
        let payload = unsafe { std::slice::from_raw_parts_mut(slot.add(SLOT_HEADER), max) };
        let len = fill(payload);
        if len > max {
            return Err(PushFail::TooLarge { len, max });
        }
        // SAFETY: as above, for the 8-aligned length field.
        unsafe { slot.cast::<u32>().write(len as u32) };
        self.publish(1);
        Ok(())
    }

    /// Puts as many of `msgs` as there are free slots, with one publishing store; returns how
    /// many. Refuses the whole batch, before writing anything, if any message is too large.
    pub(crate) fn push_many<M: AsRef<[u8]>>(&mut self, msgs: &[M]) -> Result<usize, PushFail> {
        let max = self.ring.message_size;
        if let Some(m) = msgs.iter().find(|m| m.as_ref().len() > max) {
            return Err(PushFail::TooLarge {
                len: m.as_ref().len(),
                max,
            });
        }
        self.can_push()?;
        let n = ((self.ring.capacity - self.len()) as usize).min(msgs.len());
        let mut index = self.ring.index(self.tail);
        for m in &msgs[..n] {
            let m = m.as_ref();
            let slot = self.ring.slot_at(index);
            index = self.ring.next_index(index);
            // SAFETY: as in `push`; slots tail..tail+n are free (n <= capacity - len).
            unsafe {
                slot.cast::<u32>().write(m.len() as u32);
                std::ptr::copy_nonoverlapping(m.as_ptr(), slot.add(SLOT_HEADER), m.len());
            }
        }
        self.publish(n as u64);
        Ok(n)
    }

    /// The length of the oldest message, if any.
    pub(crate) fn front_len(&self) -> Result<Option<usize>, String> {
        if self.len() == 0 {
            return Ok(None);
        }
        self.slot_len(self.ring.index(self.head)).map(Some)
    }

    /// The length of the message in slot `index`, checked against the slot size.
    fn slot_len(&self, index: usize) -> Result<usize, String> {
        // SAFETY: we hold the lock; the slot's 8-aligned length field is inside the slot array.
        let len = unsafe { self.ring.slot_at(index).cast::<u32>().read() } as usize;
        if len > self.ring.message_size {
            return Err(format!(
                "slot {index} claims {len} bytes, more than the slot size {}",
                self.ring.message_size
            ));
        }
        Ok(len)
    }

    fn payload(&self, index: usize, len: usize) -> &[u8] {
        // SAFETY: we hold the lock (borrowed by the returned slice through `&self`), so nobody
        // writes this slot while the slice lives; `len <= message_size` was checked.
        unsafe { std::slice::from_raw_parts(self.ring.slot_at(index).add(SLOT_HEADER), len) }
    }

    fn consume(&mut self, n: u64) {
        self.head += n;
        // SYNC POINT: commit of a get (or a batch); the slots become free for the next holder.
        self.ring.ctrl.head.0.store(self.head, SeqCst);
        self.ring.items().try_take(n as u32);
        self.ring.free().post(n as u32);
    }

    /// Hands the oldest message to `read` and removes it; `None` if the ring is empty.
    pub(crate) fn pop_with<R>(
        &mut self,
        read: impl FnOnce(&[u8]) -> R,
    ) -> Result<Option<R>, String> {
        let Some(len) = self.front_len()? else {
            return Ok(None);
        };
        let r = read(self.payload(self.ring.index(self.head), len));
        self.consume(1);
        Ok(Some(r))
    }

    /// Hands the oldest message to `read` and removes it only if `read` returns `Ok`; returns
    /// how many were removed (0 or 1) and what `read` returned.
    pub(crate) fn pop_if<R, E>(
        &mut self,
        read: impl FnOnce(&[u8]) -> Result<R, E>,
    ) -> Result<Option<Taken<R, E>>, String> {
        let Some(len) = self.front_len()? else {
            return Ok(None);
        };
        let r = read(self.payload(self.ring.index(self.head), len));
        if r.is_err() {
            return Ok(Some((0, r)));
        }
        self.consume(1);
        Ok(Some((1, r)))
    }

    /// Hands up to `max` of the oldest messages to `read`, in order, and removes them with one
    /// store; returns how many.
    pub(crate) fn pop_many_with(
        &mut self,
        max: usize,
        mut read: impl FnMut(&[u8]),
    ) -> Result<usize, String> {
        let n = (self.len() as usize).min(max);
        let mut index = self.ring.index(self.head);
        for _ in 0..n {
            let len = self.slot_len(index)?;
            read(self.payload(index, len));
            index = self.ring.next_index(index);
        }
        self.consume(n as u64);
        Ok(n)
    }

    /// Marks `n` tasks done. Returns the unfinished count left, or `Err(left)` without changing
    /// anything if fewer than `n` are unfinished. Reaching zero bumps the join generation.
    pub(crate) fn task_done(&mut self, n: u64) -> Result<u64, u64> {
        let done = self.ring.ctrl.counters.0.done.load(SeqCst);
        let left = self.tail - done;
        if n > left {
            return Err(left);
        }
        // Commit point: one store.
        self.ring.ctrl.counters.0.done.store(done + n, SeqCst);
        if left == n {
            self.ring.ctrl.joined.0.fetch_add(1);
        }
        Ok(left - n)
    }

    /// The join generation (changes whenever unfinished tasks reach zero, and after a repair).
    pub(crate) fn join_generation(&self) -> u32 {
        self.ring.ctrl.joined.0.load()
    }
}

impl fmt::Debug for Locked<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Locked")
            .field("head", &self.head)
            .field("tail", &self.tail)
            .field("repaired", &self.repaired)
            .finish()
    }
}

/// What [`Locked::pop_if`] did: how many messages it removed (0 or 1) and what `read` returned.
pub(crate) type Taken<R, E> = (usize, Result<R, E>);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::{RING_CONTROL_SIZE, RingLayout};

    /// A ring over heap memory, as in a freshly created segment.
    struct HeapRing {
        mem: Vec<u128>,
        layout: RingLayout,
    }

    impl HeapRing {
        fn new(capacity: u64, message_size: u64) -> HeapRing {
            let layout = RingLayout::at(0, capacity, message_size).unwrap();
            // u128 keeps 16-byte alignment; the control block needs 128, so over-allocate and
            // start at the first 128-aligned address.
            let mem = vec![0u128; layout.end() / 16 + 16];
            let hr = HeapRing { mem, layout };
            // SAFETY: fresh memory, not shared.
            unsafe { hr.ring().init().unwrap() };
            hr
        }

        fn base(&self) -> *mut u8 {
            let p = self.mem.as_ptr() as usize;
            ((p + 127) & !127) as *mut u8
        }

        fn ring(&self) -> Ring<'_> {
            let base = self.base();
            // SAFETY: `base` is 128-aligned inside `mem`, which holds the whole layout and lives
            // as long as the returned ring borrows `self`. RingControl accepts zeroed memory.
            unsafe {
                let ctrl = &*base.cast::<RingControl>();
                let slots = NonNull::new_unchecked(base.add(RING_CONTROL_SIZE));
                Ring::new(ctrl, slots, &self.layout)
            }
        }
    }

    #[test]
    fn fifo_len_and_semaphores_follow_each_operation() {
        let hr = HeapRing::new(3, 8);
        let ring = hr.ring();
        let mut l = ring.lock(None).unwrap();
        assert_eq!(l.len(), 0);
        l.push(b"a").unwrap();
        l.push(b"").unwrap();
        l.push(b"12345678").unwrap();
        assert_eq!(l.push(b"x"), Err(PushFail::Full));
        assert_eq!(
            l.push(b"123456789"),
            Err(PushFail::TooLarge { len: 9, max: 8 })
        );
        assert_eq!((ring.items().count(), ring.free().count()), (3, 0));
        assert_eq!(l.pop_with(|m| m.to_vec()).unwrap(), Some(b"a".to_vec()));
        assert_eq!(l.pop_with(|m| m.to_vec()).unwrap(), Some(vec![]));
        assert_eq!((ring.items().count(), ring.free().count()), (1, 2));
        l.push(b"wrap").unwrap();
        let mut got = Vec::new();
        assert_eq!(l.pop_many_with(10, |m| got.push(m.to_vec())).unwrap(), 2);
        assert_eq!(got, vec![b"12345678".to_vec(), b"wrap".to_vec()]);
        assert_eq!(l.pop_with(|m| m.len()).unwrap(), None);
        drop(l);
        assert_eq!(ring.len(), 0);
        assert_eq!(ring.unfinished(), 4);
    }

    #[test]
    fn batches_fill_only_the_free_slots_and_refuse_oversized_messages_whole() {
        let hr = HeapRing::new(4, 4);
        let ring = hr.ring();
        let mut l = ring.lock(None).unwrap();
        assert_eq!(l.push_many(&[b"1", b"2", b"3"]).unwrap(), 3);
        assert_eq!(l.push_many(&[b"4", b"5", b"6"]).unwrap(), 1);
        assert_eq!(
            l.push_many(&[&b"ok"[..], &b"too long"[..]]),
            Err(PushFail::TooLarge { len: 8, max: 4 })
        );
        assert_eq!(l.len(), 4);
    }

    #[test]
    fn push_with_writes_in_place_and_rejects_lengths_over_the_slot() {
        let hr = HeapRing::new(2, 4);
        let ring = hr.ring();
        let mut l = ring.lock(None).unwrap();
        l.push_with(|b| {
            b[..3].copy_from_slice(b"xyz");
            3
        })
        .unwrap();
        assert_eq!(
            l.push_with(|_| 5),
            Err(PushFail::TooLarge { len: 5, max: 4 })
        );
        assert_eq!(l.len(), 1);
        assert_eq!(l.pop_with(|m| m.to_vec()).unwrap(), Some(b"xyz".to_vec()));
    }

    #[test]
    fn task_counter_never_goes_below_zero_and_bumps_the_join_generation() {
        let hr = HeapRing::new(4, 4);
        let ring = hr.ring();
        let mut l = ring.lock(None).unwrap();
        l.push(b"a").unwrap();
        l.push(b"b").unwrap();
        let g = l.join_generation();
        assert_eq!(l.task_done(1), Ok(1));
        assert_eq!(l.join_generation(), g);
        assert_eq!(l.task_done(2), Err(1));
        assert_eq!(l.task_done(1), Ok(0));
        assert_ne!(l.join_generation(), g);
        assert_eq!(l.task_done(1), Err(0));
    }

    #[test]
    fn close_sets_both_semaphore_flags() {
        let hr = HeapRing::new(2, 4);
        let ring = hr.ring();
        let mut l = ring.lock(None).unwrap();
        l.push(b"a").unwrap();
        l.set_flags(RING_CLOSED, true);
        assert_eq!(l.push(b"b"), Err(PushFail::Closed));
        assert_eq!(ring.items().flags(), Semaphore::CLOSED);
        assert_eq!(ring.free().flags(), Semaphore::CLOSED);
        assert_eq!(ring.items().count(), 1);
    }

    #[test]
    fn owner_death_rebuilds_counts_from_positions() {
        let hr = HeapRing::new(4, 4);
        let ring = hr.ring();
        {
            let mut l = ring.lock(None).unwrap();
            l.push(b"a").unwrap();
            l.push(b"b").unwrap();
        }
        // Scramble the derived state, then let a thread die holding the lock.
        ring.items().reset(0, 0);
        ring.free().reset(0, 0);
        let ctrl = ring.control();
        std::thread::scope(|s| {
            s.spawn(|| std::mem::forget(ctrl.lock.0.lock().unwrap()));
        });
        let l = ring.lock(None).unwrap();
        assert!(l.repaired);
        assert_eq!((ring.items().count(), ring.free().count()), (2, 2));
        drop(l);
        assert!(!ring.lock(None).unwrap().repaired);
    }

    #[test]
    fn impossible_positions_are_reported_not_trusted() {
        let hr = HeapRing::new(4, 4);
        let ring = hr.ring();
        ring.control().tail.0.store(10, SeqCst);
        assert!(matches!(ring.lock(None), Err(RingError::Corrupt(_))));
        ring.control().tail.0.store(1, SeqCst);
        let mut l = ring.lock(None).unwrap();
        // SAFETY: test only; corrupt the length field of slot 0 under the lock.
        unsafe { ring.slot(0).cast::<u32>().write(1000) };
        assert!(
            l.pop_with(|m| m.len())
                .unwrap_err()
                .contains("claims 1000 bytes")
        );
    }
}
