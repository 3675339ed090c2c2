//! daxpmem-info [--json] [PATH...]: the flush instruction, line size, copy path and
//! whether the CPU caches are persistent (eADR); for each PATH its filesystem, its DAX
//! attribute and whether MAP_SYNC works there. `--json` prints the same as one JSON
//! object (man/daxpmem-info.1.scd documents its fields).

use std::fmt::Write as _;

const USAGE: &str = "\
usage: daxpmem-info [--json] [--] [PATH...]
       daxpmem-info --help | --version

Prints the write-back instruction, cache-line size and copy path daxpmem chose for
this CPU and whether the CPU caches are persistent (eADR); for each PATH (a file, or
a directory in which a 2 MiB probe file is created and removed) its filesystem, the
DAX attribute, whether MAP_SYNC works, and the verdict: whether dax_sync makes data
there durable by user-space write-back or by msync.

  --json     one JSON object instead of text
  --help     this text
  --version  the library version

Exit status: 0; 1 if a PATH could not be probed; 2 for a bad option.
";

/// The mount a path lives on: the longest mount point that is a prefix of the path.
struct Mount {
    fstype: String,
    mount_point: String,
    options: String,
}

fn mount_of(path: &str) -> Option<Mount> {
    let canon = std::fs::canonicalize(path)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|_| path.to_string());
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let mut best: Option<Mount> = None;
    for l in mounts.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() < 4 {
            continue;
        }
        let mp = f[1];
        let under = canon == mp || mp == "/" || canon.starts_with(&format!("{mp}/"));
        if under
            && best
                .as_ref()
                .is_none_or(|b| mp.len() >= b.mount_point.len())
        {
            best = Some(Mount {
                fstype: f[2].into(),
                mount_point: mp.into(),
                options: f[3].into(),
            });
        }
    }
    best
}

/// What was found out about one path.
struct PathInfo {
    path: String,
    mount: Option<Mount>,
    /// The DAX attribute (statx), None when the kernel does not report it.
    dax: Option<bool>,
    map_sync: bool,
    /// Why the path could not be probed (then `dax` and `map_sync` mean nothing).
    error: Option<String>,
}

fn probe(path: &str) -> PathInfo {
    let mut info = PathInfo {
        path: path.into(),
        mount: mount_of(path),
        dax: None,
        map_sync: false,
        error: None,
    };
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) => {
            info.error = Some(e.to_string());
            return info;
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
                info.error = Some(format!("cannot create a probe file: {e}"));
                return info;
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
                info.error = Some(format!("cannot open read-write: {e}"));
                return info;
            }
        }
    };
    let probe = daxpmem::probe_file(&file);
    info.dax = probe.dax;
    info.map_sync = probe.map_sync;
    if let Some(p) = tmp {
        let _ = std::fs::remove_file(p);
    }
    info
}

fn print_text(infos: &[PathInfo]) {
    let c = daxpmem::cpu_info();
    let f = &c;
    println!("daxpmem {}", daxpmem::VERSION);
    println!("flush instruction: {}", c.flush);
    println!("cache line (write-back stride): {} bytes", c.line);
    println!(
        "non-temporal path: {} (threshold {} bytes)",
        c.nt, c.movnt_threshold
    );
    println!(
        "cpu: clwb={} clflushopt={} avx512f={} avx2={} movdir64b={}",
        f.clwb, f.clflushopt, f.avx512f, f.avx2, f.movdir64b
    );
    println!(
        "persistent CPU caches (eADR): {}{}",
        if c.eadr { "yes" } else { "no" },
        if c.skip_writeback {
            " -- write-back skipped, fence only"
        } else {
            ""
        }
    );
    if c.force_pmem {
        println!("DAXPMEM_FORCE_PMEM / PMEM_IS_PMEM_FORCE=1: every mapping is treated as pmem");
    }
    for i in infos {
        println!("{}:", i.path);
        println!(
            "  filesystem: {}",
            i.mount
                .as_ref()
                .map(|m| format!("{} on {} ({})", m.fstype, m.mount_point, m.options))
                .unwrap_or_else(|| "unknown".into())
        );
        if let Some(e) = &i.error {
            println!("  error: {e}");
            continue;
        }
        println!(
            "  DAX attribute (statx): {}",
            match i.dax {
                Some(true) => "yes",
                Some(false) => "no",
                None => "unknown (kernel < 5.8 or not reported)",
            }
        );
        println!(
            "  MAP_SYNC: {}",
            if i.map_sync { "works" } else { "not supported" }
        );
        println!(
            "  verdict: {}",
            if i.map_sync {
                "DAX: user-space write-back is durable (dax_sync issues no msync)"
            } else {
                "not DAX: durability goes through msync of the dirty span"
            }
        );
    }
}

