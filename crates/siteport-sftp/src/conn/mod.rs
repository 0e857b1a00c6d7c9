//! [`SftpConnection`]: connect, check the host key, authenticate, open the `sftp` subsystem.

mod ops;
mod transfer;

pub use ops::{EntryKind, RemoteEntry, RenameMethod};
pub use transfer::{CHUNK, IN_FLIGHT, Observer, OnBytes, PutOutcome};

use std::sync::{Arc, Mutex};

use russh::client;
use russh::keys::PublicKeyOrCertificate;
use russh_sftp::client::RawSftpSession;
use secrecy::ExposeSecret;

use crate::error::{SftpError, SftpErrorKind, kind_for_connect_io};
use crate::hostkey;
use crate::options::{Auth, ConnectOptions, HostKeyPolicy};

/// The extension that renames over an existing file atomically (POSIX `rename(2)`).
const POSIX_RENAME: &str = "posix-rename@openssh.com";

/// The extension by which a server states its limits, among them how many handles it keeps
/// open at once (OpenSSH's sftp-server offers it).
const LIMITS: &str = "limits@openssh.com";

/// russh's client callbacks: only the host-key check matters here.
struct Client {
    policy: HostKeyPolicy,
    host: String,
    port: u16,
    /// Why the key was refused, for [`SftpConnection::connect`] to return.
    refusal: Arc<Mutex<Option<SftpError>>>,
}

impl client::Handler for Client {
    type Error = russh::Error;

    /// Runs during the key exchange, before any authentication: a refused key ends the
    /// connection there, so no password or key signature is ever offered to that server.
    async fn check_server_key(
        &mut self,
        server_public_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let key = match server_public_key {
            PublicKeyOrCertificate::PublicKey { key, .. } => key.clone(),
            PublicKeyOrCertificate::Certificate(cert) => {
                russh::keys::PublicKey::from(cert.public_key().clone())
            }
        };
        match hostkey::check(&self.policy, &self.host, self.port, &key) {
            Ok(()) => Ok(true),
            Err(e) => {
                if let Ok(mut slot) = self.refusal.lock() {
                    *slot = Some(e);
                }
                Ok(false)
            }
        }
    }
}

/// One logged-in SSH connection with its SFTP session. Requests may run concurrently
/// (`&self`); transfers keep many in flight.
pub struct SftpConnection {
    handle: client::Handle<Client>,
    pub(crate) sftp: Arc<RawSftpSession>,
    pub(crate) server: String,
    pub(crate) posix_rename: bool,
    /// The server offers `limits@openssh.com`.
    limits: bool,
    pub(crate) file_mode: u32,
    pub(crate) dir_mode: u32,
    /// Part of temp names, different per connection.
    pub(crate) tmp_tag: String,
    /// WRITEs and READs in flight on this connection, all transfers together, at most
    /// [`IN_FLIGHT`]: transfers sharing it keep the server's queue (and the memory of their
    /// chunks) where one transfer alone would. Measured with 4 uploads of 1 MiB files sharing
    /// a session and 64 WRITEs each: the server's CPU doubled (sshd's buffers of queued
    /// requests) and the run took 1.6 times as long.
    pub(crate) data_slots: Arc<tokio::sync::Semaphore>,
}

impl std::fmt::Debug for SftpConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SftpConnection")
            .field("server", &self.server)
            .field("posix_rename", &self.posix_rename)
            .finish_non_exhaustive()
    }
}

impl SftpConnection {
    /// Connects, checks the host key, authenticates and starts SFTP, all within
    /// `opts.timeout`.
    pub async fn connect(opts: &ConnectOptions) -> Result<Self, SftpError> {
        let server = opts.server();
        let reached = std::sync::atomic::AtomicBool::new(false);
        let r =
            match tokio::time::timeout(opts.timeout, Self::connect_inner(opts, &server, &reached))
                .await
            {
                Ok(r) => r,
                Err(_) => Err(SftpError::new(
                    SftpErrorKind::Transient,
                    &server,
                    format!("no answer within {} s", opts.timeout.as_secs()),
                )
                .with_op("connect")),
            };
        // Once TCP is up every failure (a cut key exchange, a lost login, a timeout there)
        // came from a live server: the engine retries those on its reconnect budget.
        r.map_err(|e| {
            if reached.load(std::sync::atomic::Ordering::SeqCst) {
                e.server_reached()
            } else {
                e
            }
        })
    }

