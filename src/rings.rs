//! Per-thread mark rings: a mark without a locked instruction.
//!
//! A mark through a mapping's shared log (marklog.rs) takes a user of the mapping and
//! a ticket: locked instructions, and a locked instruction waits for the record's own
//! store to leave the store buffer, so a mark costs what that store's cache miss costs
//! (perf, 2026-12-03: 84 % of `dax_mark_dirty`'s samples on the user's CAS), and
//! threads marking one mapping fight over its cache lines. Here a thread appends
//! `(mapping id, entry)` to a ring of its own with plain stores:
//!
//! - It finds its record by its thread pointer (`lock::self_id`), hashed into a fixed
//!   table; the first mark of a thread claims a free record (one CAS, once). A thread
//!   without one (more than `NREC` threads ever marked) uses the shared log.
//! - It touches no mapping memory: the mapping's range comes from its registry slot,
//!   which is never freed, read as a seqlock (state, range, state again: same LIVE
//!   generation). So nothing has to pin the mapping; an entry of a mapping unmapped
//!   meanwhile is dropped by whoever takes it (its generation is gone).
//! - A signal handler that interrupts a mark on the same thread marks through the
//!   shared log (`depth`): only the outermost mark on a thread writes its ring.
//!
//! A sync takes, under its mapping's sync lock, every ring's published entries (each
//! ring has a consumer lock; a thread's own ring included): its own mapping's into the
//! sync, the others' into their mappings' shared logs (`forward`), before it drains its
//! own shared log. `head` is advanced only after the forwarding, so a sync that finds
//! a ring empty (`head == tail`) knows every entry in it reached its log. A mark that
//! returned before a sync began is therefore taken by that sync: it is in a ring, or
//! forwarded into the shared log the sync drains after the rings.
//!
//! A split (handle.rs, `retire_keeping_marks`) retires the old mapping with every
//! consumer lock held (`Frozen`), so no sync forwards its entries meanwhile (it would
//! find the mapping retired and drop them), then runs a process-wide barrier
//! (`sys::process_barrier`): a mark appends, then checks that its mapping is live, with
//! a plain store and a plain load, so without the barrier an entry whose mark saw the
//! mapping live could still sit in its CPU's store buffer. Then it takes the entries
//! into the pieces.
//!
//! Fork: the child keeps every published entry; a mark another thread had half
//! written is simply not published; consumer locks and depths are reset.

use crate::lock::{self, Mutex};
use crate::marklog::{key, unkey, MAX_RUN};
use crate::registry;
use std::sync::atomic::{
    compiler_fence, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering::*,
};

/// Records (threads with a ring) at most.
const NREC: usize = 64;
/// Entries per ring (8 bytes each: 128 KiB per ring, 8 MiB for all in the library's
/// .bss, backed as it is used).
const CAP: u64 = 1 << 14;

/// An entry is a mark-log entry (`marklog::key`, below 2^63) of the mapping named by
/// the latest run entry before it: `RUN | id` (`id_of`), written when a thread marks
/// another mapping than its previous mark's.
type Entry = AtomicU64;
const RUN: u64 = 1 << 63;
/// First lines this high use the shared log (their keys would reach `RUN`).
const MAX_FIRST: usize = 1 << 55;

/// The producer's side (written by the owning thread only).
#[repr(C, align(64))]
struct Producer {
    owner: AtomicU64,
    /// Marks of the owner in progress on this ring (0 or 1; a nested one uses the
    /// shared log).
    depth: AtomicU32,
    /// Low 32 bits: the next position (modulo 2^32); high 32 bits: the lines of every
    /// entry pushed (modulo 2^32), published together by one plain store.
    tail: AtomicU64,
    ring: AtomicPtr<Entry>,
    /// The mapping of the latest entries (the latest run entry's), and that entry's
    /// position: `pending_lines` counts without reading the ring when every pending
    /// entry is of one run.
    run_id: AtomicU64,
    run_from: AtomicU64,
}

/// The consumers' side.
#[repr(C, align(64))]
struct Consumer {
    /// The next position to take (modulo 2^32).
    head: AtomicU64,
    /// The tail's line count at `head`.
    taken: AtomicU64,
    /// The mapping of the entries at `head` (the latest run entry before it).
    cur: AtomicU64,
    lock: Mutex<()>,
}

struct Rec {
    p: Producer,
    c: Consumer,
}

