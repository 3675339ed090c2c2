//! A small write-ahead log on a `DaxMap`, like examples/demo.c: append records, make
//! each group durable with one sync, commit the group with a second (a head counter
//! written after the records are durable), then close, reopen and replay.
//!
//! usage: cargo run --release --example wal [DIR]   (default /dev/shm)

use daxpmem::{MapOptions, Track};
use std::time::Instant;

/// One record: 64 bytes, one cache line (seq, checksum, payload).
const REC: usize = 64;
/// The header page: the committed record count at offset 64 (its own line).
const HEAD: usize = 64;
const LOG: usize = 4096;

fn checksum(seq: u64, payload: &[u8]) -> u64 {
    payload
        .iter()
        .fold(seq.wrapping_mul(0x9E37_79B9_7F4A_7C15), |h, &b| {
            (h ^ b as u64).wrapping_mul(0x100_0000_01B3)
        })
}

fn record(seq: u64) -> [u8; REC] {
    let mut r = [0u8; REC];
    let text = format!("record {seq}");
    r[16..16 + text.len()].copy_from_slice(text.as_bytes());
    let sum = checksum(seq, &r[16..]);
    r[..8].copy_from_slice(&seq.to_le_bytes());
    r[8..16].copy_from_slice(&sum.to_le_bytes());
    r
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "/dev/shm".into());
    let path = std::path::Path::new(&dir).join(format!("daxpmem-wal-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let c = daxpmem::cpu_info();
    println!(
        "daxpmem {}: flush={} line={} nt={}",
        daxpmem::VERSION,
        c.flush,
        c.line,
        c.nt
    );

    // 1. Append: groups of records, each made durable, then committed.
    let len = 16 << 20;
    let m = MapOptions::new()
        .create(len)
        .exclusive(true)
        .track(Track::Explicit)
        .open(&path)?;
    let s = m.stats()?;
    println!(
        "mapped {} MiB of {}: pmem={} (MAP_SYNC {}, file DAX {})",
        len >> 20,
        path.display(),
        m.is_pmem(),
        s.map_sync,
        s.file_dax
    );
    let nrec = (len - LOG) / REC;
    let group = 16;
    let mut groups = 0;
    let t0 = Instant::now();
    for i in 0..nrec {
        m.write(LOG + i * REC, &record(i as u64))?; // copy in and mark
        if (i + 1) % group == 0 || i + 1 == nrec {
            m.sync()?; // the records are durable ...
            m.write(HEAD, &((i + 1) as u64).to_le_bytes())?; // ... before the commit
            m.sync()?;
            groups += 1;
        }
    }
    let dt = t0.elapsed().as_secs_f64();
    let s = m.stats()?;
    println!(
        "log: {nrec} records in {groups} groups: {:.2} M records/s, {:.1} ns per group",
        nrec as f64 / dt / 1e6,
        dt / groups as f64 * 1e9
    );
    println!(
        "stats: syncs={} lines_written_back={} msync_calls={} dirty_lines={}",
        s.syncs, s.lines_written_back, s.msync_calls, s.dirty_lines
    );
    m.close()?; // a last sync (nothing is dirty), then unmap

    // 2. Reopen and replay what was committed.
    let m = MapOptions::new().open(&path)?;
    let mut head = [0u8; 8];
    m.read(HEAD, &mut head)?;
    let committed = u64::from_le_bytes(head) as usize;
    let t0 = Instant::now();
    let mut good = 0;
    let mut r = [0u8; REC];
    for i in 0..committed {
        m.read(LOG + i * REC, &mut r)?;
        let seq = u64::from_le_bytes(r[..8].try_into()?);
        let sum = u64::from_le_bytes(r[8..16].try_into()?);
        if seq == i as u64 && sum == checksum(seq, &r[16..]) {
            good += 1;
        } else {
            println!("record {i}: bad checksum");
        }
    }
    println!(
        "replay: {committed} committed records, {good} intact, in {:.1} ms",
        t0.elapsed().as_secs_f64() * 1e3
    );
    m.close()?;
    std::fs::remove_file(&path)?;
    let ok = committed == nrec && good == nrec;
    println!("{}", if ok { "wal: ok" } else { "wal: FAILED" });
    if ok {
        Ok(())
    } else {
        Err("replay does not match what was committed".into())
    }
}
