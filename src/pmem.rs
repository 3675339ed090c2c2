//! The kernel's PMEM API in user space, checked: the Rust side of `wb_cache_pmem`,
//! `wmb_pmem`, `clear_pmem` and `memcpy_to_pmem`. The FFI layer only converts.

use crate::cpu;
use crate::error::{Error, Result};
use crate::flush;
use crate::nt;

/// Check a range: `len == 0` is always fine (and means "nothing"); otherwise the
/// pointer must be non-NULL and `addr + len` must not wrap.
#[inline]
pub fn check_range(what: &'static str, addr: usize, len: usize) -> Result<bool> {
    if len == 0 {
        return Ok(false);
    }
    if addr == 0 || addr.checked_add(len).is_none() {
        return Err(range_error(what, addr, len));
    }
    Ok(true)
}

/// The error of a bad range, built off the hot path.
#[cold]
#[inline(never)]
fn range_error(what: &'static str, addr: usize, _len: usize) -> Error {
    // Static text: these calls are async-signal-safe, also when they fail.
    if addr == 0 {
        Error::at(libc::EINVAL, what, "NULL address with a non-zero length")
    } else {
        Error::at(
            libc::EINVAL,
            what,
            "the range wraps around the address space",
        )
    }
}

/// Write back every line overlapping the range (unordered).
///
/// # Safety
/// The range must be mapped memory of the caller's (as for memset).
pub unsafe fn wb_cache_pmem(addr: *const u8, len: usize) -> Result<()> {
    if check_range("write back", addr as usize, len)? {
        // SAFETY: checked non-empty, non-wrapping; mapped per the caller.
        unsafe { flush::wb_range(addr as usize, len) };
    }
    Ok(())
}

/// Order earlier write-backs and non-temporal stores.
pub fn wmb_pmem() {
    flush::fence();
}

/// Write back the ranges that ordinary stores wrote.
///
/// # Safety
/// The ranges must be mapped memory of the caller's.
#[inline(always)]
pub unsafe fn wb_temporal(t: &nt::Temporal) {
    for (a, l) in t.iter() {
        // SAFETY: per the caller; each range is non-empty and was just written.
        unsafe { flush::wb_range(a, l) };
    }
}

/// Fill with `val` and write back (unordered until `wmb_pmem`).
///
/// # Safety
/// The range must be writable memory of the caller's.
pub unsafe fn memset_to_pmem(addr: *mut u8, val: u8, len: usize) -> Result<()> {
    if check_range("clear", addr as usize, len)? {
        let c = cpu::config();
        // SAFETY: checked, and writable per the caller.
        unsafe {
            let t = nt::fill(addr, val, len, c);
            wb_temporal(&t);
        }
    }
    Ok(())
}

/// Zero and write back (unordered until `wmb_pmem`).
///
/// # Safety
/// As for `memset_to_pmem`.
pub unsafe fn clear_pmem(addr: *mut u8, len: usize) -> Result<()> {
    // SAFETY: forwarded.
    unsafe { memset_to_pmem(addr, 0, len) }
}

/// Copy and write back (unordered until `wmb_pmem`). Overlapping ranges are moved
/// correctly (memmove semantics).
///
/// # Safety
/// `dst` writable and `src` readable for `len` bytes.
pub unsafe fn memcpy_to_pmem(dst: *mut u8, src: *const u8, len: usize) -> Result<()> {
    if check_range("memcpy (dst)", dst as usize, len)?
        && check_range("memcpy (src)", src as usize, len)?
    {
        let c = cpu::config();
        // SAFETY: checked; per the caller.
        unsafe {
            let t = nt::move_(dst, src, len, c);
            wb_temporal(&t);
        }
    }
    Ok(())
}

/// Flags of `daxpmem_memmove` / `daxpmem_memset`: the values of PMDK's `PMEM_F_MEM_*`.
pub(crate) const MEM_NODRAIN: u32 = 1 << 0;
pub(crate) const MEM_NONTEMPORAL: u32 = 1 << 1;
pub(crate) const MEM_TEMPORAL: u32 = 1 << 2;
pub(crate) const MEM_WC: u32 = 1 << 3;
pub(crate) const MEM_WB: u32 = 1 << 4;
pub(crate) const MEM_NOFLUSH: u32 = 1 << 5;
pub(crate) const MEM_VALID: u32 = (1 << 6) - 1;

/// The flags that change how a copy or fill is made, not only what follows it.
const MEM_HOW: u32 = MEM_NONTEMPORAL | MEM_TEMPORAL | MEM_WC | MEM_WB | MEM_NOFLUSH;

