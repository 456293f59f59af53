//! The Vyukov baseline: Dmitry Vyukov's bounded multi-producer multi-consumer queue between
//! processes (the algorithm behind crossbeam's `ArrayQueue`). A sequence word per slot; a
//! producer or consumer claims a position with one compare-and-swap on the shared enqueue or
//! dequeue counter, copies the message in or out word by word through atomics, and publishes
//! the slot with one release store of its sequence word. Waiting spins, then yields
//! ([`Backoff`]); nothing blocks. Bench code only, and not crash-safe: a process killed
//! between its claim and its publish stops the queue for good. It is what shmq's lock-free ring
//! would cost without the guarantee that a killed process loses nothing but its own message, so
//! every shmq row can be read as a ratio to it.
//!
//! Slot `i` holds its sequence word, the message length and the payload: the stride of a shmq
//! slot of the same message size (16 bytes, then the payload rounded up to 8). A slot whose
//! sequence is position `p` is free for the producer that claims `p`; `p + 1` says it holds the
//! message of `p`; the consumer of `p` frees it for the next lap with `p + capacity`. Positions
//! are 64-bit counters that never wrap.
//!
//! The segment is an [`AtomicRegion`] (shmq's safe door to shared memory: every word an
//! atomic), labelled a dict only because regions are dicts or locks, as the floor's.

use std::process::Stdio;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use shmq::substrate::layout::{Kind, Params};
use shmq::substrate::segment::AtomicRegion;
use shmq_testkit::Name;

use super::floor::{copy_in, copy_out};
use super::launcher::{Launcher, Named};
use super::roles::split;
use super::roles::{PingReport, Role, Tally, check, ready, report, stamp, template, wait_gate};

/// Words of a ring's control block: the enqueue counter (word 0), the dequeue counter (word 16)
/// and `closed` (word 32), each on its own 128 bytes.
const CONTROL_WORDS: usize = 48;

/// The capacity of the round-trip rings (as shmq's ping and pong queues).
const PING_CAPACITY: usize = 4;

fn slot_words(size: usize) -> usize {
    2 + size.div_ceil(8)
}

fn ring_words(capacity: usize, size: usize) -> usize {
    (CONTROL_WORDS + capacity * slot_words(size)).next_multiple_of(16)
}

/// Waiting on a full or empty ring, as crossbeam's `Backoff::snooze`: checks again after 1, 2,
/// 4 … 64 spin-loop hints (about 130 in all, a few microseconds), then yields the CPU
/// (`sched_yield`) before every further check. On a machine with a CPU per process the peer
/// answers within the spinning; on a loaded one a waiter soon hands its CPU to the process it
/// waits for instead of spinning out its time slice.
struct Backoff(u32);

impl Backoff {
    /// Rounds of spinning before yielding.
    const SPIN_LIMIT: u32 = 6;

    fn snooze(&mut self) {
        if self.0 <= Self::SPIN_LIMIT {
            for _ in 0..1u32 << self.0 {
                std::hint::spin_loop();
            }
            self.0 += 1;
        } else {
            std::thread::yield_now();
        }
    }
}

/// One ring of a Vyukov segment.
pub(super) struct Ring<'a> {
    enqueue: &'a AtomicU64,
    dequeue: &'a AtomicU64,
    closed: &'a AtomicU64,
    slots: &'a [AtomicU64],
    capacity: u64,
    /// `capacity - 1` when the capacity is a power of two (the index is then a mask).
    mask: Option<u64>,
    words: usize,
}

