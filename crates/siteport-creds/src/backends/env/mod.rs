//! The `env` backend: credentials from `SITEPORT_CRED_<NAME>_*` environment variables.
//!
//! For a credential `acme-prod` the variables are `SITEPORT_CRED_ACME_PROD_USERNAME`,
//! `SITEPORT_CRED_ACME_PROD_PASSWORD` and, optionally, `SITEPORT_CRED_ACME_PROD_HOST` and
//! `SITEPORT_CRED_ACME_PROD_PORT`. Each may instead be given as `…_FILE`, the path of a file
//! holding the value (Docker secrets under `/run/secrets/…`); the file is read on every `get`
//! and its trailing newline is stripped. An empty variable counts as unset, because compose
//! files often pass `VAR=${UNSET}` through as an empty string.
//!
//! The mapping from names to variables is lossy (`-` and `.` both become `_`), so
//! [`list`](CredentialBackend::list) reports names recovered from variables with `_`
//! (`SITEPORT_CRED_ACME_PROD_PASSWORD` lists as `acme_prod`), while `get` of `acme-prod`,
//! `acme.prod` or `acme_prod` all read the same variables.
//!
//! The backend is read-only: the trait's `store` and `delete` fail with `Unsupported` and
//! explain which variables to export. [`EnvBackend::set`] keeps a credential for the current
//! process, and [`EnvBackend::child_env`] hands it to child processes, without touching the
//! process environment (which would need `unsafe` in edition 2024).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::io::Read;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use crate::backend::{BackendKind, CredentialBackend, CredentialInfo, Health, StoreMode};
use crate::credential::{Credential, CredentialName, check_host, check_username, parse_port};
use crate::error::{Error, ErrorKind, Result};
use crate::remedy::Remedy;

mod names;
#[cfg(test)]
mod tests;

pub use names::{ENV_PREFIX, EnvVarNames, FILE_SUFFIX, env_var_names};
use names::{Field, MAX_SECRET_FILE, parse_var, stem_names, stem_of};

/// A variable's value as captured: text, or a marker that it was not UTF-8 (so that the error
/// can name the variable without ever holding the undecodable bytes).
enum EnvValue {
    Text(SecretString),
    NotUtf8,
}

/// Credentials from `SITEPORT_CRED_*` variables, captured once when the backend is built,
/// plus an in-process overlay written by [`EnvBackend::set`].
pub struct EnvBackend {
    vars: BTreeMap<String, EnvValue>,
    /// Keyed by stem, so that two names mapping to the same variables cannot both be set.
    overlay: Mutex<BTreeMap<String, Credential>>,
}

impl fmt::Debug for EnvBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Variable names are not secret; values are never shown.
        let overlay: Vec<String> = self
            .overlay()
            .values()
            .map(|c| c.name().to_string())
            .collect();
        f.debug_struct("EnvBackend")
            .field("variables", &self.vars.keys().collect::<Vec<_>>())
            .field("overlay", &overlay)
            .finish()
    }
}

impl EnvBackend {
    /// Captures the `SITEPORT_CRED_*` variables of this process.
    pub fn from_process_env() -> Self {
        Self::from_vars(std::env::vars_os())
    }

    /// Captures the `SITEPORT_CRED_*` variables among `vars` (a snapshot; other variables
    /// are ignored). Tests use this instead of changing the process environment.
    pub fn from_vars(vars: impl IntoIterator<Item = (OsString, OsString)>) -> Self {
        let mut map = BTreeMap::new();
        for (k, v) in vars {
            // Variable names that are not UTF-8 cannot be ours: ours are ASCII.
            let Ok(k) = k.into_string() else { continue };
            if !k.starts_with(ENV_PREFIX) {
                continue;
            }
            let value = match v.into_string() {
                Ok(s) => EnvValue::Text(SecretString::from(s)),
                Err(_) => EnvValue::NotUtf8,
            };
            map.insert(k, value);
        }
        Self {
            vars: map,
            overlay: Mutex::new(BTreeMap::new()),
        }
    }

