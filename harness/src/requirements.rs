//! Whether a cell meets a scenario's `requires`; an unmet one makes the scenario `skip`
//! with the requirement named.
//!
//! Versions and kernel options are known on the host before the guest boots
//! ([`unmet_on_cell`]); criu features and modules are probed in the guest, once each
//! ([`unmet_in_guest`]).

use crate::scenario::Requires;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

/// What is known about a cell before it boots.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub kernel_release: String,
    /// The kernel's config, when known.
    pub kernel_config: Option<BTreeMap<String, String>>,
    pub criu: Option<String>,
    pub lxc: Option<String>,
}

/// The numeric parts of a version: `1:3.17.1-2+deb12u2` -> [3, 17, 1]; `6.1.0-56-amd64` ->
/// [6, 1, 0].
pub fn numeric(version: &str) -> Vec<u64> {
    let v = version.split_once(':').map_or(version, |(_, rest)| rest);
    v.split(|c: char| !c.is_ascii_digit() && c != '.')
        .next()
        .unwrap_or("")
        .split('.')
        .map_while(|p| p.parse().ok())
        .collect()
}

/// `have >= want`, comparing numeric parts (missing parts count as 0).
pub fn at_least(have: &str, want: &str) -> bool {
    let (h, w) = (numeric(have), numeric(want));
    let n = h.len().max(w.len());
    let get = |v: &[u64], i| v.get(i).copied().unwrap_or(0);
    for i in 0..n {
        if get(&h, i) != get(&w, i) {
            return get(&h, i) > get(&w, i);
        }
    }
    true
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

/// Splits scenarios into those to run and `skip` results for those whose requirements
/// the cell does not meet.
pub fn partition(
    scenarios: &[crate::scenario::Scenario],
    facts: &Facts,
) -> (
    Vec<crate::scenario::Scenario>,
    Vec<crate::outcome::ScenarioResult>,
) {
    let mut run = Vec::new();
    let mut skipped = Vec::new();
    for sc in scenarios {
        match unmet_on_cell(&sc.requires, facts) {
            None => run.push(sc.clone()),
            Some(why) => {
                let mut r = crate::outcome::ScenarioResult::without_steps(
                    &sc.name,
                    crate::outcome::Outcome::Skip,
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

/// Probes run in the guest: `criu check --feature NAME` and `modprobe NAME`, each once.
pub fn unmet_in_guest(req: &Requires, criu: &str) -> Option<String> {
    static SEEN: Mutex<Option<HashMap<String, Option<String>>>> = Mutex::new(None);
    let probe = |key: String, f: &dyn Fn() -> Option<String>| -> Option<String> {
        let mut guard = SEEN.lock().unwrap_or_else(|e| e.into_inner());
        guard
            .get_or_insert_with(HashMap::new)
            .entry(key)
            .or_insert_with(f)
            .clone()
    };
    for feature in &req.criu_features {
        let why = probe(format!("feature:{feature}"), &|| {
            let args = ["check".to_string(), "--feature".into(), feature.clone()];
            match crate::command::run(criu, &args, Duration::from_secs(60)) {
                Ok(r) if r.ok() => None,
                Ok(r) => Some(format!(
                    "needs criu feature `{feature}`: `criu check --feature {feature}` says: {}",
                    r.tail(1)
                        .pop()
                        .unwrap_or_else(|| format!("status {}", r.status))
                )),
                Err(e) => Some(format!("needs criu feature `{feature}`: {e}")),
            }
        });
        if why.is_some() {
            return why;
        }
    }
    for module in &req.modules {
        let why = probe(format!("module:{module}"), &|| match crate::command::run(
            "modprobe",
            std::slice::from_ref(module),
            Duration::from_secs(30),
        ) {
            Ok(r) if r.ok() => None,
            Ok(r) => Some(format!(
                "needs kernel module `{module}`: {}",
                r.tail(1)
                    .pop()
                    .unwrap_or_else(|| format!("modprobe status {}", r.status))
            )),
            Err(e) => Some(format!("needs kernel module `{module}`: {e}")),
        });
        if why.is_some() {
            return why;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("3.17.1-2+deb12u2", "3.17", true)]
    #[case("3.17.1-2+deb12u2", "3.18", false)]
    #[case("1:5.0.2-1+deb12u4", "5.0", true)]
    #[case("6.1.0-56-amd64", "6.13", false)]
    #[case("6.13.2", "6.13", true)]
    #[case("4.1", "4.1.1", false)]
    fn versions(#[case] have: &str, #[case] want: &str, #[case] ok: bool) {
        assert_eq!(at_least(have, want), ok);
    }

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
