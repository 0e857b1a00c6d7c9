//! One error type for every FTP operation, with a kind that decides retries and exit codes.

use std::fmt;
use std::io;

/// What kind of failure, independent of the server software.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FtpErrorKind {
    /// The server refused the username or password (`530`, `332`).
    Login,
    /// The file or directory does not exist (`550`, and `450` for a missing file on some servers).
    NotFound,
    /// The server refused the operation on an existing path or name (`553`, `550 Permission denied`).
    Permission,
    /// Worth retrying, usually after reconnecting: `421`, `425`, `426`, `450`, other `4xx`,
    /// timeouts, connection resets in the middle of a command.
    Transient,
    /// TLS failed: handshake, certificate verification, fingerprint mismatch, `AUTH TLS` refused.
    Tls,
    /// The server cannot be reached at all: DNS failure, connection refused, unreachable.
    Network,
    /// The server answered something we did not expect, or a permanent `5xx`.
    Protocol,
    /// The request itself is unusable (e.g. a path containing CR or LF); nothing was sent.
    Invalid,
    /// Reading or writing the local file of a transfer failed (the server is not to blame).
    LocalIo,
}

impl FtpErrorKind {
    /// Short lowercase label, for `--json` output.
    pub fn as_str(self) -> &'static str {
        match self {
            FtpErrorKind::Login => "login",
            FtpErrorKind::NotFound => "not_found",
            FtpErrorKind::Permission => "permission",
            FtpErrorKind::Transient => "transient",
            FtpErrorKind::Tls => "tls",
            FtpErrorKind::Network => "network",
            FtpErrorKind::Protocol => "protocol",
            FtpErrorKind::Invalid => "invalid",
            FtpErrorKind::LocalIo => "local_io",
        }
    }
}

impl fmt::Display for FtpErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An FTP error. `Display` reads `ftp HOST:PORT: COMMAND: what happened`, e.g.
/// `ftp 127.0.0.1:2121: STOR /site/a.html: 553 Could not create file`. The password is never part
/// of it: the connection sends `PASS` from a buffer whose only printable form is `PASS ****`,
/// and that label is what a failed `PASS` carries.
#[derive(Debug)]
pub struct FtpError {
    kind: FtpErrorKind,
    code: Option<u16>,
    server: String,
    command: Option<String>,
    message: String,
    hint: Option<String>,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl fmt::Display for FtpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ftp {}", self.server)?;
        if let Some(c) = &self.command {
            write!(f, ": {c}")?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(s) = &self.source {
            write!(f, ": {s}")?;
        }
        Ok(())
    }
}

impl std::error::Error for FtpError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl FtpError {
    /// A new error of `kind` for `server` (`host:port`).
    pub fn new(kind: FtpErrorKind, server: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            kind,
            code: None,
            server: server.into(),
            command: None,
            message: message.into(),
            hint: None,
            source: None,
        }
    }

    /// An error from a server reply `code text` to `command` (as shown: never a secret), with
    /// the kind the code maps to.
    pub fn from_reply(server: &str, command: &str, code: u16, text: &str) -> Self {
        let kind = kind_for_reply(code, text);
        let mut e = Self::new(
            kind,
            server,
            format!("{code} {}", escape_controls(text.trim())),
        );
        e.code = Some(code);
        e.command = Some(command.to_string());
        e.hint = match kind {
            // What to check, not which command checks it: the CLI adds its own commands.
            FtpErrorKind::Login => Some("check the username and password".into()),
            _ => None,
        };
        e
    }

    /// An I/O failure while running `command` (as shown: never a secret; None: while
    /// connecting).
    pub fn from_io(server: &str, command: Option<&str>, err: io::Error) -> Self {
        let kind = kind_for_io(&err);
        let what = match command {
            None => connect_failure(&err),
            Some(_) => "connection lost",
        };
        let mut e = Self::new(kind, server, what).with_source(err);
        e.command = command.map(str::to_string);
        e
    }

    /// Adds the command this error belongs to, as shown (never a secret: a `PASS` is shown as
    /// `PASS ****`).
    pub fn with_command(mut self, command: &str) -> Self {
        self.command = Some(command.to_string());
        self
    }

    /// Adds the fix: what to check, or which setting to change (a library error names no CLI
    /// command; the program around it adds those).
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Adds the underlying cause. It must not carry secret values.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// The kind.
    pub fn kind(&self) -> FtpErrorKind {
        self.kind
    }

    /// The server's reply code, when the error comes from a reply.
    pub fn code(&self) -> Option<u16> {
        self.code
    }

    /// `host:port`.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The command that failed (a `PASS` shows as `PASS ****`).
    pub fn command(&self) -> Option<&str> {
        self.command.as_deref()
    }

    /// What happened (the reply text, or a description).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The fix, when known.
    pub fn hint(&self) -> Option<&str> {
        self.hint.as_deref()
    }

    /// Whether trying again (usually on a fresh connection) may succeed.
    pub fn retryable(&self) -> bool {
        self.kind == FtpErrorKind::Transient
    }
}

