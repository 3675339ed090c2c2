//! Mappings: the handle type and flags, dax_map / dax_map_fd / dax_unmap, the calls on
//! one mapping (address, length, marks, syncs, holes, copies) and its statistics.

use super::*;

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
pub(super) fn track_flags(t: Track) -> c_uint {
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

pub(super) fn cstr<'a>(p: *const c_char, what: &str) -> Result<&'a CStr> {
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
    // The common case first, with no frame and no call (it cannot panic): a mark through
    // this thread's ring. Anything else (and every error) takes the full path.
    match hooks::mark_ring(MapHandle::of(m.cast()), addr as usize, len) {
        hooks::RingMark::Done => 0,
        hooks::RingMark::Key { id, k } => mark_key(id, k),
        hooks::RingMark::No => mark_full(m, addr, len),
    }
}

#[cold]
#[inline(never)]
fn mark_key(id: u64, k: u64) -> c_int {
    guard("dax_mark_dirty", "mark", -1, || {
        hooks::mark_key(id, k)?;
        Ok(0)
    })
}

#[cold]
#[inline(never)]
fn mark_full(m: *mut dax_map_t, addr: *const c_void, len: size_t) -> c_int {
    guard("dax_mark_dirty", "mark", -1, || {
        hooks::mark_slow(MapHandle::of(m.cast()), addr as usize, len)?;
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
/// errno EINVAL (bad handle, NULL pointer, dst range not inside the mapping), EBADF
/// (not a live handle, or the mapping was unmapped or split by another thread during
/// the call: the bytes were written, but may be marked in no mapping: mark them again
/// through the handle of the part, from dax_find()), or EIO when part of dst lies past
/// the end of a file shrunk under the mapping (what was written there is lost; the rest
/// is copied; every later dax_sync fails, as there).
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
/// dax_memcpy(). Returns 0, or -1 with errno EINVAL, EBADF or EIO (as dax_memcpy()).
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
