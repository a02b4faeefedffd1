//! The guest userland: a Debian suite with the C/R tools, built with
//! `mmdebstrap` from the host's mirror (as root, or in its unshare mode as a normal user)
//! and made into an ext4 image as it streams out ([`crate::ext4`]), cached under a key of
//! its inputs.
//!
//! The image is a block device for the guest, not part of the initramfs (a
//! large initramfs costs seconds of boot under TCG).

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::apt::{self, AptError};
use crate::cache::{key_of, Cache, CacheError};
use crate::command::{Cmd, CommandError};
use crate::control;
use crate::ext4::{self, Ext4Error};
use crate::userns::UserNsError;

/// Bumped whenever the way images are built changes.
pub const FORMAT: &str = "userland-v2";
/// The image file inside a cache entry.
pub const IMAGE: &str = "rootfs.ext4";
/// The description file inside a cache entry.
pub const MANIFEST: &str = "manifest.json";
/// The filesystem label of the image.
pub const LABEL: &str = "crtest-root";

/// The packages the harness puts in every guest userland.
pub const DEFAULT_PACKAGES: &[&str] = &[
    "criu",
    "kmod",
    "iproute2",
    "iptables",
    "util-linux",
    "procps",
    "busybox",
];

/// A built guest userland.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Userland {
    /// The Debian suite (`bookworm`, `trixie`, `sid`).
    pub suite: String,
    /// The raw ext4 image.
    pub image: PathBuf,
    /// Installed packages: name -> version.
    pub packages: BTreeMap<String, String>,
}

/// What `manifest.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT`] at build time.
    pub format: String,
    /// The suite.
    pub suite: String,
    /// The packages asked for.
    pub requested: Vec<String>,
    /// Installed packages: name -> version.
    pub packages: BTreeMap<String, String>,
    /// The image file name, relative to the entry.
    pub image: String,
    /// The image size in bytes.
    pub image_size: u64,
    /// Seconds the build took.
    pub build_seconds: f64,
    /// What the build had to work around (an expired Release file, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// Whether mmdebstrap failed because the mirror's Release file is past its Valid-Until.
pub fn is_expired_release(err: &CommandError) -> bool {
    let t = err.stderr_tail();
    t.contains("Release file for") && t.contains("is expired")
}

