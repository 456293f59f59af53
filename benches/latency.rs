//! 64-byte ping-pong between two processes: one round trip per iteration, over two shmq
//! queues, two floor rings, two Vyukov rings, two OS pipes and a Unix `SOCK_SEQPACKET` socket
//! pair. Criterion reports the mean; `shmq bench --workloads rtt` reports p50 and p99 of the
//! same workload.

use std::time::Duration;

use criterion::{BenchmarkId, Criterion};
use shmq_cli::workload::{Launcher, PingOver, ping_pong};

const SIZE: usize = 64;

fn latency(c: &mut Criterion, launcher: &Launcher) {
    let mut g = c.benchmark_group("round_trip");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for over in [
        PingOver::Floor,
        PingOver::Vyukov,
        PingOver::Shmq,
        PingOver::Pipe,
        PingOver::Socket,
    ] {
        g.bench_function(BenchmarkId::new(over.name(), SIZE), |b| {
            b.iter_custom(|iters| {
                let r = ping_pong(launcher, over, SIZE, 100, iters)
                    .unwrap_or_else(|e| panic!("{}: {e:#}", over.name()));
                Duration::from_nanos(r.elapsed_ns)
            });
        });
    }
    g.finish();
}

fn main() {
    shmq_benches::main_with(latency);
}
