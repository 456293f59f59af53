//! Administration of named segments, in the manner of `ipcs`/`ipcrm`: `create`, `close`, `stat`,
//! `ls`, `rm` and `gc`.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use shmq::substrate::layout::Kind;
use shmq::{Options, Pipe, Queue, substrate::segment::Segment, substrate::sync::LockState};
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
        /// The slot size: the largest message that travels in a slot, in bytes. A larger
        /// message travels in a side segment of its own, which needs slots of at least 32
        /// bytes.
        #[arg(long, default_value_t = 4096)]
        message_size: usize,
        /// The largest message in bytes, from the slot size up to 64 GiB [default: 1 GiB, or
        /// the slot size for slots under 32 bytes].
        #[arg(long)]
        max_message_size: Option<usize>,
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
            max_message_size,
            mode,
        } => {
            let max_message_size = max_message_size_of(*message_size, *max_message_size)?;
            let q = Queue::create(
                name,
                &Options {
                    capacity: *capacity,
                    message_size: *message_size,
                    max_message_size,
                    mode: *mode,
                },
            )
            .map_err(|e| no_space(e, queue_bytes(*capacity, *message_size)))?;
            eprintln!(
                "created queue {name}: capacity {}, message size {}, max message size {}, {} bytes",
                q.capacity(),
                q.message_size(),
                q.max_message_size(),
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
            )
            .map_err(|e| no_space(e, None))?;
            eprintln!(
                "created dict {name}: {} keys of up to {} bytes, {} bytes",
                d.capacity(),
                d.max_key_len(),
                d.segment().len()
            );
        }
        CreateKind::Lock { name, mode } => {
            let l = Lock::create_with(name, shmq::CreationMode::CreateExclusive, *mode)
                .map_err(|e| no_space(e, None))?;
            eprintln!("created lock {name}: {} bytes", l.segment().len());
        }
    }
    Ok(())
}

/// The largest message of a queue with slots of `message_size` bytes: `asked`, checked against
/// each of its bounds by name, or the default. Slots under [`shmq::substrate::large::DESCRIPTOR_LEN`] bytes
/// cannot point to a side segment, so their queue carries no larger message: an error if one
/// was asked for, a line on stderr if not.
fn max_message_size_of(message_size: usize, asked: Option<usize>) -> Result<usize> {
    let min_slot = shmq::substrate::large::DESCRIPTOR_LEN;
    let most = shmq::substrate::large::MAX_LARGE_MESSAGE;
    match asked {
        Some(m) if m < message_size => bail!(
            "--max-message-size {m} is below the slot size (--message-size {message_size}): \
             it must be at least that"
        ),
        Some(m) if m as u64 > most => bail!(
            "--max-message-size {m} is above the largest message a queue carries ({most} bytes)"
        ),
        Some(m) if m > message_size && message_size < min_slot => bail!(
            "--max-message-size {m} needs large messages, which need slots of {min_slot} bytes \
             or more (--message-size {message_size} is smaller): raise --message-size or \
             drop --max-message-size"
        ),
        Some(m) => Ok(m),
        None if message_size < min_slot => {
            eprintln!(
                "shmq: slots of {message_size} bytes cannot carry large messages (they need \
                 slots of {min_slot} bytes or more): the largest message is {message_size} bytes"
            );
            Ok(message_size)
        }
        None => Ok(shmq::substrate::large::DEFAULT_MAX_MESSAGE.max(message_size)),
    }
}

/// The bytes a queue of this geometry reserves in /dev/shm, if the geometry is valid.
fn queue_bytes(capacity: usize, message_size: usize) -> Option<u64> {
    let (_, params) =
        shmq::substrate::layout::queue_layout(capacity as u64, message_size as u64).ok()?;
    Some(params.total_size)
}

