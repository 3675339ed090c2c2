//! The C boundary, and nothing else: argument conversion and checks, errno, messages,
//! and a panic guard around every body. Every export is a plain `extern "C" fn`; the
//! header `include/daxpmem.h` is generated from this file by cbindgen, so the doc
//! comments here are the C documentation.
//!
//! It is built on the Rust API (api.rs) only: `MapOptions` and `DaxMap` to make
//! mappings, `MapHandle` (a C handle with DaxMap's operations, on addresses) for the
//! calls on one, and the hooks listed in `api::hooks` (the primitives on raw pointers,
//! registry lookups, `dax_unmap_range`, counters, `dax_chain_sigaction`), plus the
//! thread-local message of error.rs.
//!
//! The exports take raw pointers from C and are plain (not `unsafe`) `extern "C"`
//! functions: C cannot see Rust's `unsafe`, and each pointer's contract is stated in the
//! header. Every dereference sits in a small `unsafe` block after the checks.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

use crate::api::hooks as pmem;
use crate::api::{self, hooks, MapHandle, MapOptions, Track};
use crate::error::{self, Error, Result};
use libc::{c_char, c_int, c_uint, c_void, mode_t, off_t, size_t};
use std::ffi::CStr;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Run `f` as the C function `cname`; on error record it (errno + a message that begins
/// with `cname`: the core names the operation neutrally, as `op`, and error::set_last_c
/// puts `cname` in its place without allocating) and return `fail`; a panic is caught
/// and reported as EIO, never unwound into C.
fn guard<T>(cname: &'static str, op: &'static str, fail: T, f: impl FnOnce() -> Result<T>) -> T {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            error::set_last_c(cname, op, &e);
            fail
        }
        Err(p) => {
            let what = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            error::set_last_c(
                cname,
                op,
                &Error::new(
                    libc::EIO,
                    format!("daxpmem internal error (please report): {what}"),
                ),
            );
            fail
        }
    }
}

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

/// What `dax_map_t *` points to: never dereferenced.
pub enum Handle {}

/// An open mapping of a file or a device DAX (opaque).
#[allow(non_camel_case_types)]
pub type dax_map_t = Handle;

/// dax_map(): create the file if it is missing, and grow it to len if it is smaller
/// (never shrinks it).
pub const DAX_CREATE: c_uint = 1;
/// With DAX_CREATE: fail with EEXIST if the file exists.
pub const DAX_EXCL: c_uint = 2;
/// With DAX_CREATE: grow the file with ftruncate instead of allocating blocks up front.
pub const DAX_SPARSE: c_uint = 4;
/// Prefault the mapping (MAP_POPULATE).
pub const DAX_POPULATE: c_uint = 8;
/// Tracking: only marks made through the API (dax_mark_dirty, dax_memcpy, dax_memset)
/// count. The default (0).
pub const DAX_TRACK_EXPLICIT: c_uint = 0;
/// Tracking: keep the mapping read-only; the first store to a page after a sync faults
/// and is recorded (a SIGSEGV handler that passes other faults on; see
/// dax_chain_sigaction). Refused with EOPNOTSUPP on DAX, where it is not proven lossless,
/// unless DAXPMEM_ALLOW_MPROTECT_ON_DAX=1; DAX_TRACK_AUTO never picks it.
///
/// Limits of write-protection (inherent; use explicit marks, DAX_TRACK_KERNEL or
/// DAX_TRACK_UFFD where they matter): a kernel write into a tracked page not stored to
/// since the last sync fails with EFAULT (read(), recv(), pread(), pipe and AIO reads
/// into the mapping); a store from a thread that blocks SIGSEGV kills the process; the
/// program's own mprotect of a tracked page is overridden (a store makes it read-write,
/// a sync read-only again; PROT_NONE becomes PROT_READ after a sync); a SIGSEGV handler
/// installed with plain sigaction (not dax_chain_sigaction or the preload library)
/// replaces the library's. A program handler the library chains to runs with its
/// sa_mask but never with SIGSEGV or SIGBUS blocked (so one left by plain longjmp
/// does not break tracking); a SIGSEGV sent with kill/raise/sigqueue is never taken for
/// a tracking fault.
pub const DAX_TRACK_MPROTECT: c_uint = 0x100;
/// Tracking: userfaultfd write-protect (async) collected with PAGEMAP_SCAN (kernel >= 6.7,
/// works unprivileged); refused with EOPNOTSUPP on DAX and where the self-test fails.
pub const DAX_TRACK_UFFD: c_uint = 0x200;
/// Tracking: leave it to the kernel: dax_sync issues msync for its range (plus the
/// write-back of explicit marks).
pub const DAX_TRACK_KERNEL: c_uint = 0x300;
/// Tracking: the best mode proven correct for this mapping on this kernel: today the
/// kernel's msync (DAX_TRACK_KERNEL) everywhere (docs/tracking.md says why).
pub const DAX_TRACK_AUTO: c_uint = 0x400;