    fn overlay(&self) -> MutexGuard<'_, BTreeMap<String, Credential>> {
        // A panic while holding the lock cannot leave the map half-updated (inserts are
        // single calls), so a poisoned lock is still consistent.
        self.overlay.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets `cred` for this process: later `get` and `list` calls see it, and
    /// [`child_env`](Self::child_env) passes it to child processes. Nothing is persisted.
    ///
    /// Fails with `Invalid` if another name that maps to the same variables (`a-b` vs `a.b`)
    /// was set before.
    pub fn set(&self, cred: &Credential) -> Result<()> {
        let names = env_var_names(cred.name());
        let mut overlay = self.overlay();
        if let Some(existing) = overlay.get(&names.stem)
            && existing.name() != cred.name()
        {
            return Err(Error::new(
                ErrorKind::Invalid,
                self.describe(),
                format!(
                    "credentials '{}' and '{}' both map to the variables {ENV_PREFIX}{}_*",
                    existing.name(),
                    cred.name(),
                    names.stem
                ),
            )
            .with_hint(format!(
                "rename one of them; the env backend turns '-' and '.' into '_', so '{}' and '{}' cannot coexist",
                existing.name(),
                cred.name()
            )));
        }
        overlay.insert(names.stem, cred.clone());
        Ok(())
    }

    /// The variables to give a child process so that it sees every credential set with
    /// [`set`](Self::set). Pair it with [`child_env_remove`](Self::child_env_remove).
    pub fn child_env(&self) -> Vec<(String, SecretString)> {
        let mut out = Vec::new();
        for cred in self.overlay().values() {
            let n = env_var_names(cred.name());
            out.push((n.username, SecretString::from(cred.username().to_owned())));
            out.push((n.password, cred.password().clone()));
            if let Some(h) = cred.host() {
                out.push((n.host, SecretString::from(h.to_owned())));
            }
            if let Some(p) = cred.port() {
                out.push((n.port, SecretString::from(p.to_string())));
            }
            if let Some(k) = cred.ssh_key() {
                out.push((n.ssh_key, k.clone()));
            }
            if let Some(p) = cred.ssh_key_passphrase() {
                out.push((n.ssh_key_passphrase, p.clone()));
            }
        }
        out
    }

    /// The variables a child process must NOT inherit for the credentials set with
    /// [`set`](Self::set): their `_FILE` forms and the unset optional fields, which would
    /// otherwise conflict with or add to the values from [`child_env`](Self::child_env).
    pub fn child_env_remove(&self) -> Vec<String> {
        let mut out = Vec::new();
        for cred in self.overlay().values() {
            let n = env_var_names(cred.name());
            for f in Field::ALL {
                out.push(EnvVarNames::file_form(n.of(f)));
            }
            if cred.host().is_none() {
                out.push(n.host.clone());
            }
            if cred.port().is_none() {
                out.push(n.port.clone());
            }
            if cred.ssh_key().is_none() {
                out.push(n.ssh_key.clone());
            }
            if cred.ssh_key_passphrase().is_none() {
                out.push(n.ssh_key_passphrase.clone());
            }
        }
        out
    }

    /// The value of variable `var` or of `var_FILE`, or `None` if neither is set.
    fn read_field(&self, var: &str) -> Result<Option<SecretString>> {
        let file_var = EnvVarNames::file_form(var);
        let direct = self.text(var)?;
        let path = self.text(&file_var)?;
        match (direct, path) {
            (Some(_), Some(_)) => Err(Error::new(
                ErrorKind::Invalid,
                self.describe(),
                format!("both {var} and {file_var} are set"),
            )
            .with_hint(format!(
                "unset one of them: `unset {var}` or `unset {file_var}`"
            ))),
            (Some(v), None) => Ok(Some(v)),
            (None, Some(p)) => self
                .read_file(&file_var, Path::new(p.expose_secret()))
                .map(Some),
            (None, None) => Ok(None),
        }
    }

