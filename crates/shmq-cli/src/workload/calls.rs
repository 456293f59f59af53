//! One thread putting and getting in turn, on shmq and on the two baselines (the floor and the
//! Vyukov ring): what `scripts/instructions.sh` runs under callgrind to count the instructions,
//! and the locked instructions, of one put and one get. Nothing here is timed.
//!
//! [`put_get`] warms the queue up with `warmup` put/get pairs, then makes `count` more through
//! the `measured_*` functions, which are never inlined: callgrind's `--toggle-collect` on one of
//! them counts exactly that call, `count` times, and nothing of the warm-up (which calls the same
//! operations directly). Every message carries its sequence number and comes back checked, so
//! the compiler cannot drop any of the work and a wrong count is an error.

use anyhow::{Result, anyhow, ensure};
use shmq::Queue;

use super::floor::{self, FloorSegment};
use super::launcher::Named;
use super::roles::queue_capacity;
use super::roles::{check, stamp, template};
use super::vyukov::{self, VyukovSegment};

/// What [`put_get`] puts and gets on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Over {
    /// A shmq queue: `try_put` / `try_get_into`.
    Shmq,
    /// A shmq queue: `try_put` / `try_get` (each get allocates the message it returns).
    ShmqVec,
    /// The Vyukov ring: `try_push` / `try_pop`.
    Vyukov,
    /// The floor: `send` / `recv`.
    Floor,
}

impl Over {
    /// Every mechanism, in the order `scripts/instructions.sh` prints them.
    pub const ALL: [Over; 4] = [Over::Shmq, Over::ShmqVec, Over::Vyukov, Over::Floor];

    /// The name on the command line, and the suffix of its `measured_get_*` function and (but
    /// for `shmq_vec`, whose puts are `shmq`'s) of its `measured_put_*` function.
    pub fn name(self) -> &'static str {
        match self {
            Over::Shmq => "shmq",
            Over::ShmqVec => "shmq_vec",
            Over::Vyukov => "vyukov",
            Over::Floor => "floor",
        }
    }

    /// The mechanism called `name`.
    ///
    /// # Errors
    ///
    /// An unknown name.
    pub fn parse(name: &str) -> Result<Over> {
        Over::ALL
            .into_iter()
            .find(|o| o.name() == name)
            .ok_or_else(|| anyhow!("unknown mechanism {name:?} (shmq, shmq_vec, vyukov, floor)"))
    }
}

fn put_shmq(q: &Queue, msg: &[u8]) -> bool {
    q.try_put(msg).is_ok()
}

fn get_shmq(q: &Queue, buf: &mut [u8]) -> usize {
    q.try_get_into(buf).unwrap_or(0)
}

fn get_shmq_vec(q: &Queue, buf: &mut [u8]) -> usize {
    match q.try_get() {
        Ok(m) => {
            let n = m.len().min(buf.len());
            buf[..n].copy_from_slice(&m[..n]);
            n
        }
        Err(_) => 0,
    }
}

/// One `Queue::try_put`.
#[inline(never)]
pub fn measured_put_shmq(q: &Queue, msg: &[u8]) -> bool {
    put_shmq(q, msg)
}

/// One `Queue::try_get_into`.
#[inline(never)]
pub fn measured_get_shmq(q: &Queue, buf: &mut [u8]) -> usize {
    get_shmq(q, buf)
}

/// One `Queue::try_get`, and the copy of the message it returns into `buf`.
#[inline(never)]
pub fn measured_get_shmq_vec(q: &Queue, buf: &mut [u8]) -> usize {
    get_shmq_vec(q, buf)
}

/// One push onto the Vyukov ring.
#[inline(never)]
fn measured_put_vyukov(ring: &vyukov::Ring<'_>, msg: &[u8]) -> bool {
    ring.try_push(msg)
}

/// One pop from the Vyukov ring.
#[inline(never)]
fn measured_get_vyukov(ring: &vyukov::Ring<'_>, buf: &mut [u8]) -> usize {
    ring.try_pop(buf).unwrap_or(0)
}

