//! The out-bridge: local queue → JetStream.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, message::PublishMessage};
use bytes::Bytes;
use futures_util::stream::FuturesOrdered;
use futures_util::{FutureExt, StreamExt};
use shmq::{CommitError, PeekError, Queue};

use crate::{
    Backoff, BridgeError, Connection, Progress, chunk, connect, ensure_stream, stream_name_for,
};

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
    /// Where the bridge says it connected and counts what it published (for a status line).
    pub progress: Arc<Progress>,
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
            progress: Arc::default(),
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
    /// Times the bridge republished its window (or a message's parts) after an error or a
    /// timeout.
    pub retries: u64,
    /// Of the messages published, how many went in parts (longer than the server's maximum
    /// payload; see [`chunk`](crate::chunk)).
    pub in_parts: u64,
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
    /// Messages at consecutive positions (tombstones left out), oldest first, each in a buffer
    /// of the [`Pool`].
    Msgs(Vec<(u64, Bytes)>),
    Closed,
    Error(String),
}

/// Messages the reading thread hands over at once at most: one wake-up of the async side per
/// batch instead of per message.
const READ_BATCH: usize = 64;

/// Bytes of messages the reading thread hands over at once at most (a batch holds one message
/// at least).
const READ_BATCH_BYTES: usize = 256 << 10;

/// Bytes of messages copied and waiting for room in the window at most (one batch more may
/// wait in the channel): with large messages, the copies made ahead of the window are a few,
/// not a window's worth, so that the out-bridge's memory stays near its window.
const READ_AHEAD_BYTES: usize = 1 << 20;

/// Messages shorter than this (async-nats's `WRITE_FLATTEN_THRESHOLD`: it copies a payload
/// this short into its write buffer, and writes a longer one from the payload itself) are
/// handed over as an exact copy; longer ones in their pooled buffer.
const POOLED_MIN: usize = 4096;

/// Bytes a pooled buffer may hold at most: a longer one (a message in parts) is freed when
/// its message is done with, not kept.
const POOLED_BUFFER_MAX: usize = 1 << 20;

/// Bytes of buffers the pool keeps at most (the window's worth of 64 KiB messages).
const POOL_BYTES: usize = 16 << 20;

/// The buffers the reading thread copies messages of [`POOLED_MIN`] bytes or more into,
/// reused: each is copied once out of the queue, into a buffer that already holds a message's bytes (so neither allocated,
/// nor faulted in, nor zero-filled again: [`Queue::peek_at_into`] overwrites it), and handed
/// to async-nats as [`Bytes`] made without another copy ([`Bytes::from_owner`] of a
/// [`Pooled`]); the buffer comes back here when the last of those `Bytes` is dropped (the
/// message written to the socket and acknowledged). Holds at most `max` buffers and
/// [`POOL_BYTES`] bytes, none longer than [`POOLED_BUFFER_MAX`]; the ones beyond are freed.
#[derive(Debug)]
struct Pool {
    /// The free buffers (the last one given back is taken first: still in the cache) and the
    /// sum of their capacities.
    free: Mutex<(Vec<Vec<u8>>, usize)>,
    max: usize,
}

impl Pool {
    /// A pool of at most `max` buffers.
    fn new(max: usize) -> Arc<Pool> {
        Arc::new(Pool {
            free: Mutex::new((Vec::new(), 0)),
            max,
        })
    }

    /// A free buffer (its bytes are a message done with), or a new empty one.
    fn take(&self) -> Vec<u8> {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        let buf = free.0.pop().unwrap_or_default();
        free.1 -= buf.capacity();
        buf
    }

    /// Keeps `buf` for reuse if there is room, else frees it.
    fn give(&self, buf: Vec<u8>) {
        let cap = buf.capacity();
        if cap == 0 || cap > POOLED_BUFFER_MAX {
            return;
        }
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        if free.0.len() < self.max && free.1 + cap <= POOL_BYTES {
            free.0.push(buf);
            free.1 += cap;
        }
    }

