//! `appendlog`: a log written through an `O_APPEND` descriptor.
//!
//! `append.log` gets `--records` records of [`RECORD`] bytes (record `i` is the pattern of
//! seed `i`) written through `log fd` (`O_WRONLY|O_APPEND`), whose offset is then moved
//! back to 0 with `lseek`: with `O_APPEND` that must not matter. A second descriptor,
//! `reader` (`O_RDONLY`), sits at the start of record 2.
//!
//! Every tick it checks both descriptors' flags and offsets, and the log's size. On SIGTERM
//! it checks every record, then appends one more record through `log fd` (still at offset
//! 0): the record must land at the end, leaving record 0 intact; and `reader` must read
//! record 2 from where it stood.

use crate::args::{Args, Opt};
use crate::check::{compare_bytes, pattern, Problems};
use crate::files::{fd_err, file_size, open, pread_all, seek, FdExpect};
use crate::protocol::Workload;
use crate::{steady, sys};
use nix::libc;
use std::os::fd::{AsRawFd, OwnedFd};

/// Program name.
pub const NAME: &str = "appendlog";
/// Bytes per record.
pub const RECORD: usize = 64;
/// Command-line options.
pub const OPTIONS: &[Opt] = &[
    steady::TICK_MS,
    Opt {
        name: "records",
        metavar: "N",
        default: 100,
        min: 3,
        max: 100_000,
        help: "records appended before ready",
    },
];

fn record(i: usize) -> Vec<u8> {
    pattern(1000 + i as u64, RECORD)
}

struct State {
    log: OwnedFd,
    reader: OwnedFd,
    expect: [FdExpect; 2],
    records: usize,
}

fn setup(wl: &Workload, records: usize) -> Result<State, String> {
    let path = wl.path("append.log");
    let log = open(
        &path,
        libc::O_WRONLY | libc::O_APPEND | libc::O_CREAT | libc::O_TRUNC,
    )?;
    for i in 0..records {
        sys::write_all(log.as_raw_fd(), &record(i))
            .map_err(|e| fd_err("log", log.as_raw_fd(), "write", &e))?;
    }
    seek("log", &log, 0)?;
    let reader = open(&path, libc::O_RDONLY)?;
    seek("reader", &reader, 2 * RECORD as u64)?;
    let expect = [
        FdExpect::record("append.log", &log)?,
        FdExpect::record("append.log reader", &reader)?,
    ];
    if expect[0].flags & libc::O_APPEND == 0 {
        return Err("O_APPEND missing right after open".into());
    }
    Ok(State {
        log,
        reader,
        expect,
        records,
    })
}

impl State {
    fn check_fds(&self) -> Result<(), String> {
        let mut p = Problems::new();
        for e in &self.expect {
            e.check(&mut p);
        }
        match file_size(self.log.as_raw_fd()) {
            Ok(size) => p.expect_eq("size of append.log", (self.records * RECORD) as u64, size),
            Err(e) => p.push(fd_err("append.log", self.log.as_raw_fd(), "fstat", &e)),
        }
        p.into_result()
    }

    fn check_records(&self, p: &mut Problems) {
        let Some(data) = p.take(pread_all("append.log", &self.reader)) else {
            return;
        };
        let want: Vec<u8> = (0..self.records).flat_map(record).collect();
        p.check(compare_bytes("append.log", &want, &data));
    }

    fn append_one(&mut self) -> Result<(), String> {
        let mut p = Problems::new();
        let next = record(self.records);
        match sys::write_all(self.log.as_raw_fd(), &next) {
            Ok(()) => self.records += 1,
            Err(e) => p.push(fd_err("append.log", self.log.as_raw_fd(), "write", &e)),
        }
        self.check_records(&mut p);
        match sys::offset(self.log.as_raw_fd()) {
            Ok(o) => p.expect_eq(
                "offset of the O_APPEND descriptor after a write (the end of the log)",
                (self.records * RECORD) as u64,
                o,
            ),
            Err(e) => p.push(fd_err("append.log", self.log.as_raw_fd(), "lseek", &e)),
        }
        let mut buf = [0u8; RECORD];
        match sys::read(self.reader.as_raw_fd(), &mut buf) {
            Ok(n) => p.check(compare_bytes(
                "read through the reader (at record 2)",
                &record(2),
                &buf[..n],
            )),
            Err(e) => p.push(fd_err("reader", self.reader.as_raw_fd(), "read", &e)),
        }
        p.into_result()
    }
}

/// The workload; returns the verdict (setup errors exit through [`Workload::setup_failed`]).
pub fn run(wl: &mut Workload, args: &Args) -> Result<String, String> {
    let records = args.get("records") as usize;
    let mut st = setup(wl, records).unwrap_or_else(|e| wl.setup_failed(&e));
    let detail = format!(
        "append.log: {records} records of {RECORD} bytes; fds: log={} (O_WRONLY|O_APPEND, offset 0) reader={} (offset {})",
        st.log.as_raw_fd(),
        st.reader.as_raw_fd(),
        2 * RECORD
    );
    let ticks = steady::ready_then_tick(wl, args, &detail, |_| st.check_fds())?;
    st.check_fds()?;
    let mut p = Problems::new();
    st.check_records(&mut p);
    p.into_result()?;
    st.append_one()?;
    Ok(format!(
        "append.log kept {records} records, O_APPEND and both offsets over {ticks} checks; a write at offset 0 still appended"
    ))
}
