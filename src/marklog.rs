//! The mark log: the fast path of marking. A mark of a few lines appends one entry
//! (first line, count) to a per-mapping ring with one compare-and-swap and one store,
//! instead of setting bits in three or four levels of the index (each a locked
//! read-modify-write on a cache line of a 2 MiB bitmap: ~50-80 ns per random line).
//! A sync drains the ring (it is the only consumer: it holds the mapping's sync lock),
//! sorts the entries and merges them with what the bitmap holds (order.rs). When the ring is full,
//! or for large ranges, marks go to the bitmap as before: nothing is ever dropped.
//!
//! Ordering: a producer takes a ticket (CAS on `tail`), then publishes its entry with a
//! release store into slot `ticket % cap`, which the consumer emptied before it advanced
//! `head` past it. The consumer reads `tail` once and takes every published slot below
//! it. A mark that returned before a sync read `tail` is therefore drained by that sync;
//! a later one is left for the next.
//!
//! The consumer never waits for a producer. A slot below `tail` that is still empty
//! belongs to a mark that has not returned (a thread between its ticket and its store,
//! perhaps the very thread a signal handler interrupted to sync): the consumer takes
//! the published slots after it too, leaves them CONSUMED, and stops `head` at the
//! empty one; a later drain takes it once published and skips the CONSUMED ones. A
//! ticket whose thread a fork cut off (the child has no such thread) is made CONSUMED
//! by the child (`after_fork_child`). Producers never reach a slot `head` has not
//! passed, so nothing is overwritten.
//!
//! Cost seen from a caller (measured 2026-11-21, perf cpu-clock, a loop writing a random
//! 64-byte record of a 1 GiB mapping and marking it): 95 % of the mark's samples sit on
//! the compare-and-swap, which waits for the record's own store to the missed line to
//! leave the store buffer. So a mark costs what that store's miss costs (the benchmark's
//! 14-16 ns a mark is measured after a fence, without it). A mark without a locked
//! instruction (per-thread logs the sync gathers) would let the store retire in the
//! background; not tried. The same compare-and-swap is also where a thread pays for the
//! write-backs of its previous sync: a sync returns once its fence is issued (as
//! `pmem_persist` does), and a locked instruction waits for CLWBs still in flight.
//!
//! An entry is its own sort key, `(first + 1) << 7 | count` (never 0, the empty slot):
//! a sync of the whole mapping copies the entries out as they are and sorts them.

use std::sync::atomic::{AtomicU64, Ordering::*};

/// Lines in one entry at most; larger ranges use the bitmap.
pub(crate) const MAX_RUN: usize = 64;
/// Bits of an entry below the first line: its count.
pub(crate) const COUNT_BITS: u32 = 7;
const _: () = assert!(MAX_RUN < 1 << COUNT_BITS);
/// First lines this high go to the bitmap (never reached: 2^57 lines).
const MAX_FIRST: u64 = (1 << (64 - COUNT_BITS)) - 2;
/// Entries in the largest ring (512 KiB): a mapping of fewer lines gets a ring of as
/// many entries as it has lines (at least `MIN_CAP`), so memory follows the mapping's
/// size (a 4 KiB mapping: one page).
const CAP: usize = 1 << 16;
const MIN_CAP: usize = 512;
/// A slot taken by a drain that could not advance `head` past it (never an entry).
const CONSUMED: u64 = u64::MAX;

/// The entry (and sort key) of lines [first, first+count), 0 < count <= MAX_RUN.
#[inline(always)]
pub fn key(first: usize, count: usize) -> u64 {
    debug_assert!(count > 0 && count <= MAX_RUN && first as u64 <= MAX_FIRST);
    ((first as u64 + 1) << COUNT_BITS) | count as u64
}

/// The (first line, count) of an entry.
#[inline(always)]
pub fn unkey(k: u64) -> (usize, usize) {
    (
        ((k >> COUNT_BITS) - 1) as usize,
        (k & ((1 << COUNT_BITS) - 1)) as usize,
    )
}

