//! Peek with a position, then commit: a consumer that must deliver a message somewhere else
//! before it takes it (the bridge to NATS JetStream, `crates/shmq-bridge`) copies the message
//! at a position without taking it — no lock is held, so producers and other consumers go on
//! while it waits for a network round trip — and takes it later with one CAS of `head` from that
//! position. A consumer killed in between took nothing: the message is still first.
//! `peek_at_into` copies into a buffer the caller reuses (overwritten, not zero-filled first);
//! `peek_at` returns a new vector.
//!
//! Messages of any size: a large message (in a side segment, `crate::large`) is peeked by
//! copying its descriptor from the slot, then the message from its side segment, validated
//! against the segment's state word; a commit releases the side segments of the large
//! messages it took, as a get does (`docs/protocol.md`, "Peek and commit of a large message").

use std::time::Instant;

use super::Queue;
pub use crate::error::{CommitError, PeekError};

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
        self.shm.instance_id()
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
        self.shm.port().head_position()
    }

    /// One past the newest message's position: how many messages were ever put.
    pub fn tail_position(&self) -> u64 {
        self.shm.port().tail_position()
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
    /// A message of any size is peeked whole: one larger than a slot (in a side segment,
    /// [`Options::max_message_size`](crate::Options::max_message_size)) is copied from its
    /// side segment, and the copy is checked afterwards against the segment's state word, so a
    /// peek that loses a race with a consumer taking the message (and its producer reusing the
    /// segment) reports [`PeekError::Taken`], never bytes of another message.
    ///
    /// # Errors
    ///
    /// [`PeekError::Taken`] if the message was taken already, [`PeekError::Closed`] if the
    /// queue is closed and no message is at `position`, [`PeekError::Timeout`],
    /// [`PeekError::Corrupt`] (also for a large message whose side segment is gone while the
    /// message is still queued: the queue was unlinked, or damaged).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmq::{Options, PeekError, Queue};
    /// use std::time::{Duration, Instant};
    /// let q = Queue::anonymous(&Options {
    ///     capacity: 4,
    ///     message_size: 64,
    ///     max_message_size: 1 << 20,
    ///     ..Default::default()
    /// })?;
    /// let large = vec![7u8; 100_000]; // larger than a slot: in a side segment
    /// q.put_many(&[&b"a"[..], &large[..]])?;
    /// assert_eq!(q.peek_at(1, None)?, Some(large.clone()));
    /// let soon = Instant::now() + Duration::from_millis(10);
    /// assert_eq!(q.peek_at(2, Some(soon)), Err(PeekError::Timeout));
    /// q.commit_many(0, 2)?;
    /// assert_eq!(q.peek_at(1, None), Err(PeekError::Taken { head: 2 }));
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
        let mut msg = Vec::new();
        Ok(self
            .peek_at_into(position, deadline, &mut msg)?
            .then_some(msg))
    }

    /// [`peek_at`](Self::peek_at) into `buf`: the message at `position` is copied into `buf`,
    /// resized to its length, and `Ok(true)` returned; `Ok(false)`: no message will ever be at
    /// `position` (a put that died). The copy overwrites `buf`'s bytes and reuses its
    /// capacity, so a consumer that peeks message after message into buffers it reuses
    /// neither allocates nor zero-fills memory for each (only for a longer message than the
    /// buffer held). The copy is validated exactly as `peek_at`'s. After `Ok(false)` or an
    /// error, `buf` holds no message (its bytes are unspecified).
    ///
    /// # Errors
    ///
    /// As [`peek_at`](Self::peek_at).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmq::{Options, Queue};
    /// let q = Queue::anonymous(&Options { capacity: 4, message_size: 16, ..Default::default() })?;
    /// q.put_many(&[&b"first"[..], &b"2nd"[..]])?;
    /// let mut buf = Vec::with_capacity(16);
    /// assert!(q.peek_at_into(0, None, &mut buf)?);
    /// assert_eq!(buf, b"first");
    /// assert!(q.peek_at_into(1, None, &mut buf)?);
    /// assert_eq!(buf, b"2nd"); // resized to the message: nothing of the first is left
    /// assert_eq!(q.len(), 2); // not taken
    /// # Ok(())
    /// # }
    /// ```
    pub fn peek_at_into(
        &self,
        position: u64,
        deadline: Option<Instant>,
        buf: &mut Vec<u8>,
    ) -> Result<bool, PeekError> {
        self.shm.port().peek_at_into(position, deadline, buf)
    }

    /// Takes the message at `position` (peeked with [`peek_with_position`](Self::peek_with_position)
    /// or [`peek_at`](Self::peek_at)), if it is still the oldest: one CAS, as a get's claim.
    /// A large message's side segment is then released as a get releases it (freed for its
    /// producer's reuse, or removed).
    ///
    /// # Errors
    ///
    /// [`CommitError::Moved`] if the oldest message is at another position (nothing is taken:
    /// another consumer took it, or the position is wrong), [`CommitError::NotThere`] (also
    /// for a position whose put has not published its message yet), [`CommitError::Corrupt`].
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmq::{CommitError, Options, Queue};
    /// let q = Queue::anonymous(&Options {
    ///     capacity: 2,
    ///     message_size: 64,
    ///     max_message_size: 1 << 20,
    ///     ..Default::default()
    /// })?;
    /// q.put(vec![1u8; 200_000])?;
    /// let (pos, msg) = q.peek_with_position(None)?;
    /// assert_eq!(msg.len(), 200_000);
    /// // ... deliver it elsewhere, then take it:
    /// q.commit(pos)?;
    /// assert!(q.is_empty());
    /// assert_eq!(q.commit(pos), Err(CommitError::Moved { head: 1 }));
    /// # Ok(())
    /// # }
    /// ```
    pub fn commit(&self, position: u64) -> Result<(), CommitError> {
        self.commit_many(position, 1)
    }

    /// Takes the `n` messages from `position` on with one CAS, if the oldest message is at
    /// `position` and all `n` are there (published); else takes nothing. The side segments of
    /// the large messages among them are released afterwards, each as a get releases it.
    ///
    /// # Errors
    ///
    /// As [`commit`](Self::commit).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmq::{CommitError, Options, Queue};
    /// let q = Queue::anonymous(&Options {
    ///     capacity: 4,
    ///     message_size: 64,
    ///     max_message_size: 1 << 20,
    ///     ..Default::default()
    /// })?;
    /// q.put_many(&[vec![1u8; 10], vec![2u8; 70_000], vec![3u8; 5]])?;
    /// assert_eq!(q.commit_many(0, 4), Err(CommitError::NotThere { tail: 3 }));
    /// assert_eq!(q.peek_at(1, None)?, Some(vec![2u8; 70_000]));
    /// q.commit_many(0, 3)?;
    /// assert!(q.is_empty());
    /// # Ok(())
    /// # }
    /// ```
    pub fn commit_many(&self, position: u64, n: u64) -> Result<(), CommitError> {
        self.commit_impl(position, n, true)
    }

    /// Test hook (feature `test-hooks`): [`commit_many`](Self::commit_many) that stops after its
    /// CAS, before releasing the side segments of the large messages it took; the caller then
    /// stops for good, as a committer killed there.
    #[cfg(feature = "test-hooks")]
    #[doc(hidden)]
    pub fn commit_and_stop(&self, position: u64, n: u64) -> Result<(), CommitError> {
        self.commit_impl(position, n, false)
    }

    fn commit_impl(&self, position: u64, n: u64, release: bool) -> Result<(), CommitError> {
        self.shm.port().commit(position, n, release)
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

    /// A peek into a reused buffer leaves exactly the message in it, whatever the buffer held
    /// before (longer or shorter, a slot's message or a side segment's), and keeps the
    /// buffer's allocation when it is long enough.
    #[test]
    fn a_peek_into_a_reused_buffer_leaves_exactly_the_message() {
        let q = Queue::anonymous(&Options {
            capacity: 4,
            message_size: 64,
            max_message_size: 1 << 20,
            ..Default::default()
        })
        .unwrap();
        let large: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        q.put_many(&[&[1u8; 40][..], b"abc", &large, &[2u8; 64]])
            .unwrap();
        let mut buf = vec![0xee; 100];
        let (ptr, cap) = (buf.as_ptr(), buf.capacity());
        assert_eq!(q.peek_at_into(0, None, &mut buf), Ok(true));
        assert_eq!(buf, [1u8; 40]);
        assert_eq!(q.peek_at_into(1, None, &mut buf), Ok(true));
        assert_eq!(buf, b"abc");
        assert_eq!(q.peek_at_into(3, None, &mut buf), Ok(true));
        assert_eq!(buf, [2u8; 64], "longer than what the buffer held");
        assert_eq!(
            (buf.as_ptr(), buf.capacity()),
            (ptr, cap),
            "no new allocation"
        );
        assert_eq!(q.peek_at_into(2, None, &mut buf), Ok(true));
        assert!(buf == large, "a side segment's message");
        assert_eq!(q.peek_at_into(1, None, &mut buf), Ok(true));
        assert_eq!(buf, b"abc", "a slot's message after a side segment's");
        assert_eq!(q.len(), 4, "nothing taken");
        q.commit_many(0, 4).unwrap();
        assert_eq!(
            q.peek_at_into(0, None, &mut buf),
            Err(PeekError::Taken { head: 4 })
        );
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

    /// A named queue with large messages (64-byte slots, up to 64 MiB), unlinked on drop with
    /// its side segments.
    struct Big(String);

    impl Big {
        fn new(tag: &str, capacity: usize) -> (Big, Queue) {
            let name = format!("shmq-test-peek-{tag}-{}", std::process::id());
            let _ = Queue::unlink(&name);
            let q = Queue::create(
                &name,
                &Options {
                    capacity,
                    message_size: 64,
                    max_message_size: 64 << 20,
                    ..Default::default()
                },
            )
            .unwrap();
            (Big(name), q)
        }

        /// The names of its side segments now, sorted.
        fn sides(&self) -> Vec<String> {
            let prefix = format!("{}.big.", self.0);
            let mut v: Vec<String> = std::fs::read_dir(crate::sys::SHM_DIR)
                .unwrap()
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.starts_with(&prefix))
                .collect();
            v.sort();
            v
        }

        fn open(&self) -> Queue {
            Queue::open(&self.0).unwrap()
        }
    }

    impl Drop for Big {
        fn drop(&mut self) {
            let _ = Queue::unlink(&self.0);
        }
    }

    /// `n` bytes: the position `i` (8 bytes, little-endian), then `i % 251` repeated.
    fn msg(i: u64, n: usize) -> Vec<u8> {
        let mut m = vec![(i % 251) as u8; n];
        m[..8].copy_from_slice(&i.to_le_bytes());
        m
    }

    fn is_msg(m: &[u8], i: u64, n: usize) -> bool {
        m.len() == n && m[..8] == i.to_le_bytes() && m[8..].iter().all(|&b| b == (i % 251) as u8)
    }

    #[test]
    fn a_large_message_is_peeked_whole_without_being_taken() {
        let (b, q) = Big::new("whole", 4);
        q.put(b"small").unwrap();
        q.put(msg(1, 300_000)).unwrap();
        q.put(msg(2, 5000)).unwrap();
        assert_eq!(b.sides().len(), 2);
        for _ in 0..2 {
            assert!(is_msg(&q.peek_at(1, None).unwrap().unwrap(), 1, 300_000));
        }
        assert_eq!(q.len(), 3, "peeking takes nothing");
        assert_eq!(q.peek_with_position(None), Ok((0, b"small".to_vec())));
        // Another handle (its own cache of mappings) peeks it too.
        let other = b.open();
        assert!(is_msg(&other.peek_at(2, None).unwrap().unwrap(), 2, 5000));
        assert_eq!(q.get().unwrap(), b"small");
        assert!(
            is_msg(&q.get().unwrap(), 1, 300_000),
            "a get takes it whole"
        );
        let (pos, m) = other.peek_with_position(None).unwrap();
        assert!(pos == 2 && is_msg(&m, 2, 5000));
        other.commit(pos).unwrap();
        assert!(q.is_empty());
        assert_eq!(b.sides().len(), 2, "both stay pooled, free");
    }

    #[test]
    fn a_one_shot_message_over_32_mib_is_peeked_whole_and_its_commit_removes_it() {
        let (b, q) = Big::new("oneshot", 2);
        let n = 33 << 20;
        q.put(msg(0, n)).unwrap();
        assert_eq!(b.sides().len(), 1);
        let (pos, m) = q.peek_with_position(None).unwrap();
        assert!(pos == 0 && is_msg(&m, 0, n));
        drop(m);
        assert_eq!(q.len(), 1);
        assert_eq!(b.sides().len(), 1, "a peek removes nothing");
        q.commit(0).unwrap();
        assert!(
            b.sides().is_empty(),
            "the one-shot segment goes with the commit"
        );
    }

    #[test]
    fn commit_many_frees_pooled_side_segments_for_reuse_and_removes_one_shot_ones() {
        let (b, q) = Big::new("commit-mix", 8);
        let sizes = [10, 100_000, 0, 200_000, 33 << 20, 64];
        for (i, &n) in sizes.iter().enumerate() {
            q.put(if n < 8 {
                vec![i as u8; n]
            } else {
                msg(i as u64, n)
            })
            .unwrap();
        }
        assert_eq!(b.sides().len(), 3, "two pooled, one one-shot");
        let consumer = b.open();
        for (i, &n) in sizes.iter().enumerate() {
            let m = consumer.peek_at(i as u64, None).unwrap().unwrap();
            assert!(n < 8 || is_msg(&m, i as u64, n), "message {i}");
        }
        consumer.commit_many(0, 2).unwrap();
        consumer.commit_many(2, 4).unwrap();
        assert!(q.is_empty());
        let pooled = b.sides();
        assert_eq!(pooled.len(), 2, "the one-shot segment is gone: {pooled:?}");
        // The pooled ones are free: the same sizes again reuse them, no new side segment.
        q.put(msg(7, 100_000)).unwrap();
        q.put(msg(8, 200_000)).unwrap();
        assert_eq!(b.sides(), pooled, "reused");
        assert!(is_msg(&consumer.get().unwrap(), 7, 100_000));
        assert!(is_msg(&consumer.get().unwrap(), 8, 200_000));
    }

    #[test]
    fn a_stale_peek_after_a_take_and_a_reuse_reports_taken_never_the_new_bytes() {
        let (b, producer) = Big::new("stale", 1);
        let (consumer, peeker) = (b.open(), b.open());
        producer.put(msg(0, 100_000)).unwrap();
        let mut descriptor = Vec::new();
        assert_eq!(
            peeker.ring().core().peek_at(0, &mut descriptor),
            Ok(crate::lockfree::Peek::Large)
        );
        // Another consumer takes it (its side segment freed) before the peek copies it.
        assert!(is_msg(&consumer.get().unwrap(), 0, 100_000));
        assert_eq!(
            peeker.port().peek_large(0, &descriptor, &mut Vec::new()),
            Err(PeekError::Taken { head: 1 })
        );
        // The producer reuses the segment for the next message: still Taken, not its bytes.
        let before = b.sides();
        producer.put(msg(1, 100_000)).unwrap();
        assert_eq!(b.sides(), before, "the same side segment, reused");
        assert_eq!(
            peeker.port().peek_large(0, &descriptor, &mut Vec::new()),
            Err(PeekError::Taken { head: 1 })
        );
        assert_eq!(peeker.peek_at(0, None), Err(PeekError::Taken { head: 1 }));
        assert!(is_msg(
            &peeker.peek_at(1, None).unwrap().unwrap(),
            1,
            100_000
        ));
        peeker.commit(1).unwrap();
        assert!(producer.is_empty());
    }

    #[test]
    fn a_side_segment_changed_under_a_queued_message_is_corrupt_not_taken() {
        let (b, q) = Big::new("damaged", 2);
        q.put(msg(0, 100_000)).unwrap();
        let side = b.sides().pop().unwrap();
        // A bad state word (at offset 40 of the side segment's head), as damage would leave.
        std::os::unix::fs::FileExt::write_at(
            &std::fs::OpenOptions::new()
                .write(true)
                .open(std::path::Path::new(crate::sys::SHM_DIR).join(side))
                .unwrap(),
            &0x55u64.to_ne_bytes(),
            40,
        )
        .unwrap();
        assert!(matches!(q.peek_at(0, None), Err(PeekError::Corrupt(_))));
        assert_eq!(q.len(), 1, "nothing taken");
    }

    #[test]
    fn peeks_racing_takes_and_reuses_of_side_segments_never_see_torn_or_foreign_bytes() {
        // Capacity 2 and one size: the producer's pool cycles through two or three segments,
        // each rewritten as soon as the consumer frees it, while the peeker copies the
        // messages at the front (often the ones being taken). Rounds (more with
        // SHMQ_PEEK_RACE_ROUNDS): a round without the post-copy check of the state word
        // fails about one time in three.
        const N: u64 = 300;
        const LEN: usize = 1 << 20;
        let rounds: usize = std::env::var("SHMQ_PEEK_RACE_ROUNDS")
            .ok()
            .and_then(|r| r.parse().ok())
            .unwrap_or(6);
        for round in 0..rounds {
            let (b, producer) = Big::new(&format!("race{round}"), 2);
            let (consumer, peeker) = (b.open(), b.open());
            std::thread::scope(|s| {
                s.spawn(|| {
                    for i in 0..N {
                        producer.put(msg(i, LEN)).unwrap();
                    }
                });
                s.spawn(|| {
                    for i in 0..N {
                        assert!(consumer.get().unwrap() == msg(i, LEN), "get {i}");
                    }
                });
                let (mut copied, mut taken) = (0u64, 0u64);
                while peeker.head_position() < N {
                    let pos = peeker.head_position() + (copied + taken) % 2;
                    let soon = Instant::now() + Duration::from_millis(5);
                    match peeker.peek_at(pos, Some(soon)) {
                        Ok(Some(m)) => {
                            assert!(m == msg(pos, LEN), "peek of {pos}: torn or foreign");
                            copied += 1;
                        }
                        Err(PeekError::Taken { head }) => {
                            assert!(head > pos);
                            taken += 1;
                        }
                        Err(PeekError::Timeout) => {}
                        other => panic!("peek of {pos}: {other:?}"),
                    }
                }
                eprintln!("round {round}: {copied} peeks copied, {taken} taken meanwhile");
            });
            assert!(producer.is_empty());
            assert!(b.sides().len() <= crate::large::POOL_SEGMENTS);
        }
    }
}
