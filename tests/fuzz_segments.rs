//! Structured segment fuzzing: every field of real queue, pipe, dict and lock segments is set to
//! interesting values, and every operation of the public API is run on each damaged segment in a
//! child process. A damaged segment may lose or garble messages, but it must never make a
//! process that validates it crash, hang or allocate beyond reason.
//!
//! # Templates
//!
//! Real segments made through the public API and real processes, then copied byte for byte
//! from `/dev/shm`: queues with messages (positions past a wrap), full and closed, fresh, and with
//! the ring's lock left by a producer SIGKILLed inside `put`; a duplex pipe with messages both
//! ways, live holders and a dead one; a one-way pipe; a dict with entries and tombstones, and one
//! whose lock holder was SIGKILLed; a free lock and one whose holder was SIGKILLed.
//!
//! # Mutations
//!
//! Word by word rather than byte noise that dies at the magic number:
//!
//! - every u32 and u64 word of the header's fields;
//! - every u32 and u64 word in the first 64 bytes of each 128-byte line of each control block
//!   (ring control: lock, head, tail, done/flags, semaphore words and sleeper counts, join word;
//!   pipe: lock, `gone`; dict: lock, generation, count; lock segment: the mutex). Values: 0, 1, 2,
//!   the maximum and its neighbour, the original ±1, ± the capacity, the futex bits (waiters,
//!   owner-died), a thread id that does not exist, the semaphore flag bits, the message size and
//!   capacity and their successors, and a random value;
//! - head, tail and done shifted together so that they sit near `u64::MAX` (consistent, but about
//!   to overflow);
//! - the header words of slots holding messages and of a free slot (length 0, `message_size`,
//!   `message_size + 1`, `u32::MAX`, ...), and their sequence words (claims naming the template's
//!   participants, unknown ones and absurd counts; full and void words and layout 3's seal
//!   state, of this and other laps), and length words with bit 63 set (a large message's descriptor that names no
//!   side segment, of a wrong length, over the slot size);
//! - the participant registry's entries (as every control-block line: pids, start times);
//! - the intent lanes of the lock holder's row and of the first three registry rows (as every
//!   control-block line), and intents naming the positions at `head`, `tail - 1` and `tail`
//!   with live, dead and unknown owners and absurd counts;
//! - pipe holder entries (tags naming pid 1, a dead pid, an unknown end, ...; start times);
//! - dict entry state words (key length 0/max/max+1/0xffff, every tag, other generations), key
//!   words and values (`i64::MIN`/`MAX`, so that `add` overflows);
//! - random flips of 1-3 bits inside each mutex.
//!
//! # Verdict
//!
//! Each case runs in a `shmq-child fuzz-run` process (many cases per process; a process that
//! dies is replaced from the next case, so one failure does not hide others): open, inspection,
//! every non-blocking or short-timeout get/put/send/recv/batch/zero-copy call, `task_done`,
//! `join_timeout`, `close`, dict get/insert/add/remove/lock/clear, lock try_lock. A case passes
//! if the process survives it: every call returned `Ok` or a typed error. It fails on a signal
//! (SIGSEGV, SIGBUS, SIGABRT: an assertion in glibc), a panic (reported by a hook, exit status
//! 70), a hang (a watchdog raises SIGALRM when one call runs for 3 s), or an allocation beyond the
//! segment (the child's address space is capped 32 MiB above what it uses at start, four orders
//! of magnitude above the segments' few kilobytes, so such an allocation aborts with "memory
//! allocation of N bytes failed"). The harness checks itself on
//! purpose-made hang, allocation and panic children first.
//!
//! `SHMQ_FUZZ_RANDOM=N` adds N random multi-word mutations (default 400), `SHMQ_FUZZ_SEED`
//! changes the seed, `SHMQ_FUZZ_WORKERS` the number of child processes at once (default 8).
//! `SHMQ_FUZZ_ALLOW=lock,positions,counts` excuses failures of bugs already known while their
//! fixes are not merged (see `known_class`; by default nothing is excused).
//! The cases run in a random order, and the run stops early after `SHMQ_FUZZ_MAX_FAILURES`
//! failures (default 60: each hang costs the watchdog's 3 s), and fails either way.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{CHILD, Name, Watchdog, spawn};
use shmq::substrate::layout::{self, RingControl, RingLayout};
use shmq::{Options, Pipe, Queue};
use shmq_dict::{Lock, SharedDict};

/// Exit status of a child whose fuzzed call panicked (`tests/src/child/fuzz.rs`).
const PANIC_EXIT: i32 = 70;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// A real segment, copied.
struct Template {
    kind: &'static str,
    what: String,
    bytes: Vec<u8>,
    /// Whether every word gets the full value set (else a reduced one).
    full: bool,
}

impl Template {
    fn u64_at(&self, off: usize) -> u64 {
        u64::from_ne_bytes(self.bytes[off..off + 8].try_into().unwrap())
    }

    fn u32_at(&self, off: usize) -> u32 {
        u32::from_ne_bytes(self.bytes[off..off + 4].try_into().unwrap())
    }

