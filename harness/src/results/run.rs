//! The run directory: `run.json` (rewritten atomically after every scenario), `junit.xml`,
//! and the `latest` link. The format is documented in `results/README.md`.

use crate::diagnose::doctor::ProbeOutput;
use crate::model::outcome::{Outcome, ScenarioResult};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Bumped when run.json changes incompatibly.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    #[error("cannot write results to {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn write_err<'a>(path: &'a Path) -> impl FnOnce(std::io::Error) -> ResultsError + 'a {
    move |source| ResultsError::Write {
        path: path.to_path_buf(),
        source,
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunReport {
    pub format_version: u32,
    pub run_id: String,
    pub started_at: String,
    /// When the run ended (finished or stopped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// The run's own wall time, from its start to its end, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wall_ms: Option<u64>,
    /// False while the run goes on, and when it was interrupted.
    pub finished: bool,
    /// What stopped the run early (a signal, the run's time limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interrupted: Option<String>,
    pub crtest_version: String,
    pub cells: Vec<CellReport>,
    /// What the run was asked to cover (`crtest matrix`, and `crtest run` with its one cell):
    /// the kernel and userland names of each cell, and where its files are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matrix: Option<MatrixInfo>,
}

/// The plan of a run: kernels x userlands, the scenarios, the shard.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MatrixInfo {
    /// Kernel names as given (`bookworm`, `sid`, a path), in the order given.
    pub kernels: Vec<String>,
    /// Userland names (`bookworm`, `trixie`, `sid`), in the order given.
    pub userlands: Vec<String>,
    /// The scenarios asked for (before a shard split).
    pub scenarios: Vec<String>,
    /// `i/n` when this run is one shard of a larger one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    /// Run ids this one was merged from (`crtest merge`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub merged_from: Vec<String>,
    /// How the shards were split, and this shard's expected time (a shard's run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<SplitInfo>,
    /// Each shard's expected and actual time (a merged run).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shard_times: Vec<ShardTime>,
    pub cells: Vec<MatrixCell>,
}

/// How a sharded run's work was split (`host::shard`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SplitInfo {
    /// `durations` (by the durations last measured) or `counts` (nothing was measured).
    pub method: String,
    /// Where the durations came from (a file, a run, a results history).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub durations: Option<String>,
    /// The digest of those durations: shards split from other durations may miss or
    /// repeat pairs, and `merge` says so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Guests at once on each shard's machine, as the split assumed.
    pub jobs: usize,
    /// Every shard's expected time (index `i-1` for shard `i`), ms; empty by counts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expected_ms: Vec<u64>,
    /// Pairs whose time was measured on their cell, taken from other cells, or unknown
    /// (counted as a typical pair).
    pub measured: usize,
    pub from_other_cells: usize,
    pub typical: usize,
}

/// One shard of a merged run: what its time was expected to be and what it was.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardTime {
    /// `i/n`.
    pub shard: String,
    pub run_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wall_ms: Option<u64>,
}

/// One cell of the plan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatrixCell {
    /// `cells[].id` of the report.
    pub id: String,
    /// The kernel's name in `MatrixInfo::kernels`.
    pub kernel: String,
    /// The userland's name in `MatrixInfo::userlands`.
    pub userland: String,
    /// The cell's own directory, relative to the run directory (`cells/<id>`); absent when
    /// the cell wrote into the run directory itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<String>,
    /// Wall time of the cell (prepare, boots, scenarios), ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wall_ms: Option<u64>,
}

impl RunReport {
    /// The plan entry of a cell, when the run has a plan.
    pub fn matrix_cell(&self, id: &str) -> Option<&MatrixCell> {
        self.matrix.as_ref()?.cells.iter().find(|c| c.id == id)
    }

    /// A name for the cell that stays the same across runs (the kernel and userland names,
    /// not the kernel release that changes with every Debian update): compare and history
    /// match cells by it.
    pub fn cell_key(&self, cell: &CellReport) -> String {
        match self.matrix_cell(&cell.id) {
            Some(m) => cell_id(&m.kernel, &m.userland),
            None => cell.id.clone(),
        }
    }
}

/// The id of the cell pairing the kernel named `kernel` with the userland named `userland`:
/// `kernel-sid+userland-bookworm`. Characters other than `[A-Za-z0-9._+-]` become `_`, so
/// the id is a directory name (`cells/<id>/`).
pub fn cell_id(kernel: &str, userland: &str) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "._+-".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    format!("kernel-{}+userland-{}", clean(kernel), clean(userland))
}

