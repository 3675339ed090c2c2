//! Every live mapping, in one fixed table of slots: found by handle (slot and
//! generation, see handle.rs) or by address (`dax_find`, `dax_range_is_pmem`, the
//! preload's msync, the tracking signal handler). Lock-free and allocation-free on the
//! lookup side (async-signal-safe), and nothing in it ever waits:
//!
//! - A slot's state word holds a generation, a count of users (calls in flight that
//!   may touch the mapping) and a LIVE bit. A call takes a user only while the slot is
//!   LIVE and of the expected generation (one compare-and-swap), so a stale handle —
//!   however many unmaps ago it was retired — is refused, and a mapping is never freed
//!   under a call.
//! - Unmapping clears LIVE (one caller wins); the mapping is released by whoever lets
//!   the user count reach 0 (the unmapping call itself, or the last call that was still
//!   inside). Nobody waits for readers. Calls that must stay async-signal-safe release
//!   without freeing (`Ref::no_reap`); what they leave is freed by the next ordinary
//!   call (`reap`). The fault handlers alone take a user of a retired mapping, and only
//!   while a call still holds one (`find_retired`).
//! - In a forked child the calls other threads had in flight are gone: their users are
//!   dropped and half-made slots discarded (`after_fork_child`).

use crate::error::{Error, Result};
use crate::map::Mapping;
use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering::*};
use std::sync::Arc;

/// Slots in the table: mappings alive at once.
pub(crate) const NSLOTS: usize = 16384;

// The state word: LIVE | OCC | BUSY | users (21 bits) | generation (40 bits).
/// Registered and reachable (handles and lookups may take users).
const LIVE: u64 = 1;
/// The slot holds a mapping (live, being retired, or waiting to be freed).
const OCC: u64 = 2;
/// One thread owns the slot exclusively (filling it in, or freeing it).
const BUSY: u64 = 4;
const USER_SHIFT: u32 = 3;
const USER: u64 = 1 << USER_SHIFT;
const USERS_MAX: u64 = (1 << 21) - 1;
const USERS: u64 = USERS_MAX << USER_SHIFT;
const GEN_SHIFT: u32 = 24;
/// Generations wrap after 2^40 reuses of one slot.
pub(crate) const GEN_MASK: u64 = (1 << 40) - 1;

#[inline(always)]
fn gen_of(s: u64) -> u64 {
    s >> GEN_SHIFT
}
#[inline(always)]
fn users_of(s: u64) -> u64 {
    (s & USERS) >> USER_SHIFT
}

struct Slot {
    state: AtomicU64,
    start: AtomicUsize,
    end: AtomicUsize,
    ptr: AtomicPtr<Mapping>,
}

#[allow(clippy::declare_interior_mutable_const)]
const EMPTY: Slot = Slot {
    // Generation 1 for a fresh slot: a handle never encodes generation 0.
    state: AtomicU64::new(1 << GEN_SHIFT),
    start: AtomicUsize::new(0),
    end: AtomicUsize::new(0),
    ptr: AtomicPtr::new(std::ptr::null_mut()),
};

static SLOTS: [Slot; NSLOTS] = [EMPTY; NSLOTS];
/// Slots at or above this index have never been used.
static HIGH: AtomicUsize = AtomicUsize::new(0);
/// LIVE slots: a lookup in a process without any costs one load.
static LIVE_COUNT: AtomicUsize = AtomicUsize::new(0);
/// Retired mappings left for `reap` by async-signal-safe releases (a hint: `reap`
/// finds them all).
static ZOMBIES: AtomicUsize = AtomicUsize::new(0);

/// One user of a live (or just retired) mapping: the mapping is not freed while it
/// lives. Dropping it may free the mapping (see `no_reap`).
pub struct Ref {
    idx: u32,
    gen: u64,
    ptr: *const Mapping,
    reap: bool,
}

impl Ref {
    /// The slot index and generation (the handle's parts).
    pub fn id(&self) -> (u32, u64) {
        (self.idx, self.gen)
    }
    /// Release without freeing (for async-signal-safe callers): if this was the last
    /// user of a retired mapping, the mapping waits for the next `reap`.
    pub fn no_reap(mut self) -> Self {
        self.reap = false;
        self
    }
}

impl std::ops::Deref for Ref {
    type Target = Mapping;
    fn deref(&self) -> &Mapping {
        // SAFETY: the slot's pointer is a live Arc<Mapping> that is not released while
        // this user is counted.
        unsafe { &*self.ptr }
    }
}

