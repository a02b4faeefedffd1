//! criu driven over its RPC, as container runtimes drive it (runc through go-criu, crun
//! through libcriu): `criu swrk FD` on one end of a `SOCK_SEQPACKET` pair, one `criu_req` of
//! `images/rpc.proto` per run, `criu_notify` messages answered on the way (where the
//! command line would run an action script, the script is run here, as a runtime runs its
//! hooks), then the `criu_resp` with `success`, `cr_errno` and `cr_errmsg`.
//!
//! The request is made from the same argv the command line would get, so that both ways
//! run the same dump and restore; an option the RPC has no field for is an error naming it.

use crate::diagnose::errno;
use crtest_vm::command::{self, Ran};
use nix::sys::socket::{
    recv, send, setsockopt, socketpair, sockopt, AddressFamily, MsgFlags, SockFlag, SockType,
};
use nix::sys::time::TimeVal;
use prost::Message;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The criu commands that go through the RPC in the `rpc` mode (the page server and the
/// lazy-pages daemon stay on the command line, as runtimes start them).
pub const REQUESTS: &[&str] = &["dump", "pre-dump", "restore"];

/// `criu_page_server_info`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PageServerInfo {
    #[prost(string, optional, tag = "1")]
    pub address: Option<String>,
    #[prost(int32, optional, tag = "2")]
    pub port: Option<i32>,
    #[prost(int32, optional, tag = "3")]
    pub pid: Option<i32>,
}

/// `ext_mount_map`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ExtMountMap {
    #[prost(string, required, tag = "1")]
    pub key: String,
    #[prost(string, required, tag = "2")]
    pub val: String,
}

/// `criu_opts`: the fields the harness's dumps and restores use.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CriuOpts {
    #[prost(int32, required, tag = "1")]
    pub images_dir_fd: i32,
    #[prost(int32, optional, tag = "2")]
    pub pid: Option<i32>,
    #[prost(bool, optional, tag = "3")]
    pub leave_running: Option<bool>,
    #[prost(bool, optional, tag = "4")]
    pub ext_unix_sk: Option<bool>,
    #[prost(bool, optional, tag = "5")]
    pub tcp_established: Option<bool>,
    #[prost(bool, optional, tag = "6")]
    pub evasive_devices: Option<bool>,
    #[prost(bool, optional, tag = "7")]
    pub shell_job: Option<bool>,
    #[prost(bool, optional, tag = "8")]
    pub file_locks: Option<bool>,
    #[prost(int32, optional, tag = "9")]
    pub log_level: Option<i32>,
    #[prost(string, optional, tag = "10")]
    pub log_file: Option<String>,
    #[prost(message, optional, tag = "11")]
    pub ps: Option<PageServerInfo>,
    #[prost(bool, optional, tag = "12")]
    pub notify_scripts: Option<bool>,
    #[prost(string, optional, tag = "13")]
    pub root: Option<String>,
    #[prost(string, optional, tag = "14")]
    pub parent_img: Option<String>,
    #[prost(bool, optional, tag = "15")]
    pub track_mem: Option<bool>,
    #[prost(bool, optional, tag = "16")]
    pub auto_dedup: Option<bool>,
    #[prost(int32, optional, tag = "17")]
    pub work_dir_fd: Option<i32>,
    #[prost(bool, optional, tag = "18")]
    pub link_remap: Option<bool>,
    #[prost(message, repeated, tag = "23")]
    pub ext_mnt: Vec<ExtMountMap>,
    #[prost(bool, optional, tag = "26")]
    pub rst_sibling: Option<bool>,
    #[prost(bool, optional, tag = "28")]
    pub auto_ext_mnt: Option<bool>,
    #[prost(string, repeated, tag = "31")]
    pub skip_mnt: Vec<String>,
    #[prost(string, repeated, tag = "32")]
    pub enable_fs: Vec<String>,
    #[prost(int32, optional, tag = "34")]
    pub manage_cgroups_mode: Option<i32>,
    #[prost(uint32, optional, tag = "35")]
    pub ghost_limit: Option<u32>,
    #[prost(string, repeated, tag = "36")]
    pub irmap_scan_paths: Vec<String>,
    #[prost(string, repeated, tag = "37")]
    pub external: Vec<String>,
    #[prost(uint32, optional, tag = "45")]
    pub timeout: Option<u32>,
    #[prost(bool, optional, tag = "46")]
    pub tcp_skip_in_flight: Option<bool>,
    #[prost(bool, optional, tag = "48")]
    pub lazy_pages: Option<bool>,
    #[prost(bool, optional, tag = "52")]
    pub tcp_close: Option<bool>,
    #[prost(bool, optional, tag = "65")]
    pub mntns_compat_mode: Option<bool>,
    #[prost(bool, optional, tag = "69")]
    pub leave_stopped: Option<bool>,
}

