//! The Secret Manager client and its credentials (built on first use), and the mapping of
//! failures to errors.

use std::time::Duration;

use google_cloud_auth::credentials::Credentials;
use google_cloud_auth::errors::CredentialsError;
use google_cloud_gax::error::rpc::Code;
use google_cloud_gax::exponential_backoff::ExponentialBackoffBuilder;
use google_cloud_gax::retry_policy::{Aip194Strict, RetryPolicyExt};
use google_cloud_gax::retry_throttler::CircuitBreaker;
use google_cloud_secretmanager_v1::client::SecretManagerService;
use zeroize::Zeroizing;

use crate::credential::CredentialName;
use crate::error::{Error, ErrorKind, Result};

use super::backend::GcpBackend;

pub(super) const AUTH_HINT: &str = "log in with `gcloud auth application-default login` (or point GOOGLE_APPLICATION_CREDENTIALS or `credentials_file` in [credentials.gcp] at a key file)";

/// A failed call, classified.
pub(super) enum Fault {
    NotFound,
    Exists,
    /// FAILED_PRECONDITION: e.g. the latest version is disabled or destroyed.
    Precondition(String),
    Other(Error),
}
impl GcpBackend {
    pub(super) fn load_credentials(&self) -> Result<Credentials> {
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

    pub(super) async fn client(&self) -> Result<&SecretManagerService> {
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
    pub(super) fn fault(
        &self,
        op: &str,
        secret: &str,
        e: &google_cloud_gax::error::Error,
    ) -> Fault {
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

    pub(super) fn to_error(&self, name: &CredentialName, f: Fault) -> Error {
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
}
