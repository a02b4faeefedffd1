//! What an `lxc` scenario's container is made of, as pure functions: its name, its
//! `/var/lib/lxc/NAME/config`, the small rootfs around the guest's `/usr`, the launcher that
//! starts the workload inside, the argv of the `lxc-*` tools, and reading their output.
//!
//! The container sees the guest's `/usr` read-only (the rootfs's `bin`, `sbin`, `lib` and
//! `lib64` are the merged-/usr links into it), the workload binaries and the scenario's
//! working directory at the same paths as the guest, so the harness reads the workload's
//! protocol files where the workload writes them.

use crate::model::scenario::{LxcInit, LxcNetwork};
use crtest_vm::command::shell_quote;
use std::path::{Path, PathBuf};

/// Where containers are defined (`lxc-checkpoint` needs `/var/lib/lxc/NAME/config`).
pub const LXC_PATH: &str = "/var/lib/lxc";
/// The launcher in the container's rootfs: it enters the working directory and execs the
/// workload, so the workload keeps the launcher's pid.
pub const LAUNCHER: &str = "/crtest-launch";
/// The lxc package's init for application containers, exec'd inside the container.
pub const INIT_LXC: &str = "/usr/sbin/init.lxc";
/// The host bridge of `veth` containers (what Debian's lxc-net would set up).
pub const BRIDGE: &str = "lxcbr0";
/// The bridge's address on the guest.
pub const BRIDGE_ADDRESS: &str = "10.0.3.1/24";
/// The container's address on the bridge (one container runs at a time).
pub const CONTAINER_ADDRESS: &str = "10.0.3.2/24";
/// [`CONTAINER_ADDRESS`] without its prefix length, as `lxc-info` shows it.
pub fn container_ip() -> &'static str {
    CONTAINER_ADDRESS
        .split('/')
        .next()
        .unwrap_or(CONTAINER_ADDRESS)
}
/// The container's default route.
pub const GATEWAY: &str = "10.0.3.1";
/// `PATH` inside the container.
pub const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Directories of the container's rootfs (mount points and the usual top level).
pub const ROOTFS_DIRS: &[&str] = &[
    "usr", "proc", "sys", "dev", "etc", "tmp", "run", "root", "var/tmp",
];
/// Merged-/usr links of the rootfs.
pub const ROOTFS_LINKS: &[(&str, &str)] = &[
    ("bin", "usr/bin"),
    ("sbin", "usr/sbin"),
    ("lib", "usr/lib"),
    ("lib64", "usr/lib64"),
];
/// Guest files copied into the rootfs's `/etc`.
pub const ETC_FILES: &[&str] = &["passwd", "group"];

/// LXC's default container config, copied into every container `lxc-create` makes (LXC's
/// own test makes one).
pub const DEFAULT_CONF: &str = "/etc/lxc/default.conf";

/// `default.conf` with AppArmor made `unconfined`: Debian's `generated` profile needs
/// `apparmor_parser` and a loaded policy, which the guest does not have.
pub fn unconfined_default_conf(text: &str) -> String {
    let mut out: String = text
        .lines()
        .filter(|l| {
            let l = l.trim_start();
            !l.starts_with("lxc.apparmor.profile") && !l.starts_with("# crtest:")
        })
        .map(|l| format!("{l}\n"))
        .collect();
    out += "# crtest: the guest has no AppArmor policy (no apparmor_parser).\n";
    out += "lxc.apparmor.profile = unconfined\n";
    out
}

/// The container of a scenario: `crt-` and the scenario's name, other characters than
/// letters, digits, `-`, `_` and `.` made `-`, at most 48 characters.
pub fn container_name(scenario: &str) -> String {
    let clean: String = scenario
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(44)
        .collect();
    format!("crt-{clean}")
}

/// Everything the config file says.
#[derive(Debug, Clone)]
pub struct ConfigSpec<'a> {
    pub name: &'a str,
    /// What the config's first line names.
    pub scenario: &'a str,
    pub rootfs: &'a Path,
    /// Bound read-only at the same path.
    pub bin_dir: &'a Path,
    /// Bound read-write at the same path; the container's init starts here.
    pub work: &'a Path,
    /// lxc's own log (outside the container's view).
    pub log_file: &'a Path,
    pub init: LxcInit,
    pub network: LxcNetwork,
}

