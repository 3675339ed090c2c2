//! include/daxpmem.h must be exactly what cbindgen generates from src/ffi/.
//! `DAXPMEM_BLESS=1 cargo test --test header` (or `make header`) rewrites it.

use std::path::Path;

#[test]
fn header_matches_the_sources() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cfg = cbindgen::Config::from_file(root.join("cbindgen.toml")).expect("cbindgen.toml");
    let mut out = Vec::new();
    cbindgen::Builder::new()
        .with_crate(root)
        .with_config(cfg)
        .generate()
        .expect("cbindgen failed")
        .write(&mut out);
    let want = String::from_utf8(out).unwrap();
    let path = root.join("include/daxpmem.h");
    if std::env::var_os("DAXPMEM_BLESS").is_some() {
        std::fs::write(&path, &want).unwrap();
        return;
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    if have != want {
        let first = have
            .lines()
            .zip(want.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(have.lines().count().min(want.lines().count()));
        panic!(
            "include/daxpmem.h is out of date (first difference at line {}): run `make header`",
            first + 1
        );
    }
}
