//! The C handle behind `dax_map_t *`: not a pointer but a number, the registry slot of
//! the mapping and that slot's generation (registry.rs). Nothing is ever read or
//! written through a handle: it is decoded, and a call proceeds only if the slot is
//! live with that generation. So a stale handle (unmapped any number of unmaps ago), a
//! double unmap or a forged pointer is EBADF, and a call racing `dax_unmap` of the same
//! handle either completes on the still-mapped mapping or fails with EBADF.

use crate::error::{Error, Result};
use crate::map::{self, Mapping, Track};
use crate::registry::{self, Ref, GEN_MASK, NSLOTS};
use crate::{cpu, signals, track};
use std::cell::Cell;
use std::os::fd::BorrowedFd;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;

/// What `dax_map_t *` points to: never dereferenced.
pub enum Handle {}

/// Low bits of every handle: a real pointer to an aligned object never has them.
const MAGIC: usize = 0xD;
const IDX_SHIFT: u32 = 4;
const IDX_BITS: u32 = 14;
const GEN_SHIFT: u32 = IDX_SHIFT + IDX_BITS;
const _: () = assert!(NSLOTS == 1 << IDX_BITS);

fn encode(idx: u32, gen: u64) -> *mut Handle {
    (((gen as usize) << GEN_SHIFT) | ((idx as usize) << IDX_SHIFT) | MAGIC) as *mut Handle
}

#[inline(always)]
fn decode(h: *const Handle) -> Option<(usize, u64)> {
    let v = h as usize;
    if v & 0xF != MAGIC {
        return None;
    }
    let idx = (v >> IDX_SHIFT) & ((1 << IDX_BITS) - 1);
    let gen = (v >> GEN_SHIFT) as u64;
    (gen != 0 && gen <= GEN_MASK).then_some((idx, gen))
}

/// `mark`'s common case alone (`rings::mark_fast`), inlined into its caller with no
/// call and no frame of its own. `Fast::No`: call `mark_slow`; `Fast::Key`: call
/// `mark_key`.
#[inline(always)]
pub fn mark_ring(h: *const Handle, addr: usize, len: usize) -> crate::rings::Fast {
    match decode(h) {
        Some((idx, gen)) if len != 0 => crate::rings::mark_fast(idx, gen, addr, len),
        _ => crate::rings::Fast::No,
    }
}

fn gone(what: &'static str) -> Error {
    Error::at(
        libc::EBADF,
        what,
        "the mapping was unmapped or split while the call ran",
    )
}

/// Mark the lines of entry `k` (`marklog::key`, from `mark_ring`, inside mapping `id`
/// (`registry::id_of`) when it was computed) through the mapping's shared log: what
/// `mark_ring` found inside the mapping and could not put in the ring. EBADF when the
/// mapping is gone.
#[cold]
#[inline(never)]
pub fn mark_key(id: u64, k: u64) -> Result<()> {
    let (idx, gen) = ((id >> 40) as u32, id & crate::registry::GEN_MASK);
    // Live when the entry was computed: gone now means unmapped or split meanwhile.
    let m = get(encode(idx, gen), "mark")
        .map_err(|_| gone("mark"))?
        .no_reap();
    let (f, c) = crate::marklog::unkey(k);
    let a = m.addr() + (f << m.line_shift);
    let end = (a + (c << m.line_shift)).min(m.addr() + m.len());
    m.check_inside("mark", a, end - a)?;
    m.mark(a, end - a);
    if m.dead.load(SeqCst) {
        return Err(gone("mark"));
    }
    Ok(())
}

/// Mark `[addr, addr+len)` of the mapping `h` dirty: through this thread's mark ring
/// when it can (no locked instruction: rings.rs), else through the mapping's shared
/// log or index, which also says what is wrong with the arguments. EBADF when the
/// mapping was unmapped or split while the call ran (the mark landed in a retired
/// mapping no sync takes: after a split, mark through the part's handle).
/// Async-signal-safe: no lock, no allocation, errors are static text.
#[inline]
pub fn mark(h: *const Handle, addr: usize, len: usize) -> Result<()> {
    match mark_ring(h, addr, len) {
        crate::rings::Fast::Done => Ok(()),
        crate::rings::Fast::Key { id, k } => mark_key(id, k),
        crate::rings::Fast::No => mark_slow(h, addr, len),
    }
}

