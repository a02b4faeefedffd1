//! Running a cell's scenarios: the cell's report, the skips decided before any guest, then
//! guest after guest (resumed from the saved ready state, or booted) until every scenario has
//! a result, each recorded as it comes.

use crate::guest::agent::{GuestPlan, PLAN_FILE};
use crate::host::vm_run::prepare::{with_built_criu, Cell, PrepareError};
use crate::host::vm_run::recorder::CellRecorder;
use crate::host::vm_run::session::{Boot, BootEnd};
use crate::model::outcome::Outcome;
use crate::model::scenario::Scenario;
use crate::report::progress::{Progress, Reporter};
use crate::results::run::{CellReport, KernelInfo, QemuInfo, ResultsError, RunDir, UserlandInfo};
use crtest_vm::cache::Cache;
use crtest_vm::kernel::KernelSource;
use crtest_vm::qemu::Accel;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The run directory's folder that the guest sees (9p) and writes: its plan, the scenarios'
/// inputs, and what the scenarios keep (`guest/scenarios/<name>/`). Everything the host
/// writes (run.json, console.log, events, QEMU's logs, reports) is outside it, out of the
/// guest's reach; after each boot the host sweeps it ([`crate::host::guest_share::sweep`]).
pub const GUEST_DIR: &str = "guest";

/// Copies user programs' files into `<run_dir>/inputs/<scenario>/`, where the guest finds them
/// (each was resolved inside its scenario's folder when the scenario was loaded).
fn stage_inputs(scenarios: &[Scenario], run_dir: &Path) -> Result<(), ResultsError> {
    for sc in scenarios {
        let dir = run_dir.join("inputs").join(&sc.name);
        for f in sc.target.files() {
            let dest = dir.join(f.file_name().unwrap_or_default());
            std::fs::create_dir_all(&dir)
                .and_then(|()| crate::model::confine::copy_nofollow(f, &dest).map(|_| ()))
                .map_err(|source| ResultsError::Write { path: dest, source })?;
        }
    }
    Ok(())
}

/// Runs `scenarios` on the cell, adding its report to `run` and saving after each scenario.
pub fn run_cell(
    cell: &Cell,
    scenarios: &[Scenario],
    probes: &[Vec<String>],
    run: &mut RunDir,
    reporter: &mut dyn Reporter,
) -> Result<(), ResultsError> {
    let mut rec = CellRecorder::start(run, reporter, report_of(cell))?;
    if let Some(note) = &cell.accel.why_not_kvm {
        rec.progress(&Progress::AccelNote { note: note.clone() });
    }
    let (remaining, skipped) = crate::model::requirements::partition(scenarios, &cell.facts());
    rec.decided(skipped);
    let (mut remaining, skipped) = crate::zdtm::partition::partition(
        remaining,
        &zdtm_facts(cell),
        cell.zdtm.as_ref().ok_or(NO_ZDTM_BUILD),
    );
    rec.decided(skipped);
    let share = rec.run.dir.join(GUEST_DIR);
    std::fs::create_dir_all(&share).map_err(|source| ResultsError::Write {
        path: share.clone(),
        source,
    })?;
    stage_inputs(&remaining, &share)?;
    // Scenarios of a userland variant run after the others, one boot of its image for all.
    remaining.sort_by(|a, b| a.userland_variant.cmp(&b.userland_variant));
    let mut guests = Guests {
        cell,
        accel: cell.accel.accel,
        probes: probes.to_vec(),
        images: Vec::new(),
        resume_note: None,
    };
    while !remaining.is_empty() || !guests.probes.is_empty() {
        if guests.next(scenarios.len(), &mut remaining, &share, &mut rec)? {
            break;
        }
    }
    let _ = std::fs::remove_file(share.join(PLAN_FILE));
    rec.save()
}

/// What the cell's criu built from a tree is, for the guest's messages.
pub fn built_criu(cell: &Cell) -> Option<String> {
    cell.criu.build.as_ref().map(|b| {
        format!(
            "criu {} built from {} ({})",
            b.version,
            b.tree.display(),
            b.source
        )
    })
}

