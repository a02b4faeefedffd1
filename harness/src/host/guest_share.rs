//! The guest is a machine under test, and untrusted: what it writes reaches the host only
//! through its share (`<run>/guest/`, 9p) and its events port. This module makes both safe
//! for the host, which reads them as root:
//!
//! - after each boot, [`sweep`] removes from the share whatever is not a plain file or
//!   folder (symlinks, FIFOs, sockets, devices), and files over [`MAX_FILE`], each named in
//!   the cell's notes;
//! - [`adopt_paths`] keeps only the file paths of a reported result that stay inside the
//!   share, and makes them relative to the run directory;
//! - [`EventReader`] reads the events port in bounded chunks, cuts lines at
//!   [`MAX_EVENT_LINE`] bytes and stops following a guest that writes more than
//!   [`MAX_EVENTS`] bytes in one boot.

use crate::model::event::{self, Event};
use crate::model::outcome::ScenarioResult;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// The largest file a guest may leave in its share (a failed `bigmem`'s images are 256 MiB).
pub const MAX_FILE: u64 = 2 << 30;

/// The longest events line taken; a longer one is dropped as noise.
pub const MAX_EVENT_LINE: usize = 4 << 20;

/// What one boot may write to the events port before the host stops reading it.
pub const MAX_EVENTS: u64 = 256 << 20;

/// How much of the events file one poll reads.
const CHUNK: u64 = 1 << 20;

/// Removes what the host must not follow or keep from the share; a note per removal.
pub fn sweep(share: &Path) -> Vec<String> {
    let mut notes = Vec::new();
    sweep_dir(share, share, &mut notes, 0);
    notes
}

fn sweep_dir(share: &Path, dir: &Path, notes: &mut Vec<String>, depth: usize) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let rel = path
            .strip_prefix(share)
            .unwrap_or(&path)
            .display()
            .to_string();
        // DirEntry::file_type does not follow symlinks.
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let why = if kind.is_symlink() {
            Some("a symlink".to_string())
        } else if kind.is_dir() {
            if depth >= 32 {
                Some("folders nested too deep".to_string())
            } else {
                sweep_dir(share, &path, notes, depth + 1);
                None
            }
        } else if !kind.is_file() {
            Some("not a regular file".to_string())
        } else {
            match entry.metadata() {
                Ok(m) if m.len() > MAX_FILE => Some(format!(
                    "{} MiB, over the {} MiB a guest may leave",
                    m.len() >> 20,
                    MAX_FILE >> 20
                )),
                _ => None,
            }
        };
        if let Some(why) = why {
            let removed = if kind.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            notes.push(match removed {
                Ok(()) => format!(
                    "removed guest/{} from the guest's share: {why}",
                    crate::report::markup::shown(&rel)
                ),
                Err(e) => format!(
                    "could not remove guest/{} ({why}): {e}",
                    crate::report::markup::shown(&rel)
                ),
            });
        }
    }
}

/// A result's file paths, kept when they stay inside the share and made relative to the
/// run directory (`scenarios/x/dump-1.log` -> `guest/scenarios/x/dump-1.log`).
pub fn adopt_paths(result: &mut ScenarioResult) {
    let inside = |p: &str| crate::model::confine::lexical(Path::new(p)).is_ok() && p.len() < 4096;
    result.artifacts.retain(|a| inside(a));
    for a in &mut result.attempts {
        a.artifacts.retain(|p| inside(p));
    }
    if let Some(s) = result.screens.as_mut() {
        for p in [
            &mut s.before,
            &mut s.restored,
            &mut s.diff_image,
            &mut s.typed,
        ] {
            if p.as_deref().is_some_and(|v| !inside(v)) {
                *p = None;
            }
        }
    }
    for p in result.paths_mut() {
        *p = format!("{}/{p}", crate::host::vm_run::GUEST_DIR);
    }
}

/// Follows the events file as QEMU appends to it, in bounded steps.
#[derive(Default)]
pub struct EventReader {
    offset: u64,
    buf: Vec<u8>,
    /// Bytes of an over-long line still being skipped.
    skipping: bool,
    /// Lines that were not events (serial noise, garbage, over-long lines).
    pub noise: u64,
    /// Set once the guest wrote more than [`MAX_EVENTS`].
    pub flooded: bool,
}

