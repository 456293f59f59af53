//! `shmq metrics`: the figures of `shmq top` in the Prometheus text exposition format (version
//! 0.0.4), printed, served over HTTP (`--listen`) or written atomically to a file for
//! node_exporter's textfile collector (`--textfile`).
//!
//! Names and units follow Prometheus's conventions: a `shmq_` prefix, counters end in
//! `_total`, sizes are in bytes (`_bytes`), and every series has the `name` and `kind` labels
//! of its segment (plus `direction`, `A_to_B` or `B_to_A`, for a pipe's rings). Rates are left
//! to the server (`rate(shmq_gets_total[1m])`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use shmq::snapshot::{Detail, SegmentSnapshot, Snapshot};
use shmq::substrate::sync::LockState;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Serve the metrics over HTTP at this address (GET /metrics), e.g. 127.0.0.1:9464,
    /// until interrupted.
    #[arg(long, value_name = "ADDR:PORT", conflicts_with = "textfile")]
    listen: Option<String>,
    /// Write the metrics to this file atomically (a temporary file in the same directory,
    /// then a rename), for node_exporter's textfile collector; the name should end in .prom.
    #[arg(long, value_name = "PATH")]
    textfile: Option<PathBuf>,
    /// With --textfile: rewrite the file every INTERVAL until interrupted (default: once).
    #[arg(long, value_parser = super::parse_duration, requires = "textfile")]
    interval: Option<Duration>,
    /// Only segments whose name matches this pattern (as `shmq top --filter`).
    #[arg(long)]
    filter: Option<String>,
}

