//! The last error's message, and finding a mapping by address.

use super::map::*;
use super::*;

/// The thread-local message of this thread's last failed daxpmem call ("" if none).
/// Valid until this thread's next failing call.
#[no_mangle]
pub extern "C" fn dax_errormsg() -> *const c_char {
    guard("dax_errormsg", "", c"".as_ptr(), || Ok(error::last_ptr()))
}

/// The mapping containing addr, or NULL with errno ENOENT.
#[no_mangle]
pub extern "C" fn dax_find(addr: *const c_void) -> *mut dax_map_t {
    guard("dax_find", "find", std::ptr::null_mut(), || {
        hooks::find(addr as usize).map(|h| h.cast()).ok_or_else(|| {
            Error::new(
                libc::ENOENT,
                format!("dax_find: {addr:?} is in no daxpmem mapping"),
            )
        })
    })
}

/// 1 if all of [addr, addr+len) lies in daxpmem mappings that are pmem (see
/// dax_is_pmem), else 0; len 0 gives 0. PMEM_IS_PMEM_FORCE=1 / DAXPMEM_FORCE_PMEM=1
/// make it 1 and PMEM_IS_PMEM_FORCE=0 makes it 0 for every non-empty range; as in
/// libpmem, PMEM_IS_PMEM_FORCE is read (with atoi) at the first call, not at load.
#[no_mangle]
pub extern "C" fn dax_range_is_pmem(addr: *const c_void, len: size_t) -> c_int {
    guard("dax_range_is_pmem", "", 0, || {
        if len == 0 {
            return Ok(0);
        }
        match hooks::is_pmem_force() {
            Some(true) => return Ok(1),
            Some(false) => return Ok(0),
            None => {}
        }
        Ok(hooks::covered_by_pmem(addr as usize, len) as c_int)
    })
}

// ---------------------------------------------------------------------------------
// libpmem-style calls (used by the libpmem compatibility library, usable directly)
