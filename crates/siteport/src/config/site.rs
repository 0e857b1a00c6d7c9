//! One `[[site]]`: what it holds as written ([`SiteConfig`], references unexpanded) and how a
//! raw table is checked into one, each concern (name, strings and their references, password,
//! port, TLS, credential, limits) in its own function, each error at file:line:column.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::time::Duration;

use secrecy::SecretString;
use siteport_creds::CredentialName;
use siteport_creds::reference::{self, CredField, SegmentKind};
use siteport_sync::{DEFAULT_LOCK_TIMEOUT, MaxDelete};
use toml::Spanned;

use super::error::{ConfigError, ConfigErrorKind, Location};
use super::protocol::{SftpKeys, SiteProtocol};
use super::raw::{RawPort, RawSite};
use super::template::Template;
use super::{Config, MAX_CONNECTIONS, TlsMode};

/// One `[[site]]`, as written (references not yet expanded).
#[derive(Clone)]
pub struct SiteConfig {
    /// `name`.
    pub name: String,
    /// `host`, unexpanded.
    pub host: Option<String>,
    /// `port`, unexpanded (an integer in the file is kept as its text).
    pub port: Option<String>,
    /// `protocol`, default ftp.
    pub protocol: SiteProtocol,
    /// The SFTP-only keys (`host_key`, `known_hosts`, `insecure_host_key`, `file_mode`,
    /// `dir_mode`).
    pub sftp: SftpKeys,
    /// `tls`, default explicit (FTP only).
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
    /// `lock_timeout`: a site lock older than this is taken over (default 1 h).
    pub lock_timeout: Duration,
    /// `max_delete`: how many remote files one export may delete (default: the guard's).
    pub max_delete: MaxDelete,
    /// `state_dir`: where the deploy state and the lock live (default `.siteport` in
    /// `remote`); its form is checked, its place against `remote` once that is resolved.
    pub state_dir: Option<String>,
    /// `switch`: when an export's changes go live (default: all at once, in a burst).
    pub switch: siteport_sync::Switch,
    /// `ca_file`, unexpanded.
    pub ca_file: Option<String>,
    /// `fingerprint` (SHA-256 pin), unexpanded.
    pub fingerprint: Option<String>,
    /// `insecure`: skip certificate verification.
    pub insecure: bool,
    /// `passive`, default true.
    pub passive: bool,
    pub(super) name_span: Range<usize>,
    pub(super) credential_span: Option<Range<usize>>,
    pub(super) state_dir_span: Option<Range<usize>>,
    pub(super) templates: BTreeMap<&'static str, Template>,
    /// The password of a legacy `url`, kept a secret from the moment it is split out of it.
    pub(super) url_password: Option<SecretString>,
}

