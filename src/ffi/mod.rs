//! The C boundary, and nothing else: argument conversion and checks, errno, messages,
//! and a panic guard around every body. Every export is a plain `extern "C" fn`; the
//! header `include/daxpmem.h` is generated from these files by cbindgen, so the doc
//! comments here are the C documentation.
//!
//! It is built on the Rust API (api.rs) only: `MapOptions` and `DaxMap` to make
//! mappings, `MapHandle` (a C handle with DaxMap's operations, on addresses) for the
//! calls on one, and the hooks listed in `api::hooks` (the primitives on raw pointers,
//! registry lookups, `dax_unmap_range`, counters, `dax_chain_sigaction`), plus the
//! thread-local message of error.rs.
//!
//! The exports take raw pointers from C and are plain (not `unsafe`) `extern "C"`
//! functions: C cannot see Rust's `unsafe`, and each pointer's contract is stated in the
//! header. Every dereference sits in a small `unsafe` block after the checks.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

use crate::api::hooks as pmem;
use crate::api::{self, hooks, MapHandle, MapOptions, Track};
use crate::error::{self, Error, Result};
use libc::{c_char, c_int, c_uint, c_void, mode_t, off_t, size_t};
use std::ffi::CStr;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Run `f` as the C function `cname`; on error record it (errno + a message that begins
/// with `cname`: the core names the operation neutrally, as `op`, and error::set_last_c
/// puts `cname` in its place without allocating) and return `fail`; a panic is caught
/// and reported as EIO, never unwound into C.
fn guard<T>(cname: &'static str, op: &'static str, fail: T, f: impl FnOnce() -> Result<T>) -> T {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            error::set_last_c(cname, op, &e);
            fail
        }
        Err(p) => {
            let what = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            error::set_last_c(
                cname,
                op,
                &Error::new(
                    libc::EIO,
                    format!("daxpmem internal error (please report): {what}"),
                ),
            );
            fail
        }
    }
}

// One file a family, in the header's order: cbindgen reads them in this order (the
// blank lines keep rustfmt from sorting them).
mod pmem_calls;

mod map;

mod lookup;

mod mem;

mod shims;
