//! QEMU: choosing the accelerator, building the command line (pure functions), and a
//! process guard that never leaves a QEMU behind.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    Kvm,
    Tcg,
}

impl Accel {
    pub fn as_str(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

/// The accelerator to use, and why not KVM when it is TCG.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccelChoice {
    pub accel: Accel,
    pub why_not_kvm: Option<String>,
}

/// KVM when `/dev/kvm` opens read-write and the CPU shows `vmx` or `svm`; TCG otherwise.
/// `CRTEST_ACCEL=tcg|kvm` forces one.
pub fn detect_accel() -> AccelChoice {
    match std::env::var("CRTEST_ACCEL").as_deref() {
        Ok("tcg") => {
            return AccelChoice {
                accel: Accel::Tcg,
                why_not_kvm: Some("CRTEST_ACCEL=tcg".into()),
            }
        }
        Ok("kvm") => {
            return AccelChoice {
                accel: Accel::Kvm,
                why_not_kvm: None,
            }
        }
        _ => {}
    }
    let dev = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .err()
        .map(|e| kvm_open_error(&e));
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    choose_accel(dev, &cpuinfo)
}

/// Why /dev/kvm did not open, with what gets a normal account in when it is a permission.
pub fn kvm_open_error(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::PermissionDenied => format!(
            "/dev/kvm: {e} (add this account to the `kvm` group to use KVM: \
             `sudo adduser $USER kvm`, then log in again)"
        ),
        _ => format!("/dev/kvm: {e}"),
    }
}

/// Pure part of [`detect_accel`]: `dev_error` is the failure to open /dev/kvm, if any.
pub fn choose_accel(dev_error: Option<String>, cpuinfo: &str) -> AccelChoice {
    let has_virt = cpuinfo
        .lines()
        .filter(|l| l.starts_with("flags"))
        .any(|l| l.split_whitespace().any(|f| f == "vmx" || f == "svm"));
    let why = match (dev_error, has_virt) {
        (Some(e), _) => Some(e),
        (None, false) => Some(
            "/dev/kvm exists but the CPU shows no vmx/svm flag, so a KVM guest would hang".into(),
        ),
        (None, true) => None,
    };
    AccelChoice {
        accel: if why.is_none() {
            Accel::Kvm
        } else {
            Accel::Tcg
        },
        why_not_kvm: why,
    }
}

/// Everything a guest boot needs.
#[derive(Debug, Clone)]
pub struct VmSpec {
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    /// ext4 image of the userland; opened with `snapshot=on`, so guest writes never reach it.
    pub rootfs: PathBuf,
    /// A second ext4 image (`/dev/vdb`, zdtm's tests), also `snapshot=on`: the guest may
    /// write into it, and nothing reaches the file.
    pub data_disk: Option<PathBuf>,
    /// The kernel's `lib/modules/<release>` parent (`lib/modules`), shared read-only.
    pub modules_dir: PathBuf,
    /// The run's results folder: the only host folder the guest can write.
    pub results_dir: PathBuf,
    pub results_tag: String,
    pub modules_tag: String,
    pub console_log: PathBuf,
    pub events_log: PathBuf,
    /// A short private folder for QEMU's QMP and control sockets (a unix socket path
    /// has at most 107 bytes, a run folder's path may be longer).
    pub sockets_dir: PathBuf,
    /// Start from this saved state instead of booting (see [`crate::saved_vm`]).
    pub incoming: Option<PathBuf>,
    /// A guest that is saved when ready, or resumed from such a one: the agent mounts its
    /// disks read-only and waits on the control port before it goes on.
    pub save_mode: bool,
    pub memory_mib: u32,
    pub cpus: u32,
    pub accel: Accel,
    /// QEMU's CPU model (`-cpu`); `None` is `max` under TCG, `host` under KVM.
    pub cpu: Option<String>,
    /// A network card joined to one other guest (a migration's), `None` for no network.
    pub link: Option<Link>,
}

/// A guest's one network card: a virtio NIC on a datagram socket pair shared with one other
/// guest, never with the host's network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    /// A card joined to nothing (a hub of one port), as the guest is saved: what the card is
    /// joined to is QEMU's, not the guest's, so a resumed guest may be joined to another.
    Unplugged,
    /// Joined to the other guest: this end's socket and the other end's.
    Peer { local: PathBuf, remote: PathBuf },
}

