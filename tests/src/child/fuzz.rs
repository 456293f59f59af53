//! The child side of the structured segment fuzzer (`tests/fuzz_segments.rs`).
//!
//! `fuzz-run DIR NAME FIRST LAST`: for each case `FIRST..LAST` of `DIR/cases` (one line each:
//! a template number, then mutations `s8@OFF=VAL` (store a u64), `s4@OFF=VAL` (store a u32) or
//! `x1@OFF=MASK` (xor a byte)), writes template `DIR/tNUM.bin` with the mutations applied as the
//! named segment `NAME` (`/dev/shm/NAME`), then runs every operation of the template's kind on it
//! through the public API. Only bounded calls are made (`try_`, `_timeout` of a few ms), so a
//! call that does not return is a hang, never a legitimate wait.
//!
//! The parent learns where a child died from what it printed last: `B i` when case `i` begins,
//! `O op` before each operation, `E i OUTCOME` when case `i` ends (`OUTCOME` is the open's result,
//! for the statistics). A panic prints `P message` and exits with status [`PANIC_EXIT`]. A hang
//! is turned into SIGALRM by a watchdog thread (an `alarm()` re-armed per operation), and the address
//! space is capped with `RLIMIT_AS` a little above what the process needs, so an allocation sized
//! by a value read from the segment aborts ("memory allocation of N bytes failed").
//!
//! `fuzz-selftest HANG|ALLOC|PANIC`: misbehaves on purpose under the same harness, so the parent
//! can check that each kind of failure is caught.

use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant};

use shmq::{End, Pipe, PipeEnd, Queue};
use shmq_dict::{Lock, SharedDict};

use crate::arg;

/// Exit status of a child whose fuzzed call panicked.
pub(crate) const PANIC_EXIT: u8 = 70;

/// How long one operation may run before the watchdog raises SIGALRM (opening a segment whose
/// header says "not ready" legitimately waits 1 s).
const OP_LIMIT: Duration = Duration::from_secs(3);

/// Room allowed above the address space the child uses when it starts.
const AS_MARGIN: u64 = 32 << 20;

/// A short timeout for the `_timeout` calls.
const SHORT: Duration = Duration::from_millis(1);

fn out(line: std::fmt::Arguments<'_>) {
    let mut o = std::io::stdout().lock();
    let _ = o.write_fmt(line);
    let _ = o.write_all(b"\n");
    let _ = o.flush();
}

/// Milliseconds since [`EPOCH`] at which the current operation must be over (0: none).
static DEADLINE_MS: AtomicU64 = AtomicU64::new(0);
/// When the watchdog started.
static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

/// Starts the watchdog thread: SIGALRM to ourselves once an operation overruns its deadline.
fn start_alarm() -> Instant {
    let epoch = *EPOCH.get_or_init(Instant::now);
    let (started, running) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // Running, with its stacks allocated, before the address space is capped.
        let _ = started.send(());
        loop {
            std::thread::sleep(Duration::from_millis(20));
            let d = DEADLINE_MS.load(SeqCst);
            if d != 0 && epoch.elapsed().as_millis() as u64 > d {
                let _ = rustix::process::kill_process(
                    rustix::process::getpid(),
                    rustix::process::Signal::ALARM,
                );
            }
        }
    });
    running.recv().expect("the watchdog thread started");
    epoch
}

fn arm(epoch: Instant, limit: Duration) {
    DEADLINE_MS.store((epoch.elapsed() + limit).as_millis() as u64, SeqCst);
}

/// The address space in use now (`VmSize` of `/proc/self/status`), in bytes.
fn vm_size() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmSize:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Caps the address space at what is used now plus [`AS_MARGIN`].
fn cap_address_space() {
    let limit = vm_size() + AS_MARGIN;
    if let Err(e) = rustix::process::setrlimit(
        rustix::process::Resource::As,
        rustix::process::Rlimit {
            current: Some(limit),
            maximum: None,
        },
    ) {
        eprintln!("shmq-child: setrlimit: {e}");
        std::process::exit(64);
    }
}

