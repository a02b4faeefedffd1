//! `crtest matrix --profile NAME|FILE`: a nightly (or any recurring run) as one file of
//! parts, each kernels x userlands x criu with its scenarios, run as one matrix and sharded
//! as one. The format is documented in `profiles/README.md`.
//!
//! A part's cells that another part also has get both parts' scenarios: one cell, one
//! preparation, one set of guests.

use crate::host::catalog::{CatalogError, CatalogOptions};
use crate::host::cell_choice;
use crate::host::matrix::{self, MatrixError, MatrixOptions, PlannedCell};
use crate::model::migration::MoveMode;
use crate::model::scenario::{Mode, Scenario, ZdtmFlavor};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The criu axis entry meaning "the CRIU tree given with --zdtm, built for each userland".
pub const ZDTM_TREE: &str = "zdtm-tree";

/// Profile files larger than this are refused.
const MAX_BYTES: u64 = 1 << 20;

/// A profile as written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// What the profile is for.
    pub description: String,
    #[serde(rename = "part", default)]
    pub parts: Vec<Part>,
    #[serde(rename = "migrate", default)]
    pub migrations: Vec<Migrate>,
}

/// Migration pairs: every (source, target) pair of the cells of kernels x criu x cpus on
/// one userland, the same cell twice included (as `crtest migrate --matrix`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Migrate {
    pub name: String,
    pub kernels: Vec<String>,
    pub userland: String,
    /// As `migrate --criu` (default: the package).
    #[serde(default)]
    pub criu: Vec<String>,
    /// QEMU CPU models (default: QEMU's).
    #[serde(default)]
    pub cpus: Vec<String>,
    /// `images`, `page-server`, `pre-dump[=N]` or `lazy`.
    #[serde(default = "default_move_mode")]
    pub mode: String,
    /// The scenarios moved (default: those tagged `migrate`).
    #[serde(default)]
    pub scenarios: Vec<String>,
    #[serde(default)]
    pub tags: Vec<String>,
}

fn default_move_mode() -> String {
    "images".into()
}

/// One part: its cells and its scenarios.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Part {
    pub name: String,
    /// Kernels: Debian suites or paths (as `matrix --kernels`).
    pub kernels: Vec<String>,
    /// Guest userlands (Debian suites).
    pub userlands: Vec<String>,
    /// The criu of the cells (as `matrix --criu`; `zdtm-tree` is the --zdtm tree built).
    #[serde(default)]
    pub criu: Vec<String>,
    /// Scenarios by name (empty: by tags, else every scenario).
    #[serde(default)]
    pub scenarios: Vec<String>,
    /// Scenarios with one of these tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// The modes each scenario runs in (as `--modes`).
    #[serde(default)]
    pub modes: Vec<String>,
    /// zdtm's tests (of the --zdtm tree) in these flavors (`h`, `ns`, `uns`).
    #[serde(default)]
    pub zdtm_flavors: Vec<String>,
    /// zdtm's tests as a profile of the tree picks them (`ci`).
    #[serde(default)]
    pub zdtm_profile: Option<String>,
}

/// Why a profile could not be run.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error(
        "--profile `{0}`: no such profile (the repository's are under profiles/: {1}); \
         a path names a file"
    )]
    Unknown(String, String),
    #[error("--profile {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("--profile {}: {why}", path.display())]
    Invalid { path: PathBuf, why: String },
    #[error("--profile {}: part `{part}` runs zdtm's tests: give the CRIU tree, --zdtm TREE", path.display())]
    NeedsZdtm { path: PathBuf, part: String },
    #[error("--profile {}, part `{part}`", path.display())]
    Catalog {
        path: PathBuf,
        part: String,
        #[source]
        source: Box<CatalogError>,
    },
    #[error("--profile {}, migrate `{part}`: {why}", path.display())]
    Move {
        path: PathBuf,
        part: String,
        why: String,
    },
    #[error("--profile {}, part `{part}`", path.display())]
    Matrix {
        path: PathBuf,
        part: String,
        #[source]
        source: Box<MatrixError>,
    },
}

impl ProfileError {
    pub fn is_bad_input(&self) -> bool {
        match self {
            ProfileError::Read { .. } => false,
            ProfileError::Catalog { source, .. } => source.is_bad_input(),
            ProfileError::Matrix { source, .. } => source.is_bad_input(),
            _ => true,
        }
    }
}

