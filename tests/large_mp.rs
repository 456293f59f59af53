//! Large messages (over the slot size) across real processes: every put and get path, pipes,
//! peek and commit, and SIGKILL in the middle of a large put, of a large get and of a peek and
//! commit (no loss, no duplicate, no side segment left in `/dev/shm`).

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{Name, Watchdog, eventually, finish_all, spawn};
use shmq::{Options, Pipe, Queue};
use shmq_testkit::big;

/// 4 KiB slots, messages up to 64 MiB.
fn opts(capacity: usize) -> Options {
    Options {
        capacity,
        message_size: 4096,
        max_message_size: 64 << 20,
        ..Default::default()
    }
}

fn side_segments(name: &str) -> Vec<String> {
    big::side_segments(name)
}

/// Runs `producers` producers of `count` messages (body up to `max`) on put path `put` and
/// `consumers` consumers on get path `get`; checks that every message arrived once and whole,
/// and that nothing is left in `/dev/shm` after the unlink.
fn run_paths(tag: &str, put: &str, get: &str, producers: u32, consumers: usize, count: u32) {
    let _w = Watchdog::new("large paths", Duration::from_secs(120));
    let name = Name::new(tag);
    let q = Queue::create(&name, &opts(8)).unwrap();
    let max = (8 << 20).to_string();
    let cons: Vec<_> = (0..consumers)
        .map(|_| spawn("big-consumer", &[&name, get]))
        .collect();
    let prods: Vec<_> = (0..producers)
        .map(|id| {
            spawn(
                "big-producer",
                &[&name, &id.to_string(), &count.to_string(), &max, put],
            )
        })
        .collect();
    finish_all(prods);
    q.close().unwrap();
    let mut seen = HashSet::new();
    let mut large = 0;
    for out in finish_all(cons) {
        for line in String::from_utf8(out).unwrap().lines() {
            let (key, len) = line.split_once(' ').unwrap();
            assert!(seen.insert(key.to_owned()), "{key} delivered twice");
            if len.parse::<usize>().unwrap() > 4096 {
                large += 1;
            }
        }
    }
    assert_eq!(seen.len(), (producers * count) as usize, "messages lost");
    assert!(large > 0, "the run carried large messages");
    assert!(q.is_empty());
    assert!(
        side_segments(&name).is_empty(),
        "taken messages leave no side segment"
    );
    Queue::unlink(&name).unwrap();
    assert!(side_segments(&name).is_empty());
}

#[test]
fn put_and_get_of_large_messages_deliver_each_once_and_whole() {
    run_paths("big-put-get", "put", "get", 3, 2, 60);
}

#[test]
fn get_with_reads_large_messages_in_place() {
    run_paths("big-with", "put", "with", 2, 2, 60);
}

#[test]
fn get_into_and_batches_carry_large_messages() {
    run_paths("big-into", "many", "into", 2, 2, 60);
    run_paths("big-many", "many", "many", 2, 2, 60);
}

#[test]
fn try_and_timeout_paths_carry_large_messages() {
    run_paths("big-try", "try", "try", 2, 2, 40);
    run_paths("big-timeout", "timeout", "timeout", 2, 2, 40);
}

/// A pipe carries large messages both ways: the parent sends on end A, a child echoes every
/// message back from end B.
#[test]
fn pipes_carry_large_messages_both_ways() {
    let _w = Watchdog::new("large pipe", Duration::from_secs(60));
    let name = Name::new("big-pipe");
    let (a, b) = Pipe::create(&name, &opts(4)).unwrap();
    let mut echo = spawn("big-pipe-echo", &[&name]);
    assert_eq!(echo.line(), "ready");
    drop(b);
    let sizes = [0usize, 5000, 1 << 20, 16 << 20, 100, 3 << 20];
    for (i, &n) in sizes.iter().enumerate() {
        let m = big::message(0, i as u32, n);
        a.send(&m).unwrap();
        let back = a.recv().unwrap();
        assert_eq!(big::check(&back), Some((0, i as u32)));
        assert_eq!(back.len(), m.len());
    }
    let mut buf = vec![0u8; 100];
    a.send(big::message(0, 99, 10_000)).unwrap();
    assert!(a.poll(Duration::from_secs(30)).unwrap());
    assert!(
        a.recv_into(&mut buf).is_err(),
        "a buffer too small keeps the message"
    );
    assert_eq!(big::check(&a.recv().unwrap()), Some((0, 99)));
    drop(a);
    finish_all(vec![echo]);
    Pipe::unlink(&name).unwrap();
    assert!(side_segments(&name).is_empty());
}

