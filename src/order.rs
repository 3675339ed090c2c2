//! Putting a sync's dirty runs in address order, each line once.
//!
//! A sync has two sources: the mark log's entries (`marklog::key`: any order, may
//! overlap) and the index's runs (ascending, disjoint). `for_each_run` hands the union
//! to a consumer (the write-back loop, or the msync path's run list) as ascending,
//! disjoint runs. Few keys are sorted by the standard sort, many by an LSD radix sort
//! over the line bits their spread needs; already ascending keys (appends: a log) are
//! not sorted at all. A sync of few ring entries needs no order, only each line once:
//! `Scratch::extend_from` drops repeated lines while it collects them, and the
//! write-back loop takes them as they are (`for_each_line_unordered`).
//!
//! Why this design and what was tried and dropped, with the measurements:
//! docs/order-measurements.md.

use crate::marklog::{key, unkey, COUNT_BITS, MAX_RUN};
use std::sync::atomic::Ordering::Relaxed;

/// Up to this many keys, the standard sort (measured on fresh random keys: about equal
/// to the radix sort at 100-200 keys, slower beyond).
const SMALL: usize = 192;

/// The keys of the next `for_each_run` (`begin`, then `push` or `extend`), what is known
/// of them, and scratch space reused between syncs. The keys live here so that the
/// histogram counted while they were collected is always theirs (the radix passes
/// index with it unchecked).
#[derive(Default)]
pub struct Scratch {
    keys: Vec<u64>,
    a32: Vec<u32>,
    b32: Vec<u32>,
    a64: Vec<u64>,
    b64: Vec<u64>,
    hist: Vec<u32>,
    /// `for_each_line_unordered`'s hash set of lines.
    set: Vec<u32>,
    /// While `unique`: a filter of the lines collected, `1 << fbits` bits.
    filter: Vec<u64>,
    fbits: u32,
    /// The keys collected so far are one-line keys, each of another line: set by
    /// `begin` for few keys (at most `HASHED`), cleared by the first key that
    /// `extend_from` cannot keep so (a longer key, too many keys) and by `push` and
    /// `extend`.
    unique: bool,
    /// Filter hits looked into since `begin` (`MAX_SCANS`).
    scans: u32,
    /// `filter` is cleared for this sync and holds the bits of the keys collected.
    filtering: bool,
    stats: KeyStats,
    /// `hist` holds the counts of `keys`' two digits of `PRE_D` bits of the line.
    counted: bool,
}

/// Digit width of the histogram counted while collecting: two digits cover 2^24 lines
/// (a 1 GiB mapping at 64-byte lines).
const PRE_D: u32 = 12;
/// At least this many keys expected for `begin` to count a histogram (below, the radix
/// sort uses 8-bit digits, and counting them in the same pass saves little). The same
/// bound as `radix_sort`'s switch to 12-bit digits.
const PRE_MIN: usize = 2048;

impl Scratch {
    /// Start collecting about `n` keys (mark-log entries) of lines below `lines`.
    pub fn begin(&mut self, n: usize, lines: usize) {
        self.keys.clear();
        self.stats = KeyStats::default();
        self.counted = n >= PRE_MIN && lines <= 1 << (2 * PRE_D);
        if self.counted {
            self.hist.clear();
            self.hist.resize(2 << PRE_D, 0);
        }
        self.unique = n <= HASHED;
        self.scans = 0;
        // At least 128 bits a key expected: a false hit (a scan) is rare. Cleared when
        // a second key comes (`extend_from`): a one-key sync needs no filter.
        self.fbits = (n * 128).next_power_of_two().max(1024).trailing_zeros();
        self.filtering = false;
    }

    /// Collect a key, accounting for it as `count` does.
    #[inline(always)]
    pub fn push(&mut self, k: u64) {
        self.unique = false;
        count(&mut self.stats, &mut self.hist, self.counted, k);
        self.keys.push(k);
    }

    /// The keys collected since `begin` (in sorted order after `for_each_run`).
    pub fn keys(&self) -> &[u64] {
        &self.keys
    }

    /// A scratch that has collected `keys` (for tests).
    #[cfg(test)]
    fn of(keys: &[u64]) -> Scratch {
        let lines = keys.iter().map(|&k| unkey(k).0 + 1).max().unwrap_or(0);
        let mut s = Scratch::default();
        s.begin(keys.len(), lines);
        s.extend(keys.iter().copied());
        s
    }
}

