//! Making a mapping's dirty data durable: write back exactly the dirty lines (pmem) or
//! one msync over the span of the dirty pages (page cache).

use crate::cpu::{self, Flush};
use crate::error::{Error, Result};
use crate::flush;
use crate::map::{Mapping, SyncScratch, Track};
use crate::sys;
use std::sync::atomic::{
    AtomicU64,
    Ordering::{Relaxed, SeqCst},
};

/// Process-wide counters (see `daxpmem_counter` in the C API): msync calls seen, handled
/// in user space and passed to the kernel by the preload library. The fourth, lines
/// written back by every sync, is not kept here: see `lines_total`.
static COUNTERS: [AtomicU64; 3] = [const { AtomicU64::new(0) }; 3];
const LINES: u32 = 3;

/// Add `n` to counter `id` and return the new value.
pub fn counter(id: u32, n: u64) -> Result<u64> {
    match (id, COUNTERS.get(id as usize)) {
        (LINES, _) if n == 0 => Ok(lines_total()),
        (LINES, _) => Err(Error::at(
            libc::EINVAL,
            "counter",
            "lines written back are counted by the library, not added to",
        )),
        (_, Some(c)) => Ok(c.fetch_add(n, Relaxed).wrapping_add(n)),
        _ => Err(Error::at(
            libc::EINVAL,
            "counter",
            "no such counter",
        )),
    }
}

/// Lines written back by mappings since unmapped.
static RETIRED_LINES: AtomicU64 = AtomicU64::new(0);
/// Unmaps retiring a mapping's count right now, and how many have begun.
static RETIRING: AtomicU64 = AtomicU64::new(0);
static RETIRE_GEN: AtomicU64 = AtomicU64::new(0);

/// A sync counts its lines in its own mapping only, with a plain store (it holds the
/// sync lock): a locked add after the write-backs would wait for every one of them to
/// complete, which the fence does not (measured, 2026-11-21: 0.15 us more for a
/// one-line sync, 0.8 us for 100 lines). The process total is the sum over the live
/// mappings plus what unmapped ones had (`retire`), read consistently: a read that an
/// unmap overlapped is retried.
fn count_lines(m: &Mapping, n: u64) {
    let c = &m.counters.lines_written_back;
    c.store(c.load(Relaxed) + n, Relaxed);
}

/// Unregister `m` (`remove`), keeping its written-back lines in the process total.
/// The caller holds the sync lock (a sync still running on the mapping finishes first
/// and is counted). Signals are blocked: a handler reading the total on this thread
/// would otherwise find this window open for all its tries.
pub fn retire(m: &Mapping, remove: impl FnOnce()) {
    let _mask = sys::SignalsBlocked::all();
    RETIRING.fetch_add(1, SeqCst);
    RETIRE_GEN.fetch_add(1, SeqCst);
    // Unregistered first, counted after: a reader that gives up waiting (below) may
    // miss these lines for a moment, but never counts them twice.
    remove();
    RETIRED_LINES.fetch_add(m.counters.lines_written_back.load(SeqCst), SeqCst);
    RETIRE_GEN.fetch_add(1, SeqCst);
    RETIRING.fetch_sub(1, SeqCst);
}

/// In a forked child: a thread that was retiring a mapping at the fork is gone.
pub fn after_fork_child() {
    RETIRING.store(0, SeqCst);
    RETIRE_GEN.fetch_add(1, SeqCst);
}