// The C values are the core's.
const _: () = assert!(
    DAX_CREATE == hooks::CREATE
        && DAX_EXCL == hooks::EXCL
        && DAX_SPARSE == hooks::SPARSE
        && DAX_POPULATE == hooks::POPULATE
);

/// The DAX_TRACK_* value of a mode (the core's bits; tests/api checks each).
fn track_flags(t: Track) -> c_uint {
    match t {
        Track::Explicit => DAX_TRACK_EXPLICIT,
        Track::Mprotect => DAX_TRACK_MPROTECT,
        Track::Uffd => DAX_TRACK_UFFD,
        Track::Kernel => DAX_TRACK_KERNEL,
        Track::Auto => DAX_TRACK_AUTO,
    }
}

/// dax_stats.flags: a user-space write-back makes this mapping durable.
pub const DAX_STAT_PMEM: u64 = 1;
/// dax_stats.flags: mapped with MAP_SYNC.
pub const DAX_STAT_MAP_SYNC: u64 = 2;
/// dax_stats.flags: a device DAX mapping.
pub const DAX_STAT_DEVDAX: u64 = 4;
/// dax_stats.flags: the file has the DAX attribute (statx STATX_ATTR_DAX).
pub const DAX_STAT_FILE_DAX: u64 = 8;
/// dax_stats.flags: the CPU caches are persistent (eADR): syncs skip the write-back and
/// only fence.
pub const DAX_STAT_EADR: u64 = 16;
/// dax_stats.flags: treated as pmem only because DAXPMEM_FORCE_PMEM=1 or
/// PMEM_IS_PMEM_FORCE=1.
pub const DAX_STAT_FORCED: u64 = 32;
/// dax_stats.huge_mapped_bytes for a page-cache mapping, or when the kernel cannot tell.
pub const DAX_HUGE_UNKNOWN: u64 = u64::MAX;

/// Statistics of one mapping. Versioned by size: set `size` to sizeof(struct dax_stats)
/// before the call; the library fills as many fields as both sides know and never
/// writes past `size`. Later versions only append fields.
#[repr(C)]
#[allow(non_camel_case_types)]
pub struct dax_stats {
    /// In: sizeof(struct dax_stats) as the caller was compiled. Out: the bytes filled.
    pub size: u32,
    /// The tracking mode in effect (DAX_TRACK_*, after DAX_TRACK_AUTO was resolved).
    pub track_mode: u32,
    /// Lines marked and not yet written back (a line marked more than once since the
    /// last sync may count more than once; exact when each was marked once).
    pub dirty_lines: u64,
    /// Total lines written back (pmem) or covered by msync (page cache) by dax_sync.
    pub lines_written_back: u64,
    /// dax_sync calls.
    pub syncs: u64,
    /// Real msync calls issued.
    pub msync_calls: u64,
    /// Write faults taken by automatic tracking.
    pub tracked_faults: u64,
    /// DAX_STAT_* bits.
    pub flags: u64,
    /// Bytes of the mapping the kernel currently maps with 2 MiB (PMD) entries, read
    /// from the page tables for a DAX mapping (DAX_STAT_MAP_SYNC, _DEVDAX or
    /// _FILE_DAX); DAX_HUGE_UNKNOWN for a page-cache mapping (not measured: that walk
    /// would cost ~0.6 ms per populated GiB; see /proc/self/smaps) or when the kernel
    /// cannot tell.
    pub huge_mapped_bytes: u64,
}

