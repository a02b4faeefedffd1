//! A user's CRIU source tree (a git checkout or an unpacked release tarball): is it one, which
//! version it is, which revision, and which of its files make up the source.
//!
//! A git checkout is named by its commit (`git:<commit>`, `+dirty` and a hash of the files
//! when the work tree differs from it); a tree without git by a hash of its files
//! (`tree:<hash>`). Only the tree's own git counts: a tree inside another repository (a
//! fixture in this project's checkout) is a tree of files.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::command::Cmd;

/// Files every CRIU tree has at its top (checked in this order).
pub const REQUIRED: &[&str] = &["Makefile", "Makefile.versions", "criu/Makefile"];

/// Most files the source listing takes; a tree with more is refused (CRIU has about 3000).
pub const MAX_FILES: usize = 200_000;

/// Errors looking at a tree.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    /// The directory is not a CRIU source tree.
    #[error(
        "{}: not a CRIU source tree: missing {} (a `git clone` of CRIU, or an unpacked \
         release tarball, has them)",
        path.display(), missing.join(", ")
    )]
    NotATree {
        /// The directory given.
        path: PathBuf,
        /// What it lacks.
        missing: Vec<String>,
    },
    /// A file of the tree could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The tree has more files than [`MAX_FILES`].
    #[error("{}: more than {MAX_FILES} files: not a CRIU source tree", path.display())]
    TooLarge {
        /// The directory given.
        path: PathBuf,
    },
}

impl TreeError {
    /// Whether the user named something that is not a tree (exit 2), not a failure of ours.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            TreeError::NotATree { .. } | TreeError::TooLarge { .. }
        )
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> TreeError + '_ {
    move |source| TreeError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Which revision a tree is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revision {
    /// The top of a git checkout.
    Git {
        /// `git rev-parse HEAD`.
        commit: String,
        /// `git describe --tags --always`, when it says something.
        describe: Option<String>,
        /// A hash of the files when the work tree differs from the commit.
        dirty: Option<String>,
    },
    /// Files only (a release tarball): a hash of them.
    Files {
        /// The first 16 hex digits of the SHA-256 over the files.
        hash: String,
    },
}

impl Revision {
    /// `git:<commit>`, `git:<commit>+dirty`, or `tree:<hash>`: what run.json calls the source.
    pub fn source(&self) -> String {
        match self {
            Revision::Git {
                commit,
                dirty: None,
                ..
            } => format!("git:{commit}"),
            Revision::Git { commit, .. } => format!("git:{commit}+dirty"),
            Revision::Files { hash } => format!("tree:{hash}"),
        }
    }

    /// What the cache key of a build takes from the revision: the commit, plus the files'
    /// hash when they differ from it.
    pub fn key(&self) -> String {
        match self {
            Revision::Git {
                commit,
                dirty: Some(h),
                ..
            } => format!("{commit}+{h}"),
            Revision::Git { commit, .. } => commit.clone(),
            Revision::Files { hash } => hash.clone(),
        }
    }

    /// A short name for cell ids: the tag git describes, else the commit's first 12 digits,
    /// else the hash; `+dirty` when the tree differs from its commit.
    pub fn short(&self) -> String {
        match self {
            Revision::Git {
                commit,
                describe,
                dirty,
            } => {
                let base = describe
                    .clone()
                    .unwrap_or_else(|| commit.chars().take(12).collect());
                if dirty.is_some() {
                    format!("{base}+dirty")
                } else {
                    base
                }
            }
            Revision::Files { hash } => hash.chars().take(12).collect(),
        }
    }
}

/// A CRIU source tree that was checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CriuTree {
    /// Its top directory (canonical).
    pub root: PathBuf,
    /// The version `Makefile.versions` says (`4.1.1`).
    pub version: String,
    pub revision: Revision,
    /// The source files, relative to the root, sorted: git's tracked and untracked ones that
    /// are not ignored (build outputs are), or every file of a tree without git.
    pub files: Vec<PathBuf>,
}

