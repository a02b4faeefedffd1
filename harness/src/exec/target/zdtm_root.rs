//! The root of zdtm's `ns` and `uns` flavors, made as zdtm.py makes it: the built `test/`
//! folder bind-mounted on a root directory, in which the test's own library pivots into
//! its new mount namespace. What the root needs is made inside the tree itself (through
//! the bind), once per guest: zdtm's directories, the `usr/*` links, the device nodes; and
//! per test the libraries of its binary and of its `.desc` `deps`.
//!
//! Two layouts, as the tree's zdtm.py has it: older trees keep the device nodes in the
//! tree's `dev/`; newer ones (whose zdtm.py names `ZDTM_DEV`) put them on a tmpfs beside the
//! root, which the test binds on its `/dev` and criu is told about as an external mount.

use crate::model::scenario::{ZdtmFlavor, ZdtmTest, ZDTM_ROOT};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::{makedev, mknod, Mode, SFlag};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Where the roots are made (zdtm.py: a `criu-root-XXXXXX` in `/tmp`).
const BASE: &str = "/tmp/crtest-zdtm-root";
/// The tree's folders zdtm.py makes for the root (as `/NAME` inside it).
const ROOT_DIRS: &[&str] = &[
    "bin", "sbin", "etc", "lib", "lib64", "dev", "dev/pts", "dev/net", "tmp", "usr", "proc", "run",
];
/// Made once per guest in the tree: the root's folders, links and nodes are there.
const CONSTRUCTED: &str = ".crtest-constructed";

/// Why a root could not be made.
#[derive(Debug, thiserror::Error)]
pub enum RootError {
    #[error("cannot {op} {}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot {op} {}", path.display())]
    Sys {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("`ldd {}` failed: {why}", binary.display())]
    Ldd { binary: PathBuf, why: String },
    #[error("none of the test's `deps` {0} is in the guest")]
    Deps(String),
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> RootError + 'a {
    move |source| RootError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

fn sys<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(nix::Error) -> RootError + 'a {
    move |source| RootError::Sys {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Where a test's root is, and its `/dev` when the tree puts it on a tmpfs of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub root: PathBuf,
    pub dev: Option<PathBuf>,
}

impl Layout {
    /// The layout of the guest's tree.
    pub fn of_tree() -> Layout {
        let zdtm_py = std::fs::read_to_string(Path::new(ZDTM_ROOT).join("zdtm.py"));
        Layout::new(zdtm_py.is_ok_and(|t| t.contains("ZDTM_DEV")))
    }

    fn new(dev_tmpfs: bool) -> Layout {
        let base = Path::new(BASE);
        match dev_tmpfs {
            false => Layout {
                root: base.join("root"),
                dev: None,
            },
            true => Layout {
                root: base.join("root/root"),
                dev: Some(base.join("dev")),
            },
        }
    }

    /// The environment zdtm.py gives a test of `flavor` in this root.
    pub fn env(&self, flavor: ZdtmFlavor) -> Vec<(String, String)> {
        let mut env = vec![
            ("ZDTM_NEWNS".to_string(), "1".to_string()),
            ("ZDTM_ROOT".into(), self.root.display().to_string()),
            (
                "PATH".into(),
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
            ),
        ];
        if flavor == ZdtmFlavor::Uns {
            env.push(("ZDTM_USERNS".into(), "1".into()));
        }
        if let Some(dev) = &self.dev {
            env.push(("ZDTM_DEV".into(), dev.display().to_string()));
        }
        env
    }

    /// criu's options for a dump of a test in this root (zdtm.py's `--root`, and the
    /// tmpfs `/dev` as an external mount).
    pub fn dump_options(&self) -> Vec<String> {
        let mut v = vec!["--root".to_string(), self.root.display().to_string()];
        if self.dev.is_some() {
            v.extend(["--external".into(), "mnt[/dev]:ZDTM_DEV".into()]);
        }
        v
    }

    /// criu's options for the restore.
    pub fn restore_options(&self) -> Vec<String> {
        let mut v = vec!["--root".to_string(), self.root.display().to_string()];
        if let Some(dev) = &self.dev {
            v.extend([
                "--external".into(),
                format!("mnt[ZDTM_DEV]:{}", dev.display()),
            ]);
        }
        v
    }

