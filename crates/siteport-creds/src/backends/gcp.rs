//! GCP Secret Manager (feature `gcp`), through the official `google-cloud-secretmanager-v1`.
//!
//! One secret per credential in the configured project, with the ID `<prefix><mapped name>`
//! (`siteport-acme` by default) and a label (`siteport=managed` unless `label` says otherwise).
//! Every [`store`](CredentialBackend::store) adds a new secret version whose payload is JSON:
//! `{"username": …, "password": …, "host": …, "port": …}` (host and port optional; a port
//! written as a string is accepted, for secrets made by hand). [`get`](CredentialBackend::get)
//! reads the `latest` version and checks its CRC32C when the service sends one.
//!
//! **Name mapping.** Secret IDs allow only `[A-Za-z0-9_-]` (at most 255 characters); credential
//! names are `[a-z0-9._-]` (at most 64). Letters, digits and `-` stay as they are; `_` is the
//! escape character: `_` is written `__` and `.` is written `_d`. The mapping is reversible
//! (every `_` in an ID starts a two-character escape), keeps IDs readable (`shop.example-com`
//! is `siteport-shop_dexample-com`) and at most 128 characters, which leaves 127 for the prefix.
//!
//! **Listing** asks the service for `name:<prefix>` (or, when `label` is set, for
//! `labels.<key>=<value>`), reads every page, and keeps only IDs that start with the prefix and
//! decode to a valid credential name: foreign secrets in the same project are ignored.
//!
//! **Transport.** The client speaks REST/JSON over HTTP/1.1 (reqwest + hyper), not gRPC, so an
//! endpoint override to `http://127.0.0.1:PORT` reaches a local fake. The Google crates are
//! built without their default `aws-lc-rs` provider (it needs cmake and a C toolchain); this
//! module installs rustls' `ring` provider as the process default, the one `siteport-ftp`
//! already uses, before it builds a client.
//!
//! **Authentication** is Application Default Credentials from `google-cloud-auth`:
//! `GOOGLE_APPLICATION_CREDENTIALS`, then the file written by `gcloud auth application-default
//! login`, then the metadata server on GCE/GKE/Cloud Run. `credentials_file` in
//! [`GcpSettings`] names a key file instead (same formats as ADC).
//!
//! **Retries**: `UNAVAILABLE`/HTTP 503 and connection failures on idempotent calls,
//! `RESOURCE_EXHAUSTED`/HTTP 429 on every call, up to `max_attempts` within `timeout_secs`, with
//! exponential backoff. Creating a secret and adding a version are marked idempotent: a retry
//! after a lost reply either meets ALREADY_EXISTS (handled) or adds an identical version.
//! Nothing else is retried.
//!
//! **Secrets in memory**: the JSON written and the text read are zeroized; the SDK's own
//! request and response buffers (`bytes::Bytes`) are not under our control and are freed, not
//! wiped. The SDK logs request and response bodies when `GOOGLE_CLOUD_RUST_LOGGING=true`;
//! opening the backend refuses that setting, since those bodies hold the password.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use google_cloud_auth::credentials::Credentials;
use google_cloud_auth::errors::CredentialsError;
use google_cloud_gax::error::rpc::Code;
use google_cloud_gax::exponential_backoff::ExponentialBackoffBuilder;
use google_cloud_gax::options::RequestOptionsBuilder;
use google_cloud_gax::paginator::Paginator;
use google_cloud_gax::retry_policy::{Aip194Strict, RetryPolicyExt};
use google_cloud_gax::retry_throttler::CircuitBreaker;
use google_cloud_secretmanager_v1::client::SecretManagerService;
use google_cloud_secretmanager_v1::model::{Replication, Secret, SecretPayload, replication};
use time::OffsetDateTime;
use tokio::sync::OnceCell;
use zeroize::Zeroizing;

use crate::backend::{BackendKind, CredentialBackend, CredentialInfo, Health, StoreMode};
use crate::cloud_settings::{DEFAULT_GCP_LABEL, DEFAULT_GCP_PREFIX, GcpSettings};
use crate::credential::{Credential, CredentialName, MAX_NAME_LEN};
use crate::error::{Error, ErrorKind, Result};

