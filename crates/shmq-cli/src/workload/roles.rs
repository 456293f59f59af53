//! The roles a child process plays, the message format every role checks, and the child's side
//! of the protocol (ready, report, the gate). The dispatch from a role to the function that
//! plays it is in [`child`](super::child).

use anyhow::{Context, Result, ensure};
use serde::{Deserialize, Serialize};
use shmq::Queue;

use super::{READY, REPORT, TAIL_MAGIC};

/// How a shmq producer and consumer move messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShmqApi {
    /// `put` / `get_into`, one message per lock round.
    Single,
    /// `put_many` / `get_many_with`, up to this many messages per lock round.
    Batch(usize),
    /// `put_with` / `get_with`: the producer fills the slot and the consumer checks it in place.
    ZeroCopy,
    /// `put` / `get_into` of messages larger than the queue's 4 KiB slots (side segments).
    Large,
    /// Consumer only: `get_into` of `size`-byte messages (counted) mixed with
    /// [`INTERLEAVED_LARGE`]-byte ones (checked, not counted) from a [`Role::LargePacer`].
    Interleaved,
    /// `PodQueue<PodMsg>`: a 64-byte plain-old-data struct, no serialisation
    /// (the message size is always 64).
    Pod,
    /// `SerdeQueue<SerdeMsg>`: a small serde struct encoded with postcard (the message size is
    /// the slot size; the encoding is shorter).
    Serde,
}

/// The plain-old-data message of the `shmq-pod` rows: 64 bytes, the sequence number in the
/// first and (mixed) in the last word.
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
pub struct PodMsg {
    /// The sequence number.
    pub seq: u64,
    /// Payload.
    pub body: [u64; 6],
    /// `seq ^ TAIL_MAGIC`.
    pub tail: u64,
}

/// The serde message of the `shmq-serde` rows: a small struct (an order).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SerdeMsg {
    /// The sequence number.
    pub seq: u64,
    /// Account.
    pub account: u32,
    /// Price.
    pub price: f64,
    /// Quantity.
    pub quantity: u16,
    /// Buy or sell.
    pub buy: bool,
    /// Instrument.
    pub symbol: String,
}

/// How a stream (OS pipe) carries messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Framing {
    /// A 4-byte little-endian length, then the payload, in one `write`; read through a buffer.
    LengthPrefixed,
    /// Every message exactly `size` bytes (at most [`PIPE_BUF`](super::PIPE_BUF)), one `write` and one `read`
    /// each: atomic, so several writers and readers can share one pipe.
    Fixed,
}

/// What carries a ping-pong.
#[allow(missing_docs)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    /// Two shmq queues, one per direction.
    Shmq { ping: String, pong: String },
    /// Two shmq queues through the async API.
    ShmqAsync { ping: String, pong: String },
    /// Two OS pipes (stdin/stdout of each side), length-prefixed.
    Pipe,
    /// One Unix `SOCK_SEQPACKET` socket pair (stdin of each side).
    Socket,
}

/// One side of a workload, as run by a child process. (Fields: the queue and gate names, the
/// message `size`, and the sequence numbers `first..first + count` a producer sends.)
#[allow(missing_docs)]
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum Role {
    /// Sends `count` messages numbered from `first` into the shmq queue `queue`.
    ShmqProducer {
        queue: String,
        gate: String,
        api: ShmqApi,
        size: usize,
        first: u64,
        count: u64,
    },
    /// Takes messages from `queue` until it is closed and drained.
    ShmqConsumer {
        queue: String,
        api: ShmqApi,
        size: usize,
    },
    /// Puts [`INTERLEAVED_LARGE`]-byte messages into `queue`, one every `every_us`
    /// microseconds (sleeping between them), until the queue is closed.
    LargePacer {
        queue: String,
        gate: String,
        every_us: u64,
    },
    /// Writes `count` messages to stdout (an OS pipe).
    PipeProducer {
        gate: String,
        framing: Framing,
        size: usize,
        first: u64,
        count: u64,
    },
    /// Reads messages from stdin (an OS pipe) until end-of-file.
    PipeConsumer { framing: Framing, size: usize },
    /// Sends `count` messages on the `SOCK_SEQPACKET` socket that is its stdin.
    SocketProducer {
        gate: String,
        size: usize,
        first: u64,
        count: u64,
    },
    /// Receives from the socket that is its stdin until the peer closes it.
    SocketConsumer { size: usize },
    /// Sends `warmup + count` pings and times each round trip; reports the last `count`.
    PingClient {
        transport: Transport,
        size: usize,
        warmup: u64,
        count: u64,
    },
    /// Sends every ping back until the client is gone.
    PingEcho { transport: Transport, size: usize },
    /// Sends `count` messages into ring 0 of the floor segment `segment` (bench code only).
    FloorProducer {
        segment: String,
        gate: String,
        capacity: usize,
        size: usize,
        first: u64,
        count: u64,
    },
    /// Takes messages from ring 0 of the floor segment until it is closed and empty.
    FloorConsumer {
        segment: String,
        capacity: usize,
        size: usize,
    },
    /// Ping client over two floor rings.
    FloorPing {
        segment: String,
        size: usize,
        warmup: u64,
        count: u64,
    },
    /// Echo over two floor rings.
    FloorEcho { segment: String, size: usize },
    /// Pushes `count` messages into ring 0 of the Vyukov segment `segment` (bench code only).
    VyukovProducer {
        segment: String,
        gate: String,
        capacity: usize,
        size: usize,
        first: u64,
        count: u64,
    },
    /// Pops from ring 0 of the Vyukov segment until it is closed and empty, checking that the
    /// messages of each producer (whose ranges start at `firsts`) come in order.
    VyukovConsumer {
        segment: String,
        capacity: usize,
        size: usize,
        firsts: Vec<u64>,
    },
    /// Ping client over two Vyukov rings.
    VyukovPing {
        segment: String,
        size: usize,
        warmup: u64,
        count: u64,
    },
    /// Echo over two Vyukov rings.
    VyukovEcho { segment: String, size: usize },
    /// Locks and unlocks the named lock `segment` `count` times.
    LockHammer { segment: String, count: u64 },
}