/// In a forked child, the sync state `s` of mapping `m` whose sync lock another thread
/// held at the fork (that thread is gone; `m.sync_lock` starts afresh after this): every
/// line it held is marked in the index again, so that the child's next sync writes it
/// back — the entries a ranged sync kept out of its range (the spill, which lives on
/// from sync to sync), and what the interrupted sync had taken and not yet written back
/// (its collected entries, its index runs). Lines it had written back already are
/// written back again: harmless. The state may be half changed, and a vector's buffer
/// freed by a growth whose new pointer was not yet stored, so the buffers are read
/// through the kernel (`sys::read_own_words`) and every entry is checked against the
/// mapping; if any could not be read, the mapping's later syncs fail with EIO (sticky,
/// as after a failed write-back): the child cannot vouch for those lines.
/// Async-signal-safe (no allocation: the index is marked in place).
///
/// # Safety
/// `s` points to `m`'s sync scratch, in a forked child (no other thread exists).
pub(crate) unsafe fn salvage_after_fork(m: &Mapping, s: *const SyncScratch) {
    // SAFETY: `s` is the mapping's scratch, alive (the mapping is); only this thread
    // exists. Each field is a value the holder stored (a fork copies memory at one
    // instant, and word stores are not torn), so the vectors are valid values; only
    // their pointers and lengths are read here, never their buffers.
    let s = unsafe { &*s };
    let lines = m.lines();
    let mut ok = true;
    let mut key = |k: u64| {
        // A key is ((first + 1) << COUNT_BITS) | count, 1 <= count <= MAX_RUN: below
        // 1 << COUNT_BITS it is no key (and `unkey` would underflow).
        if k >> crate::marklog::COUNT_BITS == 0 {
            return;
        }
        let (f, c) = crate::marklog::unkey(k);
        if f < lines && (1..=crate::marklog::MAX_RUN).contains(&c) {
            m.index.mark(f, (f + c).min(lines));
        }
    };
    let [spill, passed] = s.spill.raw_keys();
    for (at, n) in [s.order.raw_keys(), spill, passed] {
        ok &= sys::read_own_words(at, n, &mut key);
    }
    for v in [&s.taken, &s.runs] {
        // (first line, count) pairs, as two words each.
        let mut first = None;
        ok &= sys::read_own_words(v.as_ptr() as usize, v.len() * 2, |w| {
            match first.take() {
                None => first = Some(w as usize),
                Some(f) if f < lines => m.index.mark(f, f.saturating_add(w as usize).min(lines)),
                Some(_) => {}
            }
        });
    }
    m.log.hold(0);
    if !ok {
        m.note_fork_loss();
    }
}

/// Lines written back by every sync in the process. Exact unless unmaps keep
/// overlapping the read: after `TRIES` attempts it returns a sum that may miss the
/// mapping being retired (never one counted twice). Async-signal-safe (no lock; the
/// retiring thread blocks signals, so a handler never waits for its own thread).
fn lines_total() -> u64 {
    const TRIES: u32 = 1000;
    let sum = || {
        let mut n = RETIRED_LINES.load(SeqCst);
        crate::registry::scan(&mut |m| {
            n += m.counters.lines_written_back.load(SeqCst);
            false
        });
        n
    };
    for _ in 0..TRIES {
        let gen = RETIRE_GEN.load(SeqCst);
        if RETIRING.load(SeqCst) == 0 {
            let n = sum();
            if RETIRING.load(SeqCst) == 0 && RETIRE_GEN.load(SeqCst) == gen {
                return n;
            }
        }
        std::hint::spin_loop();
    }
    sum()
}

/// `sync` through a user of the mapping (a handle's call), which is given back before
/// the write-backs: giving it back is a locked instruction, and one after the
/// write-backs would wait for all of them to complete (see `write_back`). The mapping
/// stays pinned by its sync lock instead: it is freed only once retired, and every
/// retirement (handle.rs) takes the sync lock first.
pub fn sync_ref(r: crate::registry::Ref, addr: usize, len: usize) -> Result<()> {
    let p: *const Mapping = &*r;
    // SAFETY: the mapping lives while `r` is held; once the lock below is held and the
    // mapping is not dead, it lives while the lock is held (no retirement, hence no
    // free, can happen before the unlock, which is the last access through `m`).
    let m: &Mapping = unsafe { &*p };
    let mut scratch = m.sync_lock.lock().map_err(|_| reentered("sync"))?;
    if m.dead.load(Relaxed) {
        // Retired while this call waited: `r` may be its last user and must outlive
        // the guard.
        drop(scratch);
        drop(r);
        return Err(Error::new(
            libc::EBADF,
            "sync: the mapping was unmapped or split while the call waited",
        ));
    }
    drop(r);
    sync_pinned(m, addr, len, &mut scratch)
}

