//! Scenario files: the TOML data in `scenarios/` and its validated, expanded form.
//!
//! A scenario names a workload, its arguments and the steps to run on it. The file name
//! (without `.toml`) is the scenario's name. See `scenarios/README.md` for the schema.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Workloads the guest bundle ships (one binary each, built from `workloads/`).
pub const KNOWN_WORKLOADS: &[&str] = crtest_workloads::ALL;

/// Default time for a whole scenario, in seconds.
pub const DEFAULT_TIMEOUT_S: u64 = 180;
/// Default time for one step, in seconds.
pub const DEFAULT_STEP_TIMEOUT_S: u64 = 60;

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("cannot read scenario {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot list scenario directory {path}: {source}")]
    ReadDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("malformed scenario {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid scenario {path}: key `{key}`: {message}")]
    Invalid {
        path: PathBuf,
        key: &'static str,
        message: String,
    },
    #[error("unknown scenario `{name}`; known scenarios: {}", known.join(", "))]
    Unknown { name: String, known: Vec<String> },
    #[error("scenario `{name}` is defined twice: {first} and {second}")]
    Duplicate {
        name: String,
        first: PathBuf,
        second: PathBuf,
    },
}

/// One step as written in a scenario file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepKind {
    /// Start the workload in a fresh working directory, as a session leader.
    Start,
    /// Wait until the workload has written its `ready` file.
    WaitReady,
    /// `criu dump` the workload's process tree (it is killed by the dump).
    Checkpoint,
    /// `criu restore` it from the images of the last checkpoint and check it keeps working.
    Restore,
    /// Ask the workload to check its own state (SIGTERM) and read its verdict.
    Verify,
    /// Run an external test command to its end; exit status 0 = pass (`[external]` only).
    Run,
}

impl StepKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StepKind::Start => "start",
            StepKind::WaitReady => "wait-ready",
            StepKind::Checkpoint => "checkpoint",
            StepKind::Restore => "restore",
            StepKind::Verify => "verify",
            StepKind::Run => "run",
        }
    }
}

const DEFAULT_STEPS: &[StepKind] = &[
    StepKind::Start,
    StepKind::WaitReady,
    StepKind::Checkpoint,
    StepKind::Restore,
    StepKind::Verify,
];

/// The file format. Unknown keys are errors.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ScenarioFile {
    /// One line saying what the scenario shows.
    description: String,
    /// Name of the workload binary (one of [`KNOWN_WORKLOADS`]); or give `program`.
    workload: Option<String>,
    /// A user's own program instead of a workload.
    program: Option<Program>,
    /// An external test run to its end instead (exit 0 = pass), e.g. LXC's own C/R test.
    external: Option<External>,
    /// Arguments passed to the workload.
    #[serde(default)]
    args: Vec<String>,
    /// Steps in order; default: start, wait-ready, checkpoint, restore, verify.
    #[serde(default)]
    steps: Option<Vec<StepKind>>,
    /// How many times the checkpoint..restore part of `steps` repeats (default 1).
    #[serde(default = "one")]
    iterations: u32,
    /// Time for the whole scenario in seconds (default 180).
    #[serde(default = "default_timeout")]
    timeout_s: u64,
    /// Time for one step in seconds (default 60).
    #[serde(default = "default_step_timeout")]
    step_timeout_s: u64,
    /// Free labels used for selection (`crtest run --tag`).
    #[serde(default)]
    tags: Vec<String>,
    /// Options added to both `criu dump` and `criu restore` (e.g. `--tcp-established`).
    #[serde(default)]
    criu_args: Vec<String>,
    /// Options added to `criu dump` (and `criu pre-dump`) only.
    #[serde(default)]
    dump_args: Vec<String>,
    /// Options added to `criu restore` only.
    #[serde(default)]
    restore_args: Vec<String>,
    /// Extra scenarios generated from this one: `leave-running`, `pre-dump`.
    #[serde(default)]
    variants: Vec<Variant>,
    #[serde(default)]
    requires: Requires,
    #[serde(default)]
    expect: Expect,
    /// Guest commands run before the scenario starts (each an argv; a failure is an `error`),
    /// e.g. to take a module or a tool away for a reproducer.
    #[serde(default)]
    before: Vec<Vec<String>>,
    /// Guest commands run after the scenario, whatever happened (to put things back).
    #[serde(default)]
    after: Vec<Vec<String>>,
    /// Guest commands run between each checkpoint and its restore, in the working directory,
    /// with `CRTEST_IMAGES` naming the images folder (to edit an image, say); a failure fails
    /// the restore step.
    #[serde(default)]
    between: Vec<Vec<String>>,
    /// Run in a guest of its own, booted just for it (default false).
    #[serde(default)]
    fresh_kernel: bool,
    /// A guest userland with more packages than the default (`vnc`), see
    /// [`crate::model::variant`]; scenarios that name one share a boot of that image.
    #[serde(default)]
    userland_variant: Option<String>,
    /// Which C/R tool runs the checkpoint and restore (default `criu`).
    #[serde(default)]
    backend: Backend,
    /// Container settings, with `backend = "lxc"`.
    #[serde(default)]
    lxc: Option<LxcOptions>,
    /// A desktop seen through VNC: screenshots and keys (see [`VncOptions`]).
    #[serde(default)]
    vnc: Option<VncOptions>,
}

/// A scenario whose workload shows a desktop on an RFB (VNC) server: the harness's own VNC
/// client types into it and takes screenshots before the checkpoint, after the restore
/// (compared with the first) and after typing more (which must change the screen).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct VncOptions {
    /// The RFB server's UNIX socket, relative to the working directory.
    #[serde(default = "default_vnc_socket")]
    pub socket: PathBuf,
    /// Keys typed once the desktop is up, before the first screenshot (`{Escape}`,
    /// `{Return}`, ... see [`crate::vnc::rfb::parse_keys`]).
    #[serde(default)]
    pub type_before: String,
    /// Keys typed after the restore, before the last screenshot and the verify step.
    #[serde(default)]
    pub type_after: String,
    /// A file of the working directory that must then hold `expect-text`.
    #[serde(default)]
    pub expect_file: Option<PathBuf>,
    #[serde(default)]
    pub expect_text: Option<String>,
    /// Pixels the restored screen may differ in from the checkpointed one (a cursor blink).
    #[serde(default = "default_max_diff")]
    pub max_diff_pixels: u64,
    /// Where the pointer goes before typing (focus follows it under twm); default: the
    /// middle of the screen.
    #[serde(default)]
    pub pointer: Option<[u16; 2]>,
}

