//! The Rust API as a Rust program uses it: map, write, mark, sync, every tracking mode,
//! statistics, checked ranges, and methods racing `close` on other threads.

use daxpmem::{DaxMap, Error, MapOptions, Stats, Track};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;

/// A fresh path in the test directory (`DAXPMEM_TEST_DIR`, else the temp dir), removed
/// when dropped.
struct TempPath(PathBuf);

impl TempPath {
    fn new(name: &str) -> Self {
        let dir = std::env::var_os("DAXPMEM_TEST_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        let p = dir.join(format!("daxpmem-api-{name}-{}", std::process::id()));
        let _ = std::fs::remove_file(&p);
        TempPath(p)
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn errno(e: &Error) -> i32 {
    e.raw_os_error().unwrap()
}

fn send_sync<T: Send + Sync>() {}

#[test]
fn daxmap_is_send_and_sync() {
    send_sync::<DaxMap>();
    send_sync::<Error>();
    send_sync::<Stats>();
}

#[test]
fn map_write_mark_sync_reopen() {
    let t = TempPath::new("basic");
    let len = 1 << 20;
    let m = MapOptions::new()
        .create(len)
        .exclusive(true)
        .sparse(false)
        .populate(false)
        .mode(0o600)
        .track(Track::Explicit)
        .open(&t.0)
        .unwrap();
    assert_eq!(m.len(), len);
    assert!(!m.is_empty());
    assert_eq!(m.track_mode(), Track::Explicit);
    assert!(!m.as_ptr().is_null());
    assert_eq!(
        m.as_ptr() as usize % (2 << 20),
        0,
        "2 MiB-aligned placement"
    );

    m.write(100, b"written").unwrap();
    m.fill(4096, 0xab, 300).unwrap();
    // SAFETY: inside the mapping, which is open; nothing else touches these bytes.
    unsafe { std::ptr::copy_nonoverlapping(b"pointer".as_ptr(), m.as_ptr().add(65536), 7) };
    m.mark(65536..65536 + 7).unwrap();
    let s = m.stats().unwrap();
    assert!(s.dirty_lines >= 3, "{s:?}");
    assert_eq!(s.syncs, 0);
    m.sync().unwrap();
    let s = m.stats().unwrap();
    assert_eq!(s.dirty_lines, 0, "{s:?}");
    assert_eq!(s.syncs, 1);
    assert!(s.lines_written_back >= 3, "{s:?}");
    assert_eq!(s.pmem, m.is_pmem());
    if !m.is_pmem() {
        assert_eq!(s.msync_calls, 1, "{s:?}");
    }
    // A clean sync costs nothing.
    m.sync().unwrap();
    let s2 = m.stats().unwrap();
    assert_eq!(s2.lines_written_back, s.lines_written_back);
    assert_eq!(s2.msync_calls, s.msync_calls);
    // sync_range takes only its range.
    m.write(0, b"a").unwrap();
    m.write(8192, b"b").unwrap();
    m.sync_range(0..4096).unwrap();
    assert_eq!(m.stats().unwrap().dirty_lines, 1);
    m.sync_range(..).unwrap();
    assert_eq!(m.stats().unwrap().dirty_lines, 0);
    m.close().unwrap();
    assert_eq!(errno(&m.close().unwrap_err()), libc::EBADF);
    drop(m);

    // Reopen: the data is there (and in the file).
    let m = MapOptions::new().open(&t.0).unwrap();
    assert_eq!(m.len(), len);
    let mut b = [0u8; 7];
    m.read(100, &mut b).unwrap();
    assert_eq!(&b, b"written");
    m.read(65536, &mut b).unwrap();
    assert_eq!(&b, b"pointer");
    let mut f = [0u8; 300];
    m.read(4096, &mut f).unwrap();
    assert!(f.iter().all(|&x| x == 0xab));
    let file = std::fs::read(&t.0).unwrap();
    assert_eq!(&file[100..107], b"written");
}

#[test]
fn open_fd_maps_from_an_offset_and_keeps_no_descriptor() {
    let t = TempPath::new("fd");
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&t.0)
        .unwrap();
    f.set_len(4 * 4096).unwrap();
    let m = MapOptions::new().len(4096).open_fd(&f, 2 * 4096).unwrap();
    drop(f);
    assert_eq!(m.len(), 4096);
    m.write(0, b"at 8192").unwrap();
    m.close().unwrap();
    assert_eq!(&std::fs::read(&t.0).unwrap()[8192..8199], b"at 8192");
    // Not read-write: EACCES; create does not apply: EINVAL; unaligned offset: EINVAL.
    let ro = std::fs::File::open(&t.0).unwrap();
    assert_eq!(
        errno(&MapOptions::new().open_fd(&ro, 0).unwrap_err()),
        libc::EACCES
    );
    let rw = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&t.0)
        .unwrap();
    assert_eq!(
        errno(&MapOptions::new().create(4096).open_fd(&rw, 0).unwrap_err()),
        libc::EINVAL
    );
    assert_eq!(
        errno(&MapOptions::new().open_fd(&rw, 100).unwrap_err()),
        libc::EINVAL
    );
    assert_eq!(
        errno(&MapOptions::new().open_fd(&rw, 1 << 30).unwrap_err()),
        libc::EINVAL
    );
}

#[test]
fn open_errors() {
    let t = TempPath::new("errs");
    let e = MapOptions::new().open(&t.0).unwrap_err();
    assert_eq!(errno(&e), libc::ENOENT);
    assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
    assert!(!e.to_string().is_empty());
    let io: std::io::Error = e.into();
    assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
    assert_eq!(
        errno(&MapOptions::new().create(0).open(&t.0).unwrap_err()),
        libc::EINVAL
    );
    assert_eq!(
        errno(&MapOptions::new().exclusive(true).open(&t.0).unwrap_err()),
        libc::EINVAL
    );
    assert_eq!(
        errno(&MapOptions::new().open("/tmp/nul\0byte").unwrap_err()),
        libc::EINVAL
    );
    let _m = MapOptions::new().create(4096).open(&t.0).unwrap();
    assert_eq!(
        errno(
            &MapOptions::new()
                .create(4096)
                .exclusive(true)
                .open(&t.0)
                .unwrap_err()
        ),
        libc::EEXIST
    );
    assert_eq!(
        errno(&MapOptions::new().len(8192).open(&t.0).unwrap_err()),
        libc::EINVAL
    );
}

#[test]
fn out_of_range_is_an_error_never_ub() {
    let t = TempPath::new("range");
    let len = 3 * 4096 + 100;
    let m = MapOptions::new().create(len).open(&t.0).unwrap();
    let inval = |r: daxpmem::Result<()>| {
        let e = r.unwrap_err();
        assert_eq!(errno(&e), libc::EINVAL, "{e}");
        // The Rust API's own messages name no C function.
        assert!(!e.to_string().contains("dax_"), "{e}");
    };
    let (past, big) = (len + 1, usize::MAX);
    inval(m.write(len, b"x"));
    inval(m.write(len - 1, b"xy"));
    inval(m.write(big, b"x"));
    inval(m.write(big - 1, b"xyz"));
    inval(m.fill(len - 10, 0, 11));
    inval(m.fill(big, 0, big));
    inval(m.read(len, &mut [0u8; 1]));
    inval(m.read(big, &mut [0u8; 2]));
    inval(m.mark(len - 1..past));
    inval(m.mark(0..big));
    inval(m.mark(..=len));
    inval(m.mark((std::ops::Bound::Excluded(big), std::ops::Bound::Unbounded)));
    #[allow(clippy::reversed_empty_ranges)]
    inval(m.mark(10..5));
    inval(m.sync_range(0..past));
    inval(m.sync_range(len..=len));
    inval(m.punch_hole(4096..past));
    // Empty ranges at the end are fine and do nothing; the last byte is writable.
    m.write(len, b"").unwrap();
    m.mark(len..len).unwrap();
    m.sync_range(len..len).unwrap();
    m.write(len - 1, b"z").unwrap();
    m.mark(len - 1..).unwrap();
    m.sync().unwrap();
}

#[test]
fn punch_hole_zeroes() {
    let t = TempPath::new("punch");
    let m = MapOptions::new().create(4 * 4096).open(&t.0).unwrap();
    m.fill(0, 0x5a, 4 * 4096).unwrap();
    m.sync().unwrap();
    match m.punch_hole(10..3 * 4096 + 10) {
        Err(e) if errno(&e) == libc::EOPNOTSUPP => {
            println!("skipped: hole punching unsupported here: {e}");
            return;
        }
        r => r.unwrap(),
    }
    let mut b = vec![0u8; 4 * 4096];
    m.read(0, &mut b).unwrap();
    assert!(b[..10].iter().all(|&x| x == 0x5a));
    assert!(b[10..3 * 4096 + 10].iter().all(|&x| x == 0));
    assert!(b[3 * 4096 + 10..].iter().all(|&x| x == 0x5a));
}

/// Open `t` with mode `track`, or None (printing why) where the mode is unavailable.
fn open_tracked(t: &TempPath, len: usize, track: Track) -> Option<DaxMap> {
    match MapOptions::new().create(len).track(track).open(&t.0) {
        Ok(m) => Some(m),
        Err(e) if errno(&e) == libc::EOPNOTSUPP => {
            println!("skipped: Track::{track:?} is unavailable here: {e}");
            None
        }
        Err(e) => panic!("Track::{track:?}: {e}"),
    }
}

/// Store through the pointer without marking, sync, and check what the mode saw.
fn stores_through_the_pointer(track: Track) {
    let t = TempPath::new(track.name());
    let len = 1 << 20;
    let Some(m) = open_tracked(&t, len, track) else {
        return;
    };
    if track == Track::Auto {
        assert_ne!(m.track_mode(), Track::Auto);
    } else {
        assert_eq!(m.track_mode(), track);
    }
    assert_eq!(m.stats().unwrap().track_mode, m.track_mode());
    let p = m.as_ptr();
    for round in 0..3u8 {
        let b = m.stats().unwrap();
        for page in [0usize, 5, 200] {
            // SAFETY: inside the open mapping; this thread is the only writer.
            unsafe { p.add(page * 4096 + 64).write_volatile(round + 1) };
        }
        m.sync().unwrap();
        let s = m.stats().unwrap();
        assert_eq!(s.dirty_lines, 0, "{track:?} round {round}: {s:?}");
        assert_eq!(s.syncs, b.syncs + 1);
        let (lines, faults, msyncs) = (
            s.lines_written_back - b.lines_written_back,
            s.tracked_faults - b.tracked_faults,
            s.msync_calls - b.msync_calls,
        );
        match m.track_mode() {
            Track::Explicit => {
                // Unmarked stores are not this mode's business.
                assert_eq!((lines, msyncs), (0, 0), "{s:?}");
            }
            Track::Mprotect => {
                // One fault per page: the first store after a sync.
                assert_eq!(faults, 3, "{s:?}");
                assert!(lines >= 3, "{s:?}");
            }
            Track::Uffd => {
                assert!(lines >= 3, "{s:?}");
            }
            Track::Kernel if !m.is_pmem() => assert_eq!(msyncs, 1, "{s:?}"),
            Track::Auto => unreachable!(),
            _ => {}
        }
        // Explicit marks count in every mode.
        m.write(250 * 4096, &[round; 100]).unwrap();
        m.sync().unwrap();
        assert_eq!(m.stats().unwrap().dirty_lines, 0);
    }
    let mut b = [0u8; 1];
    m.read(200 * 4096 + 64, &mut b).unwrap();
    assert_eq!(b[0], 3);
    m.close().unwrap();
    let file = std::fs::read(&t.0).unwrap();
    assert_eq!(file[5 * 4096 + 64], 3);
    assert_eq!(file[250 * 4096 + 99], 2);
}

#[test]
fn track_explicit() {
    stores_through_the_pointer(Track::Explicit);
}

#[test]
fn track_mprotect_stores_through_the_pointer_do_not_crash_and_are_found() {
    stores_through_the_pointer(Track::Mprotect);
}

#[test]
fn track_uffd() {
    stores_through_the_pointer(Track::Uffd);
}

#[test]
fn track_kernel() {
    stores_through_the_pointer(Track::Kernel);
}

#[test]
fn track_auto() {
    stores_through_the_pointer(Track::Auto);
}

#[test]
fn close_racing_every_method_is_an_error_never_a_crash() {
    for round in 0..20 {
        let t = TempPath::new(&format!("race{round}"));
        let len = 1 << 20;
        let m = Arc::new(MapOptions::new().create(len).open(&t.0).unwrap());
        let go = Arc::new(AtomicBool::new(false));
        let threads: Vec<_> = (0..4)
            .map(|k| {
                let (m, go) = (m.clone(), go.clone());
                std::thread::spawn(move || {
                    while !go.load(SeqCst) {
                        std::hint::spin_loop();
                    }
                    let mut buf = [0u8; 256];
                    let mut ok = 0u64;
                    for i in 0..1_000_000usize {
                        let off = (i * 4096 + k * 64) % (len - 4096);
                        let r = match (i + k) % 7 {
                            0 => m.write(off, &[k as u8; 200]),
                            1 => m.mark(off..off + 64),
                            2 => m.sync(),
                            3 => m.fill(off, 1, 4096),
                            4 => m.read(off, &mut buf),
                            5 => m.sync_range(off..off + 4096),
                            _ => m.stats().map(|_| ()),
                        };
                        match r {
                            Ok(()) => ok += 1,
                            Err(e) => {
                                assert_eq!(errno(&e), libc::EBADF, "{e}");
                                return ok;
                            }
                        }
                    }
                    panic!("never saw the close");
                })
            })
            .collect();
        go.store(true, SeqCst);
        std::thread::sleep(std::time::Duration::from_micros(200 + 100 * round));
        m.close().unwrap();
        for th in threads {
            th.join().unwrap();
        }
        // After the close everything is EBADF; the drop is harmless.
        assert_eq!(errno(&m.write(0, b"x").unwrap_err()), libc::EBADF);
        assert_eq!(errno(&m.mark(0..1).unwrap_err()), libc::EBADF);
        assert_eq!(errno(&m.sync().unwrap_err()), libc::EBADF);
        assert_eq!(errno(&m.stats().unwrap_err()), libc::EBADF);
    }
}

/// `write` and `fill` racing `close` of a map tracked by mprotect: the close's sync
/// protects every page again and the close retires the map while a copy that began
/// before is still storing; its faults on the protected pages must be handled (the copy
/// completes on the mapped memory), not passed to the default action (found by a
/// review: the process died of SIGSEGV).
#[test]
fn mprotect_write_and_fill_racing_close_complete_or_are_ebadf() {
    let len = 16 << 20;
    let data = vec![0xabu8; len];
    for round in 0..100 {
        let t = TempPath::new(&format!("mprace{round}"));
        let Some(m) = open_tracked(&t, len, Track::Mprotect) else {
            return;
        };
        let m = Arc::new(m);
        let go = Arc::new(AtomicBool::new(false));
        let (m2, go2, d2) = (m.clone(), go.clone(), data.clone());
        let w = std::thread::spawn(move || {
            go2.store(true, SeqCst);
            for i in 0.. {
                // Every page: after a sync each page's first store faults.
                let r = match i % 2 {
                    0 => m2.write(0, &d2),
                    _ => m2.fill(0, i as u8, d2.len()),
                };
                if let Err(e) = r.and_then(|_| m2.sync()) {
                    assert_eq!(errno(&e), libc::EBADF, "{e}");
                    return;
                }
            }
        });
        while !go.load(SeqCst) {
            std::hint::spin_loop();
        }
        std::thread::sleep(std::time::Duration::from_micros(100 + (round * 37) % 2000));
        let _ = m.close();
        w.join().unwrap();
    }
}

#[test]
fn drop_racing_nothing_and_mapping_many() {
    // Drop unmaps without a sync: the slots are reused, the old maps stay dead.
    let t = TempPath::new("many");
    for _ in 0..200 {
        let m = MapOptions::new().create(1 << 16).open(&t.0).unwrap();
        m.write(0, b"x").unwrap();
    }
}

#[test]
fn primitives_on_slices() {
    let mut buf = vec![0u8; 10_000];
    buf[5000] = 1;
    daxpmem::flush(&buf[100..9000]);
    daxpmem::fence();
    daxpmem::persist(&buf);
    daxpmem::persist(&[]);
    daxpmem::flush(&[]);
    let c = daxpmem::cpu_info();
    assert!(["clwb", "clflushopt", "clflush"].contains(&c.flush));
    assert!(["avx512f", "avx2", "sse2", "none"].contains(&c.nt));
}

#[cfg(feature = "memmap2")]
#[test]
fn from_mmap_takes_over_a_memmap2_mapping() {
    let t = TempPath::new("mmap");
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&t.0)
        .unwrap();
    f.set_len(1 << 20).unwrap();
    // SAFETY: nothing truncates the file while it is mapped.
    let mm = unsafe { memmap2::MmapOptions::new().offset(4096).map_mut(&f) }.unwrap();
    let a = mm.as_ptr() as usize;
    let m = DaxMap::from_mmap(mm, &f, 4096, Track::Explicit).unwrap();
    assert_eq!(m.as_ptr() as usize, a);
    assert_eq!(m.len(), (1 << 20) - 4096);
    m.write(0, b"via memmap2").unwrap();
    m.sync().unwrap();
    assert_eq!(m.stats().unwrap().syncs, 1);
    m.close().unwrap();
    assert_eq!(&std::fs::read(&t.0).unwrap()[4096..4107], b"via memmap2");
    // The wrong offset, an anonymous mapping: EINVAL (and the MmapMut is unmapped).
    // SAFETY: as above.
    let mm = unsafe { memmap2::MmapMut::map_mut(&f) }.unwrap();
    assert_eq!(
        errno(&DaxMap::from_mmap(mm, &f, 8192, Track::Explicit).unwrap_err()),
        libc::EINVAL
    );
    let anon = memmap2::MmapMut::map_anon(1 << 16).unwrap();
    assert_eq!(
        errno(&DaxMap::from_mmap(anon, &f, 0, Track::Explicit).unwrap_err()),
        libc::EINVAL
    );
}