/// An error of `create`, with, when /dev/shm is full (`ENOSPC`), how much was asked and how
/// much /dev/shm has.
fn no_space(e: shmq::OpenError, asked: Option<u64>) -> anyhow::Error {
    if e.raw_os_error() != Some(28) {
        return e.into();
    }
    let asked = asked.map_or_else(String::new, |b| format!("{} asked, ", bytes(b)));
    match rustix::fs::statvfs(SHM_DIR) {
        Ok(v) => anyhow::anyhow!(
            "{e}: {asked}{SHM_DIR} has {} free of {}",
            bytes(v.f_bavail * v.f_frsize),
            bytes(v.f_blocks * v.f_frsize)
        ),
        Err(_) => anyhow::anyhow!("{e}: {asked}{SHM_DIR} is full"),
    }
}

/// Bytes in words: `528384 bytes (516.0 KiB)`.
fn bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = b as f64;
    let mut unit = None;
    for u in UNITS {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = Some(u);
    }
    match unit {
        Some(u) => format!("{b} bytes ({v:.1} {u})"),
        None => format!("{b} bytes"),
    }
}

/// Inspects a named segment (without blocking on a FIFO or any other non-regular file and
/// without taking a lock). A regular file that does not start with shmq's header is "not a
/// shmq segment", not a corrupt one.
pub(crate) fn inspect(name: &str) -> Result<shmq::substrate::segment::Inspection> {
    match shmq::substrate::segment::inspect(name) {
        Ok(i) => Ok(i),
        Err(e @ shmq::OpenError::Corrupt(_)) => Err(not_shmq(name, e)),
        Err(e) => Err(e.into()),
    }
}

/// `e` (a corrupt-segment error about `name`), or, if `name` does not start with shmq's magic
/// number, an error saying it is not a shmq segment at all.
fn not_shmq(name: &str, e: shmq::OpenError) -> anyhow::Error {
    use std::io::Read as _;
    let mut magic = [0u8; 8];
    // Only reached for a regular file (the checks before `Corrupt` refuse any other), so the
    // read does not block.
    let ours = std::fs::File::open(Path::new(SHM_DIR).join(name))
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok_and(|()| u64::from_le_bytes(magic) == shmq::substrate::layout::MAGIC);
    if ours {
        e.into()
    } else {
        anyhow::anyhow!("{name:?} is not a shmq segment (its first bytes are not a shmq header)")
    }
}

/// Reads the kind of a named segment from its header, without blocking on a FIFO or any other
/// non-regular file and without taking a lock, or says why it is not a shmq segment.
pub(crate) fn kind_of(name: &str) -> Result<Kind> {
    Ok(inspect(name)?.kind())
}