/// `criu_req_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, prost::Enumeration)]
#[repr(i32)]
pub enum ReqType {
    Empty = 0,
    Dump = 1,
    Restore = 2,
    Check = 3,
    PreDump = 4,
    PageServer = 5,
    Notify = 6,
    Version = 10,
}

/// `criu_req`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CriuReq {
    #[prost(enumeration = "ReqType", required, tag = "1")]
    pub r#type: i32,
    #[prost(message, optional, tag = "2")]
    pub opts: Option<CriuOpts>,
    #[prost(bool, optional, tag = "3")]
    pub notify_success: Option<bool>,
}

/// `criu_notify`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CriuNotify {
    #[prost(string, optional, tag = "1")]
    pub script: Option<String>,
    #[prost(int32, optional, tag = "2")]
    pub pid: Option<i32>,
}

/// `criu_restore_resp`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RestoreResp {
    #[prost(int32, required, tag = "1")]
    pub pid: i32,
}

/// `criu_version`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CriuVersion {
    #[prost(int32, required, tag = "1")]
    pub major_number: i32,
    #[prost(int32, required, tag = "2")]
    pub minor_number: i32,
    #[prost(int32, optional, tag = "4")]
    pub sublevel: Option<i32>,
}

/// `criu_resp`: the fields read back.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CriuResp {
    #[prost(enumeration = "ReqType", required, tag = "1")]
    pub r#type: i32,
    #[prost(bool, required, tag = "2")]
    pub success: bool,
    #[prost(message, optional, tag = "4")]
    pub restore: Option<RestoreResp>,
    #[prost(message, optional, tag = "5")]
    pub notify: Option<CriuNotify>,
    #[prost(int32, optional, tag = "7")]
    pub cr_errno: Option<i32>,
    #[prost(string, optional, tag = "9")]
    pub cr_errmsg: Option<String>,
    #[prost(message, optional, tag = "10")]
    pub version: Option<CriuVersion>,
}

/// `criu_cg_mode` by the command line's names.
const CG_MODES: &[(&str, i32)] = &[
    ("ignore", 0),
    ("none", 1),
    ("props", 2),
    ("soft", 3),
    ("full", 4),
    ("strict", 5),
];

/// A request made from a command line, and what the command line said that the request
/// carries another way: the folders to open, the action script to run on notifications,
/// the pidfile to write.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    pub req_type: Option<ReqType>,
    pub opts: Option<CriuOpts>,
    pub images_dir: PathBuf,
    /// The log's folder, given as the work dir (the RPC's log file has no folder).
    pub work_dir: Option<PathBuf>,
    pub action_script: Option<PathBuf>,
    pub pidfile: Option<PathBuf>,
}

/// What goes wrong on the way to criu's RPC service.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// The command line says something the RPC cannot carry: the scenario is a skip here.
    #[error("{0}")]
    Unsayable(String),
    /// The service could not be set up or started.
    #[error("{what}: {source}")]
    Setup {
        what: String,
        source: std::io::Error,
    },
}