/// The cell's report before any guest: what was paired.
pub fn report_of(cell: &Cell) -> CellReport {
    CellReport {
        id: cell.id.clone(),
        kernel: KernelInfo {
            release: cell.kernel.release.clone(),
            source: match &cell.kernel.source {
                KernelSource::Debian { package, version } => format!("debian:{package}={version}"),
                KernelSource::Local { path } => path.display().to_string(),
            },
            missing_options: cell.missing_options.clone(),
        },
        userland: UserlandInfo {
            suite: cell.userland.suite.clone(),
            criu: cell.criu.version.clone(),
            criu_source: cell.criu.source.clone(),
            lxc: cell.userland.packages.get("lxc").cloned(),
            oci: Default::default(),
        },
        qemu: QemuInfo {
            accel: cell.accel.accel.as_str().into(),
            version: cell.qemu_version.clone(),
            accel_note: cell.accel.why_not_kvm.clone(),
            boots: 0,
            resumes: 0,
            cpu: cell.cpu.clone(),
        },
        boot_ms: None,
        resume_ms: None,
        prepare_ms: cell.prepare_ms,
        boot_marks: Vec::new(),
        notes: cell.notes.clone(),
        probes: Vec::new(),
        scenarios: Vec::new(),
        migration: None,
        guests: Vec::new(),
    }
}

/// What the zdtm rules ask of a cell.
/// Why a cell skips zdtm scenarios when it has no build of a zdtm tree.
const NO_ZDTM_BUILD: &str = "the cell has no zdtm build (run with --zdtm DIR)";

fn zdtm_facts(cell: &Cell) -> crate::zdtm::known::CellFacts {
    crate::zdtm::known::CellFacts {
        zdtm: cell.zdtm.as_ref().map(|z| z.version.clone()),
        criu: cell.criu.version.clone(),
        kernel: cell.kernel.release.clone(),
        suite: cell.userland.suite.clone(),
    }
}

/// The guests of a cell, one after the other.
struct Guests<'c> {
    cell: &'c Cell,
    accel: Accel,
    /// Commands the next guest runs first (`crtest doctor`).
    probes: Vec<Vec<String>>,
    /// The userland variants' images built so far.
    images: Vec<(String, PathBuf, Packages)>,
    /// Set once saving or resuming failed: the rest of the cell boots.
    resume_note: Option<String>,
}