impl<'a> Ring<'a> {
    fn in_words(
        all: &'a [AtomicU64],
        index: usize,
        capacity: usize,
        size: usize,
    ) -> Result<Ring<'a>> {
        ensure!(capacity >= 1, "a ring needs at least one slot");
        let n = ring_words(capacity, size);
        let words = all
            .get(index * n..(index + 1) * n)
            .ok_or_else(|| anyhow!("the Vyukov segment is too small"))?;
        Ok(Ring {
            enqueue: &words[0],
            dequeue: &words[16],
            closed: &words[32],
            slots: &words[CONTROL_WORDS..CONTROL_WORDS + capacity * slot_words(size)],
            capacity: capacity as u64,
            mask: capacity.is_power_of_two().then_some(capacity as u64 - 1),
            words: slot_words(size),
        })
    }

    pub(super) fn at(
        region: &'a AtomicRegion,
        index: usize,
        capacity: usize,
        size: usize,
    ) -> Result<Ring<'a>> {
        Ring::in_words(region.words(), index, capacity, size)
    }

    fn slot(&self, pos: u64) -> &[AtomicU64] {
        let i = match self.mask {
            Some(m) => pos & m,
            None => pos % self.capacity,
        } as usize;
        &self.slots[i * self.words..(i + 1) * self.words]
    }

    /// Puts `msg` (at most the slot's size) if a slot is free; `false` if the ring is full.
    pub(super) fn try_push(&self, msg: &[u8]) -> bool {
        let mut pos = self.enqueue.load(Relaxed);
        loop {
            let slot = self.slot(pos);
            let seq = slot[0].load(Acquire);
            match seq.wrapping_sub(pos) as i64 {
                0 => match self
                    .enqueue
                    .compare_exchange_weak(pos, pos + 1, Relaxed, Relaxed)
                {
                    Ok(_) => {
                        slot[1].store(msg.len() as u64, Relaxed);
                        copy_in(&slot[2..], msg);
                        slot[0].store(pos + 1, Release);
                        return true;
                    }
                    Err(now) => pos = now,
                },
                // The slot still holds the message of `pos - capacity`: full.
                d if d < 0 => return false,
                // Another producer took `pos`.
                _ => pos = self.enqueue.load(Relaxed),
            }
        }
    }

    /// Takes the oldest message into `buf` (its length), or `None` if the ring is empty.
    pub(super) fn try_pop(&self, buf: &mut [u8]) -> Option<usize> {
        let mut pos = self.dequeue.load(Relaxed);
        loop {
            let slot = self.slot(pos);
            let seq = slot[0].load(Acquire);
            match seq.wrapping_sub(pos + 1) as i64 {
                0 => match self
                    .dequeue
                    .compare_exchange_weak(pos, pos + 1, Relaxed, Relaxed)
                {
                    Ok(_) => {
                        let len = (slot[1].load(Relaxed) as usize).min(buf.len());
                        copy_out(&slot[2..], &mut buf[..len]);
                        slot[0].store(pos + self.capacity, Release);
                        return Some(len);
                    }
                    Err(now) => pos = now,
                },
                // Position `pos` is not written yet: empty.
                d if d < 0 => return None,
                // Another consumer took `pos`.
                _ => pos = self.dequeue.load(Relaxed),
            }
        }
    }

    /// Puts `msg`, spinning then yielding while the ring is full.
    ///
    /// # Errors
    ///
    /// If the ring is full and closed (a consumer failed and closed it).
    pub(super) fn push(&self, msg: &[u8]) -> Result<()> {
        let mut wait = Backoff(0);
        while !self.try_push(msg) {
            if self.closed.load(Acquire) != 0 {
                bail!("the ring was closed while full (a consumer failed)");
            }
            wait.snooze();
        }
        Ok(())
    }

    /// Takes the next message into `buf` (its length), spinning then yielding while the ring is
    /// empty; `None` once it is closed and empty.
    pub(super) fn pop(&self, buf: &mut [u8]) -> Option<usize> {
        let mut wait = Backoff(0);
        loop {
            if let Some(n) = self.try_pop(buf) {
                return Some(n);
            }
            if self.closed.load(Acquire) != 0 {
                // Closed after the last producer finished: what is left is published.
                return self.try_pop(buf);
            }
            wait.snooze();
        }
    }

    fn close(&self) {
        self.closed.store(1, Release);
    }
}

