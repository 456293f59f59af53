//! Messages larger than a slot: each travels in a side segment of its own, referenced from a
//! slot by a small descriptor (bit 63 of the slot's length word, `lockfree::LARGE`).
//!
//! A producer creates `<queue>.big.<pid>.<start>.<n>` (hexadecimal: its pid, its start time
//! and a per-process counter), writes a 64-byte header and the message into it, and only then
//! puts the descriptor (length, pid, start, n) through the ordinary put path: its publication
//! is the commit. A consumer reads a descriptor only through the reserved front (the zero-copy
//! get machinery: ring lock + `RESERVED` bit, repaired after a reader's death), so it copies
//! (or lends) the whole message before it takes the slot, and unlinks the side segment after.
//!
//! What a death leaves and who removes it (`docs/protocol.md`, "Large messages"):
//! - a producer killed before its descriptor is published leaves a side segment that no slot
//!   names and whose creator is dead: `Big::sweep` removes it;
//! - a consumer killed while reading leaves the message queued (its reservation is cleared);
//! - a consumer killed between its take and its unlink leaves a side segment no slot names:
//!   removed by the sweep once its creator is gone, and by [`remove_side_segments`] when the queue is
//!   unlinked.
//!
//! This module knows nothing of the public types; the queue and the pipe call it.

use std::collections::HashSet;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::engine::{self, Fail, Wait, Waiting};
use crate::error::OpenError;
use crate::ring::Ring;
use crate::segment::{Blob, Segment, process_alive, process_start_time};

/// The largest `max_message_size` accepted (64 GiB, the largest segment).
pub const MAX_LARGE_MESSAGE: u64 = 1 << 36;

/// The default maximum message size of a new queue or pipe (1 GiB).
pub const DEFAULT_MAX_MESSAGE: usize = 1 << 30;

/// Bytes of a descriptor in a slot: length, pid, start time, counter (u64 each, native order).
pub const DESCRIPTOR_LEN: usize = 32;

/// Bytes before the message in a side segment: magic, the descriptor's four words, the state
/// word, padding.
const BLOB_HEADER: usize = 64;

/// Offset of the state word in a side segment's head (see [`FREE`], [`RETIRED`]).
const STATE_AT: usize = 40;

/// State word: the side segment holds no queued message; its creator may write it. Otherwise
/// the low 32 bits are the generation of the message it holds (the descriptor's `gen`).
const FREE: u64 = 0;

/// State-word bit: the creator will not write this side segment again; whoever frees it (the
/// consumer after its take) unlinks it, and a consumer drops a cached mapping of it.
const RETIRED: u64 = 1 << 63;

/// `b"SHMQbig2"` as a little-endian u64: the first word of a side segment.
const BLOB_MAGIC: u64 = u64::from_le_bytes(*b"SHMQbig2");

/// What a side segment's name puts between the queue's name and the numbers.
const INFIX: &str = ".big.";

/// Side segments made by this process so far (the `n` of their names).
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// At most this many pooled side segments per producer handle (queue or pipe end).
pub const POOL_SEGMENTS: usize = 4;

/// At most this many bytes of pooled side segments per producer handle; a message whose
/// segment would not fit goes into a one-shot segment (unlinked by its consumer).
pub const POOL_BYTES: usize = 64 << 20;

/// A free pooled side segment not reused during this many large puts of its pool is retired.
const POOL_IDLE_PUTS: u64 = 64;

/// At most this many cached side-segment mappings per consumer handle.
pub const CACHE_SEGMENTS: usize = 16;

/// At most this many bytes of cached side-segment mappings per consumer handle.
pub const CACHE_BYTES: usize = 128 << 20;

/// A large message's descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Descriptor {
    len: u64,
    /// The creator's pid (bits 0–31) and the message's generation in its side segment (bits
    /// 32–63, never 0).
    pid_gen: u64,
    start: u64,
    n: u64,
}

impl Descriptor {
    fn encode(&self) -> [u8; DESCRIPTOR_LEN] {
        let mut b = [0; DESCRIPTOR_LEN];
        for (i, w) in [self.len, self.pid_gen, self.start, self.n]
            .iter()
            .enumerate()
        {
            b[i * 8..i * 8 + 8].copy_from_slice(&w.to_ne_bytes());
        }
        b
    }

