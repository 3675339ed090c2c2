//! Putting a sync's dirty runs in address order, each line once.
//!
//! A sync has two sources: the mark log's entries (`marklog::key`: any order, may
//! overlap) and the index's runs (ascending, disjoint). `for_each_run` hands the union
//! to a consumer (the write-back loop, or the msync path's run list) as ascending,
//! disjoint runs. Few keys are sorted by the standard sort, many by an LSD radix sort
//! over the line bits their spread needs; already ascending keys (appends: a log) are
//! not sorted at all.
//!
//! Measured (2-vCPU VM, 2026-11-21): sorting is most of what a sync of random records
//! costs beyond the write-backs themselves. Cycles a key, fresh random keys, medians:
//! 100 keys: standard sort 28-31; 10 000 keys: standard sort 32, radix 14-25 (the
//! machine is noisy). Tried and dropped: a bitonic sort in AVX-512 registers sorts 100
//! keys in 14 cycles a key in a loop, but in a sync (run now and then) it made the
//! k = 100 sync slower (3.3 against 2.5 us) and the marks after it too: the core's
//! switch into and out of 512-bit operation costs more than it saves. Bucketing by the
//! high bits with an insertion sort per bucket was no faster than the standard sort.
//! Handing out each sorted chunk's runs before sorting the next, so the write-backs
//! would complete while the CPU sorts, did not help: the write-back loop stalls at the
//! CLWB throughput and the sort of the next chunk waits behind it.
//!
//! 32-bit relative keys (session 3, same machine, under load; TSC cycles a key, medians
//! of 301 sorts of 10 000 random keys over 2^24 lines): 64-bit keys with 8-bit digits
//! 18, 32-bit keys with 8-bit digits 15, with 12-bit digits 13; at 1 000 keys all about
//! 25, at 100 the standard sort (22-26) beats every radix and counting variant tried
//! (a counting pass by the top bits then insertion: 32-39). In the sync benchmark the
//! gain was below the day's noise (k = 10 000: 1.44-1.56x the oracle against 1.54-1.62x,
//! paired runs in quiet phases).

use crate::marklog::{unkey, COUNT_BITS};

/// Up to this many keys, the standard sort (measured on fresh random keys: about equal
/// to the radix sort at 100-200 keys, slower beyond).
const SMALL: usize = 192;

/// Scratch space of `for_each_run`, reused between syncs.
#[derive(Default)]
pub struct Scratch {
    a32: Vec<u32>,
    b32: Vec<u32>,
    a64: Vec<u64>,
    b64: Vec<u64>,
    hist: Vec<u32>,
}

/// Hands out ascending, disjoint runs and counts their lines: what a run shares with
/// the ones before it is cut off.
struct Dedup<F: FnMut(usize, usize)> {
    done: usize,
    lines: u64,
    emit: F,
}

impl<F: FnMut(usize, usize)> Dedup<F> {
    #[inline(always)]
    fn put(&mut self, f: usize, c: usize) {
        let (s, e) = (f.max(self.done), f + c);
        if e > s {
            (self.emit)(s, e - s);
            self.done = e;
            self.lines += (e - s) as u64;
        }
    }
}

