//! `siteport migrate`: moves hard-coded FTP passwords out of a config file into a credential
//! backend and rewrites the config to `credential = "NAME"` (SPEC §6). Also imports sites and
//! passwords from FileZilla's `sitemanager.xml` and logins from `~/.netrc`.
//!
//! Safety rules, in the order the code follows them:
//! 1. Everything is planned first (detection, names, the new config text, validated by the
//!    real loader) without touching the backend or any file.
//! 2. A read-only backend is refused before anything is stored.
//! 3. Credentials are stored one by one, never replacing a different one (a taken name gets a
//!    `-2`, `-3`, … suffix; an identical one is reused, which makes a re-run after a failure
//!    safe). A failure reports what was stored and leaves the config untouched.
//! 4. Only then is the config replaced atomically, after a 0600 backup of the old one.
//!
//! Secrets never reach the report, the diff (masked as `****`) or an error.

use std::collections::BTreeSet;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use siteport_creds::reference::{self, SegmentKind};
use siteport_creds::{Credential, CredentialBackend, CredentialName, ErrorKind, StoreMode};
use toml_edit::{DocumentMut, Item, Key, Table, Value};

use crate::config::{Config, ConfigError, suggested_name};
use crate::logging::register_secret;

mod filezilla;
mod netrc;

pub use filezilla::{FileZillaServer, parse_sitemanager};
pub use netrc::{NetrcEntry, parse_netrc};

/// What `migrate` may do.
#[derive(Debug, Clone, Copy, Default)]
pub struct MigrateOptions {
    /// Plan and show the diff, touch nothing (no file, no backend write).
    pub dry_run: bool,
    /// Also move `password = "${VAR}"` values: copy the variable's current value into the
    /// backend and rewrite the site to `credential = "NAME"`.
    pub from_env: bool,
}

/// How a site's password is given in the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Finding {
    /// `password = "literal"`.
    HardCoded,
    /// `url = "ftp://user:pass@host"`.
    UrlUserinfo,
    /// `password = "${VAR}"`: an environment reference.
    EnvReference,
    /// `credential = "NAME"` or `${cred:…}`: already migrated.
    Referenced,
    /// No password at all.
    NoPassword,
    /// Imported from FileZilla or a netrc file.
    Imported,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Finding::HardCoded => "hard-coded password",
            Finding::UrlUserinfo => "password in url",
            Finding::EnvReference => "environment reference",
            Finding::Referenced => "already referenced",
            Finding::NoPassword => "no password",
            Finding::Imported => "imported",
        })
    }
}

/// What was (or, in a dry run, would be) done for a site.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Its secret was stored and the config rewritten.
    Migrated,
    /// Dry run: it would be migrated.
    WouldMigrate,
    /// Nothing to do, or deliberately left alone (an environment reference without --from-env).
    LeftAlone,
    /// It should be migrated but cannot be; `note` says why.
    Skipped,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Migrated => "migrated",
            Action::WouldMigrate => "would migrate",
            Action::LeftAlone => "left alone",
            Action::Skipped => "skipped",
        })
    }
}

/// One site (or imported entry) in a [`MigrationReport`]. Holds no secret.
#[derive(Debug, Clone, Serialize)]
pub struct SiteReport {
    /// Site name (or netrc machine).
    pub site: String,
    /// How its password was given.
    pub finding: Finding,
    /// What happened.
    pub action: Action,
    /// The credential it refers to now (or would).
    pub credential: Option<CredentialName>,
    /// Details: a renamed credential, a reused one, the variables of an env reference, why a
    /// site was skipped.
    pub note: Option<String>,
}

/// The outcome of a migration or import. Holds no secret (the diff is masked).
#[derive(Debug, Clone, Serialize)]
pub struct MigrationReport {
    /// The config file (none for a netrc import).
    pub config: Option<PathBuf>,
    /// The backend credentials went to (its `describe()`).
    pub backend: String,
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// Per site, in file order.
    pub sites: Vec<SiteReport>,
    /// Credentials newly stored (or, in a dry run, that would be).
    pub stored: Vec<CredentialName>,
    /// Identical credentials already in the backend, used as they are.
    pub reused: Vec<CredentialName>,
    /// The 0600 copy of the old config, when it was rewritten.
    pub backup: Option<PathBuf>,
    /// Unified diff of the config change, secrets masked as `****` (dry runs).
    pub diff: Option<String>,
    /// Whether the config file was (or would be) changed.
    pub changed: bool,
}

impl MigrationReport {
    /// A report with nothing found yet, for `config` (if any) and `backend`.
    fn empty(
        config: Option<PathBuf>,
        backend: &dyn CredentialBackend,
        options: MigrateOptions,
    ) -> Self {
        Self {
            config,
            backend: backend.describe(),
            dry_run: options.dry_run,
            sites: Vec::new(),
            stored: Vec::new(),
            reused: Vec::new(),
            backup: None,
            diff: None,
            changed: false,
        }
    }

