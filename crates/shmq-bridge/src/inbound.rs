//! The in-bridge: JetStream → local queue.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, AckKind, consumer::pull};
use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};
use shmq::{PeekError, Queue, TryPutError};

use crate::chunk::{self, Kind};
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
    /// Several in-bridges (one per host, each into its own queue) share the durable consumer
    /// (default false): each records what it is putting and what it put in a key-value bucket
    /// on the server, and reads the others' records before putting a redelivered message; a
    /// group whose record is confirmed later than three quarters of the ack wait after its pull
    /// request is left to the redelivery, neither put nor acknowledged (see docs/bridge.md,
    /// "Several hosts").
    pub shared: bool,
    /// Where the bridge says it connected and counts what it put (for a status line).
    pub progress: std::sync::Arc<crate::Progress>,
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
            shared: false,
            progress: std::sync::Arc::default(),
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
    /// Parts of messages in parts received (and acknowledged; the message is put when its
    /// manifest comes, and counted in `put`).
    pub parts: u64,
    /// Redeliveries sent back for later because another in-bridge on the shared consumer was
    /// putting them (or died putting them); see [`InConfig::shared`].
    pub held: u64,
    /// Messages left unput and unacknowledged because this bridge's record of them (shared
    /// consumer) was written too close to their ack wait's end: the server may have handed
    /// them to another in-bridge before it, so they are left to the redelivery.
    pub late: u64,
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
        .build(client.clone());
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
    let shared = if cfg.shared {
        let sh = Shared::open(&js, &cfg.stream, &cfg.consumer, instance).await?;
        // What the dead bridge was putting is settled now: say so to the others.
        sh.record(&InState {
            instance,
            stream_created,
            tail: q.tail_position(),
            voided: Some(q.voided()),
            batch: Vec::new(),
            put: in_queue.0.clone(),
        })
        .await?;
        Some(sh)
    } else {
        None
    };
    cfg.progress.set_connected();
    let mut stats = InStats::default();
    let mut backoff = Backoff::new();
    let mut last_message = Instant::now();
    // The one pull request out at a time (two would be served in turns by the server, their
    // messages interleaved: the put order would not be the stream's).
    let mut pull: Option<Pull> = None;
    let batch = cfg.batch.max(1);
    // Parts received, for their manifests.
    let mut parts_seen = PartCache::default();
    // A batch's messages and their sorting, kept from batch to batch: allocated once (a batch
    // of 256 is some 100 KiB of messages, which the allocator would otherwise give back to the
    // system and fault in again each time).
    let mut msgs: Vec<jetstream::Message> = Vec::new();
    let mut fresh: Vec<(u64, jetstream::Message, Kind)> = Vec::new();
    // Redeliveries another in-bridge may be putting (shared consumer): back later.
    let mut held = Vec::new();
    let mut again = Vec::new();
    let mut seen = Seen::default();
    loop {
        if cfg.idle_exit.is_some_and(|d| last_message.elapsed() >= d) {
            return Ok(stats);
        }
        if q.is_closed() {
            return Ok(stats);
        }
        // Back-pressure: a request never asks for more messages than the queue has free slots
        // (everything received so far is put).
        let free = q.capacity().saturating_sub(q.len());
        if pull.is_none() && free > 0 {
            pull = request(&consumer, free.min(batch)).await;
        }
        if pull.is_none() {
            if free == 0 {
                tokio::time::sleep(Duration::from_millis(2)).await; // full: wait for a get
            } else if !matches!(
                tokio::time::timeout(ANSWER, consumer.info()).await,
                Ok(Ok(_))
            ) {
                backoff.wait().await; // the server does not answer: wait for it
            }
            continue;
        }
        // The last batch's messages dropped before waiting for the next ones: their payloads
        // hold on to the connection's read buffer, which is then reused rather than replaced.
        msgs.clear();
        fresh.clear();
        held.clear();
        again.clear();
        seen.clear();
        let sent = match receive(&mut pull, batch, &mut msgs).await {
            Received::Msgs(sent) => sent,
            Received::Ended => continue,
            Received::Silent => {
                // A request the server never answered (sent while the connection was down).
                if !matches!(
                    tokio::time::timeout(ANSWER, consumer.info()).await,
                    Ok(Ok(_))
                ) {
                    backoff.wait().await;
                }
                continue;
            }
        };
        last_message = Instant::now();
        backoff.reset();
        // The request done, the next one now, so that the server delivers while these are put
        // and acknowledged: no more than the slots still free once these are in.
        let free_after = q
            .capacity()
            .saturating_sub(q.len())
            .saturating_sub(msgs.len());
        if pull.is_none() && free_after > 0 {
            pull = request(&consumer, free_after.min(batch)).await;
        }
        let mut fatal = None;
        let mut others: Option<Vec<InState>> = None;
        for m in msgs.drain(..) {
            let (seq, delivered) = match m.info() {
                Ok(i) => (i.stream_sequence, i.delivered),
                Err(e) => return Err(BridgeError::JetStream(format!("message info: {e}"))),
            };
            let kind = chunk::kind(m.headers.as_ref()).map_err(|reason| BridgeError::BadParts {
                id: String::new(),
                sequence: seq,
                reason,
            })?;
            if let Kind::Part { id, part, parts } = &kind {
                // A part: kept for its manifest, acknowledged (it stays in the stream).
                stats.parts += 1;
                parts_seen.insert(seq, (id.clone(), *part, *parts), m.payload.clone());
                again.push((seq, m));
                continue;
            }
            if in_queue.contains(seq) || !seen.insert(seq) {
                stats.skipped += 1;
                again.push((seq, m));
                continue;
            }
            // A redelivery on a shared consumer: another in-bridge may have put it (and died
            // before its ack), or be putting it.
            if let Some(sh) = &shared
                && delivered > 1
            {
                if others.is_none() {
                    others = Some(sh.others().await?);
                }
                let others = others.as_deref().unwrap_or_default();
                if others.iter().any(|o| SeqSet(o.put.clone()).contains(seq)) {
                    stats.skipped += 1;
                    again.push((seq, m));
                    continue;
                }
                if others.iter().any(|o| o.batch.contains(&seq)) {
                    stats.held += 1;
                    held.push(m);
                    continue;
                }
            }
            // Larger than a slot is fine (a side segment), up to the queue's maximum.
            let len = match &kind {
                Kind::Manifest { length, .. } => *length,
                _ => m.payload.len(),
            };
            if len > q.max_message_size() {
                // The messages before it are put and acknowledged, then the bridge stops; it
                // and those after it stay unacknowledged in the stream.
                fatal = Some(BridgeError::TooLarge {
                    len,
                    max: q.max_message_size(),
                    what: "the local queue's maximum message size",
                });
                break;
            }
            fresh.push((seq, m, kind));
        }
        // Put in groups of at most GROUP_BYTES (messages in parts are put together in memory
        // first), each with its own state-file write, put and acks.
        let mut from = 0;
        while from < fresh.len() {
            let mut to = from;
            let mut bytes = 0;
            while to < fresh.len() && (to == from || bytes < GROUP_BYTES) {
                bytes += match &fresh[to].2 {
                    Kind::Manifest { length, .. } => *length,
                    _ => fresh[to].1.payload.len(),
                };
                to += 1;
            }
            let group = &fresh[from..to];
            from = to;
            // The state (and, shared, the others' view) says what is about to be put before
            // the parts of a long message are gathered, which may take a while: a redelivery
            // meanwhile is recognised. Nothing is put before the state is written.
            in_queue.prune();
            let intent = InState {
                instance,
                stream_created,
                tail: q.tail_position(),
                voided: Some(q.voided()),
                batch: group.iter().map(|(s, _, _)| *s).collect(),
                put: in_queue.0.clone(),
            };
            #[cfg(feature = "test-hooks")]
            delay_before_record(stats.put).await;
            if let Some(sh) = &shared {
                sh.record(&intent).await?;
                // The others read this record when the server redelivers one of these to
                // them, which it does once their ack wait is over: a record written after
                // that may come too late (another bridge may be putting them already, having
                // read the record before). Then neither put nor acknowledge them (nor the
                // groups after them, delivered as early): the redelivery decides.
                if sent.elapsed() + late_margin(cfg.ack_wait) >= cfg.ack_wait {
                    sh.record(&InState {
                        batch: Vec::new(),
                        ..intent
                    })
                    .await?;
                    stats.late += fresh[from - group.len()..].len() as u64;
                    break;
                }
            }
            state_file.store(&intent)?;
            // The messages in parts, put together; the others are put from their payloads
            // (not from clones of them: a clone of a payload may cost an allocation).
            let mut gathered: Vec<Option<Bytes>> = Vec::with_capacity(group.len());
            for (seq, m, kind) in group {
                gathered.push(match kind {
                    Kind::Manifest {
                        id,
                        length,
                        sequences,
                    } => {
                        // Restarts the server's ack wait for it while its parts are gathered.
                        let _ = m.ack_with(AckKind::Progress).await;
                        Some(gather(&stream, &mut parts_seen, *seq, id, *length, sequences).await?)
                    }
                    _ => None,
                });
            }
            let payloads: Vec<&[u8]> = group
                .iter()
                .zip(&gathered)
                .map(|((_, m, _), whole)| whole.as_deref().unwrap_or(&m.payload))
                .collect();
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
            cfg.progress.add(done as u64);
            for (seq, _, _) in &group[..done] {
                in_queue.insert(*seq);
            }
            #[cfg(feature = "test-hooks")]
            stop_after_put(stats.put);
            if let Some(sh) = &shared {
                sh.record(&InState {
                    instance,
                    stream_created,
                    tail: q.tail_position(),
                    voided: Some(q.voided()),
                    batch: Vec::new(),
                    put: in_queue.0.clone(),
                })
                .await?;
            }
            // The ack, only after the put returned. No confirmation is awaited: a lost ack
            // means a redelivery, which `in_queue` recognises and acknowledges again without
            // a put.
            for (_, m, _) in &group[..done] {
                if m.ack_with(AckKind::Ack).await.is_err() {
                    stats.failed_acks += 1;
                }
            }
            if closed {
                for (_, m) in &again {
                    if m.ack_with(AckKind::Ack).await.is_err() {
                        stats.failed_acks += 1;
                    }
                }
                return Ok(stats);
            }
        }
        for (_, m) in &again {
            if m.ack_with(AckKind::Ack).await.is_err() {
                stats.failed_acks += 1;
            }
        }
        for m in &held {
            let _ = m.ack_with(AckKind::Nak(Some(HELD))).await;
        }
        if let Some(e) = fatal {
            // Let the acks reach the server before the process ends.
            let _ = tokio::time::timeout(ANSWER, client.flush()).await;
            return Err(e);
        }
    }
}

