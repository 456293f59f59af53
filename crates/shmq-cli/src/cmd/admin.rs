//! Administration of named segments, in the manner of `ipcs`/`ipcrm`: `create`, `put`, `get`,
//! `close`, `stat`, `ls`, `rm`.

use std::io::BufRead;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use shmq::layout::Kind;
use shmq::{GetTimeoutError, LockState, Options, Pipe, Queue, Segment};
use shmq_dict::{Lock, Options as DictOptions, SharedDict};

/// Where named segments live on Linux.
const SHM_DIR: &str = "/dev/shm";

#[derive(Debug, clap::Subcommand)]
pub(crate) enum CreateKind {
    /// A bounded queue.
    Queue {
        /// Segment name.
        name: String,
        /// How many messages fit.
        #[arg(long, default_value_t = 128)]
        capacity: usize,
        /// The largest message in bytes.
        #[arg(long, default_value_t = 4096)]
        message_size: usize,
        /// Permission bits, octal.
        #[arg(long, default_value = "0600", value_parser = parse_mode)]
        mode: u32,
    },
    /// A shared counter dict.
    Dict {
        /// Segment name.
        name: String,
        /// How many keys fit.
        #[arg(long, default_value_t = 256)]
        capacity: usize,
        /// The longest key in bytes.
        #[arg(long, default_value_t = 64)]
        max_key_len: usize,
        /// Permission bits, octal.
        #[arg(long, default_value = "0600", value_parser = parse_mode)]
        mode: u32,
    },
    /// A named lock.
    Lock {
        /// Segment name.
        name: String,
        /// Permission bits, octal.
        #[arg(long, default_value = "0600", value_parser = parse_mode)]
        mode: u32,
    },
    /// A pipe (refused: see the message).
    Pipe {
        /// Segment name.
        name: String,
    },
}

fn parse_mode(s: &str) -> Result<u32, String> {
    let digits = s.strip_prefix("0o").unwrap_or(s);
    match u32::from_str_radix(digits, 8) {
        Ok(m) if m <= 0o777 => Ok(m),
        _ => Err(format!("invalid mode {s:?} (octal, e.g. 0640)")),
    }
}

pub(crate) fn create(kind: &CreateKind) -> Result<()> {
    match kind {
        CreateKind::Queue {
            name,
            capacity,
            message_size,
            mode,
        } => {
            let q = Queue::create(
                name,
                &Options {
                    capacity: *capacity,
                    message_size: *message_size,
                    mode: *mode,
                },
            )?;
            outln!(
                "created queue {name}: capacity {}, message size {}, {} bytes",
                q.capacity(),
                q.message_size(),
                q.segment().len()
            );
        }
        CreateKind::Dict {
            name,
            capacity,
            max_key_len,
            mode,
        } => {
            let d = SharedDict::create(
                name,
                &DictOptions {
                    capacity: *capacity,
                    max_key_len: *max_key_len,
                    mode: *mode,
                },
            )?;
            outln!(
                "created dict {name}: {} keys of up to {} bytes, {} bytes",
                d.capacity(),
                d.max_key_len(),
                d.segment().len()
            );
        }
        CreateKind::Lock { name, mode } => {
            let l = Lock::create_with(name, shmq::CreationMode::CreateExclusive, *mode)?;
            outln!("created lock {name}: {} bytes", l.segment().len());
        }
        CreateKind::Pipe { name } => bail!(
            "cannot create pipe {name:?} from the command line: a pipe's end is gone for good once \
             no process holds it, so it must be created by a program that keeps its ends"
        ),
    }
    Ok(())
}

/// Reads the kind of a named segment from its header, without blocking on a FIFO or any other
/// non-regular file and without taking a lock, or says why it is not a shmq segment.
fn kind_of(name: &str) -> Result<Kind> {
    Ok(shmq::segment::inspect(name)?.kind())
}

/// A lock's state for `stat`, as words.
fn lock_json(state: &LockState) -> Value {
    match state {
        LockState::Held {
            owner_tid,
            owner_alive,
            repair_pending,
        } => json!({
            "held": true, "owner_tid": owner_tid, "owner_alive": owner_alive,
            "repair_pending": repair_pending, "lock": state.to_string(),
        }),
        other => json!({ "held": false, "lock": other.to_string() }),
    }
}

fn open_queue(name: &str) -> Result<Queue> {
    match kind_of(name)? {
        Kind::Queue => Ok(Queue::open(name)?),
        other => bail!("{name:?} is a {other}, not a queue"),
    }
}

pub(crate) fn put(name: &str, msg: Option<&str>) -> Result<()> {
    let q = open_queue(name)?;
    let mut n = 0;
    match msg {
        Some(m) => {
            q.put(m.as_bytes().to_vec())?;
            n += 1;
        }
        None => {
            for line in std::io::stdin().lock().lines() {
                q.put(line?.into_bytes())?;
                n += 1;
            }
        }
    }
    eprintln!("put {n} message(s) into {name}");
    Ok(())
}

