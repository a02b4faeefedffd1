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
    /// Set up with its disks read-only and no share mounted: the host may save the guest
    /// now. The agent then waits on its control port for the word to go on (a resumed copy).
    SaveReady {
        uptime_ms: u64,
        marks: Vec<(String, u64)>,
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
    /// A guest of a migration has its link up and reads the host's commands from now on
    /// (a line written before would be lost: opening the port empties its FIFO).
    MoveListening,
    /// A guest of a migration did what the host's command asked, or failed to.
    MoveDone {
        report: Box<crate::model::migration::MoveReport>,
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

/// A line of the event stream that holds no event (serial noise): the line, trimmed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an event: {0}")]
pub struct NotAnEvent(pub String);

/// One line of the event stream (without its newline): `None` when blank, else the event or,
/// for serial noise, invalid UTF-8 and anything else that is not an event, the line.
/// serde_json refuses nesting deeper than 128, so no line can exhaust the stack.
pub fn parse_line(line: &[u8]) -> Option<Result<Event, NotAnEvent>> {
    let text = String::from_utf8_lossy(line);
    let text = text.trim_matches(|c| c == '\r' || c == '\n' || c == '\0');
    if text.is_empty() {
        return None;
    }
    Some(serde_json::from_str(text).map_err(|_| NotAnEvent(text.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_serial_noise() {
        let ev = Event::ScenarioStarted { name: "a".into() };
        let line = ev.to_line().replace('\n', "\r\n");
        assert_eq!(parse_line(line.as_bytes()), Some(Ok(ev)));
        assert_eq!(
            parse_line(b"garbage\r"),
            Some(Err(NotAnEvent("garbage".to_string())))
        );
        assert_eq!(parse_line(b"\0\r"), None);
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(matches!(parse_line(deep.as_bytes()), Some(Err(_))));
    }

    #[test]
    fn wire_format_is_tagged() {
        insta::assert_snapshot!(Event::Done.to_line().trim(), @r#"{"event":"done"}"#);
    }
}