fn default_vnc_socket() -> PathBuf {
    PathBuf::from("vnc.sock")
}

fn default_max_diff() -> u64 {
    200
}

/// The C/R tool a scenario goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// `criu dump` / `criu restore` on the workload's process tree.
    #[default]
    Criu,
    /// The workload in an LXC container; `lxc-checkpoint` (criu underneath).
    Lxc,
}

/// How the container of an `lxc` scenario is set up.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LxcOptions {
    /// Which tool starts the container (default `start`).
    #[serde(default)]
    pub mode: LxcMode,
    /// With `mode = "start"`: what the container's PID 1 is (default `lxc-init`).
    #[serde(default)]
    pub init: Option<LxcInit>,
    /// The container's network (default `empty`).
    #[serde(default)]
    pub network: LxcNetwork,
    /// After the restore, freeze the container at once and check it stays still, then
    /// unfreeze it (the wiki's `lxc-restart --pause` and `lxc-unfreeze`).
    #[serde(default)]
    pub pause_after_restore: bool,
}

impl LxcOptions {
    /// The container's PID 1: liblxc's own init with `execute`, else `init` (default lxc-init).
    pub fn pid1(&self) -> LxcInit {
        match self.mode {
            LxcMode::Execute => LxcInit::Liblxc,
            LxcMode::Start => self.init.unwrap_or(LxcInit::LxcInit),
        }
    }
}

/// Which tool starts an `lxc` scenario's container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LxcMode {
    /// `lxc-start -d`: the container runs `init` as its PID 1.
    #[default]
    Start,
    /// `lxc-execute` (the linux-cr wiki's application container): PID 1 is liblxc's own
    /// init, running in the forked `lxc-execute` process.
    Execute,
}

/// What runs as PID 1 of the container and starts the workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LxcInit {
    /// `init.lxc` from the lxc package, exec'd in the container: an application container.
    LxcInit,
    /// `busybox init`, starting the workload from `/etc/inittab`: a system container.
    Busybox,
    /// liblxc's built-in init (`mode = "execute"` only; not a value for `init`).
    #[serde(skip_deserializing)]
    Liblxc,
}

/// The network of an `lxc` scenario's container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LxcNetwork {
    /// A network namespace of its own holding only `lo` (the wiki's "no netns" container:
    /// it shares nothing it need not).
    #[default]
    Empty,
    /// A network namespace of its own with a veth pair whose host end is on `lxcbr0`.
    Veth,
}

/// What makes a scenario file invalid: the key and the message.
type Invalid<'a> = dyn Fn(&'static str, String) -> ScenarioError + 'a;

/// The scenario's name: its file name without `.toml`, of letters, digits, `-`, `_`, `.`.
fn name_of(path: &Path, invalid: &Invalid) -> Result<String, ScenarioError> {
    let name = path
        .file_stem()
        .and_then(|s| s.to_str())
        .ok_or_else(|| invalid("(file name)", "not valid UTF-8".into()))?
        .to_string();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
    {
        return Err(invalid(
            "(file name)",
            format!("scenario name `{name}` may only use letters, digits, '-', '_', '.'"),
        ));
    }
    Ok(name)
}

/// The scenario of an `[external]` test: run to its end, with none of the keys that shape
/// a checkpoint of the harness's.
fn external(
    file: ScenarioFile,
    mut e: External,
    name: String,
    path: &Path,
    base: &Path,
    invalid: &Invalid,
) -> Result<Scenario, ScenarioError> {
    if e.command.is_empty() {
        return Err(invalid("external", "`command` must not be empty".into()));
    }
    if file.steps.is_some() || !file.variants.is_empty() || file.iterations != 1 {
        return Err(invalid(
            "external",
            "an external test has no `steps`, `iterations` or `variants`: it runs to its end"
                .into(),
        ));
    }
    if !file.between.is_empty() {
        return Err(invalid(
            "between",
            "an external test checkpoints with its own tools: nothing runs between".into(),
        ));
    }
    if file.vnc.is_some() {
        return Err(invalid(
            "vnc",
            "an external test runs its own tools: no `[vnc]`".into(),
        ));
    }
    if file.backend != Backend::Criu || file.lxc.is_some() {
        return Err(invalid(
            "backend",
            "an external test runs its own tools: no `backend` or `[lxc]`".into(),
        ));
    }
    confine_files(&mut e.files, base, "external.files", invalid)?;
    for c in &e.collect {
        crate::model::confine::lexical(c).map_err(|e| {
            invalid(
                "external.collect",
                format!("{e} (collect names files of the working directory)"),
            )
        })?;
    }
    Ok(Scenario {
        name,
        description: file.description,
        target: Target::External(e),
        steps: vec![PlannedStep {
            kind: StepKind::Run,
            iteration: 1,
        }],
        iterations: 1,
        variant: Variant::Plain,
        timeout_s: file.timeout_s,
        step_timeout_s: file.step_timeout_s,
        tags: file.tags,
        dump_args: Vec::new(),
        restore_args: Vec::new(),
        requires: file.requires,
        expect: file.expect,
        backend: Backend::Criu,
        lxc: None,
        vnc: None,
        before: file.before,
        after: file.after,
        between: Vec::new(),
        fresh_kernel: file.fresh_kernel,
        userland_variant: file.userland_variant,
        source: path.to_path_buf(),
    })
}

/// What runs: a known workload with its arguments, or a user's program (its files inside
/// the scenario's folder).
fn target_of(
    file: &mut ScenarioFile,
    base: &Path,
    invalid: &Invalid,
) -> Result<Target, ScenarioError> {
    match (file.workload.take(), file.program.take()) {
        (Some(w), None) => {
            if !KNOWN_WORKLOADS.contains(&w.as_str()) {
                return Err(invalid(
                    "workload",
                    format!(
                        "unknown workload `{w}`; known workloads: {}",
                        KNOWN_WORKLOADS.join(", ")
                    ),
                ));
            }
            Ok(Target::Workload(Workload {
                name: w,
                args: std::mem::take(&mut file.args),
            }))
        }
        (None, Some(mut p)) => {
            if p.command.is_empty() || p.check.is_empty() {
                return Err(invalid(
                    "program",
                    "`command` and `check` must not be empty".into(),
                ));
            }
            ready_spec(&p.ready).map_err(|e| invalid("program.ready", e.to_string()))?;
            confine_files(&mut p.files, base, "program.files", invalid)?;
            Ok(Target::Program(p))
        }
        (Some(_), Some(_)) => Err(invalid(
            "workload",
            "give `workload` or `program`, not both".into(),
        )),
        (None, None) => Err(invalid(
            "workload",
            "missing: give `workload`, `program` or `external`".into(),
        )),
    }
}