fn cstr<'a>(p: *const c_char, what: &str) -> Result<&'a CStr> {
    if p.is_null() {
        return Err(Error::inval(format!("{what}: NULL path")));
    }
    // SAFETY: non-NULL and, per the C contract, NUL-terminated.
    Ok(unsafe { CStr::from_ptr(p) })
}

/// Map the file at path, read-write and shared, and return a handle (NULL with errno on
/// error). len 0 maps the whole file (an error for an empty file or with DAX_CREATE).
/// Without DAX_CREATE the file must exist and be at least len bytes (EINVAL otherwise).
/// `mode` is used when the file is created. Also maps device DAX (/dev/daxN.M): len 0
/// or a multiple of the device alignment, at most the device size.
///
/// The mapping tries MAP_SHARED_VALIDATE|MAP_SYNC first (it works on a DAX filesystem)
/// and falls back to MAP_SHARED; it is placed at a 2 MiB-aligned address (1 GiB for 2
/// GiB and more) so the kernel can map huge pages, where libpmem's pmem_map_file would
/// place it (a reservation of len + the alignment; what is left free after the mapping
/// is what libpmem leaves). Flags: DAX_CREATE, DAX_EXCL, DAX_SPARSE, DAX_POPULATE, and
/// one DAX_TRACK_* mode.
///
/// File descriptors: the file is closed before dax_map returns; no mapping keeps a
/// descriptor of its file (dax_punch_hole works through the memory), and splitting a
/// mapping (dax_unmap_range) opens none, so it cannot fail for want of descriptors.
/// The one exception is DAX_TRACK_UFFD (and DAX_TRACK_AUTO when it picks it): such a
/// mapping holds its userfaultfd and a /proc/self/pagemap descriptor (two, close-on-exec)
/// until it is unmapped; the pieces of a split share them.
///
/// Errors: EINVAL (NULL path, unknown flags, DAX_EXCL/DAX_SPARSE without DAX_CREATE,
/// len 0 with DAX_CREATE or an empty file, len beyond the end of the file, not a regular
/// file or device DAX), EEXIST (DAX_EXCL and the file exists), ENOENT (missing without
/// DAX_CREATE), EISDIR, EACCES, ENOSPC, EOPNOTSUPP (a tracking mode unavailable here),
/// ENOMEM.
#[no_mangle]
pub extern "C" fn dax_map(
    path: *const c_char,
    len: size_t,
    flags: c_uint,
    mode: mode_t,
) -> *mut dax_map_t {
    guard("dax_map", "map", std::ptr::null_mut(), || {
        let p = cstr(path, "dax_map")?;
        Ok(MapOptions::from_c(flags, len, mode)
            .open_cstr(p)?
            .into_handle()
            .cast())
    })
}

/// Map len bytes of the open file or device DAX `fd` from `offset` (a multiple of the
/// page size); len 0 maps to the end of the file. The fd must be open read-write; the
/// mapping keeps no descriptor (not even a duplicate: as dax_map), so the caller may
/// close its own as soon as this returns. Flags:
/// DAX_POPULATE and one DAX_TRACK_* mode (EINVAL for DAX_CREATE/EXCL/SPARSE).
/// Errors as dax_map(): EINVAL when offset + len lies beyond the end of the file (or
/// the device), for a character device that is not device DAX (/dev/zero), for anything
/// that is not a regular file or device DAX (a socket, a FIFO), for a device-DAX length
/// that is not a multiple of its alignment; and EBADF for a bad fd, EACCES for an fd not
/// open read-write.
#[no_mangle]
pub extern "C" fn dax_map_fd(
    fd: c_int,
    offset: off_t,
    len: size_t,
    flags: c_uint,
) -> *mut dax_map_t {
    guard("dax_map_fd", "map fd", std::ptr::null_mut(), || {
        let o = MapOptions::from_c(flags, len, 0);
        o.check_fd_flags()?;
        if offset < 0 {
            return Err(Error::inval(format!(
                "dax_map_fd: negative offset {offset}"
            )));
        }
        let fd = hooks::check_fd(fd, "map fd")?;
        Ok(o.map_checked_fd(fd, offset as u64)?.into_handle().cast())
    })
}

