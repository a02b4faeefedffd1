//! What the guest agent does as PID 1 before any scenario: mounts, modules, the switch from
//! the initramfs to the real root, devpts, `lo`. Every step is a function returning an error
//! that names the path and the errno.

use crate::diagnose::chain::chain;
use nix::mount::{mount, MsFlags};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Guest paths shared with the host side (`vm_run`), which builds the initramfs and QEMU argv.
pub mod paths {
    /// Workload binaries in the initramfs.
    pub const INITRAMFS_BIN: &str = "/crtest/bin";
    /// Boot modules in the initramfs, with an `order` file listing them.
    pub const INITRAMFS_MODULES: &str = "/crtest/modules";
    /// The root file system's block device.
    pub const ROOT_DEVICE: &str = "/dev/vda";
    /// The second disk (zdtm's tests), when the host gives one.
    pub const DATA_DEVICE: &str = "/dev/vdb";
    /// Workload binaries after the switch to the real root.
    pub const BIN: &str = "/run/crtest/bin";
    /// The run's results directory (9p, the only host folder the guest can write).
    pub const RESULTS: &str = "/run/crtest/results";
    /// Scenario working directories (tmpfs).
    pub const WORK: &str = "/tmp/crtest";
    /// 9p mount tags.
    pub const RESULTS_TAG: &str = "crtest-results";
    pub const MODULES_TAG: &str = "crtest-modules";
    /// The agent's event port.
    pub const EVENTS_TTY: &str = "/dev/ttyS1";
    /// The host's control line (read only by a guest that waits to be resumed).
    pub const CONTROL_TTY: &str = "/dev/ttyS2";
}

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("mount {what} on {target}: {errno}")]
    Mount {
        what: String,
        target: PathBuf,
        errno: nix::errno::Errno,
    },
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{op} {path}: {errno}")]
    Sys {
        op: &'static str,
        path: PathBuf,
        errno: nix::errno::Errno,
    },
    #[error("{path} did not appear within {secs} s (is the driver module loaded?)")]
    NoDevice { path: PathBuf, secs: u64 },
    #[error("running a tool")]
    Run(#[from] crtest_vm::command::CommandError),
    #[error("{command}: {output}")]
    Tool { command: String, output: String },
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> SetupError + 'a {
    move |source| SetupError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Mounts `fstype` on `target` (created when missing).
pub fn mount_fs(
    source: &str,
    target: &str,
    fstype: &str,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<(), SetupError> {
    let t = Path::new(target);
    std::fs::create_dir_all(t).map_err(io("mkdir", t))?;
    mount(Some(source), t, Some(fstype), flags, data).map_err(|errno| SetupError::Mount {
        what: format!("{fstype} ({source})"),
        target: t.to_path_buf(),
        errno,
    })
}

/// proc, sysfs and devtmpfs: enough to load modules and find the root device.
pub fn early_mounts() -> Result<(), SetupError> {
    let nodev = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV;
    mount_fs("proc", "/proc", "proc", nodev, None)?;
    mount_fs("sysfs", "/sys", "sysfs", nodev, None)?;
    mount_fs("devtmpfs", "/dev", "devtmpfs", MsFlags::MS_NOSUID, None)
}

/// Loads the initramfs's boot modules in the order the host resolved. Returns notes for
/// modules that would not load (the kernel may have them built in).
pub fn load_boot_modules() -> Vec<String> {
    let dir = Path::new(paths::INITRAMFS_MODULES);
    let order = std::fs::read_to_string(dir.join("order")).unwrap_or_default();
    let mut notes = Vec::new();
    for name in order.lines().filter(|l| !l.trim().is_empty()) {
        let path = dir.join(name.trim());
        let res = std::fs::File::open(&path)
            .map_err(|e| e.to_string())
            .and_then(|f| {
                nix::kmod::finit_module(&f, c"", nix::kmod::ModuleInitFlags::empty())
                    .map_err(|e| format!("{e:?} ({})", e.desc()))
            });
        match res {
            Ok(()) => {}
            Err(e) if e.starts_with("EEXIST") => {}
            Err(e) => notes.push(format!("boot module {}: {e}", path.display())),
        }
    }
    notes
}

/// Waits until a device node exists.
pub fn wait_for(path: &str, limit: Duration) -> Result<(), SetupError> {
    let end = Instant::now() + limit;
    while !Path::new(path).exists() {
        if Instant::now() >= end {
            return Err(SetupError::NoDevice {
                path: path.into(),
                secs: limit.as_secs(),
            });
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(())
}

/// Mounts the root device read-only (a guest saved now must not have written its disk; see
/// [`writable`]), copies the workload binaries to a tmpfs in it, moves the early mounts over
/// and makes it `/` (what `switch_root` does). The root is a real mount: criu cannot work on
/// the initramfs rootfs.
pub fn switch_root() -> Result<(), SetupError> {
    let new = "/newroot";
    mount_fs(paths::ROOT_DEVICE, new, "ext4", MsFlags::MS_RDONLY, None)?;
    mount_fs(
        "tmpfs",
        "/newroot/run",
        "tmpfs",
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=0755"),
    )?;
    let bin = PathBuf::from("/newroot").join(paths::BIN.trim_start_matches('/'));
    copy_tree(Path::new(paths::INITRAMFS_BIN), &bin)?;
    // The agent beside them: criu runs it as its action script (`exec::visible::moment`).
    let agent = bin.join(crate::exec::visible::moment::AGENT_BINARY);
    std::fs::copy("/init", &agent).map_err(io("copy /init to", &agent))?;
    for m in ["/dev", "/proc", "/sys"] {
        let target = format!("{new}{m}");
        std::fs::create_dir_all(&target).map_err(io("mkdir", Path::new(&target)))?;
        mount(
            Some(m),
            target.as_str(),
            None::<&str>,
            MsFlags::MS_MOVE,
            None::<&str>,
        )
        .map_err(|errno| SetupError::Mount {
            what: format!("(move) {m}"),
            target: target.clone().into(),
            errno,
        })?;
    }
    let sys = |op, errno| SetupError::Sys {
        op,
        path: new.into(),
        errno,
    };
    nix::unistd::chdir(new).map_err(|e| sys("chdir", e))?;
    mount(Some("."), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>)
        .map_err(|e| sys("move to /", e))?;
    nix::unistd::chroot(".").map_err(|e| sys("chroot", e))?;
    nix::unistd::chdir("/").map_err(|e| sys("chdir /", e))
}

fn copy_tree(src: &Path, dest: &Path) -> Result<(), SetupError> {
    std::fs::create_dir_all(dest).map_err(io("mkdir", dest))?;
    for entry in std::fs::read_dir(src).map_err(io("read dir", src))? {
        let entry = entry.map_err(io("read dir", src))?;
        let to = dest.join(entry.file_name());
        std::fs::copy(entry.path(), &to).map_err(io("copy to", &to))?;
    }
    Ok(())
}

/// The mounts criu and the workloads need in the real root, but for the 9p shares
/// ([`shares`]): none of them writes the root.
pub fn root_mounts() -> Result<(), SetupError> {
    let nodev = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV;
    mount_fs(
        "tmpfs",
        "/tmp",
        "tmpfs",
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        None,
    )?;
    mount_fs(
        "tmpfs",
        "/dev/shm",
        "tmpfs",
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        None,
    )?;
    // A private devpts instance and /dev/ptmx pointing into it (the linux-cr wiki's step).
    mount_fs(
        "devpts",
        "/dev/pts",
        "devpts",
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620,gid=5"),
    )?;
    let ptmx = Path::new("/dev/ptmx");
    let _ = std::fs::remove_file(ptmx);
    std::os::unix::fs::symlink("pts/ptmx", ptmx).map_err(io("symlink", ptmx))?;
    mount_fs("cgroup2", "/sys/fs/cgroup", "cgroup2", nodev, None)?;
    mount_fs(
        "securityfs",
        "/sys/kernel/security",
        "securityfs",
        nodev,
        None,
    )?;
    std::fs::create_dir_all(paths::WORK).map_err(io("mkdir", Path::new(paths::WORK)))
}

/// What a guest does once it is its own (at once after a boot, after the resume of a saved
/// one): the root and the data disk made writable, then what writes them, then the 9p shares
/// (QEMU cannot save a guest that has one mounted). Notes for what failed but need not stop.
pub fn writable() -> Result<Vec<String>, SetupError> {
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REMOUNT,
        None::<&str>,
    )
    .map_err(|errno| SetupError::Mount {
        what: "(remount read-write) the root".into(),
        target: "/".into(),
        errno,
    })?;
    let mut notes: Vec<String> = zdtm_disk_writable().into_iter().collect();
    notes.extend(lxc_conf());
    shares()?;
    Ok(notes)
}

/// The modules and results shares.
fn shares() -> Result<(), SetupError> {
    let ninep = "trans=virtio,version=9p2000.L,msize=262144,cache=none";
    mount_fs(
        paths::MODULES_TAG,
        "/lib/modules",
        "9p",
        MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(ninep),
    )?;
    mount_fs(
        paths::RESULTS_TAG,
        paths::RESULTS,
        "9p",
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some(ninep),
    )
}

/// A guest saved by the host goes on when a copy of it is resumed and told so on the
/// control port: `go <seconds> <nanoseconds>`, the host's wall clock, which the guest takes
/// (a resumed guest's clock says when it was saved). Lines that are not that are ignored.
pub fn wait_for_go() -> Result<(), SetupError> {
    use std::io::Read;
    let path = Path::new(paths::CONTROL_TTY);
    let mut port = std::fs::File::open(path).map_err(io("open", path))?;
    if let Ok(mut t) = nix::sys::termios::tcgetattr(&port) {
        nix::sys::termios::cfmakeraw(&mut t);
        let _ = nix::sys::termios::tcsetattr(&port, nix::sys::termios::SetArg::TCSANOW, &t);
    }
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        let n = port.read(&mut byte).map_err(io("read", path))?;
        if n == 0 {
            std::thread::sleep(Duration::from_millis(5));
            continue;
        }
        if byte[0] != b'\n' {
            if line.len() < 128 {
                line.push(byte[0]);
            }
            continue;
        }
        if let Some(time) = parse_go(&String::from_utf8_lossy(&line)) {
            let _ = nix::time::clock_settime(nix::time::ClockId::CLOCK_REALTIME, time);
            return Ok(());
        }
        line.clear();
    }
}

/// The time of a `go` line.
pub fn parse_go(line: &str) -> Option<nix::sys::time::TimeSpec> {
    let mut words = line.split_whitespace();
    if words.next()? != "go" {
        return None;
    }
    let secs: i64 = words.next()?.parse().ok()?;
    let nanos: i64 = words.next()?.parse().ok()?;
    (words.next().is_none() && (0..1_000_000_000).contains(&nanos))
        .then(|| nix::sys::time::TimeSpec::new(secs, nanos))
}

fn has_data_disk() -> bool {
    std::fs::read_to_string("/proc/cmdline")
        .unwrap_or_default()
        .split_whitespace()
        .any(|w| w == "crtest.data_disk=1")
}

/// The second disk, when the host gave one (zdtm's built `test/` folder): what zdtm's tests
/// want of the kernel. The disk itself is mounted by [`zdtm_disk_writable`], after a resume
/// (its mount point is made in the root, which is read-only until then). A note when
/// something of it failed.
pub fn zdtm_disk() -> Option<String> {
    if !has_data_disk() {
        return None;
    }
    if let Err(e) = wait_for(paths::DATA_DEVICE, std::time::Duration::from_secs(20)) {
        return Some(format!("zdtm disk: {}", chain(&e)));
    }
    // Huge pages for the tests that map them (maps09, memfd02-hugetlb, ...), as CRIU's CI
    // sets them before running zdtm.
    let _ = std::fs::write("/proc/sys/vm/nr_hugepages", "32");
    // `/dev/rtc`, as udev links it (zdtm's rtc test opens it).
    if Path::new("/dev/rtc0").exists() && !Path::new("/dev/rtc").exists() {
        let _ = std::os::unix::fs::symlink("rtc0", "/dev/rtc");
    }
    None
}

/// The zdtm disk mounted at [`crate::model::scenario::ZDTM_ROOT`], `/zdtm` pointing at its
/// `zdtm/` (paths some `.desc` files name), and the test folders writable for all, as
/// zdtm.py makes them for tests that drop to its uid.
fn zdtm_disk_writable() -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    if !has_data_disk() || !Path::new(paths::DATA_DEVICE).exists() {
        return None;
    }
    let root = Path::new(crate::model::scenario::ZDTM_ROOT);
    let step = || -> Result<(), SetupError> {
        mount_fs(
            paths::DATA_DEVICE,
            crate::model::scenario::ZDTM_ROOT,
            "ext4",
            MsFlags::empty(),
            None,
        )?;
        let _ = std::os::unix::fs::symlink(root.join("zdtm"), "/zdtm");
        for set in ["static", "transition"] {
            let d = root.join("zdtm").join(set);
            if d.is_dir() {
                // 0777 as zdtm.py's `chmod +w`, not sticky: a test that changes its uid
                // renames the `.out.inprogress` root created (mlock_setuid).
                std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777))
                    .map_err(io("chmod", &d))?;
            }
        }
        Ok(())
    };
    step().err().map(|e| format!("zdtm disk: {}", chain(&e)))
}

