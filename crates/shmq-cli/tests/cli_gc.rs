//! `shmq gc` run as a user would, on segments that no process maps: it removes those whose
//! removal loses nothing (an empty queue, a closed and drained one, a keyless dict, a free lock,
//! a pipe both of whose ends left) and keeps, listing what they hold, a queue with messages
//! waiting or tasks unfinished (its large messages' side segments with it), a dict with keys
//! and a lock whose holder died, unless `--discard-data` is given; a pipe whose end is being
//! handed to a process is kept even then. Each test works under a prefix of its own and passes
//! it to `gc`, so that it touches nothing else in `/dev/shm`. The tests that need a segment
//! made (or a lock held) by another process start this test binary running only themselves,
//! with a variable set that makes them play that process.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use shmq_testkit::Name;

const SHMQ: &str = env!("CARGO_BIN_EXE_shmq");
const MINUTE: Duration = Duration::from_secs(60);

/// Runs `shmq ARGS` with `input` on stdin; a run still going after a minute fails the test.
fn shmq_in(args: &[&str], input: &[u8]) -> Output {
    shmq_testkit::run_with_limit(Command::new(SHMQ).args(args), input, MINUTE)
}

fn shmq(args: &[&str]) -> Output {
    shmq_in(args, b"")
}

/// Runs `shmq ARGS`, which must succeed; returns (stdout, stderr).
fn ok(args: &[&str]) -> (String, String) {
    let out = shmq(args);
    let (o, e) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "shmq {args:?}: {e}");
    (o, e)
}

/// Runs `shmq gc ARGS`, which must succeed and, like every status line, say everything on
/// stderr (stdout stays empty); returns (the lines about what it removes, the other lines:
/// what it keeps and the summary).
fn gc(args: &[&str]) -> (String, String) {
    let (out, err) = ok(args);
    assert!(out.is_empty(), "gc wrote to stdout: {out}");
    let (mut removes, mut rest) = (String::new(), String::new());
    for line in err.lines() {
        let removal = (line.starts_with("removed ") || line.starts_with("would remove "))
            && !line.contains(" unused segment(s),");
        let to = if removal { &mut removes } else { &mut rest };
        to.push_str(line);
        to.push('\n');
    }
    (removes, rest)
}

/// The prefix of one test's segments: `shmq-test-cli-gcdata-<tag>-<pid>-`.
fn prefix(tag: &str) -> String {
    format!("shmq-test-cli-gcdata-{tag}-{}-", std::process::id())
}

fn path(name: &str) -> PathBuf {
    Path::new("/dev/shm").join(name)
}

fn exists(name: &str) -> bool {
    path(name).exists()
}

/// Dates the segment back an hour, past `gc`'s default grace period of 10 s, so that a plain
/// `shmq gc` judges it as it would a segment left overnight.
fn age(name: &str) {
    let f = std::fs::File::options()
        .write(true)
        .open(path(name))
        .expect("open the segment's file");
    f.set_modified(SystemTime::now() - Duration::from_secs(3600))
        .expect("set its modification time");
}

/// A queue made by `shmq create` (whose process then exits, as between two commands).
fn queue(name: &str) {
    ok(&[
        "create",
        "queue",
        name,
        "--capacity",
        "4",
        "--message-size",
        "64",
    ]);
}

