//! Fork: the one place that knows about it. Nothing is taken before a fork (a fork
//! never waits for the library, whatever other threads are doing in it); in the child,
//! where only the forking thread exists, whatever another thread had half done is
//! released or completed:
//! - the calls other threads had in flight hold no users of any mapping (registry);
//! - every lock another thread held is free, its scratch state fresh (lock.rs); the
//!   lines a mapping's sync state held (a ranged sync's spill, what an interrupted sync
//!   had taken) are marked in its index again first (`sync::salvage_after_fork`);
//! - the dirty index's line counts are recomputed from its bits (a mark or take another
//!   thread had half made may have set or cleared bits without counting them);
//! - a mark another thread had half written (a ticket without an entry) is skipped
//!   (marklog.rs: a sync never waits for a mark); one half written into a thread's
//!   mark ring was never published (rings.rs), whose consumer locks are reset;
//! - the process total of lines written back is readable (sync.rs);
//! - DAX_TRACK_UFFD mappings re-arm on their next sync (their descriptors are the
//!   parent's registration).
//!
//! Not supported: `fork()` from a signal handler that interrupted a daxpmem call on the
//! same thread (the interrupted call's user of its mapping is dropped in the child).

use crate::map::Track;

/// Register the fork handler (once, from the library's constructor).
pub fn install() {
    // SAFETY: registering a plain extern "C" callback.
    unsafe { libc::pthread_atfork(None, None, Some(child)) };
}

extern "C" fn child() {
    let _ = std::panic::catch_unwind(after_fork_child);
}

fn after_fork_child() {
    crate::sync::after_fork_child();
    crate::rings::after_fork_child();
    crate::registry::after_fork_child(&mut |m| {
        m.sync_lock.reset_after_fork_with(|s| {
            // SAFETY: `s` is m's sync scratch, and this is the forked child.
            unsafe { crate::sync::salvage_after_fork(m, s) }
        });
        m.fault_lock.reset_after_fork();
        m.log.after_fork_child();
        m.index.recount_after_fork();
        if m.track == Track::Uffd {
            m.uffd.after_fork_child();
        }
    });
}
