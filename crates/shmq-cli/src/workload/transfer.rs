//! Transfers: many messages from producer processes to consumer processes, timed and checked.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, ensure};
use serde::{Deserialize, Serialize};

use super::launcher::{Launcher, Named};
use super::roles::{Framing, Role, ShmqApi, Tally, queue_capacity, split};
use super::transports::{os_pipe, socket_pair, socket_refuses};
use super::{MIN_SIZE, PIPE_BUF};

/// What carries a transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mechanism {
    /// A shmq queue through the given API.
    Shmq(ShmqApi),
    /// An OS pipe: length-prefixed with one producer, fixed-size atomic writes with several.
    Pipe,
    /// A Unix `SOCK_SEQPACKET` socket pair (one producer, one consumer).
    Socket,
    /// The floor: a minimal lock-free SPSC ring, busy-spinning, no crash safety (bench code
    /// only; one producer, one consumer).
    Floor,
    /// The Vyukov baseline: a bounded lock-free MPMC ring (Dmitry Vyukov's, as crossbeam's
    /// `ArrayQueue`), spinning then yielding, no crash safety (bench code only).
    Vyukov,
    /// One process copying each message within its own memory (`copy_from_slice` between two
    /// buffers): the baseline of the large-message rows.
    Memcpy,
}

impl Mechanism {
    /// The name used in tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Shmq(ShmqApi::Single) => "shmq",
            Mechanism::Shmq(ShmqApi::Batch(_)) => "shmq-batch",
            Mechanism::Shmq(ShmqApi::ZeroCopy) => "shmq-zero-copy",
            Mechanism::Shmq(ShmqApi::Large) => "shmq-large",
            Mechanism::Shmq(ShmqApi::Interleaved) => "shmq-64+1MiB",
            Mechanism::Memcpy => "memcpy",
            Mechanism::Shmq(ShmqApi::Pod) => "shmq-pod",
            Mechanism::Shmq(ShmqApi::Serde) => "shmq-serde",
            Mechanism::Pipe => "pipe",
            Mechanism::Socket => "socket",
            Mechanism::Floor => "floor",
            Mechanism::Vyukov => "vyukov",
        }
    }

    /// Why this mechanism cannot carry a message of `size` bytes on this machine, or `None` if
    /// it can (the mechanism is asked: a Unix socket pair, for one, refuses a message larger than
    /// its send buffer).
    ///
    /// # Errors
    ///
    /// If asking fails (the socket pair cannot be made).
    pub fn refuses(self, size: usize) -> Result<Option<String>> {
        match self {
            Mechanism::Socket => socket_refuses(size),
            _ => Ok(None),
        }
    }
}

/// A transfer of `count` messages of `size` bytes from `producers` to `consumers` processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transfer {
    /// What carries the messages.
    pub mechanism: Mechanism,
    /// Bytes per message (at least [`MIN_SIZE`]).
    pub size: usize,
    /// Messages in all (split evenly between the producers).
    pub count: u64,
    /// Producer processes.
    pub producers: usize,
    /// Consumer processes.
    pub consumers: usize,
}

/// The slot size of the `shmq-large` rows.
pub const LARGE_SLOT: usize = 4096;

