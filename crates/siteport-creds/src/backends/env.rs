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

/// Every variable of this backend starts with this prefix.
pub const ENV_PREFIX: &str = "SITEPORT_CRED_";

/// Suffix of the variable form that holds a path instead of a value.
pub const FILE_SUFFIX: &str = "_FILE";

/// Largest `_FILE` accepted: a secret file is a few bytes; anything bigger is a wrong path.
const MAX_SECRET_FILE: u64 = 64 * 1024;

/// One field of a credential, as stored in variables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Field {
    Username,
    Password,
    Host,
    Port,
}

impl Field {
    const ALL: [Field; 4] = [Field::Username, Field::Password, Field::Host, Field::Port];

    fn suffix(self) -> &'static str {
        match self {
            Field::Username => "_USERNAME",
            Field::Password => "_PASSWORD",
            Field::Host => "_HOST",
            Field::Port => "_PORT",
        }
    }
}

/// The variable names for one credential. `SITEPORT_CRED_ACME_PROD_PASSWORD_FILE` and the
/// other `_FILE` forms are these names plus [`FILE_SUFFIX`] (see [`EnvVarNames::file_form`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvVarNames {
    /// The part between the prefix and the field: `ACME_PROD` for `acme-prod`.
    pub stem: String,
    /// `SITEPORT_CRED_<STEM>_USERNAME`.
    pub username: String,
    /// `SITEPORT_CRED_<STEM>_PASSWORD`.
    pub password: String,
    /// `SITEPORT_CRED_<STEM>_HOST`.
    pub host: String,
    /// `SITEPORT_CRED_<STEM>_PORT`.
    pub port: String,
}

impl EnvVarNames {
    /// The `_FILE` form of one of these variables (`…_PASSWORD` → `…_PASSWORD_FILE`).
    pub fn file_form(var: &str) -> String {
        format!("{var}{FILE_SUFFIX}")
    }

    /// All eight variables (value and `_FILE` forms), in field order.
    pub fn all(&self) -> Vec<String> {
        [&self.username, &self.password, &self.host, &self.port]
            .into_iter()
            .flat_map(|v| [v.clone(), Self::file_form(v)])
            .collect()
    }

    fn of(&self, field: Field) -> &str {
        match field {
            Field::Username => &self.username,
            Field::Password => &self.password,
            Field::Host => &self.host,
            Field::Port => &self.port,
        }
    }
}

/// The variables that hold credential `name`: its name uppercased, with `-` and `.` as `_`.
pub fn env_var_names(name: &CredentialName) -> EnvVarNames {
    stem_names(stem_of(name))
}

fn stem_of(name: &CredentialName) -> String {
    name.as_str()
        .chars()
        .map(|c| match c {
            '-' | '.' => '_',
            c => c.to_ascii_uppercase(),
        })
        .collect()
}

fn stem_names(stem: String) -> EnvVarNames {
    let var = |f: Field| format!("{ENV_PREFIX}{stem}{}", f.suffix());
    EnvVarNames {
        username: var(Field::Username),
        password: var(Field::Password),
        host: var(Field::Host),
        port: var(Field::Port),
        stem,
    }
}

