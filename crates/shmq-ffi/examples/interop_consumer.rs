//! The Rust side of the interop example: takes messages from the named queue NAME (waiting
//! for a producer to create it) until the queue is closed and drained, and prints each on a
//! line of its own. `cargo run -p shmq-ffi --example interop_consumer -- NAME`.

use std::io::Write;
use std::time::{Duration, Instant};

use shmq_core::{GetError, OpenError, Queue};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let name = std::env::args()
        .nth(1)
        .ok_or("usage: interop_consumer NAME")?;
    let start = Instant::now();
    let q = loop {
        match Queue::open(&name) {
            Ok(q) => break q,
            Err(OpenError::NotFound(_)) if start.elapsed() < Duration::from_secs(30) => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(e) => return Err(e.into()),
        }
    };
    let mut out = std::io::stdout().lock();
    loop {
        match q.get() {
            Ok(m) => {
                out.write_all(&m)?;
                out.write_all(b"\n")?;
            }
            Err(GetError::Closed) => break,
            Err(e) => return Err(e.into()),
        }
    }
    out.flush()?;
    Ok(())
}
