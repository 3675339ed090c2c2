//! Non-temporal copy and fill. The body of a large range goes out with streaming
//! stores (AVX-512, AVX2 or SSE2, as configured) that need only a fence to be ordered;
//! the unaligned head and tail are written with ordinary stores and reported back to the
//! caller, which writes them back (or marks them dirty). Below the threshold, or with
//! `DAXPMEM_NO_MOVNT=1`, everything is written with ordinary stores and reported: by
//! the C library's memcpy/memmove/memset, or, with `PMEM_F_MEM_NOFLUSH` (`Config::mov`),
//! from one block to `MOV_MAX` bytes by the AVX-512 or AVX2 loops here, as PMDK does.

use crate::cpu::{Config, Nt};
use core::arch::x86_64::*;

/// Alignment of the streaming body: one 64-byte block, whatever the vector width.
const BLOCK: usize = 64;

/// Byte ranges written with ordinary stores: they still need a write-back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Temporal {
    /// (address, length) pairs; a zero length means nothing.
    pub ranges: [(usize, usize); 2],
}

impl Temporal {
    fn all(addr: usize, len: usize) -> Self {
        Temporal {
            ranges: [(addr, len), (0, 0)],
        }
    }
    pub fn iter(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.ranges.iter().copied().filter(|r| r.1 > 0)
    }
}

/// Split `[dst, dst+len)` into an unaligned head, a 64-byte-aligned body and a tail.
fn split(dst: usize, len: usize) -> (usize, usize, usize) {
    let head = ((BLOCK - dst % BLOCK) % BLOCK).min(len);
    let body = (len - head) / BLOCK * BLOCK;
    (head, body, len - head - body)
}

fn uses_nt(c: &Config, len: usize) -> bool {
    c.nt != Nt::None && len >= c.movnt_threshold && len >= BLOCK
}

/// Ordinary-store copies and fills from one block up to this many bytes use the vector
/// loops below when `Config::mov` says so (AVX-512 or AVX2, as `Config::vec`);
/// shorter and longer ones, and the others, the C library's. Measured (2-vCPU Xeon VM, glibc 2.36, 2026-12-03): glibc copies and fills
/// 4 KiB with `rep movsb`/`rep stosb`, ~1.4x the time of PMDK's vector loops.
const MOV_MAX: usize = 32 << 10;

/// Whether `len` bytes of ordinary stores go through the vector loops.
#[inline(always)]
fn uses_mov(c: &Config, len: usize) -> bool {
    c.mov && (BLOCK..=MOV_MAX).contains(&len)
}

/// Fill with ordinary stores.
///
/// # Safety
/// As for `fill`.
#[inline(always)]
unsafe fn fill_temporal(dst: *mut u8, val: u8, len: usize, c: &Config) {
    // SAFETY: the caller's range; the loops need len >= BLOCK (uses_mov).
    unsafe {
        if uses_mov(c, len) {
            if c.vec == Nt::Avx512 {
                mov_fill_avx512(dst, val, len)
            } else {
                mov_fill_avx2(dst, val, len)
            }
        } else {
            dst.write_bytes(val, len)
        }
    }
}

/// Copy with ordinary stores, forward: the ranges are disjoint or dst < src.
///
/// # Safety
/// As for `copy_fwd`.
#[inline(always)]
unsafe fn copy_temporal_fwd(dst: *mut u8, src: *const u8, len: usize, c: &Config) {
    // SAFETY: the caller's ranges; the loops need len >= BLOCK (uses_mov).
    unsafe {
        if uses_mov(c, len) {
            if c.vec == Nt::Avx512 {
                mov_fwd_avx512(dst, src, len)
            } else {
                mov_fwd_avx2(dst, src, len)
            }
        } else {
            core::ptr::copy(src, dst, len)
        }
    }
}

/// Copy with ordinary stores, backward: dst > src, overlapping.
///
/// # Safety
/// Both ranges are the caller's and do not wrap.
#[inline(always)]
unsafe fn copy_temporal_bwd(dst: *mut u8, src: *const u8, len: usize, c: &Config) {
    // SAFETY: the caller's ranges; the loops need len >= BLOCK (uses_mov).
    unsafe {
        if uses_mov(c, len) {
            if c.vec == Nt::Avx512 {
                mov_bwd_avx512(dst, src, len)
            } else {
                mov_bwd_avx2(dst, src, len)
            }
        } else {
            core::ptr::copy(src, dst, len)
        }
    }
}

