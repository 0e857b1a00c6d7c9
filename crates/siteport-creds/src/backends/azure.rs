//! Azure Key Vault secrets (feature `azure`), through the official
//! `azure_security_keyvault_secrets` client and `azure_identity` credentials.
//!
//! One secret per credential, named `<prefix><encoded name>` (`siteport-acme` by default), whose
//! value is JSON: `{"username": …, "password": …, "host": …, "port": …}` (host and port
//! optional; a port written as a string is accepted, for secrets made by hand), with content type
//! `application/json` and the tag `managed-by=siteport`.
//!
//! # Name mapping
//!
//! Key Vault names match `^[0-9a-zA-Z-]{1,127}$` and are case-insensitive; credential names are
//! lowercase `[a-z0-9._-]`. Letters and digits stay as they are and the three other characters
//! are escaped with `-`: `-` → `--`, `.` → `-d`, `_` → `-u` (`shop.example-com` →
//! `shop-dexample--com`). Every escape starts with `-` and no plain character is `-`, so the code
//! is prefix-free: decoding is unique and two names never share a secret. A vault name that does
//! not decode (a lone `-`, an unknown escape, or a form that is not the canonical encoding) is
//! not a siteport credential and is ignored by `list`. Since escapes double a character, a name
//! whose secret name would exceed 127 characters is refused with `Invalid`.
//!
//! # Authentication
//!
//! `auth = "default"` takes the first configured of: a client secret (`AZURE_TENANT_ID`,
//! `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET`), workload identity (`AZURE_FEDERATED_TOKEN_FILE`,
//! as AKS injects it), the App Service/Functions managed identity (`IDENTITY_ENDPOINT`), then
//! the developer tools (`az login`, `azd auth login`). A VM's managed identity is used only with
//! `auth = "managed_identity"`: probing the instance metadata endpoint from a laptop only hangs.
//! The vault's 401 challenge names the token audience; the SDK answers it (and refuses a
//! challenge whose resource does not match the vault's domain).
//!
//! # Transport
//!
//! The SDK's own transport is reqwest 0.13 whose `rustls` feature brings aws-lc-rs (a C build);
//! siteport instead hands the SDK a transport over the reqwest 0.12 + rustls (ring) client the
//! vault backend already compiles, with webpki roots plus an optional `ca_cert`. Names under
//! `.localhost` resolve to the loopback address (RFC 6761 §6.3), which local emulators use.
//!
//! # Deletion
//!
//! Key Vault soft-deletes: a deleted secret is recoverable for the vault's retention period
//! (7–90 days). `delete` deletes and, with `purge_on_delete = true`, purges at once. Storing a
//! name whose secret is deleted but recoverable recovers it first (history kept, needs the
//! `recover` permission) and then writes the new version, so `remove` then `add` works.
//!
//! The SDK hands secret values around as plain `String`s; siteport moves them into a
//! [`SecretString`] and zeroizes its own copies, but cannot scrub the SDK's buffers.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use azure_core::credentials::{Secret as AzSecret, TokenCredential};
use azure_core::http::headers::{HeaderName, HeaderValue, Headers};
use azure_core::http::{
    AsyncRawResponse, Body, ClientOptions, ExponentialRetryOptions, HttpClient, Method, Request,
    RetryOptions, Transport, Url,
};
use azure_security_keyvault_secrets::models::{
    KeyVaultError, SecretClientListSecretPropertiesOptions, SetSecretParameters,
};
use azure_security_keyvault_secrets::{ResourceExt, SecretClient, SecretClientOptions};
use futures::StreamExt;
use secrecy::{ExposeSecret, SecretString};
use time::OffsetDateTime;
use tokio::sync::OnceCell;
use zeroize::{Zeroize, Zeroizing};

use crate::backend::{BackendKind, CredentialBackend, CredentialInfo, Health, StoreMode};
use crate::backends::payload;
use crate::cloud_settings::{AzureSettings, DEFAULT_AZURE_PREFIX};
use crate::credential::{Credential, CredentialName};
use crate::error::{Error, ErrorKind, Result};

const DEFAULT_ATTEMPTS: u32 = 3;
const DEFAULT_TIMEOUT_SECS: u64 = 30;
/// Key Vault's limit on secret names.
pub const MAX_SECRET_NAME: usize = 127;
/// The tag siteport puts on every secret it writes.
pub const MANAGED_BY_TAG: (&str, &str) = ("managed-by", "siteport");
/// Soft delete, recovery and purge finish in the background; how often and how long to wait.
const SETTLE_POLL: Duration = Duration::from_millis(500);
const SETTLE_ROUNDS: u32 = 60;

const RBAC_HINT: &str = "grant the identity the RBAC role `Key Vault Secrets Officer` on the vault (`Key Vault Secrets User` is enough to read), e.g. `az role assignment create --role \"Key Vault Secrets Officer\" --assignee <id> --scope <vault resource id>`";

