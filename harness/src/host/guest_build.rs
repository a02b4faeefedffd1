//! The guest bundle's binaries: the agent and the workloads, linked statically so the agent
//! runs as PID 1 before any root is mounted and the workloads run in every userland.
//!
//! They are built from this workspace with cargo (a no-op when nothing changed), in the
//! host build's target directory with its target and flags (`.cargo/config.toml` links the
//! whole workspace statically): the dependencies the host build compiled are reused, not
//! compiled again. `CRTEST_GUEST_BIN` names a directory of prebuilt binaries instead.

use crate::model::scenario::KNOWN_WORKLOADS;
use std::path::{Path, PathBuf};

pub const AGENT: &str = crate::exec::visible::moment::AGENT_BINARY;
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
    #[error("guest binary {path} is not statically linked (it asks for {interp}): it cannot run as the guest's PID 1 nor in every userland")]
    Dynamic { path: PathBuf, interp: String },
}

/// The program interpreter an ELF file asks for (`PT_INTERP`), `None` for a static one (or
/// a file too short to say).
pub fn elf_interpreter(bytes: &[u8]) -> Option<String> {
    let u16_at = |o: usize| Some(u16::from_le_bytes(bytes.get(o..o + 2)?.try_into().ok()?));
    let u32_at = |o: usize| Some(u32::from_le_bytes(bytes.get(o..o + 4)?.try_into().ok()?));
    let u64_at = |o: usize| Some(u64::from_le_bytes(bytes.get(o..o + 8)?.try_into().ok()?));
    if bytes.get(..5)? != b"\x7fELF\x02" {
        return None;
    }
    let (phoff, phentsize, phnum) = (
        u64_at(0x20)? as usize,
        u16_at(0x36)? as usize,
        u16_at(0x38)?,
    );
    (0..phnum as usize).find_map(|i| {
        let ph = phoff.checked_add(i.checked_mul(phentsize)?)?;
        if u32_at(ph)? != 3 {
            return None;
        }
        let (off, size) = (u64_at(ph + 8)? as usize, u64_at(ph + 32)? as usize);
        let raw = bytes.get(off..off.checked_add(size)?)?;
        Some(
            String::from_utf8_lossy(raw)
                .trim_end_matches('\0')
                .to_string(),
        )
    })
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
        let target_dir = std::env::var_os("CARGO_TARGET_DIR")
            .filter(|d| !d.is_empty())
            .map_or_else(|| root.join("target"), PathBuf::from);
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
            // The flags of `.cargo/config.toml` (the host build's, so its artifacts are
            // reused), whatever the caller's environment says: these variables would
            // replace them and link dynamically.
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env_remove("CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS")
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
        let Ok(bytes) = std::fs::read(&path) else {
            return Err(GuestBuildError::Missing { path });
        };
        if let Some(interp) = elf_interpreter(&bytes) {
            return Err(GuestBuildError::Dynamic { path, interp });
        }
    }
    Ok(bins)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_static_binary_has_no_interpreter_and_a_dynamic_one_names_it() {
        // This test binary is linked as the guest's are (`.cargo/config.toml`).
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert_eq!(elf_interpreter(&me), None);
        let sh = std::fs::read("/bin/sh").unwrap();
        assert!(elf_interpreter(&sh).is_some_and(|i| i.contains("ld-linux")));
        for cut in [0, 4, 0x30, 0x40, 200] {
            assert_eq!(
                elf_interpreter(&sh[..cut.min(sh.len())]),
                None,
                "cut at {cut}"
            );
        }
    }
}