/// The stream sequences of a batch already looked at, to recognise one delivered twice in the
/// batch: sorted, appended to without a search while they come in order (as they do but after
/// a redelivery).
#[derive(Default)]
struct Seen(Vec<u64>);

impl Seen {
    fn clear(&mut self) {
        self.0.clear();
    }

    /// Adds `seq`; false if it was there already.
    fn insert(&mut self, seq: u64) -> bool {
        match self.0.last() {
            Some(&last) if seq <= last => match self.0.binary_search(&seq) {
                Ok(_) => false,
                Err(i) => {
                    self.0.insert(i, seq);
                    true
                }
            },
            _ => {
                self.0.push(seq);
                true
            }
        }
    }
}

/// How long a redelivery another in-bridge may be putting is sent back for.
const HELD: Duration = Duration::from_secs(1);

/// How close to the end of their ack wait (measured from the pull request) a shared consumer's
/// record of a group may be confirmed and the group still put: a quarter of the ack wait, so
/// that the server's clock and ours, and the record's way back to us, have room.
fn late_margin(ack_wait: Duration) -> Duration {
    ack_wait / 4
}

/// The record of a shared consumer's in-bridges: a stream on the server keeping the last
/// message of each subject `shmq-in.<NAME>.<KEY>`, one subject per in-bridge (its queue's
/// instance id), holding the [`InState`] it last wrote.
struct Shared {
    js: jetstream::Context,
    stream: jetstream::stream::Stream,
    prefix: String,
    subject: String,
}

