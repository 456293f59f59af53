//! A look at every shmq segment of the machine at one moment, for watchers such as `shmq top`
//! and `shmq metrics`, or a program that watches its own queues.
//!
//! [`Snapshot::take`] reads each segment's file (`pread`, no mapping) without taking any lock
//! and without changing anything, as [`segment::inspect`] does: watching never waits for a
//! peer, never consumes an owner-died report, and costs the watched processes nothing. A
//! segment that cannot be read, or whose words make no sense, is a row in the
//! [`SegmentState::Damaged`] or [`SegmentState::Unreadable`] state, never an error of the
//! whole snapshot; a segment removed while being read is simply absent.
//!
//! What the segments record, and so what a snapshot can say (`docs/layout.md`):
//!
//! - positions ever put (`tail`) and taken (`head`) of each ring: two snapshots give the rates
//!   ([`Snapshot::rates_since`]);
//! - whether someone sleeps waiting for a message or for room: the event words hold one bit,
//!   "someone sleeps", not a count ([`RingSnapshot::consumers_waiting`]); a sleeper killed with
//!   the bit set leaves it set until the next wake-up;
//! - the producers registered in a ring's participant registry (consumers take no lock and
//!   register nowhere), the holders of a pipe's ends, and the thread holding a lock;
//! - the creator's pid.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use shmq::snapshot::{Snapshot, SegmentState};
//! use shmq::{Options, Queue};
//!
//! let name = format!("shmq-doc-snapshot-{}", std::process::id());
//! let q = Queue::create(&name, &Options { capacity: 4, message_size: 16, ..Default::default() })?;
//! q.put(b"hello")?;
//! let snap = Snapshot::take_matching(None, |n| n == name)?;
//! let row = &snap.segments[0];
//! let ring = &row.rings()[0];
//! assert_eq!((ring.len, ring.capacity, ring.puts, row.state.clone()), (1, 4, 1, SegmentState::Open));
//! assert_eq!(row.processes[0].pid, std::process::id()); // the creator, and the producer
//! Queue::unlink(&name)?;
//! # Ok(())
//! # }
//! ```

use std::collections::HashMap;
use std::fmt;
use std::mem::offset_of;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use crate::error::OpenError;
use crate::layout::{
    self, Counters, HEADER_SIZE, Kind, LANES, LINE, PARTICIPANTS, PIPE_DUPLEX, PIPE_HOLDER_SIZE,
    PIPE_HOLDERS, PIPE_ONE_WAY, RING_CLOSED, RING_CONTROL_SIZE, RING_RECEIVERS_GONE,
    RING_SENDERS_GONE, RingControl, RingLayout, Tail,
};
use crate::pipe::End;
use crate::segment::{self, Inspection};
use crate::sync::LockState;
use crate::sys;

/// Where named segments live.
const SHM_DIR: &str = "/dev/shm";

/// A slot's sequence word (`docs/layout.md`, "Slots"): bits 0–2 the state, 24–63 the position
/// modulo 2^40.
const SEQ_STATE_MASK: u64 = 7;
/// The sequence word's state of a published message.
const SEQ_FULL: u64 = 2;
/// The sequence word's state of a claim in progress.
const SEQ_CLAIMED: u64 = 1;
/// Where the claim's owner (participant number) starts in a `CLAIMED` sequence word (8 bits).
const SEQ_OWNER_SHIFT: u32 = 3;
/// Where the claim's count − 1 starts in a `CLAIMED` word (13 bits).
const SEQ_COUNT_SHIFT: u32 = 11;
/// The most slots one claim covers.
const MAX_CLAIM: u64 = 1 << 13;
/// The sequence word's state of a tombstone.
const SEQ_VOID: u64 = 3;
/// Where the position starts in a sequence word.
const SEQ_POS_SHIFT: u32 = 24;
/// The position bits of a sequence word (positions modulo 2^40).
const POS_BITS: u64 = (1 << 40) - 1;
/// A length word's bit for a large message (a descriptor in the slot).
const LEN_LARGE: u64 = 1 << 63;
/// Bit 63 of `head`: a zero-copy reader holds the front.
const HEAD_RESERVED: u64 = 1 << 63;
/// An event word's bit "someone sleeps on it".
const EVENT_WAITING: u32 = 1;
/// How many recent messages a ring's message sizes are sampled from (each costs one read).
const SIZE_SAMPLE: u64 = 16;
/// How many positions past `head` are searched for claims of dead producers.
const CLAIM_SCAN: u64 = 256;
/// The dict's live-entry count: the second word after its lock (`docs/layout.md`, "Dict
/// segment", offset 264).
const DICT_COUNT_OFFSET: usize = HEADER_SIZE + LINE + 8;