#[allow(clippy::declare_interior_mutable_const)]
const FREE: Rec = Rec {
    p: Producer {
        owner: AtomicU64::new(0),
        depth: AtomicU32::new(0),
        tail: AtomicU64::new(0),
        ring: AtomicPtr::new(std::ptr::null_mut()),
        run_id: AtomicU64::new(0),
        run_from: AtomicU64::new(0),
    },
    c: Consumer {
        head: AtomicU64::new(0),
        taken: AtomicU64::new(0),
        cur: AtomicU64::new(0),
        lock: Mutex::new(()),
    },
};

static RECS: [Rec; NREC] = [FREE; NREC];

/// The rings' memory: static (zero pages until used), not mapped when a thread first
/// marks: a mapping made then lands in whatever hole the address space has, e.g. right
/// after a daxpmem mapping, where a program's msync past the end of its mapping would
/// then succeed instead of failing with ENOMEM (the preload's errno matrix saw it).
struct RingMem(std::cell::UnsafeCell<[u64; NREC * CAP as usize]>);
// SAFETY: the memory is reached only as AtomicU64 entries (same layout as u64), each
// ring's by its record's owner and consumers (see the module doc).
unsafe impl Sync for RingMem {}
static RING_MEM: RingMem = RingMem(std::cell::UnsafeCell::new([0; NREC * CAP as usize]));
/// Records ever claimed, one bit each (a sync looks at these only).
static CLAIMED: AtomicU64 = AtomicU64::new(0);
/// Off when DAXPMEM_NO_MARK_RINGS=1 (for A/B measurements), decided once.
static ENABLED: AtomicUsize = AtomicUsize::new(2);

const _: () = assert!(NREC <= 64);

/// Positions are counted modulo 2^32 (the low half of `tail`; CAP divides 2^32).
const POS: u64 = 0xffff_ffff;

/// Positions from `from` up to `to` (modulo 2^32).
#[inline(always)]
fn span(from: u64, to: u64) -> u64 {
    to.wrapping_sub(from) & POS
}

pub use crate::registry::id_of;

fn enabled() -> bool {
    match ENABLED.load(Relaxed) {
        2 => {
            let off = std::env::var_os("DAXPMEM_NO_MARK_RINGS").is_some_and(|v| v == "1");
            ENABLED.store(usize::from(!off), Relaxed);
            !off
        }
        e => e == 1,
    }
}

/// Decide once whether rings are used (from the library's constructor: `enabled` reads
/// the environment, which a signal handler must not).
pub fn init() {
    let _ = enabled();
}

/// This thread's record, claimed on first use (None: the table is full, or another
/// thread won the free record this one tried). Async-signal-safe.
#[inline]
fn mine() -> Option<&'static Rec> {
    let me = lock::self_id();
    let h = home(me);
    for i in 0..NREC {
        let r = &RECS[(h + i) % NREC];
        let o = r.p.owner.load(Relaxed);
        if o == me {
            return Some(r);
        }
        if o == 0 {
            return claim(r, me);
        }
    }
    None
}

/// The record a thread looks at first (its thread pointer hashed).
#[inline(always)]
fn home(me: u64) -> usize {
    ((me >> 12).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58) as usize
}

#[cold]
#[inline(never)]
fn claim(r: &'static Rec, me: u64) -> Option<&'static Rec> {
    // The ring and the record's CLAIMED bit first, the owner last: a signal handler that
    // interrupts this thread once the owner is set marks through the record at once,
    // and its mark must find the ring and be seen by every sync that begins after it
    // returns. (Both are harmless if another thread wins the record: the ring is the
    // record's own, and a claimed bit only makes syncs look at the ring.)
    let i = (r as *const Rec as usize - RECS.as_ptr() as usize) / std::mem::size_of::<Rec>();
    if r.p.ring.load(Acquire).is_null() {
        // SAFETY: record i's own CAP entries of the static ring memory (i < NREC).
        let p = unsafe { (RING_MEM.0.get() as *mut Entry).add(i * CAP as usize) };
        r.p.ring.store(p, Release);
    }
    CLAIMED.fetch_or(1 << i, Release);
    if r.p.owner.compare_exchange(0, me, AcqRel, Relaxed).is_err() {
        // Another thread took it at the same moment; the next mark probes again.
        return None;
    }
    Some(r)
}

#[inline(always)]
fn entry(ring: *mut Entry, i: u64) -> &'static Entry {
    // SAFETY: ring points to CAP entries that are never unmapped; i is reduced modulo
    // CAP; zero-filled memory is a valid atomic.
    unsafe { &*ring.add((i % CAP) as usize) }
}

