//! A CRIU image directory: the checkpoint it holds (inventory, process tree, each
//! process's core, statistics) and the list of its files by image type.

use crate::ckpt::entries::{
    arch_name, task_state_name, Core, Decode, DumpStats, Inventory, PstreeEntry, RestoreStats,
    StatsEntry,
};
use crate::ckpt::image::{
    self, FormatError, CORE_MAGIC, INVENTORY_MAGIC, PSTREE_MAGIC, STATS_MAGIC,
};
use serde::Serialize;
use std::collections::HashSet;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// Larger files are not read whole (no image ckptinfo decodes comes near this).
pub const MAX_IMAGE_BYTES: u64 = 64 << 20;

/// Why an image directory could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("{}: not a directory", path.display())]
    NotADir { path: PathBuf },
    #[error("{}: missing ({why})", path.display())]
    Missing { path: PathBuf, why: String },
    #[error("{}: {size} bytes, too large to read as an image (limit {MAX_IMAGE_BYTES})", path.display())]
    TooLarge { path: PathBuf, size: u64 },
    #[error("{}: {source}", path.display())]
    Format { path: PathBuf, source: FormatError },
    #[error("{}: {reason}", path.display())]
    Invalid { path: PathBuf, reason: String },
}

impl ImageError {
    fn io(path: &Path) -> impl FnOnce(io::Error) -> ImageError + '_ {
        move |source| ImageError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Reads a whole file, refusing files over [`MAX_IMAGE_BYTES`].
pub fn read_limited(path: &Path) -> Result<Vec<u8>, ImageError> {
    // Not a FIFO or a device, whose reading could block or never end.
    if !fs::metadata(path).map_err(ImageError::io(path))?.is_file() {
        return Err(ImageError::Invalid {
            path: path.to_path_buf(),
            reason: "not a regular file".into(),
        });
    }
    let f = fs::File::open(path).map_err(ImageError::io(path))?;
    let mut data = Vec::new();
    f.take(MAX_IMAGE_BYTES + 1)
        .read_to_end(&mut data)
        .map_err(ImageError::io(path))?;
    if data.len() as u64 > MAX_IMAGE_BYTES {
        let size = fs::metadata(path)
            .map(|m| m.len())
            .unwrap_or(data.len() as u64);
        return Err(ImageError::TooLarge {
            path: path.to_path_buf(),
            size,
        });
    }
    Ok(data)
}

fn format(path: &Path) -> impl FnOnce(FormatError) -> ImageError + '_ {
    move |source| ImageError::Format {
        path: path.to_path_buf(),
        source,
    }
}

fn read_all<T: Decode>(path: &Path, magic: u32) -> Result<Vec<T>, ImageError> {
    image::decode_all(&read_limited(path)?, magic).map_err(format(path))
}

fn read_one<T: Decode>(path: &Path, magic: u32) -> Result<T, ImageError> {
    image::decode_one(&read_limited(path)?, magic).map_err(format(path))
}

/// Like [`read_one`], `None` when the file does not exist.
fn read_optional<T: Decode>(path: &Path, magic: u32) -> Result<Option<T>, ImageError> {
    if !path.exists() {
        return Ok(None);
    }
    read_one(path, magic).map(Some)
}

/// One checkpointed process: its place in the tree and its main thread's core.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Task {
    pub pid: u32,
    pub ppid: u32,
    pub pgid: u32,
    pub sid: u32,
    pub threads: Vec<u32>,
    /// The command name.
    pub comm: String,
    /// The task state by name (`alive`, `zombie`, ...).
    pub state: String,
    pub exit_code: u32,
    pub arch: String,
    /// The whole decoded core of the main thread.
    pub core: Core,
}

/// What an image directory holds, as decoded from its images.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Checkpoint {
    pub inventory: Inventory,
    /// In `pstree.img` order (a depth-first walk from the root).
    pub tasks: Vec<Task>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dump_stats: Option<DumpStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restore_stats: Option<RestoreStats>,
}

