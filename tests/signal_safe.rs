//! The calls the header lists as async-signal-safe allocate nothing, also when they
//! fail (malloc in a signal handler that interrupted malloc deadlocks or corrupts the
//! heap). Checked with a counting global allocator around each call.

// Link the library (nothing else in this file names it).
use daxpmem as _;

// The C API, as a C program sees it: the library's exported functions (the Rust crate
// keeps its C layer private; the symbols are in the rlib all the same).
#[allow(non_camel_case_types)]
type dax_map_t = std::ffi::c_void;
use libc::{c_char, c_int, c_uint, c_void, mode_t, size_t};
const DAX_CREATE: c_uint = 1;
const DAXPMEM_COUNTER_LINES_WRITTEN_BACK: c_uint = 3;
// `safe`: as the C functions were to Rust callers (each checks its arguments).
unsafe extern "C" {
    safe fn wb_cache_pmem(addr: *const c_void, len: size_t);
    safe fn wmb_pmem();
    safe fn clear_pmem(addr: *mut c_void, len: size_t);
    safe fn memcpy_to_pmem(dst: *mut c_void, src: *const c_void, len: size_t) -> *mut c_void;
    safe fn dax_map(
        path: *const c_char,
        len: size_t,
        flags: c_uint,
        mode: mode_t,
    ) -> *mut dax_map_t;
    safe fn dax_unmap(m: *mut dax_map_t) -> c_int;
    safe fn dax_addr(m: *const dax_map_t) -> *mut c_void;
    safe fn dax_len(m: *const dax_map_t) -> size_t;
    safe fn dax_is_pmem(m: *const dax_map_t) -> c_int;
    safe fn dax_track_mode(m: *const dax_map_t) -> c_int;
    safe fn dax_mark_dirty(m: *mut dax_map_t, addr: *const c_void, len: size_t) -> c_int;
    safe fn dax_errormsg() -> *const c_char;
    safe fn dax_lookup(addr: *const c_void, len: size_t) -> *mut dax_map_t;
    safe fn daxpmem_cache_line_size() -> size_t;
    safe fn daxpmem_counter(id: c_uint, n: u64) -> u64;
    safe fn daxpmem_flush_name() -> *const c_char;
    safe fn daxpmem_nt_name() -> *const c_char;
    safe fn daxpmem_version() -> *const c_char;
    safe fn daxpmem_persist(addr: *const c_void, len: size_t);
    safe fn daxpmem_memmove(
        dst: *mut c_void,
        src: *const c_void,
        len: size_t,
        flags: c_uint,
    ) -> *mut c_void;
    safe fn daxpmem_memset(dst: *mut c_void, c: c_int, len: size_t, flags: c_uint) -> *mut c_void;
}
#[path = "common/counting.rs"]
mod counting;
use counting::allocs;

#[global_allocator]
static A: counting::Counting = counting::Counting;

type Case = (&'static str, Box<dyn Fn()>);

#[test]
fn signal_safe_calls_allocate_nothing_even_when_they_fail() {
    let dir = std::env::var("DAXPMEM_TEST_DIR").unwrap_or_else(|_| "/dev/shm".into());
    let path =
        std::ffi::CString::new(format!("{dir}/daxpmem-sigsafe-{}", std::process::id())).unwrap();
    let m = dax_map(path.as_ptr(), 1 << 20, DAX_CREATE, 0o600);
    assert!(!m.is_null());
    let p = dax_addr(m) as *mut u8;
    // Warm up the thread-local message buffer and the CPU configuration.
    let _ = dax_mark_dirty(std::ptr::null_mut(), p.cast(), 1);
    let forged = 0x1000 as *mut dax_map_t;
    let cases: Vec<Case> = vec![
        (
            "dax_mark_dirty ok",
            Box::new(move || assert_eq!(dax_mark_dirty(m, p.cast(), 64), 0)),
        ),
        (
            "dax_mark_dirty outside",
            Box::new(move || {
                assert_eq!(
                    dax_mark_dirty(m, (p as usize + (2 << 20)) as *const _, 64),
                    -1
                )
            }),
        ),
        (
            "dax_mark_dirty forged",
            Box::new(move || assert_eq!(dax_mark_dirty(forged, p.cast(), 64), -1)),
        ),
        (
            "dax_mark_dirty NULL handle",
            Box::new(move || assert_eq!(dax_mark_dirty(std::ptr::null_mut(), p.cast(), 64), -1)),
        ),
        (
            "dax_addr forged",
            Box::new(move || assert!(dax_addr(forged).is_null())),
        ),
        ("dax_len", Box::new(move || assert_eq!(dax_len(m), 1 << 20))),
        (
            "dax_is_pmem forged",
            Box::new(move || assert_eq!(dax_is_pmem(forged), -1)),
        ),
        (
            "dax_track_mode",
            Box::new(move || assert_eq!(dax_track_mode(m), 0)),
        ),
        (
            "dax_lookup",
            Box::new(move || assert_eq!(dax_lookup(p.cast(), 1), m)),
        ),
        (
            "daxpmem_counter",
            Box::new(|| {
                daxpmem_counter(DAXPMEM_COUNTER_LINES_WRITTEN_BACK, 0);
            }),
        ),
        (
            "daxpmem_counter bad",
            Box::new(|| assert_eq!(daxpmem_counter(99, 1), u64::MAX)),
        ),
        (
            "wb_cache_pmem NULL",
            Box::new(|| wb_cache_pmem(std::ptr::null(), 5)),
        ),
        (
            "wb_cache_pmem",
            Box::new(move || wb_cache_pmem(p.cast(), 4096)),
        ),
        ("wmb_pmem", Box::new(|| wmb_pmem())),
        (
            "clear_pmem wrap",
            Box::new(|| clear_pmem(usize::MAX as *mut _, 5)),
        ),
        (
            "memcpy_to_pmem NULL",
            Box::new(|| {
                assert!(memcpy_to_pmem(std::ptr::null_mut(), std::ptr::null(), 3).is_null())
            }),
        ),
        (
            "daxpmem_memmove bad flags",
            Box::new(move || {
                daxpmem_memmove(p.cast(), p.cast(), 64, 1 << 20);
            }),
        ),
        (
            "daxpmem_memset",
            Box::new(move || {
                daxpmem_memset(p.cast(), 0, 256, 0);
            }),
        ),
        (
            "daxpmem_persist",
            Box::new(move || daxpmem_persist(p.cast(), 256)),
        ),
        (
            "dax_errormsg",
            Box::new(|| {
                dax_errormsg();
            }),
        ),
        (
            "names",
            Box::new(|| {
                daxpmem_flush_name();
                daxpmem_nt_name();
                daxpmem_version();
                daxpmem_cache_line_size();
            }),
        ),
    ];
    for (name, f) in &cases {
        assert_eq!(allocs(f), 0, "{name} allocated");
    }
    assert_eq!(dax_unmap(m), 0);
    let _ = std::fs::remove_file(path.to_str().unwrap());
}
