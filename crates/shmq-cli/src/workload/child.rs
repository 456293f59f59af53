//! The child's entry point: reads its [`Role`] from [`CHILD_ENV`], pins itself if asked, and
//! dispatches to the function that plays the role (in `transports`, `floor`, `vyukov` or
//! [`ping`](super::ping)). The roles and the message format are in [`roles`](super::roles);
//! this module is the only one that knows every role's implementation, so the modules that
//! implement roles import `roles` and are not imported back by it.

use anyhow::{Context, Result, anyhow};
use shmq::Queue;

use super::ping::{Link, echo, ping};
use super::roles::{INTERLEAVED_LARGE, Role, ready, report, stamp, template, wait_gate};
use super::transports::{
    pipe_consume, pipe_produce, shmq_consume, shmq_produce, socket_consume, socket_produce,
};
use super::{CHILD_ENV, CPU_ENV};
use super::{floor, vyukov};

/// Runs the role in [`CHILD_ENV`] if the variable is set, and exits the process; returns if it
/// is not set. Call it first thing in `main` of a binary that serves as its own child.
pub fn run_child_if_requested() {
    if std::env::var_os(CHILD_ENV).is_some() {
        let code = match run_child() {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("shmq child: {e:#}");
                1
            }
        };
        std::process::exit(code);
    }
}

/// Runs the role described by [`CHILD_ENV`].
///
/// # Errors
///
/// A missing or malformed role, or whatever the role fails with (a failed check included).
pub fn run_child() -> Result<()> {
    let spec = std::env::var(CHILD_ENV).with_context(|| format!("{CHILD_ENV} is not set"))?;
    let role: Role = serde_json::from_str(&spec).context("malformed child role")?;
    if let Ok(cpu) = std::env::var(CPU_ENV) {
        let cpu: usize = cpu
            .parse()
            .with_context(|| format!("bad {CPU_ENV} {cpu:?}"))?;
        let mut set = rustix::thread::CpuSet::new();
        set.set(cpu);
        rustix::thread::sched_setaffinity(None, &set)
            .with_context(|| format!("pinning to CPU {cpu}"))?;
    }
    run_role(role)
}

fn run_role(role: Role) -> Result<()> {
    match role {
        Role::ShmqProducer {
            queue,
            gate,
            api,
            size,
            first,
            count,
        } => {
            let q = Queue::open(&queue).with_context(|| format!("opening {queue}"))?;
            wait_gate(&gate)?;
            shmq_produce(&q, api, size, first, count)
        }
        Role::ShmqConsumer { queue, api, size } => {
            let q = Queue::open(&queue).with_context(|| format!("opening {queue}"))?;
            ready();
            let tally = shmq_consume(&q, api, size);
            if tally.is_err() {
                // Producers would otherwise wait on a full queue forever: closing it makes
                // their puts fail, so the whole run ends with this error.
                let _ = q.close();
            }
            report(&tally?)
        }
        Role::LargePacer {
            queue,
            gate,
            every_us,
        } => {
            let q = Queue::open(&queue).with_context(|| format!("opening {queue}"))?;
            wait_gate(&gate)?;
            let mut buf = template(INTERLEAVED_LARGE);
            let every = std::time::Duration::from_micros(every_us);
            let mut next = std::time::Instant::now();
            for seq in 0.. {
                stamp(&mut buf, seq);
                match q.put(&buf[..]) {
                    Ok(()) => {}
                    Err(shmq::PutError::Closed(_)) => break,
                    Err(e) => return Err(anyhow!("put: {e}")),
                }
                next += every;
                let now = std::time::Instant::now();
                if next > now {
                    std::thread::sleep(next - now);
                } else {
                    next = now;
                }
            }
            Ok(())
        }
        Role::PipeProducer {
            gate,
            framing,
            size,
            first,
            count,
        } => {
            wait_gate(&gate)?;
            pipe_produce(framing, size, first, count)
        }
        Role::PipeConsumer { framing, size } => {
            ready();
            report(&pipe_consume(framing, size)?)
        }
        Role::SocketProducer {
            gate,
            size,
            first,
            count,
        } => {
            wait_gate(&gate)?;
            socket_produce(size, first, count)
        }
        Role::SocketConsumer { size } => {
            ready();
            report(&socket_consume(size)?)
        }
        Role::PingClient {
            transport,
            size,
            warmup,
            count,
        } => {
            let mut link = Link::open(&transport)?;
            ready();
            report(&ping(&mut link, size, warmup, count)?)
        }
        Role::PingEcho { transport, size } => {
            let mut link = Link::open(&transport)?;
            ready();
            echo(&mut link, size)
        }
        Role::FloorProducer {
            segment,
            gate,
            capacity,
            size,
            first,
            count,
        } => floor::produce(&segment, &gate, capacity, size, first, count),
        Role::FloorConsumer {
            segment,
            capacity,
            size,
        } => floor::consume(&segment, capacity, size),
        Role::FloorPing {
            segment,
            size,
            warmup,
            count,
        } => floor::ping(&segment, size, warmup, count),
        Role::FloorEcho { segment, size } => floor::echo(&segment, size),
        Role::VyukovProducer {
            segment,
            gate,
            capacity,
            size,
            first,
            count,
        } => vyukov::produce(&segment, &gate, capacity, size, first, count),
        Role::VyukovConsumer {
            segment,
            capacity,
            size,
            firsts,
        } => vyukov::consume(&segment, capacity, size, firsts),
        Role::VyukovPing {
            segment,
            size,
            warmup,
            count,
        } => vyukov::ping(&segment, size, warmup, count),
        Role::VyukovEcho { segment, size } => vyukov::echo(&segment, size),
        Role::LockHammer { segment, count } => {
            let m =
                shmq_dict::Lock::open(&segment).with_context(|| format!("opening {segment}"))?;
            ready();
            for _ in 0..count {
                drop(m.lock()?);
            }
            Ok(())
        }
    }
}