impl EventReader {
    /// The events appended since the last poll.
    pub fn poll(&mut self, path: &Path) -> Vec<Event> {
        if self.flooded {
            return Vec::new();
        }
        let Ok(mut f) = std::fs::File::open(path) else {
            return Vec::new();
        };
        let mut chunk = Vec::new();
        if f.seek(SeekFrom::Start(self.offset)).is_err()
            || f.take(CHUNK).read_to_end(&mut chunk).is_err()
        {
            return Vec::new();
        }
        self.offset += chunk.len() as u64;
        if self.offset > MAX_EVENTS {
            self.flooded = true;
        }
        self.feed(&chunk)
    }

    /// The events in `chunk`, the next piece of the stream.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<Event> {
        let mut out = Vec::new();
        let mut rest = chunk;
        while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
            let (line, tail) = rest.split_at(nl);
            rest = &tail[1..];
            if self.skipping {
                self.skipping = false;
                self.noise += 1;
                continue;
            }
            self.buf.extend_from_slice(line);
            let whole = std::mem::take(&mut self.buf);
            match event::parse_line(&whole) {
                Some(Ok(ev)) => out.push(ev),
                Some(Err(_)) => self.noise += 1,
                None => {}
            }
        }
        if !self.skipping {
            self.buf.extend_from_slice(rest);
            if self.buf.len() > MAX_EVENT_LINE {
                self.buf = Vec::new();
                self.skipping = true;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::outcome::{Attempt, Failure, Outcome, Screens};
    use std::os::unix::fs::symlink;

    #[test]
    fn the_sweep_removes_links_specials_and_huge_files() {
        let t = tempfile::tempdir().unwrap();
        let share = t.path().join("guest");
        std::fs::create_dir_all(share.join("scenarios/x")).unwrap();
        std::fs::write(share.join("scenarios/x/dump-1.log"), "ok").unwrap();
        symlink("/etc/shadow", share.join("scenarios/x/shadow.log")).unwrap();
        symlink("/", share.join("root")).unwrap();
        nix::unistd::mkfifo(
            &share.join("scenarios/x/fifo"),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .unwrap();
        let big = std::fs::File::create(share.join("scenarios/x/big.img")).unwrap();
        big.set_len(MAX_FILE + 1).unwrap();
        let mut notes = sweep(&share);
        notes.sort();
        assert_eq!(notes.len(), 4, "{notes:?}");
        assert!(
            notes[0].contains("guest/root") && notes[0].contains("symlink"),
            "{notes:?}"
        );
        assert!(notes
            .iter()
            .any(|n| n.contains("big.img") && n.contains("MiB")));
        assert!(notes
            .iter()
            .any(|n| n.contains("fifo") && n.contains("not a regular")));
        assert!(share.join("scenarios/x/dump-1.log").is_file());
        assert!(std::fs::symlink_metadata(share.join("root")).is_err());
        assert!(std::fs::read_dir(&share).unwrap().count() == 1);
        assert!(
            Path::new("/etc/shadow").exists(),
            "the link's target is untouched"
        );
    }

    #[test]
    fn reported_paths_stay_in_the_share() {
        let mut r = ScenarioResult::without_steps("x", Outcome::Fail, Failure::default());
        r.artifacts = vec![
            "scenarios/x/dump-1.log".into(),
            "../../../etc/shadow".into(),
            "/etc/shadow".into(),
        ];
        r.screens = Some(Screens {
            before: Some("scenarios/x/screen-before.png".into()),
            restored: Some("/root/.ssh/id_rsa".into()),
            ..Screens::default()
        });
        r.attempts = vec![Attempt {
            outcome: Outcome::Fail,
            duration_ms: 1,
            failure: None,
            artifacts: vec!["scenarios/x/restore-1.log".into(), "../../run.json".into()],
        }];
        adopt_paths(&mut r);
        assert_eq!(r.artifacts, ["guest/scenarios/x/dump-1.log"]);
        assert_eq!(
            r.attempts[0].artifacts,
            ["guest/scenarios/x/restore-1.log"],
            "an attempt's paths are checked too"
        );
        let s = r.screens.unwrap();
        assert_eq!(
            s.before.as_deref(),
            Some("guest/scenarios/x/screen-before.png")
        );
        assert_eq!(s.restored, None);
    }

    #[test]
    fn events_survive_garbage_long_lines_and_split_utf8() {
        let mut r = EventReader::default();
        let ev = Event::ScenarioStarted {
            name: "é-ü".into()
        };
        let line = ev.to_line();
        let bytes = line.as_bytes();
        // A multi-byte character split between two reads still parses.
        let cut = line.find('é').unwrap() + 1;
        assert!(r.feed(&bytes[..cut]).is_empty());
        assert_eq!(r.feed(&bytes[cut..]), vec![ev.clone()]);
        // Invalid UTF-8, truncated JSON, deep nesting: noise, and the next event is read.
        let mut junk = vec![0xff, 0xfe, b'\n'];
        junk.extend_from_slice(b"{\"event\":\"scenario-started\",\"na\n");
        junk.extend_from_slice(&[b'['; 100_000]);
        junk.push(b'\n');
        junk.extend_from_slice(bytes);
        assert_eq!(r.feed(&junk), vec![ev.clone()]);
        assert_eq!(r.noise, 3);
        // A line longer than the limit is dropped whole, in pieces, without growing the buffer.
        let piece = vec![b'x'; 1 << 20];
        for _ in 0..6 {
            assert!(r.feed(&piece).is_empty());
            assert!(r.buf.len() <= MAX_EVENT_LINE);
        }
        let mut end = b"tail\n".to_vec();
        end.extend_from_slice(bytes);
        assert_eq!(r.feed(&end), vec![ev]);
        assert_eq!(r.noise, 4);
    }

    #[test]
    fn a_flooding_guest_stops_being_read() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("events-1.jsonl");
        let f = std::fs::File::create(&path).unwrap();
        f.set_len(MAX_EVENTS + CHUNK * 2).unwrap();
        let mut r = EventReader::default();
        let mut polls = 0;
        while !r.flooded {
            r.poll(&path);
            polls += 1;
            assert!(polls <= MAX_EVENTS / CHUNK + 2, "bounded");
        }
        assert!(r.poll(&path).is_empty());
    }

    /// Seeded mutations of a real event stream (every truncation, random byte changes,
    /// random chunking): no panic, the buffer bounded, and what parses is an event.
    #[test]
    fn mutated_event_streams_never_panic() {
        use crate::model::outcome::{Failure, Outcome, ScenarioResult};
        let mut r = ScenarioResult::without_steps("fileio1", Outcome::Fail, Failure::default());
        r.artifacts = vec!["scenarios/fileio1/dump-1.log".into()];
        let stream: String = [
            Event::AgentReady {
                kernel_release: "6.1.0".into(),
                notes: vec!["n".into()],
                marks: vec![("init".into(), 10)],
                uptime_ms: 3000,
            },
            Event::ScenarioStarted {
                name: "fileio1".into(),
            },
            Event::StepFinished {
                scenario: "fileio1".into(),
                step: "checkpoint".into(),
                iteration: 1,
                ms: 12,
                ok: false,
            },
            Event::ScenarioFinished {
                result: Box::new(r),
            },
            Event::Done,
        ]
        .iter()
        .map(Event::to_line)
        .collect();
        let bytes = stream.as_bytes();
        let mut next = crate::results::fixtures::xorshift(0x6576_656e);
        let alphabet = b"{}[]\":,0123456789\\\n\r\0\xff\xc3 az";
        let (mut inputs, mut events, mut noise) = (0u64, 0u64, 0u64);
        let mut feed = |data: &[u8], next: &mut dyn FnMut() -> usize| {
            let mut rd = EventReader::default();
            let mut rest = data;
            while !rest.is_empty() {
                let n = 1 + next() % rest.len().min(97);
                events += rd.feed(&rest[..n]).len() as u64;
                assert!(rd.buf.len() <= MAX_EVENT_LINE + 97);
                rest = &rest[n..];
            }
            noise += rd.noise;
            inputs += 1;
        };
        for cut in 0..bytes.len() {
            feed(&bytes[..cut], &mut next);
        }
        for _ in 0..5000 {
            let mut m = bytes.to_vec();
            for _ in 0..1 + next() % 8 {
                let at = next() % m.len();
                m[at] = alphabet[next() % alphabet.len()];
            }
            feed(&m, &mut next);
        }
        eprintln!(
            "event stream mutations: {inputs} inputs, {events} events parsed, {noise} noise lines"
        );
        assert!(events > 0 && noise > 0);
    }
}
