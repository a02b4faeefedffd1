//! The readiness / progress / verify protocol every workload speaks with the guest agent.
//!
//! A workload runs with its working directory set to a fresh, empty work dir. All protocol
//! files live there and are replaced atomically (written to `NAME.tmp`, closed, then renamed
//! over `NAME`), so a reader never sees a partial file:
//!
//! | file | when | content |
//! |---|---|---|
//! | [`READY_FILE`] | once the workload's state is set up | JSON [`Ready`]: `{"pid": …, "detail": "…"}` |
//! | [`PROGRESS_FILE`] | while working, at most every [`PROGRESS_MIN_INTERVAL`] | a decimal `u64` that only increases |
//! | [`RESULT_FILE`] | at the end | JSON [`Verdict`]: `{"ok": …, "detail": "…", "progress": …}` |
//!
//! SIGTERM means "verify now": the workload finishes its job, checks its state and writes
//! `result`. Exit status: [`EXIT_PASS`] (ok), [`EXIT_FAIL`] (a check failed, including a
//! failure detected while working, before any SIGTERM), [`EXIT_SETUP`] (bad arguments or the
//! workload could not set itself up). Every exit path writes `result`.
//!
//! The temporary file is closed before it is renamed, so a checkpoint never finds an open
//! file descriptor on a file that has since been renamed over or unlinked.

use crate::args::{self, Args, Opt, Parsed};
use nix::errno::Errno;
use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, Signal};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Written once the workload's state is set up.
pub const READY_FILE: &str = "ready";
/// The workload's progress counter, a decimal `u64`.
pub const PROGRESS_FILE: &str = "progress";
/// The verdict, written once at the end.
pub const RESULT_FILE: &str = "result";

/// Exit status: every check passed.
pub const EXIT_PASS: i32 = 0;
/// Exit status: the workload ran and a check failed.
pub const EXIT_FAIL: i32 = 1;
/// Exit status: bad arguments, or the workload could not set itself up.
pub const EXIT_SETUP: i32 = 2;

/// The progress file is rewritten at most this often (and whenever the value changed
/// after this much time), so it lags the in-memory value by at most this much.
pub const PROGRESS_MIN_INTERVAL: Duration = Duration::from_millis(20);
/// How often [`sleep_polling`] looks at the verify flag.
pub const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// Content of the `ready` file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ready {
    /// Pid of the process to checkpoint (the root of the workload's tree), as the harness
    /// sees it: normally the started process, but a workload that builds its tree
    /// elsewhere (the init of a new PID namespace) names that process instead, see
    /// [`Workload::ready_as`].
    pub pid: u32,
    /// Free text describing the state that was set up.
    pub detail: String,
}

/// Content of the `result` file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// Whether every check passed.
    pub ok: bool,
    /// On failure the precise reason; on success a summary of what was checked.
    pub detail: String,
    /// The final progress value.
    pub progress: u64,
}

/// An operation on a file failed; names the operation, the path and the errno.
#[derive(Debug)]
pub struct FileError {
    /// What was being done, e.g. `"write"`.
    pub op: &'static str,
    /// The file it was done to.
    pub path: PathBuf,
    /// The underlying error.
    pub source: io::Error,
}

impl FileError {
    /// Wraps `source` with the operation and path it came from.
    pub fn new(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> FileError {
        FileError {
            op,
            path: path.into(),
            source,
        }
    }
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot {} {}: {}",
            self.op,
            self.path.display(),
            errno_text(&self.source)
        )
    }
}

impl std::error::Error for FileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// Formats an I/O error with its errno name first, e.g. `ENOENT: No such file or directory`.
pub fn errno_text(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => Errno::from_raw(code).to_string(),
        None => e.to_string(),
    }
}

/// Writes `contents` to `dir/name` atomically: into `dir/name.tmp`, closed, then renamed.
pub fn write_atomic(dir: &Path, name: &str, contents: &[u8]) -> Result<(), FileError> {
    let tmp = dir.join(format!("{name}.tmp"));
    let dest = dir.join(name);
    std::fs::write(&tmp, contents).map_err(|e| FileError::new("write", &tmp, e))?;
    std::fs::rename(&tmp, &dest).map_err(|e| FileError::new("rename to", &dest, e))
}

