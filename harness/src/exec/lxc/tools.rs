//! Running the lxc tools for a step: each command timed as a sub-step, logged with its
//! output in `lxc-commands.log`, its failure explained from criu's log, the tool's output
//! and lxc's own log; and waiting for the container's state (`lxc-info`).

use super::{config as conf, STATE_WAIT};
use crate::diagnose::errno;
use crate::exec::command_log;
use crate::exec::context::{Run, StepError};
use crate::exec::lxc::config::Info;
use crate::exec::lxc::state::Container;
use crate::model::outcome::{Outcome, StepRecord};
use crate::model::scenario::StepKind;
use crtest_vm::command::{Cmd, CommandError, Ran};
use std::path::Path;
use std::time::{Duration, Instant};

/// Runs an lxc tool with the step's time budget, logs it to `lxc-commands.log` and records
/// it as a sub-step. "Could not start" is an `error`; a tool that ran and failed is for the
/// caller to judge.
pub(super) fn tool(
    run: &mut Run,
    c: &mut Container,
    step: StepKind,
    program: &str,
    args: &[String],
) -> Result<Ran, StepError> {
    tool_env(run, c, step, program, args, &[])
}

/// [`tool`] with `env` added to its environment.
pub(super) fn tool_env(
    run: &mut Run,
    c: &mut Container,
    step: StepKind,
    program: &str,
    args: &[String],
    env: &[(String, String)],
) -> Result<Ran, StepError> {
    let t = Instant::now();
    let out = run.work.join(".lxc-tool.out");
    let mut cmd = Cmd::new(program).args(args);
    for (k, v) in env {
        cmd = cmd.env(k, v);
    }
    let res = cmd.run_timed(run.step_budget(), Some(&out));
    let _ = std::fs::remove_file(&out);
    match res {
        Ok(ran) => {
            record(run, c, program, t, ran.ok());
            log_command(
                run,
                &ran.command,
                Some((ran.status, ran.elapsed.as_millis() as u64)),
                &ran.output,
            );
            Ok(ran)
        }
        Err(e) => {
            record(run, c, program, t, false);
            log_command(run, e.command(), None, &e.to_string());
            let mut err = StepError::fail(step, e.to_string()).with_outcome(Outcome::Error);
            err.failure.command = Some(e.command().to_string());
            err.failure.errno = e.os_error().and_then(errno::name);
            err.failure.class = Some("missing-tool".into());
            Err(err)
        }
    }
}

/// A tool run without records (before the container exists).
pub(super) fn tool_quiet(program: &str, args: &[String]) -> Option<Ran> {
    let out = std::env::temp_dir().join(".crtest-lxc-tool.out");
    let r = run_to_file(program, args, Duration::from_secs(30), &out).ok();
    let _ = std::fs::remove_file(&out);
    r
}

/// Runs a tool with the output going through a file: `lxc-start -d` and
/// `lxc-checkpoint -r` leave a daemon behind, which must not hold a pipe of ours open.
fn run_to_file(
    program: &str,
    args: &[String],
    timeout: Duration,
    out: &Path,
) -> Result<Ran, CommandError> {
    Cmd::new(program).args(args).run_timed(timeout, Some(out))
}

