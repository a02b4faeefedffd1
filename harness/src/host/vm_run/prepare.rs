//! Preparing a cell: the kernel, the userland (and criu built from a tree), the guest
//! binaries and initramfs, QEMU and its accelerator, zdtm's tests; each cached under a key of
//! its inputs.

use crate::guest::setup::paths;
use crate::host::guest_build::{self, GuestBinaries};
use crate::report::progress::{Progress, Reporter};
use crate::results::run::CellReport;
use crtest_vm::cache::Cache;
use crtest_vm::kernel::Kernel;
use crtest_vm::qemu::{self, AccelChoice};
use crtest_vm::userland::Userland;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Modules the agent loads from the initramfs to reach its root and shares.
pub const BOOT_MODULES: &[&str] = &[
    "virtio_pci",
    "virtio_blk",
    "crc32c",
    "ext4",
    "9pnet_virtio",
    "9p",
];

/// Time for a guest to boot to the agent's ready event.
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, Clone)]
pub enum KernelChoice {
    /// The Debian kernel of the host's suite.
    Debian,
    /// The Debian kernel (`linux-image-amd64`) of this suite, on the host's mirror.
    Suite(String),
    /// A user's bzImage with optional modules dir (`lib/modules/<release>`) and config.
    Local {
        bzimage: PathBuf,
        modules: Option<PathBuf>,
        config: Option<PathBuf>,
    },
}

/// Which criu the guest runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum CriuChoice {
    /// The userland's own package.
    #[default]
    Package,
    /// Built from this CRIU source tree for the userland's suite, in place of the package's.
    Tree(PathBuf),
}