/// Errors building a userland.
#[derive(Debug, thiserror::Error)]
pub enum UserlandError {
    /// The host's apt sources could not be mapped to the suite.
    #[error(transparent)]
    Sources(#[from] AptError),
    /// The cache could not be used.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// `mmdebstrap` could not start or failed (for example, a suite the
    /// archive does not have).
    #[error("cannot bootstrap Debian suite `{suite}` into an image: {source}")]
    Bootstrap {
        /// The suite.
        suite: String,
        /// The failure of mmdebstrap or of making its image, with the stderr tail.
        #[source]
        source: Ext4Error,
    },
    /// The image was made and cannot be read.
    #[error("cannot read the userland image: {0}")]
    Image(#[source] Ext4Error),
    /// A normal user's account cannot build a root.
    #[error(transparent)]
    UserNs(#[from] UserNsError),
    /// A file operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// `manifest.json` could not be read.
    #[error("{}: {source}", path.display())]
    Manifest {
        /// The manifest.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> UserlandError + '_ {
    move |source| UserlandError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// `mmdebstrap` in `mode` (see [`crate::userns::mmdebstrap_mode`]) for `suite` with
/// `packages`, writing the root as a tar to its stdout, sources from `sources_file` (always
/// given, since mmdebstrap reads sources from a non-terminal stdin otherwise).
pub fn mmdebstrap_cmd(mode: &str, suite: &str, packages: &[String], sources_file: &Path) -> Cmd {
    let mut c = Cmd::tool("mmdebstrap").arg(mode).arg("--variant=apt");
    if !packages.is_empty() {
        c = c.arg(format!("--include={}", packages.join(",")));
    }
    for opt in [
        "path-exclude=/usr/share/doc/*",
        "path-exclude=/usr/share/man/*",
        "path-exclude=/usr/share/info/*",
        "path-exclude=/usr/share/locale/*",
        "path-include=/usr/share/locale/locale.alias",
    ] {
        c = c.arg(format!("--dpkgopt={opt}"));
    }
    c.arg(suite).arg("-").arg(sources_file)
}

/// Installed packages (`Status: install ok installed`) of a dpkg status
/// text: name -> version.
pub fn parse_dpkg_status(text: &str) -> BTreeMap<String, String> {
    control::parse(text)
        .into_iter()
        .filter(|s| s.get("Status") == Some("install ok installed"))
        .filter_map(|s| Some((s.get("Package")?.to_string(), s.get("Version")?.to_string())))
        .collect()
}

/// The cache key of a userland.
pub fn cache_key(suite: &str, packages: &[String], sources: &str) -> String {
    let mut sorted = packages.to_vec();
    sorted.sort();
    sorted.dedup();
    let joined = sorted.join("\n");
    key_of(&[
        FORMAT.as_bytes(),
        suite.as_bytes(),
        joined.as_bytes(),
        sources.as_bytes(),
    ])
}

/// Builds (or finds in the cache) the userland for `suite` with `packages`,
/// using the host's mirror (see [`crate::apt`]).
pub fn build(cache: &Cache, suite: &str, packages: &[&str]) -> Result<Userland, UserlandError> {
    let sources = apt::host_sources_for_suite(suite)?;
    build_with_sources(cache, suite, packages, &sources)
}

/// [`build`] with explicit deb822 `sources` text.
pub fn build_with_sources(
    cache: &Cache,
    suite: &str,
    packages: &[&str],
    sources: &str,
) -> Result<Userland, UserlandError> {
    let mut pkgs: Vec<String> = packages.iter().map(|s| s.to_string()).collect();
    pkgs.sort();
    pkgs.dedup();
    let key = cache_key(suite, &pkgs, sources);
    let dir = cache.entry("userland", &key, |tmp| {
        build_into(tmp, suite, &pkgs, sources)
    })?;
    load(&dir)
}

/// Reads a built userland entry.
pub fn load(dir: &Path) -> Result<Userland, UserlandError> {
    let path = dir.join(MANIFEST);
    let text = fs::read_to_string(&path).map_err(io_err(&path))?;
    let m: Manifest =
        serde_json::from_str(&text).map_err(|source| UserlandError::Manifest { path, source })?;
    Ok(Userland {
        suite: m.suite,
        image: dir.join(m.image),
        packages: m.packages,
    })
}

fn build_into(
    tmp: &Path,
    suite: &str,
    packages: &[String],
    sources: &str,
) -> Result<(), UserlandError> {
    let start = Instant::now();
    crate::userns::check_subordinate_ids()?;
    let sources_file = tmp.join("sources.sources");
    fs::write(&sources_file, sources).map_err(io_err(&sources_file))?;
    let image = tmp.join(IMAGE);
    let work = tmp.join("tree");
    let mode = crate::userns::mmdebstrap_mode();
    let bootstrap = mmdebstrap_cmd(mode, suite, packages, &sources_file);
    let failed = |source| UserlandError::Bootstrap {
        suite: suite.to_string(),
        source,
    };
    let mut notes = Vec::new();
    match ext4::from_root_tar(&bootstrap, &work, &image, LABEL) {
        Ok(()) => {}
        Err(Ext4Error::Command(e)) if is_expired_release(&e) => {
            // The mirror serves a Release file past its Valid-Until (a frozen snapshot, an
            // unstable suite not refreshed): say so, and accept it rather than have no guest.
            let note = format!(
                "the mirror's Release file of `{suite}` is expired; built with \
                 Acquire::Check-Valid-Until=false"
            );
            eprintln!("warning: {note}");
            notes.push(note);
            let again = bootstrap.arg("--aptopt=Acquire::Check-Valid-Until \"false\"");
            ext4::from_root_tar(&again, &work, &image, LABEL).map_err(failed)?;
        }
        Err(e) => return Err(failed(e)),
    }
    let status = ext4::read_file(&image, "/var/lib/dpkg/status")
        .map_err(|e| UserlandError::Image(e.into()))?;
    let installed = parse_dpkg_status(&status);

    let image_size = fs::metadata(&image).map_err(io_err(&image))?.len();
    let manifest = Manifest {
        format: FORMAT.to_string(),
        suite: suite.to_string(),
        requested: packages.to_vec(),
        packages: installed,
        image: IMAGE.to_string(),
        image_size,
        build_seconds: (start.elapsed().as_secs_f64() * 10.0).round() / 10.0,
        notes,
    };
    let path = tmp.join(MANIFEST);
    let json = serde_json::to_string_pretty(&manifest).expect("manifest serializes");
    fs::write(&path, json + "\n").map_err(io_err(&path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dpkg_status_keeps_installed_only() {
        let text = "\
Package: criu
Status: install ok installed
Priority: optional
Version: 3.17.1-2+deb12u2
Description: checkpoint and restore
 long text

Package: removed-thing
Status: deinstall ok config-files
Version: 1.0

Package: half
Status: install ok unpacked
Version: 2.0

Package: busybox
Status: install ok installed
Version: 1:1.35.0-4+b4
";
        let m = parse_dpkg_status(text);
        assert_eq!(m.len(), 2);
        assert_eq!(m["criu"], "3.17.1-2+deb12u2");
        assert_eq!(m["busybox"], "1:1.35.0-4+b4");
    }

    #[test]
    fn key_ignores_package_order_and_duplicates() {
        let a = cache_key("bookworm", &["kmod".into(), "criu".into()], "S");
        let b = cache_key(
            "bookworm",
            &["criu".into(), "kmod".into(), "criu".into()],
            "S",
        );
        assert_eq!(a, b);
        assert_ne!(a, cache_key("trixie", &["criu".into(), "kmod".into()], "S"));
        assert_ne!(
            a,
            cache_key("bookworm", &["criu".into(), "kmod".into()], "T")
        );
    }

    #[test]
    fn command_lines() {
        let m = mmdebstrap_cmd(
            "--mode=unshare",
            "bookworm",
            &["criu".into(), "kmod".into()],
            Path::new("/t/sources.sources"),
        )
        .to_string();
        assert!(
            m.ends_with(
                "mmdebstrap --mode=unshare --variant=apt --include=criu,kmod \
                 '--dpkgopt=path-exclude=/usr/share/doc/*' \
                 '--dpkgopt=path-exclude=/usr/share/man/*' \
                 '--dpkgopt=path-exclude=/usr/share/info/*' \
                 '--dpkgopt=path-exclude=/usr/share/locale/*' \
                 --dpkgopt=path-include=/usr/share/locale/locale.alias \
                 bookworm - /t/sources.sources"
            ),
            "{m}"
        );
    }
}