/// A lock's state for `stat`, as words.
pub(crate) fn lock_json(state: &LockState) -> Value {
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

pub(crate) fn open_queue(name: &str) -> Result<Queue> {
    match kind_of(name)? {
        Kind::Queue => Ok(Queue::open(name)?),
        other => bail!("{name:?} is a {other}, not a queue"),
    }
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
    let info = inspect(name)?;
    let meta = std::fs::symlink_metadata(Path::new(SHM_DIR).join(name))
        .with_context(|| format!("reading {SHM_DIR}/{name}"))?;
    let mode = std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777;
    let kind = info.kind();
    let p = *info.params();
    let (pid, alive) = info.creator();
    let mut v = json!({
        "name": name,
        "kind": kind.name(),
        "layout_version": info.layout_version(),
        "size": info.size(),
        "mode": format!("{mode:04o}"),
        "creator_pid": pid,
        "creator_alive": alive,
    });
    let extra = match kind {
        Kind::Queue => {
            // Inspected, not opened: an open would sweep a dead producer's side segments.
            let q = Queue::inspect(name)?;
            let (side_segments, side_bytes) =
                side_segments().get(name).copied().unwrap_or_default();
            json!({
                "capacity": q.capacity, "message_size": q.message_size,
                "max_message_size": q.max_message_size, "slot_stride": p.slot_stride,
                "len": q.len, "unfinished": q.unfinished, "closed": q.closed,
                "side_segments": side_segments, "side_bytes": side_bytes,
            })
        }
        Kind::Pipe => {
            let i = Pipe::inspect(name)?;
            let (side_segments, side_bytes) =
                side_segments().get(name).copied().unwrap_or_default();
            json!({
                "capacity": i.capacity, "message_size": i.message_size, "duplex": i.duplex,
                "holders_a": i.holders[0], "holders_b": i.holders[1],
                "gone_a": i.gone[0], "gone_b": i.gone[1],
                "queued_a_to_b": i.queued.0, "queued_b_to_a": i.queued.1,
                "side_segments": side_segments, "side_bytes": side_bytes,
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
            outln!("{k:<17} {shown}");
        }
    }
    Ok(())
}

/// The processes that have a segment mapped, found in `/proc/*/maps`, and whether every
/// process could be inspected (another user's processes cannot be, unless we are root).
struct Users {
    /// Pids of the processes that map the segment.
    pids: Vec<u32>,
    /// False if some process's maps could not be read.
    complete: bool,
}

/// Scans every process once and returns, for each name, who maps `/dev/shm/NAME`.
fn users_of(names: &[String]) -> std::collections::HashMap<String, Users> {
    let mut out: std::collections::HashMap<String, Users> = names
        .iter()
        .map(|n| {
            (
                n.clone(),
                Users {
                    pids: Vec::new(),
                    complete: true,
                },
            )
        })
        .collect();
    let me = std::process::id();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        out.values_mut().for_each(|u| u.complete = false);
        return out;
    };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let maps = match std::fs::read_to_string(p.path().join("maps")) {
            Ok(m) => m,
            // The process exited meanwhile: it holds nothing.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(_) => {
                out.values_mut().for_each(|u| u.complete = false);
                continue;
            }
        };
        for line in maps.lines() {
            let Some(at) = line.find("/dev/shm/") else {
                continue;
            };
            let file = &line[at + "/dev/shm/".len()..];
            let file = file.strip_suffix(" (deleted)").unwrap_or(file);
            if let Some(u) = out.get_mut(file)
                && !u.pids.contains(&pid)
            {
                u.pids.push(pid);
            }
        }
    }
    out
}

/// Every shmq-looking name in `/dev/shm`, sorted.
fn segment_names() -> Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(SHM_DIR)
        .with_context(|| format!("reading {SHM_DIR}"))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| shmq::substrate::segment::validate_name(n).is_ok())
        .collect();
    names.sort();
    Ok(names)
}

/// One row of `ls`.
/// Read from the header only: no lock, no blocking on a non-regular file.
fn ls_row(name: &str, users: Option<&Users>) -> Option<Value> {
    let info = inspect(name).ok()?;
    let kind = info.kind();
    let meta = std::fs::symlink_metadata(Path::new(SHM_DIR).join(name)).ok()?;
    let (pid, alive) = info.creator();
    let age = meta.modified().ok()?.elapsed().unwrap_or_default();
    let pids = users.map(|u| u.pids.clone()).unwrap_or_default();
    Some(json!({
        "name": name, "kind": kind.name(), "size": info.size(),
        "mode": format!("{:04o}", std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777),
        "users": pids, "users_complete": users.is_some_and(|u| u.complete),
        "creator_pid": pid, "creator_alive": alive, "age_secs": age.as_secs(),
    }))
}

pub(crate) fn ls(as_json: bool) -> Result<()> {
    let names = segment_names()?;
    let users = users_of(&names);
    let rows: Vec<Value> = names
        .iter()
        .filter_map(|n| ls_row(n, users.get(n)))
        .collect();
    // Side segments of large messages are listed with their queue (`stat`), not here.
    let unread = names
        .iter()
        .filter(|n| shmq::substrate::large::side_segment_of(n).is_none())
        .count()
        .saturating_sub(rows.len());
    if unread > 0 {
        eprintln!(
            "shmq: {} in {SHM_DIR} could not be read as shmq segments (not shmq's, or not \
             readable by this user): not listed",
            count(unread as u64, "file", "files")
        );
    }
    if as_json {
        for r in &rows {
            outln!("{r}");
        }
        return Ok(());
    }
    outln!(
        "{:<40} {:<6} {:>12} {:<12} CREATOR",
        "NAME",
        "KIND",
        "BYTES",
        "IN USE BY"
    );
    for r in &rows {
        outln!(
            "{:<40} {:<6} {:>12} {:<12} {}",
            r["name"].as_str().unwrap_or("?"),
            r["kind"].as_str().unwrap_or("?"),
            r["size"].as_u64().unwrap_or(0),
            in_use(r),
            format!(
                "{} ({})",
                r["creator_pid"].as_u64().unwrap_or(0),
                if r["creator_alive"] == Value::Bool(true) {
                    "running"
                } else {
                    "exited"
                }
            )
        );
    }
    Ok(())
}

