//! What a [`PipeEnd`](crate::PipeEnd) stands on: the pipe's segment, this handle's entry in the
//! holder table ([`holders`]), the views of the pipe's one or two rings (built once per handle,
//! `ring::HeldRing`) and its large-message side.
//! Creating, opening, inspecting and handing off an end happen here, below the face, and so
//! does the pipe's way of waiting: a blocked call sleeps in slices of [`LIVENESS_SLICE`] and
//! sweeps the holder table after each, so that a peer killed without closing becomes
//! end-of-file ([`PipeHandle::with_port`]).

pub(crate) mod holders;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Port;
use super::wait::{Dir, LIVENESS_SLICE, Recheck, Watch};
use crate::engine::{Fail, Waiting};
use crate::error::OpenError;
use crate::large::Big;
use crate::layout::{self, Kind, PIPE_DUPLEX, PIPE_ONE_WAY, PipeLayout, RingLayout};
use crate::limits::{OPEN_LOCK_WAIT, TRY_LOCK_WAIT};
use crate::options::Options;
use crate::ring::{HeldRing, Ring};
use crate::segment::{Fresh, Segment};
use crate::sync::atomic::{AtomicU64, Ordering::SeqCst};
use crate::sys;
use holders::{Holding, Table, Tag, table_full};

/// One end of a pipe.
///
/// In a duplex pipe both ends send and receive. In a one-way pipe (Python's
/// `Pipe(duplex=False)`), end `A` only receives and end `B` only sends, in the order of Python's
/// `(receiver, sender)` pair.
///
/// # Examples
///
/// ```
/// use shmq::End;
/// assert_eq!(End::A.other(), End::B);
/// assert_eq!(End::B.to_string(), "B");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum End {
    /// The first end (the receiving end of a one-way pipe).
    A,
    /// The second end (the sending end of a one-way pipe).
    B,
}

impl End {
    /// The end connected to this one.
    pub fn other(self) -> End {
        match self {
            End::A => End::B,
            End::B => End::A,
        }
    }

    /// The end's code in a holder entry's tag.
    fn code(self) -> u64 {
        match self {
            End::A => 1,
            End::B => 2,
        }
    }

    fn from_code(code: u64) -> Option<End> {
        match code {
            1 => Some(End::A),
            2 => Some(End::B),
            _ => None,
        }
    }

    /// The end's bit in the `gone` word (and in the set of ends with a live holder).
    pub(crate) fn bit(self) -> u64 {
        self.code()
    }
}

impl fmt::Display for End {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            End::A => "A",
            End::B => "B",
        })
    }
}

/// A look at a pipe from outside: what [`Pipe::inspect`](crate::Pipe::inspect) returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipeInfo {
    /// Whether both ends send and receive.
    pub duplex: bool,
    /// Messages each direction holds.
    pub capacity: usize,
    /// The largest message in bytes.
    pub message_size: usize,
    /// Live holders of end A and of end B (entries whose process still runs).
    pub holders: [usize; 2],
    /// Hand-off tokens ([`PipeEnd::hand_off`](crate::PipeEnd::hand_off)) and fork reservations
    /// of end A and of end B that are still live: each keeps its end open although no process
    /// holds it yet.
    pub handoffs: [usize; 2],
    /// Whether end A and end B are gone for good (every holder left: end-of-file).
    pub gone: [bool; 2],
    /// Messages waiting from A to B (`None` for a one-way pipe) and from B to A.
    pub queued: (Option<usize>, usize),
}

/// Who keeps the other end of a pipe open: what
/// [`PipeEnd::peer_holders`](crate::PipeEnd::peer_holders) returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerHolders {
    /// The processes holding the other end that ran when the table was read, each as its pid
    /// and its start time (clock ticks since boot, field 22 of `/proc/PID/stat`; 0 if unknown),
    /// which together name one process for the life of the system. A process that holds the
    /// end through several handles is listed once per handle.
    pub processes: Vec<(u32, u64)>,
    /// The earliest deadline of the other end's hand-off tokens and fork reservations that
    /// were live (handles in transit, held by no process yet): `None` if it has none.
    pub in_transit_until: Option<Instant>,
    /// Whether the other end is gone for good (end-of-file for this end).
    pub gone: bool,
    /// Whether the sweep ran (`false`: the table's lock was busy for
    /// [`TRY_LOCK_WAIT`](crate::TRY_LOCK_WAIT), and a holder found dead here was not yet
    /// removed; ask again).
    pub swept: bool,
}

