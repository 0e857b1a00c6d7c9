//! One error type for every SFTP operation, with a kind that decides retries and exit codes.

use std::fmt;
use std::io;

use russh_sftp::protocol::StatusCode;

/// What kind of failure, independent of the server software.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SftpErrorKind {
    /// The server refused every authentication offered (password, key or agent keys), or
    /// there was nothing to offer (no ssh-agent for an agent login).
    Login,
    /// The server's host key is in no known_hosts file given (and no pin was set). Nothing was
    /// authenticated.
    HostKeyUnknown,
    /// The server's host key differs from the one recorded in known_hosts or pinned: possibly
    /// an attack. Nothing was authenticated.
    HostKeyChanged,
    /// The file or directory does not exist (`SSH_FX_NO_SUCH_FILE`).
    NotFound,
    /// The server refused the operation (`SSH_FX_PERMISSION_DENIED`).
    Permission,
    /// The server cannot be reached at all: DNS failure, connection refused, unreachable.
    Network,
    /// Reading or writing the local file of a transfer failed (the server is not to blame).
    LocalIo,
    /// Worth retrying on a new connection: timeouts, a connection lost in the middle.
    Transient,
    /// The server answered something unexpected, or a generic `SSH_FX_FAILURE`.
    Protocol,
    /// The request itself is unusable (an unreadable private key, a wrong passphrase, a bad
    /// pin); nothing was sent.
    Invalid,
}

impl SftpErrorKind {
    /// Short lowercase label, for `--json` output.
    pub fn as_str(self) -> &'static str {
        match self {
            SftpErrorKind::Login => "login",
            SftpErrorKind::HostKeyUnknown => "host_key_unknown",
            SftpErrorKind::HostKeyChanged => "host_key_changed",
            SftpErrorKind::NotFound => "not_found",
            SftpErrorKind::Permission => "permission",
            SftpErrorKind::Network => "network",
            SftpErrorKind::LocalIo => "local_io",
            SftpErrorKind::Transient => "transient",
            SftpErrorKind::Protocol => "protocol",
            SftpErrorKind::Invalid => "invalid",
        }
    }
}

impl fmt::Display for SftpErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The server's host key as seen during a failed check: what a user needs to trust it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostKeyInfo {
    /// The key's algorithm, e.g. `ssh-ed25519`.
    pub algorithm: String,
    /// `SHA256:` and the unpadded base64 digest, as `ssh-keygen -lf` prints it.
    pub fingerprint: String,
    /// The exact known_hosts line that trusts this key for this host and port.
    pub known_hosts_line: String,
    /// For a changed key: where the other key is recorded (`file:line`), when it comes from a
    /// known_hosts file.
    pub recorded_at: Option<String>,
}

/// An SFTP error. `Display` reads `sftp HOST:PORT: OPERATION: what happened`, e.g.
/// `sftp 127.0.0.1:2222: open /site/a.html: permission denied`. Secrets are never part of it:
/// no password, key or passphrase goes into any field.
#[derive(Debug)]
pub struct SftpError {
    // Boxed: errors travel in every `Result` of the crate, which stays one pointer wide.
    inner: Box<Inner>,
}

#[derive(Debug)]
struct Inner {
    kind: SftpErrorKind,
    server: String,
    op: Option<String>,
    message: String,
    hint: Option<String>,
    host_key: Option<HostKeyInfo>,
    reached_server: bool,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl fmt::Display for SftpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let this = &self.inner;
        write!(f, "sftp {}", this.server)?;
        if let Some(op) = &this.op {
            write!(f, ": {op}")?;
        }
        write!(f, ": {}", this.message)?;
        if let Some(s) = &this.source {
            write!(f, ": {s}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SftpError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.inner
            .source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl SftpError {
    /// A new error of `kind` for `server` (`host:port`).
    pub fn new(kind: SftpErrorKind, server: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            inner: Box::new(Inner {
                kind,
                server: server.into(),
                op: None,
                message: message.into(),
                hint: None,
                host_key: None,
                reached_server: false,
                source: None,
            }),
        }
    }

    /// Adds the operation (e.g. `open /site/a`) this error belongs to.
    pub fn with_op(mut self, op: impl Into<String>) -> Self {
        self.inner.op = Some(op.into());
        self
    }

    /// Adds the fix: what to check, or which line to add.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.inner.hint = Some(hint.into());
        self
    }

    /// Adds the server's host key (for host-key failures).
    pub fn with_host_key(mut self, info: HostKeyInfo) -> Self {
        self.inner.host_key = Some(info);
        self
    }

    /// Marks a failed connect that got past TCP: the server answered, so the failure (a
    /// connection cut during the key exchange or the login, a timeout there) may pass.
    pub(crate) fn server_reached(mut self) -> Self {
        self.inner.reached_server = true;
        self
    }

    /// Adds the underlying cause. It must not carry secret values.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.inner.source = Some(Box::new(source));
        self
    }

