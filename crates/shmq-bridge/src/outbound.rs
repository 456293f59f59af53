//! The out-bridge: local queue → JetStream.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, context::PublishErrorKind, message::PublishMessage};
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::FuturesOrdered;
use shmq::{CommitError, PeekError, Queue};

use crate::{Backoff, BridgeError, Connection, connect, ensure_stream, stream_name_for};

/// What [`run_out`] needs.
#[derive(Debug, Clone)]
pub struct OutConfig {
    /// The server.
    pub conn: Connection,
    /// The local queue's name.
    pub queue: String,
    /// The subject messages are published on.
    pub subject: String,
    /// The stream (made if missing, on `subject`). Default: [`stream_name_for`]`(subject)`.
    pub stream: String,
    /// Messages published and not yet acknowledged, at most (default 256).
    pub window: usize,
    /// The stream's duplicate window if the bridge creates it (default 2 minutes): a bridge
    /// that restarts later than this after its death may publish a message twice.
    pub duplicate_window: Duration,
    /// Call `task_done` on the local queue for each message JetStream acknowledged (default
    /// true), so that a producer's `join` returns once everything is in the stream.
    pub task_done: bool,
}

impl OutConfig {
    /// The defaults for `queue` → `subject`.
    pub fn new(conn: Connection, queue: &str, subject: &str) -> OutConfig {
        OutConfig {
            conn,
            queue: queue.to_owned(),
            subject: subject.to_owned(),
            stream: stream_name_for(subject),
            window: 256,
            duplicate_window: Duration::from_secs(120),
            task_done: true,
        }
    }
}

/// What an out-bridge did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct OutStats {
    /// Messages acknowledged by JetStream and taken from the local queue.
    pub published: u64,
    /// Of these, how many JetStream reported as duplicates (republished after a bridge's death
    /// or a lost ack, and dropped by the stream).
    pub duplicates: u64,
    /// Times the bridge republished its window after an error or a timeout.
    pub retries: u64,
}

/// The JetStream message id of the message at `position` of the queue with instance id
/// `instance`: the same message always gets the same id, another message (another position, or
/// another incarnation of the queue's name) another one.
///
/// # Examples
///
/// ```
/// assert_eq!(shmq_bridge::message_id(0xab, 7), "shmq-00000000000000ab-7");
/// ```
pub fn message_id(instance: u64, position: u64) -> String {
    format!("shmq-{instance:016x}-{position}")
}

enum Read {
    Msg(u64, Vec<u8>),
    Closed,
    Error(String),
}

/// The reading thread: copies messages from `next` on without taking them (the async side
/// commits), waiting for new ones; bounded by the channel.
fn reader(
    q: Arc<Queue>,
    mut next: u64,
    tx: tokio::sync::mpsc::Sender<Read>,
    stop: Arc<AtomicBool>,
) {
    loop {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let deadline = Instant::now() + Duration::from_millis(200);
        let r = match q.peek_at(next, Some(deadline)) {
            Ok(Some(m)) => {
                next += 1;
                Read::Msg(next - 1, m)
            }
            // No message at this position (a put that died): the next one.
            Ok(None) => {
                next += 1;
                continue;
            }
            Err(PeekError::Timeout) => continue,
            // Another consumer took it: the out-bridge should be the queue's only consumer.
            Err(PeekError::Taken { head }) => {
                next = head;
                continue;
            }
            Err(PeekError::Closed) => Read::Closed,
            Err(e) => Read::Error(e.to_string()),
        };
        let end = !matches!(r, Read::Msg(..));
        if tx.blocking_send(r).is_err() || end {
            return;
        }
    }
}

type AckFuture = <jetstream::context::PublishAckFuture as std::future::IntoFuture>::IntoFuture;

/// Sends one publish (in order); the ack is awaited later.
async fn send(
    js: &jetstream::Context,
    subject: &str,
    instance: u64,
    pos: u64,
    payload: Bytes,
) -> Result<AckFuture, jetstream::context::PublishError> {
    js.send_publish(
        subject.to_owned(),
        PublishMessage::build()
            .payload(payload)
            .message_id(message_id(instance, pos)),
    )
    .await
    .map(std::future::IntoFuture::into_future)
}

