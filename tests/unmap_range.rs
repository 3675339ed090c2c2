//! dax_unmap_range through the C API (the Rust API has no such call) against the calls
//! it must not unmap memory under: each case killed the process (SIGSEGV) before its
//! fix. One case at a time.

use daxpmem as _;

#[allow(non_camel_case_types)]
type dax_map_t = std::ffi::c_void;
use libc::{c_char, c_int, c_uint, c_void, mode_t, size_t};
const DAX_CREATE: c_uint = 1;
unsafe extern "C" {
    safe fn dax_map(
        path: *const c_char,
        len: size_t,
        flags: c_uint,
        mode: mode_t,
    ) -> *mut dax_map_t;
    safe fn dax_unmap(m: *mut dax_map_t) -> c_int;
    safe fn dax_addr(m: *const dax_map_t) -> *mut c_void;
    safe fn dax_errormsg() -> *const c_char;
    fn dax_punch_hole(m: *mut dax_map_t, addr: *const c_void, len: size_t) -> c_int;
    fn dax_unmap_range(addr: *mut c_void, len: size_t) -> c_int;
}

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn path(name: &str) -> std::ffi::CString {
    let dir = std::env::var_os("DAXPMEM_TEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let p = dir.join(format!("daxpmem-unmap-range-{name}-{}", std::process::id()));
    let _ = std::fs::remove_file(&p);
    std::ffi::CString::new(p.into_os_string().into_encoded_bytes()).unwrap()
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap()
}

fn msg() -> String {
    // SAFETY: dax_errormsg returns a NUL-terminated string of this thread's.
    unsafe { std::ffi::CStr::from_ptr(dax_errormsg()) }
        .to_string_lossy()
        .into_owned()
}

/// dax_punch_hole racing dax_unmap_range of its whole mapping: the punch (madvise of
/// the whole pages, then zeroing the partial edge pages through the mapping) completes
/// on the mapped memory or fails with EBADF; the range is unmapped only after it.
#[test]
fn punch_hole_racing_unmap_range_completes_or_is_ebadf() {
    let _g = SERIAL.lock().unwrap();
    let p = path("punch");
    let len = 16usize << 20;
    for round in 0..100 {
        let m = dax_map(p.as_ptr(), len, DAX_CREATE, 0o600);
        assert!(!m.is_null(), "{}", msg());
        let base = dax_addr(m) as usize;
        // Populated: MADV_REMOVE has work to do.
        // SAFETY: the mapping is ours, len bytes.
        unsafe { std::ptr::write_bytes(base as *mut u8, 7, len) };
        let started = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (mm, s2) = (m as usize, started.clone());
        let puncher = std::thread::spawn(move || {
            s2.store(true, std::sync::atomic::Ordering::SeqCst);
            // Two partial edge pages: 100 bytes in, 100 bytes short of the end.
            // SAFETY: a handle and a range of its mapping (checked by the call).
            let r = unsafe { dax_punch_hole(mm as *mut _, (base + 100) as *const _, len - 200) };
            if r != 0 {
                let e = errno();
                // EOPNOTSUPP: a filesystem without hole punching.
                assert!(e == libc::EBADF || e == libc::EOPNOTSUPP, "{e}: {}", msg());
            }
        });
        while !started.load(std::sync::atomic::Ordering::SeqCst) {
            std::hint::spin_loop();
        }
        std::thread::sleep(std::time::Duration::from_micros(20 + (round % 20) * 20));
        // SAFETY: the range is the mapping, given up here.
        assert_eq!(
            unsafe { dax_unmap_range(base as *mut _, len) },
            0,
            "{}",
            msg()
        );
        puncher.join().unwrap();
        assert_eq!(dax_unmap(m), -1);
        assert_eq!(errno(), libc::EBADF);
    }
    // SAFETY: a NUL-terminated path.
    unsafe { libc::unlink(p.as_ptr()) };
}
