//! Kill tests of the queue, through the public API with real processes (issue 10's list):
//! producers and consumers SIGKILLed at random points of every path (single, batch, zero-copy)
//! with checksummed messages; 4 producer and 4 consumer processes moving 1,000,000 messages each
//! way; an idle blocked consumer that must not use the CPU.
//!
//! # Accounting of the kill rounds
//!
//! One producer and one consumer run at a time; the parent SIGKILLs one of them (alternately)
//! once it has made progress since it started, and starts a replacement. Each producer
//! incarnation has its own id, so messages are totally ordered: by producer incarnation, then
//! sequence number, which is the queue's FIFO order too. Producers record the last sequence
//! number whose put returned `Ok` (acknowledged) after each put; consumers record each message
//! after their get returned (committed), and, on the zero-copy paths, also from inside the
//! closure before the get commits (pending). At the end the last producer is killed, the queue
//! closed, and the last consumer drains it. Then:
//!
//! - no message is committed twice, none fails its checksum (half-written), and the committed
//!   messages, in the order consumers ran, are in FIFO order;
//! - every acknowledged message was committed, or was taken by a killed consumer: it follows,
//!   in FIFO order, the last message that consumer committed, within one batch of it (and on the
//!   zero-copy paths it is one that consumer had recorded as pending);
//! - an unacknowledged message (its producer was killed before the put returned, or before the
//!   acknowledgement was recorded) may be missing, but a missing one is never followed by a
//!   delivered later message of the same producer;
//! - the survivors go on after every kill: each replacement must make progress before the next
//!   kill, and the last consumer must drain the queue (a test watchdog turns a stuck repair into
//!   a failure; no duration is asserted).

mod common;
mod killing;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use common::{Name, Watchdog, finish_all, spawn};
use killing::{CORRUPT, Recorded, Rng, TAG_PENDING, env_or, wait_for};
use shmq::{Options, Queue};

fn opts(capacity: usize, message_size: usize) -> Options {
    Options {
        capacity,
        message_size,
        ..Default::default()
    }
}

/// Figures of one kill run.
#[derive(Debug, Default)]
struct Tally {
    producer_kills: usize,
    consumer_kills: usize,
    acknowledged: usize,
    delivered: usize,
    taken_by_killed_consumers: usize,
    unacknowledged_lost: usize,
    unacknowledged_delivered: usize,
}

/// Kill rounds over one path: `kills` SIGKILLs, alternately of the producer and the consumer.
fn kill_rounds(path: &str, prod_mode: &str, cons_mode: &str, batch: usize, kills: usize) -> Tally {
    let name = Name::new(&format!("kill-{path}"));
    let q = Queue::create(&name, &opts(16, 24)).unwrap();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ kills as u64 ^ batch as u64);
    let mut producers: Vec<Recorded> = Vec::new();
    let mut consumers: Vec<Recorded> = Vec::new();
    let new_producer =
        |id: usize| Recorded::spawn("k-producer", &[&name, &id.to_string(), prod_mode]);
    let new_consumer = || Recorded::spawn("k-consumer", &[&name, cons_mode]);
    producers.push(new_producer(0));
    consumers.push(new_consumer());
    let mut tally = Tally::default();
    for k in 0..kills {
        // Both make progress first: whoever was replaced last has recovered from the kill.
        let p = producers.last().unwrap();
        let c = consumers.last().unwrap();
        wait_for(|| p.len() >= 2 && c.committed() >= 2);
        std::thread::sleep(Duration::from_micros(rng.below(3000)));
        if k % 2 == 0 {
            producers.last_mut().unwrap().kill();
            tally.producer_kills += 1;
            producers.push(new_producer(producers.len()));
        } else {
            consumers.last_mut().unwrap().kill();
            tally.consumer_kills += 1;
            consumers.push(new_consumer());
        }
    }
    let p = producers.last().unwrap();
    wait_for(|| p.len() >= 2);
    producers.last_mut().unwrap().kill();
    tally.producer_kills += 1;
    q.close().unwrap();

    let acked: Vec<Option<u32>> = producers
        .iter_mut()
        .map(|p| p.collect().last().copied())
        .collect();
    let logs: Vec<(bool, Vec<u32>)> = consumers
        .iter_mut()
        .map(|c| (c.killed, c.collect()))
        .collect();
    let checked = check_kill_accounting(
        path,
        batch,
        cons_mode.contains("with"),
        &acked,
        &logs,
        &mut tally,
    );
    eprintln!("kills, {path}: {tally:?}");
    if let Err(e) = checked {
        panic!("{e}");
    }
    assert!(q.is_empty(), "{path}: the last consumer drained the queue");
    tally
}

