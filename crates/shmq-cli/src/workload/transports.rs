//! How each role moves messages: through a shmq queue, an OS pipe or a Unix socket pair.

use std::io::{BufReader, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use anyhow::{Result, anyhow, bail, ensure};
use shmq::{GetError, Queue};

use super::TAIL_MAGIC;
use super::roles::{Framing, PodMsg, SerdeMsg, ShmqApi, Tally, check, stamp, template};
use shmq::{
    Codec, TypedError, TypedQueue,
    codec::{Pod, Postcard},
};

/// A typed handle on the queue behind `q` (opened again by name; the bench's queues are
/// untyped, so any type opens them).
fn typed<T, C: Codec<T>>(q: &Queue) -> Result<TypedQueue<T, C>> {
    let shmq::substrate::segment::Backing::Named(name) = q.segment().backing() else {
        return Err(anyhow!("the bench queue has no name"));
    };
    TypedQueue::open(name).map_err(|e| anyhow!("open typed {name}: {e}"))
}

pub(super) fn shmq_produce(
    q: &Queue,
    api: ShmqApi,
    size: usize,
    first: u64,
    count: u64,
) -> Result<()> {
    let tpl = template(size);
    match api {
        ShmqApi::Interleaved => return Err(anyhow!("the interleaved api only consumes")),
        ShmqApi::Single | ShmqApi::Large => {
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
        ShmqApi::Pod => {
            let q = typed::<PodMsg, Pod>(q)?;
            for seq in first..first + count {
                let m = PodMsg {
                    seq,
                    body: [seq; 6],
                    tail: seq ^ TAIL_MAGIC,
                };
                q.put(m).map_err(|e| anyhow!("typed put: {e}"))?;
            }
        }
        ShmqApi::Serde => {
            let q = typed::<SerdeMsg, Postcard>(q)?;
            for seq in first..first + count {
                let m = SerdeMsg {
                    seq,
                    account: (seq % 1000) as u32,
                    price: 100.0 + (seq % 64) as f64 * 0.25,
                    quantity: (seq % 500) as u16,
                    buy: seq % 2 == 0,
                    symbol: "SHMQ".to_string(),
                };
                q.put(m).map_err(|e| anyhow!("typed put: {e}"))?;
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

pub(super) fn shmq_consume(q: &Queue, api: ShmqApi, size: usize) -> Result<Tally> {
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
        ShmqApi::Single | ShmqApi::Large => {
            let mut buf = vec![0u8; q.message_size().max(size)];
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
        ShmqApi::Interleaved => {
            let mut buf = vec![0u8; super::roles::INTERLEAVED_LARGE.max(size)];
            loop {
                let r = q.get_into(&mut buf).map(|n| {
                    if n == size {
                        match check(&buf[..n], size) {
                            Ok(s) => t.add(s),
                            Err(e) => bad = Some(e),
                        }
                    } else if let Err(e) = check(&buf[..n], super::roles::INTERLEAVED_LARGE) {
                        bad = Some(e);
                    }
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
        ShmqApi::Pod => {
            let q = typed::<PodMsg, Pod>(q)?;
            loop {
                match q.get() {
                    Ok(m) if m.tail == m.seq ^ TAIL_MAGIC => t.add(m.seq),
                    Ok(m) => bad = Some(anyhow!("pod message {} torn", m.seq)),
                    Err(TypedError::Queue(GetError::Closed)) => break,
                    Err(e) => return Err(anyhow!("typed get: {e}")),
                }
            }
        }
        ShmqApi::Serde => {
            let q = typed::<SerdeMsg, Postcard>(q)?;
            loop {
                match q.get() {
                    Ok(m) if m.symbol == "SHMQ" => t.add(m.seq),
                    Ok(m) => bad = Some(anyhow!("serde message {} wrong", m.seq)),
                    Err(TypedError::Queue(GetError::Closed)) => break,
                    Err(e) => return Err(anyhow!("typed get: {e}")),
                }
            }
        }
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
pub(super) struct FdIo<'a>(pub(super) BorrowedFd<'a>);

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

pub(super) fn pipe_produce(framing: Framing, size: usize, first: u64, count: u64) -> Result<()> {
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

pub(super) fn write_all_unbuffered(out: &mut impl Write, mut buf: &[u8]) -> Result<()> {
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

pub(super) fn pipe_consume(framing: Framing, size: usize) -> Result<Tally> {
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
pub(super) fn read_exact_or_eof(r: &mut impl Read, buf: &mut [u8]) -> Result<bool> {
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

pub(super) fn socket_send(fd: impl AsFd, buf: &[u8]) -> Result<()> {
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
pub(super) fn socket_recv(fd: impl AsFd, buf: &mut [u8]) -> Result<usize> {
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

pub(super) fn socket_produce(size: usize, first: u64, count: u64) -> Result<()> {
    let sock = std::io::stdin();
    let mut buf = template(size);
    for seq in first..first + count {
        stamp(&mut buf, seq);
        socket_send(&sock, &buf)?;
    }
    Ok(())
}

pub(super) fn socket_consume(size: usize) -> Result<Tally> {
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

/// An OS pipe `(read end, write end)`, close-on-exec (a child gets an end only as its stdio).
pub(super) fn os_pipe() -> Result<(OwnedFd, OwnedFd)> {
    use rustix::pipe::{PipeFlags, pipe_with};
    Ok(pipe_with(PipeFlags::CLOEXEC)?)
}

/// Why the socket pair of the socket rows cannot carry one message of `size` bytes, or `None`
/// if it can. The kernel is asked, not a table: one such message is sent on a fresh pair made
/// as the rows make theirs. A Unix `SOCK_SEQPACKET` socket refuses a message larger than its
/// send buffer (`SO_SNDBUF`, from `net.core.wmem_default`) with `EMSGSIZE`.
///
/// # Errors
///
/// If the pair cannot be made, or the send fails for another reason.
pub(super) fn socket_refuses(size: usize) -> Result<Option<String>> {
    use rustix::net::{SendFlags, send, sockopt};
    let (a, _b) = socket_pair()?;
    let msg = vec![0u8; size];
    match send(&a, &msg, SendFlags::DONTWAIT | SendFlags::NOSIGNAL) {
        Ok(_) => Ok(None),
        Err(e @ rustix::io::Errno::MSGSIZE) => {
            let buf = sockopt::socket_send_buffer_size(&a)?;
            Ok(Some(format!(
                "a Unix SOCK_SEQPACKET socket here carries no message of {size} bytes (its \
                 send buffer, SO_SNDBUF, is {buf} bytes): {}",
                std::io::Error::from(e)
            )))
        }
        // A full buffer or a short allocation says nothing about the size: let the row run.
        Err(rustix::io::Errno::AGAIN | rustix::io::Errno::NOBUFS) => Ok(None),
        Err(e) => Err(anyhow!("probing a socket pair with {size} bytes: {e}")),
    }
}

pub(super) fn socket_pair() -> Result<(OwnedFd, OwnedFd)> {
    use rustix::net::{AddressFamily, SocketFlags, SocketType, socketpair};
    Ok(socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )?)
}
