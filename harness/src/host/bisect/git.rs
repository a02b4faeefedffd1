//! git for a bisection: the user's tree is only read (`rev-parse`); the bisection runs in a
//! clone of it the harness owns, with `git bisect` and its terms, whose output is parsed
//! here.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A git command that failed, with its words.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("cannot start `git {args}` in {}: {source}", dir.display())]
    Start {
        dir: PathBuf,
        args: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`git {args}` in {} failed with status {status}: {stderr}", dir.display())]
    Failed {
        dir: PathBuf,
        args: String,
        status: i32,
        stderr: String,
    },
    #[error("{}: `{rev}` is not a commit of this tree ({stderr})", dir.display())]
    NoSuchRevision {
        dir: PathBuf,
        rev: String,
        stderr: String,
    },
    #[error("{}: neither {a} nor {b} is an ancestor of the other: give two revisions on one line of history", dir.display())]
    Unrelated { dir: PathBuf, a: String, b: String },
    #[error("{}: `git bisect` said nothing it is known to say:\n{output}", dir.display())]
    Unparsed { dir: PathBuf, output: String },
}

impl GitError {
    /// Whether the user named something wrong (exit 2), not a failure of the host.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            GitError::NoSuchRevision { .. } | GitError::Unrelated { .. }
        )
    }
}

/// Runs `git -C dir ARGS` and returns its stdout and stderr together, or the failure.
fn git_full(dir: &Path, args: &[&str]) -> Result<(bool, i32, String, String), GitError> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .map_err(|source| GitError::Start {
            dir: dir.to_path_buf(),
            args: args.join(" "),
            source,
        })?;
    Ok((
        out.status.success(),
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// Runs `git -C dir ARGS`; its stdout, trimmed.
pub fn git(dir: &Path, args: &[&str]) -> Result<String, GitError> {
    let (ok, status, out, err) = git_full(dir, args)?;
    if ok {
        Ok(out.trim().to_string())
    } else {
        Err(GitError::Failed {
            dir: dir.to_path_buf(),
            args: args.join(" "),
            status,
            stderr: crtest_vm::command::tail_lines(&err, 5).join("\n"),
        })
    }
}

/// The full commit a revision names in `dir` (read only).
pub fn resolve(dir: &Path, rev: &str) -> Result<String, GitError> {
    let spec = format!("{rev}^{{commit}}");
    let (ok, _, out, err) = git_full(dir, &["rev-parse", "--verify", "--quiet", &spec])?;
    match ok {
        true => Ok(out.trim().to_string()),
        false => Err(GitError::NoSuchRevision {
            dir: dir.to_path_buf(),
            rev: rev.to_string(),
            stderr: err.trim().to_string(),
        }),
    }
}

/// Whether `a` is an ancestor of `b` (or `b` itself).
pub fn is_ancestor(dir: &Path, a: &str, b: &str) -> Result<bool, GitError> {
    let (ok, status, _, err) = git_full(dir, &["merge-base", "--is-ancestor", a, b])?;
    match (ok, status) {
        (true, _) => Ok(true),
        (false, 1) => Ok(false),
        _ => Err(GitError::Failed {
            dir: dir.to_path_buf(),
            args: format!("merge-base --is-ancestor {a} {b}"),
            status,
            stderr: err.trim().to_string(),
        }),
    }
}

/// The two revisions in history order: (older, newer).
pub fn order(dir: &Path, a: &str, b: &str) -> Result<(String, String), GitError> {
    if is_ancestor(dir, a, b)? {
        Ok((a.to_string(), b.to_string()))
    } else if is_ancestor(dir, b, a)? {
        Ok((b.to_string(), a.to_string()))
    } else {
        Err(GitError::Unrelated {
            dir: dir.to_path_buf(),
            a: a.to_string(),
            b: b.to_string(),
        })
    }
}

/// A clone of `tree` at `dest` for the bisection (made, or brought up to date and out of
/// an earlier bisection). A local clone hard-links the objects: the user's tree is read only.
pub fn clone_for_bisect(tree: &Path, dest: &Path) -> Result<(), GitError> {
    if dest.join(".git").is_dir() {
        let _ = git_full(dest, &["bisect", "reset", "--quiet"]);
        git(dest, &["fetch", "--quiet", "--tags", "--force", "origin"])?;
        git(
            dest,
            &[
                "fetch",
                "--quiet",
                "--force",
                "origin",
                "+refs/heads/*:refs/remotes/origin/*",
            ],
        )?;
        git(dest, &["reset", "--quiet", "--hard"])?;
        git(dest, &["clean", "-q", "-fdx"])?;
        return Ok(());
    }
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent).map_err(|source| GitError::Start {
            dir: parent.to_path_buf(),
            args: "clone".into(),
            source,
        })?;
    }
    let dest_s = dest.display().to_string();
    let src_s = tree.display().to_string();
    git(
        tree,
        &["clone", "--quiet", "--no-checkout", "--", &src_s, &dest_s],
    )?;
    Ok(())
}