/// `mark` when `mark_ring` could not: a thread's first mark or one whose record is not
/// where it looks first (the ring all the same), or the shared log, or an error.
#[cold]
#[inline(never)]
pub fn mark_slow(h: *const Handle, addr: usize, len: usize) -> Result<()> {
    const WHAT: &str = "mark";
    if len != 0 {
        if let Some((idx, gen)) = decode(h) {
            match crate::rings::mark(idx, gen, addr, len) {
                Some(true) => return Ok(()),
                Some(false) => return Err(gone(WHAT)),
                None => {}
            }
        }
    }
    let m = get(h, WHAT)?.no_reap();
    if len == 0 {
        return Ok(());
    }
    m.check_inside(WHAT, addr, len)?;
    m.mark(addr, len);
    if m.dead.load(SeqCst) {
        return Err(gone(WHAT));
    }
    Ok(())
}

/// The handle of a registered mapping.
pub fn of(r: &Ref) -> *mut Handle {
    let (idx, gen) = r.id();
    encode(idx, gen)
}

/// Static text: the async-signal-safe calls fail without allocating.
fn bad(what: &'static str) -> Error {
    Error::at(
        libc::EBADF,
        what,
        "not a live mapping handle (already unmapped or closed, or not a handle at all)",
    )
}

/// Map `len` bytes of `fd` at `offset` (`map::probe_fd`, `map::map_probed`) with the
/// tracking mode the flags ask for resolved (`track::resolve`) and the SIGBUS handler
/// in place; `new` registers it and starts its tracking. `name` prefixes the messages.
pub fn map_fd(
    fd: BorrowedFd<'_>,
    offset: u64,
    len: usize,
    flags: u32,
    name: &str,
) -> Result<Mapping> {
    let probe = map::probe_fd(fd, offset, len, flags, name)?;
    let track = resolve(&probe, name)?;
    map::map_probed(fd, offset, len, flags, &probe, track, name)
}

/// Adopt a shared mapping the caller made: [addr, addr+len) maps `fd` (the caller's,
/// only looked at, not kept) at `offset`; `mapped_sync` says whether it was mapped with
/// MAP_SYNC. As `map_fd`, for `map::probe_adopt` and `map::adopted`.
pub fn adopt(
    addr: usize,
    len: usize,
    fd: BorrowedFd<'_>,
    offset: u64,
    flags: u32,
    mapped_sync: bool,
) -> Result<Mapping> {
    let probe = map::probe_adopt(addr, len, fd, offset, flags, mapped_sync)?;
    let track = resolve(&probe, "adopt")?;
    map::adopted(addr, len, offset, &probe, track)
}

/// The tracking mode a new mapping really uses; installs the SIGBUS handler first (a
/// write-back, copy or fill that meets a page the file no longer backs then fails with
/// EIO instead of killing the process: signals.rs).
fn resolve(probe: &map::Probe, name: &str) -> Result<Track> {
    let named = |e: Error| Error::new(e.errno, format!("{name}: {}", e.msg));
    let track = track::resolve(probe.requested, probe.dax()).map_err(named)?;
    signals::install_bus().map_err(named)?;
    Ok(track)
}

/// Register `m`, start its tracking, and make a handle for it.
pub fn new(m: Mapping) -> Result<*mut Handle> {
    let (idx, gen) = registry::insert(Arc::new(m))?;
    let r = registry::acquire(idx as usize, gen).ok_or_else(|| bad("map"))?;
    // Tracking starts once the fault handler can find the mapping.
    if let Err(e) = arm(&r) {
        registry::retire(&r);
        return Err(e);
    }
    Ok(of(&r))
}

/// Start tracking a registered mapping: DAX_TRACK_MPROTECT's write faults reach
/// track.rs through the SIGSEGV handler, installed first.
fn arm(m: &Mapping) -> Result<()> {
    if m.track == Track::Mprotect {
        signals::install_segv()?;
    }
    track::arm(m)
}

/// A user of the mapping behind a handle: valid until dropped, whatever other threads
/// do with the handle meanwhile. NULL is EINVAL; anything not live is EBADF.
pub fn get(h: *const Handle, what: &'static str) -> Result<Ref> {
    if h.is_null() {
        return Err(Error::at(libc::EINVAL, what, "NULL mapping handle"));
    }
    let (idx, gen) = decode(h).ok_or_else(|| bad(what))?;
    registry::acquire(idx, gen).ok_or_else(|| bad(what))
}