    /// `buf` (a message) as [`Bytes`] without a copy; `buf` comes back to this pool once the
    /// last clone of them is dropped.
    fn wrap(self: &Arc<Pool>, buf: Vec<u8>) -> Bytes {
        Bytes::from_owner(Pooled {
            buf,
            pool: Arc::clone(self),
        })
    }
}

/// A message in a buffer of a [`Pool`], given back to it when dropped.
struct Pooled {
    buf: Vec<u8>,
    pool: Arc<Pool>,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        self.pool.give(std::mem::take(&mut self.buf));
    }
}

/// The reading thread: copies messages from `next` on without taking them (the async side
/// commits) into buffers of `pool`, waiting for new ones, and hands them over in batches of
/// what is there; bounded by the channel.
fn reader(
    q: Arc<Queue>,
    mut next: u64,
    tx: tokio::sync::mpsc::Sender<Read>,
    stop: Arc<AtomicBool>,
    pool: Arc<Pool>,
) {
    let mut batch = Vec::with_capacity(READ_BATCH);
    let mut bytes = 0;
    // The buffer the next message is copied into (taken from the pool when it is needed).
    let mut buf = Vec::new();
    // The batch's messages shorter than POOLED_MIN, one after the other (their places in
    // `batch` hold empty `Bytes` until the batch is handed over): one allocation per batch,
    // freed on the async side once, instead of one per message.
    let mut small = Vec::new();
    let mut small_at: Vec<(usize, usize, usize)> = Vec::with_capacity(READ_BATCH);
    // The bytes of the last batch's small messages: the next batch's buffer starts that long.
    let mut small_hint = 0;
    loop {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        // Wait for the first message of a batch; take the ones already there after it.
        let deadline = if batch.is_empty() {
            Instant::now() + Duration::from_millis(200)
        } else {
            Instant::now()
        };
        if buf.capacity() == 0 {
            buf = pool.take();
        }
        let r = match q.peek_at_into(next, Some(deadline), &mut buf) {
            Ok(true) => {
                bytes += buf.len();
                let m = if buf.len() < POOLED_MIN {
                    // async-nats copies a payload this short into its write buffer: a copy of
                    // it in the batch's buffer, and this buffer kept for the next peek (no
                    // pool traffic between the threads for small messages).
                    if small.capacity() == 0 {
                        small.reserve(small_hint);
                    }
                    small_at.push((batch.len(), small.len(), buf.len()));
                    small.extend_from_slice(&buf);
                    Bytes::new()
                } else {
                    pool.wrap(std::mem::take(&mut buf))
                };
                batch.push((next, m));
                next += 1;
                if batch.len() < READ_BATCH && bytes < READ_BATCH_BYTES && next < q.tail_position()
                {
                    continue;
                }
                None
            }
            // No message at this position (a put that died): the next one.
            Ok(false) => {
                next += 1;
                continue;
            }
            Err(PeekError::Timeout) if batch.is_empty() => continue,
            Err(PeekError::Timeout) => None,
            // Another consumer took it: the out-bridge should be the queue's only consumer.
            Err(PeekError::Taken { head }) => {
                next = head;
                batch.clear();
                small.clear();
                small_at.clear();
                bytes = 0;
                continue;
            }
            Err(PeekError::Closed) => Some(Read::Closed),
            Err(e) => Some(Read::Error(e.to_string())),
        };
        bytes = 0;
        if !small_at.is_empty() {
            small_hint = small.len();
            let whole = Bytes::from(std::mem::take(&mut small));
            for (i, at, len) in small_at.drain(..) {
                batch[i].1 = whole.slice(at..at + len);
            }
        }
        if !batch.is_empty()
            && tx
                .blocking_send(Read::Msgs(std::mem::replace(
                    &mut batch,
                    Vec::with_capacity(READ_BATCH),
                )))
                .is_err()
        {
            return;
        }
        if let Some(end) = r {
            let _ = tx.blocking_send(end);
            return;
        }
    }
}

