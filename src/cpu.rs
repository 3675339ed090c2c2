//! CPU features, the chosen write-back instruction and copy path, and the
//! environment overrides. Decided once: by a load-time constructor, or by the
//! first caller if something calls in before constructors ran. No lock is
//! involved (a forked child can never inherit one held): the decision is a pure
//! function of CPUID and the environment, so racing initialisers publish equal
//! values through one atomic pointer (each leaks one small box; readers borrow
//! whichever they loaded, and none is ever freed).

use std::sync::atomic::{AtomicPtr, Ordering};

/// The cache-line write-back instruction in use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flush {
    /// CLWB: writes the line back and may keep it cached; needs SFENCE.
    Clwb = 0,
    /// CLFLUSHOPT: writes back and invalidates; needs SFENCE.
    Clflushopt = 1,
    /// CLFLUSH: writes back and invalidates; ordered by itself, 10-40x slower.
    Clflush = 2,
}

impl Flush {
    pub fn name(self) -> &'static str {
        match self {
            Flush::Clwb => "clwb",
            Flush::Clflushopt => "clflushopt",
            Flush::Clflush => "clflush",
        }
    }
    /// The same name NUL-terminated, for the C API.
    pub fn c_name(self) -> &'static [u8] {
        match self {
            Flush::Clwb => b"clwb\0",
            Flush::Clflushopt => b"clflushopt\0",
            Flush::Clflush => b"clflush\0",
        }
    }
}

/// The non-temporal store path used by `clear_pmem` / `memcpy_to_pmem` above the threshold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nt {
    Avx512 = 0,
    Avx2 = 1,
    Sse2 = 2,
    /// No non-temporal stores: ordinary stores, then write-back.
    None = 3,
}

impl Nt {
    pub fn name(self) -> &'static str {
        match self {
            Nt::Avx512 => "avx512f",
            Nt::Avx2 => "avx2",
            Nt::Sse2 => "sse2",
            Nt::None => "none",
        }
    }
    pub fn c_name(self) -> &'static [u8] {
        match self {
            Nt::Avx512 => b"avx512f\0",
            Nt::Avx2 => b"avx2\0",
            Nt::Sse2 => b"sse2\0",
            Nt::None => b"none\0",
        }
    }
}

/// Everything decided at load time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    pub flush: Flush,
    pub nt: Nt,
    /// The widest vector stores the CPU and the environment allow (`DAXPMEM_NO_AVX512F`,
    /// `PMEM_AVX512F=0`, `DAXPMEM_NO_AVX`, `PMEM_AVX=0`), whatever `DAXPMEM_NO_MOVNT`
    /// says: the width of the temporal copy and fill loops (`nt.rs`; AVX-512 or AVX2,
    /// otherwise the C library's), and of non-temporal stores asked for by a flag.
    pub vec: Nt,
    /// Ordinary-store copies and fills of 64 B to 32 KiB go through the vector loops of
    /// `nt.rs` (width `vec`, AVX-512 or AVX2 only): set only in `Decided::noflush`.
    /// Where the lines are written back right after, the C library's stores are kept:
    /// measured (compat_bench, 2026-12-03), 4 KiB `pmem_memmove`/`pmem_memset` with
    /// `PMEM_F_MEM_TEMPORAL`/`_WB` went from 0.93-0.97 to 0.86-0.94 of libpmem with the
    /// AVX-512 loops (the copy is ~2 % of such a call; the write-back after it slowed).
    pub mov: bool,
    /// Write-back stride in bytes (CPUID leaf 1 EBX[15:8] * 8), a power of two.
    pub line: usize,
    /// Copies and fills of at least this many bytes use non-temporal stores.
    pub movnt_threshold: usize,
    /// `DAXPMEM_FORCE_PMEM=1` / `PMEM_IS_PMEM_FORCE=1`: every mapping is treated as pmem.
    pub force_pmem: bool,
    /// `PMEM_IS_PMEM_FORCE=0`: no mapping is pmem (libpmem's meaning of the 0 value).
    pub force_not_pmem: bool,
    /// The CPU caches are in the persistence domain (eADR) and write-back may be skipped.
    pub eadr: bool,
    /// `DAXPMEM_NO_FLUSH` / `PMEM_NO_FLUSH`: Some(true) never write back, Some(false)
    /// always write back even with eADR, None: decide from eADR.
    pub no_flush_env: Option<bool>,
}

