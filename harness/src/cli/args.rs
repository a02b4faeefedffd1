//! Every option of `crtest`, as clap reads it, and what each turns into for the library
//! (its plain option structs). The library never sees clap.

use crate::host::catalog::CatalogOptions;
use crate::host::cell_choice::CellSpec;
use crate::host::shard::{Shard, ShardArg};
use crate::host::vm_run::{self, CellOptions};
use crate::model::migration::MoveMode;
use crate::model::scenario::{Mode, ZdtmFlavor};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "crtest",
    version,
    about = "Checkpoint/restart test and compatibility harness"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run scenarios on a cell (a kernel and a guest userland in QEMU), or on the host.
    Run(RunArgs),
    /// List the scenarios with their tags.
    List(CatalogArgs),
    /// Read a CRIU image directory: the task tree, versions, statistics, errors in its logs.
    Ckptinfo(CkptinfoArgs),
    /// Do this kernel and these C/R tools work together? Versions, kernel options,
    /// `criu check`, known incompatibilities, and a verdict (exit 0 compatible, 1 not).
    Doctor(DoctorArgs),
    /// Rerun one scenario keeping everything (criu -v4 logs, images, full console) and
    /// print its failure report and where everything is.
    Repro(ReproArgs),
    /// Measure boot, per-scenario overhead, a large checkpoint, and one boot for all
    /// scenarios against one boot each, over several repetitions.
    Bench(BenchArgs),
    /// Run the scenarios on every kernel x userland cell, several guests at once; writes
    /// run.json, junit.xml, report.html and summary.md.
    Matrix(MatrixArgs),
    /// Move scenarios from one cell to another: dumped in a source guest (--kernel,
    /// --userland, --criu, --cpu), restored and verified in a target guest (--to-kernel, ...),
    /// the two joined by a private link.
    Migrate(MigrateArgs),
    /// From a cell that fails (or passes since) to the commit: bisect a CRIU tree
    /// (`--criu TREE`) or a kernel tree (`--kernel-tree TREE`) between --good and --bad,
    /// each step built, run and judged; writes bisect.json and summary.md.
    Bisect(BisectArgs),
    /// What changed between two runs: regressions (exit 1), fixes, new skips, timing.
    Compare(CompareArgs),
    /// Runs in other formats: `--kcidb DIR` writes a KernelCI KCIDB document.
    Export(ExportArgs),
    /// Join shard runs (`matrix --shard i/n`) into one run directory.
    Merge(MergeArgs),
    /// The durations of runs, histories or durations files as one durations file (what
    /// `matrix --durations` and `run -j` deal by).
    Durations(DurationsArgs),
    /// Kernels for the guest: `kernel build --source DIR` builds one with the required options.
    Kernel(KernelArgs),
    /// Install the host packages the main job (or, with --tests, the test suite) needs; as
    /// non-root, print the apt-get command instead (exit 3).
    Setup(SetupArgs),
}

#[derive(Debug, Args)]
pub struct CatalogArgs {
    /// Add the scenario files of this directory to the catalog (repeatable).
    #[arg(long = "scenarios", value_name = "DIR")]
    pub scenario_dirs: Vec<PathBuf>,
    /// Only scenarios with one of these tags (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub tag: Vec<String>,
    /// Add CRIU's zdtm tests of this CRIU source tree (`zdtm/static/NAME`, tagged `zdtm`),
    /// built for the userland's suite.
    #[arg(long, value_name = "DIR")]
    pub zdtm: Option<PathBuf>,
    /// Who runs the zdtm tests: `native` (this harness, the default) or `zdtm.py` (the
    /// tree's own runner, in a userland variant with its python), to compare verdicts.
    #[arg(long, value_name = "RUNNER", default_value = "native", value_parser = ["native", "zdtm.py"], requires = "zdtm")]
    pub zdtm_runner: String,
    /// zdtm's flavors to run (comma-separated: `h` the host's namespaces, `ns` namespaces
    /// of the test's own in a root of its own, `uns` the same in a user namespace); each
    /// test runs in those its `.desc` allows. Default: all three, as `zdtm.py run -a`.
    #[arg(long, value_delimiter = ',', value_name = "h,ns,uns", value_parser = parse_flavor, requires = "zdtm")]
    pub zdtm_flavors: Vec<ZdtmFlavor>,
    /// How criu is driven (comma-separated modes, each atoms joined by `+`): `plain`,
    /// `leave-running`, `pre-dump`, `pre=N`, `snaps=N`, `iters=N`, `page-server`, `lazy`,
    /// `remote-lazy`, `stop`, `dedup`, `sibling`, `criu-config`, `mntns-compat`, `rpc`; e.g.
    /// `plain,lazy,pre=2+page-server`. Every chosen scenario runs in each mode its backend
    /// has (`NAME@MODE`). Default: each scenario as the catalog gives it.
    #[arg(long, value_delimiter = ',', value_name = "MODE,...", value_parser = parse_mode)]
    pub modes: Vec<Mode>,
    /// Run the zdtm tests as a profile picks them: `ci` is CRIU's own CI pass, the
    /// (test, flavor, mode) combinations of the `zdtm.py run` calls of the tree's
    /// `scripts/ci/run-ci-tests.sh` (calls with options the harness has no mode for are
    /// named and left out).
    #[arg(long, value_name = "NAME", requires = "zdtm", conflicts_with_all = ["modes", "zdtm_flavors"])]
    pub zdtm_profile: Option<String>,
}

