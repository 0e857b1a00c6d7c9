//! Where the file backend's files live, and the environment it reads, captured once so that
//! callers (and tests running in parallel threads) can pass their own.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use secrecy::SecretString;

use super::settings::FileSettings;
use crate::error::{Error, ErrorKind, Result};

/// Overrides the store path when `[credentials.file] path` is not set.
pub const CREDENTIALS_FILE_ENV: &str = "SITEPORT_CREDENTIALS_FILE";
/// Overrides the identity path when `[credentials.file] identity` is not set.
pub const IDENTITY_FILE_ENV: &str = "SITEPORT_IDENTITY_FILE";
/// The passphrase of a passphrase-mode store, for headless use.
pub const PASSPHRASE_ENV: &str = "SITEPORT_PASSPHRASE";

/// The variables (other than the passphrase) that path resolution reads.
const PATH_VARS: [&str; 5] = [
    CREDENTIALS_FILE_ENV,
    IDENTITY_FILE_ENV,
    "XDG_DATA_HOME",
    "XDG_CONFIG_HOME",
    "HOME",
];

/// A snapshot of the environment variables the file backend reads: `SITEPORT_CREDENTIALS_FILE`,
/// `SITEPORT_IDENTITY_FILE`, `SITEPORT_PASSPHRASE`, `XDG_DATA_HOME`, `XDG_CONFIG_HOME` and `HOME`.
///
/// [`FileEnv::from_process`] captures the real environment; [`FileEnv::empty`] plus
/// [`FileEnv::var`] / [`FileEnv::passphrase`] build one explicitly (tests, embedding). Empty
/// values count as unset. `Debug` never shows the passphrase.
#[derive(Clone, Default)]
pub struct FileEnv {
    vars: BTreeMap<&'static str, OsString>,
    passphrase: Option<SecretString>,
}

impl FileEnv {
    /// Captures the relevant variables of this process.
    pub fn from_process() -> Self {
        let mut env = Self::empty();
        for name in PATH_VARS {
            if let Some(v) = std::env::var_os(name) {
                env = env.var(name, v);
            }
        }
        if let Ok(p) = std::env::var(PASSPHRASE_ENV) {
            env = env.passphrase(SecretString::from(p));
        }
        env
    }

    /// No variables at all.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Sets one of the path variables (`SITEPORT_CREDENTIALS_FILE`, `SITEPORT_IDENTITY_FILE`,
    /// `XDG_DATA_HOME`, `XDG_CONFIG_HOME`, `HOME`); other names are ignored. Use
    /// [`FileEnv::passphrase`] for `SITEPORT_PASSPHRASE`.
    pub fn var(mut self, name: &str, value: impl Into<OsString>) -> Self {
        if let Some(known) = PATH_VARS.iter().find(|k| **k == name) {
            let value = value.into();
            if value.is_empty() {
                self.vars.remove(known);
            } else {
                self.vars.insert(known, value);
            }
        }
        self
    }

    /// Sets `SITEPORT_PASSPHRASE`.
    pub fn passphrase(mut self, passphrase: SecretString) -> Self {
        use secrecy::ExposeSecret;
        self.passphrase = (!passphrase.expose_secret().is_empty()).then_some(passphrase);
        self
    }

    pub(crate) fn get(&self, name: &str) -> Option<&OsString> {
        self.vars.get(name)
    }

    pub(crate) fn passphrase_value(&self) -> Option<&SecretString> {
        self.passphrase.as_ref()
    }

    /// An XDG base directory: the variable if it holds an absolute path (the XDG spec says to
    /// ignore relative ones), else `$HOME/<fallback>`.
    fn xdg_dir(&self, var: &str, fallback: &str) -> Option<PathBuf> {
        if let Some(v) = self.get(var).map(PathBuf::from)
            && v.is_absolute()
        {
            return Some(v);
        }
        self.get("HOME").map(|h| Path::new(h).join(fallback))
    }

