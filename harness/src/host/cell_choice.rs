//! Choosing a cell: which kernel (`--kernel NAME|PATH`) and which guest userland
//! (`--userland NAME`). Every command that runs or checks a cell resolves a [`CellSpec`];
//! `crtest matrix` parses its lists with the same functions.
//!
//! A kernel NAME is a Debian suite (`bookworm`, `bookworm-backports`, `trixie`, `sid`): its
//! `linux-image-amd64` is fetched with the host's apt configuration, only the suite changed
//! (`Apt::for_suite`). A PATH is a bzImage, or a directory holding `bzImage` (with `config`
//! and `lib/modules/<release>` beside it: what `crtest kernel build` prints). A userland NAME
//! is a Debian suite, built once with mmdebstrap and cached.

use crate::host::vm_run::{CriuChoice, KernelChoice};
use std::path::{Path, PathBuf};

/// Kernel suites this harness is tried with (others that look like a suite are accepted).
pub const KNOWN_KERNELS: &[&str] = &["bookworm", "bookworm-backports", "trixie", "sid"];
/// Userland suites this harness is tried with, and the C/R tools each brings.
pub const KNOWN_USERLANDS: &[(&str, &str)] = &[
    ("bookworm", "criu 3.17, lxc 5.0"),
    ("trixie", "criu 4.1, lxc 6.0"),
    ("sid", "criu 4.2, lxc 7.0"),
];

/// A cell as named on a command line (`--kernel`, `--modules`, `--config`, `--userland`,
/// `--criu`): unchecked names, resolved by [`CellSpec::choice`].
#[derive(Debug, Clone, Default)]
pub struct CellSpec {
    /// A Debian suite, or the path of a bzImage or of a `crtest kernel build` directory.
    pub kernel: Option<String>,
    /// The modules of a kernel path.
    pub modules: Option<PathBuf>,
    /// The .config of a kernel path.
    pub config: Option<PathBuf>,
    /// The guest userland, a Debian suite.
    pub userland: Option<String>,
    /// `package`, a suite name, or a CRIU source tree.
    pub criu: Option<String>,
}

/// A criu as named on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CriuName {
    /// A userland's own package: `package`, or a suite name (which pairs only with that
    /// userland).
    Package(Option<String>),
    /// A CRIU source tree.
    Tree(PathBuf),
}

/// Parses a criu SOURCE: `package`/`debian`, a path (has a `/` or exists), or a suite name.
pub fn parse_criu(s: &str) -> Result<CriuName, CellChoiceError> {
    if s == "package" || s == "debian" {
        return Ok(CriuName::Package(None));
    }
    if s.contains('/') || Path::new(s).exists() {
        return Ok(CriuName::Tree(PathBuf::from(s)));
    }
    if is_suite_name(s) {
        return Ok(CriuName::Package(Some(s.to_string())));
    }
    Err(CellChoiceError::BadCriu(s.to_string()))
}

/// The criu of a cell with `userland`; `None` when the name does not pair with it (the
/// package of another suite).
pub fn criu_for(name: &CriuName, userland: &str) -> Option<CriuChoice> {
    match name {
        CriuName::Package(Some(s)) if s != userland => None,
        CriuName::Package(_) => Some(CriuChoice::Package),
        CriuName::Tree(p) => Some(CriuChoice::Tree(p.clone())),
    }
}

/// A short label of a criu for cell ids: `None` for a package, the tree's revision
/// (`v4.1.1`, a commit or hash prefix) for a tree, or its directory's name when the tree
/// cannot be read (the preparation then says why).
pub fn criu_label(name: &CriuName) -> Option<String> {
    match name {
        CriuName::Package(_) => None,
        CriuName::Tree(p) => Some(
            crtest_vm::criu_tree::inspect(p)
                .map(|t| t.revision.short())
                .unwrap_or_else(|_| {
                    p.file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_else(|| p.display().to_string())
                }),
        ),
    }
}

