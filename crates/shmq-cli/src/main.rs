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
    /// Compare shmq with an OS pipe and a Unix socket pair across real processes.
    Bench(cmd::bench::Args),
    /// Internal: one side of a workload, started by `shmq` itself (role in SHMQ_CLI_CHILD).
    #[command(hide = true)]
    Child,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Bench(args) => cmd::bench::run(&args),
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
