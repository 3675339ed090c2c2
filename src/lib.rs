//! daxpmem: persistent-memory write-back, DAX file mappings with a cache-line dirty
//! index, and the C ABI of `libdaxpmem.so`.
//!
//! Rooms: [`cpu`] decides the instruction and copy path once; [`flush`] holds one
//! write-back loop per instruction; [`nt`] the non-temporal copy and fill; [`pmem`]
//! the checked primitives; [`map`] opens and maps files; [`dirty`] is the index;
//! [`sync`] writes back what the index holds; [`registry`] finds a mapping by address;
//! [`ffi`] is the C boundary and nothing else.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
compile_error!(
    "daxpmem supports x86-64 Linux only: it uses CLWB/CLFLUSHOPT/CLFLUSH, MAP_SYNC and Linux's DAX interfaces"
);

pub mod cpu;
pub mod dirty;
pub mod error;
pub mod ffi;
pub mod flush;
pub mod fork;
pub mod handle;
pub mod lock;
pub mod map;
pub mod marklog;
pub mod nt;
pub mod order;
pub mod pagemap;
pub mod pmem;
pub mod registry;
pub mod rings;
#[cfg(feature = "seam")]
pub mod seam;
pub mod signals;
pub mod sync;
pub mod sys;
pub mod track;
pub mod uffd;

pub use error::{Error, Result};

/// The library version.
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
