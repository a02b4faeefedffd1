//! The main job's pieces as a normal user, as a kernel developer runs them on a workstation
//! account: `crtest run --scenario counterloop,fileio1,ptree1` with a cold cache in the
//! account's home, the Debian root bootstrapped and imaged in user namespaces, the guest
//! under TCG (or KVM when the account may open /dev/kvm). The three scenarios must pass and
//! nothing under the cache or the results may belong to anyone but the account.
//!
//! As root (CI) the trial makes the account (`useradd`, which gives it its subordinate id
//! ranges), runs crtest as it through `setpriv` with a login's clean environment, and
//! removes the account and its home afterwards; as a normal user it runs as itself. The
//! account cannot read the workspace (it may be under /root), so the crtest binary and the
//! guest binaries (`CRTEST_GUEST_BIN`) are copied to a directory it owns: the pieces a
//! user's own `cargo run` would build.
//!
//! When the host tools cannot be had the trial is reported ignored with the reason, never
//! passed; with `CRTEST_REQUIRE_VM=1` (CI) that is a failure.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crtest_vm::userns::Account;
use libtest_mimic::{Arguments, Failed, Trial};
use nix::unistd::{Gid, Uid};
use serde_json::Value;

/// The account the trial makes when it runs as root.
const ACCOUNT: &str = "crtest-trial";
const SCENARIOS: &str = "counterloop,fileio1,ptree1";

fn main() {
    let args = Arguments::from_args();
    let name = "vm_normal_user::main_job_as_a_normal_user";
    let wanted = args.filter.as_deref().is_none_or(|f| name.contains(f)) && !args.list;
    let unavailable = match wanted {
        false => None,
        true => crtest_vm::hostdeps::ensure_for_tests().err(),
    };
    let require = std::env::var("CRTEST_REQUIRE_VM").is_ok_and(|v| v == "1");
    let why = unavailable.clone();
    let trial = Trial::test(name, move || match why {
        Some(why) => Err(Failed::from(format!("no host tools: {why}"))),
        None => as_a_normal_user().map_err(Failed::from),
    })
    .with_ignored_flag(unavailable.is_some() && !require);
    libtest_mimic::run(&args, vec![trial]).exit();
}

/// Who runs the trial's crtest: the account made for it (and removed after) or the caller.
struct Runner {
    user: Account,
    made: bool,
}

impl Runner {
    fn get() -> Result<Runner, String> {
        if !Uid::effective().is_root() {
            let passwd = crtest_vm::userns::read_bounded("/etc/passwd");
            let user = crtest_vm::userns::account(&passwd, Uid::effective())
                .ok_or("this account has no passwd entry")?;
            return Ok(Runner { user, made: false });
        }
        if lookup(ACCOUNT)?.is_none() {
            run(Command::new("useradd").args([
                "--create-home",
                "--shell",
                "/bin/sh",
                "--comment",
                "cr-tests normal user trial",
                ACCOUNT,
            ]))?;
        }
        let user = lookup(ACCOUNT)?.ok_or("useradd made no account")?;
        let runner = Runner { user, made: true };
        // Debian's useradd gives new accounts their ranges; add them where it did not.
        for (file, flag) in [
            ("/etc/subuid", "--add-subuids"),
            ("/etc/subgid", "--add-subgids"),
        ] {
            let text = std::fs::read_to_string(file).unwrap_or_default();
            if crtest_vm::userns::subordinate_count(&text, ACCOUNT, Uid::from_raw(runner.user.uid))
                < crtest_vm::userns::SUBORDINATE_IDS
            {
                let start = crtest_vm::userns::free_start(&text);
                let end = start + crtest_vm::userns::SUBORDINATE_IDS - 1;
                run(Command::new("usermod").args([flag, &format!("{start}-{end}"), ACCOUNT]))?;
            }
        }
        Ok(runner)
    }

    /// `crtest ARGS` as the account, in `dir`, with a login's environment plus `env`.
    fn crtest(&self, bin: &Path, dir: &Path, env: &[(&str, &Path)], args: &[&str]) -> Command {
        let mut c = if self.made {
            let mut c = Command::new("setpriv");
            c.arg(format!("--reuid={}", self.user.uid))
                .arg(format!("--regid={}", self.user.gid))
                .args(["--init-groups", "--reset-env", "--"]);
            c.arg("env");
            for (k, v) in env {
                c.arg(format!("{k}={}", v.display()));
            }
            c.arg(bin);
            c
        } else {
            let mut c = Command::new(bin);
            c.envs(env.iter().map(|(k, v)| (k, v)));
            c
        };
        c.args(args).current_dir(dir);
        c
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        if self.made {
            // Its home (and the cache in it) goes with it; the trial's directory is the
            // caller's to keep or remove.
            let _ = Command::new("userdel").args(["--remove", ACCOUNT]).output();
        }
    }
}

/// The account `name` of /etc/passwd (not through NSS, which crashes a static binary).
fn lookup(name: &str) -> Result<Option<Account>, String> {
    let passwd = crtest_vm::userns::read_bounded("/etc/passwd");
    let found = crtest_vm::userns::accounts(&passwd).find(|a| a.name == name);
    Ok(found)
}

