//! `crtest ckptinfo` on real CRIU image directories (tests/fixtures/ckpt, see its README),
//! and on broken copies of them: every corruption is an error naming the file and the byte
//! offset, never a panic.

use crtest::ckpt::dir::{self, Checkpoint, FileKind};
use crtest::ckpt::entries::{Core, Decode, Inventory, PstreeEntry, StatsEntry};
use crtest::ckpt::image::{self, CORE_MAGIC, INVENTORY_MAGIC, PSTREE_MAGIC, STATS_MAGIC};
use crtest::ckpt::info::{collect, output, render, Options};
use crtest::cli::args::CkptinfoArgs;
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

/// Fixture paths are relative (tests run in the package directory), so that the rendered
/// output names the same directory on every machine.
fn fixture(rel: &str) -> PathBuf {
    Path::new("tests/fixtures/ckpt").join(rel)
}

fn args(dir: &Path) -> Options {
    Options {
        dir: dir.to_path_buf(),
        pids: false,
        errors: false,
        verbose: false,
        json: false,
    }
}

/// `crtest ckptinfo` with `o`'s options: its exit code.
fn run(o: &Options) -> i32 {
    let args = CkptinfoArgs {
        dir: o.dir.clone(),
        pids: o.pids,
        errors: o.errors,
        verbose: o.verbose,
        json: o.json,
    };
    crtest::cli::exit::code(&crtest::cli::tools::ckptinfo(&args))
}

fn load(rel: &str) -> Checkpoint {
    Checkpoint::load(&fixture(rel)).unwrap()
}

/// A copy of a fixture scenario folder (images and logs) to break at will.
fn copy_scenario(rel: &str) -> tempfile::TempDir {
    fn copy(from: &Path, to: &Path) {
        fs::create_dir_all(to).unwrap();
        for e in fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                copy(&e.path(), &to.join(e.file_name()));
            } else {
                fs::copy(e.path(), to.join(e.file_name())).unwrap();
            }
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    copy(&fixture(rel), tmp.path());
    tmp
}

#[test]
fn ptree1_is_a_tree_of_depth_2_and_width_3() {
    let c = load("ptree1/images-1");
    assert_eq!(c.tasks.len(), 13);
    assert_eq!(c.roots(), [154]);
    let pids: Vec<u32> = c.tasks.iter().map(|t| t.pid).collect();
    let mut depth: HashMap<u32, usize> = HashMap::new();
    for t in &c.tasks {
        // pstree.img lists parents before children, in a consistent session and group.
        let d = if t.pid == 154 {
            assert_eq!(t.ppid, 0);
            0
        } else {
            assert!(pids.contains(&t.ppid), "{} has parent {}", t.pid, t.ppid);
            depth[&t.ppid] + 1
        };
        depth.insert(t.pid, d);
        assert_eq!((t.pgid, t.sid), (154, 154));
        assert_eq!(t.threads, [t.pid]);
        assert_eq!(t.comm, "ptree1");
        assert_eq!(t.state, "alive");
        assert_eq!(t.arch, "x86_64");
        let children = c.children(t.pid).count();
        assert_eq!(children, if d < 2 { 3 } else { 0 }, "children of {}", t.pid);
    }
    assert_eq!(depth.values().max(), Some(&2));
    assert_eq!(c.thread_count(), 13);
    assert_eq!(c.inventory.img_version, 2);
    assert_eq!(c.inventory.format_name(), "v1.1");
}

#[test]
fn counterloop_is_one_task_in_both_dumps() {
    for n in ["images-1", "images-2"] {
        let c = load(&format!("counterloop/{n}"));
        assert_eq!(c.tasks.len(), 1, "{n}");
        let t = &c.tasks[0];
        assert_eq!((t.pid, t.ppid, t.comm.as_str()), (122, 0, "counterloop"));
        assert_eq!(c.roots(), [122]);
        let creds = t.core.thread_core.as_ref().unwrap().creds.as_ref().unwrap();
        assert_eq!((creds.uid, creds.euid), (0, 0));
    }
}