    fn capacity(&self) -> u64 {
        self.u64_at(32)
    }

    fn message_size(&self) -> u64 {
        self.u64_at(40)
    }

    fn stride(&self) -> u64 {
        self.u64_at(48)
    }
}

fn copy_segment(name: &str) -> Vec<u8> {
    std::fs::read(format!("/dev/shm/{name}")).expect("read the segment")
}

/// Every template, made through the public API with real processes.
fn templates() -> Vec<Template> {
    let mut out = Vec::new();
    let opts = Options {
        capacity: 8,
        message_size: 64,
        ..Default::default()
    };

    // A queue whose positions have wrapped, with 3 messages and some tasks done.
    let n = Name::new("fuzz-tq");
    let q = Queue::create(&n, &opts).unwrap();
    for i in 0..10u8 {
        q.put([i; 20]).unwrap();
        q.get().unwrap();
    }
    for i in 0..3u8 {
        q.put([i; 33]).unwrap();
    }
    for _ in 0..5 {
        q.task_done().unwrap();
    }
    out.push(Template {
        kind: "queue",
        what: "queue with 3 messages, wrapped".into(),
        bytes: copy_segment(&n),
        full: true,
    });
    // The same queue after a producer died inside put, holding the lock.
    let mut crasher = spawn("crash-in-put", &[&n]);
    assert_eq!(crasher.line(), "holding");
    crasher.kill9();
    out.push(Template {
        kind: "queue",
        what: "queue, lock owner SIGKILLed in put".into(),
        bytes: copy_segment(&n),
        full: false,
    });
    drop(q);
    drop(n);

    let n = Name::new("fuzz-tqf");
    let q = Queue::create(&n, &opts).unwrap();
    for i in 0..8u8 {
        q.put([i; 64]).unwrap();
    }
    q.close().unwrap();
    out.push(Template {
        kind: "queue",
        what: "queue full and closed".into(),
        bytes: copy_segment(&n),
        full: false,
    });
    drop(q);
    drop(n);

    let n = Name::new("fuzz-tqe");
    let q = Queue::create(&n, &opts).unwrap();
    out.push(Template {
        kind: "queue",
        what: "fresh queue".into(),
        bytes: copy_segment(&n),
        full: false,
    });
    drop(q);
    drop(n);

    // A duplex pipe with messages both ways, two live holders (this process) and a dead one.
    let popts = Options {
        capacity: 4,
        message_size: 32,
        ..Default::default()
    };
    let n = Name::new("fuzz-tp");
    let (a, b) = Pipe::create(&n, &popts).unwrap();
    let mut holder = spawn("p-hold", &[&n, "B"]);
    assert_eq!(holder.line(), "ready");
    holder.kill9();
    a.send(b"to b 1").unwrap();
    a.send(b"to b 2").unwrap();
    b.send(b"to a").unwrap();
    out.push(Template {
        kind: "pipe",
        what: "duplex pipe, messages both ways, a dead holder".into(),
        bytes: copy_segment(&n),
        full: true,
    });
    drop((a, b));
    drop(n);

    let n = Name::new("fuzz-tp1");
    let (a, b) = Pipe::create_one_way(&n, &popts).unwrap();
    b.send(b"one").unwrap();
    b.send(b"two").unwrap();
    out.push(Template {
        kind: "pipe",
        what: "one-way pipe with 2 messages".into(),
        bytes: copy_segment(&n),
        full: false,
    });
    drop((a, b));
    drop(n);

    // A dict with entries and tombstones; then its lock holder dies.
    let n = Name::new("fuzz-td");
    let d = SharedDict::create(
        &n,
        &shmq_dict::Options {
            capacity: 16,
            max_key_len: 16,
            ..Default::default()
        },
    )
    .unwrap();
    for i in 0..8 {
        d.insert(&format!("k{i}"), i).unwrap();
    }
    d.remove("k5").unwrap();
    d.remove("k6").unwrap();
    d.insert("count", 10).unwrap();
    out.push(Template {
        kind: "dict",
        what: "dict with entries and tombstones".into(),
        bytes: copy_segment(&n),
        full: true,
    });
    let mut crasher = spawn("crash-dict-hold", &[&n, "before"]);
    assert_eq!(crasher.line(), "holding 10");
    crasher.kill9();
    out.push(Template {
        kind: "dict",
        what: "dict, lock owner SIGKILLed".into(),
        bytes: copy_segment(&n),
        full: false,
    });
    drop(d);
    drop(n);

    let n = Name::new("fuzz-tl");
    let l = Lock::create(&n).unwrap();
    out.push(Template {
        kind: "lock",
        what: "free lock".into(),
        bytes: copy_segment(&n),
        full: true,
    });
    let mut crasher = spawn("crash-lock-hold", &[&n]);
    assert_eq!(crasher.line(), "holding");
    crasher.kill9();
    out.push(Template {
        kind: "lock",
        what: "lock, holder SIGKILLed".into(),
        bytes: copy_segment(&n),
        full: true,
    });
    drop(l);
    drop(n);
    out
}