impl Checkpoint {
    /// Reads `inventory.img`, `pstree.img`, `core-PID.img` of every process, and
    /// `stats-dump` / `stats-restore` when present.
    pub fn load(dir: &Path) -> Result<Checkpoint, ImageError> {
        check_dir(dir)?;
        let inv_path = dir.join("inventory.img");
        if !inv_path.exists() {
            return Err(ImageError::Missing {
                path: inv_path,
                why: "every CRIU image directory has one".into(),
            });
        }
        let inventory: Inventory = read_one(&inv_path, INVENTORY_MAGIC)?;

        let tree_path = dir.join("pstree.img");
        if !tree_path.exists() {
            return Err(ImageError::Missing {
                path: tree_path,
                why: "a dump writes the process tree there".into(),
            });
        }
        let tree: Vec<PstreeEntry> = read_all(&tree_path, PSTREE_MAGIC)?;
        check_tree(&tree_path, &tree)?;

        let mut tasks = Vec::with_capacity(tree.len());
        for p in tree {
            let path = dir.join(format!("core-{}.img", p.pid));
            if !path.exists() {
                return Err(ImageError::Missing {
                    path,
                    why: format!("pstree.img lists process {}", p.pid),
                });
            }
            let core: Core = read_one(&path, CORE_MAGIC)?;
            let Some(tc) = &core.tc else {
                return Err(ImageError::Invalid {
                    path,
                    reason: "no task core (`tc`): the core of a thread, not of a process".into(),
                });
            };
            tasks.push(Task {
                comm: tc.comm.clone(),
                state: task_state_name(tc.task_state),
                exit_code: tc.exit_code,
                arch: arch_name(core.mtype),
                pid: p.pid,
                ppid: p.ppid,
                pgid: p.pgid,
                sid: p.sid,
                threads: p.threads,
                core,
            });
        }

        let dump_stats = stats(&dir.join("stats-dump"), |s| s.dump)?;
        let restore_stats = stats(&dir.join("stats-restore"), |s| s.restore)?;
        Ok(Checkpoint {
            inventory,
            tasks,
            dump_stats,
            restore_stats,
        })
    }

    /// The pids whose parent is not in the checkpoint (usually one: the dumped tree's root).
    pub fn roots(&self) -> Vec<u32> {
        let pids: HashSet<u32> = self.tasks.iter().map(|t| t.pid).collect();
        self.tasks
            .iter()
            .filter(|t| !pids.contains(&t.ppid))
            .map(|t| t.pid)
            .collect()
    }

    /// The children of `pid`, in image order.
    pub fn children(&self, pid: u32) -> impl Iterator<Item = &Task> {
        self.tasks.iter().filter(move |t| t.ppid == pid)
    }

    pub fn thread_count(&self) -> usize {
        self.tasks.iter().map(|t| t.threads.len().max(1)).sum()
    }
}

fn check_dir(dir: &Path) -> Result<(), ImageError> {
    let meta = fs::metadata(dir).map_err(ImageError::io(dir))?;
    if !meta.is_dir() {
        return Err(ImageError::NotADir {
            path: dir.to_path_buf(),
        });
    }
    Ok(())
}

/// A tree with no process or one process twice is not one criu wrote.
fn check_tree(path: &Path, tree: &[PstreeEntry]) -> Result<(), ImageError> {
    let invalid = |reason: String| ImageError::Invalid {
        path: path.to_path_buf(),
        reason,
    };
    if tree.is_empty() {
        return Err(invalid("no process in the tree".into()));
    }
    let mut seen = HashSet::new();
    for p in tree {
        if !seen.insert(p.pid) {
            return Err(invalid(format!("process {} is listed twice", p.pid)));
        }
    }
    Ok(())
}

/// The `stats-dump` of an image directory (a pre-dump's too, which has no pstree), when
/// criu wrote one.
pub fn dump_stats(dir: &Path) -> Result<Option<DumpStats>, ImageError> {
    stats(&dir.join("stats-dump"), |s| s.dump)
}

/// The `stats-restore` criu wrote into an image directory, when it did.
pub fn restore_stats(dir: &Path) -> Result<Option<RestoreStats>, ImageError> {
    stats(&dir.join("stats-restore"), |s| s.restore)
}

fn stats<T>(
    path: &Path,
    part: impl FnOnce(StatsEntry) -> Option<T>,
) -> Result<Option<T>, ImageError> {
    let Some(entry) = read_optional::<StatsEntry>(path, STATS_MAGIC)? else {
        return Ok(None);
    };
    match part(entry) {
        Some(s) => Ok(Some(s)),
        None => Err(ImageError::Invalid {
            path: path.to_path_buf(),
            reason: "the stats entry lacks the part this file is named for".into(),
        }),
    }
}

