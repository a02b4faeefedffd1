//! Running the OCI tools for a step: each command timed as a sub-step, logged with its
//! output in `oci-commands.log`, and its failure explained from criu's log (the one the
//! tool names, or the images folder's), the tool's own error line and the runtime's.

use super::output;
use super::state::Container;
use crate::diagnose::errno;
use crate::exec::command_log;
use crate::exec::context::{Run, StepError};
use crate::model::outcome::{Outcome, StepRecord};
use crate::model::scenario::StepKind;
use crtest_vm::command::{Cmd, Ran};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// podman's configuration for the guest (no systemd there: cgroupfs, events to a file),
/// one a runtime: the runtime is podman's default too, which a container made again from a
/// checkpoint image gets (podman records the default, not the container's runtime).
fn containers_conf(runtime: &str) -> (PathBuf, String) {
    let path = PathBuf::from(format!("/run/crtest-oci/containers-{runtime}.conf"));
    let text = format!(
        "# Written by crtest: a guest without systemd.\n\
         [engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\nruntime = \"{runtime}\"\n"
    );
    (path, text)
}

/// Runs `program` (`podman`, `runc`, `crun`) with the step's time budget; logged and
/// recorded as a sub-step. "Could not start" is an `error` (`missing-tool`); a tool that
/// ran and failed is for the caller to judge.
pub(super) fn tool(
    run: &mut Run,
    c: &Container,
    step: StepKind,
    program: &str,
    args: &[String],
) -> Result<Ran, StepError> {
    let t = Instant::now();
    let out = run.work.join(".oci-tool.out");
    let res = command(program, args, c.runtime.as_str()).run_timed(run.step_budget(), Some(&out));
    let _ = std::fs::remove_file(&out);
    // Named by the verb: `podman [--runtime R] container checkpoint` is podman-checkpoint.
    let verb = args
        .iter()
        .map(String::as_str)
        .enumerate()
        .find(|(i, a)| {
            !a.starts_with('-')
                && *a != "container"
                && (*i == 0 || !args[i - 1].starts_with("--runtime"))
        })
        .map_or("", |(_, a)| a);
    let what = format!("{program}-{verb}");
    match res {
        Ok(ran) => {
            record(run, c, &what, t, ran.ok());
            log_command(
                run,
                &ran.command,
                Some((ran.status, ran.elapsed.as_millis() as u64)),
                &ran.output,
            );
            Ok(ran)
        }
        Err(e) => {
            record(run, c, &what, t, false);
            log_command(run, e.command(), None, &e.to_string());
            let mut err = StepError::fail(step, e.to_string()).with_outcome(Outcome::Error);
            err.failure.command = Some(e.command().to_string());
            err.failure.errno = e.os_error().and_then(errno::name);
            err.failure.class = Some("missing-tool".into());
            Err(err)
        }
    }
}

/// A tool run without records: probes, cleanup (podman with `runtime` as its default).
pub(super) fn quiet(program: &str, args: &[String], runtime: &str, limit: Duration) -> Option<Ran> {
    let out = std::env::temp_dir().join(format!(".crtest-oci-{}.out", std::process::id()));
    let r = command(program, args, runtime)
        .run_timed(limit, Some(&out))
        .ok();
    let _ = std::fs::remove_file(&out);
    r
}

/// The command with podman's guest configuration for `runtime` in its environment
/// (written once).
fn command(program: &str, args: &[String], runtime: &str) -> Cmd {
    let (conf, text) = containers_conf(runtime);
    if !conf.exists() {
        let _ = std::fs::create_dir_all(conf.parent().expect("a folder"));
        let _ = std::fs::write(&conf, text);
    }
    Cmd::new(program).args(args).env("CONTAINERS_CONF", &conf)
}

/// The failure of a tool that ran: its command and status; criu's first error line when
/// its log says one (the log kept as `<name>-N.log`), else the tool's own error line.
pub(super) fn failed(
    run: &Run,
    step: StepKind,
    ran: &Ran,
    criu_log: Option<&Path>,
    keep_as: &str,
    iteration: u32,
) -> StepError {
    // The command line may begin with its environment (`CONTAINERS_CONF=...`).
    let tool = ran
        .command
        .split_whitespace()
        .find(|w| !w.contains('='))
        .and_then(|t| t.rsplit('/').next())
        .unwrap_or("tool");
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
    let named = output::criu_log_path(&ran.output);
    let log_path = named.as_deref().or(criu_log);
    let criu_text = log_path
        .and_then(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_default();
    if !criu_text.is_empty() {
        let _ = std::fs::write(
            run.work.join(format!("{keep_as}-{iteration}.log")),
            &criu_text,
        );
    }
    let first = crate::diagnose::criu_log::first_error_line(&criu_text)
        .or_else(|| output::first_error(&ran.output))
        .or_else(|| ran.tail(1).pop());
    e.failure.command = Some(ran.command.clone());
    e.failure.exit_status = Some(ran.status);
    e.failure.errno = crate::diagnose::criu_log::errno_of(&criu_text, first.as_deref());
    e.failure.first_error_line = first;
    // The runtime's own words count as evidence beside criu's error lines.
    let own = output::first_error(&ran.output);
    let mut evidence = crate::diagnose::class::error_lines(&criu_text);
    evidence.extend(own.as_deref());
    crate::model::expectation::diagnose(&mut e.failure, &evidence);
    e
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
const LOG: &str = "oci-commands.log";

/// Appends what the harness saw to `oci-commands.log`.
pub(super) fn note(run: &Run, text: &str) {
    command_log::note(&run.work.join(LOG), text);
}

/// Appends a command, its status and output to `oci-commands.log`.
pub(super) fn log_command(run: &Run, line: &str, status: Option<(i32, u64)>, output: &str) {
    let said = command_log::status_text(status, "did not start");
    command_log::command(&run.work.join(LOG), line, &said, output);
}
