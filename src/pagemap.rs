//! PAGEMAP_SCAN (`ioctl(/proc/self/pagemap)`, kernel >= 6.7). Debian's headers are too
//! old for it, so the structures and constants are defined here.

use std::os::fd::{AsRawFd, OwnedFd};

#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct PageRegion {
    pub start: u64,
    pub end: u64,
    pub categories: u64,
}

#[repr(C)]
#[derive(Default, Debug)]
pub struct PmScanArg {
    pub size: u64,
    pub flags: u64,
    pub start: u64,
    pub end: u64,
    pub walk_end: u64,
    pub vec: u64,
    pub vec_len: u64,
    pub max_pages: u64,
    pub category_inverted: u64,
    pub category_mask: u64,
    pub category_anyof_mask: u64,
    pub return_mask: u64,
}

/// `_IOWR('f', 16, struct pm_scan_arg)`.
pub(crate) const PAGEMAP_SCAN: u64 =
    (3 << 30) | ((std::mem::size_of::<PmScanArg>() as u64) << 16) | (0x66 << 8) | 16;
pub(crate) const PAGE_IS_WRITTEN: u64 = 1 << 1;
pub(crate) const PAGE_IS_HUGE: u64 = 1 << 6;
pub(crate) const PM_SCAN_WP_MATCHING: u64 = 1 << 0;
pub(crate) const PM_SCAN_CHECK_WPASYNC: u64 = 1 << 1;

/// Result vector length of one PAGEMAP_SCAN call (24 bytes each, on the stack).
const VEC: usize = 512;

/// Open /proc/self/pagemap (close-on-exec).
pub fn open() -> std::io::Result<OwnedFd> {
    std::fs::File::open("/proc/self/pagemap").map(OwnedFd::from)
}

/// Scan [start, end) through the pagemap descriptor `fd` for pages matching
/// `category_mask`, calling `f(start, end, categories)` for each returned region. `flags`
/// may ask for write-protect-on-match (then the scan is a get-and-clear). Loops only
/// while the returned count equals the vector length (a partial vector means the walk is
/// done: on 6.18 `walk_end` is not reliable after a partial vector, and restarting from
/// it would report regions twice). Err(errno) if a call failed (with write-protect,
/// pages of the failing call may have been protected without being reported).
pub fn scan(
    fd: i32,
    start: usize,
    end: usize,
    flags: u64,
    category_mask: u64,
    return_mask: u64,
    f: &mut dyn FnMut(usize, usize, u64),
) -> std::result::Result<(), i32> {
    let mut vec = [PageRegion::default(); VEC];
    let mut cur = start as u64;
    while cur < end as u64 {
        let mut arg = PmScanArg {
            size: std::mem::size_of::<PmScanArg>() as u64,
            flags,
            start: cur,
            end: end as u64,
            vec: vec.as_mut_ptr() as u64,
            vec_len: VEC as u64,
            category_mask,
            return_mask,
            ..Default::default()
        };
        // SAFETY: arg and vec are valid for the ioctl's reads and writes.
        let n = unsafe { libc::ioctl(fd, PAGEMAP_SCAN as _, &mut arg) };
        if n < 0 {
            return Err(crate::error::errno());
        }
        for r in &vec[..n as usize] {
            f(r.start as usize, r.end as usize, r.categories);
        }
        if (n as usize) < VEC || arg.walk_end <= cur {
            break;
        }
        cur = arg.walk_end;
    }
    Ok(())
}

/// Bytes of [addr, addr+len) mapped huge, or None if PAGEMAP_SCAN is not available.
pub fn huge_bytes(addr: usize, len: usize) -> Option<u64> {
    let fd = open().ok()?;
    let mut total = 0u64;
    let r = scan(
        fd.as_raw_fd(),
        addr,
        addr + len,
        0,
        PAGE_IS_HUGE,
        PAGE_IS_HUGE,
        &mut |s, e, _| total += (e - s) as u64,
    );
    r.is_ok().then_some(total)
}