impl Guests<'_> {
    /// One guest for the next batch of `remaining`; true when the run is to stop (done, or
    /// interrupted).
    fn next(
        &mut self,
        total: usize,
        remaining: &mut Vec<Scenario>,
        share: &Path,
        rec: &mut CellRecorder,
    ) -> Result<bool, ResultsError> {
        let cell = self.cell;
        let variant = remaining.first().and_then(|s| s.userland_variant.clone());
        let mut boot = Boot::new(cell, self.accel, &rec.run.dir);
        if let Some(v) = &variant {
            match variant_image(cell, v, &mut self.images, rec.reporter) {
                Ok((image, packages)) => {
                    boot.rootfs = image;
                    if crate::model::variant::is_oci(v) {
                        // The OCI tools' versions, beside criu's in the cell report.
                        rec.cell().userland.oci = packages
                            .iter()
                            .filter(|(p, _)| crate::results::run::OCI_TOOLS.contains(&p.as_str()))
                            .map(|(p, v)| (p.clone(), v.clone()))
                            .collect();
                    }
                }
                Err(e) => {
                    // Only the variant's scenarios are lost; the others ran already.
                    let (mut lost, rest): (Vec<Scenario>, Vec<Scenario>) =
                        std::mem::take(remaining)
                            .into_iter()
                            .partition(|s| s.userland_variant.as_deref() == Some(v.as_str()));
                    *remaining = rest;
                    let message = format!("userland variant `{v}`: {e}");
                    rec.fail_all(&mut lost, Outcome::Error, "prepare", &message, &[])?;
                    return Ok(false);
                }
            }
        }
        self.resume_or_boot(&mut boot, rec);
        self.write_plan(batch(cell, remaining, &variant), share)?;
        rec.cell().qemu.boots += 1;
        let boots = rec.cell().qemu.boots;
        let end = boot.run(boots, remaining, rec)?;
        // The guest is gone: what it left in its share is made safe for the host to read.
        for note in crate::host::guest_share::sweep(share) {
            rec.guest_note(note);
        }
        if boots > total as u32 + 2 {
            let message = "the guest kept dying between scenarios; giving up";
            rec.fail_all(remaining, Outcome::Error, "boot", message, &[])?;
        }
        Ok(self.after(end, &boot, remaining, rec))
    }

    /// Resumes the guest from the cell's saved ready state (saved now by a first boot)
    /// unless saving or resuming failed once.
    fn resume_or_boot(&mut self, boot: &mut Boot, rec: &mut CellRecorder) {
        let Some(saved) = self.cell.saved_vms.as_ref() else {
            return;
        };
        if self.resume_note.is_some() {
            return;
        }
        match boot.saved_state(saved, &rec.run.dir) {
            Ok(state) => {
                if let Some(s) = state.saved {
                    rec.guest_note(format!(
                        "saved the ready guest ({} MiB in {:.1} s): later guests resume from it",
                        s.bytes >> 20,
                        s.ms as f64 / 1000.0
                    ));
                }
                boot.incoming = Some(state.path);
            }
            Err(why) => self.no_more_resumes(why.to_string(), rec),
        }
    }

    fn no_more_resumes(&mut self, why: String, rec: &mut CellRecorder) {
        let note = format!("guests boot instead of resuming a saved one: {why}");
        rec.guest_note(note.clone());
        self.resume_note = Some(note);
    }

    /// The plan the guest reads from its share: the batch, the probes (once), the criu.
    fn write_plan(&mut self, scenarios: Vec<Scenario>, share: &Path) -> Result<(), ResultsError> {
        let plan = GuestPlan {
            scenarios,
            keep_images: self.cell.keep_images,
            probes: std::mem::take(&mut self.probes),
            built_criu: built_criu(self.cell),
            moves: None,
        };
        let path = share.join(PLAN_FILE);
        std::fs::write(
            &path,
            serde_json::to_string_pretty(&plan).expect("plan serialises"),
        )
        .map_err(|source| ResultsError::Write { path, source })
    }

    /// What the end of a guest means for the next: true when the run stops.
    fn after(
        &mut self,
        end: BootEnd,
        boot: &Boot,
        remaining: &[Scenario],
        rec: &mut CellRecorder,
    ) -> bool {
        match end {
            BootEnd::ResumeFailed(why) if self.resume_note.is_none() => {
                if let Some(state) = &boot.incoming {
                    crate::host::resume::forget(state);
                }
                self.no_more_resumes(why, rec);
                false
            }
            BootEnd::Interrupted(_) => true,
            BootEnd::Done => remaining.is_empty(),
            BootEnd::KvmSilent if self.accel == Accel::Kvm => {
                let note = "the KVM guest printed nothing; falling back to TCG".to_string();
                rec.progress(&Progress::AccelNote { note: note.clone() });
                self.accel = Accel::Tcg;
                let c = rec.cell();
                c.qemu.accel = "tcg".into();
                c.qemu.accel_note = Some(note);
                false
            }
            _ => false,
        }
    }
}

/// The scenarios of the next guest: a scenario that needs a fresh kernel gets a guest of its
/// own (every scenario does with --pristine); the others of the same userland share one.
fn batch(cell: &Cell, remaining: &[Scenario], variant: &Option<String>) -> Vec<Scenario> {
    match remaining.first() {
        Some(first) if first.fresh_kernel || cell.pristine => vec![first.clone()],
        _ => remaining
            .iter()
            .take_while(|s| !s.fresh_kernel && s.userland_variant == *variant)
            .cloned()
            .collect(),
    }
}

/// The image of userland variant `name` of the cell's suite, built (or found in the cache)
/// the first time a batch needs it.
fn variant_image(
    cell: &Cell,
    name: &str,
    built: &mut Vec<(String, PathBuf, Packages)>,
    reporter: &mut dyn Reporter,
) -> Result<(PathBuf, Packages), PrepareError> {
    if let Some((_, image, packages)) = built.iter().find(|(n, ..)| n == name) {
        return Ok((image.clone(), packages.clone()));
    }
    let suite = &cell.userland.suite;
    reporter.on(&Progress::Prepare {
        what: format!("userland {suite}+{name}"),
    });
    let t = Instant::now();
    let cache = Cache::from_env()?;
    let packages = crate::host::vm_run::prepare::variant_packages(name, suite, cell.zdtm.as_ref());
    let userland = crtest_vm::userland::build(&cache, suite, &packages)?;
    let image = match &cell.criu.build {
        None => userland.image.clone(),
        Some(b) => with_built_criu(&cache, &userland, Some(name), b)?,
    };
    reporter.on(&Progress::Prepared {
        what: format!("userland {suite}+{name}"),
        ms: t.elapsed().as_millis() as u64,
    });
    built.push((name.to_string(), image.clone(), userland.packages.clone()));
    Ok((image, userland.packages))
}

/// A userland's installed packages: name -> version.
type Packages = std::collections::BTreeMap<String, String>;
