//! A scenario's requirements that only the guest can answer: criu features and kernel
//! modules, each probed once per guest.

use crate::model::scenario::Requires;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// Probes run in the guest: `criu check --feature NAME`, `criu --help` (for the options it
/// lists) and `modprobe NAME`, each once.
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
            match crtest_vm::command::run(criu, &args, Duration::from_secs(60)) {
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
    for option in &req.criu_options {
        let help = probe("help".into(), &|| match crtest_vm::command::run(
            criu,
            &["--help".to_string()],
            Duration::from_secs(30),
        ) {
            Ok(r) => Some(r.output),
            Err(e) => Some(format!("(criu --help failed: {e})")),
        })
        .unwrap_or_default();
        if !lists_option(&help, option) {
            return Some(format!(
                "needs criu option `{option}`, which `criu --help` does not list"
            ));
        }
    }
    for module in &req.modules {
        let why = probe(
            format!("module:{module}"),
            &|| match crtest_vm::command::run(
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
            },
        );
        if why.is_some() {
            return why;
        }
    }
    None
}

/// Whether `criu --help` lists `option` (as a whole word: `--lazy-pages` is not
/// `--lazy-pages-x`).
fn lists_option(help: &str, option: &str) -> bool {
    help.match_indices(option).any(|(i, _)| {
        let after = help[i + option.len()..].chars().next();
        !matches!(after, Some(c) if c.is_ascii_alphanumeric() || c == '-' || c == '_')
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_option_is_listed_as_a_whole_word() {
        let help = "  --mntns-compat-mode   use the old way\n  --lazy-pages-x\n";
        assert!(super::lists_option(help, "--mntns-compat-mode"));
        assert!(!super::lists_option(help, "--lazy-pages"));
        assert!(!super::lists_option("", "--x"));
    }
}
