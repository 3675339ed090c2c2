//! The Rust API: [`MapOptions`], [`DaxMap`], [`Track`], [`Stats`], the primitives on
//! slices, and read-only reports ([`cpu_info`], [`probe_file`]).
//!
//! A [`DaxMap`] holds what a C `dax_map_t *` is: the registry slot of its mapping and
//! that slot's generation (handle.rs). Every method goes through `handle::get`, as
//! every C call does, so a method racing `close` (or the drop, or a `munmap` of the
//! range through the preload library) on another thread either completes on the
//! still-mapped memory or fails with `EBADF`: never touches unmapped memory.
//!
//! The C layer (ffi/) is built on this module only: on [`MapOptions`] and [`DaxMap`],
//! through [`MapHandle`] (a C handle given the same methods, with the C function's name
//! for the messages), and on the hooks in [`hooks`].

use crate::error::{Error, Result};
use crate::handle::{self, Handle};
use crate::map::{self, Mapping};
use crate::registry::{self, Ref};
use std::ffi::CStr;
use std::ops::{Bound, RangeBounds};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::sync::atomic::Ordering::Relaxed;

// ---------------------------------------------------------------------------------
// Track

/// How the dirty data of a mapping is found: what a sync writes back.
///
/// ```
/// use daxpmem::{MapOptions, Track};
/// # fn main() -> Result<(), daxpmem::Error> {
/// let path = std::env::temp_dir().join(format!("daxpmem-doc-track-{}", std::process::id()));
/// let m = MapOptions::new().create(1 << 16).track(Track::Kernel).open(&path)?;
/// assert_eq!(m.track_mode(), Track::Kernel);
/// # drop(m); std::fs::remove_file(&path).unwrap();
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Track {
    /// Only what is marked through the API counts: [`DaxMap::write`], [`DaxMap::fill`],
    /// [`DaxMap::mark`]. The cheapest mode, and the default.
    #[default]
    Explicit,
    /// The mapping is kept read-only between syncs; the first store to a page after a
    /// sync faults and is recorded (a SIGSEGV handler that passes other faults on).
    /// Refused on DAX (`EOPNOTSUPP`) unless `DAXPMEM_ALLOW_MPROTECT_ON_DAX=1`; the
    /// limits of write-protection are those of `DAX_TRACK_MPROTECT` (`dax_map(3)`):
    /// e.g. a `read(2)` into a tracked page not stored to since the last sync fails
    /// with `EFAULT`.
    Mprotect,
    /// userfaultfd write-protect collected with `PAGEMAP_SCAN` (kernel 6.7 and later);
    /// refused with `EOPNOTSUPP` on DAX and where the self-test fails.
    Uffd,
    /// The kernel's own `msync` of the synced range (plus the write-back of explicit
    /// marks on pmem).
    Kernel,
    /// The best mode proven correct for this mapping on this kernel (today
    /// [`Track::Kernel`] everywhere). [`DaxMap::track_mode`] says which.
    Auto,
}

impl Track {
    /// The mode's name: `"explicit"`, `"mprotect"`, `"uffd"`, `"kernel"` or `"auto"`.
    ///
    /// ```
    /// assert_eq!(daxpmem::Track::Uffd.name(), "uffd");
    /// ```
    pub fn name(self) -> &'static str {
        self.core().name()
    }

    pub(crate) fn core(self) -> map::Track {
        match self {
            Track::Explicit => map::Track::Explicit,
            Track::Mprotect => map::Track::Mprotect,
            Track::Uffd => map::Track::Uffd,
            Track::Kernel => map::Track::Kernel,
            Track::Auto => map::Track::Auto,
        }
    }

    pub(crate) fn of_core(t: map::Track) -> Track {
        match t {
            map::Track::Explicit => Track::Explicit,
            map::Track::Mprotect => Track::Mprotect,
            map::Track::Uffd => Track::Uffd,
            map::Track::Kernel => Track::Kernel,
            map::Track::Auto => Track::Auto,
        }
    }

    /// The mode's bits in the C flags (`DAX_TRACK_*`).
    pub(crate) fn flags(self) -> u32 {
        (self.core() as u32) << map::TRACK_SHIFT
    }
}

// ---------------------------------------------------------------------------------
// MapOptions

/// How to open and map a file: the builder of a [`DaxMap`].
///
/// The options are those of C's `dax_map(path, len, flags, mode)`: [`create`] is
/// `DAX_CREATE` with its length, [`exclusive`] `DAX_EXCL`, [`sparse`] `DAX_SPARSE`,
/// [`populate`] `DAX_POPULATE`, [`track`] one `DAX_TRACK_*` mode.
///
/// [`create`]: MapOptions::create
/// [`exclusive`]: MapOptions::exclusive
/// [`sparse`]: MapOptions::sparse
/// [`populate`]: MapOptions::populate
/// [`track`]: MapOptions::track
///
/// ```
/// use daxpmem::{MapOptions, Track};
/// # fn main() -> Result<(), daxpmem::Error> {
/// let path = std::env::temp_dir().join(format!("daxpmem-doc-opts-{}", std::process::id()));
/// let m = MapOptions::new()
///     .create(1 << 20)
///     .exclusive(true)
///     .sparse(false)
///     .populate(false)
///     .mode(0o600)
///     .track(Track::Explicit)
///     .open(&path)?;
/// assert_eq!(m.len(), 1 << 20);
/// // The file exists now: exclusive creation fails with EEXIST.
/// let e = MapOptions::new().create(1 << 20).exclusive(true).open(&path).unwrap_err();
/// assert_eq!(e.raw_os_error(), Some(libc::EEXIST));
/// // Without create, map what is there (length 0: the whole file).
/// let again = MapOptions::new().open(&path)?;
/// assert_eq!(again.len(), 1 << 20);
/// # drop((m, again)); std::fs::remove_file(&path).unwrap();
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct MapOptions {
    flags: u32,
    len: usize,
    mode: u32,
}

impl Default for MapOptions {
    fn default() -> Self {
        MapOptions::new()
    }
}

impl MapOptions {
    /// Map an existing file, whole, with [`Track::Explicit`]; a file created later gets
    /// mode `0o666` (less the umask), as `std::fs::File::create`.
    ///
    /// ```
    /// let o = daxpmem::MapOptions::new();
    /// # let _ = o;
    /// ```
    pub fn new() -> Self {
        MapOptions {
            flags: 0,
            len: 0,
            mode: 0o666,
        }
    }

    /// Create the file if it is missing and grow it to `len` bytes if it is smaller
    /// (never shrink it); map `len` bytes. `len` must not be 0.
    ///
    /// ```
    /// # fn main() -> Result<(), daxpmem::Error> {
    /// # let path = std::env::temp_dir().join(format!("daxpmem-doc-create-{}", std::process::id()));
    /// let m = daxpmem::MapOptions::new().create(4096).open(&path)?;
    /// assert_eq!(std::fs::metadata(&path).unwrap().len(), 4096);
    /// # drop(m); std::fs::remove_file(&path).unwrap();
    /// # Ok(()) }
    /// ```
    pub fn create(mut self, len: usize) -> Self {
        self.flags |= map::CREATE;
        self.len = len;
        self
    }

