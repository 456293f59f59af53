//! `shmq demo`: Python multiprocessing's classic examples, run with real child processes (this
//! binary re-executed with the hidden `demo-child` subcommand), with a readable account or one
//! JSON object per scenario.

use std::collections::HashSet;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::ValueEnum;
use serde_json::{Value, json};
use shmq::{End, GetError, Options, Pipe, PipeEnd, Queue, RecvError};
use shmq_dict::{Options as DictOptions, SharedDict};
use shmq_testkit::{Name, Proc};

use super::parse_duration;

/// The scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Scenario {
    /// Producers and consumers on one bounded queue, ended with close().
    Queue,
    /// JoinableQueue: consumers call task_done, producers join.
    Joinable,
    /// One producer, several consumers on one pipe end, all ending on end-of-file.
    Pipe,
    /// Processes decrement a shared counter, without and with the lock.
    Race,
    /// Checksummed messages from 0 B to 64 MiB (skewed small) through 4 KiB slots, several
    /// producers and consumers.
    Big,
    /// Two hosts' queues bridged through NATS JetStream, a bridge killed and restarted
    /// mid-stream; every message exactly once (needs a shmq built with `--features bridge`
    /// and nats-server on PATH).
    Bridge,
    /// All of the above (the bridge only when built in and nats-server is on PATH).
    All,
}

/// The most processes of one kind a demo starts (`--producers`, `--consumers`, `--processes`).
const MAX_PROCESSES: u64 = 1024;
/// The most items per producer (`--items`).
const MAX_ITEMS: u64 = 100_000;
/// The most runs of each race variant (`--runs`).
const MAX_RUNS: u64 = 100;

/// A count from 1 to `max`: zero producers or consumers would leave the others waiting for
/// ever (producers on a full queue, a join that never returns), zero items or runs show nothing.
fn count(max: u64) -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::<usize>::new().range(1..=max)
}

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Every count is at least 1: --producers, --consumers and --processes at most \
                  1024, --items at most 100000, --runs at most 100. Ctrl-C (or SIGTERM) ends \
                  every child process, removes the segments the demo made and exits with 130 \
                  (143)."
)]
pub(crate) struct Args {
    /// Which scenario to run.
    #[arg(value_enum, default_value = "all")]
    scenario: Scenario,
    /// Producer processes, 1 to 1024 (default: queue 3, joinable 10, pipe 1).
    #[arg(long, value_parser = count(MAX_PROCESSES))]
    producers: Option<usize>,
    /// Consumer processes, 1 to 1024 (default: queue 2, joinable 5, pipe 3).
    #[arg(long, value_parser = count(MAX_PROCESSES))]
    consumers: Option<usize>,
    /// Items per producer, 1 to 100000 [default: 10].
    #[arg(long, value_parser = count(MAX_ITEMS))]
    items: Option<usize>,
    /// Processes in the race, 1 to 1024.
    #[arg(long, default_value_t = 70, value_parser = count(MAX_PROCESSES))]
    processes: usize,
    /// Runs of each race variant, 1 to 100.
    #[arg(long, default_value_t = 3, value_parser = count(MAX_RUNS))]
    runs: usize,
    /// A pause per item in the queue, joinable and pipe scenarios [default: none], and between
    /// the read and the write in the race [default: 2ms, so that the processes' read-write
    /// windows overlap and the unlocked race loses updates every time; 0 shows how rarely an
    /// unpaced race loses one].
    #[arg(long, value_parser = parse_duration)]
    pace: Option<Duration>,
    /// Hosts in the bridge scenario, 2 to 16: with 3 or more, each host has a queue drained by
    /// its out-bridge into one stream and a queue fed by its in-bridge, the in-bridges sharing
    /// one durable consumer (producers and consumers per host: default 1 each).
    #[arg(long, default_value_t = 2, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(2..=16))]
    hosts: usize,
    /// One JSON object per scenario instead of prose.
    #[arg(long)]
    json: bool,
}

/// A segment name for one scenario, removed when dropped (also on an error path).
fn seg_name(what: &str) -> Name {
    Name::with_prefix("shmq-demo", what)
}

/// A child process running one role (killed on drop if it is still running).
struct Kid(Proc);

