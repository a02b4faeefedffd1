//! The agent binary as criu's action script, on the host: started as criu starts it
//! (`CRTOOLS_SCRIPT_ACTION`, `CRTOOLS_INIT_PID`, `CRTEST_VISIBLE_DIR`), it reads the tree of
//! that pid at `post-dump` and `pre-resume`, writes nothing at criu's other actions, and
//! exits 0 whatever happens (a failing post-dump script would make criu resume the tree).

use crtest::exec::visible::moment::{Moment, MomentError, Reads, AGENT_BINARY, FREEZE_ENV};
use std::path::Path;
use std::process::{Command, Stdio};

const AGENT: &str = env!("CARGO_BIN_EXE_crtest-agent");

fn as_criu_runs_it(dir: &Path, action: &str, root: Option<u32>) -> i32 {
    as_criu_runs_it_with(dir, action, root, &[])
}

fn as_criu_runs_it_with(dir: &Path, action: &str, root: Option<u32>, env: &[(&str, &Path)]) -> i32 {
    let mut cmd = Command::new(AGENT);
    cmd.envs(env.iter().copied());
    cmd.env("CRTOOLS_SCRIPT_ACTION", action)
        .env("CRTEST_VISIBLE_DIR", dir)
        .stdin(Stdio::null());
    if let Some(pid) = root {
        cmd.env("CRTOOLS_INIT_PID", pid.to_string());
    }
    cmd.status().expect("the agent runs").code().unwrap_or(-1)
}

fn reads(dir: &Path) -> Reads {
    assert!(AGENT.ends_with(AGENT_BINARY), "{AGENT}");
    Reads::new(dir.to_path_buf(), AGENT.into()).expect("the agent binary is there")
}

#[test]
fn it_reads_the_tree_at_criu_s_two_moments() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("visible");
    let r = reads(&dir);
    let mut child = Command::new("sh")
        .args(["-c", "exec 7</dev/null; exec sleep 30"])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    for (action, moment) in [
        ("post-dump", Moment::Dumped),
        ("pre-resume", Moment::Restored),
    ] {
        assert_eq!(as_criu_runs_it(&dir, action, Some(child.id())), 0);
        let side = r.take(moment).expect("a side");
        let pid = child.id();
        assert_eq!(side.processes, 1);
        assert_eq!(side.read, moment.describe());
        assert_eq!(
            side.items
                .get(&(format!("pid {pid}"), "fds.7.target".into()))
                .map(String::as_str),
            Some("/dev/null")
        );
        assert!(side.unstable.is_empty(), "a frozen side is read once");
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn other_actions_write_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("visible");
    let r = reads(&dir);
    for action in ["pre-dump", "pre-restore", "post-restore", "post-resume"] {
        assert_eq!(as_criu_runs_it(&dir, action, Some(std::process::id())), 0);
    }
    for moment in [Moment::Dumped, Moment::Restored] {
        let e = r.take(moment).unwrap_err();
        assert!(matches!(e, MomentError::NotRun { .. }), "{e}");
    }
}

#[test]
fn a_tree_that_is_gone_is_said_and_the_script_still_exits_0() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("visible");
    let r = reads(&dir);
    let mut child = Command::new("true").spawn().unwrap();
    let gone = child.id();
    child.wait().unwrap();
    assert_eq!(as_criu_runs_it(&dir, "post-dump", Some(gone)), 0);
    let e = r.take(Moment::Dumped).unwrap_err().to_string();
    assert_eq!(
        e,
        format!("the action script could not read the tree at post-dump: process {gone} is gone")
    );
    assert_eq!(as_criu_runs_it(&dir, "pre-resume", None), 0);
    let e = r.take(Moment::Restored).unwrap_err().to_string();
    assert!(e.ends_with("criu gave no CRTOOLS_INIT_PID"), "{e}");
}

/// A dump that leaves the tree running: after its read at post-dump the script freezes the
/// tree's cgroup (here a folder with a `cgroup.freeze` file: the real freezer is tried in
/// the guest by the `@leave-running` VM trials), and only there.
#[test]
fn at_post_dump_it_freezes_the_cgroup_it_is_given_after_its_read() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("visible");
    let cg = tmp.path().join("cg");
    std::fs::create_dir(&cg).unwrap();
    let freeze = cg.join("cgroup.freeze");
    let r = reads(&dir);
    for (action, moment, want) in [
        ("pre-resume", Moment::Restored, "0"),
        ("post-dump", Moment::Dumped, "1"),
    ] {
        std::fs::write(&freeze, "0").unwrap();
        let env = [(FREEZE_ENV, cg.as_path())];
        assert_eq!(
            as_criu_runs_it_with(&dir, action, Some(std::process::id()), &env),
            0
        );
        assert!(r.take(moment).is_ok(), "{action}: read first");
        assert_eq!(std::fs::read_to_string(&freeze).unwrap(), want, "{action}");
    }
    // A cgroup that cannot be frozen is said, the script still exits 0.
    let env = [(FREEZE_ENV, tmp.path().join("none"))];
    let env: Vec<(&str, &Path)> = env.iter().map(|(k, v)| (*k, v.as_path())).collect();
    assert_eq!(
        as_criu_runs_it_with(&dir, "post-dump", Some(std::process::id()), &env),
        0
    );
    let e = r.take(Moment::Dumped).unwrap_err().to_string();
    assert!(e.contains("the tree's cgroup could not be frozen"), "{e}");
}

#[test]
fn without_criu_s_variables_it_is_the_agent() {
    // Not PID 1 and not an action script: the agent refuses to run, exit 2.
    let out = Command::new(AGENT)
        .env_remove("CRTOOLS_SCRIPT_ACTION")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("must run as PID 1"));
}
