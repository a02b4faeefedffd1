//! One pair of cells: the source's and the target's guests started, joined by their private
//! link, and every scenario moved from one to the other in the pair's mode, its result
//! recorded as one cell of run.json (the target's, with the source named).

use super::guest::{Lost, MoveGuest};
use super::verdict::{merged, FirstFailure, Measured};
use crate::guest::agent::GuestPlan;
use crate::host::vm_run::recorder::CellRecorder;
use crate::host::vm_run::run_cell::{built_criu, report_of};
use crate::host::vm_run::{Cell, GUEST_DIR};
use crate::model::migration::{
    unmovable, Fault, MoveCommand, MoveMode, MovePlan, MoveReport, Role,
};
use crate::model::outcome::{Failure, Outcome, ScenarioResult};
use crate::model::scenario::Scenario;
use crate::report::progress::{Progress, Reporter};
use crate::results::run::{CellReport, PairInfo, ResultsError, RunDir};
use std::path::Path;
use std::time::{Duration, Instant};

/// Extra time the host gives a command beyond the scenario's own limit.
const GRACE: Duration = Duration::from_secs(30);
/// The most a handoff may hold when the host copies it.
const MAX_HANDOFF: u64 = 4 << 30;

/// A pair of cells and how processes move between them.
pub struct Pair<'a> {
    pub source: &'a Cell,
    pub target: &'a Cell,
    pub mode: MoveMode,
    /// A fault put in the way of every move.
    pub fault: Option<Fault>,
    /// The pair's folder in the run directory (`""` for the run's one pair, `pairs/N` in a
    /// matrix): its guests' files are under `<dir>/source/` and `<dir>/target/`.
    pub dir: String,
}

impl Pair<'_> {
    /// A guest's folder, relative to the run directory.
    fn side_dir(&self, side: &str) -> String {
        match self.dir.is_empty() {
            true => side.to_string(),
            false => format!("{}/{side}", self.dir),
        }
    }
}

/// The id of a pair's cell: both cells' ids and the mode.
pub fn pair_id(source: &str, target: &str, mode: MoveMode) -> String {
    format!("{source} -> {target} ({mode})")
}

/// The pair's report before any guest: the target's cell, the source named.
fn pair_report(p: &Pair) -> CellReport {
    let src = report_of(p.source);
    let mut r = report_of(p.target);
    r.id = pair_id(&p.source.id, &p.target.id, p.mode);
    r.notes = p
        .source
        .notes
        .iter()
        .map(|n| format!("source: {n}"))
        .chain(p.target.notes.iter().map(|n| format!("target: {n}")))
        .collect();
    r.migration = Some(PairInfo {
        mode: p.mode.to_string(),
        source_id: p.source.id.clone(),
        target_id: p.target.id.clone(),
        source_kernel: src.kernel,
        source_userland: src.userland,
        source_cpu: p.source.cpu.clone(),
    });
    r
}

/// Moves each of `scenarios` from the source's guest to the target's, recording each result.
pub fn run_pair(
    p: &Pair,
    scenarios: &[Scenario],
    run: &mut RunDir,
    reporter: &mut dyn Reporter,
) -> Result<(), ResultsError> {
    let mut rec = CellRecorder::start(run, reporter, pair_report(p))?;
    let mut movable = Vec::new();
    for sc in scenarios {
        match unmovable(sc) {
            None => movable.push(sc.clone()),
            Some(why) => rec.decided(vec![skipped(sc, why)]),
        }
    }
    let (movable, skipped) = crate::model::requirements::partition(&movable, &p.source.facts());
    rec.decided(skipped);
    let (mut remaining, skipped) =
        crate::model::requirements::partition(&movable, &p.target.facts());
    rec.decided(skipped);
    if remaining.is_empty() {
        return rec.save();
    }
    let started = Instant::now();
    let guests = start_guests(p, &remaining, &rec.run.dir);
    let (mut src, mut dst) = match guests {
        Ok(g) => g,
        Err(lost) => {
            return rec.fail_all(
                &mut remaining,
                lost.outcome,
                "boot",
                &lost.message,
                &lost.lines,
            )
        }
    };
    note_guests(&mut rec, &src, &dst, started);
    let all = remaining.clone();
    for (index, sc) in all.iter().enumerate() {
        rec.progress(&Progress::ScenarioStarted {
            name: sc.name.clone(),
        });
        match move_one(p, index, sc, &mut src, &mut dst) {
            Ok(mut r) => {
                attach_trouble(&mut r, &mut src, &mut dst);
                remaining.retain(|s| s.name != sc.name);
                rec.decided(vec![r]);
                rec.save()?;
            }
            Err(lost) => {
                remaining.sort_by_key(|s| s.name != sc.name);
                let mut first = vec![remaining.remove(0)];
                rec.fail_all(&mut first, lost.outcome, "move", &lost.message, &lost.lines)?;
                let why = format!("not moved: {}", lost.message);
                rec.fail_all(&mut remaining, Outcome::Error, "move", &why, &[])?;
                break;
            }
        }
    }
    src.end();
    dst.end();
    for (side, dir) in [
        ("source", &rec.run.dir.join(p.side_dir("source"))),
        ("target", &rec.run.dir.join(p.side_dir("target"))),
    ] {
        for n in crate::host::guest_share::sweep(&dir.join(GUEST_DIR)) {
            rec.cell().notes.push(format!("{side}: {n}"));
        }
    }
    rec.save()
}

