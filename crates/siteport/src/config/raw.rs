//! The config file's TOML shapes, as serde reads them (with spans for error locations).
//! Validation and defaults are in [`super::site`] and [`super::credentials_section`].

use serde::Deserialize;
use toml::Spanned;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) credentials: Option<RawCredentials>,
    #[serde(default)]
    pub(super) site: Vec<RawSite>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCredentials {
    // Parsed by hand: serde's untagged-enum error ("did not match any variant") says nothing.
    pub(super) backend: Option<Spanned<toml::Value>>,
    pub(super) file: Option<RawFile>,
    pub(super) dir: Option<RawDir>,
    pub(super) vault: Option<toml::Table>,
    pub(super) aws: Option<toml::Table>,
    pub(super) gcp: Option<toml::Table>,
    pub(super) azure: Option<toml::Table>,
    pub(super) keychain: Option<toml::Table>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFile {
    pub(super) path: Option<Spanned<String>>,
    pub(super) identity: Option<Spanned<String>>,
    pub(super) passphrase_command: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDir {
    pub(super) root: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum RawPort {
    Number(i64),
    Text(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSite {
    pub(super) name: Spanned<String>,
    pub(super) host: Option<Spanned<String>>,
    pub(super) port: Option<Spanned<RawPort>>,
    pub(super) tls: Option<Spanned<String>>,
    #[serde(alias = "username")]
    pub(super) user: Option<Spanned<String>>,
    // Any TOML type, so that a mistyped password (`password = 1234`) is reported by us,
    // without the value, rather than by serde's "invalid type: integer `1234`".
    pub(super) password: Option<Spanned<toml::Value>>,
    pub(super) credential: Option<Spanned<String>>,
    pub(super) local: Option<Spanned<String>>,
    pub(super) remote: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) exclude: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) delete: bool,
    pub(super) max_connections: Option<Spanned<i64>>,
    /// How old a site lock may get before a run takes it over (`90s`, `30m`, `1h`).
    pub(super) lock_timeout: Option<Spanned<String>>,
    /// Deletions one export may make: a count, or `"P%"` of the remote files.
    pub(super) max_delete: Option<Spanned<toml::Value>>,
    /// Where the deploy state and the lock live: relative to `remote`, or absolute on the
    /// server (outside the web root).
    pub(super) state_dir: Option<Spanned<String>>,
    /// When an export's changes go live: `"burst"` (default) or `"per-file"`. Any TOML type,
    /// so that `switch = true` is refused by us, at its place, with the values to write.
    pub(super) switch: Option<Spanned<toml::Value>>,
    pub(super) ca_file: Option<Spanned<String>>,
    pub(super) fingerprint: Option<Spanned<String>>,
    // Spanned (not plain bools): on an SFTP site these FTPS keys are errors at their place.
    pub(super) insecure: Option<Spanned<bool>>,
    pub(super) passive: Option<Spanned<bool>>,
    /// `ftp` (default) or `sftp`.
    pub(super) protocol: Option<Spanned<String>>,
    /// SFTP: a `SHA256:…` pin of the server's host key.
    pub(super) host_key: Option<Spanned<String>>,
    /// SFTP: a known_hosts file checked besides `~/.ssh/known_hosts`.
    pub(super) known_hosts: Option<Spanned<String>>,
    /// SFTP: accept any host key (a warning on every run).
    pub(super) insecure_host_key: Option<Spanned<bool>>,
    // Any TOML type, so that `file_mode = 644` (decimal, or an octal `0o644` literal whose
    // radix is lost) is refused at its place with the string to write instead.
    /// SFTP: permissions of uploaded files, an octal string (`"0644"`).
    pub(super) file_mode: Option<Spanned<toml::Value>>,
    /// SFTP: permissions of created directories, an octal string (`"0755"`).
    pub(super) dir_mode: Option<Spanned<toml::Value>>,
    /// Legacy: `ftp://user:pass@host:port/path` (or `ftps://`, `sftp://`) instead of host/port/user/
    /// password/remote.
    pub(super) url: Option<Spanned<String>>,
}
