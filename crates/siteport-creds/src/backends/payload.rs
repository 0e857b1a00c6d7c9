//! The JSON payload the remote backends (vault, aws, gcp, azure) store for one credential:
//! `{"username": …, "password": …, "host": …, "port": …, "ssh_key": …, "ssh_key_passphrase": …}`,
//! all but username and password optional (a key-only SFTP credential has an empty password).
//!
//! One codec for all of them, so that a secret written by one reads the same in every other
//! and the password never passes through a plain `String` or a `serde_json::Value`: it is
//! serialized from the credential's `SecretString` into a zeroizing buffer, and deserialized
//! straight into a `SecretString`.
//!
//! `port` is written as a number. A port written as a string is still read: Vault secrets
//! written by siteport before this codec, and secrets made by hand with `vault kv put` or a
//! cloud console, carry one.

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::credential::{Credential, CredentialName, ValidationError, parse_port};
use crate::error::{Error, ErrorKind};
use crate::remedy::Remedy;

/// How the payload is written: borrowed from the credential, so that nothing is copied
/// outside the zeroizing output buffer.
#[derive(Serialize)]
pub(crate) struct SecretOut<'a> {
    username: &'a str,
    password: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    host: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ssh_key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ssh_key_passphrase: Option<&'a str>,
}

impl<'a> SecretOut<'a> {
    /// The payload of `cred`, ready to serialize (alone or inside a request body).
    pub(crate) fn of(cred: &'a Credential) -> Self {
        Self {
            username: cred.username(),
            password: cred.password().expose_secret(),
            host: cred.host(),
            port: cred.port(),
            ssh_key: cred.ssh_key().map(|k| k.expose_secret()),
            ssh_key_passphrase: cred.ssh_key_passphrase().map(|p| p.expose_secret()),
        }
    }
}

/// A port as found in a payload: a number, or a string for older and hand-made secrets.
#[derive(Deserialize)]
#[serde(untagged)]
enum PortIn {
    Number(u64),
    Text(String),
}

/// How the payload is read. The password goes straight into a `SecretString`.
#[derive(Deserialize)]
pub(crate) struct SecretIn {
    username: String,
    password: SecretString,
    host: Option<String>,
    port: Option<PortIn>,
    #[serde(default)]
    ssh_key: Option<SecretString>,
    #[serde(default)]
    ssh_key_passphrase: Option<SecretString>,
}

/// Why a payload is not a credential.
#[derive(Debug)]
pub(crate) enum Malformed {
    /// Not JSON, or required fields missing or of the wrong type. Only the position is kept:
    /// serde_json's messages can quote the input, which holds the password.
    Json {
        /// Line of the problem (1-based).
        line: usize,
        /// Column of the problem (1-based).
        column: usize,
    },
    /// A numeric port outside 1–65535.
    PortRange(u64),
    /// A field that parsed but is not valid (a bad host, a bad string port, …).
    Invalid(ValidationError),
}

impl Malformed {
    /// The reason as text, for the backend's "is not a siteport credential: …" message.
    /// `None` for [`Malformed::Invalid`], which backends report as a validation error.
    pub(crate) fn reason(&self) -> Option<String> {
        match self {
            Malformed::Json { line, column } => Some(format!(
                "invalid JSON or missing fields at line {line} column {column}"
            )),
            Malformed::PortRange(n) => Some(format!("port {n} is out of range")),
            Malformed::Invalid(_) => None,
        }
    }

    /// The backend's error: a validation error for [`Malformed::Invalid`], else
    /// `corrupt(reason)` (the backend words "is not a siteport credential" and the fix).
    /// The position of a JSON error, for replies that embed the payload (vault).
    pub(crate) fn json(e: &serde_json::Error) -> Self {
        Malformed::Json {
            line: e.line(),
            column: e.column(),
        }
    }

    pub(crate) fn into_error(self, describe: &str, corrupt: impl FnOnce(String) -> Error) -> Error {
        match self {
            Malformed::Invalid(e) => Error::invalid(describe, e),
            other => corrupt(other.reason().unwrap_or_default()),
        }
    }
}

/// Encodes `cred` as the payload JSON, in a buffer wiped on drop (vault embeds [`SecretOut`]
/// in its request body instead).
#[cfg_attr(
    not(any(feature = "aws", feature = "gcp", feature = "azure")),
    allow(dead_code)
)]
pub(crate) fn encode(cred: &Credential) -> Result<Zeroizing<String>, serde_json::Error> {
    serde_json::to_string(&SecretOut::of(cred)).map(Zeroizing::new)
}

/// Decodes payload `text` into credential `name` (vault reads [`SecretIn`] inside its reply).
#[cfg_attr(
    not(any(feature = "aws", feature = "gcp", feature = "azure")),
    allow(dead_code)
)]
pub(crate) fn decode(name: &CredentialName, text: &str) -> Result<Credential, Malformed> {
    let parsed: SecretIn = serde_json::from_str(text).map_err(|e| Malformed::json(&e))?;
    parsed.into_credential(name)
}

/// [`encode`] with the error the remote backends report (`backend`: "aws backend", …).
#[cfg_attr(
    not(any(feature = "aws", feature = "gcp", feature = "azure")),
    allow(dead_code)
)]
pub(crate) fn encode_for(backend: &str, cred: &Credential) -> Result<Zeroizing<String>, Error> {
    // Serializing plain strings cannot fail; the error arm keeps this panic-free anyway.
    encode(cred).map_err(|e| {
        Error::new(
            ErrorKind::Invalid,
            backend,
            format!("cannot encode credential '{}': {e}", cred.name()),
        )
    })
}

