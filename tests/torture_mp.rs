//! The torture run: producers, consumers (workers that call `task_done`) and joiners as real
//! processes on one queue, while a killer SIGKILLs a random one every few milliseconds and
//! starts a replacement. Bounded by default (`SHMQ_TORTURE_KILLS`, default 8000 kills, on a
//! queue of `SHMQ_TORTURE_CAPACITY` slots, default 32); set it higher for a longer run. A second
//! test runs at capacities 1, 2 and 4 (`SHMQ_TORTURE_SMALL_KILLS` kills each, default 1500).
//! Each run draws a new kill pattern and prints its `SHMQ_TORTURE_SEED`.
//!
//! A child that ends by itself while the killer runs (a worker that met an error, a false
//! `Corrupt` among them, panics) fails the test when the killer reaps it, and so does a
//! survivor that does not exit cleanly at the end.
//!
//! # Accounting
//!
//! Every record below is written by the child with one `write` to its stdout pipe (never torn,
//! and kept by the kernel once written, whatever happens to the child afterwards), and read by
//! the parent. Every producer incarnation has its own id; its messages are checksummed stress
//! messages `(id, seq)`.
//!
//! - A producer records `seq` after the put of message `seq` (or of a batch ending at `seq`)
//!   returned `Ok`: every message up to its last record is **acknowledged**.
//! - A worker records `pending (id, seq)` from inside `get_with`'s (or `get_many_with`'s)
//!   closure, before the get commits; `committed (id, seq)` after the get returned; `done (id,
//!   seq)` after its `task_done` for that message returned.
//!
//! At the end (killer stopped, producers killed, the queue drained by the surviving workers and
//! closed), for every message:
//!
//! - **duplicate**: committed twice (by any two workers). Must not happen.
//! - **half-written**: a record of a message that failed its checksum. Must not happen.
//! - **delivered**: committed exactly once.
//! - **taken by a killed worker**: not committed anywhere, and among the pending records at the
//!   end of the log of a worker that was killed (what it was reading when it died, after which it
//!   wrote nothing). A worker killed after the get committed and before its committed record
//!   took the message with it, which is allowed; a worker killed before the commit leaves the
//!   message in the queue, where another worker commits it.
//! - **lost**: acknowledged, and neither delivered nor taken by a killed worker. Must not happen.
//! - An unacknowledged message (its producer died inside the put, or before recording it) may be
//!   delivered once, taken, or missing. A delivered message must be one its producer tried to
//!   put: its seq is at most the last acknowledged one plus a batch.
//! - Each worker sees each producer's messages in increasing order (FIFO per producer).
//! - Tasks: after the drain, the unfinished count is exactly the messages taken out of the queue
//!   whose `task_done` never ran: taken by killed workers, or committed by a worker killed
//!   before its `task_done` (a killed worker's last committed message without a done record is
//!   the one ambiguous case: its `task_done` may have run). The parent marks those done; then
//!   every joiner's `join` returns and the joiners exit.
//! - Nothing is left in `/dev/shm` once the queue is unlinked.
//!
//! The killer never waits for a process to be ready: kills land anywhere, in startup, inside
//! `put`, `get`, `task_done` and `join`, while blocked and while running. The longest stall is
//! the longest time during which no worker committed anything while the run went on (printed,
//! not asserted: a stuck repair is caught by the test's watchdog).

mod common;
mod killing;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use common::{Name, Watchdog};
use killing::{CORRUPT, Recorded, Rng, TAG_DONE, TAG_PENDING, env_or, wait_for};
use shmq::{Options, Queue};

const PRODUCERS: usize = 3;
const WORKERS: usize = 3;
const JOINERS: usize = 2;
const PRODUCER_MODES: [&str; 3] = ["single", "many", "with"];
const WORKER_MODES: [&str; 2] = ["with", "many-with"];

#[derive(Debug, Default)]
struct Figures {
    kills: [usize; 3],
    acknowledged: usize,
    delivered: usize,
    duplicates: usize,
    lost: usize,
    taken_by_killed_workers: usize,
    unacknowledged_delivered: usize,
    tasks_owed_by_killed_workers: u64,
    joins_returned: usize,
    longest_stall: Duration,
}

#[test]
fn torture_random_sigkills_lose_duplicate_and_block_nothing() {
    let kills = env_or("SHMQ_TORTURE_KILLS", 8000) as usize;
    let capacity = env_or("SHMQ_TORTURE_CAPACITY", 32) as usize;
    torture(capacity, kills);
}