/// Unmap and release a mapping. Does not sync: dirty data not yet synced is left to the
/// kernel's own write-back (page cache) or the CPU caches (pmem), as after munmap.
/// If another thread is still inside a call on this mapping, the memory is unmapped when
/// that call returns (the address range stays reserved until then; after one of the
/// async-signal-safe calls, at the next daxpmem call that is not one).
/// Returns 0, or -1 with errno EINVAL (NULL), EBADF (not a live handle: unmapped already,
/// however long ago, or never returned by dax_map; nothing is touched through it), or
/// EDEADLK (called from a signal handler that interrupted a dax_sync of this mapping on
/// the same thread).
#[no_mangle]
pub extern "C" fn dax_unmap(m: *mut dax_map_t) -> c_int {
    guard("dax_unmap", "unmap", -1, || {
        MapHandle::of(m.cast()).unmap().map(|_| 0)
    })
}

/// The mapping's address (NULL with errno EINVAL/EBADF for a bad handle).
#[no_mangle]
pub extern "C" fn dax_addr(m: *const dax_map_t) -> *mut c_void {
    guard("dax_addr", "addr", std::ptr::null_mut(), || {
        Ok(MapHandle::of(m.cast()).addr_as("addr")? as *mut c_void)
    })
}

/// The mapping's length in bytes (0 with errno EINVAL/EBADF for a bad handle).
#[no_mangle]
pub extern "C" fn dax_len(m: *const dax_map_t) -> size_t {
    guard("dax_len", "len", 0, || {
        MapHandle::of(m.cast()).len_as("len")
    })
}

/// 1 if a user-space write-back makes this mapping's data durable (MAP_SYNC on a DAX
/// filesystem, device DAX, or forced by DAXPMEM_FORCE_PMEM=1 / PMEM_IS_PMEM_FORCE=1),
/// 0 if durability needs msync, -1 with errno for a bad handle.
#[no_mangle]
pub extern "C" fn dax_is_pmem(m: *const dax_map_t) -> c_int {
    guard("dax_is_pmem", "is pmem", -1, || {
        Ok(MapHandle::of(m.cast()).is_pmem_as("is pmem")? as c_int)
    })
}

/// Record that [addr, addr+len) was written: the next dax_sync covering it writes those
/// lines back. Lock-free; any thread. len 0 does nothing. Returns 0, or -1 with errno
/// EINVAL (NULL handle, NULL addr with len > 0, range not inside the mapping) or EBADF
/// (not a live handle, or unmapped or split by another thread during the call: mark
/// through the handle of the part, from dax_find()).
#[no_mangle]
pub extern "C" fn dax_mark_dirty(m: *mut dax_map_t, addr: *const c_void, len: size_t) -> c_int {
    guard("dax_mark_dirty", "mark", -1, || {
        MapHandle::of(m.cast()).mark_as("mark", addr as usize, len)?;
        Ok(0)
    })
}

