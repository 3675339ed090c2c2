//! DAX_TRACK_UFFD: userfaultfd asynchronous write-protect, collected with PAGEMAP_SCAN
//! (kernel >= 6.7). Non-DAX mappings only (on fsdax it loses writes and can hang the
//! faulting thread: `track::resolve` refuses it there).
//!
//! Arming: `MADV_NOHUGEPAGE` on the range (a PMD-mapped folio would report 512 pages for
//! one 4 KiB write), a userfaultfd of our own (`UFFD_USER_MODE_ONLY`, so it works with
//! `vm.unprivileged_userfaultfd = 0`) with `UFFD_FEATURE_WP_ASYNC |
//! WP_UNPOPULATED | WP_HUGETLBFS_SHMEM`, `UFFDIO_REGISTER` (mode WP) over the mapping,
//! then one write-protecting PAGEMAP_SCAN over the whole mapping whose report is
//! discarded (nothing was written through the mapping yet). The range is not
//! populated: `WP_UNPOPULATED` makes the kernel install write-protect markers in the
//! empty page-table entries, so the first store to a page that was never mapped is seen
//! like any other (populating would read a whole ext4 file, or allocate a whole tmpfs
//! file, at `dax_map`).
//!
//! With WP_ASYNC a store to a write-protected page never reaches user space: the kernel
//! clears the page's write-protect bit and the store proceeds. Collection (`collect`,
//! from `track::take`, under the mapping's sync lock) is one atomic get-and-clear:
//! `PAGEMAP_SCAN` with `PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC` and
//! `category_mask = return_mask = PAGE_IS_WRITTEN` reports every written page of the
//! range and write-protects it again in the same page-table walk, under the page-table
//! lock. A store either happened before the walk reached its page (reported now) or
//! after (its page is written again, reported by the next scan): never lost. Never a
//! scan followed by a separate re-protect (that lost thousands of pages).
//!
//! `tracked_faults` counts the pages reported by collections (no fault is delivered to
//! user space with WP_ASYNC; each reported page stands for one write fault the kernel
//! handled).
//!
//! Failure is conservative: if a scan fails (or the mapping lost its registration)
//! every page of the scanned range is marked. fork: the child's copy of the mapping is
//! not registered (no `UFFD_FEATURE_EVENT_FORK`), and the inherited pagemap descriptor
//! reads the *parent's* page tables (a scan through it would clear the parent's bits).
//! So a child never scans with what it inherited: its first sync re-arms with a new
//! userfaultfd and its own `/proc/self/pagemap`, and marks the whole mapping (it cannot
//! know what it wrote before that). If re-arming fails, every later sync marks its whole
//! range (a write is never lost; over-marking is the price). The parent is untouched.

use crate::error::{Error, Result};
use crate::map::Mapping;
use crate::pagemap::{self, PAGE_IS_WRITTEN, PM_SCAN_CHECK_WPASYNC, PM_SCAN_WP_MATCHING};
use crate::sys;
use std::os::fd::IntoRawFd;
use std::sync::atomic::{AtomicI32, AtomicU8, Ordering::SeqCst};

const UFFD_USER_MODE_ONLY: libc::c_int = 1;
const UFFD_API: u64 = 0xAA;
pub(crate) const UFFD_FEATURE_WP_HUGETLBFS_SHMEM: u64 = 1 << 12;
pub(crate) const UFFD_FEATURE_WP_UNPOPULATED: u64 = 1 << 13;
pub(crate) const UFFD_FEATURE_WP_ASYNC: u64 = 1 << 15;
const FEATURES: u64 =
    UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED | UFFD_FEATURE_WP_HUGETLBFS_SHMEM;
const UFFDIO_REGISTER_MODE_WP: u64 = 1 << 1;

#[repr(C)]
#[derive(Default)]
struct UffdioApi {
    api: u64,
    features: u64,
    ioctls: u64,
}

#[repr(C)]
#[derive(Default)]
struct UffdioRegister {
    start: u64,
    len: u64,
    mode: u64,
    ioctls: u64,
}

const fn iowr(nr: u64, size: usize) -> u64 {
    (3 << 30) | ((size as u64) << 16) | (UFFD_API << 8) | nr
}
/// `_IOWR(0xAA, 0x3F, struct uffdio_api)`.
const UFFDIO_API: u64 = iowr(0x3F, std::mem::size_of::<UffdioApi>());
/// `_IOWR(0xAA, 0x00, struct uffdio_register)`.
const UFFDIO_REGISTER: u64 = iowr(0x00, std::mem::size_of::<UffdioRegister>());

fn getpid() -> i32 {
    // SAFETY: getpid has no preconditions (a raw call: never a cached value).
    unsafe { libc::syscall(libc::SYS_getpid) as i32 }
}