impl Transfer {
    /// Runs the transfer in child processes and returns the time from the opening of the gate
    /// to the last consumer's report, after checking every consumer's count and checksum.
    ///
    /// # Errors
    ///
    /// A child that fails or reports a wrong count or checksum; an impossible combination (a
    /// socket with several processes per side, a pipe message over [`PIPE_BUF`] with several).
    pub fn run(&self, launcher: &Launcher) -> Result<Duration> {
        ensure!(
            self.size >= MIN_SIZE,
            "messages need at least {MIN_SIZE} bytes"
        );
        ensure!(
            self.producers >= 1 && self.consumers >= 1,
            "need processes on both sides"
        );
        let many = self.producers > 1 || self.consumers > 1;
        if many {
            ensure!(
                self.mechanism != Mechanism::Socket && self.mechanism != Mechanism::Floor,
                "a socket pair and the floor have one process per side"
            );
            ensure!(
                self.mechanism != Mechanism::Pipe || self.size <= PIPE_BUF,
                "several processes share a pipe only with messages of at most {PIPE_BUF} bytes"
            );
        }
        if self.mechanism == Mechanism::Floor {
            return super::floor::transfer(launcher, self.size, self.count);
        }
        if self.mechanism == Mechanism::Vyukov {
            return super::vyukov::transfer(
                launcher,
                self.size,
                self.count,
                self.producers,
                self.consumers,
                queue_capacity(self.size),
            );
        }
        if self.mechanism == Mechanism::Memcpy {
            let src = super::roles::template(self.size);
            let mut dst = vec![0u8; self.size];
            let start = Instant::now();
            for i in 0..self.count {
                dst.copy_from_slice(&src);
                std::hint::black_box(&mut dst);
                std::hint::black_box(i);
            }
            return Ok(start.elapsed());
        }
        let gate = Named::create("gate", self.producers.max(1), 8)?;
        let shares = split(self.count, self.producers);
        let mut consumers = Vec::new();
        let mut producers = Vec::new();
        let mut queue = None;
        match self.mechanism {
            Mechanism::Shmq(api) => {
                let q = if api == ShmqApi::Large {
                    // 4 KiB slots: every message travels in a side segment.
                    Named::create("q", 16, LARGE_SLOT)?
                } else {
                    Named::create("q", queue_capacity(self.size), self.size)?
                };
                for _ in 0..self.consumers {
                    let role = Role::ShmqConsumer {
                        queue: q.name.clone(),
                        api,
                        size: self.size,
                    };
                    consumers.push(launcher.spawn(&role, Stdio::null(), Stdio::null())?);
                }
                for &(first, count) in &shares {
                    let role = Role::ShmqProducer {
                        queue: q.name.clone(),
                        gate: gate.name.clone(),
                        api,
                        size: self.size,
                        first,
                        count,
                    };
                    producers.push(launcher.spawn(&role, Stdio::null(), Stdio::null())?);
                }
                queue = Some(q);
            }
            Mechanism::Pipe => {
                let framing = if many {
                    Framing::Fixed
                } else {
                    Framing::LengthPrefixed
                };
                let (r, w) = os_pipe()?;
                for _ in 0..self.consumers {
                    let role = Role::PipeConsumer {
                        framing,
                        size: self.size,
                    };
                    consumers.push(launcher.spawn(&role, r.try_clone()?.into(), Stdio::null())?);
                }
                for &(first, count) in &shares {
                    let role = Role::PipeProducer {
                        gate: gate.name.clone(),
                        framing,
                        size: self.size,
                        first,
                        count,
                    };
                    producers.push(launcher.spawn(&role, Stdio::null(), w.try_clone()?.into())?);
                }
                // Only the children hold the pipe now: end-of-file comes when producers exit.
                drop((r, w));
            }
            Mechanism::Floor | Mechanism::Vyukov | Mechanism::Memcpy => {
                unreachable!("handled above")
            }
            Mechanism::Socket => {
                let (a, b) = socket_pair()?;
                consumers.push(launcher.spawn(
                    &Role::SocketConsumer { size: self.size },
                    b.into(),
                    Stdio::null(),
                )?);
                let (first, count) = shares[0];
                let role = Role::SocketProducer {
                    gate: gate.name.clone(),
                    size: self.size,
                    first,
                    count,
                };
                producers.push(launcher.spawn(&role, a.into(), Stdio::null())?);
            }
        }
        for p in consumers.iter_mut().chain(producers.iter_mut()) {
            p.ready()?;
        }
        let start = Instant::now();
        for _ in 0..self.producers {
            gate.queue
                .put(b"go")
                .map_err(|e| anyhow!("opening the gate: {e}"))?;
        }
        for p in producers {
            p.finish()?;
        }
        if let Some(q) = &queue {
            q.queue.close().map_err(|e| anyhow!("close: {e}"))?;
        }
        let mut total = Tally::default();
        let mut reports = Vec::with_capacity(consumers.len());
        for c in &mut consumers {
            reports.push(c.report::<Tally>()?);
        }
        let elapsed = start.elapsed();
        for (c, r) in consumers.into_iter().zip(reports) {
            c.finish()?;
            total.merge(r);
        }
        let mut expected = Tally::default();
        for &(first, count) in &shares {
            expected.merge(Tally::expected(first, count));
        }
        ensure!(
            total == expected,
            "{} {}x{} B: consumers saw {} messages (checksum {:#x}), producers sent {} ({:#x})",
            self.mechanism.name(),
            self.producers,
            self.size,
            total.count,
            total.checksum,
            expected.count,
            expected.checksum
        );
        Ok(elapsed)
    }
}

