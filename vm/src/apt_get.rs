//! `apt-get` / `apt-cache` invocations, against the host's apt state or a
//! private state directory that follows another Debian suite.
//!
//! [`Apt::host`] uses the host's lists as they are; [`Apt::for_suite`] keeps
//! its own lists under the cache (sources from [`crate::apt`], so the host's
//! mirror with another suite) and refreshes them when older than a day.
//! Neither needs root except [`Apt::update`] on the host state.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use nix::unistd::geteuid;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::apt::{self, AptError};
use crate::cache::{key_of, Cache};
use crate::command::{Cmd, CommandError};
use crate::control::{self, Stanza};

/// How old a private state's lists may get before [`Apt::refresh`] updates.
pub const MAX_LIST_AGE: Duration = Duration::from_secs(24 * 3600);

/// Errors of apt look-ups and downloads.
#[derive(Debug, thiserror::Error)]
pub enum AptGetError {
    /// An apt command could not start or failed.
    #[error(transparent)]
    Command(#[from] CommandError),
    /// apt knows no installable version of a package.
    #[error("apt knows no package `{package}`{hint}")]
    NotFound {
        /// The package asked for.
        package: String,
        /// What to do about it (empty when nothing obvious).
        hint: String,
    },
    /// The sources for a private state could not be derived.
    #[error(transparent)]
    Sources(#[from] AptError),
    /// A file of the private state could not be written or read.
    #[error("apt state {}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> AptGetError + '_ {
    move |source| AptGetError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Which apt state the commands use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Apt {
    /// `-o Key=Value` options pointing apt at a private state, if any.
    options: Vec<String>,
    /// The private state directory.
    private: Option<PathBuf>,
}

/// The candidate version of a package, as `apt-cache show` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    /// Package name.
    pub package: String,
    /// Candidate version.
    pub version: String,
    /// `Depends` (and `Pre-Depends`) names, one list per group of alternatives.
    pub depends: Vec<Vec<String>>,
}

impl Candidate {
    /// Reads the first stanza of `apt-cache show --no-all-versions` output.
    pub fn from_show(text: &str) -> Option<Candidate> {
        let st: Stanza = control::parse(text).into_iter().next()?;
        let mut depends = Vec::new();
        for f in ["Pre-Depends", "Depends"] {
            if let Some(v) = st.get(f) {
                depends.extend(control::relations(v));
            }
        }
        Some(Candidate {
            package: st.get("Package")?.to_string(),
            version: st.get("Version")?.to_string(),
            depends,
        })
    }
}

/// Whether a failed apt-cache run means "no such package".
fn is_not_found(err: &CommandError) -> bool {
    let t = err.stderr_tail();
    matches!(err, CommandError::Failed { .. })
        && (t.contains("No packages found")
            || t.contains("Unable to locate package")
            || t.contains("purely virtual"))
}

/// Whether the host's mirror has `suite`: its lists are fetched (kept a day, as every
/// look-up of the suite does); `Ok(false)` when apt finds no Release file for it.
pub fn mirror_has_suite(cache: &Cache, suite: &str) -> Result<bool, AptGetError> {
    let apt = Apt::for_suite(cache, suite)?;
    match apt.refresh() {
        Ok(()) => Ok(true),
        Err(AptGetError::Command(e))
            if e.stderr_tail().contains("does not have a Release file")
                || e.stderr_tail().contains(&format!("{suite} Release")) =>
        {
            // No state is kept for a suite that is not there.
            if let Some(dir) = &apt.private {
                let _ = fs::remove_dir_all(dir);
            }
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// The archive URIs the host's apt sources give for `suite` (for messages).
pub fn mirror_of(suite: &str) -> String {
    apt::host_sources_for_suite(suite)
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("URIs:").map(|u| u.trim().to_string()))
        })
        .unwrap_or_else(|| "the host's mirror".into())
}

impl Apt {
    /// The host's own apt configuration and lists.
    pub fn host() -> Apt {
        Apt {
            options: Vec::new(),
            private: None,
        }
    }

    /// A private apt state under `<cache>/apt/<suite>-<key>/` that follows
    /// `suite` on the host's mirror. Its lists are fetched on first use (and
    /// refreshed when stale) by [`Apt::refresh`].
    pub fn for_suite(cache: &Cache, suite: &str) -> Result<Apt, AptGetError> {
        let sources = apt::host_sources_for_suite(suite)?;
        let dir = cache
            .root()
            .join("apt")
            .join(format!("{suite}-{}", key_of(&[sources.as_bytes()])));
        Self::private(&dir, &sources)
    }

    /// A private apt state in `dir` using the deb822 `sources` text.
    pub fn private(dir: &Path, sources: &str) -> Result<Apt, AptGetError> {
        for sub in [
            "etc/sources.list.d",
            "etc/preferences.d",
            "lists/partial",
            "cache/archives/partial",
        ] {
            let p = dir.join(sub);
            fs::create_dir_all(&p).map_err(io_err(&p))?;
        }
        let src = dir.join("etc/sources.list.d/crtest.sources");
        if fs::read_to_string(&src).ok().as_deref() != Some(sources) {
            fs::write(&src, sources).map_err(io_err(&src))?;
        }
        let status = dir.join("status");
        if !status.exists() {
            fs::write(&status, "").map_err(io_err(&status))?;
        }
        let d = dir.display();
        let options = vec![
            "Dir::Etc::SourceList=/dev/null".to_string(),
            format!("Dir::Etc::SourceParts={d}/etc/sources.list.d"),
            "Dir::Etc::Preferences=/dev/null".to_string(),
            format!("Dir::Etc::PreferencesParts={d}/etc/preferences.d"),
            format!("Dir::State={d}"),
            format!("Dir::State::Lists={d}/lists"),
            format!("Dir::State::status={d}/status"),
            format!("Dir::Cache={d}/cache"),
            "APT::Get::List-Cleanup=true".to_string(),
        ];
        Ok(Apt {
            options,
            private: Some(dir.to_path_buf()),
        })
    }

    /// The private state directory, `None` for the host's.
    pub fn private_dir(&self) -> Option<&Path> {
        self.private.as_deref()
    }

    fn with_options(&self, program: &str) -> Cmd {
        let mut c = Cmd::new(program);
        if geteuid().is_root() {
            // apt drops to `_apt` for downloads when root, which then cannot
            // write into the caller's directories.
            c = c.args(["-o", "APT::Sandbox::User=root"]);
        }
        for o in &self.options {
            c = c.args(["-o", o.as_str()]);
        }
        c
    }

    /// The lists directory this state reads.
    pub fn lists_dir(&self) -> PathBuf {
        match &self.private {
            Some(d) => d.join("lists"),
            None => PathBuf::from("/var/lib/apt/lists"),
        }
    }

    /// A fingerprint of everything that decides apt's answers: the names,
    /// sizes and mtimes of the package lists, dpkg's status and the pin
    /// preferences. It changes whenever an update or install could have
    /// changed a candidate.
    pub fn fingerprint(&self) -> String {
        let mut parts: Vec<String> = self.options.clone();
        let mut stat = |p: &Path| {
            if let Ok(m) = fs::metadata(p) {
                let mtime = m
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_nanos());
                parts.push(format!("{} {} {mtime}", p.display(), m.len()));
            }
        };
        let mut dirs = vec![self.lists_dir()];
        match &self.private {
            Some(d) => {
                stat(&d.join("status"));
                dirs.push(d.join("etc/sources.list.d"));
            }
            None => {
                stat(Path::new("/var/lib/dpkg/status"));
                stat(Path::new("/etc/apt/preferences"));
                dirs.push(PathBuf::from("/etc/apt/preferences.d"));
                dirs.push(PathBuf::from("/etc/apt/sources.list.d"));
            }
        }
        for dir in dirs {
            stat(&dir);
            let mut files: Vec<PathBuf> = fs::read_dir(&dir)
                .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
                .unwrap_or_default();
            files.sort();
            for f in files {
                stat(&f);
            }
        }
        let refs: Vec<&[u8]> = parts.iter().map(|p| p.as_bytes()).collect();
        key_of(&refs)
    }

    /// Memoizes a look-up (`what` names it, e.g. the package) in `cache`
    /// while [`Apt::fingerprint`] stays the same: `apt-cache` rebuilds its
    /// package cache on every run (over half a second each), which a warm
    /// start must not pay.
    pub fn memoized<T, E, F>(&self, cache: &Cache, what: &str, compute: F) -> Result<T, E>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Result<T, E>,
    {
        #[derive(Serialize, Deserialize)]
        struct Memo<T> {
            fingerprint: String,
            value: T,
        }
        let id = self
            .private
            .as_deref()
            .map(Path::as_os_str)
            .unwrap_or_default();
        let file = cache
            .root()
            .join("apt-memo")
            .join(key_of(&[id.as_encoded_bytes(), what.as_bytes()]) + ".json");
        let fingerprint = self.fingerprint();
        if let Some(m) = fs::read_to_string(&file)
            .ok()
            .and_then(|t| serde_json::from_str::<Memo<T>>(&t).ok())
        {
            if m.fingerprint == fingerprint {
                return Ok(m.value);
            }
        }
        let value = compute()?;
        // The state may have changed while computing (an update ran):
        // record the fingerprint as it is now.
        let memo = Memo {
            fingerprint: self.fingerprint(),
            value,
        };
        if let Ok(json) = serde_json::to_string(&memo) {
            // A unique temporary file: parallel cells memoise into the same folder.
            let _ = crate::cache::write_atomic(&file, json.as_bytes());
        }
        Ok(memo.value)
    }

    /// `apt-get [options]`.
    pub fn apt_get(&self) -> Cmd {
        self.with_options("apt-get")
    }

    /// `apt-cache [options]`.
    pub fn apt_cache(&self) -> Cmd {
        self.with_options("apt-cache")
    }

    /// `apt-get update` command.
    pub fn update_cmd(&self) -> Cmd {
        self.apt_get().args(["-q", "update"])
    }

    /// `apt-cache show --no-all-versions PKG` command.
    pub fn show_cmd(&self, package: &str) -> Cmd {
        self.apt_cache()
            .args(["show", "--no-all-versions", package])
    }

    /// `apt-get download NAME=VERSION...` command, run in `dir`.
    pub fn download_cmd(&self, dir: &Path, packages: &[(String, String)]) -> Cmd {
        self.apt_get()
            .args(["-q", "download"])
            .args(packages.iter().map(|(p, v)| format!("{p}={v}")))
            .dir(dir)
    }

    /// Runs `apt-get update`.
    pub fn update(&self) -> Result<(), AptGetError> {
        self.update_cmd().run()?;
        Ok(())
    }

    /// For a private state: runs `apt-get update` when its lists are missing
    /// or older than [`MAX_LIST_AGE`]. Does nothing for the host state.
    pub fn refresh(&self) -> Result<(), AptGetError> {
        let Some(dir) = &self.private else {
            return Ok(());
        };
        let stamp = dir.join("updated");
        let fresh = fs::metadata(&stamp)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .is_some_and(|age| age < MAX_LIST_AGE);
        if fresh {
            return Ok(());
        }
        self.update()?;
        fs::write(&stamp, "").map_err(io_err(&stamp))
    }

    /// The candidate of `package`. When apt does not know it: a private
    /// state is updated and asked again; on the host, root runs
    /// `apt-get update` once and asks again, anyone else gets
    /// [`AptGetError::NotFound`] saying to run `sudo apt-get update`.
    pub fn candidate(&self, package: &str) -> Result<Candidate, AptGetError> {
        self.refresh()?;
        let first = self.show_cmd(package).read();
        let text = match first {
            Ok(t) => t,
            Err(e) if is_not_found(&e) => {
                if self.private.is_some() || geteuid().is_root() {
                    self.update()?;
                    match self.show_cmd(package).read() {
                        Ok(t) => t,
                        Err(e) if is_not_found(&e) => return Err(self.not_found(package)),
                        Err(e) => return Err(e.into()),
                    }
                } else {
                    return Err(self.not_found(package));
                }
            }
            Err(e) => return Err(e.into()),
        };
        Candidate::from_show(&text).ok_or_else(|| self.not_found(package))
    }

    fn not_found(&self, package: &str) -> AptGetError {
        let hint = if self.private.is_some() || geteuid().is_root() {
            String::new()
        } else {
            " (the host's package lists may be empty or stale: run `sudo apt-get update`)"
                .to_string()
        };
        AptGetError::NotFound {
            package: package.to_string(),
            hint,
        }
    }

    /// Downloads exact versions into `dir`; returns the `.deb` files there.
    pub fn download(
        &self,
        dir: &Path,
        packages: &[(String, String)],
    ) -> Result<Vec<PathBuf>, AptGetError> {
        self.download_cmd(dir, packages).run()?;
        let mut debs: Vec<PathBuf> = fs::read_dir(dir)
            .map_err(io_err(dir))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "deb"))
            .collect();
        debs.sort();
        Ok(debs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHOW: &str = "\
Package: linux-image-amd64
Source: linux-signed-amd64 (6.1.192+2)
Version: 6.1.192-2
Installed-Size: 14
Depends: linux-image-6.1.0-56-amd64 (= 6.1.192-2)
Description-en: Linux for 64-bit PCs (meta-package)
 This package depends on the latest Linux kernel and modules for use on PCs
 with AMD64, Intel 64 or VIA Nano processors.

";

    #[test]
    fn candidate_from_show() {
        let c = Candidate::from_show(SHOW).unwrap();
        assert_eq!(c.package, "linux-image-amd64");
        assert_eq!(c.version, "6.1.192-2");
        assert_eq!(c.depends, vec![vec!["linux-image-6.1.0-56-amd64"]]);
        assert!(Candidate::from_show("").is_none());
    }

    #[test]
    fn private_state_options_and_commands() {
        let t = tempfile::tempdir().unwrap();
        let apt = Apt::private(t.path(), "Types: deb\n").unwrap();
        assert!(t.path().join("etc/sources.list.d/crtest.sources").is_file());
        assert!(t.path().join("lists/partial").is_dir());
        let line = apt
            .download_cmd(Path::new("/d"), &[("linux-binary-x".into(), "1-1".into())])
            .to_string();
        assert!(line.contains(&format!(
            "-o Dir::State::Lists={}/lists",
            t.path().display()
        )));
        assert!(line.ends_with("-q download linux-binary-x=1-1)"), "{line}");
        let show = Apt::host().show_cmd("criu").to_string();
        assert!(show.starts_with("apt-cache ") || show.contains("APT::Sandbox::User=root"));
        assert!(show.ends_with("show --no-all-versions criu"));
    }

    #[test]
    fn memo_follows_the_fingerprint() {
        let t = tempfile::tempdir().unwrap();
        let cache = Cache::new(t.path().join("cache"));
        let apt = Apt::private(&t.path().join("state"), "Types: deb\n").unwrap();
        let calls = std::cell::Cell::new(0);
        let get = || {
            apt.memoized::<String, (), _>(&cache, "pkg", || {
                calls.set(calls.get() + 1);
                Ok(format!("v{}", calls.get()))
            })
        };
        assert_eq!(get(), Ok("v1".to_string()));
        assert_eq!(get(), Ok("v1".to_string()));
        fs::write(t.path().join("state/lists/new_Packages"), "x").unwrap();
        assert_eq!(get(), Ok("v2".to_string()));
        assert_eq!(calls.get(), 2);
    }
}
