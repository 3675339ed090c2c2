//! The dirty index: one bit per cache line, with summary levels above it.
//!
//! Level 0 holds a bit per line; each bit of level k+1 says "word w of level k may be
//! non-zero". All levels live in one anonymous `MAP_NORESERVE` region, so the kernel
//! backs a 4 KiB page of level 0 (one 2 MiB chunk of the mapping at 64-byte lines) only
//! when a line in that chunk is first marked: memory follows what was touched, not the
//! mapping size. A sync descends from the top word and visits only summary bits that
//! are set, so a clean 1 GiB mapping costs one load and a sparse one costs in
//! proportion to the dirty words.
//!
//! Protocol (all atomics SeqCst; the proofs are in the comments of `mark` and `take`):
//! - `mark` sets level 0, then each level above, bottom-up. Lock-free; any number of
//!   threads; a bit seen already set is not written again (a load, not an RMW).
//! - `take` (one at a time per index: the caller holds the mapping's sync lock) clears
//!   a summary bit before it reads the word below, and sets it again if anything is
//!   left there afterwards. So a mark that completed before `take` began is taken by
//!   it, and a mark racing with it is either taken or left, with its summary bit set,
//!   for the next one: never lost.
//! - Everything here is async-signal-safe except `new`/`drop` (mmap/munmap are
//!   syscalls, but the tracking signal handler only marks).

use std::sync::atomic::{
    AtomicU64,
    Ordering::{Relaxed, SeqCst},
};

/// A level: `nbits` bits in `words`.
struct Level {
    words: *const AtomicU64,
    nwords: usize,
    nbits: usize,
}

pub struct DirtyIndex {
    levels: Vec<Level>,
    region: *mut libc::c_void,
    region_len: usize,
    /// Lines set at level 0, in stripes on their own cache lines (by level-0 word, so
    /// threads marking different parts of a mapping do not share one): `dirty_lines`
    /// reads their sum in a few loads instead of walking the index. Each stripe wraps:
    /// a take may subtract a line before the mark that set it has added it.
    counts: [Stripe; STRIPES],
}

/// A count on a cache line of its own.
#[repr(align(64))]
#[derive(Default)]
struct Stripe(AtomicU64);

const STRIPES: usize = 8;

/// The stripe counting level-0 word `w` (runs of 8 words, 512 lines, share one).
#[inline(always)]
fn stripe_of(w: usize) -> usize {
    (w >> 3) % STRIPES
}

// SAFETY: the region is only accessed through atomics; the pointers are stable for the
// index's lifetime.
unsafe impl Send for DirtyIndex {}
// SAFETY: as above.
unsafe impl Sync for DirtyIndex {}

#[inline]
fn mask_of(lo: usize, hi: usize) -> u64 {
    // Bits lo..hi (hi <= 64, lo < hi) of a word.
    let top = if hi >= 64 { !0u64 } else { (1u64 << hi) - 1 };
    top & !((1u64 << lo) - 1)
}

/// The largest index backed by huge pages: 64 MiB, mappings up to 32 GiB at 64-byte
/// lines.
const HUGE_INDEX_MAX: usize = 64 << 20;

impl DirtyIndex {
    /// An index of `nbits` lines (any number, 0 allowed).
    pub fn new(nbits: usize) -> std::io::Result<DirtyIndex> {
        let mut sizes = vec![];
        let mut n = nbits.max(1);
        loop {
            let w = n.div_ceil(64);
            sizes.push((n, w));
            if w == 1 {
                break;
            }
            n = w;
        }
        let total_words: usize = sizes.iter().map(|s| s.1).sum();
        let region_len = (total_words * 8).div_ceil(4096) * 4096;
        let region = crate::sys::anon_region(region_len)?;
        if (2 << 20..=HUGE_INDEX_MAX).contains(&region_len) {
            // Random marks over a large mapping touch one level-0 page per 2 MiB of data:
            // with 4 KiB pages each costs a TLB miss (measured: 490 -> 94 ns per random
            // mark on a 1 GiB mapping). Huge pages back the index in 2 MiB units, still
            // only where something was marked. Not past HUGE_INDEX_MAX: there scattered
            // marks would each fill a 2 MiB page (a 1 TiB mapping: one per GiB touched).
            // Advice only: failure changes nothing.
            // SAFETY: advice on our own fresh region.
            let _ =
                unsafe { crate::sys::madvise(region as usize, region_len, libc::MADV_HUGEPAGE) };
        }
        let mut levels = vec![];
        let mut off = 0;
        for (nbits, nwords) in sizes {
            levels.push(Level {
                // SAFETY: off + nwords <= total_words, inside the region; zero-filled
                // memory is a valid AtomicU64 array.
                words: unsafe { (region as *const AtomicU64).add(off) },
                nwords,
                nbits,
            });
            off += nwords;
        }
        Ok(DirtyIndex {
            levels,
            region,
            region_len,
            counts: Default::default(),
        })
    }

