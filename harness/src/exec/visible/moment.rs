//! Reading the tree inside criu, at its own moments: criu runs an action script
//! (`--action-script`) at each stage of a dump and a restore, and waits for it.
//!
//! - `post-dump`: everything is dumped, the tree is still seized (the parasite gone), so it
//!   shows what the images hold; the "before" side.
//! - `pre-resume`: the tree is restored and stopped by criu on its return from
//!   `rt_sigreturn` (registers and signal mask back), the restorer unmapped; it has not run a
//!   single instruction of its own yet; the "after" side.
//!
//! The script is the agent's own binary ([`AGENT_BINARY`]): criu starts it with
//! `CRTOOLS_SCRIPT_ACTION` and `CRTOOLS_INIT_PID` (the root's pid) in its environment, and the
//! agent then reads the tree ([`action_script_main`]) and writes the side, as JSON, to
//! `$CRTEST_VISIBLE_DIR/<action>.json`. It always exits 0: after a `post-dump` script that
//! fails, criu resumes the tree instead of killing it, which would change the C/R under test.
//! criu run by another tool (`lxc-checkpoint`) reads the option from the file named by
//! `CRIU_CONFIG_FILE`, which the tool passes on in the environment.

use crate::exec::visible::{capture, freeze, Side};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The agent's binary, beside the workloads (`ExecConfig::bin_dir`).
pub const AGENT_BINARY: &str = "crtest-agent";
/// The folder the script writes its sides into (set by the executor on criu's command).
pub const DIR_ENV: &str = "CRTEST_VISIBLE_DIR";
/// A cgroup the script freezes at `post-dump`, after its read (a dump that leaves the tree
/// running: the tree stops as criu lets it go; see `freeze`).
pub const FREEZE_ENV: &str = "CRTEST_FREEZE_CGROUP";
/// What criu sets for an action script.
const ACTION_ENV: &str = "CRTOOLS_SCRIPT_ACTION";
const ROOT_ENV: &str = "CRTOOLS_INIT_PID";
/// criu's own configuration file variable (read by every criu, whoever starts it).
pub const CRIU_CONFIG_ENV: &str = "CRIU_CONFIG_FILE";
/// Largest side file read back (a tree of 512 processes with many mappings).
const MAX_SIDE_FILE: u64 = 64 << 20;

/// A moment at which the tree is read inside criu.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moment {
    /// `post-dump`: dumped, still seized.
    Dumped,
    /// `pre-resume`: restored, not yet running.
    Restored,
}

impl Moment {
    /// criu's name of the action.
    pub fn action(self) -> &'static str {
        match self {
            Moment::Dumped => "post-dump",
            Moment::Restored => "pre-resume",
        }
    }

    /// How a side read at this moment is described in the report.
    pub fn describe(self) -> &'static str {
        match self {
            Moment::Dumped => "frozen, at criu's post-dump (seized, as the images hold it)",
            Moment::Restored => "frozen, at criu's pre-resume (restored, before it runs again)",
        }
    }

    fn of_action(action: &str) -> Option<Moment> {
        [Moment::Dumped, Moment::Restored]
            .into_iter()
            .find(|m| m.action() == action)
    }
}

/// Why a side read inside criu is not there.
#[derive(Debug, thiserror::Error)]
pub enum MomentError {
    #[error("criu did not run the action script at {action} (no {path})")]
    NotRun { action: &'static str, path: PathBuf },
    #[error("cannot read {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a side the action script writes")]
    Format {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("the action script could not read the tree at {action}: {why}")]
    Read { action: &'static str, why: String },
}

/// A side as the script writes it (JSON has no tuple keys).
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SideFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// Why the cgroup named by [`FREEZE_ENV`] could not be frozen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    freeze_error: Option<String>,
    #[serde(default)]
    read: String,
    #[serde(default)]
    processes: usize,
    #[serde(default)]
    items: Vec<(String, String, String)>,
    #[serde(default)]
    normalised: BTreeMap<String, usize>,
}

impl From<&Side> for SideFile {
    fn from(s: &Side) -> SideFile {
        SideFile {
            error: None,
            freeze_error: None,
            read: s.read.clone(),
            processes: s.processes,
            items: s
                .items
                .iter()
                .map(|((w, k), v)| (w.clone(), k.clone(), v.clone()))
                .collect(),
            normalised: s.normalised.clone(),
        }
    }
}

/// The reads of one dump or restore inside criu: the folder the script writes to.
#[derive(Debug, Clone)]
pub struct Reads {
    dir: PathBuf,
    script: PathBuf,
    /// The cgroup the script freezes at `post-dump`.
    freeze: Option<PathBuf>,
}

impl Reads {
    /// Reads into `dir` (made now) by the agent binary `script`; `None` when there is no
    /// such binary (then the sides are read while the tree runs).
    pub fn new(dir: PathBuf, script: PathBuf) -> Option<Reads> {
        if !script.is_file() {
            return None;
        }
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).ok()?;
        Some(Reads {
            dir,
            script,
            freeze: None,
        })
    }