    /// The length to map: without [`create`](MapOptions::create), at most the file's
    /// size (0, the default, maps the whole file, or from the offset to its end for
    /// [`open_fd`](MapOptions::open_fd)).
    ///
    /// ```
    /// # fn main() -> Result<(), daxpmem::Error> {
    /// # let path = std::env::temp_dir().join(format!("daxpmem-doc-len-{}", std::process::id()));
    /// std::fs::write(&path, vec![0u8; 8192]).unwrap();
    /// let m = daxpmem::MapOptions::new().len(4096).open(&path)?;
    /// assert_eq!(m.len(), 4096);
    /// # drop(m); std::fs::remove_file(&path).unwrap();
    /// # Ok(()) }
    /// ```
    pub fn len(mut self, len: usize) -> Self {
        self.len = len;
        self
    }

    fn flag(mut self, bit: u32, on: bool) -> Self {
        if on {
            self.flags |= bit;
        } else {
            self.flags &= !bit;
        }
        self
    }

    /// With [`create`](MapOptions::create): fail with `EEXIST` if the file exists.
    ///
    /// ```
    /// let o = daxpmem::MapOptions::new().create(4096).exclusive(true);
    /// # let _ = o;
    /// ```
    pub fn exclusive(self, on: bool) -> Self {
        self.flag(map::EXCL, on)
    }

    /// With [`create`](MapOptions::create): grow the file with `ftruncate` instead of
    /// allocating its blocks up front.
    ///
    /// ```
    /// let o = daxpmem::MapOptions::new().create(1 << 30).sparse(true);
    /// # let _ = o;
    /// ```
    pub fn sparse(self, on: bool) -> Self {
        self.flag(map::SPARSE, on)
    }

    /// Prefault the mapping (`MAP_POPULATE`).
    ///
    /// ```
    /// let o = daxpmem::MapOptions::new().populate(true);
    /// # let _ = o;
    /// ```
    pub fn populate(self, on: bool) -> Self {
        self.flag(map::POPULATE, on)
    }

    /// The permission bits of a file [`create`](MapOptions::create) makes (less the
    /// umask).
    ///
    /// ```
    /// let o = daxpmem::MapOptions::new().create(4096).mode(0o600);
    /// # let _ = o;
    /// ```
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    /// How dirty data is found (default [`Track::Explicit`]).
    ///
    /// ```
    /// let o = daxpmem::MapOptions::new().track(daxpmem::Track::Auto);
    /// # let _ = o;
    /// ```
    pub fn track(mut self, t: Track) -> Self {
        self.flags = (self.flags & !map::TRACK_MASK) | t.flags();
        self
    }

    /// Open (or create) the file at `path` and map it, read-write and shared: with
    /// `MAP_SYNC` where the filesystem is DAX, at a 2 MiB-aligned address (1 GiB from 2
    /// GiB up) so the kernel can map huge pages. Also maps device DAX (`/dev/daxN.M`).
    /// The file is closed before this returns: the mapping keeps no descriptor.
    ///
    /// Errors (as `dax_map(3)`): `EINVAL` (a NUL byte in the path, `exclusive` or
    /// `sparse` without `create`, `create(0)`, an empty file and no length, a length
    /// beyond the end of the file, not a regular file or device DAX), `EEXIST`,
    /// `ENOENT`, `EISDIR`, `EACCES`, `ENOSPC`, `EOPNOTSUPP` (a tracking mode unavailable
    /// here), `ENOMEM`.
    ///
    /// ```
    /// # fn main() -> Result<(), daxpmem::Error> {
    /// let path = std::env::temp_dir().join(format!("daxpmem-doc-open-{}", std::process::id()));
    /// let m = daxpmem::MapOptions::new().create(1 << 16).open(&path)?;
    /// # drop(m); std::fs::remove_file(&path).unwrap();
    /// let e = daxpmem::MapOptions::new().open(&path).unwrap_err();
    /// assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
    /// # Ok(()) }
    /// ```
    pub fn open(&self, path: impl AsRef<std::path::Path>) -> Result<DaxMap> {
        use std::os::unix::ffi::OsStrExt;
        let p = std::ffi::CString::new(path.as_ref().as_os_str().as_bytes()).map_err(|_| {
            Error::inval(format!(
                "{}: the path contains a NUL byte",
                path.as_ref().display()
            ))
        })?;
        self.open_cstr(&p)
    }

    /// `open` of a C path (dax_map).
    pub(crate) fn open_cstr(&self, p: &CStr) -> Result<DaxMap> {
        let (fd, n) = map::open_path(p, self.len, self.flags, self.mode as libc::mode_t)?;
        let name = format!("map {}", p.to_string_lossy());
        let m = handle::map_fd(
            fd.as_fd(),
            0,
            n,
            self.flags & !(map::CREATE | map::EXCL | map::SPARSE),
            &name,
        )?;
        DaxMap::register(m)
    }

    /// Map the open file or device DAX `fd` from `offset` (a multiple of the page
    /// size): [`len`](MapOptions::len) bytes, or to the end of the file when it is 0.
    /// The descriptor must be open read-write; it is only looked at (not duplicated or
    /// kept), so it may be closed as soon as this returns. [`create`],
    /// [`exclusive`](MapOptions::exclusive) and [`sparse`](MapOptions::sparse) do not
    /// apply (`EINVAL`).
    ///
    /// Errors (as `dax_map_fd(3)`): `EINVAL` (a range beyond the end of the file, a
    /// character device that is not device DAX, not a regular file, an unaligned
    /// offset), `EACCES` (not open read-write), `EBADF`.
    ///
    /// [`create`]: MapOptions::create
    ///
    /// ```
    /// # fn main() -> Result<(), daxpmem::Error> {
    /// let path = std::env::temp_dir().join(format!("daxpmem-doc-fd-{}", std::process::id()));
    /// let f = std::fs::OpenOptions::new().read(true).write(true).create(true).open(&path).unwrap();
    /// f.set_len(3 * 4096).unwrap();
    /// let m = daxpmem::MapOptions::new().open_fd(&f, 4096)?;
    /// drop(f); // the mapping keeps no descriptor
    /// assert_eq!(m.len(), 2 * 4096);
    /// # drop(m); std::fs::remove_file(&path).unwrap();
    /// # Ok(()) }
    /// ```
    pub fn open_fd(&self, fd: &impl AsFd, offset: u64) -> Result<DaxMap> {
        self.check_fd_flags()?;
        let fd = map::check_fd(fd.as_fd().as_raw_fd(), "map fd")?;
        self.map_checked_fd(fd, offset)
    }

    /// The flags `open_fd` accepts.
    pub(crate) fn check_fd_flags(&self) -> Result<()> {
        map::check_fd_flags(self.flags)
    }

    /// `open_fd` of a descriptor `map::check_fd` accepted (dax_map_fd).
    pub(crate) fn map_checked_fd(&self, fd: BorrowedFd<'_>, offset: u64) -> Result<DaxMap> {
        self.check_fd_flags()?;
        let n = if self.len == 0 {
            map::fd_len(fd, offset)?
        } else {
            self.len
        };
        map::check_fd_range(fd, offset, n)?;
        DaxMap::register(handle::map_fd(fd, offset, n, self.flags, "map fd")?)
    }

    /// The options of C flags (`DAX_*`), a length and a mode: checked by `open`.
    pub(crate) fn from_c(flags: u32, len: usize, mode: u32) -> Self {
        MapOptions { flags, len, mode }
    }
}