    /// Number of lines indexed.
    pub fn len(&self) -> usize {
        self.levels[0].nbits
    }

    #[cfg_attr(not(feature = "seam"), allow(dead_code))] // only the tests use it
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[inline(always)]
    fn word(&self, level: usize, i: usize) -> &AtomicU64 {
        let l = &self.levels[level];
        debug_assert!(i < l.nwords);
        // SAFETY: i < nwords of this level, inside the region, which lives as long as self.
        unsafe { &*l.words.add(i) }
    }

    /// Set bits [lo, hi) of a level; returns the range of words touched.
    #[inline(always)]
    fn set_bits(&self, level: usize, lo: usize, hi: usize) -> (usize, usize) {
        let (w0, w1) = (lo / 64, (hi - 1) / 64);
        for w in w0..=w1 {
            let b0 = if w == w0 { lo % 64 } else { 0 };
            let b1 = if w == w1 { (hi - 1) % 64 + 1 } else { 64 };
            let m = mask_of(b0, b1);
            let word = self.word(level, w);
            // A bit seen set needs no write: whoever clears it does so after this load,
            // and therefore after our earlier writes (see the module comment).
            if word.load(SeqCst) & m != m {
                let old = word.fetch_or(m, SeqCst);
                if level == 0 {
                    let new = (m & !old).count_ones() as u64;
                    self.counts[stripe_of(w)].0.fetch_add(new, Relaxed);
                }
            }
        }
        (w0, w1 + 1)
    }

    /// Mark lines [lo, hi) dirty; lines past the index are ignored (never written: the
    /// bound is checked in release builds too). Lock-free and async-signal-safe.
    #[inline]
    pub fn mark(&self, lo: usize, hi: usize) {
        let (mut lo, mut hi) = (lo, hi.min(self.len()));
        if lo >= hi {
            return;
        }
        // Bottom-up: a summary bit is set only after the bits below it.
        for level in 0..self.levels.len() {
            let (a, b) = self.set_bits(level, lo, hi);
            lo = a;
            hi = b;
        }
    }

    /// Take (clear and report) the dirty lines in [lo, hi), in ascending order, as runs
    /// `f(first_line, count)`. Only one `take` at a time per index.
    pub fn take(&self, lo: usize, hi: usize, f: &mut dyn FnMut(usize, usize)) {
        if lo >= hi {
            return;
        }
        let mut run = (0usize, 0usize);
        let top = self.levels.len() - 1;
        let mut taken = [0u64; STRIPES];
        self.take_word(top, 0, lo, hi, &mut |first, n| {
            // Runs come from one level-0 word each (split at word ends below).
            taken[stripe_of(first / 64)] += n as u64;
            if run.1 > 0 && run.0 + run.1 == first {
                run.1 += n;
            } else {
                if run.1 > 0 {
                    f(run.0, run.1);
                }
                run = (first, n);
            }
        });
        if run.1 > 0 {
            f(run.0, run.1);
        }
        // One subtraction per stripe, after every swap (a locked instruction per word
        // would cost as much again as the take).
        for (c, n) in self.counts.iter().zip(taken) {
            if n != 0 {
                c.0.fetch_sub(n, Relaxed);
            }
        }
    }

    /// In a forked child (only this thread exists): the stripes' counts recomputed from
    /// the bits. A mark or a take another thread was making at the fork may have
    /// changed its bits and not yet its count, which would then stay off in the child
    /// (a whole sync that returned 0 left `dirty_lines` at 17 000-190 000 in a hostile
    /// test). Visits only words below set summary bits: time in proportion to the dirty
    /// words. Async-signal-safe.
    pub fn recount_after_fork(&self) {
        let mut counts = [0u64; STRIPES];
        self.visit(self.levels.len() - 1, 0, 0, self.len(), &mut |l, _| {
            counts[stripe_of(l / 64)] += 1;
        });
        for (c, n) in self.counts.iter().zip(counts) {
            c.0.store(n, Relaxed);
        }
    }

    /// The lines set in the whole index, from the stripes' counts: a few loads,
    /// whatever the index's size. Exact when no mark or take runs at the same time.
    pub fn dirty_lines(&self) -> u64 {
        let n = self
            .counts
            .iter()
            .fold(0u64, |a, c| a.wrapping_add(c.0.load(Relaxed)));
        // A take that subtracted before the racing mark added: never report "negative".
        if n > self.len() as u64 {
            0
        } else {
            n
        }
    }

