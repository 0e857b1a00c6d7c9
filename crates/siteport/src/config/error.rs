//! What a config failure is: its kind (which decides the exit code, see [`crate::exit`]),
//! where in the file, and the fix.

use std::fmt;
use std::path::PathBuf;

use siteport_creds::{CredentialBackend, CredentialName};

/// A place in a config file, 1-based.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The config file.
    pub path: PathBuf,
    /// Line, from 1.
    pub line: usize,
    /// Column in characters, from 1.
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.path.display(), self.line, self.column)
    }
}

/// What kind of config failure, which decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigErrorKind {
    /// No config file where one was looked for.
    NotFound,
    /// The file exists but cannot be read.
    Io,
    /// Not valid TOML, or a value of the wrong type or an unknown key.
    Syntax,
    /// Valid TOML, but a value is not acceptable (duplicate site, bad port, …).
    Invalid,
    /// A reference is malformed or refers to an unset variable.
    Reference,
    /// A credential could not be had (missing, locked, backend unreachable).
    Credential,
}

/// A config error: what failed, where (file:line:column when known) and how to fix it.
/// Never holds a secret value.
#[derive(Debug, thiserror::Error)]
#[error("{}{message}", location.as_ref().map(|l| format!("{l}: ")).unwrap_or_default())]
pub struct ConfigError {
    kind: ConfigErrorKind,
    message: String,
    location: Option<Location>,
    hint: Option<String>,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl ConfigError {
    pub(super) fn new(kind: ConfigErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            location: None,
            hint: None,
            source: None,
        }
    }

    pub(super) fn at(mut self, location: Option<Location>) -> Self {
        self.location = location;
        self
    }

    pub(super) fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub(super) fn source(mut self, e: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(e));
        self
    }

    /// The kind.
    pub fn kind(&self) -> ConfigErrorKind {
        self.kind
    }
    /// What failed, without the location prefix.
    pub fn message(&self) -> &str {
        &self.message
    }
    /// Where in the config file, when known.
    pub fn location(&self) -> Option<&Location> {
        self.location.as_ref()
    }
    /// The command or change that fixes it.
    pub fn hint_text(&self) -> Option<&str> {
        self.hint.as_deref()
    }
}

/// `${VAR}` unset, no default.
pub(super) fn missing_var(var: &str, what: &str) -> ConfigError {
    ConfigError::new(
        ConfigErrorKind::Reference,
        format!("{what}: environment variable {var} is not set"),
    )
    .hint(format!(
        "export {var}=…, or give a default with ${{{var}:-value}}"
    ))
}

/// A credential the site needs could not be had from `backend`.
pub(super) fn credential_error(
    site: &str,
    name: &CredentialName,
    backend: &dyn CredentialBackend,
    e: siteport_creds::Error,
) -> ConfigError {
    let add = format!("siteport credential add {name}");
    let mut hint = crate::remedy::hint(&e).unwrap_or_else(|| format!("add it with `{add}`"));
    if !hint.contains(&add) {
        hint.push_str(&format!(
            "; or store it in a writable backend with `{add}` (credentials are looked up in the {})",
            backend.describe()
        ));
    } else {
        hint.push_str(&format!(
            " (credentials are looked up in the {})",
            backend.describe()
        ));
    }
    ConfigError::new(
        ConfigErrorKind::Credential,
        format!("site '{site}': credential '{name}': {e}"),
    )
    .hint(hint)
    .source(e)
}