/// Adopt `[addr, addr+len)`, a shared mapping of `fd` at `offset` the caller made
/// (`dax_adopt`, `DaxMap::from_mmap`): refused with EEXIST where it overlaps a daxpmem
/// mapping, else checked against what the kernel maps there (map::adopt).
/// `fd` is checked (open, read-write) after the overlap.
pub(crate) fn adopt(
    addr: usize,
    len: usize,
    fd: std::os::fd::RawFd,
    offset: u64,
    flags: u32,
    mapped_sync: bool,
) -> Result<DaxMap> {
    if let Some(end) = addr.checked_add(len) {
        if registry::find_overlap(addr, end).is_some() {
            return Err(Error::new(
                libc::EEXIST,
                format!("{addr:#x}+{len} overlaps a daxpmem mapping"),
            ));
        }
    }
    let fd = map::check_fd(fd, "adopt")?;
    DaxMap::register(handle::adopt(addr, len, fd, offset, flags, mapped_sync)?)
}

// ---------------------------------------------------------------------------------
// DaxMap

/// A mapped file (or device DAX) with a dirty index: what was written is made durable
/// by [`sync`](DaxMap::sync) in time that follows the dirty data, not the mapping size.
///
/// `DaxMap` is `Send` and `Sync`: any method may race any other on other threads,
/// [`close`](DaxMap::close) included (a method racing it completes on the mapped
/// memory or fails with `EBADF`). Offsets and ranges are checked (`EINVAL` outside the
/// mapping). The bytes are shared with the file, with other mappings of it and with
/// other processes, so Rust references to them are `unsafe`
/// ([`as_slice`](DaxMap::as_slice), [`as_mut_slice`](DaxMap::as_mut_slice)); the safe
/// way is [`write`](DaxMap::write), [`fill`](DaxMap::fill) and [`read`](DaxMap::read),
/// which copy (concurrent overlapping copies leave either's bytes, as concurrent
/// `pwrite`s to a file would).
///
/// Dropping a `DaxMap` unmaps it without a sync (what was not synced is left to the
/// kernel's write-back, as after `munmap`); [`close`](DaxMap::close) syncs first.
///
/// ```
/// use daxpmem::MapOptions;
/// # fn main() -> Result<(), daxpmem::Error> {
/// let path = std::env::temp_dir().join(format!("daxpmem-doc-daxmap-{}", std::process::id()));
/// let m = MapOptions::new().create(1 << 20).open(&path)?;
/// m.write(4096, b"record 1")?;
/// // Or write through the pointer, then mark what was written:
/// // SAFETY: inside the mapping, and nothing else writes there now.
/// unsafe { m.as_ptr().add(8192).write_bytes(7, 100) };
/// m.mark(8192..8192 + 100)?;
/// m.sync()?;
/// let mut back = [0u8; 8];
/// m.read(4096, &mut back)?;
/// assert_eq!(&back, b"record 1");
/// m.close()?;
/// # std::fs::remove_file(&path).unwrap();
/// # Ok(()) }
/// ```
pub struct DaxMap {
    h: MapHandle,
    // Fixed for the life of the handle.
    addr: usize,
    len: usize,
    pmem: bool,
    track: Track,
}

impl std::fmt::Debug for DaxMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DaxMap")
            .field("addr", &(self.addr as *const u8))
            .field("len", &self.len)
            .field("pmem", &self.pmem)
            .field("track", &self.track)
            .finish()
    }
}

impl Drop for DaxMap {
    fn drop(&mut self) {
        // EBADF after close (or an unmap from elsewhere): nothing left to do.
        let _ = handle::unmap(self.h.raw());
    }
}

/// The range `r` of a mapping of `len` bytes as (start, length), checked.
fn bounds(what: &'static str, r: impl RangeBounds<usize>, len: usize) -> Result<(usize, usize)> {
    let start = match r.start_bound() {
        Bound::Included(&s) => Some(s),
        Bound::Excluded(&s) => s.checked_add(1),
        Bound::Unbounded => Some(0),
    };
    let end = match r.end_bound() {
        Bound::Included(&e) => e.checked_add(1),
        Bound::Excluded(&e) => Some(e),
        Bound::Unbounded => Some(len),
    };
    match (start, end) {
        (Some(s), Some(e)) if s <= e && e <= len => Ok((s, e - s)),
        _ => Err(outside(what)),
    }
}

fn outside(what: &'static str) -> Error {
    Error::at(libc::EINVAL, what, "the range is not inside the mapping")
}

impl DaxMap {
    /// Register a new mapping (and arm its tracking: every mode works the same from
    /// Rust and from C).
    fn register(m: Mapping) -> Result<DaxMap> {
        let (addr, len, pmem, track) = (m.addr(), m.len(), m.pmem, Track::of_core(m.track));
        let h = MapHandle(handle::new(m)? as usize);
        Ok(DaxMap {
            h,
            addr,
            len,
            pmem,
            track,
        })
    }

    /// The C handle; the mapping is the caller's to unmap (`dax_unmap`).
    pub(crate) fn into_handle(self) -> *mut Handle {
        let h = self.h.raw();
        std::mem::forget(self);
        h
    }

    /// The length of the mapping in bytes.
    ///
    /// ```
    /// # fn main() -> Result<(), daxpmem::Error> {
    /// # let path = std::env::temp_dir().join(format!("daxpmem-doc-len2-{}", std::process::id()));
    /// let m = daxpmem::MapOptions::new().create(12345).open(&path)?;
    /// assert_eq!(m.len(), 12345);
    /// # drop(m); std::fs::remove_file(&path).unwrap();
    /// # Ok(()) }
    /// ```
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: a mapping has at least one byte.
    ///
    /// ```
    /// # fn main() -> Result<(), daxpmem::Error> {
    /// # let path = std::env::temp_dir().join(format!("daxpmem-doc-empty-{}", std::process::id()));
    /// let m = daxpmem::MapOptions::new().create(1).open(&path)?;
    /// assert!(!m.is_empty());
    /// # drop(m); std::fs::remove_file(&path).unwrap();
    /// # Ok(()) }
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether a user-space write-back makes this mapping's data durable (`MAP_SYNC` on
    /// a DAX filesystem, device DAX, or forced with `DAXPMEM_FORCE_PMEM=1`); if not, a
    /// sync is an `msync` of the dirty span.
    ///
    /// ```
    /// # fn main() -> Result<(), daxpmem::Error> {
    /// # let path = std::env::temp_dir().join(format!("daxpmem-doc-pmem-{}", std::process::id()));
    /// let m = daxpmem::MapOptions::new().create(4096).open(&path)?;
    /// println!("pmem: {}", m.is_pmem()); // false on tmpfs or ext4 without DAX
    /// # drop(m); std::fs::remove_file(&path).unwrap();
    /// # Ok(()) }
    /// ```
    pub fn is_pmem(&self) -> bool {
        self.pmem
    }