/// A Vyukov segment of `rings` rings, removed on drop.
pub(super) struct VyukovSegment {
    name: Name,
    region: AtomicRegion,
    capacity: usize,
    size: usize,
}

impl VyukovSegment {
    pub(super) fn create(rings: usize, capacity: usize, size: usize) -> Result<VyukovSegment> {
        let name = Name::with_prefix("shmq-bench", "vyukov");
        let len = AtomicRegion::WORDS_OFFSET + rings * ring_words(capacity, size) * 8;
        let params = Params {
            kind: Kind::Dict,
            capacity: 1,
            message_size: 8,
            slot_stride: 8,
            aux: 0,
            total_size: len as u64,
        };
        let region = AtomicRegion::create(&name, &params, 0o600, |words| {
            for index in 0..rings {
                let ring = Ring::in_words(words, index, capacity, size)
                    .map_err(|e| shmq::OpenError::InvalidOptions(e.to_string()))?;
                for pos in 0..capacity as u64 {
                    ring.slot(pos)[0].store(pos, Relaxed);
                }
            }
            Ok(())
        })
        .with_context(|| format!("creating {}", name.as_str()))?;
        Ok(VyukovSegment {
            name,
            region,
            capacity,
            size,
        })
    }

    pub(super) fn name(&self) -> &str {
        &self.name
    }

    pub(super) fn ring(&self, index: usize) -> Result<Ring<'_>> {
        Ring::at(&self.region, index, self.capacity, self.size)
    }
}

fn open(name: &str) -> Result<AtomicRegion> {
    AtomicRegion::open(name, Kind::Dict).with_context(|| format!("opening {name}"))
}

/// Child role: pushes `first..first + count` into ring 0.
pub(super) fn produce(
    segment: &str,
    gate: &str,
    capacity: usize,
    size: usize,
    first: u64,
    count: u64,
) -> Result<()> {
    let seg = open(segment)?;
    let ring = Ring::at(&seg, 0, capacity, size)?;
    wait_gate(gate)?;
    let mut buf = template(size);
    for seq in first..first + count {
        stamp(&mut buf, seq);
        ring.push(&buf)?;
    }
    Ok(())
}

/// Which producer sent each message, and that each producer's messages come in order: the
/// producers send the ranges that start at `firsts` (ascending), each in increasing order, so
/// each consumer must see every producer's messages in increasing order.
struct Order {
    firsts: Vec<u64>,
    last: Vec<Option<u64>>,
}

impl Order {
    fn new(firsts: Vec<u64>) -> Order {
        let last = vec![None; firsts.len()];
        Order { firsts, last }
    }

    fn see(&mut self, seq: u64) -> Result<()> {
        let p = self.firsts.partition_point(|&f| f <= seq);
        ensure!(p > 0, "message {seq} is from no producer");
        let last = &mut self.last[p - 1];
        if let Some(l) = *last {
            ensure!(
                seq > l,
                "message {seq} of producer {} came after its message {l}: out of order",
                p - 1
            );
        }
        *last = Some(seq);
        Ok(())
    }
}

/// Child role: pops from ring 0 until it is closed and empty, checking every message and each
/// producer's order (`firsts`: where each producer's range starts); reports the tally. On a
/// failed check it closes the ring, so that producers stop instead of waiting on a full ring.
pub(super) fn consume(segment: &str, capacity: usize, size: usize, firsts: Vec<u64>) -> Result<()> {
    let seg = open(segment)?;
    let ring = Ring::at(&seg, 0, capacity, size)?;
    ready();
    let mut order = Order::new(firsts);
    let mut t = Tally::default();
    let mut buf = vec![0u8; size];
    let mut take = || -> Result<()> {
        while let Some(n) = ring.pop(&mut buf) {
            let seq = check(&buf[..n], size)?;
            order.see(seq)?;
            t.add(seq);
        }
        Ok(())
    };
    if let Err(e) = take() {
        ring.close();
        return Err(e);
    }
    report(&t)
}

