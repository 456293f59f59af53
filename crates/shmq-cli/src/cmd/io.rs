//! Moving messages from the command line: `put`, `get`, `task-done` and `join`, with the three
//! framings of messages on stdin and stdout (lines, NUL-separated, length-prefixed).

use std::io::{BufRead, IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use shmq::{GetTimeoutError, JoinError, PutError, Queue, TaskDoneError, TryPutError};

use super::admin::open_queue;
use super::{Outcome, parse_duration};

/// How messages are delimited on stdin (`put`) and stdout (`get`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::Args)]
#[group(multiple = false)]
pub(crate) struct Framing {
    /// Messages end with a NUL byte instead of a newline (as `find -print0`, `xargs -0`).
    #[arg(long, short = '0')]
    null: bool,
    /// Binary framing: each message is a 4-byte little-endian length, then that many bytes.
    #[arg(long)]
    raw: bool,
}

impl Framing {
    /// Writes the frame of one message to `out` (a large message is not copied first).
    fn write(self, out: &mut impl Write, msg: &[u8]) -> std::io::Result<()> {
        if self.raw {
            let len = u32::try_from(msg.len()).map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "a message of {} bytes does not fit --raw's 4-byte length",
                        msg.len()
                    ),
                )
            })?;
            out.write_all(&len.to_le_bytes())?;
            out.write_all(msg)
        } else {
            out.write_all(msg)?;
            out.write_all(if self.null { b"\0" } else { b"\n" })
        }
    }

    /// Reads the next message from `input`; `None` at a clean end of input.
    fn read(self, input: &mut impl BufRead) -> Result<Option<Vec<u8>>> {
        if self.raw {
            let mut len = [0u8; 4];
            let mut got = 0;
            while got < 4 {
                match input.read(&mut len[got..])? {
                    0 if got == 0 => return Ok(None),
                    0 => bail!("the input ends inside a length prefix"),
                    n => got += n,
                }
            }
            let n = u32::from_le_bytes(len) as usize;
            let mut msg = vec![0u8; n];
            input
                .read_exact(&mut msg)
                .with_context(|| format!("the input ends inside a message of {n} bytes"))?;
            return Ok(Some(msg));
        }
        let end = if self.null { 0 } else { b'\n' };
        let mut msg = Vec::new();
        if input.read_until(end, &mut msg)? == 0 {
            return Ok(None);
        }
        if msg.last() == Some(&end) {
            msg.pop();
        }
        Ok(Some(msg))
    }
}

#[derive(Debug, clap::Args)]
pub(crate) struct PutArgs {
    /// Queue name.
    name: String,
    /// The message; without it, messages are read from stdin (one per line, or per --null or
    /// --raw frame).
    msg: Option<String>,
    /// Give up if a message finds no room within this long (e.g. 1s, 250ms).
    #[arg(long, value_parser = parse_duration, conflicts_with = "nowait")]
    timeout: Option<Duration>,
    /// Give up at once if the queue is full (Python's put_nowait).
    #[arg(long)]
    nowait: bool,
    #[command(flatten)]
    framing: Framing,
}

/// How long a put may wait.
#[derive(Clone, Copy)]
enum PutWait {
    Forever,
    Until(Instant),
    Never,
}

pub(crate) fn put(a: &PutArgs) -> Result<Outcome> {
    let q = open_queue(&a.name)?;
    let wait = match (a.nowait, a.timeout) {
        (true, _) => PutWait::Never,
        (false, Some(t)) => Instant::now()
            .checked_add(t)
            .map_or(PutWait::Forever, PutWait::Until),
        (false, None) => PutWait::Forever,
    };
    let mut told = false;
    let mut n = 0usize;
    let mut one = |msg: Vec<u8>| -> Result<()> {
        put_one(&q, &a.name, msg, wait, &mut told).with_context(|| {
            format!("{n} message(s) put before this one; it and any after it were not put")
        })?;
        n += 1;
        Ok(())
    };
    match &a.msg {
        Some(m) => one(m.as_bytes().to_vec())?,
        None => {
            let mut input = std::io::stdin().lock();
            while let Some(msg) = a.framing.read(&mut input)? {
                one(msg)?;
            }
        }
    }
    if told {
        eprintln!("put {n} message(s) into {}", a.name);
    }
    Ok(Outcome::Done)
}

