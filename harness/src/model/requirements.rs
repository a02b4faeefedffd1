//! Whether a cell meets a scenario's `requires`; an unmet one makes the scenario `skip`
//! with the requirement named.
//!
//! Versions and kernel options are known on the host before the guest boots
//! ([`unmet_on_cell`]); criu features and modules are probed in the guest, once each
//! (`exec::requires`).

use crate::diagnose::version::at_least;
use crate::model::scenario::Requires;
use std::collections::BTreeMap;

/// What is known about a cell before it boots.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub kernel_release: String,
    /// The kernel's config, when known.
    pub kernel_config: Option<BTreeMap<String, String>>,
    pub criu: Option<String>,
    pub lxc: Option<String>,
}

/// The first requirement the cell does not meet, as a sentence.
pub fn unmet_on_cell(req: &Requires, facts: &Facts) -> Option<String> {
    if let Some(want) = &req.min_kernel {
        if !at_least(&facts.kernel_release, want) {
            return Some(format!(
                "needs kernel >= {want}, have {}",
                facts.kernel_release
            ));
        }
    }
    for (tool, want, have) in [
        ("criu", &req.min_criu, &facts.criu),
        ("lxc", &req.min_lxc, &facts.lxc),
    ] {
        if let Some(want) = want {
            match have {
                Some(h) if at_least(h, want) => {}
                Some(h) => return Some(format!("needs {tool} >= {want}, have {h}")),
                None => {
                    return Some(format!(
                        "needs {tool} >= {want}, but {tool} is not installed"
                    ))
                }
            }
        }
    }
    if let Some(config) = &facts.kernel_config {
        for opt in &req.kernel_config {
            let have = config.get(opt).map_or("n", String::as_str);
            if have != "y" && have != "m" {
                return Some(format!("needs {opt}=y or m, the kernel has {opt}={have}"));
            }
        }
    }
    None
}

/// Splits scenarios into those to run (each with its expectation for the cell's criu, see
/// [`Expect::for_criu`](crate::model::scenario::Expect::for_criu)) and `skip` results for
/// those whose requirements the cell does not meet.
pub fn partition(
    scenarios: &[crate::model::scenario::Scenario],
    facts: &Facts,
) -> (
    Vec<crate::model::scenario::Scenario>,
    Vec<crate::model::outcome::ScenarioResult>,
) {
    let mut run = Vec::new();
    let mut skipped = Vec::new();
    for sc in scenarios {
        match unmet_on_cell(&sc.requires, facts) {
            None => run.push(crate::model::scenario::Scenario {
                expect: sc.expect.for_criu(facts.criu.as_deref()),
                ..sc.clone()
            }),
            Some(why) => {
                let mut r = crate::model::outcome::ScenarioResult::without_steps(
                    &sc.name,
                    crate::model::outcome::Outcome::Skip,
                    Default::default(),
                );
                r.failure = None;
                r.detail = Some(why);
                skipped.push(r);
            }
        }
    }
    (run, skipped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cell_requirements_name_what_is_missing() {
        let facts = Facts {
            kernel_release: "6.1.0-56-amd64".into(),
            kernel_config: Some(BTreeMap::from([("CONFIG_A".into(), "m".into())])),
            criu: Some("3.17.1".into()),
            lxc: None,
        };
        let mut req = Requires::default();
        assert_eq!(unmet_on_cell(&req, &facts), None);
        req.kernel_config = vec!["CONFIG_A".into(), "CONFIG_B".into()];
        assert_eq!(
            unmet_on_cell(&req, &facts).unwrap(),
            "needs CONFIG_B=y or m, the kernel has CONFIG_B=n"
        );
        req.min_criu = Some("4.0".into());
        assert_eq!(
            unmet_on_cell(&req, &facts).unwrap(),
            "needs criu >= 4.0, have 3.17.1"
        );
        req.min_criu = None;
        req.min_lxc = Some("5.0".into());
        assert!(unmet_on_cell(&req, &facts)
            .unwrap()
            .contains("lxc is not installed"));
    }
}
