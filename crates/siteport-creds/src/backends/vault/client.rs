//! Requests to Vault: bounded retries, the token header, one re-login after a 403, and the
//! mapping of replies to errors.

use reqwest::header::{HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use zeroize::Zeroizing;

use crate::backend::CredentialBackend;
use crate::backends::payload::Malformed;
use crate::error::{Error, ErrorKind, Result};

use super::auth::Auth;
use super::{ATTEMPTS, FIRST_BACKOFF, KvVersion, VaultBackend};

/// `call` without a request body.
pub(super) const NO_BODY: Option<&()> = None;

/// What one HTTP exchange returned. The body stays raw bytes, wiped on drop: a read or a login
/// reply holds a password or a token, so it is only ever parsed into typed structs whose secret
/// fields are `SecretString`s ([`typed`](Self::typed)); [`json`](Self::json) is for replies
/// without secrets (errors, listings, mount options).
pub(super) struct Reply {
    pub(super) status: StatusCode,
    pub(super) body: Zeroizing<Vec<u8>>,
}

impl Reply {
    /// The body as untyped JSON (`Null` when empty or not JSON). Never for secret-bearing replies.
    pub(super) fn json(&self) -> Value {
        if self.body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&self.body).unwrap_or(Value::Null)
        }
    }

    /// The body as `T`. serde_json's message can quote the input, so only the position is kept.
    pub(super) fn typed<T: DeserializeOwned>(&self) -> std::result::Result<T, Malformed> {
        serde_json::from_slice(&self.body).map_err(|e| Malformed::json(&e))
    }

    pub(super) fn errors(&self) -> String {
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
impl VaultBackend {
    pub(super) fn err(&self, kind: ErrorKind, detail: impl Into<String>) -> Error {
        Error::new(kind, self.describe(), detail)
    }

    pub(super) fn policy_hint(&self) -> String {
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

    pub(super) async fn detect_kv(&self) -> Result<KvVersion> {
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
    pub(super) fn status_error(&self, r: &Reply, what: &str) -> Error {
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

    pub(super) fn retryable(status: StatusCode) -> bool {
        matches!(status.as_u16(), 429 | 502 | 503 | 504)
    }

    /// One request with bounded retries for retryable failures only.
    pub(super) async fn send(
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
    pub(super) async fn call<B: Serialize>(
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
}
