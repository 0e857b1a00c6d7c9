//! The CLI's one error type: what failed, where, the fix, and the exit code it maps to.

use std::fmt;

use siteport_creds::ValidationError;

use crate::config::{ConfigError, ConfigErrorKind};
use crate::exit::{self, Failure};

/// A failure a command reports to the user. It never carries a secret: it is built from
/// names, paths and library errors, which by contract hold none (and output is redacted anyway).
#[derive(Debug)]
pub struct CliError {
    /// Process exit code, decided by [`exit::code`] when the error is built (never changed
    /// afterwards; a summary of several failures copies the first one's).
    pub code: u8,
    /// Short machine-readable label for `--json` (`usage`, `not_found`, `bad_key`, …).
    pub kind: &'static str,
    /// What failed and where.
    pub message: String,
    /// The command or change that fixes it.
    pub hint: Option<String>,
}

impl CliError {
    /// A `failure` (which decides the exit code through [`exit::code`]) labelled `kind` for
    /// `--json`, without a hint.
    pub fn new(failure: Failure, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            code: exit::code(failure),
            kind,
            message: message.into(),
            hint: None,
        }
    }

    /// A usage or configuration error (exit 2).
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(Failure::Usage, "usage", message)
    }

    /// An unexpected internal failure (exit 1).
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(Failure::Internal, "internal", message)
    }

    /// A file the user asked for could not be written (exit 2, kind `io`): the path given
    /// must change.
    pub fn local_write(message: impl Into<String>) -> Self {
        Self::new(Failure::LocalWrite, "io", message)
    }

    /// Adds or replaces the hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// A validation failure of input the user gave (a flag, stdin, a prompt): exit 2. The
    /// message names the field, never the value.
    pub fn input(e: ValidationError) -> Self {
        Self::new(Failure::InvalidInput, "invalid_input", e.to_string())
    }
}

impl From<siteport_creds::Error> for CliError {
    /// Every error a credential backend reports exits 3, whatever its kind (including the
    /// backend's own `Invalid`, e.g. conflicting environment variables): the store, not the
    /// command line, is what needs fixing.
    fn from(e: siteport_creds::Error) -> Self {
        let mut message = e.to_string();
        // Library errors promise not to carry secrets in their sources either; include the
        // chain so that "permission denied (os error 13)" and the like reach the user.
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            message.push_str(": ");
            message.push_str(&s.to_string());
            source = s.source();
        }
        Self {
            code: exit::code(Failure::Credential(e.kind())),
            kind: e.kind().as_str(),
            message,
            hint: crate::remedy::hint(&e),
        }
    }
}

impl From<siteport_fsguard::GuardError> for CliError {
    /// A directory siteport refuses to write in (another user's, or writable by others), or
    /// could not inspect: a usage error (exit 2) with the `chmod`/`chown` that fixes it.
    fn from(e: siteport_fsguard::GuardError) -> Self {
        let hint = e.hint();
        let mut out = Self::usage(e.to_string());
        out.kind = if e.is_insecure() {
            "insecure_dir"
        } else {
            "io"
        };
        out.hint = hint;
        out
    }
}

impl From<ConfigError> for CliError {
    /// Config errors keep their own exit code (2, or 3 when a credential could not be had) and
    /// carry `file:line:column` in the message.
    fn from(e: ConfigError) -> Self {
        Self {
            code: exit::code(Failure::Config(e.kind())),
            kind: if e.kind() == ConfigErrorKind::Credential {
                "credential"
            } else {
                "config"
            },
            message: e.to_string(),
            // Every config error names file:line:column; when the loader has no specific fix,
            // say how to check the whole file again once edited.
            hint: Some(e.hint_text().map_or_else(
                || "fix the file at that line, then check it with `siteport config check`".into(),
                str::to_owned,
            )),
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

/// Result alias for commands.
pub type CliResult<T = ()> = Result<T, CliError>;

#[cfg(test)]
mod tests {
    use super::*;
    use siteport_creds::{CredentialName, Error};

    #[test]
    fn backend_errors_exit_3_with_hint() {
        let n = CredentialName::new("acme").unwrap();
        let e: CliError = Error::not_found("file backend (/x)", &n).into();
        assert_eq!(e.code, exit::CREDENTIAL);
        assert_eq!(e.kind, "not_found");
        assert!(e.message.contains("/x"), "{}", e.message);
        assert!(e.hint.unwrap().contains("siteport credential add acme"));
    }

    #[test]
    fn input_errors_exit_2() {
        let e = CliError::input(CredentialName::new("a b").unwrap_err());
        assert_eq!(e.code, exit::USAGE);
        assert!(e.message.contains("name"));
    }
}
