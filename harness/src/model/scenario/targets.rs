//! What a scenario runs, as the model holds it: a workload of ours, a user's program (with
//! its readiness), an external test, a zdtm test (made by `crate::zdtm`, never read from a
//! file).

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// An external test: a command run in the guest to its end; exit status 0 = pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct External {
    /// The command line; a relative program path is looked up in the working directory.
    pub command: Vec<String>,
    /// Host files copied into the working directory (relative to the scenario file).
    #[serde(default)]
    pub files: Vec<PathBuf>,
    /// Guest files the command leaves behind (its tool logs), kept with the results and
    /// searched for the error line when it fails.
    #[serde(default)]
    pub collect: Vec<PathBuf>,
}

/// One of the project's workloads (`workloads/`), with its arguments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    pub name: String,
    pub args: Vec<String>,
}

/// A user's own program: started in the guest in a fresh working directory holding `files`;
/// after restore `check` runs there and its exit status decides the verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Program {
    /// The command line; a relative program path is looked up in the working directory.
    pub command: Vec<String>,
    /// Host files copied into the working directory (relative to the scenario file).
    #[serde(default)]
    pub files: Vec<PathBuf>,
    /// `file:NAME` (wait until NAME exists in the working directory) or `delay-ms:N`.
    #[serde(default = "default_ready")]
    pub ready: String,
    /// Run after restore in the working directory, with `CRTEST_PID` set; exit 0 = pass.
    pub check: Vec<String>,
}

fn default_ready() -> String {
    "delay-ms:1000".into()
}

/// Where the guest mounts the built zdtm `test/` folder (zdtm.py's working directory).
pub const ZDTM_ROOT: &str = "/zdtm-tree";

/// A zdtm test as the executor runs it: started as zdtm.py starts it (the Makefile's
/// `NAME.pid` rule, in the test's folder, with zdtm.py's environment), the tree to dump the
/// pid its pidfile names, judged by the last line of its `.out` after SIGTERM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ZdtmTest {
    /// `static/NAME` or `transition/NAME`.
    pub test: String,
    /// The start command, run in the test's folder.
    pub command: Vec<String>,
    /// The environment zdtm.py gives the test (`ZDTM_UID`, ... for a non-suid test).
    pub env: Vec<(String, String)>,
    /// Run `NAME.checkskip` first; when it exits non-zero, the test is skipped.
    pub checkskip: bool,
    /// Run `NAME.hook` at zdtm's stages (`--pre-dump`, `--pre-restore`, `--post-restore`,
    /// `--clean`).
    pub hook: bool,
    /// How long the test may take to start and to stop (zdtm's `timeout`, 30 s by default).
    pub wait_s: u64,
    /// Why the harness does not run it (a `.desc` key or value it does not support).
    pub unsupported: Option<String>,
    /// Run it with the tree's own `zdtm.py` instead (`--zdtm-runner zdtm.py`), to compare.
    #[serde(default)]
    pub via_zdtm_py: bool,
    /// The namespaces it runs in, as zdtm.py's flavors.
    #[serde(default)]
    pub flavor: ZdtmFlavor,
    /// Binaries the test runs inside its root (`deps` of its `.desc`: alternatives `a|b`),
    /// copied with their libraries into the root of the `ns` and `uns` flavors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deps: Vec<String>,
    /// The flags of its `.desc` (`nolazy`, `crfail`, ...), sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<String>,
}

/// zdtm.py's flavors: where a test's tree lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ZdtmFlavor {
    /// The host's namespaces (the guest's).
    #[default]
    H,
    /// Its own pid, mount, uts, net and ipc namespaces, in a root of its own.
    Ns,
    /// The same inside a user namespace (uids and gids mapped).
    Uns,
}

impl ZdtmFlavor {
    pub const ALL: [ZdtmFlavor; 3] = [ZdtmFlavor::H, ZdtmFlavor::Ns, ZdtmFlavor::Uns];

    /// zdtm.py's name of it (`h`, `ns`, `uns`).
    pub fn as_str(self) -> &'static str {
        match self {
            ZdtmFlavor::H => "h",
            ZdtmFlavor::Ns => "ns",
            ZdtmFlavor::Uns => "uns",
        }
    }

    /// The flavor zdtm.py names `name`.
    pub fn parse(name: &str) -> Option<ZdtmFlavor> {
        ZdtmFlavor::ALL.into_iter().find(|f| f.as_str() == name)
    }

    /// Whether the test makes namespaces of its own (and runs in a root of its own).
    pub fn namespaced(self) -> bool {
        self != ZdtmFlavor::H
    }
}

impl ZdtmTest {
    /// A test of the `h` flavor with nothing set but its name and command (for tests).
    #[cfg(test)]
    pub(crate) fn sample(test: &str, command: &[&str]) -> ZdtmTest {
        ZdtmTest {
            test: test.into(),
            command: command.iter().map(|c| c.to_string()).collect(),
            env: vec![],
            checkskip: false,
            hook: false,
            wait_s: 30,
            unsupported: None,
            via_zdtm_py: false,
            flavor: ZdtmFlavor::H,
            deps: vec![],
            flags: vec![],
        }
    }

    /// The test's folder in the guest.
    pub fn dir(&self) -> PathBuf {
        let set = self.test.split('/').next().unwrap_or("static");
        Path::new(ZDTM_ROOT).join("zdtm").join(set)
    }
    /// The test's own name (`NAME`).
    pub fn name(&self) -> &str {
        self.test.rsplit('/').next().unwrap_or(&self.test)
    }
    /// A file beside the test: `NAME.<ext>`.
    pub fn file(&self, ext: &str) -> PathBuf {
        self.dir().join(format!("{}.{ext}", self.name()))
    }
}

/// How a program signals readiness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadySpec {
    File(String),
    DelayMs(u64),
}

/// A `ready` that is neither `file:NAME` nor `delay-ms:N`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadySpecError {
    #[error("`{0}`: delay-ms needs a number")]
    NotANumber(String),
    #[error("`{0}`: use `file:NAME` or `delay-ms:N`")]
    Unknown(String),
}

/// Reads a program's `ready`: `file:NAME` (a name in the working directory) or `delay-ms:N`.
pub fn ready_spec(text: &str) -> Result<ReadySpec, ReadySpecError> {
    match text.split_once(':') {
        Some(("file", f)) if !f.is_empty() && !f.contains('/') => Ok(ReadySpec::File(f.into())),
        Some(("delay-ms", n)) => n
            .parse()
            .map(ReadySpec::DelayMs)
            .map_err(|_| ReadySpecError::NotANumber(text.to_string())),
        _ => Err(ReadySpecError::Unknown(text.to_string())),
    }
}
