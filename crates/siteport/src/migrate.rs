//! `siteport migrate`: moves hard-coded FTP passwords out of a config file into a credential
//! backend and rewrites the config to `credential = "NAME"` (SPEC §6). Also imports sites and
//! passwords from FileZilla's `sitemanager.xml` and logins from `~/.netrc`.
//!
//! Safety rules, in the order the code follows them:
//! 1. Everything is planned first (detection, names, the new config text, validated by the
//!    real loader) without touching the backend or any file.
//! 2. A read-only backend is refused before anything is stored.
//! 3. Credentials are stored one by one, never replacing a different one (a taken name gets a
//!    `-2`, `-3`, … suffix; an identical one is reused, which makes a re-run after a failure
//!    safe). A failure reports what was stored and leaves the config untouched.
//! 4. Only then is the config replaced atomically, after a 0600 backup of the old one.
//!
//! Secrets never reach the report, the diff (masked as `****`) or an error.

mod error;
mod files;
mod filezilla;
mod netrc;
mod plan;
mod report;
mod rewrite;
mod store;

pub use error::{MigrateError, MigrateErrorKind};
pub use filezilla::{FileZillaServer, import_filezilla, parse_sitemanager};
pub use netrc::{NetrcEntry, import_netrc, parse_netrc};
pub use plan::migrate_config;
pub use report::{Action, Finding, MigrationReport, SiteReport};
pub use rewrite::unified_diff;
// `site trust` replaces the config the same way when it pins a host key.
pub(crate) use files::write_atomic;

/// What `migrate` may do.
#[derive(Debug, Clone, Copy, Default)]
pub struct MigrateOptions {
    /// Plan and show the diff, touch nothing (no file, no backend write).
    pub dry_run: bool,
    /// Also move `password = "${VAR}"` values: copy the variable's current value into the
    /// backend and rewrite the site to `credential = "NAME"`.
    pub from_env: bool,
}
