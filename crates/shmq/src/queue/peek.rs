//! Peek with a position, then commit: a consumer that must deliver a message somewhere else
//! before it takes it (the bridge to NATS JetStream, `crates/shmq-bridge`) copies the message
//! at a position without taking it — no lock is held, so producers and other consumers go on
//! while it waits for a network round trip — and takes it later with one CAS of `head` from that
//! position. A consumer killed in between took nothing: the message is still first.

use std::time::Instant;

use super::Queue;
use crate::engine::{self, Fail, Wait, Waiting};
use crate::layout::RING_CLOSED;
use crate::lockfree::{Commit, Peek, PopFail, RESERVED, wait_for};
use crate::sync::atomic::Ordering::SeqCst;

/// Why [`Queue::peek_at`] returned no message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PeekError {
    /// The message at the position was taken already; `head` is the position of the oldest
    /// message now.
    #[error("the message at that position was taken already (the oldest is at {head})")]
    Taken {
        /// The position of the oldest message in the queue.
        head: u64,
    },
    /// No message reached the position before the deadline.
    #[error("timed out waiting for a message")]
    Timeout,
    /// The queue is closed and no message will ever reach the position.
    #[error("the queue is closed")]
    Closed,
    /// The message at the position is larger than a slot (it lives in a side segment,
    /// `Options::max_message_size`): peeking such messages is not supported yet.
    #[error("the message at that position is larger than a slot: it cannot be peeked")]
    Large,
    /// The segment's shared state is impossible.
    #[error("corrupt queue: {0}")]
    Corrupt(String),
}

/// Why [`Queue::commit`] took nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommitError {
    /// The oldest message is not at the position (another consumer took it, or the position
    /// is wrong): nothing was taken.
    #[error("the oldest message is at {head}, not at the committed position")]
    Moved {
        /// The position of the oldest message in the queue.
        head: u64,
    },
    /// Fewer messages are in the queue than the commit names: nothing was taken.
    #[error("only messages below position {tail} exist")]
    NotThere {
        /// One past the newest message's position.
        tail: u64,
    },
    /// The segment's shared state is impossible.
    #[error("corrupt queue: {0}")]
    Corrupt(String),
}

impl Queue {
    /// A random non-zero id of this queue's segment, written when it was created: two queues
    /// created under the same name one after the other have different ids, so that
    /// `(instance_id, position)` names one message for good. 0 for a segment created by a
    /// shmq build that did not write one.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), shmq::OpenError> {
    /// use shmq::{Options, Queue};
    /// let opts = Options { capacity: 2, message_size: 8, ..Default::default() };
    /// let (a, b) = (Queue::anonymous(&opts)?, Queue::anonymous(&opts)?);
    /// assert_ne!(a.instance_id(), 0);
    /// assert_ne!(a.instance_id(), b.instance_id());
    /// # Ok(())
    /// # }
    /// ```
    pub fn instance_id(&self) -> u64 {
        self.seg.header().instance_id()
    }

    /// The position of the oldest message: how many messages were ever taken. Message
    /// positions count from 0 in put order; those in the queue are
    /// `head_position()..tail_position()`.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let q = shmq::Queue::anonymous(&shmq::Options { capacity: 4, message_size: 8, ..Default::default() })?;
    /// q.put_many(&[b"a", b"b", b"c"])?;
    /// q.get()?;
    /// assert_eq!((q.head_position(), q.tail_position()), (1, 3));
    /// # Ok(())
    /// # }
    /// ```
    pub fn head_position(&self) -> u64 {
        self.ring().core().head.load(SeqCst) & !RESERVED
    }

    /// One past the newest message's position: how many messages were ever put.
    pub fn tail_position(&self) -> u64 {
        self.ring().core().tail.load(SeqCst)
    }

    /// Copies the oldest message without taking it and returns its position with it, waiting
    /// while the queue is empty. Take it with [`commit`](Self::commit)`(position)` once it has
    /// been handled; until then it stays first and any consumer may still take it.
    ///
    /// # Errors
    ///
    /// [`PeekError::Closed`] once the queue is closed and empty, [`PeekError::Timeout`] after
    /// `deadline` (`None`: wait as long as it takes), [`PeekError::Corrupt`].
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmq::{Options, Queue};
    /// let q = Queue::anonymous(&Options { capacity: 2, message_size: 8, ..Default::default() })?;
    /// q.put(b"job")?;
    /// let (pos, msg) = q.peek_with_position(None)?;
    /// assert_eq!((pos, &msg[..]), (0, &b"job"[..]));
    /// assert_eq!(q.len(), 1); // not taken yet
    /// q.commit(pos)?;
    /// assert!(q.is_empty());
    /// # Ok(())
    /// # }
    /// ```
    pub fn peek_with_position(
        &self,
        deadline: Option<Instant>,
    ) -> Result<(u64, Vec<u8>), PeekError> {
        let mut pos = self.head_position();
        loop {
            match self.peek_at(pos, deadline) {
                Ok(Some(m)) => return Ok((pos, m)),
                // A tombstone (a put that died): the next position.
                Ok(None) => pos += 1,
                Err(PeekError::Taken { head }) => pos = head,
                Err(e) => return Err(e),
            }
        }
    }

