//! The credential model and its validation.

use std::fmt;
use std::str::FromStr;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Longest credential name accepted.
pub const MAX_NAME_LEN: usize = 64;
/// Longest username, password or host accepted (bytes). Longer values are almost certainly
/// a mistake (a pasted file) and some servers truncate them silently.
pub const MAX_FIELD_LEN: usize = 1024;
/// Largest SSH private key accepted (bytes): an RSA-8192 OpenSSH key is under 7 KiB, so
/// anything near this is a wrong file, not a key.
pub const MAX_SSH_KEY_LEN: usize = 32 * 1024;

/// A field of a credential failed validation. The message names the field and never
/// contains the rejected value when that value may be secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}: {reason}")]
pub struct ValidationError {
    /// Which field: `name`, `username`, `password`, `host`, `port`, `ssh_key` or
    /// `ssh_key_passphrase`.
    pub field: &'static str,
    /// Why, without the value.
    pub reason: String,
}

impl ValidationError {
    fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}

/// A validated credential name: 1–64 characters of `[a-z0-9][a-z0-9._-]*`, stored lowercased.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct CredentialName(String);

impl CredentialName {
    /// Validates and lowercases `name`.
    pub fn new(name: &str) -> Result<Self, ValidationError> {
        let lower = name.to_ascii_lowercase();
        if lower.is_empty() {
            return Err(ValidationError::new("name", "must not be empty"));
        }
        if lower.len() > MAX_NAME_LEN {
            return Err(ValidationError::new(
                "name",
                format!(
                    "is {} characters long; the limit is {MAX_NAME_LEN}",
                    lower.len()
                ),
            ));
        }
        let mut chars = lower.chars();
        let first = chars.next().unwrap_or('-');
        if !(first.is_ascii_lowercase() || first.is_ascii_digit()) {
            return Err(ValidationError::new(
                "name",
                format!("'{}' must start with a letter or digit", printable(&lower)),
            ));
        }
        if let Some(bad) = lower.chars().find(|c| {
            !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
        }) {
            return Err(ValidationError::new(
                "name",
                format!(
                    "'{}' contains {:?}; use only a-z, 0-9, '.', '_' and '-'",
                    printable(&lower),
                    bad
                ),
            ));
        }
        Ok(Self(lower))
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Names are not secret, but they may come from hostile input: never print control characters.
fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

impl FromStr for CredentialName {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl<'de> Deserialize<'de> for CredentialName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::new(&s).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for CredentialName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for CredentialName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CredentialName({:?})", self.0)
    }
}

impl AsRef<str> for CredentialName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// An FTP or SFTP login. Fields are private so that every instance has passed validation.
/// `Debug` never shows the password, the SSH key or its passphrase.
#[derive(Clone)]
pub struct Credential {
    name: CredentialName,
    username: String,
    /// Empty only for a key-only credential ([`Credential::with_ssh_key_only`]).
    password: SecretString,
    /// An SSH private key (OpenSSH or PEM text) for SFTP sites.
    ssh_key: Option<SecretString>,
    /// The passphrase of an encrypted `ssh_key`.
    ssh_key_passphrase: Option<SecretString>,
    host: Option<String>,
    port: Option<u16>,
    created: Option<OffsetDateTime>,
    updated: Option<OffsetDateTime>,
}

/// Rejects what would break or inject into an FTP command line (CR, LF, NUL and other
/// control characters), empty values and over-long ones. `secret` fields never show the value.
fn check_text(field: &'static str, value: &str) -> Result<(), ValidationError> {
    if value.is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    if value.len() > MAX_FIELD_LEN {
        return Err(ValidationError::new(
            field,
            format!(
                "is {} bytes long; the limit is {MAX_FIELD_LEN}",
                value.len()
            ),
        ));
    }
    if let Some(pos) = value.chars().position(char::is_control) {
        return Err(ValidationError::new(
            field,
            format!(
                "contains a control character (CR, LF, NUL, tab or similar) at character {}; \
                 these would corrupt FTP commands",
                pos + 1
            ),
        ));
    }
    Ok(())
}

/// Validates a username.
pub(crate) fn check_username(username: &str) -> Result<(), ValidationError> {
    check_text("username", username)
}

/// Validates a password without ever echoing it.
pub(crate) fn check_password(password: &str) -> Result<(), ValidationError> {
    check_text("password", password)
}

/// Validates an SSH private key's text: PEM-armoured (`-----BEGIN … PRIVATE KEY-----`, which
/// covers OpenSSH and PEM keys), no NUL, not huge. The message never quotes the key.
pub(crate) fn check_ssh_key(key: &str) -> Result<(), ValidationError> {
    let err = |reason: &str| ValidationError::new("ssh_key", reason);
    if key.len() > MAX_SSH_KEY_LEN {
        return Err(err(&format!(
            "is {} bytes long; the limit is {MAX_SSH_KEY_LEN}",
            key.len()
        )));
    }
    let t = key.trim_start();
    if !t.starts_with("-----BEGIN ") || !key.contains("PRIVATE KEY-----") {
        return Err(err(
            "is not a private key (expected -----BEGIN OPENSSH PRIVATE KEY----- or a PEM key)",
        ));
    }
    if key.contains('\0') {
        return Err(err("contains a NUL byte"));
    }
    Ok(())
}

/// Validates a host name or address.
pub(crate) fn check_host(host: &str) -> Result<(), ValidationError> {
    check_text("host", host)?;
    if host.chars().any(|c| c.is_whitespace() || c == '/') {
        return Err(ValidationError::new(
            "host",
            "must not contain spaces or '/'",
        ));
    }
    Ok(())
}

/// Parses a port number given as text (from an env var or a file), 1–65535.
pub fn parse_port(text: &str) -> Result<u16, ValidationError> {
    let t = text.trim();
    match t.parse::<u32>() {
        Ok(p) if (1..=65535).contains(&p) => Ok(p as u16),
        Ok(_) => Err(ValidationError::new("port", "must be between 1 and 65535")),
        Err(_) => Err(ValidationError::new(
            "port",
            format!("'{}' is not a number between 1 and 65535", printable(t)),
        )),
    }
}

impl Credential {
    /// A new credential; validates username and password.
    pub fn new(
        name: CredentialName,
        username: impl Into<String>,
        password: SecretString,
    ) -> Result<Self, ValidationError> {
        let username = username.into();
        check_username(&username)?;
        check_password(password.expose_secret())?;
        Ok(Self::bare(name, username, password))
    }

