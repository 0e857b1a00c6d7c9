//! What a migration or import did (or, in a dry run, would do), per site. Holds no secret.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;
use siteport_creds::{CredentialBackend, CredentialName};

use super::MigrateOptions;

/// How a site's password is given in the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Finding {
    /// `password = "literal"`.
    HardCoded,
    /// `url = "ftp://user:pass@host"`.
    UrlUserinfo,
    /// `password = "${VAR}"`: an environment reference.
    EnvReference,
    /// `credential = "NAME"` or `${cred:…}`: already migrated.
    Referenced,
    /// No password at all.
    NoPassword,
    /// Imported from FileZilla or a netrc file.
    Imported,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Finding::HardCoded => "hard-coded password",
            Finding::UrlUserinfo => "password in url",
            Finding::EnvReference => "environment reference",
            Finding::Referenced => "already referenced",
            Finding::NoPassword => "no password",
            Finding::Imported => "imported",
        })
    }
}

/// What was (or, in a dry run, would be) done for a site.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Its secret was stored and the config rewritten.
    Migrated,
    /// Dry run: it would be migrated.
    WouldMigrate,
    /// Nothing to do, or deliberately left alone (an environment reference without --from-env).
    LeftAlone,
    /// It should be migrated but cannot be; `note` says why.
    Skipped,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Migrated => "migrated",
            Action::WouldMigrate => "would migrate",
            Action::LeftAlone => "left alone",
            Action::Skipped => "skipped",
        })
    }
}

/// One site (or imported entry) in a [`MigrationReport`]. Holds no secret.
#[derive(Debug, Clone, Serialize)]
pub struct SiteReport {
    /// Site name (or netrc machine).
    pub site: String,
    /// How its password was given.
    pub finding: Finding,
    /// What happened.
    pub action: Action,
    /// The credential it refers to now (or would).
    pub credential: Option<CredentialName>,
    /// Details: a renamed credential, a reused one, the variables of an env reference, why a
    /// site was skipped.
    pub note: Option<String>,
}

/// The outcome of a migration or import. Holds no secret (the diff is masked).
#[derive(Debug, Clone, Serialize)]
pub struct MigrationReport {
    /// The config file (none for a netrc import).
    pub config: Option<PathBuf>,
    /// The backend credentials went to (its `describe()`).
    pub backend: String,
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// Per site, in file order.
    pub sites: Vec<SiteReport>,
    /// Credentials newly stored (or, in a dry run, that would be).
    pub stored: Vec<CredentialName>,
    /// Identical credentials already in the backend, used as they are.
    pub reused: Vec<CredentialName>,
    /// The 0600 copy of the old config, when it was rewritten.
    pub backup: Option<PathBuf>,
    /// Unified diff of the config change, secrets masked as `****` (dry runs).
    pub diff: Option<String>,
    /// Whether the config file was (or would be) changed.
    pub changed: bool,
}

impl MigrationReport {
    /// A report with nothing found yet, for `config` (if any) and `backend`.
    pub(super) fn empty(
        config: Option<PathBuf>,
        backend: &dyn CredentialBackend,
        options: MigrateOptions,
    ) -> Self {
        Self {
            config,
            backend: backend.describe(),
            dry_run: options.dry_run,
            sites: Vec::new(),
            stored: Vec::new(),
            reused: Vec::new(),
            backup: None,
            diff: None,
            changed: false,
        }
    }

    /// True when there was nothing to store and nothing to rewrite.
    pub fn nothing_to_do(&self) -> bool {
        !self.changed && self.stored.is_empty() && self.reused.is_empty()
    }
}
