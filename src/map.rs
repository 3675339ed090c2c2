//! Opening, sizing and mapping files: MAP_SYNC where the filesystem is DAX, a 2 MiB
//! (or 1 GiB) aligned address so the kernel can use PMD faults, the file's DAX state,
//! device DAX.

use crate::cpu;
use crate::dirty::DirtyIndex;
use crate::error::{Error, Result};
use crate::lock::{Mutex, SpinLock};
use crate::sys;
use std::ffi::CStr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::atomic::AtomicU64;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::{
    AtomicBool, AtomicI32, AtomicPtr, AtomicU32, Ordering::Relaxed, Ordering::SeqCst,
};
use std::sync::Arc;

/// Flags of `dax_map` / `dax_map_fd` (the C constants have the same values).
pub(crate) const CREATE: u32 = 1;
pub(crate) const EXCL: u32 = 2;
pub(crate) const SPARSE: u32 = 4;
pub(crate) const POPULATE: u32 = 8;
/// Tracking modes live in bits 8..11.
pub(crate) const TRACK_SHIFT: u32 = 8;
pub(crate) const TRACK_MASK: u32 = 0xF << TRACK_SHIFT;
pub(crate) const VALID_FLAGS: u32 = CREATE | EXCL | SPARSE | POPULATE | TRACK_MASK;

const MAP_SYNC: i32 = 0x80000;
const MAP_SHARED_VALIDATE: i32 = 0x03;
const STATX_ATTR_DAX: u64 = 0x0020_0000;

pub(crate) const MIB2: usize = 2 << 20;
pub(crate) const GIB: usize = 1 << 30;

/// How dirty data is found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Track {
    /// Only marks made through the API.
    Explicit = 0,
    /// mprotect + SIGSEGV.
    Mprotect = 1,
    /// userfaultfd write-protect (async) + PAGEMAP_SCAN.
    Uffd = 2,
    /// The kernel's own msync.
    Kernel = 3,
    /// The best proven mode for the mapping.
    Auto = 4,
}

impl Track {
    pub fn from_flags(flags: u32) -> Result<Track> {
        Ok(match (flags & TRACK_MASK) >> TRACK_SHIFT {
            0 => Track::Explicit,
            1 => Track::Mprotect,
            2 => Track::Uffd,
            3 => Track::Kernel,
            4 => Track::Auto,
            v => return Err(Error::inval(format!("unknown tracking mode {v} in flags"))),
        })
    }
    pub fn name(self) -> &'static str {
        match self {
            Track::Explicit => "explicit",
            Track::Mprotect => "mprotect",
            Track::Uffd => "uffd",
            Track::Kernel => "kernel",
            Track::Auto => "auto",
        }
    }
}

/// What the mapping is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Kind {
    /// Mapped with MAP_SYNC: the kernel guarantees the file's metadata for every
    /// written page is durable, so a user-space write-back is enough.
    pub map_sync: bool,
    /// Device DAX (`/dev/daxN.M`).
    pub devdax: bool,
    /// The file has STATX_ATTR_DAX.
    pub file_dax: bool,
    /// Treated as pmem only because DAXPMEM_FORCE_PMEM / PMEM_IS_PMEM_FORCE said so.
    pub forced: bool,
}

/// Counters kept per mapping.
#[derive(Default)]
pub struct Counters {
    pub lines_written_back: AtomicU64,
    pub syncs: AtomicU64,
    pub msync_calls: AtomicU64,
    pub tracked_faults: AtomicU64,
}

/// Everything about one mapping. Shared (Arc) between the C handle and the registry.
pub struct Mapping {
    pub addr: usize,
    pub len: usize,
    pub offset: u64,
    /// No file descriptor is kept: what needs the file after mapping goes through the
    /// memory (`dax_punch_hole`: MADV_REMOVE + msync), so a mapping never holds one and
    /// splitting it never needs a new one (DAX_TRACK_UFFD's own descriptors: uffd.rs).
    pub kind: Kind,
    /// A user-space write-back makes data durable (MAP_SYNC, device DAX or forced).
    pub pmem: bool,
    pub line: usize,
    pub line_shift: u32,
    pub index: DirtyIndex,
    /// The fast path of marking (drained into syncs): see marklog.rs.
    pub log: crate::marklog::MarkLog,
    pub track: Track,
    pub counters: Counters,
    /// Held by a sync for its whole duration: syncs of one mapping are serialised, so
    /// a sync that returns has written back everything marked before it began even when
    /// another sync took the bits first.
    pub sync_lock: Mutex<SyncScratch>,
    /// Tracking (DAX_TRACK_MPROTECT): shared by the fault handler and the collector, so a
    /// page is never made writable between a collector's protect and its take.
    pub fault_lock: SpinLock,
    /// Tracking: writable runs opened by faults since the mapping was last protected
    /// whole (each splits the VMA: the handler coarsens long before vm.max_map_count).
    pub faults_since_protect: AtomicUsize,
    /// Retired (unmapped, forgotten or split) under the sync lock: a sync that takes the
    /// lock afterwards refuses to touch the memory (EBADF).
    pub dead: std::sync::atomic::AtomicBool,
    /// dax_memcpy / dax_memset calls writing into the memory now (handle::Copying).
    pub copies: std::sync::atomic::AtomicU32,
    /// Whether dropping the mapping unmaps its memory (false once its range was handed
    /// to the pieces of a split, or unmapped by the caller).
    pub owns_memory: std::sync::atomic::AtomicBool,
    /// DAX_TRACK_UFFD: the mapping's userfaultfd and pagemap descriptors.
    pub uffd: UffdState,
    /// A write-back of this mapping failed (sticky until unmap: every later sync fails
    /// with EIO): FAILED_MSYNC, FAILED_LOST_PAGES bits; see `failure`.
    pub failed: AtomicU32,
    /// The errno of the first failed msync / fdatasync.
    pub failed_errno: AtomicI32,
    /// Pages the SIGBUS handler replaced because the file no longer backed them.
    pub lost_pages: AtomicU64,
    /// The thread (`lock::self_id`) writing the mapping back right now (under the
    /// sync lock), 0 for none: a SIGBUS on that thread in the mapping is a lost page.
    pub writer: AtomicUsize,
}