/// What a consumer saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// Messages received.
    pub count: u64,
    /// Wrapping sum of [`mix`] of every sequence number received.
    pub checksum: u64,
}

impl Tally {
    pub(super) fn add(&mut self, seq: u64) {
        self.count += 1;
        self.checksum = self.checksum.wrapping_add(mix(seq));
    }

    pub(super) fn merge(&mut self, other: Tally) {
        self.count += other.count;
        self.checksum = self.checksum.wrapping_add(other.checksum);
    }

    /// What consumers must report for the sequence numbers `first..first + count`.
    pub fn expected(first: u64, count: u64) -> Tally {
        let mut t = Tally::default();
        (first..first + count).for_each(|s| t.add(s));
        t
    }
}

/// What a ping client measured.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PingReport {
    /// Round trips timed.
    pub count: u64,
    /// Time for all of them.
    pub elapsed_ns: u64,
    /// Median round trip.
    pub p50_ns: u64,
    /// 99th percentile round trip.
    pub p99_ns: u64,
}

/// SplitMix64's finaliser: spreads a sequence number over 64 bits, so that a lost message and a
/// duplicated one do not cancel out in the sum.
pub fn mix(seq: u64) -> u64 {
    let mut z = seq.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Writes sequence number `seq` into a message buffer (head word, and tail word from 16 bytes).
pub fn stamp(buf: &mut [u8], seq: u64) {
    buf[..8].copy_from_slice(&seq.to_le_bytes());
    let n = buf.len();
    if n >= 16 {
        buf[n - 8..].copy_from_slice(&(seq ^ TAIL_MAGIC).to_le_bytes());
    }
}

/// Checks a received message and returns its sequence number.
///
/// # Errors
///
/// If its length is not `size` or its check words disagree.
pub fn check(msg: &[u8], size: usize) -> Result<u64> {
    ensure!(
        msg.len() == size,
        "received {} bytes, expected {size}",
        msg.len()
    );
    let word = |at: usize| u64::from_le_bytes(msg[at..at + 8].try_into().unwrap_or([0; 8]));
    let seq = word(0);
    if size >= 16 {
        ensure!(
            word(size - 8) == seq ^ TAIL_MAGIC,
            "message {seq} is corrupt: its tail word disagrees"
        );
    }
    Ok(seq)
}

/// The size of the large messages of the interleaved row ([`Role::LargePacer`]).
pub const INTERLEAVED_LARGE: usize = 1 << 20;

/// The slots of a benchmark queue: about 1 MiB of payload, between 16 and 1024 slots; the
/// environment variable `SHMQ_BENCH_CAPACITY`, when it holds a number from 1 to 2^24, sets it
/// instead (for the working-set comparison of `docs/benchmarks.md`).
pub fn queue_capacity(size: usize) -> usize {
    std::env::var("SHMQ_BENCH_CAPACITY")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|c| (1..=1 << 24).contains(c))
        .unwrap_or_else(|| ((1 << 20) / size.max(1)).clamp(16, 1024))
}

/// `(first, count)` for each of `n` producers, covering `0..total`.
pub(super) fn split(total: u64, n: usize) -> Vec<(u64, u64)> {
    let n = n.max(1) as u64;
    (0..n)
        .map(|i| {
            let first = total * i / n;
            (first, total * (i + 1) / n - first)
        })
        .collect()
}

/// A message template of `size` bytes with a recognisable filler.
pub(super) fn template(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i % 251) as u8).collect()
}

pub(super) fn ready() {
    eprintln!("{READY}");
}

pub(super) fn report<T: Serialize>(value: &T) -> Result<()> {
    eprintln!("{REPORT}{}", serde_json::to_string(value)?);
    Ok(())
}

pub(super) fn wait_gate(gate: &str) -> Result<()> {
    let g = Queue::open(gate).with_context(|| format!("opening gate {gate}"))?;
    ready();
    g.get().context("waiting at the gate")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamped_messages_check_and_corrupt_ones_do_not() {
        for size in [8, 16, 64, 65536] {
            let mut m = template(size);
            stamp(&mut m, 42);
            assert_eq!(check(&m, size).unwrap(), 42);
            assert!(check(&m[..size - 1], size).is_err());
            if size >= 16 {
                m[size - 1] ^= 1;
                assert!(check(&m, size).is_err());
            }
        }
    }

    #[test]
    fn roles_round_trip_through_json() {
        let r = Role::ShmqProducer {
            queue: "q".into(),
            gate: "g".into(),
            api: ShmqApi::Batch(64),
            size: 64,
            first: 0,
            count: 1,
        };
        let back: Role = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert!(matches!(
            back,
            Role::ShmqProducer {
                api: ShmqApi::Batch(64),
                ..
            }
        ));
    }
}
