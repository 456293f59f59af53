//! Serde structs between two processes through a typed queue (feature `serde`).
//!
//! `cargo run -p shmq --features serde --example typed`: this process creates a
//! `SerdeQueue<Order>`, starts itself again as the producer, and reads the orders until the
//! producer closes the queue.

use std::process::Command;

use serde::{Deserialize, Serialize};
use shmq::{Options, Queue, SerdeQueue};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Order {
    id: u32,
    item: String,
    quantity: u16,
    price: f64,
}

fn producer(name: &str) -> Result<(), Box<dyn std::error::Error>> {
    let q = SerdeQueue::<Order>::open(name)?;
    for id in 0..5 {
        q.put(Order {
            id,
            item: format!("widget-{id}"),
            quantity: (id as u16 + 1) * 10,
            price: 2.5 * f64::from(id),
        })?;
    }
    q.queue().close()?; // the end of work is a state, not a sentinel
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("producer") {
        return producer(&args[2]);
    }
    let name = format!("shmq-example-typed-{}", std::process::id());
    let q = SerdeQueue::<Order>::create(
        &name,
        &Options {
            capacity: 16,
            message_size: 256,
            ..Default::default()
        },
    )?;
    let mut child = Command::new(std::env::current_exe()?)
        .args(["producer", &name])
        .spawn()?;
    let mut total = 0.0;
    for order in &q {
        let order = order?; // a message that does not decode would be an error here
        println!("{order:?}");
        total += order.price * f64::from(order.quantity);
    }
    assert!(child.wait()?.success());
    println!("total {total}");
    assert_eq!(
        total,
        2.5 * (10.0 * 0.0 + 20.0 * 1.0 + 30.0 * 2.0 + 40.0 * 3.0 + 50.0 * 4.0)
    );
    Queue::unlink(&name)?;
    Ok(())
}
