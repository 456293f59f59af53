//! **Below the queue**: what `shmq-dict`, the `shmq` command-line tool, the Python package and
//! the C library build on — mapping and inspecting segments, their byte layout, the robust
//! lock, the liveness of processes, and the management of the side segments that carry large
//! messages. A program that moves messages needs none of it: [`Queue`](crate::Queue),
//! [`Pipe`](crate::Pipe) and the types at the crate root are the API.
//!
//! These modules are stable enough for the companion crates of this workspace, which are
//! released together with `shmq`; their items may change in any release.

pub mod segment {
    //! One mapped region of shared memory (a named POSIX shared-memory object, a file, or an
    //! anonymous mapping), its creation, opening and unlinking, and [`inspect`]: a segment's
    //! header and words read from its file without mapping it or taking a lock.
    pub use crate::segment::*;
}

pub mod layout {
    //! The bytes of a segment: the common header, the ring control block, the slot format and
    //! the arithmetic that places them (`docs/layout.md`).
    pub use crate::layout::*;
}

pub mod sync {
    //! Cross-process synchronisation in shared memory: the robust lock ([`RawMutex`]) that a
    //! waiter takes over from a dead owner, futex words and the semaphore.
    pub use crate::sync::*;
}

pub mod liveness {
    //! Whether a process (pid and start time) or a lock's owner thread still runs.
    pub use crate::liveness::*;
}

pub mod large {
    //! The side segments of messages larger than a slot: their names, and how tools list and
    //! remove the ones a queue or a dead process left (`shmq gc`).
    pub use crate::large::*;
}
