//! The queue commands of `shmq` run as a user would, in real processes: `put --timeout` and
//! `--nowait`, `get`'s exit status when it gets fewer than `--count`, a `get` whose stdout
//! closes early (the message stays in the queue), `task-done` and `join`, the `--null` and
//! `--raw` framings, `ls` showing who uses a segment, `gc`, and the help text.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use shmq_testkit::Name;

const SHMQ: &str = env!("CARGO_BIN_EXE_shmq");
const MINUTE: Duration = Duration::from_secs(60);

/// A queue name unique to this process and call, removed on drop (also when a test fails).
fn name(tag: &str) -> Name {
    Name::with_prefix("shmq-test-cli", tag)
}

/// Runs `shmq ARGS` with `input` on stdin; a run still going after `limit` is killed and fails
/// the test.
fn shmq_in(args: &[&str], input: &[u8], limit: Duration) -> Output {
    shmq_testkit::run_with_limit(Command::new(SHMQ).args(args), input, limit)
}

fn shmq(args: &[&str]) -> Output {
    shmq_in(args, b"", MINUTE)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn queue(tag: &str, capacity: usize) -> Name {
    let name = name(tag);
    let cap = capacity.to_string();
    let out = shmq(&[
        "create",
        "queue",
        &name,
        "--capacity",
        &cap,
        "--message-size",
        "64",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    name
}

fn stat(name: &str) -> Value {
    let out = shmq(&["stat", name, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).expect("stat prints JSON")
}

#[test]
fn get_whose_stdout_closes_keeps_the_message_it_could_not_write_and_fails() {
    let q = queue("closed-stdout", 32);
    assert!(shmq(&["put", &q, "m0"]).status.success());
    let _w = shmq_testkit::Watchdog::new("get into a closed pipe", MINUTE);
    let mut get = Command::new(SHMQ)
        .args(["get", &q, "--count", "16"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start shmq get");
    let mut out = BufReader::new(get.stdout.take().expect("stdout"));
    let mut first = String::new();
    out.read_line(&mut first).expect("read the first line");
    assert_eq!(first, "m0\n");
    // The reader goes away (as `head -1` does) while get waits for its second message.
    drop(out);
    let more: String = (1..16).map(|i| format!("m{i}\n")).collect();
    let put = shmq_in(&["put", &q], more.as_bytes(), MINUTE);
    assert!(put.status.success(), "{}", stderr(&put));
    let status = get.wait().expect("wait for get");
    let mut err = String::new();
    std::io::Read::read_to_string(&mut get.stderr.take().expect("stderr"), &mut err).unwrap();
    assert_eq!(status.code(), Some(1), "a failed write is an error: {err}");
    assert!(err.contains("delivering message 2 of 16"), "{err}");
    // Nothing was lost: the 15 messages are still there, the unwritten one still first.
    assert_eq!(stat(&q)["len"], 15);
    let rest = shmq(&["get", &q, "--count", "15"]);
    assert!(rest.status.success(), "{}", stderr(&rest));
    assert_eq!(String::from_utf8_lossy(&rest.stdout), more);
}

#[test]
fn get_piped_into_head_loses_nothing_and_fails() {
    // Issue 9, bug 2, as reported: `shmq get NAME --count 16 | head -1`.
    let q = queue("head", 32);
    let all: String = (0..16).map(|i| format!("m{i}\n")).collect();
    let _w = shmq_testkit::Watchdog::new("get | head -1", MINUTE);
    for _ in 0..5 {
        assert!(
            shmq_in(&["put", &q], all.as_bytes(), MINUTE)
                .status
                .success()
        );
        let mut get = Command::new(SHMQ)
            .args(["get", &q, "--count", "16"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start shmq get");
        let head = Command::new("head")
            .arg("-1")
            .stdin(get.stdout.take().expect("stdout"))
            .output()
            .expect("run head");
        assert_eq!(String::from_utf8_lossy(&head.stdout), "m0\n");
        assert_eq!(get.wait().expect("wait for get").code(), Some(1));
        let rest = shmq(&["get", &q, "--count", "15"]);
        assert!(rest.status.success(), "{}", stderr(&rest));
        assert_eq!(String::from_utf8_lossy(&rest.stdout), all[3..]);
    }
}

#[test]
fn get_with_fewer_messages_than_count_prints_them_and_exits_3_without_an_error() {
    let q = queue("partial", 8);
    assert!(shmq_in(&["put", &q], b"a\nb\nc\n", MINUTE).status.success());
    let out = shmq(&["get", &q, "--count", "5", "--timeout", "200ms"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "a\nb\nc\n");
    assert!(!stderr(&out).contains("error"), "{}", stderr(&out));
    // Nothing at all before the timeout is the same status; a closed, drained queue too.
    assert_eq!(
        shmq(&["get", &q, "--timeout", "50ms"]).status.code(),
        Some(3)
    );
    assert!(shmq(&["close", &q]).status.success());
    assert_eq!(shmq(&["get", &q]).status.code(), Some(3));
    // All of them: 0.
    let q2 = queue("complete", 8);
    assert!(shmq_in(&["put", &q2], b"a\nb\n", MINUTE).status.success());
    assert_eq!(
        shmq(&["get", &q2, "--count", "2", "--timeout", "1s"])
            .status
            .code(),
        Some(0)
    );
}

#[test]
fn put_into_a_full_queue_gives_up_with_nowait_and_after_its_timeout() {
    let q = queue("full", 1);
    assert!(shmq(&["put", &q, "first"]).status.success());
    let out = shmq(&["put", &q, "second", "--nowait"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("is full"), "{}", stderr(&out));
    let start = Instant::now();
    let out = shmq(&["put", &q, "second", "--timeout", "200ms"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(start.elapsed() >= Duration::from_millis(200));
    assert!(stderr(&out).contains("stayed full"), "{}", stderr(&out));
    // Not a terminal: no "waiting" chatter on stderr.
    assert!(!stderr(&out).contains("waiting"), "{}", stderr(&out));
    assert_eq!(stat(&q)["len"], 1);
    // From stdin, the count of what went in is in the error.
    let out = shmq_in(&["put", &q, "--nowait"], b"x\ny\n", MINUTE);
    assert!(
        stderr(&out).contains("0 message(s) put before this one"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn raw_and_null_framings_carry_empty_and_binary_messages_both_ways() {
    let q = queue("framing", 8);
    let msgs: [&[u8]; 4] = [b"", b"two\nlines", b"\0\xff\0", b"last"];
    let mut raw = Vec::new();
    for m in msgs {
        raw.extend_from_slice(&(m.len() as u32).to_le_bytes());
        raw.extend_from_slice(m);
    }
    let put = shmq_in(&["put", &q, "--raw"], &raw, MINUTE);
    assert!(put.status.success(), "{}", stderr(&put));
    assert_eq!(stat(&q)["len"], 4);
    let got = shmq(&["get", &q, "--raw", "--count", "4"]);
    assert!(got.status.success(), "{}", stderr(&got));
    assert_eq!(got.stdout, raw);

    let put = shmq_in(&["put", &q, "--null"], b"x\0\0y z\n\0", MINUTE);
    assert!(put.status.success(), "{}", stderr(&put));
    assert_eq!(stat(&q)["len"], 3);
    let got = shmq(&["get", &q, "-0", "--count", "3"]);
    assert_eq!(got.stdout, b"x\0\0y z\n\0");

    // A frame cut short is an error, and the complete frames before it went in.
    let out = shmq_in(&["put", &q, "--raw"], b"\x01\0\0\0a\x05\0\0\0ab", MINUTE);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("ends inside"), "{}", stderr(&out));
    assert_eq!(stat(&q)["len"], 1);
    assert!(
        !shmq(&["put", &q, "--raw", "--null", "x"]).status.success(),
        "one framing at a time"
    );
}

#[test]
fn task_done_and_join_from_the_command_line() {
    let q = queue("tasks", 8);
    assert!(shmq_in(&["put", &q], b"a\nb\nc\n", MINUTE).status.success());
    assert_eq!(stat(&q)["unfinished"], 3);
    assert_eq!(
        shmq(&["join", &q, "--timeout", "100ms"]).status.code(),
        Some(3),
        "tasks are unfinished"
    );
    let out = shmq(&["get", &q, "--count", "2", "--task-done"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "a\nb\n");
    assert_eq!(stat(&q)["unfinished"], 1);
    assert!(shmq(&["get", &q]).status.success());
    assert_eq!(stat(&q)["unfinished"], 1, "taken but not done");
    assert!(shmq(&["task-done", &q]).status.success());
    assert_eq!(stat(&q)["unfinished"], 0);
    assert_eq!(shmq(&["join", &q]).status.code(), Some(0));
    let out = shmq(&["task-done", &q]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no unfinished task"),
        "{}",
        stderr(&out)
    );
}

/// `ls --json`'s row for `name`.
fn ls_row(name: &str) -> Value {
    let out = shmq(&["ls", "--json"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("ls prints JSON"))
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("ls does not list {name}"))
}

#[test]
fn ls_shows_who_uses_a_segment_and_gc_removes_only_unused_ones() {
    let prefix = format!("shmq-test-cli-gc-{}-", std::process::id());
    let unused = Name(format!("{prefix}unused"));
    let used = Name(format!("{prefix}used"));
    for n in [&unused, &used] {
        let out = shmq(&["create", "queue", n, "--capacity", "2"]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let _w = shmq_testkit::Watchdog::new("ls and gc", MINUTE);
    // A process that maps `used` and waits in get.
    let mut holder = shmq_testkit::Proc::spawn(Command::new(SHMQ).args(["get", &used]), "shmq get")
        .expect("start shmq get");
    let pid = u64::from(holder.pid());
    assert!(
        shmq_testkit::eventually(MINUTE, || ls_row(&used)["users"]
            .as_array()
            .is_some_and(|u| u.iter().any(|p| p.as_u64() == Some(pid)))),
        "ls never showed the holder"
    );
    assert_eq!(ls_row(&unused)["users"], serde_json::json!([]));
    let table = String::from_utf8_lossy(&shmq(&["ls"]).stdout).into_owned();
    let line = table.lines().find(|l| l.starts_with(&*used)).unwrap();
    assert!(line.contains("1 process"), "{line}");
    assert!(!table.contains(" gone"), "{table}");

    let dry = shmq(&["gc", &prefix, "--dry-run", "--older-than", "0s"]);
    assert!(dry.status.success(), "{}", stderr(&dry));
    assert!(dry.stdout.is_empty(), "status lines go to stderr");
    let said = stderr(&dry);
    assert!(
        said.contains(&format!("would remove {}", &*unused))
            && !said.contains(&format!("would remove {}", &*used)),
        "{said}"
    );
    assert!(std::path::Path::new("/dev/shm").join(&*unused).exists());

    let young = shmq(&["gc", &prefix]);
    assert!(young.status.success());
    assert!(
        std::path::Path::new("/dev/shm").join(&*unused).exists(),
        "the default grace period keeps a segment made a moment ago"
    );

    let gc = shmq(&["gc", &prefix, "--older-than", "0s"]);
    assert!(gc.status.success(), "{}", stderr(&gc));
    assert!(!std::path::Path::new("/dev/shm").join(&*unused).exists());
    assert!(std::path::Path::new("/dev/shm").join(&*used).exists());
    assert!(stderr(&gc).contains("in use"), "{}", stderr(&gc));
    holder.kill9();
}

#[test]
fn help_prints_each_default_once_and_create_offers_no_pipe() {
    for sub in [
        &["demo"][..],
        &["bench"],
        &["get"],
        &["put"],
        &["gc"],
        &["create", "queue"],
        &["create", "dict"],
    ] {
        let mut args = sub.to_vec();
        args.push("--help");
        let out = shmq(&args);
        assert!(out.status.success());
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            assert!(
                !(line.contains("(default") && line.contains("[default:")),
                "{sub:?}: {line}"
            );
        }
    }
    let help = String::from_utf8_lossy(&shmq(&["create", "--help"]).stdout).into_owned();
    assert!(
        !help.lines().any(|l| l.trim_start().starts_with("pipe")),
        "{help}"
    );
    for text in [shmq(&["--help"]).stdout, shmq(&["demo", "--help"]).stdout] {
        assert!(
            !String::from_utf8_lossy(&text).contains("seed"),
            "internal jargon in help"
        );
    }
    let mut pipe = Command::new(SHMQ)
        .args(["create", "pipe", "x"])
        .stderr(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    assert!(!pipe.wait().unwrap().success());
    let _ = std::io::stdout().flush();
}

#[test]
fn put_into_a_full_queue_says_it_waits_when_stderr_is_a_terminal() {
    let q = queue("full-tty", 1);
    assert!(shmq(&["put", &q, "first"]).status.success());
    // script(1) (util-linux) runs the command on a pseudo-terminal.
    let cmd = format!("{SHMQ} put {} second --timeout 300ms", &*q);
    let out = shmq_testkit::run_with_limit(
        Command::new("script").args(["-qec", &cmd, "/dev/null"]),
        b"",
        MINUTE,
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("is full (capacity 1): waiting for room"),
        "{said}"
    );
    assert!(said.contains("stayed full until the timeout"), "{said}");
    assert_eq!(stat(&q)["len"], 1);
}

/// `shmq put` from stdin and `shmq get` carry messages of any size: a 20 MiB message without a
/// newline through 64-byte slots, byte for byte, and with `--raw`; the side segment is gone
/// once it is taken.
#[test]
fn put_and_get_carry_a_message_of_any_size() {
    let q = queue("large", 4);
    let big: Vec<u8> = (0..20u32 << 20).map(|i| (i % 251) as u8 | 1).collect();
    let big: Vec<u8> = big
        .into_iter()
        .map(|b| if b == b'\n' { b'.' } else { b })
        .collect();
    let put = shmq_in(&["put", &q], &big, MINUTE);
    assert!(put.status.success(), "{}", stderr(&put));
    assert_eq!(stat(&q)["len"], 1);
    assert_eq!(shmq_testkit::big::side_segments(&q).len(), 1);
    let got = shmq(&["get", &q]);
    assert!(got.status.success(), "{}", stderr(&got));
    assert_eq!(got.stdout.len(), big.len() + 1);
    assert!(
        got.stdout[..big.len()] == big[..],
        "the message comes back whole"
    );
    assert!(shmq_testkit::big::side_segments(&q).is_empty());

    let mut raw = (big.len() as u32).to_le_bytes().to_vec();
    raw.extend_from_slice(&big);
    let put = shmq_in(&["put", &q, "--raw"], &raw, MINUTE);
    assert!(put.status.success(), "{}", stderr(&put));
    let got = shmq(&["get", &q, "--raw"]);
    assert!(got.stdout == raw, "raw framing of a large message");
}

#[test]
fn gc_removes_orphaned_anonymous_queues_and_keeps_held_ones() {
    // What the holders of an anonymous queue killed with a large message inside leave: its
    // hidden anchor (nobody locks it any more) and a side segment. A held queue's anchor is
    // locked shared by its holders, as this test's lock does.
    let shm = std::path::Path::new("/dev/shm");
    let base = format!(".shmq-anon-7e57{:012x}", std::process::id());
    let (orphan, held) = (format!("{base}0"), format!("{base}1"));
    let files = |a: &str| [shm.join(a), shm.join(format!("{a}.big.1.2.3"))];
    for a in [&orphan, &held] {
        let [anchor, side] = files(a);
        std::fs::write(anchor, b"").unwrap();
        std::fs::write(side, vec![5u8; 3000]).unwrap();
    }
    let lock = std::fs::File::open(shm.join(&held)).unwrap();
    lock.lock_shared().unwrap();
    let _w = shmq_testkit::Watchdog::new("gc of anonymous queues", MINUTE);

    let dry = shmq(&["gc", &base, "--dry-run"]);
    assert!(dry.status.success(), "{}", stderr(&dry));
    assert!(dry.stdout.is_empty(), "status lines go to stderr");
    let said = stderr(&dry);
    assert!(
        said.contains(&format!(
            "would remove {orphan} (orphaned anonymous queue, 3000 bytes"
        )),
        "{said}"
    );
    assert!(!said.contains(&held), "{said}");
    assert!(
        files(&orphan).iter().all(|f| f.exists()),
        "a dry run removes nothing"
    );

    let gc = shmq(&["gc", &base]);
    assert!(gc.status.success(), "{}", stderr(&gc));
    assert!(gc.stdout.is_empty(), "status lines go to stderr");
    let said = stderr(&gc);
    assert!(said.contains(&format!("removed {orphan}")), "{said}");
    assert!(files(&orphan).iter().all(|f| !f.exists()));
    assert!(
        files(&held).iter().all(|f| f.exists()),
        "a held queue stays"
    );

    drop(lock);
    let gc = shmq(&["gc", &base]);
    assert!(stderr(&gc).contains(&format!("removed {held}")));
    assert!(files(&held).iter().all(|f| !f.exists()));
}
