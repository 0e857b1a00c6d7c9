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

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use siteport_creds::reference::{
    self, CredField, ExpandError, NotUnicode, Segment, SegmentKind, VarLookup,
};
use siteport_creds::{
    BackendSettings, BackendSpec, CredentialBackend, CredentialName, DirSettings, FileSettings,
};
use toml::Spanned;

/// Variable naming the config file when `--config` is not given.
pub const CONFIG_ENV: &str = "SITEPORT_CONFIG";
/// Config file looked for in the current directory.
pub const LOCAL_CONFIG: &str = "siteport.toml";
/// Exit code for usage and config errors.
pub const EXIT_CONFIG: u8 = 2;
/// Exit code for credential errors.
pub const EXIT_CREDENTIAL: u8 = 3;
/// Most control connections a site may ask for.
pub const MAX_CONNECTIONS: usize = 64;

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
    fn new(kind: ConfigErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            location: None,
            hint: None,
            source: None,
        }
    }

    fn at(mut self, location: Option<Location>) -> Self {
        self.location = location;
        self
    }

    fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    fn source(mut self, e: impl std::error::Error + Send + Sync + 'static) -> Self {
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
    /// The documented exit code: [`EXIT_CREDENTIAL`] for credential failures, else
    /// [`EXIT_CONFIG`].
    pub fn exit_code(&self) -> u8 {
        match self.kind {
            ConfigErrorKind::Credential => EXIT_CREDENTIAL,
            _ => EXIT_CONFIG,
        }
    }
}

/// Finds the config file: `flag` (`--config`) > `SITEPORT_CONFIG` > `<cwd>/siteport.toml` >
/// `$XDG_CONFIG_HOME/siteport/config.toml` (XDG default `~/.config`). A file named by the flag
/// or the variable must exist; the last two are only looked for. `env` looks variables up
/// (pass `|k| std::env::var_os(k)`).
pub fn find_config(
    flag: Option<&Path>,
    env: &dyn Fn(&str) -> Option<OsString>,
    cwd: &Path,
) -> Result<PathBuf, ConfigError> {
    let named = |p: PathBuf, by: &str| {
        let p = if p.is_relative() { cwd.join(p) } else { p };
        if p.is_file() {
            Ok(p)
        } else {
            Err(ConfigError::new(
                ConfigErrorKind::NotFound,
                format!("config file {} (from {by}) does not exist", p.display()),
            )
            .hint(format!("create it, or fix {by}")))
        }
    };
    if let Some(f) = flag {
        return named(f.to_owned(), "--config");
    }
    if let Some(v) = env(CONFIG_ENV).filter(|v| !v.is_empty()) {
        return named(PathBuf::from(v), CONFIG_ENV);
    }
    let mut tried = vec![cwd.join(LOCAL_CONFIG)];
    let xdg = env("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        // The XDG spec says to ignore relative values.
        .filter(|p| p.is_absolute())
        .or_else(|| env("HOME").map(|h| PathBuf::from(h).join(".config")));
    if let Some(x) = xdg {
        tried.push(x.join("siteport").join("config.toml"));
    }
    if let Some(found) = tried.iter().find(|p| p.is_file()) {
        return Ok(found.clone());
    }
    let list: Vec<String> = tried.iter().map(|p| p.display().to_string()).collect();
    Err(ConfigError::new(
        ConfigErrorKind::NotFound,
        format!("no config file found (looked for {})", list.join(", ")),
    )
    .hint(format!(
        "create ./{LOCAL_CONFIG}, or pass --config FILE, or set {CONFIG_ENV}"
    )))
}

/// TLS mode of a site: the FTP client's own type, so the two can never drift apart.
pub use siteport_ftp::TlsMode;

/// A loaded config file. Sites keep their references unexpanded until
/// [`resolve_site`](Self::resolve_site).
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

/// `[credentials]`: which backend, and each backend's settings.
#[derive(Debug, Clone, Default)]
pub struct CredentialsSection {
    /// `backend = "file"` or `["env", "file"]`, when set.
    pub backend: Option<BackendSpec>,
    /// `[credentials.file]` and `[credentials.dir]`, with `${VAR}` expanded and relative
    /// paths resolved against the config file's directory.
    pub settings: BackendSettings,
    /// Tables of backends configured here but not built into [`BackendSettings`]
    /// (`[credentials.vault]`, `aws`, `gcp`, `azure`, `keychain`), for their crates to read.
    pub other: BTreeMap<String, toml::Table>,
}

/// One `[[site]]`, as written (references not yet expanded).
pub struct SiteConfig {
    /// `name`.
    pub name: String,
    /// `host`, unexpanded.
    pub host: Option<String>,
    /// `port`, unexpanded (an integer in the file is kept as its text).
    pub port: Option<String>,
    /// `tls`, default explicit.
    pub tls: TlsMode,
    /// `user` or `username`, unexpanded.
    pub username: Option<String>,
    /// `password`, unexpanded. Legacy: it may hold a literal password, so it is a secret.
    pub password: Option<SecretString>,
    /// `credential = "NAME"`.
    pub credential: Option<CredentialName>,
    /// `local`, unexpanded (relative to the config file once resolved).
    pub local: String,
    /// `remote`, unexpanded; default `/`.
    pub remote: String,
    /// `exclude` glob patterns.
    pub exclude: Vec<String>,
    /// `delete`: remove remote files that are gone locally.
    pub delete: bool,
    /// `max_connections`, default 4.
    pub max_connections: usize,
    /// `ca_file`, unexpanded.
    pub ca_file: Option<String>,
    /// `fingerprint` (SHA-256 pin), unexpanded.
    pub fingerprint: Option<String>,
    /// `insecure`: skip certificate verification.
    pub insecure: bool,
    /// `passive`, default true.
    pub passive: bool,
    name_span: Range<usize>,
    credential_span: Option<Range<usize>>,
    templates: BTreeMap<&'static str, Template>,
    url_password: bool,
}

impl fmt::Debug for SiteConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SiteConfig")
            .field("name", &self.name)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "****"))
            .field("credential", &self.credential)
            .field("local", &self.local)
            .field("remote", &self.remote)
            .finish_non_exhaustive()
    }
}

