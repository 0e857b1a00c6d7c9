//! Resolution: a site's references expanded, only when a command needs the site. Variables
//! come from the environment, credentials from the backend, each credential fetched once per
//! resolution however many fields refer to it (one network round trip on Vault or a cloud
//! backend, not three).

use std::fmt;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use siteport_creds::reference::{self, CredentialResolver, ExpandError, VarLookup};
use siteport_creds::{Credential, CredentialBackend, CredentialName};

use super::error::{ConfigError, ConfigErrorKind, credential_error, missing_var};
use super::protocol::SiteProtocol;
use super::site::SiteConfig;
use super::template::Template;
use super::{Config, TlsMode};

/// A site with every reference expanded: what the FTP and sync layers need.
#[derive(Clone)]
pub struct ResolvedSite {
    /// Site name.
    pub name: String,
    /// Server host.
    pub host: String,
    /// Server port.
    pub port: u16,
    /// `ftp` or `sftp`.
    pub protocol: SiteProtocol,
    /// SFTP: a `SHA256:…` pin of the host key.
    pub host_key: Option<String>,
    /// SFTP: a known_hosts file checked besides `~/.ssh/known_hosts` (and where
    /// `siteport site trust --known-hosts` records a key).
    pub known_hosts: Option<PathBuf>,
    /// SFTP: accept any host key.
    pub insecure_host_key: bool,
    /// SFTP: `file_mode`, permissions of uploaded files (`None`: 0644).
    pub file_mode: Option<u32>,
    /// SFTP: `dir_mode`, permissions of directories siteport creates (`None`: 0755).
    pub dir_mode: Option<u32>,
    /// TLS mode.
    pub tls: TlsMode,
    /// Login name.
    pub username: String,
    /// Login password (empty for a key-only SFTP credential).
    pub password: SecretString,
    /// SFTP: the credential's SSH private key.
    pub ssh_key: Option<SecretString>,
    /// SFTP: the passphrase of an encrypted `ssh_key`.
    pub ssh_key_passphrase: Option<SecretString>,
    /// The credential it came from, if any.
    pub credential: Option<CredentialName>,
    /// Local root, absolute or relative to the current directory.
    pub local: PathBuf,
    /// Remote root.
    pub remote: String,
    /// Exclude patterns.
    pub exclude: Vec<String>,
    /// Delete remote extras.
    pub delete: bool,
    /// Control connections.
    pub max_connections: usize,
    /// A site lock older than this is taken over.
    pub lock_timeout: std::time::Duration,
    /// How many remote files one export may delete.
    pub max_delete: siteport_sync::MaxDelete,
    /// The deploy state dir (state and lock) in the engine's form: relative to `remote` when
    /// inside it, `/…` on the server when outside ([`siteport_sync::locate_state_dir`]).
    pub state_dir: String,
    /// When an export's changes go live.
    pub switch: siteport_sync::Switch,
    /// CA bundle for self-signed servers.
    pub ca_file: Option<PathBuf>,
    /// SHA-256 certificate pin.
    pub fingerprint: Option<String>,
    /// Skip certificate verification.
    pub insecure: bool,
    /// Passive mode.
    pub passive: bool,
}

impl fmt::Debug for ResolvedSite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResolvedSite")
            .field("name", &self.name)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("protocol", &self.protocol)
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field("password", &"****")
            .field("credential", &self.credential)
            .field("local", &self.local)
            .field("remote", &self.remote)
            .field("max_connections", &self.max_connections)
            .finish_non_exhaustive()
    }
}

/// The credentials one resolution has fetched: each name goes to the backend once. Dropped
/// (and with it every password, a [`SecretString`]) when the resolution ends.
struct FetchOnce<'a> {
    backend: &'a dyn CredentialBackend,
    fetched: Mutex<Vec<Credential>>,
}

impl<'a> FetchOnce<'a> {
    fn new(backend: &'a dyn CredentialBackend) -> Self {
        Self {
            backend,
            fetched: Mutex::new(Vec::new()),
        }
    }

    fn fetched(&self) -> MutexGuard<'_, Vec<Credential>> {
        // A poisoned lock only means another task panicked mid-push; the list is still usable.
        self.fetched.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl CredentialResolver for FetchOnce<'_> {
    async fn credential(&self, name: &CredentialName) -> siteport_creds::Result<Credential> {
        let cached = self.fetched().iter().find(|c| c.name() == name).cloned();
        if let Some(c) = cached {
            return Ok(c);
        }
        let c = self.backend.get(name).await?;
        self.fetched().push(c.clone());
        Ok(c)
    }

    fn describe(&self) -> String {
        self.backend.describe()
    }
}

