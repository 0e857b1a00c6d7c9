//! The Secrets Manager client (built on first use) and the mapping of SDK failures to errors.

use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_smithy_http_client::tls;

use crate::credential::CredentialName;
use crate::error::{Error, ErrorKind, Result};

use super::backend::AwsBackend;

pub(super) const DEFAULT_ATTEMPTS: u32 = 3;
pub(super) const DEFAULT_TIMEOUT_SECS: u64 = 30;

/// How a failed call is classified before it becomes an [`Error`].
pub(super) enum Fault {
    NotFound,
    Exists,
    ScheduledForDeletion,
    Other(Error),
}
impl AwsBackend {
    pub(super) async fn client(&self) -> Result<&Client> {
        self.client
            .get_or_try_init(|| async {
                let http = aws_smithy_http_client::Builder::new()
                    .tls_provider(tls::Provider::Rustls(
                        tls::rustls_provider::CryptoMode::Ring,
                    ))
                    .build_https();
                let attempts = self.settings.max_attempts.unwrap_or(DEFAULT_ATTEMPTS);
                let mut loader = aws_config::defaults(BehaviorVersion::latest())
                    .http_client(http)
                    .retry_config(
                        RetryConfig::standard()
                            .with_max_attempts(attempts)
                            .with_initial_backoff(Duration::from_millis(200)),
                    )
                    .timeout_config(
                        TimeoutConfig::builder()
                            .connect_timeout(Duration::from_secs(5))
                            .operation_timeout(Duration::from_secs(
                                self.settings.timeout_secs.unwrap_or(DEFAULT_TIMEOUT_SECS),
                            ))
                            .build(),
                    );
                if let Some(r) = &self.settings.region {
                    loader = loader.region(aws_config::Region::new(r.clone()));
                }
                if let Some(e) = &self.settings.endpoint_url {
                    loader = loader.endpoint_url(e.clone());
                }
                if let Some(c) = &self.credentials {
                    loader = loader.credentials_provider(c.clone());
                }
                if let Some(p) = &self.settings.profile {
                    loader = loader.profile_name(p.clone());
                }
                let conf = loader.load().await;
                if conf.region().is_none() {
                    return Err(Error::new(
                        ErrorKind::Invalid,
                        self.describe.clone(),
                        "no AWS region is configured",
                    )
                    .with_hint(
                        "set `region = \"eu-west-1\"` in [credentials.aws], or export AWS_REGION",
                    ));
                }
                Ok(Client::new(&conf))
            })
            .await
    }

