//! How to reach and log in to an SFTP server: [`ConnectOptions`], [`Auth`], [`HostKeyPolicy`].

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;

/// How to authenticate. Secrets stay in [`SecretString`]s; `Debug` shows `****`.
#[derive(Clone)]
pub enum Auth {
    /// Password authentication.
    Password(SecretString),
    /// A private key (OpenSSH or PEM text), with its passphrase if it is encrypted.
    Key {
        /// The private key file's contents.
        pem: SecretString,
        /// The passphrase of an encrypted key.
        passphrase: Option<SecretString>,
    },
    /// Every key the ssh-agent at `SSH_AUTH_SOCK` holds, in its order.
    Agent,
}

impl Auth {
    /// The method's name for messages: `password`, `key`, `agent`.
    pub fn method(&self) -> &'static str {
        match self {
            Auth::Password(_) => "password",
            Auth::Key { .. } => "key",
            Auth::Agent => "agent",
        }
    }
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::Password(_) => f.debug_tuple("Password").field(&"****").finish(),
            Auth::Key { passphrase, .. } => f
                .debug_struct("Key")
                .field("pem", &"****")
                .field("passphrase", &passphrase.as_ref().map(|_| "****"))
                .finish(),
            Auth::Agent => f.write_str("Agent"),
        }
    }
}

/// How the server's host key is checked. Whatever the policy, the check happens during the
/// key exchange, before any authentication is attempted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKeyPolicy {
    /// The key must be recorded for this host (and port) in one of these OpenSSH
    /// known_hosts files (plain or hashed `|1|salt|hash` host names). Missing files count as
    /// empty.
    KnownHosts(Vec<PathBuf>),
    /// The key's SHA-256 fingerprint must be this, as OpenSSH prints it (`SHA256:` and
    /// base64, padding optional).
    Pin(String),
    /// Any key is accepted (a warning is logged on every connection). Only when asked for.
    Insecure,
}

impl HostKeyPolicy {
    /// The user's `~/.ssh/known_hosts` (nothing when there is no `HOME`).
    pub fn user_known_hosts() -> Self {
        let files = std::env::var_os("HOME")
            .map(|h| vec![PathBuf::from(h).join(".ssh/known_hosts")])
            .unwrap_or_default();
        HostKeyPolicy::KnownHosts(files)
    }
}

/// Everything needed to open and log in one SFTP session.
#[derive(Clone)]
pub struct ConnectOptions {
    /// Host name or IP address (also the name looked up in known_hosts).
    pub host: String,
    /// TCP port (22 by default).
    pub port: u16,
    /// Login name.
    pub username: String,
    /// How to authenticate.
    pub auth: Auth,
    /// How the host key is checked.
    pub host_keys: HostKeyPolicy,
    /// Limit for connecting and for each request.
    pub timeout: Duration,
    /// Permissions set on uploaded files (0644 by default).
    pub file_mode: u32,
    /// Permissions of created directories (0755 by default).
    pub dir_mode: u32,
    /// The ssh-agent socket for [`Auth::Agent`]; `None`: `SSH_AUTH_SOCK`.
    pub agent_socket: Option<PathBuf>,
}

impl ConnectOptions {
    /// Options for port 22, a 30 s timeout, modes 0644/0755.
    pub fn new(
        host: impl Into<String>,
        username: impl Into<String>,
        auth: Auth,
        host_keys: HostKeyPolicy,
    ) -> Self {
        Self {
            host: host.into(),
            port: 22,
            username: username.into(),
            auth,
            host_keys,
            timeout: Duration::from_secs(30),
            file_mode: 0o644,
            dir_mode: 0o755,
            agent_socket: None,
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

impl fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `auth` prints `****` for every secret.
        f.debug_struct("ConnectOptions")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("auth", &self.auth)
            .field("host_keys", &self.host_keys)
            .field("timeout", &self.timeout)
            .field("file_mode", &format_args!("{:o}", self.file_mode))
            .field("dir_mode", &format_args!("{:o}", self.dir_mode))
            .field("agent_socket", &self.agent_socket)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_secrets() {
        let mut o = ConnectOptions::new(
            "::1",
            "deploy",
            Auth::Password(SecretString::from("hunter2-secret")),
            HostKeyPolicy::Insecure,
        );
        let shown = format!("{o:?} {o:#?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("****") && shown.contains("deploy"));
        o.auth = Auth::Key {
            pem: SecretString::from("-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn"),
            passphrase: Some(SecretString::from("pass-phrase-9")),
        };
        let shown = format!("{o:?} {o:#?}");
        assert!(
            !shown.contains("b3Blbn") && !shown.contains("pass-phrase-9"),
            "{shown}"
        );
        assert_eq!(o.server(), "[::1]:22");
    }
}
