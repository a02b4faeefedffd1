//! `bursty`: a program that does its I/O in bursts, as a copy, a log writer or a server
//! answering a request does, and is idle in between.
//!
//! Each burst writes `--burst` records of [`RECORD`] bytes to `records.log` (record `i` is
//! the pattern of seed `i`) through `log fd`, `fsync`s it, and sends one datagram (its
//! burst number) from `sender` to `receiver` on the loopback, which reads it back at once;
//! then it sleeps `--pause-ms`. Progress is the number of records written. So its file
//! position and socket queues move a little at a time, at moments nothing outside it knows.
//!
//! On SIGTERM it checks that `records.log` holds exactly the records written, each whole,
//! and that `log fd` sits at its end; that the datagrams received came in order, none twice,
//! none from the future (one sent right before a checkpoint may be lost: criu does not carry
//! UDP receive queues); and that a last datagram still goes through.

use crate::args::{Args, Opt};
use crate::check::{compare_bytes, pattern, Problems};
use crate::files::{fd_err, file_size, open, pread_all};
use crate::net::{self, udp};
use crate::protocol::Workload;
use crate::sys;
use nix::libc;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

/// Program name.
pub const NAME: &str = "bursty";
/// Bytes per record.
pub const RECORD: usize = 64;
/// Command-line options.
pub const OPTIONS: &[Opt] = &[
    Opt {
        name: "burst",
        metavar: "N",
        default: 4,
        min: 1,
        max: 10_000,
        help: "records written (and fsync'd) in one burst",
    },
    Opt {
        name: "pause-ms",
        metavar: "MS",
        default: 150,
        min: 1,
        max: 60_000,
        help: "idle time between bursts",
    },
];

fn record(i: u64) -> Vec<u8> {
    pattern(7000 + i, RECORD)
}

struct State {
    log: OwnedFd,
    reader: OwnedFd,
    receiver: OwnedFd,
    sender: OwnedFd,
    records: u64,
    bursts: u64,
    /// The burst numbers received, in order of arrival.
    received: Vec<u64>,
}

fn setup(wl: &Workload) -> Result<State, String> {
    let path = wl.path("records.log");
    let log = open(&path, libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC)?;
    let reader = open(&path, libc::O_RDONLY)?;
    let receiver = net::socket(libc::SOCK_DGRAM)?;
    net::bind(&receiver, &net::loopback(0))?;
    let at = net::name(receiver.as_raw_fd(), true).map_err(|e| format!("getsockname: {e}"))?;
    let sender = net::socket(libc::SOCK_DGRAM)?;
    net::connect(&sender, &at)?;
    Ok(State {
        log,
        reader,
        receiver,
        sender,
        records: 0,
        bursts: 0,
        received: Vec::new(),
    })
}

impl State {
    /// One burst: records, fsync, a datagram sent and read back.
    fn burst(&mut self, n: u64) -> Result<(), String> {
        let fd = self.log.as_raw_fd();
        for _ in 0..n {
            sys::write_all(fd, &record(self.records))
                .map_err(|e| fd_err("records.log", fd, "write", &e))?;
            self.records += 1;
        }
        // SAFETY: fsync of a descriptor we own.
        sys::cvt(unsafe { libc::fsync(fd) }).map_err(|e| fd_err("records.log", fd, "fsync", &e))?;
        self.bursts += 1;
        udp::send(self.sender.as_raw_fd(), &self.bursts.to_le_bytes())
            .map_err(|e| format!("send of burst {}: {e}", self.bursts))?;
        self.drain()
    }

    /// Reads every datagram waiting at the receiver.
    fn drain(&mut self) -> Result<(), String> {
        while let Some((data, _)) =
            udp::recv_from(self.receiver.as_raw_fd()).map_err(|e| format!("recvfrom: {e}"))?
        {
            let n: [u8; 8] = data
                .as_slice()
                .try_into()
                .map_err(|_| format!("a datagram of {} bytes, expected 8", data.len()))?;
            self.received.push(u64::from_le_bytes(n));
        }
        Ok(())
    }

    fn check(&mut self) -> Result<String, String> {
        let mut p = Problems::new();
        let fd = self.log.as_raw_fd();
        let want = self.records * RECORD as u64;
        match sys::offset(fd) {
            Ok(o) => p.expect_eq("offset of log fd (the end of records.log)", want, o),
            Err(e) => p.push(fd_err("records.log", fd, "lseek", &e)),
        }
        match file_size(fd) {
            Ok(size) => p.expect_eq("size of records.log", want, size),
            Err(e) => p.push(fd_err("records.log", fd, "fstat", &e)),
        }
        if let Some(data) = p.take(pread_all("records.log", &self.reader)) {
            let expected: Vec<u8> = (0..self.records).flat_map(record).collect();
            p.check(compare_bytes("records.log", &expected, &data));
        }
        let lost = self.check_datagrams(&mut p);
        p.into_result()?;
        Ok(format!(
            "{} records in {} bursts, all on disk and the fd at the end; {} datagrams in order ({lost} lost at a checkpoint)",
            self.records,
            self.bursts,
            self.received.len()
        ))
    }

    /// The datagrams: in order, none twice, none never sent; then one more goes through.
    /// Returns how many were lost.
    fn check_datagrams(&mut self, p: &mut Problems) -> u64 {
        if let Err(e) = self.drain() {
            p.push(e);
        }
        if let Some(w) = self.received.windows(2).find(|w| w[1] <= w[0]) {
            p.push(format!(
                "datagram of burst {} arrived after that of burst {}",
                w[1], w[0]
            ));
        }
        if let Some(last) = self.received.last().filter(|l| **l > self.bursts) {
            p.push(format!(
                "datagram of burst {last} arrived, but only {} bursts were sent",
                self.bursts
            ));
        }
        let lost = self.bursts.saturating_sub(self.received.len() as u64);
        let probe = u64::MAX.to_le_bytes();
        let went = udp::send(self.sender.as_raw_fd(), &probe).map_err(|e| e.to_string());
        std::thread::sleep(Duration::from_millis(20));
        match went
            .and_then(|()| udp::recv_from(self.receiver.as_raw_fd()).map_err(|e| e.to_string()))
        {
            Ok(Some((d, _))) if d == probe => {}
            Ok(other) => p.push(format!(
                "a last datagram did not come back whole: {:?}",
                other.map(|(d, _)| d)
            )),
            Err(e) => p.push(format!("a last datagram: {e}")),
        }
        lost
    }
}

/// The workload; returns the verdict (setup errors exit through [`Workload::setup_failed`]).
pub fn run(wl: &mut Workload, args: &Args) -> Result<String, String> {
    let burst = args.get("burst");
    let pause = Duration::from_millis(args.get("pause-ms"));
    let mut st = setup(wl).unwrap_or_else(|e| wl.setup_failed(&e));
    st.burst(burst).unwrap_or_else(|e| wl.setup_failed(&e));
    wl.progress(st.records);
    let detail = format!(
        "records.log: log={} (O_WRONLY) reader={}; UDP sender={} receiver={}; bursts of {burst} records, {} ms apart",
        st.log.as_raw_fd(),
        st.reader.as_raw_fd(),
        st.sender.as_raw_fd(),
        st.receiver.as_raw_fd(),
        pause.as_millis()
    );
    wl.ready(&detail);
    while wl.sleep(pause) {
        st.burst(burst)?;
        wl.progress(st.records);
    }
    st.check()
}
