//! `shmq` always says what happened, run as a user would: why a `get` or `join` stopped short
//! (one line on stderr, exit 3), `get --nowait` and `--until-closed`, usage errors (exit 2),
//! errors that say what is wrong once and precisely (an OS error, a plain file, a full
//! /dev/shm, a bad `--max-message-size`), status lines on stderr and data on stdout, durations
//! in minutes and hours, what `stat` shows, and the dict and lock verbs.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use shmq_testkit::Name;

const SHMQ: &str = env!("CARGO_BIN_EXE_shmq");
const MINUTE: Duration = Duration::from_secs(60);

fn name(tag: &str) -> Name {
    Name::with_prefix("shmq-test-cli-says", tag)
}

fn shmq_in(args: &[&str], input: &[u8]) -> Output {
    shmq_testkit::run_with_limit(Command::new(SHMQ).args(args), input, MINUTE)
}

fn shmq(args: &[&str]) -> Output {
    shmq_in(args, b"")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs `shmq ARGS`, which must succeed.
fn ok(args: &[&str]) -> Output {
    let out = shmq(args);
    assert!(out.status.success(), "shmq {args:?}: {}", stderr(&out));
    out
}

fn queue(tag: &str) -> Name {
    let q = name(tag);
    ok(&[
        "create",
        "queue",
        &q,
        "--capacity",
        "8",
        "--message-size",
        "64",
    ]);
    q
}

/// The one line a command wrote on stderr (it must have written exactly one).
fn one_line(out: &Output) -> String {
    let err = stderr(out);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line on stderr: {err:?}");
    lines[0].to_owned()
}

#[test]
fn get_timeout_on_an_empty_queue_says_it_timed_out() {
    let _w = shmq_testkit::Watchdog::new("get --timeout", MINUTE);
    let q = queue("get-timeout");
    let out = shmq(&["get", &q, "--timeout", "100ms"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(out.stdout.is_empty());
    assert_eq!(
        one_line(&out),
        format!("shmq: {}: no message within 100ms: took 0 of 1", &*q)
    );
    // Short of --count: how many it took.
    ok(&["put", &q, "one"]);
    let out = shmq(&["get", &q, "--count", "3", "--timeout", "100ms"]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(stdout(&out), "one\n");
    assert_eq!(
        one_line(&out),
        format!("shmq: {}: no message within 100ms: took 1 of 3", &*q)
    );
}

#[test]
fn join_timeout_says_it_timed_out_and_what_is_not_done() {
    let _w = shmq_testkit::Watchdog::new("join --timeout", MINUTE);
    let q = queue("join-timeout");
    ok(&["put", &q, "task"]);
    let out = shmq(&["join", &q, "--timeout", "100ms"]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(
        one_line(&out),
        format!(
            "shmq: {}: timed out after 100ms with 1 task(s) not done",
            &*q
        )
    );
}

#[test]
fn get_on_a_closed_drained_queue_says_so() {
    let _w = shmq_testkit::Watchdog::new("get on a closed queue", MINUTE);
    let q = queue("closed");
    ok(&["put", &q, "last"]);
    ok(&["close", &q]);
    let out = shmq(&["get", &q, "--count", "2"]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(stdout(&out), "last\n");
    assert_eq!(
        one_line(&out),
        format!("shmq: {} is closed and drained: took 1 of 2", &*q)
    );
}

#[test]
fn get_nowait_takes_what_is_there_and_stops() {
    let _w = shmq_testkit::Watchdog::new("get --nowait", MINUTE);
    let q = queue("nowait");
    ok(&["put", &q, "a"]);
    ok(&["put", &q, "b"]);
    let out = shmq(&["get", &q, "--nowait", "--count", "5"]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(stdout(&out), "a\nb\n");
    assert_eq!(
        one_line(&out),
        format!("shmq: {} is empty: took 2 of 5", &*q)
    );
    // On an empty queue it returns at once (no wait for a message that may never come).
    let t = Instant::now();
    let out = shmq(&["get", &q, "--nowait"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(t.elapsed() < Duration::from_secs(10));
    // --nowait and --timeout contradict each other: a usage error.
    let out = shmq(&["get", &q, "--nowait", "--timeout", "1s"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn get_count_zero_is_a_usage_error() {
    let q = queue("count0");
    let out = shmq(&["get", &q, "--count", "0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("must be at least 1 (--until-closed takes every message"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn get_until_closed_takes_every_message_then_exits_0() {
    let _w = shmq_testkit::Watchdog::new("get --until-closed", MINUTE);
    let q = queue("until-closed");
    // The consumer starts first, on an empty queue, in its own process.
    let get = Command::new(SHMQ)
        .args(["get", &q, "--until-closed"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start get");
    // Its stdout is read as it writes (a get waits for its reader to read each message).
    let reader = std::thread::spawn(move || get.wait_with_output());
    for m in ["x", "y", "z", "w", "v", "u", "t", "s", "r", "q"] {
        ok(&["put", &q, m]);
    }
    ok(&["close", &q]);
    let out = reader
        .join()
        .unwrap()
        .expect("get ends once the queue is closed");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "x\ny\nz\nw\nv\nu\nt\ns\nr\nq\n");
    assert_eq!(
        one_line(&out),
        format!("shmq: {} is closed and drained: took 10", &*q)
    );
    let out = shmq(&["get", &q, "--until-closed", "--count", "2"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "--count and --until-closed conflict"
    );
}

/// `shmq ARGS` run as user `nobody` (through setpriv) when we are root; as ourselves otherwise.
fn shmq_as_nobody(args: &[&str]) -> Output {
    let mut cmd = if rustix::process::geteuid().is_root() {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", SHMQ]);
        c
    } else {
        Command::new(SHMQ)
    };
    cmd.args(args);
    shmq_testkit::run_with_limit(&mut cmd, b"", MINUTE)
}

#[test]
fn an_os_error_is_printed_once() {
    let q = queue("eacces");
    // Root reads anything: a mode-0 segment read by another user is refused by the OS.
    std::fs::set_permissions(
        format!("/dev/shm/{}", &*q),
        std::os::unix::fs::PermissionsExt::from_mode(0o000),
    )
    .unwrap();
    let out = shmq_as_nobody(&["stat", &q]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(
        one_line(&out),
        format!("shmq: error: {}: Permission denied (os error 13)", &*q)
    );
}

#[test]
fn a_plain_file_is_not_a_shmq_segment() {
    // A short file and one longer than a header, neither written by shmq.
    for (tag, body) in [
        ("plain-short", vec![b'x'; 6]),
        ("plain-long", vec![b'x'; 4096]),
    ] {
        let f = name(tag);
        std::fs::write(format!("/dev/shm/{}", &*f), &body).unwrap();
        for cmd in [&["stat", &f][..], &["get", &f, "--nowait"], &["rm", &f]] {
            let out = shmq(cmd);
            assert_eq!(out.status.code(), Some(1), "{cmd:?}");
            let line = one_line(&out);
            assert_eq!(
                line,
                format!(
                    "shmq: error: {:?} is not a shmq segment (its first bytes are not a shmq header)",
                    &*f
                ),
                "{cmd:?}"
            );
        }
        assert!(
            std::path::Path::new("/dev/shm").join(&*f).exists(),
            "rm refused it"
        );
    }
}

#[test]
fn create_on_a_full_dev_shm_says_what_was_asked_and_what_is_free() {
    let _w = shmq_testkit::Watchdog::new("create on a full /dev/shm", MINUTE);
    let v = rustix::fs::statvfs("/dev/shm").expect("statvfs /dev/shm");
    let size = v.f_blocks * v.f_frsize;
    let slot: u64 = 64 << 20;
    // More than /dev/shm's whole size: tmpfs refuses it before reserving a page, so the test
    // never fills /dev/shm under other processes' feet.
    let capacity = size / slot + 2;
    // A queue segment is at most 64 GiB: a larger /dev/shm cannot be overflowed by one create.
    if capacity * slot >= 1 << 36 {
        eprintln!("/dev/shm holds {size} bytes: more than one queue can take, not tested");
        return;
    }
    let q = name("enospc");
    let cap = capacity.to_string();
    let slot_size = slot.to_string();
    let out = shmq(&[
        "create",
        "queue",
        &q,
        "--capacity",
        &cap,
        "--message-size",
        &slot_size,
    ]);
    assert_eq!(out.status.code(), Some(1));
    let line = one_line(&out);
    assert_eq!(line.matches("No space left on device").count(), 1, "{line}");
    assert!(
        line.starts_with(&format!(
            "shmq: error: {}: No space left on device (os error 28): ",
            &*q
        )) && line.contains(" asked, /dev/shm has ")
            && line.contains(" free of "),
        "{line}"
    );
    assert!(!std::path::Path::new("/dev/shm").join(&*q).exists());
}

#[test]
fn an_invalid_max_message_size_says_which_bound() {
    let q = name("maxsize");
    let cases: [(&[&str], &str); 3] = [
        (
            &["--message-size", "4096", "--max-message-size", "10"],
            "--max-message-size 10 is below the slot size (--message-size 4096): it must be at \
             least that",
        ),
        (
            &["--max-message-size", "99999999999999"],
            "--max-message-size 99999999999999 is above the largest message a queue carries \
             (68719476736 bytes)",
        ),
        (
            &["--message-size", "16", "--max-message-size", "100"],
            "--max-message-size 100 needs large messages, which need slots of 32 bytes or more \
             (--message-size 16 is smaller): raise --message-size or drop --max-message-size",
        ),
    ];
    for (args, said) in cases {
        let mut all = vec!["create", "queue", &q];
        all.extend_from_slice(args);
        let out = shmq(&all);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert_eq!(one_line(&out), format!("shmq: error: {said}"));
        assert!(!std::path::Path::new("/dev/shm").join(&*q).exists());
    }
}

#[test]
fn small_slots_say_that_large_messages_need_32_bytes() {
    let q = name("slot16");
    let out = ok(&["create", "queue", &q, "--message-size", "16"]);
    let err = stderr(&out);
    assert!(
        err.contains(
            "shmq: slots of 16 bytes cannot carry large messages (they need slots of 32 bytes \
             or more): the largest message is 16 bytes"
        ),
        "{err}"
    );
    let v: Value = serde_json::from_slice(&ok(&["stat", &q, "--json"]).stdout).unwrap();
    assert_eq!(v["max_message_size"], 16);
    // Slots of 32 bytes carry large messages: nothing to say.
    let q32 = name("slot32");
    let out = ok(&["create", "queue", &q32, "--message-size", "32"]);
    assert!(!stderr(&out).contains("cannot carry"), "{}", stderr(&out));
}

#[test]
fn gc_tells_only_a_non_root_user_to_run_as_root() {
    let p = format!("shmq-test-cli-says-roothint-{}-", std::process::id());
    let q = Name(format!("{p}q"));
    ok(&["create", "queue", &q, "--mode", "0644"]);
    let out = shmq_as_nobody(&["gc", &p, "--dry-run", "--older-than", "0s"]);
    assert!(out.status.success(), "{}", stderr(&out));
    if rustix::process::geteuid().is_root() {
        // As nobody, root's processes cannot be inspected: the hint is for this user.
        assert!(
            stderr(&out).contains("(run as root to see their processes)"),
            "{}",
            stderr(&out)
        );
    }
    let out = ok(&["gc", &p, "--dry-run", "--older-than", "0s"]);
    if rustix::process::geteuid().is_root() {
        assert!(!stderr(&out).contains("run as root"), "{}", stderr(&out));
    }
}

#[test]
fn ls_says_how_many_segments_it_could_not_read() {
    let f = name("ls-plain");
    std::fs::write(format!("/dev/shm/{}", &*f), b"not shmq's").unwrap();
    let out = ok(&["ls"]);
    assert!(!stdout(&out).contains(&*f));
    let err = stderr(&out);
    let line = err
        .lines()
        .find(|l| l.contains("could not be read as shmq segments"))
        .unwrap_or_else(|| panic!("ls says nothing of the file it skipped: {err:?}"));
    assert!(
        line.starts_with("shmq: ") && line.contains(" in /dev/shm "),
        "{line}"
    );
}

#[test]
fn usage_errors_exit_2_as_the_help_says() {
    let help = stdout(&ok(&["--help"]));
    assert!(help.contains("2 on a usage error"), "{help}");
    assert!(help.contains("status lines"), "{help}");
    let out = shmq(&["get", "--no-such-option"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn create_close_and_rm_report_on_stderr_and_print_no_data() {
    let q = name("streams-q");
    let d = name("streams-d");
    let l = name("streams-l");
    for (args, said) in [
        (
            vec!["create", "queue", &*q],
            format!("created queue {}", &*q),
        ),
        (vec!["create", "dict", &*d], format!("created dict {}", &*d)),
        (vec!["create", "lock", &*l], format!("created lock {}", &*l)),
        (vec!["close", &*q], format!("closed {}", &*q)),
        (vec!["rm", &*q, &*d, &*l], format!("removed {}", &*l)),
    ] {
        let out = ok(&args);
        assert!(
            out.stdout.is_empty(),
            "{args:?} wrote {:?} to stdout",
            stdout(&out)
        );
        assert!(stderr(&out).contains(&said), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn durations_take_minutes_hours_and_combinations() {
    let _w = shmq_testkit::Watchdog::new("durations", MINUTE);
    let q = queue("durations");
    ok(&["put", &q, "m"]);
    assert_eq!(stdout(&ok(&["get", &q, "--timeout", "1m30s"])), "m\n");
    ok(&["put", &q, "h"]);
    assert_eq!(stdout(&ok(&["get", &q, "--timeout", "2h"])), "h\n");
    ok(&["put", &q, "f"]);
    assert_eq!(stdout(&ok(&["get", &q, "--timeout", "1.5m"])), "f\n");
    // Two tasks taken, none done: join times out, and says so in the same units.
    let out = shmq(&["join", &q, "--timeout", "0m100ms"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        one_line(&out).contains("timed out after 100ms"),
        "{}",
        stderr(&out)
    );
    let out = shmq(&["get", &q, "--timeout", "5 fortnights"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("1m30s"), "{}", stderr(&out));
}

#[test]
fn stat_shows_max_message_size_mode_and_side_segments() {
    let q = name("stat");
    ok(&[
        "create",
        "queue",
        &q,
        "--message-size",
        "64",
        "--max-message-size",
        "1000000",
        "--mode",
        "0640",
    ]);
    let big = vec![b'b'; 100_000];
    let put = shmq_in(
        &["put", &q, "--raw"],
        &[&100_000u32.to_le_bytes()[..], &big].concat(),
    );
    assert!(put.status.success(), "{}", stderr(&put));
    let v: Value = serde_json::from_slice(&ok(&["stat", &q, "--json"]).stdout).unwrap();
    assert_eq!(v["max_message_size"], 1_000_000);
    assert_eq!(v["mode"], "0640");
    assert_eq!(v["side_segments"], 1);
    assert!(v["side_bytes"].as_u64().unwrap() >= 100_000, "{v}");
    let text = stdout(&ok(&["stat", &q]));
    for field in [
        "max_message_size  1000000",
        "mode              0640",
        "side_segments     1",
    ] {
        assert!(text.contains(field), "{field:?} in {text}");
    }
}

#[test]
fn dict_verbs_read_set_and_add() {
    let d = name("dict");
    ok(&["create", "dict", &d, "--capacity", "2"]);
    assert!(ok(&["dict", "set", &d, "a", "5"]).stdout.is_empty());
    assert_eq!(stdout(&ok(&["dict", "add", &d, "a", "3"])), "8\n");
    assert_eq!(stdout(&ok(&["dict", "add", &d, "b", "-2"])), "-2\n");
    assert_eq!(stdout(&ok(&["dict", "read", &d])), "a 8\nb -2\n");
    assert_eq!(stdout(&ok(&["dict", "read", &d, "a"])), "8\n");
    let v: Value = serde_json::from_slice(&ok(&["dict", "read", &d, "--json"]).stdout).unwrap();
    assert_eq!(v, serde_json::json!({"a": 8, "b": -2}));
    let out = shmq(&["dict", "read", &d, "zz"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        one_line(&out),
        format!("shmq: error: {} has no key \"zz\"", &*d)
    );
    // Full: says how to make a larger one.
    let out = shmq(&["dict", "set", &d, "c", "1"]);
    assert_eq!(out.status.code(), Some(1));
    let line = one_line(&out);
    assert_eq!(
        line,
        format!(
            "shmq: error: {}: the dict is full: all 2 entries hold a key: create a larger dict \
             (shmq create dict NEW-NAME --capacity 4) and move the keys there",
            &*d
        )
    );
    // A queue is not a dict.
    let q = queue("not-a-dict");
    let out = shmq(&["dict", "read", &q]);
    assert_eq!(
        one_line(&out),
        format!("shmq: error: {:?} is a queue, not a dict", &*q)
    );
}

#[test]
fn lock_status_says_free_or_held() {
    let l = name("lock");
    ok(&["create", "lock", &l]);
    assert_eq!(
        stdout(&ok(&["lock", "status", &l])),
        format!("{}: free\n", &*l)
    );
    let v: Value = serde_json::from_slice(&ok(&["lock", "status", &l, "--json"]).stdout).unwrap();
    assert_eq!(v["held"], false);
    // Held by this test's thread: status shows it without waiting for it.
    let lock = shmq_dict::Lock::open(&l).unwrap();
    let guard = lock.lock().unwrap();
    let said = stdout(&ok(&["lock", "status", &l]));
    assert!(
        said.starts_with(&format!("{}: held by thread ", &*l)),
        "{said}"
    );
    drop(guard);
    // A dict's lock.
    let d = name("lock-dict");
    ok(&["create", "dict", &d]);
    assert_eq!(
        stdout(&ok(&["lock", "status", &d])),
        format!("{}: free\n", &*d)
    );
}

#[test]
fn stat_shows_a_pipes_side_segments() {
    let p = name("stat-pipe");
    let opts = shmq::Options {
        capacity: 4,
        message_size: 64,
        ..Default::default()
    };
    let (a, b) = shmq::Pipe::create(&p, &opts).expect("create a pipe");
    // Waiting for end B: a large message in a side segment of the pipe.
    a.send(vec![7u8; 100_000]).expect("send");
    let v: Value = serde_json::from_slice(&ok(&["stat", &p, "--json"]).stdout).unwrap();
    assert_eq!(v["kind"], "pipe");
    assert_eq!(v["side_segments"], 1, "{v}");
    assert!(v["side_bytes"].as_u64().unwrap() >= 100_000, "{v}");
    assert_eq!(b.recv().expect("recv").len(), 100_000);
}
