//! The bytes of a segment: the common header, the ring control block and the slot format, and
//! the arithmetic that places them. No system calls. `docs/layout.md` gives the same offsets as
//! tables; a change here changes [`LAYOUT_VERSION`] and that file.
//!
//! Everything here is `#[repr(C)]`, holds offsets rather than pointers, and is made of atomics
//! (words other processes write); slots are read and written word by word through atomics.

use std::fmt;

use crate::sync::atomic::{AtomicU32, AtomicU64, Ordering::Acquire, Ordering::Relaxed};
use crate::sync::{FutexWord, RawMutex};

/// The first 8 bytes of every shmq segment: `b"SHMQ\0seg"` read as a little-endian `u64`.
pub const MAGIC: u64 = u64::from_le_bytes(*b"SHMQ\0seg");

/// The version of the format described here. A segment of another version is refused at open.
pub const LAYOUT_VERSION: u32 = 4;

/// Size of the common header; the object's own structures start at this offset.
pub const HEADER_SIZE: usize = 128;

/// Alignment of the independently written parts of a control block: two cache lines, since
/// x86-64's adjacent-line prefetcher pulls lines in pairs (as crossbeam's `CachePadded`).
pub const LINE: usize = 128;

/// Bytes in front of each slot's payload: the length word (a `u64`: the payload length; bit 63
/// is reserved for large-message descriptors), then the slot's sequence word (its state; see
/// docs/protocol.md, "Lock-free puts").
pub const SLOT_HEADER: usize = 16;

/// Entries of a ring's participant registry: processes that put without the lock.
pub const PARTICIPANTS: usize = 64;

/// Intent lanes per registry row: a producer names the positions it is about to claim in a
/// free lane of its row before its CAS of `tail`, and clears the lane once it has published
/// them; one line of 16 words, so that up to 16 threads of a process put at once without
/// the lock, and no two processes write the same line.
pub const LANES: usize = 16;

/// Words of a [`RingControl`]'s intent lanes: a row for the lock holder (row 0) and one per
/// registry entry (row `i + 1`), [`LANES`] each.
pub const INTENT_WORDS: usize = (PARTICIPANTS + 1) * LANES;

pub use crate::limits::{MAX_CAPACITY, MAX_MESSAGE_SIZE, MAX_SEGMENT_SIZE};

/// `Header::state` while the creator is still writing the segment.
pub const STATE_INIT: u32 = 0;
/// `Header::state` once every other field is written (the creator's last store).
pub const STATE_READY: u32 = 1;

/// What kind of object a segment holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Kind {
    /// A [`Queue`](crate::Queue): one ring.
    Queue = 1,
    /// A pipe: a holder table and two rings.
    Pipe = 2,
    /// A shared dict (crate `shmq-dict`).
    Dict = 3,
    /// A named lock (crate `shmq-dict`).
    Lock = 4,
}

impl Kind {
    /// The kind stored as `raw`, if it is one.
    pub fn from_raw(raw: u32) -> Option<Kind> {
        Some(match raw {
            1 => Kind::Queue,
            2 => Kind::Pipe,
            3 => Kind::Dict,
            4 => Kind::Lock,
            _ => return None,
        })
    }