    /// Whether `var` or `var_FILE` is set (to something non-empty), without reading files.
    fn is_set(&self, var: &str) -> Result<bool> {
        let file_var = EnvVarNames::file_form(var);
        match (self.text(var)?.is_some(), self.text(&file_var)?.is_some()) {
            (true, true) => Err(Error::new(
                ErrorKind::Invalid,
                self.describe(),
                format!("both {var} and {file_var} are set"),
            )
            .with_hint(format!(
                "unset one of them: `unset {var}` or `unset {file_var}`"
            ))),
            (a, b) => Ok(a || b),
        }
    }

    /// A variable's text; empty counts as unset.
    fn text(&self, var: &str) -> Result<Option<SecretString>> {
        match self.vars.get(var) {
            None => Ok(None),
            Some(EnvValue::NotUtf8) => Err(Error::new(
                ErrorKind::Invalid,
                self.describe(),
                format!("{var} is not valid UTF-8"),
            )
            .with_hint(format!("set {var} to a UTF-8 value"))),
            Some(EnvValue::Text(s)) if s.expose_secret().is_empty() => Ok(None),
            Some(EnvValue::Text(s)) => Ok(Some(s.clone())),
        }
    }

    fn read_file(&self, var: &str, path: &Path) -> Result<SecretString> {
        let fail = |kind: ErrorKind, what: String| {
            Error::new(kind, self.describe(), format!("{var}: {what}"))
        };
        let io_kind = |e: &std::io::Error| match e.kind() {
            std::io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
            _ => ErrorKind::Invalid,
        };
        let file = std::fs::File::open(path).map_err(|e| {
            fail(io_kind(&e), format!("cannot open {}: {e}", path.display())).with_hint(format!(
                "point {var} at a readable file (a Docker secret is mounted under /run/secrets/)"
            ))
        })?;
        let mut buf = Zeroizing::new(Vec::new());
        file.take(MAX_SECRET_FILE + 1)
            .read_to_end(&mut buf)
            .map_err(|e| fail(io_kind(&e), format!("cannot read {}: {e}", path.display())))?;
        if buf.len() as u64 > MAX_SECRET_FILE {
            return Err(fail(
                ErrorKind::Invalid,
                format!(
                    "{} is larger than {MAX_SECRET_FILE} bytes; it is not a secret file",
                    path.display()
                ),
            ));
        }
        let text = std::str::from_utf8(&buf).map_err(|_| {
            fail(
                ErrorKind::Invalid,
                format!("{} is not valid UTF-8", path.display()),
            )
        })?;
        Ok(SecretString::from(strip_newlines(text).to_owned()))
    }

