//! The bisection: a clone of the user's tree, the endpoints judged first (they decide the
//! direction), `git bisect` driven step by step (each step built, its cell prepared, the
//! scenarios run `runs` times in fresh guests and judged), a build failure or an unsettled
//! step skipped (an unsettled step without failures tried once more first), the culprit
//! and its parent run again to confirm, and the record written after every step.

use super::git::{self, Commit, GitError, Next};
use super::judge::{self, Direction, RunVerdict, State};
use super::record::{
    self, BisectRecord, BuildRecord, Confirmation, FailureSeen, RunRecord, StepRecord,
};
use crate::host::cell_choice::{kernel_choice, KernelName};
use crate::host::kernel_build::{self, BuildError, BuildOptions};
use crate::host::vm_run::{self, Cell, CellOptions, CriuChoice, PrepareError};
use crate::model::outcome::ScenarioResult;
use crate::model::scenario::Scenario;
use crate::report::progress::Reporter;
use crate::results::run::{ResultsError, RunDir};
use crtest_vm::cache::{key_of, Cache};
use std::path::PathBuf;
use std::time::Instant;

/// Which tree is bisected.
#[derive(Debug, Clone)]
pub enum Subject {
    /// A CRIU tree: each step's criu built for the cell's userland (cached by commit).
    Criu,
    /// A kernel tree: each step's kernel built in one work directory kept across steps
    /// (incremental), through ccache.
    Kernel {
        base_config: Option<PathBuf>,
        jobs: Option<usize>,
    },
}