    /// The folder a test starts in: its own folder, seen through the root.
    pub fn test_dir(&self, z: &ZdtmTest) -> PathBuf {
        let set = z.test.split('/').next().unwrap_or("static");
        self.root.join("zdtm").join(set)
    }

    /// Makes the root for `z`: the tree's folders and nodes (once), the libraries of the
    /// test and of its `deps`, the tree bound on the root (and the tmpfs `/dev`).
    pub fn enter(&self, z: &ZdtmTest) -> Result<(), RootError> {
        let tree = Path::new(ZDTM_ROOT);
        construct(tree, self.dev.is_none())?;
        if z.flavor == ZdtmFlavor::Uns {
            // Mapped users make criu's roots yard and the test's files in it.
            add_mode(tree, 0o077)?;
        }
        copy_libs(tree, &z.dir().join(z.name()))?;
        for alternatives in &z.deps {
            copy_dep(tree, alternatives)?;
        }
        std::fs::create_dir_all(&self.root).map_err(io("create", &self.root))?;
        for dir in [Path::new(BASE), &self.root] {
            let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755));
        }
        self.leave();
        mount(
            Some(tree),
            &self.root,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(sys("bind the tree on", &self.root))?;
        mount(
            None::<&str>,
            &self.root,
            None::<&str>,
            MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .map_err(sys("make private", &self.root))?;
        if let Some(dev) = &self.dev {
            dev_tmpfs(dev)?;
        }
        Ok(())
    }

    /// Unmounts the root (and its `/dev`); never fails.
    pub fn leave(&self) {
        for p in std::iter::once(&self.root).chain(self.dev.as_ref()) {
            while umount2(p, MntFlags::MNT_DETACH).is_ok() {}
        }
    }
}

/// The root's folders, `usr/*` links and (when `nodes`) device nodes, in the tree, once.
fn construct(tree: &Path, nodes: bool) -> Result<(), RootError> {
    let marker = tree.join(CONSTRUCTED);
    if marker.exists() {
        return Ok(());
    }
    for d in ROOT_DIRS {
        let p = tree.join(d);
        std::fs::create_dir_all(&p).map_err(io("create", &p))?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o777))
            .map_err(io("chmod", &p))?;
    }
    for l in ["bin", "sbin", "lib", "lib64"] {
        let p = tree.join("usr").join(l);
        if std::fs::symlink_metadata(&p).is_err() {
            std::os::unix::fs::symlink(format!("../{l}"), &p).map_err(io("link", &p))?;
        }
    }
    if nodes {
        make_nodes(&tree.join("dev"))?;
    }
    std::fs::write(&marker, "").map_err(io("write", &marker))
}

/// zdtm's device nodes in `dev`: tty, null, autofs by number, net/tun and rtc as the
/// guest has them (left out when it has not).
fn make_nodes(dev: &Path) -> Result<(), RootError> {
    for d in ["pts", "net"] {
        let p = dev.join(d);
        std::fs::create_dir_all(&p).map_err(io("create", &p))?;
    }
    let guest = |name: &str| {
        std::fs::metadata(Path::new("/dev").join(name))
            .ok()
            .map(|m| std::os::unix::fs::MetadataExt::rdev(&m))
    };
    for (name, rdev) in [
        ("tty", Some(makedev(5, 0))),
        ("null", Some(makedev(1, 3))),
        ("net/tun", guest("net/tun")),
        ("rtc", guest("rtc")),
        ("autofs", Some(makedev(10, 235))),
    ] {
        let Some(rdev) = rdev else { continue };
        let p = dev.join(name);
        if p.exists() {
            continue;
        }
        mknod(&p, SFlag::S_IFCHR, Mode::from_bits_truncate(0o666), rdev)
            .map_err(sys("make the device node", &p))?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o666))
            .map_err(io("chmod", &p))?;
    }
    Ok(())
}

/// The tmpfs `/dev` of a newer tree's root, with zdtm's nodes.
fn dev_tmpfs(dev: &Path) -> Result<(), RootError> {
    std::fs::create_dir_all(dev).map_err(io("create", dev))?;
    mount(
        Some("criu-test-dev"),
        dev,
        Some("tmpfs"),
        MsFlags::empty(),
        None::<&str>,
    )
    .map_err(sys("mount a tmpfs on", dev))?;
    std::fs::set_permissions(dev, std::fs::Permissions::from_mode(0o777))
        .map_err(io("chmod", dev))?;
    make_nodes(dev)
}

