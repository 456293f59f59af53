//! Criterion benchmarks of shmq; the benchmark files are the content, see `Cargo.toml`. This
//! library holds the one `main` they share.

use criterion::Criterion;
use shmq_cli::workload::{Launcher, run_child_if_requested};

/// The `main` of every benchmark file: if this process was started as one side of a workload,
/// run that side and exit; otherwise run `bench` under criterion. `SHMQ_BENCH_PIN=1` puts
/// senders on CPU 0 and receivers on CPU 1 (as `shmq bench --pin`).
///
/// # Panics
///
/// If the running executable cannot be located (it is re-executed for the child processes).
pub fn main_with(bench: fn(&mut Criterion, &Launcher)) {
    run_child_if_requested();
    let launcher = Launcher::current_exe(&[])
        .unwrap_or_else(|e| panic!("{e:#}"))
        .pinned(std::env::var_os("SHMQ_BENCH_PIN").is_some());
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c, &launcher);
    c.final_summary();
}
