//! The guest's initramfs: a newc cpio archive written here (no external
//! `cpio`), holding the guest agent as `/init`, workload binaries under
//! `/crtest/bin/` and the kernel modules the agent loads before mounting the
//! userland, as `/crtest/modules/NN-name.ko` plus `/crtest/modules/order`.
//!
//! Modules are stored uncompressed (`.ko.xz` / `.ko.zst` are decompressed at
//! build time with `xz -dc` / `zstd -dc`) so the agent can pass them to
//! `init_module(2)` as they are, whatever the kernel's decompression support.

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::command::{Cmd, CommandError};
use crate::kernel::Kernel;
use crate::modules::{ModuleIndex, ModulesError};

/// Where modules go inside the initramfs.
pub const MODULES_DIR: &str = "crtest/modules";
/// The file listing the modules in load order, one file name a line.
pub const MODULES_ORDER: &str = "crtest/modules/order";

/// Errors building an initramfs.
#[derive(Debug, thiserror::Error)]
pub enum InitramfsError {
    /// Reading an input or writing the archive failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file read or written.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A decompressor could not start or failed.
    #[error("decompressing a module: {0}")]
    Decompress(#[from] CommandError),
    /// Module names could not be resolved.
    #[error(transparent)]
    Modules(#[from] ModulesError),
    /// Modules were asked for but the kernel has none.
    #[error("kernel {release} has no modules directory, cannot add modules {names}")]
    NoModules {
        /// The kernel release.
        release: String,
        /// The modules asked for.
        names: String,
    },
    /// A path that cannot be stored (empty, `..`, or too long).
    #[error("invalid initramfs path `{0}`")]
    BadPath(String),
}

/// What an archive entry holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryData {
    /// A directory.
    Dir,
    /// A regular file with these contents.
    File(Vec<u8>),
    /// A regular file whose contents are read from a host file when written.
    HostFile(PathBuf),
    /// A symbolic link to this target.
    Symlink(String),
}

/// One archive entry; `path` is relative to the guest's root (a leading
/// `/` is dropped), `mode` holds the permission bits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path inside the archive.
    pub path: String,
    /// Permission bits (`0o755`); the file type comes from `data`.
    pub mode: u32,
    /// Contents.
    pub data: EntryData,
}

impl Entry {
    /// A directory, mode 0755.
    pub fn dir(path: &str) -> Self {
        Entry {
            path: path.into(),
            mode: 0o755,
            data: EntryData::Dir,
        }
    }

    /// A regular file with the given bytes and mode.
    pub fn file(path: &str, mode: u32, bytes: impl Into<Vec<u8>>) -> Self {
        Entry {
            path: path.into(),
            mode,
            data: EntryData::File(bytes.into()),
        }
    }

    /// A regular file copied from the host when the archive is written.
    pub fn host_file(path: &str, mode: u32, from: impl Into<PathBuf>) -> Self {
        Entry {
            path: path.into(),
            mode,
            data: EntryData::HostFile(from.into()),
        }
    }

    /// A symbolic link.
    pub fn symlink(path: &str, target: &str) -> Self {
        Entry {
            path: path.into(),
            mode: 0o777,
            data: EntryData::Symlink(target.into()),
        }
    }
}

/// An ordered list of entries, built up with chained calls:
/// `entries.file("/init", 0o755, agent).symlink("/bin", "crtest/bin")`.
/// Dereferences to `[Entry]`, so `build_initramfs(out, &entries)` works.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entries(Vec<Entry>);

impl Entries {
    /// No entries.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends an entry.
    pub fn push(&mut self, e: Entry) -> &mut Self {
        self.0.push(e);
        self
    }

    /// Appends a directory (mode 0755).
    pub fn dir(&mut self, path: &str) -> &mut Self {
        self.push(Entry::dir(path))
    }

    /// Appends a regular file.
    pub fn file(&mut self, path: &str, mode: u32, bytes: impl Into<Vec<u8>>) -> &mut Self {
        self.push(Entry::file(path, mode, bytes))
    }

    /// Appends a regular file read from the host when the archive is written.
    pub fn host_file(&mut self, path: &str, mode: u32, from: impl Into<PathBuf>) -> &mut Self {
        self.push(Entry::host_file(path, mode, from))
    }

    /// Appends a symbolic link.
    pub fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.push(Entry::symlink(path, target))
    }

    /// Appends modules from [`boot_modules`] and their order file
    /// (see [`module_entries`]).
    pub fn modules(&mut self, modules: Vec<(String, Vec<u8>)>) -> &mut Self {
        self.0.extend(module_entries(modules));
        self
    }

    /// The entries.
    pub fn into_vec(self) -> Vec<Entry> {
        self.0
    }
}

