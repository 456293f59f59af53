//! The in-bridge's state file: what it was about to put, so that a restarted bridge knows which
//! redelivered messages already reached the local queue.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

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
/// shmq_bridge::StateFile::remove(&path);
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
    /// Reads the state file (the newer of its two copies that is whole); `Ok(None)` if there
    /// is none.
    ///
    /// # Errors
    ///
    /// [`BridgeError::State`] if it cannot be read, or neither copy is whole.
    pub fn load(path: &Path) -> Result<Option<InState>, BridgeError> {
        Ok(StateFile::read(path)?.map(|(s, _)| s))
    }

    /// Writes the state file once ([`StateFile::store`]; a bridge keeps a [`StateFile`] open
    /// instead).
    ///
    /// # Errors
    ///
    /// [`BridgeError::State`].
    pub fn store(&self, path: &Path) -> Result<(), BridgeError> {
        StateFile::open(path)?.0.store(self)
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

/// The in-bridge's state file, kept open: two copies, `PATH` and `PATH.b`, written in turn
/// in place (no new file, no rename, no truncation), each a header line
/// `shmq-bridge-state 2 GENERATION LENGTH CHECKSUM` and the [`InState`] as JSON. A bridge
/// killed inside a write leaves that copy torn (its checksum says so) and the other one whole:
/// the state before the batch whose write was cut, which is right, since nothing of that batch
/// was put. Writing in place is what makes a write cheap: replacing a file by a rename makes
/// ext4 (`auto_da_alloc`) start writing the new file's data to the disk at once, and that
/// rename cost about 3 ms a batch, more than the puts and acks of 256 messages.
///
/// # Examples
///
/// ```
/// # fn main() -> Result<(), shmq_bridge::BridgeError> {
/// use shmq_bridge::{InState, StateFile};
/// let path = std::env::temp_dir().join(format!("shmq-doc-statefile-{}", std::process::id()));
/// let (mut file, old) = StateFile::open(&path)?;
/// assert!(old.is_none());
/// let mut s = InState { instance: 7, stream_created: 1, tail: 0, voided: Some(0), batch: vec![1, 2], put: vec![] };
/// file.store(&s)?;
/// s.tail = 2;
/// s.batch = vec![3];
/// s.put = vec![(1, 2)];
/// file.store(&s)?;
/// assert_eq!(StateFile::open(&path)?.1, Some(s));
/// StateFile::remove(&path);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct StateFile {
    path: PathBuf,
    files: [File; 2],
    generation: u64,
}

const MAGIC: &str = "shmq-bridge-state 2";

impl StateFile {
    /// Opens (creating them if missing) the two copies of the state file at `path`, and
    /// returns the newest whole state in them, if any. A state file of the first version (one
    /// JSON object at `path`) is read too.
    ///
    /// # Errors
    ///
    /// [`BridgeError::State`] if the files cannot be opened or read, or there is a state but
    /// no whole copy of it.
    pub fn open(path: &Path) -> Result<(StateFile, Option<InState>), BridgeError> {
        let found = StateFile::read(path)?;
        let open = |p: &Path| {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(p)
                .map_err(|e| state_err(p, e.to_string()))
        };
        let files = [open(path)?, open(&second(path))?];
        let (state, generation) = match found {
            Some((s, g)) => (Some(s), g),
            None => (None, 0),
        };
        Ok((
            StateFile {
                path: path.to_owned(),
                files,
                generation,
            },
            state,
        ))
    }

    /// Writes `state` over the older copy. A process killed at any point leaves the previous
    /// state or this one readable.
    ///
    /// # Errors
    ///
    /// [`BridgeError::State`].
    pub fn store(&mut self, state: &InState) -> Result<(), BridgeError> {
        let generation = self.generation + 1;
        let body = serde_json::to_vec(state).map_err(|e| state_err(&self.path, e.to_string()))?;
        let mut bytes = format!(
            "{MAGIC} {generation} {} {:016x}\n",
            body.len(),
            checksum(&body)
        )
        .into_bytes();
        bytes.extend_from_slice(&body);
        let i = (generation % 2) as usize;
        self.files[i]
            .write_all_at(&bytes, 0)
            .map_err(|e| state_err(&self.path, e.to_string()))?;
        self.generation = generation;
        Ok(())
    }

    /// Removes both copies (and a temporary file of the first version), ignoring errors.
    pub fn remove(path: &Path) {
        let _ = std::fs::remove_file(path);
        let _ = std::fs::remove_file(second(path));
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let _ = std::fs::remove_file(tmp);
    }