/// A userfaultfd with the asynchronous write-protect features, registered (WP) over
/// [addr, addr+len). Returns the descriptor.
fn open_registered(addr: usize, len: usize) -> Result<i32> {
    // SAFETY: userfaultfd(2) takes flags and returns a new descriptor or -1.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_userfaultfd,
            libc::O_CLOEXEC | libc::O_NONBLOCK | UFFD_USER_MODE_ONLY,
        )
    };
    if fd < 0 {
        return Err(Error::last_os("userfaultfd(UFFD_USER_MODE_ONLY)"));
    }
    let fd = fd as i32;
    let mut api = UffdioApi {
        api: UFFD_API,
        features: FEATURES,
        ioctls: 0,
    };
    // SAFETY: fd is our userfaultfd; api is a valid in/out struct.
    if unsafe { libc::ioctl(fd, UFFDIO_API as _, &mut api) } != 0 {
        let e = Error::last_os(
            "UFFDIO_API with UFFD_FEATURE_WP_ASYNC|WP_UNPOPULATED|WP_HUGETLBFS_SHMEM (kernel >= 6.7)",
        );
        sys::close(fd);
        return Err(e);
    }
    let mut reg = UffdioRegister {
        start: addr as u64,
        len: len as u64,
        mode: UFFDIO_REGISTER_MODE_WP,
        ioctls: 0,
    };
    // SAFETY: fd is our userfaultfd; reg is a valid in/out struct.
    if unsafe { libc::ioctl(fd, UFFDIO_REGISTER as _, &mut reg) } != 0 {
        let e = Error::last_os("UFFDIO_REGISTER (write-protect)");
        sys::close(fd);
        return Err(e);
    }
    Ok(fd)
}

fn open_pagemap() -> Result<i32> {
    pagemap::open()
        .map(IntoRawFd::into_raw_fd)
        .map_err(|e| Error::from_io("open /proc/self/pagemap", &e))
}

/// Get-and-clear the written pages of [start, end) (page-aligned) through `pagemap`:
/// `f(first, end)` for each reported run. Err(errno) if a PAGEMAP_SCAN call failed:
/// pages of the failing call may have been write-protected without being reported, so
/// the caller must treat the whole range as written.
fn scan_written(
    pagemap: i32,
    start: usize,
    end: usize,
    f: &mut dyn FnMut(usize, usize),
) -> std::result::Result<(), i32> {
    pagemap::scan(
        pagemap,
        start,
        end,
        PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC,
        PAGE_IS_WRITTEN,
        PAGE_IS_WRITTEN,
        &mut |s, e, _| f(s, e),
    )
}

/// Register [addr, addr+len) and write-protect all of it. Returns (uffd, pagemap).
/// `on_written(first, end)` gets what the write-protecting scan found written.
fn arm_range(
    addr: usize,
    len: usize,
    on_written: &mut dyn FnMut(usize, usize),
) -> Result<(i32, i32)> {
    let end = sys::page_up(addr + len);
    // Best effort: a PMD-mapped folio would report 512 pages for a 4 KiB write, which
    // over-marks but loses nothing.
    // SAFETY: advice only; the range is the caller's.
    let _ = unsafe { sys::madvise(addr, end - addr, libc::MADV_NOHUGEPAGE) };
    let uffd = open_registered(addr, end - addr)?;
    let pagemap = match open_pagemap() {
        Ok(p) => p,
        Err(e) => {
            sys::close(uffd);
            return Err(e);
        }
    };
    if let Err(errno) = scan_written(pagemap, addr, end, on_written) {
        sys::close(uffd);
        sys::close(pagemap);
        return Err(Error::new(
            errno,
            format!(
                "PAGEMAP_SCAN (write-protect): {}",
                std::io::Error::from_raw_os_error(errno)
            ),
        ));
    }
    Ok((uffd, pagemap))
}

/// Start tracking `m` (under its sync lock). A piece of a split mapping is already
/// armed. Errors are EOPNOTSUPP with the cause in the message.
pub fn arm(m: &Mapping) -> Result<()> {
    let st = &m.uffd;
    if st.armed.load(SeqCst) {
        return Ok(());
    }
    // Nothing was written through the mapping yet: what the first scan reports is not
    // ours to sync (as for DAX_TRACK_MPROTECT, which starts read-only).
    let (uffd, pagemap) = arm_range(m.addr(), m.len(), &mut |_, _| {}).map_err(|e| {
        Error::new(
            libc::EOPNOTSUPP,
            format!(
                "DAX_TRACK_UFFD: userfaultfd write-protect is not available on this mapping: {} (errno {})",
                e.msg, e.errno
            ),
        )
    })?;
    st.set_fds(Some((uffd, pagemap)));
    st.pid.store(getpid(), SeqCst);
    st.armed.store(true, SeqCst);
    Ok(())
}

/// Mark every line of the pages of [start, end) (clipped to the mapping).
fn mark_pages(m: &Mapping, start: usize, end: usize) {
    let s = start.max(m.addr());
    let e = end.min(m.addr() + m.len());
    if s < e {
        m.mark_index(s, e - s);
    }
}

