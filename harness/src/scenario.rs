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
}

impl StepKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StepKind::Start => "start",
            StepKind::WaitReady => "wait-ready",
            StepKind::Checkpoint => "checkpoint",
            StepKind::Restore => "restore",
            StepKind::Verify => "verify",
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
    /// Name of the workload binary (one of [`KNOWN_WORKLOADS`]).
    workload: String,
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

/// A validated scenario with its steps expanded; this is what the executor runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    pub workload: String,
    pub args: Vec<String>,
    /// Steps after expanding `iterations`: each step with its iteration number (from 1).
    pub steps: Vec<PlannedStep>,
    pub iterations: u32,
    pub timeout_s: u64,
    pub step_timeout_s: u64,
    pub tags: Vec<String>,
    /// Where the scenario was read from.
    pub source: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedStep {
    pub kind: StepKind,
    pub iteration: u32,
}

impl Scenario {
    /// Parses and validates one scenario file's text. `path` is used for the name and errors.
    pub fn parse(path: &Path, text: &str) -> Result<Scenario, ScenarioError> {
        let file: ScenarioFile = toml::from_str(text).map_err(|e| ScenarioError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        let invalid = |key, message: String| ScenarioError::Invalid {
            path: path.to_path_buf(),
            key,
            message,
        };
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
        if !KNOWN_WORKLOADS.contains(&file.workload.as_str()) {
            return Err(invalid(
                "workload",
                format!(
                    "unknown workload `{}`; known workloads: {}",
                    file.workload,
                    KNOWN_WORKLOADS.join(", ")
                ),
            ));
        }
        if file.iterations == 0 {
            return Err(invalid("iterations", "must be at least 1".into()));
        }
        if file.timeout_s == 0 || file.step_timeout_s == 0 {
            return Err(invalid("timeout-s", "timeouts must be at least 1 s".into()));
        }
        let steps = file.steps.as_deref().unwrap_or(DEFAULT_STEPS);
        let steps = expand_steps(steps, file.iterations).map_err(|m| invalid("steps", m))?;
        Ok(Scenario {
            name,
            description: file.description,
            workload: file.workload,
            args: file.args,
            steps,
            iterations: file.iterations,
            timeout_s: file.timeout_s,
            step_timeout_s: file.step_timeout_s,
            tags: file.tags,
            source: path.to_path_buf(),
        })
    }

    /// Reads and validates one scenario file.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
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
    for k in order.iter().copied().filter(|k| matches!(k, Start | WaitReady)) {
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
        let s = Scenario::load(&path)?;
        if let Some(prev) = out.iter().find(|p| p.name == s.name) {
            return Err(ScenarioError::Duplicate {
                name: s.name.clone(),
                first: prev.source.clone(),
                second: s.source,
            });
        }
        out.push(s);
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
        out.extend(all.iter().cloned());
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
        Scenario::parse(Path::new("scenarios/demo.toml"), text)
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
    #[case::wrong_type("description = \"d\"\nworkload = \"fileio1\"\niterations = \"x\"\n", "line 3")]
    #[case::missing_workload("description = \"d\"\n", "workload")]
    #[case::unknown_workload("description = \"d\"\nworkload = \"nope\"\n", "unknown workload `nope`")]
    #[case::zero_iterations("description = \"d\"\nworkload = \"fileio1\"\niterations = 0\n", "`iterations`")]
    #[case::bad_order("description = \"d\"\nworkload = \"fileio1\"\nsteps = [\"start\", \"restore\", \"checkpoint\"]\n", "order")]
    #[case::restore_without_checkpoint("description = \"d\"\nworkload = \"fileio1\"\nsteps = [\"start\", \"wait-ready\", \"restore\"]\n", "needs a `checkpoint`")]
    #[case::unknown_step("description = \"d\"\nworkload = \"fileio1\"\nsteps = [\"start\", \"dance\"]\n", "dance")]
    fn bad_files_name_the_file_and_the_problem(#[case] text: &str, #[case] needle: &str) {
        let err = parse(text).unwrap_err().to_string();
        assert!(err.contains("scenarios/demo.toml"), "{err}");
        assert!(err.contains(needle), "`{needle}` not in: {err}");
    }

    #[test]
    fn selection_by_name_and_tag() {
        let mk = |name: &str, tags: &[&str]| {
            let mut s = parse("description = \"d\"\nworkload = \"fileio1\"\n").unwrap();
            s.name = name.into();
            s.tags = tags.iter().map(|t| t.to_string()).collect();
            s
        };
        let all = vec![mk("a", &["smoke"]), mk("b", &[]), mk("c", &["smoke", "slow"])];
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
