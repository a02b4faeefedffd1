//! The host side of a cell, by job: [`prepare`] the kernel, userland and guest bundle;
//! [`run_cell`] the scenarios, guest after guest; each guest's [`session`] (QEMU started,
//! events and console followed, time limits, a lost guest judged); the [`recorder`] that
//! writes every result of the cell.
//!
//! One guest runs the scenarios of the cell in turn. When it dies (panic, hang, crash) the
//! scenario it was running gets `panic`/`timeout`/`error` with the console tail, and a new
//! guest runs the rest.

pub mod prepare;
pub mod recorder;
pub mod run_cell;
pub(crate) mod session;

pub use prepare::{
    doctor_evidence, oci_evidence, prepare, Cell, CellCriu, CellOptions, CriuChoice, KernelChoice,
    PrepareError, BOOT_MODULES, BOOT_TIMEOUT,
};
pub use run_cell::{run_cell, GUEST_DIR};
