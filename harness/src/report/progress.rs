//! Progress of a run as a typed stream; reporters subscribe to it.

use crate::model::outcome::ScenarioResult;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

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
        /// From the saved ready state, not a boot.
        resume: bool,
        command: String,
    },
    AgentReady {
        ms: u64,
        /// From a saved state, not a boot.
        resumed: bool,
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

/// How many of a run's scenarios are done, shared by the reporters of its guests.
#[derive(Debug)]
pub struct Tally {
    total: usize,
    done: AtomicUsize,
    start: Instant,
    /// Notes said once per run, whichever guest says them first.
    said: std::sync::Mutex<Vec<String>>,
}

impl Tally {
    pub fn new(total: usize) -> Arc<Tally> {
        Arc::new(Tally {
            total,
            done: AtomicUsize::new(0),
            start: Instant::now(),
            said: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// True the first time `note` is offered.
    fn first_time(&self, note: &str) -> bool {
        let mut said = self.said.lock().unwrap_or_else(|e| e.into_inner());
        if said.iter().any(|n| n == note) {
            return false;
        }
        said.push(note.to_string());
        true
    }

    /// Counts one more scenario done; `[done/total, ETA m:ss]`.
    fn finish_one(&self) -> String {
        let done = self.done.fetch_add(1, Ordering::SeqCst) + 1;
        counter(done, self.total, self.start.elapsed())
    }
}

/// `[done/total, ETA m:ss]`: the time left at the pace so far (`ETA -` before the first).
pub fn counter(done: usize, total: usize, elapsed: Duration) -> String {
    let width = total.to_string().len();
    let left = total.saturating_sub(done);
    let eta = if done == 0 {
        "-".to_string()
    } else {
        let secs = (elapsed.as_secs_f64() / done as f64 * left as f64).round() as u64;
        format!("{}:{:02}", secs / 60, secs % 60)
    };
    format!("[{done:>width$}/{total}, ETA {eta}]")
}

/// Lines on stderr with the time since the run started; with several guests, each line
/// names its guest (`g1`), and verdict lines carry the run's `[done/total, ETA]`.
pub struct TerminalReporter {
    start: Instant,
    verbose: bool,
    guest: Option<usize>,
    tally: Option<Arc<Tally>>,
}

impl Progress {
    /// `guest ready in 5.2 s: kernel ..., criu ...` (or `resumed`) of an `AgentReady`.
    pub fn ready_line(&self) -> String {
        let Progress::AgentReady {
            ms,
            resumed,
            kernel,
            criu,
        } = self
        else {
            return String::new();
        };
        format!(
            "guest {} in {:.1} s: kernel {kernel}, criu {}",
            if *resumed { "resumed" } else { "ready" },
            *ms as f64 / 1000.0,
            criu.as_deref().unwrap_or("missing")
        )
    }
}

impl TerminalReporter {
    pub fn new(verbose: bool) -> TerminalReporter {
        TerminalReporter {
            start: Instant::now(),
            verbose,
            guest: None,
            tally: None,
        }
    }

    /// Lines name guest `i` (of several run at once).
    pub fn for_guest(mut self, i: usize) -> TerminalReporter {
        self.guest = Some(i);
        self
    }

    /// Verdict lines count the scenarios done in `tally`, times count from its start, and
    /// run-wide notes are said once for all the guests sharing it.
    pub fn counting(mut self, tally: Arc<Tally>) -> TerminalReporter {
        self.start = tally.start;
        self.tally = Some(tally);
        self
    }

    fn say(&self, text: &str) {
        let guest = self.guest.map_or(String::new(), |g| format!("g{g} "));
        eprintln!(
            "[{:7.1}s] {guest}{text}",
            self.start.elapsed().as_secs_f64()
        );
    }
}

impl Reporter for TerminalReporter {
    fn on(&mut self, p: &Progress) {
        match p {
            Progress::Prepare { what } => self.say(&format!("prepare: {what} ...")),
            Progress::Prepared { what, ms } => self.say(&format!("prepare: {what} ({ms} ms)")),
            Progress::AccelNote { note } => {
                if self.tally.as_ref().is_none_or(|t| t.first_time(note)) {
                    self.say(&format!("note: using TCG: {note}"))
                }
            }
            Progress::Booting {
                boot,
                resume,
                command,
            } => {
                self.say(&format!(
                    "guest {boot}: starting QEMU{}",
                    if *resume { " from the saved state" } else { "" }
                ));
                if self.verbose {
                    eprintln!("  + {command}");
                }
            }
            p @ Progress::AgentReady { .. } => self.say(&p.ready_line()),
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
                    self.say(&crate::report::text::step_line(
                        scenario, step, *iteration, *ms, *ok,
                    ))
                }
            }
            Progress::ScenarioFinished { result } => {
                let count = self
                    .tally
                    .as_ref()
                    .map_or(String::new(), |t| format!("{} ", t.finish_one()));
                // One write for the verdict and its report, so guests' lines do not mix.
                let mut text = format!("{count}{}", crate::report::text::scenario_line(result));
                if let (true, Some(f)) = (result.outcome.is_bad(), &result.failure) {
                    text.push('\n');
                    text.push_str(crate::report::text::failure_block(f).trim_end());
                }
                self.say(&text);
            }
            Progress::GuestLost { reason } => self.say(&format!("guest lost: {reason}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_counter_says_what_is_left() {
        assert_eq!(counter(0, 128, Duration::ZERO), "[  0/128, ETA -]");
        assert_eq!(
            counter(32, 128, Duration::from_secs(60)),
            "[ 32/128, ETA 3:00]"
        );
        assert_eq!(counter(5, 5, Duration::from_secs(9)), "[5/5, ETA 0:00]");
        let t = Tally::new(2);
        assert!(t.first_time("tcg") && !t.first_time("tcg") && t.first_time("other"));
        assert!(t.finish_one().starts_with("[1/2, ETA "));
        assert!(t.finish_one().starts_with("[2/2, ETA 0:00]"));
    }
}