/// SIGKILL while a producer writes a 512 MiB message: nothing becomes visible, and the side
/// segment it left is removed by the next open (its creator is dead, no slot names it).
#[test]
fn a_producer_killed_while_writing_a_large_message_leaves_nothing() {
    let _w = Watchdog::new("large put kill", Duration::from_secs(120));
    let name = Name::new("big-put-kill");
    let q = Queue::create(
        &name,
        &Options {
            max_message_size: 1 << 30,
            ..opts(4)
        },
    )
    .unwrap();
    let mut p = spawn("big-put-one", &[&name, &(512usize << 20).to_string()]);
    assert_eq!(p.line(), "writing");
    // Wait for the side segment to exist, then kill the producer while it writes.
    assert!(eventually(Duration::from_secs(30), || !side_segments(
        &name
    )
    .is_empty()));
    p.kill9();
    assert!(q.is_empty(), "nothing half-written is visible");
    assert_eq!(
        side_segments(&name).len(),
        1,
        "the dead producer's leftover"
    );
    // The sweep of the next open removes it.
    let q2 = Queue::open(&name).unwrap();
    assert!(side_segments(&name).is_empty(), "swept");
    // And the queue goes on.
    q2.put(big::message(2, 0, 100_000)).unwrap();
    assert_eq!(big::check(&q.get().unwrap()), Some((2, 0)));
    Queue::unlink(&name).unwrap();
    assert!(side_segments(&name).is_empty());
}

/// SIGKILL while a consumer reads a large message in place, and while consumers copy one
/// over and over: the message stays queued, whole, and is delivered once afterwards; nothing
/// is left in `/dev/shm` after the unlink.
#[test]
fn a_consumer_killed_while_reading_a_large_message_leaves_it_queued() {
    let _w = Watchdog::new("large get kill", Duration::from_secs(120));
    let name = Name::new("big-get-kill");
    let q = Queue::create(&name, &opts(4)).unwrap();
    q.put(big::message(1, 0, 20 << 20)).unwrap();
    q.put(b"after").unwrap();
    let mut r = spawn("big-read-and-hang", &[&name]);
    assert_eq!(r.line(), format!("reading {}", big::HEAD + (20 << 20)));
    r.kill9();
    assert_eq!(q.len(), 2, "the killed reader took nothing");
    for round in 0..5u64 {
        let mut c = spawn("big-copy-forever", &[&name]);
        assert_eq!(c.line(), "copying");
        std::thread::sleep(Duration::from_millis(3 + round * 7));
        c.kill9();
        assert_eq!(q.len(), 2, "a consumer killed mid-copy took nothing");
    }
    assert_eq!(big::check(&q.get().unwrap()), Some((1, 0)));
    assert_eq!(q.get().unwrap(), b"after");
    assert!(q.is_empty());
    assert_eq!(
        side_segments(&name).len(),
        1,
        "the taken message's side segment stays in its producer's pool, free"
    );
    drop(q);
    assert!(
        side_segments(&name).is_empty(),
        "the producer's handle took its pool with it"
    );
    Queue::unlink(&name).unwrap();
    assert!(side_segments(&name).is_empty());
}

