//! `crtest export --kcidb DIR`: runs as a KernelCI KCIDB document (schema v5.3, as the
//! `kcidb-io` package defines it), so the kernel field's result database can take them.
//!
//! - a **checkout** per kernel: what the kernel was made from (a Debian package and its
//!   version, a git revision of a source tree, or a user's bzImage);
//! - a **build** per kernel: its release, where it came from, the required options it lacks;
//! - a **test** per scenario of every cell: path `crtest.<scenario>`, the status, the
//!   duration, the failure report as log excerpt, and in `misc` the harness's own outcome,
//!   failure class, errno, first error line and the userland (criu, lxc) it ran with.
//!
//! Statuses: `pass`, `xfail` and `flaky` are `PASS` (the kernel did what the scenario
//! expects, at least once for `flaky`; the class and evidence, and the attempts, are in `misc`), `fail` and `xpass` `FAIL`, `panic` `FAIL`
//! (the kernel broke), `error` and `timeout` `ERROR`, `skip` `SKIP`.

use crate::model::outcome::{Outcome, ScenarioResult};
use crate::results::run::{CellReport, KernelInfo, RunReport};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// The file `export --kcidb DIR` writes.
pub const KCIDB_FILE: &str = "kcidb.json";

/// The schema version written.
pub const SCHEMA: (u32, u32) = (5, 3);

/// The longest log excerpt KCIDB takes.
const EXCERPT_MAX: usize = 16384;

/// Why an origin name is refused.
#[derive(Debug, thiserror::Error)]
#[error("origin `{0}`: KCIDB origins are lower-case letters, digits and `_`")]
pub struct OriginError(String);

/// Checks an origin name (`^[a-z0-9_]+$`).
pub fn check_origin(origin: &str) -> Result<(), OriginError> {
    let ok = !origin.is_empty()
        && origin
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    ok.then_some(()).ok_or_else(|| OriginError(origin.into()))
}

/// The KCIDB document of `runs`, submitted as `origin`.
pub fn render(runs: &[RunReport], origin: &str) -> Value {
    let mut checkouts = BTreeMap::new();
    let mut builds = BTreeMap::new();
    let mut tests = Vec::new();
    for run in runs {
        for cell in &run.cells {
            let kernel = kernel_key(&cell.kernel);
            let checkout_id = format!("{origin}:{kernel}");
            let build_id = format!("{origin}:{kernel}");
            checkouts
                .entry(checkout_id.clone())
                .or_insert_with(|| checkout(&checkout_id, origin, &cell.kernel, run));
            builds
                .entry(build_id.clone())
                .or_insert_with(|| build(&build_id, &checkout_id, origin, &cell.kernel, run));
            for s in &cell.scenarios {
                tests.push(test(&build_id, origin, run, cell, s));
            }
        }
    }
    json!({
        "version": { "major": SCHEMA.0, "minor": SCHEMA.1 },
        "checkouts": checkouts.into_values().collect::<Vec<_>>(),
        "builds": builds.into_values().collect::<Vec<_>>(),
        "tests": tests,
    })
}

/// A stable name for a kernel: its source (package and version, revision, path) or release.
fn kernel_key(k: &KernelInfo) -> String {
    let base = if k.source.is_empty() {
        &k.release
    } else {
        &k.source
    };
    clean_id(base)
}

fn checkout(id: &str, origin: &str, k: &KernelInfo, run: &RunReport) -> Value {
    let mut c = Map::new();
    c.insert("id".into(), json!(id));
    c.insert("origin".into(), json!(origin));
    if let Some(rev) = k.source.strip_prefix("git:") {
        let hash: String = rev.chars().take(40).collect();
        if hash.len() == 40 && hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            c.insert("git_commit_hash".into(), json!(hash.to_ascii_lowercase()));
        }
        c.insert("tree_name".into(), json!("source"));
    } else if let Some(pkg) = k.source.strip_prefix("debian:") {
        c.insert("tree_name".into(), json!("debian"));
        c.insert("comment".into(), json!(format!("Debian package {pkg}")));
    }
    if let Some(t) = rfc3339(&run.started_at) {
        c.insert("start_time".into(), json!(t));
    }
    c.insert("valid".into(), json!(true));
    c.insert(
        "misc".into(),
        json!({ "source": k.source, "release": k.release }),
    );
    Value::Object(c)
}

fn build(id: &str, checkout_id: &str, origin: &str, k: &KernelInfo, run: &RunReport) -> Value {
    let mut b = Map::new();
    b.insert("id".into(), json!(id));
    b.insert("checkout_id".into(), json!(checkout_id));
    b.insert("origin".into(), json!(origin));
    b.insert("architecture".into(), json!("x86_64"));
    b.insert("config_name".into(), json!(k.release));
    if let Some(t) = rfc3339(&run.started_at) {
        b.insert("start_time".into(), json!(t));
    }
    b.insert("status".into(), json!("PASS"));
    b.insert(
        "misc".into(),
        json!({
            "release": k.release,
            "source": k.source,
            "missing_options": k.missing_options,
        }),
    );
    Value::Object(b)
}

fn status(o: Outcome) -> &'static str {
    match o {
        Outcome::Pass | Outcome::Xfail | Outcome::Flaky => "PASS",
        Outcome::Fail | Outcome::Xpass | Outcome::Panic => "FAIL",
        Outcome::Error | Outcome::Timeout => "ERROR",
        Outcome::Skip => "SKIP",
    }
}

