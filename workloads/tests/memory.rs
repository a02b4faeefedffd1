//! The `memory` workloads on the host: each passes when left alone, and each catches memory
//! changed behind its back (written through `/proc/PID/mem`, as a restore that brought back
//! the wrong page would leave it).

mod common;

use common::*;
use nix::unistd::Pid;
use std::time::Duration;

const FAST: &[&str] = &["--tick-ms", "5"];
const GRACE: Duration = Duration::from_secs(3);

#[test]
fn bigmem_passes() {
    let detail = passes(
        env!("CARGO_BIN_EXE_bigmem"),
        &["--mib", "8", "--tick-ms", "2", "--pages-per-tick", "64"],
    );
    assert!(
        detail.starts_with("all 2048 pages of 8 MiB intact (1792 patterned, 256 zero)"),
        "{detail}"
    );
}

#[test]
fn bigmem_catches_a_changed_page_and_a_dirty_zero_page() {
    if !root_or_skip("bigmem_catches_a_changed_page_and_a_dirty_zero_page") {
        return;
    }
    let mut w = Running::start(
        env!("CARGO_BIN_EXE_bigmem"),
        &["--mib", "8", "--tick-ms", "2", "--pages-per-tick", "0"],
    );
    let ready = w.wait_ready();
    let base = detail_number(&ready.detail, "region") as u64;
    let pid = w.pid();
    let byte = peek(pid, base + 5 * 4096 + 7, 1)[0];
    poke(pid, base + 5 * 4096 + 7, &[!byte]);
    poke(pid, base + 2000 * 4096, &[1]);
    let (code, verdict) = w.verify();
    assert_fail(
        code,
        &verdict,
        &w.log(),
        &[
            "anonymous region: 2 of 2048 pages differ",
            &format!(
                "page 5 (address {:#x}) differs at byte 7: expected {byte:#04x}, got {:#04x}",
                base + 5 * 4096 + 7,
                !byte
            ),
            &format!(
                "page 2000 (address {:#x}) differs at byte 0: expected 0x00, got 0x01",
                base + 2000 * 4096
            ),
        ],
    );
}

#[test]
fn mprotect_passes() {
    let detail = passes(env!("CARGO_BIN_EXE_mprotect"), &["--tick-ms", "5"]);
    assert!(
        detail.starts_with("8 regions kept bounds, protections"),
        "{detail}"
    );
}

#[test]
fn mprotect_catches_changed_read_only_memory() {
    if !root_or_skip("mprotect_catches_changed_read_only_memory") {
        return;
    }
    let mut w = Running::start(env!("CARGO_BIN_EXE_mprotect"), &["--tick-ms", "5"]);
    let ready = w.wait_ready();
    let ro = detail_number(&ready.detail, "ro") as u64;
    let byte = peek(w.pid(), ro + 10, 1)[0];
    poke(w.pid(), ro + 10, &[!byte]);
    let (code, verdict) = w.outcome_within(GRACE);
    assert_fail(
        code,
        &verdict,
        &w.log(),
        &[&format!(
            "content of region ro at {ro:#x} differs at offset 10"
        )],
    );
}

#[test]
fn cowmem_passes() {
    let detail = passes(env!("CARGO_BIN_EXE_cowmem"), &["--tick-ms", "5"]);
    assert!(
        detail.starts_with("3 processes kept their copy-on-write views"),
        "{detail}"
    );
}

#[test]
fn cowmem_catches_a_change_in_a_helpers_copy() {
    if !root_or_skip("cowmem_catches_a_change_in_a_helpers_copy") {
        return;
    }
    let mut w = Running::start(env!("CARGO_BIN_EXE_cowmem"), &["--tick-ms", "5"]);
    let ready = w.wait_ready();
    let cow = detail_number(&ready.detail, "cow") as u64;
    let helper = Pid::from_raw(detail_number(&ready.detail, "helper-a") as i32);
    let byte = peek(helper, cow + 3, 1)[0];
    poke(helper, cow + 3, &[!byte]);
    let (code, verdict) = w.outcome_within(GRACE);
    assert_fail(
        code,
        &verdict,
        &w.log(),
        &[&format!(
            "helper A (pid {helper}): helper A: private copy-on-write region: 1 of 64 pages differ; page 0 (address {:#x}) differs at byte 3",
            cow + 3
        )],
    );
    // The workload's own copy and helper B's were not touched.
    assert!(!verdict.detail.contains("workload:"), "{}", verdict.detail);
    assert!(!verdict.detail.contains("helper B"), "{}", verdict.detail);
}

#[test]
fn vdso_passes() {
    let detail = passes(env!("CARGO_BIN_EXE_vdso"), FAST);
    assert!(detail.starts_with("the vDSO stayed at"), "{detail}");
}

#[test]
fn vdso_catches_its_header_overwritten() {
    if !root_or_skip("vdso_catches_its_header_overwritten") {
        return;
    }
    let mut w = Running::start(env!("CARGO_BIN_EXE_vdso"), FAST);
    let ready = w.wait_ready();
    let at = detail_number(&ready.detail, "vdso") as u64;
    // /proc/PID/mem writes through the read-only mapping (a private copy of the page), as
    // a restore that left something else at the vDSO's place would.
    poke(w.pid(), at, b"\x7fBAD");
    let (code, verdict) = w.outcome_within(GRACE);
    assert_fail(
        code,
        &verdict,
        &w.log(),
        &[&format!(
            "[vdso] at {at:#x}: not an ELF shared object any more"
        )],
    );
}

#[test]
fn uffd_passes() {
    if !root_or_skip("uffd_passes") {
        return;
    }
    let detail = passes(env!("CARGO_BIN_EXE_uffd"), FAST);
    assert!(
        detail.starts_with("the userfaultfd range stayed registered"),
        "{detail}"
    );
}

#[test]
fn uffd_catches_a_page_filled_from_outside() {
    if !root_or_skip("uffd_catches_a_page_filled_from_outside") {
        return;
    }
    let mut w = Running::start(env!("CARGO_BIN_EXE_uffd"), FAST);
    let ready = w.wait_ready();
    let fd = detail_number(&ready.detail, "uffd") as i32;
    let range = detail_number(&ready.detail, "range") as usize;
    let copy = steal_fd(w.pid(), fd);
    // The descriptor acts on the workload's memory, whoever holds it.
    crtest_workloads::memory::uffd::zero_page(&copy, range + 6 * 4096).unwrap();
    let (code, verdict) = w.outcome_within(GRACE);
    assert_fail(
        code,
        &verdict,
        &w.log(),
        &["page 6 of the registered range is present, expected missing"],
    );
}

#[test]
fn thp_passes() {
    let detail = passes(env!("CARGO_BIN_EXE_thp"), FAST);
    assert!(
        detail.starts_with("an 8 MiB region kept its MADV_HUGEPAGE"),
        "{detail}"
    );
}

#[test]
fn thp_catches_a_changed_page() {
    if !root_or_skip("thp_catches_a_changed_page") {
        return;
    }
    let mut w = Running::start(env!("CARGO_BIN_EXE_thp"), FAST);
    let ready = w.wait_ready();
    let region = detail_number(&ready.detail, "region") as u64;
    poke(w.pid(), region + 3 * 4096 + 10, b"XYZ");
    let (code, verdict) = w.outcome_within(GRACE);
    assert_fail(code, &verdict, &w.log(), &["page 3"]);
}
