//! Debian control-file syntax (deb822): stanzas of `Field: value` lines
//! separated by blank lines, continuation lines starting with whitespace.
//! Used for apt `.sources` files, `apt-cache show` output and dpkg's status.

/// One stanza: fields in file order. Names keep their spelling; lookups
/// ignore case. A multi-line value keeps its continuation lines (with their
/// leading whitespace) after a `\n`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Stanza {
    fields: Vec<(String, String)>,
}

impl Stanza {
    /// The value of `name` (case-insensitive), trimmed on the first line.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The fields in file order.
    pub fn fields(&self) -> &[(String, String)] {
        &self.fields
    }
}

/// Parses control text into stanzas. Lines starting with `#` are comments.
pub fn parse(text: &str) -> Vec<Stanza> {
    let mut out = Vec::new();
    let mut cur = Stanza::default();
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        if line.trim().is_empty() {
            if !cur.fields.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            continue;
        }
        if line.starts_with(' ') || line.starts_with('\t') {
            if let Some((_, v)) = cur.fields.last_mut() {
                v.push('\n');
                v.push_str(line.trim_end());
            }
            continue;
        }
        if let Some((name, value)) = line.split_once(':') {
            cur.fields
                .push((name.trim().to_string(), value.trim().to_string()));
        }
    }
    if !cur.fields.is_empty() {
        out.push(cur);
    }
    out
}

/// Package names in a relationship field (`Depends`): one inner list per
/// comma-separated group, one name per `|` alternative, with version
/// constraints, architecture qualifiers and restrictions removed.
pub fn relations(value: &str) -> Vec<Vec<String>> {
    value
        .split(',')
        .map(|group| {
            group
                .split('|')
                .filter_map(|alt| {
                    let name = alt.split_whitespace().next()?;
                    let name = name.split(['(', '[', '<']).next()?;
                    let name = name.split(':').next()?;
                    (!name.is_empty()).then(|| name.to_string())
                })
                .collect::<Vec<_>>()
        })
        .filter(|g| !g.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stanzas_and_continuations() {
        let s = parse(
            "Package: a\nStatus: install ok installed\nDescription: x\n more\n .\n\n\n\
             # comment\npackage: b\nVersion: 1:2.3-4\n",
        );
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].get("package"), Some("a"));
        assert_eq!(s[0].get("Description"), Some("x\n more\n ."));
        assert_eq!(s[1].get("Package"), Some("b"));
        assert_eq!(s[1].get("version"), Some("1:2.3-4"));
        assert_eq!(s[1].get("Status"), None);
    }

    #[test]
    fn relation_names() {
        assert_eq!(
            relations(
                "dracut | initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool, \
                 linux-base-7.2 (= 7.2-1), kmod:any, foo [amd64] <!nocheck>"
            ),
            vec![
                vec!["dracut", "initramfs-tools", "linux-initramfs-tool"],
                vec!["linux-base-7.2"],
                vec!["kmod"],
                vec!["foo"],
            ]
        );
        assert!(relations("").is_empty());
    }
}
