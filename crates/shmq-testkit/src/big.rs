//! Checksummed messages of any size, for the large-message tests, `shmq demo big` and the
//! benchmarks: a 16-byte head (producer id, sequence number, body length) and a body that is a
//! pseudo-random stream seeded by the head, so that a torn, truncated, mixed or duplicated
//! message is caught by [`check`].

/// Bytes of the head.
pub const HEAD: usize = 16;

fn stream(id: u32, seq: u32) -> u64 {
    (u64::from(id) << 32 | u64::from(seq)) ^ 0x9e37_79b9_7f4a_7c15
}

/// splitmix64: the next state and output.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn fill(body: &mut [u8], id: u32, seq: u32) {
    let mut st = stream(id, seq);
    let mut chunks = body.chunks_exact_mut(8);
    for c in &mut chunks {
        c.copy_from_slice(&next(&mut st).to_le_bytes());
    }
    let rest = chunks.into_remainder();
    let last = next(&mut st).to_le_bytes();
    let n = rest.len();
    rest.copy_from_slice(&last[..n]);
}

/// Message `seq` of producer `id` with a body of `body` bytes (`HEAD + body` in all).
pub fn message(id: u32, seq: u32, body: usize) -> Vec<u8> {
    let mut m = vec![0u8; HEAD + body];
    m[..4].copy_from_slice(&id.to_le_bytes());
    m[4..8].copy_from_slice(&seq.to_le_bytes());
    m[8..16].copy_from_slice(&(body as u64).to_le_bytes());
    fill(&mut m[HEAD..], id, seq);
    m
}

/// Checks a message made by [`message`]; returns (producer id, sequence number).
pub fn check(m: &[u8]) -> Option<(u32, u32)> {
    if m.len() < HEAD {
        return None;
    }
    let id = u32::from_le_bytes(m[..4].try_into().ok()?);
    let seq = u32::from_le_bytes(m[4..8].try_into().ok()?);
    let body = u64::from_le_bytes(m[8..16].try_into().ok()?);
    if body != (m.len() - HEAD) as u64 {
        return None;
    }
    let mut st = stream(id, seq);
    let mut chunks = m[HEAD..].chunks_exact(8);
    for c in &mut chunks {
        if c != next(&mut st).to_le_bytes() {
            return None;
        }
    }
    let rest = chunks.remainder();
    (rest == &next(&mut st).to_le_bytes()[..rest.len()]).then_some((id, seq))
}

/// A body size from `0` to `max`, skewed small, from a random word `r`: 60 % up to 4 KiB,
/// 30 % up to 256 KiB, 8 % up to 4 MiB, 2 % up to `max`.
pub fn skewed_size(r: u64, max: usize) -> usize {
    let bucket = r % 100;
    let within = (r >> 8) as usize;
    let cap = match bucket {
        0..60 => 4 << 10,
        60..90 => 256 << 10,
        90..98 => 4 << 20,
        _ => max,
    }
    .min(max);
    within % (cap + 1)
}

/// A small random generator for the size draws (splitmix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded with `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next random word.
    pub fn word(&mut self) -> u64 {
        next(&mut self.0)
    }
}

/// The names in `/dev/shm` of the side segments of queue or pipe `name` (`<name>.big.*`).
pub fn side_segments(name: &str) -> Vec<String> {
    let prefix = format!("{name}.big.");
    std::fs::read_dir("/dev/shm")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.starts_with(&prefix))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_check_and_damage_is_caught() {
        for body in [0, 1, 7, 8, 9, 1000] {
            let m = message(3, 9, body);
            assert_eq!(check(&m), Some((3, 9)));
            let mut bad = m.clone();
            if body > 0 {
                *bad.last_mut().unwrap() ^= 1;
                assert_eq!(check(&bad), None);
            }
            assert_eq!(check(&m[..m.len() - 1]), None);
        }
        assert!((0..1000).all(|i| skewed_size(Rng::new(i).word(), 100) <= 100));
    }
}