pub struct MarkLog {
    slots: *const AtomicU64,
    /// Entries in the ring (a power of two), less one.
    mask: u64,
    region_len: usize,
    /// Low 32 bits: the next ticket (a position, modulo 2^32). High 32 bits: the lines
    /// of every entry pushed (modulo 2^32), added by the same compare-and-swap, so the
    /// lines waiting in the ring are known without reading it (`pending_lines`).
    tail: AtomicU64,
    /// The next position to take (modulo 2^32).
    head: AtomicU64,
    /// The tail's line count as of the last drain.
    drained: AtomicU64,
    /// Lines a consumer took out of the ring and keeps elsewhere until written back
    /// (a ranged sync's spill, sync.rs): counted in `pending_lines` too.
    held: AtomicU64,
}

/// Positions are counted modulo 2^32 (the low half of `tail`).
const POS: u64 = 0xffff_ffff;

/// Positions from `from` up to `to` (modulo 2^32).
#[inline(always)]
fn span(from: u64, to: u64) -> u64 {
    to.wrapping_sub(from) & POS
}

// SAFETY: the slots are reached only through atomics; the region lives as long as self.
unsafe impl Send for MarkLog {}
// SAFETY: as above.
unsafe impl Sync for MarkLog {}

impl MarkLog {
    /// A ring for a mapping of `lines` lines.
    pub fn new(lines: usize) -> std::io::Result<MarkLog> {
        let cap = lines.next_power_of_two().clamp(MIN_CAP, CAP);
        let region_len = cap * 8;
        // Zero-filled: every slot starts empty.
        let p = crate::sys::anon_region(region_len)?;
        Ok(MarkLog {
            slots: p as *const AtomicU64,
            mask: cap as u64 - 1,
            region_len,
            tail: AtomicU64::new(0),
            head: AtomicU64::new(0),
            drained: AtomicU64::new(0),
            held: AtomicU64::new(0),
        })
    }

    #[inline(always)]
    fn slot(&self, i: u64) -> &AtomicU64 {
        // SAFETY: the index is reduced modulo the ring's size, inside the region.
        unsafe { &*self.slots.add((i & self.mask) as usize) }
    }

    /// Append lines [first, first+count). False when the caller must use the bitmap:
    /// the ring is full, or the range does not fit an entry.
    #[inline]
    pub fn push(&self, first: usize, count: usize) -> bool {
        if count == 0 || count > MAX_RUN || first as u64 > MAX_FIRST {
            return false;
        }
        let v = key(first, count);
        // One position and `count` lines (a carry out of the position at 2^32 adds a
        // line to the count: a statistic, off by one every 4 billion marks).
        let step = 1 | (count as u64) << 32;
        let mut t = self.tail.load(Relaxed);
        loop {
            if span(self.head.load(Acquire), t) > self.mask {
                return false;
            }
            match self
                .tail
                .compare_exchange_weak(t, t.wrapping_add(step), SeqCst, Relaxed)
            {
                Ok(_) => break,
                Err(cur) => t = cur,
            }
        }
        self.slot(t).store(v, Release);
        true
    }

    /// Take every entry published so far, as (first line, count). One consumer at a
    /// time (the caller holds the mapping's sync lock). Never waits.
    #[inline]
    pub fn drain(&self, mut f: impl FnMut(usize, usize)) {
        let h = self.head.load(Relaxed);
        let t = self.tail.load(SeqCst);
        let mut stop = None;
        for i in h..h + span(h, t) {
            if let Some(k) = self.take_slot(i, &mut stop) {
                let (first, count) = unkey(k);
                f(first, count);
            }
        }
        self.end_drain(stop, h, t);
    }

    /// Advance `head` to `stop` or to `t`, and the drained line count to `t`'s (a mark
    /// left unpublished at `stop` is no longer counted as pending: a statistic, in
    /// that rare race only).
    #[inline(always)]
    fn end_drain(&self, stop: Option<u64>, h: u64, t: u64) {
        self.head
            .store(stop.unwrap_or(h + span(h, t)) & POS, Release);
        self.drained.store(t >> 32, Relaxed);
    }

