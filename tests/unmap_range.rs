//! dax_unmap_range through the C API (the Rust API has no such call) against the calls
//! it must not unmap memory under, and a split that cannot be completed: each case
//! killed the process (SIGSEGV) before its fix. One case at a time: the registry-full
//! case leaves no slot for anything else while it runs.

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
    safe fn dax_len(m: *const dax_map_t) -> size_t;
    safe fn dax_find(addr: *const c_void) -> *mut dax_map_t;
    safe fn dax_errormsg() -> *const c_char;
    fn dax_punch_hole(m: *mut dax_map_t, addr: *const c_void, len: size_t) -> c_int;
    fn dax_memset(m: *mut dax_map_t, dst: *mut c_void, c: c_int, len: size_t) -> c_int;
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

/// A split that cannot register its parts (the registry is full) fails with ENOMEM and
/// changes nothing: the whole mapping stays mapped, registered and usable through its
/// handle, and it can be split once there is room.
#[test]
fn a_split_without_room_fails_whole() {
    let _g = SERIAL.lock().unwrap();
    let p = path("split");
    let page = 4096;
    let m = dax_map(p.as_ptr(), 3 * page, DAX_CREATE, 0o600);
    assert!(!m.is_null(), "{}", msg());
    let base = dax_addr(m) as usize;
    // SAFETY: the mapping is ours, three pages.
    unsafe { std::ptr::write_bytes(base as *mut u8, 1, 3 * page) };
    let mut fill = vec![];
    loop {
        let f = dax_map(p.as_ptr(), page, 0, 0);
        if f.is_null() {
            assert_eq!(errno(), libc::ENOMEM, "{}", msg());
            break;
        }
        fill.push(f);
    }
    // SAFETY: the middle page of the mapping.
    let r = unsafe { dax_unmap_range((base + page) as *mut _, page) };
    assert_eq!((r, errno()), (-1, libc::ENOMEM), "{}", msg());
    // Nothing changed: every page is still mapped and the handle is the whole mapping's.
    for pg in 0..3 {
        let mut v = 0u8;
        // SAFETY: mincore only reads the page tables.
        let mapped = unsafe { libc::mincore((base + pg * page) as *mut _, page, &mut v) } == 0;
        assert!(
            mapped,
            "page {pg} of the mapping was unmapped by a failed split"
        );
    }
    assert_eq!(dax_find(base as *const _), m);
    assert_eq!(dax_find((base + 2 * page) as *const _), m);
    assert_eq!(dax_len(m), 3 * page);
    // SAFETY: inside the mapping.
    assert_eq!(
        unsafe { dax_memset(m, base as *mut _, 2, 3 * page) },
        0,
        "{}",
        msg()
    );
    // SAFETY: inside the mapping.
    assert_eq!(unsafe { *((base + page + 5) as *const u8) }, 2);
    for f in fill {
        assert_eq!(dax_unmap(f), 0);
    }
    // With room, the same split succeeds.
    // SAFETY: the middle page of the mapping.
    assert_eq!(
        unsafe { dax_unmap_range((base + page) as *mut _, page) },
        0,
        "{}",
        msg()
    );
    let (lo, hi) = (
        dax_find(base as *const _),
        dax_find((base + 2 * page) as *const _),
    );
    assert!(!lo.is_null() && !hi.is_null() && lo != hi && lo != m);
    assert_eq!(dax_unmap(m), -1);
    assert_eq!((dax_unmap(lo), dax_unmap(hi)), (0, 0));
    // SAFETY: a NUL-terminated path.
    unsafe { libc::unlink(p.as_ptr()) };
}

#[repr(C)]
#[derive(Default)]
struct Stats {
    size: u32,
    track_mode: u32,
    dirty_lines: u64,
    rest: [u64; 6],
}
unsafe extern "C" {
    fn dax_get_stats(m: *mut dax_map_t, out: *mut Stats) -> c_int;
}

/// dax_memset into the first half of a page-cache mapping racing dax_unmap_range of a
/// part of its second half (a split: the first half becomes a mapping of its own): a
/// fill that returns 0 has its lines marked in the mapping that holds them now (the
/// part's, from dax_find), or it fails with EBADF (mark again through the part's
/// handle), as dax_mark_dirty does. Found in session 10: a fill that marked the old
/// mapping after its marks had moved to the parts returned 0 and its lines were in no
/// live mapping's index (a sync of the part would not have covered them).
#[test]
fn a_fill_racing_a_split_is_marked_in_the_part_or_ebadf() {
    let _g = SERIAL.lock().unwrap();
    let p = path("fillsplit");
    let len = 16usize << 20;
    let half = len / 2;
    let (mut ok, mut ebadf, mut lost) = (0, 0, 0);
    for round in 0..200usize {
        let m = dax_map(p.as_ptr(), len, DAX_CREATE, 0o600);
        assert!(!m.is_null(), "{}", msg());
        let base = dax_addr(m) as usize;
        let started = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (mm, s2) = (m as usize, started.clone());
        let filler = std::thread::spawn(move || {
            s2.store(true, std::sync::atomic::Ordering::SeqCst);
            // SAFETY: a handle and a range of its mapping (checked by the call).
            let r = unsafe { dax_memset(mm as *mut _, base as *mut _, 5, half) };
            (r, if r != 0 { errno() } else { 0 })
        });
        while !started.load(std::sync::atomic::Ordering::SeqCst) {
            std::hint::spin_loop();
        }
        let t = std::time::Instant::now();
        while t.elapsed() < std::time::Duration::from_micros((round as u64 * 13) % 1500) {
            std::hint::spin_loop();
        }
        // SAFETY: a range of the mapping, which the test gives up.
        assert_eq!(
            unsafe { dax_unmap_range((base + half + (4 << 20)) as *mut _, 4 << 20) },
            0,
            "{}",
            msg()
        );
        let (r, e) = filler.join().unwrap();
        let part = dax_find(base as *const _);
        assert!(!part.is_null());
        if r == 0 {
            ok += 1;
            let mut st = Stats {
                size: std::mem::size_of::<Stats>() as u32,
                ..Default::default()
            };
            // SAFETY: a live handle and a stats struct of the header's layout.
            assert_eq!(unsafe { dax_get_stats(part, &mut st) }, 0, "{}", msg());
            if st.dirty_lines < (half / 64) as u64 {
                lost += 1;
            }
        } else {
            assert_eq!(e, libc::EBADF, "{}", msg());
            ebadf += 1;
        }
        assert_eq!(dax_unmap(part), 0);
        let rest = dax_find((base + len - 1) as *const _);
        if !rest.is_null() {
            assert_eq!(dax_unmap(rest), 0);
        }
        let mid = dax_find((base + half) as *const _);
        if !mid.is_null() {
            assert_eq!(dax_unmap(mid), 0);
        }
    }
    let _ = std::fs::remove_file(p.to_str().unwrap());
    eprintln!("fills: {ok} returned 0, {ebadf} EBADF, {lost} of the 0s lost their marks");
    assert_eq!(
        lost, 0,
        "fills that returned 0 with their lines in no live mapping"
    );
}
