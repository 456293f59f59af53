//! What a [`Queue`](crate::Queue) stands on: its segment and the view of its one ring, built
//! and checked once when it is made or opened (`ring::HeldRing`, which keeps the segment
//! mapped), and its large-message side. Creating, opening,
//! inspecting and removing a queue happen here, below the face; the face makes a [`Port`]
//! from it for each operation.

use std::path::Path;
use std::sync::Arc;

use super::Port;
use super::wait::{Dir, Watch};
use crate::engine::Waiting;
use crate::error::OpenError;
use crate::large::Big;
use crate::layout::{self, Kind, RING_CLOSED, RingLayout};
use crate::options::Options;
use crate::ring::{HeldRing, Ring};
use crate::segment::{CreationMode, Fresh, Segment};

/// A look at a named queue from outside: what [`Queue::inspect`](crate::Queue::inspect)
/// returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueInfo {
    /// How many messages fit.
    pub capacity: usize,
    /// The slot size: the largest message that travels in a slot, in bytes.
    pub message_size: usize,
    /// The largest message a put accepts (larger ones than a slot travel in side segments).
    pub max_message_size: usize,
    /// Messages waiting, a message a consumer is reading included.
    pub len: usize,
    /// Tasks put and not yet marked done (JoinableQueue's count), the waiting messages included.
    pub unfinished: u64,
    /// Whether the queue is closed.
    pub closed: bool,
}

/// A queue's segment, ring and large-message side.
pub(crate) struct QueueSegment {
    /// The segment and the view of its ring, checked once.
    held: HeldRing,
    layout: RingLayout,
    big: Big,
}

impl QueueSegment {
    /// Creates a named queue (`mode` decides what happens if the name exists); an existing
    /// queue of another geometry is `Incompatible`.
    pub(crate) fn create_named(
        name: &str,
        opts: &Options,
        mode: CreationMode,
    ) -> Result<Self, OpenError> {
        opts.check()?;
        let (ring, params) = layout::queue_layout(opts.capacity as u64, opts.message_size as u64)
            .map_err(OpenError::InvalidOptions)?;
        let q = crate::segment::create_named(
            name,
            mode,
            || {
                Self::init(
                    Segment::create(name, params.total_size, opts.mode)?,
                    ring,
                    &params,
                    opts,
                )
            },
            Self::open,
        )?;
        q.matching(opts)
    }

    fn matching(self, opts: &Options) -> Result<Self, OpenError> {
        let (cap, size) = (self.capacity(), self.message_size());
        if cap != opts.capacity || size != opts.message_size {
            return Err(OpenError::Incompatible(format!(
                "the existing queue has capacity {cap} and message size {size}, not {} and {}",
                opts.capacity, opts.message_size
            )));
        }
        Ok(self)
    }

    fn init(
        fresh: Fresh,
        ring: RingLayout,
        params: &layout::Params,
        opts: &Options,
    ) -> Result<Self, OpenError> {
        fresh.init_ring(&ring)?;
        fresh.set_max_message(opts.max_message_size as u64);
        let seg = fresh.publish(params);
        let big = Big::new(&seg, opts.message_size)?;
        Ok(QueueSegment {
            held: HeldRing::new(Arc::new(seg), &ring)?,
            layout: ring,
            big,
        })
    }

    /// Opens a named queue, waiting briefly for a creator that is still writing it.
    pub(crate) fn open(name: &str) -> Result<Self, OpenError> {
        Self::from_segment(Segment::open_raw(name)?)
    }

    /// Creates a queue in a new file at `path`.
    pub(crate) fn create_file(path: &Path, opts: &Options) -> Result<Self, OpenError> {
        opts.check()?;
        let (ring, params) = layout::queue_layout(opts.capacity as u64, opts.message_size as u64)
            .map_err(OpenError::InvalidOptions)?;
        let fresh = Segment::create_file(path, params.total_size, opts.mode)?;
        Self::init(fresh, ring, &params, opts)
    }