/// Every shmq segment seen at one moment, sorted by name.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// When it was taken (the clock of rates).
    pub taken_at: Instant,
    /// One entry per segment.
    pub segments: Vec<SegmentSnapshot>,
}

/// One segment as seen by a [`Snapshot`].
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentSnapshot {
    /// Its name in `/dev/shm`.
    pub name: String,
    /// What it holds; `None` if its header cannot be read.
    pub kind: Option<Kind>,
    /// Open, closed, gone, damaged…
    pub state: SegmentState,
    /// Its length in bytes (what a process maps).
    pub size: u64,
    /// Side segments holding its large messages (`<name>.big.*`), and their bytes.
    pub side_segments: usize,
    /// The bytes of those side segments.
    pub side_bytes: u64,
    /// The processes the segment records: its creator, the producers registered in its rings,
    /// the holders of a pipe's ends. The same pid may appear in several roles.
    pub processes: Vec<ProcessRef>,
    /// What its kind records.
    pub detail: Detail,
}

/// A segment's state, most serious first: damaged, unreadable, not recoverable, a lock holder
/// that died, then closed or gone, then open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SegmentState {
    /// Usable: nothing below applies.
    Open,
    /// A queue that was closed (gets drain it, puts are refused).
    Closed,
    /// A pipe one of whose ends is gone for good (every holder left).
    EndGone(End),
    /// A pipe both of whose ends are gone.
    BothEndsGone,
    /// A lock (the segment's, or a ring's) is held by a thread that died; the next locker
    /// repairs.
    HolderDied,
    /// A lock whose holder died and whose repair was abandoned: every lock fails.
    NotRecoverable,
    /// The segment's words make no sense (not a finished shmq segment, impossible fields, a
    /// corrupt lock): the reason.
    Damaged(String),
    /// The segment cannot be read (permissions, another layout version): the reason.
    Unreadable(String),
}

impl fmt::Display for SegmentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SegmentState::Open => f.write_str("open"),
            SegmentState::Closed => f.write_str("closed"),
            SegmentState::EndGone(e) => write!(f, "end {e} gone"),
            SegmentState::BothEndsGone => f.write_str("both ends gone"),
            SegmentState::HolderDied => f.write_str("holder died"),
            SegmentState::NotRecoverable => f.write_str("not recoverable"),
            SegmentState::Damaged(_) => f.write_str("damaged"),
            SegmentState::Unreadable(_) => f.write_str("unreadable"),
        }
    }
}

impl SegmentState {
    /// The short word [`Display`](fmt::Display) prints, for labels and JSON: `open`, `closed`,
    /// `end A gone`, `end B gone`, `both ends gone`, `holder died`, `not recoverable`,
    /// `damaged`, `unreadable`.
    pub fn word(&self) -> String {
        self.to_string()
    }

    /// The reason of a damaged or unreadable segment.
    pub fn reason(&self) -> Option<&str> {
        match self {
            SegmentState::Damaged(r) | SegmentState::Unreadable(r) => Some(r),
            _ => None,
        }
    }
}

/// A process a segment records, and in which role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessRef {
    /// Its process id.
    pub pid: u32,
    /// Whether that process (the same pid with the same start time) still runs; for a hand-off
    /// token or a fork reservation, whether it still keeps its end open.
    pub alive: bool,
    /// What the segment records it as.
    pub role: Role,
}