    /// The tracking mode in effect ([`Track::Auto`] already resolved).
    ///
    /// ```
    /// # fn main() -> Result<(), daxpmem::Error> {
    /// # let path = std::env::temp_dir().join(format!("daxpmem-doc-tm-{}", std::process::id()));
    /// let m = daxpmem::MapOptions::new().create(4096).track(daxpmem::Track::Auto).open(&path)?;
    /// assert_ne!(m.track_mode(), daxpmem::Track::Auto);
    /// # drop(m); std::fs::remove_file(&path).unwrap();
    /// # Ok(()) }
    /// ```
    pub fn track_mode(&self) -> Track {
        self.track
    }

    /// The address of the first byte. Valid until the map is closed or dropped. Writes
    /// through it are found by the next sync when they are [marked](DaxMap::mark) (or,
    /// with [`Track::Mprotect`], [`Track::Uffd`], [`Track::Kernel`], without).
    ///
    /// ```
    /// # fn main() -> Result<(), daxpmem::Error> {
    /// # let path = std::env::temp_dir().join(format!("daxpmem-doc-ptr-{}", std::process::id()));
    /// let m = daxpmem::MapOptions::new().create(4096).open(&path)?;
    /// // SAFETY: offset 10 is inside the mapping, which is open.
    /// unsafe { *m.as_ptr().add(10) = 42 };
    /// m.mark(10..11)?;
    /// m.sync()?;
    /// # drop(m); std::fs::remove_file(&path).unwrap();
    /// # Ok(()) }
    /// ```
    pub fn as_ptr(&self) -> *mut u8 {
        self.addr as *mut u8
    }

    /// The mapped bytes.
    ///
    /// # Safety
    /// The map must stay open (not closed or dropped) while the slice lives, the file
    /// must not be shrunk under it (a read past its end raises SIGBUS), and no one
    /// (another thread, process or mapping of the file) may write the bytes meanwhile.
    ///
    /// ```
    /// # fn main() -> Result<(), daxpmem::Error> {
    /// # let path = std::env::temp_dir().join(format!("daxpmem-doc-slice-{}", std::process::id()));
    /// let m = daxpmem::MapOptions::new().create(4096).open(&path)?;
    /// m.write(0, b"abc")?;
    /// // SAFETY: open, not shrunk, and nothing writes it while `s` lives.
    /// let s = unsafe { m.as_slice() };
    /// assert_eq!(&s[..3], b"abc");
    /// # drop(m); std::fs::remove_file(&path).unwrap();
    /// # Ok(()) }
    /// ```
    pub unsafe fn as_slice(&self) -> &[u8] {
        // SAFETY: the mapping is `len` bytes at `addr` (non-NULL, mapped while open per
        // the contract), and not written meanwhile (the contract).
        unsafe { std::slice::from_raw_parts(self.addr as *const u8, self.len) }
    }

    /// The mapped bytes, writable. Writes through it count for a sync once
    /// [marked](DaxMap::mark) (or tracked).
    ///
    /// # Safety
    /// As [`as_slice`](DaxMap::as_slice), and nothing else may read or write the bytes
    /// while the slice lives (this includes a second `as_mut_slice`).
    ///
    /// ```
    /// # fn main() -> Result<(), daxpmem::Error> {
    /// # let path = std::env::temp_dir().join(format!("daxpmem-doc-mslice-{}", std::process::id()));
    /// let m = daxpmem::MapOptions::new().create(4096).open(&path)?;
    /// // SAFETY: open, not shrunk, and this is the only access while `s` lives.
    /// let s = unsafe { m.as_mut_slice() };
    /// s[100..104].copy_from_slice(b"wxyz");
    /// m.mark(100..104)?;
    /// m.sync()?;
    /// # drop(m); std::fs::remove_file(&path).unwrap();
    /// # Ok(()) }
    /// ```
    #[allow(clippy::mut_from_ref)] // shared memory: exclusivity is the caller's contract
    pub unsafe fn as_mut_slice(&self) -> &mut [u8] {
        // SAFETY: as `as_slice`; exclusive per the contract.
        unsafe { std::slice::from_raw_parts_mut(self.addr as *mut u8, self.len) }
    }

    /// Copy `data` into the mapping at `offset` and mark it for the next sync (on pmem
    /// the body is written with non-temporal stores and needs only the sync's fence).
    ///
    /// Errors: `EINVAL` (the range is not inside the mapping), `EBADF` (closed), `EIO`
    /// (part of it lies past the end of a file shrunk under the mapping: that part is
    /// lost, and every later sync fails).
    ///
    /// ```
    /// # fn main() -> Result<(), daxpmem::Error> {
    /// # let path = std::env::temp_dir().join(format!("daxpmem-doc-write-{}", std::process::id()));
    /// let m = daxpmem::MapOptions::new().create(4096).open(&path)?;
    /// m.write(100, b"hello")?;
    /// assert!(m.write(4094, b"hello").is_err()); // past the end: an error, not UB
    /// # drop(m); std::fs::remove_file(&path).unwrap();
    /// # Ok(()) }
    /// ```
    pub fn write(&self, offset: usize, data: &[u8]) -> Result<()> {
        self.h.with("write", |m| {
            let (o, n) = bounds("write", offset..offset.saturating_add(data.len()), m.len())?;
            // SAFETY: the destination is inside the mapping (checked); data is readable.
            unsafe { copy_into(m, "write", m.addr() + o, data.as_ptr(), n) }
        })
    }

    /// Fill `len` bytes at `offset` with `val` and mark them, as
    /// [`write`](DaxMap::write).
    ///
    /// ```
    /// # fn main() -> Result<(), daxpmem::Error> {
    /// # let path = std::env::temp_dir().join(format!("daxpmem-doc-fill-{}", std::process::id()));
    /// let m = daxpmem::MapOptions::new().create(4096).open(&path)?;
    /// m.fill(0, 0xff, 4096)?;
    /// m.sync()?;
    /// # drop(m); std::fs::remove_file(&path).unwrap();
    /// # Ok(()) }
    /// ```
    pub fn fill(&self, offset: usize, val: u8, len: usize) -> Result<()> {
        self.h.with("fill", |m| {
            let (o, n) = bounds("fill", offset..offset.saturating_add(len), m.len())?;
            // SAFETY: inside the mapping (checked).
            unsafe { fill_into(m, "fill", m.addr() + o, val, n) }
        })
    }

    /// Copy `buf.len()` bytes from the mapping at `offset` into `buf`.
    ///
    /// Errors: `EINVAL` (outside the mapping), `EBADF` (closed), `EIO` (part of it lies
    /// past the end of a file shrunk under the mapping: it reads as zeros, and every
    /// later sync fails).
    ///
    /// ```
    /// # fn main() -> Result<(), daxpmem::Error> {
    /// # let path = std::env::temp_dir().join(format!("daxpmem-doc-read-{}", std::process::id()));
    /// let m = daxpmem::MapOptions::new().create(4096).open(&path)?;
    /// m.write(7, b"xyz")?;
    /// let mut b = [0u8; 3];
    /// m.read(7, &mut b)?;
    /// assert_eq!(&b, b"xyz");
    /// # drop(m); std::fs::remove_file(&path).unwrap();
    /// # Ok(()) }
    /// ```
    pub fn read(&self, offset: usize, buf: &mut [u8]) -> Result<()> {
        self.h.with("read", |m| {
            let (o, n) = bounds("read", offset..offset.saturating_add(buf.len()), m.len())?;
            if n == 0 {
                return Ok(());
            }
            let _c = handle::Copying::new(m, "read")?;
            let op = crate::signals::enter(m);
            // SAFETY: the source is inside the mapping, which stays mapped while the
            // copy is counted; buf is ours. A page the file no longer backs reads as
            // zeros (signals.rs replaces it).
            unsafe { std::ptr::copy((m.addr() + o) as *const u8, buf.as_mut_ptr(), n) };
            if op.finish() {
                return Err(Error::at(
                    libc::EIO,
                    "read",
                    "part of the range lies past the end of the file (it was shrunk under the mapping)",
                ));
            }
            Ok(())
        })
    }

