//! Messages longer than the server's maximum payload: sent as parts and a manifest.
//!
//! The out-bridge publishes a message too long for one NATS message as `count` **parts**
//! (consecutive slices of the message, each with the headers [`ID`], [`PART`], [`PARTS`] and
//! [`LENGTH`], and the JetStream message id `ID.PART`), waits for JetStream's acks of all of
//! them, then publishes a **manifest**: no payload, the headers [`ID`], [`PARTS`], [`LENGTH`]
//! and [`SEQUENCES`] (the parts' stream sequences, from their acks, in order), and the
//! JetStream message id `ID`. Only after the manifest's ack does it take the message from the
//! queue. A bridge killed between parts republishes them all under the same ids: the stream's
//! duplicate window drops the copies, and their acks give the sequences of the first ones.
//!
//! The in-bridge acknowledges parts as they come (they stay in the stream) and treats the
//! manifest as the message: it gathers the parts (those it received, or fetched from the
//! stream by sequence), checks them, and puts the whole message exactly as it would put a
//! small one. This needs a stream that keeps every message until it is read: limits retention,
//! and no limit that discards old messages.

use async_nats::HeaderMap;
use async_nats::jetstream::stream::{Config, DiscardPolicy, RetentionPolicy};

/// Header: the message's id, `shmq-INSTANCE-POSITION` ([`message_id`](crate::message_id)).
pub const ID: &str = "Shmq-Id";
/// Header of a part: its index, from 0.
pub const PART: &str = "Shmq-Part";
/// Header: the number of parts.
pub const PARTS: &str = "Shmq-Parts";
/// Header: the whole message's length in bytes.
pub const LENGTH: &str = "Shmq-Length";
/// Header of a manifest: the parts' stream sequences, comma-separated, in order.
pub const SEQUENCES: &str = "Shmq-Sequences";

/// Bytes kept free in each NATS message for headers: a part's headers take about 150.
pub const PART_HEADROOM: usize = 512;

/// What a message from the stream is, by its headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A message of its own (no chunk headers).
    Whole,
    /// Part `part` of `parts` of the message `id`.
    Part {
        /// The message's id.
        id: String,
        /// This part's index.
        part: usize,
        /// The number of parts.
        parts: usize,
    },
    /// The manifest of the message `id`: its length and its parts' stream sequences.
    Manifest {
        /// The message's id.
        id: String,
        /// The whole message's length.
        length: usize,
        /// The parts' stream sequences, in order.
        sequences: Vec<u64>,
    },
}

/// Reads a message's chunk headers.
///
/// # Errors
///
/// A description of what is malformed, for a message with chunk headers that do not agree.
pub fn kind(headers: Option<&HeaderMap>) -> Result<Kind, String> {
    let Some(h) = headers else {
        return Ok(Kind::Whole);
    };
    let Some(id) = h.get(ID) else {
        return Ok(Kind::Whole);
    };
    let id = id.as_str().to_owned();
    let num = |name: &str| -> Result<usize, String> {
        h.get(name)
            .and_then(|v| v.as_str().parse().ok())
            .ok_or_else(|| format!("header {name} missing or not a number"))
    };
    let parts = num(PARTS).map_err(|e| format!("message {id}: {e}"))?;
    if let Some(seqs) = h.get(SEQUENCES) {
        let sequences: Vec<u64> = seqs
            .as_str()
            .split(',')
            .map(|s| s.parse::<u64>())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("message {id}: header {SEQUENCES}: {e}"))?;
        if sequences.len() != parts {
            return Err(format!(
                "message {id}: {} sequences for {parts} parts",
                sequences.len()
            ));
        }
        let length = num(LENGTH)?;
        return Ok(Kind::Manifest {
            id,
            length,
            sequences,
        });
    }
    let part = num(PART)?;
    Ok(Kind::Part { id, part, parts })
}

/// The headers of part `part` of `parts` of the message `id` of `length` bytes.
pub fn part_headers(id: &str, part: usize, parts: usize, length: usize) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(ID, id);
    h.insert(PART, part.to_string().as_str());
    h.insert(PARTS, parts.to_string().as_str());
    h.insert(LENGTH, length.to_string().as_str());
    h
}