    fn decode(b: &[u8]) -> Option<Descriptor> {
        if b.len() != DESCRIPTOR_LEN {
            return None;
        }
        let w = |i: usize| u64::from_ne_bytes(b[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
        Some(Descriptor {
            len: w(0),
            pid_gen: w(1),
            start: w(2),
            n: w(3),
        })
    }

    fn pid(&self) -> u64 {
        self.pid_gen & 0xffff_ffff
    }

    fn generation(&self) -> u64 {
        self.pid_gen >> 32
    }

    fn name(&self, queue: &str) -> String {
        format!(
            "{queue}{INFIX}{:x}.{:x}.{:x}",
            self.pid(),
            self.start,
            self.n
        )
    }
}

/// If `name` is a side segment's name, the queue (or pipe) it belongs to and its creator's
/// pid and start time.
///
/// # Examples
///
/// ```
/// assert_eq!(shmq::large::side_segment_of("jobs.big.1f.2a.0"), Some(("jobs", 0x1f, 0x2a)));
/// assert_eq!(shmq::large::side_segment_of("jobs"), None);
/// ```
pub fn side_segment_of(name: &str) -> Option<(&str, u32, u64)> {
    let at = name.rfind(INFIX)?;
    let (queue, rest) = (&name[..at], &name[at + INFIX.len()..]);
    let mut parts = rest.split('.');
    let pid = u32::from_str_radix(parts.next()?, 16).ok()?;
    let start = u64::from_str_radix(parts.next()?, 16).ok()?;
    u64::from_str_radix(parts.next()?, 16).ok()?;
    if parts.next().is_some() || queue.is_empty() {
        return None;
    }
    Some((queue, pid, start))
}

/// The names of the side segments of `queue` that exist now.
fn side_segments(queue: &str) -> Vec<(String, u32, u64)> {
    let Ok(dir) = std::fs::read_dir(crate::sys::SHM_DIR) else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|n| {
            let (q, pid, start) = side_segment_of(&n)?;
            (q == queue).then(|| (n.clone(), pid, start))
        })
        .collect()
}

/// Removes every side segment of `queue` (as `Queue::unlink` and `Pipe::unlink` do after the
/// queue's own name): afterwards no byte of the queue's large messages stays in `/dev/shm` once
/// the last mapping is gone. Returns how many it removed.
///
/// # Examples
///
/// ```
/// assert_eq!(shmq::large::remove_side_segments("shmq-doc-no-such-queue"), 0);
/// ```
pub fn remove_side_segments(queue: &str) -> usize {
    side_segments(queue)
        .into_iter()
        .filter(|(n, _, _)| retire_by_name(n))
        .count()
}

/// The size class of a side segment for `need` bytes (head + message): `need` rounded up to a
/// multiple of an eighth of its power of two (at least 64 KiB), so a segment serves every
/// message up to 12.5 % shorter than the one it was made for and wastes at most that much.
fn size_class(need: usize) -> usize {
    let step = (need.next_power_of_two() / 8).max(64 << 10);
    need.div_ceil(step) * step
}

/// Frees side segment `blob` (state word back to [`FREE`]) after the message of generation
/// `generation` left it (taken by a consumer, or a put that failed); if it was retired
/// meanwhile, unlinks `name` instead and returns `true`.
fn release(blob: &Blob, name: &str, generation: u64) -> bool {
    let state = blob.word(STATE_AT);
    loop {
        let s = state.load(Acquire);
        if s & !RETIRED != generation {
            // Not ours to free (a corrupt or foreign head): leave it to the sweep.
            return false;
        }
        if s & RETIRED != 0 {
            state.store(RETIRED, Release);
            let _ = Blob::unlink(name);
            return true;
        }
        // SYNC POINT: consumer — the reads of the message happen before this Release; the
        // creator's Acquire CAS from FREE orders its next writes after them.
        if state.compare_exchange(s, FREE, Release, Relaxed).is_ok() {
            return false;
        }
    }
}

/// Marks side segment `blob` retired: unlinks `name` now if it is free, else leaves the unlink
/// to whoever frees it ([`release`]).
fn retire(blob: &Blob, name: &str) {
    let state = blob.word(STATE_AT);
    loop {
        let s = state.load(Acquire);
        if s & RETIRED != 0 {
            return;
        }
        if state
            .compare_exchange(s, s | RETIRED, AcqRel, Relaxed)
            .is_ok()
        {
            if s == FREE {
                let _ = Blob::unlink(name);
            }
            return;
        }
    }
}

/// What a put does for a side segment ([`Big::check_out`]).
enum Choice {
    /// This free pooled segment, claimed.
    Reuse(Pooled),
    /// A new pooled segment (room is made in the pool's accounting).
    New,
    /// A one-shot segment, unlinked by its consumer.
    OneShot,
    /// Nothing yet: a pooled segment in flight may be freed soon.
    Wait,
}

/// How long a large put waits at most for a pooled side segment in flight to be freed before it
/// makes a one-shot segment instead: 10 ms, plus 4 ms per MiB of the message (about what a new
/// segment's `fallocate`, `mmap` and later freeing cost on tmpfs, so waiting never loses much).
fn pool_wait(need: usize) -> Duration {
    Duration::from_millis(10 + 4 * (need >> 20) as u64)
}

/// One pooled side segment of a producer.
#[derive(Debug)]
struct Pooled {
    name: String,
    blob: Blob,
    /// The descriptor's `start` and `n` (the name's numbers).
    start: u64,
    n: u64,
    /// The generation of the last message written into it.
    generation: u64,
    /// The pool's `puts` when it was last written.
    used: u64,
}

/// A producer's side segments kept for reuse (bounded by [`POOL_SEGMENTS`] and
/// [`POOL_BYTES`]); those checked out by a put in progress are not in `free` but count in
/// `count`/`bytes`.
#[derive(Debug, Default)]
struct Pool {
    idle: Vec<Pooled>,
    count: usize,
    bytes: usize,
    puts: u64,
}

impl Pool {
    /// Removes `p` from the pool's accounting and retires it.
    fn drop_segment(&mut self, p: Pooled) {
        self.count -= 1;
        self.bytes -= p.blob.len();
        retire(&p.blob, &p.name);
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        for p in self.idle.drain(..) {
            retire(&p.blob, &p.name);
        }
    }
}

/// A consumer's cached mappings of pooled side segments, oldest first (bounded by
/// [`CACHE_SEGMENTS`] and [`CACHE_BYTES`]).
#[derive(Debug, Default)]
struct Cache {
    maps: Vec<(String, Arc<Blob>)>,
}

impl Cache {
    /// Drops the mappings of retired side segments (their tmpfs pages live while mapped).
    fn drop_retired(&mut self) {
        self.maps
            .retain(|(_, b)| b.word(STATE_AT).load(Relaxed) & RETIRED == 0);
    }