/// The container options of a `backend = "lxc"` scenario (defaults when `[lxc]` is left
/// out); none for criu's backend.
fn lxc_of(file: &mut ScenarioFile, invalid: &Invalid) -> Result<Option<LxcOptions>, ScenarioError> {
    if file.lxc.is_some() && file.backend != Backend::Lxc {
        return Err(invalid("lxc", "`[lxc]` needs `backend = \"lxc\"`".into()));
    }
    if file.backend == Backend::Criu {
        return Ok(None);
    }
    let o = file.lxc.take().unwrap_or_default();
    if o.mode == LxcMode::Execute && o.init.is_some() {
        return Err(invalid(
            "lxc.init",
            "`init` goes with `mode = \"start\"`: lxc-execute runs liblxc's own init".into(),
        ));
    }
    if !(file.criu_args.is_empty() && file.dump_args.is_empty() && file.restore_args.is_empty()) {
        return Err(invalid(
            "criu-args",
            "lxc-checkpoint chooses criu's options itself: no `criu-args`, `dump-args` or `restore-args` with `backend = \"lxc\"`".into(),
        ));
    }
    Ok(Some(o))
}

/// The keys checked on their own: keys typed through VNC, counts and limits, relaxations.
fn check_limits(file: &ScenarioFile, invalid: &Invalid) -> Result<(), ScenarioError> {
    if let Some(v) = &file.vnc {
        for (key, text) in [
            ("vnc.type-before", &v.type_before),
            ("vnc.type-after", &v.type_after),
        ] {
            crate::vnc::rfb::parse_keys(text).map_err(|e| invalid(key, e.to_string()))?;
        }
        if v.expect_file.is_some() != v.expect_text.is_some() {
            return Err(invalid(
                "vnc.expect-file",
                "give `expect-file` and `expect-text` together".into(),
            ));
        }
    }
    if file.iterations == 0 {
        return Err(invalid("iterations", "must be at least 1".into()));
    }
    if file.timeout_s == 0 || file.step_timeout_s == 0 {
        return Err(invalid("timeout-s", "timeouts must be at least 1 s".into()));
    }
    for ig in &file.expect.visible_state_ignore {
        ig.validate()
            .map_err(|e| invalid("expect.visible-state-ignore", e.to_string()))?;
    }
    Ok(())
}

/// The plain scenario and one of each of its `variants` (`NAME@VARIANT`); an expectation
/// limited to some variants holds only its relaxations for the others.
fn with_variants(
    plain: Scenario,
    variants: Vec<Variant>,
    invalid: &Invalid,
) -> Result<Vec<Scenario>, ScenarioError> {
    let mut out = vec![plain.clone()];
    if plain
        .expect
        .variants
        .as_ref()
        .is_some_and(|vs| !vs.contains(&Variant::Plain))
    {
        out[0].expect = plain.expect.relaxations_only();
    }
    for v in variants {
        if v == Variant::Plain || out.iter().any(|s| s.variant == v) {
            return Err(invalid(
                "variants",
                format!("`{}` given twice or is the plain scenario", v.as_str()),
            ));
        }
        let mut s = plain.clone();
        s.name = format!("{}@{}", plain.name, v.as_str());
        s.variant = v;
        if s.expect
            .variants
            .as_ref()
            .is_some_and(|vs| !vs.contains(&v))
        {
            s.expect = plain.expect.relaxations_only();
        }
        if v == Variant::LeaveRunning {
            // The tree goes on after the dump and verifies itself; nothing to restore.
            s.steps.retain(|p| p.kind != StepKind::Restore);
        }
        out.push(s);
    }
    Ok(out)
}

/// Each of `files` resolved inside `base` (the scenario file's folder), or the error that
/// names the key and the path that leads out.
fn confine_files(
    files: &mut [PathBuf],
    base: &Path,
    key: &'static str,
    invalid: &dyn Fn(&'static str, String) -> ScenarioError,
) -> Result<(), ScenarioError> {
    for f in files {
        *f = crate::model::confine::resolve(base, f)
            .map_err(|e| invalid(key, crate::diagnose::chain::chain(&e)))?;
    }
    Ok(())
}

/// An external test: a command run in the guest to its end; exit status 0 = pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct External {
    /// The command line; a relative program path is looked up in the working directory.
    pub command: Vec<String>,
    /// Host files copied into the working directory (relative to the scenario file).
    #[serde(default)]
    pub files: Vec<PathBuf>,
    /// Guest files the command leaves behind (its tool logs), kept with the results and
    /// searched for the error line when it fails.
    #[serde(default)]
    pub collect: Vec<PathBuf>,
}

/// One of the project's workloads (`workloads/`), with its arguments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    pub name: String,
    pub args: Vec<String>,
}

/// A user's own program: started in the guest in a fresh working directory holding `files`;
/// after restore `check` runs there and its exit status decides the verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Program {
    /// The command line; a relative program path is looked up in the working directory.
    pub command: Vec<String>,
    /// Host files copied into the working directory (relative to the scenario file).
    #[serde(default)]
    pub files: Vec<PathBuf>,
    /// `file:NAME` (wait until NAME exists in the working directory) or `delay-ms:N`.
    #[serde(default = "default_ready")]
    pub ready: String,
    /// Run after restore in the working directory, with `CRTEST_PID` set; exit 0 = pass.
    pub check: Vec<String>,
}

fn default_ready() -> String {
    "delay-ms:1000".into()
}

/// How a scenario is checkpointed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Variant {
    /// `criu dump`, which kills the tree, then `criu restore`.
    #[default]
    Plain,
    /// `criu dump --leave-running`; the tree goes on and verifies itself (no restore).
    LeaveRunning,
    /// `criu pre-dump --track-mem`, then `criu dump` on top of it, then restore.
    PreDump,
}

