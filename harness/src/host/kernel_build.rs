//! `crtest kernel build --source DIR`: a kernel for the guest, built from a source tree (a
//! git checkout, or the Debian `linux-source-X` tarball unpacked), with the required options
//! of `kernel-config/criu.config` and the guest's own (`kernel-config/guest.config`) merged
//! into a base config (`make defconfig`, or `--base-config FILE`).
//!
//! Stages: base config -> merge the fragments (`ym` options built in) -> `make olddefconfig`
//! -> check that every required option survived (a dropped one is named with its reason and
//! the `depends on` lines of its Kconfig entry) -> `make bzImage modules` (under `nice -n 19`,
//! progress every few seconds, full output in `build.log`) -> `modules_install` + `depmod`
//! into a cache entry keyed by the source revision (`git rev-parse HEAD`, or a hash of the
//! Makefile version and the tree listing) and the config inputs. The build happens out of
//! tree (`O=`), in a work directory kept for incremental rebuilds.
//!
//! The entry holds `bzImage`, `config`, `lib/modules/<release>/` and `build.json`; give its
//! path to `--kernel`.

use crate::diagnose::kernel_config::{self, Requirement};
use crtest_vm::cache::{key_of, Cache};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Bumped when the layout of a built kernel entry changes.
const FORMAT: &str = "kernel-build-v1";
/// The guest's build-time fragment.
pub const GUEST_FRAGMENT: &str = include_str!("../../../kernel-config/guest.config");
/// How often the build prints its progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(15);

/// What `crtest kernel build` was asked for.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// The kernel source: a git checkout, an unpacked tarball, or a `.tar.xz`/`.tar.gz`.
    pub source: PathBuf,
    /// Start from this .config instead of `make defconfig`.
    pub base_config: Option<PathBuf>,
    /// Stop after configuring and checking the options (no compiling).
    pub config_only: bool,
    /// Build even when required options did not survive olddefconfig.
    pub allow_missing: bool,
    /// Parallel make jobs (default: the number of cores).
    pub jobs: Option<usize>,
    /// Build in this directory (`O=`), kept from one revision of the tree to the next, so
    /// that a bisect's step rebuilds only what changed (default: one per source revision).
    pub work: Option<PathBuf>,
    /// Compile through `ccache` when the host has it (a bisect going back to a revision it
    /// built already compiles nothing).
    pub ccache: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    HostDeps(#[from] crtest_vm::hostdeps::HostDepsError),
    #[error(transparent)]
    Cache(#[from] crtest_vm::cache::CacheError),
    #[error("{}: not a kernel source tree ({what})", path.display())]
    NotASource { path: PathBuf, what: String },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start `{command}`: {source}")]
    Start {
        command: String,
        source: std::io::Error,
    },
    #[error("`{command}` failed with status {status}; last lines of {}:\n{tail}", log.display())]
    Failed {
        command: String,
        status: i32,
        log: PathBuf,
        tail: String,
    },
    #[error(
        "{} required option(s) did not survive olddefconfig (rerun with --allow-missing to \
         build anyway):\n{}",
        .0.len(),
        .0.join("\n")
    )]
    Missing(Vec<String>),
}

impl BuildError {
    /// Whether the input is at fault (not a source tree, options lost), not the host.
    pub fn is_bad_input(&self) -> bool {
        matches!(self, BuildError::NotASource { .. } | BuildError::Missing(_))
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> BuildError + '_ {
    move |source| BuildError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What `build.json` of an entry says.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BuildInfo {
    pub format: String,
    pub release: String,
    pub source: String,
    pub revision: String,
    pub base_config: String,
    /// Required options the built config lacks (only with --allow-missing).
    pub missing_options: Vec<String>,
    /// Seconds per stage.
    pub stages: Vec<(String, f64)>,
}

/// `VERSION.PATCHLEVEL.SUBLEVEL EXTRAVERSION` of a top-level kernel Makefile.
pub fn makefile_version(text: &str) -> Option<String> {
    let get = |key: &str| {
        text.lines().take(20).find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == key).then(|| v.trim().to_string())
        })
    };
    let (v, p) = (get("VERSION")?, get("PATCHLEVEL")?);
    let s = get("SUBLEVEL").unwrap_or_default();
    let e = get("EXTRAVERSION").unwrap_or_default();
    Some(format!("{v}.{p}.{s}{e}"))
}

