//! The guest agent: PID 1 of the VM. It sets the guest up, runs the plan the host left in
//! the results folder, reports every step as an event on its own serial port, and powers off.

use crate::diagnose::chain::chain;
use crate::exec::context::{reap_orphans, ExecConfig};
use crate::exec::executor;
use crate::guest::setup::{self as setup, paths};
use crate::model::event::Event;
use crate::model::scenario::Scenario;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;
use std::time::Duration;

/// Why the agent could not run its plan.
#[derive(Debug, thiserror::Error)]
enum AgentError {
    #[error("setting the guest up")]
    Setup(#[from] setup::SetupError),
    #[error("cannot read {path}")]
    ReadPlan {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("migration")]
    Move(#[from] crate::guest::mover::MoveError),
    #[error("bad plan {path}")]
    BadPlan {
        path: std::path::PathBuf,
        source: serde_json::Error,
    },
}

/// What the host asks the guest to run; written to `<run_dir>/plan.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GuestPlan {
    pub scenarios: Vec<Scenario>,
    /// Keep criu images of passing scenarios too.
    #[serde(default)]
    pub keep_images: bool,
    /// Commands run before the scenarios, each reported with its status and output
    /// (`crtest doctor` asks `criu check` this way).
    #[serde(default)]
    pub probes: Vec<Vec<String>>,
    /// Set when the guest's criu was built from a source tree (what it is, for messages):
    /// the agent first checks that `criu --version` runs, and when it does not, every
    /// scenario is an `error` with its output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub built_criu: Option<String>,
    /// This guest is one of a migration's two: the scenarios move as the host's commands on
    /// the control port say (see [`crate::guest::mover`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moves: Option<crate::model::migration::MovePlan>,
}

pub const PLAN_FILE: &str = "plan.json";

/// The agent's event port: raw mode, so lines arrive as written.
struct EventPort {
    out: Box<dyn Write>,
}

impl EventPort {
    fn open() -> EventPort {
        let out: Box<dyn Write> = match std::fs::OpenOptions::new()
            .write(true)
            .open(paths::EVENTS_TTY)
        {
            Ok(f) => {
                if let Ok(mut t) = nix::sys::termios::tcgetattr(&f) {
                    nix::sys::termios::cfmakeraw(&mut t);
                    let _ =
                        nix::sys::termios::tcsetattr(&f, nix::sys::termios::SetArg::TCSANOW, &t);
                }
                Box::new(f)
            }
            Err(e) => {
                eprintln!("crtest-agent: cannot open {}: {e}", paths::EVENTS_TTY);
                Box::new(std::io::stderr())
            }
        };
        EventPort { out }
    }