    /// Entries published or being published now (a sync's estimate of what it takes).
    pub fn pending(&self) -> usize {
        span(self.head.load(Relaxed), self.tail.load(Relaxed)) as usize
    }

    /// Lines marked through the ring and not yet written back: those in the ring now
    /// plus those a consumer holds (`hold`). A line marked twice counts twice. A few
    /// loads; async-signal-safe.
    pub fn pending_lines(&self) -> u64 {
        let pushed = self.tail.load(Relaxed) >> 32;
        (pushed.wrapping_sub(self.drained.load(Relaxed)) & POS) + self.held.load(Relaxed)
    }

    /// The consumer now keeps `lines` lines taken from the ring (for `pending_lines`).
    pub fn hold(&self, lines: u64) {
        self.held.store(lines, Relaxed);
    }

    /// Take every entry published so far into `keys`, as they are (sort keys), through
    /// one exact-size extend. A slot without an entry (a mark not yet published, or one
    /// taken before) gives line 0's key instead: one line written back for nothing, in
    /// those rare cases only.
    pub fn drain_keys(&self, keys: &mut impl Extend<u64>) {
        let h = self.head.load(Relaxed);
        let t = self.tail.load(SeqCst);
        let mut stop = None;
        keys.extend((h..h + span(h, t)).map(|i| {
            let s = self.slot(i);
            let v = s.load(Acquire);
            // The common case: an entry (neither 0 nor CONSUMED), nothing left behind.
            if v.wrapping_add(1) > 1 && stop.is_none() {
                s.store(0, Relaxed);
                v
            } else {
                Self::take_odd(s, i, v, &mut stop).unwrap_or(key(0, 1))
            }
        }));
        self.end_drain(stop, h, t);
    }

    /// Take position `i` (below `tail`). `stop` is the first position found empty
    /// (`head` cannot pass it); slots taken after it are left CONSUMED, the others
    /// emptied.
    #[inline(always)]
    fn take_slot(&self, i: u64, stop: &mut Option<u64>) -> Option<u64> {
        let s = self.slot(i);
        let v = s.load(Acquire);
        Self::take_odd(s, i, v, stop)
    }

    /// `take_slot` once the slot's value `v` was read.
    #[inline]
    fn take_odd(s: &AtomicU64, i: u64, v: u64, stop: &mut Option<u64>) -> Option<u64> {
        if v == 0 {
            if stop.is_none() {
                *stop = Some(i);
            }
            return None;
        }
        s.store(if stop.is_none() { 0 } else { CONSUMED }, Relaxed);
        (v != CONSUMED).then_some(v)
    }

    /// In a forked child: a ticket taken by a thread the child does not have will never
    /// be published. Async-signal-safe.
    pub fn after_fork_child(&self) {
        let h = self.head.load(Relaxed);
        let t = self.tail.load(Relaxed);
        for i in h..h + span(h, t) {
            let s = self.slot(i);
            if s.load(Relaxed) == 0 {
                s.store(CONSUMED, Relaxed);
            }
        }
    }
}

