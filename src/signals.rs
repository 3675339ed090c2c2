//! The library's signal handlers, all of them: SIGSEGV (the write faults of
//! DAX_TRACK_MPROTECT, handled by track.rs) and SIGBUS (a write-back, copy or fill of the
//! library's that touched a page its file no longer backs: the file was shrunk under the
//! mapping).
//!
//! Each handler is installed once (through glibc's `__sigaction`, so an interposed
//! `sigaction` never sees it), with `SA_NODEFER` and every signal but SIGSEGV and SIGBUS
//! blocked while it runs: no asynchronous handler can interrupt it (one that stored into
//! a tracked page while it held the fault lock would wait for it forever), and a program
//! handler it chains to that leaves by plain `longjmp` does not leave SIGSEGV blocked
//! (the next tracked store would kill the process). Every signal that is not ours goes
//! to the action installed before (or since, through `dax_chain_sigaction`), run with
//! the mask the kernel would give it (the interrupted mask and its `sa_mask`) except
//! that SIGSEGV and SIGBUS stay unblocked; to the default action a fault is passed by
//! restoring the default and returning (the access faults again), a signal sent by
//! kill/raise/sigqueue by restoring the default and sending it again.
//!
//! Async-signal-safe: atomics, raw system calls, the lock-free registry, no allocation.

use crate::error::{Error, Result};
use crate::map::Mapping;
use crate::{registry, sys};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering::SeqCst};

/// si_code of a fault on a page whose protection forbids the access (not in the libc
/// crate for Linux).
const SEGV_ACCERR: i32 = 2;

/// One signal the library handles: whether its handler is in, and the action the signals
/// that are not ours go to. Leaked boxes: an old one may still be read by a handler
/// running on another thread.
struct Slot {
    sig: i32,
    installed: AtomicBool,
    chain: AtomicPtr<libc::sigaction>,
}

static SEGV: Slot = Slot {
    sig: libc::SIGSEGV,
    installed: AtomicBool::new(false),
    chain: AtomicPtr::new(std::ptr::null_mut()),
};
static BUS: Slot = Slot {
    sig: libc::SIGBUS,
    installed: AtomicBool::new(false),
    chain: AtomicPtr::new(std::ptr::null_mut()),
};

extern "C" {
    /// glibc's public alias of sigaction: the preload library interposes `sigaction`,
    /// and the core must reach the real one.
    fn __sigaction(
        sig: libc::c_int,
        act: *const libc::sigaction,
        old: *mut libc::sigaction,
    ) -> libc::c_int;
}

type Handler = extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void);

fn install(slot: &'static Slot, handler: Handler) -> Result<()> {
    static INSTALLING: crate::lock::Mutex<()> = crate::lock::Mutex::new(());
    if slot.installed.load(SeqCst) {
        return Ok(());
    }
    let _g = INSTALLING.lock();
    if slot.installed.load(SeqCst) {
        return Ok(());
    }
    // SAFETY: zeroed sigaction structs are valid; the set calls fill our own struct;
    // __sigaction reads act and writes old.
    unsafe {
        let mut act: libc::sigaction = std::mem::zeroed();
        act.sa_sigaction = handler as *const () as usize;
        act.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_RESTART | libc::SA_NODEFER;
        libc::sigfillset(&mut act.sa_mask);
        libc::sigdelset(&mut act.sa_mask, libc::SIGSEGV);
        libc::sigdelset(&mut act.sa_mask, libc::SIGBUS);
        let mut old: libc::sigaction = std::mem::zeroed();
        if __sigaction(slot.sig, &act, &mut old) != 0 {
            return Err(Error::last_os(format!(
                "installing the library's {} handler",
                if slot.sig == libc::SIGSEGV {
                    "SIGSEGV"
                } else {
                    "SIGBUS"
                }
            )));
        }
        slot.chain.store(Box::into_raw(Box::new(old)), SeqCst);
    }
    slot.installed.store(true, SeqCst);
    Ok(())
}