/// One send on the floor.
#[inline(never)]
fn measured_put_floor(tx: &mut floor::Sender<'_>, msg: &[u8]) -> bool {
    tx.send(msg);
    true
}

/// One receive from the floor.
#[inline(never)]
fn measured_get_floor(rx: &mut floor::Receiver<'_>, buf: &mut [u8]) -> usize {
    rx.recv(buf).unwrap_or(0)
}

/// `warmup` put/get pairs through `put` and `get`, then `count` through `measured_put` and
/// `measured_get`, each message checked on the way out.
fn pairs(
    size: usize,
    warmup: u64,
    count: u64,
    mut put: impl FnMut(&[u8]) -> bool,
    mut get: impl FnMut(&mut [u8]) -> usize,
    mut measured_put: impl FnMut(&[u8]) -> bool,
    mut measured_get: impl FnMut(&mut [u8]) -> usize,
) -> Result<()> {
    let mut msg = template(size);
    let mut buf = vec![0u8; size];
    for seq in 0..warmup + count {
        stamp(&mut msg, seq);
        let n = if seq < warmup {
            ensure!(put(&msg), "put {seq} found the queue full");
            get(&mut buf)
        } else {
            ensure!(measured_put(&msg), "put {seq} found the queue full");
            measured_get(&mut buf)
        };
        ensure!(n > 0, "get {seq} found the queue empty");
        ensure!(
            check(&buf[..n], size)? == seq,
            "got another message than {seq}"
        );
    }
    Ok(())
}

/// Makes `warmup` and then `count` put/get pairs of `size`-byte messages in this thread over
/// `over`, in a new named segment of the benchmarks' capacity for that size (removed after).
///
/// # Errors
///
/// A segment that cannot be made, or a put, get or message that goes wrong.
pub fn put_get(over: Over, size: usize, warmup: u64, count: u64) -> Result<()> {
    let capacity = queue_capacity(size);
    match over {
        Over::Shmq | Over::ShmqVec => {
            let q = Named::create("calls", capacity, size)?;
            let q = &q.queue;
            if over == Over::Shmq {
                pairs(
                    size,
                    warmup,
                    count,
                    |m| put_shmq(q, m),
                    |b| get_shmq(q, b),
                    |m| measured_put_shmq(q, m),
                    |b| measured_get_shmq(q, b),
                )
            } else {
                pairs(
                    size,
                    warmup,
                    count,
                    |m| put_shmq(q, m),
                    |b| get_shmq_vec(q, b),
                    |m| measured_put_shmq(q, m),
                    |b| measured_get_shmq_vec(q, b),
                )
            }
        }
        Over::Vyukov => {
            let seg = VyukovSegment::create(1, capacity, size)?;
            let ring = seg.ring(0)?;
            pairs(
                size,
                warmup,
                count,
                |m| ring.try_push(m),
                |b| ring.try_pop(b).unwrap_or(0),
                |m| measured_put_vyukov(&ring, m),
                |b| measured_get_vyukov(&ring, b),
            )
        }
        Over::Floor => {
            let seg = FloorSegment::create(1, capacity, size)?;
            let (tx, rx) = seg.ends(0)?;
            let (tx, rx) = (std::cell::RefCell::new(tx), std::cell::RefCell::new(rx));
            pairs(
                size,
                warmup,
                count,
                |m| {
                    tx.borrow_mut().send(m);
                    true
                },
                |b| rx.borrow_mut().recv(b).unwrap_or(0),
                |m| measured_put_floor(&mut tx.borrow_mut(), m),
                |b| measured_get_floor(&mut rx.borrow_mut(), b),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mechanism_gives_back_every_message_in_one_thread() {
        for over in Over::ALL {
            assert_eq!(Over::parse(over.name()).unwrap(), over);
            for size in [8, 20, 64] {
                put_get(over, size, 10, 3000).unwrap_or_else(|e| panic!("{over:?} {size}: {e:#}"));
            }
        }
        assert!(Over::parse("pipe").is_err());
    }
}
