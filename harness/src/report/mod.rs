//! Everything made from results: the terminal progress and summaries, JUnit, HTML,
//! Markdown, the history, compare, merge and verdicts. Reads results; results never read it.

pub mod compare;
pub mod durations;
pub mod history;
pub mod html;
pub mod junit;
pub mod kcidb;
pub mod ktap;
pub mod markup;
pub mod merge;
pub mod progress;
pub mod summary_md;
pub mod text;
pub mod verdict;
pub mod views;