/// Retire `r` for good (unmap, forget, split): under its sync lock, so no sync is
/// running on it and none starts after (they see `dead`), with its written-back lines
/// kept in the process total. `before` runs under the lock first. Fails with EBADF when
/// another call retired it first, EDEADLK when this thread holds its sync lock (a
/// signal handler that interrupted a sync).
fn retire(
    r: &Ref,
    what: &'static str,
    before: impl FnOnce(&Mapping, &mut crate::map::SyncScratch) -> Result<()>,
) -> Result<()> {
    let mut g = r.sync_lock.lock().map_err(|_| map::reentered(what))?;
    if r.dead.load(SeqCst) {
        return Err(bad(what));
    }
    before(r, &mut g)?;
    let mut won = false;
    crate::sync::retire(r, || won = registry::retire(r));
    if !won {
        return Err(bad(what));
    }
    r.dead.store(true, SeqCst);
    Ok(())
}

/// `retire` for a split, where the marks made through the old handle must not be lost:
/// they go to the pieces. `before` (under the sync lock) drains every mark into the
/// index and makes the pieces, which take the index's lines; then the mapping is retired
/// with every ring frozen (no sync can forward its entries and drop them as retired);
/// a process-wide barrier makes visible every ring entry whose mark saw the mapping
/// live (a mark appends, then checks liveness, with plain stores and loads: a mark that
/// saw it retired fails with EBADF); the entries and the shared log that arrived
/// meanwhile go to the index, and `after` hands them to the pieces and registers them.
fn retire_keeping_marks(
    r: &Ref,
    what: &'static str,
    before: impl FnOnce(&Mapping, &mut crate::map::SyncScratch) -> Result<Vec<Mapping>>,
    after: impl FnOnce(&Mapping, &mut crate::map::SyncScratch, Vec<Mapping>) -> Result<()>,
) -> Result<()> {
    let mut g = r.sync_lock.lock().map_err(|_| map::reentered(what))?;
    if r.dead.load(SeqCst) {
        return Err(bad(what));
    }
    // The barrier is needed below, after the retirement: fail now, with nothing changed,
    // if the process has none (membarrier refused).
    crate::sys::process_barrier()?;
    let pieces = before(r, &mut g)?;
    // Nothing below may drop a piece that owns its memory: the old mapping still does.
    let give_up = |pieces: Vec<Mapping>| pieces.iter().for_each(|p| p.disown_memory());
    let frozen = match crate::rings::Frozen::all() {
        Ok(f) => f,
        Err(_) => {
            give_up(pieces);
            return Err(map::reentered(what));
        }
    };
    let mut won = false;
    crate::sync::retire(r, || won = registry::retire(r));
    if !won {
        give_up(pieces);
        return Err(bad(what));
    }
    r.dead.store(true, SeqCst);
    // Without the barrier a mark may have passed its liveness check with its entry
    // still in its CPU's store buffer: nothing else makes it visible here in time. (It
    // worked a moment ago; should it fail now, the entries already visible are taken.)
    let _ = crate::sys::process_barrier();
    frozen.take(r.reg_id.load(SeqCst), |k| {
        let (f, c) = crate::marklog::unkey(k);
        r.index.mark(f, f + c)
    });
    drop(frozen);
    if let Err(e) = crate::sync::all_to_index(r, &mut g, what) {
        give_up(pieces);
        return Err(e);
    }
    after(r, &mut g, pieces)
}

/// Unmap: unregister and release the mapping. If another thread is still inside a call
/// on it, the memory is unmapped when that call returns (the address range stays
/// reserved until then).
pub fn unmap(h: *const Handle) -> Result<()> {
    let r = get(h, "unmap")?;
    let res = retire(&r, "unmap", |_, _| Ok(()));
    drop(r);
    registry::reap_pending();
    res
}

/// Forget: hand the memory back to the caller (writable, untracked), then retire the
/// handle as `unmap` does, without unmapping or syncing.
pub fn forget(h: *const Handle) -> Result<()> {
    let r = get(h, "forget")?;
    let res = retire(&r, "forget", |m, _| {
        track::disarm(m)?;
        m.disown_memory();
        Ok(())
    });
    drop(r);
    registry::reap_pending();
    res
}

thread_local! {
    /// Copies or fills into mapped memory this thread has in progress.
    static COPYING: Cell<u32> = const { Cell::new(0) };
}

/// A copy or fill into `m`'s memory in progress (dax_memcpy, dax_memset, the zeroing
/// of dax_punch_hole): `unmap_range` waits for it before the memory goes, and the fault
/// handlers still find `m` for it once it is retired (`registry::find_retired`: a
/// close's sync may have protected its pages again), so it completes on the memory.
pub struct Copying<'a>(&'a Mapping);

