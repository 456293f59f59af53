//! The C examples (examples/c) and the kill test, built with the sanitizers and run as real
//! processes: producer/consumer across fork with close and drain, a JoinableQueue with join,
//! a pipe read to end-of-file after its writer is killed, a C producer with Rust consumers on
//! one named queue, and a C producer killed mid-put. The C++ example (g++) and the pkg-config
//! install test are ignored by a plain `cargo test`; `.ci/run` installs both tools and runs
//! them with `--ignored`.

mod harness;

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use harness::{assert_clean, compile, prefix, run_ok, sanitized, wait_with_watchdog};
use shmq_core::{GetTimeoutError, Options, Queue};

const LIMIT: Duration = Duration::from_secs(120);

/// examples/c/producer_consumer.c: 3 forked consumers drain an anonymous queue the producer
/// closes; every message is taken exactly once (count and sum of the values).
#[test]
fn producer_consumer_across_fork_with_close_and_drain() {
    let bin = compile(
        "producer_consumer",
        "producer_consumer",
        &["examples/c/producer_consumer.c"],
        &[],
    );
    let p = prefix("pc");
    let out = run_ok(&bin, &[&p], LIMIT);
    assert!(out.contains("took 20000 messages"), "{out}");
    assert_clean(&p);
}

/// examples/c/joinable.c: join returns only once every job is done (the workers' counter
/// says 2000 when it returns), and nothing is unfinished.
#[test]
fn joinable_queue_join_waits_for_every_task() {
    let bin = compile("joinable", "joinable", &["examples/c/joinable.c"], &[]);
    let p = prefix("join");
    let out = run_ok(&bin, &[&p], LIMIT);
    assert!(
        out.contains("2000 of 2000 jobs done, 0 unfinished"),
        "{out}"
    );
    assert_clean(&p);
}

/// examples/c/pipe_eof.c: the reader gets every message in order and then end-of-file after
/// the writer is SIGKILLed.
#[test]
fn pipe_reader_reads_eof_after_writer_is_killed() {
    let bin = compile("pipe_eof", "pipe_eof", &["examples/c/pipe_eof.c"], &[]);
    let p = prefix("eof");
    let out = run_ok(&bin, &[&p], LIMIT);
    assert!(out.contains("end-of-file after"), "{out}");
    assert_clean(&p);
}

/// Set in a re-run of this test binary that is the Rust consumer of the interop test: the
/// queue's name.
const CONSUMER_ENV: &str = "SHMQ_FFI_TEST_CONSUMER";

/// The Rust consumer of the interop test (as examples/interop_consumer.rs), when this binary
/// is re-run as one: takes messages from the named queue until it is closed and drained and
/// prints each as `got MESSAGE`. Otherwise it does nothing.
#[test]
fn interop_consumer_process() {
    let Ok(name) = std::env::var(CONSUMER_ENV) else {
        return;
    };
    let start = Instant::now();
    let q = loop {
        match Queue::open(&name) {
            Ok(q) => break q,
            Err(shmq_core::OpenError::NotFound(_)) if start.elapsed() < LIMIT => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(e) => panic!("{e}"),
        }
    };
    let mut out = std::io::stdout().lock();
    loop {
        match q.get() {
            Ok(m) => writeln!(out, "got {}", String::from_utf8(m).expect("UTF-8")).expect("stdout"),
            Err(shmq_core::GetError::Closed) => break,
            Err(e) => panic!("{e}"),
        }
    }
}