    /// An error of the SFTP layer (a status reply, a timeout, a lost session) during `op`.
    pub(crate) fn from_sftp(server: &str, op: &str, err: russh_sftp::client::error::Error) -> Self {
        use russh_sftp::client::error::Error as E;
        let (kind, message) = match &err {
            E::Status(s) => {
                let kind = match s.status_code {
                    StatusCode::NoSuchFile => SftpErrorKind::NotFound,
                    StatusCode::PermissionDenied => SftpErrorKind::Permission,
                    StatusCode::NoConnection | StatusCode::ConnectionLost => {
                        SftpErrorKind::Transient
                    }
                    _ => SftpErrorKind::Protocol,
                };
                let text = s.error_message.trim();
                let msg = if text.is_empty() {
                    s.status_code.to_string()
                } else {
                    text.to_string()
                };
                return Self::new(kind, server, msg).with_op(op);
            }
            E::IO(_) | E::Timeout | E::UnexpectedBehavior(_) => {
                (SftpErrorKind::Transient, "connection lost")
            }
            E::Limited(_) => (SftpErrorKind::Invalid, "over the server's limits"),
            E::UnexpectedPacket => (SftpErrorKind::Protocol, "unexpected reply"),
        };
        Self::new(kind, server, message)
            .with_op(op)
            .with_source(err)
    }

    /// A local I/O failure on `path` during `op`.
    pub(crate) fn local(server: &str, op: &str, path: &std::path::Path, err: io::Error) -> Self {
        Self::new(
            SftpErrorKind::LocalIo,
            server,
            format!("local file {}", path.display()),
        )
        .with_op(op)
        .with_source(err)
    }

    /// The kind.
    pub fn kind(&self) -> SftpErrorKind {
        self.inner.kind
    }

    /// `host:port`.
    pub fn server(&self) -> &str {
        &self.inner.server
    }

    /// The operation that failed, when known.
    pub fn op(&self) -> Option<&str> {
        self.inner.op.as_deref()
    }

    /// What happened.
    pub fn message(&self) -> &str {
        &self.inner.message
    }

    /// The fix, when known.
    pub fn hint(&self) -> Option<&str> {
        self.inner.hint.as_deref()
    }

    /// The server's host key, for [`SftpErrorKind::HostKeyUnknown`] and
    /// [`SftpErrorKind::HostKeyChanged`].
    pub fn host_key(&self) -> Option<&HostKeyInfo> {
        self.inner.host_key.as_ref()
    }

    /// Whether a failed [`connect`](crate::SftpConnection::connect) got as far as the server
    /// (its TCP connection was accepted): a login cut there is not a server that is down.
    /// Always `false` for errors after the login.
    pub fn reached_server(&self) -> bool {
        self.inner.reached_server
    }

    /// Whether trying again (on a fresh connection) may succeed.
    pub fn retryable(&self) -> bool {
        self.inner.kind == SftpErrorKind::Transient
    }
}

/// The kind of a failed TCP connect.
pub(crate) fn kind_for_connect_io(err: &io::Error) -> SftpErrorKind {
    use io::ErrorKind as K;
    match err.kind() {
        K::TimedOut | K::ConnectionReset | K::ConnectionAborted | K::Interrupted => {
            SftpErrorKind::Transient
        }
        _ => SftpErrorKind::Network,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use russh_sftp::protocol::Status;

    fn status(code: StatusCode, text: &str) -> russh_sftp::client::error::Error {
        russh_sftp::client::error::Error::Status(Status {
            id: 1,
            status_code: code,
            error_message: text.into(),
            language_tag: String::new(),
        })
    }

    #[test]
    fn status_codes_map_to_kinds() {
        let e = SftpError::from_sftp(
            "h:22",
            "open /a",
            status(StatusCode::NoSuchFile, "No such file"),
        );
        assert_eq!(e.kind(), SftpErrorKind::NotFound);
        assert_eq!(e.to_string(), "sftp h:22: open /a: No such file");
        let e = SftpError::from_sftp("h:22", "open /a", status(StatusCode::PermissionDenied, ""));
        assert_eq!(e.kind(), SftpErrorKind::Permission);
        let e = SftpError::from_sftp("h:22", "rmdir /a", status(StatusCode::Failure, "Failure"));
        assert_eq!(e.kind(), SftpErrorKind::Protocol);
        assert!(!e.retryable());
        let e = SftpError::from_sftp("h:22", "read /a", russh_sftp::client::error::Error::Timeout);
        assert!(e.retryable());
    }

    #[test]
    fn connect_io_kinds() {
        assert_eq!(
            kind_for_connect_io(&io::ErrorKind::ConnectionRefused.into()),
            SftpErrorKind::Network
        );
        assert_eq!(
            kind_for_connect_io(&io::ErrorKind::TimedOut.into()),
            SftpErrorKind::Transient
        );
    }
}
