//! daxpmem's libpmem-style calls: flush, persist, memmove and memset with flags.

use super::*;

/// Flags of daxpmem_memmove() / daxpmem_memset(): skip the final fence.
pub const DAXPMEM_MEM_NODRAIN: c_uint = 1;
/// Use non-temporal stores whatever the length.
pub const DAXPMEM_MEM_NONTEMPORAL: c_uint = 2;
/// Use ordinary stores and write back.
pub const DAXPMEM_MEM_TEMPORAL: c_uint = 4;
/// As DAXPMEM_MEM_NONTEMPORAL.
pub const DAXPMEM_MEM_WC: c_uint = 8;
/// As DAXPMEM_MEM_TEMPORAL.
pub const DAXPMEM_MEM_WB: c_uint = 16;
/// Ordinary stores, no write-back, no fence.
pub const DAXPMEM_MEM_NOFLUSH: c_uint = 32;

const _: () = assert!(
    DAXPMEM_MEM_NODRAIN == pmem::MEM_NODRAIN
        && DAXPMEM_MEM_NONTEMPORAL == pmem::MEM_NONTEMPORAL
        && DAXPMEM_MEM_TEMPORAL == pmem::MEM_TEMPORAL
        && DAXPMEM_MEM_WC == pmem::MEM_WC
        && DAXPMEM_MEM_WB == pmem::MEM_WB
        && DAXPMEM_MEM_NOFLUSH == pmem::MEM_NOFLUSH
);

/// Write back [addr, addr+len) unless the CPU caches are persistent (eADR) or
/// DAXPMEM_NO_FLUSH=1 / PMEM_NO_FLUSH=1 (=0 forces the write-back): libpmem's
/// pmem_flush(). wb_cache_pmem() always writes back. Errors as wb_cache_pmem().
#[no_mangle]
pub extern "C" fn daxpmem_flush(addr: *const c_void, len: size_t) {
    // SAFETY: the caller promises the range is mapped; the core checks NULL and wrap.
    guard("daxpmem_flush", "flush", (), || unsafe {
        pmem::flush_unless_eadr(addr.cast(), len)
    })
}

/// daxpmem_flush() then wmb_pmem() in one call: libpmem's pmem_persist(). The fence is
/// issued in every case (len 0 and errors included). Errors as wb_cache_pmem().
#[no_mangle]
pub extern "C" fn daxpmem_persist(addr: *const c_void, len: size_t) {
    // SAFETY: the caller promises the range is mapped; the core checks NULL and wrap.
    guard("daxpmem_persist", "persist", (), || unsafe {
        pmem::persist(addr.cast(), len)
    })
}

/// 1 if every NVDIMM region's persistence domain is the CPU cache (eADR), 0 if not or
/// if there is no NVDIMM bus, -1 if sysfs could not be read: libpmem's
/// pmem_has_auto_flush().
#[no_mangle]
pub extern "C" fn daxpmem_has_auto_flush() -> c_int {
    guard("daxpmem_has_auto_flush", "", -1, || {
        Ok(
            match hooks::auto_flush_in(std::path::Path::new("/sys/bus/nd/devices")) {
                Some(true) => 1,
                Some(false) => 0,
                None => -1,
            },
        )
    })
}

/// Copy len bytes (any overlap) and make them durable as the DAXPMEM_MEM_* flags say:
/// by default ordinary stores below the threshold and non-temporal stores above it,
/// write-back of what ordinary stores wrote, then a fence. Returns dst (also for len 0
/// or dst == src, which do nothing); NULL with errno EINVAL for unknown flags or a
/// NULL/wrapping range.
#[no_mangle]
pub extern "C" fn daxpmem_memmove(
    dst: *mut c_void,
    src: *const c_void,
    len: size_t,
    flags: c_uint,
) -> *mut c_void {
    guard("daxpmem_memmove", "memmove", std::ptr::null_mut(), || {
        // SAFETY: per the C contract dst is writable and src readable for len bytes;
        // the core checks flags, NULL and wrap first.
        unsafe { pmem::memmove_flags(dst.cast(), src.cast(), len, flags)? };
        Ok(dst)
    })
}

/// Fill len bytes with (unsigned char)c and make them durable as daxpmem_memmove().
/// Returns dst; NULL with errno EINVAL for unknown flags or a NULL/wrapping range.
#[no_mangle]
pub extern "C" fn daxpmem_memset(
    dst: *mut c_void,
    c: c_int,
    len: size_t,
    flags: c_uint,
) -> *mut c_void {
    guard("daxpmem_memset", "memset", std::ptr::null_mut(), || {
        // SAFETY: per the C contract dst is writable for len bytes; checked by the core.
        unsafe { pmem::memset_flags(dst.cast(), c as u8, len, flags)? };
        Ok(dst)
    })
}
