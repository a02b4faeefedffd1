//! criu built from a CRIU source tree for a guest userland suite, and put into that
//! userland's image in place of the package's criu.
//!
//! The build runs in a root of the same Debian suite (built once with `mmdebstrap` and
//! CRIU's build dependencies, unpacked as the caller's own files, cached), so the binary
//! links against the userland's glibc and libraries. Each build copies the tree's source
//! files into a directory of its own, binds that into the build root in a private mount
//! namespace (builds of several trees share one build root at once) and runs `make criu`
//! and `make lib` there with `chroot`, as root of a user namespace: root and a normal user
//! build the same way. The result is cached under the suite, the build root and the tree's
//! revision ([`crate::criu_tree::Revision::key`]).
//!
//! Installing writes a copy of the userland image with `debugfs`: the built criu becomes
//! `/usr/sbin/criu` (the package's is kept as `/usr/sbin/criu.debian`), its pycriu replaces
//! the package's when the tree built one, and the image's dpkg status is left as it was.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::apt::{self, AptError};
use crate::cache::{key_of, Cache, CacheError};
use crate::command::{Cmd, CommandError};
use crate::criu_tree::{CriuTree, TreeError};

/// Bumped whenever the way criu is built or installed changes.
pub const FORMAT: &str = "criu-build-v2";
/// Bumped whenever the build root changes.
pub const ROOT_FORMAT: &str = "criu-buildroot-v2";
/// Debian packages of the build root: a compiler and CRIU's build dependencies.
pub const BUILD_PACKAGES: &[&str] = &[
    "build-essential",
    "pkgconf",
    "python3",
    "python3-protobuf",
    "protobuf-compiler",
    "protobuf-c-compiler",
    "libprotobuf-c-dev",
    "libprotobuf-dev",
    "libnl-3-dev",
    "libnl-route-3-dev",
    "libnet1-dev",
    "libcap-dev",
    "libaio-dev",
    "libgnutls28-dev",
    "libnftables-dev",
    "libbsd-dev",
    "uuid-dev",
];
/// The directory of the build root a build's source is bound onto.
const BUILD_DIR: &str = "build";
/// The manifest of a build entry.
pub const MANIFEST: &str = "manifest.json";
/// The built criu inside a build entry.
pub const CRIU: &str = "criu";
/// The built pycriu package inside a build entry, when the tree built one.
pub const PYCRIU: &str = "pycriu";
/// Where the guest has the package's criu once a built one is installed.
pub const PACKAGED_CRIU: &str = "/usr/sbin/criu.debian";
/// Longest a build may take.
pub const BUILD_TIMEOUT: Duration = Duration::from_secs(3600);

/// The namespaces a build runs in, for root and a normal user alike: a user namespace
/// whose root is the caller (the build root's files, the caller's, are root's there), a
/// private mount namespace and a pid namespace (to mount proc; its processes end with the
/// build).
const NAMESPACES: &[&str] = &[
    "--map-root-user",
    "--mount",
    "--pid",
    "--fork",
    "--kill-child",
];

/// Runs in the [`NAMESPACES`]: binds `/dev`, `/proc` and the source copy into the build
/// root and runs the inner script (a file in the copy) there under `chroot` with a clean
/// environment. `$1` build root, `$2` source copy, `$3` the inner script's name, then its
/// arguments.
const CHROOT_SCRIPT: &str = r#"set -e
root=$1 src=$2 inner=$3
shift 3
mount --make-rprivate /
mount --rbind /dev "$root/dev"
mount -t proc proc "$root/proc"
mount --bind "$src" "$root/build"
exec chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/tmp LC_ALL=C.UTF-8 \
  /bin/sh -ec 'cd /build; . "./$0"' "$inner" "$@"
"#;

/// The build of criu, in the build root: `$1` jobs, `$2` `clean` to run `make mrproper` first
/// (a tarball may hold objects of another build).
const CRIU_SCRIPT: &str = r#"if [ "$2" = clean ]; then make mrproper >/dev/null 2>&1 || true; fi
echo "crtest: make -j$1 criu"
make -j"$1" criu
echo "crtest: make -j$1 lib"
if ! make -j"$1" lib; then echo "crtest: pycriu not built: make lib failed"; fi
echo "crtest: runtime libraries"
readelf -d criu/criu | sed -n "s/.*(NEEDED).*\[\(.*\)\]/\1/p" > .crtest-needed
: > .crtest-packages
while read -r so; do
  dpkg -S "*/$so" 2>/dev/null | sed -n "1s/^\([^:]*\):.*/\1/p" >> .crtest-packages || true
