//! The C handle behind `dax_map_t *`: a small box with a liveness tag and the mapping.
//! Unmapping clears the tag and releases the mapping at once; the box itself is kept in
//! a quarantine ring for the next 1024 unmaps, so a second `dax_unmap` (or any use) of
//! a recently unmapped handle is detected and reported as EBADF instead of touching
//! freed memory.

use crate::error::{Error, Result};
use crate::map::Mapping;
use crate::registry;
use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;

const LIVE: u64 = 0x6461_786d_6170_4c56; // "daxmapLV"
const DEAD: u64 = 0x6461_786d_6170_4444; // "daxmapDD"

/// What `dax_map_t *` points to.
pub struct Handle {
    tag: AtomicU64,
    map: AtomicPtr<Mapping>,
}

const QUARANTINE: usize = 1024;
#[allow(clippy::declare_interior_mutable_const)]
const NO_HANDLE: AtomicPtr<Handle> = AtomicPtr::new(std::ptr::null_mut());
static RING: [AtomicPtr<Handle>; QUARANTINE] = [NO_HANDLE; QUARANTINE];
static NEXT: AtomicUsize = AtomicUsize::new(0);

/// Register `m` and make a handle for it.
pub fn new(m: Mapping) -> Result<*mut Handle> {
    let m = Arc::new(m);
    let h = Box::into_raw(Box::new(Handle {
        tag: AtomicU64::new(LIVE),
        map: AtomicPtr::new(Arc::as_ptr(&m) as *mut Mapping),
    }));
    m.handle.store(h, SeqCst);
    if let Err(e) = registry::insert(&m) {
        // SAFETY: h was made just above and never handed out.
        drop(unsafe { Box::from_raw(h) });
        return Err(e);
    }
    // Tracking starts once the fault handler can find the mapping.
    if let Err(e) = crate::track::arm(&m) {
        registry::remove(&m);
        // SAFETY: as above.
        drop(unsafe { Box::from_raw(h) });
        return Err(e);
    }
    // The handle's own reference (released by unmap).
    let _ = Arc::into_raw(m);
    Ok(h)
}

/// The mapping behind a handle, checked.
///
/// # Safety
/// `h` is NULL or a pointer returned by `new` (live, or unmapped within the quarantine).
/// Unmapping a handle while another thread uses it is the caller's error.
pub unsafe fn get<'a>(h: *const Handle, what: &str) -> Result<&'a Mapping> {
    if h.is_null() {
        return Err(Error::inval(format!("{what}: NULL mapping handle")));
    }
    // SAFETY: per the contract, h points to a Handle box that is still allocated.
    let h = unsafe { &*h };
    if h.tag.load(SeqCst) != LIVE {
        return Err(Error::new(
            libc::EBADF,
            format!("{what}: the mapping handle is not live (already unmapped?)"),
        ));
    }
    let p = h.map.load(SeqCst);
    // SAFETY: a live handle's pointer is an Arc<Mapping> held by the handle.
    Ok(unsafe { &*p })
}

/// Unmap: unregister, release the mapping (munmap, close), retire the handle.
///
/// # Safety
/// As for `get`.
pub unsafe fn unmap(h: *mut Handle) -> Result<()> {
    if h.is_null() {
        return Err(Error::inval("dax_unmap: NULL mapping handle"));
    }
    // SAFETY: per the contract, h points to a Handle box that is still allocated.
    let hr = unsafe { &*h };
    if hr.tag.compare_exchange(LIVE, DEAD, SeqCst, SeqCst).is_err() {
        return Err(Error::new(
            libc::EBADF,
            "dax_unmap: the mapping handle is not live (already unmapped?)",
        ));
    }
    let p = hr.map.swap(std::ptr::null_mut(), SeqCst);
    // SAFETY: p came from Arc::into_raw in new(); the handle's reference ends here.
    let m = unsafe { Arc::from_raw(p) };
    crate::sync::retire(&m, || {
        registry::remove(&m);
    });
    drop(m);
    let slot = NEXT.fetch_add(1, SeqCst) % QUARANTINE;
    let old = RING[slot].swap(h, SeqCst);
    if !old.is_null() {
        // SAFETY: old is a retired handle box from an unmap 1024 unmaps ago.
        drop(unsafe { Box::from_raw(old) });
    }
    Ok(())
}

/// Forget: hand the memory back to the caller (writable, untracked), then retire the
/// handle as `unmap` does, without unmapping or syncing.
///
/// # Safety
/// As for `get`.
pub unsafe fn forget(h: *mut Handle) -> Result<()> {
    // SAFETY: per the contract.
    let m = unsafe { get(h, "dax_forget") }?;
    crate::track::disarm(m)?;
    m.owns_memory.store(false, SeqCst);
    // SAFETY: per the contract.
    unsafe { unmap(h) }
}

/// The live handle of the mapping containing `addr`, if any.
pub fn find(addr: usize) -> Option<*mut Handle> {
    let m = registry::find(addr)?;
    let h = m.handle.load(SeqCst);
    (!h.is_null()).then_some(h)
}

/// Unmap `[addr, addr+len)` (len rounded up to pages), whatever daxpmem mappings it
/// touches, like munmap: mappings wholly inside are released (their handles retired),
/// mappings partly inside are split and the parts outside stay registered under new
/// handles (with their dirty lines), then the range is unmapped. Dirty lines inside the
/// range are dropped, as by dax_unmap.
pub fn unmap_range(addr: usize, len: usize) -> Result<()> {
    if len == 0 || !addr.is_multiple_of(crate::sys::PAGE) {
        return Err(Error::inval(format!(
            "dax_unmap_range: {addr:#x}+{len}: the address must be page-aligned and the length non-zero"
        )));
    }
    let end = addr
        .checked_add(len)
        .map(crate::sys::page_up)
        .filter(|&e| e != 0)
        .ok_or_else(|| Error::inval("dax_unmap_range: the range wraps around"))?;
    let mut hit: Vec<Arc<Mapping>> = vec![];
    registry::scan(&mut |m| {
        if m.addr < end && addr < m.addr + m.len {
            let p = m as *const Mapping;
            // SAFETY: p is a live registered Arc<Mapping> (see registry::scan).
            unsafe {
                Arc::increment_strong_count(p);
                hit.push(Arc::from_raw(p));
            }
        }
        false
    });
    for m in hit {
        let _lock = m.sync_lock.lock();
        m.drain_log_to_index();
        let mut pieces = vec![];
        if m.addr < addr {
            pieces.push(m.piece(m.addr, addr - m.addr)?);
        }
        if end < m.addr + m.len {
            pieces.push(m.piece(end, m.addr + m.len - end)?);
        }
        // The pieces own their parts now; the old mapping owns nothing.
        m.owns_memory.store(false, SeqCst);
        for p in pieces {
            new(p)?;
        }
        let h = m.handle.load(SeqCst);
        drop(_lock);
        drop(m);
        // SAFETY: h is the live handle of a registered mapping.
        unsafe { unmap(h)? };
    }
    // SAFETY: like munmap(2): the caller gives up the range.
    unsafe { crate::sys::munmap(addr, end - addr) }
}