/// `assert!` that returns the message as an error instead of panicking.
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

/// The checks listed in the module docs. `acked[id]`: the last acknowledged seq of producer
/// `id`; `logs`: each consumer's (killed, records) in the order they ran.
fn check_kill_accounting(
    path: &str,
    batch: usize,
    has_pending: bool,
    acked: &[Option<u32>],
    logs: &[(bool, Vec<u32>)],
    tally: &mut Tally,
) -> Result<(), String> {
    // Committed messages in consumer order, and who committed each.
    let mut committed: Vec<(u32, u32)> = Vec::new();
    let mut by: HashMap<(u32, u32), usize> = HashMap::new();
    // For each killed consumer: its last committed message and its uncommitted pending ones.
    let mut dead_last: HashMap<(u32, u32), HashSet<(u32, u32)>> = HashMap::new();
    for (c, (killed, words)) in logs.iter().enumerate() {
        let mut last = None;
        let mut pending = HashSet::new();
        for r in words.chunks_exact(2) {
            ensure!(
                r[0] != CORRUPT && r[0] != CORRUPT & !TAG_PENDING,
                "{path}: consumer {c} got a half-written or corrupt message"
            );
            if r[0] & TAG_PENDING != 0 {
                pending.insert((r[0] & !TAG_PENDING, r[1]));
                continue;
            }
            let m = (r[0], r[1]);
            pending.remove(&m);
            if let Some(other) = by.insert(m, c) {
                return Err(format!(
                    "{path}: message {m:?} delivered twice (consumers {other} and {c})"
                ));
            }
            committed.push(m);
            last = Some(m);
        }
        if *killed {
            let last =
                last.ok_or_else(|| format!("{path}: killed consumer {c} committed nothing"))?;
            dead_last.insert(last, pending);
        }
    }
    for w in committed.windows(2) {
        ensure!(
            w[0] < w[1],
            "{path}: FIFO order broken: {:?} then {:?}",
            w[0],
            w[1]
        );
    }
    tally.delivered = committed.len();

    // Every message that exists or may exist, in FIFO order.
    let mut max_seen: BTreeMap<u32, u32> = BTreeMap::new();
    for &(id, seq) in &committed {
        let e = max_seen.entry(id).or_insert(seq);
        *e = (*e).max(seq);
    }
    let mut order = Vec::new();
    for (id, a) in acked.iter().enumerate() {
        let id = id as u32;
        let top = match (a, max_seen.get(&id)) {
            (Some(a), Some(d)) => Some(*a.max(d)),
            (Some(a), None) => Some(*a),
            (None, d) => d.copied(),
        };
        if let Some(top) = top {
            order.extend((0..=top).map(|s| (id, s)));
        }
    }
    let mut last_delivered: Option<(u32, u32)> = None;
    let mut run_since_delivered = 0;
    for (i, &m) in order.iter().enumerate() {
        let is_acked = acked[m.0 as usize].is_some_and(|a| m.1 <= a);
        if is_acked {
            tally.acknowledged += 1;
        }
        if by.contains_key(&m) {
            if !is_acked {
                tally.unacknowledged_delivered += 1;
            }
            last_delivered = Some(m);
            run_since_delivered = 0;
            continue;
        }
        // Not committed: taken by a killed consumer, or (unacknowledged only) never published.
        run_since_delivered += 1;
        let taken = last_delivered
            .and_then(|l| dead_last.get(&l))
            .is_some_and(|pending| {
                run_since_delivered <= batch && (!has_pending || pending.contains(&m))
            });
        if taken {
            tally.taken_by_killed_consumers += 1;
            continue;
        }
        ensure!(
            !is_acked,
            "{path}: acknowledged message {m:?} was lost (last delivered before it: {last_delivered:?})"
        );
        tally.unacknowledged_lost += 1;
        let later = order[i + 1..]
            .iter()
            .take_while(|n| n.0 == m.0)
            .any(|n| by.contains_key(n));
        ensure!(
            !later,
            "{path}: unacknowledged {m:?} vanished but a later message of its producer was delivered"
        );
    }
    Ok(())
}

