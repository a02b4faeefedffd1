//! Guest userland variants: the default packages plus the packages a group of scenarios
//! needs. A variant is built (and cached) only when a selected scenario names it, so the
//! default image stays small and quick to build; scenarios of a variant share one boot of
//! its image.

/// Packages the harness adds to the vm crate's default userland
/// ([`crtest_vm::userland::DEFAULT_PACKAGES`]): the lxc backend's tools
/// (lxc-execute/-start/-checkpoint/-freeze) and LXC's own C/R test.
pub const LXC_PACKAGES: &[&str] = &["lxc", "lxc-tests"];

/// A named set of packages added to the default userland.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserlandVariant {
    pub name: &'static str,
    pub packages: &'static [&'static str],
    pub why: &'static str,
}

/// The variants scenarios may name with `userland-variant`.
pub const VARIANTS: &[UserlandVariant] = &[
    UserlandVariant {
        name: "vnc",
        packages: &[
            "tigervnc-standalone-server",
            "twm",
            "xterm",
            "vim-tiny",
            "x11-xserver-utils",
            "xfonts-base",
        ],
        why: "the linux-cr wiki's VNC desktop: Xvnc, twm, xterm, vi, xsetroot",
    },
    UserlandVariant {
        name: "zdtm",
        packages: &[
            "mount",
            "python3",
            "python-is-python3",
            "python3-yaml",
            "python3-protobuf",
            "make",
            "gawk",
            "nftables",
            "apparmor",
        ],
        why: "CRIU's zdtm tests: their hooks' tools (mount, python) and zdtm.py's python \
              and make; the libraries the tests link are added from their build",
    },
    UserlandVariant {
        name: "oci",
        packages: OCI_PACKAGES,
        why: "OCI runtimes: podman with conmon, runc and crun (crun has CRIU through \
              libcriu from trixie on)",
    },
    UserlandVariant {
        name: "oci-vnc",
        packages: &[],
        why: "the VNC desktop in an OCI container: `oci` and `vnc` together (see [`packages`])",
    },
];

/// The `oci` variant's packages (the `oci-vnc` variant has them too).
const OCI_PACKAGES: &[&str] = &["podman", "conmon", "runc", "crun", "catatonit"];

/// Whether `variant` is one of the OCI backends' userlands.
/// The userland variants some scenarios need, in their order, each once.
pub fn needed(scenarios: &[crate::model::scenario::Scenario]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for v in scenarios.iter().filter_map(|s| s.userland_variant.as_ref()) {
        if !out.contains(v) {
            out.push(v.clone());
        }
    }
    out
}

pub fn is_oci(variant: &str) -> bool {
    variant == "oci" || variant == "oci-vnc"
}

/// Packages a variant needs that only some suites name so: zdtm's hooks import pycriu, which
/// bookworm's `criu` package carries and later suites split into `python3-pycriu`.
pub fn suite_packages(variant: &str, suite: &str) -> Vec<&'static str> {
    match (variant, suite) {
        ("zdtm", "bookworm" | "bullseye") => vec![],
        ("zdtm", _) => vec!["python3-pycriu"],
        // crun loads libcriu.so.2 when it checkpoints; bookworm's crun has no CRIU.
        (v, "bookworm" | "bullseye") if is_oci(v) => vec![],
        (v, _) if is_oci(v) => vec!["libcriu2"],
        _ => vec![],
    }
}

pub fn find(name: &str) -> Option<&'static UserlandVariant> {
    VARIANTS.iter().find(|v| v.name == name)
}

pub fn names() -> Vec<&'static str> {
    VARIANTS.iter().map(|v| v.name).collect()
}

/// The packages of the userland for `variant` (the default image's for `None`).
pub fn packages(variant: Option<&str>) -> Vec<&'static str> {
    let mut p = crtest_vm::userland::DEFAULT_PACKAGES.to_vec();
    p.extend_from_slice(LXC_PACKAGES);
    // A variant made of others has their packages.
    let parts: &[&str] = match variant {
        Some("oci-vnc") => &["oci", "vnc"],
        Some(v) => &[v][..],
        None => &[],
    };
    for v in parts.iter().filter_map(|v| find(v)) {
        p.extend_from_slice(v.packages);
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_add_to_the_default_packages() {
        let base = packages(None);
        assert!(base.contains(&"criu") && !base.contains(&"twm"));
        let vnc = packages(Some("vnc"));
        assert!(vnc.starts_with(&base));
        assert!(vnc.contains(&"tigervnc-standalone-server"));
        assert_eq!(names(), ["vnc", "zdtm", "oci", "oci-vnc"]);
        assert!(packages(Some("oci-vnc")).contains(&"tigervnc-standalone-server"));
        assert!(OCI_PACKAGES
            .iter()
            .all(|p| packages(Some("oci-vnc")).contains(p)));
        assert_eq!(suite_packages("oci-vnc", "sid"), ["libcriu2"]);
        assert!(find("gnome").is_none());
        assert_eq!(suite_packages("zdtm", "trixie"), ["python3-pycriu"]);
        assert!(suite_packages("zdtm", "bookworm").is_empty());
        assert!(suite_packages("vnc", "sid").is_empty());
    }
}