    /// Record that `range` (offsets) was written through the pointer: the next sync
    /// covering it writes those lines back. Lock-free, allocation-free and
    /// async-signal-safe. An empty range does nothing.
    ///
    /// ```
    /// # fn main() -> Result<(), daxpmem::Error> {
    /// # let path = std::env::temp_dir().join(format!("daxpmem-doc-mark-{}", std::process::id()));
    /// let m = daxpmem::MapOptions::new().create(4096).open(&path)?;
    /// // SAFETY: inside the open mapping; nothing else writes there.
    /// unsafe { std::ptr::copy_nonoverlapping(b"data".as_ptr(), m.as_ptr().add(64), 4) };
    /// m.mark(64..68)?;
    /// assert_eq!(m.stats()?.dirty_lines, 1);
    /// assert!(m.mark(4000..5000).is_err());
    /// # drop(m); std::fs::remove_file(&path).unwrap();
    /// # Ok(()) }
    /// ```
    pub fn mark(&self, range: impl RangeBounds<usize>) -> Result<()> {
        let (o, n) = bounds("mark", range, self.len)?;
        self.h.mark_as("mark", self.addr + o, n)
    }

    /// Make everything written to the mapping durable: every line marked (or tracked)
    /// before the call is written back and fenced (pmem: no system call), or covered
    /// by one `msync` over the span of the dirty pages (none when nothing is dirty).
    ///
    /// Errors: `EBADF` (closed), `EDEADLK` (called from a signal handler that
    /// interrupted a sync of this map on the same thread), `EIO` and the other errors of
    /// `msync`. A failed write-back is sticky: every later sync fails with `EIO`.
    ///
    /// ```
    /// # fn main() -> Result<(), daxpmem::Error> {
    /// # let path = std::env::temp_dir().join(format!("daxpmem-doc-sync-{}", std::process::id()));
    /// let m = daxpmem::MapOptions::new().create(1 << 20).open(&path)?;
    /// m.write(0, &[1; 256])?;
    /// m.sync()?;
    /// assert_eq!(m.stats()?.dirty_lines, 0);
    /// # drop(m); std::fs::remove_file(&path).unwrap();
    /// # Ok(()) }
    /// ```
    pub fn sync(&self) -> Result<()> {
        self.h.sync_as("sync", None)
    }

    /// [`sync`](DaxMap::sync) only what lies in `range` (offsets); an empty range does
    /// nothing.
    ///
    /// ```
    /// # fn main() -> Result<(), daxpmem::Error> {
    /// # let path = std::env::temp_dir().join(format!("daxpmem-doc-syncr-{}", std::process::id()));
    /// let m = daxpmem::MapOptions::new().create(1 << 20).open(&path)?;
    /// m.write(0, b"a")?;
    /// m.write(8192, b"b")?;
    /// m.sync_range(0..4096)?;
    /// assert_eq!(m.stats()?.dirty_lines, 1); // the line at 8192 is still dirty
    /// # drop(m); std::fs::remove_file(&path).unwrap();
    /// # Ok(()) }
    /// ```
    pub fn sync_range(&self, range: impl RangeBounds<usize>) -> Result<()> {
        let (o, n) = bounds("sync_range", range, self.len)?;
        if n == 0 {
            return Ok(());
        }
        self.h.sync_as("sync_range", Some((self.addr + o, n)))
    }

    /// Punch a hole: `range` reads as zeros afterwards and the blocks of its whole pages
    /// are freed; the edges are zeroed and synced; the hole is durable on return.
    ///
    /// Errors: `EINVAL` (outside the mapping, or locked with `mlock`), `EOPNOTSUPP`
    /// (device DAX, or a filesystem without hole punching), `EBADF`, the errors of
    /// `madvise` and `msync`.
    ///
    /// ```
    /// # fn main() -> Result<(), daxpmem::Error> {
    /// # let path = std::env::temp_dir().join(format!("daxpmem-doc-punch-{}", std::process::id()));
    /// let m = daxpmem::MapOptions::new().create(3 * 4096).open(&path)?;
    /// m.fill(0, 1, 3 * 4096)?;
    /// m.punch_hole(100..2 * 4096 + 5)?;
    /// let mut b = [9u8; 1];
    /// m.read(4096, &mut b)?;
    /// assert_eq!(b[0], 0);
    /// # drop(m); std::fs::remove_file(&path).unwrap();
    /// # Ok(()) }
    /// ```
    pub fn punch_hole(&self, range: impl RangeBounds<usize>) -> Result<()> {
        self.h.with("punch_hole", |m| {
            let (o, n) = bounds("punch_hole", range, m.len())?;
            if n == 0 {
                return Ok(());
            }
            punch_in(m, "punch_hole", m.addr() + o, n)
        })
    }

    /// The map's statistics: cheap (no lock, a few loads per field; a page-table walk
    /// for `huge_mapped_bytes` of a DAX mapping only) and without effect on what the
    /// next sync costs.
    ///
    /// Errors: `EBADF` (closed).
    ///
    /// ```
    /// # fn main() -> Result<(), daxpmem::Error> {
    /// # let path = std::env::temp_dir().join(format!("daxpmem-doc-stats-{}", std::process::id()));
    /// let m = daxpmem::MapOptions::new().create(1 << 20).open(&path)?;
    /// m.write(0, &[1; 128])?;
    /// m.sync()?;
    /// let s = m.stats()?;
    /// assert_eq!((s.syncs, s.dirty_lines), (1, 0));
    /// println!("{s:?}");
    /// # drop(m); std::fs::remove_file(&path).unwrap();
    /// # Ok(()) }
    /// ```
    pub fn stats(&self) -> Result<Stats> {
        self.h.stats_as("stats")
    }

    /// Sync, then unmap. The map is unmapped also when the sync fails (its error is
    /// returned); later calls on it fail with `EBADF`, as does a second `close`.
    /// Dropping the map unmaps it too, without the sync.
    ///
    /// ```
    /// # fn main() -> Result<(), daxpmem::Error> {
    /// # let path = std::env::temp_dir().join(format!("daxpmem-doc-close-{}", std::process::id()));
    /// let m = daxpmem::MapOptions::new().create(4096).open(&path)?;
    /// m.write(0, b"last words")?;
    /// m.close()?;
    /// assert_eq!(m.write(0, b"x").unwrap_err().raw_os_error(), Some(libc::EBADF));
    /// # std::fs::remove_file(&path).unwrap();
    /// # Ok(()) }
    /// ```
    pub fn close(&self) -> Result<()> {
        let s = self.h.sync_as("close", None);
        let u = handle::unmap(self.h.raw()).map_err(|mut e| {
            if !e.ctx.is_empty() {
                e.ctx = "close";
            }
            e
        });
        s.and(u)
    }
}

