//! The PMEM primitives on plain memory (wb_cache_pmem, wmb_pmem, clear_pmem,
//! memcpy_to_pmem) and what the library chose at load (instruction, copy path, line,
//! version).

use super::*;

/// Write back every cache line overlapping [addr, addr+len) from the CPU caches
/// (CLWB, CLFLUSHOPT or CLFLUSH, chosen once at load). Unordered: call wmb_pmem()
/// before relying on durability.
///
/// len == 0 does nothing, whatever addr is. A NULL addr with len > 0, or a range whose
/// end wraps around the address space, does nothing and sets errno to EINVAL with a
/// message for dax_errormsg(); no memory outside the range is ever touched.
#[no_mangle]
pub extern "C" fn wb_cache_pmem(addr: *const c_void, len: size_t) {
    // SAFETY: the caller promises the range is mapped (as for memset); the core checks
    // NULL and wrap-around before touching it.
    guard("wb_cache_pmem", "write back", (), || unsafe {
        pmem::wb_cache_pmem(addr.cast(), len)
    })
}

/// Order every earlier write-back and non-temporal store (SFENCE). One call covers any
/// number of wb_cache_pmem(), clear_pmem() and memcpy_to_pmem() calls before it.
#[no_mangle]
pub extern "C" fn wmb_pmem() {
    guard("wmb_pmem", "", (), || {
        pmem::wmb_pmem();
        Ok(())
    })
}

/// Zero [addr, addr+len) and write it back: non-temporal stores for the 64-byte-aligned
/// body when len >= the threshold (DAXPMEM_MOVNT_THRESHOLD, default 256), ordinary
/// stores plus write-back for the unaligned head and tail and for short ranges.
/// Unordered until wmb_pmem().
///
/// len == 0 does nothing. NULL with len > 0, or a wrapping range, does nothing and sets
/// errno to EINVAL.
#[no_mangle]
pub extern "C" fn clear_pmem(addr: *mut c_void, len: size_t) {
    // SAFETY: the caller promises the range is writable; the core checks NULL and wrap.
    guard("clear_pmem", "clear", (), || unsafe {
        pmem::clear_pmem(addr.cast(), len)
    })
}

/// Copy len bytes from src to dst and write dst back (non-temporal stores above the
/// threshold, as clear_pmem()). Overlapping ranges are handled as by memmove.
/// Unordered until wmb_pmem(). Returns dst.
///
/// len == 0 returns dst and does nothing. A NULL dst or src with len > 0, or a range
/// that wraps, copies nothing, returns NULL and sets errno to EINVAL.
#[no_mangle]
pub extern "C" fn memcpy_to_pmem(dst: *mut c_void, src: *const c_void, len: size_t) -> *mut c_void {
    guard("memcpy_to_pmem", "memcpy", std::ptr::null_mut(), || {
        // SAFETY: the caller promises dst is writable and src readable for len bytes;
        // the core checks NULL and wrap-around first.
        unsafe { pmem::memcpy_to_pmem(dst.cast(), src.cast(), len)? };
        Ok(dst)
    })
}

/// The write-back instruction in use: "clwb", "clflushopt" or "clflush". Chosen once
/// from CPUID; DAXPMEM_NO_CLWB=1 / DAXPMEM_NO_CLFLUSHOPT=1 (or PMDK's PMEM_NO_CLWB,
/// PMEM_NO_CLFLUSHOPT) veto the first two. A static string.
#[no_mangle]
pub extern "C" fn daxpmem_flush_name() -> *const c_char {
    guard("daxpmem_flush_name", "", c"clflush".as_ptr(), || {
        Ok(hooks::c_names().0.as_ptr().cast())
    })
}

/// The non-temporal store path of clear_pmem() and memcpy_to_pmem(): "avx512f", "avx2",
/// "sse2", or "none" when non-temporal stores are off (DAXPMEM_NO_MOVNT=1). A static
/// string.
#[no_mangle]
pub extern "C" fn daxpmem_nt_name() -> *const c_char {
    guard("daxpmem_nt_name", "", c"none".as_ptr(), || {
        Ok(hooks::c_names().1.as_ptr().cast())
    })
}

/// The write-back stride in bytes: the CLFLUSH line size from CPUID leaf 1
/// (EBX[15:8] * 8), 64 on every current x86-64 CPU.
#[no_mangle]
pub extern "C" fn daxpmem_cache_line_size() -> size_t {
    guard("daxpmem_cache_line_size", "", 64, || Ok(hooks::line()))
}

/// The library version, e.g. "0.1.0". A static string.
#[no_mangle]
pub extern "C" fn daxpmem_version() -> *const c_char {
    guard("daxpmem_version", "", c"".as_ptr(), || {
        Ok(VERSION_C.as_ptr())
    })
}

static VERSION_C: &std::ffi::CStr = match std::ffi::CStr::from_bytes_with_nul(
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes(),
) {
    Ok(c) => c,
    Err(_) => c"",
};

// ---------------------------------------------------------------------------------
// Mappings
