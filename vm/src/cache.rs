//! The build cache: directories keyed by a hash of their inputs.
//!
//! An entry lives at `<root>/<kind>/<key>/`. It is built under an exclusive
//! `flock` on `<root>/<kind>/<key>.lock` into `<root>/<kind>/.tmp-<key>-<pid>`,
//! sealed with a completion marker ([`MARKER`]) that lists every regular file
//! with its size, and renamed into place. A hit is an entry whose marker is
//! present and whose files still have the listed sizes; anything else
//! (a missing marker, a truncated or missing file) is rebuilt.

use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use sha2::{Digest, Sha256};

/// Name of the completion marker inside an entry.
pub const MARKER: &str = ".complete";

/// Errors of the cache layer itself (builders bring their own).
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// No cache location could be derived from the environment.
    #[error("no cache directory: set CRTEST_CACHE, XDG_CACHE_HOME or HOME")]
    NoLocation,
    /// A filesystem operation on a cache path failed.
    #[error("cache: {op} {}: {source}", path.display())]
    Io {
        /// What was being done (`create`, `rename`, ...).
        op: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A directory to remove has filesystems mounted below it (left by a
    /// killed build, e.g. mmdebstrap's /proc and /dev): removing it could
    /// reach into them, so it is left alone.
    #[error("cache: {} has mounts below it ({}); unmount them first", path.display(), mounts.join(", "))]
    Mounted {
        /// The directory.
        path: PathBuf,
        /// The mount points below it.
        mounts: Vec<String>,
    },
    /// Taking the entry's lock failed.
    #[error("cache: flock {}: {source}", path.display())]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// The errno of `flock(2)`.
        #[source]
        source: Errno,
    },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> CacheError + 'a {
    move |source| CacheError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// A cache rooted at a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cache {
    root: PathBuf,
}

/// The first 16 hex digits of the SHA-256 of `parts`, each part
/// length-prefixed so that `["ab", "c"]` and `["a", "bc"]` differ.
pub fn key_of(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    let digest = h.finalize();
    let mut s = String::with_capacity(16);
    for b in &digest[..8] {
        let _ = write!(s, "{b:02x}");
    }
    s
}

impl Cache {
    /// A cache rooted at `root` (created on first use).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Cache { root: root.into() }
    }

    /// `$CRTEST_CACHE`, else `$XDG_CACHE_HOME/crtest`, else
    /// `$HOME/.cache/crtest` (empty variables count as unset).
    pub fn from_env() -> Result<Self, CacheError> {
        let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
        Self::location(var("CRTEST_CACHE"), var("XDG_CACHE_HOME"), var("HOME"))
            .map(Cache::new)
            .ok_or(CacheError::NoLocation)
    }

    fn location(
        crtest: Option<std::ffi::OsString>,
        xdg: Option<std::ffi::OsString>,
        home: Option<std::ffi::OsString>,
    ) -> Option<PathBuf> {
        if let Some(c) = crtest {
            return Some(c.into());
        }
        if let Some(x) = xdg {
            return Some(PathBuf::from(x).join("crtest"));
        }
        home.map(|h| PathBuf::from(h).join(".cache").join("crtest"))
    }

    /// The cache root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the entry `kind`/`key` lives (complete or not).
    pub fn path_of(&self, kind: &str, key: &str) -> PathBuf {
        self.root.join(kind).join(key)
    }

    /// The entry's path when it is complete and intact.
    pub fn lookup(&self, kind: &str, key: &str) -> Option<PathBuf> {
        let dir = self.path_of(kind, key);
        verify(&dir).then_some(dir)
    }

    /// Returns `<root>/<kind>/<key>/`, building it first with `build` unless a
    /// complete, intact entry exists.
    ///
    /// `build` gets an empty temporary directory to fill; it must not record
    /// that directory's absolute path anywhere, since the directory is renamed
    /// afterwards. Concurrent callers (threads or processes) for the same
    /// entry wait on one lock: one builds, the others get its result.
    pub fn entry<E, F>(&self, kind: &str, key: &str, build: F) -> Result<PathBuf, E>
    where
        F: FnOnce(&Path) -> Result<(), E>,
        E: From<CacheError>,
    {
        if let Some(hit) = self.lookup(kind, key) {
            return Ok(hit);
        }
        let kind_dir = self.root.join(kind);
        fs::create_dir_all(&kind_dir).map_err(io_err("create", &kind_dir))?;
        let lock_path = kind_dir.join(format!("{key}.lock"));
        let _lock = lock(&lock_path)?;

        let dir = kind_dir.join(key);
        if verify(&dir) {
            return Ok(dir);
        }
        // Under the lock nobody else builds this key: anything left over is
        // from a broken entry or a crashed builder.
        let pid = std::process::id();
        if fs::symlink_metadata(&dir).is_ok() {
            let trash = kind_dir.join(format!(".trash-{key}-{pid}"));
            fs::rename(&dir, &trash).map_err(io_err("rename", &dir))?;
            remove_all(&trash)?;
        }
        remove_stale_tmp(&kind_dir, key)?;

        let tmp = kind_dir.join(format!(".tmp-{key}-{pid}"));
        fs::create_dir_all(&tmp).map_err(io_err("create", &tmp))?;
        if let Err(e) = build(&tmp) {
            let _ = fs::remove_dir_all(&tmp);
            return Err(e);
        }
        let sealed = write_marker(&tmp)
            .and_then(|()| fs::rename(&tmp, &dir).map_err(io_err("rename", &tmp)));
        if let Err(e) = sealed {
            let _ = fs::remove_dir_all(&tmp);
            return Err(e.into());
        }
        Ok(dir)
    }
}

