//! The streaming copy: how [`Blob::write_at`](super::blob::Blob::write_at) copies a message
//! far larger than the caches, with non-temporal stores that bypass the writer's caches.

#![allow(unsafe_code)]

/// From this many bytes up, [`Blob::write_at`](super::blob::Blob::write_at) copies with
/// non-temporal stores.
///
/// A large message is written by one CPU and read by another. Up to a few MiB, a cached copy
/// is best: the reader finds the bytes in the shared cache (1 MiB messages through a pool of
/// side segments moved at 22–28 GB/s with plain stores against 10 GB/s with streaming ones).
/// A message far larger than the caches only pushes other data out on its way to memory;
/// there streaming stores, which bypass the writer's caches, were about 20 % faster (16 MiB:
/// 5.8–6.8 against 4.7–5.4 GB/s); at 4 MiB the two were even. Figures: docs/benchmarks.md,
/// "Large messages: the pool fix and streaming stores".
pub(crate) const STREAM_FROM: usize = 8 << 20;

/// Copies `n` bytes from `src` to `dst` with non-temporal (streaming) stores where the target
/// allows it (x86-64: SSE2, which every x86-64 CPU has), then fences them (`sfence`), so they
/// are ordered before every later store of this thread — a Release store that publishes the
/// bytes included. Elsewhere a plain copy.
///
/// # Safety
///
/// `src` must be valid for reads and `dst` for writes of `n` bytes, and the ranges must not
/// overlap; nobody else may access `dst..dst + n` during the call.
#[cfg(target_arch = "x86_64")]
pub(crate) unsafe fn copy_streaming(src: *const u8, dst: *mut u8, n: usize) {
    use std::arch::x86_64::{__m128i, _mm_loadu_si128, _mm_sfence, _mm_stream_si128};
    // The unaligned head, up to a 16-byte boundary of `dst`, with plain stores.
    let head = dst.align_offset(16).min(n);
    // SAFETY: within the ranges the caller vouches for (`head <= n`).
    unsafe { std::ptr::copy_nonoverlapping(src, dst, head) };
    let mut i = head;
    while i + 64 <= n {
        // SAFETY: `i + 64 <= n`, so the four 16-byte loads and stores are within the caller's
        // ranges; `dst + i` is 16-byte aligned (`head` aligned it and `i` advances by 64), as
        // `_mm_stream_si128` requires; the loads are unaligned loads. SSE2 is part of the
        // x86-64 baseline, so the intrinsics are available on every target of this cfg.
        unsafe {
            let s = src.add(i);
            let d = dst.add(i);
            let a = _mm_loadu_si128(s.cast::<__m128i>());
            let b = _mm_loadu_si128(s.add(16).cast::<__m128i>());
            let c = _mm_loadu_si128(s.add(32).cast::<__m128i>());
            let e = _mm_loadu_si128(s.add(48).cast::<__m128i>());
            _mm_stream_si128(d.cast::<__m128i>(), a);
            _mm_stream_si128(d.add(16).cast::<__m128i>(), b);
            _mm_stream_si128(d.add(32).cast::<__m128i>(), c);
            _mm_stream_si128(d.add(48).cast::<__m128i>(), e);
        }
        i += 64;
    }
    // SAFETY: the tail `i..n` is within the caller's ranges. The fence orders the streaming
    // stores (weakly ordered, not covered by Release) before every later store.
    unsafe {
        std::ptr::copy_nonoverlapping(src.add(i), dst.add(i), n - i);
        _mm_sfence();
    }
}

/// Copies `n` bytes from `src` to `dst` (a plain copy on this target).
///
/// # Safety
///
/// As the x86-64 version: `src` valid for reads and `dst` for writes of `n` bytes, not
/// overlapping, nobody else accessing `dst..dst + n` during the call.
#[cfg(not(target_arch = "x86_64"))]
pub(crate) unsafe fn copy_streaming(src: *const u8, dst: *mut u8, n: usize) {
    // SAFETY: as the caller vouches.
    unsafe { std::ptr::copy_nonoverlapping(src, dst, n) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streaming_copies_are_exact_at_every_length_and_alignment() {
        let lens = [
            0,
            1,
            15,
            16,
            17,
            63,
            64,
            65,
            127,
            1000,
            4096 + 33,
            STREAM_FROM + 7,
        ];
        for &n in &lens {
            for src_off in [0, 1, 8, 15] {
                for dst_off in [0, 3, 8, 16, 31] {
                    let src: Vec<u8> = (0..n + src_off).map(|i| (i * 7 % 253) as u8 + 1).collect();
                    let mut dst = vec![0u8; n + dst_off + 64];
                    // SAFETY: both ranges are in bounds of distinct vectors.
                    unsafe {
                        copy_streaming(src.as_ptr().add(src_off), dst.as_mut_ptr().add(dst_off), n)
                    };
                    assert_eq!(&dst[dst_off..dst_off + n], &src[src_off..], "n {n}");
                    assert!(dst[..dst_off].iter().all(|&b| b == 0), "before, n {n}");
                    assert!(dst[dst_off + n..].iter().all(|&b| b == 0), "after, n {n}");
                }
            }
        }
    }
}
