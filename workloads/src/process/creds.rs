//! `creds`: a child with credentials of its own (needs root): three different uids and
//! gids (`setresuid`/`setresgid`), supplementary groups, a reduced capability set (some
//! effective, more permitted, one inheritable), a smaller bounding set, and its audit
//! login uid where the kernel has one.
//!
//! The child drops to them at setup and then only answers. Every tick the workload reads
//! the child's `/proc/PID/status` (`Uid`, `Gid`, `Groups`, `CapInh`, `CapPrm`, `CapEff`,
//! `CapBnd`, `CapAmb`) and `/proc/PID/loginuid` and compares them with what it set. On
//! SIGTERM it checks the same and asks the child to use what it holds: bind a port under
//! 1024 (`CAP_NET_BIND_SERVICE`, effective) and fail to change a file's owner (`CAP_CHOWN`
//! is permitted, not effective).

use crate::args::{Args, Opt};
use crate::check::Problems;
use crate::family::{self, Helper};
use crate::protocol::{errno_text, Workload};
use crate::{procfs, steady, sys};
use nix::libc;

/// Program name.
pub const NAME: &str = "creds";
/// Command-line options.
pub const OPTIONS: &[Opt] = &[steady::TICK_MS];

/// The child's real, effective, saved uid.
pub const UIDS: [u32; 3] = [18943, 18944, 18945];
/// The child's real, effective, saved gid.
pub const GIDS: [u32; 3] = [58467, 58468, 58469];
/// The child's supplementary groups.
pub const GROUPS: [u32; 3] = [7, 27495, 48244];
/// The audit login uid set in the child.
pub const LOGINUID: u32 = 4711;

const CAP_CHOWN: u32 = 0;
const CAP_KILL: u32 = 5;
const CAP_NET_BIND_SERVICE: u32 = 10;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_SYS_MODULE: u32 = 16;

const fn bit(c: u32) -> u64 {
    1 << c
}
/// Effective capabilities of the child.
pub const EFFECTIVE: u64 = bit(CAP_NET_BIND_SERVICE) | bit(CAP_KILL);
/// Permitted capabilities of the child.
pub const PERMITTED: u64 = EFFECTIVE | bit(CAP_CHOWN);
/// Inheritable capabilities of the child.
pub const INHERITABLE: u64 = bit(CAP_KILL);

/// What the child should show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Creds {
    uid: String,
    gid: String,
    groups: String,
    inh: u64,
    prm: u64,
    eff: u64,
    bnd: u64,
    amb: u64,
    loginuid: Option<u32>,
}

fn ids(v: &[u32; 3]) -> String {
    // status shows real, effective, saved, filesystem (= effective).
    format!("{} {} {} {}", v[0], v[1], v[2], v[1])
}

fn hex_field(status: &str, key: &str) -> Result<u64, String> {
    let v = procfs::field(status, key).ok_or_else(|| format!("no {key} in status"))?;
    u64::from_str_radix(v.trim(), 16).map_err(|_| format!("bad {key} `{v}`"))
}

/// Reads what `/proc/PID/status` and `loginuid` show of a process.
pub fn read_creds(pid: i32, with_loginuid: bool) -> Result<Creds, String> {
    let status = procfs::read(&format!("/proc/{pid}/status"))?;
    let words = |key: &str| -> Result<String, String> {
        procfs::field(&status, key)
            .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .ok_or_else(|| format!("no {key} in /proc/{pid}/status"))
    };
    let loginuid = if with_loginuid {
        let t = procfs::read(&format!("/proc/{pid}/loginuid"))?;
        Some(
            t.trim()
                .parse()
                .map_err(|_| format!("bad loginuid `{t}`"))?,
        )
    } else {
        None
    };
    Ok(Creds {
        uid: words("Uid")?,
        gid: words("Gid")?,
        groups: words("Groups")?,
        inh: hex_field(&status, "CapInh")?,
        prm: hex_field(&status, "CapPrm")?,
        eff: hex_field(&status, "CapEff")?,
        bnd: hex_field(&status, "CapBnd")?,
        amb: hex_field(&status, "CapAmb")?,
        loginuid,
    })
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}
#[repr(C)]
#[derive(Default, Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

fn capset(eff: u64, prm: u64, inh: u64) -> std::io::Result<()> {
    let mut h = CapHeader {
        version: 0x2008_0522,
        pid: 0,
    };
    let d = [
        CapData {
            effective: eff as u32,
            permitted: prm as u32,
            inheritable: inh as u32,
        },
        CapData {
            effective: (eff >> 32) as u32,
            permitted: (prm >> 32) as u32,
            inheritable: (inh >> 32) as u32,
        },
    ];
    // SAFETY: capset reads the header and two data structs.
    sys::cvt(unsafe { libc::syscall(libc::SYS_capset, &mut h, d.as_ptr()) as libc::c_int })
        .map(|_| ())
}

