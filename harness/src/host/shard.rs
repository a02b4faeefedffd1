//! `--shard i/n`: a deterministic share of a run's work for one machine of a CI fleet.
//!
//! The work is the list of (cell, scenario) pairs in plan order: cells as given (kernels
//! outer, userlands inner), scenarios sorted by name within each cell. Every machine given
//! the same plan, the same durations and the same `-j` computes the same split, and every
//! pair lands in exactly one shard.
//!
//! - **By time** ([`split`]), when durations are known ([`crate::report::durations`]): each
//!   shard is `jobs` workers, and each pair goes, longest first, to the worker that ends
//!   soonest with it (a pair of unknown duration counts as a typical one); a cell costs its
//!   overhead (preparing, booting) once in each worker that runs some of it, and within one
//!   shard a cell stays in one worker (a cell runs in one guest at a time). A shard's
//!   expected time is its slowest worker's.
//! - **By count** ([`Shard::split`]), when nothing was measured: shard `i` takes the `i`-th
//!   of `n` contiguous slices of near-equal length, so a cell's scenarios stay together.
//!
//! `--shard auto` takes the index and count from the CI engine ([`ShardArg::resolve`]).

use crate::report::durations::{Basis, Durations};
use std::fmt;
use std::str::FromStr;

/// One shard of `count`, `index` counting from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

/// Why a `--shard` could not be taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    #[error("--shard `{0}`: want i/n with 1 <= i <= n (e.g. 2/4), `auto` or `auto/n`")]
    Syntax(String),
    #[error(
        "--shard auto: no CI engine said which shard this is: set CI_NODE_INDEX and \
         CI_NODE_TOTAL (GitLab's `parallel:`), JOB_COMPLETION_INDEX with --shard auto/N \
         (a Kubernetes Indexed Job of N completions), or pass the index (GitHub Actions: \
         --shard ${{{{ matrix.shard }}}}/N)"
    )]
    NoEngine,
    #[error("--shard auto: {var}=`{value}` is not a shard index of {count}")]
    BadIndex {
        var: &'static str,
        value: String,
        count: String,
    },
    #[error(
        "--shard auto: JOB_COMPLETION_INDEX={0} gives the index only: say the count, \
         --shard auto/N"
    )]
    NoCount(String),
    #[error("--shard auto/{given}: the engine says {total} shards (CI_NODE_TOTAL)")]
    CountDiffers { given: usize, total: usize },
}

