//! A zdtm test under the criu backend, with zdtm.py's protocol: the Makefile's start command
//! in the test's folder (its launcher waits until the test has daemonised and written its
//! pidfile, then exits 0); the tree to dump is the pid in that file; `NAME.hook` at zdtm's
//! stages; after the restore SIGTERM, wait for the test to exit, and the last line of
//! `NAME.out` decides (`PASS`). The `.out` is kept beside the scenario's logs. In zdtm's
//! `ns` and `uns` flavors the test starts in the root [`zdtm_root`](super::zdtm_root) makes,
//! makes its namespaces itself, and the pidfile names their init, which is what is dumped.

use crate::diagnose::errno;
use crate::exec::context::{Run, StepError};
use crate::exec::target::zdtm_root::{Layout, RootError};
use crate::exec::target::TargetKind;
use crate::model::outcome::Outcome;
use crate::model::scenario::{StepKind, ZdtmTest, ZDTM_ROOT};
use crtest_vm::command;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

impl TargetKind for ZdtmTest {
    fn command(&self, _run: &Run) -> (PathBuf, Vec<String>) {
        command(self)
    }

    fn skip_reason(&self) -> Option<String> {
        checkskip(self)
    }

    /// As zdtm.py starts it: in the test's folder, with its environment, after what an
    /// earlier start left was removed; in the `ns` and `uns` flavors the root made first,
    /// and the test started in its folder as seen through the root (the test's library
    /// pivots into the root and starts `./NAME` again there).
    fn prepare_start(&self, _run: &Run, cmd: &mut std::process::Command) -> Result<(), StepError> {
        clean_out(self);
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        if !self.flavor.namespaced() {
            cmd.current_dir(self.dir());
            return Ok(());
        }
        let layout = Layout::of_tree();
        layout.enter(self).map_err(|e| {
            let mut err = StepError::fail(
                StepKind::Start,
                format!(
                    "the root of the {} flavor: {}",
                    self.flavor.as_str(),
                    crate::diagnose::chain::chain(&e)
                ),
            )
            .with_outcome(Outcome::Error);
            if let RootError::Sys { source, .. } = &e {
                err.failure.errno = errno::name(*source as i32);
            }
            err
        })?;
        cmd.current_dir(layout.test_dir(self))
            .envs(layout.env(self.flavor));
        if let Some(first) = self.command.first().filter(|c| c.starts_with("./")) {
            std::os::unix::process::CommandExt::arg0(cmd, first);
        }
        Ok(())
    }

    fn dump_options(&self) -> Vec<String> {
        match self.flavor.namespaced() {
            true => Layout::of_tree().dump_options(),
            false => Vec::new(),
        }
    }

    fn restore_options(&self) -> Vec<String> {
        match self.flavor.namespaced() {
            true => Layout::of_tree().restore_options(),
            false => Vec::new(),
        }
    }

    /// zdtm.py runs `--post-start` while the test starts (the peer of a connection, say).
    fn started(&self, run: &mut Run) -> Result<(), StepError> {
        hook(run, self, StepKind::Start, "--post-start", None)
    }

    fn wait_ready(&self, run: &mut Run) -> Result<(), StepError> {
        started(run, self)
    }

    fn before_dump(&self, run: &mut Run) -> Result<(), StepError> {
        hook(run, self, StepKind::Checkpoint, "--pre-dump", None)
    }

    fn before_restore(&self, run: &mut Run, images: &Path) -> Result<(), StepError> {
        hook(run, self, StepKind::Restore, "--pre-restore", Some(images))
    }

    fn after_restore(&self, run: &mut Run, images: &Path) -> Result<(), StepError> {
        hook(run, self, StepKind::Restore, "--post-restore", Some(images))
    }

    fn verify(&self, run: &mut Run) -> Result<(), StepError> {
        verify(run, self)
    }