impl Config {
    /// Whether write-back is skipped (eADR or PMEM_NO_FLUSH=1); the fence always remains.
    pub fn skip_writeback(&self) -> bool {
        match self.no_flush_env {
            Some(v) => v,
            None => self.eadr,
        }
    }
}

/// The default non-temporal threshold, as in PMDK (`MOVNT_THRESHOLD`).
pub(crate) const DEFAULT_MOVNT_THRESHOLD: usize = 256;

/// The configuration and its variants for libpmem's `PMEM_F_MEM_*` flags, decided
/// together (libpmem2-style: each flag's way of copying is chosen once, not per call).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decided {
    /// The configuration in force.
    pub base: Config,
    /// `PMEM_F_MEM_TEMPORAL`, `_WB`: ordinary stores only.
    pub temporal: Config,
    /// `PMEM_F_MEM_NOFLUSH`: ordinary stores only, through the vector loops (`mov`).
    pub noflush: Config,
    /// `PMEM_F_MEM_NONTEMPORAL`, `_WC`: streaming stores from the first whole block, also
    /// under `DAXPMEM_NO_MOVNT=1` (asked for explicitly: the widest `vec` there is).
    pub nontemporal: Config,
}

impl Decided {
    pub fn of(base: Config) -> Decided {
        Decided {
            base,
            temporal: Config {
                nt: Nt::None,
                ..base
            },
            noflush: Config {
                nt: Nt::None,
                mov: matches!(base.vec, Nt::Avx512 | Nt::Avx2),
                ..base
            },
            nontemporal: Config {
                nt: if base.nt == Nt::None {
                    base.vec
                } else {
                    base.nt
                },
                movnt_threshold: 0,
                ..base
            },
        }
    }
}

/// The configuration in force: published once built, never freed (a reader may hold
/// an old one after a re-read), so every read is one load and a plain borrow, with no
/// unpacking on the hot paths.
static CURRENT: AtomicPtr<Decided> = AtomicPtr::new(std::ptr::null_mut());

/// The configuration, decided on first use.
#[inline]
pub fn config() -> &'static Config {
    &decided().base
}

/// The configuration if it was decided already (always, once a mapping exists): one
/// load, no call (the mark's fast path, which must not grow a stack frame).
#[inline(always)]
pub fn config_if_decided() -> Option<&'static Config> {
    let p = CURRENT.load(Ordering::Acquire);
    // SAFETY: as in `decided`.
    (!p.is_null()).then(|| unsafe { &(*p).base })
}

/// The configuration and its flag variants, decided on first use.
#[inline]
pub fn decided() -> &'static Decided {
    let p = CURRENT.load(Ordering::Acquire);
    if !p.is_null() {
        // SAFETY: p was published by `init` after the Decided was written, and is never
        // freed.
        return unsafe { &*p };
    }
    decide()
}

/// Decide (or re-read) the configuration. Idempotent; called by the constructor.
pub fn init() -> &'static Config {
    &decide().base
}

#[cold]
#[inline(never)]
fn decide() -> &'static Decided {
    let c = detect(&|k| env(k), &Features::probe(), eadr_from_sysfs());
    let p = Box::leak(Box::new(Decided::of(c)));
    CURRENT.store(p, Ordering::Release);
    p
}

/// CPU features that matter here, one CPUID predicate each.
#[derive(Clone, Copy, Debug, Default)]
pub struct Features {
    pub clwb: bool,
    pub clflushopt: bool,
    pub clflush: bool,
    /// CLFLUSH line size in bytes from CPUID leaf 1 EBX[15:8] * 8 (0 if not reported).
    pub clflush_line: usize,
    /// AVX-512F usable: CPU support and the OS saves ZMM state (XCR0).
    pub avx512f: bool,
    /// AVX2 usable (CPU and XCR0).
    pub avx2: bool,
    pub sse2: bool,
    pub movdir64b: bool,
}