pub(crate) fn get(name: &str, timeout: Option<Duration>, count: usize) -> Result<()> {
    let q = open_queue(name)?;
    for _ in 0..count {
        let msg = match timeout {
            Some(t) => match q.get_timeout(t) {
                Ok(m) => m,
                Err(GetTimeoutError::Timeout) => bail!("no message arrived within {t:?}"),
                Err(e) => return Err(e.into()),
            },
            None => q.get()?,
        };
        outln!("{}", String::from_utf8_lossy(&msg));
    }
    Ok(())
}

pub(crate) fn close(name: &str) -> Result<()> {
    let q = open_queue(name)?;
    q.close()?;
    eprintln!("closed {name}: {} message(s) left to drain", q.len());
    Ok(())
}

/// Everything `stat` knows about a segment, read without taking any lock (so it never waits for
/// a holder, and an owner-died report stays for the next locker).
fn stat_value(name: &str) -> Result<Value> {
    let info = shmq::segment::inspect(name)?;
    let kind = info.kind();
    let p = *info.params();
    let (pid, alive) = info.creator();
    let mut v = json!({
        "name": name,
        "kind": kind.name(),
        "layout_version": info.layout_version(),
        "size": info.size(),
        "creator_pid": pid,
        "creator_alive": alive,
    });
    let extra = match kind {
        Kind::Queue => {
            let q = Queue::open(name)?;
            json!({
                "capacity": q.capacity(), "message_size": q.message_size(),
                "slot_stride": p.slot_stride, "len": q.len(),
                "unfinished": q.unfinished(), "closed": q.is_closed(),
            })
        }
        Kind::Pipe => {
            let i = Pipe::inspect(name)?;
            json!({
                "capacity": i.capacity, "message_size": i.message_size, "duplex": i.duplex,
                "holders_a": i.holders[0], "holders_b": i.holders[1],
                "gone_a": i.gone[0], "gone_b": i.gone[1],
                "queued_a_to_b": i.queued.0, "queued_b_to_a": i.queued.1,
            })
        }
        Kind::Dict => {
            let d = SharedDict::inspect(name)?;
            let mut v = json!({
                "capacity": d.capacity, "max_key_len": d.max_key_len, "len": d.len,
            });
            if let (Value::Object(v), Value::Object(l)) = (&mut v, lock_json(&d.lock)) {
                v.extend(l);
            }
            v
        }
        Kind::Lock => lock_json(&Lock::inspect(name)?),
    };
    if let (Value::Object(v), Value::Object(extra)) = (&mut v, extra) {
        v.extend(extra);
    }
    Ok(v)
}

pub(crate) fn stat(name: &str, as_json: bool) -> Result<()> {
    let v = stat_value(name)?;
    if as_json {
        outln!("{v}");
        return Ok(());
    }
    if let Value::Object(m) = &v {
        for (k, val) in m {
            let shown = match val {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            outln!("{k:<16} {shown}");
        }
    }
    Ok(())
}

/// One row of `ls` (read from the header only: no lock, no blocking on a non-regular file).
fn ls_row(name: &str) -> Option<Value> {
    let info = shmq::segment::inspect(name).ok()?;
    let (pid, alive) = info.creator();
    Some(json!({
        "name": name, "kind": info.kind().name(), "size": info.size(),
        "creator_pid": pid, "creator_alive": alive,
    }))
}

pub(crate) fn ls(as_json: bool) -> Result<()> {
    let mut names: Vec<String> = std::fs::read_dir(SHM_DIR)
        .with_context(|| format!("reading {SHM_DIR}"))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| shmq::segment::validate_name(n).is_ok())
        .collect();
    names.sort();
    let rows: Vec<Value> = names.iter().filter_map(|n| ls_row(n)).collect();
    if as_json {
        for r in &rows {
            outln!("{r}");
        }
        return Ok(());
    }
    outln!(
        "{:<40} {:<6} {:>12} {:>8} CREATOR",
        "NAME",
        "KIND",
        "BYTES",
        "PID"
    );
    for r in &rows {
        outln!(
            "{:<40} {:<6} {:>12} {:>8} {}",
            r["name"].as_str().unwrap_or("?"),
            r["kind"].as_str().unwrap_or("?"),
            r["size"].as_u64().unwrap_or(0),
            r["creator_pid"].as_u64().unwrap_or(0),
            if r["creator_alive"] == Value::Bool(true) {
                "alive"
            } else {
                "gone"
            }
        );
    }
    Ok(())
}

pub(crate) fn rm(names: &[String]) -> Result<()> {
    // Check every name first, so that a typo removes nothing.
    for name in names {
        shmq::segment::check_is_segment(name)?;
    }
    for name in names {
        Segment::unlink(name)?;
        eprintln!("removed {name}");
    }
    Ok(())
}
