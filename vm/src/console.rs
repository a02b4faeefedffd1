//! Watching the guest's kernel console: following `console.log` as QEMU writes it, keeping
//! its tail, and spotting kernel trouble (panic, oops, BUG, WARNING, stalls).

use std::collections::VecDeque;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Trouble {
    Panic,
    Oops,
    Bug,
    Warning,
    RcuStall,
    HungTask,
}

/// What a console line says about the kernel's health, if anything.
pub fn classify(line: &str) -> Option<Trouble> {
    const PATTERNS: &[(&str, Trouble)] = &[
        ("Kernel panic - not syncing", Trouble::Panic),
        ("Oops:", Trouble::Oops),
        ("BUG:", Trouble::Bug),
        ("WARNING:", Trouble::Warning),
        ("rcu_sched self-detected stall", Trouble::RcuStall),
        ("rcu: INFO: rcu_preempt detected stalls", Trouble::RcuStall),
        ("self-detected stall on CPU", Trouble::RcuStall),
        ("blocked for more than", Trouble::HungTask),
    ];
    PATTERNS
        .iter()
        .find(|(p, _)| line.contains(p))
        .map(|(_, t)| *t)
}

/// Follows a growing log file line by line.
pub struct ConsoleWatch {
    file: Option<File>,
    offset: u64,
    partial: String,
    tail: VecDeque<String>,
    /// Kernel-trouble lines seen since the last [`ConsoleWatch::take_trouble`].
    trouble: Vec<(Trouble, String)>,
    /// Bytes seen in all.
    pub bytes: u64,
}

const TAIL_LINES: usize = 200;

impl ConsoleWatch {
    /// Starts following `path` from its current end (earlier boots' output is not re-read).
    pub fn new(path: &Path) -> ConsoleWatch {
        let offset = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        ConsoleWatch {
            file: None,
            offset,
            partial: String::new(),
            tail: VecDeque::new(),
            trouble: Vec::new(),
            bytes: 0,
        }
        .with_path(path)
    }

    fn with_path(mut self, path: &Path) -> ConsoleWatch {
        self.file = File::open(path).ok();
        self
    }

    /// Reopens the file when it did not exist at first. Returns the new complete lines.
    pub fn poll(&mut self, path: &Path) -> Vec<String> {
        if self.file.is_none() {
            self.file = File::open(path).ok();
        }
        let Some(f) = self.file.as_mut() else {
            return Vec::new();
        };
        let mut chunk = Vec::new();
        if f.seek(SeekFrom::Start(self.offset)).is_err() || f.read_to_end(&mut chunk).is_err() {
            return Vec::new();
        }
        self.offset += chunk.len() as u64;
        self.bytes += chunk.len() as u64;
        self.feed(&String::from_utf8_lossy(&chunk))
    }

    /// Adds text; returns the complete lines it finished.
    pub fn feed(&mut self, text: &str) -> Vec<String> {
        self.partial.push_str(text);
        let mut lines = Vec::new();
        while let Some(nl) = self.partial.find('\n') {
            let line: String = self.partial.drain(..=nl).collect();
            let line = line.trim_end_matches(['\r', '\n']).to_string();
            if let Some(t) = classify(&line) {
                self.trouble.push((t, line.clone()));
            }
            if self.tail.len() == TAIL_LINES {
                self.tail.pop_front();
            }
            self.tail.push_back(line.clone());
            lines.push(line);
        }
        lines
    }

    /// The last `n` lines (and an unfinished last line).
    pub fn tail(&self, n: usize) -> Vec<String> {
        let mut v: Vec<String> = self
            .tail
            .iter()
            .skip(self.tail.len().saturating_sub(n))
            .cloned()
            .collect();
        if !self.partial.trim().is_empty() {
            v.push(self.partial.trim_end().to_string());
        }
        v
    }

    pub fn take_trouble(&mut self) -> Vec<(Trouble, String)> {
        std::mem::take(&mut self.trouble)
    }

    /// The lines from the last panic message on (the panic and its trace), when there is one.
    pub fn panic_lines(&self) -> Option<Vec<String>> {
        let start = self
            .tail
            .iter()
            .rposition(|l| classify(l) == Some(Trouble::Panic))?;
        // Include the oops/BUG header and trace that lead to the panic when they are near.
        let from = self
            .tail
            .iter()
            .take(start)
            .rposition(|l| matches!(classify(l), Some(Trouble::Oops | Trouble::Bug)))
            .filter(|i| start - i < 60)
            .unwrap_or(start);
        Some(self.tail.iter().skip(from).cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_panic_with_its_oops() {
        let mut w = ConsoleWatch::new(Path::new("/nonexistent"));
        w.feed("[    1.0] booting\n[    2.0] BUG: kernel NULL pointer dereference, address: 0\n");
        w.feed("[    2.1] Call Trace:\n[    2.2] Kernel panic - not syncing: Fatal exception\n");
        let t = w.take_trouble();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].0, Trouble::Bug);
        assert_eq!(t[1].0, Trouble::Panic);
        let p = w.panic_lines().unwrap();
        assert_eq!(p.len(), 3);
        assert!(p[0].contains("BUG:"));
    }

    #[test]
    fn partial_lines_wait_for_their_end_and_show_in_tail() {
        let mut w = ConsoleWatch::new(Path::new("/nonexistent"));
        assert!(w.feed("half").is_empty());
        assert_eq!(w.tail(5), ["half"]);
        assert_eq!(w.feed(" line\r\nnext"), ["half line"]);
    }

    #[test]
    fn follows_a_growing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("console.log");
        std::fs::write(&path, "old boot\n").unwrap();
        let mut w = ConsoleWatch::new(&path);
        assert!(w.poll(&path).is_empty());
        std::fs::write(&path, "old boot\nnew line\n").unwrap();
        assert_eq!(w.poll(&path), ["new line"]);
    }
}