#[test]
fn gc_keeps_a_queue_holding_a_message_until_told_to_discard_it() {
    let _w = shmq_testkit::Watchdog::new("gc of a queue with a message", MINUTE);
    let p = prefix("msg");
    let (jobs, empty) = (Name(format!("{p}jobs")), Name(format!("{p}empty")));
    queue(&jobs);
    queue(&empty);
    ok(&["put", &jobs, "important unread job"]);
    age(&jobs);
    age(&empty);

    // A plain gc, the segments an hour old: the empty queue goes, the one with a message stays,
    // saying why and how to remove it.
    let (out, err) = gc(&["gc", &p]);
    assert!(out.contains(&format!("removed {}", &*empty)), "{out}");
    assert!(!out.contains(&*jobs), "{out}");
    assert!(!exists(&empty), "an empty unused queue is removed");
    assert!(exists(&jobs), "a queue holding a message is kept");
    assert!(
        err.contains(&format!("kept {} (queue", &*jobs))
            && err.contains("it holds 1 message waiting; pass --discard-data to remove it"),
        "{err}"
    );
    assert!(err.contains("1 holding data"), "{err}");

    // So does gc with no grace period.
    let (out, err) = gc(&["gc", &p, "--older-than", "0s"]);
    assert!(!out.contains(&*jobs), "{out}");
    assert!(exists(&jobs));
    assert!(err.contains("1 message waiting"), "{err}");

    // A dry run says what is kept and, with the flag, what would be lost; it removes nothing.
    let (out, err) = gc(&["gc", &p, "--dry-run"]);
    assert!(out.is_empty(), "{out}");
    assert!(
        err.contains(&format!("would keep {} (queue", &*jobs)) && err.contains("1 message"),
        "{err}"
    );
    let (out, _) = gc(&["gc", &p, "--dry-run", "--discard-data"]);
    assert!(
        out.contains(&format!("would remove {} (queue", &*jobs))
            && out.contains("discarding 1 message waiting")
            && !out.contains("task"),
        "{out}"
    );
    assert!(exists(&jobs), "a dry run removes nothing");

    // The message is still there, whole.
    let (got, _) = ok(&["get", &jobs, "--timeout", "5s"]);
    assert_eq!(got, "important unread job\n");

    // Named with the flag, a queue with a message goes, and gc says what it discarded (the
    // message taken above, never marked done, is an unfinished task).
    ok(&["put", &jobs, "second"]);
    let (out, _) = gc(&["gc", &p, "--older-than", "0s", "--discard-data"]);
    assert!(
        out.contains(&format!("removed {} (queue", &*jobs))
            && out.contains("discarding 1 message waiting, 1 task taken and not marked done"),
        "{out}"
    );
    assert!(!exists(&jobs));
}

#[test]
fn gc_keeps_a_queue_with_unfinished_tasks_and_removes_a_closed_drained_one() {
    let _w = shmq_testkit::Watchdog::new("gc of queues with tasks", MINUTE);
    let p = prefix("tasks");
    let (tasks, drained) = (Name(format!("{p}tasks")), Name(format!("{p}drained")));
    queue(&tasks);
    queue(&drained);
    // JoinableQueue use: two tasks taken, one marked done; no message waits.
    ok(&["put", &tasks, "t1"]);
    ok(&["put", &tasks, "t2"]);
    ok(&["get", &tasks, "--count", "2", "--timeout", "5s"]);
    ok(&["task-done", &tasks]);
    // Every task done, the queue closed and drained: nothing left in it.
    ok(&["put", &drained, "d"]);
    ok(&["get", &drained, "--task-done", "--timeout", "5s"]);
    ok(&["close", &drained]);

    let (out, err) = gc(&["gc", &p, "--older-than", "0s"]);
    assert!(out.contains(&format!("removed {}", &*drained)), "{out}");
    assert!(!exists(&drained));
    assert!(exists(&tasks), "a queue with an unfinished task is kept");
    assert!(
        err.contains(&format!("kept {} (queue", &*tasks))
            && err.contains("it holds 1 task taken and not marked done;")
            && !err.contains("message waiting"),
        "{err}"
    );
    // Its task can still be marked done, and its join returns; then nothing is left in it.
    ok(&["task-done", &tasks]);
    ok(&["join", &tasks, "--timeout", "5s"]);
    let (out, _) = gc(&["gc", &p, "--older-than", "0s"]);
    assert!(out.contains(&format!("removed {}", &*tasks)), "{out}");
    assert!(!exists(&tasks));
}

#[test]
fn gc_keeps_a_dict_with_keys_and_removes_an_empty_one() {
    let _w = shmq_testkit::Watchdog::new("gc of dicts", MINUTE);
    let p = prefix("dict");
    let (full, empty) = (Name(format!("{p}keys")), Name(format!("{p}empty")));
    for d in [&full, &empty] {
        ok(&["create", "dict", d, "--capacity", "8"]);
    }
    {
        // This process maps it only for the insert.
        let d = shmq_dict::SharedDict::open(&full).expect("open the dict");
        d.insert("counter", 41).expect("insert");
    }
    let (out, err) = gc(&["gc", &p, "--older-than", "0s"]);
    assert!(out.contains(&format!("removed {}", &*empty)), "{out}");
    assert!(!exists(&empty));
    assert!(exists(&full), "a dict with a key is kept");
    assert!(
        err.contains(&format!("kept {} (dict", &*full)) && err.contains("it holds 1 key;"),
        "{err}"
    );
    let d = shmq_dict::SharedDict::open(&full).expect("the dict is still there");
    assert_eq!(d.get("counter").expect("get"), Some(41));
    drop(d);

    let (out, _) = gc(&["gc", &p, "--older-than", "0s", "--discard-data"]);
    assert!(
        out.contains(&format!("removed {} (dict", &*full)) && out.contains("discarding 1 key"),
        "{out}"
    );
    assert!(!exists(&full));
}

