//! The backend that runs one zdtm test with the tree's own zdtm.py
//! (`--zdtm-runner zdtm.py`), as the scenario's one `run` step, so that `crtest compare` can
//! set the harness's verdicts beside zdtm.py's.

use crate::diagnose::errno;
use crate::exec::backend::Backend;
use crate::exec::context::{Run, StepError};
use crate::model::outcome::Outcome;
use crate::model::scenario::{Mode, StepKind, ZdtmTest, ZDTM_ROOT};
use crtest_vm::command;
use std::path::Path;

/// See the module's documentation.
pub(crate) struct ZdtmPy(pub(crate) ZdtmTest);

impl Backend for ZdtmPy {
    fn step(&mut self, run: &mut Run, _kind: StepKind, _iteration: u32) -> Result<(), StepError> {
        via_zdtm_py(run, &self.0)
    }
}

/// The command that runs one test with the tree's own zdtm.py, as its README says
/// (`zdtm.py run -t zdtm/static/NAME -f FLAVOR` against the installed criu and crit), with
/// zdtm.py's options for the mode.
pub fn zdtm_py_argv(z: &ZdtmTest, mode: &Mode) -> Vec<String> {
    let mut v: Vec<String> = [
        "python3",
        "zdtm.py",
        "run",
        "-t",
        &format!("zdtm/{}", z.test),
        "-f",
        z.flavor.as_str(),
        "--criu-bin",
        "/usr/sbin/criu",
        "--crit-bin",
        "/usr/bin/crit",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.extend(mode.zdtm_py_args());
    v
}

/// The only step of a test run through zdtm.py: exit 0 is a pass; its output is kept
/// (`zdtm.py.log`) and its `FAIL` line reported.
fn via_zdtm_py(run: &mut Run, z: &ZdtmTest) -> Result<(), StepError> {
    let argv = zdtm_py_argv(z, &run.sc.mode);
    let out = run.work.join("zdtm.py.log");
    dump_beside(&run.work).map_err(|e| {
        StepError::fail(StepKind::Run, format!("cannot place zdtm.py's dump/: {e}"))
            .with_outcome(Outcome::Error)
    })?;
    let ran = command::Cmd::new(&argv[0])
        .args(&argv[1..])
        .dir(ZDTM_ROOT)
        .run_timed(run.step_budget(), Some(&out))
        .map_err(|e| StepError::fail(StepKind::Run, e.to_string()).with_outcome(Outcome::Error))?;
    if ran.ok() {
        run.detail = Some(format!("`{}` passed", argv.join(" ")));
        return Ok(());
    }
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    let mut e = StepError::fail(
        StepKind::Run,
        if ran.timed_out {
            "zdtm.py did not finish in time".to_string()
        } else {
            format!("zdtm.py exited with status {}", ran.status)
        },
    );
    if ran.timed_out {
        e.outcome = Outcome::Timeout;
    }
    e.failure.command = Some(argv.join(" "));
    e.failure.exit_status = Some(ran.status);
    e.failure.first_error_line = text
        .lines()
        .find(|l| l.contains("Error (") || l.contains("FAIL:"))
        .or_else(|| {
            text.lines()
                .rfind(|l| l.contains("FAIL") || l.contains("SKIP"))
        })
        .map(|l| l.trim().to_string());
    e.failure.errno = e.failure.first_error_line.as_deref().and_then(errno::find);
    Err(e)
}

/// Points zdtm's `test/dump` (where zdtm.py writes its images, and keeps a failed test's)
/// at the scenario's working directory: the tree's disk has only the room its build left
/// (about 140 MiB), which one big test's images fill (maps04: `Unable to spice data: No
/// space left on device`), and kept images of a failure would fail every test after it.
fn dump_beside(work: &Path) -> std::io::Result<()> {
    let dump = work.join("zdtm.py-dump");
    std::fs::create_dir_all(&dump)?;
    let link = Path::new(ZDTM_ROOT).join("dump");
    match std::fs::symlink_metadata(&link) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(&link)?,
        Ok(_) => std::fs::remove_file(&link)?,
        Err(_) => {}
    }
    std::os::unix::fs::symlink(&dump, &link)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zdtm_py_runs_one_test_in_the_host_flavor() {
        let z = ZdtmTest {
            via_zdtm_py: true,
            ..ZdtmTest::sample("static/fifo", &["./fifo"])
        };
        assert_eq!(
            zdtm_py_argv(&z, &Mode::PLAIN).join(" "),
            "python3 zdtm.py run -t zdtm/static/fifo -f h --criu-bin /usr/sbin/criu \
             --crit-bin /usr/bin/crit"
        );
        let lazy = Mode::parse("pre=2+lazy").unwrap();
        assert!(zdtm_py_argv(&z, &lazy)
            .join(" ")
            .ends_with("/usr/bin/crit --pre 2 --lazy-pages"));
    }
}
