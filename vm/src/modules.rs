//! Resolving kernel module names into the files to load, in order.
//!
//! Works from the text indexes `depmod` writes into `lib/modules/<release>`:
//! `modules.dep` (each module's path and its dependencies), `modules.builtin`
//! (modules compiled in, nothing to load), `modules.softdep` (`softdep X
//! pre: Y post: Z`) and `modules.alias` (used for names that are aliases, as
//! softdeps often are: `softdep ext4 pre: crypto-crc32c`).
//!
//! The order is what `modprobe` would do: a module's `pre:` softdeps, its
//! dependencies (each before anything that needs it), the module itself, its
//! `post:` softdeps; every file once. `-` and `_` are the same in names.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Errors resolving modules.
#[derive(Debug, thiserror::Error)]
pub enum ModulesError {
    /// An index file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The index file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A requested module is neither a module, builtin, nor an alias.
    #[error("no kernel module `{name}` in {} (not in modules.dep, modules.builtin or modules.alias)", dir.display())]
    Unknown {
        /// The name asked for.
        name: String,
        /// The modules directory.
        dir: PathBuf,
    },
}

/// One module file to load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleFile {
    /// Normalized module name (`_`, not `-`).
    pub name: String,
    /// Absolute path of the (possibly compressed) module file.
    pub path: PathBuf,
}

/// The parsed indexes of one modules directory.
#[derive(Debug, Clone, Default)]
pub struct ModuleIndex {
    dir: PathBuf,
    /// name -> (path relative to `dir`, dependency names in file order)
    deps: HashMap<String, (String, Vec<String>)>,
    builtin: HashSet<String>,
    /// name -> (pre, post)
    softdeps: HashMap<String, (Vec<String>, Vec<String>)>,
    /// exact alias -> module names, in file order
    aliases: BTreeMap<String, Vec<String>>,
}

/// `_` for `-`, as the kernel does for module names.
pub fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

/// The module name of a path such as `kernel/fs/ext4/ext4.ko.xz`.
pub fn name_of_path(path: &str) -> String {
    let base = path.rsplit('/').next().unwrap_or(path);
    let stem = base.find(".ko").map_or(base, |i| &base[..i]);
    normalize(stem)
}

