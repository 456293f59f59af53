//! 4 producer processes → 4 consumer processes on one shmq queue, against the Vyukov ring of
//! the bench code (a bounded lock-free MPMC ring without crash safety) and one OS pipe shared
//! by all eight with fixed-size (atomic, ≤ `PIPE_BUF`) writes and reads.

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput};
use shmq_cli::workload::{Launcher, Mechanism, ShmqApi, Transfer};

const PROCESSES: usize = 4;

fn mpmc(c: &mut Criterion, launcher: &Launcher) {
    let mut g = c.benchmark_group("mpmc_4x4");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for size in [8usize, 64] {
        g.throughput(Throughput::Bytes(size as u64));
        for m in [
            Mechanism::Vyukov,
            Mechanism::Shmq(ShmqApi::Single),
            Mechanism::Pipe,
        ] {
            g.bench_function(BenchmarkId::new(m.name(), size), |b| {
                b.iter_custom(|iters| {
                    let t = Transfer {
                        mechanism: m,
                        size,
                        // At least one message per producer, so every process takes part.
                        count: iters.max(PROCESSES as u64),
                        producers: PROCESSES,
                        consumers: PROCESSES,
                    };
                    let elapsed = t
                        .run(launcher)
                        .unwrap_or_else(|e| panic!("{} {size} B: {e:#}", m.name()));
                    elapsed.mul_f64(iters as f64 / t.count as f64)
                });
            });
        }
    }
    g.finish();
}

fn main() {
    shmq_benches::main_with(mpmc);
}
