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
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::engine::{self, Fail, Wait, Waiting};
use crate::error::OpenError;
use crate::ring::Ring;
use crate::segment::{Backing, Blob, Segment, process_alive, process_start_time};
use crate::side::Place;

/// The largest `max_message_size` accepted (64 GiB, the largest segment).
pub const MAX_LARGE_MESSAGE: u64 = 1 << 36;

/// The default maximum message size of a new queue or pipe (1 GiB).
pub const DEFAULT_MAX_MESSAGE: usize = 1 << 30;

/// Bytes of a descriptor in a slot: length, pid, start time, counter (u64 each, native order).
pub const DESCRIPTOR_LEN: usize = 32;

/// Bytes before the message in a side segment: magic, then the descriptor's four words.
const BLOB_HEADER: usize = 64;

/// `b"SHMQbig1"` as a little-endian u64: the first word of a side segment.
const BLOB_MAGIC: u64 = u64::from_le_bytes(*b"SHMQbig1");

/// What a side segment's name puts between the queue's name and the numbers.
const INFIX: &str = ".big.";

/// Side segments made by this process so far (the `n` of their names).
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A large message's descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Descriptor {
    len: u64,
    pid: u64,
    start: u64,
    n: u64,
}

impl Descriptor {
    fn encode(&self) -> [u8; DESCRIPTOR_LEN] {
        let mut b = [0; DESCRIPTOR_LEN];
        for (i, w) in [self.len, self.pid, self.start, self.n].iter().enumerate() {
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
            pid: w(1),
            start: w(2),
            n: w(3),
        })
    }

    fn name(&self, queue: &str) -> String {
        format!("{queue}{INFIX}{:x}.{:x}.{:x}", self.pid, self.start, self.n)
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
/// under a hidden name derived from an anonymous one's instance id (`crate::side`). `None`:
/// no large messages (an anonymous segment whose anchor cannot be made).
fn side_location(seg: &Segment) -> Option<(Place, u32)> {
    let mode_of = |path: &std::path::Path| {
        std::fs::metadata(path)
            .ok()
            .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777)
            .unwrap_or(crate::segment::DEFAULT_MODE)
    };
    match seg.backing() {
        Backing::Named(n) => Some((
            Place::named(n),
            mode_of(&std::path::Path::new(crate::sys::SHM_DIR).join(n)),
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
/// assert_eq!(shmq::large::remove_side_segments("shmq-doc-no-such-queue"), 0);
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
/// assert_eq!(shmq::large::remove_side_files(std::path::Path::new("/tmp/shmq-doc-no-such-file")), 0);
/// ```
pub fn remove_side_files(path: &std::path::Path) -> usize {
    Place::file(path).map_or(0, |p| remove_all(&p))
}

fn remove_all(place: &Place) -> usize {
    side_segments(place)
        .into_iter()
        .filter(|(n, _, _)| std::fs::remove_file(place.path(n)).is_ok())
        .count()
}

/// A side segment written but not yet published: unlinked on drop unless [`keep`](Self::keep)
/// was called (a put that failed leaves nothing behind).
struct Staged {
    path: std::path::PathBuf,
    descriptor: [u8; DESCRIPTOR_LEN],
    kept: bool,
}

impl Staged {
    fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.kept {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The large-message side of one queue or pipe: its name (the side segments' prefix), its
/// maximum message size and the mode of its side segments.
#[derive(Debug, Clone)]
pub(crate) struct Big {
    /// Where the side segments live; `None`: no large messages.
    place: Option<Place>,
    max: usize,
    mode: u32,
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
        Ok(Big { place, max, mode })
    }

    /// No large messages: the maximum is the slot size.
    pub(crate) fn slots_only(message_size: usize) -> Big {
        Big {
            place: None,
            max: message_size,
            mode: crate::segment::DEFAULT_MODE,
        }
    }

    /// The largest message a put accepts.
    pub(crate) fn max(&self) -> usize {
        self.max
    }

    /// Puts `msg`: in a slot if it fits, else in a side segment referenced by a descriptor.
    /// Inlined into the caller: a small message costs one comparison here; the large path is
    /// out of line.
    #[inline]
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
        self.put_large(ring, wait, how, msg)
    }

    /// [`put`](Self::put) of a message over the slot size.
    #[cold]
    #[inline(never)]
    fn put_large(
        &self,
        ring: &Ring<'_>,
        wait: Wait,
        how: Waiting<'_>,
        msg: &[u8],
    ) -> Result<(), Fail> {
        let (Some(place), true) = (&self.place, msg.len() <= self.max) else {
            return Err(Fail::TooLarge {
                len: msg.len(),
                max: self.max,
            });
        };
        if wait == Wait::Never && !ring.core().has_free() {
            return Err(Fail::WouldBlock);
        }
        let staged = self.stage(place, msg.len(), ring, |b| b.write_at(BLOB_HEADER, msg))?;
        engine::put(ring, wait, how, |l| {
            l.push_descriptor(&staged.descriptor).map(|()| (1, ()))
        })?;
        staged.keep();
        Ok(())
    }

    /// Puts a message of `len` bytes that `fill` writes in place: in a slot if it fits (into
    /// a buffer of `len` bytes copied into the claimed slot, as `push_with` does), else
    /// straight into a new side segment (no copy), whose descriptor is then put. `fill` runs
    /// at most once, and not at all for `TooLarge` or a `try_` put that finds no free slot.
    pub(crate) fn put_with_len(
        &self,
        ring: &Ring<'_>,
        wait: Wait,
        how: Waiting<'_>,
        len: usize,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<(), Fail> {
        if len <= ring.core().message_size {
            let mut fill = Some(move |buf: &mut [u8]| {
                fill(&mut buf[..len]);
                len
            });
            return engine::put(ring, wait, how, |l| {
                l.push_with(&mut fill).map(|()| (1, ()))
            });
        }
        let (Some(place), true) = (&self.place, len <= self.max) else {
            return Err(Fail::TooLarge { len, max: self.max });
        };
        if wait == Wait::Never && !ring.core().has_free() {
            return Err(Fail::WouldBlock);
        }
        let staged = self.stage(place, len, ring, |b| b.fill_at(BLOB_HEADER, len, fill))?;
        engine::put(ring, wait, how, |l| {
            l.push_descriptor(&staged.descriptor).map(|()| (1, ()))
        })?;
        staged.keep();
        Ok(())
    }

    /// Makes a new side segment at `place` for a message of `len` bytes and lets `write` put
    /// the message at [`BLOB_HEADER`]; then writes the head.
    fn stage(
        &self,
        place: &Place,
        len: usize,
        ring: &Ring<'_>,
        write: impl FnOnce(&mut Blob),
    ) -> Result<Staged, Fail> {
        let pid = std::process::id();
        let d = Descriptor {
            len: len as u64,
            pid: u64::from(pid),
            start: process_start_time(pid).unwrap_or(0),
            n: COUNTER.fetch_add(1, Relaxed),
        };
        let name = d.name(place.prefix());
        let path = place.path(&name);
        let size = BLOB_HEADER + len;
        let mut blob = match Blob::create_at(&path, size, self.mode) {
            Ok(b) => b,
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NOSPC.raw_os_error()) => {
                // Space may be held by the leftovers of dead processes: sweep, then once more.
                self.sweep(&[ring]);
                Blob::create_at(&path, size, self.mode).map_err(|e| io_fail(&name, &e))?
            }
            Err(e) => return Err(io_fail(&name, &e)),
        };
        let staged = Staged {
            path,
            descriptor: d.encode(),
            kept: false,
        };
        let mut head = [0u8; BLOB_HEADER];
        head[..8].copy_from_slice(&BLOB_MAGIC.to_ne_bytes());
        head[8..8 + DESCRIPTOR_LEN].copy_from_slice(&staged.descriptor);
        write(&mut blob);
        blob.write_at(0, &head);
        Ok(staged)
    }

    /// Opens and checks the side segment of descriptor bytes `d`.
    fn open(&self, d: &[u8]) -> Result<(Blob, std::path::PathBuf), Fail> {
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
        let blob = Blob::open_at(&path, BLOB_HEADER + desc.len as usize)
            .map_err(|e| corrupt(format!("side segment {name}: {e}")))?;
        let bytes = blob.bytes();
        let magic = u64::from_ne_bytes(bytes[..8].try_into().unwrap_or([0; 8]));
        if magic != BLOB_MAGIC || bytes[8..8 + DESCRIPTOR_LEN] != *d {
            return Err(corrupt(format!("side segment {name} does not match")));
        }
        Ok((blob, path))
    }

    /// Runs `read` on the front message in place, under the ring's reservation of the front
    /// (a reader killed inside takes nothing), waiting for one as `wait` says. `read` returns
    /// how many messages to take (0 or 1) and a result; a large message taken has its side
    /// segment unlinked afterwards.
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
                    let (blob, path) = self.open(&d)?;
                    let r = f(&blob.bytes()[BLOB_HEADER..])?;
                    if r.0 > 0 {
                        taken_blob = Some(path);
                    }
                    Ok(r)
                }
            }
        });
        if let Some(path) = taken_blob
            && r.is_ok()
        {
            let _ = std::fs::remove_file(path);
        }
        r
    }

    /// Takes the front message into a new vector, waiting as `wait` says. Inlined: the
    /// large path (the front's length word had [`LARGE`](crate::lockfree::LARGE) set) is out
    /// of line.
    #[inline]
    pub(crate) fn get_vec(
        &self,
        ring: &Ring<'_>,
        wait: Wait,
        how: Waiting<'_>,
    ) -> Result<Vec<u8>, Fail> {
        match engine::get(ring, wait, how, |r| Ok(r.pop_vec()?.map(|m| (1, m)))) {
            Err(Fail::Large) => self.get_vec_large(ring, wait, how),
            r => r,
        }
    }

    #[cold]
    #[inline(never)]
    fn get_vec_large(
        &self,
        ring: &Ring<'_>,
        wait: Wait,
        how: Waiting<'_>,
    ) -> Result<Vec<u8>, Fail> {
        self.read_front(ring, wait, how, |m| Ok((1, m.to_vec())))
    }

    /// Takes the front message into `buf` (it stays queued if it does not fit). Inlined, as
    /// [`get_vec`](Self::get_vec).
    #[inline]
    pub(crate) fn get_into(
        &self,
        ring: &Ring<'_>,
        wait: Wait,
        how: Waiting<'_>,
        buf: &mut [u8],
    ) -> Result<usize, Fail> {
        match engine::get(ring, wait, how, |l| engine::pop_into(l, buf)) {
            Err(Fail::Large) => self.get_into_large(ring, wait, how, buf),
            r => r,
        }
    }

    #[cold]
    #[inline(never)]
    fn get_into_large(
        &self,
        ring: &Ring<'_>,
        wait: Wait,
        how: Waiting<'_>,
        buf: &mut [u8],
    ) -> Result<usize, Fail> {
        self.read_front(ring, wait, how, |m| {
            if m.len() > buf.len() {
                return Err(Fail::TooSmall {
                    needed: m.len(),
                    available: buf.len(),
                });
            }
            buf[..m.len()].copy_from_slice(m);
            Ok((1, m.len()))
        })
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
            let _ = std::fs::remove_file(place.path(n));
        }
    }
}

