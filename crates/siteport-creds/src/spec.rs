//! Which backend(s) to use: `--credential-backend` > `SITEPORT_CREDENTIAL_BACKEND` >
//! config `[credentials] backend` > `file`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::backend::BackendKind;
use crate::error::{Error, ErrorKind, Result};

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

    fn toml_like<T: serde::de::DeserializeOwned>(json: &str) -> T {
        serde_json::from_str(json).unwrap()
    }
}
