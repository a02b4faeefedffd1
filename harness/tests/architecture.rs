//! The crate's layering, kept: every path into `crate::` from a role folder must go to a
//! folder that the table in `src/lib.rs` allows. A failure lists the file, line and path.
//!
//! Plain Rust over the source text: comments are dropped, then each `crate::NAME` (and each
//! first name inside `use crate::{...}`) is a use of folder `NAME`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Which folders each folder may use: the table of `src/lib.rs`, its only copy. A row is
/// ``//! | `NAME/` | role | `a`, `b` |``; the last cell may also say `(nothing)` or
/// `everything but `x`` or `everything`.
fn allowed() -> BTreeMap<String, Vec<String>> {
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    let rows: Vec<(String, String)> = lib
        .lines()
        .filter_map(|l| l.strip_prefix("//! | `"))
        .filter_map(|l| {
            let (name, rest) = l.split_once("/` |")?;
            let last = rest.trim_end().trim_end_matches('|').rsplit('|').next()?;
            Some((name.to_string(), last.trim().to_string()))
        })
        .collect();
    let names: Vec<String> = rows.iter().map(|(n, _)| n.clone()).collect();
    let ticked = |cell: &str| -> Vec<String> {
        cell.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect()
    };
    rows.iter()
        .map(|(name, cell)| {
            let may = if cell == "(nothing)" {
                Vec::new()
            } else if cell == "everything" {
                names.iter().filter(|n| *n != name).cloned().collect()
            } else if let Some(but) = cell.strip_prefix("everything but") {
                let not = ticked(but);
                names
                    .iter()
                    .filter(|n| *n != name && !not.contains(n))
                    .cloned()
                    .collect()
            } else {
                ticked(cell)
            };
            (name.clone(), may)
        })
        .collect()
}

