//! `fileio1`: copy a file one record at a time through two long-lived file descriptors.
//!
//! Creates `src.dat` (a deterministic pattern), opens it read-only and `dst.dat` write-only,
//! and copies one record per interval with `read(2)`/`write(2)` on those descriptors.
//! After every record it checks that both file offsets (`lseek(fd, 0, SEEK_CUR)`) are where
//! the copy says they must be, so a restore that loses or moves a file offset is caught at
//! once (the workload then finishes with a failure without waiting for SIGTERM).
//! Progress is the number of records copied.
//!
//! On SIGTERM it copies the rest at full speed, `fsync`s, checks `src.dat` against the
//! pattern and `dst.dat` against `src.dat` byte for byte (both reopened read-only), and
//! reports the first differing offset.
//!
//! When the copy completes before SIGTERM, the workload idles and progress stops growing:
//! pick `--records` × `--interval-ms` longer than the scenario.

use crate::args::{Args, Opt};
use crate::protocol::{errno_text, FileError, Workload};
use nix::unistd::{lseek, Whence};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;

/// Program name.
pub const NAME: &str = "fileio1";
/// The source file, created by the workload.
pub const SRC: &str = "src.dat";
/// The destination file.
pub const DST: &str = "dst.dat";
/// Largest file the workload agrees to create.
pub const MAX_BYTES: u64 = 1 << 30;

/// Command-line options.
pub const OPTIONS: &[Opt] = &[
    Opt {
        name: "records",
        metavar: "N",
        default: 1024,
        min: 1,
        max: 1 << 24,
        help: "records in src.dat",
    },
    Opt {
        name: "record-size",
        metavar: "BYTES",
        default: 4096,
        min: 1,
        max: 64 << 20,
        help: "bytes per record",
    },
    Opt {
        name: "interval-ms",
        metavar: "MS",
        default: 20,
        min: 0,
        max: 3_600_000,
        help: "pause between records",
    },
    Opt {
        name: "ready-after",
        metavar: "K",
        default: 16,
        min: 0,
        max: 1 << 24,
        help: "records copied before announcing ready (at most --records)",
    },
];

/// Validated settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub records: u64,
    pub record_size: u64,
    pub interval: Duration,
    pub ready_after: u64,
}

impl Config {
    /// Settings from parsed [`OPTIONS`]; rejects combinations the ranges cannot express.
    pub fn from_args(args: &Args) -> Result<Config, String> {
        let cfg = Config {
            records: args.get("records"),
            record_size: args.get("record-size"),
            interval: Duration::from_millis(args.get("interval-ms")),
            ready_after: args.get("ready-after"),
        };
        if cfg.ready_after > cfg.records {
            return Err(format!(
                "--ready-after {} exceeds --records {}",
                cfg.ready_after, cfg.records
            ));
        }
        if cfg.total_bytes() > MAX_BYTES {
            return Err(format!(
                "--records {} x --record-size {} is over {MAX_BYTES} bytes",
                cfg.records, cfg.record_size
            ));
        }
        Ok(cfg)
    }

    /// Size of `src.dat`.
    pub fn total_bytes(&self) -> u64 {
        self.records * self.record_size
    }
}

/// The byte at `offset` of `src.dat`: a splitmix64 stream, one 64-bit word per 8 bytes.
pub fn pattern_byte(offset: u64) -> u8 {
    let word = splitmix64(0x6372_2d74_6573_7473 ^ (offset / 8));
    word.to_le_bytes()[(offset % 8) as usize]
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A reader producing the first `len` bytes of the pattern.
#[derive(Debug, Clone)]
pub struct Pattern {
    offset: u64,
    len: u64,
}

impl Pattern {
    /// The pattern's bytes `0..len`.
    pub fn new(len: u64) -> Pattern {
        Pattern { offset: 0, len }
    }
}

impl Read for Pattern {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (self.len - self.offset).min(buf.len() as u64) as usize;
        for (i, b) in buf[..n].iter_mut().enumerate() {
            *b = pattern_byte(self.offset + i as u64);
        }
        self.offset += n as u64;
        Ok(n)
    }
}

/// Where two byte streams first differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Difference {
    /// Both have a byte at `offset`, and they differ.
    Byte { offset: u64, left: u8, right: u8 },
    /// The left stream ends at `len`, the right one goes on.
    LeftShorter { len: u64 },
    /// The right stream ends at `len`, the left one goes on.
    RightShorter { len: u64 },
}