    async fn connect_inner(
        opts: &ConnectOptions,
        server: &str,
        reached: &std::sync::atomic::AtomicBool,
    ) -> Result<Self, SftpError> {
        let tcp = tokio::net::TcpStream::connect((opts.host.as_str(), opts.port))
            .await
            .map_err(|e| {
                SftpError::new(kind_for_connect_io(&e), server, "connection failed")
                    .with_op("connect")
                    .with_source(e)
            })?;
        reached.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = tcp.set_nodelay(true);
        let config = Arc::new(client::Config {
            // Large windows and packets: one channel carries 64 requests of 32 KiB in flight.
            window_size: 16 * 1024 * 1024,
            maximum_packet_size: 256 * 1024,
            inactivity_timeout: None,
            nodelay: true,
            preferred: preferred_algorithms(),
            ..Default::default()
        });
        let refusal = Arc::new(Mutex::new(None));
        let handler = Client {
            policy: opts.host_keys.clone(),
            host: opts.host.clone(),
            port: opts.port,
            refusal: refusal.clone(),
        };
        let mut handle = match client::connect_stream(config, tcp, handler).await {
            Ok(h) => h,
            Err(e) => {
                let refused = refusal.lock().ok().and_then(|mut s| s.take());
                return Err(refused.unwrap_or_else(|| ssh_error(server, "key exchange", e)));
            }
        };
        authenticate(&mut handle, opts, server).await?;
        let channel = handle
            .channel_open_session()
            .await
            .map_err(|e| ssh_error(server, "open session", e))?;
        channel
            .request_subsystem(true, "sftp")
            .await
            .map_err(|e| ssh_error(server, "start sftp", e))?;
        let sftp = RawSftpSession::new(channel.into_stream());
        sftp.set_timeout(opts.timeout.as_secs().max(1));
        let version = sftp
            .init()
            .await
            .map_err(|e| SftpError::from_sftp(server, "sftp init", e))?;
        let posix_rename = version.extensions.contains_key(POSIX_RENAME);
        let limits = version.extensions.contains_key(LIMITS);
        tracing::debug!(
            "sftp {server}: protocol {} extensions {:?}",
            version.version,
            version.extensions.keys().collect::<Vec<_>>()
        );
        Ok(Self {
            handle,
            sftp: Arc::new(sftp),
            server: server.to_string(),
            posix_rename,
            limits,
            file_mode: opts.file_mode,
            dir_mode: opts.dir_mode,
            tmp_tag: transfer::new_tmp_tag(),
            data_slots: Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT)),
        })
    }

    /// `host:port`.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// Whether the server offers `posix-rename@openssh.com` (atomic replace).
    pub fn has_posix_rename(&self) -> bool {
        self.posix_rename
    }

    /// Whether the server says it keeps many file handles open at once (it offers
    /// `limits@openssh.com`, whose answer includes that number), so several transfers may
    /// share this connection (its methods take `&self`): OpenSSH's sftp-server does. A server
    /// that does not say may keep per-session transfer state (proftpd's mod_sftp logs one
    /// transfer per session at a time).
    pub fn takes_concurrent_transfers(&self) -> bool {
        self.limits
    }

    /// Whether the SSH connection is still up.
    pub fn is_open(&self) -> bool {
        !self.handle.is_closed()
    }

    /// Ends the SFTP session and the SSH connection politely.
    pub async fn quit(self) -> Result<(), SftpError> {
        let _ = self.sftp.close_session();
        self.handle
            .disconnect(russh::Disconnect::ByApplication, "bye", "en")
            .await
            .map_err(|e| ssh_error(&self.server, "disconnect", e))
    }
}

/// An SSH-level error during `op`.
fn ssh_error(server: &str, op: &str, e: russh::Error) -> SftpError {
    let kind = match &e {
        russh::Error::IO(io) => kind_for_connect_io(io),
        russh::Error::NoCommonAlgo { .. } | russh::Error::UnknownKey => SftpErrorKind::Protocol,
        _ => SftpErrorKind::Transient,
    };
    SftpError::new(kind, server, "ssh failed")
        .with_op(op)
        .with_source(e)
}

fn login_refused(server: &str, opts: &ConnectOptions, what: &str) -> SftpError {
    SftpError::new(
        SftpErrorKind::Login,
        server,
        format!("the server refused {what} for user {}", opts.username),
    )
    .with_op("authenticate")
    .with_hint(match opts.auth {
        Auth::Password(_) => "check the username and password",
        Auth::Key { .. } => "check the username and that the server authorizes this key",
        Auth::Agent => "check the username and that the agent holds an authorized key",
    })
}

async fn authenticate(
    handle: &mut client::Handle<Client>,
    opts: &ConnectOptions,
    server: &str,
) -> Result<(), SftpError> {
    let user = opts.username.clone();
    let auth_err = |e| ssh_error(server, "authenticate", e);
    let ok = match &opts.auth {
        Auth::Password(p) => handle
            .authenticate_password(user, p.expose_secret())
            .await
            .map_err(auth_err)?
            .success(),
        Auth::Key { pem, passphrase } => {
            let key = russh::keys::decode_secret_key(
                pem.expose_secret(),
                passphrase.as_ref().map(|p| p.expose_secret()),
            )
            .map_err(|_| {
                // The decoder's error may quote the key text: never attach it.
                SftpError::new(
                    SftpErrorKind::Invalid,
                    server,
                    "the private key cannot be read (not an OpenSSH/PEM key, or a wrong or \
                     missing passphrase)",
                )
                .with_op("authenticate")
            })?;
            let hash = handle
                .best_supported_rsa_hash()
                .await
                .map_err(auth_err)?
                .flatten();
            let key = russh::keys::PrivateKeyWithHashAlg::new(Arc::new(key), hash);
            handle
                .authenticate_publickey(user, key)
                .await
                .map_err(auth_err)?
                .success()
        }
        Auth::Agent => agent_auth(handle, user, opts.agent_socket.as_deref(), server).await?,
    };
    if ok {
        Ok(())
    } else {
        Err(login_refused(server, opts, opts.auth.method()))
    }
}

