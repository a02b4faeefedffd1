//! The host side of a cell: prepare the kernel, userland and guest bundle, boot QEMU, follow
//! the agent's events and the console, enforce the time limits, and collect the results.
//!
//! One boot runs all scenarios of the cell in turn. When the guest dies (panic, hang, crash)
//! the scenario it was running gets `panic`/`timeout`/`error` with the console tail, and a
//! new boot runs the rest.

use crate::guest::agent::{GuestPlan, PLAN_FILE};
use crate::guest::setup::paths;
use crate::host::guest_build::{self, GuestBinaries};
use crate::model::event::Event;
use crate::model::outcome::{Failure, Outcome, ScenarioResult};
use crate::model::scenario::Scenario;
use crate::report::progress::{Progress, Reporter};
use crate::results::run::{CellReport, KernelInfo, QemuInfo, ResultsError, RunDir, UserlandInfo};
use crtest_vm::cache::Cache;
use crtest_vm::console::ConsoleWatch;
use crtest_vm::kernel::{Kernel, KernelSource};
use crtest_vm::qemu::{self, Accel, AccelChoice, QemuProcess, VmSpec};
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
/// A resumed guest that is not ready this long is taken as a resume that failed: the
/// scenarios go to a booted guest.
const RESUME_READY: Duration = Duration::from_secs(30);
/// A KVM boot that prints nothing this long is taken as the silent KVM hang; TCG takes over.
const KVM_SILENCE: Duration = Duration::from_secs(15);
/// Extra time the host gives a scenario beyond its own limit before it kills the guest.
const SCENARIO_GRACE: Duration = Duration::from_secs(30);

/// The run directory's folder that the guest sees (9p) and writes: its plan, the scenarios'
/// inputs, and what the scenarios keep (`guest/scenarios/<name>/`). Everything the host
/// writes (run.json, console.log, events, QEMU's logs, reports) is outside it, out of the
/// guest's reach; after each boot the host sweeps it ([`crate::host::guest_share::sweep`]).
pub const GUEST_DIR: &str = "guest";

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
}

#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
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
    /// 2 for bad input (a user's kernel that is not one), 3 for infrastructure.
    pub fn exit_code(&self) -> i32 {
        match self {
            PrepareError::Kernel(e) if e.is_bad_input() => 2,
            PrepareError::CriuTree(e) if e.is_bad_input() => 2,
            PrepareError::CriuBuild(e) | PrepareError::ZdtmBuild(e) => e.exit_code(),
            _ => 3,
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
    let mut whats = vec![
        "kernel".to_string(),
        format!("userland {suite}"),
        "guest binaries".into(),
    ];
    if let Some(t) = &tree {
        whats.push(format!("criu {} from {}", t.version, t.root.display()));
    }
    if let Some(t) = &zdtm_tree {
        whats.push(format!(
            "zdtm of criu {} from {}",
            t.version,
            t.root.display()
        ));
    }
    for what in whats {
        reporter.on(&Progress::Prepare { what });
    }
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
        (
            joined(kernel),
            joined(userland),
            joined(bins),
            criu.map(joined),
            zdtm.map(joined),
        )
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
        Some((build, ms)) => {
            let build = build?;
            reporter.on(&Progress::Prepared {
                what: format!("criu {} ({})", build.version, build.source),
                ms,
            });
            let t = Instant::now();
            userland.image = with_built_criu(&cache, &userland, None, &build)?;
            reporter.on(&Progress::Prepared {
                what: format!("userland {suite}+criu-{}", build.short),
                ms: t.elapsed().as_millis() as u64,
            });
            CellCriu::of_build(build)
        }
    };
    let mut cell_notes = Vec::new();
    let zdtm = match zdtm {
        None => None,
        Some((build, ms)) => {
            let build = build?;
            reporter.on(&Progress::Prepared {
                what: format!(
                    "zdtm of criu {} ({}): {} tests",
                    build.version,
                    build.source,
                    build.tests.len()
                ),
                ms,
            });
            cell_notes.extend(zdtm_notes(&build, criu.version.as_deref()));
            Some(build)
        }
    };

    let t = Instant::now();
    let (initrd, notes) = initramfs(&cache, &kernel, &bins)?;
    reporter.on(&Progress::Prepared {
        what: "initramfs".into(),
        ms: t.elapsed().as_millis() as u64,
    });

    let modules_share = match &kernel.modules_dir {
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
    };
    let missing_options = match &kernel.config {
        Some(c) => crate::diagnose::kernel_config::check_file(c),
        None => vec!["no kernel config given: options not checked".into()],
    };
    let accel = qemu::detect_accel();
    let qemu_version = crtest_vm::command::run(
        "qemu-system-x86_64",
        &["--version".into()],
        Duration::from_secs(10),
    )
    .ok()
    .and_then(|r| r.output.lines().next().map(str::to_string));
    Ok(Cell {
        id: format!("{}+{}{}", kernel.release, suite, criu.id_suffix()),
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
        notes: notes.into_iter().chain(cell_notes).collect(),
        boot_timeout: BOOT_TIMEOUT,
        keep_images: false,
        pristine: false,
        saved_vms: Some(Default::default()),
    })
}

