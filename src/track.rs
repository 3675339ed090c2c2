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
//! The handler is installed once, is async-signal-safe (atomics, raw system calls, no
//! allocation; the only lock it takes is the fault lock, which the collector holds for
//! a protect and a take with signals blocked), finds the mapping through the lock-free
//! registry, and passes every fault that is not a write to a tracked page to the action
//! that was installed before it (or the default action), so a program's own segfaults
//! behave as without the library.
//!
//! Every page fault splits a VMA; the handler coarsens (2 MiB, then the whole mapping)
//! long before `vm.max_map_count`. A write never fails because of a limit: over-marking
//! is the price.

use crate::error::{Error, Result};
use crate::map::{Mapping, Track};
use crate::{registry, sys};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering::SeqCst};

const PAGE: usize = sys::PAGE;
/// si_code of a fault on a page whose protection forbids the access.
const SEGV_ACCERR: i32 = 2;
const HUGE: usize = 2 << 20;
/// Writable runs opened by faults in the whole process, above which faults open 2 MiB
/// at a time, and above which a fault opens its whole mapping (each run costs up to
/// two VMAs; the default vm.max_map_count is 65530).
const PAGE_RUNS: usize = 8192;
const HUGE_RUNS: usize = 16384;
static OPEN_RUNS: AtomicUsize = AtomicUsize::new(0);

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
// The SIGSEGV handler

static INSTALLED: AtomicBool = AtomicBool::new(false);
/// The action faults that are not ours go to (what was installed before us, or what
/// the program installed since through dax_chain_sigaction). Leaked boxes: an old one
/// may still be read by a handler running on another thread.
static CHAIN: AtomicPtr<libc::sigaction> = AtomicPtr::new(std::ptr::null_mut());

extern "C" {
    /// glibc's public alias of sigaction: the preload library interposes `sigaction`,
    /// and the core must reach the real one.
    fn __sigaction(
        sig: libc::c_int,
        act: *const libc::sigaction,
        old: *mut libc::sigaction,
    ) -> libc::c_int;
}

/// Install the handler once (idempotent, thread-safe).
pub fn install() -> Result<()> {
    static INSTALLING: crate::lock::Mutex<()> = crate::lock::Mutex::new(());
    if INSTALLED.load(SeqCst) {
        return Ok(());
    }
    let _g = INSTALLING.lock().map_err(|_| {
        Error::new(
            libc::EDEADLK,
            "installing the tracking handler: re-entered from a signal handler",
        )
    })?;
    if INSTALLED.load(SeqCst) {
        return Ok(());
    }
    // SAFETY: zeroed sigaction structs are valid; __sigaction reads act and writes old.
    unsafe {
        let mut act: libc::sigaction = std::mem::zeroed();
        act.sa_sigaction = on_segv as *const () as usize;
        act.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_RESTART;
        libc::sigemptyset(&mut act.sa_mask);
        let mut old: libc::sigaction = std::mem::zeroed();
        if __sigaction(libc::SIGSEGV, &act, &mut old) != 0 {
            return Err(Error::last_os("installing the tracking SIGSEGV handler"));
        }
        CHAIN.store(Box::into_raw(Box::new(old)), SeqCst);
    }
    INSTALLED.store(true, SeqCst);
    Ok(())
}

/// For a program (or the preload library's `sigaction`) installing a SIGSEGV action
/// while the tracking handler is in place: the handler stays first and chains to `act`.
/// Returns Ok(true) when handled (`old` gets the previous chained action), Ok(false)
/// when the library has no handler for `sig` (the caller installs it for real).
///
/// # Safety
/// `act` is NULL or a valid action; `old` is NULL or writable.
pub unsafe fn chain_sigaction(
    sig: i32,
    act: *const libc::sigaction,
    old: *mut libc::sigaction,
) -> Result<bool> {
    if sig != libc::SIGSEGV || !INSTALLED.load(SeqCst) {
        return Ok(false);
    }
    let cur = CHAIN.load(SeqCst);
    if !old.is_null() && !cur.is_null() {
        // SAFETY: old is the caller's out-pointer; cur a leaked, never-freed action.
        unsafe { old.write(cur.read()) };
    }
    if !act.is_null() {
        // SAFETY: act points to the caller's action; copied into a leaked box.
        let b = Box::into_raw(Box::new(unsafe { act.read() }));
        CHAIN.store(b, SeqCst);
    }
    Ok(true)
}

