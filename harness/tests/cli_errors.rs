//! Bad input gets a clear message and the documented exit code, never a panic: 2 for bad
//! usage or input, 3 for infrastructure that cannot run.

use std::process::{Command, Output};

fn crtest(args: &[&str]) -> Output {
    // The host packages first, once for this process: crtest itself would install them, and
    // several at once would fight over apt's lock.
    if let Err(e) = crtest_vm::hostdeps::ensure_for_tests() {
        panic!("{e}");
    }
    Command::new(env!("CARGO_BIN_EXE_crtest"))
        .args(args)
        .output()
        .expect("crtest runs")
}

fn check(out: &Output, code: i32, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "stderr: {stderr}");
    assert!(stderr.contains(needle), "`{needle}` not in: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn unknown_scenario_lists_the_known_ones() {
    let out = crtest(&["run", "--scenario", "no-such-scenario"]);
    check(
        &out,
        2,
        "unknown scenario `no-such-scenario`; known scenarios:",
    );
    check(&out, 2, "fileio1");
}

#[test]
fn malformed_scenario_names_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("mine.toml"),
        "description = \"x\"\nworkload = \"counterloop\"\nitterations = 2\n",
    )
    .unwrap();
    let out = crtest(&["list", "--scenarios", dir.path().to_str().unwrap()]);
    check(&out, 2, "mine.toml");
    check(&out, 2, "line 3");
    check(&out, 2, "itterations");
}

#[test]
fn unknown_workload_is_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("w.toml"),
        "description = \"x\"\nworkload = \"nope\"\n",
    )
    .unwrap();
    let out = crtest(&["list", "--scenarios", dir.path().to_str().unwrap()]);
    check(&out, 2, "unknown workload `nope`");
}

#[test]
fn bad_usage_is_2() {
    let out = crtest(&["run", "--no-such-flag"]);
    assert_eq!(out.status.code(), Some(2));
    let out = crtest(&["run", "--modules", "/tmp"]);
    assert_eq!(out.status.code(), Some(2), "--modules needs --kernel");
}

#[test]
fn a_kernel_that_is_not_one_is_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("bzImage");
    std::fs::write(&fake, b"this is not a kernel").unwrap();
    let out = crtest(&[
        "run",
        "--scenario",
        "counterloop",
        "--kernel",
        fake.to_str().unwrap(),
    ]);
    check(
        &out,
        2,
        "is not a bzImage: too short for a bzImage setup header",
    );
    let out = crtest(&[
        "run",
        "--scenario",
        "counterloop",
        "--kernel",
        "/nonexistent/bzImage",
    ]);
    check(
        &out,
        2,
        "cannot read /nonexistent/bzImage: No such file or directory",
    );
}

#[test]
fn corrupt_or_missing_image_directory_is_bad_input() {
    let out = crtest(&["ckptinfo", "/nonexistent/images"]);
    check(&out, 2, "/nonexistent/images: No such file or directory");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("inventory.img"), b"hello, not an image").unwrap();
    let out = crtest(&["ckptinfo", dir.path().to_str().unwrap()]);
    check(&out, 2, "inventory.img: not a CRIU image: unknown magic");
}

#[test]
fn host_mode_refuses_without_root() {
    // As root, drop to `nobody` for this one command (setpriv is in util-linux).
    let mut cmd = if nix::unistd::geteuid().is_root() {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"]);
        c.arg(env!("CARGO_BIN_EXE_crtest"));
        c
    } else {
        Command::new(env!("CARGO_BIN_EXE_crtest"))
    };
    let out = cmd
        .args(["run", "--host", "--scenario", "counterloop"])
        .current_dir("/")
        .output()
        .expect("crtest runs");
    check(&out, 2, "needs root");
}