    /// The lowercase name (`"queue"`, `"pipe"`, `"dict"`, `"lock"`).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Queue => "queue",
            Kind::Pipe => "pipe",
            Kind::Dict => "dict",
            Kind::Lock => "lock",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The common header at offset 0 of every segment (128 bytes).
///
/// The creator writes every field, then stores [`STATE_READY`] into `state` with `Release`;
/// an opener reads `state` with `Acquire` before trusting anything else.
#[repr(C, align(128))]
pub struct Header {
    /// [`MAGIC`].
    pub magic: AtomicU64,
    /// [`LAYOUT_VERSION`].
    pub version: AtomicU32,
    /// A [`Kind`] as `u32`.
    pub kind: AtomicU32,
    /// [`STATE_INIT`] or [`STATE_READY`].
    pub state: AtomicU32,
    /// [`HEADER_SIZE`].
    pub header_size: AtomicU32,
    /// Length of the whole segment in bytes.
    pub total_size: AtomicU64,
    /// Slots per ring (queue, pipe) or table entries (dict); 0 for a lock.
    pub capacity: AtomicU64,
    /// The largest payload of a slot (queue, pipe) or the longest key (dict).
    pub message_size: AtomicU64,
    /// Distance between consecutive slots or table entries in bytes.
    pub slot_stride: AtomicU64,
    /// A kind-specific parameter (pipe: 1 for duplex, 0 for one-way).
    pub aux: AtomicU64,
    /// Process id of the creator.
    pub creator_pid: AtomicU32,
    _reserved: AtomicU32,
    /// Start time of the creator (clock ticks since boot), so a recycled pid is not taken for it.
    pub creator_start: AtomicU64,
    /// The type of the messages, recorded by a typed creator (`TypedQueue`, `TypedPipe`): a
    /// 128-bit tag, both words 0 for an untyped segment (any type may open it). Written
    /// before the header is published, never changed.
    pub type_tag: [AtomicU64; 2],
    /// A random non-zero number written by the creator, different for every segment ever
    /// created (two incarnations of one name included); 0 in a segment made before it existed.
    /// The bridge to NATS (crate `shmq-bridge`) names messages by it.
    pub instance: AtomicU64,
    /// Queue and pipe: the largest message in bytes, slot size or above (larger ones travel
    /// outside the slots, `docs/protocol.md`, "Large messages"); 0 means the slot size.
    pub max_message: AtomicU64,
}

const _: () = assert!(std::mem::size_of::<Header>() == HEADER_SIZE);

/// The geometry of a segment as recorded in its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    /// The object kind.
    pub kind: Kind,
    /// Slots per ring, or table entries.
    pub capacity: u64,
    /// Largest payload, or longest key.
    pub message_size: u64,
    /// Slot or entry stride in bytes.
    pub slot_stride: u64,
    /// Kind-specific parameter.
    pub aux: u64,
    /// Total length in bytes.
    pub total_size: u64,
}

impl fmt::Display for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: capacity {}, message size {}, stride {}, aux {}, {} bytes",
            self.kind,
            self.capacity,
            self.message_size,
            self.slot_stride,
            self.aux,
            self.total_size
        )
    }
}

/// What is wrong with a segment's header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderError {
    /// Not written by shmq (or overwritten).
    BadMagic(u64),
    /// Written by another layout version.
    Version(u32),
    /// Holds another kind of object.
    Kind {
        /// The kind asked for.
        expected: Kind,
        /// The raw kind found.
        found: u32,
    },
    /// Its creator has not finished writing it.
    NotReady,
    /// A field is impossible; the string names it.
    Corrupt(String),
}

impl Header {
    /// A header holding `bytes` as stored (native-endian), e.g. read from a segment's file.
    pub(crate) fn from_bytes(bytes: &[u8; HEADER_SIZE]) -> Header {
        let u32_at = |at: usize| {
            AtomicU32::new(u32::from_ne_bytes(
                bytes[at..at + 4].try_into().unwrap_or([0; 4]),
            ))
        };
        let u64_at = |at: usize| {
            AtomicU64::new(u64::from_ne_bytes(
                bytes[at..at + 8].try_into().unwrap_or([0; 8]),
            ))
        };
        Header {
            magic: u64_at(0),
            version: u32_at(8),
            kind: u32_at(12),
            state: u32_at(16),
            header_size: u32_at(20),
            total_size: u64_at(24),
            capacity: u64_at(32),
            message_size: u64_at(40),
            slot_stride: u64_at(48),
            aux: u64_at(56),
            creator_pid: u32_at(64),
            _reserved: u32_at(68),
            creator_start: u64_at(72),
            type_tag: [u64_at(80), u64_at(88)],
            instance: u64_at(96),
            max_message: u64_at(104),
        }
    }

    /// Writes every field but `state` (creator only, before publishing).
    pub fn write(&self, p: &Params, creator_pid: u32, creator_start: u64) {
        self.magic.store(MAGIC, Relaxed);
        self.version.store(LAYOUT_VERSION, Relaxed);
        self.kind.store(p.kind as u32, Relaxed);
        self.header_size.store(HEADER_SIZE as u32, Relaxed);
        self.total_size.store(p.total_size, Relaxed);
        self.capacity.store(p.capacity, Relaxed);
        self.message_size.store(p.message_size, Relaxed);
        self.slot_stride.store(p.slot_stride, Relaxed);
        self.aux.store(p.aux, Relaxed);
        self.creator_pid.store(creator_pid, Relaxed);
        self.creator_start.store(creator_start, Relaxed);
    }