impl Shared {
    async fn open(
        js: &jetstream::Context,
        stream: &str,
        consumer: &str,
        instance: u64,
    ) -> Result<Shared, BridgeError> {
        let name: String = format!("{stream}-{consumer}")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let prefix = format!("shmq-in.{name}");
        let cfg = jetstream::stream::Config {
            name: format!("SHMQ_IN_{name}"),
            subjects: vec![format!("{prefix}.>")],
            storage: jetstream::stream::StorageType::File,
            max_messages_per_subject: 1,
            ..Default::default()
        };
        let mut backoff = Backoff::new();
        let record = loop {
            match js.get_or_create_stream(cfg.clone()).await {
                Ok(s) => break s,
                Err(e) if backoff.0 >= Duration::from_secs(2) => {
                    return Err(BridgeError::JetStream(format!(
                        "the in-bridges' record {}: {e}",
                        cfg.name
                    )));
                }
                Err(_) => backoff.wait().await,
            }
        };
        Ok(Shared {
            js: js.clone(),
            stream: record,
            subject: format!("{prefix}.q{instance:016x}"),
            prefix,
        })
    }

    /// Writes this bridge's state, waiting out a server that does not answer: nothing is put
    /// before the others can see it is being put.
    async fn record(&self, s: &InState) -> Result<(), BridgeError> {
        let body =
            Bytes::from(serde_json::to_vec(s).map_err(|e| BridgeError::JetStream(e.to_string()))?);
        let mut backoff = Backoff::new();
        loop {
            let sent = match self.js.publish(self.subject.clone(), body.clone()).await {
                Ok(ack) => ack.await.map(|_| ()).map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match sent {
                Ok(()) => return Ok(()),
                Err(e) => {
                    if std::env::var_os("SHMQ_BRIDGE_DEBUG").is_some() {
                        eprintln!("in-bridge: recording the state for the others: {e}");
                    }
                    backoff.wait().await;
                }
            }
        }
    }

    /// The other in-bridges' states.
    async fn others(&self) -> Result<Vec<InState>, BridgeError> {
        let err = |e: String| BridgeError::JetStream(format!("the other in-bridges' states: {e}"));
        let mut subjects = self
            .stream
            .info_with_subjects(format!("{}.>", self.prefix))
            .await
            .map_err(|e| err(e.to_string()))?;
        let mut names = Vec::new();
        while let Some(s) = subjects.next().await {
            let (subject, _) = s.map_err(|e| err(e.to_string()))?;
            if subject != self.subject {
                names.push(subject);
            }
        }
        let mut out = Vec::new();
        for subject in names {
            let m = self
                .stream
                .get_last_raw_message_by_subject(&subject)
                .await
                .map_err(|e| err(e.to_string()))?;
            out.push(serde_json::from_slice(&m.payload).map_err(|e| err(e.to_string()))?);
        }
        Ok(out)
    }
}

/// The bytes of messages a group put at once holds at most (its first message aside): messages
/// in parts are put together in memory before their put.
const GROUP_BYTES: usize = 64 << 20;

/// The bytes of parts kept for their manifests at most (the oldest are dropped first; a part
/// not kept is fetched from the stream).
const CACHE_BYTES: usize = 128 << 20;

/// Parts received through the consumer, by stream sequence, until their manifest comes.
#[derive(Default)]
struct PartCache {
    parts: HashMap<u64, (String, usize, usize, Bytes)>,
    order: VecDeque<u64>,
    bytes: usize,
}

impl PartCache {
    fn insert(&mut self, seq: u64, (id, part, parts): (String, usize, usize), payload: Bytes) {
        self.bytes += payload.len();
        if self.parts.insert(seq, (id, part, parts, payload)).is_none() {
            self.order.push_back(seq);
        }
        while self.bytes > CACHE_BYTES {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if let Some(p) = self.parts.remove(&old) {
                self.bytes -= p.3.len();
            }
        }
    }

