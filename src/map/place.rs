//! Placing a new mapping where libpmem would (2 MiB or 1 GiB aligned, so the kernel can
//! use PMD faults) and mapping the file there, with MAP_SYNC where it works.

use super::{build, Mapping, Probe, Track, GIB, MIB2, POPULATE};
use crate::error::{Error, Result};
use crate::sys;
use std::os::fd::{AsRawFd, BorrowedFd};

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
    m.disown_memory();
    let (addr, res, rlen) = place(len, offset, probe.align)
        .map_err(|e| Error::new(e.errno, format!("{name}: {}", e.msg)))?;
    let mut mflags = libc::MAP_FIXED;
    mflags |= if map_sync {
        libc::MAP_SHARED_VALIDATE | libc::MAP_SYNC
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