impl Variant {
    pub fn as_str(self) -> &'static str {
        match self {
            Variant::Plain => "plain",
            Variant::LeaveRunning => "leave-running",
            Variant::PreDump => "pre-dump",
        }
    }
}

/// What a scenario needs; unmet, it is skipped with the requirement named.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Requires {
    /// Kernel options that must be `y` or `m`.
    #[serde(default)]
    pub kernel_config: Vec<String>,
    /// Features `criu check --feature NAME` must report (probed once per guest).
    #[serde(default)]
    pub criu_features: Vec<String>,
    /// Kernel modules that must load.
    #[serde(default)]
    pub modules: Vec<String>,
    /// Lowest kernel release, e.g. `5.10`.
    pub min_kernel: Option<String>,
    /// Lowest criu version, e.g. `3.16`.
    pub min_criu: Option<String>,
    /// Lowest lxc version.
    pub min_lxc: Option<String>,
}

/// What the scenario is expected to come to. A failure that matches is `xfail`; a pass
/// where a failure was expected is `xpass`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Expect {
    /// `pass` (default) or `fail`.
    #[serde(default)]
    pub outcome: ExpectedOutcome,
    /// The failure class the diagnosis must name (see `harness/data/failure-classes.toml`).
    pub class: Option<String>,
    /// The errno the diagnosis must name, e.g. `EBUSY`.
    pub errno: Option<String>,
    /// Text the failure's first error line (or message) must contain, so that an expected
    /// failure cannot hide a different one of the same class.
    pub contains: Option<String>,
    /// Why the failure is expected (shown in reports).
    pub reason: Option<String>,
    /// The variants the expectation holds for (default: all); the others are expected to
    /// pass (e.g. `["plain", "pre-dump"]` when a leave-running dump leaves the state alone).
    #[serde(default)]
    pub variants: Option<Vec<Variant>>,
    /// Items of the visible-state comparison whose differences do not fail the scenario,
    /// each with its reason: `[{ item = "fds.pos", reason = "..." }]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub visible_state_ignore: Vec<crate::model::visible::Ignore>,
}

impl Expect {
    /// A pass expected, with the same visible-state relaxations (for the variants an
    /// expected failure does not hold for).
    fn relaxations_only(&self) -> Expect {
        Expect {
            visible_state_ignore: self.visible_state_ignore.clone(),
            ..Expect::default()
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExpectedOutcome {
    #[default]
    Pass,
    Fail,
}

fn one() -> u32 {
    1
}
fn default_timeout() -> u64 {
    DEFAULT_TIMEOUT_S
}
fn default_step_timeout() -> u64 {
    DEFAULT_STEP_TIMEOUT_S
}

/// What the scenario runs: one of our workloads or a user's program.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    Workload(Workload),
    Program(Program),
    External(External),
    /// A test of CRIU's zdtm suite (made by `crate::zdtm`, never read from a file).
    Zdtm(ZdtmTest),
}

/// Where the guest mounts the built zdtm `test/` folder (zdtm.py's working directory).
pub const ZDTM_ROOT: &str = "/zdtm-tree";

/// A zdtm test as the executor runs it: started as zdtm.py starts it (the Makefile's
/// `NAME.pid` rule, in the test's folder, with zdtm.py's environment), the tree to dump the
/// pid its pidfile names, judged by the last line of its `.out` after SIGTERM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ZdtmTest {
    /// `static/NAME` or `transition/NAME`.
    pub test: String,
    /// The start command, run in the test's folder.
    pub command: Vec<String>,
    /// The environment zdtm.py gives the test (`ZDTM_UID`, ... for a non-suid test).
    pub env: Vec<(String, String)>,
    /// Run `NAME.checkskip` first; when it exits non-zero, the test is skipped.
    pub checkskip: bool,
    /// Run `NAME.hook` at zdtm's stages (`--pre-dump`, `--pre-restore`, `--post-restore`,
    /// `--clean`).
    pub hook: bool,
    /// How long the test may take to start and to stop (zdtm's `timeout`, 30 s by default).
    pub wait_s: u64,
    /// Why the harness does not run it (a `.desc` key or value it does not support).
    pub unsupported: Option<String>,
    /// Run it with the tree's own `zdtm.py` instead (`--zdtm-runner zdtm.py`), to compare.
    #[serde(default)]
    pub via_zdtm_py: bool,
}

impl ZdtmTest {
    /// The test's folder in the guest.
    pub fn dir(&self) -> PathBuf {
        let set = self.test.split('/').next().unwrap_or("static");
        Path::new(ZDTM_ROOT).join("zdtm").join(set)
    }
    /// The test's own name (`NAME`).
    pub fn name(&self) -> &str {
        self.test.rsplit('/').next().unwrap_or(&self.test)
    }
    /// A file beside the test: `NAME.<ext>`.
    pub fn file(&self, ext: &str) -> PathBuf {
        self.dir().join(format!("{}.{ext}", self.name()))
    }
}

/// A validated scenario with its steps expanded; this is what the executor runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    pub target: Target,
    /// Steps after expanding `iterations`: each step with its iteration number (from 1).
    pub steps: Vec<PlannedStep>,
    pub iterations: u32,
    pub variant: Variant,
    pub timeout_s: u64,
    pub step_timeout_s: u64,
    pub tags: Vec<String>,
    pub dump_args: Vec<String>,
    pub restore_args: Vec<String>,
    pub requires: Requires,
    pub expect: Expect,
    pub backend: Backend,
    pub lxc: Option<LxcOptions>,
    /// Screenshots and keys through VNC.
    #[serde(default)]
    pub vnc: Option<VncOptions>,
    /// Guest commands before the scenario and after it (always).
    pub before: Vec<Vec<String>>,
    pub after: Vec<Vec<String>>,
    /// Guest commands between each checkpoint and its restore (`CRTEST_IMAGES` set).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub between: Vec<Vec<String>>,
    /// Needs a guest booted just for it.
    #[serde(default)]
    pub fresh_kernel: bool,
    /// The userland variant the scenario needs (`None`: the default image).
    #[serde(default)]
    pub userland_variant: Option<String>,
    /// Where the scenario was read from.
    pub source: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedStep {
    pub kind: StepKind,
    pub iteration: u32,
}

impl Target {
    /// Host files the target copies into its working directory.
    pub fn files(&self) -> &[PathBuf] {
        match self {
            Target::Workload(_) => &[],
            Target::Program(p) => &p.files,
            Target::External(e) => &e.files,
            Target::Zdtm(_) => &[],
        }
    }
}

impl Scenario {
    /// The workload's name, or the user's program for a program scenario.
    pub fn what(&self) -> &str {
        match &self.target {
            Target::Workload(w) => &w.name,
            Target::Program(p) => p.command.first().map_or("program", String::as_str),
            Target::External(e) => e.command.first().map_or("external", String::as_str),
            Target::Zdtm(z) => &z.test,
        }
    }