/// Kernel modules criu's dump and restore use (socket diagnostics, netfilter for the network
/// lock, tun/veth). The host puts them in the initramfs when the kernel has them, and the
/// agent loads them with the boot modules; one the kernel lacks is left out with a note.
pub const CRIU_MODULES: &[&str] = &[
    "unix_diag",
    "inet_diag",
    "tcp_diag",
    "udp_diag",
    "raw_diag",
    "netlink_diag",
    "af_packet_diag",
    "nf_tables",
    "nft_compat",
    "nf_conntrack",
    "tun",
    "veth",
    "overlay",
    // lxcbr0, the host side of LXC's veth containers.
    "bridge",
    // `criu check --all` mounts autofs.
    "autofs4",
    // The card of a migration's private link (page servers, lazy pages between guests).
    "virtio_net",
];

/// Brings the loopback interface up (criu needs it: without, `Unable to connect a socket:
/// Network is unreachable`).
pub fn loopback_up() -> Result<(), SetupError> {
    let r = crtest_vm::command::run(
        "ip",
        &["link".into(), "set".into(), "lo".into(), "up".into()],
        Duration::from_secs(10),
    )?;
    if r.ok() {
        Ok(())
    } else {
        Err(SetupError::Tool {
            command: r.command,
            output: r.output.trim().to_string(),
        })
    }
}

