//! `[credentials]`: which backend, and each backend's settings (paths resolved against the
//! config file's directory, `${VAR}` expanded).

use std::collections::BTreeMap;

use siteport_creds::reference::VarLookup;
use siteport_creds::{BackendSettings, BackendSpec, DirSettings, FileSettings};
use toml::Spanned;

use super::Config;
use super::error::{ConfigError, ConfigErrorKind};
use super::raw::RawCredentials;

/// `[credentials]`: which backend, and each backend's settings.
#[derive(Debug, Clone, Default)]
pub struct CredentialsSection {
    /// `backend = "file"` or `["env", "file"]`, when set.
    pub backend: Option<BackendSpec>,
    /// `[credentials.file]` and `[credentials.dir]`, with `${VAR}` expanded and relative
    /// paths resolved against the config file's directory.
    pub settings: BackendSettings,
    /// Tables of backends configured here but not built into [`BackendSettings`]
    /// (`[credentials.vault]`, `aws`, `gcp`, `azure`, `keychain`), for their crates to read.
    pub other: BTreeMap<String, toml::Table>,
}

impl Config {
    fn backend_spec(&self, v: &Spanned<toml::Value>) -> Result<BackendSpec, ConfigError> {
        let err = |msg: String| {
            ConfigError::new(
                ConfigErrorKind::Invalid,
                format!("credentials.backend: {msg}"),
            )
            .at(Some(self.location(v.span().start)))
        };
        let text = match v.get_ref() {
            toml::Value::String(s) => s.clone(),
            toml::Value::Array(a) => {
                let names: Option<Vec<&str>> = a.iter().map(|x| x.as_str()).collect();
                match names {
                    Some(n) if !n.is_empty() => n.join(","),
                    _ => {
                        return Err(err(
                            "expected a list of backend names, e.g. [\"env\", \"file\"]".into(),
                        ));
                    }
                }
            }
            _ => {
                return Err(err(
                    "expected a backend name or a list of them, e.g. \"file\" or [\"env\", \"file\"]".into(),
                ));
            }
        };
        text.parse::<BackendSpec>().map_err(err)
    }

    pub(super) fn credentials_section(
        &self,
        c: RawCredentials,
        env: &VarLookup<'_>,
    ) -> Result<CredentialsSection, ConfigError> {
        let mut settings = BackendSettings::default();
        if let Some(f) = c.file {
            settings.file = FileSettings {
                path: self.setting_path(f.path, env, "credentials.file.path")?,
                identity: self.setting_path(f.identity, env, "credentials.file.identity")?,
                passphrase_command: f.passphrase_command,
                ..Default::default()
            };
        }
        if let Some(d) = c.dir {
            settings.dir = DirSettings {
                root: self.setting_path(d.root, env, "credentials.dir.root")?,
            };
        }
        #[cfg(feature = "vault")]
        if let Some(v) = &c.vault {
            let mut vs: siteport_creds::VaultSettings = backend_table(v, "vault")?;
            for p in [
                &mut vs.ca_cert,
                &mut vs.token_file,
                &mut vs.secret_id_file,
                &mut vs.jwt_file,
            ]
            .into_iter()
            .flatten()
            {
                if p.is_relative() {
                    *p = self.base_dir().join(&*p);
                }
            }
            settings.vault = vs;
        }
        #[cfg(feature = "keychain")]
        if let Some(v) = &c.keychain {
            settings.keychain = backend_table(v, "keychain")?;
        }
        let mut other = BTreeMap::new();
        for (k, v) in [
            ("vault", c.vault),
            ("aws", c.aws),
            ("gcp", c.gcp),
            ("azure", c.azure),
            ("keychain", c.keychain),
        ] {
            if let Some(v) = v {
                other.insert(k.to_owned(), v);
            }
        }
        if let Some(t) = other.get("aws") {
            settings.aws = t.clone().try_into().map_err(|e: toml::de::Error| {
                ConfigError::new(
                    ConfigErrorKind::Invalid,
                    format!("credentials.aws: {}", e.message().trim()),
                )
            })?;
        }
        if let Some(t) = other.get("gcp") {
            let mut gs: siteport_creds::GcpSettings =
                t.clone().try_into().map_err(|e: toml::de::Error| {
                    ConfigError::new(
                        ConfigErrorKind::Invalid,
                        format!("credentials.gcp: {}", e.message().trim()),
                    )
                })?;
            if let Some(p) = gs.credentials_file.as_mut().filter(|p| p.is_relative()) {
                *p = self.base_dir().join(&*p);
            }
            settings.gcp = gs;
        }
        if let Some(t) = other.get("azure") {
            let mut az: siteport_creds::AzureSettings =
                t.clone().try_into().map_err(|e: toml::de::Error| {
                    ConfigError::new(
                        ConfigErrorKind::Invalid,
                        format!("credentials.azure: {}", e.message().trim()),
                    )
                })?;
            if let Some(p) = az.ca_cert.as_mut().filter(|p| p.is_relative()) {
                *p = self.base_dir().join(&*p);
            }
            settings.azure = az;
        }
        let backend = match c.backend {
            None => None,
            Some(v) => Some(self.backend_spec(&v)?),
        };
        Ok(CredentialsSection {
            backend,
            settings,
            other,
        })
    }
}

/// A `[credentials.<backend>]` table read into that backend's settings type.
#[cfg(any(feature = "vault", feature = "keychain"))]
fn backend_table<T: serde::de::DeserializeOwned>(
    t: &toml::Table,
    backend: &str,
) -> Result<T, ConfigError> {
    t.clone().try_into().map_err(|e: toml::de::Error| {
        ConfigError::new(
            ConfigErrorKind::Syntax,
            format!("credentials.{backend}: {}", e.message().trim()),
        )
        .hint(format!(
            "see docs/backends.md for the keys of [credentials.{backend}]"
        ))
    })
}
