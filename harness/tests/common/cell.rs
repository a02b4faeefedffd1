//! The default cell of the VM trials, prepared once per test binary.

use crtest::host::vm_run::{self, CellOptions, KernelChoice};
use crtest::report::progress::TerminalReporter;

/// The default cell (the host's Debian kernel and userland, the packaged criu), with every
/// host package any test needs installed first (or named, when not root); the error says
/// why the guest cannot be had.
pub fn default_cell() -> Result<vm_run::Cell, String> {
    let opts = CellOptions {
        kernel: KernelChoice::Debian,
        suite: None,
        criu: Default::default(),
        zdtm: None,
        memory_mib: 2048,
        cpus: 2,
        cpu: None,
        variants: Vec::new(),
    };
    crtest_vm::hostdeps::ensure_for_tests()
        .map_err(|e| e.to_string())
        .and_then(|()| {
            vm_run::prepare(&opts, &mut TerminalReporter::new(false)).map_err(|e| e.to_string())
        })
}
