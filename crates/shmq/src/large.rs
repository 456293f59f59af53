//! Messages larger than a slot: each travels in a side segment, referenced from a slot by a
//! small descriptor (bit 63 of the slot's length word, `lockfree::LARGE`).
//!
//! A producer writes the message and a 64-byte head into a side segment
//! `<queue>.big.<pid>.<start>.<n>` (hexadecimal: its pid, its start time and a per-process
//! counter), one of its pool reused or a new one, and only then puts the descriptor (length,
//! pid and generation, start, n) through the ordinary put path: its publication is the commit
//! (`put.rs`). A consumer reads a descriptor through the reserved front (the zero-copy get
//! machinery: ring lock + `RESERVED` bit, repaired after a reader's death), so it copies (or
//! lends) the whole message before it takes the slot, and after the take frees the side segment
//! for its creator's reuse, or unlinks a one-shot or retired one; a peeker copies the message
//! without a reservation and validates the copy against the segment's state word.
//!
//! This file holds the descriptor, the pool and cache of mapped side segments, the get side
//! and the sweep; `put.rs` the put side and `side.rs` where a queue's side segments live
//! (named, file-backed, anonymous). The mapping of one side segment and the streaming copy of
//! very large messages are unsafe code, so they live with the other mappings in `segment`
//! (`segment::Blob`, `segment/stream.rs`).
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

use crate::engine::{self, Fail, Wait, Waiting};
use crate::error::OpenError;
use crate::ring::Ring;
use std::path::{Path, PathBuf};

use crate::liveness::process_alive;
use crate::segment::{Backing, Blob, Segment};
use side::Place;

mod put;
mod side;

pub use crate::limits::{DEFAULT_MAX_MESSAGE, MAX_LARGE_MESSAGE};

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
/// assert_eq!(shmq::substrate::large::side_segment_of("jobs.big.1f.2a.0"), Some(("jobs", 0x1f, 0x2a)));
/// assert_eq!(shmq::substrate::large::side_segment_of("jobs"), None);
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

/// The names of the side segments of `place` that exist now.
fn side_segments(place: &Place) -> Vec<(String, u32, u64)> {
    let Ok(dir) = std::fs::read_dir(place.dir()) else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|n| {
            let (q, pid, start) = side_segment_of(&n)?;
            (q == place.prefix()).then(|| (n.clone(), pid, start))
        })
        .collect()
}

/// Where the side segments of the queue (or pipe) in `seg` live, and their mode (that of the
/// segment): beside a named segment in `/dev/shm`, beside a file-backed one in its directory,
/// under a hidden name derived from an anonymous one's instance id (`side.rs`). `None`:
/// no large messages (an anonymous segment whose anchor cannot be made).
fn side_location(seg: &Segment) -> Option<(Place, u32)> {
    let mode_of = |path: &Path| {
        std::fs::metadata(path)
            .ok()
            .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777)
            .unwrap_or(crate::segment::DEFAULT_MODE)
    };
    match seg.backing() {
        Backing::Named(n) => Some((
            Place::named(n),
            mode_of(&Path::new(crate::sys::SHM_DIR).join(n)),
        )),
        Backing::File(p) => Some((Place::file(p)?, mode_of(p))),
        Backing::Anonymous => Some((
            Place::anonymous(seg.header().instance_id()).ok()?,
            crate::segment::DEFAULT_MODE,
        )),
    }
}

/// Removes every side segment of `queue` (as `Queue::unlink` and `Pipe::unlink` do after the
/// queue's own name): afterwards no byte of the queue's large messages stays in `/dev/shm` once
/// the last mapping is gone. Returns how many it removed.
///
/// # Examples
///
/// ```
/// assert_eq!(shmq::substrate::large::remove_side_segments("shmq-doc-no-such-queue"), 0);
/// ```
pub fn remove_side_segments(queue: &str) -> usize {
    remove_all(&Place::named(queue))
}

/// Removes every side file of the file-backed queue (or pipe) at `path` (`<path>.big.*`), as
/// [`remove_side_segments`] does for a named one. Returns how many it removed.
///
/// # Examples
///
/// ```
/// assert_eq!(shmq::substrate::large::remove_side_files(std::path::Path::new("/tmp/shmq-doc-no-such-file")), 0);
/// ```
pub fn remove_side_files(path: &Path) -> usize {
    Place::file(path).map_or(0, |p| remove_all(&p))
}