/// Reading a run back: `run.json`, or a run directory holding one, or a results root whose
/// `latest` link names one.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a crtest run.json: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// Loads a run: returns its directory and its report.
pub fn load_run(path: &Path) -> Result<(PathBuf, RunReport), LoadError> {
    let file = if path.is_dir() {
        let direct = path.join("run.json");
        let latest = path.join("latest").join("run.json");
        if !direct.is_file() && latest.is_file() {
            latest
        } else {
            direct
        }
    } else {
        path.to_path_buf()
    };
    let text = std::fs::read_to_string(&file).map_err(|source| LoadError::Read {
        path: file.clone(),
        source,
    })?;
    let report = serde_json::from_str(&text).map_err(|source| LoadError::Parse {
        path: file.clone(),
        source,
    })?;
    let dir = file
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    Ok((dir, report))
}

/// One kernel x userland pairing and what ran on it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CellReport {
    pub id: String,
    pub kernel: KernelInfo,
    pub userland: UserlandInfo,
    pub qemu: QemuInfo,
    /// From QEMU start to the agent's ready event, first boot (ms).
    pub boot_ms: Option<u64>,
    /// From QEMU start to the agent's ready event, first guest resumed from the saved ready
    /// state (ms); `None` when every guest booted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_ms: Option<u64>,
    /// Time spent preparing images (fetch, build, cache lookups), ms.
    pub prepare_ms: u64,
    /// Guest uptime (ms) when the kernel started the agent and at the end of each of its
    /// setup phases, first boot: where `boot_ms` goes.
    #[serde(default)]
    pub boot_marks: Vec<(String, u64)>,
    /// Setup notes from the guest (modules that did not load, ...).
    pub notes: Vec<String>,
    /// Probe commands run in the guest (`crtest doctor`), with status and output.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub probes: Vec<ProbeOutput>,
    pub scenarios: Vec<ScenarioResult>,
    /// A migration's pair of cells: this cell is the target (where the processes run
    /// after the move: its kernel is the one reports name), this says where they came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migration: Option<PairInfo>,
    /// The guests that ran the cell's scenarios at once (`run -j N`), each with its share.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub guests: Vec<GuestTime>,
}

/// One of the guests that shared a cell's scenarios.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestTime {
    /// The guest's folder (`shards/<i>`).
    pub dir: String,
    pub scenarios: usize,
    /// What its scenarios were expected to take (by their last durations, else their time
    /// limits), ms.
    pub expected_ms: u64,
    /// From its first boot to its last guest's end, ms.
    pub busy_ms: u64,
}

/// Where a migration's processes came from, and how they moved.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PairInfo {
    /// `images`, `page-server`, `pre-dump=N` or `lazy`.
    pub mode: String,
    /// The source cell's id.
    pub source_id: String,
    /// The target cell's id.
    #[serde(default)]
    pub target_id: String,
    pub source_kernel: KernelInfo,
    pub source_userland: UserlandInfo,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_cpu: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct KernelInfo {
    pub release: String,
    /// Where it came from: `debian:<package>=<version>` or the bzImage path; `host` with --host.
    pub source: String,
    /// Required options (kernel-config/) that this kernel's config lacks.
    pub missing_options: Vec<String>,
}

/// The packages of the `oci` variant a cell report names.
pub const OCI_TOOLS: &[&str] = &["podman", "conmon", "runc", "crun", "libcriu2"];

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UserlandInfo {
    /// Debian suite, or `host`.
    pub suite: String,
    /// The criu version: the package's, or the tree's for a criu built from source.
    pub criu: Option<String>,
    /// Where that criu came from: `debian:criu=<version>`, `git:<commit>[+dirty]` or
    /// `tree:<hash>` (a tree without git), `host:<path>` with --host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub criu_source: Option<String>,
    pub lxc: Option<String>,
    /// The OCI tools of the `oci` userland variant, when its scenarios ran: package name ->
    /// version (podman, conmon, runc, crun, libcriu2).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub oci: BTreeMap<String, String>,
}

