//! Python multiprocessing's classic pipe example across real processes: one producer process
//! sends ten messages on end B of a pipe and closes it; three consumer processes share end A and
//! receive until
//! end-of-file, which they see once the producer (the last holder of end B) is gone — no
//! sentinel, no timeout.
//!
//! ```text
//! cargo run --release -p shmq --example pipe_eof
//! ```
//!
//! The example re-executes itself with a role argument for each child process. Each child
//! prints `ready` once it holds its end; only then does the parent drop its own copies of both
//! ends (as in Python, a copy of the sending end still held by the parent would keep the
//! consumers waiting).

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};

use shmq::{End, Options, Pipe, PipeEnd, RecvError};

const CONSUMERS: u32 = 3;
const MESSAGES: u32 = 10;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("producer") => producer(&args[2]),
        Some("consumer") => consumer(&args[2], args[3].parse()?),
        _ => parent(),
    }
}

fn producer(name: &str) -> Result<(), Box<dyn std::error::Error>> {
    let tx = PipeEnd::open(name, End::B)?;
    println!("ready");
    for i in 0..MESSAGES {
        tx.send(format!("message {i}"))?;
    }
    tx.close()?; // end-of-file for the consumers, once they have drained the pipe
    Ok(())
}

fn consumer(name: &str, id: u32) -> Result<(), Box<dyn std::error::Error>> {
    let rx = PipeEnd::open(name, End::A)?;
    println!("ready");
    let mut n = 0;
    loop {
        match rx.recv() {
            Ok(msg) => {
                println!("consumer {id} got: {}", String::from_utf8_lossy(&msg));
                n += 1;
            }
            Err(RecvError::Disconnected) => break, // Python's EOFError
            Err(e) => return Err(e.into()),
        }
    }
    println!("consumer {id} done: end-of-file after {n} messages");
    Ok(())
}

/// Starts a child and waits for its `ready` line.
fn start(
    role: &str,
    name: &str,
    id: u32,
) -> Result<(Child, BufReader<std::process::ChildStdout>), Box<dyn std::error::Error>> {
    let mut child = Command::new(std::env::current_exe()?)
        .args([role, name, &id.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut out = BufReader::new(child.stdout.take().ok_or("no stdout")?);
    let mut line = String::new();
    out.read_line(&mut line)?;
    if line.trim() != "ready" {
        return Err(format!("{role} {id} did not start: {line:?}").into());
    }
    Ok((child, out))
}

fn parent() -> Result<(), Box<dyn std::error::Error>> {
    let name = format!("shmq-example-pipe-{}", std::process::id());
    let opts = Options {
        capacity: 4,
        message_size: 64,
        ..Default::default()
    };
    let (a, b) = Pipe::create(&name, &opts)?;
    let mut children = (0..CONSUMERS)
        .map(|id| start("consumer", &name, id))
        .collect::<Result<Vec<_>, _>>()?;
    children.push(start("producer", &name, 0)?);
    drop((a, b)); // the children hold both ends now
    Pipe::unlink(&name)?; // the name is no longer needed; the mapping lives on
    let mut ok = true;
    for (mut child, mut out) in children {
        let mut text = String::new();
        out.read_to_string(&mut text)?;
        print!("{text}");
        ok &= child.wait()?.success();
    }
    if !ok {
        return Err("a child process failed".into());
    }
    println!("{MESSAGES} messages sent; every consumer saw end-of-file");
    Ok(())
}
