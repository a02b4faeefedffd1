//! CRIU's own CI as a profile (`--zdtm-profile ci`): the `zdtm.py run` calls of the tree's
//! `scripts/ci/run-ci-tests.sh`, each read into the tests it picks (`-a`, `-t`, `-T`, less
//! `-x`), the flavors (`-f`) and the mode (`--pre 2 --page-server`, `--lazy-pages`, ...), so
//! that the same (test, flavor, mode) combinations run natively in any cell. A call with an
//! option the harness has no mode for (`--tls`, `--stream`, `--join-ns`, ...) is left out and
//! named; a call inside `if criu/criu check --feature F; then` needs feature F.
//!
//! The script is read as data, never run: variables (`LAZY_OPTS=(...)`) are expanded, quotes
//! removed, comments and line continuations handled; everything else of the shell is not.

use crate::model::scenario::{Mode, Scenario, Target, ZdtmFlavor};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Where the tree keeps its CI's test calls.
pub const SCRIPT: &str = "scripts/ci/run-ci-tests.sh";
/// The most bytes of the script read.
const MAX_SCRIPT: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("cannot read {path} (CRIU's CI script, which `--zdtm-profile ci` reads): {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is larger than {MAX_SCRIPT} bytes")]
    TooLarge { path: PathBuf },
    #[error("{path}:{line}: `{pattern}` is not a regular expression zdtm.py could use: {message}")]
    Pattern {
        path: PathBuf,
        line: usize,
        pattern: String,
        message: String,
    },
    #[error("unknown zdtm profile `{0}`; profiles: ci")]
    Unknown(String),
}

impl ProfileError {
    pub fn is_bad_input(&self) -> bool {
        true
    }
}

/// Which tests a call picks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pick {
    /// `-a`: every test (not those flagged `noauto`).
    All,
    /// `-T REGEX`: the tests whose name matches (not `noauto` ones).
    Matching(String),
    /// `-t NAME`: these tests, `noauto` or not.
    Named(Vec<String>),
}

/// One `zdtm.py run` call of the script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// Its line in the script (from 1).
    pub line: usize,
    pub pick: Pick,
    /// `-x`: patterns of tests left out.
    pub exclude: Vec<String>,
    /// `-f`: the flavors (all the `.desc` allows when empty).
    pub flavors: Vec<ZdtmFlavor>,
    pub mode: Mode,
    /// Features the script checks before the call.
    pub features: Vec<String>,
}

/// The calls of a CI script, and those left out with the reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profile {
    pub calls: Vec<Call>,
    pub left_out: Vec<String>,
}

/// The profile `name` of `tree` (only `ci` exists).
pub fn read(tree: &Path, name: &str) -> Result<Profile, ProfileError> {
    if name != "ci" {
        return Err(ProfileError::Unknown(name.to_string()));
    }
    let path = tree.join(SCRIPT);
    let read = |source| ProfileError::Read {
        path: path.clone(),
        source,
    };
    let len = std::fs::metadata(&path).map_err(read)?.len();
    if len > MAX_SCRIPT {
        return Err(ProfileError::TooLarge { path });
    }
    let text = std::fs::read_to_string(&path).map_err(read)?;
    Ok(parse(&text))
}

/// Reads the script's `zdtm.py run` calls.
pub fn parse(text: &str) -> Profile {
    let mut p = Profile::default();
    let mut vars: BTreeMap<String, Vec<String>> = BTreeMap::new();
    // The features checked by the `if`s around the line (None: some other condition).
    let mut guards: Vec<Option<String>> = Vec::new();
    for (line, logical) in logical_lines(text) {
        let words = words(&logical, &vars);
        let Some(first) = words.first() else { continue };
        match first.as_str() {
            // `if C; then CALL; fi` on one line: the call under its own guard.
            "if" if words.last().is_some_and(|w| w == "fi") => {
                let then = words
                    .iter()
                    .position(|w| w == "then")
                    .unwrap_or(words.len());
                let body = &words[(then + 1).min(words.len())..words.len() - 1];
                let mut g = guards.clone();
                g.push(feature_checked(&words[..then]));
                one_call(&mut p, line, &logical, body, &g);
                continue;
            }
            "if" => {
                guards.push(feature_checked(&words));
                continue;
            }
            "elif" => {
                guards.pop();
                guards.push(feature_checked(&words));
                continue;
            }
            // The other branch: the feature was not there, so nothing is known.
            "else" => {
                guards.pop();
                guards.push(None);
                continue;
            }
            "fi" => {
                guards.pop();
                continue;
            }
            "echo" | "printf" => continue,
            _ => {}
        }
        if let Some((name, value)) = assignment(&logical) {
            let value = words_of_value(value, &vars);
            vars.insert(name.to_string(), value);
            continue;
        }
        one_call(&mut p, line, &logical, &words, &guards);
    }
    p
}