impl UserlandInfo {
    /// The OCI tools for reports: `, podman 4.3.1+ds1-8, runc 1.1.5+ds1-1, ...` (empty
    /// when the cell ran no OCI scenario).
    pub fn oci_text(&self) -> String {
        self.oci
            .iter()
            .filter(|(p, _)| OCI_TOOLS.contains(&p.as_str()))
            .map(|(p, v)| format!(", {p} {v}"))
            .collect()
    }

    /// The criu for reports: its version, and where it came from unless that is the
    /// userland's package (`4.1.1 (git:a44aa6d98547)`, `9.8.7 (tree:0011223344556677)`);
    /// `?` when unknown.
    pub fn criu_text(&self) -> String {
        let version = self.criu.as_deref().unwrap_or("?");
        match self.criu_source.as_deref() {
            None => version.to_string(),
            Some(s) if s.starts_with("debian:") => version.to_string(),
            Some(s) => {
                let short = match s.split_once(':') {
                    Some(("git", rev)) => {
                        let (commit, dirty) = rev
                            .strip_suffix("+dirty")
                            .map_or((rev, ""), |c| (c, "+dirty"));
                        format!("git:{}{dirty}", &commit[..commit.len().min(12)])
                    }
                    _ => s.to_string(),
                };
                format!("{version} ({short})")
            }
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct QemuInfo {
    /// `kvm`, `tcg`, or `none` with --host.
    pub accel: String,
    pub version: Option<String>,
    /// Why not KVM, when TCG.
    pub accel_note: Option<String>,
    /// Number of guests started (more than one when a guest died and the run went on, or
    /// with --pristine), booted or resumed.
    pub boots: u32,
    /// How many of them were resumed from the saved ready state.
    #[serde(default)]
    pub resumes: u32,
    /// QEMU's CPU model of the guests (`--cpu`); absent for the default (`max`, `host`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
}

/// Checks that run directories can be made under `root` (creating it when missing).
pub fn check_writable(root: &Path) -> Result<(), ResultsError> {
    std::fs::create_dir_all(root).map_err(write_err(root))?;
    tempfile::Builder::new()
        .prefix(".crtest-probe-")
        .tempfile_in(root)
        .map(drop)
        .map_err(write_err(root))
}

/// A run directory being written.
pub struct RunDir {
    pub dir: PathBuf,
    pub report: RunReport,
    started: std::time::Instant,
}

impl RunDir {
    /// Creates `<root>/<run_id>/` and points `<root>/latest` at it.
    pub fn create(root: &Path) -> Result<RunDir, ResultsError> {
        std::fs::create_dir_all(root).map_err(write_err(root))?;
        let root = &std::fs::canonicalize(root).map_err(write_err(root))?;
        let run_id = new_run_id();
        let dir = root.join(&run_id);
        std::fs::create_dir(&dir).map_err(write_err(&dir))?;
        let latest = root.join("latest");
        let _ = std::fs::remove_file(&latest);
        let _ = std::os::unix::fs::symlink(&run_id, &latest);
        RunDir::create_at(&dir, &run_id)
    }

    /// Creates the run directory `dir` itself, with no `latest` link: a matrix cell's
    /// `cells/<id>/`, which holds what a single-cell run directory holds.
    pub fn create_at(dir: &Path, run_id: &str) -> Result<RunDir, ResultsError> {
        std::fs::create_dir_all(dir).map_err(write_err(dir))?;
        let dir = std::fs::canonicalize(dir).map_err(write_err(dir))?;
        let report = RunReport {
            format_version: FORMAT_VERSION,
            run_id: run_id.to_string(),
            started_at: rfc3339_now(),
            finished_at: None,
            wall_ms: None,
            finished: false,
            interrupted: None,
            crtest_version: env!("CARGO_PKG_VERSION").into(),
            cells: Vec::new(),
            matrix: None,
        };
        let run = RunDir {
            dir,
            report,
            started: std::time::Instant::now(),
        };
        run.save()?;
        Ok(run)
    }

    /// Writes run.json atomically (a reader never sees half a file; on a full disk the last
    /// complete one stays).
    pub fn save(&self) -> Result<(), ResultsError> {
        let path = self.dir.join("run.json");
        let text = serde_json::to_string_pretty(&self.report).expect("report serialises");
        crtest_vm::cache::write_atomic(&path, (text + "\n").as_bytes()).map_err(write_err(&path))
    }

    /// Marks the run finished, or stopped by `interrupted` (a signal's name), and writes
    /// run.json (`report::views::finish` writes the files made of it).
    pub fn finish(&mut self, interrupted: Option<String>) -> Result<(), ResultsError> {
        self.report.interrupted = interrupted;
        self.report.finished = self.report.interrupted.is_none();
        self.report.finished_at = Some(rfc3339_now());
        self.report.wall_ms = Some(self.started.elapsed().as_millis() as u64);
        self.save()
    }

    /// Gives each result the tags of its scenario in `scenarios` (by name).
    pub fn tag_results(&mut self, scenarios: &[crate::model::scenario::Scenario]) {
        for s in self
            .report
            .cells
            .iter_mut()
            .flat_map(|c| c.scenarios.iter_mut())
        {
            if let Some(sc) = scenarios.iter().find(|sc| sc.name == s.name) {
                s.tags = sc.tags.clone();
            }
        }
    }

    /// True when any scenario's outcome makes the run fail.
    pub fn any_bad(&self) -> bool {
        self.report
            .cells
            .iter()
            .flat_map(|c| &c.scenarios)
            .any(|s| s.outcome.is_bad())
    }
}

/// Counts of outcomes, in the vocabulary's order.
pub fn counts(scenarios: &[ScenarioResult]) -> Vec<(Outcome, usize)> {
    use Outcome::*;
    [Pass, Fail, Skip, Xfail, Xpass, Error, Timeout, Panic, Flaky]
        .into_iter()
        .map(|o| (o, scenarios.iter().filter(|s| s.outcome == o).count()))
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// A new run id: `YYYYMMDD-HHMMSS-xxxx` (UTC).
pub fn new_run_id() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let (date, time) = civil(now.as_secs());
    format!(
        "{}-{}-{:04x}",
        date.replace('-', ""),
        time.replace(':', ""),
        (std::process::id() ^ now.subsec_nanos()) & 0xffff
    )
}

/// The current UTC time as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn rfc3339_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let (date, time) = civil(secs);
    format!("{date}T{time}Z")
}

/// `("YYYY-MM-DD", "HH:MM:SS")` in UTC for seconds since the epoch.
fn civil(secs: u64) -> (String, String) {
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        format!("{y:04}-{m:02}-{d:02}"),
        format!("{:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn criu_for_reports_names_a_source_that_is_not_the_package() {
        let u = |criu: Option<&str>, source: Option<&str>| UserlandInfo {
            suite: "bookworm".into(),
            criu: criu.map(String::from),
            criu_source: source.map(String::from),
            lxc: None,
            oci: Default::default(),
        };
        assert_eq!(u(Some("3.17.1-2"), None).criu_text(), "3.17.1-2");
        assert_eq!(
            u(Some("3.17.1-2"), Some("debian:criu=3.17.1-2")).criu_text(),
            "3.17.1-2"
        );
        assert_eq!(
            u(
                Some("4.1.1"),
                Some("git:a44aa6d985472d995d04fef7eae22d63c7500f8c")
            )
            .criu_text(),
            "4.1.1 (git:a44aa6d98547)"
        );
        assert_eq!(
            u(Some("4.2"), Some("git:3c7d4fa013297b43+dirty")).criu_text(),
            "4.2 (git:3c7d4fa01329+dirty)"
        );
        assert_eq!(
            u(Some("9.8.7"), Some("tree:0011223344556677")).criu_text(),
            "9.8.7 (tree:0011223344556677)"
        );
        assert_eq!(u(None, None).criu_text(), "?");
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil(0), ("1970-01-01".into(), "00:00:00".into()));
        assert_eq!(
            civil(1_795_719_867),
            ("2026-11-26".into(), "19:04:27".into())
        );
    }

    #[test]
    fn run_dir_is_written_atomically_with_latest_link() {
        let tmp = tempfile::tempdir().unwrap();
        let mut run = RunDir::create(tmp.path()).unwrap();
        assert!(run.dir.join("run.json").is_file());
        let latest = std::fs::read_link(tmp.path().join("latest")).unwrap();
        assert_eq!(latest, Path::new(&run.report.run_id));
        run.finish(None).unwrap();
        let back: RunReport =
            serde_json::from_str(&std::fs::read_to_string(run.dir.join("run.json")).unwrap())
                .unwrap();
        assert!(back.finished);
    }

    #[test]
    fn unwritable_root_names_the_path() {
        let err = RunDir::create(Path::new("/proc/crtest-results"))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("/proc/crtest-results"), "{err}");
    }
}