    /// The script also freezes the cgroup at `path` at `post-dump`, after its read.
    pub fn freezing(mut self, path: PathBuf) -> Reads {
        self.freeze = Some(path);
        self
    }

    /// criu's options that run the script.
    pub fn criu_args(&self) -> [String; 2] {
        ["--action-script".into(), self.script.display().to_string()]
    }

    /// The environment criu passes on to the script.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = vec![(DIR_ENV.into(), self.dir.display().to_string())];
        if let Some(cg) = &self.freeze {
            env.push((FREEZE_ENV.into(), cg.display().to_string()));
        }
        env
    }

    /// The environment for a tool that runs criu itself: the script through criu's
    /// configuration file (written now into the folder).
    pub fn env_through_config(&self) -> std::io::Result<Vec<(String, String)>> {
        let conf = self.dir.join("criu.conf");
        std::fs::write(&conf, config_text(&self.script))?;
        let mut env = self.env();
        env.push((CRIU_CONFIG_ENV.into(), conf.display().to_string()));
        Ok(env)
    }

    /// The side the script read at `moment`.
    pub fn take(&self, moment: Moment) -> Result<Side, MomentError> {
        let path = self.dir.join(format!("{}.json", moment.action()));
        let action = moment.action();
        let mut text = String::new();
        match std::fs::File::open(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(MomentError::NotRun { action, path })
            }
            Err(source) => return Err(MomentError::Io { path, source }),
            Ok(f) => f
                .take(MAX_SIDE_FILE)
                .read_to_string(&mut text)
                .map_err(|source| MomentError::Io {
                    path: path.clone(),
                    source,
                })?,
        };
        let file: SideFile = serde_json::from_str(&text).map_err(|source| MomentError::Format {
            path: path.clone(),
            source,
        })?;
        let _ = std::fs::remove_file(&path);
        side_of(file, action)
    }
}

/// A side as JSON (a migration's source hands its "before" side to the target so).
pub fn side_to_json(side: &Side) -> serde_json::Value {
    serde_json::to_value(SideFile::from(side)).unwrap_or_default()
}

/// The side of [`side_to_json`]'s JSON; `None` when it is not one.
pub fn side_from_json(v: serde_json::Value) -> Option<Side> {
    let file: SideFile = serde_json::from_value(v).ok()?;
    side_of(file, "post-dump").ok()
}

/// criu's configuration file naming `script` as an action script.
pub fn config_text(script: &Path) -> String {
    format!("action-script {}\n", script.display())
}

fn side_of(file: SideFile, action: &'static str) -> Result<Side, MomentError> {
    if let Some(why) = file.error {
        return Err(MomentError::Read { action, why });
    }
    if let Some(e) = file.freeze_error {
        let why = format!("read, but the tree's cgroup could not be frozen: {e}");
        return Err(MomentError::Read { action, why });
    }
    Ok(Side {
        items: file
            .items
            .into_iter()
            .map(|(w, k, v)| ((w, k), v))
            .collect(),
        processes: file.processes,
        unstable: Default::default(),
        normalised: file.normalised,
        read: file.read,
    })
}