pub use crate::map::reentered;

/// Sync `[addr, addr+len)` of `m` (already checked to lie inside it).
///
/// On success every line marked before this call began has been written back and
/// fenced (pmem), or msync'ed (page cache). A failed msync puts the lines it took back
/// in the index, but the kernel may already have marked the pages clean: the failure is
/// sticky, and this and every later sync of the mapping fails with EIO until it is
/// unmapped (`Mapping::check_failed`); so does a sync that met a page past the end of
/// the file (signals.rs), after writing back every other line.
pub fn sync(m: &Mapping, addr: usize, len: usize) -> Result<()> {
    let mut scratch = m.sync_lock.lock().map_err(|_| reentered("sync"))?;
    if m.dead.load(Relaxed) {
        return Err(Error::new(
            libc::EBADF,
            "sync: the mapping was unmapped or split while the call waited",
        ));
    }
    sync_pinned(m, addr, len, &mut scratch)
}

/// The sync proper, under the lock of a live mapping; then the sticky failure check.
fn sync_pinned(m: &Mapping, addr: usize, len: usize, scratch: &mut SyncScratch) -> Result<()> {
    let r = sync_locked(m, addr, len, scratch);
    #[cfg(feature = "seam")]
    crate::seam::sync_end();
    r?;
    m.check_failed("sync")
}

fn sync_locked(m: &Mapping, addr: usize, len: usize, scratch: &mut SyncScratch) -> Result<()> {
    // Under the sync lock: a plain add (a locked one costs as much as the rest of a
    // one-line sync's bookkeeping when stores are in flight).
    let syncs = &m.counters.syncs;
    syncs.store(syncs.load(Relaxed) + 1, Relaxed);
    let (lo, hi) = m.lines_of(addr, len);
    if m.track == Track::Kernel {
        // The kernel knows what is dirty: explicit marks on pmem are written back, then
        // one msync of the range (none on device DAX, which has no page cache).
        if m.pmem {
            write_back(m, lo, hi, scratch)?;
        } else {
            collect(m, lo, hi, scratch)?;
        }
        return if m.kind.devdax {
            Ok(())
        } else {
            kernel_msync(m, addr, len)
        };
    }
    if m.pmem {
        return write_back(m, lo, hi, scratch);
    }
    collect(m, lo, hi, scratch)?;
    let runs = &scratch.runs;
    let (Some(&(first, _)), Some(&(lf, lc))) = (runs.first(), runs.last()) else {
        return Ok(());
    };
    let start = sys::page_down(m.addr() + (first << m.line_shift));
    let end =
        sys::page_up(m.addr() + ((lf + lc) << m.line_shift)).min(sys::page_up(m.addr() + m.len()));
    m.counters.msync_calls.fetch_add(1, Relaxed);
    if let Err(e) = msync_hook(start, end - start) {
        restore(m, runs);
        m.note_write_back_failure(e.errno);
        return Err(Error::new(e.errno, format!("sync: {}", e.msg)));
    }
    count_lines(m, runs.iter().map(|r| r.1 as u64).sum());
    Ok(())
}

/// Entries a ranged sync keeps out of the index at most (`SyncScratch::spill`): 512
/// KiB, as many as the largest mark log holds. Past it, what lies outside a ranged
/// sync's range goes to the index as before. (At 4096, four ranged syncs over 10 000
/// marks cost 1.8x one whole sync: 3400 random index marks.)
const SPILL_MAX: usize = 1 << 16;

