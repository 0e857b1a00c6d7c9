//! The one error type of the mirror engine, with a kind the CLI maps to exit codes.

use std::fmt;
use std::path::Path;

/// What went wrong, independent of the transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// The server refused the login (FTP 530). Retrying will not help.
    Login,
    /// The server could not be reached, or the connection broke.
    Network,
    /// The TLS handshake or certificate check failed.
    Tls,
    /// The SSH server's host key is unknown, or differs from the recorded or pinned one.
    /// Nothing was authenticated. Retrying will not help.
    HostKey,
    /// The server refused another connection (FTP 421 "too many connections"): the engine
    /// lowers its connection count.
    TooManyConnections,
    /// A remote file or directory does not exist (FTP 550 on a missing path).
    NotFound,
    /// The server denied the operation (FTP 550/553 permission).
    Permission,
    /// A transfer or remote command failed for another reason (protocol error, bad reply).
    Transfer,
    /// Reading or writing the local tree failed.
    LocalIo,
    /// A name is unsafe to mirror (contains `/`, `\`, NUL, `..`, a control character, or is
    /// absolute), or a path would leave the local root (through `..` or a symlink).
    UnsafeName,
    /// Local and remote disagree on the kind of a path (a file on one side, a directory on
    /// the other).
    Conflict,
    /// The journal cannot be read or written.
    Journal,
    /// The options are invalid (a bad exclude pattern, a missing local root).
    Config,
}

impl ErrorKind {
    /// Short lowercase label, used in `--json` output.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Login => "login",
            ErrorKind::Network => "network",
            ErrorKind::Tls => "tls",
            ErrorKind::HostKey => "host_key",
            ErrorKind::TooManyConnections => "too_many_connections",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Permission => "permission",
            ErrorKind::Transfer => "transfer",
            ErrorKind::LocalIo => "local_io",
            ErrorKind::UnsafeName => "unsafe_name",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Journal => "journal",
            ErrorKind::Config => "config",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A mirror engine error: what failed (`detail`), where (`place`: a remote address and path,
/// or a local path), whether trying again may help, and when known the fix (`hint`).
///
/// Nothing secret goes into an `Error`: transports put addresses, paths and server replies in
/// it, never passwords.
#[derive(Debug, thiserror::Error)]
#[error("{place}: {detail}")]
pub struct Error {
    kind: ErrorKind,
    retryable: bool,
    /// A failed login that got as far as the server (connected, then cut or answered with a
    /// transient error), as opposed to one that found no server at all.
    reached_server: bool,
    place: String,
    detail: String,
    hint: Option<String>,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

/// Result alias for the mirror engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A new error of `kind` at `place` (e.g. `ftp://host:21/htdocs/a.html` or a local path).
    /// Network, TLS-free transient kinds are retryable by default; see [`Error::retryable`].
    pub fn new(kind: ErrorKind, place: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            kind,
            retryable: matches!(kind, ErrorKind::Network | ErrorKind::TooManyConnections),
            reached_server: false,
            place: place.into(),
            detail: detail.into(),
            hint: None,
            source: None,
        }
    }

    /// A local I/O error on `path`, with the operation that failed.
    pub fn local_io(op: &str, path: &Path, err: std::io::Error) -> Self {
        let hint = match err.kind() {
            std::io::ErrorKind::PermissionDenied => Some(format!(
                "check the permissions of {} (e.g. `ls -ld {}`)",
                path.display(),
                path.display()
            )),
            std::io::ErrorKind::StorageFull => Some("free some disk space".to_string()),
            _ => None,
        };
        let e = Self::new(
            ErrorKind::LocalIo,
            path.display().to_string(),
            format!("{op}: {err}"),
        );
        let e = match hint {
            Some(h) => e.with_hint(h),
            None => e,
        };
        e.with_source(err)
    }

    /// An unsafe name or path, refused.
    pub fn unsafe_name(place: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::UnsafeName, place, detail)
    }

    /// Sets whether trying again (after a reconnect) may succeed.
    pub fn retryable(mut self, retryable: bool) -> Self {
        self.retryable = retryable;
        self
    }

    /// Marks a failed connect as one that reached the server: the TCP connection was made
    /// (and usually the greeting read) before the session died or answered with a transient
    /// error. The engine then treats it as a lost connection, not as an unreachable server.
    pub fn reached_server(mut self, reached: bool) -> Self {
        self.reached_server = reached;
        self
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

    /// A copy without the source chain (sources are not `Clone`), for reporting one error in
    /// two places.
    pub(crate) fn duplicate(&self) -> Self {
        Self {
            kind: self.kind,
            retryable: self.retryable,
            reached_server: self.reached_server,
            place: self.place.clone(),
            detail: self.detail.clone(),
            hint: self.hint.clone(),
            source: None,
        }
    }

    /// The kind, for exit codes and retry decisions.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
    /// Whether trying again, on a fresh connection, may succeed.
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }
    /// Whether a failed connect got as far as the server (see [`Error::reached_server`]).
    pub fn is_server_reached(&self) -> bool {
        self.reached_server
    }
    /// Where it failed: a remote address and path, or a local path.
    pub fn place(&self) -> &str {
        &self.place
    }
    /// What failed.
    pub fn detail(&self) -> &str {
        &self.detail
    }
    /// The fix, if known.
    pub fn hint(&self) -> Option<&str> {
        self.hint.as_deref()
    }
    /// Whether this error ends the whole run rather than one file: a refused login, or TLS
    /// that cannot be established, or a host key that is not trusted, fails every connection
    /// alike.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::Login | ErrorKind::Tls | ErrorKind::HostKey | ErrorKind::Config
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_default_retryability_and_display() {
        let e = Error::new(ErrorKind::Network, "ftp://h:21", "connection reset");
        assert!(e.is_retryable());
        assert_eq!(e.to_string(), "ftp://h:21: connection reset");
        let e = Error::new(ErrorKind::Login, "ftp://h:21", "530 Login incorrect");
        assert!(!e.is_retryable());
        assert!(e.is_fatal());
        let e = Error::new(ErrorKind::Transfer, "x", "426").retryable(true);
        assert!(e.is_retryable());
        assert!(!e.is_fatal());
    }

    #[test]
    fn local_io_permission_has_hint() {
        let e = Error::local_io(
            "open",
            Path::new("/srv/site/a"),
            std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        );
        assert_eq!(e.kind(), ErrorKind::LocalIo);
        assert!(e.hint().unwrap().contains("/srv/site/a"));
        assert!(e.to_string().starts_with("/srv/site/a: open:"));
    }
}
