//! cr-tests: a checkpoint/restart test and compatibility harness.
//!
//! Data flows one way: scenario files -> plan -> images -> VM -> guest agent runs the steps ->
//! events + artifacts -> results -> reports. See ARCHITECTURE.md at the top of the repository.
//!
//! # Layout
//!
//! One folder per role. A folder may use the folders on its row and nothing else of this
//! crate; `tests/architecture.rs` reads every `use crate::` and `crate::` path and fails on
//! one that goes another way (within a folder, modules use each other freely).
//!
//! | folder | role | may use |
//! |---|---|---|
//! | `vnc/` | the RFB client and framebuffer frames (PNG, diffs) | (nothing) |
//! | `diagnose/` | errno names, kernel messages, failure classes, criu log lines, the kernel config fragment, version rules, `doctor` | (nothing) |
//! | `ckpt/` | the CRIU image reader behind `crtest ckptinfo` | `diagnose` |
//! | `model/` | scenarios, their requirements and expectations, outcomes, the agent's events, userland variants | `vnc`, `diagnose` |
//! | `exec/` | the executor: one scenario's steps, a shared step context, a type per backend (criu, lxc, external, zdtm.py) and per target (workload, program, zdtm test, external) | `model`, `diagnose`, `ckpt`, `vnc` |
//! | `results/` | run.json and run directories | `model`, `diagnose` |
//! | `report/` | what is made of results: text, JUnit, KTAP, HTML, Markdown, history, compare, merge, verdicts, progress | `results`, `model`, `diagnose`, `vnc` |
//! | `zdtm/` | CRIU's zdtm suite as scenarios: `.desc` files, tests to scenarios, what is known of them | `model`, `diagnose` |
//! | `guest/` | the guest agent (PID 1): setup, health, the event channel | `exec`, `model`, `diagnose`, `ckpt`, `vnc` |
//! | `host/` | everything about VMs and cells: images, QEMU runs, shards, parallel guests, matrix, bench, kernel builds, `--host` runs | everything but `cli` |
//! | `cli/` | the command line, the only room with clap: options, commands, the one pipeline of a run, the one mapping to exit codes | everything |
//!
//! So the model depends on nothing above it, backends on the step context and not on the
//! dispatcher, reports read results and never the other way, and the guest side never
//! uses the host side.

pub mod ckpt;
pub mod cli;
pub mod diagnose;
pub mod exec;
pub mod guest;
pub mod host;
pub mod model;
pub mod report;
pub mod results;
pub mod vnc;
pub mod zdtm;