/// One site's resolution under way: the site, where variables and credentials come from.
struct Resolution<'a> {
    cfg: &'a Config,
    site: &'a SiteConfig,
    env: &'a VarLookup<'a>,
    backend: &'a dyn CredentialBackend,
    creds: FetchOnce<'a>,
}

impl Resolution<'_> {
    fn template(&self, key: &str) -> Option<&Template> {
        self.site.templates.get(key)
    }

    /// Field `key` expanded, `None` when the site does not set it.
    async fn expand(&self, key: &'static str) -> Result<Option<SecretString>, ConfigError> {
        let Some(t) = self.template(key) else {
            return Ok(None);
        };
        match reference::expand(&t.segments, self.env, &self.creds).await {
            Ok(x) => Ok(Some(x.value)),
            Err(e) => Err(self.cfg.expand_error(self.site, key, t, self.backend, e)),
        }
    }

    /// A field that is not a secret, expanded.
    async fn plain(&self, key: &'static str) -> Result<Option<String>, ConfigError> {
        Ok(self
            .expand(key)
            .await?
            .map(|s| s.expose_secret().to_owned()))
    }

    /// `credential = "NAME"`, fetched (through the per-resolution cache).
    async fn credential(&self) -> Result<Option<Credential>, ConfigError> {
        let Some(c) = &self.site.credential else {
            return Ok(None);
        };
        let cred = self.creds.credential(c).await.map_err(|e| {
            let loc = self
                .site
                .credential_span
                .as_ref()
                .map(|s| self.cfg.location(s.start));
            credential_error(&self.site.name, c, self.backend, e).at(loc)
        })?;
        Ok(Some(cred))
    }

    /// A field the site must have, from `credential` when the site does not set it.
    fn missing(&self, kind: ConfigErrorKind, what: &str, hint: String) -> ConfigError {
        ConfigError::new(kind, format!("site '{}' has no {what}", self.site.name))
            .at(Some(self.cfg.location(self.site.name_span.start)))
            .hint(hint)
    }

    fn add_credential_hint(&self) -> String {
        format!(
            "add `credential = \"{0}\"` to the site and store it with `siteport credential add {0}`",
            suggested_name(&self.site.name)
        )
    }

    async fn host(&self, cred: Option<&Credential>) -> Result<String, ConfigError> {
        if let Some(h) = self.plain("host").await? {
            return Ok(h);
        }
        match cred.and_then(|c| c.host()) {
            Some(h) => Ok(h.to_owned()),
            None => Err(self.missing(
                ConfigErrorKind::Invalid,
                "host",
                "add `host = \"ftp.example.com\"` to the site, or store a host with the credential (`siteport credential add NAME --host H`)".into(),
            )),
        }
    }

    async fn port(&self, cred: Option<&Credential>) -> Result<u16, ConfigError> {
        let Some(p) = self.plain("port").await? else {
            let default = match self.site.protocol {
                SiteProtocol::Ftp => self.site.tls.default_port(),
                SiteProtocol::Sftp => 22,
            };
            return Ok(cred.and_then(|c| c.port()).unwrap_or(default));
        };
        let at = self
            .template("port")
            .map(|t| self.cfg.location(t.span.start));
        siteport_creds::parse_port(&p).map_err(|e| {
            ConfigError::new(
                ConfigErrorKind::Invalid,
                format!("site '{}': {e}", self.site.name),
            )
            .at(at)
        })
    }

    async fn username(&self, cred: Option<&Credential>) -> Result<String, ConfigError> {
        if let Some(u) = self.plain("username").await? {
            return Ok(u);
        }
        match cred {
            Some(c) => Ok(c.username().to_owned()),
            None => Err(self.missing(
                ConfigErrorKind::Invalid,
                "username",
                self.add_credential_hint(),
            )),
        }
    }

    async fn password(&self, cred: Option<&Credential>) -> Result<SecretString, ConfigError> {
        if let Some(p) = self.expand("password").await? {
            return Ok(p);
        }
        // A legacy url's password is kept out of the templates (see `legacy_url`).
        if let Some(p) = &self.site.url_password {
            return Ok(p.clone());
        }
        match cred {
            Some(c) => Ok(c.password().clone()),
            None => Err(self.missing(
                ConfigErrorKind::Credential,
                "password",
                self.add_credential_hint(),
            )),
        }
    }
}

impl Config {
    /// The site called `name`.
    pub fn site(&self, name: &str) -> Option<&SiteConfig> {
        self.sites.iter().find(|s| s.name == name)
    }

