//! What a run is made of, as data: scenarios and their requirements and expectations,
//! outcomes and failure reports, the agent's events, userland variants.

pub mod confine;
pub mod event;
pub mod expectation;
pub mod migration;
pub mod outcome;
pub mod requirements;
pub mod scenario;
pub mod variant;
pub mod visible;