/// What a segment records a process as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// It created the segment.
    Creator,
    /// A producer registered in a ring's participant registry (it has put, or puts). A dead
    /// one's unpublished claims are voided by the next consumer that meets them.
    Producer {
        /// For a pipe: the end whose messages it sends (`None` for a queue).
        end: Option<End>,
    },
    /// It holds a pipe end through a handle.
    Holder(End),
    /// A fork reservation of an end, made by this process for its child.
    ForkReservation(End),
    /// A hand-off token of an end, left by this process for one that will open it.
    HandOff(End),
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Role::Creator => f.write_str("creator"),
            Role::Producer { end: None } => f.write_str("producer"),
            Role::Producer { end: Some(e) } => write!(f, "producer at end {e}"),
            Role::Holder(e) => write!(f, "holder of end {e}"),
            Role::ForkReservation(e) => write!(f, "fork reservation of end {e}"),
            Role::HandOff(e) => write!(f, "hand-off token of end {e}"),
        }
    }
}

/// What a segment's kind records.
#[derive(Debug, Clone, PartialEq)]
pub enum Detail {
    /// A queue: its ring.
    Queue(RingSnapshot),
    /// A pipe: its rings, B→A always, A→B when duplex.
    Pipe {
        /// Messages from end A to end B (`None` in a one-way pipe).
        a_to_b: Option<RingSnapshot>,
        /// Messages from end B to end A.
        b_to_a: RingSnapshot,
        /// Whether end A and end B are gone for good.
        gone: [bool; 2],
        /// The holder table's lock.
        lock: LockState,
    },
    /// A shared dict.
    Dict {
        /// Keys it holds now.
        len: u64,
        /// How many keys fit.
        capacity: u64,
        /// Its lock.
        lock: LockState,
    },
    /// A named lock.
    Lock(LockState),
    /// Nothing could be read (a damaged or unreadable segment).
    Unknown,
}

/// One ring (a queue, or a direction of a pipe), read without its lock.
#[derive(Debug, Clone, PartialEq)]
pub struct RingSnapshot {
    /// How many messages fit.
    pub capacity: u64,
    /// The slot size in bytes.
    pub message_size: u64,
    /// Messages waiting (a message a consumer is reading included).
    pub len: u64,
    /// Positions ever claimed by puts (`tail`): a monotonic count of messages put, voided
    /// claims included.
    pub puts: u64,
    /// Positions ever taken by gets (`head`), voided ones stepped over included.
    pub gets: u64,
    /// Positions ever voided (claims of producers that died before publishing).
    pub voided: u64,
    /// Tasks put and not yet marked done (JoinableQueue), the waiting messages included.
    pub unfinished: u64,
    /// Closed.
    pub closed: bool,
    /// No holder of the sending side is left (pipes).
    pub senders_gone: bool,
    /// No holder of the receiving side is left (pipes).
    pub receivers_gone: bool,
    /// Someone sleeps waiting for room (the `free` event word's bit; a bit, not a count).
    pub producers_waiting: bool,
    /// Someone sleeps waiting for a message (the `items` event word's bit; a bit, not a count).
    pub consumers_waiting: bool,
    /// Processes sleeping in `join` (a count the ring keeps).
    pub joiners: u32,
    /// The ring's lock.
    pub lock: LockState,
    /// Claims at the front made by producers that are dead: the next consumer to meet one
    /// voids it (within about 10 ms of waiting at it).
    pub dead_claims: u64,
    /// Recent messages whose size could be read, and their total bytes: the most recent
    /// positions whose slot still holds them (taken or waiting).
    pub sampled: (u64, u64),
}

impl RingSnapshot {
    /// The mean size of the recent messages sampled, if any was.
    pub fn mean_message_bytes(&self) -> Option<f64> {
        (self.sampled.0 > 0).then(|| self.sampled.1 as f64 / self.sampled.0 as f64)
    }
}

