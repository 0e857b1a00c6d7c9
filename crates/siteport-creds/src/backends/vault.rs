//! The `vault` backend: HashiCorp Vault's KV secrets engine, version 2 or 1.
//!
//! Each credential is one secret at `<mount>/<path_prefix><name>` holding the keys `username`,
//! `password` and, when set, `host` and `port` (a string, as `vault kv put` writes it).
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

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use reqwest::header::{HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde::de::DeserializeOwned;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use zeroize::Zeroizing;

use crate::backend::{BackendKind, CredentialBackend, CredentialInfo, Health, StoreMode};
use crate::backends::payload::{Malformed, SecretIn, SecretOut};
use crate::credential::{Credential, CredentialName};
use crate::error::{Error, ErrorKind, Result};

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

/// `[credentials.vault]`. Nothing secret lives here: tokens and AppRole secret IDs come from
/// the environment or from files.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultSettings {
    /// Vault's address; else `VAULT_ADDR`, else `https://127.0.0.1:8200`.
    pub address: Option<String>,
    /// Enterprise namespace; else `VAULT_NAMESPACE`.
    pub namespace: Option<String>,
    /// PEM file of the CA that signed Vault's certificate; else `VAULT_CACERT`.
    pub ca_cert: Option<PathBuf>,
    /// The KV mount (default `secret`).
    pub mount: Option<String>,
    /// Prefix of every credential's path inside the mount (default `siteport/`).
    pub path_prefix: Option<String>,
    /// `1` or `2`; detected from the mount when unset.
    pub kv_version: Option<u8>,
    /// `token` (default), `approle` or `kubernetes`.
    pub auth: Option<String>,
    /// Token file for `auth = "token"` when `VAULT_TOKEN` is unset (default `~/.vault-token`).
    pub token_file: Option<PathBuf>,
    /// Where the auth method is mounted (default `approle` or `kubernetes`).
    pub auth_mount: Option<String>,
    /// AppRole role ID; else `VAULT_ROLE_ID`.
    pub role_id: Option<String>,
    /// File holding the AppRole secret ID, when `VAULT_SECRET_ID` is unset.
    pub secret_id_file: Option<PathBuf>,
    /// Kubernetes auth role.
    pub role: Option<String>,
    /// Service-account JWT file (default the standard in-pod path).
    pub jwt_file: Option<PathBuf>,
    /// Per-request timeout in seconds (default 10).
    pub timeout_secs: Option<u64>,
}

/// The environment the backend reads (`VAULT_*`, `HOME`), captured once so that tests and
/// callers control it. `Debug` masks `VAULT_TOKEN` and `VAULT_SECRET_ID`.
#[derive(Clone, Default)]
pub struct VaultEnv {
    vars: BTreeMap<String, String>,
}

const ENV_NAMES: [&str; 7] = [
    "VAULT_ADDR",
    "VAULT_TOKEN",
    "VAULT_NAMESPACE",
    "VAULT_CACERT",
    "VAULT_ROLE_ID",
    "VAULT_SECRET_ID",
    "HOME",
];
const SECRET_ENV: [&str; 2] = ["VAULT_TOKEN", "VAULT_SECRET_ID"];

impl VaultEnv {
    /// No variables at all.
    pub fn empty() -> Self {
        Self::default()
    }

    /// The relevant variables of this process.
    pub fn from_process() -> Self {
        let mut env = Self::empty();
        for k in ENV_NAMES {
            if let Ok(v) = std::env::var(k) {
                env = env.var(k, v);
            }
        }
        env
    }

    /// Sets `key` (an empty value counts as unset).
    pub fn var(mut self, key: &str, value: impl Into<String>) -> Self {
        let v = value.into();
        if v.is_empty() {
            self.vars.remove(key);
        } else {
            self.vars.insert(key.to_owned(), v);
        }
        self
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.vars.get(key).map(String::as_str)
    }
}