fn setup(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> RpcError {
    let what = what.into();
    move |source| RpcError::Setup { what, source }
}

/// The request for `criu ARGS` (`dump`, `pre-dump` or `restore`), or the option the RPC
/// has no field for.
pub fn plan(args: &[String]) -> Result<Plan, RpcError> {
    plan_of(args).map_err(RpcError::Unsayable)
}

fn plan_of(args: &[String]) -> Result<Plan, String> {
    let req_type = match args.first().map(String::as_str) {
        Some("dump") => ReqType::Dump,
        Some("pre-dump") => ReqType::PreDump,
        Some("restore") => ReqType::Restore,
        other => return Err(format!("no RPC request for `criu {}`", other.unwrap_or(""))),
    };
    let mut p = Plan {
        req_type: Some(req_type),
        ..Plan::default()
    };
    let mut o = CriuOpts {
        images_dir_fd: -1,
        ..CriuOpts::default()
    };
    let mut it = args[1..].iter().peekable();
    while let Some(a) = it.next() {
        let (name, inline) = match a.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v.to_string())),
            _ => (a.as_str(), None),
        };
        let mut value = || -> Result<String, String> {
            match &inline {
                Some(v) => Ok(v.clone()),
                None => it
                    .next()
                    .cloned()
                    .ok_or_else(|| format!("`{name}` needs a value")),
            }
        };
        let on = Some(true);
        match name {
            "--tree" | "-t" => o.pid = Some(number(&value()?, name)?),
            "--images-dir" | "-D" => p.images_dir = PathBuf::from(value()?),
            "--log-file" | "-o" => {
                let log = PathBuf::from(value()?);
                o.log_file = log.file_name().map(|f| f.to_string_lossy().to_string());
                p.work_dir = log.parent().map(Path::to_path_buf);
            }
            "-v4" => o.log_level = Some(4),
            "--verbosity" => o.log_level = Some(number(&value()?, name)?),
            "--pidfile" => p.pidfile = Some(PathBuf::from(value()?)),
            "--restore-detached" | "-d" => {}
            "--action-script" => {
                p.action_script = Some(PathBuf::from(value()?));
                o.notify_scripts = on;
            }
            "--leave-running" | "-R" => o.leave_running = on,
            "--leave-stopped" => o.leave_stopped = on,
            "--ext-unix-sk" => o.ext_unix_sk = on,
            "--tcp-established" => o.tcp_established = on,
            "--tcp-close" => o.tcp_close = on,
            "--skip-in-flight" => o.tcp_skip_in_flight = on,
            "--evasive-devices" => o.evasive_devices = on,
            "--shell-job" | "-j" => o.shell_job = on,
            "--file-locks" | "-l" => o.file_locks = on,
            "--link-remap" => o.link_remap = on,
            "--track-mem" => o.track_mem = on,
            "--auto-dedup" => o.auto_dedup = on,
            "--lazy-pages" => o.lazy_pages = on,
            "--restore-sibling" => o.rst_sibling = on,
            "--mntns-compat-mode" => o.mntns_compat_mode = on,
            "--no-mntns-compat-mode" => o.mntns_compat_mode = Some(false),
            "--prev-images-dir" => o.parent_img = Some(value()?),
            "--root" | "-r" => o.root = Some(value()?),
            "--external" => o.external.push(value()?),
            "--skip-mnt" => o.skip_mnt.push(value()?),
            "--enable-fs" => o.enable_fs.push(value()?),
            "--irmap-scan-path" => o.irmap_scan_paths.push(value()?),
            "--ghost-limit" => o.ghost_limit = Some(size(&value()?, name)?),
            "--ext-mount-map" | "-M" => {
                let v = value()?;
                if v == "auto" {
                    o.auto_ext_mnt = on;
                    continue;
                }
                let (key, val) = v
                    .split_once(':')
                    .ok_or_else(|| format!("`{name} {v}` is not KEY:VALUE"))?;
                o.ext_mnt.push(ExtMountMap {
                    key: key.into(),
                    val: val.into(),
                });
            }
            "--timeout" => o.timeout = Some(number(&value()?, name)? as u32),
            "--page-server" => {
                o.ps.get_or_insert_with(Default::default);
            }
            "--address" => o.ps.get_or_insert_with(Default::default).address = Some(value()?),
            "--port" => {
                o.ps.get_or_insert_with(Default::default).port = Some(number(&value()?, name)?)
            }
            "--manage-cgroups" => {
                // Its value is optional: the harness always gives it with `=`.
                let v = inline.clone().unwrap_or_else(|| "soft".into());
                let mode = CG_MODES
                    .iter()
                    .find(|m| m.0 == v)
                    .ok_or_else(|| format!("`--manage-cgroups={v}` is no cgroup mode"))?;
                o.manage_cgroups_mode = Some(mode.1);
            }
            other => return Err(format!("criu's RPC has no field for option `{other}`")),
        }
    }
    if p.images_dir.as_os_str().is_empty() {
        return Err("no --images-dir".into());
    }
    p.opts = Some(o);
    Ok(p)
}