/// The zdtm scenarios this cell cannot run, as skips with the reason: one whose `.desc` the
/// harness does not support, one the cell's build lacks (it did not build for the suite, or
/// the run has no `--zdtm` for this cell).
pub fn zdtm_partition(
    scenarios: Vec<Scenario>,
    cell: &Cell,
) -> (Vec<Scenario>, Vec<ScenarioResult>) {
    let mut run = Vec::new();
    let mut skipped = Vec::new();
    let rules = crate::zdtm::known::shipped();
    let facts = crate::zdtm::known::CellFacts {
        zdtm: cell.zdtm.as_ref().map(|z| z.version.clone()),
        criu: cell.criu.version.clone(),
        kernel: cell.kernel.release.clone(),
        suite: cell.userland.suite.clone(),
    };
    for mut sc in scenarios {
        let crate::model::scenario::Target::Zdtm(z) = &sc.target else {
            run.push(sc);
            continue;
        };
        let known = crate::zdtm::known::find(&rules, &z.test, &facts);
        let why = z.unsupported.clone().or_else(|| match &cell.zdtm {
            None => Some("the cell has no zdtm build (run with --zdtm DIR)".into()),
            Some(b) if !b.tests.iter().any(|t| t.name == z.test) => {
                Some(match b.build_errors.get(&z.test) {
                    Some(e) => format!("did not build for {}: {e}", b.suite),
                    None => format!("not among the tests built for {}", b.suite),
                })
            }
            Some(_) => known
                .filter(|k| k.outcome == "skip")
                .map(|k| format!("known here: {}", k.reason)),
        });
        match why {
            None => {
                if let Some(k) = known.filter(|k| k.outcome == "fail" || k.outcome == "visible") {
                    crate::zdtm::known::expect(&mut sc, k);
                }
                run.push(sc)
            }
            Some(why) => {
                let mut r =
                    ScenarioResult::without_steps(&sc.name, Outcome::Skip, Failure::default());
                r.failure = None;
                r.detail = Some(why);
                r.tags = sc.tags.clone();
                skipped.push(r);
            }
        }
    }
    (run, skipped)
}

/// What a cell's report says of its zdtm tests: where they came from, the tests that did not
/// build, and a version that is not the cell's criu's (a choice, said so).
pub fn zdtm_notes(build: &crtest_vm::zdtm_build::ZdtmBuild, criu: Option<&str>) -> Vec<String> {
    let mut notes = vec![format!(
        "zdtm tests of criu {} from {} ({}), built for {}: {} tests",
        build.version,
        build.tree.display(),
        build.source,
        build.suite,
        build.tests.len()
    )];
    if !build.not_built.is_empty() {
        notes.push(format!(
            "zdtm tests that did not build for {}: {}",
            build.suite,
            build.not_built.join(", ")
        ));
    }
    let same = criu.is_some_and(|c| {
        crate::diagnose::version::numeric(c) == crate::diagnose::version::numeric(&build.version)
    });
    if !same {
        notes.push(format!(
            "zdtm of criu {} runs against criu {}: the tests are of another version than the \
             criu they check",
            build.version,
            criu.unwrap_or("?")
        ));
    }
    notes
}

/// The image of `userland` (or of its `variant`) with the `build` installed in place of the
/// package's criu. The libraries the built criu links against come with the criu package
/// almost always; when one does not, the userland is built again with its package added.
fn with_built_criu(
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
    }
}