    fn get(&self, name: &str) -> Option<Arc<Blob>> {
        self.maps
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, b)| Arc::clone(b))
    }

    fn insert(&mut self, name: String, blob: Arc<Blob>) {
        self.maps.push((name, blob));
        while self.maps.len() > CACHE_SEGMENTS
            || self.maps.iter().map(|(_, b)| b.len()).sum::<usize>() > CACHE_BYTES
        {
            self.maps.remove(0);
        }
    }

    fn remove(&mut self, name: &str) {
        self.maps.retain(|(n, _)| n != name);
    }
}

/// Marks the side segment `name` retired (so that cached mappings of it are dropped and its
/// creator stops reusing it), then unlinks it. Whether the name was removed.
fn retire_by_name(name: &str) -> bool {
    if let Ok(b) = Blob::open(name, BLOB_HEADER) {
        b.word(STATE_AT).fetch_or(RETIRED, AcqRel);
    }
    Blob::unlink(name).is_ok()
}

/// A side segment written but not yet published: freed (pooled) or unlinked (one-shot) on
/// drop unless [`keep`](Self::keep) was called (a put that failed leaves nothing behind).
struct Staged<'a> {
    big: &'a Big,
    /// `Some` for a pooled segment (returned to the pool either way).
    pooled: Option<Pooled>,
    /// The one-shot segment's name.
    name: String,
    generation: u64,
    descriptor: [u8; DESCRIPTOR_LEN],
    kept: bool,
}

impl Staged<'_> {
    fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for Staged<'_> {
    fn drop(&mut self) {
        match self.pooled.take() {
            Some(p) => {
                if !self.kept {
                    release(&p.blob, &p.name, self.generation);
                }
                let mut pool = self.big.pool.lock().unwrap_or_else(|e| e.into_inner());
                if p.blob.word(STATE_AT).load(Relaxed) & RETIRED != 0 {
                    pool.count -= 1;
                    pool.bytes -= p.blob.len();
                } else {
                    pool.idle.push(p);
                }
            }
            None if !self.kept => {
                let _ = Blob::unlink(&self.name);
            }
            None => {}
        }
    }
}

/// The large-message side of one queue or pipe: its name (the side segments' prefix), its
/// maximum message size, the mode of its side segments, this handle's pool of side segments
/// (as a producer) and its cache of mappings (as a consumer).
#[derive(Debug, Clone)]
pub(crate) struct Big {
    /// `None` for an anonymous or file-backed segment: no large messages there.
    name: Option<String>,
    max: usize,
    mode: u32,
    pool: Arc<Mutex<Pool>>,
    cache: Arc<Mutex<Cache>>,
}

