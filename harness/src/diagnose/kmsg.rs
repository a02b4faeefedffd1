//! The kernel's messages of a time window, read from `/dev/kmsg`.
//!
//! A [`KmsgWindow`] opened before a step and drained after it holds exactly the lines the
//! kernel printed meanwhile, so a failure report carries "what the kernel said at that moment".

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;

pub struct KmsgWindow {
    file: Option<File>,
}

impl KmsgWindow {
    /// Starts a window at the current end of the kernel log. Without access to `/dev/kmsg`
    /// (not root), the window stays empty.
    pub fn open() -> KmsgWindow {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NONBLOCK)
            .open("/dev/kmsg")
            .ok()
            .and_then(|mut f| f.seek(SeekFrom::End(0)).ok().map(|_| f));
        KmsgWindow { file }
    }

    /// The messages printed since the window opened (or since the last drain).
    pub fn drain(&mut self) -> Vec<String> {
        let Some(file) = self.file.as_mut() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut buf = vec![0u8; 8192];
        loop {
            match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if let Some(line) = parse_record(&String::from_utf8_lossy(&buf[..n])) {
                        out.push(line);
                    }
                }
                // EPIPE: records were overwritten; go on with the next one.
                Err(e) if e.raw_os_error() == Some(nix::libc::EPIPE) => continue,
                Err(_) => break,
            }
        }
        out
    }
}

/// `6,1234,5678901,-;message` -> `[    5.678901] message`. Continuation lines are dropped.
pub fn parse_record(rec: &str) -> Option<String> {
    let (head, msg) = rec.split_once(';')?;
    let usec: u64 = head.split(',').nth(2)?.parse().ok()?;
    let msg = msg.lines().next().unwrap_or("");
    Some(format!(
        "[{:5}.{:06}] {}",
        usec / 1_000_000,
        usec % 1_000_000,
        msg
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_format() {
        assert_eq!(
            parse_record("4,812,5678901,-;criu[212]: segfault at 0\n SUBSYSTEM=x\n").as_deref(),
            Some("[    5.678901] criu[212]: segfault at 0")
        );
        assert_eq!(parse_record("garbage"), None);
    }
}