/// Reads until `buf` is full or the stream ends; returns the bytes read.
fn fill(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Which side of a comparison an I/O error came from.
#[derive(Debug)]
pub enum Side {
    Left(io::Error),
    Right(io::Error),
}

/// Compares two streams; `None` if they are identical.
pub fn first_difference(
    left: &mut impl Read,
    right: &mut impl Read,
) -> Result<Option<Difference>, Side> {
    const CHUNK: usize = 64 * 1024;
    let mut a = vec![0u8; CHUNK];
    let mut b = vec![0u8; CHUNK];
    let mut offset = 0u64;
    loop {
        let na = fill(left, &mut a).map_err(Side::Left)?;
        let nb = fill(right, &mut b).map_err(Side::Right)?;
        let common = na.min(nb);
        if let Some(i) = (0..common).find(|&i| a[i] != b[i]) {
            return Ok(Some(Difference::Byte {
                offset: offset + i as u64,
                left: a[i],
                right: b[i],
            }));
        }
        offset += common as u64;
        if na < nb {
            return Ok(Some(Difference::LeftShorter { len: offset }));
        }
        if nb < na {
            return Ok(Some(Difference::RightShorter { len: offset }));
        }
        if na == 0 {
            return Ok(None);
        }
    }
}

/// Describes a [`Difference`] between the files named `left` and `right`.
pub fn describe(d: Difference, left: &str, right: &str, record_size: u64) -> String {
    match d {
        Difference::Byte {
            offset,
            left: l,
            right: r,
        } => format!(
            "{left} differs from {right} at offset {offset} (record {}): {left} has 0x{l:02x}, {right} has 0x{r:02x}",
            offset / record_size
        ),
        Difference::LeftShorter { len } => {
            format!("{left} ends at offset {len}, {right} is longer")
        }
        Difference::RightShorter { len } => {
            format!("{right} ends at offset {len}, {left} is longer")
        }
    }
}

/// Compares file `left` with the stream `right` (named `right_name`); `Ok` if identical.
fn compare_file(
    dir: &Path,
    left: &str,
    right: &mut impl Read,
    right_name: &str,
    record_size: u64,
) -> Result<(), String> {
    let path = dir.join(left);
    let mut file = File::open(&path).map_err(|e| FileError::new("reopen", &path, e).to_string())?;
    match first_difference(&mut file, right) {
        Ok(None) => Ok(()),
        Ok(Some(d)) => Err(describe(d, left, right_name, record_size)),
        Err(Side::Left(e)) => Err(FileError::new("read", &path, e).to_string()),
        Err(Side::Right(e)) => Err(format!("cannot read {right_name}: {}", errno_text(&e))),
    }
}

/// Checks both file offsets after `copied` records; the error names both numbers.
pub fn check_offsets(src: u64, dst: u64, copied: u64, record_size: u64) -> Result<(), String> {
    let want = copied * record_size;
    if src == want && dst == want {
        return Ok(());
    }
    Err(format!(
        "file offsets lost after {copied} records: {SRC} fd is at {src}, {DST} fd is at {dst}, both should be at {want}"
    ))
}

fn offset_of(file: &File, name: &str) -> Result<u64, String> {
    lseek(file.as_raw_fd(), 0, Whence::SeekCur)
        .map(|o| o as u64)
        .map_err(|e| format!("lseek({name}, 0, SEEK_CUR): {e}"))
}

/// Copies record number `index` from `src` to `dst` with `read(2)`/`write(2)`.
fn copy_record(src: &mut File, dst: &mut File, buf: &mut [u8], index: u64) -> Result<(), String> {
    let n =
        fill(src, buf).map_err(|e| format!("read({SRC}) of record {index}: {}", errno_text(&e)))?;
    if n != buf.len() {
        return Err(format!(
            "read({SRC}) of record {index}: end of file after {n} of {} bytes",
            buf.len()
        ));
    }
    dst.write_all(buf)
        .map_err(|e| format!("write({DST}) of record {index}: {}", errno_text(&e)))
}

/// The workload; returns the verdict (setup errors exit through [`Workload::setup_failed`]).
pub fn run(wl: &mut Workload, args: &Args) -> Result<String, String> {
    let cfg = Config::from_args(args).unwrap_or_else(|e| wl.setup_failed(&e));
    let src_path = wl.path(SRC);
    let dst_path = wl.path(DST);
    let created = File::create(&src_path)
        .and_then(|mut f| io::copy(&mut Pattern::new(cfg.total_bytes()), &mut f))
        .map_err(|e| FileError::new("create", &src_path, e));
    if let Err(e) = created {
        wl.setup_failed(&e.to_string());
    }
    let mut src = File::open(&src_path)
        .unwrap_or_else(|e| wl.setup_failed(&FileError::new("open", &src_path, e).to_string()));
    let mut dst = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(&dst_path)
        .unwrap_or_else(|e| wl.setup_failed(&FileError::new("open", &dst_path, e).to_string()));

    let ready_detail = format!(
        "{SRC}: {} records of {} bytes; copying one record every {} ms to {DST} (~{} ms in all)",
        cfg.records,
        cfg.record_size,
        cfg.interval.as_millis(),
        cfg.interval.as_millis() * u128::from(cfg.records)
    );
    let mut buf = vec![0u8; cfg.record_size as usize];
    let mut copied = 0u64;
    wl.progress(0);
    if cfg.ready_after == 0 {
        wl.ready(&ready_detail);
    }
    while copied < cfg.records {
        copy_record(&mut src, &mut dst, &mut buf, copied)?;
        copied += 1;
        check_offsets(
            offset_of(&src, SRC)?,
            offset_of(&dst, DST)?,
            copied,
            cfg.record_size,
        )?;
        wl.progress(copied);
        if copied == cfg.ready_after {
            wl.ready(&ready_detail);
        }
        if !wl.verify_requested() {
            wl.sleep(cfg.interval);
        }
    }
    if !wl.verify_requested() {
        println!("copy complete; waiting for SIGTERM");
        while wl.sleep(Duration::from_secs(1)) {}
    }

    dst.sync_all()
        .map_err(|e| format!("fsync({DST}): {}", errno_text(&e)))?;
    compare_file(
        wl.dir(),
        SRC,
        &mut Pattern::new(cfg.total_bytes()),
        "the pattern it was created with",
        cfg.record_size,
    )?;
    let mut src_again =
        File::open(&src_path).map_err(|e| FileError::new("reopen", &src_path, e).to_string())?;
    compare_file(wl.dir(), DST, &mut src_again, SRC, cfg.record_size)?;
    Ok(format!(
        "copied {} records of {} bytes; dst == src",
        cfg.records, cfg.record_size
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn pattern_is_deterministic_and_not_trivial() {
        let mut a = Vec::new();
        Pattern::new(1000).read_to_end(&mut a).unwrap();
        assert_eq!(a.len(), 1000);
        assert_eq!(a[123], pattern_byte(123));
        let distinct: std::collections::BTreeSet<u8> = a.iter().copied().collect();
        assert!(
            distinct.len() > 200,
            "pattern has {} distinct bytes",
            distinct.len()
        );
        // Records differ from each other, so a record copied to the wrong place shows.
        assert_ne!(a[0..16], a[16..32]);
    }

    #[test]
    fn identical_streams() {
        let mut a = Pattern::new(200_000);
        let mut b = Pattern::new(200_000);
        assert!(first_difference(&mut a, &mut b).unwrap().is_none());
    }

    #[test]
    fn first_differing_byte_across_chunks() {
        let mut data = Vec::new();
        Pattern::new(150_000).read_to_end(&mut data).unwrap();
        let mut changed = data.clone();
        changed[70_000] ^= 0xff;
        changed[100_000] ^= 0xff;
        let d = first_difference(&mut Cursor::new(&changed), &mut Cursor::new(&data)).unwrap();
        assert_eq!(
            d,
            Some(Difference::Byte {
                offset: 70_000,
                left: data[70_000] ^ 0xff,
                right: data[70_000]
            })
        );
        let text = describe(d.unwrap(), DST, SRC, 4096);
        assert!(
            text.starts_with("dst.dat differs from src.dat at offset 70000 (record 17)"),
            "{text}"
        );
    }

    #[test]
    fn length_differences() {
        let long = [1u8, 2, 3];
        let short = [1u8, 2];
        assert_eq!(
            first_difference(&mut &short[..], &mut &long[..]).unwrap(),
            Some(Difference::LeftShorter { len: 2 })
        );
        assert_eq!(
            first_difference(&mut &long[..], &mut &short[..]).unwrap(),
            Some(Difference::RightShorter { len: 2 })
        );
        assert_eq!(
            describe(Difference::LeftShorter { len: 2 }, DST, SRC, 1),
            "dst.dat ends at offset 2, src.dat is longer"
        );
    }

    #[test]
    fn offsets_check_names_both_numbers() {
        assert!(check_offsets(8192, 8192, 2, 4096).is_ok());
        let e = check_offsets(8192, 0, 2, 4096).unwrap_err();
        assert!(e.contains("src.dat fd is at 8192"), "{e}");
        assert!(e.contains("dst.dat fd is at 0"), "{e}");
        assert!(e.contains("should be at 8192"), "{e}");
    }

    #[test]
    fn compare_file_reports_missing_file_with_errno() {
        let dir = tempfile::tempdir().unwrap();
        let e = compare_file(dir.path(), DST, &mut Pattern::new(1), "p", 1).unwrap_err();
        assert!(e.contains("dst.dat") && e.contains("ENOENT"), "{e}");
    }

    #[test]
    fn config_rejects_ready_after_beyond_records() {
        let args =
            match crate::args::parse(OPTIONS, ["--records", "4", "--ready-after", "5"]).unwrap() {
                crate::args::Parsed::Run(a) => a,
                crate::args::Parsed::Help => unreachable!(),
            };
        assert_eq!(
            Config::from_args(&args).unwrap_err(),
            "--ready-after 5 exceeds --records 4"
        );
    }
}