/// An exclusive `flock` on `path` (made when missing), held until the returned guard drops;
/// waits for another holder.
pub fn lock(path: &Path) -> Result<Flock<File>, CacheError> {
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(io_err("open", path))?;
    loop {
        match Flock::lock(file, FlockArg::LockExclusive) {
            Ok(l) => return Ok(l),
            Err((f, Errno::EINTR)) => file = f,
            Err((_, source)) => {
                return Err(CacheError::Lock {
                    path: path.to_path_buf(),
                    source,
                })
            }
        }
    }
}

/// Mount points at or below `path`, from a mountinfo text.
fn mounts_below(mountinfo: &str, path: &Path) -> Vec<String> {
    mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape_mountinfo)
        .filter(|m| Path::new(m).starts_with(path))
        .collect()
}

fn unescape_mountinfo(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = b[i + 1..i + 4]
                .iter()
                .fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0'));
            out.push(v as u8);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(crate) fn remove_all(path: &Path) -> Result<(), CacheError> {
    if let Ok(info) = fs::read_to_string("/proc/self/mountinfo") {
        let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let mounts = mounts_below(&info, &abs);
        if !mounts.is_empty() {
            return Err(CacheError::Mounted {
                path: path.to_path_buf(),
                mounts,
            });
        }
    }
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("remove", path)(e)),
        _ => Ok(()),
    }
}

fn remove_stale_tmp(kind_dir: &Path, key: &str) -> Result<(), CacheError> {
    let prefix = format!(".tmp-{key}-");
    let rd = fs::read_dir(kind_dir).map_err(io_err("read", kind_dir))?;
    for ent in rd.flatten() {
        let name = ent.file_name();
        let name = name.to_string_lossy();
        if let Some(rest) = name.strip_prefix(&prefix) {
            if !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()) {
                remove_all(&ent.path())?;
            }
        }
    }
    Ok(())
}