/// The id of the link's netdev (QMP's `set_link` names it).
pub const LINK_NETDEV: &str = "link";

impl VmSpec {
    /// QEMU's QMP socket.
    pub fn qmp_socket(&self) -> PathBuf {
        self.sockets_dir.join("qmp.sock")
    }
    /// The guest's third serial port (`/dev/ttyS2`): the host's line to the agent.
    pub fn control_socket(&self) -> PathBuf {
        self.sockets_dir.join("control.sock")
    }
}

/// The kernel command line: console on the first serial port, reboot (so QEMU exits, with
/// `-no-reboot`) at once on panic.
pub fn kernel_cmdline() -> String {
    // Three serial ports: the console, the agent's events, the host's control line.
    [
        "console=ttyS0,115200",
        "panic=-1",
        "loglevel=7",
        "mitigations=off",
        "8250.nr_uarts=3",
        "i8042.noaux",
        "i8042.nopnp",
        "noresume",
    ]
    .join(" ")
}

/// The full QEMU argv (without the program name).
pub fn argv(spec: &VmSpec) -> Vec<String> {
    let p = |p: &Path| p.display().to_string();
    let mut a: Vec<String> = Vec::new();
    let mut push = |items: &[&str]| a.extend(items.iter().map(|s| s.to_string()));
    push(&[
        "-nodefaults",
        "-no-user-config",
        "-no-reboot",
        "-display",
        "none",
    ]);
    match spec.accel {
        Accel::Kvm => {
            let cpu = spec.cpu.as_deref().unwrap_or("host");
            push(&["-machine", "pc", "-accel", "kvm", "-cpu", cpu])
        }
        Accel::Tcg => {
            let cpu = spec.cpu.as_deref().unwrap_or("max");
            push(&["-machine", "pc", "-accel", "tcg,thread=multi", "-cpu", cpu])
        }
    }
    let (mem, cpus) = (spec.memory_mib.to_string(), spec.cpus.to_string());
    push(&["-m", &mem, "-smp", &cpus]);
    push(&["-kernel", &p(&spec.kernel), "-initrd", &p(&spec.initrd)]);
    let mut cmdline = kernel_cmdline();
    if spec.data_disk.is_some() {
        // The agent waits for the second disk only when it is told there is one.
        cmdline.push_str(" crtest.data_disk=1");
    }
    if spec.save_mode {
        cmdline.push_str(" crtest.save=1");
    }
    push(&["-append", &cmdline]);
    let console = format!("file,id=console,path={},append=on", p(&spec.console_log));
    let events = format!("file,id=events,path={}", p(&spec.events_log));
    push(&["-chardev", &console, "-serial", "chardev:console"]);
    push(&["-chardev", &events, "-serial", "chardev:events"]);
    let control = format!(
        "socket,id=control,path={},server=on,wait=off",
        p(&spec.control_socket())
    );
    push(&["-chardev", &control, "-serial", "chardev:control"]);
    let qmp = format!("unix:{},server=on,wait=off", p(&spec.qmp_socket()));
    push(&["-qmp", &qmp]);
    let root = format!(
        "file={},format=raw,if=virtio,snapshot=on,cache=unsafe",
        p(&spec.rootfs)
    );
    push(&["-drive", &root]);
    if let Some(disk) = &spec.data_disk {
        let d = format!(
            "file={},format=raw,if=virtio,snapshot=on,cache=unsafe",
            p(disk)
        );
        push(&["-drive", &d]);
    }
    let modules = format!(
        "local,path={},mount_tag={},security_model=none,readonly=on,id=modules",
        p(&spec.modules_dir),
        spec.modules_tag
    );
    let results = format!(
        "local,path={},mount_tag={},security_model=none,id=results",
        p(&spec.results_dir),
        spec.results_tag
    );
    push(&["-virtfs", &modules, "-virtfs", &results]);
    if let Some(link) = &spec.link {
        push(&["-netdev", &netdev(link), "-device", &nic()]);
    }
    if let Some(state) = &spec.incoming {
        push(&["-incoming", &crate::saved_vm::incoming_uri(state)]);
    }
    // No other network device: -nodefaults adds none and we add none.
    a
}

