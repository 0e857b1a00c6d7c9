//! [`Endpoint`]: where a site lives and how to log in, in the engine's own types, so that
//! callers never build a transport's options themselves. `connect.rs` hands it to the
//! adapter of its [`Protocol`] (FTP/FTPS in `ftp.rs`, SFTP in `sftp.rs`); a new transport
//! adds a variant and an adapter, and nothing above Sync changes.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;

/// How an FTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TlsMode {
    /// Plain FTP: password and files cross the network in clear text.
    None,
    /// `AUTH TLS` on the normal port (FTPES); never a silent fallback to plain text.
    #[default]
    Explicit,
    /// TLS from the first byte (FTPS, usually port 990).
    Implicit,
}

impl TlsMode {
    /// The name used in config files: `none`, `explicit`, `implicit`.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsMode::None => "none",
            TlsMode::Explicit => "explicit",
            TlsMode::Implicit => "implicit",
        }
    }

    /// The usual control port for this mode (21, or 990 for implicit TLS).
    pub fn default_port(self) -> u16 {
        match self {
            TlsMode::Implicit => 990,
            _ => 21,
        }
    }
}

impl fmt::Display for TlsMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The settings only FTP/FTPS has: TLS mode and how the server certificate is checked.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FtpSettings {
    /// TLS mode.
    pub tls: TlsMode,
    /// PEM file with the CA certificate(s) to trust instead of the built-in web PKI roots.
    pub ca_file: Option<PathBuf>,
    /// SHA-256 pin of the server's leaf certificate (hex, `:` separators allowed): a
    /// certificate with it is accepted whatever its chain or name.
    pub fingerprint: Option<String>,
    /// Accept any certificate. Only when explicitly asked for.
    pub insecure: bool,
}

/// The settings only SFTP has: how the server's host key is checked. Strict by default:
/// with nothing set, the key must be in `~/.ssh/known_hosts`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SftpSettings {
    /// known_hosts files to check besides `~/.ssh/known_hosts` (e.g. a per-site file).
    pub known_hosts: Vec<PathBuf>,
    /// Leave `~/.ssh/known_hosts` out (only `known_hosts` and `host_key` count).
    pub no_user_known_hosts: bool,
    /// A pin of the host key, `SHA256:…` as OpenSSH prints it: the key must have it,
    /// whatever the known_hosts files say.
    pub host_key: Option<String>,
    /// Accept any host key. Only when explicitly asked for.
    pub insecure: bool,
    /// Permissions of uploaded files; `None`: 0644.
    pub file_mode: Option<u32>,
    /// Permissions of directories siteport creates; `None`: 0755.
    pub dir_mode: Option<u32>,
}

/// The wire protocol of an endpoint, with the settings that belong to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Protocol {
    /// FTP, plain or with TLS.
    Ftp(FtpSettings),
    /// SFTP (over SSH).
    Sftp(SftpSettings),
}

impl Protocol {
    /// The URL scheme used in messages (`ftp`, `sftp`).
    pub fn scheme(&self) -> &'static str {
        match self {
            Protocol::Ftp(_) => "ftp",
            Protocol::Sftp(_) => "sftp",
        }
    }

    /// The protocol's usual port: 21 (990 for implicit FTPS), 22 for SFTP.
    pub fn default_port(&self) -> u16 {
        match self {
            Protocol::Ftp(s) => s.tls.default_port(),
            Protocol::Sftp(_) => 22,
        }
    }
}

/// Who logs in. Secrets are [`SecretString`]s: never in `Debug`, logs or errors.
///
/// Over SFTP: with an `ssh_key`, the key authenticates (with its passphrase when encrypted);
/// with an empty password and no key, the ssh-agent does; else the password.
#[derive(Clone)]
pub struct Login {
    /// Login name.
    pub username: String,
    /// Login password.
    pub password: SecretString,
    /// An SSH private key (OpenSSH or PEM text), for SFTP.
    pub ssh_key: Option<SecretString>,
    /// The passphrase of an encrypted `ssh_key`.
    pub ssh_key_passphrase: Option<SecretString>,
}

impl Login {
    /// A username and password login.
    pub fn new(username: impl Into<String>, password: SecretString) -> Self {
        Self {
            username: username.into(),
            password,
            ssh_key: None,
            ssh_key_passphrase: None,
        }
    }

    /// The same login with an SSH private key (and its passphrase, if encrypted).
    pub fn with_ssh_key(mut self, key: SecretString, passphrase: Option<SecretString>) -> Self {
        self.ssh_key = Some(key);
        self.ssh_key_passphrase = passphrase;
        self
    }
}

impl fmt::Debug for Login {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = |s: &Option<SecretString>| s.as_ref().map(|_| "****");
        f.debug_struct("Login")
            .field("username", &self.username)
            .field("password", &"****")
            .field("ssh_key", &shown(&self.ssh_key))
            .field("ssh_key_passphrase", &shown(&self.ssh_key_passphrase))
            .finish()
    }
}

/// One site's server: address, protocol and its settings, remote root and login.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Host name or IP address; also the name a TLS certificate must be valid for.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Protocol and its settings.
    pub protocol: Protocol,
    /// The site's remote directory: absolute, or relative to the login directory (empty
    /// for the login directory itself).
    pub root: String,
    /// Who logs in.
    pub login: Login,
    /// Limit for connecting and for each wait on the server.
    pub timeout: Duration,
}

impl Endpoint {
    /// An endpoint with the default 30 s timeout.
    pub fn new(
        host: impl Into<String>,
        port: u16,
        protocol: Protocol,
        root: impl Into<String>,
        login: Login,
    ) -> Self {
        Self {
            host: host.into(),
            port,
            protocol,
            root: root.into(),
            login,
            timeout: Duration::from_secs(30),
        }
    }

    /// `host:port` (an IPv6 address in brackets), as used in messages.
    pub fn server(&self) -> String {
        if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint() -> Endpoint {
        Endpoint::new(
            "::1",
            2121,
            Protocol::Ftp(FtpSettings::default()),
            "/htdocs",
            Login::new("deploy", SecretString::from("hunter2-secret".to_string())),
        )
    }

    #[test]
    fn debug_hides_the_password() {
        let mut e = endpoint();
        e.login = e.login.with_ssh_key(
            SecretString::from("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1r"),
            Some(SecretString::from("key-phrase-77")),
        );
        let shown = format!("{e:?} {e:#?} {:?}", e.login);
        assert!(!shown.contains("hunter2-secret"), "{shown}");
        assert!(
            !shown.contains("b3BlbnNzaC1r") && !shown.contains("key-phrase-77"),
            "{shown}"
        );
        assert!(
            shown.contains("****") && shown.contains("deploy"),
            "{shown}"
        );
    }

    #[test]
    fn server_brackets_ipv6() {
        let mut e = endpoint();
        assert_eq!(e.server(), "[::1]:2121");
        e.host = "example.com".into();
        assert_eq!(e.server(), "example.com:2121");
    }

    #[test]
    fn tls_defaults() {
        assert_eq!(TlsMode::default(), TlsMode::Explicit);
        assert_eq!(TlsMode::Implicit.default_port(), 990);
        assert_eq!(TlsMode::None.default_port(), 21);
        assert_eq!(TlsMode::Explicit.to_string(), "explicit");
    }
}