const DEFAULT_ENDPOINT: &str = "https://secretmanager.googleapis.com";
const DEFAULT_ATTEMPTS: u32 = 3;
const DEFAULT_TIMEOUT_SECS: u64 = 30;
/// Secret Manager's limit on secret IDs.
const MAX_SECRET_ID: usize = 255;
/// The longest prefix that still leaves room for the longest mapped name.
pub const MAX_PREFIX_LEN: usize = MAX_SECRET_ID - 2 * MAX_NAME_LEN;
/// The SDK's switch that logs request and response bodies.
const SDK_LOGGING_VAR: &str = "GOOGLE_CLOUD_RUST_LOGGING";

const AUTH_HINT: &str = "log in with `gcloud auth application-default login` (or point GOOGLE_APPLICATION_CREDENTIALS or `credentials_file` in [credentials.gcp] at a key file)";

/// The secret ID part for credential `name` (without the prefix): `_` → `__`, `.` → `_d`.
pub fn encode_name(name: &CredentialName) -> String {
    let mut out = String::with_capacity(name.as_str().len() * 2);
    for c in name.as_str().chars() {
        match c {
            '_' => out.push_str("__"),
            '.' => out.push_str("_d"),
            c => out.push(c),
        }
    }
    out
}

/// The credential name a secret ID part (without the prefix) stands for, or `None` when it is
/// not the output of [`encode_name`] (a secret siteport did not write).
pub fn decode_name(id: &str) -> Option<CredentialName> {
    let mut out = String::with_capacity(id.len());
    let mut chars = id.chars();
    while let Some(c) = chars.next() {
        match c {
            '_' => match chars.next() {
                Some('_') => out.push('_'),
                Some('d') => out.push('.'),
                _ => return None,
            },
            c if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' => out.push(c),
            _ => return None,
        }
    }
    // Only the canonical form: `new` lowercases, which would make two IDs one name.
    CredentialName::new(&out)
        .ok()
        .filter(|n| n.as_str() == out && encode_name(n) == id)
}

/// A failed call, classified.
enum Fault {
    NotFound,
    Exists,
    /// FAILED_PRECONDITION: e.g. the latest version is disabled or destroyed.
    Precondition(String),
    Other(Error),
}

/// The GCP Secret Manager backend. The client (and the credentials) are built on first use:
/// reading ADC files is I/O, and opening a backend must not do any.
pub struct GcpBackend {
    project: String,
    prefix: String,
    label: (String, String),
    list_by_label: bool,
    endpoint: Option<String>,
    credentials_file: Option<PathBuf>,
    attempts: u32,
    timeout: Duration,
    describe: String,
    credentials: Option<Credentials>,
    client: OnceCell<SecretManagerService>,
}

impl fmt::Debug for GcpBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GcpBackend")
            .field("describe", &self.describe)
            .field("prefix", &self.prefix)
            .field("label", &self.label)
            .field("list_by_label", &self.list_by_label)
            .field("credentials_file", &self.credentials_file)
            .finish_non_exhaustive()
    }
}

fn env_nonempty(var: &str) -> Option<String> {
    std::env::var(var).ok().filter(|v| !v.trim().is_empty())
}

fn label_part_ok(s: &str, key: bool) -> bool {
    s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        && (!key || s.starts_with(|c: char| c.is_ascii_lowercase()))
}