    /// Copies the message at `position` without taking it, waiting until it is put (until
    /// `deadline` at most; `None`: as long as it takes). `Ok(None)`: no message will ever be at
    /// `position` (the put that claimed it died before publishing; look at the next one). A
    /// consumer that delivers messages elsewhere peeks `head, head + 1, …` ahead of its
    /// commits, to keep several in flight.
    ///
    /// # Errors
    ///
    /// [`PeekError::Taken`] if the message was taken already, [`PeekError::Closed`] if the
    /// queue is closed and no message is at `position`, [`PeekError::Timeout`],
    /// [`PeekError::Corrupt`].
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmq::{Options, PeekError, Queue};
    /// use std::time::{Duration, Instant};
    /// let q = Queue::anonymous(&Options { capacity: 4, message_size: 8, ..Default::default() })?;
    /// q.put_many(&[b"a", b"b"])?;
    /// assert_eq!(q.peek_at(1, None)?, Some(b"b".to_vec()));
    /// let soon = Instant::now() + Duration::from_millis(10);
    /// assert_eq!(q.peek_at(2, Some(soon)), Err(PeekError::Timeout));
    /// q.commit_many(0, 2)?;
    /// assert_eq!(q.peek_at(0, None), Err(PeekError::Taken { head: 2 }));
    /// q.close()?;
    /// assert_eq!(q.peek_at(2, None), Err(PeekError::Closed));
    /// # Ok(())
    /// # }
    /// ```
    pub fn peek_at(
        &self,
        position: u64,
        deadline: Option<Instant>,
    ) -> Result<Option<Vec<u8>>, PeekError> {
        let ring = self.ring();
        let core = ring.core();
        let wait = deadline.map_or(Wait::Forever, Wait::Until);
        let mut msg = Vec::new();
        let mut last_try = false;
        let mut closed_seen = false;
        loop {
            match core.peek_at(position, &mut msg) {
                Ok(Peek::Copied(_)) => return Ok(Some(msg)),
                Ok(Peek::Void) => return Ok(None),
                Ok(Peek::Taken(head)) => return Err(PeekError::Taken { head }),
                Ok(Peek::Sealed) => return Err(PeekError::Closed),
                Ok(Peek::NotYet) => {}
                Err(PopFail::Pending { pos, word }) => {
                    // An unpublished put: wait for it, voiding it if its owner died.
                    match engine::wait_out_claim(&ring, wait, pos, word) {
                        Ok(()) => continue,
                        Err(Fail::WouldBlock) => return Err(PeekError::Timeout),
                        Err(f) => return Err(PeekError::Corrupt(f.to_string())),
                    }
                }
                Err(PopFail::Large) => return Err(PeekError::Large),
                Err(PopFail::Corrupt(s)) => return Err(PeekError::Corrupt(s)),
                Err(e) => return Err(PeekError::Corrupt(format!("{e:?}"))),
            }
            if ring.flags() & RING_CLOSED != 0 {
                // A put that passed its check of the flags before the close may still claim
                // a position (microseconds): look once more after a moment.
                if core.tail.load(SeqCst) <= position {
                    if closed_seen {
                        return Err(PeekError::Closed);
                    }
                    closed_seen = true;
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                continue;
            }
            if last_try {
                return Err(PeekError::Timeout);
            }
            let ready = || core.tail.load(SeqCst) > position || core.flags() & RING_CLOSED != 0;
            if !wait_for(ring.items(), ready, deadline, Waiting::PLAIN.slice) {
                last_try = true;
            }
        }
    }

    /// Takes the message at `position` (peeked with [`peek_with_position`](Self::peek_with_position)
    /// or [`peek_at`](Self::peek_at)), if it is still the oldest: one CAS, as a get's claim.
    ///
    /// # Errors
    ///
    /// [`CommitError::Moved`] if the oldest message is at another position (nothing is taken:
    /// another consumer took it, or the position is wrong), [`CommitError::NotThere`],
    /// [`CommitError::Corrupt`].
    pub fn commit(&self, position: u64) -> Result<(), CommitError> {
        self.commit_many(position, 1)
    }

    /// Takes the `n` messages from `position` on with one CAS, if the oldest message is at
    /// `position` and all `n` are there; else takes nothing.
    ///
    /// # Errors
    ///
    /// As [`commit`](Self::commit).
    pub fn commit_many(&self, position: u64, n: u64) -> Result<(), CommitError> {
        engine::get(&self.ring(), Wait::Forever, Waiting::PLAIN, |r| {
            match r.core().commit(position, n) {
                Commit::Done => Ok(Some((n as usize, Ok(())))),
                Commit::Moved(head) => Ok(Some((0, Err(CommitError::Moved { head })))),
                Commit::NotThere(tail) => Ok(Some((0, Err(CommitError::NotThere { tail })))),
                // A zero-copy reader holds the front: `engine::get` waits on the lock, retries.
                Commit::Reserved => Err(Fail::Reserved),
            }
        })
        .map_err(|f| CommitError::Corrupt(f.to_string()))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Options;
    use std::sync::Arc;
    use std::time::Duration;

    fn q(capacity: usize) -> Queue {
        Queue::anonymous(&Options {
            capacity,
            message_size: 16,
            ..Default::default()
        })
        .unwrap()
    }

    #[test]
    fn a_blocked_peek_is_woken_by_a_put_and_a_close() {
        let q = Arc::new(q(2));
        let q2 = Arc::clone(&q);
        let t = std::thread::spawn(move || q2.peek_with_position(None));
        std::thread::sleep(Duration::from_millis(30));
        q.put(b"late").unwrap();
        assert_eq!(t.join().unwrap(), Ok((0, b"late".to_vec())));
        let q2 = Arc::clone(&q);
        let t = std::thread::spawn(move || q2.peek_at(1, None));
        std::thread::sleep(Duration::from_millis(30));
        q.close().unwrap();
        assert_eq!(t.join().unwrap(), Err(PeekError::Closed));
        assert_eq!(q.peek_with_position(None), Ok((0, b"late".to_vec())));
        assert_eq!(q.peek_at(0, None), Ok(Some(b"late".to_vec())));
    }

    #[test]
    fn a_commit_takes_and_frees_a_slot_for_a_blocked_put() {
        let q = Arc::new(q(1));
        q.put(b"first").unwrap();
        let q2 = Arc::clone(&q);
        let t = std::thread::spawn(move || q2.put(b"second").is_ok());
        let (pos, m) = q.peek_with_position(None).unwrap();
        assert_eq!(m, b"first");
        q.commit(pos).unwrap();
        assert!(t.join().unwrap());
        assert_eq!(q.commit(pos), Err(CommitError::Moved { head: 1 }));
        assert_eq!(q.commit_many(1, 2), Err(CommitError::NotThere { tail: 2 }));
        assert_eq!(q.get().unwrap(), b"second");
    }

    #[test]
    fn a_commit_waits_out_a_zero_copy_reader_holding_the_front() {
        let q = Arc::new(q(2));
        q.put(b"m").unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let q2 = Arc::clone(&q);
        let reader = std::thread::spawn(move || {
            q2.get_with_or_keep(None, |_| {
                tx.send(()).unwrap();
                std::thread::sleep(Duration::from_millis(50));
                Err::<(), _>("keep it")
            })
            .unwrap()
        });
        rx.recv().unwrap();
        assert_eq!(q.commit(0), Ok(()));
        assert_eq!(reader.join().unwrap(), Err("keep it"));
        assert!(q.is_empty());
    }

    #[test]
    fn instance_ids_differ_between_incarnations_of_one_name() {
        let name = format!("shmq-test-instance-{}", std::process::id());
        let opts = Options {
            capacity: 2,
            message_size: 8,
            ..Default::default()
        };
        let a = Queue::create(&name, &opts).unwrap();
        let opened = Queue::open(&name).unwrap();
        assert_eq!(a.instance_id(), opened.instance_id());
        Queue::unlink(&name).unwrap();
        let b = Queue::create(&name, &opts).unwrap();
        Queue::unlink(&name).unwrap();
        assert_ne!(a.instance_id(), 0);
        assert_ne!(a.instance_id(), b.instance_id());
    }
}
