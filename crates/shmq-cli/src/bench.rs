//! `shmq bench`: runs a chosen set of [`workload`](crate::workload)s and turns them into rows
//! with messages/s, MB/s and the ratios to the OS pipe, the floor and the Vyukov ring measured in
//! the same run.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::Result;
use serde::Serialize;

use crate::workload::transfer::interleaved;
use crate::workload::{Launcher, Mechanism, PIPE_BUF, PingOver, ShmqApi, Transfer, ping_pong};

/// A family of workloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Workload {
    /// 1 producer process → 1 consumer process.
    Spsc,
    /// N producer processes → N consumer processes on one queue or pipe.
    Mpmc,
    /// Ping-pong round trips between two processes.
    Rtt,
    /// Large messages (1 MiB and 16 MiB) through 4 KiB slots, 1 → 1, against memcpy in one
    /// process; and 64-byte messages with and without 1 MiB ones interleaved.
    Large,
}

impl Workload {
    /// The name used in tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Spsc => "spsc",
            Workload::Mpmc => "mpmc",
            Workload::Rtt => "rtt",
            Workload::Large => "large",
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Message sizes in bytes (MPMC and round trips use those up to `PIPE_BUF`).
    pub sizes: Vec<usize>,
    /// A fixed number of messages (round trips) per row; `None` sizes each row to `duration`.
    pub messages: Option<u64>,
    /// How long each row should take when `messages` is `None` (after a short pilot run).
    pub duration: Duration,
    /// The workload families.
    pub workloads: Vec<Workload>,
    /// Messages per `put_many`/`get_many_with` in the batch rows.
    pub batch: usize,
    /// Processes per side in the MPMC rows.
    pub processes: usize,
    /// Runs of every row; each row reports its median run. The runs are interleaved (every row
    /// once, then every row again), so that a burst of noise on the machine hits all mechanisms
    /// rather than one.
    pub repeat: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            sizes: vec![64, 65536],
            messages: None,
            duration: Duration::from_millis(500),
            workloads: vec![Workload::Spsc, Workload::Mpmc, Workload::Rtt],
            batch: 64,
            processes: 4,
            repeat: 3,
        }
    }
}

/// One measured row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// `shmq`, `shmq-batch`, `shmq-zero-copy`, `shmq-pod`, `shmq-serde`, `shmq-async`
    /// (round trips), `floor`, `vyukov`, `pipe` or `socket`.
    pub mechanism: String,
    /// `spsc`, `mpmc` or `rtt`.
    pub workload: String,
    /// Bytes per message.
    pub size: usize,
    /// Processes per side.
    pub processes: usize,
    /// Messages (round trips) timed.
    pub messages: u64,
    /// Messages (round trips) per second.
    pub msgs_per_sec: f64,
    /// Payload megabytes (10^6 bytes) per second, one way.
    pub mb_per_sec: f64,
    /// `msgs_per_sec` over the pipe's in the same workload and size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio_to_pipe: Option<f64>,
    /// Median round trip in microseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p50_us: Option<f64>,
    /// 99th percentile round trip in microseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p99_us: Option<f64>,
    /// `p50_us` over the pipe's (lower is better).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p50_ratio_to_pipe: Option<f64>,
    /// `msgs_per_sec` over the floor's (a minimal lock-free SPSC ring, 1 producer → 1
    /// consumer) of the same size: the round-trip floor for round trips, the 1→1 floor for
    /// every other row (the MPMC rows included).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio_to_floor: Option<f64>,
    /// `p50_us` over the floor's round trip (lower is better).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p50_ratio_to_floor: Option<f64>,
    /// shmq rows (every mechanism named `shmq*`) of the 1→1 and N→N workloads: the median,
    /// over the repeats, of this row's `msgs_per_sec` over the `vyukov` row's (Vyukov's bounded
    /// MPMC ring, no crash safety) of the same workload and size in the same repeat.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio_to_vyukov: Option<f64>,
    /// shmq round trips: the median, over the repeats, of this row's `p50_us` over the
    /// `vyukov` round trip's of the same size in the same repeat (lower is better).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p50_ratio_to_vyukov: Option<f64>,
    /// The ratios behind `ratio_to_vyukov` or `p50_ratio_to_vyukov`, one per repeat in the
    /// order run.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub repeat_ratios_to_vyukov: Vec<f64>,
    /// `msgs_per_sec` of every repeat in the order run (the row shows the median one), so
    /// that a row's spread is on record beside its median.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub repeat_rates: Vec<f64>,
    /// Large rows: `mb_per_sec` over the memcpy row's of the same size (one process copying
    /// within its own memory, in the same run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio_to_memcpy: Option<f64>,
    /// Typed rows (`shmq-pod`, `shmq-serde`): the median, over the repeats, of this row's
    /// `msgs_per_sec` over the byte API's (`shmq`) of the same workload and size in the same
    /// repeat (the two run next to each other; see [`run`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio_to_bytes: Option<f64>,
    /// The async round trip (`shmq-async`): the median, over the repeats, of its `p50_us`
    /// over the blocking round trip's (`shmq`) in the same repeat (lower is better).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p50_ratio_to_bytes: Option<f64>,
    /// The interleaved row (`shmq-64+1MiB`): the median, over the repeats, of its 64-byte
    /// `msgs_per_sec` over the `shmq-64` row's (the same 64-byte stream without the large
    /// producer) in the same repeat.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio_to_alone: Option<f64>,
    /// Why the row was not run: its mechanism cannot carry its message size on this machine
    /// (a Unix socket pair refuses a message larger than its send buffer). A skipped row
    /// measured nothing: its counts and rates are zero, it has no ratios, no other row is
    /// compared with it, and [`json_lines`] and [`table`] print only what it is and this.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