/// Fill `[dst, dst+len)` with `val`.
///
/// # Safety
/// The range is writable memory of the caller's and `dst + len` does not wrap.
#[inline(always)]
pub unsafe fn fill(dst: *mut u8, val: u8, len: usize, c: &Config) -> Temporal {
    let d = dst as usize;
    if !uses_nt(c, len) {
        // SAFETY: the caller's range.
        unsafe { fill_temporal(dst, val, len, c) };
        return Temporal::all(d, len);
    }
    let (head, body, tail) = split(d, len);
    // SAFETY: head, body and tail partition the caller's range; the body is 64-byte aligned.
    unsafe {
        if head > 0 {
            dst.write_bytes(val, head);
        }
        let b = dst.add(head);
        match c.nt {
            Nt::Avx512 => fill_avx512(b, val, body),
            Nt::Avx2 => fill_avx2(b, val, body),
            _ => fill_sse2(b, val, body),
        }
        if tail > 0 {
            b.add(body).write_bytes(val, tail);
        }
    }
    Temporal {
        ranges: [(d, head), (d + head + body, tail)],
    }
}

/// Copy `len` bytes from `src` to `dst`; the ranges must not overlap.
///
/// # Safety
/// Both ranges are the caller's, do not overlap, and do not wrap.
#[cfg_attr(not(feature = "seam"), allow(dead_code))] // only the tests use it
pub unsafe fn copy(dst: *mut u8, src: *const u8, len: usize, c: &Config) -> Temporal {
    let d = dst as usize;
    if !uses_nt(c, len) {
        // SAFETY: the caller's non-overlapping ranges (the forward loop allows them).
        unsafe { copy_temporal_fwd(dst, src, len, c) };
        return Temporal::all(d, len);
    }
    let (head, body, tail) = split(d, len);
    // SAFETY: as for fill; src advances with dst.
    unsafe {
        core::ptr::copy_nonoverlapping(src, dst, head);
        let (bd, bs) = (dst.add(head), src.add(head));
        match c.nt {
            Nt::Avx512 => copy_avx512(bd, bs, body),
            Nt::Avx2 => copy_avx2(bd, bs, body),
            _ => copy_sse2(bd, bs, body),
        }
        core::ptr::copy_nonoverlapping(bs.add(body), bd.add(body), tail);
    }
    Temporal {
        ranges: [(d, head), (d + head + body, tail)],
    }
}

/// memmove semantics: overlapping ranges are handled. Forward-safe overlaps and
/// disjoint ranges take the streaming path; a backward overlap uses an ordinary move.
///
/// # Safety
/// Both ranges are the caller's and do not wrap.
#[inline(always)]
pub unsafe fn move_(dst: *mut u8, src: *const u8, len: usize, c: &Config) -> Temporal {
    let (d, s) = (dst as usize, src as usize);
    let disjoint = d + len <= s || s + len <= d;
    // A forward copy is safe when the destination starts below the source; the
    // streaming loops read a whole block before storing it, so that holds per block.
    if disjoint || (d < s && s - d >= BLOCK) {
        // SAFETY: disjoint, or forward-safe block by block.
        return unsafe { copy_fwd(dst, src, len, c) };
    }
    // SAFETY: an overlap with dst > src (backward), or dst below src by less than a block
    // (which ptr::copy handles).
    unsafe {
        if d > s {
            copy_temporal_bwd(dst, src, len, c)
        } else {
            core::ptr::copy(src, dst, len)
        }
    }
    Temporal::all(d, len)
}