/// Take every dirty line of [lo, hi): the mark log's entries into `scratch.order` and
/// the index's bits into `scratch.taken` (through the tracker, which re-protects
/// first). On error nothing taken is lost: it goes back into the index.
///
/// A ranged sync drains the whole log: the parts of entries outside its range are
/// kept as entries in `scratch.spill` (up to `SPILL_MAX`), not set in the index. The
/// index of a huge sparse mapping is backed by memory only where a bit was set, and
/// one scattered mark would fault in (and keep) a page of it: measured on a 1 TiB
/// mapping, 1000 scattered marks cost a ranged sync 8 ms and 8 MB that way. The next
/// sync takes the spill as it takes the log.
fn gather(m: &Mapping, lo: usize, hi: usize, scratch: &mut SyncScratch) -> Result<()> {
    let SyncScratch {
        taken,
        order,
        spill,
        ..
    } = scratch;
    taken.clear();
    let id = m.reg_id.load(Relaxed);
    let ringed = if id != 0 { crate::rings::pending() } else { 0 };
    order.begin(m.log.pending() + spill.len() + ringed, m.lines());
    let rings = if lo == 0 && hi >= m.lines() {
        // The whole mapping: the entries are the keys. The per-thread rings first: what
        // they hold of other mappings goes to those mappings' logs (rings.rs).
        let r = crate::rings::take_runs(id, |run| order.extend_from(run));
        // Not after a failure (a handler that interrupted a sync holding a ring's lock):
        // the call fails without allocating (the interrupted code may hold the
        // allocator's lock), and what is left stays for the next sync.
        if r.is_ok() {
            m.log.drain_keys(order);
            if !spill.is_empty() {
                order.extend(spill.drain_all());
                m.log.hold(0);
            }
        }
        r
    } else if spill.is_empty() && m.log.pending() == 0 {
        // Part of the mapping, nothing spilled, nothing in the mark log (the usual
        // ranged sync): `gather_range` without its out-of-line call, whose saved
        // registers cost a ranged sync of one mark ~5 %.
        let mut copied = false;
        let r = crate::rings::take_runs(id, |run| {
            ranged_run(m, lo, hi, run, order, spill, &mut copied)
        });
        // Anything the runs left in the spill, or forwarded to the mark log meanwhile
        // (by a sync of another mapping), as `gather_range` does.
        if !spill.is_empty() || m.log.pending() != 0 {
            range_tail(m, lo, hi, order, spill, 0, copied, r.is_ok());
        }
        r
    } else {
        gather_range(m, lo, hi, id, order, spill)
    };
    let mut failed = rings.err().map(|_| reentered("sync"));
    if failed.is_none() {
        let a = m.addr() + (lo << m.line_shift);
        let l = ((hi - lo) << m.line_shift).min(m.addr() + m.len() - a);
        if let Err(e) = crate::track::take(m, a, l, lo, hi, &mut |f, c| taken.push((f, c))) {
            failed = Some(e);
        }
    }
    if let Some(e) = failed {
        // Nothing taken is lost: back into the index.
        for &k in order.keys() {
            let (f, c) = crate::marklog::unkey(k);
            m.index.mark(f, f + c);
        }
        restore(m, taken);
        return Err(e);
    }
    Ok(())
}

/// `gather`'s new entries for a sync of part of the mapping, lines [lo, hi): what lies
/// in the range into `order`, the rest kept in `spill` (or the index). Out of line: its
/// changes moved the whole-mapping path's code (2-5 % at k = 100 in `bench/ab_sync`,
/// with the whole path's source unchanged).
#[inline(never)]
fn gather_range(
    m: &Mapping,
    lo: usize,
    hi: usize,
    id: u64,
    order: &mut crate::order::Scratch,
    spill: &mut crate::order::Spill,
) -> std::result::Result<(), crate::lock::Reentered> {
    // What the spill holds of the range, while it is in key order (two binary
    // searches); the rest stays.
    let late = spill.unsorted();
    if !late {
        spill.take_into(lo, hi, order);
    }
    let from = spill.len();
    let mut copied = false;
    // The new entries: runs wholly in the range into the sync; while the spill is
    // small, runs out of key order into it as they are (the spill's pass below
    // sorts them out); else each entry wholly in the range into the sync, wholly
    // outside into the spill as it is (inline: most entries of a ranged sync over
    // part of the marks), the rest (straddling, or a full spill) through `outside`.
    let r = crate::rings::take_runs(id, |run| {
        ranged_run(m, lo, hi, run, order, spill, &mut copied)
    });
    range_tail(m, lo, hi, order, spill, from, late || copied, r.is_ok());
    r
}