/// One metric family: its help, type and samples (labels, value).
struct Family {
    help: &'static str,
    kind: &'static str,
    samples: Vec<(Vec<(&'static str, String)>, f64)>,
}

/// The metric families of a snapshot, in name order.
#[derive(Default)]
struct Families(BTreeMap<&'static str, Family>);

impl Families {
    fn add(
        &mut self,
        name: &'static str,
        kind: &'static str,
        help: &'static str,
        labels: Vec<(&'static str, String)>,
        value: f64,
    ) {
        self.0
            .entry(name)
            .or_insert_with(|| Family {
                help,
                kind,
                samples: Vec::new(),
            })
            .samples
            .push((labels, value));
    }
}

/// A label value escaped as the text format requires (`\\`, `\"`, `\n`).
fn escape(v: &str) -> String {
    v.replace('\\', r"\\")
        .replace('"', r#"\""#)
        .replace('\n', r"\n")
}

fn segment_families(f: &mut Families, s: &SegmentSnapshot) {
    let kind = s.kind.map_or("unknown", |k| k.name());
    let base = || vec![("name", s.name.clone()), ("kind", kind.to_owned())];
    let with = |extra: Vec<(&'static str, String)>| {
        let mut l = base();
        l.extend(extra);
        l
    };
    f.add(
        "shmq_segment_state",
        "gauge",
        "The segment's state (open, closed, end A gone, end B gone, both ends gone, holder died, not recoverable, damaged, unreadable) as a label; always 1.",
        with(vec![("state", s.state.word())]),
        1.0,
    );
    f.add(
        "shmq_segment_size_bytes",
        "gauge",
        "Length of the segment in bytes (what each process maps).",
        base(),
        s.size as f64,
    );
    f.add(
        "shmq_side_segments",
        "gauge",
        "Side segments holding the segment's large messages.",
        base(),
        s.side_segments as f64,
    );
    f.add(
        "shmq_side_segment_bytes",
        "gauge",
        "Bytes in the segment's side segments (large messages).",
        base(),
        s.side_bytes as f64,
    );
    let mut live: Vec<u32> = s
        .processes
        .iter()
        .filter(|p| p.alive)
        .map(|p| p.pid)
        .collect();
    live.sort_unstable();
    live.dedup();
    let mut dead: Vec<u32> = s
        .processes
        .iter()
        .filter(|p| !p.alive && !live.contains(&p.pid))
        .map(|p| p.pid)
        .collect();
    dead.sort_unstable();
    dead.dedup();
    for (alive, n) in [("true", live.len()), ("false", dead.len())] {
        f.add(
            "shmq_processes",
            "gauge",
            "Distinct processes the segment records (creator, registered producers, pipe holders), by whether they still run.",
            with(vec![("alive", alive.to_owned())]),
            n as f64,
        );
    }
    let labels: &[&str] = match &s.detail {
        Detail::Pipe {
            a_to_b: Some(_), ..
        } => &["A_to_B", "B_to_A"],
        Detail::Pipe { a_to_b: None, .. } => &["B_to_A"],
        _ => &[""],
    };
    for (ring, dir) in s.rings().into_iter().zip(labels) {
        let l = || {
            if dir.is_empty() {
                base()
            } else {
                let mut l = base();
                l.push(("direction", (*dir).to_owned()));
                l
            }
        };
        let b = |v: bool| if v { 1.0 } else { 0.0 };
        f.add(
            "shmq_queue_depth",
            "gauge",
            "Messages waiting in the ring.",
            l(),
            ring.len as f64,
        );
        f.add(
            "shmq_queue_capacity",
            "gauge",
            "Messages the ring holds at most.",
            l(),
            ring.capacity as f64,
        );
        f.add(
            "shmq_message_size_bytes",
            "gauge",
            "The ring's slot size in bytes (larger messages travel in side segments).",
            l(),
            ring.message_size as f64,
        );
        f.add(
            "shmq_puts_total",
            "counter",
            "Positions ever claimed by puts (messages put, voided claims included).",
            l(),
            ring.puts as f64,
        );
        f.add(
            "shmq_gets_total",
            "counter",
            "Positions ever taken by gets (voided positions stepped over included).",
            l(),
            ring.gets as f64,
        );
        f.add(
            "shmq_voided_total",
            "counter",
            "Positions ever voided: claims of producers that died before publishing.",
            l(),
            ring.voided as f64,
        );
        f.add(
            "shmq_unfinished_tasks",
            "gauge",
            "Tasks put and not yet marked done (JoinableQueue), waiting messages included.",
            l(),
            ring.unfinished as f64,
        );
        f.add(
            "shmq_closed",
            "gauge",
            "1 if the ring is closed.",
            l(),
            b(ring.closed),
        );
        f.add("shmq_waiting_producers", "gauge", "1 if at least one producer sleeps waiting for room (the ring records a bit, not a count).", l(), b(ring.producers_waiting));
        f.add("shmq_waiting_consumers", "gauge", "1 if at least one consumer sleeps waiting for a message (the ring records a bit, not a count).", l(), b(ring.consumers_waiting));
        f.add(
            "shmq_joiners",
            "gauge",
            "Processes sleeping in join.",
            l(),
            f64::from(ring.joiners),
        );
        f.add(
            "shmq_dead_claims",
            "gauge",
            "Claims at the front made by producers that died; the next consumer voids them.",
            l(),
            ring.dead_claims as f64,
        );
    }
    if let Detail::Dict { len, capacity, .. } = &s.detail {
        f.add(
            "shmq_dict_keys",
            "gauge",
            "Keys the dict holds.",
            base(),
            *len as f64,
        );
        f.add(
            "shmq_dict_capacity",
            "gauge",
            "Keys the dict holds at most.",
            base(),
            *capacity as f64,
        );
    }
    if let Some(lock) = s.lock() {
        let (held, dead) = match lock {
            LockState::Free => (0.0, 0.0),
            LockState::Held { owner_alive, .. } => (1.0, if *owner_alive { 0.0 } else { 1.0 }),
            _ => (1.0, 1.0),
        };
        f.add("shmq_lock_held", "gauge", "1 if the segment's lock (a queue's ring lock, a pipe's holder-table lock, a dict's or a lock's) is held.", base(), held);
        f.add(
            "shmq_lock_holder_dead",
            "gauge",
            "1 if the lock's holder died (the next locker repairs) or the lock is not recoverable.",
            base(),
            dead,
        );
    }
}

/// The exposition text of `snap`.
pub(crate) fn render(snap: &Snapshot) -> String {
    let mut f = Families::default();
    f.add(
        "shmq_segments",
        "gauge",
        "shmq segments seen in /dev/shm.",
        Vec::new(),
        snap.segments.len() as f64,
    );
    for s in &snap.segments {
        segment_families(&mut f, s);
    }
    let mut out = String::new();
    for (name, fam) in &f.0 {
        let _ = writeln!(out, "# HELP {name} {}", fam.help);
        let _ = writeln!(out, "# TYPE {name} {}", fam.kind);
        for (labels, v) in &fam.samples {
            out.push_str(name);
            if !labels.is_empty() {
                let l: Vec<String> = labels
                    .iter()
                    .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                    .collect();
                let _ = write!(out, "{{{}}}", l.join(","));
            }
            let _ = writeln!(out, " {v}");
        }
    }
    out
}

fn current(filter: Option<&str>) -> Result<String> {
    let pattern = filter.unwrap_or_default();
    let snap = Snapshot::take_matching(None, |n| super::top::matches(pattern, n))
        .context("reading /dev/shm")?;
    Ok(render(&snap))
}

/// Writes `text` to `path` atomically: a temporary file beside it, synced, then renamed over.
fn write_atomically(path: &Path, text: &str) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let file = path
        .file_name()
        .with_context(|| format!("{} names no file", path.display()))?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        file.to_string_lossy(),
        std::process::id()
    ));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        anyhow::Error::new(e).context(format!("writing {}", path.display()))
    })
}