    /// True when there was nothing to store and nothing to rewrite.
    pub fn nothing_to_do(&self) -> bool {
        !self.changed && self.stored.is_empty() && self.reused.is_empty()
    }
}

/// What kind of failure, which decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MigrateErrorKind {
    /// The config (or the import file) cannot be read, parsed or rewritten in place.
    Config,
    /// The backend is read-only, unavailable or refused a write.
    Credential,
    /// Writing the new config or its backup failed.
    Io,
}

/// A migration failure: what failed, where, what had already been stored (the config is
/// unchanged whenever this is returned) and the fix. Never holds a secret.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct MigrateError {
    /// The kind.
    pub kind: MigrateErrorKind,
    /// What failed and where.
    pub message: String,
    /// The command or change that fixes it.
    pub hint: Option<String>,
    /// Credentials stored before the failure.
    pub stored: Vec<CredentialName>,
}

impl MigrateError {
    fn new(kind: MigrateErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            hint: None,
            stored: Vec::new(),
        }
    }
    fn hint(mut self, h: impl Into<String>) -> Self {
        self.hint = Some(h.into());
        self
    }
}

impl From<ConfigError> for MigrateError {
    fn from(e: ConfigError) -> Self {
        let kind = if e.exit_code() == crate::config::EXIT_CREDENTIAL {
            MigrateErrorKind::Credential
        } else {
            MigrateErrorKind::Config
        };
        Self {
            kind,
            message: e.to_string(),
            hint: e.hint_text().map(str::to_owned),
            stored: Vec::new(),
        }
    }
}

/// A secret on its way into the backend, before it has a name.
struct Pending {
    /// Index into the report's sites.
    report: usize,
    /// Name to start from (`-2`, `-3`, … appended on collision).
    base: String,
    username: String,
    password: SecretString,
    host: Option<String>,
    port: Option<u16>,
    /// Decided by [`choose_names`].
    name: Option<CredentialName>,
    reuse: bool,
}

impl Pending {
    fn credential(
        &self,
        name: CredentialName,
    ) -> Result<Credential, siteport_creds::ValidationError> {
        let mut c = Credential::new(name, self.username.clone(), self.password.clone())?;
        if let Some(h) = &self.host {
            c = c.with_host(h.clone())?;
        }
        if let Some(p) = self.port {
            c = c.with_port(p)?;
        }
        Ok(c)
    }
}

/// How a planned site's config table changes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Rewrite {
    /// `password = …` becomes `credential = "NAME"` in the same place.
    Password,
    /// `user:pass@` leaves the url; `credential = "NAME"` goes right after it.
    Url,
}