impl fmt::Debug for SiteConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SiteConfig")
            .field("name", &self.name)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("protocol", &self.protocol)
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
        self.url_password.is_some()
            || self.templates.get("password").is_some_and(|t| {
                !t.segments.is_empty()
                    && t.segments
                        .iter()
                        .all(|s| matches!(s.kind, SegmentKind::Literal(_)))
            })
    }

    /// Whether the password comes from a legacy `url = "ftp://user:pass@host"` (a hard-coded
    /// secret `siteport migrate` moves into a backend).
    pub fn password_in_url(&self) -> bool {
        self.url_password.is_some()
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

/// A site's string fields as written, with the parsed template of each, while the site is
/// checked (the legacy `url` may still fill some of them in).
#[derive(Default)]
pub(super) struct SiteFields {
    pub(super) host: Option<String>,
    pub(super) port: Option<String>,
    pub(super) username: Option<String>,
    pub(super) password: Option<SecretString>,
    pub(super) local: Option<String>,
    pub(super) remote: Option<String>,
    pub(super) ca_file: Option<String>,
    pub(super) fingerprint: Option<String>,
    pub(super) templates: BTreeMap<&'static str, Template>,
    pub(super) url_password: Option<SecretString>,
}

impl Config {
    /// Checks one raw `[[site]]` table.
    pub(super) fn site_config(&self, r: RawSite) -> Result<SiteConfig, ConfigError> {
        let name = self.site_name(&r.name)?;
        let name_span = r.name.span();
        let mut f = SiteFields::default();
        f.host = self.site_text(&name, &mut f.templates, "host", r.host.as_ref())?;
        f.username = self.site_text(&name, &mut f.templates, "username", r.user.as_ref())?;
        f.password = self.site_password(&name, &mut f.templates, r.password.as_ref())?;
        f.local = self.site_text(&name, &mut f.templates, "local", r.local.as_ref())?;
        f.remote = self.site_text(&name, &mut f.templates, "remote", r.remote.as_ref())?;
        f.ca_file = self.site_text(&name, &mut f.templates, "ca_file", r.ca_file.as_ref())?;
        f.fingerprint = self.site_text(
            &name,
            &mut f.templates,
            "fingerprint",
            r.fingerprint.as_ref(),
        )?;
        f.port = self.site_port(&name, &mut f.templates, r.port.as_ref())?;
        let mut tls = self.site_tls(&name, r.tls.as_ref())?;
        let mut protocol = self.site_protocol(&name, &r)?;
        let credential = self.site_credential(&name, &r)?;
        if let Some(u) = &r.url {
            self.apply_url(&name, u, &r, &mut f, (&mut tls, &mut protocol))?;
        }
        let sftp = self.site_protocol_keys(&name, protocol, &r)?;
        let Some(local) = f.local else {
            return Err(ConfigError::new(
                ConfigErrorKind::Invalid,
                format!("site '{name}' has no `local` directory"),
            )
            .at(Some(self.location(name_span.start)))
            .hint("add `local = \"public\"` (relative to the config file)"));
        };
        let max_connections = self.site_max_connections(&name, r.max_connections.as_ref())?;
        let lock_timeout = self.site_lock_timeout(&name, r.lock_timeout.as_ref())?;
        let max_delete = self.site_max_delete(&name, r.max_delete.as_ref())?;
        let state_dir = self.site_state_dir(&name, r.state_dir.as_ref())?;
        let switch = self.site_switch(&name, r.switch.as_ref())?;
        let exclude = self.site_exclude(&name, &r.exclude)?;
        Ok(SiteConfig {
            name,
            host: f.host,
            port: f.port,
            protocol,
            sftp,
            tls,
            username: f.username,
            password: f.password,
            credential,
            local,
            remote: f.remote.unwrap_or_else(|| "/".to_owned()),
            exclude,
            delete: r.delete,
            max_connections,
            lock_timeout,
            max_delete,
            state_dir,
            switch,
            ca_file: f.ca_file,
            fingerprint: f.fingerprint,
            insecure: r.insecure.as_ref().is_some_and(|v| *v.get_ref()),
            passive: r.passive.as_ref().is_none_or(|v| *v.get_ref()),
            name_span,
            credential_span: r.credential.as_ref().map(|c| c.span()),
            state_dir_span: r.state_dir.as_ref().map(|v| v.span()),
            templates: f.templates,
            url_password: f.url_password,
        })
    }

    /// Where `span` starts in the file.
    pub(super) fn at(&self, span: Range<usize>) -> Option<Location> {
        Some(self.location(span.start))
    }

    /// `exclude`: each pattern compiled as the run compiles it, a bad one at its place.
    fn site_exclude(
        &self,
        name: &str,
        patterns: &[Spanned<String>],
    ) -> Result<Vec<String>, ConfigError> {
        for p in patterns {
            if let Err(e) = siteport_sync::Excludes::new(std::slice::from_ref(p.get_ref())) {
                return Err(ConfigError::new(
                    ConfigErrorKind::Invalid,
                    format!("site '{name}': exclude: {}", e.detail()),
                )
                .at(Some(self.location(p.span().start)))
                .hint("fix the glob pattern (`*`, `**`, `?`, `[abc]`, `{a,b}`; `\\` escapes)"));
            }
        }
        Ok(patterns.iter().map(|p| p.get_ref().clone()).collect())
    }

    fn site_name(&self, v: &Spanned<String>) -> Result<String, ConfigError> {
        let name = v.get_ref().trim().to_owned();
        if name.is_empty() || name.chars().any(|c| c.is_control() || c == '/') {
            return Err(ConfigError::new(
                ConfigErrorKind::Invalid,
                "site name must be non-empty, without '/' or control characters",
            )
            .at(self.at(v.span())));
        }
        Ok(name)
    }

    /// Parses the string field `key` into `templates` and returns it as written.
    fn site_text(
        &self,
        name: &str,
        templates: &mut BTreeMap<&'static str, Template>,
        key: &'static str,
        v: Option<&Spanned<String>>,
    ) -> Result<Option<String>, ConfigError> {
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
    }

    /// `password`: a string (a literal is a secret from here on), never shown when mistyped.
    fn site_password(
        &self,
        name: &str,
        templates: &mut BTreeMap<&'static str, Template>,
        p: Option<&Spanned<toml::Value>>,
    ) -> Result<Option<SecretString>, ConfigError> {
        let Some(p) = p else { return Ok(None) };
        match p.get_ref() {
            toml::Value::String(v) => {
                let v = Spanned::new(p.span(), v.clone());
                Ok(self
                    .site_text(name, templates, "password", Some(&v))?
                    .map(SecretString::from))
            }
            other => Err(ConfigError::new(
                ConfigErrorKind::Syntax,
                format!(
                    "site '{name}': password must be a string, not {} (value not shown)",
                    other.type_str()
                ),
            )
            .at(self.at(p.span()))
            .hint(
                "quote it, or better, move it into the credential store with `siteport migrate`",
            )),
        }
    }

    /// `port`: an integer in range, or a string (checked now when it has no references).
    fn site_port(
        &self,
        name: &str,
        templates: &mut BTreeMap<&'static str, Template>,
        p: Option<&Spanned<RawPort>>,
    ) -> Result<Option<String>, ConfigError> {
        let Some(p) = p else { return Ok(None) };
        match p.get_ref() {
            RawPort::Number(n) => {
                if !(1..=65535).contains(n) {
                    return Err(ConfigError::new(
                        ConfigErrorKind::Invalid,
                        format!("site '{name}': port {n} is not between 1 and 65535"),
                    )
                    .at(self.at(p.span())));
                }
                // Kept as a literal template too: resolve_site reads every field from there.
                let v = Spanned::new(p.span(), n.to_string());
                self.site_text(name, templates, "port", Some(&v))
            }
            RawPort::Text(s) => {
                let v = Spanned::new(p.span(), s.clone());
                let v = self.site_text(name, templates, "port", Some(&v))?;
                // Without references the value is known now: check it at load time.
                if !reference::has_references(s) {
                    siteport_creds::parse_port(&s.replace("$$", "$")).map_err(|e| {
                        ConfigError::new(ConfigErrorKind::Invalid, format!("site '{name}': {e}"))
                            .at(self.at(p.span()))
                    })?;
                }
                Ok(v)
            }
        }
    }

    fn site_tls(&self, name: &str, t: Option<&Spanned<String>>) -> Result<TlsMode, ConfigError> {
        let Some(t) = t else {
            return Ok(TlsMode::default());
        };
        match t.get_ref().as_str() {
            "none" => Ok(TlsMode::None),
            "explicit" => Ok(TlsMode::Explicit),
            "implicit" => Ok(TlsMode::Implicit),
            other => Err(ConfigError::new(
                ConfigErrorKind::Invalid,
                format!(
                    "site '{name}': tls = \"{}\" is not one of none, explicit, implicit",
                    other.escape_debug()
                ),
            )
            .at(self.at(t.span()))),
        }
    }

    /// `credential = "NAME"`, which excludes `password`.
    fn site_credential(
        &self,
        name: &str,
        r: &RawSite,
    ) -> Result<Option<CredentialName>, ConfigError> {
        let Some(c) = &r.credential else {
            return Ok(None);
        };
        let credential = CredentialName::new(c.get_ref()).map_err(|e| {
            ConfigError::new(
                ConfigErrorKind::Invalid,
                format!("site '{name}': credential: {e}"),
            )
            .at(self.at(c.span()))
        })?;
        if let Some(p) = &r.password {
            return Err(ConfigError::new(
                ConfigErrorKind::Invalid,
                format!("site '{name}' has both `credential` and `password`"),
            )
            .at(self.at(p.span()))
            .hint("remove `password`: the credential already supplies it"));
        }
        Ok(Some(credential))
    }

    fn site_max_connections(
        &self,
        name: &str,
        m: Option<&Spanned<i64>>,
    ) -> Result<usize, ConfigError> {
        let Some(m) = m else { return Ok(4) };
        let n = *m.get_ref();
        if !(1..=MAX_CONNECTIONS as i64).contains(&n) {
            return Err(ConfigError::new(
                ConfigErrorKind::Invalid,
                format!(
                    "site '{name}': max_connections = {n} is not between 1 and {MAX_CONNECTIONS}"
                ),
            )
            .at(self.at(m.span())));
        }
        Ok(n as usize)
    }

    fn site_lock_timeout(
        &self,
        name: &str,
        v: Option<&Spanned<String>>,
    ) -> Result<Duration, ConfigError> {
        let Some(v) = v else {
            return Ok(DEFAULT_LOCK_TIMEOUT);
        };
        siteport_sync::parse_duration(v.get_ref()).map_err(|e| {
            ConfigError::new(
                ConfigErrorKind::Invalid,
                format!("site '{name}': lock_timeout: {e}"),
            )
            .at(self.at(v.span()))
            .hint("write a duration such as \"30m\" or \"1h\"")
        })
    }

    /// `state_dir`: a remote path, relative to `remote` or absolute on the server; no `..`
    /// (a relative one must not climb out of `remote`, an absolute one is written where meant).
    fn site_state_dir(
        &self,
        name: &str,
        v: Option<&Spanned<String>>,
    ) -> Result<Option<String>, ConfigError> {
        let Some(v) = v else { return Ok(None) };
        siteport_sync::check_state_dir_setting(v.get_ref()).map_err(|why| {
            ConfigError::new(
                ConfigErrorKind::Invalid,
                format!("site '{name}': state_dir is refused: {why}"),
            )
            .at(self.at(v.span()))
            .hint(
                "write a directory relative to `remote` (\".siteport\") or an absolute path \
                 on the server outside the web root (\"/private/siteport/web\"), without `..`",
            )
        })?;
        Ok(Some(v.get_ref().trim().to_owned()))
    }

    /// `switch`: `"burst"` or `"per-file"`.
    fn site_switch(
        &self,
        name: &str,
        v: Option<&Spanned<toml::Value>>,
    ) -> Result<siteport_sync::Switch, ConfigError> {
        let Some(v) = v else {
            return Ok(siteport_sync::Switch::default());
        };
        let parsed = match v.get_ref() {
            toml::Value::String(s) => s.parse(),
            other => Err(format!("a {} is not a switch mode", other.type_str())),
        };
        parsed.map_err(|e| {
            ConfigError::new(
                ConfigErrorKind::Invalid,
                format!("site '{name}': switch: {e}"),
            )
            .at(self.at(v.span()))
            .hint(
                "write switch = \"burst\" (every file uploaded first, then all renamed into \
                 place at once; the default) or switch = \"per-file\" (each file live as it \
                 arrives)",
            )
        })
    }

    fn site_max_delete(
        &self,
        name: &str,
        v: Option<&Spanned<toml::Value>>,
    ) -> Result<MaxDelete, ConfigError> {
        let Some(v) = v else {
            return Ok(MaxDelete::Default);
        };
        let parsed = match v.get_ref() {
            toml::Value::Integer(n) => usize::try_from(*n)
                .map(MaxDelete::Count)
                .map_err(|_| format!("{n} is not a count")),
            toml::Value::String(s) => s.parse(),
            _ => Err("write a count (20) or a percentage (\"30%\")".to_owned()),
        };
        parsed.map_err(|e| {
            ConfigError::new(
                ConfigErrorKind::Invalid,
                format!("site '{name}': max_delete: {e}"),
            )
            .at(self.at(v.span()))
            .hint("write a count such as 20 or a percentage such as \"30%\"")
        })
    }
}