/// Make [addr, addr+len) durable: every line marked (or tracked) there before the call
/// is written back and fenced (pmem: no system call), or covered by one msync(MS_SYNC)
/// over the span of the dirty pages (page cache; none when nothing is dirty).
/// (NULL, 0) syncs the whole mapping; a non-NULL addr with len 0 does nothing.
/// Returns 0, or -1 with errno: EINVAL (bad handle, range not inside the mapping), or
/// msync's error (ENOSPC, EIO, ...). A failed write-back is sticky: the kernel may have
/// marked the pages clean although their data is not on disk, so a retry that succeeded
/// would prove nothing; every later dax_sync of the mapping (any range) returns -1 with
/// EIO, saying why in dax_errormsg(), until it is unmapped. The same holds when the file
/// was shrunk under a pmem mapping with dirty lines past the new end: every line still
/// backed by the file is written back, the pages past the end are lost (replaced by
/// zero pages, never a SIGBUS that kills the process), and the call returns -1 with EIO.
/// On the page cache a sync of a truncated range is one msync, which succeeds.
#[no_mangle]
pub extern "C" fn dax_sync(m: *mut dax_map_t, addr: *const c_void, len: size_t) -> c_int {
    guard("dax_sync", "sync", -1, || {
        let h = MapHandle::of(m.cast());
        let range = if addr.is_null() && len == 0 {
            None
        } else if len == 0 {
            // The handle is checked all the same.
            return h.len_as("sync").map(|_| 0);
        } else {
            Some((addr as usize, len))
        };
        h.sync_as("sync", range).map(|_| 0)
    })
}

/// Punch a hole: [addr, addr+len) reads as zeros afterwards and the blocks of its whole
/// pages are freed (madvise MADV_REMOVE, the kernel's fallocate PUNCH_HOLE|KEEP_SIZE on
/// the mapped file: no descriptor needed); the parts of pages at the edges are zeroed
/// through the mapping. Dirty lines inside are dropped; the edges are synced; then an
/// msync(MS_SYNC) of the range commits the file's metadata as fdatasync would, so the
/// hole and the data around it are durable on return. len 0 does nothing. Returns 0, or
/// -1 with errno: EINVAL (bad handle or range; also a range locked with mlock, which
/// MADV_REMOVE refuses), EOPNOTSUPP (device DAX, or a filesystem without hole
/// punching), or the error of madvise/msync.
#[no_mangle]
pub extern "C" fn dax_punch_hole(m: *mut dax_map_t, addr: *const c_void, len: size_t) -> c_int {
    guard("dax_punch_hole", "punch hole", -1, || {
        let h = MapHandle::of(m.cast());
        if len == 0 {
            return h.len_as("punch hole").map(|_| 0);
        }
        h.punch_hole_as("punch hole", addr as usize, len).map(|_| 0)
    })
}

/// Copy len bytes from src into the mapping at dst and mark them for the next dax_sync
/// (on pmem the body is written with non-temporal stores and needs only the sync's
/// fence). Overlap is handled as by memmove. len 0 does nothing. Returns 0, or -1 with
/// errno EINVAL (bad handle, NULL pointer, dst range not inside the mapping), or EIO
/// when part of dst lies past the end of a file shrunk under the mapping (what was
/// written there is lost; the rest is copied; every later dax_sync fails, as there).
#[no_mangle]
pub extern "C" fn dax_memcpy(
    m: *mut dax_map_t,
    dst: *mut c_void,
    src: *const c_void,
    len: size_t,
) -> c_int {
    guard("dax_memcpy", "memcpy", -1, || {
        let h = MapHandle::of(m.cast());
        if len == 0 {
            return h.len_as("memcpy").map(|_| 0);
        }
        // SAFETY: src is readable for len bytes per the C contract (NULL and
        // wrap-around are checked by the call, after the handle, as "memcpy (src)");
        // the destination is checked by the call.
        unsafe { h.copy_as("memcpy", "memcpy (src)", dst as usize, src.cast(), len) }.map(|_| 0)
    })
}

/// Fill len bytes of the mapping at dst with (unsigned char)c and mark them, as
/// dax_memcpy(). Returns 0, or -1 with errno EINVAL or EIO (as dax_memcpy()).
#[no_mangle]
pub extern "C" fn dax_memset(m: *mut dax_map_t, dst: *mut c_void, c: c_int, len: size_t) -> c_int {
    guard("dax_memset", "memset", -1, || {
        let h = MapHandle::of(m.cast());
        if len == 0 {
            return h.len_as("memset").map(|_| 0);
        }
        h.fill_as("memset", dst as usize, c as u8, len).map(|_| 0)
    })
}

