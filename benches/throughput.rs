//! 1 producer process → 1 consumer process: shmq single, batch and zero-copy against an OS
//! pipe (length-prefixed), a Unix `SOCK_SEQPACKET` socket pair and the two lock-free rings of
//! the bench code (the floor, a minimal SPSC ring, and the Vyukov ring, a bounded MPMC ring
//! without crash safety), for 8 B to 64 KiB.
//!
//! Each sample runs `iters` messages through [`Transfer::run`], the same code as `shmq bench`:
//! the children are this binary started again (see `run_child_if_requested`), and the time is
//! taken from the opening of the gate to the consumer's checked report.

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput};
use shmq_cli::workload::{Launcher, Mechanism, ShmqApi, Transfer};

const SIZES: [usize; 5] = [8, 64, 512, 4096, 65536];

fn throughput(c: &mut Criterion, launcher: &Launcher) {
    let mut g = c.benchmark_group("throughput");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for size in SIZES {
        g.throughput(Throughput::Bytes(size as u64));
        for m in [
            Mechanism::Floor,
            Mechanism::Vyukov,
            Mechanism::Shmq(ShmqApi::Single),
            Mechanism::Shmq(ShmqApi::Batch(64)),
            Mechanism::Shmq(ShmqApi::ZeroCopy),
            Mechanism::Pipe,
            Mechanism::Socket,
        ] {
            g.bench_function(BenchmarkId::new(m.name(), size), |b| {
                b.iter_custom(|iters| {
                    let t = Transfer {
                        mechanism: m,
                        size,
                        count: iters,
                        producers: 1,
                        consumers: 1,
                    };
                    t.run(launcher)
                        .unwrap_or_else(|e| panic!("{} {size} B: {e:#}", m.name()))
                });
            });
        }
    }
    g.finish();
}

fn main() {
    shmq_benches::main_with(throughput);
}
