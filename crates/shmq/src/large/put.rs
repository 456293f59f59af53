//! The put of a message that may be large: [`Big::put`] is the one place where a put chooses a
//! slot or a side segment. A large put stages the message in a side segment (a free one of the
//! producer's pool, reused; a new pooled one; or a one-shot one that its consumer removes:
//! `Big::check_out`), writes the segment's head after the message, and only then puts the
//! descriptor through the ordinary put path, whose publication is the commit. A put that
//! fails, or a `fill` that panics, frees or removes the segment (`Staged`).

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::time::{Duration, Instant};

use super::side::Place;
use super::{
    BLOB_HEADER, BLOB_MAGIC, Big, COUNTER, DESCRIPTOR_LEN, Descriptor, FREE, POOL_BYTES,
    POOL_IDLE_PUTS, POOL_SEGMENTS, Pooled, RETIRED, STATE_AT, release, size_class,
};
use crate::engine::{self, Fail, Wait, Waiting};
use crate::liveness::process_start_time;
use crate::ring::Ring;
use crate::segment::Blob;

/// What a put does for a side segment ([`Big::check_out`]).
enum Choice {
    /// This free pooled segment, claimed.
    Reuse(Pooled),
    /// A new pooled segment (room is made in the pool's accounting); the pool's count of puts
    /// at its check-out (its first use: a segment is idle only once that many more went by).
    New(u64),
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

/// A side segment written but not yet published: freed (pooled) or unlinked (one-shot) on
/// drop unless [`keep`](Self::keep) was called (a put that failed leaves nothing behind).
struct Staged<'a> {
    big: &'a Big,
    /// `Some` for a pooled segment (returned to the pool either way).
    pooled: Option<Pooled>,
    /// The one-shot segment's file.
    path: PathBuf,
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
                    release(&p.blob, &p.path, self.generation);
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
                let _ = std::fs::remove_file(&self.path);
            }
            None => {}
        }
    }
}

