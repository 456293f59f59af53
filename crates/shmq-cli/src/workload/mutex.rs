//! shmq's robust lock, which other processes lock, for the lock benchmarks.

use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;

use super::launcher::Launcher;
use super::roles::Role;

/// shmq's robust lock in a fresh named segment (a [`shmq_dict::Lock`]) that other processes
/// can lock, for the lock benchmarks; the name is removed on drop.
#[derive(Debug)]
pub struct SharedMutex {
    name: String,
    lock: shmq_dict::Lock,
}

impl SharedMutex {
    /// Creates the named lock.
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
        let lock = shmq_dict::Lock::create(&name)?;
        Ok(SharedMutex { name, lock })
    }

    /// The lock.
    ///
    /// # Errors
    ///
    /// Never in practice.
    pub fn mutex(&self) -> Result<&shmq_dict::Lock> {
        Ok(&self.lock)
    }

    /// Runs `ours` in this process while a child locks and unlocks the same lock `count`
    /// times; returns the time `ours` took.
    ///
    /// # Errors
    ///
    /// If the child fails.
    pub fn contended(
        &self,
        launcher: &Launcher,
        count: u64,
        ours: impl FnOnce(&shmq_dict::Lock) -> Result<()>,
    ) -> Result<Duration> {
        let mut child = launcher.spawn(
            &Role::LockHammer {
                segment: self.name.clone(),
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

impl Drop for SharedMutex {
    fn drop(&mut self) {
        let _ = shmq_dict::Lock::unlink(&self.name);
    }
}
