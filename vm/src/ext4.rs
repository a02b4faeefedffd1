//! ext4 images of trees, made the same way by root and by a normal user.
//!
//! A Debian root comes as a tar stream (`mmdebstrap ... -`): it is unpacked into a tmpfs
//! of a private mount namespace (a user namespace with the account's subordinate ids for a
//! normal user, see [`crate::userns`]), so that its files keep their owners, and nothing of
//! it outlives the namespace, whatever ends the build; `mke2fs -d` makes the image there,
//! where it reads the owners as the tree has them. Device nodes cannot be made in a user
//! namespace: the eight that mmdebstrap puts in `/dev` ([`DEVICE_NODES`]) are left out of
//! the unpacking and written into the image by `debugfs` afterwards. A directory (zdtm's
//! built tests) is imaged in place, its owner's files as root's.
//!
//! The image is sized to its tree: 1.3 times the space the tree takes in 4 KiB blocks plus
//! 128 MiB, and 1.3 times its entries plus 4096 inodes, no journal.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::command::{Cmd, CommandError};
use crate::userns::{unshare, Ids};

/// The character devices mmdebstrap puts in a root's `/dev` (name, major, minor; mode
/// 0666, owned by root), as the kernel numbers them.
pub const DEVICE_NODES: &[(&str, u32, u32)] = &[
    ("console", 5, 1),
    ("full", 1, 7),
    ("null", 1, 3),
    ("ptmx", 5, 2),
    ("random", 1, 8),
    ("tty", 5, 0),
    ("urandom", 1, 9),
    ("zero", 1, 5),
];

/// Makes the image (`sh SCRIPT ...`). `$1` the tree (`-`: a tar on stdin, unpacked into a tmpfs mounted on
/// `$4`), `$2` the image, `$3` its label, then tar's options.
const SCRIPT: &str = r#"set -eu
# mke2fs is in sbin, which a normal user's PATH lacks on Debian.
PATH=$PATH:/usr/sbin:/sbin
tree=$1 image=$2 label=$3 work=$4
shift 4
if [ "$tree" = - ]; then
  mount -t tmpfs -o mode=0755 crtest-tree "$work"
  tar -x -C "$work" --same-owner --numeric-owner -p --xattrs --xattrs-include='*' "$@"
  tree=$work
