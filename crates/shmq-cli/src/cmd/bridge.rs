//! `shmq bridge out|in|bench` and the `bridge` demo scenario: a local queue bridged to a NATS
//! JetStream stream (crate `shmq-bridge`; guarantees in docs/bridge.md).

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use shmq::{GetTimeoutError, Options, Queue};
use shmq_bridge::{Connection, InConfig, OutConfig, Tls};
use shmq_testkit::nats::{self, NatsServer};
use shmq_testkit::{Name, Proc};

use super::parse_duration;

/// Server address, credentials and TLS, shared by every bridge command.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ConnArgs {
    /// NATS server address(es), comma-separated.
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    server: String,
    /// A NATS credentials file (.creds: user JWT and nkey seed).
    #[arg(long, value_name = "FILE")]
    creds: Option<PathBuf>,
    /// Require TLS.
    #[arg(long)]
    tls: bool,
    /// Trust the server by these root certificates (PEM).
    #[arg(long, value_name = "FILE")]
    tls_ca: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS; with --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// Client key (PEM); with --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// How long the first connection may take, retries included; later outages are waited
    /// out for ever.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    connect_timeout: Duration,
}

impl ConnArgs {
    fn connection(&self) -> Connection {
        Connection {
            server: self.server.clone(),
            credentials: self.creds.clone(),
            tls: Tls {
                require: self.tls,
                ca: self.tls_ca.clone(),
                client_cert: self.tls_cert.clone().zip(self.tls_key.clone()),
            },
            connect_timeout: self.connect_timeout,
        }
    }
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum BridgeCmd {
    /// Publish a local queue's messages to a JetStream stream until the queue is closed and
    /// drained. A message leaves the queue only once JetStream acknowledged it; a bridge
    /// killed meanwhile republishes it under the same message id, which the stream drops.
    Out(OutArgs),
    /// Consume a JetStream stream (durable pull consumer, explicit acks) into a local queue,
    /// of which this bridge must be the only producer, until the queue is closed. The ack
    /// follows the put; redeliveries of messages already put are acknowledged, not put again.
    In(InArgs),
    /// Messages/s through out-bridge → JetStream → in-bridge against NATS alone doing the same
    /// job (a publisher with message ids, a durable pull consumer acknowledging each message),
    /// interleaved over repeats, and against publishing only.
    Bench(BenchArgs),
    /// The benchmark's NATS-only publisher (internal).
    #[command(hide = true)]
    NatsPub(NatsPubArgs),
    /// The benchmark's NATS-only consumer (internal).
    #[command(hide = true)]
    NatsSub(NatsSubArgs),
}

/// The NATS-only pipeline's publisher: connects, makes the stream as a bridge would, publishes
/// `warmup` messages, says `ready`, waits for a line on stdin, publishes `count` messages of
/// `size` bytes with message ids and a window of 256 unacknowledged publishes, and says
/// `published`.
#[derive(Debug, clap::Args)]
pub(crate) struct NatsPubArgs {
    #[arg(long)]
    server: String,
    #[arg(long)]
    subject: String,
    #[arg(long)]
    size: usize,
    #[arg(long)]
    count: usize,
    #[arg(long, default_value_t = 0)]
    warmup: usize,
}

/// The NATS-only pipeline's consumer: connects, makes the stream and a durable pull consumer
/// with explicit acks as the in-bridge would, says `ready`, fetches in batches of `batch` and
/// acknowledges each message, says `warm` after `warmup` and `done` after `count` more.
#[derive(Debug, clap::Args)]
pub(crate) struct NatsSubArgs {
    #[arg(long)]
    server: String,
    #[arg(long)]
    subject: String,
    #[arg(long)]
    count: usize,
    #[arg(long, default_value_t = 0)]
    warmup: usize,
    #[arg(long, default_value_t = 256)]
    batch: usize,
}

#[derive(Debug, clap::Args)]
pub(crate) struct OutArgs {
    /// The local queue.
    queue: String,
    /// The subject to publish on.
    #[arg(long = "to", value_name = "SUBJECT")]
    subject: String,
    /// The stream (created on SUBJECT if missing) [default: SHMQ_ and the subject].
    #[arg(long)]
    stream: Option<String>,
    /// Messages in flight (published, not yet acknowledged) at most.
    #[arg(long, default_value_t = 256)]
    window: usize,
    /// The stream's duplicate window, if this bridge creates the stream.
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    duplicate_window: Duration,
    /// Do not call task_done for each message JetStream acknowledged.
    #[arg(long)]
    no_task_done: bool,
    /// Print the final counts as one JSON object.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    progress: ProgressArgs,
    #[command(flatten)]
    conn: ConnArgs,
}

/// How a running bridge reports on stderr: always one line once connected; a count of the
/// messages carried every interval with --progress, or when stderr is a terminal.
#[derive(Debug, Clone, Copy, clap::Args)]
pub(crate) struct ProgressArgs {
    /// Print the count of messages carried so far on stderr every EVERY (default 5s; the
    /// default when stderr is a terminal).
    #[arg(long, value_name = "EVERY", num_args = 0..=1, default_missing_value = "5s",
          value_parser = parse_duration)]
    progress: Option<Duration>,
}