    /// Classifies an SDK failure. Service messages name secrets, never values.
    pub(super) fn fault<E>(&self, op: &str, secret: &str, e: SdkError<E>) -> Fault
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let d = &self.describe;
        let context = DisplayErrorContext(&e).to_string();
        match &e {
            SdkError::ServiceError(se) => {
                let err = se.err();
                let code = err.code().unwrap_or("");
                let message = err.message().unwrap_or("").to_owned();
                let status = se.raw().status().as_u16();
                let what = format!(
                    "{op} '{secret}' failed: {} (HTTP {status}) {message}",
                    if code.is_empty() { "error" } else { code }
                );
                match code {
                    "ResourceNotFoundException" => Fault::NotFound,
                    "ResourceExistsException" => Fault::Exists,
                    "InvalidRequestException"
                        if message.contains("deletion") || message.contains("deleted") =>
                    {
                        Fault::ScheduledForDeletion
                    }
                    "AccessDeniedException"
                    | "AccessDenied"
                    | "UnrecognizedClientException"
                    | "InvalidSignatureException"
                    | "IncompleteSignature"
                    | "MissingAuthenticationToken"
                    | "InvalidClientTokenId"
                    | "ExpiredTokenException"
                    | "ExpiredToken" => Fault::Other(
                        Error::new(ErrorKind::PermissionDenied, d, what).with_hint(
                            "check the AWS identity (`aws sts get-caller-identity`) and that its IAM policy allows secretsmanager:* on the siteport/ secrets",
                        ),
                    ),
                    _ if status == 401 || status == 403 => Fault::Other(
                        Error::new(ErrorKind::PermissionDenied, d, what).with_hint(
                            "check the AWS identity (`aws sts get-caller-identity`) and that its IAM policy allows secretsmanager:* on the siteport/ secrets",
                        ),
                    ),
                    "ThrottlingException"
                    | "TooManyRequestsException"
                    | "RequestLimitExceeded"
                    | "InternalServiceError"
                    | "InternalFailure"
                    | "ServiceUnavailable" => Fault::Other(
                        Error::new(ErrorKind::Unavailable, d, what)
                            .with_hint("AWS is throttling or failing; try again in a minute"),
                    ),
                    _ if status >= 500 => Fault::Other(
                        Error::new(ErrorKind::Unavailable, d, what)
                            .with_hint("AWS is failing; try again in a minute"),
                    ),
                    _ => Fault::Other(Error::new(ErrorKind::Invalid, d, what)),
                }
            }
            SdkError::TimeoutError(_) => Fault::Other(
                Error::new(
                    ErrorKind::Unavailable,
                    d,
                    format!("{op} '{secret}' timed out: {context}"),
                )
                .with_hint("check the network and the endpoint, or raise `timeout_secs` in [credentials.aws]"),
            ),
            SdkError::DispatchFailure(df) if df.is_user() || context.contains("credentials") => {
                Fault::Other(
                    Error::new(
                        ErrorKind::PermissionDenied,
                        d,
                        format!("{op} '{secret}' failed: {context}"),
                    )
                    .with_hint(
                        "configure AWS credentials: `aws configure`, AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
                    ),
                )
            }
            SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => Fault::Other(
                Error::new(
                    ErrorKind::Unavailable,
                    d,
                    format!("{op} '{secret}': cannot reach Secrets Manager: {context}"),
                )
                .with_hint(
                    "check the network, `endpoint_url`/`region` in [credentials.aws] and AWS_ENDPOINT_URL",
                ),
            ),
            _ if context.contains("credentials") => Fault::Other(
                Error::new(
                    ErrorKind::PermissionDenied,
                    d,
                    format!("{op} '{secret}' failed: {context}"),
                )
                .with_hint(
                    "configure AWS credentials: `aws configure`, AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
                ),
            ),
            _ => Fault::Other(Error::new(
                ErrorKind::Invalid,
                d,
                format!("{op} '{secret}' failed: {context}"),
            )),
        }
    }

    pub(super) fn scheduled_hint(&self, secret: &str) -> String {
        format!(
            "restore it with `aws secretsmanager restore-secret --secret-id {secret}`, or purge it with `aws secretsmanager delete-secret --secret-id {secret} --force-delete-without-recovery`"
        )
    }

    pub(super) fn scheduled_error(&self, name: &CredentialName, secret: &str) -> Error {
        Error::new(
            ErrorKind::AlreadyExists,
            &self.describe,
            format!(
                "credential '{name}' cannot be stored: secret '{secret}' is scheduled for deletion"
            ),
        )
        .with_hint(self.scheduled_hint(secret))
    }

    pub(super) fn not_found_scheduled(&self, name: &CredentialName, secret: &str) -> Error {
        Error::new(
            ErrorKind::NotFound,
            &self.describe,
            format!("credential '{name}' not found: secret '{secret}' is scheduled for deletion"),
        )
        .with_hint(self.scheduled_hint(secret))
    }

    pub(super) fn unexpected(&self, name: &CredentialName, fault: Fault) -> Error {
        match fault {
            Fault::Other(e) => e,
            Fault::NotFound => Error::not_found(&self.describe, name),
            Fault::Exists => Error::already_exists(&self.describe, name),
            Fault::ScheduledForDeletion => self.scheduled_error(name, &self.secret_id(name)),
        }
    }
}
