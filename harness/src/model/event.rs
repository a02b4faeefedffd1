//! The guest agent's events: one JSON object per line on the agent's own serial port.
//!
//! The host reads them from `events.jsonl` as the guest writes them, so it knows what the
//! guest is doing (for timeouts) and gets each scenario's result as soon as it is known.

use crate::model::outcome::ScenarioResult;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The agent has set up the guest and is about to run the plan.
    AgentReady {
        kernel_release: String,
        /// Guest uptime when ready (from /proc/uptime), in ms.
        uptime_ms: u64,
        /// Guest uptime (ms) at the end of each setup phase: where the boot time goes.
        #[serde(default)]
        marks: Vec<(String, u64)>,
        /// Setup problems that did not stop the agent (a module that would not load, ...).
        notes: Vec<String>,
    },
    ScenarioStarted {
        name: String,
    },
    StepStarted {
        scenario: String,
        step: String,
        iteration: u32,
    },
    StepFinished {
        scenario: String,
        step: String,
        iteration: u32,
        ms: u64,
        ok: bool,
    },
    ScenarioFinished {
        result: Box<ScenarioResult>,
    },
    /// The result of a probe command of the plan.
    ProbeResult {
        command: Vec<String>,
        status: i32,
        output: String,
    },
    /// The guest is no longer a clean base (its kernel became tainted): the agent stops
    /// and the host boots a new guest for the scenarios left.
    RestartRequested {
        reason: String,
    },
    /// The agent could not go on (bad plan, a mount that failed, ...).
    AgentError {
        message: String,
    },
    /// All scenarios of the plan ran; the agent powers off next.
    Done,
}

impl Event {
    pub fn to_line(&self) -> String {
        let mut s = serde_json::to_string(self).expect("events always serialise");
        s.push('\n');
        s
    }
}

/// Splits a chunk of the event stream into events, keeping an incomplete last line in `buf`.
/// Lines that are not events (serial noise) are returned as `Err(line)`.
pub fn parse_lines(buf: &mut String, chunk: &str) -> Vec<Result<Event, String>> {
    buf.push_str(chunk);
    let mut out = Vec::new();
    while let Some(nl) = buf.find('\n') {
        let line: String = buf.drain(..=nl).collect();
        let line = line.trim_matches(|c| c == '\r' || c == '\n' || c == '\0');
        if line.is_empty() {
            continue;
        }
        out.push(serde_json::from_str(line).map_err(|_| line.to_string()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_across_chunks_and_serial_noise() {
        let ev = Event::ScenarioStarted { name: "a".into() };
        let line = ev.to_line().replace('\n', "\r\n");
        let (first, second) = line.split_at(10);
        let mut buf = String::new();
        assert!(parse_lines(&mut buf, first).is_empty());
        let got = parse_lines(&mut buf, &format!("{second}garbage\n"));
        assert_eq!(got, vec![Ok(ev), Err("garbage".to_string())]);
        assert!(buf.is_empty());
    }

    #[test]
    fn wire_format_is_tagged() {
        insta::assert_snapshot!(Event::Done.to_line().trim(), @r#"{"event":"done"}"#);
    }
}