/// The error of a call that needs a mapping's sync lock while this thread holds it
/// already: it was made from a signal handler that interrupted a sync (or another call
/// holding the lock) on the same thread. Waiting would wait forever.
pub fn reentered(what: &str) -> Error {
    Error::new(
        libc::EDEADLK,
        format!(
            "{what}: re-entered from a signal handler that interrupted a call holding this \
             mapping's sync lock on the same thread (not async-signal-safe)"
        ),
    )
}

/// `Mapping::failed` bits.
pub(crate) const FAILED_MSYNC: u32 = 1;
pub(crate) const FAILED_LOST_PAGES: u32 = 2;

/// Scratch space reused by the syncs of a mapping (under `sync_lock`).
#[derive(Default)]
pub struct SyncScratch {
    /// (first line, count) runs a sync took, sorted and merged (restored on failure).
    pub runs: Vec<(usize, usize)>,
    /// The index's runs a sync took (ascending).
    pub taken: Vec<(usize, usize)>,
    /// The mark log's entries a sync took, as sort keys (`marklog::key`), and the
    /// sort's scratch space.
    pub order: crate::order::Scratch,
}

impl Mapping {
    /// Lines in the mapping (the last may be partial).
    #[inline]
    pub fn lines(&self) -> usize {
        (self.len + self.line - 1) >> self.line_shift
    }

    /// Line index range of `[addr, addr+len)`, which must lie inside the mapping.
    #[inline]
    pub fn lines_of(&self, addr: usize, len: usize) -> (usize, usize) {
        let off = addr - self.addr;
        (
            off >> self.line_shift,
            (off + len - 1 + self.line) >> self.line_shift,
        )
    }

    /// Check that `[addr, addr+len)` lies inside the mapping (len > 0). The error is
    /// static text (no allocation: dax_mark_dirty is async-signal-safe).
    #[inline]
    pub fn check_inside(&self, what: &'static str, addr: usize, len: usize) -> Result<()> {
        match addr.checked_add(len) {
            Some(end) if addr >= self.addr && end <= self.addr + self.len => Ok(()),
            Some(_) if addr == 0 => Err(Error::at(libc::EINVAL, what, "NULL address")),
            Some(_) => Err(Error::at(
                libc::EINVAL,
                what,
                "the range is not inside the mapping",
            )),
            None => Err(Error::at(libc::EINVAL, what, "the range wraps around")),
        }
    }

    /// Mark `[addr, addr+len)` dirty (must be inside the mapping, len > 0): a few lines
    /// go to the mark log, larger ranges (or a full log) to the index. Lock-free.
    #[inline]
    pub fn mark(&self, addr: usize, len: usize) {
        let (lo, hi) = self.lines_of(addr, len);
        if !self.log.push(lo, hi - lo) {
            self.index.mark(lo, hi);
        }
    }

    /// Mark in the index only (async-signal-safe, never waits: the fault handler's way).
    #[inline]
    pub fn mark_index(&self, addr: usize, len: usize) {
        let (lo, hi) = self.lines_of(addr, len);
        self.index.mark(lo, hi);
    }

    /// Move the mark log's entries into the index (the caller holds the sync lock).
    pub fn drain_log_to_index(&self) {
        self.log.drain(|f, c| self.index.mark(f, f + c));
    }

    /// Record a failed msync / fdatasync: every later sync fails (`failure`).
    pub fn note_write_back_failure(&self, errno: i32) {
        let _ = self
            .failed_errno
            .compare_exchange(0, errno, Relaxed, Relaxed);
        self.failed.fetch_or(FAILED_MSYNC, Relaxed);
    }

    /// Record a page the file no longer backs (async-signal-safe: the SIGBUS handler).
    pub fn note_lost_page(&self) {
        self.lost_pages.fetch_add(1, Relaxed);
        self.failed.fetch_or(FAILED_LOST_PAGES, Relaxed);
    }

    /// Err(EIO) if a write-back of this mapping ever failed (sticky until unmap).
    #[inline]
    pub fn check_failed(&self, what: &str) -> Result<()> {
        match self.failed.load(Relaxed) {
            0 => Ok(()),
            f => Err(self.failure(what, f)),
        }
    }

