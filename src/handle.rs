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
    registry::remove(&m);
    drop(m);
    let slot = NEXT.fetch_add(1, SeqCst) % QUARANTINE;
    let old = RING[slot].swap(h, SeqCst);
    if !old.is_null() {
        // SAFETY: old is a retired handle box from an unmap 1024 unmaps ago.
        drop(unsafe { Box::from_raw(old) });
    }
    Ok(())
}

/// The live handle of the mapping containing `addr`, if any.
pub fn find(addr: usize) -> Option<*mut Handle> {
    let m = registry::find(addr)?;
    let h = m.handle.load(SeqCst);
    (!h.is_null()).then_some(h)
}