/// The SIGSEGV handler of DAX_TRACK_MPROTECT (idempotent, thread-safe).
pub fn install_segv() -> Result<()> {
    install(&SEGV, on_segv)
}

/// The SIGBUS handler that turns a lost page under a library operation into EIO
/// (idempotent, thread-safe): installed with the first mapping.
pub fn install_bus() -> Result<()> {
    install(&BUS, on_bus)
}

/// For a program (or the preload library's `sigaction`) installing a SIGSEGV or SIGBUS
/// action while the library's handler for it is in place: the handler stays first and
/// chains to `act`. Returns Ok(true) when handled (`old` gets the previous chained
/// action), Ok(false) when the library has no handler for `sig` (the caller installs it
/// for real).
///
/// # Safety
/// `act` is NULL or a valid action; `old` is NULL or writable.
pub unsafe fn chain_sigaction(
    sig: i32,
    act: *const libc::sigaction,
    old: *mut libc::sigaction,
) -> Result<bool> {
    let slot = match sig {
        libc::SIGSEGV => &SEGV,
        libc::SIGBUS => &BUS,
        _ => return Ok(false),
    };
    if !slot.installed.load(SeqCst) {
        return Ok(false);
    }
    let cur = slot.chain.load(SeqCst);
    if !old.is_null() && !cur.is_null() {
        // SAFETY: old is the caller's out-pointer; cur a leaked, never-freed action.
        unsafe { old.write(cur.read()) };
    }
    if !act.is_null() {
        // SAFETY: act points to the caller's action; copied into a leaked box.
        let b = Box::into_raw(Box::new(unsafe { act.read() }));
        slot.chain.store(b, SeqCst);
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
        // si_code <= 0: sent (kill, raise, sigqueue), not a fault: never ours.
        code == SEGV_ACCERR && write && crate::track::on_write_fault(addr, in_op)
    })
    .unwrap_or(false);
    crate::error::set_errno(saved);
    if !ours {
        chain(&SEGV, sig, info, ctx);
    }
}

extern "C" fn on_bus(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    let saved = crate::error::errno();
    let ours = std::panic::catch_unwind(|| {
        // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler.
        let (code, addr) = unsafe { ((*info).si_code, (*info).si_addr() as usize) };
        // Only "no backing page" (BUS_ADRERR): a memory error (BUS_MCEERR_*) is not a
        // truncation, and is left to the program or the default action.
        code == libc::BUS_ADRERR && on_lost_page(addr)
    })
    .unwrap_or(false);
    crate::error::set_errno(saved);
    if !ours {
        chain(&BUS, sig, info, ctx);
    }
}