/// The fragments' requirements (criu.config then guest.config; a later line for the same
/// option wins).
pub fn fragments() -> Vec<Requirement> {
    let mut all = kernel_config::required();
    for r in kernel_config::parse_fragment(GUEST_FRAGMENT) {
        all.retain(|x| x.option != r.option);
        all.push(r);
    }
    all
}

/// The value a fragment option gets in the built config: `ym` is built in.
fn build_value(want: &str) -> &str {
    match want {
        "ym" | "y|m" => "y",
        w => w,
    }
}

/// Merges `reqs` into a .config text: each option's line (`CONFIG_X=...` or
/// `# CONFIG_X is not set`) replaced, missing ones appended.
pub fn merge_fragment(config: &str, reqs: &[Requirement]) -> String {
    let mut pending: BTreeMap<&str, &Requirement> =
        reqs.iter().map(|r| (r.option.as_str(), r)).collect();
    let mut out = String::with_capacity(config.len() + 4096);
    for line in config.lines() {
        let opt = line
            .strip_prefix("# ")
            .and_then(|l| l.strip_suffix(" is not set"))
            .or_else(|| line.split_once('=').map(|(k, _)| k))
            .filter(|o| o.starts_with("CONFIG_"));
        match opt.and_then(|o| pending.remove(o)) {
            Some(r) => out.push_str(&format!("{}={}\n", r.option, build_value(&r.want))),
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    if !pending.is_empty() {
        out.push_str("# crtest: kernel-config/ fragments\n");
        for r in reqs
            .iter()
            .filter(|r| pending.contains_key(r.option.as_str()))
        {
            out.push_str(&format!("{}={}\n", r.option, build_value(&r.want)));
        }
    }
    out
}

/// The `depends on` (and `select`ed-by-nothing) lines of `config OPTION` in a tree's Kconfig
/// files, to say why olddefconfig dropped it.
pub fn kconfig_depends(tree: &Path, option: &str) -> Vec<String> {
    let name = option.trim_start_matches("CONFIG_");
    let mut files = Vec::new();
    collect_kconfigs(tree, &mut files, 0);
    let mut out = Vec::new();
    for f in files {
        let Ok(text) = std::fs::read_to_string(&f) else {
            continue;
        };
        let mut inside = false;
        for line in text.lines() {
            let t = line.trim();
            if let Some(rest) = t
                .strip_prefix("config ")
                .or_else(|| t.strip_prefix("menuconfig "))
            {
                inside = rest.trim() == name;
                continue;
            }
            if inside {
                if t.starts_with("depends on") {
                    let rel = f.strip_prefix(tree).unwrap_or(&f);
                    out.push(format!("{t}  ({})", rel.display()));
                } else if t.starts_with("endmenu")
                    || t.starts_with("endif")
                    || t.starts_with("menu ")
                {
                    inside = false;
                }
            }
        }
    }
    out
}

fn collect_kconfigs(dir: &Path, out: &mut Vec<PathBuf>, depth: usize) {
    if depth > 8 {
        return;
    }
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() && !name.starts_with('.') && name != "Documentation" {
            collect_kconfigs(&p, out, depth + 1);
        } else if ft.is_file() && name.starts_with("Kconfig") {
            out.push(p);
        }
    }
}

/// The fragment options the final config does not satisfy, each with its reason and, from
/// the tree's Kconfig, what it depends on.
pub fn check_config(config: &str, reqs: &[Requirement], tree: Option<&Path>) -> Vec<String> {
    let map = kernel_config::parse_config(config);
    kernel_config::missing(&map, reqs)
        .into_iter()
        .map(|line| {
            let opt = line.split('=').next().unwrap_or_default().to_string();
            let deps = tree.map(|t| kconfig_depends(t, &opt)).unwrap_or_default();
            if deps.is_empty() {
                format!("  {line}")
            } else {
                format!("  {line}\n      Kconfig: {}", deps.join("; "))
            }
        })
        .collect()
}

/// Hash of a tree's listing (relative paths and sizes, sorted; `.git` and build output
/// skipped) for a source without git.
pub fn tree_listing_hash(root: &Path) -> std::io::Result<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) -> std::io::Result<()> {
        for e in std::fs::read_dir(dir)? {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            if name == ".git" {
                continue;
            }
            let ft = e.file_type()?;
            let p = e.path();
            if ft.is_dir() {
                walk(root, &p, out)?;
            } else {
                let size = if ft.is_file() { e.metadata()?.len() } else { 0 };
                let rel = p.strip_prefix(root).unwrap_or(&p).display().to_string();
                out.push(format!("{rel} {size}"));
            }
        }
        Ok(())
    }
    let mut lines = Vec::new();
    walk(root, root, &mut lines)?;
    lines.sort();
    let text = lines.join("\n");
    Ok(key_of(&[text.as_bytes()]))
}

