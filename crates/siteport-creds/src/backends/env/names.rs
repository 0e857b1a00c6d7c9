//! Credential names to `SITEPORT_CRED_<STEM>_<FIELD>[_FILE]` variables and back.

use crate::credential::CredentialName;

/// Every variable of this backend starts with this prefix.
pub const ENV_PREFIX: &str = "SITEPORT_CRED_";

/// Suffix of the variable form that holds a path instead of a value.
pub const FILE_SUFFIX: &str = "_FILE";
/// Largest `_FILE` accepted: a secret file is a few bytes; anything bigger is a wrong path.
pub(super) const MAX_SECRET_FILE: u64 = 64 * 1024;

/// One field of a credential, as stored in variables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Field {
    Username,
    Password,
    Host,
    Port,
    SshKey,
    SshKeyPassphrase,
}

impl Field {
    pub(super) const ALL: [Field; 6] = [
        Field::Username,
        Field::Password,
        Field::Host,
        Field::Port,
        Field::SshKey,
        Field::SshKeyPassphrase,
    ];

    pub(super) fn suffix(self) -> &'static str {
        match self {
            Field::Username => "_USERNAME",
            Field::Password => "_PASSWORD",
            Field::Host => "_HOST",
            Field::Port => "_PORT",
            Field::SshKey => "_SSH_KEY",
            Field::SshKeyPassphrase => "_SSH_KEY_PASSPHRASE",
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
    /// `SITEPORT_CRED_<STEM>_SSH_KEY`: an SSH private key (SFTP), usually as `_SSH_KEY_FILE`.
    pub ssh_key: String,
    /// `SITEPORT_CRED_<STEM>_SSH_KEY_PASSPHRASE`: the passphrase of an encrypted `ssh_key`.
    pub ssh_key_passphrase: String,
}

impl EnvVarNames {
    /// The `_FILE` form of one of these variables (`…_PASSWORD` → `…_PASSWORD_FILE`).
    pub fn file_form(var: &str) -> String {
        format!("{var}{FILE_SUFFIX}")
    }

    /// All twelve variables (value and `_FILE` forms), in field order.
    pub fn all(&self) -> Vec<String> {
        [
            &self.username,
            &self.password,
            &self.host,
            &self.port,
            &self.ssh_key,
            &self.ssh_key_passphrase,
        ]
        .into_iter()
        .flat_map(|v| [v.clone(), Self::file_form(v)])
        .collect()
    }

    pub(super) fn of(&self, field: Field) -> &str {
        match field {
            Field::Username => &self.username,
            Field::Password => &self.password,
            Field::Host => &self.host,
            Field::Port => &self.port,
            Field::SshKey => &self.ssh_key,
            Field::SshKeyPassphrase => &self.ssh_key_passphrase,
        }
    }
}

/// The variables that hold credential `name`: its name uppercased, with `-` and `.` as `_`.
pub fn env_var_names(name: &CredentialName) -> EnvVarNames {
    stem_names(stem_of(name))
}

pub(super) fn stem_of(name: &CredentialName) -> String {
    name.as_str()
        .chars()
        .map(|c| match c {
            '-' | '.' => '_',
            c => c.to_ascii_uppercase(),
        })
        .collect()
}

pub(super) fn stem_names(stem: String) -> EnvVarNames {
    let var = |f: Field| format!("{ENV_PREFIX}{stem}{}", f.suffix());
    EnvVarNames {
        username: var(Field::Username),
        password: var(Field::Password),
        host: var(Field::Host),
        port: var(Field::Port),
        ssh_key: var(Field::SshKey),
        ssh_key_passphrase: var(Field::SshKeyPassphrase),
        stem,
    }
}

/// Splits `SITEPORT_CRED_<STEM><FIELD>[_FILE]` into its parts; `None` if it is not one of ours.
pub(super) fn parse_var(var: &str) -> Option<(String, Field, bool)> {
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