/// Copies user programs' files into `<run_dir>/inputs/<scenario>/`, where the guest finds them
/// (each was resolved inside its scenario's folder when the scenario was loaded).
fn stage_inputs(scenarios: &[Scenario], run_dir: &Path) -> Result<(), ResultsError> {
    for sc in scenarios {
        let dir = run_dir.join("inputs").join(&sc.name);
        for f in sc.target.files() {
            let dest = dir.join(f.file_name().unwrap_or_default());
            std::fs::create_dir_all(&dir)
                .and_then(|()| crate::model::confine::copy_nofollow(f, &dest).map(|_| ()))
                .map_err(|source| ResultsError::Write { path: dest, source })?;
        }
    }
    Ok(())
}

/// What ended one boot.
enum BootEnd {
    /// The agent said done.
    Done,
    /// QEMU exited before the agent was done.
    Exited(String),
    BootTimeout,
    ScenarioTimeout,
    /// KVM printed nothing: retry with TCG.
    KvmSilent,
    AgentError(String),
    /// A signal asked the run to stop.
    Interrupted(i32),
    /// The guest is no longer a clean base (taint, oops): boot a new one for the rest.
    Restart(String),
    /// A resumed guest did not come up: boot the rest.
    ResumeFailed(String),
}

/// Runs `scenarios` on the cell, adding its report to `run` and saving after each scenario.
pub fn run_cell(
    cell: &Cell,
    scenarios: &[Scenario],
    probes: &[Vec<String>],
    run: &mut RunDir,
    reporter: &mut dyn Reporter,
) -> Result<(), ResultsError> {
    let index = run.report.cells.len();
    run.report.cells.push(CellReport {
        id: cell.id.clone(),
        kernel: KernelInfo {
            release: cell.kernel.release.clone(),
            source: match &cell.kernel.source {
                KernelSource::Debian { package, version } => format!("debian:{package}={version}"),
                KernelSource::Local { path } => path.display().to_string(),
            },
            missing_options: cell.missing_options.clone(),
        },
        userland: UserlandInfo {
            suite: cell.userland.suite.clone(),
            criu: cell.criu.version.clone(),
            criu_source: cell.criu.source.clone(),
            lxc: cell.userland.packages.get("lxc").cloned(),
        },
        qemu: QemuInfo {
            accel: cell.accel.accel.as_str().into(),
            version: cell.qemu_version.clone(),
            accel_note: cell.accel.why_not_kvm.clone(),
            boots: 0,
            resumes: 0,
        },
        boot_ms: None,
        resume_ms: None,
        prepare_ms: cell.prepare_ms,
        boot_marks: Vec::new(),
        notes: cell.notes.clone(),
        probes: Vec::new(),
        scenarios: Vec::new(),
    });
    run.save()?;
    if let Some(note) = &cell.accel.why_not_kvm {
        reporter.on(&Progress::AccelNote { note: note.clone() });
    }
    let mut accel = cell.accel.accel;
    let mut probes = probes.to_vec();
    let (remaining, mut skipped) = crate::model::requirements::partition(scenarios, &cell.facts());
    let (mut remaining, zdtm_skipped) = zdtm_partition(remaining, cell);
    skipped.extend(zdtm_skipped);
    for r in skipped {
        reporter.on(&Progress::ScenarioFinished {
            result: Box::new(r.clone()),
        });
        run.report.cells[index].scenarios.push(r);
    }
    let share = run.dir.join(GUEST_DIR);
    std::fs::create_dir_all(&share).map_err(|source| ResultsError::Write {
        path: share.clone(),
        source,
    })?;
    stage_inputs(&remaining, &share)?;
    // Scenarios of a userland variant run after the others, one boot of its image for all.
    remaining.sort_by(|a, b| a.userland_variant.cmp(&b.userland_variant));
    let mut images: Vec<(String, PathBuf)> = Vec::new();
    // Set once saving or resuming failed: the rest of the cell boots.
    let mut resume_note: Option<String> = None;
    while !remaining.is_empty() || !probes.is_empty() {
        let variant = remaining.first().and_then(|s| s.userland_variant.clone());
        let rootfs = match &variant {
            None => cell.userland.image.clone(),
            Some(v) => match variant_image(cell, v, &mut images, reporter) {
                Ok(image) => image,
                Err(e) => {
                    // Only the variant's scenarios are lost; the others ran already.
                    let mut lost: Vec<Scenario> = remaining
                        .iter()
                        .filter(|s| s.userland_variant.as_deref() == Some(v.as_str()))
                        .cloned()
                        .collect();
                    remaining.retain(|s| s.userland_variant.as_deref() != Some(v.as_str()));
                    let message = format!("userland variant `{v}`: {e}");
                    Boot::new(cell, accel, &run.dir).fail_all(
                        &mut lost,
                        run,
                        index,
                        Outcome::Error,
                        "prepare",
                        &message,
                        &[],
                        reporter,
                    )?;
                    continue;
                }
            },
        };
        let mut boot = Boot::new(cell, accel, &run.dir);
        boot.rootfs = rootfs;
        if let Some(saved) = cell.saved_vms.as_ref().filter(|_| resume_note.is_none()) {
            match boot.saved_state(saved, &run.dir) {
                Ok(state) => {
                    if let Some(s) = state.saved {
                        let note = format!(
                            "saved the ready guest ({} MiB in {:.1} s): later guests resume from it",
                            s.bytes >> 20,
                            s.ms as f64 / 1000.0
                        );
                        reporter.on(&Progress::GuestNote { note: note.clone() });
                        run.report.cells[index].notes.push(note);
                    }
                    boot.incoming = Some(state.path);
                }
                Err(why) => {
                    let note = format!("guests boot instead of resuming a saved one: {why}");
                    reporter.on(&Progress::GuestNote { note: note.clone() });
                    run.report.cells[index].notes.push(note.clone());
                    resume_note = Some(note);
                }
            }
        }
        // A scenario that needs a fresh kernel gets a guest of its own (every scenario does
        // with --pristine); the others of the same userland share one.
        let batch: Vec<Scenario> = match remaining.first() {
            Some(first) if first.fresh_kernel || cell.pristine => vec![first.clone()],
            _ => remaining
                .iter()
                .take_while(|s| !s.fresh_kernel && s.userland_variant == variant)
                .cloned()
                .collect(),
        };
        let plan = GuestPlan {
            scenarios: batch,
            keep_images: cell.keep_images,
            probes: std::mem::take(&mut probes),
            built_criu: cell.criu.build.as_ref().map(|b| {
                format!(
                    "criu {} built from {} ({})",
                    b.version,
                    b.tree.display(),
                    b.source
                )
            }),
        };
        let plan_path = share.join(PLAN_FILE);
        std::fs::write(
            &plan_path,
            serde_json::to_string_pretty(&plan).expect("plan serialises"),
        )
        .map_err(|source| ResultsError::Write {
            path: plan_path.clone(),
            source,
        })?;
        run.report.cells[index].qemu.boots += 1;
        let boots = run.report.cells[index].qemu.boots;
        let outcome = boot.run(boots, &mut remaining, run, index, reporter)?;
        // The guest is gone: what it left in its share is made safe for the host to read.
        for note in crate::host::guest_share::sweep(&share) {
            reporter.on(&Progress::GuestNote { note: note.clone() });
            run.report.cells[index].notes.push(note);
        }
        if boots > scenarios.len() as u32 + 2 {
            let message = "the guest kept dying between scenarios; giving up";
            let lines = Vec::new();
            Boot::new(cell, accel, &run.dir).fail_all(
                &mut remaining,
                run,
                index,
                Outcome::Error,
                "boot",
                message,
                &lines,
                reporter,
            )?;
        }
        match outcome {
            BootEnd::ResumeFailed(why) if resume_note.is_none() => {
                if let Some(state) = &boot.incoming {
                    crate::host::resume::forget(state);
                }
                let note = format!("guests boot instead of resuming a saved one: {why}");
                reporter.on(&Progress::GuestNote { note: note.clone() });
                run.report.cells[index].notes.push(note.clone());
                resume_note = Some(note);
            }
            BootEnd::Interrupted(_) => break,
            BootEnd::Done if remaining.is_empty() => break,
            BootEnd::KvmSilent if accel == Accel::Kvm => {
                let note = "the KVM guest printed nothing; falling back to TCG".to_string();
                reporter.on(&Progress::AccelNote { note: note.clone() });
                accel = Accel::Tcg;
                let c = &mut run.report.cells[index];
                c.qemu.accel = "tcg".into();
                c.qemu.accel_note = Some(note);
            }
            _ => {}
        }
    }
    let _ = std::fs::remove_file(share.join(PLAN_FILE));
    run.save()
}