impl GcpBackend {
    /// Builds the backend from settings (and `GOOGLE_CLOUD_PROJECT`); validates them, contacts
    /// nothing.
    pub fn open(settings: &GcpSettings) -> Result<Self> {
        let endpoint = settings
            .endpoint
            .as_deref()
            .map(|e| e.trim().trim_end_matches('/').to_owned())
            .filter(|e| !e.is_empty());
        let shown_endpoint = endpoint.clone().unwrap_or_else(|| DEFAULT_ENDPOINT.into());
        let project = settings
            .project
            .clone()
            .filter(|p| !p.trim().is_empty())
            .or_else(|| env_nonempty("GOOGLE_CLOUD_PROJECT"));
        let describe = match &project {
            Some(p) => format!("gcp backend (Secret Manager project {p} at {shown_endpoint})"),
            None => format!("gcp backend (Secret Manager at {shown_endpoint})"),
        };
        let invalid = |detail: String, hint: &str| {
            Err(Error::new(ErrorKind::Invalid, &describe, detail).with_hint(hint))
        };
        let Some(project) = project else {
            return invalid(
                "no GCP project is configured".into(),
                "set `project = \"my-project\"` in [credentials.gcp], or export GOOGLE_CLOUD_PROJECT",
            );
        };
        if project.contains('/') || project.chars().any(char::is_whitespace) {
            return invalid(
                format!("project '{project}' is not a project ID or number"),
                "set `project` in [credentials.gcp] to the project ID, e.g. `my-project`",
            );
        }
        let prefix = settings
            .prefix
            .clone()
            .unwrap_or_else(|| DEFAULT_GCP_PREFIX.to_owned());
        if prefix.len() > MAX_PREFIX_LEN
            || !prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return invalid(
                format!(
                    "prefix '{prefix}' is not allowed: secret IDs take only A-Z, a-z, 0-9, '_' and '-', and the prefix may be at most {MAX_PREFIX_LEN} characters"
                ),
                "set `prefix` in [credentials.gcp] to e.g. \"siteport-\"",
            );
        }
        let label_text = settings
            .label
            .clone()
            .unwrap_or_else(|| DEFAULT_GCP_LABEL.to_owned());
        let label = match label_text.split_once('=') {
            Some((k, v)) if label_part_ok(k, true) && !k.is_empty() && label_part_ok(v, false) => {
                (k.to_owned(), v.to_owned())
            }
            _ => {
                return invalid(
                    format!(
                        "label '{label_text}' is not `key=value` with a key of a-z, 0-9, '_', '-' starting with a letter, and a value of a-z, 0-9, '_', '-' (each at most 63)"
                    ),
                    "set `label = \"siteport=managed\"` in [credentials.gcp], or remove it",
                );
            }
        };
        if settings.max_attempts == Some(0) {
            return invalid(
                "max_attempts = 0: at least one attempt is needed".into(),
                "set `max_attempts` to 1 or more in [credentials.gcp]",
            );
        }
        if settings.timeout_secs == Some(0) {
            return invalid(
                "timeout_secs = 0 leaves no time for a request".into(),
                "set `timeout_secs` to 1 or more in [credentials.gcp]",
            );
        }
        if env_nonempty(SDK_LOGGING_VAR).is_some_and(|v| v == "true") {
            return Err(Error::new(
                ErrorKind::Invalid,
                &describe,
                format!(
                    "{SDK_LOGGING_VAR}=true makes the Google client log response bodies, which hold FTP passwords"
                ),
            )
            .with_hint(format!(
                "unset {SDK_LOGGING_VAR}; use `siteport -vvv` for siteport's own redacted logs"
            )));
        }
        Ok(Self {
            project,
            prefix,
            label,
            list_by_label: settings.label.is_some(),
            endpoint,
            credentials_file: settings.credentials_file.clone(),
            attempts: settings.max_attempts.unwrap_or(DEFAULT_ATTEMPTS),
            timeout: Duration::from_secs(settings.timeout_secs.unwrap_or(DEFAULT_TIMEOUT_SECS)),
            describe,
            credentials: None,
            client: OnceCell::new(),
        })
    }

    /// Uses `credentials` instead of Application Default Credentials (for programs that embed
    /// siteport and already hold Google credentials).
    pub fn with_credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// The secret ID that holds credential `name`.
    pub fn secret_id(&self, name: &CredentialName) -> String {
        format!("{}{}", self.prefix, encode_name(name))
    }

    /// The `key=value` label put on the secrets this backend creates.
    pub fn label(&self) -> (&str, &str) {
        (&self.label.0, &self.label.1)
    }

    /// The `filter` that `list` sends.
    pub fn list_filter(&self) -> String {
        if self.list_by_label {
            format!("labels.{}={}", self.label.0, self.label.1)
        } else if self.prefix.is_empty() {
            String::new()
        } else {
            format!("name:{}", self.prefix)
        }
    }

    fn parent(&self) -> String {
        format!("projects/{}", self.project)
    }

    fn secret_path(&self, name: &CredentialName) -> String {
        format!("projects/{}/secrets/{}", self.project, self.secret_id(name))
    }

    fn load_credentials(&self) -> Result<Credentials> {
        if let Some(c) = &self.credentials {
            return Ok(c.clone());
        }
        let denied = |detail: String| {
            Error::new(ErrorKind::PermissionDenied, &self.describe, detail).with_hint(AUTH_HINT)
        };
        let Some(path) = &self.credentials_file else {
            return google_cloud_auth::credentials::Builder::default()
                .build()
                .map_err(|e| {
                    let why = if e.is_parsing() {
                        "the file is not valid JSON".to_owned()
                    } else {
                        e.to_string()
                    };
                    denied(format!(
                        "cannot load Application Default Credentials: {why}"
                    ))
                });
        };
        let text = std::fs::read_to_string(path)
            .map(Zeroizing::new)
            .map_err(|e| {
                denied(format!(
                    "cannot read credentials_file {}: {e}",
                    path.display()
                ))
            })?;
        // serde_json's messages can quote the input, which holds keys: report only the place.
        let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
            denied(format!(
                "credentials_file {} is not JSON (line {} column {})",
                path.display(),
                e.line(),
                e.column()
            ))
        })?;
        use google_cloud_auth::credentials::{
            external_account, impersonated, service_account, user_account,
        };
        let kind = json
            .get("type")
            .and_then(|t| t.as_str())
            .unwrap_or("")
            .to_owned();
        let built = match kind.as_str() {
            "authorized_user" => user_account::Builder::new(json).build(),
            "service_account" => service_account::Builder::new(json).build(),
            "external_account" => external_account::Builder::new(json).build(),
            "impersonated_service_account" => impersonated::Builder::new(json).build(),
            other => {
                return Err(denied(format!(
                    "credentials_file {} has type '{other}'; expected authorized_user, service_account, external_account or impersonated_service_account",
                    path.display()
                )));
            }
        };
        built.map_err(|e| {
            let why = if e.is_missing_field() {
                "a required field is missing"
            } else {
                "its fields are not valid"
            };
            denied(format!(
                "credentials_file {} ({kind}) cannot be used: {why}",
                path.display()
            ))
        })
    }

    async fn client(&self) -> Result<&SecretManagerService> {
        self.client
            .get_or_try_init(|| async {
                // Already installed (by us or the embedding program) is fine.
                let _ = rustls::crypto::ring::default_provider().install_default();
                let credentials = self.load_credentials()?;
                let backoff = ExponentialBackoffBuilder::new()
                    .with_initial_delay(Duration::from_millis(200))
                    .with_maximum_delay(Duration::from_secs(5))
                    .clamp();
                // Deterministic, unlike the default adaptive throttler (random rejections).
                let throttler = CircuitBreaker::new(100, 20, 10)
                    .map_err(|e| Error::new(ErrorKind::Invalid, &self.describe, e.to_string()))?;
                let mut builder = SecretManagerService::builder()
                    .with_credentials(credentials)
                    .with_retry_policy(
                        Aip194Strict
                            .continue_on_too_many_requests()
                            .with_attempt_limit(self.attempts)
                            .with_time_limit(self.timeout),
                    )
                    .with_backoff_policy(backoff)
                    .with_retry_throttler(throttler)
                    .with_attempt_timeout(self.timeout);
                if let Some(e) = &self.endpoint {
                    builder = builder.with_endpoint(e.clone());
                }
                builder.build().await.map_err(|e| {
                    Error::new(
                        ErrorKind::Invalid,
                        &self.describe,
                        format!("cannot build the Secret Manager client: {e}"),
                    )
                    .with_hint("check `endpoint` and `credentials_file` in [credentials.gcp]")
                })
            })
            .await
    }

    /// Classifies an SDK failure. Service messages name secrets, never values.
    fn fault(&self, op: &str, secret: &str, e: &google_cloud_gax::error::Error) -> Fault {
        let d = &self.describe;
        // After retries the SDK wraps the last failure.
        let inner = std::error::Error::source(e)
            .and_then(|s| s.downcast_ref::<google_cloud_gax::error::Error>())
            .filter(|_| e.is_exhausted());
        let e = inner.unwrap_or(e);
        let denied = |what: String| {
            Fault::Other(
                Error::new(ErrorKind::PermissionDenied, d, what).with_hint(format!(
                    "{AUTH_HINT}; the principal needs roles/secretmanager.admin on project {} (roles/secretmanager.secretAccessor only reads)",
                    self.project
                )),
            )
        };
        let unavailable = |what: String| {
            Fault::Other(Error::new(ErrorKind::Unavailable, d, what).with_hint(
                "Secret Manager is throttling or failing; try again in a minute, or raise `max_attempts`/`timeout_secs` in [credentials.gcp]",
            ))
        };
        if let Some(cred) =
            std::error::Error::source(e).and_then(|s| s.downcast_ref::<CredentialsError>())
        {
            let what = format!("{op} '{secret}': cannot get an access token: {cred}");
            return if cred.is_transient() {
                Fault::Other(Error::new(ErrorKind::Unavailable, d, what).with_hint(
                    "the token endpoint did not answer; check the network and try again",
                ))
            } else {
                denied(what)
            };
        }
        if let Some(status) = e.status() {
            let http = e
                .http_status_code()
                .map(|c| format!(" (HTTP {c})"))
                .unwrap_or_default();
            let what = format!(
                "{op} '{secret}' failed: {}{http} {}",
                status.code.name(),
                status.message
            );
            return match status.code {
                Code::NotFound => Fault::NotFound,
                Code::AlreadyExists => Fault::Exists,
                Code::FailedPrecondition => Fault::Precondition(status.message.clone()),
                Code::PermissionDenied | Code::Unauthenticated => denied(what),
                Code::ResourceExhausted | Code::Unavailable | Code::DeadlineExceeded => {
                    unavailable(what)
                }
                Code::Internal | Code::Unknown | Code::Aborted
                    if e.http_status_code().is_some_and(|c| c >= 500) =>
                {
                    unavailable(what)
                }
                _ => Fault::Other(Error::new(ErrorKind::Invalid, d, what)),
            };
        }
        if let Some(code) = e.http_status_code() {
            let what = format!("{op} '{secret}' failed: HTTP {code}");
            return match code {
                404 => Fault::NotFound,
                409 => Fault::Exists,
                401 | 403 => denied(what),
                429 | 500..=599 => unavailable(what),
                _ => Fault::Other(Error::new(ErrorKind::Invalid, d, what)),
            };
        }
        if e.is_timeout() {
            return Fault::Other(
                Error::new(ErrorKind::Unavailable, d, format!("{op} '{secret}' timed out"))
                    .with_hint("check the network and `endpoint`, or raise `timeout_secs` in [credentials.gcp]"),
            );
        }
        if e.is_io() || e.is_connect() || e.is_transport() {
            return Fault::Other(
                Error::new(
                    ErrorKind::Unavailable,
                    d,
                    format!("{op} '{secret}': cannot reach Secret Manager: {e}"),
                )
                .with_hint("check the network and `endpoint` in [credentials.gcp]"),
            );
        }
        if e.is_deserialization() {
            return Fault::Other(
                Error::new(
                    ErrorKind::Corrupt,
                    d,
                    format!("{op} '{secret}': the reply is not a Secret Manager response"),
                )
                .with_hint("check that `endpoint` in [credentials.gcp] points at Secret Manager"),
            );
        }
        Fault::Other(Error::new(
            ErrorKind::Invalid,
            d,
            format!("{op} '{secret}' failed: {e}"),
        ))
    }

    fn to_error(&self, name: &CredentialName, f: Fault) -> Error {
        match f {
            Fault::Other(e) => e,
            Fault::NotFound => Error::not_found(&self.describe, name),
            Fault::Exists => Error::already_exists(&self.describe, name),
            Fault::Precondition(msg) => Error::new(
                ErrorKind::Invalid,
                &self.describe,
                format!(
                    "secret '{}' refused the operation: {msg}",
                    self.secret_id(name)
                ),
            ),
        }
    }

    fn encode(cred: &Credential) -> Result<Zeroizing<String>> {
        // Serializing plain strings cannot fail; the error arm keeps this panic-free anyway.
        crate::backends::payload::encode(cred).map_err(|e| {
            Error::new(
                ErrorKind::Invalid,
                "gcp backend",
                format!("cannot encode credential '{}': {e}", cred.name()),
            )
        })
    }

    fn decode(&self, name: &CredentialName, payload: Option<&SecretPayload>) -> Result<Credential> {
        let secret = self.secret_id(name);
        let corrupt = |why: String| {
            Error::new(
                ErrorKind::Corrupt,
                &self.describe,
                format!("secret '{secret}' is not a siteport credential: {why}"),
            )
            .with_hint(format!(
                "its latest version must be JSON with \"username\" and \"password\" (and optional \"host\", \"port\"); rewrite it with `siteport credential add {name} --force`"
            ))
        };
        let payload = payload.ok_or_else(|| corrupt("the version has no payload".into()))?;
        if let Some(want) = payload.data_crc32c {
            let got = i64::from(crc32c::crc32c(&payload.data));
            if got != want {
                return Err(Error::new(
                    ErrorKind::Corrupt,
                    &self.describe,
                    format!(
                        "secret '{secret}': the payload's CRC32C does not match the one Secret Manager sent (damaged in transit)"
                    ),
                )
                .with_hint("try again; if it persists, rewrite it with `siteport credential add NAME --force`"));
            }
        }
        let text = Zeroizing::new(
            String::from_utf8(payload.data.to_vec())
                .map_err(|_| corrupt("the payload is not UTF-8 text".into()))?,
        );
        crate::backends::payload::decode(name, &text)
            .map_err(|m| m.into_error(&self.describe, corrupt))
    }

    async fn create_secret(&self, name: &CredentialName) -> std::result::Result<(), Fault> {
        let client = self.client().await.map_err(Fault::Other)?;
        let id = self.secret_id(name);
        let secret = Secret::new()
            .set_replication(Replication::new().set_automatic(replication::Automatic::new()))
            .set_labels([(self.label.0.clone(), self.label.1.clone())]);
        client
            .create_secret()
            .set_parent(self.parent())
            .set_secret_id(&id)
            .set_secret(secret)
            .with_idempotency(true)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.fault("CreateSecret", &id, &e))
    }

    async fn add_version(&self, cred: &Credential) -> std::result::Result<(), Fault> {
        let client = self.client().await.map_err(Fault::Other)?;
        let id = self.secret_id(cred.name());
        let json = Self::encode(cred).map_err(Fault::Other)?;
        let crc = i64::from(crc32c::crc32c(json.as_bytes()));
        // The SDK takes `Bytes`, which cannot be wiped; it is dropped once the request is sent.
        let data = json.as_bytes().to_vec();
        client
            .add_secret_version()
            .set_parent(self.secret_path(cred.name()))
            .set_payload(SecretPayload::new().set_data(data).set_data_crc32c(crc))
            .with_idempotency(true)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.fault("AddSecretVersion", &id, &e))
    }

    /// The latest version's payload, or the fault.
    async fn access(&self, name: &CredentialName) -> std::result::Result<Credential, Fault> {
        let client = self.client().await.map_err(Fault::Other)?;
        let id = self.secret_id(name);
        let out = client
            .access_secret_version()
            .set_name(format!("{}/versions/latest", self.secret_path(name)))
            .send()
            .await
            .map_err(|e| self.fault("AccessSecretVersion", &id, &e))?;
        self.decode(name, out.payload.as_ref())
            .map_err(Fault::Other)
    }
}

