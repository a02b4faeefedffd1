//! What the harness does, through its own VNC client ([`crate::vnc::rfb`]), in a scenario with
//! `[vnc]`: the linux-cr wiki's last step, a viewer that finds the same `vi` window after the
//! restore.
//!
//! - after `wait-ready`: wait for the desktop to be drawn, move the pointer onto it (focus
//!   follows the pointer under twm), type `type-before`, wait for the screen to settle and
//!   take `screen-before.png`;
//! - after `restore` (and, for a paused LXC restore, after the unfreeze): take
//!   `screen-restored.png` and compare it with the first; more than `max-diff-pixels`
//!   differing pixels fail the step; `screen-diff.png` shows where they are;
//! - before `verify`: type `type-after`, take `screen-typed.png`, which must differ from
//!   the restored screen, and wait for `expect-file` to hold `expect-text`.
//!
//! The client connects to the server's UNIX socket in the working directory, which the
//! guest (and an LXC container, through its bind of the working directory) shares with the
//! harness: no network is involved. Each connection is closed before the checkpoint, so
//! criu never meets a socket whose peer is outside the dumped tree.

use crate::exec::context::{Run, StepError};
use crate::model::outcome::{Screens, StepRecord};
use crate::model::scenario::{StepKind, VncOptions};
use crate::vnc::frame::{self, Frame};
use crate::vnc::rfb::{self, RfbClient, RfbError};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Time for one read or write of the RFB conversation.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Time between two screenshots while waiting for the screen to settle.
const SETTLE_INTERVAL: Duration = Duration::from_millis(400);
/// A screen counts as drawn when at least this many pixels differ from its background
/// (an 80x24 xterm is about 150 000).
const MIN_FOREGROUND: u64 = 5_000;
/// How long a VNC client waits for a frozen desktop's greeting (it must not come).
const FROZEN_PROBE: Duration = Duration::from_millis(1500);
/// Time for `expect-file` to hold `expect-text` after the keys were typed.
const FILE_WAIT: Duration = Duration::from_secs(10);

