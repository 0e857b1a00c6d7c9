//! The [`AwsBackend`]: settings, secret naming and the credential operations.

use std::fmt;

use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType};
use time::OffsetDateTime;
use tokio::sync::OnceCell;
use zeroize::Zeroizing;

use super::settings::{AwsSettings, DEFAULT_SECRET_PREFIX};
use crate::backend::{BackendKind, CredentialBackend, CredentialInfo, Health, StoreMode};
use crate::backends::payload;
use crate::credential::{Credential, CredentialName};
use crate::error::{Error, ErrorKind, Result};

use super::client::Fault;

pub(super) const DEFAULT_RECOVERY_DAYS: i64 = 7;

/// What deleting a secret does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeletePolicy {
    /// Delete now; the secret cannot be restored.
    Force,
    /// Schedule deletion after this many days (7–30); restorable until then.
    RecoveryWindow(i64),
}

/// The AWS Secrets Manager backend. The SDK is configured on first use (reading the shared
/// config files is I/O, and opening a backend must not do any).
pub struct AwsBackend {
    pub(super) settings: AwsSettings,
    pub(super) prefix: String,
    pub(super) delete: DeletePolicy,
    pub(super) describe: String,
    pub(super) credentials: Option<aws_sdk_secretsmanager::config::SharedCredentialsProvider>,
    pub(super) client: OnceCell<Client>,
}

impl fmt::Debug for AwsBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsBackend")
            .field("describe", &self.describe)
            .field("prefix", &self.prefix)
            .field("delete", &self.delete)
            .finish_non_exhaustive()
    }
}
impl AwsBackend {
    /// Builds the backend from settings; validates them, contacts nothing.
    pub fn open(settings: &AwsSettings) -> Result<Self> {
        let region = settings
            .region
            .clone()
            .or_else(|| env_nonempty("AWS_REGION"))
            .or_else(|| env_nonempty("AWS_DEFAULT_REGION"));
        let endpoint = settings
            .endpoint_url
            .clone()
            .or_else(|| env_nonempty("AWS_ENDPOINT_URL_SECRETS_MANAGER"))
            .or_else(|| env_nonempty("AWS_ENDPOINT_URL"));
        let describe = match (&region, &endpoint) {
            (r, Some(e)) => format!(
                "aws backend (Secrets Manager at {e}, region {})",
                r.as_deref().unwrap_or("from the AWS config")
            ),
            (Some(r), None) => {
                format!("aws backend (Secrets Manager at https://secretsmanager.{r}.amazonaws.com)")
            }
            (None, None) => "aws backend (Secrets Manager, region from the AWS config)".to_owned(),
        };
        let delete = if settings.force_delete {
            DeletePolicy::Force
        } else {
            let days = settings
                .recovery_window_days
                .unwrap_or(DEFAULT_RECOVERY_DAYS);
            if !(7..=30).contains(&days) {
                return Err(Error::new(
                    ErrorKind::Invalid,
                    describe,
                    format!("recovery_window_days = {days} is out of range; AWS allows 7 to 30"),
                )
                .with_hint(
                    "set `recovery_window_days` between 7 and 30 in [credentials.aws], or `force_delete = true` to delete without recovery",
                ));
            }
            DeletePolicy::RecoveryWindow(days)
        };
        if settings.max_attempts == Some(0) {
            return Err(Error::new(
                ErrorKind::Invalid,
                describe,
                "max_attempts = 0: at least one attempt is needed",
            )
            .with_hint("set `max_attempts` to 1 or more in [credentials.aws]"));
        }
        let prefix = settings
            .prefix
            .clone()
            .unwrap_or_else(|| DEFAULT_SECRET_PREFIX.to_owned());
        Ok(Self {
            settings: settings.clone(),
            prefix,
            delete,
            describe,
            credentials: None,
            client: OnceCell::new(),
        })
    }

    /// Uses `provider` instead of the SDK's default credential chain (for programs that embed
    /// siteport and already hold AWS credentials, and for tests).
    pub fn with_credentials_provider(
        mut self,
        provider: impl aws_sdk_secretsmanager::config::ProvideCredentials + 'static,
    ) -> Self {
        self.credentials =
            Some(aws_sdk_secretsmanager::config::SharedCredentialsProvider::new(provider));
        self
    }