fn to_time(seconds: i64, nanos: i32) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(
        i128::from(seconds) * 1_000_000_000 + i128::from(nanos),
    )
    .ok()
}

#[async_trait]
impl CredentialBackend for GcpBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Gcp
    }

    fn describe(&self) -> String {
        self.describe.clone()
    }

    fn is_writable(&self) -> bool {
        true
    }

    async fn get(&self, name: &CredentialName) -> Result<Credential> {
        match self.access(name).await {
            Ok(c) => Ok(c),
            Err(Fault::Precondition(_)) => Err(Error::new(
                ErrorKind::NotFound,
                &self.describe,
                format!(
                    "credential '{name}' not found: secret '{}' has no enabled version",
                    self.secret_id(name)
                ),
            )
            .with_hint(format!(
                "enable a version with `gcloud secrets versions enable VERSION --secret {} --project {}`, or add it again with `siteport credential add {name} --force`",
                self.secret_id(name),
                self.project
            ))),
            Err(f) => Err(self.to_error(name, f)),
        }
    }

    async fn store(&self, cred: &Credential, mode: StoreMode) -> Result<()> {
        let name = cred.name();
        let result = match mode {
            StoreMode::CreateNew => match self.create_secret(name).await {
                Ok(()) => self.add_version(cred).await,
                // A secret without an enabled version holds no credential (a store that died
                // between the two calls): finish it instead of refusing.
                Err(Fault::Exists) => match self.access(name).await {
                    Err(Fault::NotFound | Fault::Precondition(_)) => self.add_version(cred).await,
                    Err(Fault::Other(e)) if e.kind() == ErrorKind::Corrupt => Err(Fault::Exists),
                    Err(other) => Err(other),
                    Ok(_) => Err(Fault::Exists),
                },
                Err(f) => Err(f),
            },
            StoreMode::Replace => match self.add_version(cred).await {
                Err(Fault::NotFound) => match self.create_secret(name).await {
                    Ok(()) | Err(Fault::Exists) => self.add_version(cred).await,
                    Err(f) => Err(f),
                },
                other => other,
            },
        };
        match result {
            Ok(()) => {
                tracing::debug!(secret = %self.secret_id(name), "stored credential in Secret Manager");
                Ok(())
            }
            Err(f) => Err(self.to_error(name, f)),
        }
    }

    async fn delete(&self, name: &CredentialName) -> Result<()> {
        let client = self.client().await?;
        let id = self.secret_id(name);
        client
            .delete_secret()
            .set_name(self.secret_path(name))
            .send()
            .await
            .map_err(|e| {
                let f = self.fault("DeleteSecret", &id, &e);
                self.to_error(name, f)
            })
    }

    async fn list(&self) -> Result<Vec<CredentialInfo>> {
        let client = self.client().await?;
        let filter = self.list_filter();
        let mut pages = client
            .list_secrets()
            .set_parent(self.parent())
            .set_filter(filter.clone())
            .by_page();
        let mut names = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| match self.fault("ListSecrets", &filter, &e) {
                Fault::Other(e) => e,
                _ => Error::new(
                    ErrorKind::Invalid,
                    &self.describe,
                    format!(
                        "ListSecrets in project {} failed unexpectedly",
                        self.project
                    ),
                ),
            })?;
            for s in &page.secrets {
                let id = s.name.rsplit('/').next().unwrap_or("");
                // The service's `name:` filter matches anywhere in the name; ours is a prefix.
                let Some(rest) = id.strip_prefix(self.prefix.as_str()) else {
                    continue;
                };
                if self.list_by_label && s.labels.get(&self.label.0) != Some(&self.label.1) {
                    continue;
                }
                match decode_name(rest) {
                    Some(n) => names.push((
                        n,
                        s.create_time
                            .as_ref()
                            .and_then(|t| to_time(t.seconds(), t.nanos())),
                    )),
                    None => tracing::debug!(
                        secret = %id,
                        "skipping a secret whose ID is not a mapped credential name"
                    ),
                }
            }
        }
        names.sort_by(|a, b| a.0.cmp(&b.0));
        names.dedup_by(|a, b| a.0 == b.0);
        let mut out = Vec::with_capacity(names.len());
        for (name, created) in names {
            match self.get(&name).await {
                Ok(c) => {
                    let mut info = CredentialInfo::of(&c, BackendKind::Gcp);
                    info.created = created;
                    out.push(info);
                }
                // Deleted (or emptied) between the listing and the read.
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    async fn check(&self) -> Result<Health> {
        let client = self.client().await?;
        let filter = self.list_filter();
        client
            .list_secrets()
            .set_parent(self.parent())
            .set_filter(filter.clone())
            .set_page_size(1)
            .send()
            .await
            .map_err(|e| match self.fault("ListSecrets", &filter, &e) {
                Fault::Other(e) => e,
                _ => Error::new(
                    ErrorKind::Invalid,
                    &self.describe,
                    format!("ListSecrets in project {} failed", self.project),
                ),
            })?;
        let mut notes = vec![format!(
            "secrets are named {}<credential> in project {} ('.' written _d, '_' written __)",
            self.prefix, self.project
        )];
        notes.push(if self.list_by_label {
            format!(
                "listing selects the label {}={}",
                self.label.0, self.label.1
            )
        } else {
            format!("listing selects the prefix {}", self.prefix)
        });
        notes.push("deleting a credential deletes its secret and every version at once".into());
        Ok(Health { notes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_round_trips_and_rejects_foreign_ids() {
        for (n, id) in [
            ("acme", "acme"),
            ("shop.example-com", "shop_dexample-com"),
            ("beta_2", "beta__2"),
            ("a._.b", "a_d___db"),
        ] {
            let name = CredentialName::new(n).unwrap();
            assert_eq!(encode_name(&name), id);
            assert_eq!(decode_name(id), Some(name));
        }
        for bad in ["", "Acme", "a_x", "a_", "a.b", "_dx", "-a", "a b"] {
            assert_eq!(decode_name(bad), None, "{bad}");
        }
    }
}
