//! criu's command lines: dump, pre-dump, restore, and the page-server and lazy-pages
//! daemons, with what each mode adds; and the same options as a `--config` file.

use crate::model::scenario::{Lazy, Mode};
use std::path::Path;

/// `criu dump` of the tree rooted at `pid` into `images`, logging to `log` at level 4,
/// with the scenario's `extra` options.
pub fn dump_args(pid: i32, images: &Path, log: &Path, extra: &[String]) -> Vec<String> {
    let mut v = vec![
        "dump".into(),
        "--tree".into(),
        pid.to_string(),
        "--images-dir".into(),
        images.display().to_string(),
        "--log-file".into(),
        log.display().to_string(),
        "-v4".into(),
    ];
    v.extend_from_slice(extra);
    v
}

/// `criu restore` from `images`, detached, writing the restored root's pid to `pidfile`.
pub fn restore_args(images: &Path, log: &Path, pidfile: &Path, extra: &[String]) -> Vec<String> {
    let mut v = vec![
        "restore".into(),
        "--images-dir".into(),
        images.display().to_string(),
        "--log-file".into(),
        log.display().to_string(),
        "-v4".into(),
        "--restore-detached".into(),
        "--pidfile".into(),
        pidfile.display().to_string(),
    ];
    v.extend_from_slice(extra);
    v
}

/// A daemon criu runs beside a dump or a restore: `page-server` (with `--lazy-pages` when it
/// serves a lazy restore) or `lazy-pages` (fed by the page server at `server`, an address
/// and port, in the remote lazy mode), its images in `images`. A page server listens on
/// `server`'s port.
pub fn daemon_args(
    action: &str,
    images: &Path,
    log: &Path,
    server: (&str, u16),
    mode: &Mode,
) -> Vec<String> {
    let mut v: Vec<String> = vec![
        action.into(),
        "--images-dir".into(),
        images.display().to_string(),
        "--log-file".into(),
        log.display().to_string(),
        "-v4".into(),
    ];
    let (address, port) = (server.0, server.1.to_string());
    match (action, mode.lazy) {
        ("page-server", Lazy::Remote) => v.extend(["--port".into(), port, "--lazy-pages".into()]),
        ("page-server", _) => {
            v.extend(["--port".into(), port]);
            if mode.dedup {
                v.push("--auto-dedup".into());
            }
        }
        (_, Lazy::Remote) => {
            v.extend(["--page-server", "--address", address, "--port", &port].map(String::from))
        }
        _ => {}
    }
    if action == "lazy-pages" && mode.rpc {
        // Its socket goes to its work dir, where the restore looks: over the RPC that is
        // the log's folder (the RPC's log file may not name a folder).
        if let Some(work) = log.parent() {
            v.extend(["--work-dir".into(), work.display().to_string()]);
        }
    }
    v
}

/// What the mode adds to a `criu dump` (`last`: the final one, not a pre-dump or a
/// snapshot), given the images of the copy before it (`prev`, relative to the images) and
/// the page server's address and port.
pub fn dump_mode_args(
    mode: &Mode,
    last: bool,
    prev: Option<&str>,
    page_server: Option<(&str, u16)>,
) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    if let Some(prev) = prev {
        v.extend(["--prev-images-dir".into(), prev.into()]);
    }
    if prev.is_some() || mode.pre > 0 {
        v.push("--track-mem".into());
    }
    if let Some((address, port)) = page_server {
        v.extend(
            [
                "--page-server",
                "--address",
                address,
                "--port",
                &port.to_string(),
            ]
            .map(String::from),
        );
    }
    if mode.dedup {
        v.push("--auto-dedup".into());
    }
    match last {
        true if mode.leave_running => v.push("--leave-running".into()),
        true if mode.stop => v.push("--leave-stopped".into()),
        true => {}
        false if mode.snaps => v.push("--leave-running".into()),
        false => {}
    }
    v
}

/// What the mode puts before the scenario's own `criu restore` options, which may take it
/// back (a zdtm test's `--no-mntns-compat-mode`), as zdtm.py orders them.
pub fn restore_mode_lead(mode: &Mode) -> Vec<String> {
    match mode.mntns_compat {
        true => vec!["--mntns-compat-mode".into()],
        false => Vec::new(),
    }
}

/// What the mode adds after the scenario's own `criu restore` options.
pub fn restore_mode_args(mode: &Mode) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    let mut on = |b: bool, s: &str| {
        if b {
            v.push(s.into())
        }
    };
    on(mode.sibling, "--restore-sibling");
    on(mode.dedup, "--auto-dedup");
    on(mode.lazy != Lazy::No, "--lazy-pages");
    on(mode.stop, "--leave-stopped");
    v
}