/// Child role: the ping client (pushes on ring 0, pops from ring 1).
pub(super) fn ping(segment: &str, size: usize, warmup: u64, count: u64) -> Result<()> {
    let seg = open(segment)?;
    let tx = Ring::at(&seg, 0, PING_CAPACITY, size)?;
    let rx = Ring::at(&seg, 1, PING_CAPACITY, size)?;
    ready();
    let mut msg = template(size);
    let mut back = vec![0u8; size];
    let mut samples = Vec::with_capacity(count as usize);
    let mut start = Instant::now();
    for seq in 0..warmup + count {
        if seq == warmup {
            start = Instant::now();
        }
        stamp(&mut msg, seq);
        let t = Instant::now();
        tx.push(&msg)?;
        let n = rx
            .pop(&mut back)
            .ok_or_else(|| anyhow!("the echo hung up"))?;
        let rtt = t.elapsed();
        ensure!(
            check(&back[..n], size)? == seq,
            "echo of {seq} out of order"
        );
        if seq >= warmup {
            samples.push(rtt.as_nanos() as u64);
        }
    }
    let elapsed = start.elapsed();
    tx.close();
    samples.sort_unstable();
    let pct = |p: usize| samples.get(samples.len() * p / 100).copied().unwrap_or(0);
    report(&PingReport {
        count,
        elapsed_ns: elapsed.as_nanos() as u64,
        p50_ns: pct(50),
        p99_ns: pct(99),
    })
}

/// Child role: the echo (pops from ring 0, pushes back on ring 1) until the client closes.
pub(super) fn echo(segment: &str, size: usize) -> Result<()> {
    let seg = open(segment)?;
    let rx = Ring::at(&seg, 0, PING_CAPACITY, size)?;
    let tx = Ring::at(&seg, 1, PING_CAPACITY, size)?;
    ready();
    let mut buf = vec![0u8; size];
    while let Some(n) = rx.pop(&mut buf) {
        tx.push(&buf[..n])?;
    }
    Ok(())
}

/// Runs a transfer of `count` messages of `size` bytes from `producers` to `consumers`
/// processes through one Vyukov ring of `capacity` slots; returns the time from the gate to the
/// last consumer's report, after checking the count and checksum of everything received (each
/// consumer checks each producer's order itself).
///
/// # Errors
///
/// A child that fails (a message out of order included) or a wrong count or checksum.
pub fn transfer(
    launcher: &Launcher,
    size: usize,
    count: u64,
    producers: usize,
    consumers: usize,
    capacity: usize,
) -> Result<Duration> {
    ensure!(
        producers >= 1 && consumers >= 1,
        "need processes on both sides"
    );
    let seg = VyukovSegment::create(1, capacity, size)?;
    let gate = Named::create("gate", producers, 8)?;
    let shares = split(count, producers);
    let firsts: Vec<u64> = shares.iter().map(|&(first, _)| first).collect();
    let mut cons = Vec::with_capacity(consumers);
    for _ in 0..consumers {
        cons.push(launcher.spawn(
            &Role::VyukovConsumer {
                segment: seg.name().to_owned(),
                capacity,
                size,
                firsts: firsts.clone(),
            },
            Stdio::null(),
            Stdio::null(),
        )?);
    }
    let mut prods = Vec::with_capacity(producers);
    for &(first, count) in &shares {
        prods.push(launcher.spawn(
            &Role::VyukovProducer {
                segment: seg.name().to_owned(),
                gate: gate.name.clone(),
                capacity,
                size,
                first,
                count,
            },
            Stdio::null(),
            Stdio::null(),
        )?);
    }
    for p in cons.iter_mut().chain(prods.iter_mut()) {
        p.ready()?;
    }
    let start = Instant::now();
    for _ in 0..producers {
        gate.queue
            .put(b"go")
            .map_err(|e| anyhow!("opening the gate: {e}"))?;
    }
    for p in prods {
        p.finish()?;
    }
    seg.ring(0)?.close();
    let mut reports = Vec::with_capacity(cons.len());
    for c in &mut cons {
        reports.push(c.report::<Tally>()?);
    }
    let elapsed = start.elapsed();
    let mut total = Tally::default();
    for (c, r) in cons.into_iter().zip(reports) {
        c.finish()?;
        total.merge(r);
    }
    let mut expected = Tally::default();
    for &(first, count) in &shares {
        expected.merge(Tally::expected(first, count));
    }
    ensure!(
        total == expected,
        "vyukov {producers}x{size} B: consumers saw {} messages (checksum {:#x}), producers sent {} ({:#x})",
        total.count,
        total.checksum,
        expected.count,
        expected.checksum
    );
    Ok(elapsed)
}