/// Puts the clone's work tree at `commit` (outside a bisection, or after it).
pub fn checkout(dir: &Path, commit: &str) -> Result<(), GitError> {
    git(dir, &["checkout", "--quiet", "--force", "--detach", commit])?;
    git(dir, &["clean", "-q", "-fdx"])?;
    Ok(())
}

/// A commit as the report names it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Commit {
    pub sha: String,
    pub subject: String,
    pub author: String,
    /// The author date, ISO 8601.
    pub date: String,
    /// The first release tag that contains it (`v4.2`), when one does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
}

/// A commit's subject line (a step's name; the release lookup is for the culprit).
pub fn subject(dir: &Path, sha: &str) -> Result<String, GitError> {
    git(dir, &["show", "-s", "--format=%s", sha])
}

/// The subject, author, date and first release of a commit.
pub fn commit_info(dir: &Path, sha: &str) -> Result<Commit, GitError> {
    let out = git(
        dir,
        &["show", "-s", "--format=%H%x00%s%x00%an <%ae>%x00%aI", sha],
    )?;
    let mut f = out.split('\0');
    let mut next = || f.next().unwrap_or_default().to_string();
    let (sha, subject, author, date) = (next(), next(), next(), next());
    let tags = git(
        dir,
        &[
            "tag",
            "--contains",
            &sha,
            "--sort=version:refname",
            "--list",
            "v[0-9]*",
        ],
    )
    .unwrap_or_default();
    Ok(Commit {
        release: first_release(&tags),
        sha,
        subject,
        author,
        date,
    })
}

/// The first of version-sorted tags that is a release (no `-rc`).
pub fn first_release(sorted_tags: &str) -> Option<String> {
    sorted_tags
        .lines()
        .map(str::trim)
        .find(|t| !t.is_empty() && !t.contains("-rc"))
        .map(str::to_string)
}

/// What `git bisect` says after a start or a mark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Test this commit next (it is checked out).
    Test(String),
    /// The culprit.
    Found(String),
    /// Only skipped commits are left: the culprit is one of these.
    Inconclusive(Vec<String>),
}

/// Parses `git bisect`'s words (`new` is the newer term: `bad`, `fixed`).
pub fn parse_bisect(out: &str, new: &str) -> Option<Next> {
    let is_sha = |s: &str| s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit());
    let found = format!(" is the first {new} commit");
    for line in out.lines() {
        if let Some(sha) = line.strip_suffix(&found) {
            if is_sha(sha.trim()) {
                return Some(Next::Found(sha.trim().to_string()));
            }
        }
    }
    if out.contains("There are only 'skip'ped commits left to test") {
        let shas = out
            .lines()
            .map(str::trim)
            .filter(|l| is_sha(l))
            .map(str::to_string)
            .collect();
        return Some(Next::Inconclusive(shas));
    }
    out.lines().find_map(|l| {
        let rest = l.strip_prefix('[')?;
        let (sha, _) = rest.split_once(']')?;
        is_sha(sha).then(|| Next::Test(sha.to_string()))
    })
}

/// `git bisect start` in the clone with the terms of the hunt; what to test first.
pub fn bisect_start(
    dir: &Path,
    (old_term, new_term): (&str, &str),
    old: &str,
    new: &str,
) -> Result<Next, GitError> {
    let _ = git_full(dir, &["bisect", "reset", "--quiet"]);
    let t_old = format!("--term-old={old_term}");
    let t_new = format!("--term-new={new_term}");
    let (_, _, out, err) = git_full(dir, &["bisect", "start", &t_old, &t_new, new, old])?;
    answer(dir, &format!("{out}{err}"), new_term)
}

/// Marks the checked-out commit with `term` (or `skip`); what comes next.
pub fn bisect_mark(dir: &Path, term: &str, new_term: &str) -> Result<Next, GitError> {
    let (_, _, out, err) = git_full(dir, &["bisect", term])?;
    answer(dir, &format!("{out}{err}"), new_term)
}

fn answer(dir: &Path, output: &str, new_term: &str) -> Result<Next, GitError> {
    match parse_bisect(output, new_term) {
        Some(n) => Ok(n),
        None => Err(GitError::Unparsed {
            dir: dir.to_path_buf(),
            output: output.to_string(),
        }),
    }
}