/// The text of `/var/lib/lxc/NAME/config`.
pub fn config_text(c: &ConfigSpec) -> String {
    let mut out = format!(
        "# Written by crtest for scenario `{}`.\n\
         lxc.uts.name = {}\n\
         lxc.rootfs.path = dir:{}\n\
         lxc.autodev = 1\n\
         lxc.mount.auto = proc:mixed sys:ro cgroup:mixed\n",
        c.scenario,
        c.name,
        c.rootfs.display()
    );
    out += "lxc.mount.entry = /usr usr none ro,bind 0 0\n";
    // Debian's alternatives (`vi`, `Xvnc`, `x-terminal-emulator`) are links through
    // /etc/alternatives: without it those names dangle in the container.
    out += "lxc.mount.entry = /etc/alternatives etc/alternatives none ro,bind,create=dir 0 0\n";
    out += &bind_entry(c.bin_dir, "ro");
    out += &bind_entry(c.work, "rw");
    out += "lxc.mount.entry = tmpfs dev/shm tmpfs rw,nosuid,nodev,create=dir 0 0\n";
    // No console and no ttys: nothing of the host's terminal reaches into the container,
    // so criu has no external tty to map. Ptys come from the container's own devpts.
    out += "lxc.console.path = none\nlxc.tty.max = 0\nlxc.pty.max = 16\n";
    // The guest has no AppArmor policy (no apparmor_parser): run unconfined.
    out += "lxc.apparmor.profile = unconfined\n";
    out += &format!(
        "lxc.log.file = {}\nlxc.log.level = DEBUG\n",
        c.log_file.display()
    );
    out += &format!("lxc.init.cwd = {}\n", c.work.display());
    match c.init {
        LxcInit::LxcInit => {
            out += &format!("lxc.init.cmd = {INIT_LXC} -n {} -- {LAUNCHER}\n", c.name)
        }
        LxcInit::Busybox => out += "lxc.init.cmd = /bin/busybox init\n",
        // lxc-execute takes the command on its command line.
        LxcInit::Liblxc => {}
    }
    match c.network {
        // `flags = up` brings the namespace's `lo` up (without it `lo` stays down).
        LxcNetwork::Empty => out += "lxc.net.0.type = empty\nlxc.net.0.flags = up\n",
        LxcNetwork::Veth => {
            out += &format!(
                "lxc.net.0.type = veth\n\
                 lxc.net.0.link = {BRIDGE}\n\
                 lxc.net.0.flags = up\n\
                 lxc.net.0.name = eth0\n\
                 lxc.net.0.ipv4.address = {CONTAINER_ADDRESS}\n\
                 lxc.net.0.ipv4.gateway = {GATEWAY}\n"
            )
        }
    }
    out
}

/// A bind mount of a guest directory at the same path inside the container.
fn bind_entry(dir: &Path, mode: &str) -> String {
    let path = fstab_escape(&dir.display().to_string());
    format!(
        "lxc.mount.entry = {path} {} none {mode},bind,create=dir 0 0\n",
        path.trim_start_matches('/')
    )
}

/// Escapes what an fstab field cannot hold (space, tab, newline, backslash) as octal.
fn fstab_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        match c {
            ' ' | '\t' | '\n' | '\\' => out += &format!("\\{:03o}", c as u32),
            c => out.push(c),
        }
    }
    out
}

/// The launcher script: enters `work` and execs `program args` with stdin from /dev/null
/// and its output appended to `workload.log`.
pub fn launcher_script(work: &Path, program: &Path, args: &[String]) -> String {
    let work = work.display().to_string();
    let mut cmd = vec![shell_quote(&program.display().to_string())];
    cmd.extend(args.iter().map(|a| shell_quote(a)));
    format!(
        "#!/bin/sh\n\
         # Written by crtest: the container's init runs this; the workload keeps its pid.\n\
         PATH={PATH}\n\
         export PATH\n\
         cd {w} || exit 2\n\
         exec {} </dev/null >>{log} 2>&1\n",
        cmd.join(" "),
        w = shell_quote(&work),
        log = shell_quote(&format!("{work}/workload.log")),
    )
}

