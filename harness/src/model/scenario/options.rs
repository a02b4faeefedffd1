//! The options of a backend or a viewer a scenario may give: `[lxc]` (the container) and
//! `[vnc]` (the desktop the harness's VNC client checks), and which backend it goes through.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// A scenario whose workload shows a desktop on an RFB (VNC) server: the harness's own VNC
/// client types into it and takes screenshots before the checkpoint, after the restore
/// (compared with the first) and after typing more (which must change the screen).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct VncOptions {
    /// The RFB server's UNIX socket, relative to the working directory.
    #[serde(default = "default_vnc_socket")]
    pub socket: PathBuf,
    /// Keys typed once the desktop is up, before the first screenshot (`{Escape}`,
    /// `{Return}`, ... see [`crate::vnc::rfb::parse_keys`]).
    #[serde(default)]
    pub type_before: String,
    /// Keys typed after the restore, before the last screenshot and the verify step.
    #[serde(default)]
    pub type_after: String,
    /// A file of the working directory that must then hold `expect-text`.
    #[serde(default)]
    pub expect_file: Option<PathBuf>,
    #[serde(default)]
    pub expect_text: Option<String>,
    /// Pixels the restored screen may differ in from the checkpointed one (a cursor blink).
    #[serde(default = "default_max_diff")]
    pub max_diff_pixels: u64,
    /// Where the pointer goes before typing (focus follows it under twm); default: the
    /// middle of the screen.
    #[serde(default)]
    pub pointer: Option<[u16; 2]>,
}

fn default_vnc_socket() -> PathBuf {
    PathBuf::from("vnc.sock")
}

fn default_max_diff() -> u64 {
    200
}

/// The C/R tool a scenario goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// `criu dump` / `criu restore` on the workload's process tree.
    #[default]
    Criu,
    /// The workload in an LXC container; `lxc-checkpoint` (criu underneath).
    Lxc,
    /// The workload in a podman container; `podman container checkpoint` / `restore`, with
    /// the OCI runtime of `[oci] runtime` (runc or crun) driving criu.
    Podman,
    /// The workload in an OCI bundle run by `runc` alone; `runc checkpoint` / `restore`
    /// (criu through its RPC, as go-criu drives it).
    Runc,
    /// The same with `crun` (criu through libcriu).
    Crun,
}

impl Backend {
    /// Whether the backend is an OCI engine or runtime (`[oci]` applies).
    pub fn is_oci(self) -> bool {
        matches!(self, Backend::Podman | Backend::Runc | Backend::Crun)
    }
}

/// The OCI runtime under podman, or run alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OciRuntime {
    /// runc: criu through its RPC (go-criu).
    #[default]
    Runc,
    /// crun: criu through libcriu (`libcriu.so.2`); Debian's crun has it from trixie on.
    Crun,
}

impl OciRuntime {
    pub fn as_str(self) -> &'static str {
        match self {
            OciRuntime::Runc => "runc",
            OciRuntime::Crun => "crun",
        }
    }
}

/// How `podman container checkpoint --export` compresses the archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }

    /// The archive's file name ending.
    pub fn extension(self) -> &'static str {
        match self {
            Compression::None => "tar",
            Compression::Gzip => "tar.gz",
            Compression::Zstd => "tar.zst",
        }
    }
}

/// How the container of a `podman`, `runc` or `crun` scenario is run, checkpointed and
/// restored (all off by default: `podman container checkpoint NAME`, `restore NAME`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct OciOptions {
    /// podman only: the OCI runtime it drives (default runc).
    #[serde(default)]
    pub runtime: Option<OciRuntime>,
    /// podman only: `--export FILE --compress C` at the checkpoint; the container is then
    /// removed and `restore --import FILE` brings it back.
    #[serde(default)]
    pub export: Option<Compression>,
    /// podman only, with `export`: the restore makes a copy under a new `--name`; the
    /// checkpointed container stays (stopped) beside it.
    #[serde(default)]
    pub new_name: bool,
    /// podman only, with `export`: `--ignore-rootfs` at export and import (the container's
    /// root changes are not carried).
    #[serde(default)]
    pub ignore_rootfs: bool,
    /// podman only: `--create-image IMAGE` at the checkpoint; the container is removed and
    /// restored from that image.
    #[serde(default)]
    pub create_image: bool,
    /// `--keep`: criu's images and logs stay (podman; runc and crun keep theirs anyway), and
    /// are checked to be there.
    #[serde(default)]
    pub keep: bool,
    /// `--tcp-established` at the checkpoint and the restore.
    #[serde(default)]
    pub tcp_established: bool,
    /// `--file-locks` at the checkpoint and the restore.
    #[serde(default)]
    pub file_locks: bool,
    /// podman only: `--init`, catatonit as the container's PID 1 above the workload.
    #[serde(default)]
    pub init: bool,
}

