//! `report.html`: one self-contained page (no script, no external file) showing a run as a
//! table of kernels x userlands. Each cell is coloured by its verdict, shows its counts, the
//! diagnosis of its failures (class, first error line, fix) and its recent trend, and opens
//! (details/summary) onto its scenarios, each failure onto its full report.

use crate::model::outcome::{Failure, Outcome, ScenarioResult, Screens};
use crate::report::history::{self, Entry};
use crate::report::markup::escape;
use crate::report::verdict::{self, CellVerdict, Grid};
use crate::results::run::{CellReport, RunReport};
use std::fmt::Write;

/// How many runs a cell's trend chart shows.
pub const TREND_RUNS: usize = 20;

/// A relative link target made safe for an href: no scheme, each path segment
/// percent-encoded where needed.
fn href(path: &str) -> String {
    let mut out = String::new();
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"/._-~+".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

const STYLE: &str = "
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em;margin-bottom:.2em}
.meta{color:#555;margin:.2em 0 1em}
table.matrix{border-collapse:collapse}
table.matrix>tbody>tr>th,table.matrix>thead>tr>th{background:#f1f3f5;padding:.5em;border:1px solid #ccc;text-align:left;vertical-align:top}
table.matrix>tbody>tr>td{border:1px solid #ccc;padding:.5em;vertical-align:top;min-width:16em;max-width:34em}
.v-pass{background:#d4edda}.v-partial{background:#fff3cd}.v-fail{background:#f8d7da}
.v-error{background:#e8daef}.v-skip{background:#e9ecef}.v-empty{background:#fafafa;color:#888}
.verdict{font-weight:bold;text-transform:uppercase;font-size:.9em}
.small,.versions{font-size:.8em;color:#555}
ul.diag{margin:.3em 0;padding-left:1.1em}
ul.diag li{margin-bottom:.3em}
code,pre{font-family:ui-monospace,monospace;font-size:.85em}
pre{white-space:pre-wrap;word-break:break-all;background:#fff;border:1px solid #ddd;padding:.3em;margin:.2em 0}
.fix{font-size:.85em}
details{margin-top:.3em}
summary{cursor:pointer}
table.sc{border-collapse:collapse;background:#fff;font-size:.85em;width:100%}
table.sc td,table.sc th{border:1px solid #ddd;padding:.2em .4em;text-align:left;vertical-align:top}
.o{font-weight:bold;padding:0 .3em;border-radius:3px}
.o-pass,.o-xfail{background:#c3e6cb}.o-flaky{background:#ffeeba}.o-fail,.o-xpass,.o-timeout,.o-panic{background:#f5c6cb}
.o-error{background:#d7bde2}.o-skip{background:#dee2e6}
dl.failure{margin:.2em 0}dl.failure dt{font-weight:bold;float:left;clear:left;width:6.5em}
dl.failure dd{margin-left:7em}
.legend span{display:inline-block;padding:.1em .5em;margin-right:.4em;border:1px solid #ccc}
.screens{display:flex;flex-wrap:wrap;gap:.6em;margin:.3em 0}.screens figure{margin:0}
.screens img{width:320px;border:1px solid #ccc;display:block}.screens figcaption{font-size:.8em;color:#555}
.filters{margin:.4em 0}.filters label{margin-right:.6em}
td.why{max-width:40em;font-family:ui-monospace,monospace;font-size:.9em}
";

/// The page for a run, with each cell's trend from `history`.
pub fn render(report: &RunReport, history: &[Entry]) -> String {
    let grid = verdict::grid(report);
    let mut h = String::new();
    let title = format!("crtest {}", report.run_id);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>{}</title><style>{STYLE}</style></head><body>\n",
        escape(&title)
    );
    let what = match migrations(report) {
        true => "Migrations, from &times; to",
        false => "Kernels &times; userlands",
    };
    let _ = writeln!(h, "<h1>{what}: {}</h1>", escape(&report.run_id));
    h.push_str(&meta(report));
    h.push_str(
        "<p class=\"legend\"><span class=\"v-pass\">pass</span><span class=\"v-partial\">partial\
         </span><span class=\"v-fail\">fail</span><span class=\"v-error\">error (could not \
         run)</span><span class=\"v-skip\">skipped</span><span class=\"v-empty\">not run</span>\
         &nbsp; trend over the last runs: <b style=\"color:#2ca02c\">passed</b>, median \
         <b style=\"color:#1f77b4\">checkpoint</b> and <b style=\"color:#ff7f0e\">restore</b> \
         time</p>\n",
    );
    h.push_str(&matrix_table(report, &grid, history));
    h.push_str(&why_section(report, &grid));
    h.push_str(&scenario_section(report));
    let _ = writeln!(h, "<script>{SCRIPT}</script>");
    h.push_str("</body></html>\n");
    h
}

fn meta(report: &RunReport) -> String {
    let all: Vec<ScenarioResult> = report
        .cells
        .iter()
        .flat_map(|c| c.scenarios.iter().cloned())
        .collect();
    let mut parts = vec![
        format!("started {}", report.started_at),
        format!("crtest {}", report.crtest_version),
        format!("{} cells", report.cells.len()),
        verdict::counts_text(&all),
    ];
    if !report.finished {
        parts.push("UNFINISHED".into());
    }
    if let Some(m) = &report.matrix {
        if !m.scenarios.is_empty() {
            parts.push(format!("{} scenarios asked for", m.scenarios.len()));
        }
        if let Some(s) = &m.shard {
            parts.push(format!("shard {s}"));
        }
        if !m.merged_from.is_empty() {
            parts.push(format!("merged from {}", m.merged_from.join(", ")));
        }
    }
    format!(
        "<p class=\"meta\">{}</p>\n",
        parts
            .iter()
            .map(|p| escape(p))
            .collect::<Vec<_>>()
            .join(" &middot; ")
    )
}

/// The cell of a column or row whose versions go in its header.
fn first_cell(
    report: &RunReport,
    indices: impl Iterator<Item = Option<usize>>,
) -> Option<&CellReport> {
    verdict::representative(report, indices)
}

/// A run of `crtest migrate`: its cells are pairs, its table from (rows) x to (columns).
fn migrations(report: &RunReport) -> bool {
    !report.cells.is_empty() && report.cells.iter().all(|c| c.migration.is_some())
}

fn matrix_table(report: &RunReport, grid: &Grid, history: &[Entry]) -> String {
    let corner = match migrations(report) {
        true => "from \\ to",
        false => "kernel \\ userland",
    };
    let mut h = format!("<table class=\"matrix\"><thead><tr><th>{corner}</th>");
    for (ui, u) in grid.userlands.iter().enumerate() {
        let c = first_cell(report, grid.cells.iter().map(|row| row[ui]));
        let versions = c.map_or(String::new(), |c| {
            format!(
                "criu {}, lxc {}{}",
                c.userland.criu_text(),
                c.userland.lxc.as_deref().unwrap_or("-"),
                c.userland.oci_text()
            )
        });
        let _ = write!(
            h,
            "<th>{}<div class=\"versions\">{}</div></th>",
            escape(u),
            escape(&versions)
        );
    }
    h.push_str("</tr></thead><tbody>\n");
    for (ki, k) in grid.kernels.iter().enumerate() {
        let c = first_cell(report, grid.cells[ki].iter().copied());
        let mut versions = c.map_or(String::new(), |c| match &c.migration {
            // A pair's row is its source.
            Some(pair) => format!(
                "{}, criu {}",
                pair.source_kernel.release,
                pair.source_userland.criu_text()
            ),
            None => c.kernel.release.clone(),
        });
        let missing = c.map_or(0, |c| c.kernel.missing_options.len());
        if missing > 0 {
            versions.push_str(&format!(", {missing} required options missing"));
        }
        let _ = write!(
            h,
            "<tr><th>{}<div class=\"versions\"{}>{}</div></th>",
            escape(k),
            c.map_or(String::new(), |c| format!(
                " title=\"{}\"",
                escape(&c.kernel.missing_options.join("\n"))
            )),
            escape(&versions)
        );
        for ui in 0..grid.userlands.len() {
            match grid.cells[ki][ui] {
                Some(i) => h.push_str(&cell_td(report, &report.cells[i], history)),
                None => h.push_str("<td class=\"v-empty\">not run</td>\n"),
            }
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</tbody></table>\n");
    h
}

fn cell_dir(report: &RunReport, cell: &CellReport) -> String {
    report
        .matrix_cell(&cell.id)
        .and_then(|m| m.dir.clone())
        .unwrap_or_default()
}

/// A result's file path as the report links it: paths are relative to the run, and a
/// cell's own report may already have them inside its directory `dir`.
fn in_cell(dir: &str, path: &str) -> String {
    if !dir.is_empty() && path.starts_with(dir) {
        path.to_string()
    } else {
        join_dir(dir, path)
    }
}

fn join_dir(dir: &str, file: &str) -> String {
    if dir.is_empty() {
        file.to_string()
    } else {
        format!("{dir}/{file}")
    }
}

fn cell_td(report: &RunReport, cell: &CellReport, history: &[Entry]) -> String {
    let v = verdict::verdict(&cell.scenarios);
    let class = match v {
        CellVerdict::Empty => "v-empty".to_string(),
        v => format!("v-{}", v.as_str()),
    };
    let mut h = format!(
        "<td class=\"{class}\" id=\"{}\"><div class=\"verdict\">{}</div><div>{}</div>",
        escape(&cell.id),
        escape(v.as_str()),
        escape(&verdict::counts_text(&cell.scenarios))
    );
    let diags = verdict::diagnoses(cell);
    if !diags.is_empty() {
        h.push_str("<ul class=\"diag\">");
        for d in &diags {
            h.push_str("<li>");
            match &d.class {
                Some(c) if c != "unknown" => {
                    let _ = write!(h, "<b>{}</b>: {}", escape(c), escape(&d.title));
                }
                _ => {
                    let _ = write!(h, "<b>{}</b>", escape(&d.title));
                }
            }
            let _ = write!(
                h,
                " <span class=\"small\">({})</span>",
                escape(&d.scenarios.join(", "))
            );
            if let Some(l) = &d.first_error_line {
                let _ = write!(h, "<pre>{}</pre>", escape(l));
            }
            if let Some(f) = &d.fix {
                let _ = write!(h, "<div class=\"fix\">fix: {}</div>", escape(f));
            }
            h.push_str("</li>");
        }
        h.push_str("</ul>");
    }
    let boot = cell.boot_ms.map_or("no boot".to_string(), |ms| {
        format!("boot {:.1} s", ms as f64 / 1000.0)
    });
    let _ = write!(
        h,
        "<div class=\"small\">{}, {}, {} boot(s)</div>",
        escape(&boot),
        escape(&cell.qemu.accel),
        cell.qemu.boots
    );
    let points = history::trend(
        history,
        &report.cell_key(cell),
        Some(&report.run_id),
        TREND_RUNS,
    );
    h.push_str(&history::svg(&points));
    h.push_str(&cell_details(report, cell));
    h.push_str("</td>\n");
    h
}

/// The order of the scenario table: what broke first, then expected failures with their
/// reasons, then skips, then passes.
fn rank(o: Outcome) -> u8 {
    match o {
        Outcome::Panic => 0,
        Outcome::Fail => 1,
        Outcome::Xpass => 2,
        Outcome::Timeout => 3,
        Outcome::Error => 4,
        Outcome::Flaky => 5,
        Outcome::Xfail => 6,
        Outcome::Skip => 7,
        Outcome::Pass => 8,
    }
}

/// Every scenario of every cell in one table, failures first, with filters by outcome and
/// tag; a failure's report, an xfail's reason and a desktop's screenshots under its row.
fn scenario_section(report: &RunReport) -> String {
    let mut rows: Vec<(&CellReport, &ScenarioResult)> = report
        .cells
        .iter()
        .flat_map(|c| c.scenarios.iter().map(move |s| (c, s)))
        .collect();
    rows.sort_by_key(|(_, s)| rank(s.outcome));
    let mut outcomes: Vec<(Outcome, usize)> = Vec::new();
    let mut tags: Vec<&str> = Vec::new();
    for (_, s) in &rows {
        match outcomes.iter_mut().find(|(o, _)| *o == s.outcome) {
            Some((_, n)) => *n += 1,
            None => outcomes.push((s.outcome, 1)),
        }
        for t in &s.tags {
            if !tags.contains(&t.as_str()) {
                tags.push(t);
            }
        }
    }
    tags.sort_unstable();
    let mut h =
        String::from("<h2 id=\"scenarios\">Scenarios</h2>\n<div class=\"filters\">outcome: ");
    for (o, n) in &outcomes {
        let o = o.as_str();
        let _ = write!(
            h,
            "<label><input type=\"checkbox\" data-outcome=\"{o}\" checked> \
             <span class=\"o o-{o}\">{o}</span> {n}</label> "
        );
    }
    h.push_str("&nbsp; tag: <select id=\"tag\"><option value=\"\">any</option>");
    for t in &tags {
        let _ = write!(h, "<option>{}</option>", escape(t));
    }
    let _ = writeln!(
        h,
        "</select> &nbsp; <span id=\"shown\">{}</span> of {} shown</div>",
        rows.len(),
        rows.len()
    );
    h.push_str(
        "<table class=\"sc\" id=\"scenario-table\"><thead><tr><th>outcome</th><th>scenario</th>\
         <th>cell</th><th>tags</th><th>s</th><th>ready ms</th><th>checkpoint ms</th>\
         <th>restore ms</th><th>verify ms</th><th>class</th><th>why</th></tr></thead><tbody>\n",
    );
    for (cell, s) in rows {
        let o = s.outcome.as_str();
        let data = format!(
            "data-outcome=\"{o}\" data-cell=\"{}\" data-tags=\" {} \"",
            escape(&cell.id),
            escape(&s.tags.join(" "))
        );
        let class = s
            .failure
            .as_ref()
            .and_then(|f| f.class.as_deref())
            .unwrap_or("");
        let why = match (&s.failure, &s.detail) {
            (Some(f), _) if s.outcome != Outcome::Skip => f
                .first_error_line
                .as_deref()
                .unwrap_or(&f.message)
                .to_string(),
            (_, Some(d)) => d.clone(),
            _ => String::new(),
        };
        let _ = writeln!(
            h,
            "<tr class=\"sc-row\" {data}><td><span class=\"o o-{o}\">{o}</span></td><td>{}</td>\
             <td class=\"small\">{}</td><td class=\"small\">{}</td><td>{:.1}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"why\">{}</td></tr>",
            escape(&s.name),
            escape(&cell.id),
            escape(&s.tags.join(", ")),
            s.duration_ms as f64 / 1000.0,
            ms(s.phases.ready_ms),
            ms(s.phases.checkpoint_ms),
            ms(s.phases.restore_ms),
            ms(s.phases.verify_ms),
            escape(class),
            escape(&why),
        );
        let dir = cell_dir(report, cell);
        let mut extra = String::new();
        if let Some(sc) = &s.screens {
            extra.push_str(&screens_figure(sc, &dir));
        }
        if !s.attempts.is_empty() {
            let _ = write!(
                extra,
                "<div class=\"small\">attempts: {}</div>",
                s.attempts
                    .iter()
                    .map(|a| format!("<span class=\"o o-{0}\">{0}</span>", a.outcome.as_str()))
                    .collect::<Vec<_>>()
                    .join(" ")
            );
        }
        if let (true, Some(f)) = (
            s.outcome.is_bad() || s.outcome == Outcome::Flaky,
            &s.failure,
        ) {
            extra.push_str(&failure_details(f, &dir, &s.artifacts));
        }
        if !extra.is_empty() {
            let _ = writeln!(
                h,
                "<tr class=\"sc-more\" {data}><td></td><td colspan=\"10\">{extra}</td></tr>"
            );
        }
    }
    h.push_str("</tbody></table>\n");
    h
}

/// The filters of the scenario table: outcome boxes and the tag choice hide rows; the page's
/// address may preset them (`#outcome=fail,xfail&tag=files`), so a link can show a view.
const SCRIPT: &str = r#"
(function () {
  var boxes = Array.prototype.slice.call(document.querySelectorAll('input[data-outcome]'));
  var tag = document.getElementById('tag');
  var shown = document.getElementById('shown');
  var rows = Array.prototype.slice.call(document.querySelectorAll('#scenario-table tbody tr'));
  function apply() {
    var on = {};
    boxes.forEach(function (b) { on[b.getAttribute('data-outcome')] = b.checked; });
    var t = tag.value, n = 0;
    rows.forEach(function (r) {
      var show = on[r.getAttribute('data-outcome')] &&
        (!t || r.getAttribute('data-tags').indexOf(' ' + t + ' ') >= 0);
      r.hidden = !show;
      if (show && r.className === 'sc-row') { n += 1; }
    });
    shown.textContent = String(n);
  }
  var preset = {};
  location.hash.replace(/^#/, '').split('&').forEach(function (kv) {
    var i = kv.indexOf('=');
    if (i > 0) { preset[kv.slice(0, i)] = decodeURIComponent(kv.slice(i + 1)); }
  });
  if (preset.outcome) {
    var want = preset.outcome.split(',');
    boxes.forEach(function (b) { b.checked = want.indexOf(b.getAttribute('data-outcome')) >= 0; });
  }
  if (preset.tag) { tag.value = preset.tag; }
  boxes.forEach(function (b) { b.addEventListener('change', apply); });
  tag.addEventListener('change', apply);
  apply();
})();
"#;

fn ms(v: Option<u64>) -> String {
    v.map_or("-".into(), |v| v.to_string())
}

/// A cell's versions, files and notes; its scenarios are in the page's scenario table.
fn cell_details(report: &RunReport, cell: &CellReport) -> String {
    let dir = cell_dir(report, cell);
    let mut h = format!(
        "<details><summary>details</summary><div class=\"small\"><a href=\"#scenarios\" \
         data-cell=\"{}\">its {} scenarios below</a></div>",
        escape(&cell.id),
        cell.scenarios.len()
    );
    let mut links = vec![("console.log", join_dir(&dir, "console.log"))];
    if !dir.is_empty() {
        links.push(("run.json", join_dir(&dir, "run.json")));
    }
    let _ = write!(
        h,
        "<div class=\"small\">kernel {} ({}); qemu {}; {}</div>",
        escape(&cell.kernel.release),
        escape(&cell.kernel.source),
        escape(cell.qemu.version.as_deref().unwrap_or("?")),
        links
            .iter()
            .map(|(n, p)| format!("<a href=\"{}\">{}</a>", href(p), escape(n)))
            .collect::<Vec<_>>()
            .join(" ")
    );
    if !cell.notes.is_empty() {
        h.push_str("<div class=\"small\">notes:<ul>");
        for n in &cell.notes {
            let _ = write!(h, "<li>{}</li>", escape(n));
        }
        h.push_str("</ul></div>");
    }
    h.push_str("</details>");
    h
}

/// A `[vnc]` scenario's screenshots side by side, with the figures they were judged by.
pub fn screens_figure(sc: &Screens, dir: &str) -> String {
    let shots = [
        (&sc.before, "before the checkpoint"),
        (&sc.restored, "after the restore"),
        (&sc.diff_image, "differences (red)"),
        (&sc.typed, "typed after the restore"),
    ];
    let mut h = String::from("<div class=\"screens\">");
    for (path, caption) in shots {
        if let Some(p) = path {
            let target = href(&in_cell(dir, p));
            let _ = write!(
                h,
                "<figure><a href=\"{target}\"><img src=\"{target}\" alt=\"{caption}\"></a>\
                 <figcaption>{caption}</figcaption></figure>"
            );
        }
    }
    h.push_str("</div>");
    let mut figures = Vec::new();
    if let Some(d) = &sc.restore_diff {
        figures.push(format!(
            "restored against checkpointed: {} of {} pixels differ (at most {} allowed)",
            d.differing, d.total, sc.max_diff_pixels
        ));
    }
    if let Some(d) = &sc.typing_diff {
        figures.push(format!(
            "typing after the restore changed {} pixels",
            d.differing
        ));
    }
    if !figures.is_empty() {
        let _ = write!(
            h,
            "<div class=\"small\">{}</div>",
            escape(&figures.join("; "))
        );
    }
    h
}

/// A failure's report: step, command, status, first error line, errno, class and fix,
/// message, dmesg, console tail, the kept files.
pub fn failure_details(f: &Failure, dir: &str, artifacts: &[String]) -> String {
    let mut h =
        String::from("<details open><summary>failure report</summary><dl class=\"failure\">");
    let mut row = |k: &str, v: String| {
        let _ = write!(h, "<dt>{}</dt><dd>{v}</dd>", escape(k));
    };
    row("step", escape(&f.step));
    row("why", escape(&f.message));
    if let Some(c) = &f.command {
        row("command", format!("<code>{}</code>", escape(c)));
    }
    if let Some(s) = f.exit_status {
        row("status", s.to_string());
    }
    if let Some(e) = &f.first_error_line {
        row("error", format!("<code>{}</code>", escape(e)));
    }
    if let Some(e) = &f.errno {
        row("errno", escape(e));
    }
    if let Some(c) = &f.class {
        match crate::diagnose::class::class(c) {
            Some(k) => {
                row("class", format!("{}: {}", escape(c), escape(&k.title)));
                row("fix", escape(&k.fix));
            }
            None => row("class", escape(c)),
        }
    }
    for (name, lines) in [("dmesg", &f.dmesg), ("console", &f.console_tail)] {
        if !lines.is_empty() {
            row(name, format!("<pre>{}</pre>", escape(&lines.join("\n"))));
        }
    }
    if !artifacts.is_empty() {
        row(
            "files",
            artifacts
                .iter()
                .map(|a| {
                    let p = in_cell(dir, a);
                    let shown = a
                        .strip_prefix(dir)
                        .map_or(a.as_str(), |r| r.trim_start_matches('/'));
                    format!("<a href=\"{}\">{}</a>", href(&p), escape(shown))
                })
                .collect::<Vec<_>>()
                .join(" "),
        );
    }
    h.push_str("</dl></details>");
    h
}

/// "Why cells fail": every cell that did not pass with its diagnoses, for reading top down.
fn why_section(report: &RunReport, grid: &Grid) -> String {
    let mut items = String::new();
    for (ki, k) in grid.kernels.iter().enumerate() {
        for (ui, u) in grid.userlands.iter().enumerate() {
            let Some(i) = grid.cells[ki][ui] else {
                continue;
            };
            let cell = &report.cells[i];
            let diags = verdict::diagnoses(cell);
            if diags.is_empty() {
                continue;
            }
            let _ = write!(
                items,
                "<li><a href=\"#{}\">kernel {} ({}) &times; userland {} (criu {})</a>: <ul>",
                href(&cell.id),
                escape(k),
                escape(&cell.kernel.release),
                escape(u),
                escape(&cell.userland.criu_text())
            );
            for d in &diags {
                let _ = write!(items, "<li>{}", escape(&d.headline()));
                if let Some(f) = &d.fix {
                    let _ = write!(items, " &mdash; fix: {}", escape(f));
                }
                items.push_str("</li>");
            }
            items.push_str("</ul></li>\n");
        }
    }
    if items.is_empty() {
        return "<h2>Every cell passed</h2>\n".into();
    }
    format!("<h2>Why cells fail</h2>\n<ul>\n{items}</ul>\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::fixtures;

    #[test]
    fn screenshots_side_by_side_with_their_figures() {
        let sc = Screens {
            before: Some("scenarios/lxc-vnc/screen-before.png".into()),
            restored: Some("scenarios/lxc-vnc/screen-restored.png".into()),
            restore_diff: Some(crate::vnc::frame::Diff {
                differing: 0,
                total: 307200,
                bbox: None,
            }),
            diff_image: Some("scenarios/lxc-vnc/screen-diff.png".into()),
            typed: None,
            typing_diff: None,
            max_diff_pixels: 200,
        };
        insta::assert_snapshot!(screens_figure(&sc, "cells/c 1"));
    }

    #[test]
    fn escaping() {
        assert_eq!(
            escape("<a href=\"x\">&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(href("cells/k+u/a b.log"), "cells/k+u/a%20b.log");
        assert_eq!(href("javascript:x"), "javascript%3Ax");
    }

    #[test]
    fn page_of_a_fixed_matrix() {
        let report = fixtures::matrix_report();
        let mut old = report.clone();
        old.run_id = "20261125-200000-0001".into();
        let history = vec![history::entry(&old), history::entry(&report)];
        let page = render(&report, &history);
        assert!(!page.contains("<script>alert"), "unescaped console text");
        assert_eq!(
            page.matches("<script>").count(),
            1,
            "only the page's own script"
        );
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; stuck"));
        assert!(page.contains("version-mismatch</b>: the kernel and the C/R tool versions"));
        assert!(page.contains("Unexpected rt vDSO area bounds"));
        assert_eq!(page.matches("<svg").count(), 4);
        insta::assert_snapshot!(fixtures::redact(&page, &[]));
    }
}
