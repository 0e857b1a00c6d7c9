//! `[credentials.gcp]`. A plain struct compiled into every build, so that a config naming
//! the gcp backend still parses in a build without it and gets the clear "not built into this
//! binary" error.

use serde::{Deserialize, Serialize};

/// Default name prefix of the secrets the gcp backend manages: Secret Manager IDs allow only
/// `[A-Za-z0-9_-]`, so the `/` of [`DEFAULT_SECRET_PREFIX`](crate::DEFAULT_SECRET_PREFIX) cannot be used.
pub const DEFAULT_GCP_PREFIX: &str = "siteport-";

/// Label every secret the gcp backend creates carries unless `label` says otherwise.
pub const DEFAULT_GCP_LABEL: &str = "siteport=managed";

/// Settings of the GCP Secret Manager backend (`[credentials.gcp]`). Authentication is
/// Application Default Credentials (`GOOGLE_APPLICATION_CREDENTIALS`, `gcloud auth
/// application-default login`, the metadata server) unless `credentials_file` names a key file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcpSettings {
    /// Project ID (or number) holding the secrets; else `GOOGLE_CLOUD_PROJECT`.
    pub project: Option<String>,
    /// Prefix of every secret ID, `[A-Za-z0-9_-]`, at most 127 characters; default `siteport-`
    /// (credential `acme` is the secret `siteport-acme`).
    pub prefix: Option<String>,
    /// `key=value` label put on every secret siteport creates. When set, `list` selects secrets
    /// by this label (`labels.key=value`) instead of by name prefix. Unset: secrets are labelled
    /// `siteport=managed` and listed by prefix.
    pub label: Option<String>,
    /// Endpoint override (Private Service Connect, a regional endpoint, a test fake); else
    /// `https://secretmanager.googleapis.com`.
    pub endpoint: Option<String>,
    /// A credentials JSON file (`authorized_user`, `service_account`, `external_account`,
    /// `impersonated_service_account`) used instead of Application Default Credentials.
    pub credentials_file: Option<std::path::PathBuf>,
    /// Attempts per request, including the first, for retryable failures; default 3.
    pub max_attempts: Option<u32>,
    /// Per-request timeout in seconds, including retries; default 30.
    pub timeout_secs: Option<u64>,
}