/// Call `emit(first line, count)` for every line of `keys` (mark-log entries, any
/// order; reordered here) and of `sorted` (ascending disjoint runs), in ascending
/// order, each line exactly once. Returns the number of lines handed out.
pub fn for_each_run(
    keys: &mut [u64],
    sorted: &[(usize, usize)],
    s: &mut Scratch,
    emit: impl FnMut(usize, usize),
) -> u64 {
    let mut out = Dedup {
        done: 0,
        lines: 0,
        emit,
    };
    let mut j = 0;
    // One key's run, after every index run that starts at or before it.
    let mut put = |out: &mut Dedup<_>, k: u64| {
        let (f, c) = unkey(k);
        while j < sorted.len() && sorted[j].0 <= f {
            out.put(sorted[j].0, sorted[j].1);
            j += 1;
        }
        out.put(f, c);
    };
    let ascending = keys.is_sorted();
    if ascending || keys.len() <= SMALL {
        if !ascending {
            keys.sort_unstable();
        }
        for &k in keys.iter() {
            put(&mut out, k);
        }
    } else {
        let (min, max) = keys
            .iter()
            .fold((u64::MAX, 0), |(lo, hi), &k| (lo.min(k), hi.max(k)));
        // The digits are those of (first line - smallest first line).
        let base = min & !((1 << COUNT_BITS) - 1);
        if max - base <= u32::MAX as u64 {
            // Relative keys fit 32 bits (any mapping below 2^25 lines, 2 GiB at 64-byte
            // lines, and any sync whose keys lie closer together): half the memory
            // traffic a pass.
            for &k in radix_sort(keys, base, max, &mut s.a32, &mut s.b32, &mut s.hist) {
                put(&mut out, k.rel() + base);
            }
        } else {
            for &k in radix_sort(keys, base, max, &mut s.a64, &mut s.b64, &mut s.hist) {
                put(&mut out, k.rel() + base);
            }
        }
    }
    for &(f, c) in &sorted[j..] {
        out.put(f, c);
    }
    out.lines
}

/// A key relative to the smallest one's line (`key - base`), in 32 or 64 bits.
trait Rel: Copy + Default {
    fn from_rel(r: u64) -> Self;
    fn rel(self) -> u64;
}

impl Rel for u32 {
    #[inline(always)]
    fn from_rel(r: u64) -> u32 {
        r as u32
    }
    #[inline(always)]
    fn rel(self) -> u64 {
        self as u64
    }
}

impl Rel for u64 {
    #[inline(always)]
    fn from_rel(r: u64) -> u64 {
        r
    }
    #[inline(always)]
    fn rel(self) -> u64 {
        self
    }
}

