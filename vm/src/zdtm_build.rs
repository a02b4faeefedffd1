//! CRIU's zdtm tests, built from a CRIU source tree for a guest userland suite.
//!
//! The build runs in the same root as [`crate::criu_build`] (CRIU's build dependencies are
//! zdtm's too): `make -C test/zdtm/lib`, then `make -k` of `static` and `transition`, so a
//! test that does not build with this suite's compiler is named, not fatal. The tests are
//! the executable files of those folders (as zdtm.py lists them) minus `zdtm.desc`'s
//! excludes; each one's start command is what `make -n NAME.pid` prints (the Makefile's
//! lists decide `--filename`, `--dirname` or a test's own arguments). The tree's `test/`
//! folder, built, is packed into an ext4 image the guest mounts; everything is cached under
//! the suite, the build root and the tree's revision.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::cache::Cache;
use crate::criu_build::{self, CriuBuildError};
use crate::criu_tree::CriuTree;

/// Bumped whenever the way zdtm is built changes.
pub const FORMAT: &str = "zdtm-build-v4";
/// The image inside a build entry.
pub const IMAGE: &str = "zdtm.ext4";
/// Its filesystem label.
pub const LABEL: &str = "crtest-zdtm";
/// The folders of tests, as zdtm names them (`zdtm/static/NAME`).
pub const SETS: &[&str] = &["static", "transition"];
/// Largest `.desc` kept.
const MAX_DESC: u64 = 64 * 1024;

/// The build inside the build root: `$1` jobs.
const ZDTM_SCRIPT: &str = r#"cd test/zdtm
echo "crtest: make -C test/zdtm/lib"
make -j"$1" -C lib
for d in static transition; do
  echo "crtest: make -k -C test/zdtm/$d"
  make -k -j"$1" -C "$d" all || echo "crtest: some tests of $d did not build"
done
for d in static transition; do
  ( cd "$d"
    for f in *; do
      case "$f" in *.*) continue ;; esac
      if [ -f "$f" ] && [ -x "$f" ]; then echo "$f"; fi
    done > "../.crtest-$d.list"
    for f in $(sed -n 's/^\([A-Za-z0-9_+-]*\)$/\1/p' "../.crtest-$d.list"); do
      echo "$f.pid"
    done > "../.crtest-$d.targets"
    make -n -k -s --no-print-directory $(cat "../.crtest-$d.targets") > "../.crtest-$d.start" 2>&1 || true
    make -s -k --no-print-directory -f Makefile -f - crtest-lists > "../.crtest-$d.lists" 2>/dev/null <<'EOF' || true
crtest-lists:
	@echo "TST $(TST) $(TST_NOFILE) $(TST_FILE) $(TST_DIR) $(TST_DIR_FILE)"
EOF
  )
done
echo "crtest: zdtm.py's helpers"
( cd .. && make umount2 zdtm_ct ) || echo "crtest: zdtm.py's helpers did not build"
echo "crtest: the tests' runtime libraries"
for d in static transition; do
  for f in $(cat ".crtest-$d.list"); do
    readelf -d "$d/$f" 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'
  done
done | sort -u > .crtest-needed
: > .crtest-packages
while read -r so; do
  dpkg -S "*/$so" 2>/dev/null | sed -n '1s/^\([^:]*\):.*/\1/p' >> .crtest-packages || true
done < .crtest-needed
find . -name '*.o' -delete
find . -name '*.d' -delete
"#;

/// One built test.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuiltTest {
    /// `static/NAME` or `transition/NAME`.
    pub name: String,
    /// The start command `make -n NAME.pid` prints, to run in the test's folder; empty when
    /// the Makefile has no `NAME.pid` rule.
    pub command: Vec<String>,
    /// The `.desc` text, when the test has one.
    pub desc: Option<String>,
    /// A `NAME.checkskip` script is beside it.
    pub checkskip: bool,
    /// A `NAME.hook` script is beside it.
    pub hook: bool,
}

/// What a zdtm build entry's `manifest.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ZdtmBuild {
    pub format: String,
    pub suite: String,
    /// The tree's version (`Makefile.versions`).
    pub version: String,
    /// `git:<commit>[+dirty]` or `tree:<hash>`.
    pub source: String,
    pub tree: PathBuf,
    pub tests: Vec<BuiltTest>,
    /// Tests of the Makefile's lists whose binary the build did not make (`static/NAME`).
    pub not_built: Vec<String>,
    /// The first error of each test that did not build, by test.
    pub build_errors: BTreeMap<String, String>,
    /// Debian packages of the libraries the tests need (`readelf -d`, `dpkg -S`).
    #[serde(default)]
    pub runtime_packages: Vec<String>,
    pub build_seconds: f64,
    #[serde(skip)]
    pub dir: PathBuf,
}

