//! Automatic dirty tracking (mprotect + SIGSEGV, userfaultfd write-protect), the
//! collection step a sync runs first, and the choice behind DAX_TRACK_AUTO.

use crate::error::{Error, Result};
use crate::map::{Mapping, Track};

/// The mode a mapping will really use for `requested`.
pub fn resolve(requested: Track, file_dax: bool) -> Result<Track> {
    match requested {
        Track::Explicit | Track::Kernel => Ok(requested),
        // No user-space tracker is proven lossless yet (see docs/mprotect-on-dax.md): the
        // kernel's own tracking is always correct, on DAX too.
        Track::Auto => Ok(Track::Kernel),
        Track::Uffd if file_dax => Err(Error::new(
            libc::EOPNOTSUPP,
            "DAX_TRACK_UFFD is refused on a DAX mapping: userfaultfd write-protect loses \
             writes and can hang the faulting thread on fsdax (see docs)",
        )),
        Track::Mprotect | Track::Uffd => Err(Error::new(
            libc::EOPNOTSUPP,
            format!(
                "tracking mode {} is not available in this build of daxpmem",
                requested.name()
            ),
        )),
    }
}

/// Move what the tracker saw in `[addr, addr+len)` into the dirty index (called by a
/// sync under the mapping's sync lock).
pub fn collect(m: &Mapping, _addr: usize, _len: usize) -> Result<()> {
    match m.track {
        Track::Explicit | Track::Kernel | Track::Auto => Ok(()),
        Track::Mprotect | Track::Uffd => Ok(()),
    }
}