/// A kernel as named on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelName {
    /// A Debian suite.
    Suite(String),
    /// A bzImage, or a directory holding one.
    Path(PathBuf),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CellChoiceError {
    #[error(
        "--kernel `{0}`: neither a Debian suite name ({known}) nor an existing file",
        known = KNOWN_KERNELS.join(", ")
    )]
    BadKernel(String),
    #[error(
        "--userland `{0}`: not a Debian suite name ({known})",
        known = KNOWN_USERLANDS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
    )]
    BadUserland(String),
    #[error(
        "--criu `{0}`: neither `package`, a Debian suite name nor the path of a CRIU source tree"
    )]
    BadCriu(String),
    #[error(
        "--criu `{criu}`: the packaged criu of a suite comes with its userland (here `{userland}`): \
         use --userland {criu}, `package`, or a CRIU source tree"
    )]
    CriuOfOtherSuite { criu: String, userland: String },
    #[error("--modules and --config go with --kernel PATH, not with the Debian suite `{0}`")]
    ExtrasWithSuite(String),
    #[error("{0}: a kernel directory must hold `bzImage` (as `crtest kernel build` leaves it)")]
    NoBzImageInDir(PathBuf),
    #[error("empty {0} list")]
    Empty(&'static str),
    #[error(
        "{flag} `{suite}`: the mirror ({mirror}) has no such suite; cr-tests knows {known}",
        known = KNOWN_KERNELS.join(", ")
    )]
    NoSuchSuite {
        flag: &'static str,
        suite: String,
        mirror: String,
    },
}

/// Checks, before anything is built, that the mirror has every Debian suite named as a
/// kernel or a userland (a typo would otherwise surface minutes later as apt's or
/// mmdebstrap's failure). A check that cannot be made (no network, no cache) is left to
/// the preparation, which reports it.
pub fn check_suites(
    kernels: &[KernelName],
    userlands: &[String],
    flags: (&'static str, &'static str),
) -> Result<(), CellChoiceError> {
    let Ok(cache) = crtest_vm::cache::Cache::from_env() else {
        return Ok(());
    };
    let named = kernels
        .iter()
        .filter_map(|k| match k {
            KernelName::Suite(s) => Some((flags.0, s)),
            KernelName::Path(_) => None,
        })
        .chain(userlands.iter().map(|u| (flags.1, u)));
    let mut seen: Vec<&String> = Vec::new();
    for (flag, suite) in named {
        if seen.contains(&suite) {
            continue;
        }
        seen.push(suite);
        if let Ok(false) = crtest_vm::apt_get::mirror_has_suite(&cache, suite) {
            return Err(CellChoiceError::NoSuchSuite {
                flag,
                suite: suite.clone(),
                mirror: crtest_vm::apt_get::mirror_of(suite),
            });
        }
    }
    Ok(())
}

/// Whether `s` looks like a Debian suite name: lowercase words joined by `-`.
pub fn is_suite_name(s: &str) -> bool {
    !s.is_empty()
        && s.split('-').all(|w| {
            !w.is_empty()
                && w.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        })
        && s.starts_with(|c: char| c.is_ascii_lowercase())
}

/// Parses a kernel NAME|PATH: a path when it names an existing file or directory or has a
/// `/` in it, else a suite name.
pub fn parse_kernel(s: &str) -> Result<KernelName, CellChoiceError> {
    let p = Path::new(s);
    if s.contains('/') || p.exists() {
        return Ok(KernelName::Path(p.to_path_buf()));
    }
    if is_suite_name(s) {
        return Ok(KernelName::Suite(s.to_string()));
    }
    Err(CellChoiceError::BadKernel(s.to_string()))
}

/// Checks a userland NAME.
pub fn parse_userland(s: &str) -> Result<String, CellChoiceError> {
    if is_suite_name(s) {
        Ok(s.to_string())
    } else {
        Err(CellChoiceError::BadUserland(s.to_string()))
    }
}

/// The kernel choice for a name, with the modules and config of a path kernel. A directory
/// stands for `DIR/bzImage` with `DIR/config` and the modules under `DIR/lib/modules`.
pub fn kernel_choice(
    name: &KernelName,
    modules: Option<PathBuf>,
    config: Option<PathBuf>,
) -> Result<KernelChoice, CellChoiceError> {
    match name {
        KernelName::Suite(s) => {
            if modules.is_some() || config.is_some() {
                return Err(CellChoiceError::ExtrasWithSuite(s.clone()));
            }
            Ok(KernelChoice::Suite(s.clone()))
        }
        KernelName::Path(p) if p.is_dir() => {
            let bzimage = p.join("bzImage");
            if !bzimage.is_file() {
                return Err(CellChoiceError::NoBzImageInDir(p.clone()));
            }
            let dir_config = p.join("config");
            Ok(KernelChoice::Local {
                bzimage,
                modules: modules.or_else(|| p.join("lib/modules").is_dir().then(|| p.clone())),
                config: config.or_else(|| dir_config.is_file().then_some(dir_config)),
            })
        }
        KernelName::Path(p) => Ok(KernelChoice::Local {
            bzimage: p.clone(),
            modules,
            config,
        }),
    }
}