impl ZdtmBuild {
    /// The ext4 image of the built `test/` folder.
    pub fn image(&self) -> PathBuf {
        self.dir.join(IMAGE)
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> CriuBuildError + '_ {
    move |source| CriuBuildError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Splits a command line as `sh` would for the plain words make prints (quotes removed,
/// no expansion).
pub fn split_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut have = false;
    let mut quote: Option<char> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, c) if c.is_whitespace() => {
                if have {
                    words.push(std::mem::take(&mut cur));
                    have = false;
                }
            }
            (None, '\'' | '"') => {
                quote = Some(c);
                have = true;
            }
            (Some(q), c) if c == q => quote = None,
            (q, '\\') if q != Some('\'') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                    have = true;
                }
            }
            (_, c) => {
                cur.push(c);
                have = true;
            }
        }
    }
    if have {
        words.push(cur);
    }
    words
}

/// The start command of each test in `make -n`'s output: the line whose word is
/// `--pidfile=NAME.pid` (the Makefile's `NAME.pid` rule).
pub fn start_commands(make_n: &str) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for line in make_n.lines() {
        let words = split_words(line);
        let name = words.iter().find_map(|w| {
            w.strip_prefix("--pidfile=")
                .and_then(|p| p.strip_suffix(".pid"))
                .map(String::from)
        });
        if let Some(name) = name {
            out.entry(name).or_insert(words);
        }
    }
    out
}

/// The names of the Makefile's test lists (`TST ...` line of the helper rule).
pub fn listed(lists: &str) -> Vec<String> {
    let mut v: Vec<String> = lists
        .lines()
        .filter_map(|l| l.strip_prefix("TST "))
        .flat_map(|l| l.split_whitespace().map(String::from))
        .collect();
    v.sort();
    v.dedup();
    v
}

