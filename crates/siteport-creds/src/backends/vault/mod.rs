//! The `vault` backend: HashiCorp Vault's KV secrets engine, version 2 or 1.
//!
//! Each credential is one secret at `<mount>/<path_prefix><name>` holding the keys `username`,
//! `password` and, when set, `host` and `port`: the payload every remote backend shares
//! (`backends/payload.rs`). `port` is written as a number; a string port (older siteport
//! versions, `vault kv put`) is still read.
//!
//! - **KV v2**: read `GET <mount>/data/<path>`, write `POST <mount>/data/<path>` with
//!   `options.cas = 0` when the name must be new (Vault refuses the write if a version exists, so
//!   two writers cannot both create), list `LIST <mount>/metadata/<prefix>`, delete every version
//!   with `DELETE <mount>/metadata/<path>`.
//! - **KV v1**: `GET`/`POST`/`DELETE`/`LIST` on `<mount>/<path>`. v1 has no check-and-set, so
//!   "create new" is a read followed by a write (a race with another writer is possible).
//! - The version comes from `kv_version` in the config, else from the mount's options
//!   (`GET sys/internal/ui/mounts/<mount>`, readable with any token that can use the mount).
//!
//! **Authentication** (`auth`): `token` (default: `VAULT_TOKEN`, else `token_file`, else
//! `~/.vault-token`), `approle` (`role_id` + `VAULT_SECRET_ID` or `secret_id_file`) or
//! `kubernetes` (`role` + the service-account JWT, by default
//! `/var/run/secrets/kubernetes.io/serviceaccount/token`). Login tokens are kept in memory only;
//! when one expires, or Vault answers 403 once, the backend logs in again (a token from a file
//! is re-read, so a rotating Vault Agent sink works) and retries the request once.
//!
//! **Connection**: `address` or `VAULT_ADDR` (default `https://127.0.0.1:8200`, as the Vault
//! CLI), `namespace` or `VAULT_NAMESPACE` (sent as `X-Vault-Namespace`), `ca_cert` or
//! `VAULT_CACERT` (a PEM file added to the trusted roots). Connection failures, timeouts, 429,
//! 502, 503 and 504 are retried three times with exponential backoff, then reported as
//! `Unavailable`; nothing else is retried.
//!
//! **Why `reqwest` and not `vaultrs`**: the backend needs about eight endpoints. Calling them
//! directly keeps full control over what this store must guarantee: the token header is marked
//! sensitive and never formatted, retries and the single re-login on 403 follow the rules above,
//! every error names the address and the fix, and TLS is rustls only (like the FTP client) with
//! `VAULT_CACERT` support. `vaultrs` would add its request layer (`rustify`, builders) for
//! little gain and hide the HTTP status we map to error kinds.

mod auth;
mod builder;
mod client;
mod codec;
mod settings;

pub use settings::{VaultEnv, VaultSettings};

use auth::{Auth, Token};
use client::NO_BODY;
use codec::{CasOptions, KvV1Read, KvV2Read, KvV2Write};

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::backend::{BackendKind, CredentialBackend, CredentialInfo, Health, StoreMode};
use crate::backends::payload::{SecretIn, SecretOut};
use crate::credential::{Credential, CredentialName};
use crate::error::{Error, ErrorKind, Result};
use crate::remedy::Remedy;

/// Default address, the same as the Vault CLI's.
pub const DEFAULT_ADDRESS: &str = "https://127.0.0.1:8200";
/// Default KV mount.
pub const DEFAULT_MOUNT: &str = "secret";
/// Default path prefix inside the mount.
pub const DEFAULT_PATH_PREFIX: &str = "siteport/";
/// Where Kubernetes mounts the service-account token.
pub const K8S_JWT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

const ATTEMPTS: u32 = 3;
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// A login token is renewed by logging in again this long before it expires.
const EXPIRY_MARGIN: Duration = Duration::from_secs(5);
const MAX_SECRET_FILE: u64 = 64 * 1024;

/// Which KV engine version the mount runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvVersion {
    /// Unversioned key/value.
    V1,
    /// Versioned key/value with check-and-set.
    V2,
}
/// Credentials in HashiCorp Vault. `Debug` shows the address, mount and auth method, never a
/// token.
pub struct VaultBackend {
    address: String,
    namespace: Option<String>,
    mount: String,
    prefix: String,
    configured_kv: Option<KvVersion>,
    kv: tokio::sync::OnceCell<KvVersion>,
    auth: Auth,
    client: reqwest::Client,
    token: tokio::sync::Mutex<Option<Token>>,
}

