//! Choosing and opening a backend: `--credential-backend` > `SITEPORT_CREDENTIAL_BACKEND` >
//! config `[credentials] backend` > `file`.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::backend::{BackendKind, CredentialBackend};
use crate::backends::{dir::DirBackend, env::EnvBackend, file::FileBackend};
use crate::chain::ChainBackend;
use crate::error::{Error, ErrorKind, Result};

#[cfg(feature = "keychain")]
pub use crate::backends::keychain::KeychainSettings;
#[cfg(feature = "vault")]
pub use crate::backends::vault::VaultSettings;
#[cfg(not(feature = "keychain"))]
pub use disabled::KeychainSettings;
#[cfg(not(feature = "vault"))]
pub use disabled::VaultSettings;

/// Settings of backends not built in: any table is accepted, so a config shared between builds
/// stays loadable; opening such a backend says which feature to build with.
#[allow(dead_code)]
mod disabled {
    use serde::{Deserialize, Serialize};
    /// `[credentials.vault]` in a build without the `vault` feature.
    pub type VaultSettings = Opaque;
    /// `[credentials.keychain]` in a build without the `keychain` feature.
    pub type KeychainSettings = Opaque;
    /// Any table; its keys are ignored.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Opaque {}
}

/// Environment variable that selects the backend when no flag does.
pub const BACKEND_ENV: &str = "SITEPORT_CREDENTIAL_BACKEND";

/// One backend or a chain of them (`["env", "file"]`, or `env,file` on the command line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum BackendSpec {
    /// One backend.
    Single(#[serde(with = "kind_serde")] BackendKind),
    /// Several, consulted in order.
    Chain(#[serde(with = "kinds_serde")] Vec<BackendKind>),
}

impl Default for BackendSpec {
    fn default() -> Self {
        BackendSpec::Single(BackendKind::File)
    }
}

impl BackendSpec {
    /// The kinds in order.
    pub fn kinds(&self) -> Vec<BackendKind> {
        match self {
            BackendSpec::Single(k) => vec![*k],
            BackendSpec::Chain(ks) => ks.clone(),
        }
    }

    /// Applies the precedence: flag, then `SITEPORT_CREDENTIAL_BACKEND`, then config, then `file`.
    /// `env_value` is the variable's value, passed in so that callers and tests control it.
    pub fn select(
        flag: Option<&str>,
        env_value: Option<&str>,
        config: Option<&BackendSpec>,
    ) -> Result<BackendSpec> {
        if let Some(f) = flag.filter(|s| !s.trim().is_empty()) {
            return f
                .parse()
                .map_err(|e: String| Error::new(ErrorKind::Invalid, "--credential-backend", e));
        }
        if let Some(v) = env_value.filter(|s| !s.trim().is_empty()) {
            return v
                .parse()
                .map_err(|e: String| Error::new(ErrorKind::Invalid, BACKEND_ENV, e));
        }
        Ok(config.cloned().unwrap_or_default())
    }
}

impl FromStr for BackendSpec {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let kinds = s
            .split(',')
            .map(BackendKind::from_str)
            .collect::<std::result::Result<Vec<_>, _>>()?;
        match kinds.as_slice() {
            [] => Err("no credential backend named".into()),
            [one] => Ok(BackendSpec::Single(*one)),
            _ => {
                let mut seen = Vec::new();
                for k in &kinds {
                    if seen.contains(k) {
                        return Err(format!("backend '{k}' appears twice in the chain"));
                    }
                    seen.push(*k);
                }
                Ok(BackendSpec::Chain(kinds))
            }
        }
    }
}

impl fmt::Display for BackendSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.kinds().iter().map(|k| k.as_str()).collect();
        f.write_str(&names.join(","))
    }
}

mod kind_serde {
    use super::*;
    pub fn serialize<S: serde::Serializer>(
        k: &BackendKind,
        s: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(k.as_str())
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> std::result::Result<BackendKind, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

mod kinds_serde {
    use super::*;
    pub fn serialize<S: serde::Serializer>(
        ks: &[BackendKind],
        s: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        let v: Vec<&str> = ks.iter().map(|k| k.as_str()).collect();
        v.serialize(s)
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> std::result::Result<Vec<BackendKind>, D::Error> {
        let v = Vec::<String>::deserialize(d)?;
        v.iter()
            .map(|s| s.parse().map_err(serde::de::Error::custom))
            .collect()
    }
}

/// Settings of the file backend (`[credentials.file]`). Unset fields fall back to
/// `SITEPORT_CREDENTIALS_FILE` / `SITEPORT_IDENTITY_FILE`, then to the XDG defaults.
/// Relative paths from a config must already be resolved against the config's directory.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSettings {
    /// The store file.
    pub path: Option<PathBuf>,
    /// The age identity file (identity mode).
    pub identity: Option<PathBuf>,
    /// A command whose stdout is the passphrase (passphrase mode).
    pub passphrase_command: Option<String>,
}

/// Settings of the dir backend (`[credentials.dir]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirSettings {
    /// Root of the mounted secrets; else `SITEPORT_SECRETS_DIR`, else `/run/secrets/siteport`.
    pub root: Option<PathBuf>,
}

/// Every backend's settings, as read from the config's `[credentials.*]` tables.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendSettings {
    /// `[credentials.file]`.
    #[serde(default)]
    pub file: FileSettings,
    /// `[credentials.dir]`.
    #[serde(default)]
    pub dir: DirSettings,
    /// `[credentials.aws]`.
    #[serde(default)]
    pub aws: crate::AwsSettings,
    /// `[credentials.gcp]`.
    #[serde(default)]
    pub gcp: crate::GcpSettings,
    /// `[credentials.azure]`.
    #[serde(default)]
    pub azure: crate::AzureSettings,
    /// `[credentials.vault]` (read even when the `vault` feature is off, so configs stay valid).
    #[serde(default)]
    pub vault: VaultSettings,
    /// `[credentials.keychain]`.
    #[serde(default)]
    pub keychain: KeychainSettings,
}

