//! The message port: one direction of messages over one ring — a queue's, or one direction of
//! a pipe — and the one place that moves them. [`Queue`](crate::Queue) and both directions of
//! a [`PipeEnd`](crate::PipeEnd) make a [`Port`] for each operation and map its outcome to
//! their public errors with the mappers below, written once for both faces.
//!
//! - **Puts**: a message within the slot size goes into a slot (first the inlined one-step put,
//!   `engine::put_one`, then `engine::put` over the ring when it declines), a larger one into a
//!   side segment whose descriptor takes the slot (`large::Big`); the choice is made once per
//!   message, here or in `Big::put`. A batch checks every length first, then goes in claims
//!   ([`Port::put_many`]).
//! - **Gets**: a copying get tries the one-step get first (`engine::get_one_into`,
//!   `get_one_vec`); otherwise the ring says what kind of message is at the front; a large one
//!   found by a copying get is read through the reserved front by [`Port::or_large`], the
//!   single place where a get changes path for a large message.
//! - **Waiting**: the face chooses how ([`Waiting`]: a queue sleeps in plain slices, a pipe
//!   sweeps its holder table between slices); the port passes it to every loop. Readiness and
//!   waiting on several rings at once (for `Select`, the iterators and the async faces) are in
//!   [`wait`] and `notifier`.
//! - **What a face stands on**: [`QueueSegment`] (a queue's segment, its ring's view built and
//!   checked once, and its large-message side) and `pipe_handle::PipeHandle` (a pipe end's segment, holder entry and
//!   directions) create, open and inspect, and hand out ports; `peek` adds peek and commit.

#[cfg(feature = "tokio")]
pub(crate) mod notifier;
mod peek;
pub(crate) mod pipe_handle;
mod queue_segment;
pub(crate) mod wait;

pub use queue_segment::QueueInfo;
pub(crate) use queue_segment::QueueSegment;

pub(crate) use crate::engine::{Fail, Wait, Waiting};
/// Makes the segments created inside `create` carry a type tag (the typed faces' element type).
pub(crate) use crate::segment::with_type_tag;

use crate::engine;
use crate::large::Big;
use crate::layout::RING_CLOSED;
use crate::ring::{PushFail, Ring};

/// Removes a named queue's or pipe's name, then the side segments of its large messages.
/// Handles that are open keep working.
pub(crate) fn unlink(name: &str) -> Result<(), crate::error::OpenError> {
    crate::segment::Segment::unlink(name)?;
    crate::large::remove_side_segments(name);
    Ok(())
}

/// One direction of messages: a ring, its large-message layer and the face's way of waiting.
pub(crate) struct Port<'p> {
    ring: &'p Ring<'p>,
    big: &'p Big,
    how: Waiting<'p>,
}

impl<'p> Port<'p> {
    pub(crate) fn new(ring: &'p Ring<'p>, big: &'p Big, how: Waiting<'p>) -> Self {
        Port { ring, big, how }
    }

    /// The largest message, in bytes.
    pub(crate) fn max_message_size(&self) -> usize {
        self.big.max()
    }

    // ---- puts ----

    /// Puts `msg`, of any size up to the maximum.
    #[inline(always)]
    pub(crate) fn put(&self, msg: &[u8], wait: Wait) -> Result<(), Fail> {
        if engine::put_one(self.ring, msg) {
            return Ok(());
        }
        Self::put_general(self.ring, self.big, self.how, msg, wait)
    }

    /// [`put`](Self::put) when the one-step put did not go through, out of its inlined path.
    /// (Its parts by value, not `&self`: the port's fields are then built on that path only,
    /// not before every one-step put.)
    #[cold]
    #[inline(never)]
    fn put_general(
        ring: &Ring<'_>,
        big: &Big,
        how: Waiting<'_>,
        msg: &[u8],
        wait: Wait,
    ) -> Result<(), Fail> {
        big.put(ring, wait, how, msg)
    }

