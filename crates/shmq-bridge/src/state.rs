//! The in-bridge's state file: what it was about to put, so that a restarted bridge knows which
//! redelivered messages already reached the local queue.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::BridgeError;

/// How many stream sequences back from the newest one put the in-bridge remembers what it put
/// (a redelivery of an older message would be put again; see docs/bridge.md).
pub const REMEMBERED: u64 = 1 << 20;

/// What an in-bridge writes (atomically: a temporary file renamed over the old one) before each
/// batch of puts: the stream sequences put so far (as ranges), the batch it is about to put,
/// and the queue's tail and count of voided positions before it. A restarted bridge compares
/// them with the queue's: the bridge is the queue's only producer, so the batch (in order)
/// went to positions `tail..tail_now`, and the positions voided since (claims of the dead
/// bridge, never published) are the last ones of those: the rest was put.
///
/// # Examples
///
/// ```
/// # fn main() -> Result<(), shmq_bridge::BridgeError> {
/// use shmq_bridge::InState;
/// let path = std::env::temp_dir().join(format!("shmq-doc-state-{}.json", std::process::id()));
/// let s = InState {
///     instance: 7, stream_created: 1, tail: 10, voided: Some(0), batch: vec![4, 5, 6],
///     put: vec![(1, 3)],
/// };
/// s.store(&path)?;
/// let back = InState::load(&path)?.unwrap();
/// // Two of the batch were claimed (the queue's tail is 12 now), none voided: 4 and 5 were put.
/// assert_eq!(back.already_put(7, 1, 12, 0, |_| true), vec![(1, 5)]);
/// // The put of the last two died before publishing, and its claim was voided: only 4 was.
/// assert_eq!(back.already_put(7, 1, 12, 1, |_| true), vec![(1, 4)]);
/// // Another queue (a new incarnation) or another stream: nothing is known.
/// assert!(back.already_put(8, 1, 12, 0, |_| true).is_empty());
/// std::fs::remove_file(&path).unwrap();
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InState {
    /// The local queue's [`instance_id`](shmq::Queue::instance_id).
    pub instance: u64,
    /// When the stream was created (Unix nanoseconds): stream sequences of a recreated stream
    /// name other messages.
    pub stream_created: i128,
    /// The queue's tail position before the batch.
    pub tail: u64,
    /// The queue's [`voided`](shmq::Queue::voided) count before the batch (`None` in a state
    /// file of a bridge that did not record it: then each position is looked at).
    #[serde(default)]
    pub voided: Option<u64>,
    /// The stream sequences of the batch, in put order.
    pub batch: Vec<u64>,
    /// The stream sequences put before the batch, as sorted, disjoint inclusive ranges (the
    /// last [`REMEMBERED`] sequences).
    pub put: Vec<(u64, u64)>,
}

impl InState {
    /// Reads the state file; `Ok(None)` if there is none.
    ///
    /// # Errors
    ///
    /// [`BridgeError::State`] if it cannot be read or parsed.
    pub fn load(path: &Path) -> Result<Option<InState>, BridgeError> {
        let err = |reason: String| BridgeError::State {
            path: path.display().to_string(),
            reason,
        };
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| err(e.to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(err(e.to_string())),
        }
    }

    /// Writes the state file atomically (a temporary file beside it, renamed over it). A
    /// process killed at any point leaves the old state or the new one, never a mix.
    ///
    /// # Errors
    ///
    /// [`BridgeError::State`].
    pub fn store(&self, path: &Path) -> Result<(), BridgeError> {
        let err = |reason: String| BridgeError::State {
            path: path.display().to_string(),
            reason,
        };
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let bytes = serde_json::to_vec(self).map_err(|e| err(e.to_string()))?;
        std::fs::write(&tmp, bytes).map_err(|e| err(e.to_string()))?;
        std::fs::rename(&tmp, path).map_err(|e| err(e.to_string()))
    }

    /// The stream sequences known to be in the local queue already (as ranges), for a queue
    /// of `instance` whose tail is `tail_now` and whose count of voided positions is
    /// `voided_now`, fed from a stream created at `stream_created`. Call it once no claim of
    /// the dead bridge stands any more (each one voided, so that `voided_now` counts it).
    ///
    /// The batch went, in order, to positions `tail..tail_now`. Its puts are claims made one
    /// after the other, each published before the next: only the last one can have died
    /// unpublished, so the positions voided since the state was written are the last ones
    /// claimed, and the others hold (or held, if taken since) messages of the batch. For a
    /// state file without a voided count, `published(pos)` says whether the position claimed
    /// after `tail` holds a message (taken positions must be guessed as put then).
    pub fn already_put(
        &self,
        instance: u64,
        stream_created: i128,
        tail_now: u64,
        voided_now: u64,
        published: impl Fn(u64) -> bool,
    ) -> Vec<(u64, u64)> {
        if instance != self.instance || stream_created != self.stream_created {
            return Vec::new();
        }
        let claimed = tail_now
            .saturating_sub(self.tail)
            .min(self.batch.len() as u64) as usize;
        let mut set = SeqSet(self.put.clone());
        match self.voided {
            Some(before) => {
                let lost = voided_now.saturating_sub(before).min(claimed as u64) as usize;
                for &s in &self.batch[..claimed - lost] {
                    set.insert(s);
                }
            }
            None => {
                for (i, &s) in self.batch[..claimed].iter().enumerate() {
                    if published(self.tail + i as u64) {
                        set.insert(s);
                    }
                }
            }
        }
        set.0
    }
}

