//! Kernels to boot: Debian kernel packages fetched into the cache, or a
//! user's own bzImage with its modules and config.
//!
//! Debian packages come with `apt-get download` (no root needed) and are
//! unpacked with `dpkg -x`; `depmod` then writes the `modules.dep` Debian does
//! not ship. Two package layouts exist:
//!
//! * `linux-image-R` holding everything: `boot/vmlinuz-R`, `boot/config-R`,
//!   `lib/modules/R/` (bookworm: 6.1, uncompressed modules);
//! * `linux-image-R` as an empty package depending on `linux-binary-R`
//!   (`usr/lib/modules/R/vmlinuz`), `linux-modules-R` (`.ko.xz` modules) and
//!   `linux-base-R` (`config`, `modules.builtin`) — newer kernels.
//!
//! All of them are fetched and unpacked into one root.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::apt_get::{Apt, AptGetError};
use crate::bzimage::{self, BzImageError};
use crate::cache::{key_of, Cache, CacheError};
use crate::command::{Cmd, CommandError};
use crate::kconfig::{self, KernelConfig};

/// The Debian metapackage for the current default amd64 kernel.
pub const DEFAULT_PACKAGE: &str = "linux-image-amd64";

/// Bumped when the layout of a cached kernel entry changes.
const FORMAT: &str = "kernel-v1";

/// Name of the description file inside a cached kernel entry.
const MANIFEST: &str = "kernel.json";

/// A kernel ready to boot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kernel {
    /// `uname -r` of the kernel.
    pub release: String,
    /// Where it came from.
    pub source: KernelSource,
    /// The bzImage.
    pub bzimage: PathBuf,
    /// `lib/modules/<release>` (with `modules.dep`), when modules exist.
    pub modules_dir: Option<PathBuf>,
    /// The kernel's `.config`, when known.
    pub config: Option<PathBuf>,
}

/// Where a kernel came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum KernelSource {
    /// A Debian kernel package (`linux-image-R`) at a version.
    Debian {
        /// The concrete image package, e.g. `linux-image-6.1.0-56-amd64`.
        package: String,
        /// Its Debian version, e.g. `6.1.192-2`.
        version: String,
    },
    /// A bzImage given by path.
    Local {
        /// The bzImage as given.
        path: PathBuf,
    },
}

/// Errors getting a kernel.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// An apt look-up or download failed.
    #[error("Debian kernel: {0}")]
    Apt(#[from] AptGetError),
    /// An unpacking tool could not start or failed.
    #[error("Debian kernel: {0}")]
    Command(#[from] CommandError),
    /// The cache could not be used.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A path given for a local kernel (bzImage, modules, config) cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Local {
        /// The path as given.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A local modules path holds no modules for the kernel's release.
    #[error(
        "{}: no modules for release {release} (looked for modules.dep or kernel/ in it, \
         {release}/, lib/modules/{release}/, usr/lib/modules/{release}/)",
        path.display()
    )]
    NoLocalModules {
        /// The modules path as given.
        path: PathBuf,
        /// The bzImage's release.
        release: String,
    },
    /// A file given as a kernel is not a bzImage.
    #[error("{} is not a bzImage: {source}", path.display())]
    NotBzImage {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: BzImageError,
    },
    /// A package (chain) does not lead to a `linux-image-*` package.
    #[error("`{package}` is not a Debian kernel image package (depends on: {depends})")]
    NotAKernelPackage {
        /// The package.
        package: String,
        /// Its dependencies, for the reader.
        depends: String,
    },
    /// Something expected in an unpacked kernel or a local modules tree is missing.
    #[error("{}: {what}", path.display())]
    Layout {
        /// Where it was looked for.
        path: PathBuf,
        /// What was missing.
        what: String,
    },
    /// A cached kernel description could not be read.
    #[error("{}: {source}", path.display())]
    Manifest {
        /// The description file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> KernelError + '_ {
    move |source| KernelError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl KernelError {
    /// Whether the error is the user's input (a local kernel that is not
    /// one, a path that does not exist) rather than the infrastructure.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            KernelError::Local { .. }
                | KernelError::NotBzImage { .. }
                | KernelError::NoLocalModules { .. }
        )
    }
}

