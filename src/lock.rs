//! Two small locks that know their owner: the sync lock of a mapping (a futex mutex:
//! syncs may take milliseconds, waiters sleep; released without a locked instruction,
//! see `Mutex::unlock`) and the fault lock shared by the tracking signal handler and
//! the collector (a spin lock: held for a few system calls, taken in a signal handler,
//! so it never sleeps in the kernel and allocates nothing).
//!
//! The lock word holds the owning thread's thread pointer (`%fs:0`, unique among live
//! threads and the same in a forked child as in the thread that forked), so:
//! - a thread that already holds the lock and asks again (a signal handler that
//!   interrupted the holder on the same thread) gets `EDEADLK` at once instead of
//!   waiting forever for itself;
//! - a forked child, where only the forking thread exists, frees every lock another
//!   thread held (`reset_after_fork`): nothing is taken before a fork, so a fork never
//!   waits for a lock and a child never inherits one it cannot release.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicU64, Ordering::*};

/// This thread's identity: the x86-64 thread pointer (`%fs:0` holds its own address,
/// per the ELF TLS ABI). Never 0, at least 8-aligned (bit 0 is free for the lock word),
/// async-signal-safe, one load.
#[inline(always)]
pub fn self_id() -> u64 {
    let tp: u64;
    // SAFETY: reads the thread pointer slot of the TCB, present on every x86-64 Linux
    // thread; no memory is written.
    unsafe {
        std::arch::asm!("mov {}, qword ptr fs:[0]", out(reg) tp, options(nostack, readonly, preserves_flags))
    };
    tp
}

/// The lock is held by this thread already (re-entered from a signal handler).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reentered;

/// Bit 0 of a held lock word: somebody may be waiting (wake one on release).
const WAITERS: u64 = 1;

/// How long a waiter sleeps before it looks at the lock again by itself (see
/// `Mutex::unlock`: a wake-up can be missed, never the lock).
const RECHECK: libc::timespec = libc::timespec {
    tv_sec: 0,
    tv_nsec: 1_000_000,
};

/// FUTEX_WAIT on the low half of the lock word (little-endian: the word's address),
/// for as long as it still holds `seen`'s low half, at most `RECHECK`.
fn futex_wait(word: &AtomicU64, seen: u64) {
    // SAFETY: FUTEX_WAIT on a valid, aligned u32 (the low half of our word) with a
    // valid relative timeout.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr() as *const u32,
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            seen as u32,
            &RECHECK as *const libc::timespec,
        );
    }
}

fn futex_wake(word: &AtomicU64) {
    // SAFETY: FUTEX_WAKE of one waiter on the low half of our word.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr() as *const u32,
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            1u32,
        );
    }
}

/// A futex mutex guarding a `T`. The word is 0 when free, else the owner's `self_id()`
/// with bit 0 set when there may be waiters.
pub struct Mutex<T> {
    state: AtomicU64,
    value: UnsafeCell<T>,
}

// SAFETY: the value is reached only through a guard, one holder at a time.
unsafe impl<T: Send> Sync for Mutex<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Send for Mutex<T> {}

pub struct Guard<'a, T> {
    m: &'a Mutex<T>,
}

impl<T> Mutex<T> {
    pub const fn new(v: T) -> Self {
        Mutex {
            state: AtomicU64::new(0),
            value: UnsafeCell::new(v),
        }
    }

    /// Take the lock, sleeping while another thread holds it; `Err(Reentered)` when
    /// this thread holds it already.
    #[inline]
    pub fn lock(&self) -> Result<Guard<'_, T>, Reentered> {
        let me = self_id();
        if self
            .state
            .compare_exchange(0, me, Acquire, Relaxed)
            .is_err()
        {
            self.lock_slow(me)?;
        }
        Ok(Guard { m: self })
    }

    #[cold]
    fn lock_slow(&self, me: u64) -> Result<(), Reentered> {
        loop {
            let s = self.state.load(Relaxed);
            if s == 0 {
                // Taken with the waiters bit: others may still be asleep.
                if self
                    .state
                    .compare_exchange(0, me | WAITERS, Acquire, Relaxed)
                    .is_ok()
                {
                    return Ok(());
                }
                continue;
            }
            if s & !WAITERS == me {
                return Err(Reentered);
            }
            if s & WAITERS == 0
                && self
                    .state
                    .compare_exchange(s, s | WAITERS, Relaxed, Relaxed)
                    .is_err()
            {
                continue;
            }
            futex_wait(&self.state, s | WAITERS);
        }
    }

    /// Release. Without waiters this is a plain store, not a locked instruction: a
    /// locked instruction after a sync's write-backs would wait for all of them to
    /// complete (see sync.rs). A waiter that announces itself between the load and the
    /// store is not woken; it looks again within `RECHECK`.
    #[inline]
    fn unlock(&self) {
        let s = self.state.load(Relaxed);
        if s & WAITERS == 0 {
            self.state.store(0, Release);
            return;
        }
        self.state.store(0, Release);
        futex_wake(&self.state);
    }

    /// Whether this thread holds the lock.
    #[cfg_attr(not(feature = "seam"), allow(dead_code))] // only the tests use it
    pub fn held_by_me(&self) -> bool {
        self.state.load(Relaxed) & !WAITERS == self_id()
    }
}