/// A scenario that does not move, and why.
fn skipped(sc: &Scenario, why: String) -> ScenarioResult {
    let mut r = ScenarioResult::without_steps(&sc.name, Outcome::Skip, Failure::default());
    r.failure = None;
    r.detail = Some(why);
    r.tags = sc.tags.clone();
    r
}

/// Both guests started (each sending to the other's socket) and ready.
fn start_guests(
    p: &Pair,
    scenarios: &[Scenario],
    run_dir: &Path,
) -> Result<(MoveGuest, MoveGuest), Lost> {
    let sockets = |what: &str| {
        crate::host::resume::sockets_dir().map_err(|e| Lost {
            outcome: Outcome::Error,
            message: format!("cannot make a folder for the {what}'s sockets: {e}"),
            lines: Vec::new(),
        })
    };
    let (s_sock, t_sock) = (sockets("source")?, sockets("target")?);
    let (s_path, t_path) = (s_sock.path().to_path_buf(), t_sock.path().to_path_buf());
    let plan = |cell: &Cell, role| GuestPlan {
        scenarios: scenarios.to_vec(),
        keep_images: cell.keep_images,
        probes: vec![crate::model::migration::CPU_FLAGS_PROBE
            .iter()
            .map(|s| s.to_string())
            .collect()],
        built_criu: built_criu(cell),
        moves: Some(MovePlan { role, mode: p.mode }),
    };
    let started = Instant::now();
    let mut src = MoveGuest::start(
        p.source,
        Role::Source,
        &run_dir.join(p.side_dir("source")),
        &plan(p.source, Role::Source),
        s_sock,
        &t_path,
    )?;
    let mut dst = MoveGuest::start(
        p.target,
        Role::Target,
        &run_dir.join(p.side_dir("target")),
        &plan(p.target, Role::Target),
        t_sock,
        &s_path,
    )?;
    src.wait_ready(started, p.source.boot_timeout)?;
    dst.wait_ready(started, p.target.boot_timeout)?;
    Ok((src, dst))
}

/// The guests' start in the pair's report.
fn note_guests(rec: &mut CellRecorder, src: &MoveGuest, dst: &MoveGuest, started: Instant) {
    let cell = rec.cell();
    cell.qemu.boots = 2;
    cell.qemu.resumes = u32::from(src.resumed) + u32::from(dst.resumed);
    let ready = dst.ready_ms.max(src.ready_ms);
    match dst.resumed {
        true => cell.resume_ms = ready,
        false => cell.boot_ms = ready,
    }
    for (side, g) in [("source", src), ("target", dst)] {
        if let Some(k) = &g.kernel_release {
            cell.notes.push(format!("{side}: kernel {k}"));
        }
        cell.notes
            .extend(g.notes.iter().map(|n| format!("{side}: {n}")));
    }
    let ms = started.elapsed().as_millis() as u64;
    let criu = cell.userland.criu.clone();
    rec.progress(&Progress::AgentReady {
        ms,
        resumed: dst.resumed,
        kernel: dst.kernel_release.clone().unwrap_or_default(),
        criu,
    });
}

/// Kernel trouble either console showed while the scenario moved.
fn attach_trouble(r: &mut ScenarioResult, src: &mut MoveGuest, dst: &mut MoveGuest) {
    let mut lines = Vec::new();
    for (side, g) in [("source", src), ("target", dst)] {
        lines.extend(
            g.console
                .take_trouble()
                .into_iter()
                .map(|(_, l)| format!("{side}: {l}")),
        );
    }
    if lines.is_empty() {
        return;
    }
    let f = r.failure.get_or_insert_with(|| Failure {
        step: "scenario".into(),
        message: "a kernel reported trouble while the scenario moved".into(),
        ..Failure::default()
    });
    f.console_tail = lines;
    if r.outcome == Outcome::Pass {
        r.outcome = Outcome::Fail;
    }
}

