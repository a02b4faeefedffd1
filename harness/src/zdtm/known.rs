//! What is known of zdtm tests that do not pass here (`harness/data/zdtm-known.toml`): for
//! the cells a rule names (criu, kernel, suite), a test is expected to fail (an `xfail` when
//! its failure says what the rule says) or is skipped, each with the evidence for why. Data,
//! not code, like the compatibility rules.

use crate::diagnose::version::{in_range, parse_range};
use crate::model::scenario::{Expect, ExpectedOutcome, Mode, Scenario, ZdtmFlavor};
use serde::Deserialize;

/// One rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Known {
    /// Test names the rule is about: `static/NAME` in every flavor, `static/NAME@uns` in
    /// one (`@h`, `@ns`, `@uns`).
    pub tests: Vec<String>,
    /// Version ranges of the cell (`">=3.17,<3.18"`); absent: any. `zdtm` is the version of
    /// the tree the tests came from (a test's own bug), `criu` the cell's criu.
    pub zdtm: Option<String>,
    pub criu: Option<String>,
    pub kernel: Option<String>,
    /// The userland suite; absent: any.
    pub suite: Option<String>,
    /// The modes the rule holds in (`["mntns-compat"]`); absent: every mode.
    #[serde(default)]
    pub modes: Option<Vec<Mode>>,
    /// `fail` (an expected failure), `skip` (not run here), or `visible` (it passes; the
    /// visible-state items of `visible-state-ignore` change for a reason of the test's own).
    pub outcome: String,
    /// For `visible`: the items (`maps`, `fds.3.flags`, ...) the reason covers.
    #[serde(default)]
    pub visible_state_ignore: Vec<String>,
    /// The failure class the diagnosis must name.
    pub class: Option<String>,
    /// Text the failure's first error line (or message) must contain.
    pub contains: Option<String>,
    /// Why, with the evidence.
    pub reason: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    known: Vec<Known>,
}

/// Why a rules text is refused; each but the first names the rule by its tests.
#[derive(Debug, thiserror::Error)]
pub enum KnownError {
    #[error(transparent)]
    Toml(#[from] toml::de::Error),
    #[error("{tests:?}")]
    Range {
        tests: Vec<String>,
        #[source]
        source: crate::diagnose::version::RangeError,
    },
    #[error("{0:?}: outcome must be `fail`, `skip` or `visible`")]
    Outcome(Vec<String>),
    #[error("{0:?}: `visible-state-ignore` goes with outcome `visible`, and only with it")]
    IgnoreWithoutVisible(Vec<String>),
    #[error("{tests:?}")]
    Ignore {
        tests: Vec<String>,
        #[source]
        source: crate::model::visible::IgnoreError,
    },
}

/// Parses a rules text, checking every range and outcome.
pub fn parse(text: &str) -> Result<Vec<Known>, KnownError> {
    let f: File = toml::from_str(text)?;
    for k in &f.known {
        for r in [&k.zdtm, &k.criu, &k.kernel].into_iter().flatten() {
            parse_range(r).map_err(|source| KnownError::Range {
                tests: k.tests.clone(),
                source,
            })?;
        }
        if !["fail", "skip", "visible"].contains(&k.outcome.as_str()) {
            return Err(KnownError::Outcome(k.tests.clone()));
        }
        if (k.outcome == "visible") == k.visible_state_ignore.is_empty() {
            return Err(KnownError::IgnoreWithoutVisible(k.tests.clone()));
        }
        for item in &k.visible_state_ignore {
            crate::model::visible::Ignore {
                item: item.clone(),
                reason: k.reason.clone(),
            }
            .validate()
            .map_err(|source| KnownError::Ignore {
                tests: k.tests.clone(),
                source,
            })?;
        }
    }
    Ok(f.known)
}

/// The shipped rules.
pub fn shipped() -> Vec<Known> {
    parse(include_str!("../../data/zdtm-known.toml"))
        .expect("harness/data/zdtm-known.toml is valid (checked by a unit test)")
}

/// The cell a rule is matched against.
#[derive(Debug, Clone, Default)]
pub struct CellFacts {
    pub zdtm: Option<String>,
    pub criu: Option<String>,
    pub kernel: String,
    pub suite: String,
}

/// The first rule about `test` (`static/NAME`) in `flavor` and `mode` that holds on `cell`.
pub fn find<'a>(
    rules: &'a [Known],
    test: &str,
    flavor: ZdtmFlavor,
    mode: &Mode,
    cell: &CellFacts,
) -> Option<&'a Known> {
    let flavored = format!("{test}@{}", flavor.as_str());
    rules.iter().find(|k| {
        k.tests.iter().any(|t| *t == test || *t == flavored)
            && k.modes.as_ref().is_none_or(|m| m.contains(mode))
            && k.suite.as_ref().is_none_or(|s| s == &cell.suite)
            && k.kernel.as_ref().is_none_or(|r| in_range(&cell.kernel, r))
            && k.zdtm
                .as_ref()
                .is_none_or(|r| cell.zdtm.as_deref().is_some_and(|z| in_range(z, r)))
            && k.criu
                .as_ref()
                .is_none_or(|r| cell.criu.as_deref().is_some_and(|c| in_range(c, r)))
    })
}

