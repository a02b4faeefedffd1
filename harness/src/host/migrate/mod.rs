//! Migration between cells: a source and a target guest at once, each of its own cell,
//! joined by a private link no one else shares; each scenario started on the source, moved
//! in the pair's mode (images through the host, a page server, pre-dumps, lazy pages) and
//! restored and verified on the target; one result per scenario, one cell per pair.
//!
//! [`guest`] drives one guest of the pair, [`pair`] moves the scenarios, [`verdict`] makes
//! one result of the two sides', [`matrix`] pairs a set of cells and draws the from x to
//! table. What each guest does is the agent's
//! ([`crate::guest::mover`], [`crate::exec::mover`]).

pub mod guest;
pub mod matrix;

/// The tag of the scenarios a migration moves by default.
pub const MIGRATE_TAG: &str = "migrate";
pub mod pair;
pub mod verdict;

pub use pair::{pair_id, run_pair, Pair};
