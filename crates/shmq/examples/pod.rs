//! Zero-copy plain-old-data structs between two processes (`bytemuck::Pod`).
//!
//! `cargo run -p shmq --example pod`: a `PodQueue<Tick>` moves each `Tick` as its 32 bytes,
//! with no serialisation; the consumer reads the value out of the slot in place.

use std::process::Command;

use shmq::{Options, PodQueue, Queue};

#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
struct Tick {
    seq: u64,
    instrument: u32,
    _pad: u32,
    bid: f64,
    ask: f64,
}

const COUNT: u64 = 100_000;

fn producer(name: &str) -> Result<(), Box<dyn std::error::Error>> {
    let q = PodQueue::<Tick>::open(name)?;
    for seq in 0..COUNT {
        let bid = 100.0 + (seq % 7) as f64;
        q.put(Tick {
            seq,
            instrument: (seq % 3) as u32,
            _pad: 0,
            bid,
            ask: bid + 0.25,
        })?;
    }
    q.queue().close()?;
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("producer") {
        return producer(&args[2]);
    }
    let name = format!("shmq-example-pod-{}", std::process::id());
    let q = PodQueue::<Tick>::create(
        &name,
        &Options {
            capacity: 1024,
            message_size: size_of::<Tick>(),
            ..Default::default()
        },
    )?;
    let start = std::time::Instant::now();
    let mut child = Command::new(std::env::current_exe()?)
        .args(["producer", &name])
        .spawn()?;
    let mut next = 0;
    let mut spread = 0.0;
    for tick in &q {
        let tick = tick?;
        assert_eq!(tick.seq, next, "in order, none lost");
        spread += tick.ask - tick.bid;
        next += 1;
    }
    assert!(child.wait()?.success());
    assert_eq!(next, COUNT);
    println!(
        "{COUNT} ticks of {} bytes in {:?}, mean spread {}",
        size_of::<Tick>(),
        start.elapsed(),
        spread / COUNT as f64
    );
    Queue::unlink(&name)?;
    Ok(())
}
