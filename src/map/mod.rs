//! A mapping as plain data: the `Mapping` (its memory, index, mark log, locks, counters
//! and tracking state) and what it is made of. What needs the registry, the tracking
//! modes, the signal handlers or the sync lives in the layers above
//! (docs/architecture.md); the concerns of getting a mapping live in the submodules:
//! [`open`] opens, creates and checks files and descriptors, [`probe`] finds out what a
//! file is (DAX, MAP_SYNC) and what the kernel maps huge, [`devdax`] device DAX,
//! [`place`] places and maps a file, [`adopt`] checks and takes a caller's mapping,
//! [`uffd_state`] holds DAX_TRACK_UFFD's descriptors.

mod adopt;
mod devdax;
mod open;
mod place;
mod probe;
mod uffd_state;

pub use adopt::{adopted, probe_adopt};
pub use devdax::devdax_geometry;
pub use open::{check_fd, check_fd_flags, check_fd_range, fd_len, open_path};
pub use place::map_probed;
pub use probe::{file_is_dax, huge_mapped_bytes, map_sync_works, probe_fd, Probe};
pub use uffd_state::UffdState;

use crate::cpu;
use crate::dirty::DirtyIndex;
use crate::error::{Error, Result};
use crate::lock::{Mutex, SpinLock};
use crate::sys;
use std::sync::atomic::{
    AtomicBool, AtomicI32, AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst,
};

/// Flags of `dax_map` / `dax_map_fd` (the C constants have the same values).
pub(crate) const CREATE: u32 = 1;
pub(crate) const EXCL: u32 = 2;
pub(crate) const SPARSE: u32 = 4;
pub(crate) const POPULATE: u32 = 8;
/// Tracking modes live in bits 8..11.
pub(crate) const TRACK_SHIFT: u32 = 8;
pub(crate) const TRACK_MASK: u32 = 0xF << TRACK_SHIFT;
pub(crate) const VALID_FLAGS: u32 = CREATE | EXCL | SPARSE | POPULATE | TRACK_MASK;

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
    /// The memory, unmapped by Drop while `owns_memory`: private, so that no code outside
    /// this module can point Drop's munmap at anything else.
    addr: usize,
    len: usize,
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
    pub dead: AtomicBool,
    /// dax_memcpy / dax_memset calls writing into the memory now (handle::Copying).
    pub copies: std::sync::atomic::AtomicU32,
    /// Whether dropping the mapping unmaps its memory (false once its range was handed
    /// to the pieces of a split, or unmapped by the caller).
    owns_memory: AtomicBool,
    /// DAX_TRACK_UFFD: the mapping's userfaultfd and pagemap descriptors.
    pub uffd: UffdState,
    /// A write-back of this mapping failed (sticky until unmap: every later sync fails
    /// with EIO): FAILED_MSYNC, FAILED_LOST_PAGES, FAILED_FORK bits; see `failure`.
    pub failed: AtomicU32,
    /// The errno of the first failed msync / fdatasync.
    pub failed_errno: AtomicI32,
    /// Pages the SIGBUS handler replaced because the file no longer backed them.
    pub lost_pages: AtomicU64,
    /// The lowest of them (usize::MAX: none): a write from there on may land on a
    /// replaced page, where it is lost without a fault (`handle::write_in`).
    pub lost_from: AtomicUsize,
    /// The thread (`lock::self_id`) writing the mapping back right now (under the
    /// sync lock), 0 for none: a SIGBUS on that thread in the mapping is a lost page.
    pub writer: AtomicUsize,
    /// Its registry slot and generation (`rings::id_of`), 0 until registered: a sync
    /// takes the entries the per-thread mark rings hold for it (rings.rs).
    pub reg_id: AtomicU64,
}

/// The error of a call that needs a mapping's sync lock while this thread holds it
/// already: it was made from a signal handler that interrupted a sync (or another call
/// holding the lock) on the same thread. Waiting would wait forever.
/// Static text: making and recording it never allocates (the handler may have
/// interrupted the allocator). Out of line and cold, as the formatting version was.
#[cold]
#[inline(never)]
pub fn reentered(what: &'static str) -> Error {
    Error::at(
        libc::EDEADLK,
        what,
        "re-entered from a signal handler that interrupted a call holding this \
         mapping's sync lock on the same thread (not async-signal-safe)",
    )
}

