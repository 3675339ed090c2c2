//! What the preload and libpmem shims need: ranged unmap, device DAX test, setting the
//! message, adopting and forgetting a caller's mapping, counters, signal chaining,
//! range lookup, the tracking mode.

use super::map::*;
use super::*;

/// Unmap [addr, addr+len) like munmap(2) (len rounded up to pages), keeping the
/// registry true: daxpmem mappings wholly inside are released and their handles retired;
/// mappings partly inside are split, and the parts outside stay mapped and registered
/// under new handles (find them with dax_find), with their dirty lines. Dirty lines
/// inside the range are dropped. Returns 0, or -1 with errno EINVAL (unaligned addr, len
/// 0, wrapping range), ENOMEM (no registry room for the parts of a split mapping: nothing
/// is changed; or protecting them for DAX_TRACK_MPROTECT failed: that mapping stays
/// whole, under its handle) or munmap's error.
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

/// dax_fd_kind(): fd is something else (a pipe, a socket, a directory, another
/// character device).
pub const DAX_FD_OTHER: c_int = 0;
/// dax_fd_kind(): a regular file without the DAX attribute (page cache).
pub const DAX_FD_FILE: c_int = 1;
/// dax_fd_kind(): a regular file with the DAX attribute (statx STATX_ATTR_DAX).
pub const DAX_FD_FSDAX: c_int = 2;
/// dax_fd_kind(): a device DAX character device.
pub const DAX_FD_DEVDAX: c_int = 3;

/// What the open descriptor fd is (DAX_FD_*), as dax_map would see it: for layers that
/// decide how to map a descriptor (the preload library's mmap hook). Returns a DAX_FD_*
/// value, or -1 with errno (fstat's: EBADF for a descriptor that is not open).
#[no_mangle]
pub extern "C" fn dax_fd_kind(fd: c_int) -> c_int {
    guard("dax_fd_kind", "fd kind", -1, || {
        Ok(match hooks::fd_kind(fd)? {
            3 => DAX_FD_DEVDAX,
            2 => DAX_FD_FSDAX,
            1 => DAX_FD_FILE,
            _ => DAX_FD_OTHER,
        })
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