impl<'a> Copying<'a> {
    /// EBADF when `m` was retired meanwhile (the memory may be going). Counted first,
    /// checked after, against `unmap_range`'s retire first, count after: one of the two
    /// sees the other.
    pub fn new(m: &'a Mapping, what: &'static str) -> Result<Self> {
        m.copies.fetch_add(1, SeqCst);
        COPYING.with(|c| c.set(c.get() + 1));
        let c = Copying(m);
        if m.dead.load(SeqCst) {
            return Err(bad(what));
        }
        Ok(c)
    }
}

impl Drop for Copying<'_> {
    fn drop(&mut self) {
        COPYING.with(|c| c.set(c.get() - 1));
        self.0.copies.fetch_sub(1, SeqCst);
    }
}

// Copies and fills into a mapping (dax_memcpy, dax_memset: under a `Copying`), with
// the SIGBUS handler's watch over the destination (signals::enter).
impl Mapping {
    /// Copy into the mapping and mark what needs a write-back: on pmem the streamed
    /// body needs only the sync's fence, so only the head and tail lines are marked; on
    /// the page cache everything is marked (one msync covers it).
    ///
    /// Fails with EIO when part of the destination lies past the end of the file (shrunk
    /// under the mapping): that page is lost (signals.rs), the rest is copied.
    ///
    /// # Safety
    /// `[dst, dst+len)` is inside the mapping (checked by the caller) and `src` is
    /// readable for `len` bytes.
    pub unsafe fn copy_in(&self, dst: usize, src: *const u8, len: usize) -> Result<()> {
        self.write_in(
            dst,
            len,
            "memcpy",
            // SAFETY: per the contract.
            |c| unsafe { crate::nt::move_(dst as *mut u8, src, len, c) },
            // SAFETY: per the contract; ptr::copy tolerates overlap.
            || unsafe { std::ptr::copy(src, dst as *mut u8, len) },
        )
    }

    /// Fill part of the mapping and mark it, as `copy_in`.
    ///
    /// # Safety
    /// `[dst, dst+len)` is inside the mapping (checked by the caller).
    pub unsafe fn fill_in(&self, dst: usize, val: u8, len: usize) -> Result<()> {
        self.write_in(
            dst,
            len,
            "memset",
            // SAFETY: per the contract.
            |c| unsafe { crate::nt::fill(dst as *mut u8, val, len, c) },
            // SAFETY: per the contract.
            || unsafe { (dst as *mut u8).write_bytes(val, len) },
        )
    }

    /// Write `[dst, dst+len)` with `streamed` on pmem (marking the lines it did not
    /// stream) or `plain` on the page cache (marking all of it), under the SIGBUS
    /// handler's watch: EIO if a page was lost meanwhile, or if the range reaches past
    /// the lowest page lost before (a zero page the handler put there takes the write
    /// without a fault, and it never reaches the file).
    #[inline(always)]
    fn write_in(
        &self,
        dst: usize,
        len: usize,
        what: &'static str,
        streamed: impl FnOnce(&cpu::Config) -> crate::nt::Temporal,
        plain: impl FnOnce(),
    ) -> Result<()> {
        let op = signals::enter(self);
        if self.pmem {
            for (a, l) in streamed(cpu::config()).iter() {
                self.mark(a, l);
            }
        } else {
            plain();
            self.mark(dst, len);
        }
        if op.finish() | (dst + len > self.lost_from.load(std::sync::atomic::Ordering::Relaxed)) {
            return Err(Error::new(
                libc::EIO,
                format!(
                    "{what}: part of the destination lies past the end of the file (it was shrunk under the mapping): what was written there is lost, and every sync of the mapping fails until it is unmapped"
                ),
            ));
        }
        // Retired meanwhile (unmapped, or split: its marks moved to the parts, and the
        // ones made after the move are in no live mapping's index): EBADF, as for a
        // mark. `dead` is set before the marks move, so a mark that missed the move
        // sees it here.
        if self.dead.load(SeqCst) {
            return Err(Error::at(
                libc::EBADF,
                what,
                "the mapping was unmapped or split while the call ran: the bytes were written \
                 but may be marked in no mapping; mark them again through the handle of the \
                 part (dax_find)",
            ));
        }
        Ok(())
    }
}

/// The handle of the live mapping containing `addr`, if any.
pub fn find(addr: usize) -> Option<*mut Handle> {
    registry::find(addr).map(|r| of(&r))
}

/// Make the pieces of `m` outside `[addr, end)` into `pieces`, each armed (its tracking
/// started, as `new` does once it is registered): under `m`'s sync lock, `m` still
/// registered, so the faults of the pages an armed piece protects are still `m`'s (whose
/// lines go to the pieces). On error, the pieces made so far are in `pieces`.
fn split(m: &Mapping, addr: usize, end: usize, pieces: &mut Vec<Mapping>) -> Result<()> {
    if m.addr() < addr {
        pieces.push(m.piece(m.addr(), addr - m.addr())?);
    }
    if end < m.addr() + m.len() {
        pieces.push(m.piece(end, m.addr() + m.len() - end)?);
    }
    pieces.iter().try_for_each(arm)
}