/// Mark `[addr, addr+len)` (len > 0) of the mapping in registry slot `idx`, generation
/// `gen`, through this thread's ring. `None`: not done here (bad handle, range outside
/// the mapping or of more than `MAX_RUN` lines, nested mark, full ring, no record) —
/// the caller marks through the shared path, which also says what is wrong.
/// `Some(true)`: marked. `Some(false)`: marked, but the mapping was unmapped or split
/// while the call ran (the entry will be dropped). No locked instruction, no wait;
/// async-signal-safe.
#[inline]
pub fn mark(idx: usize, gen: u64, addr: usize, len: usize) -> Option<bool> {
    if ENABLED.load(Relaxed) != 1 {
        return None;
    }
    mark_on(mine()?, idx, gen, addr, len)
}

/// What `mark_fast` did.
pub enum Fast {
    /// Marked.
    Done,
    /// Not here (no ring for this thread where it looks first, bad handle, range
    /// outside the mapping or too long): `handle::mark_slow` with the same arguments
    /// (which still uses this thread's ring when it has one elsewhere).
    No,
    /// The range is inside the mapping (`id`: `id_of`) and is these lines (`k`, a
    /// `marklog::key`), but the ring could not take them (nested mark, full ring) or the
    /// mapping was unmapped or split meanwhile: mark them through the shared path
    /// (`handle::mark_key`). The mapping comes back as its id, not as the caller's
    /// handle, so that the caller need not keep its arguments.
    Key { id: u64, k: u64 },
}

/// `mark` for a thread whose record is where it looks first (nearly every thread).
/// Makes no call, so that its caller needs no frame, and turns the range into its key
/// before anything else, so that the arguments are dead early: what a caller keeps
/// across the mark would be saved on the stack, and a mark follows a store that usually
/// misses the cache, while every store the mark adds holds a place in the store buffer
/// until that miss is served (marks/s, 2026-12-03: 7 saved registers and a result in
/// memory cost 0.5-0.8 stores' worth a mark).
#[inline(always)]
pub fn mark_fast(idx: usize, gen: u64, addr: usize, len: usize) -> Fast {
    if ENABLED.load(Relaxed) != 1 {
        return Fast::No;
    }
    let me = lock::self_id();
    let r = &RECS[home(me)];
    if r.p.owner.load(Relaxed) != me {
        return Fast::No;
    }
    let Some(k) = line_key(idx, gen, addr, len) else {
        return Fast::No;
    };
    if append_outermost(r, id_of(idx, gen), k) && registry::is_live_id(idx, gen) {
        Fast::Done
    } else {
        Fast::Key {
            id: id_of(idx, gen),
            k,
        }
    }
}

#[inline(always)]
fn mark_on(r: &Rec, idx: usize, gen: u64, addr: usize, len: usize) -> Option<bool> {
    let k = line_key(idx, gen, addr, len)?;
    append_outermost(r, id_of(idx, gen), k).then(|| registry::is_live_id(idx, gen))
}

/// `append` by the outermost mark on this thread only: false for a nested one (a signal
/// handler that interrupted a mark; it uses the shared log) or a full ring.
#[inline(always)]
fn append_outermost(r: &Rec, id: u64, k: u64) -> bool {
    if r.p.depth.load(Relaxed) != 0 {
        return false;
    }
    r.p.depth.store(1, Relaxed);
    // A handler that runs from here on sees depth 1 and uses the shared log; one that
    // ran before restored depth 0 and left the ring as it found it (its entries
    // published after it).
    compiler_fence(SeqCst);
    let done = append(r, id, k);
    compiler_fence(SeqCst);
    r.p.depth.store(0, Relaxed);
    done
}

/// The lines of `[addr, addr+len)` (len > 0) as a `marklog::key`, if the range lies in
/// the live mapping of slot `idx`, generation `gen`, and fits a ring entry.
#[inline(always)]
fn line_key(idx: usize, gen: u64, addr: usize, len: usize) -> Option<u64> {
    let (start, end) = registry::live_range(idx, gen)?;
    let last = addr.checked_add(len - 1)?;
    if addr < start || last >= end {
        return None;
    }
    let shift = crate::cpu::config_if_decided()?.line.trailing_zeros();
    let (lo, hi) = ((addr - start) >> shift, ((last - start) >> shift) + 1);
    if hi - lo > MAX_RUN || lo >= MAX_FIRST {
        return None;
    }
    Some(key(lo, hi - lo))
}