fn add_mode(p: &Path, bits: u32) -> Result<(), RootError> {
    let mode = std::fs::metadata(p)
        .map_err(io("stat", p))?
        .permissions()
        .mode();
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode | bits))
        .map_err(io("chmod", p))
}

/// The libraries `ldd` names for a program, as zdtm.py reads its output: the lines that
/// start with a tab, without the vdso and the loader's own, the path after `=>` or else
/// the first word.
pub fn ldd_libs(output: &str) -> Vec<String> {
    output
        .lines()
        .filter(|l| l.starts_with('\t'))
        .map(str::trim)
        .filter(|l| {
            !(l.starts_with("linux-gate.so")
                || l.starts_with("linux-vdso")
                || l.starts_with("not a dynamic")
                || l.contains("ldd "))
        })
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            match w.as_slice() {
                [_, "=>", path, ..] if path.starts_with('/') => Some(path.to_string()),
                [first, ..] if first.starts_with('/') => Some(first.to_string()),
                _ => None,
            }
        })
        .collect()
}

/// Copies `file` (a guest path) to the same path inside the tree, unless it is there.
fn copy_into(tree: &Path, file: &Path) -> Result<(), RootError> {
    let dest = tree.join(file.strip_prefix("/").unwrap_or(file));
    if dest.exists() {
        return Ok(());
    }
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent).map_err(io("create", parent))?;
    }
    let tmp = dest.with_extension("crtest-tmp");
    std::fs::copy(file, &tmp).map_err(io("copy into the root", file))?;
    std::fs::rename(&tmp, &dest).map_err(io("rename", &dest))
}

/// The libraries of `binary`, copied into the tree.
fn copy_libs(tree: &Path, binary: &Path) -> Result<(), RootError> {
    let out = std::process::Command::new("ldd")
        .arg(binary)
        .output()
        .map_err(|e| RootError::Ldd {
            binary: binary.to_path_buf(),
            why: e.to_string(),
        })?;
    // `ldd` of a static binary says so and exits 1: nothing to copy.
    let text = String::from_utf8_lossy(&out.stdout);
    for lib in ldd_libs(&text) {
        copy_into(tree, Path::new(&lib))?;
    }
    Ok(())
}

/// The first of `a|b|...` the guest has, with its libraries, copied into the tree.
fn copy_dep(tree: &Path, alternatives: &str) -> Result<(), RootError> {
    let found = alternatives
        .split('|')
        .map(Path::new)
        .find(|p| p.exists())
        .ok_or_else(|| RootError::Deps(alternatives.to_string()))?;
    copy_into(tree, found)?;
    copy_libs(tree, found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output_as_zdtm_py_reads_it() {
        let out = "\tlinux-vdso.so.1 (0x00007ffd)\n\
                   \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)\n\
                   \t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n\
                   not part of it\n";
        assert_eq!(
            ldd_libs(out),
            [
                "/lib/x86_64-linux-gnu/libc.so.6",
                "/lib64/ld-linux-x86-64.so.2"
            ]
        );
        assert!(ldd_libs("\tnot a dynamic executable\n").is_empty());
    }

    #[test]
    fn the_two_layouts() {
        let old = Layout::new(false);
        assert_eq!(old.root, Path::new("/tmp/crtest-zdtm-root/root"));
        assert_eq!(old.dump_options(), ["--root", "/tmp/crtest-zdtm-root/root"]);
        let new = Layout::new(true);
        assert_eq!(
            new.restore_options(),
            [
                "--root",
                "/tmp/crtest-zdtm-root/root/root",
                "--external",
                "mnt[ZDTM_DEV]:/tmp/crtest-zdtm-root/dev"
            ]
        );
        let env = new.env(ZdtmFlavor::Uns);
        for k in ["ZDTM_NEWNS", "ZDTM_ROOT", "ZDTM_USERNS", "ZDTM_DEV"] {
            assert!(env.iter().any(|(n, _)| n == k), "{k}");
        }
        assert!(!old
            .env(ZdtmFlavor::Ns)
            .iter()
            .any(|(n, _)| n == "ZDTM_USERNS"));
    }
}