impl Features {
    pub fn probe() -> Features {
        let id = raw_cpuid::CpuId::new();
        let fi = id.get_feature_info();
        let ext = id.get_extended_feature_info();
        let (clflush, clflush_line) = match &fi {
            Some(f) => (f.has_clflush(), f.cflush_cache_line_size() as usize * 8),
            None => (false, 0),
        };
        Features {
            clwb: ext.as_ref().is_some_and(|e| e.has_clwb()),
            clflushopt: ext.as_ref().is_some_and(|e| e.has_clflushopt()),
            clflush,
            clflush_line,
            // is_x86_feature_detected! checks XCR0 as well as CPUID.
            avx512f: std::arch::is_x86_feature_detected!("avx512f"),
            avx2: std::arch::is_x86_feature_detected!("avx2"),
            sse2: std::arch::is_x86_feature_detected!("sse2"),
            movdir64b: raw_cpuid::cpuid!(7, 0).ecx & (1 << 28) != 0,
        }
    }
}

fn flag(get: &dyn Fn(&str) -> Option<String>, keys: &[&str]) -> bool {
    keys.iter().any(|k| get(k).as_deref() == Some("1"))
}

/// The pure decision: environment and features in, configuration out.
pub fn detect(get: &dyn Fn(&str) -> Option<String>, f: &Features, eadr: bool) -> Config {
    let no_clwb = flag(get, &["DAXPMEM_NO_CLWB", "PMEM_NO_CLWB"]);
    let no_clflushopt = flag(get, &["DAXPMEM_NO_CLFLUSHOPT", "PMEM_NO_CLFLUSHOPT"]);
    let flush = if f.clwb && !no_clwb {
        Flush::Clwb
    } else if f.clflushopt && !no_clflushopt {
        Flush::Clflushopt
    } else {
        Flush::Clflush
    };
    let no_movnt = flag(get, &["DAXPMEM_NO_MOVNT", "PMEM_NO_MOVNT"]);
    let no_avx512 =
        flag(get, &["DAXPMEM_NO_AVX512F"]) || get("PMEM_AVX512F").as_deref() == Some("0");
    let no_avx = flag(get, &["DAXPMEM_NO_AVX"]) || get("PMEM_AVX").as_deref() == Some("0");
    let vec = if f.avx512f && !no_avx512 && !no_avx {
        Nt::Avx512
    } else if f.avx2 && !no_avx {
        Nt::Avx2
    } else if f.sse2 {
        Nt::Sse2
    } else {
        Nt::None
    };
    let nt = if no_movnt { Nt::None } else { vec };
    let movnt_threshold = ["DAXPMEM_MOVNT_THRESHOLD", "PMEM_MOVNT_THRESHOLD"]
        .iter()
        .find_map(|k| get(k).and_then(|v| v.trim().parse::<usize>().ok()))
        .unwrap_or(DEFAULT_MOVNT_THRESHOLD);
    let line = if f.clflush_line.is_power_of_two() && f.clflush_line >= 16 {
        f.clflush_line
    } else {
        64
    };
    let force = |keys: &[&str]| keys.iter().find_map(|k| get(k));
    let fp = force(&["DAXPMEM_FORCE_PMEM", "PMEM_IS_PMEM_FORCE"]);
    let no_flush_env = match force(&["DAXPMEM_NO_FLUSH", "PMEM_NO_FLUSH"]).as_deref() {
        Some("1") => Some(true),
        Some("0") => Some(false),
        _ => None,
    };
    Config {
        flush,
        nt,
        vec,
        mov: false,
        line,
        movnt_threshold,
        force_pmem: fp.as_deref() == Some("1"),
        force_not_pmem: fp.as_deref() == Some("0"),
        eadr,
        no_flush_env,
    }
}

/// getenv without std's environment lock (safe in a constructor and after fork).
pub(crate) fn env(key: &str) -> Option<String> {
    let mut k = Vec::with_capacity(key.len() + 1);
    k.extend_from_slice(key.as_bytes());
    k.push(0);
    // SAFETY: k is NUL-terminated; getenv returns NULL or a pointer to a NUL-terminated
    // string owned by the environment, which we copy at once.
    unsafe {
        let p = libc::getenv(k.as_ptr().cast());
        if p.is_null() {
            None
        } else {
            Some(std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned())
        }
    }
}