/// Publishes the local queue `cfg.queue` to JetStream until the queue is closed and every
/// message in it was acknowledged; see the crate docs for the guarantees.
///
/// # Errors
///
/// [`BridgeError::Connect`] if the first connection fails, [`BridgeError::Queue`] if the queue
/// cannot be opened (or has no instance id), [`BridgeError::TooLarge`] for a message longer
/// than the server's maximum payload (it stays in the queue), [`BridgeError::JetStream`].
pub async fn run_out(cfg: &OutConfig) -> Result<OutStats, BridgeError> {
    let qerr = |reason: String| BridgeError::Queue {
        queue: cfg.queue.clone(),
        reason,
    };
    let q = Arc::new(Queue::open(&cfg.queue).map_err(|e| qerr(e.to_string()))?);
    let instance = q.instance_id();
    if instance == 0 {
        return Err(qerr(
            "created by a shmq without instance ids: recreate it to bridge it".into(),
        ));
    }
    let client = connect(&cfg.conn).await?;
    let max_payload = client.server_info().max_payload;
    let js = jetstream::ContextBuilder::new()
        .timeout(Duration::from_secs(5))
        .build(client);
    ensure_stream(&js, &cfg.stream, &cfg.subject, cfg.duplicate_window).await?;

    let window = cfg.window.max(1);
    let (tx, mut rx) = tokio::sync::mpsc::channel(window);
    let stop = Arc::new(AtomicBool::new(false));
    let reading = {
        let (q, stop) = (Arc::clone(&q), Arc::clone(&stop));
        let start = q.head_position();
        std::thread::spawn(move || reader(q, start, tx, stop))
    };
    let result = pump(cfg, &q, &js, instance, max_payload, window, &mut rx).await;
    stop.store(true, Ordering::Relaxed);
    drop(rx);
    let _ = reading.join();
    result
}

async fn pump(
    cfg: &OutConfig,
    q: &Queue,
    js: &jetstream::Context,
    instance: u64,
    max_payload: usize,
    window: usize,
    rx: &mut tokio::sync::mpsc::Receiver<Read>,
) -> Result<OutStats, BridgeError> {
    let mut stats = OutStats::default();
    let mut pending: VecDeque<(u64, Bytes)> = VecDeque::new();
    let mut acks: FuturesOrdered<AckFuture> = FuturesOrdered::new();
    let mut closed = false;
    // A message that cannot travel: the ones before it are finished (acknowledged, taken),
    // then the bridge stops with this error, the message still first in the queue.
    let mut fatal: Option<BridgeError> = None;
    let mut backoff = Backoff::new();
    // Whether the acks in `acks` are for the whole of `pending` (false after an error: the
    // window is republished, in order, before anything else).
    let mut healthy = true;
    loop {
        if !healthy {
            backoff.wait().await;
            stats.retries += 1;
            let _ = ensure_stream(js, &cfg.stream, &cfg.subject, cfg.duplicate_window).await;
            acks = FuturesOrdered::new();
            healthy = true;
            for (pos, payload) in &pending {
                match send(js, &cfg.subject, instance, *pos, payload.clone()).await {
                    Ok(f) => acks.push_back(f),
                    Err(_) => {
                        healthy = false;
                        break;
                    }
                }
            }
            continue;
        }
        if closed && pending.is_empty() {
            return fatal.map_or(Ok(stats), Err);
        }
        tokio::select! {
            biased;
            Some(ack) = acks.next(), if !acks.is_empty() => match ack {
                Ok(ack) => {
                    let Some((pos, _)) = pending.pop_front() else {
                        unreachable!("one pending message per ack");
                    };
                    backoff.reset();
                    stats.published += 1;
                    stats.duplicates += u64::from(ack.duplicate);
                    match q.commit(pos) {
                        Ok(()) => {
                            if cfg.task_done {
                                let _ = q.task_done();
                            }
                        }
                        // Another consumer took it meanwhile (the bridge should be the only one).
                        Err(CommitError::Moved { head }) if head > pos => {}
                        Err(e) => {
                            return Err(BridgeError::Queue {
                                queue: cfg.queue.clone(),
                                reason: e.to_string(),
                            });
                        }
                    }
                }
                Err(_) => healthy = false,
            },
            read = rx.recv(), if !closed && pending.len() < window => match read {
                Some(Read::Msg(pos, m)) => {
                    // The headers (the message id) count towards the server's limit.
                    if m.len() + 128 > max_payload {
                        fatal = Some(BridgeError::TooLarge {
                            len: m.len(),
                            max: max_payload.saturating_sub(128),
                            what: "the NATS server's maximum payload (less 128 bytes of headers)",
                        });
                        closed = true;
                        continue;
                    }
                    let payload = Bytes::from(m);
                    pending.push_back((pos, payload.clone()));
                    match send(js, &cfg.subject, instance, pos, payload).await {
                        Ok(f) => acks.push_back(f),
                        Err(e) if e.kind() == PublishErrorKind::MaxPayloadExceeded => {
                            fatal = Some(BridgeError::TooLarge {
                                len: pending.pop_back().map_or(0, |p| p.1.len()),
                                max: max_payload,
                                what: "the NATS server's maximum payload",
                            });
                            closed = true;
                        }
                        Err(_) => healthy = false,
                    }
                }
                Some(Read::Closed) | None => closed = true,
                Some(Read::Error(e)) => {
                    return Err(BridgeError::Queue { queue: cfg.queue.clone(), reason: e });
                }
            },
        }
    }
}
