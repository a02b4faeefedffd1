//! `mmapfile`: file-backed mappings, shared and private.
//!
//! - `shared.dat` (16 KiB): `MAP_SHARED`, read-write; the workload wrote a marker into
//!   page 2 through the mapping, so the file holds it too. The mapping and the file must
//!   stay one page cache: what is written through either shows in the other.
//! - `private.dat` (16 KiB): `MAP_PRIVATE`, read-write; page 1 was rewritten through the
//!   mapping (copy-on-write: the file keeps its content). The other pages still show the
//!   file.
//! - `ro.dat` (12 KiB): `MAP_SHARED`, read-only, of the file from offset 4096.
//!
//! Every tick it compares each mapping with what it must show, the files with what they
//! must hold, and each mapping's line in `/proc/self/maps` (permissions, offset, file).
//! On SIGTERM it checks the same, then writes through the shared mapping (the file must
//! show it), writes the shared file with `pwrite` (the mapping must show it) and writes the
//! private mapping (the file must not change).

use crate::args::{Args, Opt};
use crate::check::{compare_bytes, pattern, Problems};
use crate::files::{create_with, fd_err, open};
use crate::protocol::Workload;
use crate::sys::{self, Mapping};
use crate::{procfs, steady};
use nix::libc;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Program name.
pub const NAME: &str = "mmapfile";
/// Command-line options.
pub const OPTIONS: &[Opt] = &[steady::TICK_MS];

const PAGE: usize = 4096;

struct Mapped {
    name: &'static str,
    path: PathBuf,
    map: Mapping,
    /// What the mapping must show.
    view: Vec<u8>,
    /// What the file must hold.
    file: Vec<u8>,
    /// `/proc/self/maps` permissions and file offset.
    perms: &'static str,
    offset: u64,
}

struct State {
    shared_fd: OwnedFd,
    maps: Vec<Mapped>,
}

fn map_file(
    path: &Path,
    flags: libc::c_int,
    prot: libc::c_int,
    map_flags: libc::c_int,
    len: usize,
    offset: u64,
) -> Result<(OwnedFd, Mapping), String> {
    let fd = open(path, flags)?;
    let map = sys::mmap(len, prot, map_flags, Some(fd.as_raw_fd()), offset)
        .map_err(|e| format!("mmap of {}: {e}", path.display()))?;
    Ok((fd, map))
}

fn setup(wl: &Workload) -> Result<State, String> {
    let rw = libc::PROT_READ | libc::PROT_WRITE;
    // shared.dat
    let path = wl.path("shared.dat");
    let mut data = pattern(21, 4 * PAGE);
    create_with(&path, &data)?;
    let (shared_fd, map) = map_file(&path, libc::O_RDWR, rw, libc::MAP_SHARED, 4 * PAGE, 0)?;
    let marker = b"written through MAP_SHARED";
    map.write(2 * PAGE, marker);
    data[2 * PAGE..2 * PAGE + marker.len()].copy_from_slice(marker);
    let shared = Mapped {
        name: "shared.dat",
        path,
        map,
        view: data.clone(),
        file: data,
        perms: "rw-s",
        offset: 0,
    };
    // private.dat
    let path = wl.path("private.dat");
    let file = pattern(22, 4 * PAGE);
    create_with(&path, &file)?;
    let (_fd, map) = map_file(&path, libc::O_RDONLY, rw, libc::MAP_PRIVATE, 4 * PAGE, 0)?;
    let page1 = pattern(23, PAGE);
    map.write(PAGE, &page1);
    let mut view = file.clone();
    view[PAGE..2 * PAGE].copy_from_slice(&page1);
    let private = Mapped {
        name: "private.dat",
        path,
        map,
        view,
        file,
        perms: "rw-p",
        offset: 0,
    };
    // ro.dat
    let path = wl.path("ro.dat");
    let file = pattern(24, 3 * PAGE);
    create_with(&path, &file)?;
    let (_fd, map) = map_file(
        &path,
        libc::O_RDONLY,
        libc::PROT_READ,
        libc::MAP_SHARED,
        2 * PAGE,
        PAGE as u64,
    )?;
    let ro = Mapped {
        name: "ro.dat",
        path,
        map,
        view: file[PAGE..].to_vec(),
        file,
        perms: "r--s",
        offset: PAGE as u64,
    };
    Ok(State {
        shared_fd,
        maps: vec![shared, private, ro],
    })
}

