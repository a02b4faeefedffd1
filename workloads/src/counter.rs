//! `counterloop`: a counter in memory, mirrored into a file through one long-lived fd.
//!
//! `counter.dat` is opened read-write, gets one initial `write(2)` of 8 bytes (leaving the
//! file offset at 8), and from then on only `pwrite(2)` at offset 0, which leaves the offset
//! alone. Every tick the workload first checks that the file still holds the last value it
//! wrote (read back with `pread(2)` through the same fd) and that the offset is still 8,
//! then increments the counter and writes it. A restore that loses the file content or the
//! offset is caught at the next tick (the workload then finishes with a failure without
//! waiting for SIGTERM). Progress is the counter.
//!
//! On SIGTERM it runs the same check once more and requires the counter to have gone past
//! `--ready-after`.

use crate::args::{Args, Opt};
use crate::protocol::{errno_text, FileError, Workload};
use nix::unistd::{lseek, Whence};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::time::Duration;

/// Program name.
pub const NAME: &str = "counterloop";
/// The file mirroring the counter, 8 bytes little-endian at offset 0.
pub const FILE: &str = "counter.dat";
/// Where the fd's offset must stay.
pub const FD_OFFSET: u64 = 8;

/// Command-line options.
pub const OPTIONS: &[Opt] = &[
    Opt {
        name: "tick-ms",
        metavar: "MS",
        default: 10,
        min: 1,
        max: 3_600_000,
        help: "time between increments",
    },
    Opt {
        name: "ready-after",
        metavar: "K",
        default: 10,
        min: 0,
        max: 1 << 40,
        help: "counter value at which to announce ready",
    },
];

/// Checks what `file` says against the in-memory counter: `pread` at 0 must give
/// `expected` and `lseek(fd, 0, SEEK_CUR)` must give [`FD_OFFSET`].
pub fn check_file(file: &File, expected: u64) -> Result<(), String> {
    let mut bytes = [0u8; 8];
    let n = file
        .read_at(&mut bytes, 0)
        .map_err(|e| format!("pread({FILE}, 8, 0): {}", errno_text(&e)))?;
    if n != bytes.len() {
        return Err(format!(
            "pread({FILE}, 8, 0) returned {n} bytes; the file lost its content (memory counter is {expected})"
        ));
    }
    let on_file = u64::from_le_bytes(bytes);
    if on_file != expected {
        return Err(format!(
            "{FILE} holds {on_file} but the memory counter is {expected}"
        ));
    }
    let offset = lseek(file.as_raw_fd(), 0, Whence::SeekCur)
        .map_err(|e| format!("lseek({FILE}, 0, SEEK_CUR): {e}"))?;
    if offset as u64 != FD_OFFSET {
        return Err(format!(
            "file offset of the {FILE} fd is {offset}, expected {FD_OFFSET} (counter {expected})"
        ));
    }
    Ok(())
}

fn store(file: &File, value: u64) -> Result<(), String> {
    file.write_all_at(&value.to_le_bytes(), 0)
        .map_err(|e| format!("pwrite({FILE}, 8, 0) of {value}: {}", errno_text(&e)))
}

/// The workload; returns the verdict (setup errors exit through [`Workload::setup_failed`]).
pub fn run(wl: &mut Workload, args: &Args) -> Result<String, String> {
    let tick = Duration::from_millis(args.get("tick-ms"));
    let ready_after = args.get("ready-after");
    let path = wl.path(FILE);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(&path)
        .unwrap_or_else(|e| wl.setup_failed(&FileError::new("open", &path, e).to_string()));
    if let Err(e) = file.write_all(&0u64.to_le_bytes()) {
        wl.setup_failed(&FileError::new("write", &path, e).to_string());
    }
    if let Err(e) = check_file(&file, 0) {
        wl.setup_failed(&e);
    }

    let ready_detail = format!(
        "counter +1 every {} ms, mirrored with pwrite into {FILE} (fd offset kept at {FD_OFFSET})",
        tick.as_millis()
    );
    let mut counter = 0u64;
    wl.progress(counter);
    if ready_after == 0 {
        wl.ready(&ready_detail);
    }
    while wl.sleep(tick) {
        check_file(&file, counter)?;
        counter += 1;
        store(&file, counter)?;
        wl.progress(counter);
        if counter == ready_after {
            wl.ready(&ready_detail);
        }
    }

    check_file(&file, counter)?;
    if counter <= ready_after {
        return Err(format!(
            "counter={counter} did not go past --ready-after {ready_after}"
        ));
    }
    Ok(format!("counter={counter}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter_file(dir: &std::path::Path) -> File {
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.join(FILE))
            .unwrap();
        f.write_all(&0u64.to_le_bytes()).unwrap();
        f
    }

    #[test]
    fn pwrite_keeps_offset_and_check_passes() {
        let dir = tempfile::tempdir().unwrap();
        let f = counter_file(dir.path());
        for v in 1..5 {
            check_file(&f, v - 1).unwrap();
            store(&f, v).unwrap();
        }
        check_file(&f, 4).unwrap();
        assert_eq!(
            std::fs::read(dir.path().join(FILE)).unwrap(),
            4u64.to_le_bytes()
        );
    }

    #[test]
    fn check_catches_content_change() {
        let dir = tempfile::tempdir().unwrap();
        let f = counter_file(dir.path());
        store(&f, 7).unwrap();
        std::fs::write(dir.path().join(FILE), 99u64.to_le_bytes()).unwrap();
        assert_eq!(
            check_file(&f, 7).unwrap_err(),
            "counter.dat holds 99 but the memory counter is 7"
        );
    }

    #[test]
    fn check_catches_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let f = counter_file(dir.path());
        f.set_len(3).unwrap();
        let e = check_file(&f, 0).unwrap_err();
        assert!(e.contains("returned 3 bytes"), "{e}");
    }

    #[test]
    fn check_catches_moved_offset() {
        let dir = tempfile::tempdir().unwrap();
        let f = counter_file(dir.path());
        lseek(f.as_raw_fd(), 0, Whence::SeekSet).unwrap();
        assert_eq!(
            check_file(&f, 0).unwrap_err(),
            "file offset of the counter.dat fd is 0, expected 8 (counter 0)"
        );
    }
}
