//! `dax_adopt`: checking that a caller's range is a shared, writable mapping of the file
//! at the offset given (/proc/self/maps), and the Mapping for it.

use super::open::fstat;
use super::{
    build, devdax_geometry, file_is_dax, Kind, Mapping, Probe, Track, POPULATE, TRACK_MASK,
};
use crate::error::{Error, Result};
use crate::sys;
use std::os::fd::{AsRawFd, BorrowedFd};

/// Check the arguments of `dax_adopt` and the range (`check_adopted_range`), and find
/// out what it maps; `adopted` makes the Mapping.
pub fn probe_adopt(
    addr: usize,
    len: usize,
    fd: BorrowedFd<'_>,
    offset: u64,
    flags: u32,
    mapped_sync: bool,
) -> Result<Probe> {
    let name = "adopt";
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
    build(addr, len, offset, probe.kind, track, "adopt")
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
    let name = "adopt";
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