/// examples/c/interop_producer.c and examples/interop_consumer.rs: one C producer and two
/// Rust consumer processes on one named queue; every message arrives exactly once. (The
/// Python consumer joins them in crates/shmq-py/tests/test_c_interop.py.)
#[test]
fn c_producer_and_rust_consumers_share_a_queue() {
    let producer = compile(
        "interop",
        "interop_producer",
        &["examples/c/interop_producer.c"],
        &[],
    );
    let p = prefix("interop");
    let name = format!("{p}-q");
    // Each consumer's output is read as it comes (a full pipe would stop the consumer).
    let consumers: Vec<_> = (0..2)
        .map(|_| {
            let mut c = Command::new(std::env::current_exe().expect("this test binary"))
                .args([
                    "--exact",
                    "interop_consumer_process",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CONSUMER_ENV, &name)
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("the Rust consumer starts");
            let mut stdout = c.stdout.take().expect("stdout");
            let reader = std::thread::spawn(move || {
                let mut text = String::new();
                std::io::Read::read_to_string(&mut stdout, &mut text).expect("read");
                text
            });
            (c, reader)
        })
        .collect();
    let count = 20_000;
    let out = run_ok(&producer, &[&name, &count.to_string()], LIMIT);
    assert!(out.contains("produced 20000"), "{out}");
    let mut seen = HashSet::new();
    let mut per_consumer = Vec::new();
    for (c, reader) in consumers {
        let o = wait_with_watchdog(c, LIMIT, "interop_consumer");
        assert!(o.status.success(), "a consumer failed: {}", o.status);
        let text = reader.join().expect("reader");
        // The test harness may print its "test ... " before the first line.
        let lines: Vec<&str> = text
            .lines()
            .filter_map(|l| Some(&l[l.find("got ")? + 4..]))
            .collect();
        per_consumer.push(lines.len());
        for line in lines {
            assert!(seen.insert(line.to_string()), "{line} delivered twice");
        }
    }
    let want: HashSet<String> = (0..count).map(|i| format!("c-{i}")).collect();
    let missing: Vec<_> = want.difference(&seen).take(10).collect();
    let extra: Vec<_> = seen.difference(&want).take(10).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "per consumer {per_consumer:?}; missing {missing:?}; extra {extra:?}"
    );
    Queue::unlink(&name).expect("unlink");
    assert_clean(&p);
}

/// tests/c/kill_producer.c, SIGKILLed at a random moment of its stream (every fifth message
/// larger than a slot) in each of 6 rounds while a Rust consumer takes messages: every
/// message whose put returned SHMQ_OK (acknowledged on its stdout) is delivered, none twice,
/// and nothing else but the one put in flight at the kill.
#[test]
fn c_producer_killed_mid_put_loses_and_duplicates_nothing() {
    let bin = compile("kill", "kill_producer", &["tests/c/kill_producer.c"], &[]);
    let p = prefix("kill");
    let name = format!("{p}-q");
    let q = Queue::create(
        &name,
        &Options {
            capacity: 8,
            message_size: 64,
            max_message_size: 1 << 16,
            ..Default::default()
        },
    )
    .expect("create");
    let stop = Arc::new(AtomicBool::new(false));
    let consumer = {
        let (stop, name) = (Arc::clone(&stop), name.clone());
        std::thread::spawn(move || {
            let q = Queue::open(&name).expect("open");
            let mut got = Vec::new();
            loop {
                match q.get_timeout(Duration::from_millis(50)) {
                    Ok(m) => {
                        let round = u32::from_ne_bytes(m[..4].try_into().unwrap());
                        let i = u32::from_ne_bytes(m[4..8].try_into().unwrap());
                        let want_len = if i % 5 == 4 { 3000 } else { 8 };
                        assert_eq!(m.len(), want_len, "message {round}/{i}");
                        assert!(
                            m[8..].iter().all(|&b| b == (i & 0xff) as u8),
                            "payload {round}/{i}"
                        );
                        got.push((round, i));
                    }
                    Err(GetTimeoutError::Timeout) if stop.load(Ordering::SeqCst) => return got,
                    Err(GetTimeoutError::Timeout) => {}
                    Err(e) => panic!("{e}"),
                }
            }
        })
    };
    let mut acked: Vec<HashSet<u32>> = Vec::new();
    for round in 0..6u32 {
        let mut child = sanitized(&mut Command::new(&bin))
            .args([name.as_str(), &round.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the producer starts");
        let stdout = child.stdout.take().expect("stdout");
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map(|l| l.expect("ack").parse::<u32>().expect("number"))
                .collect::<HashSet<u32>>()
        });
        // A moment that varies by round: somewhere in the middle of the stream.
        std::thread::sleep(Duration::from_millis(150 + 37 * round as u64));
        // SAFETY: kill(2) of our own child.
        assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGKILL) }, 0);
        let o = wait_with_watchdog(child, LIMIT, "kill_producer");
        assert!(!o.status.success(), "the producer was killed");
        let acks = reader.join().expect("reader");
        assert!(
            acks.len() > 10,
            "round {round}: only {} puts before the kill",
            acks.len()
        );
        acked.push(acks);
    }
    let start = Instant::now();
    while !q.is_empty() && start.elapsed() < LIMIT {
        std::thread::sleep(Duration::from_millis(10));
    }
    stop.store(true, Ordering::SeqCst);
    let got = consumer.join().expect("consumer");
    let mut seen = HashSet::new();
    for &(round, i) in &got {
        assert!(seen.insert((round, i)), "{round}/{i} delivered twice");
    }
    for (round, acks) in acked.iter().enumerate() {
        let round = round as u32;
        for &i in acks {
            assert!(seen.contains(&(round, i)), "acknowledged {round}/{i} lost");
        }
        // Beyond the acknowledged ones, at most the put in flight at the kill arrived.
        let extra: Vec<u32> = got
            .iter()
            .filter(|&&(r, i)| r == round && !acks.contains(&i))
            .map(|&(_, i)| i)
            .collect();
        let next = acks.iter().max().map_or(0, |m| m + 1);
        assert!(
            extra.is_empty() || extra == [next],
            "round {round}: unacknowledged {extra:?}"
        );
    }
    drop(q);
    Queue::unlink(&name).expect("unlink");
    assert_clean(&p);
}