    /// Publishes the header: every field written before this becomes visible to an opener that
    /// sees [`STATE_READY`].
    pub fn publish(&self) {
        // SYNC POINT: creator; pairs with the Acquire load in `read`.
        self.state
            .store(STATE_READY, crate::sync::atomic::Ordering::Release);
    }

    /// Reads and checks the header of a mapping of `mapped_len` bytes, of any kind.
    ///
    /// # Errors
    ///
    /// A [`HeaderError`] naming the first field that is wrong.
    pub fn read(&self, mapped_len: u64) -> Result<Params, HeaderError> {
        let magic = self.magic.load(Relaxed);
        if magic == 0 {
            // A creator has reserved the (zeroed) space but not written the header yet.
            return Err(HeaderError::NotReady);
        }
        if magic != MAGIC {
            return Err(HeaderError::BadMagic(magic));
        }
        // SYNC POINT: opener; pairs with the Release store in `publish`.
        if self.state.load(Acquire) != STATE_READY {
            return Err(HeaderError::NotReady);
        }
        let version = self.version.load(Relaxed);
        if version != LAYOUT_VERSION {
            return Err(HeaderError::Version(version));
        }
        let raw_kind = self.kind.load(Relaxed);
        let kind = Kind::from_raw(raw_kind)
            .ok_or_else(|| HeaderError::Corrupt(format!("unknown object kind {raw_kind}")))?;
        let header_size = self.header_size.load(Relaxed);
        if header_size as usize != HEADER_SIZE {
            return Err(HeaderError::Corrupt(format!(
                "header size {header_size}, expected {HEADER_SIZE}"
            )));
        }
        let p = Params {
            kind,
            capacity: self.capacity.load(Relaxed),
            message_size: self.message_size.load(Relaxed),
            slot_stride: self.slot_stride.load(Relaxed),
            aux: self.aux.load(Relaxed),
            total_size: self.total_size.load(Relaxed),
        };
        if p.total_size != mapped_len {
            return Err(HeaderError::Corrupt(format!(
                "header says {} bytes but the segment has {mapped_len}",
                p.total_size
            )));
        }
        Ok(p)
    }

    /// [`read`](Self::read), then checks the kind.
    ///
    /// # Errors
    ///
    /// As [`read`](Self::read), plus [`HeaderError::Kind`].
    pub fn read_kind(&self, mapped_len: u64, expected: Kind) -> Result<Params, HeaderError> {
        let magic = self.magic.load(Relaxed);
        let raw_kind = self.kind.load(Relaxed);
        if magic == MAGIC
            && self.version.load(Relaxed) == LAYOUT_VERSION
            && raw_kind != expected as u32
        {
            return Err(HeaderError::Kind {
                expected,
                found: raw_kind,
            });
        }
        self.read(mapped_len)
    }

    /// The segment's instance id (see [`instance`](Self::instance)): written by the creator
    /// before it publishes, read by anyone after.
    pub fn instance_id(&self) -> u64 {
        self.instance.load(Relaxed)
    }

    /// The creator's process id and start time.
    pub fn creator(&self) -> (u32, u64) {
        (
            self.creator_pid.load(Relaxed),
            self.creator_start.load(Relaxed),
        )
    }
}

impl fmt::Debug for Header {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Header")
            .field("magic", &format_args!("{:#x}", self.magic.load(Relaxed)))
            .field("version", &self.version.load(Relaxed))
            .field("kind", &self.kind.load(Relaxed))
            .field("state", &self.state.load(Relaxed))
            .field("total_size", &self.total_size.load(Relaxed))
            .finish_non_exhaustive()
    }
}

/// A value alone on its own [`LINE`] (128 bytes), so that writers of neighbouring values do not
/// invalidate each other's cache lines.
#[derive(Debug)]
#[repr(C, align(128))]
pub struct Line<T>(pub T);

