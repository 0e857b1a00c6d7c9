//! The backend seam: one trait every credential store implements.

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use serde::Serialize;
use time::OffsetDateTime;

use crate::credential::{Credential, CredentialName};
use crate::error::Result;

/// Which kind of backend. Remote kinds exist only when their cargo feature is on, but the
/// names parse always so that a config naming one gives a clear "not built in" error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// Encrypted age file (the default).
    File,
    /// `SITEPORT_CRED_*` environment variables.
    Env,
    /// A mounted secrets directory.
    Dir,
    /// HashiCorp Vault KV.
    Vault,
    /// AWS Secrets Manager.
    Aws,
    /// GCP Secret Manager.
    Gcp,
    /// Azure Key Vault.
    Azure,
    /// The OS keychain.
    Keychain,
}

impl BackendKind {
    /// Every kind, in documentation order.
    pub const ALL: [BackendKind; 8] = [
        BackendKind::File,
        BackendKind::Env,
        BackendKind::Dir,
        BackendKind::Vault,
        BackendKind::Aws,
        BackendKind::Gcp,
        BackendKind::Azure,
        BackendKind::Keychain,
    ];

    /// The name used in configs and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::File => "file",
            BackendKind::Env => "env",
            BackendKind::Dir => "dir",
            BackendKind::Vault => "vault",
            BackendKind::Aws => "aws",
            BackendKind::Gcp => "gcp",
            BackendKind::Azure => "azure",
            BackendKind::Keychain => "keychain",
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for BackendKind {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let t = s.trim().to_ascii_lowercase();
        BackendKind::ALL
            .into_iter()
            .find(|k| k.as_str() == t)
            .ok_or_else(|| {
                let names: Vec<&str> = BackendKind::ALL.iter().map(|k| k.as_str()).collect();
                format!(
                    "unknown credential backend '{}'; expected one of: {}",
                    s.trim(),
                    names.join(", ")
                )
            })
    }
}

/// Whether `store` may replace an existing credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreMode {
    /// Fail with `AlreadyExists` if the name is taken.
    CreateNew,
    /// Create or replace.
    Replace,
}

/// What `list` returns: everything about a credential except its password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CredentialInfo {
    /// The credential's name.
    pub name: CredentialName,
    /// The username (not secret; shown by `list`).
    pub username: Option<String>,
    /// Host, where stored.
    pub host: Option<String>,
    /// Port, where stored.
    pub port: Option<u16>,
    /// First stored, where the backend knows.
    #[serde(with = "time::serde::rfc3339::option")]
    pub created: Option<OffsetDateTime>,
    /// Last changed, where the backend knows.
    #[serde(with = "time::serde::rfc3339::option")]
    pub updated: Option<OffsetDateTime>,
    /// Which backend holds it (`file`, `env`, …); a chain uses this to show the source.
    pub source: BackendKind,
}

impl CredentialInfo {
    /// The non-secret part of `cred`, as held by `source`.
    pub fn of(cred: &Credential, source: BackendKind) -> Self {
        Self {
            name: cred.name().clone(),
            username: Some(cred.username().to_owned()),
            host: cred.host().map(str::to_owned),
            port: cred.port(),
            created: cred.created(),
            updated: cred.updated(),
            source,
        }
    }
}

/// What `check` found: the backend is usable, plus notes worth showing the user.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Health {
    /// Human-readable observations ("store does not exist yet", "3 credentials", …).
    pub notes: Vec<String>,
}

/// A credential store. Implementations must never put a secret in an error, a log line or
/// their `Debug` output, and must say in every error which backend and where
/// ([`describe`](Self::describe)).
#[async_trait]
pub trait CredentialBackend: Send + Sync + fmt::Debug {
    /// Which kind this is.
    fn kind(&self) -> BackendKind;

    /// Kind and location, for messages: `file backend (/path/credentials.age)`.
    fn describe(&self) -> String;

    /// Whether `store` and `delete` can work at all (the env and dir backends are read-only).
    fn is_writable(&self) -> bool;

    /// The credential called `name`, or `NotFound`.
    async fn get(&self, name: &CredentialName) -> Result<Credential>;

    /// Stores `cred`, creating it or (with [`StoreMode::Replace`]) replacing it.
    async fn store(&self, cred: &Credential, mode: StoreMode) -> Result<()>;

    /// Deletes `name`, or `NotFound`.
    async fn delete(&self, name: &CredentialName) -> Result<()>;

    /// Every credential's non-secret metadata, sorted by name.
    async fn list(&self) -> Result<Vec<CredentialInfo>>;

    /// Whether the backend is reachable, unlockable and safely configured.
    async fn check(&self) -> Result<Health>;
}