impl Drop for MarkLog {
    fn drop(&mut self) {
        // SAFETY: the region was mapped by new() with this length and nothing else uses it.
        let _ = unsafe { crate::sys::munmap(self.slots as usize, self.region_len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_drain_roundtrip_and_full_ring_refuses() {
        let l = MarkLog::new(1 << 30).unwrap();
        assert!(l.push(5, 1));
        assert!(l.push(0, 64));
        assert!(!l.push(0, 65));
        assert!(!l.push(0, 0));
        let mut got = vec![];
        l.drain(|f, c| got.push((f, c)));
        assert_eq!(got, vec![(5, 1), (0, 64)]);
        for i in 0..CAP {
            assert!(l.push(i, 1));
        }
        assert!(!l.push(1, 1), "full");
        let mut n = 0;
        l.drain(|_, _| n += 1);
        assert_eq!(n, CAP);
        assert!(l.push(1, 1));
    }

    #[test]
    fn drain_keys_skips_what_is_not_published_and_keeps_it_for_later() {
        let l = MarkLog::new(1 << 20).unwrap();
        assert!(l.push(1, 1));
        let t = l.tail.fetch_add(1, SeqCst);
        assert!(l.push(3, 2));
        let mut keys: Vec<u64> = vec![];
        l.drain_keys(&mut keys);
        // The unpublished slot gives line 0's key (one line written back for nothing).
        assert_eq!(keys, vec![key(1, 1), key(0, 1), key(3, 2)]);
        assert_eq!(l.head.load(SeqCst), t & POS);
        l.slot(t).store(key(7, 1), Release);
        keys.clear();
        l.drain_keys(&mut keys);
        // The late entry; the consumed one after it gives line 0's key.
        assert_eq!(keys, vec![key(7, 1), key(0, 1)]);
        assert_eq!(l.head.load(SeqCst), l.tail.load(SeqCst) & POS);
        keys.clear();
        assert!(l.push(9, 1));
        l.drain_keys(&mut keys);
        assert_eq!(keys, vec![key(9, 1)]);
    }

    #[test]
    fn a_small_mapping_gets_a_small_ring() {
        let l = MarkLog::new(64).unwrap();
        assert_eq!(l.region_len, MIN_CAP * 8);
        for i in 0..MIN_CAP {
            assert!(l.push(i % 64, 1));
        }
        assert!(!l.push(1, 1), "full at MIN_CAP");
        let mut n = 0;
        l.drain(|_, _| n += 1);
        assert_eq!(n, MIN_CAP);
        assert_eq!(MarkLog::new(1 << 40).unwrap().region_len, CAP * 8);
    }

    #[test]
    fn a_drain_never_waits_for_an_unpublished_mark() {
        let l = MarkLog::new(1 << 30).unwrap();
        assert!(l.push(1, 1));
        // A producer that took a ticket and has not stored yet (interrupted).
        let t = l.tail.fetch_add(1, SeqCst);
        assert!(l.push(3, 2));
        let mut got = vec![];
        l.drain(|f, c| got.push((f, c)));
        assert_eq!(got, vec![(1, 1), (3, 2)]);
        assert_eq!(
            l.head.load(SeqCst),
            t & POS,
            "head stops at the unpublished slot"
        );
        // It publishes; the next drain takes it and skips what was taken.
        l.slot(t).store(key(7, 1), Release);
        assert!(l.push(9, 1));
        got.clear();
        l.drain(|f, c| got.push((f, c)));
        assert_eq!(got, vec![(7, 1), (9, 1)]);
        assert_eq!(l.head.load(SeqCst), l.tail.load(SeqCst) & POS);
        // A ticket a fork cut off: the child marks it consumed.
        let _ = l.tail.fetch_add(1, SeqCst);
        l.after_fork_child();
        got.clear();
        l.drain(|f, c| got.push((f, c)));
        assert!(got.is_empty());
        assert_eq!(l.head.load(SeqCst), l.tail.load(SeqCst) & POS);
    }

    #[test]
    fn positions_wrap_at_2_32_and_lines_are_counted() {
        let l = MarkLog::new(1 << 30).unwrap();
        l.tail.store(POS - 2, SeqCst);
        l.head.store(POS - 2, SeqCst);
        for i in 0..6 {
            assert!(l.push(i * 10, i + 1));
        }
        assert_eq!(l.pending(), 6);
        assert_eq!(
            l.pending_lines(),
            21 + 1,
            "the carry out of the position: one line"
        );
        let mut got = vec![];
        l.drain(|f, c| got.push((f, c)));
        assert_eq!(got, (0..6).map(|i| (i * 10, i + 1)).collect::<Vec<_>>());
        assert_eq!(l.head.load(SeqCst), 3);
        assert_eq!(l.pending(), 0);
        assert_eq!(l.pending_lines(), 0);
        assert!(l.push(1, 64));
        l.hold(5);
        assert_eq!(l.pending_lines(), 69);
        let mut keys: Vec<u64> = vec![];
        l.drain_keys(&mut keys);
        assert_eq!(keys, vec![key(1, 64)]);
        assert_eq!(l.pending_lines(), 5);
    }
}
