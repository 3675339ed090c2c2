//! daxpmem: persistent-memory write-back and file mappings with a cache-line dirty
//! index, so that making data durable costs what was written, not the mapping's size.
//!
//! The Rust API is [`MapOptions`] (open or create a file and map it), [`DaxMap`] (write,
//! mark, sync, punch holes, read statistics), [`Track`] (how writes through the pointer
//! are found), [`Stats`], [`Error`], and the primitives on slices ([`persist`],
//! [`flush`], [`fence`]). The same library is `libdaxpmem.so` for C (its header is
//! `include/daxpmem.h`); the C functions are a thin layer over this API.
//!
//! ```
//! use daxpmem::{MapOptions, Track};
//! # fn main() -> Result<(), daxpmem::Error> {
//! let path = std::env::temp_dir().join(format!("daxpmem-doc-lib-{}", std::process::id()));
//! let m = MapOptions::new().create(1 << 20).track(Track::Explicit).open(&path)?;
//! m.write(0, b"hello, persistent memory")?; // copy in and mark
//! m.sync()?;                               // durable: written back, or one msync
//! assert_eq!(m.stats()?.dirty_lines, 0);
//! m.close()?;
//! # std::fs::remove_file(&path).unwrap();
//! # Ok(()) }
//! ```
//!
//! Inside, in layers (docs/architecture.md; tests/layers.rs fails if a module uses one
//! above it): primitives (`cpu`, `flush`, `nt`, `pmem`, `sys`, `lock`, `pagemap`) → the
//! index (`dirty`, `marklog`, `order`) → the mapping as data (`map`) → `registry` and
//! the per-thread mark rings (`rings`) → tracking (`track`, `uffd`) → `sync` → handles,
//! signals and fork (`handle`, `signals`, `fork`) → the Rust API (`api`) → the C ABI
//! (`ffi`, which calls only `api`).

#![deny(unsafe_op_in_unsafe_fn)]
#![deny(missing_docs)]
#![warn(clippy::undocumented_unsafe_blocks)]

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
compile_error!(
    "daxpmem supports x86-64 Linux only: it uses CLWB/CLFLUSHOPT/CLFLUSH, MAP_SYNC and Linux's DAX interfaces"
);

/// The internal modules: private to the crate, except that the write-back seam tests
/// (`--features seam`, never in the shipped library) reach into them.
macro_rules! internal {
    ($($m:ident),* $(,)?) => {$(
        #[cfg(feature = "seam")]
        #[doc(hidden)]
        #[allow(missing_docs)]
        pub mod $m;
        #[cfg(not(feature = "seam"))]
        mod $m;
    )*};
}

internal!(
    cpu, dirty, flush, fork, handle, lock, map, marklog, nt, order, pagemap, pmem, registry, rings,
    signals, sync, sys, track, uffd,
);

mod api;
mod error;
// Written out (not through `internal!`): cbindgen reads this declaration to find the C
// boundary.
mod ffi;
#[cfg(feature = "seam")]
#[doc(hidden)]
#[allow(missing_docs)]
pub mod seam;

pub use api::{
    cpu_info, fence, flush, persist, probe_file, CpuInfo, DaxMap, FileProbe, MapOptions, Stats,
    Track,
};
pub use error::{Error, Result};

/// The library version (Cargo's), e.g. `"0.1.0"`.
///
/// ```
/// assert!(!daxpmem::VERSION.is_empty());
/// ```
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

// Decide the CPU configuration at load time, before any thread can call in, and
// register the fork handler (fork.rs).
extern "C" fn daxpmem_ctor() {
    let _ = std::panic::catch_unwind(cpu::init);
    let _ = std::panic::catch_unwind(rings::init);
    fork::install();
}

#[used]
#[link_section = ".init_array"]
static DAXPMEM_CTOR: extern "C" fn() = daxpmem_ctor;