/// The Key Vault secret name (without prefix) of a credential name: letters and digits as they
/// are, `-` → `--`, `.` → `-d`, `_` → `-u`.
pub fn encode_name(name: &CredentialName) -> String {
    let mut out = String::with_capacity(name.as_str().len() * 2);
    for c in name.as_str().chars() {
        match c {
            '-' => out.push_str("--"),
            '.' => out.push_str("-d"),
            '_' => out.push_str("-u"),
            c => out.push(c),
        }
    }
    out
}

/// The credential name a Key Vault secret name (without prefix) stands for, or `None` when it
/// is not the canonical encoding of a valid credential name. Key Vault names are
/// case-insensitive, so the input is read in lowercase.
pub fn decode_name(encoded: &str) -> Option<CredentialName> {
    let lower = encoded.to_ascii_lowercase();
    let mut out = String::with_capacity(lower.len());
    let mut chars = lower.chars();
    while let Some(c) = chars.next() {
        match c {
            '-' => out.push(match chars.next()? {
                '-' => '-',
                'd' => '.',
                'u' => '_',
                _ => return None,
            }),
            c if c.is_ascii_alphanumeric() => out.push(c),
            _ => return None,
        }
    }
    let name = CredentialName::new(&out).ok()?;
    (name.as_str() == out && encode_name(&name) == lower).then_some(name)
}

/// How to obtain an Entra ID token.
#[derive(Clone)]
enum Auth {
    ClientSecret {
        tenant: String,
        client_id: String,
        secret: SecretString,
    },
    Workload {
        tenant: Option<String>,
        client_id: Option<String>,
        token_file: Option<PathBuf>,
    },
    Managed {
        client_id: Option<String>,
    },
    AzureCli {
        tenant: Option<String>,
    },
    DeveloperTools,
}

impl Auth {
    fn label(&self) -> &'static str {
        match self {
            Auth::ClientSecret { .. } => "client secret",
            Auth::Workload { .. } => "workload identity",
            Auth::Managed { .. } => "managed identity",
            Auth::AzureCli { .. } => "Azure CLI",
            Auth::DeveloperTools => "developer tools (az, azd)",
        }
    }

    fn hint(&self) -> &'static str {
        match self {
            Auth::ClientSecret { .. } => {
                "check AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET (a new secret: `az ad app credential reset --id <client id>`)"
            }
            Auth::Workload { .. } => {
                "check the federated credential of the app and AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_FEDERATED_TOKEN_FILE of the pod (`azure.workload.identity/use: \"true\"` label)"
            }
            Auth::Managed { .. } => {
                "check that the VM/App Service has a managed identity (`az vm identity assign`) and `managed_identity_client_id` for a user-assigned one"
            }
            Auth::AzureCli { .. } | Auth::DeveloperTools => {
                "sign in with `az login` (or `azd auth login`), or set auth = \"client_secret\" with AZURE_TENANT_ID/AZURE_CLIENT_ID/AZURE_CLIENT_SECRET"
            }
        }
    }
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// The Azure Key Vault backend. SDK clients are built on first use.
pub struct AzureBackend {
    vault_url: String,
    prefix: String,
    purge_on_delete: bool,
    describe: String,
    auth: Auth,
    authority_host: Option<String>,
    http: reqwest::Client,
    attempts: u32,
    timeout: Duration,
    client: OnceCell<SecretClient>,
}

impl fmt::Debug for AzureBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureBackend")
            .field("describe", &self.describe)
            .field("prefix", &self.prefix)
            .field("auth", &self.auth)
            .field("purge_on_delete", &self.purge_on_delete)
            .finish_non_exhaustive()
    }
}

/// How a failed call is classified before it becomes an [`Error`].
enum Fault {
    NotFound,
    /// 409 `ObjectIsDeletedButRecoverable`: the name belongs to a soft-deleted secret.
    Deleted,
    /// Another 409: a delete, recovery or purge still in progress.
    Conflict(Error),
    Other(Error),
}

impl Fault {
    fn into_error(self, b: &AzureBackend, name: &CredentialName) -> Error {
        match self {
            Fault::NotFound => Error::not_found(&b.describe, name),
            Fault::Deleted => b.deleted_error(name),
            Fault::Conflict(e) | Fault::Other(e) => e,
        }
    }
}

/// The SDK's HTTP transport over reqwest 0.12 with rustls on ring.
#[derive(Debug)]
struct RustlsTransport(reqwest::Client);

