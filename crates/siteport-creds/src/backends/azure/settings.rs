//! `[credentials.azure]`. A plain struct compiled into every build, so that a config naming
//! the azure backend still parses in a build without it and gets the clear "not built into this
//! binary" error.

use serde::{Deserialize, Serialize};

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