fn test(
    build_id: &str,
    origin: &str,
    run: &RunReport,
    cell: &CellReport,
    s: &ScenarioResult,
) -> Value {
    let mut t = Map::new();
    t.insert(
        "id".into(),
        json!(format!(
            "{origin}:{}:{}:{}",
            clean_id(&run.run_id),
            clean_id(&cell.id),
            clean_id(&s.name)
        )),
    );
    t.insert("build_id".into(), json!(build_id));
    t.insert("origin".into(), json!(origin));
    t.insert(
        "path".into(),
        json!(format!("crtest.{}", path_part(&s.name))),
    );
    t.insert("status".into(), json!(status(s.outcome)));
    t.insert("duration".into(), json!(s.duration_ms as f64 / 1000.0));
    if let Some(time) = rfc3339(&run.started_at) {
        t.insert("start_time".into(), json!(time));
    }
    t.insert(
        "environment".into(),
        json!({
            "comment": format!(
                "cell {}: userland {}, criu {}, lxc {}{}, QEMU {}",
                cell.id,
                cell.userland.suite,
                cell.userland.criu_text(),
                cell.userland.lxc.as_deref().unwrap_or("?"),
                cell.userland.oci_text(),
                cell.qemu.accel
            ),
        }),
    );
    let mut misc = json!({
        "scenario": s.name,
        "outcome": s.outcome.as_str(),
        "cell": cell.id,
        "userland": cell.userland.suite,
        "criu": cell.userland.criu,
        "criu_source": cell.userland.criu_source,
        "lxc": cell.userland.lxc,
        "run_id": run.run_id,
        "phases_ms": s.phases,
    });
    if !cell.userland.oci.is_empty() {
        misc["oci"] = json!(cell.userland.oci);
    }
    if let Some(pair) = &cell.migration {
        // A migration: the build is the target's kernel; where the process came from.
        let mut m = json!({
            "mode": pair.mode,
            "source_cell": pair.source_id,
            "source_kernel": pair.source_kernel.release,
            "source_criu": pair.source_userland.criu,
            "source_userland": pair.source_userland.suite,
            "source_cpu": pair.source_cpu,
            "freeze_ms": s.migration.as_ref().and_then(|m| m.freeze_ms),
            "source_tree": s.migration.as_ref().map(|m| m.source.clone()),
        });
        if let Value::Object(o) = &mut m {
            o.retain(|_, v| !v.is_null());
        }
        misc["migration"] = m;
    }
    if !s.attempts.is_empty() {
        misc["attempts"] = json!(s
            .attempts
            .iter()
            .map(|a| a.outcome.as_str())
            .collect::<Vec<_>>());
    }
    if let Some(f) = &s.failure {
        misc["step"] = json!(f.step);
        misc["class"] = json!(f.class);
        misc["errno"] = json!(f.errno);
        misc["first_error_line"] = json!(f.first_error_line);
        t.insert(
            "log_excerpt".into(),
            json!(excerpt(&crate::report::text::failure_block(f))),
        );
    } else if let Some(d) = &s.detail {
        t.insert("log_excerpt".into(), json!(excerpt(d)));
    }
    // KCIDB takes no nulls.
    if let Value::Object(m) = &mut misc {
        m.retain(|_, v| !v.is_null());
    }
    t.insert("misc".into(), misc);
    Value::Object(t)
}

/// At most [`EXCERPT_MAX`] bytes, cut at a character boundary, no NUL.
fn excerpt(text: &str) -> String {
    let text = text.replace('\0', "");
    let mut end = text.len().min(EXCERPT_MAX);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

/// A part of a dot-separated KCIDB test path: `[a-zA-Z0-9_-]+` (`fileio1@pre-dump` becomes
/// `fileio1-pre-dump`).
fn path_part(name: &str) -> String {
    let p: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if p.is_empty() {
        "_".into()
    } else {
        p
    }
}

/// An id part with no NUL and no `:` (which separates the parts).
fn clean_id(s: &str) -> String {
    s.replace(['\0', ':'], "_")
}

/// `started_at` as RFC 3339, when it is (run.json writes `YYYY-MM-DDTHH:MM:SSZ`).
fn rfc3339(t: &str) -> Option<String> {
    let b = t.as_bytes();
    let ok = b.len() == 20 && b[4] == b'-' && b[10] == b'T' && b[19] == b'Z';
    ok.then(|| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::fixtures;

    #[test]
    fn a_matrix_as_kcidb() {
        let doc = render(&[fixtures::matrix_report()], "crtest");
        insta::assert_json_snapshot!(doc);
    }

    #[test]
    fn kernels_are_one_checkout_and_build_each() {
        let report = fixtures::matrix_report();
        let doc = render(&[report.clone(), report], "lab_a");
        let kernels: std::collections::BTreeSet<_> = doc["tests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["build_id"].to_string())
            .collect();
        assert_eq!(doc["builds"].as_array().unwrap().len(), kernels.len());
        assert_eq!(doc["checkouts"].as_array().unwrap().len(), kernels.len());
        assert!(doc["tests"][0]["id"]
            .as_str()
            .unwrap()
            .starts_with("lab_a:"));
    }

    #[test]
    fn names_fit_kcidb_patterns() {
        assert_eq!(path_part("fileio1@pre-dump"), "fileio1-pre-dump");
        assert_eq!(path_part("zdtm/static/env00"), "zdtm-static-env00");
        assert_eq!(clean_id("debian:linux=6.1"), "debian_linux=6.1");
        assert!(check_origin("crtest_ci").is_ok());
        assert!(check_origin("Crtest").is_err() && check_origin("").is_err());
        assert_eq!(excerpt(&"é".repeat(10000)).len(), EXCERPT_MAX);
        assert_eq!(
            rfc3339("2026-11-26T19:30:12Z").as_deref(),
            Some("2026-11-26T19:30:12Z")
        );
        assert_eq!(rfc3339("yesterday"), None);
    }
}
