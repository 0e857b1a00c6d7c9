//! `[credentials.file]`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

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
    /// Accept a store whose recipients changed since this identity last wrote it (and record
    /// the new set). Never read from a config file: only an explicit `--accept-recipients`
    /// sets it.
    #[serde(skip)]
    pub accept_recipients: bool,
}