/// The least guest memory: below it the kernel cannot unpack the initramfs.
pub const MIN_MEMORY_MIB: u32 = 512;
/// The most guest memory and vCPUs taken: more is a typo.
pub const MAX_MEMORY_MIB: u32 = 1 << 20;
pub const MAX_CPUS: i64 = 64;

fn memory_mib(s: &str) -> Result<u32, String> {
    let n: u32 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}`: want a number of MiB"))?;
    if !(MIN_MEMORY_MIB..=MAX_MEMORY_MIB).contains(&n) {
        return Err(format!(
            "{n} MiB: the guest needs {MIN_MEMORY_MIB} to {MAX_MEMORY_MIB} MiB (default 2048)"
        ));
    }
    Ok(n)
}

fn count_in(s: &str, max: usize, what: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(format!("`{s}`: want 1 to {max} {what}")),
    }
}

fn guests_at_once(s: &str) -> Result<usize, String> {
    count_in(s, 256, "guests at once")
}

fn make_jobs(s: &str) -> Result<usize, String> {
    count_in(s, 1024, "make jobs")
}

fn parse_mode(s: &str) -> Result<Mode, crate::model::scenario::ModeError> {
    Mode::parse(s)
}

fn parse_flavor(s: &str) -> Result<ZdtmFlavor, String> {
    ZdtmFlavor::parse(s).ok_or_else(|| format!("`{s}`: zdtm's flavors are h, ns and uns"))
}

impl CatalogArgs {
    pub fn options(&self) -> CatalogOptions {
        CatalogOptions {
            scenario_dirs: self.scenario_dirs.clone(),
            tag: self.tag.clone(),
            zdtm: self.zdtm.clone(),
            zdtm_py: self.zdtm_runner == "zdtm.py",
            zdtm_flavors: self.zdtm_flavors.clone(),
            modes: self.modes.clone(),
            zdtm_profile: self.zdtm_profile.clone(),
        }
    }
}

/// The cell options of a command.
#[derive(Debug, Clone, Default, Args)]
pub struct CellArgs {
    /// The kernel: a Debian suite whose linux-image-amd64 is fetched (bookworm,
    /// bookworm-backports, trixie, sid), or the path of a bzImage (or of a directory from
    /// `crtest kernel build`). Default: the host's suite.
    #[arg(long, value_name = "NAME|PATH")]
    pub kernel: Option<String>,
    /// The modules of a --kernel PATH (`lib/modules/<release>`, or a root holding it).
    #[arg(long, value_name = "DIR", requires = "kernel")]
    pub modules: Option<PathBuf>,
    /// The .config of a --kernel PATH.
    #[arg(long, value_name = "FILE", requires = "kernel")]
    pub config: Option<PathBuf>,
    /// The guest userland, a Debian suite: bookworm (criu 3.17, lxc 5.0), trixie (criu 4.1,
    /// lxc 6.0), sid (criu 4.2, lxc 7.0). Default: the host's suite.
    #[arg(long, alias = "suite", value_name = "NAME")]
    pub userland: Option<String>,
    /// The criu: `package` (default) or the userland's suite name for the userland's own
    /// package, or the path of a CRIU source tree (a git checkout or an unpacked release),
    /// built for the userland's suite and installed in place of the package's.
    #[arg(long, value_name = "SOURCE")]
    pub criu: Option<String>,
}

impl CellArgs {
    pub fn spec(&self) -> CellSpec {
        CellSpec {
            kernel: self.kernel.clone(),
            modules: self.modules.clone(),
            config: self.config.clone(),
            userland: self.userland.clone(),
            criu: self.criu.clone(),
        }
    }
}

/// Which cell: the kernel and the guest userland, and the guest's size.
#[derive(Debug, Args)]
pub struct CellFlags {
    #[command(flatten)]
    pub cell: CellArgs,
    /// Guest memory in MiB.
    #[arg(long, default_value_t = 2048, value_parser = memory_mib)]
    pub memory: u32,
    /// Guest CPUs.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=MAX_CPUS))]
    pub cpus: u32,
    /// QEMU's CPU model of the guests (`qemu-system-x86_64 -cpu help`; default: `max` under
    /// TCG, `host` under KVM). criu records the CPU in its images and checks it at restore.
    #[arg(long, value_name = "MODEL")]
    pub cpu: Option<String>,
    /// A guest of its own for every scenario, each resumed from the saved ready state (or
    /// booted, with --boot-each).
    #[arg(long)]
    pub pristine: bool,
    /// Boot every guest; do not save the ready guest nor resume from a saved state.
    #[arg(long)]
    pub boot_each: bool,
}

impl CellFlags {
    /// How the cell's guests start, as these flags say.
    pub fn guests(&self, cell: vm_run::Cell) -> vm_run::Cell {
        vm_run::Cell {
            pristine: self.pristine,
            saved_vms: (!self.boot_each).then(Default::default),
            ..cell
        }
    }

    /// The cell options, with the zdtm tree of `zdtm`.
    pub fn options(
        &self,
        zdtm: Option<PathBuf>,
    ) -> Result<CellOptions, crate::host::cell_choice::ChoiceError> {
        let choice = self.cell.spec().choice()?;
        Ok(CellOptions {
            kernel: choice.kernel,
            suite: Some(choice.userland),
            criu: choice.criu,
            zdtm,
            memory_mib: self.memory,
            cpus: self.cpus,
            cpu: self.cpu.clone(),
            variants: Vec::new(),
        })
    }
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub catalog: CatalogArgs,
    /// Only these scenarios (comma-separated names).
    #[arg(long, value_delimiter = ',')]
    pub scenario: Vec<String>,
    /// Where run directories go; `latest` links to the newest.
    #[arg(long, value_name = "DIR", default_value = "results")]
    pub results: PathBuf,
    #[command(flatten)]
    pub cell: CellFlags,
    /// Run on this machine's kernel with its criu instead of a VM (root only; not with
    /// --zdtm, whose tests run from the tree built into a guest's data disk).
    #[arg(long, conflicts_with_all = ["kernel", "userland", "criu", "zdtm"])]
    pub host: bool,
    /// Stop the whole run after this many seconds; unfinished scenarios are marked.
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout_s: Option<u64>,
    /// Guests at once: the scenarios are dealt into this many shards, each in its own VM
    /// with one vCPU (default: the number of cores; 1 = one guest with --cpus vCPUs).
    #[arg(short = 'j', long, value_name = "N", value_parser = guests_at_once)]
    pub jobs: Option<usize>,
    /// Keep the criu images of passing scenarios too (always kept on failure).
    #[arg(long)]
    pub keep_images: bool,
    /// Run the selection this many times, each round in fresh guests (`rounds/<i>/`); a
    /// scenario that passed on some rounds only is `flaky`, every attempt kept.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub repeat: u32,
    /// Show every step and the QEMU command line.
    #[arg(short, long)]
    pub verbose: bool,
}

#[derive(Debug, Args)]
pub struct SetupArgs {
    /// The packages of every test of the workspace, not only the main job's.
    #[arg(long)]
    pub tests: bool,
    /// Only print the packages, one a line; install nothing.
    #[arg(long)]
    pub list: bool,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub cell: CellFlags,
    /// Repetitions of each measurement.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub reps: u32,
    /// The scenarios to time (default: the three of the end-to-end issue).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "counterloop,fileio1,ptree1"
    )]
    pub scenario: Vec<String>,
    /// A large-memory scenario whose checkpoint and restore are timed (skipped if absent).
    #[arg(long, default_value = "bigmem")]
    pub big: String,
    /// The large scenario in each of these modes (comma-separated): its freeze time, its
    /// downtime (frozen plus restore to a running tree) and a lazy restore's last page,
    /// from criu's own measures, e.g. `plain,pre=2,lazy,page-server`.
    #[arg(long, value_delimiter = ',', value_name = "MODE,...", value_parser = parse_mode, default_value = "plain")]
    pub big_modes: Vec<Mode>,
    #[arg(long, value_name = "DIR", default_value = "results")]
    pub results: PathBuf,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub cell: CellFlags,
    /// Check this machine's kernel and criu instead of a VM (root only).
    #[arg(long, conflicts_with_all = ["kernel", "userland", "criu"])]
    pub host: bool,
    /// Also say which OCI ways to checkpoint a container (podman over runc or crun, runc or
    /// crun alone) the userland can take, with the runtimes' versions (its `oci` image).
    #[arg(long, conflicts_with = "host")]
    pub oci: bool,
    /// The report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Where the doctor's run directory goes (console log, probe outputs).
    #[arg(long, value_name = "DIR", default_value = "results")]
    pub results: PathBuf,
}

#[derive(Debug, Args)]
pub struct ReproArgs {
    /// The scenario to rerun.
    pub scenario: String,
    #[command(flatten)]
    pub cell: CellFlags,
    /// Add the scenario files of this directory to the catalog (repeatable).
    #[arg(long = "scenarios", value_name = "DIR")]
    pub scenario_dirs: Vec<PathBuf>,
    /// Add the zdtm tests of this CRIU source tree (see `run --zdtm`).
    #[arg(long, value_name = "DIR")]
    pub zdtm: Option<PathBuf>,
    #[arg(long, value_name = "DIR", default_value = "results")]
    pub results: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct CkptinfoArgs {
    /// A CRIU image directory (e.g. results/latest/scenarios/ptree1/images-1).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// Print only the pids of the checkpointed processes, one per line, in tree order.
    #[arg(short = 'p', long = "pids")]
    pub pids: bool,
    /// Also print the errors of the criu logs in DIR and beside it, with their errno.
    #[arg(short = 'e', long = "errors")]
    pub errors: bool,
    /// Also list every file in DIR with its image type and size.
    #[arg(short = 'v', long = "verbose")]
    pub verbose: bool,
    /// Print the same as JSON.
    #[arg(long)]
    pub json: bool,
}

impl CkptinfoArgs {
    pub fn options(&self) -> crate::ckpt::info::Options {
        crate::ckpt::info::Options {
            dir: self.dir.clone(),
            pids: self.pids,
            errors: self.errors,
            verbose: self.verbose,
            json: self.json,
        }
    }
}

#[derive(Debug, Args)]
pub struct BisectArgs {
    /// Bisect this kernel tree (a git checkout): each step's kernel built as `kernel build`
    /// builds one, in one work directory kept across steps, through ccache. Without it,
    /// --criu names the CRIU tree (a git checkout) to bisect.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["kernel", "modules", "config"])]
    pub kernel_tree: Option<PathBuf>,
    /// A revision on one side of the change (a tag, a commit, a branch of the tree).
    #[arg(long, value_name = "REV")]
    pub good: String,
    /// The revision on the other side. Which one is older is read from the history; which
    /// way the change goes (a regression, or a fix) from the endpoints' runs.
    #[arg(long, value_name = "REV")]
    pub bad: String,
    /// Only this failure counts as failing: a failure class (`version-mismatch`) or a text
    /// of the failure (its message, first error line, errno); another failure at a step
    /// judges nothing.
    #[arg(long = "match", value_name = "CLASS|TEXT")]
    pub hunted: Option<String>,
    /// Runs of the scenarios per step, each in a fresh guest: a step fails when at least
    /// max(2, N/6) runs failed (all of them below 2 runs), passes when none failed and at
    /// least half passed, and is skipped otherwise.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub runs: u32,
    /// Runs of the culprit and of its parent afterwards, to confirm it (0: none).
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u32).range(0..=100))]
    pub confirm: u32,
    /// With --kernel-tree: start from this .config instead of `make defconfig`.
    #[arg(long, value_name = "FILE", requires = "kernel_tree")]
    pub base_config: Option<PathBuf>,
    /// With --kernel-tree: parallel make jobs (default: the number of cores).
    #[arg(short = 'j', long, requires = "kernel_tree", value_parser = make_jobs)]
    pub jobs: Option<usize>,
    #[command(flatten)]
    pub catalog: CatalogArgs,
    /// The scenarios judged at each step (comma-separated names).
    #[arg(long, value_delimiter = ',', required = true)]
    pub scenario: Vec<String>,
    /// Where the bisection's directory (`bisect-<id>/`) goes.
    #[arg(long, value_name = "DIR", default_value = "results")]
    pub results: PathBuf,
    #[command(flatten)]
    pub cell: CellFlags,
    /// Show every step of every scenario and the QEMU command line.
    #[arg(short, long)]
    pub verbose: bool,
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Add the scenario files of this directory to the catalog (repeatable).
    #[arg(long = "scenarios", value_name = "DIR")]
    pub scenario_dirs: Vec<PathBuf>,
    /// The scenarios to move (comma-separated names; default: those tagged `migrate`).
    #[arg(long, value_delimiter = ',')]
    pub scenario: Vec<String>,
    /// Where run directories go; `latest` links to the newest.
    #[arg(long, value_name = "DIR", default_value = "results")]
    pub results: PathBuf,
    /// Every (source, target) pair of the cells of --kernels x --criu x --cpu (each a
    /// comma-separated list here) on --userland, the same cell twice included; prints the
    /// from x to table.
    #[arg(long, conflicts_with_all = ["to_kernel", "to_userland", "to_criu", "to_cpu"])]
    pub matrix: bool,
    /// The kernels of --matrix (comma-separated suites or paths; default: --kernel's).
    #[arg(long, value_delimiter = ',', requires = "matrix")]
    pub kernels: Vec<String>,
    /// Move only this share of the matrix's pairs, e.g. 2/4 (`crtest merge` joins them).
    #[arg(long, value_name = "i/n", requires = "matrix")]
    pub shard: Option<Shard>,
    /// The source cell (where the scenarios start and are dumped).
    #[command(flatten)]
    pub cell: CellFlags,
    /// The target's kernel (default: the source's).
    #[arg(long, value_name = "NAME|PATH")]
    pub to_kernel: Option<String>,
    /// The target's userland (default: the source's).
    #[arg(long, value_name = "NAME")]
    pub to_userland: Option<String>,
    /// The target's criu (default: the source's).
    #[arg(long, value_name = "SOURCE")]
    pub to_criu: Option<String>,
    /// The target's QEMU CPU model (default: the source's).
    #[arg(long, value_name = "MODEL")]
    pub to_cpu: Option<String>,
    /// How the processes move: `images` (through the host), `page-server`, `pre-dump[=N]`
    /// (N pre-dumps to the target while they run, default 2), `lazy` (post-copy).
    #[arg(long, default_value = "images", value_parser = parse_move_mode)]
    pub mode: MoveMode,
    /// Put a fault in the way of every move, to check that the verdict is clear and the
    /// source's tree survives: `link-cut` (the target's link cut before the pages cross it),
    /// `corrupt-images` (the inventory cut short on its way to the target),
    /// `page-server-killed` (the target's page servers killed as the dump starts sending).
    #[arg(long, value_name = "FAULT")]
    pub fault: Option<crate::model::migration::Fault>,
    /// Keep the images of moves that held too.
    #[arg(long)]
    pub keep_images: bool,
    /// Show each step.
    #[arg(short, long)]
    pub verbose: bool,
}

fn parse_move_mode(s: &str) -> Result<MoveMode, crate::model::migration::MoveModeError> {
    s.parse()
}

impl MigrateArgs {
    /// The source cell's flags.
    pub fn cell_flags(&self) -> CellFlags {
        let src = &self.cell;
        CellFlags {
            cell: src.cell.clone(),
            memory: src.memory,
            cpus: src.cpus,
            cpu: src.cpu.clone(),
            pristine: false,
            boot_each: src.boot_each,
        }
    }

    /// The target cell's flags: the source's, with what `--to-*` changes.
    pub fn target(&self) -> CellFlags {
        let src = &self.cell;
        let kernel_changed = self.to_kernel.is_some();
        CellFlags {
            cell: CellArgs {
                kernel: self.to_kernel.clone().or_else(|| src.cell.kernel.clone()),
                modules: (!kernel_changed)
                    .then(|| src.cell.modules.clone())
                    .flatten(),
                config: (!kernel_changed).then(|| src.cell.config.clone()).flatten(),
                userland: self
                    .to_userland
                    .clone()
                    .or_else(|| src.cell.userland.clone()),
                criu: self.to_criu.clone().or_else(|| src.cell.criu.clone()),
            },
            memory: src.memory,
            cpus: src.cpus,
            cpu: self.to_cpu.clone().or_else(|| src.cpu.clone()),
            pristine: false,
            boot_each: src.boot_each,
        }
    }
}

#[derive(Debug, Args)]
pub struct MatrixArgs {
    #[command(flatten)]
    pub catalog: CatalogArgs,
    /// Only these scenarios (comma-separated names).
    #[arg(long, value_delimiter = ',')]
    pub scenario: Vec<String>,
    /// Kernels (comma-separated): Debian suites (bookworm, bookworm-backports, trixie, sid)
    /// or paths of bzImages / `crtest kernel build` directories.
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "NAME|PATH,...",
        default_value = "bookworm,trixie,sid"
    )]
    pub kernels: Vec<String>,
    /// Guest userlands (comma-separated Debian suites).
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "NAME,...",
        default_value = "bookworm,trixie,sid"
    )]
    pub userlands: Vec<String>,
    /// The criu of the cells (comma-separated): `package` (the default: each userland's
    /// own), a suite name (that userland's package; pairs only with that userland), or paths
    /// of CRIU source trees, each built for every userland (a column per userland and tree).
    #[arg(long, value_delimiter = ',', value_name = "SOURCE,...")]
    pub criu: Vec<String>,
    /// Guests run at once (default: the number of cores).
    #[arg(short = 'j', long, value_name = "N", value_parser = guests_at_once)]
    pub jobs: Option<usize>,
    /// Run only this share of the (cell, scenario) pairs, e.g. 2/4 (see `crtest merge`),
    /// split by the durations last measured (see --durations), else by counts. `auto`
    /// takes it from the CI engine (GitLab's CI_NODE_INDEX/CI_NODE_TOTAL); `auto/N` with
    /// a Kubernetes Indexed Job's JOB_COMPLETION_INDEX.
    #[arg(long, value_name = "i/n|auto[/n]")]
    pub shard: Option<ShardArg>,
    /// What shards are split by: a durations.json (`crtest merge` writes one), a run
    /// directory or run.json, or a results root (its history); comma-separated or
    /// repeated, the later winning for a pair both measured. Default: the history of
    /// --results. Every shard must be given the same.
    #[arg(long, value_name = "PATH", value_delimiter = ',')]
    pub durations: Vec<PathBuf>,
    /// Print how the work splits over N shards (each shard's cells, pairs and expected
    /// time, and the balance: slowest / mean) and run nothing.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=4096), conflicts_with = "shard")]
    pub plan: Option<u16>,
    /// Run a profile: a file of parts, each kernels x userlands x criu with its scenarios
    /// (`nightly` is `profiles/nightly.toml`; a path names another file). The parts' cells
    /// are one matrix, sharded as one.
    #[arg(long, value_name = "NAME|FILE", conflicts_with_all = ["scenario", "kernels", "userlands", "criu"])]
    pub profile: Option<String>,
    /// Where run directories go; `latest` links to the newest.
    #[arg(long, value_name = "DIR", default_value = "results")]
    pub results: PathBuf,
    /// Guest memory in MiB.
    #[arg(long, default_value_t = 2048, value_parser = memory_mib)]
    pub memory: u32,
    /// vCPUs per guest (default: 2 with -j 1, else 1: TCG guests on a shared machine).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=MAX_CPUS))]
    pub cpus: Option<u32>,
    /// Keep the criu images of passing scenarios too.
    #[arg(long)]
    pub keep_images: bool,
    /// Show every step.
    #[arg(short, long)]
    pub verbose: bool,
}

impl MatrixArgs {
    pub fn options(&self) -> crate::host::matrix::MatrixOptions {
        crate::host::matrix::MatrixOptions {
            kernels: self.kernels.clone(),
            userlands: self.userlands.clone(),
            criu: self.criu.clone(),
            zdtm: self.catalog.zdtm.clone(),
            jobs: self.jobs,
            shard: None,
            durations: self.durations.clone(),
            results: self.results.clone(),
            memory: self.memory,
            cpus: self.cpus,
            keep_images: self.keep_images,
            verbose: self.verbose,
        }
    }
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The older run: a run directory, its run.json, or a results root (its `latest`).
    pub old: PathBuf,
    /// The newer run, given the same way.
    pub new: PathBuf,
    /// Report checkpoint/restore time changes beyond this percentage.
    #[arg(long, default_value_t = 25.0, value_name = "PCT")]
    pub threshold_pct: f64,
    /// ... and beyond this many milliseconds.
    #[arg(long, default_value_t = 50, value_name = "MS")]
    pub threshold_ms: u64,
    /// Print the comparison as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Write a KCIDB JSON document (`kcidb.json`) into this directory.
    #[arg(long, value_name = "DIR")]
    pub kcidb: PathBuf,
    /// The origin (CI system) the objects are submitted as: `[a-z0-9_]+`.
    #[arg(long, default_value = "crtest")]
    pub origin: String,
    /// Runs: run directories (of `run`, `matrix` or `merge`), their run.json, or results
    /// roots (their `latest`).
    #[arg(required = true, value_name = "RUN")]
    pub runs: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// Run directories (or their run.json, or results roots whose `latest` is meant).
    #[arg(required = true, value_name = "DIR")]
    pub inputs: Vec<PathBuf>,
    /// Where the merged run directory goes; `latest` links to it.
    #[arg(long, value_name = "DIR", default_value = "results")]
    pub results: PathBuf,
}

#[derive(Debug, Args)]
pub struct DurationsArgs {
    /// Run directories, run.json files, results roots (their history) or durations files,
    /// the later winning for a pair two of them measured.
    #[arg(required = true, value_name = "PATH")]
    pub inputs: Vec<PathBuf>,
    /// Where to write them (default: standard output).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct KernelArgs {
    #[command(subcommand)]
    pub command: KernelCommand,
}

#[derive(Debug, Subcommand)]
pub enum KernelCommand {
    /// Build a guest kernel from a source tree with the required options merged in; prints
    /// the directory to give to `--kernel`.
    Build(BuildArgs),
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The kernel source: a git checkout, an unpacked tarball, or a `.tar.xz`/`.tar.gz`
    /// (e.g. /usr/src/linux-source-6.1.tar.xz from the linux-source-6.1 package).
    #[arg(long, value_name = "DIR|TARBALL")]
    pub source: PathBuf,
    /// Start from this .config instead of `make defconfig`.
    #[arg(long, value_name = "FILE")]
    pub base_config: Option<PathBuf>,
    /// Stop after configuring and checking the options (no compiling).
    #[arg(long)]
    pub config_only: bool,
    /// Build even when required options did not survive olddefconfig.
    #[arg(long)]
    pub allow_missing: bool,
    /// Parallel make jobs (default: the number of cores).
    #[arg(short = 'j', long, value_parser = make_jobs)]
    pub jobs: Option<usize>,
}

impl BuildArgs {
    pub fn options(&self) -> crate::host::kernel_build::BuildOptions {
        crate::host::kernel_build::BuildOptions {
            source: self.source.clone(),
            base_config: self.base_config.clone(),
            config_only: self.config_only,
            allow_missing: self.allow_missing,
            jobs: self.jobs,
            work: None,
            ccache: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Parser)]
    struct T {
        #[command(flatten)]
        cell: CellArgs,
    }

    #[test]
    fn suite_is_a_hidden_alias_of_userland() {
        let t = T::try_parse_from(["t", "--suite", "trixie", "--kernel", "sid"]).unwrap();
        assert_eq!(t.cell.userland.as_deref(), Some("trixie"));
        let c = t.cell.spec().choice().unwrap();
        assert_eq!(c.kernel_label, "sid");
        assert_eq!(c.userland, "trixie");
        assert!(T::try_parse_from(["t", "--modules", "/m"]).is_err());
    }

    #[test]
    fn the_command_line_parses() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