/// Moves the hard-coded secrets of the config at `path` into `backend` and rewrites the file.
/// See the [module docs](self) for the order of operations and what a failure leaves behind.
pub async fn migrate_config(
    path: &Path,
    backend: &dyn CredentialBackend,
    options: MigrateOptions,
) -> Result<MigrationReport, MigrateError> {
    let text = read_config(path)?;
    let cfg = Config::parse(&text, path, &reference::process_env)?;
    let mut doc = parse_doc(&text, path)?;
    let mut masked = doc.clone();
    let mut report = MigrationReport::empty(Some(path.to_owned()), backend, options);
    let mut pending = Vec::new();
    let mut rewrites = Vec::new();
    for (i, site) in cfg.sites.iter().enumerate() {
        let table = site_table(&doc, i, path)?;
        let env_vars = env_vars_of(table.get("password"));
        let finding = if site.password_in_url() {
            Finding::UrlUserinfo
        } else if site.has_literal_password() {
            Finding::HardCoded
        } else if !env_vars.is_empty() {
            Finding::EnvReference
        } else if !site.credential_names().is_empty() {
            Finding::Referenced
        } else {
            Finding::NoPassword
        };
        if let Some(p) = &site.password {
            register_secret(p);
        }
        // Mask every secret written in the file, migrated or not, for the diff.
        match finding {
            Finding::HardCoded => mask_password(site_table_mut(&mut masked, i, path)?),
            Finding::UrlUserinfo => mask_url(site_table_mut(&mut masked, i, path)?),
            _ => {}
        }
        let mut entry = SiteReport {
            site: site.name.clone(),
            finding,
            action: Action::LeftAlone,
            credential: site.credential.clone(),
            note: None,
        };
        let wanted = match finding {
            Finding::HardCoded => Some(Rewrite::Password),
            Finding::UrlUserinfo => Some(Rewrite::Url),
            Finding::EnvReference if options.from_env => Some(Rewrite::Password),
            Finding::EnvReference => {
                entry.note = Some(format!(
                    "reads {}; --from-env would copy its current value into the store",
                    env_vars.join(", ")
                ));
                None
            }
            _ => None,
        };
        if let Some(rw) = wanted {
            match cfg
                .resolve_site(&site.name, backend, &reference::process_env)
                .await
            {
                Ok(r) => {
                    register_secret(&r.password);
                    let base = suggested_name(&site.name);
                    let p = Pending {
                        report: report.sites.len(),
                        base: if base == "NAME" { "site".into() } else { base },
                        username: r.username,
                        password: r.password,
                        host: Some(r.host),
                        port: Some(r.port),
                        name: None,
                        reuse: false,
                    };
                    match p.credential(placeholder()) {
                        Ok(_) => {
                            entry.action = Action::WouldMigrate;
                            pending.push(p);
                            rewrites.push((i, rw, pending.len() - 1));
                        }
                        Err(e) => {
                            entry.action = Action::Skipped;
                            entry.note = Some(format!("cannot store it: {e}"));
                        }
                    }
                }
                Err(e) => {
                    entry.action = Action::Skipped;
                    entry.note = Some(format!("cannot read its login: {e}"));
                }
            }
        }
        report.sites.push(entry);
    }
    if pending.is_empty() {
        return Ok(report);
    }
    ensure_writable(backend, &report, &pending)?;
    let taken: BTreeSet<CredentialName> = cfg
        .sites
        .iter()
        .flat_map(|s| s.credential_names())
        .collect();
    choose_names(backend, &mut pending, &taken).await?;
    for &(i, rw, p) in &rewrites {
        let name = pending[p].name.clone().ok_or_else(unnamed)?;
        report.sites[pending[p].report].credential = Some(name.clone());
        rewrite_site(site_table_mut(&mut doc, i, path)?, rw, &name);
        rewrite_site(site_table_mut(&mut masked, i, path)?, rw, &name);
    }
    let new_text = doc.to_string();
    // The rewritten file must load, and every migrated site must now name its credential.
    let check = Config::parse(&new_text, path, &reference::process_env).map_err(|e| {
        MigrateError::new(
            MigrateErrorKind::Config,
            format!(
                "the rewritten config would not load ({e}); nothing was changed in {}",
                path.display()
            ),
        )
        .hint("please report this bug; migrate the site by hand with `siteport credential add`")
    })?;
    for &(i, _, p) in &rewrites {
        if check.sites.get(i).and_then(|s| s.credential.as_ref()) != pending[p].name.as_ref() {
            return Err(MigrateError::new(
                MigrateErrorKind::Config,
                format!(
                    "the rewritten config does not refer site '{}' to its credential; nothing \
                     was changed in {}",
                    cfg.sites[i].name,
                    path.display()
                ),
            ));
        }
    }
    let masked_old = parse_doc(&text, path)
        .map(|d| mask_all(d, &report.sites))?
        .to_string();
    report.diff = Some(unified_diff(path, &masked_old, &masked.to_string()));
    report.changed = new_text != text;
    finish(
        path,
        Some(&text),
        &new_text,
        backend,
        pending,
        &mut report,
        options,
    )
    .await?;
    Ok(report)
}

fn unnamed() -> MigrateError {
    MigrateError::new(
        MigrateErrorKind::Credential,
        "internal error: a credential was left without a name",
    )
}

/// A valid name used only to validate a credential's fields before its real name is known.
fn placeholder() -> CredentialName {
    CredentialName::new("placeholder").unwrap_or_else(|_| unreachable!("valid literal name"))
}

/// The masked copy of the original document used as the "before" side of the diff.
fn mask_all(mut doc: DocumentMut, sites: &[SiteReport]) -> DocumentMut {
    if let Some(aot) = doc.get_mut("site").and_then(Item::as_array_of_tables_mut) {
        for (t, s) in aot.iter_mut().zip(sites) {
            match s.finding {
                Finding::HardCoded => mask_password(t),
                Finding::UrlUserinfo => mask_url(t),
                _ => {}
            }
        }
    }
    doc
}

