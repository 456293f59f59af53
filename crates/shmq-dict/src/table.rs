//! The dict's bytes and its algorithm: an open-addressing hash table (FNV-1a, linear probing,
//! tombstones) made only of `AtomicU64` words, the words of shmq's
//! [`AtomicRegion`](shmq::substrate::segment::AtomicRegion) (the only memory this crate reaches, and only
//! atomically). No names, no system calls; every function here runs under the dict's lock. `docs/dict.md` gives the format as tables.
//!
//! # Crash consistency
//!
//! Every operation commits with one final `Release` store of one word, written after every
//! other word it publishes:
//!
//! | operation        | writes first                      | commit store |
//! |------------------|-----------------------------------|--------------|
//! | insert a new key | the table's next insertion number (`+1`, reserving one), then value, insertion number and key bytes of a vacant entry (invisible while vacant) | the entry's state word: `FULL`, key length, current generation |
//! | update a key     | nothing                           | the entry's value word |
//! | remove           | nothing                           | the entry's state word: `TOMBSTONE` |
//! | clear            | nothing                           | the table's generation word, `+1` (every entry of an older generation is empty) |
//!
//! A process that dies anywhere leaves each operation done or not begun. The live-entry count
//! is derived (updated after the commit) and rebuilt by the next locker after an owner death.
//! The next insertion number is reserved before the entry is written, so a death only skips a
//! number: insertion numbers of live entries stay distinct and increasing, which is the
//! iteration order (Python's dict order: an update keeps a key's place, a remove and a new
//! insert moves it to the end).

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};

use shmq::substrate::layout::{self, HEADER_SIZE, Kind, LINE, Params};
use shmq::substrate::segment::AtomicRegion;
use shmq::{OpenError, substrate::sync::RawMutex};

use crate::error::DictError;

/// The longest key a dict can be created for, in bytes.
pub const MAX_KEY_LEN: usize = 4096;

/// The most entries a dict can be created with.
pub const MAX_ENTRIES: usize = 1 << 24;

/// Offset of the robust lock (64 bytes) in dict and lock segments.
pub(crate) const LOCK_OFFSET: usize = HEADER_SIZE;
const _: () = assert!(LOCK_OFFSET == AtomicRegion::LOCK_OFFSET);
const _: () = assert!(CONTROL_OFFSET == AtomicRegion::WORDS_OFFSET);
/// Offset of the generation word (u64); the live-entry count follows at `+8`.
pub(crate) const CONTROL_OFFSET: usize = HEADER_SIZE + LINE;
/// Offset of the live-entry count (u64).
pub(crate) const COUNT_OFFSET: usize = CONTROL_OFFSET + 8;
/// Offset of the next insertion number (u64, starts at 1).
pub(crate) const NEXT_SEQ_OFFSET: usize = CONTROL_OFFSET + 16;
const _: () = assert!(NEXT_SEQ_OFFSET + 8 <= ENTRIES_OFFSET);
/// Offset of entry 0.
pub(crate) const ENTRIES_OFFSET: usize = HEADER_SIZE + 2 * LINE;
/// Length of a lock segment: the header and one line for the mutex.
pub(crate) const LOCK_SEGMENT_SIZE: u64 = (HEADER_SIZE + LINE) as u64;
/// `Header::aux` of a dict: the table format. 2 = FNV-1a 64, linear probing, this state word,
/// an insertion number per entry (format 1 had none, and is refused at open).
pub(crate) const TABLE_FORMAT: u64 = 2;

/// State word: bits 0–15 hold the key length.
const LEN_MASK: u64 = 0xffff;
/// State word: bits 16–17 hold the tag.
const TAG_SHIFT: u32 = 16;
const TAG_MASK: u64 = 0b11;
/// Tag: the entry holds a key (if its generation is current).
const TAG_FULL: u64 = 1;
/// Tag: the entry held a key that was removed; probes go on past it.
const TAG_TOMBSTONE: u64 = 2;
/// State word: bits 18–63 hold the generation the entry was written in. An entry of another
/// generation than the table's is empty, whatever its tag; zeroed memory (generation 0) is empty
/// because a table's generation starts at 1.
const GEN_SHIFT: u32 = 18;
/// The largest generation.
pub(crate) const MAX_GEN: u64 = u64::MAX >> GEN_SHIFT;

