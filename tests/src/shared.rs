//! Message formats shared by the child helper and the tests that check what it sent: compiled
//! into both (`#[path]`), so that the writer and the checker cannot drift apart.

#![allow(dead_code, unreachable_pub)]

/// The stress message: producer id, sequence number, and a checksum of both (24 bytes).
pub fn stress_message(id: u32, seq: u32) -> [u8; 24] {
    let mut m = [0u8; 24];
    m[..4].copy_from_slice(&id.to_le_bytes());
    m[4..8].copy_from_slice(&seq.to_le_bytes());
    m[8..16].copy_from_slice(&checksum(id, seq).to_le_bytes());
    m[16..24].copy_from_slice(&(!checksum(seq, id)).to_le_bytes());
    m
}

fn checksum(a: u32, b: u32) -> u64 {
    // FNV-1a over the 8 bytes.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in a.to_le_bytes().into_iter().chain(b.to_le_bytes()) {
        h ^= u64::from(byte);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Checks a stress message; returns (producer, seq).
pub fn check_stress(m: &[u8]) -> Option<(u32, u32)> {
    if m.len() != 24 {
        return None;
    }
    let id = u32::from_le_bytes(m[..4].try_into().ok()?);
    let seq = u32::from_le_bytes(m[4..8].try_into().ok()?);
    (m == stress_message(id, seq)).then_some((id, seq))
}

/// The message of the concurrent-senders test: 24 bytes naming sender `id` and sequence `seq`,
/// then a pattern of both, `len` bytes in all (`tests/pipe_mp.rs` checks it).
pub fn pattern_message(id: u32, seq: u32, len: usize) -> Vec<u8> {
    let mut m = vec![0u8; len.max(8)];
    m[..4].copy_from_slice(&id.to_le_bytes());
    m[4..8].copy_from_slice(&seq.to_le_bytes());
    for (i, b) in m.iter_mut().enumerate().skip(8) {
        *b = (i as u32)
            .wrapping_mul(31)
            .wrapping_add(id.wrapping_mul(7))
            .wrapping_add(seq) as u8;
    }
    m
}

/// The serde message of the typed tests and examples: a small struct.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Order {
    pub id: u32,
    pub price: f64,
    pub item: String,
    pub tags: Vec<u16>,
}

impl Order {
    /// The `i`th order of a test.
    pub fn sample(i: u32) -> Order {
        Order {
            id: i,
            price: f64::from(i) * 0.5,
            item: format!("item-{i}"),
            tags: (0..(i % 4) as u16).collect(),
        }
    }
}