/// Stores, backs up and writes (or, in a dry run, only fills in the report).
async fn finish(
    path: &Path,
    old_text: Option<&str>,
    new_text: &str,
    backend: &dyn CredentialBackend,
    pending: Vec<Pending>,
    report: &mut MigrationReport,
    options: MigrateOptions,
) -> Result<(), MigrateError> {
    for p in &pending {
        let name = p.name.clone().ok_or_else(unnamed)?;
        if p.reuse {
            report.reused.push(name);
        } else {
            report.stored.push(name);
        }
    }
    if options.dry_run {
        return Ok(());
    }
    let mut stored = Vec::new();
    for p in &pending {
        let name = p.name.clone().ok_or_else(unnamed)?;
        if p.reuse {
            continue;
        }
        let cred = p
            .credential(name.clone())
            .map_err(|e| MigrateError::new(MigrateErrorKind::Credential, e.to_string()))?;
        if let Err(e) = backend.store(&cred, StoreMode::CreateNew).await {
            let done = if stored.is_empty() {
                "nothing was stored".to_owned()
            } else {
                format!("already stored: {}", join(&stored))
            };
            let mut err = MigrateError::new(
                MigrateErrorKind::Credential,
                format!(
                    "cannot store credential '{name}': {e}; {done}; the config file was not changed"
                ),
            )
            .hint(format!(
                "{}run `siteport migrate` again once the backend works: credentials already \
                 stored are recognised and reused",
                crate::remedy::hint(&e)
                    .map(|h| format!("{h}; then "))
                    .unwrap_or_default()
            ));
            err.stored = stored;
            return Err(err);
        }
        stored.push(name);
    }
    for entry in &mut report.sites {
        if entry.action == Action::WouldMigrate {
            entry.action = Action::Migrated;
        }
    }
    if report.changed {
        if let Some(old) = old_text {
            report.backup = Some(write_backup(path, old).map_err(|e| {
                let mut e = e;
                e.message
                    .push_str(&format!("; credentials stored: {}", join(&stored)));
                e.stored = stored.clone();
                e
            })?);
        }
        write_atomic(path, new_text).map_err(|mut e| {
            e.message
                .push_str(&format!("; credentials stored: {}", join(&stored)));
            e.stored = stored.clone();
            e
        })?;
    }
    Ok(())
}