/// Prints `P message` and exits with [`PANIC_EXIT`] on any panic.
fn panic_is_a_failure() {
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let at = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        out(format_args!("P {} at {at}", msg.replace('\n', " ")));
        std::process::exit(i32::from(PANIC_EXIT));
    }));
}

/// One mutation of a template.
enum Mutation {
    Set8(usize, u64),
    Set4(usize, u32),
    Xor1(usize, u8),
}

fn parse_case(line: &str) -> Option<(usize, Vec<Mutation>)> {
    let mut parts = line.split_whitespace();
    let template = parts.next()?.parse().ok()?;
    let mut muts = Vec::new();
    for p in parts {
        let (op, rest) = p.split_once('@')?;
        let (off, val) = rest.split_once('=')?;
        let off: usize = off.parse().ok()?;
        muts.push(match op {
            "s8" => Mutation::Set8(off, val.parse().ok()?),
            "s4" => Mutation::Set4(off, val.parse().ok()?),
            "x1" => Mutation::Xor1(off, val.parse().ok()?),
            _ => return None,
        });
    }
    Some((template, muts))
}

fn apply(bytes: &mut [u8], muts: &[Mutation]) {
    for m in muts {
        match *m {
            Mutation::Set8(o, v) => bytes[o..o + 8].copy_from_slice(&v.to_ne_bytes()),
            Mutation::Set4(o, v) => bytes[o..o + 4].copy_from_slice(&v.to_ne_bytes()),
            Mutation::Xor1(o, v) => bytes[o] ^= v,
        }
    }
}

/// The variant name of a result: `Ok`, or the error's `Debug` up to its first field.
fn outcome<T, E: std::fmt::Debug>(r: &Result<T, E>) -> String {
    match r {
        Ok(_) => "Ok".to_owned(),
        Err(e) => {
            let s = format!("{e:?}");
            s.split(['(', ' ', '{']).next().unwrap_or("").to_owned()
        }
    }
}

/// Announces `name`, then runs it with a fresh [`OP_LIMIT`] (the parent knows the operation
/// if we die inside it).
fn op<R>(name: &str, f: impl FnOnce() -> R) -> R {
    out(format_args!("O {name}"));
    if let Some(epoch) = EPOCH.get() {
        arm(*epoch, OP_LIMIT);
    }
    f()
}

fn fuzz_queue(name: &str) -> String {
    let q = match op("Queue::open", || Queue::open(name)) {
        Ok(q) => q,
        Err(e) => return format!("open:{}", outcome::<(), _>(&Err(e))),
    };
    op("inspect", || {
        let _ = format!("{q:?}");
        (
            q.len(),
            q.is_empty(),
            q.is_full(),
            q.capacity(),
            q.message_size(),
            q.unfinished(),
            q.is_closed(),
        )
    });
    let mut buf = vec![0u8; q.message_size()];
    let _ = op("try_get", || q.try_get());
    let _ = op("try_get_into", || q.try_get_into(&mut buf));
    let _ = op("try_get_with", || q.try_get_with(|m| m.len()));
    let _ = op("get_timeout", || q.get_timeout(SHORT));
    let _ = op("try_get_many", || q.try_get_many(4));
    let _ = op("try_put", || q.try_put(b"fuzz"));
    let _ = op("put_timeout", || q.put_timeout(b"fuzz", SHORT));
    let _ = op("try_put_with", || {
        q.try_put_with(|b| {
            b[..2].copy_from_slice(b"zc");
            2
        })
    });
    let _ = op("try_put_many", || q.try_put_many(&[b"a", b"b", b"c"]));
    let _ = op("len", || q.len());
    // `task_done` and `close` have no deadline: they wait as long as the ring lock's holder
    // lives (the trust model in docs/protocol.md), and a lock word naming a live thread is such
    // a holder. They run unless inspection (which takes no lock) shows one.
    let held = op("segment::inspect", || {
        shmq::substrate::segment::inspect(name)
            .and_then(|i| i.lock_state(shmq::substrate::layout::HEADER_SIZE))
            .is_ok_and(|s| {
                matches!(
                    s,
                    shmq::substrate::sync::LockState::Held {
                        owner_alive: true,
                        ..
                    }
                )
            })
    });
    if !held {
        let _ = op("task_done", || q.task_done());
    }
    let _ = op("join_timeout", || q.join_timeout(SHORT));
    if !held {
        let _ = op("close", || q.close());
    }
    let _ = op("try_put(closed)", || q.try_put(b"late"));
    op("drain", || {
        for _ in 0..=q.capacity().min(64) + 1 {
            if q.try_get().is_err() {
                break;
            }
        }
    });
    op("drop", || drop(q));
    "open:Ok".to_owned()
}