/// The anonymous queues (`Queue::anonymous`, `Pipe::anonymous`) whose every holder died
/// without dropping them: their hidden anchors in `/dev/shm` (`.shmq-anon-<instance>`), each
/// with the bytes its side segments take. Removes nothing; [`reap_anonymous_orphan`] does.
/// The next anonymous queue made on the machine reaps them too.
///
/// # Examples
///
/// ```
/// // A queue this process holds is not an orphan.
/// let q = shmq::Queue::anonymous(&shmq::Options { capacity: 2, message_size: 64, ..Default::default() })?;
/// q.put(&[7u8; 1000])?; // a large message: a side segment beside a hidden anchor
/// let mine = format!("{:016x}", q.instance_id());
/// assert!(shmq::substrate::large::anonymous_orphans().iter().all(|(anchor, _)| !anchor.ends_with(&mine)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn anonymous_orphans() -> Vec<(String, u64)> {
    side::orphans()
}

/// Removes the side segments and then the anchor of the orphaned anonymous queue `anchor` (a
/// name [`anonymous_orphans`] listed), if no process holds it now (a holder keeps a shared
/// `flock` on the anchor). Returns whether it did; a name that is not an anchor is refused
/// (`false`).
///
/// # Examples
///
/// ```
/// for (anchor, bytes) in shmq::substrate::large::anonymous_orphans() {
///     if shmq::substrate::large::reap_anonymous_orphan(&anchor) {
///         eprintln!("removed the orphaned anonymous queue {anchor} ({bytes} bytes)");
///     }
/// }
/// assert!(!shmq::substrate::large::reap_anonymous_orphan("../etc"));
/// ```
pub fn reap_anonymous_orphan(anchor: &str) -> bool {
    side::reap_orphan(anchor)
}

fn remove_all(place: &Place) -> usize {
    side_segments(place)
        .into_iter()
        .filter(|(n, _, _)| retire_at(&place.path(n)))
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
/// meanwhile, removes its file `path` instead and returns `true`.
fn release(blob: &Blob, path: &Path, generation: u64) -> bool {
    let state = blob.word(STATE_AT);
    loop {
        let s = state.load(Acquire);
        if s & !RETIRED != generation {
            // Not ours to free (a corrupt or foreign head): leave it to the sweep.
            return false;
        }
        if s & RETIRED != 0 {
            state.store(RETIRED, Release);
            let _ = std::fs::remove_file(path);
            return true;
        }
        // SYNC POINT: consumer — the reads of the message happen before this Release; the
        // creator's Acquire CAS from FREE orders its next writes after them.
        if state.compare_exchange(s, FREE, Release, Relaxed).is_ok() {
            return false;
        }
    }
}

/// Marks side segment `blob` retired: removes its file `path` now if it is free, else leaves
/// that to whoever frees it ([`release`]).
fn retire(blob: &Blob, path: &Path) {
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
                let _ = std::fs::remove_file(path);
            }
            return;
        }
    }
}

/// One pooled side segment of a producer.
#[derive(Debug)]
struct Pooled {
    path: PathBuf,
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
    /// The process whose segments these are (0: none yet). A forked child starts a pool of
    /// its own: its parent's segments are named by the parent's pid, and stay the parent's.
    pid: u32,
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
        retire(&p.blob, &p.path);
    }

    /// Makes this the pool of the calling process: a forked child forgets (unmaps, without
    /// retiring) what it inherited from its parent.
    fn own(&mut self) {
        let me = std::process::id();
        if self.pid != me {
            if self.pid != 0 {
                self.idle.clear();
                self.count = 0;
                self.bytes = 0;
            }
            self.pid = me;
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        if self.pid != std::process::id() {
            return;
        }
        for p in self.idle.drain(..) {
            retire(&p.blob, &p.path);
        }
    }
}

/// A consumer's cached mappings of pooled side segments, oldest first (bounded by
/// [`CACHE_SEGMENTS`] and [`CACHE_BYTES`]).
#[derive(Debug, Default)]
struct Cache {
    maps: Vec<(PathBuf, Arc<Blob>)>,
}

impl Cache {
    /// Drops the mappings of retired side segments (their tmpfs pages live while mapped).
    fn drop_retired(&mut self) {
        self.maps
            .retain(|(_, b)| b.word(STATE_AT).load(Relaxed) & RETIRED == 0);
    }

    fn get(&self, path: &Path) -> Option<Arc<Blob>> {
        self.maps
            .iter()
            .find(|(n, _)| n == path)
            .map(|(_, b)| Arc::clone(b))
    }