/// The same run on the smallest queues, where `head` catches up with `tail` after almost every
/// put and every worker's `task_done` takes the lock while puts and gets go on: no healthy
/// worker meets an error (a false `Corrupt` ends a worker by itself, which the killer's reaping
/// reports), nothing is lost or duplicated. `SHMQ_TORTURE_SMALL_KILLS` kills at each capacity
/// (default 1500).
#[test]
fn torture_at_capacities_1_2_and_4_reports_no_false_corruption() {
    let kills = env_or("SHMQ_TORTURE_SMALL_KILLS", 1500) as usize;
    for capacity in [1, 2, 4] {
        torture(capacity, kills);
    }
}

/// One torture run on a queue of `capacity` slots with `kills` SIGKILLs.
fn torture(capacity: usize, kills: usize) {
    let _w = Watchdog::new("torture", Duration::from_secs(300 + kills as u64 / 10));
    let name = Name::new(&format!("torture-{capacity}"));
    let q = Queue::create(
        &name,
        &Options {
            capacity,
            message_size: 24,
            ..Default::default()
        },
    )
    .unwrap();
    // A new kill pattern each run (a race shows in some runs only), repeatable by its seed.
    let seed = env_or(
        "SHMQ_TORTURE_SEED",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
    );
    eprintln!("torture (capacity {capacity}): SHMQ_TORTURE_SEED={seed} repeats this kill pattern");
    let mut rng = Rng(0x2545_f491_4f6c_dd1d ^ seed | 1);
    let start = Instant::now();

    // Every incarnation of each role, in order; the last `N` of each are the live ones.
    let mut producers: Vec<Recorded> = Vec::new();
    let mut workers: Vec<Recorded> = Vec::new();
    let mut joiners: Vec<Recorded> = Vec::new();
    let spawn_producer = |id: usize| {
        Recorded::spawn(
            "k-producer",
            &[&name, &id.to_string(), PRODUCER_MODES[id % 3]],
        )
    };
    let spawn_worker = |n: usize| Recorded::spawn("k-worker", &[&name, WORKER_MODES[n % 2]]);
    let spawn_joiner = || Recorded::spawn("k-joiner", &[&name]);
    let mut live_p: Vec<usize> = Vec::new();
    let mut live_w: Vec<usize> = Vec::new();
    let mut live_j: Vec<usize> = Vec::new();
    for _ in 0..PRODUCERS {
        live_p.push(producers.len());
        producers.push(spawn_producer(producers.len()));
    }
    for _ in 0..WORKERS {
        live_w.push(workers.len());
        workers.push(spawn_worker(workers.len()));
    }
    for _ in 0..JOINERS {
        live_j.push(joiners.len());
        joiners.push(spawn_joiner());
    }

    let mut fig = Figures::default();
    let mut dead_worker_words = 0usize;
    let mut last_total = 0usize;
    let mut last_progress = Instant::now();
    for _ in 0..kills {
        std::thread::sleep(Duration::from_micros(1000 + rng.below(4000)));
        let role = match rng.below(10) {
            0..=3 => 0,
            4..=7 => 1,
            _ => 2,
        };
        fig.kills[role] += 1;
        match role {
            0 => {
                let i = rng.below(PRODUCERS as u64) as usize;
                producers[live_p[i]].kill();
                live_p[i] = producers.len();
                producers.push(spawn_producer(producers.len()));
            }
            1 => {
                let i = rng.below(WORKERS as u64) as usize;
                workers[live_w[i]].kill();
                dead_worker_words += workers[live_w[i]].len();
                live_w[i] = workers.len();
                workers.push(spawn_worker(workers.len()));
            }
            _ => {
                let i = rng.below(JOINERS as u64) as usize;
                joiners[live_j[i]].kill();
                live_j[i] = joiners.len();
                joiners.push(spawn_joiner());
            }
        }
        let total = dead_worker_words + live_w.iter().map(|&i| workers[i].len()).sum::<usize>();
        if total != last_total {
            last_total = total;
            last_progress = Instant::now();
        } else {
            fig.longest_stall = fig.longest_stall.max(last_progress.elapsed());
        }
    }
    let killing_took = start.elapsed();

    // Stop the producers (they run without end), let the workers drain the queue, close it.
    for &i in &live_p {
        producers[i].kill();
    }
    wait_for(|| q.is_empty());
    q.close().unwrap();

    let acked: Vec<Option<u32>> = producers
        .iter_mut()
        .map(|p| p.collect().last().copied())
        .collect();
    let logs: Vec<(bool, Vec<u32>)> = workers
        .iter_mut()
        .map(|w| (w.killed, w.collect()))
        .collect();

    let acc = account(&acked, &logs);
    fig.acknowledged = acc.acknowledged;
    fig.delivered = acc.delivered;
    fig.duplicates = acc.duplicates.len();
    fig.lost = acc.lost.len();
    fig.taken_by_killed_workers = acc.taken_by_killed_workers;
    fig.unacknowledged_delivered = acc.unacknowledged_delivered;
    assert!(acc.errors.is_empty(), "accounting errors: {:?}", acc.errors);
    let (owed, ambiguous) = (acc.owed, acc.ambiguous);

    // Tasks: what is unfinished is exactly what killed workers took without task_done.
    let unfinished = q.unfinished();
    assert!(
        (owed.saturating_sub(ambiguous)..=owed).contains(&unfinished),
        "unfinished tasks {unfinished}, but killed workers owe {owed} (of which {ambiguous} may have been done)"
    );
    fig.tasks_owed_by_killed_workers = unfinished;
    for _ in 0..unfinished {
        q.task_done().unwrap();
    }
    assert_eq!(q.unfinished(), 0);

    // The surviving workers end on Closed (collected above); the joiners return and exit.
    for &i in &live_j {
        let words = joiners[i].collect();
        assert!(
            !words.is_empty(),
            "a joiner exited without its join returning"
        );
    }
    fig.joins_returned = joiners.iter().map(|j| j.len()).sum();

    eprintln!(
        "torture (capacity {capacity}): {kills} kills (producers {}, workers {}, joiners {}) \
         in {killing_took:?}; {} producer, {} worker and {} joiner processes",
        fig.kills[0],
        fig.kills[1],
        fig.kills[2],
        producers.len(),
        workers.len(),
        joiners.len()
    );
    eprintln!("torture (capacity {capacity}): {fig:?}");
    assert!(
        acc.duplicates.is_empty(),
        "messages delivered twice: {:?}",
        acc.duplicates
    );
    assert!(
        acc.lost.is_empty(),
        "acknowledged messages lost: {:?}",
        acc.lost
    );
    assert!(
        fig.acknowledged > 0 && fig.delivered > 0,
        "the run moved messages"
    );

    drop(q);
    let prefix = name.as_str().to_owned();
    drop(name);
    let left: Vec<_> = std::fs::read_dir("/dev/shm")
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&prefix))
        .collect();
    assert!(left.is_empty(), "left in /dev/shm: {left:?}");
}

