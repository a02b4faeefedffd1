//! The command lines of the OCI backends, built by pure functions: `podman` (run,
//! checkpoint, restore, inspect, rm), `runc` and `crun` alone (run, checkpoint, restore,
//! state, delete), and the bundle's `config.json` for the runtimes alone.

use crate::model::scenario::{Backend, OciOptions, OciRuntime};
use serde_json::{json, Value};
use std::path::Path;

/// The container image every podman scenario runs: a skeleton root made in the guest and
/// `podman import`ed once per boot (no registry is reachable, nor needed).
pub const BASE_IMAGE: &str = "localhost/crtest-oci-root:1";
/// Directories of the containers' skeleton root (the guest's `/usr` is bound over `usr`).
pub const ROOT_DIRS: &[&str] = &[
    "usr", "proc", "sys", "dev", "etc", "tmp", "run", "root", "var/tmp",
];
/// Merged-/usr links of the skeleton root.
pub const ROOT_LINKS: &[(&str, &str)] = &[
    ("bin", "usr/bin"),
    ("sbin", "usr/sbin"),
    ("lib", "usr/lib"),
    ("lib64", "usr/lib64"),
];
/// The files a container's `/proc` masks with `/dev/null` (podman's defaults,
/// containers/common's, which newer podman extends: `/proc/interrupts` on sid's; the
/// directories are masked with a read-only tmpfs). The bundles of runc and crun alone mask
/// the first three, as `runc spec` does.
pub const MASKED_FILES: &[&str] = &[
    "/proc/kcore",
    "/proc/keys",
    "/proc/timer_list",
    "/proc/interrupts",
    "/proc/latency_stats",
    "/proc/sched_debug",
    "/proc/timer_stats",
];

/// The capabilities a container gets (podman's default set; the runtimes alone get the same).
pub const CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_NET_BIND_SERVICE",
    "CAP_SETFCAP",
    "CAP_SETGID",
    "CAP_SETPCAP",
    "CAP_SETUID",
    "CAP_SYS_CHROOT",
];

/// A host directory bound into the container at the same path (never recursively: the
/// guest's own mounts below it, such as its modules over 9p, stay out; criu cannot dump them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind<'a> {
    pub path: &'a Path,
    pub read_only: bool,
}

/// How a checkpoint leaves the container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dump<'a> {
    /// Dumped and stopped.
    Stop,
    /// Dumped, left running.
    LeaveRunning,
    /// Memory only, tracked from here (`--pre-checkpoint`, `--pre-dump`); runs on.
    PreDump,
    /// Dumped and stopped on top of the pre-dump (podman `--with-previous`; runc and crun
    /// `--parent-path`, relative to the images).
    AfterPreDump(&'a str),
}

