//! Proof of write-back through the recording seam (built with `--features seam`):
//! what each call hands to the flush instruction, line by line, and where the fence is.

use daxpmem::seam::{self, Event};
use std::collections::BTreeSet;

fn lines_of(ev: &[Event]) -> Vec<usize> {
    ev.iter()
        .filter_map(|e| match e {
            Event::Line(p) => Some(*p),
            Event::Fence => None,
        })
        .collect()
}

/// xorshift64*: deterministic and dependency-free.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn wb_cache_pmem_writes_back_exactly_the_overlapping_lines_once_then_fence() {
    let line = daxpmem::cpu::config().line;
    let buf = vec![1u8; 1 << 20];
    let base = buf.as_ptr() as usize;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for _ in 0..20_000 {
        let off = rng.below(buf.len() as u64 - 1) as usize;
        let len = rng.below((buf.len() - off) as u64 + 1) as usize;
        let len = if rng.below(4) == 0 { len % 300 } else { len };
        seam::start();
        // SAFETY: inside buf.
        unsafe { daxpmem::pmem::wb_cache_pmem((base + off) as *const u8, len).unwrap() };
        daxpmem::pmem::wmb_pmem();
        let ev = seam::take();
        let got = lines_of(&ev);
        let want: Vec<usize> = if len == 0 {
            vec![]
        } else {
            let first = (base + off) / line * line;
            let last = (base + off + len - 1) / line * line;
            (0..=(last - first) / line)
                .map(|i| first + i * line)
                .collect()
        };
        assert_eq!(got, want, "off {off} len {len}");
        let uniq: BTreeSet<_> = got.iter().collect();
        assert_eq!(uniq.len(), got.len(), "a line written back twice");
        assert_eq!(ev.last(), Some(&Event::Fence));
        assert_eq!(ev.iter().filter(|e| **e == Event::Fence).count(), 1);
    }
}

#[test]
fn clear_and_copy_write_back_every_line_not_streamed() {
    // With non-temporal stores off, every line of the range must be written back.
    let mut c = daxpmem::cpu::config();
    let line = c.line;
    c.nt = daxpmem::cpu::Nt::None;
    let mut buf = vec![1u8; 1 << 16];
    let base = buf.as_mut_ptr() as usize;
    for (off, len) in [(0usize, 1usize), (3, 64), (63, 2), (100, 5000), (64, 4096)] {
        seam::start();
        // SAFETY: inside buf.
        let t = unsafe { daxpmem::nt::fill((base + off) as *mut u8, 0, len, &c) };
        // SAFETY: the ranges were just written inside buf.
        unsafe { daxpmem::pmem::wb_temporal(&t) };
        let got = lines_of(&seam::take());
        let first = (base + off) / line * line;
        let n = ((base + off + len - 1) / line * line - first) / line + 1;
        assert_eq!(got.len(), n);
        assert_eq!(got[0], first);
    }
    assert!(buf[100..5100].iter().all(|&b| b == 0));
}

#[test]
fn streamed_body_is_not_written_back_but_head_and_tail_are() {
    let c = daxpmem::cpu::config();
    if c.nt == daxpmem::cpu::Nt::None {
        return;
    }
    let line = c.line;
    let mut buf = vec![1u8; 1 << 16];
    let a = (buf.as_mut_ptr() as usize).next_multiple_of(64) + 10;
    seam::start();
    // SAFETY: inside buf.
    unsafe { daxpmem::pmem::clear_pmem(a as *mut u8, 8192).unwrap() };
    let got = lines_of(&seam::take());
    // Head line and tail line only.
    assert_eq!(got, vec![a / line * line, (a + 8191) / line * line]);
}