/// What the records say (see the module docs).
#[derive(Debug, Default)]
struct Accounts {
    acknowledged: usize,
    delivered: usize,
    unacknowledged_delivered: usize,
    taken_by_killed_workers: usize,
    /// Acknowledged messages neither delivered nor taken by a killed worker.
    lost: Vec<(u32, u32)>,
    /// Messages committed more than once.
    duplicates: Vec<(u32, u32)>,
    /// Tasks killed workers took out of the queue without a recorded `task_done`.
    owed: u64,
    /// How many of `owed` may have been done after all.
    ambiguous: u64,
    /// Half-written messages, order violations, impossible records.
    errors: Vec<String>,
}

/// Reads the producers' last acknowledged seqs (`acked[id]`) and the workers' logs
/// (`(killed, records)` per worker).
fn account(acked: &[Option<u32>], logs: &[(bool, Vec<u32>)]) -> Accounts {
    let mut acc = Accounts::default();
    let mut committed: HashMap<(u32, u32), usize> = HashMap::new();
    let mut taken_by_dead: HashSet<(u32, u32)> = HashSet::new();
    for (w, (killed, words)) in logs.iter().enumerate() {
        let mut last_seq: HashMap<u32, u32> = HashMap::new();
        let mut pending_tail: Vec<(u32, u32)> = Vec::new();
        let mut not_done: HashSet<(u32, u32)> = HashSet::new();
        for r in words.chunks_exact(2) {
            if r[0] == CORRUPT || r[1] == CORRUPT || r[0] == CORRUPT & !TAG_PENDING {
                acc.errors
                    .push(format!("worker {w}: a half-written or corrupt message"));
                continue;
            }
            let tag = r[0] & (TAG_PENDING | TAG_DONE);
            let m = (r[0] & !(TAG_PENDING | TAG_DONE), r[1]);
            match tag {
                TAG_PENDING => pending_tail.push(m),
                0 => {
                    pending_tail.clear();
                    if let Some(&l) = last_seq.get(&m.0)
                        && m.1 <= l
                    {
                        acc.errors.push(format!(
                            "worker {w}: producer {} out of order: {} after {l}",
                            m.0, m.1
                        ));
                    }
                    last_seq.insert(m.0, m.1);
                    *committed.entry(m).or_default() += 1;
                    not_done.insert(m);
                }
                TAG_DONE => {
                    if !not_done.remove(&m) {
                        acc.errors
                            .push(format!("worker {w}: done for {m:?} before committed"));
                    }
                }
                _ => acc
                    .errors
                    .push(format!("worker {w}: impossible record {r:?}")),
            }
        }
        if *killed {
            // What it was reading when it died: taken if nobody committed it (counted below).
            taken_by_dead.extend(pending_tail.iter().copied());
            acc.owed += not_done.len() as u64;
            // Killed between a task_done and its done record: that one may have been done.
            if !not_done.is_empty() {
                acc.ambiguous += 1;
            }
        } else if !pending_tail.is_empty() || !not_done.is_empty() {
            acc.errors.push(format!(
                "worker {w} exited inside a get or before task_done"
            ));
        }
    }
    for (id, a) in acked.iter().enumerate() {
        for seq in a.iter().flat_map(|&a| 0..=a) {
            let m = (id as u32, seq);
            acc.acknowledged += 1;
            if !committed.contains_key(&m) && !taken_by_dead.contains(&m) {
                acc.lost.push(m);
            }
        }
    }
    for (&m, &n) in &committed {
        acc.delivered += 1;
        if n > 1 {
            acc.duplicates.push(m);
        }
        let Some(&a) = acked.get(m.0 as usize) else {
            acc.errors
                .push(format!("message {m:?} from a producer that never ran"));
            continue;
        };
        if a.is_none_or(|a| m.1 > a) {
            acc.unacknowledged_delivered += 1;
            // A producer tries at most one put (of up to 7 messages) past its last record.
            let limit = a.map_or(6, |a| a + 7);
            if m.1 > limit {
                acc.errors.push(format!(
                    "message {m:?} was never put (last acknowledged {a:?})"
                ));
            }
        }
    }
    acc.taken_by_killed_workers = taken_by_dead
        .iter()
        .filter(|m| !committed.contains_key(m))
        .count();
    acc.owed += acc.taken_by_killed_workers as u64;
    acc.duplicates.sort_unstable();
    acc.lost.sort_unstable();
    acc
}