/// The byte-API row a typed or async row is paired with (its mechanism, in the same workload
/// and size), for `ratio_to_bytes` and `p50_ratio_to_bytes`.
fn bytes_baseline(mechanism: &str) -> Option<&'static str> {
    match mechanism {
        "shmq-pod" | "shmq-serde" | "shmq-async" => Some("shmq"),
        _ => None,
    }
}

/// The row every shmq row is paired with for `ratio_to_vyukov` and `p50_ratio_to_vyukov`: the
/// Vyukov ring of the same workload and size (there is one in the 1→1, N→N and round-trip
/// workloads, none among the large messages).
fn vyukov_baseline(mechanism: &str) -> Option<&'static str> {
    mechanism.starts_with("shmq").then_some("vyukov")
}

/// The row the interleaved row (`shmq-64+1MiB`) is paired with for `ratio_to_alone`: the same
/// 64-byte stream without the large producer.
fn alone_baseline(mechanism: &str) -> Option<&'static str> {
    (mechanism == "shmq-64+1MiB").then_some("shmq-64")
}

/// One planned row.
#[derive(Debug, Clone, Copy)]
enum Plan {
    Transfer(Transfer),
    Ping {
        over: PingOver,
        size: usize,
    },
    /// 64-byte messages 1 → 1 through 4 KiB slots, with (`large`) or without a second
    /// producer of 1 MiB messages (`transfer::interleaved`).
    Interleaved {
        large: bool,
    },
}

impl Row {
    /// A measured row: `messages` of `size` bytes at `rate` per second by `processes`, with
    /// its round trip's p50/p99 if it is one; no ratios yet (`add_ratios` and the paired
    /// ratios fill them).
    #[allow(clippy::too_many_arguments)]
    fn measured(
        mechanism: &str,
        workload: &str,
        size: usize,
        processes: usize,
        messages: u64,
        rate: f64,
        p50_us: Option<f64>,
        p99_us: Option<f64>,
    ) -> Row {
        Row {
            mechanism: mechanism.into(),
            workload: workload.into(),
            size,
            processes,
            messages,
            msgs_per_sec: rate,
            mb_per_sec: rate * size as f64 / 1e6,
            ratio_to_pipe: None,
            p50_us,
            p99_us,
            p50_ratio_to_pipe: None,
            ratio_to_floor: None,
            p50_ratio_to_floor: None,
            ratio_to_vyukov: None,
            p50_ratio_to_vyukov: None,
            repeat_ratios_to_vyukov: Vec::new(),
            repeat_rates: Vec::new(),
            ratio_to_memcpy: None,
            ratio_to_bytes: None,
            p50_ratio_to_bytes: None,
            ratio_to_alone: None,
            skipped: None,
        }
    }

    /// A row that was not run, and why.
    fn not_run(label: Label, why: String) -> Row {
        Row {
            skipped: Some(why),
            ..Row::measured(
                label.mechanism,
                label.workload.name(),
                label.size,
                label.processes,
                0,
                0.0,
                None,
                None,
            )
        }
    }
}

/// What a planned row is: its mechanism's name, workload, message size and processes per side.
#[derive(Debug, Clone, Copy)]
struct Label {
    mechanism: &'static str,
    workload: Workload,
    size: usize,
    processes: usize,
}

impl Plan {
    fn label(self) -> Label {
        match self {
            Plan::Transfer(t) => Label {
                mechanism: t.mechanism.name(),
                workload: if matches!(
                    t.mechanism,
                    Mechanism::Memcpy | Mechanism::Shmq(ShmqApi::Large)
                ) {
                    Workload::Large
                } else if t.producers > 1 {
                    Workload::Mpmc
                } else {
                    Workload::Spsc
                },
                size: t.size,
                processes: t.producers,
            },
            Plan::Interleaved { large } => Label {
                mechanism: if large { "shmq-64+1MiB" } else { "shmq-64" },
                workload: Workload::Large,
                size: 64,
                processes: if large { 2 } else { 1 },
            },
            Plan::Ping { over, size } => Label {
                mechanism: over.name(),
                workload: Workload::Rtt,
                size,
                processes: 1,
            },
        }
    }

    /// Why this row cannot run on this machine (its mechanism refuses its message size), or
    /// `None`.
    fn refused(self) -> Result<Option<String>> {
        match self {
            Plan::Transfer(t) => t.mechanism.refuses(t.size),
            Plan::Ping { over, size } => over.refuses(size),
            Plan::Interleaved { .. } => Ok(None),
        }
    }

    fn run(self, launcher: &Launcher, count: u64) -> Result<Row> {
        let l = self.label();
        let row = |messages: u64, rate: f64, p50_us, p99_us| {
            Row::measured(
                l.mechanism,
                l.workload.name(),
                l.size,
                l.processes,
                messages,
                rate,
                p50_us,
                p99_us,
            )
        };
        match self {
            Plan::Transfer(mut t) => {
                t.count = count;
                let elapsed = t.run(launcher)?.as_secs_f64();
                Ok(row(count, count as f64 / elapsed, None, None))
            }
            Plan::Interleaved { large } => {
                let elapsed = interleaved(launcher, count, large)?.as_secs_f64();
                Ok(row(count, count as f64 / elapsed, None, None))
            }
            Plan::Ping { over, size } => {
                let warmup = (count / 10).clamp(1, 1000);
                let r = ping_pong(launcher, over, size, warmup, count)?;
                Ok(row(
                    r.count,
                    r.count as f64 / (r.elapsed_ns as f64 / 1e9),
                    Some(r.p50_ns as f64 / 1e3),
                    Some(r.p99_ns as f64 / 1e3),
                ))
            }
        }
    }
}

