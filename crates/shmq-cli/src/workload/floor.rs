//! The floor: a minimal lock-free single-producer/single-consumer ring between two processes
//! (Lamport's queue with cached indices, busy-spinning, no blocking, no crash safety), copying
//! messages in and out word by word through atomics as shmq does. Bench code only: it measures
//! what the machine allows, so that every shmq row can be read as a ratio to it.
//!
//! Waiting spins; after [`SPINS_BEFORE_YIELD`] fruitless checks in a row it yields the CPU once,
//! so that a floor whose two processes share one CPU (a loaded machine) measures the ring rather
//! than the scheduler's time slice. On an idle machine with a CPU per process it never yields.

use std::process::Stdio;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, ensure};
use shmq::substrate::layout::{Kind, Params};
use shmq::substrate::segment::AtomicRegion;

use super::launcher::{Launcher, Named};
use super::roles::queue_capacity;
use super::roles::{PingReport, Role, Tally, check, ready, report, stamp, template, wait_gate};

/// Words of a ring's control block: `head` (word 0), `tail` (word 16), `closed` (word 32), each
/// on its own 128 bytes.
const CONTROL_WORDS: usize = 48;

/// Fruitless checks before one `sched_yield`.
const SPINS_BEFORE_YIELD: u32 = 1 << 12;

fn backoff(spins: &mut u32) {
    *spins += 1;
    if (*spins).is_multiple_of(SPINS_BEFORE_YIELD) {
        std::thread::yield_now();
    } else {
        std::hint::spin_loop();
    }
}

/// Copies `msg` into the words `dst` (at least `msg.len()` rounded up to 8 bytes), 8 bytes a
/// word, little-endian, through relaxed atomic stores: as shmq copies a message into its slot.
pub(super) fn copy_in(dst: &[AtomicU64], msg: &[u8]) {
    let mut chunks = msg.chunks_exact(8);
    let (full, last) = dst.split_at(msg.len() / 8);
    for (w, c) in full.iter().zip(&mut chunks) {
        let b: [u8; 8] = c.try_into().unwrap_or_default();
        w.store(u64::from_le_bytes(b), Relaxed);
    }
    let rest = chunks.remainder();
    if let (Some(w), false) = (last.first(), rest.is_empty()) {
        let mut b = [0u8; 8];
        b[..rest.len()].copy_from_slice(rest);
        w.store(u64::from_le_bytes(b), Relaxed);
    }
}

/// Copies the first `buf.len()` bytes of the words `src` into `buf`, through relaxed atomic
/// loads: as shmq copies a message out of its slot.
pub(super) fn copy_out(src: &[AtomicU64], buf: &mut [u8]) {
    let (full, last) = src.split_at(buf.len() / 8);
    let mut chunks = buf.chunks_exact_mut(8);
    for (c, w) in (&mut chunks).zip(full) {
        c.copy_from_slice(&w.load(Relaxed).to_le_bytes());
    }
    let rest = chunks.into_remainder();
    if let (Some(w), false) = (last.first(), rest.is_empty()) {
        let n = rest.len();
        rest.copy_from_slice(&w.load(Relaxed).to_le_bytes()[..n]);
    }
}

/// One ring of a floor segment.
struct Ring<'a> {
    head: &'a AtomicU64,
    tail: &'a AtomicU64,
    closed: &'a AtomicU64,
    slots: &'a [AtomicU64],
    capacity: u64,
    words: usize,
}

fn slot_words(size: usize) -> usize {
    1 + size.div_ceil(8)
}

fn ring_words(capacity: usize, size: usize) -> usize {
    (CONTROL_WORDS + capacity * slot_words(size)).next_multiple_of(16)
}

impl<'a> Ring<'a> {
    fn at(
        region: &'a AtomicRegion,
        index: usize,
        capacity: usize,
        size: usize,
    ) -> Result<Ring<'a>> {
        let n = ring_words(capacity, size);
        let words = region
            .words()
            .get(index * n..(index + 1) * n)
            .ok_or_else(|| anyhow!("the floor segment is too small"))?;
        Ok(Ring {
            head: &words[0],
            tail: &words[16],
            closed: &words[32],
            slots: &words[CONTROL_WORDS..CONTROL_WORDS + capacity * slot_words(size)],
            capacity: capacity as u64,
            words: slot_words(size),
        })
    }

    fn slot(&self, pos: u64) -> &[AtomicU64] {
        let base = (pos % self.capacity) as usize * self.words;
        &self.slots[base..base + self.words]
    }
}

