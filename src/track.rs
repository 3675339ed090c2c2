//! Automatic dirty tracking: plain stores into a mapping reach the dirty index.
//!
//! DAX_TRACK_MPROTECT keeps the mapping read-only. The first store to a page after a
//! sync faults; the SIGSEGV handler, holding the mapping's fault lock, marks the page's
//! lines in the index and makes the page writable. A sync (the collector) holds the
//! same lock while it protects its range again and takes the bits, and writes back only
//! after releasing it: so no page is ever made writable between a collector's protect
//! and its take, and no store is lost (a store after the protect faults and is marked
//! for the next sync).
//!
//! The handler (signals.rs) is installed once, is async-signal-safe (atomics, raw system
//! calls, no allocation; the only lock it takes is the fault lock, which the collector
//! holds for a protect and a take with signals blocked, and no other handler can
//! interrupt it), finds the mapping through the lock-free registry, and passes every
//! fault that is not a write to a tracked page to the action that was installed before
//! it (or the default action), so a program's own segfaults behave as without the
//! library.
//!
//! Every page fault splits a VMA; the handler coarsens (2 MiB, then the whole mapping)
//! long before `vm.max_map_count`. A write never fails because of a limit: over-marking
//! is the price.

use crate::error::{Error, Result};
use crate::map::{Mapping, Track};
use crate::{registry, sys};
use std::sync::atomic::Ordering::SeqCst;

const PAGE: usize = sys::PAGE;
const HUGE: usize = 2 << 20;
/// Writable runs opened by faults in the whole process, above which faults open 2 MiB
/// at a time, and above which a fault opens its whole mapping (each run costs up to
/// two VMAs; the default vm.max_map_count is 65530).
const PAGE_RUNS: usize = 8192;
const HUGE_RUNS: usize = 16384;
use crate::map::OPEN_RUNS;

/// The mode a mapping will really use for `requested`; `dax` says whether the mapping
/// is on DAX (a DAX file or MAP_SYNC or device DAX).
pub fn resolve(requested: Track, dax: bool) -> Result<Track> {
    match requested {
        Track::Explicit | Track::Kernel => Ok(requested),
        // Not proven lossless on DAX: one two-vCPU shadow run in the fsdax guest lost
        // writes (docs/tracking.md). Refused there unless asked for anyway.
        Track::Mprotect
            if dax && crate::cpu::env("DAXPMEM_ALLOW_MPROTECT_ON_DAX").as_deref() != Some("1") =>
        {
            Err(Error::new(
                libc::EOPNOTSUPP,
                "DAX_TRACK_MPROTECT is refused on a DAX mapping: it is not proven lossless \
                 there (docs/tracking.md); use explicit marks or DAX_TRACK_KERNEL, or set \
                 DAXPMEM_ALLOW_MPROTECT_ON_DAX=1 to measure it",
            ))
        }
        Track::Mprotect => Ok(requested),
        Track::Auto => Ok(auto(dax)),
        Track::Uffd if dax => Err(Error::new(
            libc::EOPNOTSUPP,
            "DAX_TRACK_UFFD is refused on a DAX mapping: userfaultfd write-protect loses \
             writes and can hang the faulting thread on fsdax (see docs/tracking.md)",
        )),
        Track::Uffd if crate::uffd::uffd_available() => Ok(Track::Uffd),
        Track::Uffd => Err(Error::new(
            libc::EOPNOTSUPP,
            format!(
                "DAX_TRACK_UFFD is not available: the userfaultfd self-test failed ({}); it \
                 needs kernel >= 6.7 (UFFD_FEATURE_WP_ASYNC, PAGEMAP_SCAN) and userfaultfd",
                std::io::Error::from_raw_os_error(crate::uffd::unavailable_errno())
            ),
        )),
    }
}

/// DAX_TRACK_AUTO: on DAX, the kernel's msync until the shadow test in the fsdax test
/// bed proves a user-space mode lossless there; elsewhere the kernel already tracks
/// dirty pages for msync, so its own msync is what AUTO picks too.
fn auto(_dax: bool) -> Track {
    Track::Kernel
}

// ---------------------------------------------------------------------------------
// The SIGSEGV handler's work (the handler itself is in signals.rs)

/// The write fault at `addr`: ours if it is in a mapping tracked by mprotect, or in one
/// retired while this thread was copying or filling into it (`copying`: a copy that
/// began before a close or unmap completes on the mapped memory, and the close's sync
/// protected its pages again).
pub(crate) fn on_write_fault(addr: usize, copying: impl Fn(&Mapping) -> bool) -> bool {
    let m = match registry::find(addr) {
        Some(m) => m,
        None => match registry::find_retired(addr) {
            Some(m) if copying(&m) => m,
            _ => return false,
        },
    };
    m.track == Track::Mprotect && open_page(&m, addr)
}