/// Serves GET /metrics (and GET /) on `addr` until the process is ended.
fn serve(addr: &str, filter: Option<&str>) -> Result<()> {
    let server =
        tiny_http::Server::http(addr).map_err(|e| anyhow::anyhow!("listening on {addr}: {e}"))?;
    eprintln!(
        "serving metrics at http://{}/metrics",
        server
            .server_addr()
            .to_ip()
            .map_or(addr.to_owned(), |a| a.to_string())
    );
    let content_type = tiny_http::Header::from_bytes(
        &b"Content-Type"[..],
        &b"text/plain; version=0.0.4; charset=utf-8"[..],
    )
    .map_err(|()| anyhow::anyhow!("bad header"))?;
    for req in server.incoming_requests() {
        let path = req.url().split('?').next().unwrap_or("").to_owned();
        let response = match (req.method(), path.as_str()) {
            (tiny_http::Method::Get | tiny_http::Method::Head, "/metrics" | "/") => {
                match current(filter) {
                    Ok(body) => {
                        tiny_http::Response::from_string(body).with_header(content_type.clone())
                    }
                    Err(e) => {
                        tiny_http::Response::from_string(format!("{e:#}\n")).with_status_code(500)
                    }
                }
            }
            (tiny_http::Method::Get | tiny_http::Method::Head, _) => {
                tiny_http::Response::from_string("not found: try /metrics\n").with_status_code(404)
            }
            _ => tiny_http::Response::from_string("only GET\n").with_status_code(405),
        };
        // A scraper that hung up is its own problem, not the server's.
        let _ = req.respond(response);
    }
    bail!("the HTTP server on {addr} stopped")
}

pub(crate) fn run(a: &Args) -> Result<()> {
    let filter = a.filter.as_deref();
    if let Some(addr) = &a.listen {
        return serve(addr, filter);
    }
    if let Some(path) = &a.textfile {
        loop {
            write_atomically(path, &current(filter)?)?;
            match a.interval {
                Some(d) => std::thread::sleep(d),
                None => return Ok(()),
            }
        }
    }
    let text = current(filter)?;
    let mut out = std::io::stdout().lock();
    // A reader that went away (`shmq metrics | head`) is not an error worth reporting.
    let _ = out.write_all(text.as_bytes());
    Ok(())
}