impl fmt::Debug for VaultEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        for (k, v) in &self.vars {
            if SECRET_ENV.contains(&k.as_str()) {
                m.entry(k, &"****");
            } else {
                m.entry(k, v);
            }
        }
        m.finish()
    }
}

impl Drop for VaultEnv {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        for k in SECRET_ENV {
            if let Some(v) = self.vars.get_mut(k) {
                v.zeroize();
            }
        }
    }
}

/// Which KV engine version the mount runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvVersion {
    /// Unversioned key/value.
    V1,
    /// Versioned key/value with check-and-set.
    V2,
}

enum SecretSource {
    Value(SecretString),
    File(PathBuf),
}

enum Auth {
    /// `VAULT_TOKEN` (fixed) or a token file (re-read on every login).
    Token {
        env: Option<SecretString>,
        file: PathBuf,
    },
    AppRole {
        mount: String,
        role_id: String,
        secret_id: SecretSource,
    },
    Kubernetes {
        mount: String,
        role: String,
        jwt_file: PathBuf,
    },
}

impl Auth {
    fn name(&self) -> &'static str {
        match self {
            Auth::Token { .. } => "token",
            Auth::AppRole { .. } => "approle",
            Auth::Kubernetes { .. } => "kubernetes",
        }
    }
}

struct Token {
    value: SecretString,
    expires: Option<Instant>,
}

/// `call` without a request body.
const NO_BODY: Option<&()> = None;

/// The body of a KV v2 write; `options.cas = 0` makes it create-only.
#[derive(Serialize)]
struct KvV2Write<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    options: Option<CasOptions>,
    data: SecretOut<'a>,
}

#[derive(Serialize)]
struct CasOptions {
    cas: u32,
}

/// A KV v2 read: `{"data": {"data": {…}, "metadata": {"created_time": …}}}`.
#[derive(Deserialize)]
struct KvV2Read {
    data: Option<KvV2Data>,
}

#[derive(Deserialize)]
struct KvV2Data {
    data: Option<SecretIn>,
    metadata: Option<KvV2Metadata>,
}

#[derive(Deserialize)]
struct KvV2Metadata {
    created_time: Option<String>,
}

/// A KV v1 read: `{"data": {…}}`.
#[derive(Deserialize)]
struct KvV1Read {
    data: Option<SecretIn>,
}

/// `POST auth/<approle mount>/login`.
#[derive(Serialize)]
struct AppRoleLogin<'a> {
    role_id: &'a str,
    secret_id: &'a str,
}

/// `POST auth/<kubernetes mount>/login`.
#[derive(Serialize)]
struct KubernetesLogin<'a> {
    role: &'a str,
    jwt: &'a str,
}

/// A login reply; the token goes straight into a `SecretString`.
#[derive(Deserialize)]
struct LoginReply {
    auth: Option<LoginAuth>,
}

#[derive(Deserialize)]
struct LoginAuth {
    client_token: Option<SecretString>,
    lease_duration: Option<u64>,
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

/// What one HTTP exchange returned. The body stays raw bytes, wiped on drop: a read or a login
/// reply holds a password or a token, so it is only ever parsed into typed structs whose secret
/// fields are `SecretString`s ([`typed`](Self::typed)); [`json`](Self::json) is for replies
/// without secrets (errors, listings, mount options).
struct Reply {
    status: StatusCode,
    body: Zeroizing<Vec<u8>>,
}

impl Reply {
    /// The body as untyped JSON (`Null` when empty or not JSON). Never for secret-bearing replies.
    fn json(&self) -> Value {
        if self.body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&self.body).unwrap_or(Value::Null)
        }
    }

    /// The body as `T`. serde_json's message can quote the input, so only the position is kept.
    fn typed<T: DeserializeOwned>(&self) -> std::result::Result<T, Malformed> {
        serde_json::from_slice(&self.body).map_err(|e| Malformed::json(&e))
    }

    fn errors(&self) -> String {
        let list: Vec<String> = self
            .json()
            .get("errors")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(|s| s.chars().take(300).collect())
                    .collect()
            })
            .unwrap_or_default();
        if list.is_empty() {
            String::new()
        } else {
            format!(": {}", list.join("; "))
        }
    }
}