/// The accounting tells a loss, a duplicate, a take by a killed worker, a reorder and a
/// half-written message apart, on made-up logs.
#[test]
fn accounting_tells_the_outcomes_apart() {
    let p = TAG_PENDING;
    let d = TAG_DONE;
    // Producer 0 acknowledged 0..=3. Worker 0 (killed) committed and did 0, then died reading 1
    // (taken: nobody committed it). Worker 1 committed 2 and 3 and did both.
    let logs = vec![
        (true, vec![p, 0, 0, 0, d, 0, p, 1]),
        (false, vec![p, 2, 0, 2, d, 2, p, 3, 0, 3, d, 3]),
    ];
    let acc = account(&[Some(3)], &logs);
    assert!(
        acc.errors.is_empty() && acc.lost.is_empty() && acc.duplicates.is_empty(),
        "{acc:?}"
    );
    assert_eq!(
        (acc.taken_by_killed_workers, acc.owed, acc.ambiguous),
        (1, 1, 0)
    );

    // Without the pending record of 1, message 1 is lost.
    let lossy = vec![(true, vec![p, 0, 0, 0, d, 0]), logs[1].clone()];
    assert_eq!(account(&[Some(3)], &lossy).lost, vec![(0, 1)]);

    // Committed by two workers: a duplicate.
    let twice = vec![
        (false, vec![0, 0, d, 0, 0, 1, d, 1]),
        (false, vec![0, 1, d, 1]),
    ];
    assert_eq!(account(&[Some(1)], &twice).duplicates, vec![(0, 1)]);

    // Out of order for one worker, a corrupt message, a killed worker that owes a task_done.
    let bad = vec![
        (false, vec![0, 1, d, 1, 0, 0, d, 0]),
        (true, vec![CORRUPT, CORRUPT, 0, 2]),
    ];
    let acc = account(&[Some(2)], &bad);
    assert_eq!(acc.errors.len(), 2, "{:?}", acc.errors);
    assert_eq!((acc.owed, acc.ambiguous), (1, 1));

    // A message past what its producer can have tried to put.
    let ghost = vec![(false, vec![0, 20, d, 20])];
    assert_eq!(account(&[Some(3)], &ghost).errors.len(), 1);
}