type AckFuture = <jetstream::context::PublishAckFuture as std::future::IntoFuture>::IntoFuture;

/// How long the out-bridge waits for the stream's ack of a message before it republishes its
/// window (as long as async-nats's JetStream publish waits for one).
const ACK_TIMEOUT: Duration = Duration::from_secs(5);

/// How often the out-bridge looks for an ack overdue by [`ACK_TIMEOUT`]: a timer kept armed,
/// which also spares the runtime a wake-up of its own driver (a write to its eventfd) each
/// time a timer is registered while none is.
const KEEP_ARMED: Duration = Duration::from_secs(1);

/// Publishes to JetStream with this bridge's own reply subjects: each message is published
/// (core NATS, with its message id) with the reply subject `INBOX.POSITION`, and the stream's
/// acks all come on one subscription to `INBOX.*`: no request state, timer or future per
/// message, as JetStream's publish keeps (which cost the out-bridge about a quarter of its CPU
/// at 64 B).
struct Publisher {
    client: async_nats::Client,
    subject: async_nats::Subject,
    inbox: String,
    acks: async_nats::Subscriber,
    instance: u64,
}

/// What an ack said about the message at a position.
#[derive(Debug, PartialEq, Eq)]
enum Ack {
    /// Stored; `true` if the stream already had it (a duplicate, dropped).
    Stored(bool),
    /// Not stored (an error, or no stream on the subject).
    Failed,
}

impl Publisher {
    async fn new(
        client: &async_nats::Client,
        subject: &str,
        instance: u64,
    ) -> Result<Publisher, BridgeError> {
        let inbox = client.new_inbox();
        let acks = client
            .subscribe(format!("{inbox}.*"))
            .await
            .map_err(|e| BridgeError::JetStream(format!("subscribing to the acks: {e}")))?;
        Ok(Publisher {
            client: client.clone(),
            subject: async_nats::Subject::from(subject),
            inbox,
            acks,
            instance,
        })
    }

    /// Publishes the message at `pos` (in order); its ack comes on [`Publisher::acks`].
    async fn send(&self, pos: u64, payload: Bytes) -> Result<(), async_nats::PublishError> {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(
            async_nats::header::NATS_MESSAGE_ID,
            message_id(self.instance, pos).as_str(),
        );
        self.client
            .publish_with_reply_and_headers(
                self.subject.clone(),
                async_nats::Subject::from(format!("{}.{pos}", self.inbox)),
                headers,
                payload,
            )
            .await
    }

    /// The position an ack is for and what it says; `None` for a message that is not an ack
    /// of this bridge's.
    fn ack(&self, m: &async_nats::Message) -> Option<(u64, Ack)> {
        parse_ack(&self.inbox, m)
    }
}

/// The position an answer on `inbox.*` is for and what it says; `None` for a message that is
/// not such an answer.
fn parse_ack(inbox: &str, m: &async_nats::Message) -> Option<(u64, Ack)> {
    let pos = m
        .subject
        .strip_prefix(inbox)?
        .strip_prefix('.')?
        .parse()
        .ok()?;
    if m.status.is_some() {
        // 503: no stream on the subject (the server says so instead of an ack).
        return Some((pos, Ack::Failed));
    }
    /// The stream's answer: `{"stream":…,"seq":…,"duplicate":true}` or `{"error":{…}}`.
    #[derive(serde::Deserialize)]
    struct PubAck {
        seq: Option<u64>,
        #[serde(default)]
        duplicate: bool,
        error: Option<serde::de::IgnoredAny>,
    }
    Some(match serde_json::from_slice::<PubAck>(&m.payload) {
        Ok(a) if a.error.is_none() && a.seq.is_some() => (pos, Ack::Stored(a.duplicate)),
        _ => (pos, Ack::Failed),
    })
}