impl Scratch {
    /// Collect the keys of `run` (a ring's entries, loaded `Relaxed`) as `extend` does,
    /// in a loop that does nothing else: the room made first (zeroed: one short fill),
    /// then each key written in place with its statistics in registers (measured: the
    /// generic extend checked the vector's capacity for each key, ~8 cycles a key).
    ///
    /// While `unique`, a key of one line already collected is dropped here: its bit in
    /// the filter is set and it equals a collected key (a plain scan, rare). A sync of
    /// few random lines then writes its keys back as they are, in a loop that does
    /// nothing else (`for_each_line_unordered`): measured, a load or store between two
    /// write-backs costs about as much as the write-back, and a separate pass to drop
    /// repeated lines cost a sync of 100 lines ~20 %.
    #[inline(always)]
    pub fn extend_from(&mut self, run: &[std::sync::atomic::AtomicU64]) {
        if self.counted {
            return self.extend(run.iter().map(|e| e.load(Relaxed)));
        }
        let start = self.keys.len();
        if let ([e], 0) = (run, start) {
            // The first key alone (the one-key sync): unique if one line.
            let k = e.load(Relaxed);
            self.unique &= k & COUNT_MASK == 1;
            self.stats.add(k);
            return self.keys.push(k);
        }
        self.keys.resize(start + run.len(), 0);
        let mut st = self.stats;
        // Past 32 filter bits a key, false hits would make the scans the cost.
        if start + run.len() > HASHED.min(1 << (self.fbits - 5)) {
            self.unique = false;
        }
        if self.unique && !self.filtering && start + run.len() > 1 {
            self.filtering = true;
            self.filter.clear();
            self.filter.resize(1 << (self.fbits - 6), 0);
            if start == 1 {
                // The first key, taken alone.
                let h = self.keys[0].wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - self.fbits);
                self.filter[(h >> 6) as usize] |= 1 << (h & 63);
            }
        }
        let (mut uniq, mut scans) = (self.unique, self.scans);
        let shift = 64 - self.fbits;
        let (keys, filter) = (&mut self.keys[..], &mut self.filter[..]);
        let mut n = start;
        for e in run {
            let k = e.load(Relaxed);
            if uniq && k & COUNT_MASK != 1 {
                // A longer key: the keys go through the hash set after all.
                uniq = false;
            } else if uniq {
                let h = k.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> shift;
                let (w, bit) = ((h >> 6) as usize, 1u64 << (h & 63));
                // In bounds: h < 2^fbits, and the filter has 2^(fbits - 6) words.
                let word = filter[w];
                if word & bit == 0 {
                    filter[w] = word | bit;
                } else if scans == MAX_SCANS {
                    // Many repeated lines: the hash set is cheaper than more scans.
                    uniq = false;
                } else {
                    scans += 1;
                    if keys[..n].iter().fold(false, |a, &x| a | (x == k)) {
                        continue;
                    }
                }
            }
            st.add(k);
            // In bounds: n < start + run.len(), the room made above.
            keys[n] = k;
            n += 1;
        }
        self.keys.truncate(n);
        self.stats = st;
        self.unique = uniq;
        self.scans = scans;
    }
}

impl Scratch {
    /// The address and length of the keys collected, without a reference to them (for
    /// a forked child reading what another thread's sync held: `sync::salvage_after_fork`).
    pub(crate) fn raw_keys(&self) -> (usize, usize) {
        (self.keys.as_ptr() as usize, self.keys.len())
    }

    /// `extend_from`, if every entry of `run` lies wholly in lines `[lo, hi)`;
    /// otherwise nothing is collected and it returns false. When the run's keys were
    /// all one line long (kept unique: the usual small sync), the run's least and
    /// greatest key, which its stats gather anyway, decide (key order is line order);
    /// otherwise a plain loop over the keys as collected (a check of the ring's atomic
    /// entries could not be vectorized). Never while counting a histogram (false at
    /// once: it could not be taken back).
    #[inline(always)]
    pub fn extend_from_in(
        &mut self,
        run: &[std::sync::atomic::AtomicU64],
        lo: usize,
        hi: usize,
    ) -> bool {
        if self.counted {
            return false;
        }
        let (len, before, unique) = (self.keys.len(), self.stats, self.unique);
        // The run's own stats, merged below.
        self.stats = KeyStats::default();
        self.extend_from(run);
        let st = self.stats;
        let inside = |k: u64| {
            let (f, c) = unkey(k);
            f >= lo && f + c <= hi
        };
        let ok = if self.keys.len() == len {
            // Nothing new (every entry a line already collected, hence in the range).
            true
        } else if unique && self.unique {
            // Every key of the run was one line (`extend_from` clears `unique` at the
            // first longer one).
            inside(st.min) && inside(st.max)
        } else {
            self.keys[len..].iter().fold(true, |a, &k| a & inside(k))
        };
        if ok {
            self.stats = before.then(st, self.keys.get(len).copied());
            return true;
        }
        // Taken back. The filter may keep the bits of these keys: a false hit costs a
        // scan, never a line.
        self.keys.truncate(len);
        self.stats = before;
        self.unique = unique;
        false
    }
}

/// Filter hits `extend_from` looks into (a scan of the keys collected, at most
/// `HASHED`) in one sync before it gives up keeping the keys unique.
const MAX_SCANS: u32 = 8;

/// The count bits of a key (`marklog::key`).
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;

/// Collect keys as `push` does, through one exact-size extend where the iterator allows
/// (no capacity check per key: the mark log's drain).
impl Extend<u64> for Scratch {
    fn extend<I: IntoIterator<Item = u64>>(&mut self, it: I) {
        let Scratch {
            keys,
            stats,
            hist,
            counted,
            ..
        } = self;
        // The stats in a local (registers), one loop per case: no store or branch per
        // key beyond the key itself and its two counts (measured: 3 % of a 10 000-key
        // sync).
        let mut st = *stats;
        let before = keys.len();
        if *counted {
            keys.extend(it.into_iter().inspect(|&k| count(&mut st, hist, true, k)));
        } else {
            keys.extend(it.into_iter().inspect(|&k| st.add(k)));
        }
        *stats = st;
        if keys.len() != before {
            self.unique = false;
        }
    }
}

/// Account for a key collected: its order and range, and, for many keys, the radix
/// sort's histogram (one pass over the keys fewer).
#[inline(always)]
fn count(stats: &mut KeyStats, hist: &mut [u32], counted: bool, k: u64) {
    stats.add(k);
    if counted {
        debug_assert!(
            unkey(k).0 < 1 << (2 * PRE_D),
            "begin() was told fewer lines"
        );
        let r = k - PRE_BASE;
        let mask = (1 << PRE_D) - 1;
        let d0 = (r >> COUNT_BITS) & mask;
        let d1 = ((r >> (COUNT_BITS + PRE_D)) & mask) | 1 << PRE_D;
        // Checked indexing: two increments a key, the checks cost little here.
        hist[d0 as usize] += 1;
        hist[d1 as usize] += 1;
    }
}