#[test]
fn core_errors_name_no_c_function() {
    // The core names the operation ("map <path>", "sync", ...); only the C layer puts
    // the C function's name in front.
    let no_c = |e: daxpmem::Error| {
        let s = e.to_string();
        assert!(!s.contains("dax_") && !s.contains("daxpmem_"), "{s}");
        s
    };
    let t = TempPath::new("names");
    let s = no_c(MapOptions::new().open(&t.0).unwrap_err());
    assert!(s.starts_with("map "), "{s}");
    let m = MapOptions::new().create(4096).open(&t.0).unwrap();
    no_c(MapOptions::new().len(8192).open(&t.0).unwrap_err());
    let rw = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&t.0)
        .unwrap();
    no_c(MapOptions::new().create(4096).open_fd(&rw, 0).unwrap_err());
    no_c(MapOptions::new().open_fd(&rw, 1 << 30).unwrap_err());
    m.close().unwrap();
    let s = no_c(m.sync().unwrap_err());
    assert!(s.starts_with("sync: "), "{s}");
    assert_eq!(errno(&m.sync().unwrap_err()), libc::EBADF);
    no_c(m.mark(0..1).unwrap_err());
    no_c(m.write(0, b"x").unwrap_err());
    no_c(m.punch_hole(0..4096).unwrap_err());
    no_c(m.stats().unwrap_err());
}