/// The version a `Makefile.versions` text sets: `MAJOR[.MINOR[.SUBLEVEL[.EXTRA]]]`.
pub fn parse_version(text: &str) -> Option<String> {
    let var = |name: &str| {
        text.lines().find_map(|l| {
            let (k, v) = l.split_once(":=")?;
            (k.trim() == name).then(|| v.trim().to_string())
        })
    };
    let mut v = var("CRIU_VERSION_MAJOR").filter(|m| !m.is_empty())?;
    for part in [
        "CRIU_VERSION_MINOR",
        "CRIU_VERSION_SUBLEVEL",
        "CRIU_VERSION_EXTRA",
    ] {
        match var(part) {
            Some(p) if !p.is_empty() => {
                v.push('.');
                v.push_str(&p);
            }
            _ => break,
        }
    }
    Some(v)
}

/// Checks that `dir` is a CRIU tree and reads its version, revision and files.
pub fn inspect(dir: &Path) -> Result<CriuTree, TreeError> {
    let missing: Vec<String> = REQUIRED
        .iter()
        .filter(|f| !dir.join(f).is_file())
        .map(|f| f.to_string())
        .collect();
    if !missing.is_empty() {
        return Err(TreeError::NotATree {
            path: dir.to_path_buf(),
            missing,
        });
    }
    let root = dir.canonicalize().map_err(io_err(dir))?;
    let versions = root.join("Makefile.versions");
    let text = fs::read_to_string(&versions).map_err(io_err(&versions))?;
    let version = parse_version(&text).ok_or_else(|| TreeError::NotATree {
        path: dir.to_path_buf(),
        missing: vec!["CRIU_VERSION_MAJOR in Makefile.versions".into()],
    })?;
    let (revision, files) = match git_files(&root) {
        Some((commit, describe, files, changed)) => {
            let dirty = if changed {
                Some(hash_files(&root, &files)?)
            } else {
                None
            };
            (
                Revision::Git {
                    commit,
                    describe,
                    dirty,
                },
                files,
            )
        }
        None => {
            let files = walk(&root)?;
            let hash = hash_files(&root, &files)?;
            (Revision::Files { hash }, files)
        }
    };
    Ok(CriuTree {
        root,
        version,
        revision,
        files,
    })
}

/// The commit, its description, the source files and whether the work tree differs, when
/// `root` is the top of a git checkout (and git is installed).
fn git_files(root: &Path) -> Option<(String, Option<String>, Vec<PathBuf>, bool)> {
    let git = |args: &[&str]| {
        Cmd::new("git")
            .arg("-C")
            .arg(root)
            .args(args.iter().copied())
            .read()
            .ok()
    };
    let top = git(&["rev-parse", "--show-toplevel"])?;
    if Path::new(top.trim()).canonicalize().ok()? != root {
        return None;
    }
    let commit = git(&["rev-parse", "HEAD"])?.trim().to_string();
    let describe = git(&["describe", "--tags", "--always"])
        .map(|d| d.trim().to_string())
        .filter(|d| !d.is_empty());
    let listing = git(&[
        "ls-files",
        "-z",
        "--cached",
        "--others",
        "--exclude-standard",
    ])?;
    let mut files: Vec<PathBuf> = listing
        .split('\0')
        .filter(|f| !f.is_empty())
        .map(PathBuf::from)
        .filter(|f| root.join(f).symlink_metadata().is_ok())
        .collect();
    files.sort();
    files.dedup();
    let changed = !git(&["status", "--porcelain"])?.trim().is_empty();
    Some((commit, describe, files, changed))
}

/// Every file and symlink under `root` but `.git`, relative, sorted.
fn walk(root: &Path) -> Result<Vec<PathBuf>, TreeError> {
    let mut files = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = root.join(&rel);
        for ent in fs::read_dir(&dir).map_err(io_err(&dir))? {
            let ent = ent.map_err(io_err(&dir))?;
            let name = ent.file_name();
            if name == ".git" {
                continue;
            }
            let ty = ent.file_type().map_err(io_err(&ent.path()))?;
            let r = rel.join(&name);
            if ty.is_dir() {
                stack.push(r);
            } else if ty.is_file() || ty.is_symlink() {
                files.push(r);
            }
            if files.len() > MAX_FILES {
                return Err(TreeError::TooLarge {
                    path: root.to_path_buf(),
                });
            }
        }
    }
    files.sort();
    Ok(files)
}

