//! The scenario file as TOML gives it ([`ScenarioFile`]), and its checks: a file is
//! validated key by key (each error names the file and the key) and expanded into the
//! scenarios the executor runs, the plain one and one per variant.

use super::*;
use serde::Deserialize;
use std::path::{Path, PathBuf};

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
    variants: Vec<Mode>,
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
    /// Container settings, with `backend = "podman"`, `"runc"` or `"crun"`.
    #[serde(default)]
    oci: Option<OciOptions>,
    /// A desktop seen through VNC: screenshots and keys (see [`VncOptions`]).
    #[serde(default)]
    vnc: Option<VncOptions>,
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
    if file.backend != Backend::Criu || file.lxc.is_some() || file.oci.is_some() {
        return Err(invalid(
            "backend",
            "an external test runs its own tools: no `backend`, `[lxc]` or `[oci]`".into(),
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
        mode: Mode::PLAIN,
        timeout_s: file.timeout_s,
        step_timeout_s: file.step_timeout_s,
        tags: file.tags,
        dump_args: Vec::new(),
        restore_args: Vec::new(),
        requires: file.requires,
        expect: file.expect,
        backend: Backend::Criu,
        lxc: None,
        oci: None,
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
    if file.backend != Backend::Lxc {
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

/// The container options of an OCI scenario (`backend = "podman"`, `"runc"`, `"crun"`;
/// defaults when `[oci]` is left out): their userland variant is `oci`.
fn oci_of(file: &mut ScenarioFile, invalid: &Invalid) -> Result<Option<OciOptions>, ScenarioError> {
    if !file.backend.is_oci() {
        if file.oci.is_some() {
            return Err(invalid(
                "oci",
                "`[oci]` needs `backend = \"podman\"`, `\"runc\"` or `\"crun\"`".into(),
            ));
        }
        return Ok(None);
    }
    let o = file.oci.take().unwrap_or_default();
    if let Some((key, why)) = o.misfit(file.backend) {
        return Err(invalid(key, format!("{why} (backend {:?})", file.backend)));
    }
    if !(file.criu_args.is_empty() && file.dump_args.is_empty() && file.restore_args.is_empty()) {
        return Err(invalid(
            "criu-args",
            "the OCI runtime chooses criu's options itself: give them in `[oci]` \
             (`tcp-established`, `file-locks`)"
                .into(),
        ));
    }
    match file.userland_variant.as_deref() {
        None => file.userland_variant = Some("oci".into()),
        Some(v) if crate::model::variant::is_oci(v) => {}
        Some(v) => {
            return Err(invalid(
                "userland-variant",
                format!(
                    "an OCI scenario runs in the `oci` userland (podman, runc, crun), or \
                     `oci-vnc` for a desktop, not `{v}`"
                ),
            ))
        }
    }
    if !file.between.is_empty() {
        return Err(invalid(
            "between",
            "the runtime keeps the images where it likes: nothing runs between".into(),
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
    if let Some(range) = &file.expect.criu {
        crate::diagnose::version::parse_range(range)
            .map_err(|e| invalid("expect.criu", e.to_string()))?;
        if file.expect.outcome != ExpectedOutcome::Fail {
            return Err(invalid(
                "expect.criu",
                "bounds an expected failure: give it with `outcome = \"fail\"`".into(),
            ));
        }
    }
    if file.expect.fixed_by.is_some() && file.expect.criu.is_none() {
        return Err(invalid(
            "expect.fixed-by",
            "names the commit that bounds `criu`: give `criu` too".into(),
        ));
    }
    for ig in &file.expect.visible_state_ignore {
        ig.validate()
            .map_err(|e| invalid("expect.visible-state-ignore", e.to_string()))?;
    }
    Ok(())
}

/// The plain scenario and one of each of its `variants` (`NAME@MODE`).
fn with_variants(
    plain: Scenario,
    variants: Vec<Mode>,
    invalid: &Invalid,
) -> Result<Vec<Scenario>, ScenarioError> {
    let mut out = vec![plain.clone()];
    if plain
        .expect
        .variants
        .as_ref()
        .is_some_and(|vs| !vs.contains(&Mode::PLAIN))
    {
        out[0].expect = plain.expect.relaxations_only();
    }
    for v in variants {
        if v.is_plain() || out.iter().any(|s| s.mode == v) {
            return Err(invalid(
                "variants",
                format!("`{v}` given twice or is the plain scenario"),
            ));
        }
        let s = plain.in_mode(v).ok_or_else(|| {
            invalid(
                "variants",
                format!("the {:?} backend cannot run mode `{v}`", plain.backend),
            )
        })?;
        out.push(s);
    }
    Ok(out)
}

/// `vm.unprivileged_userfaultfd` set to 1 (where the kernel has it), its value kept.
const UFFD_SYSCTL_ON: [&str; 3] = [
    "sh",
    "-c",
    "f=/proc/sys/vm/unprivileged_userfaultfd; [ -e $f ] || exit 0; \
     cat $f > /run/crtest-uffd.saved && echo 1 > $f",
];
/// ... and put back.
const UFFD_SYSCTL_BACK: [&str; 3] = [
    "sh",
    "-c",
    "f=/proc/sys/vm/unprivileged_userfaultfd; [ -e /run/crtest-uffd.saved ] || exit 0; \
     cat /run/crtest-uffd.saved > $f && rm -f /run/crtest-uffd.saved",
];

impl Scenario {
    /// This plain scenario in `mode`: named `NAME@MODE`, its expectation kept where it holds
    /// for every mode or names this one (else only its relaxations), without the restore
    /// for `leave-running`, repeated for `iters=N`, with the mode's needs among its
    /// requirements. `None` when its backend cannot drive criu that way (`lxc-checkpoint`
    /// has plain, leave-running and one pre-dump; an external test runs its own tools).
    pub fn in_mode(&self, mode: Mode) -> Option<Scenario> {
        if mode == self.mode {
            return Some(self.clone());
        }
        let external = matches!(self.target, Target::External(_));
        let container = self.backend == Backend::Lxc || self.backend.is_oci();
        if !self.mode.is_plain() || external || (container && !mode.lxc_can()) {
            return None;
        }
        let mut s = self.clone();
        s.name = format!("{}@{mode}", self.name);
        s.mode = mode;
        if !s.expect.holds_for(&mode) {
            s.expect = self.expect.relaxations_only();
        }
        let runs_itself = s.steps.iter().any(|p| p.kind == StepKind::Run);
        if mode.iters > 0 && !runs_itself {
            let mut kinds: Vec<StepKind> = Vec::new();
            for p in &s.steps {
                if !kinds.contains(&p.kind) {
                    kinds.push(p.kind);
                }
            }
            s.steps = expand_steps(&kinds, mode.iters).ok()?;
            s.iterations = mode.iters;
        }
        if mode.leave_running {
            // The tree goes on after the dump and verifies itself; nothing to restore.
            s.steps.retain(|p| p.kind != StepKind::Restore);
        }
        for f in mode.criu_features() {
            if !s.requires.criu_features.contains(&f) {
                s.requires.criu_features.push(f);
            }
        }
        s.requires.criu_options.extend(mode.criu_options());
        if let Some(v) = mode.min_criu() {
            s.requires.min_criu = Some(match &s.requires.min_criu {
                Some(own) if crate::diagnose::version::at_least(own, v) => own.clone(),
                _ => v.to_string(),
            });
        }
        s.tags.extend(mode.tags());
        if let Target::Zdtm(z) = &mut s.target {
            // What zdtm.py leaves out in the mode, in its words.
            let has = |f: &str| z.flags.iter().any(|x| x == f);
            let why = match mode.lazy {
                Lazy::Local | Lazy::Remote if has("nolazy") => Some("lazy pages are not supported"),
                Lazy::Remote if has("noremotelazy") => Some("remote lazy pages are not supported"),
                _ if mode.leave_running && has("reqrst") => Some("restore stage is required"),
                _ => None,
            };
            if let (None, Some(why)) = (&z.unsupported, why) {
                z.unsupported = Some(format!("{why} (its .desc flags it)"));
            }
            if z.flavor == ZdtmFlavor::Uns && mode.lazy != Lazy::No {
                // The restored tree opens its userfaultfd inside a user namespace, which
                // kernels from 5.11 allow only with vm.unprivileged_userfaultfd=1: CRIU's
                // CI sets it before its lazy runs; set here, and put back after.
                s.before.push(UFFD_SYSCTL_ON.map(String::from).to_vec());
                s.after.push(UFFD_SYSCTL_BACK.map(String::from).to_vec());
            }
        }
        // More dumps take more time.
        let extra = 30 * (u64::from(mode.pre) + u64::from(mode.iters));
        s.timeout_s += extra;
        Some(s)
    }
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

fn one() -> u32 {
    1
}
fn default_timeout() -> u64 {
    DEFAULT_TIMEOUT_S
}
fn default_step_timeout() -> u64 {
    DEFAULT_STEP_TIMEOUT_S
}

impl Scenario {
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
        let oci = oci_of(&mut file, &invalid)?;
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
            mode: Mode::PLAIN,
            timeout_s: file.timeout_s,
            step_timeout_s: file.step_timeout_s,
            tags: file.tags,
            dump_args,
            restore_args,
            requires: file.requires,
            expect: file.expect,
            backend: file.backend,
            lxc,
            oci,
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