/// What `crtest bisect` was asked for.
#[derive(Debug, Clone)]
pub struct BisectOptions {
    pub subject: Subject,
    /// The user's tree (never written).
    pub tree: PathBuf,
    pub good: String,
    pub bad: String,
    pub scenarios: Vec<Scenario>,
    /// The cell's fixed parts; the bisected one is replaced at each step.
    pub cell: CellOptions,
    /// The cell as the user named it, for the record.
    pub cell_label: String,
    /// `--match`: a failure class or a text of the failure.
    pub hunted: Option<String>,
    /// Runs per step.
    pub runs: u32,
    /// Runs of the culprit and of its parent afterwards (0: no confirmation).
    pub confirm: u32,
    /// Where the bisection's directory goes.
    pub results: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum BisectError {
    #[error("bisect: {0}")]
    Git(#[from] GitError),
    #[error(transparent)]
    Prepare(#[from] PrepareError),
    #[error(transparent)]
    KernelBuild(#[from] BuildError),
    #[error(transparent)]
    Results(#[from] ResultsError),
    #[error(transparent)]
    Cache(#[from] crtest_vm::cache::CacheError),
    #[error(transparent)]
    HostDeps(#[from] crtest_vm::hostdeps::HostDepsError),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The endpoints do not bracket a change (both pass, both fail).
    #[error("nothing to bisect between {old} and {new}: {why} (the record: {})", record.display())]
    NoChange {
        old: String,
        new: String,
        why: String,
        record: PathBuf,
    },
    /// An endpoint could not be judged (build failed, runs judged nothing).
    #[error("cannot bisect: the {which} endpoint {commit} could not be judged: {why} (the record: {})", record.display())]
    Endpoint {
        which: &'static str,
        commit: String,
        why: String,
        record: PathBuf,
    },
    #[error("bisect: more than {0} steps; git bisect does not converge")]
    TooManySteps(usize),
}

impl BisectError {
    /// Whether the user's input is at fault (exit 2): a revision that is not one, a range
    /// with no change in it, a tree that is not one.
    pub fn is_bad_input(&self) -> bool {
        match self {
            BisectError::Git(e) => e.is_bad_input(),
            BisectError::Prepare(e) => e.is_bad_input(),
            BisectError::KernelBuild(e) => matches!(e, BuildError::NotASource { .. }),
            BisectError::NoChange { .. } => true,
            _ => false,
        }
    }
}

/// How a bisection ended.
#[derive(Debug)]
pub struct Ended {
    pub dir: PathBuf,
    pub record: BisectRecord,
    /// A culprit found and confirmed (or no confirmation asked).
    pub found: bool,
}

/// The most steps a bisection takes before it is called diverging.
const MAX_STEPS: usize = 64;

struct Bisection<'a> {
    opts: &'a BisectOptions,
    clone: PathBuf,
    dir: PathBuf,
    cache: Cache,
    record: BisectRecord,
    /// The hunted failures seen, at whichever commit.
    failures: Vec<FailureSeen>,
    started: Instant,
    reporter: &'a mut dyn Reporter,
}

/// What a step's cell made in the cache for its revision alone: the userland image (and
/// variant images) with that criu written in, the initramfs of that kernel: hundreds of MiB
/// each that no later step uses, removed when the step is done. Builds (criu's, the
/// kernel's) stay: they are small, and make the confirmation and a second bisection of the
/// range cache hits. Only entries that appeared during the step and are the step's own go:
/// an image whose `debugfs.cmds` writes this step's criu binary, this cell's initramfs.
#[derive(Debug, Default)]
struct Litter {
    before: std::collections::HashSet<PathBuf>,
    criu: Option<String>,
    initrd_dir: Option<PathBuf>,
}

const LITTER_KINDS: &[&str] = &["userland-criu", "initramfs"];

fn entries(cache: &Cache) -> std::collections::HashSet<PathBuf> {
    LITTER_KINDS
        .iter()
        .filter_map(|k| std::fs::read_dir(cache.root().join(k)).ok())
        .flat_map(|rd| rd.flatten().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect()
}

impl Litter {
    fn before(cache: &Cache) -> Litter {
        Litter {
            before: entries(cache),
            ..Litter::default()
        }
    }

    /// Notes what the built cell uses.
    fn of(&mut self, cell: &Cell) {
        self.criu = cell
            .criu
            .build
            .as_ref()
            .map(|b| b.criu().display().to_string());
        self.initrd_dir = cell.initrd.parent().map(PathBuf::from);
    }

    fn is_ours(&self, entry: &std::path::Path) -> bool {
        if self.initrd_dir.as_deref() == Some(entry) {
            return true;
        }
        let cmds = std::fs::read_to_string(entry.join("debugfs.cmds")).unwrap_or_default();
        self.criu
            .as_ref()
            .is_some_and(|c| cmds.contains(&format!("write \"{c}\"")))
    }

    fn sweep(&self, cache: &Cache) {
        for p in entries(cache) {
            if !self.before.contains(&p) && self.is_ours(&p) {
                let _ = std::fs::remove_dir_all(&p);
                let _ = std::fs::remove_file(p.with_extension("lock"));
            }
        }
    }
}

/// A revision's cell, or why none could be built.
enum Built {
    Cell(Box<Cell>),
    Failed(String),
}

impl Bisection<'_> {
    fn save(&mut self) -> Result<(), BisectError> {
        self.record.seconds = round1(self.started.elapsed().as_secs_f64());
        let log = git::bisect_log(&self.clone);
        if !log.is_empty() {
            self.record.git_log = log;
        }
        let json = serde_json::to_string_pretty(&self.record).expect("record serialises") + "\n";
        for (name, text) in [
            ("bisect.json", json),
            ("summary.md", record::markdown(&self.record)),
        ] {
            let p = self.dir.join(name);
            crtest_vm::cache::write_atomic(&p, text.as_bytes())
                .map_err(|source| BisectError::Io { path: p, source })?;
        }
        Ok(())
    }

    /// The checked-out revision built into a cell.
    fn build(&mut self) -> Result<Built, BisectError> {
        let mut opts = self.opts.cell.clone();
        match &self.opts.subject {
            Subject::Criu => opts.criu = CriuChoice::Tree(self.clone.clone()),
            Subject::Kernel { base_config, jobs } => {
                let work = self
                    .cache
                    .root()
                    .join("bisect-kernel-work")
                    .join(key_of(&[self.clone.as_os_str().as_encoded_bytes()]));
                let built = kernel_build::build(&BuildOptions {
                    source: self.clone.clone(),
                    base_config: base_config.clone(),
                    config_only: false,
                    allow_missing: false,
                    jobs: *jobs,
                    work: Some(work),
                    ccache: true,
                });
                match built {
                    Ok(entry) => {
                        opts.kernel = kernel_choice(&KernelName::Path(entry.clone()), None, None)
                            .map_err(|e| BisectError::Io {
                                path: entry,
                                source: std::io::Error::other(e.to_string()),
                            })?
                    }
                    Err(e @ (BuildError::Failed { .. } | BuildError::Missing(_))) => {
                        return Ok(Built::Failed(first_line(&e.to_string())))
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
        match vm_run::prepare(&opts, self.reporter) {
            Ok(cell) => Ok(Built::Cell(Box::new(Cell {
                // Every step is a new cell: no saved ready state (it would not be reused).
                saved_vms: None,
                pristine: false,
                ..cell
            }))),
            Err(PrepareError::CriuBuild(e))
                if matches!(*e, crtest_vm::criu_build::CriuBuildError::Failed { .. }) =>
            {
                Ok(Built::Failed(first_line(&e.to_string())))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// One run of the scenarios at the built revision, into `rel` of the bisection's dir.
    fn run_once(
        &mut self,
        cell: &Cell,
        rel: &str,
    ) -> Result<(RunRecord, Vec<ScenarioResult>), BisectError> {
        let t = Instant::now();
        let id = format!("{}-{}", self.record.started, rel.replace('/', "-"));
        let mut run = RunDir::create_at(&self.dir.join(rel), &id)?;
        let res = vm_run::run_cell(cell, &self.opts.scenarios, &[], &mut run, self.reporter);
        crate::report::views::finish(&mut run, crate::host::interrupt::stopped_by())?;
        res?;
        let results: Vec<ScenarioResult> = run
            .report
            .cells
            .iter()
            .flat_map(|c| c.scenarios.iter().cloned())
            .collect();
        let (verdict, why) = judge::judge_run(&results, self.opts.hunted.as_deref());
        let rec = RunRecord {
            dir: rel.to_string(),
            verdict,
            why,
            outcomes: results
                .iter()
                .map(|r| (r.name.clone(), r.outcome))
                .collect(),
            seconds: round1(t.elapsed().as_secs_f64()),
        };
        Ok((rec, results))
    }

    /// Judges the checked-out commit with `runs` runs (once more when nothing failed but
    /// nothing settled it either); records the step.
    fn judge(&mut self, role: &str, commit: &str, runs: u32) -> Result<usize, BisectError> {
        let subject = git::subject(&self.clone, commit)?;
        eprintln!(
            "crtest bisect: {role}: {} {subject}",
            &commit[..12.min(commit.len())]
        );
        let t = Instant::now();
        let mut litter = Litter::before(&self.cache);
        let built = self.build();
        if let Ok(Built::Cell(cell)) = &built {
            litter.of(cell);
        }
        let res = built.and_then(|b| self.judge_built(b, (role, commit, &subject), runs, t));
        litter.sweep(&self.cache);
        res
    }

    /// Runs the built revision (or records its failed build); `t` is when its build began.
    fn judge_built(
        &mut self,
        built: Built,
        (role, commit, subject): (&str, &str, &str),
        runs: u32,
        t: Instant,
    ) -> Result<usize, BisectError> {
        let n = self.record.steps.len() + 1;
        let build_s = round1(t.elapsed().as_secs_f64());
        let mut step = StepRecord {
            role: role.to_string(),
            commit: commit.to_string(),
            subject: subject.to_string(),
            build: BuildRecord {
                ok: matches!(built, Built::Cell(_)),
                seconds: build_s,
                error: None,
            },
            runs: Vec::new(),
            state: State::Unknown,
            why: String::new(),
            mark: None,
            run_seconds: 0.0,
        };
        let t = Instant::now();
        match built {
            Built::Failed(why) => {
                step.why = format!("the build failed: {why}");
                step.build.error = Some(why);
            }
            Built::Cell(cell) => {
                for attempt in 0..2 {
                    for _ in 0..runs {
                        let rel = format!(
                            "steps/{n:02}-{}/run-{}",
                            &commit[..12.min(commit.len())],
                            step.runs.len() + 1
                        );
                        let (rec, results) = self.run_once(&cell, &rel)?;
                        self.note_failure(commit, &rec, &results);
                        step.runs.push(rec);
                        if crate::host::interrupt::requested().is_some() {
                            break;
                        }
                    }
                    let verdicts: Vec<RunVerdict> = step.runs.iter().map(|r| r.verdict).collect();
                    let (state, why) = judge::judge_step(&verdicts);
                    (step.state, step.why) = (state, why);
                    if state != State::Unknown
                        || attempt == 1
                        || !judge::retry_worth(&verdicts)
                        || crate::host::interrupt::requested().is_some()
                    {
                        break;
                    }
                    eprintln!(
                        "crtest bisect: {role}: nothing settled ({}); once more",
                        step.why
                    );
                }
            }
        }
        step.run_seconds = round1(t.elapsed().as_secs_f64());
        eprintln!(
            "crtest bisect: {role}: {} ({}); build {:.1} s, runs {:.1} s",
            step.state.as_str(),
            step.why,
            step.build.seconds,
            step.run_seconds
        );
        self.record.steps.push(step);
        self.save()?;
        Ok(self.record.steps.len() - 1)
    }

    /// Keeps the first hunted failure seen at each commit (the report picks the right one).
    fn note_failure(&mut self, commit: &str, rec: &RunRecord, results: &[ScenarioResult]) {
        if rec.verdict != RunVerdict::Failed {
            return;
        }
        if let Some(r) = judge::hunted(results, self.opts.hunted.as_deref()) {
            self.failures.push(FailureSeen {
                commit: commit.to_string(),
                run: rec.dir.clone(),
                scenario: r.name.clone(),
                outcome: r.outcome,
                failure: r.failure.clone().unwrap_or_default(),
            });
        }
    }
}

fn round1(s: f64) -> f64 {
    (s * 10.0).round() / 10.0
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().to_string()
}

/// Runs the bisection; the record is in the returned directory whatever it came to.
pub fn bisect(opts: &BisectOptions, reporter: &mut dyn Reporter) -> Result<Ended, BisectError> {
    crtest_vm::hostdeps::ensure(&crtest_vm::hostdeps::BISECT_TOOLS[..1])?;
    if let Subject::Kernel { .. } = opts.subject {
        crtest_vm::hostdeps::ensure(crtest_vm::hostdeps::KERNEL_BUILD_TOOLS)?;
        crtest_vm::hostdeps::ensure(crtest_vm::hostdeps::BISECT_TOOLS)?;
    }
    let tree = std::fs::canonicalize(&opts.tree).map_err(|source| BisectError::Io {
        path: opts.tree.clone(),
        source,
    })?;
    // The revisions are read in the user's tree (read only), so that its branch names mean
    // what they mean there.
    let good = git::resolve(&tree, &opts.good)?;
    let bad = git::resolve(&tree, &opts.bad)?;
    let (old, new) = git::order(&tree, &good, &bad)?;
    let cache = Cache::from_env()?;
    let clone = cache
        .root()
        .join("bisect-tree")
        .join(key_of(&[tree.as_os_str().as_encoded_bytes()]));
    std::fs::create_dir_all(cache.root().join("bisect-tree")).map_err(|source| {
        BisectError::Io {
            path: cache.root().join("bisect-tree"),
            source,
        }
    })?;
    // One bisection of a tree at a time: they share its clone.
    let _lock = crtest_vm::cache::lock(&clone.with_extension("lock"))?;
    git::clone_for_bisect(&tree, &clone)?;
    let started = crate::results::run::new_run_id();
    let dir = opts.results.join(format!("bisect-{started}"));
    std::fs::create_dir_all(&dir).map_err(|source| BisectError::Io {
        path: dir.clone(),
        source,
    })?;
    let commits = git::git(&clone, &["rev-list", "--count", &format!("{old}..{new}")])?
        .parse()
        .unwrap_or(0);
    let record = BisectRecord {
        format: record::FORMAT.into(),
        subject: match opts.subject {
            Subject::Criu => "criu",
            Subject::Kernel { .. } => "kernel",
        }
        .into(),
        tree: tree.display().to_string(),
        clone: clone.display().to_string(),
        good: opts.good.clone(),
        bad: opts.bad.clone(),
        old: Some(git::commit_info(&clone, &old)?),
        new: Some(git::commit_info(&clone, &new)?),
        commits,
        scenarios: opts.scenarios.iter().map(|s| s.name.clone()).collect(),
        hunted: opts.hunted.clone(),
        runs_per_step: opts.runs,
        cell: opts.cell_label.clone(),
        started: started.clone(),
        ..BisectRecord::default()
    };
    eprintln!(
        "crtest bisect: {} {}..{} ({commits} commits) in {}; record in {}",
        record.subject,
        &old[..12],
        &new[..12],
        clone.display(),
        dir.display()
    );
    let mut b = Bisection {
        opts,
        clone,
        dir,
        cache,
        record,
        failures: Vec::new(),
        started: Instant::now(),
        reporter,
    };
    b.run(&old, &new)?;
    let found =
        b.record.culprit.is_some() && b.record.confirmation.as_ref().is_none_or(|c| c.confirmed);
    Ok(Ended {
        dir: b.dir,
        record: b.record,
        found,
    })
}

impl Bisection<'_> {
    fn stopped(&mut self) -> Result<bool, BisectError> {
        match crate::host::interrupt::stopped_by() {
            Some(sig) => {
                self.record.verdict = format!("stopped by {sig} before the end");
                self.save()?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// The endpoints, the steps, the confirmation.
    fn run(&mut self, old: &str, new: &str) -> Result<(), BisectError> {
        let runs = self.opts.runs.max(1);
        let mut states = Vec::new();
        for (which, role, commit) in [("old", "old endpoint", old), ("new", "new endpoint", new)] {
            git::checkout(&self.clone, commit)?;
            let i = self.judge(role, commit, runs)?;
            let step = &self.record.steps[i];
            if step.state == State::Unknown {
                let why = step.why.clone();
                self.record.verdict =
                    format!("not bisected: the {role} {commit} could not be judged: {why}");
                self.save()?;
                return Err(BisectError::Endpoint {
                    which,
                    commit: commit.to_string(),
                    why,
                    record: self.dir.join("bisect.json"),
                });
            }
            states.push(step.state);
            if self.stopped()? {
                return Ok(());
            }
        }
        let direction = match Direction::from_endpoints(states[0], states[1]) {
            Ok(d) => d,
            Err(no) => {
                let why = no.to_string();
                self.record.verdict = format!("not bisected: {why}");
                self.save()?;
                return Err(BisectError::NoChange {
                    old: old.to_string(),
                    new: new.to_string(),
                    why,
                    record: self.dir.join("bisect.json"),
                });
            }
        };
        self.record.direction = Some(direction);
        eprintln!(
            "crtest bisect: the older endpoint {}, the newer {}: a {}, hunting the {}",
            states[0].as_str(),
            states[1].as_str(),
            direction.as_str(),
            direction.culprit_label()
        );
        let terms = direction.terms();
        let mut next = git::bisect_start(&self.clone, terms, old, new)?;
        let mut steps = 0;
        loop {
            match next {
                Next::Test(sha) => {
                    steps += 1;
                    if steps > MAX_STEPS {
                        return Err(BisectError::TooManySteps(MAX_STEPS));
                    }
                    let i = self.judge(&format!("step {steps}"), &sha, runs)?;
                    let mark = direction.term(self.record.steps[i].state).unwrap_or("skip");
                    self.record.steps[i].mark = Some(mark.to_string());
                    if self.stopped()? {
                        return Ok(());
                    }
                    next = git::bisect_mark(&self.clone, mark, terms.1)?;
                }
                Next::Found(sha) => {
                    let c = git::commit_info(&self.clone, &sha)?;
                    self.record.verdict =
                        format!("{}: {} {}", direction.culprit_label(), c.sha, c.subject);
                    self.record.culprit = Some(c);
                    break;
                }
                Next::Inconclusive(shas) => {
                    let mut cs = Vec::new();
                    for s in &shas {
                        cs.push(git::commit_info(&self.clone, s)?);
                    }
                    self.record.verdict = format!(
                        "inconclusive: the {} is one of {} commits that could not be judged: {}",
                        direction.culprit_label(),
                        cs.len(),
                        shas.iter().map(|s| &s[..12]).collect::<Vec<_>>().join(" ")
                    );
                    self.record.candidates = cs;
                    break;
                }
            }
        }
        self.save()?;
        if let Some(c) = self.record.culprit.clone() {
            self.confirm(direction, &c)?;
        }
        self.pick_failure(direction);
        self.save()
    }

    /// The culprit and its parent run `confirm` times each: the culprit must have the newer
    /// state and its parent the older.
    fn confirm(&mut self, direction: Direction, culprit: &Commit) -> Result<(), BisectError> {
        let n = self.opts.confirm;
        if n == 0 {
            return Ok(());
        }
        let _ = git::git(&self.clone, &["bisect", "reset", "--quiet"]);
        let parent = git::resolve(&self.clone, &format!("{}^", culprit.sha))?;
        let (want_culprit, want_parent) = direction.states();
        let mut got = Vec::new();
        for (role, commit) in [
            ("confirm culprit", culprit.sha.clone()),
            ("confirm parent", parent),
        ] {
            git::checkout(&self.clone, &commit)?;
            let i = self.judge(role, &commit, n)?;
            got.push(self.record.steps[i].state);
            if self.stopped()? {
                break;
            }
        }
        if got.len() == 2 {
            let confirmed = got[0] == want_culprit && got[1] == want_parent;
            self.record.confirmation = Some(Confirmation {
                runs: n,
                culprit: got[0],
                parent: got[1],
                confirmed,
            });
            if !confirmed {
                self.record.verdict.push_str(&format!(
                    " (NOT confirmed: the culprit {} and its parent {} over {n} runs each)",
                    got[0].as_str(),
                    got[1].as_str()
                ));
            }
        }
        Ok(())
    }

    /// The failure the report shows: at the culprit for a regression, at its parent for a
    /// fix (else the nearest failing commit seen).
    fn pick_failure(&mut self, direction: Direction) {
        let at = self.record.culprit.as_ref().and_then(|c| match direction {
            Direction::Regression => Some(c.sha.clone()),
            Direction::Fix => git::resolve(&self.clone, &format!("{}^", c.sha)).ok(),
        });
        self.record.failure = at
            .and_then(|at| self.failures.iter().find(|f| f.commit == at).cloned())
            .or_else(|| self.failures.last().cloned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A step's own image and initramfs go when the step is done; what was there before,
    /// what another criu's image is, and the builds stay.
    #[test]
    fn a_step_sweeps_what_it_made_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = Cache::new(tmp.path());
        let make = |kind: &str, key: &str, cmds: &str| {
            let d = tmp.path().join(kind).join(key);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.with_extension("lock"), "").unwrap();
            std::fs::write(d.join("debugfs.cmds"), cmds).unwrap();
            d
        };
        let ours = "write \"/c/criu-build/k1/criu\" /usr/sbin/criu\n";
        let old = make("userland-criu", "old", ours);
        let mut litter = Litter::before(&cache);
        litter.criu = Some("/c/criu-build/k1/criu".into());
        let image = make("userland-criu", "new", ours);
        let variant = make("userland-criu", "new-variant", ours);
        let others = make(
            "userland-criu",
            "other",
            "write \"/c/criu-build/k2/criu\" /x\n",
        );
        let initrd = make("initramfs", "new", "");
        let other_initrd = make("initramfs", "other", "");
        let build = make("criu-build", "k1", "");
        litter.initrd_dir = Some(initrd.clone());
        litter.sweep(&cache);
        assert!(old.is_dir() && old.with_extension("lock").is_file());
        assert!(!image.exists() && !image.with_extension("lock").exists());
        assert!(!variant.exists() && !initrd.exists());
        assert!(others.is_dir() && other_initrd.is_dir() && build.is_dir());
    }
}