impl Drop for Ref {
    fn drop(&mut self) {
        release(self.idx as usize, self.reap);
    }
}

/// Take a user of slot `idx` if it is LIVE with generation `gen`.
pub fn acquire(idx: usize, gen: u64) -> Option<Ref> {
    let s = SLOTS.get(idx)?;
    let mut cur = s.state.load(Acquire);
    loop {
        if cur & LIVE == 0 || gen_of(cur) != gen || users_of(cur) == USERS_MAX {
            return None;
        }
        match s
            .state
            .compare_exchange_weak(cur, cur + USER, Acquire, Acquire)
        {
            Ok(_) => break,
            Err(now) => cur = now,
        }
    }
    Some(Ref {
        idx: idx as u32,
        gen,
        ptr: s.ptr.load(Acquire),
        reap: true,
    })
}

/// The range [start, end) of the mapping in slot `idx` if it is LIVE with generation
/// `gen`, read without taking a user (a seqlock: the state, the range, the state again;
/// the slots are never freed). For marks that touch no mapping memory (rings.rs).
/// Async-signal-safe.
#[inline(always)]
pub fn live_range(idx: usize, gen: u64) -> Option<(usize, usize)> {
    let s = SLOTS.get(idx)?;
    // LIVE with generation `gen`, whatever the users: one mask and one comparison (the
    // mark's fast path, inlined into dax_mark_dirty, has few registers to spare).
    let (mask, want) = (!(USERS | ((1 << USER_SHIFT) - 1)) | LIVE, (gen << GEN_SHIFT) | LIVE);
    if s.state.load(Acquire) & mask != want {
        return None;
    }
    let (start, end) = (s.start.load(Relaxed), s.end.load(Relaxed));
    std::sync::atomic::fence(Acquire);
    (s.state.load(Relaxed) & mask == want).then_some((start, end))
}

/// Whether slot `idx` is LIVE with generation `gen` (one load).
#[inline]
pub fn is_live_id(idx: usize, gen: u64) -> bool {
    SLOTS
        .get(idx)
        .map(|s| s.state.load(SeqCst))
        .is_some_and(|c| c & LIVE != 0 && gen_of(c) == gen)
}

/// Take a user of slot `idx` whatever its generation, if it is LIVE.
fn acquire_any(idx: usize) -> Option<Ref> {
    let cur = SLOTS[idx].state.load(Acquire);
    if cur & LIVE == 0 {
        return None;
    }
    acquire(idx, gen_of(cur))
}

fn release(idx: usize, reap: bool) {
    let s = &SLOTS[idx];
    let mut cur = s.state.load(Relaxed);
    loop {
        if users_of(cur) == 0 {
            // Dropped by a forked child's reset: nothing to give back.
            return;
        }
        match s
            .state
            .compare_exchange_weak(cur, cur - USER, AcqRel, Relaxed)
        {
            Ok(_) => break,
            Err(now) => cur = now,
        }
    }
    let after = cur - USER;
    if after & (LIVE | BUSY | USERS) == 0 && after & OCC != 0 {
        if reap {
            free(idx, after);
        } else {
            ZOMBIES.fetch_add(1, Relaxed);
        }
    }
}

/// Free slot `idx`, retired and without users (state `seen`), if nobody else does.
fn free(idx: usize, seen: u64) {
    let s = &SLOTS[idx];
    if s.state
        .compare_exchange(seen, seen | BUSY, Acquire, Relaxed)
        .is_err()
    {
        return;
    }
    // BUSY before the range changes, for `live_range`'s readers (a seqlock).
    std::sync::atomic::fence(Release);
    let p = s.ptr.swap(std::ptr::null_mut(), AcqRel);
    s.start.store(0, Relaxed);
    s.end.store(0, Relaxed);
    let next = (gen_of(seen) + 1) & GEN_MASK;
    s.state.store(next.max(1) << GEN_SHIFT, Release);
    if !p.is_null() {
        // SAFETY: p came from Arc::into_raw in insert(); the slot no longer refers to
        // it and no user holds it.
        drop(unsafe { Arc::from_raw(p as *const Mapping) });
    }
}

/// Free every retired mapping no call uses any more, if an async-signal-safe call left
/// one (one load otherwise): the ordinary calls end with this, so such a mapping's
/// memory goes at the next one.
#[inline]
pub fn reap_pending() {
    if ZOMBIES.load(Relaxed) != 0 {
        reap();
    }
}

