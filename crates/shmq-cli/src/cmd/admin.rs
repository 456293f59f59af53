//! Administration of named segments, in the manner of `ipcs`/`ipcrm`: `create`, `close`, `stat`,
//! `ls`, `rm` and `gc`.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use shmq::layout::Kind;
use shmq::{LockState, Options, Pipe, Queue, Segment};
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
        /// The slot size: the largest message that travels in a slot, in bytes.
        #[arg(long, default_value_t = 4096)]
        message_size: usize,
        /// The largest message in bytes (larger than a slot: in a side segment of its own).
        #[arg(long, default_value_t = 1 << 30)]
        max_message_size: usize,
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
            let q = Queue::create(
                name,
                &Options {
                    capacity: *capacity,
                    message_size: *message_size,
                    max_message_size: *max_message_size,
                    mode: *mode,
                },
            )?;
            outln!(
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
        .filter(|n| shmq::segment::validate_name(n).is_ok())
        .collect();
    names.sort();
    Ok(names)
}

/// One row of `ls`.
/// Read from the header only: no lock, no blocking on a non-regular file.
fn ls_row(name: &str, users: Option<&Users>) -> Option<Value> {
    let info = shmq::segment::inspect(name).ok()?;
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
    /// Say what would be removed, remove nothing.
    #[arg(long, short = 'n')]
    dry_run: bool,
    /// Leave segments younger than this alone (a process may be about to map one it just
    /// created).
    #[arg(long, value_parser = super::parse_duration, default_value = "10s")]
    older_than: Duration,
}

/// Removes the shmq segments that no live process holds.
pub(crate) fn gc(a: &GcArgs) -> Result<()> {
    let names: Vec<String> = segment_names()?
        .into_iter()
        .filter(|n| a.prefix.as_deref().is_none_or(|p| n.starts_with(p)))
        .collect();
    let users = users_of(&names);
    let (mut removed, mut kept) = (0, 0);
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
            Some("in use")
        } else if young {
            Some("too young")
        } else if unsure {
            Some("other users may hold it (run as root to see their processes)")
        } else {
            None
        };
        let what = format!(
            "{name} ({}, {} bytes)",
            row["kind"].as_str().unwrap_or("?"),
            row["size"]
        );
        match why_kept {
            Some(why) => {
                kept += 1;
                eprintln!("kept {what}: {why}");
            }
            None if a.dry_run => {
                removed += 1;
                outln!("would remove {what}");
            }
            None => {
                Segment::unlink(name)?;
                shmq::large::remove_side_segments(name);
                removed += 1;
                outln!("removed {what}");
            }
        }
    }
    // Anonymous queues whose every holder was killed: hidden anchors that no process locks
    // (a live holder keeps a shared lock, so no age or user check is needed).
    for (anchor, bytes) in shmq::large::anonymous_orphans()
        .into_iter()
        .filter(|(n, _)| a.prefix.as_deref().is_none_or(|p| n.starts_with(p)))
    {
        let what = format!("{anchor} (orphaned anonymous queue, {bytes} bytes of large messages)");
        if a.dry_run {
            removed += 1;
            outln!("would remove {what}");
        } else if shmq::large::reap_anonymous_orphan(&anchor) {
            removed += 1;
            outln!("removed {what}");
        }
    }
    eprintln!(
        "{} {removed} unused segment(s), kept {kept}",
        if a.dry_run { "would remove" } else { "removed" }
    );
    Ok(())
}

pub(crate) fn rm(names: &[String]) -> Result<()> {
    // Check every name first, so that a typo removes nothing.
    for name in names {
        shmq::segment::check_is_segment(name)?;
    }
    for name in names {
        Segment::unlink(name)?;
        let side = shmq::large::remove_side_segments(name);
        if side > 0 {
            eprintln!("removed {name} and the side segments of its {side} large message(s)");
        } else {
            eprintln!("removed {name}");
        }
    }
    Ok(())
}