    /// What deleting does with these settings.
    pub fn delete_policy(&self) -> DeletePolicy {
        self.delete
    }

    /// The secret name that holds credential `name`.
    pub fn secret_id(&self, name: &CredentialName) -> String {
        format!("{}{}", self.prefix, name)
    }

    pub(super) fn encode(cred: &Credential) -> Result<Zeroizing<String>> {
        payload::encode_for("aws backend", cred)
    }

    pub(super) fn decode(
        &self,
        name: &CredentialName,
        secret: &str,
        text: Option<&str>,
        times: (Option<OffsetDateTime>, Option<OffsetDateTime>),
    ) -> Result<Credential> {
        const HOLDER: &str = "its SecretString";
        let text = text.ok_or_else(|| {
            let why = "it has no SecretString (binary secret)".to_string();
            payload::not_a_credential(&self.describe, name, secret, HOLDER, why)
        })?;
        let cred = payload::decode_secret(&self.describe, name, secret, HOLDER, text)?;
        Ok(cred.with_times(times.0, times.1))
    }

    pub(super) async fn create(&self, cred: &Credential) -> std::result::Result<(), Fault> {
        let client = self.client().await.map_err(Fault::Other)?;
        let secret = self.secret_id(cred.name());
        let json = Self::encode(cred).map_err(Fault::Other)?;
        client
            .create_secret()
            .name(&secret)
            .description("FTP credential managed by siteport")
            .secret_string(json.as_str())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.fault("CreateSecret", &secret, e))
    }

    /// Whether the secret exists: `Ok(false)` when absent, `ScheduledForDeletion` when it is
    /// waiting out its recovery window.
    pub(super) async fn exists(&self, secret: &str) -> std::result::Result<bool, Fault> {
        let client = self.client().await.map_err(Fault::Other)?;
        match client.describe_secret().secret_id(secret).send().await {
            Ok(d) if d.deleted_date().is_some() => Err(Fault::ScheduledForDeletion),
            Ok(_) => Ok(true),
            Err(e) => match self.fault("DescribeSecret", secret, e) {
                Fault::NotFound => Ok(false),
                other => Err(other),
            },
        }
    }

    pub(super) async fn put(&self, cred: &Credential) -> std::result::Result<(), Fault> {
        let client = self.client().await.map_err(Fault::Other)?;
        let secret = self.secret_id(cred.name());
        let json = Self::encode(cred).map_err(Fault::Other)?;
        client
            .put_secret_value()
            .secret_id(&secret)
            .secret_string(json.as_str())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.fault("PutSecretValue", &secret, e))
    }
}

pub(super) fn env_nonempty(var: &str) -> Option<String> {
    std::env::var(var).ok().filter(|v| !v.trim().is_empty())
}

pub(super) fn to_time(
    t: Option<&aws_sdk_secretsmanager::primitives::DateTime>,
) -> Option<OffsetDateTime> {
    let t = t?;
    OffsetDateTime::from_unix_timestamp_nanos(
        i128::from(t.secs()) * 1_000_000_000 + i128::from(t.subsec_nanos()),
    )
    .ok()
}