/// One fuzz case: a template and the words to change.
struct Case {
    template: usize,
    /// (`s8`/`s4`/`x1`, offset, value)
    muts: Vec<(&'static str, usize, u64)>,
    /// What is changed, for the report.
    field: String,
}

impl Case {
    fn line(&self) -> String {
        let mut s = self.template.to_string();
        for (op, off, v) in &self.muts {
            s.push_str(&format!(" {op}@{off}={v}"));
        }
        s
    }

    fn value(&self) -> String {
        self.muts
            .iter()
            .map(|(op, _, v)| match *op {
                "x1" => format!("^{v:#04x}"),
                _ => format!("{v:#x}"),
            })
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// A thread id that does not exist (and is not likely to: above the default `pid_max`).
const DEAD_TID: u32 = 0x0040_3039;

fn u32_values(full: bool, orig: u32, cap: u64, ms: u64, rng: &mut Rng) -> Vec<u64> {
    let mut v: Vec<u32> = vec![
        0,
        1,
        u32::MAX,
        orig.wrapping_add(1),
        orig.wrapping_sub(1),
        DEAD_TID,
        rng.next() as u32,
    ];
    if full {
        v.extend([
            2,
            u32::MAX - 1,
            1 << 31,
            1 << 30,
            (1 << 30) - 1,
            orig | 1 << 31,
            orig | 1 << 30,
            0x4000_0000 | DEAD_TID,
            0x3039,
            cap as u32,
            cap as u32 + 1,
            ms as u32,
            ms as u32 + 1,
        ]);
    }
    dedup(v.into_iter().map(u64::from).collect(), u64::from(orig))
}

fn u64_values(full: bool, orig: u64, cap: u64, rng: &mut Rng) -> Vec<u64> {
    let mut v = vec![
        0,
        u64::MAX,
        orig.wrapping_add(1),
        orig.wrapping_sub(1),
        orig.wrapping_add(cap + 1),
        rng.next(),
    ];
    if full {
        v.extend([
            1,
            2,
            u64::MAX - 1,
            orig.wrapping_add(cap),
            orig.wrapping_sub(cap),
            cap,
            u64::MAX - cap,
            1 << 63,
            i64::MAX as u64,
            u64::from(u32::MAX),
            1 << 32,
            orig ^ (1 << 32),
        ]);
    }
    dedup(v, orig)
}

fn dedup(mut v: Vec<u64>, orig: u64) -> Vec<u64> {
    v.sort_unstable();
    v.dedup();
    v.retain(|&x| x != orig);
    v
}

struct Gen<'a> {
    cases: Vec<Case>,
    /// Whether words get the full value set (else a reduced one).
    full: bool,
    rng: Rng,
    t: usize,
    tmpl: &'a Template,
}

impl Gen<'_> {
    fn push(&mut self, muts: Vec<(&'static str, usize, u64)>, field: String) {
        self.cases.push(Case {
            template: self.t,
            muts,
            field,
        });
    }

    /// Every u32 and u64 word of `[start, end)` over the value sets.
    fn words(&mut self, start: usize, end: usize, name: &dyn Fn(usize) -> String) {
        let (full, cap, ms) = (self.full, self.tmpl.capacity(), self.tmpl.message_size());
        for off in (start..end).step_by(4) {
            let orig = self.tmpl.u32_at(off);
            for v in u32_values(full, orig, cap, ms, &mut self.rng) {
                self.push(vec![("s4", off, v)], format!("{} (u32)", name(off)));
            }
            if off % 8 == 0 {
                let orig = self.tmpl.u64_at(off);
                for v in u64_values(full, orig, cap, &mut self.rng) {
                    self.push(vec![("s8", off, v)], format!("{} (u64)", name(off)));
                }
            }
        }
    }

    /// The first 64 bytes of every 128-byte line of `[start, end)` (the rest of each line is
    /// padding in every layout so far).
    fn lines(&mut self, start: usize, end: usize, name: &dyn Fn(usize) -> String) {
        for line in (start..end).step_by(layout::LINE) {
            self.words(line, (line + 64).min(end), name);
        }
    }

    /// Random flips of 1 to 3 bits inside `[start, start + len)`.
    fn flips(&mut self, start: usize, len: usize, n: usize, what: &str) {
        for _ in 0..n {
            let k = 1 + self.rng.below(3) as usize;
            let muts = (0..k)
                .map(|_| {
                    (
                        "x1",
                        start + self.rng.below(len as u64) as usize,
                        1u64 << self.rng.below(8),
                    )
                })
                .collect();
            self.push(muts, format!("{what}: bit flips"));
        }
    }

    fn header(&mut self) {
        self.words(0, 112, &|off| {
            let f = match off {
                0..=7 => "magic",
                8..=11 => "version",
                12..=15 => "kind",
                16..=19 => "state",
                20..=23 => "header_size",
                24..=31 => "total_size",
                32..=39 => "capacity",
                40..=47 => "message_size",
                48..=55 => "slot_stride",
                56..=63 => "aux",
                64..=67 => "creator_pid",
                68..=71 => "reserved",
                72..=79 => "creator_start",
                80..=103 => "reserved",
                _ => "max_message",
            };
            format!("header.{f}+{}", off % 8 % if off < 8 { 8 } else { 4 })
        });
    }

    /// A ring: its control block, positions shifted near `u64::MAX`, slot headers, lock flips.
    fn ring(&mut self, tag: &str, r: &RingLayout) {
        let c = r.control;
        let fields = [
            ("lock", std::mem::offset_of!(RingControl, lock)),
            ("head", std::mem::offset_of!(RingControl, head)),
            ("tail", std::mem::offset_of!(RingControl, tail)),
            ("counters", std::mem::offset_of!(RingControl, counters)),
            ("items", std::mem::offset_of!(RingControl, items)),
            ("free", std::mem::offset_of!(RingControl, free)),
            ("joined", std::mem::offset_of!(RingControl, joined)),
            (
                "participants",
                std::mem::offset_of!(RingControl, participants),
            ),
            ("intents", std::mem::offset_of!(RingControl, intents)),
        ];
        let name = |off: usize| {
            let rel = off - c;
            let (f, at) = fields
                .iter()
                .filter(|(_, o)| *o <= rel)
                .max_by_key(|(_, o)| *o)
                .copied()
                .unwrap_or(("?", 0));
            format!("{tag}.{f}+{}", rel - at)
        };
        // Every line up to the intents, then the rows of the lock holder and of the first three
        // registry entries (the templates' participants; the other 61 rows are alike).
        let intents = c + fields[8].1;
        self.lines(c, intents + 4 * layout::LINE, &name);

        let (head_at, tail_at, done_at) = (c + fields[1].1, c + fields[2].1, c + fields[3].1);
        let (head, tail, done) = (
            self.tmpl.u64_at(head_at),
            self.tmpl.u64_at(tail_at),
            self.tmpl.u64_at(done_at),
        );
        let cap = r.capacity;
        for k in [0, 1, 2, cap - 1, cap, cap + 1] {
            // Move every position by the same amount, so that tail = u64::MAX - k.
            let delta = (u64::MAX - k).wrapping_sub(tail);
            self.push(
                vec![
                    ("s8", head_at, head.wrapping_add(delta)),
                    ("s8", tail_at, tail.wrapping_add(delta)),
                    ("s8", done_at, done.wrapping_add(delta)),
                ],
                format!("{tag}.head/tail/done shifted to tail = u64::MAX - {k}"),
            );
        }

        // Intents (the encoding of a claim word) naming the positions a consumer meets, in the
        // lanes of the lock holder, a template participant and an unused row.
        for row in [0usize, 1, 9] {
            let at = intents + row * layout::LINE;
            for pos in [head, tail.wrapping_sub(1), tail] {
                let p = pos << 24;
                for v in [
                    p | 1 | 1 << 3,
                    p | 1 | 2 << 3 | 2 << 11,
                    p | 1 | 255 << 3 | 8191 << 11,
                ] {
                    self.push(
                        vec![("s8", at + 8 * (row % 3), v)],
                        format!("{tag}.intents row {row}: {v:#x}"),
                    );
                }
            }
        }

        let header = r.stride - r.message_size;
        let ms = r.message_size as u64;
        let mut slots: Vec<u64> = vec![head % cap, tail.wrapping_sub(1) % cap, tail % cap];
        slots.dedup();
        for slot in slots {
            let at = r.slots + slot as usize * r.stride;
            for off in (at..at + header).step_by(4) {
                let orig = self.tmpl.u32_at(off);
                let vals = [
                    0,
                    1,
                    ms - 1,
                    ms,
                    ms + 1,
                    u64::from(u32::MAX),
                    1 << 31,
                    r.stride as u64,
                    u64::from(self.rng.next() as u32),
                ];
                for v in dedup(vals.to_vec(), u64::from(orig)) {
                    self.push(
                        vec![("s4", off, v)],
                        format!("{tag}.slot[{slot}]+{} (u32)", off - at),
                    );
                }
                if off - at == 8 {
                    // The sequence word: claims naming live, dead and unknown participants and
                    // absurd counts, and the other states for this and other laps.
                    let orig = self.tmpl.u64_at(off);
                    let mut vals = Vec::new();
                    for pos in [head, tail.wrapping_sub(1), tail, tail.wrapping_add(cap)] {
                        let p = pos << 24;
                        vals.extend([
                            p | 1 | 1 << 3,
                            p | 1 | 2 << 3 | 2 << 11,
                            p | 1 | 255 << 3 | 8191 << 11,
                            p | 1,
                            p | 2,
                            p | 3,
                            p | 4,
                            p | 7,
                        ]);
                    }
                    for v in dedup(vals, orig) {
                        self.push(vec![("s8", off, v)], format!("{tag}.slot[{slot}].seq"));
                    }
                }
                if (off - at).is_multiple_of(8) {
                    let orig = self.tmpl.u64_at(off);
                    for v in u64_values(false, orig, cap, &mut self.rng) {
                        self.push(
                            vec![("s8", off, v)],
                            format!("{tag}.slot[{slot}]+{} (u64)", off - at),
                        );
                    }
                    // The length word with bit 63 (a large message's descriptor, issue 11):
                    // a descriptor of the right length naming no side segment, the wrong
                    // length, and one over the slot size.
                    if off == at {
                        for v in [32, 0, ms + 1] {
                            self.push(
                                vec![("s8", off, 1 << 63 | v)],
                                format!("{tag}.slot[{slot}] large descriptor of {v} bytes"),
                            );
                        }
                    }
                }
            }
        }
        let lock_len = std::mem::size_of::<shmq::substrate::sync::RawMutex>().min(64);
        self.flips(c + fields[0].1, lock_len, 48, &format!("{tag}.lock"));
    }

    fn pipe(&mut self) {
        let t = self.tmpl;
        let (l, _) = layout::pipe_layout(t.capacity(), t.message_size(), t.u64_at(56) == 1)
            .expect("pipe layout");
        self.lines(l.lock, l.gone, &|off| format!("pipe.lock+{}", off - l.lock));
        let gone = t.u64_at(l.gone);
        for v in dedup(vec![0, 1, 2, 3, 4, u64::MAX], gone) {
            self.push(vec![("s8", l.gone, v)], "pipe.gone (u64)".into());
        }
        let me = u64::from(std::process::id());
        for e in (0..6).chain([layout::PIPE_HOLDERS - 1]) {
            let at = l.holders + e * layout::PIPE_HOLDER_SIZE;
            let tag = t.u64_at(at);
            let tags = vec![
                0,
                tag.wrapping_add(1),
                1 << 32 | 1,
                2 << 32 | 1,
                3 << 32 | me,
                1 << 32 | u64::from(DEAD_TID),
                2 << 32,
                tag ^ 3 << 32,
                1 << 32 | u64::from(u32::MAX),
                u64::MAX,
            ];
            for v in dedup(tags, tag) {
                self.push(vec![("s8", at, v)], format!("pipe.holder[{e}].tag"));
            }
            let start = t.u64_at(at + 8);
            for v in dedup(vec![0, u64::MAX, start.wrapping_add(1)], start) {
                self.push(vec![("s8", at + 8, v)], format!("pipe.holder[{e}].start"));
            }
        }
        self.flips(
            l.lock,
            std::mem::size_of::<shmq::substrate::sync::RawMutex>().min(64),
            48,
            "pipe.lock",
        );
        if let Some(ab) = l.a_to_b {
            // The same code as ring B->A: the reduced value set.
            let full = std::mem::replace(&mut self.full, false);
            self.ring("ring A->B", &ab);
            self.full = full;
        }
        self.ring("ring B->A", &l.b_to_a);
    }

    fn dict(&mut self) {
        let t = self.tmpl;
        let mutex = layout::HEADER_SIZE;
        let control = mutex + layout::LINE;
        let entries = control + layout::LINE;
        self.words(mutex, mutex + 64, &|off| {
            format!("dict.lock+{}", off - mutex)
        });
        self.words(control, control + 64, &|off| match off - control {
            0 => "dict.generation".into(),
            8 => "dict.count".into(),
            o => format!("dict.control+{o}"),
        });
        self.flips(mutex, 64, 48, "dict.lock");
        let (cap, stride, max_key) = (t.capacity() as usize, t.stride() as usize, t.message_size());
        let generation = t.u64_at(control);
        let mut picked = 0;
        for e in 0..cap {
            let at = entries + e * stride;
            let state = t.u64_at(at);
            if (state == 0 && picked > 0) || picked >= 7 {
                continue;
            }
            picked += 1;
            let len_of = |l: u64| state & !0xffff | l;
            let mut vals = vec![
                0,
                u64::MAX,
                len_of(0),
                len_of(max_key),
                len_of(max_key + 1),
                len_of(0xffff),
                state & 0x3ffff | generation.wrapping_sub(1) << 18,
                state & 0x3ffff | generation.wrapping_add(1) << 18,
                state & 0x3ffff | (u64::MAX >> 18) << 18,
                1 << 16 | generation << 18 | max_key,
            ];
            vals.extend((0..4).map(|tag| state & !(3 << 16) | tag << 16));
            for v in dedup(vals, state) {
                self.push(vec![("s8", at, v)], format!("dict.entry[{e}].state"));
            }
            let value = t.u64_at(at + 8);
            for v in dedup(vec![i64::MIN as u64, i64::MAX as u64], value) {
                self.push(vec![("s8", at + 8, v)], format!("dict.entry[{e}].value"));
            }
            for w in (at + 16..at + stride).step_by(8) {
                let key = t.u64_at(w);
                for v in dedup(
                    vec![0, u64::MAX, self.rng.next(), 0xffff_ffff_ff80_c0e0],
                    key,
                ) {
                    self.push(
                        vec![("s8", w, v)],
                        format!("dict.entry[{e}].key+{}", w - at - 16),
                    );
                }
            }
        }
    }

    fn lock(&mut self) {
        let mutex = layout::HEADER_SIZE;
        self.words(mutex, mutex + 64, &|off| {
            format!("lock.mutex+{}", off - mutex)
        });
        self.flips(mutex, 64, 96, "lock.mutex");
    }
}

fn cases(templates: &[Template], seed: u64, random: usize) -> Vec<Case> {
    let mut rng = Rng(seed | 1);
    let mut all = Vec::new();
    for (t, tmpl) in templates.iter().enumerate() {
        let mut g = Gen {
            cases: Vec::new(),
            full: tmpl.full,
            rng: Rng(rng.next() | 1),
            t,
            tmpl,
        };
        g.header();
        match tmpl.kind {
            "queue" => {
                let (ring, _) = layout::queue_layout(tmpl.capacity(), tmpl.message_size())
                    .expect("queue layout");
                g.ring("ring", &ring);
            }
            "pipe" => g.pipe(),
            "dict" => g.dict(),
            "lock" => g.lock(),
            k => unreachable!("{k}"),
        }
        all.extend(g.cases);
    }
    // Random multi-word damage: 2 to 6 words of the control area of a random template.
    for _ in 0..random {
        let t = rng.below(templates.len() as u64) as usize;
        let len = templates[t].bytes.len().min(4096);
        let k = 2 + rng.below(5) as usize;
        let muts = (0..k)
            .map(|_| {
                let off = (8 + rng.below(len as u64 - 8) as usize) & !7;
                match rng.below(3) {
                    0 => ("s8", off, rng.next()),
                    1 => ("s4", off, rng.next() >> 32),
                    _ => ("x1", off, 1 << rng.below(8)),
                }
            })
            .collect();
        all.push(Case {
            template: t,
            muts,
            field: format!("random: {k} words"),
        });
    }
    // In a random order, so that a run stopped early by SHMQ_FUZZ_MAX_FAILURES still samples
    // every template and field.
    for i in (1..all.len()).rev() {
        all.swap(i, rng.below(i as u64 + 1) as usize);
    }
    all
}

/// Removes the work directory on drop.
struct Dir(std::path::PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[derive(Debug, Clone)]
struct Failure {
    case: usize,
    op: String,
    kind: String,
    detail: String,
}

/// How one run of a child ended.
struct Run {
    /// The last case begun and not ended (if the child died inside one).
    open_case: Option<usize>,
    op: String,
    /// Ended cases and the open outcome each reported.
    ended: Vec<(usize, String)>,
    panic: Option<String>,
    status: std::process::ExitStatus,
    stderr: String,
}

fn run_child(args: &[&str]) -> Run {
    let mut child = Command::new(CHILD)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start shmq-child");
    let mut err = child.stderr.take().unwrap();
    let errs = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let mut run = Run {
        open_case: None,
        op: String::new(),
        ended: Vec::new(),
        panic: None,
        status: std::process::ExitStatus::default(),
        stderr: String::new(),
    };
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.expect("read child stdout");
        let (tag, rest) = line.split_once(' ').unwrap_or((&line, ""));
        match tag {
            "B" => {
                run.open_case = Some(rest.parse().expect("case number"));
                run.op.clear();
            }
            "O" => run.op = rest.to_owned(),
            "E" => {
                let (i, what) = rest.split_once(' ').unwrap_or((rest, ""));
                run.ended
                    .push((i.parse().expect("case number"), what.to_owned()));
                run.open_case = None;
            }
            "P" => run.panic = Some(rest.to_owned()),
            _ => {}
        }
    }
    run.status = child.wait().expect("wait for child");
    run.stderr = errs.join().unwrap();
    run
}

/// What killed a child, or `None` if it exited with status 0.
fn failure_kind(run: &Run) -> Option<(String, String)> {
    use std::os::unix::process::ExitStatusExt;
    let last_err = run
        .stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .to_owned();
    if let Some(sig) = run.status.signal() {
        let kind = match sig {
            libc::SIGALRM => "hang".to_owned(),
            libc::SIGABRT if run.stderr.contains("memory allocation of") => "allocation".to_owned(),
            libc::SIGABRT => "abort".to_owned(),
            libc::SIGSEGV => "SIGSEGV".to_owned(),
            libc::SIGBUS => "SIGBUS".to_owned(),
            s => format!("signal {s}"),
        };
        return Some((kind, last_err));
    }
    match run.status.code() {
        Some(0) => None,
        Some(PANIC_EXIT) => Some(("panic".into(), run.panic.clone().unwrap_or_default())),
        Some(c) => Some((format!("exit {c}"), last_err)),
        None => Some(("unknown".into(), last_err)),
    }
}

/// The harness catches each kind of failure it claims to catch.
fn self_test() {
    for (what, expected) in [
        ("HANG", "hang"),
        ("ALLOC", "allocation"),
        ("PANIC", "panic"),
    ] {
        let run = run_child(&["fuzz-selftest", what]);
        let got = failure_kind(&run).map(|(k, _)| k);
        assert_eq!(
            got.as_deref(),
            Some(expected),
            "self-test {what}: the harness must report {expected}; stderr: {}",
            run.stderr
        );
        assert_eq!(
            run.open_case,
            Some(0),
            "self-test {what}: the case is named"
        );
    }
}

#[test]
fn damaged_segments_never_crash_hang_or_overallocate() {
    let _w = Watchdog::new("fuzz", Duration::from_secs(900));
    let start = Instant::now();
    self_test();

    let seed = env_or("SHMQ_FUZZ_SEED", 0x5eed_f00d);
    let random = env_or("SHMQ_FUZZ_RANDOM", 400) as usize;
    let workers = env_or("SHMQ_FUZZ_WORKERS", 8).max(1) as usize;
    let max_failures = env_or("SHMQ_FUZZ_MAX_FAILURES", 60) as usize;
    let templates = templates();
    let cases = cases(&templates, seed, random);

    let dir = Dir(std::env::temp_dir().join(format!("shmq-test-fuzz-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).unwrap();
    let kinds: Vec<&str> = templates.iter().map(|t| t.kind).collect();
    std::fs::write(dir.0.join("kinds"), kinds.join("\n")).unwrap();
    for (i, t) in templates.iter().enumerate() {
        std::fs::write(dir.0.join(format!("t{i}.bin")), &t.bytes).unwrap();
    }
    let text: Vec<String> = cases.iter().map(Case::line).collect();
    std::fs::write(dir.0.join("cases"), text.join("\n")).unwrap();

    const CHUNK: usize = 250;
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::<Failure>::new());
    let outcomes = Mutex::new(BTreeMap::<String, usize>::new());
    let ran = AtomicUsize::new(0);
    let dir_str = dir.0.to_str().unwrap().to_owned();
    std::thread::scope(|s| {
        for w in 0..workers {
            let (next, failures, outcomes, ran, dir_str) =
                (&next, &failures, &outcomes, &ran, &dir_str);
            let (cases, kinds) = (&cases, &kinds);
            s.spawn(move || {
                let seg = Name::new(&format!("fuzz-w{w}"));
                loop {
                    let first = next.fetch_add(CHUNK, Ordering::SeqCst);
                    if first >= cases.len() || failures.lock().unwrap().len() >= max_failures {
                        break;
                    }
                    let last = (first + CHUNK).min(cases.len());
                    let mut from = first;
                    while from < last {
                        let run = run_child(&[
                            "fuzz-run",
                            dir_str,
                            &seg,
                            &from.to_string(),
                            &last.to_string(),
                        ]);
                        let _ = std::fs::remove_file(format!("/dev/shm/{}", &*seg));
                        ran.fetch_add(run.ended.len(), Ordering::SeqCst);
                        {
                            let mut o = outcomes.lock().unwrap();
                            for (i, what) in &run.ended {
                                *o.entry(format!("{} {what}", kinds[cases[*i].template]))
                                    .or_default() += 1;
                            }
                        }
                        match (failure_kind(&run), run.open_case) {
                            (None, None) => break,
                            (Some((kind, detail)), Some(case)) => {
                                ran.fetch_add(1, Ordering::SeqCst);
                                let mut f = failures.lock().unwrap();
                                f.push(Failure {
                                    case,
                                    op: run.op.clone(),
                                    kind,
                                    detail,
                                });
                                if f.len() >= max_failures {
                                    break;
                                }
                                from = case + 1;
                            }
                            (kind, case) => panic!(
                                "fuzz child failed outside a case ({kind:?}, {case:?}): {}",
                                run.stderr
                            ),
                        }
                    }
                }
            });
        }
    });

    let mut failures = failures.into_inner().unwrap();
    failures.sort_by_key(|f| f.case);
    let ran = ran.into_inner();
    let mut by_kind = BTreeMap::<String, usize>::new();
    let mut by_class = BTreeMap::<String, usize>::new();
    let class_of = |f: &Failure| {
        let c = &cases[f.case];
        let field = c.field.split(['+', '[', '(', ':']).next().unwrap_or("");
        let field = field.split(" shifted").next().unwrap_or("").trim();
        format!(
            "{} / {field} / {} / {}",
            templates[c.template].kind, f.op, f.kind
        )
    };
    for f in &failures {
        *by_kind.entry(f.kind.clone()).or_default() += 1;
        *by_class.entry(class_of(f)).or_default() += 1;
    }
    eprintln!(
        "fuzz: {ran} cases run ({} generated) over {} templates in {:?}, seed {seed:#x}, {workers} workers",
        cases.len(),
        templates.len(),
        start.elapsed()
    );
    for (t, tmpl) in templates.iter().enumerate() {
        let n = cases.iter().filter(|c| c.template == t).count();
        eprintln!("fuzz: template {t} ({}): {n} cases", tmpl.what);
    }
    for (o, n) in outcomes.into_inner().unwrap() {
        eprintln!("fuzz: survived, {o}: {n}");
    }
    eprintln!(
        "fuzz: {} failures {by_kind:?}{}",
        failures.len(),
        if ran < cases.len() {
            " (stopped early: SHMQ_FUZZ_MAX_FAILURES)"
        } else {
            ""
        }
    );
    for (class, n) in &by_class {
        eprintln!("fuzz: failure class {class}: {n}");
    }
    // The first failure of each class, then the others in case order, 60 lines at most.
    let mut shown = std::collections::BTreeSet::new();
    let mut listed: Vec<&Failure> = Vec::new();
    for f in &failures {
        if shown.insert(class_of(f)) {
            listed.push(f);
        }
    }
    let first: std::collections::HashSet<usize> = listed.iter().map(|f| f.case).collect();
    listed.extend(failures.iter().filter(|f| !first.contains(&f.case)));
    for f in listed.into_iter().take(60) {
        let c = &cases[f.case];
        eprintln!(
            "fuzz: FAIL case {} [{}] {} = {} | op {} | {}: {}",
            f.case,
            templates[c.template].what,
            c.field,
            c.value(),
            f.op,
            f.kind,
            f.detail
        );
    }
    assert!(
        ran == cases.len() || failures.len() >= max_failures,
        "every case ran"
    );
    let allowed: Vec<String> = std::env::var("SHMQ_FUZZ_ALLOW")
        .unwrap_or_default()
        .split(',')
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect();
    let mut excused = BTreeMap::<&str, usize>::new();
    let unexcused: Vec<&Failure> = failures
        .iter()
        .filter(|f| {
            let class = known_class(&cases[f.case], &templates[cases[f.case].template], f);
            match class {
                Some(c) if allowed.iter().any(|a| a == c) => {
                    *excused.entry(c).or_default() += 1;
                    false
                }
                _ => true,
            }
        })
        .collect();
    if !excused.is_empty() {
        eprintln!("fuzz: failures of known classes excused by SHMQ_FUZZ_ALLOW: {excused:?}");
    }
    assert!(
        unexcused.is_empty(),
        "{} of {ran} damaged segments crashed, hung or over-allocated a process (listed above)",
        unexcused.len()
    );
}

/// The rings of a template's segment.
fn rings(t: &Template) -> Vec<RingLayout> {
    match t.kind {
        "queue" => vec![
            layout::queue_layout(t.capacity(), t.message_size())
                .expect("layout")
                .0,
        ],
        "pipe" => {
            let (l, _) = layout::pipe_layout(t.capacity(), t.message_size(), t.u64_at(56) == 1)
                .expect("layout");
            l.a_to_b.into_iter().chain([l.b_to_a]).collect()
        }
        _ => Vec::new(),
    }
}

/// Where the locks of a template's segment are: the first 64 bytes of each mutex's line.
fn lock_ranges(t: &Template) -> Vec<std::ops::Range<usize>> {
    let at = |o: usize| o..o + 64;
    let mut v: Vec<_> = rings(t)
        .iter()
        .map(|r| at(r.control + std::mem::offset_of!(RingControl, lock)))
        .collect();
    if t.kind != "queue" {
        // The pipe's holder-table lock, the dict's and the lock segment's mutex.
        v.push(at(layout::HEADER_SIZE));
    }
    v
}

/// Where the positions and semaphore counts of a template's rings are.
fn count_ranges(t: &Template) -> Vec<std::ops::Range<usize>> {
    let fields = [
        std::mem::offset_of!(RingControl, head),
        std::mem::offset_of!(RingControl, tail),
        std::mem::offset_of!(RingControl, items),
        std::mem::offset_of!(RingControl, free),
    ];
    rings(t)
        .iter()
        .flat_map(|r| fields.map(|f| r.control + f..r.control + f + 64))
        .collect()
}

/// The class of a failure of a bug already known, which `SHMQ_FUZZ_ALLOW` (a comma-separated
/// list) may excuse while its fix is not merged; the default excuses nothing.
///
/// - `lock`: a hang or an abort of a case that changed bytes of a lock (issue 9, bugs 4 and 7:
///   a lock word naming a thread that does not exist, or another live process, is waited for
///   without a deadline; glibc's mutex fields are trusted and its assertions abort).
/// - `positions`: a panic with head, tail and done moved near `u64::MAX` (issue 9, bug 6).
/// - `counts`: a `_timeout` or `poll` call that spins past its deadline because a semaphore's
///   count (or a position) no longer matches the ring (found by this fuzzer: the blocking loop
///   retries at once while the count word is non-zero and checks the deadline only when it is
///   zero).
fn known_class(c: &Case, t: &Template, f: &Failure) -> Option<&'static str> {
    let ranges = lock_ranges(t);
    let in_lock = c
        .muts
        .iter()
        .any(|(_, off, _)| ranges.iter().any(|r| r.contains(off)));
    let count_ranges = count_ranges(t);
    let counts = c
        .muts
        .iter()
        .any(|(_, off, _)| count_ranges.iter().any(|r| r.contains(off)));
    if in_lock && (f.kind == "hang" || f.kind == "abort") {
        Some("lock")
    } else if c.field.contains("shifted") && f.kind == "panic" {
        Some("positions")
    } else if counts && f.kind == "hang" && (f.op.ends_with("_timeout") || f.op == "poll") {
        Some("counts")
    } else {
        None
    }
}
