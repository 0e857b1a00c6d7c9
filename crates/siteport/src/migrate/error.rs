//! What a migration failure is: its kind (which decides the exit code, see [`crate::exit`]),
//! what had been stored before it, and the fix.

use siteport_creds::CredentialName;

use crate::config::ConfigError;

/// What kind of failure, which decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MigrateErrorKind {
    /// The config (or the import file) cannot be read, parsed or rewritten in place.
    Config,
    /// The backend is read-only, unavailable or refused a write.
    Credential,
    /// Writing the new config or its backup failed.
    Io,
}

/// A migration failure: what failed, where, what had already been stored (the config is
/// unchanged whenever this is returned) and the fix. Never holds a secret.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct MigrateError {
    /// The kind.
    pub kind: MigrateErrorKind,
    /// What failed and where.
    pub message: String,
    /// The command or change that fixes it.
    pub hint: Option<String>,
    /// Credentials stored before the failure.
    pub stored: Vec<CredentialName>,
}

impl MigrateError {
    pub(super) fn new(kind: MigrateErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            hint: None,
            stored: Vec::new(),
        }
    }
    pub(super) fn hint(mut self, h: impl Into<String>) -> Self {
        self.hint = Some(h.into());
        self
    }
}

impl From<ConfigError> for MigrateError {
    fn from(e: ConfigError) -> Self {
        let kind = if e.kind() == crate::config::ConfigErrorKind::Credential {
            MigrateErrorKind::Credential
        } else {
            MigrateErrorKind::Config
        };
        Self {
            kind,
            message: e.to_string(),
            hint: e.hint_text().map(str::to_owned),
            stored: Vec::new(),
        }
    }
}

/// A pending credential reached the write step without a name (a bug).
pub(super) fn unnamed() -> MigrateError {
    MigrateError::new(
        MigrateErrorKind::Credential,
        "internal error: a credential was left without a name",
    )
}