impl OciOptions {
    /// The runtime that drives criu for `backend`.
    pub fn runtime_of(&self, backend: Backend) -> OciRuntime {
        match backend {
            Backend::Crun => OciRuntime::Crun,
            Backend::Runc => OciRuntime::Runc,
            _ => self.runtime.unwrap_or_default(),
        }
    }

    /// The first option that `backend` does not have, with why; `None` when all fit.
    pub fn misfit(&self, backend: Backend) -> Option<(&'static str, &'static str)> {
        let podman_only = [
            ("oci.runtime", self.runtime.is_some()),
            ("oci.export", self.export.is_some()),
            ("oci.new-name", self.new_name),
            ("oci.ignore-rootfs", self.ignore_rootfs),
            ("oci.create-image", self.create_image),
            ("oci.init", self.init),
        ];
        if backend != Backend::Podman {
            if let Some((key, _)) = podman_only.iter().find(|(_, on)| *on) {
                return Some((key, "is podman's: runc and crun alone have no such option"));
            }
        }
        if (self.new_name || self.ignore_rootfs) && self.export.is_none() {
            return Some((
                "oci.export",
                "`new-name` and `ignore-rootfs` go with `export`",
            ));
        }
        if self.create_image && self.export.is_some() {
            return Some((
                "oci.create-image",
                "give `export` or `create-image`, not both",
            ));
        }
        None
    }
}

/// How the container of an `lxc` scenario is set up.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LxcOptions {
    /// Which tool starts the container (default `start`).
    #[serde(default)]
    pub mode: LxcMode,
    /// With `mode = "start"`: what the container's PID 1 is (default `lxc-init`).
    #[serde(default)]
    pub init: Option<LxcInit>,
    /// The container's network (default `empty`).
    #[serde(default)]
    pub network: LxcNetwork,
    /// After the restore, freeze the container at once and check it stays still, then
    /// unfreeze it (the wiki's `lxc-restart --pause` and `lxc-unfreeze`).
    #[serde(default)]
    pub pause_after_restore: bool,
}

impl LxcOptions {
    /// The container's PID 1: liblxc's own init with `execute`, else `init` (default lxc-init).
    pub fn pid1(&self) -> LxcInit {
        match self.mode {
            LxcMode::Execute => LxcInit::Liblxc,
            LxcMode::Start => self.init.unwrap_or(LxcInit::LxcInit),
        }
    }
}

/// Which tool starts an `lxc` scenario's container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LxcMode {
    /// `lxc-start -d`: the container runs `init` as its PID 1.
    #[default]
    Start,
    /// `lxc-execute` (the linux-cr wiki's application container): PID 1 is liblxc's own
    /// init, running in the forked `lxc-execute` process.
    Execute,
}

/// What runs as PID 1 of the container and starts the workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LxcInit {
    /// `init.lxc` from the lxc package, exec'd in the container: an application container.
    LxcInit,
    /// `busybox init`, starting the workload from `/etc/inittab`: a system container.
    Busybox,
    /// liblxc's built-in init (`mode = "execute"` only; not a value for `init`).
    #[serde(skip_deserializing)]
    Liblxc,
}

/// The network of an `lxc` scenario's container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LxcNetwork {
    /// A network namespace of its own holding only `lo` (the wiki's "no netns" container:
    /// it shares nothing it need not).
    #[default]
    Empty,
    /// A network namespace of its own with a veth pair whose host end is on `lxcbr0`.
    Veth,
}