/// Where a podman checkpoint goes besides podman's own storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carry<'a> {
    /// Kept in podman's storage (`restore NAME`).
    InPlace,
    /// `--export FILE` (`--compress`, `--ignore-rootfs` from the options).
    Export(&'a Path),
    /// `--create-image IMAGE`.
    Image(&'a str),
}

fn s(v: &str) -> String {
    v.to_string()
}

fn p(v: &Path) -> String {
    v.display().to_string()
}

/// `podman run -d`: the launcher under `/bin/sh`, the binds, no network but `lo`.
pub fn podman_run(
    name: &str,
    runtime: OciRuntime,
    opts: &OciOptions,
    binds: &[Bind],
    command: &[String],
) -> Vec<String> {
    let mut v = vec![
        s("run"),
        s("-d"),
        s("--name"),
        s(name),
        s("--runtime"),
        s(runtime.as_str()),
        s("--network"),
        s("none"),
    ];
    if opts.init {
        v.push(s("--init"));
    }
    for b in binds {
        v.push(s("-v"));
        let mode = if b.read_only { "ro" } else { "rw" };
        v.push(format!("{0}:{0}:{mode},bind", b.path.display()));
    }
    v.push(s(BASE_IMAGE));
    v.extend(command.iter().cloned());
    v
}

/// `podman container checkpoint NAME` in `how`, carried as `carry`.
pub fn podman_checkpoint(name: &str, opts: &OciOptions, how: Dump, carry: Carry) -> Vec<String> {
    let mut v = vec![s("container"), s("checkpoint"), s("--print-stats")];
    match how {
        Dump::Stop => {}
        Dump::LeaveRunning => v.push(s("--leave-running")),
        Dump::PreDump => v.push(s("--pre-checkpoint")),
        Dump::AfterPreDump(_) => v.push(s("--with-previous")),
    }
    if how != Dump::PreDump {
        criu_flags(&mut v, opts);
        if opts.keep {
            v.push(s("--keep"));
        }
        match carry {
            Carry::InPlace => {}
            Carry::Export(file) => {
                v.extend([s("--export"), p(file)]);
                if let Some(c) = opts.export {
                    v.extend([s("--compress"), s(c.as_str())]);
                }
                if opts.ignore_rootfs {
                    v.push(s("--ignore-rootfs"));
                }
            }
            Carry::Image(image) => v.extend([s("--create-image"), s(image)]),
        }
    }
    v.push(s(name));
    v
}

/// `podman container restore`: `NAME` in place, `--import FILE` (under `--name` when
/// given), or from a checkpoint image.
pub fn podman_restore(
    name: &str,
    opts: &OciOptions,
    carry: Carry,
    new_name: Option<&str>,
) -> Vec<String> {
    let mut v = vec![s("container"), s("restore"), s("--print-stats")];
    criu_flags(&mut v, opts);
    if opts.keep {
        v.push(s("--keep"));
    }
    if let Some(n) = new_name {
        v.extend([s("--name"), s(n)]);
    }
    match carry {
        Carry::InPlace => v.push(s(name)),
        Carry::Export(file) => {
            v.extend([s("--import"), p(file)]);
            if opts.ignore_rootfs {
                v.push(s("--ignore-rootfs"));
            }
        }
        Carry::Image(image) => v.push(s(image)),
    }
    v
}

fn criu_flags(v: &mut Vec<String>, opts: &OciOptions) {
    if opts.tcp_established {
        v.push(s("--tcp-established"));
    }
    if opts.file_locks {
        v.push(s("--file-locks"));
    }
}

/// `podman inspect`: the container's state and its init's host pid, one line.
pub fn podman_inspect(name: &str) -> Vec<String> {
    vec![
        s("inspect"),
        s("--type"),
        s("container"),
        s("--format"),
        s("{{.State.Status}} {{.State.Pid}}"),
        s(name),
    ]
}

/// `podman rm -f -t 0 NAME`.
pub fn podman_rm(name: &str) -> Vec<String> {
    vec![s("rm"), s("-f"), s("-t"), s("0"), s(name)]
}

/// `runc`/`crun run -d`: the bundle's container started detached.
pub fn runtime_run(name: &str, bundle: &Path, pid_file: &Path) -> Vec<String> {
    vec![
        s("run"),
        s("-d"),
        s("--bundle"),
        p(bundle),
        s("--pid-file"),
        p(pid_file),
        s(name),
    ]
}

/// `runc`/`crun checkpoint` into `images` (criu's work files and log beside them).
pub fn runtime_checkpoint(name: &str, opts: &OciOptions, images: &Path, how: Dump) -> Vec<String> {
    let mut v = vec![
        s("checkpoint"),
        s("--image-path"),
        p(images),
        s("--work-path"),
        p(images),
    ];
    match how {
        Dump::Stop => {}
        Dump::LeaveRunning => v.push(s("--leave-running")),
        Dump::PreDump => v.push(s("--pre-dump")),
        Dump::AfterPreDump(parent) => v.extend([s("--parent-path"), s(parent)]),
    }
    criu_flags(&mut v, opts);
    v.push(s(name));
    v
}

/// `runc`/`crun restore -d` from `images`, the container made again from `bundle`.
pub fn runtime_restore(
    name: &str,
    opts: &OciOptions,
    bundle: &Path,
    images: &Path,
    pid_file: &Path,
) -> Vec<String> {
    let mut v = vec![
        s("restore"),
        s("-d"),
        s("--bundle"),
        p(bundle),
        s("--image-path"),
        p(images),
        s("--work-path"),
        p(images),
        s("--pid-file"),
        p(pid_file),
    ];
    criu_flags(&mut v, opts);
    v.push(s(name));
    v
}

/// `runc`/`crun state NAME` (JSON with `status` and `pid`).
pub fn runtime_state(name: &str) -> Vec<String> {
    vec![s("state"), s(name)]
}

/// `runc`/`crun delete -f NAME`.
pub fn runtime_delete(name: &str) -> Vec<String> {
    vec![s("delete"), s("-f"), s(name)]
}

/// The program of `backend`'s commands.
pub fn program(backend: Backend) -> &'static str {
    match backend {
        Backend::Runc => "runc",
        Backend::Crun => "crun",
        _ => "podman",
    }
}

/// What the bundle's `config.json` says.
pub struct BundleSpec<'a> {
    pub hostname: &'a str,
    pub command: &'a [String],
    pub binds: &'a [Bind<'a>],
}

