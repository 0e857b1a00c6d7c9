//! The [`GcpBackend`]: settings, secret naming and the credential operations.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use google_cloud_auth::credentials::Credentials;
use google_cloud_gax::options::RequestOptionsBuilder;
use google_cloud_gax::paginator::Paginator;
use google_cloud_secretmanager_v1::client::SecretManagerService;
use google_cloud_secretmanager_v1::model::{Replication, Secret, SecretPayload, replication};
use time::OffsetDateTime;
use tokio::sync::OnceCell;
use zeroize::Zeroizing;

use super::settings::{DEFAULT_GCP_LABEL, DEFAULT_GCP_PREFIX, GcpSettings};
use crate::backend::{BackendKind, CredentialBackend, CredentialInfo, Health, StoreMode};
use crate::backends::payload;
use crate::credential::{Credential, CredentialName};
use crate::error::{Error, ErrorKind, Result};
use crate::remedy::Remedy;

use super::client::Fault;
use super::names::{MAX_PREFIX_LEN, decode_name, encode_name};

pub(super) const DEFAULT_ENDPOINT: &str = "https://secretmanager.googleapis.com";
pub(super) const DEFAULT_ATTEMPTS: u32 = 3;
pub(super) const DEFAULT_TIMEOUT_SECS: u64 = 30;
/// The SDK's switch that logs request and response bodies.
pub(super) const SDK_LOGGING_VAR: &str = "GOOGLE_CLOUD_RUST_LOGGING";

/// The GCP Secret Manager backend. The client (and the credentials) are built on first use:
/// reading ADC files is I/O, and opening a backend must not do any.
pub struct GcpBackend {
    pub(super) project: String,
    pub(super) prefix: String,
    pub(super) label: (String, String),
    pub(super) list_by_label: bool,
    pub(super) endpoint: Option<String>,
    pub(super) credentials_file: Option<PathBuf>,
    pub(super) attempts: u32,
    pub(super) timeout: Duration,
    pub(super) describe: String,
    pub(super) credentials: Option<Credentials>,
    pub(super) client: OnceCell<SecretManagerService>,
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

pub(super) fn env_nonempty(var: &str) -> Option<String> {
    std::env::var(var).ok().filter(|v| !v.trim().is_empty())
}

pub(super) fn label_part_ok(s: &str, key: bool) -> bool {
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
            .with_hint(format!("unset {SDK_LOGGING_VAR}"))
            .with_remedy(Remedy::UseVerboseLogging));
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

    pub(super) fn parent(&self) -> String {
        format!("projects/{}", self.project)
    }

    pub(super) fn secret_path(&self, name: &CredentialName) -> String {
        format!("projects/{}/secrets/{}", self.project, self.secret_id(name))
    }

    pub(super) fn encode(cred: &Credential) -> Result<Zeroizing<String>> {
        payload::encode_for("gcp backend", cred)
    }

    pub(super) fn decode(
        &self,
        name: &CredentialName,
        payload: Option<&SecretPayload>,
    ) -> Result<Credential> {
        const HOLDER: &str = "its latest version";
        let secret = self.secret_id(name);
        let corrupt = |why: &str| {
            payload::not_a_credential(&self.describe, name, &secret, HOLDER, why.to_string())
        };
        let data = payload.ok_or_else(|| corrupt("the version has no payload"))?;
        if let Some(want) = data.data_crc32c {
            let got = i64::from(crc32c::crc32c(&data.data));
            if got != want {
                return Err(Error::new(
                    ErrorKind::Corrupt,
                    &self.describe,
                    format!(
                        "secret '{secret}': the payload's CRC32C does not match the one Secret Manager sent (damaged in transit)"
                    ),
                )
                .with_hint("try again; if it persists")
                .with_remedy_joined(Remedy::RewriteCredential(None), ", "));
            }
        }
        let text = Zeroizing::new(
            String::from_utf8(data.data.to_vec())
                .map_err(|_| corrupt("the payload is not UTF-8 text"))?,
        );
        payload::decode_secret(&self.describe, name, &secret, HOLDER, &text)
    }

    pub(super) async fn create_secret(
        &self,
        name: &CredentialName,
    ) -> std::result::Result<(), Fault> {
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

    pub(super) async fn add_version(&self, cred: &Credential) -> std::result::Result<(), Fault> {
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
    pub(super) async fn access(
        &self,
        name: &CredentialName,
    ) -> std::result::Result<Credential, Fault> {
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

pub(super) fn to_time(seconds: i64, nanos: i32) -> Option<OffsetDateTime> {
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
                "enable a version with `gcloud secrets versions enable VERSION --secret {} --project {}`",
                self.secret_id(name),
                self.project
            ))
            .with_remedy_joined(Remedy::AddCredentialAgain(name.clone()), ", or ")),
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