#[cfg(feature = "memmap2")]
impl DaxMap {
    /// Take over a memmap2 mapping of `file` made at file offset `offset` (a multiple of
    /// the page size): afterwards it is a `DaxMap` like one from [`MapOptions::open`]
    /// (the map unmaps it when dropped), with the dirty index and the cheap sync.
    /// The range is checked against what the kernel maps there: it must be a shared,
    /// read-write mapping of that very file at that offset (`MmapMut` from
    /// `MmapOptions::map_mut` of a file opened read-write). On error the `MmapMut` is
    /// dropped (unmapped).
    ///
    /// Errors (as `dax_adopt(3)`): `EINVAL` (not such a mapping: anonymous, private,
    /// another file or offset, an unaligned address), `EACCES` (the file is not open
    /// read-write), `EEXIST` (it overlaps a daxpmem mapping), `EOPNOTSUPP` (a tracking
    /// mode unavailable here).
    ///
    /// ```
    /// # fn main() -> Result<(), daxpmem::Error> {
    /// let path = std::env::temp_dir().join(format!("daxpmem-doc-mmap-{}", std::process::id()));
    /// let f = std::fs::OpenOptions::new().read(true).write(true).create(true).open(&path).unwrap();
    /// f.set_len(1 << 16).unwrap();
    /// // SAFETY: nothing else truncates the file while it is mapped.
    /// let mm = unsafe { memmap2::MmapMut::map_mut(&f) }.unwrap();
    /// let m = daxpmem::DaxMap::from_mmap(mm, &f, 0, daxpmem::Track::Explicit)?;
    /// m.write(0, b"adopted")?;
    /// m.sync()?;
    /// # drop(m); std::fs::remove_file(&path).unwrap();
    /// # Ok(()) }
    /// ```
    pub fn from_mmap(
        mmap: memmap2::MmapMut,
        file: &impl AsFd,
        offset: u64,
        track: Track,
    ) -> Result<DaxMap> {
        let m = adopt(
            mmap.as_ptr() as usize,
            mmap.len(),
            file.as_fd().as_raw_fd(),
            offset,
            track.flags(),
            false,
        )?;
        // The memory is the DaxMap's now: memmap2 must not unmap it.
        std::mem::forget(mmap);
        Ok(m)
    }
}

// ---------------------------------------------------------------------------------
// The operations on a mapping, shared by DaxMap and the C handles

/// Copy into `m` at `dst` and mark (`dax_memcpy`, `DaxMap::write`).
///
/// # Safety
/// `[dst, dst+len)` lies inside `m` and `src` is readable for `len` bytes.
unsafe fn copy_into(
    m: &Mapping,
    what: &'static str,
    dst: usize,
    src: *const u8,
    len: usize,
) -> Result<()> {
    if len == 0 {
        return Ok(());
    }
    let _c = handle::Copying::new(m, what)?;
    // SAFETY: per the contract; the mapping stays mapped while the copy is counted.
    unsafe { m.copy_in(dst, src, len) }
}

/// Fill `m` at `dst` and mark (`dax_memset`, `DaxMap::fill`).
///
/// # Safety
/// `[dst, dst+len)` lies inside `m`.
unsafe fn fill_into(
    m: &Mapping,
    what: &'static str,
    dst: usize,
    val: u8,
    len: usize,
) -> Result<()> {
    if len == 0 {
        return Ok(());
    }
    let _c = handle::Copying::new(m, what)?;
    // SAFETY: per the contract; the mapping stays mapped while the fill is counted.
    unsafe { m.fill_in(dst, val, len) }
}

/// Punch a hole in `[addr, addr+len)` of `m` (inside it, len > 0: `dax_punch_hole`,
/// `DaxMap::punch_hole`) as a copy in progress: its madvise and the zeroing of its edges
/// work through the memory, which `unmap_range` must not unmap under them.
fn punch_in(m: &Mapping, what: &'static str, addr: usize, len: usize) -> Result<()> {
    let _c = handle::Copying::new(m, what)?;
    crate::sync::punch_hole(m, addr, len)
}

/// The statistics of `m`: a few loads, no lock.
fn stats_of(m: &Mapping) -> Stats {
    let k = m.kind;
    Stats {
        track_mode: Track::of_core(m.track),
        dirty_lines: crate::sync::dirty_lines(m),
        lines_written_back: m.counters.lines_written_back.load(Relaxed),
        syncs: m.counters.syncs.load(Relaxed),
        msync_calls: m.counters.msync_calls.load(Relaxed),
        tracked_faults: m.counters.tracked_faults.load(Relaxed),
        pmem: m.pmem,
        map_sync: k.map_sync,
        devdax: k.devdax,
        file_dax: k.file_dax,
        eadr: crate::cpu::config().skip_writeback(),
        forced: k.forced,
        // A walk of the page tables: only where huge entries are the design (DAX);
        // over a populated page-cache mapping it costs ~0.6 ms a GiB.
        huge_mapped_bytes: if k.map_sync || k.devdax || k.file_dax {
            map::huge_mapped_bytes(m.addr(), m.len())
        } else {
            None
        },
    }
}

/// The statistics of a mapping ([`DaxMap::stats`]): the fields of C's
/// `struct dax_stats`, with its flags as booleans.
///
/// ```
/// # fn main() -> Result<(), daxpmem::Error> {
/// # let path = std::env::temp_dir().join(format!("daxpmem-doc-st-{}", std::process::id()));
/// let m = daxpmem::MapOptions::new().create(1 << 20).open(&path)?;
/// let s: daxpmem::Stats = m.stats()?;
/// assert_eq!(s.track_mode, daxpmem::Track::Explicit);
/// assert_eq!(s.pmem, m.is_pmem());
/// # drop(m); std::fs::remove_file(&path).unwrap();
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// The tracking mode in effect ([`Track::Auto`] resolved).
    pub track_mode: Track,
    /// Lines marked (or tracked) and not yet written back (a line marked more than once
    /// since the last sync may count more than once; exact when each was marked once).
    pub dirty_lines: u64,
    /// Lines written back (pmem) or covered by `msync` (page cache) by syncs.
    pub lines_written_back: u64,
    /// Syncs.
    pub syncs: u64,
    /// Real `msync` calls issued.
    pub msync_calls: u64,
    /// Write faults taken by automatic tracking.
    pub tracked_faults: u64,
    /// A user-space write-back makes this mapping durable ([`DaxMap::is_pmem`]).
    pub pmem: bool,
    /// Mapped with `MAP_SYNC`.
    pub map_sync: bool,
    /// A device DAX mapping.
    pub devdax: bool,
    /// The file has the DAX attribute (`STATX_ATTR_DAX`).
    pub file_dax: bool,
    /// The CPU caches are persistent (eADR), or `DAXPMEM_NO_FLUSH=1`: syncs only fence.
    pub eadr: bool,
    /// Treated as pmem only because `DAXPMEM_FORCE_PMEM=1` or `PMEM_IS_PMEM_FORCE=1`.
    pub forced: bool,
    /// Bytes of the mapping the kernel maps with 2 MiB entries now, for a DAX mapping;
    /// None for a page-cache mapping (not measured) or when the kernel cannot tell.
    pub huge_mapped_bytes: Option<u64>,
}