/// One direction of a pipe end: an opaque token for [`PipeHandle::with_port`].
pub(crate) struct Direction<'a>(pub(crate) &'a Ring<'a>);

/// Marks that an operation needs a direction this end of a one-way pipe lacks.
pub(crate) struct WrongDirection;

/// A handle's hold on one end of a pipe.
pub(crate) struct PipeHandle {
    /// This handle's entry in the holder table (with the segment and the layout).
    holding: Arc<Holding>,
    seg: Arc<Segment>,
    layout: PipeLayout,
    end: End,
    /// When this handle was made; `last_sweep` counts from it.
    epoch: Instant,
    /// Nanoseconds from `epoch` to this handle's last sweep of the holder table.
    last_sweep: AtomicU64,
    /// Messages larger than a slot.
    big: Big,
    /// The views of the rings from A to B (`None` for a one-way pipe) and from B to A, checked
    /// once.
    rings: (Option<HeldRing>, HeldRing),
}

/// The error of an open or hand-off whose holder-table update failed: the lock stayed held by a
/// live process for [`OPEN_LOCK_WAIT`], or the table is damaged.
fn open_error(f: Fail) -> OpenError {
    match f {
        Fail::WouldBlock => OpenError::Busy(format!(
            "the pipe's holder table stayed locked by another live process for {} ms",
            OPEN_LOCK_WAIT.as_millis()
        )),
        Fail::Corrupt(s) => OpenError::Corrupt(s),
        Fail::Closed | Fail::Disconnected => {
            OpenError::Disconnected("the pipe's ends are gone".into())
        }
        Fail::TooLarge { .. }
        | Fail::NoSpace { .. }
        | Fail::TooSmall { .. }
        | Fail::Reserved
        | Fail::Pending { .. }
        | Fail::Large => {
            unreachable!("a holder-table update moves no message")
        }
    }
}

/// The instant [`OPEN_LOCK_WAIT`] from now, if representable.
fn open_deadline() -> Option<Instant> {
    Instant::now().checked_add(OPEN_LOCK_WAIT)
}

/// Opens a pipe segment and checks its header, geometry and rings (repairing a ring whose lock
/// owner died), without registering a holder.
fn validated(name: &str) -> Result<(Segment, PipeLayout), OpenError> {
    let seg = Segment::open_raw(name)?;
    let p = seg.read_header(Some(Kind::Pipe))?;
    let duplex = match p.aux {
        PIPE_DUPLEX => true,
        PIPE_ONE_WAY => false,
        other => {
            return Err(OpenError::Corrupt(format!(
                "pipe direction word is {other}, not {PIPE_DUPLEX} or {PIPE_ONE_WAY}"
            )));
        }
    };
    let (layout, expected) =
        layout::pipe_layout(p.capacity, p.message_size, duplex).map_err(OpenError::Corrupt)?;
    seg.check_opened(&p, &expected, layout.a_to_b.iter().chain([&layout.b_to_a]))?;
    Big::new(&seg, p.message_size as usize)?;
    Ok((seg, layout))
}

impl PipeHandle {
    fn new(holding: Arc<Holding>) -> PipeHandle {
        let size = holding.layout.b_to_a.message_size;
        // Checked by `validated` (or just written by the creator); a header that changed since
        // is a damaged segment, which then carries no large messages.
        let big = Big::new(&holding.seg, size).unwrap_or_else(|_| Big::slots_only(size));
        // Checked by `validated` (or just made by the creator); the layout is immutable.
        let held = |layout: &RingLayout| {
            HeldRing::new(Arc::clone(&holding.seg), layout)
                .unwrap_or_else(|e| unreachable!("validated ring: {e}"))
        };
        let rings = (
            holding.layout.a_to_b.as_ref().map(held),
            held(&holding.layout.b_to_a),
        );
        PipeHandle {
            big,
            rings,
            seg: Arc::clone(&holding.seg),
            layout: holding.layout,
            end: holding.end,
            holding,
            epoch: Instant::now(),
            last_sweep: AtomicU64::new(0),
        }
    }

