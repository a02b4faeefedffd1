//! Comparing versions as Debian and the kernel write them, by their numeric parts.

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

/// A part of a version range that is neither `>=X` nor `<X`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}`: a range is `>=X`, `<X` or both, comma-separated")]
pub struct RangeError(pub String);

/// `">=6.13"`, `"<4.1"`, `">=5.0,<6.0"` -> bounds (`true` for a lower one).
pub fn parse_range(text: &str) -> Result<Vec<(bool, String)>, RangeError> {
    text.split(',')
        .map(|part| {
            let part = part.trim();
            if let Some(v) = part.strip_prefix(">=") {
                Ok((true, v.trim().to_string()))
            } else if let Some(v) = part.strip_prefix('<') {
                Ok((false, v.trim().to_string()))
            } else {
                Err(RangeError(part.to_string()))
            }
        })
        .collect()
}

/// Whether `version` is in `range` (see [`parse_range`]); a bad range holds nothing.
pub fn in_range(version: &str, range: &str) -> bool {
    parse_range(range).is_ok_and(|bounds| {
        bounds.iter().all(|(lower, v)| {
            if *lower {
                at_least(version, v)
            } else {
                !at_least(version, v)
            }
        })
    })
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
    fn ranges() {
        assert!(in_range("3.17.1-2+deb12u2", ">=3.17,<3.18"));
        assert!(!in_range("4.1.1", ">=3.17,<3.18"));
        assert!(in_range("7.2.13+deb14-amd64", ">=6.13"));
        assert!(!in_range("6.1", "6.1"));
        assert!(parse_range("~6").is_err());
    }
}