/// The image of userland variant `name` of the cell's suite, built (or found in the cache)
/// the first time a batch needs it.
fn variant_image(
    cell: &Cell,
    name: &str,
    built: &mut Vec<(String, PathBuf)>,
    reporter: &mut dyn Reporter,
) -> Result<PathBuf, PrepareError> {
    if let Some((_, image)) = built.iter().find(|(n, _)| n == name) {
        return Ok(image.clone());
    }
    let suite = &cell.userland.suite;
    reporter.on(&Progress::Prepare {
        what: format!("userland {suite}+{name}"),
    });
    let t = Instant::now();
    let cache = Cache::from_env()?;
    let mut packages: Vec<&str> = crate::model::variant::packages(Some(name));
    packages.extend(crate::model::variant::suite_packages(name, suite));
    if name == "zdtm" {
        // The libraries zdtm's tests link against (libaio, ...), as their build found them.
        if let Some(z) = &cell.zdtm {
            packages.extend(z.runtime_packages.iter().map(String::as_str));
        }
    }
    let userland = crtest_vm::userland::build(&cache, suite, &packages)?;
    let image = match &cell.criu.build {
        None => userland.image.clone(),
        Some(b) => with_built_criu(&cache, &userland, Some(name), b)?,
    };
    reporter.on(&Progress::Prepared {
        what: format!("userland {suite}+{name}"),
        ms: t.elapsed().as_millis() as u64,
    });
    built.push((name.to_string(), image.clone()));
    Ok(image)
}