/// A size as criu reads it: bytes, or a number with `K`, `M` or `G`.
fn size(v: &str, name: &str) -> Result<u32, String> {
    let (digits, shift) = match v.chars().last() {
        Some('K' | 'k') => (&v[..v.len() - 1], 10),
        Some('M' | 'm') => (&v[..v.len() - 1], 20),
        Some('G' | 'g') => (&v[..v.len() - 1], 30),
        _ => (v, 0),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| u32::try_from(n << shift).ok())
        .ok_or_else(|| format!("`{name} {v}`: not a size"))
}

fn number(v: &str, name: &str) -> Result<i32, String> {
    v.parse().map_err(|_| format!("`{name} {v}`: not a number"))
}

/// What the service answered, beside the run as the command line would report it.
#[derive(Clone)]
pub struct Answer {
    pub ran: Ran,
    /// The restored root (a restore's response).
    pub restored_pid: Option<i32>,
    /// `cr_errno` by name, and `cr_errmsg`, of a failed request.
    pub errno: Option<String>,
    pub errmsg: Option<String>,
}

/// Most bytes of one message from criu.
const MAX_MESSAGE: usize = 1 << 20;

/// Runs `plan` through `criu swrk` (the binary `criu`), its stdout and stderr into `out`,
/// `env` given to criu and to the action script; the whole within `limit`.
pub fn run(
    criu: &str,
    plan: &Plan,
    env: &[(String, String)],
    out: &Path,
    limit: Duration,
) -> Result<Answer, RpcError> {
    let start = Instant::now();
    let mut opts = plan
        .opts
        .clone()
        .ok_or_else(|| RpcError::Unsayable("a request without options".into()))?;
    let images = open_dir(&plan.images_dir)?;
    opts.images_dir_fd = images.as_raw_fd();
    let work = plan.work_dir.as_deref().map(open_dir).transpose()?;
    opts.work_dir_fd = work.as_ref().map(|w| w.as_raw_fd());
    let (ours, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|e| setup("socketpair")(e.into()))?;
    // The service's end must survive its exec: a copy without close-on-exec; the original
    // closed here, so that when criu is gone the socket reads end-of-file.
    let inheritable = dup_inheritable(&theirs)?;
    drop(theirs);
    let theirs = inheritable;
    let file = std::fs::File::create(out).map_err(setup(out.display().to_string()))?;
    let file2 = file.try_clone().map_err(setup(out.display().to_string()))?;
    let mut child = Command::new(criu)
        .args(["swrk".to_string(), theirs.as_raw_fd().to_string()])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(file2)
        .spawn()
        .map_err(setup(format!("cannot start `{criu} swrk`")))?;
    drop(theirs);
    let req_type = plan.req_type.unwrap_or(ReqType::Empty);
    let command = format!(
        "{criu} swrk (RPC {:?} request: {})",
        req_type,
        describe(&opts)
    );
    let req = CriuReq {
        r#type: req_type as i32,
        opts: Some(opts.clone()),
        notify_success: None,
    };
    let answer = converse(&ours, &req, plan, env, start + limit, opts.pid);
    drop(ours);
    let status = command::wait_child(&mut child, Duration::from_secs(10))
        .and_then(|s| s.code())
        .unwrap_or(-1);
    let elapsed = start.elapsed();
    let (resp, timed_out) = match answer {
        Ok(r) => (Some(r), false),
        Err(Talk::TimedOut) => (None, true),
        Err(Talk::Broken(why)) => {
            return Ok(Answer {
                ran: Ran {
                    command,
                    status: if status == 0 { 1 } else { status },
                    output: why,
                    timed_out: false,
                    elapsed,
                },
                restored_pid: None,
                errno: None,
                errmsg: None,
            })
        }
    };
    let success = resp.as_ref().is_some_and(|r| r.success);
    let errmsg = resp.as_ref().and_then(|r| r.cr_errmsg.clone());
    Ok(Answer {
        ran: Ran {
            command,
            status: if success { 0 } else { 1 },
            output: errmsg.clone().unwrap_or_default(),
            timed_out,
            elapsed,
        },
        restored_pid: resp
            .as_ref()
            .and_then(|r| r.restore.as_ref())
            .map(|r| r.pid),
        errno: resp
            .as_ref()
            .and_then(|r| r.cr_errno)
            .filter(|e| *e != 0)
            .and_then(errno::name),
        errmsg,
    })
}