impl Big {
    /// Reads the maximum message size from the header of `seg` (0: the slot size) and checks
    /// it. Large messages need a name and room for a descriptor in a slot; without them the
    /// maximum is the slot size.
    pub(crate) fn new(seg: &Segment, message_size: usize) -> Result<Big, OpenError> {
        let stored = seg
            .header()
            .max_message
            .load(crate::sync::atomic::Ordering::Relaxed);
        if stored != 0 && (stored < message_size as u64 || stored > MAX_LARGE_MESSAGE) {
            return Err(OpenError::Corrupt(format!(
                "maximum message size {stored} is below the slot size {message_size} or above {MAX_LARGE_MESSAGE}"
            )));
        }
        let name = match seg.backing() {
            crate::segment::Backing::Named(n) => Some(n.clone()),
            _ => None,
        };
        let mode = name
            .as_ref()
            .and_then(|n| {
                std::fs::metadata(format!("{}/{n}", crate::sys::SHM_DIR))
                    .ok()
                    .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777)
            })
            .unwrap_or(crate::segment::DEFAULT_MODE);
        let max = if stored == 0 || name.is_none() || message_size < DESCRIPTOR_LEN {
            message_size
        } else {
            stored as usize
        };
        Ok(Big {
            name,
            max,
            mode,
            pool: Arc::default(),
            cache: Arc::default(),
        })
    }

    /// No large messages: the maximum is the slot size.
    pub(crate) fn slots_only(message_size: usize) -> Big {
        Big {
            name: None,
            max: message_size,
            mode: crate::segment::DEFAULT_MODE,
            pool: Arc::default(),
            cache: Arc::default(),
        }
    }

    /// The largest message a put accepts.
    pub(crate) fn max(&self) -> usize {
        self.max
    }

    /// Puts `msg`: in a slot if it fits, else in a side segment referenced by a descriptor.
    pub(crate) fn put(
        &self,
        ring: &Ring<'_>,
        wait: Wait,
        how: Waiting<'_>,
        msg: &[u8],
    ) -> Result<(), Fail> {
        if msg.len() <= ring.core().message_size {
            return engine::put(ring, wait, how, |l| l.push(msg).map(|()| (1, ())));
        }
        let (Some(queue), true) = (&self.name, msg.len() <= self.max) else {
            return Err(Fail::TooLarge {
                len: msg.len(),
                max: self.max,
            });
        };
        if wait == Wait::Never && !ring.core().has_free() {
            return Err(Fail::WouldBlock);
        }
        let staged = self.stage(queue, msg, ring, wait)?;
        engine::put(ring, wait, how, |l| {
            l.push_descriptor(&staged.descriptor).map(|()| (1, ()))
        })?;
        staged.keep();
        Ok(())
    }

    /// Checks out a free pooled side segment of at least `need` bytes (the smallest), or makes
    /// room in the pool for a new one of `class` bytes, or says the message goes into a
    /// one-shot segment, or (only if `may_wait`) that a pooled segment in flight may be freed
    /// soon.
    fn check_out(&self, need: usize, class: usize, may_wait: bool) -> Choice {
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        let puts = pool.puts;
        // Forget retired segments (the queue was unlinked meanwhile), retire idle ones.
        let mut i = 0;
        while i < pool.idle.len() {
            let s = pool.idle[i].blob.word(STATE_AT).load(Acquire);
            if s & RETIRED != 0 || (s == FREE && puts - pool.idle[i].used > POOL_IDLE_PUTS) {
                let p = pool.idle.swap_remove(i);
                pool.drop_segment(p);
            } else {
                i += 1;
            }
        }
        let best = (0..pool.idle.len())
            .filter(|&i| {
                let l = pool.idle[i].blob.len();
                l >= need && l <= 2 * class
            })
            .filter(|&i| pool.idle[i].blob.word(STATE_AT).load(Relaxed) == FREE)
            .min_by_key(|&i| pool.idle[i].blob.len());
        if let Some(b) = best {
            let mut p = pool.idle.swap_remove(b);
            p.generation = p.generation % 0xffff_ffff + 1;
            // SYNC POINT: producer — acquires the consumer's Release store of FREE, so the
            // writes to come follow its reads. Only this pool moves a segment out of FREE;
            // the CAS fails only if the segment was retired meanwhile (queue unlinked).
            let claimed = p
                .blob
                .word(STATE_AT)
                .compare_exchange(FREE, p.generation, Acquire, Relaxed)
                .is_ok();
            if claimed {
                pool.puts += 1;
                p.used = puts;
                return Choice::Reuse(p);
            }
            pool.drop_segment(p);
        }
        if class > POOL_BYTES / 2 {
            return Choice::OneShot;
        }
        // Make room: retire free segments, largest first, while the bounds are exceeded.
        while pool.count + 1 > POOL_SEGMENTS || pool.bytes + class > POOL_BYTES {
            let Some(i) = (0..pool.idle.len())
                .filter(|&i| pool.idle[i].blob.word(STATE_AT).load(Acquire) == FREE)
                .max_by_key(|&i| pool.idle[i].blob.len())
            else {
                // Full of messages in flight: one of them is likely being read now, and
                // waiting for it is far cheaper than a new segment's page life cycle.
                let in_flight = !pool.idle.is_empty();
                return if may_wait && in_flight {
                    Choice::Wait
                } else {
                    pool.puts += 1;
                    Choice::OneShot
                };
            };
            let p = pool.idle.swap_remove(i);
            pool.drop_segment(p);
        }
        pool.puts += 1;
        pool.count += 1;
        pool.bytes += class;
        Choice::New
    }

    /// [`check_out`](Self::check_out), waiting (polling, with a short sleep) at most
    /// [`pool_wait`] and never past `wait`'s deadline for a pooled segment in flight to be
    /// freed by its consumer.
    fn check_out_waiting(&self, need: usize, class: usize, wait: Wait) -> Choice {
        let now = Instant::now();
        let until = match wait {
            Wait::Never => now,
            Wait::Until(t) => t.min(now + pool_wait(need)),
            Wait::Forever => now + pool_wait(need),
        };
        let mut spins = 0u32;
        loop {
            let may_wait = Instant::now() < until;
            match self.check_out(need, class, may_wait) {
                Choice::Wait => {
                    spins += 1;
                    if spins < 64 {
                        std::thread::yield_now();
                    } else {
                        std::thread::sleep(Duration::from_micros(20));
                    }
                }
                c => return c,
            }
        }
    }

    /// Creates side segment `name` of `size` bytes, sweeping once on `ENOSPC` (space may be
    /// held by the leftovers of dead processes and by this handle's idle pool).
    fn create(&self, name: &str, size: usize, ring: &Ring<'_>) -> Result<Blob, Fail> {
        match Blob::create(name, size, self.mode) {
            Ok(b) => Ok(b),
            Err(e) if is_no_space(&e) => {
                self.sweep(&[ring]);
                {
                    let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
                    let idle: Vec<Pooled> = pool.idle.drain(..).collect();
                    for p in idle {
                        if p.blob.word(STATE_AT).load(Acquire) == FREE {
                            pool.drop_segment(p);
                        } else {
                            pool.idle.push(p);
                        }
                    }
                }
                Blob::create(name, size, self.mode).map_err(|e| io_fail(name, size, &e))
            }
            Err(e) => Err(io_fail(name, size, &e)),
        }
    }

    /// Writes `msg` into a side segment of `queue`: a free one of this handle's pool, a new
    /// pooled one, or a one-shot one.
    fn stage(
        &self,
        queue: &str,
        msg: &[u8],
        ring: &Ring<'_>,
        wait: Wait,
    ) -> Result<Staged<'_>, Fail> {
        let pid = u64::from(std::process::id());
        let need = BLOB_HEADER + msg.len();
        let class = size_class(need);
        let choice = self.check_out_waiting(need, class, wait);
        let (pooled, name, generation, start, n) = match choice {
            Choice::Reuse(p) => {
                let (name, g, start, n) = (p.name.clone(), p.generation, p.start, p.n);
                (Some(p), name, g, start, n)
            }
            fresh => {
                let fresh = if matches!(fresh, Choice::New) {
                    Ok(())
                } else {
                    Err(())
                };
                let start = process_start_time(pid as u32).unwrap_or(0);
                let n = COUNTER.fetch_add(1, Relaxed);
                let name = Descriptor {
                    len: 0,
                    pid_gen: pid,
                    start,
                    n,
                }
                .name(queue);
                let made = self.create(&name, if fresh.is_ok() { class } else { need }, ring);
                let blob = match made {
                    Ok(b) => b,
                    Err(e) => {
                        if fresh.is_ok() {
                            let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
                            pool.count -= 1;
                            pool.bytes -= class;
                        }
                        return Err(e);
                    }
                };
                // A fresh segment is zero (FREE): claim generation 1, retired at once if it
                // is one-shot.
                let g = 1;
                let state = if fresh.is_ok() { g } else { g | RETIRED };
                blob.word(STATE_AT).store(state, Relaxed);
                match fresh {
                    Ok(_) => (
                        Some(Pooled {
                            name: name.clone(),
                            blob,
                            start,
                            n,
                            generation: g,
                            used: 0,
                        }),
                        name,
                        g,
                        start,
                        n,
                    ),
                    Err(()) => {
                        // The mapping goes now; the name stays until the consumer's take.
                        let d = Descriptor {
                            len: msg.len() as u64,
                            pid_gen: pid | g << 32,
                            start,
                            n,
                        }
                        .encode();
                        write_blob(&blob, &d, msg);
                        return Ok(Staged {
                            big: self,
                            pooled: None,
                            name,
                            generation: g,
                            descriptor: d,
                            kept: false,
                        });
                    }
                }
            }
        };
        let d = Descriptor {
            len: msg.len() as u64,
            pid_gen: pid | generation << 32,
            start,
            n,
        }
        .encode();
        let staged = Staged {
            big: self,
            pooled,
            name,
            generation,
            descriptor: d,
            kept: false,
        };
        if let Some(p) = &staged.pooled {
            write_blob(&p.blob, &d, msg);
        }
        Ok(staged)
    }

    /// Maps (or finds in the cache) and checks the side segment of descriptor bytes `d`.
    fn open(&self, d: &[u8]) -> Result<(Arc<Blob>, String, Descriptor), Fail> {
        let corrupt = |why: String| Fail::Corrupt(format!("large message descriptor: {why}"));
        let Some(queue) = &self.name else {
            return Err(corrupt("a segment without a name holds one".into()));
        };
        let desc = Descriptor::decode(d).ok_or_else(|| corrupt(format!("{} bytes", d.len())))?;
        if desc.len > MAX_LARGE_MESSAGE {
            return Err(corrupt(format!("claims {} bytes", desc.len)));
        }
        let name = desc.name(queue);
        let need = BLOB_HEADER + desc.len as usize;
        let cached = {
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            cache.drop_retired();
            cache.get(&name)
        };
        let blob = match cached {
            Some(b) => b,
            None => {
                let b = Arc::new(
                    Blob::open(&name, need)
                        .map_err(|e| corrupt(format!("side segment {name}: {e}")))?,
                );
                if b.word(STATE_AT).load(Relaxed) & RETIRED == 0 {
                    let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
                    cache.insert(name.clone(), Arc::clone(&b));
                }
                b
            }
        };
        let head = blob.slice(0, 8 + DESCRIPTOR_LEN);
        let magic = u64::from_ne_bytes(head[..8].try_into().unwrap_or([0; 8]));
        let state = blob.word(STATE_AT).load(Acquire);
        if blob.len() < need
            || magic != BLOB_MAGIC
            || head[8..] != *d
            || state & !RETIRED != desc.generation()
        {
            return Err(corrupt(format!("side segment {name} does not match")));
        }
        Ok((blob, name, desc))
    }

    /// After a take of the message of `desc` from `blob`: frees the side segment for reuse by
    /// its creator, or unlinks it if it was retired (one-shot, or its creator's pool let it
    /// go), dropping the cached mapping then.
    fn taken(&self, blob: &Blob, name: &str, desc: &Descriptor) {
        if release(blob, name, desc.generation()) {
            self.cache
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(name);
        }
    }

    /// Runs `read` on the front message in place, under the ring's reservation of the front
    /// (a reader killed inside takes nothing), waiting for one as `wait` says. `read` returns
    /// how many messages to take (0 or 1) and a result; a large message taken has its side
    /// segment freed (or unlinked) afterwards.
    pub(crate) fn read_front<R>(
        &self,
        ring: &Ring<'_>,
        wait: Wait,
        how: Waiting<'_>,
        read: impl FnOnce(&[u8]) -> Result<(u64, R), Fail>,
    ) -> Result<R, Fail> {
        let mut read = Some(read);
        let mut scratch = Vec::new();
        let mut taken_blob = None;
        let r = engine::get_reserved(ring, wait, how, |l, head, _| {
            let f = read
                .take()
                .unwrap_or_else(|| unreachable!("read is taken once"));
            match l.core().reserved_descriptor(head)? {
                None => f(l.reserved_bytes(head, &mut scratch)?),
                Some(d) => {
                    let (blob, name, desc) = self.open(&d)?;
                    let r = f(blob.slice(BLOB_HEADER, desc.len as usize))?;
                    if r.0 > 0 {
                        taken_blob = Some((blob, name, desc));
                    }
                    Ok(r)
                }
            }
        });
        if let Some((blob, name, desc)) = taken_blob
            && r.is_ok()
        {
            self.taken(&blob, &name, &desc);
        }
        r
    }

    /// Takes the front message into a new vector, waiting as `wait` says.
    pub(crate) fn get_vec(
        &self,
        ring: &Ring<'_>,
        wait: Wait,
        how: Waiting<'_>,
    ) -> Result<Vec<u8>, Fail> {
        match engine::get(ring, wait, how, |r| Ok(r.pop_vec()?.map(|m| (1, m)))) {
            Err(Fail::Large) => self.read_front(ring, wait, how, |m| Ok((1, m.to_vec()))),
            r => r,
        }
    }

    /// Takes the front message into `buf` (it stays queued if it does not fit).
    pub(crate) fn get_into(
        &self,
        ring: &Ring<'_>,
        wait: Wait,
        how: Waiting<'_>,
        buf: &mut [u8],
    ) -> Result<usize, Fail> {
        match engine::get(ring, wait, how, |l| engine::pop_into(l, buf)) {
            Err(Fail::Large) => self.read_front(ring, wait, how, |m| {
                if m.len() > buf.len() {
                    return Err(Fail::TooSmall {
                        needed: m.len(),
                        available: buf.len(),
                    });
                }
                buf[..m.len()].copy_from_slice(m);
                Ok((1, m.len()))
            }),
            r => r,
        }
    }

    /// Removes the side segments of this queue whose creator is dead and that no slot of
    /// `rings` names: what a producer killed before its publication, or a consumer killed
    /// between its take and its unlink, left. Liveness is checked before the slots are read,
    /// so a descriptor published by a creator that dies later is always seen.
    pub(crate) fn sweep(&self, rings: &[&Ring<'_>]) {
        let Some(queue) = &self.name else {
            return;
        };
        let dead: Vec<String> = side_segments(queue)
            .into_iter()
            .filter(|(_, pid, start)| !process_alive(*pid, *start))
            .map(|(n, _, _)| n)
            .collect();
        if dead.is_empty() {
            return;
        }
        let named: HashSet<String> = rings
            .iter()
            .flat_map(|r| r.core().descriptors())
            .filter_map(|d| Descriptor::decode(&d).map(|d| d.name(queue)))
            .collect();
        for n in dead.iter().filter(|n| !named.contains(*n)) {
            retire_by_name(n);
        }
    }
}