/// examples/cpp/jobs.cpp (shmq.hpp, g++ -std=c++20 with the sanitizers): jobs through an
/// anonymous queue to forked workers, join, a counter dict, the lock as a std::lock_guard,
/// reports through a pipe read to end-of-file.
#[test]
#[ignore = "needs g++ with C++20 (apt-get install g++); .ci/run runs it"]
fn cpp_example_runs_under_the_sanitizers() {
    let bin = compile("cpp", "jobs", &["examples/cpp/jobs.cpp"], &[]);
    let p = prefix("cpp");
    let out = run_ok(&bin, &[&p], LIMIT);
    assert!(
        out.contains("500 jobs done, 500 reports through the pipe"),
        "{out}"
    );
    assert_clean(&p);
}

/// install.sh puts the library, the headers and shmq.pc under a prefix; a program built with
/// `cc app.c $(pkg-config --cflags --libs shmq)` against it runs (the README's install line),
/// with the shared and with the static library.
#[test]
#[ignore = "needs pkg-config (apt-get install pkg-config); .ci/run runs it"]
fn installed_library_builds_with_pkg_config() {
    let dir = harness::crate_dir();
    let prefix_dir = harness::out_dir("install").join("prefix");
    let _ = std::fs::remove_dir_all(&prefix_dir);
    let o = Command::new(dir.join("install.sh"))
        .args(["--prefix", prefix_dir.to_str().expect("UTF-8 path")])
        .args([
            "--lib-dir",
            harness::lib_dir().to_str().expect("UTF-8 path"),
        ])
        .output()
        .expect("install.sh runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let pc = std::fs::read_to_string(prefix_dir.join("lib/pkgconfig/shmq.pc")).expect("shmq.pc");
    assert!(
        pc.contains(&format!("prefix={}", prefix_dir.display())),
        "{pc}"
    );
    let flags = |args: &[&str]| {
        let o = Command::new("pkg-config")
            .env("PKG_CONFIG_PATH", prefix_dir.join("lib/pkgconfig"))
            .args(args)
            .arg("shmq")
            .output()
            .expect("pkg-config runs");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout)
            .expect("UTF-8")
            .split_whitespace()
            .map(String::from)
            .collect::<Vec<_>>()
    };
    let p = prefix("install");
    let shared = flags(&["--cflags", "--libs"]);
    // Static: the archive itself, with the system libraries shmq.pc lists for it.
    let mut static_ = flags(&["--cflags"]);
    static_.push(prefix_dir.join("lib/libshmq.a").display().to_string());
    static_.extend(
        flags(&["--libs-only-l", "--static"])
            .into_iter()
            .filter(|f| f != "-lshmq"),
    );
    for (name, link) in [("shared", shared), ("static", static_)] {
        let bin = harness::out_dir("install").join(name);
        let o = Command::new("cc")
            .arg(dir.join("examples/c/joinable.c"))
            .arg("-o")
            .arg(&bin)
            .args(&link)
            .output()
            .expect("cc runs");
        assert!(
            o.status.success(),
            "{name} {link:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let child = harness::own_group(
            Command::new(&bin)
                .env("LD_LIBRARY_PATH", prefix_dir.join("lib"))
                .arg(format!("{p}-{name}")),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
        let o = wait_with_watchdog(child, LIMIT, name);
        assert!(
            o.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    assert_clean(&p);
}