fn run(c: &mut Command) -> Result<(), String> {
    let out = c.output().map_err(|e| format!("{c:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{c:?}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Every path under `root` (itself included) not owned by `uid`, with its owner.
fn foreign_owned(root: &Path, uid: u32) -> Vec<(PathBuf, u32)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(m) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if m.uid() != uid {
            out.push((p.clone(), m.uid()));
        }
        if m.is_dir() {
            if let Ok(rd) = std::fs::read_dir(&p) {
                stack.extend(rd.flatten().map(|e| e.path()));
            }
        }
    }
    out
}

/// Copies `from` to `dir`, executable.
fn copy_bin(from: &Path, dir: &Path) -> Result<(), String> {
    let to = dir.join(from.file_name().ok_or("a binary without a name")?);
    std::fs::copy(from, &to).map_err(|e| format!("{} -> {}: {e}", from.display(), to.display()))?;
    Ok(())
}

fn as_a_normal_user() -> Result<(), String> {
    let runner = Runner::get()?;
    let (uid, gid) = (
        Uid::from_raw(runner.user.uid),
        Gid::from_raw(runner.user.gid),
    );
    let t = tempfile::Builder::new()
        .prefix("crtest-normal-user-")
        .tempdir_in("/var/tmp")
        .map_err(|e| e.to_string())?;
    let top = t.path();
    let bin = top.join("bin");
    std::fs::create_dir(&bin).map_err(|e| e.to_string())?;
    copy_bin(Path::new(env!("CARGO_BIN_EXE_crtest")), &bin)?;
    let guest = crtest::host::guest_build::build().map_err(|e| e.to_string())?;
    for b in std::iter::once(guest.agent()).chain(guest.workloads()) {
        copy_bin(&b, &bin)?;
    }
    let work = top.join("work");
    std::fs::create_dir(&work).map_err(|e| e.to_string())?;
    for p in [top, &bin, &work] {
        nix::unistd::chown(p, Some(uid), Some(gid)).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    for e in std::fs::read_dir(&bin)
        .map_err(|e| e.to_string())?
        .flatten()
    {
        nix::unistd::chown(&e.path(), Some(uid), Some(gid)).map_err(|e| e.to_string())?;
    }
    // The account's own cache: its home's, or a fresh one when the caller is that account
    // (a developer's cache is left alone).
    let cache = match runner.made {
        true => runner.user.home.join(".cache/crtest"),
        false => work.join("cache"),
    };
    let mut env = vec![("CRTEST_GUEST_BIN", bin.as_path())];
    if !runner.made {
        env.push(("CRTEST_CACHE", cache.as_path()));
    }
    let start = Instant::now();
    let out = runner
        .crtest(
            &bin.join("crtest"),
            &work,
            &env,
            &["run", "--scenario", SCENARIOS],
        )
        .output()
        .map_err(|e| format!("crtest as {}: {e}", runner.user.name))?;
    let wall = start.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let keep = |why: String| {
        let kept = t.path().to_path_buf();
        std::mem::forget(t);
        format!("{why}\n(the trial's files are kept in {})", kept.display())
    };
    if out.status.code() != Some(0) {
        return Err(keep(format!(
            "crtest run as {} exited {:?}:\n{stderr}",
            runner.user.name,
            out.status.code()
        )));
    }
    let results = work.join("results");
    let run_json = results.join("latest/run.json");
    let r: Value = std::fs::read_to_string(&run_json)
        .map_err(|e| e.to_string())
        .and_then(|s| serde_json::from_str(&s).map_err(|e| e.to_string()))
        .map_err(|e| format!("{}: {e}", run_json.display()))?;
    let mut passed = Vec::new();
    for c in r["cells"].as_array().into_iter().flatten() {
        for s in c["scenarios"].as_array().into_iter().flatten() {
            if s["outcome"] != "pass" {
                return Err(keep(format!("{}: {}", s["name"], s["failure"])));
            }
            passed.push(s["name"].as_str().unwrap_or("").to_string());
        }
    }
    passed.sort();
    if passed != ["counterloop", "fileio1", "ptree1"] {
        return Err(keep(format!("the run has {passed:?}")));
    }
    let mut foreign = foreign_owned(&cache, uid.as_raw());
    foreign.extend(foreign_owned(&results, uid.as_raw()));
    if !foreign.is_empty() {
        let list: Vec<String> = foreign
            .iter()
            .take(20)
            .map(|(p, u)| format!("  {} (uid {u})", p.display()))
            .collect();
        return Err(keep(format!(
            "{} files under the cache or the results are not {}'s:\n{}",
            foreign.len(),
            runner.user.name,
            list.join("\n")
        )));
    }
    let prepare = stderr
        .lines()
        .filter(|l| l.contains("prepare: "))
        .collect::<Vec<_>>()
        .join("\n");
    eprintln!(
        "as {} (uid {uid}, gid {gid}): {SCENARIOS} passed, wall {wall:.1} s with a cold \
         cache\n{prepare}",
        runner.user.name
    );
    Ok(())
}