/// Writes message `msg` and the head (magic, descriptor `d`; not the state word) of `blob`.
fn write_blob(blob: &Blob, d: &[u8; DESCRIPTOR_LEN], msg: &[u8]) {
    let mut head = [0u8; 8 + DESCRIPTOR_LEN];
    head[..8].copy_from_slice(&BLOB_MAGIC.to_ne_bytes());
    head[8..].copy_from_slice(d);
    blob.write_at(BLOB_HEADER, msg);
    blob.write_at(0, &head);
}

fn is_no_space(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(rustix::io::Errno::NOSPC.raw_os_error())
}

fn io_fail(name: &str, size: usize, e: &std::io::Error) -> Fail {
    if is_no_space(e) {
        Fail::NoSpace {
            needed: size,
            reason: format!("side segment {name}: {e}"),
        }
    } else {
        Fail::Corrupt(format!("cannot make side segment {name}: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_round_trip_and_names_parse_back() {
        let d = Descriptor {
            len: 1 << 20,
            pid_gen: 0x1234 | 5 << 32,
            start: 0xabcdef,
            n: 7,
        };
        assert_eq!(Descriptor::decode(&d.encode()), Some(d));
        assert_eq!(Descriptor::decode(&[0; 8]), None);
        assert_eq!((d.pid(), d.generation()), (0x1234, 5));
        let name = d.name("q.x");
        assert_eq!(name, "q.x.big.1234.abcdef.7");
        assert_eq!(side_segment_of(&name), Some(("q.x", 0x1234, 0xabcdef)));
        assert_eq!(side_segment_of("q.big.1.2"), None);
        assert_eq!(side_segment_of("q.big.1.2.3.4"), None);
        assert_eq!(side_segment_of(".big.1.2.3"), None);
    }
}

#[cfg(test)]
mod no_space_tests {
    use crate::engine::Fail;

    #[test]
    fn enospc_making_a_side_segment_is_no_space_and_hands_the_message_back() {
        let e = std::io::Error::from_raw_os_error(rustix::io::Errno::NOSPC.raw_os_error());
        let f = super::io_fail("q.big.1.2.3", 1 << 20, &e);
        let Fail::NoSpace { needed, reason } = f else {
            panic!("{f:?}");
        };
        assert_eq!(needed, 1 << 20);
        let err = crate::PutError::NoSpace {
            msg: vec![7u8; 3],
            needed,
            reason,
        };
        assert!(
            err.to_string()
                .starts_with("no room for a side segment of 1048576 bytes")
        );
        let back: crate::TryPutError<Vec<u8>> = err.into();
        assert_eq!(back.into_inner(), vec![7u8; 3]);
        // Any other error is still Corrupt.
        let other = std::io::Error::from_raw_os_error(rustix::io::Errno::ACCESS.raw_os_error());
        assert!(matches!(
            super::io_fail("q.big.1.2.3", 10, &other),
            Fail::Corrupt(_)
        ));
    }
}

#[cfg(test)]
mod queue_tests {
    use crate::{GetError, Options, Pipe, Queue, TryGetError, TryPutError};

    fn leftovers(name: &str) -> usize {
        super::side_segments(name).len()
    }

    #[test]
    fn large_messages_round_trip_on_every_get_path_and_leave_nothing() {
        let name = format!("shmq-test-large-unit-{}", std::process::id());
        let _ = Queue::unlink(&name);
        let opts = Options {
            capacity: 8,
            message_size: 64,
            max_message_size: 1 << 22,
            ..Default::default()
        };
        let q = Queue::create(&name, &opts).unwrap();
        let big = |n: usize, seed: u8| {
            (0..n)
                .map(|i| (i as u8).wrapping_mul(seed))
                .collect::<Vec<u8>>()
        };
        q.put(big(100_000, 3)).unwrap();
        q.put(b"small").unwrap();
        q.put(big(1 << 22, 5)).unwrap();
        assert_eq!(leftovers(&name), 2);
        assert!(matches!(
            q.put(vec![0u8; (1 << 22) + 1]),
            Err(crate::PutError::TooLarge { .. })
        ));
        // A buffer too small keeps the message first.
        let mut small = [0u8; 10];
        assert_eq!(
            q.get_into(&mut small),
            Err(GetError::BufferTooSmall {
                needed: 100_000,
                available: 10
            })
        );
        assert_eq!(q.len(), 3);
        assert_eq!(q.get().unwrap(), big(100_000, 3));
        assert_eq!(q.get_many(10).unwrap(), vec![b"small".to_vec()]);
        assert!(q.get_with(|m| m == big(1 << 22, 5)).unwrap());
        assert_eq!(q.try_get(), Err(TryGetError::Empty));
        assert_eq!(leftovers(&name), 2, "both side segments stay pooled, free");
        // The same sizes again reuse them: no new side segment.
        q.put(big(100_000, 4)).unwrap();
        q.put(big(1 << 22, 6)).unwrap();
        assert_eq!(leftovers(&name), 2);
        assert_eq!(q.get().unwrap(), big(100_000, 4));
        assert_eq!(q.get().unwrap(), big(1 << 22, 6));
        // try_put of a large message into a full queue hands it back and leaves nothing.
        for _ in 0..8 {
            q.put(b"x").unwrap();
        }
        match q.try_put(big(5000, 1)) {
            Err(TryPutError::Full(m)) => assert_eq!(m, big(5000, 1)),
            other => panic!("{other:?}"),
        }
        assert_eq!(leftovers(&name), 2, "nothing but the pool");
        for _ in 0..8 {
            q.get().unwrap();
        }
        q.put_many(&[big(70, 1), b"a".to_vec(), big(9000, 2), b"b".to_vec()])
            .unwrap();
        q.put(big(3000, 7)).unwrap();
        let mut buf = vec![0u8; 10_000];
        assert_eq!(q.get_into(&mut buf).unwrap(), 70);
        assert_eq!(q.get().unwrap(), b"a");
        let n = q.get_into(&mut buf).unwrap();
        assert_eq!(&buf[..n], &big(9000, 2)[..]);
        assert_eq!(q.get().unwrap(), b"b");
        // Dropping the handle retires its pool: the free side segments go at once, the one
        // still queued stays until its take or the queue's unlink.
        drop(q);
        assert_eq!(leftovers(&name), 1);
        let q = Queue::open(&name).unwrap();
        assert_eq!(q.get().unwrap(), big(3000, 7));
        assert_eq!(
            leftovers(&name),
            0,
            "a retired side segment goes with its take"
        );
        q.put(big(3000, 8)).unwrap();
        assert_eq!(leftovers(&name), 1);
        Queue::unlink(&name).unwrap();
        assert_eq!(leftovers(&name), 0, "unlink removes the side segments");
    }

    #[test]
    fn pipes_carry_large_messages_both_ways() {
        let name = format!("shmq-test-large-pipe-{}", std::process::id());
        let _ = Pipe::unlink(&name);
        let (a, b) = Pipe::create(
            &name,
            &Options {
                capacity: 2,
                message_size: 64,
                ..Default::default()
            },
        )
        .unwrap();
        let m = vec![9u8; 1 << 20];
        a.send(&m).unwrap();
        b.send(&m[..5000]).unwrap();
        assert_eq!(b.recv().unwrap(), m);
        let mut buf = vec![0u8; 6000];
        assert_eq!(a.recv_into(&mut buf).unwrap(), 5000);
        Pipe::unlink(&name).unwrap();
        assert_eq!(leftovers(&name), 0);
    }

    #[test]
    fn anonymous_queues_keep_the_slot_size_as_their_maximum() {
        let q = Queue::anonymous(&Options {
            capacity: 2,
            message_size: 64,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(q.max_message_size(), 64);
        assert!(matches!(
            q.put(vec![0u8; 65]),
            Err(crate::PutError::TooLarge { .. })
        ));
    }
}
