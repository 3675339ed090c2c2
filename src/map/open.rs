//! Opening, creating and sizing a file for `dax_map`, and checking a caller's descriptor
//! and range for `dax_map_fd` / `dax_adopt`.

use super::devdax::check_devdax_len;
use super::{devdax_geometry, CREATE, EXCL, SPARSE, VALID_FLAGS};
use crate::error::{Error, Result};
use std::ffi::CStr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

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
            "map {name}: unknown flags {:#x}",
            flags & !VALID_FLAGS
        )));
    }
    if flags & (EXCL | SPARSE) != 0 && flags & CREATE == 0 {
        return Err(Error::inval(format!(
            "map {name}: DAX_EXCL and DAX_SPARSE need DAX_CREATE"
        )));
    }
    if flags & CREATE != 0 && len == 0 {
        return Err(Error::inval(format!(
            "map {name}: DAX_CREATE needs a length to size the file to"
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
        return Err(Error::last_os(format!("map {name}: open")));
    }
    // SAFETY: fd is a fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let created_new = flags & EXCL != 0;
    let st = fstat(fd.as_fd(), &name)?;
    let ftype = st.st_mode & libc::S_IFMT;
    if ftype == libc::S_IFCHR {
        let (size, align) = devdax_geometry(&st).ok_or_else(|| {
            Error::inval(format!(
                "map {name}: a character device that is not device DAX"
            ))
        })?;
        let len = if len == 0 { size } else { len };
        check_devdax_len(&format!("map {name}"), len, size, align)?;
        return Ok((fd, len));
    }
    if ftype != libc::S_IFREG {
        return Err(Error::inval(format!(
            "map {name}: not a regular file or device DAX"
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
                return Err(Error::new(e.errno, format!("map {name}: {}", e.msg)));
            }
        }
        return Ok((fd, len));
    }
    if len == 0 {
        if size == 0 {
            return Err(Error::inval(format!(
                "map {name}: the file is empty and no length was given"
            )));
        }
        return Ok((fd, size as usize));
    }
    if (len as u64) > size {
        return Err(Error::inval(format!(
            "map {name}: length {len} is beyond the end of the file ({size} bytes); use DAX_CREATE to grow it"
        )));
    }
    Ok((fd, len))
}

pub(super) fn fstat(fd: BorrowedFd<'_>, name: &str) -> Result<libc::stat> {
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
    let st = fstat(fd, "map fd")?;
    let size = match st.st_mode & libc::S_IFMT {
        libc::S_IFREG => st.st_size as u64,
        libc::S_IFCHR => devdax_geometry(&st)
            .map(|g| g.0 as u64)
            .ok_or_else(|| Error::inval("map fd: a character device that is not device DAX"))?,
        _ => return Err(Error::inval("map fd: not a regular file or device DAX")),
    };
    if size <= offset {
        return Err(Error::inval(format!(
            "map fd: nothing to map: the file has {size} bytes and the offset is {offset}"
        )));
    }
    Ok((size - offset) as usize)
}

/// dax_map_fd: what dax_map checks of a path, for a descriptor: a regular file long
/// enough for [offset, offset+len), or a device DAX that holds it with a length that is
/// a multiple of its alignment; anything else is EINVAL.
pub fn check_fd_range(fd: BorrowedFd<'_>, offset: u64, len: usize) -> Result<()> {
    let name = "map fd";
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
            "map fd: unknown flags {:#x}",
            flags & !VALID_FLAGS
        )));
    }
    if flags & (CREATE | EXCL | SPARSE) != 0 {
        return Err(Error::inval(
            "map fd: create, exclusive and sparse (DAX_CREATE, DAX_EXCL, DAX_SPARSE) apply to mapping a path only",
        ));
    }
    Ok(())
}