/// Pass a signal on to the chained action (see the module's comment).
fn chain(slot: &Slot, sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    let p = slot.chain.load(SeqCst);
    let act = if p.is_null() {
        None
    } else {
        // SAFETY: p is a leaked, never-freed action.
        Some(unsafe { p.read() })
    };
    // SAFETY: the kernel passes a valid siginfo.
    let sent = unsafe { (*info).si_code } <= 0;
    match act {
        Some(a) if a.sa_sigaction != libc::SIG_DFL && a.sa_sigaction != libc::SIG_IGN => {
            // The kernel's mask for their handler, without SIGSEGV and SIGBUS: a handler
            // left by plain longjmp must not leave them blocked.
            // SAFETY: ctx is the kernel's ucontext; the set calls work on our copy;
            // pthread_sigmask is async-signal-safe.
            unsafe {
                let mut set = (*(ctx as *const libc::ucontext_t)).uc_sigmask;
                for s in 1..=64 {
                    if libc::sigismember(&a.sa_mask, s) == 1 {
                        libc::sigaddset(&mut set, s);
                    }
                }
                libc::sigdelset(&mut set, libc::SIGSEGV);
                libc::sigdelset(&mut set, libc::SIGBUS);
                libc::pthread_sigmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
            }
            if a.sa_flags & libc::SA_SIGINFO != 0 {
                // SAFETY: the program installed this SA_SIGINFO handler for sig.
                let f: Handler = unsafe { std::mem::transmute(a.sa_sigaction) };
                f(sig, info, ctx);
            } else {
                // SAFETY: the program installed this plain handler for sig.
                let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(a.sa_sigaction) };
                f(sig);
            }
            // Returning restores the interrupted mask (sigreturn).
        }
        Some(a) if a.sa_sigaction == libc::SIG_IGN && sent => {}
        _ => {
            // The default action (or ignore, which the kernel does not honour for a
            // fault): restore the default; a fault happens again when this returns, a
            // sent signal is sent again (not blocked: SA_NODEFER) and taken at once.
            // SAFETY: a zeroed action is SIG_DFL with an empty mask; tgkill to this thread.
            unsafe {
                let mut dfl: libc::sigaction = std::mem::zeroed();
                dfl.sa_sigaction = libc::SIG_DFL;
                __sigaction(sig, &dfl, std::ptr::null_mut());
                if sent {
                    libc::syscall(
                        libc::SYS_tgkill,
                        libc::getpid(),
                        libc::syscall(libc::SYS_gettid),
                        sig,
                    );
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------
// SIGBUS: a page the file no longer backs, under a library operation

/// The mapping this thread is writing back, copying or filling into (0: none), and
/// whether a page of it was lost meanwhile. Plain thread-local stores: no locked
/// instruction on the sync path (it would wait for the write-backs).
struct Op {
    map: Cell<usize>,
    lost: Cell<bool>,
}

thread_local! {
    static OP: Op = const {
        Op {
            map: Cell::new(0),
            lost: Cell::new(false),
        }
    };
}

/// This thread is inside a copy or fill of `m` while the guard lives (a write-back
/// marks itself in `Mapping::writer` instead, which costs no call): a
/// SIGBUS on a page of `m` is then the file shrunk under the mapping, and the handler
/// replaces the page with a zero page and records the loss.
pub struct InOp(());

#[inline(always)]
pub fn enter(m: &Mapping) -> InOp {
    OP.with(|o| {
        o.map.set(m as *const Mapping as usize);
        o.lost.set(false);
    });
    InOp(())
}

impl InOp {
    /// End the operation: whether a page was lost during it.
    #[inline(always)]
    pub fn finish(self) -> bool {
        std::mem::forget(self);
        OP.with(|o| {
            o.map.set(0);
            o.lost.get()
        })
    }
}

impl Drop for InOp {
    fn drop(&mut self) {
        let _ = OP.try_with(|o| o.map.set(0));
    }
}

/// Whether this thread is inside a copy, fill or read of `m` (`enter`). Touches the
/// thread-local: call it only once a mapping was found at the faulting address.
fn in_op(m: &Mapping) -> bool {
    OP.try_with(|o| o.map.get()).unwrap_or(0) == m as *const Mapping as usize
}

/// A SIGBUS at `addr`: ours if `addr` lies in a registered mapping this thread is
/// operating on. Then the page becomes a private zero page (so the instruction
/// succeeds when re-executed) and the mapping records the loss (sticky EIO).
fn on_lost_page(addr: usize) -> bool {
    // The registry first: only a thread that is inside an operation touches the TLS
    // (a thread's first access to a dlopen'ed library's TLS may allocate).
    // A user of the mapping while this runs (released without freeing); a retired one
    // when this thread's copy or fill began before the retirement (handle::Copying).
    let Some(r) = registry::find(addr).or_else(|| registry::find_retired(addr)) else {
        return false;
    };
    let found: &Mapping = &r;
    let writing_back = found.writer.load(SeqCst) == crate::lock::self_id() as usize;
    if !writing_back && !in_op(found) {
        return false;
    }
    let page = sys::page_down(addr);
    // SAFETY: the page is part of the mapping this thread is operating on (which holds
    // a reference to it); its file page is gone, and a zero page takes its place.
    let r = unsafe {
        sys::mmap_errno(
            page,
            sys::PAGE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_FIXED | libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if r != Ok(page) {
        return false;
    }
    found.note_lost_page(page);
    let _ = OP.try_with(|o| o.lost.set(true));
    true
}