/// `copy`, allowed to overlap when dst < src by at least a block.
#[inline(always)]
unsafe fn copy_fwd(dst: *mut u8, src: *const u8, len: usize, c: &Config) -> Temporal {
    let d = dst as usize;
    if !uses_nt(c, len) {
        // SAFETY: disjoint, or dst below src by a block or more: the forward loop (and
        // ptr::copy) handle that.
        unsafe { copy_temporal_fwd(dst, src, len, c) };
        return Temporal::all(d, len);
    }
    let (head, body, tail) = split(d, len);
    // SAFETY: as for copy; head and tail use ptr::copy, which tolerates overlap, and the
    // body loops load each block before storing it, moving forward with dst < src.
    unsafe {
        if head > 0 {
            core::ptr::copy(src, dst, head);
        }
        let (bd, bs) = (dst.add(head), src.add(head));
        match c.nt {
            Nt::Avx512 => copy_avx512(bd, bs, body),
            Nt::Avx2 => copy_avx2(bd, bs, body),
            _ => copy_sse2(bd, bs, body),
        }
        if tail > 0 {
            core::ptr::copy(bs.add(body), bd.add(body), tail);
        }
    }
    Temporal {
        ranges: [(d, head), (d + head + body, tail)],
    }
}

/// The ordinary-store (temporal) loops, for `BLOCK <= len`, in AVX-512 or AVX2 (`$w`
/// bytes a vector, eight a round). The first and the last block are loaded before
/// anything is stored and stored last, unaligned (they may overlap the body and each
/// other); the body between them goes in aligned vectors. Forward: every round loads
/// its eight vectors before storing them, ascending, so a destination below the source
/// (any distance) only overwrites source bytes already loaded; backward the mirror,
/// descending, for a destination above the source.
macro_rules! temporal_loops {
    ($feat:literal, $fwd:ident, $bwd:ident, $fill:ident, $zero:ident, $w:expr,
     $loadu:ident, $storeu:ident, $store:ident, $set1:ident, $small:ident) => {
        /// `BLOCK..=4 * BLOCK` bytes, any overlap: one or two blocks from each end,
        /// everything loaded before anything is stored.
        #[target_feature(enable = $feat)]
        #[inline]
        unsafe fn $small(dst: *mut u8, src: *const u8, len: usize) {
            const N: usize = BLOCK / $w;
            // SAFETY: BLOCK <= len <= 4 * BLOCK; every access lies in [0, len).
            unsafe {
                if len <= 2 * BLOCK {
                    let mut head = [$zero(); N];
                    let mut tail = [$zero(); N];
                    for j in 0..N {
                        head[j] = $loadu(src.add(j * $w).cast());
                        tail[j] = $loadu(src.add(len - BLOCK + j * $w).cast());
                    }
                    for j in 0..N {
                        $storeu(dst.add(j * $w).cast(), head[j]);
                        $storeu(dst.add(len - BLOCK + j * $w).cast(), tail[j]);
                    }
                } else {
                    let mut head = [$zero(); 2 * N];
                    let mut tail = [$zero(); 2 * N];
                    for j in 0..2 * N {
                        head[j] = $loadu(src.add(j * $w).cast());
                        tail[j] = $loadu(src.add(len - 2 * BLOCK + j * $w).cast());
                    }
                    for j in 0..2 * N {
                        $storeu(dst.add(j * $w).cast(), head[j]);
                        $storeu(dst.add(len - 2 * BLOCK + j * $w).cast(), tail[j]);
                    }
                }
            }
        }

        #[target_feature(enable = $feat)]
        unsafe fn $fwd(dst: *mut u8, src: *const u8, len: usize) {
            const N: usize = BLOCK / $w;
            // SAFETY: len >= BLOCK; every access lies in [0, len) of the caller's
            // ranges; the aligned stores are at dst-aligned offsets.
            unsafe {
                if len <= 4 * BLOCK {
                    return $small(dst, src, len);
                }
                let mut head = [$zero(); N];
                let mut tail = [$zero(); N];
                for j in 0..N {
                    head[j] = $loadu(src.add(j * $w).cast());
                    tail[j] = $loadu(src.add(len - BLOCK + j * $w).cast());
                }
                // The first aligned offset at or above dst (the head block covers below).
                let mut i = (BLOCK - dst as usize % BLOCK) % BLOCK;
                while i + 8 * $w <= len {
                    let mut v = [$zero(); 8];
                    for j in 0..8 {
                        v[j] = $loadu(src.add(i + j * $w).cast());
                    }
                    for j in 0..8 {
                        $store(dst.add(i + j * $w).cast(), v[j]);
                    }
                    i += 8 * $w;
                }
                while i + $w <= len {
                    let a = $loadu(src.add(i).cast());
                    $store(dst.add(i).cast(), a);
                    i += $w;
                }
                for j in 0..N {
                    $storeu(dst.add(len - BLOCK + j * $w).cast(), tail[j]);
                    $storeu(dst.add(j * $w).cast(), head[j]);
                }
            }
        }

        #[target_feature(enable = $feat)]
        unsafe fn $bwd(dst: *mut u8, src: *const u8, len: usize) {
            const N: usize = BLOCK / $w;
            // SAFETY: as for the forward loop, mirrored.
            unsafe {
                if len <= 4 * BLOCK {
                    return $small(dst, src, len);
                }
                let mut head = [$zero(); N];
                let mut tail = [$zero(); N];
                for j in 0..N {
                    head[j] = $loadu(src.add(j * $w).cast());
                    tail[j] = $loadu(src.add(len - BLOCK + j * $w).cast());
                }
                // The last aligned end at or below dst + len (the tail block covers above).
                let mut i = len - (dst as usize + len) % BLOCK;
                while i >= 8 * $w {
                    i -= 8 * $w;
                    let mut v = [$zero(); 8];
                    for j in 0..8 {
                        v[j] = $loadu(src.add(i + j * $w).cast());
                    }
                    for j in 0..8 {
                        $store(dst.add(i + j * $w).cast(), v[j]);
                    }
                }
                while i >= $w {
                    i -= $w;
                    let a = $loadu(src.add(i).cast());
                    $store(dst.add(i).cast(), a);
                }
                for j in 0..N {
                    $storeu(dst.add(j * $w).cast(), head[j]);
                    $storeu(dst.add(len - BLOCK + j * $w).cast(), tail[j]);
                }
            }
        }

        #[target_feature(enable = $feat)]
        unsafe fn $fill(dst: *mut u8, val: u8, len: usize) {
            const N: usize = BLOCK / $w;
            // SAFETY: len >= BLOCK; every store lies in [0, len) of the caller's range.
            unsafe {
                let v = $set1(val as i8);
                if len <= 4 * BLOCK {
                    // One or two unaligned blocks from each end, overlapping.
                    for j in 0..N {
                        $storeu(dst.add(j * $w).cast(), v);
                        $storeu(dst.add(len - BLOCK + j * $w).cast(), v);
                    }
                    if len > 2 * BLOCK {
                        for j in 0..N {
                            $storeu(dst.add(BLOCK + j * $w).cast(), v);
                            $storeu(dst.add(len - 2 * BLOCK + j * $w).cast(), v);
                        }
                    }
                    return;
                }
                for j in 0..N {
                    $storeu(dst.add(j * $w).cast(), v);
                    $storeu(dst.add(len - BLOCK + j * $w).cast(), v);
                }
                let mut i = (BLOCK - dst as usize % BLOCK) % BLOCK;
                while i + 8 * $w <= len {
                    for j in 0..8 {
                        $store(dst.add(i + j * $w).cast(), v);
                    }
                    i += 8 * $w;
                }
                while i + $w <= len {
                    $store(dst.add(i).cast(), v);
                    i += $w;
                }
            }
        }
    };
}

