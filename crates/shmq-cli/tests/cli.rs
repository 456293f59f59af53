//! The `shmq` binary, run as a user would: every demo scenario with `--json`, the admin round
//! trip, the error cases and a tiny `bench`. Speeds are never asserted.

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

const SHMQ: &str = env!("CARGO_BIN_EXE_shmq");

/// Runs `shmq ARGS` with a time limit: a hang fails the test after `limit`.
fn shmq(args: &[&str], limit: Duration) -> Output {
    shmq_testkit::run_with_limit(Command::new(SHMQ).args(args), b"", limit)
}

fn json_lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
        .collect()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

const MINUTE: Duration = Duration::from_secs(60);

#[test]
fn demo_queue_json_counts_every_item_once() {
    let out = shmq(&["demo", "queue", "--json"], MINUTE);
    assert!(out.status.success(), "{}", stderr(&out));
    let v = &json_lines(&out)[0];
    assert_eq!(v["scenario"], "queue");
    assert_eq!(
        (v["producers"].as_u64(), v["consumers"].as_u64()),
        (Some(3), Some(2))
    );
    assert_eq!(
        (v["sent"].as_u64(), v["received"].as_u64()),
        (Some(30), Some(30))
    );
    assert_eq!(v["duplicates"], 0);
    assert_eq!(v["ok"], true);
}

#[test]
fn demo_joinable_json_every_producer_joins() {
    let out = shmq(&["demo", "joinable", "--json"], MINUTE);
    assert!(out.status.success(), "{}", stderr(&out));
    let v = &json_lines(&out)[0];
    assert_eq!(v["scenario"], "joinable");
    assert_eq!(
        (v["sent"].as_u64(), v["received"].as_u64()),
        (Some(100), Some(100))
    );
    assert_eq!(v["joined"], 10);
    assert_eq!(v["unfinished"], 0);
    assert_eq!(v["ok"], true);
}

#[test]
fn demo_pipe_json_every_consumer_sees_end_of_file() {
    let out = shmq(&["demo", "pipe", "--json", "--items", "25"], MINUTE);
    assert!(out.status.success(), "{}", stderr(&out));
    let v = &json_lines(&out)[0];
    assert_eq!(v["scenario"], "pipe");
    assert_eq!(
        (v["sent"].as_u64(), v["received"].as_u64()),
        (Some(25), Some(25))
    );
    assert_eq!(v["eof"], 3);
    assert_eq!(v["duplicates"], 0);
    assert_eq!(v["ok"], true);
}

#[test]
fn demo_race_json_locked_finals_are_all_30() {
    let out = shmq(&["demo", "race", "--json", "--runs", "2"], MINUTE);
    assert!(out.status.success(), "{}", stderr(&out));
    let v = &json_lines(&out)[0];
    assert_eq!(v["scenario"], "race");
    assert_eq!(
        (v["processes"].as_u64(), v["start"].as_u64()),
        (Some(70), Some(100))
    );
    assert_eq!(v["expected"], 30);
    let locked = v["locked"]["finals"].as_array().unwrap();
    assert_eq!(locked.len(), 2);
    assert!(locked.iter().all(|f| f == 30), "{locked:?}");
    let unlocked = v["unlocked"]["finals"].as_array().unwrap();
    let lost: i64 = unlocked.iter().map(|f| f.as_i64().unwrap() - 30).sum();
    assert_eq!(v["unlocked"]["lost_updates"].as_i64(), Some(lost));
    // The default pace makes the read-write windows overlap: the race shows lost updates.
    assert_eq!(v["pace_us"], 2000);
    assert!(
        unlocked.iter().all(|f| f.as_i64().unwrap() > 30),
        "every unlocked run loses updates by default: {unlocked:?}"
    );
}