    fn insert(&mut self, path: PathBuf, blob: Arc<Blob>) {
        self.maps.push((path, blob));
        while self.maps.len() > CACHE_SEGMENTS
            || self.maps.iter().map(|(_, b)| b.len()).sum::<usize>() > CACHE_BYTES
        {
            self.maps.remove(0);
        }
    }

    fn remove(&mut self, path: &Path) {
        self.maps.retain(|(n, _)| n != path);
    }
}

/// Marks the side segment at `path` retired (so that cached mappings of it are dropped and its
/// creator stops reusing it), then removes it. Whether the file was removed.
fn retire_at(path: &Path) -> bool {
    if let Ok(b) = Blob::open_at(path, BLOB_HEADER) {
        b.word(STATE_AT).fetch_or(RETIRED, AcqRel);
    }
    std::fs::remove_file(path).is_ok()
}

/// The large-message side of one queue or pipe: where its side segments live, its
/// maximum message size, the mode of its side segments, this handle's pool of side segments
/// (as a producer) and its cache of mappings (as a consumer).
#[derive(Debug, Clone)]
pub(crate) struct Big {
    /// Where the side segments live; `None`: no large messages.
    place: Option<Place>,
    max: usize,
    mode: u32,
    pool: Arc<Mutex<Pool>>,
    cache: Arc<Mutex<Cache>>,
}