temporal_loops!(
    "avx512f",
    mov_fwd_avx512,
    mov_bwd_avx512,
    mov_fill_avx512,
    _mm512_setzero_si512,
    64,
    _mm512_loadu_si512,
    _mm512_storeu_si512,
    _mm512_store_si512,
    _mm512_set1_epi8,
    mov_small_avx512
);
temporal_loops!(
    "avx2",
    mov_fwd_avx2,
    mov_bwd_avx2,
    mov_fill_avx2,
    _mm256_setzero_si256,
    32,
    _mm256_loadu_si256,
    _mm256_storeu_si256,
    _mm256_store_si256,
    _mm256_set1_epi8,
    mov_small_avx2
);

#[target_feature(enable = "avx512f")]
unsafe fn fill_avx512(dst: *mut u8, val: u8, len: usize) {
    let v = _mm512_set1_epi8(val as i8);
    let mut p = dst;
    let end = dst.wrapping_add(len);
    while p < end {
        // SAFETY: p is 64-byte aligned inside the caller's body.
        unsafe { _mm512_stream_si512(p.cast(), v) };
        p = p.wrapping_add(64);
    }
}

#[target_feature(enable = "avx2")]
unsafe fn fill_avx2(dst: *mut u8, val: u8, len: usize) {
    let v = _mm256_set1_epi8(val as i8);
    let mut p = dst;
    let end = dst.wrapping_add(len);
    while p < end {
        // SAFETY: p is 64-byte aligned inside the caller's body; two 32-byte halves.
        unsafe {
            _mm256_stream_si256(p.cast(), v);
            _mm256_stream_si256(p.add(32).cast(), v);
        }
        p = p.wrapping_add(64);
    }
}

