//! Raw system calls for the memory-management calls the preload library interposes
//! (mmap, munmap, mremap, msync, mprotect, madvise): the core must reach the kernel,
//! never its own hook, so it does not go through the libc symbols. (Through them, the
//! preload's hooks would see the core's own mappings: its munmap hook would re-enter
//! the core (`dax_unmap_range`) from inside the drop of a mapping's index, its mmap hook
//! would look at every index and reservation.) Every memory-management call of the
//! core goes through here.

use crate::error::{Error, Result};

/// glibc's syscall(2) returns -1 and sets errno on failure (it does not return -errno).
fn ret(r: libc::c_long, what: &str) -> Result<usize> {
    ret_errno(r).map_err(|n| named(n, what))
}

fn named(n: i32, what: &str) -> Error {
    Error::new(
        n,
        format!("{what}: {}", std::io::Error::from_raw_os_error(n)),
    )
}

/// As `ret`, without allocating: Err(errno).
fn ret_errno(r: libc::c_long) -> std::result::Result<usize, i32> {
    if r == -1 {
        return Err(crate::error::errno());
    }
    Ok(r as usize)
}

/// mmap(2) without allocating, even on failure (async-signal-safe). Returns the address
/// or Err(errno).
///
/// # Safety
/// As for mmap: with MAP_FIXED the range must be the caller's to replace.
pub unsafe fn mmap_errno(
    addr: usize,
    len: usize,
    prot: i32,
    flags: i32,
    fd: i32,
    off: u64,
) -> std::result::Result<usize, i32> {
    // SAFETY: forwarded from the caller.
    ret_errno(unsafe { libc::syscall(libc::SYS_mmap, addr, len, prot, flags, fd, off) })
}

/// mmap(2). Returns the address.
///
/// # Safety
/// As for mmap: with MAP_FIXED the range must be the caller's to replace.
pub unsafe fn mmap(
    addr: usize,
    len: usize,
    prot: i32,
    flags: i32,
    fd: i32,
    off: u64,
) -> Result<usize> {
    // SAFETY: forwarded from the caller.
    unsafe { mmap_errno(addr, len, prot, flags, fd, off) }.map_err(|n| named(n, "mmap"))
}

/// munmap(2).
///
/// # Safety
/// The range must be the caller's and unused afterwards.
pub unsafe fn munmap(addr: usize, len: usize) -> Result<()> {
    // SAFETY: forwarded from the caller.
    ret(
        unsafe { libc::syscall(libc::SYS_munmap, addr, len) },
        "munmap",
    )
    .map(|_| ())
}

/// msync(2). Safe: it never changes memory contents.
pub fn msync(addr: usize, len: usize, flags: i32) -> Result<()> {
    // SAFETY: msync only writes back / checks the range; a bad range gives an error.
    ret(
        unsafe { libc::syscall(libc::SYS_msync, addr, len, flags) },
        "msync",
    )
    .map(|_| ())
}

/// mprotect(2).
///
/// # Safety
/// Changing protection of memory in use by safe code may make it fault.
pub unsafe fn mprotect(addr: usize, len: usize, prot: i32) -> Result<()> {
    // SAFETY: forwarded from the caller.
    ret(
        unsafe { libc::syscall(libc::SYS_mprotect, addr, len, prot) },
        "mprotect",
    )
    .map(|_| ())
}

/// madvise(2).
///
/// # Safety
/// Some advice (MADV_DONTNEED, MADV_REMOVE) discards memory contents.
pub unsafe fn madvise(addr: usize, len: usize, advice: i32) -> Result<()> {
    // SAFETY: forwarded from the caller.
    ret(
        unsafe { libc::syscall(libc::SYS_madvise, addr, len, advice) },
        "madvise",
    )
    .map(|_| ())
}

/// close(2) of a descriptor the caller owns and forgets (negative: nothing).
pub fn close(fd: i32) {
    if fd >= 0 {
        // SAFETY: fd is a descriptor the caller owns; it is forgotten here.
        unsafe { libc::close(fd) };
    }
}