fn io_fail(name: &str, e: &std::io::Error) -> Fail {
    Fail::Corrupt(format!("cannot make side segment {name}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_round_trip_and_names_parse_back() {
        let d = Descriptor {
            len: 1 << 20,
            pid: 0x1234,
            start: 0xabcdef,
            n: 7,
        };
        assert_eq!(Descriptor::decode(&d.encode()), Some(d));
        assert_eq!(Descriptor::decode(&[0; 8]), None);
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

    fn leftovers(name: &str) -> usize {
        super::side_segments(&crate::side::Place::named(name)).len()
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
        assert_eq!(leftovers(&name), 0);
        // try_put of a large message into a full queue hands it back and leaves nothing.
        for _ in 0..8 {
            q.put(b"x").unwrap();
        }
        match q.try_put(big(5000, 1)) {
            Err(TryPutError::Full(m)) => assert_eq!(m, big(5000, 1)),
            other => panic!("{other:?}"),
        }
        assert_eq!(leftovers(&name), 0);
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
        assert_eq!(leftovers(&prefix), 1);
        let anchor = std::path::Path::new(crate::sys::SHM_DIR).join(&prefix);
        assert!(anchor.exists());
        drop(q);
        assert_eq!(
            leftovers(&prefix),
            0,
            "the last drop removes what is queued"
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
        // Full: try_ and timeout hand nothing to `fill` and leave nothing behind.
        assert!(matches!(
            q.try_put_with_len(100_000, |_| panic!("not called")),
            Err(TryPutError::Full(()))
        ));
        assert!(matches!(
            q.put_with_len_timeout(100_000, std::time::Duration::from_millis(5), |_| {}),
            Err(crate::PutTimeoutError::Timeout(()))
        ));
        assert_eq!(leftovers(&name), 1);
        assert!(matches!(
            q.put_with_len((1 << 20) + 1, |_| panic!("not called")),
            Err(crate::PutError::TooLarge { len, max, .. }) if len == (1 << 20) + 1 && max == 1 << 20
        ));
        assert_eq!(q.get().unwrap(), want(64, 3));
        assert_eq!(q.get().unwrap(), want(1 << 20, 5));
        // A fill that panics puts nothing and leaves no side segment.
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            q.put_with_len(9000, |_| panic!("fill fails"))
        }));
        assert!(r.is_err());
        assert_eq!((q.len(), leftovers(&name)), (0, 0));
        q.put_with_len_deadline(0, std::time::Instant::now(), |b| assert!(b.is_empty()))
            .unwrap();
        q.put_with_len(9000, fill(7)).unwrap();
        assert_eq!(q.get().unwrap(), b"");
        assert_eq!(q.get().unwrap(), want(9000, 7));
        Queue::unlink(&name).unwrap();
        assert_eq!(leftovers(&name), 0);
    }
}