/// Runs `bridge` while a thread says on stderr, once, `connected` (when the bridge has its
/// stream, and consumer) and then, if asked or on a terminal, `counted(n)` every interval.
fn reporting<T>(
    progress: &std::sync::Arc<shmq_bridge::Progress>,
    args: ProgressArgs,
    connected: String,
    counted: impl Fn(u64, u64) -> String + Send + 'static,
    bridge: impl FnOnce() -> Result<T>,
) -> Result<T> {
    use std::io::IsTerminal;
    let every = args.progress.or_else(|| {
        std::io::stderr()
            .is_terminal()
            .then_some(Duration::from_secs(5))
    });
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reporter = {
        let (p, done) = (
            std::sync::Arc::clone(progress),
            std::sync::Arc::clone(&done),
        );
        std::thread::spawn(move || {
            let stop = || done.load(std::sync::atomic::Ordering::Acquire);
            let tick = Duration::from_millis(20);
            while !p.connected() {
                if stop() {
                    return;
                }
                std::thread::sleep(tick);
            }
            eprintln!("{connected}");
            let Some(every) = every else { return };
            let (mut last, mut next) = (0, Instant::now() + every);
            while !stop() {
                if Instant::now() >= next {
                    let n = p.messages();
                    eprintln!("{}", counted(n, n - last));
                    last = n;
                    next += every;
                }
                std::thread::sleep(tick.min(every));
            }
        })
    };
    let result = bridge();
    done.store(true, std::sync::atomic::Ordering::Release);
    let _ = reporter.join();
    result
}