fn fuzz_pipe_end(name: &str, end: End) -> String {
    let p = match op(&format!("PipeEnd::open({end})"), || {
        PipeEnd::open(name, end)
    }) {
        Ok(p) => p,
        Err(e) => return outcome::<(), _>(&Err(e)),
    };
    let _ = op("inspect", || {
        let _ = format!("{p:?}");
        (p.capacity(), p.message_size(), p.can_send(), p.can_recv())
    });
    // (No recv_into: it blocks without a deadline, and an empty-looking ring may rightly block.)
    let _ = op("try_recv", || p.try_recv());
    let _ = op("recv_timeout", || p.recv_timeout(SHORT));
    let _ = op("try_send", || p.try_send(b"fuzz"));
    let _ = op("send_timeout", || p.send_timeout(b"fuzz", SHORT));
    let _ = op("poll", || p.poll(SHORT));
    let _ = op("close", || p.close());
    "Ok".to_owned()
}

fn fuzz_pipe(name: &str) -> String {
    let info = op("Pipe::inspect", || Pipe::inspect(name));
    let a = fuzz_pipe_end(name, End::A);
    let b = fuzz_pipe_end(name, End::B);
    let _ = op("Pipe::inspect(after)", || Pipe::inspect(name));
    format!("open:{},{}/{}", outcome(&info), a, b)
}

fn fuzz_dict(name: &str) -> String {
    let d = match op("SharedDict::open", || SharedDict::open(name)) {
        Ok(d) => d,
        Err(e) => return format!("open:{}", outcome::<(), _>(&Err(e))),
    };
    let _ = op("capacity", || (d.capacity(), d.max_key_len()));
    // The dict's single calls (`len`, `get`, `insert`, ...) have no deadline: like a Manager
    // dict's, they wait as long as the lock's holder lives (the trust model in
    // docs/protocol.md). A lock word naming a live thread is such a holder, so with one only
    // the deadline API runs; a free, damaged or dead owner must still give `Ok` or a typed
    // error from each single call, never a hang. (`inspect` takes no lock, so a dead owner's
    // repair is left to the calls below.)
    let held = op("SharedDict::inspect", || {
        SharedDict::inspect(name).is_ok_and(|i| {
            matches!(
                i.lock,
                shmq::substrate::sync::LockState::Held {
                    owner_alive: true,
                    ..
                }
            )
        })
    });
    if held {
        let _ = op("try_lock_for(held)", || d.try_lock_for(SHORT).map(|_| ()));
        op("drop", || drop(d));
        return "open:Ok,held".to_owned();
    }
    let _ = op("len", || d.len());
    let _ = op("keys", || d.keys());
    let _ = op("snapshot", || d.snapshot());
    let _ = op("get", || d.get("k1"));
    let _ = op("contains_key", || d.contains_key("k2"));
    let _ = op("insert", || d.insert("fuzz", 7));
    let _ = op("insert(existing)", || d.insert("k3", 8));
    let _ = op("add", || d.add("k1", 1));
    let _ = op("remove", || d.remove("k4"));
    let _ = op("try_lock_for", || {
        d.try_lock_for(SHORT).map(|mut g| {
            let _ = g.previous_owner_died();
            let _ = g.get("k1");
            let _ = g.insert("locked", 1);
            let _ = g.len();
            let _ = g.snapshot();
        })
    });
    let _ = op("clear", || d.clear());
    let _ = op("insert(after clear)", || d.insert("again", 1));
    op("drop", || drop(d));
    "open:Ok".to_owned()
}