/// The `zdtm.py run` call of a command's `words` (none when the line has none), or why it is
/// left out.
fn one_call(
    p: &mut Profile,
    line: usize,
    logical: &str,
    words: &[String],
    guards: &[Option<String>],
) {
    if !logical.contains("zdtm.py run") {
        return;
    }
    match words.iter().position(|w| w.ends_with("zdtm.py")) {
        Some(0) if words.get(1).is_some_and(|w| w == "run") => {}
        _ => {
            let shown: String = logical.trim().chars().take(160).collect();
            p.left_out.push(format!(
                "line {line}: `{shown}`: zdtm.py run through another command"
            ));
            return;
        }
    }
    match call(line, &words[2..]) {
        Ok(mut c) => {
            c.features = guards.iter().flatten().cloned().collect();
            p.calls.push(c);
        }
        Err(why) => p
            .left_out
            .push(format!("line {line}: `{}`: {why}", words.join(" "))),
    }
}

/// The script's lines with continuations joined and comments removed, each with the
/// number of its first line.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut start = 0;
    for (i, raw) in text.lines().enumerate() {
        if cur.is_empty() {
            start = i + 1;
        }
        let l = strip_comment(raw);
        match l.strip_suffix('\\') {
            Some(head) => {
                cur.push_str(head);
                cur.push(' ');
            }
            None => {
                cur.push_str(&l);
                out.push((start, std::mem::take(&mut cur)));
            }
        }
    }
    if !cur.is_empty() {
        out.push((start, cur));
    }
    out
}

/// A line without its `# comment` (a `#` at its start or after a blank, outside quotes).
fn strip_comment(line: &str) -> String {
    let mut quote = None;
    let mut prev = ' ';
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '#') if prev.is_whitespace() => return line[..i].trim_end().to_string(),
            _ => {}
        }
        prev = c;
    }
    line.trim_end().to_string()
}

/// `NAME=value` or `NAME=(...)` alone on a line (not `NAME=value command`).
fn assignment(line: &str) -> Option<(&str, &str)> {
    let line = line.trim();
    let (name, value) = line.split_once('=')?;
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    let alone =
        value.starts_with('(') && value.ends_with(')') || words(value, &BTreeMap::new()).len() <= 1;
    (ok && alone).then_some((name, value))
}

/// The words of an assigned value: `(a "b c")` an array, `"a b"` or `a` one string.
fn words_of_value(value: &str, vars: &BTreeMap<String, Vec<String>>) -> Vec<String> {
    let v = value.trim();
    match v.strip_prefix('(').and_then(|x| x.strip_suffix(')')) {
        Some(inner) => words(inner, vars),
        None => vec![words(v, vars).join(" ")],
    }
}