    fn take(&mut self, seq: u64) -> Option<(String, usize, usize, Bytes)> {
        let p = self.parts.remove(&seq)?;
        self.bytes -= p.3.len();
        self.order.retain(|&s| s != seq);
        Some(p)
    }
}

/// Puts the message `id` (manifest at `seq`) together from its parts at `sequences`: those
/// received, or fetched from the stream. Each part must say it is part `i` of this message,
/// and the whole must be `length` bytes.
async fn gather(
    stream: &jetstream::stream::Stream,
    cache: &mut PartCache,
    seq: u64,
    id: &str,
    length: usize,
    sequences: &[u64],
) -> Result<Bytes, BridgeError> {
    let bad = |reason: String| BridgeError::BadParts {
        id: id.to_owned(),
        sequence: seq,
        reason,
    };
    let mut body = Vec::with_capacity(length);
    for (i, &s) in sequences.iter().enumerate() {
        let (pid, part, parts, payload) = match cache.take(s) {
            Some(p) => p,
            None => {
                let m = fetch(stream, s).await.map_err(&bad)?;
                if std::env::var_os("SHMQ_BRIDGE_DEBUG").is_some() {
                    eprintln!("in-bridge: fetched part {i} of {id} from the stream");
                }
                match chunk::kind(Some(&m.headers)).map_err(&bad)? {
                    Kind::Part { id, part, parts } => (id, part, parts, m.payload),
                    _ => return Err(bad(format!("stream sequence {s} is not a part"))),
                }
            }
        };
        if pid != id || part != i || parts != sequences.len() {
            return Err(bad(format!(
                "stream sequence {s} is part {part} of {parts} of {pid}, not part {i} of {} of {id}",
                sequences.len()
            )));
        }
        body.extend_from_slice(&payload);
    }
    if body.len() != length {
        return Err(bad(format!(
            "its parts hold {} bytes, not {length}",
            body.len()
        )));
    }
    Ok(Bytes::from(body))
}

/// The stream's message at `seq`, waiting out a server that does not answer.
async fn fetch(
    stream: &jetstream::stream::Stream,
    seq: u64,
) -> Result<jetstream::message::StreamMessage, String> {
    use jetstream::stream::RawMessageErrorKind;
    let mut backoff = Backoff::new();
    loop {
        match stream.get_raw_message(seq).await {
            Ok(m) => return Ok(m),
            Err(e) if e.kind() == RawMessageErrorKind::NoMessageFound => {
                return Err(format!(
                    "its part at stream sequence {seq} is not in the stream any more"
                ));
            }
            Err(e) => {
                if std::env::var_os("SHMQ_BRIDGE_DEBUG").is_some() {
                    eprintln!("in-bridge: fetching part {seq}: {e}");
                }
                backoff.wait().await;
            }
        }
    }
}

/// How long a pull request waits at the server for messages (it ends sooner once it got all
/// it asked for); the bridge then sends another.
const EXPIRES: Duration = Duration::from_millis(500);

/// After the first message of a group, how long the bridge waits for more at most before it
/// puts what it has: one state-file write, one put and one flush of acks serve the whole group,
/// and the server reads the group's acks together.
const LINGER: Duration = Duration::from_millis(20);

/// A group ends earlier when no message came for this long: messages that stopped coming are
/// put at once.
const GAP: Duration = Duration::from_millis(2);

/// A pull request out at the server.
struct Pull {
    batch: pull::Batch,
    /// When it was sent: the server delivered its messages after this, so their ack wait ends
    /// after `sent + ack_wait`.
    sent: Instant,
    /// Messages it may still bring.
    left: usize,
    /// Whether any came.
    answered: bool,
    /// When it is over for sure: its expiry at the server and a margin (a request sent while
    /// the connection was down is never answered).
    over: tokio::time::Instant,
}

/// Sends a pull request for up to `want` messages, which waits [`EXPIRES`] at most at the
/// server. `None` if it could not be sent.
async fn request(consumer: &jetstream::consumer::PullConsumer, want: usize) -> Option<Pull> {
    let sent = Instant::now();
    let over = tokio::time::Instant::now() + EXPIRES + ANSWER / 5;
    match consumer
        .batch()
        .max_messages(want)
        .expires(EXPIRES)
        .messages()
        .await
    {
        Ok(batch) => Some(Pull {
            batch,
            sent,
            left: want,
            answered: false,
            over,
        }),
        Err(e) => {
            if std::env::var_os("SHMQ_BRIDGE_DEBUG").is_some() {
                eprintln!("in-bridge: pull request: {e}");
            }
            None
        }
    }
}

enum Received {
    /// Messages (added to the caller's), in the order the server delivered them, all of one
    /// request, and when that request was sent ([`Pull::sent`]).
    Msgs(Instant),
    /// The request ended (it expired, or got all it asked for) with nothing more.
    Ended,
    /// The request got no answer at all.
    Silent,
}

/// The messages of the request `pull` received so far, at least one and at most `max`: waits
/// for the first one, then up to [`LINGER`] for more, and takes what has come, without waiting
/// for the request to be complete; they are added to `msgs` (empty when called). A request
/// that ends is taken out of `pull`.
async fn receive(
    pull: &mut Option<Pull>,
    max: usize,
    msgs: &mut Vec<jetstream::Message>,
) -> Received {
    let mut first: Option<Instant> = None;
    let Some(sent) = pull.as_ref().map(|p| p.sent) else {
        return Received::Ended;
    };
    while msgs.len() < max {
        let Some(p) = pull.as_mut() else {
            break;
        };
        let next = if let Some(t) = first {
            // More of the group while they keep coming (a gap of GAP ends it), LINGER at most.
            let left = LINGER.saturating_sub(t.elapsed()).min(GAP);
            match p.batch.next().now_or_never() {
                Some(m) => m,
                None if left.is_zero() => break,
                None => match tokio::time::timeout(left, p.batch.next()).await {
                    Ok(m) => m,
                    Err(_) => break,
                },
            }
        } else {
            match tokio::time::timeout_at(p.over, p.batch.next()).await {
                Ok(m) => m,
                Err(_) => {
                    // Over and no end seen: what was not received is redelivered after the
                    // ack wait.
                    let answered = p.answered;
                    *pull = None;
                    return if answered {
                        Received::Ended
                    } else {
                        Received::Silent
                    };
                }
            }
        };
        match next {
            Some(Ok(m)) => {
                p.left = p.left.saturating_sub(1);
                p.answered = true;
                if p.left == 0 {
                    *pull = None; // all it asked for came
                }
                msgs.push(m);
                first.get_or_insert_with(Instant::now);
            }
            ended => {
                if let Some(Err(e)) = ended
                    && std::env::var_os("SHMQ_BRIDGE_DEBUG").is_some()
                {
                    eprintln!("in-bridge: pull: {e}");
                }
                *pull = None;
                break;
            }
        }
    }
    if msgs.is_empty() {
        Received::Ended
    } else {
        Received::Msgs(sent)
    }
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
/// `SHMQ_BRIDGE_TEST_STOP_AFTER_PUT=N` in its environment, the in-bridge stops for good after
/// the first put that brings what it put to `N` messages or more, before acknowledging them,
/// printing `in-bridge: holding after a put` on stdout: a bridge killed between put and ack.
#[cfg(feature = "test-hooks")]
fn stop_after_put(put_so_far: u64) {
    let Some(n) = std::env::var("SHMQ_BRIDGE_TEST_STOP_AFTER_PUT")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    else {
        return;
    };
    if put_so_far >= n {
        println!("in-bridge: holding after a put of {put_so_far} messages");
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
}

/// Test hook (feature `test-hooks`, never in a release build): with
/// `SHMQ_BRIDGE_TEST_DELAY_RECORD=MS` in its environment, the in-bridge waits `MS` ms before
/// it records its first group (while nothing is put yet), printing `in-bridge: delaying` on
/// stdout first: a bridge stalled past its messages' ack wait.
#[cfg(feature = "test-hooks")]
async fn delay_before_record(put_so_far: u64) {
    let Some(ms) = std::env::var("SHMQ_BRIDGE_TEST_DELAY_RECORD")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    else {
        return;
    };
    if put_so_far == 0 {
        static ONCE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        if !ONCE.swap(true, std::sync::atomic::Ordering::Relaxed) {
            println!("in-bridge: delaying its first record by {ms} ms");
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
    }
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

#[cfg(test)]
mod tests {
    use super::Seen;

    /// A sequence delivered twice in a batch is recognised, in order or not, and the batch's
    /// sequences stay sorted.
    #[test]
    fn a_sequence_seen_twice_in_a_batch_is_recognised_in_any_order() {
        let mut seen = Seen::default();
        for s in [5, 6, 9] {
            assert!(seen.insert(s), "{s} is new");
        }
        assert!(!seen.insert(9), "the last one again");
        assert!(!seen.insert(5), "an earlier one again");
        assert!(seen.insert(7), "a gap filled");
        assert!(!seen.insert(7));
        assert!(seen.insert(1), "below all");
        assert!(seen.insert(10));
        assert_eq!(seen.0, [1, 5, 6, 7, 9, 10]);
        seen.clear();
        assert!(seen.insert(5), "cleared");
    }
}
