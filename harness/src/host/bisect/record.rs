//! What a bisection leaves: `bisect.json` (every step with its revision, build, runs, state
//! and git mark; the culprit; the confirmation; the failure) and `summary.md` beside it,
//! both rewritten after every step so that a stopped bisection keeps what it did.

use super::git::Commit;
use super::judge::{Direction, RunVerdict, State};
use crate::model::outcome::{Failure, Outcome};
use serde::{Deserialize, Serialize};

/// The format of `bisect.json`.
pub const FORMAT: &str = "crtest-bisect-v1";

/// One bisection, as `bisect.json` holds it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BisectRecord {
    pub format: String,
    /// `criu` or `kernel`: which tree is bisected.
    pub subject: String,
    /// The user's tree (only read; the bisection ran in `clone`).
    pub tree: String,
    pub clone: String,
    /// `--good` and `--bad` as given.
    pub good: String,
    pub bad: String,
    /// The endpoints in history order.
    pub old: Option<Commit>,
    pub new: Option<Commit>,
    /// Commits in `old..new`.
    pub commits: u64,
    pub direction: Option<Direction>,
    pub scenarios: Vec<String>,
    /// `--match`: the failure hunted (a class, or a text of the failure).
    #[serde(rename = "match", default, skip_serializing_if = "Option::is_none")]
    pub hunted: Option<String>,
    pub runs_per_step: u32,
    /// The fixed parts of the cell (kernel, userland, criu, CPU), as given.
    pub cell: String,
    pub steps: Vec<StepRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub culprit: Option<Commit>,
    /// When skipped steps surround the culprit: it is one of these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<Commit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmation: Option<Confirmation>,
    /// The failure at the failing side of the culprit (the culprit of a regression, the
    /// parent of a fix).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<FailureSeen>,
    /// The one line: `first fixed commit: SHA SUBJECT`, `inconclusive: ...`, or why not.
    pub verdict: String,
    pub started: String,
    pub seconds: f64,
    /// `git bisect log` of the clone (`git bisect replay` takes it).
    pub git_log: String,
}

/// One revision judged: an endpoint, a step of the bisection, or a confirmation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepRecord {
    /// `old endpoint`, `new endpoint`, `step N`, `confirm culprit`, `confirm parent`.
    pub role: String,
    pub commit: String,
    pub subject: String,
    pub build: BuildRecord,
    pub runs: Vec<RunRecord>,
    pub state: State,
    pub why: String,
    /// The git bisect term it was marked with (`skip` when unknown), for bisection steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mark: Option<String>,
    pub run_seconds: f64,
}

/// Building the revision (criu, or the kernel).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BuildRecord {
    pub ok: bool,
    pub seconds: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One run of the scenarios at a revision.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    /// Its run directory, relative to the bisection's.
    pub dir: String,
    pub verdict: RunVerdict,
    pub why: String,
    pub outcomes: Vec<(String, Outcome)>,
    pub seconds: f64,
}

/// The culprit run again, and its parent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Confirmation {
    pub runs: u32,
    pub culprit: State,
    pub parent: State,
    pub confirmed: bool,
}

/// The hunted failure as one run saw it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FailureSeen {
    pub commit: String,
    /// The run directory (its run.json and summary.md hold the whole report).
    pub run: String,
    pub scenario: String,
    pub outcome: Outcome,
    pub failure: Failure,
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