/// The source's revision: `git:<sha>[+dirty:<hash of the diff>]`, or
/// `tree:<version>:<hash of the listing>`.
pub fn source_revision(src: &Path, version: &str) -> Result<String, BuildError> {
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(src)
            .args(args)
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| o.stdout)
    };
    let is_top = git(&["rev-parse", "--show-toplevel"])
        .and_then(|o| String::from_utf8(o).ok())
        .and_then(|t| std::fs::canonicalize(t.trim()).ok())
        .zip(std::fs::canonicalize(src).ok())
        .is_some_and(|(a, b)| a == b);
    if is_top {
        if let Some(head) = git(&["rev-parse", "HEAD"]) {
            let head = String::from_utf8_lossy(&head).trim().to_string();
            let diff = git(&["diff", "HEAD"]).unwrap_or_default();
            return Ok(if diff.is_empty() {
                format!("git:{head}")
            } else {
                format!("git:{head}+dirty:{}", key_of(&[&diff]))
            });
        }
    }
    let hash = tree_listing_hash(src).map_err(io_err(src))?;
    Ok(format!("tree:{version}:{hash}"))
}

/// The cache key of a build: its inputs.
pub fn build_key(revision: &str, base: &str, fragments: &str, compiler: &str) -> String {
    key_of(&[
        FORMAT.as_bytes(),
        revision.as_bytes(),
        base.as_bytes(),
        fragments.as_bytes(),
        compiler.as_bytes(),
    ])
}

/// `make -C SRC O=OUT [-jN] TARGETS...`.
pub fn make_argv(src: &Path, out: &Path, jobs: Option<usize>, targets: &[&str]) -> Vec<String> {
    let mut v = vec![
        "make".to_string(),
        "-C".into(),
        src.display().to_string(),
        format!("O={}", out.display()),
    ];
    if let Some(j) = jobs {
        v.push(format!("-j{j}"));
    }
    v.extend(targets.iter().map(|t| t.to_string()));
    v
}

/// The object a kbuild output line says is being made (`  CC      fs/ext4/inode.o`).
pub fn kbuild_step(line: &str) -> Option<(&str, &str)> {
    let t = line.trim_start();
    let (verb, rest) = t.split_once(char::is_whitespace)?;
    let known = [
        "CC", "AS", "LD", "AR", "HOSTCC", "HOSTLD", "GEN", "CC [M]", "LD [M]", "OBJCOPY", "BTF",
    ];
    if verb.chars().all(|c| c.is_ascii_uppercase()) && known.iter().any(|k| k.starts_with(verb)) {
        Some((verb, rest.trim_start().trim_start_matches("[M]").trim()))
    } else {
        None
    }
}