/// SIGKILL of a producer that streams large messages through its pool of side segments (so
/// that it is killed while writing into a reused segment, or between puts), while this process
/// takes them: every message taken is whole, none twice, none lost before the last one taken;
/// the dead producer's pooled segments are swept by the next open once none is queued, and
/// nothing is left after the unlink.
#[test]
fn a_pooling_producer_killed_mid_stream_loses_and_leaks_nothing() {
    let _w = Watchdog::new("large pooled put kill", Duration::from_secs(120));
    let name = Name::new("big-pool-kill");
    let q = Queue::create(&name, &opts(4)).unwrap();
    let body = 3 << 20;
    for round in 0..3u64 {
        let mut p = spawn("big-put-forever", &[&name, &body.to_string()]);
        assert_eq!(p.line(), "putting");
        let mut next = 0u32;
        let take = |q: &Queue, next: &mut u32| {
            let m = q.get().unwrap();
            assert_eq!(big::check(&m), Some((3, *next)), "whole, in order, once");
            *next += 1;
        };
        // Take a few (the producer reuses its pooled segments meanwhile), then kill it at a
        // moment that varies by round.
        for _ in 0..(6 + round * 5) {
            take(&q, &mut next);
        }
        std::thread::sleep(Duration::from_millis(round * 3));
        p.kill9();
        while !q.is_empty() {
            take(&q, &mut next);
        }
        assert!(
            side_segments(&name).len() <= shmq::substrate::large::POOL_SEGMENTS + 1,
            "at most the dead producer's pool and one being written"
        );
        // The next open sweeps what the dead producer left: no slot names any of it.
        drop(Queue::open(&name).unwrap());
        assert!(
            side_segments(&name).is_empty(),
            "swept: {:?}",
            side_segments(&name)
        );
    }
    Queue::unlink(&name).unwrap();
    assert!(side_segments(&name).is_empty());
}

/// Ignored in a plain `cargo test` (it needs privileges a developer's account may not have);
/// `.ci/run`, which runs as root, runs it with `-- --ignored`, and there a missing `unshare -m`
/// fails it.
#[test]
#[ignore = "needs root or CAP_SYS_ADMIN for `unshare -m` (a mount namespace); .ci/run runs it"]
fn a_full_dev_shm_is_no_space_hands_the_message_back_and_leaks_nothing() {
    // A real full tmpfs: the child runs in a mount namespace of its own (root, or
    // CAP_SYS_ADMIN) whose /dev/shm is a fresh 1 MiB tmpfs, gone with the namespace.
    let unshare = |args: &[&str]| std::process::Command::new("unshare").args(args).output();
    let probe = unshare(&["-m", "true"]);
    assert!(
        probe.as_ref().is_ok_and(|o| o.status.success()),
        "`unshare -m` does not work here (needs root or CAP_SYS_ADMIN): {probe:?}"
    );
    let _w = Watchdog::new("no space", Duration::from_secs(60));
    let name = Name::new("nospace");
    let script = "mount -t tmpfs -o size=1m shmq-test-small /dev/shm && exec \"$0\" \"$@\"";
    let out = unshare(&[
        "-m",
        "sh",
        "-c",
        script,
        common::CHILD,
        "big-no-space",
        &name,
    ])
    .expect("run unshare");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && said.starts_with("no-space ok "),
        "status {:?}, stdout {said}, stderr {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(side_segments(&name).is_empty());
}

/// What a `big-peek-consumer` printed: the keys (`id:seq`) of the batches its commit took, and
/// those of a last batch peeked and maybe committed when it was killed (no "done"/"moved").
fn peek_consumer_output(out: &[u8]) -> (Vec<String>, Vec<String>) {
    let (mut taken, mut pending) = (Vec::new(), Vec::new());
    for line in String::from_utf8_lossy(out).lines() {
        if let Some(rest) = line.strip_prefix("peek ") {
            let mut words = rest.split(' ');
            words.next(); // the position
            pending = words
                .map(|k| k.split_once(',').unwrap().0.to_owned())
                .collect();
        } else if line == "done" {
            taken.append(&mut pending);
        } else if line == "moved" {
            pending.clear();
        } else if !line.is_empty() {
            panic!("unexpected line {line:?}");
        }
    }
    (taken, pending)
}