/// busybox init's table for a system container: the launcher, once.
pub fn inittab() -> String {
    format!("# Written by crtest: busybox init starts the workload once.\n::once:{LAUNCHER}\n")
}

/// `lxc-start`: daemonized; returns once the container runs (or failed to).
pub fn start_args(name: &str) -> Vec<String> {
    vec!["-n".into(), name.into(), "-d".into()]
}

/// `lxc-execute`: runs in the foreground until the container's command exits.
pub fn execute_args(name: &str) -> Vec<String> {
    vec!["-n".into(), name.into(), "--".into(), LAUNCHER.into()]
}

/// How `lxc-checkpoint` dumps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dump<'a> {
    /// `-s`: dump and stop the container.
    Stop,
    /// Dump and leave the container running.
    LeaveRunning,
    /// `-p`: copy the memory only, the container runs on.
    PreDump,
    /// `-s --predump-dir DIR`: dump on top of a pre-dump (`DIR` relative to the images).
    StopAfterPreDump(&'a str),
}

/// `lxc-checkpoint` dumping into `dir`, verbose (criu at -v4 and more, its log
/// `dump.log` or `pre-dump.log` in `dir`).
pub fn checkpoint_args(name: &str, dir: &Path, how: Dump) -> Vec<String> {
    let mut v: Vec<String> = vec![
        "-n".into(),
        name.into(),
        "-D".into(),
        dir.display().to_string(),
        "-v".into(),
    ];
    match how {
        Dump::Stop => v.push("-s".into()),
        Dump::LeaveRunning => {}
        Dump::PreDump => v.push("-p".into()),
        Dump::StopAfterPreDump(pre) => {
            v.extend(["-s".into(), "--predump-dir".into(), pre.into()]);
        }
    }
    v
}

/// `lxc-checkpoint -r` from `dir`: restores and daemonizes (criu's `restore.log` in `dir`).
pub fn restore_args(name: &str, dir: &Path) -> Vec<String> {
    vec![
        "-n".into(),
        name.into(),
        "-r".into(),
        "-D".into(),
        dir.display().to_string(),
        "-v".into(),
    ]
}

/// `-n NAME`, for `lxc-info`, `lxc-freeze`, `lxc-unfreeze`, `lxc-destroy`.
pub fn name_args(name: &str) -> Vec<String> {
    vec!["-n".into(), name.into()]
}

/// `lxc-stop -k`: kill the container at once.
pub fn stop_args(name: &str) -> Vec<String> {
    vec!["-n".into(), name.into(), "-k".into()]
}

/// What `lxc-info -n NAME` says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Info {
    /// `RUNNING`, `STOPPED`, `FROZEN`, ...
    pub state: Option<String>,
    /// The host pid of the container's init, while it runs.
    pub pid: Option<i32>,
    /// The container's addresses (`IP:` lines), while it runs.
    pub ips: Vec<String>,
}

/// Reads `lxc-info` output (`State:   RUNNING`, `PID:   107`).
pub fn parse_info(text: &str) -> Info {
    let mut info = Info::default();
    for line in text.lines() {
        if let Some((key, value)) = line.split_once(':') {
            let value = value.trim();
            match key.trim() {
                "State" => info.state = Some(value.to_string()),
                "PID" => info.pid = value.parse().ok(),
                "IP" => info.ips.push(value.to_string()),
                _ => {}
            }
        }
    }
    info
}

/// Lines the lxc tools print after the real error, repeating only that something failed.
const FOLLOW_ON: &[&str] = &[
    "dump failed with",
    "criu output:",
    "Failed to execute criu",
    "restore process died",
    "criu process exited",
    "Checkpointing ",
    "Restoring ",
    "The container failed to start",
    "To get more details",
    "Additional information can be obtained",
];

