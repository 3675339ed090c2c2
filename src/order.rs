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

use crate::marklog::{unkey, COUNT_BITS};

/// Up to this many keys, the standard sort (measured on fresh random keys: about equal
/// to the radix sort at 100-200 keys, slower beyond).
const SMALL: usize = 192;

/// Scratch space of `for_each_run`, reused between syncs.
#[derive(Default)]
pub struct Scratch {
    buf: Vec<u64>,
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
    if !keys.windows(2).all(|w| w[0] <= w[1]) {
        if keys.len() <= SMALL {
            keys.sort_unstable();
        } else {
            s.buf.resize(s.buf.len().max(keys.len()), 0);
            radix_sort(keys, &mut s.buf[..keys.len()]);
        }
    }
    for &k in keys.iter() {
        put(&mut out, k);
    }
    for &(f, c) in &sorted[j..] {
        out.put(f, c);
    }
    out.lines
}

/// Sort `v` by first line (`buf`: scratch of the same length; keys of one first line
/// keep their order, which `Dedup` does not mind) by an LSD radix sort of 8 bits a pass
/// over the line bits the keys' spread needs; one read builds every pass's histogram,
/// and a pass whose digit is the same in every key is skipped.
fn radix_sort(v: &mut [u64], buf: &mut [u64]) {
    const D: u32 = 8;
    let (mut min, mut max) = (u64::MAX, 0);
    for &x in v.iter() {
        min = min.min(x);
        max = max.max(x);
    }
    // The digits are those of (first line - smallest first line).
    let base = min & !((1 << COUNT_BITS) - 1);
    let bits = u64::BITS - ((max - base) >> COUNT_BITS).leading_zeros();
    let passes = bits.div_ceil(D) as usize;
    let mut hist = [[0u32; 1 << D]; 8];
    let digit = |x: u64, p: usize| (((x - base) >> (COUNT_BITS + D * p as u32)) & 0xff) as usize;
    for &x in v.iter() {
        for (p, h) in hist.iter_mut().enumerate().take(passes) {
            h[digit(x, p)] += 1;
        }
    }
    let (mut src, mut dst) = (&mut *v, &mut *buf);
    let mut in_buf = false;
    for (p, h) in hist.iter_mut().enumerate().take(passes) {
        let (mut sum, mut one_bucket) = (0u32, false);
        for c in h.iter_mut() {
            let n = *c;
            one_bucket |= n as usize == src.len();
            *c = sum;
            sum += n;
        }
        if one_bucket {
            continue;
        }
        for &x in src.iter() {
            let b = digit(x, p);
            dst[h[b] as usize] = x;
            h[b] += 1;
        }
        std::mem::swap(&mut src, &mut dst);
        in_buf = !in_buf;
    }
    if in_buf {
        v.copy_from_slice(buf);
    }
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
    fn high_lines_and_one_crowded_bucket() {
        let mut keys: Vec<u64> = (0..5000u64)
            .map(|i| key(((i * 2_654_435_761) % (1 << 38)) as usize, 1))
            .chain((0..300).map(|i| key(1 << 30 | i, 2)))
            .collect();
        keys.push(key(0, 64));
        model_check(&keys, &[(3, 100), (1 << 37, 5)]);
    }
}