/// A child after fork (or a mapping whose registration failed): new userfaultfd, own
/// pagemap, and the whole mapping marked (what was written before now is unknown).
fn rearm(m: &Mapping) {
    let st = &m.uffd;
    st.set_fds(None);
    st.pid.store(getpid(), SeqCst);
    st.stale.store(false, SeqCst);
    match arm_range(m.addr(), m.len(), &mut |s, e| mark_pages(m, s, e)) {
        Ok((uffd, pagemap)) => {
            st.set_fds(Some((uffd, pagemap)));
            st.degraded.store(false, SeqCst);
        }
        Err(_) => st.degraded.store(true, SeqCst),
    }
    // After the write-protect: a store before it is covered by this mark, a store after
    // it is reported by a later scan.
    mark_pages(m, m.addr(), m.addr() + m.len());
}

/// Collect the written pages of [addr, addr+len) into the index (the caller holds the
/// sync lock and takes the lines afterwards). Never loses a write: on any failure the
/// whole range is marked.
pub fn collect(m: &Mapping, addr: usize, len: usize) {
    let st = &m.uffd;
    if st.stale.load(SeqCst) || st.pid.load(SeqCst) != getpid() {
        rearm(m);
    }
    let start = sys::page_down(addr);
    let end = sys::page_up(addr + len).min(sys::page_up(m.addr() + m.len()));
    let pagemap = st.pagemap();
    if st.degraded.load(SeqCst) || pagemap < 0 {
        mark_pages(m, start, end);
        return;
    }
    let mut pages = 0u64;
    let r = scan_written(pagemap, start, end, &mut |s, e| {
        pages += ((e - s) / sys::PAGE) as u64;
        mark_pages(m, s, e);
    });
    m.counters.tracked_faults.fetch_add(pages, SeqCst);
    if r.is_err() {
        // EPERM: the range is no longer registered (e.g. a raw clone without the fork
        // callbacks, or the caller unregistered it); anything else: the failing call may
        // have write-protected pages it did not report. Either way: all of it.
        mark_pages(m, start, end);
        if r == Err(libc::EPERM) {
            rearm(m);
        }
    }
}

// ---------------------------------------------------------------------------------
// The start-up self-test

/// 0: not run yet, 1: available, 2: not available.
static AVAILABLE: AtomicU8 = AtomicU8::new(0);
/// The errno of the step that failed (for the message).
static FAILED_ERRNO: AtomicI32 = AtomicI32::new(0);

/// Whether asynchronous userfaultfd write-protect with PAGEMAP_SCAN works here: maps a
/// small shared anonymous (shmem) region, arms it, writes one page, and checks that a
/// scan reports exactly that page and a second scan nothing. Run once, cached.
pub fn uffd_available() -> bool {
    match AVAILABLE.load(SeqCst) {
        1 => return true,
        2 => return false,
        _ => {}
    }
    let r = self_test();
    if let Err(e) = r {
        FAILED_ERRNO.store(e, SeqCst);
    }
    AVAILABLE.store(if r.is_ok() { 1 } else { 2 }, SeqCst);
    r.is_ok()
}

/// The errno of the failed self-test step (0 when it passed or did not run).
pub fn unavailable_errno() -> i32 {
    FAILED_ERRNO.load(SeqCst)
}

fn self_test() -> std::result::Result<(), i32> {
    const N: usize = 8;
    let len = N * sys::PAGE;
    // SAFETY: a fresh shared anonymous mapping at a kernel-chosen address.
    let a = unsafe {
        sys::mmap(
            0,
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    }
    .map_err(|e| e.errno)?;
    let r = (|| {
        // Written before arming: must not be reported after it.
        // SAFETY: inside the fresh mapping.
        unsafe { (a as *mut u8).write_volatile(1) };
        let (uffd, pagemap) = arm_range(a, len, &mut |_, _| {}).map_err(|e| e.errno)?;
        let mut found = vec![];
        // SAFETY: inside the mapping; page 5 was never touched (a marker entry).
        unsafe { ((a + 5 * sys::PAGE + 8) as *mut u8).write_volatile(2) };
        let first = scan_written(pagemap, a, a + len, &mut |s, e| found.push((s, e)));
        let mut again = vec![];
        let second = scan_written(pagemap, a, a + len, &mut |s, e| again.push((s, e)));
        sys::close(uffd);
        sys::close(pagemap);
        first?;
        second?;
        if found != [(a + 5 * sys::PAGE, a + 6 * sys::PAGE)] || !again.is_empty() {
            return Err(libc::EINVAL);
        }
        Ok(())
    })();
    // SAFETY: the test mapping is ours.
    let _ = unsafe { sys::munmap(a, len) };
    r
}

#[cfg(test)]
mod tests {
    #[test]
    fn self_test_passes_on_a_recent_kernel() {
        // 6.7+ has WP_ASYNC and PAGEMAP_SCAN; older kernels must say no, not crash.
        let ok = super::uffd_available();
        eprintln!(
            "uffd_available: {ok} (errno {})",
            super::unavailable_errno()
        );
        assert_eq!(ok, super::uffd_available());
    }
}