/// The rates of one ring between two snapshots, per second.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Rates {
    /// Messages put per second.
    pub puts: f64,
    /// Messages taken per second.
    pub gets: f64,
    /// Bytes taken per second: the gets times the mean size of the recent messages sampled
    /// (`None` if no message size could be read).
    pub bytes: Option<f64>,
}

impl SegmentSnapshot {
    /// Its rings: a queue's one, a pipe's A→B (if duplex) then B→A; none for a dict or a lock.
    pub fn rings(&self) -> Vec<&RingSnapshot> {
        match &self.detail {
            Detail::Queue(r) => vec![r],
            Detail::Pipe { a_to_b, b_to_a, .. } => a_to_b.iter().chain([b_to_a]).collect(),
            _ => Vec::new(),
        }
    }

    /// The segment's lock (a dict's or a lock segment's; a pipe's holder table's; a queue's
    /// ring's).
    pub fn lock(&self) -> Option<&LockState> {
        match &self.detail {
            Detail::Queue(r) => Some(&r.lock),
            Detail::Pipe { lock, .. } | Detail::Dict { lock, .. } | Detail::Lock(lock) => {
                Some(lock)
            }
            Detail::Unknown => None,
        }
    }
}

/// Decides, per (pid, start time), whether a process runs, asking `/proc` once per snapshot.
#[derive(Default)]
struct Liveness(HashMap<(u32, u64), bool>);

impl Liveness {
    fn alive(&mut self, pid: u32, start: u64) -> bool {
        *self
            .0
            .entry((pid, start))
            .or_insert_with(|| crate::liveness::process_alive(pid, start))
    }
}

impl Snapshot {
    /// Reads every shmq segment in `/dev/shm`. `previous`, a snapshot taken before, limits the
    /// sampling of message sizes to the rings whose messages moved since (each sample costs a
    /// read); without it every ring that ever carried a message is sampled.
    ///
    /// # Errors
    ///
    /// Only if `/dev/shm` cannot be listed; a segment that cannot be read is a row in the
    /// [`SegmentState::Damaged`] or [`SegmentState::Unreadable`] state.
    pub fn take(previous: Option<&Snapshot>) -> std::io::Result<Snapshot> {
        Snapshot::take_matching(previous, |_| true)
    }

    /// As [`take`](Self::take), for the segments whose name `wanted` accepts.
    ///
    /// # Errors
    ///
    /// As [`take`](Self::take).
    pub fn take_matching(
        previous: Option<&Snapshot>,
        wanted: impl Fn(&str) -> bool,
    ) -> std::io::Result<Snapshot> {
        let taken_at = Instant::now();
        let mut names = Vec::new();
        let mut sides: HashMap<String, (usize, u64)> = HashMap::new();
        for entry in std::fs::read_dir(SHM_DIR)?.flatten() {
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if let Some((owner, _, _)) = crate::large::side_segment_of(&name) {
                if wanted(owner) {
                    let bytes = entry.metadata().map_or(0, |m| m.len());
                    let s = sides.entry(owner.to_owned()).or_default();
                    s.0 += 1;
                    s.1 += bytes;
                }
                continue;
            }
            if segment::validate_name(&name).is_ok() && wanted(&name) {
                names.push(name);
            }
        }
        names.sort_unstable();
        let before: HashMap<&str, &SegmentSnapshot> = previous
            .map(|p| p.segments.iter().map(|s| (s.name.as_str(), s)).collect())
            .unwrap_or_default();
        let mut live = Liveness::default();
        let mut segments = Vec::with_capacity(names.len());
        for name in names {
            let Some(mut row) = read_segment(&name, before.get(name.as_str()).copied(), &mut live)
            else {
                continue;
            };
            if let Some(&(n, bytes)) = sides.get(&name) {
                row.side_segments = n;
                row.side_bytes = bytes;
            }
            segments.push(row);
        }
        Ok(Snapshot { taken_at, segments })
    }

    /// The segment called `name`, if this snapshot has it.
    pub fn get(&self, name: &str) -> Option<&SegmentSnapshot> {
        self.segments
            .binary_search_by(|s| s.name.as_str().cmp(name))
            .ok()
            .map(|i| &self.segments[i])
    }