const _: () = assert!(MAX_KEY_LEN as u64 <= LEN_MASK);

/// Words before an entry's key: the state word, the value word and the insertion number.
const ENTRY_HEAD_WORDS: usize = 3;

/// Where a dict's parts are, computed from its capacity and longest key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Geometry {
    pub(crate) capacity: usize,
    pub(crate) max_key_len: usize,
    /// Words per entry: state, value, insertion number, then the key bytes in
    /// `ceil(max_key_len / 8)` words.
    pub(crate) entry_words: usize,
}

impl Geometry {
    /// The geometry of `capacity` entries with keys of up to `max_key_len` bytes.
    ///
    /// # Errors
    ///
    /// A message naming the value out of range.
    pub(crate) fn new(capacity: u64, max_key_len: u64) -> Result<Geometry, String> {
        if capacity == 0 || capacity > MAX_ENTRIES as u64 {
            return Err(format!(
                "capacity {capacity} is outside 1..={MAX_ENTRIES} entries"
            ));
        }
        if max_key_len == 0 || max_key_len > MAX_KEY_LEN as u64 {
            return Err(format!(
                "maximum key length {max_key_len} is outside 1..={MAX_KEY_LEN} bytes"
            ));
        }
        let g = Geometry {
            capacity: capacity as usize,
            max_key_len: max_key_len as usize,
            entry_words: ENTRY_HEAD_WORDS + (max_key_len as usize).div_ceil(8),
        };
        if g.total_size() > layout::MAX_SEGMENT_SIZE {
            return Err(format!(
                "{capacity} entries with keys of {max_key_len} bytes exceed the segment limit of {} bytes",
                layout::MAX_SEGMENT_SIZE
            ));
        }
        Ok(g)
    }

    /// Bytes per entry.
    pub(crate) fn stride(&self) -> u64 {
        self.entry_words as u64 * 8
    }

    /// Length of the whole segment.
    pub(crate) fn total_size(&self) -> u64 {
        ENTRIES_OFFSET as u64 + self.capacity as u64 * self.stride()
    }

    /// The header fields of a dict of this geometry.
    pub(crate) fn params(&self) -> Params {
        Params {
            kind: Kind::Dict,
            capacity: self.capacity as u64,
            message_size: self.max_key_len as u64,
            slot_stride: self.stride(),
            aux: TABLE_FORMAT,
            total_size: self.total_size(),
        }
    }

    /// The geometry recorded in a dict's header, checked: it must reproduce every field.
    ///
    /// # Errors
    ///
    /// [`OpenError::Incompatible`] for another table format, [`OpenError::Corrupt`] when the
    /// fields disagree or are out of range.
    pub(crate) fn from_params(p: &Params) -> Result<Geometry, OpenError> {
        if p.aux != TABLE_FORMAT {
            return Err(OpenError::Incompatible(format!(
                "the dict has table format {}, this library reads format {TABLE_FORMAT}: \
                 recreate it (copy its keys into a new dict)",
                p.aux
            )));
        }
        let g = Geometry::new(p.capacity, p.message_size).map_err(OpenError::Corrupt)?;
        if g.params() != *p {
            return Err(OpenError::Corrupt(format!(
                "dict header ({p}) does not match its own geometry ({})",
                g.params()
            )));
        }
        Ok(g)
    }
}

/// FNV-1a, 64 bits.
fn hash(key: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in key {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// What a state word says, read against the table's generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Empty,
    Tombstone,
    Full { len: usize },
}

/// Where a key is, or where it would go.
enum Probe {
    Found(usize),
    /// Absent; the first vacant entry of its probe sequence, if any.
    Vacant(Option<usize>),
}

/// A view of one dict's shared words. Only used while the dict's lock is held.
pub(crate) struct Table<'a> {
    pub(crate) lock: &'a RawMutex,
    generation: &'a AtomicU64,
    count: &'a AtomicU64,
    next_seq: &'a AtomicU64,
    words: &'a [AtomicU64],
    geo: Geometry,
}

