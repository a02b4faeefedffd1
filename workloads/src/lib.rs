//! Workload programs run inside the cr-tests guest, and the protocol they share.
//!
//! Each workload is one binary (`src/bin/`) whose `main` is a single call to
//! [`protocol::run_main`]; the logic lives here so it can be unit-tested.
//!
//! What the workloads share:
//!
//! - [`protocol`]: the `ready` / `progress` / `result` files and SIGTERM-means-verify.
//! - [`args`]: the `--name value` option parser the binaries use.
//! - [`steady`]: set up, announce ready, check a little every tick, check all on SIGTERM.
//! - [`check`]: collecting precise differences; byte patterns and their comparison.
//! - [`sys`], [`procfs`]: checked system calls and readers of `/proc`.
//! - [`family`]: helper processes answering the workload over a socketpair.
//!
//! The workloads, by group (the scenario tag of the same name; `README.md` has the
//! catalog with what each one checks):
//!
//! - files: `fileio1` ([`fileio`]), `counterloop` ([`counter`]), and in [`files`]
//!   `openflags`, `appendlog`, `bursty`, `unlinked`, `sharedfds`, `flocks`, `posixlocks`,
//!   `mmapfile`, `memfd`, `aio`, `rtc`, `fanotify`, `leases`, `ghostholes`.
//! - memory ([`memory`]): `bigmem`, `mprotect`, `cowmem`, `vdso`, `uffd`, `thp`.
//! - process: `ptree1` ([`ptree`]), and in [`process`] `zombies`, `threads`, `sessions`,
//!   `procattrs`, `seccomp`, `fpu`, `pidfd`, `stopped`, `creds`, `chroot`, `lsm`,
//!   `uprobes`.
//! - signals ([`signals`]): `sigpending`, `sighandlers`, `itimers`, `posixtimers`,
//!   `sleepers`.
//! - ipc ([`ipc`]): `pipes`, `fifo`, `unixstream`, `unixdgram`, `unixseqpacket`, `sysvshm`,
//!   `sysvsem`, `sysvmsg`, `posixshm`, `eventfd`, `epoll`, `inotify`, `signalfd`,
//!   `timerfd`, `futex`, `bpfmap`.
//! - net ([`net`]): `tcpconn`, `tcplisten`, `udp`, `netlink`, `packet`, `ipv6`, `tcphalf`,
//!   `rawsock`, `sockfilter`.
//! - tty ([`tty`]): `pty`.
//! - ns ([`ns`]): `pidns`, `utsns`, `ipcns`, `mntns`, `timens`.
//! - shell ([`shell`]): `bashpty`.
//! - desktop ([`desktop`]): `vncdesk`, the wiki's VNC desktop (Xvnc, twm, xterm, vi).

/// Every workload binary, by name. The harness accepts these in scenario files and ships
/// them in the guest; a new binary in `src/bin/` must be added here.
pub const ALL: &[&str] = &[
    "aio",
    "appendlog",
    "bashpty",
    "bigmem",
    "bpfmap",
    "bursty",
    "chroot",
    "counterloop",
    "cowmem",
    "creds",
    "epoll",
    "eventfd",
    "fanotify",
    "fifo",
    "fileio1",
    "flocks",
    "fpu",
    "futex",
    "ghostholes",
    "inotify",
    "ipcns",
    "ipv6",
    "itimers",
    "leases",
    "lsm",
    "memfd",
    "mmapfile",
    "mntns",
    "mprotect",
    "netlink",
    "openflags",
    "packet",
    "pidfd",
    "pidns",
    "pipes",
    "posixlocks",
    "posixshm",
    "posixtimers",
    "procattrs",
    "ptree1",
    "pty",
    "rawsock",
    "rtc",
    "seccomp",
    "sessions",
    "sharedfds",
    "sighandlers",
    "signalfd",
    "sigpending",
    "sleepers",
    "sockfilter",
    "stopped",
    "sysvmsg",
    "sysvsem",
    "sysvshm",
    "tcpconn",
    "tcphalf",
    "tcplisten",
    "thp",
    "threads",
    "timens",
    "timerfd",
    "udp",
    "uffd",
    "unixdgram",
    "unixseqpacket",
    "unixstream",
    "unlinked",
    "uprobes",
    "utsns",
    "vdso",
    "vncdesk",
    "zombies",
];

pub mod args;
pub mod check;
pub mod counter;
pub mod desktop;
pub mod family;
pub mod fileio;
pub mod files;
pub mod ipc;
pub mod memory;
pub mod net;
pub mod ns;
pub mod process;
pub mod procfs;
pub mod protocol;
pub mod ptree;
pub mod shell;
pub mod signals;
pub mod steady;
pub mod sys;
pub mod tty;