/// The message sizes of the large-message rows.
pub const LARGE_SIZES: [usize; 2] = [1 << 20, 16 << 20];

fn plan(cfg: &Config) -> Vec<Plan> {
    let mut plans = Vec::new();
    let transfer = |mechanism, size, processes| {
        Plan::Transfer(Transfer {
            mechanism,
            size,
            count: 0,
            producers: processes,
            consumers: processes,
        })
    };
    let small = cfg.sizes.iter().copied().filter(|&s| s <= PIPE_BUF);
    for w in &cfg.workloads {
        match w {
            Workload::Spsc => {
                for &size in &cfg.sizes {
                    plans.push(transfer(Mechanism::Floor, size, 1));
                    // Right before the shmq rows it is paired with (`ratio_to_vyukov`).
                    plans.push(transfer(Mechanism::Vyukov, size, 1));
                    plans.push(transfer(Mechanism::Shmq(ShmqApi::Single), size, 1));
                    // The typed paths at the small size, right after the byte row
                    // they are compared with (`ratio_to_bytes`).
                    if size == 64 {
                        for api in [ShmqApi::Pod, ShmqApi::Serde] {
                            plans.push(transfer(Mechanism::Shmq(api), size, 1));
                        }
                    }
                    for m in [
                        Mechanism::Shmq(ShmqApi::Batch(cfg.batch)),
                        Mechanism::Shmq(ShmqApi::ZeroCopy),
                        Mechanism::Pipe,
                        Mechanism::Socket,
                    ] {
                        plans.push(transfer(m, size, 1));
                    }
                }
            }
            Workload::Mpmc => {
                for size in small.clone() {
                    for m in [
                        Mechanism::Vyukov,
                        Mechanism::Shmq(ShmqApi::Single),
                        Mechanism::Pipe,
                    ] {
                        plans.push(transfer(m, size, cfg.processes));
                    }
                }
            }
            Workload::Large => {
                for size in LARGE_SIZES {
                    for m in [Mechanism::Memcpy, Mechanism::Shmq(ShmqApi::Large)] {
                        plans.push(transfer(m, size, 1));
                    }
                }
                // 64 B alone, then with a 1 MiB message every
                // `transfer::INTERLEAVED_EVERY_US` beside.
                plans.push(Plan::Interleaved { large: false });
                plans.push(Plan::Interleaved { large: true });
            }
            Workload::Rtt => {
                for size in small.clone() {
                    for over in [
                        PingOver::Floor,
                        PingOver::Vyukov,
                        PingOver::Shmq,
                        PingOver::ShmqAsync,
                        PingOver::Pipe,
                        PingOver::Socket,
                    ] {
                        plans.push(Plan::Ping { over, size });
                    }
                }
            }
        }
    }
    plans
}

/// How many rows `cfg` makes.
pub fn row_count(cfg: &Config) -> usize {
    plan(cfg).len()
}

/// How many timed runs `cfg` makes (for a progress bar).
pub fn run_count(cfg: &Config) -> usize {
    row_count(cfg) * cfg.repeat.max(1)
}

/// Runs every row of `cfg`, calling `progress` with each finished row, and fills in the ratios
/// to the pipe. A row whose mechanism cannot carry its message size on this machine is not run:
/// it is returned with [`Row::skipped`] saying why, and the others run.
///
/// # Errors
///
/// The first workload that fails (a failed child or a wrong count or checksum).
pub fn run(cfg: &Config, launcher: &Launcher, mut progress: impl FnMut(&Row)) -> Result<Vec<Row>> {
    let plans = plan(cfg);
    let refused = plans
        .iter()
        .map(|p| p.refused())
        .collect::<Result<Vec<_>>>()?;
    let mut counts = Vec::with_capacity(plans.len());
    let mut keys = Vec::with_capacity(plans.len());
    for (&p, refused) in plans.iter().zip(&refused) {
        if refused.is_some() {
            let l = p.label();
            keys.push((l.mechanism.to_owned(), l.workload.name().to_owned(), l.size));
            counts.push(0);
            continue;
        }
        counts.push(match cfg.messages {
            Some(n) => n.max(1),
            None => {
                // A pilot run at a guessed count, then scale to the duration. A pilot shorter
                // than a tenth of the duration mostly times start-up: it is run again, longer.
                let floor = cfg.duration.as_secs_f64() / 10.0;
                let mut n = pilot_count(p);
                let mut pilot = p.run(launcher, n)?;
                for _ in 0..3 {
                    if n as f64 / pilot.msgs_per_sec >= floor {
                        break;
                    }
                    n = ((pilot.msgs_per_sec * floor * 1.5) as u64).clamp(n * 2, 50_000_000);
                    pilot = p.run(launcher, n)?;
                }
                let target = pilot.msgs_per_sec * cfg.duration.as_secs_f64();
                keys.push((pilot.mechanism, pilot.workload, pilot.size));
                (target as u64).clamp(100, 50_000_000)
            }
        });
    }
    if keys.len() == plans.len() {
        same_count_as_baseline(&keys, &mut counts);
    }
    let mut runs: Vec<Vec<Row>> = vec![Vec::new(); plans.len()];
    for r in 0..cfg.repeat.max(1) {
        // Every other repeat runs the rows in reverse order: a row and the one it is paired
        // with take turns going first, so a drift of the machine's speed does not favour one.
        let order: Vec<usize> = if r % 2 == 0 {
            (0..plans.len()).collect()
        } else {
            (0..plans.len()).rev().collect()
        };
        for i in order {
            if let Some(why) = &refused[i] {
                progress(&Row::not_run(plans[i].label(), why.clone()));
                continue;
            }
            let row = plans[i].run(launcher, counts[i])?;
            progress(&row);
            runs[i].push(row);
        }
    }
    let paired = paired_ratios(&runs, bytes_baseline);
    let alone = paired_ratios(&runs, alone_baseline);
    let vyukov = paired_repeats(&runs, vyukov_baseline);
    let mut rows: Vec<Row> = runs
        .into_iter()
        .zip(refused)
        .zip(&plans)
        .map(|((runs, refused), p)| match refused {
            Some(why) => Row::not_run(p.label(), why),
            None => median(runs),
        })
        .collect();
    for ((row, (rate, p50)), (with_large, _)) in rows.iter_mut().zip(paired).zip(alone) {
        row.ratio_to_bytes = rate;
        row.p50_ratio_to_bytes = p50;
        row.ratio_to_alone = with_large;
    }
    for (row, ratios) in rows.iter_mut().zip(vyukov) {
        set_vyukov_ratios(row, ratios);
    }
    add_ratios(&mut rows);
    Ok(rows)
}