/// Applies a `fail` or `visible` rule to a scenario: a `fail` rule's expectation becomes
/// the scenario's; a `visible` rule adds its relaxations. The importer's own relaxations
/// stay either way.
pub fn expect(sc: &mut Scenario, k: &Known) {
    let mut relax = std::mem::take(&mut sc.expect.visible_state_ignore);
    relax.extend(
        k.visible_state_ignore
            .iter()
            .map(|item| crate::model::visible::Ignore {
                item: item.clone(),
                reason: k.reason.clone(),
            }),
    );
    if k.outcome == "fail" {
        sc.expect = Expect {
            outcome: ExpectedOutcome::Fail,
            class: k.class.clone(),
            contains: k.contains.clone(),
            reason: Some(k.reason.clone()),
            ..Expect::default()
        };
    }
    sc.expect.visible_state_ignore = relax;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_rules_parse() {
        let rules = shipped();
        assert!(!rules.is_empty());
        for k in &rules {
            assert!(!k.reason.trim().is_empty(), "{:?} has no reason", k.tests);
            if k.outcome == "fail" {
                assert!(
                    k.contains.is_some() || k.class.is_some(),
                    "{:?}: an expected failure names its evidence",
                    k.tests
                );
            }
        }
    }

    #[test]
    fn a_newer_tree_than_the_cells_criu_expects_what_criu_learned_later() {
        let rules = shipped();
        let cell = |zdtm: &str, criu: &str, kernel: &str| CellFacts {
            zdtm: Some(zdtm.into()),
            criu: Some(criu.into()),
            kernel: kernel.into(),
            suite: "bookworm".into(),
        };
        let old = cell("4.1.1", "3.17.1-2+deb12u2", "6.1.0-57-amd64");
        for test in [
            "static/caps01",
            "static/pidfd_kill",
            "static/ghost_multi_hole01",
        ] {
            assert_eq!(
                find(&rules, test, ZdtmFlavor::H, &Mode::PLAIN, &old).map(|k| k.outcome.as_str()),
                Some("fail"),
                "{test}"
            );
        }
        // The same tree with its own criu, or the tree of the cell's criu: nothing to expect.
        assert!(find(
            &rules,
            "static/caps01",
            ZdtmFlavor::H,
            &Mode::PLAIN,
            &cell("4.1.1", "4.1.1-1", "6.1.0")
        )
        .is_none());
        assert!(find(
            &rules,
            "static/caps01",
            ZdtmFlavor::H,
            &Mode::PLAIN,
            &cell("3.17.1", "3.17.1-2", "6.1.0")
        )
        .is_none());
        // pidfs came with 6.9: a dead task's pidfd only fails there.
        assert!(find(
            &rules,
            "static/pidfd_dead",
            ZdtmFlavor::H,
            &Mode::PLAIN,
            &old
        )
        .is_none());
        assert!(find(
            &rules,
            "static/pidfd_dead",
            ZdtmFlavor::H,
            &Mode::PLAIN,
            &cell("4.1.1", "3.17.1-2", "6.12.57")
        )
        .is_some());
    }

    #[test]
    fn rules_match_by_test_and_cell() {
        let rules = parse(
            r#"
[[known]]
tests = ["static/a", "static/b"]
criu = ">=3.17,<3.18"
outcome = "fail"
contains = "x"
reason = "old criu"

[[known]]
tests = ["static/a"]
suite = "trixie"
outcome = "skip"
reason = "no device"
"#,
        )
        .unwrap();
        let cell = |criu: &str, suite: &str| CellFacts {
            zdtm: Some("3.17.1".into()),
            criu: Some(criu.into()),
            kernel: "6.1.0".into(),
            suite: suite.into(),
        };
        assert_eq!(
            find(
                &rules,
                "static/b",
                ZdtmFlavor::H,
                &Mode::PLAIN,
                &cell("3.17.1-2", "bookworm")
            )
            .map(|k| k.reason.as_str()),
            Some("old criu")
        );
        assert!(find(
            &rules,
            "static/b",
            ZdtmFlavor::H,
            &Mode::PLAIN,
            &cell("4.1.1", "bookworm")
        )
        .is_none());
        assert_eq!(
            find(
                &rules,
                "static/a",
                ZdtmFlavor::H,
                &Mode::PLAIN,
                &cell("4.1.1", "trixie")
            )
            .map(|k| k.outcome.as_str()),
            Some("skip")
        );
        let uns =
            parse("[[known]]\ntests = [\"static/t@uns\"]\noutcome = \"fail\"\nreason = \"r\"\n")
                .unwrap();
        let c = cell("3.17.1-2", "bookworm");
        assert!(find(&uns, "static/t", ZdtmFlavor::Uns, &Mode::PLAIN, &c).is_some());
        assert!(find(&uns, "static/t", ZdtmFlavor::Ns, &Mode::PLAIN, &c).is_none());
        let compat = parse(
            "[[known]]\ntests = [\"static/t\"]\nmodes = [\"mntns-compat\"]\noutcome = \"fail\"\nreason = \"r\"\n",
        )
        .unwrap();
        let m = Mode::parse("mntns-compat").unwrap();
        assert!(find(&compat, "static/t", ZdtmFlavor::Ns, &m, &c).is_some());
        assert!(find(&compat, "static/t", ZdtmFlavor::Ns, &Mode::PLAIN, &c).is_none());
        assert!(parse("[[known]]\ntests = []\noutcome = \"maybe\"\nreason = \"r\"\n").is_err());
        assert!(parse(
            "[[known]]\ntests = []\ncriu = \"~3\"\noutcome = \"skip\"\nreason = \"r\"\n"
        )
        .is_err());
    }
}