    /// The rates of each ring of `name` (as [`SegmentSnapshot::rings`]) between `earlier` and
    /// this snapshot; `None` if either lacks the segment, its kind changed, or its positions
    /// went back (it was removed and made again).
    pub fn rates_since(&self, earlier: &Snapshot, name: &str) -> Option<Vec<Rates>> {
        let (now, then) = (self.get(name)?, earlier.get(name)?);
        let secs = self
            .taken_at
            .checked_duration_since(earlier.taken_at)?
            .as_secs_f64();
        let (now_rings, then_rings) = (now.rings(), then.rings());
        if secs <= 0.0 || now.kind != then.kind || now_rings.len() != then_rings.len() {
            return None;
        }
        now_rings
            .iter()
            .zip(then_rings)
            .map(|(a, b)| {
                let puts = a.puts.checked_sub(b.puts)? as f64 / secs;
                let gets = a.gets.checked_sub(b.gets)? as f64 / secs;
                let bytes = a.mean_message_bytes().or(b.mean_message_bytes());
                Some(Rates {
                    puts,
                    gets,
                    bytes: if gets == 0.0 {
                        Some(0.0)
                    } else {
                        bytes.map(|m| m * gets)
                    },
                })
            })
            .collect()
    }
}

/// A row for a segment that could not be read as what it says it is.
fn broken(name: &str, size: u64, kind: Option<Kind>, state: SegmentState) -> SegmentSnapshot {
    SegmentSnapshot {
        name: name.to_owned(),
        kind,
        state,
        size,
        side_segments: 0,
        side_bytes: 0,
        processes: Vec::new(),
        detail: Detail::Unknown,
    }
}

/// Reads one segment; `None` if it is not a shmq segment (another program's shared memory), a
/// creator is still writing it, or it vanished.
fn read_segment(
    name: &str,
    previous: Option<&SegmentSnapshot>,
    live: &mut Liveness,
) -> Option<SegmentSnapshot> {
    let file = Path::new(SHM_DIR).join(name);
    let meta = std::fs::symlink_metadata(&file).ok()?;
    let info = match segment::inspect_within(name, Duration::ZERO) {
        Ok(info) => info,
        Err(OpenError::NotFound(_)) => return None,
        Err(OpenError::Corrupt(reason)) => {
            // Not shmq's magic number: someone else's shared memory, or a creator that has not
            // written it yet.
            segment::check_is_segment(name).ok()?;
            let young = meta
                .modified()
                .ok()
                .and_then(|m| SystemTime::now().duration_since(m).ok())
                .is_none_or(|age| age < Duration::from_secs(2));
            if young {
                return None;
            }
            return Some(broken(
                name,
                meta.len(),
                None,
                SegmentState::Damaged(reason),
            ));
        }
        Err(e @ (OpenError::NotASegment { .. } | OpenError::InvalidName { .. })) => {
            let _ = e;
            return None;
        }
        Err(e) => {
            return Some(broken(
                name,
                meta.len(),
                None,
                SegmentState::Unreadable(e.to_string()),
            ));
        }
    };
    let kind = info.kind();
    Some(
        read_contents(&info, previous, live)
            .unwrap_or_else(|e| broken(name, info.size(), Some(kind), damage(e))),
    )
}

/// Whether the header's geometry is the one its kind, capacity and message size make (as an
/// open checks it).
fn same_geometry(found: &layout::Params, expected: &layout::Params) -> Result<(), OpenError> {
    if found == expected {
        Ok(())
    } else {
        Err(OpenError::Corrupt(format!(
            "header geometry ({found}) does not match its own layout ({expected})"
        )))
    }
}

/// The state of a segment whose contents could not be read: damaged, or unreadable.
fn damage(e: OpenError) -> SegmentState {
    match e {
        // A part of the layout beyond the file's end is damage too.
        OpenError::Corrupt(r) | OpenError::Incompatible(r) | OpenError::InvalidOptions(r) => {
            SegmentState::Damaged(r)
        }
        other => SegmentState::Unreadable(other.to_string()),
    }
}