/// The repository's profiles.
pub fn profiles_dir() -> PathBuf {
    crate::host::guest_build::workspace_root().join("profiles")
}

/// The file a `--profile` names: a path, or a name of `profiles/`.
pub fn locate(name: &str) -> Result<PathBuf, ProfileError> {
    let as_path = Path::new(name);
    if name.contains('/') || name.ends_with(".toml") {
        return Ok(as_path.to_path_buf());
    }
    let safe = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && !name.starts_with('.');
    let file = profiles_dir().join(format!("{name}.toml"));
    if safe && file.is_file() {
        return Ok(file);
    }
    let mut known: Vec<String> = std::fs::read_dir(profiles_dir())
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.strip_suffix(".toml").map(str::to_string)
        })
        .collect();
    known.sort();
    Err(ProfileError::Unknown(name.to_string(), known.join(", ")))
}

/// Reads and checks the profile at `path`.
pub fn load(path: &Path) -> Result<Profile, ProfileError> {
    let meta = std::fs::metadata(path).map_err(|source| ProfileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let invalid = |why: String| ProfileError::Invalid {
        path: path.to_path_buf(),
        why,
    };
    if meta.len() > MAX_BYTES {
        return Err(invalid(format!("larger than {MAX_BYTES} bytes")));
    }
    let text = std::fs::read_to_string(path).map_err(|source| ProfileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text).map_err(invalid)
}

/// Parses a profile's text and checks what can be checked without the catalog.
fn parse(text: &str) -> Result<Profile, String> {
    let profile: Profile = toml::from_str(text).map_err(|e| e.to_string())?;
    if profile.parts.is_empty() && profile.migrations.is_empty() {
        return Err("no [[part]] nor [[migrate]]".into());
    }
    let mut names: Vec<&str> = Vec::new();
    for m in &profile.migrations {
        if names.contains(&m.name.as_str()) {
            return Err(format!("two parts named `{}`", m.name));
        }
        names.push(&m.name);
        if m.kernels.is_empty() {
            return Err(format!("migrate `{}`: kernels are needed", m.name));
        }
        m.mode
            .parse::<MoveMode>()
            .map_err(|e| format!("migrate `{}`: {e}", m.name))?;
    }
    for p in &profile.parts {
        if names.contains(&p.name.as_str()) {
            return Err(format!("two parts named `{}`", p.name));
        }
        names.push(&p.name);
        if p.kernels.is_empty() || p.userlands.is_empty() {
            return Err(format!(
                "part `{}`: kernels and userlands are needed",
                p.name
            ));
        }
        for f in &p.zdtm_flavors {
            ZdtmFlavor::parse(f)
                .ok_or_else(|| format!("part `{}`: zdtm flavor `{f}` (h, ns, uns)", p.name))?;
        }
        for m in &p.modes {
            Mode::parse(m).map_err(|e| format!("part `{}`: {e}", p.name))?;
        }
        if p.zdtm_profile.is_some() && !(p.zdtm_flavors.is_empty() && p.modes.is_empty()) {
            return Err(format!(
                "part `{}`: zdtm_profile picks its flavors and modes itself",
                p.name
            ));
        }
    }
    Ok(profile)
}

impl Part {
    /// Whether the part needs the --zdtm tree.
    pub fn needs_zdtm(&self) -> bool {
        !self.zdtm_flavors.is_empty()
            || self.zdtm_profile.is_some()
            || self.criu.iter().any(|c| c == ZDTM_TREE)
    }

    /// Whether the part runs zdtm's tests.
    fn runs_zdtm(&self) -> bool {
        !self.zdtm_flavors.is_empty() || self.zdtm_profile.is_some()
    }

    /// The part's catalog selection (`base`: the command's scenario directories and zdtm
    /// tree).
    fn catalog(&self, base: &CatalogOptions) -> CatalogOptions {
        CatalogOptions {
            scenario_dirs: base.scenario_dirs.clone(),
            tag: self.tags.clone(),
            zdtm: self.runs_zdtm().then(|| base.zdtm.clone()).flatten(),
            zdtm_py: false,
            zdtm_flavors: self
                .zdtm_flavors
                .iter()
                .filter_map(|f| ZdtmFlavor::parse(f))
                .collect(),
            modes: self
                .modes
                .iter()
                .filter_map(|m| Mode::parse(m).ok())
                .collect(),
            zdtm_profile: self.zdtm_profile.clone(),
        }
    }
}

/// The cells of every part of `profile` (`path` for messages), one matrix, and the
/// scenarios asked for (each once). `opts` gives the shared settings; `base` the
/// command's catalog (scenario directories, the zdtm tree).
pub fn cells(
    profile: &Profile,
    path: &Path,
    opts: &MatrixOptions,
    base: &CatalogOptions,
) -> Result<(Vec<PlannedCell>, Vec<Scenario>), ProfileError> {
    let mut all: Vec<PlannedCell> = Vec::new();
    let mut chosen: Vec<Scenario> = Vec::new();
    for part in &profile.parts {
        let zdtm = base.zdtm.as_ref();
        if part.needs_zdtm() && zdtm.is_none() {
            return Err(ProfileError::NeedsZdtm {
                path: path.to_path_buf(),
                part: part.name.clone(),
            });
        }
        let first = part.userlands.first().map(String::as_str);
        let scenarios = part
            .catalog(base)
            .select_for(&part.scenarios, first)
            .map_err(|source| ProfileError::Catalog {
                path: path.to_path_buf(),
                part: part.name.clone(),
                source: Box::new(source),
            })?;
        let criu: Vec<String> = part
            .criu
            .iter()
            .map(|c| match (c.as_str(), zdtm) {
                (ZDTM_TREE, Some(tree)) => tree.display().to_string(),
                _ => c.clone(),
            })
            .collect();
        let axes = MatrixOptions {
            kernels: part.kernels.clone(),
            userlands: part.userlands.clone(),
            criu,
            ..opts.clone()
        };
        let cells = matrix::plan_axes(&axes, &scenarios).map_err(|e| ProfileError::Matrix {
            path: path.to_path_buf(),
            part: part.name.clone(),
            source: Box::new(e),
        })?;
        matrix::union(&mut all, cells);
        for s in scenarios {
            if !chosen.iter().any(|c| c.name == s.name) {
                chosen.push(s);
            }
        }
    }
    for m in &profile.migrations {
        let (cells, scenarios) = moves(m, base).map_err(|why| ProfileError::Move {
            path: path.to_path_buf(),
            part: m.name.clone(),
            why,
        })?;
        matrix::union(&mut all, cells);
        for s in scenarios {
            if !chosen.iter().any(|c| c.name == s.name) {
                chosen.push(s);
            }
        }
    }
    Ok((all, chosen))
}

/// One side of a migration pair.
struct MoveSide {
    kernel: cell_choice::KernelName,
    label: String,
    column: String,
    criu: crate::host::vm_run::CriuChoice,
    cpu: Option<String>,
}

/// The pairs of a `[[migrate]]` as planned cells (each the target, moved from its source),
/// and the scenarios they move.
fn moves(m: &Migrate, base: &CatalogOptions) -> Result<(Vec<PlannedCell>, Vec<Scenario>), String> {
    let by_tag = m.scenarios.is_empty();
    let catalog = CatalogOptions {
        scenario_dirs: base.scenario_dirs.clone(),
        tag: match (by_tag, m.tags.is_empty()) {
            (true, true) => vec![crate::host::migrate::MIGRATE_TAG.into()],
            _ => m.tags.clone(),
        },
        ..CatalogOptions::default()
    };
    let mut scenarios = catalog
        .select_for(&m.scenarios, Some(&m.userland))
        .map_err(|e| e.to_string())?;
    if by_tag {
        // The set's own scenarios, not their variants of a move in place.
        scenarios.retain(|s| s.mode == Mode::default());
    }
    let mode: MoveMode = m
        .mode
        .parse()
        .map_err(|e: crate::model::migration::MoveModeError| e.to_string())?;
    let kernels = cell_choice::parse_kernel_list(&m.kernels).map_err(|e| e.to_string())?;
    for k in &kernels {
        cell_choice::kernel_choice(k, None, None).map_err(|e| e.to_string())?;
    }
    let userland = cell_choice::parse_userland(&m.userland).map_err(|e| e.to_string())?;
    cell_choice::check_suites(
        &kernels,
        std::slice::from_ref(&userland),
        ("kernels", "userland"),
    )
    .map_err(|e| e.to_string())?;
    let criu = cell_choice::parse_criu_list(&m.criu).map_err(|e| e.to_string())?;
    let cpus: Vec<Option<String>> = match m.cpus.is_empty() {
        true => vec![None],
        false => m.cpus.iter().map(|c| Some(c.clone())).collect(),
    };
    let mut sides = Vec::new();
    for k in &kernels {
        for name in &criu {
            let choice = cell_choice::criu_for(name, &userland).ok_or_else(|| {
                format!("criu `{name:?}` does not pair with userland `{userland}`")
            })?;
            let column = matrix::column(&userland, cell_choice::criu_label(name).as_deref());
            for cpu in &cpus {
                sides.push(MoveSide {
                    kernel: k.clone(),
                    label: cell_choice::kernel_label(k),
                    column: column.clone(),
                    criu: choice.clone(),
                    cpu: cpu.clone(),
                });
            }
        }
    }
    let cells = crate::host::migrate::matrix::pairs(sides.len())
        .into_iter()
        .map(|(s, t)| {
            let (s, t) = (&sides[s], &sides[t]);
            let from = matrix::side_label(&s.label, &s.column, s.cpu.as_deref());
            let to = matrix::side_label(&t.label, &t.column, t.cpu.as_deref());
            PlannedCell {
                id: matrix::move_id(&mode.to_string(), &from, &to),
                kernel: t.kernel.clone(),
                kernel_label: t.label.clone(),
                userland: userland.clone(),
                column: t.column.clone(),
                criu: t.criu.clone(),
                scenarios: scenarios.clone(),
                cpu: t.cpu.clone(),
                moved_from: Some(matrix::PlannedSource {
                    kernel: s.kernel.clone(),
                    userland: userland.clone(),
                    criu: s.criu.clone(),
                    cpu: s.cpu.clone(),
                    mode,
                    label: from,
                }),
            }
        })
        .collect();
    Ok((cells, scenarios))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_repositorys_profiles_parse() {
        for e in std::fs::read_dir(profiles_dir()).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "toml") {
                load(&p).unwrap_or_else(|e| panic!("{e}"));
            }
        }
        assert!(locate("nightly").is_ok());
    }

    #[test]
    fn bad_profiles_say_what_is_wrong() {
        let part = "[[part]]\nname = \"a\"\nkernels = [\"sid\"]\nuserlands = [\"sid\"]\n";
        let cases = [
            ("description = \"d\"\n", "no [[part]] nor [[migrate]]"),
            ("description = \"d\"\npart = []\n", "no [[part]] nor [[migrate]]"),
            (
                "description = \"d\"\n[[migrate]]\nname = \"m\"\nkernels = [\"sid\"]\nuserland = \"sid\"\nmode = \"teleport\"\n",
                "migrate `m`: unknown migration mode `teleport`",
            ),
            (
                &format!("description = \"d\"\n{part}[[migrate]]\nname = \"a\"\nkernels = [\"sid\"]\nuserland = \"sid\"\n"),
                "two parts named `a`",
            ),
            (
                &format!("description = \"d\"\n{part}{part}"),
                "two parts named `a`",
            ),
            (
                &format!("description = \"d\"\n{part}zdtm_flavors = [\"x\"]\n"),
                "zdtm flavor `x`",
            ),
            (
                &format!("description = \"d\"\n{part}modes = [\"warp\"]\n"),
                "part `a`",
            ),
            (
                &format!("description = \"d\"\n{part}colour = 1\n"),
                "unknown field `colour`",
            ),
            (
                "description = \"d\"\n[[part]]\nname = \"a\"\nkernels = []\nuserlands = [\"sid\"]\n",
                "kernels and userlands are needed",
            ),
        ];
        for (text, want) in cases {
            let e = parse(text).unwrap_err();
            assert!(e.contains(want), "{text:?}: {e}");
        }
        assert!(matches!(
            locate("no-such-profile"),
            Err(ProfileError::Unknown(..))
        ));
        assert!(matches!(locate("../etc"), Ok(p) if p == Path::new("../etc")));
    }
}