/// "3 processes", "nobody", or "nobody seen" when some processes could not be inspected.
fn in_use(r: &Value) -> String {
    let n = r["users"].as_array().map_or(0, Vec::len);
    match (n, r["users_complete"] == Value::Bool(true)) {
        (0, true) => "nobody".into(),
        (0, false) => "nobody seen".into(),
        (1, _) => "1 process".into(),
        (n, _) => format!("{n} processes"),
    }
}

#[derive(Debug, clap::Args)]
pub(crate) struct GcArgs {
    /// Only segments whose name starts with this.
    prefix: Option<String>,
    /// Say what would be removed (and what it holds), remove nothing.
    #[arg(long, short = 'n')]
    dry_run: bool,
    /// Leave segments younger than this alone (a process may be about to map one it just
    /// created).
    #[arg(long, value_parser = super::parse_duration, default_value = "10s")]
    older_than: Duration,
    /// Also remove the unused segments that hold data — messages waiting, tasks not marked
    /// done, a dict's keys, a lock whose holder died — and say what was discarded. Without it
    /// they are kept and listed with what they hold.
    #[arg(long)]
    discard_data: bool,
}

/// What an unused segment holds, read without its lock and without changing it: whether
/// removing it would lose something.
#[derive(Debug, PartialEq, Eq)]
enum Contents {
    /// Nothing anyone can still use: removing it loses nothing.
    Nothing,
    /// Data a user put there (or state a lock's next user needs), in words: kept unless
    /// `--discard-data`.
    Data(Vec<String>),
    /// Something a live process is about to use (a pipe end being handed over): kept.
    Pending(String),
    /// Messages nobody can ever take (towards a pipe end that is gone for good), in words:
    /// removed, and said.
    Unreachable(String),
}

/// What `gc` does with one segment.
enum Verdict {
    /// Keep it, for this reason.
    Keep(String),
    /// Remove it; what is discarded with it, as ", discarding ..." (empty: nothing).
    Remove(String),
}

/// "1 key", "3 keys".
fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// A lock's state as what removing it would lose (`Data`), or `None` if it is free; a lock a
/// live thread holds is `Pending` (its holder maps the segment, so `gc` sees it as in use
/// first). `of_dict`: the lock of a dict (the words say so).
fn lock_contents(state: &LockState, of_dict: bool) -> Option<Contents> {
    let (the, after) = if of_dict {
        (
            "the dict's lock",
            "an update may be unfinished; its next user repairs it",
        )
    } else {
        ("a lock", "its next locker is told so")
    };
    match state {
        LockState::Free => None,
        LockState::Held {
            owner_alive: true,
            owner_tid,
            ..
        } => Some(Contents::Pending(format!(
            "{the} is held by live thread {owner_tid}"
        ))),
        LockState::Held { owner_tid, .. } => Some(Contents::Data(vec![format!(
            "{the}, held by thread {owner_tid}, which died ({after})"
        )])),
        LockState::NotRecoverable => Some(Contents::Data(vec![format!(
            "{the}, not recoverable (a holder died and the repair was abandoned)"
        )])),
        other => Some(Contents::Data(vec![format!("{the}, {other}")])),
    }
}

