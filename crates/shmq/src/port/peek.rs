//! Peek with a position, then commit, and the position counters, on a port: the lock-free
//! steps behind [`Queue::peek_at_into`](crate::Queue::peek_at_into) (and `peek_at`, which calls it),
//! [`Queue::commit_many`](crate::Queue::commit_many),
//! [`Queue::head_position`](crate::Queue::head_position) and [`Queue::voided`](crate::Queue::voided).
//! A peek copies the message at a position without taking it, into the caller's buffer, which
//! it resizes and overwrites (a large one from its side segment, validated against the
//! segment's state word); a commit takes messages from a
//! position with one CAS of `head`, as a get's claim, and then releases the side segments of
//! the large messages it took (`docs/protocol.md`, "Peek and commit of a large message").

use std::time::Instant;

use super::{Fail, Port, Wait, Waiting};
use crate::engine;
use crate::error::{CommitError, PeekError};
use crate::layout::{RING_CLOSED, VOIDED_PENDING};
use crate::lockfree::{Commit, Peek, PopFail, RESERVED, wait_for};
use crate::sync::atomic::Ordering::SeqCst;

impl Port<'_> {
    /// The position of the oldest message: how many messages were ever taken.
    pub(crate) fn head_position(&self) -> u64 {
        self.ring.core().head.load(SeqCst) & !RESERVED
    }

    /// One past the newest message's position: how many messages were ever put.
    pub(crate) fn tail_position(&self) -> u64 {
        self.ring.core().tail.load(SeqCst)
    }

    /// Copies the message at `position` into `msg` (resized to it, its capacity reused)
    /// without taking it, waiting until `deadline` (`None`: as long as it takes) for it to be
    /// put. `Ok(false)`: a tombstone is at `position`.
    pub(crate) fn peek_at_into(
        &self,
        position: u64,
        deadline: Option<Instant>,
        msg: &mut Vec<u8>,
    ) -> Result<bool, PeekError> {
        let ring = self.ring;
        let core = ring.core();
        let wait = deadline.map_or(Wait::Forever, Wait::Until);
        let mut last_try = false;
        loop {
            match core.peek_at(position, msg) {
                Ok(Peek::Copied(_)) => return Ok(true),
                // `msg` holds the descriptor; the message is in its side segment.
                Ok(Peek::Large) => {
                    let descriptor = msg.clone();
                    return self.peek_large(position, &descriptor, msg).map(|()| true);
                }
                Ok(Peek::Void) => return Ok(false),
                Ok(Peek::Taken(head)) => return Err(PeekError::Taken { head }),
                Ok(Peek::Closed) => return Err(PeekError::Closed),
                Ok(Peek::NotYet) => {}
                Err(PopFail::Pending { pos, word }) => {
                    // An unpublished put: wait for it, voiding it if its owner died.
                    match engine::wait_out_claim(ring, wait, pos, word) {
                        Ok(()) => continue,
                        Err(Fail::WouldBlock) => return Err(PeekError::Timeout),
                        Err(f) => return Err(PeekError::Corrupt(f.to_string())),
                    }
                }
                Err(PopFail::Corrupt(s)) => return Err(PeekError::Corrupt(s)),
                Err(e) => return Err(PeekError::Corrupt(format!("{e:?}"))),
            }
            if ring.flags() & RING_CLOSED != 0 {
                // Closed after the peek looked: the next peek says whether a put that claimed
                // before the close is at `position` (then it is waited for) or nothing will be
                // (`Peek::Closed`: a claim after the close withdraws).
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

    /// The large message at `position`, whose descriptor `descriptor` was peeked there: copied
    /// from its side segment into `body` and validated (`Big::peek`).
    #[cold]
    #[inline(never)]
    pub(crate) fn peek_large(
        &self,
        position: u64,
        descriptor: &[u8],
        body: &mut Vec<u8>,
    ) -> Result<(), PeekError> {
        match self.big.peek(descriptor, body) {
            Ok(()) => Ok(()),
            // Freed, reused or unlinked under us: fine if it was taken meanwhile (the check of
            // `head` is ordered after everything `peek` read); damage if not (`Big::peek`:
            // nothing else changes the side segment of a message still queued).
            Err(f) => match self.ring.core().passed(position) {
                Some(head) => Err(PeekError::Taken { head }),
                None => Err(PeekError::Corrupt(f.to_string())),
            },
        }
    }

    /// Takes the `n` messages from `position` on with one CAS if they are all there and the
    /// oldest is at `position`; then, if `release`, releases the side segments of the large
    /// ones (a test hook stops before that).
    pub(crate) fn commit(&self, position: u64, n: u64, release: bool) -> Result<(), CommitError> {
        // The descriptors of the large messages taken (read before the CAS; none for small
        // messages, and no allocation then).
        let mut large = Vec::new();
        let r = engine::get(self.ring, Wait::Forever, Waiting::PLAIN, |r| {
            match r.core().commit(position, n, &mut large) {
                Commit::Done => Ok(Some((n as usize, Ok(())))),
                Commit::Moved(head) => Ok(Some((0, Err(CommitError::Moved { head })))),
                Commit::NotThere(tail) => Ok(Some((0, Err(CommitError::NotThere { tail })))),
                // A zero-copy reader holds the front: `engine::get` waits on the lock, retries.
                Commit::Reserved => Err(Fail::Reserved),
            }
        })
        .map_err(|f| CommitError::Corrupt(f.to_string()))?;
        if release && r.is_ok() && !large.is_empty() {
            // Taken: free (or unlink) their side segments, as a get does after its take.
            self.big.release_taken(&large);
        }
        r
    }

    /// How many positions were ever voided (exact: a void in progress, or cut short by its
    /// holder's death, is waited for or repaired under the lock).
    pub(crate) fn voided(&self) -> u64 {
        let c = &self.ring.control().counters.0;
        if c.void_done.load(SeqCst) == 0 {
            // No void in progress: the count is whole (a void sets the journal before it
            // changes anything).
            let n = c.voided.load(SeqCst) & !VOIDED_PENDING;
            if c.void_done.load(SeqCst) == 0 {
                return n;
            }
        }
        // A void is in progress, or was cut short by its holder's death: the lock waits for
        // the first and repairs the second.
        match self.ring.lock(None) {
            Ok(l) => {
                let n = l.voided();
                drop(l);
                n
            }
            Err(_) => c.voided.load(SeqCst) & !VOIDED_PENDING,
        }
    }
}