#[test]
fn stats_are_read_and_agree_with_crit() {
    for rel in [
        "ptree1/images-1",
        "counterloop/images-1",
        "counterloop/images-2",
    ] {
        let c = load(rel);
        assert!(c.dump_stats.is_some() && c.restore_stats.is_some(), "{rel}");
    }
    // The values `crit show stats-dump` / `stats-restore` printed for these files.
    let c = load("ptree1/images-1");
    let d = c.dump_stats.unwrap();
    assert_eq!(
        (
            d.freezing_time,
            d.frozen_time,
            d.memdump_time,
            d.memwrite_time
        ),
        (19297, 739270, 69994, 13470)
    );
    assert_eq!((d.pages_scanned, d.pages_written), (5616, 338));
    assert_eq!((d.page_pipes, d.shpages_written), (Some(66), Some(1)));
    let r = c.restore_stats.unwrap();
    assert_eq!((r.pages_compared, r.pages_skipped_cow), (312, 255));
    assert_eq!((r.forking_time, r.restore_time), (17112, 312679));
    assert_eq!(r.pages_restored, Some(83));
}

#[test]
fn human_output_of_ptree1() {
    let report = collect(&args(&fixture("ptree1/images-1"))).unwrap();
    insta::assert_snapshot!(render(&report));
}

#[test]
fn pids_only() {
    let mut a = args(&fixture("ptree1/images-1"));
    a.pids = true;
    let report = collect(&a).unwrap();
    assert!(report.checkpoint.is_none());
    assert_eq!(
        render(&report),
        "154\n155\n157\n159\n160\n156\n162\n163\n165\n158\n161\n164\n166\n"
    );
    a.json = true;
    let v: serde_json::Value = serde_json::from_str(&output(&a, &report)).unwrap();
    assert_eq!(v["pids"].as_array().unwrap().len(), 13);
    assert!(v.get("checkpoint").is_none());
}

#[test]
fn json_has_the_same_data() {
    let mut a = args(&fixture("counterloop/images-2"));
    a.json = true;
    a.errors = true;
    a.verbose = true;
    let v: serde_json::Value = serde_json::from_str(&output(&a, &collect(&a).unwrap())).unwrap();
    let c = &v["checkpoint"];
    assert_eq!(c["inventory"]["img_version"], 2);
    assert_eq!(c["inventory"]["lsmtype"], "APPARMOR");
    assert_eq!(c["tasks"][0]["comm"], "counterloop");
    assert_eq!(c["tasks"][0]["core"]["tc"]["task_state"], 1);
    assert_eq!(c["dump_stats"]["pages_written"], 24);
    assert_eq!(v["criu_versions"][0]["version"], "3.17.1");
    assert_eq!(v["log_errors"]["errors"].as_array().unwrap().len(), 0);
    let files = v["files"].as_array().unwrap();
    let core = files.iter().find(|f| f["name"] == "core-122.img").unwrap();
    assert_eq!(core["type"], "CORE");
    assert_eq!(core["entries"], 1);
}

#[test]
fn criu_version_comes_from_the_logs_of_the_same_attempt() {
    let report = collect(&args(&fixture("counterloop/images-2"))).unwrap();
    let logs: Vec<&str> = report
        .criu_versions
        .iter()
        .flatten()
        .map(|v| v.log.as_str())
        .collect();
    assert_eq!(logs, ["../dump-2.log", "../restore-2.log"]);
}

#[test]
fn no_errors_in_passing_logs() {
    let mut a = args(&fixture("counterloop/images-1"));
    a.errors = true;
    let report = collect(&a).unwrap();
    let e = report.log_errors.as_ref().unwrap();
    assert_eq!(e.logs, ["../dump-1.log", "../restore-1.log"]);
    assert!(e.errors.is_empty() && e.first_error.is_none());
    assert!(render(&report).contains("errors in logs: none (../dump-1.log, ../restore-1.log)"));
}

/// counterloop's images-1 beside a restore log that failed with EEXIST.
fn failed_restore() -> tempfile::TempDir {
    let tmp = copy_scenario("counterloop");
    fs::copy(
        fixture("restore-eexist.log"),
        tmp.path().join("restore-1.log"),
    )
    .unwrap();
    tmp
}