/// In the child: take the credentials on.
fn drop_to(with_loginuid: bool) -> Result<(), String> {
    let e = |what: &str, err: std::io::Error| format!("{what}: {}", errno_text(&err));
    if with_loginuid {
        std::fs::write("/proc/self/loginuid", LOGINUID.to_string())
            .map_err(|err| e("write /proc/self/loginuid", err))?;
    }
    // SAFETY: plain syscalls of the child on itself.
    unsafe {
        for c in [CAP_SYS_ADMIN, CAP_SYS_MODULE] {
            sys::cvt(libc::prctl(
                libc::PR_CAPBSET_DROP,
                c as libc::c_ulong,
                0,
                0,
                0,
            ))
            .map_err(|err| e("PR_CAPBSET_DROP", err))?;
        }
        sys::cvt(libc::setgroups(GROUPS.len(), GROUPS.as_ptr()))
            .map_err(|err| e("setgroups", err))?;
        sys::cvt(libc::setresgid(GIDS[0], GIDS[1], GIDS[2])).map_err(|err| e("setresgid", err))?;
        sys::cvt(libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0))
            .map_err(|err| e("PR_SET_KEEPCAPS", err))?;
        sys::cvt(libc::setresuid(UIDS[0], UIDS[1], UIDS[2])).map_err(|err| e("setresuid", err))?;
    }
    capset(EFFECTIVE, PERMITTED, INHERITABLE).map_err(|err| e("capset", err))
}

fn serve(req: &str) -> Result<String, String> {
    match req {
        "bind" => std::net::TcpListener::bind("127.0.0.1:981")
            .map(|_| "bound".to_string())
            .map_err(|e| format!("bind to port 981 with CAP_NET_BIND_SERVICE effective: {e}")),
        "chown" => {
            let path = format!("/tmp/crtest-creds-{}", std::process::id());
            std::fs::write(&path, b"x").map_err(|e| format!("create {path}: {e}"))?;
            let chowned = std::os::unix::fs::chown(&path, Some(0), None);
            let _ = std::fs::remove_file(&path);
            match chowned {
                Ok(()) => Err("chown to root succeeded without CAP_CHOWN effective".into()),
                Err(e) if e.raw_os_error() == Some(libc::EPERM) => Ok("EPERM".into()),
                Err(e) => Err(format!("chown: {e}")),
            }
        }
        other => Err(format!("unknown request `{other}`")),
    }
}

struct Child {
    helper: Helper,
    want: Creds,
    /// The uids the child must show, apart so a test can change what is expected.
    uids: Box<[u32; 3]>,
}

impl Child {
    fn check(&self) -> Result<(), String> {
        let got = read_creds(self.helper.pid.as_raw(), self.want.loginuid.is_some())?;
        let mut p = Problems::new();
        let who = self.helper.who();
        p.expect_eq(&format!("{who}: Uid"), &ids(&self.uids), &got.uid);
        p.expect_eq(&format!("{who}: Gid"), &self.want.gid, &got.gid);
        p.expect_eq(&format!("{who}: Groups"), &self.want.groups, &got.groups);
        for (name, w, g) in [
            ("CapInh", self.want.inh, got.inh),
            ("CapPrm", self.want.prm, got.prm),
            ("CapEff", self.want.eff, got.eff),
            ("CapBnd", self.want.bnd, got.bnd),
            ("CapAmb", self.want.amb, got.amb),
        ] {
            p.expect_eq(
                &format!("{who}: {name}"),
                format!("{w:#x}"),
                format!("{g:#x}"),
            );
        }
        p.expect_eq(
            &format!("{who}: loginuid"),
            self.want.loginuid,
            got.loginuid,
        );
        p.into_result()
    }
}

/// Starts the child, then ticks.
pub fn run(wl: &mut Workload, args: &Args) -> Result<String, String> {
    let with_loginuid = std::path::Path::new("/proc/self/loginuid").exists();
    let mine =
        read_creds(nix::unistd::getpid().as_raw(), false).unwrap_or_else(|e| wl.setup_failed(&e));
    let helper = family::spawn("child with its own credentials", move |req| {
        // The first request drops the credentials; later ones use them.
        if req == "drop" {
            return drop_to(with_loginuid).map(|()| "dropped".into());
        }
        serve(req)
    })
    .unwrap_or_else(|e| wl.setup_failed(&e));
    let mut child = Child {
        helper,
        uids: Box::new(UIDS),
        want: Creds {
            uid: ids(&UIDS),
            gid: ids(&GIDS),
            groups: GROUPS.map(|g| g.to_string()).join(" "),
            inh: INHERITABLE,
            prm: PERMITTED,
            eff: EFFECTIVE,
            bnd: mine.bnd & !(bit(CAP_SYS_ADMIN) | bit(CAP_SYS_MODULE)),
            amb: 0,
            loginuid: with_loginuid.then_some(LOGINUID),
        },
    };
    if let Err(e) = child.helper.ask("drop") {
        child.helper.kill();
        wl.setup_failed(&e);
    }
    child.check().unwrap_or_else(|e| wl.setup_failed(&e));
    let detail = format!(
        "child={} uids_addr={:#x}",
        child.helper.pid,
        child.uids.as_ptr() as usize
    );
    let outcome = steady::ready_then_tick(wl, args, &detail, |_| child.check()).and_then(|n| {
        child.check()?;
        child.helper.ask("bind")?;
        child.helper.ask("chown")?;
        Ok(n)
    });
    match outcome {
        Ok(ticks) => {
            child.helper.finish()?;
            Ok(format!(
                "a child kept its 3 uids, 3 gids, groups, capability sets and login uid over {ticks} checks, and could use them"
            ))
        }
        Err(e) => {
            child.helper.kill();
            Err(e)
        }
    }
}
