//! A small client of QEMU's machine protocol (QMP) on a unix socket: the greeting, the
//! capabilities handshake, and commands whose answers are read line by line (events in
//! between are skipped). Lines are bounded: QEMU is ours, but a line without end must not
//! exhaust the host.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The longest QMP line read (a `query-migrate` answer is a few hundred bytes).
const MAX_LINE: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum QmpError {
    #[error("QMP socket {path}: {source}")]
    Connect {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("QMP: {0}")]
    Io(#[from] std::io::Error),
    #[error("QMP: QEMU closed the connection")]
    Closed,
    #[error("QMP: a line longer than {MAX_LINE} bytes")]
    TooLong,
    #[error("QMP: not JSON: {0}")]
    Json(String),
    #[error("QMP `{command}`: {class}: {desc}")]
    Command {
        command: String,
        class: String,
        desc: String,
    },
}

/// A QMP connection in command mode.
pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Qmp {
    /// Connects to `path` (waiting until `deadline` for QEMU to create it), reads the
    /// greeting and negotiates capabilities.
    pub fn connect(path: &Path, deadline: Instant) -> Result<Qmp, QmpError> {
        let stream = loop {
            match UnixStream::connect(path) {
                Ok(s) => break s,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(source) => {
                    return Err(QmpError::Connect {
                        path: path.to_path_buf(),
                        source,
                    })
                }
            }
        };
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        let writer = stream.try_clone()?;
        let mut qmp = Qmp {
            reader: BufReader::new(stream),
            writer,
        };
        let greeting = qmp.read_message()?;
        if greeting.get("QMP").is_none() {
            return Err(QmpError::Json(format!("no greeting: {greeting}")));
        }
        qmp.execute("qmp_capabilities", None)?;
        Ok(qmp)
    }

    /// Runs `command` and returns its `return` value.
    pub fn execute(&mut self, command: &str, arguments: Option<Value>) -> Result<Value, QmpError> {
        let mut msg = json!({ "execute": command });
        if let Some(a) = arguments {
            msg["arguments"] = a;
        }
        let mut line = msg.to_string();
        line.push('\n');
        self.writer.write_all(line.as_bytes())?;
        loop {
            let answer = self.read_message()?;
            if answer.get("event").is_some() {
                continue;
            }
            return answer_of(command, answer);
        }
    }

    fn read_message(&mut self) -> Result<Value, QmpError> {
        let mut buf = Vec::new();
        let n = (&mut self.reader)
            .take(MAX_LINE)
            .read_until(b'\n', &mut buf)?;
        if n == 0 {
            return Err(QmpError::Closed);
        }
        if !buf.ends_with(b"\n") && n as u64 == MAX_LINE {
            return Err(QmpError::TooLong);
        }
        serde_json::from_slice(&buf).map_err(|e| QmpError::Json(e.to_string()))
    }
}

/// The value of one answer: `{"return": ...}` or the error it carries.
pub fn answer_of(command: &str, answer: Value) -> Result<Value, QmpError> {
    if let Some(r) = answer.get("return") {
        return Ok(r.clone());
    }
    if let Some(e) = answer.get("error") {
        let s = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("?").to_string();
        return Err(QmpError::Command {
            command: command.into(),
            class: s("class"),
            desc: s("desc"),
        });
    }
    Err(QmpError::Json(format!("unexpected answer: {answer}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_return_is_its_value() {
        let v = answer_of("query-status", json!({"return": {"status": "running"}})).unwrap();
        assert_eq!(v["status"], "running");
    }

    #[test]
    fn an_error_names_command_class_and_text() {
        let e = answer_of(
            "migrate",
            json!({"error": {"class": "GenericError", "desc": "9p is mounted"}}),
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "QMP `migrate`: GenericError: 9p is mounted");
    }

    /// A fake QEMU on a socket pair: greeting, an event before the answer, a bounded line.
    #[test]
    fn events_between_are_skipped_and_long_lines_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qmp.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut r = BufReader::new(s.try_clone().unwrap());
            s.write_all(b"{\"QMP\": {\"version\": {}}}\n").unwrap();
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            assert!(line.contains("qmp_capabilities"));
            s.write_all(b"{\"return\": {}}\n").unwrap();
            line.clear();
            r.read_line(&mut line).unwrap();
            assert!(line.contains("query-status"));
            s.write_all(b"{\"event\": \"RESUME\"}\n{\"return\": {\"status\": \"running\"}}\n")
                .unwrap();
            line.clear();
            r.read_line(&mut line).unwrap();
            let long = vec![b'x'; (MAX_LINE + 10) as usize];
            s.write_all(&long).unwrap();
        });
        let mut q = Qmp::connect(&path, Instant::now() + Duration::from_secs(5)).unwrap();
        let v = q.execute("query-status", None).unwrap();
        assert_eq!(v["status"], "running");
        assert!(matches!(
            q.execute("query-migrate", None),
            Err(QmpError::TooLong)
        ));
        server.join().unwrap();
    }
}