/// What LXC needs of the guest's network, when the userland has LXC: the `lxcbr0` bridge
/// Debian's lxc-net service would make (without its dnsmasq). A note for each failure.
pub fn lxc_network() -> Vec<String> {
    use crate::exec::lxc::config::{BRIDGE, BRIDGE_ADDRESS};
    if !Path::new("/usr/bin/lxc-start").exists() {
        return Vec::new();
    }
    let mut notes = Vec::new();
    // One `ip` for the three commands: each process costs a tenth of a second under TCG.
    let batch = format!(
        "link add {BRIDGE} type bridge\naddr add {BRIDGE_ADDRESS} dev {BRIDGE}\nlink set {BRIDGE} up\n"
    );
    let file = Path::new("/run/crtest/lxcbr0.ip");
    let args = vec!["-batch".to_string(), file.display().to_string()];
    match std::fs::write(file, batch) {
        Err(e) => notes.push(format!("lxc: cannot write {}: {e}", file.display())),
        Ok(()) => match crtest_vm::command::run("ip", &args, Duration::from_secs(10)) {
            Ok(r) if r.ok() => {}
            Ok(r) => notes.push(format!("lxc: {}: {}", r.command, r.output.trim())),
            Err(e) => notes.push(format!("lxc: {e}")),
        },
    }
    notes
}