/// Splits `SITEPORT_CRED_<STEM><FIELD>[_FILE]` into its parts; `None` if it is not one of ours.
fn parse_var(var: &str) -> Option<(String, Field, bool)> {
    let rest = var.strip_prefix(ENV_PREFIX)?;
    let (rest, is_file) = match rest.strip_suffix(FILE_SUFFIX) {
        // `SITEPORT_CRED_X_FILE` alone has no field; only treat `_FILE` as a suffix when a
        // field suffix precedes it.
        Some(r) if Field::ALL.iter().any(|f| r.ends_with(f.suffix())) => (r, true),
        _ => (rest, false),
    };
    let field = Field::ALL
        .into_iter()
        .find(|f| rest.len() > f.suffix().len() && rest.ends_with(f.suffix()))?;
    let stem = &rest[..rest.len() - field.suffix().len()];
    Some((stem.to_owned(), field, is_file))
}

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
    /// this stem is set.
    fn load(&self, name: &CredentialName, stem: &str) -> Result<Option<Credential>> {
        let n = stem_names(stem.to_owned());
        let username = self.read_field(&n.username)?;
        let password = self.read_field(&n.password)?;
        let host = self.read_field(&n.host)?;
        let port = self.read_field(&n.port)?;
        if username.is_none() && password.is_none() && host.is_none() && port.is_none() {
            return Ok(None);
        }
        let (Some(username), Some(password)) = (username, password) else {
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
            .with_hint(format!("export {missing} or {missing}{FILE_SUFFIX}")));
        };
        let invalid = |var: &str, e: crate::ValidationError| {
            Error::new(ErrorKind::Invalid, self.describe(), format!("{var}: {e}"))
        };
        let mut cred =
            Credential::new(name.clone(), username.expose_secret(), password).map_err(|e| {
                let var = if e.field == "username" {
                    &n.username
                } else {
                    &n.password
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
        if !self.is_set(&n.password)? || !self.is_set(&n.username)? {
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
            return rename(c, name).map_err(|e| Error::invalid(self.describe(), e));
        }
        self.load(name, &stem)?.ok_or_else(|| self.not_found(name))
    }

    async fn store(&self, cred: &Credential, _mode: StoreMode) -> Result<()> {
        let n = env_var_names(cred.name());
        Err(Error::unsupported(self.describe(), "storing a credential").with_hint(format!(
            "the env backend only reads variables and cannot persist anything; export {} and {} \
             (or {}{FILE_SUFFIX} pointing to a secret file) where siteport runs, or store it in \
             the file backend with `siteport --credential-backend file credential add {}`",
            n.username,
            n.password,
            n.password,
            cred.name()
        )))
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

/// The same credential under another name that maps to the same variables.
fn rename(
    c: &Credential,
    name: &CredentialName,
) -> std::result::Result<Credential, crate::ValidationError> {
    let mut out = Credential::new(name.clone(), c.username(), c.password().clone())?;
    if let Some(h) = c.host() {
        out = out.with_host(h)?;
    }
    if let Some(p) = c.port() {
        out = out.with_port(p)?;
    }
    Ok(out.with_times(c.created(), c.updated()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect()
    }

    fn name(s: &str) -> CredentialName {
        CredentialName::new(s).unwrap()
    }

    #[test]
    fn names_map_to_variables() {
        let n = env_var_names(&name("acme-prod.v2"));
        assert_eq!(n.stem, "ACME_PROD_V2");
        assert_eq!(n.password, "SITEPORT_CRED_ACME_PROD_V2_PASSWORD");
        assert_eq!(n.all().len(), 8);
        assert!(
            n.all()
                .contains(&"SITEPORT_CRED_ACME_PROD_V2_PORT_FILE".to_owned())
        );
    }

    #[test]
    fn variables_parse_back() {
        assert_eq!(
            parse_var("SITEPORT_CRED_A_B_PASSWORD_FILE"),
            Some(("A_B".into(), Field::Password, true))
        );
        assert_eq!(
            parse_var("SITEPORT_CRED_X_HOST_FILE_PORT"),
            Some(("X_HOST_FILE".into(), Field::Port, false))
        );
        assert_eq!(parse_var("SITEPORT_CRED_PASSWORD"), None);
        assert_eq!(parse_var("SITEPORT_CRED_X"), None);
        assert_eq!(parse_var("OTHER_X_PASSWORD"), None);
    }

    #[tokio::test]
    async fn both_forms_set_is_an_error_naming_both() {
        let b = EnvBackend::from_vars(vars(&[
            ("SITEPORT_CRED_A_USERNAME", "u"),
            ("SITEPORT_CRED_A_PASSWORD", "pw-one"),
            ("SITEPORT_CRED_A_PASSWORD_FILE", "/nonexistent"),
        ]));
        let e = b.get(&name("a")).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Invalid);
        let s = e.to_string();
        assert!(
            s.contains("SITEPORT_CRED_A_PASSWORD and SITEPORT_CRED_A_PASSWORD_FILE"),
            "{s}"
        );
        assert!(!s.contains("pw-one"));
        assert!(b.list().await.is_err());
        assert!(b.check().await.is_err());
    }

    #[tokio::test]
    async fn unreadable_file_names_variable_and_path() {
        let b = EnvBackend::from_vars(vars(&[
            ("SITEPORT_CRED_A_USERNAME", "u"),
            ("SITEPORT_CRED_A_PASSWORD_FILE", "/nonexistent/secret"),
        ]));
        let e = b.get(&name("a")).await.unwrap_err();
        let s = e.to_string();
        assert!(s.contains("SITEPORT_CRED_A_PASSWORD_FILE"), "{s}");
        assert!(s.contains("/nonexistent/secret"), "{s}");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn non_utf8_value_names_variable() {
        use std::os::unix::ffi::OsStringExt;
        let b = EnvBackend::from_vars([
            (
                OsString::from("SITEPORT_CRED_A_USERNAME"),
                OsString::from("u"),
            ),
            (
                OsString::from("SITEPORT_CRED_A_PASSWORD"),
                OsString::from_vec(vec![0xff, 0xfe, b'x']),
            ),
        ]);
        let e = b.get(&name("a")).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Invalid);
        assert!(
            e.to_string()
                .contains("SITEPORT_CRED_A_PASSWORD is not valid UTF-8"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn file_form_strips_trailing_newline_and_checks_utf8() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pw");
        std::fs::write(&p, "file-pw\r\n").unwrap();
        let bad = dir.path().join("bad");
        std::fs::write(&bad, [0xffu8, 0x00]).unwrap();
        let b = EnvBackend::from_vars(vars(&[
            ("SITEPORT_CRED_A_USERNAME", "u"),
            ("SITEPORT_CRED_A_PASSWORD_FILE", p.to_str().unwrap()),
            ("SITEPORT_CRED_B_USERNAME", "u"),
            ("SITEPORT_CRED_B_PASSWORD_FILE", bad.to_str().unwrap()),
        ]));
        let c = b.get(&name("a")).await.unwrap();
        assert_eq!(c.password().expose_secret(), "file-pw");
        let e = b.get(&name("b")).await.unwrap_err();
        assert!(
            e.to_string().contains("SITEPORT_CRED_B_PASSWORD_FILE"),
            "{e}"
        );
        assert!(e.to_string().contains("not valid UTF-8"), "{e}");
    }

    #[tokio::test]
    async fn incomplete_and_invalid_values() {
        let b = EnvBackend::from_vars(vars(&[
            ("SITEPORT_CRED_A_USERNAME", "u"),
            ("SITEPORT_CRED_B_USERNAME", "u"),
            ("SITEPORT_CRED_B_PASSWORD", "pw-b"),
            ("SITEPORT_CRED_B_PORT", "99999"),
            ("SITEPORT_CRED_C_USERNAME", ""),
        ]));
        let e = b.get(&name("a")).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Invalid);
        assert!(e.to_string().contains("SITEPORT_CRED_A_PASSWORD"), "{e}");
        let e = b.get(&name("b")).await.unwrap_err();
        assert!(
            e.to_string().contains("SITEPORT_CRED_B_PORT: invalid port"),
            "{e}"
        );
        // Empty counts as unset: nothing is set for `c`.
        assert_eq!(
            b.get(&name("c")).await.unwrap_err().kind(),
            ErrorKind::NotFound
        );
    }

    #[tokio::test]
    async fn one_variable_set_serves_every_spelling() {
        let b = EnvBackend::from_vars(vars(&[
            ("SITEPORT_CRED_A_B_USERNAME", "u"),
            ("SITEPORT_CRED_A_B_PASSWORD", "pw"),
        ]));
        for n in ["a-b", "a.b", "a_b"] {
            assert_eq!(b.get(&name(n)).await.unwrap().name().as_str(), n);
        }
        let l = b.list().await.unwrap();
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].name.as_str(), "a_b");
    }

    #[tokio::test]
    async fn set_overlays_and_feeds_children() {
        let b = EnvBackend::from_vars(vars(&[
            ("SITEPORT_CRED_A_B_USERNAME", "old"),
            ("SITEPORT_CRED_A_B_PASSWORD_FILE", "/nonexistent"),
            ("SITEPORT_CRED_A_B_HOST", "old.example"),
        ]));
        let c = Credential::new(
            name("a-b"),
            "new",
            SecretString::from("overlay-pw".to_owned()),
        )
        .unwrap()
        .with_port(2121)
        .unwrap();
        b.set(&c).unwrap();
        let got = b.get(&name("a-b")).await.unwrap();
        assert_eq!(got.username(), "new");
        assert_eq!(got.host(), None);
        assert_eq!(got.port(), Some(2121));
        assert_eq!(b.get(&name("a.b")).await.unwrap().username(), "new");
        let l = b.list().await.unwrap();
        assert_eq!(l.len(), 1, "{l:?}");
        assert_eq!(l[0].name.as_str(), "a-b");

        // Another spelling of the same variables is refused.
        let other = Credential::new(name("a.b"), "x", SecretString::from("p".to_owned())).unwrap();
        let e = b.set(&other).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Invalid);
        assert!(e.to_string().contains("'a-b' and 'a.b'"), "{e}");

        let env = b.child_env();
        let keys: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "SITEPORT_CRED_A_B_USERNAME",
                "SITEPORT_CRED_A_B_PASSWORD",
                "SITEPORT_CRED_A_B_PORT"
            ]
        );
        assert_eq!(env[1].1.expose_secret(), "overlay-pw");
        let rm = b.child_env_remove();
        assert!(rm.contains(&"SITEPORT_CRED_A_B_PASSWORD_FILE".to_owned()));
        assert!(rm.contains(&"SITEPORT_CRED_A_B_HOST".to_owned()));
        assert!(!format!("{b:?}").contains("overlay-pw"));

        // A child process given exactly these variables reads the same credential back.
        let out = std::process::Command::new("env")
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v.expose_secret())))
            .output()
            .unwrap();
        let child_vars = String::from_utf8(out.stdout).unwrap();
        let child = EnvBackend::from_vars(child_vars.lines().filter_map(|l| {
            l.split_once('=')
                .map(|(k, v)| (OsString::from(k), OsString::from(v)))
        }));
        let got = child.get(&name("a-b")).await.unwrap();
        assert_eq!(got.password().expose_secret(), "overlay-pw");
        assert_eq!(got.port(), Some(2121));
    }

    #[tokio::test]
    async fn not_found_hint_names_variables_and_store_explains() {
        let b = EnvBackend::from_vars(Vec::new());
        let e = b.get(&name("shop.v2")).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
        let h = e.hint().unwrap();
        assert!(h.contains("SITEPORT_CRED_SHOP_V2_USERNAME"), "{h}");
        assert!(h.contains("SITEPORT_CRED_SHOP_V2_PASSWORD_FILE"), "{h}");
        let c = Credential::new(
            name("shop.v2"),
            "u",
            SecretString::from("pw-xyz".to_owned()),
        )
        .unwrap();
        let e = b.store(&c, StoreMode::Replace).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        assert!(
            e.hint()
                .unwrap()
                .contains("export SITEPORT_CRED_SHOP_V2_USERNAME")
        );
        assert!(!format!("{e:?}").contains("pw-xyz"));
        assert_eq!(b.describe(), "env backend (SITEPORT_CRED_* variables)");
        let e = b.delete(&name("shop.v2")).await.unwrap_err();
        assert!(
            e.hint()
                .unwrap()
                .contains("unset SITEPORT_CRED_SHOP_V2_USERNAME")
        );
    }

    #[tokio::test]
    async fn check_reports_bad_names() {
        let b = EnvBackend::from_vars(vars(&[
            ("SITEPORT_CRED__X_PASSWORD", "p"),
            ("SITEPORT_CRED_OK_USERNAME", "u"),
            ("SITEPORT_CRED_OK_PASSWORD", "p"),
        ]));
        let h = b.check().await.unwrap();
        assert!(h.notes[0].starts_with("1 credential(s)"), "{h:?}");
        assert!(
            h.notes.iter().any(|n| n.contains("SITEPORT_CRED__X_*")),
            "{h:?}"
        );
        assert_eq!(b.list().await.unwrap().len(), 1);
    }
}
