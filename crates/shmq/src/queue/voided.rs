//! How many positions of a queue were voided: claimed by a put that died before publishing,
//! and turned into tombstones that consumers step over. A sole producer that must know whether
//! its own put reached the queue after its death (the bridge from NATS JetStream,
//! `crates/shmq-bridge`) compares this count with the one it recorded before the put.

use super::Queue;

impl Queue {
    /// How many positions of this queue were ever voided: claimed by a put whose process died
    /// before it published them (or by a zero-copy put whose fill failed), so that no message
    /// is, or will ever be, at those positions. Every void is counted under the queue's lock in
    /// the same journaled step that makes the tombstones, so the count is exact even when the
    /// process that voided died inside the void (the next holder of the lock counts it; this
    /// call takes the lock then). 0 for a queue created by a shmq that did not count.
    ///
    /// Message positions `head_position()..tail_position()` hold messages and tombstones;
    /// `tail_position() - voided()` messages were ever put.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmq::{Options, Queue, TryGetError};
    /// let q = Queue::anonymous(&Options { capacity: 4, message_size: 8, ..Default::default() })?;
    /// q.put(b"a")?;
    /// // A fill that asks for more than a slot voids the slot it had claimed.
    /// assert!(q.put_with(|_| 9).is_err());
    /// assert_eq!(q.voided(), 1);
    /// assert_eq!(q.tail_position(), 2);
    /// assert_eq!(q.get()?, b"a");
    /// assert_eq!(q.try_get(), Err(TryGetError::Empty)); // the tombstone is stepped over
    /// # Ok(())
    /// # }
    /// ```
    pub fn voided(&self) -> u64 {
        self.shm.port().voided()
    }
}
