//! SSH host keys of SFTP endpoints, for trusting a server the way `ssh` asks on a first
//! connection (`siteport site trust`): which key the server offers, and what the endpoint's
//! own policy (its known_hosts files, a pin, or "accept any") says of it.
//!
//! Nothing is ever authenticated: the key is read during the key exchange, and the probe
//! authenticates only through an agent socket that does not exist (in a fresh private
//! directory, so nobody can put an agent there), so no password or key is ever offered.

use std::path::Path;

use siteport_sftp::SftpErrorKind;
use siteport_sftp::{Auth, ConnectOptions, HostKeyInfo, HostKeyPolicy, SftpConnection, SftpError};

use crate::endpoint::{Endpoint, Protocol};
use crate::error::{Error, ErrorKind, Result};
use crate::sftp::{host_key_policy, map_sftp_error};

/// A host key a server offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostKey {
    /// The key's algorithm, e.g. `ssh-ed25519`.
    pub algorithm: String,
    /// `SHA256:` and the unpadded base64 digest, as `ssh-keygen -lf` prints it.
    pub fingerprint: String,
    /// The known_hosts line that trusts this key for this host and port.
    pub known_hosts_line: String,
    /// For a changed key: where the other key is recorded (`file:line`), if in a file.
    pub recorded_at: Option<String>,
}

impl From<&HostKeyInfo> for HostKey {
    fn from(i: &HostKeyInfo) -> Self {
        Self {
            algorithm: i.algorithm.clone(),
            fingerprint: i.fingerprint.clone(),
            known_hosts_line: i.known_hosts_line.clone(),
            recorded_at: i.recorded_at.clone(),
        }
    }
}

/// What the endpoint's policy says of the key its server offers.
#[derive(Debug)]
pub enum HostKeyVerdict {
    /// Accepted (known, pinned, or any key accepted).
    Trusted,
    /// Not recorded anywhere the policy looks.
    Unknown,
    /// Another key is recorded (or pinned) for this server: never overwritten by siteport.
    Changed {
        /// What the check said (never a secret).
        message: String,
        /// The offered key, with where the recorded one is.
        key: Option<HostKey>,
    },
}

fn not_sftp(endpoint: &Endpoint) -> Error {
    Error::new(
        ErrorKind::Config,
        endpoint.server(),
        "host keys belong to SFTP sites; this endpoint is not one",
    )
}

/// Connects with `policy`, offering no credential (see the module docs).
async fn probe(
    endpoint: &Endpoint,
    policy: HostKeyPolicy,
) -> Result<std::result::Result<(), SftpError>> {
    let dir = tempfile::tempdir()
        .map_err(|e| Error::local_io("create a temporary directory", &std::env::temp_dir(), e))?;
    let mut o = ConnectOptions::new(
        endpoint.host.clone(),
        endpoint.login.username.clone(),
        Auth::Agent,
        policy,
    );
    o.port = endpoint.port;
    o.timeout = endpoint.timeout;
    o.agent_socket = Some(Path::new(dir.path()).join("no-agent.sock"));
    Ok(match SftpConnection::connect(&o).await {
        Ok(conn) => {
            let _ = conn.quit().await;
            Ok(())
        }
        Err(e) => Err(e),
    })
}

/// The key the server of `endpoint` offers (an empty known_hosts list makes every key
/// unknown, and the refusal carries it).
pub async fn offered_host_key(endpoint: &Endpoint) -> Result<HostKey> {
    let Protocol::Sftp(_) = &endpoint.protocol else {
        return Err(not_sftp(endpoint));
    };
    match probe(endpoint, HostKeyPolicy::KnownHosts(Vec::new())).await? {
        Err(e) => match e.host_key() {
            Some(info) => Ok(HostKey::from(info)),
            None => Err(map_sftp_error(e, true)),
        },
        Ok(()) => Err(Error::new(
            ErrorKind::HostKey,
            endpoint.server(),
            "the server was accepted without a known key",
        )),
    }
}

/// The endpoint's own host-key policy applied to the key its server offers.
pub async fn host_key_verdict(endpoint: &Endpoint) -> Result<HostKeyVerdict> {
    let Protocol::Sftp(settings) = &endpoint.protocol else {
        return Err(not_sftp(endpoint));
    };
    match probe(endpoint, host_key_policy(settings)).await? {
        Ok(()) => Ok(HostKeyVerdict::Trusted),
        Err(e) => match e.kind() {
            SftpErrorKind::HostKeyUnknown => Ok(HostKeyVerdict::Unknown),
            SftpErrorKind::HostKeyChanged => Ok(HostKeyVerdict::Changed {
                message: e.message().to_string(),
                key: e.host_key().map(HostKey::from),
            }),
            SftpErrorKind::Network | SftpErrorKind::Transient => Err(map_sftp_error(e, true)),
            // Past the host key check: the missing agent (or the server) ended the session.
            _ => Ok(HostKeyVerdict::Trusted),
        },
    }
}

impl Error {
    /// Whether this is an SFTP server offering another key than the one recorded for it (as
    /// opposed to an unknown one).
    pub fn is_changed_host_key(&self) -> bool {
        std::error::Error::source(self)
            .and_then(|s| s.downcast_ref::<SftpError>())
            .is_some_and(|s| s.kind() == SftpErrorKind::HostKeyChanged)
    }
}