fn kills_per_path() -> usize {
    env_or("SHMQ_KILLS", 200) as usize
}

#[test]
fn kills_on_the_single_message_path_lose_and_duplicate_nothing() {
    let _w = Watchdog::new("kills, single", Duration::from_secs(240));
    let t = kill_rounds("single", "single", "single", 1, kills_per_path());
    assert!(t.acknowledged > 0 && t.delivered > 0);
}

#[test]
fn kills_on_the_batch_path_lose_and_duplicate_nothing() {
    let _w = Watchdog::new("kills, batch", Duration::from_secs(240));
    let t = kill_rounds("many", "many", "many", 8, kills_per_path());
    assert!(t.acknowledged > 0 && t.delivered > 0);
}

#[test]
fn kills_on_the_zero_copy_path_lose_and_duplicate_nothing() {
    let _w = Watchdog::new("kills, zero-copy", Duration::from_secs(240));
    let t = kill_rounds("with", "with", "with", 1, kills_per_path());
    assert!(t.acknowledged > 0 && t.delivered > 0);
    let t = kill_rounds("many-with", "with", "many-with", 8, kills_per_path());
    assert!(t.acknowledged > 0 && t.delivered > 0);
}

/// A producer SIGKILLed inside `put_with`, half-way through writing a checksummed message,
/// holding its claimed slot: the message never appears, every acknowledged one is there once,
/// and the queue goes on (the consumer finds the claim's owner dead and voids it).
#[test]
fn producer_killed_after_claiming_a_slot_publishes_nothing() {
    let _w = Watchdog::new("kill in put_with", Duration::from_secs(60));
    let name = Name::new("kill-claim");
    let q = Queue::create(&name, &opts(4, 24)).unwrap();
    let msgs: Vec<[u8; 24]> = (0..3)
        .map(|s| common::shared::stress_message(7, s))
        .collect();
    q.put_many(&msgs).unwrap();
    let mut crasher = spawn("crash-in-put", &[&name]);
    assert_eq!(crasher.line(), "holding");
    crasher.kill9();
    for s in 0..3 {
        let m = q.get().unwrap();
        assert_eq!(common::shared::check_stress(&m), Some((7, s)));
    }
    q.put(common::shared::stress_message(7, 3)).unwrap();
    let m = q.get().unwrap();
    assert_eq!(common::shared::check_stress(&m), Some((7, 3)));
    assert!(q.is_empty());
    assert_eq!(
        q.unfinished(),
        4,
        "the voided claim is not an unfinished task"
    );
}

/// A lock-free producer SIGKILLed after its claim and before its commit (the hidden hook
/// `claim_and_stop`: claimed, written, a batch's later slots published), on the single, batch
/// and zero-copy get paths, with a live producer putting behind the claim: none of the dead
/// claim is ever delivered, the live producer's messages are delivered whole and in order, and
/// nothing waits for the dead process for longer than the claim patience.
#[test]
fn producer_killed_after_its_claim_is_voided_and_loses_nothing_else() {
    let _w = Watchdog::new("kill after claim", Duration::from_secs(120));
    for (n, path) in [(1u32, "get"), (3, "get_many"), (2, "get_with")] {
        let name = Name::new("kill-after-claim");
        let q = Queue::create(&name, &opts(8, 24)).unwrap();
        q.put(common::shared::stress_message(5, 0)).unwrap();
        let mut crasher = spawn("crash-after-claim", &[&name, "6", "0", &n.to_string()]);
        assert_eq!(crasher.line(), "holding", "{path}");
        q.put(common::shared::stress_message(5, 1)).unwrap();
        crasher.kill9();
        let got: Vec<_> = match path {
            "get" => (0..2).map(|_| q.get().unwrap()).collect(),
            "get_many" => {
                let mut got = Vec::new();
                while got.len() < 2 {
                    got.extend(q.get_many(8).unwrap());
                }
                got
            }
            _ => (0..2)
                .map(|_| q.get_with(|m| m.to_vec()).unwrap())
                .collect(),
        };
        let got: Vec<_> = got
            .iter()
            .map(|m| common::shared::check_stress(m))
            .collect();
        assert_eq!(got, [Some((5, 0)), Some((5, 1))], "{path}");
        assert_eq!(q.try_get(), Err(shmq::TryGetError::Empty), "{path}");
        assert_eq!((q.len(), q.unfinished()), (0, 2), "{path}");
        // The ring goes on: every slot is usable again.
        for s in 2..10 {
            q.put(common::shared::stress_message(5, s)).unwrap();
        }
        for s in 2..10 {
            assert_eq!(
                common::shared::check_stress(&q.get().unwrap()),
                Some((5, s))
            );
        }
    }
}