impl Kernel {
    /// Parses the kernel's config, `None` when there is none.
    pub fn config_map(&self) -> Result<Option<KernelConfig>, KernelError> {
        let Some(p) = &self.config else {
            return Ok(None);
        };
        let text = fs::read_to_string(p).map_err(io_err(p))?;
        Ok(Some(kconfig::parse(&text)))
    }
}

/// Reads the release of the bzImage at `path`.
pub fn bzimage_release(path: &Path) -> Result<String, KernelError> {
    let mut head = Vec::new();
    fs::File::open(path)
        .and_then(|f| f.take(256 * 1024).read_to_end(&mut head))
        .map_err(io_err(path))?;
    bzimage::release(&head).map_err(|source| KernelError::NotBzImage {
        path: path.to_path_buf(),
        source,
    })
}

/// The current default Debian kernel of the host's apt sources
/// (`linux-image-amd64`), fetched into the cache.
pub fn debian_default(cache: &Cache) -> Result<Kernel, KernelError> {
    debian(cache, &Apt::host(), DEFAULT_PACKAGE)
}

/// A Debian kernel package (a metapackage such as `linux-image-amd64` or a
/// concrete `linux-image-R`) at its candidate version in `apt`'s view,
/// fetched and unpacked into the cache unless already there.
pub fn debian(cache: &Cache, apt: &Apt, package: &str) -> Result<Kernel, KernelError> {
    let image = apt.memoized(cache, &format!("{FORMAT} image {package}"), || {
        resolve_image(apt, package)
    })?;
    let key = key_of(&[
        FORMAT.as_bytes(),
        image.package.as_bytes(),
        image.version.as_bytes(),
    ]);
    let dir = cache.entry("kernel", &key, |tmp| build_debian(apt, &image, tmp))?;
    load_manifest(&dir)
}