/// Sort `v` by first line, as keys relative to `base` (every key >= base, <= max), by
/// an LSD radix sort over the line bits the keys' spread needs: one read builds every
/// pass's histogram, a pass whose digit is the same in every key is skipped, the first
/// pass run converts the keys to `K`. Digits of 8 bits for a few thousand keys, up to
/// 12 for more (fewer passes, when the keys outnumber the buckets). Keys of one first
/// line keep no particular order, which `Dedup` does not mind. Returns the sorted
/// relative keys (in `a` or `b`).
fn radix_sort<'a, K: Rel>(
    v: &[u64],
    base: u64,
    max: u64,
    a: &'a mut Vec<K>,
    b: &'a mut Vec<K>,
    hist: &mut Vec<u32>,
) -> &'a [K] {
    let n = v.len();
    let bits = u64::BITS - ((max - base) >> COUNT_BITS).leading_zeros();
    let dmax = if n < 4096 { 8 } else { 12 };
    let passes = bits.div_ceil(dmax).max(1);
    let d = bits.div_ceil(passes).max(1);
    let nb = 1usize << d;
    let mask = (nb - 1) as u64;
    hist.clear();
    hist.resize(passes as usize * nb, 0);
    a.resize(a.len().max(n), K::default());
    b.resize(b.len().max(n), K::default());
    let digit = |r: u64, p: u32| ((r >> (COUNT_BITS + d * p)) & mask) as usize;
    for &x in v.iter() {
        for p in 0..passes {
            hist[p as usize * nb + digit(x - base, p)] += 1;
        }
    }
    let (mut src, mut dst) = (&mut a[..n], &mut b[..n]);
    let mut first = true;
    for p in 0..passes {
        let h = &mut hist[p as usize * nb..(p as usize + 1) * nb];
        let (mut sum, mut one_bucket) = (0u32, false);
        for c in h.iter_mut() {
            let k = *c;
            one_bucket |= k as usize == n;
            *c = sum;
            sum += k;
        }
        if one_bucket {
            continue;
        }
        if first {
            // The 64-bit keys in, relative keys out (into src, which then holds them).
            for &x in v.iter() {
                let bk = digit(x - base, p);
                src[h[bk] as usize] = K::from_rel(x - base);
                h[bk] += 1;
            }
            first = false;
            continue;
        }
        for &x in src.iter() {
            let bk = digit(x.rel(), p);
            dst[h[bk] as usize] = x;
            h[bk] += 1;
        }
        std::mem::swap(&mut src, &mut dst);
    }
    if first {
        // Every key has the same first line: any order is ascending by first line.
        for (o, &x) in src.iter_mut().zip(v) {
            *o = K::from_rel(x - base);
        }
    }
    src
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::marklog::{key, MAX_RUN};

    fn model_check(keys: &[u64], sorted: &[(usize, usize)]) {
        let mut model = std::collections::BTreeSet::new();
        for &k in keys {
            let (f, c) = unkey(k);
            model.extend(f..f + c);
        }
        for &(f, c) in sorted {
            model.extend(f..f + c);
        }
        let mut ks = keys.to_vec();
        let mut got = vec![];
        let mut runs: Vec<(usize, usize)> = vec![];
        let n = for_each_run(&mut ks, sorted, &mut Scratch::default(), |f, c| {
            assert!(c > 0);
            if let Some(&(lf, lc)) = runs.last() {
                assert!(f >= lf + lc, "ascending and disjoint: {f} after {lf}+{lc}");
            }
            runs.push((f, c));
            got.extend(f..f + c);
        });
        assert_eq!(n as usize, got.len());
        assert_eq!(got, model.into_iter().collect::<Vec<_>>());
    }

    #[test]
    fn every_line_once_in_order() {
        let mut s = 7u64;
        let mut rnd = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        for n in [0usize, 1, 2, 5, 100, 192, 193, 300, 1500, 5000, 70_000] {
            for (spread, ascending) in [(100_000, false), (100_000, true), (300, false)] {
                let mut keys: Vec<u64> = (0..n)
                    .map(|_| {
                        let r = rnd();
                        key((r % spread) as usize, 1 + (r >> 40) as usize % MAX_RUN)
                    })
                    .collect();
                if ascending {
                    keys.sort_unstable();
                }
                // Index runs: ascending and disjoint, as DirtyIndex::take gives them.
                let mut sorted = vec![];
                let mut f = (rnd() % 50) as usize;
                while f < 100_000 && sorted.len() < n / 3 {
                    let c = 1 + (rnd() % 700) as usize;
                    sorted.push((f, c));
                    f += c + 1 + (rnd() % 3000) as usize;
                }
                model_check(&keys, &sorted);
                model_check(&keys, &[]);
                model_check(&[], &sorted);
            }
        }
    }

    #[test]
    fn radix_passes_skipped_and_one_line() {
        // Unsorted keys, all of one first line (no pass runs), then lines whose low
        // digit never changes (the first pass is skipped), in both key widths.
        let one: Vec<u64> = (0..1000)
            .map(|i| key(77, 1 + (i * 7919) % MAX_RUN))
            .collect();
        model_check(&one, &[]);
        for step in [256usize, 1 << 12, 1 << 33] {
            let keys: Vec<u64> = (0..6000usize)
                .map(|i| key(((i * 2_654_435_761) % 6000) * step, 1 + i % 3))
                .collect();
            model_check(&keys, &[(5, 10)]);
        }
    }

    #[test]
    fn high_lines_and_one_crowded_bucket() {
        let mut keys: Vec<u64> = (0..5000u64)
            .map(|i| key(((i * 2_654_435_761) % (1 << 38)) as usize, 1))
            .chain((0..300).map(|i| key(1 << 30 | i, 2)))
            .collect();
        keys.push(key(0, 64));
        model_check(&keys, &[(3, 100), (1 << 37, 5)]);
    }
}
