//! `rtc`: the real-time clock's character device held open (`/dev/rtc0`, needs root).
//!
//! The device is opened read-only and an alarm is set in it (`RTC_ALM_SET`, an hour after
//! setup, kept by the device). Every tick it reads the clock (`RTC_RD_TIME`), which must be
//! within 5 s of the system's UTC time, and checks that the descriptor still names the
//! device it opened (same `st_rdev`, read-only). On SIGTERM it checks the same and reads
//! the alarm back (`RTC_ALM_READ`).
//!
//! criu dumps a character device only through a plugin for it (zdtm's `rtc` test builds
//! one); without it the dump stops at the descriptor, which the scenario expects.

use crate::args::{Args, Opt};
use crate::check::Problems;
use crate::protocol::{errno_text, Workload};
use crate::{steady, sys};
use nix::libc;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

/// Program name.
pub const NAME: &str = "rtc";
/// Command-line options.
pub const OPTIONS: &[Opt] = &[steady::TICK_MS];

/// The device.
pub const DEVICE: &str = "/dev/rtc0";
/// How far the RTC may be from the system clock, in seconds.
const SLACK_S: i64 = 5;

/// `struct rtc_time`: nine ints.
type RtcTime = [libc::c_int; 9];

const fn ior(nr: u64, size: usize) -> u64 {
    (2 << 30) | ((size as u64) << 16) | (0x70 << 8) | nr
}
const fn iow(nr: u64, size: usize) -> u64 {
    (1 << 30) | ((size as u64) << 16) | (0x70 << 8) | nr
}
const RTC_RD_TIME: u64 = ior(0x09, std::mem::size_of::<RtcTime>());
const RTC_ALM_READ: u64 = ior(0x08, std::mem::size_of::<RtcTime>());
const RTC_ALM_SET: u64 = iow(0x07, std::mem::size_of::<RtcTime>());

/// Seconds since the epoch of a `struct rtc_time` (UTC).
pub fn epoch_of(t: &RtcTime) -> i64 {
    // SAFETY: timegm reads the tm; the fields of rtc_time are the first nine of tm.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    tm.tm_sec = t[0];
    tm.tm_min = t[1];
    tm.tm_hour = t[2];
    tm.tm_mday = t[3];
    tm.tm_mon = t[4];
    tm.tm_year = t[5];
    unsafe { libc::timegm(&mut tm) }
}

fn ioctl_time(fd: &OwnedFd, req: u64, t: &mut RtcTime) -> std::io::Result<()> {
    // SAFETY: the request reads or writes one rtc_time.
    sys::cvt(unsafe { libc::ioctl(fd.as_raw_fd(), req as _, t.as_mut_ptr()) }).map(|_| ())
}

struct Rtc {
    fd: OwnedFd,
    rdev: u64,
    /// The alarm set, as hour:minute:second.
    alarm: (i32, i32, i32),
}

impl Rtc {
    fn who(&self) -> String {
        format!("{DEVICE} (fd {})", self.fd.as_raw_fd())
    }

    fn check(&self) -> Result<(), String> {
        let mut p = Problems::new();
        let who = self.who();
        let mut t: RtcTime = [0; 9];
        match ioctl_time(&self.fd, RTC_RD_TIME, &mut t) {
            Ok(()) => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs() as i64);
                let rtc = epoch_of(&t);
                if (rtc - now).abs() > SLACK_S {
                    p.push(format!(
                        "{who}: RTC_RD_TIME says {rtc}, the system clock {now} (more than {SLACK_S} s apart)"
                    ));
                }
            }
            Err(e) => p.push(format!("{who}: RTC_RD_TIME: {}", errno_text(&e))),
        }
        match nix::sys::stat::fstat(self.fd.as_raw_fd()) {
            Ok(st) => p.expect_eq(&format!("{who}: st_rdev"), self.rdev, st.st_rdev),
            Err(e) => p.push(format!("{who}: fstat: {e}")),
        }
        match sys::status_flags(self.fd.as_raw_fd()) {
            Ok(f) => p.expect_eq(
                &format!("{who}: access mode"),
                "O_RDONLY".to_string(),
                sys::open_flags_text(f & libc::O_ACCMODE),
            ),
            Err(e) => p.push(format!("{who}: F_GETFL: {}", errno_text(&e))),
        }
        p.into_result()
    }

    fn check_alarm(&self) -> Result<(), String> {
        let mut t: RtcTime = [0; 9];
        ioctl_time(&self.fd, RTC_ALM_READ, &mut t)
            .map_err(|e| format!("{}: RTC_ALM_READ: {}", self.who(), errno_text(&e)))?;
        let got = (t[2], t[1], t[0]);
        if got != self.alarm {
            return Err(format!(
                "{}: alarm: expected {:02}:{:02}:{:02}, got {:02}:{:02}:{:02}",
                self.who(),
                self.alarm.0,
                self.alarm.1,
                self.alarm.2,
                got.0,
                got.1,
                got.2
            ));
        }
        Ok(())
    }
}

fn setup() -> Result<Rtc, String> {
    let fd = sys::open(Path::new(DEVICE), libc::O_RDONLY | libc::O_CLOEXEC, 0)
        .map_err(|e| format!("open {DEVICE}: {}", errno_text(&e)))?;
    let rdev = nix::sys::stat::fstat(fd.as_raw_fd())
        .map_err(|e| format!("fstat {DEVICE}: {e}"))?
        .st_rdev;
    let mut t: RtcTime = [0; 9];
    ioctl_time(&fd, RTC_RD_TIME, &mut t)
        .map_err(|e| format!("{DEVICE}: RTC_RD_TIME: {}", errno_text(&e)))?;
    let alarm = ((t[2] + 1) % 24, t[1], t[0]);
    let mut a: RtcTime = [0; 9];
    a[0] = alarm.2;
    a[1] = alarm.1;
    a[2] = alarm.0;
    ioctl_time(&fd, RTC_ALM_SET, &mut a)
        .map_err(|e| format!("{DEVICE}: RTC_ALM_SET: {}", errno_text(&e)))?;
    Ok(Rtc { fd, rdev, alarm })
}

/// Opens the device, then ticks.
pub fn run(wl: &mut Workload, args: &Args) -> Result<String, String> {
    let rtc = setup().unwrap_or_else(|e| wl.setup_failed(&e));
    rtc.check().unwrap_or_else(|e| wl.setup_failed(&e));
    let detail = format!("rtc={} rdev={:#x}", rtc.fd.as_raw_fd(), rtc.rdev);
    let ticks = steady::ready_then_tick(wl, args, &detail, |_| rtc.check())?;
    rtc.check()?;
    rtc.check_alarm()?;
    Ok(format!(
        "{DEVICE} stayed open read-only and its clock within {SLACK_S} s of the system's over {ticks} checks; the alarm was kept"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtc_time_to_epoch() {
        // 2026-12-02 18:40:05 UTC
        let t: RtcTime = [5, 40, 18, 2, 11, 126, 0, 0, 0];
        assert_eq!(epoch_of(&t), 1_796_236_805);
    }

    #[test]
    fn ioctl_numbers() {
        assert_eq!(RTC_RD_TIME, 0x8024_7009);
        assert_eq!(RTC_ALM_SET, 0x4024_7007);
    }
}