/// A message published and not yet taken from the queue.
struct Pending {
    pos: u64,
    payload: Bytes,
    /// When it was last published.
    sent: Instant,
    /// Its ack, once stored: whether it was a duplicate.
    stored: Option<bool>,
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
    let publisher = Publisher::new(&client, &cfg.subject, instance).await?;
    let js = jetstream::ContextBuilder::new()
        .timeout(ACK_TIMEOUT)
        .build(client);
    ensure_stream(&js, &cfg.stream, &cfg.subject, cfg.duplicate_window).await?;
    cfg.progress.set_connected();

    let window = cfg.window.max(1);
    let (tx, mut rx) = tokio::sync::mpsc::channel(window.div_ceil(READ_BATCH));
    let stop = Arc::new(AtomicBool::new(false));
    // As many buffers as can be in flight: the window, those copied ahead of it, the channel's.
    let pool = Pool::new(window + READ_BATCH * (window.div_ceil(READ_BATCH) + 1));
    let reading = {
        let (q, stop) = (Arc::clone(&q), Arc::clone(&stop));
        let start = q.head_position();
        std::thread::spawn(move || reader(q, start, tx, stop, pool))
    };
    let mut publisher = publisher;
    let result = pump(cfg, &q, &js, &mut publisher, max_payload, window, &mut rx).await;
    stop.store(true, Ordering::Relaxed);
    drop(rx);
    let _ = reading.join();
    result
}