    /// The fields every constructor starts from: no key, host, port or times yet. The
    /// caller has checked the username and the password.
    fn bare(name: CredentialName, username: String, password: SecretString) -> Self {
        Self {
            name,
            username,
            password,
            ssh_key: None,
            ssh_key_passphrase: None,
            host: None,
            port: None,
            created: None,
            updated: None,
        }
    }

    /// A credential that logs in with an SSH key alone (SFTP): its password is empty, which
    /// [`Credential::new`] refuses, so key-only logins need their own constructor.
    pub fn with_ssh_key_only(
        name: CredentialName,
        username: impl Into<String>,
        key: SecretString,
        passphrase: Option<SecretString>,
    ) -> Result<Self, ValidationError> {
        let username = username.into();
        check_username(&username)?;
        Self::bare(name, username, SecretString::from(String::new())).with_ssh_key(key, passphrase)
    }

    /// A credential from the fields a backend stores: a password, an SSH key, or both (a
    /// missing or empty password is allowed only with a key). A passphrase needs a key.
    pub fn from_parts(
        name: CredentialName,
        username: impl Into<String>,
        password: Option<SecretString>,
        ssh_key: Option<SecretString>,
        ssh_key_passphrase: Option<SecretString>,
    ) -> Result<Self, ValidationError> {
        let password = password.filter(|p| !p.expose_secret().is_empty());
        match (password, ssh_key) {
            (_, None) if ssh_key_passphrase.is_some() => Err(ValidationError::new(
                "ssh_key_passphrase",
                "is set but there is no ssh_key",
            )),
            (Some(p), None) => Self::new(name, username, p),
            (Some(p), Some(k)) => Self::new(name, username, p)?.with_ssh_key(k, ssh_key_passphrase),
            (None, Some(k)) => Self::with_ssh_key_only(name, username, k, ssh_key_passphrase),
            (None, None) => Err(ValidationError::new(
                "password",
                "must not be empty (or give an ssh_key)",
            )),
        }
    }

    /// The same credential under another name (backends whose names map many to one).
    pub(crate) fn renamed(&self, name: CredentialName) -> Self {
        let mut c = self.clone();
        c.name = name;
        c
    }

    /// Adds an SSH private key (and the passphrase of an encrypted one), validated without
    /// ever echoing either.
    pub fn with_ssh_key(
        mut self,
        key: SecretString,
        passphrase: Option<SecretString>,
    ) -> Result<Self, ValidationError> {
        check_ssh_key(key.expose_secret())?;
        if let Some(p) = &passphrase {
            check_text("ssh_key_passphrase", p.expose_secret())?;
        }
        self.ssh_key = Some(key);
        self.ssh_key_passphrase = passphrase;
        Ok(self)
    }

    /// Sets the host (validated).
    pub fn with_host(mut self, host: impl Into<String>) -> Result<Self, ValidationError> {
        let host = host.into();
        check_host(&host)?;
        self.host = Some(host);
        Ok(self)
    }

    /// Sets the port; 0 is rejected.
    pub fn with_port(mut self, port: u16) -> Result<Self, ValidationError> {
        if port == 0 {
            return Err(ValidationError::new("port", "must be between 1 and 65535"));
        }
        self.port = Some(port);
        Ok(self)
    }

    /// Sets creation and update times (backends that keep them).
    pub fn with_times(
        mut self,
        created: Option<OffsetDateTime>,
        updated: Option<OffsetDateTime>,
    ) -> Self {
        self.created = created;
        self.updated = updated;
        self
    }