impl std::ops::Deref for Entries {
    type Target = [Entry];
    fn deref(&self) -> &[Entry] {
        &self.0
    }
}

impl From<Vec<Entry>> for Entries {
    fn from(v: Vec<Entry>) -> Self {
        Entries(v)
    }
}

impl Extend<Entry> for Entries {
    fn extend<I: IntoIterator<Item = Entry>>(&mut self, iter: I) {
        self.0.extend(iter);
    }
}

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const TRAILER: &str = "TRAILER!!!";

/// The fields of a newc header that vary (uid, gid, mtime and devices are 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Inode number.
    pub ino: u32,
    /// File type and permission bits.
    pub mode: u32,
    /// Link count.
    pub nlink: u32,
    /// Size of the data that follows.
    pub filesize: u32,
    /// Length of the name including its NUL.
    pub namesize: u32,
}

impl Header {
    /// The 110-byte ASCII header (`070701` and 13 eight-digit hex fields).
    pub fn encode(&self) -> String {
        let fields = [
            self.ino,
            self.mode,
            0, // uid
            0, // gid
            self.nlink,
            0, // mtime
            self.filesize,
            0, // devmajor
            0, // devminor
            0, // rdevmajor
            0, // rdevminor
            self.namesize,
            0, // check
        ];
        let mut s = String::with_capacity(110);
        s.push_str("070701");
        for f in fields {
            s.push_str(&format!("{f:08X}"));
        }
        s
    }
}

fn pad4(n: usize) -> usize {
    (4 - n % 4) % 4
}

/// A streaming newc writer.
pub struct CpioWriter<W: Write> {
    w: W,
    next_ino: u32,
    offset: usize,
}

impl<W: Write> CpioWriter<W> {
    /// Writes to `w`.
    pub fn new(w: W) -> Self {
        CpioWriter {
            w,
            next_ino: 1,
            offset: 0,
        }
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.w.write_all(bytes)?;
        self.offset += bytes.len();
        Ok(())
    }

    fn pad(&mut self) -> io::Result<()> {
        let n = pad4(self.offset);
        self.put(&[0u8; 3][..n])
    }

    fn record(&mut self, name: &str, mode: u32, nlink: u32, data: &[u8]) -> io::Result<()> {
        let filesize = u32::try_from(data.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "file over 4 GiB"))?;
        let ino = if name == TRAILER {
            0
        } else {
            self.next_ino += 1;
            self.next_ino - 1
        };
        let h = Header {
            ino,
            mode,
            nlink,
            filesize,
            namesize: name.len() as u32 + 1,
        };
        self.put(h.encode().as_bytes())?;
        self.put(name.as_bytes())?;
        self.put(&[0])?;
        self.pad()?;
        self.put(data)?;
        self.pad()
    }

    /// Appends a directory.
    pub fn dir(&mut self, name: &str, perm: u32) -> io::Result<()> {
        self.record(name, S_IFDIR | (perm & 0o7777), 2, &[])
    }

    /// Appends a regular file.
    pub fn file(&mut self, name: &str, perm: u32, data: &[u8]) -> io::Result<()> {
        self.record(name, S_IFREG | (perm & 0o7777), 1, data)
    }

    /// Appends a symbolic link.
    pub fn symlink(&mut self, name: &str, target: &str) -> io::Result<()> {
        self.record(name, S_IFLNK | 0o777, 1, target.as_bytes())
    }

    /// Writes the `TRAILER!!!` record and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.record(TRAILER, 0, 1, &[])?;
        self.w.flush()?;
        Ok(self.w)
    }
}

fn clean_path(p: &str) -> Result<String, InitramfsError> {
    let parts: Vec<&str> = p
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    if parts.is_empty() || parts.contains(&"..") || p.len() > 4000 {
        return Err(InitramfsError::BadPath(p.to_string()));
    }
    Ok(parts.join("/"))
}

/// Writes `entries` as an uncompressed newc archive to `out`. Missing parent
/// directories are added (mode 0755) before the first entry inside them,
/// since the kernel's unpacker does not create them.
pub fn build_initramfs(out: &Path, entries: &[Entry]) -> Result<(), InitramfsError> {
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| InitramfsError::Io { path, source }
    };
    let f = fs::File::create(out).map_err(io_err(out))?;
    let mut w = CpioWriter::new(BufWriter::new(f));
    let mut dirs = BTreeSet::new();
    for e in entries {
        let path = clean_path(&e.path)?;
        let mut prefix = String::new();
        let comps: Vec<&str> = path.split('/').collect();
        for c in &comps[..comps.len() - 1] {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(c);
            if dirs.insert(prefix.clone()) {
                w.dir(&prefix, 0o755).map_err(io_err(out))?;
            }
        }
        match &e.data {
            EntryData::Dir => {
                if dirs.insert(path.clone()) {
                    w.dir(&path, e.mode).map_err(io_err(out))?;
                }
            }
            EntryData::File(bytes) => w.file(&path, e.mode, bytes).map_err(io_err(out))?,
            EntryData::HostFile(src) => {
                let bytes = fs::read(src).map_err(io_err(src))?;
                w.file(&path, e.mode, &bytes).map_err(io_err(out))?;
            }
            EntryData::Symlink(target) => w.symlink(&path, target).map_err(io_err(out))?,
        }
    }
    w.finish().map_err(io_err(out))?;
    Ok(())
}