/// Runs a command under `nice -n 19`, its output appended to `log`; prints progress every
/// [`PROGRESS_EVERY`] (files compiled so far, the last one). Fails with the log's tail.
fn run_logged(argv: &[String], log: &Path, what: &str) -> Result<(), BuildError> {
    let command = crtest_vm::command::command_line("nice", &{
        let mut a = vec!["-n".to_string(), "19".into()];
        a.extend(argv.iter().cloned());
        a
    });
    eprintln!("+ {command}");
    let mut logf = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(io_err(log))?;
    let _ = writeln!(logf, "+ {command}");
    let mut child = Command::new("nice")
        .args(["-n", "19"])
        .args(argv)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| BuildError::Start {
            command: command.clone(),
            source,
        })?;
    // stderr goes to the log through its own thread; stdout is read here for progress.
    let stderr = child.stderr.take();
    let log2 = log.to_path_buf();
    let err_thread = std::thread::spawn(move || {
        if let (Some(e), Ok(mut f)) = (stderr, std::fs::OpenOptions::new().append(true).open(&log2))
        {
            for line in BufReader::new(e).lines().map_while(Result::ok) {
                let _ = writeln!(f, "{line}");
            }
        }
    });
    let start = Instant::now();
    let mut last_report = Instant::now();
    let mut compiled = 0usize;
    let mut last = String::new();
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = writeln!(logf, "{line}");
            if let Some((verb, obj)) = kbuild_step(&line) {
                if verb == "CC" {
                    compiled += 1;
                }
                last = format!("{verb} {obj}");
            }
            if last_report.elapsed() >= PROGRESS_EVERY {
                last_report = Instant::now();
                eprintln!(
                    "[{:6.0} s] {what}: {compiled} files compiled (now: {last})",
                    start.elapsed().as_secs_f64()
                );
            }
        }
    }
    let status = child.wait().map_err(|source| BuildError::Start {
        command: command.clone(),
        source,
    })?;
    let _ = err_thread.join();
    if !status.success() {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        return Err(BuildError::Failed {
            command,
            status: status.code().unwrap_or(-1),
            log: log.to_path_buf(),
            tail: crtest_vm::command::tail_lines(&text, 30).join("\n"),
        });
    }
    eprintln!(
        "[{:6.0} s] {what}: done ({compiled} files compiled)",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// A tarball given as --source, unpacked once into the cache; a directory as it is. A tree
/// holding a single top directory (as linux-source's tarball unpacks) is entered.
fn source_dir(cache: &Cache, given: &Path) -> Result<PathBuf, BuildError> {
    let dir = if given.is_file() {
        let meta = std::fs::metadata(given).map_err(io_err(given))?;
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        let id = format!("{} {} {mtime}", given.display(), meta.len());
        let key = key_of(&[b"kernel-source-v1", id.as_bytes()]);
        let given = given.to_path_buf();
        cache.entry("kernel-source", &key, |tmp: &Path| {
            eprintln!("unpacking {} ...", given.display());
            let argv = vec![
                "tar".to_string(),
                "-xf".into(),
                given.display().to_string(),
                "-C".into(),
                tmp.display().to_string(),
            ];
            run_logged(&argv, &tmp.join("unpack.log"), "unpack")?;
            std::fs::remove_file(tmp.join("unpack.log")).map_err(io_err(tmp))
        })?
    } else {
        given.to_path_buf()
    };
    if dir.join("Makefile").is_file() {
        return Ok(dir);
    }
    let subdirs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|_| BuildError::NotASource {
            path: given.to_path_buf(),
            what: "cannot read it".into(),
        })?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("Makefile").is_file())
        .collect();
    match subdirs.as_slice() {
        [one] => Ok(one.clone()),
        _ => Err(BuildError::NotASource {
            path: given.to_path_buf(),
            what: "no top-level Makefile".into(),
        }),
    }
}

/// The first line of `gcc --version` (part of the build's cache key).
fn gcc_version() -> String {
    Command::new("gcc")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().next().map(str::to_string))
        .unwrap_or_default()
}