    /// The line range [lo, hi) expressed at `level`: the bits of that level whose
    /// subtrees overlap it.
    #[inline]
    fn range_at(level: usize, lo: usize, hi: usize) -> (usize, usize) {
        let shift = 6 * level as u32;
        (lo >> shift, ((hi - 1) >> shift) + 1)
    }

    /// Take from word `w` of `level`, restricted to lines [lo, hi).
    /// Returns whether the word is non-zero afterwards.
    fn take_word(
        &self,
        level: usize,
        w: usize,
        lo: usize,
        hi: usize,
        emit: &mut dyn FnMut(usize, usize),
    ) -> bool {
        let word = self.word(level, w);
        let cur = word.load(SeqCst);
        if cur == 0 {
            return false;
        }
        let (blo, bhi) = Self::range_at(level, lo, hi);
        let base = w * 64;
        let b0 = blo.saturating_sub(base).min(64);
        let b1 = bhi.saturating_sub(base).min(64);
        if b0 >= b1 {
            return true;
        }
        let m = mask_of(b0, b1);
        if cur & m == 0 {
            return true;
        }
        // Clear first, then look below: a mark that sets the word below after our look
        // sets this bit again after our clear.
        let taken = if m == !0 {
            word.swap(0, SeqCst)
        } else {
            word.fetch_and(!m, SeqCst) & m
        };
        if level == 0 {
            let mut bits = taken;
            while bits != 0 {
                let s = bits.trailing_zeros() as usize;
                let n = (bits >> s).trailing_ones() as usize;
                emit(base + s, n);
                if s + n >= 64 {
                    break;
                }
                bits &= !mask_of(s, s + n);
            }
            return word.load(SeqCst) != 0;
        }
        let mut bits = taken;
        let mut again = 0u64;
        while bits != 0 {
            let b = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            if self.take_word(level - 1, base + b, lo, hi, emit) {
                again |= 1 << b;
            }
        }
        if again != 0 {
            word.fetch_or(again, SeqCst);
        }
        word.load(SeqCst) != 0
    }

    /// Count the dirty lines in [lo, hi) without clearing anything.
    pub fn count(&self, lo: usize, hi: usize) -> u64 {
        let mut n = 0u64;
        self.visit(self.levels.len() - 1, 0, lo, hi, &mut |_, c| n += c as u64);
        n
    }

    /// Whether any line in [lo, hi) is dirty.
    #[cfg_attr(not(feature = "seam"), allow(dead_code))] // only the tests use it
    pub fn any(&self, lo: usize, hi: usize) -> bool {
        lo < hi && self.count(lo, hi) > 0
    }

    fn visit(&self, level: usize, w: usize, lo: usize, hi: usize, f: &mut dyn FnMut(usize, usize)) {
        if lo >= hi {
            return;
        }
        let cur = self.word(level, w).load(SeqCst);
        let (blo, bhi) = Self::range_at(level, lo, hi);
        let base = w * 64;
        let b0 = blo.saturating_sub(base).min(64);
        let b1 = bhi.saturating_sub(base).min(64);
        if b0 >= b1 {
            return;
        }
        let mut bits = cur & mask_of(b0, b1);
        while bits != 0 {
            let b = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            if level == 0 {
                f(base + b, 1);
            } else {
                self.visit(level - 1, base + b, lo, hi, f);
            }
        }
    }

    /// Drop (clear without reporting) the dirty lines in [lo, hi).
    pub fn clear(&self, lo: usize, hi: usize) {
        self.take(lo, hi, &mut |_, _| {});
    }
}

