//! `--shard i/n`: a deterministic share of a run's work for one machine of a CI fleet.
//!
//! The work is the list of (cell, scenario) pairs in plan order: cells as given (kernels
//! outer, userlands inner), scenarios sorted by name within each cell. Shard `i` of `n` takes
//! the `i`-th of `n` contiguous slices of near-equal length, so a cell's scenarios stay
//! together (a cell is booted by one shard, or by two where a slice boundary falls inside
//! it) and every pair lands in exactly one shard. The same inputs always give the same split.

use std::fmt;
use std::str::FromStr;

/// One shard of `count`, `index` counting from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--shard `{0}`: want i/n with 1 <= i <= n (e.g. 2/4)")]
pub struct ShardError(String);

impl FromStr for Shard {
    type Err = ShardError;
    fn from_str(s: &str) -> Result<Shard, ShardError> {
        let bad = || ShardError(s.to_string());
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let index: usize = i.trim().parse().map_err(|_| bad())?;
        let count: usize = n.trim().parse().map_err(|_| bad())?;
        if index == 0 || count == 0 || index > count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Shard {
    /// Whether the pair at `position` of `total` pairs belongs to this shard.
    pub fn takes(&self, position: usize, total: usize) -> bool {
        total > 0 && position * self.count / total == self.index - 1
    }

    /// This shard's part of `cells`, each a cell with its scenario names: the same cells in
    /// the same order, each keeping only its scenarios of this shard; cells left with none
    /// are dropped.
    pub fn split<C: Clone>(&self, cells: &[(C, Vec<String>)]) -> Vec<(C, Vec<String>)> {
        let total: usize = cells.iter().map(|(_, s)| s.len()).sum();
        let mut position = 0;
        let mut out = Vec::new();
        for (cell, scenarios) in cells {
            let mut sorted = scenarios.clone();
            sorted.sort();
            let mine: Vec<String> = sorted
                .into_iter()
                .filter(|_| {
                    let take = self.takes(position, total);
                    position += 1;
                    take
                })
                .collect();
            if !mine.is_empty() {
                out.push((cell.clone(), mine));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("1/1", Some((1, 1)))]
    #[case("2/4", Some((2, 4)))]
    #[case("0/4", None)]
    #[case("5/4", None)]
    #[case("2", None)]
    #[case("a/b", None)]
    fn parses(#[case] s: &str, #[case] want: Option<(usize, usize)>) {
        assert_eq!(
            s.parse::<Shard>().ok().map(|s| (s.index, s.count)),
            want,
            "{s}"
        );
    }

    fn cells() -> Vec<(&'static str, Vec<String>)> {
        let sc = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        vec![
            ("k1+u1", sc(&["ptree1", "fileio1", "counterloop"])),
            ("k1+u2", sc(&["ptree1", "fileio1", "counterloop"])),
            ("k2+u1", sc(&["ptree1", "fileio1", "counterloop"])),
        ]
    }

    #[rstest]
    #[case(1)]
    #[case(2)]
    #[case(4)]
    #[case(9)]
    #[case(12)]
    fn every_pair_in_exactly_one_shard(#[case] n: usize) {
        let cells = cells();
        let mut seen: Vec<(String, String)> = Vec::new();
        let mut sizes = Vec::new();
        for i in 1..=n {
            let part = Shard { index: i, count: n }.split(&cells);
            let size: usize = part.iter().map(|(_, s)| s.len()).sum();
            sizes.push(size);
            for (c, ss) in part {
                for s in ss {
                    seen.push((c.to_string(), s));
                }
            }
        }
        seen.sort();
        let before = seen.len();
        seen.dedup();
        assert_eq!(before, seen.len(), "a pair in two shards");
        assert_eq!(seen.len(), 9);
        let (min, max) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
        assert!(max - min <= 1, "unbalanced: {sizes:?}");
    }

    #[test]
    fn slices_are_contiguous_and_stable() {
        let part = Shard { index: 2, count: 3 }.split(&cells());
        assert_eq!(
            part,
            vec![(
                "k1+u2",
                vec!["counterloop".into(), "fileio1".into(), "ptree1".into()]
            )]
        );
        let a = Shard { index: 1, count: 2 }.split(&cells());
        assert_eq!(a, Shard { index: 1, count: 2 }.split(&cells()));
        assert_eq!(a.len(), 2, "{a:?}");
        assert_eq!(a[1].1, vec!["counterloop".to_string(), "fileio1".into()]);
    }
}
