//! Progress of a run as a typed stream; reporters subscribe to it.

use crate::outcome::ScenarioResult;
use std::time::Instant;

#[derive(Debug, Clone)]
pub enum Progress {
    /// Preparing images: what, and whether it came from the cache.
    Prepare {
        what: String,
    },
    Prepared {
        what: String,
        ms: u64,
    },
    /// Said once per run: why TCG and not KVM.
    AccelNote {
        note: String,
    },
    Booting {
        boot: u32,
        command: String,
    },
    AgentReady {
        ms: u64,
        kernel: String,
        criu: Option<String>,
    },
    GuestNote {
        note: String,
    },
    ScenarioStarted {
        name: String,
    },
    Step {
        scenario: String,
        step: String,
        iteration: u32,
        ms: u64,
        ok: bool,
    },
    ScenarioFinished {
        result: Box<ScenarioResult>,
    },
    /// The guest died or hung; the run goes on with a new boot where scenarios remain.
    GuestLost {
        reason: String,
    },
}

pub trait Reporter {
    fn on(&mut self, p: &Progress);
}

/// Lines on stderr with the time since the run started.
pub struct TerminalReporter {
    start: Instant,
    verbose: bool,
}

impl TerminalReporter {
    pub fn new(verbose: bool) -> TerminalReporter {
        TerminalReporter {
            start: Instant::now(),
            verbose,
        }
    }

    fn say(&self, text: &str) {
        eprintln!("[{:7.1}s] {text}", self.start.elapsed().as_secs_f64());
    }
}

impl Reporter for TerminalReporter {
    fn on(&mut self, p: &Progress) {
        match p {
            Progress::Prepare { what } => self.say(&format!("prepare: {what} ...")),
            Progress::Prepared { what, ms } => self.say(&format!("prepare: {what} ({ms} ms)")),
            Progress::AccelNote { note } => self.say(&format!("note: using TCG: {note}")),
            Progress::Booting { boot, command } => {
                self.say(&format!("boot {boot}: starting QEMU"));
                if self.verbose {
                    eprintln!("  + {command}");
                }
            }
            Progress::AgentReady { ms, kernel, criu } => self.say(&format!(
                "guest ready in {:.1} s: kernel {kernel}, criu {}",
                *ms as f64 / 1000.0,
                criu.as_deref().unwrap_or("missing")
            )),
            Progress::GuestNote { note } => self.say(&format!("guest note: {note}")),
            Progress::ScenarioStarted { name } => self.say(&format!("{name}: started")),
            Progress::Step {
                scenario,
                step,
                iteration,
                ms,
                ok,
            } => {
                if self.verbose || !ok {
                    self.say(&format!(
                        "{scenario}: {step}#{iteration} {} in {ms} ms",
                        if *ok { "ok" } else { "FAILED" }
                    ))
                }
            }
            Progress::ScenarioFinished { result } => {
                self.say(&crate::report::scenario_line(result));
                if let (true, Some(f)) = (result.outcome.is_bad(), &result.failure) {
                    eprint!("{}", crate::report::failure_block(f));
                }
            }
            Progress::GuestLost { reason } => self.say(&format!("guest lost: {reason}")),
        }
    }
}