/// The Markdown beside `bisect.json`.
pub fn markdown(r: &BisectRecord) -> String {
    let mut m = format!("# crtest bisect: {}\n\n**{}**\n\n", r.subject, r.verdict);
    let end = |c: &Option<Commit>| {
        c.as_ref()
            .map(|c| format!("`{}` {}", short(&c.sha), c.subject))
            .unwrap_or_else(|| "?".into())
    };
    m.push_str(&format!(
        "- tree: `{}` (bisected in a clone: `{}`)\n- range: {} .. {} (--good {}, --bad {}), {} commits\n",
        r.tree,
        r.clone,
        end(&r.old),
        end(&r.new),
        r.good,
        r.bad,
        r.commits
    ));
    if let Some(d) = r.direction {
        m.push_str(&format!(
            "- direction: {} (hunting the {})\n",
            d.as_str(),
            d.culprit_label()
        ));
    }
    m.push_str(&format!(
        "- scenarios: {}{}\n- cell: {}\n- runs per step: {}\n- time: {:.0} s\n\n",
        r.scenarios.join(", "),
        r.hunted
            .as_ref()
            .map(|h| format!(" (hunting `{h}`)"))
            .unwrap_or_default(),
        r.cell,
        r.runs_per_step,
        r.seconds
    ));
    if let Some(c) = &r.culprit {
        m.push_str(&format!(
            "## Culprit\n\n`{}` {}\n\n- author: {}\n- date: {}\n- first release with it: {}\n\n",
            c.sha,
            c.subject,
            c.author,
            c.date,
            c.release.as_deref().unwrap_or("none yet")
        ));
    }
    if !r.candidates.is_empty() {
        m.push_str("## Candidates (skipped steps surround the culprit)\n\n");
        for c in &r.candidates {
            m.push_str(&format!("- `{}` {}\n", short(&c.sha), c.subject));
        }
        m.push('\n');
    }
    if let Some(c) = &r.confirmation {
        m.push_str(&format!(
            "## Confirmation ({} runs each)\n\n- culprit: {}\n- parent: {}\n- {}\n\n",
            c.runs,
            c.culprit.as_str(),
            c.parent.as_str(),
            if c.confirmed {
                "confirmed"
            } else {
                "NOT confirmed"
            }
        ));
    }
    if let Some(f) = &r.failure {
        m.push_str(&format!(
            "## The failure (at `{}`, {})\n\n- {}: {}\n- step: {}\n",
            short(&f.commit),
            f.run,
            f.scenario,
            f.outcome.as_str(),
            f.failure.step
        ));
        for (k, v) in [
            ("command", &f.failure.command),
            ("first error line", &f.failure.first_error_line),
            ("errno", &f.failure.errno),
            ("class", &f.failure.class),
        ] {
            if let Some(v) = v {
                m.push_str(&format!("- {k}: `{v}`\n"));
            }
        }
        m.push('\n');
    }
    m.push_str("## Steps\n\n| # | role | commit | subject | build s | runs | state | mark | run s |\n|---|---|---|---|---|---|---|---|---|\n");
    for (i, s) in r.steps.iter().enumerate() {
        let runs: Vec<&str> = s
            .runs
            .iter()
            .map(|r| match r.verdict {
                RunVerdict::Passed => "P",
                RunVerdict::Failed => "F",
                RunVerdict::Other => "?",
            })
            .collect();
        let build = match (&s.build.ok, &s.build.error) {
            (true, _) => format!("{:.1}", s.build.seconds),
            (false, _) => format!("{:.1} (failed)", s.build.seconds),
        };
        m.push_str(&format!(
            "| {} | {} | `{}` | {} | {} | {} | {} ({}) | {} | {:.1} |\n",
            i + 1,
            s.role,
            short(&s.commit),
            s.subject.replace('|', "\\|"),
            build,
            runs.join(""),
            s.state.as_str(),
            s.why.replace('|', "\\|"),
            s.mark.as_deref().unwrap_or(""),
            s.run_seconds
        ));
    }
    if !r.git_log.is_empty() {
        m.push_str(&format!(
            "\n## git bisect log\n\n```\n{}\n```\n",
            r.git_log.trim_end()
        ));
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(sha: char, subject: &str) -> Commit {
        Commit {
            sha: sha.to_string().repeat(40),
            subject: subject.into(),
            author: "A U Thor <a@example.org>".into(),
            date: "2025-06-01T10:00:00+02:00".into(),
            release: Some("v4.2".into()),
        }
    }

    fn step(role: &str, c: char, state: State, mark: Option<&str>) -> StepRecord {
        let verdict = match state {
            State::Passes => RunVerdict::Passed,
            State::Fails => RunVerdict::Failed,
            State::Unknown => RunVerdict::Other,
        };
        StepRecord {
            role: role.into(),
            commit: c.to_string().repeat(40),
            subject: format!("subject {c}"),
            build: BuildRecord {
                ok: state != State::Unknown,
                seconds: 41.5,
                error: (state == State::Unknown).then(|| "make: *** [criu] Error 2".into()),
            },
            runs: vec![RunRecord {
                dir: format!("steps/{c}/run-1"),
                verdict,
                why: "x".into(),
                outcomes: vec![("tcpconn".into(), Outcome::Pass)],
                seconds: 20.0,
            }],
            state,
            why: format!("1 of 1 runs {}", state.as_str()),
            mark: mark.map(Into::into),
            run_seconds: 20.0,
        }
    }

    #[test]
    fn summary_of_a_fix_found() {
        let r = BisectRecord {
            format: FORMAT.into(),
            subject: "criu".into(),
            tree: "/src/criu".into(),
            clone: "~/.cache/crtest/bisect-tree/x".into(),
            good: "v4.1.1".into(),
            bad: "v4.2".into(),
            old: Some(commit('a', "criu: Version 4.1.1")),
            new: Some(commit('f', "criu: Version 4.2")),
            commits: 145,
            direction: Some(Direction::Fix),
            scenarios: vec!["tcpconn".into()],
            hunted: Some("Can't get".into()),
            runs_per_step: 1,
            cell: "kernel sid, userland bookworm".into(),
            steps: vec![
                step("old endpoint", 'a', State::Fails, None),
                step("new endpoint", 'f', State::Passes, None),
                step("step 1", 'c', State::Unknown, Some("skip")),
                step("step 2", 'd', State::Passes, Some("fixed")),
            ],
            culprit: Some(commit('d', "criu/sockets: Restrict SO_PASSCRED")),
            candidates: vec![],
            confirmation: Some(Confirmation {
                runs: 3,
                culprit: State::Passes,
                parent: State::Fails,
                confirmed: true,
            }),
            failure: Some(FailureSeen {
                commit: "c".repeat(40),
                run: "steps/02-cccccccccccc/run-1".into(),
                scenario: "tcpconn".into(),
                outcome: Outcome::Xfail,
                failure: Failure {
                    step: "checkpoint".into(),
                    first_error_line: Some("Can't get 1:16 opt".into()),
                    errno: Some("EOPNOTSUPP".into()),
                    ..Failure::default()
                },
            }),
            verdict: format!(
                "first fixed commit: {} criu/sockets: Restrict SO_PASSCRED",
                "d".repeat(40)
            ),
            started: "2026-12-07T20:00:00Z".into(),
            seconds: 612.4,
            git_log: "git bisect start\n# first fixed commit: [ddd] x".into(),
        };
        insta::assert_snapshot!(markdown(&r));
        let back: BisectRecord = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back.steps.len(), 4);
        assert_eq!(back.hunted.as_deref(), Some("Can't get"));
    }
}
