//! `shmq top` and `shmq metrics`, run as a user would: the full-screen view driven through
//! tmux (keys in, screen out), `--once --json` against segments in known states, and the
//! metrics parsed as a Prometheus server parses them, printed, scraped over HTTP and written
//! as a textfile. The tmux tests are ignored by a plain `cargo test` (tmux may be missing);
//! `.ci/run` installs tmux and runs them with `--ignored`.

use std::io::{Read as _, Write as _};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use shmq_testkit::{Name, Proc, Stream, Watchdog};

const SHMQ: &str = env!("CARGO_BIN_EXE_shmq");
const MINUTE: Duration = Duration::from_secs(60);

fn shmq(args: &[&str]) -> Output {
    shmq_testkit::run_with_limit(Command::new(SHMQ).args(args), b"", MINUTE)
}

fn ok(args: &[&str]) -> String {
    let out = shmq(args);
    assert!(
        out.status.success(),
        "shmq {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `shmq top --once --json` of the segments whose names start with `prefix`, by name.
fn once_json(prefix: &str) -> std::collections::HashMap<String, Value> {
    ok(&[
        "top",
        "--once",
        "--json",
        "--interval",
        "100ms",
        "--filter",
        &format!("{prefix}*"),
    ])
    .lines()
    .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
    .map(|v| (v["name"].as_str().unwrap_or_default().to_owned(), v))
    .collect()
}

/// Polls `cond` every 50 ms until it holds, failing after `limit` with `what`.
fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn once_json_reports_empty_full_closed_killed_and_damaged_segments() {
    let _dog = Watchdog::new("once_json_reports_known_states", MINUTE);
    let base = Name::with_prefix("shmq-test-top", "states");
    let (empty, full, closed, killed, damaged) = (
        Name(format!("{}-empty", base.as_str())),
        Name(format!("{}-full", base.as_str())),
        Name(format!("{}-closed", base.as_str())),
        Name(format!("{}-killed", base.as_str())),
        Name(format!("{}-damaged", base.as_str())),
    );
    let (dict, lock) = (
        Name(format!("{}-dict", base.as_str())),
        Name(format!("{}-lock", base.as_str())),
    );
    for (n, cap) in [
        (&empty, "4"),
        (&full, "2"),
        (&closed, "4"),
        (&killed, "4"),
        (&damaged, "4"),
    ] {
        ok(&[
            "create",
            "queue",
            n,
            "--capacity",
            cap,
            "--message-size",
            "64",
        ]);
    }
    ok(&["create", "dict", &dict]);
    ok(&["create", "lock", &lock]);
    ok(&["put", &full, "one"]);
    ok(&["put", &full, "two"]);
    ok(&["put", &closed, "left"]);
    ok(&["close", &closed]);
    // A producer killed after its put: its registry entry stays, naming a dead process.
    let mut producer = Command::new(SHMQ)
        .args(["put", &killed])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("start shmq put");
    let mut stdin = producer.stdin.take().expect("stdin");
    stdin.write_all(b"from-the-producer\n").expect("write");
    stdin.flush().expect("flush");
    let pid = producer.id();
    wait_until("the producer's put", Duration::from_secs(20), || {
        once_json(&killed)[&*killed]["depth"] == 1
    });
    let alive_before = once_json(&killed)[&*killed]["processes"].clone();
    assert!(
        alive_before
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["pid"] == pid && p["alive"] == true && p["role"] == "producer"),
        "{alive_before}"
    );
    producer.kill().expect("kill");
    producer.wait().expect("reap");
    drop(stdin);
    // Damaged: the owner word of the ring's lock (offset 128) made a value no lock writes
    // (thread 0).
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(format!("/dev/shm/{}", damaged.as_str()))
            .expect("open");
        use std::io::Seek as _;
        f.seek(std::io::SeekFrom::Start(128)).expect("seek");
        f.write_all(&(1u64 << 32).to_ne_bytes()).expect("write");
    }

    let rows = once_json(&base);
    assert_eq!(rows.len(), 7, "{rows:?}");
    let e = &rows[&*empty];
    assert_eq!(
        (
            e["kind"].as_str(),
            e["state"].as_str(),
            e["depth"].as_u64(),
            e["capacity"].as_u64()
        ),
        (Some("queue"), Some("open"), Some(0), Some(4))
    );
    assert_eq!(e["unfinished"], 0);
    assert_eq!(
        (e["gets_per_sec"].as_f64(), e["puts_per_sec"].as_f64()),
        (Some(0.0), Some(0.0))
    );
    let f = &rows[&*full];
    assert_eq!(
        (f["depth"].as_u64(), f["capacity"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(
        (
            f["rings"][0]["puts_total"].as_u64(),
            f["unfinished"].as_u64()
        ),
        (Some(2), Some(2))
    );
    let c = &rows[&*closed];
    assert_eq!(
        (c["state"].as_str(), c["depth"].as_u64()),
        (Some("closed"), Some(1))
    );
    assert_eq!(c["rings"][0]["closed"], true);
    let k = &rows[&*killed];
    assert_eq!(k["depth"], 1);
    let procs = k["processes"].as_array().unwrap();
    assert!(
        procs
            .iter()
            .any(|p| p["pid"] == pid && p["alive"] == false && p["role"] == "producer"),
        "{k}"
    );
    assert_eq!(k["live_processes"], 0);
    let d = &rows[&*damaged];
    assert_eq!(d["state"], "damaged", "{d}");
    assert!(d["reason"].as_str().unwrap().contains("lock"), "{d}");
    let di = &rows[&*dict];
    assert_eq!(
        (
            di["kind"].as_str(),
            di["keys"].as_u64(),
            di["lock"].as_str()
        ),
        (Some("dict"), Some(0), Some("free"))
    );
    let l = &rows[&*lock];
    assert_eq!(
        (l["kind"].as_str(), l["state"].as_str(), l["holder"].clone()),
        (Some("lock"), Some("open"), Value::Null)
    );

    // The text form shows the same rows.
    let text = ok(&[
        "top",
        "--once",
        "--interval",
        "50ms",
        "--filter",
        &format!("{}*", base.as_str()),
    ]);
    assert!(text.starts_with("NAME"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with(&*closed) && l.contains("closed") && l.contains("1/4")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with(&*damaged) && l.contains("damaged")),
        "{text}"
    );
}

/// Parses exposition text as a Prometheus server would.
fn parse(text: &str) -> prometheus_parse::Scrape {
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("parses")
}

/// The value of `metric` for the segment `name` (and `kind`).
fn value(s: &prometheus_parse::Scrape, metric: &str, name: &str) -> prometheus_parse::Value {
    s.samples
        .iter()
        .find(|x| x.metric == metric && x.labels.get("name") == Some(name))
        .unwrap_or_else(|| panic!("no {metric} for {name}"))
        .value
        .clone()
}

fn check_metrics(text: &str, queue: &str, dict: &str) {
    use prometheus_parse::Value::{Counter, Gauge};
    let s = parse(text);
    assert_eq!(value(&s, "shmq_queue_depth", queue), Gauge(3.0));
    assert_eq!(value(&s, "shmq_queue_capacity", queue), Gauge(8.0));
    assert_eq!(value(&s, "shmq_puts_total", queue), Counter(4.0));
    assert_eq!(value(&s, "shmq_gets_total", queue), Counter(1.0));
    assert_eq!(value(&s, "shmq_unfinished_tasks", queue), Gauge(4.0));
    assert_eq!(value(&s, "shmq_waiting_producers", queue), Gauge(0.0));
    assert_eq!(value(&s, "shmq_dict_keys", dict), Gauge(0.0));
    let depth = s
        .samples
        .iter()
        .find(|x| x.metric == "shmq_queue_depth" && x.labels.get("name") == Some(queue))
        .unwrap();
    assert_eq!(depth.labels.get("kind"), Some("queue"));
    for m in [
        "shmq_queue_depth",
        "shmq_puts_total",
        "shmq_waiting_consumers",
    ] {
        assert!(s.docs.contains_key(m), "no HELP for {m}");
        assert!(text.contains(&format!("# TYPE {m} ")), "no TYPE for {m}");
    }
}

#[test]
fn metrics_parse_as_prometheus_text_printed_scraped_and_written() {
    let _dog = Watchdog::new("metrics", MINUTE);
    let base = Name::with_prefix("shmq-test-top", "metrics");
    let (queue, dict) = (
        Name(format!("{}-q", base.as_str())),
        Name(format!("{}-d", base.as_str())),
    );
    ok(&[
        "create",
        "queue",
        &queue,
        "--capacity",
        "8",
        "--message-size",
        "64",
    ]);
    ok(&["create", "dict", &dict]);
    for m in ["a", "b", "c", "d"] {
        ok(&["put", &queue, m]);
    }
    ok(&["get", &queue, "--count", "1"]);
    let filter = format!("{}*", base.as_str());

    check_metrics(&ok(&["metrics", "--filter", &filter]), &queue, &dict);

    // --textfile: written whole, no temporary file left beside it.
    let dir = std::env::temp_dir().join(format!("shmq-top-metrics-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("shmq.prom");
    ok(&[
        "metrics",
        "--filter",
        &filter,
        "--textfile",
        file.to_str().unwrap(),
    ]);
    check_metrics(&std::fs::read_to_string(&file).unwrap(), &queue, &dict);
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(left, vec![std::ffi::OsString::from("shmq.prom")]);
    std::fs::remove_dir_all(&dir).unwrap();

    // --listen: a scrape over HTTP.
    let mut server = Proc::spawn_reading(
        Command::new(SHMQ).args(["metrics", "--filter", &filter, "--listen", "127.0.0.1:0"]),
        "shmq metrics --listen",
        Stream::Stderr,
    )
    .expect("start the server");
    let line = server
        .expect("serving metrics at http://")
        .expect("address");
    let addr = line
        .strip_suffix("/metrics")
        .expect("a /metrics URL")
        .to_owned();
    let get = |path: &str| {
        let mut c = std::net::TcpStream::connect(&addr).expect("connect");
        c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        write!(
            c,
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut resp = String::new();
        c.read_to_string(&mut resp).expect("read the response");
        resp
    };
    let resp = get("/metrics");
    let (head, body) = resp.split_once("\r\n\r\n").expect("headers, then a body");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    check_metrics(body, &queue, &dict);
    assert!(get("/nothing").starts_with("HTTP/1.1 404"));
    server.child.kill().unwrap();
    server.child.wait().unwrap();
}

/// A tmux server of its own (`-L`: the user's sessions and other tests' are untouched)
/// running `shmq top` in one session; killed on drop.
struct Tmux(String);

impl Tmux {
    fn start(args: &[&str]) -> Tmux {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let session = format!("shmq-top-test-{}-{n}", std::process::id());
        let mut cmd = vec![SHMQ.to_owned(), "top".to_owned()];
        cmd.extend(args.iter().map(|a| (*a).to_owned()));
        let st = Command::new("tmux")
            .args(["-L", &session, "new-session", "-d", "-s", &session])
            .args(["-x", "220", "-y", "40"])
            .arg(cmd.join(" "))
            .status()
            .expect("tmux is installed (.ci/run installs it)");
        assert!(st.success());
        Tmux(session)
    }

    fn keys(&self, keys: &[&str]) {
        let st = Command::new("tmux")
            .args(["-L", &self.0, "send-keys", "-t", &self.0])
            .args(keys)
            .status()
            .unwrap();
        assert!(st.success());
    }

    fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.0, "capture-pane", "-p", "-t", &self.0])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The screen once `cond` holds on it (polled), or a failure showing the last screen.
    fn wait_for(&self, what: &str, cond: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let s = self.screen();
            if cond(&s) {
                return s;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "screen never showed {what}:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.0, "kill-server"])
            .stderr(Stdio::null())
            .status();
    }
}

/// The screen line of segment `name`.
fn row<'a>(screen: &'a str, name: &str) -> Option<&'a str> {
    screen.lines().find(|l| l.trim_start().starts_with(name))
}

/// The depth `D` of a row's `D/C` (the first such figure).
fn depth(line: &str) -> Option<u64> {
    line.split_whitespace().find_map(|w| {
        w.split_once('/')
            .and_then(|(d, c)| c.parse::<u64>().ok().and(d.parse().ok()))
    })
}

#[test]
#[ignore = "needs tmux (apt-get install tmux); .ci/run runs it"]
fn top_under_tmux_shows_depth_rates_a_waiting_consumer_and_a_closed_queue() {
    let _dog = Watchdog::new("top under tmux", Duration::from_secs(120));
    let q = Name::with_prefix("shmq-test-top", "tmux");
    ok(&[
        "create",
        "queue",
        &q,
        "--capacity",
        "64",
        "--message-size",
        "64",
    ]);
    let top = Tmux::start(&["--interval", "300ms", "--filter", &q]);
    top.wait_for("the queue's row", |s| {
        row(s, &q).is_some_and(|l| l.contains("0/64"))
    });

    // A producer putting 20 messages a second, a consumer taking 4 a second.
    let mut producer = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "i=0; while [ $i -lt 30 ]; do echo m$i; i=$((i+1)); sleep 0.05; done | {SHMQ} put {}",
            q.as_str()
        ))
        .spawn()
        .unwrap();
    let mut consumer = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "while {SHMQ} get {} --count 1 >/dev/null; do sleep 0.25; done",
            q.as_str()
        ))
        .spawn()
        .unwrap();
    let first = top.wait_for("the depth rising", |s| {
        row(s, &q).and_then(depth).is_some_and(|d| d >= 3)
    });
    let d1 = row(&first, &q).and_then(depth).unwrap();
    let later = top.wait_for("the depth rising further", |s| {
        row(s, &q).and_then(depth).is_some_and(|d| d > d1 + 3)
    });
    let line = row(&later, &q).unwrap();
    // PUT/s and GET/s: non-zero figures after the depth bar.
    let after_depth: Vec<&str> = line
        .split_whitespace()
        .skip_while(|w| !w.contains("/64"))
        .skip(1)
        .collect();
    let puts: f64 = after_depth[0].parse().unwrap_or(0.0);
    assert!(puts > 0.0, "no put rate shown: {line}");
    producer.wait().unwrap();
    // Drained, the consumer sleeps in its get: the screen says a consumer waits.
    let waiting = top.wait_for("the waiting consumer", |s| {
        row(s, &q).is_some_and(|l| depth(l) == Some(0) && l.split_whitespace().any(|w| w == "C"))
    });
    let _ = waiting;
    ok(&["close", &q]);
    top.wait_for("the closed queue", |s| {
        row(s, &q).is_some_and(|l| l.contains("closed"))
    });
    consumer.wait().unwrap();
    top.keys(&["q"]);
    wait_until("top to quit", Duration::from_secs(10), || {
        !Command::new("tmux")
            .args(["-L", &top.0, "has-session", "-t", &top.0])
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success()
    });
}