    /// Parses and validates one scenario file's text into its scenarios (the plain one and
    /// one per variant). `path` gives the name and appears in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Vec<Scenario>, ScenarioError> {
        let mut file: ScenarioFile = toml::from_str(text).map_err(|e| ScenarioError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        let invalid = |key, message: String| ScenarioError::Invalid {
            path: path.to_path_buf(),
            key,
            message,
        };
        let name = name_of(path, &invalid)?;
        let given = [
            file.workload.is_some(),
            file.program.is_some(),
            file.external.is_some(),
        ];
        if given.iter().filter(|g| **g).count() > 1 {
            return Err(invalid(
                "workload",
                "give one of `workload`, `program` or `external`".into(),
            ));
        }
        if let Some(v) = &file.userland_variant {
            if crate::model::variant::find(v).is_none() {
                return Err(invalid(
                    "userland-variant",
                    format!(
                        "unknown userland variant `{v}`; known: {}",
                        crate::model::variant::names().join(", ")
                    ),
                ));
            }
        }
        let base = path.parent().unwrap_or(Path::new("."));
        if let Some(e) = file.external.take() {
            return external(file, e, name, path, base, &invalid).map(|s| vec![s]);
        }
        let target = target_of(&mut file, base, &invalid)?;
        let lxc = lxc_of(&mut file, &invalid)?;
        check_limits(&file, &invalid)?;
        let steps = file.steps.as_deref().unwrap_or(DEFAULT_STEPS);
        let expanded = expand_steps(steps, file.iterations).map_err(|m| invalid("steps", m))?;
        let mut dump_args = file.criu_args.clone();
        dump_args.extend(file.dump_args);
        let mut restore_args = file.criu_args;
        restore_args.extend(file.restore_args);
        let plain = Scenario {
            name,
            description: file.description,
            target,
            steps: expanded,
            iterations: file.iterations,
            variant: Variant::Plain,
            timeout_s: file.timeout_s,
            step_timeout_s: file.step_timeout_s,
            tags: file.tags,
            dump_args,
            restore_args,
            requires: file.requires,
            expect: file.expect,
            backend: file.backend,
            lxc,
            vnc: file.vnc,
            before: file.before,
            after: file.after,
            between: file.between,
            fresh_kernel: file.fresh_kernel,
            userland_variant: file.userland_variant.clone(),
            source: path.to_path_buf(),
        };
        with_variants(plain, file.variants, &invalid)
    }

    /// Reads and validates one scenario file.
    pub fn load(path: &Path) -> Result<Vec<Scenario>, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Scenario::parse(path, &text)
    }
}

/// How a program signals readiness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadySpec {
    File(String),
    DelayMs(u64),
}

/// A `ready` that is neither `file:NAME` nor `delay-ms:N`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadySpecError {
    #[error("`{0}`: delay-ms needs a number")]
    NotANumber(String),
    #[error("`{0}`: use `file:NAME` or `delay-ms:N`")]
    Unknown(String),
}

/// Reads a program's `ready`: `file:NAME` (a name in the working directory) or `delay-ms:N`.
pub fn ready_spec(text: &str) -> Result<ReadySpec, ReadySpecError> {
    match text.split_once(':') {
        Some(("file", f)) if !f.is_empty() && !f.contains('/') => Ok(ReadySpec::File(f.into())),
        Some(("delay-ms", n)) => n
            .parse()
            .map(ReadySpec::DelayMs)
            .map_err(|_| ReadySpecError::NotANumber(text.to_string())),
        _ => Err(ReadySpecError::Unknown(text.to_string())),
    }
}

/// Checks the step order and repeats the checkpoint..restore part `iterations` times.
fn expand_steps(steps: &[StepKind], iterations: u32) -> Result<Vec<PlannedStep>, String> {
    use StepKind::*;
    if steps.contains(&Run) {
        return Err("`run` is the step of an `[external]` test only".into());
    }
    let pos = |k| steps.iter().position(|s| *s == k);
    let count = |k| steps.iter().filter(|s| **s == k).count();
    for k in [Start, WaitReady, Checkpoint, Restore, Verify] {
        if count(k) > 1 {
            return Err(format!(
                "`{}` appears more than once (use `iterations` to repeat checkpoint/restore)",
                k.as_str()
            ));
        }
    }
    if pos(Start) != Some(0) {
        return Err("the first step must be `start`".into());
    }
    let order: Vec<StepKind> = steps.to_vec();
    let mut sorted = order.clone();
    sorted.sort_by_key(|k| *k as u8);
    if sorted != order {
        return Err(
            "steps must keep the order start, wait-ready, checkpoint, restore, verify".into(),
        );
    }
    if pos(Restore).is_some() && pos(Checkpoint).is_none() {
        return Err("`restore` needs a `checkpoint` before it".into());
    }
    if pos(Checkpoint).is_some() && pos(WaitReady).is_none() {
        return Err("`checkpoint` needs `wait-ready` before it".into());
    }
    let mut out = Vec::new();
    let repeat: Vec<StepKind> = order
        .iter()
        .copied()
        .filter(|k| matches!(k, Checkpoint | Restore))
        .collect();
    for k in order
        .iter()
        .copied()
        .filter(|k| matches!(k, Start | WaitReady))
    {
        out.push(PlannedStep {
            kind: k,
            iteration: 1,
        });
    }
    for iteration in 1..=iterations {
        for &kind in &repeat {
            out.push(PlannedStep { kind, iteration });
        }
    }
    if order.contains(&Verify) {
        out.push(PlannedStep {
            kind: Verify,
            iteration: iterations,
        });
    }
    Ok(out)
}