#[test]
fn gc_keeps_a_large_message_with_its_queue_and_removes_them_together() {
    let _w = shmq_testkit::Watchdog::new("gc of a queue with a large message", MINUTE);
    let p = prefix("large");
    let q = Name(format!("{p}big"));
    queue(&q);
    // Larger than the 64-byte slot: it lives in a hidden side segment `<q>.big.*`.
    let big: Vec<u8> = (0..100_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let put = shmq_in(&["put", &q], &big);
    assert!(
        put.status.success(),
        "{}",
        String::from_utf8_lossy(&put.stderr)
    );
    let sides = shmq_testkit::big::side_segments(&q);
    assert_eq!(sides.len(), 1, "{sides:?}");

    let (out, err) = gc(&["gc", &p, "--older-than", "0s"]);
    assert!(!out.contains(&*q), "{out}");
    assert!(exists(&q), "the queue is kept");
    assert!(
        sides.iter().all(|s| exists(s)),
        "its side segment is kept with it"
    );
    assert!(
        err.contains(&format!("kept {} (queue", &*q))
            && err.contains("in 1 side segment)")
            && err.contains("it holds 1 message waiting"),
        "{err}"
    );
    let (out, _) = gc(&[
        "gc",
        &p,
        "--older-than",
        "0s",
        "--dry-run",
        "--discard-data",
    ]);
    assert!(
        out.contains(&format!("would remove {} (queue", &*q)) && out.contains("in 1 side segment)"),
        "{out}"
    );
    assert!(exists(&q) && sides.iter().all(|s| exists(s)));

    // The message comes back whole.
    let got = shmq(&["get", &q, "--timeout", "5s"]);
    assert!(got.status.success());
    assert!(got.stdout.len() == big.len() + 1 && got.stdout[..big.len()] == big[..]);

    // Put again, then removed with the flag: the queue and its side segments together.
    let put = shmq_in(&["put", &q], &big);
    assert!(put.status.success());
    assert!(!shmq_testkit::big::side_segments(&q).is_empty());
    let (out, _) = gc(&["gc", &p, "--older-than", "0s", "--discard-data"]);
    assert!(
        out.contains(&format!("removed {} (queue", &*q)) && out.contains("discarding 1 message"),
        "{out}"
    );
    assert!(!exists(&q));
    assert_eq!(
        shmq_testkit::big::side_segments(&q),
        Vec::<String>::new(),
        "its side segments go with it"
    );
}

/// Set in the process that `gc_keeps_a_lock_whose_holder_died_and_removes_a_free_one` starts
/// (this test binary, running that test alone): the name of the lock it takes and is killed
/// holding.
const HOLD_ENV: &str = "SHMQ_TEST_GC_HOLD_LOCK";

/// In that process: takes the lock, says so and waits to be killed.
fn hold_lock(name: &str) {
    let lock = shmq_dict::Lock::open(name).expect("open the lock");
    let _held = lock.lock().expect("take the lock");
    println!("\nheld");
    std::thread::sleep(MINUTE);
}

/// This test binary, running only `test` (which sees `env` set and plays its helper).
fn helper(test: &str, env: &str, value: &str, what: &str) -> shmq_testkit::Proc {
    let exe = std::env::current_exe().expect("this test binary");
    shmq_testkit::Proc::spawn(
        Command::new(exe)
            .args([test, "--exact", "--nocapture"])
            .env(env, value),
        what,
    )
    .unwrap_or_else(|e| panic!("start the {what}: {e}"))
}

#[test]
fn gc_keeps_a_lock_whose_holder_died_and_removes_a_free_one() {
    if let Ok(name) = std::env::var(HOLD_ENV) {
        return hold_lock(&name);
    }
    let _w = shmq_testkit::Watchdog::new("gc of locks", MINUTE);
    let p = prefix("lock");
    let (orphaned, free) = (Name(format!("{p}orphaned")), Name(format!("{p}free")));
    for l in [&orphaned, &free] {
        ok(&["create", "lock", l]);
    }
    let mut holder = helper(
        "gc_keeps_a_lock_whose_holder_died_and_removes_a_free_one",
        HOLD_ENV,
        &orphaned,
        "lock holder",
    );
    holder.expect("held").expect("the holder takes the lock");
    holder.kill9();
    assert!(
        matches!(
            shmq_dict::Lock::inspect(&orphaned),
            Ok(shmq::substrate::sync::LockState::Held {
                owner_alive: false,
                ..
            })
        ),
        "{:?}",
        shmq_dict::Lock::inspect(&orphaned)
    );

    let (out, err) = gc(&["gc", &p, "--older-than", "0s"]);
    assert!(out.contains(&format!("removed {}", &*free)), "{out}");
    assert!(!exists(&free), "a free lock holds nothing");
    assert!(exists(&orphaned), "a lock whose holder died is kept");
    assert!(
        err.contains(&format!("kept {} (lock", &*orphaned))
            && err.contains("which died (its next locker is told so)"),
        "{err}"
    );
    // Unchanged: its next locker will still be told that the holder died.
    assert!(
        matches!(
            shmq_dict::Lock::inspect(&orphaned),
            Ok(shmq::substrate::sync::LockState::Held {
                owner_alive: false,
                ..
            })
        ),
        "gc changed the lock"
    );
    let (out, _) = gc(&[
        "gc",
        &p,
        "--older-than",
        "0s",
        "--dry-run",
        "--discard-data",
    ]);
    assert!(
        out.contains(&format!("would remove {} (lock", &*orphaned))
            && out.contains("discarding a lock, held by thread"),
        "{out}"
    );
    let (out, _) = gc(&["gc", &p, "--older-than", "0s", "--discard-data"]);
    assert!(
        out.contains(&format!("removed {} (lock", &*orphaned)),
        "{out}"
    );
    assert!(!exists(&orphaned));
}

/// Set in the process that
/// `gc_keeps_a_pipe_end_being_handed_over_and_removes_a_pipe_both_ends_left` starts: the names
/// of the two pipes it makes, separated by a comma.
const PIPES_ENV: &str = "SHMQ_TEST_GC_MAKE_PIPES";

/// In that process: makes two named pipes (a pipe is made by a program that holds its ends)
/// and exits. Each gets one message from A to B; end B of the first is handed off (a process
/// will attach to it), both ends of the second are closed.
fn make_pipes(names: &str) {
    let (handed, left) = names.split_once(',').expect("two names");
    let opts = shmq::Options {
        capacity: 4,
        message_size: 16,
        ..Default::default()
    };
    let (a, b) = shmq::Pipe::create(handed, &opts).expect("create a pipe");
    a.send(b"for the child").expect("send");
    let _token = b.hand_off(MINUTE).expect("hand end B off");
    drop((a, b));
    let (a, b) = shmq::Pipe::create(left, &opts).expect("create a pipe");
    a.send(b"never read").expect("send");
    drop((a, b));
    println!("\nmade");
}

#[test]
fn gc_keeps_a_pipe_end_being_handed_over_and_removes_a_pipe_both_ends_left() {
    if let Ok(names) = std::env::var(PIPES_ENV) {
        return make_pipes(&names);
    }
    let _w = shmq_testkit::Watchdog::new("gc of pipes", MINUTE);
    let p = prefix("pipe");
    let (handed, left) = (Name(format!("{p}handed")), Name(format!("{p}left")));
    let maker = helper(
        "gc_keeps_a_pipe_end_being_handed_over_and_removes_a_pipe_both_ends_left",
        PIPES_ENV,
        &format!("{},{}", &*handed, &*left),
        "pipe maker",
    );
    let said = maker.finish_lines();
    assert!(said.iter().any(|l| l == "made"), "{said:?}");

    let (out, err) = gc(&["gc", &p, "--older-than", "0s"]);
    assert!(
        out.contains(&format!("removed {} (pipe, ", &*left))
            && out.contains("), with 1 message that no end can receive any more"),
        "{out}"
    );
    assert!(!exists(&left), "a pipe both of whose ends left is removed");
    assert!(
        exists(&handed),
        "a pipe with an end being handed over is kept"
    );
    assert!(
        err.contains(&format!("kept {} (pipe", &*handed))
            && err.contains("end B is being handed to a process that has not attached yet"),
        "{err}"
    );
    // Even with --discard-data: a process is about to attach.
    let (out, err) = gc(&[
        "gc",
        &p,
        "--older-than",
        "0s",
        "--discard-data",
        "--dry-run",
    ]);
    assert!(out.is_empty(), "{out}");
    assert!(
        err.contains(&format!("would keep {} (pipe", &*handed)),
        "{err}"
    );
    // The process it was handed to attaches and reads what waited for it.
    let b = shmq::PipeEnd::open(&handed, shmq::End::B).expect("attach end B");
    assert_eq!(b.recv().expect("recv"), b"for the child");
    drop(b);
    // Every end gone now: nothing anyone can use is left.
    let (out, _) = gc(&["gc", &p, "--older-than", "0s"]);
    assert!(
        out.contains(&format!("removed {} (pipe", &*handed)),
        "{out}"
    );
    assert!(!exists(&handed));
}