/// A producer SIGKILLed after naming its position in its intent lane and before its claim (the
/// hidden hook `name_and_stop`): it claimed nothing. A live producer then claims the very
/// position the dead intent names; its message is delivered, nothing is voided, and the ring
/// goes on.
#[test]
fn producer_killed_after_naming_its_position_claims_nothing() {
    let _w = Watchdog::new("kill after naming", Duration::from_secs(60));
    let name = Name::new("kill-after-naming");
    let q = Queue::create(&name, &opts(4, 24)).unwrap();
    q.put(common::shared::stress_message(7, 0)).unwrap();
    let mut crasher = spawn("crash-after-naming", &[&name]);
    assert_eq!(crasher.line(), "holding");
    crasher.kill9();
    assert_eq!(q.tail_position(), 1, "the dead producer claimed nothing");
    // Position 1, which the dead intent names too.
    q.put(common::shared::stress_message(7, 1)).unwrap();
    for s in 0..2 {
        assert_eq!(
            common::shared::check_stress(&q.get().unwrap()),
            Some((7, s))
        );
    }
    assert_eq!(q.try_get(), Err(shmq::TryGetError::Empty));
    assert_eq!((q.len(), q.unfinished(), q.voided()), (0, 2, 0));
    for s in 2..12 {
        q.put(common::shared::stress_message(7, s)).unwrap();
        assert_eq!(
            common::shared::check_stress(&q.get().unwrap()),
            Some((7, s))
        );
    }
    assert_eq!(q.voided(), 0);
}

/// `Queue::voided` counts the positions of claims whose producer was SIGKILLed before its
/// commit (the hidden hook `claim_and_stop`), once each, whether a consumer or the lock's
/// next holder voids them, and nothing else: `tail_position() - voided()` is the number of
/// messages ever put.
#[test]
fn the_voided_count_counts_each_killed_producers_claim_once() {
    let _w = Watchdog::new("voided count", Duration::from_secs(120));
    let name = Name::new("kill-voided-count");
    let q = Queue::create(&name, &opts(16, 24)).unwrap();
    assert_eq!(q.voided(), 0);
    let mut live = 0;
    let mut voided = 0;
    for (round, n) in [(0u32, 3u32), (1, 1), (2, 5)] {
        q.put(common::shared::stress_message(4, round)).unwrap();
        live += 1;
        let mut crasher = spawn("crash-after-claim", &[&name, "6", "0", &n.to_string()]);
        assert_eq!(crasher.line(), "holding");
        crasher.kill9();
        assert_eq!(
            q.voided(),
            voided,
            "the dead claim stands until someone voids it"
        );
        // The consumer takes the live message, finds the dead claim and voids it.
        let m = q.get().unwrap();
        assert_eq!(common::shared::check_stress(&m), Some((4, round)));
        assert_eq!(q.try_get(), Err(shmq::TryGetError::Empty));
        voided += u64::from(n);
        assert_eq!(q.voided(), voided, "round {round}");
        assert_eq!(q.tail_position() - q.voided(), live, "messages ever put");
    }
    // Voided again by nobody: the count stays.
    q.put(common::shared::stress_message(4, 9)).unwrap();
    q.get().unwrap();
    assert_eq!(q.voided(), voided);
}

/// A lock-free consumer SIGKILLed after copying the front message and before its claim (the
/// hidden hook `copy_and_stop`), with a producer putting meanwhile: the message is still first,
/// whole, and nothing is lost or duplicated.
#[test]
fn consumer_killed_mid_copy_takes_nothing() {
    let _w = Watchdog::new("kill mid-copy", Duration::from_secs(60));
    let name = Name::new("kill-mid-copy");
    let q = Queue::create(&name, &opts(4, 24)).unwrap();
    q.put(common::shared::stress_message(9, 0)).unwrap();
    let mut crasher = spawn("crash-mid-copy", &[&name]);
    assert_eq!(crasher.line(), "holding Some((9, 0))");
    q.put(common::shared::stress_message(9, 1)).unwrap();
    crasher.kill9();
    assert_eq!(q.len(), 2);
    for s in 0..2 {
        let m = q.get().unwrap();
        assert_eq!(common::shared::check_stress(&m), Some((9, s)));
    }
    assert!(q.is_empty());
}