    /// Creates a named pipe (duplex, or one-way B → A) and returns a handle on each end.
    pub(crate) fn create_named(
        name: &str,
        opts: &Options,
        duplex: bool,
    ) -> Result<(PipeHandle, PipeHandle), OpenError> {
        opts.check()?;
        crate::segment::validate_name(name)?;
        let (layout, params) =
            layout::pipe_layout(opts.capacity as u64, opts.message_size as u64, duplex)
                .map_err(OpenError::InvalidOptions)?;
        let fresh = Segment::create(name, params.total_size, opts.mode)?;
        fresh.set_max_message(opts.max_message_size as u64);
        Self::init(fresh, layout, &params)
    }

    /// Initialises a fresh segment, registers both ends for this process and publishes it.
    fn init(
        fresh: Fresh,
        layout: PipeLayout,
        params: &layout::Params,
    ) -> Result<(PipeHandle, PipeHandle), OpenError> {
        fresh.init_mutex(layout.lock)?;
        for ring in layout.a_to_b.iter().chain([&layout.b_to_a]) {
            fresh.init_ring(ring)?;
        }
        // Register both ends before publishing, so that no opener ever sees a pipe with an end
        // that has no holder (it would take that end for gone).
        let table = Table::new(&fresh, &layout)?;
        let tag_a = Tag::mine(End::A, holders::Kind::Holder)?;
        let tag_b = Tag::mine(End::B, holders::Kind::Holder)?;
        let entry_a = table.insert(tag_a, 0).ok_or_else(table_full)?;
        let entry_b = table.insert(tag_b, 0).ok_or_else(table_full)?;
        let seg = Arc::new(fresh.publish(params));
        Ok((
            PipeHandle::new(Holding::register(
                Arc::clone(&seg),
                layout,
                End::A,
                entry_a,
                tag_a,
            )),
            PipeHandle::new(Holding::register(seg, layout, End::B, entry_b, tag_b)),
        ))
    }

    /// A pipe in an anonymous mapping, for the unit tests.
    #[cfg(test)]
    pub(crate) fn anonymous(
        opts: &Options,
        duplex: bool,
    ) -> Result<(PipeHandle, PipeHandle), OpenError> {
        opts.check()?;
        let (layout, params) =
            layout::pipe_layout(opts.capacity as u64, opts.message_size as u64, duplex)
                .map_err(OpenError::InvalidOptions)?;
        Self::init(Segment::anonymous(params.total_size)?, layout, &params)
    }

    /// Reads a pipe without attaching (no holder registered, nothing changed).
    pub(crate) fn inspect(name: &str) -> Result<PipeInfo, OpenError> {
        let (seg, layout) = validated(name)?;
        let table = Table::new(&seg, &layout)?;
        let (holders, handoffs) = table.census(sys::monotonic_ns());
        let gone = table.gone.load(SeqCst);
        let len = |r: &RingLayout| seg.ring(r).map(|r| r.len() as usize);
        Ok(PipeInfo {
            duplex: layout.a_to_b.is_some(),
            capacity: layout.b_to_a.capacity as usize,
            message_size: layout.b_to_a.message_size,
            holders,
            handoffs,
            gone: [gone & End::A.bit() != 0, gone & End::B.bit() != 0],
            queued: (
                layout.a_to_b.as_ref().map(len).transpose()?,
                len(&layout.b_to_a)?,
            ),
        })
    }

