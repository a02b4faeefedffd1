//! `utsns`: a UTS namespace with its own host and domain names (needs root).
//!
//! The workload enters a new UTS namespace and sets the host name `crtest-uts-PID` and
//! the NIS domain name `crtest.example`. Every tick it checks both with `uname(2)`, and
//! that its namespace is not its parent's. On SIGTERM it checks the same, then changes the
//! host name once more and reads it back.

use crate::args::{Args, Opt};
use crate::check::Problems;
use crate::ns::{ns_inode, unshare};
use crate::protocol::Workload;
use crate::{steady, sys};
use nix::libc;

/// Program name.
pub const NAME: &str = "utsns";
/// Command-line options.
pub const OPTIONS: &[Opt] = &[steady::TICK_MS];

const DOMAIN: &str = "crtest.example";

fn field(chars: &[libc::c_char]) -> String {
    let bytes: Vec<u8> = chars
        .iter()
        .map(|&c| c as u8)
        .take_while(|&b| b != 0)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// (nodename, domainname) from `uname`.
pub fn names() -> Result<(String, String), String> {
    // SAFETY: uname fills the struct.
    unsafe {
        let mut u: libc::utsname = std::mem::zeroed();
        sys::cvt(libc::uname(&mut u)).map_err(|e| format!("uname: {e}"))?;
        Ok((field(&u.nodename), field(&u.domainname)))
    }
}

fn set_host(name: &str) -> Result<(), String> {
    // SAFETY: a valid buffer of that length.
    sys::cvt(unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) })
        .map(|_| ())
        .map_err(|e| format!("sethostname({name}): {e}"))
}

fn setup(host: &str) -> Result<(), String> {
    unshare(libc::CLONE_NEWUTS, "CLONE_NEWUTS")?;
    set_host(host)?;
    // SAFETY: a valid buffer of that length.
    sys::cvt(unsafe { libc::setdomainname(DOMAIN.as_ptr().cast(), DOMAIN.len()) })
        .map_err(|e| format!("setdomainname: {e}"))?;
    Ok(())
}

fn check(host: &str) -> Result<(), String> {
    let mut p = Problems::new();
    if let Some((node, domain)) = p.take(names()) {
        p.expect_eq("host name (uname nodename)", host, node.as_str());
        p.expect_eq("domain name (uname domainname)", DOMAIN, domain.as_str());
    }
    let ppid = nix::unistd::getppid().to_string();
    if let (Ok(mine), Ok(parents)) = (ns_inode("self", "uts"), ns_inode(&ppid, "uts")) {
        if mine == parents {
            p.push(format!(
                "the workload shares its UTS namespace {mine} with its parent {ppid}"
            ));
        }
    }
    p.into_result()
}

/// The workload; returns the verdict (setup errors exit through [`Workload::setup_failed`]).
pub fn run(wl: &mut Workload, args: &Args) -> Result<String, String> {
    let mut host = format!("crtest-uts-{}", std::process::id());
    setup(&host).unwrap_or_else(|e| wl.setup_failed(&e));
    let detail = format!("own UTS namespace: host {host}, domain {DOMAIN}");
    let ticks = steady::ready_then_tick(wl, args, &detail, |_| check(&host))?;
    check(&host)?;
    host = "crtest-uts-after".to_string();
    set_host(&host)?;
    check(&host)?;
    Ok(format!(
        "the UTS namespace kept its host and domain names over {ticks} checks; the host name still changes"
    ))
}
