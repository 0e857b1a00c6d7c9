//! The plaintext inside the age file: one JSON document holding every credential.

use std::collections::BTreeMap;
use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::backend::{BackendKind, CredentialInfo};
use crate::credential::{Credential, CredentialName};

/// The document format version this build writes and understands.
pub(crate) const FORMAT_VERSION: u32 = 1;

/// `{"version":1,"recipients":[...],"credentials":{"name":{...}}}`.
// Unknown top-level fields are tolerated so that the version check below gives the message.
#[derive(Serialize, Deserialize, Default)]
pub(crate) struct Document {
    pub version: u32,
    /// Everyone the store is encrypted to in identity mode (`age1…` and SSH public keys),
    /// kept here so that every rewrite encrypts to the same set. Empty in passphrase mode.
    #[serde(default)]
    pub recipients: Vec<String>,
    #[serde(default)]
    pub credentials: BTreeMap<CredentialName, Record>,
}

/// One credential as stored. The password is a plain `String` only so that serde can write it;
/// it is zeroized when the record is dropped.
#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop, Clone)]
#[serde(deny_unknown_fields)]
pub(crate) struct Record {
    pub username: String,
    /// Empty for a key-only (SFTP) credential.
    pub password: String,
    /// An SSH private key (OpenSSH or PEM text); absent from FTP-only records, so stores
    /// written before SFTP existed read unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_key_passphrase: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[zeroize(skip)]
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub created: Option<OffsetDateTime>,
    #[zeroize(skip)]
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub updated: Option<OffsetDateTime>,
}

impl fmt::Debug for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Record")
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

impl fmt::Debug for Document {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Document")
            .field("version", &self.version)
            .field("recipients", &self.recipients)
            .field("credentials", &self.credentials.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Document {
    pub fn new(recipients: Vec<String>) -> Self {
        Self {
            version: FORMAT_VERSION,
            recipients,
            credentials: BTreeMap::new(),
        }
    }

    /// Parses the decrypted plaintext. The error text never quotes the input (it holds
    /// passwords): serde_json's messages give only line and column.
    pub fn parse(plaintext: &[u8]) -> Result<Self, String> {
        let doc: Document = serde_json::from_slice(plaintext).map_err(|e| {
            format!(
                "the decrypted content is not a siteport credential document ({} at line {}, column {})",
                match e.classify() {
                    serde_json::error::Category::Io => "I/O error",
                    serde_json::error::Category::Syntax => "JSON syntax error",
                    serde_json::error::Category::Data => "unexpected structure",
                    serde_json::error::Category::Eof => "unexpected end",
                },
                e.line(),
                e.column()
            )
        })?;
        if doc.version != FORMAT_VERSION {
            return Err(format!(
                "the document has format version {}, this siteport understands version {FORMAT_VERSION}; \
                 upgrade siteport",
                doc.version
            ));
        }
        Ok(doc)
    }

    /// Pretty JSON, so that `age -d` shows something a person can read and fix.
    pub fn to_plaintext(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(256 + 256 * self.credentials.len()));
        // Serializing plain structs into a Vec cannot fail.
        if serde_json::to_writer_pretty(&mut *out, self).is_err() {
            out.clear();
        }
        out.push(b'\n');
        out
    }

    /// A full copy (for a re-read that must not disturb the cached one until the write lands).
    pub fn duplicate(&self) -> Self {
        Self {
            version: self.version,
            recipients: self.recipients.clone(),
            credentials: self.credentials.clone(),
        }
    }
}

impl Record {
    pub fn from_credential(
        cred: &Credential,
        created: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) -> Self {
        Self {
            username: cred.username().to_owned(),
            password: cred.password().expose_secret().to_owned(),
            ssh_key: cred.ssh_key().map(|k| k.expose_secret().to_owned()),
            ssh_key_passphrase: cred
                .ssh_key_passphrase()
                .map(|p| p.expose_secret().to_owned()),
            host: cred.host().map(str::to_owned),
            port: cred.port(),
            created: created.or(cred.created()).or(Some(now)),
            updated: Some(now),
        }
    }

    /// Rebuilds a validated [`Credential`]. A hand-edited record that no longer validates is
    /// reported by field, never by value.
    pub fn to_credential(
        &self,
        name: &CredentialName,
    ) -> Result<Credential, crate::ValidationError> {
        let secret = |s: &Option<String>| s.clone().map(SecretString::from);
        let mut c = Credential::from_parts(
            name.clone(),
            self.username.clone(),
            Some(SecretString::from(self.password.clone())),
            secret(&self.ssh_key),
            secret(&self.ssh_key_passphrase),
        )?;
        if let Some(h) = &self.host {
            c = c.with_host(h.clone())?;
        }
        if let Some(p) = self.port {
            c = c.with_port(p)?;
        }
        Ok(c.with_times(self.created, self.updated))
    }

    pub fn info(&self, name: &CredentialName) -> CredentialInfo {
        CredentialInfo {
            name: name.clone(),
            username: Some(self.username.clone()),
            host: self.host.clone(),
            port: self.port,
            created: self.created,
            updated: self.updated,
            source: BackendKind::File,
        }
    }
}

impl Drop for Document {
    fn drop(&mut self) {
        // Records zeroize themselves; recipients are public keys and need nothing.
        self.credentials.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_no_secret_in_errors() {
        let name = CredentialName::new("acme").unwrap();
        let cred = Credential::new(name.clone(), "u", SecretString::from("pw-123".to_owned()))
            .unwrap()
            .with_host("ftp.example")
            .unwrap()
            .with_port(2121)
            .unwrap();
        let mut doc = Document::new(vec!["age1x".into()]);
        let now = OffsetDateTime::now_utc();
        doc.credentials
            .insert(name.clone(), Record::from_credential(&cred, None, now));
        let text = doc.to_plaintext();
        let back = Document::parse(&text).unwrap();
        let c = back.credentials[&name].to_credential(&name).unwrap();
        assert_eq!(c.password().expose_secret(), "pw-123");
        assert_eq!(c.port(), Some(2121));
        assert!(!format!("{back:?}").contains("pw-123"));

        let broken = String::from_utf8(text.to_vec())
            .unwrap()
            .replace("2121", "\"x-pw-123\"");
        let e = Document::parse(broken.as_bytes()).unwrap_err();
        assert!(!e.contains("pw-123"), "{e}");
        let e = Document::parse(br#"{"version":2}"#).unwrap_err();
        assert!(e.contains("version 2"), "{e}");
    }
}