fi
usage=$(find "$tree" -xdev -printf '%y %s\n' | awk '
  { n++; if ($1 == "d") b += 4096; else if ($1 == "f") b += int(($2 + 4095) / 4096) * 4096 }
  END { printf "%.0f %.0f\n", b + 4096, n + 1 }')
used=${usage% *} entries=${usage#* }
mib=$(( (used + used * 3 / 10 + 134217728 + 1048575) / 1048576 ))
inodes=$(( entries + entries * 3 / 10 + 4096 ))
mke2fs -q -t ext4 -O ^has_journal -b 4096 -N "$inodes" -L "$label" -d "$tree" -F "$image" "${mib}M"
"#;

/// tar's options leaving [`DEVICE_NODES`] out of a root's unpacking.
pub fn device_excludes() -> Vec<String> {
    DEVICE_NODES
        .iter()
        .map(|(name, _, _)| format!("--exclude=./dev/{name}"))
        .collect()
}

/// The command making `image` (labelled `label`) of the tree `tree` (`-`: a tar on stdin,
/// unpacked into a tmpfs on the empty directory `work`) in the namespace `ns`, with the
/// script written at `script`.
pub fn image_cmd(
    ns: Cmd,
    script: &Path,
    tree: &Path,
    work: &Path,
    image: &Path,
    label: &str,
) -> Cmd {
    ns.arg("sh")
        .arg(script)
        .arg(tree)
        .arg(image)
        .arg(label)
        .arg(work)
}

/// Runs `run` with the image script written beside `image` (`<image>.sh`), removed after.
fn with_script<T>(
    image: &Path,
    run: impl FnOnce(&Path) -> Result<T, Ext4Error>,
) -> Result<T, Ext4Error> {
    let script = image.with_extension("sh");
    fs::write(&script, SCRIPT).map_err(|source| Ext4Error::Io {
        path: script.clone(),
        source,
    })?;
    let out = run(&script);
    let _ = fs::remove_file(&script);
    out
}

/// Why an image could not be made.
#[derive(Debug, thiserror::Error)]
pub enum Ext4Error {
    /// A tool failed (the pipeline from the root's producer to `mke2fs`, or `debugfs`).
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// `debugfs` ran, and a device node is not in the image.
    #[error("{}: /dev/{name} is not in the image after `debugfs`; its /dev:\n{listing}", image.display())]
    Device {
        image: PathBuf,
        name: String,
        listing: String,
    },
}

/// Makes `image` of the Debian root that `producer` writes as a tar to its stdout, with
/// [`DEVICE_NODES`] in its `/dev`. `work` is an empty directory the tree is unpacked on,
/// removed afterwards.
pub fn from_root_tar(
    producer: &Cmd,
    work: &Path,
    image: &Path,
    label: &str,
) -> Result<(), Ext4Error> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Ext4Error::Io { path, source }
    };
    fs::create_dir_all(work).map_err(io(work))?;
    with_script(image, |script| {
        let ns = unshare(Ids::Subordinate);
        let maker = image_cmd(ns, script, Path::new("-"), work, image, label);
        Ok(producer.run_piped(&maker.args(device_excludes()))?)
    })?;
    // The tmpfs was the namespace's: here `work` is the empty directory again.
    let script = work.join("devices.debugfs");
    fs::write(&script, device_script()).map_err(io(&script))?;
    Cmd::tool("debugfs")
        .arg("-w")
        .arg("-f")
        .arg(&script)
        .arg(image)
        .run()?;
    fs::remove_dir_all(work).map_err(io(work))?;
    // debugfs says that a command failed only in its output: look at what it made.
    let listing = Cmd::tool("debugfs")
        .arg("-R")
        .arg("ls -l /dev")
        .arg(image)
        .read()?;
    match DEVICE_NODES
        .iter()
        .find(|(name, _, _)| !has_device(&listing, name))
    {
        None => Ok(()),
        Some((name, _, _)) => Err(Ext4Error::Device {
            image: image.to_path_buf(),
            name: name.to_string(),
            listing,
        }),
    }
}

/// Whether `debugfs`'s `ls -l` output lists `name` as a character device of mode 0666.
fn has_device(listing: &str, name: &str) -> bool {
    listing.lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.get(1) == Some(&"20666") && f.last() == Some(&name)
    })
}

/// Makes `image` of the directory `dir`, its owner's files as root's.
pub fn from_dir(dir: &Path, image: &Path, label: &str) -> Result<(), Ext4Error> {
    with_script(image, |script| {
        let ns = unshare(Ids::Own);
        image_cmd(ns, script, dir, Path::new("/nonexistent"), image, label).run()?;
        Ok(())
    })
}

/// `debugfs` commands making [`DEVICE_NODES`] in `/dev`.
pub fn device_script() -> String {
    let mut s = String::from("cd /dev\n");
    for (name, major, minor) in DEVICE_NODES {
        s.push_str(&format!(
            "mknod {name} c {major} {minor}\nsif {name} mode 020666\n"
        ));
    }
    s
}