/// The end of a ranged sync's gathering, after the rings: the mark log drained (after
/// the rings: a sync of another mapping may have forwarded this mapping's ring entries
/// there), the spill's order noted (`from`: its length before this sync's pushes), its
/// part in the range taken when `take` (it was out of order, or runs were copied there
/// whole), the lines held counted. When the rings failed (`!rings_ok`: a handler that
/// interrupted a sync), neither the log nor the spill is taken (they stay for the next
/// sync) and nothing is allocated.
/// Out of line: `gather`'s short way calls it only when the rings left something.
#[allow(clippy::too_many_arguments)]
#[inline(never)]
fn range_tail(
    m: &Mapping,
    lo: usize,
    hi: usize,
    order: &mut crate::order::Scratch,
    spill: &mut crate::order::Spill,
    from: usize,
    take: bool,
    rings_ok: bool,
) {
    if rings_ok {
        m.log.drain(|f, c| {
            if inside(f, c, lo, hi) {
                order.push(crate::marklog::key(f, c));
            } else {
                outside(m, lo, hi, f, c, order, spill);
            }
        });
    }
    spill.settle(from);
    if take && rings_ok {
        // The spill's part of the range now (with the runs just put there).
        spill.take_into(lo, hi, order);
    }
    m.log.hold(spill.lines());
}

/// Whether lines [f, f+c) lie wholly in lines [lo, hi).
#[inline(always)]
fn inside(f: usize, c: usize, lo: usize, hi: usize) -> bool {
    f >= lo && f + c <= hi
}

/// `inside` for an entry (`marklog::key`).
#[inline(always)]
fn key_in(k: u64, lo: usize, hi: usize) -> bool {
    let (f, c) = crate::marklog::unkey(k);
    inside(f, c, lo, hi)
}

/// A ring run of a ranged sync over lines [lo, hi). A run wholly in the range (a range
/// over what was just marked) is collected as a whole sync collects it (its ends
/// first: a run of marks all over the mapping is seldom inside); else `split_run`.
#[inline(always)]
fn ranged_run(
    m: &Mapping,
    lo: usize,
    hi: usize,
    run: &[std::sync::atomic::AtomicU64],
    order: &mut crate::order::Scratch,
    spill: &mut crate::order::Spill,
    copied: &mut bool,
) {
    let ends = [run.first(), run.last()];
    let ends_in = ends.iter().flatten().all(|e| key_in(e.load(Relaxed), lo, hi));
    if ends_in && order.extend_from_in(run, lo, hi) {
        return;
    }
    *copied |= split_run(m, lo, hi, run, order, spill, ends_in);
}