#[target_feature(enable = "sse2")]
unsafe fn fill_sse2(dst: *mut u8, val: u8, len: usize) {
    let v = _mm_set1_epi8(val as i8);
    let mut p = dst;
    let end = dst.wrapping_add(len);
    while p < end {
        // SAFETY: p is 64-byte aligned inside the caller's body; four 16-byte quarters.
        unsafe {
            _mm_stream_si128(p.cast(), v);
            _mm_stream_si128(p.add(16).cast(), v);
            _mm_stream_si128(p.add(32).cast(), v);
            _mm_stream_si128(p.add(48).cast(), v);
        }
        p = p.wrapping_add(64);
    }
}

#[target_feature(enable = "avx512f")]
unsafe fn copy_avx512(dst: *mut u8, src: *const u8, len: usize) {
    let mut i = 0;
    // Four blocks per round, all loaded before any is stored.
    while i + 256 <= len {
        // SAFETY: i..i+256 lies inside the caller's body; dst is 64-byte aligned.
        unsafe {
            let a = _mm512_loadu_si512(src.add(i).cast());
            let b = _mm512_loadu_si512(src.add(i + 64).cast());
            let c = _mm512_loadu_si512(src.add(i + 128).cast());
            let d = _mm512_loadu_si512(src.add(i + 192).cast());
            _mm512_stream_si512(dst.add(i).cast(), a);
            _mm512_stream_si512(dst.add(i + 64).cast(), b);
            _mm512_stream_si512(dst.add(i + 128).cast(), c);
            _mm512_stream_si512(dst.add(i + 192).cast(), d);
        }
        i += 256;
    }
    while i < len {
        // SAFETY: one block inside the body.
        unsafe {
            let a = _mm512_loadu_si512(src.add(i).cast());
            _mm512_stream_si512(dst.add(i).cast(), a);
        }
        i += 64;
    }
}

#[target_feature(enable = "avx2")]
unsafe fn copy_avx2(dst: *mut u8, src: *const u8, len: usize) {
    let mut i = 0;
    while i < len {
        // SAFETY: one 64-byte block inside the body, loaded before it is stored.
        unsafe {
            let a = _mm256_loadu_si256(src.add(i).cast());
            let b = _mm256_loadu_si256(src.add(i + 32).cast());
            _mm256_stream_si256(dst.add(i).cast(), a);
            _mm256_stream_si256(dst.add(i + 32).cast(), b);
        }
        i += 64;
    }
}