// ---------------------------------------------------------------------------------
// MapHandle: a C handle with the methods of a DaxMap

/// A mapping handle as C holds it (`dax_map_t *`: a registry slot and generation,
/// never dereferenced), with the operations of [`DaxMap`] on addresses, each taking
/// the name its errors are about. The C layer's way to a mapping; DaxMap's too.
#[derive(Clone, Copy)]
pub(crate) struct MapHandle(usize);

impl MapHandle {
    pub(crate) fn of(h: *const Handle) -> Self {
        MapHandle(h as usize)
    }

    pub(crate) fn raw(self) -> *mut Handle {
        self.0 as *mut Handle
    }

    /// Run `f` on the mapping, which stays mapped while `f` runs.
    #[inline]
    fn with<T>(self, what: &'static str, f: impl FnOnce(&Ref) -> Result<T>) -> Result<T> {
        f(&handle::get(self.raw(), what)?)
    }

    /// `with` for the async-signal-safe calls: never frees a mapping (one unmapped
    /// meanwhile is freed by the next ordinary call).
    #[inline]
    fn with_signal_safe<T>(
        self,
        what: &'static str,
        f: impl FnOnce(&Ref) -> Result<T>,
    ) -> Result<T> {
        f(&handle::get(self.raw(), what)?.no_reap())
    }

    /// Address, length, pmem, tracking mode (async-signal-safe).
    pub(crate) fn addr_as(self, what: &'static str) -> Result<usize> {
        self.with_signal_safe(what, |m| Ok(m.addr()))
    }
    pub(crate) fn len_as(self, what: &'static str) -> Result<usize> {
        self.with_signal_safe(what, |m| Ok(m.len()))
    }
    pub(crate) fn is_pmem_as(self, what: &'static str) -> Result<bool> {
        self.with_signal_safe(what, |m| Ok(m.pmem))
    }
    pub(crate) fn track_as(self, what: &'static str) -> Result<Track> {
        self.with_signal_safe(what, |m| Ok(Track::of_core(m.track)))
    }

    /// Mark `[addr, addr+len)` (len 0: only the handle is checked): through this
    /// thread's mark ring when it can (handle::mark). Async-signal-safe.
    #[inline]
    pub(crate) fn mark_as(self, _what: &'static str, addr: usize, len: usize) -> Result<()> {
        // handle::mark names its errors "mark" itself.
        handle::mark(self.raw(), addr, len)
    }

    /// Sync `[addr, addr+len)` (len > 0), or the whole mapping for None.
    pub(crate) fn sync_as(self, what: &'static str, range: Option<(usize, usize)>) -> Result<()> {
        registry::reap_pending();
        let r = handle::get(self.raw(), what)?;
        let (a, l) = range.unwrap_or((r.addr(), r.len()));
        r.check_inside(what, a, l)?;
        crate::sync::sync_ref(r, a, l)
    }

    /// Punch a hole in `[addr, addr+len)` (len > 0).
    pub(crate) fn punch_hole_as(self, what: &'static str, addr: usize, len: usize) -> Result<()> {
        self.with(what, |m| {
            m.check_inside(what, addr, len)?;
            punch_in(m, what, addr, len)
        })
    }

    /// Copy into `[dst, dst+len)` (len > 0) and mark.
    ///
    /// # Safety
    /// `src` is readable for `len` bytes.
    /// `src` is checked (NULL, wrap-around: `src_what`) after the handle.
    pub(crate) unsafe fn copy_as(
        self,
        what: &'static str,
        src_what: &'static str,
        dst: usize,
        src: *const u8,
        len: usize,
    ) -> Result<()> {
        self.with(what, |m| {
            hooks::check_range(src_what, src as usize, len)?;
            m.check_inside(what, dst, len)?;
            // SAFETY: dst inside (checked), src per the contract.
            unsafe { copy_into(m, what, dst, src, len) }
        })
    }

    /// Fill `[dst, dst+len)` (len > 0) and mark.
    pub(crate) fn fill_as(self, what: &'static str, dst: usize, val: u8, len: usize) -> Result<()> {
        self.with(what, |m| {
            m.check_inside(what, dst, len)?;
            // SAFETY: inside (checked).
            unsafe { fill_into(m, what, dst, val, len) }
        })
    }

    pub(crate) fn stats_as(self, what: &'static str) -> Result<Stats> {
        self.with(what, |m| Ok(stats_of(m)))
    }

    /// Unmap without syncing.
    pub(crate) fn unmap(self) -> Result<()> {
        handle::unmap(self.raw())
    }

    /// Give the memory back to the caller without unmapping it.
    pub(crate) fn forget(self) -> Result<()> {
        handle::forget(self.raw())
    }
}

// ---------------------------------------------------------------------------------
// Primitives on slices

/// Write `buf` back from the CPU caches and fence: when this returns, what was stored
/// there is durable if it is persistent memory. Skips the write-back (fences only) when
/// the caches are persistent (eADR) or `DAXPMEM_NO_FLUSH=1`. libpmem's `pmem_persist`.
///
/// ```
/// let buf = vec![7u8; 4096];
/// daxpmem::persist(&buf);
/// ```
pub fn persist(buf: &[u8]) {
    // SAFETY: a slice is readable for its length, and never NULL or wrapping.
    let _ = unsafe { crate::pmem::persist(buf.as_ptr(), buf.len()) };
}

/// Write `buf` back from the CPU caches, unordered: call [`fence`] before relying on
/// it (one fence covers any number of flushes). Skipped as by [`persist`].
/// libpmem's `pmem_flush`.
///
/// ```
/// let a = vec![1u8; 64];
/// let b = vec![2u8; 64];
/// daxpmem::flush(&a);
/// daxpmem::flush(&b);
/// daxpmem::fence();
/// ```
pub fn flush(buf: &[u8]) {
    // SAFETY: as in `persist`.
    let _ = unsafe { crate::pmem::flush_unless_eadr(buf.as_ptr(), buf.len()) };
}

/// Order every earlier write-back and non-temporal store (SFENCE): libpmem's
/// `pmem_drain`, the kernel's `wmb_pmem`.
///
/// ```
/// daxpmem::fence();
/// ```
pub fn fence() {
    crate::pmem::wmb_pmem();
}

// ---------------------------------------------------------------------------------
// Read-only reports

/// What the library chose for this CPU at load time, and why ([`cpu_info`]).
///
/// ```
/// let c = daxpmem::cpu_info();
/// assert!(["clwb", "clflushopt", "clflush"].contains(&c.flush));
/// assert!(c.line >= 32);
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct CpuInfo {
    /// The write-back instruction: `"clwb"`, `"clflushopt"` or `"clflush"`.
    pub flush: &'static str,
    /// The write-back stride in bytes (CPUID's CLFLUSH line size).
    pub line: usize,
    /// The non-temporal copy path: `"avx512f"`, `"avx2"`, `"sse2"` or `"none"`.
    pub nt: &'static str,
    /// Copies and fills from this many bytes use non-temporal stores.
    pub movnt_threshold: usize,
    /// The CPU caches are persistent (eADR, from sysfs).
    pub eadr: bool,
    /// Syncs fence without writing back (eADR, or `DAXPMEM_NO_FLUSH=1`).
    pub skip_writeback: bool,
    /// Every mapping is treated as pmem (`DAXPMEM_FORCE_PMEM=1` or
    /// `PMEM_IS_PMEM_FORCE=1`).
    pub force_pmem: bool,
    /// The CPU has CLWB.
    pub clwb: bool,
    /// The CPU has CLFLUSHOPT.
    pub clflushopt: bool,
    /// The CPU has CLFLUSH.
    pub clflush: bool,
    /// AVX-512F is usable.
    pub avx512f: bool,
    /// AVX2 is usable.
    pub avx2: bool,
    /// The CPU has MOVDIR64B.
    pub movdir64b: bool,
}