impl Kid {
    fn spawn(role: &str, args: &[String]) -> Result<Kid> {
        // After Ctrl-C the signal thread is ending the children: start no more.
        super::interrupt::check()?;
        let exe = std::env::current_exe().context("locating the shmq executable")?;
        let p = Proc::spawn(
            Command::new(exe)
                .arg("demo-child")
                .arg(role)
                .args(args)
                .stdin(Stdio::null())
                .stderr(Stdio::inherit()),
            role,
        )
        .with_context(|| format!("starting a {role} process"))?;
        Ok(Kid(p))
    }

    fn pid(&self) -> u32 {
        self.0.pid()
    }

    /// The next line the child prints.
    fn line(&mut self) -> Result<String> {
        match self.0.try_line()? {
            Some(l) => Ok(l),
            None => bail!("process {} ended without saying it was ready", self.pid()),
        }
    }
}

/// Finishes children in parallel, so that none blocks on a full pipe while we wait on another;
/// returns each one's pid, remaining lines and whether it succeeded. After Ctrl-C (the children
/// were killed) an error: the scenario stops there, dropping what it made.
fn finish_all(kids: Vec<Kid>) -> Result<Vec<(u32, Vec<String>, bool)>> {
    let pids: Vec<u32> = kids.iter().map(Kid::pid).collect();
    let finished = shmq_testkit::try_finish_all(kids.into_iter().map(|k| k.0).collect());
    super::interrupt::check()?;
    finished
        .into_iter()
        .zip(pids)
        .map(|(r, pid)| {
            let (out, status) = r?;
            let lines = String::from_utf8_lossy(&out)
                .lines()
                .map(str::to_owned)
                .collect();
            Ok((pid, lines, status.success()))
        })
        .collect()
}

struct Report {
    json: bool,
}

impl Report {
    fn say(&self, line: impl AsRef<str>) {
        if !self.json {
            outln!("{}", line.as_ref());
        }
    }
}

/// Counts what consumers received against what was sent.
fn tally(sent: &HashSet<String>, received: &[String]) -> (usize, usize, usize) {
    let unique: HashSet<&String> = received.iter().collect();
    let duplicates = received.len() - unique.len();
    let missing = sent.iter().filter(|s| !unique.contains(s)).count();
    (unique.len(), duplicates, missing)
}

fn verdict(ok: bool) -> &'static str {
    if ok { "ok" } else { "FAILED" }
}

/// Runs the chosen scenarios; `Ok(false)` if a check failed. Ctrl-C or SIGTERM ends every
/// child and removes the segments (see `interrupt`).
pub(crate) fn run(args: &Args) -> Result<bool> {
    super::interrupt::install()?;
    let r = Report { json: args.json };
    let all = args.scenario == Scenario::All;
    let mut results = Vec::new();
    let start = Instant::now();
    let wanted = |s: Scenario| -> Result<bool> {
        super::interrupt::check()?;
        Ok(all || args.scenario == s)
    };
    r.say("Python multiprocessing's classic examples, each across real child processes\n");
    if wanted(Scenario::Queue)? {
        results.push(("queue", queue(args, &r)?));
    }
    if wanted(Scenario::Joinable)? {
        results.push(("joinable", joinable(args, &r)?));
    }
    if wanted(Scenario::Pipe)? {
        results.push(("pipe", pipe(args, &r)?));
    }
    if wanted(Scenario::Race)? {
        results.push(("race", race(args, &r)?));
    }
    if wanted(Scenario::Big)? {
        results.push(("big", big(args, &r)?));
    }
    if wanted(Scenario::Bridge)? {
        bridge_scenario(args, all, &r, &mut results)?;
    }
    super::interrupt::check()?;
    let ok = results.iter().all(|(_, v)| v["ok"] == Value::Bool(true));
    if args.json {
        for (_, v) in &results {
            outln!("{v}");
        }
    } else {
        outln!("summary ({:.1} s):", start.elapsed().as_secs_f64());
        for (name, v) in &results {
            outln!("  {name:<9} {}", verdict(v["ok"] == Value::Bool(true)));
        }
    }
    Ok(ok)
}

