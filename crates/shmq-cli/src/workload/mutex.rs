//! A robust mutex other processes lock, for the lock benchmarks.

use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use shmq::Segment;

use super::launcher::Launcher;
use super::roles::Role;

/// A robust mutex in a fresh named segment that other processes can lock, for the lock
/// benchmarks; the segment is unlinked on drop (it is never published as a queue).
#[derive(Debug)]
pub struct SharedMutex {
    name: String,
    seg: shmq::Fresh,
}

/// Where [`SharedMutex`] places its mutex.
const MUTEX_OFFSET: usize = 4096;

impl SharedMutex {
    /// Creates the segment and initialises the mutex.
    ///
    /// # Errors
    ///
    /// If the segment cannot be created.
    pub fn create() -> Result<SharedMutex> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "shmq-bench-{}-{}-mutex",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let seg = Segment::create(&name, 2 * MUTEX_OFFSET as u64, 0o600)?;
        seg.init_mutex(MUTEX_OFFSET)?;
        Ok(SharedMutex { name, seg })
    }

    /// The mutex.
    ///
    /// # Errors
    ///
    /// Never in practice (the offset is fixed and valid).
    pub fn mutex(&self) -> Result<&shmq::RawMutex> {
        Ok(self.seg.mutex_at(MUTEX_OFFSET)?)
    }

    /// Runs `ours` in this process while a child locks and unlocks the same mutex `count`
    /// times; returns the time `ours` took.
    ///
    /// # Errors
    ///
    /// If the child fails.
    pub fn contended(
        &self,
        launcher: &Launcher,
        count: u64,
        ours: impl FnOnce(&shmq::RawMutex) -> Result<()>,
    ) -> Result<Duration> {
        let mut child = launcher.spawn(
            &Role::LockHammer {
                segment: self.name.clone(),
                offset: MUTEX_OFFSET,
                count,
            },
            Stdio::null(),
            Stdio::null(),
        )?;
        child.ready()?;
        let start = Instant::now();
        ours(self.mutex()?)?;
        let elapsed = start.elapsed();
        child.finish()?;
        Ok(elapsed)
    }
}
