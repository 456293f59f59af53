//! Cross-process workloads: every side of every transfer is a function that runs in a child
//! process, and the parent only wires the processes together and times the whole transfer.
//!
//! A child is the current executable started again with its [`Role`] in the environment
//! variable [`CHILD_ENV`] (as JSON). The `shmq` binary reaches [`run_child`] through a hidden
//! subcommand, the criterion benches by checking the variable before criterion starts; both go
//! through a [`Launcher`].
//!
//! Protocol between parent and child, on the child's stderr: one line `SHMQ-READY` once its
//! resources are open, one line `SHMQ-REPORT {json}` with its result, anything else is an error
//! message. Producers wait on a *gate* (a small shmq queue) after `SHMQ-READY`, so process
//! start-up is outside the timed interval: the clock starts when the parent opens the gate and
//! stops when the last consumer's report arrives.
//!
//! Every message carries its sequence number in its first 8 bytes and, from 16 bytes up, the
//! same number xor [`TAIL_MAGIC`] in its last 8; every consumer checks the length and both words,
//! counts, and sums a hash of each sequence number. The parent compares count and checksum with
//! what the producers sent, so a fast wrong answer fails the run.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Child, ChildStderr, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use serde::{Deserialize, Serialize};
use shmq::{GetError, Options, Queue, Segment};

/// The environment variable that holds a child's [`Role`] as JSON.
pub const CHILD_ENV: &str = "SHMQ_CLI_CHILD";
/// The environment variable that pins a child to one CPU (set by a pinning [`Launcher`]).
pub const CPU_ENV: &str = "SHMQ_CLI_CPU";
/// The second check word of a message is its sequence number xor this.
pub const TAIL_MAGIC: u64 = 0x5EED_5EED_0BAD_F00D;
/// The smallest message a workload sends (room for the sequence number).
pub const MIN_SIZE: usize = 8;
/// The largest message an OS pipe writes atomically (`PIPE_BUF` on Linux).
pub const PIPE_BUF: usize = 4096;

const READY: &str = "SHMQ-READY";
const REPORT: &str = "SHMQ-REPORT ";

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
}

/// How a stream (OS pipe) carries messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Framing {
    /// A 4-byte little-endian length, then the payload, in one `write`; read through a buffer.
    LengthPrefixed,
    /// Every message exactly `size` bytes (at most [`PIPE_BUF`]), one `write` and one `read`
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
    /// Locks and unlocks the robust mutex at `offset` of segment `segment` `count` times.
    LockHammer {
        segment: String,
        offset: usize,
        count: u64,
    },
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
    fn add(&mut self, seq: u64) {
        self.count += 1;
        self.checksum = self.checksum.wrapping_add(mix(seq));
    }

    fn merge(&mut self, other: Tally) {
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

/// A message template of `size` bytes with a recognisable filler.
fn template(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i % 251) as u8).collect()
}

// ---------------------------------------------------------------------------------------------
// Child side
// ---------------------------------------------------------------------------------------------

/// Runs the role in [`CHILD_ENV`] if the variable is set, and exits the process; returns if it
/// is not set. Call it first thing in `main` of a binary that serves as its own child.
pub fn run_child_if_requested() {
    if std::env::var_os(CHILD_ENV).is_some() {
        let code = match run_child() {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("shmq child: {e:#}");
                1
            }
        };
        std::process::exit(code);
    }
}

/// Runs the role described by [`CHILD_ENV`].
///
/// # Errors
///
/// A missing or malformed role, or whatever the role fails with (a failed check included).
pub fn run_child() -> Result<()> {
    let spec = std::env::var(CHILD_ENV).with_context(|| format!("{CHILD_ENV} is not set"))?;
    let role: Role = serde_json::from_str(&spec).context("malformed child role")?;
    if let Ok(cpu) = std::env::var(CPU_ENV) {
        let cpu: usize = cpu
            .parse()
            .with_context(|| format!("bad {CPU_ENV} {cpu:?}"))?;
        let mut set = rustix::thread::CpuSet::new();
        set.set(cpu);
        rustix::thread::sched_setaffinity(None, &set)
            .with_context(|| format!("pinning to CPU {cpu}"))?;
    }
    run_role(role)
}

