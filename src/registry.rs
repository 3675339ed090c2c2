//! Address -> mapping, for the C handles' `dax_find`, `dax_range_is_pmem`, the preload
//! library's msync and the tracking signal handler. Lock-free: a fixed table of slots
//! scanned up to a high-water mark, so a lookup never allocates and never waits for a
//! lock (async-signal-safe, fork-safe). A removed slot's mapping is released only after
//! every lookup that might have seen it has finished.

use crate::error::{Error, Result};
use crate::map::Mapping;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;

const NSLOTS: usize = 16384;

struct Slot {
    start: AtomicUsize,
    end: AtomicUsize,
    ptr: AtomicPtr<Mapping>,
}

#[allow(clippy::declare_interior_mutable_const)]
const EMPTY: Slot = Slot {
    start: AtomicUsize::new(0),
    end: AtomicUsize::new(0),
    ptr: AtomicPtr::new(std::ptr::null_mut()),
};

static SLOTS: [Slot; NSLOTS] = [EMPTY; NSLOTS];
/// Slots at or above this index have never been used.
static HIGH: AtomicUsize = AtomicUsize::new(0);
/// Lookups in flight (they may hold a pointer read from a slot).
static READERS: AtomicUsize = AtomicUsize::new(0);
/// Registered mappings: a lookup in a process without any costs one load.
static LIVE: AtomicUsize = AtomicUsize::new(0);

/// A slot being filled: lookups skip it.
const RESERVED: *mut Mapping = std::ptr::dangling_mut::<Mapping>();

struct ReadGuard;
impl ReadGuard {
    fn new() -> ReadGuard {
        READERS.fetch_add(1, SeqCst);
        ReadGuard
    }
}
impl Drop for ReadGuard {
    fn drop(&mut self) {
        READERS.fetch_sub(1, SeqCst);
    }
}

/// Register a mapping (the registry keeps its own reference).
pub fn insert(m: &Arc<Mapping>) -> Result<()> {
    for (i, s) in SLOTS.iter().enumerate() {
        if s.ptr
            .compare_exchange(std::ptr::null_mut(), RESERVED, SeqCst, SeqCst)
            .is_ok()
        {
            s.start.store(m.addr, SeqCst);
            s.end.store(m.addr + m.len, SeqCst);
            HIGH.fetch_max(i + 1, SeqCst);
            LIVE.fetch_add(1, SeqCst);
            s.ptr
                .store(Arc::into_raw(m.clone()) as *mut Mapping, SeqCst);
            return Ok(());
        }
    }
    Err(Error::new(
        libc::ENOMEM,
        format!("too many daxpmem mappings (at most {NSLOTS} at once)"),
    ))
}

/// Unregister a mapping; returns false if it was not registered.
pub fn remove(m: &Mapping) -> bool {
    let target = m as *const Mapping as *mut Mapping;
    let high = HIGH.load(SeqCst);
    for s in &SLOTS[..high] {
        if s.ptr.load(SeqCst) == target
            && s.ptr
                .compare_exchange(target, RESERVED, SeqCst, SeqCst)
                .is_ok()
        {
            // Wait until no lookup can still hold the pointer, then release it.
            while READERS.load(SeqCst) != 0 {
                std::thread::yield_now();
            }
            s.start.store(0, SeqCst);
            s.end.store(0, SeqCst);
            s.ptr.store(std::ptr::null_mut(), SeqCst);
            LIVE.fetch_sub(1, SeqCst);
            // SAFETY: the pointer came from Arc::into_raw in insert() and no lookup
            // holds it any more.
            drop(unsafe { Arc::from_raw(target as *const Mapping) });
            return true;
        }
    }
    false
}

/// Visit registered mappings under a read guard; `f` returns true to stop. `f` must be
/// async-signal-safe when called from a signal handler.
pub fn scan(f: &mut dyn FnMut(&Mapping) -> bool) {
    if LIVE.load(SeqCst) == 0 {
        return;
    }
    let _g = ReadGuard::new();
    let high = HIGH.load(SeqCst);
    for s in &SLOTS[..high] {
        let p = s.ptr.load(SeqCst);
        if p.is_null() || p == RESERVED {
            continue;
        }
        // SAFETY: a non-null, non-reserved slot pointer is a live Arc<Mapping> that
        // remove() does not release while this read guard is held.
        if f(unsafe { &*p }) {
            return;
        }
    }
}

/// The mapping containing `addr`, with a reference of its own.
pub fn find(addr: usize) -> Option<Arc<Mapping>> {
    let mut found = None;
    scan(&mut |m| {
        if m.addr <= addr && addr < m.addr + m.len {
            let p = m as *const Mapping;
            // SAFETY: p is a live Arc<Mapping> (see scan); taking a new strong reference
            // keeps it alive after the guard is dropped.
            unsafe {
                Arc::increment_strong_count(p);
                found = Some(Arc::from_raw(p));
            }
            true
        } else {
            false
        }
    });
    found
}

/// Whether all of [addr, addr+len) lies in registered mappings for which `pred` holds.
pub fn covered_by(addr: usize, len: usize, pred: &dyn Fn(&Mapping) -> bool) -> bool {
    let end = match addr.checked_add(len) {
        Some(e) => e,
        None => return false,
    };
    let mut cur = addr;
    while cur < end {
        let mut next = None;
        scan(&mut |m| {
            if m.addr <= cur && cur < m.addr + m.len && pred(m) {
                next = Some(m.addr + m.len);
                true
            } else {
                false
            }
        });
        match next {
            Some(n) => cur = n,
            None => return false,
        }
    }
    true
}