    /// Zero-copy put within the slot size: `fill` writes into the claimed slot and returns the
    /// length. It runs at most once, once a slot is claimed.
    pub(crate) fn put_with(
        &self,
        fill: impl FnOnce(&mut [u8]) -> usize,
        wait: Wait,
    ) -> Result<(), Fail> {
        let mut fill = Some(fill);
        engine::put(self.ring, wait, self.how, |l| {
            // A full ring makes the engine wait and call again, and every other failure ends
            // the operation; a closed ring is `Closed` even when it is also full.
            l.push_with(&mut fill).map(|()| (1, ()))
        })
    }

    /// Zero-copy put of exactly `len` bytes of any size up to the maximum.
    pub(crate) fn put_with_len(
        &self,
        len: usize,
        fill: impl FnOnce(&mut [u8]),
        wait: Wait,
    ) -> Result<(), Fail> {
        self.big.put_with_len(self.ring, wait, self.how, len, fill)
    }

    /// Puts every message of `msgs` in order, in claims (see `Queue::put_many`), after checking
    /// every length: `Err((n, f))` with `n` messages put before the failure `f`. With
    /// `Wait::Never`, puts one claim at most and returns how many it took (a full ring is
    /// `Err((0, WouldBlock))`).
    pub(crate) fn put_many<M: AsRef<[u8]>>(
        &self,
        msgs: &[M],
        wait: Wait,
    ) -> Result<usize, (usize, Fail)> {
        if msgs.is_empty() {
            return Ok(0);
        }
        self.check_lengths(msgs).map_err(|f| (0, f))?;
        if wait == Wait::Never {
            return self.put_claim(msgs, wait).map_err(|f| (0, f));
        }
        let mut sent = 0;
        while sent < msgs.len() {
            sent += self.put_claim(&msgs[sent..], wait).map_err(|f| (sent, f))?;
        }
        Ok(sent)
    }

    /// `TooLarge` for the first message over the maximum, before anything is put.
    fn check_lengths<M: AsRef<[u8]>>(&self, msgs: &[M]) -> Result<(), Fail> {
        let max = self.max_message_size();
        match msgs.iter().map(|m| m.as_ref().len()).find(|&len| len > max) {
            Some(len) => Err(Fail::TooLarge { len, max }),
            None => Ok(()),
        }
    }

    /// One claim of a checked batch: the messages within the slot size at the front of `msgs`
    /// (as many as fit now), or the large message at the front alone. Returns how many.
    fn put_claim<M: AsRef<[u8]>>(&self, msgs: &[M], wait: Wait) -> Result<usize, Fail> {
        let slot = self.ring.core().message_size;
        let small = msgs.iter().take_while(|m| m.as_ref().len() <= slot).count();
        if small == 0 {
            let first = msgs.first().map_or(&[][..], |m| m.as_ref());
            return self.put(first, wait).map(|()| 1);
        }
        let msgs = &msgs[..small];
        engine::put(self.ring, wait, self.how, |l| {
            l.push_many(msgs).and_then(|n| {
                if n == 0 {
                    Err(PushFail::Full)
                } else {
                    Ok((n, n))
                }
            })
        })
    }

    // ---- tasks and state ----

