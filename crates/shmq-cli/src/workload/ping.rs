//! Ping-pong: round trips between two child processes, over shmq, OS pipes or a socket pair.

use std::os::fd::AsFd;
use std::process::Stdio;
use std::time::Instant;

use anyhow::{Context, Result, anyhow, ensure};
use serde::{Deserialize, Serialize};
use shmq::{GetError, Queue};

use super::MIN_SIZE;
use super::launcher::{Launcher, Named, Proc};
use super::roles::{PingReport, Role, Transport, check, stamp, template};
use super::transports::{
    FdIo, os_pipe, read_exact_or_eof, socket_pair, socket_recv, socket_send, write_all_unbuffered,
};

/// What a ping-pong runs over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PingOver {
    /// Two shmq queues.
    Shmq,
    /// Two shmq queues through the async API (`put_async`/`get_async` on a current-thread
    /// tokio runtime, on both sides).
    ShmqAsync,
    /// Two OS pipes.
    Pipe,
    /// A `SOCK_SEQPACKET` socket pair.
    Socket,
    /// Two floor rings (bench code only).
    Floor,
    /// Two Vyukov rings (bench code only).
    Vyukov,
}

impl PingOver {
    /// The name used in tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            PingOver::Shmq => "shmq",
            PingOver::ShmqAsync => "shmq-async",
            PingOver::Pipe => "pipe",
            PingOver::Socket => "socket",
            PingOver::Floor => "floor",
            PingOver::Vyukov => "vyukov",
        }
    }

    /// Why this transport cannot carry a message of `size` bytes on this machine, or `None` if
    /// it can (as [`Mechanism::refuses`](super::Mechanism::refuses)).
    ///
    /// # Errors
    ///
    /// If asking fails.
    pub fn refuses(self, size: usize) -> Result<Option<String>> {
        match self {
            PingOver::Socket => super::transports::socket_refuses(size),
            _ => Ok(None),
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
        PingOver::Floor => return super::floor::ping_pong(launcher, size, warmup, count),
        PingOver::Vyukov => return super::vyukov::ping_pong(launcher, size, warmup, count),
        PingOver::Shmq | PingOver::ShmqAsync => {
            let ping = Named::create("ping", 4, size)?;
            let pong = Named::create("pong", 4, size)?;
            let (ping_name, pong_name) = (ping.name.clone(), pong.name.clone());
            let transport = if over == PingOver::Shmq {
                Transport::Shmq {
                    ping: ping_name,
                    pong: pong_name,
                }
            } else {
                Transport::ShmqAsync {
                    ping: ping_name,
                    pong: pong_name,
                }
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

/// One side of a ping-pong connection (one per process, so its size does not matter).
#[allow(clippy::large_enum_variant)]
pub(super) enum Link {
    Shmq {
        tx: Queue,
        rx: Queue,
    },
    ShmqAsync {
        tx: Queue,
        rx: Queue,
        rt: tokio::runtime::Runtime,
    },
    Pipe {
        input: std::io::Stdin,
        output: std::io::Stdout,
    },
    Socket,
}

impl Link {
    /// Opens the client's side (the echo's side swaps the queues in [`echo`]).
    pub(super) fn open(t: &Transport) -> Result<Link> {
        Ok(match t {
            Transport::Shmq { ping, pong } => Link::Shmq {
                tx: Queue::open(ping).with_context(|| format!("opening {ping}"))?,
                rx: Queue::open(pong).with_context(|| format!("opening {pong}"))?,
            },
            Transport::ShmqAsync { ping, pong } => Link::ShmqAsync {
                tx: Queue::open(ping).with_context(|| format!("opening {ping}"))?,
                rx: Queue::open(pong).with_context(|| format!("opening {pong}"))?,
                rt: tokio::runtime::Builder::new_current_thread()
                    .build()
                    .context("tokio runtime")?,
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
            Link::ShmqAsync { tx, rx, rt } => {
                let q = if reverse { rx } else { tx };
                rt.block_on(q.put_async(msg))
                    .map_err(|e| anyhow!("put_async: {e}"))
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
            Link::ShmqAsync { tx, rx, rt } => {
                let q = if reverse { tx } else { rx };
                match rt.block_on(q.get_async()) {
                    Ok(m) => {
                        ensure!(m.len() < buf.len(), "message of {} bytes", m.len());
                        buf[..m.len()].copy_from_slice(&m);
                        Ok(Some(m.len()))
                    }
                    Err(GetError::Closed) => Ok(None),
                    Err(e) => Err(anyhow!("get_async: {e}")),
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
        if let Link::Shmq { tx, .. } | Link::ShmqAsync { tx, .. } = self {
            let _ = tx.close();
        }
    }
}

pub(super) fn ping(link: &mut Link, size: usize, warmup: u64, count: u64) -> Result<PingReport> {
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

pub(super) fn echo(link: &mut Link, size: usize) -> Result<()> {
    let mut buf = vec![0u8; size + 1];
    while let Some(n) = link.recv(&mut buf, true)? {
        link.send(&buf[..n], true)?;
    }
    Ok(())
}