fn ready() {
    eprintln!("{READY}");
}

fn report<T: Serialize>(value: &T) -> Result<()> {
    eprintln!("{REPORT}{}", serde_json::to_string(value)?);
    Ok(())
}

fn wait_gate(gate: &str) -> Result<()> {
    let g = Queue::open(gate).with_context(|| format!("opening gate {gate}"))?;
    ready();
    g.get().context("waiting at the gate")?;
    Ok(())
}

fn run_role(role: Role) -> Result<()> {
    match role {
        Role::ShmqProducer {
            queue,
            gate,
            api,
            size,
            first,
            count,
        } => {
            let q = Queue::open(&queue).with_context(|| format!("opening {queue}"))?;
            wait_gate(&gate)?;
            shmq_produce(&q, api, size, first, count)
        }
        Role::ShmqConsumer { queue, api, size } => {
            let q = Queue::open(&queue).with_context(|| format!("opening {queue}"))?;
            ready();
            let tally = shmq_consume(&q, api, size);
            if tally.is_err() {
                // Producers would otherwise wait on a full queue forever: closing it makes
                // their puts fail, so the whole run ends with this error.
                let _ = q.close();
            }
            report(&tally?)
        }
        Role::PipeProducer {
            gate,
            framing,
            size,
            first,
            count,
        } => {
            wait_gate(&gate)?;
            pipe_produce(framing, size, first, count)
        }
        Role::PipeConsumer { framing, size } => {
            ready();
            report(&pipe_consume(framing, size)?)
        }
        Role::SocketProducer {
            gate,
            size,
            first,
            count,
        } => {
            wait_gate(&gate)?;
            socket_produce(size, first, count)
        }
        Role::SocketConsumer { size } => {
            ready();
            report(&socket_consume(size)?)
        }
        Role::PingClient {
            transport,
            size,
            warmup,
            count,
        } => {
            let mut link = Link::open(&transport)?;
            ready();
            report(&ping(&mut link, size, warmup, count)?)
        }
        Role::PingEcho { transport, size } => {
            let mut link = Link::open(&transport)?;
            ready();
            echo(&mut link, size)
        }
        Role::LockHammer {
            segment,
            offset,
            count,
        } => {
            let seg = Segment::open_raw(&segment).with_context(|| format!("opening {segment}"))?;
            let m = seg.mutex_at(offset)?;
            ready();
            for _ in 0..count {
                drop(m.lock()?);
            }
            Ok(())
        }
    }
}

fn shmq_produce(q: &Queue, api: ShmqApi, size: usize, first: u64, count: u64) -> Result<()> {
    let tpl = template(size);
    match api {
        ShmqApi::Single => {
            let mut buf = tpl;
            for seq in first..first + count {
                stamp(&mut buf, seq);
                q.put(&buf[..]).map_err(|e| anyhow!("put: {e}"))?;
            }
        }
        ShmqApi::ZeroCopy => {
            for seq in first..first + count {
                q.put_with(|slot| {
                    let m = &mut slot[..size];
                    m.copy_from_slice(&tpl);
                    stamp(m, seq);
                    size
                })
                .map_err(|e| anyhow!("put_with: {e}"))?;
            }
        }
        ShmqApi::Batch(k) => {
            let mut batch = vec![tpl; k.max(1)];
            let mut seq = first;
            while seq < first + count {
                let n = (first + count - seq).min(batch.len() as u64) as usize;
                for m in &mut batch[..n] {
                    stamp(m, seq);
                    seq += 1;
                }
                q.put_many(&batch[..n])
                    .map_err(|e| anyhow!("put_many: {e}"))?;
            }
        }
    }
    Ok(())
}

