//! The executor: one scenario's steps in the guest (or on the host with `--host`). The
//! dispatcher (`executor`) hands each step to a backend (`criu`, `lxc`, `external`, with the
//! `vnc_steps` around them); backends share the step context (`context`), never the
//! dispatcher.

pub mod context;
pub mod criu;
pub mod executor;
pub mod external;
pub mod lxc;
pub mod lxc_config;
pub mod lxc_state;
pub mod proctree;
pub mod requires;
pub mod visible;
pub mod vnc_steps;
pub mod zdtm;
