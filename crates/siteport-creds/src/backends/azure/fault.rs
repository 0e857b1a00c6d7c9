//! The mapping of SDK failures to errors.

use azure_security_keyvault_secrets::models::KeyVaultError;

use crate::credential::CredentialName;
use crate::error::{Error, ErrorKind};

use super::backend::AzureBackend;
use super::transport::host_of;

pub(super) const RBAC_HINT: &str = "grant the identity the RBAC role `Key Vault Secrets Officer` on the vault (`Key Vault Secrets User` is enough to read), e.g. `az role assignment create --role \"Key Vault Secrets Officer\" --assignee <id> --scope <vault resource id>`";
/// How a failed call is classified before it becomes an [`Error`].
pub(super) enum Fault {
    NotFound,
    /// 409 `ObjectIsDeletedButRecoverable`: the name belongs to a soft-deleted secret.
    Deleted,
    /// Another 409: a delete, recovery or purge still in progress.
    Conflict(Error),
    Other(Error),
}

impl Fault {
    pub(super) fn into_error(self, b: &AzureBackend, name: &CredentialName) -> Error {
        match self {
            Fault::NotFound => Error::not_found(&b.describe, name),
            Fault::Deleted => b.deleted_error(name),
            Fault::Conflict(e) | Fault::Other(e) => e,
        }
    }
}
impl AzureBackend {
    /// Classifies an SDK failure. Service messages name secrets, never values.
    pub(super) fn fault(&self, op: &str, secret: &str, e: azure_core::Error) -> Fault {
        use azure_core::error::ErrorKind as K;
        let d = &self.describe;
        match e.kind() {
            K::HttpResponse {
                status,
                error_code,
                raw_response,
            } => {
                let status = u16::from(*status);
                let code = error_code.clone().unwrap_or_default();
                let inner = raw_response
                    .as_ref()
                    .and_then(|r| serde_json::from_slice::<KeyVaultError>(r.body()).ok())
                    .and_then(|k| k.error)
                    .and_then(|e| e.inner_error)
                    .and_then(|i| i.code)
                    .unwrap_or_default();
                let message = safe_message(&e);
                let what = format!(
                    "{op} '{secret}' failed: HTTP {status} {}{}: {message}",
                    if code.is_empty() { "error" } else { &code },
                    if inner.is_empty() {
                        String::new()
                    } else {
                        format!(" ({inner})")
                    }
                );
                match status {
                    404 => Fault::NotFound,
                    409 if inner == "ObjectIsDeletedButRecoverable"
                        || message.contains("deleted but recoverable") =>
                    {
                        Fault::Deleted
                    }
                    409 => Fault::Conflict(
                        Error::new(ErrorKind::Unavailable, d, what)
                            .with_hint("a delete, recovery or purge of this secret is still running; try again in a minute"),
                    ),
                    401 | 403 => Fault::Other(
                        Error::new(ErrorKind::PermissionDenied, d, what).with_hint(format!(
                            "the {} identity was refused: {RBAC_HINT}; for a vault using access policies: `az keyvault set-policy --name <vault> --secret-permissions get list set delete recover purge --spn <client id>`",
                            self.auth.label()
                        )),
                    ),
                    408 | 429 | 500..=599 => Fault::Other(
                        Error::new(ErrorKind::Unavailable, d, format!("{what} (after {} attempts)", self.attempts))
                            .with_hint("Key Vault is throttling or failing; try again in a minute, or raise `max_attempts` in [credentials.azure]"),
                    ),
                    _ => Fault::Other(Error::new(ErrorKind::Invalid, d, what)),
                }
            }
            K::Credential => {
                let unreachable = source_kinds(&e)
                    .iter()
                    .any(|k| matches!(k, K::Connection | K::Io));
                let authority = self
                    .authority_host
                    .as_deref()
                    .unwrap_or("https://login.microsoftonline.com");
                let detail = format!(
                    "{op} '{secret}': cannot get an Entra ID token ({}, authority {authority}): {}",
                    self.auth.label(),
                    safe_message(&e)
                );
                if unreachable {
                    Fault::Other(
                        Error::new(ErrorKind::Unavailable, d, detail).with_hint(
                            "check the network and `authority_host` in [credentials.azure] / AZURE_AUTHORITY_HOST",
                        ),
                    )
                } else {
                    Fault::Other(
                        Error::new(ErrorKind::PermissionDenied, d, detail)
                            .with_hint(self.auth.hint()),
                    )
                }
            }
            K::Connection | K::Io => Fault::Other(
                Error::new(
                    ErrorKind::Unavailable,
                    d,
                    format!(
                        "{op} '{secret}': cannot reach Key Vault: {}",
                        safe_message(&e)
                    ),
                )
                .with_hint("check the network and `vault_url` in [credentials.azure] (`az keyvault show --name <vault>`)"),
            ),
            K::DataConversion => Fault::Other(Error::new(
                ErrorKind::Corrupt,
                d,
                format!("{op} '{secret}': Key Vault's answer could not be read"),
            )),
            _ => Fault::Other(Error::new(
                ErrorKind::Invalid,
                d,
                format!("{op} '{secret}' failed: {}", safe_message(&e)),
            )),
        }
    }

    pub(super) fn deleted_error(&self, name: &CredentialName) -> Error {
        let secret = self.secret_name(name).unwrap_or_default();
        let vault = host_of(&self.vault_url)
            .and_then(|h| h.split('.').next().map(str::to_owned))
            .unwrap_or_default();
        Error::new(
            ErrorKind::AlreadyExists,
            &self.describe,
            format!("credential '{name}': secret '{secret}' is deleted but recoverable"),
        )
        .with_hint(format!(
            "recover it with `az keyvault secret recover --vault-name {vault} --name {secret}`, or purge it with `az keyvault secret purge --vault-name {vault} --name {secret}`"
        ))
    }
}

/// The message of an SDK error and of its causes (the retry policy wraps the real reason),
/// without any response body. Parse failures can quote what they failed to parse: those are
/// replaced by a fixed text.
pub(super) fn safe_message(e: &azure_core::Error) -> String {
    use azure_core::error::ErrorKind as K;
    let one = |e: &azure_core::Error| match e.kind() {
        K::DataConversion => "the data could not be converted".to_owned(),
        _ => e.to_string(),
    };
    let mut out = one(e);
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        let t = match s.downcast_ref::<azure_core::Error>() {
            Some(a) => one(a),
            None => s.to_string(),
        };
        if !t.is_empty() && !out.contains(&t) {
            out.push_str(": ");
            out.push_str(&t);
        }
        src = s.source();
    }
    out
}

pub(super) fn source_kinds(e: &azure_core::Error) -> Vec<azure_core::error::ErrorKind> {
    let mut out = Vec::new();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        if let Some(a) = s.downcast_ref::<azure_core::Error>() {
            out.push(a.kind().clone());
        }
        src = s.source();
    }
    out
}