/// A use of another module: where it stands and what it names.
#[derive(Debug)]
struct Use {
    line: usize,
    text: String,
    /// The path below `crate::`, as module names (`model::scenario`).
    path: Vec<String>,
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// The text of a line without its `//` comment (string contents are kept: a `//` inside a
/// string cuts the line short, which only hides uses, never invents them).
fn code(line: &str) -> &str {
    line.find("//").map_or(line, |i| &line[..i])
}

fn ident_at(s: &str) -> String {
    s.chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

/// The module path at `s` (`a::b::C` gives `[a, b, C]`).
fn path_at(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = s;
    loop {
        let id = ident_at(rest);
        if id.is_empty() {
            break;
        }
        rest = &rest[id.len()..];
        out.push(id);
        match rest.strip_prefix("::") {
            Some(r) => rest = r,
            None => break,
        }
    }
    out
}

/// Every `crate::` path of a file; `use crate::{a::x, b}` gives `a::x` and `b`.
fn uses(text: &str) -> Vec<Use> {
    let mut out = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let c = code(lines[i]);
        let mut start = 0;
        while let Some(at) = c[start..].find("crate::") {
            let at = start + at;
            let before = c[..at].chars().last();
            start = at + "crate::".len();
            if before.is_some_and(|b| b.is_ascii_alphanumeric() || b == '_' || b == ':') {
                continue;
            }
            let rest = &c[start..];
            if let Some(group) = rest.strip_prefix('{') {
                // A group may span lines: read to its closing brace.
                let mut body = group.to_string();
                let mut j = i;
                while !body.contains('}') && j + 1 < lines.len() {
                    j += 1;
                    body.push(' ');
                    body.push_str(code(lines[j]));
                }
                let body = body.split('}').next().unwrap_or("");
                for item in body.split(',') {
                    let p = path_at(item.trim());
                    if !p.is_empty() {
                        out.push(Use {
                            line: i + 1,
                            text: lines[i].trim().to_string(),
                            path: p,
                        });
                    }
                }
            } else {
                let p = path_at(rest);
                if !p.is_empty() {
                    out.push(Use {
                        line: i + 1,
                        text: lines[i].trim().to_string(),
                        path: p,
                    });
                }
            }
        }
        i += 1;
    }
    out
}

/// The role folder of a file under `src/` (`model/scenario.rs` is in `model`); `None` for
/// the files at the top (`lib.rs`, `main.rs`) and `bin/`, which may use anything.
fn folder_of(rel: &Path) -> Option<String> {
    let mut parts = rel.components();
    let first = parts.next()?.as_os_str().to_string_lossy().into_owned();
    parts.next()?;
    (first != "bin").then_some(first)
}

/// The file a module path names (`model::scenario` -> `model/scenario.rs`), when it is one.
fn module_file(path: &[String], files: &BTreeSet<String>) -> Option<String> {
    for n in (1..=path.len()).rev() {
        let f = format!("{}.rs", path[..n].join("/"));
        if files.contains(&f) {
            return Some(f);
        }
        let m = format!("{}/mod.rs", path[..n].join("/"));
        if files.contains(&m) && n == path.len() {
            return Some(m);
        }
    }
    None
}

struct Tree {
    /// Path below `src/` -> its uses.
    files: BTreeMap<String, Vec<Use>>,
}

fn tree() -> Tree {
    let root = src();
    let mut paths = Vec::new();
    rust_files(&root, &mut paths);
    let files = paths
        .iter()
        .map(|p| {
            let rel = p
                .strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let text = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{rel}: {e}"));
            // Unit tests may reach for fixtures anywhere; only the code counts.
            let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or("");
            (rel, uses(code))
        })
        .collect();
    Tree { files }
}

#[test]
fn role_folders_use_only_what_the_table_allows() {
    let allowed = allowed();
    let t = tree();
    let mut bad = Vec::new();
    for (rel, uses) in &t.files {
        let Some(from) = folder_of(Path::new(rel)) else {
            continue;
        };
        let Some(may) = allowed.get(from.as_str()) else {
            bad.push(format!(
                "{rel}: folder `{from}` is not in the table of src/lib.rs"
            ));
            continue;
        };
        for u in uses {
            let to = &u.path[0];
            if *to == from || may.contains(to) {
                continue;
            }
            bad.push(format!(
                "src/{rel}:{}: `{from}` may not use `{to}`: {}",
                u.line, u.text
            ));
        }
    }
    assert!(bad.is_empty(), "layering broken:\n{}", bad.join("\n"));
}

#[test]
fn every_role_folder_is_in_the_table() {
    let allowed = allowed();
    for (folder, may) in &allowed {
        assert!(src().join(folder).is_dir(), "no folder src/{folder}");
        for m in may {
            assert!(
                allowed.contains_key(m),
                "`{folder}` may use `{m}`, which is no folder"
            );
        }
    }
    for e in std::fs::read_dir(src()).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if e.path().is_dir() && name != "bin" {
            assert!(
                allowed.contains_key(&name),
                "src/lib.rs's table lacks `{name}/`"
            );
        }
    }
    // The table as read: the rows the layering rests on.
    assert_eq!(allowed["diagnose"], Vec::<String>::new());
    assert_eq!(allowed["exec"], ["model", "diagnose", "ckpt", "vnc"]);
    assert!(allowed["host"].contains(&"guest".to_string()));
}

#[test]
fn the_top_of_src_stays_small() {
    let n = std::fs::read_dir(src()).unwrap().count();
    assert!(
        n <= 14,
        "{n} entries directly under harness/src (at most 14)"
    );
}