/// Entries out of key order that `Spill`'s passes may visit before they are sorted,
/// in units of the entries that came out of order: a pass costs ~3-4 ns an entry (about
/// half when every entry is one line) and a sort ~15-20 (both measured on 10 000 random
/// entries), so the passes cost at most about what sorting at once would, and syncs
/// that take what was spilled in a few ranges (four quarters: the passes visit 2.5x
/// the entries) never sort.
const SORT_AFTER_VISITS: usize = 3;

/// Mark-log entries (`marklog::key`) that ranged syncs took and kept out of the index
/// (sync.rs), with their line count. Kept in key order (by first line) while they
/// come in order: a ranged sync finds its part by two binary searches, not a pass over
/// all of them (measured: 4-7 ns an entry a call with a branch on each entry, when
/// four ranged syncs took 10 000 marks in turn). Entries that came out of order stay
/// as they came, and a ranged sync takes its part in one pass without a branch on
/// where an entry lies (measured: sorting 75 random entries cost as much as the rest
/// of a ranged sync of 25 lines, and sorting 7500 ~150 us, more than the three passes
/// of the next three syncs over them); once the passes visited `SORT_AFTER_VISITS`
/// times the entries that came, they are sorted, so that many small ranged syncs over a
/// large spill do not each pay a pass (64 ranged syncs over 10 000 random marks).
/// Keys taken as they came keep the small-sync write-back path
/// (`Scratch::extend_from`).
#[derive(Default)]
pub struct Spill {
    keys: Vec<u64>,
    lines: u64,
    /// Scratch for `take_range`: the pieces left before and after the range; what
    /// `take_unsorted` took (as a ring's entries: `Scratch::extend_from` takes them).
    before: Vec<u64>,
    after: Vec<u64>,
    taken: Vec<std::sync::atomic::AtomicU64>,
    /// The entries are out of key order; entries the passes may still visit before
    /// they are sorted (`SORT_AFTER_VISITS`).
    unsorted: bool,
    budget: usize,
}

impl Spill {
    /// The addresses and lengths of the entries held and of the scratch of those a pass
    /// took, without a reference to them (as `Scratch::raw_keys`).
    pub(crate) fn raw_keys(&self) -> [(usize, usize); 2] {
        [
            (self.keys.as_ptr() as usize, self.keys.len()),
            (self.taken.as_ptr() as usize, self.taken.len()),
        ]
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Whether the entries are out of key order (see `take_range`).
    pub fn unsorted(&self) -> bool {
        self.unsorted
    }

    /// Lines held (an overlapping line counts once an entry).
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// Add an entry; `settle(n)` must follow the pushes, `n` the `len()` before them.
    #[inline(always)]
    pub fn push(&mut self, k: u64) {
        self.keys.push(k);
        self.lines += unkey(k).1 as u64;
    }

    /// Add the entries of `run` (a ring's, loaded `Relaxed`) as `push` does, in one
    /// copy. Out of line: the sync's ring pass stays small enough to inline.
    #[inline(never)]
    pub fn extend_from(&mut self, run: &[std::sync::atomic::AtomicU64]) {
        let mut lines = 0;
        self.keys.extend(run.iter().map(|e| {
            let k = e.load(Relaxed);
            lines += k & COUNT_MASK;
            k
        }));
        self.lines += lines;
    }

    /// After pushes from `from` on: whether the entries are still in key order.
    pub fn settle(&mut self, from: usize) {
        let k = &self.keys;
        if from >= k.len() {
            return;
        }
        if self.unsorted {
            // The new entries' share of the passes.
            self.budget += SORT_AFTER_VISITS * (k.len() - from);
        } else if (from > 0 && k[from - 1] > k[from]) || !k[from..].is_sorted() {
            self.unsorted = true;
            self.budget = SORT_AFTER_VISITS * k.len();
        }
    }

    /// Take every entry.
    pub fn drain_all(&mut self) -> std::vec::Drain<'_, u64> {
        self.lines = 0;
        (self.unsorted, self.budget) = (false, 0);
        self.keys.drain(..)
    }

    /// `take_range` into a sync's keys: entries out of order through
    /// `Scratch::extend_from` (the small-sync collection: no hash set), entries in order
    /// by `push` (the sorted path).
    pub fn take_into(&mut self, lo: usize, hi: usize, order: &mut Scratch) {
        if self.keys.is_empty() || lo >= hi {
            return;
        }
        if self.unsorted_pass() {
            order.extend_from(self.take_unsorted(lo, hi));
            return;
        }
        self.take_range(lo, hi, |k| order.push(k));
    }

    /// Whether the next take makes a pass over entries out of order (counted); false
    /// when they are in order, or sorted now (`SORT_AFTER_VISITS`).
    fn unsorted_pass(&mut self) -> bool {
        if !self.unsorted {
            return false;
        }
        if self.budget >= self.keys.len() {
            self.budget -= self.keys.len();
            return true;
        }
        self.keys.sort_unstable();
        (self.unsorted, self.budget) = (false, 0);
        false
    }