/// `/etc/lxc/default.conf` without AppArmor (see
/// [`crate::exec::lxc::config::unconfined_default_conf`]), when the userland has LXC.
fn lxc_conf() -> Vec<String> {
    use crate::exec::lxc::config as conf;
    if !Path::new("/usr/bin/lxc-start").exists() {
        return Vec::new();
    }
    let mut notes = Vec::new();
    let path = Path::new(conf::DEFAULT_CONF);
    let text = std::fs::read_to_string(path).unwrap_or_default();
    if let Err(e) = std::fs::write(path, conf::unconfined_default_conf(&text)) {
        notes.push(format!("lxc: cannot write {}: {e}", path.display()));
    }
    notes
}

/// Guest uptime in ms, from /proc/uptime.
pub fn uptime_ms() -> u64 {
    std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0, |s| (s * 1000.0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_go_line_carries_the_host_time() {
        let t = parse_go("go 1796187600 250000000").unwrap();
        assert_eq!((t.tv_sec(), t.tv_nsec()), (1_796_187_600, 250_000_000));
        for bad in [
            "",
            "go",
            "go 1",
            "go 1 2 3",
            "go x 1",
            "go 1 1000000000",
            "stop 1 2",
        ] {
            assert!(parse_go(bad).is_none(), "{bad:?}");
        }
    }
}