/// One QEMU boot and the state followed while it runs.
struct Boot<'a> {
    cell: &'a Cell,
    accel: Accel,
    console_path: PathBuf,
    /// The root image: the cell's userland or one of its variants.
    rootfs: PathBuf,
    /// Resume from this saved state instead of booting.
    incoming: Option<PathBuf>,
}

impl<'a> Boot<'a> {
    fn new(cell: &'a Cell, accel: Accel, run_dir: &Path) -> Boot<'a> {
        Boot {
            cell,
            accel,
            console_path: run_dir.join("console.log"),
            rootfs: cell.userland.image.clone(),
            incoming: None,
        }
    }

    /// The saved ready state of this boot's guest (found, or saved now).
    fn saved_state(
        &self,
        saved: &crate::host::resume::SavedVms,
        run_dir: &Path,
    ) -> Result<crate::host::resume::State, String> {
        let sockets = crate::host::resume::sockets_dir()
            .map_err(|e| format!("cannot make a folder for QEMU's sockets: {e}"))?;
        let spec = VmSpec {
            save_mode: true,
            ..self.spec(
                &run_dir.join(GUEST_DIR),
                &run_dir.join("events-save.jsonl"),
                sockets.path(),
            )
        };
        let version = self.cell.qemu_version.as_deref().unwrap_or("unknown");
        saved.get(&spec, version, run_dir, self.cell.boot_timeout)
    }

    fn spec(&self, share: &Path, events: &Path, sockets: &Path) -> VmSpec {
        VmSpec {
            kernel: self.cell.boot_image.clone(),
            initrd: self.cell.initrd.clone(),
            rootfs: self.rootfs.clone(),
            data_disk: self.cell.zdtm.as_ref().map(|z| z.image()),
            modules_dir: self.cell.modules_share.clone(),
            results_dir: share.to_path_buf(),
            results_tag: paths::RESULTS_TAG.into(),
            modules_tag: paths::MODULES_TAG.into(),
            console_log: self.console_path.clone(),
            events_log: events.to_path_buf(),
            sockets_dir: sockets.to_path_buf(),
            save_mode: self.incoming.is_some(),
            incoming: self.incoming.clone(),
            memory_mib: self.cell.memory_mib,
            cpus: self.cell.cpus,
            accel: self.accel,
        }
    }

    /// Boots, follows the guest until it is done or lost, and records every result.
    fn run(
        &self,
        boot_no: u32,
        remaining: &mut Vec<Scenario>,
        run: &mut RunDir,
        index: usize,
        reporter: &mut dyn Reporter,
    ) -> Result<BootEnd, ResultsError> {
        // Each boot's events go to their own file; QEMU truncates on open.
        let events_path = run.dir.join(format!("events-{boot_no}.jsonl"));
        // Never an earlier guest's events (QEMU empties the file only once it has started).
        let _ = std::fs::remove_file(&events_path);
        let sockets = match crate::host::resume::sockets_dir() {
            Ok(d) => d,
            Err(e) => {
                let message = format!("cannot make a folder for QEMU's sockets: {e}");
                self.fail_all(
                    remaining,
                    run,
                    index,
                    Outcome::Error,
                    "boot",
                    &message,
                    &[],
                    reporter,
                )?;
                return Ok(BootEnd::Exited(message));
            }
        };
        let spec = self.spec(&run.dir.join(GUEST_DIR), &events_path, sockets.path());
        let argv = qemu::argv(&spec);
        let command = crtest_vm::command::command_line("qemu-system-x86_64", &argv);
        let _ = std::fs::write(run.dir.join("qemu.cmdline"), format!("{command}\n"));
        reporter.on(&Progress::Booting {
            boot: boot_no,
            resume: self.incoming.is_some(),
            command: command.clone(),
        });
        let mut console = ConsoleWatch::new(&self.console_path);
        let started = Instant::now();
        let qemu_log = run.dir.join(format!("qemu-{boot_no}.log"));
        let mut qemu = match QemuProcess::spawn("qemu-system-x86_64", &argv, &qemu_log) {
            Ok(q) => q,
            Err(e) => {
                self.fail_all(
                    remaining,
                    run,
                    index,
                    Outcome::Error,
                    "boot",
                    &e.to_string(),
                    &[],
                    reporter,
                )?;
                return Ok(BootEnd::Exited(e.to_string()));
            }
        };
        // Held open while the guest runs (see `send_on`).
        let mut _control = None;
        if self.incoming.is_some() {
            match crate::host::resume::send_on(&spec) {
                Ok(c) => _control = Some(c),
                Err(why) => {
                    qemu.kill();
                    let log = std::fs::read_to_string(&qemu_log).unwrap_or_default();
                    let said = crtest_vm::command::tail_lines(&log, 3).join(" / ");
                    return Ok(BootEnd::ResumeFailed(if said.is_empty() {
                        why
                    } else {
                        format!("{why} (QEMU: {said})")
                    }));
                }
            }
            run.report.cells[index].qemu.resumes += 1;
        }
        let mut events = crate::host::guest_share::EventReader::default();
        let mut ready = false;
        let mut current: Option<(String, Instant)> = None;
        let end = 'watch: loop {
            std::thread::sleep(Duration::from_millis(20));
            console.poll(&self.console_path);
            for ev in events.poll(&events_path) {
                match ev {
                    Event::AgentReady {
                        kernel_release,
                        notes,
                        marks,
                        uptime_ms,
                    } => {
                        ready = true;
                        let ms = started.elapsed().as_millis() as u64;
                        let cell = &mut run.report.cells[index];
                        if self.incoming.is_some() {
                            cell.resume_ms.get_or_insert(ms);
                        } else if cell.boot_ms.is_none() {
                            cell.boot_ms = Some(ms);
                            cell.boot_marks = marks;
                            cell.boot_marks.push(("ready".into(), uptime_ms));
                        }
                        let criu_version = cell.userland.criu.clone();
                        for n in &notes {
                            if !cell.notes.contains(n) {
                                cell.notes.push(n.clone());
                                reporter.on(&Progress::GuestNote { note: n.clone() });
                            }
                        }
                        reporter.on(&Progress::AgentReady {
                            ms,
                            resumed: self.incoming.is_some(),
                            kernel: kernel_release,
                            criu: criu_version,
                        });
                        run.save()?;
                    }
                    Event::ScenarioStarted { name } => {
                        let limit = remaining.iter().find(|s| s.name == name).map_or(
                            Duration::from_secs(crate::model::scenario::DEFAULT_TIMEOUT_S),
                            |s| Duration::from_secs(s.timeout_s),
                        );
                        current = Some((name.clone(), Instant::now() + limit + SCENARIO_GRACE));
                        reporter.on(&Progress::ScenarioStarted { name });
                    }
                    Event::StepStarted { .. } => {}
                    Event::SaveReady { .. } => {
                        // Only the host's own save boot is saved; from any other guest this
                        // is noise.
                    }
                    Event::ProbeResult {
                        command,
                        status,
                        output,
                    } => {
                        run.report.cells[index]
                            .probes
                            .push(crate::diagnose::doctor::ProbeOutput {
                                command,
                                status,
                                output,
                            });
                        run.save()?;
                    }
                    Event::StepFinished {
                        scenario,
                        step,
                        iteration,
                        ms,
                        ok,
                    } => reporter.on(&Progress::Step {
                        scenario,
                        step,
                        iteration,
                        ms,
                        ok,
                    }),
                    Event::ScenarioFinished { result } => {
                        current = None;
                        let name = result.name.clone();
                        if self.record(*result, remaining, run, index, &mut console, reporter)? {
                            break 'watch BootEnd::Restart(format!(
                                "the kernel reported trouble (see the console) during {name}"
                            ));
                        }
                    }
                    Event::RestartRequested { reason } => break 'watch BootEnd::Restart(reason),
                    Event::AgentError { message } => {
                        let cell = &mut run.report.cells[index];
                        cell.notes.push(format!("agent error: {message}"));
                        break 'watch BootEnd::AgentError(message);
                    }
                    Event::Done => break 'watch BootEnd::Done,
                }
            }
            if events.flooded {
                let message = format!(
                    "the guest wrote more than {} MiB to its events port; it is not followed any more",
                    crate::host::guest_share::MAX_EVENTS >> 20
                );
                run.report.cells[index].notes.push(message.clone());
                break 'watch BootEnd::AgentError(message);
            }
            if let Some(status) = qemu.try_wait() {
                // Read what the guest said last before judging.
                console.poll(&self.console_path);
                for ev in events.poll(&events_path) {
                    if let Event::ScenarioFinished { result } = ev {
                        current = None;
                        self.record(*result, remaining, run, index, &mut console, reporter)?;
                    }
                }
                if remaining.is_empty() {
                    break BootEnd::Done;
                }
                let log = std::fs::read_to_string(&qemu_log).unwrap_or_default();
                let said = crtest_vm::command::tail_lines(&log, 3).join(" / ");
                break BootEnd::Exited(if said.is_empty() {
                    format!("QEMU exited ({status}) before the agent was done")
                } else {
                    format!("QEMU exited ({status}) before the agent was done: {said}")
                });
            }
            if !ready && self.incoming.is_some() && started.elapsed() > RESUME_READY {
                break BootEnd::ResumeFailed(format!(
                    "the resumed guest was not ready within {} s",
                    RESUME_READY.as_secs()
                ));
            }
            if !ready {
                if self.accel == Accel::Kvm && console.bytes == 0 && started.elapsed() > KVM_SILENCE
                {
                    break BootEnd::KvmSilent;
                }
                if started.elapsed() > self.cell.boot_timeout {
                    break BootEnd::BootTimeout;
                }
            }
            if let Some((_, deadline)) = &current {
                if Instant::now() > *deadline {
                    break BootEnd::ScenarioTimeout;
                }
            }
            if let Some(sig) = crate::host::interrupt::requested() {
                break BootEnd::Interrupted(sig);
            }
        };
        // Done means every result is on the host (the share has no cache, the disks are
        // throw-away overlays): QEMU goes at once, not after the guest's power-off.
        qemu.kill();
        console.poll(&self.console_path);
        self.judge_loss(
            &end,
            ready,
            current.map(|c| c.0),
            remaining,
            run,
            index,
            &mut console,
            reporter,
        )?;
        Ok(end)
    }

    /// Records a finished scenario, attaching kernel trouble the console showed meanwhile.
    fn record(
        &self,
        mut result: ScenarioResult,
        remaining: &mut Vec<Scenario>,
        run: &mut RunDir,
        index: usize,
        console: &mut ConsoleWatch,
        reporter: &mut dyn Reporter,
    ) -> Result<bool, ResultsError> {
        // The guest is untrusted: a result for a scenario it was not given is dropped, and
        // its file paths must stay inside the share (then they are made relative to the run).
        if !remaining.iter().any(|s| s.name == result.name) {
            let note = format!(
                "the guest reported a result for `{}`, which it was not given; ignored",
                crate::report::markup::shown(&result.name)
            );
            run.report.cells[index].notes.push(note);
            return Ok(false);
        }
        crate::host::guest_share::adopt_paths(&mut result);
        let trouble = console.take_trouble();
        let troubled = !trouble.is_empty();
        if troubled {
            let f = result.failure.get_or_insert_with(|| Failure {
                step: "scenario".into(),
                message: "the kernel reported trouble while the scenario ran".into(),
                ..Failure::default()
            });
            f.console_tail = trouble.into_iter().map(|(_, l)| l).collect();
            if result.outcome == Outcome::Pass {
                result.outcome = Outcome::Fail;
            }
        }
        remaining.retain(|s| s.name != result.name);
        reporter.on(&Progress::ScenarioFinished {
            result: Box::new(result.clone()),
        });
        run.report.cells[index].scenarios.push(result);
        run.save()?;
        Ok(troubled)
    }

    /// After a boot that did not finish: the running scenario gets the blame, the others wait
    /// for the next boot (or all fail when the guest never came up).
    #[allow(clippy::too_many_arguments)]
    fn judge_loss(
        &self,
        end: &BootEnd,
        ready: bool,
        current: Option<String>,
        remaining: &mut Vec<Scenario>,
        run: &mut RunDir,
        index: usize,
        console: &mut ConsoleWatch,
        reporter: &mut dyn Reporter,
    ) -> Result<(), ResultsError> {
        let (outcome, message) = match end {
            BootEnd::Done => return Ok(()),
            BootEnd::KvmSilent | BootEnd::ResumeFailed(_) => return Ok(()),
            BootEnd::Restart(reason) => {
                run.report.cells[index]
                    .notes
                    .push(format!("guest rebooted: {reason}"));
                reporter.on(&Progress::GuestLost {
                    reason: reason.clone(),
                });
                return Ok(());
            }
            BootEnd::Exited(m) => (Outcome::Error, m.clone()),
            BootEnd::AgentError(m) => (Outcome::Error, format!("the guest agent failed: {m}")),
            BootEnd::BootTimeout => (
                Outcome::Timeout,
                format!(
                    "the guest did not become ready within {} s",
                    self.cell.boot_timeout.as_secs()
                ),
            ),
            BootEnd::ScenarioTimeout => (
                Outcome::Timeout,
                "the guest stopped answering: scenario time limit passed".into(),
            ),
            BootEnd::Interrupted(sig) => {
                let message = format!(
                    "interrupted by {} before it finished",
                    crate::host::interrupt::name(*sig)
                );
                if let Some(name) = current {
                    remaining.sort_by_key(|s| s.name != name);
                }
                return self.fail_all(
                    remaining,
                    run,
                    index,
                    Outcome::Error,
                    "interrupted",
                    &message,
                    &console.tail(10),
                    reporter,
                );
            }
        };
        let (outcome, message, lines) = match console.panic_lines() {
            Some(lines) => (
                Outcome::Panic,
                "the guest kernel panicked".to_string(),
                lines,
            ),
            None => (outcome, message, console.tail(30)),
        };
        reporter.on(&Progress::GuestLost {
            reason: message.clone(),
        });
        match (ready, current) {
            (true, Some(name)) => {
                let mut result = ScenarioResult::without_steps(
                    &name,
                    outcome,
                    Failure {
                        step: "scenario".into(),
                        message,
                        console_tail: lines,
                        ..Failure::default()
                    },
                );
                result.artifacts.push("console.log".into());
                self.record(result, remaining, run, index, console, reporter)
                    .map(|_| ())
            }
            (true, None) if !remaining.is_empty() && !matches!(end, BootEnd::AgentError(_)) => {
                // Lost between scenarios: try the rest on a new boot once more.
                Ok(())
            }
            _ => self.fail_all(
                remaining, run, index, outcome, "boot", &message, &lines, reporter,
            ),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn fail_all(
        &self,
        remaining: &mut Vec<Scenario>,
        run: &mut RunDir,
        index: usize,
        outcome: Outcome,
        step: &str,
        message: &str,
        lines: &[String],
        reporter: &mut dyn Reporter,
    ) -> Result<(), ResultsError> {
        for sc in std::mem::take(remaining) {
            let result = ScenarioResult::without_steps(
                &sc.name,
                outcome,
                Failure {
                    step: step.into(),
                    message: message.into(),
                    console_tail: lines.to_vec(),
                    ..Failure::default()
                },
            );
            reporter.on(&Progress::ScenarioFinished {
                result: Box::new(result.clone()),
            });
            run.report.cells[index].scenarios.push(result);
        }
        run.save()
    }
}