    #[cold]
    fn failure(&self, what: &str, f: u32) -> Error {
        let mut msg = format!("{what}: this mapping's data may not be durable, and every sync of it fails until it is unmapped:");
        if f & FAILED_MSYNC != 0 {
            let e = self.failed_errno.load(Relaxed);
            msg += &format!(
                " a write-back of it failed before ({}: {}), and the kernel may have marked the pages clean;",
                if self.pmem { "msync/fdatasync" } else { "msync" },
                std::io::Error::from_raw_os_error(e)
            );
        }
        if f & FAILED_LOST_PAGES != 0 {
            msg += &format!(
                " {} page(s) of it lay past the end of its file (the file was shrunk under the mapping): what was written there is lost;",
                self.lost_pages.load(Relaxed)
            );
        }
        msg.pop();
        Error::new(libc::EIO, msg)
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        if self.owns_memory.load(std::sync::atomic::Ordering::SeqCst) {
            // SAFETY: the mapping is ours and no handle or registry entry refers to it
            // any more (this is the last reference).
            let _ = unsafe { sys::munmap(self.addr, self.len) };
        }
    }
}

fn cpath(path: &CStr) -> String {
    path.to_string_lossy().into_owned()
}

/// Open (and create / size) `path` for `dax_map`. Returns the fd and the length to map.
pub fn open_path(
    path: &CStr,
    len: usize,
    flags: u32,
    mode: libc::mode_t,
) -> Result<(OwnedFd, usize)> {
    let name = cpath(path);
    if flags & !VALID_FLAGS != 0 {
        return Err(Error::inval(format!(
            "dax_map({name}): unknown flags {:#x}",
            flags & !VALID_FLAGS
        )));
    }
    if flags & (EXCL | SPARSE) != 0 && flags & CREATE == 0 {
        return Err(Error::inval(format!(
            "dax_map({name}): DAX_EXCL and DAX_SPARSE need DAX_CREATE"
        )));
    }
    if flags & CREATE != 0 && len == 0 {
        return Err(Error::inval(format!(
            "dax_map({name}): DAX_CREATE needs a length to size the file to"
        )));
    }
    let mut oflags = libc::O_RDWR | libc::O_CLOEXEC;
    if flags & CREATE != 0 {
        oflags |= libc::O_CREAT;
        if flags & EXCL != 0 {
            oflags |= libc::O_EXCL;
        }
    }
    // SAFETY: path is NUL-terminated; open returns a new fd or -1.
    let fd = unsafe { libc::open(path.as_ptr(), oflags, mode as libc::c_uint) };
    if fd < 0 {
        return Err(Error::last_os(format!("dax_map: open {name}")));
    }
    // SAFETY: fd is a fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let created_new = flags & EXCL != 0;
    let st = fstat(fd.as_fd(), &name)?;
    let ftype = st.st_mode & libc::S_IFMT;
    if ftype == libc::S_IFCHR {
        let (size, align) = devdax_geometry(&st).ok_or_else(|| {
            Error::inval(format!(
                "dax_map({name}): a character device that is not device DAX"
            ))
        })?;
        let len = if len == 0 { size } else { len };
        check_devdax_len(&format!("dax_map({name})"), len, size, align)?;
        return Ok((fd, len));
    }
    if ftype != libc::S_IFREG {
        return Err(Error::inval(format!(
            "dax_map({name}): not a regular file or device DAX"
        )));
    }
    let size = st.st_size as u64;
    if flags & CREATE != 0 {
        if (size as usize) < len {
            if let Err(e) = grow(&fd, len as u64, flags & SPARSE != 0) {
                if created_new {
                    // SAFETY: path is NUL-terminated; we created this file just now.
                    unsafe { libc::unlink(path.as_ptr()) };
                }
                return Err(Error::new(e.errno, format!("dax_map({name}): {}", e.msg)));
            }
        }
        return Ok((fd, len));
    }
    if len == 0 {
        if size == 0 {
            return Err(Error::inval(format!(
                "dax_map({name}): the file is empty and no length was given"
            )));
        }
        return Ok((fd, size as usize));
    }
    if (len as u64) > size {
        return Err(Error::inval(format!(
            "dax_map({name}): length {len} is beyond the end of the file ({size} bytes); use DAX_CREATE to grow it"
        )));
    }
    Ok((fd, len))
}

fn fstat(fd: BorrowedFd<'_>, name: &str) -> Result<libc::stat> {
    // SAFETY: an all-zero stat is a valid out-buffer.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fd is open; st is a valid out-pointer.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
        return Err(Error::last_os(format!("fstat {name}")));
    }
    Ok(st)
}

/// Grow a file to `len`: allocate blocks (posix_fallocate) unless sparse, else ftruncate.
fn grow(fd: &OwnedFd, len: u64, sparse: bool) -> Result<()> {
    if !sparse {
        // SAFETY: fd is open.
        let r = unsafe { libc::posix_fallocate(fd.as_raw_fd(), 0, len as libc::off_t) };
        if r == 0 {
            return Ok(());
        }
        if r != libc::EOPNOTSUPP && r != libc::EINVAL {
            return Err(Error::new(
                r,
                format!(
                    "posix_fallocate to {len} bytes: {}",
                    std::io::Error::from_raw_os_error(r)
                ),
            ));
        }
    }
    // SAFETY: fd is open.
    if unsafe { libc::ftruncate(fd.as_raw_fd(), len as libc::off_t) } != 0 {
        return Err(Error::last_os(format!("ftruncate to {len} bytes")));
    }
    Ok(())
}