fn shmq_consume(q: &Queue, api: ShmqApi, size: usize) -> Result<Tally> {
    let mut t = Tally::default();
    let mut bad: Option<anyhow::Error> = None;
    let end = |r: Result<(), GetError>| -> Result<bool> {
        match r {
            Ok(()) => Ok(true),
            Err(GetError::Closed) => Ok(false),
            Err(e) => Err(anyhow!("get: {e}")),
        }
    };
    match api {
        ShmqApi::Single => {
            let mut buf = vec![0u8; q.message_size()];
            loop {
                let r = q.get_into(&mut buf).map(|n| {
                    match check(&buf[..n], size) {
                        Ok(s) => t.add(s),
                        Err(e) => bad = Some(e),
                    };
                });
                if !end(r)? {
                    break;
                }
            }
        }
        ShmqApi::ZeroCopy => loop {
            let r = q.get_with(|m| check(m, size)).map(|r| match r {
                Ok(s) => t.add(s),
                Err(e) => bad = Some(e),
            });
            if !end(r)? {
                break;
            }
        },
        ShmqApi::Batch(k) => loop {
            let r = q
                .get_many_with(k.max(1), |m| match check(m, size) {
                    Ok(s) => t.add(s),
                    Err(e) => bad = Some(e),
                })
                .map(|_| ());
            if !end(r)? {
                break;
            }
        },
    }
    match bad {
        Some(e) => Err(e),
        None => Ok(t),
    }
}

/// Reads and writes a file descriptor with one system call per call: std's `Stdin` and
/// `Stdout` buffer (and `Stdout` flushes at every newline byte), which would change what a
/// pipe benchmark measures and would break atomic fixed-size reads.
struct FdIo<'a>(BorrowedFd<'a>);

impl Read for FdIo<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        Ok(rustix::io::read(self.0, buf)?)
    }
}

impl Write for FdIo<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Ok(rustix::io::write(self.0, buf)?)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn pipe_produce(framing: Framing, size: usize, first: u64, count: u64) -> Result<()> {
    let stdout = std::io::stdout();
    let mut out = FdIo(stdout.as_fd());
    let mut buf = Vec::with_capacity(size + 4);
    if framing == Framing::LengthPrefixed {
        buf.extend_from_slice(&(size as u32).to_le_bytes());
    }
    let at = buf.len();
    buf.extend_from_slice(&template(size));
    for seq in first..first + count {
        stamp(&mut buf[at..], seq);
        write_all_unbuffered(&mut out, &buf)?;
    }
    Ok(())
}