/// Why a `[vnc]` part of a step failed (the step's failure message).
#[derive(Debug, thiserror::Error)]
pub(crate) enum VncStepError {
    #[error(transparent)]
    Rfb(#[from] RfbError),
    #[error(transparent)]
    Frame(#[from] frame::FrameError),
    #[error(transparent)]
    Keys(#[from] rfb::KeysError),
    #[error("no screenshot was taken before the checkpoint (the steps lack `wait-ready`)")]
    NoScreenBefore,
    #[error("the restored screen differs from the checkpointed one in {differing} of {total} pixels{within} (at most {max} allowed); see {DIFF_PNG}")]
    RestoredDiffers {
        differing: u64,
        total: u64,
        within: String,
        max: u64,
    },
    #[error("typing `{keys}` after the restore changed nothing on the screen: the desktop does not take keys")]
    NothingTyped { keys: String },
    #[error("waited in vain for {what}: the screen {screen} ({pixels} pixels off the background)")]
    NotSettled {
        what: &'static str,
        screen: &'static str,
        pixels: u64,
    },
    #[error("{path} holds {found:?}, expected {want:?}")]
    WrongText {
        path: PathBuf,
        found: String,
        want: String,
    },
    #[error("{path} was not written: {source} (expected {want:?})")]
    NotWritten {
        path: PathBuf,
        source: std::io::Error,
        want: String,
    },
    #[error("the frozen desktop answered a VNC client (desktop `{desktop}`): it is not frozen")]
    FrozenAnswered { desktop: String },
    #[error("probing the frozen desktop: {0}")]
    Probe(RfbError),
}

pub const BEFORE_PNG: &str = "screen-before.png";
pub const RESTORED_PNG: &str = "screen-restored.png";
pub const DIFF_PNG: &str = "screen-diff.png";
pub const TYPED_PNG: &str = "screen-typed.png";

/// The viewer of a `[vnc]` scenario: what it was asked to do, and the screens it took.
pub(crate) struct Desktop {
    opts: VncOptions,
    /// The screenshots so far (for run.json).
    screens: Option<Screens>,
    /// The screenshot taken before the checkpoint, to compare the restored screen with.
    before: Option<Frame>,
    /// The screenshot taken after the restore, to see what typing changes.
    restored: Option<Frame>,
}

impl Desktop {
    pub(crate) fn new(opts: VncOptions) -> Desktop {
        Desktop {
            opts,
            screens: None,
            before: None,
            restored: None,
        }
    }

    /// The screenshots taken, for the scenario's result.
    pub(crate) fn into_screens(self) -> Option<Screens> {
        self.screens
    }

    /// Runs the `[vnc]` part that goes with `kind`, before (`Verify`) the backend's step.
    pub(crate) fn before_step(
        &mut self,
        run: &mut Run,
        kind: StepKind,
        iteration: u32,
    ) -> Result<(), StepError> {
        match kind {
            StepKind::Verify => timed(run, kind, iteration, "vnc-type", |r| self.typed(r)),
            _ => Ok(()),
        }
    }

    /// Runs the `[vnc]` part that goes with `kind`, after (`WaitReady`, `Restore`) the
    /// backend's step.
    pub(crate) fn after_step(
        &mut self,
        run: &mut Run,
        kind: StepKind,
        iteration: u32,
    ) -> Result<(), StepError> {
        match kind {
            StepKind::WaitReady => timed(run, kind, iteration, "vnc-before", |r| self.before(r)),
            StepKind::Restore => timed(run, kind, iteration, "vnc-restored", |r| self.restored(r)),
            _ => Ok(()),
        }
    }
}

/// While a restored container is frozen: its desktop must not answer a VNC client (the
/// connection waits in the listen queue of a server that does not run).
pub(crate) fn frozen_probe(run: &mut Run, iteration: u32) -> Result<(), StepError> {
    let Some(v) = run.sc.vnc.clone() else {
        return Ok(());
    };
    timed(
        run,
        StepKind::Restore,
        iteration,
        "vnc-frozen",
        |r| match RfbClient::connect(&r.work.join(&v.socket), FROZEN_PROBE) {
            Err(RfbError::Timeout { .. }) => Ok(()),
            Ok(c) => Err(VncStepError::FrozenAnswered {
                desktop: c.name().to_string(),
            }),
            Err(e) => Err(VncStepError::Probe(e)),
        },
    )
}

/// Runs `body` as the sub-step `kind:what` of run.json's `steps`.
fn timed(
    run: &mut Run,
    kind: StepKind,
    iteration: u32,
    what: &str,
    body: impl FnOnce(&mut Run) -> Result<(), VncStepError>,
) -> Result<(), StepError> {
    let t = Instant::now();
    let res = body(run);
    run.substeps.push(StepRecord {
        step: format!("{}:{what}", kind.as_str()),
        iteration,
        ms: t.elapsed().as_millis() as u64,
        ok: res.is_ok(),
    });
    res.map_err(|e| StepError::fail(kind, e.to_string()))
}

impl Desktop {
    fn before(&mut self, run: &mut Run) -> Result<(), VncStepError> {
        let v = &self.opts.clone();
        let deadline = Instant::now() + run.step_budget();
        let mut client = connect(run, v, deadline)?;
        settle(&mut client, deadline, "the desktop to be drawn")?;
        type_keys(&mut client, v, &v.type_before)?;
        let frame = settle(&mut client, deadline, "the typed keys to show")?;
        let path = save(run, &frame, BEFORE_PNG)?;
        let screens = self.screens.get_or_insert_with(Screens::default);
        screens.before = Some(path);
        screens.max_diff_pixels = v.max_diff_pixels;
        self.before = Some(frame);
        Ok(())
    }

    fn restored(&mut self, run: &mut Run) -> Result<(), VncStepError> {
        let v = &self.opts.clone();
        let deadline = Instant::now() + run.step_budget();
        let mut client = connect(run, v, deadline)?;
        let frame = settle(&mut client, deadline, "the restored desktop to be drawn")?;
        drop(client);
        let path = save(run, &frame, RESTORED_PNG)?;
        let before = self.before.clone().ok_or(VncStepError::NoScreenBefore)?;
        let d = frame::diff(&before, &frame);
        let diff_path = save(run, &frame::diff_image(&before, &frame), DIFF_PNG)?;
        let screens = self.screens.get_or_insert_with(Screens::default);
        screens.restored = Some(path);
        screens.diff_image = Some(diff_path);
        screens.restore_diff = Some(d.clone());
        self.restored = Some(frame);
        if d.differing > v.max_diff_pixels {
            return Err(VncStepError::RestoredDiffers {
                differing: d.differing,
                total: d.total,
                within: bbox_text(&d),
                max: v.max_diff_pixels,
            });
        }
        Ok(())
    }

    fn typed(&mut self, run: &mut Run) -> Result<(), VncStepError> {
        let v = &self.opts.clone();
        if v.type_after.is_empty() {
            return Ok(());
        }
        let deadline = Instant::now() + run.step_budget();
        let mut client = connect(run, v, deadline)?;
        let start = match self.restored.clone().or_else(|| self.before.clone()) {
            Some(f) => f,
            None => settle(&mut client, deadline, "the desktop to be drawn")?,
        };
        type_keys(&mut client, v, &v.type_after)?;
        let frame = settle(&mut client, deadline, "the typed keys to show")?;
        drop(client);
        let path = save(run, &frame, TYPED_PNG)?;
        let d = frame::diff(&start, &frame);
        let screens = self.screens.get_or_insert_with(Screens::default);
        screens.typed = Some(path);
        screens.typing_diff = Some(d.clone());
        if d.differing == 0 {
            return Err(VncStepError::NothingTyped {
                keys: v.type_after.clone(),
            });
        }
        if let (Some(file), Some(want)) = (&v.expect_file, &v.expect_text) {
            wait_for_text(&run.work.join(file), want, FILE_WAIT)?;
        }
        Ok(())
    }
}

/// Connects, retrying while the socket is not there or refuses (a restored server may take
/// a moment to listen again).
fn connect(run: &Run, v: &VncOptions, deadline: Instant) -> Result<RfbClient, VncStepError> {
    let socket = run.work.join(&v.socket);
    loop {
        match RfbClient::connect(&socket, IO_TIMEOUT) {
            Ok(c) => return Ok(c),
            Err(RfbError::Connect { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Screenshots until two in a row are the same and the screen shows more than its
/// background; returns the last one.
fn settle(
    client: &mut RfbClient,
    deadline: Instant,
    what: &'static str,
) -> Result<Frame, VncStepError> {
    let mut last = client.screenshot()?;
    loop {
        std::thread::sleep(SETTLE_INTERVAL);
        let next = client.screenshot()?;
        let drawn = next.foreground_pixels() >= MIN_FOREGROUND;
        if next == last && drawn {
            return Ok(next);
        }
        if Instant::now() > deadline {
            return Err(VncStepError::NotSettled {
                what,
                screen: if drawn {
                    "kept changing"
                } else {
                    "stayed empty"
                },
                pixels: next.foreground_pixels(),
            });
        }
        last = next;
    }
}

/// Moves the pointer onto the desktop (focus follows it), then types `keys`.
fn type_keys(client: &mut RfbClient, v: &VncOptions, keys: &str) -> Result<(), VncStepError> {
    if keys.is_empty() {
        return Ok(());
    }
    let keysyms = rfb::parse_keys(keys)?;
    let [x, y] = v
        .pointer
        .unwrap_or([client.width() / 2, client.height() / 2]);
    client.pointer(x, y, 0)?;
    Ok(client.type_keys(&keysyms)?)
}

/// Writes `frame` as `name` in the working directory; returns its path in the run
/// directory, where the scenario's files are kept.
fn save(run: &Run, frame: &Frame, name: &str) -> Result<String, VncStepError> {
    frame.write_png(&run.work.join(name))?;
    Ok(Path::new("scenarios")
        .join(&run.sc.name)
        .join(name)
        .display()
        .to_string())
}

fn bbox_text(d: &frame::Diff) -> String {
    match d.bbox {
        Some([x, y, w, h]) => format!(" within {w}x{h} at {x},{y}"),
        None => " (the screens differ in size)".into(),
    }
}

/// Waits up to `limit` for the file at `path` to hold exactly `want`.
fn wait_for_text(path: &Path, want: &str, limit: Duration) -> Result<(), VncStepError> {
    let end = Instant::now() + limit;
    loop {
        let found = std::fs::read_to_string(path);
        match found {
            Ok(text) if text == want => return Ok(()),
            _ if Instant::now() < end => std::thread::sleep(Duration::from_millis(200)),
            Ok(found) => {
                return Err(VncStepError::WrongText {
                    path: path.to_path_buf(),
                    found,
                    want: want.to_string(),
                })
            }
            Err(source) => {
                return Err(VncStepError::NotWritten {
                    path: path.to_path_buf(),
                    source,
                    want: want.to_string(),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bbox_in_words() {
        let d = frame::Diff {
            differing: 12,
            total: 100,
            bbox: Some([3, 4, 5, 6]),
        };
        assert_eq!(bbox_text(&d), " within 5x6 at 3,4");
        let d = frame::Diff {
            differing: 100,
            total: 100,
            bbox: None,
        };
        assert_eq!(bbox_text(&d), " (the screens differ in size)");
    }

    #[test]
    fn the_expected_file_is_waited_for_and_named_when_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("notes.txt");
        let limit = Duration::from_millis(300);
        let missing = wait_for_text(&p, "abc\n", limit).unwrap_err().to_string();
        assert!(missing.contains("notes.txt was not written"), "{missing}");
        std::fs::write(&p, "abd\n").unwrap();
        let wrong = wait_for_text(&p, "abc\n", limit).unwrap_err().to_string();
        assert!(
            wrong.ends_with("notes.txt holds \"abd\\n\", expected \"abc\\n\""),
            "{wrong}"
        );
        std::fs::write(&p, "abc\n").unwrap();
        wait_for_text(&p, "abc\n", limit).unwrap();
    }
}
