//! `chroot`: a child whose root directory and working directory are its own (needs root).
//!
//! The workload makes a small tree in its directory (`root/` with a marker file and
//! `root/work/` with another), forks a child that `chroot`s into `root/` and `chdir`s to
//! `/work`. Every tick it checks the child's `/proc/PID/root` and `/proc/PID/cwd` links
//! and asks the child what `getcwd` says and what `/marker` and `note` (relative to its
//! cwd) hold, from inside. On SIGTERM it checks the same and asks the child to create a
//! file in its root, which the workload must see at `root/` outside.

use crate::args::{Args, Opt};
use crate::check::Problems;
use crate::family::{self, Helper};
use crate::protocol::Workload;
use crate::steady;
use std::path::{Path, PathBuf};

/// Program name.
pub const NAME: &str = "chroot";
/// Command-line options.
pub const OPTIONS: &[Opt] = &[steady::TICK_MS];

/// What the root's marker holds.
pub const MARKER: &str = "crtest chroot root\n";
/// What the working directory's note holds.
pub const NOTE: &str = "crtest chroot cwd\n";

fn serve(req: &str) -> Result<String, String> {
    match req {
        "cwd" => std::env::current_dir()
            .map(|p| p.display().to_string())
            .map_err(|e| format!("getcwd: {e}")),
        "marker" => std::fs::read_to_string("/marker").map_err(|e| format!("read /marker: {e}")),
        "note" => std::fs::read_to_string("note").map_err(|e| format!("read note: {e}")),
        "create" => std::fs::write("/made-inside", b"made inside\n")
            .map(|()| "made".into())
            .map_err(|e| format!("create /made-inside: {e}")),
        other => Err(format!("unknown request `{other}`")),
    }
}

struct Jail {
    child: Helper,
    root: PathBuf,
}

impl Jail {
    fn check(&mut self) -> Result<(), String> {
        let mut p = Problems::new();
        let who = self.child.who();
        let pid = self.child.pid;
        for (link, want) in [("root", self.root.clone()), ("cwd", self.root.join("work"))] {
            match std::fs::read_link(format!("/proc/{pid}/{link}")) {
                Ok(got) => p.expect_eq(&format!("{who}: /proc/PID/{link}"), want, got),
                Err(e) => p.push(format!("{who}: readlink /proc/{pid}/{link}: {e}")),
            }
        }
        if let Some(cwd) = p.take(self.child.ask("cwd")) {
            p.expect_eq(&format!("{who}: getcwd inside"), "/work", cwd.as_str());
        }
        // Replies are one line: compare without the newline.
        if let Some(m) = p.take(self.child.ask("marker")) {
            p.expect_eq(
                &format!("{who}: /marker inside"),
                MARKER.trim_end(),
                m.trim_end(),
            );
        }
        if let Some(n) = p.take(self.child.ask("note")) {
            p.expect_eq(
                &format!("{who}: note in its cwd"),
                NOTE.trim_end(),
                n.trim_end(),
            );
        }
        p.into_result()
    }

    fn exercise(&mut self) -> Result<(), String> {
        self.child.ask("create")?;
        let outside = self.root.join("made-inside");
        match std::fs::read_to_string(&outside) {
            Ok(t) if t == "made inside\n" => Ok(()),
            Ok(t) => Err(format!("{}: holds {t:?}", outside.display())),
            Err(e) => Err(format!(
                "{}: the file the child made in its root is not there: {e}",
                outside.display()
            )),
        }
    }
}

fn setup(dir: &Path) -> Result<Jail, String> {
    let root = dir.join("root");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("work"))
        .map_err(|e| format!("mkdir {}: {e}", root.display()))?;
    std::fs::write(root.join("marker"), MARKER).map_err(|e| format!("write marker: {e}"))?;
    std::fs::write(root.join("work/note"), NOTE).map_err(|e| format!("write note: {e}"))?;
    let root = root
        .canonicalize()
        .map_err(|e| format!("{}: {e}", root.display()))?;
    let inside = root.clone();
    let mut entered = false;
    let child = family::spawn("chrooted child", move |req| {
        if !entered {
            entered = true;
            nix::unistd::chroot(&inside)
                .map_err(|e| format!("chroot {}: {e} (needs root)", inside.display()))?;
            std::env::set_current_dir("/work").map_err(|e| format!("chdir /work: {e}"))?;
        }
        serve(req)
    })?;
    let mut jail = Jail { child, root };
    // The first request makes the child enter its root.
    if let Err(e) = jail.child.ask("cwd") {
        jail.child.kill();
        return Err(e);
    }
    Ok(jail)
}

/// Makes the tree and the child, then ticks.
pub fn run(wl: &mut Workload, args: &Args) -> Result<String, String> {
    let mut jail = setup(wl.dir()).unwrap_or_else(|e| wl.setup_failed(&e));
    jail.check().unwrap_or_else(|e| wl.setup_failed(&e));
    let detail = format!("child={} root={}", jail.child.pid, jail.root.display());
    let outcome = steady::ready_then_tick(wl, args, &detail, |_| jail.check()).and_then(|n| {
        jail.check()?;
        jail.exercise()?;
        Ok(n)
    });
    match outcome {
        Ok(ticks) => {
            jail.child.finish()?;
            Ok(format!(
                "a chrooted child kept its root and working directory over {ticks} checks and made a file in its root"
            ))
        }
        Err(e) => {
            jail.child.kill();
            Err(e)
        }
    }
}
