//! `crtest doctor`: do this kernel and these C/R tools work together, and if not, why?
//!
//! It gathers the versions, checks the kernel's config against `kernel-config/`, runs
//! `criu check` (basic, `--all`, and each feature) in the guest or on the host, evaluates the
//! compatibility rules of `harness/data/compat-rules.toml`, and gives a verdict with the
//! evidence that decided it.

use crate::diagnose::version::{in_range, parse_range};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write;

/// One probe command's result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeOutput {
    pub command: Vec<String>,
    pub status: i32,
    pub output: String,
}

/// The commands run in the guest (or on the host) to gather the evidence.
pub fn probes() -> Vec<Vec<String>> {
    let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    vec![
        v(&["criu", "--version"]),
        v(&["criu", "check"]),
        v(&["criu", "check", "--all"]),
        v(&["sh", "-c", &feature_loop()]),
    ]
}

/// Features `criu check --feature NAME` knows (criu 3.17's list; criu has no command to
/// list them). A name a criu does not know is reported `unknown`, not missing.
pub const CRIU_FEATURES: &[&str] = &[
    "mem_dirty_track",
    "aio_remap",
    "timerfd",
    "tun_ns",
    "userns",
    "fdinfo_lock",
    "seccomp_suspend",
    "seccomp_filters",
    "loginuid",
    "cgroupns",
    "tcp_half_closed",
    "compat_cr",
    "uffd",
    "uffd-noncoop",
    "can_map_vdso",
    "sk_ns",
    "sk_unix_file",
    "net_diag_raw",
    "link_nsid",
    "kcmp_epoll",
    "timens",
    "external_net_ns",
    "clone3_set_tid",
    "newifindex",
    "pidfd_store",
    "ns_pid",
    "apparmor_stacking",
    "network_lock_nftables",
    "sockopt_buf_lock",
    "memfd_hugetlb",
    "openat2",
    "get_rseq_conf",
];

/// A shell loop printing `NAME yes|no|unknown` for each feature.
fn feature_loop() -> String {
    format!(
        "for f in {}; do out=$(criu check --feature $f 2>&1); \
         if [ $? -eq 0 ]; then echo \"$f yes\"; \
         else case \"$out\" in *\"Unknown feature\"*) echo \"$f unknown\";; *) echo \"$f no\";; esac; fi; done",
        CRIU_FEATURES.join(" ")
    )
}