/// The lock, positions, counters and participant registry of one ring; [`RING_CONTROL_SIZE`]
/// bytes, 128-aligned.
///
/// | field  | written                   | meaning |
/// |--------|---------------------------|---------|
/// | `lock` | repairs, `task_done`, `close`, voids, full-registry puts | robust lock ([`RawMutex`]) for the rare operations |
/// | `head` | consumers, by CAS (no lock) | messages ever taken; slot of the oldest is `head % capacity` |
/// | `tail.tail` | producers, by CAS (no lock) | positions ever claimed; `tail - head` is the length |
/// | `tail.head_seen` | producers | a value `head` had (the producers' cache, `<= head`) |
/// | `done` | under the lock, by `task_done` and voids | tasks ever done; `tail - done` is unfinished tasks |
/// | `void_pos`, `void_done` | under the lock, by voids | journal of a void in progress (0: none) |
/// | `voided` | under the lock, by voids | positions ever voided (bit 63 [`VOIDED_PENDING`]: a void's journal step) |
/// | `flags`| under the lock            | bit 0 `CLOSED`, bit 1 `SENDERS_GONE`, bit 2 `RECEIVERS_GONE` |
/// | `items`| anyone                    | event count "a message was published" (bit 0: someone sleeps) |
/// | `free` | anyone                    | event count "a slot was freed" |
/// | `joined` | under the lock          | generation, bumped whenever unfinished tasks reach 0 |
/// | `participants` | by CAS, freed under the lock | [`PARTICIPANTS`] entries `(pid \| generation << 32, start time)` |
/// | `intents` | producers (their own row), cleared under the lock | [`LANES`] words per row: 0, or the claim word `(position, owner, count)` of a claim about to be made or in flight |
///
/// A put names its position in an intent lane, claims it with one CAS of `tail` and commits
/// with one store of the slot's sequence word; a get commits with one CAS of `head`,
/// `task_done` with one store of `done`, `close` with one store of `flags`: a process that
/// dies anywhere leaves every operation either done, not begun, or (a claim) a position that
/// the next consumer voids. `items`, `free` and `joined` only
/// wake sleepers (`docs/protocol.md`).
#[repr(C)]
pub struct RingControl {
    /// The ring's lock.
    pub lock: Line<RawMutex>,
    /// Messages ever taken.
    pub head: Line<AtomicU64>,
    /// Messages ever put, and the producers' cached `head`.
    pub tail: Line<Tail>,
    /// Tasks done, and the state bits.
    pub counters: Line<Counters>,
    /// Event count: a message was published.
    pub items: Line<AtomicU32>,
    /// Event count: a slot was freed.
    pub free: Line<AtomicU32>,
    /// Join generation.
    pub joined: Line<FutexWord>,
    /// The participant registry (8 lines).
    pub participants: [Participant; PARTICIPANTS],
    /// The intent lanes, row by row, each row on its own line (65 lines).
    pub intents: Line<[AtomicU64; INTENT_WORDS]>,
}

/// One entry of a ring's participant registry: a process that claims slots without the lock,
/// named in its claims by its entry number + 1 (0 names the lock holder).
#[derive(Debug)]
#[repr(C)]
pub struct Participant {
    /// `pid | generation << 32`; pid 0: free. Taken by CAS from a free word; freed (generation
    /// + 1) under the lock once the process is dead and its claims are voided.
    pub id: AtomicU64,
    /// The process's start time (clock ticks since boot), stored right after the CAS; 0: not
    /// yet known (the pid alone decides liveness).
    pub start: AtomicU64,
}

/// The producers' line of a [`RingControl`] (written only under the lock).
#[derive(Debug)]
#[repr(C)]
pub struct Tail {
    /// Messages ever put.
    pub tail: AtomicU64,
    /// A value `head` had, `<= head`: a producer reads `head` (the consumers' line) only when
    /// this says the ring may be full.
    pub head_seen: AtomicU64,
}

/// `done` and `flags` of a [`RingControl`].
#[derive(Debug)]
#[repr(C)]
pub struct Counters {
    /// Tasks ever marked done.
    pub done: AtomicU64,
    /// Ring state bits ([`RING_CLOSED`], [`RING_SENDERS_GONE`], [`RING_RECEIVERS_GONE`]).
    pub flags: AtomicU32,
    /// A void in progress (under the lock): the position of the claim being voided...
    pub void_pos: AtomicU64,
    /// ...and the value `done` has once its positions are counted; 0 when none is in progress.
    pub void_done: AtomicU64,
    /// Positions ever voided (bits 0–62; `Queue::voided`). Bit 63, [`VOIDED_PENDING`], is part
    /// of the void journal: set before a void's commit, cleared by the store of the new count
    /// after it, so that the repair of a holder that died in between counts the void exactly
    /// once. Zero in a segment made before it existed (its bytes were padding).
    pub voided: AtomicU64,
}

