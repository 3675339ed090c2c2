//! A global allocator that counts the allocations of the threads that ask (for the
//! tests that prove a call allocates nothing: a signal handler that interrupted malloc
//! would deadlock on it). Included by `#[path]`; the including test sets it as its
//! `#[global_allocator]`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

pub struct Counting;

// Per thread: the test harness's main thread may allocate while a case runs (its channel
// wait registers a waker on first use; that raced the first case on a cold start and
// counted 4 allocations that were not the library's).
thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        // try_with: no allocation (const initialiser, no destructor), and no panic while
        // the thread's locals are being torn down.
        if COUNTING.try_with(Cell::get).unwrap_or(false) {
            ALLOCS.fetch_add(1, SeqCst);
        }
        // SAFETY: forwarded.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: forwarded.
        unsafe { System.dealloc(p, l) }
    }
}

/// Allocations made by `f` on this thread.
pub fn allocs(f: impl FnOnce()) -> usize {
    ALLOCS.store(0, SeqCst);
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    ALLOCS.load(SeqCst)
}
