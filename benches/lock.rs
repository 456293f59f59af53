//! Lock/unlock of shmq's robust process-shared mutex, uncontended and contended by a second
//! process, against `std::sync::Mutex` in one process (uncontended, and contended by a second
//! thread) as the reference.
//!
//! `raw_sync`'s non-robust mutex is not measured here: constructing one takes an `unsafe` call
//! (`raw_sync::locks::Mutex::new` on raw pointers), and this project keeps `unsafe` inside
//! shmq's low modules. See `docs/benchmarks.md`.

use std::hint::black_box;
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use criterion::Criterion;
use shmq_cli::workload::{Launcher, SharedMutex};

fn lock(c: &mut Criterion, launcher: &Launcher) {
    let mut g = c.benchmark_group("lock");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));

    let shared = SharedMutex::create().unwrap_or_else(|e| panic!("{e:#}"));
    let m = shared.mutex().unwrap_or_else(|e| panic!("{e:#}"));
    g.bench_function("shmq_robust/uncontended", |b| {
        b.iter(|| drop(black_box(m.lock().unwrap_or_else(|e| panic!("{e}")))));
    });
    let std_mutex = Mutex::new(0u64);
    g.bench_function("std/uncontended", |b| {
        b.iter(|| *black_box(std_mutex.lock().unwrap_or_else(|e| e.into_inner())) += 1);
    });

    g.bench_function("shmq_robust/two_processes", |b| {
        b.iter_custom(|iters| {
            shared
                .contended(launcher, iters, |m| {
                    for _ in 0..iters {
                        drop(black_box(m.lock()?));
                    }
                    Ok(())
                })
                .unwrap_or_else(|e| panic!("{e:#}"))
        });
    });
    let std_shared = Arc::new(Mutex::new(0u64));
    g.bench_function("std/two_threads", |b| {
        b.iter_custom(|iters| {
            let other = Arc::clone(&std_shared);
            let go = Arc::new(Barrier::new(2));
            let go2 = Arc::clone(&go);
            let t = std::thread::spawn(move || {
                go2.wait();
                for _ in 0..iters {
                    *other.lock().unwrap_or_else(|e| e.into_inner()) += 1;
                }
            });
            go.wait();
            let start = Instant::now();
            for _ in 0..iters {
                *black_box(std_shared.lock().unwrap_or_else(|e| e.into_inner())) += 1;
            }
            let elapsed = start.elapsed();
            t.join()
                .unwrap_or_else(|_| panic!("hammer thread panicked"));
            elapsed
        });
    });
    g.finish();
}

fn main() {
    shmq_benches::main_with(lock);
}