#[async_trait]
impl CredentialBackend for AwsBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Aws
    }

    fn describe(&self) -> String {
        self.describe.clone()
    }

    fn is_writable(&self) -> bool {
        true
    }

    async fn get(&self, name: &CredentialName) -> Result<Credential> {
        let client = self.client().await?;
        let secret = self.secret_id(name);
        let out = match client.get_secret_value().secret_id(&secret).send().await {
            Ok(out) => out,
            Err(e) => {
                return Err(match self.fault("GetSecretValue", &secret, e) {
                    Fault::NotFound => Error::not_found(&self.describe, name),
                    Fault::ScheduledForDeletion => self.not_found_scheduled(name, &secret),
                    other => self.unexpected(name, other),
                });
            }
        };
        let created = to_time(out.created_date());
        self.decode(name, &secret, out.secret_string(), (created, created))
    }

    async fn store(&self, cred: &Credential, mode: StoreMode) -> Result<()> {
        let name = cred.name();
        let secret = self.secret_id(name);
        let result = match mode {
            StoreMode::CreateNew => self.create(cred).await,
            // Describe first: not every implementation refuses PutSecretValue on a secret
            // scheduled for deletion, and a value written there would be invisible.
            StoreMode::Replace => match self.exists(&secret).await {
                Ok(true) => self.put(cred).await,
                Ok(false) => self.create(cred).await,
                Err(f) => Err(f),
            },
        };
        match result {
            Ok(()) => {
                tracing::debug!(secret = %secret, "stored credential in Secrets Manager");
                Ok(())
            }
            Err(Fault::Exists) => Err(Error::already_exists(&self.describe, name)),
            Err(Fault::ScheduledForDeletion) => Err(self.scheduled_error(name, &secret)),
            Err(other) => Err(self.unexpected(name, other)),
        }
    }

    async fn delete(&self, name: &CredentialName) -> Result<()> {
        let client = self.client().await?;
        let secret = self.secret_id(name);
        // A forced delete of a missing secret succeeds in AWS, so look first.
        match self.exists(&secret).await {
            Ok(true) => {}
            Ok(false) | Err(Fault::NotFound) => return Err(Error::not_found(&self.describe, name)),
            Err(Fault::ScheduledForDeletion) => return Err(self.not_found_scheduled(name, &secret)),
            Err(other) => return Err(self.unexpected(name, other)),
        }
        let mut req = client.delete_secret().secret_id(&secret);
        req = match self.delete {
            DeletePolicy::Force => req.force_delete_without_recovery(true),
            DeletePolicy::RecoveryWindow(days) => req.recovery_window_in_days(days),
        };
        match req.send().await {
            Ok(_) => Ok(()),
            Err(e) => Err(match self.fault("DeleteSecret", &secret, e) {
                Fault::NotFound => Error::not_found(&self.describe, name),
                Fault::ScheduledForDeletion => self.not_found_scheduled(name, &secret),
                other => self.unexpected(name, other),
            }),
        }
    }

    async fn list(&self) -> Result<Vec<CredentialInfo>> {
        let client = self.client().await?;
        let mut req = client.list_secrets();
        if !self.prefix.is_empty() {
            req = req.filters(
                Filter::builder()
                    .key(FilterNameStringType::Name)
                    .values(&self.prefix)
                    .build(),
            );
        }
        let mut pages = req.into_paginator().send();
        let mut names = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| match self.fault("ListSecrets", &self.prefix, e) {
                Fault::Other(e) => e,
                _ => Error::new(
                    ErrorKind::Invalid,
                    &self.describe,
                    "ListSecrets failed unexpectedly",
                ),
            })?;
            for entry in page.secret_list() {
                if entry.deleted_date().is_some() {
                    continue;
                }
                let Some(full) = entry.name() else { continue };
                // The service's name filter is a case-insensitive prefix match; ours is exact.
                let Some(rest) = full.strip_prefix(self.prefix.as_str()) else {
                    continue;
                };
                match CredentialName::new(rest) {
                    Ok(n) if n.as_str() == rest => names.push((
                        n,
                        to_time(entry.created_date()),
                        to_time(entry.last_changed_date()),
                    )),
                    _ => tracing::debug!(
                        secret = %full,
                        "skipping a secret whose name is not a credential name"
                    ),
                }
            }
        }
        names.sort_by(|a, b| a.0.cmp(&b.0));
        names.dedup_by(|a, b| a.0 == b.0);
        let mut out = Vec::with_capacity(names.len());
        for (name, created, updated) in names {
            match self.get(&name).await {
                Ok(c) => {
                    let mut info = CredentialInfo::of(&c, BackendKind::Aws);
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
        let mut req = client.list_secrets().max_results(1);
        if !self.prefix.is_empty() {
            req = req.filters(
                Filter::builder()
                    .key(FilterNameStringType::Name)
                    .values(&self.prefix)
                    .build(),
            );
        }
        req.send()
            .await
            .map_err(|e| match self.fault("ListSecrets", &self.prefix, e) {
                Fault::Other(e) => e,
                _ => Error::new(ErrorKind::Invalid, &self.describe, "ListSecrets failed"),
            })?;
        let mut notes = vec![format!("secrets are named {}<credential>", self.prefix)];
        notes.push(match self.delete {
            DeletePolicy::Force => "delete is immediate (force_delete = true)".to_owned(),
            DeletePolicy::RecoveryWindow(d) => {
                format!("deleted credentials stay restorable for {d} days")
            }
        });
        Ok(Health { notes })
    }
}
