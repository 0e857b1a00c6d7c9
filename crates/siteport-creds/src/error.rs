//! The one error type of the credential store, with a kind the CLI maps to exit codes.

use std::fmt;

use crate::credential::{CredentialName, ValidationError};

/// What went wrong, independent of the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The credential does not exist in this backend.
    NotFound,
    /// A credential with that name exists and replacing was not asked for.
    AlreadyExists,
    /// Another process holds the store's lock for too long.
    Locked,
    /// The key, identity or passphrase cannot open the store.
    BadKey,
    /// The OS or the service refused access, or a file's permissions are unsafe.
    PermissionDenied,
    /// The store exists but cannot be read: tampered, truncated, not our format.
    Corrupt,
    /// The backend cannot be reached right now; retrying may help.
    Unavailable,
    /// Input or configuration is wrong (a bad name, conflicting variables, a bad setting).
    Invalid,
    /// The backend does not support this operation (e.g. writing to the env backend).
    Unsupported,
}

impl ErrorKind {
    /// Short lowercase label, used in `--json` output.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not_found",
            ErrorKind::AlreadyExists => "already_exists",
            ErrorKind::Locked => "locked",
            ErrorKind::BadKey => "bad_key",
            ErrorKind::PermissionDenied => "permission_denied",
            ErrorKind::Corrupt => "corrupt",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Invalid => "invalid",
            ErrorKind::Unsupported => "unsupported",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A credential store error. It always says which backend and where (`backend`, e.g.
/// `file backend (/home/me/.local/share/siteport/credentials.age)`), what failed (`detail`),
/// and, when there is one, the command or change that fixes it (`hint`).
///
/// Nothing secret ever goes into an `Error`: backends put names, paths and addresses in it,
/// never values.
#[derive(Debug, thiserror::Error)]
#[error("{backend}: {detail}")]
pub struct Error {
    kind: ErrorKind,
    backend: String,
    detail: String,
    hint: Option<String>,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

/// Result alias for the credential store.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A new error of `kind` in `backend` (its [`describe`](crate::CredentialBackend::describe)).
    pub fn new(kind: ErrorKind, backend: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            kind,
            backend: backend.into(),
            detail: detail.into(),
            hint: None,
            source: None,
        }
    }

    /// Adds the fix: a command to run or a setting to change.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Adds the underlying cause. It must not carry secret values.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// `credential 'NAME' not found`, with the hint to add it.
    pub fn not_found(backend: impl Into<String>, name: &CredentialName) -> Self {
        Self::new(
            ErrorKind::NotFound,
            backend,
            format!("credential '{name}' not found"),
        )
        .with_hint(format!("add it with `siteport credential add {name}`"))
    }

    /// `credential 'NAME' already exists`, with the hint to replace it.
    pub fn already_exists(backend: impl Into<String>, name: &CredentialName) -> Self {
        Self::new(
            ErrorKind::AlreadyExists,
            backend,
            format!("credential '{name}' already exists"),
        )
        .with_hint(format!(
            "replace it with `siteport credential add {name} --force`"
        ))
    }

    /// The operation is not supported by this backend.
    pub fn unsupported(backend: impl Into<String>, operation: &str) -> Self {
        Self::new(
            ErrorKind::Unsupported,
            backend,
            format!("{operation} is not supported by this backend"),
        )
    }

    /// A validation failure, attributed to a backend.
    pub fn invalid(backend: impl Into<String>, e: ValidationError) -> Self {
        Self::new(ErrorKind::Invalid, backend, e.to_string())
    }

    /// The kind, for exit codes and retry decisions.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
    /// Which backend and where.
    pub fn backend(&self) -> &str {
        &self.backend
    }
    /// What failed.
    pub fn detail(&self) -> &str {
        &self.detail
    }
    /// The fix, if known.
    pub fn hint(&self) -> Option<&str> {
        self.hint.as_deref()
    }
    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self.kind, ErrorKind::Unavailable | ErrorKind::Locked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_backend_and_hint_is_separate() {
        let n = CredentialName::new("acme").unwrap();
        let e = Error::not_found("file backend (/tmp/x.age)", &n);
        assert_eq!(
            e.to_string(),
            "file backend (/tmp/x.age): credential 'acme' not found"
        );
        assert_eq!(e.hint(), Some("add it with `siteport credential add acme`"));
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert!(!e.is_retryable());
    }
}