#[inline]
fn check_flags(what: &'static str, flags: u32) -> Result<()> {
    if flags & !MEM_VALID != 0 {
        return Err(flags_error(what, flags));
    }
    Ok(())
}

#[cold]
#[inline(never)]
fn flags_error(what: &'static str, _flags: u32) -> Error {
    Error::at(libc::EINVAL, what, "unknown flags")
}

/// The configuration a copy or fill with `flags` uses: one of the three decided at
/// load (`cpu::Decided`), no copy.
#[inline(always)]
fn mem_config(d: &cpu::Decided, flags: u32) -> &cpu::Config {
    if flags & MEM_HOW == 0 {
        &d.base
    } else if flags & MEM_NOFLUSH != 0 {
        &d.noflush
    } else if flags & (MEM_TEMPORAL | MEM_WB) != 0 {
        &d.temporal
    } else if flags & (MEM_NONTEMPORAL | MEM_WC) != 0 {
        &d.nontemporal
    } else {
        &d.base
    }
}

/// Finish a copy or fill: write back what ordinary stores wrote (unless NOFLUSH, or
/// eADR / PMEM_NO_FLUSH=1), then fence (unless NODRAIN or NOFLUSH).
///
/// # Safety
/// The ranges of `t` are mapped memory of the caller's.
#[inline(always)]
unsafe fn finish(t: &nt::Temporal, flags: u32, c: &cpu::Config) {
    if flags & MEM_NOFLUSH != 0 {
        return;
    }
    if !c.skip_writeback() {
        // SAFETY: per the caller.
        unsafe { wb_temporal(t) };
    }
    if flags & MEM_NODRAIN == 0 {
        flush::fence();
    }
}

/// libpmem's `pmem_memmove(dst, src, len, flags)`: copy (any overlap) and make durable
/// as the flags say.
///
/// # Safety
/// `dst` writable and `src` readable for `len` bytes.
#[inline(always)]
pub unsafe fn memmove_flags(dst: *mut u8, src: *const u8, len: usize, flags: u32) -> Result<()> {
    check_flags("memmove", flags)?;
    if !check_range("memmove (dst)", dst as usize, len)?
        || !check_range("memmove (src)", src as usize, len)?
        || std::ptr::eq(dst, src)
    {
        return Ok(());
    }
    let d = cpu::decided();
    // SAFETY: checked; per the caller.
    unsafe {
        let t = nt::move_(dst, src, len, mem_config(d, flags));
        finish(&t, flags, &d.base);
    }
    Ok(())
}

/// libpmem's `pmem_memset(dst, c, len, flags)`.
///
/// # Safety
/// `dst` writable for `len` bytes.
#[inline(always)]
pub unsafe fn memset_flags(dst: *mut u8, val: u8, len: usize, flags: u32) -> Result<()> {
    check_flags("memset", flags)?;
    if !check_range("memset", dst as usize, len)? {
        return Ok(());
    }
    let d = cpu::decided();
    // SAFETY: checked; per the caller.
    unsafe {
        let t = nt::fill(dst, val, len, mem_config(d, flags));
        finish(&t, flags, &d.base);
    }
    Ok(())
}

/// libpmem's `pmem_flush`: write back unless the caches are persistent (eADR) or
/// PMEM_NO_FLUSH=1 / DAXPMEM_NO_FLUSH=1 says not to.
///
/// # Safety
/// The range is mapped memory of the caller's.
pub unsafe fn flush_unless_eadr(addr: *const u8, len: usize) -> Result<()> {
    // SAFETY: forwarded.
    unsafe { flush_unless_eadr_as("flush", addr, len) }
}

/// libpmem's `pmem_persist`: `flush_unless_eadr`, then the fence (always, so that a
/// failed check still orders what came before, as the two separate calls would).
///
/// # Safety
/// The range is mapped memory of the caller's.
#[inline(always)]
pub unsafe fn persist(addr: *const u8, len: usize) -> Result<()> {
    // SAFETY: forwarded.
    let r = unsafe { flush_unless_eadr_as("persist", addr, len) };
    flush::fence();
    r
}

/// `flush_unless_eadr`, its errors named `what`.
///
/// # Safety
/// The range is mapped memory of the caller's.
#[inline(always)]
unsafe fn flush_unless_eadr_as(what: &'static str, addr: *const u8, len: usize) -> Result<()> {
    if check_range(what, addr as usize, len)? && !cpu::config().skip_writeback() {
        // SAFETY: checked non-empty, non-wrapping; mapped per the caller.
        unsafe { flush::wb_range(addr as usize, len) };
    }
    Ok(())
}