impl SiteConfig {
    /// Whether `password` is a literal (no reference): what `siteport migrate` moves into a
    /// backend.
    pub fn has_literal_password(&self) -> bool {
        self.templates.get("password").is_some_and(|t| {
            !t.segments.is_empty()
                && t.segments
                    .iter()
                    .all(|s| matches!(s.kind, SegmentKind::Literal(_)))
        })
    }

    /// Whether the password comes from a legacy `url = "ftp://user:pass@host"` (a hard-coded
    /// secret `siteport migrate` moves into a backend).
    pub fn password_in_url(&self) -> bool {
        self.url_password
    }

    /// Every credential the site uses: `credential` and `${cred:…}` references, without repeats.
    pub fn credential_names(&self) -> Vec<CredentialName> {
        let mut out: Vec<CredentialName> = self.credential.iter().cloned().collect();
        for t in self.templates.values() {
            for s in &t.segments {
                if let SegmentKind::Cred { name, .. } = &s.kind
                    && !out.contains(name)
                {
                    out.push(name.clone());
                }
            }
        }
        out
    }
}

/// A parsed string value and where its literal is in the file.
#[derive(Debug, Clone)]
struct Template {
    segments: Vec<Segment>,
    /// Span of the TOML value (quotes included).
    span: Range<usize>,
    /// The decoded string, to map offsets inside it back to the file.
    text_len: usize,
}