/// Unmap `[addr, addr+len)` (len rounded up to pages), whatever daxpmem mappings it
/// touches, like munmap: mappings wholly inside are released (their handles retired),
/// mappings partly inside are split and the parts outside stay registered under new
/// handles (with their dirty lines), then the range is unmapped. Dirty lines inside the
/// range are dropped, as by dax_unmap. A sync of a split mapping that had not begun is
/// refused (EBADF) rather than touching the unmapped part.
pub fn unmap_range(addr: usize, len: usize) -> Result<()> {
    if len == 0 || !addr.is_multiple_of(crate::sys::PAGE) {
        return Err(Error::inval(format!(
            "unmap range: {addr:#x}+{len}: the address must be page-aligned and the length non-zero"
        )));
    }
    let end = addr
        .checked_add(len)
        .map(crate::sys::page_up)
        .filter(|&e| e != 0)
        .ok_or_else(|| Error::inval("unmap range: the range wraps around"))?;
    // Called from a signal handler that interrupted a copy on this thread: that copy
    // cannot finish before this call, so waiting for copies (below) would wait forever.
    let in_copy = COPYING.with(|c| c.get()) != 0;
    let mut hit: Vec<Ref> = vec![];
    registry::scan(&mut |m| {
        if m.addr() < end && addr < m.addr() + m.len() {
            let (i, g) = m.id();
            hit.extend(registry::acquire(i as usize, g));
        }
        false
    });
    // A split is all or nothing: what registering its pieces can fail at is done before
    // the old mapping is retired, so that a failure leaves it whole, registered and
    // usable. Their registry slots are reserved here (for every split of the range: a
    // full registry changes nothing), their tracking is armed under its sync lock.
    let parts = |m: &Mapping| usize::from(m.addr() < addr) + usize::from(end < m.addr() + m.len());
    let mut slots = (0..hit.iter().map(|m| parts(m)).sum())
        .map(|_| registry::reserve())
        .collect::<Result<Vec<_>>>()?;
    for m in hit {
        let mine: Vec<_> = slots.drain(..parts(&m)).collect();
        let r = retire_keeping_marks(
            &m,
            "unmap range",
            |m, scratch| {
                crate::sync::all_to_index(m, scratch, "unmap range")?;
                let mut pieces = vec![];
                let made = split(m, addr, end, &mut pieces);
                if made.is_err() {
                    // The old mapping still owns the memory.
                    pieces.iter().for_each(|p| p.disown_memory());
                }
                made.map(|_| pieces)
            },
            |m, _, pieces| {
                for p in &pieces {
                    // What was marked since the pieces were made.
                    m.move_lines_to(p);
                }
                // The pieces own their parts now; the old mapping owns nothing.
                m.disown_memory();
                for (p, slot) in pieces.into_iter().zip(mine) {
                    slot.fill(Arc::new(p));
                }
                Ok(())
            },
        );
        match r {
            // Another unmap retired it first: it unmaps the whole of it.
            Err(e) if e.errno == libc::EBADF => continue,
            r => r?,
        }
        // A dax_memcpy or dax_memset into it that began before the retirement finishes
        // before the memory goes (each is a bounded call on another thread). Nothing
        // else touches a retired mapping's memory: a sync that had not begun is refused
        // (`dead`), marks and lookups touch only the index.
        while !in_copy && m.copies.load(SeqCst) != 0 {
            std::thread::yield_now();
        }
    }
    // Mappings the scan above held last (without freeing) go now.
    registry::reap_pending();
    // SAFETY: like munmap(2): the caller gives up the range.
    unsafe { crate::sys::munmap(addr, end - addr) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forged_and_stale_handles_decode_to_nothing_live() {
        for v in [1usize, 8, 0x1000, 0xdeadbeef0, usize::MAX, MAGIC] {
            assert!(get(v as *const Handle, "t").is_err(), "{v:#x}");
        }
        let e = get(std::ptr::null(), "t").err().unwrap();
        assert_eq!(e.errno, libc::EINVAL);
        let e = get(encode(3, 12345), "t").err().unwrap();
        assert_eq!(e.errno, libc::EBADF);
        assert_eq!(
            decode(encode(NSLOTS as u32 - 1, GEN_MASK)),
            Some((NSLOTS - 1, GEN_MASK))
        );
    }
}