fn trim_slashes(s: &str) -> String {
    s.trim_matches('/').to_owned()
}

impl VaultBackend {
    /// The backend from `[credentials.vault]` and this process's environment. Does no I/O
    /// beyond reading the CA file: Vault is contacted on first use.
    pub fn open(settings: &VaultSettings) -> Result<Self> {
        Self::open_with_env(settings, &VaultEnv::from_process())
    }

    /// [`open`](Self::open) with the environment passed in.
    pub fn open_with_env(settings: &VaultSettings, env: &VaultEnv) -> Result<Self> {
        let address = settings
            .address
            .clone()
            .filter(|s| !s.trim().is_empty())
            .or_else(|| env.get("VAULT_ADDR").map(str::to_owned))
            .unwrap_or_else(|| DEFAULT_ADDRESS.to_owned())
            .trim()
            .trim_end_matches('/')
            .to_owned();
        let mount = trim_slashes(settings.mount.as_deref().unwrap_or(DEFAULT_MOUNT));
        let mut prefix = trim_slashes(
            settings
                .path_prefix
                .as_deref()
                .unwrap_or(DEFAULT_PATH_PREFIX),
        );
        if !prefix.is_empty() {
            prefix.push('/');
        }
        let describe = format!("vault backend ({address}/v1/{mount}/{prefix})");
        let invalid = |detail: String, hint: &str| {
            Error::new(ErrorKind::Invalid, describe.clone(), detail).with_hint(hint.to_owned())
        };
        if !(address.starts_with("http://") || address.starts_with("https://")) {
            return Err(invalid(
                format!("address '{address}' must start with http:// or https://"),
                "set VAULT_ADDR or [credentials.vault] address, e.g. https://vault.example:8200",
            ));
        }
        if mount.is_empty() {
            return Err(invalid(
                "mount must not be empty".into(),
                "set [credentials.vault] mount, e.g. \"secret\"",
            ));
        }
        let configured_kv = match settings.kv_version {
            None => None,
            Some(1) => Some(KvVersion::V1),
            Some(2) => Some(KvVersion::V2),
            Some(n) => {
                return Err(invalid(
                    format!("kv_version = {n} is not a KV engine version"),
                    "set [credentials.vault] kv_version to 1 or 2, or remove it to detect it",
                ));
            }
        };
        let namespace = settings
            .namespace
            .clone()
            .or_else(|| env.get("VAULT_NAMESPACE").map(str::to_owned))
            .map(|s| trim_slashes(&s))
            .filter(|s| !s.is_empty());
        let home = env.get("HOME").map(PathBuf::from);
        let auth = match settings.auth.as_deref().unwrap_or("token") {
            "token" => Auth::Token {
                env: env
                    .get("VAULT_TOKEN")
                    .map(|t| SecretString::from(t.trim().to_owned())),
                file: settings
                    .token_file
                    .clone()
                    .or_else(|| home.map(|h| h.join(".vault-token")))
                    .unwrap_or_else(|| PathBuf::from(".vault-token")),
            },
            "approle" => {
                let role_id = settings
                    .role_id
                    .clone()
                    .or_else(|| env.get("VAULT_ROLE_ID").map(str::to_owned))
                    .ok_or_else(|| {
                        invalid(
                            "auth = \"approle\" needs a role ID".into(),
                            "set [credentials.vault] role_id or VAULT_ROLE_ID",
                        )
                    })?;
                let secret_id = match (env.get("VAULT_SECRET_ID"), &settings.secret_id_file) {
                    (Some(v), _) => SecretSource::Value(SecretString::from(v.to_owned())),
                    (None, Some(p)) => SecretSource::File(p.clone()),
                    (None, None) => {
                        return Err(invalid(
                            "auth = \"approle\" needs a secret ID".into(),
                            "set VAULT_SECRET_ID or [credentials.vault] secret_id_file",
                        ));
                    }
                };
                Auth::AppRole {
                    mount: trim_slashes(settings.auth_mount.as_deref().unwrap_or("approle")),
                    role_id,
                    secret_id,
                }
            }
            "kubernetes" => Auth::Kubernetes {
                mount: trim_slashes(settings.auth_mount.as_deref().unwrap_or("kubernetes")),
                role: settings.role.clone().ok_or_else(|| {
                    invalid(
                        "auth = \"kubernetes\" needs a role".into(),
                        "set [credentials.vault] role to the Vault Kubernetes auth role",
                    )
                })?,
                jwt_file: settings
                    .jwt_file
                    .clone()
                    .unwrap_or_else(|| PathBuf::from(K8S_JWT_PATH)),
            },
            other => {
                return Err(invalid(
                    format!("unknown auth method '{other}'"),
                    "set [credentials.vault] auth to \"token\", \"approle\" or \"kubernetes\"",
                ));
            }
        };
        let timeout = Duration::from_secs(settings.timeout_secs.unwrap_or(10).max(1));
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("siteport/", env!("CARGO_PKG_VERSION")));
        let ca = settings
            .ca_cert
            .clone()
            .or_else(|| env.get("VAULT_CACERT").map(PathBuf::from));
        if let Some(ca) = ca {
            let pem = std::fs::read(&ca).map_err(|e| {
                invalid(
                    format!("cannot read the CA certificate {}: {e}", ca.display()),
                    "fix VAULT_CACERT or [credentials.vault] ca_cert (a PEM file)",
                )
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                invalid(
                    format!("{} is not a PEM certificate: {e}", ca.display()),
                    "fix VAULT_CACERT or [credentials.vault] ca_cert (a PEM file)",
                )
            })?;
            for c in certs {
                builder = builder.add_root_certificate(c);
            }
        }
        let client = builder.build().map_err(|e| {
            Error::new(
                ErrorKind::Invalid,
                describe.clone(),
                format!("cannot set up the HTTP client: {e}"),
            )
        })?;
        Ok(Self {
            address,
            namespace,
            mount,
            prefix,
            configured_kv,
            kv: tokio::sync::OnceCell::new(),
            auth,
            client,
            token: tokio::sync::Mutex::new(None),
        })
    }

    /// The KV version in use (configured, or detected on first use).
    pub async fn kv_version(&self) -> Result<KvVersion> {
        if let Some(v) = self.configured_kv {
            return Ok(v);
        }
        self.kv.get_or_try_init(|| self.detect_kv()).await.copied()
    }

    fn err(&self, kind: ErrorKind, detail: impl Into<String>) -> Error {
        Error::new(kind, self.describe(), detail)
    }

    fn policy_hint(&self) -> String {
        format!(
            "check the token ({}) and that its policy grants create, read, update, delete and \
             list on {m}/data/{p}*, {m}/metadata/{p}* (KV v2) or {m}/{p}* (KV v1)",
            match self.auth {
                Auth::Token { .. } => "VAULT_TOKEN or the token file",
                Auth::AppRole { .. } => "the AppRole login",
                Auth::Kubernetes { .. } => "the Kubernetes auth role",
            },
            m = self.mount,
            p = self.prefix
        )
    }

    async fn detect_kv(&self) -> Result<KvVersion> {
        let path = format!("sys/internal/ui/mounts/{}", self.mount);
        let r = self.call(Method::GET, &path, NO_BODY).await?;
        if r.status.is_success() {
            let body = r.json();
            let version = body
                .pointer("/data/options/version")
                .and_then(Value::as_str)
                .unwrap_or("1");
            let kind = body.pointer("/data/type").and_then(Value::as_str);
            if let Some(t) = kind
                && t != "kv"
                && t != "generic"
            {
                return Err(self
                    .err(
                        ErrorKind::Invalid,
                        format!("mount '{}' is a '{t}' engine, not KV", self.mount),
                    )
                    .with_hint("set [credentials.vault] mount to a KV secrets engine"));
            }
            return Ok(if version == "2" {
                KvVersion::V2
            } else {
                KvVersion::V1
            });
        }
        let hint = if r.status == StatusCode::FORBIDDEN {
            format!(
                "{}; or set [credentials.vault] kv_version if the token may not read \
                 sys/internal/ui/mounts",
                self.policy_hint()
            )
        } else {
            format!(
                "enable it with `vault secrets enable -path={} kv-v2`, or set \
                 [credentials.vault] kv_version if the server has no sys/internal/ui/mounts",
                self.mount
            )
        };
        Err(self
            .status_error(
                &r,
                &format!("cannot detect the KV version of mount '{}'", self.mount),
            )
            .with_hint(hint))
    }

    /// The error for an unexpected reply.
    fn status_error(&self, r: &Reply, what: &str) -> Error {
        let errors = r.errors();
        let status = r.status.as_u16();
        match r.status {
            StatusCode::FORBIDDEN => self
                .err(
                    ErrorKind::PermissionDenied,
                    format!("{what}: permission denied (HTTP 403){errors}"),
                )
                .with_hint(self.policy_hint()),
            StatusCode::NOT_FOUND => self.err(
                ErrorKind::NotFound,
                format!("{what}: not found (HTTP 404){errors}"),
            ),
            StatusCode::TOO_MANY_REQUESTS => self
                .err(
                    ErrorKind::Unavailable,
                    format!("{what}: rate limited by Vault (HTTP 429){errors}"),
                )
                .with_hint("try again later, or raise the rate-limit quota for this client"),
            s if s == StatusCode::SERVICE_UNAVAILABLE => self
                .err(
                    ErrorKind::Unavailable,
                    format!("{what}: Vault is sealed or unavailable (HTTP 503){errors}"),
                )
                .with_hint("check `vault status`; unseal Vault or wait for a leader"),
            s if s.is_server_error() => self
                .err(
                    ErrorKind::Unavailable,
                    format!("{what}: Vault failed (HTTP {status}){errors}"),
                )
                .with_hint("try again later; check Vault's server log"),
            _ => self.err(
                ErrorKind::Invalid,
                format!("{what}: Vault refused the request (HTTP {status}){errors}"),
            ),
        }
    }

    fn retryable(status: StatusCode) -> bool {
        matches!(status.as_u16(), 429 | 502 | 503 | 504)
    }

    /// One request with bounded retries for retryable failures only.
    async fn send(
        &self,
        method: &Method,
        path: &str,
        body: Option<&Zeroizing<Vec<u8>>>,
        token: Option<&SecretString>,
    ) -> Result<Reply> {
        let url = format!("{}/v1/{path}", self.address);
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 1;
        loop {
            let mut req = self.client.request(method.clone(), &url);
            if let Some(t) = token {
                let mut v = HeaderValue::from_str(t.expose_secret()).map_err(|_| {
                    self.err(
                        ErrorKind::Invalid,
                        "the Vault token contains characters not allowed in an HTTP header",
                    )
                    .with_hint("check VAULT_TOKEN or the token file")
                })?;
                v.set_sensitive(true);
                req = req.header(HeaderName::from_static("x-vault-token"), v);
            }
            if let Some(ns) = &self.namespace {
                req = req.header("X-Vault-Namespace", ns);
            }
            if let Some(b) = body {
                req = req
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(b.to_vec());
            }
            tracing::debug!(method = %method, path, attempt, "vault request");
            let outcome = match req.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    match resp.bytes().await {
                        Ok(bytes) => Ok(Reply {
                            status,
                            body: Zeroizing::new(bytes.to_vec()),
                        }),
                        Err(e) => Err(e),
                    }
                }
                Err(e) => Err(e),
            };
            match outcome {
                Ok(r) if Self::retryable(r.status) && attempt < ATTEMPTS => {
                    tracing::debug!(status = %r.status, "vault: retryable status, backing off");
                }
                Ok(r) => return Ok(r),
                Err(e) if attempt < ATTEMPTS && (e.is_connect() || e.is_timeout()) => {
                    tracing::debug!(error = %e.without_url(), "vault: retryable error, backing off");
                }
                Err(e) => {
                    let what = if e.is_timeout() {
                        "timed out"
                    } else if e.is_connect() {
                        "cannot connect"
                    } else {
                        "request failed"
                    };
                    let e = e.without_url();
                    return Err(self
                        .err(
                            ErrorKind::Unavailable,
                            format!("{what} to {} after {attempt} attempt(s): {e}", self.address),
                        )
                        .with_hint(
                            "check that Vault is running and VAULT_ADDR (or [credentials.vault] \
                             address) is right; for TLS errors set VAULT_CACERT",
                        ));
                }
            }
            tokio::time::sleep(backoff).await;
            backoff *= 2;
            attempt += 1;
        }
    }

    /// An authenticated request: logs in when needed, and once more after a 403.
    async fn call<B: Serialize>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<Reply> {
        let body = match body {
            Some(v) => Some(Zeroizing::new(serde_json::to_vec(v).map_err(|e| {
                self.err(
                    ErrorKind::Invalid,
                    format!("cannot encode the request: {e}"),
                )
            })?)),
            None => None,
        };
        let mut relogged = false;
        loop {
            let token = self.token().await?;
            let r = self
                .send(&method, path, body.as_ref(), Some(&token))
                .await?;
            if r.status == StatusCode::FORBIDDEN && !relogged {
                // The token may have been revoked or rotated: log in again, once.
                tracing::debug!("vault: 403, logging in again");
                *self.token.lock().await = None;
                relogged = true;
                continue;
            }
            return Ok(r);
        }
    }

    async fn token(&self) -> Result<SecretString> {
        let mut guard = self.token.lock().await;
        if let Some(t) = guard.as_ref()
            && t.expires.is_none_or(|e| Instant::now() + EXPIRY_MARGIN < e)
        {
            return Ok(t.value.clone());
        }
        let t = self.login().await?;
        let v = t.value.clone();
        *guard = Some(t);
        Ok(v)
    }

    fn read_secret_file(&self, path: &Path, what: &str, hint: &str) -> Result<SecretString> {
        use std::io::Read;
        let f = std::fs::File::open(path).map_err(|e| {
            let kind = match e.kind() {
                std::io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
                _ => ErrorKind::PermissionDenied,
            };
            self.err(
                kind,
                format!("cannot read the {what} {}: {e}", path.display()),
            )
            .with_hint(hint.to_owned())
        })?;
        let mut buf = Zeroizing::new(String::new());
        f.take(MAX_SECRET_FILE)
            .read_to_string(&mut buf)
            .map_err(|e| {
                self.err(
                    ErrorKind::Invalid,
                    format!("cannot read the {what} {}: {e}", path.display()),
                )
            })?;
        let v = buf.trim();
        if v.is_empty() {
            return Err(self
                .err(
                    ErrorKind::PermissionDenied,
                    format!("the {what} {} is empty", path.display()),
                )
                .with_hint(hint.to_owned()));
        }
        Ok(SecretString::from(v.to_owned()))
    }

    async fn login(&self) -> Result<Token> {
        let (path, body) = match &self.auth {
            Auth::Token { env: Some(t), .. } => {
                return Ok(Token {
                    value: t.clone(),
                    expires: None,
                });
            }
            Auth::Token { env: None, file } => {
                if !file.exists() {
                    return Err(self
                        .err(
                            ErrorKind::PermissionDenied,
                            format!(
                                "no Vault token: VAULT_TOKEN is not set and {} does not exist",
                                file.display()
                            ),
                        )
                        .with_hint(
                            "export VAULT_TOKEN (or run `vault login`), or configure \
                             [credentials.vault] auth = \"approle\" or \"kubernetes\"",
                        ));
                }
                let value = self.read_secret_file(
                    file,
                    "token file",
                    "run `vault login` or export VAULT_TOKEN",
                )?;
                return Ok(Token {
                    value,
                    expires: None,
                });
            }
            Auth::AppRole {
                mount,
                role_id,
                secret_id,
            } => {
                let secret = match secret_id {
                    SecretSource::Value(v) => v.clone(),
                    SecretSource::File(p) => self.read_secret_file(
                        p,
                        "AppRole secret ID file",
                        "fix [credentials.vault] secret_id_file or set VAULT_SECRET_ID",
                    )?,
                };
                let body = serde_json::to_vec(&AppRoleLogin {
                    role_id,
                    secret_id: secret.expose_secret(),
                });
                (format!("auth/{mount}/login"), body)
            }
            Auth::Kubernetes {
                mount,
                role,
                jwt_file,
            } => {
                let jwt = self.read_secret_file(
                    jwt_file,
                    "service-account token",
                    "run inside a pod with a service account, or set [credentials.vault] jwt_file",
                )?;
                let body = serde_json::to_vec(&KubernetesLogin {
                    role,
                    jwt: jwt.expose_secret(),
                });
                (format!("auth/{mount}/login"), body)
            }
        };
        let body = Zeroizing::new(body.map_err(|e| {
            self.err(ErrorKind::Invalid, format!("cannot encode the login: {e}"))
        })?);
        let r = self.send(&Method::POST, &path, Some(&body), None).await?;
        let method = self.auth.name();
        if !r.status.is_success() {
            let errors = r.errors();
            let status = r.status.as_u16();
            let e = if r.status.is_client_error() {
                self.err(
                    ErrorKind::PermissionDenied,
                    format!("{method} login at {path} refused (HTTP {status}){errors}"),
                )
                .with_hint(match self.auth {
                    Auth::AppRole { .. } => {
                        "check role_id and the secret ID (VAULT_SECRET_ID or secret_id_file); \
                         secret IDs expire and may be single-use"
                    }
                    _ => {
                        "check [credentials.vault] role and that the service account is bound to it"
                    }
                })
            } else {
                self.status_error(&r, &format!("{method} login at {path}"))
            };
            return Err(e);
        }
        let no_token = || {
            self.err(
                ErrorKind::Corrupt,
                format!("{method} login at {path} returned no auth.client_token"),
            )
        };
        let reply: LoginReply = r.typed().map_err(|_| no_token())?;
        let auth = reply.auth.ok_or_else(no_token)?;
        let token = auth
            .client_token
            .filter(|t| !t.expose_secret().is_empty())
            .ok_or_else(no_token)?;
        let ttl = auth.lease_duration.unwrap_or(0);
        tracing::debug!(method, ttl, "vault: logged in");
        Ok(Token {
            value: token,
            expires: (ttl > 0).then(|| Instant::now() + Duration::from_secs(ttl)),
        })
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
        .with_hint(format!(
            "rewrite it with `siteport credential add {name} --force`; it needs the keys \
             username, password and optionally host and port"
        ))
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
                let reply: KvV2Read = r.typed().map_err(|m| m.into_error(&self.describe(), |why| self.corrupt(name, &why)))?;
                let updated = reply
                    .data
                    .as_ref()
                    .and_then(|d| d.metadata.as_ref())
                    .and_then(|m| Self::timestamp(m.created_time.as_deref()));
                (reply.data.and_then(|d| d.data), updated)
            }
            KvVersion::V1 => {
                let reply: KvV1Read = r.typed().map_err(|m| m.into_error(&self.describe(), |why| self.corrupt(name, &why)))?;
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
