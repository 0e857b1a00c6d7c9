//! `[credentials.vault]` and the `VAULT_*` environment the backend reads.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `[credentials.vault]`. Nothing secret lives here: tokens and AppRole secret IDs come from
/// the environment or from files.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultSettings {
    /// Vault's address; else `VAULT_ADDR`, else `https://127.0.0.1:8200`.
    pub address: Option<String>,
    /// Enterprise namespace; else `VAULT_NAMESPACE`.
    pub namespace: Option<String>,
    /// PEM file of the CA that signed Vault's certificate; else `VAULT_CACERT`.
    pub ca_cert: Option<PathBuf>,
    /// The KV mount (default `secret`).
    pub mount: Option<String>,
    /// Prefix of every credential's path inside the mount (default `siteport/`).
    pub path_prefix: Option<String>,
    /// `1` or `2`; detected from the mount when unset.
    pub kv_version: Option<u8>,
    /// `token` (default), `approle` or `kubernetes`.
    pub auth: Option<String>,
    /// Token file for `auth = "token"` when `VAULT_TOKEN` is unset (default `~/.vault-token`).
    pub token_file: Option<PathBuf>,
    /// Where the auth method is mounted (default `approle` or `kubernetes`).
    pub auth_mount: Option<String>,
    /// AppRole role ID; else `VAULT_ROLE_ID`.
    pub role_id: Option<String>,
    /// File holding the AppRole secret ID, when `VAULT_SECRET_ID` is unset.
    pub secret_id_file: Option<PathBuf>,
    /// Kubernetes auth role.
    pub role: Option<String>,
    /// Service-account JWT file (default the standard in-pod path).
    pub jwt_file: Option<PathBuf>,
    /// Per-request timeout in seconds (default 10).
    pub timeout_secs: Option<u64>,
}

/// The environment the backend reads (`VAULT_*`, `HOME`), captured once so that tests and
/// callers control it. `Debug` masks `VAULT_TOKEN` and `VAULT_SECRET_ID`.
#[derive(Clone, Default)]
pub struct VaultEnv {
    vars: BTreeMap<String, String>,
}

const ENV_NAMES: [&str; 7] = [
    "VAULT_ADDR",
    "VAULT_TOKEN",
    "VAULT_NAMESPACE",
    "VAULT_CACERT",
    "VAULT_ROLE_ID",
    "VAULT_SECRET_ID",
    "HOME",
];
const SECRET_ENV: [&str; 2] = ["VAULT_TOKEN", "VAULT_SECRET_ID"];

impl VaultEnv {
    /// No variables at all.
    pub fn empty() -> Self {
        Self::default()
    }

    /// The relevant variables of this process.
    pub fn from_process() -> Self {
        let mut env = Self::empty();
        for k in ENV_NAMES {
            if let Ok(v) = std::env::var(k) {
                env = env.var(k, v);
            }
        }
        env
    }

    /// Sets `key` (an empty value counts as unset).
    pub fn var(mut self, key: &str, value: impl Into<String>) -> Self {
        let v = value.into();
        if v.is_empty() {
            self.vars.remove(key);
        } else {
            self.vars.insert(key.to_owned(), v);
        }
        self
    }

    pub(super) fn get(&self, key: &str) -> Option<&str> {
        self.vars.get(key).map(String::as_str)
    }
}

impl fmt::Debug for VaultEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        for (k, v) in &self.vars {
            if SECRET_ENV.contains(&k.as_str()) {
                m.entry(k, &"****");
            } else {
                m.entry(k, v);
            }
        }
        m.finish()
    }
}

impl Drop for VaultEnv {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        for k in SECRET_ENV {
            if let Some(v) = self.vars.get_mut(k) {
                v.zeroize();
            }
        }
    }
}