    /// Hand the parts of the entries that lie in lines [lo, hi) to `take` (as keys: in
    /// order of their first lines when the entries are in key order, else as they came)
    /// and keep the parts outside (in key order if they were). In key order, work in
    /// proportion to what overlaps the range, plus two binary searches and a move of
    /// the entries after it; else one pass (`take_unsorted`; sorted after
    /// `SORT_AFTER_VISITS`). `settle` must have followed any push.
    pub fn take_range(&mut self, lo: usize, hi: usize, mut take: impl FnMut(u64)) {
        if self.keys.is_empty() || lo >= hi {
            return;
        }
        if self.unsorted_pass() {
            for e in self.take_unsorted(lo, hi) {
                take(e.load(Relaxed));
            }
            return;
        }
        // An entry has at most MAX_RUN lines: those starting at or below lo - MAX_RUN
        // end before lo. The stretch [a, b) is every entry that may overlap [lo, hi),
        // and those starting at hi (so that the pieces left after hi, which start at
        // hi, are sorted with them and precede everything after b).
        let a = self
            .keys
            .partition_point(|&k| unkey(k).0 + MAX_RUN <= lo);
        let b = a + self.keys[a..].partition_point(|&k| unkey(k).0 <= hi);
        if a == b {
            return;
        }
        let (before, after) = (&mut self.before, &mut self.after);
        before.clear();
        after.clear();
        let mut lines = 0u64;
        for &k in &self.keys[a..b] {
            let (f, c) = unkey(k);
            let (s, e) = (f.max(lo), (f + c).min(hi));
            if s >= e {
                // Wholly before lo (same first line as the trimmed ones below, fewer
                // lines: still in order) or starting at hi.
                if f < lo {
                    before.push(k);
                } else {
                    after.push(k);
                }
                continue;
            }
            take(key(s, e - s));
            lines += (e - s) as u64;
            if f < lo {
                before.push(key(f, lo - f));
            }
            if f + c > hi {
                after.push(key(hi, f + c - hi));
            }
        }
        // The pieces after hi all start at hi: in key order by their counts.
        after.sort_unstable();
        self.lines -= lines;
        self.keys
            .splice(a..b, before.iter().chain(after.iter()).copied());
    }

    /// The parts of the entries that lie in lines [lo, hi), taken as they come in one
    /// pass over all of them (any order); what stays
    /// moved down in place (an entry leaves at most one piece before the range there;
    /// a piece after it, of an entry that spans the range, is appended). Without a
    /// branch on where an entry lies (wholly inside or wholly outside: each entry is
    /// written to both sides and the side's length advanced by the test): measured,
    /// the branch missed for every other entry of a range over a quarter of random
    /// marks, and the pass cost twice the sync it served.
    #[inline(never)]
    fn take_unsorted(&mut self, lo: usize, hi: usize) -> &[std::sync::atomic::AtomicU64] {
        let (keys, after, taken) = (&mut self.keys, &mut self.after, &mut self.taken);
        after.clear();
        let n = keys.len();
        // Room for every entry; never shrunk (zeroing it again cost a tenth of a pass).
        if taken.len() < n {
            taken.resize_with(n, Default::default);
        }
        let (ks, tk) = (&mut keys[..n], &mut taken[..n]);
        let (mut w, mut t, mut lines) = (0, 0, 0u64);
        if self.lines == n as u64 {
            // Every entry one line long (the counts are at least 1 and add up to the
            // entries): none spans an end of the range, and an entry lies in it iff its
            // key lies in [key(lo, 1), key(hi - 1, 1)], one unsigned comparison on the
            // key itself (key order is line order). Measured: half the general pass.
            let (from, span) = (key(lo, 1), ((hi - lo - 1) as u64) << COUNT_BITS);
            for r in 0..n {
                let k = ks[r];
                let inside = k.wrapping_sub(from) <= span;
                // t, w <= r < n.
                tk[t] = k.into();
                ks[w] = k;
                t += inside as usize;
                w += !inside as usize;
            }
            lines = t as u64;
        } else {
            for r in 0..n {
                let k = ks[r];
                let (f, c) = unkey(k);
                let (s, e) = (f.max(lo), (f + c).min(hi));
                let (overlaps, whole) = (s < e, (f >= lo) & (f + c <= hi));
                if overlaps & !whole {
                    // Spans an end of the range (rare): its part inside taken, the rest
                    // kept.
                    tk[t] = key(s, e - s).into();
                    t += 1;
                    lines += (e - s) as u64;
                    // w <= r: each entry read leaves at most one in place.
                    if f < lo {
                        ks[w] = key(f, lo - f);
                        w += 1;
                    }
                    if f + c > hi {
                        after.push(key(hi, f + c - hi));
                    }
                    continue;
                }
                // t, w <= r < n.
                tk[t] = k.into();
                ks[w] = k;
                t += whole as usize;
                w += !whole as usize;
                lines += c as u64 & (whole as u64).wrapping_neg();
            }
        }
        keys.truncate(w);
        keys.extend_from_slice(after);
        self.lines -= lines;
        // What stays keeps its order, but for the pieces appended.
        self.unsorted |= !after.is_empty();
        if keys.is_empty() {
            (self.unsorted, self.budget) = (false, 0);
        }
        &taken[..t]
    }
}

/// The key of line 0 with count 0: relative to it, a key's line bits are its line.
const PRE_BASE: u64 = 1 << COUNT_BITS;

/// What `for_each_run` needs to know of its keys, gathered while they are collected
/// (one pass fewer over them).
#[derive(Clone, Copy)]
pub struct KeyStats {
    min: u64,
    max: u64,
    prev: u64,
    ascending: bool,
}

impl Default for KeyStats {
    fn default() -> Self {
        KeyStats {
            min: u64::MAX,
            max: 0,
            prev: 0,
            ascending: true,
        }
    }
}

impl KeyStats {
    /// Account for the next key.
    #[inline(always)]
    pub fn add(&mut self, k: u64) {
        self.ascending &= self.prev <= k;
        self.prev = k;
        self.min = self.min.min(k);
        self.max = self.max.max(k);
    }

    /// The stats of keys collected after those of `self`: `next` the later keys'
    /// stats on their own, `first` the first of them (None: there were none).
    #[inline(always)]
    pub fn then(self, next: KeyStats, first: Option<u64>) -> KeyStats {
        match first {
            None => self,
            Some(f) => KeyStats {
                min: self.min.min(next.min),
                max: self.max.max(next.max),
                prev: next.prev,
                ascending: self.ascending && next.ascending && self.prev <= f,
            },
        }
    }

