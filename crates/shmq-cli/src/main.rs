//! `shmq`: the command-line tool of the shmq shared-memory IPC engine.
//!
//! One module per subcommand family under `cmd/`; this file only parses and dispatches.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;

#[derive(Debug, Parser)]
#[command(
    name = "shmq",
    version,
    about = "Shared-memory IPC queues for Linux processes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the seed's scenarios (queue, joinable, pipe, race) across real processes.
    Demo(cmd::demo::Args),
    /// Compare shmq with an OS pipe and a Unix socket pair across real processes.
    Bench(cmd::bench::Args),
    /// Create a named queue, dict or lock.
    #[command(subcommand)]
    Create(cmd::admin::CreateKind),
    /// Put a message into a queue (or, without MSG, one message per line of stdin).
    Put {
        /// Queue name.
        name: String,
        /// The message; read lines from stdin if absent.
        msg: Option<String>,
    },
    /// Take messages from a queue and print them, one per line.
    Get {
        /// Queue name.
        name: String,
        /// Wait at most this long for each message (e.g. 1s, 250ms); default: wait forever.
        #[arg(long, value_parser = cmd::parse_duration)]
        timeout: Option<std::time::Duration>,
        /// How many messages to take.
        #[arg(long, default_value_t = 1)]
        count: usize,
    },
    /// Close a queue: later puts fail, gets drain what is left.
    Close {
        /// Queue name.
        name: String,
    },
    /// Show everything about a segment: kind, layout version, geometry, length, tasks,
    /// creator, pipe holders.
    Stat {
        /// Segment name.
        name: String,
        /// One JSON object.
        #[arg(long)]
        json: bool,
    },
    /// List every shmq segment in /dev/shm (other files are skipped).
    Ls {
        /// One JSON object per segment.
        #[arg(long)]
        json: bool,
    },
    /// Remove segments (all names are checked first; nothing is removed if one is not shmq's).
    Rm {
        /// Segment names.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Internal: one side of a demo scenario, started by `shmq demo`.
    #[command(hide = true, name = "demo-child")]
    DemoChild { role: String, args: Vec<String> },
    /// Internal: one side of a workload, started by `shmq` itself (role in SHMQ_CLI_CHILD).
    #[command(hide = true)]
    Child,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(args) => match cmd::demo::run(&args) {
            Ok(true) => Ok(()),
            Ok(false) => Err(anyhow::anyhow!("a demo check failed")),
            Err(e) => Err(e),
        },
        Command::Bench(args) => cmd::bench::run(&args),
        Command::Create(kind) => cmd::admin::create(&kind),
        Command::Put { name, msg } => cmd::admin::put(&name, msg.as_deref()),
        Command::Get {
            name,
            timeout,
            count,
        } => cmd::admin::get(&name, timeout, count),
        Command::Close { name } => cmd::admin::close(&name),
        Command::Stat { name, json } => cmd::admin::stat(&name, json),
        Command::Ls { json } => cmd::admin::ls(json),
        Command::Rm { names } => cmd::admin::rm(&names),
        Command::DemoChild { role, args } => cmd::demo::child(&role, &args),
        Command::Child => shmq_cli::workload::run_child(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shmq: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