#[test]
fn demo_all_prints_one_object_per_scenario() {
    // In a shmq built with the bridge (feature `bridge`) and nats-server on PATH the bridge
    // scenario runs too; otherwise one line on stderr says it was skipped and why. CI installs
    // the server: there a build with the bridge must run it.
    let built_in = cfg!(feature = "bridge");
    let nats = built_in && shmq_testkit::nats::available();
    assert!(
        nats || !built_in || std::env::var_os("CI").is_none(),
        "CI must have nats-server: {}",
        shmq_testkit::nats::INSTALL_HINT
    );
    let out = shmq(
        &["demo", "--json", "--runs", "1", "--processes", "10"],
        MINUTE,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let scenarios: Vec<String> = json_lines(&out)
        .iter()
        .map(|v| v["scenario"].as_str().unwrap().to_owned())
        .collect();
    let mut expected = vec!["queue", "joinable", "pipe", "race", "big"];
    if nats {
        expected.push("bridge");
    } else {
        let why = if built_in {
            "bridge: skipped: the bridge needs nats-server"
        } else {
            "bridge: skipped: this shmq was built without the NATS bridge: build it with \
             `--features bridge`"
        };
        assert!(stderr(&out).contains(why), "{}", stderr(&out));
    }
    assert_eq!(scenarios, expected);
}

/// `shmq demo big --json`: checksummed messages from 0 B to 64 MiB through 4 KiB slots, each
/// delivered once and whole, nothing left in /dev/shm; one object with `ok: true`.
#[test]
fn demo_big_delivers_every_message_whole_and_leaves_nothing() {
    let out = shmq(&["demo", "big", "--json", "--items", "12"], MINUTE);
    assert!(out.status.success(), "{}", stderr(&out));
    let v = json_lines(&out);
    assert_eq!(v.len(), 1);
    assert_eq!(v[0]["scenario"], "big");
    assert_eq!(v[0]["ok"], true);
    assert_eq!(v[0]["received"], 36);
    assert_eq!(v[0]["largest"], 64 << 20);
    assert_eq!(v[0]["side_segments_left"], 0);
}

/// Without nats-server on PATH (or, in a shmq built without the bridge, in any case) `shmq demo`
/// runs the other scenarios and one line says how to get the bridge's; `shmq demo bridge` fails
/// saying the same.
#[test]
fn demo_without_nats_server_runs_the_rest_and_says_how_to_get_it() {
    let empty = std::env::temp_dir().join(format!("shmq-test-empty-path-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let run = |args: &[&str]| {
        shmq_testkit::run_with_limit(
            Command::new(SHMQ).args(args).env("PATH", &empty),
            b"",
            MINUTE,
        )
    };
    let out = run(&["demo", "--json", "--runs", "1", "--processes", "10"]);
    let bridge = run(&["demo", "bridge"]);
    let _ = std::fs::remove_dir(&empty);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json_lines(&out).len(), 5);
    let hint: Vec<String> = stderr(&out).lines().map(str::to_owned).collect();
    assert_eq!(hint.len(), 1, "{hint:?}");
    let how = if cfg!(feature = "bridge") {
        "apt-get install nats-server"
    } else {
        "cargo install --locked --path crates/shmq-cli --features bridge"
    };
    assert!(hint[0].contains(how), "{hint:?}");
    assert!(!bridge.status.success());
    assert!(stderr(&bridge).contains(how), "{}", stderr(&bridge));
}

/// A shmq built without the bridge still lists `bridge` in its help, and `shmq bridge ...`
/// fails at once with one line saying how to build it in (instead of an unknown command).
#[cfg(not(feature = "bridge"))]
#[test]
fn bridge_not_built_in_says_how_to_build_it() {
    let help = shmq(&["--help"], MINUTE);
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    assert!(
        help.lines()
            .any(|l| l.trim_start().starts_with("bridge") && l.contains("--features bridge")),
        "{help}"
    );
    let out = shmq(
        &[
            "bridge",
            "out",
            "q",
            "--to",
            "s",
            "--server",
            "nats://127.0.0.1:1",
        ],
        MINUTE,
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("built without the NATS bridge")
            && err.contains("cargo install --locked --path crates/shmq-cli --features bridge"),
        "{err}"
    );
}

#[test]
fn admin_round_trip_create_put_get_stat_ls_rm() {
    let name = format!("shmq-test-cli-{}", std::process::id());
    let out = shmq(
        &[
            "create",
            "queue",
            &name,
            "--capacity",
            "4",
            "--message-size",
            "32",
            "--mode",
            "0640",
        ],
        MINUTE,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let path = format!("/dev/shm/{name}");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&path).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o640);

    assert!(shmq(&["put", &name, "hello"], MINUTE).status.success());
    assert!(shmq(&["put", &name, "world"], MINUTE).status.success());
    let stat = shmq(&["stat", &name, "--json"], MINUTE);
    let v = &json_lines(&stat)[0];
    assert_eq!(v["kind"], "queue");
    assert_eq!(
        v["layout_version"].as_u64(),
        Some(u64::from(shmq::substrate::layout::LAYOUT_VERSION))
    );
    assert_eq!(
        (v["capacity"].as_u64(), v["message_size"].as_u64()),
        (Some(4), Some(32))
    );
    assert_eq!(
        (v["len"].as_u64(), v["unfinished"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(v["closed"], false);
    assert_eq!(
        v["creator_alive"], false,
        "the creating shmq process has exited"
    );

    let got = shmq(&["get", &name, "--count", "2", "--timeout", "1s"], MINUTE);
    assert!(got.status.success(), "{}", stderr(&got));
    assert_eq!(String::from_utf8_lossy(&got.stdout), "hello\nworld\n");

    let ls = shmq(&["ls", "--json"], MINUTE);
    let row = json_lines(&ls)
        .into_iter()
        .find(|r| r["name"] == name.as_str())
        .expect("ls lists the queue");
    assert_eq!(row["kind"], "queue");
    assert!(row["size"].as_u64().unwrap() > 0);

    assert!(shmq(&["close", &name], MINUTE).status.success());
    let v = &json_lines(&shmq(&["stat", &name, "--json"], MINUTE))[0];
    assert_eq!(v["closed"], true);

    assert!(shmq(&["rm", &name], MINUTE).status.success());
    assert!(!std::path::Path::new(&path).exists());
}

#[test]
fn errors_are_one_line_with_a_nonzero_exit() {
    let missing = format!("shmq-test-cli-missing-{}", std::process::id());
    let out = shmq(&["stat", &missing], MINUTE);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("no shmq segment named"), "{err}");

    let foreign = format!("shmq-test-cli-foreign-{}", std::process::id());
    let path = format!("/dev/shm/{foreign}");
    std::fs::write(&path, b"not a segment, just bytes").unwrap();
    let out = shmq(&["rm", &foreign], MINUTE);
    let exists = std::path::Path::new(&path).exists();
    let _ = std::fs::remove_file(&path);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("is not a shmq segment"),
        "{}",
        stderr(&out)
    );
    assert!(exists, "rm must not remove a foreign file");

    let out = shmq(&["get", &missing, "--timeout", "soon"], MINUTE);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("invalid duration"),
        "{}",
        stderr(&out)
    );

    let out = shmq(&["create", "queue", "bad/name"], MINUTE);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("invalid segment name"),
        "{}",
        stderr(&out)
    );

    let out = shmq(&["create", "queue", &missing, "--capacity", "0"], MINUTE);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("capacity"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("panicked"));
}