/// Splits a line into words as the shell would, quotes removed and `$NAME`, `${NAME}`,
/// `${NAME[@]}` expanded (unquoted: each word of the value; quoted: one word, or each
/// element for `"${NAME[@]}"`).
fn words(line: &str, vars: &BTreeMap<String, Vec<String>>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut cur = String::new();
    let mut has = false;
    let mut quote: Option<char> = None;
    let chars: Vec<char> = line.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match (quote, c) {
            (None, c) if c.is_whitespace() || c == ';' => {
                if has {
                    out.push(std::mem::take(&mut cur));
                    has = false;
                }
            }
            (None, '\'' | '"') => {
                quote = Some(c);
                has = true;
            }
            (Some(q), c) if c == q => quote = None,
            (q, '$') if q != Some('\'') => {
                let (name, array, len) = variable(&chars[i + 1..]);
                i += len;
                let mut value = vars.get(&name).cloned().unwrap_or_default();
                if q.is_none() {
                    // Unquoted, the value is split at blanks again.
                    value = value
                        .iter()
                        .flat_map(|v| v.split_whitespace().map(String::from))
                        .collect();
                }
                match (q, array) {
                    // Quoted: one word, or (an array's `[@]`) each element.
                    (Some(_), false) => {
                        cur.push_str(&value.join(" "));
                        has = true;
                    }
                    _ => {
                        let mut parts = value.into_iter();
                        if let Some(first) = parts.next() {
                            cur.push_str(&first);
                            has = true;
                        }
                        for p in parts {
                            out.push(std::mem::take(&mut cur));
                            cur = p;
                        }
                    }
                }
            }
            (_, c) => {
                cur.push(c);
                has = true;
            }
        }
        i += 1;
    }
    if has {
        out.push(cur);
    }
    out
}

/// The variable after a `$`: its name, whether it is `${NAME[@]}`, and the characters read.
fn variable(rest: &[char]) -> (String, bool, usize) {
    // The script's own arguments and the shell's specials (`$*`, `$1`, `$?`): nothing here.
    if let Some(c) = rest
        .first()
        .filter(|c| c.is_ascii_digit() || "*@#?$!-".contains(**c))
    {
        return (c.to_string(), false, 1);
    }
    if rest.first() == Some(&'{') {
        let end = rest.iter().position(|c| *c == '}').unwrap_or(rest.len());
        let inner: String = rest[1..end].iter().collect();
        let array = inner.ends_with("[@]");
        let name = inner.trim_end_matches("[@]").to_string();
        return (name, array, (end + 1).min(rest.len()));
    }
    let n = rest
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || **c == '_')
        .count();
    (rest[..n].iter().collect(), false, n)
}

/// `if criu/criu check --feature F; then`: F.
fn feature_checked(words: &[String]) -> Option<String> {
    let at = words.iter().position(|w| w == "--feature")?;
    words.get(at + 1).cloned()
}

/// One call's options (after `zdtm.py run`), or why it cannot be run natively.
fn call(line: usize, args: &[String]) -> Result<Call, String> {
    let mut pick = None;
    let mut named = Vec::new();
    let mut c = Call {
        line,
        pick: Pick::All,
        exclude: Vec::new(),
        flavors: Vec::new(),
        mode: Mode::PLAIN,
        features: Vec::new(),
    };
    let mut atoms: Vec<String> = Vec::new();
    // An empty word is an empty variable's ("${ZDTM_OPTS[@]}" of no options).
    let mut it = args.iter().filter(|a| !a.is_empty());
    while let Some(a) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("`{a}` without its value"))
        };
        match a.as_str() {
            "-a" | "--all" => pick = Some(Pick::All),
            "-t" | "--test" => named.push(value()?),
            "-T" | "--tests" => pick = Some(Pick::Matching(value()?)),
            "-x" | "--exclude" => c.exclude.push(value()?),
            "-f" | "--flavor" => {
                for f in value()?.split(',') {
                    c.flavors
                        .push(ZdtmFlavor::parse(f).ok_or_else(|| format!("flavor `{f}`"))?);
                }
            }
            "-p" | "--parallel" | "-k" | "--keep-img" | "--report" => {
                value()?;
            }
            "--keep-going" => {}
            "--pre" => atoms.push(format!("pre={}", count(&value()?)?)),
            "--iters" | "--iter" => atoms.push(format!("iters={}", count(&value()?)?)),
            "--snaps" => atoms.push("snaps".into()),
            "--page-server" => atoms.push("page-server".into()),
            "--lazy-pages" => atoms.push("lazy".into()),
            "--remote-lazy-pages" => atoms.push("remote-lazy".into()),
            "--stop" => atoms.push("stop".into()),
            "--dedup" => atoms.push("dedup".into()),
            "--sibling" => atoms.push("sibling".into()),
            "--criu-config" => atoms.push("criu-config".into()),
            "--mntns-compat-mode" => atoms.push("mntns-compat".into()),
            "--rpc" => atoms.push("rpc".into()),
            "--norst" => atoms.push("leave-running".into()),
            other => return Err(format!("option `{other}` has no mode in the harness")),
        }
    }
    // `--snaps` turns the pre-dumps into snapshots.
    if let Some(at) = atoms.iter().position(|a| a == "snaps") {
        atoms.remove(at);
        match atoms.iter().position(|a| a.starts_with("pre=")) {
            Some(p) => atoms[p] = atoms[p].replacen("pre=", "snaps=", 1),
            None => return Err("`--snaps` without `--pre`".into()),
        }
    }
    if !atoms.is_empty() {
        c.mode = Mode::parse(&atoms.join("+")).map_err(|e| e.to_string())?;
    }
    c.pick = match (pick, named.is_empty()) {
        (Some(p), true) => p,
        (None, false) => Pick::Named(named),
        (None, true) => return Err("picks no test (no -a, -t or -T)".into()),
        (Some(_), false) => return Err("both -t and -a/-T".into()),
    };
    Ok(c)
}