#[async_trait]
impl HttpClient for RustlsTransport {
    async fn execute_request(&self, request: &Request) -> azure_core::Result<AsyncRawResponse> {
        use azure_core::error::{Error as AzError, ErrorKind as AzKind};
        let method = match request.method() {
            Method::Delete => reqwest::Method::DELETE,
            Method::Get => reqwest::Method::GET,
            Method::Head => reqwest::Method::HEAD,
            Method::Patch => reqwest::Method::PATCH,
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
            other => {
                return Err(AzError::with_message(
                    AzKind::Other,
                    format!("HTTP method {other:?} is not supported by this transport"),
                ));
            }
        };
        let mut req = self.0.request(method, request.url().as_str());
        for (name, value) in request.headers().iter() {
            req = req.header(name.as_str(), value.as_str());
        }
        req = match request.body() {
            Body::Bytes(b) => req.body(b.clone()),
            // Key Vault secrets requests are small JSON documents; streams never occur.
            _ => {
                return Err(AzError::with_message(
                    AzKind::Io,
                    "streaming request bodies are not supported by this transport",
                ));
            }
        };
        let rsp = req.send().await.map_err(|e| {
            let kind = if e.is_connect() || e.is_timeout() {
                AzKind::Connection
            } else {
                AzKind::Io
            };
            // reqwest's message names the URL, never headers or bodies.
            AzError::with_message(kind, format!("request failed: {}", error_chain(&e)))
        })?;
        let status = rsp.status().as_u16();
        let headers: HashMap<HeaderName, HeaderValue> = rsp
            .headers()
            .iter()
            .filter_map(|(k, v)| {
                let v = v.to_str().ok()?;
                Some((
                    HeaderName::from(k.as_str().to_owned()),
                    HeaderValue::from(v.to_owned()),
                ))
            })
            .collect();
        let body = rsp.bytes().await.map_err(|e| {
            AzError::with_message(AzKind::Io, format!("reading the response failed: {e}"))
        })?;
        Ok(AsyncRawResponse::from_bytes(
            status.into(),
            Headers::from(headers),
            body,
        ))
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = c.source();
    }
    s
}

fn host_of(url: &str) -> Option<String> {
    Url::parse(url).ok()?.host_str().map(str::to_owned)
}

impl AzureBackend {
    /// Builds the backend from settings and the process environment; validates, contacts nothing.
    pub fn open(settings: &AzureSettings) -> Result<Self> {
        Self::open_with_env(settings, |k| std::env::var(k).ok())
    }

