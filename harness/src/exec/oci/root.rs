//! The containers' root: a skeleton (the directories, the merged-/usr links, the guest's
//! `passwd` and `group`) over which the guest's `/usr` is bound read-only. podman gets it
//! as an image, `podman import`ed from a tar once per boot; runc and crun alone get it as
//! the `rootfs/` of a bundle with its `config.json`. Which runtimes can checkpoint is
//! probed here too (a crun built without CRIU cannot).

use super::argv::{self, Bind, BundleSpec, BASE_IMAGE, ROOT_DIRS, ROOT_LINKS};
use super::output;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

/// Where the backend keeps its bundles and the skeleton's tar.
pub(super) const OCI_DIR: &str = "/run/crtest-oci";
/// Guest files copied into the skeleton's `/etc`.
const ETC_FILES: &[&str] = &["passwd", "group"];

#[derive(Debug, thiserror::Error)]
pub enum RootError {
    #[error("cannot {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("`{command}` failed (status {status}): {line}")]
    Tool {
        command: String,
        status: i32,
        line: String,
    },
    #[error("cannot run `{command}`: {message}")]
    Start { command: String, message: String },
    #[error("cannot make the container image {image}: {message}")]
    Image {
        image: &'static str,
        message: String,
    },
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> RootError + 'a {
    move |source| RootError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Makes the skeleton root in `dir`.
pub(super) fn skeleton(dir: &Path) -> Result<(), RootError> {
    for d in ROOT_DIRS {
        let p = dir.join(d);
        std::fs::create_dir_all(&p).map_err(io("create", &p))?;
    }
    for (link, to) in ROOT_LINKS {
        let p = dir.join(link);
        if p.symlink_metadata().is_err() {
            std::os::unix::fs::symlink(to, &p).map_err(io("create the link", &p))?;
        }
    }
    for f in ETC_FILES {
        let (from, to) = (Path::new("/etc").join(f), dir.join("etc").join(f));
        if from.exists() {
            std::fs::copy(&from, &to).map_err(io("copy to", &to))?;
        }
    }
    Ok(())
}

fn run_tool(program: &str, args: &[String], limit: Duration) -> Result<(), RootError> {
    let line = crtest_vm::command::command_line(program, args);
    match super::tools::quiet(program, args, "runc", limit) {
        None => Err(RootError::Start {
            command: line,
            message: "not found or did not start".into(),
        }),
        Some(r) if r.ok() => Ok(()),
        Some(r) => Err(RootError::Tool {
            command: r.command.clone(),
            status: r.status,
            line: output::first_error(&r.output)
                .or_else(|| r.tail(1).pop())
                .unwrap_or_default(),
        }),
    }
}

/// The base image in podman's storage: imported once per boot (`podman image exists`
/// first: a saved guest may have it already). The error is kept for the boot's later
/// scenarios.
pub(super) fn base_image() -> Result<(), RootError> {
    static DONE: Mutex<Option<Result<(), String>>> = Mutex::new(None);
    let mut guard = DONE.lock().unwrap_or_else(|e| e.into_inner());
    guard
        .get_or_insert_with(|| {
            let exists = ["image".to_string(), "exists".into(), BASE_IMAGE.into()];
            if super::tools::quiet("podman", &exists, "runc", Duration::from_secs(60))
                .is_some_and(|r| r.ok())
            {
                return Ok(());
            }
            import().map_err(|e| e.to_string())
        })
        .clone()
        .map_err(|message| RootError::Image {
            image: BASE_IMAGE,
            message,
        })
}

fn import() -> Result<(), RootError> {
    let dir = Path::new(OCI_DIR).join("base-root");
    let tar = Path::new(OCI_DIR).join("base-root.tar");
    let _ = std::fs::remove_dir_all(&dir);
    skeleton(&dir)?;
    let s = |v: &str| v.to_string();
    run_tool(
        "tar",
        &[
            s("-C"),
            dir.display().to_string(),
            s("-cf"),
            tar.display().to_string(),
            s("."),
        ],
        Duration::from_secs(60),
    )?;
    run_tool(
        "podman",
        &[s("import"), tar.display().to_string(), s(BASE_IMAGE)],
        Duration::from_secs(120),
    )?;
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(&tar);
    Ok(())
}

/// Writes the bundle of a runtime run alone: `rootfs/` and `config.json`.
pub(super) fn bundle(dir: &Path, spec: &BundleSpec) -> Result<(), RootError> {
    let _ = std::fs::remove_dir_all(dir);
    skeleton(&dir.join("rootfs"))?;
    let config = dir.join("config.json");
    let text = serde_json::to_string_pretty(&argv::bundle_config(spec)).expect("a JSON value");
    std::fs::write(&config, text).map_err(io("write", &config))
}

/// Why `runtime` cannot checkpoint in this guest (a crun built without CRIU: its
/// `--version` lists no `+CRIU`); `None` when it can, or cannot be told. Probed once.
pub(super) fn cannot_checkpoint(runtime: &str) -> Option<String> {
    static SEEN: Mutex<Vec<(String, Option<String>)>> = Mutex::new(Vec::new());
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, why)) = seen.iter().find(|(r, _)| r == runtime) {
        return why.clone();
    }
    let why = (runtime == "crun")
        .then(|| {
            super::tools::quiet(
                "crun",
                &["--version".into()],
                "crun",
                Duration::from_secs(30),
            )
        })
        .flatten()
        .filter(|r| r.ok() && !output::crun_has_criu(&r.output))
        .map(|r| {
            format!(
                "crun {} is built without CRIU (`crun --version` lists no +CRIU): it cannot \
                 checkpoint",
                output::version_of(&r.output).unwrap_or_else(|| "(version unknown)".into())
            )
        });
    seen.push((runtime.to_string(), why.clone()));
    why
}

/// The binds every container gets: the guest's `/usr` and `/etc/alternatives` read-only
/// (Debian's `vi`, `Xvnc`, `x-terminal-emulator` are links through it), the workload
/// binaries and the working directory at their guest paths.
pub(super) fn binds<'a>(bin_dir: &'a Path, work: &'a Path) -> [Bind<'a>; 4] {
    [
        Bind {
            path: Path::new("/usr"),
            read_only: true,
        },
        Bind {
            path: Path::new("/etc/alternatives"),
            read_only: true,
        },
        Bind {
            path: bin_dir,
            read_only: true,
        },
        Bind {
            path: work,
            read_only: false,
        },
    ]
}