impl<T: Default> Mutex<T> {
    /// In a forked child (only the forking thread exists): a lock another thread held
    /// is free again and its value starts afresh (the holder may have left it half
    /// changed; the old value is leaked, never dropped). A lock this thread holds stays
    /// held: the frame that took it will release it. Async-signal-safe when `T`'s
    /// default allocates nothing.
    pub fn reset_after_fork(&self) {
        self.reset_after_fork_with(|_| ());
    }

    /// `reset_after_fork`, handing the value another thread held to `salvage` first,
    /// as a pointer: the holder may have left it half changed (a vector's buffer may
    /// even have been freed by a growth whose new pointer was not yet stored), so
    /// `salvage` reads what it needs of it as such (`sys::read_own_words`).
    pub fn reset_after_fork_with(&self, salvage: impl FnOnce(*const T)) {
        let s = self.state.load(Relaxed);
        if s != 0 && s & !WAITERS != self_id() {
            salvage(self.value.get());
            // SAFETY: no other thread exists in the child, and the holder that could
            // reach the value is gone; the old value is overwritten without drop.
            unsafe { std::ptr::write(self.value.get(), T::default()) };
            self.state.store(0, Relaxed);
        }
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
        self.m.unlock();
    }
}

/// A spin lock for the fault path (async-signal-safe: atomics only). Its word is 0 or
/// the owner's `self_id()`.
#[derive(Default)]
pub struct SpinLock {
    held: AtomicU64,
}

impl SpinLock {
    /// Take the lock; `Err(Reentered)` when this thread holds it already. Holders keep
    /// it for a few system calls with every signal blocked, so the spin is short.
    pub fn lock(&self) -> Result<(), Reentered> {
        let me = self_id();
        loop {
            match self.held.compare_exchange_weak(0, me, Acquire, Relaxed) {
                Ok(_) => return Ok(()),
                Err(cur) if cur == me => return Err(Reentered),
                Err(_) => std::hint::spin_loop(),
            }
        }
    }
    pub fn unlock(&self) {
        self.held.store(0, Release);
    }
    /// In a forked child: free if another thread held it (see `Mutex::reset_after_fork`).
    pub fn reset_after_fork(&self) {
        let s = self.held.load(Relaxed);
        if s != 0 && s != self_id() {
            self.held.store(0, Relaxed);
        }
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
                        *m.lock().unwrap() += 1;
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(*m.lock().unwrap(), 400_000);
    }

    #[test]
    fn reentry_is_refused_not_waited_for() {
        let m = Mutex::new(());
        let g = m.lock().unwrap();
        assert!(m.held_by_me());
        assert_eq!(m.lock().err(), Some(Reentered));
        drop(g);
        assert!(!m.held_by_me());
        let s = SpinLock::default();
        s.lock().unwrap();
        assert_eq!(s.lock(), Err(Reentered));
        s.unlock();
        s.lock().unwrap();
        s.unlock();
    }

    #[test]
    fn thread_ids_differ_and_are_stable() {
        let a = self_id();
        assert_eq!(a, self_id());
        assert_ne!(a & 7, 1);
        let b = std::thread::spawn(self_id).join().unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn another_threads_lock_is_reset_in_a_child_but_not_ours() {
        // Emulate a child: a lock held by another (gone) thread is freed and its value
        // reset; our own stays held.
        let m = Arc::new(Mutex::new(vec![1u8]));
        let m2 = m.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let (tx2, rx2) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || {
            let g = m2.lock().unwrap();
            tx.send(()).unwrap();
            rx2.recv().unwrap();
            std::mem::forget(g);
        });
        rx.recv().unwrap();
        m.reset_after_fork();
        assert!(m.lock().unwrap().is_empty());
        tx2.send(()).unwrap();
        t.join().unwrap();
        let mine = Mutex::new(vec![2u8]);
        let g = mine.lock().unwrap();
        mine.reset_after_fork();
        assert!(mine.held_by_me());
        assert_eq!(*g, vec![2u8]);
    }
}