fn join(names: &[CredentialName]) -> String {
    if names.is_empty() {
        return "none".into();
    }
    names
        .iter()
        .map(|n| n.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn ensure_writable(
    backend: &dyn CredentialBackend,
    report: &MigrationReport,
    pending: &[Pending],
) -> Result<(), MigrateError> {
    if backend.is_writable() {
        return Ok(());
    }
    let sites: Vec<&str> = pending
        .iter()
        .map(|p| report.sites[p.report].site.as_str())
        .collect();
    Err(MigrateError::new(
        MigrateErrorKind::Credential,
        format!(
            "{} is read-only, but migrating needs to store {} credential(s) (for {}); nothing \
             was changed",
            backend.describe(),
            pending.len(),
            sites.join(", ")
        ),
    )
    .hint("store them in a writable backend: `siteport migrate --backend file` (run `siteport credential init` first if you have no store)"))
}

/// Picks a free name for each pending credential: its base name, else `base-2`, `base-3`, …
/// A name already in the backend is reused only if it holds the same username and password;
/// a name the config already refers to is never taken for another secret.
async fn choose_names(
    backend: &dyn CredentialBackend,
    pending: &mut [Pending],
    taken: &BTreeSet<CredentialName>,
) -> Result<(), MigrateError> {
    let mut chosen: BTreeSet<CredentialName> = BTreeSet::new();
    for p in pending.iter_mut() {
        let mut found = None;
        for n in 1..=100u32 {
            let text = if n == 1 {
                p.base.clone()
            } else {
                let suffix = format!("-{n}");
                let keep = p
                    .base
                    .len()
                    .min(siteport_creds::MAX_NAME_LEN - suffix.len());
                format!("{}{suffix}", p.base[..keep].trim_end_matches('-'))
            };
            let Ok(name) = CredentialName::new(&text) else {
                continue;
            };
            if chosen.contains(&name) {
                continue;
            }
            match backend.get(&name).await {
                Ok(existing) => {
                    if existing.username() == p.username
                        && existing.password().expose_secret() == p.password.expose_secret()
                    {
                        found = Some((name, true));
                        break;
                    }
                }
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    if !taken.contains(&name) {
                        found = Some((name, false));
                        break;
                    }
                }
                Err(e) => {
                    let hint = crate::remedy::hint(&e);
                    let mut err = MigrateError::new(
                        MigrateErrorKind::Credential,
                        format!(
                            "cannot check whether credential '{name}' exists: {e}; nothing was stored or changed"
                        ),
                    );
                    err.hint = hint;
                    return Err(err);
                }
            }
        }
        let (name, reuse) = found.ok_or_else(|| {
            MigrateError::new(
                MigrateErrorKind::Credential,
                format!("no free credential name found for '{}'", p.base),
            )
            .hint("remove unused credentials with `siteport credential remove NAME`")
        })?;
        chosen.insert(name.clone());
        p.name = Some(name);
        p.reuse = reuse;
    }
    Ok(())
}

/// The `${VAR}` names in a password value that holds environment references and no
/// credential reference; empty otherwise.
fn env_vars_of(item: Option<&Item>) -> Vec<String> {
    let Some(s) = item.and_then(Item::as_str) else {
        return Vec::new();
    };
    let Ok(segs) = reference::parse(s) else {
        return Vec::new();
    };
    if segs
        .iter()
        .any(|s| matches!(s.kind, SegmentKind::Cred { .. }))
    {
        return Vec::new();
    }
    segs.iter()
        .filter_map(|s| match &s.kind {
            SegmentKind::Env { var, .. } => Some(format!("${{{var}}}")),
            _ => None,
        })
        .collect()
}

/// Replaces a value, keeping its surrounding whitespace and comments.
fn replace_value(item: &mut Item, new: &str) {
    if let Some(v) = item.as_value_mut() {
        let decor = v.decor().clone();
        let mut nv = Value::from(new);
        *nv.decor_mut() = decor;
        *v = nv;
    }
}

fn mask_password(t: &mut Table) {
    if let Some(item) = t.get_mut("password") {
        replace_value(item, "****");
    }
}

fn mask_url(t: &mut Table) {
    let Some(item) = t.get_mut("url") else { return };
    let Some(url) = item.as_str() else { return };
    if let Some((start, at)) = userinfo_range(url) {
        let ui = &url[start..at];
        if let Some(colon) = ui.find(':') {
            let masked = format!("{}****{}", &url[..start + colon + 1], &url[at..]);
            replace_value(item, &masked);
        }
    }
}

/// Byte range of `user[:pass]` in `scheme://user[:pass]@host…` (the `@` excluded).
fn userinfo_range(url: &str) -> Option<(usize, usize)> {
    let start = url.find("://")? + 3;
    let end = url[start..].find('/').map_or(url.len(), |i| start + i);
    let at = url[start..end].rfind('@')? + start;
    Some((start, at))
}

/// Applies the rewrite of one site: keeps every other key, comment and format untouched.
fn rewrite_site(t: &mut Table, rw: Rewrite, name: &CredentialName) {
    let order: Vec<String> = t.iter().map(|(k, _)| k.to_owned()).collect();
    match rw {
        Rewrite::Password => {
            let Some((key, item)) = t.remove_entry("password") else {
                return;
            };
            let mut value = Value::from(name.as_str());
            if let Some(v) = item.as_value() {
                *value.decor_mut() = v.decor().clone();
            }
            let new_key = Key::new("credential").with_leaf_decor(key.leaf_decor().clone());
            t.insert_formatted(&new_key, Item::Value(value));
            let pos = |k: &str| {
                let k = if k == "credential" { "password" } else { k };
                order.iter().position(|o| o == k).unwrap_or(usize::MAX)
            };
            t.sort_values_by(|k1, _, k2, _| pos(k1.get()).cmp(&pos(k2.get())));
        }
        Rewrite::Url => {
            let Some(item) = t.get_mut("url") else { return };
            let Some(url) = item.as_str() else { return };
            let Some((start, at)) = userinfo_range(url) else {
                return;
            };
            let stripped = format!("{}{}", &url[..start], &url[at + 1..]);
            replace_value(item, &stripped);
            let (key_decor, value_prefix) = match t.get_key_value("url") {
                Some((k, i)) => (
                    k.leaf_decor().clone(),
                    i.as_value()
                        .and_then(|v| v.decor().prefix())
                        .and_then(|p| p.as_str())
                        .unwrap_or(" ")
                        .to_owned(),
                ),
                None => (Default::default(), " ".to_owned()),
            };
            let mut key_decor = key_decor;
            // The url key's prefix may carry comments above it: they stay with the url.
            let indent = key_decor
                .prefix()
                .and_then(|p| p.as_str())
                .map(|p| p.rsplit('\n').next().unwrap_or("").to_owned())
                .unwrap_or_default();
            key_decor.set_prefix(indent);
            let value = Value::from(name.as_str()).decorated(value_prefix, "");
            let new_key = Key::new("credential").with_leaf_decor(key_decor);
            t.insert_formatted(&new_key, Item::Value(value));
            let pos = |k: &str| match k {
                "credential" => order
                    .iter()
                    .position(|o| o == "url")
                    .map_or(usize::MAX, |p| 2 * p + 1),
                _ => order
                    .iter()
                    .position(|o| o == k)
                    .map_or(usize::MAX, |p| 2 * p),
            };
            t.sort_values_by(|k1, _, k2, _| pos(k1.get()).cmp(&pos(k2.get())));
        }
    }
}

fn read_config(path: &Path) -> Result<String, MigrateError> {
    std::fs::read_to_string(path).map_err(|e| {
        MigrateError::new(
            MigrateErrorKind::Config,
            format!("cannot read config file {}: {e}", path.display()),
        )
        .hint("pass the config file as `siteport migrate PATH` or --config PATH")
    })
}

fn parse_doc(text: &str, path: &Path) -> Result<DocumentMut, MigrateError> {
    text.parse::<DocumentMut>().map_err(|e| {
        MigrateError::new(
            MigrateErrorKind::Config,
            format!("{}: {}", path.display(), e.message()),
        )
    })
}

fn not_aot(path: &Path) -> MigrateError {
    MigrateError::new(
        MigrateErrorKind::Config,
        format!(
            "{}: sites must be written as [[site]] tables for migrate to rewrite them",
            path.display()
        ),
    )
    .hint("turn `site = [{…}]` into one [[site]] table per site")
}

fn site_table<'a>(doc: &'a DocumentMut, i: usize, path: &Path) -> Result<&'a Table, MigrateError> {
    doc.get("site")
        .and_then(Item::as_array_of_tables)
        .and_then(|a| a.get(i))
        .ok_or_else(|| not_aot(path))
}