async fn pump(
    cfg: &OutConfig,
    q: &Queue,
    js: &jetstream::Context,
    publisher: &mut Publisher,
    max_payload: usize,
    window: usize,
    rx: &mut tokio::sync::mpsc::Receiver<Read>,
) -> Result<OutStats, BridgeError> {
    let instance = publisher.instance;
    let mut stats = OutStats::default();
    // Copied, not yet published (waiting for room in the window).
    let mut copied: VecDeque<(u64, Bytes)> = VecDeque::new();
    let mut copied_bytes = 0;
    // Published, in position order, until taken from the queue (the stored ones at its front
    // are taken at once).
    let mut pending: VecDeque<Pending> = VecDeque::new();
    let mut closed = false;
    // A message that cannot travel: the ones before it are finished (acknowledged, taken),
    // then the bridge stops with this error, the message still first in the queue.
    let mut fatal: Option<BridgeError> = None;
    let mut backoff = Backoff::new();
    // Whether every pending message not stored yet was published since the last error (false
    // after an error: the window is republished, in order, before anything else).
    let mut healthy = true;
    // Payload bytes per part, once the stream was found able to carry parts.
    let mut part_size: Option<usize> = None;
    // Acknowledged positions to commit, reused.
    let mut acked = Vec::new();
    let mut armed = Box::pin(tokio::time::sleep(KEEP_ARMED));
    loop {
        if !healthy {
            backoff.wait().await;
            stats.retries += 1;
            let _ = ensure_stream(js, &cfg.stream, &cfg.subject, cfg.duplicate_window).await;
            healthy = true;
            // Under the same ids: the stream drops the copies of those it stored.
            for p in pending.iter_mut().filter(|p| p.stored.is_none()) {
                if publisher.send(p.pos, p.payload.clone()).await.is_err() {
                    healthy = false;
                    break;
                }
                p.sent = Instant::now();
            }
            continue;
        }
        // Publish what was copied while the window has room.
        while pending.len() < window && fatal.is_none() {
            let Some((pos, m)) = copied.pop_front() else {
                break;
            };
            copied_bytes -= m.len();
            // The headers (the message id) count towards the server's limit: a message that
            // does not fit in one NATS message goes in parts, alone (the window empty first).
            if m.len() + 128 > max_payload {
                if !pending.is_empty() {
                    copied_bytes += m.len();
                    copied.push_front((pos, m));
                    break;
                }
                let part = match part_size {
                    Some(p) => p,
                    None => match stream_part_size(js, cfg, max_payload).await {
                        Ok(p) => *part_size.insert(p),
                        Err(reason) => {
                            fatal = Some(BridgeError::Unchunkable {
                                len: m.len(),
                                max_payload,
                                reason,
                            });
                            closed = true;
                            copied.clear();
                            copied_bytes = 0;
                            break;
                        }
                    },
                };
                #[cfg(feature = "test-hooks")]
                let hold = hold_after_parts();
                #[cfg(not(feature = "test-hooks"))]
                let hold = None;
                let duplicate =
                    send_in_parts(cfg, js, instance, pos, &m, part, &mut stats, hold).await;
                stats.published += 1;
                stats.in_parts += 1;
                stats.duplicates += u64::from(duplicate);
                cfg.progress.add(1);
                backoff.reset();
                commit(cfg, q, &[pos])?;
                continue;
            }
            // The pooled buffer itself, not a copy: async-nats writes a payload of 4 KiB or
            // more from it (a shorter one it copies into its write buffer).
            let len = m.len();
            pending.push_back(Pending {
                pos,
                payload: m.clone(),
                sent: Instant::now(),
                stored: None,
            });
            match publisher.send(pos, m).await {
                Ok(()) => {}
                Err(e) if e.kind() == async_nats::PublishErrorKind::MaxPayloadExceeded => {
                    pending.pop_back();
                    fatal = Some(BridgeError::TooLarge {
                        len,
                        max: max_payload,
                        what: "the NATS server's maximum payload",
                    });
                    closed = true;
                    copied.clear();
                    copied_bytes = 0;
                }
                Err(_) => {
                    healthy = false;
                    break;
                }
            }
        }
        if !healthy {
            continue;
        }
        if closed && pending.is_empty() && copied.is_empty() {
            return fatal.map_or(Ok(stats), Err);
        }
        tokio::select! {
            biased;
            m = publisher.acks.next(), if !pending.is_empty() => {
                // The client keeps its subscriptions across reconnects: this one ends only
                // with the client.
                let Some(m) = m else {
                    return Err(BridgeError::JetStream(
                        "the subscription to the stream's acks ended".into(),
                    ));
                };
                // This ack and those already in.
                let mut next = Some(m);
                while let Some(m) = next {
                    if let Some((pos, ack)) = publisher.ack(&m) {
                        // An ack of an earlier attempt, for a message taken since, is no news.
                        if let Ok(i) = pending.binary_search_by_key(&pos, |p| p.pos)
                            && pending[i].stored.is_none()
                        {
                            match ack {
                                Ack::Stored(duplicate) => pending[i].stored = Some(duplicate),
                                Ack::Failed => healthy = false,
                            }
                        }
                    }
                    next = publisher.acks.next().now_or_never().flatten();
                }
                // The stored ones at the front, taken in runs of consecutive positions.
                acked.clear();
                while let Some(duplicate) = pending.front().and_then(|p| p.stored) {
                    let Some(p) = pending.pop_front() else { break };
                    stats.published += 1;
                    stats.duplicates += u64::from(duplicate);
                    acked.push(p.pos);
                }
                if !acked.is_empty() {
                    cfg.progress.add(acked.len() as u64);
                    backoff.reset();
                    commit(cfg, q, &acked)?;
                }
            }
            read = rx.recv(), if !closed && copied.len() < window
                && copied_bytes < READ_AHEAD_BYTES => match read {
                Some(Read::Msgs(msgs)) => {
                    copied_bytes += msgs.iter().map(|(_, m)| m.len()).sum::<usize>();
                    copied.extend(msgs);
                }
                Some(Read::Closed) | None => closed = true,
                Some(Read::Error(e)) => {
                    return Err(BridgeError::Queue { queue: cfg.queue.clone(), reason: e });
                }
            },
            () = &mut armed => {
                armed.as_mut().reset(tokio::time::Instant::now() + KEEP_ARMED);
                // No ack within ACK_TIMEOUT (a lost publish, or no server): republish.
                if pending.iter().any(|p| p.stored.is_none() && p.sent.elapsed() >= ACK_TIMEOUT) {
                    healthy = false;
                }
            }
        }
    }
}