/// The producer's end: its own `tail` and a cached `head`.
pub(super) struct Sender<'a> {
    ring: Ring<'a>,
    tail: u64,
    head: u64,
}

impl Sender<'_> {
    pub(super) fn send(&mut self, msg: &[u8]) {
        let mut spins = 0;
        while self.tail - self.head == self.ring.capacity {
            self.head = self.ring.head.load(Acquire);
            if self.tail - self.head == self.ring.capacity {
                backoff(&mut spins);
            }
        }
        let words = self.ring.slot(self.tail);
        words[0].store(msg.len() as u64, Relaxed);
        copy_in(&words[1..], msg);
        self.tail += 1;
        self.ring.tail.store(self.tail, Release);
    }
}

/// The consumer's end: its own `head` and a cached `tail`.
pub(super) struct Receiver<'a> {
    ring: Ring<'a>,
    head: u64,
    tail: u64,
}

impl Receiver<'_> {
    /// The next message into `buf` (its length), or `None` once the ring is closed and empty.
    pub(super) fn recv(&mut self, buf: &mut [u8]) -> Option<usize> {
        let mut spins = 0;
        while self.head == self.tail {
            self.tail = self.ring.tail.load(Acquire);
            if self.head == self.tail {
                if self.ring.closed.load(Acquire) != 0 {
                    self.tail = self.ring.tail.load(Acquire);
                    if self.head == self.tail {
                        return None;
                    }
                }
                backoff(&mut spins);
            }
        }
        let words = self.ring.slot(self.head);
        let len = (words[0].load(Relaxed) as usize).min(buf.len());
        copy_out(&words[1..], &mut buf[..len]);
        self.head += 1;
        self.ring.head.store(self.head, Release);
        Some(len)
    }
}

/// A floor segment of `rings` rings, unlinked on drop. It is an [`AtomicRegion`] (a segment of
/// atomic words behind a header), labelled a dict only because regions are dicts or locks; no
/// dict code ever opens it.
pub(super) struct FloorSegment {
    name: String,
    region: AtomicRegion,
    capacity: usize,
    size: usize,
}

impl FloorSegment {
    pub(super) fn create(rings: usize, capacity: usize, size: usize) -> Result<FloorSegment> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "shmq-bench-{}-{}-floor",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let len = AtomicRegion::WORDS_OFFSET + rings * ring_words(capacity, size) * 8;
        let params = Params {
            kind: Kind::Dict,
            capacity: 1,
            message_size: 8,
            slot_stride: 8,
            aux: 0,
            total_size: len as u64,
        };
        let region = AtomicRegion::create(&name, &params, 0o600, |_| Ok(()))
            .with_context(|| format!("creating {name}"))?;
        Ok(FloorSegment {
            name,
            region,
            capacity,
            size,
        })
    }

    /// The sending and the receiving end of ring `index`, for one process that does both (the
    /// single-thread instruction counts of `calls`).
    pub(super) fn ends(&self, index: usize) -> Result<(Sender<'_>, Receiver<'_>)> {
        let ring = || Ring::at(&self.region, index, self.capacity, self.size);
        Ok((
            Sender {
                ring: ring()?,
                tail: 0,
                head: 0,
            },
            Receiver {
                ring: ring()?,
                head: 0,
                tail: 0,
            },
        ))
    }

    fn close(&self, index: usize) -> Result<()> {
        Ring::at(&self.region, index, self.capacity, self.size)?
            .closed
            .store(1, Release);
        Ok(())
    }
}

impl Drop for FloorSegment {
    fn drop(&mut self) {
        let _ = AtomicRegion::unlink(&self.name);
    }
}

fn open(name: &str) -> Result<AtomicRegion> {
    AtomicRegion::open(name, Kind::Dict).with_context(|| format!("opening {name}"))
}

/// Child role: sends `first..first + count` into ring 0.
pub(super) fn produce(
    segment: &str,
    gate: &str,
    capacity: usize,
    size: usize,
    first: u64,
    count: u64,
) -> Result<()> {
    let seg = open(segment)?;
    let mut tx = Sender {
        ring: Ring::at(&seg, 0, capacity, size)?,
        tail: 0,
        head: 0,
    };
    wait_gate(gate)?;
    let mut buf = template(size);
    for seq in first..first + count {
        stamp(&mut buf, seq);
        tx.send(&buf);
    }
    Ok(())
}

