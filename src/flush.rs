//! Cache-line write-back: one loop per instruction, no branch inside a loop, chosen
//! once per call from the load-time configuration.
//!
//! Every function here takes an address range that the caller has checked: `len > 0`
//! and `addr + len` does not wrap. The loops count lines instead of comparing
//! addresses, so even a range ending at the top of the address space terminates.

use crate::cpu::{self, Flush};
use core::arch::asm;

/// The lines overlapping `[addr, addr+len)` as (first line address, count).
#[inline(always)]
pub fn line_span(addr: usize, len: usize, line: usize) -> (usize, usize) {
    debug_assert!(len > 0 && addr.checked_add(len).is_some() && line.is_power_of_two());
    let first = addr & !(line - 1);
    let last = (addr + (len - 1)) & !(line - 1);
    // A shift, not a division: `line` is a run-time power of two (a `div` costs tens of
    // cycles on a call that writes back a few lines).
    (first, ((last - first) >> line.trailing_zeros()) + 1)
}

#[inline(always)]
unsafe fn clwb(p: usize) {
    // SAFETY: the caller guarantees p lies in mapped memory of the caller's range.
    // `readonly`: a write-back changes no memory contents, so the compiler may keep
    // values in registers across it (without it, a write-back loop reloads its base
    // address and shift from memory before each line: measured, a load between two
    // write-backs costs about as much as the write-back). It still may read memory, so
    // no store before it is moved after it; the fence (`fence`) orders everything.
    unsafe { asm!("clwb byte ptr [{0}]", in(reg) p, options(nostack, preserves_flags, readonly)) }
}

#[inline(always)]
unsafe fn clflushopt(p: usize) {
    // SAFETY: as for clwb.
    unsafe { asm!("clflushopt byte ptr [{0}]", in(reg) p, options(nostack, preserves_flags, readonly)) }
}

#[inline(always)]
unsafe fn clflush(p: usize) {
    // SAFETY: as for clwb.
    unsafe { asm!("clflush byte ptr [{0}]", in(reg) p, options(nostack, preserves_flags, readonly)) }
}

/// One write-back instruction as a type, so a caller with many short runs (a sync's
/// write-back of random lines) can have the loop inlined into its own, with the choice
/// of instruction made once outside it (`sync::write_back`).
pub trait Insn {
    /// Write back `n` lines from `first`, `stride` apart.
    ///
    /// # Safety
    /// Every line must be mapped memory of the caller's.
    unsafe fn lines(first: usize, n: usize, stride: usize);
}

macro_rules! wb_loop {
    ($name:ident, $ty:ident, $insn:ident) => {
        pub struct $ty;
        impl Insn for $ty {
            #[inline(always)]
            unsafe fn lines(first: usize, n: usize, stride: usize) {
                let mut p = first;
                for _ in 0..n {
                    #[cfg(feature = "seam")]
                    crate::seam::line(p);
                    // SAFETY: p is one of the caller's lines.
                    unsafe { $insn(p) };
                    p = p.wrapping_add(stride);
                }
            }
        }

        /// Write back `n` lines from `first`, `stride` apart.
        ///
        /// # Safety
        /// Every line must be mapped memory of the caller's.
        #[inline(never)]
        pub unsafe fn $name(first: usize, n: usize, stride: usize) {
            // SAFETY: forwarded from the caller.
            unsafe { $ty::lines(first, n, stride) }
        }
    };
}

wb_loop!(lines_clwb, Clwb, clwb);
wb_loop!(lines_clflushopt, Clflushopt, clflushopt);
wb_loop!(lines_clflush, Clflush, clflush);

/// Write back the lines overlapping `[addr, addr+len)` with the configured instruction.
///
/// # Safety
/// `len > 0`, `addr + len` does not wrap, and the range is mapped memory of the caller's.
#[inline]
pub unsafe fn wb_range(addr: usize, len: usize) {
    let c = cpu::config();
    let (first, n) = line_span(addr, len, c.line);
    // SAFETY: forwarded from the caller.
    unsafe { wb_lines(c.flush, first, n, c.line) }
}

/// Write back `n` lines from `first` with instruction `f`.
///
/// # Safety
/// As for the loops: every line must be mapped memory of the caller's.
#[inline]
pub unsafe fn wb_lines(f: Flush, first: usize, n: usize, stride: usize) {
    // SAFETY: forwarded from the caller.
    unsafe {
        match f {
            Flush::Clwb => lines_clwb(first, n, stride),
            Flush::Clflushopt => lines_clflushopt(first, n, stride),
            Flush::Clflush => lines_clflush(first, n, stride),
        }
    }
}

/// Order every earlier write-back and non-temporal store (SFENCE). Issued for every
/// instruction, CLFLUSH included: it is what orders non-temporal stores.
#[inline]
pub fn fence() {
    #[cfg(feature = "seam")]
    crate::seam::fence();
    // SAFETY: SFENCE has no operands and no memory effects beyond ordering.
    unsafe { asm!("sfence", options(nostack, preserves_flags)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn span_covers_exactly_the_overlapping_lines() {
        assert_eq!(line_span(0, 1, 64), (0, 1));
        assert_eq!(line_span(63, 1, 64), (0, 1));
        assert_eq!(line_span(63, 2, 64), (0, 2));
        assert_eq!(line_span(64, 64, 64), (64, 1));
        assert_eq!(line_span(65, 64, 64), (64, 2));
        assert_eq!(line_span(1000, 4096, 64), (960, 65));
        // A range that ends at the very top of the address space.
        let top = usize::MAX - 63;
        assert_eq!(line_span(top, 63, 64), (top, 1));
        assert_eq!(line_span(usize::MAX - 200, 200, 64).1, 4);
    }

    #[test]
    fn every_instruction_runs_on_real_memory() {
        let mut v = vec![7u8; 8192];
        let feat = crate::cpu::Features::probe();
        let have = [feat.clwb, feat.clflushopt, feat.clflush];
        for (f, _) in [Flush::Clwb, Flush::Clflushopt, Flush::Clflush]
            .into_iter()
            .zip(have)
            .filter(|(_, h)| *h)
        {
            let (first, n) = line_span(v.as_ptr() as usize + 3, 5000, 64);
            // SAFETY: the lines overlap v, which is mapped.
            unsafe { wb_lines(f, first, n, 64) };
            fence();
        }
        v[0] = 1;
        assert_eq!(v.iter().filter(|&&b| b == 7).count(), 8191);
    }
}