/// A ring run of a ranged sync over lines [lo, hi) that does not lie wholly in it, or
/// too long to be collected as a whole (`ends_in`: its two ends lie in the range).
/// Out of order (its first entries tell: a test of every pair cost a sorted run of
/// 100 marks ~0.1 us), its ends not both in the range, and room in the spill: into the
/// spill as it is (sorting it, or pushing its keys into the sync at random, would cost
/// more than the spill's pass); returns true. Else entry by entry (as a run whose ends
/// lie in the range, which mostly does: copied, 10 000 random marks in one range cost
/// the copy and the pass, 10-15 % of the sync): wholly in the range into the sync,
/// wholly outside into the spill as it is (inline: most entries of a ranged sync over
/// part of the marks), the rest (straddling, or a full spill) through `outside`;
/// returns false. Out of line, once a run: the run's closure in `gather` stays small
/// enough to inline (left out of line, it cost a one-mark ranged sync 10-15 %).
#[inline(never)]
fn split_run(
    m: &Mapping,
    lo: usize,
    hi: usize,
    run: &[std::sync::atomic::AtomicU64],
    order: &mut crate::order::Scratch,
    spill: &mut crate::order::Spill,
    ends_in: bool,
) -> bool {
    if !ends_in
        && spill.len() + run.len() <= SPILL_MAX
        && run
            .windows(2)
            .take(8)
            .any(|w| w[0].load(Relaxed) > w[1].load(Relaxed))
    {
        spill.extend_from(run);
        return true;
    }
    if let Some((i0, i1)) = sorted_split(run, lo, hi) {
        if spill.len() + run.len() - (i1 - i0) <= SPILL_MAX {
            // In key order, one line each: the part before the range, the range's and
            // the part after it, one copy each (the spill stays in key order).
            spill.extend_from(&run[..i0]);
            order.extend_from(&run[i0..i1]);
            spill.extend_from(&run[i1..]);
            return false;
        }
    }
    for e in run {
        let k = e.load(Relaxed);
        let (f, c) = crate::marklog::unkey(k);
        if inside(f, c, lo, hi) {
            order.push(k);
        } else if (f + c <= lo || f >= hi) && spill.len() < SPILL_MAX {
            spill.push(k);
        } else {
            outside(m, lo, hi, f, c, order, spill);
        }
    }
    false
}

/// Where lines [lo, hi) lie in `run` when its entries are in key order and each one
/// line long (the run of a caller marking records as it goes, in address order): the
/// entries from `.0` to `.1` lie in the range, the others wholly outside it (key order
/// is line order). None otherwise. One pass (a branch-free test of every entry), then two
/// binary searches: measured, the entry-by-entry split cost 4-5 ns an entry.
fn sorted_split(run: &[std::sync::atomic::AtomicU64], lo: usize, hi: usize) -> Option<(usize, usize)> {
    let (mut prev, mut ok) = (0, true);
    for e in run {
        let k = e.load(Relaxed);
        ok &= (k >= prev) & (crate::marklog::unkey(k).1 == 1);
        prev = k;
    }
    let below = |line: usize| {
        let bound = crate::marklog::key(line, 1);
        run.partition_point(|e| e.load(Relaxed) < bound)
    };
    ok.then(|| (below(lo), below(hi)))
}

/// A new entry `[f, f+c)` that a ranged sync over `[lo, hi)` does not hold entirely:
/// its part in the range into the sync, the parts outside kept in the spill (up to
/// `SPILL_MAX` entries, then in the index). Out of line: the rare case (a ring entry
/// wholly outside goes to the spill inline, in `gather`).
#[cold]
#[inline(never)]
fn outside(
    m: &Mapping,
    lo: usize,
    hi: usize,
    f: usize,
    c: usize,
    order: &mut crate::order::Scratch,
    spill: &mut crate::order::Spill,
) {
    let (s, e) = (f.max(lo), (f + c).min(hi));
    if s < e {
        order.push(crate::marklog::key(s, e - s));
    }
    let mut keep = |f: usize, c: usize| {
        if spill.len() < SPILL_MAX {
            spill.push(crate::marklog::key(f, c));
        } else {
            m.index.mark(f, f + c);
        }
    };
    if f < lo {
        keep(f, lo.min(f + c) - f);
    }
    if f + c > hi {
        let s = hi.max(f);
        keep(s, f + c - s);
    }
}

/// Move everything marked into the index: the mark log and a ranged sync's spill (the
/// caller holds the sync lock: `scratch` is its guard's). Before a split or a punched
/// hole, which work on the index.
pub fn all_to_index(m: &Mapping, scratch: &mut SyncScratch, what: &'static str) -> Result<()> {
    crate::rings::take(m.reg_id.load(Relaxed), |k| {
        let (f, c) = crate::marklog::unkey(k);
        m.index.mark(f, f + c)
    })
    .map_err(|_| reentered(what))?;
    for k in scratch.spill.drain_all() {
        let (f, c) = crate::marklog::unkey(k);
        m.index.mark(f, f + c);
    }
    m.log.hold(0);
    m.log.drain(|f, c| m.index.mark(f, f + c));
    Ok(())
}

