//! The in-bridge's state file: what it was about to put, so that a restarted bridge knows which
//! redelivered messages already reached the local queue.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::BridgeError;

/// What an in-bridge writes (atomically: a temporary file renamed over the old one) before each
/// batch of puts. A restarted bridge compares `tail` with the queue's tail: the bridge is the
/// queue's only producer, so `tail_now - tail` of `batch` (in order) were put.
///
/// # Examples
///
/// ```
/// # fn main() -> Result<(), shmq_bridge::BridgeError> {
/// use shmq_bridge::InState;
/// let path = std::env::temp_dir().join(format!("shmq-doc-state-{}.json", std::process::id()));
/// let s = InState { instance: 7, stream_created: 1, tail: 10, batch: vec![4, 5, 6], unconfirmed: vec![2] };
/// s.store(&path)?;
/// let back = InState::load(&path)?.unwrap();
/// // Two of the batch reached the queue (its tail is 12 now): 4 and 5, and 2 from before.
/// assert_eq!(back.already_put(7, 1, 12), vec![2, 4, 5]);
/// // Another queue (a new incarnation) or another stream: nothing is known.
/// assert!(back.already_put(8, 1, 12).is_empty());
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
    /// The stream sequences of the batch, in put order.
    pub batch: Vec<u64>,
    /// Stream sequences put earlier whose ack the server has not confirmed.
    pub unconfirmed: Vec<u64>,
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

    /// The stream sequences known to be in the local queue already, for a queue of
    /// `instance` whose tail is `tail_now`, fed from a stream created at `stream_created`.
    pub fn already_put(&self, instance: u64, stream_created: i128, tail_now: u64) -> Vec<u64> {
        if instance != self.instance || stream_created != self.stream_created {
            return Vec::new();
        }
        let done = tail_now.saturating_sub(self.tail).min(self.batch.len() as u64) as usize;
        let mut v: Vec<u64> = self.unconfirmed.clone();
        v.extend_from_slice(&self.batch[..done]);
        v.sort_unstable();
        v.dedup();
        v
    }
}