    /// The newest whole state and its generation.
    fn read(path: &Path) -> Result<Option<(InState, u64)>, BridgeError> {
        let mut best: Option<(InState, u64)> = None;
        let mut torn = 0;
        for p in [path.to_owned(), second(path)] {
            let bytes = match std::fs::read(&p) {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(state_err(&p, e.to_string())),
            };
            if bytes.is_empty() {
                continue;
            }
            if bytes.first() == Some(&b'{') {
                // The first version: one JSON object, replaced by a rename (never torn).
                let s = serde_json::from_slice(&bytes).map_err(|e| state_err(&p, e.to_string()))?;
                if best.is_none() {
                    best = Some((s, 0));
                }
                continue;
            }
            match parse(&bytes) {
                Some((s, g)) if best.as_ref().is_none_or(|b| g > b.1) => best = Some((s, g)),
                Some(_) => {}
                None => torn += 1,
            }
        }
        // One torn copy and no other: the first write was cut, before any put. Both torn is
        // not a bridge's doing.
        if best.is_none() && torn == 2 {
            return Err(state_err(path, "no whole copy of the state file".into()));
        }
        Ok(best)
    }
}

/// The second copy's path: `PATH.b`.
fn second(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".b");
    PathBuf::from(p)
}

fn state_err(path: &Path, reason: String) -> BridgeError {
    BridgeError::State {
        path: path.display().to_string(),
        reason,
    }
}

/// FNV-1a, 64 bits: enough to tell a torn copy from a whole one.
///
/// Not CRC-32 (crc32fast), the usual check, on purpose: a copy is a few hundred bytes written
/// once per commit, so speed does not matter; 64 bits let a torn copy pass one time in 2^64
/// instead of 2^32; and the checksum is part of the file's format, so changing it would make
/// every state file already on disk look torn (refused, or a whole copy ignored) for no gain.
fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A copy's state and generation, if it is whole.
fn parse(bytes: &[u8]) -> Option<(InState, u64)> {
    let nl = bytes.iter().position(|&b| b == b'\n')?;
    let header = std::str::from_utf8(&bytes[..nl]).ok()?;
    let rest = header.strip_prefix(MAGIC)?;
    let mut f = rest.split_ascii_whitespace();
    let generation: u64 = f.next()?.parse().ok()?;
    let len: usize = f.next()?.parse().ok()?;
    let sum = u64::from_str_radix(f.next()?, 16).ok()?;
    let body = bytes.get(nl + 1..nl + 1 + len)?;
    if checksum(body) != sum {
        return None;
    }
    Some((serde_json::from_slice(body).ok()?, generation))
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
    fn a_torn_copy_leaves_the_previous_state() {
        let path =
            std::env::temp_dir().join(format!("shmq-test-state-torn-{}", std::process::id()));
        StateFile::remove(&path);
        let state = |tail| InState {
            instance: 1,
            stream_created: 2,
            tail,
            voided: Some(0),
            batch: vec![tail + 1],
            put: vec![(1, tail)],
        };
        let (mut f, none) = StateFile::open(&path).unwrap();
        assert_eq!(none, None);
        for tail in 1..=5 {
            f.store(&state(tail)).unwrap();
        }
        drop(f);
        // Generation 5 went to `PATH.b`; a write of 6 into `PATH` cut short: 4 is still there
        // in `PATH`, torn, and 5 whole in `PATH.b`.
        let (_, s) = StateFile::open(&path).unwrap();
        assert_eq!(s, Some(state(5)));
        let b = second(&path);
        let whole = std::fs::read(&b).unwrap();
        std::fs::write(&b, &whole[..whole.len() - 3]).unwrap();
        assert_eq!(
            StateFile::open(&path).unwrap().1,
            Some(state(4)),
            "the older copy"
        );
        // The next write goes over the torn copy, and wins.
        let (mut f, _) = StateFile::open(&path).unwrap();
        f.store(&state(9)).unwrap();
        assert_eq!(InState::load(&path).unwrap(), Some(state(9)));
        // Both torn: an error, not a fresh start.
        let a = std::fs::read(&path).unwrap();
        std::fs::write(&path, &a[..10]).unwrap();
        std::fs::write(&b, &whole[..20]).unwrap();
        assert!(InState::load(&path).is_err());
        // The first write cut short: no state yet.
        StateFile::remove(&path);
        let (mut f, _) = StateFile::open(&path).unwrap();
        f.store(&state(1)).unwrap();
        let first = std::fs::read(&b).unwrap();
        std::fs::write(&b, &first[..first.len() / 2]).unwrap();
        assert_eq!(InState::load(&path).unwrap(), None);
        // A state file of the first version (one JSON object) is read.
        StateFile::remove(&path);
        std::fs::write(&path, serde_json::to_vec(&state(3)).unwrap()).unwrap();
        let (mut f, s) = StateFile::open(&path).unwrap();
        assert_eq!(s, Some(state(3)));
        f.store(&state(4)).unwrap(); // generation 1: into `PATH.b`
        assert_eq!(InState::load(&path).unwrap(), Some(state(4)));
        StateFile::remove(&path);
    }

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