/// The `exclude` list of a `zdtm.desc` text (paths relative to `zdtm/`).
pub fn excludes(zdtm_desc: &str) -> Vec<String> {
    // zdtm.desc is a Python dict literal: { 'dir': 'zdtm/', 'exclude': [ 'static/x', ... ] }
    let Some(i) = zdtm_desc
        .find("'exclude'")
        .or_else(|| zdtm_desc.find("\"exclude\""))
    else {
        return vec![];
    };
    let rest = &zdtm_desc[i..];
    let (Some(a), Some(b)) = (rest.find('['), rest.find(']')) else {
        return vec![];
    };
    if b < a {
        return vec![];
    }
    rest[a + 1..b]
        .split(',')
        .map(|s| s.trim().trim_matches(|c| c == '\'' || c == '"').to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// The first compiler error about `name` in a build log, if any.
fn error_of(log: &str, set: &str, name: &str) -> Option<String> {
    let file = format!("{name}.c:");
    log.lines()
        .find(|l| l.contains(&file) && l.contains("error"))
        .or_else(|| {
            log.lines()
                .find(|l| l.contains("[Makefile") && l.contains(&format!("{name}]")))
        })
        .map(|l| format!("{set}: {}", l.trim()))
}

/// Reads a build entry.
pub fn load(dir: &Path) -> Result<ZdtmBuild, CriuBuildError> {
    let path = dir.join(criu_build::MANIFEST);
    let text = fs::read_to_string(&path).map_err(io_err(&path))?;
    let mut b: ZdtmBuild =
        serde_json::from_str(&text).map_err(|source| CriuBuildError::Manifest { path, source })?;
    b.dir = dir.to_path_buf();
    Ok(b)
}

/// Builds (or finds in the cache) the zdtm tests of `tree` for `suite`.
pub fn build(cache: &Cache, tree: &CriuTree, suite: &str) -> Result<ZdtmBuild, CriuBuildError> {
    if !tree.root.join("test/zdtm/static/Makefile").is_file() {
        return Err(CriuBuildError::Tree(
            crate::criu_tree::TreeError::NotATree {
                path: tree.root.clone(),
                missing: vec!["test/zdtm/static/Makefile (zdtm's tests)".into()],
            },
        ));
    }
    let b = criu_build::TreeBuild {
        kind: "zdtm-build",
        format: FORMAT,
        tree,
        suite,
    };
    let dir = b.entry(cache, |tmp, src, root, log| {
        build_into(tmp, src, tree, suite, root, log)
    })?;
    load(&dir)
}

fn build_into(
    tmp: &Path,
    src: &Path,
    tree: &CriuTree,
    suite: &str,
    root: &Path,
    log: &Path,
) -> Result<(), CriuBuildError> {
    let start = Instant::now();
    let ran = criu_build::run_in_root(
        root,
        src,
        ZDTM_SCRIPT,
        &[criu_build::jobs()],
        log,
        criu_build::BUILD_TIMEOUT,
    )?;
    let text = fs::read_to_string(log).unwrap_or_default();
    if !ran.ok() {
        return Err(CriuBuildError::Failed {
            tree: tree.root.clone(),
            version: tree.version.clone(),
            suite: suite.to_string(),
            first_error: criu_build::first_error(&text),
            log: log.to_path_buf(),
            timed_out: ran.timed_out,
        });
    }
    let zdtm = src.join("test/zdtm");
    let excluded = excludes(&fs::read_to_string(src.join("test/zdtm.desc")).unwrap_or_default());
    let mut tests = Vec::new();
    let mut not_built = Vec::new();
    let mut build_errors = BTreeMap::new();
    for set in SETS {
        let read = |f: &str| fs::read_to_string(zdtm.join(format!(".crtest-{set}.{f}")));
        let files = read("list").unwrap_or_default();
        let starts = start_commands(&read("start").unwrap_or_default());
        for name in files.lines().map(str::trim).filter(|n| !n.is_empty()) {
            if excluded.iter().any(|e| e == &format!("{set}/{name}")) {
                continue;
            }
            let base = zdtm.join(set).join(name);
            let with = |ext: &str| base.with_file_name(format!("{name}.{ext}"));
            let desc_path = with("desc");
            let desc = match fs::metadata(&desc_path) {
                Ok(m) if m.len() <= MAX_DESC => fs::read_to_string(&desc_path).ok(),
                _ => None,
            };
            tests.push(BuiltTest {
                name: format!("{set}/{name}"),
                command: starts.get(name).cloned().unwrap_or_default(),
                desc,
                checkskip: with("checkskip").is_file(),
                hook: with("hook").is_file(),
            });
        }
        for name in listed(&read("lists").unwrap_or_default()) {
            if !files.lines().any(|f| f.trim() == name) {
                let full = format!("{set}/{name}");
                if let Some(e) = error_of(&text, set, &name) {
                    build_errors.insert(full.clone(), e);
                }
                not_built.push(full);
            }
        }
    }
    tests.sort_by(|a, b| a.name.cmp(&b.name));
    let runtime_packages = criu_build::read_list(&zdtm.join(".crtest-packages"));
    // The image: the built test/ folder (zdtm.py and its python beside the tests).
    let test_dir = src.join("test");
    let image = tmp.join(IMAGE);
    crate::ext4::from_dir(&test_dir, &image, LABEL).map_err(|source| CriuBuildError::Image {
        image: image.clone(),
        source,
    })?;
    let manifest = ZdtmBuild {
        format: FORMAT.into(),
        suite: suite.into(),
        version: tree.version.clone(),
        source: tree.revision.source(),
        tree: tree.root.clone(),
        tests,
        not_built,
        build_errors,
        runtime_packages,
        build_seconds: (start.elapsed().as_secs_f64() * 10.0).round() / 10.0,
        dir: PathBuf::new(),
    };
    let path = tmp.join(criu_build::MANIFEST);
    let json = serde_json::to_string_pretty(&manifest).expect("manifest serializes");
    fs::write(&path, json + "\n").map_err(io_err(&path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_commands_of_make_n() {
        let out = "./busyloop00 --pidfile=busyloop00.pid --outfile=busyloop00.out\n\
                   ./fifo --pidfile=fifo.pid --outfile=fifo.out --filename=fifo.test\n\
                   make: *** No rule to make target 'helper.pid'.\n\
                   ./cmdlinenv00 --pidfile=cmdlinenv00.pid --outfile=cmdlinenv00.out --arg1='a b'\n";
        let m = start_commands(out);
        assert_eq!(m.len(), 3);
        assert_eq!(
            m["fifo"],
            [
                "./fifo",
                "--pidfile=fifo.pid",
                "--outfile=fifo.out",
                "--filename=fifo.test"
            ]
        );
        assert_eq!(m["cmdlinenv00"].last().unwrap(), "--arg1=a b");
        assert!(!m.contains_key("helper"));
    }

    #[test]
    fn words_lists_and_excludes() {
        assert_eq!(
            split_words(r#"a "b c" 'd\e' f\ g"#),
            ["a", "b c", "d\\e", "f g"]
        );
        assert_eq!(split_words("  "), Vec::<String>::new());
        assert_eq!(split_words("''"), [""]);
        assert_eq!(listed("TST a b\nnoise\nTST b c\n"), ["a", "b", "c"]);
        let d = "{ 'dir': 'zdtm/', 'exclude': [ 'static/route_rules', 'static/criu-rtc.so' ] }";
        assert_eq!(excludes(d), ["static/route_rules", "static/criu-rtc.so"]);
        assert_eq!(excludes("{}"), Vec::<String>::new());
        assert_eq!(excludes("{'exclude': ] ["), Vec::<String>::new());
    }
}
