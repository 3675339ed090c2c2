//! The layer test: every module of `src/` sits in one layer of the table in
//! docs/architecture.md, uses (`crate::…`) only modules of its own layer or below, and
//! the modules form no cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// A module's layer (from the table) and name.
type Table = BTreeMap<String, usize>;
/// Each module's files (path, text).
type Sources = BTreeMap<String, Vec<(String, String)>>;
/// Names lib.rs re-exports at the root, and their modules.
type Reexports = BTreeMap<String, String>;

/// The rows of the table between the `layers` markers: `| N | name | `a` `b` | … |`.
fn parse_table(doc: &str) -> Table {
    let mut t = Table::new();
    let mut inside = false;
    for l in doc.lines() {
        if l.starts_with("<!-- layers") {
            inside = true;
            continue;
        }
        if l.starts_with("<!-- end of layers") {
            break;
        }
        let cols: Vec<&str> = l.split('|').map(str::trim).collect();
        if !inside || cols.len() < 4 {
            continue;
        }
        let Ok(layer) = cols[1].parse::<usize>() else {
            continue;
        };
        for m in cols[3].split('`').map(str::trim).filter(|m| !m.is_empty()) {
            assert!(
                t.insert(m.to_string(), layer).is_none(),
                "{m} is in two layers"
            );
        }
    }
    t
}

/// `src` without comments and without the contents of string and char literals
/// (newlines kept, so line numbers stay right).
fn strip(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == b'/' && next == Some(b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if c == b'/' && next == Some(b'*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if b[i] == b'\n' {
                        out.push('\n');
                    }
                    i += 1;
                }
            }
        } else if c == b'r' && (next == Some(b'"') || next == Some(b'#')) && {
            let h = b[i + 1..].iter().take_while(|&&x| x == b'#').count();
            b.get(i + 1 + h) == Some(&b'"')
                && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_'))
        } {
            let h = b[i + 1..].iter().take_while(|&&x| x == b'#').count();
            i += 2 + h;
            let close: Vec<u8> = std::iter::once(b'"')
                .chain(std::iter::repeat_n(b'#', h))
                .collect();
            while i < b.len() && !b[i..].starts_with(&close) {
                if b[i] == b'\n' {
                    out.push('\n');
                }
                i += 1;
            }
            i += close.len();
            out.push_str("\"\"");
        } else if c == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    i += 1;
                }
                if i < b.len() && b[i] == b'\n' {
                    out.push('\n');
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == b'\'' && next == Some(b'\\') {
            // '\n', '\'', '\u{..}'
            i += 2;
            while i < b.len() && b[i] != b'\'' {
                i += 1;
            }
            i += 1;
        } else if c == b'\'' && b.get(i + 2) == Some(&b'\'') {
            i += 3;
        } else {
            out.push(c as char);
            i += 1;
        }
    }
    out
}

/// The top-level names a file refers to through `crate::`, with their line numbers:
/// `crate::x::…`, `crate::x`, and each item of `crate::{x, y::z}`.
fn references(code: &str) -> Vec<(String, usize)> {
    let mut refs = vec![];
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut from = 0;
    while let Some(k) = code[from..].find("crate::") {
        let at = from + k;
        from = at + 7;
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        let line = code[..at].matches('\n').count() + 1;
        let rest = &code[from..];
        if let Some(group) = rest.strip_prefix('{') {
            // Items at depth 0 of the brace group.
            let mut depth = 0;
            let mut item_start = true;
            for (j, ch) in group.char_indices() {
                match ch {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && depth == 0 && !c.is_whitespace() => {
                        item_start = false;
                        let name = ident(&group[j..]);
                        if !name.is_empty() {
                            refs.push((name, line + group[..j].matches('\n').count()));
                        }
                    }
                    _ => {}
                }
            }
        } else {
            let name = ident(rest);
            if !name.is_empty() {
                refs.push((name, line));
            }
        }
    }
    refs
}

