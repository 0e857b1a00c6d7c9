//! The one error type of the credential store, with a kind the CLI maps to exit codes.

use std::fmt;

use crate::credential::{CredentialName, ValidationError};
use crate::remedy::{Join, Remedy};

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
/// and, when there is one, the fix: a change to make (`hint`, plain text) and/or an action of
/// the embedding program (`remedy`, a [`Remedy`] the program renders as its own command).
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
    // Boxed: kept off the error's inline size, which every `Result` in the crate carries.
    remedy: Option<Box<(Remedy, Join)>>,
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
            remedy: None,
            source: None,
        }
    }

    /// Sets the fix: a setting to change or a thing to do outside the program. It replaces
    /// any fix set before, remedy included (add one after with [`with_remedy`](Self::with_remedy)).
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self.remedy = None;
        self
    }

    /// Adds an action of the embedding program that fixes it, after the hint (joined by `; `).
    pub fn with_remedy(self, remedy: Remedy) -> Self {
        self.with_remedy_joined(remedy, "; ")
    }

    /// Adds a remedy after the hint, joined by `sep` (e.g. `", or "` for an alternative).
    pub(crate) fn with_remedy_joined(mut self, remedy: Remedy, sep: &'static str) -> Self {
        self.remedy = Some(Box::new((remedy, Join::After(sep))));
        self
    }

    /// Adds a remedy before the hint, joined by `sep`.
    pub(crate) fn with_remedy_first(mut self, remedy: Remedy, sep: &'static str) -> Self {
        self.remedy = Some(Box::new((remedy, Join::Before(sep))));
        self
    }

    /// Adds the underlying cause. It must not carry secret values.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// `credential 'NAME' not found`, with the remedy to add it.
    pub fn not_found(backend: impl Into<String>, name: &CredentialName) -> Self {
        Self::new(
            ErrorKind::NotFound,
            backend,
            format!("credential '{name}' not found"),
        )
        .with_remedy(Remedy::AddCredential(name.clone()))
    }

    /// `credential 'NAME' already exists`, with the remedy to replace it.
    pub fn already_exists(backend: impl Into<String>, name: &CredentialName) -> Self {
        Self::new(
            ErrorKind::AlreadyExists,
            backend,
            format!("credential '{name}' already exists"),
        )
        .with_remedy(Remedy::ReplaceCredential(name.clone()))
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
    /// The fix as plain text, if there is one beyond the [`remedy`](Self::remedy). It never
    /// holds a command line of the embedding program.
    pub fn hint(&self) -> Option<&str> {
        self.hint.as_deref()
    }
    /// The action of the embedding program that fixes it, if any.
    pub fn remedy(&self) -> Option<&Remedy> {
        self.remedy.as_deref().map(|(r, _)| r)
    }
    /// The whole fix as one text: the hint with the remedy, rendered by `render`, in its place.
    /// `None` when there is neither.
    pub fn hint_with(&self, render: impl FnOnce(&Remedy) -> String) -> Option<String> {
        match (&self.hint, self.remedy.as_deref()) {
            (None, None) => None,
            (Some(h), None) => Some(h.clone()),
            (None, Some((r, _))) => Some(render(r)),
            (Some(h), Some((r, Join::After(sep)))) => Some(format!("{h}{sep}{}", render(r))),
            (Some(h), Some((r, Join::Before(sep)))) => Some(format!("{}{sep}{h}", render(r))),
        }
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
        assert_eq!(e.hint(), None);
        assert_eq!(e.remedy(), Some(&Remedy::AddCredential(n.clone())));
        let render = |r: &Remedy| format!("<{r:?}>");
        assert_eq!(
            e.hint_with(render).as_deref(),
            Some("<AddCredential(CredentialName(\"acme\"))>")
        );
        let f = Error::not_found("b", &n)
            .with_hint("first")
            .with_remedy(Remedy::InitStore);
        assert_eq!(f.hint_with(render).as_deref(), Some("first; <InitStore>"));
        let f = f.with_remedy_first(Remedy::InitStore, ", or ");
        assert_eq!(
            f.hint_with(render).as_deref(),
            Some("<InitStore>, or first")
        );
        assert_eq!(
            f.with_hint("only").hint_with(render).as_deref(),
            Some("only")
        );
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert!(!e.is_retryable());
    }
}