/// Lines marked and not yet written back, for `dax_get_stats`: the index's count plus
/// the lines marked through the mark log since the last sync took them. A few loads,
/// no lock, whatever the mapping's size or the number of marks; a line marked more
/// than once since the last sync through the log may count more than once.
pub fn dirty_lines(m: &Mapping) -> u64 {
    m.index.dirty_lines()
        + m.log.pending_lines()
        + crate::rings::pending_lines(m.reg_id.load(Relaxed))
}

/// Take every dirty line of [lo, hi) into `scratch.runs`, ascending, disjoint and not
/// adjacent. On error nothing taken is lost.
fn collect(m: &Mapping, lo: usize, hi: usize, scratch: &mut SyncScratch) -> Result<()> {
    gather(m, lo, hi, scratch)?;
    let SyncScratch {
        runs, taken, order, ..
    } = scratch;
    runs.clear();
    crate::order::for_each_run(order, taken, |f, c| match runs.last_mut() {
        Some(last) if last.0 + last.1 == f => last.1 += c,
        _ => runs.push((f, c)),
    });
    Ok(())
}

/// Put taken runs back into the index (a sync that failed).
fn restore(m: &Mapping, runs: &[(usize, usize)]) {
    for &(f, c) in runs {
        m.index.mark(f, f + c);
    }
}

/// Pmem: take every dirty line of [lo, hi) first, then hand them out each once (order.rs:
/// in address order, or in mark order for up to 512 marked lines), writing each run
/// back as it comes out, then one fence, then count them. Taking comes first because CLWB and CLFLUSHOPT are ordered against locked
/// read-modify-write instructions: interleaving them with the index's atomic swaps
/// would wait for each write-back in turn (measured: 150 ns more per random line). For
/// the same reason no locked instruction follows the write-backs: it would wait for all
/// of them to complete, which the fence does not (the count is a plain add, the sync
/// lock's release a plain store).
fn write_back(m: &Mapping, lo: usize, hi: usize, scratch: &mut SyncScratch) -> Result<()> {
    let c = cpu::config();
    gather(m, lo, hi, scratch)?;
    if c.skip_writeback() {
        // eADR or PMEM_NO_FLUSH=1: what was taken is durable once fenced.
        flush::fence();
        return Ok(());
    }
    let SyncScratch { taken, order, .. } = scratch;
    let at = (m.addr(), m.line_shift, m.line);
    // A line past the end of a file shrunk under the mapping: its page is lost, the
    // loop goes on, the loss is recorded in the mapping (signals.rs). A plain store of
    // the thread's identity, no thread-local access (measured: 5 ns at k=1).
    m.writer.store(crate::lock::self_id() as usize, Relaxed);
    // The one branch on the instruction, outside the loop, which is inlined per case.
    let n = match c.flush {
        Flush::Clwb => write_runs::<flush::Clwb>(order, taken, at),
        Flush::Clflushopt => write_runs::<flush::Clflushopt>(order, taken, at),
        Flush::Clflush => write_runs::<flush::Clflush>(order, taken, at),
    };
    flush::fence();
    m.writer.store(0, Relaxed);
    count_lines(m, n);
    Ok(())
}

/// Hand the runs of `order` and `taken` to instruction `I` as the sort (or, for few
/// marks, the hash set: `for_each_line_unordered`) produces them, the write-back loop
/// inlined into its output. `at`: the mapping's address,
/// line shift and line size. Returns the lines written back.
#[inline(always)]
fn write_runs<I: flush::Insn>(
    order: &mut crate::order::Scratch,
    taken: &[(usize, usize)],
    (base, shift, line): (usize, u32, usize),
) -> u64 {
    crate::order::for_each_line_unordered(order, taken, |f, n| {
        // SAFETY: the lines lie inside the mapping, which stays mapped while the caller
        // holds a reference to it.
        unsafe { I::lines(base + (f << shift), n, line) }
    })
}