static VERIFY: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigterm(_signal: nix::libc::c_int) {
    // Only an atomic store: async-signal-safe.
    VERIFY.store(true, Ordering::SeqCst);
}

/// Installs the SIGTERM handler (without `SA_RESTART`) and unblocks SIGTERM.
///
/// The handler only sets the flag read by [`verify_requested`]. Children forked afterwards
/// inherit the handler, each with its own flag.
pub fn install_sigterm_handler() -> nix::Result<()> {
    let action = SigAction::new(
        SigHandler::Handler(on_sigterm),
        SaFlags::empty(),
        SigSet::empty(),
    );
    // SAFETY: the handler does nothing but an atomic store, which is async-signal-safe.
    unsafe { signal::sigaction(Signal::SIGTERM, &action) }?;
    SigSet::from(Signal::SIGTERM).thread_unblock()
}

/// Whether SIGTERM ("verify now") has arrived in this process.
pub fn verify_requested() -> bool {
    VERIFY.load(Ordering::SeqCst)
}

/// Sets the verify flag as the SIGTERM handler would.
pub fn request_verify() {
    VERIFY.store(true, Ordering::SeqCst);
}

/// Sleeps for `duration` in steps of at most [`POLL_INTERVAL`], stopping early when a
/// verify is requested. Returns `true` if it slept the whole time.
///
/// Counts the steps rather than reading a clock, so a restore (or a clock jump) never makes
/// it sleep much longer than asked.
pub fn sleep_polling(duration: Duration) -> bool {
    let mut left = duration;
    while !left.is_zero() {
        if verify_requested() {
            return false;
        }
        let step = left.min(POLL_INTERVAL);
        std::thread::sleep(step);
        left -= step;
    }
    !verify_requested()
}

/// The workload's side of the protocol: its work dir and its progress counter.
#[derive(Debug)]
pub struct Workload {
    dir: PathBuf,
    progress: u64,
    written: Option<u64>,
    last_write: Option<Instant>,
}

impl Workload {
    /// Installs the SIGTERM handler and uses the current directory as the work dir.
    ///
    /// The work dir is kept as an absolute path, so a workload may change its own current
    /// directory (which is state it checks) without losing its protocol files.
    /// If the handler cannot be installed, writes a failing `result` and exits with
    /// [`EXIT_SETUP`].
    pub fn start() -> Workload {
        let dir = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        let mut wl = Workload::in_dir(dir);
        if let Err(e) = install_sigterm_handler() {
            wl.setup_failed(&format!("cannot install the SIGTERM handler: {e}"));
        }
        wl
    }

    /// A workload whose protocol files go to `dir`; installs no signal handler.
    pub fn in_dir(dir: impl Into<PathBuf>) -> Workload {
        Workload {
            dir: dir.into(),
            progress: 0,
            written: None,
            last_write: None,
        }
    }

    /// The work dir.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `name` inside the work dir.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Whether SIGTERM ("verify now") has arrived.
    pub fn verify_requested(&self) -> bool {
        verify_requested()
    }

    /// See [`sleep_polling`].
    pub fn sleep(&self, duration: Duration) -> bool {
        sleep_polling(duration)
    }

    /// The current progress value (possibly newer than the file).
    pub fn progress_value(&self) -> u64 {
        self.progress
    }

    /// Records progress `n` and rewrites the progress file if it is due (see
    /// [`PROGRESS_MIN_INTERVAL`]). Values below the current one are ignored, so progress
    /// never goes back. If the file cannot be written, finishes with a failure.
    pub fn progress(&mut self, n: u64) {
        self.progress = self.progress.max(n);
        let due = match self.last_write {
            None => true,
            // `None` from checked_duration_since: the clock went backwards (e.g. restored on
            // another boot); write now rather than waiting for it to catch up.
            Some(t) => Instant::now()
                .checked_duration_since(t)
                .map_or(true, |elapsed| elapsed >= PROGRESS_MIN_INTERVAL),
        };
        if due && self.written != Some(self.progress) {
            if let Err(e) = self.flush_progress() {
                self.finish(Err(e.to_string()));
            }
        }
    }

    /// Writes the current progress value to the progress file now.
    pub fn flush_progress(&mut self) -> Result<(), FileError> {
        write_atomic(
            &self.dir,
            PROGRESS_FILE,
            format!("{}\n", self.progress).as_bytes(),
        )?;
        self.written = Some(self.progress);
        self.last_write = Some(Instant::now());
        Ok(())
    }

