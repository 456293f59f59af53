//! The library behind the `shmq` command: cross-process [`workload`]s that move real traffic
//! between child processes (shmq against an OS pipe and a Unix `SOCK_SEQPACKET` socket pair),
//! and the [`bench`](mod@bench) runner that turns them into tables. The criterion benches in `benches/`
//! reuse the same workloads.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bench;
pub mod workload;