    fn site_or_error(&self, name: &str) -> Result<&SiteConfig, ConfigError> {
        self.site(name).ok_or_else(|| {
            let names: Vec<&str> = self.sites.iter().map(|s| s.name.as_str()).collect();
            ConfigError::new(
                ConfigErrorKind::Invalid,
                format!("no site named '{name}' in {}", self.path.display()),
            )
            .hint(if names.is_empty() {
                "add a [[site]] table to the config".to_owned()
            } else {
                format!("known sites: {}", names.join(", "))
            })
        })
    }

    /// Expands every reference of site `name`: variables through `env`, credentials through
    /// `backend`, each credential fetched once. `credential = "NAME"` supplies username and
    /// password, and host and port when the site has none.
    pub async fn resolve_site(
        &self,
        name: &str,
        backend: &dyn CredentialBackend,
        env: &VarLookup<'_>,
    ) -> Result<ResolvedSite, ConfigError> {
        let site = self.site_or_error(name)?;
        let r = Resolution {
            cfg: self,
            site,
            env,
            backend,
            creds: FetchOnce::new(backend),
        };
        let cred = r.credential().await?;
        let host = r.host(cred.as_ref()).await?;
        let port = r.port(cred.as_ref()).await?;
        let username = r.username(cred.as_ref()).await?;
        let password = r.password(cred.as_ref()).await?;
        let base = self.base_dir();
        let local = base.join(r.plain("local").await?.unwrap_or_default());
        let remote = r.plain("remote").await?.unwrap_or_else(|| "/".to_owned());
        let ca_file = r.plain("ca_file").await?.map(|p| base.join(p));
        let fingerprint = r.plain("fingerprint").await?;
        let state_dir = self.site_state_place(site, &remote)?;
        let resolved = ResolvedSite {
            name: site.name.clone(),
            host,
            port,
            protocol: site.protocol,
            host_key: site.sftp.host_key.clone(),
            known_hosts: site.sftp.known_hosts_path(base),
            insecure_host_key: site.sftp.insecure_host_key,
            file_mode: site.sftp.file_mode,
            dir_mode: site.sftp.dir_mode,
            tls: site.tls,
            username,
            password,
            ssh_key: cred.as_ref().and_then(|c| c.ssh_key().cloned()),
            ssh_key_passphrase: cred.as_ref().and_then(|c| c.ssh_key_passphrase().cloned()),
            credential: site.credential.clone(),
            local,
            remote,
            exclude: site.exclude.clone(),
            delete: site.delete,
            max_connections: site.max_connections,
            lock_timeout: site.lock_timeout,
            max_delete: site.max_delete,
            switch: site.switch,
            state_dir,
            ca_file,
            fingerprint,
            insecure: site.insecure,
            passive: site.passive,
        };
        // The run's value rules, here so that every command fails at file:line:column.
        self.check_values(site, &resolved)?;
        Ok(resolved)
    }

    /// Resolves every site (what `siteport config check` does), in file order.
    pub async fn resolve_all(
        &self,
        backend: &dyn CredentialBackend,
        env: &VarLookup<'_>,
    ) -> Vec<(String, Result<ResolvedSite, ConfigError>)> {
        let mut out = Vec::new();
        for s in &self.sites {
            out.push((
                s.name.clone(),
                self.resolve_site(&s.name, backend, env).await,
            ));
        }
        out
    }

    fn expand_error(
        &self,
        site: &SiteConfig,
        key: &str,
        t: &Template,
        backend: &dyn CredentialBackend,
        e: ExpandError,
    ) -> ConfigError {
        let loc = Some(self.location_in(t, e.span().start));
        match e {
            ExpandError::MissingVar { var, .. } => {
                missing_var(&var, &format!("site '{}': {key}", site.name)).at(loc)
            }
            ExpandError::NotUtf8 { var, .. } => ConfigError::new(
                ConfigErrorKind::Reference,
                format!("site '{}': {key}: environment variable {var} is not valid UTF-8", site.name),
            )
            .at(loc),
            ExpandError::Credential { name, source, .. } => {
                credential_error(&site.name, &name, backend, source).at(loc)
            }
            ExpandError::MissingField { name, field, .. } => ConfigError::new(
                ConfigErrorKind::Credential,
                format!("site '{}': {key}: credential '{name}' has no {field}", site.name),
            )
            .at(loc)
            .hint(format!(
                "store it with `siteport credential add {name} --{field} VALUE --force`, or write the value in the config"
            )),
        }
    }
}

/// A credential name to suggest for a site without one.
pub(crate) fn suggested_name(site: &str) -> String {
    let s: String = site
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    CredentialName::new(&s).map_or_else(|_| "NAME".to_owned(), |n| n.to_string())
}