/// `peekers` peek+commit consumers (batches of up to 4, a pause of up to 300 µs before each
/// commit) and `getters` plain get consumers compete for the checksummed messages (0 B to
/// 6 MiB, skewed small) of 2 producers through a queue with 4 KiB slots: every message
/// arrives once, whole (each consumer checks what it peeks or gets), and no side segment is
/// left once everything is taken, nor after the unlink.
fn run_peek(tag: &str, peekers: usize, getters: usize) {
    let _w = Watchdog::new("large peek and commit", Duration::from_secs(120));
    let name = Name::new(tag);
    let q = Queue::create(&name, &opts(8)).unwrap();
    let (producers, count) = (2u32, 60u32);
    let max = (6 << 20).to_string();
    let mut cons: Vec<_> = (0..peekers)
        .map(|_| spawn("big-peek-consumer", &[&name, "4", "300"]))
        .collect();
    cons.extend((0..getters).map(|_| spawn("big-consumer", &[&name, "get"])));
    let prods: Vec<_> = (0..producers)
        .map(|id| {
            spawn(
                "big-producer",
                &[&name, &id.to_string(), &count.to_string(), &max, "put"],
            )
        })
        .collect();
    finish_all(prods);
    q.close().unwrap();
    let mut seen = HashSet::new();
    let (mut by_peek, mut large) = (0, 0);
    for (i, out) in finish_all(cons).into_iter().enumerate() {
        let keys: Vec<(String, usize)> = if i < peekers {
            let (taken, pending) = peek_consumer_output(&out);
            assert!(pending.is_empty(), "a consumer that ran to the end");
            by_peek += taken.len();
            // The lengths are checked by the child; count the large ones from its output.
            for line in String::from_utf8_lossy(&out).lines() {
                large += line
                    .split(' ')
                    .filter_map(|k| k.split_once(',')?.1.parse::<usize>().ok())
                    .filter(|&len| len > 4096)
                    .count();
            }
            taken.into_iter().map(|k| (k, 0)).collect()
        } else {
            String::from_utf8(out)
                .unwrap()
                .lines()
                .map(|l| {
                    let (k, len) = l.split_once(' ').unwrap();
                    (k.to_owned(), len.parse().unwrap())
                })
                .collect()
        };
        for (k, len) in keys {
            large += usize::from(len > 4096);
            assert!(seen.insert(k.clone()), "{k} delivered twice");
        }
    }
    assert_eq!(seen.len(), (producers * count) as usize, "messages lost");
    assert!(large > 0, "the run carried large messages");
    if getters == 0 {
        assert_eq!(by_peek, seen.len(), "all taken by peek and commit");
    }
    eprintln!(
        "{tag}: {by_peek} of {} taken by peek and commit",
        seen.len()
    );
    assert!(q.is_empty());
    assert!(
        side_segments(&name).is_empty(),
        "committed messages leave no side segment: {:?}",
        side_segments(&name)
    );
    Queue::unlink(&name).unwrap();
    assert!(side_segments(&name).is_empty());
}

#[test]
fn peek_and_commit_carry_large_messages_whole_and_leave_nothing() {
    run_peek("big-peek", 2, 0);
}

#[test]
fn peek_commit_and_get_consumers_compete_and_each_message_arrives_once() {
    run_peek("big-peek-get", 1, 1);
}