impl fmt::Debug for VaultBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultBackend")
            .field("address", &self.address)
            .field("namespace", &self.namespace)
            .field("mount", &self.mount)
            .field("path_prefix", &self.prefix)
            .field("kv", &self.kv.get().or(self.configured_kv.as_ref()))
            .field("auth", &self.auth.name())
            .field("token", &"****")
            .finish()
    }
}
impl VaultBackend {
    /// The KV version in use (configured, or detected on first use).
    pub async fn kv_version(&self) -> Result<KvVersion> {
        if let Some(v) = self.configured_kv {
            return Ok(v);
        }
        self.kv.get_or_try_init(|| self.detect_kv()).await.copied()
    }

    fn data_path(&self, kv: KvVersion, name: &CredentialName) -> String {
        match kv {
            KvVersion::V2 => format!("{}/data/{}{name}", self.mount, self.prefix),
            KvVersion::V1 => format!("{}/{}{name}", self.mount, self.prefix),
        }
    }

    fn metadata_path(&self, kv: KvVersion, name: &CredentialName) -> String {
        match kv {
            KvVersion::V2 => format!("{}/metadata/{}{name}", self.mount, self.prefix),
            KvVersion::V1 => format!("{}/{}{name}", self.mount, self.prefix),
        }
    }

    fn decode(&self, name: &CredentialName, data: SecretIn) -> Result<Credential> {
        data.into_credential(name)
            .map_err(|m| m.into_error(&self.describe(), |why| self.corrupt(name, &why)))
    }

    fn corrupt(&self, name: &CredentialName, what: &str) -> Error {
        self.err(
            ErrorKind::Corrupt,
            format!(
                "secret {}{name} is not a siteport credential: {what}",
                self.prefix
            ),
        )
        .with_hint("it needs the keys username, password and optionally host and port")
        .with_remedy_first(Remedy::RewriteCredential(Some(name.clone())), "; ")
    }

    fn timestamp(v: Option<&str>) -> Option<OffsetDateTime> {
        v.and_then(|s| OffsetDateTime::parse(s, &Rfc3339).ok())
    }

    /// Whether the secret exists (v2: a live version in its metadata; v1: readable).
    async fn exists(&self, kv: KvVersion, name: &CredentialName) -> Result<bool> {
        let path = match kv {
            KvVersion::V2 => self.data_path(kv, name),
            KvVersion::V1 => self.metadata_path(kv, name),
        };
        let r = self.call(Method::GET, &path, NO_BODY).await?;
        match r.status {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(self.status_error(&r, &format!("reading {path}"))),
        }
    }
}

