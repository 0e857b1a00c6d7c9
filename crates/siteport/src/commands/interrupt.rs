//! A transfer run stopped by Ctrl-C or SIGTERM: the engine's workers are aborted, the file(s)
//! they were sending are removed from the server (best effort, bounded in time, skipped on a
//! second signal), the journal is written, and the user is told what was done and what was
//! not. The caller then frees the site lock and exits 130 or 143.

use std::time::Duration;

use siteport_sync::{Direction, Engine, Op, Plan, Report};

use crate::commands::site_lock::{self, Signals};
use crate::config::ResolvedSite;
use crate::error::CliError;
use crate::logging::eprint_redacted;

/// How long the cleanup may take: a user who pressed Ctrl-C wants the prompt back, and what
/// is left is removed by the next run anyway.
const CLEANUP_LIMIT: Duration = Duration::from_secs(15);

/// Cleans up after `engine.execute(plan)` was cut short by a signal (`sigterm`: SIGTERM,
/// else SIGINT) and returns the error to exit with. `partial` receives what was done (for
/// `--json`).
pub async fn stopped_during_execute(
    engine: Engine,
    plan: &Plan,
    site: &ResolvedSite,
    sigterm: bool,
    signals: &mut Signals,
    partial: &mut Option<Report>,
) -> CliError {
    let mut engine = engine;
    let cleaned = tokio::select! {
        r = tokio::time::timeout(CLEANUP_LIMIT, engine.stop_and_clean(plan)) => r.ok(),
        _ = signals.recv() => None,
    };
    // Every completed file is already in the journal's log; this folds it into the snapshot.
    if let Err(e) = engine.finish().await {
        tracing::warn!(site = %site.name, "could not compact the journal: {e}");
    }
    let Some(report) = cleaned else {
        return stopped_error(
            site,
            sigterm,
            "the partial files were not cleaned up (stopped again, or the server did not \
             answer in time): the next run removes them",
        );
    };
    for w in &report.warnings {
        tracing::warn!(site = %site.name, "{w}");
    }
    for p in &report.interrupted {
        let removed = report
            .temps_removed
            .iter()
            .any(|t| temp_belongs_to(t, p, plan.direction));
        let what = match (plan.direction, removed) {
            (Direction::Export, true) => "not sent; its partial upload was removed from the server",
            (Direction::Export, false) => "not sent; the server's copy, if any, is unchanged",
            (Direction::Import, true) => "not fetched; its partial download was removed",
            (Direction::Import, false) => "not fetched; the local copy, if any, is unchanged",
        };
        eprint_redacted(&format!("interrupted  {p}  ({what})\n"));
    }
    let e = stopped_error(site, sigterm, &done_and_not(plan, &report));
    *partial = Some(report);
    e
}

/// The interrupted error (exit 130 or 143, its hint) with `detail` said after the signal.
fn stopped_error(site: &ResolvedSite, sigterm: bool, detail: &str) -> CliError {
    let mut e = site_lock::interrupted_error(site, sigterm);
    let by = if sigterm { "SIGTERM" } else { "Ctrl-C" };
    e.message = format!(
        "site '{}': stopped by {by}: {detail}; the site lock was released",
        site.name
    );
    e
}

/// Whether the temp file `temp` was left by the transfer of `path`: an upload's temp name
/// holds the file name; a download's does not, so any download temp in its directory counts.
fn temp_belongs_to(temp: &str, path: &str, direction: Direction) -> bool {
    let dir_of = |p: &str| p.rsplit_once('/').map_or("", |(d, _)| d).to_owned();
    if dir_of(temp) != dir_of(path) {
        return false;
    }
    let name = path.rsplit('/').next().unwrap_or(path);
    let temp_name = temp.rsplit('/').next().unwrap_or(temp);
    match direction {
        Direction::Export => temp_name.starts_with(&format!(".{name}.")),
        Direction::Import => true,
    }
}

/// `done: 3 of 10 uploads (12.1 KiB), 0 of 2 deletes; not done: 9 action(s); 1 temporary
/// file(s) removed` (deletes and directories only when the plan had some).
fn done_and_not(plan: &Plan, r: &Report) -> String {
    let s = plan.summary();
    let c = &r.counts;
    let (moved, verb) = match plan.direction {
        Direction::Export => (c.uploaded, "uploads"),
        Direction::Import => (c.downloaded, "downloads"),
    };
    let deleted = c.deleted + c.dirs_removed;
    let to_delete = s.delete + s.rmdir;
    let failed = r.failures().count();
    let untouched = plan
        .actions
        .iter()
        .filter(|a| !matches!(a.op, Op::Skip | Op::Conflict))
        .count()
        .saturating_sub(r.outcomes.iter().filter(|o| o.op != Op::Conflict).count());
    let mut out = format!(
        "done: {moved} of {} {verb} ({})",
        s.transfer,
        crate::progress::human_size(r.bytes)
    );
    // Only what the plan had: "0 of 0 deletes" says nothing.
    if to_delete > 0 {
        out.push_str(&format!(", {deleted} of {to_delete} deletes"));
    }
    if s.mkdir > 0 {
        out.push_str(&format!(", {} of {} dirs created", c.dirs_created, s.mkdir));
    }
    out.push_str(&format!("; not done: {untouched} action(s)"));
    if failed > 0 {
        out.push_str(&format!(", {failed} failed"));
    }
    if !r.temps_removed.is_empty() {
        out.push_str(&format!(
            "; {} temporary file(s) removed",
            r.temps_removed.len()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upload_temp_belongs_to_its_file_only() {
        let t = "a/.x.html.0123abcd.siteport-tmp";
        assert!(temp_belongs_to(t, "a/x.html", Direction::Export));
        assert!(!temp_belongs_to(t, "a/y.html", Direction::Export));
        assert!(!temp_belongs_to(t, "x.html", Direction::Export));
        assert!(temp_belongs_to(
            "a/.siteport-Ab12cd.part",
            "a/x.html",
            Direction::Import
        ));
    }
}