/// Hand the `n` 64-bit words at `addr` of this process's memory to `f`, read through
/// the kernel (process_vm_readv) in chunks of a stack buffer: memory that may have been
/// freed (and unmapped) is read without a fault, and without allocating
/// (async-signal-safe). False if any word could not be read (then some were not
/// handed out).
pub fn read_own_words(addr: usize, n: usize, mut f: impl FnMut(u64)) -> bool {
    const CHUNK: usize = 256;
    let mut buf = [0u64; CHUNK];
    let mut done = 0;
    while done < n {
        let m = (n - done).min(CHUNK);
        let Some(at) = done.checked_mul(8).and_then(|b| addr.checked_add(b)) else {
            return false;
        };
        let local = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: m * 8,
        };
        let remote = libc::iovec {
            iov_base: at as *mut libc::c_void,
            iov_len: m * 8,
        };
        // SAFETY: the local iovec is this frame's buffer of m words; the kernel checks
        // the remote range and fails (EFAULT) rather than fault on it.
        let r = unsafe { libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0) };
        if r != (m * 8) as isize {
            return false;
        }
        buf[..m].iter().for_each(|&w| f(w));
        done += m;
    }
    true
}

pub(crate) const PAGE: usize = 4096;

/// A private anonymous MAP_NORESERVE region of `len` bytes, zero-filled, backed by the
/// kernel only where it is touched (the dirty index and the mark log live in these).
pub fn anon_region(len: usize) -> std::io::Result<*mut libc::c_void> {
    // SAFETY: a fresh mapping at a kernel-chosen address; no existing memory is touched.
    let p = unsafe {
        mmap_errno(
            0,
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    }
    .map_err(std::io::Error::from_raw_os_error)?;
    Ok(p as *mut libc::c_void)
}

pub fn page_down(a: usize) -> usize {
    a & !(PAGE - 1)
}

pub fn page_up(a: usize) -> usize {
    (a + PAGE - 1) & !(PAGE - 1)
}

/// Every signal blocked on this thread while the guard lives (the previous mask comes
/// back on drop). For sections a signal handler on the same thread must not interrupt:
/// one that would wait for what the section holds would wait forever.
pub struct SignalsBlocked {
    old: libc::sigset_t,
}

impl SignalsBlocked {
    pub fn all() -> SignalsBlocked {
        // SAFETY: an all-zero sigset_t is a valid value to initialise.
        let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: sigfillset and pthread_sigmask with valid sets of ours.
        unsafe {
            libc::sigfillset(&mut all);
            libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut old);
        }
        SignalsBlocked { old }
    }
}

impl Drop for SignalsBlocked {
    fn drop(&mut self) {
        // SAFETY: restoring this thread's mask saved by new().
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.old, std::ptr::null_mut()) };
    }
}

/// A full memory barrier on every thread of the process that is running now (the
/// others pass one when they are scheduled again): `membarrier(2)`, private expedited
/// (registered on first use, and again in a forked child, whose memory map is new),
/// else the global command. For the rare side of an asymmetric protocol whose common
/// side uses plain stores and loads (rings.rs: a mark's append, then its liveness
/// check). Async-signal-safe (system calls only). Err when neither command works.
pub fn process_barrier() -> Result<()> {
    const PRIVATE_EXPEDITED: libc::c_long = 1 << 3;
    const REGISTER_PRIVATE_EXPEDITED: libc::c_long = 1 << 4;
    const GLOBAL: libc::c_long = 1 << 0;
    let call = |cmd: libc::c_long| {
        // SAFETY: membarrier takes no pointers.
        ret_errno(unsafe { libc::syscall(libc::SYS_membarrier, cmd, 0 as libc::c_long, 0 as libc::c_long) })
            .map(|_| ())
    };
    match call(PRIVATE_EXPEDITED) {
        Ok(()) => return Ok(()),
        Err(libc::EPERM) => {
            if call(REGISTER_PRIVATE_EXPEDITED).is_ok() && call(PRIVATE_EXPEDITED).is_ok() {
                return Ok(());
            }
        }
        Err(_) => {}
    }
    call(GLOBAL).map_err(|e| Error::at(e, "membarrier", "no process-wide barrier"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn failures_carry_the_kernels_errno() {
        // An unaligned munmap is EINVAL, an msync of an unmapped range ENOMEM.
        // SAFETY: an unaligned munmap fails without touching anything.
        let e = unsafe { super::munmap(1, 4096) }.unwrap_err();
        assert_eq!(e.errno, libc::EINVAL);
        let e = super::msync(0x1000, 4096, libc::MS_SYNC).unwrap_err();
        assert_eq!(e.errno, libc::ENOMEM);
    }

    #[test]
    fn process_barrier_works_here_and_again_after_registration() {
        super::process_barrier().unwrap();
        super::process_barrier().unwrap();
    }
}