/// When this process was started by criu as the action script of a run that reads the tree
/// (both variables set): does what the action asks and returns the exit status (always 0).
/// `None` otherwise: the caller goes on as itself.
pub fn action_script_main() -> Option<i32> {
    let action = std::env::var(ACTION_ENV).ok()?;
    let dir = PathBuf::from(std::env::var_os(DIR_ENV)?);
    if std::process::id() == 1 {
        return None;
    }
    if let Some(moment) = Moment::of_action(&action) {
        let root = std::env::var(ROOT_ENV)
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok())
            .filter(|p| *p > 0);
        let file = match root {
            None => SideFile::error(format!("criu gave no {ROOT_ENV}")),
            Some(pid) => match capture::frozen(Pid::from_raw(pid), moment.describe()) {
                Ok(side) => SideFile::from(&side),
                Err(e) => SideFile::error(e.to_string()),
            },
        };
        let mut file = file;
        if let Some(cg) = std::env::var_os(FREEZE_ENV).filter(|_| moment == Moment::Dumped) {
            if let Err(e) = freeze::freeze_now(Path::new(&cg)) {
                file.freeze_error = Some(e.to_string());
            }
        }
        write_atomically(&dir.join(format!("{action}.json")), &file);
    }
    Some(0)
}

impl SideFile {
    fn error(why: String) -> SideFile {
        SideFile {
            error: Some(why),
            freeze_error: None,
            read: String::new(),
            processes: 0,
            items: Vec::new(),
            normalised: BTreeMap::new(),
        }
    }
}

/// Writes `file` as `path` whole or not at all (a part file renamed).
fn write_atomically(path: &Path, file: &SideFile) {
    let part = path.with_extension("json.part");
    let Ok(text) = serde_json::to_vec(file) else {
        return;
    };
    if std::fs::write(&part, text).is_ok() {
        let _ = std::fs::rename(&part, path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side() -> Side {
        let mut s = Side {
            processes: 1,
            read: Moment::Dumped.describe().into(),
            ..Side::default()
        };
        s.items
            .insert(("pid 1".into(), "fds.3.pos".into()), "4096".into());
        s.normalised.insert("pipe identities renamed".into(), 2);
        s
    }

    #[test]
    fn a_side_goes_through_its_file_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("agent");
        std::fs::write(&script, b"").unwrap();
        let reads = Reads::new(dir.path().join("v"), script).unwrap();
        write_atomically(&reads.dir.join("post-dump.json"), &SideFile::from(&side()));
        assert_eq!(reads.take(Moment::Dumped).unwrap(), side());
        // Taken once: a later dump does not see it again.
        let e = reads.take(Moment::Dumped).unwrap_err();
        assert!(
            matches!(
                e,
                MomentError::NotRun {
                    action: "post-dump",
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn what_the_script_could_not_read_is_said() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("agent");
        std::fs::write(&script, b"").unwrap();
        let reads = Reads::new(dir.path().join("v"), script).unwrap();
        write_atomically(
            &reads.dir.join("pre-resume.json"),
            &SideFile::error("process 77 is gone".into()),
        );
        let e = reads.take(Moment::Restored).unwrap_err().to_string();
        assert_eq!(
            e,
            "the action script could not read the tree at pre-resume: process 77 is gone"
        );
        std::fs::write(reads.dir.join("pre-resume.json"), b"{\"items\": 3}").unwrap();
        let e = reads.take(Moment::Restored).unwrap_err();
        assert!(matches!(e, MomentError::Format { .. }), "{e}");
    }

    #[test]
    fn no_agent_binary_no_reads_inside_criu() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Reads::new(dir.path().join("v"), dir.path().join("missing")).is_none());
    }

    #[test]
    fn criu_is_told_of_the_script_on_its_command_line_or_in_its_config() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("crtest-agent");
        std::fs::write(&script, b"").unwrap();
        let reads = Reads::new(dir.path().join("v"), script.clone()).unwrap();
        assert_eq!(
            reads.criu_args(),
            ["--action-script".to_string(), script.display().to_string()]
        );
        let env = reads.env_through_config().unwrap();
        let conf = &env.iter().find(|(k, _)| k == CRIU_CONFIG_ENV).unwrap().1;
        assert_eq!(
            std::fs::read_to_string(conf).unwrap(),
            format!("action-script {}\n", script.display())
        );
        assert!(env.iter().any(|(k, _)| k == DIR_ENV));
    }

    #[test]
    fn only_criu_s_two_moments_are_read() {
        assert_eq!(Moment::of_action("post-dump"), Some(Moment::Dumped));
        assert_eq!(Moment::of_action("pre-resume"), Some(Moment::Restored));
        for other in ["pre-dump", "post-restore", "network-lock", "post-resume"] {
            assert_eq!(Moment::of_action(other), None);
        }
    }
}