/// The modules of the crate (the `mod x;` lines of lib.rs): `src/x.rs` or all the files
/// below `src/x/`, with their text; and what lib.rs re-exports at the root
/// (`pub use x::{A, B}`).
fn modules(src: &Path) -> (Sources, Reexports) {
    fn walk(dir: &Path, out: &mut Vec<(String, String)>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push((
                    p.display().to_string(),
                    std::fs::read_to_string(&p).unwrap(),
                ));
            }
        }
    }
    let lib = strip(&std::fs::read_to_string(src.join("lib.rs")).unwrap());
    let mut mods = Sources::new();
    // The modules declared through lib.rs's `internal!(a, b, ...);` (each a `mod`),
    // as lines of their own for the loop below.
    let mut decls: Vec<String> = vec![];
    if let Some((_, rest)) = lib.split_once("internal!(") {
        let list = rest.split_once(");").map_or(rest, |(l, _)| l);
        decls.extend(
            list.split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(|n| format!("mod {n};")),
        );
    }
    for l in lib.lines().map(str::to_string).chain(decls) {
        let l = l.trim();
        if l.contains('$') {
            // The macro's own `mod $m;`.
            continue;
        }
        let l = l
            .strip_prefix("pub(crate) ")
            .or_else(|| l.strip_prefix("pub "))
            .unwrap_or(l);
        let Some(name) = l.strip_prefix("mod ").and_then(|n| n.strip_suffix(';')) else {
            continue;
        };
        let files = mods.entry(name.trim().to_string()).or_default();
        let (file, dir) = (
            src.join(format!("{}.rs", name.trim())),
            src.join(name.trim()),
        );
        if file.is_file() {
            files.push((
                file.display().to_string(),
                std::fs::read_to_string(&file).unwrap(),
            ));
        }
        if dir.is_dir() {
            walk(&dir, files);
        }
        assert!(!files.is_empty(), "no source for `mod {name};`");
    }
    let mut reexports = BTreeMap::new();
    for l in lib.lines() {
        let Some(rest) = l.trim().strip_prefix("pub use ") else {
            continue;
        };
        let Some((m, items)) = rest.split_once("::") else {
            continue;
        };
        for it in items.trim_matches(|c| "{};".contains(c)).split(',') {
            let name = it.split(" as ").last().unwrap().trim();
            reexports.insert(name.to_string(), m.trim().to_string());
        }
    }
    (mods, reexports)
}

/// Every breach of the layering: an unplaced module, an edge up, a cycle.
fn check(table: &Table, mods: &Sources, reexports: &Reexports) -> Vec<String> {
    let mut errors = vec![];
    let mut edges: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for (m, files) in mods {
        let Some(&lm) = table.get(m) else {
            errors.push(format!(
                "module `{m}` is in no layer of docs/architecture.md's table"
            ));
            continue;
        };
        for (path, text) in files {
            for (name, line) in references(&strip(text)) {
                let target = reexports.get(&name).cloned().unwrap_or(name);
                if target == *m || !mods.contains_key(&target) {
                    continue;
                }
                edges.entry(m).or_default().insert(target.clone());
                match table.get(&target) {
                    Some(&lt) if lt > lm => errors.push(format!(
                        "{path}:{line}: `{m}` (layer {lm}) uses `{target}` (layer {lt}), a layer above it"
                    )),
                    _ => {}
                }
            }
        }
    }
    // A cycle: depth-first search over the edges.
    fn visit<'a>(
        m: &'a str,
        edges: &'a BTreeMap<&str, BTreeSet<String>>,
        state: &mut BTreeMap<&'a str, u8>,
        path: &mut Vec<&'a str>,
        errors: &mut Vec<String>,
    ) {
        match state.get(m) {
            Some(2) => return,
            Some(1) => {
                let from = path.iter().position(|&p| p == m).unwrap();
                errors.push(format!("a cycle: {} -> {m}", path[from..].join(" -> ")));
                return;
            }
            _ => {}
        }
        state.insert(m, 1);
        path.push(m);
        for t in edges.get(m).into_iter().flatten() {
            visit(t, edges, state, path, errors);
        }
        path.pop();
        state.insert(m, 2);
    }
    let mut state = BTreeMap::new();
    for m in mods.keys() {
        visit(m, &edges, &mut state, &mut vec![], &mut errors);
    }
    errors
}