fn site_table_mut<'a>(
    doc: &'a mut DocumentMut,
    i: usize,
    path: &Path,
) -> Result<&'a mut Table, MigrateError> {
    doc.get_mut("site")
        .and_then(Item::as_array_of_tables_mut)
        .and_then(|a| a.get_mut(i))
        .ok_or_else(|| not_aot(path))
}

/// A unified diff (3 lines of context) from `old` to `new`, labelled with the config path.
pub fn unified_diff(path: &Path, old: &str, new: &str) -> String {
    let label = path.display().to_string();
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(&label, &format!("{label} (migrated)"))
        .to_string()
}

/// `<config>.<UTC timestamp>.bak`, created 0600 (it holds the old secrets), never replacing
/// an existing file, fsynced.
fn write_backup(path: &Path, text: &str) -> Result<PathBuf, MigrateError> {
    use std::os::unix::fs::OpenOptionsExt;
    let stamp = time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))
        .unwrap_or_else(|_| "backup".into());
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "siteport.toml".into());
    let io_err = |p: &Path, e: std::io::Error| {
        MigrateError::new(
            MigrateErrorKind::Io,
            format!(
                "cannot write the backup {}: {e}; the config file was not changed",
                p.display()
            ),
        )
        .hint("make the config's directory writable, then run `siteport migrate` again")
    };
    for n in 0..100 {
        let name = if n == 0 {
            format!("{file_name}.{stamp}.bak")
        } else {
            format!("{file_name}.{stamp}-{n}.bak")
        };
        let p = path.with_file_name(name);
        let mut f = match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&p)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_err(&p, e)),
        };
        f.write_all(text.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(|e| io_err(&p, e))?;
        return Ok(p);
    }
    Err(MigrateError::new(
        MigrateErrorKind::Io,
        format!("too many backups next to {}", path.display()),
    )
    .hint("remove old *.bak files next to the config"))
}

