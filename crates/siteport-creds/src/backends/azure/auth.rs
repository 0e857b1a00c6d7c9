//! How the backend gets an Entra ID token: the auth methods and their settings.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use azure_core::credentials::{Secret as AzSecret, TokenCredential};
use secrecy::{ExposeSecret, SecretString};

use super::settings::AzureSettings;
use crate::error::{Error, ErrorKind, Result};

use super::backend::AzureBackend;

/// How to obtain an Entra ID token.
#[derive(Clone)]
pub(super) enum Auth {
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
    pub(super) fn label(&self) -> &'static str {
        match self {
            Auth::ClientSecret { .. } => "client secret",
            Auth::Workload { .. } => "workload identity",
            Auth::Managed { .. } => "managed identity",
            Auth::AzureCli { .. } => "Azure CLI",
            Auth::DeveloperTools => "developer tools (az, azd)",
        }
    }

    pub(super) fn hint(&self) -> &'static str {
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
impl AzureBackend {
    pub(super) fn auth(
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
    pub(super) fn credential(&self) -> azure_core::Result<Arc<dyn TokenCredential>> {
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
}
