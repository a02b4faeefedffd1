//! Reading TAP with Perl's TAP::Parser (in every Debian perl): an existing consumer, not ours.

/// What TAP::Parser counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub run: usize,
    /// Passed, skips and todos included (TAP::Parser's `passed`).
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
    /// Parse errors.
    pub errors: usize,
}

const SCRIPT: &str = r#"use strict; use warnings; use TAP::Parser;
local $/; my $t = <STDIN>; my $p = TAP::Parser->new({ tap => $t });
while (defined(my $r = $p->next)) {}
my @e = $p->parse_errors; print STDERR join("\n", @e), "\n" if @e;
printf "%d %d %d %d %d\n", $p->tests_run, scalar($p->passed), scalar($p->failed),
  scalar($p->skipped), scalar(@e);"#;

/// TAP::Parser's counts for `text`.
pub fn counts(text: &str) -> Result<Counts, String> {
    crtest_vm::hostdeps::ensure_for_tests()?;
    let out = duct::cmd("perl", ["-e", SCRIPT])
        .stdin_bytes(text.as_bytes().to_vec())
        .stderr_to_stdout()
        .read()
        .map_err(|e| format!("perl's TAP::Parser: {e}"))?;
    let last = out.lines().last().unwrap_or("");
    let n: Vec<usize> = last
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    match n[..] {
        [run, passed, failed, skipped, errors] => Ok(Counts {
            run,
            passed,
            failed,
            skipped,
            errors,
        }),
        _ => Err(format!("TAP::Parser said {out:?}")),
    }
}

/// The top level of a KTAP document (its unindented lines).
pub fn top_level(ktap: &str) -> String {
    ktap.lines()
        .filter(|l| !l.starts_with(' '))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Each top-level test's subtests, one level of indentation (two spaces) taken off.
pub fn subtests(ktap: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for l in ktap.lines() {
        match l.strip_prefix("  ") {
            Some(inner) => {
                cur.push_str(inner);
                cur.push('\n');
            }
            None if !cur.is_empty() => out.push(std::mem::take(&mut cur)),
            None => {}
        }
    }
    out
}