/// A consumer SIGKILLed inside `get_many_with`, after it has seen part of the batch: every
/// message of the batch is still there, in order.
#[test]
fn consumer_killed_mid_batch_copy_takes_nothing() {
    let _w = Watchdog::new("kill in get_many_with", Duration::from_secs(60));
    let name = Name::new("kill-batch-copy");
    let q = Queue::create(&name, &opts(8, 24)).unwrap();
    for s in 0..5 {
        q.put(common::shared::stress_message(3, s)).unwrap();
    }
    let mut crasher = spawn("crash-in-get-many", &[&name]);
    assert!(crasher.line().starts_with("holding"));
    crasher.kill9();
    assert_eq!(q.len(), 5);
    let got: Vec<_> = q
        .get_many(8)
        .unwrap()
        .iter()
        .map(|m| common::shared::check_stress(m))
        .collect();
    assert_eq!(got, (0..5).map(|s| Some((3, s))).collect::<Vec<_>>());
}

/// 4 producer and 4 consumer processes, 1,000,000 checksummed messages per producer: none lost,
/// duplicated, or out of order per producer (each consumer checks the order it sees).
#[test]
fn four_by_four_processes_a_million_messages_each() {
    let _w = Watchdog::new("4x4 x 1M", Duration::from_secs(600));
    let per = env_or("SHMQ_4X4_PER_PRODUCER", 1_000_000) as u32;
    let name = Name::new("kill-4x4");
    let q = Queue::create(&name, &opts(256, 24)).unwrap();
    let consumers: Vec<_> = (0..4)
        .map(|_| spawn("q-stress-consumer", &[&name]))
        .collect();
    let consumers = std::thread::spawn(move || finish_all(consumers));
    let start = Instant::now();
    let producers: Vec<_> = (0..4)
        .map(|id| {
            spawn(
                "q-stress-producer",
                &[&name, &id.to_string(), &per.to_string()],
            )
        })
        .collect();
    finish_all(producers);
    q.close().unwrap();
    let outs = consumers.join().unwrap();
    let elapsed = start.elapsed();
    let total = common::check_stress_outputs(outs, 4, per as usize);
    eprintln!("4x4: {total} messages in {elapsed:?}");
}

/// Clock ticks per second of `/proc/PID/stat` times.
fn clock_ticks() -> u64 {
    let out = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .expect("getconf CLK_TCK");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("CLK_TCK")
}

/// utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read stat");
    // Fields after the command name (which may hold spaces) start at field 3.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

fn assert_idle(what: &str, pid: u32, window: Duration) {
    // Let it pass its spin and poll phases and sleep.
    std::thread::sleep(Duration::from_millis(300));
    let before = cpu_ticks(pid);
    let t = Instant::now();
    std::thread::sleep(window);
    let used = cpu_ticks(pid) - before;
    let window = t.elapsed().as_secs_f64();
    let share = used as f64 / clock_ticks() as f64 / window;
    eprintln!(
        "idle {what}: {used} ticks over {window:.2} s = {:.3}% of a CPU",
        share * 100.0
    );
    assert!(
        share < 0.01,
        "an idle {what} used {:.2}% of a CPU",
        share * 100.0
    );
}

/// A consumer blocked in `get` on an empty queue (and a receiver blocked in `recv`) uses less
/// than 1% of a CPU over 2 s: it sleeps, it does not poll. A resource assertion, not a speed one.
#[test]
fn an_idle_blocked_consumer_uses_no_cpu() {
    let _w = Watchdog::new("idle consumer", Duration::from_secs(60));
    let name = Name::new("kill-idle");
    let q = Queue::create(&name, &opts(4, 16)).unwrap();
    let mut getter = spawn("q-getter", &[&name]);
    assert_eq!(getter.line(), "ready");
    assert_idle(
        "consumer blocked in get",
        getter.pid(),
        Duration::from_secs(2),
    );
    q.put(b"wake").unwrap();
    assert_eq!(getter.line(), "wake");
    getter.finish();

    let pname = Name::new("kill-idle-pipe");
    let (_a, b) = shmq::Pipe::create(&pname, &opts(4, 16)).unwrap();
    let mut receiver = spawn("p-consumer", &[&pname, "A"]);
    assert_eq!(receiver.line(), "ready");
    // A receiver checks its peers' liveness every 50 ms: measured over 4 s, so that one clock
    // tick is a quarter of the allowance.
    assert_idle(
        "receiver blocked in recv",
        receiver.pid(),
        Duration::from_secs(4),
    );
    b.send(b"wake").unwrap();
    assert_eq!(receiver.line(), "wake");
    drop(b);
    assert_eq!(receiver.line(), "eof");
    receiver.finish();
}