/// zdtm.py's `N` or `N:SECONDS`: N.
fn count(v: &str) -> Result<u32, String> {
    v.split(':')
        .next()
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("count `{v}`"))
}

/// The scenarios of `zdtm` (every flavor of every test) the profile's calls run: each call's
/// tests in its flavors and mode, once each, the call's features required, tagged
/// `zdtm-ci`. `script` names the file in errors.
pub fn select(
    profile: &Profile,
    zdtm: &[Scenario],
    script: &Path,
) -> Result<Vec<Scenario>, ProfileError> {
    let mut out: Vec<Scenario> = Vec::new();
    let mut seen = BTreeSet::new();
    for c in &profile.calls {
        let compile = |pattern: &str| {
            regex::Regex::new(&format!("^(?:{pattern})")).map_err(|e| ProfileError::Pattern {
                path: script.to_path_buf(),
                line: c.line,
                pattern: pattern.to_string(),
                message: e.to_string(),
            })
        };
        let matching = match &c.pick {
            Pick::Matching(p) => Some(compile(p)?),
            _ => None,
        };
        let exclude = match c.exclude.is_empty() {
            true => None,
            false => Some(compile(&format!(".*({})", c.exclude.join("|")))?),
        };
        for sc in zdtm {
            let Target::Zdtm(z) = &sc.target else {
                continue;
            };
            let name = format!("zdtm/{}", z.test);
            let noauto = sc.tags.iter().any(|t| t == "noauto");
            let picked = match &c.pick {
                Pick::All => !noauto,
                Pick::Matching(_) => {
                    !noauto && matching.as_ref().is_some_and(|r| r.is_match(&name))
                }
                Pick::Named(n) => n.contains(&name),
            };
            let flavor_ok = c.flavors.is_empty() || c.flavors.contains(&z.flavor);
            let excluded = exclude.as_ref().is_some_and(|r| r.is_match(&name));
            if !picked || !flavor_ok || excluded || !sc.mode.is_plain() {
                continue;
            }
            let Some(mut s) = sc.in_mode(c.mode) else {
                continue;
            };
            if !seen.insert(s.name.clone()) {
                continue;
            }
            for f in &c.features {
                if !s.requires.criu_features.contains(f) {
                    s.requires.criu_features.push(f.clone());
                }
            }
            s.tags.push("zdtm-ci".into());
            out.push(s);
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCRIPT_TEXT: &str = r##"#!/bin/bash
set -x -e
ZDTM_OPTS="$*"
./test/zdtm.py run -a -p 2 --keep-going "${ZDTM_OPTS[@]}"
if criu/criu check --feature move_mount_set_group; then
	./test/zdtm.py run -a -p 2 --mntns-compat-mode --keep-going $ZDTM_OPTS
fi
LAZY_EXCLUDE=(-x maps04 -x cmdlinenv00)
LAZY_TESTS='.*(maps0|fork).*'
OLD_OPTS="-p 2 -T $LAZY_TESTS -x maps04"
LAZY_OPTS=(-p 2 -T "$LAZY_TESTS" "${LAZY_EXCLUDE[@]}" "${ZDTM_OPTS[@]}")
./test/zdtm.py run "${LAZY_OPTS[@]}" --lazy-pages
./test/zdtm.py run "${LAZY_OPTS[@]}" --remote-lazy-pages --tls
./test/zdtm.py run $OLD_OPTS --remote-lazy-pages
./test/zdtm.py run -t zdtm/transition/maps007 \
	--pre 2 --page-server --dedup # a comment
./test/zdtm.py run -t zdtm/static/env00 --rpc --pre 2:1 --snaps
./test/zdtm.py run -t zdtm/static/env00 -f h --join-ns
sudo --user=#65534 unshare -Ucfpm -- bash -c "./test/zdtm.py run -t zdtm/static/maps00 -f h --rootless && true"
if criu/criu check --feature f1; then
	true
else
	./test/zdtm.py run -t zdtm/static/env00 --stop
fi
if criu/criu check --feature f2; then ./test/zdtm.py run -t zdtm/static/env00 --dedup; fi
ZDTM_OPTS=1 ./test/zdtm.py run -t zdtm/static/env00 --sibling
echo "# ./test/zdtm.py run is not here"
"##;

    #[test]
    fn the_calls_of_a_ci_script() {
        let p = parse(SCRIPT_TEXT);
        let shown: Vec<String> = p
            .calls
            .iter()
            .map(|c| {
                format!(
                    "{} {:?} x{:?} f{:?} {} {:?}",
                    c.line, c.pick, c.exclude, c.flavors, c.mode, c.features
                )
            })
            .collect();
        insta::assert_snapshot!(shown.join("\n"), @r#"
        4 All x[] f[] plain []
        6 All x[] f[] mntns-compat ["move_mount_set_group"]
        12 Matching(".*(maps0|fork).*") x["maps04", "cmdlinenv00"] f[] lazy []
        14 Matching(".*(maps0|fork).*") x["maps04"] f[] remote-lazy []
        15 Named(["zdtm/transition/maps007"]) x[] f[] pre=2+page-server+dedup []
        17 Named(["zdtm/static/env00"]) x[] f[] snaps=2+rpc []
        23 Named(["zdtm/static/env00"]) x[] f[] stop []
        25 Named(["zdtm/static/env00"]) x[] f[] dedup ["f2"]
        "#);
        assert_eq!(p.left_out.len(), 4, "{:?}", p.left_out);
        assert!(p.left_out[0].contains("line 13") && p.left_out[0].contains("`--tls` has no mode"));
        assert!(p.left_out[1].contains("`--join-ns`"));
        assert!(p.left_out[2].contains("through another command"));
        assert!(p.left_out[3].contains("line 26") && p.left_out[3].contains("ZDTM_OPTS=1"));
    }

    #[test]
    fn words_as_the_shell_splits_them() {
        let mut vars = BTreeMap::new();
        vars.insert("A".to_string(), vec!["x y".to_string()]);
        vars.insert("R".to_string(), vec!["-x".into(), "m 1".into()]);
        let w = |s: &str| words(s, &vars).join("|");
        assert_eq!(
            w(r#"a "b c" 'd $A' $A "$A" "${R[@]}" e;"#),
            "a|b c|d $A|x|y|x y|-x|m 1|e"
        );
        assert_eq!(w("x=$UNSET y"), "x=|y");
        assert_eq!(strip_comment("a # b 'c'"), "a");
        assert_eq!(strip_comment("a '#b' c#d"), "a '#b' c#d");
    }

    #[test]
    fn a_bad_pattern_names_its_line() {
        let p = parse("./test/zdtm.py run -T '(' --lazy-pages\n");
        let err = select(&p, &[], Path::new("ci.sh")).unwrap_err().to_string();
        assert!(err.contains("ci.sh:1") && err.contains("`(`"), "{err}");
        assert!(read(Path::new("/nonexistent"), "nightly").is_err());
    }
}