/// Device DAX: (size, alignment) from sysfs if `st` is a DAX character device.
pub fn devdax_geometry(st: &libc::stat) -> Option<(usize, usize)> {
    let (maj, min) = (libc::major(st.st_rdev), libc::minor(st.st_rdev));
    let base = format!("/sys/dev/char/{maj}:{min}");
    let subsys = std::fs::read_link(format!("{base}/subsystem")).ok()?;
    if subsys.file_name()?.to_str()? != "dax" {
        return None;
    }
    let read = |p: &str| -> Option<usize> {
        std::fs::read_to_string(format!("{base}/{p}"))
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    let size = read("size")?;
    let align = read("align")
        .or_else(|| read("device/align"))
        .unwrap_or(MIB2);
    Some((size, align.max(4096)))
}

fn check_devdax_len(name: &str, len: usize, size: usize, align: usize) -> Result<()> {
    if len > size {
        return Err(Error::inval(format!(
            "{name}: length {len} exceeds the device size {size}"
        )));
    }
    if !len.is_multiple_of(align) {
        return Err(Error::inval(format!(
            "{name}: device DAX needs a length that is a multiple of its alignment ({align})"
        )));
    }
    Ok(())
}

/// The file's DAX attribute (statx STATX_ATTR_DAX, kernel >= 5.8); None if unknown.
pub fn file_is_dax(fd: i32) -> Option<bool> {
    // SAFETY: an all-zero statx is a valid out-buffer.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: empty path with AT_EMPTY_PATH refers to fd; stx is a valid out-pointer.
    let r = unsafe {
        libc::statx(
            fd,
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            libc::STATX_BASIC_STATS,
            &mut stx,
        )
    };
    if r != 0 || stx.stx_attributes_mask & STATX_ATTR_DAX == 0 {
        return None;
    }
    Some(stx.stx_attributes & STATX_ATTR_DAX != 0)
}

/// Whether a MAP_SYNC mapping of `fd` at `offset` is possible (a one-page probe: a
/// failed MAP_FIXED mapping may already have removed what it was to replace, so the
/// real mapping is never the probe).
pub fn map_sync_works(fd: i32, offset: u64) -> bool {
    // SAFETY: a fresh mapping at a kernel-chosen address, unmapped at once.
    match unsafe {
        sys::mmap(
            0,
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            MAP_SHARED_VALIDATE | MAP_SYNC,
            fd,
            offset,
        )
    } {
        Ok(a) => {
            // SAFETY: the probe mapping is ours.
            let _ = unsafe { sys::munmap(a, 4096) };
            true
        }
        Err(_) => false,
    }
}

/// Where a new mapping of `len` bytes of a file at `offset` goes, as libpmem places it
/// (PMDK 1.12 `util_map_hint`, pmem2's `map_reserve`): reserve `len + align` bytes of
/// address space wherever the kernel puts them, and map at the first address in the
/// reservation that is congruent to `offset` modulo `align` (PMD faults need both
/// aligned; for offset 0 that is libpmem's `roundup(reservation, align)`). `align` is
/// 2 MiB, 1 GiB from 2 GiB up, or device DAX's own if larger. The caller maps over the
/// reservation with MAP_FIXED and releases the rest (what libpmem's hint leaves free
/// after the mapping is free here too). Returns (address, reservation, its length).
pub(crate) fn place(len: usize, offset: u64, min_align: usize) -> Result<(usize, usize, usize)> {
    let align = if len >= 2 * GIB { GIB } else { MIB2 }.max(min_align.next_power_of_two());
    let rlen = len
        .checked_add(sys::PAGE - 1)
        .map(|l| l & !(sys::PAGE - 1))
        .and_then(|l| l.checked_add(align))
        .ok_or_else(|| Error::inval(format!("length {len} too large")))?;
    // SAFETY: a fresh PROT_NONE reservation at a kernel-chosen address.
    let res = unsafe {
        sys::mmap(
            0,
            rlen,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    }
    .map_err(|e| Error::new(e.errno, format!("reserving address space: {}", e.msg)))?;
    let want = (offset % align as u64) as usize;
    let addr = res + (want + align - res % align) % align;
    Ok((addr, res, rlen))
}

/// What `probe_fd` found out about a file before mapping it: what the mapping will be,
/// device DAX's alignment (0 for a file), and the tracking mode the flags ask for (the
/// layer above resolves it: `track::resolve`).
pub struct Probe {
    pub kind: Kind,
    pub align: usize,
    pub requested: Track,
}

impl Probe {
    /// Whether the mapping will be on DAX (a DAX file, MAP_SYNC or device DAX).
    pub fn dax(&self) -> bool {
        self.kind.file_dax || self.kind.map_sync
    }
}

/// Check the arguments of a new mapping of `len` bytes of `fd` at `offset` and find out
/// what it will be (device DAX, a DAX file, whether MAP_SYNC works).
pub fn probe_fd(
    fd: BorrowedFd<'_>,
    offset: u64,
    len: usize,
    flags: u32,
    name: &str,
) -> Result<Probe> {
    if len == 0 {
        return Err(Error::inval(format!("{name}: length 0")));
    }
    if !offset.is_multiple_of(sys::PAGE as u64) {
        return Err(Error::inval(format!(
            "{name}: offset {offset} is not a multiple of the page size"
        )));
    }
    let requested = Track::from_flags(flags)?;
    let raw = fd.as_raw_fd();
    let st = fstat(fd, name)?;
    let geometry = (st.st_mode & libc::S_IFMT == libc::S_IFCHR)
        .then(|| devdax_geometry(&st))
        .flatten();
    let devdax = geometry.is_some();
    let file_dax = devdax || file_is_dax(raw) == Some(true);
    let map_sync = !devdax && map_sync_works(raw, offset);
    let kind = Kind {
        map_sync,
        devdax,
        file_dax,
        forced: false,
    };
    Ok(Probe {
        kind,
        align: geometry.map_or(0, |g| g.1),
        requested,
    })
}

/// Map `len` bytes of `fd` at `offset` for a new mapping, as `probe` found it, tracked
/// by `track` (resolved: the caller arms it). The mapping keeps no descriptor: the
/// caller's may be closed as soon as this returns.
pub fn map_probed(
    fd: BorrowedFd<'_>,
    offset: u64,
    len: usize,
    flags: u32,
    probe: &Probe,
    track: Track,
    name: &str,
) -> Result<Mapping> {
    let raw = fd.as_raw_fd();
    let map_sync = probe.kind.map_sync;
    // The index and the mark log (anonymous mappings) first: allocated after the
    // mapping they would take the free space placement leaves after it, as libpmem's
    // own bookkeeping (heap) does not. The Mapping owns no memory until it is mapped.
    let mut m = build(0, len, offset, probe.kind, track, name)?;
    m.owns_memory
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let (addr, res, rlen) = place(len, offset, probe.align)
        .map_err(|e| Error::new(e.errno, format!("{name}: {}", e.msg)))?;
    let mut mflags = libc::MAP_FIXED;
    mflags |= if map_sync {
        MAP_SHARED_VALIDATE | MAP_SYNC
    } else {
        libc::MAP_SHARED
    };
    if flags & POPULATE != 0 {
        mflags |= libc::MAP_POPULATE;
    }
    // SAFETY: [addr, addr+len) lies inside our reservation, which MAP_FIXED replaces.
    let r = unsafe {
        sys::mmap(
            addr,
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            mflags,
            raw,
            offset,
        )
    };
    let trim = |keep: bool| {
        // SAFETY: releasing the parts of our own reservation around [addr, addr+len)
        // (or all of it when the mapping failed); empty parts are skipped.
        unsafe {
            if keep {
                if addr > res {
                    let _ = sys::munmap(res, addr - res);
                }
                let tail = addr + sys::page_up(len);
                if res + rlen > tail {
                    let _ = sys::munmap(tail, res + rlen - tail);
                }
            } else {
                let _ = sys::munmap(res, rlen);
            }
        }
    };
    if let Err(e) = r {
        trim(false);
        return Err(Error::new(e.errno, format!("{name}: {}", e.msg)));
    }
    trim(true);
    m.addr = addr;
    m.owns_memory
        .store(true, std::sync::atomic::Ordering::SeqCst);
    Ok(m)
}

/// The Mapping for memory already mapped at [addr, addr+len).
fn build(
    addr: usize,
    len: usize,
    offset: u64,
    mut kind: Kind,
    track: Track,
    name: &str,
) -> Result<Mapping> {
    let c = cpu::config();
    let real = kind.map_sync || kind.devdax;
    let pmem = !c.force_not_pmem && (real || c.force_pmem);
    kind.forced = c.force_pmem && !real;
    Mapping::assemble(
        addr,
        len,
        offset,
        kind,
        pmem,
        track,
        Default::default(),
        name,
    )
}

impl Mapping {
    /// A Mapping of [addr, addr+len) with a fresh, empty index and mark log.
    #[allow(clippy::too_many_arguments)]
    fn assemble(
        addr: usize,
        len: usize,
        offset: u64,
        kind: Kind,
        pmem: bool,
        track: Track,
        uffd: UffdState,
        name: &str,
    ) -> Result<Mapping> {
        let line = cpu::config().line;
        let index = DirtyIndex::new(len.div_ceil(line))
            .map_err(|e| Error::from_io(format!("{name}: allocating the dirty index"), &e))?;
        let log = crate::marklog::MarkLog::new(len.div_ceil(line))
            .map_err(|e| Error::from_io(format!("{name}: allocating the mark log"), &e))?;
        Ok(Mapping {
            addr,
            len,
            offset,
            kind,
            pmem,
            line,
            line_shift: line.trailing_zeros(),
            index,
            log,
            track,
            counters: Counters::default(),
            sync_lock: Mutex::new(SyncScratch::default()),
            fault_lock: SpinLock::default(),
            faults_since_protect: AtomicUsize::new(0),
            dead: Default::default(),
            copies: Default::default(),
            owns_memory: std::sync::atomic::AtomicBool::new(true),
            uffd,
            failed: AtomicU32::new(0),
            failed_errno: AtomicI32::new(0),
            lost_pages: AtomicU64::new(0),
            writer: AtomicUsize::new(0),
        })
    }
}

/// Adopt a shared mapping the caller made: [addr, addr+len) maps `fd` (the caller's,
/// only looked at, not kept) at `offset`; `mapped_sync` says whether it was mapped with
/// MAP_SYNC.
/// Checks the range and finds out what it maps (`adopted` makes the Mapping).
pub fn probe_adopt(
    addr: usize,
    len: usize,
    fd: BorrowedFd<'_>,
    offset: u64,
    flags: u32,
    mapped_sync: bool,
) -> Result<Probe> {
    let name = "dax_adopt";
    if addr == 0 || !addr.is_multiple_of(sys::PAGE) || len == 0 || addr.checked_add(len).is_none() {
        return Err(Error::inval(format!(
            "{name}: {addr:#x}+{len}: needs a page-aligned, non-NULL address and a length that does not wrap"
        )));
    }
    if !offset.is_multiple_of(sys::PAGE as u64) {
        return Err(Error::inval(format!(
            "{name}: offset {offset} is not a multiple of the page size"
        )));
    }
    if flags & !(TRACK_MASK | POPULATE) != 0 {
        return Err(Error::inval(format!("{name}: unknown flags {flags:#x}")));
    }
    let st = fstat(fd, name)?;
    let devdax = st.st_mode & libc::S_IFMT == libc::S_IFCHR && devdax_geometry(&st).is_some();
    if !devdax && st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Err(Error::inval(format!(
            "{name}: not a regular file or device DAX"
        )));
    }
    check_adopted_range(addr, len, &st, offset, devdax)?;
    let file_dax = devdax || file_is_dax(fd.as_raw_fd()) == Some(true);
    let requested = Track::from_flags(flags)?;
    let kind = Kind {
        map_sync: mapped_sync && !devdax,
        devdax,
        file_dax,
        forced: false,
    };
    Ok(Probe {
        kind,
        align: 0,
        requested,
    })
}

/// The Mapping of an adopted range (`probe_adopt` checked it), tracked by `track`
/// (resolved: the caller arms it). The mapping becomes the library's: dax_unmap will
/// unmap it.
pub fn adopted(
    addr: usize,
    len: usize,
    offset: u64,
    probe: &Probe,
    track: Track,
) -> Result<Mapping> {
    build(addr, len, offset, probe.kind, track, "dax_adopt")
}

/// dax_adopt: what the kernel maps at [addr, addr+len) (/proc/self/maps) must be shared,
/// readable and writable mappings of the file `st`, at the file offset that matches
/// `offset`, with no gap. Device DAX: shared, readable, writable and no gap only (its
/// VMAs were not checked against a real device here; kept permissive).
fn check_adopted_range(
    addr: usize,
    len: usize,
    st: &libc::stat,
    offset: u64,
    devdax: bool,
) -> Result<()> {
    let name = "dax_adopt";
    let maps = std::fs::read_to_string("/proc/self/maps")
        .map_err(|e| Error::from_io(format!("{name}: reading /proc/self/maps"), &e))?;
    let end = addr + len;
    let bad = |why: String| {
        Err(Error::inval(format!(
            "{name}: {addr:#x}+{len} is not a shared, writable mapping of this file at offset {offset}: {why}"
        )))
    };
    let mut at = addr;
    for l in maps.lines() {
        let mut f = l.split_ascii_whitespace();
        let (Some(range), Some(perms), Some(off), Some(dev), Some(ino)) =
            (f.next(), f.next(), f.next(), f.next(), f.next())
        else {
            continue;
        };
        let Some((a, b)) = range.split_once('-') else {
            continue;
        };
        let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16)) else {
            continue;
        };
        if b <= at {
            continue;
        }
        if a > at {
            return bad(format!("nothing is mapped at {at:#x}"));
        }
        let p = perms.as_bytes();
        if p.len() < 4 || p[0] != b'r' || p[1] != b'w' || p[3] != b's' {
            return bad(format!(
                "{a:#x}-{b:#x} is mapped {perms} (needs rw and shared: 'rw?s')"
            ));
        }
        if !devdax {
            let (maj, min) = dev.split_once(':').unwrap_or(("", ""));
            let same_file = u32::from_str_radix(maj, 16).ok() == Some(libc::major(st.st_dev))
                && u32::from_str_radix(min, 16).ok() == Some(libc::minor(st.st_dev))
                && ino.parse::<u64>().ok() == Some(st.st_ino);
            // maps shows the superblock's device, which stat does not on btrfs
            // subvolumes or overlayfs: then ask the mapped file itself.
            let same_file = same_file || {
                use std::os::unix::fs::MetadataExt;
                std::fs::metadata(format!("/proc/self/map_files/{range}"))
                    .is_ok_and(|md| md.dev() == st.st_dev && md.ino() == st.st_ino)
            };
            if !same_file {
                return bad(format!(
                    "{a:#x}-{b:#x} maps another file (device {dev}, inode {ino})"
                ));
            }
            let vma_off = u64::from_str_radix(off, 16).unwrap_or(u64::MAX);
            // The file offset the VMA maps at `addr` (or at its own start, past addr).
            let want = offset as i128 + a as i128 - addr as i128;
            if vma_off as i128 != want {
                return bad(format!(
                    "{a:#x}-{b:#x} maps the file from offset {vma_off:#x}, not {want:#x}"
                ));
            }
        }
        at = b;
        if at >= end {
            return Ok(());
        }
    }
    bad(format!("nothing is mapped at {at:#x}"))
}