/// `criu ACTION OPTIONS` as zdtm.py's `--criu-config` gives it: the action and
/// `--no-default-config --config FILE` on the command line, each long option with its
/// values on a line of the file (without its dashes); `-v4` becomes `verbosity=4` (an optional argument). Returns
/// the command line and the file's text.
pub fn as_config(args: &[String], file: &Path) -> (Vec<String>, String) {
    let mut text = String::new();
    for a in &args[1..] {
        match a.strip_prefix("--") {
            Some(opt) => {
                if !text.is_empty() {
                    text.push('\n');
                }
                text.push_str(opt);
            }
            None if a == "-v4" => {
                if !text.is_empty() {
                    text.push('\n');
                }
                text.push_str("verbosity=4");
            }
            None => {
                text.push(' ');
                text.push_str(a);
            }
        }
    }
    text.push('\n');
    let argv = vec![
        args[0].clone(),
        "--no-default-config".into(),
        "--config".into(),
        file.display().to_string(),
    ];
    (argv, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_for_dump_and_restore() {
        let d = dump_args(42, Path::new("/w/img"), Path::new("/w/dump.log"), &[]);
        assert_eq!(
            d.join(" "),
            "dump --tree 42 --images-dir /w/img --log-file /w/dump.log -v4"
        );
        let r = restore_args(
            Path::new("/w/img"),
            Path::new("/w/restore.log"),
            Path::new("/w/pid"),
            &["--tcp-established".into()],
        );
        assert_eq!(
            r.join(" "),
            "restore --images-dir /w/img --log-file /w/restore.log -v4 --restore-detached --pidfile /w/pid --tcp-established"
        );
    }

    #[test]
    fn what_each_mode_adds() {
        let m = |s: &str| Mode::parse(s).unwrap();
        let pre = m("pre=2+page-server+dedup");
        assert_eq!(
            dump_mode_args(&pre, false, Some("../pre-1-1"), Some(("127.0.0.1", 12345))).join(" "),
            "--prev-images-dir ../pre-1-1 --track-mem --page-server --address 127.0.0.1 \
             --port 12345 --auto-dedup"
        );
        assert_eq!(
            dump_mode_args(&pre, false, None, None).join(" "),
            "--track-mem --auto-dedup"
        );
        let snaps = m("snaps=1+stop");
        assert_eq!(
            dump_mode_args(&snaps, false, None, None).join(" "),
            "--track-mem --leave-running"
        );
        assert_eq!(
            dump_mode_args(&snaps, true, Some("../s"), None).join(" "),
            "--prev-images-dir ../s --track-mem --leave-stopped"
        );
        assert!(dump_mode_args(&Mode::PLAIN, true, None, None).is_empty());
        let m4 = m("remote-lazy+sibling+stop+mntns-compat");
        assert_eq!(
            restore_mode_args(&m4).join(" "),
            "--restore-sibling --lazy-pages --leave-stopped"
        );
        assert_eq!(restore_mode_lead(&m4), ["--mntns-compat-mode"]);
        let rl = m("remote-lazy");
        let d = Path::new("/w/i");
        let l = Path::new("/w/l.log");
        assert_eq!(
            daemon_args("page-server", d, l, ("127.0.0.1", 7), &rl)[6..].join(" "),
            "--port 7 --lazy-pages"
        );
        assert_eq!(
            daemon_args("lazy-pages", d, l, ("127.0.0.1", 7), &rl)[6..].join(" "),
            "--page-server --address 127.0.0.1 --port 7"
        );
        assert!(daemon_args("lazy-pages", d, l, ("127.0.0.1", 7), &m("lazy"))[6..].is_empty());
        assert_eq!(
            daemon_args(
                "page-server",
                d,
                l,
                ("127.0.0.1", 7),
                &m("page-server+dedup")
            )[6..]
                .join(" "),
            "--port 7 --auto-dedup"
        );
    }

    #[test]
    fn options_through_a_config_file() {
        let args = dump_args(
            42,
            Path::new("/w/img"),
            Path::new("/w/dump.log"),
            &[
                "--leave-running".into(),
                "--external".into(),
                "mnt[x]:y".into(),
            ],
        );
        let (argv, text) = as_config(&args, Path::new("/w/dump.conf"));
        assert_eq!(
            argv.join(" "),
            "dump --no-default-config --config /w/dump.conf"
        );
        assert_eq!(
            text,
            "tree 42\nimages-dir /w/img\nlog-file /w/dump.log\nverbosity=4\nleave-running\nexternal mnt[x]:y\n"
        );
    }
}
