//! The guest bundle's binaries: the agent and the workloads, linked statically so the agent
//! runs as PID 1 before any root is mounted and the workloads run in every userland.
//!
//! They are built from this workspace with cargo (a no-op when nothing changed), into their
//! own target directory so the host build is not disturbed. `CRTEST_GUEST_BIN` names a
//! directory of prebuilt binaries instead.

use crate::model::scenario::KNOWN_WORKLOADS;
use std::path::{Path, PathBuf};

pub const AGENT: &str = "crtest-agent";
const TARGET: &str = "x86_64-unknown-linux-gnu";

#[derive(Debug, thiserror::Error)]
pub enum GuestBuildError {
    #[error("cannot start `{command}`: {source} (is cargo installed and on PATH?)")]
    Start {
        command: String,
        source: std::io::Error,
    },
    #[error("`{command}` failed with status {status}:\n{tail}")]
    Failed {
        command: String,
        status: i32,
        tail: String,
    },
    #[error("guest binary {path} is missing after the build")]
    Missing { path: PathBuf },
}

/// The built binaries.
#[derive(Debug, Clone)]
pub struct GuestBinaries {
    pub dir: PathBuf,
}

impl GuestBinaries {
    pub fn agent(&self) -> PathBuf {
        self.dir.join(AGENT)
    }
    pub fn workloads(&self) -> Vec<PathBuf> {
        KNOWN_WORKLOADS.iter().map(|w| self.dir.join(w)).collect()
    }
}

/// The workspace this binary was built from.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("harness/ has a parent")
        .to_path_buf()
}

/// Builds (or finds) the static guest binaries.
pub fn build() -> Result<GuestBinaries, GuestBuildError> {
    let dir = if let Some(dir) = std::env::var_os("CRTEST_GUEST_BIN") {
        PathBuf::from(dir)
    } else {
        let root = workspace_root();
        let target_dir = root.join("target/guest");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut args: Vec<String> = [
            "build",
            "--release",
            "--quiet",
            "--target",
            TARGET,
            "--target-dir",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.push(target_dir.display().to_string());
        args.extend(
            [
                "-p",
                "crtest",
                "--bin",
                AGENT,
                "-p",
                "crtest-workloads",
                "--bins",
            ]
            .map(String::from),
        );
        let command = crtest_vm::command::command_line(&cargo, &args);
        let out = duct::cmd(&cargo, &args)
            .dir(&root)
            .env(
                "CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS",
                "-C target-feature=+crt-static",
            )
            .stdin_null()
            .stderr_to_stdout()
            .stdout_capture()
            .unchecked()
            .run()
            .map_err(|source| GuestBuildError::Start {
                command: command.clone(),
                source,
            })?;
        if !out.status.success() {
            let text = String::from_utf8_lossy(&out.stdout);
            return Err(GuestBuildError::Failed {
                command,
                status: out.status.code().unwrap_or(-1),
                tail: crtest_vm::command::tail_lines(&text, 30).join("\n"),
            });
        }
        target_dir.join(TARGET).join("release")
    };
    let bins = GuestBinaries { dir };
    for path in std::iter::once(bins.agent()).chain(bins.workloads()) {
        if !path.is_file() {
            return Err(GuestBuildError::Missing { path });
        }
    }
    Ok(bins)
}