/// Lists the regular files under `dir` (relative path, size), sorted,
/// excluding the marker itself.
fn listing(dir: &Path) -> Result<Vec<(String, u64)>, CacheError> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let abs = dir.join(&rel);
        for ent in fs::read_dir(&abs).map_err(io_err("read", &abs))? {
            let ent = ent.map_err(io_err("read", &abs))?;
            let r = rel.join(ent.file_name());
            let ft = ent.file_type().map_err(io_err("stat", &ent.path()))?;
            if ft.is_dir() {
                stack.push(r);
            } else if ft.is_file() {
                if r.as_os_str() == MARKER {
                    continue;
                }
                let len = ent.metadata().map_err(io_err("stat", &ent.path()))?.len();
                out.push((r.to_string_lossy().into_owned(), len));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Marker format: a header line, then `<size> <relative path>` per file.
const MARKER_HEADER: &str = "crtest-cache v1";

fn write_marker(dir: &Path) -> Result<(), CacheError> {
    let mut text = format!("{MARKER_HEADER}\n");
    for (path, size) in listing(dir)? {
        if path.contains('\n') {
            continue;
        }
        let _ = writeln!(text, "{size} {path}");
    }
    let marker = dir.join(MARKER);
    fs::write(&marker, text).map_err(io_err("write", &marker))
}

/// Whether `dir` holds a complete entry whose files have their listed sizes.
fn verify(dir: &Path) -> bool {
    let Ok(text) = fs::read_to_string(dir.join(MARKER)) else {
        return false;
    };
    let mut lines = text.lines();
    if lines.next() != Some(MARKER_HEADER) {
        return false;
    }
    lines.all(|line| {
        let Some((size, path)) = line.split_once(' ') else {
            return false;
        };
        let Ok(size) = size.parse::<u64>() else {
            return false;
        };
        fs::symlink_metadata(dir.join(path)).is_ok_and(|m| m.is_file() && m.len() == size)
    })
}

/// Writes `path` atomically: a reader sees the old file or the whole new one. The bytes go
/// to a uniquely named temporary file beside it (so concurrent writers never share one),
/// which is then renamed over `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".crtest-")
        .suffix(".tmp")
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.persist(path).map(drop).map_err(|e| e.error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_writes_from_many_threads_leave_one_whole_file() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("memo/x.json");
        std::thread::scope(|s| {
            for i in 0..8u8 {
                let path = &path;
                s.spawn(move || {
                    for _ in 0..50 {
                        write_atomic(path, &vec![b'a' + i; 4096]).unwrap();
                    }
                });
            }
        });
        let got = std::fs::read(&path).unwrap();
        assert_eq!(got.len(), 4096);
        assert!(got.iter().all(|b| *b == got[0]), "one writer's whole file");
        let left: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary file left");
    }
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    #[derive(Debug)]
    enum TestError {
        Cache(#[allow(dead_code)] CacheError),
        Build,
    }
    impl From<CacheError> for TestError {
        fn from(e: CacheError) -> Self {
            TestError::Cache(e)
        }
    }

    fn builder(count: &AtomicUsize) -> impl FnOnce(&Path) -> Result<(), TestError> + '_ {
        move |dir| {
            count.fetch_add(1, Ordering::SeqCst);
            fs::create_dir(dir.join("sub")).unwrap();
            fs::write(dir.join("sub/data"), vec![7u8; 1000]).unwrap();
            fs::write(dir.join("top"), b"hello").unwrap();
            Ok(())
        }
    }

    #[test]
    fn key_is_16_hex_and_unambiguous() {
        let k = key_of(&[b"ab", b"c"]);
        assert_eq!(k.len(), 16);
        assert!(k.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(k, key_of(&[b"a", b"bc"]));
        assert_eq!(k, key_of(&[b"ab", b"c"]));
    }

    #[test]
    fn mounts_below_a_dir() {
        let info = "\
22 1 8:1 / / rw - ext4 /dev/sda1 rw
40 22 0:5 / /c/k/.tmp-a-1/rootfs/proc rw - proc proc rw
41 22 0:6 / /c/k/.tmp-a-1/root\\040fs/dev rw - devtmpfs udev rw
42 22 0:7 / /c/k/.tmp-a-10/dev rw - devtmpfs udev rw
";
        assert_eq!(
            mounts_below(info, Path::new("/c/k/.tmp-a-1")),
            ["/c/k/.tmp-a-1/rootfs/proc", "/c/k/.tmp-a-1/root fs/dev"]
        );
        assert!(mounts_below(info, Path::new("/c/k/abc")).is_empty());
    }

    #[test]
    fn location_precedence() {
        let s = |v: &str| Some(std::ffi::OsString::from(v));
        assert_eq!(
            Cache::location(s("/c"), s("/x"), s("/h")),
            Some(PathBuf::from("/c"))
        );
        assert_eq!(
            Cache::location(None, s("/x"), s("/h")),
            Some(PathBuf::from("/x/crtest"))
        );
        assert_eq!(
            Cache::location(None, None, s("/h")),
            Some(PathBuf::from("/h/.cache/crtest"))
        );
        assert_eq!(Cache::location(None, None, None), None);
    }

    #[test]
    fn hit_does_not_rebuild() {
        let t = tempfile::tempdir().unwrap();
        let cache = Cache::new(t.path());
        let n = AtomicUsize::new(0);
        let a = cache.entry("k", "abc", builder(&n)).unwrap();
        let b = cache.entry("k", "abc", builder(&n)).unwrap();
        assert_eq!(a, b);
        assert_eq!(a, t.path().join("k/abc"));
        assert_eq!(n.load(Ordering::SeqCst), 1);
        assert_eq!(fs::read(a.join("top")).unwrap(), b"hello");
        let marker = fs::read_to_string(a.join(MARKER)).unwrap();
        assert_eq!(marker, "crtest-cache v1\n1000 sub/data\n5 top\n");
        // no temp dirs left behind
        let names: Vec<_> = fs::read_dir(t.path().join("k"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(names.iter().all(|n| !n.starts_with(".tmp")), "{names:?}");
    }

    #[test]
    fn truncated_file_is_rebuilt() {
        let t = tempfile::tempdir().unwrap();
        let cache = Cache::new(t.path());
        let n = AtomicUsize::new(0);
        let a = cache.entry("k", "abc", builder(&n)).unwrap();
        fs::write(a.join("sub/data"), b"short").unwrap();
        assert!(cache.lookup("k", "abc").is_none());
        let b = cache.entry("k", "abc", builder(&n)).unwrap();
        assert_eq!(n.load(Ordering::SeqCst), 2);
        assert_eq!(fs::read(b.join("sub/data")).unwrap().len(), 1000);
    }

    #[test]
    fn missing_file_or_marker_is_rebuilt() {
        let t = tempfile::tempdir().unwrap();
        let cache = Cache::new(t.path());
        let n = AtomicUsize::new(0);
        let a = cache.entry("k", "abc", builder(&n)).unwrap();
        fs::remove_file(a.join("top")).unwrap();
        cache.entry("k", "abc", builder(&n)).unwrap();
        fs::remove_file(a.join(MARKER)).unwrap();
        cache.entry("k", "abc", builder(&n)).unwrap();
        assert_eq!(n.load(Ordering::SeqCst), 3);
        assert!(cache.lookup("k", "abc").is_some());
    }

    #[test]
    fn failed_build_leaves_nothing() {
        let t = tempfile::tempdir().unwrap();
        let cache = Cache::new(t.path());
        let r: Result<PathBuf, TestError> = cache.entry("k", "abc", |dir| {
            fs::write(dir.join("half"), b"x").unwrap();
            Err(TestError::Build)
        });
        assert!(matches!(r, Err(TestError::Build)));
        let names: Vec<_> = fs::read_dir(t.path().join("k"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, vec!["abc.lock".to_string()]);
    }

    #[test]
    fn stale_tmp_dirs_are_cleaned() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir_all(t.path().join("k/.tmp-abc-999999/x")).unwrap();
        let cache = Cache::new(t.path());
        let n = AtomicUsize::new(0);
        cache.entry("k", "abc", builder(&n)).unwrap();
        assert!(!t.path().join("k/.tmp-abc-999999").exists());
    }

    #[test]
    fn concurrent_threads_build_once() {
        let t = tempfile::tempdir().unwrap();
        let cache = Arc::new(Cache::new(t.path()));
        let n = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..6)
            .map(|_| {
                let cache = cache.clone();
                let n = n.clone();
                std::thread::spawn(move || {
                    cache
                        .entry::<TestError, _>("k", "same", |dir| {
                            n.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_millis(100));
                            fs::write(dir.join("f"), b"built").map_err(|_| TestError::Build)
                        })
                        .unwrap()
                })
            })
            .collect();
        let paths: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert!(paths.windows(2).all(|w| w[0] == w[1]));
        assert_eq!(n.load(Ordering::SeqCst), 1);
    }

    const CHILD_ROOT: &str = "CRTEST_CACHE_TEST_CHILD_ROOT";

    /// Helper run by `concurrent_processes_build_once` in child processes;
    /// does nothing when run directly.
    #[test]
    #[ignore = "helper for concurrent_processes_build_once"]
    fn child_builder() {
        let Some(root) = std::env::var_os(CHILD_ROOT) else {
            return;
        };
        let root = PathBuf::from(root);
        let cache = Cache::new(root.join("cache"));
        cache
            .entry::<TestError, _>("k", "shared", |dir| {
                let mut log = OpenOptions::new()
                    .append(true)
                    .create(true)
                    .open(root.join("builds"))
                    .unwrap();
                io::Write::write_all(&mut log, b"built\n").unwrap();
                std::thread::sleep(Duration::from_millis(300));
                fs::write(dir.join("f"), vec![1u8; 4096]).unwrap();
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn concurrent_processes_build_once() {
        let t = tempfile::tempdir().unwrap();
        let exe = std::env::current_exe().unwrap();
        let children: Vec<_> = (0..3)
            .map(|_| {
                std::process::Command::new(&exe)
                    .args([
                        "--exact",
                        "cache::tests::child_builder",
                        "--ignored",
                        "--test-threads=1",
                    ])
                    .env(CHILD_ROOT, t.path())
                    .stdout(std::process::Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for mut c in children {
            assert!(c.wait().unwrap().success());
        }
        let builds = fs::read_to_string(t.path().join("builds")).unwrap();
        assert_eq!(builds, "built\n");
        assert!(Cache::new(t.path().join("cache"))
            .lookup("k", "shared")
            .is_some());
    }
}