/// What a file in an image directory is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FileKind {
    /// A framed image: its type by magic, and its entry count when it could be walked.
    Image {
        #[serde(rename = "type")]
        type_name: &'static str,
        magic: String,
        service: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        entries: Option<usize>,
    },
    /// Raw data named for its type (pages, network and tmpfs dumps).
    Raw {
        #[serde(rename = "type")]
        type_name: &'static str,
    },
    /// Not an image: its first bytes match no magic.
    Unknown {
        #[serde(skip_serializing_if = "Option::is_none")]
        magic: Option<String>,
    },
    Directory,
    Symlink {
        target: String,
    },
    /// A FIFO, socket or device: never read.
    Special,
}

impl FileKind {
    pub fn describe(&self) -> String {
        match self {
            FileKind::Image {
                type_name,
                service,
                entries,
                ..
            } => {
                let mut s = type_name.to_string();
                if *service {
                    s.push_str(" (service)");
                }
                match entries {
                    Some(1) => s.push_str(", 1 entry"),
                    Some(n) => s.push_str(&format!(", {n} entries")),
                    None => {}
                }
                s
            }
            FileKind::Raw { type_name } => format!("{type_name} (raw data)"),
            FileKind::Unknown { magic: Some(m) } => format!("unknown magic {m}"),
            FileKind::Unknown { magic: None } => "unknown (too short for a magic)".into(),
            FileKind::Directory => "directory".into(),
            FileKind::Symlink { target } => format!("symlink to {target}"),
            FileKind::Special => "not a regular file".into(),
        }
    }
}

/// One file of an image directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileInfo {
    pub name: String,
    pub size: u64,
    #[serde(flatten)]
    pub kind: FileKind,
    /// What is wrong with an image whose magic is known but whose framing is not sound.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// Classifies a file from its name and contents; `whole` says whether `data` is the whole
/// file (then the entries of a plain image are walked and counted) or only its head.
pub fn classify(name: &str, data: &[u8], whole: bool) -> (FileKind, Option<String>) {
    if let Some(type_name) = image::raw_kind(name) {
        return (FileKind::Raw { type_name }, None);
    }
    let h = match image::header(data) {
        Ok(h) => h,
        Err(FormatError::TooShort { .. }) => return (FileKind::Unknown { magic: None }, None),
        Err(FormatError::UnknownMagic { magic, .. }) => {
            let magic = Some(format!("{magic:#010x}"));
            return (FileKind::Unknown { magic }, None);
        }
        // A common magic cut short: an image, broken.
        Err(e) => return (FileKind::Unknown { magic: None }, Some(e.to_string())),
    };
    let (entries, problem) = if whole && image::plain_entries(h.name) {
        match image::count_entries(data, h.len) {
            Ok(n) => (Some(n), None),
            Err(e) => (None, Some(e.to_string())),
        }
    } else {
        (None, None)
    };
    let kind = FileKind::Image {
        type_name: h.name,
        magic: format!("{:#010x}", h.magic),
        service: h.service,
        entries,
    };
    (kind, problem)
}

/// Every entry of `dir`, sorted by name, with its type and size. Raw images are not read;
/// others are read whole up to [`MAX_IMAGE_BYTES`] (beyond that only the magic is read).
pub fn list_files(dir: &Path) -> Result<Vec<FileInfo>, ImageError> {
    check_dir(dir)?;
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(ImageError::io(dir))? {
        let entry = entry.map_err(ImageError::io(dir))?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let meta = fs::symlink_metadata(&path).map_err(ImageError::io(&path))?;
        let size = meta.len();
        let (kind, problem) = if meta.file_type().is_symlink() {
            let target = fs::read_link(&path).map_err(ImageError::io(&path))?;
            let target = target.display().to_string();
            (FileKind::Symlink { target }, None)
        } else if meta.is_dir() {
            (FileKind::Directory, None)
        } else if !meta.is_file() {
            (FileKind::Special, None)
        } else if image::raw_kind(&name).is_some() {
            classify(&name, &[], false)
        } else if size > MAX_IMAGE_BYTES {
            let mut head = Vec::with_capacity(8);
            let f = fs::File::open(&path).map_err(ImageError::io(&path))?;
            f.take(8)
                .read_to_end(&mut head)
                .map_err(ImageError::io(&path))?;
            classify(&name, &head, false)
        } else {
            classify(&name, &read_limited(&path)?, true)
        };
        out.push(FileInfo {
            name,
            size,
            kind,
            problem,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}