/// Free every retired mapping no call uses any more (left by async-signal-safe calls).
pub fn reap() {
    ZOMBIES.store(0, Relaxed);
    let high = HIGH.load(Acquire);
    for (i, s) in SLOTS[..high].iter().enumerate() {
        let cur = s.state.load(Acquire);
        if cur & (LIVE | BUSY | USERS) == 0 && cur & OCC != 0 {
            free(i, cur);
        }
    }
}

/// Register a mapping; returns the slot index and generation, LIVE.
pub fn insert(m: Arc<Mapping>) -> Result<(u32, u64)> {
    Ok(reserve()?.fill(m))
}

/// A free slot taken for a mapping to be registered later (`fill`, which cannot fail):
/// occupied and busy meanwhile, so nothing else takes it or looks into it. Dropped
/// unfilled, the slot is free again.
pub struct Reserved {
    idx: usize,
    /// The slot's state when it was taken.
    was: u64,
}

/// Take a free slot (ENOMEM when there is none).
pub fn reserve() -> Result<Reserved> {
    reap();
    for (i, s) in SLOTS.iter().enumerate() {
        let cur = s.state.load(Acquire);
        if cur & (OCC | BUSY | USERS) != 0 {
            continue;
        }
        if s.state
            .compare_exchange(cur, cur | OCC | BUSY, Acquire, Relaxed)
            .is_err()
        {
            continue;
        }
        return Ok(Reserved { idx: i, was: cur });
    }
    Err(Error::new(
        libc::ENOMEM,
        format!("too many daxpmem mappings (at most {NSLOTS} at once)"),
    ))
}

impl Reserved {
    /// Register `m` in the slot; returns the slot index and generation, LIVE.
    pub fn fill(self, m: Arc<Mapping>) -> (u32, u64) {
        let (i, cur) = (self.idx, self.was);
        std::mem::forget(self);
        let s = &SLOTS[i];
        s.start.store(m.addr(), Relaxed);
        s.end.store(m.addr() + m.len(), Relaxed);
        m.reg_id.store(id_of(i, gen_of(cur)), Relaxed);
        s.ptr.store(Arc::into_raw(m) as *mut Mapping, Release);
        HIGH.fetch_max(i + 1, AcqRel);
        LIVE_COUNT.fetch_add(1, AcqRel);
        s.state.store((cur & !BUSY) | OCC | LIVE, Release);
        (i as u32, gen_of(cur))
    }
}

impl Drop for Reserved {
    fn drop(&mut self) {
        // Busy: nobody else has changed the state since it was taken.
        SLOTS[self.idx].state.store(self.was, Release);
    }
}

/// Unregister: clear LIVE (no new users; lookups no longer see it). Returns false when
/// the mapping was retired already (another unmap won). The mapping is freed when its
/// last user is released.
pub fn retire(r: &Ref) -> bool {
    let s = &SLOTS[r.idx as usize];
    let mut cur = s.state.load(Relaxed);
    loop {
        if cur & LIVE == 0 || gen_of(cur) != r.gen {
            return false;
        }
        match s
            .state
            .compare_exchange_weak(cur, cur & !LIVE, AcqRel, Relaxed)
        {
            Ok(_) => {
                LIVE_COUNT.fetch_sub(1, AcqRel);
                return true;
            }
            Err(now) => cur = now,
        }
    }
}

/// Whether the mapping behind `r` is still registered.
#[cfg_attr(not(feature = "seam"), allow(dead_code))] // only the tests use it
pub fn is_live(r: &Ref) -> bool {
    let cur = SLOTS[r.idx as usize].state.load(Acquire);
    cur & LIVE != 0 && gen_of(cur) == r.gen
}

/// Visit the registered mappings, each with a user of its own while `f` runs; `f`
/// returns true to stop. Async-signal-safe when `f` is (never frees: see `no_reap`).
pub fn scan(f: &mut dyn FnMut(&Ref) -> bool) {
    if LIVE_COUNT.load(Acquire) == 0 {
        return;
    }
    let high = HIGH.load(Acquire);
    for i in 0..high {
        if let Some(r) = acquire_any(i) {
            let r = r.no_reap();
            if f(&r) {
                return;
            }
        }
    }
}

/// The id of the mapping in registry slot `idx` with generation `gen` (rings.rs).
#[inline(always)]
pub fn id_of(idx: usize, gen: u64) -> u64 {
    ((idx as u64) << 40) | gen
}