/// `text` (a server's words) with each control character but tab written as `\u{1b}`: a
/// reply carried into an error is printed by whoever shows the error, and a hostile server's
/// escape sequences must not reach their terminal. The same escapes as the CLI's own
/// `escape_controls`, which every stream it prints to goes through.
fn escape_controls(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() && c != '\t' {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Maps a negative reply to a kind. Text is only consulted to tell "permission denied" from
/// "not found" inside the overloaded `550`.
pub fn kind_for_reply(code: u16, text: &str) -> FtpErrorKind {
    let lower = text.to_ascii_lowercase();
    // vsftpd answers `500 OOPS: …` when its own session process failed (a killed privileged
    // helper, a failed fork, a full disk under the chroot): the session is gone, a fresh one
    // usually works, so it is worth a retry rather than the end of the run.
    if text.trim_start().starts_with("OOPS") {
        return FtpErrorKind::Transient;
    }
    match code {
        530 | 332 | 532 => FtpErrorKind::Login,
        550 if lower.contains("permission") || lower.contains("denied") => FtpErrorKind::Permission,
        550 => FtpErrorKind::NotFound,
        553 => FtpErrorKind::Permission,
        // TLS negotiation refused or failed.
        431 | 522 | 533 | 534 => FtpErrorKind::Tls,
        400..=499 => FtpErrorKind::Transient,
        _ => FtpErrorKind::Protocol,
    }
}

/// Why a TCP connection could not be made, each cause in its own words.
fn connect_failure(err: &io::Error) -> &'static str {
    use io::ErrorKind as K;
    match err.kind() {
        K::ConnectionRefused => "connection refused (nothing listens on that port)",
        K::HostUnreachable => "no route to host",
        K::NetworkUnreachable => "network unreachable",
        K::TimedOut => "connection timed out",
        K::AddrNotAvailable => "address not available",
        K::ConnectionReset => "connection reset by the server",
        _ => "connection failed",
    }
}

fn kind_for_io(err: &io::Error) -> FtpErrorKind {
    use io::ErrorKind as K;
    match err.kind() {
        K::ConnectionRefused
        | K::HostUnreachable
        | K::NetworkUnreachable
        | K::AddrNotAvailable
        | K::NotFound => FtpErrorKind::Network,
        K::InvalidData
            if err
                .get_ref()
                .is_some_and(|inner| inner.is::<rustls::Error>()) =>
        {
            FtpErrorKind::Tls
        }
        _ => FtpErrorKind::Transient,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reply's control characters (a hostile server's terminal escapes) are escaped in
    /// the error, so printing it cannot drive a terminal.
    #[test]
    fn reply_text_in_errors_is_escaped() {
        let e = FtpError::from_reply("h:21", "STOR /a", 553, "no\u{1b}[2J\u{7}way\r\n");
        assert_eq!(e.message(), "553 no\\u{1b}[2J\\u{7}way");
        assert!(!e.to_string().contains(|c: char| c.is_control()), "{e}");
    }

    #[test]
    fn reply_codes_map_to_kinds() {
        assert_eq!(
            kind_for_reply(500, "OOPS: priv_sock_get_result"),
            FtpErrorKind::Transient
        );
        assert_eq!(
            kind_for_reply(500, "Unknown command."),
            FtpErrorKind::Protocol
        );
        assert_eq!(kind_for_reply(530, "Login incorrect."), FtpErrorKind::Login);
        assert_eq!(
            kind_for_reply(550, "No such file or directory"),
            FtpErrorKind::NotFound
        );
        assert_eq!(
            kind_for_reply(550, "Permission denied."),
            FtpErrorKind::Permission
        );
        assert_eq!(
            kind_for_reply(553, "Could not create file."),
            FtpErrorKind::Permission
        );
        for c in [421, 425, 426, 450, 451] {
            assert_eq!(kind_for_reply(c, "x"), FtpErrorKind::Transient, "{c}");
        }
        assert_eq!(kind_for_reply(534, "x"), FtpErrorKind::Tls);
        assert_eq!(kind_for_reply(500, "x"), FtpErrorKind::Protocol);
    }

    #[test]
    fn display_names_server_and_command_never_the_password() {
        let pass = crate::command::SecretLine::pass(&secrecy::SecretString::from("hunter2"));
        let e = FtpError::from_reply("127.0.0.1:21", pass.label(), 530, "Login incorrect.");
        let s = e.to_string();
        assert_eq!(s, "ftp 127.0.0.1:21: PASS ****: 530 Login incorrect.");
        assert!(!format!("{e:?}").contains("hunter2"));
        assert_eq!(e.kind(), FtpErrorKind::Login);
        assert!(!e.retryable());
        assert!(e.hint().is_some());
        // The library says what to check; the CLI adds the command that does it.
        assert_eq!(e.hint(), Some("check the username and password"));
        let t = FtpError::from_reply("h:21", "STOR /a", 426, "Failure writing network stream.");
        assert!(t.retryable());
        assert_eq!(t.code(), Some(426));
    }

    #[test]
    fn io_errors_map_to_network_or_transient() {
        let refused = FtpError::from_io("h:1", None, io::ErrorKind::ConnectionRefused.into());
        assert_eq!(refused.kind(), FtpErrorKind::Network);
        assert!(refused.message().starts_with("connection refused"));
        for (k, want) in [
            (io::ErrorKind::HostUnreachable, "no route to host"),
            (io::ErrorKind::NetworkUnreachable, "network unreachable"),
        ] {
            let e = FtpError::from_io("h:1", None, k.into());
            assert_eq!((e.kind(), e.message()), (FtpErrorKind::Network, want));
        }
        let reset = FtpError::from_io("h:1", Some("LIST"), io::ErrorKind::ConnectionReset.into());
        assert_eq!(reset.kind(), FtpErrorKind::Transient);
        assert!(reset.retryable());
    }
}