/// The CPU models this QEMU knows (`-cpu help`), from its output.
pub fn cpu_models(help: &str) -> Vec<String> {
    help.lines()
        .filter_map(|l| l.trim().strip_prefix("x86 "))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// The link's netdev: a hub port going nowhere, or a unix datagram socket sending to the
/// other guest's (datagrams: either QEMU may start first, and a cut link loses frames).
pub fn netdev(link: &Link) -> String {
    match link {
        Link::Unplugged => format!("hubport,id={LINK_NETDEV},hubid=0"),
        Link::Peer { local, remote } => format!(
            "dgram,id={LINK_NETDEV},local.type=unix,local.path={},remote.type=unix,remote.path={}",
            local.display(),
            remote.display()
        ),
    }
}

/// The link's card. Its MAC address is the same in every guest (it is part of the saved
/// state); the agent gives each end its own before it brings the card up.
fn nic() -> String {
    format!("virtio-net-pci,netdev={LINK_NETDEV},mac=52:54:00:c7:00:01")
}

#[derive(Debug, thiserror::Error)]
pub enum QemuError {
    #[error("cannot start `{command}`: {source} (install the qemu-system-x86 package)")]
    Start {
        command: String,
        source: std::io::Error,
    },
    #[error("cannot create {path}: {source}")]
    Log {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A running QEMU in its own process group. It gets SIGKILL when this process dies (parent
/// death signal) and when the guard is dropped.
pub struct QemuProcess {
    child: Child,
}

impl QemuProcess {
    /// Starts `program argv` with stdin from /dev/null and stdout/stderr to `log`.
    pub fn spawn(program: &str, argv: &[String], log: &Path) -> Result<QemuProcess, QemuError> {
        let out = std::fs::File::create(log).map_err(|source| QemuError::Log {
            path: log.to_path_buf(),
            source,
        })?;
        let err = out.try_clone().map_err(|source| QemuError::Log {
            path: log.to_path_buf(),
            source,
        })?;
        let mut cmd = Command::new(program);
        cmd.args(argv).stdin(Stdio::null()).stdout(out).stderr(err);
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                nix::unistd::setpgid(nix::unistd::Pid::from_raw(0), nix::unistd::Pid::from_raw(0))?;
                nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)?;
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|source| QemuError::Start {
            command: format!("{program} {}", argv.join(" ")),
            source,
        })?;
        Ok(QemuProcess { child })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit code once QEMU has exited (`None` while it runs).
    pub fn try_wait(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Kills QEMU (and anything in its process group) and collects it.
    pub fn kill(&mut self) {
        if self.try_wait().is_none() {
            let pgid = nix::unistd::Pid::from_raw(-(self.child.id() as i32));
            let _ = nix::sys::signal::kill(pgid, nix::sys::signal::Signal::SIGKILL);
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Drop for QemuProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::no_flags(None, "flags : fpu sse2", Accel::Tcg)]
    #[case::vmx(None, "flags : fpu vmx sse2", Accel::Kvm)]
    #[case::svm(None, "flags\t: svm", Accel::Kvm)]
    #[case::no_device(Some("/dev/kvm: No such file".to_string()), "flags : vmx", Accel::Tcg)]
    fn accel_choice(#[case] dev: Option<String>, #[case] cpuinfo: &str, #[case] want: Accel) {
        let c = choose_accel(dev, cpuinfo);
        assert_eq!(c.accel, want);
        assert_eq!(c.why_not_kvm.is_some(), want == Accel::Tcg);
    }

    fn spec(accel: Accel) -> VmSpec {
        VmSpec {
            kernel: "/c/vmlinuz".into(),
            initrd: "/c/initrd".into(),
            rootfs: "/c/rootfs.ext4".into(),
            data_disk: None,
            modules_dir: "/c/lib/modules".into(),
            results_dir: "/r".into(),
            results_tag: "crtest-results".into(),
            modules_tag: "crtest-modules".into(),
            console_log: "/r/console.log".into(),
            events_log: "/r/events.jsonl".into(),
            sockets_dir: "/tmp/crtest-x".into(),
            incoming: None,
            save_mode: false,
            memory_mib: 2048,
            cpus: 2,
            accel,
            cpu: None,
            link: None,
        }
    }

    #[test]
    fn a_kvm_that_this_account_may_not_open_names_the_group() {
        let denied = std::io::Error::from_raw_os_error(13);
        assert_eq!(
            kvm_open_error(&denied),
            "/dev/kvm: Permission denied (os error 13) (add this account to the `kvm` group \
             to use KVM: `sudo adduser $USER kvm`, then log in again)"
        );
        let missing = std::io::Error::from_raw_os_error(2);
        assert_eq!(
            kvm_open_error(&missing),
            "/dev/kvm: No such file or directory (os error 2)"
        );
    }

    #[test]
    fn cpu_models_are_read_from_qemus_help() {
        let help = "Available CPUs:\nx86 486                   (alias configured by machine type)\nx86 Haswell-noTSX         Intel Core Processor (Haswell, no TSX)\nx86 max                   Enables all features supported by the accelerator in the current host\n\nRecognized CPUID flags:\n  3dnow\n";
        assert_eq!(cpu_models(help), ["486", "Haswell-noTSX", "max"]);
    }

    #[test]
    fn a_cpu_model_and_a_link() {
        let mut s = spec(Accel::Tcg);
        s.cpu = Some("Haswell-noTSX".into());
        s.link = Some(Link::Peer {
            local: "/s/a.sock".into(),
            remote: "/s/b.sock".into(),
        });
        let a = argv(&s).join(" ");
        assert!(a.contains("-cpu Haswell-noTSX "), "{a}");
        assert!(
            a.contains("-netdev dgram,id=link,local.type=unix,local.path=/s/a.sock,remote.type=unix,remote.path=/s/b.sock -device virtio-net-pci,netdev=link,"),
            "{a}"
        );
        s.link = Some(Link::Unplugged);
        assert!(argv(&s)
            .join(" ")
            .contains("-netdev hubport,id=link,hubid=0 "));
        s.accel = Accel::Kvm;
        assert!(argv(&s).join(" ").contains("-cpu Haswell-noTSX "));
        s.cpu = None;
        assert!(argv(&s).join(" ").contains("-cpu host "));
    }

    #[rstest]
    #[case::tcg(Accel::Tcg)]
    #[case::kvm(Accel::Kvm)]
    fn argv_snapshot(#[case] accel: Accel) {
        let a = argv(&spec(accel));
        assert!(a.contains(&"-nodefaults".to_string()));
        assert!(a.contains(&"-no-reboot".to_string()));
        assert!(!a
            .iter()
            .any(|x| x.starts_with("-net") || x.contains("netdev")));
        insta::assert_snapshot!(format!("argv_{}", accel.as_str()), a.join("\n"));
    }

    #[test]
    fn a_data_disk_is_a_second_snapshot_drive() {
        let mut s = spec(Accel::Tcg);
        s.data_disk = Some("/c/zdtm.ext4".into());
        let a = argv(&s);
        let drives: Vec<&String> = a
            .iter()
            .filter(|x| x.starts_with("file=") && x.contains("if=virtio"))
            .collect();
        assert_eq!(drives.len(), 2, "{a:?}");
        assert_eq!(
            drives[1],
            "file=/c/zdtm.ext4,format=raw,if=virtio,snapshot=on,cache=unsafe"
        );
        assert!(
            a.iter().any(|x| x.ends_with(" crtest.data_disk=1")),
            "{a:?}"
        );
    }

    #[test]
    fn a_resumed_guest_has_the_saved_argv_and_incoming() {
        let mut s = spec(Accel::Tcg);
        s.save_mode = true;
        let saved = argv(&s);
        assert!(
            saved.iter().any(|x| x.ends_with(" crtest.save=1")),
            "{saved:?}"
        );
        s.incoming = Some("/c/vmstate/k/state".into());
        let resumed = argv(&s);
        assert_eq!(&resumed[..saved.len()], &saved[..]);
        assert_eq!(
            &resumed[saved.len()..],
            &["-incoming", "exec:cat '/c/vmstate/k/state'"]
        );
    }

    #[test]
    fn cmdline_panics_reboot() {
        assert!(kernel_cmdline().contains("panic=-1"));
        assert!(kernel_cmdline().contains("console=ttyS0"));
    }
}