/// The first telling error line an lxc tool printed (`lxc-checkpoint: NAME: ../src/lxc/...`),
/// without the tool and container prefix; a follow-on line only when there is nothing else.
pub fn first_error(output: &str) -> Option<String> {
    let lines: Vec<&str> = output
        .lines()
        .map(str::trim)
        .filter(|l| l.contains("../src/lxc/") || l.contains(" ERROR "))
        .collect();
    let telling = lines
        .iter()
        .find(|l| !FOLLOW_ON.iter().any(|f| l.contains(f)))
        .or(lines.first())?;
    let at = telling
        .find("../src/lxc/")
        .or_else(|| telling.find(" ERROR ").map(|i| i + 1))
        .unwrap_or(0);
    Some(telling[at..].to_string())
}

/// The first ERROR line of lxc's own log (`lxc.log.file`, which holds every level), from
/// the source location on.
pub fn first_log_error(log: &str) -> Option<String> {
    let line = log.lines().find(|l| l.contains(" ERROR "))?;
    let at = line
        .find("../src/lxc/")
        .unwrap_or_else(|| line.find(" ERROR ").map_or(0, |i| i + 1));
    Some(line[at..].trim_end().to_string())
}

/// The cgroup2 directory of a process, from its `/proc/PID/cgroup` text (`0::/lxc.payload.x`).
pub fn cgroup2_dir(proc_cgroup: &str, mount: &Path) -> Option<PathBuf> {
    let path = proc_cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))?
        .trim();
    Some(mount.join(path.trim_start_matches('/')))
}