    /// The stats of `keys`.
    pub fn of(keys: &[u64]) -> KeyStats {
        let mut st = KeyStats::default();
        for &k in keys {
            st.add(k);
        }
        st
    }
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

/// Call `emit(first line, count)` for every line of the keys `s` collected (mark-log
/// entries, any order; sorted here) and of `sorted` (ascending disjoint runs), in
/// ascending order, each line exactly once, and consume the keys. Returns the number of
/// lines handed out.
#[inline(always)]
pub fn for_each_run(
    s: &mut Scratch,
    sorted: &[(usize, usize)],
    emit: impl FnMut(usize, usize),
) -> u64 {
    // The histogram is the keys' until they are reordered: used at most once.
    let counted = std::mem::take(&mut s.counted);
    let keys = &mut s.keys[..];
    let mut out = Dedup {
        done: 0,
        lines: 0,
        emit,
    };
    let mut j = 0;
    // One key's run, after every index run that starts at or before it.
    #[inline(always)]
    fn put<F: FnMut(usize, usize)>(
        out: &mut Dedup<F>,
        sorted: &[(usize, usize)],
        j: &mut usize,
        k: u64,
    ) {
        let (f, c) = unkey(k);
        while *j < sorted.len() && sorted[*j].0 <= f {
            out.put(sorted[*j].0, sorted[*j].1);
            *j += 1;
        }
        out.put(f, c);
    }
    debug_assert!({
        let st = KeyStats::of(keys);
        (st.min, st.max, st.ascending) == (s.stats.min, s.stats.max, s.stats.ascending)
    });
    let KeyStats {
        min,
        max,
        ascending,
        ..
    } = s.stats;
    if ascending || keys.len() <= SMALL {
        if !ascending {
            keys.sort_unstable();
        }
        for &k in keys.iter() {
            put(&mut out, sorted, &mut j, k);
        }
    } else {
        // The digits are those of (first line - smallest first line), or, when counted
        // while collecting, of the line itself (which then fits 32 bits).
        let counted = counted && keys.len() >= PRE_MIN;
        let base = if counted {
            PRE_BASE
        } else {
            min & !((1 << COUNT_BITS) - 1)
        };
        if max - base <= u32::MAX as u64 {
            // Relative keys fit 32 bits (any mapping below 2^25 lines, 2 GiB at 64-byte
            // lines, and any sync whose keys lie closer together): half the memory
            // traffic a pass.
            let sorted32 = radix_sort(
                keys,
                base,
                max,
                &mut s.a32,
                &mut s.b32,
                &mut s.hist,
                counted,
            );
            for &k in sorted32 {
                put(&mut out, sorted, &mut j, k.rel() + base);
            }
        } else {
            for &k in radix_sort(keys, base, max, &mut s.a64, &mut s.b64, &mut s.hist, false) {
                put(&mut out, sorted, &mut j, k.rel() + base);
            }
        }
    }
    for &(f, c) in &sorted[j..] {
        out.put(f, c);
    }
    // Consumed: a next call without `begin` has no keys (and no stale histogram).
    s.keys.clear();
    s.stats = KeyStats::default();
    out.lines
}

/// Up to this many lines in the keys (and no index runs), `for_each_line_unordered`
/// drops repeated lines through a hash set instead of sorting. Measured (2-vCPU VM,
/// 2026-12-03, k = 100 random lines of 1 GiB): the standard sort inside a sync was 55 %
/// of the sync's own cycles (cold branch predictors: ~35 cycles a key).
const HASHED: usize = 512;

/// Call `emit(line, count)` for every line of the keys `s` collected and of `sorted`
/// (as `for_each_run`), each line exactly once, in no particular order; consume the
/// keys. Returns the number of lines handed out. For the write-back loop, which needs
/// each line once but not address order: keys that `Scratch::extend_from` kept unique
/// (one line each, each another) are handed out as they are, in a loop that does
/// nothing else; when the keys hold at most `HASHED` lines within 2^32 - 1 of each
/// other and there are no index runs, each line is looked up in a hash set and handed
/// out at once if new, in the order the keys were collected; otherwise this is
/// `for_each_run`.
#[inline(always)]
pub fn for_each_line_unordered(
    s: &mut Scratch,
    sorted: &[(usize, usize)],
    mut emit: impl FnMut(usize, usize),
) -> u64 {
    if s.unique && sorted.is_empty() {
        // One-line keys, each of another line (`extend_from`): as they are, in a loop
        // that does nothing else.
        for &k in s.keys.iter() {
            emit(unkey(k).0, 1);
        }
        let n = s.keys.len() as u64;
        s.keys.clear();
        s.stats = KeyStats::default();
        s.unique = false;
        return n;
    }
    // One key (ascending) is the common small sync: one test, then as before.
    if !s.stats.ascending && sorted.is_empty() && s.keys.len() <= HASHED {
        if let Some(n) = try_hashed(s, &mut emit) {
            return n;
        }
    }
    for_each_run(s, sorted, emit)
}

/// The keys through `emit_hashed` and consumed, if they qualify (see
/// `for_each_line_unordered`); None, the keys untouched, if not. Out of line, with the
/// write-back loop inlined into it: inlined, it made the one-key sync slower (1-2 %).
#[inline(never)]
fn try_hashed(s: &mut Scratch, emit: &mut impl FnMut(usize, usize)) -> Option<u64> {
    let st = s.stats;
    if (st.max >> COUNT_BITS) - (st.min >> COUNT_BITS) >= u32::MAX as u64 - MAX_RUN as u64 {
        return None;
    }
    // With repeats; the counts are the keys' low bits.
    let lines: usize = s.keys.iter().map(|&k| unkey(k).1).sum();
    if lines > HASHED {
        return None;
    }
    let n = emit_hashed(s, lines, emit);
    // Consumed, as `for_each_run` leaves them.
    s.keys.clear();
    s.stats = KeyStats::default();
    s.counted = false;
    Some(n)
}

/// The hash set path of `for_each_line_unordered`: open addressing over lines relative
/// to the smallest key's (+ 1; 0 is an empty slot), at least twice as many slots as
/// lines, so it never fills.
#[inline(always)]
fn emit_hashed(s: &mut Scratch, lines: usize, emit: &mut impl FnMut(usize, usize)) -> u64 {
    let bits = (2 * lines).next_power_of_two().max(64).trailing_zeros();
    let mask = (1usize << bits) - 1;
    let base = unkey(s.stats.min).0;
    s.set.clear();
    s.set.resize(1 << bits, 0);
    let set = &mut s.set[..];
    let mut n = 0u64;
    for &k in s.keys.iter() {
        let (f, c) = unkey(k);
        for l in f..f + c {
            // Below 2^32 - 1 (the caller checked the keys' spread).
            let tag = (l - base + 1) as u32;
            // Fibonacci hashing: the top bits of the product.
            let mut i = (tag.wrapping_mul(0x9E37_79B9) >> (32 - bits)) as usize;
            loop {
                let e = set[i];
                if e == tag {
                    break;
                }
                if e == 0 {
                    set[i] = tag;
                    emit(l, 1);
                    n += 1;
                    break;
                }
                i = (i + 1) & mask;
            }
        }
    }
    n
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
/// pass run converts the keys to `K`. Digits of 8 bits below 2048 keys (`PRE_MIN`), up to
/// 12 for more (fewer passes, when the keys outnumber the buckets). Keys of one first
/// line keep no particular order, which `Dedup` does not mind. `counted`: `hist` holds
/// the two `PRE_D`-bit digits of every key, counted while collecting (then `base` is
/// `PRE_BASE`). Returns the sorted relative keys (in `a` or `b`).
fn radix_sort<'a, K: Rel>(
    v: &[u64],
    base: u64,
    max: u64,
    a: &'a mut Vec<K>,
    b: &'a mut Vec<K>,
    hist: &mut Vec<u32>,
    counted: bool,
) -> &'a [K] {
    let n = v.len();
    a.resize(a.len().max(n), K::default());
    b.resize(b.len().max(n), K::default());
    let (a, b) = (&mut a[..n], &mut b[..n]);
    if counted {
        // `Scratch::push`/`extend` counted two digits of `PRE_D` bits (base `PRE_BASE`).
        return radix_passes::<K, 2>(v, base, PRE_D, a, b, hist, true);
    }
    let bits = u64::BITS - ((max - base) >> COUNT_BITS).leading_zeros();
    let dmax = if n < PRE_MIN { 8 } else { PRE_D };
    let passes = bits.div_ceil(dmax).max(1);
    let d = bits.div_ceil(passes).max(1);
    // The pass count as a constant: the histogram loop unrolls (most syncs need 1-3).
    match passes {
        1 => radix_passes::<K, 1>(v, base, d, a, b, hist, false),
        2 => radix_passes::<K, 2>(v, base, d, a, b, hist, false),
        3 => radix_passes::<K, 3>(v, base, d, a, b, hist, false),
        4 => radix_passes::<K, 4>(v, base, d, a, b, hist, false),
        _ => radix_passes::<K, 8>(v, base, d, a, b, hist, false),
    }
}