/// Puts one message; says once on stderr that it waits, if stderr is a terminal.
fn put_one(q: &Queue, name: &str, msg: Vec<u8>, wait: PutWait, told: &mut bool) -> Result<()> {
    let msg = match q.try_put(msg) {
        Ok(()) => return Ok(()),
        Err(TryPutError::Full(m)) => m,
        Err(e) => return Err(anyhow!("{e}")),
    };
    if let PutWait::Never = wait {
        bail!("{name} is full (capacity {})", q.capacity());
    }
    if !*told && std::io::stderr().is_terminal() {
        eprintln!(
            "shmq: {name} is full (capacity {}): waiting for room (Ctrl-C to give up)",
            q.capacity()
        );
        *told = true;
    }
    match wait {
        PutWait::Until(deadline) => match q.put_deadline(msg, deadline) {
            Ok(()) => Ok(()),
            Err(shmq::PutTimeoutError::Timeout(_)) => {
                bail!("{name} stayed full until the timeout")
            }
            Err(e) => Err(anyhow!("{e}")),
        },
        _ => q.put(msg).map_err(|e: PutError<Vec<u8>>| anyhow!("{e}")),
    }
}

#[derive(Debug, clap::Args)]
pub(crate) struct GetArgs {
    /// Queue name.
    name: String,
    /// Wait at most this long for each message (e.g. 250ms, 2s, 1m30s); without it, wait as
    /// long as it takes.
    #[arg(long, value_parser = parse_duration, conflicts_with = "nowait")]
    timeout: Option<Duration>,
    /// Take only what is there now: stop at once when the queue is empty (Python's get_nowait).
    #[arg(long)]
    nowait: bool,
    /// How many messages to take (at least 1).
    #[arg(long, default_value_t = 1, value_parser = parse_count, conflicts_with = "until_closed")]
    count: u64,
    /// Take every message until the queue is closed and drained (exit 0 then), however many.
    #[arg(long)]
    until_closed: bool,
    /// Mark each message's task done once it is written (JoinableQueue's task_done).
    #[arg(long)]
    task_done: bool,
    #[command(flatten)]
    framing: Framing,
}

/// `--count`: a positive number.
fn parse_count(s: &str) -> Result<u64, String> {
    match s.parse::<u64>() {
        Ok(0) => Err(
            "must be at least 1 (--until-closed takes every message until the queue is \
                      closed)"
                .into(),
        ),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("{e}")),
    }
}

/// Takes up to `count` messages (or, with `--until-closed`, all until the queue is closed and
/// drained) and writes each to stdout. A message is removed from the queue only once it is
/// delivered: written and flushed, and, when stdout is a pipe, read by the reader. If stdout
/// fails or the reader goes away first (`shmq get q --count 16 | head -1`), that message stays
/// at the front of the queue and the command fails. When it stops short of `count`, one line on
/// stderr says why (timeout, empty with `--nowait`, closed and drained).
pub(crate) fn get(a: &GetArgs) -> Result<Outcome> {
    let q = open_queue(&a.name)?;
    let stdout = std::io::stdout();
    let pipe = stdout_is_pipe();
    let want = if a.until_closed { u64::MAX } else { a.count };
    // "took 2 of 5" or, until the queue closes, "took 2".
    let took = |got: u64| {
        if a.until_closed {
            format!("took {got}")
        } else {
            format!("took {got} of {want}")
        }
    };
    let mut got = 0u64;
    while got < want {
        if !a.nowait {
            wait_writable(&stdout);
        }
        let deadline = if a.nowait {
            Some(Instant::now())
        } else {
            a.timeout.and_then(|t| Instant::now().checked_add(t))
        };
        let written = q.get_with_or_keep(deadline, |msg| {
            let mut out = stdout.lock();
            a.framing.write(&mut out, msg)?;
            out.flush()?;
            if pipe {
                wait_read(&stdout)?;
            }
            Ok::<(), std::io::Error>(())
        });
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                return Err(anyhow!(e).context(format!(
                    "delivering message {}{} to stdout (it stays in {}; {})",
                    got + 1,
                    if a.until_closed {
                        String::new()
                    } else {
                        format!(" of {want}")
                    },
                    a.name,
                    took(got)
                )));
            }
            Err(GetTimeoutError::Closed) => {
                eprintln!("shmq: {} is closed and drained: {}", a.name, took(got));
                return Ok(if a.until_closed {
                    Outcome::Done
                } else {
                    Outcome::Partial
                });
            }
            Err(GetTimeoutError::Timeout) if a.nowait => {
                eprintln!("shmq: {} is empty: {}", a.name, took(got));
                return Ok(Outcome::Partial);
            }
            Err(GetTimeoutError::Timeout) => {
                let t = a.timeout.map_or_else(String::new, super::show_duration);
                eprintln!("shmq: {}: no message within {t}: {}", a.name, took(got));
                return Ok(Outcome::Partial);
            }
            Err(e) => return Err(e.into()),
        }
        got += 1;
        if a.task_done {
            q.task_done()?;
        }
    }
    Ok(Outcome::Done)
}