/// Polls `lxc-info` until the container is in `want` (one sub-step for the whole wait).
pub(super) fn wait_state(
    run: &mut Run,
    c: &mut Container,
    step: StepKind,
    want: &str,
) -> Result<Info, StepError> {
    let name = c.name.clone();
    let t = Instant::now();
    let limit = t + STATE_WAIT.min(run.step_budget().max(Duration::from_secs(5)));
    loop {
        let ran = run_to_file(
            "lxc-info",
            &conf::name_args(&name),
            Duration::from_secs(30),
            &run.work.join(".lxc-info.out"),
        );
        let _ = std::fs::remove_file(run.work.join(".lxc-info.out"));
        let ran = match ran {
            Ok(r) => r,
            Err(e) => {
                record(run, c, "lxc-info", t, false);
                let mut err = StepError::fail(step, e.to_string()).with_outcome(Outcome::Error);
                err.failure.command = Some(e.command().to_string());
                err.failure.class = Some("missing-tool".into());
                return Err(err);
            }
        };
        let info = conf::parse_info(&ran.output);
        let state = info.state.clone().unwrap_or_default();
        // lxc-execute runs in the background: the container may not be up yet, and it is
        // gone for good only once lxc-execute exits. Otherwise the tool has returned, and
        // STOPPED is final: the container died.
        let died = want != "STOPPED"
            && match c.execute.as_mut() {
                Some(child) => !matches!(child.try_wait(), Ok(None)),
                None => state == "STOPPED",
            };
        if state == want || died || Instant::now() >= limit {
            let ok = state == want;
            record(run, c, "lxc-info", t, ok);
            log_command(
                run,
                &ran.command,
                Some((ran.status, t.elapsed().as_millis() as u64)),
                &format!("{}(waited for {want})\n", ran.output),
            );
            if ok {
                return Ok(info);
            }
            let mut e = StepError::fail(
                step,
                format!(
                    "the container is {} where {want} was expected",
                    if state.is_empty() {
                        "in no state lxc-info names"
                    } else {
                        &state
                    }
                ),
            );
            e.failure.command = Some(ran.command.clone());
            if let Some(v) = run.verdict().filter(|v| !v.ok) {
                // The workload found its state wrong and exited: that stopped the container.
                e.failure.message = format!(
                    "the container stopped: the workload's check failed: {}",
                    v.detail
                );
                e.failure.first_error_line = Some(v.detail);
                return Err(e);
            }
            let lxc_log = std::fs::read_to_string(&c.log).unwrap_or_default();
            let execute_log =
                std::fs::read_to_string(run.work.join("lxc-execute.log")).unwrap_or_default();
            e.failure.first_error_line =
                conf::first_error(&execute_log).or_else(|| conf::first_log_error(&lxc_log));
            e.failure.errno = e.failure.first_error_line.as_deref().and_then(errno::find);
            return Err(e);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The failure of an lxc tool that ran: its command and status, and the first error line
/// of criu's log (when it got that far) or else of the tool's output and lxc's log.
pub(super) fn tool_failed(
    c: &mut Container,
    step: StepKind,
    ran: &Ran,
    criu_log: Option<&str>,
) -> StepError {
    let tool = ran.command.split_whitespace().next().unwrap_or("lxc");
    let mut e = StepError::fail(
        step,
        if ran.timed_out {
            format!("{tool} did not finish in time")
        } else {
            format!("{tool} exited with status {}", ran.status)
        },
    );
    if ran.timed_out {
        e.outcome = Outcome::Timeout;
    }
    let criu_text = criu_log.unwrap_or("");
    let lxc_log = std::fs::read_to_string(&c.log).unwrap_or_default();
    let first = crate::diagnose::criu_log::first_error_line(criu_text)
        .or_else(|| conf::first_error(&ran.output))
        .or_else(|| conf::first_log_error(&lxc_log))
        .or_else(|| ran.tail(1).pop());
    e.failure.command = Some(ran.command.clone());
    e.failure.exit_status = Some(ran.status);
    e.failure.errno = crate::diagnose::criu_log::errno_of(criu_text, first.as_deref());
    e.failure.first_error_line = first;
    let mut evidence = crate::diagnose::class::error_lines(criu_text);
    evidence.extend(ran.output.lines().filter(|l| l.contains("../src/lxc/")));
    crate::model::expectation::diagnose(&mut e.failure, &evidence);
    e
}

/// Copies `dir/<name>.log` (criu's log, as lxc-checkpoint writes it) to
/// `<work>/<name>-N.log`; returns its text.
pub(super) fn keep_log(run: &Run, dir: &Path, name: &str, iteration: u32) -> Option<String> {
    let text = std::fs::read_to_string(dir.join(format!("{name}.log"))).ok()?;
    let _ = std::fs::write(run.work.join(format!("{name}-{iteration}.log")), &text);
    Some(text)
}

/// Records a sub-step `<step>:<what>` of the current step.
pub(super) fn record(run: &mut Run, c: &Container, what: &str, since: Instant, ok: bool) {
    run.substeps.push(StepRecord {
        step: format!("{}:{what}", c.phase),
        iteration: c.iteration,
        ms: since.elapsed().as_millis() as u64,
        ok,
    });
}

/// The backend's command log.
const LOG: &str = "lxc-commands.log";

/// Appends what the harness saw to `lxc-commands.log`.
pub(super) fn note(run: &Run, text: &str) {
    command_log::note(&run.work.join(LOG), text);
}

/// Appends a command, its status and output to `lxc-commands.log`.
pub(super) fn log_command(run: &Run, line: &str, status: Option<(i32, u64)>, output: &str) {
    let said = command_log::status_text(status, "started");
    command_log::command(&run.work.join(LOG), line, &said, output);
}