#[test]
#[ignore = "needs tmux (apt-get install tmux); .ci/run runs it"]
fn top_under_tmux_sorts_filters_and_shows_a_detail_pane() {
    let _dog = Watchdog::new("top keys", Duration::from_secs(120));
    let base = Name::with_prefix("shmq-test-top", "keys");
    let names: Vec<Name> = ["a", "b", "c"]
        .iter()
        .map(|s| Name(format!("{}-{s}", base.as_str())))
        .collect();
    // a holds 1 message, b 3, c 2.
    for (n, count) in names.iter().zip([1, 3, 2]) {
        ok(&[
            "create",
            "queue",
            n,
            "--capacity",
            "8",
            "--message-size",
            "64",
        ]);
        for i in 0..count {
            ok(&["put", n, &format!("m{i}")]);
        }
    }
    let order = |s: &str| -> Vec<String> {
        s.lines()
            .filter_map(|l| {
                names
                    .iter()
                    .find(|n| l.trim_start().starts_with(n.as_str()))
            })
            .map(|n| n.0.clone())
            .collect()
    };
    let n = |i: usize| names[i].0.clone();
    let top = Tmux::start(&[
        "--interval",
        "300ms",
        "--filter",
        &format!("{}*", base.as_str()),
    ]);
    let by_name = top.wait_for("three rows", |s| order(s).len() == 3);
    assert_eq!(order(&by_name), [n(0), n(1), n(2)]);
    // Sort by depth (column 4): deepest first.
    top.keys(&["4"]);
    let by_depth = top.wait_for("rows by depth", |s| order(s) == [n(1), n(2), n(0)]);
    assert!(by_depth.contains("sorted by depth"), "{by_depth}");
    // Again: reversed.
    top.keys(&["4"]);
    top.wait_for("rows by depth, reversed", |s| {
        order(s) == [n(0), n(2), n(1)]
    });
    // Filter to one name.
    top.keys(&["/"]);
    top.keys(&["-l", &format!("{}-c", base.as_str())]);
    top.keys(&["Enter"]);
    top.wait_for("one row", |s| order(s) == [n(2)]);
    // Its detail pane lists the processes: this test's shmq commands have exited.
    top.keys(&["Down", "Enter"]);
    let detail = top.wait_for("the detail pane", |s| {
        s.contains("detail") && s.contains("ROLE")
    });
    assert!(detail.contains("creator"), "{detail}");
    assert!(detail.contains("2/8 waiting"), "{detail}");
    top.keys(&["Escape", "?"]);
    top.wait_for("the help", |s| s.contains("this help"));
    top.keys(&["x", "q"]);
}