    /// Opens a queue made by [`create_file`](Self::create_file).
    pub(crate) fn open_file(path: &Path) -> Result<Self, OpenError> {
        Self::from_segment(Segment::open_file_raw(path)?)
    }

    /// Removes a file-backed queue's file, then its side files.
    pub(crate) fn unlink_file(path: &Path) -> Result<(), OpenError> {
        std::fs::remove_file(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                OpenError::NotFound(path.display().to_string())
            } else {
                OpenError::Io(e)
            }
        })?;
        crate::large::remove_side_files(path);
        Ok(())
    }

    /// A queue in an anonymous shared mapping.
    pub(crate) fn anonymous(opts: &Options) -> Result<Self, OpenError> {
        opts.check()?;
        let (ring, params) = layout::queue_layout(opts.capacity as u64, opts.message_size as u64)
            .map_err(OpenError::InvalidOptions)?;
        let fresh = Segment::anonymous(params.total_size)?;
        Self::init(fresh, ring, &params, opts)
    }

    /// Reads a named queue without attaching: no lock, no change (no sweep of side segments).
    pub(crate) fn inspect(name: &str) -> Result<QueueInfo, OpenError> {
        let seg = Segment::open_raw(name)?;
        let p = seg.read_header(Some(Kind::Queue))?;
        let (layout, expected) =
            layout::queue_layout(p.capacity, p.message_size).map_err(OpenError::Corrupt)?;
        seg.check_opened(&p, &expected, [&layout])?;
        // Validates the maximum message size; a named segment's side place is only computed.
        let big = Big::new(&seg, p.message_size as usize)?;
        let ring = seg.ring(&layout)?;
        Ok(QueueInfo {
            capacity: layout.capacity as usize,
            message_size: layout.message_size,
            max_message_size: big.max(),
            len: ring.len() as usize,
            unfinished: ring.unfinished(),
            closed: ring.flags() & RING_CLOSED != 0,
        })
    }

    fn from_segment(seg: Segment) -> Result<Self, OpenError> {
        let p = seg.read_header(Some(Kind::Queue))?;
        let (ring, expected) =
            layout::queue_layout(p.capacity, p.message_size).map_err(OpenError::Corrupt)?;
        seg.check_opened(&p, &expected, [&ring])?;
        let big = Big::new(&seg, p.message_size as usize)?;
        let q = QueueSegment {
            held: HeldRing::new(Arc::new(seg), &ring)?,
            layout: ring,
            big,
        };
        // Side segments that dead processes left (docs/protocol.md, "Large messages").
        q.big.sweep(&[q.ring()]);
        Ok(q)
    }

    /// The segment.
    pub(crate) fn segment(&self) -> &Segment {
        self.held.segment()
    }

    #[inline]
    pub(crate) fn ring(&self) -> &Ring<'_> {
        self.held.ring()
    }

    /// The queue's one direction of messages, waiting in plain slices.
    #[inline]
    pub(crate) fn port(&self) -> Port<'_> {
        Port::new(self.ring(), &self.big, Waiting::PLAIN)
    }

    /// Readiness and the event word of a get (`Take`) or a put (`Give`), for the waiting
    /// layer (select, async).
    pub(crate) fn watch(&self, dir: Dir) -> Watch<'_> {
        Watch::new(Some(self.ring()), dir, None)
    }

    /// Slots in the ring.
    pub(crate) fn capacity(&self) -> usize {
        self.layout.capacity as usize
    }

    /// The slot size.
    pub(crate) fn message_size(&self) -> usize {
        self.layout.message_size
    }

    /// The largest message a put accepts.
    pub(crate) fn max_message_size(&self) -> usize {
        self.big.max()
    }

    /// The segment's random instance id (0 for a segment written without one).
    pub(crate) fn instance_id(&self) -> u64 {
        self.held.segment().header().instance_id()
    }
}
