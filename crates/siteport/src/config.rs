//! The config file (SPEC §3): finding it, parsing and validating it with file:line:column in
//! every error, and resolving a site's references lazily, only when a command needs the site.
//!
//! ```toml
//! [credentials]
//! backend = ["env", "file"]
//!
//! [[site]]
//! name = "acme"
//! host = "ftp.acme.example"
//! credential = "acme"          # username + password (and host/port if the site has none)
//! local = "public"             # relative to this file
//! remote = "/htdocs"
//! ```
//!
//! Any string of a site may hold references (`${VAR}`, `${VAR:-default}`, `${cred:NAME#field}`,
//! `$$`; see [`siteport_creds::reference`]). They are parsed when the file is loaded, so a
//! malformed reference fails `load`, and expanded by [`Config::resolve_site`].

mod credentials_section;
mod discover;
mod error;
mod legacy_url;
mod protocol;
mod raw;
mod resolve;
mod site;
mod template;
mod validate;

use std::fmt;
use std::path::{Path, PathBuf};

use siteport_creds::reference::{self, VarLookup};

pub use credentials_section::CredentialsSection;
pub use discover::{CONFIG_ENV, LOCAL_CONFIG, find_config};
pub use error::{ConfigError, ConfigErrorKind, Location};
pub use protocol::{SftpKeys, SiteProtocol, is_valid_host_key_pin};
pub use resolve::ResolvedSite;
pub(crate) use resolve::suggested_name;
pub use site::SiteConfig;

use raw::RawConfig;

/// Most control connections a site may ask for.
pub const MAX_CONNECTIONS: usize = 64;

/// TLS mode of a site: the FTP client's own type, so the two can never drift apart.
pub use siteport_sync::TlsMode;

/// A loaded config file. Sites keep their references unexpanded until
/// [`resolve_site`](Self::resolve_site).
#[derive(Clone)]
pub struct Config {
    /// The file it was read from.
    pub path: PathBuf,
    /// `[credentials]`.
    pub credentials: CredentialsSection,
    /// The `[[site]]` entries, in file order.
    pub sites: Vec<SiteConfig>,
    source: String,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the source text: a legacy config may hold literal passwords.
        f.debug_struct("Config")
            .field("path", &self.path)
            .field("credentials", &self.credentials)
            .field("sites", &self.sites)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// Reads and validates `path`, expanding `${VAR}` in `[credentials.*]` paths from the
    /// process environment.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Self::load_with_env(path, &reference::process_env)
    }

    /// [`load`](Self::load) with variables from `env`.
    pub fn load_with_env(path: &Path, env: &VarLookup<'_>) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            let kind = if e.kind() == std::io::ErrorKind::NotFound {
                ConfigErrorKind::NotFound
            } else {
                ConfigErrorKind::Io
            };
            ConfigError::new(
                kind,
                format!("cannot read config file {}: {e}", path.display()),
            )
        })?;
        Self::parse(&text, path, env)
    }

    /// Parses `text` as if read from `path` (used for locations and relative paths).
    pub fn parse(text: &str, path: &Path, env: &VarLookup<'_>) -> Result<Config, ConfigError> {
        let mut cfg = Config {
            path: path.to_owned(),
            credentials: CredentialsSection::default(),
            sites: Vec::new(),
            source: text.to_owned(),
        };
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let loc = e.span().map(|s| cfg.location(s.start));
            ConfigError::new(ConfigErrorKind::Syntax, e.message().trim().to_owned()).at(loc)
        })?;
        if let Some(c) = raw.credentials {
            cfg.credentials = cfg.credentials_section(c, env)?;
        }
        for site in raw.site {
            let s = cfg.site_config(site)?;
            if let Some(prev) = cfg.sites.iter().find(|p| p.name == s.name) {
                let first = cfg.location(prev.name_span.start);
                return Err(ConfigError::new(
                    ConfigErrorKind::Invalid,
                    format!("site '{}' is defined twice (first at {first})", s.name),
                )
                .at(Some(cfg.location(s.name_span.start)))
                .hint("give each [[site]] a unique name"));
            }
            cfg.sites.push(s);
        }
        Ok(cfg)
    }

    /// The directory relative paths are resolved against.
    pub fn base_dir(&self) -> &Path {
        match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        }
    }

    fn location(&self, offset: usize) -> Location {
        let (line, column) = reference::line_col(&self.source, offset);
        Location {
            path: self.path.clone(),
            line,
            column,
        }
    }
}

#[cfg(test)]
mod tests;