/// What removing the segment `name` (of kind `kind`) would lose. What "nothing" means for each
/// kind is in `shmq gc --help`: a queue with no message waiting and no task unfinished; a pipe
/// neither of whose ends can be attached any more (messages towards a gone end can never be
/// received); a dict with no keys and a free lock; a free lock. A segment whose contents cannot
/// be read is kept as if it held data.
fn contents(name: &str, kind: Kind) -> Contents {
    let read = || -> Result<Contents> {
        Ok(match kind {
            Kind::Queue => {
                let q = Queue::inspect(name)?;
                let mut held = Vec::new();
                if q.len > 0 {
                    held.push(count(q.len as u64, "message waiting", "messages waiting"));
                }
                let taken = q.unfinished.saturating_sub(q.len as u64);
                if taken > 0 {
                    held.push(count(
                        taken,
                        "task taken and not marked done",
                        "tasks taken and not marked done",
                    ));
                }
                if held.is_empty() {
                    Contents::Nothing
                } else {
                    Contents::Data(held)
                }
            }
            Kind::Pipe => {
                let p = Pipe::inspect(name)?;
                // An end can be attached again while a holder lives or a hand-off token or fork
                // reservation is live; otherwise it is gone (the next open sweeps its dead
                // holders out and marks it so), and what waits for it is never received.
                let open = |e: usize| !p.gone[e] && p.holders[e] + p.handoffs[e] > 0;
                if let Some(e) = (0..2).find(|&e| open(e)) {
                    let end = ["A", "B"][e];
                    return Ok(Contents::Pending(if p.holders[e] > 0 {
                        format!("end {end} has a live holder")
                    } else {
                        format!("end {end} is being handed to a process that has not attached yet")
                    }));
                }
                let stranded = p.queued.0.unwrap_or(0) + p.queued.1;
                if stranded > 0 {
                    Contents::Unreachable(count(
                        stranded as u64,
                        "message that no end can receive any more",
                        "messages that no end can receive any more",
                    ))
                } else {
                    Contents::Nothing
                }
            }
            Kind::Dict => {
                let d = SharedDict::inspect(name)?;
                let mut held = Vec::new();
                if d.len > 0 {
                    held.push(count(d.len, "key", "keys"));
                }
                match lock_contents(&d.lock, true) {
                    Some(Contents::Data(l)) => held.extend(l),
                    Some(pending) => return Ok(pending),
                    None => {}
                }
                if held.is_empty() {
                    Contents::Nothing
                } else {
                    Contents::Data(held)
                }
            }
            Kind::Lock => lock_contents(&Lock::inspect(name)?, false).unwrap_or(Contents::Nothing),
        })
    };
    read().unwrap_or_else(|e| Contents::Data(vec![format!("contents gc cannot read ({e:#})")]))
}

/// The side segments of every queue and pipe in `/dev/shm` (their large messages and pooled
/// buffers): how many and their bytes, by the name of the segment they belong to.
fn side_segments() -> std::collections::HashMap<String, (usize, u64)> {
    let mut out = std::collections::HashMap::<String, (usize, u64)>::new();
    for e in std::fs::read_dir(SHM_DIR).into_iter().flatten().flatten() {
        let Ok(file) = e.file_name().into_string() else {
            continue;
        };
        if let Some((owner, _, _)) = shmq::substrate::large::side_segment_of(&file) {
            let bytes = e.metadata().map_or(0, |m| m.len());
            let entry = out.entry(owner.to_owned()).or_default();
            entry.0 += 1;
            entry.1 += bytes;
        }
    }
    out
}