/// `xz -dc FILE` / `zstd -dc FILE` / `gzip -dc FILE` for a compressed
/// module, `None` for a plain `.ko`.
pub fn decompress_cmd(path: &Path) -> Option<Cmd> {
    let name = path.file_name()?.to_string_lossy();
    let tool = if name.ends_with(".ko.xz") {
        "xz"
    } else if name.ends_with(".ko.zst") {
        "zstd"
    } else if name.ends_with(".ko.gz") {
        "gzip"
    } else {
        return None;
    };
    Some(Cmd::tool(tool).arg("-dc").arg(path))
}

/// The modules `names` of `kernel` with their dependencies, in load order,
/// as `(NN-name.ko, uncompressed bytes)`.
pub fn boot_modules<S: AsRef<str>>(
    kernel: &Kernel,
    names: &[S],
) -> Result<Vec<(String, Vec<u8>)>, InitramfsError> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let Some(dir) = &kernel.modules_dir else {
        return Err(InitramfsError::NoModules {
            release: kernel.release.clone(),
            names: names
                .iter()
                .map(|n| n.as_ref())
                .collect::<Vec<_>>()
                .join(", "),
        });
    };
    let files = ModuleIndex::load(dir)?.resolve(names)?;
    let width = files.len().to_string().len().max(2);
    let mut out = Vec::with_capacity(files.len());
    for (i, f) in files.iter().enumerate() {
        let bytes = match decompress_cmd(&f.path) {
            Some(cmd) => cmd.run()?.stdout,
            None => fs::read(&f.path).map_err(|source| InitramfsError::Io {
                path: f.path.clone(),
                source,
            })?,
        };
        out.push((format!("{:0width$}-{}.ko", i + 1, f.name), bytes));
    }
    Ok(out)
}