/// Check a caller's fd for `dax_map_fd` / `dax_adopt` (`what`): open, and read-write
/// (a shared writable mapping needs O_RDWR). Nothing is duplicated: the mapping keeps no
/// descriptor, so the caller may close its own at once.
pub fn check_fd(fd: i32, what: &str) -> Result<BorrowedFd<'static>> {
    if fd < 0 {
        return Err(Error::new(
            libc::EBADF,
            format!("{what}: bad file descriptor {fd}"),
        ));
    }
    // SAFETY: F_GETFL only reads the descriptor's flags.
    let fl = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if fl < 0 {
        return Err(Error::last_os(format!("{what}: fd {fd}")));
    }
    if fl & libc::O_ACCMODE != libc::O_RDWR {
        return Err(Error::new(
            libc::EACCES,
            format!(
                "{what}: fd {fd} is not open read-write (a shared writable mapping needs O_RDWR)"
            ),
        ));
    }
    // SAFETY: fd is open (F_GETFL succeeded) and the caller keeps it open for the call
    // it passed it to; the borrow does not outlive that call.
    Ok(unsafe { BorrowedFd::borrow_raw(fd) })
}

/// The length `dax_map_fd` maps when given 0: from `offset` to the end of the file or device.
pub fn fd_len(fd: BorrowedFd<'_>, offset: u64) -> Result<usize> {
    let st = fstat(fd, "dax_map_fd")?;
    let size = match st.st_mode & libc::S_IFMT {
        libc::S_IFREG => st.st_size as u64,
        libc::S_IFCHR => devdax_geometry(&st)
            .map(|g| g.0 as u64)
            .ok_or_else(|| Error::inval("dax_map_fd: a character device that is not device DAX"))?,
        _ => return Err(Error::inval("dax_map_fd: not a regular file or device DAX")),
    };
    if size <= offset {
        return Err(Error::inval(format!(
            "dax_map_fd: nothing to map: the file has {size} bytes and the offset is {offset}"
        )));
    }
    Ok((size - offset) as usize)
}