    /// Writes the progress file and then the `ready` file, naming this process.
    pub fn write_ready(&mut self, detail: &str) -> Result<(), FileError> {
        self.write_ready_as(std::process::id(), detail)
    }

    /// Writes the progress file and then the `ready` file, naming `pid` as the process to
    /// checkpoint (as seen from the harness's pid namespace).
    pub fn write_ready_as(&mut self, pid: u32, detail: &str) -> Result<(), FileError> {
        self.flush_progress()?;
        let ready = Ready {
            pid,
            detail: detail.to_owned(),
        };
        write_atomic(&self.dir, READY_FILE, &to_json_line(&ready))
    }

    /// Writes the progress file and then the `result` file (with the current progress).
    pub fn write_result(&mut self, ok: bool, detail: &str) -> Result<(), FileError> {
        // The progress file is best effort here: the result carries the final value anyway.
        let _ = self.flush_progress();
        let verdict = Verdict {
            ok,
            detail: detail.to_owned(),
            progress: self.progress,
        };
        write_atomic(&self.dir, RESULT_FILE, &to_json_line(&verdict))
    }

    /// Announces readiness; if that fails, exits as a setup failure.
    pub fn ready(&mut self, detail: &str) {
        self.ready_as(std::process::id(), detail)
    }

    /// Announces readiness naming `pid` as the process to checkpoint (a workload whose
    /// real root is not the process the harness started, e.g. the init of a new pid
    /// namespace); if that fails, exits as a setup failure.
    pub fn ready_as(&mut self, pid: u32, detail: &str) {
        match self.write_ready_as(pid, detail) {
            Ok(()) => println!("ready (pid {pid}): {detail}"),
            Err(e) => self.setup_failed(&e.to_string()),
        }
    }

    /// Writes the `result` for `outcome` (`Ok(summary)` or `Err(reason)`) and exits with
    /// [`EXIT_PASS`] or [`EXIT_FAIL`]. Can be called at any time, also before SIGTERM when
    /// the workload detected a failure while working.
    pub fn finish(&mut self, outcome: Result<String, String>) -> ! {
        let (ok, detail, code) = match outcome {
            Ok(d) => (true, d, EXIT_PASS),
            Err(d) => (false, d, EXIT_FAIL),
        };
        self.exit_with(ok, &detail, code)
    }

    /// Writes a failing `result` for a setup error and exits with [`EXIT_SETUP`].
    pub fn setup_failed(&mut self, detail: &str) -> ! {
        self.exit_with(false, &format!("setup failed: {detail}"), EXIT_SETUP)
    }

    fn exit_with(&mut self, ok: bool, detail: &str, code: i32) -> ! {
        let word = if ok { "PASS" } else { "FAIL" };
        println!("result: {word} (progress {}): {detail}", self.progress);
        if let Err(e) = self.write_result(ok, detail) {
            eprintln!("{e}");
            std::process::exit(if code == EXIT_PASS { EXIT_FAIL } else { code });
        }
        std::process::exit(code)
    }
}

fn to_json_line<T: Serialize>(value: &T) -> Vec<u8> {
    let mut bytes = serde_json::to_vec(value).expect("protocol structs always serialize");
    bytes.push(b'\n');
    bytes
}