enum Talk {
    TimedOut,
    Broken(String),
}

/// Sends the request and answers notifications until the final response.
fn converse(
    sk: &OwnedFd,
    req: &CriuReq,
    plan: &Plan,
    env: &[(String, String)],
    deadline: Instant,
    tree: Option<i32>,
) -> Result<CriuResp, Talk> {
    let mut root = tree;
    let broken = |what: String| Talk::Broken(format!("criu's RPC: {what}"));
    let first = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1));
    let tv = TimeVal::new(first.as_secs() as i64, first.subsec_micros() as i64);
    let _ = setsockopt(sk, sockopt::SendTimeout, &tv);
    send(sk.as_raw_fd(), &req.encode_to_vec(), MsgFlags::empty())
        .map_err(|e| broken(format!("send: {e}")))?;
    let mut buf = vec![0u8; MAX_MESSAGE];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Talk::TimedOut);
        }
        // At least a millisecond: a zero timeval would mean no timeout at all.
        let left = left.max(Duration::from_millis(1));
        let tv = TimeVal::new(left.as_secs() as i64, left.subsec_micros() as i64);
        let _ = setsockopt(sk, sockopt::ReceiveTimeout, &tv);
        let _ = setsockopt(sk, sockopt::SendTimeout, &tv);
        let n = match recv(sk.as_raw_fd(), &mut buf, MsgFlags::MSG_TRUNC) {
            Ok(0) => return Err(broken("criu closed the socket without an answer".into())),
            Ok(n) if n > buf.len() => return Err(broken(format!("a message of {n} bytes"))),
            Ok(n) => n,
            Err(nix::errno::Errno::EAGAIN) => return Err(Talk::TimedOut),
            Err(e) => return Err(broken(format!("recv: {e}"))),
        };
        let resp =
            CriuResp::decode(&buf[..n]).map_err(|e| broken(format!("undecodable answer: {e}")))?;
        if resp.r#type != ReqType::Notify as i32 {
            return Ok(resp);
        }
        let notify = resp.notify.clone().unwrap_or_default();
        // criu names the root only at `setup-namespaces` and `post-restore`; a runtime
        // keeps it for the stages after, as the command line's CRTOOLS_INIT_PID has it.
        if let Some(pid) = notify.pid.filter(|p| *p > 0) {
            root = Some(pid);
        }
        let ok = match (&plan.action_script, notify.script.as_deref()) {
            (Some(script), Some(action)) => {
                run_script(script, action, root.unwrap_or(0), env, deadline)
            }
            _ => true,
        };
        let reply = CriuReq {
            r#type: ReqType::Notify as i32,
            opts: None,
            notify_success: Some(ok),
        };
        send(sk.as_raw_fd(), &reply.encode_to_vec(), MsgFlags::empty())
            .map_err(|e| broken(format!("send the notify answer: {e}")))?;
    }
}