#[derive(Debug, Clone)]
pub struct CellOptions {
    pub kernel: KernelChoice,
    /// Debian suite of the guest userland; the host's when None.
    pub suite: Option<String>,
    pub criu: CriuChoice,
    /// A CRIU tree whose zdtm tests the cell's guests get (built for the userland's suite).
    pub zdtm: Option<PathBuf>,
    pub memory_mib: u32,
    pub cpus: u32,
    /// QEMU's CPU model for the guests (`--cpu`); `None` is QEMU's `max` (TCG) or `host`.
    pub cpu: Option<String>,
    /// The userland variants the run's scenarios need: their images are built while the
    /// rest is prepared, not when a guest first reaches them.
    pub variants: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error("--cpu `{model}`: QEMU has no such CPU model (`qemu-system-x86_64 -cpu help` lists them{like})")]
    CpuModel { model: String, like: String },
    #[error(transparent)]
    HostDeps(#[from] crtest_vm::hostdeps::HostDepsError),
    #[error("host apt configuration: {0}")]
    Apt(#[from] crtest_vm::apt::AptError),
    #[error("kernel: {0}")]
    Kernel(#[from] crtest_vm::kernel::KernelError),
    #[error("userland: {0}")]
    Userland(#[from] crtest_vm::userland::UserlandError),
    #[error("guest binaries: {0}")]
    GuestBuild(#[from] guest_build::GuestBuildError),
    #[error("initramfs: {0}")]
    Initramfs(String),
    #[error("uncompressed kernel: {0}")]
    Vmlinux(#[from] crtest_vm::vmlinux::VmlinuxError),
    #[error("cache: {0}")]
    Cache(#[from] crtest_vm::cache::CacheError),
    #[error("--criu: {0}")]
    CriuTree(#[from] crtest_vm::criu_tree::TreeError),
    #[error("--criu: {0}")]
    CriuBuild(Box<crtest_vm::criu_build::CriuBuildError>),
    #[error("--zdtm: {0}")]
    ZdtmBuild(Box<crtest_vm::criu_build::CriuBuildError>),
}

impl From<crtest_vm::criu_build::CriuBuildError> for PrepareError {
    fn from(e: crtest_vm::criu_build::CriuBuildError) -> Self {
        PrepareError::CriuBuild(Box::new(e))
    }
}

impl PrepareError {
    /// Whether the input is at fault (a user's kernel or CRIU tree that is not one), not
    /// the host.
    pub fn is_bad_input(&self) -> bool {
        match self {
            PrepareError::CpuModel { .. } => true,
            PrepareError::Kernel(e) => e.is_bad_input(),
            PrepareError::CriuTree(e) => e.is_bad_input(),
            PrepareError::CriuBuild(e) | PrepareError::ZdtmBuild(e) => e.is_bad_input(),
            _ => false,
        }
    }
}

/// Everything needed to boot one kernel x userland pairing.
#[derive(Debug, Clone)]
pub struct Cell {
    pub id: String,
    pub kernel: Kernel,
    /// What QEMU boots: the kernel's uncompressed vmlinux (PVH entry) when it has one,
    /// else the bzImage.
    pub boot_image: PathBuf,
    pub userland: Userland,
    /// The criu the guest runs.
    pub criu: CellCriu,
    /// zdtm's tests built for the userland, when the run has `--zdtm`.
    pub zdtm: Option<crtest_vm::zdtm_build::ZdtmBuild>,
    pub initrd: PathBuf,
    /// The directory shared as the guest's `/lib/modules`.
    pub modules_share: PathBuf,
    pub accel: AccelChoice,
    pub qemu_version: Option<String>,
    pub prepare_ms: u64,
    pub missing_options: Vec<String>,
    pub memory_mib: u32,
    pub cpus: u32,
    /// QEMU's CPU model of the guests; `None` for the default.
    pub cpu: Option<String>,
    /// Things the host noticed while preparing (modules left out, ...).
    pub notes: Vec<String>,
    /// Time for a guest to become ready (default [`BOOT_TIMEOUT`]).
    pub boot_timeout: Duration,
    /// Keep criu images of passing scenarios too.
    pub keep_images: bool,
    /// A guest of its own for every scenario (`--pristine`).
    pub pristine: bool,
    /// Guests resumed from a saved ready state; `None` boots every guest (`--boot-each`).
    pub saved_vms: Option<crate::host::resume::SavedVms>,
}

/// The criu of a cell: the package's, or one built from a tree.
#[derive(Debug, Clone)]
pub struct CellCriu {
    /// Its version: the package's (`3.17.1-2+deb12u2`) or the tree's (`4.1.1`).
    pub version: Option<String>,
    /// `debian:criu=<version>`, or the tree's `git:<commit>[+dirty]` / `tree:<hash>`.
    pub source: Option<String>,
    /// The build, when from a tree.
    pub build: Option<crtest_vm::criu_build::CriuBuild>,
}

impl CellCriu {
    fn of_package(userland: &Userland) -> CellCriu {
        let version = userland.packages.get("criu").cloned();
        CellCriu {
            source: version.as_ref().map(|v| format!("debian:criu={v}")),
            version,
            build: None,
        }
    }

    fn of_build(build: crtest_vm::criu_build::CriuBuild) -> CellCriu {
        CellCriu {
            version: Some(build.version.clone()),
            source: Some(build.source.clone()),
            build: Some(build),
        }
    }

    /// What a cell id adds for it: nothing for the package, `+criu-<revision>` for a tree.
    pub fn id_suffix(&self) -> String {
        self.build
            .as_ref()
            .map(|b| format!("+criu-{}", b.short))
            .unwrap_or_default()
    }
}

/// A cell's id: `<kernel release>+<suite>[+criu-<rev>][+cpu-<model>]`.
fn cell_id(release: &str, suite: &str, criu: &CellCriu, cpu: Option<&str>) -> String {
    let cpu = cpu.map(|m| format!("+cpu-{m}")).unwrap_or_default();
    format!("{release}+{suite}{}{cpu}", criu.id_suffix())
}

/// A CPU model QEMU knows (when QEMU cannot be asked, the boot says what is wrong).
fn check_cpu_model(model: &str) -> Result<(), PrepareError> {
    let help = crtest_vm::command::run(
        "qemu-system-x86_64",
        &["-cpu".into(), "help".into()],
        Duration::from_secs(10),
    );
    let Ok(help) = help else { return Ok(()) };
    let known = qemu::cpu_models(&help.output);
    if known.is_empty() || known.iter().any(|k| k == model) {
        return Ok(());
    }
    let lower = model.to_lowercase();
    let like: Vec<&str> = known
        .iter()
        .filter(|k| {
            let k = k.to_lowercase();
            k.contains(&lower) || lower.contains(&k)
        })
        .map(String::as_str)
        .take(6)
        .collect();
    Err(PrepareError::CpuModel {
        model: model.into(),
        like: match like.is_empty() {
            true => String::new(),
            false => format!("; like it: {}", like.join(", ")),
        },
    })
}

/// `f`'s result and how long it took (ms).
fn timed<T>(f: impl FnOnce() -> Result<T, PrepareError>) -> (Result<T, PrepareError>, u64) {
    let t = Instant::now();
    (f(), t.elapsed().as_millis() as u64)
}

/// A scoped thread's value; its panic goes on in the caller.
fn joined<T>(h: std::thread::ScopedJoinHandle<'_, T>) -> T {
    h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
}

/// Fetches or finds every image the cell needs (each cached under a key of its inputs).
pub fn prepare(opts: &CellOptions, reporter: &mut dyn Reporter) -> Result<Cell, PrepareError> {
    let start = Instant::now();
    if let Some(model) = &opts.cpu {
        check_cpu_model(model)?;
    }
    // A criu tree that is not one is bad input: said before anything is installed or built.
    let tree = match &opts.criu {
        CriuChoice::Package => None,
        CriuChoice::Tree(dir) => Some(crtest_vm::criu_tree::inspect(dir)?),
    };
    let zdtm_tree = match &opts.zdtm {
        None => None,
        Some(dir) => Some(crtest_vm::criu_tree::inspect(dir).map_err(|e| {
            PrepareError::ZdtmBuild(Box::new(crtest_vm::criu_build::CriuBuildError::Tree(e)))
        })?),
    };
    crtest_vm::hostdeps::ensure(crtest_vm::hostdeps::DEFAULT_TOOLS)?;
    let cache = Cache::from_env()?;
    let suite = match &opts.suite {
        Some(s) => s.clone(),
        None => crtest_vm::apt::host_suite()?,
    };
    // The kernel (network), the userland (mmdebstrap), the guest binaries (the compiler) and
    // a criu tree's build do not need each other: they are prepared at once, each reported
    // with its own time.
    announce(reporter, &suite, tree.as_ref(), zdtm_tree.as_ref());
    let (kernel, userland, bins, criu, zdtm) = std::thread::scope(|s| {
        let kernel = s.spawn(|| {
            timed(|| {
                let kernel = match &opts.kernel {
                    KernelChoice::Debian => crtest_vm::kernel::debian_default(&cache)?,
                    KernelChoice::Suite(suite) => {
                        crtest_vm::kernel::debian_of_suite(&cache, suite)?
                    }
                    KernelChoice::Local {
                        bzimage,
                        modules,
                        config,
                    } => crtest_vm::kernel::local(bzimage, modules.clone(), config.clone())?,
                };
                let boot_image = pvh_kernel(&cache, &kernel.bzimage)?;
                Ok((kernel, boot_image))
            })
        });
        let userland = s.spawn(|| {
            let packages = crate::model::variant::packages(None);
            timed(|| Ok(crtest_vm::userland::build(&cache, &suite, &packages)?))
        });
        let bins = s.spawn(|| timed(|| Ok(guest_build::build()?)));
        let variants = s.spawn(|| prebuild_variants(&cache, &suite, &opts.variants));
        let criu = tree
            .as_ref()
            .map(|t| s.spawn(|| timed(|| Ok(crtest_vm::criu_build::build(&cache, t, &suite)?))));
        let zdtm = zdtm_tree.as_ref().map(|t| {
            s.spawn(|| {
                timed(|| {
                    crtest_vm::zdtm_build::build(&cache, t, &suite)
                        .map_err(|e| PrepareError::ZdtmBuild(Box::new(e)))
                })
            })
        });
        let parts = (
            joined(kernel),
            joined(userland),
            joined(bins),
            criu.map(joined),
            zdtm.map(joined),
        );
        for (name, ms) in joined(variants) {
            reporter.on(&Progress::Prepared {
                what: format!("userland {suite}+{name}"),
                ms,
            });
        }
        parts
    });
    let ((kernel, boot_image), kernel_ms) = (kernel.0?, kernel.1);
    reporter.on(&Progress::Prepared {
        what: format!("kernel {}", kernel.release),
        ms: kernel_ms,
    });
    let (mut userland, userland_ms) = (userland.0?, userland.1);
    reporter.on(&Progress::Prepared {
        what: format!(
            "userland {suite} (criu {})",
            userland
                .packages
                .get("criu")
                .map_or("missing", String::as_str)
        ),
        ms: userland_ms,
    });
    let (bins, bins_ms) = (bins.0?, bins.1);
    reporter.on(&Progress::Prepared {
        what: "guest binaries".into(),
        ms: bins_ms,
    });
    let criu = match criu {
        None => CellCriu::of_package(&userland),
        Some((build, ms)) => built_criu(&cache, &mut userland, build?, ms, reporter)?,
    };
    let mut cell_notes = Vec::new();
    let zdtm = match zdtm {
        None => None,
        Some((build, ms)) => {
            let build = build?;
            cell_notes.extend(zdtm_built(&build, ms, criu.version.as_deref(), reporter));
            Some(build)
        }
    };

    let t = Instant::now();
    let (initrd, notes) = initramfs(&cache, &kernel, &bins)?;
    reporter.on(&Progress::Prepared {
        what: "initramfs".into(),
        ms: t.elapsed().as_millis() as u64,
    });

    let modules_share = modules_share(&cache, &kernel)?;
    let missing_options = match &kernel.config {
        Some(c) => crate::diagnose::kernel_config::check_file(c),
        None => vec!["no kernel config given: options not checked".into()],
    };
    let accel = qemu::detect_accel();
    let qemu_version = qemu_version();
    Ok(Cell {
        id: cell_id(&kernel.release, &suite, &criu, opts.cpu.as_deref()),
        kernel,
        boot_image,
        userland,
        criu,
        zdtm,
        initrd,
        modules_share,
        accel,
        qemu_version,
        prepare_ms: start.elapsed().as_millis() as u64,
        missing_options,
        memory_mib: opts.memory_mib,
        cpus: opts.cpus,
        cpu: opts.cpu.clone(),
        notes: notes.into_iter().chain(cell_notes).collect(),
        boot_timeout: BOOT_TIMEOUT,
        keep_images: false,
        pristine: false,
        saved_vms: Some(Default::default()),
    })
}

/// The first line of `qemu-system-x86_64 --version`.
fn qemu_version() -> Option<String> {
    crtest_vm::command::run(
        "qemu-system-x86_64",
        &["--version".into()],
        Duration::from_secs(10),
    )
    .ok()
    .and_then(|r| r.output.lines().next().map(str::to_string))
}

/// The packages of userland variant `name` of `suite` (zdtm's: with the libraries its
/// tests were built against, as `zdtm`'s build found them).
pub fn variant_packages<'a>(
    name: &str,
    suite: &str,
    zdtm: Option<&'a crtest_vm::zdtm_build::ZdtmBuild>,
) -> Vec<&'a str> {
    let mut packages: Vec<&str> = crate::model::variant::packages(Some(name));
    packages.extend(crate::model::variant::suite_packages(name, suite));
    if name == "zdtm" {
        if let Some(z) = zdtm {
            packages.extend(z.runtime_packages.iter().map(String::as_str));
        }
    }
    packages
}

/// Builds (or finds in the cache) the images of the userland variants a run will need, at
/// once and beside the rest of the preparation; each built one with its time. zdtm's waits
/// for its tests' build (it names their libraries) and is built when a guest needs it. A
/// variant that fails here is left to the guest that needs it, whose scenarios then say
/// why.
fn prebuild_variants(cache: &Cache, suite: &str, variants: &[String]) -> Vec<(String, u64)> {
    std::thread::scope(|s| {
        let builds: Vec<_> = variants
            .iter()
            .filter(|v| v.as_str() != "zdtm")
            .map(|name| {
                s.spawn(move || {
                    let t = Instant::now();
                    let packages = variant_packages(name, suite, None);
                    crtest_vm::userland::build(cache, suite, &packages)
                        .ok()
                        .map(|_| (name.clone(), t.elapsed().as_millis() as u64))
                })
            })
            .collect();
        builds
            .into_iter()
            .filter_map(|h| h.join().ok().flatten())
            .collect()
    })
}

/// Says what is being prepared, before the parts are prepared at once.
fn announce(
    reporter: &mut dyn Reporter,
    suite: &str,
    tree: Option<&crtest_vm::criu_tree::CriuTree>,
    zdtm_tree: Option<&crtest_vm::criu_tree::CriuTree>,
) {
    let mut whats = vec![
        "kernel".to_string(),
        format!("userland {suite}"),
        "guest binaries".into(),
    ];
    if let Some(t) = tree {
        whats.push(format!("criu {} from {}", t.version, t.root.display()));
    }
    if let Some(t) = zdtm_tree {
        whats.push(format!(
            "zdtm of criu {} from {}",
            t.version,
            t.root.display()
        ));
    }
    for what in whats {
        reporter.on(&Progress::Prepare { what });
    }
}

/// The criu built from a tree (in `ms`), put into the userland's image in place of the
/// package's.
fn built_criu(
    cache: &Cache,
    userland: &mut Userland,
    build: crtest_vm::criu_build::CriuBuild,
    ms: u64,
    reporter: &mut dyn Reporter,
) -> Result<CellCriu, PrepareError> {
    reporter.on(&Progress::Prepared {
        what: format!("criu {} ({})", build.version, build.source),
        ms,
    });
    let t = Instant::now();
    userland.image = with_built_criu(cache, userland, None, &build)?;
    reporter.on(&Progress::Prepared {
        what: format!("userland {}+criu-{}", userland.suite, build.short),
        ms: t.elapsed().as_millis() as u64,
    });
    Ok(CellCriu::of_build(build))
}

/// Says that zdtm's tests were built (in `ms`); the cell's notes on them.
fn zdtm_built(
    build: &crtest_vm::zdtm_build::ZdtmBuild,
    ms: u64,
    criu: Option<&str>,
    reporter: &mut dyn Reporter,
) -> Vec<String> {
    reporter.on(&Progress::Prepared {
        what: format!(
            "zdtm of criu {} ({}): {} tests",
            build.version,
            build.source,
            build.tests.len()
        ),
        ms,
    });
    crate::zdtm::suite::notes(build, criu)
}

/// The folder shared read-only with the guest for its modules: the kernel's modules, or an
/// empty folder for a kernel without.
fn modules_share(cache: &Cache, kernel: &Kernel) -> Result<PathBuf, PrepareError> {
    Ok(match &kernel.modules_dir {
        Some(dir) => dir
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| dir.clone()),
        None => {
            let empty = cache.root().join("empty-modules");
            std::fs::create_dir_all(&empty).map_err(|e| {
                PrepareError::Initramfs(format!("cannot create {}: {e}", empty.display()))
            })?;
            empty
        }
    })
}

/// The image of `userland` (or of its `variant`) with the `build` installed in place of the
/// package's criu. The libraries the built criu links against come with the criu package
/// almost always; when one does not, the userland is built again with its package added.
pub(super) fn with_built_criu(
    cache: &Cache,
    userland: &Userland,
    variant: Option<&str>,
    build: &crtest_vm::criu_build::CriuBuild,
) -> Result<PathBuf, PrepareError> {
    let lacking: Vec<&str> = build
        .runtime_packages
        .iter()
        .map(String::as_str)
        .filter(|p| !userland.packages.contains_key(*p))
        .collect();
    let image = if lacking.is_empty() {
        userland.image.clone()
    } else {
        let mut packages = crate::model::variant::packages(variant);
        packages.extend(lacking);
        crtest_vm::userland::build(cache, &userland.suite, &packages)?.image
    };
    Ok(crtest_vm::criu_build::install(cache, &image, build)?)
}

/// The kernel to boot: its uncompressed vmlinux when it has a PVH entry (seconds faster to
/// boot under TCG than decompressing the bzImage), else the bzImage itself.
fn pvh_kernel(cache: &Cache, bzimage: &Path) -> Result<PathBuf, PrepareError> {
    let bytes =
        std::fs::read(bzimage).map_err(|source| crtest_vm::vmlinux::VmlinuxError::Read {
            path: bzimage.to_path_buf(),
            source,
        })?;
    let key = crtest_vm::cache::key_of(&[b"vmlinux-v1", &bytes]);
    let dir = cache.entry("vmlinux", &key, |dir: &Path| {
        let out = dir.join("vmlinux");
        if !crtest_vm::vmlinux::extract(bzimage, &out)? {
            // No PVH entry: remember that, and boot the bzImage.
            let _ = std::fs::remove_file(&out);
            std::fs::write(dir.join("no-pvh"), b"").map_err(|source| {
                crtest_vm::vmlinux::VmlinuxError::Write {
                    path: dir.join("no-pvh"),
                    source,
                }
            })?;
        }
        Ok::<(), PrepareError>(())
    })?;
    let vmlinux = dir.join("vmlinux");
    Ok(if vmlinux.is_file() {
        vmlinux
    } else {
        bzimage.to_path_buf()
    })
}

/// The initramfs: the agent as `/init`, the workloads, and the boot modules of this kernel.
fn initramfs(
    cache: &Cache,
    kernel: &Kernel,
    bins: &GuestBinaries,
) -> Result<(PathBuf, Vec<String>), PrepareError> {
    let err = |e: &dyn std::fmt::Display| PrepareError::Initramfs(e.to_string());
    let read = |p: &Path| std::fs::read(p).map_err(|e| err(&format!("{}: {e}", p.display())));
    let agent = read(&bins.agent())?;
    let mut workloads = Vec::new();
    for w in bins.workloads() {
        let name = w.file_name().unwrap().to_string_lossy().into_owned();
        workloads.push((name, read(&w)?));
    }
    let (names, notes) = initramfs_modules(kernel);
    let modules = match &kernel.modules_dir {
        Some(_) => crtest_vm::initramfs::boot_modules(kernel, &names).map_err(|e| err(&e))?,
        None => Vec::new(),
    };
    let mut parts: Vec<&[u8]> = vec![kernel.release.as_bytes(), &agent];
    for (n, b) in &workloads {
        parts.push(n.as_bytes());
        parts.push(b);
    }
    for (n, b) in &modules {
        parts.push(n.as_bytes());
        parts.push(b);
    }
    let key = crtest_vm::cache::key_of(&parts);
    let dir = cache.entry("initramfs", &key, |dir: &Path| {
        let mut entries = crtest_vm::initramfs::Entries::default();
        entries.file("/init", 0o755, agent.clone());
        for (n, b) in &workloads {
            entries.file(&format!("{}/{n}", paths::INITRAMFS_BIN), 0o755, b.clone());
        }
        let mut order = String::new();
        for (n, b) in &modules {
            entries.file(
                &format!("{}/{n}", paths::INITRAMFS_MODULES),
                0o644,
                b.clone(),
            );
            order.push_str(n);
            order.push('\n');
        }
        entries.file(
            &format!("{}/order", paths::INITRAMFS_MODULES),
            0o644,
            order.into_bytes(),
        );
        crtest_vm::initramfs::build_initramfs(&dir.join("initrd.cpio"), &entries)
            .map_err(|e| err(&e))
    })?;
    Ok((dir.join("initrd.cpio"), notes))
}

/// The modules the agent loads from the initramfs: those it needs to reach its root and
/// shares, then those criu uses (loaded the same way: much faster than `modprobe` in the
/// guest). A criu module this kernel does not have is left out with a note.
fn initramfs_modules(kernel: &Kernel) -> (Vec<String>, Vec<String>) {
    let mut names: Vec<String> = BOOT_MODULES.iter().map(|s| s.to_string()).collect();
    let mut notes = Vec::new();
    let Some(dir) = &kernel.modules_dir else {
        return (Vec::new(), notes);
    };
    let index = match crtest_vm::modules::ModuleIndex::load(dir) {
        Ok(i) => i,
        Err(e) => return (names, vec![format!("modules of {}: {e}", kernel.release)]),
    };
    for m in crate::guest::setup::CRIU_MODULES {
        match index.resolve(&[*m]) {
            Ok(_) => names.push(m.to_string()),
            Err(e) => notes.push(format!("module {m} left out: {e}")),
        }
    }
    (names, notes)
}

impl Cell {
    /// What the host knows of the cell before it boots, for `requires`.
    pub fn facts(&self) -> crate::model::requirements::Facts {
        crate::model::requirements::Facts {
            kernel_release: self.kernel.release.clone(),
            kernel_config: self
                .kernel
                .config
                .as_ref()
                .and_then(|c| std::fs::read_to_string(c).ok())
                .map(|t| crate::diagnose::kernel_config::parse_config(&t)),
            criu: self.criu.version.clone(),
            lxc: self.userland.packages.get("lxc").cloned(),
        }
    }
}

/// The doctor's evidence from a cell and the report of its probe boot.
pub fn doctor_evidence(cell: &Cell, report: CellReport) -> crate::diagnose::doctor::Evidence {
    let facts = cell.facts();
    crate::diagnose::doctor::Evidence {
        cell: cell.id.clone(),
        kernel_release: cell.kernel.release.clone(),
        kernel_source: report.kernel.source,
        kernel_config: facts.kernel_config,
        criu_package: facts.criu,
        lxc: facts.lxc,
        qemu: cell.qemu_version.clone(),
        accel: report.qemu.accel,
        probes: report.probes,
        oci: None,
    }
}

/// What the `oci` variant of the cell's userland holds, for `doctor --oci`: the image is
/// built (or found in the cache), crun's binary read from it with `debugfs`.
pub fn oci_evidence(cell: &Cell) -> Result<crate::diagnose::oci::OciEvidence, PrepareError> {
    let cache = Cache::from_env()?;
    let suite = &cell.userland.suite;
    let packages = variant_packages("oci", suite, None);
    let userland = crtest_vm::userland::build(&cache, suite, &packages)?;
    let crun_criu = match userland.packages.contains_key("crun") {
        false => None,
        true => {
            let binary = crtest_vm::ext4::read_file(&userland.image, "/usr/bin/crun")
                .map_err(|e| crtest_vm::userland::UserlandError::Image(e.into()))?;
            Some(crate::diagnose::oci::crun_built_with_criu(&binary))
        }
    };
    Ok(crate::diagnose::oci::OciEvidence {
        userland: format!("{suite}+oci"),
        versions: crate::diagnose::oci::TOOLS
            .iter()
            .filter_map(|t| Some((t.to_string(), userland.packages.get(*t)?.clone())))
            .collect(),
        crun_criu,
    })
}