/// Removes the shmq segments that no live process holds and whose removal loses nothing (with
/// `--discard-data`, also those that hold data, saying what is discarded).
pub(crate) fn gc(a: &GcArgs) -> Result<()> {
    let names: Vec<String> = segment_names()?
        .into_iter()
        .filter(|n| a.prefix.as_deref().is_none_or(|p| n.starts_with(p)))
        .collect();
    let users = users_of(&names);
    let sides = side_segments();
    let (mut removed, mut kept, mut kept_data) = (0, 0, 0);
    let keep_word = if a.dry_run { "would keep" } else { "kept" };
    for name in &names {
        let Some(row) = ls_row(name, users.get(name)) else {
            continue; // not a shmq segment
        };
        let busy = !row["users"].as_array().is_none_or(Vec::is_empty)
            || row["creator_alive"] == Value::Bool(true);
        let young = row["age_secs"].as_u64().unwrap_or(0) < a.older_than.as_secs();
        // Processes we cannot inspect can hold only segments their permissions let them open.
        let shared = row["mode"]
            .as_str()
            .and_then(|m| u32::from_str_radix(m, 8).ok())
            .is_some_and(|m| m & 0o077 != 0);
        let unsure = row["users_complete"] != Value::Bool(true) && shared;
        let why_kept = if busy {
            Some("in use".to_owned())
        } else if young {
            Some("too young".to_owned())
        } else if unsure && rustix::process::geteuid().is_root() {
            Some("some processes' memory maps could not be read, so one may hold it".to_owned())
        } else if unsure {
            Some("other users may hold it (run as root to see their processes)".to_owned())
        } else {
            None
        };
        let mut what = format!(
            "{name} ({}, {} bytes",
            row["kind"].as_str().unwrap_or("?"),
            row["size"]
        );
        if let Some((n, bytes)) = sides.get(name) {
            what += &format!(
                ", and {bytes} bytes in {}",
                count(*n as u64, "side segment", "side segments")
            );
        }
        what += ")";
        let verdict = match why_kept {
            Some(why) => Verdict::Keep(why),
            None => match kind_of(name).map(|k| contents(name, k)) {
                Err(e) => Verdict::Keep(format!("not readable any more ({e:#})")),
                Ok(Contents::Nothing) => Verdict::Remove(String::new()),
                Ok(Contents::Unreachable(what)) => Verdict::Remove(format!(", with {what}")),
                Ok(Contents::Pending(why)) => Verdict::Keep(why),
                Ok(Contents::Data(held)) if a.discard_data => {
                    Verdict::Remove(format!(", discarding {}", held.join(", ")))
                }
                Ok(Contents::Data(held)) => {
                    kept_data += 1;
                    Verdict::Keep(format!(
                        "it holds {}; pass --discard-data to remove it",
                        held.join(", ")
                    ))
                }
            },
        };
        let lost = match verdict {
            Verdict::Keep(why) => {
                kept += 1;
                eprintln!("{keep_word} {what}: {why}");
                continue;
            }
            Verdict::Remove(lost) => lost,
        };
        if a.dry_run {
            eprintln!("would remove {what}{lost}");
        } else {
            Segment::unlink(name)?;
            shmq::substrate::large::remove_side_segments(name);
            eprintln!("removed {what}{lost}");
        }
        removed += 1;
    }
    // Anonymous queues whose every holder was killed: hidden anchors that no process locks
    // (a live holder keeps a shared lock, so no age or user check is needed). Nobody can reach
    // their messages any more.
    for (anchor, bytes) in shmq::substrate::large::anonymous_orphans()
        .into_iter()
        .filter(|(n, _)| a.prefix.as_deref().is_none_or(|p| n.starts_with(p)))
    {
        let what = format!("{anchor} (orphaned anonymous queue, {bytes} bytes of large messages)");
        if a.dry_run {
            removed += 1;
            eprintln!("would remove {what}");
        } else if shmq::substrate::large::reap_anonymous_orphan(&anchor) {
            removed += 1;
            eprintln!("removed {what}");
        }
    }
    let holding = if kept_data > 0 {
        format!(
            " ({kept_data} holding data: pass --discard-data to remove {})",
            if kept_data == 1 { "it" } else { "them" }
        )
    } else {
        String::new()
    };
    eprintln!(
        "{} {removed} unused segment(s), {keep_word} {kept}{holding}",
        if a.dry_run { "would remove" } else { "removed" }
    );
    Ok(())
}

pub(crate) fn rm(names: &[String]) -> Result<()> {
    // Check every name first, so that a typo removes nothing.
    for name in names {
        match shmq::substrate::segment::check_is_segment(name) {
            Ok(()) => {}
            Err(e @ shmq::OpenError::Corrupt(_)) => return Err(not_shmq(name, e)),
            Err(e) => return Err(e.into()),
        }
    }
    for name in names {
        Segment::unlink(name)?;
        let side = shmq::substrate::large::remove_side_segments(name);
        if side > 0 {
            eprintln!("removed {name} and the side segments of its {side} large message(s)");
        } else {
            eprintln!("removed {name}");
        }
    }
    Ok(())
}