/// All scenarios of a directory (`*.toml`), sorted by name.
pub fn load_dir(dir: &Path) -> Result<Vec<Scenario>, ScenarioError> {
    let entries = std::fs::read_dir(dir).map_err(|source| ScenarioError::ReadDir {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut paths = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| ScenarioError::ReadDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "toml") {
            paths.push(path);
        }
    }
    paths.sort();
    let mut out: Vec<Scenario> = Vec::new();
    for path in paths {
        for s in Scenario::load(&path)? {
            if let Some(prev) = out.iter().find(|p| p.name == s.name) {
                return Err(ScenarioError::Duplicate {
                    name: s.name.clone(),
                    first: prev.source.clone(),
                    second: s.source,
                });
            }
            out.push(s);
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Picks scenarios by name (all when `names` is empty) and by tag (any of `tags`).
pub fn select(
    all: &[Scenario],
    names: &[String],
    tags: &[String],
) -> Result<Vec<Scenario>, ScenarioError> {
    let known = || all.iter().map(|s| s.name.clone()).collect::<Vec<_>>();
    let mut out = Vec::new();
    if names.is_empty() {
        // A `noauto` scenario (zdtm's flag) runs only when named.
        out.extend(
            all.iter()
                .filter(|s| !s.tags.iter().any(|t| t == "noauto"))
                .cloned(),
        );
    } else {
        for name in names {
            match all.iter().find(|s| &s.name == name) {
                Some(s) if !out.iter().any(|o: &Scenario| o.name == s.name) => out.push(s.clone()),
                Some(_) => {}
                None => {
                    return Err(ScenarioError::Unknown {
                        name: name.clone(),
                        known: known(),
                    })
                }
            }
        }
    }
    if !tags.is_empty() {
        out.retain(|s| s.tags.iter().any(|t| tags.contains(t)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn parse(text: &str) -> Result<Scenario, ScenarioError> {
        Scenario::parse(Path::new("scenarios/demo.toml"), text).map(|mut v| v.remove(0))
    }

    #[test]
    fn variants_are_generated_from_one_file() {
        let all = Scenario::parse(
            Path::new("s/mem.toml"),
            "description = \"d\"\nworkload = \"fileio1\"\nvariants = [\"leave-running\", \"pre-dump\"]\ncriu-args = [\"--file-locks\"]\n",
        )
        .unwrap();
        let names: Vec<_> = all.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["mem", "mem@leave-running", "mem@pre-dump"]);
        assert!(!all[1].steps.iter().any(|p| p.kind == StepKind::Restore));
        assert_eq!(all[2].variant, Variant::PreDump);
        assert_eq!(all[2].dump_args, ["--file-locks"]);
        assert_eq!(all[2].restore_args, ["--file-locks"]);
    }

    #[test]
    fn visible_state_relaxations_are_checked_and_kept_by_variants() {
        let all = Scenario::parse(
            Path::new("s/v.toml"),
            "description = \"d\"\nworkload = \"fileio1\"\nvariants = [\"pre-dump\"]\n[expect]\noutcome = \"fail\"\ncontains = \"x\"\nvariants = [\"plain\"]\nvisible-state-ignore = [{ item = \"fds.pos\", reason = \"it appends\" }]\n",
        )
        .unwrap();
        assert_eq!(all[1].expect.outcome, ExpectedOutcome::Pass);
        assert_eq!(all[1].expect.visible_state_ignore[0].item, "fds.pos");
        let err = parse(
            "description = \"d\"\nworkload = \"fileio1\"\n[expect]\nvisible-state-ignore = [{ item = \"memory\", reason = \"r\" }]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("visible-state-ignore") && err.contains("unknown item `memory`"),
            "{err}"
        );
    }

    #[test]
    fn requires_and_expect_parse() {
        let s = parse(
            "description = \"d\"\nworkload = \"fileio1\"\n[requires]\nkernel-config = [\"CONFIG_X\"]\nmin-criu = \"3.16\"\n[expect]\noutcome = \"fail\"\nclass = \"pid-collision\"\nerrno = \"EEXIST\"\n",
        )
        .unwrap();
        assert_eq!(s.requires.kernel_config, ["CONFIG_X"]);
        assert_eq!(s.expect.outcome, ExpectedOutcome::Fail);
        assert_eq!(s.expect.errno.as_deref(), Some("EEXIST"));
        let err =
            parse("description = \"d\"\nworkload = \"fileio1\"\n[requires]\nmin-kernal = \"5\"\n")
                .unwrap_err()
                .to_string();
        assert!(
            err.contains("min-kernal") && err.contains("line 4"),
            "{err}"
        );
    }

    #[test]
    fn a_users_program() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("loop.sh"), "true").unwrap();
        let s = Scenario::parse(
            &t.path().join("mine.toml"),
            "description = \"d\"\n[program]\ncommand = [\"./loop.sh\"]\nfiles = [\"loop.sh\"]\nready = \"file:started\"\ncheck = [\"sh\", \"-c\", \"test -s out\"]\n",
        )
        .unwrap()
        .remove(0);
        let Target::Program(p) = &s.target else {
            panic!("not a program")
        };
        assert_eq!(p.files, [t.path().canonicalize().unwrap().join("loop.sh")]);
        assert_eq!(
            ready_spec(&p.ready).unwrap(),
            ReadySpec::File("started".into())
        );
        let err = Scenario::parse(
            Path::new("x.toml"),
            "description = \"d\"\n[program]\ncommand = [\"a\"]\nready = \"soon\"\ncheck = [\"true\"]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("program.ready"), "{err}");
    }

    #[test]
    fn a_desktop_seen_through_vnc() {
        let s = parse(
            "description = \"d\"\nworkload = \"vncdesk\"\nuserland-variant = \"vnc\"\n[vnc]\ntype-before = \"ihi{Escape}\"\nexpect-file = \"notes.txt\"\nexpect-text = \"hi\\n\"\n",
        )
        .unwrap();
        assert_eq!(s.userland_variant.as_deref(), Some("vnc"));
        let v = s.vnc.unwrap();
        assert_eq!(v.socket, PathBuf::from("vnc.sock"));
        assert_eq!(v.max_diff_pixels, 200);
        assert_eq!(v.expect_text.as_deref(), Some("hi\n"));
    }

    #[rstest]
    #[case::unknown_variant(
        "userland-variant = \"gnome\"\n",
        "unknown userland variant `gnome`; known: vnc"
    )]
    #[case::bad_key("[vnc]\ntype-before = \"{Esc}\"\n", "vnc.type-before")]
    #[case::file_without_text(
        "[vnc]\nexpect-file = \"n.txt\"\n",
        "give `expect-file` and `expect-text` together"
    )]
    #[case::unknown_field("[vnc]\nscreen = 1\n", "screen")]
    fn bad_desktop_settings_are_named(#[case] extra: &str, #[case] want: &str) {
        let err = parse(&format!(
            "description = \"d\"\nworkload = \"vncdesk\"\n{extra}"
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains(want), "{err}");
    }

    #[test]
    fn an_external_test_takes_no_vnc() {
        let err = parse("description = \"d\"\n[external]\ncommand = [\"true\"]\n[vnc]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("no `[vnc]`"), "{err}");
    }

    #[test]
    fn defaults_expand_to_the_five_steps() {
        let s = parse("description = \"d\"\nworkload = \"counterloop\"\n").unwrap();
        assert_eq!(s.name, "demo");
        let kinds: Vec<_> = s.steps.iter().map(|p| p.kind.as_str()).collect();
        assert_eq!(
            kinds,
            ["start", "wait-ready", "checkpoint", "restore", "verify"]
        );
        assert_eq!(s.timeout_s, DEFAULT_TIMEOUT_S);
    }

    #[test]
    fn iterations_repeat_checkpoint_and_restore() {
        let s = parse("description = \"d\"\nworkload = \"fileio1\"\niterations = 3\n").unwrap();
        let got: Vec<_> = s
            .steps
            .iter()
            .map(|p| format!("{}#{}", p.kind.as_str(), p.iteration))
            .collect();
        assert_eq!(
            got,
            [
                "start#1",
                "wait-ready#1",
                "checkpoint#1",
                "restore#1",
                "checkpoint#2",
                "restore#2",
                "checkpoint#3",
                "restore#3",
                "verify#3"
            ]
        );
    }

    #[rstest]
    #[case::unknown_key("description = \"d\"\nworkload = \"fileio1\"\nbogus = 1\n", "line 3")]
    #[case::unknown_key_named("description = \"d\"\nworkload = \"fileio1\"\nbogus = 1\n", "bogus")]
    #[case::wrong_type(
        "description = \"d\"\nworkload = \"fileio1\"\niterations = \"x\"\n",
        "line 3"
    )]
    #[case::missing_workload("description = \"d\"\n", "missing: give `workload`")]
    #[case::lxc_without_backend(
        "description = \"d\"\nworkload = \"fileio1\"\n[lxc]\nnetwork = \"veth\"\n",
        "`[lxc]` needs `backend"
    )]
    #[case::lxc_unknown_network(
        "description = \"d\"\nworkload = \"fileio1\"\nbackend = \"lxc\"\n[lxc]\nnetwork = \"macvlan\"\n",
        "macvlan"
    )]
    #[case::lxc_execute_with_init(
        "description = \"d\"\nworkload = \"fileio1\"\nbackend = \"lxc\"\n[lxc]\nmode = \"execute\"\ninit = \"busybox\"\n",
        "lxc.init"
    )]
    #[case::lxc_liblxc_is_not_a_choice(
        "description = \"d\"\nworkload = \"fileio1\"\nbackend = \"lxc\"\n[lxc]\ninit = \"liblxc\"\n",
        "liblxc"
    )]
    #[case::lxc_with_criu_args(
        "description = \"d\"\nworkload = \"fileio1\"\nbackend = \"lxc\"\ncriu-args = [\"--shell-job\"]\n",
        "lxc-checkpoint chooses"
    )]
    #[case::external_with_steps(
        "description = \"d\"\nsteps = [\"start\"]\n[external]\ncommand = [\"true\"]\n",
        "no `steps`"
    )]
    #[case::external_with_between(
        "description = \"d\"\nbetween = [[\"true\"]]\n[external]\ncommand = [\"true\"]\n",
        "nothing runs between"
    )]
    #[case::external_and_workload(
        "description = \"d\"\nworkload = \"fileio1\"\n[external]\ncommand = [\"true\"]\n",
        "give one of"
    )]
    #[case::run_step_outside_external(
        "description = \"d\"\nworkload = \"fileio1\"\nsteps = [\"start\", \"run\"]\n",
        "`run`"
    )]
    #[case::unknown_workload(
        "description = \"d\"\nworkload = \"nope\"\n",
        "unknown workload `nope`"
    )]
    #[case::zero_iterations(
        "description = \"d\"\nworkload = \"fileio1\"\niterations = 0\n",
        "`iterations`"
    )]
    #[case::bad_order("description = \"d\"\nworkload = \"fileio1\"\nsteps = [\"start\", \"restore\", \"checkpoint\"]\n", "order")]
    #[case::restore_without_checkpoint("description = \"d\"\nworkload = \"fileio1\"\nsteps = [\"start\", \"wait-ready\", \"restore\"]\n", "needs a `checkpoint`")]
    #[case::unknown_step(
        "description = \"d\"\nworkload = \"fileio1\"\nsteps = [\"start\", \"dance\"]\n",
        "dance"
    )]
    fn bad_files_name_the_file_and_the_problem(#[case] text: &str, #[case] needle: &str) {
        let err = parse(text).unwrap_err().to_string();
        assert!(err.contains("scenarios/demo.toml"), "{err}");
        assert!(err.contains(needle), "`{needle}` not in: {err}");
    }

    #[test]
    fn lxc_options_and_their_defaults() {
        let s = parse("description = \"d\"\nworkload = \"fileio1\"\nbackend = \"lxc\"\n").unwrap();
        let o = s.lxc.as_ref().unwrap();
        assert_eq!(
            (o.mode, o.pid1(), o.network, o.pause_after_restore),
            (LxcMode::Start, LxcInit::LxcInit, LxcNetwork::Empty, false)
        );
        let s = parse(
            "description = \"d\"\nworkload = \"fileio1\"\nbackend = \"lxc\"\n[lxc]\nmode = \"execute\"\nnetwork = \"veth\"\npause-after-restore = true\n",
        )
        .unwrap();
        let o = s.lxc.as_ref().unwrap();
        assert_eq!((o.pid1(), o.network), (LxcInit::Liblxc, LxcNetwork::Veth));
        assert!(o.pause_after_restore);
        let s = parse(
            "description = \"d\"\nworkload = \"fileio1\"\nbackend = \"lxc\"\n[lxc]\ninit = \"busybox\"\n",
        )
        .unwrap();
        assert_eq!(s.lxc.unwrap().pid1(), LxcInit::Busybox);
        // A criu scenario has no container.
        assert_eq!(
            parse("description = \"d\"\nworkload = \"fileio1\"\n")
                .unwrap()
                .lxc,
            None
        );
    }

    #[test]
    fn an_external_test_is_one_run_step() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("fix.sh"), "true").unwrap();
        let s = Scenario::parse(
            &t.path().join("own.toml"),
            "description = \"d\"\ntimeout-s = 400\n[external]\ncommand = [\"lxc-test-checkpoint-restore\"]\nfiles = [\"fix.sh\"]\ncollect = [\"logs/dump.log\"]\n",
        )
        .unwrap()
        .remove(0);
        let Target::External(e) = &s.target else {
            panic!("not external")
        };
        assert_eq!(e.files, [t.path().canonicalize().unwrap().join("fix.sh")]);
        assert_eq!(e.collect, [PathBuf::from("logs/dump.log")]);
        assert_eq!(s.what(), "lxc-test-checkpoint-restore");
        let steps: Vec<_> = s.steps.iter().map(|p| p.kind.as_str()).collect();
        assert_eq!(steps, ["run"]);
        assert_eq!(s.timeout_s, 400);
    }

    /// A scenario from somewhere else cannot name a host file outside its folder, nor
    /// collect a guest file outside its working directory.
    #[rstest]
    #[case::dotdot("[program]\ncommand = [\"true\"]\nfiles = [\"../../../../etc/shadow\"]\ncheck = [\"true\"]\n", "program.files", "`..`")]
    #[case::absolute(
        "[program]\ncommand = [\"true\"]\nfiles = [\"/etc/shadow\"]\ncheck = [\"true\"]\n",
        "program.files",
        "absolute"
    )]
    #[case::symlink(
        "[program]\ncommand = [\"true\"]\nfiles = [\"shadow\"]\ncheck = [\"true\"]\n",
        "program.files",
        "through a symlink"
    )]
    #[case::missing(
        "[program]\ncommand = [\"true\"]\nfiles = [\"nope.sh\"]\ncheck = [\"true\"]\n",
        "program.files",
        "No such file"
    )]
    #[case::external_files(
        "[external]\ncommand = [\"true\"]\nfiles = [\"../x.sh\"]\n",
        "external.files",
        "`..`"
    )]
    #[case::external_symlink(
        "[external]\ncommand = [\"true\"]\nfiles = [\"shadow\"]\n",
        "external.files",
        "through a symlink"
    )]
    #[case::collect_absolute(
        "[external]\ncommand = [\"true\"]\ncollect = [\"/etc/shadow\"]\n",
        "external.collect",
        "absolute"
    )]
    #[case::collect_dotdot(
        "[external]\ncommand = [\"true\"]\ncollect = [\"../../etc/shadow\"]\n",
        "external.collect",
        "`..`"
    )]
    fn paths_that_lead_out_are_refused_at_load(
        #[case] body: &str,
        #[case] key: &str,
        #[case] needle: &str,
    ) {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("scen");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(t.path().join("secret"), "x").unwrap();
        std::os::unix::fs::symlink("../secret", dir.join("shadow")).unwrap();
        std::fs::write(
            dir.join("mine.toml"),
            format!("description = \"d\"\n{body}"),
        )
        .unwrap();
        let err = load_dir(&dir).unwrap_err().to_string();
        assert!(err.contains("mine.toml"), "{err}");
        assert!(err.contains(key), "`{key}` not in {err}");
        assert!(err.contains(needle), "`{needle}` not in {err}");
    }

    #[test]
    fn selection_by_name_and_tag() {
        let mk = |name: &str, tags: &[&str]| {
            let mut s = parse("description = \"d\"\nworkload = \"fileio1\"\n").unwrap();
            s.name = name.into();
            s.tags = tags.iter().map(|t| t.to_string()).collect();
            s
        };
        let all = vec![
            mk("a", &["smoke"]),
            mk("b", &[]),
            mk("c", &["smoke", "slow"]),
        ];
        let names = |v: Vec<Scenario>| v.into_iter().map(|s| s.name).collect::<Vec<_>>();
        assert_eq!(names(select(&all, &[], &[]).unwrap()), ["a", "b", "c"]);
        assert_eq!(
            names(select(&all, &[], &["smoke".into()]).unwrap()),
            ["a", "c"]
        );
        assert_eq!(
            names(select(&all, &["c".into(), "a".into()], &[]).unwrap()),
            ["c", "a"]
        );
        let err = select(&all, &["zz".into()], &[]).unwrap_err().to_string();
        assert_eq!(err, "unknown scenario `zz`; known scenarios: a, b, c");
    }

    /// Mutated scenario files (every truncation, random byte changes) give errors, never a
    /// panic.
    #[test]
    fn mutated_files_never_panic() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
        let mut seed: u64 = 0x5eed;
        let mut next = move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as usize
        };
        let alphabet = b"=[]\"#\n ,.-_az09{}'\\";
        for entry in std::fs::read_dir(&dir).unwrap().flatten().take(20) {
            let Ok(text) = std::fs::read_to_string(entry.path()) else {
                continue;
            };
            let bytes = text.as_bytes();
            for cut in 0..bytes.len() {
                let t = String::from_utf8_lossy(&bytes[..cut]);
                let _ = Scenario::parse(Path::new("x.toml"), &t);
            }
            for _ in 0..300 {
                let mut b = bytes.to_vec();
                for _ in 0..1 + next() % 4 {
                    let at = next() % b.len().max(1);
                    if !b.is_empty() {
                        b[at] = alphabet[next() % alphabet.len()];
                    }
                }
                let _ = Scenario::parse(Path::new("x.toml"), &String::from_utf8_lossy(&b));
            }
        }
    }

    #[test]
    fn the_shipped_scenarios_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
        let all = load_dir(&dir).unwrap();
        let names: Vec<_> = all.iter().map(|s| s.name.as_str()).collect();
        for want in ["counterloop", "fileio1", "ptree1"] {
            assert!(names.contains(&want), "{names:?}");
        }
    }
}
