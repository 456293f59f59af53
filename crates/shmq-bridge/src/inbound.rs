//! The in-bridge: JetStream → local queue.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, AckKind, consumer::pull};
use futures_util::StreamExt;
use shmq::{PeekError, Queue, TryPutError};

use crate::state::SeqSet;
use crate::{
    Backoff, BridgeError, Connection, InState, StateFile, connect, ensure_stream, stream_name_for,
};

/// How long the bridge waits for the server's answer to one request (a request sent while the
/// connection was down may never be answered).
const ANSWER: Duration = Duration::from_secs(5);

/// What [`run_in`] needs.
#[derive(Debug, Clone)]
pub struct InConfig {
    /// The server.
    pub conn: Connection,
    /// The subject consumed (the consumer's filter).
    pub subject: String,
    /// The local queue's name; the in-bridge must be its only producer.
    pub queue: String,
    /// The stream (made if missing, on `subject`). Default: [`stream_name_for`]`(subject)`.
    pub stream: String,
    /// The durable consumer's name. Default: `shmq-in-` and the queue's name.
    pub consumer: String,
    /// The state file (see [`InState`]). Default: `shmq-bridge-in-{stream}-{consumer}.json`
    /// in the temporary directory (which, like `/dev/shm`, is emptied at boot).
    pub state: PathBuf,
    /// Messages fetched per request, at most (default 256; never more than the queue's free
    /// slots).
    pub batch: usize,
    /// The consumer's ack wait if the bridge creates it (default 30 s): how long the server
    /// waits before it redelivers what a dead bridge had fetched.
    pub ack_wait: Duration,
    /// The stream's duplicate window if the bridge creates it (default 2 minutes).
    pub duplicate_window: Duration,
    /// Return after this long without a message (default: never).
    pub idle_exit: Option<Duration>,
}

impl InConfig {
    /// The defaults for `subject` → `queue`.
    pub fn new(conn: Connection, subject: &str, queue: &str) -> InConfig {
        let stream = stream_name_for(subject);
        let consumer = format!("shmq-in-{queue}").replace('.', "_");
        let state = std::env::temp_dir().join(format!("shmq-bridge-in-{stream}-{consumer}.json"));
        InConfig {
            conn,
            subject: subject.to_owned(),
            queue: queue.to_owned(),
            stream,
            consumer,
            state,
            batch: 256,
            ack_wait: Duration::from_secs(30),
            duplicate_window: Duration::from_secs(120),
            idle_exit: None,
        }
    }
}

/// What an in-bridge did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct InStats {
    /// Messages put into the local queue (and acknowledged).
    pub put: u64,
    /// Redeliveries of messages already in the local queue: acknowledged, not put again.
    pub skipped: u64,
    /// Acks that could not be sent (the connection was down): the messages are redelivered,
    /// recognised and acknowledged then.
    pub failed_acks: u64,
}

