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