/// Fill *out (whose `size` field the caller sets to sizeof(struct dax_stats)). Cheap
/// (no lock, a few loads per field; a page-table walk for huge_mapped_bytes of a DAX
/// mapping only) and without effect on what the next dax_sync costs.
/// Returns 0, or -1 with errno EINVAL (bad handle, NULL out, size smaller than the
/// first version of the struct).
#[no_mangle]
pub extern "C" fn dax_get_stats(m: *const dax_map_t, out: *mut dax_stats) -> c_int {
    guard("dax_get_stats", "stats", -1, || {
        // The handle first (EBADF before a NULL out, as before).
        let st = MapHandle::of(m.cast()).stats_as("stats")?;
        if out.is_null() {
            return Err(Error::inval("dax_get_stats: NULL out"));
        }
        // SAFETY: out is non-NULL and, per the contract, points to at least `size` bytes;
        // the size field is the first 4 bytes.
        let want = unsafe { std::ptr::addr_of!((*out).size).read_unaligned() } as usize;
        let full = std::mem::size_of::<dax_stats>();
        if want < full {
            return Err(Error::inval(format!(
                "dax_get_stats: out->size is {want}; set it to sizeof(struct dax_stats) ({full})"
            )));
        }
        let mut flags = 0;
        for (on, bit) in [
            (st.pmem, DAX_STAT_PMEM),
            (st.map_sync, DAX_STAT_MAP_SYNC),
            (st.devdax, DAX_STAT_DEVDAX),
            (st.file_dax, DAX_STAT_FILE_DAX),
            (st.eadr, DAX_STAT_EADR),
            (st.forced, DAX_STAT_FORCED),
        ] {
            if on {
                flags |= bit;
            }
        }
        let s = dax_stats {
            size: full as u32,
            track_mode: track_flags(st.track_mode),
            dirty_lines: st.dirty_lines,
            lines_written_back: st.lines_written_back,
            syncs: st.syncs,
            msync_calls: st.msync_calls,
            tracked_faults: st.tracked_faults,
            flags,
            huge_mapped_bytes: st.huge_mapped_bytes.unwrap_or(DAX_HUGE_UNKNOWN),
        };
        // SAFETY: out has room for the full struct (checked above).
        unsafe { out.write(s) };
        Ok(0)
    })
}

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

/// Unmap [addr, addr+len) like munmap(2) (len rounded up to pages), keeping the
/// registry true: daxpmem mappings wholly inside are released and their handles retired;
/// mappings partly inside are split, and the parts outside stay mapped and registered
/// under new handles (find them with dax_find), with their dirty lines. Dirty lines
/// inside the range are dropped. Returns 0, or -1 with errno EINVAL (unaligned addr, len
/// 0, wrapping range) or munmap's error.
#[no_mangle]
pub extern "C" fn dax_unmap_range(addr: *mut c_void, len: size_t) -> c_int {
    guard("dax_unmap_range", "unmap range", -1, || {
        hooks::unmap_range(addr as usize, len).map(|_| 0)
    })
}

/// 1 if path names a device DAX character device (/dev/daxN.M), 0 if it names anything
/// else, -1 with errno if it cannot be inspected (stat's errno; EINVAL for NULL).
#[no_mangle]
pub extern "C" fn dax_is_devdax(path: *const c_char) -> c_int {
    guard("dax_is_devdax", "is devdax", -1, || {
        let p = cstr(path, "dax_is_devdax")?;
        // SAFETY: an all-zero stat is a valid out-buffer.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: p is NUL-terminated; st is a valid out-pointer.
        if unsafe { libc::stat(p.as_ptr(), &mut st) } != 0 {
            return Err(Error::last_os(format!(
                "dax_is_devdax: stat {}",
                p.to_string_lossy()
            )));
        }
        Ok(
            (st.st_mode & libc::S_IFMT == libc::S_IFCHR && hooks::devdax_geometry(&st).is_some())
                as c_int,
        )
    })
}