/// The first 16 hex digits of a SHA-256 over each file's path, kind, executable bit and
/// content (a symlink's target).
pub fn hash_files(root: &Path, files: &[PathBuf]) -> Result<String, TreeError> {
    use std::os::unix::fs::PermissionsExt;
    let mut h = Sha256::new();
    for rel in files {
        let path = root.join(rel);
        let meta = path.symlink_metadata().map_err(io_err(&path))?;
        let name = rel.as_os_str().as_encoded_bytes();
        h.update((name.len() as u64).to_le_bytes());
        h.update(name);
        let body = if meta.file_type().is_symlink() {
            h.update(b"l");
            fs::read_link(&path)
                .map_err(io_err(&path))?
                .into_os_string()
                .into_encoded_bytes()
        } else {
            h.update(if meta.permissions().mode() & 0o111 != 0 {
                b"x"
            } else {
                b"f"
            });
            fs::read(&path).map_err(io_err(&path))?
        };
        h.update((body.len() as u64).to_le_bytes());
        h.update(&body);
    }
    Ok(h.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Copies the tree's source files into `dest` (symlinks as symlinks, never followed).
pub fn copy_source(tree: &CriuTree, dest: &Path) -> Result<(), TreeError> {
    for rel in &tree.files {
        let from = tree.root.join(rel);
        let to = dest.join(rel);
        if let Some(parent) = to.parent() {
            fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        let meta = from.symlink_metadata().map_err(io_err(&from))?;
        if meta.file_type().is_symlink() {
            let target = fs::read_link(&from).map_err(io_err(&from))?;
            std::os::unix::fs::symlink(target, &to).map_err(io_err(&to))?;
        } else {
            fs::copy(&from, &to).map_err(io_err(&from))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(version: &str) -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir(t.path().join("criu")).unwrap();
        fs::write(t.path().join("Makefile"), "all:\n").unwrap();
        fs::write(t.path().join("criu/Makefile"), "all:\n").unwrap();
        fs::write(t.path().join("Makefile.versions"), version).unwrap();
        t
    }

    #[test]
    fn versions_of_makefile_versions() {
        let v = "CRIU_VERSION_MAJOR\t:= 4\nCRIU_VERSION_MINOR\t:= 1\n\
                 CRIU_VERSION_SUBLEVEL\t:= 1\nCRIU_VERSION_EXTRA\t:=\nCRIU_VERSION_NAME := X\n";
        assert_eq!(parse_version(v).as_deref(), Some("4.1.1"));
        let v = "CRIU_VERSION_MAJOR := 4\nCRIU_VERSION_MINOR := 2\nCRIU_VERSION_SUBLEVEL :=\n";
        assert_eq!(parse_version(v).as_deref(), Some("4.2"));
        assert_eq!(parse_version("CRIU_VERSION_MINOR := 1\n"), None);
        assert_eq!(parse_version(""), None);
    }

    #[test]
    fn not_a_tree_names_what_is_missing() {
        let t = tempfile::tempdir().unwrap();
        fs::write(t.path().join("Makefile"), "").unwrap();
        let e = inspect(t.path()).unwrap_err();
        assert!(e.is_bad_input());
        let msg = e.to_string();
        assert!(
            msg.contains("not a CRIU source tree: missing Makefile.versions, criu/Makefile"),
            "{msg}"
        );
        let t = tree("# nothing\n");
        let msg = inspect(t.path()).unwrap_err().to_string();
        assert!(
            msg.contains("CRIU_VERSION_MAJOR in Makefile.versions"),
            "{msg}"
        );
    }

    #[test]
    fn a_tree_of_files_is_named_by_their_hash() {
        let t = tree("CRIU_VERSION_MAJOR := 9\nCRIU_VERSION_MINOR := 9\n");
        fs::create_dir(t.path().join(".git")).unwrap();
        fs::write(t.path().join(".git/HEAD"), "not walked").unwrap();
        std::os::unix::fs::symlink("Makefile", t.path().join("link")).unwrap();
        let a = inspect(t.path()).unwrap();
        assert_eq!(a.version, "9.9");
        assert_eq!(
            a.files,
            ["Makefile", "Makefile.versions", "criu/Makefile", "link"].map(PathBuf::from)
        );
        let Revision::Files { hash } = &a.revision else {
            panic!("{:?}", a.revision)
        };
        assert_eq!(a.revision.source(), format!("tree:{hash}"));
        // The same content elsewhere is the same tree; a changed byte is another.
        let b = tree("CRIU_VERSION_MAJOR := 9\nCRIU_VERSION_MINOR := 9\n");
        std::os::unix::fs::symlink("Makefile", b.path().join("link")).unwrap();
        assert_eq!(inspect(b.path()).unwrap().revision, a.revision);
        fs::write(b.path().join("criu/Makefile"), "all:\n\n").unwrap();
        assert_ne!(inspect(b.path()).unwrap().revision, a.revision);

        let out = tempfile::tempdir().unwrap();
        copy_source(&a, out.path()).unwrap();
        assert_eq!(
            fs::read_link(out.path().join("link")).unwrap(),
            Path::new("Makefile")
        );
        assert!(out.path().join("criu/Makefile").is_file());
        assert!(!out.path().join(".git").exists());
    }

    #[test]
    fn a_git_checkout_is_named_by_its_commit_and_lists_no_ignored_file() {
        let t = tree("CRIU_VERSION_MAJOR := 4\nCRIU_VERSION_MINOR := 0\n");
        fs::write(t.path().join(".gitignore"), "*.o\n").unwrap();
        let git = |args: &[&str]| {
            Cmd::new("git")
                .arg("-C")
                .arg(t.path())
                .args([
                    "-c",
                    "user.name=t",
                    "-c",
                    "user.email=t@t",
                    "-c",
                    "init.defaultBranch=m",
                ])
                .args(args.iter().copied())
                .read()
        };
        if git(&["init", "-q"]).is_err() {
            eprintln!("no git on this machine: the checkout case is not tried");
            return;
        }
        git(&["add", "-A"]).unwrap();
        git(&["commit", "-q", "-m", "one"]).unwrap();
        git(&["tag", "v4.0"]).unwrap();
        let commit = git(&["rev-parse", "HEAD"]).unwrap().trim().to_string();
        let clean = inspect(t.path()).unwrap();
        assert_eq!(clean.version, "4.0");
        assert_eq!(
            clean.revision,
            Revision::Git {
                commit: commit.clone(),
                describe: Some("v4.0".into()),
                dirty: None
            }
        );
        assert_eq!(clean.revision.short(), "v4.0");
        // A build output (ignored) does not make it dirty; a changed source does.
        fs::write(t.path().join("criu/x.o"), "obj").unwrap();
        assert_eq!(inspect(t.path()).unwrap().revision, clean.revision);
        fs::write(t.path().join("criu/new.c"), "int x;\n").unwrap();
        let dirty = inspect(t.path()).unwrap();
        assert!(
            dirty.revision.source().ends_with("+dirty"),
            "{:?}",
            dirty.revision
        );
        assert!(dirty.files.contains(&PathBuf::from("criu/new.c")));
        assert!(!dirty.files.contains(&PathBuf::from("criu/x.o")));
        assert_eq!(dirty.revision.short(), "v4.0+dirty");
    }

    #[test]
    fn revision_names() {
        let clean = Revision::Git {
            commit: "a44aa6d985472d995d04fef7eae22d63c7500f8c".into(),
            describe: Some("v4.1.1".into()),
            dirty: None,
        };
        assert_eq!(
            clean.source(),
            "git:a44aa6d985472d995d04fef7eae22d63c7500f8c"
        );
        assert_eq!(clean.short(), "v4.1.1");
        let dirty = Revision::Git {
            commit: "a44aa6d985472d995d04fef7eae22d63c7500f8c".into(),
            describe: None,
            dirty: Some("0011223344556677".into()),
        };
        assert_eq!(dirty.short(), "a44aa6d98547+dirty");
        assert!(dirty.source().ends_with("+dirty"));
        assert_ne!(dirty.key(), clean.key());
    }
}