/// The action script run for a notification, as criu runs it for the command line.
fn run_script(
    script: &Path,
    action: &str,
    pid: i32,
    env: &[(String, String)],
    deadline: Instant,
) -> bool {
    let mut cmd = command::Cmd::new(script.as_os_str())
        .env("CRTOOLS_SCRIPT_ACTION", action)
        .env("CRTOOLS_INIT_PID", pid.to_string());
    for (k, v) in env {
        cmd = cmd.env(k, v);
    }
    let left = deadline.saturating_duration_since(Instant::now());
    cmd.run_timed(left, None).is_ok_and(|r| r.ok())
}

fn open_dir(path: &Path) -> Result<OwnedFd, RpcError> {
    std::fs::File::open(path)
        .map(OwnedFd::from)
        .map_err(setup(format!("cannot open {}", path.display())))
}

fn dup_inheritable(fd: &OwnedFd) -> Result<OwnedFd, RpcError> {
    let raw = nix::unistd::dup(fd.as_raw_fd()).map_err(|e| setup("dup")(e.into()))?;
    // SAFETY: `raw` is a new descriptor that nothing else owns.
    Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) })
}

/// The request's options in short, for the report's command line.
fn describe(o: &CriuOpts) -> String {
    let mut v: Vec<String> = Vec::new();
    if let Some(p) = o.pid {
        v.push(format!("pid={p}"));
    }
    let flags = [
        ("leave_running", o.leave_running),
        ("leave_stopped", o.leave_stopped),
        ("track_mem", o.track_mem),
        ("auto_dedup", o.auto_dedup),
        ("lazy_pages", o.lazy_pages),
        ("rst_sibling", o.rst_sibling),
        ("mntns_compat_mode", o.mntns_compat_mode),
        ("notify_scripts", o.notify_scripts),
        ("shell_job", o.shell_job),
        ("tcp_established", o.tcp_established),
        ("ext_unix_sk", o.ext_unix_sk),
        ("file_locks", o.file_locks),
    ];
    v.extend(
        flags
            .iter()
            .filter(|(_, b)| *b == Some(true))
            .map(|(n, _)| n.to_string()),
    );
    if let Some(p) = &o.parent_img {
        v.push(format!("parent_img={p}"));
    }
    if let Some(ps) = &o.ps {
        v.push(format!(
            "ps={}:{}",
            ps.address.as_deref().unwrap_or(""),
            ps.port.unwrap_or(0)
        ));
    }
    if let Some(r) = &o.root {
        v.push(format!("root={r}"));
    }
    v.extend(o.external.iter().map(|e| format!("external={e}")));
    if let Some(l) = &o.log_file {
        v.push(format!("log_file={l}"));
    }
    v.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::criu::argv::{dump_args, restore_args};

    #[test]
    fn a_dump_command_line_becomes_a_request() {
        let mut extra: Vec<String> = [
            "--shell-job",
            "--prev-images-dir",
            "../pre-1-1",
            "--track-mem",
            "--page-server",
            "--address",
            "127.0.0.1",
            "--port",
            "27001",
            "--action-script",
            "/w/script",
            "--manage-cgroups=ignore",
            "--external",
            "mnt[/a]:a",
        ]
        .map(String::from)
        .to_vec();
        extra.push("--leave-running".into());
        let args = dump_args(
            42,
            Path::new("/w/images-1"),
            Path::new("/w/dump-1.log"),
            &extra,
        );
        let p = plan(&args).unwrap();
        assert_eq!(p.req_type, Some(ReqType::Dump));
        assert_eq!(p.images_dir, Path::new("/w/images-1"));
        assert_eq!(p.work_dir.as_deref(), Some(Path::new("/w")));
        assert_eq!(p.action_script.as_deref(), Some(Path::new("/w/script")));
        let o = p.opts.unwrap();
        assert_eq!(
            describe(&o),
            "pid=42 leave_running track_mem notify_scripts shell_job parent_img=../pre-1-1 \
             ps=127.0.0.1:27001 external=mnt[/a]:a log_file=dump-1.log"
        );
        assert_eq!(o.log_level, Some(4));
        assert_eq!(o.manage_cgroups_mode, Some(0));
        // The encoding round-trips through prost.
        let req = CriuReq {
            r#type: ReqType::Dump as i32,
            opts: Some(o.clone()),
            notify_success: None,
        };
        let back = CriuReq::decode(&req.encode_to_vec()[..]).unwrap();
        assert_eq!(back.opts.unwrap(), o);
    }

    #[test]
    fn a_restore_command_line_becomes_a_request() {
        let extra =
            ["--restore-sibling", "--lazy-pages", "--manage-cgroups=full"].map(String::from);
        let args = restore_args(
            Path::new("/w/images-1"),
            Path::new("/w/restore-1.log"),
            Path::new("/w/restore-1.pid"),
            &extra,
        );
        let p = plan(&args).unwrap();
        assert_eq!(p.req_type, Some(ReqType::Restore));
        assert_eq!(p.pidfile.as_deref(), Some(Path::new("/w/restore-1.pid")));
        let o = p.opts.unwrap();
        assert_eq!(
            (o.rst_sibling, o.lazy_pages, o.manage_cgroups_mode),
            (Some(true), Some(true), Some(4))
        );
    }

    #[test]
    fn what_the_rpc_cannot_say_is_named() {
        let args: Vec<String> = ["dump", "--images-dir", "/i", "--cpu-cap", "fpu"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            plan(&args).unwrap_err().to_string(),
            "criu's RPC has no field for option `--cpu-cap`"
        );
        let args: Vec<String> = ["check"].map(String::from).to_vec();
        assert!(plan(&args)
            .unwrap_err()
            .to_string()
            .contains("no RPC request"));
        let args: Vec<String> = ["dump", "--tree"].map(String::from).to_vec();
        assert!(plan(&args)
            .unwrap_err()
            .to_string()
            .contains("needs a value"));
        let args: Vec<String> = ["dump", "--tree", "x", "-D", "/i"]
            .map(String::from)
            .to_vec();
        assert!(plan(&args)
            .unwrap_err()
            .to_string()
            .contains("not a number"));
        assert_eq!(size("128M", "--ghost-limit"), Ok(128 << 20));
        assert_eq!(size("4096", "--ghost-limit"), Ok(4096));
        assert!(size("8G", "--ghost-limit").is_err());
    }

    #[test]
    fn an_answer_decodes() {
        // type RESTORE, success false, cr_errno 16 (EBUSY), cr_errmsg "busy".
        let bytes = [
            0x08, 0x02, 0x10, 0x00, 0x38, 0x10, 0x4a, 0x04, b'b', b'u', b's', b'y',
        ];
        let r = CriuResp::decode(&bytes[..]).unwrap();
        assert!(!r.success);
        assert_eq!(r.cr_errno, Some(16));
        assert_eq!(r.cr_errmsg.as_deref(), Some("busy"));
        assert!(CriuResp::decode(&bytes[..3]).is_err());
    }
}
