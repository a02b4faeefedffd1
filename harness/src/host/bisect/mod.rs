//! `crtest bisect`: from a failing (or newly passing) cell to the criu or kernel commit that
//! changed it. `judge` decides a run and a step, `git` drives `git bisect` in a clone,
//! `driver` builds and runs each step, `record` writes `bisect.json` and `summary.md`.

pub mod driver;
pub mod git;
pub mod judge;
pub mod record;