    /// Builds the credential of `stem` (reading `_FILE` forms), `None` when no variable of
    /// this stem is set. A password or an SSH key (or both) must be set.
    fn load(&self, name: &CredentialName, stem: &str) -> Result<Option<Credential>> {
        let n = stem_names(stem.to_owned());
        let username = self.read_field(&n.username)?;
        let password = self.read_field(&n.password)?;
        let host = self.read_field(&n.host)?;
        let port = self.read_field(&n.port)?;
        let ssh_key = self.read_field(&n.ssh_key)?.map(with_final_newline);
        let passphrase = self.read_field(&n.ssh_key_passphrase)?;
        if [&username, &password, &host, &port, &ssh_key, &passphrase]
            .iter()
            .all(|v| v.is_none())
        {
            return Ok(None);
        }
        let secret_given = password.is_some() || ssh_key.is_some();
        let (Some(username), true) = (username, secret_given) else {
            let missing = if self.is_set(&n.username)? {
                &n.password
            } else {
                &n.username
            };
            return Err(Error::new(
                ErrorKind::Invalid,
                self.describe(),
                format!(
                    "credential '{name}' is incomplete: {missing} (or {missing}{FILE_SUFFIX}) is not set"
                ),
            )
            .with_hint(format!(
                "export {missing} or {missing}{FILE_SUFFIX} (an SFTP login may give {}{FILE_SUFFIX} instead of a password)",
                n.ssh_key
            )));
        };
        let invalid = |var: &str, e: crate::ValidationError| {
            Error::new(ErrorKind::Invalid, self.describe(), format!("{var}: {e}"))
        };
        let mut cred = Credential::from_parts(
            name.clone(),
            username.expose_secret(),
            password,
            ssh_key,
            passphrase,
        )
        .map_err(|e| {
            let var = match e.field {
                "username" => &n.username,
                "ssh_key" => &n.ssh_key,
                "ssh_key_passphrase" => &n.ssh_key_passphrase,
                _ => &n.password,
            };
            invalid(var, e)
        })?;
        if let Some(h) = host {
            cred = cred
                .with_host(h.expose_secret())
                .map_err(|e| invalid(&n.host, e))?;
        }
        if let Some(p) = port {
            let p = parse_port(p.expose_secret()).map_err(|e| invalid(&n.port, e))?;
            cred = cred.with_port(p).map_err(|e| invalid(&n.port, e))?;
        }
        Ok(Some(cred))
    }

    /// The listing entry of `stem`: like `load`, but the password is only checked for presence.
    fn info(&self, name: &CredentialName, stem: &str) -> Result<Option<CredentialInfo>> {
        let n = stem_names(stem.to_owned());
        let secret_set = self.is_set(&n.password)? || self.is_set(&n.ssh_key)?;
        if !secret_set || !self.is_set(&n.username)? {
            return Ok(None);
        }
        let invalid = |var: &str, e: crate::ValidationError| {
            Error::new(ErrorKind::Invalid, self.describe(), format!("{var}: {e}"))
        };
        let username = self.read_field(&n.username)?;
        if let Some(u) = &username {
            check_username(u.expose_secret()).map_err(|e| invalid(&n.username, e))?;
        }
        let host = match self.read_field(&n.host)? {
            Some(h) => {
                check_host(h.expose_secret()).map_err(|e| invalid(&n.host, e))?;
                Some(h.expose_secret().to_owned())
            }
            None => None,
        };
        let port = match self.read_field(&n.port)? {
            Some(p) => Some(parse_port(p.expose_secret()).map_err(|e| invalid(&n.port, e))?),
            None => None,
        };
        Ok(Some(CredentialInfo {
            name: name.clone(),
            username: username.map(|u| u.expose_secret().to_owned()),
            host,
            port,
            created: None,
            updated: None,
            source: BackendKind::Env,
        }))
    }

    /// Stems present in the captured variables, with the listing name recovered from each
    /// (`Err(stem)` when the stem is not a valid credential name).
    fn stems(&self) -> BTreeMap<String, std::result::Result<CredentialName, String>> {
        let mut out = BTreeMap::new();
        for var in self.vars.keys() {
            if let Some((stem, _, _)) = parse_var(var) {
                let name = CredentialName::new(&stem.to_ascii_lowercase())
                    .ok()
                    .filter(|n| stem_of(n) == stem)
                    .ok_or_else(|| stem.clone());
                out.insert(stem, name);
            }
        }
        out
    }

    fn not_found(&self, name: &CredentialName) -> Error {
        let n = env_var_names(name);
        Error::not_found(self.describe(), name).with_hint(format!(
            "export {} and {} (or {}{FILE_SUFFIX} with the path of a file holding it); \
             {} and {} are optional",
            n.username, n.password, n.password, n.host, n.port
        ))
    }
}

