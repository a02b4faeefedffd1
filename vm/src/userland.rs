//! The guest userland: a Debian suite with the C/R tools, built with
//! `mmdebstrap` from the host's mirror and packed into an ext4 image with
//! `mke2fs -d`, cached under a key of its inputs.
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

/// Bumped whenever the way images are built changes.
pub const FORMAT: &str = "userland-v1";
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
    #[error("cannot bootstrap Debian suite `{suite}`: {source}")]
    Bootstrap {
        /// The suite.
        suite: String,
        /// The mmdebstrap failure, with its stderr tail.
        #[source]
        source: CommandError,
    },
    /// `mke2fs` could not start or failed.
    #[error("cannot make the ext4 image: {0}")]
    Image(#[source] CommandError),
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

/// `mmdebstrap` for `suite` with `packages` into the directory `rootfs`,
/// sources from `sources_file` (always given, since mmdebstrap reads sources
/// from a non-terminal stdin otherwise).
pub fn mmdebstrap_cmd(suite: &str, packages: &[String], rootfs: &Path, sources_file: &Path) -> Cmd {
    let mut c = Cmd::tool("mmdebstrap").arg("--variant=apt");
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
    c.arg(suite).arg(rootfs).arg(sources_file)
}

/// `mke2fs` making an ext4 `image` of `size_mib` MiB with `inodes` inodes,
/// populated from `rootfs`, no journal.
pub fn mke2fs_cmd(rootfs: &Path, image: &Path, size_mib: u64, inodes: u64) -> Cmd {
    Cmd::tool("mke2fs")
        .args(["-q", "-t", "ext4", "-O", "^has_journal", "-b", "4096"])
        .arg("-N")
        .arg(inodes.to_string())
        .args(["-L", LABEL, "-d"])
        .arg(rootfs)
        .arg("-F")
        .arg(image)
        .arg(format!("{size_mib}M"))
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

/// Image size for a tree using `used_bytes`: 1.3 times that plus 128 MiB,
/// in whole MiB, rounded up.
pub fn image_size_mib(used_bytes: u64) -> u64 {
    const MIB: u64 = 1 << 20;
    let bytes = used_bytes + used_bytes * 3 / 10 + 128 * MIB;
    bytes.div_ceil(MIB)
}

/// Inodes for a tree of `entries` files, directories and links: 1.3 times
/// that plus 4096 spare.
pub fn inode_count(entries: u64) -> u64 {
    entries + entries * 3 / 10 + 4096
}

/// Space a tree takes in 4 KiB blocks (files rounded up, a block per
/// directory), and how many entries it has.
pub fn tree_usage(dir: &Path) -> io::Result<(u64, u64)> {
    const BLOCK: u64 = 4096;
    let (mut bytes, mut count) = (BLOCK, 1);
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for ent in fs::read_dir(&d)? {
            let ent = ent?;
            let m = ent.path().symlink_metadata()?;
            count += 1;
            if m.is_dir() {
                bytes += BLOCK;
                stack.push(ent.path());
            } else if m.is_file() {
                bytes += m.len().div_ceil(BLOCK) * BLOCK;
            }
        }
    }
    Ok((bytes, count))
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

fn clear_dir_files(dir: &Path, keep: &[&str], only_suffix: Option<&str>) -> io::Result<()> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for ent in rd {
        let ent = ent?;
        let name = ent.file_name();
        let name = name.to_string_lossy();
        if keep.contains(&name.as_ref()) || only_suffix.is_some_and(|s| !name.ends_with(s)) {
            continue;
        }
        if ent.file_type()?.is_dir() {
            fs::remove_dir_all(ent.path())?;
        } else {
            fs::remove_file(ent.path())?;
        }
    }
    Ok(())
}

fn build_into(
    tmp: &Path,
    suite: &str,
    packages: &[String],
    sources: &str,
) -> Result<(), UserlandError> {
    let start = Instant::now();
    let sources_file = tmp.join("sources.sources");
    fs::write(&sources_file, sources).map_err(io_err(&sources_file))?;
    let rootfs = tmp.join("rootfs");
    let mut notes = Vec::new();
    if let Err(source) = mmdebstrap_cmd(suite, packages, &rootfs, &sources_file).run() {
        if !is_expired_release(&source) {
            return Err(UserlandError::Bootstrap {
                suite: suite.to_string(),
                source,
            });
        }
        // The mirror serves a Release file past its Valid-Until (a frozen snapshot, an
        // unstable suite not refreshed): say so, and accept it rather than have no guest.
        let note = format!(
            "the mirror's Release file of `{suite}` is expired; built with \
             Acquire::Check-Valid-Until=false"
        );
        eprintln!("warning: {note}");
        notes.push(note);
        if fs::symlink_metadata(&rootfs).is_ok() {
            crate::cache::remove_all(&rootfs)?;
        }
        mmdebstrap_cmd(suite, packages, &rootfs, &sources_file)
            .arg("--aptopt=Acquire::Check-Valid-Until \"false\"")
            .run()
            .map_err(|source| UserlandError::Bootstrap {
                suite: suite.to_string(),
                source,
            })?;
    }

    let status = rootfs.join("var/lib/dpkg/status");
    let installed = parse_dpkg_status(&fs::read_to_string(&status).map_err(io_err(&status))?);

    let apt_cache = rootfs.join("var/cache/apt");
    clear_dir_files(&apt_cache, &[], Some(".bin")).map_err(io_err(&apt_cache))?;
    let lists = rootfs.join("var/lib/apt/lists");
    clear_dir_files(&lists, &["partial", "lock"], None).map_err(io_err(&lists))?;

    let (used, entries) = tree_usage(&rootfs).map_err(io_err(&rootfs))?;
    let image = tmp.join(IMAGE);
    mke2fs_cmd(&rootfs, &image, image_size_mib(used), inode_count(entries))
        .run()
        .map_err(UserlandError::Image)?;
    fs::remove_dir_all(&rootfs).map_err(io_err(&rootfs))?;

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
    use rstest::rstest;

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

    #[rstest]
    #[case(0, 128)]
    #[case(1, 129)]
    #[case(100 << 20, 258)]
    #[case(300 << 20, 518)]
    fn image_sizes(#[case] used: u64, #[case] mib: u64) {
        assert_eq!(image_size_mib(used), mib);
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
            "bookworm",
            &["criu".into(), "kmod".into()],
            Path::new("/t/rootfs"),
            Path::new("/t/sources.sources"),
        )
        .to_string();
        assert!(
            m.ends_with(
                "mmdebstrap --variant=apt --include=criu,kmod \
                 '--dpkgopt=path-exclude=/usr/share/doc/*' \
                 '--dpkgopt=path-exclude=/usr/share/man/*' \
                 '--dpkgopt=path-exclude=/usr/share/info/*' \
                 '--dpkgopt=path-exclude=/usr/share/locale/*' \
                 --dpkgopt=path-include=/usr/share/locale/locale.alias \
                 bookworm /t/rootfs /t/sources.sources"
            ),
            "{m}"
        );
        let k = mke2fs_cmd(Path::new("/t/rootfs"), Path::new("/t/i.ext4"), 300, 9000).to_string();
        assert!(
            k.ends_with(
                "mke2fs -q -t ext4 -O '^has_journal' -b 4096 -N 9000 -L crtest-root \
                 -d /t/rootfs -F /t/i.ext4 300M"
            ),
            "{k}"
        );
    }

    #[test]
    fn usage_counts_blocks_and_entries() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir(t.path().join("d")).unwrap();
        fs::write(t.path().join("d/f"), vec![0u8; 5000]).unwrap();
        fs::write(t.path().join("g"), b"").unwrap();
        std::os::unix::fs::symlink("d/f", t.path().join("l")).unwrap();
        let (bytes, n) = tree_usage(t.path()).unwrap();
        assert_eq!(n, 5); // root, d, d/f, g, l
        assert_eq!(bytes, 4096 * 2 + 8192);
    }
}