/// `git bisect log`: the steps as git recorded them (replayable with `git bisect replay`).
pub fn bisect_log(dir: &Path) -> String {
    git(dir, &["bisect", "log"]).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "4b7398595f0e9c7e2fd1f3e2a6b0a1d9c8e7f6a5";
    const B: &str = "0123456789abcdef0123456789abcdef01234567";

    #[test]
    fn bisect_words_are_parsed() {
        let step = format!(
            "Bisecting: 72 revisions left to test after this (roughly 6 steps)\n[{A}] criu: a subject\n"
        );
        assert_eq!(parse_bisect(&step, "bad"), Some(Next::Test(A.into())));
        let found = format!(
            "{A} is the first fixed commit\ncommit {A}\nAuthor: A <a@b>\n\n    criu/sockets: Restrict SO_PASSCRED\n"
        );
        assert_eq!(parse_bisect(&found, "fixed"), Some(Next::Found(A.into())));
        assert_eq!(
            parse_bisect(&found, "bad"),
            None,
            "another term is not this hunt's answer"
        );
        let skipped = format!(
            "There are only 'skip'ped commits left to test.\nThe first bad commit could be any of:\n{A}\n{B}\nWe cannot bisect more!\n"
        );
        assert_eq!(
            parse_bisect(&skipped, "bad"),
            Some(Next::Inconclusive(vec![A.into(), B.into()]))
        );
        assert_eq!(parse_bisect("fatal: bad revision\n", "bad"), None);
        assert_eq!(parse_bisect("[notasha] x\n", "bad"), None);
    }

    #[test]
    fn releases_skip_candidates() {
        assert_eq!(
            first_release("v4.2-rc1\nv4.2\nv4.2.1\n"),
            Some("v4.2".into())
        );
        assert_eq!(first_release(""), None);
    }

    fn commit(dir: &Path, file: &str, text: &str, msg: &str) -> String {
        std::fs::write(dir.join(file), text).unwrap();
        std::fs::write(dir.join("change"), msg).unwrap();
        git(dir, &["add", file, "change"]).unwrap();
        git(
            dir,
            &[
                "-c",
                "user.name=T",
                "-c",
                "user.email=t@example.org",
                "commit",
                "-q",
                "-m",
                msg,
            ],
        )
        .unwrap();
        git(dir, &["rev-parse", "HEAD"]).unwrap()
    }

    /// A real git: a tree of 9 commits, the 6th breaks `state`, bisected in a clone
    /// while the tree itself stays as it was.
    #[test]
    fn a_bisection_in_a_clone_finds_the_commit_and_leaves_the_tree() {
        let tmp = tempfile::tempdir().unwrap();
        let tree = tmp.path().join("tree");
        std::fs::create_dir(&tree).unwrap();
        git(&tree, &["init", "-q"]).unwrap();
        let mut shas = Vec::new();
        for i in 1..=9 {
            let state = if i >= 6 { "broken" } else { "ok" };
            shas.push(commit(&tree, "state", state, &format!("change {i}")));
        }
        let head_before = git(&tree, &["rev-parse", "HEAD"]).unwrap();
        let clone = tmp.path().join("clone");
        clone_for_bisect(&tree, &clone).unwrap();
        let (old, new) = order(&tree, &shas[8], &shas[0]).unwrap();
        assert_eq!(
            (old.as_str(), new.as_str()),
            (shas[0].as_str(), shas[8].as_str())
        );
        let mut next = bisect_start(&clone, ("good", "bad"), &old, &new).unwrap();
        let mut steps = 0;
        let culprit = loop {
            match next {
                Next::Test(sha) => {
                    steps += 1;
                    assert_eq!(git(&clone, &["rev-parse", "HEAD"]).unwrap(), sha);
                    let state = std::fs::read_to_string(clone.join("state")).unwrap();
                    let term = if state == "ok" { "good" } else { "bad" };
                    next = bisect_mark(&clone, term, "bad").unwrap();
                }
                Next::Found(sha) => break sha,
                Next::Inconclusive(v) => panic!("inconclusive {v:?}"),
            }
        };
        assert_eq!(culprit, shas[5]);
        assert!(steps <= 4, "{steps} steps");
        let info = commit_info(&clone, &culprit).unwrap();
        assert_eq!(info.subject, "change 6");
        assert_eq!(subject(&clone, &culprit).unwrap(), "change 6");
        assert_eq!(info.author, "T <t@example.org>");
        assert!(bisect_log(&clone).contains("# first bad commit"));
        assert_eq!(git(&tree, &["rev-parse", "HEAD"]).unwrap(), head_before);
        assert_eq!(git(&tree, &["status", "--porcelain"]).unwrap(), "");
        // A second bisection reuses the clone.
        clone_for_bisect(&tree, &clone).unwrap();
        assert!(matches!(
            resolve(&tree, "nope"),
            Err(GitError::NoSuchRevision { .. })
        ));
    }
}
