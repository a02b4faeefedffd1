//! The guest side: the agent that is PID 1 in the VM, its setup of the guest, and the
//! health checks between scenarios. Never uses the host side.

pub mod agent;
pub mod health;
pub mod mover;
pub mod setup;