#[test]
fn bench_with_tiny_counts_prints_well_formed_json() {
    let out = shmq(
        &[
            "bench",
            "--messages",
            "500",
            "--sizes",
            "64",
            "--repeat",
            "1",
            "--json",
        ],
        Duration::from_secs(120),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let rows = json_lines(&out);
    assert!(!rows.is_empty());
    for r in &rows {
        for key in [
            "mechanism",
            "workload",
            "size",
            "msgs_per_sec",
            "mb_per_sec",
            "ratio_to_pipe",
            "ratio_to_floor",
        ] {
            assert!(r.get(key).is_some(), "row without {key}: {r}");
        }
        assert!(r["msgs_per_sec"].as_f64().unwrap() > 0.0);
        if r["workload"] == "rtt" {
            assert!(r["p50_us"].as_f64().is_some() && r["p99_us"].as_f64().is_some());
        }
    }
    for m in ["shmq", "shmq-batch", "pipe", "socket"] {
        assert!(rows.iter().any(|r| r["mechanism"] == m), "no {m} row");
    }
}

#[test]
fn stat_shows_the_holders_of_each_pipe_end_without_becoming_one() {
    let name = format!("shmq-test-cli-pipe-{}", std::process::id());
    let opts = shmq::Options {
        capacity: 4,
        message_size: 16,
        ..Default::default()
    };
    let (a, b) = shmq::Pipe::create(&name, &opts).unwrap();
    let b2 = shmq::PipeEnd::open(&name, shmq::End::B).unwrap();
    a.send(b"queued").unwrap();
    let out = shmq(&["stat", &name, "--json"], MINUTE);
    let v = &json_lines(&out)[0];
    assert_eq!(v["kind"], "pipe");
    assert_eq!(
        (v["holders_a"].as_u64(), v["holders_b"].as_u64()),
        (Some(1), Some(2))
    );
    assert_eq!(
        (v["gone_a"].as_bool(), v["gone_b"].as_bool()),
        (Some(false), Some(false))
    );
    assert_eq!(v["queued_a_to_b"], 1);
    assert_eq!(v["creator_alive"], true);
    // stat registered nothing: once this process lets go of B, B is gone.
    drop((b, b2));
    let v = &json_lines(&shmq(&["stat", &name, "--json"], MINUTE))[0];
    assert_eq!(
        (v["holders_b"].as_u64(), v["gone_b"].as_bool()),
        (Some(0), Some(true))
    );
    drop(a);
    assert!(shmq(&["rm", &name], MINUTE).status.success());
}

/// Bug 3: a FIFO in `/dev/shm` (anyone can make one) hung `ls`, `stat`, `rm` and `get`, which
/// opened it with a blocking `open`. Now `ls` skips it and the others refuse it at once, saying
/// what it is.
#[test]
fn a_fifo_in_dev_shm_is_refused_promptly_and_not_listed() {
    let name = format!("shmq-test-cli-fifo-{}", std::process::id());
    let path = format!("/dev/shm/{name}");
    let made = Command::new("mkfifo").arg(&path).status().unwrap();
    assert!(made.success());
    struct Remove(String);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
    let _remove = Remove(path.clone());
    let limit = Duration::from_secs(20);

    let ls = shmq(&["ls", "--json"], limit);
    assert!(ls.status.success(), "{}", stderr(&ls));
    assert!(json_lines(&ls).iter().all(|r| r["name"] != name.as_str()));
    for args in [
        vec!["stat", &name],
        vec!["get", &name, "--timeout", "100ms"],
        vec!["put", &name, "x"],
        vec!["rm", &name],
    ] {
        let out = shmq(&args, limit);
        assert!(!out.status.success(), "{args:?}");
        let err = stderr(&out);
        assert!(
            err.contains("is a FIFO, not a shared-memory segment"),
            "{args:?}: {err}"
        );
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    assert!(
        std::path::Path::new(&path).exists(),
        "rm left the FIFO alone"
    );
}

/// Bug 5: `shmq stat` of a dict (or lock) whose holder was SIGKILLed took the lock to read it,
/// which consumed the owner-died report: the next locker was not told. Now stat reads without
/// locking, shows the dead holder, and the report is still there for the next locker.
#[test]
fn stat_of_a_lock_whose_holder_was_killed_leaves_the_owner_died_report() {
    use std::io::{BufRead, BufReader};
    let dict = format!("shmq-test-cli-killed-{}", std::process::id());
    let gate = format!("shmq-test-cli-killed-gate-{}", std::process::id());
    let d = shmq_dict::SharedDict::create(&dict, &shmq_dict::Options::default()).unwrap();
    let q = shmq::Queue::create(
        &gate,
        &shmq::Options {
            capacity: 1,
            message_size: 1,
            ..Default::default()
        },
    )
    .unwrap();
    d.insert("count", 1).unwrap();
    // A `shmq` child that takes the dict's lock and sleeps inside it for a minute.
    let mut holder = Command::new(SHMQ)
        .args(["demo-child", "race-locked", &dict, &gate, "60000000"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(holder.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    q.put([1]).unwrap();
    let held = std::time::Instant::now();
    while !matches!(
        shmq_dict::SharedDict::inspect(&dict).unwrap().lock,
        shmq::substrate::sync::LockState::Held { .. }
    ) {
        assert!(held.elapsed() < MINUTE, "the child never took the lock");
        std::thread::sleep(Duration::from_millis(5));
    }
    holder.kill().unwrap();
    holder.wait().unwrap();

    for _ in 0..2 {
        let v = &json_lines(&shmq(&["stat", &dict, "--json"], MINUTE))[0];
        assert_eq!(v["held"], true, "{v}");
        assert_eq!(v["owner_alive"], false, "{v}");
        assert_eq!(v["len"].as_u64(), Some(1), "{v}");
    }
    let g = d.lock().unwrap();
    let told = g.previous_owner_died();
    drop(g);
    let _ = shmq_dict::SharedDict::unlink(&dict);
    let _ = shmq::Queue::unlink(&gate);
    assert!(told, "stat consumed the owner-died report");
    assert!(!d.lock().unwrap().previous_owner_died());
}

/// Bugs 4 and 7 through the CLI: a queue whose ring lock names a thread that does not exist
/// (ids are below `pid_max`) is repaired, and one whose lock word is garbage is a clear error;
/// neither hangs `stat` or `get` (a watchdog fails the test) nor aborts the process.
#[test]
fn a_damaged_ring_lock_never_hangs_or_aborts_the_cli() {
    use std::os::unix::fs::FileExt;
    let name = format!("shmq-test-cli-lockbytes-{}", std::process::id());
    let q = shmq::Queue::create(
        &name,
        &shmq::Options {
            capacity: 4,
            message_size: 8,
            ..Default::default()
        },
    )
    .unwrap();
    q.put(*b"kept").unwrap();
    let absent: u64 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/dev/shm/{name}"))
        .unwrap();
    let limit = Duration::from_secs(20);

    file.write_at(&absent.to_ne_bytes(), 128).unwrap();
    let stat = shmq(&["stat", &name, "--json"], limit);
    let got = shmq(&["get", &name, "--timeout", "100ms"], limit);
    file.write_at(&0xdead_beef_dead_beef_u64.to_ne_bytes(), 128)
        .unwrap();
    let stat2 = shmq(&["stat", &name], limit);
    let get2 = shmq(&["get", &name, "--timeout", "100ms"], limit);
    drop(q);
    let _ = shmq::Queue::unlink(&name);

    assert!(stat.status.success(), "{}", stderr(&stat));
    assert_eq!(json_lines(&stat)[0]["len"].as_u64(), Some(1));
    assert!(got.status.success(), "{}", stderr(&got));
    assert_eq!(String::from_utf8_lossy(&got.stdout), "kept\n");
    for out in [&stat2, &get2] {
        assert!(!stderr(out).contains("panicked"), "{}", stderr(out));
        assert!(out.status.code().is_some(), "killed by a signal");
    }
    assert!(!get2.status.success());
    assert!(stderr(&get2).contains("corrupt"), "{}", stderr(&get2));
}

/// Counts that cannot work are refused at once with a message naming the option: zero
/// consumers (producers would block on the full queue for ever), zero producers, items or
/// runs, and more processes than the demo's bound.
#[test]
fn demo_refuses_counts_that_cannot_work() {
    for (args, option) in [
        (&["demo", "queue", "--consumers", "0"][..], "--consumers"),
        (&["demo", "joinable", "--consumers", "0"][..], "--consumers"),
        (&["demo", "queue", "--producers", "0"][..], "--producers"),
        (&["demo", "pipe", "--items", "0"][..], "--items"),
        (&["demo", "race", "--processes", "0"][..], "--processes"),
        (&["demo", "race", "--processes", "1025"][..], "--processes"),
        (&["demo", "race", "--runs", "0"][..], "--runs"),
        (&["demo", "--consumers", "0"][..], "--consumers"),
    ] {
        let start = std::time::Instant::now();
        let out = shmq(args, Duration::from_secs(20));
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(
            stderr(&out).contains("invalid value") && stderr(&out).contains(option),
            "{args:?}: {}",
            stderr(&out)
        );
        assert!(out.stdout.is_empty(), "{args:?} ran: {:?}", out.stdout);
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{args:?} took long"
        );
    }
    let out = shmq(&["demo", "--help"], MINUTE);
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("at most 1024"), "{help}");
}

/// What a demo started from this test left: its segments in /dev/shm (`shmq-demo-*-PID-*`,
/// side segments included) and the children it listed, all removed or killed on drop (so that
/// a failing run leaves nothing behind either).
struct DemoLeftovers {
    parent: u32,
    children: Vec<u32>,
}

impl DemoLeftovers {
    fn segments(&self) -> Vec<String> {
        let mark = format!("-{}-", self.parent);
        std::fs::read_dir("/dev/shm")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.starts_with("shmq-demo-") && n.contains(&mark))
            .collect()
    }

    fn live_children(&self) -> Vec<u32> {
        self.children
            .iter()
            .copied()
            .filter(|p| std::path::Path::new(&format!("/proc/{p}")).exists())
            .collect()
    }
}

impl Drop for DemoLeftovers {
    fn drop(&mut self) {
        for pid in self.live_children() {
            shmq_testkit::kill(pid, 9);
        }
        for name in self.segments() {
            let _ = std::fs::remove_file(format!("/dev/shm/{name}"));
        }
    }
}

/// Ctrl-C (SIGINT) or SIGTERM on a demo whose producers are blocked on a full queue (one slow
/// consumer): the demo exits within a few seconds with 128 + the signal, its children are
/// gone and the segment it made is removed.
#[test]
fn an_interrupted_demo_ends_its_children_and_removes_its_segments() {
    let _w = shmq_testkit::Watchdog::new("interrupted demo", Duration::from_secs(120));
    for (signal, code) in [(2, 130), (15, 143)] {
        let mut demo = shmq_testkit::Proc::spawn(
            Command::new(SHMQ)
                .args(["demo", "queue", "--consumers", "1", "--items", "100"])
                .args(["--pace", "10s"])
                .stdin(Stdio::null())
                .stderr(Stdio::null()),
            "demo",
        )
        .unwrap();
        let mut left = DemoLeftovers {
            parent: demo.pid(),
            children: Vec::new(),
        };
        let started = demo.expect("  started consumers").unwrap();
        left.children = started
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|w| w.parse().ok())
            .collect();
        assert_eq!(left.children.len(), 4, "{started}");
        // The producers fill the queue (5 slots) and block: the consumer sleeps 10 s per item.
        assert!(shmq_testkit::eventually(Duration::from_secs(10), || {
            left.segments()
                .iter()
                .any(|n| n.starts_with("shmq-demo-queue-"))
        }));
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(
            left.live_children(),
            left.children,
            "all four still running"
        );
        let sent = std::time::Instant::now();
        shmq_testkit::kill(demo.pid(), signal);
        let status = demo.wait_status();
        let took = sent.elapsed();
        assert_eq!(status.code(), Some(code), "signal {signal}: {status}");
        assert!(
            took < Duration::from_secs(8),
            "signal {signal}: took {took:?}"
        );
        assert!(
            shmq_testkit::eventually(Duration::from_secs(5), || left.live_children().is_empty()),
            "signal {signal}: children still there: {:?}",
            left.live_children()
        );
        assert_eq!(left.segments(), Vec::<String>::new(), "signal {signal}");
    }
}
