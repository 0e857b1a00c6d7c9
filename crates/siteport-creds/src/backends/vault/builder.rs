//! Building a [`VaultBackend`] from its settings and the environment.

use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;

use crate::error::{Error, ErrorKind, Result};

use super::auth::{Auth, SecretSource};
use super::settings::{VaultEnv, VaultSettings};
use super::{
    DEFAULT_ADDRESS, DEFAULT_MOUNT, DEFAULT_PATH_PREFIX, K8S_JWT_PATH, KvVersion, VaultBackend,
};

pub(super) fn trim_slashes(s: &str) -> String {
    s.trim_matches('/').to_owned()
}

impl VaultBackend {
    /// The backend from `[credentials.vault]` and this process's environment. Does no I/O
    /// beyond reading the CA file: Vault is contacted on first use.
    pub fn open(settings: &VaultSettings) -> Result<Self> {
        Self::open_with_env(settings, &VaultEnv::from_process())
    }

    /// [`open`](Self::open) with the environment passed in.
    pub fn open_with_env(settings: &VaultSettings, env: &VaultEnv) -> Result<Self> {
        let address = settings
            .address
            .clone()
            .filter(|s| !s.trim().is_empty())
            .or_else(|| env.get("VAULT_ADDR").map(str::to_owned))
            .unwrap_or_else(|| DEFAULT_ADDRESS.to_owned())
            .trim()
            .trim_end_matches('/')
            .to_owned();
        let mount = trim_slashes(settings.mount.as_deref().unwrap_or(DEFAULT_MOUNT));
        let mut prefix = trim_slashes(
            settings
                .path_prefix
                .as_deref()
                .unwrap_or(DEFAULT_PATH_PREFIX),
        );
        if !prefix.is_empty() {
            prefix.push('/');
        }
        let describe = format!("vault backend ({address}/v1/{mount}/{prefix})");
        let invalid = |detail: String, hint: &str| {
            Error::new(ErrorKind::Invalid, describe.clone(), detail).with_hint(hint.to_owned())
        };
        if !(address.starts_with("http://") || address.starts_with("https://")) {
            return Err(invalid(
                format!("address '{address}' must start with http:// or https://"),
                "set VAULT_ADDR or [credentials.vault] address, e.g. https://vault.example:8200",
            ));
        }
        if mount.is_empty() {
            return Err(invalid(
                "mount must not be empty".into(),
                "set [credentials.vault] mount, e.g. \"secret\"",
            ));
        }
        let configured_kv = match settings.kv_version {
            None => None,
            Some(1) => Some(KvVersion::V1),
            Some(2) => Some(KvVersion::V2),
            Some(n) => {
                return Err(invalid(
                    format!("kv_version = {n} is not a KV engine version"),
                    "set [credentials.vault] kv_version to 1 or 2, or remove it to detect it",
                ));
            }
        };
        let namespace = settings
            .namespace
            .clone()
            .or_else(|| env.get("VAULT_NAMESPACE").map(str::to_owned))
            .map(|s| trim_slashes(&s))
            .filter(|s| !s.is_empty());
        let auth = auth_from(settings, env, &invalid)?;
        let client = http_client(settings, env, &describe, &invalid)?;
        Ok(Self {
            address,
            namespace,
            mount,
            prefix,
            configured_kv,
            kv: tokio::sync::OnceCell::new(),
            auth,
            client,
            token: tokio::sync::Mutex::new(None),
        })
    }
}

/// Which error a bad setting gives: `invalid(detail, hint)`.
type Invalid<'a> = dyn Fn(String, &str) -> Error + 'a;

/// The auth method of `settings`, with its inputs from `env`.
fn auth_from(settings: &VaultSettings, env: &VaultEnv, invalid: &Invalid<'_>) -> Result<Auth> {
    let home = env.get("HOME").map(PathBuf::from);
    let auth = match settings.auth.as_deref().unwrap_or("token") {
        "token" => Auth::Token {
            env: env
                .get("VAULT_TOKEN")
                .map(|t| SecretString::from(t.trim().to_owned())),
            file: settings
                .token_file
                .clone()
                .or_else(|| home.map(|h| h.join(".vault-token")))
                .unwrap_or_else(|| PathBuf::from(".vault-token")),
        },
        "approle" => {
            let role_id = settings
                .role_id
                .clone()
                .or_else(|| env.get("VAULT_ROLE_ID").map(str::to_owned))
                .ok_or_else(|| {
                    invalid(
                        "auth = \"approle\" needs a role ID".into(),
                        "set [credentials.vault] role_id or VAULT_ROLE_ID",
                    )
                })?;
            let secret_id = match (env.get("VAULT_SECRET_ID"), &settings.secret_id_file) {
                (Some(v), _) => SecretSource::Value(SecretString::from(v.to_owned())),
                (None, Some(p)) => SecretSource::File(p.clone()),
                (None, None) => {
                    return Err(invalid(
                        "auth = \"approle\" needs a secret ID".into(),
                        "set VAULT_SECRET_ID or [credentials.vault] secret_id_file",
                    ));
                }
            };
            Auth::AppRole {
                mount: trim_slashes(settings.auth_mount.as_deref().unwrap_or("approle")),
                role_id,
                secret_id,
            }
        }
        "kubernetes" => Auth::Kubernetes {
            mount: trim_slashes(settings.auth_mount.as_deref().unwrap_or("kubernetes")),
            role: settings.role.clone().ok_or_else(|| {
                invalid(
                    "auth = \"kubernetes\" needs a role".into(),
                    "set [credentials.vault] role to the Vault Kubernetes auth role",
                )
            })?,
            jwt_file: settings
                .jwt_file
                .clone()
                .unwrap_or_else(|| PathBuf::from(K8S_JWT_PATH)),
        },
        other => {
            return Err(invalid(
                format!("unknown auth method '{other}'"),
                "set [credentials.vault] auth to \"token\", \"approle\" or \"kubernetes\"",
            ));
        }
    };
    Ok(auth)
}

/// The HTTPS client: timeouts, no redirects, and the CA of `ca_cert` / `VAULT_CACERT`.
fn http_client(
    settings: &VaultSettings,
    env: &VaultEnv,
    describe: &str,
    invalid: &Invalid<'_>,
) -> Result<reqwest::Client> {
    let timeout = Duration::from_secs(settings.timeout_secs.unwrap_or(10).max(1));
    let mut builder = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("siteport/", env!("CARGO_PKG_VERSION")));
    let ca = settings
        .ca_cert
        .clone()
        .or_else(|| env.get("VAULT_CACERT").map(PathBuf::from));
    if let Some(ca) = ca {
        let pem = std::fs::read(&ca).map_err(|e| {
            invalid(
                format!("cannot read the CA certificate {}: {e}", ca.display()),
                "fix VAULT_CACERT or [credentials.vault] ca_cert (a PEM file)",
            )
        })?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
            invalid(
                format!("{} is not a PEM certificate: {e}", ca.display()),
                "fix VAULT_CACERT or [credentials.vault] ca_cert (a PEM file)",
            )
        })?;
        for c in certs {
            builder = builder.add_root_certificate(c);
        }
    }
    builder.build().map_err(|e| {
        Error::new(
            ErrorKind::Invalid,
            describe,
            format!("cannot set up the HTTP client: {e}"),
        )
    })
}
