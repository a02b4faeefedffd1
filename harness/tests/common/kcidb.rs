//! Validating KCIDB documents with the schema of the `kcidb-io` package (PyPI), pinned,
//! installed under `target/` by the tests themselves when missing.

use std::path::{Path, PathBuf};

/// The kcidb-io release whose schema the tests check against (its latest schema: v5.3).
pub const KCIDB_IO: &str = "kcidb-io==141";

/// Where the pinned kcidb-io lives (`pip install --target`), installed on first use.
pub fn kcidb_io() -> Result<PathBuf, String> {
    crtest_vm::hostdeps::ensure_for_tests()?;
    let dir = crtest::host::guest_build::workspace_root().join("target/kcidb-io-141");
    if dir.join("kcidb_io").is_dir() {
        return Ok(dir);
    }
    let tmp = dir.with_extension("partial");
    let _ = std::fs::remove_dir_all(&tmp);
    let target = tmp.display().to_string();
    let args = [
        "install",
        "-q",
        "--disable-pip-version-check",
        "--target",
        &target,
        KCIDB_IO,
    ];
    duct::cmd("pip3", args)
        .stderr_to_stdout()
        .stdout_capture()
        .run()
        .map_err(|e| format!("pip3 {}: {e}", args.join(" ")))?;
    std::fs::rename(&tmp, &dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(dir)
}

/// Validates `path` against kcidb-io's v5.3 schema; the number of tests it holds.
pub fn validate(path: &Path) -> Result<usize, String> {
    let lib = kcidb_io()?;
    let script = "import json, sys, kcidb_io\n\
        doc = json.load(open(sys.argv[1]))\n\
        kcidb_io.schema.V5_3.validate_exactly(doc)\n\
        print(len(doc.get('tests', [])))\n";
    let out = duct::cmd("python3", ["-c", script, &path.display().to_string()])
        .env("PYTHONPATH", &lib)
        .stderr_to_stdout()
        .stdout_capture()
        .unchecked()
        .run()
        .map_err(|e| format!("python3: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(format!("{}: kcidb-io rejects it:\n{text}", path.display()));
    }
    text.trim()
        .parse()
        .map_err(|_| format!("kcidb-io validation said {text:?}"))
}
