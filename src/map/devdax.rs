//! Device DAX (`/dev/daxN.M`): its size and alignment, from sysfs.

use super::MIB2;
use crate::error::{Error, Result};

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

pub(super) fn check_devdax_len(name: &str, len: usize, size: usize, align: usize) -> Result<()> {
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