/// The registered mapping containing `addr`, with a user of its own (released without
/// freeing: async-signal-safe). Cheap: slots are compared by their bounds first.
pub fn find(addr: usize) -> Option<Ref> {
    find_where(&|s, e| s <= addr && addr < e)
}

/// The first registered mapping overlapping [addr, end).
pub fn find_overlap(addr: usize, end: usize) -> Option<Ref> {
    find_where(&|s, e| s < end && addr < e)
}

fn find_where(hit: &dyn Fn(usize, usize) -> bool) -> Option<Ref> {
    if LIVE_COUNT.load(Acquire) == 0 {
        return None;
    }
    let high = HIGH.load(Acquire);
    for (i, s) in SLOTS[..high].iter().enumerate() {
        if s.state.load(Relaxed) & LIVE == 0 || !hit(s.start.load(Relaxed), s.end.load(Relaxed)) {
            continue;
        }
        if let Some(r) = acquire_any(i) {
            // The bounds cannot change while a user is held: check them again.
            if hit(r.addr(), r.addr() + r.len()) {
                return Some(r.no_reap());
            }
        }
    }
    None
}

/// The retired mapping containing `addr` that a call is still inside (holds a user of),
/// with a user of its own (released without freeing: async-signal-safe). For the fault
/// handlers: a copy or fill that began before its mapping was retired completes on the
/// mapped memory (handle::Copying), and may fault there. A user is taken only while
/// another is held, so the slot is neither freed nor reused under the lookup.
pub fn find_retired(addr: usize) -> Option<Ref> {
    let high = HIGH.load(Acquire);
    for (i, s) in SLOTS[..high].iter().enumerate() {
        let mut cur = s.state.load(Acquire);
        while cur & (LIVE | OCC | BUSY) == OCC
            && users_of(cur) != 0
            && users_of(cur) != USERS_MAX
            && s.start.load(Relaxed) <= addr
            && addr < s.end.load(Relaxed)
        {
            match s
                .state
                .compare_exchange_weak(cur, cur + USER, Acquire, Acquire)
            {
                Ok(_) => {
                    let r = Ref {
                        idx: i as u32,
                        gen: gen_of(cur),
                        ptr: s.ptr.load(Acquire),
                        reap: false,
                    };
                    // The bounds cannot change while a user is held: check them again.
                    if r.addr() <= addr && addr < r.addr() + r.len() {
                        return Some(r);
                    }
                    break;
                }
                Err(now) => cur = now,
            }
        }
    }
    None
}

/// Whether all of [addr, addr+len) lies in registered mappings for which `pred` holds.
pub fn covered_by(addr: usize, len: usize, pred: &dyn Fn(&Mapping) -> bool) -> bool {
    let end = match addr.checked_add(len) {
        Some(e) => e,
        None => return false,
    };
    let mut cur = addr;
    while cur < end {
        match find(cur) {
            Some(m) if pred(&m) => cur = m.addr() + m.len(),
            _ => return false,
        }
    }
    true
}

/// In a forked child (async-signal-safe: atomics only). The calls other threads had in
/// flight do not exist here: every user count is dropped (a late release of one is
/// ignored), a slot another thread was filling in or freeing is discarded (its mapping
/// is leaked, never half-used), and the live count is recomputed.
/// `f` sees every mapping the child still holds (live or retired), to reset what other
/// threads may have held in it.
pub fn after_fork_child(f: &mut dyn FnMut(&Mapping)) {
    let high = HIGH.load(Relaxed);
    let mut live = 0;
    for s in &SLOTS[..high] {
        let cur = s.state.load(Relaxed);
        let g = gen_of(cur);
        if cur & BUSY != 0 {
            s.ptr.store(std::ptr::null_mut(), Relaxed);
            s.start.store(0, Relaxed);
            s.end.store(0, Relaxed);
            s.state
                .store(((g + 1) & GEN_MASK).max(1) << GEN_SHIFT, Relaxed);
            continue;
        }
        s.state.store(cur & !USERS, Relaxed);
        if cur & LIVE != 0 {
            live += 1;
        }
        let p = s.ptr.load(Relaxed);
        if cur & OCC != 0 && !p.is_null() {
            // SAFETY: an occupied, not busy slot holds a live Arc<Mapping>; no other
            // thread exists to free it.
            f(unsafe { &*p });
        }
    }
    LIVE_COUNT.store(live, Relaxed);
    // Retired mappings without users are freed by the next ordinary call (reap).
    ZOMBIES.store(1, Relaxed);
}