/// Set this thread's dax_errormsg() text (truncated to 1023 bytes) without touching
/// errno: for libraries layered on daxpmem (the libpmem compatibility library) that
/// report their own errors through it. NULL sets the empty message.
#[no_mangle]
pub extern "C" fn dax_set_errormsg(msg: *const c_char) {
    let saved = error::errno();
    guard("dax_set_errormsg", "", (), || {
        let text = if msg.is_null() {
            String::new()
        } else {
            // SAFETY: non-NULL and, per the C contract, NUL-terminated.
            unsafe { CStr::from_ptr(msg) }
                .to_string_lossy()
                .into_owned()
        };
        error::set_message(&text);
        Ok(())
    });
    error::set_errno(saved);
}

/// dax_adopt(): the range was mapped with MAP_SHARED_VALIDATE|MAP_SYNC.
pub const DAX_ADOPT_MAP_SYNC: c_uint = 0x10000;

/// Adopt a shared, writable mapping the caller made with mmap(2): [addr, addr+len)
/// maps `fd` at `offset`. Afterwards it is a daxpmem mapping like one from dax_map():
/// dax_find() finds it, dax_sync() syncs it (user-space write-back if it is pmem, else
/// msync), and dax_unmap() unmaps it. Pass DAX_ADOPT_MAP_SYNC if it was mapped with
/// MAP_SYNC (the library cannot tell), plus one DAX_TRACK_* mode. The library only
/// looks at fd (keeps no duplicate): the caller may close it. The range is checked against what the kernel maps there
/// (/proc/self/maps): every page of it must be mapped shared, readable and writable,
/// from that very file (device and inode of fd) at the file offset matching `offset`.
/// Returns a handle, or NULL with errno EINVAL (unaligned or NULL addr, len 0,
/// unaligned offset, unknown flags, not a regular file or device DAX, a range that is
/// not such a mapping: private or anonymous memory, a stack, a read-only or private
/// mapping, another file or offset, a length past the mapping), EBADF, EACCES (fd not
/// open read-write), EEXIST (the range overlaps a daxpmem mapping). Device DAX: only
/// shared, read-write and no gap are checked.
#[no_mangle]
pub extern "C" fn dax_adopt(
    addr: *mut c_void,
    len: size_t,
    fd: c_int,
    offset: off_t,
    flags: c_uint,
) -> *mut dax_map_t {
    guard("dax_adopt", "adopt", std::ptr::null_mut(), || {
        if offset < 0 {
            return Err(Error::inval(format!("dax_adopt: negative offset {offset}")));
        }
        let sync = flags & DAX_ADOPT_MAP_SYNC != 0;
        api::adopt(
            addr as usize,
            len,
            fd,
            offset as u64,
            flags & !DAX_ADOPT_MAP_SYNC,
            sync,
        )
        .map(|m| m.into_handle().cast())
    })
}

/// Drop a mapping from daxpmem without unmapping it: the handle is retired, the dirty
/// index discarded (sync first if it matters), and the memory stays mapped and becomes
/// the caller's again (writable and no longer tracked, also after DAX_TRACK_MPROTECT). Returns 0, or -1 with errno EINVAL/EBADF as dax_unmap().
#[no_mangle]
pub extern "C" fn dax_forget(m: *mut dax_map_t) -> c_int {
    guard("dax_forget", "forget", -1, || {
        MapHandle::of(m.cast()).forget().map(|_| 0)
    })
}

/// daxpmem_counter(): msync calls seen by the preload library.
pub const DAXPMEM_COUNTER_MSYNC_SEEN: c_uint = 0;
/// daxpmem_counter(): msync calls the preload library handled in user space.
pub const DAXPMEM_COUNTER_MSYNC_USER: c_uint = 1;
/// daxpmem_counter(): msync calls the preload library passed to the kernel.
pub const DAXPMEM_COUNTER_MSYNC_KERNEL: c_uint = 2;
/// daxpmem_counter(): lines written back by every dax_sync in the process (kept by the
/// core, per mapping, and summed when read; adding to it is refused).
pub const DAXPMEM_COUNTER_LINES_WRITTEN_BACK: c_uint = 3;
// The counters are the core's ids (sync.rs): the constants are for the header.
const _: [c_uint; 4] = [
    DAXPMEM_COUNTER_MSYNC_SEEN,
    DAXPMEM_COUNTER_MSYNC_USER,
    DAXPMEM_COUNTER_MSYNC_KERNEL,
    DAXPMEM_COUNTER_LINES_WRITTEN_BACK,
];