#[async_trait]
impl CredentialBackend for VaultBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Vault
    }

    fn describe(&self) -> String {
        format!(
            "vault backend ({}/v1/{}/{})",
            self.address, self.mount, self.prefix
        )
    }

    fn is_writable(&self) -> bool {
        true
    }

    async fn get(&self, name: &CredentialName) -> Result<Credential> {
        let kv = self.kv_version().await?;
        let path = self.data_path(kv, name);
        let r = self.call(Method::GET, &path, NO_BODY).await?;
        if r.status == StatusCode::NOT_FOUND {
            return Err(Error::not_found(self.describe(), name));
        }
        if !r.status.is_success() {
            return Err(self.status_error(&r, &format!("reading {path}")));
        }
        let (data, updated) = match kv {
            KvVersion::V2 => {
                let reply: KvV2Read = r
                    .typed()
                    .map_err(|m| m.into_error(&self.describe(), |why| self.corrupt(name, &why)))?;
                let updated = reply
                    .data
                    .as_ref()
                    .and_then(|d| d.metadata.as_ref())
                    .and_then(|m| Self::timestamp(m.created_time.as_deref()));
                (reply.data.and_then(|d| d.data), updated)
            }
            KvVersion::V1 => {
                let reply: KvV1Read = r
                    .typed()
                    .map_err(|m| m.into_error(&self.describe(), |why| self.corrupt(name, &why)))?;
                (reply.data, None)
            }
        };
        let data = data.ok_or_else(|| {
            self.err(
                ErrorKind::Corrupt,
                format!("reading {path}: the reply has no data object"),
            )
        })?;
        Ok(self.decode(name, data)?.with_times(None, updated))
    }

    async fn store(&self, cred: &Credential, mode: StoreMode) -> Result<()> {
        let kv = self.kv_version().await?;
        let name = cred.name();
        let path = self.data_path(kv, name);
        let data = SecretOut::of(cred);
        let r = match kv {
            KvVersion::V2 => {
                let body = KvV2Write {
                    // cas = 0: Vault writes only if no version exists, atomically.
                    options: (mode == StoreMode::CreateNew).then_some(CasOptions { cas: 0 }),
                    data,
                };
                self.call(Method::POST, &path, Some(&body)).await?
            }
            KvVersion::V1 => {
                if mode == StoreMode::CreateNew && self.exists(kv, name).await? {
                    return Err(Error::already_exists(self.describe(), name));
                }
                self.call(Method::POST, &path, Some(&data)).await?
            }
        };
        if r.status.is_success() {
            return Ok(());
        }
        if kv == KvVersion::V2
            && mode == StoreMode::CreateNew
            && r.status == StatusCode::BAD_REQUEST
            && r.errors().contains("check-and-set")
        {
            return Err(Error::already_exists(self.describe(), name));
        }
        Err(self.status_error(&r, &format!("writing {path}")))
    }

    async fn delete(&self, name: &CredentialName) -> Result<()> {
        let kv = self.kv_version().await?;
        if !self.exists(kv, name).await? {
            return Err(Error::not_found(self.describe(), name));
        }
        // v2: the metadata path removes every version, not just the latest.
        let path = self.metadata_path(kv, name);
        let r = self.call(Method::DELETE, &path, NO_BODY).await?;
        if r.status.is_success() {
            return Ok(());
        }
        if r.status == StatusCode::NOT_FOUND {
            return Err(Error::not_found(self.describe(), name));
        }
        Err(self.status_error(&r, &format!("deleting {path}")))
    }

    async fn list(&self) -> Result<Vec<CredentialInfo>> {
        let kv = self.kv_version().await?;
        let path = match kv {
            KvVersion::V2 => format!("{}/metadata/{}", self.mount, self.prefix),
            KvVersion::V1 => format!("{}/{}", self.mount, self.prefix),
        };
        let list = Method::from_bytes(b"LIST").map_err(|e| {
            self.err(
                ErrorKind::Invalid,
                format!("cannot build a LIST request: {e}"),
            )
        })?;
        let r = self.call(list, &path, NO_BODY).await?;
        if r.status == StatusCode::NOT_FOUND {
            return Ok(Vec::new());
        }
        if !r.status.is_success() {
            return Err(self.status_error(&r, &format!("listing {path}")));
        }
        let keys: Vec<CredentialName> = r
            .json()
            .pointer("/data/keys")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    // Folders end in '/'; foreign keys that are not valid names are skipped.
                    .filter(|k| !k.ends_with('/'))
                    .filter_map(|k| CredentialName::new(k).ok().filter(|n| n.as_str() == k))
                    .collect()
            })
            .unwrap_or_default();
        let mut out = Vec::with_capacity(keys.len());
        for name in keys {
            match self.get(&name).await {
                Ok(c) => out.push(CredentialInfo::of(&c, BackendKind::Vault)),
                // Deleted between LIST and GET.
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out.dedup_by(|a, b| a.name == b.name);
        Ok(out)
    }

    async fn check(&self) -> Result<Health> {
        let kv = self.kv_version().await?;
        let n = self.list().await?.len();
        let mut notes = vec![
            format!(
                "KV {} at {}/{} (auth: {})",
                match kv {
                    KvVersion::V1 => "v1",
                    KvVersion::V2 => "v2",
                },
                self.mount,
                self.prefix,
                self.auth.name()
            ),
            format!("{n} credential(s)"),
        ];
        if let Some(ns) = &self.namespace {
            notes.push(format!("namespace {ns}"));
        }
        if self.address.starts_with("http://")
            && !self.address.starts_with("http://127.")
            && !self.address.starts_with("http://localhost")
        {
            notes.push(format!(
                "{} is plain HTTP: tokens and passwords cross the network unencrypted",
                self.address
            ));
        }
        Ok(Health { notes })
    }
}