/// A suite the mirror does not have: exit 2 naming the suites cr-tests knows, said before
/// anything is built (a typo must not cost a shard its hour).
#[test]
fn a_suite_the_mirror_does_not_have_is_bad_input() {
    let out = crtest(&[
        "run",
        "--scenario",
        "counterloop",
        "--userland",
        "crtest-no-such-suite",
    ]);
    check(&out, 2, "--userland `crtest-no-such-suite`: the mirror (");
    check(
        &out,
        2,
        "cr-tests knows bookworm, bookworm-backports, trixie, sid",
    );
    let out = crtest(&[
        "matrix",
        "--kernels",
        "bookworm,crtest-no-such-suite",
        "--tag",
        "smoke",
        "--plan",
        "2",
    ]);
    check(&out, 2, "--kernels `crtest-no-such-suite`: the mirror (");
}

/// Numbers out of range, a shard the CI engine did not name, a profile or a durations file
/// that is not one: exit 2 when the arguments are read.
#[test]
fn out_of_range_numbers_and_shards_are_refused_up_front() {
    check(
        &crtest(&["run", "--memory", "1"]),
        2,
        "the guest needs 512 to",
    );
    check(&crtest(&["matrix", "--cpus", "0"]), 2, "--cpus");
    check(
        &crtest(&["run", "-j", "0"]),
        2,
        "want 1 to 256 guests at once",
    );
    check(
        &crtest(&["matrix", "--shard", "3/2"]),
        2,
        "want i/n with 1 <= i <= n",
    );
    let mut no_engine = Command::new(env!("CARGO_BIN_EXE_crtest"));
    for var in ["CI_NODE_INDEX", "CI_NODE_TOTAL", "JOB_COMPLETION_INDEX"] {
        no_engine.env_remove(var);
    }
    let out = no_engine
        .args(["matrix", "--shard", "auto", "--tag", "smoke"])
        .output()
        .expect("crtest runs");
    check(&out, 2, "no CI engine said which shard this is");
    let out = Command::new(env!("CARGO_BIN_EXE_crtest"))
        .args([
            "matrix",
            "--shard",
            "auto",
            "--tag",
            "smoke",
            "--results",
            "/nonexistent/x",
        ])
        .env("JOB_COMPLETION_INDEX", "3")
        .output()
        .expect("crtest runs");
    check(&out, 2, "gives the index only: say the count");
    check(
        &crtest(&[
            "matrix",
            "--profile",
            "crtest-no-such-profile",
            "--plan",
            "2",
        ]),
        2,
        "no such profile (the repository's are under profiles/: nightly",
    );
    let t = tempfile::tempdir().unwrap();
    let junk = t.path().join("durations.json");
    std::fs::write(&junk, "{\"format\": \"other-v9\"}").unwrap();
    let junk = junk.display().to_string();
    check(
        &crtest(&[
            "matrix",
            "--tag",
            "smoke",
            "--kernels",
            "sid",
            "--userlands",
            "sid",
            "--plan",
            "2",
            "--durations",
            &junk,
        ]),
        2,
        "format \"other-v9\" (this crtest reads crtest-durations-v1)",
    );
}

/// A results directory that cannot be written: exit 3 naming it, before any guest boots.
#[test]
fn a_results_directory_that_cannot_be_written() {
    let out = crtest(&["list"]);
    assert_eq!(out.status.code(), Some(0));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"").unwrap();
    let results = file.join("results");
    let out = crtest(&[
        "run",
        "--scenario",
        "counterloop",
        "--results",
        results.to_str().unwrap(),
    ]);
    check(&out, 3, "not-a-dir");
}