/// A stored secret that is not a siteport credential, `why`: names the secret, says what its
/// `holder` (`"its SecretString"`, `"its value"`, …) must hold, and how to rewrite it.
#[cfg_attr(
    not(any(feature = "aws", feature = "gcp", feature = "azure")),
    allow(dead_code)
)]
pub(crate) fn not_a_credential(
    describe: &str,
    name: &CredentialName,
    secret: &str,
    holder: &str,
    why: String,
) -> Error {
    Error::new(
        ErrorKind::Corrupt,
        describe,
        format!("secret '{secret}' is not a siteport credential: {why}"),
    )
    .with_hint(format!(
        "{holder} must be JSON with \"username\" and \"password\" (and optional \"host\", \"port\")"
    ))
    .with_remedy(Remedy::RewriteCredential(Some(name.clone())))
}

/// [`decode`] of the text a remote backend read from `secret`, with that backend's errors
/// (see [`not_a_credential`]).
#[cfg_attr(
    not(any(feature = "aws", feature = "gcp", feature = "azure")),
    allow(dead_code)
)]
pub(crate) fn decode_secret(
    describe: &str,
    name: &CredentialName,
    secret: &str,
    holder: &str,
    text: &str,
) -> Result<Credential, Error> {
    decode(name, text).map_err(|m| {
        m.into_error(describe, |why| {
            not_a_credential(describe, name, secret, holder, why)
        })
    })
}

impl SecretIn {
    /// The credential `name` this payload describes.
    pub(crate) fn into_credential(self, name: &CredentialName) -> Result<Credential, Malformed> {
        let mut cred = Credential::from_parts(
            name.clone(),
            self.username,
            Some(self.password),
            self.ssh_key,
            self.ssh_key_passphrase,
        )
        .map_err(Malformed::Invalid)?;
        if let Some(h) = self.host.filter(|h| !h.is_empty()) {
            cred = cred.with_host(h).map_err(Malformed::Invalid)?;
        }
        let port = match self.port {
            None => None,
            Some(PortIn::Number(n)) => Some(
                u16::try_from(n)
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or(Malformed::PortRange(n))?,
            ),
            Some(PortIn::Text(t)) if t.trim().is_empty() => None,
            Some(PortIn::Text(t)) => Some(parse_port(&t).map_err(Malformed::Invalid)?),
        };
        if let Some(p) = port {
            cred = cred.with_port(p).map_err(Malformed::Invalid)?;
        }
        Ok(cred)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name() -> CredentialName {
        CredentialName::new("acme").unwrap()
    }

    #[test]
    fn string_and_number_ports_both_decode() {
        let n = decode(
            &name(),
            r#"{"username":"u","password":"p","host":"h.example","port":2121}"#,
        )
        .unwrap();
        let s = decode(
            &name(),
            r#"{"username":"u","password":"p","host":"h.example","port":"2121"}"#,
        )
        .unwrap();
        assert_eq!(n.port(), Some(2121));
        assert_eq!(s.port(), Some(2121));
        assert_eq!(s.password().expose_secret(), "p");
        assert_eq!(s.host(), Some("h.example"));
        let empty = decode(&name(), r#"{"username":"u","password":"p","port":""}"#).unwrap();
        assert_eq!(empty.port(), None);
    }

    #[test]
    fn encoding_writes_the_port_as_a_number() {
        let cred = Credential::new(name(), "u", SecretString::from("pw".to_owned()))
            .unwrap()
            .with_port(2121)
            .unwrap();
        let json = encode(&cred).unwrap();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["port"], 2121);
        assert!(v.get("host").is_none(), "{}", json.as_str());
        assert_eq!(decode(&name(), &json).unwrap().port(), Some(2121));
    }

    #[test]
    fn malformed_payloads_say_why_without_quoting_the_input() {
        let e = decode(&name(), r#"{"username":"u","password":"s3cret-pw""#).unwrap_err();
        let why = e.reason().unwrap();
        assert!(why.starts_with("invalid JSON or missing fields"), "{why}");
        assert!(!why.contains("s3cret"), "{why}");
        let e = decode(&name(), r#"{"username":"u","password":"p","port":70000}"#).unwrap_err();
        assert_eq!(e.reason().unwrap(), "port 70000 is out of range");
        let e = decode(&name(), r#"{"username":"u","password":"p","port":0}"#).unwrap_err();
        assert_eq!(e.reason().unwrap(), "port 0 is out of range");
        let e = decode(&name(), r#"{"username":"u","password":"p","port":"x"}"#).unwrap_err();
        assert!(matches!(e, Malformed::Invalid(_)));
    }

    #[test]
    fn ssh_keys_round_trip_and_stay_optional() {
        let key = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjE-payload\n-----END OPENSSH PRIVATE KEY-----\n";
        let cred = Credential::with_ssh_key_only(
            name(),
            "u",
            SecretString::from(key),
            Some(SecretString::from("pp-1")),
        )
        .unwrap();
        let json = encode(&cred).unwrap();
        let back = decode(&name(), &json).unwrap();
        assert_eq!(back.ssh_key().unwrap().expose_secret(), key);
        assert_eq!(back.ssh_key_passphrase().unwrap().expose_secret(), "pp-1");
        assert!(back.password().expose_secret().is_empty());
        // A payload without a key (every secret written before SFTP) still reads.
        let plain = decode(&name(), r#"{"username":"u","password":"p"}"#).unwrap();
        assert!(plain.ssh_key().is_none());
        // An empty password needs a key.
        let e = decode(&name(), r#"{"username":"u","password":""}"#).unwrap_err();
        assert!(matches!(e, Malformed::Invalid(_)));
    }
}
