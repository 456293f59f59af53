//! `shmq bench`: the cross-process comparison with OS pipes and Unix sockets.

use std::io::IsTerminal;
use std::time::Duration;

use anyhow::{Result, bail};
use clap::ValueEnum;
use shmq_cli::bench::{self, Config, Workload};
use shmq_cli::workload::{Launcher, MIN_SIZE};

use super::parse_duration;

/// Workload families on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum WorkloadArg {
    /// 1 producer process → 1 consumer process.
    Spsc,
    /// N producers → N consumers on one queue (see --processes).
    Mpmc,
    /// Ping-pong round trips (p50/p99).
    Rtt,
    /// 1 MiB and 16 MiB messages through 4 KiB slots, 1 → 1, and memcpy of the same sizes.
    Large,
}

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Message sizes in bytes, comma-separated (MPMC and round trips use those ≤ 4096).
    #[arg(long, value_delimiter = ',', default_value = "64,65536")]
    sizes: Vec<usize>,
    /// Messages (round trips) per row; without it each row is sized to --duration.
    #[arg(long)]
    messages: Option<u64>,
    /// Target duration of each row, e.g. 500ms or 2s (ignored with --messages).
    #[arg(long, default_value = "500ms", value_parser = parse_duration)]
    duration: Duration,
    /// Workload families to run, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "spsc,mpmc,rtt")]
    workloads: Vec<WorkloadArg>,
    /// Messages per batch in the shmq-batch rows.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Processes per side in the MPMC rows.
    #[arg(long, default_value_t = 4)]
    processes: usize,
    /// Runs of every row (interleaved, every other repeat in reverse order); each row reports
    /// its median run, the typed and async rows the median of their ratios to the byte row of
    /// the same repeat (`x bytes`, `p50/bytes`), and the shmq rows the median of their ratios
    /// to the vyukov row of the same repeat (`x vyukov`, `p50/vyukov`).
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Pin senders to CPU 0 and receivers to CPU 1 (measure the cross-CPU case).
    #[arg(long)]
    pin: bool,
    /// Print one JSON object per row instead of a table.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: &Args) -> Result<()> {
    if let Some(&s) = args.sizes.iter().find(|&&s| s < MIN_SIZE) {
        bail!("message size {s} is below the minimum of {MIN_SIZE} bytes");
    }
    if args.batch == 0 || args.processes == 0 || args.repeat == 0 {
        bail!("--batch, --processes and --repeat must be at least 1");
    }
    let mut workloads: Vec<Workload> = args
        .workloads
        .iter()
        .map(|w| match w {
            WorkloadArg::Spsc => Workload::Spsc,
            WorkloadArg::Mpmc => Workload::Mpmc,
            WorkloadArg::Rtt => Workload::Rtt,
            WorkloadArg::Large => Workload::Large,
        })
        .collect();
    workloads.sort();
    workloads.dedup();
    let cfg = Config {
        sizes: args.sizes.clone(),
        messages: args.messages,
        duration: args.duration,
        workloads,
        batch: args.batch,
        processes: args.processes,
        repeat: args.repeat,
    };
    let launcher = Launcher::current_exe(&["child"])?.pinned(args.pin);
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(bench::run_count(&cfg) as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    // Without a terminal for the bar (output to files, CI logs), one line per run on stderr,
    // so that a long benchmark does not look hung.
    let runs = bench::run_count(&cfg);
    let mut done = 0usize;
    let rows = bench::run(&cfg, &launcher, |r| {
        done += 1;
        if let Some(b) = &bar {
            b.set_message(format!("{} {} {} B", r.workload, r.mechanism, r.size));
            b.inc(1);
        } else {
            eprintln!(
                "shmq bench: {done}/{runs} {} {} {} B",
                r.workload, r.mechanism, r.size
            );
        }
    });
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let rows = rows?;
    if args.json {
        outln!("{}", bench::json_lines(&rows)?.trim_end());
    } else {
        outln!("{}", bench::table(&rows).trim_end());
    }
    Ok(())
}