fn write_all_unbuffered(out: &mut impl Write, mut buf: &[u8]) -> Result<()> {
    while !buf.is_empty() {
        match out.write(buf) {
            Ok(0) => bail!("the reader is gone"),
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

fn pipe_consume(framing: Framing, size: usize) -> Result<Tally> {
    let mut t = Tally::default();
    let stdin = std::io::stdin();
    match framing {
        Framing::LengthPrefixed => {
            let mut r = BufReader::with_capacity(64 * 1024, FdIo(stdin.as_fd()));
            let mut buf = vec![0u8; size];
            loop {
                let mut len = [0u8; 4];
                if !read_exact_or_eof(&mut r, &mut len)? {
                    break;
                }
                let n = u32::from_le_bytes(len) as usize;
                ensure!(n == size, "frame of {n} bytes, expected {size}");
                r.read_exact(&mut buf)?;
                t.add(check(&buf, size)?);
            }
        }
        Framing::Fixed => {
            // Unbuffered: every `read` takes exactly one message, so readers can share the pipe.
            let mut r = FdIo(stdin.as_fd());
            let mut buf = vec![0u8; size];
            loop {
                let n = loop {
                    match r.read(&mut buf) {
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        other => break other?,
                    }
                };
                if n == 0 {
                    break;
                }
                ensure!(n == size, "read {n} bytes from the pipe, expected {size}");
                t.add(check(&buf, size)?);
            }
        }
    }
    Ok(t)
}

/// Fills `buf`, or returns false on a clean end-of-file before its first byte.
fn read_exact_or_eof(r: &mut impl Read, buf: &mut [u8]) -> Result<bool> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) if got == 0 => return Ok(false),
            Ok(0) => bail!("end of stream inside a message"),
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(true)
}

fn socket_send(fd: impl AsFd, buf: &[u8]) -> Result<()> {
    loop {
        match rustix::net::send(fd.as_fd(), buf, rustix::net::SendFlags::empty()) {
            Ok(n) if n == buf.len() => return Ok(()),
            Ok(n) => bail!("short send of {n} of {} bytes", buf.len()),
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// Receives one packet; 0 means the peer closed its end (every message has at least 8 bytes).
fn socket_recv(fd: impl AsFd, buf: &mut [u8]) -> Result<usize> {
    loop {
        match rustix::net::recv(fd.as_fd(), &mut *buf, rustix::net::RecvFlags::empty()) {
            Ok((n, full)) => {
                ensure!(n == full, "packet of {full} bytes truncated to {n}");
                return Ok(n);
            }
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

fn socket_produce(size: usize, first: u64, count: u64) -> Result<()> {
    let sock = std::io::stdin();
    let mut buf = template(size);
    for seq in first..first + count {
        stamp(&mut buf, seq);
        socket_send(&sock, &buf)?;
    }
    Ok(())
}

fn socket_consume(size: usize) -> Result<Tally> {
    let sock = std::io::stdin();
    let mut t = Tally::default();
    let mut buf = vec![0u8; size + 1];
    loop {
        let n = socket_recv(&sock, &mut buf)?;
        if n == 0 {
            return Ok(t);
        }
        t.add(check(&buf[..n], size)?);
    }
}

/// One side of a ping-pong connection (one per process, so its size does not matter).
#[allow(clippy::large_enum_variant)]
enum Link {
    Shmq {
        tx: Queue,
        rx: Queue,
    },
    Pipe {
        input: std::io::Stdin,
        output: std::io::Stdout,
    },
    Socket,
}

impl Link {
    /// Opens the client's side (the echo's side swaps the queues in [`echo`]).
    fn open(t: &Transport) -> Result<Link> {
        Ok(match t {
            Transport::Shmq { ping, pong } => Link::Shmq {
                tx: Queue::open(ping).with_context(|| format!("opening {ping}"))?,
                rx: Queue::open(pong).with_context(|| format!("opening {pong}"))?,
            },
            Transport::Pipe => Link::Pipe {
                input: std::io::stdin(),
                output: std::io::stdout(),
            },
            Transport::Socket => Link::Socket,
        })
    }

    /// Sends on `tx` for the client, on `rx` for the echo (`reverse`).
    fn send(&mut self, msg: &[u8], reverse: bool) -> Result<()> {
        match self {
            Link::Shmq { tx, rx } => {
                let q = if reverse { rx } else { tx };
                q.put(msg).map_err(|e| anyhow!("put: {e}"))
            }
            Link::Pipe { output, .. } => {
                let mut frame = Vec::with_capacity(msg.len() + 4);
                frame.extend_from_slice(&(msg.len() as u32).to_le_bytes());
                frame.extend_from_slice(msg);
                write_all_unbuffered(&mut FdIo(output.as_fd()), &frame)
            }
            Link::Socket => socket_send(std::io::stdin(), msg),
        }
    }

    /// Receives one message into `buf` (one byte longer than the messages, so that a longer
    /// packet is noticed); `Ok(None)` at the end of the conversation.
    fn recv(&mut self, buf: &mut [u8], reverse: bool) -> Result<Option<usize>> {
        match self {
            Link::Shmq { tx, rx } => {
                let q = if reverse { tx } else { rx };
                match q.get_into(buf) {
                    Ok(n) => Ok(Some(n)),
                    Err(GetError::Closed) => Ok(None),
                    Err(e) => Err(anyhow!("get: {e}")),
                }
            }
            Link::Pipe { input, .. } => {
                // One `read` for the whole frame (the size is fixed in a ping-pong), unbuffered:
                // a round trip carries one message, there is nothing to read ahead.
                let size = buf.len() - 1;
                let mut frame = vec![0u8; 4 + size];
                if !read_exact_or_eof(&mut FdIo(input.as_fd()), &mut frame)? {
                    return Ok(None);
                }
                let n = u32::from_le_bytes([frame[0], frame[1], frame[2], frame[3]]) as usize;
                ensure!(n == size, "frame of {n} bytes, expected {size}");
                buf[..n].copy_from_slice(&frame[4..]);
                Ok(Some(n))
            }
            Link::Socket => match socket_recv(std::io::stdin(), buf)? {
                0 => Ok(None),
                n => Ok(Some(n)),
            },
        }
    }

    /// Ends the conversation so that the echo returns.
    fn close(&mut self) {
        if let Link::Shmq { tx, .. } = self {
            let _ = tx.close();
        }
    }
}

fn ping(link: &mut Link, size: usize, warmup: u64, count: u64) -> Result<PingReport> {
    let mut msg = template(size);
    let mut back = vec![0u8; size + 1];
    let mut samples = Vec::with_capacity(count as usize);
    let mut start = Instant::now();
    for seq in 0..warmup + count {
        if seq == warmup {
            start = Instant::now();
        }
        stamp(&mut msg, seq);
        let t = Instant::now();
        link.send(&msg, false)?;
        let n = link
            .recv(&mut back, false)?
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
    link.close();
    samples.sort_unstable();
    let pct = |p: usize| samples.get(samples.len() * p / 100).copied().unwrap_or(0);
    Ok(PingReport {
        count,
        elapsed_ns: elapsed.as_nanos() as u64,
        p50_ns: pct(50),
        p99_ns: pct(99),
    })
}

fn echo(link: &mut Link, size: usize) -> Result<()> {
    let mut buf = vec![0u8; size + 1];
    while let Some(n) = link.recv(&mut buf, true)? {
        link.send(&buf[..n], true)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Parent side
// ---------------------------------------------------------------------------------------------

/// How to start a child: an executable and the arguments that make it call [`run_child`] (the
/// role itself travels in [`CHILD_ENV`]).
#[derive(Debug, Clone)]
pub struct Launcher {
    exe: PathBuf,
    args: Vec<OsString>,
    pin: bool,
}

impl Launcher {
    /// Children run `exe args..` with the role in the environment.
    pub fn new(exe: PathBuf, args: Vec<OsString>) -> Launcher {
        Launcher {
            exe,
            args,
            pin: false,
        }
    }

    /// With `pin`, every sending side (producers, the ping client, the parent's lock hammer
    /// peer excepted) runs on CPU 0 and every receiving side on CPU 1, so that a run measures
    /// the cross-CPU case rather than wherever the scheduler happens to place the processes.
    pub fn pinned(mut self, pin: bool) -> Launcher {
        self.pin = pin;
        self
    }

    fn cpu_for(role: &Role) -> usize {
        match role {
            Role::ShmqProducer { .. }
            | Role::PipeProducer { .. }
            | Role::SocketProducer { .. }
            | Role::PingClient { .. } => 0,
            _ => 1,
        }
    }

    /// Children run the current executable with `args`.
    ///
    /// # Errors
    ///
    /// If the path of the current executable is unknown.
    pub fn current_exe(args: &[&str]) -> Result<Launcher> {
        let exe = std::env::current_exe().context("locating the current executable")?;
        Ok(Launcher::new(
            exe,
            args.iter().map(OsString::from).collect(),
        ))
    }

    fn spawn(&self, role: &Role, stdin: Stdio, stdout: Stdio) -> Result<Proc> {
        let mut cmd = Command::new(&self.exe);
        if self.pin {
            cmd.env(CPU_ENV, Self::cpu_for(role).to_string());
        }
        let mut child = cmd
            .args(&self.args)
            .env(CHILD_ENV, serde_json::to_string(role)?)
            .stdin(stdin)
            .stdout(stdout)
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", self.exe.display()))?;
        let err = child
            .stderr
            .take()
            .map(BufReader::new)
            .ok_or_else(|| anyhow!("child without stderr"))?;
        Ok(Proc {
            child,
            err,
            what: role_name(role),
            log: String::new(),
        })
    }
}

fn role_name(role: &Role) -> String {
    serde_json::to_value(role)
        .ok()
        .and_then(|v| v.get("role").and_then(|r| r.as_str()).map(str::to_owned))
        .unwrap_or_else(|| "child".into())
}

/// A running child and its stderr.
struct Proc {
    child: Child,
    err: BufReader<ChildStderr>,
    what: String,
    log: String,
}

impl Proc {
    /// Reads stderr up to the next protocol line starting with `tag`; returns its rest.
    fn expect(&mut self, tag: &str) -> Result<String> {
        let mut line = String::new();
        loop {
            line.clear();
            if self.err.read_line(&mut line)? == 0 {
                let status = self.child.wait()?;
                bail!(
                    "{} exited ({status}) before {}: {}",
                    self.what,
                    tag.trim(),
                    self.log.trim()
                );
            }
            if let Some(rest) = line.strip_prefix(tag) {
                return Ok(rest.trim_end().to_owned());
            }
            self.log.push_str(&line);
        }
    }

    fn ready(&mut self) -> Result<()> {
        self.expect(READY).map(drop)
    }

    fn report<T: for<'de> Deserialize<'de>>(&mut self) -> Result<T> {
        let json = self.expect(REPORT)?;
        serde_json::from_str(&json).with_context(|| format!("bad report from {}", self.what))
    }

    /// Waits for the exit; an error if it failed.
    fn finish(mut self) -> Result<()> {
        let mut rest = String::new();
        self.err.read_to_string(&mut rest)?;
        self.log.push_str(&rest);
        let status = self.child.wait()?;
        ensure!(
            status.success(),
            "{} failed ({status}): {}",
            self.what,
            self.log.trim()
        );
        Ok(())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // A child left running after an error would hold its end of a pipe or a queue forever.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A named queue that is unlinked when dropped.
struct Named {
    name: String,
    queue: Queue,
}

impl Named {
    fn create(tag: &str, capacity: usize, message_size: usize) -> Result<Named> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "shmq-bench-{}-{}-{tag}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let queue = Queue::create(
            &name,
            &Options {
                capacity,
                message_size,
                ..Options::default()
            },
        )
        .with_context(|| format!("creating {name}"))?;
        Ok(Named { name, queue })
    }
}

impl Drop for Named {
    fn drop(&mut self) {
        let _ = Queue::unlink(&self.name);
    }
}

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
}

impl Mechanism {
    /// The name used in tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Shmq(ShmqApi::Single) => "shmq",
            Mechanism::Shmq(ShmqApi::Batch(_)) => "shmq-batch",
            Mechanism::Shmq(ShmqApi::ZeroCopy) => "shmq-zero-copy",
            Mechanism::Pipe => "pipe",
            Mechanism::Socket => "socket",
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

/// The slots of a benchmark queue: about 1 MiB of payload, between 16 and 1024 slots.
pub fn queue_capacity(size: usize) -> usize {
    ((1 << 20) / size.max(1)).clamp(16, 1024)
}

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
                self.mechanism != Mechanism::Socket,
                "a socket pair has one process per side"
            );
            ensure!(
                self.mechanism != Mechanism::Pipe || self.size <= PIPE_BUF,
                "several processes share a pipe only with messages of at most {PIPE_BUF} bytes"
            );
        }
        let gate = Named::create("gate", self.producers.max(1), 8)?;
        let shares = split(self.count, self.producers);
        let mut consumers = Vec::new();
        let mut producers = Vec::new();
        let mut queue = None;
        match self.mechanism {
            Mechanism::Shmq(api) => {
                let q = Named::create("q", queue_capacity(self.size), self.size)?;
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

/// `(first, count)` for each of `n` producers, covering `0..total`.
fn split(total: u64, n: usize) -> Vec<(u64, u64)> {
    let n = n.max(1) as u64;
    (0..n)
        .map(|i| {
            let first = total * i / n;
            (first, total * (i + 1) / n - first)
        })
        .collect()
}

/// An OS pipe `(read end, write end)`, close-on-exec (a child gets an end only as its stdio).
fn os_pipe() -> Result<(OwnedFd, OwnedFd)> {
    use rustix::pipe::{PipeFlags, pipe_with};
    Ok(pipe_with(PipeFlags::CLOEXEC)?)
}

fn socket_pair() -> Result<(OwnedFd, OwnedFd)> {
    use rustix::net::{AddressFamily, SocketFlags, SocketType, socketpair};
    Ok(socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )?)
}

/// What a ping-pong runs over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PingOver {
    /// Two shmq queues.
    Shmq,
    /// Two OS pipes.
    Pipe,
    /// A `SOCK_SEQPACKET` socket pair.
    Socket,
}

impl PingOver {
    /// The name used in tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            PingOver::Shmq => "shmq",
            PingOver::Pipe => "pipe",
            PingOver::Socket => "socket",
        }
    }
}

/// Runs `warmup + count` round trips of `size`-byte messages between two child processes.
///
/// # Errors
///
/// A child that fails, or an echo that comes back wrong.
pub fn ping_pong(
    launcher: &Launcher,
    over: PingOver,
    size: usize,
    warmup: u64,
    count: u64,
) -> Result<PingReport> {
    ensure!(size >= MIN_SIZE, "messages need at least {MIN_SIZE} bytes");
    let (client, echo) = match over {
        PingOver::Shmq => {
            let ping = Named::create("ping", 4, size)?;
            let pong = Named::create("pong", 4, size)?;
            let transport = Transport::Shmq {
                ping: ping.name.clone(),
                pong: pong.name.clone(),
            };
            let echo = launcher.spawn(
                &Role::PingEcho {
                    transport: transport.clone(),
                    size,
                },
                Stdio::null(),
                Stdio::null(),
            )?;
            let client = launcher.spawn(
                &Role::PingClient {
                    transport,
                    size,
                    warmup,
                    count,
                },
                Stdio::null(),
                Stdio::null(),
            )?;
            return finish_ping(client, echo, (ping, pong));
        }
        PingOver::Pipe => {
            let (to_echo_r, to_echo_w) = os_pipe()?;
            let (to_client_r, to_client_w) = os_pipe()?;
            let echo = launcher.spawn(
                &Role::PingEcho {
                    transport: Transport::Pipe,
                    size,
                },
                to_echo_r.into(),
                to_client_w.into(),
            )?;
            let client = launcher.spawn(
                &Role::PingClient {
                    transport: Transport::Pipe,
                    size,
                    warmup,
                    count,
                },
                to_client_r.into(),
                to_echo_w.into(),
            )?;
            (client, echo)
        }
        PingOver::Socket => {
            let (a, b) = socket_pair()?;
            let echo = launcher.spawn(
                &Role::PingEcho {
                    transport: Transport::Socket,
                    size,
                },
                b.into(),
                Stdio::null(),
            )?;
            let client = launcher.spawn(
                &Role::PingClient {
                    transport: Transport::Socket,
                    size,
                    warmup,
                    count,
                },
                a.into(),
                Stdio::null(),
            )?;
            (client, echo)
        }
    };
    finish_ping(client, echo, ())
}

fn finish_ping<K>(mut client: Proc, mut echo: Proc, keep: K) -> Result<PingReport> {
    echo.ready()?;
    client.ready()?;
    let r: PingReport = client.report()?;
    client.finish()?;
    echo.finish()?;
    drop(keep);
    ensure!(r.count > 0, "no round trip was timed");
    Ok(r)
}

/// A robust mutex in a fresh named segment that other processes can lock, for the lock
/// benchmarks; the segment is unlinked on drop (it is never published as a queue).
#[derive(Debug)]
pub struct SharedMutex {
    name: String,
    seg: shmq::Fresh,
}

/// Where [`SharedMutex`] places its mutex.
const MUTEX_OFFSET: usize = 4096;

impl SharedMutex {
    /// Creates the segment and initialises the mutex.
    ///
    /// # Errors
    ///
    /// If the segment cannot be created.
    pub fn create() -> Result<SharedMutex> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "shmq-bench-{}-{}-mutex",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let seg = Segment::create(&name, 2 * MUTEX_OFFSET as u64, 0o600)?;
        seg.init_mutex(MUTEX_OFFSET)?;
        Ok(SharedMutex { name, seg })
    }

    /// The mutex.
    ///
    /// # Errors
    ///
    /// Never in practice (the offset is fixed and valid).
    pub fn mutex(&self) -> Result<&shmq::RawMutex> {
        Ok(self.seg.mutex_at(MUTEX_OFFSET)?)
    }

    /// Runs `ours` in this process while a child locks and unlocks the same mutex `count`
    /// times; returns the time `ours` took.
    ///
    /// # Errors
    ///
    /// If the child fails.
    pub fn contended(
        &self,
        launcher: &Launcher,
        count: u64,
        ours: impl FnOnce(&shmq::RawMutex) -> Result<()>,
    ) -> Result<Duration> {
        let mut child = launcher.spawn(
            &Role::LockHammer {
                segment: self.name.clone(),
                offset: MUTEX_OFFSET,
                count,
            },
            Stdio::null(),
            Stdio::null(),
        )?;
        child.ready()?;
        let start = Instant::now();
        ours(self.mutex()?)?;
        let elapsed = start.elapsed();
        child.finish()?;
        Ok(elapsed)
    }
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