    /// Store and identity paths per the precedence: settings, then the variables, then XDG.
    pub(crate) fn resolve(&self, settings: &FileSettings) -> Result<(PathBuf, PathBuf)> {
        let store = match settings
            .path
            .clone()
            .or_else(|| self.get(CREDENTIALS_FILE_ENV).map(PathBuf::from))
        {
            Some(p) => p,
            None => self
                .xdg_dir("XDG_DATA_HOME", ".local/share")
                .map(|d| d.join("siteport").join("credentials.age"))
                .ok_or_else(|| no_home("store", CREDENTIALS_FILE_ENV, "XDG_DATA_HOME"))?,
        };
        let identity = match settings
            .identity
            .clone()
            .or_else(|| self.get(IDENTITY_FILE_ENV).map(PathBuf::from))
        {
            Some(p) => p,
            None => self
                .xdg_dir("XDG_CONFIG_HOME", ".config")
                .map(|d| d.join("siteport").join("identity.txt"))
                .ok_or_else(|| no_home("identity", IDENTITY_FILE_ENV, "XDG_CONFIG_HOME"))?,
        };
        Ok((store, identity))
    }
}

fn no_home(what: &str, var: &str, xdg: &str) -> Error {
    Error::new(
        ErrorKind::Invalid,
        "file backend",
        format!("cannot locate the {what} file: HOME is not set and neither is {var} or {xdg}"),
    )
    .with_hint(format!(
        "set {var} (or {xdg}, or HOME), or `[credentials.file] {}` in the config",
        if what == "store" { "path" } else { "identity" }
    ))
}

impl fmt::Debug for FileEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileEnv")
            .field("vars", &self.vars)
            .field("passphrase", &self.passphrase.as_ref().map(|_| "****"))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_and_xdg_defaults() {
        let env = FileEnv::empty().var("HOME", "/h");
        let (s, i) = env.resolve(&FileSettings::default()).unwrap();
        assert_eq!(s, Path::new("/h/.local/share/siteport/credentials.age"));
        assert_eq!(i, Path::new("/h/.config/siteport/identity.txt"));

        let env = env
            .var("XDG_DATA_HOME", "/d")
            .var("XDG_CONFIG_HOME", "relative/ignored");
        let (s, i) = env.resolve(&FileSettings::default()).unwrap();
        assert_eq!(s, Path::new("/d/siteport/credentials.age"));
        assert_eq!(i, Path::new("/h/.config/siteport/identity.txt"));

        let env = env
            .var(CREDENTIALS_FILE_ENV, "/e/store.age")
            .var(IDENTITY_FILE_ENV, "/e/id.txt");
        let (s, i) = env.resolve(&FileSettings::default()).unwrap();
        assert_eq!(s, Path::new("/e/store.age"));
        assert_eq!(i, Path::new("/e/id.txt"));

        let settings = FileSettings {
            path: Some("/c/s.age".into()),
            identity: Some("/c/i.txt".into()),
            passphrase_command: None,
            ..Default::default()
        };
        let (s, i) = env.resolve(&settings).unwrap();
        assert_eq!(s, Path::new("/c/s.age"));
        assert_eq!(i, Path::new("/c/i.txt"));
    }

    #[test]
    fn no_home_names_the_variables() {
        let e = FileEnv::empty()
            .var("HOME", "")
            .resolve(&FileSettings::default())
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Invalid);
        assert!(e.to_string().contains("SITEPORT_CREDENTIALS_FILE"), "{e}");
        assert!(e.hint().unwrap().contains("HOME"));
    }

    #[test]
    fn debug_hides_passphrase() {
        let env = FileEnv::empty().passphrase(SecretString::from("pa55-word".to_owned()));
        let d = format!("{env:?}");
        assert!(!d.contains("pa55-word"), "{d}");
        assert!(d.contains("****"));
    }
}
