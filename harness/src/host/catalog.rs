//! The scenario catalog: the workspace's `scenarios/` plus the user's directories, and the
//! selection by name and tag that `run`, `matrix`, `repro` and `list` share.

use crate::model::scenario::{self, Mode, Scenario, ScenarioError, ZdtmFlavor};
use std::path::{Path, PathBuf};

/// Where the scenarios come from and which are wanted, as a command names them.
#[derive(Debug, Clone, Default)]
pub struct CatalogOptions {
    /// Directories of scenario files added to the workspace's.
    pub scenario_dirs: Vec<PathBuf>,
    /// Only scenarios with one of these tags.
    pub tag: Vec<String>,
    /// A CRIU source tree whose zdtm tests join the catalog.
    pub zdtm: Option<PathBuf>,
    /// The zdtm tests run by the tree's own zdtm.py instead of the harness.
    pub zdtm_py: bool,
    /// The zdtm flavors to run (each test in those its `.desc` allows); empty: all.
    pub zdtm_flavors: Vec<ZdtmFlavor>,
    /// The modes every scenario runs in (each its backend has); empty: as the catalog says.
    pub modes: Vec<Mode>,
    /// The zdtm tests as a profile of the tree picks them (`ci`), in its modes.
    pub zdtm_profile: Option<String>,
}

/// Why no scenarios could be chosen.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    #[error("no scenario matches the selection (see `crtest list`)")]
    NothingChosen,
    #[error("--zdtm")]
    ZdtmTree(#[source] crtest_vm::criu_tree::TreeError),
    #[error("--zdtm")]
    Host(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("--zdtm")]
    ZdtmBuild(#[source] Box<crtest_vm::criu_build::CriuBuildError>),
    #[error("--zdtm-profile")]
    Profile(#[source] crate::zdtm::ci_profile::ProfileError),
}

impl CatalogError {
    /// Whether the input is at fault (a scenario, a name, a tree), not the host.
    pub fn is_bad_input(&self) -> bool {
        match self {
            CatalogError::Scenario(_) | CatalogError::NothingChosen => true,
            CatalogError::ZdtmTree(e) => e.is_bad_input(),
            CatalogError::ZdtmBuild(e) => e.is_bad_input(),
            CatalogError::Profile(e) => e.is_bad_input(),
            CatalogError::Host(_) => false,
        }
    }
}

impl CatalogOptions {
    /// See [`select`]; with a zdtm tree, its tests built for `suite` (the host's when
    /// `None`) join the catalog.
    pub fn select_for(
        &self,
        names: &[String],
        suite: Option<&str>,
    ) -> Result<Vec<Scenario>, CatalogError> {
        let zdtm = self.zdtm_for(suite)?;
        let mut all: Vec<Scenario> = catalog(&self.scenario_dirs)?
            .into_iter()
            .chain(zdtm)
            .collect();
        if !self.modes.is_empty() {
            all = scenario::in_modes(&all, &self.modes);
        }
        pick(all, names, &self.tag)
    }
}

impl CatalogOptions {
    /// The zdtm tests of the `--zdtm` tree (none without one) built for `suite`, in the
    /// chosen flavors or as the profile picks them.
    pub fn zdtm_for(&self, suite: Option<&str>) -> Result<Vec<Scenario>, CatalogError> {
        let Some(tree) = &self.zdtm else {
            return Ok(Vec::new());
        };
        match &self.zdtm_profile {
            None => zdtm_scenarios(tree, suite, self.zdtm_py, &self.zdtm_flavors),
            Some(name) => {
                let every = zdtm_scenarios(tree, suite, self.zdtm_py, &[])?;
                profile_scenarios(tree, name, every)
            }
        }
    }
}

/// The zdtm tests of `tree` built for `suite` (the host's when `None`) as scenarios, in
/// `flavors` (all when empty).
pub fn zdtm_scenarios(
    tree: &Path,
    suite: Option<&str>,
    zdtm_py: bool,
    flavors: &[ZdtmFlavor],
) -> Result<Vec<Scenario>, CatalogError> {
    let t = crtest_vm::criu_tree::inspect(tree).map_err(CatalogError::ZdtmTree)?;
    crtest_vm::hostdeps::ensure(crtest_vm::hostdeps::DEFAULT_TOOLS)
        .map_err(|e| CatalogError::Host(Box::new(e)))?;
    let suite = match suite {
        Some(s) => s.to_string(),
        None => crtest_vm::apt::host_suite().map_err(|e| CatalogError::Host(Box::new(e)))?,
    };
    let cache = crtest_vm::Cache::from_env().map_err(|e| CatalogError::Host(Box::new(e)))?;
    eprintln!("zdtm: the tests of {} for {suite} ...", t.root.display());
    let build = crtest_vm::zdtm_build::build(&cache, &t, &suite)
        .map_err(|e| CatalogError::ZdtmBuild(Box::new(e)))?;
    let flavors = if flavors.is_empty() {
        &ZdtmFlavor::ALL[..]
    } else {
        flavors
    };
    Ok(crate::zdtm::suite::scenarios(&build, zdtm_py, flavors))
}

/// The zdtm scenarios (every flavor) that the profile `name` of `tree` picks, in its modes;
/// what it leaves out is said on stderr.
fn profile_scenarios(
    tree: &Path,
    name: &str,
    zdtm: Vec<Scenario>,
) -> Result<Vec<Scenario>, CatalogError> {
    use crate::zdtm::ci_profile;
    let p = ci_profile::read(tree, name).map_err(CatalogError::Profile)?;
    let chosen = ci_profile::select(&p, &zdtm, &tree.join(ci_profile::SCRIPT))
        .map_err(CatalogError::Profile)?;
    eprintln!(
        "zdtm profile {name}: {} calls of {} give {} (test, flavor, mode) combinations",
        p.calls.len(),
        ci_profile::SCRIPT,
        chosen.len()
    );
    for l in &p.left_out {
        eprintln!("zdtm profile {name}: left out: {l}");
    }
    Ok(chosen)
}

/// The scenarios of the catalog (with `dirs`) named in `names` (all when empty) that have
/// one of `tags`; an unreadable catalog, an unknown name or an empty selection is bad input.
pub fn select(
    dirs: &[PathBuf],
    names: &[String],
    tags: &[String],
) -> Result<Vec<Scenario>, CatalogError> {
    pick(catalog(dirs)?, names, tags)
}

fn pick(
    all: Vec<Scenario>,
    names: &[String],
    tags: &[String],
) -> Result<Vec<Scenario>, CatalogError> {
    match scenario::select(&all, names, tags)? {
        c if c.is_empty() => Err(CatalogError::NothingChosen),
        c => Ok(c),
    }
}

/// The catalog: the workspace's `scenarios/` plus the user's directories.
pub fn catalog(dirs: &[PathBuf]) -> Result<Vec<Scenario>, scenario::ScenarioError> {
    let mut all =
        scenario::load_dir(&crate::host::guest_build::workspace_root().join("scenarios"))?;
    for dir in dirs {
        for s in scenario::load_dir(dir)? {
            if let Some(prev) = all.iter().find(|p| p.name == s.name) {
                return Err(scenario::ScenarioError::Duplicate {
                    name: s.name.clone(),
                    first: prev.source.clone(),
                    second: s.source,
                });
            }
            all.push(s);
        }
    }
    all.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(all)
}