impl Big {
    /// Reads the maximum message size from the header of `seg` (0: the slot size) and checks
    /// it. Large messages need a place for side segments (`side_location`) and room for a
    /// descriptor in a slot; without them the maximum is the slot size.
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
        let located = if stored <= message_size as u64 || message_size < DESCRIPTOR_LEN {
            None
        } else {
            side_location(seg)
        };
        let (place, mode) =
            located.map_or((None, crate::segment::DEFAULT_MODE), |(p, m)| (Some(p), m));
        let max = if place.is_none() {
            message_size
        } else {
            stored as usize
        };
        Ok(Big {
            place,
            max,
            mode,
            pool: Arc::default(),
            cache: Arc::default(),
        })
    }

    /// No large messages: the maximum is the slot size.
    pub(crate) fn slots_only(message_size: usize) -> Big {
        Big {
            place: None,
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

    /// Maps (or finds in the cache) and checks the side segment of descriptor bytes `d`.
    fn open(&self, d: &[u8]) -> Result<(Arc<Blob>, PathBuf, Descriptor), Fail> {
        let corrupt = |why: String| Fail::Corrupt(format!("large message descriptor: {why}"));
        let Some(place) = &self.place else {
            return Err(corrupt("a queue without large messages holds one".into()));
        };
        let desc = Descriptor::decode(d).ok_or_else(|| corrupt(format!("{} bytes", d.len())))?;
        if desc.len > MAX_LARGE_MESSAGE {
            return Err(corrupt(format!("claims {} bytes", desc.len)));
        }
        let name = desc.name(place.prefix());
        let path = place.path(&name);
        let need = BLOB_HEADER + desc.len as usize;
        let cached = {
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            cache.drop_retired();
            cache.get(&path)
        };
        let blob = match cached {
            Some(b) => b,
            None => {
                let b = Arc::new(
                    Blob::open_at(&path, need)
                        .map_err(|e| corrupt(format!("side segment {name}: {e}")))?,
                );
                if b.word(STATE_AT).load(Relaxed) & RETIRED == 0 {
                    let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
                    cache.insert(path.clone(), Arc::clone(&b));
                }
                b
            }
        };
        // Copied, not borrowed: a peeker holds no reservation, and a reused segment's head may
        // be rewritten under it (its copy is validated after, `peek`).
        let mut head = [0u8; 8 + DESCRIPTOR_LEN];
        if blob.len() >= head.len() {
            blob.read_at(0, &mut head);
        }
        let magic = u64::from_ne_bytes(head[..8].try_into().unwrap_or([0; 8]));
        let state = blob.word(STATE_AT).load(Acquire);
        if blob.len() < need
            || magic != BLOB_MAGIC
            || head[8..] != *d
            || state & !RETIRED != desc.generation()
        {
            return Err(corrupt(format!("side segment {name} does not match")));
        }
        Ok((blob, path, desc))
    }

    /// After a take of the message of `desc` from `blob`: frees the side segment for reuse by
    /// its creator, or unlinks it if it was retired (one-shot, or its creator's pool let it
    /// go), dropping the cached mapping then.
    fn taken(&self, blob: &Blob, path: &Path, desc: &Descriptor) {
        if release(blob, path, desc.generation()) {
            self.cache
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(path);
        }
    }

    /// Copies the large message of descriptor `d` (peeked at some position, validated there)
    /// into `dst`, without taking it and without any lock: maps (or finds in the cache) its
    /// side segment, checks it ([`open`](Self::open): magic, descriptor, state word = the
    /// descriptor's generation), copies the message, then checks the state word again after an
    /// acquire fence (a seqlock with the state word as the sequence).
    ///
    /// Why the second check suffices: the creator writes a pooled segment again only after its
    /// CAS `FREE` → next generation (then a release fence, then the writes), and the segment
    /// is `FREE` only after the consumer that took the message released it. If the copy read
    /// any byte of a rewrite, the fence makes the load after it see that CAS or a later state
    /// (never the generation again, short of 2^32 − 1 reuses in between). A one-shot segment is
    /// never rewritten: it is unlinked by its taker (a mapping made before stays readable).
    ///
    /// # Errors
    ///
    /// `Fail::Corrupt` if the segment cannot be opened, does not match, or changed during the
    /// copy. The caller tells a take from damage: everything here is ordered before its check
    /// of `head` (`Core::passed`). The message was taken if
    /// `head` passed its position; if not, no consumer took it, so none released its segment,
    /// so its creator has not rewritten it and nobody unlinked it (the sweep spares segments
    /// named by a slot of `[head, tail)`), and the state word held the generation throughout:
    /// nothing is in flux that a retry could wait out, and the failure is damage (or an unlink
    /// of the queue, which removes queued side segments too; a get then fails the same way).
    pub(crate) fn peek(&self, d: &[u8], dst: &mut Vec<u8>) -> Result<(), Fail> {
        let (blob, path, desc) = self.open(d)?;
        // Resized, not cleared first: the copy overwrites every byte of a reused buffer.
        dst.resize(desc.len as usize, 0);
        blob.read_at(BLOB_HEADER, dst);
        // SYNC POINT: reader of the seqlock — pairs with the creator's release fence after its
        // claim of the segment (`check_out`).
        std::sync::atomic::fence(Acquire);
        let state = blob.word(STATE_AT).load(Relaxed);
        if state & !RETIRED != desc.generation() {
            return Err(Fail::Corrupt(format!(
                "side segment {} changed while it was peeked (state {state:#x}, generation {})",
                path.display(),
                desc.generation()
            )));
        }
        Ok(())
    }

    /// After a commit took messages: releases the side segments of the large ones among them
    /// (their descriptors `taken`, read before the commit's CAS), each as a get does after its
    /// take ([`taken`](Self::taken)): freed for its creator's reuse, or unlinked if retired
    /// (one-shot), with the cached mapping dropped. A segment that cannot be opened or does not
    /// match (the queue was unlinked meanwhile) is left alone: whatever is left of it is the
    /// sweep's.
    pub(crate) fn release_taken(&self, taken: &[Vec<u8>]) {
        for d in taken {
            if let Ok((blob, path, desc)) = self.open(d) {
                self.taken(&blob, &path, &desc);
            }
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
                    let (blob, path, desc) = self.open(&d)?;
                    let r = f(blob.slice(BLOB_HEADER, desc.len as usize))?;
                    if r.0 > 0 {
                        taken_blob = Some((blob, path, desc));
                    }
                    Ok(r)
                }
            }
        });
        if let Some((blob, path, desc)) = taken_blob
            && r.is_ok()
        {
            self.taken(&blob, &path, &desc);
        }
        r
    }

    /// Removes the side segments of this queue whose creator is dead and that no slot of
    /// `rings` names: what a producer killed before its publication, or a consumer killed
    /// between its take and its unlink, left. Liveness is checked before the slots are read,
    /// so a descriptor published by a creator that dies later is always seen.
    pub(crate) fn sweep(&self, rings: &[&Ring<'_>]) {
        let Some(place) = &self.place else {
            return;
        };
        let dead: Vec<String> = side_segments(place)
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
            .filter_map(|d| Descriptor::decode(&d).map(|d| d.name(place.prefix())))
            .collect();
        for n in dead.iter().filter(|n| !named.contains(*n)) {
            retire_at(&place.path(n));
        }
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
mod queue_tests {
    use crate::{GetError, Options, Pipe, Queue, TryGetError, TryPutError};

    /// The side segments of queue `name`, sorted.
    fn side_names(name: &str) -> Vec<String> {
        let mut v: Vec<String> = super::side_segments(&super::side::Place::named(name))
            .into_iter()
            .map(|(n, ..)| n)
            .collect();
        v.sort();
        v
    }

    fn leftovers(name: &str) -> usize {
        side_names(name).len()
    }

    /// A new queue `shmq-test-large-<tag>-<pid>` of 8 slots of 64 bytes and messages up to
    /// `max` bytes, and its name.
    fn fresh(tag: &str, max: usize) -> (String, Queue) {
        let name = format!("shmq-test-large-{tag}-{}", std::process::id());
        let _ = Queue::unlink(&name);
        let opts = Options {
            capacity: 8,
            message_size: 64,
            max_message_size: max,
            ..Default::default()
        };
        let q = Queue::create(&name, &opts).unwrap();
        (name, q)
    }

    #[test]
    fn pooled_segments_made_late_are_not_retired_as_idle_and_all_stay_in_turn() {
        let (name, q) = fresh("idle", 1 << 20);
        let files = || side_names(&name);
        let m = vec![9u8; 100_000];
        // Long after the pool's first put, one segment at a time...
        for _ in 0..2 * super::POOL_IDLE_PUTS {
            q.put(&m).unwrap();
            assert_eq!(q.get().unwrap(), m);
        }
        assert_eq!(files().len(), 1);
        // ...then a burst that needs a second one, made now.
        q.put(&m).unwrap();
        q.put(&m).unwrap();
        q.get().unwrap();
        q.get().unwrap();
        let two = files();
        assert_eq!(two.len(), 2);
        // A steady stream that needs only one at a time takes both in turn: neither is idle,
        // and a later burst of two finds them both (nothing retired, nothing made).
        for _ in 0..2 * super::POOL_IDLE_PUTS {
            q.put(&m).unwrap();
            assert_eq!(q.get().unwrap(), m);
            assert_eq!(files(), two, "a pooled segment was retired and remade");
        }
        q.put(&m).unwrap();
        q.put(&m).unwrap();
        assert_eq!(files(), two);
        drop(q);
        Queue::unlink(&name).unwrap();
        assert!(files().is_empty());
    }

    #[test]
    fn large_messages_round_trip_on_every_get_path_and_leave_nothing() {
        let (name, q) = fresh("unit", 1 << 22);
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
    fn a_batch_with_a_message_over_the_maximum_puts_nothing_even_after_large_ones() {
        let max = 1 << 16;
        let (name, q) = fresh("batch-over", max);
        assert_eq!(q.max_message_size(), max);
        let large = vec![5u8; 1000];
        let over = vec![6u8; max + 1];
        let check = |r: Result<(), crate::PutError<usize>>, what: &str| match r {
            Err(crate::PutError::TooLarge { msg, len, max: m }) => {
                assert_eq!((msg, len, m), (0, max + 1, max), "{what}")
            }
            other => panic!("{what}: {other:?}"),
        };
        check(
            q.put_many(&[b"small".to_vec(), large.clone(), over.clone()]),
            "small, large, over",
        );
        check(q.put_many(&[large.clone(), over.clone()]), "large, over");
        check(
            q.try_put_many(&[large.clone(), b"small".to_vec(), over.clone()])
                .map(drop)
                .map_err(|e| match e {
                    TryPutError::TooLarge { msg, len, max } => {
                        crate::PutError::TooLarge { msg, len, max }
                    }
                    other => panic!("try_put_many: {other:?}"),
                }),
            "try: large, small, over",
        );
        assert_eq!(q.len(), 0, "nothing was put");
        assert_eq!(leftovers(&name), 0, "no side segment was made");
        // A batch within the maximum goes whole, in order, its large messages in side segments.
        q.put_many(&[b"small".to_vec(), large.clone(), vec![7u8; max]])
            .unwrap();
        assert_eq!(q.get().unwrap(), b"small");
        assert_eq!(q.get().unwrap(), large);
        assert_eq!(q.get().unwrap(), vec![7u8; max]);
        drop(q);
        Queue::unlink(&name).unwrap();
        assert_eq!(leftovers(&name), 0);
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
    fn anonymous_queues_carry_large_messages_in_hidden_side_segments_removed_on_drop() {
        let q = Queue::anonymous(&Options {
            capacity: 2,
            message_size: 64,
            max_message_size: 1 << 20,
            ..Default::default()
        })
        .unwrap();
        let prefix = format!(".shmq-anon-{:016x}", q.segment().instance_id());
        assert_eq!(q.max_message_size(), 1 << 20);
        q.put(vec![3u8; 5000]).unwrap();
        q.put_with_len(70_000, |b| b.fill(4)).unwrap();
        assert_eq!(leftovers(&prefix), 2);
        assert_eq!(q.get().unwrap(), vec![3u8; 5000]);
        assert_eq!(leftovers(&prefix), 2, "the taken one stays pooled, free");
        let anchor = std::path::Path::new(crate::sys::SHM_DIR).join(&prefix);
        assert!(anchor.exists());
        drop(q);
        assert_eq!(
            leftovers(&prefix),
            0,
            "the last drop removes what is queued and what is pooled"
        );
        assert!(!anchor.exists());
        // Slots too small for a descriptor, or a maximum of the slot size: no anchor at all.
        let q = Queue::anonymous(&Options {
            capacity: 2,
            message_size: 64,
            max_message_size: 64,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(q.max_message_size(), 64);
        let anchor = format!(".shmq-anon-{:016x}", q.segment().instance_id());
        assert!(
            !std::path::Path::new(crate::sys::SHM_DIR)
                .join(anchor)
                .exists()
        );
        assert!(matches!(
            q.put(vec![0u8; 65]),
            Err(crate::PutError::TooLarge { .. })
        ));
    }

    #[test]
    fn put_with_len_writes_messages_of_any_size_in_place_on_every_wait() {
        let name = format!("shmq-test-large-with-len-{}", std::process::id());
        let _ = Queue::unlink(&name);
        let q = Queue::create(
            &name,
            &Options {
                capacity: 2,
                message_size: 64,
                max_message_size: 1 << 20,
                ..Default::default()
            },
        )
        .unwrap();
        let fill = |seed: u8| {
            move |b: &mut [u8]| {
                assert!(b.iter().all(|&x| x == 0), "a zeroed buffer");
                for (i, x) in b.iter_mut().enumerate() {
                    *x = (i as u8).wrapping_mul(seed);
                }
            }
        };
        let want = |n: usize, seed: u8| {
            (0..n)
                .map(|i| (i as u8).wrapping_mul(seed))
                .collect::<Vec<u8>>()
        };
        q.put_with_len(64, fill(3)).unwrap();
        q.try_put_with_len(1 << 20, fill(5)).unwrap();
        assert_eq!(leftovers(&name), 1);
        // Full: try_ and timeout hand nothing to `fill` and publish nothing; what a timed-out
        // put made stays in the pool (bounded), nothing else.
        assert!(matches!(
            q.try_put_with_len(100_000, |_| panic!("not called")),
            Err(TryPutError::Full(()))
        ));
        assert!(matches!(
            q.put_with_len_timeout(100_000, std::time::Duration::from_millis(5), |_| {}),
            Err(crate::PutTimeoutError::Timeout(()))
        ));
        assert!(leftovers(&name) <= super::POOL_SEGMENTS);
        assert!(matches!(
            q.put_with_len((1 << 20) + 1, |_| panic!("not called")),
            Err(crate::PutError::TooLarge { len, max, .. }) if len == (1 << 20) + 1 && max == 1 << 20
        ));
        assert_eq!(q.get().unwrap(), want(64, 3));
        assert_eq!(q.get().unwrap(), want(1 << 20, 5));
        // A fill that panics puts nothing; its segment goes back to the pool.
        let pooled = leftovers(&name);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            q.put_with_len(9000, |_| panic!("fill fails"))
        }));
        assert!(r.is_err());
        assert_eq!(q.len(), 0);
        assert!(leftovers(&name) <= pooled.max(1));
        q.put_with_len_deadline(0, std::time::Instant::now(), |b| assert!(b.is_empty()))
            .unwrap();
        // Reused segments (they held the messages above) are lent zeroed.
        q.put_with_len(9000, fill(7)).unwrap();
        assert_eq!(q.get().unwrap(), b"");
        assert_eq!(q.get().unwrap(), want(9000, 7));
        q.put_with_len(70_000, fill(9)).unwrap();
        assert_eq!(q.get().unwrap(), want(70_000, 9));
        Queue::unlink(&name).unwrap();
        assert_eq!(leftovers(&name), 0);
    }
}
