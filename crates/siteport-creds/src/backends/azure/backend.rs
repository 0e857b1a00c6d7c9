//! The [`AzureBackend`]: settings, secret naming and the credential operations.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use azure_core::http::Url;
use azure_security_keyvault_secrets::models::{
    SecretClientListSecretPropertiesOptions, SetSecretParameters,
};
use azure_security_keyvault_secrets::{ResourceExt, SecretClient};
use futures::StreamExt;
use time::OffsetDateTime;
use tokio::sync::OnceCell;
use zeroize::{Zeroize, Zeroizing};

use super::settings::{AzureSettings, DEFAULT_AZURE_PREFIX};
use crate::backend::{BackendKind, CredentialBackend, CredentialInfo, Health, StoreMode};
use crate::backends::payload;
use crate::credential::{Credential, CredentialName};
use crate::error::{Error, ErrorKind, Result};

use super::auth::Auth;
use super::fault::{Fault, RBAC_HINT};
use super::names::{MAX_SECRET_NAME, decode_name, encode_name};
use super::transport::http_client;

pub(super) const DEFAULT_ATTEMPTS: u32 = 3;
pub(super) const DEFAULT_TIMEOUT_SECS: u64 = 30;
/// The tag siteport puts on every secret it writes.
pub const MANAGED_BY_TAG: (&str, &str) = ("managed-by", "siteport");
/// Soft delete, recovery and purge finish in the background; how often and how long to wait.
pub(super) const SETTLE_POLL: Duration = Duration::from_millis(500);
pub(super) const SETTLE_ROUNDS: u32 = 60;

/// The Azure Key Vault backend. SDK clients are built on first use.
pub struct AzureBackend {
    pub(super) vault_url: String,
    pub(super) prefix: String,
    pub(super) purge_on_delete: bool,
    pub(super) describe: String,
    pub(super) auth: Auth,
    pub(super) authority_host: Option<String>,
    pub(super) http: reqwest::Client,
    pub(super) attempts: u32,
    pub(super) timeout: Duration,
    pub(super) client: OnceCell<SecretClient>,
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
        let http = http_client(
            settings,
            &vault_url,
            authority_host.as_deref(),
            timeout,
            &describe,
        )?;
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

    pub(super) fn encode(cred: &Credential) -> Result<Zeroizing<String>> {
        payload::encode_for("azure backend", cred)
    }

    pub(super) fn decode(
        &self,
        name: &CredentialName,
        secret: &str,
        text: Option<&str>,
        times: (Option<OffsetDateTime>, Option<OffsetDateTime>),
    ) -> Result<Credential> {
        const HOLDER: &str = "its value";
        let text = text.ok_or_else(|| {
            let why = "it has no value".to_string();
            payload::not_a_credential(&self.describe, name, secret, HOLDER, why)
        })?;
        let cred = payload::decode_secret(&self.describe, name, secret, HOLDER, text)?;
        Ok(cred.with_times(times.0, times.1))
    }

    pub(super) async fn set(
        &self,
        cred: &Credential,
        secret: &str,
    ) -> std::result::Result<(), Fault> {
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
    pub(super) async fn recover_and_set(&self, cred: &Credential, secret: &str) -> Result<()> {
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

    pub(super) async fn purge(&self, name: &CredentialName, secret: &str) -> Result<()> {
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