/// dax_map_fd: what dax_map checks of a path, for a descriptor: a regular file long
/// enough for [offset, offset+len), or a device DAX that holds it with a length that is
/// a multiple of its alignment; anything else is EINVAL.
pub fn check_fd_range(fd: BorrowedFd<'_>, offset: u64, len: usize) -> Result<()> {
    let name = "dax_map_fd";
    let st = fstat(fd, name)?;
    let end = offset.checked_add(len as u64).ok_or_else(|| {
        Error::inval(format!(
            "{name}: offset {offset} + length {len} wraps around"
        ))
    })?;
    match st.st_mode & libc::S_IFMT {
        libc::S_IFREG => {
            let size = st.st_size as u64;
            if end > size {
                return Err(Error::inval(format!(
                    "{name}: offset {offset} + length {len} is beyond the end of the file ({size} bytes)"
                )));
            }
            Ok(())
        }
        libc::S_IFCHR => {
            let (size, align) = devdax_geometry(&st).ok_or_else(|| {
                Error::inval(format!("{name}: a character device that is not device DAX"))
            })?;
            if end > size as u64 {
                return Err(Error::inval(format!(
                    "{name}: offset {offset} + length {len} exceeds the device size {size}"
                )));
            }
            check_devdax_len(name, len, size, align)
        }
        _ => Err(Error::inval(format!(
            "{name}: not a regular file or device DAX"
        ))),
    }
}