/// What the built tree in `work` says its release is (`make kernelrelease`).
fn kernel_release(src: &Path, work: &Path) -> Option<String> {
    Command::new("make")
        .args(["-s", "-C"])
        .arg(src)
        .arg(format!("O={}", work.display()))
        .arg("kernelrelease")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// Runs the build; returns the entry directory.
pub fn build(args: &BuildOptions) -> Result<PathBuf, BuildError> {
    let mut stages: Vec<(String, f64)> = Vec::new();
    fn stage(stages: &mut Vec<(String, f64)>, name: &str, t: Instant) {
        let s = t.elapsed().as_secs_f64();
        eprintln!("stage {name}: {s:.1} s");
        stages.push((name.to_string(), (s * 10.0).round() / 10.0));
    }
    let t = Instant::now();
    crtest_vm::hostdeps::ensure(crtest_vm::hostdeps::KERNEL_BUILD_TOOLS)?;
    let cache = Cache::from_env()?;
    let src = source_dir(&cache, &args.source)?;
    let src = std::fs::canonicalize(&src).map_err(io_err(&src))?;
    let makefile = std::fs::read_to_string(src.join("Makefile")).map_err(io_err(&src))?;
    let version = makefile_version(&makefile).ok_or_else(|| BuildError::NotASource {
        path: src.clone(),
        what: "the Makefile has no VERSION/PATCHLEVEL".into(),
    })?;
    if !src.join("arch/x86").is_dir() {
        return Err(BuildError::NotASource {
            path: src.clone(),
            what: "no arch/x86".into(),
        });
    }
    let revision = source_revision(&src, &version)?;
    let (base_name, base_text) = match &args.base_config {
        Some(p) => (
            p.display().to_string(),
            std::fs::read_to_string(p).map_err(io_err(p))?,
        ),
        None => ("make defconfig".to_string(), String::new()),
    };
    let compiler = gcc_version();
    let reqs = fragments();
    let frag_text = format!(
        "{}\n{GUEST_FRAGMENT}",
        include_str!("../../../kernel-config/criu.config")
    );
    let key = build_key(&revision, &base_text, &frag_text, &compiler);
    eprintln!(
        "source {} (Linux {version}, {revision}), base: {base_name}",
        src.display()
    );
    stage(&mut stages, "source", t);
    if let (false, Some(hit)) = (args.config_only, cache.lookup("kernel-build", &key)) {
        eprintln!("cached build: {}", hit.display());
        return Ok(hit);
    }

    let work = args.work.clone().unwrap_or_else(|| {
        cache.root().join("kernel-build-work").join(key_of(&[
            src.as_os_str().as_encoded_bytes(),
            revision.as_bytes(),
        ]))
    });
    std::fs::create_dir_all(&work).map_err(io_err(&work))?;
    let log = work.join("build.log");
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));

    let t = Instant::now();
    let config_path = work.join(".config");
    match &args.base_config {
        Some(_) => std::fs::write(&config_path, &base_text).map_err(io_err(&config_path))?,
        None => run_logged(
            &make_argv(&src, &work, None, &["defconfig"]),
            &log,
            "defconfig",
        )?,
    }
    let base = std::fs::read_to_string(&config_path).map_err(io_err(&config_path))?;
    std::fs::write(&config_path, merge_fragment(&base, &reqs)).map_err(io_err(&config_path))?;
    run_logged(
        &make_argv(&src, &work, None, &["olddefconfig"]),
        &log,
        "olddefconfig",
    )?;
    let config = std::fs::read_to_string(&config_path).map_err(io_err(&config_path))?;
    let missing = check_config(&config, &reqs, Some(&src));
    stage(&mut stages, "config", t);
    if missing.is_empty() {
        eprintln!(
            "config: all {} required options present ({})",
            reqs.len(),
            config_path.display()
        );
    } else if !args.allow_missing {
        return Err(BuildError::Missing(missing));
    } else {
        eprintln!("config: building without:\n{}", missing.join("\n"));
    }
    if args.config_only {
        return Ok(config_path);
    }

    let t = Instant::now();
    let jobs_s = jobs.to_string();
    let mut argv = make_argv(&src, &work, Some(jobs), &["bzImage", "modules"]);
    if args.ccache && crtest_vm::hostdeps::present("ccache") {
        argv.push("CC=ccache gcc".into());
    }
    run_logged(&argv, &log, &format!("bzImage modules (-j{jobs_s})"))?;
    stage(&mut stages, "compile", t);
    let release = kernel_release(&src, &work).unwrap_or_else(|| version.clone());
    let t = Instant::now();
    let entry = cache.entry("kernel-build", &key, |tmp: &Path| {
        let bz = work.join("arch/x86/boot/bzImage");
        std::fs::copy(&bz, tmp.join("bzImage")).map_err(io_err(&bz))?;
        std::fs::copy(&config_path, tmp.join("config")).map_err(io_err(&config_path))?;
        let mut argv = make_argv(&src, &work, None, &["modules_install"]);
        argv.push(format!("INSTALL_MOD_PATH={}", tmp.display()));
        argv.push("INSTALL_MOD_STRIP=1".into());
        run_logged(&argv, &log, "modules_install")?;
        let mods = tmp.join("lib/modules").join(&release);
        for link in ["build", "source"] {
            let _ = std::fs::remove_file(mods.join(link));
        }
        std::fs::create_dir_all(&mods).map_err(io_err(&mods))?;
        let depmod = vec![
            "depmod".to_string(),
            "-b".into(),
            tmp.display().to_string(),
            release.clone(),
        ];
        run_logged(&depmod, &log, "depmod")?;
        let info = BuildInfo {
            format: FORMAT.into(),
            release: release.clone(),
            source: src.display().to_string(),
            revision: revision.clone(),
            base_config: base_name.clone(),
            missing_options: missing.clone(),
            stages: stages.clone(),
        };
        let p = tmp.join("build.json");
        std::fs::write(
            &p,
            serde_json::to_string_pretty(&info).expect("build info serialises") + "\n",
        )
        .map_err(io_err(&p))
    })?;
    stage(&mut stages, "install", t);
    Ok(entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn makefile_versions() {
        let mk = "# SPDX\nVERSION = 6\nPATCHLEVEL = 1\nSUBLEVEL = 192\nEXTRAVERSION =\nNAME = x\n";
        assert_eq!(makefile_version(mk).as_deref(), Some("6.1.192"));
        let rc = "VERSION = 6\nPATCHLEVEL = 14\nSUBLEVEL = 0\nEXTRAVERSION = -rc3\n";
        assert_eq!(makefile_version(rc).as_deref(), Some("6.14.0-rc3"));
        assert_eq!(makefile_version("all:\n"), None);
    }

    #[test]
    fn fragments_merge_into_a_config() {
        let reqs = kernel_config::parse_fragment(
            "CONFIG_A=y # a\nCONFIG_B=ym # b\nCONFIG_C=m # c\nCONFIG_D=y # d\n",
        );
        let base = "CONFIG_A=m\n# CONFIG_B is not set\nCONFIG_X=y\n# comment\n";
        let merged = merge_fragment(base, &reqs);
        assert_eq!(
            merged,
            "CONFIG_A=y\nCONFIG_B=y\nCONFIG_X=y\n# comment\n\
             # crtest: kernel-config/ fragments\nCONFIG_C=m\nCONFIG_D=y\n"
        );
        // The same check olddefconfig's result goes through.
        let after = "CONFIG_A=y\nCONFIG_B=y\nCONFIG_C=m\n# CONFIG_D is not set\n";
        assert_eq!(
            check_config(after, &reqs, None),
            ["  CONFIG_D=n (want y): d"]
        );
    }

    #[test]
    fn shipped_fragments_cover_the_guest() {
        let f = fragments();
        for opt in [
            "CONFIG_PVH",
            "CONFIG_VIRTIO_PCI",
            "CONFIG_VIRTIO_BLK",
            "CONFIG_EXT4_FS",
            "CONFIG_9P_FS",
            "CONFIG_NET_9P_VIRTIO",
            "CONFIG_SERIAL_8250",
            "CONFIG_SERIAL_8250_CONSOLE",
            "CONFIG_CHECKPOINT_RESTORE",
        ] {
            assert!(f.iter().any(|r| r.option == opt), "{opt} missing");
        }
        assert!(f.iter().all(|r| !r.why.is_empty()), "every option says why");
        let opts: Vec<&str> = f.iter().map(|r| r.option.as_str()).collect();
        let mut dedup = opts.clone();
        dedup.sort();
        dedup.dedup();
        assert_eq!(opts.len(), dedup.len());
    }

    #[test]
    fn dropped_options_name_their_dependencies() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("net/9p");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("Kconfig"),
            "menuconfig NET_9P\n\ttristate \"9P\"\n\tdepends on NET\n\nif NET_9P\n\
             config NET_9P_VIRTIO\n\tdepends on VIRTIO\n\thelp\n\t  x\nendif\n",
        )
        .unwrap();
        assert_eq!(
            kconfig_depends(t.path(), "CONFIG_NET_9P_VIRTIO"),
            ["depends on VIRTIO  (net/9p/Kconfig)"]
        );
        let reqs = kernel_config::parse_fragment("CONFIG_NET_9P_VIRTIO=ym # the shares\n");
        let lines = check_config("# CONFIG_NET_9P_VIRTIO is not set\n", &reqs, Some(t.path()));
        assert_eq!(
            lines,
            ["  CONFIG_NET_9P_VIRTIO=n (want ym): the shares\n      Kconfig: depends on VIRTIO  (net/9p/Kconfig)"]
        );
    }

    #[test]
    fn revisions_of_trees_and_keys() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("Makefile"), "VERSION = 6\n").unwrap();
        let a = source_revision(t.path(), "6.1.0").unwrap();
        assert!(a.starts_with("tree:6.1.0:"), "{a}");
        assert_eq!(a, source_revision(t.path(), "6.1.0").unwrap());
        std::fs::write(t.path().join("extra.c"), "int x;").unwrap();
        assert_ne!(a, source_revision(t.path(), "6.1.0").unwrap());
        let k = build_key("git:abc", "", "frag", "gcc 12");
        assert_ne!(k, build_key("git:abc", "CONFIG_X=y\n", "frag", "gcc 12"));
        assert_ne!(k, build_key("git:abd", "", "frag", "gcc 12"));
    }

    #[test]
    fn revision_of_a_git_checkout() {
        if !crtest_vm::hostdeps::present("git") {
            eprintln!("skipping: git is not installed");
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let git = |args: &[&str]| {
            let ok = Command::new("git")
                .arg("-C")
                .arg(t.path())
                .args(["-c", "user.name=t", "-c", "user.email=t@t"])
                .args(args)
                .output()
                .unwrap()
                .status
                .success();
            assert!(ok, "git {args:?}");
        };
        git(&["init", "-q"]);
        std::fs::write(t.path().join("Makefile"), "VERSION = 6\n").unwrap();
        git(&["add", "Makefile"]);
        git(&["commit", "-q", "-m", "v6"]);
        let clean = source_revision(t.path(), "6.0.0").unwrap();
        assert!(clean.starts_with("git:") && clean.len() == 44, "{clean}");
        std::fs::write(t.path().join("Makefile"), "VERSION = 7\n").unwrap();
        let dirty = source_revision(t.path(), "6.0.0").unwrap();
        assert!(dirty.starts_with(&format!("{clean}+dirty:")), "{dirty}");
        // A directory below a checkout is not the checkout: its listing names it.
        std::fs::create_dir(t.path().join("sub")).unwrap();
        std::fs::write(t.path().join("sub/Makefile"), "VERSION = 6\n").unwrap();
        let sub = source_revision(&t.path().join("sub"), "6.0.0").unwrap();
        assert!(sub.starts_with("tree:6.0.0:"), "{sub}");
    }

    #[test]
    fn make_lines_and_progress() {
        assert_eq!(
            make_argv(
                Path::new("/s"),
                Path::new("/o"),
                Some(2),
                &["bzImage", "modules"]
            ),
            ["make", "-C", "/s", "O=/o", "-j2", "bzImage", "modules"]
        );
        assert_eq!(
            kbuild_step("  CC      fs/ext4/inode.o"),
            Some(("CC", "fs/ext4/inode.o"))
        );
        assert_eq!(
            kbuild_step("  CC [M]  net/9p/trans_virtio.o"),
            Some(("CC", "net/9p/trans_virtio.o"))
        );
        assert_eq!(kbuild_step("make[1]: Entering directory"), None);
        assert_eq!(kbuild_step("warning: x"), None);
    }
}