    fn cleanup(&self, run: &mut Run) {
        let _ = hook(run, self, StepKind::Verify, "--clean", None);
        if self.flavor.namespaced() {
            Layout::of_tree().leave();
        }
    }
}

/// The last non-empty line of a text.
fn last_line(text: &str) -> Option<String> {
    text.lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .map(String::from)
}

/// The line of a `.out` that says what went wrong: its first `FAIL:` or `ERR:` line (zdtm's
/// library ends every failure with a generic `Test exited unexpectedly`), else its last.
pub fn error_line(out: &str) -> Option<String> {
    out.lines()
        .map(str::trim)
        .find(|l| l.contains(" FAIL: ") || l.contains(" ERR: ") || l.starts_with("FAIL: "))
        .map(String::from)
        .or_else(|| last_line(out))
}

/// Whether a `.out` says the test passed: `PASS` among the words of its last line, as
/// zdtm.py reads it.
pub fn passed(out: &str) -> bool {
    last_line(out).is_some_and(|l| l.split_whitespace().any(|w| w == "PASS"))
}

/// Runs `NAME.checkskip` (when the test has one) as zdtm.py does, from zdtm's `test/`
/// folder; its output when it says no (exits non-zero).
pub fn checkskip(z: &ZdtmTest) -> Option<String> {
    if !z.checkskip {
        return None;
    }
    let script = format!("zdtm/{}.checkskip", z.test);
    let ran = command::Cmd::new(format!("./{script}"))
        .dir(ZDTM_ROOT)
        .run_timed(Duration::from_secs(z.wait_s), None);
    match ran {
        Ok(r) if r.ok() => None,
        Ok(r) => Some(format!(
            "{script} says no (status {}){}",
            r.status,
            last_line(&r.output).map_or(String::new(), |l| format!(": {l}"))
        )),
        Err(e) => Some(format!("{script} could not run: {e}")),
    }
}

/// Removes what an earlier start of the test left (pidfiles, `.out*`, its test files and
/// states), as zdtm.py's `make NAME.cleanout`: a stale `NAME.outns` would keep the next
/// namespaced start from opening its log.
fn clean_out(z: &ZdtmTest) {
    let Ok(entries) = std::fs::read_dir(z.dir()) else {
        return;
    };
    for e in entries.flatten() {
        if left_by(z.name(), &e.file_name().to_string_lossy()) {
            let p = e.path();
            let _ = match e.file_type() {
                Ok(t) if t.is_dir() => std::fs::remove_dir_all(&p),
                _ => std::fs::remove_file(&p),
            };
        }
    }
}

/// Whether `file` is one `make NAME.cleanout` removes: `NAME.pid*`, `NAME.out*`,
/// `*NAME.test*`, `NAME.*.test`, `NAME.*.state`, `NAME.state`, `chew_NAME.test*`.
fn left_by(name: &str, file: &str) -> bool {
    let Some(rest) = file.strip_prefix(name) else {
        return file.contains(&format!("{name}.test"));
    };
    rest.starts_with(".pid")
        || rest.starts_with(".out")
        || rest.starts_with(".test")
        || rest == ".state"
        || (rest.starts_with('.') && (rest.ends_with(".test") || rest.ends_with(".state")))
}