/// Runs `warmup + count` round trips over two Vyukov rings of 4 slots.
pub(super) fn ping_pong(
    launcher: &Launcher,
    size: usize,
    warmup: u64,
    count: u64,
) -> Result<PingReport> {
    let seg = VyukovSegment::create(2, PING_CAPACITY, size)?;
    let mut echo = launcher.spawn(
        &Role::VyukovEcho {
            segment: seg.name().to_owned(),
            size,
        },
        Stdio::null(),
        Stdio::null(),
    )?;
    let mut client = launcher.spawn(
        &Role::VyukovPing {
            segment: seg.name().to_owned(),
            size,
            warmup,
            count,
        },
        Stdio::null(),
        Stdio::null(),
    )?;
    echo.ready()?;
    client.ready()?;
    let r: PingReport = client.report()?;
    client.finish()?;
    echo.finish()?;
    ensure!(r.count > 0, "no round trip was timed");
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(n: usize) -> Vec<AtomicU64> {
        (0..n).map(|_| AtomicU64::new(0)).collect()
    }

    /// One thread: a ring of 3 slots (not a power of two) fills, refuses a fourth message,
    /// gives the messages back in order with their lengths, is empty, and does so for many laps.
    #[test]
    fn a_ring_is_fifo_bounded_and_reusable_across_laps() {
        let (capacity, size) = (3, 20);
        let w = words(ring_words(capacity, size));
        let ring = Ring::in_words(&w, 0, capacity, size).unwrap();
        for pos in 0..capacity as u64 {
            ring.slot(pos)[0].store(pos, Relaxed);
        }
        let mut buf = [0u8; 20];
        for lap in 0..10u8 {
            for i in 0..3u8 {
                assert!(ring.try_push(&[lap, i, 7][..usize::from(i) + 1]));
            }
            assert!(!ring.try_push(b"x"), "lap {lap}: a fourth message fit");
            for i in 0..3u8 {
                let n = ring.try_pop(&mut buf).unwrap();
                assert_eq!(&buf[..n], &[lap, i, 7][..usize::from(i) + 1]);
            }
            assert_eq!(ring.try_pop(&mut buf), None);
        }
    }

    /// Every length from 0 to 40 bytes comes out as it went in, and a copy never writes
    /// past the message's last word.
    #[test]
    fn messages_copy_in_and_out_whole_at_every_length() {
        let w = words(6);
        let msg: Vec<u8> = (1..=40).collect();
        for len in 0..=40 {
            w[5].store(7, Relaxed);
            copy_in(&w[..5], &msg[..len]);
            let mut out = vec![0u8; len];
            copy_out(&w[..5], &mut out);
            assert_eq!(out, &msg[..len]);
            assert_eq!(w[5].load(Relaxed), 7);
        }
    }

    #[test]
    fn order_catches_a_producer_out_of_order_and_a_stranger() {
        let mut o = Order::new(vec![0, 10, 20]);
        for seq in [0, 10, 1, 20, 15, 5] {
            o.see(seq).unwrap();
        }
        assert!(o.see(14).is_err());
        assert!(o.see(3).is_err());
        assert!(Order::new(vec![5]).see(4).is_err());
    }
}