/// One command to one guest and its answer; its failure becomes the move's first when
/// there is none yet.
fn ask(
    g: &mut MoveGuest,
    cmd: MoveCommand,
    limit: Duration,
    first: &mut Option<FirstFailure>,
) -> Result<MoveReport, Lost> {
    g.send(cmd)?;
    let r = g.answer(cmd, limit)?;
    if first.is_none() {
        *first = FirstFailure::of(g.role.as_str(), &r);
    }
    Ok(r)
}

/// Moves scenario `index` from `src` to `dst`.
fn move_one(
    p: &Pair,
    index: usize,
    sc: &Scenario,
    src: &mut MoveGuest,
    dst: &mut MoveGuest,
) -> Result<ScenarioResult, Lost> {
    let mode = p.mode;
    let fault = |f: Fault| p.fault == Some(f);
    let limit = Duration::from_secs(sc.timeout_s) + GRACE;
    let t0 = Instant::now();
    let mut first = None;
    let served = !mode.page_servers().is_empty();
    if served {
        ask(dst, MoveCommand::Serve { index }, limit, &mut first)?;
    }
    let mut source_half = None;
    let mut target_half = None;
    let mut m = Measured::default();
    let mut restore_sent = None;
    let mut dump = None;
    let started = first.is_none();
    if started {
        ask(src, MoveCommand::Start { index }, limit, &mut first)?;
        if first.is_none() && served && fault(Fault::LinkCut) {
            cut(dst, &mut first);
        }
        if first.is_none() {
            let sent = Instant::now();
            let cmd = MoveCommand::Dump { index };
            if served && fault(Fault::PageServerKilled) {
                src.send(cmd)?;
                kill_servers(dst, index, &mut first)?;
            }
            let d = match served && fault(Fault::PageServerKilled) {
                true => src.answer(cmd, limit)?,
                false => ask(src, cmd, limit, &mut first)?,
            };
            if first.is_none() {
                first = FirstFailure::of("source", &d);
            }
            m.link_bytes = d.link_bytes;
            dump = Some((sent, Instant::now(), d.criu_ms.map(|c| c + d.handoff_ms)));
        }
        if first.is_none() {
            match copy_handoff(&src.dir, &dst.dir, index) {
                Ok(bytes) if fault(Fault::CorruptImages) => {
                    m.host_bytes = bytes;
                    corrupt(&dst.dir, index, &mut first);
                }
                Ok(bytes) => m.host_bytes = bytes,
                Err(message) => first = Some(host_failure("handoff", message)),
            }
        }
    }
    if first.is_none() && mode == MoveMode::Lazy && fault(Fault::LinkCut) {
        cut(dst, &mut first);
    }
    if first.is_none() || served {
        let cmd = match first.is_none() {
            true => MoveCommand::Restore { index },
            false => MoveCommand::Finish { index, keep: false },
        };
        restore_sent = Some(Instant::now());
        let r = match ask(dst, cmd, limit, &mut first) {
            Ok(r) => r,
            Err(lost) if started => return Err(rescue(src, index, limit, lost)),
            Err(lost) => return Err(lost),
        };
        target_half = r.half.map(|h| adopted(*h, &p.side_dir("target")));
        if mode == MoveMode::Lazy {
            // The lazy dump's own statistics do not count its pages: the target's daemon does.
            let lazy = target_half.iter().flat_map(|h| &h.criu_runs);
            m.link_bytes = lazy.filter_map(|c| c.lazy_pages).sum::<u64>() * 4096;
        }
    }
    let restored = Instant::now();
    if started {
        // The source ends its part whatever happened after its start.
        let keep = first.is_some();
        let r = ask(src, MoveCommand::Finish { index, keep }, limit, &mut first)?;
        source_half = r.half.map(|h| adopted(*h, &p.side_dir("source")));
    }
    if let (Some((sent, done, criu_ms)), Some(restore_sent)) = (dump, restore_sent) {
        let restore_ms = target_half.as_ref().and_then(|h| {
            h.criu_runs
                .iter()
                .find(|c| c.action == "restore")
                .map(|c| c.lazy_running_ms.unwrap_or(c.ms))
        });
        let gap = restore_sent.saturating_duration_since(done).as_millis() as u64;
        if first.is_none() {
            m.freeze_ms = criu_ms.zip(restore_ms).map(|(d, r)| d + gap + r);
            m.total_ms = Some(restored.saturating_duration_since(sent).as_millis() as u64);
        }
    }
    if fault(Fault::LinkCut) {
        if let Err(e) = dst.set_link(true) {
            return Err(Lost {
                outcome: Outcome::Error,
                message: format!("the target's link could not be mended: {e}"),
                lines: Vec::new(),
            });
        }
    }
    m.duration_ms = t0.elapsed().as_millis() as u64;
    m.cpu_missing = crate::model::migration::missing_cpu_flags(&src.cpu_flags, &dst.cpu_flags);
    Ok(merged(
        sc,
        &mode.to_string(),
        first,
        source_half,
        target_half,
        m,
    ))
}