/// Writes the head (magic, descriptor `d`; not the state word) of `blob`, after its message.
fn write_head(blob: &Blob, d: &[u8; DESCRIPTOR_LEN]) {
    let mut head = [0u8; 8 + DESCRIPTOR_LEN];
    head[..8].copy_from_slice(&BLOB_MAGIC.to_ne_bytes());
    head[8..].copy_from_slice(d);
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

impl Big {
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
        self.put_in_side_segment(ring, wait, how, msg.len(), |b, _| {
            b.write_at(BLOB_HEADER, msg)
        })
    }

    /// The large put of a message of `len` bytes (over the slot size) that `write` writes into
    /// its side segment ([`stage`](Self::stage)): `TooLarge` above the maximum, `WouldBlock`
    /// for a `try_` put that finds no free slot (before anything is made), else staged, then
    /// its descriptor put; a put that fails frees or removes the segment.
    fn put_in_side_segment(
        &self,
        ring: &Ring<'_>,
        wait: Wait,
        how: Waiting<'_>,
        len: usize,
        write: impl FnOnce(&mut Blob, bool),
    ) -> Result<(), Fail> {
        let (Some(place), true) = (&self.place, len <= self.max) else {
            return Err(Fail::TooLarge { len, max: self.max });
        };
        if wait == Wait::Never && !ring.core().has_free() {
            return Err(Fail::WouldBlock);
        }
        let staged = self.stage(place, len, ring, wait, write)?;
        engine::put(ring, wait, how, |l| {
            l.push_descriptor(&staged.descriptor).map(|()| (1, ()))
        })?;
        staged.keep();
        Ok(())
    }

    /// Puts a message of `len` bytes that `fill` writes in place (into `len` zeroed bytes): in
    /// a slot if it fits (into a buffer copied into the claimed slot, as `push_with` does),
    /// else straight into a side segment (no copy), whose descriptor is then put. `fill` runs
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
        self.put_in_side_segment(ring, wait, how, len, |b, reused| {
            b.fill_at(BLOB_HEADER, len, |buf| {
                if reused {
                    // A reused segment holds an older message: lend zeroed bytes, as promised.
                    buf.fill(0);
                }
                fill(buf)
            })
        })
    }

    /// Checks out a free pooled side segment of at least `need` bytes (the smallest), or makes
    /// room in the pool for a new one of `class` bytes, or says the message goes into a
    /// one-shot segment, or (only if `may_wait`) that a pooled segment in flight may be freed
    /// soon.
    fn check_out(&self, need: usize, class: usize, may_wait: bool) -> Choice {
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        pool.own();
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
            // The smallest; of equal ones the least recently used, so that every segment a
            // steady stream needs stays in turn (and none is retired as idle, then remade).
            .min_by_key(|&i| (pool.idle[i].blob.len(), pool.idle[i].used));
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
                // SYNC POINT: producer — the claim is ordered before the writes to come (a
                // seqlock's writer): a peeker that copied any of them sees a state word other
                // than its generation after its acquire fence, and discards the copy (`peek`).
                std::sync::atomic::fence(Release);
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
        let used = pool.puts;
        pool.puts += 1;
        pool.count += 1;
        pool.bytes += class;
        Choice::New(used)
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

    /// Creates side segment `name` (file `path`) of `size` bytes, sweeping once on `ENOSPC`
    /// (space may be held by the leftovers of dead processes and by this handle's idle pool).
    fn create(&self, name: &str, path: &Path, size: usize, ring: &Ring<'_>) -> Result<Blob, Fail> {
        match Blob::create_at(path, size, self.mode) {
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
                Blob::create_at(path, size, self.mode).map_err(|e| io_fail(name, size, &e))
            }
            Err(e) => Err(io_fail(name, size, &e)),
        }
    }

    /// Makes ready a side segment at `place` for a message of `len` bytes (a free one of this
    /// handle's pool, a new pooled one, or a one-shot one), lets `write` put the message at
    /// [`BLOB_HEADER`] (told whether the segment is reused, so may hold older bytes), then
    /// writes the head. If `write` panics, the segment is freed or removed (by `Staged`).
    fn stage(
        &self,
        place: &Place,
        len: usize,
        ring: &Ring<'_>,
        wait: Wait,
        write: impl FnOnce(&mut Blob, bool),
    ) -> Result<Staged<'_>, Fail> {
        let pid = u64::from(std::process::id());
        let need = BLOB_HEADER + len;
        let class = size_class(need);
        let choice = self.check_out_waiting(need, class, wait);
        let (pooled, one_shot, generation, start, n) = match choice {
            Choice::Reuse(p) => {
                let (g, start, n) = (p.generation, p.start, p.n);
                (Some((p, true)), None, g, start, n)
            }
            fresh => {
                let (pooled, used) = match fresh {
                    Choice::New(used) => (true, used),
                    _ => (false, 0),
                };
                let start = process_start_time(pid as u32).unwrap_or(0);
                let n = COUNTER.fetch_add(1, Relaxed);
                let name = Descriptor {
                    len: 0,
                    pid_gen: pid,
                    start,
                    n,
                }
                .name(place.prefix());
                let path = place.path(&name);
                let made = self.create(&name, &path, if pooled { class } else { need }, ring);
                let blob = match made {
                    Ok(b) => b,
                    Err(e) => {
                        if pooled {
                            let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
                            pool.count -= 1;
                            pool.bytes -= class;
                        }
                        return Err(e);
                    }
                };
                // A fresh segment is zero (FREE): claim generation 1, retired at once if it
                // is one-shot (its consumer removes it after the take).
                let g = 1;
                let state = if pooled { g } else { g | RETIRED };
                blob.word(STATE_AT).store(state, Relaxed);
                if pooled {
                    let p = Pooled {
                        path,
                        blob,
                        start,
                        n,
                        generation: g,
                        used,
                    };
                    (Some((p, false)), None, g, start, n)
                } else {
                    (None, Some((path, blob)), g, start, n)
                }
            }
        };
        let d = Descriptor {
            len: len as u64,
            pid_gen: pid | generation << 32,
            start,
            n,
        }
        .encode();
        let (pooled, reused) = match pooled {
            Some((p, reused)) => (Some(p), reused),
            None => (None, false),
        };
        let (path, mut one_shot_blob) = match one_shot {
            Some((path, blob)) => (path, Some(blob)),
            None => (PathBuf::new(), None),
        };
        // Staged first: a `write` that panics leaves nothing behind.
        let mut staged = Staged {
            big: self,
            pooled,
            path,
            generation,
            descriptor: d,
            kept: false,
        };
        // The one-shot mapping goes once written; the file stays until the consumer's take.
        let blob = match (&mut staged.pooled, &mut one_shot_blob) {
            (Some(p), _) => &mut p.blob,
            (None, Some(b)) => b,
            (None, None) => unreachable!("a segment is pooled or one-shot"),
        };
        write(blob, reused);
        write_head(blob, &d);
        Ok(staged)
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