/// The strongly connected parts of the file graph (Tarjan), largest first.
fn file_cycles(t: &Tree) -> Vec<Vec<String>> {
    let names: BTreeSet<String> = t.files.keys().cloned().collect();
    let edges: BTreeMap<&str, BTreeSet<String>> = t
        .files
        .iter()
        .map(|(f, uses)| {
            let to = uses
                .iter()
                .filter_map(|u| module_file(&u.path, &names))
                .filter(|to| to != f)
                .collect();
            (f.as_str(), to)
        })
        .collect();
    struct S<'a> {
        edges: &'a BTreeMap<&'a str, BTreeSet<String>>,
        index: BTreeMap<String, usize>,
        low: BTreeMap<String, usize>,
        stack: Vec<String>,
        on: BTreeSet<String>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    fn visit(s: &mut S, v: &str) {
        s.index.insert(v.into(), s.next);
        s.low.insert(v.into(), s.next);
        s.next += 1;
        s.stack.push(v.into());
        s.on.insert(v.into());
        let next: Vec<String> = s.edges.get(v).into_iter().flatten().cloned().collect();
        for w in next {
            if !s.index.contains_key(&w) {
                visit(s, &w);
                let l = s.low[&w].min(s.low[v]);
                s.low.insert(v.into(), l);
            } else if s.on.contains(&w) {
                let l = s.index[&w].min(s.low[v]);
                s.low.insert(v.into(), l);
            }
        }
        if s.low[v] == s.index[v] {
            let mut part = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on.remove(&w);
                let done = w == v;
                part.push(w);
                if done {
                    break;
                }
            }
            if part.len() > 1 {
                part.sort();
                s.out.push(part);
            }
        }
    }
    let mut s = S {
        edges: &edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for f in &names {
        if !s.index.contains_key(f) {
            visit(&mut s, f);
        }
    }
    s.out.sort_by_key(|p| std::cmp::Reverse(p.len()));
    s.out
}

/// Circles between files stay inside one folder, and small.
#[test]
fn file_circles_stay_inside_a_folder() {
    let t = tree();
    let cycles = file_cycles(&t);
    for c in &cycles {
        eprintln!("file circle of {}: {}", c.len(), c.join(" "));
        let folders: BTreeSet<_> = c.iter().filter_map(|f| folder_of(Path::new(f))).collect();
        assert!(
            folders.len() <= 1,
            "a circle crosses folders: {}",
            c.join(" -> ")
        );
    }
    let largest = cycles.first().map_or(0, Vec::len);
    assert!(
        largest <= 4,
        "largest circle between files: {largest} files"
    );
}

#[test]
fn the_reader_sees_groups_and_skips_comments() {
    let u = uses(
        "use crate::model::{a, b};\n// crate::host::x\nuse crate::{\n  exec::lxc,\n  vnc::frame::Frame,\n};\nlet x = crate::report::text::line();\nfoo_crate::bar;\n",
    );
    let paths: Vec<String> = u.iter().map(|u| u.path.join("::")).collect();
    assert_eq!(
        paths,
        [
            "model",
            "exec::lxc",
            "vnc::frame::Frame",
            "report::text::line"
        ]
    );
}

/// No function of `src/` (outside tests) is over 150 lines: a longer one does several jobs,
/// and is split by them. A function runs from its `fn` line to the `}` at its indentation.
#[test]
fn no_function_is_over_150_lines() {
    const MAX: usize = 150;
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut long = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        let lines: Vec<&str> = code.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let trimmed = line.trim_start();
            let indent = &line[..line.len() - trimmed.len()];
            let is_fn = ["fn ", "pub fn ", "pub(crate) fn ", "pub(super) fn "]
                .iter()
                .any(|p| trimmed.starts_with(p));
            if !is_fn || trimmed.ends_with(';') {
                continue;
            }
            let end = lines[i + 1..]
                .iter()
                .position(|l| *l == format!("{indent}}}"));
            if let Some(n) = end.map(|e| e + 2).filter(|n| *n > MAX) {
                let rel = path.strip_prefix(src()).unwrap().display().to_string();
                long.push(format!("src/{rel}:{}: {n} lines: {}", i + 1, trimmed));
            }
        }
    }
    assert!(
        long.is_empty(),
        "functions over {MAX} lines:\n{}",
        long.join("\n")
    );
}

