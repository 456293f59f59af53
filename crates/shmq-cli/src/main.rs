//! `shmq`: the command-line tool of the shmq shared-memory IPC engine.
//!
//! One module per subcommand family under `cmd/`; this file only parses and dispatches.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;

use cmd::Outcome;

#[derive(Debug, Parser)]
#[command(
    name = "shmq",
    version,
    about = "Shared-memory IPC queues for Linux processes",
    after_help = "Output: data (messages, stat, ls, dict values, bench tables) goes to stdout; \
                  status lines (created, closed, removed, kept, why a get stopped) and errors \
                  go to stderr.\n\n\
                  Exit status: 0 on success; 1 on an error (one line on stderr); 2 on a usage \
                  error (an unknown option, a bad value: clap's message on stderr); 3 when `get` \
                  took fewer messages than --count (its timeout, an empty queue with --nowait, \
                  or the queue closed and drained) or `join --timeout` timed out: what was \
                  taken is printed, and one line on stderr says what ended it."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run Python multiprocessing's classic examples (producers and consumers on a queue,
    /// JoinableQueue, a pipe, a shared counter race), large messages and the NATS bridge
    /// across real processes.
    Demo(cmd::demo::Args),
    /// Bridge a local queue to a NATS JetStream stream and back (exactly once across a
    /// bridge's death; docs/bridge.md).
    #[cfg(feature = "bridge")]
    #[command(subcommand)]
    Bridge(Box<cmd::bridge::BridgeCmd>),
    /// Bridge a local queue to a NATS JetStream stream and back: not built into this shmq
    /// (build it with `--features bridge`; docs/bridge.md).
    #[cfg(not(feature = "bridge"))]
    Bridge {
        /// The bridge's arguments (`out`, `in`, `bench`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
        args: Vec<String>,
    },
    /// Compare shmq with an OS pipe and a Unix socket pair across real processes.
    #[command(after_help = shmq_cli::bench::LEGEND)]
    Bench(cmd::bench::Args),
    /// Create a named queue, dict or lock (a pipe is created by the program that holds its
    /// ends).
    #[command(subcommand)]
    Create(cmd::admin::CreateKind),
    /// Put a message into a queue (or, without MSG, every message read from stdin).
    Put(cmd::io::PutArgs),
    /// Take messages from a queue and print them, one per line (or --null, --raw). A message
    /// leaves the queue only once it is delivered (written, and read when stdout is a pipe): if
    /// stdout fails or its reader goes away first, it stays at the front and the command fails.
    Get(cmd::io::GetArgs),
    /// Mark tasks of a queue done (JoinableQueue's task_done).
    TaskDone(cmd::io::TaskDoneArgs),
    /// Wait until every task put into a queue is done (JoinableQueue's join).
    Join(cmd::io::JoinArgs),
    /// Read, set or add to the keys of a shared counter dict.
    #[command(subcommand)]
    Dict(cmd::dict::DictCmd),
    /// Show a named lock's state without taking it.
    #[command(subcommand)]
    Lock(cmd::dict::LockCmd),
    /// Close a queue: later puts fail, gets drain what is left.
    Close {
        /// Queue name.
        name: String,
    },
    /// Show everything about a segment: kind, layout version, size, mode, creator; for a queue
    /// its geometry, largest message, length, tasks and its side segments (large messages and
    /// the buffers kept for the next ones: side_segments, side_bytes); for a pipe its holders,
    /// what waits each way and its side segments; for a dict or lock the lock's state.
    Stat {
        /// Segment name.
        name: String,
        /// One JSON object.
        #[arg(long)]
        json: bool,
    },
    /// List every shmq segment in /dev/shm with the processes using it (other files are
    /// skipped).
    Ls {
        /// One JSON object per segment.
        #[arg(long)]
        json: bool,
    },
    /// Watch every shmq segment live: depth, rates, waiting processes, holders, damage (read
    /// without taking any lock; `?` in the view lists the keys).
    Top(cmd::top::Args),
    /// Print the figures of `top` in the Prometheus text format, serve them over HTTP
    /// (--listen) or write them atomically for node_exporter's textfile collector (--textfile).
    Metrics(cmd::metrics::Args),
    /// Remove segments (all names are checked first; nothing is removed if one is not shmq's).
    Rm {
        /// Segment names.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove the shmq segments no live process uses and that hold nothing, and the hidden
    /// files of anonymous queues whose holders all died (left behind by crashed programs).
    ///
    /// A segment is kept while a process maps it (or its creator runs), while it is younger
    /// than --older-than, and while other users' processes, which gc cannot see unless run as
    /// root, may hold it. An unused segment is removed only if removing it loses nothing:
    ///
    /// - queue: no message waiting and no task unfinished (taken and not marked done with
    ///   task-done; closed or not). A queue whose consumers never call task-done keeps every
    ///   message it carried unfinished, so gc keeps it. Its large messages' side segments go
    ///   with it, and stay with it when it is kept.
    ///
    /// - pipe: neither end can be attached again (every holder left or died, no hand-off
    ///   pending); messages towards an end that is gone can never be received and go with it.
    ///
    /// - dict: no keys, and its lock free.
    ///
    /// - lock: free. A lock whose holder died is kept: its next locker is told the owner died.
    ///
    /// - anonymous queue: every process that held it is gone (nobody can reach it any more).
    ///
    /// A segment that holds data is kept and listed with what it holds; --discard-data
    /// removes it too and says what was discarded. --dry-run prints the same and removes
    /// nothing. Every line (removed, kept, the summary) goes to stderr, as all status lines.
    Gc(cmd::admin::GcArgs),
    /// Internal: one side of a demo scenario, started by `shmq demo`.
    #[command(hide = true, name = "demo-child")]
    DemoChild { role: String, args: Vec<String> },
    /// Internal: one side of a workload, started by `shmq` itself (role in SHMQ_CLI_CHILD).
    #[command(hide = true)]
    Child,
}

