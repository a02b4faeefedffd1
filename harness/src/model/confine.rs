//! Scenario directories come from other people: every path a scenario names stays inside
//! its folder. A host file it copies (`files`) must be a relative path without `..` that,
//! symlinks resolved, is inside the scenario file's directory; a guest file it collects
//! (`collect`) must be a relative path without `..` inside its working directory, and is
//! resolved again there before it is read. Copies never follow a symlink at their last step.

use std::fs::File;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

/// Why a path is refused; the message names it.
#[derive(Debug, thiserror::Error)]
pub enum PathError {
    #[error("an empty path")]
    Empty,
    #[error("`{}` leads out of its folder with `..`", .0.display())]
    Parent(PathBuf),
    #[error("`{}` is absolute: paths are relative to the scenario's folder", .0.display())]
    Absolute(PathBuf),
    #[error("`{}`", path.display())]
    Unreadable {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("`{}` leads out of {} through a symlink (to {})", rel.display(), root.display(), to.display())]
    Escapes {
        rel: PathBuf,
        root: PathBuf,
        to: PathBuf,
    },
}

/// Refuses a path that is empty, absolute or has a `..`.
pub fn lexical(rel: &Path) -> Result<(), PathError> {
    if rel.as_os_str().is_empty() {
        return Err(PathError::Empty);
    }
    for c in rel.components() {
        match c {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => return Err(PathError::Parent(rel.to_path_buf())),
            Component::RootDir | Component::Prefix(_) => {
                return Err(PathError::Absolute(rel.to_path_buf()))
            }
        }
    }
    Ok(())
}

/// `root/rel`, symlinks resolved, when it is inside `root` (resolved too).
pub fn resolve(root: &Path, rel: &Path) -> Result<PathBuf, PathError> {
    lexical(rel)?;
    let real_root = root
        .canonicalize()
        .map_err(|source| PathError::Unreadable {
            path: root.to_path_buf(),
            source,
        })?;
    let real = root
        .join(rel)
        .canonicalize()
        .map_err(|source| PathError::Unreadable {
            path: rel.to_path_buf(),
            source,
        })?;
    if !real.starts_with(&real_root) {
        return Err(PathError::Escapes {
            rel: rel.to_path_buf(),
            root: real_root,
            to: real,
        });
    }
    Ok(real)
}

/// Copies the regular file `src` to `dest` without following a symlink at `src` (a file
/// swapped for a link after the scenario was loaded is refused with `ELOOP`).
pub fn copy_nofollow(src: &Path, dest: &Path) -> io::Result<u64> {
    let mut from = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(src)?;
    if !from.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a regular file", src.display()),
        ));
    }
    let mut to = File::create(dest)?;
    io::copy(&mut from, &mut to)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn paths_that_lead_out_are_refused() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("scen");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("ok.sh"), "true").unwrap();
        std::fs::write(root.join("sub/in.sh"), "true").unwrap();
        std::fs::write(t.path().join("secret"), "x").unwrap();
        symlink("../secret", root.join("link-out")).unwrap();
        symlink("ok.sh", root.join("link-in")).unwrap();
        symlink(t.path(), root.join("dir-out")).unwrap();

        assert_eq!(
            resolve(&root, Path::new("ok.sh")).unwrap(),
            root.canonicalize().unwrap().join("ok.sh")
        );
        assert!(resolve(&root, Path::new("sub/in.sh")).is_ok());
        assert!(
            resolve(&root, Path::new("./link-in")).is_ok(),
            "a link inside is fine"
        );
        for (rel, needle) in [
            ("../secret", "`..`"),
            ("sub/../../secret", "`..`"),
            ("/etc/shadow", "absolute"),
            ("link-out", "through a symlink"),
            ("dir-out/secret", "through a symlink"),
            ("missing.sh", "No such file"),
            ("", "empty"),
        ] {
            let e = crate::diagnose::chain::chain(&resolve(&root, Path::new(rel)).unwrap_err());
            assert!(e.contains(needle), "{rel}: `{needle}` not in {e}");
        }
    }

    #[test]
    fn copies_do_not_follow_a_final_symlink() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("real"), "data").unwrap();
        symlink(t.path().join("real"), t.path().join("link")).unwrap();
        let dest = t.path().join("copy");
        assert_eq!(copy_nofollow(&t.path().join("real"), &dest).unwrap(), 4);
        let e = copy_nofollow(&t.path().join("link"), &dest).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(nix::libc::ELOOP), "{e}");
        let e = copy_nofollow(t.path(), &dest).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
    }
}