/// How the library asks a person for something. The CLI implements it with a hidden
/// terminal prompt; headless callers use [`NoPrompter`].
pub trait Prompter: Send + Sync {
    /// Asks for a secret without echo. `None` when nobody can answer (no terminal).
    fn secret(&self, prompt: &str) -> Option<SecretString>;
}

/// A prompter for headless use: never answers.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoPrompter;

impl Prompter for NoPrompter {
    fn secret(&self, _prompt: &str) -> Option<SecretString> {
        None
    }
}

/// Opens the backend(s) named by `spec`. Opening does no I/O beyond reading settings:
/// stores are unlocked and services contacted on first use.
pub fn open_backend(
    spec: &BackendSpec,
    settings: &BackendSettings,
    prompter: Arc<dyn Prompter>,
) -> Result<Box<dyn CredentialBackend>> {
    match spec {
        BackendSpec::Single(k) => open_one(*k, settings, prompter),
        BackendSpec::Chain(ks) => {
            let members = ks
                .iter()
                .map(|k| open_one(*k, settings, prompter.clone()))
                .collect::<Result<Vec<_>>>()?;
            Ok(Box::new(ChainBackend::new(members)))
        }
    }
}

fn open_one(
    kind: BackendKind,
    settings: &BackendSettings,
    prompter: Arc<dyn Prompter>,
) -> Result<Box<dyn CredentialBackend>> {
    match kind {
        BackendKind::File => Ok(Box::new(FileBackend::open(&settings.file, prompter)?)),
        BackendKind::Env => Ok(Box::new(EnvBackend::from_process_env())),
        BackendKind::Dir => Ok(Box::new(DirBackend::from_settings(&settings.dir))),
        #[cfg(feature = "aws")]
        BackendKind::Aws => Ok(Box::new(crate::backends::aws::AwsBackend::open(
            &settings.aws,
        )?)),
        #[cfg(feature = "gcp")]
        BackendKind::Gcp => Ok(Box::new(crate::backends::gcp::GcpBackend::open(
            &settings.gcp,
        )?)),
        #[cfg(feature = "azure")]
        BackendKind::Azure => Ok(Box::new(crate::backends::azure::AzureBackend::open(
            &settings.azure,
        )?)),
        #[cfg(feature = "vault")]
        BackendKind::Vault => Ok(Box::new(crate::backends::vault::VaultBackend::open(
            &settings.vault,
        )?)),
        #[cfg(feature = "keychain")]
        BackendKind::Keychain => Ok(Box::new(
            crate::backends::keychain::KeychainBackend::from_settings(&settings.keychain)?,
        )),
        // Unreachable only in a build with every backend feature on.
        #[allow(unreachable_patterns)]
        other => Err(Error::new(
            ErrorKind::Unsupported,
            format!("{other} backend"),
            "this backend is not built into this siteport binary",
        )
        .with_hint(format!(
            "rebuild with `cargo install siteport --features {other}`"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence() {
        let cfg = BackendSpec::Chain(vec![BackendKind::Env, BackendKind::File]);
        assert_eq!(
            BackendSpec::select(Some("dir"), Some("env"), Some(&cfg))
                .unwrap()
                .kinds(),
            [BackendKind::Dir]
        );
        assert_eq!(
            BackendSpec::select(None, Some("env"), Some(&cfg))
                .unwrap()
                .kinds(),
            [BackendKind::Env]
        );
        assert_eq!(BackendSpec::select(None, None, Some(&cfg)).unwrap(), cfg);
        assert_eq!(
            BackendSpec::select(None, None, None).unwrap().kinds(),
            [BackendKind::File]
        );
        let e = BackendSpec::select(Some("nope"), None, None).unwrap_err();
        assert!(e.to_string().contains("--credential-backend"), "{e}");
        assert!(BackendSpec::select(None, Some("env,env"), None).is_err());
    }

    #[test]
    fn toml_forms() {
        #[derive(Deserialize)]
        struct C {
            backend: BackendSpec,
        }
        let c: C = toml_like(r#"{"backend":"env"}"#);
        assert_eq!(c.backend, BackendSpec::Single(BackendKind::Env));
        let c: C = toml_like(r#"{"backend":["env","file"]}"#);
        assert_eq!(c.backend.kinds(), [BackendKind::Env, BackendKind::File]);
    }

    #[cfg(not(feature = "azure"))]
    #[test]
    fn azure_without_the_feature_says_how_to_build_it() {
        let e = open_backend(
            &BackendSpec::Single(BackendKind::Azure),
            &BackendSettings::default(),
            Arc::new(NoPrompter),
        )
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        assert!(e.to_string().contains("azure backend"), "{e}");
        assert!(e.hint().unwrap().contains("--features azure"), "{e:?}");
    }

    fn toml_like<T: serde::de::DeserializeOwned>(json: &str) -> T {
        serde_json::from_str(json).unwrap()
    }
}
