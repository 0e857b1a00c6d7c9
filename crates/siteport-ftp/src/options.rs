//! Connection options.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::Duration;

use secrecy::SecretString;

/// How the connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TlsMode {
    /// Plain FTP. Password and data travel in clear text; a warning is logged.
    None,
    /// `AUTH TLS` on the normal port (FTPES). If the server refuses, the connection fails:
    /// there is never a silent fallback to plain text.
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

impl FromStr for TlsMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "none" | "off" | "plain" => Ok(TlsMode::None),
            "explicit" => Ok(TlsMode::Explicit),
            "implicit" => Ok(TlsMode::Implicit),
            other => Err(format!(
                "unknown TLS mode '{other}'; use none, explicit or implicit"
            )),
        }
    }
}

/// Whether connections may pipeline commands, shared by every connection made from clones of
/// the same [`ConnectOptions`] (a site's connections in one run): the first connection that
/// sees the server answer pipelined commands out of order, or close on them, turns it off
/// for all of them, so that only that connection's file is retried.
#[derive(Debug, Clone, Default)]
pub struct PipelineSwitch {
    off: Arc<AtomicBool>,
}

impl PipelineSwitch {
    /// Whether pipelining is still allowed.
    pub fn is_on(&self) -> bool {
        !self.off.load(Ordering::Relaxed)
    }

    /// Turns pipelining off for good; `true` only for the call that turned it off (so that
    /// the server's misbehaviour is logged once).
    pub fn turn_off(&self) -> bool {
        !self.off.swap(true, Ordering::Relaxed)
    }
}

/// Whether the server lists a directory over the control connection (`STAT -a`) exactly as
/// `LIST -a` does, shared by every connection made from clones of the same
/// [`ConnectOptions`]: the first connection that compared the two tells the others, which then
/// list over the control connection from their first listing on instead of opening a data
/// connection (and its TLS handshake) to compare again.
#[derive(Debug, Clone, Default)]
pub struct ListingVerdict {
    /// 0: not compared yet; 1: the same; 2: they differ.
    seen: Arc<AtomicU8>,
}

impl ListingVerdict {
    /// What a connection found, if one has compared.
    pub fn get(&self) -> Option<bool> {
        match self.seen.load(Ordering::Relaxed) {
            1 => Some(true),
            2 => Some(false),
            _ => None,
        }
    }

    /// Records a comparison; a difference found by any connection wins.
    pub fn set(&self, same: bool) {
        let v = if same { 1 } else { 2 };
        self.seen.fetch_max(v, Ordering::Relaxed);
    }
}

/// Everything needed to open and log in one control connection.
#[derive(Clone)]
pub struct ConnectOptions {
    /// Host name or IP address; also the name the certificate must be valid for.
    pub host: String,
    /// Control port.
    pub port: u16,
    /// TLS mode.
    pub tls: TlsMode,
    /// Login name.
    pub username: String,
    /// Login password. Never logged, never in `Debug`, never in errors.
    pub password: SecretString,
    /// PEM file with the CA certificate(s) to trust instead of the built-in web PKI roots.
    pub ca_file: Option<PathBuf>,
    /// SHA-256 fingerprint of the server's leaf certificate (hex, `:` separators allowed). When
    /// set, a certificate with this fingerprint is accepted whatever its chain or name.
    pub fingerprint: Option<String>,
    /// Accept any certificate. Only when explicitly asked for.
    pub insecure: bool,
    /// Limit for connecting and for each wait on the server.
    pub timeout: Duration,
    /// Pipelining allowed (with servers known to answer in order); shared by clones.
    pub pipelining: PipelineSwitch,
    /// Whether `STAT -a` lists as `LIST -a` does on this server; shared by clones.
    pub listing: ListingVerdict,
}

impl ConnectOptions {
    /// Options with the defaults: no custom CA, no pin, verification on, 30 s timeout.
    pub fn new(
        host: impl Into<String>,
        port: u16,
        tls: TlsMode,
        username: impl Into<String>,
        password: SecretString,
    ) -> Self {
        Self {
            host: host.into(),
            port,
            tls,
            username: username.into(),
            password,
            ca_file: None,
            fingerprint: None,
            insecure: false,
            timeout: Duration::from_secs(30),
            pipelining: PipelineSwitch::default(),
            listing: ListingVerdict::default(),
        }
    }

    /// `host:port` (IPv6 addresses in brackets), as used in error messages.
    pub fn server(&self) -> String {
        if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectOptions")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field("password", &"****")
            .field("ca_file", &self.ca_file)
            .field("fingerprint", &self.fingerprint)
            .field("insecure", &self.insecure)
            .field("timeout", &self.timeout)
            .field("pipelining", &self.pipelining.is_on())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_password() {
        let o = ConnectOptions::new(
            "h",
            21,
            TlsMode::Explicit,
            "u",
            SecretString::from("s3cr3t-pw"),
        );
        let d = format!("{o:?}");
        assert!(!d.contains("s3cr3t-pw"), "{d}");
        assert!(d.contains("****"));
        assert_eq!(o.server(), "h:21");
    }

    #[test]
    fn tls_mode_parses() {
        assert_eq!("Explicit".parse::<TlsMode>(), Ok(TlsMode::Explicit));
        assert_eq!("none".parse::<TlsMode>(), Ok(TlsMode::None));
        assert!("tls".parse::<TlsMode>().is_err());
        assert_eq!(TlsMode::Implicit.default_port(), 990);
    }
}