done < .crtest-needed
"#;

/// Runs `inner` (a shell script) with `args` in the build root `root`, the source copy `src`
/// at its `/build`, output into `log`, within `timeout`.
pub fn run_in_root(
    root: &Path,
    src: &Path,
    inner: &str,
    args: &[String],
    log: &Path,
    timeout: Duration,
) -> Result<crate::command::Ran, CriuBuildError> {
    let outer = src.join(".crtest-chroot.sh");
    fs::write(&outer, CHROOT_SCRIPT).map_err(io_err(&outer))?;
    let inner_file = src.join(".crtest-build.sh");
    fs::write(&inner_file, inner).map_err(io_err(&inner_file))?;
    Cmd::tool("unshare")
        .args(NAMESPACES)
        .arg("--")
        .arg("sh")
        .arg(&outer)
        .arg(root)
        .arg(src)
        .arg(".crtest-build.sh")
        .args(args.iter())
        .run_timed(timeout, Some(log))
        .map_err(CriuBuildError::Start)
}

/// The number of jobs for `make -j`.
pub fn jobs() -> String {
    std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .to_string()
}

/// Errors building or installing criu from a tree.
#[derive(Debug, thiserror::Error)]
pub enum CriuBuildError {
    #[error(transparent)]
    Tree(#[from] TreeError),
    #[error(transparent)]
    Sources(#[from] AptError),
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// A normal user's account cannot build the build root.
    #[error(transparent)]
    UserNs(#[from] crate::userns::UserNsError),
    /// The build root could not be made.
    #[error("cannot make the {suite} build root (for criu and zdtm builds): {source}")]
    BuildRoot {
        suite: String,
        #[source]
        source: CommandError,
    },
    /// The build ran and failed.
    #[error(
        "building criu {version} from {} for {suite} failed{}: {first_error}\n  the whole log: {}",
        tree.display(), if *timed_out { " (time limit)" } else { "" }, log.display()
    )]
    Failed {
        tree: PathBuf,
        version: String,
        suite: String,
        first_error: String,
        log: PathBuf,
        timed_out: bool,
    },
    /// The build could not start.
    #[error("cannot start the criu build: {0}")]
    Start(#[source] CommandError),
    /// Writing the built criu into the image failed.
    #[error("cannot install the built criu into {}: {source}", image.display())]
    Install {
        image: PathBuf,
        #[source]
        source: CommandError,
    },
    /// Making an image of the build failed.
    #[error("cannot make the image {}: {source}", image.display())]
    Image {
        image: PathBuf,
        #[source]
        source: crate::ext4::Ext4Error,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: {source}", path.display())]
    Manifest {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

impl CriuBuildError {
    /// Whether the input is at fault (a directory that is not a CRIU tree), not the host.
    pub fn is_bad_input(&self) -> bool {
        matches!(self, CriuBuildError::Tree(e) if e.is_bad_input())
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> CriuBuildError + '_ {
    move |source| CriuBuildError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What a build entry's `manifest.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CriuBuild {
    /// [`FORMAT`] at build time.
    pub format: String,
    /// The suite it was built for.
    pub suite: String,
    /// The version `Makefile.versions` says.
    pub version: String,
    /// `git:<commit>[+dirty]` or `tree:<hash>`.
    pub source: String,
    /// A short revision name for cell ids (`v4.1.1`, a commit prefix, a hash prefix).
    pub short: String,
    /// The tree's directory at build time.
    pub tree: PathBuf,
    /// The Debian packages of the libraries the binary needs (what `readelf -d` names,
    /// looked up with `dpkg -S` in the build root).
    pub runtime_packages: Vec<String>,
    /// Whether the tree built pycriu.
    pub pycriu: bool,
    /// Seconds the build took.
    pub build_seconds: f64,
    /// The build entry (filled in on load, not stored).
    #[serde(skip)]
    pub dir: PathBuf,
}

impl CriuBuild {
    /// The built binary.
    pub fn criu(&self) -> PathBuf {
        self.dir.join(CRIU)
    }
}

/// `mmdebstrap` in `mode` making a build root of `suite` with [`BUILD_PACKAGES`], written
/// as a tar to its stdout.
pub fn build_root_cmd(mode: &str, suite: &str, sources_file: &Path) -> Cmd {
    Cmd::tool("mmdebstrap")
        .arg(mode)
        .arg("--variant=apt")
        .arg(format!("--include={}", BUILD_PACKAGES.join(",")))
        .arg("--dpkgopt=path-exclude=/usr/share/doc/*")
        .arg("--dpkgopt=path-exclude=/usr/share/man/*")
        .arg(suite)
        .arg("-")
        .arg(sources_file)
}

/// `tar` unpacking a build root into `rootfs` as the caller's own files (a build needs no
/// other owner, and a normal user can remove what it unpacked), without device nodes.
pub fn unpack_cmd(rootfs: &Path) -> Cmd {
    Cmd::tool("tar")
        .arg("-x")
        .arg("-C")
        .arg(rootfs)
        .args(["--no-same-owner", "-p"])
        .args(crate::ext4::device_excludes())
}

/// The build root of `suite` (sources: the suite's deb822 sources), built once and cached:
/// a directory of the caller's files, by root or a normal user alike.
pub fn build_root(cache: &Cache, suite: &str, sources: &str) -> Result<PathBuf, CriuBuildError> {
    let joined = BUILD_PACKAGES.join(",");
    let key = key_of(&[
        ROOT_FORMAT.as_bytes(),
        suite.as_bytes(),
        joined.as_bytes(),
        sources.as_bytes(),
    ]);
    let dir = cache.entry("criu-buildroot", &key, |tmp| {
        crate::userns::check_subordinate_ids()?;
        let sources_file = tmp.join("sources.sources");
        fs::write(&sources_file, sources).map_err(io_err(&sources_file))?;
        let rootfs = tmp.join("rootfs");
        let failed = |source| CriuBuildError::BuildRoot {
            suite: suite.to_string(),
            source,
        };
        let mode = crate::userns::mmdebstrap_mode();
        fs::create_dir_all(&rootfs).map_err(io_err(&rootfs))?;
        let bootstrap = build_root_cmd(mode, suite, &sources_file);
        if let Err(e) = bootstrap.run_piped(&unpack_cmd(&rootfs)) {
            if !crate::userland::is_expired_release(&e) {
                return Err(failed(e));
            }
            // As for the userland: a mirror whose Release file is past its Valid-Until
            // (an unstable suite not refreshed) is used anyway, and said so.
            eprintln!(
                "warning: the mirror's Release file of `{suite}` is expired; the build root \
                 is made with Acquire::Check-Valid-Until=false"
            );
            crate::cache::remove_all(&rootfs)?;
            fs::create_dir_all(&rootfs).map_err(io_err(&rootfs))?;
            bootstrap
                .arg("--aptopt=Acquire::Check-Valid-Until \"false\"")
                .run_piped(&unpack_cmd(&rootfs))
                .map_err(failed)?;
        }
        let b = rootfs.join(BUILD_DIR);
        fs::create_dir_all(&b).map_err(io_err(&b))
    })?;
    Ok(dir.join("rootfs"))
}

/// The first line of a build log that says what went wrong: a compiler's `error:`, else a
/// linker's or make's, else the last line.
pub fn first_error(log: &str) -> String {
    let lines: Vec<&str> = log.lines().map(str::trim_end).collect();
    let pick = |pred: &dyn Fn(&str) -> bool| lines.iter().find(|l| pred(l)).map(|l| l.to_string());
    pick(&|l| l.contains(": error:") || l.contains(": fatal error:"))
        .or_else(|| pick(&|l| l.contains("undefined reference to")))
        .or_else(|| pick(&|l| l.contains("was not found or had errors")))
        .or_else(|| pick(&|l| l.contains("No package") && l.contains("found")))
        .or_else(|| pick(&|l| l.starts_with("make") && l.contains("***")))
        .or_else(|| pick(&|l| l.to_ascii_lowercase().contains("error")))
        .or_else(|| {
            lines
                .iter()
                .rev()
                .find(|l| !l.is_empty())
                .map(|l| l.to_string())
        })
        .unwrap_or_else(|| "the build printed nothing".into())
}

/// The cache key of a build of `tree` for `suite` with the build root `root_key`.
/// What a build of a tree in the build root is: its cache kind (`criu-build`), format, the
/// tree and the suite.
pub struct TreeBuild<'a> {
    pub kind: &'a str,
    pub format: &'a str,
    pub tree: &'a CriuTree,
    pub suite: &'a str,
}

impl TreeBuild<'_> {
    /// The build's cache entry, made first (unless the cache has it) by `build`, which gets
    /// the entry's temporary directory, a copy of the tree's source in it (`src/`), the
    /// build root of the suite and the log file (kept beside the cache, so a failed build
    /// keeps it). Keyed by the format, the suite, its mirror, the build root's packages and
    /// the tree's revision.
    pub fn entry(
        &self,
        cache: &Cache,
        build: impl FnOnce(&Path, &Path, &Path, &Path) -> Result<(), CriuBuildError>,
    ) -> Result<PathBuf, CriuBuildError> {
        let sources = apt::host_sources_for_suite(self.suite)?;
        let key = key_of(&[
            self.format.as_bytes(),
            self.suite.as_bytes(),
            sources.as_bytes(),
            BUILD_PACKAGES.join(",").as_bytes(),
            self.tree.revision.key().as_bytes(),
        ]);
        if let Some(dir) = cache.lookup(self.kind, &key) {
            return Ok(dir);
        }
        let root = build_root(cache, self.suite, &sources)?;
        let log = log_path(cache, &format!("{}-{key}", self.kind));
        if let Some(parent) = log.parent() {
            fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        cache.entry(self.kind, &key, |tmp| {
            let src = tmp.join("src");
            crate::criu_tree::copy_source(self.tree, &src)?;
            build(tmp, &src, &root, &log)?;
            fs::copy(&log, tmp.join("build.log")).map_err(io_err(&log))?;
            crate::cache::remove_all(&src)?;
            Ok(())
        })
    }
}

/// The non-empty lines of a file the build wrote (a package list), sorted, no duplicates;
/// none when it is missing.
pub fn read_list(path: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    v.sort();
    v.dedup();
    v
}

/// Where the log of a build goes: beside the cache entries, so a failed build keeps it.
pub fn log_path(cache: &Cache, key: &str) -> PathBuf {
    cache
        .root()
        .join("criu-build-logs")
        .join(format!("{key}.log"))
}

/// Builds (or finds in the cache) criu from `tree` for `suite`, using the host's mirror.
pub fn build(cache: &Cache, tree: &CriuTree, suite: &str) -> Result<CriuBuild, CriuBuildError> {
    let b = TreeBuild {
        kind: "criu-build",
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
    let clean = match tree.revision {
        crate::criu_tree::Revision::Files { .. } => "clean",
        crate::criu_tree::Revision::Git { .. } => "as-is",
    };
    let ran = run_in_root(
        root,
        src,
        CRIU_SCRIPT,
        &[jobs(), clean.to_string()],
        log,
        BUILD_TIMEOUT,
    )?;
    let failed = |first_error: String| CriuBuildError::Failed {
        tree: tree.root.clone(),
        version: tree.version.clone(),
        suite: suite.to_string(),
        first_error,
        log: log.to_path_buf(),
        timed_out: ran.timed_out,
    };
    let text = fs::read_to_string(log).unwrap_or_default();
    if !ran.ok() {
        return Err(failed(first_error(&text)));
    }
    let built = src.join("criu/criu");
    if !built.is_file() {
        return Err(failed("the build left no criu/criu".into()));
    }
    let out = tmp.join(CRIU);
    fs::copy(&built, &out).map_err(io_err(&built))?;
    let pycriu = ["lib/pycriu", "lib/py"]
        .iter()
        .map(|d| src.join(d))
        .find(|d| d.join("__init__.py").is_file() && d.join("images").is_dir());
    if let Some(py) = &pycriu {
        copy_python(py, &tmp.join(PYCRIU))?;
    }
    let runtime_packages = read_list(&src.join(".crtest-packages"));
    let manifest = CriuBuild {
        format: FORMAT.into(),
        suite: suite.into(),
        version: tree.version.clone(),
        source: tree.revision.source(),
        short: tree.revision.short(),
        tree: tree.root.clone(),
        runtime_packages,
        pycriu: pycriu.is_some(),
        build_seconds: (start.elapsed().as_secs_f64() * 10.0).round() / 10.0,
        dir: PathBuf::new(),
    };
    let path = tmp.join(MANIFEST);
    let json = serde_json::to_string_pretty(&manifest).expect("manifest serializes");
    fs::write(&path, json + "\n").map_err(io_err(&path))
}

/// Copies the `.py` files of a pycriu directory (and its `images/`).
fn copy_python(from: &Path, to: &Path) -> Result<(), CriuBuildError> {
    for sub in ["", "images"] {
        let (src, dst) = (from.join(sub), to.join(sub));
        fs::create_dir_all(&dst).map_err(io_err(&dst))?;
        for ent in fs::read_dir(&src).map_err(io_err(&src))? {
            let ent = ent.map_err(io_err(&src))?;
            let p = ent.path();
            if p.extension().is_some_and(|e| e == "py") && p.is_file() {
                fs::copy(&p, dst.join(ent.file_name())).map_err(io_err(&p))?;
            }
        }
    }
    Ok(())
}

/// Reads a build entry.
pub fn load(dir: &Path) -> Result<CriuBuild, CriuBuildError> {
    let path = dir.join(MANIFEST);
    let text = fs::read_to_string(&path).map_err(io_err(&path))?;
    let mut b: CriuBuild =
        serde_json::from_str(&text).map_err(|source| CriuBuildError::Manifest { path, source })?;
    b.dir = dir.to_path_buf();
    Ok(b)
}

/// `debugfs` commands that put the build into an image: the package's criu renamed to
/// [`PACKAGED_CRIU`] (when there is one), the built one written as `/usr/sbin/criu`, and
/// the pycriu files over the package's directory `pycriu_dir` (when both exist).
pub fn debugfs_script(
    build_dir: &Path,
    has_packaged: bool,
    pycriu_files: &[PathBuf],
    pycriu_dir: Option<&str>,
) -> String {
    let q = |p: &Path| format!("\"{}\"", p.display());
    let mut s = String::new();
    if has_packaged {
        s.push_str(&format!(
            "ln /usr/sbin/criu {PACKAGED_CRIU}\nunlink /usr/sbin/criu\n"
        ));
    }
    s.push_str(&format!(
        "write {} /usr/sbin/criu\n",
        q(&build_dir.join(CRIU))
    ));
    s.push_str(
        "sif /usr/sbin/criu mode 0100755\nsif /usr/sbin/criu uid 0\nsif /usr/sbin/criu gid 0\n",
    );
    if let Some(dir) = pycriu_dir {
        let mut made = std::collections::BTreeSet::new();
        for rel in pycriu_files {
            let dest = format!("{dir}/{}", rel.display());
            if let Some(parent) = Path::new(&dest).parent() {
                if made.insert(parent.to_path_buf()) {
                    s.push_str(&format!("mkdir {}\n", parent.display()));
                }
            }
            s.push_str(&format!(
                "rm {dest}\nwrite {} {dest}\n",
                q(&build_dir.join(PYCRIU).join(rel))
            ));
            s.push_str(&format!(
                "sif {dest} mode 0100644\nsif {dest} uid 0\nsif {dest} gid 0\n"
            ));
        }
    }
    s
}

/// The pycriu directory the package put into an image, from its `dpkg` file lists.
fn packaged_pycriu(image: &Path) -> Option<String> {
    for list in ["python3-pycriu.list", "criu.list", "crit.list"] {
        let out = Cmd::tool("debugfs")
            .arg("-R")
            .arg(format!("cat /var/lib/dpkg/info/{list}"))
            .arg(image)
            .read()
            .ok()?;
        if let Some(l) = out.lines().find(|l| l.ends_with("/pycriu")) {
            return Some(l.trim().to_string());
        }
    }
    None
}

/// A copy of the userland `image` with the build installed (cached under both).
pub fn install(cache: &Cache, image: &Path, build: &CriuBuild) -> Result<PathBuf, CriuBuildError> {
    let image_key = image.display().to_string();
    let key = key_of(&[
        FORMAT.as_bytes(),
        image_key.as_bytes(),
        build.dir.display().to_string().as_bytes(),
    ]);
    let dir = cache.entry("userland-criu", &key, |tmp| {
        let out = tmp.join(crate::userland::IMAGE);
        Cmd::tool("cp")
            .arg("--sparse=always")
            .arg(image)
            .arg(&out)
            .run()
            .map_err(|source| CriuBuildError::Install {
                image: image.to_path_buf(),
                source,
            })?;
        let has_packaged = Cmd::tool("debugfs")
            .arg("-R")
            .arg("stat /usr/sbin/criu")
            .arg(&out)
            .run()
            .is_ok_and(|o| !String::from_utf8_lossy(&o.stderr).contains("not found"));
        let mut files = Vec::new();
        if build.pycriu {
            for sub in ["", "images"] {
                let d = build.dir.join(PYCRIU).join(sub);
                for ent in fs::read_dir(&d).map_err(io_err(&d))?.flatten() {
                    if ent.path().is_file() {
                        files.push(Path::new(sub).join(ent.file_name()));
                    }
                }
            }
            files.sort();
        }
        let pycriu_dir = if build.pycriu {
            packaged_pycriu(&out)
        } else {
            None
        };
        let script = tmp.join("debugfs.cmds");
        let text = debugfs_script(&build.dir, has_packaged, &files, pycriu_dir.as_deref());
        fs::write(&script, text).map_err(io_err(&script))?;
        Cmd::tool("debugfs")
            .arg("-w")
            .arg("-f")
            .arg(&script)
            .arg(&out)
            .run()
            .map_err(|source| CriuBuildError::Install {
                image: out.clone(),
                source,
            })?;
        check_installed(&out, &build.criu())
    })?;
    Ok(dir.join(crate::userland::IMAGE))
}

/// Checks that the image's `/usr/sbin/criu` has the built binary's size (`debugfs -f` goes
/// on past a failed command and exits 0).
fn check_installed(image: &Path, built: &Path) -> Result<(), CriuBuildError> {
    let want = fs::metadata(built).map_err(io_err(built))?.len();
    let stat = Cmd::tool("debugfs")
        .arg("-R")
        .arg("stat /usr/sbin/criu")
        .arg(image)
        .read()
        .unwrap_or_default();
    let size = stat
        .split_whitespace()
        .skip_while(|w| *w != "Size:")
        .nth(1)
        .and_then(|n| n.parse::<u64>().ok());
    if size == Some(want) {
        return Ok(());
    }
    Err(CriuBuildError::Io {
        path: image.to_path_buf(),
        source: io::Error::other(format!(
            "/usr/sbin/criu in the image has size {size:?} after debugfs, not {want}"
        )),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_errors_of_build_logs() {
        let log = "crtest: make -j2 criu\n  CC criu/a.o\ncriu/a.c:3:1: error: expected ';' before '}' token\n\
                   make[2]: *** [criu/a.o] Error 1\nmake: *** [criu] Error 2\n";
        assert_eq!(
            first_error(log),
            "criu/a.c:3:1: error: expected ';' before '}' token"
        );
        let log = "  LINK criu/criu\n/usr/bin/ld: x.o: undefined reference to `nft_ctx_new'\n\
                   make: *** [criu] Error 2\n";
        assert!(first_error(log).contains("undefined reference"));
        let log = "Package libnl-3.0 was not found\nNo package 'libnl-3.0' found\nmake: *** [x] Error 1\n";
        assert_eq!(first_error(log), "No package 'libnl-3.0' found");
        let log = "google/protobuf/descriptor.proto: File not found.\n\
                   opts.proto:5:1: Import \"google/protobuf/descriptor.proto\" was not found or had errors.\n\
                   make[1]: *** No rule to make target 'images/opts.pb-c.c'.  Stop.\n";
        assert!(
            first_error(log).starts_with("opts.proto:5:1: Import"),
            "{log}"
        );
        assert_eq!(
            first_error("make: *** No rule to make target 'criu'.  Stop.\n"),
            "make: *** No rule to make target 'criu'.  Stop."
        );
        assert_eq!(first_error(""), "the build printed nothing");
    }

    #[test]
    fn debugfs_puts_the_built_criu_in_place_of_the_package() {
        let s = debugfs_script(
            Path::new("/c/criu-build/k"),
            true,
            &[PathBuf::from("__init__.py"), PathBuf::from("images/pb.py")],
            Some("/usr/lib/python3/dist-packages/pycriu"),
        );
        insta::assert_snapshot!(s);
        let s = debugfs_script(Path::new("/c/b"), false, &[], None);
        assert!(!s.contains("ln "), "{s}");
        assert!(s.starts_with("write \"/c/b/criu\" /usr/sbin/criu\n"), "{s}");
    }

    #[test]
    fn build_root_command() {
        let c = build_root_cmd("--mode=root", "trixie", Path::new("/s.sources")).to_string();
        assert!(c.contains("mmdebstrap --mode=root --variant=apt"), "{c}");
        assert!(c.contains("--include=build-essential,pkgconf,"), "{c}");
        assert!(c.ends_with("trixie - /s.sources"), "{c}");
        let u = unpack_cmd(Path::new("/r")).to_string();
        assert!(
            u.contains("tar -x -C /r --no-same-owner -p --exclude=./dev/console "),
            "{u}"
        );
    }
}
