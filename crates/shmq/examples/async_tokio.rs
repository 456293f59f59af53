//! A tokio service fed by a producer process (feature `tokio`).
//!
//! `cargo run -p shmq --features tokio --example async_tokio`: the producer process puts
//! requests on a queue; this process serves them on a multi-thread tokio runtime with
//! `get_async` (no thread blocked per waiting task), logging a heartbeat whenever no request
//! came for 50 ms (`tokio::time::timeout` around `get_async` is cancel-safe: no request is
//! lost), and answers each on a pipe with `send_async`.

use std::process::Command;
use std::time::Duration;

use shmq::{End, GetError, Options, Pipe, PipeEnd, Queue};

const COUNT: u32 = 20;

fn producer(base: &str) -> Result<(), Box<dyn std::error::Error>> {
    let requests = Queue::open(&format!("{base}-req"))?;
    let replies = PipeEnd::open(&format!("{base}-rep"), End::B)?;
    for i in 0..COUNT {
        requests.put_timeout(i.to_le_bytes(), Duration::from_secs(10))?;
        if i % 5 == 4 {
            std::thread::sleep(Duration::from_millis(80)); // let the service idle
        }
    }
    requests.close()?;
    let mut sum = 0u64;
    while let Ok(reply) = replies.recv_timeout(Duration::from_secs(10)) {
        sum += u64::from(u32::from_le_bytes(reply[..4].try_into()?));
    }
    assert_eq!(sum, (0..COUNT).map(|i| u64::from(i * i)).sum::<u64>());
    println!("producer: all {COUNT} replies, sum of squares {sum}");
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("producer") {
        return producer(&args[2]);
    }
    let base = format!("shmq-example-async-{}", std::process::id());
    let opts = Options {
        capacity: 8,
        message_size: 16,
        ..Default::default()
    };
    let requests = Queue::create(&format!("{base}-req"), &opts)?;
    // Room for every reply: the producer reads them only after its last request.
    let reply_opts = Options {
        capacity: COUNT as usize,
        ..opts
    };
    let (replies, peer) = Pipe::create(&format!("{base}-rep"), &reply_opts)?;
    let mut child = Command::new(std::env::current_exe()?)
        .args(["producer", &base])
        .spawn()?;
    // Keep end B until the first request shows that the producer holds it (it opens the
    // replies before it puts): dropped earlier, end-of-file would be final before it opened.
    let mut peer = Some(peer);

    let (mut served, mut heartbeats) = (0, 0);
    loop {
        match tokio::time::timeout(Duration::from_millis(50), requests.get_async()).await {
            Ok(Ok(req)) => {
                peer.take();
                let n = u32::from_le_bytes(req[..4].try_into()?);
                replies.send_async((n * n).to_le_bytes()).await?;
                served += 1;
            }
            Ok(Err(GetError::Closed)) => break,
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => heartbeats += 1, // nothing lost: the cancelled get took nothing
        }
    }
    replies.close()?;
    assert!(child.wait()?.success());
    println!("service: served {served} requests, {heartbeats} idle heartbeats");
    assert_eq!(served, COUNT);
    Queue::unlink(&format!("{base}-req"))?;
    Pipe::unlink(&format!("{base}-rep"))?;
    Ok(())
}