/// Whether stdout is a pipe (or FIFO), whose reader may exit without reading what is in it.
fn stdout_is_pipe() -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata("/proc/self/fd/1").is_ok_and(|m| m.file_type().is_fifo())
}

/// Waits (holding no lock) until stdout can take bytes or has failed, so that a get rarely
/// holds the queue's lock while a slow reader makes room.
fn wait_writable(stdout: &std::io::Stdout) {
    use rustix::event::{PollFd, PollFlags, poll};
    let mut fds = [PollFd::new(stdout, PollFlags::OUT)];
    // An error (EINTR) just means we write without waiting: the write reports what is wrong.
    let _ = poll(&mut fds, None);
}

/// Waits until the reader of the pipe on stdout has read everything in it. An error if every
/// reader goes away first: what they left unread goes away with the pipe, so the message that
/// was in it must stay in the queue.
fn wait_read(stdout: &std::io::Stdout) -> std::io::Result<()> {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let mut round = 0u32;
    loop {
        if rustix::io::ioctl_fionread(stdout)? == 0 {
            return Ok(());
        }
        // Asked for no event, poll still reports POLLERR once the pipe has no reader. The first
        // rounds only look (a reader that keeps up reads within microseconds); later ones sleep
        // up to 1 ms each.
        let timeout = Timespec {
            tv_sec: 0,
            tv_nsec: if round < 200 { 0 } else { 1_000_000 },
        };
        let mut fds = [PollFd::new(stdout, PollFlags::empty())];
        match poll(&mut fds, Some(&timeout)) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
        // The reader may have read everything just before it left: only what is still in the
        // pipe is lost with it.
        if fds[0].revents().intersects(PollFlags::ERR | PollFlags::HUP)
            && rustix::io::ioctl_fionread(stdout)? != 0
        {
            return Err(std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "the reader went away without reading it",
            ));
        }
        if round < 200 {
            std::thread::yield_now();
        }
        round = round.saturating_add(1);
    }
}

#[derive(Debug, clap::Args)]
pub(crate) struct TaskDoneArgs {
    /// Queue name.
    name: String,
    /// How many tasks to mark done.
    #[arg(long, default_value_t = 1)]
    count: u64,
}

pub(crate) fn task_done(a: &TaskDoneArgs) -> Result<Outcome> {
    let q = open_queue(&a.name)?;
    for done in 0..a.count {
        match q.task_done() {
            Ok(()) => {}
            Err(TaskDoneError::NoUnfinishedTasks) => bail!(
                "{} has no unfinished task left ({done} of {} marked done)",
                a.name,
                a.count
            ),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Outcome::Done)
}

#[derive(Debug, clap::Args)]
pub(crate) struct JoinArgs {
    /// Queue name.
    name: String,
    /// Wait at most this long (e.g. 10s, 1m30s); without it, wait as long as it takes.
    #[arg(long, value_parser = parse_duration)]
    timeout: Option<Duration>,
}

pub(crate) fn join(a: &JoinArgs) -> Result<Outcome> {
    let q = open_queue(&a.name)?;
    match a.timeout {
        None => q.join()?,
        Some(t) => match q.join_timeout(t) {
            Ok(()) => {}
            Err(JoinError::Timeout) => {
                eprintln!(
                    "shmq: {}: timed out after {} with {} task(s) not done",
                    a.name,
                    super::show_duration(t),
                    q.unfinished()
                );
                return Ok(Outcome::Partial);
            }
            Err(e) => return Err(e.into()),
        },
    }
    Ok(Outcome::Done)
}