/// What is known about the cell before the analysis.
#[derive(Debug, Clone, Default)]
pub struct Evidence {
    pub cell: String,
    pub kernel_release: String,
    pub kernel_source: String,
    pub kernel_config: Option<BTreeMap<String, String>>,
    pub criu_package: Option<String>,
    pub lxc: Option<String>,
    pub qemu: Option<String>,
    pub accel: String,
    pub probes: Vec<ProbeOutput>,
    /// What the userland's `oci` image holds (`doctor --oci`).
    pub oci: Option<crate::diagnose::oci::OciEvidence>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DoctorReport {
    pub cell: String,
    pub versions: Versions,
    pub kernel_config: ConfigCheck,
    pub criu_check: CriuCheck,
    pub rules: Vec<RuleHit>,
    pub rules_known: usize,
    /// Which OCI ways to checkpoint the userland can take (`doctor --oci`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oci: Option<crate::diagnose::oci::OciReport>,
    pub verdict: Verdict,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Versions {
    pub kernel: String,
    pub kernel_source: String,
    pub criu: Option<String>,
    pub lxc: Option<String>,
    pub qemu: Option<String>,
    pub accel: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ConfigCheck {
    /// False when the kernel's config is not known.
    pub checked: bool,
    pub required: usize,
    /// Required options not set, each with why it is needed.
    pub missing: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CriuCheck {
    /// `criu check` exited 0.
    pub ok: bool,
    pub summary: String,
    pub errors: Vec<String>,
    /// Warnings and errors of `criu check --all` (the checks beyond the basic ones).
    pub warnings: Vec<String>,
    pub features_present: Vec<String>,
    pub features_missing: Vec<String>,
    /// Class of the first error, when criu check failed.
    pub class: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RuleHit {
    pub id: String,
    pub severity: String,
    pub symptom: String,
    pub cause: String,
    pub fix: String,
    /// The commit that made or mended the incompatibility, as `crtest bisect` named it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// The facts that made the rule apply.
    pub evidence: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Verdict {
    pub compatible: bool,
    /// What decided it, most important first.
    pub decided_by: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Rule {
    id: String,
    kernel: Option<String>,
    criu: Option<String>,
    lxc: Option<String>,
    config_missing: Option<String>,
    feature_missing: Option<String>,
    severity: String,
    symptom: String,
    cause: String,
    fix: String,
    /// `SHA subject (first release; how it was found)`: the commit a bisection named.
    commit: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    rule: Vec<Rule>,
}

#[derive(Debug, thiserror::Error)]
#[error("compatibility rules: {0}")]
pub struct RulesError(String);

/// Parses a rules file (the shipped one is `harness/data/compat-rules.toml`).
fn parse_rules(text: &str) -> Result<Vec<Rule>, RulesError> {
    let file: RuleFile = toml::from_str(text).map_err(|e| RulesError(e.to_string()))?;
    for r in &file.rule {
        for range in [&r.kernel, &r.criu, &r.lxc].into_iter().flatten() {
            parse_range(range).map_err(|e| RulesError(format!("rule {}: {e}", r.id)))?;
        }
        if r.severity != "incompatible" && r.severity != "warning" {
            return Err(RulesError(format!(
                "rule {}: severity must be `incompatible` or `warning`",
                r.id
            )));
        }
    }
    Ok(file.rule)
}

fn shipped_rules() -> Vec<Rule> {
    parse_rules(include_str!("../../data/compat-rules.toml"))
        .expect("harness/data/compat-rules.toml is valid (checked by a unit test)")
}

fn probe<'a>(e: &'a Evidence, args: &[&str]) -> Option<&'a ProbeOutput> {
    e.probes.iter().find(|p| {
        p.command
            .iter()
            .map(String::as_str)
            .eq(args.iter().copied())
    })
}

/// Reads `criu check` and its feature list from the probes.
fn criu_check(e: &Evidence) -> CriuCheck {
    let basic = probe(e, &["criu", "check"]);
    let all = probe(e, &["criu", "check", "--all"]);
    let features = e
        .probes
        .iter()
        .find(|p| p.command.first().is_some_and(|c| c == "sh"));
    let ok = basic.is_some_and(|p| p.status == 0);
    let text = basic.map_or("", |p| p.output.as_str());
    let errors: Vec<String> = text
        .lines()
        .filter(|l| l.contains("Error") || l.contains("error:"))
        .map(|l| l.trim().to_string())
        .collect();
    let summary = match basic {
        None => "not run".to_string(),
        Some(p) => p
            .output
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("(no output)")
            .trim()
            .to_string(),
    };
    let warnings = all
        .map(|p| {
            p.output
                .lines()
                .filter(|l| l.starts_with("Warn") || l.contains("Error ("))
                .map(|l| l.trim().to_string())
                .collect()
        })
        .unwrap_or_default();
    let mut present = Vec::new();
    let mut missing = Vec::new();
    for line in features.map_or("", |p| p.output.as_str()).lines() {
        match line.split_once(' ') {
            Some((f, "yes")) => present.push(f.to_string()),
            Some((f, "no")) => missing.push(f.to_string()),
            _ => {}
        }
    }
    let class = (!ok).then(|| {
        let errno = errors.iter().find_map(|l| crate::diagnose::errno::find(l));
        crate::diagnose::class::classify(
            errors.iter().map(String::as_str).chain([summary.as_str()]),
            errno.as_deref(),
        )
    });
    CriuCheck {
        ok,
        summary,
        errors,
        warnings,
        features_present: present,
        features_missing: missing,
        class,
    }
}

/// The criu version: what criu says, else the package's.
fn criu_version(e: &Evidence) -> Option<String> {
    probe(e, &["criu", "--version"])
        .filter(|p| p.status == 0)
        .and_then(|p| crate::diagnose::criu_log::parse_version(&p.output))
        .or_else(|| e.criu_package.clone())
}

/// Evaluates everything into a report.
pub fn analyze(e: &Evidence) -> DoctorReport {
    analyze_with(e, &shipped_rules())
}

fn analyze_with(e: &Evidence, rules: &[Rule]) -> DoctorReport {
    let required = crate::diagnose::kernel_config::required();
    let kernel_config = ConfigCheck {
        checked: e.kernel_config.is_some(),
        required: required.len(),
        missing: e
            .kernel_config
            .as_ref()
            .map(|c| crate::diagnose::kernel_config::missing(c, &required))
            .unwrap_or_default(),
    };
    let check = criu_check(e);
    let criu = criu_version(e);
    let mut hits = Vec::new();
    for r in rules {
        let mut evidence = Vec::new();
        let mut applies = true;
        for (what, range, have) in [
            ("kernel", &r.kernel, Some(e.kernel_release.clone())),
            ("criu", &r.criu, criu.clone()),
            ("lxc", &r.lxc, e.lxc.clone()),
        ] {
            let Some(range) = range else { continue };
            match have {
                Some(h) if in_range(&h, range) => evidence.push(format!("{what} {h} is {range}")),
                _ => applies = false,
            }
        }
        if let Some(opt) = &r.config_missing {
            let have = e
                .kernel_config
                .as_ref()
                .map(|c| c.get(opt).map_or("n", String::as_str));
            match have {
                Some(v) if v != "y" && v != "m" => evidence.push(format!("{opt}={v}")),
                _ => applies = false,
            }
        }
        if let Some(f) = &r.feature_missing {
            if check.features_missing.contains(f) {
                evidence.push(format!("`criu check --feature {f}` fails"));
            } else {
                applies = false;
            }
        }
        if applies {
            hits.push(RuleHit {
                id: r.id.clone(),
                severity: r.severity.clone(),
                symptom: r.symptom.clone(),
                cause: r.cause.clone(),
                fix: r.fix.clone(),
                commit: r.commit.clone(),
                evidence,
            });
        }
    }
    let mut decided_by = Vec::new();
    for h in hits.iter().filter(|h| h.severity == "incompatible") {
        decided_by.push(format!(
            "rule {}: {} ({})",
            h.id,
            h.cause,
            h.evidence.join(", ")
        ));
    }
    if !check.ok {
        decided_by.push(format!(
            "`criu check` failed{}: {}",
            check
                .class
                .as_ref()
                .map(|c| format!(" [{c}]"))
                .unwrap_or_default(),
            check.errors.first().unwrap_or(&check.summary)
        ));
    }
    let compatible = decided_by.is_empty();
    if compatible {
        decided_by.push(format!(
            "`criu check` says \"{}\" and no known incompatibility applies",
            check.summary
        ));
    }
    let oci = e
        .oci
        .as_ref()
        .map(|o| crate::diagnose::oci::analyze(o, criu.as_deref()));
    DoctorReport {
        cell: e.cell.clone(),
        versions: Versions {
            kernel: e.kernel_release.clone(),
            kernel_source: e.kernel_source.clone(),
            criu,
            lxc: e.lxc.clone(),
            qemu: e.qemu.clone(),
            accel: e.accel.clone(),
        },
        kernel_config,
        criu_check: check,
        rules: hits,
        rules_known: rules.len(),
        oci,
        verdict: Verdict {
            compatible,
            decided_by,
        },
    }
}

/// The report for people.
pub fn render(r: &DoctorReport) -> String {
    let mut o = String::new();
    let none = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let _ = writeln!(o, "crtest doctor: {}", r.cell);
    let _ = writeln!(o, "\nversions");
    let _ = writeln!(
        o,
        "  kernel  {} ({})",
        r.versions.kernel, r.versions.kernel_source
    );
    let _ = writeln!(o, "  criu    {}", none(&r.versions.criu));
    let _ = writeln!(o, "  lxc     {}", none(&r.versions.lxc));
    let _ = writeln!(o, "  qemu    {}", none(&r.versions.qemu));
    let _ = writeln!(o, "  accel   {}", r.versions.accel);
    let k = &r.kernel_config;
    let _ = writeln!(
        o,
        "\nkernel config ({} required options, kernel-config/criu.config)",
        k.required
    );
    if !k.checked {
        let _ = writeln!(o, "  not checked: the kernel's config is not known");
    } else if k.missing.is_empty() {
        let _ = writeln!(o, "  all required options are set");
    } else {
        for m in &k.missing {
            let _ = writeln!(o, "  missing {m}");
        }
    }
    let c = &r.criu_check;
    let _ = writeln!(o, "\ncriu check");
    let _ = writeln!(o, "  {}: {}", if c.ok { "ok" } else { "FAILED" }, c.summary);
    for e in c.errors.iter().filter(|e| **e != c.summary).take(5) {
        let _ = writeln!(o, "  {e}");
    }
    if let Some(class) = &c.class {
        let _ = writeln!(o, "  class: {class}");
    }
    let _ = writeln!(
        o,
        "  features: {} present, {} missing{}",
        c.features_present.len(),
        c.features_missing.len(),
        if c.features_missing.is_empty() {
            String::new()
        } else {
            format!(": {}", c.features_missing.join(", "))
        }
    );
    for w in c.warnings.iter().take(8) {
        let _ = writeln!(o, "  {w}");
    }
    if let Some(oci) = &r.oci {
        crate::diagnose::oci::render(oci, &mut o);
    }
    let _ = writeln!(
        o,
        "\ncompatibility rules ({} known, {} apply)",
        r.rules_known,
        r.rules.len()
    );
    for h in &r.rules {
        let _ = writeln!(o, "  [{}] {}", h.severity, h.id);
        let _ = writeln!(o, "    symptom:  {}", h.symptom);
        let _ = writeln!(o, "    cause:    {}", h.cause);
        let _ = writeln!(o, "    fix:      {}", h.fix);
        if let Some(c) = &h.commit {
            let _ = writeln!(o, "    commit:   {c}");
        }
        let _ = writeln!(o, "    evidence: {}", h.evidence.join(", "));
    }
    let _ = writeln!(
        o,
        "\nverdict: {}",
        if r.verdict.compatible {
            "compatible"
        } else {
            "NOT compatible"
        }
    );
    for d in &r.verdict.decided_by {
        let _ = writeln!(o, "  {d}");
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(cmd: &[&str], status: i32, output: &str) -> ProbeOutput {
        ProbeOutput {
            command: cmd.iter().map(|s| s.to_string()).collect(),
            status,
            output: output.into(),
        }
    }

    fn evidence(kernel: &str, criu: &str, check_ok: bool) -> Evidence {
        let check = if check_ok {
            p(&["criu", "check"], 0, "Looks good.\n")
        } else {
            p(
                &["criu", "check"],
                1,
                "Error (criu/vdso.c:627): vdso: Unexpected rt vDSO area bounds\nError (criu/kerndat.c:1800): kerndat_vdso_fill_symtable failed when initializing kerndat.\n",
            )
        };
        Evidence {
            cell: format!("{kernel}+test"),
            kernel_release: kernel.into(),
            kernel_source: "debian:linux-image-x".into(),
            // Every required option set, but soft-dirty tracking.
            kernel_config: Some(
                crate::diagnose::kernel_config::required()
                    .into_iter()
                    .filter(|r| r.option != "CONFIG_MEM_SOFT_DIRTY")
                    .map(|r| (r.option, "y".to_string()))
                    .collect(),
            ),
            criu_package: Some(format!("{criu}-1")),
            lxc: None,
            qemu: Some("QEMU emulator version 7.2.22".into()),
            accel: "tcg".into(),
            probes: vec![
                p(&["criu", "--version"], 0, &format!("Version: {criu}\n")),
                check,
                p(&["criu", "check", "--all"], 0, "Warn  (criu/cr-check.c:1230): Dirty tracking is OFF.\nLooks good but some kernel features are missing\n"),
                p(&["sh", "-c", "..."], 0, "mnt_id yes\ntimens yes\nuffd-noncoop no\n"),
            ],
            oci: None,
        }
    }

    #[test]
    fn shipped_rules_parse() {
        assert!(!shipped_rules().is_empty());
        assert!(parse_rules(
            "[[rule]]\nid='x'\nkernel='=6'\nseverity='warning'\nsymptom=''\ncause=''\nfix=''\n"
        )
        .is_err());
        assert!(
            parse_rules("[[rule]]\nid='x'\nseverity='bad'\nsymptom=''\ncause=''\nfix=''\n")
                .is_err()
        );
    }

    /// Mutated rule files give errors or rules, never a panic, and evaluating whatever
    /// parses never panics either.
    #[test]
    fn mutated_rules_never_panic() {
        let text = include_str!("../../data/compat-rules.toml").as_bytes();
        let mut seed: u64 = 7;
        let mut next = move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as usize
        };
        let alphabet = b"=<>,.0123456789[]\"#\n az";
        let e = evidence("6.13.4-amd64", "3.17.1", false);
        for round in 0..2000 {
            let mut b = text.to_vec();
            if round % 2 == 0 {
                b.truncate(next() % b.len());
            }
            for _ in 0..1 + next() % 6 {
                let at = next() % b.len().max(1);
                if !b.is_empty() {
                    b[at] = alphabet[next() % alphabet.len()];
                }
            }
            if let Ok(rules) = parse_rules(&String::from_utf8_lossy(&b)) {
                let _ = render(&analyze_with(&e, &rules));
            }
        }
    }

    #[test]
    fn ranges() {
        assert!(in_range("6.13.2", ">=6.13"));
        assert!(!in_range("6.1.0-56-amd64", ">=6.13"));
        assert!(in_range("3.17.1", "<4.1"));
        assert!(in_range("5.0.2", ">=5.0,<6.0"));
        assert!(!in_range("6.0.1", ">=5.0,<6.0"));
    }

    #[test]
    fn a_matching_pair_is_compatible_with_warnings() {
        let r = analyze(&evidence("6.1.0-56-amd64", "3.17.1", true));
        assert!(r.verdict.compatible, "{r:?}");
        assert_eq!(r.criu_check.features_missing, ["uffd-noncoop"]);
        let ids: Vec<_> = r.rules.iter().map(|h| h.id.as_str()).collect();
        assert!(
            ids.contains(&"no-soft-dirty") && ids.contains(&"no-userfaultfd"),
            "{ids:?}"
        );
        assert!(r
            .kernel_config
            .missing
            .iter()
            .any(|m| m.starts_with("CONFIG_MEM_SOFT_DIRTY")));
    }

    #[test]
    fn the_vdso_mismatch_is_named() {
        let r = analyze(&evidence("6.13.4-amd64", "3.17.1", false));
        assert!(!r.verdict.compatible);
        assert!(
            r.verdict.decided_by[0].starts_with("rule vdso-layout-6.13"),
            "{:?}",
            r.verdict
        );
        assert_eq!(r.criu_check.class.as_deref(), Some("version-mismatch"));
        insta::assert_snapshot!(render(&r));
    }

    #[test]
    fn a_7_2_kernel_warns_of_what_criu_4_1_1_cannot_dump() {
        const RULES: [&str; 2] = ["so-passcred-6.16", "udplite-7.1"];
        let applying = |kernel: &str, criu: &str| -> Vec<String> {
            let r = analyze(&evidence(kernel, criu, true));
            r.rules
                .iter()
                .map(|h| h.id.clone())
                .filter(|id| RULES.contains(&id.as_str()))
                .collect()
        };
        assert_eq!(applying("7.2.13+deb14-amd64", "4.1.1"), RULES);
        assert!(applying("7.2.13+deb14-amd64", "4.2.1").is_empty());
        // The commit a bisection found is shown with the rule.
        let r = analyze(&evidence("7.2.13+deb14-amd64", "4.1.1", true));
        let hit = r.rules.iter().find(|h| h.id == RULES[0]).unwrap();
        assert!(hit
            .commit
            .as_deref()
            .is_some_and(|c| c.starts_with("4b73985955ec")));
        assert!(render(&r)
            .contains("    commit:   4b73985955ecc01604d8ed1247605a5875042e4c criu/sockets"));
        // Before 6.16 neither applies.
        assert!(applying("6.12.118+deb13-amd64", "4.1.1").is_empty());
    }

    #[test]
    fn newer_criu_on_the_same_kernel_is_fine() {
        let r = analyze(&evidence("6.13.4-amd64", "4.1", true));
        assert!(r.verdict.compatible, "{:?}", r.verdict);
    }
}