/// The whole `main` of a workload binary: installs the handler, parses the arguments
/// (printing the usage and exiting with [`EXIT_SETUP`] on bad ones, after writing a failing
/// `result`), runs `body`, and finishes with its outcome.
pub fn run_main(
    prog: &str,
    opts: &[Opt],
    body: fn(&mut Workload, &Args) -> Result<String, String>,
) -> ! {
    let mut wl = Workload::start();
    let args = match args::parse(opts, std::env::args().skip(1)) {
        Ok(Parsed::Run(args)) => args,
        Ok(Parsed::Help) => {
            println!("{}", args::help(prog, opts));
            std::process::exit(EXIT_PASS);
        }
        Err(e) => {
            let usage = args::usage(prog, opts);
            eprintln!("{prog}: {e}\n{usage}");
            wl.setup_failed(&format!("{e}; {usage}"));
        }
    };
    let outcome = body(&mut wl, &args);
    wl.finish(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> T {
        serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
    }

    fn no_tmp_files(dir: &Path) {
        for entry in fs::read_dir(dir).unwrap() {
            let name = entry.unwrap().file_name();
            assert!(
                !name.to_string_lossy().ends_with(".tmp"),
                "left behind {name:?}"
            );
        }
    }

    #[test]
    fn ready_writes_pid_detail_and_progress() {
        let dir = tempfile::tempdir().unwrap();
        let mut wl = Workload::in_dir(dir.path());
        wl.progress(7);
        wl.ready("set up \"quoted\"");
        let ready: Ready = read_json(&dir.path().join(READY_FILE));
        assert_eq!(
            ready,
            Ready {
                pid: std::process::id(),
                detail: "set up \"quoted\"".into()
            }
        );
        assert_eq!(
            fs::read_to_string(dir.path().join(PROGRESS_FILE)).unwrap(),
            "7\n"
        );
        no_tmp_files(dir.path());
    }

    #[test]
    fn progress_is_rate_limited_monotonic_and_flushed() {
        let dir = tempfile::tempdir().unwrap();
        let progress_file = dir.path().join(PROGRESS_FILE);
        let mut wl = Workload::in_dir(dir.path());
        wl.progress(1);
        assert_eq!(fs::read_to_string(&progress_file).unwrap(), "1\n");
        // Right after a write, the next value waits for the interval...
        wl.progress(2);
        assert_eq!(fs::read_to_string(&progress_file).unwrap(), "1\n");
        assert_eq!(wl.progress_value(), 2);
        // ...and goes out once the interval has passed.
        std::thread::sleep(PROGRESS_MIN_INTERVAL);
        wl.progress(3);
        assert_eq!(fs::read_to_string(&progress_file).unwrap(), "3\n");
        // Never backwards.
        std::thread::sleep(PROGRESS_MIN_INTERVAL);
        wl.progress(2);
        assert_eq!(wl.progress_value(), 3);
        assert_eq!(fs::read_to_string(&progress_file).unwrap(), "3\n");
        wl.progress(9);
        wl.flush_progress().unwrap();
        assert_eq!(fs::read_to_string(&progress_file).unwrap(), "9\n");
        no_tmp_files(dir.path());
    }

    #[test]
    fn result_carries_verdict_and_final_progress() {
        let dir = tempfile::tempdir().unwrap();
        let mut wl = Workload::in_dir(dir.path());
        wl.progress(41);
        wl.progress(42);
        wl.write_result(false, "dst.dat differs at offset 100")
            .unwrap();
        let verdict: Verdict = read_json(&dir.path().join(RESULT_FILE));
        assert_eq!(
            verdict,
            Verdict {
                ok: false,
                detail: "dst.dat differs at offset 100".into(),
                progress: 42
            }
        );
        assert_eq!(
            fs::read_to_string(dir.path().join(PROGRESS_FILE)).unwrap(),
            "42\n"
        );
        no_tmp_files(dir.path());
    }

    #[test]
    fn write_atomic_replaces_and_reports_path_and_errno() {
        let dir = tempfile::tempdir().unwrap();
        write_atomic(dir.path(), "f", b"one").unwrap();
        write_atomic(dir.path(), "f", b"two").unwrap();
        assert_eq!(fs::read(dir.path().join("f")).unwrap(), b"two");
        no_tmp_files(dir.path());

        let missing = dir.path().join("no-such-dir");
        let err = write_atomic(&missing, "f", b"x").unwrap_err().to_string();
        assert!(err.contains("no-such-dir/f.tmp"), "{err}");
        assert!(err.contains("ENOENT"), "{err}");
    }

    #[test]
    fn errno_text_names_the_errno() {
        let e = io::Error::from_raw_os_error(nix::libc::EINVAL);
        assert_eq!(errno_text(&e), "EINVAL: Invalid argument");
        assert_eq!(errno_text(&io::Error::other("plain")), "plain");
    }

    #[test]
    fn sigterm_sets_the_flag_and_cuts_sleep_short() {
        install_sigterm_handler().unwrap();
        assert!(sleep_polling(Duration::from_millis(1)) || verify_requested());
        signal::raise(Signal::SIGTERM).unwrap();
        assert!(verify_requested());
        let t = Instant::now();
        assert!(!sleep_polling(Duration::from_secs(5)));
        assert!(t.elapsed() < Duration::from_secs(1));
    }
}