    fn send(&mut self, ev: &Event) {
        let _ = self.out.write_all(ev.to_line().as_bytes());
        let _ = self.out.flush();
    }
}

/// Runs the agent; never returns (powers the VM off).
pub fn main() -> ! {
    // Started by criu as its action script (to read the tree at a dump's or a restore's
    // own moment), not as the guest's init.
    if let Some(code) = crate::exec::visible::moment::action_script_main() {
        std::process::exit(code);
    }
    std::env::set_var(
        "PATH",
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    );
    if nix::unistd::getpid().as_raw() != 1 {
        eprintln!("crtest-agent: must run as PID 1 inside the cr-tests guest");
        std::process::exit(2);
    }
    let mut port = None;
    if let Err(e) = run(&mut port) {
        // The whole chain, each cause once: the host shows it as the agent's error.
        let message = chain(&e);
        eprintln!("crtest-agent: {message}");
        port.get_or_insert_with(EventPort::open)
            .send(&Event::AgentError { message });
    }
    power_off()
}

fn run(port: &mut Option<EventPort>) -> Result<(), AgentError> {
    setup::early_mounts()?;
    let mut marks = vec![("agent-start".to_string(), setup::uptime_ms())];
    let mut mark = |what: &str| marks.push((what.to_string(), setup::uptime_ms()));
    let port = port.insert(EventPort::open());
    let mut notes = setup::load_boot_modules();
    mark("modules");
    setup::wait_for(paths::ROOT_DEVICE, Duration::from_secs(20))?;
    setup::switch_root()?;
    mark("root");
    setup::root_mounts()?;
    notes.extend(setup::zdtm_disk());
    mark("mounts");
    let _ = nix::unistd::sethostname("crtest-guest");
    if let Err(e) = setup::loopback_up() {
        notes.push(format!("lo up: {}", chain(&e)));
    }
    mark("network");
    notes.extend(setup::lxc_network());
    mark("lxc");
    if saved_by_host() {
        // The host saves this guest now; what follows runs in each copy it resumes.
        port.send(&Event::SaveReady {
            uptime_ms: setup::uptime_ms(),
            marks: marks.clone(),
            notes: std::mem::take(&mut notes),
        });
        setup::wait_for_go()?;
        marks.push(("resumed".to_string(), setup::uptime_ms()));
    }
    notes.extend(setup::writable()?);
    marks.push(("shares".to_string(), setup::uptime_ms()));
    port.send(&Event::AgentReady {
        kernel_release: nix::sys::utsname::uname()
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_default(),
        uptime_ms: setup::uptime_ms(),
        marks,
        notes,
    });

    let results = Path::new(paths::RESULTS);
    let plan_path = results.join(PLAN_FILE);
    let text = std::fs::read_to_string(&plan_path).map_err(|source| AgentError::ReadPlan {
        path: plan_path.clone(),
        source,
    })?;
    let plan: GuestPlan = serde_json::from_str(&text).map_err(|source| AgentError::BadPlan {
        path: plan_path.clone(),
        source,
    })?;
    let cfg = ExecConfig {
        work_root: paths::WORK.into(),
        run_dir: results.to_path_buf(),
        bin_dir: paths::BIN.into(),
        criu: "criu".into(),
        keep_images: plan.keep_images,
    };
    for probe in &plan.probes {
        let p = run_probe(probe);
        port.send(&Event::ProbeResult {
            command: p.command,
            status: p.status,
            output: p.output,
        });
    }
    let unusable = plan.built_criu.as_deref().and_then(|what| {
        let p = run_probe(&["criu".to_string(), "--version".to_string()]);
        port.send(&Event::ProbeResult {
            command: p.command.clone(),
            status: p.status,
            output: p.output.clone(),
        });
        built_criu_failure(what, &p)
    });
    if let Some(unusable) = unusable {
        for sc in &plan.scenarios {
            let mut r = crate::model::outcome::ScenarioResult::without_steps(
                &sc.name,
                crate::model::outcome::Outcome::Error,
                unusable.clone(),
            );
            r.tags = sc.tags.clone();
            port.send(&Event::ScenarioFinished {
                result: Box::new(r),
            });
        }
        port.send(&Event::Done);
        return Ok(());
    }
    if let Some(moves) = &plan.moves {
        crate::guest::mover::serve(&cfg, &plan.scenarios, moves, &mut |ev| port.send(&ev))?;
        port.send(&Event::Done);
        return Ok(());
    }
    let clean = crate::guest::health::taint();
    let firewall = crate::guest::health::netfilter_rules();
    let mut world = crate::guest::health::World::now();
    for sc in &plan.scenarios {
        port.send(&Event::ScenarioStarted {
            name: sc.name.clone(),
        });
        let mut result = executor::run_scenario(&cfg, sc, &mut |ev| port.send(&ev));
        reap_orphans();
        let mut leftovers = crate::guest::health::kill_leftovers();
        leftovers.extend(
            firewall
                .as_deref()
                .and_then(crate::guest::health::restore_netfilter),
        );
        leftovers.extend(world.put_back(&crate::guest::health::World::now()));
        if !leftovers.is_empty() {
            result.leftovers = leftovers;
        }
        let letters = crate::guest::health::new_taint_letters(clean, crate::guest::health::taint());
        if !letters.is_empty() {
            crate::guest::health::mark_tainted(&mut result, &letters);
        }
        port.send(&Event::ScenarioFinished {
            result: Box::new(result),
        });
        if !letters.is_empty() {
            // A tainted kernel is not a clean base for the next scenario: the host boots
            // a new guest for the rest.
            port.send(&Event::RestartRequested {
                reason: format!("the kernel became tainted ({letters}) during {}", sc.name),
            });
            return Ok(());
        }
    }
    port.send(&Event::Done);
    Ok(())
}

/// Whether the host boots this guest to save it (`crtest.save=1`).
fn saved_by_host() -> bool {
    std::fs::read_to_string("/proc/cmdline")
        .unwrap_or_default()
        .split_whitespace()
        .any(|w| w == "crtest.save=1")
}

/// The failure of every scenario when the criu built from a tree (`what`) does not start
/// (`p` is its `criu --version`).
fn built_criu_failure(
    what: &str,
    p: &crate::diagnose::doctor::ProbeOutput,
) -> Option<crate::model::outcome::Failure> {
    if p.status == 0 {
        return None;
    }
    let first = p
        .output
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(String::from);
    Some(crate::model::outcome::Failure {
        step: "setup".into(),
        command: Some(p.command.join(" ")),
        exit_status: Some(p.status),
        errno: first.as_deref().and_then(crate::diagnose::errno::find),
        class: Some("criu-does-not-start".into()),
        message: format!(
            "{what} does not start in the guest: `criu --version` exited {}: {}",
            p.status,
            first.as_deref().unwrap_or("no output")
        ),
        first_error_line: first,
        ..Default::default()
    })
}

/// Runs one probe command; its output is capped so one event stays small.
pub fn run_probe(command: &[String]) -> crate::diagnose::doctor::ProbeOutput {
    const CAP: usize = 64 * 1024;
    let (status, mut output) = match command.split_first() {
        None => (-1, "empty probe".to_string()),
        Some((program, args)) => {
            match crtest_vm::command::run(program, args, Duration::from_secs(120)) {
                Ok(r) => (if r.timed_out { -1 } else { r.status }, r.output),
                Err(e) => (-1, e.to_string()),
            }
        }
    };
    if output.len() > CAP {
        let mut cut = CAP;
        while !output.is_char_boundary(cut) {
            cut -= 1;
        }
        output.truncate(cut);
        output.push_str("\n[output cut]");
    }
    crate::diagnose::doctor::ProbeOutput {
        command: command.to_vec(),
        status,
        output,
    }
}

fn power_off() -> ! {
    nix::unistd::sync();
    let _ = nix::mount::umount(paths::RESULTS);
    let _ = nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_POWER_OFF);
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}
