//! DAX_TRACK_UFFD's descriptors, held by the mapping as plain data (uffd.rs arms and
//! collects through them).

use crate::sys;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, Ordering::SeqCst};
use std::sync::Arc;

/// A mapping's two descriptors: its userfaultfd (the registration lives as long as it
/// is open) and its /proc/self/pagemap (only valid in the process that opened it).
/// Shared by the pieces of a split mapping (the memory stays registered with the same
/// userfaultfd), so a split opens no descriptor; closed with the last piece.
struct Fds {
    uffd: i32,
    pagemap: i32,
}

impl Drop for Fds {
    fn drop(&mut self) {
        sys::close(self.uffd);
        sys::close(self.pagemap);
    }
}

/// The userfaultfd state of one mapping. All fields are atomics: `uffd::arm` and
/// `uffd::collect` run under the mapping's sync lock, the fork callback in a single-threaded child.
pub struct UffdState {
    /// Our descriptors: an `Arc<Fds>` as a raw pointer (null: none), replaced only under
    /// the mapping's sync lock (arm, rearm, piece) and released by drop.
    fds: AtomicPtr<Fds>,
    /// The process that armed the state.
    pub(crate) pid: AtomicI32,
    /// Set once arming was attempted (a piece of a split mapping inherits it).
    pub(crate) armed: AtomicBool,
    /// Set in a forked child: the descriptors above belong to the parent.
    pub(crate) stale: AtomicBool,
    /// Re-arming failed: every collection marks its whole range.
    pub(crate) degraded: AtomicBool,
}

impl Default for UffdState {
    fn default() -> UffdState {
        UffdState {
            fds: AtomicPtr::new(std::ptr::null_mut()),
            pid: AtomicI32::new(0),
            armed: AtomicBool::new(false),
            stale: AtomicBool::new(false),
            degraded: AtomicBool::new(false),
        }
    }
}

impl Drop for UffdState {
    fn drop(&mut self) {
        self.set_fds(None);
    }
}

impl UffdState {
    /// The state of a piece of a split mapping (under the whole's sync lock): the memory
    /// stays registered with the same userfaultfd, whose descriptors the piece shares
    /// (no new descriptor: a split cannot fail for want of one), and the written bits
    /// still in the page tables are collected by the piece.
    pub fn piece(&self) -> UffdState {
        let p = self.fds.load(SeqCst);
        if !p.is_null() {
            // SAFETY: p is a live Arc<Fds> this state holds; the piece takes a reference.
            unsafe { Arc::increment_strong_count(p) };
        }
        UffdState {
            fds: AtomicPtr::new(p),
            pid: AtomicI32::new(self.pid.load(SeqCst)),
            armed: AtomicBool::new(self.armed.load(SeqCst)),
            stale: AtomicBool::new(self.stale.load(SeqCst)),
            degraded: AtomicBool::new(self.degraded.load(SeqCst)),
        }
    }

    /// Replace the descriptors (None: drop this state's reference to them).
    pub(crate) fn set_fds(&self, fds: Option<(i32, i32)>) {
        let new = fds.map_or(std::ptr::null_mut(), |(uffd, pagemap)| {
            Arc::into_raw(Arc::new(Fds { uffd, pagemap })) as *mut Fds
        });
        let old = self.fds.swap(new, SeqCst);
        if !old.is_null() {
            // SAFETY: old was this state's reference (from Arc::into_raw).
            drop(unsafe { Arc::from_raw(old) });
        }
    }

    /// The pagemap descriptor (-1: none).
    pub(crate) fn pagemap(&self) -> i32 {
        let p = self.fds.load(SeqCst);
        if p.is_null() {
            -1
        } else {
            // SAFETY: a non-null p is a live Arc<Fds> this state holds.
            unsafe { (*p).pagemap }
        }
    }

    /// In a forked child (async-signal-safe: one store): the descriptors belong to the
    /// parent's registration and page tables; the next collection re-arms.
    pub fn after_fork_child(&self) {
        self.stale.store(true, SeqCst);
    }
}
