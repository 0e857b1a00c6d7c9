//! Where the per-site sync journal lives, and what happens when it cannot live anywhere.
//!
//! A container runs with a read-only root filesystem and often without HOME. The journal only
//! makes reruns cheaper (the engine otherwise hashes the local files against the deploy state
//! on the server), so a run that has no writable place for it still works, with a journal in
//! memory and a warning that says how to give it a place. Errors that are not about the place
//! (another run holds the journal's lock, a corrupt journal) stay errors.
//!
//! A journal is named after the remote tree it describes (see
//! [`siteport_sync::journal_file_name`]), not after the site: two configs that each have a
//! site `blog` keep two journals and never block each other. A journal from before that rule
//! (`<site>.json`) is moved to the new name by the first run that needs it. It cannot say
//! which remote it described; should it have been another config's same-named site, the
//! server's deploy state still decides first, and the journal's records are trusted only for
//! files the server lists with exactly the recorded size and time, so the cost is at worst
//! some hashing, never a wrong upload.

use std::path::{Path, PathBuf};

use siteport_sync::Journal;

use crate::commands::site::{endpoint, journal_path};
use crate::config::ResolvedSite;
use crate::context::Context;
use crate::error::{CliError, CliResult};

/// Directory for siteport's state (the journals go to `<dir>/journal`); it wins over
/// `XDG_STATE_HOME` and HOME.
pub const STATE_DIR_ENV: &str = "SITEPORT_STATE_DIR";
/// Set to `1` (or `true`) to keep no journal at all: every run hashes the local files against
/// the server's deploy state.
pub const NO_JOURNAL_ENV: &str = "SITEPORT_NO_JOURNAL";

/// Whether `SITEPORT_NO_JOURNAL` asks for no journal.
fn disabled() -> bool {
    std::env::var(NO_JOURNAL_ENV).is_ok_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "1" | "true" | "yes" | "on"
        )
    })
}

/// The journal directory: `$SITEPORT_STATE_DIR/journal`, else the context's rule
/// (`--state-dir` of `demo`, `$XDG_STATE_HOME/siteport/journal`, `~/.local/state/…`);
/// `None` when there is no place at all.
pub fn journal_dir(ctx: &Context) -> Option<PathBuf> {
    if ctx.state_dir.is_none()
        && let Some(d) = std::env::var_os(STATE_DIR_ENV).filter(|v| !v.is_empty())
    {
        return Some(PathBuf::from(d).join("journal"));
    }
    ctx.journal_dir().ok()
}

/// Opens the journal of `site`, or an in-memory one when journals are disabled, when there is
/// no place for one, or when its directory cannot be created (read-only filesystem,
/// permission denied). A dry run never creates anything.
pub fn open_journal(ctx: &Context, site: &ResolvedSite, dry_run: bool) -> CliResult<Journal> {
    if disabled() {
        tracing::info!(site = %site.name, "{NO_JOURNAL_ENV} is set: no journal");
        return Ok(Journal::in_memory());
    }
    let Some(dir) = journal_dir(ctx) else {
        tracing::warn!(
            site = %site.name,
            "no place for the sync journal (none of {STATE_DIR_ENV}, XDG_STATE_HOME, HOME is \
             set): files are hashed against the server's deploy state; set {STATE_DIR_ENV} to a \
             writable directory to keep one, or {NO_JOURNAL_ENV}=1 to silence this"
        );
        return Ok(Journal::in_memory());
    };
    let mut jpath = site_journal_path(&dir, site);
    if !dry_run && let Some(state) = dir.parent() {
        // Before the journal directory is made in it: who can write in the state dir can
        // swap the whole journal directory.
        siteport_fsguard::check_dir("state directory", state, true)?;
    }
    if dry_run {
        if !jpath.exists() {
            // A dry run moves nothing: it reads the old journal where it still is.
            let legacy = journal_path(&dir, &site.name);
            if !legacy.exists() {
                return Ok(Journal::in_memory());
            }
            jpath = legacy;
        }
    } else if let Err(e) = siteport_fsguard::create_private_dir(&dir) {
        if unwritable(&e) {
            tracing::warn!(
                site = %site.name,
                dir = %dir.display(),
                "cannot create the sync journal directory ({e}): files are hashed against the \
                 server's deploy state; set {STATE_DIR_ENV} to a writable directory to keep a \
                 journal, or {NO_JOURNAL_ENV}=1 to silence this"
            );
            return Ok(Journal::in_memory());
        }
        return Err(journal_dir_error(site, &dir, &e));
    } else {
        // Before anything is moved, swept or opened there.
        siteport_fsguard::check_dir("journal directory", &dir, true)?;
        adopt_legacy(&dir, site, &jpath);
        let swept = siteport_sync::sweep_journal_locks(&dir);
        if swept > 0 {
            tracing::debug!(dir = %dir.display(), "removed {swept} stale journal lock file(s)");
        }
    }
    Journal::open(&jpath).map_err(|e| {
        let mut out = CliError::usage(format!("site '{}': journal {e}", site.name));
        out.kind = "journal";
        match e.hint() {
            Some(h) => out.with_hint(h),
            None => out,
        }
    })
}

/// The journal file of `site` in `dir`: named after its remote tree.
pub fn site_journal_path(dir: &Path, site: &ResolvedSite) -> PathBuf {
    dir.join(siteport_sync::journal_file_name(&endpoint(site)))
}

/// Moves the site's journal from its old name-keyed place to `jpath`. A failure only costs
/// the old journal (files are then hashed against the server's deploy state): a warning.
fn adopt_legacy(dir: &Path, site: &ResolvedSite, jpath: &Path) {
    let legacy = journal_path(dir, &site.name);
    match siteport_sync::adopt_journal(&legacy, jpath) {
        Ok(true) => tracing::info!(
            site = %site.name,
            "moved the journal {} to {} (journals are now named after the remote, not the site)",
            legacy.display(),
            jpath.display()
        ),
        Ok(false) => {}
        Err(e) => tracing::warn!(
            site = %site.name,
            "could not move the old journal {}: {e}; files are hashed against the server's \
             deploy state instead",
            legacy.display()
        ),
    }
}

fn unwritable(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
    )
}

fn journal_dir_error(site: &ResolvedSite, dir: &Path, e: &std::io::Error) -> CliError {
    let mut out = CliError::usage(format!(
        "site '{}': cannot create the journal directory {}: {e}",
        site.name,
        dir.display()
    ))
    .with_hint(format!(
        "point {STATE_DIR_ENV} at a writable directory, or set {NO_JOURNAL_ENV}=1"
    ));
    out.kind = "journal";
    out
}