/// `Counters::voided` bit: a void under the lock has not stored its count yet (see
/// `docs/protocol.md`, "Crash repair").
pub const VOIDED_PENDING: u64 = 1 << 63;

// The `Counters::flags` bits, defined once beside the protocol that reads them (which loom
// compiles without this module).
pub use crate::lockfree::{RING_CLOSED, RING_RECEIVERS_GONE, RING_SENDERS_GONE};

/// Size of [`RingControl`] in bytes.
pub const RING_CONTROL_SIZE: usize = std::mem::size_of::<RingControl>();
const _: () = assert!(RING_CONTROL_SIZE == 80 * LINE);
const _: () = assert!(LANES * 8 == LINE);
const _: () = assert!(std::mem::align_of::<RingControl>() == LINE);

impl fmt::Debug for RingControl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RingControl")
            .field("head", &self.head.0.load(Relaxed))
            .field("tail", &self.tail.0.tail.load(Relaxed))
            .field("done", &self.counters.0.done.load(Relaxed))
            .field("flags", &self.counters.0.flags.load(Relaxed))
            .field("items", &self.items.0.load(Relaxed))
            .field("free", &self.free.0.load(Relaxed))
            .finish_non_exhaustive()
    }
}

/// Where one ring sits in a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingLayout {
    /// Offset of the [`RingControl`].
    pub control: usize,
    /// Offset of slot 0.
    pub slots: usize,
    /// Number of slots.
    pub capacity: u64,
    /// Largest payload of a slot.
    pub message_size: usize,
    /// Distance between slots.
    pub stride: usize,
}

impl RingLayout {
    /// A ring of `capacity` slots of up to `message_size` bytes starting at `offset` (rounded up
    /// to [`LINE`]), or why that is not possible.
    ///
    /// # Errors
    ///
    /// A message for `InvalidOptions` when a size is zero, too large or overflows.
    pub fn at(offset: usize, capacity: u64, message_size: u64) -> Result<RingLayout, String> {
        check_ring_options(capacity, message_size)?;
        let stride = slot_stride(message_size).ok_or("message size overflows")?;
        let control = round_up(offset as u64, LINE as u64).ok_or("offset overflows")?;
        let slots = control + RING_CONTROL_SIZE as u64;
        let end = capacity
            .checked_mul(stride)
            .and_then(|b| b.checked_add(slots))
            .filter(|&e| e <= MAX_SEGMENT_SIZE)
            .ok_or_else(|| {
                format!(
                    "{capacity} slots of {message_size} bytes exceed the segment limit of {MAX_SEGMENT_SIZE} bytes"
                )
            })?;
        let to_usize = |v: u64| usize::try_from(v).map_err(|_| "size exceeds the address space");
        let _ = to_usize(end)?;
        Ok(RingLayout {
            control: to_usize(control)?,
            slots: to_usize(slots)?,
            capacity,
            message_size: to_usize(message_size)?,
            stride: to_usize(stride)?,
        })
    }

    /// The first byte after the ring.
    pub fn end(&self) -> usize {
        self.slots + self.capacity as usize * self.stride
    }
}

/// Checks a capacity and message size against the limits.
///
/// # Errors
///
/// A message naming the bad value.
pub fn check_ring_options(capacity: u64, message_size: u64) -> Result<(), String> {
    if capacity == 0 {
        return Err("capacity must be at least 1".into());
    }
    if capacity > MAX_CAPACITY {
        return Err(format!(
            "capacity {capacity} exceeds the maximum {MAX_CAPACITY}"
        ));
    }
    if message_size == 0 {
        return Err("message size must be at least 1".into());
    }
    if message_size > MAX_MESSAGE_SIZE {
        return Err(format!(
            "message size {message_size} exceeds the maximum {MAX_MESSAGE_SIZE}"
        ));
    }
    Ok(())
}

/// The slot stride for a message size: [`SLOT_HEADER`] plus the payload, rounded up to 8.
pub fn slot_stride(message_size: u64) -> Option<u64> {
    round_up(message_size.checked_add(SLOT_HEADER as u64)?, 8)
}

/// Rounds `v` up to a multiple of `align` (a power of two).
pub fn round_up(v: u64, align: u64) -> Option<u64> {
    debug_assert!(align.is_power_of_two());
    Some(v.checked_add(align - 1)? & !(align - 1))
}