/// The passes of `radix_sort`: `P` digits of `d` bits (fewer when `P` is the fallback
/// 8 and the key needs fewer: their digits are 0 in every key and the pass is skipped).
/// `counted`: `hist` already holds the counts of `v`'s digits.
#[inline(always)]
fn radix_passes<'a, K: Rel, const P: usize>(
    v: &[u64],
    base: u64,
    d: u32,
    a: &'a mut [K],
    b: &'a mut [K],
    hist: &mut Vec<u32>,
    counted: bool,
) -> &'a [K] {
    let n = v.len();
    let nb = 1usize << d;
    let mask = (nb - 1) as u64;
    let digit = |r: u64, p: usize| {
        let sh = COUNT_BITS + d * p as u32;
        // The fallback P = 8 may have passes beyond the key's bits: digit 0 there.
        let r = if P > 4 {
            r.checked_shr(sh).unwrap_or(0)
        } else {
            r >> sh
        };
        (r & mask) as usize
    };
    if counted {
        debug_assert_eq!(hist.len(), P * nb);
    } else {
        hist.clear();
        hist.resize(P * nb, 0);
        for &x in v.iter() {
            for p in 0..P {
                let i = p * nb + digit(x - base, p);
                debug_assert!(i < hist.len());
                // SAFETY: p < P and a digit is masked below nb: i < P * nb = hist.len().
                unsafe { *hist.get_unchecked_mut(i) += 1 };
            }
        }
    }
    let (mut src, mut dst) = (a, b);
    let mut first = true;
    for p in 0..P {
        let h = &mut hist[p * nb..(p + 1) * nb];
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
        // Every cursor starts at its bucket's offset, and a bucket gets exactly as many
        // keys as the histogram counted: a cursor stays below n. Checked indexing here
        // costs a quarter of the pass (measured), so it is not used.
        if first {
            // The 64-bit keys in, relative keys out (into src, which then holds them).
            for &x in v.iter() {
                let bk = digit(x - base, p);
                let c = &mut h[bk];
                debug_assert!((*c as usize) < n);
                // SAFETY: *c < n = src.len() (above).
                unsafe { *src.get_unchecked_mut(*c as usize) = K::from_rel(x - base) };
                *c += 1;
            }
            first = false;
            continue;
        }
        for &x in src.iter() {
            let bk = digit(x.rel(), p);
            let c = &mut h[bk];
            debug_assert!((*c as usize) < n);
            // SAFETY: *c < n = dst.len() (above).
            unsafe { *dst.get_unchecked_mut(*c as usize) = x };
            *c += 1;
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

    /// The spill against a model (a multiset of lines): random entries pushed in
    /// batches (sorted again each time), random ranges taken. Each take hands out
    /// exactly the lines of the range the spill held, ascending; what stays is sorted
    /// and is exactly the rest; the line count follows.
    #[test]
    fn spill_takes_exactly_its_range_and_stays_sorted() {
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let mut rnd = |n: usize| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n as u64) as usize
        };
        let (mut small, mut one_line) = (0, 0);
        for round in 0..300 {
            let space = [100, 1000, 1 << 20][round % 3];
            // One round in four marks single lines only (the unsorted pass's short way).
            let longest = if round % 4 == 3 { 1 } else { MAX_RUN };
            let mut sp = Spill::default();
            // line -> how many entries hold it
            let mut model = std::collections::BTreeMap::<usize, u64>::new();
            for _ in 0..20 {
                let from = sp.len();
                // Now and then many entries in one go.
                let most = if rnd(8) == 0 { 400 } else { 50 };
                let mut batch: Vec<u64> = (0..rnd(most))
                    .map(|_| {
                        let f = rnd(space);
                        key(f, 1 + rnd(longest.min(space - f)))
                    })
                    .collect();
                // Half the batches in key order (a caller marking as it goes).
                if rnd(2) == 0 {
                    batch.sort_unstable();
                }
                for &k in &batch {
                    sp.push(k);
                    let (f, c) = unkey(k);
                    for l in f..f + c {
                        *model.entry(l).or_default() += 1;
                    }
                }
                sp.settle(from);
                let (lo, hi) = match rnd(4) {
                    0 => (0, space),
                    1 => {
                        let lo = rnd(space);
                        (lo, lo + 1 + rnd(3).min(space - lo - 1))
                    }
                    _ => {
                        let lo = rnd(space);
                        (lo, lo + 1 + rnd(space - lo))
                    }
                };
                let mut got = std::collections::BTreeMap::<usize, u64>::new();
                let mut prev = 0usize;
                let sorted = !sp.unsorted;
                small += !sorted as usize;
                one_line += (!sorted && sp.lines() == sp.len() as u64) as usize;
                sp.take_range(lo, hi, |k| {
                    let (f, c) = unkey(k);
                    assert!(!sorted || f >= prev, "taken in order of first lines");
                    prev = f;
                    assert!(lo <= f && f + c <= hi && c > 0, "inside the range");
                    for l in f..f + c {
                        *got.entry(l).or_default() += 1;
                    }
                });
                let want: std::collections::BTreeMap<usize, u64> =
                    model.range(lo..hi).map(|(&l, &n)| (l, n)).collect();
                assert_eq!(got, want, "round {round}: the range's lines");
                let mut rest = model.split_off(&lo);
                model.append(&mut rest.split_off(&hi));
                assert!(sp.unsorted || sp.keys.is_sorted(), "still sorted");
                let mut left = std::collections::BTreeMap::<usize, u64>::new();
                for &k in &sp.keys {
                    let (f, c) = unkey(k);
                    assert!(c > 0);
                    for l in f..f + c {
                        *left.entry(l).or_default() += 1;
                    }
                }
                assert_eq!(left, model, "round {round}: what stays");
                assert_eq!(sp.lines(), model.values().sum::<u64>());
            }
            let n: u64 = sp.drain_all().map(|k| unkey(k).1 as u64).sum();
            assert_eq!(n, model.values().sum::<u64>());
            assert_eq!((sp.len(), sp.lines()), (0, 0));
        }
        // Both ways of taking were tried, many times each.
        assert!((500..5500).contains(&small), "{small} of 6000 takes from entries out of order");
        assert!(one_line >= 100, "{one_line} of them from one-line entries only");
    }

    fn model_check(keys: &[u64], sorted: &[(usize, usize)]) {
        let mut model = std::collections::BTreeSet::new();
        for &k in keys {
            let (f, c) = unkey(k);
            model.extend(f..f + c);
        }
        for &(f, c) in sorted {
            model.extend(f..f + c);
        }
        let mut got = vec![];
        let mut runs: Vec<(usize, usize)> = vec![];
        let mut sc = Scratch::of(keys);
        let n = for_each_run(&mut sc, sorted, |f, c| {
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
        for n in [
            0usize, 1, 2, 5, 100, 192, 193, 300, 1500, 2500, 5000, 70_000,
        ] {
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
    fn unordered_every_line_once() {
        let mut s = 11u64;
        let mut rnd = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        let mut sc = Scratch::default();
        // Small key sets (the hash set), overlapping runs and repeats, a spread beyond
        // 32 bits, and more lines or keys than the set takes (the sort).
        for n in [0usize, 1, 2, 3, 10, 100, 256, 400, 512, 513, 2000] {
            for (spread, maxrun) in [(1usize << 24, 1usize), (300, 1), (1000, 9), (1 << 40, 2)] {
                let keys: Vec<u64> = (0..n)
                    .map(|_| {
                        let r = rnd();
                        key(
                            (r % spread as u64) as usize,
                            1 + (r >> 40) as usize % maxrun,
                        )
                    })
                    .collect();
                let entries: Vec<std::sync::atomic::AtomicU64> = keys
                    .iter()
                    .map(|&k| std::sync::atomic::AtomicU64::new(k))
                    .collect();
                // Collected by `extend`, or by `extend_from` (ring runs: the filter) in
                // one piece or in three with too few keys expected, with or without
                // index runs.
                for (how, sorted) in [
                    (0, vec![]),
                    (0, vec![(5usize, 3usize)]),
                    (1, vec![]),
                    (2, vec![]),
                    (1, vec![(5usize, 3usize)]),
                ] {
                    let mut model = std::collections::BTreeSet::new();
                    for &k in &keys {
                        let (f, c) = unkey(k);
                        model.extend(f..f + c);
                    }
                    for &(f, c) in &sorted {
                        model.extend(f..f + c);
                    }
                    match how {
                        0 => {
                            sc.begin(keys.len(), spread);
                            sc.extend(keys.iter().copied());
                        }
                        1 => {
                            sc.begin(keys.len(), spread);
                            sc.extend_from(&entries);
                        }
                        _ => {
                            sc.begin(1, spread);
                            let (a, b) = entries.split_at(n / 3);
                            let (b, c) = b.split_at(n / 3);
                            for run in [a, b, c] {
                                sc.extend_from(run);
                            }
                        }
                    }
                    let mut got = vec![];
                    let cnt = for_each_line_unordered(&mut sc, &sorted, |f, c| {
                        assert!(c > 0);
                        got.extend(f..f + c)
                    });
                    assert_eq!(cnt as usize, got.len());
                    got.sort_unstable();
                    let want: Vec<usize> = model.into_iter().collect();
                    assert_eq!(got, want, "n={n} spread={spread} maxrun={maxrun} how={how}");
                    // Consumed.
                    assert_eq!(for_each_line_unordered(&mut sc, &[], |_, _| {}), 0);
                }
            }
        }
    }

    #[test]
    fn extend_from_in_collects_a_run_only_when_it_lies_in_the_range() {
        // Ring runs offered to a ranged sync: a run is collected whole when every entry
        // lies in [lo, hi), else not at all; the stats stay those of the keys collected
        // and every line collected comes out once.
        let mut s = 29u64;
        let mut rnd = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        let mut sc = Scratch::default();
        let mut taken = 0;
        for round in 0..3000 {
            let spread = [50usize, 1000, 1 << 20][round % 3];
            let (a, b) = ((rnd() % spread as u64) as usize, (rnd() % spread as u64) as usize);
            let (lo, hi) = (a.min(b), a.max(b) + 1);
            // One-line marks (the filter path) or some longer, drawn near the range
            // (inside, across its ends, outside).
            let maxrun = if round % 4 == 0 { 9 } else { 1 };
            let runs = 1 + rnd() as usize % 4;
            let mut model = std::collections::BTreeSet::new();
            sc.begin(1 + rnd() as usize % 600, spread + 64);
            for _ in 0..runs {
                // Runs of 0-2 entries too: the stats of runs merged in order.
                let n = rnd() as usize % if rnd() % 3 == 0 { 3 } else { 200 };
                let (from, to) = if rnd() % 3 == 0 {
                    (0, spread)
                } else {
                    (lo, hi)
                };
                let keys: Vec<u64> = (0..n)
                    .map(|_| {
                        let c = 1 + (rnd() as usize % maxrun);
                        let f = from + (rnd() as usize % (to - from).max(1));
                        key(f.min(from.max(to.saturating_sub(c))), c)
                    })
                    .collect();
                let entries: Vec<std::sync::atomic::AtomicU64> = keys
                    .iter()
                    .map(|&k| std::sync::atomic::AtomicU64::new(k))
                    .collect();
                let want = keys.iter().all(|&k| {
                    let (f, c) = unkey(k);
                    f >= lo && f + c <= hi
                });
                let got = sc.extend_from_in(&entries, lo, hi);
                assert_eq!(got, want, "round {round}: {keys:?} in [{lo}, {hi})");
                if got {
                    taken += 1;
                    for &k in &keys {
                        let (f, c) = unkey(k);
                        model.extend(f..f + c);
                    }
                }
                let st = KeyStats::of(sc.keys());
                assert_eq!(
                    (st.min, st.max, st.prev, st.ascending),
                    (sc.stats.min, sc.stats.max, sc.stats.prev, sc.stats.ascending),
                    "round {round}"
                );
            }
            let mut out = vec![];
            for_each_line_unordered(&mut sc, &[], |f, c| out.extend(f..f + c));
            out.sort_unstable();
            assert_eq!(out, model.into_iter().collect::<Vec<_>>(), "round {round}");
        }
        assert!(taken > 1000, "{taken} runs collected: the test must cover both outcomes");
    }

    #[test]
    fn histogram_counted_while_collecting_fewer_keys_than_expected() {
        // A partial sync expects every pending entry but keeps only those in its range:
        // the histogram counted while collecting must not be used for fewer keys than
        // it was sized for, nor mislead a later sort.
        let mut s = Scratch::default();
        for (expect, n) in [
            (5000usize, 100usize),
            (5000, 4096),
            (3000, 2100),
            (10_000, 7000),
            (0, 5000),
        ] {
            let keys: Vec<u64> = (0..n)
                .map(|i| key((i * 2_654_435_761) % (1 << 24), 1 + i % 5))
                .collect();
            s.begin(expect, 1 << 24);
            for &k in &keys {
                s.push(k);
            }
            let mut model = std::collections::BTreeSet::new();
            for &k in &keys {
                let (f, c) = unkey(k);
                model.extend(f..f + c);
            }
            let mut got = vec![];
            for_each_run(&mut s, &[], |f, c| got.extend(f..f + c));
            assert_eq!(got, model.into_iter().collect::<Vec<_>>(), "{expect} {n}");
            // Used twice without a new begin(): the keys (and the histogram) were
            // consumed by the first.
            let mut again = vec![];
            assert_eq!(
                for_each_run(&mut s, &[(3, 2)], |f, c| again.extend(f..f + c)),
                2
            );
            assert_eq!(again, vec![3, 4], "{expect} {n}, second use");
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