/// A JSON string literal.
fn js(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for ch in s.chars() {
        match ch {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\t' => o.push_str("\\t"),
            '\r' => o.push_str("\\r"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn json(infos: &[PathInfo]) -> String {
    let c = daxpmem::cpu_info();
    let f = &c;
    let mut o = String::new();
    let _ = writeln!(o, "{{");
    let _ = writeln!(o, "  \"version\": {},", js(daxpmem::VERSION));
    let _ = writeln!(
        o,
        "  \"cpu\": {{\"flush\": {}, \"line_size\": {}, \"nt\": {}, \"movnt_threshold\": {}, \
         \"clwb\": {}, \"clflushopt\": {}, \"avx512f\": {}, \"avx2\": {}, \"movdir64b\": {}}},",
        js(c.flush),
        c.line,
        js(c.nt),
        c.movnt_threshold,
        f.clwb,
        f.clflushopt,
        f.avx512f,
        f.avx2,
        f.movdir64b
    );
    let _ = writeln!(o, "  \"eadr\": {},", c.eadr);
    let _ = writeln!(o, "  \"skip_writeback\": {},", c.skip_writeback);
    let _ = writeln!(o, "  \"force_pmem\": {},", c.force_pmem);
    let _ = write!(o, "  \"paths\": [");
    for (n, i) in infos.iter().enumerate() {
        let _ = write!(
            o,
            "{}\n    {{\"path\": {}, ",
            if n > 0 { "," } else { "" },
            js(&i.path)
        );
        match &i.mount {
            Some(m) => {
                let _ = write!(
                    o,
                    "\"filesystem\": {}, \"mount_point\": {}, \"mount_options\": {}, ",
                    js(&m.fstype),
                    js(&m.mount_point),
                    js(&m.options)
                );
            }
            None => {
                o.push_str("\"filesystem\": null, \"mount_point\": null, \"mount_options\": null, ")
            }
        }
        match &i.error {
            Some(e) => {
                let _ = write!(
                    o,
                    "\"dax_attribute\": null, \"map_sync\": null, \"verdict\": null, \"error\": {}}}",
                    js(e)
                );
            }
            None => {
                let _ = write!(
                    o,
                    "\"dax_attribute\": {}, \"map_sync\": {}, \"verdict\": {}, \"error\": null}}",
                    match i.dax {
                        Some(b) => b.to_string(),
                        None => "null".into(),
                    },
                    i.map_sync,
                    js(if i.map_sync { "dax" } else { "msync" })
                );
            }
        }
    }
    let _ = writeln!(o, "{}]", if infos.is_empty() { "" } else { "\n  " });
    let _ = writeln!(o, "}}");
    o
}

fn main() {
    let mut as_json = false;
    let mut paths = Vec::new();
    let mut options_done = false;
    for a in std::env::args().skip(1) {
        if options_done || !a.starts_with('-') || a == "-" {
            paths.push(a);
            continue;
        }
        match a.as_str() {
            "--" => options_done = true,
            "--json" => as_json = true,
            "-h" | "--help" => {
                print!("{USAGE}");
                return;
            }
            "-V" | "--version" => {
                println!("daxpmem-info {}", daxpmem::VERSION);
                return;
            }
            _ => {
                eprintln!("daxpmem-info: unknown option '{a}'\n{USAGE}");
                std::process::exit(2);
            }
        }
    }
    let infos: Vec<PathInfo> = paths.iter().map(|p| probe(p)).collect();
    if as_json {
        print!("{}", json(&infos));
    } else {
        print_text(&infos);
    }
    if infos.iter().any(|i| i.error.is_some()) {
        std::process::exit(1);
    }
}