/// The layout of a queue segment: header, then one ring.
///
/// # Errors
///
/// As [`RingLayout::at`].
pub fn queue_layout(capacity: u64, message_size: u64) -> Result<(RingLayout, Params), String> {
    let ring = RingLayout::at(HEADER_SIZE, capacity, message_size)?;
    let params = Params {
        kind: Kind::Queue,
        capacity,
        message_size,
        slot_stride: ring.stride as u64,
        aux: 0,
        total_size: ring.end() as u64,
    };
    Ok((ring, params))
}

/// Entries in a pipe's holder table: how many handles (over all processes) may hold a pipe's
/// ends at once.
pub const PIPE_HOLDERS: usize = 64;

/// Bytes of one holder entry: a `tag` word, then a `deadline` word (both `u64`).
pub const PIPE_HOLDER_SIZE: usize = 16;

/// `aux` of a duplex pipe's header (both ends send and receive).
pub const PIPE_DUPLEX: u64 = 1;
/// `aux` of a one-way pipe's header (end A receives, end B sends).
pub const PIPE_ONE_WAY: u64 = 0;

/// Where the parts of a pipe segment sit.
///
/// | offset | contents |
/// |-------:|----------|
/// | 0      | header |
/// | 128    | `lock`: the robust mutex guarding the holder table and `gone` |
/// | 256    | `gone`: u64, bit 0 end A gone, bit 1 end B gone (set once, never cleared) |
/// | 384    | holder table: [`PIPE_HOLDERS`] entries of [`PIPE_HOLDER_SIZE`] bytes |
/// | 1408   | ring A→B (duplex only), then ring B→A |
///
/// A holder entry's `tag` is `end | kind << 2 | pid << 4 | start << 26` (`end` 1 = A, 2 = B;
/// `kind` 0 holder, 1 fork reservation, 2 hand-off token; `start` the process's start time,
/// `/proc/PID/stat` field 22; 0 = free entry), and its `deadline` the `CLOCK_MONOTONIC`
/// nanoseconds until which a reservation or a token is live (`docs/layout.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PipeLayout {
    /// Offset of the holder-table lock.
    pub lock: usize,
    /// Offset of the `gone` word.
    pub gone: usize,
    /// Offset of holder entry 0.
    pub holders: usize,
    /// The ring carrying messages from end A to end B (`None` in a one-way pipe).
    pub a_to_b: Option<RingLayout>,
    /// The ring carrying messages from end B to end A.
    pub b_to_a: RingLayout,
}

