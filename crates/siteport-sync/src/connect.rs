//! From an [`Endpoint`] to a connection: picks the adapter of its [`Protocol`] (FTP/FTPS in
//! `ftp.rs`, SFTP in `sftp.rs`), plus the process-wide transport settings the CLI sets
//! without naming a transport crate.

#[cfg(any(feature = "ftp", feature = "sftp"))]
use std::sync::Arc;

#[cfg(any(feature = "ftp", feature = "sftp"))]
use crate::endpoint::{Endpoint, Protocol};
#[cfg(any(feature = "ftp", feature = "sftp"))]
use crate::error::Result;
#[cfg(any(feature = "ftp", feature = "sftp"))]
use crate::remote::RemoteFactory;

#[cfg(any(feature = "ftp", feature = "sftp"))]
impl Endpoint {
    /// The connection factory for this endpoint: see [`connect_factory`].
    pub fn factory(&self) -> Arc<dyn RemoteFactory> {
        connect_factory(self)
    }
}

/// The engine's connection factory for `endpoint`, through the adapter of its protocol.
/// Nothing is contacted until the engine connects.
#[cfg(any(feature = "ftp", feature = "sftp"))]
pub fn connect_factory(endpoint: &Endpoint) -> Arc<dyn RemoteFactory> {
    match &endpoint.protocol {
        #[cfg(feature = "ftp")]
        Protocol::Ftp(settings) => Arc::new(crate::ftp::FtpRemoteFactory::new(endpoint, settings)),
        #[cfg(feature = "sftp")]
        Protocol::Sftp(settings) => {
            Arc::new(crate::sftp::SftpRemoteFactory::new(endpoint, settings))
        }
        #[allow(unreachable_patterns)]
        other => Arc::new(Unsupported(other.scheme())),
    }
}

/// The factory of a protocol this build leaves out: every connection fails with `Config`.
#[cfg(any(feature = "ftp", feature = "sftp"))]
struct Unsupported(&'static str);

#[cfg(any(feature = "ftp", feature = "sftp"))]
impl Unsupported {
    fn error(&self) -> crate::error::Error {
        crate::error::Error::new(
            crate::error::ErrorKind::Config,
            self.0,
            format!("this build of siteport has no {} support", self.0),
        )
    }
}

#[cfg(any(feature = "ftp", feature = "sftp"))]
#[async_trait::async_trait]
impl RemoteFactory for Unsupported {
    fn describe(&self) -> String {
        format!("{}://", self.0)
    }

    async fn connect(&self) -> Result<Box<dyn crate::remote::Remote>> {
        Err(self.error())
    }
}

/// Connects, logs in and says goodbye: whether the server accepts this login. Errors carry
/// the engine's kinds as a connecting worker sees them (a refused login is
/// [`ErrorKind::Login`](crate::ErrorKind::Login), a full server
/// [`ErrorKind::TooManyConnections`](crate::ErrorKind::TooManyConnections)).
#[cfg(any(feature = "ftp", feature = "sftp"))]
pub async fn test_login(endpoint: &Endpoint) -> Result<()> {
    match &endpoint.protocol {
        #[cfg(feature = "ftp")]
        Protocol::Ftp(settings) => crate::ftp::test_login(endpoint, settings).await,
        #[cfg(feature = "sftp")]
        Protocol::Sftp(settings) => crate::sftp::test_login(endpoint, settings).await,
        #[allow(unreachable_patterns)]
        other => Err(Unsupported(other.scheme()).error()),
    }
}

/// Limits every transfer of this process to `bytes_per_sec` in total (0: no limit); the
/// first call wins. FTP transfers honour it; SFTP transfers are not limited yet.
pub fn set_bandwidth_limit(bytes_per_sec: u64) {
    #[cfg(feature = "ftp")]
    siteport_ftp::set_bandwidth_limit(bytes_per_sec);
    #[cfg(not(feature = "ftp"))]
    let _ = bytes_per_sec;
}

/// Whether `s` is a certificate pin the `fingerprint` setting accepts (SHA-256 as 32 bytes of
/// hex, with or without `:`).
pub fn is_valid_fingerprint(s: &str) -> bool {
    #[cfg(feature = "ftp")]
    return siteport_ftp::parse_fingerprint(s).is_some();
    #[cfg(not(feature = "ftp"))]
    {
        let hex: String = s
            .chars()
            .filter(|c| !matches!(c, ':' | ' ' | '-'))
            .collect();
        hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit())
    }
}

/// Checks a site's `ca_file` as an FTPS connection would load it: a PEM file with at least
/// one usable certificate. The reason, naming the file, when not. Without FTP support only
/// readability is checked.
pub fn check_ca_file(path: &std::path::Path) -> std::result::Result<(), String> {
    #[cfg(feature = "ftp")]
    return siteport_ftp::check_ca_file(path).map(|_| ());
    #[cfg(not(feature = "ftp"))]
    std::fs::read(path)
        .map(|_| ())
        .map_err(|e| format!("cannot read CA file {}: {e}", path.display()))
}