/// Consumes the stream into the local queue `cfg.queue` until the queue is closed (or
/// `cfg.idle_exit` passes without a message); see the crate docs for the guarantees.
///
/// # Errors
///
/// [`BridgeError::Connect`], [`BridgeError::Queue`] (cannot open, no instance id),
/// [`BridgeError::TooLarge`] for a message longer than the queue's maximum message size (it
/// stays in the stream, unacknowledged), [`BridgeError::State`], [`BridgeError::JetStream`].
pub async fn run_in(cfg: &InConfig) -> Result<InStats, BridgeError> {
    let qerr = |reason: String| BridgeError::Queue {
        queue: cfg.queue.clone(),
        reason,
    };
    let q = Queue::open(&cfg.queue).map_err(|e| qerr(e.to_string()))?;
    let instance = q.instance_id();
    if instance == 0 {
        return Err(qerr(
            "created by a shmq without instance ids: recreate it to bridge it".into(),
        ));
    }
    let client = connect(&cfg.conn).await?;
    let js = jetstream::ContextBuilder::new()
        .timeout(Duration::from_secs(5))
        .build(client);
    let stream = ensure_stream(&js, &cfg.stream, &cfg.subject, cfg.duplicate_window).await?;
    let stream_created = stream.cached_info().created.unix_timestamp_nanos();
    let consumer_cfg = pull::Config {
        durable_name: Some(cfg.consumer.clone()),
        ack_policy: jetstream::consumer::AckPolicy::Explicit,
        filter_subject: cfg.subject.clone(),
        ack_wait: cfg.ack_wait,
        max_ack_pending: (cfg.batch.max(1) * 4) as i64,
        ..Default::default()
    };
    let mut backoff = Backoff::new();
    let mut consumer = loop {
        match stream
            .get_or_create_consumer(&cfg.consumer, consumer_cfg.clone())
            .await
        {
            Ok(c) => break c,
            Err(e) if backoff.0 >= Duration::from_secs(2) => {
                return Err(BridgeError::JetStream(format!(
                    "consumer {}: {e}",
                    cfg.consumer
                )));
            }
            Err(_) => backoff.wait().await,
        }
    };

    // Stream sequences already in the queue: a redelivery of one is acknowledged, not put.
    // Kept after the ack is confirmed: a server that restarts may forget recent acks.
    let (mut state_file, last_state) = StateFile::open(&cfg.state)?;
    let mut in_queue = match last_state {
        Some(s) => recover(&q, &s, instance, stream_created).map_err(qerr)?,
        None => SeqSet::default(),
    };
    let mut stats = InStats::default();
    let mut backoff = Backoff::new();
    let mut last_message = Instant::now();
    let mut prefetched: Option<pull::Batch> = None;
    loop {
        if cfg.idle_exit.is_some_and(|d| last_message.elapsed() >= d) {
            return Ok(stats);
        }
        // Back-pressure: fetch no more than fits; wait while the queue is full.
        if q.is_closed() {
            return Ok(stats);
        }
        let free = q.capacity().saturating_sub(q.len());
        if free == 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
            continue;
        }
        // The batch requested while the previous one was put, if any; else what is there now
        // (a request that does not wait), else what comes within 100 ms: a request that waited
        // longer to be full would hold back the messages it already has.
        let mut msgs = match prefetched.take() {
            Some(batch) => drain(batch, true).await,
            None => Vec::new(),
        };
        let want = free.min(cfg.batch.max(1));
        for wait in [false, true] {
            if !msgs.is_empty() {
                break;
            }
            if let Some(batch) = request(&consumer, want, wait).await {
                msgs = drain(batch, wait).await;
            }
        }
        if msgs.is_empty() {
            if !matches!(
                tokio::time::timeout(ANSWER, consumer.info()).await,
                Ok(Ok(_))
            ) {
                backoff.wait().await; // the server does not answer: wait for it
            }
            continue;
        }
        last_message = Instant::now();
        backoff.reset();
        let mut fresh = Vec::new();
        let mut again = Vec::new();
        let mut seen = HashSet::new();
        for m in msgs {
            let seq = match m.info() {
                Ok(i) => i.stream_sequence,
                Err(e) => return Err(BridgeError::JetStream(format!("message info: {e}"))),
            };
            if in_queue.contains(seq) || !seen.insert(seq) {
                again.push((seq, m));
            } else {
                // Larger than a slot is fine (a side segment), up to the queue's maximum.
                if m.payload.len() > q.max_message_size() {
                    return Err(BridgeError::TooLarge {
                        len: m.payload.len(),
                        max: q.max_message_size(),
                        what: "the local queue's maximum message size",
                    });
                }
                fresh.push((seq, m));
            }
        }
        // Request the next batch now, so that the server delivers it while this one is put and
        // acknowledged: no more than the slots still free once this batch is in.
        let free_after = q
            .capacity()
            .saturating_sub(q.len())
            .saturating_sub(fresh.len());
        if free_after > 0 {
            prefetched = request(&consumer, free_after.min(cfg.batch.max(1)), true).await;
        }
        if !fresh.is_empty() {
            in_queue.prune();
            state_file.store(&InState {
                instance,
                stream_created,
                tail: q.tail_position(),
                voided: Some(q.voided()),
                batch: fresh.iter().map(|(s, _)| *s).collect(),
                put: in_queue.0.clone(),
            })?;
            let payloads: Vec<&[u8]> = fresh.iter().map(|(_, m)| &m.payload[..]).collect();
            #[cfg(feature = "test-hooks")]
            stop_in_put(&q, stats.put, &payloads);
            let mut done = 0;
            let mut closed = false;
            while done < payloads.len() {
                match q.try_put_many(&payloads[done..]) {
                    Ok(n) => done += n,
                    Err(TryPutError::Full(_)) => {
                        // Another producer filled it: the bridge should be the only one.
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                    // Closed meanwhile: what was put is acknowledged below, the rest stays in
                    // the stream, and the bridge ends.
                    Err(TryPutError::Closed(_)) => {
                        closed = true;
                        break;
                    }
                    Err(e) => return Err(qerr(e.to_string())),
                }
            }
            stats.put += done as u64;
            for (seq, _) in &fresh[..done] {
                in_queue.insert(*seq);
            }
            if closed {
                fresh.truncate(done);
                for (_, m) in fresh.iter().chain(&again) {
                    if m.ack_with(AckKind::Ack).await.is_err() {
                        stats.failed_acks += 1;
                    }
                }
                return Ok(stats);
            }
        }
        stats.skipped += again.len() as u64;
        // The ack, only after the put returned. No confirmation is awaited: a lost ack means a
        // redelivery, which `in_queue` recognises and acknowledges again without a put.
        for (_, m) in fresh.iter().chain(&again) {
            if m.ack_with(AckKind::Ack).await.is_err() {
                stats.failed_acks += 1;
            }
        }
    }
}

