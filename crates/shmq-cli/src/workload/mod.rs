//! Cross-process workloads: every side of every transfer is a function that runs in a child
//! process, and the parent only wires the processes together and times the whole transfer.
//!
//! A child is the current executable started again with its [`Role`] in the environment
//! variable [`CHILD_ENV`] (as JSON). The `shmq` binary reaches [`run_child`] through a hidden
//! subcommand, the criterion benches by checking the variable before criterion starts; both go
//! through a [`Launcher`].
//!
//! Protocol between parent and child, on the child's stderr: one line `SHMQ-READY` once its
//! resources are open, one line `SHMQ-REPORT {json}` with its result, anything else is an error
//! message. Producers wait on a *gate* (a small shmq queue) after `SHMQ-READY`, so process
//! start-up is outside the timed interval: the clock starts when the parent opens the gate and
//! stops when the last consumer's report arrives.
//!
//! Every message carries its sequence number in its first 8 bytes and, from 16 bytes up, the
//! same number xor [`TAIL_MAGIC`] in its last 8; every consumer checks the length and both words,
//! counts, and sums a hash of each sequence number. The parent compares count and checksum with
//! what the producers sent, so a fast wrong answer fails the run.
//!
//! The modules follow the seams: [`roles`] (what a child does, the message format and the
//! child's side of the protocol), `child` (a child's entry point: from its role to the function
//! that plays it), `transports` (shmq, OS pipe and socket I/O), [`launcher`]
//! (the parent's side), [`transfer`] (timed many-message runs), [`ping`] (round trips),
//! [`mutex`] (the lock benchmarks' shared mutex), the two baselines written here: `floor` (a
//! minimal SPSC ring) and [`vyukov`] (Vyukov's bounded MPMC ring), and [`calls`] (one thread
//! putting and getting, for instruction counts).

pub mod calls;
mod child;
mod floor;
pub mod launcher;
pub mod mutex;
pub mod ping;
pub mod roles;
pub mod transfer;
mod transports;
pub mod vyukov;

pub use child::{run_child, run_child_if_requested};
pub use launcher::Launcher;
pub use mutex::SharedMutex;
pub use ping::{PingOver, ping_pong};
pub use roles::queue_capacity;
pub use roles::{Framing, PingReport, Role, ShmqApi, Tally, Transport, check, mix, stamp};
pub use transfer::{Mechanism, Transfer};

/// The environment variable that holds a child's [`Role`] as JSON.
pub const CHILD_ENV: &str = "SHMQ_CLI_CHILD";
/// The environment variable that pins a child to one CPU (set by a pinning [`Launcher`]).
pub const CPU_ENV: &str = "SHMQ_CLI_CPU";
/// The second check word of a message is its sequence number xor this.
pub const TAIL_MAGIC: u64 = 0x5EED_5EED_0BAD_F00D;
/// The smallest message a workload sends (room for the sequence number).
pub const MIN_SIZE: usize = 8;
/// The largest message an OS pipe writes atomically (`PIPE_BUF` on Linux).
pub const PIPE_BUF: usize = 4096;

pub(crate) const READY: &str = "SHMQ-READY";
pub(crate) const REPORT: &str = "SHMQ-REPORT ";