/// The kill accounting accepts a take by a killed consumer and refuses a loss, a duplicate, a
/// reorder and a half-written message, on made-up logs.
#[test]
fn kill_accounting_tells_the_outcomes_apart() {
    let p = TAG_PENDING;
    let check = |has_pending: bool, acked: &[Option<u32>], logs: &[(bool, Vec<u32>)]| {
        let mut t = Tally::default();
        check_kill_accounting("made-up", 1, has_pending, acked, logs, &mut t).map(|()| t)
    };
    // Consumer 0 committed 0, then was killed reading 1 (taken); consumer 1 committed 2.
    let taken = vec![(true, vec![p, 0, 0, 0, p, 1]), (false, vec![p, 2, 0, 2])];
    let t = check(true, &[Some(2)], &taken).expect("a take by a killed consumer is allowed");
    assert_eq!((t.taken_by_killed_consumers, t.delivered), (1, 2));
    // Without the pending record, on a path that records them, 1 is lost.
    let lost = vec![(true, vec![0, 0]), (false, vec![0, 2])];
    assert!(check(true, &[Some(2)], &lost).is_err());
    // The same gap after a consumer that was not killed is a loss on any path.
    let gap = vec![(false, vec![0, 0, 0, 2])];
    assert!(check(false, &[Some(2)], &gap).is_err());
    // Duplicate, reorder, half-written.
    assert!(
        check(
            false,
            &[Some(1)],
            &[(true, vec![0, 0, 0, 1]), (false, vec![0, 1])]
        )
        .is_err()
    );
    assert!(check(false, &[Some(1)], &[(false, vec![0, 1, 0, 0])]).is_err());
    assert!(check(false, &[Some(0)], &[(false, vec![CORRUPT, CORRUPT])]).is_err());
    // An unacknowledged message that vanished before a later one of its producer arrived.
    assert!(check(false, &[None], &[(false, vec![0, 1])]).is_err());
}

/// `shmq::Snapshot` (what `shmq top` shows) reports a producer SIGKILLed between its claim and
/// its commit: its claim at the front, its registry entry naming a dead process; once a
/// consumer has voided the claim, the claim is gone from the snapshot and counted as voided.
#[test]
fn a_snapshot_shows_a_killed_producers_claim_until_a_consumer_voids_it() {
    use shmq::snapshot::{Role, SegmentState, Snapshot};
    let _w = Watchdog::new("snapshot of a dead claim", Duration::from_secs(60));
    let name = Name::new("kill-snapshot-claim");
    let q = Queue::create(&name, &opts(8, 24)).unwrap();
    let look = || {
        let s = Snapshot::take_matching(None, |n| n == &*name).unwrap();
        assert_eq!(s.segments.len(), 1);
        s.segments.into_iter().next().unwrap()
    };
    let mut crasher = spawn("crash-after-claim", &[&name, "6", "0", "1"]);
    assert_eq!(crasher.line(), "holding");
    let pid = crasher.pid();
    let before = look();
    assert_eq!(before.rings()[0].dead_claims, 0, "its producer still runs");
    crasher.kill9();
    let after = look();
    assert_eq!(after.state, SegmentState::Open);
    let ring = after.rings()[0];
    assert_eq!((ring.dead_claims, ring.voided, ring.puts), (1, 0, 1));
    assert!(
        after
            .processes
            .iter()
            .any(|p| p.pid == pid && !p.alive && p.role == Role::Producer { end: None }),
        "{:?}",
        after.processes
    );
    assert_eq!(q.try_get(), Err(shmq::TryGetError::Empty));
    let voided = look();
    assert_eq!(
        (voided.rings()[0].dead_claims, voided.rings()[0].voided),
        (0, 1)
    );
}