/// Gives every row paired with a byte-API row ([`bytes_baseline`]) and that row the same
/// message count, the largest of theirs, so that paired runs do the same work. `keys[i]` is row
/// `i`'s mechanism, workload and size.
fn same_count_as_baseline(keys: &[(String, String, usize)], counts: &mut [u64]) {
    let base_of = |i: usize| {
        let (m, w, size) = &keys[i];
        let b = bytes_baseline(m)?;
        keys.iter()
            .position(|(m2, w2, s2)| m2 == b && w2 == w && s2 == size)
    };
    let pairs: Vec<(usize, usize)> = (0..keys.len())
        .filter_map(|i| Some((i, base_of(i)?)))
        .collect();
    let mut most = counts.to_vec();
    for &(i, b) in &pairs {
        most[b] = most[b].max(counts[i]);
    }
    for &(i, b) in &pairs {
        counts[i] = most[b];
        counts[b] = most[b];
    }
}

/// The median of `v` (the mean of the middle two for an even count), `None` if it is empty.
fn median_of(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// For every row with a baseline (`baseline` of its mechanism: [`bytes_baseline`],
/// [`alone_baseline`], [`vyukov_baseline`]): its rate over the baseline's rate in each repeat
/// (throughput rows), and its p50 over the baseline's p50 in each repeat (round trips), in the
/// order run. The two rows run close together in every repeat (every other repeat in reverse
/// order, so each goes first as often), so a drift of the machine's speed between repeats
/// cancels out. `runs[i][k]` is row `i`'s run in repeat `k`.
fn paired_repeats(
    runs: &[Vec<Row>],
    baseline: fn(&str) -> Option<&'static str>,
) -> Vec<(Vec<f64>, Vec<f64>)> {
    runs.iter()
        .map(|mine| {
            let Some(first) = mine.first() else {
                return (Vec::new(), Vec::new());
            };
            let Some(base) = baseline(&first.mechanism).and_then(|b| {
                runs.iter().find(|o| {
                    o.first().is_some_and(|f| {
                        f.mechanism == b && f.workload == first.workload && f.size == first.size
                    })
                })
            }) else {
                return (Vec::new(), Vec::new());
            };
            let pairs = mine.iter().zip(base);
            // Throughput rows compare rates; round trips compare their p50 only.
            let rate = pairs
                .clone()
                .filter(|(a, _)| a.p50_us.is_none())
                .map(|(a, b)| a.msgs_per_sec / b.msgs_per_sec)
                .collect();
            let p50 = pairs
                .filter_map(|(a, b)| Some(a.p50_us? / b.p50_us?))
                .collect();
            (rate, p50)
        })
        .collect()
}

/// Sets a row's ratios to the Vyukov ring from its per-repeat rate and p50 ratios (one of the
/// two is empty: a row is a throughput row or a round trip).
fn set_vyukov_ratios(row: &mut Row, (rate, p50): (Vec<f64>, Vec<f64>)) {
    row.ratio_to_vyukov = median_of(rate.clone());
    row.p50_ratio_to_vyukov = median_of(p50.clone());
    row.repeat_ratios_to_vyukov = if rate.is_empty() { p50 } else { rate };
}

/// [`paired_repeats`], each row's ratios reduced to their median.
fn paired_ratios(
    runs: &[Vec<Row>],
    baseline: fn(&str) -> Option<&'static str>,
) -> Vec<(Option<f64>, Option<f64>)> {
    paired_repeats(runs, baseline)
        .into_iter()
        .map(|(rate, p50)| (median_of(rate), median_of(p50)))
        .collect()
}

/// The run with the median rate (for round trips, the median p50 and p99 of the runs).
fn median(mut runs: Vec<Row>) -> Row {
    let mid = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let p50 = runs.iter().filter_map(|r| r.p50_us).collect::<Vec<_>>();
    let p99 = runs.iter().filter_map(|r| r.p99_us).collect::<Vec<_>>();
    let rates = runs.iter().map(|r| r.msgs_per_sec).collect::<Vec<_>>();
    runs.sort_by(|a, b| a.msgs_per_sec.total_cmp(&b.msgs_per_sec));
    let n = runs.len();
    let mut row = runs.swap_remove(n / 2);
    if n > 1 {
        row.repeat_rates = rates;
    }
    if !p50.is_empty() {
        row.p50_us = Some(mid(p50));
        row.p99_us = Some(mid(p99));
    }
    row
}

fn pilot_count(p: Plan) -> u64 {
    match p {
        // Enough large messages that the first fill of the producer's pool of side segments
        // (docs/protocol.md, "Large messages") does not dominate the pilot's rate.
        Plan::Transfer(t) if t.size >= 1 << 20 => 100,
        Plan::Transfer(t) if t.size >= 16384 => 2_000,
        Plan::Transfer(_) => 20_000,
        Plan::Ping { .. } => 2_000,
        Plan::Interleaved { .. } => 20_000,
    }
}

/// Fills `ratio_to_pipe` (and `p50_ratio_to_pipe` for round trips) from the pipe row of the
/// same workload and size, and `ratio_to_floor` (`p50_ratio_to_floor`) from the floor row of the
/// same size (the round-trip floor for round trips, the 1→1 floor otherwise).
pub fn add_ratios(rows: &mut [Row]) {
    let floors: Vec<Row> = rows
        .iter()
        .filter(|r| r.mechanism == "floor" && r.skipped.is_none())
        .cloned()
        .collect();
    for r in rows.iter_mut().filter(|r| r.skipped.is_none()) {
        let want = if r.workload == Workload::Rtt.name() {
            Workload::Rtt.name()
        } else {
            Workload::Spsc.name()
        };
        if let Some(f) = floors
            .iter()
            .find(|f| f.workload == want && f.size == r.size)
        {
            r.ratio_to_floor = Some(r.msgs_per_sec / f.msgs_per_sec);
            if let (Some(a), Some(b)) = (r.p50_us, f.p50_us) {
                r.p50_ratio_to_floor = Some(a / b);
            }
        }
    }
    let copies: Vec<Row> = rows
        .iter()
        .filter(|r| r.mechanism == "memcpy" && r.skipped.is_none())
        .cloned()
        .collect();
    for r in rows.iter_mut().filter(|r| r.skipped.is_none()) {
        if let Some(c) = copies.iter().find(|c| c.size == r.size) {
            r.ratio_to_memcpy = Some(r.mb_per_sec / c.mb_per_sec);
        }
    }
    let alone = rows
        .iter()
        .find(|r| r.mechanism == "shmq-64" && r.skipped.is_none())
        .map(|r| r.msgs_per_sec);
    for r in rows.iter_mut().filter(|r| r.skipped.is_none()) {
        // Rows measured by `run` have their paired ratio already.
        if let (true, None, Some(a)) = (r.mechanism == "shmq-64+1MiB", r.ratio_to_alone, alone) {
            r.ratio_to_alone = Some(r.msgs_per_sec / a);
        }
    }
    let pipes: Vec<Row> = rows
        .iter()
        .filter(|r| r.mechanism == "pipe" && r.skipped.is_none())
        .cloned()
        .collect();
    for r in rows.iter_mut().filter(|r| r.skipped.is_none()) {
        if let Some(p) = pipes
            .iter()
            .find(|p| p.workload == r.workload && p.size == r.size)
        {
            r.ratio_to_pipe = Some(r.msgs_per_sec / p.msgs_per_sec);
            if let (Some(a), Some(b)) = (r.p50_us, p.p50_us) {
                r.p50_ratio_to_pipe = Some(a / b);
            }
        }
    }
}

/// `v` with an SI prefix and `unit`: `8.9 M/s`, `512 k/s`, `2.3 GB/s`.
pub fn human(v: f64, unit: &str) -> String {
    let (scaled, prefix) = if v >= 1e9 {
        (v / 1e9, "G")
    } else if v >= 1e6 {
        (v / 1e6, "M")
    } else if v >= 1e3 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    if scaled >= 100.0 || prefix.is_empty() {
        format!("{scaled:.0} {prefix}{unit}")
    } else {
        format!("{scaled:.1} {prefix}{unit}")
    }
}

/// What the columns of [`table`] mean, for `shmq bench --help`.
pub const LEGEND: &str = "Columns (a column appears only when a row shown has a value in it):
  work       spsc: 1 producer process -> 1 consumer; mpmc: N -> N on one queue; rtt: round trips;
             large: 1 MiB and more, 1 -> 1
  mechanism  shmq (one message per call), shmq-batch, shmq-zero-copy, shmq-pod and
             shmq-serde (typed), shmq-async, shmq-large, shmq-64 and shmq-64+1MiB; pipe (an
             OS pipe), socket (a Unix SOCK_SEQPACKET pair); floor: a minimal lock-free SPSC
             ring between two processes, the fastest a shared-memory queue could be; vyukov:
             Dmitry Vyukov's bounded lock-free MPMC ring in the same kind of segment, with
             shmq's slot size and capacity, spinning, not crash-safe; memcpy: one process
             copying the same sizes
  procs      processes per side;  messages: messages (round trips) measured
  rate       messages (round trips) per second;  bytes/s: payload bytes per second
  x pipe     rate over the OS pipe's in the same row (higher is better)
  x floor    rate over the floor's of the same size (how close to the floor; 1.00 is the floor)
  x vyukov   shmq rows: the median over the repeats of the rate over the vyukov row's of the
             same workload and size in the same repeat (what crash safety costs)
  p50, p99   median and 99th-percentile round trip;  p50/pipe, p50/floor: over the pipe's,
             the floor's (lower is better);  p50/vyukov: shmq round trips, the median over
             the repeats of the p50 over the vyukov round trip's in the same repeat
  x memcpy   large rows: bytes/s over memcpy's
  x bytes    typed rows: rate over the byte API's (shmq) in the same repeat;  p50/bytes: the
             async round trip's p50 over the blocking one's
  x alone    the interleaved row (64 B messages sharing the queue with 1 MiB ones): its 64 B
             rate over the same stream's alone

Progress: a bar on stderr when it is a terminal, otherwise one line on stderr per run.";

/// One column of [`table`]: its header, its width and its cell of a row (`None`: none).
struct Column {
    header: &'static str,
    width: usize,
    cell: fn(&Row) -> Option<String>,
}

/// A ratio with two decimals.
fn ratio(v: Option<f64>) -> Option<String> {
    v.map(|v| format!("{v:.2}"))
}

/// A latency in microseconds.
fn micros(v: Option<f64>) -> Option<String> {
    v.map(|v| {
        if v >= 1000.0 {
            format!("{:.2} ms", v / 1000.0)
        } else {
            format!("{v:.1} us")
        }
    })
}

/// The columns after work, mechanism, size and procs, each shown only if a row has it.
const COLUMNS: [Column; 15] = [
    Column {
        header: "messages",
        width: 10,
        cell: |r| Some(r.messages.to_string()),
    },
    Column {
        header: "rate",
        width: 10,
        cell: |r| Some(human(r.msgs_per_sec, "/s")),
    },
    Column {
        header: "bytes/s",
        width: 10,
        cell: |r| Some(human(r.mb_per_sec * 1e6, "B/s")),
    },
    Column {
        header: "x pipe",
        width: 7,
        cell: |r| ratio(r.ratio_to_pipe),
    },
    Column {
        header: "x floor",
        width: 7,
        cell: |r| ratio(r.ratio_to_floor),
    },
    Column {
        header: "x vyukov",
        width: 8,
        cell: |r| ratio(r.ratio_to_vyukov),
    },
    Column {
        header: "p50",
        width: 9,
        cell: |r| micros(r.p50_us),
    },
    Column {
        header: "p99",
        width: 9,
        cell: |r| micros(r.p99_us),
    },
    Column {
        header: "p50/pipe",
        width: 8,
        cell: |r| ratio(r.p50_ratio_to_pipe),
    },
    Column {
        header: "p50/floor",
        width: 9,
        cell: |r| ratio(r.p50_ratio_to_floor),
    },
    Column {
        header: "p50/vyukov",
        width: 10,
        cell: |r| ratio(r.p50_ratio_to_vyukov),
    },
    Column {
        header: "x memcpy",
        width: 8,
        cell: |r| ratio(r.ratio_to_memcpy),
    },
    Column {
        header: "x bytes",
        width: 7,
        cell: |r| ratio(r.ratio_to_bytes),
    },
    Column {
        header: "p50/bytes",
        width: 9,
        cell: |r| ratio(r.p50_ratio_to_bytes),
    },
    Column {
        header: "x alone",
        width: 7,
        cell: |r| ratio(r.ratio_to_alone),
    },
];

/// The rows as an aligned text table in human units (`8.9 M/s`), with only the columns that
/// some row shown has a value in ([`LEGEND`] says what each means).
pub fn table(rows: &[Row]) -> String {
    let measured: Vec<&Row> = rows.iter().filter(|r| r.skipped.is_none()).collect();
    let cols: Vec<&Column> = COLUMNS
        .iter()
        .filter(|c| measured.iter().any(|r| (c.cell)(r).is_some()))
        .collect();
    let mut out = String::new();
    let _ = write!(
        out,
        "{:<6} {:<15} {:>8} {:>5}",
        "work", "mechanism", "size", "procs"
    );
    for c in &cols {
        let _ = write!(out, " {:>w$}", c.header, w = c.width);
    }
    out.push('\n');
    for r in rows {
        let _ = write!(
            out,
            "{:<6} {:<15} {:>8} {:>5}",
            r.workload, r.mechanism, r.size, r.processes
        );
        if let Some(why) = &r.skipped {
            let _ = writeln!(out, " skipped: {why}");
            continue;
        }
        for c in &cols {
            let cell = (c.cell)(r).unwrap_or_else(|| "-".into());
            let _ = write!(out, " {cell:>w$}", w = c.width);
        }
        out.push('\n');
    }
    out
}

/// The rows as JSON, one object per line; a skipped row as `mechanism`, `workload`, `size`,
/// `processes` and `skipped` (the reason) only.
///
/// # Errors
///
/// Never in practice (the rows are plain data).
pub fn json_lines(rows: &[Row]) -> Result<String> {
    let mut out = String::new();
    for r in rows {
        let line = match &r.skipped {
            Some(why) => serde_json::to_string(&serde_json::json!({
                "mechanism": r.mechanism,
                "workload": r.workload,
                "size": r.size,
                "processes": r.processes,
                "skipped": why,
            }))?,
            None => serde_json::to_string(r)?,
        };
        out.push_str(&line);
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A row of `mechanism` in `workload` at 64 bytes with the given rate and p50, no ratios.
    fn test_row(mechanism: &str, workload: &str, rate: f64, p50: Option<f64>) -> Row {
        Row::measured(mechanism, workload, 64, 1, 1, rate, p50, p50)
    }

    #[test]
    fn the_default_plan_covers_the_issue_rows() {
        let cfg = Config::default();
        // spsc: 7 mechanisms (floor and vyukov included) x 2 sizes, plus Pod and serde at
        // 64 B; mpmc: 3 x 64 B (vyukov included); rtt: 6 x 64 B (vyukov and async included).
        assert_eq!(row_count(&cfg), 14 + 2 + 3 + 6);
    }

    /// A row of several repeats shows its median run and keeps every repeat's rate in run
    /// order; a single run keeps none (its rate is the row's).
    #[test]
    fn the_median_row_keeps_every_repeats_rate_in_run_order() {
        let runs = [300.0, 100.0, 200.0].map(|r| test_row("shmq", "spsc", r, None));
        let row = median(runs.to_vec());
        assert_eq!(row.msgs_per_sec, 200.0);
        assert_eq!(row.repeat_rates, vec![300.0, 100.0, 200.0]);
        let one = median(vec![test_row("shmq", "spsc", 50.0, None)]);
        assert!(one.repeat_rates.is_empty());
    }

    /// The typed and async rows get the median of their per-repeat ratios to the byte row of
    /// the same repeat (not the ratio of two medians), and no other row gets one.
    #[test]
    fn typed_rows_get_the_median_of_their_paired_ratios_to_bytes() {
        let run = |m: &str, work: &str, rate: f64, p50: Option<f64>| test_row(m, work, rate, p50);
        // Repeats: bytes 100, 400, 200; Pod 90, 100, 190 -> ratios 0.9, 0.25, 0.95 -> 0.9.
        // (The ratio of the medians would be 190 / 200 = 0.95.)
        let bytes = [100.0, 400.0, 200.0].map(|r| run("shmq", "spsc", r, None));
        let pod = [90.0, 100.0, 190.0].map(|r| run("shmq-pod", "spsc", r, None));
        let blocking = [2.0, 4.0].map(|p| run("shmq", "rtt", 1.0, Some(p)));
        let asynch = [5.0, 6.0].map(|p| run("shmq-async", "rtt", 1.0, Some(p)));
        let runs = vec![
            bytes.to_vec(),
            pod.to_vec(),
            blocking.to_vec(),
            asynch.to_vec(),
        ];
        let r = paired_ratios(&runs, bytes_baseline);
        assert_eq!(r[0], (None, None));
        assert_eq!(r[1].0, Some(0.9));
        assert_eq!(r[1].1, None);
        assert_eq!(r[2], (None, None));
        // p50 ratios 2.5 and 1.5: the median of two is their mean; no rate ratio.
        assert_eq!(r[3], (None, Some(2.0)));
    }

    /// Every shmq row with a vyukov row of its workload and size gets the median of its
    /// per-repeat ratios to it (rates, or p50 for round trips) and those ratios in run order;
    /// the vyukov row itself, other mechanisms, and shmq rows without a vyukov row (other
    /// sizes, the large workload) get none.
    #[test]
    fn shmq_rows_get_the_median_of_their_per_repeat_ratios_to_vyukov() {
        let run = |m: &str, work: &str, rate: f64, p50: Option<f64>| test_row(m, work, rate, p50);
        // Vyukov 100, 400, 200; shmq 60, 100, 190 -> 0.6, 0.25, 0.95 -> 0.6 (the ratio of the
        // medians would be 100 / 200 = 0.5).
        let vyukov = [100.0, 400.0, 200.0].map(|r| run("vyukov", "spsc", r, None));
        let shmq = [60.0, 100.0, 190.0].map(|r| run("shmq", "spsc", r, None));
        let batch = [300.0, 800.0, 500.0].map(|r| run("shmq-batch", "spsc", r, None));
        let pipe = [50.0, 50.0, 50.0].map(|r| run("pipe", "spsc", r, None));
        let mut other_size = shmq.clone();
        for r in &mut other_size {
            r.size = 65536;
        }
        let large = [10.0, 10.0, 10.0].map(|r| run("shmq-large", "large", r, None));
        // Round trips: p50 4/1, 2/2, 9/3 -> 4, 1, 3 -> 3.
        let rtt_v = [1.0, 2.0, 3.0].map(|p| run("vyukov", "rtt", 1.0, Some(p)));
        let rtt_s = [4.0, 2.0, 9.0].map(|p| run("shmq", "rtt", 1.0, Some(p)));
        let runs = vec![
            vyukov.to_vec(),
            shmq.to_vec(),
            batch.to_vec(),
            pipe.to_vec(),
            other_size.to_vec(),
            large.to_vec(),
            rtt_v.to_vec(),
            rtt_s.to_vec(),
        ];
        let mut rows: Vec<Row> = runs.iter().map(|r| r[0].clone()).collect();
        for (row, ratios) in rows.iter_mut().zip(paired_repeats(&runs, vyukov_baseline)) {
            set_vyukov_ratios(row, ratios);
        }
        let got = |i: usize| {
            (
                rows[i].ratio_to_vyukov,
                rows[i].p50_ratio_to_vyukov,
                rows[i].repeat_ratios_to_vyukov.clone(),
            )
        };
        assert_eq!(got(0), (None, None, vec![]));
        assert_eq!(got(1), (Some(0.6), None, vec![0.6, 0.25, 0.95]));
        assert_eq!(got(2), (Some(2.5), None, vec![3.0, 2.0, 2.5]));
        for i in [3, 4, 5, 6] {
            assert_eq!(got(i), (None, None, vec![]), "row {i}");
        }
        assert_eq!(got(7), (None, Some(3.0), vec![4.0, 1.0, 3.0]));
        let json = json_lines(&rows).unwrap();
        let line: serde_json::Value = serde_json::from_str(json.lines().nth(1).unwrap()).unwrap();
        assert_eq!(line["ratio_to_vyukov"], 0.6);
        assert_eq!(
            line["repeat_ratios_to_vyukov"],
            serde_json::json!([0.6, 0.25, 0.95])
        );
        let first: serde_json::Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
        assert!(first.get("repeat_ratios_to_vyukov").is_none(), "{first}");
        let table = table(&rows);
        let header = table.lines().next().unwrap();
        assert!(
            header.contains("x vyukov") && header.contains("p50/vyukov"),
            "{header}"
        );
    }

    /// Every workload that has shmq rows has a vyukov row of each size, run right before the
    /// byte-API shmq row it is paired with.
    #[test]
    fn the_plan_puts_a_vyukov_row_right_before_each_shmq_row() {
        let cfg = Config {
            sizes: vec![8, 64, 65536],
            workloads: vec![Workload::Spsc, Workload::Mpmc, Workload::Rtt],
            ..Config::default()
        };
        let labels: Vec<Label> = plan(&cfg).into_iter().map(Plan::label).collect();
        let mut seen = 0;
        for (i, l) in labels.iter().enumerate() {
            if l.mechanism == "shmq" {
                let before = &labels[i - 1];
                assert_eq!(
                    (
                        before.mechanism,
                        before.workload,
                        before.size,
                        before.processes
                    ),
                    ("vyukov", l.workload, l.size, l.processes)
                );
                seen += 1;
            }
        }
        // spsc at 3 sizes, mpmc and rtt at the 2 sizes up to 4 KiB.
        assert_eq!(seen, 3 + 2 + 2);
        assert_eq!(
            labels.iter().filter(|l| l.mechanism == "vyukov").count(),
            seen
        );
        assert!(
            labels.iter().any(|l| l.mechanism == "vyukov"
                && l.workload == Workload::Mpmc
                && l.processes == 4)
        );
    }

    /// The interleaved row gets the median of its per-repeat ratios to the 64-byte stream alone.
    #[test]
    fn the_interleaved_row_gets_the_median_of_its_paired_ratios_to_the_stream_alone() {
        let run = |m: &str, rate: f64| test_row(m, "large", rate, None);
        // Alone 100, 300, 200; with large 90, 150, 190 -> 0.9, 0.5, 0.95 -> 0.9 (the ratio of
        // the medians would be 150 / 200 = 0.75).
        let alone = [100.0, 300.0, 200.0].map(|r| run("shmq-64", r));
        let mixed = [90.0, 150.0, 190.0].map(|r| run("shmq-64+1MiB", r));
        let r = paired_ratios(&[alone.to_vec(), mixed.to_vec()], alone_baseline);
        assert_eq!(r, vec![(None, None), (Some(0.9), None)]);
        assert_eq!(
            paired_ratios(&[mixed.to_vec()], bytes_baseline),
            vec![(None, None)]
        );
    }

    /// A typed row and its byte row get the larger of their counts; other rows keep theirs.
    #[test]
    fn paired_rows_get_the_same_count() {
        let key = |m: &str, w: &str| (m.to_string(), w.to_string(), 64);
        let keys = [
            key("shmq", "spsc"),
            key("shmq-pod", "spsc"),
            key("shmq-serde", "spsc"),
            key("pipe", "spsc"),
            key("shmq", "rtt"),
            key("shmq-async", "rtt"),
        ];
        let mut counts = [300, 900, 100, 50, 70, 40];
        same_count_as_baseline(&keys, &mut counts);
        assert_eq!(counts, [900, 900, 900, 50, 70, 70]);
    }

    /// A skipped row gets no ratio and is no baseline for the others; its JSON and table line
    /// say what it is and why, and no measurement.
    #[test]
    fn a_skipped_row_has_no_ratios_and_is_no_baseline() {
        let label = Label {
            mechanism: "pipe",
            workload: Workload::Spsc,
            size: 64,
            processes: 1,
        };
        let mut rows = vec![
            test_row("shmq", "spsc", 300.0, None),
            Row::not_run(label, "too big".into()),
            test_row("floor", "spsc", 600.0, None),
        ];
        add_ratios(&mut rows);
        assert_eq!(rows[0].ratio_to_pipe, None);
        assert_eq!(rows[0].ratio_to_floor, Some(0.5));
        assert_eq!(
            (rows[1].ratio_to_pipe, rows[1].ratio_to_floor),
            (None, None)
        );
        let json = json_lines(&rows).unwrap();
        let skipped: serde_json::Value =
            serde_json::from_str(json.lines().nth(1).unwrap()).unwrap();
        assert_eq!(
            skipped,
            serde_json::json!({"mechanism": "pipe", "workload": "spsc", "size": 64,
                "processes": 1, "skipped": "too big"})
        );
        let table = table(&rows);
        let line = table.lines().nth(2).unwrap();
        assert!(
            line.starts_with("spsc   pipe") && line.ends_with("skipped: too big"),
            "{line}"
        );
    }

    #[test]
    fn ratios_are_relative_to_the_pipe_of_the_same_row() {
        let row = |m: &str, rate: f64| test_row(m, "spsc", rate, None);
        let mut rows = vec![row("shmq", 300.0), row("pipe", 100.0), row("floor", 600.0)];
        add_ratios(&mut rows);
        assert_eq!(rows[0].ratio_to_pipe, Some(3.0));
        assert_eq!(rows[1].ratio_to_pipe, Some(1.0));
        assert_eq!(rows[0].ratio_to_floor, Some(0.5));
        assert_eq!(rows[2].ratio_to_floor, Some(1.0));
        assert_eq!(rows[0].ratio_to_alone, None);
        let json = json_lines(&rows).unwrap();
        assert!(json.contains("\"ratio_to_pipe\":3.0"));
        assert!(json.contains("\"ratio_to_floor\":0.5"));
        let mut mixed = vec![row("shmq-64+1MiB", 80.0), row("shmq-64", 100.0)];
        add_ratios(&mut mixed);
        assert_eq!(mixed[0].ratio_to_alone, Some(0.8));
        assert_eq!(mixed[1].ratio_to_alone, None);
    }
}