/// The text of the file `path` in `image` (`debugfs`'s `cat`).
pub fn read_file(image: &Path, path: &str) -> Result<String, CommandError> {
    Cmd::tool("debugfs")
        .arg("-R")
        .arg(format!("cat {path}"))
        .arg(image)
        .read()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::userns::unshare_as;

    #[test]
    fn image_command_lines() {
        let c = image_cmd(
            unshare_as(false, Ids::Subordinate),
            Path::new("/c/root.sh"),
            Path::new("-"),
            Path::new("/c/tree"),
            Path::new("/c/root.ext4"),
            "crtest-root",
        )
        .args(device_excludes())
        .to_string();
        assert!(c.ends_with(
            "unshare --map-root-user --map-auto --mount sh /c/root.sh - /c/root.ext4 crtest-root /c/tree --exclude=./dev/console \
             --exclude=./dev/full --exclude=./dev/null --exclude=./dev/ptmx \
             --exclude=./dev/random --exclude=./dev/tty --exclude=./dev/urandom \
             --exclude=./dev/zero"
        ));
    }

    #[test]
    fn device_listing() {
        let l = "     15   20666 (3)      0      0       0  7-Dec-2026 17:38 console\n\
                 16  120777 (7)      0      0      13  7-Dec-2026 17:38 fd\n\
                 17   20000 (3)      0      0       0  7-Dec-2026 17:38 full\n";
        assert!(has_device(l, "console"));
        assert!(!has_device(l, "fd"));
        assert!(!has_device(l, "full"));
        assert!(!has_device(l, "null"));
    }

    /// What `debugfs` says of `path` in `image`.
    fn stat(image: &Path, path: &str) -> String {
        Cmd::tool("debugfs")
            .arg("-R")
            .arg(format!("stat {path}"))
            .arg(image)
            .read()
            .unwrap()
    }

    fn small_tree(dir: &Path) {
        fs::create_dir_all(dir.join("d")).unwrap();
        fs::create_dir_all(dir.join("dev/pts")).unwrap();
        fs::write(dir.join("d/f"), vec![7u8; 5000]).unwrap();
        fs::write(dir.join("g"), b"").unwrap();
        std::os::unix::fs::symlink("d/f", dir.join("l")).unwrap();
    }

    #[test]
    fn a_directory_imaged_as_root_s_sized_to_it() {
        let t = tempfile::tempdir().unwrap();
        let tree = t.path().join("tree");
        small_tree(&tree);
        let image = t.path().join("i.ext4");
        from_dir(&tree, &image, "crtest-t").unwrap();
        // 3 directories, a 5000-byte file: 4 blocks, 16 KiB; 7 entries with the root.
        // (16384 * 1.3 + 128 MiB) rounds up to 129 MiB.
        assert_eq!(fs::metadata(&image).unwrap().len(), 129 << 20);
        let st = stat(&image, "/d/f");
        assert!(st.contains("User:     0   Group:     0"), "{st}");
        assert!(st.contains("Size: 5000"), "{st}");
        assert_eq!(read_file(&image, "/g").unwrap(), "");
        let label = Cmd::tool("e2label").arg(&image).read().unwrap();
        assert_eq!(label.trim(), "crtest-t");
    }

    #[test]
    fn a_root_tar_imaged_with_its_devices() {
        let t = tempfile::tempdir().unwrap();
        let tree = t.path().join("tree");
        small_tree(&tree);
        let tar = Cmd::tool("tar").arg("-C").arg(&tree).args(["-c", "."]);
        let image = t.path().join("i.ext4");
        let work = t.path().join("work");
        from_root_tar(&tar, &work, &image, "crtest-t").unwrap();
        assert!(!work.exists(), "the unpacking directory is removed");
        let null = stat(&image, "/dev/null");
        assert!(null.contains("Type: character special"), "{null}");
        assert!(null.contains("Device major/minor number: 01:03"), "{null}");
        assert_eq!(read_file(&image, "/d/f").unwrap().len(), 5000);
        let broken = Cmd::tool("sh").args(["-c", "echo no tar; exit 3"]);
        let e = from_root_tar(&broken, &work, &t.path().join("j.ext4"), "x").unwrap_err();
        assert!(e.to_string().contains("no tar; exit 3' | "), "{e}");
        assert!(!t.path().join("j.sh").exists(), "the script is removed");
    }

    #[test]
    fn device_nodes_in_dev() {
        let s = device_script();
        assert!(s.starts_with("cd /dev\nmknod console c 5 1\nsif console mode 020666\n"));
        assert_eq!(s.lines().filter(|l| l.starts_with("mknod")).count(), 8);
    }
}