/// Requests up to `want` messages: those there now (`wait` false), or those that come within
/// 100 ms. `None` if the request could not be sent.
async fn request(
    consumer: &jetstream::consumer::PullConsumer,
    want: usize,
    wait: bool,
) -> Option<pull::Batch> {
    let batch = if wait {
        consumer
            .batch()
            .max_messages(want)
            .expires(Duration::from_millis(100))
            .messages()
            .await
    } else {
        consumer.fetch().max_messages(want).messages().await
    };
    match batch {
        Ok(b) => Some(b),
        Err(e) => {
            if std::env::var_os("SHMQ_BRIDGE_DEBUG").is_some() {
                eprintln!("in-bridge: fetch (wait {wait}): {e}");
            }
            None
        }
    }
}

/// The messages of a requested batch, until it ends.
async fn drain(mut batch: pull::Batch, wait: bool) -> Vec<jetstream::Message> {
    let mut msgs = Vec::new();
    // A request sent while the connection was down may never be answered: bound every wait
    // (what was not received is redelivered after the ack wait).
    let patience = Duration::from_millis(if wait { 700 } else { 1000 });
    while let Ok(Some(m)) = tokio::time::timeout(patience, batch.next()).await {
        match m {
            Ok(m) => msgs.push(m),
            Err(e) => {
                if std::env::var_os("SHMQ_BRIDGE_DEBUG").is_some() {
                    eprintln!("in-bridge: batch (wait {wait}): {e}");
                }
                break;
            }
        }
    }
    msgs
}

/// At a restart: settles every claim the dead bridge may have left among the positions of its
/// last batch (a claim whose owner is dead is voided, and counted in
/// [`Queue::voided`](shmq::Queue::voided); a claim whose move of `tail` did not happen sits at
/// `tail` itself), then says which stream sequences are in the queue already
/// ([`InState::already_put`]).
fn recover(q: &Queue, s: &InState, instance: u64, stream_created: i128) -> Result<SeqSet, String> {
    if s.instance != instance || s.stream_created != stream_created {
        return Ok(SeqSet::default()); // another queue or stream: nothing of it is known
    }
    let end = s.tail.saturating_add(s.batch.len() as u64);
    let started = Instant::now();
    loop {
        let tail = q.tail_position();
        let claimed_end = tail.min(end);
        let mut unsettled = false;
        // Positions still in the queue (a peek waits out a claim, voiding it when its owner
        // is dead), and `tail` itself while the batch is not all claimed; taken positions were
        // settled before a consumer passed them.
        let to = if tail < end { tail + 1 } else { end };
        for pos in s.tail.max(q.head_position())..to {
            match q.peek_at(pos, Some(Instant::now() + Duration::from_millis(20))) {
                Ok(_) | Err(PeekError::Taken { .. } | PeekError::Closed) => {}
                // Nothing at `tail`: no claim is there. Below it: a claim of a live process.
                Err(PeekError::Timeout) => unsettled |= pos < claimed_end,
                Err(e) => return Err(format!("settling the last batch's positions: {e}")),
            }
        }
        if !unsettled && q.tail_position() == tail {
            break;
        }
        if started.elapsed() > Duration::from_secs(30) {
            return Err(format!(
                "a claim among positions {}..{end} is still held after 30 s: is another \
                 producer (or the previous in-bridge) still running on this queue?",
                s.tail
            ));
        }
    }
    let tail_now = q.tail_position();
    let voided_now = q.voided();
    Ok(SeqSet(s.already_put(
        instance,
        stream_created,
        tail_now,
        voided_now,
        // For a state file of an older bridge: a position still there holds a message or a
        // tombstone; a taken one is guessed as put.
        |pos| match q.peek_at(pos, Some(Instant::now() + Duration::from_millis(10))) {
            Ok(m) => m.is_some(),
            Err(PeekError::Taken { .. }) => true,
            Err(_) => false,
        },
    )))
}

/// Test hook (feature `test-hooks`, never in a release build): with
/// `SHMQ_BRIDGE_TEST_STOP_IN_PUT=N` in its environment, the in-bridge's first batch put once
/// `N` messages are put is claimed and written (all but its first slot published) and the
/// bridge then stops for good, printing `in-bridge: holding` on stdout: a bridge killed inside
/// that put.
#[cfg(feature = "test-hooks")]
fn stop_in_put(q: &Queue, put_so_far: u64, payloads: &[&[u8]]) {
    let Some(n) = std::env::var("SHMQ_BRIDGE_TEST_STOP_IN_PUT")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    else {
        return;
    };
    if put_so_far >= n && q.claim_and_stop(payloads) {
        println!("in-bridge: holding a claim of {} messages", payloads.len());
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
}