/// A native-endian u64 at `at` in `b`.
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_ne_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// A native-endian u32 at `at` in `b`.
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

/// The lock whose 64 bytes start at `at` in `b`.
fn lock_at(b: &[u8], at: usize) -> LockState {
    let bytes: &[u8; 64] = b[at..at + 64].try_into().expect("64 bytes");
    LockState::from_bytes(bytes, crate::liveness::owner_word_alive)
}

fn read_contents(
    info: &Inspection,
    previous: Option<&SegmentSnapshot>,
    live: &mut Liveness,
) -> Result<SegmentSnapshot, OpenError> {
    let p = *info.params();
    let mut head = [0u8; HEADER_SIZE];
    info.read(0, &mut head)?;
    let (creator_pid, creator_start) = (u32_at(&head, 64), u64_at(&head, 72));
    let mut processes = vec![ProcessRef {
        pid: creator_pid,
        alive: live.alive(creator_pid, creator_start),
        role: Role::Creator,
    }];
    let previous_rings = previous.map(SegmentSnapshot::rings).unwrap_or_default();
    let detail = match p.kind {
        Kind::Queue => {
            let (ring, expected) =
                layout::queue_layout(p.capacity, p.message_size).map_err(OpenError::Corrupt)?;
            same_geometry(&p, &expected)?;
            Detail::Queue(read_ring(
                info,
                &ring,
                None,
                previous_rings.first().copied(),
                live,
                &mut processes,
            )?)
        }
        Kind::Pipe => {
            let duplex = match p.aux {
                PIPE_DUPLEX => true,
                PIPE_ONE_WAY => false,
                other => {
                    return Err(OpenError::Corrupt(format!(
                        "pipe direction word is {other}, not {PIPE_DUPLEX} or {PIPE_ONE_WAY}"
                    )));
                }
            };
            let (pl, expected) = layout::pipe_layout(p.capacity, p.message_size, duplex)
                .map_err(OpenError::Corrupt)?;
            same_geometry(&p, &expected)?;
            let mut table = vec![0u8; pl.holders + PIPE_HOLDERS * PIPE_HOLDER_SIZE - pl.lock];
            info.read(pl.lock, &mut table)?;
            let lock = lock_at(&table, 0);
            let gone_word = u64_at(&table, pl.gone - pl.lock);
            let now = sys::monotonic_ns();
            for i in 0..PIPE_HOLDERS {
                let at = pl.holders - pl.lock + i * PIPE_HOLDER_SIZE;
                let (tag, deadline) = (u64_at(&table, at), u64_at(&table, at + 8));
                if tag == 0 {
                    continue;
                }
                let end = match tag & 3 {
                    1 => End::A,
                    2 => End::B,
                    _ => return Err(OpenError::Corrupt(format!("holder entry {i} is {tag:#x}"))),
                };
                let pid = ((tag >> 4) & ((1 << 22) - 1)) as u32;
                let start = tag >> 26;
                let (role, alive) = match (tag >> 2) & 3 {
                    0 => (Role::Holder(end), live.alive(pid, start)),
                    1 => (Role::ForkReservation(end), deadline > now),
                    2 => (Role::HandOff(end), deadline > now),
                    _ => return Err(OpenError::Corrupt(format!("holder entry {i} is {tag:#x}"))),
                };
                processes.push(ProcessRef { pid, alive, role });
            }
            // What A sends travels A→B; what B sends, B→A.
            let a_to_b = match &pl.a_to_b {
                Some(r) => Some(read_ring(
                    info,
                    r,
                    Some(End::A),
                    previous_rings
                        .first()
                        .copied()
                        .filter(|_| previous_rings.len() == 2),
                    live,
                    &mut processes,
                )?),
                None => None,
            };
            let b_to_a = read_ring(
                info,
                &pl.b_to_a,
                Some(End::B),
                previous_rings.last().copied(),
                live,
                &mut processes,
            )?;
            Detail::Pipe {
                a_to_b,
                b_to_a,
                gone: [gone_word & 1 != 0, gone_word & 2 != 0],
                lock,
            }
        }
        Kind::Dict => {
            let mut b = [0u8; LINE + 16];
            info.read(HEADER_SIZE, &mut b)?;
            Detail::Dict {
                len: u64_at(&b, DICT_COUNT_OFFSET - HEADER_SIZE),
                capacity: p.capacity,
                lock: lock_at(&b, 0),
            }
        }
        Kind::Lock => {
            let mut b = [0u8; 64];
            info.read(HEADER_SIZE, &mut b)?;
            Detail::Lock(lock_at(&b, 0))
        }
    };
    let mut row = SegmentSnapshot {
        name: info.name().to_owned(),
        kind: Some(p.kind),
        state: SegmentState::Open,
        size: info.size(),
        side_segments: 0,
        side_bytes: 0,
        processes,
        detail,
    };
    row.state = state_of(&row);
    Ok(row)
}

