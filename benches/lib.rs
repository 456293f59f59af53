//! Criterion benchmarks of shmq; the benchmark files are the content, see `Cargo.toml`.