    /// Messages waiting, read without the lock.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.ring.len() as usize
    }

    /// Unfinished tasks, read without the lock.
    pub(crate) fn unfinished(&self) -> u64 {
        self.ring.unfinished()
    }

    /// Closes the ring (no put succeeds, gets drain what is left) and wakes every sleeper.
    pub(crate) fn close(&self) -> Result<(), Fail> {
        self.set_flags(RING_CLOSED)
    }

    /// Whether the ring is closed.
    pub(crate) fn is_closed(&self) -> bool {
        self.ring.flags() & RING_CLOSED != 0
    }

    /// Marks `n` tasks done: the unfinished count left, or `Err(Ok(left))` without a change if
    /// fewer than `n` are unfinished.
    pub(crate) fn task_done(&self, n: u64) -> Result<u64, Result<u64, Fail>> {
        engine::task_done(self.ring, n)
    }

    /// Waits until no task is unfinished (`WouldBlock` when `wait` ends first).
    pub(crate) fn join(&self, wait: Wait) -> Result<(), Fail> {
        engine::join(self.ring, wait)
    }

    /// Sets state bits (`RING_CLOSED`, …) under the ring's lock and wakes every sleeper.
    pub(crate) fn set_flags(&self, bits: u32) -> Result<(), Fail> {
        engine::set_flags(self.ring, bits, true)
    }

    /// Test hook: copies the front message, then stops for good (as a consumer killed after
    /// its copy, before its take).
    #[cfg(feature = "test-hooks")]
    pub(crate) fn copy_and_stop(&self) -> Option<Vec<u8>> {
        self.ring.core().copy_and_die()
    }

    /// Test hook: names the next position in an intent lane and claims nothing.
    #[cfg(feature = "test-hooks")]
    pub(crate) fn name_and_stop(&self) -> bool {
        engine::name_and_stop(self.ring).is_some()
    }

    /// Test hook: claims and writes slots for `msgs` and publishes all but the first.
    #[cfg(feature = "test-hooks")]
    pub(crate) fn claim_and_stop(&self, msgs: &[&[u8]]) -> bool {
        engine::claim_and_stop(self.ring, msgs).is_ok()
    }

    // ---- gets ----

    /// Takes the front message into a new vector.
    #[inline(always)]
    pub(crate) fn get_vec(&self, wait: Wait) -> Result<Vec<u8>, Fail> {
        if let Some(v) = engine::get_one_vec(self.ring) {
            return Ok(v);
        }
        Port::new(self.ring, self.big, self.how).get_vec_general(wait)
    }

    /// [`get_vec`](Self::get_vec) when the one-step get did not go through. (The port by value,
    /// as [`put_general`](Self::put_general) takes its parts: built on this path only.)
    #[cold]
    #[inline(never)]
    fn get_vec_general(self, wait: Wait) -> Result<Vec<u8>, Fail> {
        let got = engine::get(self.ring, wait, self.how, |r| {
            Ok(r.pop_vec()?.map(|m| (1, m)))
        });
        self.or_large(got, wait, |m| Ok(m.to_vec()))
    }

    /// Takes the front message into `buf`; `TooSmall` leaves it queued.
    #[inline(always)]
    pub(crate) fn get_into(&self, buf: &mut [u8], wait: Wait) -> Result<usize, Fail> {
        if let Some(n) = engine::get_one_into(self.ring, buf) {
            return Ok(n);
        }
        Port::new(self.ring, self.big, self.how).get_into_general(buf, wait)
    }

    /// [`get_into`](Self::get_into) when the one-step get did not go through (the port by
    /// value, as in [`get_vec_general`](Self::get_vec_general)).
    #[cold]
    #[inline(never)]
    fn get_into_general(self, buf: &mut [u8], wait: Wait) -> Result<usize, Fail> {
        let got = engine::get(self.ring, wait, self.how, |l| engine::pop_into(l, buf));
        self.or_large(got, wait, |m| {
            let available = buf.len();
            let dst = buf.get_mut(..m.len()).ok_or(Fail::TooSmall {
                needed: m.len(),
                available,
            })?;
            dst.copy_from_slice(m);
            Ok(m.len())
        })
    }

    /// Zero-copy get: `read` sees the front message in place (a large one in its side
    /// segment); the message is taken once `read` returns.
    pub(crate) fn get_with<R>(&self, read: impl FnOnce(&[u8]) -> R, wait: Wait) -> Result<R, Fail> {
        self.big
            .read_front(self.ring, wait, self.how, |m| Ok((1, read(m))))
    }

    /// Zero-copy get that takes the front message only if `read` accepts it (`Ok`); a refusal
    /// leaves it first.
    pub(crate) fn get_with_or_keep<R, E>(
        &self,
        read: impl FnOnce(&[u8]) -> Result<R, E>,
        wait: Wait,
    ) -> Result<Result<R, E>, Fail> {
        self.big.read_front(self.ring, wait, self.how, |m| {
            Ok(match read(m) {
                Ok(v) => (1, Ok(v)),
                Err(e) => (0, Err(e)),
            })
        })
    }

    /// A copying get into `buf` (which holds a slot) that also returns the message's position
    /// (messages ever taken before it), for typed readers. A large message is taken and its
    /// length reported, over `buf.len()`, for the typed reader to refuse.
    pub(crate) fn get_into_with_position(
        &self,
        buf: &mut [u8],
        wait: Wait,
    ) -> Result<(u64, usize), Fail> {
        let got = engine::get(self.ring, wait, self.how, |r| {
            Ok(r.core().pop_into_at(buf)?.map(|at| (1, at)))
        });
        // (The reserved front is at its position until the message is taken.)
        let front = || self.ring.core().front_position();
        self.or_large(got, wait, |m| Ok((front(), m.len())))
    }

    /// Takes up to `max` front messages with one claim (a large message at the front is a
    /// batch of its own), each passed to `read`; returns how many. `max == 0` takes nothing.
    pub(crate) fn get_many(
        &self,
        max: usize,
        mut read: impl FnMut(&[u8]),
        wait: Wait,
    ) -> Result<usize, Fail> {
        if max == 0 {
            return Ok(0);
        }
        let (mut bytes, mut lens) = (Vec::new(), Vec::new());
        let got = engine::get(self.ring, wait, self.how, |r| {
            let n = r.core().pop_batch(max, &mut bytes, &mut lens)?;
            Ok((n > 0).then_some((n, n)))
        });
        let mut was_large = false;
        let n = self.or_large(got, wait, |m| {
            // A large message at the front is a batch of its own, read in place.
            read(m);
            was_large = true;
            Ok(1)
        })?;
        if was_large {
            return Ok(n);
        }
        let mut at = 0;
        for &len in &lens {
            read(&bytes[at..at + len]);
            at += len;
        }
        Ok(n)
    }

    /// Zero-copy batch get: up to `max` front messages read in place (a large message ends the
    /// batch, and at the front is read on its own), each passed to `read`; returns how many.
    pub(crate) fn get_many_with(
        &self,
        max: usize,
        mut read: impl FnMut(&[u8]),
        wait: Wait,
    ) -> Result<usize, Fail> {
        if max == 0 {
            return Ok(0);
        }
        let mut scratch = Vec::new();
        let n =
            engine::get_reserved_up_to(self.ring, wait, self.how, max as u64, |l, head, avail| {
                let n = avail.min(max as u64);
                let mut taken = 0;
                for pos in head..head + n {
                    if l.core().reserved_descriptor(pos)?.is_some() {
                        break;
                    }
                    read(l.reserved_bytes(pos, &mut scratch)?);
                    taken += 1;
                }
                Ok((taken, taken as usize))
            })?;
        if n > 0 {
            return Ok(n);
        }
        self.big.read_front(self.ring, wait, self.how, |m| {
            read(m);
            Ok((1, 1))
        })
    }

    /// Waits until a message is ready (true) or the wait ends (false); takes nothing.
    pub(crate) fn poll(&self, wait: Wait) -> Result<bool, Fail> {
        // A "get" that takes nothing: it reports a waiting message (and frees no slot).
        match engine::get(self.ring, wait, self.how, |l| {
            Ok((l.len() > 0).then_some((0, ())))
        }) {
            Ok(()) => Ok(true),
            Err(Fail::WouldBlock) => Ok(false),
            Err(f) => Err(f),
        }
    }

    /// The one place where a get changes path for a large message: a copying get that met a
    /// descriptor at the front (`Fail::Large`) takes that message through the reserved front
    /// instead, in place in its side segment; `large` makes the result from its bytes (an
    /// error from it takes nothing). The copying path stays inline, this one out of line.
    #[inline]
    fn or_large<T>(
        &self,
        got: Result<T, Fail>,
        wait: Wait,
        large: impl FnOnce(&[u8]) -> Result<T, Fail>,
    ) -> Result<T, Fail> {
        match got {
            Err(Fail::Large) => self.take_large(wait, large),
            r => r,
        }
    }

    #[cold]
    #[inline(never)]
    fn take_large<T>(
        &self,
        wait: Wait,
        large: impl FnOnce(&[u8]) -> Result<T, Fail>,
    ) -> Result<T, Fail> {
        self.big
            .read_front(self.ring, wait, self.how, |m| large(m).map(|t| (1, t)))
    }
}