/// Follows metapackages down to the concrete `linux-image-R` package.
fn resolve_image(apt: &Apt, package: &str) -> Result<crate::apt_get::Candidate, KernelError> {
    let mut c = apt.candidate(package)?;
    for _ in 0..4 {
        let next = c
            .depends
            .iter()
            .filter(|g| g.len() == 1)
            .map(|g| &g[0])
            .find(|n| n.starts_with("linux-image-") && **n != c.package)
            .cloned();
        match next {
            Some(n) => c = apt.candidate(&n)?,
            None => break,
        }
    }
    let flavour_ok = c
        .package
        .strip_prefix("linux-image-")
        .is_some_and(|r| r.chars().next().is_some_and(|ch| ch.is_ascii_digit()));
    if !flavour_ok {
        return Err(KernelError::NotAKernelPackage {
            package: c.package.clone(),
            depends: c
                .depends
                .iter()
                .map(|g| g.join(" | "))
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    Ok(c)
}

/// The packages that make up `image`: itself plus, in the split layout,
/// `linux-{base,binary,modules}-R` among its dependencies.
pub fn image_parts(image: &crate::apt_get::Candidate) -> Vec<String> {
    let flavour = image.package.trim_start_matches("linux-image-");
    let mut parts = vec![image.package.clone()];
    for prefix in ["linux-base-", "linux-binary-", "linux-modules-"] {
        let want = format!("{prefix}{flavour}");
        if image.depends.iter().any(|g| g.contains(&want)) {
            parts.push(want);
        }
    }
    parts
}

/// `dpkg -x DEB DIR`.
pub fn dpkg_extract_cmd(deb: &Path, dir: &Path) -> Cmd {
    Cmd::tool("dpkg").arg("-x").arg(deb).arg(dir)
}

/// `depmod -b ROOT RELEASE`.
pub fn depmod_cmd(root: &Path, release: &str) -> Cmd {
    Cmd::tool("depmod").arg("-b").arg(root).arg(release)
}

fn build_debian(
    apt: &Apt,
    image: &crate::apt_get::Candidate,
    tmp: &Path,
) -> Result<(), KernelError> {
    let mut wanted = Vec::new();
    for p in image_parts(image) {
        let version = if p == image.package {
            image.version.clone()
        } else {
            apt.candidate(&p)?.version
        };
        wanted.push((p, version));
    }
    let debs_dir = tmp.join("debs");
    fs::create_dir(&debs_dir).map_err(io_err(&debs_dir))?;
    let debs = apt.download(&debs_dir, &wanted)?;
    if debs.len() != wanted.len() {
        return Err(KernelError::Layout {
            path: debs_dir,
            what: format!("expected {} .deb files, found {}", wanted.len(), debs.len()),
        });
    }
    let root = tmp.join("root");
    fs::create_dir(&root).map_err(io_err(&root))?;
    for deb in &debs {
        dpkg_extract_cmd(deb, &root).run()?;
    }
    fs::remove_dir_all(&debs_dir).map_err(io_err(&debs_dir))?;

    let found = find_layout(&root)?;
    if let Some(m) = &found.modules_dir {
        // depmod -b ROOT looks in ROOT/lib/modules; the split layout uses
        // ROOT/usr/lib/modules only.
        let lib = root.join("lib");
        if m.starts_with(root.join("usr/lib")) && fs::symlink_metadata(&lib).is_err() {
            std::os::unix::fs::symlink("usr/lib", &lib).map_err(io_err(&lib))?;
        }
        depmod_cmd(&root, &found.release).run()?;
    }
    let rel = |p: &Path| {
        p.strip_prefix(tmp)
            .map(Path::to_path_buf)
            .unwrap_or_default()
    };
    let kernel = Kernel {
        release: found.release.clone(),
        source: KernelSource::Debian {
            package: image.package.clone(),
            version: image.version.clone(),
        },
        bzimage: rel(&found.bzimage),
        modules_dir: found.modules_dir.as_deref().map(rel),
        config: found.config.as_deref().map(rel),
    };
    let manifest = tmp.join(MANIFEST);
    let json = serde_json::to_string_pretty(&kernel).expect("Kernel serializes");
    fs::write(&manifest, json + "\n").map_err(io_err(&manifest))
}

struct Layout {
    release: String,
    bzimage: PathBuf,
    modules_dir: Option<PathBuf>,
    config: Option<PathBuf>,
}

/// Finds the bzImage, modules and config in an unpacked package root.
fn find_layout(root: &Path) -> Result<Layout, KernelError> {
    let mut candidates = Vec::new();
    let boot = root.join("boot");
    if let Ok(rd) = fs::read_dir(&boot) {
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().starts_with("vmlinuz-") {
                candidates.push(e.path());
            }
        }
    }
    for base in ["usr/lib/modules", "lib/modules"] {
        if let Ok(rd) = fs::read_dir(root.join(base)) {
            for e in rd.flatten() {
                let v = e.path().join("vmlinuz");
                if v.is_file() {
                    candidates.push(v);
                }
            }
        }
    }
    candidates.sort();
    let bzimage = match candidates.as_slice() {
        [one] => one.clone(),
        [] => {
            return Err(KernelError::Layout {
                path: root.to_path_buf(),
                what: "no boot/vmlinuz-* or lib/modules/*/vmlinuz in the unpacked packages".into(),
            })
        }
        many => {
            return Err(KernelError::Layout {
                path: root.to_path_buf(),
                what: format!("several kernel images: {many:?}"),
            })
        }
    };
    let release = bzimage_release(&bzimage).map_err(|e| KernelError::Layout {
        path: bzimage.clone(),
        what: e.to_string(),
    })?;
    let modules_dir = ["usr/lib/modules", "lib/modules"]
        .iter()
        .map(|b| root.join(b).join(&release))
        .find(|d| d.join("kernel").is_dir());
    let config = [
        Some(boot.join(format!("config-{release}"))),
        modules_dir.as_ref().map(|m| m.join("config")),
    ]
    .into_iter()
    .flatten()
    .find(|p| p.is_file());
    Ok(Layout {
        release,
        bzimage,
        modules_dir,
        config,
    })
}

fn load_manifest(dir: &Path) -> Result<Kernel, KernelError> {
    let path = dir.join(MANIFEST);
    let text = fs::read_to_string(&path).map_err(io_err(&path))?;
    let mut k: Kernel = serde_json::from_str(&text).map_err(|source| KernelError::Manifest {
        path: path.clone(),
        source,
    })?;
    k.bzimage = dir.join(&k.bzimage);
    k.modules_dir = k.modules_dir.map(|m| dir.join(m));
    k.config = k.config.map(|c| dir.join(c));
    Ok(k)
}

/// A user's own kernel. The release is read from the bzImage's header.
///
/// `modules` may be the `lib/modules/<release>` directory itself, its parent
/// `lib/modules`, or a root containing `lib/modules/<release>` or
/// `usr/lib/modules/<release>`. Without `config`, `config-<release>` next to
/// the bzImage or `config` in the modules directory is used if present.
pub fn local(
    bzimage: &Path,
    modules: Option<PathBuf>,
    config: Option<PathBuf>,
) -> Result<Kernel, KernelError> {
    let local_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| KernelError::Local { path, source }
    };
    let bz = std::path::absolute(bzimage).map_err(local_err(bzimage))?;
    let release = match bzimage_release(&bz) {
        Err(KernelError::Io { source, .. }) => return Err(local_err(bzimage)(source)),
        other => other?,
    };
    let modules_dir = match &modules {
        None => None,
        Some(m) => Some(find_local_modules(m, &release)?),
    };
    let config = match config {
        Some(c) => {
            fs::metadata(&c)
                .and_then(|m| {
                    if m.is_file() {
                        Ok(())
                    } else {
                        Err(io::Error::new(io::ErrorKind::InvalidInput, "not a file"))
                    }
                })
                .map_err(local_err(&c))?;
            Some(std::path::absolute(&c).map_err(local_err(&c))?)
        }
        None => [
            bz.parent().map(|d| d.join(format!("config-{release}"))),
            modules_dir.as_ref().map(|m| m.join("config")),
        ]
        .into_iter()
        .flatten()
        .find(|p| p.is_file()),
    };
    Ok(Kernel {
        release,
        source: KernelSource::Local {
            path: bzimage.to_path_buf(),
        },
        bzimage: bz,
        modules_dir,
        config,
    })
}

fn find_local_modules(given: &Path, release: &str) -> Result<PathBuf, KernelError> {
    let m = std::path::absolute(given).map_err(|source| KernelError::Local {
        path: given.to_path_buf(),
        source,
    })?;
    let candidates = [
        m.clone(),
        m.join(release),
        m.join("lib/modules").join(release),
        m.join("usr/lib/modules").join(release),
    ];
    candidates
        .into_iter()
        .find(|d| d.join("modules.dep").is_file() || d.join("kernel").is_dir())
        .ok_or_else(|| KernelError::NoLocalModules {
            path: given.to_path_buf(),
            release: release.to_string(),
        })
}

/// The Debian kernel of `suite` (its `linux-image-amd64`), fetched into the cache: with the
/// host's own apt state for the host's suite, else with a private state following `suite`
/// on the host's mirror.
pub fn debian_of_suite(cache: &Cache, suite: &str) -> Result<Kernel, KernelError> {
    let host = crate::apt::host_codename().ok();
    let apt = if host.as_deref() == Some(suite) {
        crate::apt_get::Apt::host()
    } else {
        crate::apt_get::Apt::for_suite(cache, suite)?
    };
    debian(cache, &apt, DEFAULT_PACKAGE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apt_get::Candidate;

    fn fake_bzimage(path: &Path, release: &str) {
        let mut b = vec![0u8; 0x1000];
        b[0x1FE] = 0x55;
        b[0x1FF] = 0xAA;
        b[0x202..0x206].copy_from_slice(b"HdrS");
        b[0x20E..0x210].copy_from_slice(&0x200u16.to_le_bytes());
        let v = format!("{release} (test@example) #1 SMP");
        b[0x400..0x400 + v.len()].copy_from_slice(v.as_bytes());
        fs::write(path, b).unwrap();
    }

    #[test]
    fn local_kernel_with_modules_root_and_sibling_config() {
        let t = tempfile::tempdir().unwrap();
        let bz = t.path().join("vmlinuz-6.9.0-test");
        fake_bzimage(&bz, "6.9.0-test");
        fs::write(t.path().join("config-6.9.0-test"), "CONFIG_TUN=m\n").unwrap();
        let mods = t.path().join("root/lib/modules/6.9.0-test");
        fs::create_dir_all(mods.join("kernel")).unwrap();
        let k = local(&bz, Some(t.path().join("root")), None).unwrap();
        assert_eq!(k.release, "6.9.0-test");
        assert_eq!(k.modules_dir.as_deref(), Some(mods.as_path()));
        assert_eq!(
            k.config.as_deref(),
            Some(t.path().join("config-6.9.0-test").as_path())
        );
        let cfg = k.config_map().unwrap().unwrap();
        assert_eq!(cfg["CONFIG_TUN"], kconfig::ConfigValue::Module);
        assert_eq!(k.source, KernelSource::Local { path: bz.clone() });
    }

    #[test]
    fn local_errors_name_the_path() {
        let t = tempfile::tempdir().unwrap();
        let not = t.path().join("not-a-kernel");
        fs::write(&not, vec![1u8; 5000]).unwrap();
        let e = local(&not, None, None).unwrap_err();
        assert!(e.is_bad_input());
        let e = e.to_string();
        assert!(e.contains("not-a-kernel is not a bzImage"), "{e}");

        let bz = t.path().join("bz");
        fake_bzimage(&bz, "6.9.0");
        let e = local(&bz, Some(t.path().to_path_buf()), None).unwrap_err();
        assert!(e.is_bad_input());
        let e = e.to_string();
        assert!(e.contains("no modules for release 6.9.0"), "{e}");
        let e = local(&t.path().join("missing"), None, None).unwrap_err();
        assert!(e.is_bad_input(), "{e:?}");
        assert!(e.to_string().contains("missing"), "{e}");
        let e = local(&bz, None, Some(t.path().join("no-config"))).unwrap_err();
        assert!(
            e.is_bad_input() && e.to_string().contains("no-config"),
            "{e}"
        );
    }

    #[test]
    fn parts_of_split_and_classic_images() {
        let classic = Candidate {
            package: "linux-image-6.1.0-56-amd64".into(),
            version: "6.1.192-2".into(),
            depends: vec![
                vec!["kmod".into()],
                vec!["initramfs-tools".into(), "linux-initramfs-tool".into()],
            ],
        };
        assert_eq!(image_parts(&classic), vec!["linux-image-6.1.0-56-amd64"]);
        let split = Candidate {
            package: "linux-image-7.2.13+deb14-amd64".into(),
            version: "7.2.13-1".into(),
            depends: vec![
                vec!["dracut".into(), "initramfs-tools".into()],
                vec!["linux-base-7.2.13+deb14-amd64".into()],
                vec!["linux-binary-7.2.13+deb14-amd64".into()],
                vec!["linux-modules-7.2.13+deb14-amd64".into()],
            ],
        };
        assert_eq!(
            image_parts(&split),
            vec![
                "linux-image-7.2.13+deb14-amd64",
                "linux-base-7.2.13+deb14-amd64",
                "linux-binary-7.2.13+deb14-amd64",
                "linux-modules-7.2.13+deb14-amd64"
            ]
        );
    }

    #[test]
    fn layouts_are_found() {
        // classic
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        fs::create_dir_all(r.join("boot")).unwrap();
        fs::create_dir_all(r.join("lib/modules/6.1.0-1-amd64/kernel")).unwrap();
        fake_bzimage(&r.join("boot/vmlinuz-6.1.0-1-amd64"), "6.1.0-1-amd64");
        fs::write(r.join("boot/config-6.1.0-1-amd64"), "").unwrap();
        let l = find_layout(r).unwrap();
        assert_eq!(l.release, "6.1.0-1-amd64");
        assert_eq!(l.modules_dir, Some(r.join("lib/modules/6.1.0-1-amd64")));
        assert_eq!(l.config, Some(r.join("boot/config-6.1.0-1-amd64")));
        // split
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        let m = r.join("usr/lib/modules/7.2.13+deb14-amd64");
        fs::create_dir_all(m.join("kernel")).unwrap();
        fake_bzimage(&m.join("vmlinuz"), "7.2.13+deb14-amd64");
        fs::write(m.join("config"), "").unwrap();
        let l = find_layout(r).unwrap();
        assert_eq!(l.bzimage, m.join("vmlinuz"));
        assert_eq!(l.modules_dir, Some(m.clone()));
        assert_eq!(l.config, Some(m.join("config")));
    }

    #[test]
    fn source_serializes_tagged() {
        let s = serde_json::to_value(KernelSource::Debian {
            package: "linux-image-6.1.0-56-amd64".into(),
            version: "6.1.192-2".into(),
        })
        .unwrap();
        assert_eq!(
            s,
            serde_json::json!({"kind": "debian", "package": "linux-image-6.1.0-56-amd64", "version": "6.1.192-2"})
        );
    }
}