/// Check the flags `dax_map_fd` accepts.
pub fn check_fd_flags(flags: u32) -> Result<()> {
    if flags & !VALID_FLAGS != 0 {
        return Err(Error::inval(format!(
            "dax_map_fd: unknown flags {:#x}",
            flags & !VALID_FLAGS
        )));
    }
    if flags & (CREATE | EXCL | SPARSE) != 0 {
        return Err(Error::inval(
            "dax_map_fd: DAX_CREATE, DAX_EXCL and DAX_SPARSE apply to dax_map only",
        ));
    }
    Ok(())
}

/// Bytes of `[addr, addr+len)` the kernel maps with huge (PMD) entries, from
/// PAGEMAP_SCAN (kernel >= 6.7; DAX PMDs are not in smaps), else smaps. None if unknown.
pub fn huge_mapped_bytes(addr: usize, len: usize) -> Option<u64> {
    crate::pagemap::huge_bytes(addr, len).or_else(|| smaps_huge(addr))
}

fn smaps_huge(addr: usize) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/smaps").ok()?;
    let mut inside = false;
    let mut total = 0u64;
    for l in s.lines() {
        if let Some((range, _)) = l.split_once(' ') {
            if let Some((a, b)) = range.split_once('-') {
                if let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
                {
                    inside = a <= addr && addr < b;
                    continue;
                }
            }
        }
        if inside {
            for key in ["FilePmdMapped:", "ShmemPmdMapped:", "AnonHugePages:"] {
                if let Some(v) = l.strip_prefix(key) {
                    let kb: u64 = v.trim().trim_end_matches("kB").trim().parse().ok()?;
                    total += kb * 1024;
                }
            }
        }
    }
    Some(total)
}