/// Mark and make writable the page of `addr` (or more, when coarsening).
fn open_page(m: &Mapping, addr: usize) -> bool {
    if m.fault_lock.lock().is_err() {
        // This thread holds it (cannot happen: holders block every signal).
        return false;
    }
    let open = OPEN_RUNS.fetch_add(1, SeqCst);
    m.faults_since_protect.fetch_add(1, SeqCst);
    // Device DAX cannot split a mapping below its alignment (2 MiB): open that much.
    let (start, len) = if open < PAGE_RUNS && !m.kind.devdax {
        (sys::page_down(addr), PAGE)
    } else if open < HUGE_RUNS {
        let s = (addr & !(HUGE - 1)).max(m.addr());
        (s, (s + HUGE).min(m.addr() + m.len()) - s)
    } else {
        (m.addr(), m.len())
    };
    let len = len.min(m.addr() + m.len() - start);
    m.mark_index(start, len);
    // SAFETY: [start, start+len) is part of this tracked mapping; making it writable is
    // what the faulting store needs.
    let mut ok = unsafe { sys::mprotect(start, len, libc::PROT_READ | libc::PROT_WRITE) }.is_ok();
    #[cfg(feature = "seam")]
    crate::seam::track(false, start, len);
    if !ok {
        // Out of VMAs (or memory): open the whole mapping, which merges its VMAs.
        m.mark_index(m.addr(), m.len());
        // SAFETY: the whole mapping is ours.
        ok =
            unsafe { sys::mprotect(m.addr(), m.len(), libc::PROT_READ | libc::PROT_WRITE) }.is_ok();
        #[cfg(feature = "seam")]
        crate::seam::track(false, m.addr(), m.len());
    }
    m.counters.tracked_faults.fetch_add(1, SeqCst);
    m.fault_lock.unlock();
    ok
}

// ---------------------------------------------------------------------------------
// Arming and collecting

/// Start tracking a registered mapping. DAX_TRACK_MPROTECT: the caller has installed
/// the SIGSEGV handler (`signals::install_segv`) that brings its write faults here.
pub fn arm(m: &Mapping) -> Result<()> {
    if m.track == Track::Uffd {
        let _g = m
            .sync_lock
            .lock()
            .map_err(|_| crate::map::reentered("DAX_TRACK_UFFD"))?;
        return crate::uffd::arm(m);
    }
    if m.track == Track::Mprotect {
        // SAFETY: the whole mapping is ours; reads stay allowed.
        unsafe { sys::mprotect(m.addr(), m.len(), libc::PROT_READ) }
            .map_err(|e| Error::new(e.errno, format!("DAX_TRACK_MPROTECT: {}", e.msg)))?;
    }
    Ok(())
}

/// Stop tracking a mapping that is handed back to the caller (dax_forget): an
/// mprotect-tracked mapping is made writable again, while it is still registered (so
/// that no store in between faults without an owner). Its dirty bits are the caller's
/// concern (dax_forget discards them). A uffd-tracked mapping is released when its
/// userfaultfd is closed, with the mapping.
pub fn disarm(m: &Mapping) -> Result<()> {
    if m.track != Track::Mprotect {
        return Ok(());
    }
    let _mask = sys::SignalsBlocked::all();
    m.fault_lock
        .lock()
        .map_err(|_| Error::new(libc::EDEADLK, "forget: re-entered"))?;
    // SAFETY: the whole mapping is ours until the caller takes it back, writable as made.
    let r = unsafe { sys::mprotect(m.addr(), m.len(), libc::PROT_READ | libc::PROT_WRITE) };
    m.fault_lock.unlock();
    r.map_err(|e| {
        Error::new(
            e.errno,
            format!("forget: unprotecting the mapping: {}", e.msg),
        )
    })
}

/// Take the dirty lines of [addr, addr+len) (lines [lo, hi)) for a sync, which holds
/// the mapping's sync lock: for mprotect tracking, under the fault lock, after the
/// range's pages were protected again.
pub fn take(
    m: &Mapping,
    addr: usize,
    len: usize,
    lo: usize,
    hi: usize,
    f: &mut dyn FnMut(usize, usize),
) -> Result<()> {
    if m.track == Track::Uffd {
        // One atomic get-and-clear of the range's written pages into the index, then
        // the index as in the other modes.
        crate::uffd::collect(m, addr, len);
        m.index.take(lo, hi, f);
        return Ok(());
    }
    if m.track != Track::Mprotect {
        m.index.take(lo, hi, f);
        return Ok(());
    }
    let start = sys::page_down(addr);
    let end = sys::page_up(addr + len).min(sys::page_up(m.addr() + m.len()));
    let whole = start == m.addr() && end >= m.addr() + m.len();
    // No signal handler may run on this thread while it holds the fault lock (one that
    // stored into the mapping would wait for this thread forever).
    let mask = sys::SignalsBlocked::all();
    m.fault_lock
        .lock()
        .map_err(|_| Error::new(libc::EDEADLK, "sync: re-entered"))?;
    // SAFETY: the range is part of the mapping; reads stay allowed.
    let r = unsafe { sys::mprotect(start, end - start, libc::PROT_READ) };
    if r.is_ok() {
        // The writable runs this protect closed: all of the mapping's for a whole sync;
        // for part of it, about one per run of dirty lines taken (a fault marks the
        // lines of what it opens, and neighbouring open pages form one run, as their
        // VMAs merge), never more than the mapping has open.
        let mut runs = 0usize;
        m.index.take(lo, hi, &mut |a, b| {
            runs += 1;
            f(a, b)
        });
        let open = &m.faults_since_protect;
        let closed = if whole {
            open.swap(0, SeqCst)
        } else {
            let n = runs.min(open.load(SeqCst));
            open.fetch_sub(n, SeqCst);
            n
        };
        let _ = OPEN_RUNS.fetch_update(SeqCst, SeqCst, |v| Some(v.saturating_sub(closed)));
        #[cfg(feature = "seam")]
        crate::seam::track(true, start, end - start);
    }
    m.fault_lock.unlock();
    drop(mask);
    r.map_err(|e| {
        Error::new(
            e.errno,
            format!("sync: protecting the tracked range: {}", e.msg),
        )
    })
}