/// The layout of a pipe segment: header, holder-table lock, `gone` word, holder table, then the
/// ring A→B (duplex only) and the ring B→A.
///
/// # Errors
///
/// As [`RingLayout::at`].
pub fn pipe_layout(
    capacity: u64,
    message_size: u64,
    duplex: bool,
) -> Result<(PipeLayout, Params), String> {
    let lock = HEADER_SIZE;
    let gone = lock + LINE;
    let holders = gone + LINE;
    let rings_at = holders + PIPE_HOLDERS * PIPE_HOLDER_SIZE;
    let (a_to_b, b_to_a) = if duplex {
        let first = RingLayout::at(rings_at, capacity, message_size)?;
        let second = RingLayout::at(first.end(), capacity, message_size)?;
        (Some(first), second)
    } else {
        (None, RingLayout::at(rings_at, capacity, message_size)?)
    };
    let total_size = b_to_a.end() as u64;
    if total_size > MAX_SEGMENT_SIZE {
        return Err(format!(
            "two rings of {capacity} slots of {message_size} bytes exceed the segment limit of {MAX_SEGMENT_SIZE} bytes"
        ));
    }
    let params = Params {
        kind: Kind::Pipe,
        capacity,
        message_size,
        slot_stride: b_to_a.stride as u64,
        aux: if duplex { PIPE_DUPLEX } else { PIPE_ONE_WAY },
        total_size,
    };
    let layout = PipeLayout {
        lock,
        gone,
        holders,
        a_to_b,
        b_to_a,
    };
    Ok((layout, params))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_voided_count_sits_at_offset_32_of_the_counters_line() {
        assert_eq!(std::mem::offset_of!(RingControl, counters), 384);
        assert_eq!(std::mem::offset_of!(Counters, void_pos), 16);
        assert_eq!(std::mem::offset_of!(Counters, void_done), 24);
        assert_eq!(std::mem::offset_of!(Counters, voided), 32);
        assert!(std::mem::size_of::<Counters>() <= LINE);
    }

    #[test]
    fn header_fields_sit_at_documented_offsets() {
        assert_eq!(std::mem::offset_of!(Header, magic), 0);
        assert_eq!(std::mem::offset_of!(Header, version), 8);
        assert_eq!(std::mem::offset_of!(Header, kind), 12);
        assert_eq!(std::mem::offset_of!(Header, state), 16);
        assert_eq!(std::mem::offset_of!(Header, total_size), 24);
        assert_eq!(std::mem::offset_of!(Header, capacity), 32);
        assert_eq!(std::mem::offset_of!(Header, message_size), 40);
        assert_eq!(std::mem::offset_of!(Header, slot_stride), 48);
        assert_eq!(std::mem::offset_of!(Header, aux), 56);
        assert_eq!(std::mem::offset_of!(Header, creator_pid), 64);
        assert_eq!(std::mem::offset_of!(Header, creator_start), 72);
        assert_eq!(std::mem::offset_of!(Header, instance), 96);
        assert_eq!(std::mem::offset_of!(Header, max_message), 104);
        assert_eq!(&MAGIC.to_le_bytes(), b"SHMQ\0seg");
    }

    #[test]
    fn ring_control_fields_are_on_separate_lines() {
        assert_eq!(std::mem::offset_of!(RingControl, lock), 0);
        assert_eq!(std::mem::offset_of!(RingControl, head), 128);
        assert_eq!(std::mem::offset_of!(RingControl, tail), 256);
        assert_eq!(std::mem::offset_of!(RingControl, counters), 384);
        assert_eq!(std::mem::offset_of!(RingControl, items), 512);
        assert_eq!(std::mem::offset_of!(RingControl, free), 640);
        assert_eq!(std::mem::offset_of!(RingControl, joined), 768);
        assert_eq!(std::mem::offset_of!(RingControl, participants), 896);
        assert_eq!(std::mem::offset_of!(RingControl, intents), 1920);
    }

    #[test]
    fn queue_layout_arithmetic() {
        let (ring, p) = queue_layout(6, 64).unwrap();
        assert_eq!(ring.control, 128);
        assert_eq!(ring.slots, 128 + 10240);
        assert_eq!(ring.stride, 80);
        assert_eq!(p.total_size, 10368 + 6 * 80);
        assert_eq!(slot_stride(1), Some(24));
        assert_eq!(slot_stride(8), Some(24));
        assert_eq!(slot_stride(9), Some(32));
    }

    #[test]
    fn pipe_layout_arithmetic() {
        let (l, p) = pipe_layout(6, 64, true).unwrap();
        assert_eq!((l.lock, l.gone, l.holders), (128, 256, 384));
        let ab = l.a_to_b.unwrap();
        assert_eq!(ab.control, 1408);
        assert_eq!(ab.slots, 1408 + 10240);
        assert_eq!(ab.end(), 11648 + 6 * 80);
        // 12128 rounded up to a multiple of 128.
        assert_eq!(l.b_to_a.control, 12160);
        assert_eq!(p.total_size, 12160 + 10240 + 6 * 80);
        assert_eq!(
            (p.kind, p.aux, p.slot_stride),
            (Kind::Pipe, PIPE_DUPLEX, 80)
        );

        let (l, p) = pipe_layout(6, 64, false).unwrap();
        assert_eq!(l.a_to_b, None);
        assert_eq!(l.b_to_a.control, 1408);
        assert_eq!(p.total_size, 1408 + 10240 + 6 * 80);
        assert_eq!(p.aux, PIPE_ONE_WAY);
        assert!(pipe_layout(0, 8, true).is_err());
        assert!(pipe_layout(MAX_CAPACITY, MAX_MESSAGE_SIZE / 2, true).is_err());
    }

    #[test]
    fn bad_options_are_refused_with_a_reason() {
        assert!(queue_layout(0, 8).unwrap_err().contains("capacity"));
        assert!(queue_layout(8, 0).unwrap_err().contains("message size"));
        assert!(queue_layout(MAX_CAPACITY + 1, 8).is_err());
        assert!(queue_layout(8, MAX_MESSAGE_SIZE + 1).is_err());
        assert!(
            queue_layout(MAX_CAPACITY, MAX_MESSAGE_SIZE)
                .unwrap_err()
                .contains("exceed")
        );
    }
}