/// The CPU configuration in use ([`CpuInfo`]).
///
/// ```
/// println!("{:?}", daxpmem::cpu_info());
/// ```
pub fn cpu_info() -> CpuInfo {
    let c = crate::cpu::config();
    let f = crate::cpu::Features::probe();
    CpuInfo {
        flush: c.flush.name(),
        line: c.line,
        nt: c.nt.name(),
        movnt_threshold: c.movnt_threshold,
        eadr: c.eadr,
        skip_writeback: c.skip_writeback(),
        force_pmem: c.force_pmem,
        clwb: f.clwb,
        clflushopt: f.clflushopt,
        clflush: f.clflush,
        avx512f: f.avx512f,
        avx2: f.avx2,
        movdir64b: f.movdir64b,
    }
}

/// What a file's filesystem offers ([`probe_file`]).
///
/// ```
/// let f = std::fs::File::open("/proc/self/exe").unwrap();
/// let p = daxpmem::probe_file(&f);
/// println!("DAX {:?}, MAP_SYNC {}", p.dax, p.map_sync);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FileProbe {
    /// The file's DAX attribute (`statx`'s `STATX_ATTR_DAX`); None if the kernel or
    /// filesystem does not say.
    pub dax: Option<bool>,
    /// A `MAP_SYNC` mapping of the file works (a one-page probe; needs the file open
    /// read-write and at least a page long).
    pub map_sync: bool,
}

/// Probe `file`: its DAX attribute, and whether a `MAP_SYNC` mapping of it works (what
/// makes a user-space write-back durable).
///
/// ```
/// let path = std::env::temp_dir().join(format!("daxpmem-doc-probe-{}", std::process::id()));
/// let f = std::fs::OpenOptions::new().read(true).write(true).create(true).open(&path).unwrap();
/// f.set_len(4096).unwrap();
/// let p = daxpmem::probe_file(&f);
/// # let _ = p; std::fs::remove_file(&path).unwrap();
/// ```
pub fn probe_file(file: &impl AsFd) -> FileProbe {
    let fd = file.as_fd().as_raw_fd();
    FileProbe {
        dax: map::file_is_dax(fd),
        map_sync: map::map_sync_works(fd, 0),
    }
}

// ---------------------------------------------------------------------------------
// Hooks: what the C layer needs beyond the API above

/// The crate-internal entry points of the C layer (ffi/) besides [`MapOptions`],
/// [`DaxMap`] and [`MapHandle`]: the primitives on raw pointers (C passes pointers, not
/// slices, and they check NULL and wrap-around themselves), the CPU's static names, the
/// registry lookups behind `dax_find`, `dax_lookup` and `dax_range_is_pmem` (the
/// preload library's hot path), `dax_unmap_range` (munmap for the preload), the
/// process-wide counters of the preload, `dax_chain_sigaction`, and the thread-local
/// error message (error.rs).
pub(crate) mod hooks {
    use super::*;

    pub(crate) use crate::cpu::{auto_flush_in, is_pmem_force};
    pub(crate) use crate::pmem::{
        check_range, clear_pmem, flush_unless_eadr, memcpy_to_pmem, memmove_flags, memset_flags,
        persist, wb_cache_pmem, wmb_pmem, MEM_NODRAIN, MEM_NOFLUSH, MEM_NONTEMPORAL, MEM_TEMPORAL,
        MEM_WB, MEM_WC,
    };
    pub(crate) use crate::signals::chain_sigaction;
    pub(crate) use crate::sync::counter;
    pub(crate) use map::{check_fd, devdax_geometry, CREATE, EXCL, POPULATE, SPARSE};

    /// The flush instruction's and the copy path's names, NUL-terminated and static.
    pub(crate) fn c_names() -> (&'static [u8], &'static [u8]) {
        let c = crate::cpu::config();
        (c.flush.c_name(), c.nt.c_name())
    }

    /// What the open descriptor `fd` is, for the preload's mmap hook: 3 device DAX, 2 a
    /// regular file with the DAX attribute, 1 another regular file, 0 anything else
    /// (`dax_fd_kind`). The core's own probe (statx and sysfs), so the shim does not
    /// keep a copy of it.
    pub(crate) fn fd_kind(fd: i32) -> Result<u32> {
        // SAFETY: an all-zero stat is a valid out-buffer.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: st is a valid out-pointer; fstat only reads fd.
        if unsafe { libc::fstat(fd, &mut st) } != 0 {
            return Err(Error::last_os(format!("fd kind: fstat {fd}")));
        }
        Ok(match st.st_mode & libc::S_IFMT {
            libc::S_IFREG if map::file_is_dax(fd) == Some(true) => 2,
            libc::S_IFREG => 1,
            libc::S_IFCHR if map::devdax_geometry(&st).is_some() => 3,
            _ => 0,
        })
    }

    pub(crate) use crate::rings::Fast as RingMark;

    /// `dax_mark_dirty`'s common case (`handle::mark_ring`), inlined into it:
    /// `RingMark::Done`, or call `mark_slow` (`No`) or `mark_key` (`Key`).
    #[inline(always)]
    pub(crate) fn mark_ring(h: MapHandle, addr: usize, len: usize) -> RingMark {
        handle::mark_ring(h.raw(), addr, len)
    }

    /// Mark the lines of a `RingMark::Key` through the mapping's shared log.
    pub(crate) fn mark_key(id: u64, k: u64) -> Result<()> {
        handle::mark_key(id, k)
    }

    /// The rest of a mark `mark_ring` did not do (`RingMark::No`).
    pub(crate) fn mark_slow(h: MapHandle, addr: usize, len: usize) -> Result<()> {
        handle::mark_slow(h.raw(), addr, len)
    }

    /// The write-back stride.
    pub(crate) fn line() -> usize {
        crate::cpu::config().line
    }

    /// The handle of the live mapping containing `addr`.
    pub(crate) fn find(addr: usize) -> Option<*mut Handle> {
        handle::find(addr)
    }

    /// The mapping containing `addr`, else the first overlapping `[addr, end)`; never
    /// allocates or sets errno.
    pub(crate) fn lookup(addr: usize, end: usize) -> Option<*mut Handle> {
        registry::find(addr)
            .or_else(|| registry::find_overlap(addr, end))
            .map(|r| handle::of(&r))
    }

    /// Whether all of `[addr, addr+len)` (len > 0) lies in pmem mappings.
    pub(crate) fn covered_by_pmem(addr: usize, len: usize) -> bool {
        registry::covered_by(addr, len, &|m| m.pmem)
    }

    /// munmap `[addr, addr+len)`, keeping the registry true (splits, retires).
    pub(crate) fn unmap_range(addr: usize, len: usize) -> Result<()> {
        handle::unmap_range(addr, len)
    }
}