/// Process-wide counters kept by the core for the libraries layered on it (they hold no
/// state of their own): adds n to counter `id` and returns the new value (n = 0 reads
/// it). Returns UINT64_MAX with errno EINVAL for an unknown id or an add to a counter the
/// core keeps itself. Lock-free and async-signal-safe. Reading
/// DAXPMEM_COUNTER_LINES_WRITTEN_BACK sums the mappings' counts: exact, unless unmaps keep
/// overlapping the read (then it may miss the lines of a mapping being unmapped).
#[no_mangle]
pub extern "C" fn daxpmem_counter(id: c_uint, n: u64) -> u64 {
    guard("daxpmem_counter", "counter", u64::MAX, || {
        hooks::counter(id, n)
    })
}

/// Install a signal action through daxpmem when its handler is in place: for SIGSEGV
/// once a DAX_TRACK_MPROTECT mapping was made, and for SIGBUS once any mapping was made
/// (the library's SIGBUS handler turns a page lost under dax_sync/dax_memcpy/dax_memset
/// to a file shrunk under the mapping into EIO), the library's handler stays first and
/// passes every signal it does not own to `act` (stored, not installed), and *oldact
/// gets the action it passed them to before. Returns 0 when handled that way, 1 when
/// daxpmem has no handler for `sig` (then call the real sigaction yourself), -1 with
/// errno on error. For programs that install SIGSEGV or SIGBUS handlers after mapping,
/// and for the LD_PRELOAD library's sigaction/signal. The chained action runs with the
/// mask the kernel would give it (the interrupted mask and its sa_mask) except that
/// SIGSEGV and SIGBUS are never blocked; to SIG_DFL a fault is passed by restoring the
/// default (the access faults again), a signal sent by kill/raise/sigqueue by
/// restoring the default and sending it again.
#[no_mangle]
pub extern "C" fn dax_chain_sigaction(
    sig: c_int,
    act: *const libc::sigaction,
    oldact: *mut libc::sigaction,
) -> c_int {
    guard("dax_chain_sigaction", "chain sigaction", -1, || {
        // SAFETY: per the C contract act is NULL or valid and oldact NULL or writable.
        unsafe { hooks::chain_sigaction(sig, act, oldact) }.map(
            |handled| {
                if handled {
                    0
                } else {
                    1
                }
            },
        )
    })
}

/// The daxpmem mapping that contains addr, or else the first one that overlaps
/// [addr, addr+len), or NULL. Unlike dax_find() it sets neither errno nor the message,
/// and never allocates: for hot paths such as the preload library's hooks.
#[no_mangle]
pub extern "C" fn dax_lookup(addr: *const c_void, len: size_t) -> *mut dax_map_t {
    let a = addr as usize;
    let end = a.saturating_add(len.max(1));
    let r = std::panic::catch_unwind(|| {
        hooks::lookup(a, end).map_or(std::ptr::null_mut(), |h| h.cast())
    });
    r.unwrap_or(std::ptr::null_mut())
}

/// The tracking mode in effect for the mapping (a DAX_TRACK_* value, DAX_TRACK_AUTO
/// already resolved), or -1 with errno for a bad handle. Cheap (dax_get_stats reads
/// the page tables).
#[no_mangle]
pub extern "C" fn dax_track_mode(m: *const dax_map_t) -> c_int {
    guard("dax_track_mode", "track mode", -1, || {
        Ok(track_flags(MapHandle::of(m.cast()).track_as("track mode")?) as c_int)
    })
}