impl<'a> Table<'a> {
    /// The table of `region`, laid out as `geo`.
    ///
    /// # Errors
    ///
    /// [`OpenError::Corrupt`] if a part does not fit the segment.
    pub(crate) fn new(region: &'a AtomicRegion, geo: Geometry) -> Result<Table<'a>, OpenError> {
        let all = region.words();
        let first = (ENTRIES_OFFSET - CONTROL_OFFSET) / 8;
        let words = geo
            .capacity
            .checked_mul(geo.entry_words)
            .and_then(|n| all.get(first..first.checked_add(n)?))
            .ok_or_else(|| {
                OpenError::Corrupt(format!(
                    "{} entries of {} words do not fit a segment of {} bytes",
                    geo.capacity,
                    geo.entry_words,
                    region.params().total_size
                ))
            })?;
        Ok(Table {
            lock: region.lock(),
            generation: &all[0],
            count: &all[1],
            next_seq: &all[2],
            words,
            geo,
        })
    }

    /// Writes the initial generation into the words of a region (creator only, before
    /// publishing).
    pub(crate) fn init(words: &[AtomicU64]) -> Result<(), OpenError> {
        match words {
            [generation, count, next_seq, ..] => {
                generation.store(1, Relaxed);
                count.store(0, Relaxed);
                next_seq.store(1, Relaxed);
                Ok(())
            }
            _ => Err(OpenError::Corrupt("a dict without control words".into())),
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.geo.capacity
    }

    pub(crate) fn max_key_len(&self) -> usize {
        self.geo.max_key_len
    }

    /// Checks a key before anything is locked or written.
    pub(crate) fn check_key(&self, key: &str) -> Result<(), DictError> {
        if key.is_empty() {
            return Err(DictError::EmptyKey);
        }
        if key.len() > self.geo.max_key_len {
            return Err(DictError::KeyTooLong {
                len: key.len(),
                max: self.geo.max_key_len,
            });
        }
        Ok(())
    }

    fn current_gen(&self) -> Result<u64, DictError> {
        match self.generation.load(Acquire) {
            g @ 1..=MAX_GEN => Ok(g),
            g => Err(DictError::Corrupt(format!("table generation {g}"))),
        }
    }

    fn state(&self, i: usize) -> &AtomicU64 {
        &self.words[i * self.geo.entry_words]
    }

    fn value(&self, i: usize) -> &AtomicU64 {
        &self.words[i * self.geo.entry_words + 1]
    }

    fn seq(&self, i: usize) -> &AtomicU64 {
        &self.words[i * self.geo.entry_words + 2]
    }

    fn key_words(&self, i: usize) -> &[AtomicU64] {
        let start = i * self.geo.entry_words + ENTRY_HEAD_WORDS;
        &self.words[start..start + self.geo.entry_words - ENTRY_HEAD_WORDS]
    }

    fn slot(&self, i: usize, generation: u64) -> Result<Slot, DictError> {
        let s = self.state(i).load(Acquire);
        let entry_gen = s >> GEN_SHIFT;
        if entry_gen > generation {
            return Err(DictError::Corrupt(format!(
                "entry {i} has generation {entry_gen}, newer than the table's {generation}"
            )));
        }
        if entry_gen != generation {
            return Ok(Slot::Empty);
        }
        match (s >> TAG_SHIFT) & TAG_MASK {
            TAG_TOMBSTONE => Ok(Slot::Tombstone),
            TAG_FULL => {
                let len = (s & LEN_MASK) as usize;
                if len == 0 || len > self.geo.max_key_len {
                    return Err(DictError::Corrupt(format!(
                        "entry {i} holds a key of {len} bytes (maximum {})",
                        self.geo.max_key_len
                    )));
                }
                Ok(Slot::Full { len })
            }
            tag => Err(DictError::Corrupt(format!("entry {i} has tag {tag}"))),
        }
    }

    fn key_eq(&self, i: usize, key: &[u8]) -> bool {
        key.chunks(8)
            .zip(self.key_words(i))
            .all(|(chunk, w)| pack(chunk) == w.load(Relaxed))
    }

    fn read_key(&self, i: usize, len: usize) -> Result<String, DictError> {
        let mut bytes = Vec::with_capacity(len.next_multiple_of(8));
        for w in &self.key_words(i)[..len.div_ceil(8)] {
            bytes.extend_from_slice(&w.load(Relaxed).to_le_bytes());
        }
        bytes.truncate(len);
        String::from_utf8(bytes)
            .map_err(|_| DictError::Corrupt(format!("entry {i} holds a key that is not UTF-8")))
    }

    fn probe(&self, key: &[u8], generation: u64) -> Result<Probe, DictError> {
        let cap = self.geo.capacity;
        let start = (hash(key) % cap as u64) as usize;
        let mut vacant = None;
        for step in 0..cap {
            let i = (start + step) % cap;
            match self.slot(i, generation)? {
                Slot::Empty => return Ok(Probe::Vacant(vacant.or(Some(i)))),
                Slot::Tombstone => {
                    vacant.get_or_insert(i);
                }
                Slot::Full { len } => {
                    if len == key.len() && self.key_eq(i, key) {
                        return Ok(Probe::Found(i));
                    }
                }
            }
        }
        Ok(Probe::Vacant(vacant))
    }

    pub(crate) fn get(&self, key: &str) -> Result<Option<i64>, DictError> {
        self.check_key(key)?;
        Ok(match self.probe(key.as_bytes(), self.current_gen()?)? {
            Probe::Found(i) => Some(self.value(i).load(Acquire) as i64),
            Probe::Vacant(_) => None,
        })
    }

    /// Sets `key` to the value `f` computes from the current one (`None` if absent), with one
    /// commit store; returns the previous value.
    fn upsert(
        &self,
        key: &str,
        f: impl FnOnce(Option<i64>) -> Result<i64, DictError>,
    ) -> Result<Option<i64>, DictError> {
        self.check_key(key)?;
        let generation = self.current_gen()?;
        match self.probe(key.as_bytes(), generation)? {
            Probe::Found(i) => {
                let old = self.value(i).load(Acquire) as i64;
                let new = f(Some(old))?;
                // COMMIT: one store of the value word.
                self.value(i).store(new as u64, Release);
                Ok(Some(old))
            }
            Probe::Vacant(None) => Err(DictError::Full {
                capacity: self.geo.capacity,
            }),
            Probe::Vacant(Some(i)) => {
                let new = f(None)?;
                // Reserve the insertion number first: a death after this skips a number.
                let seq = self.next_seq.fetch_add(1, Relaxed);
                // The entry is vacant, so nobody reads these words until the commit below.
                self.value(i).store(new as u64, Relaxed);
                self.seq(i).store(seq, Relaxed);
                for (chunk, w) in key.as_bytes().chunks(8).zip(self.key_words(i)) {
                    w.store(pack(chunk), Relaxed);
                }
                let state = (generation << GEN_SHIFT) | (TAG_FULL << TAG_SHIFT) | key.len() as u64;
                // COMMIT: the state word, after the value and key (Release orders them first).
                self.state(i).store(state, Release);
                self.count.fetch_add(1, Relaxed);
                Ok(None)
            }
        }
    }

    pub(crate) fn insert(&self, key: &str, value: i64) -> Result<Option<i64>, DictError> {
        self.upsert(key, |_| Ok(value))
    }

    pub(crate) fn add(&self, key: &str, delta: i64) -> Result<i64, DictError> {
        let mut new = 0;
        self.upsert(key, |old| {
            let value = old.unwrap_or(0);
            new = value
                .checked_add(delta)
                .ok_or(DictError::Overflow { value, delta })?;
            Ok(new)
        })?;
        Ok(new)
    }

    pub(crate) fn remove(&self, key: &str) -> Result<Option<i64>, DictError> {
        self.check_key(key)?;
        let generation = self.current_gen()?;
        match self.probe(key.as_bytes(), generation)? {
            Probe::Found(i) => {
                let old = self.value(i).load(Acquire) as i64;
                // COMMIT: the state word becomes a tombstone.
                self.state(i).store(
                    (generation << GEN_SHIFT) | (TAG_TOMBSTONE << TAG_SHIFT),
                    Release,
                );
                self.count.fetch_sub(1, Relaxed);
                Ok(Some(old))
            }
            Probe::Vacant(_) => Ok(None),
        }
    }

    pub(crate) fn len(&self) -> Result<usize, DictError> {
        let n = self.count.load(Relaxed);
        usize::try_from(n)
            .ok()
            .filter(|&n| n <= self.geo.capacity)
            .ok_or_else(|| DictError::Corrupt(format!("entry count {n}")))
    }

    /// The indices of the live entries with their key lengths, in insertion order.
    fn ordered(&self) -> Result<Vec<(usize, usize)>, DictError> {
        let generation = self.current_gen()?;
        let mut live = Vec::with_capacity(self.len()?);
        for i in 0..self.geo.capacity {
            if let Slot::Full { len } = self.slot(i, generation)? {
                live.push((self.seq(i).load(Relaxed), i, len));
            }
        }
        live.sort_unstable_by_key(|&(seq, i, _)| (seq, i));
        Ok(live.into_iter().map(|(_, i, len)| (i, len)).collect())
    }

    /// Calls `f` on every live entry, in insertion order.
    fn each(&self, mut f: impl FnMut(String, i64)) -> Result<(), DictError> {
        for (i, len) in self.ordered()? {
            f(self.read_key(i, len)?, self.value(i).load(Acquire) as i64);
        }
        Ok(())
    }

    pub(crate) fn keys(&self) -> Result<Vec<String>, DictError> {
        let mut keys = Vec::with_capacity(self.len()?);
        self.each(|k, _| keys.push(k))?;
        Ok(keys)
    }

    /// Every entry, in insertion order.
    pub(crate) fn entries(&self) -> Result<Vec<(String, i64)>, DictError> {
        let mut entries = Vec::with_capacity(self.len()?);
        self.each(|k, v| entries.push((k, v)))?;
        Ok(entries)
    }

    /// Removes and returns the most recently inserted entry (`None` if the table is empty):
    /// one commit store, as [`remove`](Self::remove).
    pub(crate) fn pop_last(&self) -> Result<Option<(String, i64)>, DictError> {
        let generation = self.current_gen()?;
        let mut last: Option<(u64, usize, usize)> = None;
        for i in 0..self.geo.capacity {
            if let Slot::Full { len } = self.slot(i, generation)? {
                let seq = self.seq(i).load(Relaxed);
                if last.is_none_or(|(s, j, _)| (seq, i) > (s, j)) {
                    last = Some((seq, i, len));
                }
            }
        }
        let Some((_, i, len)) = last else {
            return Ok(None);
        };
        let key = self.read_key(i, len)?;
        let old = self.value(i).load(Acquire) as i64;
        // COMMIT: the state word becomes a tombstone.
        self.state(i).store(
            (generation << GEN_SHIFT) | (TAG_TOMBSTONE << TAG_SHIFT),
            Release,
        );
        self.count.fetch_sub(1, Relaxed);
        Ok(Some((key, old)))
    }

    pub(crate) fn snapshot(&self) -> Result<BTreeMap<String, i64>, DictError> {
        let mut map = BTreeMap::new();
        self.each(|k, v| {
            map.insert(k, v);
        })?;
        Ok(map)
    }

    /// Empties the table with one store: the next generation makes every entry empty. After
    /// [`MAX_GEN`] clears (never, at a million a second for two years), the state words are
    /// zeroed one by one and the generation restarts at 1; only that clear is not atomic.
    pub(crate) fn clear(&self) -> Result<(), DictError> {
        let generation = self.current_gen()?;
        if generation == MAX_GEN {
            for i in 0..self.geo.capacity {
                self.state(i).store(0, Relaxed);
            }
            self.generation.store(1, Release);
        } else {
            // COMMIT: one store of the generation word.
            self.generation.store(generation + 1, Release);
        }
        self.count.store(0, Relaxed);
        Ok(())
    }

    /// Rebuilds the derived count from the state words (after an owner death), and makes the
    /// next insertion number larger than every live entry's (it only grows; this guards
    /// against a foreign writer, a crash cannot lower it).
    pub(crate) fn repair(&self) -> Result<(), DictError> {
        let generation = self.current_gen()?;
        let mut n = 0u64;
        let mut max_seq = 0u64;
        for i in 0..self.geo.capacity {
            if let Slot::Full { .. } = self.slot(i, generation)? {
                n += 1;
                max_seq = max_seq.max(self.seq(i).load(Relaxed));
            }
        }
        self.count.store(n, Relaxed);
        self.next_seq.fetch_max(max_seq.saturating_add(1), Relaxed);
        Ok(())
    }

    #[cfg(test)]
    fn set_generation(&self, g: u64) {
        self.generation.store(g, Relaxed);
    }

    #[cfg(test)]
    fn set_count(&self, n: u64) {
        self.count.store(n, Relaxed);
    }
}

/// Up to 8 key bytes as a little-endian word, zero-padded.
fn pack(chunk: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b[..chunk.len()].copy_from_slice(chunk);
    u64::from_le_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(seg: &AtomicRegion, cap: u64, max: u64) -> Table<'_> {
        Table::new(seg, Geometry::new(cap, max).unwrap()).unwrap()
    }

    fn anon(cap: u64, max: u64) -> AtomicRegion {
        AtomicRegion::anonymous(&Geometry::new(cap, max).unwrap().params(), Table::init).unwrap()
    }

    #[test]
    fn geometry_arithmetic() {
        let g = Geometry::new(8, 13).unwrap();
        assert_eq!(g.entry_words, 5);
        assert_eq!(g.stride(), 40);
        assert_eq!(g.total_size(), 384 + 8 * 40);
        assert_eq!(Geometry::from_params(&g.params()).unwrap(), g);
        let mut p = g.params();
        p.slot_stride = 32;
        assert!(Geometry::from_params(&p).is_err());
        assert!(Geometry::new(0, 8).is_err());
        assert!(Geometry::new(8, 0).is_err());
        assert!(Geometry::new(8, MAX_KEY_LEN as u64 + 1).is_err());
        assert!(Geometry::new(MAX_ENTRIES as u64 + 1, 8).is_err());
        assert!(
            Geometry::new(MAX_ENTRIES as u64, MAX_KEY_LEN as u64)
                .unwrap_err()
                .contains("exceed")
        );
    }

    #[test]
    fn insert_get_remove_with_collisions_and_tombstones() {
        let seg = anon(4, 20);
        let t = table(&seg, 4, 20);
        for (i, k) in ["a", "bb", "a-much-longer-key!", "d"].iter().enumerate() {
            assert_eq!(t.insert(k, i as i64).unwrap(), None);
        }
        assert_eq!(t.len().unwrap(), 4);
        assert_eq!(t.insert("e", 9), Err(DictError::Full { capacity: 4 }));
        assert_eq!(t.get("a-much-longer-key!").unwrap(), Some(2));
        assert_eq!(t.get("a-much-longer-key?").unwrap(), None);
        assert_eq!(t.remove("bb").unwrap(), Some(1));
        assert_eq!(t.remove("bb").unwrap(), None);
        // Every other key is still reached past the tombstone; the tombstone is reused.
        for (k, v) in [("a", 0), ("a-much-longer-key!", 2), ("d", 3)] {
            assert_eq!(t.get(k).unwrap(), Some(v), "{k}");
        }
        assert_eq!(t.insert("e", 9).unwrap(), None);
        assert_eq!(t.insert("e", 10).unwrap(), Some(9));
        assert_eq!(t.add("d", -5).unwrap(), -2);
        assert_eq!(t.len().unwrap(), 4);
        assert_eq!(
            t.add("d", i64::MIN),
            Err(DictError::Overflow {
                value: -2,
                delta: i64::MIN
            })
        );
        assert_eq!(t.get("d").unwrap(), Some(-2));
    }

    #[test]
    fn another_table_format_is_incompatible() {
        let mut p = Geometry::new(8, 13).unwrap().params();
        p.aux = 1;
        p.slot_stride = 32; // format 1: no insertion number
        p.total_size = 384 + 8 * 32;
        match Geometry::from_params(&p) {
            Err(OpenError::Incompatible(m)) => assert!(m.contains("table format 1"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn iteration_is_insertion_order_and_pop_last_takes_the_newest() {
        let seg = anon(8, 8);
        let t = table(&seg, 8, 8);
        for (i, k) in ["h", "b", "zz", "a", "m"].iter().enumerate() {
            t.insert(k, i as i64).unwrap();
        }
        t.insert("b", 10).unwrap(); // an update keeps its place
        t.add("zz", 1).unwrap();
        t.remove("h").unwrap();
        t.insert("h", 7).unwrap(); // removed and inserted again: last
        assert_eq!(t.keys().unwrap(), ["b", "zz", "a", "m", "h"]);
        assert_eq!(
            t.entries().unwrap(),
            [
                ("b".into(), 10),
                ("zz".into(), 3),
                ("a".into(), 3),
                ("m".into(), 4),
                ("h".into(), 7)
            ]
        );
        assert_eq!(t.pop_last().unwrap(), Some(("h".into(), 7)));
        assert_eq!(t.pop_last().unwrap(), Some(("m".into(), 4)));
        assert_eq!(t.len().unwrap(), 3);
        assert_eq!(t.get("m").unwrap(), None);
        t.clear().unwrap();
        assert_eq!(t.pop_last().unwrap(), None);
        t.insert("q", 1).unwrap();
        t.insert("p", 2).unwrap();
        assert_eq!(t.keys().unwrap(), ["q", "p"]);
    }

    #[test]
    fn repair_keeps_the_next_insertion_number_above_every_entry() {
        let seg = anon(4, 8);
        let t = table(&seg, 4, 8);
        t.insert("a", 1).unwrap();
        t.insert("b", 2).unwrap();
        t.next_seq.store(1, Relaxed); // as a foreign writer might
        t.repair().unwrap();
        t.insert("c", 3).unwrap();
        assert_eq!(t.keys().unwrap(), ["a", "b", "c"]);
    }

    #[test]
    fn clear_is_one_generation_store_and_wraps_at_the_maximum() {
        let seg = anon(3, 8);
        let t = table(&seg, 3, 8);
        t.insert("x", 1).unwrap();
        t.clear().unwrap();
        assert_eq!(t.get("x").unwrap(), None);
        assert_eq!(t.len().unwrap(), 0);
        t.insert("y", 2).unwrap();
        t.set_generation(MAX_GEN);
        assert_eq!(t.get("y").unwrap(), None, "an older generation is empty");
        t.insert("z", 3).unwrap();
        t.clear().unwrap();
        assert!(t.snapshot().unwrap().is_empty());
        t.insert("w", 4).unwrap();
        assert_eq!(t.snapshot().unwrap(), BTreeMap::from([("w".into(), 4)]));
    }

    #[test]
    fn repair_rebuilds_the_count_and_corruption_is_reported() {
        let seg = anon(4, 8);
        let t = table(&seg, 4, 8);
        t.insert("a", 1).unwrap();
        t.insert("b", 2).unwrap();
        t.set_count(7);
        t.repair().unwrap();
        assert_eq!(t.len().unwrap(), 2);
        t.set_count(99);
        assert!(matches!(t.len(), Err(DictError::Corrupt(_))));
        t.state(0).store(u64::MAX, Relaxed);
        assert!(matches!(t.snapshot(), Err(DictError::Corrupt(_))));
        t.set_generation(0);
        assert!(matches!(t.get("a"), Err(DictError::Corrupt(_))));
    }
}