extern "C" fn on_segv(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    let saved = crate::error::errno();
    // A panic must not unwind through the signal frame.
    let ours = std::panic::catch_unwind(|| {
        // SAFETY: the kernel passes a valid siginfo and ucontext to an SA_SIGINFO handler.
        let (code, addr, write) = unsafe {
            let uc = ctx as *const libc::ucontext_t;
            let err = (*uc).uc_mcontext.gregs[libc::REG_ERR as usize];
            ((*info).si_code, (*info).si_addr() as usize, err & 2 != 0)
        };
        code == SEGV_ACCERR && write && on_write_fault(addr)
    })
    .unwrap_or(false);
    crate::error::set_errno(saved);
    if !ours {
        chain(sig, info, ctx);
    }
}

/// Pass a fault on to the chained action; for the default action (or ignore, which
/// the kernel does not honour for a fault) restore the default so that returning
/// re-executes the access and the process dies of it as it would have.
fn chain(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    let p = CHAIN.load(SeqCst);
    // SAFETY: p is a leaked, never-freed action (or null).
    let act = if p.is_null() {
        None
    } else {
        // SAFETY: as above.
        Some(unsafe { p.read() })
    };
    match act {
        Some(a) if a.sa_sigaction != libc::SIG_DFL && a.sa_sigaction != libc::SIG_IGN => {
            if a.sa_flags & libc::SA_SIGINFO != 0 {
                // SAFETY: the program installed this SA_SIGINFO handler for SIGSEGV.
                let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                    unsafe { std::mem::transmute(a.sa_sigaction) };
                f(sig, info, ctx);
            } else {
                // SAFETY: the program installed this plain handler for SIGSEGV.
                let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(a.sa_sigaction) };
                f(sig);
            }
        }
        _ => {
            // SAFETY: a zeroed action is SIG_DFL with an empty mask.
            unsafe {
                let mut dfl: libc::sigaction = std::mem::zeroed();
                dfl.sa_sigaction = libc::SIG_DFL;
                __sigaction(libc::SIGSEGV, &dfl, std::ptr::null_mut());
            }
        }
    }
}

/// The write fault at `addr`: ours if it is in a mapping tracked by mprotect.
fn on_write_fault(addr: usize) -> bool {
    match registry::find(addr) {
        Some(m) if m.track == Track::Mprotect => open_page(&m, addr),
        _ => false,
    }
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
        let s = (addr & !(HUGE - 1)).max(m.addr);
        (s, (s + HUGE).min(m.addr + m.len) - s)
    } else {
        (m.addr, m.len)
    };
    let len = len.min(m.addr + m.len - start);
    m.mark_index(start, len);
    // SAFETY: [start, start+len) is part of this tracked mapping; making it writable is
    // what the faulting store needs.
    let mut ok = unsafe { sys::mprotect(start, len, libc::PROT_READ | libc::PROT_WRITE) }.is_ok();
    #[cfg(feature = "seam")]
    crate::seam::track(false, start, len);
    if !ok {
        // Out of VMAs (or memory): open the whole mapping, which merges its VMAs.
        m.mark_index(m.addr, m.len);
        // SAFETY: the whole mapping is ours.
        ok = unsafe { sys::mprotect(m.addr, m.len, libc::PROT_READ | libc::PROT_WRITE) }.is_ok();
        #[cfg(feature = "seam")]
        crate::seam::track(false, m.addr, m.len);
    }
    m.counters.tracked_faults.fetch_add(1, SeqCst);
    m.fault_lock.unlock();
    ok
}

// ---------------------------------------------------------------------------------
// Arming and collecting

/// Start tracking a registered mapping.
pub fn arm(m: &Mapping) -> Result<()> {
    if m.track == Track::Uffd {
        let _g = m
            .sync_lock
            .lock()
            .map_err(|_| crate::sync::reentered("DAX_TRACK_UFFD"))?;
        return crate::uffd::arm(m);
    }
    if m.track == Track::Mprotect {
        install()?;
        // SAFETY: the whole mapping is ours; reads stay allowed.
        unsafe { sys::mprotect(m.addr, m.len, libc::PROT_READ) }
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
        .map_err(|_| Error::new(libc::EDEADLK, "dax_forget: re-entered"))?;
    // SAFETY: the whole mapping is ours until the caller takes it back, writable as made.
    let r = unsafe { sys::mprotect(m.addr, m.len, libc::PROT_READ | libc::PROT_WRITE) };
    m.fault_lock.unlock();
    r.map_err(|e| {
        Error::new(
            e.errno,
            format!("dax_forget: unprotecting the mapping: {}", e.msg),
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
    let end = sys::page_up(addr + len).min(sys::page_up(m.addr + m.len));
    let whole = start == m.addr && end >= m.addr + m.len;
    // No signal handler may run on this thread while it holds the fault lock (one that
    // stored into the mapping would wait for this thread forever).
    let mask = sys::SignalsBlocked::all();
    m.fault_lock
        .lock()
        .map_err(|_| Error::new(libc::EDEADLK, "dax_sync: re-entered"))?;
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
            format!("dax_sync: protecting the tracked range: {}", e.msg),
        )
    })
}
