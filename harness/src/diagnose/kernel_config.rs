//! The required kernel options (`kernel-config/*.config`), each with the reason it is
//! needed, and checking a kernel's config against them.

use std::collections::BTreeMap;
use std::path::Path;

/// One required option: `CONFIG_X=y  # why`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    pub option: String,
    /// `y`, `m`, or `y|m` (either will do).
    pub want: String,
    pub why: String,
}

/// Parses a fragment. Values `y`, `m` and `ym` (meaning built in or module) are understood.
pub fn parse_fragment(text: &str) -> Vec<Requirement> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            if !l.starts_with("CONFIG_") {
                return None;
            }
            let (assign, why) = l.split_once('#').unwrap_or((l, ""));
            let (option, want) = assign.trim().split_once('=')?;
            Some(Requirement {
                option: option.to_string(),
                want: want.trim().to_string(),
                why: why.trim().to_string(),
            })
        })
        .collect()
}

/// The built-in fragment shipped in `kernel-config/criu.config`.
pub fn required() -> Vec<Requirement> {
    parse_fragment(include_str!("../../../kernel-config/criu.config"))
}

/// Parses a kernel `.config` into option -> value (`y`, `m`, `n` for "is not set", or the
/// value itself), with the vm crate's parser.
pub fn parse_config(text: &str) -> BTreeMap<String, String> {
    use crtest_vm::kconfig::ConfigValue;
    crtest_vm::kconfig::parse(text)
        .into_iter()
        .map(|(k, v)| {
            let v = match v {
                ConfigValue::Yes => "y".to_string(),
                ConfigValue::Module => "m".to_string(),
                ConfigValue::No => "n".to_string(),
                ConfigValue::Value(s) => s,
            };
            (k, v)
        })
        .collect()
}

/// Required options the config does not satisfy, each as `CONFIG_X=is (want W): why`.
pub fn missing(config: &BTreeMap<String, String>, reqs: &[Requirement]) -> Vec<String> {
    reqs.iter()
        .filter_map(|r| {
            let have = config.get(&r.option).map(String::as_str).unwrap_or("n");
            let ok = match r.want.as_str() {
                "ym" | "y|m" => have == "y" || have == "m",
                w => have == w,
            };
            (!ok).then(|| format!("{}={have} (want {}): {}", r.option, r.want, r.why))
        })
        .collect()
}

/// Checks a config file; an unreadable file yields one line saying so.
pub fn check_file(path: &Path) -> Vec<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => missing(&parse_config(&text), &required()),
        Err(e) => vec![format!("cannot read kernel config {}: {e}", path.display())],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragment_and_check() {
        let reqs = parse_fragment(
            "# comment\nCONFIG_CHECKPOINT_RESTORE=y  # criu itself\nCONFIG_UNIX_DIAG=ym # unix sockets\n",
        );
        assert_eq!(reqs.len(), 2);
        assert_eq!(reqs[1].why, "unix sockets");
        let cfg = parse_config("CONFIG_UNIX_DIAG=m\n# CONFIG_CHECKPOINT_RESTORE is not set\n");
        assert_eq!(
            missing(&cfg, &reqs),
            ["CONFIG_CHECKPOINT_RESTORE=n (want y): criu itself"]
        );
    }

    #[test]
    fn shipped_fragment_parses() {
        let reqs = required();
        assert!(reqs.iter().any(|r| r.option == "CONFIG_CHECKPOINT_RESTORE"));
        assert!(
            reqs.iter().all(|r| !r.why.is_empty()),
            "every option says why"
        );
    }
}
