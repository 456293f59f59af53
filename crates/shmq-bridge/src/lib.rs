//! # shmq-bridge — a shmq queue on one host, a NATS JetStream stream between hosts
//!
//! Producers on host A keep calling `put` on a local [`shmq::Queue`]; an **out-bridge**
//! ([`run_out`], `shmq bridge out QUEUE --to SUBJECT`) publishes its messages to a JetStream
//! stream; on host B an **in-bridge** ([`run_in`], `shmq bridge in SUBJECT --to QUEUE`) consumes
//! the stream with a durable pull consumer and puts into a local queue, where consumers keep
//! calling `get`.
//!
//! Guarantees (`docs/bridge.md` states them with their limits):
//!
//! - **Out:** a message leaves the local queue only after JetStream acknowledged it. It is
//!   copied with [`Queue::peek_at_into`](shmq::Queue::peek_at_into) (into a reused buffer,
//!   handed to the NATS client without another copy) and taken with
//!   [`Queue::commit`](shmq::Queue::commit) after the ack. Its JetStream message id
//!   (`Nats-Msg-Id`) is [`message_id`]`(instance, position)`, so a bridge killed between the ack
//!   and the commit republishes it under the same id, which the stream's duplicate window drops.
//! - **In:** the JetStream ack is sent only after the local put returned `Ok`. Before each batch
//!   of puts the bridge records, in a small state file ([`StateFile`]), the queue's tail
//!   position, its count of voided positions ([`Queue::voided`](shmq::Queue::voided)) and the
//!   stream sequences it is about to put; a restarted bridge counts how many of them reached
//!   the queue (the bridge is the queue's only producer; a put killed inside its copy into the
//!   queue left a claim that is voided and counted) and acks their redeliveries without
//!   putting them again.
//! - **Back-pressure:** the in-bridge fetches no more messages than the local queue has free
//!   slots; the out-bridge keeps at most a window of messages in flight and, while the server
//!   is absent or slow, waits and republishes with backoff, never dropping.
//!
//! ```no_run
//! # async fn run() -> Result<(), shmq_bridge::BridgeError> {
//! use shmq_bridge::{Connection, OutConfig};
//! let cfg = OutConfig::new(Connection::default(), "jobs", "jobs.a");
//! let stats = shmq_bridge::run_out(&cfg).await?; // until the queue is closed and drained
//! println!("{} messages published", stats.published);
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod chunk;
mod conn;
mod error;
mod inbound;
mod outbound;
mod state;

pub use conn::{Connection, Tls, connect, ensure_stream, stream_name_for};
pub use error::BridgeError;
pub use inbound::{InConfig, InStats, run_in};
pub use outbound::{OutConfig, OutStats, message_id, run_out};
pub use state::{InState, REMEMBERED, StateFile};

/// What a running bridge has done so far, shared with its caller (a status line, a progress
/// count): set by [`run_out`] and [`run_in`] through [`OutConfig::progress`] and
/// [`InConfig::progress`], read at any time from another thread.
#[derive(Debug, Default)]
pub struct Progress {
    connected: std::sync::atomic::AtomicBool,
    messages: std::sync::atomic::AtomicU64,
}

impl Progress {
    /// Whether the bridge has connected and found (or made) its stream (and, in, its consumer).
    pub fn connected(&self) -> bool {
        self.connected.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Messages carried so far: published and acknowledged (out), put into the queue (in).
    pub fn messages(&self) -> u64 {
        self.messages.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) fn set_connected(&self) {
        self.connected
            .store(true, std::sync::atomic::Ordering::Release);
    }

    pub(crate) fn add(&self, n: u64) {
        self.messages
            .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Back-off between retries: doubles from 50 ms up to 2 s.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Backoff(std::time::Duration);

impl Backoff {
    pub(crate) fn new() -> Backoff {
        Backoff(std::time::Duration::from_millis(50))
    }

    pub(crate) async fn wait(&mut self) {
        tokio::time::sleep(self.0).await;
        self.0 = (self.0 * 2).min(std::time::Duration::from_secs(2));
    }

    pub(crate) fn reset(&mut self) {
        *self = Backoff::new();
    }
}
