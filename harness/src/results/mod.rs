//! Results as stored: run.json and the run directory that holds it.

#[cfg(test)]
pub mod fixtures;
pub mod run;