/// A key read from a variable or a `_FILE` lost its final newline (stripped like every
/// value's); PEM parsers want the armour's last line terminated, so it is put back.
fn with_final_newline(key: SecretString) -> SecretString {
    let k = key.expose_secret();
    if k.ends_with('\n') {
        return key;
    }
    let mut out = Zeroizing::new(String::with_capacity(k.len() + 1));
    out.push_str(k);
    out.push('\n');
    SecretString::from(out.as_str().to_owned())
}

/// Strips the trailing line break(s) editors and `echo` add; CR and LF can never be part of a
/// valid value, so removing all of them at the end loses nothing.
pub(crate) fn strip_newlines(s: &str) -> &str {
    s.trim_end_matches(['\n', '\r'])
}

#[async_trait]
impl CredentialBackend for EnvBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Env
    }

    fn describe(&self) -> String {
        format!("env backend ({ENV_PREFIX}* variables)")
    }

    fn is_writable(&self) -> bool {
        false
    }

    async fn get(&self, name: &CredentialName) -> Result<Credential> {
        let stem = stem_of(name);
        if let Some(c) = self.overlay().get(&stem) {
            if c.name() == name {
                return Ok(c.clone());
            }
            // `a-b` was set and `a.b` is asked for: same variables, so the same credential.
            return Ok(c.renamed(name.clone()));
        }
        self.load(name, &stem)?.ok_or_else(|| self.not_found(name))
    }

    async fn store(&self, cred: &Credential, _mode: StoreMode) -> Result<()> {
        let n = env_var_names(cred.name());
        Err(Error::unsupported(self.describe(), "storing a credential")
            .with_hint(format!(
                "the env backend only reads variables and cannot persist anything; export {} and {} \
                 (or {}{FILE_SUFFIX} pointing to a secret file) where siteport runs",
                n.username, n.password, n.password,
            ))
            .with_remedy_joined(Remedy::AddToFileBackend(cred.name().clone()), ", or "))
    }

    async fn delete(&self, name: &CredentialName) -> Result<()> {
        let n = env_var_names(name);
        Err(
            Error::unsupported(self.describe(), "deleting a credential").with_hint(format!(
                "the env backend only reads variables; remove them from the environment: `unset {}`",
                n.all().join(" ")
            )),
        )
    }

    async fn list(&self) -> Result<Vec<CredentialInfo>> {
        let mut out: BTreeMap<CredentialName, CredentialInfo> = BTreeMap::new();
        let overlay_stems: Vec<String> = self.overlay().keys().cloned().collect();
        for (stem, name) in self.stems() {
            let Ok(name) = name else { continue };
            if overlay_stems.contains(&stem) {
                continue;
            }
            if let Some(info) = self.info(&name, &stem)? {
                out.insert(name, info);
            }
        }
        for cred in self.overlay().values() {
            out.insert(
                cred.name().clone(),
                CredentialInfo::of(cred, BackendKind::Env),
            );
        }
        Ok(out.into_values().collect())
    }

    async fn check(&self) -> Result<Health> {
        let mut problems = Vec::new();
        let mut notes = Vec::new();
        let mut count = 0;
        for (stem, name) in self.stems() {
            let name = match name {
                Ok(n) => n,
                Err(stem) => {
                    notes.push(format!(
                        "ignoring {ENV_PREFIX}{stem}_*: '{}' is not a valid credential name",
                        stem.to_ascii_lowercase()
                    ));
                    continue;
                }
            };
            match self.load(&name, &stem) {
                Ok(Some(_)) => count += 1,
                Ok(None) => {}
                Err(e) => problems.push(match e.hint() {
                    Some(h) => format!("{} ({h})", e.detail()),
                    None => e.detail().to_owned(),
                }),
            }
        }
        let overlay = self.overlay().len();
        if !problems.is_empty() {
            return Err(Error::new(
                ErrorKind::Invalid,
                self.describe(),
                problems.join("; "),
            ));
        }
        notes.insert(
            0,
            format!("{count} credential(s) in variables, {overlay} set in this process"),
        );
        Ok(Health { notes })
    }
}