impl Drop for DirtyIndex {
    fn drop(&mut self) {
        // SAFETY: the region was mapped by new() with this length and nothing else uses it.
        let _ = unsafe { crate::sys::munmap(self.region as usize, self.region_len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn take_all(d: &DirtyIndex, lo: usize, hi: usize) -> Vec<usize> {
        let mut v = vec![];
        d.take(lo, hi, &mut |f, n| v.extend(f..f + n));
        v
    }

    #[test]
    fn marks_past_the_end_write_nothing() {
        let d = DirtyIndex::new(100).unwrap();
        d.mark(90, 1 << 40);
        d.mark(200, 300);
        d.mark(5, 5);
        assert_eq!(take_all(&d, 0, usize::MAX), (90..100).collect::<Vec<_>>());
    }

    #[test]
    fn mark_take_roundtrip_various_sizes() {
        for n in [1usize, 63, 64, 65, 4095, 4096, 4097, 300_000] {
            let d = DirtyIndex::new(n).unwrap();
            assert!(take_all(&d, 0, n).is_empty());
            let pts: Vec<usize> = [0, n / 3, n / 2, n - 1].into_iter().collect();
            for &p in &pts {
                d.mark(p, p + 1);
            }
            let want: BTreeSet<usize> = pts.iter().copied().collect();
            assert_eq!(d.count(0, n) as usize, want.len());
            assert_eq!(d.dirty_lines() as usize, want.len());
            let got = take_all(&d, 0, n);
            assert_eq!(got, want.iter().copied().collect::<Vec<_>>());
            assert!(take_all(&d, 0, n).is_empty(), "taken twice");
            assert_eq!(d.count(0, n), 0);
            assert_eq!(d.dirty_lines(), 0);
        }
    }

    #[test]
    fn partial_take_leaves_the_rest_findable() {
        let n = 1 << 20;
        let d = DirtyIndex::new(n).unwrap();
        d.mark(10, 5000);
        d.mark(100_000, 100_001);
        d.mark(900_000, 900_100);
        assert_eq!(
            take_all(&d, 4000, 100_000),
            (4000..5000).collect::<Vec<_>>()
        );
        assert_eq!(d.count(0, n), 3990 + 1 + 100);
        let rest = take_all(&d, 0, n);
        let mut want: Vec<usize> = (10..4000).collect();
        want.push(100_000);
        want.extend(900_000..900_100);
        assert_eq!(rest, want);
    }

    #[test]
    fn random_against_a_model() {
        let n = 200_003;
        let d = DirtyIndex::new(n).unwrap();
        let mut model = vec![false; n];
        let mut s = 12345u64;
        let mut rnd = |m: usize| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s % m as u64) as usize
        };
        for _ in 0..20_000 {
            let lo = rnd(n);
            let hi = (lo + 1 + rnd(3000)).min(n);
            if rnd(3) == 0 {
                let got = take_all(&d, lo, hi);
                let want: Vec<usize> = (lo..hi).filter(|&i| model[i]).collect();
                assert_eq!(got, want);
                model[lo..hi].iter_mut().for_each(|b| *b = false);
            } else {
                d.mark(lo, hi);
                model[lo..hi].iter_mut().for_each(|b| *b = true);
            }
            if rnd(100) == 0 {
                let want = model.iter().filter(|&&b| b).count();
                assert_eq!(d.dirty_lines() as usize, want);
            }
        }
        let want: Vec<usize> = (0..n).filter(|&i| model[i]).collect();
        assert_eq!(take_all(&d, 0, n), want);
    }

    #[test]
    fn runs_are_coalesced_across_words() {
        let d = DirtyIndex::new(1000).unwrap();
        d.mark(60, 200);
        let mut runs = vec![];
        d.take(0, 1000, &mut |f, n| runs.push((f, n)));
        assert_eq!(runs, vec![(60, 140)]);
    }

    #[test]
    fn concurrent_marks_are_never_lost() {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        let n = 1 << 18;
        let d = Arc::new(DirtyIndex::new(n).unwrap());
        let seen: Arc<Vec<AtomicU64>> = Arc::new((0..n).map(|_| AtomicU64::new(0)).collect());
        let marked: Arc<Vec<AtomicU64>> = Arc::new((0..n).map(|_| AtomicU64::new(0)).collect());
        let stop = Arc::new(AtomicBool::new(false));
        let mut hs = vec![];
        for t in 0..2u64 {
            let (d, marked, stop) = (d.clone(), marked.clone(), stop.clone());
            hs.push(std::thread::spawn(move || {
                let mut s = 0x1234_5678u64 + t;
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) && i < 300_000 {
                    s ^= s << 13;
                    s ^= s >> 7;
                    s ^= s << 17;
                    let l = (s % n as u64) as usize;
                    i += 1;
                    // The "write": a sequence number, then the mark.
                    marked[l].store(i, SeqCst);
                    d.mark(l, l + 1);
                }
            }));
        }
        // The collector: everything it takes, it records as seen at that time.
        let collector = {
            let (d, seen, marked, stop) = (d.clone(), seen.clone(), marked.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    d.take(0, n, &mut |f, c| {
                        for l in f..f + c {
                            seen[l].store(marked[l].load(SeqCst), SeqCst);
                        }
                    });
                }
            })
        };
        for h in hs {
            h.join().unwrap();
        }
        stop.store(true, Ordering::Relaxed);
        collector.join().unwrap();
        // A final take after the writers stopped must leave the shadow equal to memory.
        d.take(0, n, &mut |f, c| {
            for l in f..f + c {
                seen[l].store(marked[l].load(SeqCst), SeqCst);
            }
        });
        let lost = (0..n)
            .filter(|&l| seen[l].load(SeqCst) != marked[l].load(SeqCst))
            .count();
        assert_eq!(lost, 0);
    }
}