    /// As [`open`](Self::open), reading `AZURE_*` variables through `env` instead of the
    /// process environment (for embedding programs and tests).
    pub fn open_with_env(
        settings: &AzureSettings,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self> {
        let env = |k: &str| env(k).filter(|v| !v.trim().is_empty());
        let invalid = |d: &str, detail: String, hint: &str| {
            Error::new(ErrorKind::Invalid, d, detail).with_hint(hint.to_owned())
        };
        let Some(vault_url) = settings
            .vault_url
            .clone()
            .or_else(|| env("AZURE_KEYVAULT_URL"))
        else {
            return Err(invalid(
                "azure backend",
                "no Key Vault is configured".into(),
                "set `vault_url = \"https://<vault>.vault.azure.net/\"` in [credentials.azure], or export AZURE_KEYVAULT_URL",
            ));
        };
        let vault_url = vault_url.trim().to_owned();
        let describe = format!("azure backend (Key Vault {vault_url})");
        match Url::parse(&vault_url) {
            Ok(u) if u.scheme() == "https" && u.host_str().is_some() => {}
            _ => {
                return Err(invalid(
                    &describe,
                    format!("vault_url '{vault_url}' is not an https:// URL"),
                    "set vault_url to the vault's URI as `az keyvault show --name <vault> --query properties.vaultUri` prints it",
                ));
            }
        }
        let prefix = settings
            .prefix
            .clone()
            .unwrap_or_else(|| DEFAULT_AZURE_PREFIX.to_owned())
            .to_ascii_lowercase();
        if !prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-')
            || prefix.len() >= MAX_SECRET_NAME
        {
            return Err(invalid(
                &describe,
                format!(
                    "prefix '{prefix}' is not allowed: Key Vault names use only letters, digits and '-'"
                ),
                "set `prefix` in [credentials.azure] to letters, digits and '-', e.g. \"siteport-\"",
            ));
        }
        if settings.max_attempts == Some(0) {
            return Err(invalid(
                &describe,
                "max_attempts = 0: at least one attempt is needed".into(),
                "set `max_attempts` to 1 or more in [credentials.azure]",
            ));
        }
        let authority_host = settings
            .authority_host
            .clone()
            .or_else(|| env("AZURE_AUTHORITY_HOST"));
        if let Some(a) = &authority_host
            && !matches!(Url::parse(a), Ok(u) if u.scheme() == "https")
        {
            return Err(invalid(
                &describe,
                format!("authority_host '{a}' is not an https:// URL"),
                "set authority_host (or AZURE_AUTHORITY_HOST) to e.g. https://login.microsoftonline.com",
            ));
        }
        let auth = Self::auth(settings, &env, &describe)?;

        let timeout =
            Duration::from_secs(settings.timeout_secs.unwrap_or(DEFAULT_TIMEOUT_SECS).max(1));
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            // Azure REST guidelines: services do not redirect; never follow one with a token.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("siteport/", env!("CARGO_PKG_VERSION")));
        for url in [Some(vault_url.as_str()), authority_host.as_deref()]
            .into_iter()
            .flatten()
        {
            if let Some(h) = host_of(url)
                && (h == "localhost" || h.ends_with(".localhost"))
            {
                builder = builder.resolve(&h, (std::net::Ipv4Addr::LOCALHOST, 0).into());
            }
        }
        if let Some(ca) = &settings.ca_cert {
            let hint = "fix `ca_cert` in [credentials.azure] (a PEM file)";
            let pem = std::fs::read(ca).map_err(|e| {
                invalid(
                    &describe,
                    format!("cannot read the CA certificate {}: {e}", ca.display()),
                    hint,
                )
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                invalid(
                    &describe,
                    format!("{} is not a PEM certificate: {e}", ca.display()),
                    hint,
                )
            })?;
            for c in certs {
                builder = builder.add_root_certificate(c);
            }
        }
        let http = builder.build().map_err(|e| {
            Error::new(
                ErrorKind::Invalid,
                &describe,
                format!("cannot set up the HTTP client: {e}"),
            )
        })?;
        Ok(Self {
            vault_url,
            prefix,
            purge_on_delete: settings.purge_on_delete,
            describe,
            auth,
            authority_host,
            http,
            attempts: settings.max_attempts.unwrap_or(DEFAULT_ATTEMPTS),
            timeout,
            client: OnceCell::new(),
        })
    }

    fn auth(
        settings: &AzureSettings,
        env: &dyn Fn(&str) -> Option<String>,
        describe: &str,
    ) -> Result<Auth> {
        let client_secret = || -> Option<Auth> {
            Some(Auth::ClientSecret {
                tenant: env("AZURE_TENANT_ID")?,
                client_id: env("AZURE_CLIENT_ID")?,
                secret: SecretString::from(env("AZURE_CLIENT_SECRET")?),
            })
        };
        let workload = || Auth::Workload {
            tenant: env("AZURE_TENANT_ID"),
            client_id: env("AZURE_CLIENT_ID"),
            token_file: env("AZURE_FEDERATED_TOKEN_FILE").map(PathBuf::from),
        };
        let managed = || Auth::Managed {
            client_id: settings.managed_identity_client_id.clone(),
        };
        let method = settings
            .auth
            .as_deref()
            .unwrap_or("default")
            .trim()
            .to_ascii_lowercase();
        Ok(match method.as_str() {
            "default" => {
                if let Some(a) = client_secret() {
                    a
                } else if env("AZURE_FEDERATED_TOKEN_FILE").is_some() {
                    workload()
                } else if env("IDENTITY_ENDPOINT").is_some() {
                    managed()
                } else {
                    Auth::DeveloperTools
                }
            }
            "client_secret" => client_secret().ok_or_else(|| {
                Error::new(
                    ErrorKind::Invalid,
                    describe,
                    "auth = \"client_secret\" needs AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET",
                )
                .with_hint("export the three variables (the secret from a secret store or CI variable, never the config file)")
            })?,
            "workload_identity" => workload(),
            "managed_identity" => managed(),
            "azure_cli" => Auth::AzureCli {
                tenant: env("AZURE_TENANT_ID"),
            },
            other => {
                return Err(Error::new(
                    ErrorKind::Invalid,
                    describe,
                    format!("unknown auth method '{other}'"),
                )
                .with_hint("set [credentials.azure] auth to \"default\", \"client_secret\", \"workload_identity\", \"managed_identity\" or \"azure_cli\""));
            }
        })
    }

    /// The secret name (prefix included) that holds credential `name`.
    pub fn secret_name(&self, name: &CredentialName) -> Result<String> {
        let s = format!("{}{}", self.prefix, encode_name(name));
        if s.len() > MAX_SECRET_NAME {
            return Err(Error::new(
                ErrorKind::Invalid,
                &self.describe,
                format!(
                    "credential name '{name}' is too long for Key Vault: its secret name has {} characters, the limit is {MAX_SECRET_NAME}",
                    s.len()
                ),
            )
            .with_hint("use a shorter name (each '-', '.', '_' takes two characters) or a shorter `prefix` in [credentials.azure]"));
        }
        Ok(s)
    }

    fn client_options(&self) -> ClientOptions {
        let mut o = ClientOptions {
            transport: Some(Transport::new(Arc::new(RustlsTransport(self.http.clone())))),
            retry: RetryOptions::exponential(ExponentialRetryOptions {
                initial_delay: azure_core::time::Duration::milliseconds(200),
                max_retries: self.attempts.saturating_sub(1),
                max_total_elapsed: azure_core::time::Duration::seconds(
                    i64::try_from(self.timeout.as_secs()).unwrap_or(i64::MAX),
                ),
                max_delay: azure_core::time::Duration::seconds(5),
            }),
            ..Default::default()
        };
        if let Some(a) = &self.authority_host {
            let mut custom = azure_core::cloud::CustomConfiguration::default();
            custom.authority_host = a.clone();
            o.cloud = Some(Arc::new(custom.into()));
        }
        o
    }

    fn credential(&self) -> azure_core::Result<Arc<dyn TokenCredential>> {
        use azure_identity as id;
        let client_options = self.client_options();
        Ok(match &self.auth {
            Auth::ClientSecret {
                tenant,
                client_id,
                secret,
            } => id::ClientSecretCredential::new(
                tenant,
                client_id.clone(),
                AzSecret::new(secret.expose_secret().to_owned()),
                Some(id::ClientSecretCredentialOptions { client_options }),
            )?,
            Auth::Workload {
                tenant,
                client_id,
                token_file,
            } => {
                id::WorkloadIdentityCredential::new(Some(id::WorkloadIdentityCredentialOptions {
                    credential_options: id::ClientAssertionCredentialOptions { client_options },
                    client_id: client_id.clone(),
                    tenant_id: tenant.clone(),
                    token_file_path: token_file.clone(),
                }))?
            }
            Auth::Managed { client_id } => {
                id::ManagedIdentityCredential::new(Some(id::ManagedIdentityCredentialOptions {
                    user_assigned_id: client_id.clone().map(id::UserAssignedId::ClientId),
                    client_options,
                }))?
            }
            Auth::AzureCli { tenant } => {
                id::AzureCliCredential::new(Some(id::AzureCliCredentialOptions {
                    tenant_id: tenant.clone(),
                    ..Default::default()
                }))?
            }
            Auth::DeveloperTools => id::DeveloperToolsCredential::new(None)?,
        })
    }

    async fn client(&self) -> Result<&SecretClient> {
        self.client
            .get_or_try_init(|| async {
                let setup = |e: azure_core::Error| {
                    Error::new(
                        ErrorKind::Invalid,
                        &self.describe,
                        format!(
                            "cannot set up {} authentication: {}",
                            self.auth.label(),
                            safe_message(&e)
                        ),
                    )
                    .with_hint(self.auth.hint())
                };
                let credential = self.credential().map_err(setup)?;
                SecretClient::new(
                    &self.vault_url,
                    credential,
                    Some(SecretClientOptions {
                        client_options: self.client_options(),
                        ..Default::default()
                    }),
                )
                .map_err(setup)
            })
            .await
    }

    /// Classifies an SDK failure. Service messages name secrets, never values.
    fn fault(&self, op: &str, secret: &str, e: azure_core::Error) -> Fault {
        use azure_core::error::ErrorKind as K;
        let d = &self.describe;
        match e.kind() {
            K::HttpResponse {
                status,
                error_code,
                raw_response,
            } => {
                let status = u16::from(*status);
                let code = error_code.clone().unwrap_or_default();
                let inner = raw_response
                    .as_ref()
                    .and_then(|r| serde_json::from_slice::<KeyVaultError>(r.body()).ok())
                    .and_then(|k| k.error)
                    .and_then(|e| e.inner_error)
                    .and_then(|i| i.code)
                    .unwrap_or_default();
                let message = safe_message(&e);
                let what = format!(
                    "{op} '{secret}' failed: HTTP {status} {}{}: {message}",
                    if code.is_empty() { "error" } else { &code },
                    if inner.is_empty() {
                        String::new()
                    } else {
                        format!(" ({inner})")
                    }
                );
                match status {
                    404 => Fault::NotFound,
                    409 if inner == "ObjectIsDeletedButRecoverable"
                        || message.contains("deleted but recoverable") =>
                    {
                        Fault::Deleted
                    }
                    409 => Fault::Conflict(
                        Error::new(ErrorKind::Unavailable, d, what)
                            .with_hint("a delete, recovery or purge of this secret is still running; try again in a minute"),
                    ),
                    401 | 403 => Fault::Other(
                        Error::new(ErrorKind::PermissionDenied, d, what).with_hint(format!(
                            "the {} identity was refused: {RBAC_HINT}; for a vault using access policies: `az keyvault set-policy --name <vault> --secret-permissions get list set delete recover purge --spn <client id>`",
                            self.auth.label()
                        )),
                    ),
                    408 | 429 | 500..=599 => Fault::Other(
                        Error::new(ErrorKind::Unavailable, d, format!("{what} (after {} attempts)", self.attempts))
                            .with_hint("Key Vault is throttling or failing; try again in a minute, or raise `max_attempts` in [credentials.azure]"),
                    ),
                    _ => Fault::Other(Error::new(ErrorKind::Invalid, d, what)),
                }
            }
            K::Credential => {
                let unreachable = source_kinds(&e)
                    .iter()
                    .any(|k| matches!(k, K::Connection | K::Io));
                let authority = self
                    .authority_host
                    .as_deref()
                    .unwrap_or("https://login.microsoftonline.com");
                let detail = format!(
                    "{op} '{secret}': cannot get an Entra ID token ({}, authority {authority}): {}",
                    self.auth.label(),
                    safe_message(&e)
                );
                if unreachable {
                    Fault::Other(
                        Error::new(ErrorKind::Unavailable, d, detail).with_hint(
                            "check the network and `authority_host` in [credentials.azure] / AZURE_AUTHORITY_HOST",
                        ),
                    )
                } else {
                    Fault::Other(
                        Error::new(ErrorKind::PermissionDenied, d, detail)
                            .with_hint(self.auth.hint()),
                    )
                }
            }
            K::Connection | K::Io => Fault::Other(
                Error::new(
                    ErrorKind::Unavailable,
                    d,
                    format!(
                        "{op} '{secret}': cannot reach Key Vault: {}",
                        safe_message(&e)
                    ),
                )
                .with_hint("check the network and `vault_url` in [credentials.azure] (`az keyvault show --name <vault>`)"),
            ),
            K::DataConversion => Fault::Other(Error::new(
                ErrorKind::Corrupt,
                d,
                format!("{op} '{secret}': Key Vault's answer could not be read"),
            )),
            _ => Fault::Other(Error::new(
                ErrorKind::Invalid,
                d,
                format!("{op} '{secret}' failed: {}", safe_message(&e)),
            )),
        }
    }

    fn deleted_error(&self, name: &CredentialName) -> Error {
        let secret = self.secret_name(name).unwrap_or_default();
        let vault = host_of(&self.vault_url)
            .and_then(|h| h.split('.').next().map(str::to_owned))
            .unwrap_or_default();
        Error::new(
            ErrorKind::AlreadyExists,
            &self.describe,
            format!("credential '{name}': secret '{secret}' is deleted but recoverable"),
        )
        .with_hint(format!(
            "recover it with `az keyvault secret recover --vault-name {vault} --name {secret}`, or purge it with `az keyvault secret purge --vault-name {vault} --name {secret}`"
        ))
    }

    fn encode(cred: &Credential) -> Result<Zeroizing<String>> {
        payload::encode(cred).map_err(|e| {
            Error::new(
                ErrorKind::Invalid,
                "azure backend",
                format!("cannot encode credential '{}': {e}", cred.name()),
            )
        })
    }

    fn decode(
        &self,
        name: &CredentialName,
        secret: &str,
        text: Option<&str>,
        times: (Option<OffsetDateTime>, Option<OffsetDateTime>),
    ) -> Result<Credential> {
        let corrupt = |why: String| {
            Error::new(
                ErrorKind::Corrupt,
                &self.describe,
                format!("secret '{secret}' is not a siteport credential: {why}"),
            )
            .with_hint(format!(
                "its value must be JSON with \"username\" and \"password\" (and optional \"host\", \"port\"); rewrite it with `siteport credential add {name} --force`"
            ))
        };
        let text = text.ok_or_else(|| corrupt("it has no value".into()))?;
        let cred =
            payload::decode(name, text).map_err(|m| m.into_error(&self.describe, corrupt))?;
        Ok(cred.with_times(times.0, times.1))
    }

    async fn set(&self, cred: &Credential, secret: &str) -> std::result::Result<(), Fault> {
        let client = self.client().await.map_err(Fault::Other)?;
        let json = Self::encode(cred).map_err(Fault::Other)?;
        let params = SetSecretParameters {
            value: Some(json.as_str().to_owned()),
            content_type: Some("application/json".to_owned()),
            tags: Some(HashMap::from([(
                MANAGED_BY_TAG.0.to_owned(),
                MANAGED_BY_TAG.1.to_owned(),
            )])),
            ..Default::default()
        };
        let body = params
            .try_into()
            .map_err(|e| self.fault("SetSecret", secret, e))?;
        client
            .set_secret(secret, body, None)
            .await
            .map(|_| ())
            .map_err(|e| self.fault("SetSecret", secret, e))
    }

    /// Recovers a soft-deleted secret and writes `cred` as its new version. Recovery finishes
    /// in the background; until then writes get 409, which is waited out (bounded).
    async fn recover_and_set(&self, cred: &Credential, secret: &str) -> Result<()> {
        let client = self.client().await?;
        tracing::debug!(secret = %secret, "recovering a soft-deleted secret before writing it");
        match client.recover_deleted_secret(secret, None).await {
            Ok(_) => {}
            Err(e) => match self.fault("RecoverDeletedSecret", secret, e) {
                // Recovered or purged meanwhile: just write.
                Fault::NotFound | Fault::Conflict(_) => {}
                other => return Err(other.into_error(self, cred.name())),
            },
        }
        let mut last = None;
        for _ in 0..SETTLE_ROUNDS {
            match self.set(cred, secret).await {
                Ok(()) => return Ok(()),
                Err(Fault::Deleted) => last = Some(self.deleted_error(cred.name())),
                Err(Fault::Conflict(e)) => last = Some(e),
                Err(other) => return Err(other.into_error(self, cred.name())),
            }
            tokio::time::sleep(SETTLE_POLL).await;
        }
        Err(last.unwrap_or_else(|| self.deleted_error(cred.name())))
    }

    async fn purge(&self, name: &CredentialName, secret: &str) -> Result<()> {
        let client = self.client().await?;
        let mut last = None;
        for _ in 0..SETTLE_ROUNDS {
            match client.purge_deleted_secret(secret, None).await {
                Ok(_) => return Ok(()),
                Err(e) => match self.fault("PurgeDeletedSecret", secret, e) {
                    // The delete has not finished yet.
                    Fault::Conflict(e) => last = Some(e),
                    Fault::NotFound => last = None,
                    other => {
                        let e = other.into_error(self, name);
                        return Err(Error::new(
                            e.kind(),
                            &self.describe,
                            format!("credential '{name}' was deleted but not purged: {}", e.detail()),
                        )
                        .with_hint(format!(
                            "{}; purge protection may be on, then the secret goes after the retention period",
                            e.hint().unwrap_or(RBAC_HINT)
                        )));
                    }
                },
            }
            tokio::time::sleep(SETTLE_POLL).await;
        }
        Err(last.unwrap_or_else(|| {
            Error::new(
                ErrorKind::Unavailable,
                &self.describe,
                format!("credential '{name}' was deleted but its purge did not go through"),
            )
        }))
    }
}

/// The message of an SDK error and of its causes (the retry policy wraps the real reason),
/// without any response body. Parse failures can quote what they failed to parse: those are
/// replaced by a fixed text.
fn safe_message(e: &azure_core::Error) -> String {
    use azure_core::error::ErrorKind as K;
    let one = |e: &azure_core::Error| match e.kind() {
        K::DataConversion => "the data could not be converted".to_owned(),
        _ => e.to_string(),
    };
    let mut out = one(e);
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        let t = match s.downcast_ref::<azure_core::Error>() {
            Some(a) => one(a),
            None => s.to_string(),
        };
        if !t.is_empty() && !out.contains(&t) {
            out.push_str(": ");
            out.push_str(&t);
        }
        src = s.source();
    }
    out
}

