//! Kernel `.config` files as a map of option to value.

use std::collections::BTreeMap;

use serde::Serialize;

/// The value of one kernel config option.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConfigValue {
    /// `=y`: built in.
    Yes,
    /// `=m`: a module.
    Module,
    /// `# CONFIG_X is not set` (or `=n`).
    No,
    /// A string (quotes removed, `\"` and `\\` unescaped) or a number.
    Value(String),
}

impl ConfigValue {
    /// `y` or `m`.
    pub fn is_enabled(&self) -> bool {
        matches!(self, ConfigValue::Yes | ConfigValue::Module)
    }
}

/// A parsed kernel config: `CONFIG_X` -> value.
pub type KernelConfig = BTreeMap<String, ConfigValue>;

fn unquote(v: &str) -> String {
    let Some(inner) = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')) else {
        return v.to_string();
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Parses `.config` text. Other comments and blank lines are skipped.
pub fn parse(text: &str) -> KernelConfig {
    let mut map = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("# ") {
            if let Some(name) = rest.strip_suffix(" is not set") {
                if name.starts_with("CONFIG_") && !name.contains(' ') {
                    map.insert(name.to_string(), ConfigValue::No);
                }
            }
            continue;
        }
        let Some((name, value)) = line.split_once('=') else {
            continue;
        };
        if !name.starts_with("CONFIG_") {
            continue;
        }
        let v = match value {
            "y" => ConfigValue::Yes,
            "m" => ConfigValue::Module,
            "n" => ConfigValue::No,
            other => ConfigValue::Value(unquote(other)),
        };
        map.insert(name.to_string(), v);
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_all_forms() {
        let c = parse(
            "#\n# Automatically generated file; DO NOT EDIT.\n#\n\
             CONFIG_CHECKPOINT_RESTORE=y\nCONFIG_TUN=m\n\
             # CONFIG_KVM_WERROR is not set\n\
             CONFIG_LOCALVERSION=\"\"\nCONFIG_DEFAULT_HOSTNAME=\"(no \\\"name\\\")\"\n\
             CONFIG_NR_CPUS=8192\nCONFIG_X=n\nNOT_CONFIG=y\n",
        );
        assert_eq!(c["CONFIG_CHECKPOINT_RESTORE"], ConfigValue::Yes);
        assert_eq!(c["CONFIG_TUN"], ConfigValue::Module);
        assert_eq!(c["CONFIG_KVM_WERROR"], ConfigValue::No);
        assert_eq!(c["CONFIG_X"], ConfigValue::No);
        assert_eq!(c["CONFIG_LOCALVERSION"], ConfigValue::Value(String::new()));
        assert_eq!(
            c["CONFIG_DEFAULT_HOSTNAME"],
            ConfigValue::Value("(no \"name\")".into())
        );
        assert_eq!(c["CONFIG_NR_CPUS"], ConfigValue::Value("8192".into()));
        assert_eq!(c.len(), 7);
        assert!(c["CONFIG_TUN"].is_enabled() && !c["CONFIG_X"].is_enabled());
    }
}