    /// Attaches to end `end` of a named pipe and registers this handle as one of its holders
    /// (taking over a hand-off token of that end if one is there).
    pub(crate) fn open(name: &str, end: End) -> Result<PipeHandle, OpenError> {
        let (seg, layout) = validated(name)?;
        let tag = Tag::mine(end, holders::Kind::Holder)?;
        let entry = {
            let table = Table::new(&seg, &layout)?;
            table
                .update_until(open_deadline(), |t, gone| {
                    if gone & end.bit() != 0 {
                        return Err(OpenError::Disconnected(format!(
                            "pipe {name:?}: every holder of end {end} has left, and end-of-file is final"
                        )));
                    }
                    // A hand-off token of this end becomes this handle's entry; otherwise a
                    // free one does.
                    t.take_hand_off(tag)
                        .or_else(|| t.insert(tag, 0))
                        .ok_or_else(table_full)
                })
                .map_err(open_error)??
        };
        let h = PipeHandle::new(Holding::register(Arc::new(seg), layout, end, entry, tag));
        // Side segments that dead processes left (docs/protocol.md, "Large messages").
        let rings: Vec<&Ring<'_>> = [h.incoming().ok(), h.outgoing().ok()]
            .into_iter()
            .flatten()
            .map(|d| d.0)
            .collect();
        h.big.sweep(&rings);
        drop(rings);
        Ok(h)
    }

    /// Leaves a hand-off token for end `self.end` in the holder table, live for `within`.
    pub(crate) fn hand_off(&self, within: Duration) -> Result<HandOffToken, OpenError> {
        let tag = Tag::mine(self.end, holders::Kind::HandOff)?;
        let now = Instant::now();
        let until =
            sys::monotonic_ns().saturating_add(within.as_nanos().min(u64::MAX.into()) as u64);
        let end = self.end;
        let entry = self
            .table()
            .update_until(open_deadline(), |t, gone| {
                if gone & end.bit() != 0 {
                    return Err(OpenError::Disconnected(format!(
                        "every holder of end {end} has left; it cannot be handed off"
                    )));
                }
                t.insert(tag, until).ok_or_else(table_full)
            })
            .map_err(open_error)??;
        Ok(HandOffToken {
            seg: Arc::clone(&self.seg),
            layout: self.layout,
            end,
            entry,
            tag: tag.encode(),
            deadline: now.checked_add(within),
        })
    }

    /// Deregisters this handle (end-of-file for the peers if it was the end's last holder).
    pub(crate) fn release(&self) -> Result<(), Fail> {
        self.holding.release()
    }

