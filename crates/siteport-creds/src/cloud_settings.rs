//! Settings of the cloud secret-manager backends (`[credentials.aws]`, …).
//!
//! These are plain structs compiled into every build, so that a config naming a backend that
//! is not built in still parses and gets the clear "not built into this binary" error.

use serde::{Deserialize, Serialize};

/// Default name prefix of the secrets siteport manages in a cloud secret manager.
pub const DEFAULT_SECRET_PREFIX: &str = "siteport/";

/// Settings of the AWS Secrets Manager backend (`[credentials.aws]`). Unset fields fall back to
/// the AWS SDK's own configuration: `AWS_REGION`/`AWS_PROFILE`/`AWS_ENDPOINT_URL` and the shared
/// `~/.aws/config` and `~/.aws/credentials` files.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsSettings {
    /// Region, e.g. `eu-west-1`; else the SDK's region chain.
    pub region: Option<String>,
    /// Endpoint override (a VPC endpoint, LocalStack, moto); else `AWS_ENDPOINT_URL_SECRETS_MANAGER`
    /// / `AWS_ENDPOINT_URL`, else the public endpoint of the region.
    pub endpoint_url: Option<String>,
    /// Named profile of the shared config files; else `AWS_PROFILE`, else `default`.
    pub profile: Option<String>,
    /// Prefix of every secret name; default `siteport/` (credential `acme` is `siteport/acme`).
    pub prefix: Option<String>,
    /// Delete immediately, without a recovery window. Default `false`.
    #[serde(default)]
    pub force_delete: bool,
    /// Days (7–30) a deleted secret can still be restored; default 7. Ignored with `force_delete`.
    pub recovery_window_days: Option<i64>,
    /// Attempts per request, including the first, for retryable failures; default 3.
    pub max_attempts: Option<u32>,
    /// Per-request timeout in seconds, including retries; default 30.
    pub timeout_secs: Option<u64>,
}

/// Default name prefix of the secrets the gcp backend manages: Secret Manager IDs allow only
/// `[A-Za-z0-9_-]`, so the `/` of [`DEFAULT_SECRET_PREFIX`] cannot be used.
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

/// Default name prefix of the secrets siteport manages in Azure Key Vault. Key Vault names
/// allow only letters, digits and `-`, so the prefix cannot end in `/` as elsewhere.
pub const DEFAULT_AZURE_PREFIX: &str = "siteport-";

/// Settings of the Azure Key Vault backend (`[credentials.azure]`). Unset fields fall back to
/// the standard Azure variables (`AZURE_KEYVAULT_URL`, `AZURE_AUTHORITY_HOST`, `AZURE_TENANT_ID`,
/// `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET`, `AZURE_FEDERATED_TOKEN_FILE`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AzureSettings {
    /// The vault, e.g. `https://myvault.vault.azure.net/`; else `AZURE_KEYVAULT_URL`. Required.
    pub vault_url: Option<String>,
    /// Prefix of every secret name (letters, digits, `-`); default `siteport-`.
    pub prefix: Option<String>,
    /// How to get an Entra ID token: `default` (the first configured of client secret, workload
    /// identity, App Service managed identity, then the `az`/`azd` developer tools),
    /// `client_secret`, `workload_identity`, `managed_identity` or `azure_cli`.
    pub auth: Option<String>,
    /// Entra ID authority, e.g. `https://login.microsoftonline.us` for Azure Government; else
    /// `AZURE_AUTHORITY_HOST`, else the public cloud.
    pub authority_host: Option<String>,
    /// Client ID of a user-assigned managed identity (`managed_identity` auth); else the
    /// system-assigned identity.
    pub managed_identity_client_id: Option<String>,
    /// Purge a secret right after deleting it, so that it cannot be recovered. Default `false`:
    /// deleted credentials stay recoverable for the vault's retention period.
    #[serde(default)]
    pub purge_on_delete: bool,
    /// PEM file of extra CA certificates to trust (a TLS-inspecting proxy, a private endpoint).
    pub ca_cert: Option<std::path::PathBuf>,
    /// Attempts per request, including the first, for retryable failures; default 3.
    pub max_attempts: Option<u32>,
    /// Per-request timeout in seconds, including retries; default 30.
    pub timeout_secs: Option<u64>,
}
