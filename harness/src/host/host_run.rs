//! `crtest run --host`: the same executor on the host's own kernel with the host's criu.
//! Root only; it touches no process it did not start.

use crate::exec::context::{reap_orphans, ExecConfig};
use crate::exec::executor;
use crate::host::vm_run::recorder::CellRecorder;
use crate::model::scenario::Scenario;
use crate::report::progress::{Progress, Reporter};
use crate::results::run::{CellReport, KernelInfo, QemuInfo, ResultsError, RunDir, UserlandInfo};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("--host runs criu on this machine's kernel and needs root; run it as root (sudo) or drop --host to use a VM")]
    NotRoot,
    #[error("criu is not installed on this host: {0} (install it with: apt-get install -y criu)")]
    NoCriu(String),
    #[error("guest binaries: {0}")]
    GuestBuild(#[from] crate::host::guest_build::GuestBuildError),
    #[error("cannot create a working directory: {0}")]
    WorkDir(std::io::Error),
    #[error("cannot become a child subreaper: {0}")]
    Subreaper(nix::errno::Errno),
    #[error(transparent)]
    Results(#[from] ResultsError),
}

impl HostError {
    /// Whether the user is at fault (not root), not the host.
    pub fn is_bad_input(&self) -> bool {
        matches!(self, HostError::NotRoot)
    }
}

/// The doctor's evidence from this machine: its kernel and config, and its criu's checks.
pub fn doctor_evidence() -> Result<crate::diagnose::doctor::Evidence, HostError> {
    if !nix::unistd::geteuid().is_root() {
        return Err(HostError::NotRoot);
    }
    let release = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    let config = std::fs::read_to_string(format!("/boot/config-{release}"))
        .ok()
        .map(|t| crate::diagnose::kernel_config::parse_config(&t));
    let probes = crate::diagnose::doctor::probes()
        .iter()
        .map(|cmd| crate::guest::agent::run_probe(cmd))
        .collect();
    Ok(crate::diagnose::doctor::Evidence {
        cell: format!("host-{release}"),
        kernel_release: release,
        kernel_source: "host".into(),
        kernel_config: config,
        criu_package: None,
        lxc: None,
        qemu: None,
        accel: "none".into(),
        probes,
        oci: None,
    })
}

pub fn run_host(
    scenarios: &[Scenario],
    keep_images: bool,
    run: &mut RunDir,
    reporter: &mut dyn Reporter,
) -> Result<(), HostError> {
    if !nix::unistd::geteuid().is_root() {
        return Err(HostError::NotRoot);
    }
    let criu = crtest_vm::command::run("criu", &["--version".into()], Duration::from_secs(30))
        .map_err(|e| HostError::NoCriu(e.to_string()))?;
    let criu_version = crate::diagnose::criu_log::parse_version(&criu.output);
    let t = Instant::now();
    let bins = crate::host::guest_build::build()?;
    reporter.on(&Progress::Prepared {
        what: "workload binaries".into(),
        ms: t.elapsed().as_millis() as u64,
    });
    // Restored trees are re-parented to us, so we can wait for them as for our own children.
    nix::sys::prctl::set_child_subreaper(true).map_err(HostError::Subreaper)?;
    let work = tempfile::Builder::new()
        .prefix("crtest-host-")
        .tempdir()
        .map_err(HostError::WorkDir)?;
    let release = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    let config = std::path::PathBuf::from(format!("/boot/config-{release}"));
    let cell = CellReport {
        id: format!("host-{release}"),
        kernel: KernelInfo {
            release,
            source: "host".into(),
            missing_options: crate::diagnose::kernel_config::check_file(&config),
        },
        userland: UserlandInfo {
            suite: "host".into(),
            criu_source: crtest_vm::command::locate("criu")
                .map(|p| format!("host:{}", p.display())),
            criu: criu_version,
            lxc: None,
            oci: Default::default(),
        },
        qemu: QemuInfo {
            accel: "none".into(),
            ..QemuInfo::default()
        },
        ..CellReport::default()
    };
    let facts = crate::model::requirements::Facts {
        kernel_release: cell.kernel.release.clone(),
        kernel_config: std::fs::read_to_string(&config)
            .ok()
            .map(|t| crate::diagnose::kernel_config::parse_config(&t)),
        criu: cell.userland.criu.clone(),
        lxc: None,
    };
    let mut rec = CellRecorder::start(run, reporter, cell)?;
    let cfg = ExecConfig {
        work_root: work.path().to_path_buf(),
        run_dir: rec.run.dir.clone(),
        bin_dir: bins.dir.clone(),
        criu: "criu".into(),
        keep_images,
    };
    let (scenarios, skipped) = crate::model::requirements::partition(scenarios, &facts);
    rec.decided(skipped);
    // The same skip policy for zdtm tests as in a guest; the host has no built tree.
    let zdtm_facts = crate::zdtm::known::CellFacts {
        zdtm: None,
        criu: facts.criu.clone(),
        kernel: facts.kernel_release.clone(),
        suite: "host".into(),
    };
    let (scenarios, skipped) = crate::zdtm::partition::partition(
        scenarios,
        &zdtm_facts,
        Err("zdtm tests run in a guest, from the tree built into its data disk: not with --host"),
    );
    rec.decided(skipped);
    for sc in &scenarios {
        if let Some(sig) = crate::host::interrupt::requested() {
            let mut r = crate::model::outcome::ScenarioResult::without_steps(
                &sc.name,
                crate::model::outcome::Outcome::Error,
                crate::model::outcome::Failure {
                    step: "interrupted".into(),
                    message: format!(
                        "interrupted by {} before it ran",
                        crate::host::interrupt::name(sig)
                    ),
                    ..Default::default()
                },
            );
            r.detail = None;
            rec.decided(vec![r]);
            continue;
        }
        rec.progress(&Progress::ScenarioStarted {
            name: sc.name.clone(),
        });
        let result = executor::run_scenario(&cfg, sc, &mut |ev| {
            if let crate::model::event::Event::StepFinished {
                scenario,
                step,
                iteration,
                ms,
                ok,
            } = ev
            {
                rec.progress(&Progress::Step {
                    scenario,
                    step,
                    iteration,
                    ms,
                    ok,
                });
            }
        });
        reap_orphans();
        rec.decided(vec![result]);
        rec.save()?;
    }
    rec.save()?;
    Ok(())
}
