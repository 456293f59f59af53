//! Python multiprocessing's classic producer/consumer example across real processes: three producer processes put ten items
//! each into one bounded queue, two consumer processes take them, and the parent closes the
//! queue once every producer is done, which ends the consumers without any sentinel.
//!
//! ```text
//! cargo run --release -p shmq --example producer_consumer
//! ```
//!
//! The example re-executes itself with a role argument for each child process.

use std::process::{Command, Stdio};

use shmq::{GetError, Options, Queue};

const PRODUCERS: u32 = 3;
const CONSUMERS: u32 = 2;
const ITEMS: u32 = 10;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("producer") => producer(&args[2], args[3].parse()?),
        Some("consumer") => consumer(&args[2], args[3].parse()?),
        _ => parent(),
    }
}

fn producer(name: &str, id: u32) -> Result<(), Box<dyn std::error::Error>> {
    let q = Queue::open(name)?;
    for i in 0..ITEMS {
        let item = format!("item {i} from producer {id}");
        q.put(item)?;
    }
    Ok(())
}

fn consumer(name: &str, id: u32) -> Result<(), Box<dyn std::error::Error>> {
    let q = Queue::open(name)?;
    let mut n = 0;
    loop {
        match q.get() {
            Ok(msg) => {
                println!("consumer {id} got: {}", String::from_utf8_lossy(&msg));
                n += 1;
            }
            Err(GetError::Closed) => break,
            Err(e) => return Err(e.into()),
        }
    }
    println!("consumer {id} done: the queue is closed and empty ({n} items)");
    Ok(())
}

/// Closes the queue and removes its name when dropped, so that an error path (a child that
/// cannot start, say) neither leaves consumers waiting nor leaks the segment.
struct Cleanup<'a> {
    queue: &'a Queue,
    name: &'a str,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = self.queue.close();
        let _ = Queue::unlink(self.name);
    }
}

fn parent() -> Result<(), Box<dyn std::error::Error>> {
    let name = format!("shmq-example-{}", std::process::id());
    let opts = Options {
        capacity: 5,
        message_size: 64,
        ..Default::default()
    };
    let q = Queue::create(&name, &opts)?;
    let _cleanup = Cleanup {
        queue: &q,
        name: &name,
    };
    let me = std::env::current_exe()?;
    let spawn = |role: &str, id: u32| {
        Command::new(&me)
            .args([role, &name, &id.to_string()])
            .stdin(Stdio::null())
            .spawn()
    };
    let consumers = (0..CONSUMERS)
        .map(|id| spawn("consumer", id))
        .collect::<Result<Vec<_>, _>>()?;
    let producers = (0..PRODUCERS)
        .map(|id| spawn("producer", id))
        .collect::<Result<Vec<_>, _>>()?;
    let mut ok = true;
    for mut p in producers {
        ok &= p.wait()?.success();
    }
    println!("all producers done; closing the queue");
    q.close()?;
    for mut c in consumers {
        ok &= c.wait()?.success();
    }
    if !ok {
        return Err("a child process failed".into());
    }
    println!(
        "done: {} items put and all taken; the queue is closed and empty ({} left)",
        PRODUCERS * ITEMS,
        q.len()
    );
    Ok(())
}