/// SIGKILL of peek+commit consumers at random moments (the pause before each commit makes
/// most kills land between a peek and its commit; others land in a peek's copy, in the
/// commit, or between its CAS and the release of the side segments) while a producer streams
/// checksummed messages of up to 2 MiB: no message is taken twice, each is taken by a
/// consumer that reported it or is in the last batch of a killed one (the documented window),
/// and once the producer is gone the next open sweeps whatever a killed committer left.
#[test]
fn peek_commit_consumers_killed_at_random_points_lose_and_leak_nothing() {
    let _w = Watchdog::new("large peek kills", Duration::from_secs(150));
    let name = Name::new("big-peek-kill");
    let q = Queue::create(&name, &opts(8)).unwrap();
    let count = 120u32;
    let mut p = spawn(
        "big-producer",
        &[
            &name,
            "5",
            &count.to_string(),
            &(2 << 20).to_string(),
            "put",
        ],
    );
    let mut rng = big::Rng::new(u64::from(std::process::id()));
    let mut taken = HashSet::new();
    let (mut uncertain, mut kills) = (HashSet::new(), 0);
    let record = |out: &[u8], taken: &mut HashSet<String>| {
        let (done, pending) = peek_consumer_output(out);
        for k in done {
            assert!(taken.insert(k.clone()), "{k} taken twice");
        }
        pending.len()
    };
    for _ in 0..250 {
        if p.child.try_wait().unwrap().is_some() {
            break;
        }
        let mut c = spawn("big-peek-consumer", &[&name, "4", "2000"]);
        std::thread::sleep(Duration::from_millis(2 + rng.word() % 25));
        let _ = c.child.kill();
        let (out, _) = c.try_finish().unwrap();
        let (_, pending) = peek_consumer_output(&out);
        uncertain.extend(pending);
        record(&out, &mut taken);
        kills += 1;
    }
    // The rest (and everything, if the producer is still going) by one consumer to the end.
    let last = spawn("big-peek-consumer", &[&name, "4", "0"]);
    finish_all(vec![p]);
    q.close().unwrap();
    let out = finish_all(vec![last]).remove(0);
    assert_eq!(record(&out, &mut taken), 0);
    let lost: Vec<u32> = (0..count)
        .filter(|s| {
            let k = format!("5:{s}");
            !taken.contains(&k) && !uncertain.contains(&k)
        })
        .collect();
    assert!(lost.is_empty(), "lost beyond the killed batches: {lost:?}");
    assert!(uncertain.len() <= kills * 4);
    eprintln!(
        "{kills} kills, {} taken and reported, {} in killed consumers' last batches",
        taken.len(),
        uncertain.len()
    );
    assert!(q.is_empty());
    // The producer is gone: the next open sweeps what a committer killed before its release
    // left (no slot names it).
    drop(Queue::open(&name).unwrap());
    assert!(
        side_segments(&name).is_empty(),
        "{:?}",
        side_segments(&name)
    );
    Queue::unlink(&name).unwrap();
    assert!(side_segments(&name).is_empty());
}

/// A committer killed after its CAS, before releasing the side segments of the large messages
/// it took (a pooled one and a one-shot one): both stay, named by no slot; the next open
/// sweeps them once their producers are gone. With a live producer, its pool does not reuse
/// a segment left so (a large put makes a new one), and the unlink removes it.
#[test]
fn a_committer_killed_before_its_release_leaks_nothing_once_the_producer_is_gone() {
    let _w = Watchdog::new("large commit kill", Duration::from_secs(120));
    let name = Name::new("big-commit-kill");
    let q = Queue::create(&name, &opts(4)).unwrap();
    for body in [1usize << 20, 40 << 20] {
        finish_all(vec![spawn("big-put-one", &[&name, &body.to_string()])]);
    }
    assert_eq!(side_segments(&name).len(), 2, "one pooled, one one-shot");
    let mut c = spawn("crash-commit-and-hang", &[&name, "2"]);
    assert_eq!(
        c.line(),
        format!(
            "committed 1:0,{} 1:0,{}",
            big::HEAD + (1 << 20),
            big::HEAD + (40 << 20)
        )
    );
    c.kill9();
    assert!(q.is_empty(), "taken");
    assert_eq!(side_segments(&name).len(), 2, "not released");
    drop(Queue::open(&name).unwrap());
    assert!(side_segments(&name).is_empty(), "swept: producers dead");
    // A live producer (this process).
    q.put(big::message(2, 0, 1 << 20)).unwrap();
    let first = side_segments(&name);
    assert_eq!(first.len(), 1);
    let mut c = spawn("crash-commit-and-hang", &[&name, "1"]);
    assert!(c.line().starts_with("committed 2:0,"));
    c.kill9();
    drop(Queue::open(&name).unwrap());
    assert_eq!(side_segments(&name), first, "its creator lives: kept");
    q.put(big::message(2, 1, 1 << 20)).unwrap();
    assert_eq!(side_segments(&name).len(), 2, "not reused: a new segment");
    assert_eq!(big::check(&q.get().unwrap()), Some((2, 1)));
    Queue::unlink(&name).unwrap();
    assert!(side_segments(&name).is_empty());
}
