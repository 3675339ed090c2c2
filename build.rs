// Build script: refuses non-x86-64-Linux targets with a clear message and gives the
// cdylib its soname.
fn main() {
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if arch != "x86_64" || os != "linux" {
        panic!(
            "daxpmem supports x86-64 Linux only (target is {arch}-{os}): it uses \
             CLWB/CLFLUSHOPT/CLFLUSH, MAP_SYNC and Linux's DAX interfaces"
        );
    }
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap();
    // The ABI major is 0 while the crate is 0.x: libdaxpmem.so.0.
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libdaxpmem.so.{major}");
    println!("cargo:rerun-if-changed=build.rs");
}
