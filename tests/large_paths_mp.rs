//! Large messages on file-backed and anonymous queues, and zero-copy puts of any size
//! (`Queue::put_with_len`), across real processes: two processes over a file, a process tree
//! made by `fork` over an anonymous queue, and SIGKILL of every holder of an anonymous queue.
//! Each checks that every message arrives once and whole and that nothing is left behind.

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Name, Watchdog, eventually, finish_all, kill, spawn};
use shmq::{Options, Queue};

/// The files in `dir` whose names start with `prefix`.
fn files_starting(dir: &Path, prefix: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.starts_with(prefix))
                .collect()
        })
        .unwrap_or_default()
}

/// Checks "id:seq len" lines: each message once, `expected` in all, some of them large.
fn check_lines(outs: Vec<Vec<u8>>, expected: usize, slot: usize) {
    let mut seen = HashSet::new();
    let mut large = 0;
    for out in outs {
        for line in String::from_utf8(out).unwrap().lines() {
            let Some((key, len)) = line.split_once(' ') else {
                continue;
            };
            if !key.contains(':') {
                continue;
            }
            assert!(seen.insert(key.to_owned()), "{key} delivered twice");
            if len.parse::<usize>().unwrap() > slot {
                large += 1;
            }
        }
    }
    assert_eq!(seen.len(), expected, "messages lost");
    assert!(large > 0, "the run carried large messages");
}

/// Removes a file queue and its side files even when the test fails.
struct FileQueue(PathBuf);

impl Drop for FileQueue {
    fn drop(&mut self) {
        let _ = Queue::unlink_file(&self.0);
    }
}

#[test]
fn a_file_backed_queue_carries_large_messages_between_processes_and_unlink_file_removes_them() {
    let _w = Watchdog::new("file-backed large messages", Duration::from_secs(120));
    let name = Name::new("paths-file");
    let dir = std::env::temp_dir();
    let path = dir.join(name.as_str());
    let _cleanup = FileQueue(path.clone());
    let q = Queue::create_file(
        &path,
        &Options {
            capacity: 4,
            message_size: 256,
            max_message_size: 4 << 20,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(q.max_message_size(), 4 << 20);
    let p = path.to_str().unwrap();
    let consumer = spawn("file-consumer", &[p]);
    let producers: Vec<_> = (0..2)
        .map(|id| spawn("file-producer", &[p, &id.to_string(), "40", "2000000"]))
        .collect();
    finish_all(producers);
    q.close().unwrap();
    check_lines(finish_all(vec![consumer]), 80, 256);
    let sides = format!("{}.big.", name.as_str());
    assert!(
        files_starting(&dir, &sides).is_empty(),
        "taken messages leave no side file"
    );
    // A large message still queued has its side file beside the queue's file until
    // `unlink_file`.
    let path2 = dir.join(format!("{}-2", name.as_str()));
    let _cleanup2 = FileQueue(path2.clone());
    let q2 = Queue::create_file(
        &path2,
        &Options {
            capacity: 2,
            message_size: 64,
            ..Default::default()
        },
    )
    .unwrap();
    q2.put(vec![5u8; 100_000]).unwrap();
    let sides2 = format!("{}-2.big.", name.as_str());
    assert_eq!(files_starting(&dir, &sides2).len(), 1);
    Queue::unlink_file(&path2).unwrap();
    assert!(!path2.exists());
    assert!(
        files_starting(&dir, &sides2).is_empty(),
        "unlink_file removes side files"
    );
}

#[test]
fn an_anonymous_queue_carries_large_messages_across_fork_and_its_last_drop_removes_them() {
    let _w = Watchdog::new("anonymous large messages", Duration::from_secs(120));
    let mut p = spawn("anon-fork", &["40", "3000000"]);
    let id = p.line();
    let prefix = format!(".shmq-anon-{}", id.trim());
    let out = p.finish();
    check_lines(vec![out], 80, 4096);
    assert!(
        files_starting(Path::new("/dev/shm"), &prefix).is_empty(),
        "the last drop removes the anchor and the side segments"
    );
}

#[test]
fn the_side_segments_of_an_anonymous_queue_whose_holders_were_killed_are_reaped() {
    let _w = Watchdog::new("reaped anonymous queue", Duration::from_secs(60));
    let mut p = spawn("anon-hold", &["100000"]);
    let line = p.line();
    let (id, child) = line.trim().split_once(' ').unwrap();
    let prefix = format!(".shmq-anon-{id}");
    let child: u32 = child.parse().unwrap();
    let shm = Path::new("/dev/shm");
    // The anchor and the queued message's side segment.
    assert_eq!(files_starting(shm, &prefix).len(), 2, "{prefix}");
    p.kill9();
    // The forked child still holds the queue: making an anonymous queue reaps nothing of it.
    let opts = Options {
        capacity: 2,
        message_size: 64,
        ..Default::default()
    };
    drop(Queue::anonymous(&opts).unwrap());
    assert_eq!(
        files_starting(shm, &prefix).len(),
        2,
        "a live holder keeps it"
    );
    kill(child, 9);
    assert!(
        eventually(Duration::from_secs(20), || {
            drop(Queue::anonymous(&opts).unwrap());
            files_starting(shm, &prefix).is_empty()
        }),
        "the next anonymous queue reaps what the killed holders left"
    );
}