/// Parts published and not yet acknowledged, at most, while a message goes in parts.
const PARTS_IN_FLIGHT: usize = 8;

/// The payload bytes per part the stream `cfg.stream` can carry, or why it cannot.
async fn stream_part_size(
    js: &jetstream::Context,
    cfg: &OutConfig,
    max_payload: usize,
) -> Result<usize, String> {
    let mut backoff = Backoff::new();
    let info = loop {
        match js.get_stream(&cfg.stream).await {
            Ok(s) => break s.cached_info().clone(),
            Err(e) if backoff.0 >= Duration::from_secs(2) => {
                return Err(format!("stream {}: {e}", cfg.stream));
            }
            Err(_) => backoff.wait().await,
        }
    };
    chunk::part_size(max_payload, &info.config)
}

/// Publishes the message `m` at `pos` as parts of `part` bytes, then its manifest (see
/// [`chunk`]), retrying with backoff under the same ids (the stream drops the copies, and
/// their acks give the first copies' sequences) until the manifest is acknowledged; returns
/// whether the manifest was a duplicate (published before a death).
#[allow(clippy::too_many_arguments)]
async fn send_in_parts(
    cfg: &OutConfig,
    js: &jetstream::Context,
    instance: u64,
    pos: u64,
    m: &Bytes,
    part: usize,
    stats: &mut OutStats,
    hold: Option<u64>,
) -> bool {
    let id = message_id(instance, pos);
    let parts = m.len().div_ceil(part);
    let mut backoff = Backoff::new();
    let mut first = true;
    'attempt: loop {
        if !first {
            backoff.wait().await;
            stats.retries += 1;
            let _ = ensure_stream(js, &cfg.stream, &cfg.subject, cfg.duplicate_window).await;
        }
        first = false;
        let mut acks: FuturesOrdered<AckFuture> = FuturesOrdered::new();
        let mut sequences = Vec::with_capacity(parts);
        for i in 0..parts {
            while acks.len() >= PARTS_IN_FLIGHT {
                match acks.next().await {
                    Some(Ok(a)) => sequences.push(a.sequence),
                    _ => continue 'attempt,
                }
            }
            #[cfg(feature = "test-hooks")]
            hold_here(hold, sequences.len());
            let _ = hold;
            let payload = m.slice(i * part..((i + 1) * part).min(m.len()));
            let msg = PublishMessage::build()
                .payload(payload)
                .headers(chunk::part_headers(&id, i, parts, m.len()))
                .message_id(format!("{id}.{i}"));
            match js.send_publish(cfg.subject.clone(), msg).await {
                Ok(f) => acks.push_back(std::future::IntoFuture::into_future(f)),
                Err(_) => continue 'attempt,
            }
        }
        while let Some(a) = acks.next().await {
            match a {
                Ok(a) => sequences.push(a.sequence),
                Err(_) => continue 'attempt,
            }
        }
        let manifest = PublishMessage::build()
            .headers(chunk::manifest_headers(&id, m.len(), &sequences))
            .message_id(&id);
        let ack = match js.send_publish(cfg.subject.clone(), manifest).await {
            Ok(f) => f.await,
            Err(_) => continue 'attempt,
        };
        match ack {
            Ok(a) => return a.duplicate,
            Err(_) => continue 'attempt,
        }
    }
}

/// Test hook (feature `test-hooks`, never in a release build): with
/// `SHMQ_BRIDGE_TEST_HOLD_AFTER_PARTS=N` in its environment, the out-bridge stops for good
/// once `N` parts of a message in parts are acknowledged, printing `out-bridge: holding` on
/// stdout: a bridge to be killed between parts.
#[cfg(feature = "test-hooks")]
fn hold_after_parts() -> Option<u64> {
    std::env::var("SHMQ_BRIDGE_TEST_HOLD_AFTER_PARTS")
        .ok()
        .and_then(|v| v.parse().ok())
}