#[target_feature(enable = "sse2")]
unsafe fn copy_sse2(dst: *mut u8, src: *const u8, len: usize) {
    let mut i = 0;
    while i < len {
        // SAFETY: one 64-byte block inside the body, loaded before it is stored.
        unsafe {
            let a = _mm_loadu_si128(src.add(i).cast());
            let b = _mm_loadu_si128(src.add(i + 16).cast());
            let c = _mm_loadu_si128(src.add(i + 32).cast());
            let d = _mm_loadu_si128(src.add(i + 48).cast());
            _mm_stream_si128(dst.add(i).cast(), a);
            _mm_stream_si128(dst.add(i + 16).cast(), b);
            _mm_stream_si128(dst.add(i + 32).cast(), c);
            _mm_stream_si128(dst.add(i + 48).cast(), d);
        }
        i += 64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::{self, Features};

    fn configs() -> Vec<Config> {
        let f = Features::probe();
        let base = cpu::detect(&|_| None, &f, false);
        let mut v = vec![];
        for nt in [Nt::Avx512, Nt::Avx2, Nt::Sse2, Nt::None] {
            let ok = match nt {
                Nt::Avx512 => f.avx512f,
                Nt::Avx2 => f.avx2,
                _ => true,
            };
            if ok {
                for thr in [0, 256] {
                    // The temporal loops' widths (Sse2: the C library's).
                    for vec in [Nt::Avx512, Nt::Avx2, Nt::Sse2] {
                        if (vec == Nt::Avx512 && !f.avx512f) || (vec == Nt::Avx2 && !f.avx2) {
                            continue;
                        }
                        for mov in [false, vec != Nt::Sse2] {
                            v.push(Config {
                                nt,
                                vec,
                                mov,
                                movnt_threshold: thr,
                                ..base
                            });
                        }
                    }
                }
            }
        }
        v
    }

    #[test]
    fn fill_and_copy_every_alignment() {
        let mut buf = vec![0u8; 3 * 4096 + 512];
        let src: Vec<u8> = (0..buf.len()).map(|i| (i * 7 + 3) as u8).collect();
        for c in configs() {
            for off in 0..64 {
                for len in [
                    0,
                    1,
                    63,
                    64,
                    65,
                    127,
                    200,
                    256,
                    300,
                    1000,
                    4096,
                    4096 + 77,
                    3 * 4096,
                ] {
                    buf.fill(0xAA);
                    let base = buf.as_mut_ptr() as usize;
                    let start = base.next_multiple_of(64) + off;
                    let p = start as *mut u8;
                    // SAFETY: inside buf.
                    let t = unsafe { fill(p, 0x5C, len, &c) };
                    let covered: usize = t.iter().map(|r| r.1).sum();
                    assert!(covered <= len);
                    let o = start - base;
                    assert!(buf[..o].iter().all(|&b| b == 0xAA));
                    assert!(
                        buf[o..o + len].iter().all(|&b| b == 0x5C),
                        "{c:?} {off} {len}"
                    );
                    assert!(buf[o + len..].iter().all(|&b| b == 0xAA));

                    buf.fill(0xAA);
                    // SAFETY: inside buf and src, disjoint.
                    unsafe { copy(p, src.as_ptr().add(off), len, &c) };
                    assert!(buf[..o].iter().all(|&b| b == 0xAA));
                    assert_eq!(&buf[o..o + len], &src[off..off + len], "{c:?} {off} {len}");
                    assert!(buf[o + len..].iter().all(|&b| b == 0xAA));
                }
            }
        }
    }

    #[test]
    fn move_handles_overlap_both_ways() {
        for c in configs() {
            for (d, s) in [
                (0usize, 100usize),
                (100, 0),
                (0, 64),
                (64, 0),
                (5, 9),
                (9, 5),
                (0, 3000),
                (3000, 0),
                (7, 70),
                (70, 7),
                (64, 128),
                (128, 64),
                (1, 0),
                (0, 1),
            ] {
                for len in [
                    1, 63, 64, 65, 100, 127, 128, 200, 256, 300, 1000, 2000, 2999,
                ] {
                    for base in [0, 13, 40] {
                        let mut buf: Vec<u8> = (0..6400).map(|i| (i % 251) as u8).collect();
                        let mut want = buf.clone();
                        let (d, s) = (d + base, s + base);
                        want.copy_within(s..s + len, d);
                        let p = buf.as_mut_ptr();
                        // SAFETY: both ranges inside buf.
                        unsafe { move_(p.add(d), p.add(s), len, &c) };
                        assert_eq!(buf, want, "{c:?} d={d} s={s} len={len}");
                    }
                }
            }
        }
    }

    #[test]
    fn temporal_ranges_are_head_and_tail() {
        let c = Config {
            nt: Nt::Sse2,
            movnt_threshold: 0,
            ..*cpu::config()
        };
        let mut buf = vec![0u8; 4096];
        let base = (buf.as_mut_ptr() as usize).next_multiple_of(64);
        // SAFETY: inside buf.
        let t = unsafe { fill((base + 10) as *mut u8, 1, 200, &c) };
        assert_eq!(t.ranges, [(base + 10, 54), (base + 192, 18)]);
    }
}