impl FromStr for Shard {
    type Err = ShardError;
    fn from_str(s: &str) -> Result<Shard, ShardError> {
        let bad = || ShardError::Syntax(s.to_string());
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let index: usize = i.trim().parse().map_err(|_| bad())?;
        let count: usize = n.trim().parse().map_err(|_| bad())?;
        if index == 0 || count == 0 || index > count || count > MAX_SHARDS {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

/// More shards than this is a typo.
pub const MAX_SHARDS: usize = 4096;

/// A count of shards: 1 to [`MAX_SHARDS`].
fn shard_count(s: &str) -> Option<usize> {
    s.trim()
        .parse()
        .ok()
        .filter(|n| (1..=MAX_SHARDS).contains(n))
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// `--shard` as given: a shard, or `auto` (with the count when the engine gives only the
/// index).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardArg {
    Fixed(Shard),
    Auto { count: Option<usize> },
}

impl FromStr for ShardArg {
    type Err = ShardError;
    fn from_str(s: &str) -> Result<ShardArg, ShardError> {
        let t = s.trim();
        if t == "auto" {
            return Ok(ShardArg::Auto { count: None });
        }
        if let Some(n) = t.strip_prefix("auto/") {
            let count = shard_count(n).ok_or_else(|| ShardError::Syntax(s.to_string()))?;
            return Ok(ShardArg::Auto { count: Some(count) });
        }
        s.parse().map(ShardArg::Fixed)
    }
}

impl ShardArg {
    /// The shard, `auto` read from the engine's variables through `env`: GitLab's
    /// `CI_NODE_INDEX`/`CI_NODE_TOTAL` (1-based), a Kubernetes Indexed Job's
    /// `JOB_COMPLETION_INDEX` (0-based) with the count given.
    pub fn resolve(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<Shard, ShardError> {
        let count = match *self {
            ShardArg::Fixed(s) => return Ok(s),
            ShardArg::Auto { count } => count,
        };
        let bad = |var: &'static str, value: &str, count: String| ShardError::BadIndex {
            var,
            value: value.to_string(),
            count,
        };
        if let (Some(i), Some(n)) = (env("CI_NODE_INDEX"), env("CI_NODE_TOTAL")) {
            let total =
                shard_count(&n).ok_or_else(|| bad("CI_NODE_TOTAL", &n, "1..4096".into()))?;
            if let Some(given) = count.filter(|c| *c != total) {
                return Err(ShardError::CountDiffers { given, total });
            }
            let index: usize = i
                .trim()
                .parse()
                .ok()
                .filter(|i| (1..=total).contains(i))
                .ok_or_else(|| bad("CI_NODE_INDEX", &i, total.to_string()))?;
            return Ok(Shard {
                index,
                count: total,
            });
        }
        if let Some(i) = env("JOB_COMPLETION_INDEX") {
            let count = count.ok_or_else(|| ShardError::NoCount(i.clone()))?;
            let index: usize = i
                .trim()
                .parse()
                .ok()
                .filter(|i| *i < count)
                .ok_or_else(|| bad("JOB_COMPLETION_INDEX", &i, count.to_string()))?;
            return Ok(Shard {
                index: index + 1,
                count,
            });
        }
        Err(ShardError::NoEngine)
    }

    /// The shard from the process's environment.
    pub fn resolve_from_env(&self) -> Result<Shard, ShardError> {
        self.resolve(&|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty()))
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

/// How a split was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// By the durations last measured.
    Durations,
    /// By counts of pairs: nothing was measured.
    Counts,
}

/// Every shard's part of the work, as every machine computes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    pub method: Method,
    pub shards: Vec<Part>,
    /// How many pairs rest on their own measurement, on other cells', or on a typical one.
    pub measured: usize,
    pub from_other_cells: usize,
    pub typical: usize,
}

/// One shard's part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// Its cells (indexes into the plan's cells, in plan order), each with its scenarios
    /// (sorted by name).
    pub cells: Vec<(usize, Vec<String>)>,
    /// Its expected time: its slowest worker's (by durations only), ms.
    pub expected_ms: Option<u64>,
    /// Each worker's expected time, ms (by durations only).
    pub workers_ms: Vec<u64>,
}

impl Split {
    /// The slowest shard's expected time over the mean (1.0 is perfect); `None` by counts.
    pub fn balance(&self) -> Option<f64> {
        let times: Vec<u64> = self.shards.iter().filter_map(|p| p.expected_ms).collect();
        crate::report::durations::balance(&times)
    }
}

/// Splits `cells` (each its stable key and scenario names) into `count` shards of `jobs`
/// workers each: by time when `durations` knows anything, else by counts.
pub fn split(
    cells: &[(String, Vec<String>)],
    count: usize,
    jobs: usize,
    durations: &Durations,
) -> Split {
    let count = count.max(1);
    if durations.is_empty() {
        let by_count: Vec<(usize, Vec<String>)> = cells
            .iter()
            .enumerate()
            .map(|(i, (_, s))| (i, s.clone()))
            .collect();
        let shards = (1..=count)
            .map(|index| Part {
                cells: Shard { index, count }.split(&by_count),
                expected_ms: None,
                workers_ms: Vec::new(),
            })
            .collect();
        let pairs = cells.iter().map(|(_, s)| s.len()).sum();
        return Split {
            method: Method::Counts,
            shards,
            measured: 0,
            from_other_cells: 0,
            typical: pairs,
        };
    }
    let jobs = jobs.max(1);
    let mut split = Split {
        method: Method::Durations,
        shards: Vec::new(),
        measured: 0,
        from_other_cells: 0,
        typical: 0,
    };
    // Every pair with its weight.
    let mut weights: Vec<Vec<(u64, &str)>> = Vec::new();
    for (key, scenarios) in cells {
        let mut names: Vec<&str> = scenarios.iter().map(String::as_str).collect();
        names.sort_unstable();
        names.dedup();
        let mut cell = Vec::new();
        for name in names {
            let (ms, basis) = durations.estimate(key, name).unwrap_or((1, Basis::Typical));
            match basis {
                Basis::Measured => split.measured += 1,
                Basis::OtherCells => split.from_other_cells += 1,
                Basis::Typical => split.typical += 1,
            }
            cell.push((ms.max(1), name));
        }
        weights.push(cell);
    }
    let overhead: Vec<u64> = cells.iter().map(|(k, _)| durations.overhead(k)).collect();
    let bins = count * jobs;
    // A cell no longer than a guest's share goes whole (one preparation, one boot); a
    // longer one pair by pair. Units longest first (ties: plan order, then name).
    let cell_ms = |c: usize| weights[c].iter().map(|(w, _)| w).sum::<u64>() + overhead[c];
    let share = (0..cells.len()).map(cell_ms).sum::<u64>() / bins as u64;
    let mut units: Vec<(u64, usize, Vec<&str>)> = Vec::new();
    for (c, cell) in weights.iter().enumerate() {
        if cell_ms(c) <= share {
            let names = cell.iter().map(|(_, n)| *n).collect();
            units.push((cell_ms(c) - overhead[c], c, names));
        } else {
            units.extend(cell.iter().map(|(w, n)| (*w, c, vec![*n])));
        }
    }
    units.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let mut load = vec![0u64; bins];
    // Which worker of a shard holds a cell: a cell stays in one worker per shard.
    let mut worker_of: std::collections::BTreeMap<(usize, usize), usize> = Default::default();
    let mut taken: Vec<Vec<(usize, String)>> = vec![Vec::new(); count];
    for (w, c, names) in units {
        let mut best: Option<(u64, usize)> = None;
        for s in 0..count {
            let candidates = match worker_of.get(&(s, c)) {
                Some(b) => *b..*b + 1,
                None => s * jobs..(s + 1) * jobs,
            };
            for b in candidates {
                let new_cell = !worker_of.contains_key(&(s, c));
                let cost = load[b] + w + if new_cell { overhead[c] } else { 0 };
                if best.is_none_or(|(bc, _)| cost < bc) {
                    best = Some((cost, b));
                }
            }
        }
        let (cost, b) = best.expect("at least one worker");
        load[b] = cost;
        let s = b / jobs;
        worker_of.insert((s, c), b);
        taken[s].extend(names.into_iter().map(|n| (c, n.to_string())));
    }
    for (s, mut pairs) in taken.into_iter().enumerate() {
        pairs.sort();
        let mut part: Vec<(usize, Vec<String>)> = Vec::new();
        for (c, name) in pairs {
            match part.last_mut() {
                Some((last, names)) if *last == c => names.push(name),
                _ => part.push((c, vec![name])),
            }
        }
        let workers_ms = load[s * jobs..(s + 1) * jobs].to_vec();
        split.shards.push(Part {
            cells: part,
            expected_ms: workers_ms.iter().max().copied(),
            workers_ms,
        });
    }
    split
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

    #[rstest]
    #[case("auto", &[("CI_NODE_INDEX", "3"), ("CI_NODE_TOTAL", "5")], Ok((3, 5)))]
    #[case("auto/5", &[("CI_NODE_INDEX", "3"), ("CI_NODE_TOTAL", "5")], Ok((3, 5)))]
    #[case("auto/4", &[("CI_NODE_INDEX", "3"), ("CI_NODE_TOTAL", "5")], Err("the engine says 5"))]
    #[case("auto", &[("CI_NODE_INDEX", "6"), ("CI_NODE_TOTAL", "5")], Err("CI_NODE_INDEX=`6`"))]
    #[case("auto/8", &[("JOB_COMPLETION_INDEX", "0")], Ok((1, 8)))]
    #[case("auto/8", &[("JOB_COMPLETION_INDEX", "7")], Ok((8, 8)))]
    #[case("auto/8", &[("JOB_COMPLETION_INDEX", "8")], Err("JOB_COMPLETION_INDEX=`8`"))]
    #[case("auto", &[("JOB_COMPLETION_INDEX", "2")], Err("--shard auto/N"))]
    #[case("auto", &[], Err("CI_NODE_TOTAL"))]
    #[case("2/3", &[("CI_NODE_INDEX", "1"), ("CI_NODE_TOTAL", "5")], Ok((2, 3)))]
    fn auto_reads_the_engine(
        #[case] arg: &str,
        #[case] env: &[(&str, &str)],
        #[case] want: Result<(usize, usize), &str>,
    ) {
        let lookup = |k: &str| {
            env.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        };
        let got = arg.parse::<ShardArg>().unwrap().resolve(&lookup);
        match (got, want) {
            (Ok(s), Ok(w)) => assert_eq!((s.index, s.count), w),
            (Err(e), Err(w)) => assert!(e.to_string().contains(w), "{e}"),
            (got, want) => panic!("{arg} {env:?}: {got:?}, want {want:?}"),
        }
        assert!("auto/0".parse::<ShardArg>().is_err());
        assert!("autox".parse::<ShardArg>().is_err());
    }

    fn durations(pairs: &[(&str, &str, u64)], overhead: u64) -> Durations {
        let mut d = Durations::default();
        for (c, s, ms) in pairs {
            let cell = d.cells.entry(c.to_string()).or_default();
            cell.scenarios.insert(s.to_string(), *ms);
            cell.overhead_ms = Some(overhead);
        }
        d
    }

    /// A nightly-like spread: a few long cells of many pairs, many short ones.
    fn uneven() -> (Vec<(String, Vec<String>)>, Durations) {
        let mut cells = Vec::new();
        let mut measured = Vec::new();
        for c in 0..12 {
            let key = format!("cell{c}");
            let n = if c < 3 { 150 } else { 12 };
            let names: Vec<String> = (0..n).map(|i| format!("s{i:03}")).collect();
            for (i, name) in names.iter().enumerate() {
                let ms = if c < 3 {
                    9_000 + (i as u64 * 37) % 4000
                } else {
                    5_000 + (i as u64 * 911) % 20_000
                };
                measured.push((key.clone(), name.clone(), ms));
            }
            cells.push((key, names));
        }
        let refs: Vec<(&str, &str, u64)> = measured
            .iter()
            .map(|(c, s, m)| (c.as_str(), s.as_str(), *m))
            .collect();
        (cells, durations(&refs, 30_000))
    }

    #[test]
    fn time_split_balances_and_covers_every_pair_once() {
        let (cells, d) = uneven();
        let split = split(&cells, 8, 2, &d);
        assert_eq!(split.method, Method::Durations);
        let mut seen: Vec<(usize, String)> = split
            .shards
            .iter()
            .flat_map(|p| {
                p.cells
                    .iter()
                    .flat_map(|(c, ns)| ns.iter().map(move |n| (*c, n.clone())))
            })
            .collect();
        let total: usize = cells.iter().map(|(_, s)| s.len()).sum();
        assert_eq!(seen.len(), total);
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), total, "a pair in two shards");
        let b = split.balance().unwrap();
        assert!(
            b <= 1.05,
            "balance {b}: {:?}",
            split
                .shards
                .iter()
                .map(|p| p.expected_ms)
                .collect::<Vec<_>>()
        );
        // By counts the same work is far less even in time.
        assert_eq!(split.measured, total);
        // The same inputs give the same split.
        assert_eq!(split, super::split(&cells, 8, 2, &d));
    }

    #[test]
    fn a_cell_stays_in_one_guest_per_shard_and_unknowns_count_as_typical() {
        let cells = vec![
            (
                "a".to_string(),
                vec!["x".to_string(), "y".into(), "new".into()],
            ),
            ("b".to_string(), vec!["x".to_string()]),
        ];
        let d = durations(
            &[("a", "x", 10_000), ("a", "y", 20_000), ("b", "y", 4_000)],
            1_000,
        );
        let split = split(&cells, 1, 2, &d);
        assert_eq!(
            (split.measured, split.from_other_cells, split.typical),
            (2, 1, 1)
        );
        let part = &split.shards[0];
        // Cell a in one guest: 20 + 10 + 10 (its `new`, typical) + 1 overhead; b: 10 + 1.
        let mut w = part.workers_ms.clone();
        w.sort();
        assert_eq!(w, [11_000, 41_000]);
        assert_eq!(part.expected_ms, Some(41_000));
    }

    #[test]
    fn nothing_measured_splits_by_counts() {
        let pairs: Vec<(String, Vec<String>)> = cells()
            .into_iter()
            .map(|(c, s)| (c.to_string(), s))
            .collect();
        let split = split(&pairs, 3, 2, &Durations::default());
        assert_eq!(split.method, Method::Counts);
        assert_eq!(split.balance(), None);
        assert_eq!(
            split.shards[1].cells,
            vec![(
                1,
                vec!["counterloop".to_string(), "fileio1".into(), "ptree1".into()]
            )]
        );
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