/// The pause of the interleaved row's large producer: one 1 MiB message every this many
/// microseconds (about 500 MB/s of large messages beside the small ones).
pub const INTERLEAVED_EVERY_US: u64 = 2000;

/// The interleaved row: one producer puts `count` 64-byte messages at full speed
/// into a queue of 4 KiB slots and one consumer takes them; with `large`, a second producer
/// puts a 1 MiB message every [`INTERLEAVED_EVERY_US`] µs into the same queue meanwhile (the
/// consumer takes and checks those too). Returns the time until the consumer's report, after
/// checking the count and checksum of the 64-byte messages.
///
/// # Errors
///
/// A child that fails or a wrong count or checksum.
pub fn interleaved(launcher: &Launcher, count: u64, large: bool) -> Result<Duration> {
    let size = 64;
    let gate = Named::create("gate", 2, 8)?;
    let q = Named::create("q", queue_capacity(size), LARGE_SLOT)?;
    let mut consumer = launcher.spawn(
        &Role::ShmqConsumer {
            queue: q.name.clone(),
            api: ShmqApi::Interleaved,
            size,
        },
        Stdio::null(),
        Stdio::null(),
    )?;
    let mut producers = vec![launcher.spawn(
        &Role::ShmqProducer {
            queue: q.name.clone(),
            gate: gate.name.clone(),
            api: ShmqApi::Single,
            size,
            first: 0,
            count,
        },
        Stdio::null(),
        Stdio::null(),
    )?];
    if large {
        producers.push(launcher.spawn(
            &Role::LargePacer {
                queue: q.name.clone(),
                gate: gate.name.clone(),
                every_us: INTERLEAVED_EVERY_US,
            },
            Stdio::null(),
            Stdio::null(),
        )?);
    }
    consumer.ready()?;
    for p in &mut producers {
        p.ready()?;
    }
    let start = Instant::now();
    for _ in &producers {
        gate.queue
            .put(b"go")
            .map_err(|e| anyhow!("opening the gate: {e}"))?;
    }
    let mut producers = producers.into_iter();
    if let Some(small) = producers.next() {
        small.finish()?;
    }
    q.queue.close().map_err(|e| anyhow!("close: {e}"))?;
    let total = consumer.report::<Tally>()?;
    let elapsed = start.elapsed();
    consumer.finish()?;
    for p in producers {
        p.finish()?;
    }
    let expected = Tally::expected(0, count);
    ensure!(
        total == expected,
        "interleaved: the consumer saw {} small messages (checksum {:#x}), the producer sent {} ({:#x})",
        total.count,
        total.checksum,
        expected.count,
        expected.checksum
    );
    Ok(elapsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_cover_the_range_and_tallies_add_up() {
        let s = split(10, 4);
        assert_eq!(s, vec![(0, 2), (2, 3), (5, 2), (7, 3)]);
        let mut t = Tally::default();
        for (f, c) in s {
            t.merge(Tally::expected(f, c));
        }
        assert_eq!(t, Tally::expected(0, 10));
        assert_ne!(Tally::expected(0, 10), Tally::expected(1, 10));
    }
}