/// The headers of the manifest of the message `id` of `length` bytes, whose parts are at
/// `sequences`.
pub fn manifest_headers(id: &str, length: usize, sequences: &[u64]) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(ID, id);
    h.insert(PARTS, sequences.len().to_string().as_str());
    h.insert(LENGTH, length.to_string().as_str());
    let list: Vec<String> = sequences.iter().map(u64::to_string).collect();
    h.insert(SEQUENCES, list.join(",").as_str());
    h
}

/// The payload bytes per part for a server with maximum payload `max_payload` and a stream
/// configured as `cfg`, or why the stream cannot carry parts: a stream that may delete a part
/// before the manifest is read (work-queue or interest retention, or a limit on messages,
/// bytes or age that discards old messages) would lose the message.
///
/// # Errors
///
/// The reason, naming the stream's setting.
pub fn part_size(max_payload: usize, cfg: &Config) -> Result<usize, String> {
    let name = &cfg.name;
    if cfg.retention != RetentionPolicy::Limits {
        return Err(format!(
            "stream {name} has {:?} retention, which deletes a part once it is acknowledged; \
             messages in parts need limits retention",
            cfg.retention
        ));
    }
    if cfg.discard == DiscardPolicy::Old {
        let limits = [
            ("max_msgs", cfg.max_messages > 0),
            ("max_bytes", cfg.max_bytes > 0),
            ("max_age", !cfg.max_age.is_zero()),
            ("max_msgs_per_subject", cfg.max_messages_per_subject > 0),
        ];
        if let Some((what, _)) = limits.iter().find(|(_, set)| *set) {
            return Err(format!(
                "stream {name} has {what} set with discard old, which may delete a part \
                 before its message is read; messages in parts need no such limit (or discard new)"
            ));
        }
    }
    let mut max = max_payload;
    if cfg.max_message_size > 0 {
        max = max.min(cfg.max_message_size as usize);
    }
    if max <= 2 * PART_HEADROOM {
        return Err(format!(
            "a maximum message size of {max} bytes leaves no room for parts"
        ));
    }
    Ok(max - PART_HEADROOM)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_say_what_a_message_is() {
        assert_eq!(kind(None), Ok(Kind::Whole));
        assert_eq!(kind(Some(&HeaderMap::new())), Ok(Kind::Whole));
        let p = part_headers("shmq-1-2", 3, 5, 4000);
        assert_eq!(
            kind(Some(&p)),
            Ok(Kind::Part {
                id: "shmq-1-2".into(),
                part: 3,
                parts: 5
            })
        );
        let m = manifest_headers("shmq-1-2", 4000, &[7, 8, 10]);
        assert_eq!(
            kind(Some(&m)),
            Ok(Kind::Manifest {
                id: "shmq-1-2".into(),
                length: 4000,
                sequences: vec![7, 8, 10]
            })
        );
        let mut bad = manifest_headers("x", 1, &[1, 2]);
        bad.insert(PARTS, "3");
        assert!(
            kind(Some(&bad))
                .unwrap_err()
                .contains("2 sequences for 3 parts")
        );
    }

    #[test]
    fn only_a_stream_that_keeps_every_part_carries_parts() {
        let ok = Config {
            name: "S".into(),
            ..Default::default()
        };
        assert_eq!(part_size(1 << 20, &ok), Ok((1 << 20) - PART_HEADROOM));
        let small = Config {
            max_message_size: 4096,
            ..ok.clone()
        };
        assert_eq!(part_size(1 << 20, &small), Ok(4096 - PART_HEADROOM));
        let wq = Config {
            retention: RetentionPolicy::WorkQueue,
            ..ok.clone()
        };
        assert!(part_size(1 << 20, &wq).unwrap_err().contains("WorkQueue"));
        let aged = Config {
            max_age: std::time::Duration::from_secs(60),
            ..ok.clone()
        };
        assert!(part_size(1 << 20, &aged).unwrap_err().contains("max_age"));
        let bounded_new = Config {
            max_bytes: 1 << 30,
            discard: DiscardPolicy::New,
            ..ok
        };
        assert!(part_size(1 << 20, &bounded_new).is_ok());
    }
}