impl Mapping {
    /// A new mapping for `[addr, addr+len)`, a page-aligned part of this one, that adopts
    /// the memory and takes over the dirty lines there. Used to split a mapping.
    pub fn piece(&self, addr: usize, len: usize) -> Result<Mapping> {
        let uffd = self.uffd.piece();
        let piece = Mapping::assemble(
            addr,
            len,
            self.offset + (addr - self.addr) as u64,
            self.kind,
            self.pmem,
            self.track,
            uffd,
            "splitting a mapping",
        )?;
        // A failure is the pieces' too.
        piece.failed.store(self.failed.load(Relaxed), Relaxed);
        piece
            .failed_errno
            .store(self.failed_errno.load(Relaxed), Relaxed);
        piece
            .lost_pages
            .store(self.lost_pages.load(Relaxed), Relaxed);
        // Allocated first, so no failure can drop the lines moved here.
        let (lo, hi) = self.lines_of(addr, len);
        self.index
            .take(lo, hi, &mut |f, n| piece.index.mark(f - lo, f - lo + n));
        Ok(piece)
    }
}

// ---------------------------------------------------------------------------------
// DAX_TRACK_UFFD's descriptors, held by the mapping (uffd.rs arms and collects)

/// A mapping's two descriptors: its userfaultfd (the registration lives as long as it
/// is open) and its /proc/self/pagemap (only valid in the process that opened it).
/// Shared by the pieces of a split mapping (the memory stays registered with the same
/// userfaultfd), so a split opens no descriptor; closed with the last piece.
struct Fds {
    uffd: i32,
    pagemap: i32,
}

impl Drop for Fds {
    fn drop(&mut self) {
        sys::close(self.uffd);
        sys::close(self.pagemap);
    }
}

/// The userfaultfd state of one mapping. All fields are atomics: `uffd::arm` and
/// `uffd::collect` run under the mapping's sync lock, the fork callback in a single-threaded child.
pub struct UffdState {
    /// Our descriptors: an `Arc<Fds>` as a raw pointer (null: none), replaced only under
    /// the mapping's sync lock (arm, rearm, piece) and released by drop.
    fds: AtomicPtr<Fds>,
    /// The process that armed the state.
    pub(crate) pid: AtomicI32,
    /// Set once arming was attempted (a piece of a split mapping inherits it).
    pub(crate) armed: AtomicBool,
    /// Set in a forked child: the descriptors above belong to the parent.
    pub(crate) stale: AtomicBool,
    /// Re-arming failed: every collection marks its whole range.
    pub(crate) degraded: AtomicBool,
}

impl Default for UffdState {
    fn default() -> UffdState {
        UffdState {
            fds: AtomicPtr::new(std::ptr::null_mut()),
            pid: AtomicI32::new(0),
            armed: AtomicBool::new(false),
            stale: AtomicBool::new(false),
            degraded: AtomicBool::new(false),
        }
    }
}

impl Drop for UffdState {
    fn drop(&mut self) {
        self.set_fds(None);
    }
}

impl UffdState {
    /// The state of a piece of a split mapping (under the whole's sync lock): the memory
    /// stays registered with the same userfaultfd, whose descriptors the piece shares
    /// (no new descriptor: a split cannot fail for want of one), and the written bits
    /// still in the page tables are collected by the piece.
    pub fn piece(&self) -> UffdState {
        let p = self.fds.load(SeqCst);
        if !p.is_null() {
            // SAFETY: p is a live Arc<Fds> this state holds; the piece takes a reference.
            unsafe { Arc::increment_strong_count(p) };
        }
        UffdState {
            fds: AtomicPtr::new(p),
            pid: AtomicI32::new(self.pid.load(SeqCst)),
            armed: AtomicBool::new(self.armed.load(SeqCst)),
            stale: AtomicBool::new(self.stale.load(SeqCst)),
            degraded: AtomicBool::new(self.degraded.load(SeqCst)),
        }
    }

    /// Replace the descriptors (None: drop this state's reference to them).
    pub(crate) fn set_fds(&self, fds: Option<(i32, i32)>) {
        let new = fds.map_or(std::ptr::null_mut(), |(uffd, pagemap)| {
            Arc::into_raw(Arc::new(Fds { uffd, pagemap })) as *mut Fds
        });
        let old = self.fds.swap(new, SeqCst);
        if !old.is_null() {
            // SAFETY: old was this state's reference (from Arc::into_raw).
            drop(unsafe { Arc::from_raw(old) });
        }
    }

    /// The pagemap descriptor (-1: none).
    pub(crate) fn pagemap(&self) -> i32 {
        let p = self.fds.load(SeqCst);
        if p.is_null() {
            -1
        } else {
            // SAFETY: a non-null p is a live Arc<Fds> this state holds.
            unsafe { (*p).pagemap }
        }
    }

    /// In a forked child (async-signal-safe: one store): the descriptors belong to the
    /// parent's registration and page tables; the next collection re-arms.
    pub fn after_fork_child(&self) {
        self.stale.store(true, SeqCst);
    }
}