/// Entries placing `modules` (from [`boot_modules`]) under [`MODULES_DIR`]
/// plus the [`MODULES_ORDER`] file.
pub fn module_entries(modules: Vec<(String, Vec<u8>)>) -> Vec<Entry> {
    let mut order = String::new();
    let mut entries = vec![Entry::dir(MODULES_DIR)];
    for (name, bytes) in modules {
        order.push_str(&name);
        order.push('\n');
        entries.push(Entry::file(&format!("{MODULES_DIR}/{name}"), 0o644, bytes));
    }
    entries.push(Entry::file(MODULES_ORDER, 0o644, order));
    entries
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn header_encoding() {
        let h = Header {
            ino: 1,
            mode: S_IFREG | 0o755,
            nlink: 1,
            filesize: 5,
            namesize: 5,
        };
        let s = h.encode();
        assert_eq!(s.len(), 110);
        let expected = [
            "070701", "00000001", "000081ED", "00000000", "00000000", "00000001", "00000000",
            "00000005", "00000000", "00000000", "00000000", "00000000", "00000005", "00000000",
        ]
        .concat();
        assert_eq!(s, expected);
    }

    #[test]
    fn records_are_aligned() {
        let mut w = CpioWriter::new(Vec::new());
        w.file("init", 0o755, b"hello").unwrap();
        let bytes = w.finish().unwrap();
        // 110 + "init\0" (5) = 115 -> pad to 116; data 5 -> pad to 124
        assert_eq!(&bytes[110..116], b"init\0\0");
        assert_eq!(&bytes[116..121], b"hello");
        assert_eq!(&bytes[121..124], &[0, 0, 0]);
        assert_eq!(&bytes[124..130], b"070701");
        assert_eq!(bytes.len() % 4, 0);
        let trailer = String::from_utf8_lossy(&bytes[124 + 110..124 + 110 + 10]);
        assert_eq!(trailer, TRAILER);
    }

    #[test]
    fn host_cpio_reads_it_back() {
        crate::hostdeps::ensure_for_tests().unwrap();
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("agent");
        fs::write(&src, b"\x7fELF fake agent").unwrap();
        let mut entries = Entries::new();
        entries
            .host_file("/init", 0o755, &src)
            .file("crtest/bin/counter", 0o755, vec![0xAB; 1001])
            .symlink("bin", "crtest/bin")
            .dir("/dev")
            .modules(vec![
                ("01-virtio.ko".into(), b"mod1".to_vec()),
                ("02-virtio_blk.ko".into(), b"mod22".to_vec()),
            ]);
        let archive = t.path().join("initrd.cpio");
        build_initramfs(&archive, &entries).unwrap();

        let list = Cmd::new("sh")
            .arg("-c")
            .arg(format!("cpio -t --quiet < '{}'", archive.display()))
            .read()
            .unwrap();
        assert_eq!(
            list.lines().collect::<Vec<_>>(),
            [
                "init",
                "crtest",
                "crtest/bin",
                "crtest/bin/counter",
                "bin",
                "dev",
                "crtest/modules",
                "crtest/modules/01-virtio.ko",
                "crtest/modules/02-virtio_blk.ko",
                "crtest/modules/order",
            ]
        );

        let out = t.path().join("out");
        fs::create_dir(&out).unwrap();
        Cmd::new("sh")
            .arg("-c")
            .arg(format!("cpio -i -d -m --quiet < '{}'", archive.display()))
            .dir(&out)
            .run()
            .unwrap();
        assert_eq!(fs::read(out.join("init")).unwrap(), b"\x7fELF fake agent");
        let meta = fs::metadata(out.join("init")).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, 0o755);
        assert_eq!(
            fs::read(out.join("crtest/bin/counter")).unwrap(),
            vec![0xAB; 1001]
        );
        assert_eq!(
            fs::read_link(out.join("bin")).unwrap(),
            PathBuf::from("crtest/bin")
        );
        assert!(out.join("dev").is_dir());
        assert_eq!(
            fs::read_to_string(out.join(MODULES_ORDER)).unwrap(),
            "01-virtio.ko\n02-virtio_blk.ko\n"
        );
        assert_eq!(
            fs::metadata(out.join("crtest/modules/order"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o644
        );
    }

    #[test]
    fn bad_paths_are_rejected() {
        let t = tempfile::tempdir().unwrap();
        let e = build_initramfs(
            &t.path().join("x"),
            &[Entry::file("../etc/passwd", 0o644, "")],
        )
        .unwrap_err();
        assert!(matches!(e, InitramfsError::BadPath(_)), "{e}");
        assert!(build_initramfs(&t.path().join("x"), &[Entry::dir("/")]).is_err());
    }

    #[test]
    fn decompressors_by_suffix() {
        let c = |p: &str| decompress_cmd(Path::new(p)).map(|c| c.to_string());
        assert!(c("/m/ext4.ko.xz")
            .unwrap()
            .ends_with("xz -dc /m/ext4.ko.xz"));
        assert!(c("/m/ext4.ko.zst")
            .unwrap()
            .ends_with("zstd -dc /m/ext4.ko.zst"));
        assert_eq!(c("/m/ext4.ko"), None);
    }

    #[test]
    fn boot_modules_decompress_and_number() {
        crate::hostdeps::ensure_for_tests().unwrap();
        let t = tempfile::tempdir().unwrap();
        let m = t.path();
        fs::create_dir_all(m.join("kernel")).unwrap();
        fs::write(m.join("kernel/a.ko"), b"plain-a").unwrap();
        fs::write(m.join("kernel/b.ko"), b"xz-b").unwrap();
        Cmd::new("xz").arg(m.join("kernel/b.ko")).run().unwrap();
        fs::write(m.join("kernel/c.ko"), b"zst-c").unwrap();
        Cmd::new("zstd")
            .args(["-q", "--rm"])
            .arg(m.join("kernel/c.ko"))
            .run()
            .unwrap();
        fs::write(
            m.join("modules.dep"),
            "kernel/a.ko: kernel/b.ko.xz kernel/c.ko.zst\nkernel/b.ko.xz: kernel/c.ko.zst\nkernel/c.ko.zst:\n",
        )
        .unwrap();
        let k = Kernel {
            release: "6.9.0".into(),
            source: crate::kernel::KernelSource::Local { path: "/bz".into() },
            bzimage: "/bz".into(),
            modules_dir: Some(m.to_path_buf()),
            config: None,
        };
        let mods = boot_modules(&k, &["a"]).unwrap();
        assert_eq!(
            mods,
            vec![
                ("01-c.ko".to_string(), b"zst-c".to_vec()),
                ("02-b.ko".to_string(), b"xz-b".to_vec()),
                ("03-a.ko".to_string(), b"plain-a".to_vec()),
            ]
        );
        let none = Kernel {
            modules_dir: None,
            ..k
        };
        let e = boot_modules(&none, &["a"]).unwrap_err().to_string();
        assert!(e.contains("6.9.0") && e.contains("a"), "{e}");
    }
}