/// Waits until the process followed exits, within zdtm's own time for the test; past it,
/// the test's failure (`what` it did not do; the scenario's time limit, a timeout, is the
/// harness's), with its `.out`'s error line.
fn exit(run: &mut Run, z: &ZdtmTest, step: StepKind, what: &str) -> Result<i32, StepError> {
    let limit = Instant::now() + Duration::from_secs(z.wait_s).min(run.step_budget());
    loop {
        if let Some(s) = run.exited() {
            return Ok(s);
        }
        if Instant::now() >= limit {
            let out = keep_out(run, z);
            let mut e = StepError::fail(step, format!("the test {what}"));
            e.failure.first_error_line = error_line(&out);
            return Err(e);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// After the launcher started: waits until it exits 0 and takes the pid of its pidfile.
fn started(run: &mut Run, z: &ZdtmTest) -> Result<(), StepError> {
    let within = format!("did not daemonise within {} s", z.wait_s);
    let status = exit(run, z, StepKind::WaitReady, &within)?;
    if status != 0 {
        let out = keep_out(run, z);
        let mut e = StepError::fail(
            StepKind::WaitReady,
            format!("the test's start (its Makefile rule) exited with status {status}"),
        );
        e.failure.exit_status = Some(status);
        e.failure.command = Some(z.command.join(" "));
        e.failure.first_error_line = error_line(&out);
        e.failure.errno = e.failure.first_error_line.as_deref().and_then(errno::find);
        return Err(e);
    }
    let pidfile = z.file("pid");
    let pid = std::fs::read_to_string(&pidfile)
        .ok()
        .and_then(|t| t.trim().parse::<i32>().ok())
        .filter(|p| *p > 1)
        .ok_or_else(|| {
            StepError::fail(
                StepKind::WaitReady,
                format!("{} holds no pid after the start", pidfile.display()),
            )
        })?;
    run.pid = Some(Pid::from_raw(pid));
    if kill(Pid::from_raw(pid), None).is_err() {
        return Err(StepError::fail(
            StepKind::WaitReady,
            format!("the test's pid {pid} is gone right after its start"),
        ));
    }
    Ok(())
}

/// `NAME.hook <stage>` when the test has one (from zdtm's `test/` folder, with the
/// test's pid in `ZDTM_TEST_PID` and, around the restore, the images in `ZDTM_IMG_DIR`,
/// as zdtm.py sets them).
fn hook(
    run: &Run,
    z: &ZdtmTest,
    step: StepKind,
    stage: &str,
    images: Option<&Path>,
) -> Result<(), StepError> {
    if !z.hook {
        return Ok(());
    }
    let script = format!("./zdtm/{}.hook", z.test);
    let mut cmd = command::Cmd::new(&script).arg(stage).dir(ZDTM_ROOT);
    if let Some(pid) = run.pid {
        cmd = cmd.env("ZDTM_TEST_PID", pid.to_string());
    }
    if let Some(dir) = images {
        cmd = cmd.env("ZDTM_IMG_DIR", dir);
    }
    // Into a file, not a pipe: a hook may leave a daemon behind (`--post-start` starts
    // the peer of a test's connection), which must not hold our pipe open.
    let out = run.work.join(format!("hook{stage}.out"));
    let ran = cmd.run_timed(Duration::from_secs(z.wait_s), Some(&out));
    let _ = ran.as_ref().map(|r| {
        let log = run.work.join("hook.log");
        let mut text = std::fs::read_to_string(&log).unwrap_or_default();
        text.push_str(&format!("$ {script} {stage}\n{}", r.output));
        let _ = std::fs::write(log, text);
        let _ = std::fs::remove_file(&out);
    });
    match ran {
        Ok(r) if r.ok() => Ok(()),
        Ok(r) => {
            let mut e = StepError::fail(
                step,
                format!("the test's hook {stage} failed with status {}", r.status),
            );
            e.failure.command = Some(format!("{script} {stage}"));
            e.failure.exit_status = Some(r.status);
            e.failure.first_error_line = last_line(&r.output);
            Err(e)
        }
        Err(err) => Err(StepError::fail(step, format!("cannot run {script}: {err}"))
            .with_outcome(Outcome::Error)),
    }
}

/// The test's `.out` (its `.out.inprogress` while it has not finished), copied into the
/// working directory (kept with the logs).
fn keep_out(run: &Run, z: &ZdtmTest) -> String {
    let text = std::fs::read_to_string(z.file("out"))
        .or_else(|_| std::fs::read_to_string(z.file("out.inprogress")))
        .unwrap_or_default();
    let _ = std::fs::write(run.work.join(format!("{}.out", z.name())), &text);
    if z.flavor.namespaced() {
        // The log of the namespaces' init (what it said of starting and stopping the test).
        if let Ok(ns) = std::fs::read_to_string(z.file("outns")) {
            let _ = std::fs::write(run.work.join(format!("{}.outns.log", z.name())), ns);
        }
    }
    text
}

/// SIGTERM, wait for the test to exit, and read its verdict.
fn verify(run: &mut Run, z: &ZdtmTest) -> Result<(), StepError> {
    let pid = run.pid.expect("started before verify");
    if let Some(gone) = run.exited() {
        keep_out(run, z);
        return Err(run.workload_died(StepKind::Verify, gone));
    }
    let _ = kill(pid, Signal::SIGTERM);
    let within = format!("did not exit within {} s of SIGTERM", z.wait_s);
    exit(run, z, StepKind::Verify, &within)?;
    let out = keep_out(run, z);
    if passed(&out) {
        run.detail = last_line(&out);
        return Ok(());
    }
    let line = error_line(&out);
    let mut e = StepError::fail(
        StepKind::Verify,
        match &line {
            Some(l) => format!("the test's check failed: {l}"),
            None => format!("the test wrote no verdict to {}", z.file("out").display()),
        },
    );
    e.failure.errno = line.as_deref().and_then(errno::find);
    e.failure.first_error_line = line;
    Err(e)
}

/// The program and arguments of a zdtm test's start command (a `./NAME` is the test's own
/// binary in its folder).
fn command(z: &ZdtmTest) -> (PathBuf, Vec<String>) {
    let first = z.command.first().map_or("", String::as_str);
    let program = match first.strip_prefix("./") {
        Some(local) => z.dir().join(local),
        None if Path::new(first).is_absolute() => first.into(),
        None => z.dir().join(first),
    };
    (program, z.command.iter().skip(1).cloned().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_cleanout_removes() {
        for f in [
            "pipe00.pid",
            "pipe00.pidns",
            "pipe00.out",
            "pipe00.outns",
            "pipe00.out.inprogress",
            "pipe00.test",
            "pipe00.x.test",
            "pipe00.state",
            "pipe00.x.state",
            "chew_pipe00.test.1",
        ] {
            assert!(left_by("pipe00", f), "{f}");
        }
        for f in [
            "pipe00",
            "pipe00.c",
            "pipe00.desc",
            "pipe000.pid",
            "pipe01.out",
        ] {
            assert!(!left_by("pipe00", f), "{f}");
        }
    }

    #[test]
    fn the_error_line_of_an_out_file() {
        let out = "05:16:37.202:   502: ERR: maps09.c:20: Failed to mmap 4 Mb (errno = 12)\n\
                   05:16:37.209:   501: ERR: test.c:317: Test exited unexpectedly with code 1\n";
        assert!(error_line(out).unwrap().contains("maps09.c:20"));
        assert_eq!(error_line("just this\n").as_deref(), Some("just this"));
        assert_eq!(error_line(""), None);
    }

    #[test]
    fn verdicts_of_out_files() {
        assert!(passed("some text\nPASS\n\n"));
        assert!(passed("PASS   "));
        assert!(!passed(
            "PASS\nFAIL: fifo.c:88: data differ (errno = 0 (Success))\n"
        ));
        assert!(!passed(""));
        assert!(!passed("PASSED\n"));
    }

    #[test]
    fn the_start_command_runs_the_tests_binary() {
        let z = ZdtmTest::sample(
            "static/fifo",
            &["./fifo", "--pidfile=fifo.pid", "--outfile=fifo.out"],
        );
        let (p, args) = command(&z);
        assert_eq!(p, Path::new("/zdtm-tree/zdtm/static/fifo"));
        assert_eq!(args, ["--pidfile=fifo.pid", "--outfile=fifo.out"]);
        assert_eq!(z.file("out"), Path::new("/zdtm-tree/zdtm/static/fifo.out"));
    }
}