/// The scenario of issue 19: a shared scenario directory that names the host's
/// /etc/shadow. Loading refuses it (list and run alike), naming the file, key and path,
/// before anything is prepared or copied.
#[test]
fn a_scenario_that_names_a_host_file_outside_its_folder_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("exfil.toml"),
        "description = \"x\"\n[program]\ncommand = [\"/bin/sh\", \"-c\", \"touch started; while :; do sleep 0.1; done\"]\nfiles = [\"../../../../etc/shadow\"]\nready = \"file:started\"\ncheck = [\"true\"]\n",
    )
    .unwrap();
    let results = dir.path().join("results");
    let d = dir.path().to_str().unwrap();
    for args in [
        vec!["list", "--scenarios", d],
        vec![
            "run",
            "--scenarios",
            d,
            "--scenario",
            "exfil",
            "--results",
            results.to_str().unwrap(),
        ],
    ] {
        let out = crtest(&args);
        check(&out, 2, "exfil.toml");
        check(&out, 2, "program.files");
        check(&out, 2, "../../../../etc/shadow");
    }
    assert!(!results.exists(), "no run directory was made");
}

#[test]
fn a_repeat_of_zero_is_bad_usage() {
    let out = crtest(&["run", "--repeat", "0"]);
    check(&out, 2, "--repeat");
}

#[test]
fn a_criu_source_that_is_not_a_tree_says_what_it_lacks() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Makefile"), "all:\n").unwrap();
    let path = dir.path().to_str().unwrap();
    for cmd in [&["run", "--criu", path][..], &["doctor", "--criu", path]] {
        check(
            &crtest(cmd),
            2,
            "not a CRIU source tree: missing Makefile.versions, criu/Makefile",
        );
    }
    let out = crtest(&["matrix", "--kernels", "bookworm", "--criu", path]);
    check(&out, 2, "missing Makefile.versions");
    let out = crtest(&["run", "--userland", "bookworm", "--criu", "sid"]);
    check(
        &out,
        2,
        "the packaged criu of a suite comes with its userland",
    );
    let out = crtest(&["matrix", "--userlands", "bookworm", "--criu", "trixie"]);
    check(&out, 2, "`trixie` is not among --userlands");
}

#[test]
fn the_oci_runtimes_are_judged_in_a_guest_s_userland_only() {
    let out = crtest(&["doctor", "--host", "--oci"]);
    check(&out, 2, "--oci");
    check(&out, 2, "cannot be used with");
}

#[test]
fn zdtm_tests_are_not_run_on_the_host() {
    let out = crtest(&["run", "--host", "--zdtm", "/nonexistent", "--scenario", "x"]);
    check(&out, 2, "--zdtm");
    check(&out, 2, "cannot be used with");
}

#[test]
fn bisect_needs_a_tree_with_history_and_revisions_in_it() {
    let results = tempfile::tempdir().unwrap();
    let res = results.path().to_str().unwrap();
    let base = ["--scenario", "counterloop", "--results", res];
    let out = crtest(&[&["bisect", "--good", "a", "--bad", "b"], &base[..]].concat());
    check(&out, 2, "bisect needs the tree to bisect: --criu TREE");
    let tree = tempfile::tempdir().unwrap();
    let t = tree.path().to_str().unwrap();
    let bisect = |good: &str, bad: &str, more: &[&str]| {
        crtest(&[&["bisect", "--criu", t, "--good", good, "--bad", bad], more].concat())
    };
    check(&bisect("a", "b", &base), 2, "not a git checkout");
    let git = |args: &[&str]| {
        let ok = Command::new("git")
            .arg("-C")
            .arg(tree.path())
            .args(["-c", "user.name=t", "-c", "user.email=t@example.org"])
            .args(args)
            .status()
            .unwrap()
            .success();
        assert!(ok, "git {args:?}");
    };
    git(&["init", "-q"]);
    std::fs::write(tree.path().join("f"), "x").unwrap();
    git(&["add", "f"]);
    git(&["commit", "-q", "-m", "one"]);
    check(
        &bisect("HEAD", "v9.9", &base),
        2,
        "`v9.9` is not a commit of this tree",
    );
    check(
        &bisect(
            "HEAD",
            "HEAD",
            &["--scenario", "no-such-scenario", "--results", res],
        ),
        2,
        "unknown scenario `no-such-scenario`",
    );
    assert_eq!(
        std::fs::read_dir(results.path()).unwrap().count(),
        0,
        "nothing is written for bad input"
    );
}
