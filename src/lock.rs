//! Two small locks that a fork can reset: the sync lock of a mapping (a futex mutex:
//! syncs may take milliseconds, waiters sleep; released without a locked instruction,
//! see `raw_unlock`) and the fault lock shared by the tracking
//! signal handler and the collector (a spin lock: held for a few system calls, taken in
//! a signal handler, so it never sleeps in the kernel and allocates nothing).
//!
//! std's Mutex cannot be released from a `pthread_atfork` child callback; these can:
//! the prepare callback takes every lock of every mapping, so no other thread holds one
//! while the process is copied, and parent and child release them again.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::*};

/// A futex mutex (0 free, 1 locked, 2 locked with waiters) guarding a `T`.
pub struct Mutex<T> {
    state: AtomicU32,
    value: UnsafeCell<T>,
}

// SAFETY: the value is reached only through a guard, one holder at a time.
unsafe impl<T: Send> Sync for Mutex<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Send for Mutex<T> {}

pub struct Guard<'a, T> {
    m: &'a Mutex<T>,
}

/// How long a waiter sleeps before it looks at the lock again by itself (see
/// `raw_unlock`: a wake-up can be missed, never the lock).
const RECHECK: libc::timespec = libc::timespec {
    tv_sec: 0,
    tv_nsec: 1_000_000,
};

fn futex(word: &AtomicU32, op: i32, val: u32) {
    let timeout: *const libc::timespec = if op == libc::FUTEX_WAIT {
        &RECHECK
    } else {
        std::ptr::null()
    };
    // SAFETY: FUTEX_WAIT/WAKE on a valid, aligned u32 of ours; the timeout (relative,
    // for WAIT only) is a valid timespec.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            op | libc::FUTEX_PRIVATE_FLAG,
            val,
            timeout,
        );
    }
}

impl<T> Mutex<T> {
    pub const fn new(v: T) -> Self {
        Mutex {
            state: AtomicU32::new(0),
            value: UnsafeCell::new(v),
        }
    }

    pub fn lock(&self) -> Guard<'_, T> {
        self.raw_lock();
        Guard { m: self }
    }

    /// Take the lock without a guard (for the fork callbacks).
    pub fn raw_lock(&self) {
        if self.state.compare_exchange(0, 1, Acquire, Relaxed).is_ok() {
            return;
        }
        while self.state.swap(2, Acquire) != 0 {
            futex(&self.state, libc::FUTEX_WAIT, 2);
        }
    }

    /// Release a lock taken with `raw_lock` (or by a guard that was forgotten).
    pub fn raw_unlock(&self) {
        if self.state.load(Relaxed) == 1 {
            self.state.store(0, Release);
            return;
        }
        if self.state.swap(0, Release) == 2 {
            futex(&self.state, libc::FUTEX_WAKE, 1);
        }
    }

    /// In a forked child, only the forking thread exists: whatever held the lock is gone.
    pub fn reset_after_fork(&self) {
        self.state.store(0, Relaxed);
    }
}

impl<T> std::ops::Deref for Guard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard holds the lock.
        unsafe { &*self.m.value.get() }
    }
}

impl<T> std::ops::DerefMut for Guard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard holds the lock exclusively.
        unsafe { &mut *self.m.value.get() }
    }
}

impl<T> Drop for Guard<'_, T> {
    fn drop(&mut self) {
        self.m.raw_unlock();
    }
}

/// A spin lock for the fault path (async-signal-safe: atomics only).
#[derive(Default)]
pub struct SpinLock {
    held: AtomicBool,
}

impl SpinLock {
    pub fn lock(&self) {
        while self
            .held
            .compare_exchange_weak(false, true, Acquire, Relaxed)
            .is_err()
        {
            std::hint::spin_loop();
        }
    }
    pub fn unlock(&self) {
        self.held.store(false, Release);
    }
    pub fn reset_after_fork(&self) {
        self.held.store(false, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn mutex_excludes() {
        let m = Arc::new(Mutex::new(0u64));
        let hs: Vec<_> = (0..4)
            .map(|_| {
                let m = m.clone();
                std::thread::spawn(move || {
                    for _ in 0..100_000 {
                        *m.lock() += 1;
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(*m.lock(), 400_000);
    }
}