#[test]
fn errors_of_a_failed_restore() {
    let tmp = failed_restore();
    let mut a = args(&tmp.path().join("images-1"));
    a.errors = true;
    let report = collect(&a).unwrap();
    let e = report.log_errors.as_ref().unwrap();
    assert_eq!(e.errors.len(), 2);
    assert_eq!(e.errors[0].log, "../restore-1.log");
    assert_eq!(e.errors[0].line, 4);
    assert_eq!(e.errors[0].errno.as_deref(), Some("EEXIST"));
    assert_eq!(e.first_errno.as_deref(), Some("EEXIST"));
    let text = render(&report);
    let section = &text[text.find("errors in logs").unwrap()..];
    insta::assert_snapshot!(section, @r###"
    errors in logs (../dump-1.log, ../restore-1.log):
      ../restore-1.log:4: (00.004000) Error (criu/cr-restore.c:1469): Can't fork for 156: File exists  [EEXIST]
      ../restore-1.log:5: (00.004100) Error (criu/cr-restore.c:1480): 1 killed by signal 9
    first error: Error (criu/cr-restore.c:1469): Can't fork for 156: File exists (EEXIST)
    "###);
}

#[test]
fn log_errors_are_shown_even_when_the_images_are_broken() {
    let tmp = failed_restore();
    let dir = tmp.path().join("images-1");
    fs::remove_file(dir.join("inventory.img")).unwrap();
    let mut a = args(&dir);
    a.errors = true;
    let failure = collect(&a).unwrap_err();
    assert!(failure
        .error
        .to_string()
        .contains("inventory.img: missing ("));
    let errors = failure.partial.log_errors.unwrap();
    assert_eq!(errors.first_errno.as_deref(), Some("EEXIST"));
    assert_eq!(run(&a), 2);
}

#[test]
fn verbose_lists_every_file_with_its_type() {
    let dir = fixture("ptree1/images-1");
    let files = dir::list_files(&dir).unwrap();
    assert_eq!(files.len(), fs::read_dir(&dir).unwrap().count());
    let by_name: HashMap<&str, &dir::FileInfo> =
        files.iter().map(|f| (f.name.as_str(), f)).collect();
    let kind = |n: &str| by_name[n].kind.describe();
    assert_eq!(kind("core-154.img"), "CORE, 1 entry");
    assert_eq!(kind("pstree.img"), "PSTREE, 13 entries");
    assert_eq!(kind("inventory.img"), "INVENTORY, 1 entry");
    assert_eq!(kind("stats-dump"), "STATS (service), 1 entry");
    assert_eq!(kind("pages-1.img"), "PAGES (raw data)");
    assert_eq!(kind("timens-0.img"), "TIMENS, 1 entry");
    assert_eq!(kind("memfd.img"), "MEMFD_INODE, 1 entry");
    assert_eq!(by_name["core-154.img"].size, 1884);
    assert!(files.iter().all(|f| f.problem.is_none()));
    assert!(!files
        .iter()
        .any(|f| matches!(f.kind, FileKind::Unknown { .. })));

    let mut a = args(&dir);
    a.verbose = true;
    let text = render(&collect(&a).unwrap());
    assert!(text.contains("files (88, 41595 bytes):"), "{text}");
    assert!(text.contains("  pages-1.img               4096  PAGES (raw data)\n"));
}

#[test]
fn verbose_names_unknown_magic_and_broken_framing() {
    let tmp = copy_scenario("counterloop");
    let dir = tmp.path().join("images-1");
    fs::write(dir.join("notes.txt"), "hello, world\n").unwrap();
    let fdinfo = fs::read(dir.join("fdinfo-2.img")).unwrap();
    fs::write(dir.join("fdinfo-2.img"), &fdinfo[..fdinfo.len() - 3]).unwrap();
    let mut a = args(&dir);
    a.verbose = true;
    let report = collect(&a).unwrap();
    let files = report.files.as_ref().unwrap();
    let notes = files.iter().find(|f| f.name == "notes.txt").unwrap();
    assert_eq!(notes.kind.describe(), "unknown magic 0x6c6c6568");
    let broken = report.broken_files();
    assert_eq!(broken.len(), 1);
    assert_eq!(broken[0].name, "fdinfo-2.img");
    assert!(broken[0]
        .problem
        .as_ref()
        .unwrap()
        .starts_with("at byte offset "));
    assert_eq!(run(&a), 2);
}

/// The error ckptinfo gives for the counterloop images-1 copy after `breakage`.
fn error_after(breakage: impl FnOnce(&Path)) -> String {
    let tmp = copy_scenario("counterloop");
    let dir = tmp.path().join("images-1");
    breakage(&dir);
    let a = args(&dir);
    assert_eq!(run(&a), 2);
    collect(&a).unwrap_err().error.to_string()
}

fn rewrite(path: &Path, f: impl FnOnce(&mut Vec<u8>)) {
    let mut data = fs::read(path).unwrap();
    f(&mut data);
    fs::write(path, data).unwrap();
}

#[test]
fn a_missing_directory_is_bad_input() {
    let a = args(Path::new("tests/fixtures/ckpt/no-such-dir"));
    assert_eq!(run(&a), 2);
    let e = collect(&a).unwrap_err().error.to_string();
    assert!(e.starts_with("tests/fixtures/ckpt/no-such-dir: "), "{e}");
    let f = args(&fixture("README.md"));
    assert!(collect(&f)
        .unwrap_err()
        .error
        .to_string()
        .ends_with("not a directory"));
}

#[test]
fn a_text_file_named_like_an_image_is_foreign() {
    let e = error_after(|d| fs::write(d.join("core-122.img"), "hello, world\n").unwrap());
    assert!(
        e.ends_with("core-122.img: not a CRIU image: unknown magic 0x6c6c6568 at byte offset 0"),
        "{e}"
    );
}

#[test]
fn an_image_of_the_wrong_type() {
    let e = error_after(|d| {
        fs::copy(d.join("fs-122.img"), d.join("core-122.img")).unwrap();
    });
    assert!(e.ends_with("core-122.img: a FS image, not CORE"), "{e}");
}

#[test]
fn a_truncated_entry() {
    let e = error_after(|d| rewrite(&d.join("pstree.img"), |v| v.truncate(v.len() - 1)));
    assert!(
        e.ends_with("pstree.img: at byte offset 8: truncated: entry needs 10 bytes, 9 left"),
        "{e}"
    );
}

#[test]
fn a_length_running_past_the_end() {
    let e = error_after(|d| {
        rewrite(&d.join("core-122.img"), |v| {
            v[8..12].copy_from_slice(&[0xff; 4])
        })
    });
    assert!(
        e.ends_with(
            "core-122.img: at byte offset 8: truncated: entry needs 4294967295 bytes, 1914 left"
        ),
        "{e}"
    );
}

#[test]
fn a_bad_varint() {
    // The core entry's first field is `mtype` (key 0x08, value 0x01) at offset 12.
    let e = error_after(|d| {
        rewrite(&d.join("core-122.img"), |v| {
            assert_eq!(&v[12..14], [0x08, 0x01]);
            v[13..24].fill(0xff);
        })
    });
    assert!(
        e.ends_with("core-122.img: at byte offset 13: bad varint: more than 10 bytes"),
        "{e}"
    );
}

#[test]
fn a_corrupt_stats_file() {
    let e = error_after(|d| rewrite(&d.join("stats-dump"), |v| v.truncate(20)));
    assert!(e.contains("stats-dump: at byte offset 8: truncated"), "{e}");
}

#[test]
fn a_missing_core() {
    let e = error_after(|d| fs::remove_file(d.join("core-122.img")).unwrap());
    assert!(
        e.ends_with("core-122.img: missing (pstree.img lists process 122)"),
        "{e}"
    );
}

/// Decodes `data` as whatever its magic says, the way ckptinfo would; must never panic.
fn decode_any(data: &[u8]) -> Result<(), String> {
    fn all<T: Decode>(data: &[u8], magic: u32) -> Result<(), String> {
        image::decode_all::<T>(data, magic)
            .map(drop)
            .map_err(|e| e.to_string())
    }
    let h = image::header(data).map_err(|e| e.to_string())?;
    match h.magic {
        INVENTORY_MAGIC => all::<Inventory>(data, h.magic),
        PSTREE_MAGIC => all::<PstreeEntry>(data, h.magic),
        CORE_MAGIC => all::<Core>(data, h.magic),
        STATS_MAGIC => all::<StatsEntry>(data, h.magic),
        _ => image::count_entries(data, h.len)
            .map(drop)
            .map_err(|e| e.to_string()),
    }?;
    let _ = dir::classify("x.img", data, true);
    Ok(())
}

/// Every image file of the fixtures (not the raw pages).
fn fixture_images() -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for rel in [
        "ptree1/images-1",
        "counterloop/images-1",
        "counterloop/images-2",
    ] {
        for e in fs::read_dir(fixture(rel)).unwrap() {
            let path = e.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if image::raw_kind(&name).is_none() {
                let data = fs::read(&path).unwrap();
                out.push((path, data));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn every_fixture_image_decodes() {
    let images = fixture_images();
    assert!(images.len() > 100);
    for (path, data) in &images {
        decode_any(data).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}

#[test]
fn every_truncation_of_a_real_image_is_an_error_or_a_shorter_image() {
    for (path, data) in fixture_images() {
        let h = image::header(&data).unwrap();
        // Where entries end: the only places a cut leaves a well-framed image.
        let mut boundaries = vec![h.len];
        if image::plain_entries(h.name) {
            for e in image::entries(&data, h.len) {
                let e = e.unwrap();
                boundaries.push(e.offset as usize + 4 + e.payload.len());
            }
        }
        for cut in 0..data.len() {
            let r = decode_any(&data[..cut]);
            if !boundaries.contains(&cut) {
                assert!(r.is_err(), "{} cut at {cut} decoded", path.display());
            }
        }
    }
}

/// xorshift64*: a small deterministic generator, so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn random_corruption_never_panics() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for (_, data) in fixture_images() {
        for _ in 0..200 {
            let mut v = data.clone();
            for _ in 0..1 + rng.below(4) {
                match rng.below(4) {
                    0 if !v.is_empty() => {
                        let i = rng.below(v.len());
                        v[i] = rng.next() as u8;
                    }
                    1 if !v.is_empty() => {
                        let i = rng.below(v.len());
                        v[i] ^= 1 << rng.below(8);
                    }
                    2 => {
                        let i = rng.below(v.len() + 1);
                        v.insert(i, rng.next() as u8);
                    }
                    _ if !v.is_empty() => {
                        let i = rng.below(v.len());
                        v.remove(i);
                    }
                    _ => {}
                }
            }
            let _ = decode_any(&v);
        }
    }
    // And bytes that never were an image, behind each kind of header.
    for _ in 0..2000 {
        let len = rng.below(64);
        let mut v: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let head: &[u8] = match rng.below(3) {
            0 => &INVENTORY_MAGIC.to_le_bytes(),
            1 => &[0x19, 0x43, 0x56, 0x54, 0x47, 0x38, 0x05, 0x55], // common + core
            _ => &[],
        };
        v.splice(0..0, head.iter().copied());
        let _ = decode_any(&v);
    }
}

#[test]
fn every_truncation_of_a_core_is_reported_with_its_file() {
    let tmp = copy_scenario("counterloop");
    let dir = tmp.path().join("images-1");
    let core = dir.join("core-122.img");
    let data = fs::read(&core).unwrap();
    for cut in 0..data.len() {
        fs::write(&core, &data[..cut]).unwrap();
        let e = Checkpoint::load(&dir).unwrap_err().to_string();
        assert!(e.contains("core-122.img: "), "cut {cut}: {e}");
    }
}

#[test]
fn a_fifo_is_never_read() {
    let tmp = copy_scenario("counterloop");
    let dir = tmp.path().join("images-1");
    nix::unistd::mkfifo(&dir.join("extra.fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();
    let files = dir::list_files(&dir).unwrap();
    let fifo = files.iter().find(|f| f.name == "extra.fifo").unwrap();
    assert_eq!(fifo.kind.describe(), "not a regular file");
    let core = dir.join("core-122.img");
    fs::remove_file(&core).unwrap();
    nix::unistd::mkfifo(&core, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let e = Checkpoint::load(&dir).unwrap_err().to_string();
    assert!(e.ends_with("core-122.img: not a regular file"), "{e}");
}