#[derive(Debug, clap::Args)]
pub(crate) struct InArgs {
    /// The subject to consume.
    subject: String,
    /// The local queue to put into.
    #[arg(long = "to", value_name = "QUEUE")]
    queue: String,
    /// The stream (created on SUBJECT if missing) [default: SHMQ_ and the subject].
    #[arg(long)]
    stream: Option<String>,
    /// The durable consumer's name [default: shmq-in- and the queue's name].
    #[arg(long)]
    consumer: Option<String>,
    /// The state file that makes redeliveries after a kill harmless [default:
    /// $TMPDIR/shmq-bridge-in-STREAM-CONSUMER.json].
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,
    /// Messages fetched per request at most (never more than the queue's free slots).
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// The consumer's ack wait, if this bridge creates the consumer: how soon what a dead
    /// bridge had fetched is redelivered.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    ack_wait: Duration,
    /// The stream's duplicate window, if this bridge creates the stream.
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    duplicate_window: Duration,
    /// Exit (status 0) after this long without a message [default: run for ever].
    #[arg(long, value_parser = parse_duration)]
    idle_exit: Option<Duration>,
    /// Several in-bridges (one per host, each into its own queue) share the durable consumer
    /// (give each the same --consumer): each records what it puts on the server, so that a
    /// message redelivered after one's death goes into exactly one queue.
    #[arg(long)]
    shared: bool,
    /// Print the final counts as one JSON object.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    progress: ProgressArgs,
    #[command(flatten)]
    conn: ConnArgs,
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

pub(crate) fn run(cmd: &BridgeCmd) -> Result<()> {
    match cmd {
        BridgeCmd::Out(a) => {
            let mut cfg = OutConfig::new(a.conn.connection(), &a.queue, &a.subject);
            if let Some(s) = &a.stream {
                cfg.stream.clone_from(s);
            }
            cfg.window = a.window;
            cfg.duplicate_window = a.duplicate_window;
            cfg.task_done = !a.no_task_done;
            let connected = format!(
                "bridge out: connected to {}: queue {} -> stream {} (subject {})",
                a.conn.server, cfg.queue, cfg.stream, cfg.subject
            );
            let counted = |n: u64, new: u64| {
                format!("bridge out: {n} messages published ({new} since the last line)")
            };
            let stats = reporting(&cfg.progress, a.progress, connected, counted, || {
                Ok(runtime()?.block_on(shmq_bridge::run_out(&cfg))?)
            })?;
            if a.json {
                outln!("{}", json!({ "bridge": "out", "ok": true, "stats": stats }));
            } else {
                outln!(
                    "bridge out: {} messages published to {} ({} dropped by the stream as duplicates, {} retries); {} is closed and drained",
                    stats.published,
                    cfg.stream,
                    stats.duplicates,
                    stats.retries,
                    cfg.queue
                );
            }
            Ok(())
        }
        BridgeCmd::In(a) => {
            let mut cfg = InConfig::new(a.conn.connection(), &a.subject, &a.queue);
            if let Some(s) = &a.stream {
                cfg.stream.clone_from(s);
            }
            if let Some(c) = &a.consumer {
                cfg.consumer.clone_from(c);
            }
            if let Some(s) = &a.state {
                cfg.state.clone_from(s);
            } else {
                cfg.state = std::env::temp_dir().join(format!(
                    "shmq-bridge-in-{}-{}.json",
                    cfg.stream, cfg.consumer
                ));
            }
            cfg.batch = a.batch;
            cfg.ack_wait = a.ack_wait;
            cfg.duplicate_window = a.duplicate_window;
            cfg.idle_exit = a.idle_exit;
            cfg.shared = a.shared;
            let connected = format!(
                "bridge in: connected to {}: stream {} (subject {}), consumer {} -> queue {}",
                a.conn.server, cfg.stream, cfg.subject, cfg.consumer, cfg.queue
            );
            let counted = |n: u64, new: u64| {
                format!("bridge in: {n} messages put ({new} since the last line)")
            };
            let stats = reporting(&cfg.progress, a.progress, connected, counted, || {
                Ok(runtime()?.block_on(shmq_bridge::run_in(&cfg))?)
            })?;
            if a.json {
                outln!("{}", json!({ "bridge": "in", "ok": true, "stats": stats }));
            } else {
                outln!(
                    "bridge in: {} messages put into {} ({} redeliveries acknowledged without a put)",
                    stats.put,
                    cfg.queue,
                    stats.skipped
                );
            }
            Ok(())
        }
        BridgeCmd::Bench(a) => bench(a),
        BridgeCmd::NatsPub(a) => runtime()?.block_on(nats_pub(a)),
        BridgeCmd::NatsSub(a) => runtime()?.block_on(nats_sub(a)),
    }
}

/// A bridge process (`shmq bridge ...`), killed on drop.
fn spawn_bridge(args: &[String], what: &str) -> Result<Proc> {
    let exe = std::env::current_exe().context("locating the shmq executable")?;
    Ok(Proc::spawn(
        Command::new(exe).arg("bridge").args(args),
        what,
    )?)
}

fn out_args(queue: &str, subject: &str, url: &str) -> Vec<String> {
    ["out", queue, "--to", subject, "--server", url, "--json"]
        .map(str::to_owned)
        .to_vec()
}

fn in_args(subject: &str, queue: &str, url: &str, state: &str, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = [
        "in", subject, "--to", queue, "--server", url, "--state", state, "--json",
    ]
    .map(str::to_owned)
    .to_vec();
    v.extend(extra.iter().map(|s| (*s).to_owned()));
    v
}

/// The `bridge` demo scenario: two "hosts" (two queues), an out-bridge and an in-bridge
/// through a local nats-server, producers on host A and consumers on host B; each bridge is
/// SIGKILLed and restarted once mid-stream; every message must arrive exactly once.
pub(crate) fn demo(
    json_out: bool,
    producers: usize,
    consumers: usize,
    items: usize,
) -> Result<Value> {
    let say = |s: String| {
        if !json_out {
            outln!("{s}");
        }
    };
    let started = Instant::now();
    let mut server = NatsServer::start(&[]).context("starting nats-server")?;
    let url = server.url();
    let (qa, qb) = (
        Name::with_prefix("shmq-demo", "host-a"),
        Name::with_prefix("shmq-demo", "host-b"),
    );
    let opts = Options {
        capacity: 64,
        message_size: 64,
        ..Default::default()
    };
    let a = Queue::create(&qa, &opts)?;
    let b = Queue::create(&qb, &opts)?;
    let subject = format!("shmq.demo.{}", std::process::id());
    let state = server.dir.join("in-bridge.json").display().to_string();
    let in_extra = ["--ack-wait", "1s"];
    say(format!(
        "bridge: host A's queue {} --(out-bridge)--> JetStream on {url} --(in-bridge)--> host B's queue {}",
        &*qa, &*qb
    ));
    let mut out = spawn_bridge(&out_args(&qa, &subject, &url), "out-bridge")?;
    let mut inb = spawn_bridge(
        &in_args(&subject, &qb, &url, &state, &in_extra),
        "in-bridge",
    )?;

    // Producers on host A, consumers on host B: this binary's demo children.
    let total = producers * items;
    let exe = std::env::current_exe()?;
    let mut prods = Vec::new();
    for p in 0..producers {
        prods.push(Proc::spawn(
            Command::new(&exe).args([
                "demo-child",
                "queue-producer",
                &qa,
                &p.to_string(),
                &items.to_string(),
                "1000",
            ]),
            "producer",
        )?);
    }
    let mut cons = Vec::new();
    for _ in 0..consumers {
        cons.push(Proc::spawn(
            Command::new(&exe).args(["demo-child", "queue-consumer", &qb, "0", "0"]),
            "consumer",
        )?);
    }
    say(format!(
        "  {producers} producers put {total} messages on host A; {consumers} consumers get on host B"
    ));
    let wait_put = |n: u64| -> Result<()> {
        let t = Instant::now();
        while b.tail_position() < n {
            if t.elapsed() > Duration::from_secs(60) {
                bail!(
                    "host B received only {} of {n} messages in 60 s",
                    b.tail_position()
                );
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    };
    let mut kills = 0;
    wait_put(total as u64 / 3)?;
    out.kill9();
    kills += 1;
    say(format!(
        "  SIGKILLed the out-bridge after {} messages reached host B; restarting it",
        b.tail_position()
    ));
    out = spawn_bridge(&out_args(&qa, &subject, &url), "out-bridge")?;
    wait_put(2 * total as u64 / 3)?;
    inb.kill9();
    kills += 1;
    say(format!(
        "  SIGKILLed the in-bridge after {} messages reached host B; restarting it",
        b.tail_position()
    ));
    inb = spawn_bridge(
        &in_args(&subject, &qb, &url, &state, &in_extra),
        "in-bridge",
    )?;
    for p in prods {
        p.try_finish()?;
    }
    a.close()?; // the producers are done: the out-bridge drains A and exits
    let out_json = out.finish_lines().last().cloned().unwrap_or_default();
    wait_put(total as u64)?;
    // Longer than the ack wait: a duplicate would have arrived by now.
    std::thread::sleep(Duration::from_millis(2500));
    b.close()?; // the in-bridge ends, the consumers drain B and exit
    let in_json = inb.finish_lines().last().cloned().unwrap_or_default();
    let mut received = Vec::new();
    for c in cons {
        received.extend(c.finish_lines());
    }
    let sent: HashSet<String> = (0..producers)
        .flat_map(|p| (0..items).map(move |i| format!("p{p}-{i}")))
        .collect();
    let unique: HashSet<&String> = received.iter().collect();
    let duplicates = received.len() - unique.len();
    let missing = sent.iter().filter(|s| !unique.contains(s)).count();
    let ok = duplicates == 0 && missing == 0 && received.len() == total;
    server.stop();
    let parse = |s: &str| serde_json::from_str::<Value>(s).unwrap_or(Value::Null);
    say(format!(
        "  received {} messages on host B: {duplicates} duplicates, {missing} missing, {kills} bridge kills -> {}",
        received.len(),
        if ok {
            "every message exactly once"
        } else {
            "FAILED"
        }
    ));
    Ok(json!({
        "scenario": "bridge",
        "ok": ok,
        "sent": total,
        "received": received.len(),
        "duplicates": duplicates,
        "missing": missing,
        "kills": kills,
        "out_bridge": parse(&out_json)["stats"],
        "in_bridge": parse(&in_json)["stats"],
        "seconds": started.elapsed().as_secs_f64(),
    }))
}

/// The `bridge` demo scenario with `hosts` hosts (3 or more) on one machine: each host has a
/// queue its producers put into, drained by its out-bridge into one stream, and a queue its
/// consumers get from, fed by its in-bridge; the in-bridges share one durable consumer
/// (`--shared`), so the stream's messages are split between the hosts. One host's out-bridge
/// is SIGKILLed and restarted after a third of the messages, another host's in-bridge after two
/// thirds; every message must reach exactly one host, once.
pub(crate) fn demo_hosts(
    json_out: bool,
    hosts: usize,
    producers: usize,
    consumers: usize,
    items: usize,
) -> Result<Value> {
    let say = |s: String| {
        if !json_out {
            outln!("{s}");
        }
    };
    let started = Instant::now();
    let mut server = NatsServer::start(&[]).context("starting nats-server")?;
    let url = server.url();
    let opts = Options {
        capacity: 64,
        message_size: 64,
        ..Default::default()
    };
    let subject = format!("shmq.demo.hosts.{}", std::process::id());
    let mut src = Vec::new();
    let mut dst = Vec::new();
    for h in 0..hosts {
        let a = Name::with_prefix("shmq-demo", &format!("host{h}-out"));
        let b = Name::with_prefix("shmq-demo", &format!("host{h}-in"));
        let qa = Queue::create(&a, &opts)?;
        let qb = Queue::create(&b, &opts)?;
        src.push((a, qa));
        dst.push((b, qb));
    }
    let in_cmd = |h: usize| {
        let state = server
            .dir
            .join(format!("host{h}.json"))
            .display()
            .to_string();
        in_args(
            &subject,
            &dst[h].0,
            &url,
            &state,
            &["--consumer", "hosts", "--shared", "--ack-wait", "1s"],
        )
    };
    say(format!(
        "bridge: {hosts} hosts, each with a queue drained by its out-bridge into one JetStream \
         stream on {url}, and a queue fed by its in-bridge; the in-bridges share one durable \
         consumer"
    ));
    let mut outs = Vec::new();
    let mut ins = Vec::new();
    for (h, (a, _)) in src.iter().enumerate() {
        outs.push(spawn_bridge(&out_args(a, &subject, &url), "out-bridge")?);
        ins.push(spawn_bridge(&in_cmd(h), "in-bridge")?);
    }
    let exe = std::env::current_exe()?;
    let mut prods = Vec::new();
    let mut cons = Vec::new();
    for (h, ((a, _), (b, _))) in src.iter().zip(&dst).enumerate() {
        for p in 0..producers {
            prods.push(Proc::spawn(
                Command::new(&exe).args([
                    "demo-child",
                    "queue-producer",
                    a,
                    &(h * producers + p).to_string(),
                    &items.to_string(),
                    "1000",
                ]),
                "producer",
            )?);
        }
        for _ in 0..consumers {
            cons.push((
                h,
                Proc::spawn(
                    Command::new(&exe).args(["demo-child", "queue-consumer", b, "0", "0"]),
                    "consumer",
                )?,
            ));
        }
    }
    let total = hosts * producers * items;
    say(format!(
        "  {producers} producer(s) and {consumers} consumer(s) per host: {total} messages in all"
    ));
    let arrived = || dst.iter().map(|(_, q)| q.tail_position()).sum::<u64>();
    let wait_put = |n: u64| -> Result<()> {
        let t = Instant::now();
        while arrived() < n {
            if t.elapsed() > Duration::from_secs(60) {
                bail!(
                    "the hosts received only {} of {n} messages in 60 s",
                    arrived()
                );
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    };
    let mut kills = 0;
    wait_put(total as u64 / 3)?;
    outs[1].kill9();
    kills += 1;
    say(format!(
        "  SIGKILLed host 1's out-bridge after {} messages arrived; restarting it",
        arrived()
    ));
    outs[1] = spawn_bridge(&out_args(&src[1].0, &subject, &url), "out-bridge")?;
    wait_put(2 * total as u64 / 3)?;
    ins[2].kill9();
    kills += 1;
    say(format!(
        "  SIGKILLed host 2's in-bridge after {} messages arrived; restarting it",
        arrived()
    ));
    ins[2] = spawn_bridge(&in_cmd(2), "in-bridge")?;
    for p in prods {
        p.try_finish()?;
    }
    for ((_, q), o) in src.iter().zip(outs) {
        q.close()?; // its producers are done: the out-bridge drains it and exits
        o.try_finish()?;
    }
    wait_put(total as u64)?;
    // Longer than the ack wait: a duplicate would have arrived by now.
    std::thread::sleep(Duration::from_millis(2500));
    for (_, q) in &dst {
        q.close()?;
    }
    for i in ins {
        i.try_finish()?;
    }
    let mut received = Vec::new();
    let mut per_host = vec![0usize; hosts];
    for (h, c) in cons {
        let lines = c.finish_lines();
        per_host[h] += lines.len();
        received.extend(lines);
    }
    let sent: HashSet<String> = (0..hosts * producers)
        .flat_map(|p| (0..items).map(move |i| format!("p{p}-{i}")))
        .collect();
    let unique: HashSet<&String> = received.iter().collect();
    let duplicates = received.len() - unique.len();
    let missing = sent.iter().filter(|s| !unique.contains(s)).count();
    let ok = duplicates == 0 && missing == 0 && received.len() == total;
    server.stop();
    say(format!(
        "  received {} messages, per host {per_host:?}: {duplicates} duplicates, {missing} \
         missing, {kills} bridge kills -> {}",
        received.len(),
        if ok {
            "every message exactly once, on exactly one host"
        } else {
            "FAILED"
        }
    ));
    Ok(json!({
        "scenario": "bridge",
        "hosts": hosts,
        "ok": ok,
        "sent": total,
        "received": received.len(),
        "per_host": per_host,
        "duplicates": duplicates,
        "missing": missing,
        "kills": kills,
        "seconds": started.elapsed().as_secs_f64(),
    }))
}

#[derive(Debug, clap::Args)]
pub(crate) struct BenchArgs {
    /// Message sizes in bytes.
    #[arg(long, value_delimiter = ',', default_value = "64,65536")]
    sizes: Vec<usize>,
    /// Messages per size [default: 20000 for sizes up to 1 KiB, else 2000].
    #[arg(long)]
    count: Option<usize>,
    /// Repeats of the bridged and the NATS-only pipelines per size, interleaved (A B, then
    /// B A, ...) after a first round that is not counted; figures are medians over them.
    #[arg(long, default_value_t = 5)]
    repeats: usize,
    /// Also measure each bridge alone (the out-bridge draining a queue into the stream, then
    /// the in-bridge moving the stored messages into a queue).
    #[arg(long)]
    legs: bool,
    /// One JSON object per size.
    #[arg(long)]
    json: bool,
}

/// `nats://…` connection for the benchmark's own clients.
fn bench_conn(url: &str) -> Connection {
    Connection {
        server: url.to_owned(),
        ..Default::default()
    }
}

async fn nats_pub(a: &NatsPubArgs) -> Result<()> {
    use futures_util::StreamExt;
    let js = async_nats::jetstream::new(shmq_bridge::connect(&bench_conn(&a.server)).await?);
    let stream = shmq_bridge::stream_name_for(&a.subject);
    shmq_bridge::ensure_stream(&js, &stream, &a.subject, Duration::from_secs(120)).await?;
    let payload = bytes::Bytes::from(vec![7u8; a.size]);
    let publish = |ids: std::ops::Range<usize>| {
        let (js, payload) = (&js, &payload);
        async move {
            let mut acks = futures_util::stream::FuturesOrdered::new();
            for i in ids {
                if acks.len() >= 256 {
                    acks.next().await.context("ack")??;
                }
                let f = js
                    .send_publish(
                        a.subject.clone(),
                        async_nats::jetstream::message::PublishMessage::build()
                            .payload(payload.clone())
                            .message_id(shmq_bridge::message_id(1, i as u64)),
                    )
                    .await?;
                acks.push_back(std::future::IntoFuture::into_future(f));
            }
            while let Some(ack) = acks.next().await {
                ack?;
            }
            anyhow::Ok(())
        }
    };
    publish(0..a.warmup).await?;
    println!("ready");
    let mut go = String::new();
    std::io::stdin().read_line(&mut go)?;
    publish(a.warmup..a.warmup + a.count).await?;
    println!("published");
    Ok(())
}

async fn nats_sub(a: &NatsSubArgs) -> Result<()> {
    use async_nats::jetstream::{AckKind, consumer};
    use futures_util::StreamExt;
    let client = shmq_bridge::connect(&bench_conn(&a.server)).await?;
    let js = async_nats::jetstream::new(client.clone());
    let name = shmq_bridge::stream_name_for(&a.subject);
    let stream =
        shmq_bridge::ensure_stream(&js, &name, &a.subject, Duration::from_secs(120)).await?;
    let batch = a.batch.max(1);
    // As the in-bridge makes its consumer.
    let c = stream
        .get_or_create_consumer(
            "nats-only",
            consumer::pull::Config {
                durable_name: Some("nats-only".into()),
                ack_policy: consumer::AckPolicy::Explicit,
                filter_subject: a.subject.clone(),
                ack_wait: Duration::from_secs(30),
                max_ack_pending: (batch * 4) as i64,
                ..Default::default()
            },
        )
        .await?;
    let mut msgs = c.stream().max_messages_per_batch(batch).messages().await?;
    println!("ready");
    let mut n = 0;
    while n < a.warmup + a.count {
        let m = msgs.next().await.context("the consumer's stream ended")??;
        m.ack_with(AckKind::Ack)
            .await
            .map_err(|e| anyhow::anyhow!("ack: {e}"))?;
        n += 1;
        if n == a.warmup {
            println!("warm");
        }
    }
    client.flush().await?;
    println!("done");
    Ok(())
}

/// Publishes `n` messages of `size` bytes directly (same client, same window and message ids
/// as the out-bridge) and returns messages/s, and the CPU per message of the server and of this
/// process (the client).
async fn direct(url: &str, subject: &str, size: usize, n: usize) -> Result<(f64, Value)> {
    use futures_util::StreamExt;
    let c = Connection {
        server: url.to_owned(),
        ..Default::default()
    };
    let js = async_nats::jetstream::new(shmq_bridge::connect(&c).await?);
    let stream = shmq_bridge::stream_name_for(subject);
    shmq_bridge::ensure_stream(&js, &stream, subject, Duration::from_secs(120)).await?;
    let payload = bytes::Bytes::from(vec![7u8; size]);
    let mut acks = futures_util::stream::FuturesOrdered::new();
    let cpu = CpuClock::start(&procs(&[("client", "self".into())]));
    let t = Instant::now();
    for i in 0..n {
        if acks.len() >= 256 {
            acks.next().await.context("ack")??;
        }
        let f = js
            .send_publish(
                subject.to_owned(),
                async_nats::jetstream::message::PublishMessage::build()
                    .payload(payload.clone())
                    .message_id(shmq_bridge::message_id(1, i as u64)),
            )
            .await?;
        acks.push_back(std::future::IntoFuture::into_future(f));
    }
    while let Some(a) = acks.next().await {
        a?;
    }
    let rate = n as f64 / t.elapsed().as_secs_f64();
    Ok((rate, cpu.per_message(n)))
}

/// `procs` and the server, for a [`CpuClock`].
fn procs(procs: &[(&'static str, String)]) -> Vec<(&'static str, String)> {
    let mut v: Vec<_> = server_pid().map(|p| ("server", p)).into_iter().collect();
    v.extend_from_slice(procs);
    v
}

/// CPU seconds (user + system, all threads) a process has used so far, from
/// `/proc/PID/stat` (in clock ticks of `USER_HZ`, 100 on Linux); `None` if it cannot be read.
fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name (which may hold spaces), from field 3 on.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_ascii_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// The pid of the `nats-server` this process started (a child named so), if any.
fn server_pid() -> Option<String> {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid = e.file_name().into_string().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let (comm, rest) = stat.split_once(") ")?;
        let ppid = rest.split_ascii_whitespace().nth(1)?;
        (comm.ends_with("(nats-server") && ppid == me).then_some(pid)
    })
}

/// CPU time of a set of processes over one phase of the benchmark.
struct CpuClock(Vec<(&'static str, String, f64)>);

impl CpuClock {
    /// Starts counting for `procs` (label, pid); those that cannot be read are left out.
    fn start(procs: &[(&'static str, String)]) -> CpuClock {
        CpuClock(
            procs
                .iter()
                .filter_map(|(l, p)| Some((*l, p.clone(), cpu_seconds(p)?)))
                .collect(),
        )
    }

    /// Microseconds of CPU per message of each process since the start, for `n` messages.
    fn per_message(&self, n: usize) -> Value {
        let mut m = serde_json::Map::new();
        for (label, pid, before) in &self.0 {
            if let Some(now) = cpu_seconds(pid) {
                let us = (now - before) * 1e6 / n as f64;
                m.insert((*label).to_owned(), json!((us * 10.0).round() / 10.0));
            }
        }
        Value::Object(m)
    }
}

/// The slots of the benchmark's queues, and the messages each pipeline moves before its clock
/// runs (a lap of the queues: every slot's pages are then mapped in every process).
const LAP: usize = 1024;

/// The two hosts' queues of a bridge benchmark row ([`LAP`] slots of `size` bytes): names and
/// handles.
fn bench_queues(a: &str, b: &str, size: usize) -> Result<(Name, Queue, Name, Queue)> {
    let opts = Options {
        capacity: LAP,
        message_size: size,
        ..Default::default()
    };
    let (qa, qb) = (
        Name::with_prefix("shmq-bench", a),
        Name::with_prefix("shmq-bench", b),
    );
    let qa_handle = Queue::create(&qa, &opts)?;
    let qb_handle = Queue::create(&qb, &opts)?;
    Ok((qa, qa_handle, qb, qb_handle))
}

/// Puts `n` messages of `size` bytes into host A's queue and gets them from host B's, through
/// an out-bridge and an in-bridge (real processes); returns messages/s end to end, and of the
/// out-bridge's leg (until host A's queue has handed every message to JetStream), and the CPU
/// per message of each process end to end.
fn through_bridges(
    server: &NatsServer,
    size: usize,
    n: usize,
    subject: &str,
) -> Result<(f64, f64, Value)> {
    let url = server.url();
    let (qa, a, qb, b) = bench_queues("bridge-a", "bridge-b", size)?;
    let subject = subject.to_owned();
    let state = server
        .dir
        .join(format!("bench-{subject}.json"))
        .display()
        .to_string();
    let out_bridge = spawn_bridge(&out_args(&qa, &subject, &url), "out-bridge")?;
    let in_bridge = spawn_bridge(&in_args(&subject, &qb, &url, &state, &[]), "in-bridge")?;
    // Warm-up: a lap of the queues (as many messages as they have slots) through, so that both
    // bridges are connected and every page of both queues is mapped in every process before
    // the clock runs, as in a pipeline that has been running.
    let pa = Queue::open(&qa)?;
    let lap = a.capacity();
    let mut buf = vec![0u8; size];
    for _ in 0..lap {
        pa.put(vec![1u8; size])?;
    }
    for i in 0..lap {
        b.get_into_deadline(&mut buf, Instant::now() + Duration::from_secs(30))
            .with_context(|| format!("warm-up message {i} of {lap}"))?;
    }
    let msg = vec![7u8; size];
    let cpu = CpuClock::start(&procs(&[
        ("out_bridge", out_bridge.pid().to_string()),
        ("in_bridge", in_bridge.pid().to_string()),
        ("producer_consumer", "self".into()),
    ]));
    let t = Instant::now();
    let producer = std::thread::spawn(move || -> Result<()> {
        for _ in 0..n {
            pa.put(msg.as_slice())
                .map_err(|e| anyhow::anyhow!("put failed: {e:?}"))?;
        }
        Ok(())
    });
    let mut out_leg = None;
    let end = (lap + n) as u64;
    for i in 0..n {
        if out_leg.is_none() && a.head_position() >= end {
            out_leg = Some(t.elapsed());
        }
        match b.get_into_deadline(&mut buf, Instant::now() + Duration::from_secs(30)) {
            Ok(_) => {}
            Err(GetTimeoutError::Timeout) => bail!("message {i} of {n} did not arrive within 30 s"),
            Err(e) => return Err(e.into()),
        }
    }
    let all = t.elapsed();
    let cpu = cpu.per_message(n);
    producer
        .join()
        .map_err(|_| anyhow::anyhow!("producer panicked"))??;
    let out = out_leg.unwrap_or(all);
    Ok((
        n as f64 / all.as_secs_f64(),
        n as f64 / out.as_secs_f64(),
        cpu,
    ))
}

/// Each leg alone: the out-bridge drains `n` messages from a queue into the stream (nothing
/// consumes), then an in-bridge moves them from the stream into a queue; messages/s and CPU
/// per message of each.
fn legs_alone(server: &NatsServer, size: usize, n: usize) -> Result<(f64, f64, Value, Value)> {
    let url = server.url();
    let (qa, a, qb, b) = bench_queues("leg-a", "leg-b", size)?;
    let subject = format!("shmq.bench.legs.{size}");
    let out_bridge = spawn_bridge(&out_args(&qa, &subject, &url), "out-bridge")?;
    a.put(vec![1u8; size])?;
    let wait = |what: &str, done: &dyn Fn() -> bool| -> Result<()> {
        let t = Instant::now();
        while !done() {
            if t.elapsed() > Duration::from_secs(60) {
                bail!("{what} did not finish within 60 s");
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        Ok(())
    };
    wait("the warm-up", &|| a.is_empty())?;
    let msg = vec![7u8; size];
    let cpu = CpuClock::start(&procs(&[
        ("out_bridge", out_bridge.pid().to_string()),
        ("producer", "self".into()),
    ]));
    let t = Instant::now();
    for _ in 0..n {
        a.put(msg.as_slice())
            .map_err(|e| anyhow::anyhow!("put failed: {e:?}"))?;
    }
    wait("the out-bridge", &|| a.head_position() > n as u64)?;
    let out = n as f64 / t.elapsed().as_secs_f64();
    let out_cpu = cpu.per_message(n);
    let state = server
        .dir
        .join(format!("legs-{size}.json"))
        .display()
        .to_string();
    let t = Instant::now();
    let cpu = CpuClock::start(&procs(&[("consumer", "self".into())]));
    let in_bridge = spawn_bridge(&in_args(&subject, &qb, &url, &state, &[]), "in-bridge")?;
    let in_pid = in_bridge.pid().to_string();
    for i in 0..=n {
        if let Err(e) = b.get_timeout(Duration::from_secs(30)) {
            bail!("in-bridge leg: message {i}: {e}");
        }
    }
    // Includes the in-bridge's start and connection (a few ms).
    let inb = (n + 1) as f64 / t.elapsed().as_secs_f64();
    let mut in_cpu = cpu.per_message(n + 1);
    // The in-bridge started after the clock: all its CPU is this phase's.
    if let Some(s) = cpu_seconds(&in_pid) {
        in_cpu["in_bridge"] = json!((s * 1e7 / (n + 1) as f64).round() / 10.0);
    }
    Ok((out, inb, out_cpu, in_cpu))
}

/// The NATS-only pipeline: a publisher process (message ids, a window of 256) and a consumer
/// process (durable pull consumer, explicit acks, batches of 256), as the out- and the
/// in-bridge would; after a warm-up of [`LAP`] messages as for the bridges, returns messages/s
/// from the publisher's first message to the consumer's last ack, and the CPU per message of
/// the server and of both processes.
fn nats_only(server: &NatsServer, size: usize, n: usize, subject: &str) -> Result<(f64, Value)> {
    use std::io::Write;
    let url = server.url();
    let exe = std::env::current_exe().context("locating the shmq executable")?;
    let (count, size, warmup) = (n.to_string(), size.to_string(), LAP.to_string());
    let common = [
        "--server",
        url.as_str(),
        "--subject",
        subject,
        "--warmup",
        &warmup,
    ];
    let mut sub = Proc::spawn(
        Command::new(&exe)
            .args(["bridge", "nats-sub", "--count", &count])
            .args(common),
        "NATS-only consumer",
    )?;
    sub.expect("ready")?;
    let mut publisher = Proc::spawn(
        Command::new(&exe)
            .args(["bridge", "nats-pub", "--count", &count, "--size", &size])
            .args(common)
            .stdin(std::process::Stdio::piped()),
        "NATS-only publisher",
    )?;
    publisher.expect("ready")?;
    sub.expect("warm")?;
    let mut go = publisher.child.stdin.take().context("publisher's stdin")?;
    let cpu = CpuClock::start(&procs(&[
        ("publisher", publisher.pid().to_string()),
        ("consumer", sub.pid().to_string()),
    ]));
    let t = Instant::now();
    go.write_all(b"go\n")?;
    go.flush()?;
    sub.expect("done")?;
    let elapsed = t.elapsed();
    let cpu = cpu.per_message(n);
    publisher.expect("published")?;
    publisher.try_finish()?;
    sub.try_finish()?;
    Ok((n as f64 / elapsed.as_secs_f64(), cpu))
}

/// Deletes the stream made for `subject` (the benchmark's runs would fill the disk otherwise).
async fn drop_stream(url: &str, subject: &str) -> Result<()> {
    let js = async_nats::jetstream::new(shmq_bridge::connect(&bench_conn(url)).await?);
    let _ = js
        .delete_stream(shmq_bridge::stream_name_for(subject))
        .await;
    Ok(())
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// The median, process by process, of per-run CPU objects (`{"server": µs, ...}`).
fn median_cpu(runs: &[Value]) -> Value {
    let mut keys: Vec<String> = runs
        .iter()
        .filter_map(Value::as_object)
        .flat_map(|m| m.keys().cloned())
        .collect();
    keys.sort();
    keys.dedup();
    let mut out = serde_json::Map::new();
    for k in keys {
        let vals: Vec<f64> = runs.iter().filter_map(|r| r[&k].as_f64()).collect();
        out.insert(k, json!((median(&vals) * 10.0).round() / 10.0));
    }
    Value::Object(out)
}

fn bench(a: &BenchArgs) -> Result<()> {
    if !nats::available() {
        bail!("{}", nats::INSTALL_HINT);
    }
    let server = NatsServer::start(&[]).context("starting nats-server")?;
    let url = server.url();
    let rt = runtime()?;
    let repeats = a.repeats.max(1);
    if !a.json {
        outln!(
            "bridge throughput on localhost (nats-server -js, file store), messages/s: medians \
             of {repeats} interleaved repeats"
        );
        outln!(
            "(nats-only: a publisher with message ids and a durable pull consumer acknowledging \
             each message; bridged: queue -> out-bridge -> JetStream -> in-bridge -> queue; \
             publish-only: the publisher alone)"
        );
    }
    for &size in &a.sizes {
        let n = a.count.unwrap_or(if size <= 1024 { 20_000 } else { 2_000 });
        let (mut bridged, mut nats_rates, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        let (mut bridged_cpu, mut nats_cpu) = (Vec::new(), Vec::new());
        // A first round, not counted: the server's first run of a size costs it more (about
        // 1.5 times the CPU per message at 64 KiB, 490 µs against 300), which would fall on
        // whichever pipeline runs first.
        for round in 0..=repeats {
            let timed = round > 0;
            let r = round.saturating_sub(1);
            // A B, then B A: neither pipeline always runs first.
            let mut pair = [0.0; 2];
            for which in if r % 2 == 0 { [0, 1] } else { [1, 0] } {
                if which == 0 {
                    let subject = format!("shmq.bench.bridge.{size}.{round}");
                    let (rate, _, cpu) = through_bridges(&server, size, n, &subject)?;
                    rt.block_on(drop_stream(&url, &subject))?;
                    if timed {
                        bridged.push(rate);
                        bridged_cpu.push(cpu);
                    }
                    pair[0] = rate;
                } else {
                    let subject = format!("shmq.bench.nats.{size}.{round}");
                    let (rate, cpu) = nats_only(&server, size, n, &subject)?;
                    rt.block_on(drop_stream(&url, &subject))?;
                    if timed {
                        nats_rates.push(rate);
                        nats_cpu.push(cpu);
                    }
                    pair[1] = rate;
                }
            }
            if timed {
                ratios.push(pair[0] / pair[1]);
            }
        }
        let direct_subject = format!("shmq.bench.direct.{size}");
        let (d, direct_cpu) = rt.block_on(direct(&url, &direct_subject, size, n))?;
        rt.block_on(drop_stream(&url, &direct_subject))?;
        let nats_median = median(&nats_rates);
        let ratio_to_nats = median(&ratios);
        let legs = if a.legs {
            let (out, inb, out_cpu, in_cpu) = legs_alone(&server, size, n)?;
            json!({ "out_alone_msgs_per_s": out, "in_alone_msgs_per_s": inb,
                    "cpu_us_per_msg": { "out_alone": out_cpu, "in_alone": in_cpu } })
        } else {
            Value::Null
        };
        let row = json!({
            "size": size, "count": n, "repeats": repeats,
            "nats_only": { "msgs_per_s": nats_median, "runs": nats_rates,
                           "cpu_us_per_msg": median_cpu(&nats_cpu), "cpu_runs": nats_cpu },
            "bridged": { "msgs_per_s": median(&bridged), "runs": bridged,
                         "ratio_to_nats": ratio_to_nats, "ratios": ratios,
                         "cpu_us_per_msg": median_cpu(&bridged_cpu), "cpu_runs": bridged_cpu },
            "publish_only": { "msgs_per_s": d, "ratio_to_nats": d / nats_median,
                              "cpu_us_per_msg": direct_cpu },
            "legs": legs,
        });
        if a.json {
            outln!("{row}");
        } else {
            let cpu = |v: &Value| {
                v.as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| format!("{k} {v}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .unwrap_or_default()
            };
            let runs = |v: &Value| {
                v.as_array()
                    .map(|r| {
                        r.iter()
                            .map(|x| format!("{:.0}", x.as_f64().unwrap_or(0.0)))
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
                    .unwrap_or_default()
            };
            outln!("{size} B x {n}:");
            outln!(
                "  nats-only     {:>9.0}            runs {}; CPU us/msg: {}",
                nats_median,
                runs(&row["nats_only"]["runs"]),
                cpu(&row["nats_only"]["cpu_us_per_msg"])
            );
            outln!(
                "  bridged       {:>9.0}  x{ratio_to_nats:.2} nats  runs {}; CPU us/msg: {}",
                row["bridged"]["msgs_per_s"].as_f64().unwrap_or(0.0),
                runs(&row["bridged"]["runs"]),
                cpu(&row["bridged"]["cpu_us_per_msg"])
            );
            outln!(
                "  publish-only  {d:>9.0}  x{:.2} nats  (one run); CPU us/msg: {}",
                d / nats_median,
                cpu(&direct_cpu)
            );
            if !legs.is_null() {
                outln!(
                    "  out-bridge alone {:.0}, in-bridge alone {:.0}",
                    legs["out_alone_msgs_per_s"].as_f64().unwrap_or(0.0),
                    legs["in_alone_msgs_per_s"].as_f64().unwrap_or(0.0)
                );
            }
        }
    }
    Ok(())
}
