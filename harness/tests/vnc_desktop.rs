//! The VNC path on the host, without a checkpoint: the `vncdesk` workload starts the real
//! Xvnc, twm, xterm and vi; the executor's `[vnc]` steps find the desktop drawn through the
//! harness's RFB client, type into vi, take screenshots, and see vi write the typed text.
//!
//! Needs the host packages of the `vnc` userland variant: installed when missing as root;
//! otherwise the trial is reported ignored and the `apt-get` command printed, never passed;
//! with `CRTEST_REQUIRE_VM=1` (CI) it fails instead.

use crtest::exec::context::ExecConfig;
use crtest::exec::executor::run_scenario;
use crtest::model::outcome::Outcome;
use crtest::model::scenario::Scenario;
use crtest::vnc::frame::Frame;
use libtest_mimic::{Arguments, Failed, Trial};

const SCENARIO: &str = r#"
description = "the desktop takes keys and shows them, seen through the harness's VNC client"
workload = "vncdesk"
args = ["--display", "57"]
steps = ["start", "wait-ready", "verify"]
timeout-s = 120
[vnc]
type-before = "iThe quick brown fox{Escape}"
type-after = "ojumps over the lazy dog{Escape}:w{Return}"
expect-file = "notes.txt"
expect-text = "The quick brown fox\njumps over the lazy dog\n"
"#;

fn main() {
    let args = Arguments::from_args();
    let trial = "vnc_desktop_takes_keys_and_shows_them";
    let filtered_in = !matches!(args.filter.as_deref(), Some(f) if !trial.contains(f));
    // The desktop's programs, installed when missing (as root); when they cannot be had the
    // trial is ignored and says why, or fails under CRTEST_REQUIRE_VM=1.
    let missing = if args.list || !filtered_in {
        None
    } else {
        crtest_vm::hostdeps::ensure_for_tests()
            .err()
            .map(|e| e.to_string())
    };
    let require = std::env::var("CRTEST_REQUIRE_VM").as_deref() == Ok("1");
    if let Some(why) = &missing {
        eprintln!("vnc desktop: the desktop programs cannot be had: {why}");
    }
    let ignored = missing.is_some() && !require;
    let t = Trial::test(trial, move || match missing {
        Some(why) => Err(Failed::from(format!(
            "CRTEST_REQUIRE_VM=1 but the desktop programs cannot be had: {why}"
        ))),
        None => vnc_desktop_takes_keys_and_shows_them(),
    })
    .with_ignored_flag(ignored);
    libtest_mimic::run(&args, vec![t]).exit();
}

fn vnc_desktop_takes_keys_and_shows_them() -> Result<(), Failed> {
    let bins = crtest::host::guest_build::build().expect("the guest binaries build");
    let dir = tempfile::tempdir().unwrap();
    let sc = Scenario::parse(&dir.path().join("vncdesk-host.toml"), SCENARIO)
        .expect("the scenario parses")
        .remove(0);
    let cfg = ExecConfig {
        work_root: dir.path().join("work"),
        run_dir: dir.path().join("run"),
        bin_dir: bins.dir.clone(),
        criu: "criu".into(),
        keep_images: false,
    };
    let r = run_scenario(&cfg, &sc, &mut |_| {});
    assert_eq!(r.outcome, Outcome::Pass, "{r:#?}");
    let screens = r.screens.as_ref().expect("screens recorded");
    let before = Frame::read_png(&cfg.run_dir.join(screens.before.as_ref().unwrap())).unwrap();
    let typed = Frame::read_png(&cfg.run_dir.join(screens.typed.as_ref().unwrap())).unwrap();
    assert_eq!((before.width, before.height), (640, 480));
    assert_ne!(before, typed);
    assert!(
        before.foreground_pixels() > 5_000,
        "the xterm is on the screen"
    );
    let d = screens.typing_diff.as_ref().unwrap();
    assert!(d.differing > 0 && d.bbox.is_some(), "{d:?}");
    // The new line lies inside the xterm (80x24 cells of the 6x13 `fixed` font at +20+20).
    let [x, y, w, h] = d.bbox.unwrap();
    assert!(
        x >= 20 && y >= 20 && x + w <= 20 + 80 * 6 + 20 && y + h <= 480,
        "{d:?}"
    );
    let steps: Vec<&str> = r.steps.iter().map(|s| s.step.as_str()).collect();
    assert!(steps.contains(&"wait-ready:vnc-before"), "{steps:?}");
    assert!(steps.contains(&"verify:vnc-type"), "{steps:?}");
    Ok(())
}