/// A short label of a kernel for cell ids and report headers: the suite name, or for a path
/// the release read from its bzImage (the file name when that cannot be read).
pub fn kernel_label(name: &KernelName) -> String {
    match name {
        KernelName::Suite(s) => s.clone(),
        KernelName::Path(p) => {
            let bz = if p.is_dir() {
                p.join("bzImage")
            } else {
                p.clone()
            };
            crtest_vm::kernel::bzimage_release(&bz).unwrap_or_else(|_| {
                p.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| p.display().to_string())
            })
        }
    }
}

/// The resolved choice of one cell.
#[derive(Debug, Clone)]
pub struct CellChoice {
    pub kernel: KernelChoice,
    /// The kernel's name for reports (suite, or release of a path kernel).
    pub kernel_label: String,
    /// The userland suite.
    pub userland: String,
    pub criu: CriuChoice,
}

/// Why a [`CellSpec`] names no cell.
#[derive(Debug, thiserror::Error)]
pub enum ChoiceError {
    #[error(transparent)]
    Cell(#[from] CellChoiceError),
    #[error("cannot tell the host's Debian suite (the default kernel and userland)")]
    HostSuite(#[source] crtest_vm::apt::AptError),
}

impl ChoiceError {
    /// Whether the command line is at fault (not the host).
    pub fn is_bad_input(&self) -> bool {
        matches!(self, ChoiceError::Cell(_))
    }
}

impl CellSpec {
    /// Resolves the names, taking the host's suite for what is not given.
    pub fn choice(&self) -> Result<CellChoice, ChoiceError> {
        let host = || crtest_vm::apt::host_suite().map_err(ChoiceError::HostSuite);
        let userland = match &self.userland {
            Some(u) => parse_userland(u)?,
            None => host()?,
        };
        let (kernel, kernel_label) = match &self.kernel {
            None => (KernelChoice::Debian, host()?),
            Some(k) => {
                let name = parse_kernel(k)?;
                let choice = kernel_choice(&name, self.modules.clone(), self.config.clone())?;
                (choice, kernel_label(&name))
            }
        };
        let criu = match &self.criu {
            None => CriuChoice::Package,
            Some(c) => {
                let name = parse_criu(c)?;
                criu_for(&name, &userland).ok_or_else(|| CellChoiceError::CriuOfOtherSuite {
                    criu: c.clone(),
                    userland: userland.clone(),
                })?
            }
        };
        Ok(CellChoice {
            kernel,
            kernel_label,
            userland,
            criu,
        })
    }
}

/// Splits and checks a comma-separated list given to `--kernels`.
pub fn parse_kernel_list(items: &[String]) -> Result<Vec<KernelName>, CellChoiceError> {
    let items: Vec<&String> = items.iter().filter(|s| !s.trim().is_empty()).collect();
    if items.is_empty() {
        return Err(CellChoiceError::Empty("--kernels"));
    }
    items.iter().map(|s| parse_kernel(s.trim())).collect()
}

/// Splits and checks a comma-separated list given to `--criu` (default: the packages).
pub fn parse_criu_list(items: &[String]) -> Result<Vec<CriuName>, CellChoiceError> {
    let items: Vec<&String> = items.iter().filter(|s| !s.trim().is_empty()).collect();
    if items.is_empty() {
        return Ok(vec![CriuName::Package(None)]);
    }
    items.iter().map(|s| parse_criu(s.trim())).collect()
}

/// Splits and checks a comma-separated list given to `--userlands`.
pub fn parse_userland_list(items: &[String]) -> Result<Vec<String>, CellChoiceError> {
    let items: Vec<&String> = items.iter().filter(|s| !s.trim().is_empty()).collect();
    if items.is_empty() {
        return Err(CellChoiceError::Empty("--userlands"));
    }
    items.iter().map(|s| parse_userland(s.trim())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn spec(kernel: Option<&str>, userland: &str, criu: Option<&str>) -> CellSpec {
        CellSpec {
            kernel: kernel.map(String::from),
            userland: Some(userland.into()),
            criu: criu.map(String::from),
            ..CellSpec::default()
        }
    }

    #[rstest]
    #[case("bookworm", true)]
    #[case("bookworm-backports", true)]
    #[case("sid", true)]
    #[case("Sid", false)]
    #[case("-sid", false)]
    #[case("sid-", false)]
    #[case("", false)]
    #[case("6.1", false)]
    fn suite_names(#[case] s: &str, #[case] ok: bool) {
        assert_eq!(is_suite_name(s), ok);
    }

    #[test]
    fn kernel_names_and_paths() {
        assert_eq!(
            parse_kernel("trixie").unwrap(),
            KernelName::Suite("trixie".into())
        );
        assert_eq!(
            parse_kernel("./bzImage").unwrap(),
            KernelName::Path("./bzImage".into())
        );
        let e = parse_kernel("linux_6.1").unwrap_err().to_string();
        assert!(e.contains("neither a Debian suite name"), "{e}");
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("bzImage"), "x").unwrap();
        std::fs::write(t.path().join("config"), "CONFIG_A=y\n").unwrap();
        let name = parse_kernel(t.path().to_str().unwrap()).unwrap();
        match kernel_choice(&name, None, None).unwrap() {
            KernelChoice::Local {
                bzimage,
                modules,
                config,
            } => {
                assert_eq!(bzimage, t.path().join("bzImage"));
                assert_eq!(modules, None);
                assert_eq!(config, Some(t.path().join("config")));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            kernel_choice(&KernelName::Suite("sid".into()), Some("/m".into()), None).unwrap_err(),
            CellChoiceError::ExtrasWithSuite("sid".into())
        );
        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(
            kernel_choice(&KernelName::Path(empty.path().into()), None, None),
            Err(CellChoiceError::NoBzImageInDir(_))
        ));
    }

    #[test]
    fn a_spec_resolves_to_a_cell() {
        let c = spec(Some("sid"), "trixie", None).choice().unwrap();
        assert_eq!(c.kernel_label, "sid");
        assert_eq!(c.userland, "trixie");
        assert!(matches!(c.kernel, KernelChoice::Suite(ref s) if s == "sid"));
        let e = spec(None, "Trixie", None).choice().unwrap_err();
        assert!(e.is_bad_input());
        assert!(e.to_string().contains("not a Debian suite name"), "{e}");
    }

    #[test]
    fn criu_sources() {
        assert_eq!(parse_criu("package").unwrap(), CriuName::Package(None));
        assert_eq!(
            parse_criu("bookworm").unwrap(),
            CriuName::Package(Some("bookworm".into()))
        );
        assert_eq!(
            parse_criu("../criu").unwrap(),
            CriuName::Tree("../criu".into())
        );
        assert!(parse_criu("Criu!").is_err());
        let own = CriuName::Package(Some("bookworm".into()));
        assert_eq!(criu_for(&own, "bookworm"), Some(CriuChoice::Package));
        assert_eq!(criu_for(&own, "trixie"), None);
        let e = spec(None, "bookworm", Some("sid")).choice().unwrap_err();
        assert!(e.to_string().contains("use --userland sid"), "{e}");
        let c = spec(None, "trixie", Some("/src/criu")).choice().unwrap();
        assert_eq!(c.criu, CriuChoice::Tree("/src/criu".into()));
        assert_eq!(
            parse_criu_list(&[]).unwrap(),
            [CriuName::Package(None)].to_vec()
        );
        assert_eq!(
            criu_label(&CriuName::Tree("/nonexistent/criu-4.2".into())).as_deref(),
            Some("criu-4.2")
        );
    }

    #[test]
    fn lists() {
        let k = parse_kernel_list(&["bookworm".into(), " sid ".into()]).unwrap();
        assert_eq!(k[1], KernelName::Suite("sid".into()));
        assert_eq!(
            parse_userland_list(&[]).unwrap_err(),
            CellChoiceError::Empty("--userlands")
        );
    }
}