/// The target was lost mid-move: the source lets its tree go on and verifies it, and the
/// loss says what became of it.
fn rescue(src: &mut MoveGuest, index: usize, limit: Duration, mut lost: Lost) -> Lost {
    let mut ignored = None;
    let fate = ask(
        src,
        MoveCommand::Finish { index, keep: true },
        limit,
        &mut ignored,
    )
    .ok()
    .and_then(|r| r.half)
    .and_then(|h| h.migration)
    .map_or("unknown".to_string(), |m| m.source);
    lost.message = match fate.as_str() {
        "running" => format!(
            "{}; the process goes on on the source (verified)",
            lost.message
        ),
        other => format!("{}; the source's tree: {other}", lost.message),
    };
    lost
}

/// The fault `page-server-killed`: the target's page servers killed while the source's
/// dump (just sent) starts sending to them.
fn kill_servers(
    dst: &mut MoveGuest,
    index: usize,
    first: &mut Option<FirstFailure>,
) -> Result<(), Lost> {
    std::thread::sleep(Duration::from_millis(300));
    let cmd = MoveCommand::KillServers { index };
    dst.send(cmd)?;
    let r = dst.answer(cmd, Duration::from_secs(30))?;
    if r.outcome != Outcome::Pass {
        *first = FirstFailure::of("target", &r);
    }
    Ok(())
}

/// The fault `link-cut`: the target's end of the link cut (QMP `set_link`); when QEMU
/// will not, the move fails there.
fn cut(dst: &mut MoveGuest, first: &mut Option<FirstFailure>) {
    if let Err(e) = dst.set_link(false) {
        *first = Some(host_failure("fault", format!("cannot cut the link: {e}")));
    }
}

/// The fault `corrupt-images`: the handoff's inventory cut short in the target's share.
fn corrupt(dst: &Path, index: usize, first: &mut Option<FirstFailure>) {
    let rel = crate::model::migration::handoff_dir(index);
    let inventory = dst
        .join(GUEST_DIR)
        .join(rel)
        .join("work/images-1/inventory.img");
    let res = std::fs::OpenOptions::new()
        .write(true)
        .open(&inventory)
        .and_then(|f| f.set_len(6));
    if let Err(e) = res {
        *first = Some(host_failure(
            "fault",
            format!("cannot cut {} short: {e}", inventory.display()),
        ));
    }
}

fn host_failure(step: &str, message: String) -> FirstFailure {
    FirstFailure {
        side: "host".into(),
        outcome: Outcome::Error,
        failure: Failure {
            step: step.into(),
            message,
            ..Failure::default()
        },
    }
}

/// A half's paths made relative to the run directory (`source/guest/...`), `dir` being the
/// side's folder.
fn adopted(mut half: ScenarioResult, dir: &str) -> ScenarioResult {
    crate::host::guest_share::adopt_paths(&mut half);
    for p in half.paths_mut() {
        *p = format!("{dir}/{p}");
    }
    half
}

/// Copies scenario `index`'s handoff from the source's share to the target's (the source's
/// copy swept first: no link, no device, nothing huge); returns the bytes copied.
fn copy_handoff(src: &Path, dst: &Path, index: usize) -> Result<u64, String> {
    let rel = crate::model::migration::handoff_dir(index);
    let from = src.join(GUEST_DIR).join(&rel);
    let to = dst.join(GUEST_DIR).join(&rel);
    let _ = crate::host::guest_share::sweep(&src.join(GUEST_DIR));
    let _ = std::fs::remove_dir_all(&to);
    let mut budget = MAX_HANDOFF;
    let res = crate::exec::mover::copy_tree(&from, &to, false, &mut budget);
    let _ = std::fs::remove_dir_all(&from);
    res.map(|()| MAX_HANDOFF - budget).map_err(|e| {
        format!(
            "cannot copy the handoff {} to {}: {e}",
            from.display(),
            to.display()
        )
    })
}