fn fuzz_lock(name: &str) -> String {
    let l = match op("Lock::open", || Lock::open(name)) {
        Ok(l) => l,
        Err(e) => return format!("open:{}", outcome::<(), _>(&Err(e))),
    };
    let _ = op("try_lock", || l.try_lock().map(|g| g.previous_owner_died()));
    let _ = op("try_lock_for", || {
        l.try_lock_for(SHORT).map(|g| g.previous_owner_died())
    });
    let _ = op("try_lock(again)", || {
        l.try_lock().map(|g| g.previous_owner_died())
    });
    op("drop", || drop(l));
    "open:Ok".to_owned()
}

/// Runs a fuzz role, or returns `None` if `role` is not one.
pub(crate) fn run(role: &str, args: &[String]) -> Option<ExitCode> {
    match role {
        "fuzz-run" => Some(fuzz_run(args)),
        "fuzz-selftest" => Some(selftest(args)),
        _ => None,
    }
}

fn fuzz_run(args: &[String]) -> ExitCode {
    let dir: String = arg(args, 0);
    let name: String = arg(args, 1);
    let (first, last): (usize, usize) = (arg(args, 2), arg(args, 3));
    let dir = std::path::Path::new(&dir);
    let kinds: Vec<String> = std::fs::read_to_string(dir.join("kinds"))
        .expect("read kinds")
        .lines()
        .map(str::to_owned)
        .collect();
    let templates: Vec<Vec<u8>> = (0..kinds.len())
        .map(|i| std::fs::read(dir.join(format!("t{i}.bin"))).expect("read template"))
        .collect();
    let cases: Vec<String> = std::fs::read_to_string(dir.join("cases"))
        .expect("read cases")
        .lines()
        .skip(first)
        .take(last.saturating_sub(first))
        .map(str::to_owned)
        .collect();
    let path = format!("/dev/shm/{name}");
    panic_is_a_failure();
    let epoch = start_alarm();
    cap_address_space();
    for (i, line) in (first..).zip(&cases) {
        let Some((t, muts)) = parse_case(line) else {
            eprintln!("shmq-child: malformed case {i}: {line:?}");
            return ExitCode::from(64);
        };
        out(format_args!("B {i}"));
        arm(epoch, OP_LIMIT);
        let mut bytes = templates[t].clone();
        apply(&mut bytes, &muts);
        let _ = std::fs::remove_file(&path);
        std::fs::write(&path, &bytes).expect("write the mutated segment");
        let result = match kinds[t].as_str() {
            "queue" => fuzz_queue(&name),
            "pipe" => fuzz_pipe(&name),
            "dict" => fuzz_dict(&name),
            "lock" => fuzz_lock(&name),
            other => panic!("unknown kind {other}"),
        };
        let _ = std::fs::remove_file(&path);
        DEADLINE_MS.store(0, SeqCst);
        out(format_args!("E {i} {result}"));
    }
    ExitCode::SUCCESS
}

/// Misbehaves on purpose, under the same harness as a fuzz case.
fn selftest(args: &[String]) -> ExitCode {
    let what: String = arg(args, 0);
    panic_is_a_failure();
    let epoch = start_alarm();
    cap_address_space();
    out(format_args!("B 0"));
    arm(epoch, Duration::from_millis(300));
    match what.as_str() {
        "HANG" => op("sleep", || std::thread::sleep(Duration::from_secs(30))),
        "ALLOC" => op("allocate", || {
            // As a length read from shared memory would: just over the margin.
            let n = std::hint::black_box(AS_MARGIN as usize + (1 << 20));
            let v: Vec<u8> = Vec::with_capacity(n);
            std::hint::black_box(&v);
        }),
        "PANIC" => op("panic", || panic!("on purpose")),
        _ => {}
    }
    DEADLINE_MS.store(0, SeqCst);
    out(format_args!("E 0 survived"));
    ExitCode::SUCCESS
}
