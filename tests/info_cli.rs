//! daxpmem-info's command line: --help, --version, --json, unknown options.

use std::process::Command;

fn run(args: &[&str]) -> (i32, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_daxpmem-info"))
        .args(args)
        .output()
        .expect("run daxpmem-info");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn help_and_version() {
    let (rc, out, _) = run(&["--help"]);
    assert_eq!(rc, 0);
    assert!(out.starts_with("usage: daxpmem-info"), "{out}");
    let (rc, out, _) = run(&["--version"]);
    assert_eq!(rc, 0);
    assert_eq!(out, format!("daxpmem-info {}\n", env!("CARGO_PKG_VERSION")));
}

#[test]
fn unknown_option_is_an_error() {
    let (rc, out, err) = run(&["--jsno"]);
    assert_eq!(rc, 2);
    assert!(out.is_empty());
    assert!(err.contains("unknown option '--jsno'"), "{err}");
    let (rc, _, _) = run(&["-x", "/tmp"]);
    assert_eq!(rc, 2);
}

#[test]
fn text_and_json() {
    let dir = std::env::temp_dir();
    let d = dir.to_str().unwrap();
    let (rc, out, _) = run(&[d]);
    assert_eq!(rc, 0);
    assert!(out.contains(&format!("{d}:\n  filesystem: ")), "{out}");
    assert!(out.contains("  MAP_SYNC: "), "{out}");
    let (rc, out, _) = run(&["--json", d, "/nonexistent/daxpmem-info"]);
    assert_eq!(rc, 1, "a path that cannot be probed: exit 1");
    for key in [
        "\"version\": ",
        "\"cpu\": {\"flush\": ",
        "\"eadr\": ",
        "\"paths\": [",
        &format!("{{\"path\": \"{d}\", \"filesystem\": \""),
        "\"map_sync\": ",
        "\"verdict\": \"",
        "{\"path\": \"/nonexistent/daxpmem-info\"",
        "\"verdict\": null, \"error\": \"",
    ] {
        assert!(out.contains(key), "missing {key} in {out}");
    }
    assert!(out.trim_end().ends_with('}'));
    let (rc, out, _) = run(&["--json"]);
    assert_eq!(rc, 0);
    assert!(out.contains("\"paths\": []"), "{out}");
}