impl ModuleIndex {
    /// Reads the indexes of `dir` (`lib/modules/<release>`). `modules.dep` is
    /// required; the others are optional.
    pub fn load(dir: &Path) -> Result<Self, ModulesError> {
        let read = |name: &str, required: bool| -> Result<String, ModulesError> {
            let path = dir.join(name);
            match fs::read_to_string(&path) {
                Ok(t) => Ok(t),
                Err(e) if !required && e.kind() == io::ErrorKind::NotFound => Ok(String::new()),
                Err(source) => Err(ModulesError::Read { path, source }),
            }
        };
        let mut idx = Self::parse(
            dir,
            &read("modules.dep", true)?,
            &read("modules.builtin", false)?,
            &read("modules.softdep", false)?,
            &read("modules.alias", false)?,
        );
        // Not text: NUL-separated, and authors' names need not be UTF-8.
        let modinfo = dir.join("modules.builtin.modinfo");
        match fs::read(&modinfo) {
            Ok(bytes) => idx.add_builtin_aliases(&String::from_utf8_lossy(&bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(ModulesError::Read {
                    path: modinfo,
                    source,
                })
            }
        }
        Ok(idx)
    }

    /// The aliases of builtin modules from `modules.builtin.modinfo` (`NAME.alias=ALIAS`
    /// records separated by NULs): a kernel built with `crc32c_generic` in has no
    /// `modules.alias` line for `crc32c`, only this.
    pub fn add_builtin_aliases(&mut self, modinfo: &str) {
        for record in modinfo.split('\0') {
            let Some((module, alias)) = record.split_once(".alias=") else {
                continue;
            };
            if alias.contains(['*', '?', '[']) || module.contains('=') {
                continue;
            }
            let m = normalize(module);
            self.builtin.insert(m.clone());
            let mods = self.aliases.entry(normalize(alias)).or_default();
            if !mods.contains(&m) {
                mods.push(m);
            }
        }
    }

    /// Builds an index from the texts of the four files.
    pub fn parse(dir: &Path, dep: &str, builtin: &str, softdep: &str, alias: &str) -> Self {
        let mut idx = ModuleIndex {
            dir: dir.to_path_buf(),
            ..Default::default()
        };
        for line in dep.lines() {
            let Some((path, rest)) = line.split_once(':') else {
                continue;
            };
            let path = path.trim();
            if path.is_empty() {
                continue;
            }
            let deps = rest.split_whitespace().map(name_of_path).collect();
            idx.deps
                .insert(name_of_path(path), (path.to_string(), deps));
        }
        idx.builtin = builtin
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(name_of_path)
            .collect();
        for line in softdep.lines() {
            let mut words = line.split_whitespace();
            if words.next() != Some("softdep") {
                continue;
            }
            let Some(module) = words.next() else {
                continue;
            };
            let entry = idx.softdeps.entry(normalize(module)).or_default();
            let mut mode = None;
            for w in words {
                match w {
                    "pre:" => mode = Some(true),
                    "post:" => mode = Some(false),
                    w => match mode {
                        Some(true) => entry.0.push(normalize(w)),
                        Some(false) => entry.1.push(normalize(w)),
                        None => {}
                    },
                }
            }
        }
        for line in alias.lines() {
            let mut words = line.split_whitespace();
            let (Some("alias"), Some(pattern), Some(module)) =
                (words.next(), words.next(), words.next())
            else {
                continue;
            };
            if pattern.contains(['*', '?', '[']) {
                continue;
            }
            let mods = idx.aliases.entry(normalize(pattern)).or_default();
            let m = normalize(module);
            if !mods.contains(&m) {
                mods.push(m);
            }
        }
        idx
    }

    /// The modules directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether `name` is compiled into the kernel.
    pub fn is_builtin(&self, name: &str) -> bool {
        self.builtin.contains(&normalize(name))
    }

    /// What a name stands for: `Some(modules)` (empty when builtin), `None`
    /// when unknown. An alias matching several modules prefers the
    /// `*generic*` ones (they load on any CPU; `crc32c_intel` does not under
    /// every emulated CPU), and counts as satisfied if any match is builtin.
    fn lookup(&self, name: &str) -> Option<Vec<String>> {
        let n = normalize(name);
        if self.deps.contains_key(&n) {
            return Some(vec![n]);
        }
        if self.builtin.contains(&n) {
            return Some(vec![]);
        }
        let mods = self.aliases.get(&n)?;
        if mods.iter().any(|m| self.builtin.contains(m)) {
            return Some(vec![]);
        }
        let known: Vec<String> = mods
            .iter()
            .filter(|m| self.deps.contains_key(*m))
            .cloned()
            .collect();
        let generic: Vec<String> = known
            .iter()
            .filter(|m| m.contains("generic"))
            .cloned()
            .collect();
        Some(if generic.is_empty() { known } else { generic })
    }

    /// The files to load for `names`, dependencies first, each once, builtin
    /// modules skipped. Unknown requested names are an error; unknown softdeps
    /// are skipped, as `modprobe` does.
    pub fn resolve<S: AsRef<str>>(&self, names: &[S]) -> Result<Vec<ModuleFile>, ModulesError> {
        let mut out = Vec::new();
        let mut done = HashSet::new();
        for name in names {
            let name = name.as_ref();
            let mods = self.lookup(name).ok_or_else(|| ModulesError::Unknown {
                name: name.to_string(),
                dir: self.dir.clone(),
            })?;
            for m in mods {
                self.visit(&m, &mut done, &mut out);
            }
        }
        Ok(out)
    }

    fn visit(&self, name: &str, done: &mut HashSet<String>, out: &mut Vec<ModuleFile>) {
        // Marked before recursing: breaks cycles (softdeps can form them).
        if !done.insert(name.to_string()) {
            return;
        }
        let Some((path, deps)) = self.deps.get(name) else {
            return;
        };
        let (pre, post) = self.softdeps.get(name).cloned().unwrap_or_default();
        for s in &pre {
            for m in self.lookup(s).unwrap_or_default() {
                self.visit(&m, done, out);
            }
        }
        // modules.dep lists the full closure with the deepest last; modprobe
        // loads it back to front. Recursing into each keeps the order right
        // whatever the listing order.
        for d in deps.iter().rev() {
            self.visit(d, done, out);
        }
        out.push(ModuleFile {
            name: name.to_string(),
            path: self.dir.join(path),
        });
        for s in &post {
            for m in self.lookup(s).unwrap_or_default() {
                self.visit(&m, done, out);
            }
        }
    }
}

/// Loads the indexes of `dir` and resolves `names` (see [`ModuleIndex::resolve`]).
pub fn resolve<S: AsRef<str>>(dir: &Path, names: &[S]) -> Result<Vec<ModuleFile>, ModulesError> {
    ModuleIndex::load(dir)?.resolve(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    const DEP: &str = "\
kernel/fs/ext4/ext4.ko.xz: kernel/lib/crc16.ko.xz kernel/fs/mbcache.ko.xz kernel/fs/jbd2/jbd2.ko.xz
kernel/lib/crc16.ko.xz:
kernel/fs/mbcache.ko.xz:
kernel/fs/jbd2/jbd2.ko.xz:
kernel/crypto/crc32c_generic.ko.xz:
kernel/arch/x86/crypto/crc32c-intel.ko.xz:
kernel/drivers/virtio/virtio_pci.ko.xz: kernel/drivers/virtio/virtio_pci_legacy_dev.ko.xz kernel/drivers/virtio/virtio_pci_modern_dev.ko.xz
kernel/drivers/virtio/virtio_pci_legacy_dev.ko.xz:
kernel/drivers/virtio/virtio_pci_modern_dev.ko.xz:
kernel/drivers/block/virtio_blk.ko.xz:
kernel/fs/9p/9p.ko.xz: kernel/net/9p/9pnet.ko.xz kernel/fs/netfs/netfs.ko.xz
kernel/net/9p/9pnet.ko.xz:
kernel/net/9p/9pnet_virtio.ko.xz: kernel/net/9p/9pnet.ko.xz
kernel/fs/netfs/netfs.ko.xz:
kernel/a.ko: kernel/b.ko
kernel/b.ko:
";
    const BUILTIN: &str = "kernel/drivers/virtio/virtio.ko\nkernel/drivers/virtio/virtio_ring.ko\n";
    const SOFTDEP: &str = "\
# Soft dependencies extracted from modules themselves.
softdep ext4 pre: crypto-crc32c
softdep jbd2 pre: crypto-crc32c
softdep cifs gcm
softdep a pre: nosuchthing post: b
softdep b post: a
";
    const ALIAS: &str = "\
alias crypto-crc32c crc32c_intel
alias crypto-crc32c crc32c_generic
alias crc32c crc32c_intel
alias crc32c crc32c_generic
alias fs-9p 9p
alias pci:v00001AF4d*sv*sd*bc*sc*i* virtio_pci
";

    fn idx() -> ModuleIndex {
        ModuleIndex::parse(Path::new("/m"), DEP, BUILTIN, SOFTDEP, ALIAS)
    }

    fn names(files: &[ModuleFile]) -> Vec<&str> {
        files.iter().map(|f| f.name.as_str()).collect()
    }

    #[rstest]
    #[case::deps_first(&["ext4"], &["crc32c_generic", "jbd2", "mbcache", "crc16", "ext4"])]
    #[case::each_once(&["9p", "9pnet_virtio"], &["netfs", "9pnet", "9p", "9pnet_virtio"])]
    #[case::builtin_skipped(&["virtio", "virtio_pci"], &["virtio_pci_modern_dev", "virtio_pci_legacy_dev", "virtio_pci"])]
    #[case::dash_and_underscore(&["crc32c-generic", "virtio-blk"], &["crc32c_generic", "virtio_blk"])]
    #[case::alias_prefers_generic(&["crc32c"], &["crc32c_generic"])]
    #[case::alias_to_one(&["fs-9p"], &["netfs", "9pnet", "9p"])]
    #[case::softdep_cycle_and_missing(&["a"], &["b", "a"])]
    #[case::requested_twice(&["jbd2", "ext4"], &["crc32c_generic", "jbd2", "mbcache", "crc16", "ext4"])]
    fn resolves(#[case] req: &[&str], #[case] expected: &[&str]) {
        assert_eq!(names(&idx().resolve(req).unwrap()), expected);
    }

    #[test]
    fn builtin_aliases_come_from_modinfo() {
        // A kernel built from source with crc32c_generic in: modules.alias does not know
        // `crc32c`, modules.builtin.modinfo does.
        let mut idx = ModuleIndex::parse(
            Path::new("/m"),
            "kernel/fs/ext4/ext4.ko:\n",
            "kernel/crypto/crc32c_generic.ko\n",
            "",
            "",
        );
        assert!(idx.resolve(&["crc32c"]).is_err());
        idx.add_builtin_aliases(
            "ext4.softdep=pre: crypto-crc32c\0crc32c_generic.alias=crypto-crc32c\0crc32c_generic.alias=crc32c\0crc32c_generic.author=Cl\u{fffd}y\0",
        );
        assert_eq!(names(&idx.resolve(&["crc32c", "ext4"]).unwrap()), ["ext4"]);
        assert!(idx.is_builtin("crc32c_generic"));
    }

    #[test]
    fn paths_are_absolute_under_dir() {
        let f = idx().resolve(&["virtio_blk"]).unwrap();
        assert_eq!(
            f[0].path,
            PathBuf::from("/m/kernel/drivers/block/virtio_blk.ko.xz")
        );
    }

    #[test]
    fn unknown_names_the_module_and_dir() {
        let e = idx().resolve(&["ext4", "nosuchmod"]).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("`nosuchmod`") && msg.contains("/m"), "{msg}");
    }

    #[rstest]
    #[case("kernel/fs/ext4/ext4.ko", "ext4")]
    #[case("kernel/arch/x86/crypto/crc32c-intel.ko.zst", "crc32c_intel")]
    #[case("9pnet_virtio.ko.xz", "9pnet_virtio")]
    fn path_names(#[case] path: &str, #[case] name: &str) {
        assert_eq!(name_of_path(path), name);
    }

    #[test]
    fn load_requires_modules_dep() {
        let t = tempfile::tempdir().unwrap();
        let e = ModuleIndex::load(t.path()).unwrap_err();
        assert!(e.to_string().contains("modules.dep"), "{e}");
        fs::write(t.path().join("modules.dep"), DEP).unwrap();
        let files = resolve(t.path(), &["ext4"]).unwrap();
        // no softdep/alias files: the crc32c softdep is simply not known
        assert_eq!(names(&files), ["jbd2", "mbcache", "crc16", "ext4"]);
    }
}