    /// The credential's name.
    pub fn name(&self) -> &CredentialName {
        &self.name
    }
    /// The FTP username.
    pub fn username(&self) -> &str {
        &self.username
    }
    /// The FTP password. Expose it only at the point of use.
    pub fn password(&self) -> &SecretString {
        &self.password
    }
    /// The SSH private key, if the credential carries one. Expose it only at the point of use.
    pub fn ssh_key(&self) -> Option<&SecretString> {
        self.ssh_key.as_ref()
    }
    /// The passphrase of an encrypted SSH key.
    pub fn ssh_key_passphrase(&self) -> Option<&SecretString> {
        self.ssh_key_passphrase.as_ref()
    }
    /// The host, if the credential carries one.
    pub fn host(&self) -> Option<&str> {
        self.host.as_deref()
    }
    /// The port, if the credential carries one.
    pub fn port(&self) -> Option<u16> {
        self.port
    }
    /// When it was first stored, where the backend knows.
    pub fn created(&self) -> Option<OffsetDateTime> {
        self.created
    }
    /// When it was last changed, where the backend knows.
    pub fn updated(&self) -> Option<OffsetDateTime> {
        self.updated
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("name", &self.name)
            .field("username", &self.username)
            .field("password", &"****")
            .field("ssh_key", &self.ssh_key.as_ref().map(|_| "****"))
            .field(
                "ssh_key_passphrase",
                &self.ssh_key_passphrase.as_ref().map(|_| "****"),
            )
            .field("host", &self.host)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pw(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    #[test]
    fn names_are_lowercased_and_checked() {
        assert_eq!(
            CredentialName::new("Acme.Prod_1-x").unwrap().as_str(),
            "acme.prod_1-x"
        );
        for bad in ["", "-a", ".a", "a b", "a/b", "a\nb", &"a".repeat(65), "é"] {
            let e = CredentialName::new(bad).unwrap_err();
            assert_eq!(e.field, "name", "{bad:?}");
            assert!(!e.to_string().contains('\n'));
        }
        assert!(CredentialName::new(&"a".repeat(64)).is_ok());
    }

    #[test]
    fn control_characters_rejected_without_echo() {
        let n = CredentialName::new("x").unwrap();
        let e = Credential::new(n.clone(), "u", pw("hunter2\r\nDELE x")).unwrap_err();
        assert_eq!(e.field, "password");
        assert!(!e.to_string().contains("hunter2"));
        let e = Credential::new(n.clone(), "u\nUSER root", pw("p")).unwrap_err();
        assert_eq!(e.field, "username");
        let e = Credential::new(n.clone(), "u", pw("")).unwrap_err();
        assert_eq!(e.field, "password");
        let e = Credential::new(n.clone(), "u", pw(&"x".repeat(MAX_FIELD_LEN + 1))).unwrap_err();
        assert_eq!(e.field, "password");
        let c = Credential::new(n.clone(), "u", pw("p")).unwrap();
        assert_eq!(c.clone().with_port(0).unwrap_err().field, "port");
        assert_eq!(c.with_host("a b").unwrap_err().field, "host");
    }

    #[test]
    fn ports_parse() {
        assert_eq!(parse_port(" 21\n").unwrap(), 21);
        assert!(parse_port("0").is_err());
        assert!(parse_port("65536").is_err());
        assert!(parse_port("ftp").is_err());
    }

    #[test]
    fn ssh_keys_are_checked_and_hidden() {
        let key = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjE-body\n-----END OPENSSH PRIVATE KEY-----\n";
        let n = CredentialName::new("k").unwrap();
        let c =
            Credential::with_ssh_key_only(n.clone(), "u", pw(key), Some(pw("phrase-x9"))).unwrap();
        assert_eq!(c.ssh_key().unwrap().expose_secret(), key);
        assert!(c.password().expose_secret().is_empty());
        let d = format!("{c:?}");
        assert!(
            !d.contains("b3BlbnNzaC1rZXktdjE-body") && !d.contains("phrase-x9"),
            "{d}"
        );
        let e = Credential::new(n.clone(), "u", pw("p"))
            .unwrap()
            .with_ssh_key(pw("hunter2-not-a-key"), None)
            .unwrap_err();
        assert_eq!(e.field, "ssh_key");
        assert!(!e.to_string().contains("hunter2"), "{e}");
        let e = Credential::with_ssh_key_only(n, "u", pw(key), Some(pw("a\nb"))).unwrap_err();
        assert_eq!(e.field, "ssh_key_passphrase");
    }

    #[test]
    fn debug_hides_password() {
        let c = Credential::new(CredentialName::new("x").unwrap(), "u", pw("s3cr3t-pw")).unwrap();
        let d = format!("{c:?}");
        assert!(!d.contains("s3cr3t-pw"), "{d}");
        assert!(d.contains("****"));
    }
}