fn kernel_msync(m: &Mapping, addr: usize, len: usize) -> Result<()> {
    let start = sys::page_down(addr);
    let end = sys::page_up(addr + len);
    m.counters.msync_calls.fetch_add(1, Relaxed);
    msync_hook(start, end - start).map_err(|e| {
        m.note_write_back_failure(e.errno);
        Error::new(e.errno, format!("sync: {}", e.msg))
    })
}

#[cfg(not(feature = "seam"))]
fn msync_hook(addr: usize, len: usize) -> Result<()> {
    sys::msync(addr, len, libc::MS_SYNC)
}

/// With the seam, a test can make msync fail (to prove failed syncs keep the bits).
#[cfg(feature = "seam")]
fn msync_hook(addr: usize, len: usize) -> Result<()> {
    if let Some(errno) = crate::seam::msync_failure() {
        return Err(Error::new(errno, "msync: injected failure"));
    }
    sys::msync(addr, len, libc::MS_SYNC)
}

/// Punch a hole in `[addr, addr+len)` of `m` (checked to lie inside it, len > 0)
/// without a file descriptor (the mapping keeps none): the dirty bits of lines wholly
/// inside are dropped, the whole pages of the range go with `MADV_REMOVE` (the kernel's
/// `fallocate(PUNCH_HOLE|KEEP_SIZE)` on the mapped file, at the pages' file offsets),
/// the partial pages at the edges are zeroed through the mapping and synced (with the
/// rest of their lines), and an `msync(MS_SYNC)` of the range (`vfs_fsync_range` with
/// datasync, as `fdatasync`) makes the hole's metadata durable when this returns.
pub fn punch_hole(m: &Mapping, addr: usize, len: usize) -> Result<()> {
    if m.kind.devdax {
        return Err(Error::new(
            libc::EOPNOTSUPP,
            "punch hole: device DAX has no file to punch",
        ));
    }
    let end = addr + len;
    let l = m.line;
    let inner_lo = (addr + l - 1) & !(l - 1);
    let inner_hi = end & !(l - 1);
    // [p_lo, p_hi): the whole pages; [addr, p_lo) and [p_hi, end): the edges.
    let p_lo = sys::page_up(addr).min(end);
    let p_hi = sys::page_down(end).max(p_lo);
    if inner_lo < inner_hi {
        let mut g = m
            .sync_lock
            .lock()
            .map_err(|_| reentered("punch hole"))?;
        all_to_index(m, &mut g, "punch hole")?;
        let (lo, hi) = m.lines_of(inner_lo, inner_hi - inner_lo);
        m.index.clear(lo, hi);
    }
    if p_lo < p_hi {
        // SAFETY: the caller gives up the contents of the hole; the pages stay mapped.
        unsafe { sys::madvise(p_lo, p_hi - p_lo, libc::MADV_REMOVE) }.map_err(|e| {
            Error::new(
                e.errno,
                format!("punch hole: madvise(MADV_REMOVE): {}", e.msg),
            )
        })?;
    }
    // SAFETY: both edges lie inside the mapping (the range was checked by the caller).
    unsafe {
        if addr < p_lo {
            m.fill_in(addr, 0, p_lo - addr)?;
        }
        if p_hi < end {
            m.fill_in(p_hi, 0, end - p_hi)?;
        }
    }
    // The edge lines (zeroed, and whatever else of theirs was dirty).
    sync(m, addr, len)?;
    if p_lo < p_hi {
        let s = sys::page_down(addr);
        if let Err(e) = sys::msync(s, sys::page_up(end) - s, libc::MS_SYNC) {
            // Sticky, as a failed sync (see `sync`).
            m.note_write_back_failure(e.errno);
            return Err(Error::new(e.errno, format!("punch hole: {}", e.msg)));
        }
    }
    Ok(())
}