    pub(crate) fn table(&self) -> Table<'_> {
        self.holding.table()
    }

    /// The holder table's lock, for tests.
    #[cfg(test)]
    pub(crate) fn table_lock(&self) -> &crate::sync::RawMutex {
        self.seg
            .mutex_at(self.layout.lock)
            .unwrap_or_else(|e| unreachable!("validated lock: {e}"))
    }

    /// This handle's entry in the holder table, for tests.
    #[cfg(test)]
    pub(crate) fn entry(&self) -> Option<usize> {
        self.holding.entry()
    }

    /// The direction this end sends on.
    pub(crate) fn outgoing(&self) -> Result<Direction<'_>, WrongDirection> {
        match self.end {
            End::A => self.rings.0.as_ref().ok_or(WrongDirection),
            End::B => Ok(&self.rings.1),
        }
        .map(|h| Direction(h.ring()))
    }

    /// The direction this end receives from.
    pub(crate) fn incoming(&self) -> Result<Direction<'_>, WrongDirection> {
        match self.end {
            End::A => Ok(&self.rings.1),
            End::B => self.rings.0.as_ref().ok_or(WrongDirection),
        }
        .map(|h| Direction(h.ring()))
    }

    /// Sweeps the holder table now. The sweep waits [`TRY_LOCK_WAIT`] at most for the table's
    /// lock: a live holder of that lock is updating the table itself, and a holder that never
    /// lets go must not make a `try_*` or `_timeout` call wait without bound; the sweep is
    /// skipped then, and retried after the next slice.
    fn sweep(&self) -> Result<bool, Fail> {
        self.last_sweep
            .store(self.epoch.elapsed().as_nanos() as u64, SeqCst);
        let deadline = Instant::now().checked_add(TRY_LOCK_WAIT);
        match self.table().update_until(deadline, |_, _| ()) {
            Ok(()) => Ok(true),
            Err(Fail::WouldBlock) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Sweeps the holder table now, then lists the other end's live holders and the earliest
    /// deadline of its handles in transit (see [`PeerHolders`]).
    pub(crate) fn peer_holders(&self) -> Result<PeerHolders, Fail> {
        let swept = self.sweep()?;
        let t = self.table();
        let now = sys::monotonic_ns();
        let other = self.end.other();
        let (tags, until) = t.holders_of(other, now);
        Ok(PeerHolders {
            processes: tags.iter().map(|t| (t.pid, t.start)).collect(),
            in_transit_until: until.and_then(|d| {
                Instant::now().checked_add(Duration::from_nanos(d.saturating_sub(now)))
            }),
            gone: t.gone.load(SeqCst) & other.bit() != 0,
            swept,
        })
    }

    /// Readiness and the event word of a receive (`Take`) or a send (`Give`), for the waiting
    /// layer (select, async), which sweeps the holder table between sleeps ([`Recheck`]) so
    /// that a peer killed without closing is noticed. A direction this end does not have is
    /// always ready (the operation reports `WrongDirection`).
    pub(crate) fn watch(&self, dir: Dir) -> Watch<'_> {
        let ring = match dir {
            Dir::Take => self.incoming().ok(),
            Dir::Give => self.outgoing().ok(),
        };
        Watch::new(ring.map(|d| d.0), dir, Some(self))
    }

    /// Sweeps the holder table if this handle's last sweep is [`LIVENESS_SLICE`] old.
    fn maybe_sweep(&self) -> Result<(), Fail> {
        let now = self.epoch.elapsed().as_nanos() as u64;
        if now.saturating_sub(self.last_sweep.load(SeqCst)) >= LIVENESS_SLICE.as_nanos() as u64 {
            self.sweep().map(drop)
        } else {
            Ok(())
        }
    }

    /// Runs an operation of the port over one direction with the pipe's waiting policy:
    /// slices of [`LIVENESS_SLICE`], sweeping the holder table after each (a failed sweep is
    /// retried after the next slice; a broken ring reports itself through the operation).
    pub(crate) fn with_port<R>(
        &self,
        dir: Direction<'_>,
        run: impl FnOnce(&Port<'_>) -> Result<R, Fail>,
    ) -> Result<R, Fail> {
        self.maybe_sweep()?;
        let recheck = || {
            let _ = self.maybe_sweep();
        };
        let how = Waiting {
            slice: LIVENESS_SLICE,
            recheck: Some(&recheck),
        };
        run(&Port::new(dir.0, &self.big, how))
    }

    /// Which end this handle holds.
    pub(crate) fn end(&self) -> End {
        self.end
    }

    /// Whether both ends send and receive.
    pub(crate) fn is_duplex(&self) -> bool {
        self.layout.a_to_b.is_some()
    }

    /// Messages each direction holds.
    pub(crate) fn capacity(&self) -> usize {
        self.layout.b_to_a.capacity as usize
    }

    /// The slot size.
    pub(crate) fn message_size(&self) -> usize {
        self.layout.b_to_a.message_size
    }

    /// The largest message a send accepts.
    pub(crate) fn max_message_size(&self) -> usize {
        self.big.max()
    }

    /// The segment.
    pub(crate) fn segment(&self) -> &Segment {
        &self.seg
    }
}

impl Recheck for PipeHandle {
    fn recheck(&self) {
        let _ = self.maybe_sweep();
    }
}

impl Drop for PipeHandle {
    fn drop(&mut self) {
        // A corrupt segment cannot be reported from here; the entry is then freed by the next
        // sweep after this process exits.
        let _ = self.holding.release();
    }
}

/// A hand-off token in a pipe's holder table (what [`HandOff`](crate::HandOff) holds).
pub(crate) struct HandOffToken {
    seg: Arc<Segment>,
    layout: PipeLayout,
    end: End,
    entry: usize,
    tag: u64,
    deadline: Option<Instant>,
}

impl HandOffToken {
    /// The end the token keeps open.
    pub(crate) fn end(&self) -> End {
        self.end
    }

    /// When the token expires (`None`: not representable, never).
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// The segment.
    pub(crate) fn segment(&self) -> &Segment {
        &self.seg
    }

    /// Withdraws the token: `true` if it was still there.
    pub(crate) fn cancel(self) -> Result<bool, OpenError> {
        let table = Table::new(&self.seg, &self.layout)?;
        table
            .update(|t, _| t.release(self.entry, self.tag))
            .map_err(open_error)
    }
}
