//! [`Endpoint`]: where a site lives and how to log in, in the engine's own types, so that
//! callers never build a transport's options themselves. [`connect_factory`] and
//! [`test_login`] hand it to the adapter of its [`Protocol`] (today FTP/FTPS in `ftp.rs`);
//! a new transport adds a variant and an adapter, and nothing above Sync changes.

use std::fmt;
use std::path::PathBuf;
#[cfg(feature = "ftp")]
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;

#[cfg(feature = "ftp")]
use crate::error::Result;
#[cfg(feature = "ftp")]
use crate::remote::RemoteFactory;

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

/// The wire protocol of an endpoint, with the settings that belong to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Protocol {
    /// FTP, plain or with TLS.
    Ftp(FtpSettings),
}

impl Protocol {
    /// The URL scheme used in messages (`ftp`).
    pub fn scheme(&self) -> &'static str {
        match self {
            Protocol::Ftp(_) => "ftp",
        }
    }
}

/// Who logs in. The password is a [`SecretString`]: never in `Debug`, logs or errors.
#[derive(Clone)]
pub struct Login {
    /// Login name.
    pub username: String,
    /// Login password.
    pub password: SecretString,
}

impl Login {
    /// A username and password login.
    pub fn new(username: impl Into<String>, password: SecretString) -> Self {
        Self {
            username: username.into(),
            password,
        }
    }
}

impl fmt::Debug for Login {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Login")
            .field("username", &self.username)
            .field("password", &"****")
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

    /// The connection factory for this endpoint: see [`connect_factory`].
    #[cfg(feature = "ftp")]
    pub fn factory(&self) -> Arc<dyn RemoteFactory> {
        connect_factory(self)
    }
}

/// The engine's connection factory for `endpoint`, through the adapter of its protocol.
/// Nothing is contacted until the engine connects.
#[cfg(feature = "ftp")]
pub fn connect_factory(endpoint: &Endpoint) -> Arc<dyn RemoteFactory> {
    match &endpoint.protocol {
        Protocol::Ftp(settings) => Arc::new(crate::ftp::FtpRemoteFactory::new(endpoint, settings)),
    }
}

/// Connects, logs in and says goodbye: whether the server accepts this login. Errors carry
/// the engine's kinds as a connecting worker sees them (a refused login is
/// [`ErrorKind::Login`](crate::ErrorKind::Login), a full server
/// [`ErrorKind::TooManyConnections`](crate::ErrorKind::TooManyConnections)).
#[cfg(feature = "ftp")]
pub async fn test_login(endpoint: &Endpoint) -> Result<()> {
    match &endpoint.protocol {
        Protocol::Ftp(settings) => crate::ftp::test_login(endpoint, settings).await,
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
        let e = endpoint();
        let shown = format!("{e:?} {e:#?} {:?}", e.login);
        assert!(!shown.contains("hunter2-secret"), "{shown}");
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
