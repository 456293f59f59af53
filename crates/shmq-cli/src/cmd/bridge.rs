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
    /// Messages/s through out-bridge → JetStream → in-bridge against publishing directly.
    Bench(BenchArgs),
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

#[derive(Debug, clap::Args)]
pub(crate) struct BenchArgs {
    /// Message sizes in bytes.
    #[arg(long, value_delimiter = ',', default_value = "64,65536")]
    sizes: Vec<usize>,
    /// Messages per size [default: 20000 for sizes up to 1 KiB, else 2000].
    #[arg(long)]
    count: Option<usize>,
    /// One JSON object per size.
    #[arg(long)]
    json: bool,
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

/// The two hosts' queues of a bridge benchmark row (1024 slots of `size` bytes): names and
/// handles.
fn bench_queues(a: &str, b: &str, size: usize) -> Result<(Name, Queue, Name, Queue)> {
    let opts = Options {
        capacity: 1024,
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
fn through_bridges(server: &NatsServer, size: usize, n: usize) -> Result<(f64, f64, Value)> {
    let url = server.url();
    let (qa, a, qb, b) = bench_queues("bridge-a", "bridge-b", size)?;
    let subject = format!("shmq.bench.bridge.{size}");
    let state = server
        .dir
        .join(format!("bench-{size}.json"))
        .display()
        .to_string();
    let out_bridge = spawn_bridge(&out_args(&qa, &subject, &url), "out-bridge")?;
    let in_bridge = spawn_bridge(&in_args(&subject, &qb, &url, &state, &[]), "in-bridge")?;
    // Warm-up: one message through, so that both bridges are connected before the clock runs.
    a.put(vec![1u8; size])?;
    b.get_timeout(Duration::from_secs(30))
        .context("warm-up message")?;
    let msg = vec![7u8; size];
    let cpu = CpuClock::start(&procs(&[
        ("out_bridge", out_bridge.pid().to_string()),
        ("in_bridge", in_bridge.pid().to_string()),
        ("producer_consumer", "self".into()),
    ]));
    let t = Instant::now();
    let producer = std::thread::spawn({
        let a = Queue::open(&qa)?;
        move || -> Result<()> {
            for _ in 0..n {
                a.put(msg.as_slice())
                    .map_err(|e| anyhow::anyhow!("put failed: {e:?}"))?;
            }
            Ok(())
        }
    });
    let mut out_leg = None;
    for i in 0..n {
        if out_leg.is_none() && a.head_position() > n as u64 {
            out_leg = Some(t.elapsed());
        }
        match b.get_timeout(Duration::from_secs(30)) {
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

fn bench(a: &BenchArgs) -> Result<()> {
    if !nats::available() {
        bail!("{}", nats::INSTALL_HINT);
    }
    let server = NatsServer::start(&[]).context("starting nats-server")?;
    let rt = runtime()?;
    if !a.json {
        outln!("bridge throughput on localhost (nats-server -js, file store): messages/s");
        outln!(
            "{:>7} {:>6} {:>9} {:>9} {:>6} {:>9} {:>6} {:>9} {:>6}",
            "size",
            "count",
            "direct",
            "bridged",
            "ratio",
            "out",
            "ratio",
            "in",
            "ratio"
        );
        outln!("(out, in: each bridge alone; bridged: both at once, end to end)");
    }
    for &size in &a.sizes {
        let n = a.count.unwrap_or(if size <= 1024 { 20_000 } else { 2_000 });
        let (d, direct_cpu) = rt.block_on(direct(
            &server.url(),
            &format!("shmq.bench.direct.{size}"),
            size,
            n,
        ))?;
        let (bridged, _, bridged_cpu) = through_bridges(&server, size, n)?;
        let (out, inb, out_cpu, in_cpu) = legs_alone(&server, size, n)?;
        let (ratio, out_ratio, in_ratio) = (bridged / d, out / d, inb / d);
        if a.json {
            outln!(
                "{}",
                json!({ "size": size, "count": n, "direct_msgs_per_s": d,
                        "bridged_msgs_per_s": bridged, "ratio": ratio,
                        "out_alone_msgs_per_s": out, "out_alone_ratio": out_ratio,
                        "in_alone_msgs_per_s": inb, "in_alone_ratio": in_ratio,
                        "cpu_us_per_msg": { "direct": direct_cpu, "bridged": bridged_cpu,
                                            "out_alone": out_cpu, "in_alone": in_cpu } })
            );
        } else {
            outln!(
                "{size:>7} {n:>6} {d:>9.0} {bridged:>9.0} {ratio:>6.2} {out:>9.0} {out_ratio:>6.2} {inb:>9.0} {in_ratio:>6.2}"
            );
        }
    }
    Ok(())
}