/// The bundle's `config.json` (OCI runtime spec 1.0): the skeleton root in `rootfs`, the
/// launcher as its process, pid, mount, ipc, uts and network namespaces of its own (only
/// `lo`), podman's default capabilities and the binds.
pub fn bundle_config(spec: &BundleSpec) -> Value {
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc"}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts",
               "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
               "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
               "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs",
               "options": ["nosuid", "noexec", "nodev", "ro"]}),
        json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "nodev", "mode=1777"]}),
    ];
    for b in spec.binds {
        let mut o = vec!["bind", "nosuid"];
        o.push(if b.read_only { "ro" } else { "rw" });
        mounts.push(
            json!({"destination": p(b.path), "type": "bind", "source": p(b.path),
                           "options": o}),
        );
    }
    let caps: Vec<&str> = CAPABILITIES.to_vec();
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": spec.command,
            "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root"],
            "cwd": "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": false},
        "hostname": spec.hostname,
        "mounts": mounts,
        "linux": {
            "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"},
                           {"type": "uts"}, {"type": "mount"}],
            "maskedPaths": MASKED_FILES[..3].iter().copied().chain(["/sys/firmware"]).collect::<Vec<_>>(),
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                              "/proc/sysrq-trigger"]
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::scenario::Compression;
    use std::path::PathBuf;

    #[test]
    fn podman_lines_carry_each_option() {
        let work = PathBuf::from("/tmp/crtest/x");
        let binds = [
            Bind {
                path: Path::new("/usr"),
                read_only: true,
            },
            Bind {
                path: &work,
                read_only: false,
            },
        ];
        let opts = OciOptions {
            export: Some(Compression::Zstd),
            ignore_rootfs: true,
            tcp_established: true,
            keep: true,
            init: true,
            ..OciOptions::default()
        };
        let cmd = ["/bin/sh".to_string(), "/tmp/crtest/x/oci-launch".into()];
        let file = work.join("checkpoint-1.tar.zst");
        insta::assert_snapshot!(
            [
                podman_run("c", OciRuntime::Crun, &opts, &binds, &cmd),
                podman_checkpoint("c", &opts, Dump::Stop, Carry::Export(&file)),
                podman_checkpoint("c", &opts, Dump::PreDump, Carry::InPlace),
                podman_checkpoint("c", &opts, Dump::AfterPreDump("x"), Carry::Image("i")),
                podman_restore("c", &opts, Carry::Export(&file), Some("c-copy")),
                podman_restore("c", &OciOptions::default(), Carry::InPlace, None),
                runtime_checkpoint("c", &opts, &work.join("images-1"), Dump::AfterPreDump("../pre-1")),
                runtime_restore("c", &opts, Path::new("/run/b"), &work.join("images-1"), Path::new("/run/b/pid")),
            ]
            .iter()
            .map(|v| v.join(" "))
            .collect::<Vec<_>>()
            .join("\n"),
            @r"
        run -d --name c --runtime crun --network none --init -v /usr:/usr:ro,bind -v /tmp/crtest/x:/tmp/crtest/x:rw,bind localhost/crtest-oci-root:1 /bin/sh /tmp/crtest/x/oci-launch
        container checkpoint --print-stats --tcp-established --keep --export /tmp/crtest/x/checkpoint-1.tar.zst --compress zstd --ignore-rootfs c
        container checkpoint --print-stats --pre-checkpoint c
        container checkpoint --print-stats --with-previous --tcp-established --keep --create-image i c
        container restore --print-stats --tcp-established --keep --name c-copy --import /tmp/crtest/x/checkpoint-1.tar.zst --ignore-rootfs
        container restore --print-stats c
        checkpoint --image-path /tmp/crtest/x/images-1 --work-path /tmp/crtest/x/images-1 --parent-path ../pre-1 --tcp-established c
        restore -d --bundle /run/b --image-path /tmp/crtest/x/images-1 --work-path /tmp/crtest/x/images-1 --pid-file /run/b/pid --tcp-established c
        "
        );
    }

    #[test]
    fn the_bundle_config_names_the_binds() {
        let binds = [Bind {
            path: Path::new("/usr"),
            read_only: true,
        }];
        let cmd = ["/bin/sh".to_string(), "/w/oci-launch".into()];
        let v = bundle_config(&BundleSpec {
            hostname: "c",
            command: &cmd,
            binds: &binds,
        });
        assert_eq!(v["process"]["args"][1], "/w/oci-launch");
        let usr = v["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["destination"] == "/usr")
            .unwrap();
        assert_eq!(usr["options"], json!(["bind", "nosuid", "ro"]));
        assert_eq!(v["linux"]["namespaces"].as_array().unwrap().len(), 5);
    }
}
