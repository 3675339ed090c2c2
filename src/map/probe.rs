//! What a file is before it is mapped (device DAX, the DAX attribute, whether MAP_SYNC
//! works), and what the kernel maps huge once it is.

use super::open::fstat;
use super::{devdax_geometry, Kind, Track};
use crate::error::{Error, Result};
use crate::sys;
use std::os::fd::{AsRawFd, BorrowedFd};

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
    if r != 0 || stx.stx_attributes_mask & libc::STATX_ATTR_DAX as u64 == 0 {
        return None;
    }
    Some(stx.stx_attributes & libc::STATX_ATTR_DAX as u64 != 0)
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
            libc::MAP_SHARED_VALIDATE | libc::MAP_SYNC,
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
