//! daxpmem-info [PATH...]: the flush instruction, line size, copy path and whether the
//! CPU caches are persistent (eADR); for each PATH its filesystem, its DAX attribute and
//! whether MAP_SYNC works there.

use std::ffi::CString;
use std::os::fd::AsRawFd;

fn fs_name(path: &str) -> String {
    // The longest mount point that is a prefix of the path, from /proc/self/mounts.
    let canon = std::fs::canonicalize(path)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|_| path.to_string());
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let mut best: Option<(usize, String)> = None;
    for l in mounts.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() < 4 {
            continue;
        }
        let mp = f[1];
        let under = canon == mp || mp == "/" || canon.starts_with(&format!("{mp}/"));
        if under && best.as_ref().is_none_or(|b| mp.len() >= b.0) {
            best = Some((mp.len(), format!("{} on {} ({})", f[2], mp, f[3])));
        }
    }
    best.map(|b| b.1).unwrap_or_else(|| "unknown".into())
}

fn probe(path: &str) {
    println!("{path}:");
    println!("  filesystem: {}", fs_name(path));
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) => {
            println!("  error: {e}");
            return;
        }
    };
    // A file to probe: the path itself, or a temporary file in the directory.
    let (file, tmp) = if meta.is_dir() {
        let p = format!("{path}/.daxpmem-info-{}", std::process::id());
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&p);
        match f {
            Ok(f) => {
                let _ = f.set_len(2 << 20);
                (f, Some(p))
            }
            Err(e) => {
                println!("  cannot create a probe file: {e}");
                return;
            }
        }
    } else {
        match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
        {
            Ok(f) => (f, None),
            Err(e) => {
                println!("  cannot open read-write: {e}");
                return;
            }
        }
    };
    let dax = daxpmem::map::file_is_dax(file.as_raw_fd());
    println!(
        "  DAX attribute (statx): {}",
        match dax {
            Some(true) => "yes",
            Some(false) => "no",
            None => "unknown (kernel < 5.8 or not reported)",
        }
    );
    let ms = daxpmem::map::map_sync_works(file.as_raw_fd(), 0);
    println!("  MAP_SYNC: {}", if ms { "works" } else { "not supported" });
    println!(
        "  verdict: {}",
        if ms {
            "DAX: user-space write-back is durable (dax_sync issues no msync)"
        } else {
            "not DAX: durability goes through msync of the dirty span"
        }
    );
    if let Some(p) = tmp {
        let _ = std::fs::remove_file(CString::new(p).unwrap().to_str().unwrap());
    }
}

fn main() {
    let c = daxpmem::cpu::config();
    let f = daxpmem::cpu::Features::probe();
    println!("daxpmem {}", daxpmem::VERSION);
    println!("flush instruction: {}", c.flush.name());
    println!("cache line (write-back stride): {} bytes", c.line);
    println!(
        "non-temporal path: {} (threshold {} bytes)",
        c.nt.name(),
        c.movnt_threshold
    );
    println!(
        "cpu: clwb={} clflushopt={} avx512f={} avx2={} movdir64b={}",
        f.clwb, f.clflushopt, f.avx512f, f.avx2, f.movdir64b
    );
    println!(
        "persistent CPU caches (eADR): {}{}",
        if c.eadr { "yes" } else { "no" },
        if c.skip_writeback() {
            " -- write-back skipped, fence only"
        } else {
            ""
        }
    );
    if c.force_pmem {
        println!("DAXPMEM_FORCE_PMEM / PMEM_IS_PMEM_FORCE=1: every mapping is treated as pmem");
    }
    for p in std::env::args().skip(1) {
        probe(&p);
    }
}