fn source_kinds(e: &azure_core::Error) -> Vec<azure_core::error::ErrorKind> {
    let mut out = Vec::new();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        if let Some(a) = s.downcast_ref::<azure_core::Error>() {
            out.push(a.kind().clone());
        }
        src = s.source();
    }
    out
}

#[async_trait]
impl CredentialBackend for AzureBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Azure
    }

    fn describe(&self) -> String {
        self.describe.clone()
    }

    fn is_writable(&self) -> bool {
        true
    }

    async fn get(&self, name: &CredentialName) -> Result<Credential> {
        let secret = self.secret_name(name)?;
        let client = self.client().await?;
        let rsp = client
            .get_secret(&secret, None)
            .await
            .map_err(|e| self.fault("GetSecret", &secret, e).into_error(self, name))?;
        let mut model = rsp
            .into_model()
            .map_err(|e| self.fault("GetSecret", &secret, e).into_error(self, name))?;
        let times = model
            .attributes
            .as_ref()
            .map_or((None, None), |a| (a.created, a.updated));
        let value = model.value.take().map(Zeroizing::new);
        let out = self.decode(name, &secret, value.as_deref().map(String::as_str), times);
        if let Some(mut v) = model.value {
            v.zeroize();
        }
        out
    }

    async fn store(&self, cred: &Credential, mode: StoreMode) -> Result<()> {
        let name = cred.name();
        let secret = self.secret_name(name)?;
        if mode == StoreMode::CreateNew {
            // Key Vault has no create-only write: look first.
            let client = self.client().await?;
            match client.get_secret(&secret, None).await {
                Ok(_) => return Err(Error::already_exists(&self.describe, name)),
                Err(e) => match self.fault("GetSecret", &secret, e) {
                    Fault::NotFound => {}
                    other => return Err(other.into_error(self, name)),
                },
            }
        }
        match self.set(cred, &secret).await {
            Ok(()) => {}
            Err(Fault::Deleted) => self.recover_and_set(cred, &secret).await?,
            Err(other) => return Err(other.into_error(self, name)),
        }
        tracing::debug!(secret = %secret, "stored credential in Key Vault");
        Ok(())
    }

    async fn delete(&self, name: &CredentialName) -> Result<()> {
        let secret = self.secret_name(name)?;
        let client = self.client().await?;
        client.delete_secret(&secret, None).await.map_err(|e| {
            self.fault("DeleteSecret", &secret, e)
                .into_error(self, name)
        })?;
        if self.purge_on_delete {
            self.purge(name, &secret).await?;
        }
        tracing::debug!(secret = %secret, purged = self.purge_on_delete, "deleted credential from Key Vault");
        Ok(())
    }

    async fn list(&self) -> Result<Vec<CredentialInfo>> {
        let client = self.client().await?;
        let list_err = |e| match self.fault("ListSecrets", &self.prefix, e) {
            Fault::Conflict(e) | Fault::Other(e) => e,
            Fault::NotFound | Fault::Deleted => Error::new(
                ErrorKind::Invalid,
                &self.describe,
                "ListSecrets failed unexpectedly",
            ),
        };
        let mut pager = client.list_secret_properties(None).map_err(list_err)?;
        let mut names = Vec::new();
        while let Some(item) = pager.next().await {
            let props = item.map_err(list_err)?;
            let Ok(id) = props.resource_id() else {
                continue;
            };
            let full = id.name.to_ascii_lowercase();
            let Some(rest) = full.strip_prefix(self.prefix.as_str()) else {
                continue;
            };
            if props.attributes.as_ref().and_then(|a| a.enabled) == Some(false) {
                tracing::debug!(secret = %id.name, "skipping a disabled secret");
                continue;
            }
            // A secret another tool tagged as its own is not ours, whatever its name.
            if props
                .tags
                .as_ref()
                .and_then(|t| t.get(MANAGED_BY_TAG.0))
                .is_some_and(|v| v != MANAGED_BY_TAG.1)
            {
                tracing::debug!(secret = %id.name, "skipping a secret managed by another tool");
                continue;
            }
            match decode_name(rest) {
                Some(n) => {
                    let (c, u) = props
                        .attributes
                        .as_ref()
                        .map_or((None, None), |a| (a.created, a.updated));
                    names.push((n, c, u));
                }
                None => tracing::debug!(
                    secret = %id.name,
                    "skipping a secret whose name does not decode to a credential name"
                ),
            }
        }
        names.sort_by(|a, b| a.0.cmp(&b.0));
        names.dedup_by(|a, b| a.0 == b.0);
        let mut out = Vec::with_capacity(names.len());
        for (name, created, updated) in names {
            match self.get(&name).await {
                Ok(c) => {
                    let mut info = CredentialInfo::of(&c, BackendKind::Azure);
                    info.created = created;
                    info.updated = updated.or(created);
                    out.push(info);
                }
                // Deleted between the listing and the read.
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    async fn check(&self) -> Result<Health> {
        let client = self.client().await?;
        let err = |e| {
            match self.fault("ListSecrets", &self.prefix, e) {
            Fault::Conflict(e) | Fault::Other(e) => e,
            Fault::NotFound | Fault::Deleted => Error::new(
                ErrorKind::Invalid,
                &self.describe,
                "ListSecrets failed: the vault URL does not point at a Key Vault",
            )
            .with_hint("check `vault_url` in [credentials.azure] (`az keyvault show --name <vault> --query properties.vaultUri`)"),
        }
        };
        let mut pages = client
            .list_secret_properties(Some(SecretClientListSecretPropertiesOptions {
                maxresults: Some(1),
                ..Default::default()
            }))
            .map_err(err)?
            .into_pages();
        if let Some(page) = pages.next().await {
            page.map_err(err)?;
        }
        Ok(Health {
            notes: vec![
                format!(
                    "secrets are named {}<credential> ('-' as '--', '.' as '-d', '_' as '-u')",
                    self.prefix
                ),
                format!("authentication: {}", self.auth.label()),
                if self.purge_on_delete {
                    "deleted credentials are purged at once (purge_on_delete = true)".to_owned()
                } else {
                    "deleted credentials stay recoverable for the vault's retention period"
                        .to_owned()
                },
            ],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn examples() {
        let n = CredentialName::new("shop.example-com_2").unwrap();
        assert_eq!(encode_name(&n), "shop-dexample--com-u2");
        assert_eq!(decode_name("shop-dexample--com-u2"), Some(n.clone()));
        assert_eq!(decode_name("SHOP-DEXAMPLE--COM-U2"), Some(n));
        for bad in ["", "-", "a-", "a-x", "a.b", "a_b", "-da", "a---"] {
            assert_eq!(decode_name(bad), None, "{bad}");
        }
    }
}
