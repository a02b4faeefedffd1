//! The scenario catalog: the workspace's `scenarios/` plus the user's directories, and the
//! selection by name and tag that `run`, `matrix`, `repro` and `list` share.

use crate::model::scenario::{self, Scenario};
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct CatalogArgs {
    /// Add the scenario files of this directory to the catalog (repeatable).
    #[arg(long = "scenarios", value_name = "DIR")]
    pub scenario_dirs: Vec<PathBuf>,
    /// Only scenarios with one of these tags (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub tag: Vec<String>,
}

impl CatalogArgs {
    /// See [`select`].
    pub fn select(&self, names: &[String]) -> Result<Vec<Scenario>, i32> {
        select(&self.scenario_dirs, names, &self.tag)
    }
}

/// The scenarios of the catalog (with `dirs`) named in `names` (all when empty) that have
/// one of `tags`; an unreadable catalog, an unknown name or an empty selection is bad
/// input: the message is printed and `Err` holds the exit code (2).
pub fn select(dirs: &[PathBuf], names: &[String], tags: &[String]) -> Result<Vec<Scenario>, i32> {
    let all = catalog(dirs).map_err(|e| fail(&e))?;
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