#[test]
fn no_module_uses_one_above_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let table = parse_table(&std::fs::read_to_string(root.join("docs/architecture.md")).unwrap());
    assert!(
        table.len() > 10,
        "the table of docs/architecture.md was not found"
    );
    let (mods, reexports) = modules(&root.join("src"));
    let errors = check(&table, &mods, &reexports);
    assert!(
        errors.is_empty(),
        "the layers are broken:\n{}",
        errors.join("\n")
    );
}

/// The checker itself: it sees an edge up, a cycle within a layer, an unplaced module,
/// and does not count comments and strings.
#[test]
fn the_checker_fails_on_what_it_must() {
    let table = parse_table(
        "<!-- layers -->\n| layer | name | modules |\n|---|---|---|\n| 0 | low | `a` `b` |\n| 1 | high | `c` |\n<!-- end of layers -->\n",
    );
    assert_eq!(table.len(), 3);
    let file = |m: &str, text: &str| {
        (
            m.to_string(),
            vec![(format!("src/{m}.rs"), text.to_string())],
        )
    };
    let ok: BTreeMap<_, _> = [
        file(
            "a",
            "use crate::b::X;\n// crate::c::y\nlet s = \"crate::c\";",
        ),
        file("b", "fn f() {}"),
        file("c", "use crate::{a, b::{self, Y}};\nlet z = crate::Root;"),
    ]
    .into();
    let re: BTreeMap<String, String> = [("Root".to_string(), "a".to_string())].into();
    assert_eq!(check(&table, &ok, &re), Vec::<String>::new());

    let mut up = ok.clone();
    up.insert(
        "b".into(),
        vec![("src/b.rs".into(), "\n\nfn f() { crate::c::g() }".into())],
    );
    let e = check(&table, &up, &re);
    assert!(
        e.iter()
            .any(|e| e.starts_with("src/b.rs:3: `b` (layer 0) uses `c` (layer 1)")),
        "{e:?}"
    );

    let mut cycle = ok.clone();
    cycle.insert(
        "b".into(),
        vec![("src/b.rs".into(), "use crate::{a};".into())],
    );
    let e = check(&table, &cycle, &re);
    assert!(
        e.iter().any(|e| e.starts_with("a cycle: a -> b -> a")),
        "{e:?}"
    );

    let mut unplaced = ok.clone();
    unplaced.insert("d".into(), vec![("src/d.rs".into(), String::new())]);
    let e = check(&table, &unplaced, &re);
    assert!(e.iter().any(|e| e.contains("`d` is in no layer")), "{e:?}");

    let mut via_root = ok.clone();
    let re_c: BTreeMap<String, String> = [("Root".to_string(), "c".to_string())].into();
    via_root.insert(
        "b".into(),
        vec![("src/b.rs".into(), "use crate::Root;".into())],
    );
    let e = check(&table, &via_root, &re_c);
    assert!(
        e.iter().any(|e| e.contains("`b` (layer 0) uses `c`")),
        "{e:?}"
    );
}

/// The C ABI is a thin layer over the Rust API: `ffi` names no module of the core but
/// `api` (whose `hooks` are the documented extra entry points of the shims) and
/// `error` (errno and the message of `dax_errormsg`).
#[test]
fn the_c_abi_uses_only_the_rust_api() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![];
    let single = src.join("ffi.rs");
    if single.is_file() {
        files.push(single);
    }
    if let Ok(d) = std::fs::read_dir(src.join("ffi")) {
        files.extend(d.flatten().map(|e| e.path()));
    }
    assert!(!files.is_empty(), "no ffi source");
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for (i, l) in text.lines().enumerate() {
            let code = l.split("//").next().unwrap();
            for (at, _) in code.match_indices("crate::") {
                let m: String = code[at + 7..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                assert!(
                    m == "api" || m == "error",
                    "{}:{}: the C layer uses crate::{m} (only api and error)",
                    f.display(),
                    i + 1
                );
            }
        }
    }
}