/// The most serious state a readable segment is in.
fn state_of(row: &SegmentSnapshot) -> SegmentState {
    let mut locks: Vec<&LockState> = row.rings().iter().map(|r| &r.lock).collect();
    if let Some(l) = row.lock() {
        locks.push(l);
    }
    if let Some(LockState::Corrupt(why)) = locks.iter().find(|l| matches!(l, LockState::Corrupt(_)))
    {
        return SegmentState::Damaged(format!("corrupt lock: {why}"));
    }
    if locks.iter().any(|l| matches!(l, LockState::NotRecoverable)) {
        return SegmentState::NotRecoverable;
    }
    if locks.iter().any(|l| {
        matches!(
            l,
            LockState::Held {
                owner_alive: false,
                ..
            }
        )
    }) {
        return SegmentState::HolderDied;
    }
    match &row.detail {
        Detail::Queue(r) if r.closed => SegmentState::Closed,
        Detail::Pipe {
            gone: [true, true], ..
        } => SegmentState::BothEndsGone,
        Detail::Pipe {
            gone: [true, _], ..
        } => SegmentState::EndGone(End::A),
        Detail::Pipe {
            gone: [_, true], ..
        } => SegmentState::EndGone(End::B),
        _ => SegmentState::Open,
    }
}

/// Reads one ring's control block and, where useful, a few of its slots. `end`: the pipe end
/// whose messages it carries (`None` for a queue).
fn read_ring(
    info: &Inspection,
    ring: &RingLayout,
    end: Option<End>,
    previous: Option<&RingSnapshot>,
    live: &mut Liveness,
    processes: &mut Vec<ProcessRef>,
) -> Result<RingSnapshot, OpenError> {
    let mut c = vec![0u8; RING_CONTROL_SIZE];
    info.read(ring.control, &mut c)?;
    let head_at = offset_of!(RingControl, head);
    let tail_at = offset_of!(RingControl, tail) + offset_of!(Tail, tail);
    let counters = offset_of!(RingControl, counters);
    let done = u64_at(&c, counters + offset_of!(Counters, done));
    let flags = u32_at(&c, counters + offset_of!(Counters, flags));
    let voided = u64_at(&c, counters + offset_of!(Counters, voided)) & !layout::VOIDED_PENDING;
    let items = u32_at(&c, offset_of!(RingControl, items));
    let free = u32_at(&c, offset_of!(RingControl, free));
    // `joined` is a futex word then its sleeper count (two u32).
    let joiners = u32_at(&c, offset_of!(RingControl, joined) + 4);
    let gets = u64_at(&c, head_at) & !HEAD_RESERVED;
    let puts = u64_at(&c, tail_at);
    let capacity = ring.capacity;
    // Two words read at different moments: a get may have moved `head` past a `tail` read
    // before it; never show a negative or impossible depth.
    let len = puts.saturating_sub(gets).min(capacity);
    let mut dead_producers = Vec::new();
    let mut live_producers = Vec::new();
    let registry = offset_of!(RingControl, participants);
    for i in 0..PARTICIPANTS {
        let id = u64_at(&c, registry + i * 16);
        let start = u64_at(&c, registry + i * 16 + 8);
        let pid = id as u32;
        if pid == 0 {
            continue;
        }
        let alive = live.alive(pid, start);
        if alive {
            live_producers.push(i as u64 + 1);
        } else {
            dead_producers.push(i as u64 + 1);
        }
        processes.push(ProcessRef {
            pid,
            alive,
            role: Role::Producer { end },
        });
    }
    let slot = |pos: u64| -> Result<(u64, u64), OpenError> {
        let mut b = [0u8; 16];
        info.read(ring.slots + (pos % capacity) as usize * ring.stride, &mut b)?;
        Ok((u64_at(&b, 0), u64_at(&b, 8)))
    };
    // Claims of dead producers at the front: the next consumer voids them. A marked claim
    // names its owner in the slot; a claim in flight (its slot's word still of an earlier lap)
    // is a dead producer's when a lane of a dead producer's row covers it and none of a live
    // one's does (`docs/protocol.md`, "Intent lanes").
    let intents = offset_of!(RingControl, intents);
    let covered_by = |rows: &[u64], pos: u64| {
        rows.iter().any(|&row| {
            (0..LANES).any(|l| {
                let i = u64_at(&c, intents + (row as usize * LANES + l) * 8);
                let count = ((i >> SEQ_COUNT_SHIFT) & (MAX_CLAIM - 1)) + 1;
                i & SEQ_STATE_MASK == SEQ_CLAIMED
                    && (pos & POS_BITS).wrapping_sub(i >> SEQ_POS_SHIFT) & POS_BITS < count
            })
        })
    };
    let mut dead_claims = 0;
    if !dead_producers.is_empty() {
        for pos in gets..puts.min(gets + CLAIM_SCAN) {
            let (_, seq) = slot(pos)?;
            let here = (seq >> SEQ_POS_SHIFT) & POS_BITS == pos & POS_BITS;
            if here && seq & SEQ_STATE_MASK == SEQ_CLAIMED {
                if dead_producers.contains(&((seq >> SEQ_OWNER_SHIFT) & 0xff)) {
                    dead_claims += 1;
                }
            } else if !(here && matches!(seq & SEQ_STATE_MASK, SEQ_FULL | SEQ_VOID))
                && covered_by(&dead_producers, pos)
                && !covered_by(&live_producers, pos)
            {
                dead_claims += 1;
            }
        }
    }
    // The sizes of the most recent messages whose slots still hold them, if messages moved.
    let moved = previous.is_none_or(|p| p.gets != gets || p.puts != puts);
    let mut sampled = (0, 0);
    if moved && puts > 0 {
        let oldest = puts.saturating_sub(capacity.min(SIZE_SAMPLE));
        for pos in (oldest..puts).rev() {
            let (length, seq) = slot(pos)?;
            let pos_bits = (seq >> SEQ_POS_SHIFT) & ((1 << 40) - 1);
            if seq & SEQ_STATE_MASK == SEQ_FULL && pos_bits == pos & ((1 << 40) - 1) {
                sampled.0 += 1;
                sampled.1 += length & !LEN_LARGE;
            }
        }
    } else if let Some(p) = previous {
        sampled = p.sampled;
    }
    Ok(RingSnapshot {
        capacity,
        message_size: ring.message_size as u64,
        len,
        puts,
        gets,
        voided,
        unfinished: puts.saturating_sub(done),
        closed: flags & RING_CLOSED != 0,
        senders_gone: flags & RING_SENDERS_GONE != 0,
        receivers_gone: flags & RING_RECEIVERS_GONE != 0,
        producers_waiting: free & EVENT_WAITING != 0,
        consumers_waiting: items & EVENT_WAITING != 0,
        joiners,
        lock: lock_at(&c, offset_of!(RingControl, lock)),
        dead_claims,
        sampled,
    })
}