/// Writable runs that DAX_TRACK_MPROTECT faults opened in the whole process (track.rs
/// opens larger runs past its bounds). Here, so that a mapping dropped with runs open
/// gives them back (`Drop`): a mapping closed or unmapped between a fault and its next
/// sync (faults on a retired mapping a copy is still inside, too) kept them counted
/// for the rest of the process, and every later fault opened 2 MiB or whole mappings.
pub(crate) static OPEN_RUNS: AtomicUsize = AtomicUsize::new(0);

/// `Mapping::failed` bits.
pub(crate) const FAILED_MSYNC: u32 = 1;
pub(crate) const FAILED_LOST_PAGES: u32 = 2;
pub(crate) const FAILED_FORK: u32 = 4;

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
    /// Mark-log entries a ranged sync took that lie outside its range (sync.rs).
    pub spill: crate::order::Spill,
}

impl Mapping {
    /// The address of the first byte of the mapping.
    #[inline]
    pub fn addr(&self) -> usize {
        self.addr
    }

    /// The length of the mapping in bytes (never 0).
    #[inline]
    #[allow(clippy::len_without_is_empty)] // a mapping is never empty
    pub fn len(&self) -> usize {
        self.len
    }

    /// Give up the memory: dropping the mapping no longer unmaps it (its range was
    /// handed to the pieces of a split, or back to the caller).
    pub fn disown_memory(&self) {
        self.owns_memory.store(false, SeqCst);
    }

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

    /// Record a failed msync / fdatasync: every later sync fails (`failure`).
    pub fn note_write_back_failure(&self, errno: i32) {
        let _ = self
            .failed_errno
            .compare_exchange(0, errno, Relaxed, Relaxed);
        self.failed.fetch_or(FAILED_MSYNC, Relaxed);
    }

    /// Record a page the file no longer backs (async-signal-safe: the SIGBUS handler).
    pub fn note_lost_page(&self, page: usize) {
        self.lost_pages.fetch_add(1, Relaxed);
        self.lost_from.fetch_min(page, Relaxed);
        self.failed.fetch_or(FAILED_LOST_PAGES, Relaxed);
    }

    /// Record, in a forked child, lines another thread's sync held at the fork that could
    /// not be read back (`sync::salvage_after_fork`): every later sync fails.
    pub fn note_fork_loss(&self) {
        self.failed.fetch_or(FAILED_FORK, Relaxed);
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
        if f & FAILED_FORK != 0 {
            msg += " this process was forked while another thread's sync of it held dirty lines, and they could not all be read back in this child;";
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
        let open = self.faults_since_protect.load(SeqCst);
        if open != 0 {
            let _ = OPEN_RUNS.fetch_update(SeqCst, SeqCst, |v| Some(v.saturating_sub(open)));
        }
        if self.owns_memory.load(SeqCst) {
            // SAFETY: the mapping is ours and no handle or registry entry refers to it
            // any more (this is the last reference).
            let _ = unsafe { sys::munmap(self.addr, self.len) };
        }
    }
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
            owns_memory: AtomicBool::new(true),
            uffd,
            failed: AtomicU32::new(0),
            failed_errno: AtomicI32::new(0),
            lost_pages: AtomicU64::new(0),
            lost_from: AtomicUsize::new(usize::MAX),
            writer: AtomicUsize::new(0),
            reg_id: AtomicU64::new(0),
        })
    }
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
        piece
            .lost_from
            .store(self.lost_from.load(Relaxed), Relaxed);
        // Allocated first, so no failure can drop the lines moved here.
        self.move_lines_to(&piece);
        Ok(piece)
    }

    /// Move the dirty lines of this mapping's index that lie in `piece` (a part of it,
    /// from `piece`) into the piece's index.
    pub fn move_lines_to(&self, piece: &Mapping) {
        let (lo, hi) = self.lines_of(piece.addr, piece.len);
        self.index
            .take(lo, hi, &mut |f, n| piece.index.mark(f - lo, f - lo + n));
    }
}