/// A site with every reference expanded: what the FTP and sync layers need.
#[derive(Clone)]
pub struct ResolvedSite {
    /// Site name.
    pub name: String,
    /// Server host.
    pub host: String,
    /// Server port.
    pub port: u16,
    /// TLS mode.
    pub tls: TlsMode,
    /// Login name.
    pub username: String,
    /// Login password.
    pub password: SecretString,
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

// ---- raw TOML shapes -------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    credentials: Option<RawCredentials>,
    #[serde(default)]
    site: Vec<RawSite>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCredentials {
    // Parsed by hand: serde's untagged-enum error ("did not match any variant") says nothing.
    backend: Option<Spanned<toml::Value>>,
    file: Option<RawFile>,
    dir: Option<RawDir>,
    vault: Option<toml::Table>,
    aws: Option<toml::Table>,
    gcp: Option<toml::Table>,
    azure: Option<toml::Table>,
    keychain: Option<toml::Table>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    path: Option<Spanned<String>>,
    identity: Option<Spanned<String>>,
    passphrase_command: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDir {
    root: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawPort {
    Number(i64),
    Text(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSite {
    name: Spanned<String>,
    host: Option<Spanned<String>>,
    port: Option<Spanned<RawPort>>,
    tls: Option<Spanned<String>>,
    #[serde(alias = "username")]
    user: Option<Spanned<String>>,
    // Any TOML type, so that a mistyped password (`password = 1234`) is reported by us,
    // without the value, rather than by serde's "invalid type: integer `1234`".
    password: Option<Spanned<toml::Value>>,
    credential: Option<Spanned<String>>,
    local: Option<Spanned<String>>,
    remote: Option<Spanned<String>>,
    #[serde(default)]
    exclude: Vec<String>,
    #[serde(default)]
    delete: bool,
    max_connections: Option<Spanned<i64>>,
    ca_file: Option<Spanned<String>>,
    fingerprint: Option<Spanned<String>>,
    #[serde(default)]
    insecure: bool,
    passive: Option<bool>,
    /// Legacy: `ftp://user:pass@host:port/path` (or `ftps://`) instead of host/port/user/
    /// password/remote.
    url: Option<Spanned<String>>,
}

// ---- loading --------------------------------------------------------------------------

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

    /// Location of byte `offset` inside the decoded string whose TOML value spans `span`.
    /// Exact when the literal has no escapes; otherwise the start of the value.
    fn location_in(&self, t: &Template, offset: usize) -> Location {
        let raw = self.source.get(t.span.clone()).unwrap_or("");
        let delim = if raw.starts_with("\"\"\"") || raw.starts_with("'''") {
            3
        } else {
            1
        };
        let plain = raw.len() == t.text_len + 2 * delim && !raw.contains('\\');
        if plain {
            self.location(t.span.start + delim + offset)
        } else {
            self.location(t.span.start)
        }
    }

    fn template(&self, v: &Spanned<String>) -> Result<Template, ConfigError> {
        let t = Template {
            segments: Vec::new(),
            span: v.span(),
            text_len: v.get_ref().len(),
        };
        let segments = reference::parse(v.get_ref()).map_err(|e| {
            ConfigError::new(ConfigErrorKind::Reference, e.to_string())
                .at(Some(self.location_in(&t, e.span.start)))
                .hint("write `$$` for a literal `$`")
        })?;
        Ok(Template { segments, ..t })
    }

    /// Expands an env-only template (backend settings are read before any backend exists).
    fn expand_env_only(
        &self,
        t: &Template,
        env: &VarLookup<'_>,
        key: &str,
    ) -> Result<String, ConfigError> {
        let mut out = String::new();
        for s in &t.segments {
            match &s.kind {
                SegmentKind::Literal(l) => out.push_str(l),
                SegmentKind::Env { var, default } => match env(var) {
                    Ok(Some(v)) => out.push_str(&v),
                    Ok(None) => match default {
                        Some(d) => out.push_str(d),
                        None => {
                            return Err(
                                missing_var(var, key).at(Some(self.location_in(t, s.span.start)))
                            );
                        }
                    },
                    Err(NotUnicode) => {
                        return Err(ConfigError::new(
                            ConfigErrorKind::Reference,
                            format!("{key}: environment variable {var} is not valid UTF-8"),
                        )
                        .at(Some(self.location_in(t, s.span.start))));
                    }
                },
                SegmentKind::Cred { .. } => {
                    return Err(ConfigError::new(
                        ConfigErrorKind::Reference,
                        format!("{key}: credential references are not allowed here"),
                    )
                    .at(Some(self.location_in(t, s.span.start)))
                    .hint("use a literal path or ${VAR}"));
                }
            }
        }
        Ok(out)
    }

    fn setting_path(
        &self,
        v: Option<Spanned<String>>,
        env: &VarLookup<'_>,
        key: &str,
    ) -> Result<Option<PathBuf>, ConfigError> {
        let Some(v) = v else { return Ok(None) };
        let t = self.template(&v)?;
        let p = PathBuf::from(self.expand_env_only(&t, env, key)?);
        Ok(Some(if p.is_relative() {
            self.base_dir().join(p)
        } else {
            p
        }))
    }

    fn backend_spec(&self, v: &Spanned<toml::Value>) -> Result<BackendSpec, ConfigError> {
        let err = |msg: String| {
            ConfigError::new(
                ConfigErrorKind::Invalid,
                format!("credentials.backend: {msg}"),
            )
            .at(Some(self.location(v.span().start)))
        };
        let text = match v.get_ref() {
            toml::Value::String(s) => s.clone(),
            toml::Value::Array(a) => {
                let names: Option<Vec<&str>> = a.iter().map(|x| x.as_str()).collect();
                match names {
                    Some(n) if !n.is_empty() => n.join(","),
                    _ => {
                        return Err(err(
                            "expected a list of backend names, e.g. [\"env\", \"file\"]".into(),
                        ));
                    }
                }
            }
            _ => {
                return Err(err(
                    "expected a backend name or a list of them, e.g. \"file\" or [\"env\", \"file\"]".into(),
                ));
            }
        };
        text.parse::<BackendSpec>().map_err(err)
    }

    fn credentials_section(
        &self,
        c: RawCredentials,
        env: &VarLookup<'_>,
    ) -> Result<CredentialsSection, ConfigError> {
        let mut settings = BackendSettings::default();
        if let Some(f) = c.file {
            settings.file = FileSettings {
                path: self.setting_path(f.path, env, "credentials.file.path")?,
                identity: self.setting_path(f.identity, env, "credentials.file.identity")?,
                passphrase_command: f.passphrase_command,
            };
        }
        if let Some(d) = c.dir {
            settings.dir = DirSettings {
                root: self.setting_path(d.root, env, "credentials.dir.root")?,
            };
        }
        #[cfg(feature = "vault")]
        if let Some(v) = &c.vault {
            let mut vs: siteport_creds::VaultSettings = backend_table(v, "vault")?;
            for p in [
                &mut vs.ca_cert,
                &mut vs.token_file,
                &mut vs.secret_id_file,
                &mut vs.jwt_file,
            ]
            .into_iter()
            .flatten()
            {
                if p.is_relative() {
                    *p = self.base_dir().join(&*p);
                }
            }
            settings.vault = vs;
        }
        #[cfg(feature = "keychain")]
        if let Some(v) = &c.keychain {
            settings.keychain = backend_table(v, "keychain")?;
        }
        let mut other = BTreeMap::new();
        for (k, v) in [
            ("vault", c.vault),
            ("aws", c.aws),
            ("gcp", c.gcp),
            ("azure", c.azure),
            ("keychain", c.keychain),
        ] {
            if let Some(v) = v {
                other.insert(k.to_owned(), v);
            }
        }
        if let Some(t) = other.get("aws") {
            settings.aws = t.clone().try_into().map_err(|e: toml::de::Error| {
                ConfigError::new(
                    ConfigErrorKind::Invalid,
                    format!("credentials.aws: {}", e.message().trim()),
                )
            })?;
        }
        if let Some(t) = other.get("gcp") {
            let mut gs: siteport_creds::GcpSettings =
                t.clone().try_into().map_err(|e: toml::de::Error| {
                    ConfigError::new(
                        ConfigErrorKind::Invalid,
                        format!("credentials.gcp: {}", e.message().trim()),
                    )
                })?;
            if let Some(p) = gs.credentials_file.as_mut().filter(|p| p.is_relative()) {
                *p = self.base_dir().join(&*p);
            }
            settings.gcp = gs;
        }
        if let Some(t) = other.get("azure") {
            let mut az: siteport_creds::AzureSettings =
                t.clone().try_into().map_err(|e: toml::de::Error| {
                    ConfigError::new(
                        ConfigErrorKind::Invalid,
                        format!("credentials.azure: {}", e.message().trim()),
                    )
                })?;
            if let Some(p) = az.ca_cert.as_mut().filter(|p| p.is_relative()) {
                *p = self.base_dir().join(&*p);
            }
            settings.azure = az;
        }
        let backend = match c.backend {
            None => None,
            Some(v) => Some(self.backend_spec(&v)?),
        };
        Ok(CredentialsSection {
            backend,
            settings,
            other,
        })
    }

    fn site_config(&self, r: RawSite) -> Result<SiteConfig, ConfigError> {
        let name = r.name.get_ref().trim().to_owned();
        let name_span = r.name.span();
        let at = |span: Range<usize>| Some(self.location(span.start));
        if name.is_empty() || name.chars().any(|c| c.is_control() || c == '/') {
            return Err(ConfigError::new(
                ConfigErrorKind::Invalid,
                "site name must be non-empty, without '/' or control characters",
            )
            .at(at(name_span)));
        }
        let mut templates = BTreeMap::new();
        let mut text = |key: &'static str,
                        v: &Option<Spanned<String>>|
         -> Result<Option<String>, ConfigError> {
            let Some(v) = v else { return Ok(None) };
            let t = self.template(v)?;
            // A password must never travel through a field that is logged or displayed.
            let password_ref = t.segments.iter().find(|s| {
                matches!(
                    s.kind,
                    SegmentKind::Cred {
                        field: CredField::Password,
                        ..
                    }
                )
            });
            if let Some(s) = password_ref.filter(|_| key != "password") {
                return Err(ConfigError::new(
                    ConfigErrorKind::Reference,
                    format!(
                        "site '{name}': a credential's password may only be used in \
                         `password`, not in `{key}`"
                    ),
                )
                .at(Some(self.location_in(&t, s.span.start)))
                .hint("pick another field: ${cred:NAME#username}, #host or #port"));
            }
            templates.insert(key, t);
            Ok(Some(v.get_ref().clone()))
        };
        let host = text("host", &r.host)?;
        let username = text("username", &r.user)?;
        let password = match &r.password {
            None => None,
            Some(p) => match p.get_ref() {
                toml::Value::String(v) => {
                    text("password", &Some(Spanned::new(p.span(), v.clone())))?
                }
                other => {
                    return Err(ConfigError::new(
                        ConfigErrorKind::Syntax,
                        format!(
                            "site '{name}': password must be a string, not {} (value not shown)",
                            other.type_str()
                        ),
                    )
                    .at(at(p.span()))
                    .hint("quote it, or better, move it into the credential store with `siteport migrate`"));
                }
            },
        };
        let local = text("local", &r.local)?;
        let remote = text("remote", &r.remote)?;
        let ca_file = text("ca_file", &r.ca_file)?;
        let fingerprint = text("fingerprint", &r.fingerprint)?;
        let port = match &r.port {
            None => None,
            Some(p) => match p.get_ref() {
                RawPort::Number(n) => {
                    if !(1..=65535).contains(n) {
                        return Err(ConfigError::new(
                            ConfigErrorKind::Invalid,
                            format!("site '{name}': port {n} is not between 1 and 65535"),
                        )
                        .at(at(p.span())));
                    }
                    // Kept as a literal template too: resolve_site reads every field from there.
                    text("port", &Some(Spanned::new(p.span(), n.to_string())))?
                }
                RawPort::Text(s) => {
                    let v = text("port", &Some(Spanned::new(p.span(), s.clone())))?;
                    // Without references the value is known now: check it at load time.
                    if !reference::has_references(s) {
                        siteport_creds::parse_port(&s.replace("$$", "$")).map_err(|e| {
                            ConfigError::new(
                                ConfigErrorKind::Invalid,
                                format!("site '{name}': {e}"),
                            )
                            .at(at(p.span()))
                        })?;
                    }
                    v
                }
            },
        };
        let mut tls = match &r.tls {
            None => TlsMode::default(),
            Some(t) => match t.get_ref().as_str() {
                "none" => TlsMode::None,
                "explicit" => TlsMode::Explicit,
                "implicit" => TlsMode::Implicit,
                other => {
                    return Err(ConfigError::new(
                        ConfigErrorKind::Invalid,
                        format!(
                            "site '{name}': tls = \"{}\" is not one of none, explicit, implicit",
                            other.escape_debug()
                        ),
                    )
                    .at(at(t.span())));
                }
            },
        };
        let credential = match &r.credential {
            None => None,
            Some(c) => Some(CredentialName::new(c.get_ref()).map_err(|e| {
                ConfigError::new(
                    ConfigErrorKind::Invalid,
                    format!("site '{name}': credential: {e}"),
                )
                .at(at(c.span()))
            })?),
        };
        if let (Some(_), Some(p)) = (&credential, &r.password) {
            return Err(ConfigError::new(
                ConfigErrorKind::Invalid,
                format!("site '{name}' has both `credential` and `password`"),
            )
            .at(at(p.span()))
            .hint("remove `password`: the credential already supplies it"));
        }
        // Legacy `url = "ftp://user:pass@host:port/path"`: its parts fill the site's fields.
        let mut url_password = false;
        let (mut host, mut port, mut username, mut password, mut remote) =
            (host, port, username, password, remote);
        if let Some(u) = &r.url {
            let parts = self.url_parts(&name, u)?;
            let fields: [(&str, bool); 5] = [
                ("host", r.host.is_some()),
                ("port", r.port.is_some()),
                ("user", r.user.is_some()),
                ("password", r.password.is_some()),
                ("remote", r.remote.is_some()),
            ];
            if let Some((key, _)) = fields.iter().find(|(_, set)| *set) {
                return Err(ConfigError::new(
                    ConfigErrorKind::Invalid,
                    format!("site '{name}' has both `url` and `{key}`"),
                )
                .at(at(u.span()))
                .hint(format!("remove `{key}` or take that part out of the url")));
            }
            if parts.implicit_tls {
                match &r.tls {
                    Some(t) if tls != TlsMode::Implicit => {
                        return Err(ConfigError::new(
                            ConfigErrorKind::Invalid,
                            format!("site '{name}': an ftps:// url means implicit TLS, but tls = \"{tls}\""),
                        )
                        .at(at(t.span()))
                        .hint("write ftp:// in the url, or remove `tls`"));
                    }
                    _ => tls = TlsMode::Implicit,
                }
            }
            let literal = |key: &'static str, text: String| {
                let t = Template {
                    segments: vec![Segment {
                        span: 0..text.len(),
                        kind: SegmentKind::Literal(text.clone()),
                    }],
                    span: u.span(),
                    // Not the url's length: locations then point at the url's start.
                    text_len: 0,
                };
                (key, t, text)
            };
            let mut add = |key: &'static str, text: Option<String>| {
                text.map(|text| {
                    let (k, t, text) = literal(key, text);
                    templates.insert(k, t);
                    text
                })
            };
            host = add("host", Some(parts.host));
            port = add("port", parts.port.map(|p| p.to_string()));
            username = add("username", parts.username);
            remote = add("remote", parts.path);
            if let Some(pw) = parts.password {
                if let Some(c) = &r.credential {
                    return Err(ConfigError::new(
                        ConfigErrorKind::Invalid,
                        format!("site '{name}' has both `credential` and a password in `url`"),
                    )
                    .at(at(c.span()))
                    .hint("take `user:password@` out of the url: the credential supplies it"));
                }
                url_password = true;
                password = add("password", Some(pw.expose_secret().to_owned()));
            }
        }
        let Some(local) = local else {
            return Err(ConfigError::new(
                ConfigErrorKind::Invalid,
                format!("site '{name}' has no `local` directory"),
            )
            .at(at(name_span))
            .hint("add `local = \"public\"` (relative to the config file)"));
        };
        let max_connections = match &r.max_connections {
            None => 4,
            Some(m) => {
                let n = *m.get_ref();
                if !(1..=MAX_CONNECTIONS as i64).contains(&n) {
                    return Err(ConfigError::new(
                        ConfigErrorKind::Invalid,
                        format!(
                            "site '{name}': max_connections = {n} is not between 1 and {MAX_CONNECTIONS}"
                        ),
                    )
                    .at(at(m.span())));
                }
                n as usize
            }
        };
        Ok(SiteConfig {
            name,
            host,
            port,
            tls,
            username,
            password: password.map(SecretString::from),
            credential,
            local,
            remote: remote.unwrap_or_else(|| "/".to_owned()),
            exclude: r.exclude,
            delete: r.delete,
            max_connections,
            ca_file,
            fingerprint,
            insecure: r.insecure,
            passive: r.passive.unwrap_or(true),
            name_span,
            credential_span: r.credential.as_ref().map(|c| c.span()),
            templates,
            url_password,
        })
    }

    /// Splits a legacy `ftp[s]://[user[:password]@]host[:port][/path]` url. User, password
    /// and path are percent-decoded. Errors never show the url (it may hold a password).
    fn url_parts(&self, site: &str, u: &Spanned<String>) -> Result<UrlParts, ConfigError> {
        let err = |what: &str| {
            ConfigError::new(
                ConfigErrorKind::Invalid,
                format!("site '{site}': url: {what} (value not shown)"),
            )
            .at(Some(self.location(u.span().start)))
            .hint("write it as ftp://user@host:21/path, or use host, port, user and remote keys")
        };
        let text = u.get_ref();
        if reference::has_references(text) {
            return Err(err("references (${…}) are not supported inside a url"));
        }
        let text = text.replace("$$", "$");
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| err("expected ftp://… or ftps://…"))?;
        let implicit_tls = match scheme.to_ascii_lowercase().as_str() {
            "ftp" => false,
            "ftps" => true,
            _ => return Err(err("the scheme must be ftp or ftps")),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], Some(&rest[i..])),
            None => (rest, None),
        };
        let (userinfo, hostport) = match authority.rfind('@') {
            Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
            None => (None, authority),
        };
        let decode = |s: &str, what: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| {
                    err(&format!(
                        "the {what} is not valid UTF-8 once percent-decoded"
                    ))
                })
        };
        let (username, password) = match userinfo {
            None => (None, None),
            Some(ui) => {
                let (u, p) = match ui.split_once(':') {
                    Some((u, p)) => (u, Some(p)),
                    None => (ui, None),
                };
                let user = Some(decode(u, "user name")?).filter(|u| !u.is_empty());
                let pass = match p {
                    Some(p) => Some(SecretString::from(decode(p, "password")?)),
                    None => None,
                };
                (user, pass)
            }
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| err("unclosed [ in the host"))?;
            (h, after.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        if host.is_empty() {
            return Err(err("no host"));
        }
        let port = match port {
            None | Some("") => None,
            Some(p) => Some(siteport_creds::parse_port(p).map_err(|e| err(&e.to_string()))?),
        };
        let path = match path {
            None | Some("/") => None,
            Some(p) => Some(decode(p, "path")?),
        };
        Ok(UrlParts {
            host: host.to_owned(),
            port,
            username,
            password,
            path,
            implicit_tls,
        })
    }

    // ---- resolution -------------------------------------------------------------------

    /// The site called `name`.
    pub fn site(&self, name: &str) -> Option<&SiteConfig> {
        self.sites.iter().find(|s| s.name == name)
    }

    /// Expands every reference of site `name`: variables through `env`, credentials through
    /// `backend`. `credential = "NAME"` supplies username and password, and host and port
    /// when the site has none.
    pub async fn resolve_site(
        &self,
        name: &str,
        backend: &dyn CredentialBackend,
        env: &VarLookup<'_>,
    ) -> Result<ResolvedSite, ConfigError> {
        let site = self.site(name).ok_or_else(|| {
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
        })?;
        let cred = match &site.credential {
            None => None,
            Some(c) => Some(backend.get(c).await.map_err(|e| {
                let loc = site
                    .credential_span
                    .as_ref()
                    .map(|s| self.location(s.start));
                credential_error(&site.name, c, backend, e).at(loc)
            })?),
        };
        let field = |key: &'static str| site.templates.get(key);
        let expand = async |key: &'static str| -> Result<Option<SecretString>, ConfigError> {
            let Some(t) = field(key) else { return Ok(None) };
            match reference::expand(&t.segments, env, backend).await {
                Ok(x) => Ok(Some(x.value)),
                Err(e) => Err(self.expand_error(site, key, t, backend, e)),
            }
        };
        let plain = async |key: &'static str| -> Result<Option<String>, ConfigError> {
            Ok(expand(key).await?.map(|s| s.expose_secret().to_owned()))
        };

        let host = match plain("host").await? {
            Some(h) => h,
            None => match cred.as_ref().and_then(|c| c.host()) {
                Some(h) => h.to_owned(),
                None => {
                    return Err(ConfigError::new(
                        ConfigErrorKind::Invalid,
                        format!("site '{}' has no host", site.name),
                    )
                    .at(Some(self.location(site.name_span.start)))
                    .hint("add `host = \"ftp.example.com\"` to the site, or store a host with the credential (`siteport credential add NAME --host H`)"));
                }
            },
        };
        let port = match plain("port").await? {
            Some(p) => {
                let t = field("port").map(|t| self.location(t.span.start));
                siteport_creds::parse_port(&p).map_err(|e| {
                    ConfigError::new(
                        ConfigErrorKind::Invalid,
                        format!("site '{}': {e}", site.name),
                    )
                    .at(t)
                })?
            }
            None => cred
                .as_ref()
                .and_then(|c| c.port())
                .unwrap_or(site.tls.default_port()),
        };
        let username = match plain("username").await? {
            Some(u) => u,
            None => match &cred {
                Some(c) => c.username().to_owned(),
                None => {
                    return Err(ConfigError::new(
                        ConfigErrorKind::Invalid,
                        format!("site '{}' has no username", site.name),
                    )
                    .at(Some(self.location(site.name_span.start)))
                    .hint(format!(
                        "add `credential = \"{0}\"` to the site and store it with `siteport credential add {0}`",
                        suggested_name(&site.name)
                    )));
                }
            },
        };
        let password = match expand("password").await? {
            Some(p) => p,
            None => match &cred {
                Some(c) => c.password().clone(),
                None => {
                    return Err(ConfigError::new(
                        ConfigErrorKind::Credential,
                        format!("site '{}' has no password", site.name),
                    )
                    .at(Some(self.location(site.name_span.start)))
                    .hint(format!(
                        "add `credential = \"{0}\"` to the site and store it with `siteport credential add {0}`",
                        suggested_name(&site.name)
                    )));
                }
            },
        };
        let base = self.base_dir();
        let local = base.join(plain("local").await?.unwrap_or_default());
        let remote = plain("remote").await?.unwrap_or_else(|| "/".to_owned());
        let ca_file = plain("ca_file").await?.map(|p| base.join(p));
        let fingerprint = plain("fingerprint").await?;
        Ok(ResolvedSite {
            name: site.name.clone(),
            host,
            port,
            tls: site.tls,
            username,
            password,
            credential: site.credential.clone(),
            local,
            remote,
            exclude: site.exclude.clone(),
            delete: site.delete,
            max_connections: site.max_connections,
            ca_file,
            fingerprint,
            insecure: site.insecure,
            passive: site.passive,
        })
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

/// The pieces of a legacy site url.
struct UrlParts {
    host: String,
    port: Option<u16>,
    username: Option<String>,
    password: Option<SecretString>,
    path: Option<String>,
    implicit_tls: bool,
}

fn missing_var(var: &str, what: &str) -> ConfigError {
    ConfigError::new(
        ConfigErrorKind::Reference,
        format!("{what}: environment variable {var} is not set"),
    )
    .hint(format!(
        "export {var}=…, or give a default with ${{{var}:-value}}"
    ))
}

fn credential_error(
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

#[cfg(test)]
mod tests;

/// A `[credentials.<backend>]` table read into that backend's settings type.
#[cfg(any(feature = "vault", feature = "keychain"))]
fn backend_table<T: serde::de::DeserializeOwned>(
    t: &toml::Table,
    backend: &str,
) -> Result<T, ConfigError> {
    t.clone().try_into().map_err(|e: toml::de::Error| {
        ConfigError::new(
            ConfigErrorKind::Syntax,
            format!("credentials.{backend}: {}", e.message().trim()),
        )
        .hint(format!(
            "see docs/backends.md for the keys of [credentials.{backend}]"
        ))
    })
}
