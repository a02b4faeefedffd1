//! The scenario catalog: the workspace's `scenarios/` plus the user's directories, and the
//! selection by name and tag that `run`, `matrix`, `repro` and `list` share.

use crate::model::scenario::{self, Scenario};
use clap::Args;
use std::path::{Path, PathBuf};

#[derive(Debug, Args)]
pub struct CatalogArgs {
    /// Add the scenario files of this directory to the catalog (repeatable).
    #[arg(long = "scenarios", value_name = "DIR")]
    pub scenario_dirs: Vec<PathBuf>,
    /// Only scenarios with one of these tags (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub tag: Vec<String>,
    /// Add CRIU's zdtm tests of this CRIU source tree (`zdtm/static/NAME`, tagged `zdtm`),
    /// built for the userland's suite.
    #[arg(long, value_name = "DIR")]
    pub zdtm: Option<PathBuf>,
    /// Who runs the zdtm tests: `native` (this harness, the default) or `zdtm.py` (the
    /// tree's own runner, in a userland variant with its python), to compare verdicts.
    #[arg(long, value_name = "RUNNER", default_value = "native", value_parser = ["native", "zdtm.py"], requires = "zdtm")]
    pub zdtm_runner: String,
}

impl CatalogArgs {
    /// See [`select`]; with `--zdtm`, the tree's tests built for `suite` (the host's when
    /// `None`) join the catalog.
    pub fn select_for(&self, names: &[String], suite: Option<&str>) -> Result<Vec<Scenario>, i32> {
        let zdtm = match &self.zdtm {
            None => Vec::new(),
            Some(tree) => zdtm_scenarios(tree, suite, self.zdtm_runner == "zdtm.py").map_err(
                |(code, e)| {
                    eprintln!("crtest: --zdtm: {e}");
                    code
                },
            )?,
        };
        let all = catalog(&self.scenario_dirs).map_err(|e| fail(&e))?;
        pick(all.into_iter().chain(zdtm).collect(), names, &self.tag)
    }

    /// [`CatalogArgs::select_for`] the host's suite.
    pub fn select(&self, names: &[String]) -> Result<Vec<Scenario>, i32> {
        self.select_for(names, None)
    }
}

/// The zdtm tests of `tree` built for `suite` (the host's when `None`) as scenarios; an
/// error with its exit code (2: not a CRIU tree, 3: the build).
pub fn zdtm_scenarios(
    tree: &Path,
    suite: Option<&str>,
    zdtm_py: bool,
) -> Result<Vec<Scenario>, (i32, String)> {
    let t = crtest_vm::criu_tree::inspect(tree)
        .map_err(|e| (if e.is_bad_input() { 2 } else { 3 }, e.to_string()))?;
    crtest_vm::hostdeps::ensure(crtest_vm::hostdeps::DEFAULT_TOOLS)
        .map_err(|e| (3, e.to_string()))?;
    let suite = match suite {
        Some(s) => s.to_string(),
        None => crtest_vm::apt::host_suite().map_err(|e| (3, e.to_string()))?,
    };
    let cache = crtest_vm::Cache::from_env().map_err(|e| (3, e.to_string()))?;
    eprintln!("zdtm: the tests of {} for {suite} ...", t.root.display());
    let build = crtest_vm::zdtm_build::build(&cache, &t, &suite)
        .map_err(|e| (e.exit_code(), e.to_string()))?;
    Ok(crate::zdtm::suite::scenarios(&build, zdtm_py))
}

/// The scenarios of the catalog (with `dirs`) named in `names` (all when empty) that have
/// one of `tags`; an unreadable catalog, an unknown name or an empty selection is bad
/// input: the message is printed and `Err` holds the exit code (2).
pub fn select(dirs: &[PathBuf], names: &[String], tags: &[String]) -> Result<Vec<Scenario>, i32> {
    pick(catalog(dirs).map_err(|e| fail(&e))?, names, tags)
}

fn pick(all: Vec<Scenario>, names: &[String], tags: &[String]) -> Result<Vec<Scenario>, i32> {
    match scenario::select(&all, names, tags) {
        Ok(c) if c.is_empty() => Err(fail(
            &"no scenario matches the selection (see `crtest list`)",
        )),
        Ok(c) => Ok(c),
        Err(e) => Err(fail(&e)),
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

/// Prints a bad-input message; the exit code for it (2).
fn fail(e: &dyn std::fmt::Display) -> i32 {
    eprintln!("crtest: {e}");
    2
}