/// The mappers from a port's outcome to one face's public errors, written once: `$end` is
/// what the face calls the state in which nothing more will come (a queue's `Closed`, a
/// pipe's `Disconnected`).
macro_rules! face_errors {
    (
        $end:ident,
        put: $put:ident / $put_t:ident, $try_put:ident / $try_put_t:ident,
        $put_timeout:ident / $put_timeout_t:ident,
        get: $get:ident / $get_t:ident, $try_get:ident / $try_get_t:ident,
        $get_timeout:ident / $get_timeout_t:ident $(,)?
    ) => {
        /// The error of a put (the message handed back in it).
        pub(crate) fn $put<M>(f: Fail, msg: M) -> $put_t<M> {
            match f {
                Fail::Closed | Fail::Disconnected | Fail::WouldBlock => $put_t::$end(msg),
                Fail::TooLarge { len, max } => $put_t::TooLarge { msg, len, max },
                Fail::TooSmall { .. } => unreachable!("puts do not read into buffers"),
                Fail::Corrupt(reason) => $put_t::Corrupt { msg, reason },
                Fail::NoSpace { needed, reason } => $put_t::NoSpace {
                    msg,
                    needed,
                    reason,
                },
                Fail::Reserved | Fail::Pending { .. } | Fail::Large => {
                    unreachable!("gets wait out reservations and claims and read large messages")
                }
            }
        }

        /// The error of a put that does not wait.
        pub(crate) fn $try_put<M>(f: Fail, msg: M) -> $try_put_t<M> {
            match f {
                Fail::WouldBlock => $try_put_t::Full(msg),
                other => $put(other, msg).into(),
            }
        }

        /// The error of a put with a deadline.
        pub(crate) fn $put_timeout<M>(f: Fail, msg: M) -> $put_timeout_t<M> {
            match f {
                Fail::WouldBlock => $put_timeout_t::Timeout(msg),
                other => $put(other, msg).into(),
            }
        }

        /// The error of a get.
        pub(crate) fn $get(f: Fail) -> $get_t {
            match f {
                Fail::Closed | Fail::Disconnected | Fail::WouldBlock => $get_t::$end,
                Fail::TooLarge { .. } | Fail::NoSpace { .. } => {
                    unreachable!("gets do not write messages")
                }
                Fail::TooSmall { needed, available } => {
                    $get_t::BufferTooSmall { needed, available }
                }
                Fail::Corrupt(s) => $get_t::Corrupt(s),
                Fail::Reserved | Fail::Pending { .. } | Fail::Large => {
                    unreachable!("gets wait out reservations and claims and read large messages")
                }
            }
        }

        /// The error of a get that does not wait.
        pub(crate) fn $try_get(f: Fail) -> $try_get_t {
            match f {
                Fail::WouldBlock => $try_get_t::Empty,
                other => $get(other).into(),
            }
        }

        /// The error of a get with a deadline.
        pub(crate) fn $get_timeout(f: Fail) -> $get_timeout_t {
            match f {
                Fail::WouldBlock => $get_timeout_t::Timeout,
                other => $get(other).into(),
            }
        }
    };
}

/// A queue's errors: the end is `Closed`.
pub(crate) mod queue_errors {
    use super::Fail;
    use crate::error::{
        GetError, GetTimeoutError, PutError, PutTimeoutError, TryGetError, TryPutError,
    };

    face_errors!(
        Closed,
        put: put_error / PutError, try_put_error / TryPutError,
        put_timeout_error / PutTimeoutError,
        get: get_error / GetError, try_get_error / TryGetError,
        get_timeout_error / GetTimeoutError,
    );
}

/// A pipe end's errors: the end is `Disconnected` (end-of-file).
pub(crate) mod pipe_errors {
    use super::Fail;
    use crate::error::{
        RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError, TrySendError,
    };

    face_errors!(
        Disconnected,
        put: send_error / SendError, try_send_error / TrySendError,
        send_timeout_error / SendTimeoutError,
        get: recv_error / RecvError, try_recv_error / TryRecvError,
        recv_timeout_error / RecvTimeoutError,
    );
}