/// Child role: takes from ring 0 until it is closed and empty; reports the tally.
pub(super) fn consume(segment: &str, capacity: usize, size: usize) -> Result<()> {
    let seg = open(segment)?;
    let mut rx = Receiver {
        ring: Ring::at(&seg, 0, capacity, size)?,
        head: 0,
        tail: 0,
    };
    ready();
    let mut t = Tally::default();
    let mut buf = vec![0u8; size];
    while let Some(n) = rx.recv(&mut buf) {
        t.add(check(&buf[..n], size)?);
    }
    report(&t)
}

/// Child role: the ping client (sends on ring 0, receives on ring 1).
pub(super) fn ping(segment: &str, size: usize, warmup: u64, count: u64) -> Result<()> {
    let seg = open(segment)?;
    let mut tx = Sender {
        ring: Ring::at(&seg, 0, 4, size)?,
        tail: 0,
        head: 0,
    };
    let mut rx = Receiver {
        ring: Ring::at(&seg, 1, 4, size)?,
        head: 0,
        tail: 0,
    };
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
        tx.send(&msg);
        let n = rx
            .recv(&mut back)
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
    tx.ring.closed.store(1, Release);
    samples.sort_unstable();
    let pct = |p: usize| samples.get(samples.len() * p / 100).copied().unwrap_or(0);
    report(&PingReport {
        count,
        elapsed_ns: elapsed.as_nanos() as u64,
        p50_ns: pct(50),
        p99_ns: pct(99),
    })
}

/// Child role: the echo (receives on ring 0, sends back on ring 1) until the client closes.
pub(super) fn echo(segment: &str, size: usize) -> Result<()> {
    let seg = open(segment)?;
    let mut rx = Receiver {
        ring: Ring::at(&seg, 0, 4, size)?,
        head: 0,
        tail: 0,
    };
    let mut tx = Sender {
        ring: Ring::at(&seg, 1, 4, size)?,
        tail: 0,
        head: 0,
    };
    ready();
    let mut buf = vec![0u8; size];
    while let Some(n) = rx.recv(&mut buf) {
        tx.send(&buf[..n]);
    }
    Ok(())
}

/// Runs a 1→1 transfer of `count` messages over the floor; returns the time from the gate to
/// the consumer's report, after checking its count and checksum.
pub(super) fn transfer(launcher: &Launcher, size: usize, count: u64) -> Result<Duration> {
    let capacity = queue_capacity(size);
    let seg = FloorSegment::create(1, capacity, size)?;
    let gate = Named::create("gate", 1, 8)?;
    let mut consumer = launcher.spawn(
        &Role::FloorConsumer {
            segment: seg.name.clone(),
            capacity,
            size,
        },
        Stdio::null(),
        Stdio::null(),
    )?;
    let mut producer = launcher.spawn(
        &Role::FloorProducer {
            segment: seg.name.clone(),
            gate: gate.name.clone(),
            capacity,
            size,
            first: 0,
            count,
        },
        Stdio::null(),
        Stdio::null(),
    )?;
    consumer.ready()?;
    producer.ready()?;
    let start = Instant::now();
    gate.queue
        .put(b"go")
        .map_err(|e| anyhow!("opening the gate: {e}"))?;
    producer.finish()?;
    seg.close(0)?;
    let tally: Tally = consumer.report()?;
    let elapsed = start.elapsed();
    consumer.finish()?;
    ensure!(
        tally == Tally::expected(0, count),
        "floor 1x{size} B: the consumer saw {} messages (checksum {:#x}), the producer sent {count}",
        tally.count,
        tally.checksum
    );
    Ok(elapsed)
}

/// Runs `warmup + count` round trips over two floor rings.
pub(super) fn ping_pong(
    launcher: &Launcher,
    size: usize,
    warmup: u64,
    count: u64,
) -> Result<PingReport> {
    let seg = FloorSegment::create(2, 4, size)?;
    let mut echo = launcher.spawn(
        &Role::FloorEcho {
            segment: seg.name.clone(),
            size,
        },
        Stdio::null(),
        Stdio::null(),
    )?;
    let mut client = launcher.spawn(
        &Role::FloorPing {
            segment: seg.name.clone(),
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