/// Append entry `k` of mapping `id` to `r`'s ring and publish it; false if the ring
/// is full. The owner only, at depth 1.
#[inline(always)]
fn append(r: &Rec, id: u64, k: u64) -> bool {
    let ring = r.p.ring.load(Relaxed);
    let t = r.p.tail.load(Relaxed);
    let mut pos = t & POS;
    let run = r.p.run_id.load(Relaxed) != id;
    if span(r.c.head.load(Acquire), pos) + u64::from(run) >= CAP {
        return false;
    }
    if run {
        entry(ring, pos).store(RUN | id, Relaxed);
        r.p.run_from.store(pos, Relaxed);
        r.p.run_id.store(id, Relaxed);
        pos += 1;
    }
    entry(ring, pos).store(k, Relaxed);
    // The positions and the entry's lines, published by one store (a carry out of the
    // position at 2^32 adds a line to the count: a statistic, off by one every 4
    // billion marks).
    let step = 1 + u64::from(run) + ((unkey(k).1 as u64) << 32);
    r.p.tail.store(t.wrapping_add(step), Release);
    true
}

/// Take every published entry of every ring: those of mapping `me` (`id_of`) go to
/// `own(entry)` (a `marklog::key`), the others into their mappings' shared logs (or indexes).
/// The caller holds the sync lock of `me` (0: an unregistered mapping, none). Err when this thread holds a
/// ring's consumer lock already (a signal handler that interrupted a sync): entries
/// handed to `own` before that stand.
#[inline]
pub fn take(me: u64, mut own: impl FnMut(u64)) -> Result<(), lock::Reentered> {
    take_runs(me, |run| run.iter().for_each(|e| own(e.load(Relaxed))))
}

/// `take`, handing mapping `me`'s entries over as runs of consecutive ring entries
/// (`own(run)`, the entries loaded with `Relaxed`): a caller collects a run with one
/// extend (the sync: its key statistics stay in registers). Always inlined: a sync
/// of one mark pays for the call and its saved registers (measured: a ranged sync
/// of one mark 10-15 % slower when the compiler left it out of line).
#[inline(always)]
pub fn take_runs(me: u64, mut own: impl FnMut(&[Entry])) -> Result<(), lock::Reentered> {
    let mut claimed = CLAIMED.load(Acquire);
    if claimed == 0 || me == 0 {
        return Ok(());
    }
    let mut other: Option<registry::Ref> = None;
    while claimed != 0 {
        let i = claimed.trailing_zeros() as usize;
        claimed &= claimed - 1;
        let r = &RECS[i];
        if span(r.c.head.load(Acquire), r.p.tail.load(Acquire)) == 0 {
            continue;
        }
        let _g = r.c.lock.lock()?;
        take_locked(r, me, &mut own, &mut other);
    }
    Ok(())
}

/// Take ring `r`'s published entries (its consumer lock held): `me`'s to `own` as runs,
/// the others forwarded to their mappings' shared logs (`other`: the mapping of the
/// latest forwarded entry, kept between calls).
#[inline(always)]
fn take_locked(
    r: &Rec,
    me: u64,
    own: &mut impl FnMut(&[Entry]),
    other: &mut Option<registry::Ref>,
) {
    let ring = r.p.ring.load(Acquire);
    let h = r.c.head.load(Relaxed);
    let t = r.p.tail.load(Acquire);
    if ring.is_null() || span(h, t) == 0 {
        return;
    }
    let mut cur = r.c.cur.load(Relaxed);
    let end = h + span(h, t);
    let mut j = h;
    // A segment at a time: the entries up to the next mapping switch (a `RUN` entry)
    // or the end of the ring's memory, found by a scan that does nothing else; then the
    // segment to `own` in one piece, or forwarded.
    while j < end {
        let at = (j % CAP) as usize;
        let n = (end - j).min(CAP - j % CAP) as usize;
        // SAFETY: positions j..j+n are published entries of this ring, and at..at+n
        // lies within its CAP entries (n stops where the positions wrap).
        let seg = unsafe { std::slice::from_raw_parts(ring.add(at), n) };
        let len = seg
            .iter()
            .position(|e| e.load(Relaxed) & RUN != 0)
            .unwrap_or(n);
        let (run, rest) = seg.split_at(len);
        if cur == me {
            if !run.is_empty() {
                own(run);
            }
        } else if !run.is_empty() {
            // Another mapping's run: one look-up for the run (none while its mapping is
            // the one of the run before); a retired mapping's entries are dropped.
            let (oi, og) = ((cur >> 40) as usize, cur & registry::GEN_MASK);
            if other.as_ref().is_none_or(|o| o.id() != (oi as u32, og)) {
                *other = registry::acquire(oi, og);
            }
            if let Some(o) = other.as_ref() {
                for e in run {
                    let (first, count) = unkey(e.load(Relaxed));
                    if !o.log.push(first, count) {
                        o.index.mark(first, first + count);
                    }
                }
            }
        }
        j += len as u64;
        if let Some(e) = rest.first() {
            cur = e.load(Relaxed) & !RUN;
            j += 1;
        }
    }
    r.c.cur.store(cur, Relaxed);
    r.c.taken.store(t >> 32, Relaxed);
    r.c.head.store(t & POS, Release);
}