/// Whether a cgroup2 `cgroup.events` text says `frozen 1`.
pub fn events_frozen(events: &str) -> Option<bool> {
    events
        .lines()
        .find_map(|l| l.strip_prefix("frozen "))
        .map(|v| v.trim() == "1")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("lxc-sleep", "crt-lxc-sleep")]
    #[case("lxc-fileio1@leave-running", "crt-lxc-fileio1-leave-running")]
    #[case(
        "a-very-long-scenario-name-that-goes-on-and-on-and-on",
        "crt-a-very-long-scenario-name-that-goes-on-and-o"
    )]
    fn container_names(#[case] scenario: &str, #[case] want: &str) {
        assert_eq!(container_name(scenario), want);
        assert!(want.len() <= 48);
    }

    fn spec(init: LxcInit, network: LxcNetwork) -> String {
        config_text(&ConfigSpec {
            name: "crt-x",
            scenario: "x",
            rootfs: Path::new("/var/lib/lxc/crt-x/rootfs"),
            bin_dir: Path::new("/run/crtest/bin"),
            work: Path::new("/tmp/crtest/x@leave-running"),
            log_file: Path::new("/var/lib/lxc/crt-x/lxc.log"),
            init,
            network,
        })
    }

    #[test]
    fn config_of_an_application_container_without_network() {
        let c = spec(LxcInit::LxcInit, LxcNetwork::Empty);
        for line in [
            "lxc.uts.name = crt-x",
            "lxc.rootfs.path = dir:/var/lib/lxc/crt-x/rootfs",
            "lxc.mount.entry = /usr usr none ro,bind 0 0",
            "lxc.mount.entry = /run/crtest/bin run/crtest/bin none ro,bind,create=dir 0 0",
            "lxc.mount.entry = /tmp/crtest/x@leave-running tmp/crtest/x@leave-running none rw,bind,create=dir 0 0",
            "lxc.console.path = none",
            "lxc.apparmor.profile = unconfined",
            "lxc.log.file = /var/lib/lxc/crt-x/lxc.log",
            "lxc.init.cwd = /tmp/crtest/x@leave-running",
            "lxc.init.cmd = /usr/sbin/init.lxc -n crt-x -- /crtest-launch",
            "lxc.net.0.type = empty",
        ] {
            assert!(c.lines().any(|l| l == line), "missing `{line}` in:\n{c}");
        }
        assert!(!c.contains("veth"));
    }

    #[rstest]
    #[case::busybox(LxcInit::Busybox, "lxc.init.cmd = /bin/busybox init")]
    #[case::execute(LxcInit::Liblxc, "lxc.net.0.type = empty")]
    fn config_init(#[case] init: LxcInit, #[case] line: &str) {
        let c = spec(init, LxcNetwork::Empty);
        assert!(c.lines().any(|l| l == line), "{c}");
        if init == LxcInit::Liblxc {
            assert!(!c.contains("lxc.init.cmd"), "{c}");
        }
    }

    #[test]
    fn config_of_a_veth_container() {
        let c = spec(LxcInit::LxcInit, LxcNetwork::Veth);
        for line in [
            "lxc.net.0.type = veth",
            "lxc.net.0.link = lxcbr0",
            "lxc.net.0.flags = up",
            "lxc.net.0.ipv4.address = 10.0.3.2/24",
        ] {
            assert!(c.lines().any(|l| l == line), "missing `{line}` in:\n{c}");
        }
    }

    #[test]
    fn default_conf_made_unconfined() {
        // Debian bookworm's /etc/lxc/default.conf.
        let debian = "lxc.net.0.type = veth\nlxc.net.0.link = lxcbr0\nlxc.net.0.flags = up\n\nlxc.apparmor.profile = generated\nlxc.apparmor.allow_nesting = 1\n";
        let c = unconfined_default_conf(debian);
        assert!(
            c.starts_with("lxc.net.0.type = veth\nlxc.net.0.link = lxcbr0\n"),
            "{c}"
        );
        assert!(!c.contains("generated"), "{c}");
        assert!(c.contains("lxc.apparmor.allow_nesting = 1\n"), "{c}");
        assert!(c.ends_with("lxc.apparmor.profile = unconfined\n"), "{c}");
        assert_eq!(unconfined_default_conf(&c), c);
    }

    #[test]
    fn odd_paths_are_escaped_in_mount_entries() {
        assert_eq!(
            bind_entry(Path::new("/tmp/a b"), "rw"),
            "lxc.mount.entry = /tmp/a\\040b tmp/a\\040b none rw,bind,create=dir 0 0\n"
        );
    }

    #[test]
    fn launcher_quotes_and_execs() {
        let s = launcher_script(
            Path::new("/tmp/crtest/x"),
            Path::new("/run/crtest/bin/fileio1"),
            &["--records".into(), "2048".into(), "it's".into()],
        );
        assert!(s.starts_with("#!/bin/sh\n"), "{s}");
        assert!(s.contains("\ncd /tmp/crtest/x || exit 2\n"), "{s}");
        assert!(
            s.contains(
                "\nexec /run/crtest/bin/fileio1 --records 2048 'it'\\''s' </dev/null >>/tmp/crtest/x/workload.log 2>&1\n"
            ),
            "{s}"
        );
        assert_eq!(inittab().lines().last(), Some("::once:/crtest-launch"));
    }

    #[rstest]
    #[case(Dump::Stop, "-n c -D /w/images-1 -v -s")]
    #[case(Dump::LeaveRunning, "-n c -D /w/images-1 -v")]
    #[case(Dump::PreDump, "-n c -D /w/images-1 -v -p")]
    #[case(
        Dump::StopAfterPreDump("../pre-1"),
        "-n c -D /w/images-1 -v -s --predump-dir ../pre-1"
    )]
    fn checkpoint_argv(#[case] how: Dump, #[case] want: &str) {
        assert_eq!(
            checkpoint_args("c", Path::new("/w/images-1"), how).join(" "),
            want
        );
    }

    #[test]
    fn other_argv() {
        assert_eq!(
            restore_args("c", Path::new("/w/images-1")).join(" "),
            "-n c -r -D /w/images-1 -v"
        );
        assert_eq!(start_args("c").join(" "), "-n c -d");
        assert_eq!(execute_args("c").join(" "), "-n c -- /crtest-launch");
        assert_eq!(stop_args("c").join(" "), "-n c -k");
        assert_eq!(name_args("c").join(" "), "-n c");
    }

    #[test]
    fn info_of_running_and_stopped() {
        // lxc-info 5.0.2 output.
        let running = "Name:           a1\nState:          RUNNING\nPID:            108\nIP:             10.0.3.11\nLink:           vethf95sSu\n TX bytes:      426 bytes\n";
        assert_eq!(
            parse_info(running),
            Info {
                state: Some("RUNNING".into()),
                pid: Some(108),
                ips: vec!["10.0.3.11".into()],
            }
        );
        assert_eq!(
            parse_info("Name:           a1\nState:          STOPPED\n"),
            Info {
                state: Some("STOPPED".into()),
                pid: None,
                ips: Vec::new(),
            }
        );
    }

    // Each output is what lxc 5.0.2 printed in the guest.
    #[rstest]
    #[case(
        "lxc-checkpoint: a1: ../src/lxc/criu.c: exec_criu: 402 No such file or directory - Failed getting freezer path\n\
         lxc-checkpoint: a1: ../src/lxc/criu.c: do_dump: 1265 No such file or directory - Failed to execute criu\n\
         lxc-checkpoint: a1: ../src/lxc/criu.c: do_dump: 1297 dump failed with 1\n\
         lxc-checkpoint: a1: ../src/lxc/criu.c: do_dump: 1311 criu output: \n\
         lxc-checkpoint: a1: ../src/lxc/tools/lxc_checkpoint.c: checkpoint: 182 Checkpointing a1 failed\n",
        Some("../src/lxc/criu.c: exec_criu: 402 No such file or directory - Failed getting freezer path")
    )]
    #[case(
        "lxc-checkpoint: t1: ../src/lxc/criu.c: do_dump: 1297 dump failed with 1\n\
         lxc-checkpoint: t1: ../src/lxc/criu.c: do_dump: 1311 criu output: \n\
         lxc-checkpoint: t1: ../src/lxc/tools/lxc_checkpoint.c: checkpoint: 182 Checkpointing t1 failed\n",
        Some("../src/lxc/criu.c: do_dump: 1297 dump failed with 1")
    )]
    #[case(
        "lxc-start own 20261126194317.711 ERROR    apparmor - ../src/lxc/lsm/apparmor.c:apparmor_prepare:1080 - Cannot use generated profile: apparmor_parser not available\n",
        Some("../src/lxc/lsm/apparmor.c:apparmor_prepare:1080 - Cannot use generated profile: apparmor_parser not available")
    )]
    #[case("all fine\n", None)]
    fn first_error_of_lxc_output(#[case] output: &str, #[case] want: Option<&str>) {
        assert_eq!(first_error(output).as_deref(), want);
    }

    #[test]
    fn first_error_of_lxc_log() {
        let log = "lxc-start c 20261126200313.228 DEBUG    commands - ../src/lxc/commands.c:lxc_cmd_rsp_recv_fds:137 - Received\n\
                   lxc-start own 20261126194317.711 ERROR    apparmor - ../src/lxc/lsm/apparmor.c:apparmor_prepare:1080 - Cannot use generated profile: apparmor_parser not available\n";
        assert_eq!(
            first_log_error(log).as_deref(),
            Some("../src/lxc/lsm/apparmor.c:apparmor_prepare:1080 - Cannot use generated profile: apparmor_parser not available")
        );
        assert_eq!(
            first_log_error("lxc c 1 INFO x - ../src/lxc/a.c:1 - fine\n"),
            None
        );
    }

    #[test]
    fn cgroup_and_freezer_state() {
        assert_eq!(
            cgroup2_dir("0::/lxc.payload.a1\n", Path::new("/sys/fs/cgroup")),
            Some(PathBuf::from("/sys/fs/cgroup/lxc.payload.a1"))
        );
        assert_eq!(cgroup2_dir("1:name=systemd:/\n", Path::new("/x")), None);
        assert_eq!(events_frozen("populated 1\nfrozen 1\n"), Some(true));
        assert_eq!(events_frozen("populated 1\nfrozen 0\n"), Some(false));
        assert_eq!(events_frozen("populated 1\n"), None);
    }
}