/// The bridge scenario, when this shmq has the bridge (feature `bridge`) and `nats-server` is on
/// PATH; otherwise [`skip_bridge`].
#[cfg(feature = "bridge")]
fn bridge_scenario(
    args: &Args,
    all: bool,
    r: &Report,
    results: &mut Vec<(&'static str, Value)>,
) -> Result<()> {
    if !shmq_testkit::nats::available() {
        return skip_bridge(args, all, r, shmq_testkit::nats::INSTALL_HINT);
    }
    let v = if args.hosts > 2 {
        super::bridge::demo_hosts(
            args.json,
            args.hosts,
            args.producers.unwrap_or(1),
            args.consumers.unwrap_or(1),
            args.items.unwrap_or(200),
        )?
    } else {
        super::bridge::demo(
            args.json,
            args.producers.unwrap_or(3),
            args.consumers.unwrap_or(2),
            args.items.unwrap_or(200),
        )?
    };
    results.push(("bridge", v));
    Ok(())
}

/// The bridge scenario of a shmq built without the bridge: [`skip_bridge`], saying how to
/// build it in.
#[cfg(not(feature = "bridge"))]
fn bridge_scenario(
    args: &Args,
    all: bool,
    r: &Report,
    _results: &mut Vec<(&'static str, Value)>,
) -> Result<()> {
    let _ = args.hosts; // read by the bridge scenario only
    skip_bridge(args, all, r, super::BRIDGE_NOT_BUILT)
}

/// The bridge scenario cannot run, for the reason `why`: within `shmq demo` (all scenarios) the
/// others run and one line says so (on stderr with --json, which prints only objects on
/// stdout); `shmq demo bridge` fails with it.
fn skip_bridge(args: &Args, all: bool, r: &Report, why: &str) -> Result<()> {
    if !all {
        bail!("{why}");
    }
    let hint = format!("bridge: skipped: {why}");
    if args.json {
        eprintln!("{hint}");
    } else {
        r.say(format!("{hint}\n")); // each scenario's account ends with an empty line
    }
    Ok(())
}

fn pace_arg(args: &Args) -> String {
    args.pace.map_or(0, |d| d.as_micros()).to_string()
}

fn queue(args: &Args, r: &Report) -> Result<Value> {
    let (producers, consumers, items) = (
        args.producers.unwrap_or(3),
        args.consumers.unwrap_or(2),
        args.items.unwrap_or(10),
    );
    let name_seg = seg_name("queue");
    let name = name_seg.0.clone();
    let opts = Options {
        capacity: 5,
        message_size: 64,
        ..Default::default()
    };
    let q = Queue::create(&name, &opts)?;
    r.say(format!(
        "queue: {producers} producer processes x {items} items -> one bounded queue (capacity {}) -> {consumers} consumer processes",
        opts.capacity
    ));
    let cons = spawn_each("queue-consumer", consumers, |id| {
        vec![name.clone(), id.to_string(), pace_arg(args)]
    })?;
    let prods = spawn_each("queue-producer", producers, |id| {
        vec![
            name.clone(),
            id.to_string(),
            items.to_string(),
            pace_arg(args),
        ]
    })?;
    r.say(format!(
        "  started consumers (pids {}) and producers (pids {})",
        pids(&cons),
        pids(&prods)
    ));
    let prod_ok = finish_all(prods)?.iter().all(|(_, _, ok)| *ok);
    r.say("  every producer is done: close() - consumers drain what is left and end on Closed");
    q.close()?;
    let mut received = Vec::new();
    let mut cons_ok = true;
    for (i, (pid, lines, ok)) in finish_all(cons)?.into_iter().enumerate() {
        r.say(format!(
            "  consumer {i} (pid {pid}): {}, {}",
            plural(lines.len(), "item"),
            if ok { "ended on Closed" } else { "FAILED" }
        ));
        cons_ok &= ok;
        received.extend(lines);
    }
    let sent = expected_items(producers, items);
    let (unique, duplicates, missing) = tally(&sent, &received);
    let ok = prod_ok && cons_ok && duplicates == 0 && missing == 0 && unique == sent.len();
    r.say(format!(
        "  {}: {} sent, {} received, {duplicates} duplicates, {missing} missing, queue empty: {}\n",
        verdict(ok),
        sent.len(),
        received.len(),
        q.is_empty()
    ));
    Ok(json!({
        "scenario": "queue", "producers": producers, "consumers": consumers,
        "sent": sent.len(), "received": received.len(), "duplicates": duplicates,
        "missing": missing, "ok": ok,
    }))
}

fn joinable(args: &Args, r: &Report) -> Result<Value> {
    let (producers, consumers, items) = (
        args.producers.unwrap_or(10),
        args.consumers.unwrap_or(5),
        args.items.unwrap_or(10),
    );
    let name_seg = seg_name("joinable");
    let name = name_seg.0.clone();
    let q = Queue::create(
        &name,
        &Options {
            capacity: 16,
            message_size: 64,
            ..Default::default()
        },
    )?;
    r.say(format!(
        "joinable: {producers} producers x {items} items, {consumers} consumers calling task_done(); each producer join()s"
    ));
    let cons = spawn_each("joinable-consumer", consumers, |id| {
        vec![name.clone(), id.to_string(), pace_arg(args)]
    })?;
    let prods = spawn_each("joinable-producer", producers, |id| {
        vec![
            name.clone(),
            id.to_string(),
            items.to_string(),
            pace_arg(args),
        ]
    })?;
    let mut joined = 0;
    let mut prod_ok = true;
    for (pid, lines, ok) in finish_all(prods)? {
        prod_ok &= ok;
        if lines.iter().any(|l| l == "joined") {
            joined += 1;
        } else {
            r.say(format!("  producer {pid} did not get past join()"));
        }
    }
    let unfinished = q.unfinished();
    r.say(format!(
        "  all {joined} producers returned from join(); unfinished tasks: {unfinished}"
    ));
    q.close()?;
    let mut received = Vec::new();
    let mut cons_ok = true;
    for (pid, lines, ok) in finish_all(cons)? {
        r.say(format!(
            "  consumer pid {pid}: {} done",
            plural(lines.len(), "task")
        ));
        cons_ok &= ok;
        received.extend(lines);
    }
    let sent = expected_items(producers, items);
    let (_, duplicates, missing) = tally(&sent, &received);
    let ok = prod_ok
        && cons_ok
        && joined == producers
        && unfinished == 0
        && duplicates == 0
        && missing == 0;
    r.say(format!(
        "  {}: {} sent, {} received and done, {duplicates} duplicates, {missing} missing\n",
        verdict(ok),
        sent.len(),
        received.len()
    ));
    Ok(json!({
        "scenario": "joinable", "producers": producers, "consumers": consumers,
        "sent": sent.len(), "received": received.len(), "duplicates": duplicates,
        "missing": missing, "joined": joined, "unfinished": unfinished, "ok": ok,
    }))
}

fn pipe(args: &Args, r: &Report) -> Result<Value> {
    let (producers, consumers, items) = (
        args.producers.unwrap_or(1),
        args.consumers.unwrap_or(3),
        args.items.unwrap_or(10),
    );
    let name_seg = seg_name("pipe");
    let name = name_seg.0.clone();
    let (a, b) = Pipe::create(
        &name,
        &Options {
            capacity: 8,
            message_size: 64,
            ..Default::default()
        },
    )?;
    r.say(format!(
        "pipe: {producers} producer process(es) send {items} messages each on end A; {consumers} consumers share end B and read until end-of-file"
    ));
    let mut cons = spawn_each("pipe-consumer", consumers, |id| {
        vec![name.clone(), id.to_string(), pace_arg(args)]
    })?;
    let mut prods = spawn_each("pipe-producer", producers, |id| {
        vec![
            name.clone(),
            id.to_string(),
            items.to_string(),
            pace_arg(args),
        ]
    })?;
    // Every child attaches before this process lets go of its own ends: otherwise an end could
    // be left without holders, which is end-of-file for good.
    for k in cons.iter_mut().chain(prods.iter_mut()) {
        let l = k.line()?;
        if l != "attached" {
            bail!("unexpected output from process {}: {l}", k.pid());
        }
    }
    drop((a, b));
    r.say("  every process attached; the parent closed its own ends");
    let prod_ok = finish_all(prods)?.iter().all(|(_, _, ok)| *ok);
    r.say("  the producers sent everything and closed end A");
    let mut received = Vec::new();
    let mut eof = 0;
    let mut cons_ok = true;
    for (pid, mut lines, ok) in finish_all(cons)? {
        let saw_eof = lines.last().is_some_and(|l| l == "EOF");
        if saw_eof {
            lines.pop();
            eof += 1;
        }
        r.say(format!(
            "  consumer pid {pid}: {}, then {}",
            plural(lines.len(), "message"),
            if saw_eof {
                "end-of-file"
            } else {
                "no end-of-file"
            }
        ));
        cons_ok &= ok;
        received.extend(lines);
    }
    let sent = expected_items(producers, items);
    let (_, duplicates, missing) = tally(&sent, &received);
    let ok = prod_ok && cons_ok && eof == consumers && duplicates == 0 && missing == 0;
    r.say(format!(
        "  {}: {} sent, {} received, {duplicates} duplicates, {missing} missing, {eof} of {consumers} consumers saw end-of-file\n",
        verdict(ok),
        sent.len(),
        received.len()
    ));
    Ok(json!({
        "scenario": "pipe", "producers": producers, "consumers": consumers,
        "sent": sent.len(), "received": received.len(), "duplicates": duplicates,
        "missing": missing, "eof": eof, "ok": ok,
    }))
}

const RACE_START: i64 = 100;

/// The race's pause between the read and the write when `--pace` is not given. Without a pause
/// the window between a process's read and its write is a few microseconds, and 70 processes on
/// a few CPUs seldom overlap in it: the unlocked race would usually lose nothing and teach the
/// opposite of its point. With 2 ms every process released from the gate reads before most of
/// the others write.
const RACE_PACE: Duration = Duration::from_millis(2);

fn race(args: &Args, r: &Report) -> Result<Value> {
    let n = args.processes;
    let expected = RACE_START - n as i64;
    let name_seg = seg_name("race");
    let name = name_seg.0.clone();
    let gate_seg = seg_name("race-gate");
    let gate = gate_seg.0.clone();
    let dict = SharedDict::create(
        &name,
        &DictOptions {
            capacity: 8,
            max_key_len: 16,
            ..Default::default()
        },
    )?;
    let q = Queue::create(
        &gate,
        &Options {
            capacity: n.max(1),
            message_size: 1,
            ..Default::default()
        },
    )?;
    let pace = args.pace.unwrap_or(RACE_PACE);
    r.say(format!(
        "race: {n} processes each do count -= 1 on a shared dict, count starting at {RACE_START} (expected {expected}), with a {pace:?} pause between the read and the write (--pace)"
    ));
    let run_variant = |role: &str| -> Result<(Vec<i64>, bool)> {
        let mut finals = Vec::new();
        let mut all_ok = true;
        for _ in 0..args.runs {
            dict.insert("count", RACE_START)?;
            let mut kids = spawn_each(role, n, |_| {
                vec![name.clone(), gate.clone(), pace.as_micros().to_string()]
            })?;
            for k in &mut kids {
                k.line()?; // "ready": attached and waiting at the gate
            }
            // Open the gate for everyone at once, so that the processes really overlap.
            let tokens = vec![[1u8]; n];
            q.put_many(&tokens)?;
            all_ok &= finish_all(kids)?.iter().all(|(_, _, ok)| *ok);
            finals.push(dict.get("count")?.context("count vanished")?);
        }
        Ok((finals, all_ok))
    };
    let (unlocked, unlocked_ok) = run_variant("race-unlocked")?;
    let lost: i64 = unlocked.iter().map(|f| f - expected).sum();
    r.say(format!(
        "  without the lock (get, then insert): finals {unlocked:?}: {} lost in {}",
        plural(lost.unsigned_abs() as usize, "update"),
        plural(args.runs, "run")
    ));
    let (locked, locked_ok) = run_variant("race-locked")?;
    r.say(format!(
        "  with the lock (lock(); get; insert; unlock): finals {locked:?}"
    ));
    let ok = unlocked_ok && locked_ok && locked.iter().all(|&f| f == expected);
    r.say(format!(
        "  {}: with the lock every run ends at exactly {expected}\n",
        verdict(ok)
    ));
    Ok(json!({
        "scenario": "race", "processes": n, "start": RACE_START, "expected": expected,
        "pace_us": pace.as_micros(),
        "unlocked": { "finals": unlocked, "lost_updates": lost },
        "locked": { "finals": locked }, "ok": ok,
    }))
}

/// Starts `n` processes of one role; `args(i)` gives the arguments of the i-th.
/// The largest message of `demo big` (64 MiB in all, head included).
const BIG_MAX: usize = 64 << 20;

fn big(args: &Args, r: &Report) -> Result<Value> {
    let (producers, consumers, items) = (
        args.producers.unwrap_or(3),
        args.consumers.unwrap_or(3),
        args.items.unwrap_or(30),
    );
    let name_seg = seg_name("big");
    let name = name_seg.0.clone();
    let opts = Options {
        capacity: 16,
        message_size: 4096,
        max_message_size: BIG_MAX,
        ..Default::default()
    };
    let q = Queue::create(&name, &opts)?;
    r.say(format!(
        "big: {producers} producers x {items} checksummed messages of 0 B to 64 MiB (skewed small) -> a queue of {} slots of 4 KiB -> {consumers} consumers",
        opts.capacity
    ));
    let start = Instant::now();
    let cons = spawn_each("big-consumer", consumers, |_| vec![name.clone()])?;
    let prods = spawn_each("big-producer", producers, |id| {
        vec![name.clone(), id.to_string(), items.to_string()]
    })?;
    let mut sent = HashSet::new();
    let mut sent_bytes = 0u64;
    let mut prod_ok = true;
    for (_, lines, ok) in finish_all(prods)? {
        prod_ok &= ok;
        for l in lines {
            if let Some((key, len)) = l.split_once(' ') {
                sent_bytes += len.parse::<u64>().unwrap_or(0);
                sent.insert(key.to_owned());
            }
        }
    }
    q.close()?;
    let (mut received, mut largest, mut got_bytes, mut cons_ok) = (Vec::new(), 0u64, 0u64, true);
    for (i, (pid, lines, ok)) in finish_all(cons)?.into_iter().enumerate() {
        cons_ok &= ok;
        let mut bytes = 0u64;
        for l in &lines {
            if let Some((key, len)) = l.split_once(' ') {
                let len = len.parse::<u64>().unwrap_or(0);
                bytes += len;
                largest = largest.max(len);
                received.push(key.to_owned());
            }
        }
        got_bytes += bytes;
        r.say(format!(
            "  consumer {i} (pid {pid}): {}, {:.1} MiB, every one checksummed{}",
            plural(lines.len(), "message"),
            bytes as f64 / f64::from(1 << 20),
            if ok { "" } else { " - FAILED" }
        ));
    }
    let secs = start.elapsed().as_secs_f64();
    let expected = expected_big(producers, items);
    let (unique, duplicates, missing) = tally(&expected, &received);
    let left = shmq_testkit::big::side_segments(&name).len();
    let ok = prod_ok
        && cons_ok
        && sent == expected
        && duplicates == 0
        && missing == 0
        && unique == expected.len()
        && got_bytes == sent_bytes
        && left == 0;
    r.say(format!(
        "  {}: {} sent ({:.1} MiB, largest {:.1} MiB), {} received whole, {duplicates} duplicates, {missing} missing, {left} side segments left, {secs:.1} s\n",
        verdict(ok),
        expected.len(),
        sent_bytes as f64 / f64::from(1 << 20),
        largest as f64 / f64::from(1 << 20),
        received.len()
    ));
    Ok(json!({
        "scenario": "big", "producers": producers, "consumers": consumers,
        "sent": expected.len(), "received": received.len(), "duplicates": duplicates,
        "missing": missing, "bytes": sent_bytes, "largest": largest,
        "side_segments_left": left, "seconds": secs, "ok": ok,
    }))
}

/// What `demo big` producers send: `id:seq` keys.
fn expected_big(producers: usize, items: usize) -> HashSet<String> {
    (0..producers)
        .flat_map(|p| (0..items).map(move |i| format!("{p}:{i}")))
        .collect()
}

fn spawn_each(role: &str, n: usize, args: impl Fn(usize) -> Vec<String>) -> Result<Vec<Kid>> {
    (0..n).map(|i| Kid::spawn(role, &args(i))).collect()
}

/// What `producers` producers of `items` items each send: `p{producer}-{item}`.
fn expected_items(producers: usize, items: usize) -> HashSet<String> {
    (0..producers)
        .flat_map(|p| (0..items).map(move |i| format!("p{p}-{i}")))
        .collect()
}

fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

fn pids(kids: &[Kid]) -> String {
    kids.iter()
        .map(|k| k.pid().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The child side: `shmq demo-child ROLE ARGS...`.
pub(crate) fn child(role: &str, args: &[String]) -> Result<()> {
    let arg = |i: usize| -> Result<&str> {
        args.get(i)
            .map(String::as_str)
            .with_context(|| format!("{role}: argument {i} missing"))
    };
    let num = |i: usize| -> Result<u64> {
        arg(i)?
            .parse()
            .with_context(|| format!("{role}: argument {i} is not a number"))
    };
    let mut out = std::io::stdout().lock();
    let mut say = |s: &str| -> Result<()> {
        writeln!(out, "{s}")?;
        out.flush()?;
        Ok(())
    };
    match role {
        "queue-producer" | "joinable-producer" => {
            let q = Queue::open(arg(0)?)?;
            let (id, items, pace) = (num(1)?, num(2)?, Duration::from_micros(num(3)?));
            for i in 0..items {
                q.put(format!("p{id}-{i}"))?;
                std::thread::sleep(pace);
            }
            if role == "joinable-producer" {
                q.join()?;
                say("joined")?;
            }
        }
        "queue-consumer" | "joinable-consumer" => {
            let q = Queue::open(arg(0)?)?;
            let pace = Duration::from_micros(num(2)?);
            loop {
                match q.get() {
                    Ok(m) => {
                        say(&String::from_utf8_lossy(&m))?;
                        std::thread::sleep(pace);
                        if role == "joinable-consumer" {
                            q.task_done()?;
                        }
                    }
                    Err(GetError::Closed) => break,
                    Err(e) => return Err(e.into()),
                }
            }
        }
        "pipe-producer" => {
            let end = PipeEnd::open(arg(0)?, End::A)?;
            say("attached")?;
            let (id, items, pace) = (num(1)?, num(2)?, Duration::from_micros(num(3)?));
            for i in 0..items {
                end.send(format!("p{id}-{i}"))?;
                std::thread::sleep(pace);
            }
            end.close()?;
        }
        "pipe-consumer" => {
            let end = PipeEnd::open(arg(0)?, End::B)?;
            say("attached")?;
            let pace = Duration::from_micros(num(2)?);
            loop {
                match end.recv() {
                    Ok(m) => {
                        say(&String::from_utf8_lossy(&m))?;
                        std::thread::sleep(pace);
                    }
                    Err(RecvError::Disconnected) => break say("EOF")?,
                    Err(e) => return Err(e.into()),
                }
            }
        }
        "race-unlocked" | "race-locked" => {
            let dict = SharedDict::open(arg(0)?)?;
            let gate = Queue::open(arg(1)?)?;
            let pace = Duration::from_micros(num(2)?);
            say("ready")?;
            gate.get()?;
            if role == "race-unlocked" {
                // Python's `d['count'] -= 1` on a Manager dict: a read and a write, each atomic on its own.
                let v = dict.get("count")?.context("no count")?;
                std::thread::sleep(pace);
                dict.insert("count", v - 1)?;
            } else {
                let mut g = dict.lock()?;
                let v = g.get("count")?.context("no count")?;
                std::thread::sleep(pace);
                g.insert("count", v - 1)?;
            }
        }
        "big-producer" => {
            use shmq_testkit::big;
            let q = Queue::open(arg(0)?)?;
            let (id, items) = (num(1)? as u32, num(2)? as u32);
            let mut rng = big::Rng::new(u64::from(id).wrapping_mul(0x9e37_79b9) + 11);
            for seq in 0..items {
                // Producer 0 sends the extremes: an empty body first, 64 MiB in all last.
                let body = match (id, seq) {
                    (0, 0) => 0,
                    (0, s) if s + 1 == items => BIG_MAX - big::HEAD,
                    _ => big::skewed_size(rng.word(), BIG_MAX - big::HEAD),
                };
                let m = big::message(id, seq, body);
                q.put(&m).map_err(|e| anyhow::anyhow!("put: {e}"))?;
                say(&format!("{id}:{seq} {}", m.len()))?;
            }
        }
        "big-consumer" => {
            let q = Queue::open(arg(0)?)?;
            loop {
                let got = q.get_with(|m| {
                    shmq_testkit::big::check(m).map(|(id, seq)| format!("{id}:{seq} {}", m.len()))
                });
                match got {
                    Ok(Some(line)) => say(&line)?,
                    Ok(None) => bail!("a message arrived damaged"),
                    Err(GetError::Closed) => break,
                    Err(e) => return Err(e.into()),
                }
            }
        }
        _ => bail!("unknown demo role {role:?}"),
    }
    Ok(())
}