/// Every ring's consumer lock, held: while it lives no sync takes a ring, so none can
/// forward a mapping's entries and drop them because the mapping was just retired
/// (`handle::retire_keeping_marks`, a split: the marks made through the old handle
/// before its retirement move to the pieces).
pub struct Frozen {
    _guards: Vec<lock::Guard<'static, ()>>,
}

impl Frozen {
    /// Take every record's consumer lock (all `NREC`, claimed or not, in order: a
    /// record claimed meanwhile is covered too). Err when this thread holds one (a
    /// signal handler that interrupted a sync's take).
    pub fn all() -> Result<Frozen, lock::Reentered> {
        let mut g = Vec::with_capacity(NREC);
        for r in RECS.iter() {
            g.push(r.c.lock.lock()?);
        }
        Ok(Frozen { _guards: g })
    }

    /// Take every ring's published entries: mapping `me`'s to `own`, the others
    /// forwarded as a sync does.
    pub fn take(&self, me: u64, mut own: impl FnMut(u64)) {
        let mut other = None;
        let mut runs = |run: &[Entry]| run.iter().for_each(|e| own(e.load(Relaxed)));
        for r in RECS.iter() {
            take_locked(r, me, &mut runs, &mut other);
        }
    }
}

/// Entries waiting in the rings, of every mapping (a sync's estimate of what it takes:
/// the sort counts a histogram while collecting when there are many).
pub fn pending() -> usize {
    let mut claimed = CLAIMED.load(Relaxed);
    let mut n = 0;
    while claimed != 0 {
        let r = &RECS[claimed.trailing_zeros() as usize];
        claimed &= claimed - 1;
        n += span(r.c.head.load(Relaxed), r.p.tail.load(Relaxed)).min(CAP) as usize;
    }
    n
}

/// Lines of mapping `me` waiting in the rings, for `dax_get_stats`. A few loads a
/// ring when its pending entries are all of one mapping (a thread marking one mapping
/// at a time); a read of the pending entries otherwise. A statistic: entries taken
/// or overwritten while it reads may be miscounted, never read outside a ring.
pub fn pending_lines(me: u64) -> u64 {
    let mut claimed = CLAIMED.load(Acquire);
    if me == 0 {
        return 0;
    }
    let mut n = 0;
    while claimed != 0 {
        let i = claimed.trailing_zeros() as usize;
        claimed &= claimed - 1;
        let r = &RECS[i];
        let t = r.p.tail.load(Acquire);
        let h = r.c.head.load(Acquire);
        let pending = span(h, t);
        if pending == 0 || pending > CAP {
            continue;
        }
        let (rid, from) = (r.p.run_id.load(Relaxed), r.p.run_from.load(Relaxed));
        if span(from, t) >= pending {
            // Every pending entry is of the latest run's mapping.
            if rid == me {
                n += ((t >> 32).wrapping_sub(r.c.taken.load(Relaxed))) & POS;
            }
            continue;
        }
        let ring = r.p.ring.load(Acquire);
        let mut cur = r.c.cur.load(Relaxed);
        for j in h..h + pending {
            let k = entry(ring, j).load(Relaxed);
            if k & RUN != 0 {
                cur = k & !RUN;
            } else if cur == me {
                n += unkey(k).1 as u64;
            }
        }
    }
    n
}

/// In a forked child: the threads that owned the other records are gone (their
/// records stay claimed; a child thread with the same thread pointer takes its over),
/// their consumer locks are free and no mark is in progress. Async-signal-safe.
pub fn after_fork_child() {
    for r in &RECS {
        r.c.lock.reset_after_fork();
        r.p.depth.store(0, Relaxed);
        // A run entry the forking thread's mark wrote but never published: the next
        // mark writes its own.
        r.p.run_id.store(0, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_never_zero_and_keep_slot_and_generation() {
        assert_ne!(id_of(0, 1), 0);
        let id = id_of(16383, registry::GEN_MASK);
        assert_eq!(
            ((id >> 40) as usize, id & registry::GEN_MASK),
            (16383, registry::GEN_MASK)
        );
    }
}