static IS_PMEM_FORCE: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// libpmem's `PMEM_IS_PMEM_FORCE` as `pmem_is_pmem` reads it: on the first call (not at
/// load, so a program may set it in main), parsed with atoi: 1 -> Some(true), 0 ->
/// Some(false), anything else or unset -> None. `DAXPMEM_FORCE_PMEM=1` also gives
/// Some(true).
pub fn is_pmem_force() -> Option<bool> {
    use std::sync::atomic::Ordering::Relaxed;
    let v = match IS_PMEM_FORCE.load(Relaxed) {
        0 => {
            let v = if env("DAXPMEM_FORCE_PMEM").as_deref() == Some("1") {
                2
            } else {
                match env("PMEM_IS_PMEM_FORCE").map(|s| atoi(&s)) {
                    Some(1) => 2,
                    Some(0) => 3,
                    _ => 1,
                }
            };
            IS_PMEM_FORCE.store(v, Relaxed);
            v
        }
        v => v,
    };
    match v {
        2 => Some(true),
        3 => Some(false),
        _ => None,
    }
}

/// C's atoi: leading white space, an optional sign, then digits (0 if none).
pub fn atoi(s: &str) -> i64 {
    let t = s.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (neg, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let mut v: i64 = 0;
    for b in t.bytes().take_while(u8::is_ascii_digit) {
        v = v.saturating_mul(10).saturating_add((b - b'0') as i64);
    }
    if neg {
        -v
    } else {
        v
    }
}

/// eADR: every `/sys/bus/nd/devices/region*/persistence_domain` reads `cpu_cache`
/// (and there is at least one region). As libpmem's `pmem_has_auto_flush`.
pub fn eadr_from_sysfs() -> bool {
    auto_flush_in(std::path::Path::new("/sys/bus/nd/devices")) == Some(true)
}

/// Some(true/false) as above; None when the directory cannot be read (no nd bus counts as false).
pub fn auto_flush_in(dir: &std::path::Path) -> Option<bool> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Some(false),
        Err(_) => return None,
    };
    let mut regions = 0;
    for e in rd.flatten() {
        let name = e.file_name();
        if !name.to_string_lossy().starts_with("region") {
            continue;
        }
        regions += 1;
        match std::fs::read_to_string(e.path().join("persistence_domain")) {
            Ok(s) if s.trim() == "cpu_cache" => {}
            _ => return Some(false),
        }
    }
    Some(regions > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn all() -> Features {
        Features {
            clwb: true,
            clflushopt: true,
            clflush: true,
            clflush_line: 64,
            avx512f: true,
            avx2: true,
            sse2: true,
            movdir64b: true,
        }
    }
    fn with(kv: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = kv
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn picks_clwb_then_clflushopt_then_clflush() {
        let f = all();
        assert_eq!(detect(&with(&[]), &f, false).flush, Flush::Clwb);
        assert_eq!(
            detect(&with(&[("DAXPMEM_NO_CLWB", "1")]), &f, false).flush,
            Flush::Clflushopt
        );
        assert_eq!(
            detect(&with(&[("PMEM_NO_CLWB", "1")]), &f, false).flush,
            Flush::Clflushopt
        );
        assert_eq!(
            detect(
                &with(&[("DAXPMEM_NO_CLWB", "1"), ("PMEM_NO_CLFLUSHOPT", "1")]),
                &f,
                false
            )
            .flush,
            Flush::Clflush
        );
        // "0" is not a veto.
        assert_eq!(
            detect(&with(&[("DAXPMEM_NO_CLWB", "0")]), &f, false).flush,
            Flush::Clwb
        );
        let no_clwb = Features { clwb: false, ..f };
        assert_eq!(detect(&with(&[]), &no_clwb, false).flush, Flush::Clflushopt);
        let old = Features {
            clwb: false,
            clflushopt: false,
            ..f
        };
        assert_eq!(detect(&with(&[]), &old, false).flush, Flush::Clflush);
    }

    #[test]
    fn nt_paths_and_threshold() {
        let f = all();
        let d = |kv: &[(&str, &str)]| detect(&with(kv), &f, false);
        assert_eq!(d(&[]).nt, Nt::Avx512);
        assert_eq!(d(&[("DAXPMEM_NO_AVX512F", "1")]).nt, Nt::Avx2);
        assert_eq!(d(&[("PMEM_AVX512F", "0")]).nt, Nt::Avx2);
        assert_eq!(d(&[("DAXPMEM_NO_AVX", "1")]).nt, Nt::Sse2);
        assert_eq!(d(&[("PMEM_NO_MOVNT", "1")]).nt, Nt::None);
        // The vector width stays for the temporal loops and explicit streaming stores.
        assert_eq!(d(&[("PMEM_NO_MOVNT", "1")]).vec, Nt::Avx512);
        assert_eq!(
            d(&[("PMEM_NO_MOVNT", "1"), ("PMEM_AVX512F", "0")]).vec,
            Nt::Avx2
        );
        assert_eq!(d(&[("DAXPMEM_NO_AVX512F", "1")]).vec, Nt::Avx2);
        assert_eq!(d(&[("DAXPMEM_NO_AVX", "1")]).vec, Nt::Sse2);
        let nm = Decided::of(d(&[("DAXPMEM_NO_MOVNT", "1"), ("DAXPMEM_NO_AVX512F", "1")]));
        assert_eq!(
            (nm.base.nt, nm.temporal.nt, nm.nontemporal.nt),
            (Nt::None, Nt::None, Nt::Avx2)
        );
        assert_eq!(nm.nontemporal.movnt_threshold, 0);
        let dd = Decided::of(d(&[]));
        assert_eq!((dd.temporal.nt, dd.nontemporal.nt), (Nt::None, Nt::Avx512));
        assert_eq!((dd.noflush.nt, dd.noflush.mov), (Nt::None, true));
        assert!(!dd.base.mov && !dd.temporal.mov && !dd.nontemporal.mov);
        let sse = Decided::of(d(&[("DAXPMEM_NO_AVX", "1")]));
        assert!(!sse.noflush.mov, "no vector loops below AVX2");
        assert_eq!(dd.temporal.movnt_threshold, DEFAULT_MOVNT_THRESHOLD);
        assert_eq!(d(&[]).movnt_threshold, DEFAULT_MOVNT_THRESHOLD);
        assert_eq!(
            d(&[("DAXPMEM_MOVNT_THRESHOLD", "4096")]).movnt_threshold,
            4096
        );
        assert_eq!(d(&[("PMEM_MOVNT_THRESHOLD", "0")]).movnt_threshold, 0);
        assert_eq!(
            d(&[("PMEM_MOVNT_THRESHOLD", "junk")]).movnt_threshold,
            DEFAULT_MOVNT_THRESHOLD
        );
        let no_avx512 = Features {
            avx512f: false,
            ..f
        };
        assert_eq!(detect(&with(&[]), &no_avx512, false).nt, Nt::Avx2);
    }

    #[test]
    fn line_size_comes_from_cpuid() {
        let f = Features {
            clflush_line: 128,
            ..all()
        };
        assert_eq!(detect(&with(&[]), &f, false).line, 128);
        let f0 = Features {
            clflush_line: 0,
            ..all()
        };
        assert_eq!(detect(&with(&[]), &f0, false).line, 64);
        // The real CPU reports something sane.
        let real = Features::probe();
        assert!(real.clflush_line.is_power_of_two(), "{real:?}");
    }

    #[test]
    fn eadr_needs_every_region_cpu_cache() {
        let d = std::env::temp_dir().join(format!("daxpmem-nd-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        assert_eq!(auto_flush_in(&d), Some(false));
        std::fs::create_dir_all(&d).unwrap();
        assert_eq!(auto_flush_in(&d), Some(false), "no region");
        for (r, v) in [
            ("region0", "cpu_cache\n"),
            ("region1", "memory_controller\n"),
        ] {
            std::fs::create_dir_all(d.join(r)).unwrap();
            std::fs::write(d.join(r).join("persistence_domain"), v).unwrap();
        }
        assert_eq!(auto_flush_in(&d), Some(false));
        std::fs::write(d.join("region1").join("persistence_domain"), "cpu_cache").unwrap();
        assert_eq!(auto_flush_in(&d), Some(true));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn atoi_is_c_atoi() {
        for (s, v) in [
            ("1", 1),
            (" 1", 1),
            ("01", 1),
            ("1x", 1),
            ("x1", 0),
            ("", 0),
            ("-1", -1),
            ("+7z", 7),
        ] {
            assert_eq!(atoi(s), v, "{s:?}");
        }
    }

    #[test]
    fn skip_writeback_rules() {
        let f = all();
        assert!(!detect(&with(&[]), &f, false).skip_writeback());
        assert!(detect(&with(&[]), &f, true).skip_writeback());
        assert!(!detect(&with(&[("PMEM_NO_FLUSH", "0")]), &f, true).skip_writeback());
        assert!(detect(&with(&[("DAXPMEM_NO_FLUSH", "1")]), &f, false).skip_writeback());
    }
}