/// A set of stream sequences as sorted, disjoint, non-adjacent inclusive ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SeqSet(pub(crate) Vec<(u64, u64)>);

impl SeqSet {
    pub(crate) fn contains(&self, s: u64) -> bool {
        let i = self.0.partition_point(|r| r.1 < s);
        self.0.get(i).is_some_and(|r| r.0 <= s)
    }

    pub(crate) fn insert(&mut self, s: u64) {
        let i = self.0.partition_point(|r| r.1 < s);
        if self.0.get(i).is_some_and(|r| r.0 <= s) {
            return;
        }
        let joins_prev = i > 0 && self.0[i - 1].1 + 1 == s;
        let joins_next = self.0.get(i).is_some_and(|r| r.0 == s + 1);
        match (joins_prev, joins_next) {
            (true, true) => {
                self.0[i - 1].1 = self.0[i].1;
                self.0.remove(i);
            }
            (true, false) => self.0[i - 1].1 = s,
            (false, true) => self.0[i].0 = s,
            (false, false) => self.0.insert(i, (s, s)),
        }
    }

    /// Forgets what lies more than [`REMEMBERED`] below the largest member.
    pub(crate) fn prune(&mut self) {
        let Some(&(_, max)) = self.0.last() else {
            return;
        };
        let floor = max.saturating_sub(REMEMBERED);
        self.0.retain(|r| r.1 >= floor);
        if let Some(first) = self.0.first_mut() {
            first.0 = first.0.max(floor);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voids_since_the_state_was_written_are_the_batch_positions_not_put() {
        let s = InState {
            instance: 1,
            stream_created: 5,
            tail: 100,
            voided: Some(7),
            batch: vec![20, 21, 22, 23],
            put: vec![(1, 19)],
        };
        // Nothing claimed: nothing of the batch is in the queue.
        assert_eq!(s.already_put(1, 5, 100, 7, |_| true), [(1, 19)]);
        // All four put, none voided (taken or not: the positions are not looked at).
        assert_eq!(s.already_put(1, 5, 104, 7, |_| false), [(1, 23)]);
        // A batch put in two claims, the second (2 positions) voided: 20 and 21 were put.
        assert_eq!(s.already_put(1, 5, 104, 9, |_| true), [(1, 21)]);
        // The whole batch voided.
        assert_eq!(s.already_put(1, 5, 104, 11, |_| true), [(1, 19)]);
        // A state file of an older bridge: each position is looked at.
        let old = InState { voided: None, ..s };
        assert_eq!(old.already_put(1, 5, 104, 11, |p| p < 103), [(1, 22)]);
        // The old file format (no "voided" field) still loads.
        let json = r#"{"instance":1,"stream_created":5,"tail":100,"batch":[20],"put":[]}"#;
        let parsed: InState = serde_json::from_str(json).unwrap();
        assert_eq!(parsed.voided, None);
    }

    #[test]
    fn seq_sets_merge_ranges_and_forget_the_distant_past() {
        let mut s = SeqSet::default();
        for x in [5, 3, 4, 10, 1, 11, 7] {
            s.insert(x);
        }
        assert_eq!(s.0, [(1, 1), (3, 5), (7, 7), (10, 11)]);
        s.insert(6);
        s.insert(2);
        assert_eq!(s.0, [(1, 7), (10, 11)]);
        assert!(s.contains(1) && s.contains(7) && s.contains(10));
        assert!(!s.contains(0) && !s.contains(8) && !s.contains(12));
        s.insert(REMEMBERED + 9);
        s.prune();
        s.insert(REMEMBERED + 8);
        assert_eq!(s.0, [(10, 11), (REMEMBERED + 8, REMEMBERED + 9)]);
        let mut t = SeqSet(vec![(5, 20), (REMEMBERED + 10, REMEMBERED + 10)]);
        t.prune();
        assert_eq!(t.0, [(10, 20), (REMEMBERED + 10, REMEMBERED + 10)]);
    }
}