impl Mapped {
    fn check(&self, p: &mut Problems) {
        let at = self.map.addr();
        let what = format!("{} mapping at {at:#x} ({})", self.name, self.perms);
        p.check(compare_bytes(
            &what,
            &self.view,
            &self.map.read(0, self.map.len()),
        ));
        match std::fs::read(&self.path) {
            Ok(got) => p.check(compare_bytes(
                &format!("file {}", self.name),
                &self.file,
                &got,
            )),
            Err(e) => p.push(format!("cannot read {}: {e}", self.path.display())),
        }
        match procfs::mapping_at(at) {
            Ok(m) => {
                let got = (m.start, m.end, m.perms.as_str(), m.offset, m.path.as_str());
                let path = self.path.to_string_lossy();
                let want = (
                    at,
                    at + self.map.len(),
                    self.perms,
                    self.offset,
                    path.as_ref(),
                );
                if got != want {
                    p.push(format!(
                        "{what}: /proc/self/maps says {:#x}-{:#x} {} offset {:#x} {}, expected {:#x}-{:#x} {} offset {:#x} {}",
                        got.0, got.1, got.2, got.3, got.4, want.0, want.1, want.2, want.3, want.4
                    ));
                }
            }
            Err(e) => p.push(format!("{what}: {e}")),
        }
    }
}

impl State {
    fn check(&self) -> Result<(), String> {
        let mut p = Problems::new();
        for m in &self.maps {
            m.check(&mut p);
        }
        p.into_result()
    }

    fn exercise(&mut self) -> Result<(), String> {
        let mut p = Problems::new();
        // Through the shared mapping, seen in the file.
        let via_map = b"mapping -> file";
        self.maps[0].map.write(100, via_map);
        self.maps[0].view[100..100 + via_map.len()].copy_from_slice(via_map);
        self.maps[0].file[100..100 + via_map.len()].copy_from_slice(via_map);
        // Through the file, seen in the mapping.
        let via_file = b"file -> mapping";
        let raw = self.shared_fd.as_raw_fd();
        match sys::pwrite_all(raw, via_file, 300) {
            Ok(()) => {
                self.maps[0].view[300..300 + via_file.len()].copy_from_slice(via_file);
                self.maps[0].file[300..300 + via_file.len()].copy_from_slice(via_file);
            }
            Err(e) => p.push(fd_err("shared.dat", raw, "pwrite", &e)),
        }
        // Private: the file does not change.
        let private = b"private copy only";
        self.maps[1].map.write(3 * PAGE, private);
        self.maps[1].view[3 * PAGE..3 * PAGE + private.len()].copy_from_slice(private);
        for m in &self.maps {
            m.check(&mut p);
        }
        p.into_result()
    }
}

/// The workload; returns the verdict (setup errors exit through [`Workload::setup_failed`]).
pub fn run(wl: &mut Workload, args: &Args) -> Result<String, String> {
    let mut st = setup(wl).unwrap_or_else(|e| wl.setup_failed(&e));
    st.check().unwrap_or_else(|e| wl.setup_failed(&e));
    let places: Vec<String> = st
        .maps
        .iter()
        .map(|m| format!("{} {} at {:#x}", m.name, m.perms, m.map.addr()))
        .collect();
    let detail = format!("file mappings: {}", places.join(", "));
    let ticks = steady::ready_then_tick(wl, args, &detail, |_| st.check())?;
    st.check()?;
    st.exercise()?;
    Ok(format!(
        "shared, private and read-only file mappings kept their content and files over {ticks} checks; shared writes still reach the file both ways, private ones do not"
    ))
}
