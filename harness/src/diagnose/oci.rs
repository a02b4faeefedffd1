//! `crtest doctor --oci`: which of the OCI ways to checkpoint a container the cell's `oci`
//! userland can take, from what its image holds.
//!
//! runc checkpoints by running the `criu` binary, so it can wherever criu is; crun loads
//! libcriu (`libcriu.so.2`, package libcriu2) when it is built with CRIU, which its version
//! line says (`+CRIU`): bookworm's 1.8.1 is not, and answers every checkpoint with
//! "configured runtime does not support checkpoint/restore"; trixie's 1.21 is, and needs
//! libcriu2 installed ("could not load libcriu.so.2" otherwise); podman hands checkpoints
//! to its runtime. Read from the image: crun's binary (its `+CRIU`), and the versions of
//! podman, conmon, runc, crun and libcriu2 from the dpkg status.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write;

/// The packages whose versions the report lists (as `results::run::OCI_TOOLS`).
pub const TOOLS: &[&str] = &["podman", "conmon", "runc", "crun", "libcriu2"];

/// What the `oci` image holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OciEvidence {
    /// The userland, `bookworm+oci`.
    pub userland: String,
    /// [`TOOLS`] installed: name -> version.
    pub versions: BTreeMap<String, String>,
    /// Whether the installed crun is built with CRIU; `None` without crun.
    pub crun_criu: Option<bool>,
}

/// One way to checkpoint a container, and whether this userland can take it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct OciPath {
    /// `podman over runc`, `crun alone`, ...
    pub name: String,
    pub can_checkpoint: bool,
    /// Why (the fact that decided it).
    pub why: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct OciReport {
    pub userland: String,
    pub versions: BTreeMap<String, String>,
    pub paths: Vec<OciPath>,
}

/// Whether crun's binary (its bytes as text) is built with CRIU: its version line's
/// features (`+SYSTEMD +SELINUX ... +CRIU ...`) are a string of the binary.
pub fn crun_built_with_criu(binary: &str) -> bool {
    binary.contains("+CRIU")
}

/// The paths of [`OciEvidence`], with `criu` the userland's criu version.
pub fn analyze(e: &OciEvidence, criu: Option<&str>) -> OciReport {
    let v = |name: &str| e.versions.get(name).cloned();
    let criu = criu.map_or_else(|| "no criu".to_string(), |c| format!("criu {c}"));
    let runc = match v("runc") {
        Some(r) => (true, format!("runc {r} runs the `criu` binary ({criu})")),
        None => (false, "runc is not installed".to_string()),
    };
    let crun = match (v("crun"), e.crun_criu, v("libcriu2")) {
        (Some(c), Some(true), Some(l)) => (true, format!("crun {c} loads libcriu {l} ({criu})")),
        (Some(c), Some(true), None) => (
            false,
            format!(
                "crun {c} is built with CRIU, and libcriu2 is not installed: it answers \
                 \"could not load libcriu.so.2\""
            ),
        ),
        (Some(c), _, _) => (
            false,
            format!(
                "crun {c} is built without CRIU (no +CRIU in its version line): it answers \
                 \"configured runtime does not support checkpoint/restore\""
            ),
        ),
        (None, _, _) => (false, "crun is not installed".to_string()),
    };
    let mut paths = Vec::new();
    let mut push = |name: &str, (can, why): &(bool, String)| {
        paths.push(OciPath {
            name: name.into(),
            can_checkpoint: *can,
            why: why.clone(),
        })
    };
    push("runc alone", &runc);
    push("crun alone", &crun);
    if let Some(p) = v("podman") {
        let over = |(can, why): &(bool, String)| (*can, format!("through podman {p}: {why}"));
        push("podman over runc", &over(&runc));
        push("podman over crun", &over(&crun));
    }
    OciReport {
        userland: e.userland.clone(),
        versions: e.versions.clone(),
        paths,
    }
}

/// The report's section of `doctor`'s text.
pub fn render(r: &OciReport, o: &mut String) {
    let _ = writeln!(o, "\nOCI runtimes ({})", r.userland);
    for t in TOOLS {
        let v = r.versions.get(*t).map_or("-", String::as_str);
        let _ = writeln!(o, "  {t:<9} {v}");
    }
    for p in &r.paths {
        let can = if p.can_checkpoint { "can" } else { "CANNOT" };
        let _ = writeln!(o, "  {:<17} {can} checkpoint: {}", p.name, p.why);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crun_s_version_features() {
        let with =
            "\0crun version %s\0+SYSTEMD +SELINUX +APPARMOR +CAP +SECCOMP +EBPF +CRIU +YAJL\0";
        assert!(crun_built_with_criu(with));
        assert!(!crun_built_with_criu(&with.replace(" +CRIU", "")));
        assert!(!crun_built_with_criu(""));
    }

    #[test]
    fn paths_of_bookworm_and_trixie() {
        let versions = |crun: &str| {
            [
                ("podman", "4.3.1+ds1-8+deb12u1"),
                ("conmon", "2.1.6+ds1-1"),
                ("runc", "1.1.5+ds1-1+deb12u1"),
                ("crun", crun),
            ]
            .into_iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
        };
        let bookworm = OciEvidence {
            userland: "bookworm+oci".into(),
            versions: versions("1.8.1-1+deb12u1"),
            crun_criu: Some(false),
        };
        let r = analyze(&bookworm, Some("3.17.1"));
        let can: Vec<(&str, bool)> = r
            .paths
            .iter()
            .map(|p| (p.name.as_str(), p.can_checkpoint))
            .collect();
        assert_eq!(
            can,
            [
                ("runc alone", true),
                ("crun alone", false),
                ("podman over runc", true),
                ("podman over crun", false)
            ]
        );
        let mut text = String::new();
        render(&r, &mut text);
        insta::assert_snapshot!(text);
        let mut trixie = OciEvidence {
            crun_criu: Some(true),
            ..bookworm
        };
        let crun_can = |e: &OciEvidence| {
            let r = analyze(e, Some("4.1.1"));
            let p = r.paths.iter().find(|p| p.name == "crun alone").unwrap();
            (p.can_checkpoint, p.why.clone())
        };
        let (can, why) = crun_can(&trixie);
        assert!(!can && why.contains("could not load libcriu.so.2"), "{why}");
        trixie.versions.insert("libcriu2".into(), "4.1.1-1".into());
        assert!(analyze(&trixie, Some("4.1.1"))
            .paths
            .iter()
            .all(|p| p.can_checkpoint));
        let bare = analyze(&OciEvidence::default(), None);
        assert!(bare.paths.iter().all(|p| !p.can_checkpoint) && bare.paths.len() == 2);
    }
}