/// Replaces `path` with `text` atomically: a temp file in the same directory with the old
/// file's permissions (0600 for a new file), fsync, rename, fsync of the directory.
pub(crate) fn write_atomic(path: &Path, text: &str) -> Result<(), MigrateError> {
    use std::os::unix::fs::PermissionsExt;
    let err = |e: std::io::Error| {
        MigrateError::new(
            MigrateErrorKind::Io,
            format!(
                "cannot write {}: {e}; the old file is unchanged",
                path.display()
            ),
        )
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let perms = match std::fs::metadata(path) {
        Ok(m) => m.permissions(),
        Err(_) => std::fs::Permissions::from_mode(0o600),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".siteport-migrate")
        .tempfile_in(&dir)
        .map_err(err)?;
    tmp.write_all(text.as_bytes()).map_err(err)?;
    tmp.as_file().set_permissions(perms).map_err(err)?;
    tmp.as_file().sync_all().map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    // The rename is durable only once the directory entry is.
    std::fs::File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(err)?;
    Ok(())
}

/// A site name from FileZilla folders + server name: `Clients/Acme Web` → `clients-acme-web`.
fn slug(parts: &[&str]) -> String {
    let joined = parts.join("-").to_ascii_lowercase();
    let mut out = String::new();
    for c in joined.chars() {
        let c = if c.is_ascii_alphanumeric() || matches!(c, '.' | '_') {
            c
        } else {
            '-'
        };
        if !(c == '-' && (out.is_empty() || out.ends_with('-'))) {
            out.push(c);
        }
    }
    let out: String = out.trim_matches('-').chars().take(56).collect();
    if out.is_empty() { "site".into() } else { out }
}

fn read_input(path: &Path, what: &str) -> Result<String, MigrateError> {
    std::fs::read_to_string(path).map_err(|e| {
        MigrateError::new(
            MigrateErrorKind::Config,
            format!("cannot read {what} {}: {e}", path.display()),
        )
    })
}

/// Imports FileZilla's `sitemanager.xml` at `xml`: each FTP/FTPS server becomes a `[[site]]`
/// appended to the config at `config` (created 0600 if missing) and its password a credential.
/// Servers already in the config (same name and host) are left alone, so a re-run does nothing.
pub async fn import_filezilla(
    config: &Path,
    xml: &Path,
    backend: &dyn CredentialBackend,
    options: MigrateOptions,
) -> Result<MigrationReport, MigrateError> {
    let servers = parse_sitemanager(&read_input(xml, "FileZilla site manager")?).map_err(|e| {
        MigrateError::new(MigrateErrorKind::Config, format!("{}: {e}", xml.display()))
            .hint("export it from FileZilla with File > Export…, or pass ~/.config/filezilla/sitemanager.xml")
    })?;
    for s in &servers {
        if let Some(p) = &s.password {
            register_secret(p);
        }
    }
    let old_text = if config.exists() {
        Some(read_config(config)?)
    } else {
        None
    };
    let text = old_text.clone().unwrap_or_default();
    let cfg = Config::parse(&text, config, &reference::process_env)?;
    let mut doc = parse_doc(&text, config)?;
    let mut report = MigrationReport::empty(Some(config.to_owned()), backend, options);
    let mut pending = Vec::new();
    // (site table, pending index) for every site to append.
    let mut new_sites: Vec<(Table, Option<usize>)> = Vec::new();
    let mut names: BTreeSet<String> = cfg.sites.iter().map(|s| s.name.clone()).collect();
    for s in servers {
        let mut parts: Vec<&str> = s.folders.iter().map(String::as_str).collect();
        parts.push(&s.name);
        let base = slug(&parts);
        let mut entry = SiteReport {
            site: base.clone(),
            finding: Finding::Imported,
            action: Action::WouldMigrate,
            credential: None,
            note: None,
        };
        if let Some(existing) = cfg.site(&base)
            && existing.host.as_deref() == Some(s.host.as_str())
        {
            entry.action = Action::LeftAlone;
            entry.note = Some("already in the config".into());
            report.sites.push(entry);
            continue;
        }
        let tls = match s.protocol {
            0 | 4 => "explicit",
            3 => "implicit",
            6 => "none",
            1 => {
                entry.action = Action::Skipped;
                entry.note = Some("SFTP is not supported by siteport".into());
                report.sites.push(entry);
                continue;
            }
            other => {
                entry.action = Action::Skipped;
                entry.note = Some(format!("FileZilla protocol {other} is not FTP or FTPS"));
                report.sites.push(entry);
                continue;
            }
        };
        let mut site_name = base.clone();
        let mut n = 2;
        while names.contains(&site_name) {
            site_name = format!("{base}-{n}");
            n += 1;
        }
        names.insert(site_name.clone());
        entry.site = site_name.clone();
        let mut t = Table::new();
        t.insert("name", toml_edit::value(site_name.as_str()));
        t.insert("host", toml_edit::value(s.host.as_str()));
        let default_port = if tls == "implicit" { 990 } else { 21 };
        if let Some(p) = s.port.filter(|p| *p != default_port) {
            t.insert("port", toml_edit::value(i64::from(p)));
        }
        t.insert("tls", toml_edit::value(tls));
        let user = s.user.clone().unwrap_or_else(|| "anonymous".into());
        let mut pidx = None;
        match (&s.password, &s.password_problem) {
            (Some(pw), _) => {
                let p = Pending {
                    report: report.sites.len(),
                    base: suggested_name(&site_name),
                    username: user.clone(),
                    password: pw.clone(),
                    host: Some(s.host.clone()),
                    port: s.port,
                    name: None,
                    reuse: false,
                };
                match p.credential(placeholder()) {
                    Ok(_) => {
                        pending.push(p);
                        pidx = Some(pending.len() - 1);
                    }
                    Err(e) => {
                        entry.note = Some(format!("password not imported: {e}"));
                    }
                }
            }
            (None, problem) => {
                entry.note = Some(format!(
                    "{}; store one with `siteport credential add {1} --username {user}` and add \
                     `credential = \"{1}\"` to the site",
                    problem
                        .as_deref()
                        .unwrap_or("no password saved in FileZilla"),
                    suggested_name(&site_name)
                ));
            }
        }
        if pidx.is_none() {
            t.insert("user", toml_edit::value(user.as_str()));
        }
        let local = s
            .local_dir
            .clone()
            .unwrap_or_else(|| format!("sites/{site_name}"));
        t.insert("local", toml_edit::value(local));
        if let Some(r) = s.remote_dir.as_deref().filter(|r| *r != "/") {
            t.insert("remote", toml_edit::value(r));
        }
        new_sites.push((t, pidx));
        report.sites.push(entry);
    }
    if new_sites.is_empty() {
        for e in &mut report.sites {
            if e.action == Action::WouldMigrate {
                e.action = Action::LeftAlone;
            }
        }
        return Ok(report);
    }
    if !pending.is_empty() {
        ensure_writable(backend, &report, &pending)?;
    }
    let taken: BTreeSet<CredentialName> = cfg
        .sites
        .iter()
        .flat_map(|s| s.credential_names())
        .collect();
    choose_names(backend, &mut pending, &taken).await?;
    let aot = doc
        .entry("site")
        .or_insert(Item::ArrayOfTables(Default::default()))
        .as_array_of_tables_mut()
        .ok_or_else(|| not_aot(config))?;
    for (mut t, pidx) in new_sites {
        if let Some(p) = pidx {
            let name = pending[p].name.clone().ok_or_else(unnamed)?;
            let pos = t.len() - usize::from(t.contains_key("remote")) - 1;
            t.insert("credential", toml_edit::value(name.as_str()));
            // Keep `credential` before `local`/`remote`, as in the documented example.
            let order = [
                "name",
                "host",
                "port",
                "tls",
                "credential",
                "user",
                "local",
                "remote",
            ];
            let rank = |k: &str| order.iter().position(|o| *o == k).unwrap_or(pos);
            t.sort_values_by(|a, _, b, _| rank(a.get()).cmp(&rank(b.get())));
            report.sites[pending[p].report].credential = Some(name);
        }
        t.decor_mut().set_prefix("\n");
        aot.push(t);
    }
    let new_text = doc.to_string();
    Config::parse(&new_text, config, &reference::process_env).map_err(|e| {
        MigrateError::new(
            MigrateErrorKind::Config,
            format!("the imported sites would not load ({e}); nothing was changed"),
        )
    })?;
    let mut masked_old = parse_doc(&text, config)?;
    let mut masked_new = parse_doc(&new_text, config)?;
    for (i, s) in cfg.sites.iter().enumerate() {
        for d in [&mut masked_old, &mut masked_new] {
            if s.password_in_url() {
                mask_url(site_table_mut(d, i, config)?);
            } else if s.has_literal_password() {
                mask_password(site_table_mut(d, i, config)?);
            }
        }
    }
    report.diff = Some(unified_diff(
        config,
        &masked_old.to_string(),
        &masked_new.to_string(),
    ));
    report.changed = true;
    finish(
        config,
        old_text.as_deref(),
        &new_text,
        backend,
        pending,
        &mut report,
        options,
    )
    .await?;
    if !options.dry_run {
        for e in &mut report.sites {
            if e.action == Action::WouldMigrate {
                e.action = Action::Migrated;
            }
        }
    }
    Ok(report)
}

/// Imports the logins of a netrc file (`machine HOST login USER password PASS`) into
/// `backend`, one credential per machine named after the host, with the host set. Entries
/// without a login or password, and the `default` entry, are reported and skipped. A login
/// already stored with the same username and password is reused, so a re-run stores nothing.
pub async fn import_netrc(
    netrc: &Path,
    backend: &dyn CredentialBackend,
    options: MigrateOptions,
) -> Result<MigrationReport, MigrateError> {
    let entries = parse_netrc(&read_input(netrc, "netrc file")?).map_err(|e| {
        MigrateError::new(
            MigrateErrorKind::Config,
            format!("{}: {e}", netrc.display()),
        )
    })?;
    let mut report = MigrationReport::empty(None, backend, options);
    let mut pending = Vec::new();
    for e in entries {
        if let Some(p) = &e.password {
            register_secret(p);
        }
        let label = e.machine.clone().unwrap_or_else(|| "default".into());
        let mut entry = SiteReport {
            site: label.clone(),
            finding: Finding::Imported,
            action: Action::Skipped,
            credential: None,
            note: None,
        };
        match (e.machine, e.login, e.password) {
            (None, ..) => entry.note = Some("the `default` entry names no host".into()),
            (Some(_), None, _) | (Some(_), _, None) => {
                entry.note = Some("no login or no password".into())
            }
            (Some(host), Some(login), Some(password)) => {
                let p = Pending {
                    report: report.sites.len(),
                    base: slug(&[&host]),
                    username: login,
                    password,
                    host: Some(host),
                    port: None,
                    name: None,
                    reuse: false,
                };
                match p.credential(placeholder()) {
                    Ok(_) => {
                        entry.action = Action::WouldMigrate;
                        pending.push(p);
                    }
                    Err(e) => entry.note = Some(format!("cannot store it: {e}")),
                }
            }
        }
        report.sites.push(entry);
    }
    if pending.is_empty() {
        return Ok(report);
    }
    ensure_writable(backend, &report, &pending)?;
    choose_names(backend, &mut pending, &BTreeSet::new()).await?;
    for p in &pending {
        let entry = &mut report.sites[p.report];
        entry.credential = p.name.clone();
        if p.reuse {
            entry.action = Action::LeftAlone;
            entry.note = Some("already stored".into());
        }
    }
    finish(netrc, None, "", backend, pending, &mut report, options).await?;
    Ok(report)
}