/// The code of every file of `src/` (tests cut off), by its path below `src/`.
fn code_files() -> Vec<(String, String)> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    files
        .iter()
        .map(|p| {
            let rel = p.strip_prefix(src()).unwrap().display().to_string();
            let text = std::fs::read_to_string(p).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap_or("").to_string();
            (rel, code)
        })
        .collect()
}

/// The command line has one room: no module outside `cli/` knows clap (the library takes
/// plain option structs).
#[test]
fn clap_only_in_the_cli_room() {
    let bad: Vec<String> = code_files()
        .into_iter()
        .filter(|(rel, _)| !rel.starts_with("cli/"))
        .flat_map(|(rel, code)| {
            code.lines()
                .enumerate()
                .filter(|(_, l)| code_of(l).contains("clap"))
                .map(|(i, l)| format!("src/{rel}:{}: {}", i + 1, l.trim()))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(bad.is_empty(), "clap outside cli/:\n{}", bad.join("\n"));
}

fn code_of(line: &str) -> &str {
    code(line)
}

/// Exit codes are chosen in one place: `cli/exit.rs` (the guest agent, a program of its
/// own started as PID 1 or as criu's action script, and `main.rs` pass theirs on).
#[test]
fn exit_codes_in_one_place() {
    let bad: Vec<String> = code_files()
        .into_iter()
        .filter(|(rel, _)| !["main.rs", "guest/agent.rs"].contains(&rel.as_str()))
        .flat_map(|(rel, code)| {
            code.lines()
                .enumerate()
                .filter(|(_, l)| {
                    let c = code_of(l);
                    c.contains("process::exit(") || c.contains("-> i32 {") && c.contains("fn run(")
                })
                .map(|(i, l)| format!("src/{rel}:{}: {}", i + 1, l.trim()))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(
        bad.is_empty(),
        "exit codes chosen outside cli/exit.rs:\n{}",
        bad.join("\n")
    );
}

/// The last type argument of the first `Result<...>` in `sig`, when there is one.
fn result_error_type(sig: &str) -> Option<String> {
    let at = sig.find("Result<")? + "Result<".len();
    let (mut depth, mut last_comma, mut end) = (1, None, None);
    for (i, c) in sig[at..].char_indices() {
        match c {
            '<' | '(' => depth += 1,
            '>' | ')' => {
                depth -= 1;
                if depth == 0 {
                    end = Some(at + i);
                    break;
                }
            }
            ',' if depth == 1 => last_comma = Some(at + i),
            _ => {}
        }
    }
    Some(sig[last_comma? + 1..end?].trim().to_string())
}

/// Errors are types, not strings, across modules: no `pub` function of `src/` returns a
/// `Result` whose error is a `String`.
#[test]
fn no_string_errors_across_modules() {
    let mut bad = Vec::new();
    for (rel, code) in code_files() {
        let lines: Vec<&str> = code.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let t = code_of(line).trim_start();
            if !(t.starts_with("pub fn ")
                || t.starts_with("pub(crate) fn ")
                || t.starts_with("pub(super) fn "))
            {
                continue;
            }
            // The signature, to its body or its `;`.
            let mut sig = String::new();
            for l in &lines[i..] {
                sig.push_str(code_of(l));
                if l.contains('{') || l.trim_end().ends_with(';') {
                    break;
                }
            }
            if result_error_type(&sig).as_deref() == Some("String") {
                bad.push(format!("src/{rel}:{}: {}", i + 1, t));
            }
        }
    }
    assert!(bad.is_empty(), "String errors:\n{}", bad.join("\n"));
}

#[test]
fn the_error_type_of_a_signature() {
    assert_eq!(
        result_error_type("pub fn f() -> Result<Vec<(bool, String)>, RangeError> {").as_deref(),
        Some("RangeError")
    );
    assert_eq!(
        result_error_type("pub fn f() -> Result<(), String> {").as_deref(),
        Some("String")
    );
    assert_eq!(result_error_type("pub fn f() -> io::Result<u8> {"), None);
}