fn done(r: anyhow::Result<()>) -> anyhow::Result<Outcome> {
    r.map(|()| Outcome::Done)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(args) => match cmd::demo::run(&args) {
            Ok(true) => Ok(Outcome::Done),
            Ok(false) => Err(anyhow::anyhow!("a demo check failed")),
            Err(e) => Err(e),
        },
        Command::Bench(args) => done(cmd::bench::run(&args)),
        #[cfg(feature = "bridge")]
        Command::Bridge(cmd) => done(cmd::bridge::run(&cmd)),
        #[cfg(not(feature = "bridge"))]
        Command::Bridge { .. } => Err(anyhow::anyhow!("{}", cmd::BRIDGE_NOT_BUILT)),
        Command::Create(kind) => done(cmd::admin::create(&kind)),
        Command::Put(a) => cmd::io::put(&a),
        Command::Get(a) => cmd::io::get(&a),
        Command::TaskDone(a) => cmd::io::task_done(&a),
        Command::Join(a) => cmd::io::join(&a),
        Command::Dict(c) => done(cmd::dict::dict(&c)),
        Command::Lock(c) => done(cmd::dict::lock(&c)),
        Command::Close { name } => done(cmd::admin::close(&name)),
        Command::Stat { name, json } => done(cmd::admin::stat(&name, json)),
        Command::Ls { json } => done(cmd::admin::ls(json)),
        Command::Top(a) => done(cmd::top::run(&a)),
        Command::Metrics(a) => done(cmd::metrics::run(&a)),
        Command::Rm { names } => done(cmd::admin::rm(&names)),
        Command::Gc(a) => done(cmd::admin::gc(&a)),
        Command::DemoChild { role, args } => done(cmd::demo::child(&role, &args)),
        Command::Child => done(shmq_cli::workload::run_child()),
    };
    if let Some(code) = cmd::interrupt::exit_code() {
        // Ctrl-C or SIGTERM in a demo: its children are ended and its segments removed by now.
        return ExitCode::from(code);
    }
    match result {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::Partial) => ExitCode::from(cmd::EXIT_PARTIAL),
        Err(e) => {
            eprintln!("shmq: error: {}", error_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes on one line, `outer: inner`, leaving out a cause whose words the
/// line already holds (an error that prints its source, such as `"q: Permission denied (os
/// error 13)"` over the `io::Error` itself, would otherwise say it twice).
fn error_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}