#[cfg(feature = "test-hooks")]
fn hold_here(hold: Option<u64>, acked: usize) {
    if hold == Some(acked as u64) {
        println!("out-bridge: holding after {acked} parts");
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
}

/// Takes the acknowledged messages at `positions` (ascending) from the queue, one
/// `commit_many` per run of consecutive positions, and marks them done.
fn commit(cfg: &OutConfig, q: &Queue, positions: &[u64]) -> Result<(), BridgeError> {
    let mut i = 0;
    while i < positions.len() {
        let from = positions[i];
        let mut n = 1;
        while i + n < positions.len() && positions[i + n] == from + n as u64 {
            n += 1;
        }
        match q.commit_many(from, n as u64) {
            Ok(()) => {
                if cfg.task_done {
                    for _ in 0..n {
                        let _ = q.task_done();
                    }
                }
            }
            // Another consumer took them meanwhile (the bridge should be the only one).
            Err(CommitError::Moved { head }) if head > from => {}
            Err(e) => {
                return Err(BridgeError::Queue {
                    queue: cfg.queue.clone(),
                    reason: e.to_string(),
                });
            }
        }
        i += n;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use shmq::Options;

    /// Runs the reading thread on `q` from position 0 and returns the sizes (in messages and
    /// bytes) of the batches it hands over for the first `n` messages, checking that they come
    /// in order and whole.
    fn batches(q: &Arc<Queue>, n: u64, len: usize) -> Vec<(usize, usize)> {
        let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
        let stop = Arc::new(AtomicBool::new(false));
        let reading = {
            let (q, stop) = (Arc::clone(q), Arc::clone(&stop));
            std::thread::spawn(move || reader(q, 0, tx, stop, Pool::new(16)))
        };
        let mut sizes = Vec::new();
        let mut next = 0;
        while next < n {
            let Some(Read::Msgs(msgs)) = rx.blocking_recv() else {
                panic!("the reader stopped at position {next} of {n}");
            };
            sizes.push((msgs.len(), msgs.iter().map(|(_, m)| m.len()).sum()));
            if len < POOLED_MIN {
                // Small messages: one after the other in one buffer per batch.
                for w in msgs.windows(2) {
                    assert_eq!(
                        w[1].1.as_ptr(),
                        w[0].1.as_ptr().wrapping_add(len),
                        "messages {} and {} not in one buffer",
                        w[0].0,
                        w[1].0
                    );
                }
            }
            for (pos, m) in msgs {
                assert_eq!(pos, next);
                assert_eq!(m[..], vec![pos as u8; len][..], "message {pos}");
                next += 1;
            }
        }
        stop.store(true, Ordering::Relaxed);
        drop(rx);
        reading.join().unwrap();
        sizes
    }

    /// An answer on the bridge's inbox names its position; one with a stream sequence and no
    /// error is an ack (a duplicate or not), an error or a status (503: no stream) is not,
    /// and a message on another subject is none of the bridge's.
    #[test]
    fn an_answer_names_its_position_and_says_whether_the_stream_holds_the_message() {
        let answer = |subject: &str, payload: &str, status: Option<u16>| async_nats::Message {
            subject: subject.into(),
            reply: None,
            payload: Bytes::copy_from_slice(payload.as_bytes()),
            headers: None,
            status: status.map(|s| async_nats::StatusCode::from_u16(s).unwrap()),
            description: None,
            length: payload.len(),
        };
        let inbox = "_INBOX.abc";
        let ok = r#"{"stream":"S","seq":12}"#;
        let dup = r#"{"stream":"S","seq":12,"duplicate":true}"#;
        let err =
            r#"{"error":{"code":503,"err_code":10077,"description":"maximum messages exceeded"}}"#;
        assert_eq!(
            parse_ack(inbox, &answer("_INBOX.abc.7", ok, None)),
            Some((7, Ack::Stored(false)))
        );
        assert_eq!(
            parse_ack(inbox, &answer("_INBOX.abc.18446744073709551615", dup, None)),
            Some((u64::MAX, Ack::Stored(true)))
        );
        assert_eq!(
            parse_ack(inbox, &answer("_INBOX.abc.7", err, None)),
            Some((7, Ack::Failed))
        );
        assert_eq!(
            parse_ack(inbox, &answer("_INBOX.abc.7", "", Some(503))),
            Some((7, Ack::Failed))
        );
        assert_eq!(
            parse_ack(inbox, &answer("_INBOX.abc.7", "not json", None)),
            Some((7, Ack::Failed))
        );
        for other in [
            "_INBOX.abd.7",
            "_INBOX.abc7",
            "_INBOX.abc.x",
            "_INBOX.abc.7.1",
        ] {
            assert_eq!(parse_ack(inbox, &answer(other, ok, None)), None, "{other}");
        }
    }

    fn queue_with(n: u8, len: usize) -> Arc<Queue> {
        let q = Queue::anonymous(&Options {
            capacity: 128,
            message_size: len,
            ..Default::default()
        })
        .unwrap();
        for i in 0..n {
            q.put(vec![i; len]).unwrap();
        }
        Arc::new(q)
    }

    /// A message's buffer comes back to the pool when the last clone of its `Bytes` is dropped
    /// (not before), as it was (the same allocation, its bytes kept: the next peek into it
    /// neither allocates nor zero-fills); buffers beyond the pool's limits are freed.
    #[test]
    fn a_message_buffer_comes_back_to_the_pool_once_its_last_bytes_are_dropped() {
        let pool = Pool::new(2);
        let buf = vec![5u8; 64 << 10];
        let (ptr, cap) = (buf.as_ptr(), buf.capacity());
        let m = pool.wrap(buf);
        assert_eq!((m.as_ptr(), m.len()), (ptr, 64 << 10), "no copy");
        let sent = m.clone(); // as async-nats holds one until it has written it
        drop(m);
        assert_eq!(pool.take().capacity(), 0, "still held: not in the pool");
        drop(sent);
        let back = pool.take();
        assert_eq!((back.as_ptr(), back.capacity()), (ptr, cap));
        assert_eq!(back, vec![5u8; 64 << 10]);
        assert_eq!(pool.take().capacity(), 0, "taken once");

        // At most `max` buffers; none longer than POOLED_BUFFER_MAX; POOL_BYTES in all.
        let held: Vec<Bytes> = (0..3).map(|_| pool.wrap(vec![1; 10])).collect();
        drop(held);
        assert_eq!(pool.free.lock().unwrap().0.len(), 2, "max 2");
        let big = Pool::new(100);
        drop(big.wrap(vec![0; POOLED_BUFFER_MAX + 1]));
        assert_eq!(big.take().capacity(), 0, "too long to keep");
        let held: Vec<Bytes> = (0..20)
            .map(|_| big.wrap(vec![0; POOLED_BUFFER_MAX]))
            .collect();
        drop(held);
        let free = big.free.lock().unwrap();
        assert_eq!(
            (free.0.len(), free.1),
            (16, POOL_BYTES),
            "POOL_BYTES in all"
        );
    }

    /// Large messages waiting in the queue are handed over a few at a time (256 KiB at most,
    /// or one message), not 64 at a time: what the out-bridge copies ahead of its window stays
    /// small. Small ones still go 64 at a time, copied one after the other into one buffer per
    /// batch.
    #[test]
    fn the_reader_hands_over_large_messages_a_few_at_a_time() {
        let _w = shmq_testkit::Watchdog::new("outbound reader", Duration::from_secs(60));
        let large = batches(&queue_with(20, 64 << 10), 20, 64 << 10);
        assert_eq!(large, vec![(4, 256 << 10); 5]);
        let huge = batches(&queue_with(3, 300 << 10), 3, 300 << 10);
        assert_eq!(huge, vec![(1, 300 << 10); 3]);
        let small = batches(&queue_with(100, 64), 100, 64);
        assert_eq!(small, vec![(64, 64 * 64), (36, 36 * 64)]);
    }
}