/// Offers each key of the ssh-agent in turn until one is accepted.
async fn agent_auth(
    handle: &mut client::Handle<Client>,
    user: String,
    socket: Option<&std::path::Path>,
    server: &str,
) -> Result<bool, SftpError> {
    // A login with nothing to offer: `Login`, like a refused one (the fix is the same, a
    // credential that works), not `Invalid`, which is for a key or passphrase that is wrong.
    let no_agent = |e: russh::keys::Error| {
        let why = if socket.is_none() && std::env::var_os("SSH_AUTH_SOCK").is_none() {
            "SSH_AUTH_SOCK is not set"
        } else {
            "cannot talk to it"
        };
        SftpError::new(
            SftpErrorKind::Login,
            server,
            format!("no usable ssh-agent to log in with ({why})"),
        )
        .with_op("authenticate")
        .with_hint(
            "start ssh-agent, `ssh-add` an authorized key and set SSH_AUTH_SOCK, or log in \
             with a password or a private key",
        )
        .with_source(e)
    };
    use russh::keys::agent::client::AgentClient;
    let mut agent = match socket {
        Some(path) => AgentClient::connect_uds(path)
            .await
            .map_err(no_agent)?
            .dynamic(),
        None => AgentClient::connect_env()
            .await
            .map_err(no_agent)?
            .dynamic(),
    };
    let identities = agent.request_identities().await.map_err(no_agent)?;
    let hash = handle
        .best_supported_rsa_hash()
        .await
        .map_err(|e| ssh_error(server, "authenticate", e))?
        .flatten();
    for id in identities {
        let russh::keys::agent::AgentIdentity::PublicKey { key, .. } = id else {
            continue;
        };
        match handle
            .authenticate_publickey_with(user.clone(), key, hash, &mut agent)
            .await
        {
            Ok(r) if r.success() => return Ok(true),
            Ok(_) => continue,
            Err(e) => {
                tracing::debug!("sftp {server}: agent key not usable: {e}");
                continue;
            }
        }
    }
    Ok(false)
}

/// russh's defaults, with AES-GCM first where the CPU has AES instructions (as Go's ssh and so
/// rclone do): both ends then spend a fraction of the CPU chacha20-poly1305 costs them, which
/// on a busy or small server is the transfer's ceiling. Elsewhere chacha20-poly1305 stays
/// first (constant-time and fast in software).
fn preferred_algorithms() -> russh::Preferred {
    use russh::cipher;
    let mut p = russh::Preferred::default();
    if aes_in_hardware() {
        let first = [cipher::AES_128_GCM, cipher::AES_256_GCM];
        let rest = p.cipher.iter().filter(|c| !first.contains(c)).copied();
        p.cipher = first.into_iter().chain(rest).collect::<Vec<_>>().into();
    }
    p
}

#[cfg(target_arch = "x86_64")]
fn aes_in_hardware() -> bool {
    std::arch::is_x86_feature_detected!("aes") && std::arch::is_x86_feature_detected!("pclmulqdq")
}

#[cfg(target_arch = "aarch64")]
fn aes_in_hardware() -> bool {
    std::arch::is_aarch64_feature_detected!("aes")
        && std::arch::is_aarch64_feature_detected!("pmull")
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn aes_in_hardware() -> bool {
    false
}

#[cfg(test)]
mod cipher_tests {
    use super::*;

    #[test]
    fn aes_gcm_first_only_with_aes_in_hardware_and_nothing_dropped() {
        let p = preferred_algorithms();
        let default = russh::Preferred::default();
        let mut got: Vec<_> = p.cipher.iter().map(|c| c.as_ref().to_owned()).collect();
        let first = got.first().cloned();
        if aes_in_hardware() {
            assert_eq!(first.as_deref(), Some("aes128-gcm@openssh.com"));
        } else {
            assert_eq!(first, default.cipher.first().map(|c| c.as_ref().to_owned()));
        }
        // The same set as russh's defaults plus AES-128-GCM: no cipher a server may need is lost.
        let mut want: Vec<_> = default
            .cipher
            .iter()
            .map(|c| c.as_ref().to_owned())
            .chain(aes_in_hardware().then(|| "aes128-gcm@openssh.com".to_owned()))
            .collect();
        got.sort();
        want.sort();
        want.dedup();
        assert_eq!(got, want);
    }
}
