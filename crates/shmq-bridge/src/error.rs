//! The bridge's one error type.

/// Why a bridge stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BridgeError {
    /// The NATS server could not be reached or refused the connection.
    #[error("cannot connect to the NATS server at {server}: {reason}")]
    Connect {
        /// The address given.
        server: String,
        /// What went wrong.
        reason: String,
    },
    /// A JetStream request (stream, consumer) failed.
    #[error("JetStream: {0}")]
    JetStream(String),
    /// The local queue could not be opened or is damaged.
    #[error("local queue {queue:?}: {reason}")]
    Queue {
        /// The queue's name.
        queue: String,
        /// What went wrong.
        reason: String,
    },
    /// A message cannot travel: longer than the server's maximum payload (out), or than the
    /// local queue's message size (in). Nothing was lost: it stays in the local queue (out) or
    /// unacknowledged in the stream (in).
    #[error("a message of {len} bytes exceeds the limit of {max} bytes of {what}")]
    TooLarge {
        /// The message's length.
        len: usize,
        /// The limit.
        max: usize,
        /// Whose limit.
        what: &'static str,
    },
    /// A message over the NATS server's maximum payload cannot travel in parts through this
    /// stream (its retention or limits could delete a part before the message is read).
    /// Nothing was taken: the message stays first in the local queue.
    #[error(
        "a message of {len} bytes is over the NATS server's maximum payload of {max_payload} \
         bytes and cannot travel in parts: {reason}"
    )]
    Unchunkable {
        /// The message's length.
        len: usize,
        /// The server's maximum payload.
        max_payload: usize,
        /// Why not.
        reason: String,
    },
    /// A message in parts cannot be put together: a part is missing from the stream or does
    /// not match its manifest. The manifest stays in the stream, unacknowledged.
    #[error("message {id} (manifest at stream sequence {sequence}): {reason}")]
    BadParts {
        /// The message's id.
        id: String,
        /// The manifest's stream sequence.
        sequence: u64,
        /// What is wrong.
        reason: String,
    },
    /// The in-bridge's state file could not be read or written.
    #[error("state file {path}: {reason}")]
    State {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
}
