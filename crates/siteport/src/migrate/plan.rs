//! Planning a config migration: what each site holds (a literal password, a password in its
//! url, an environment reference, …), which secrets move into the backend and how each site's
//! table changes. Nothing is written here; [`super::store`] does that once the plan holds.

use std::collections::BTreeSet;
use std::path::Path;

use secrecy::SecretString;
use siteport_creds::reference::{self, SegmentKind};
use siteport_creds::{Credential, CredentialBackend, CredentialName};
use toml_edit::Item;

use super::MigrateOptions;
use super::error::{MigrateError, MigrateErrorKind, unnamed};
use super::files::read_config;
use super::report::{Action, Finding, MigrationReport, SiteReport};
use super::rewrite::{
    mask_all, mask_password, mask_url, parse_doc, rewrite_site, site_table, site_table_mut,
    unified_diff,
};
use super::store::{choose_names, ensure_writable, finish};
use crate::config::{Config, SiteConfig, suggested_name};
use crate::logging::register_secret;

/// A secret on its way into the backend, before it has a name.
pub(super) struct Pending {
    /// Index into the report's sites.
    pub(super) report: usize,
    /// Name to start from (`-2`, `-3`, … appended on collision).
    pub(super) base: String,
    pub(super) username: String,
    pub(super) password: SecretString,
    /// An SSH private key read from a file the imported site named (FileZilla's key file
    /// logon); with it, `password` may be empty.
    pub(super) ssh_key: Option<SecretString>,
    pub(super) host: Option<String>,
    pub(super) port: Option<u16>,
    /// Decided by [`choose_names`].
    pub(super) name: Option<CredentialName>,
    pub(super) reuse: bool,
}

impl Pending {
    pub(super) fn credential(
        &self,
        name: CredentialName,
    ) -> Result<Credential, siteport_creds::ValidationError> {
        let mut c = Credential::from_parts(
            name,
            self.username.clone(),
            Some(self.password.clone()),
            self.ssh_key.clone(),
            None,
        )?;
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
pub(super) enum Rewrite {
    /// `password = …` becomes `credential = "NAME"` in the same place.
    Password,
    /// `user:pass@` leaves the url; `credential = "NAME"` goes right after it.
    Url,
}

/// The plan so far: the report, the secrets to store, and which site table gets which rewrite
/// (`(site index, rewrite, index into pending)`).
struct Plan {
    report: MigrationReport,
    pending: Vec<Pending>,
    rewrites: Vec<(usize, Rewrite, usize)>,
}

/// Moves the hard-coded secrets of the config at `path` into `backend` and rewrites the file.
/// See the [module docs](super) for the order of operations and what a failure leaves behind.
pub async fn migrate_config(
    path: &Path,
    backend: &dyn CredentialBackend,
    options: MigrateOptions,
) -> Result<MigrationReport, MigrateError> {
    let text = read_config(path)?;
    let cfg = Config::parse(&text, path, &reference::process_env)?;
    let mut doc = parse_doc(&text, path)?;
    let mut masked = doc.clone();
    let mut plan = Plan {
        report: MigrationReport::empty(Some(path.to_owned()), backend, options),
        pending: Vec::new(),
        rewrites: Vec::new(),
    };
    for (i, site) in cfg.sites.iter().enumerate() {
        let env_vars = env_vars_of(site_table(&doc, i, path)?.get("password"));
        let finding = finding_of(site, &env_vars);
        if let Some(p) = &site.password {
            register_secret(p);
        }
        // Mask every secret written in the file, migrated or not, for the diff.
        match finding {
            Finding::HardCoded => mask_password(site_table_mut(&mut masked, i, path)?),
            Finding::UrlUserinfo => mask_url(site_table_mut(&mut masked, i, path)?),
            _ => {}
        }
        plan.site(&cfg, i, finding, &env_vars, backend, options)
            .await;
    }
    if plan.pending.is_empty() {
        return Ok(plan.report);
    }
    ensure_writable(backend, &plan.report, &plan.pending)?;
    let taken: BTreeSet<CredentialName> = cfg
        .sites
        .iter()
        .flat_map(|s| s.credential_names())
        .collect();
    choose_names(backend, &mut plan.pending, &taken).await?;
    for &(i, rw, p) in &plan.rewrites {
        let name = plan.pending[p].name.clone().ok_or_else(unnamed)?;
        plan.report.sites[plan.pending[p].report].credential = Some(name.clone());
        rewrite_site(site_table_mut(&mut doc, i, path)?, rw, &name);
        rewrite_site(site_table_mut(&mut masked, i, path)?, rw, &name);
    }
    let new_text = doc.to_string();
    plan.check_rewritten(&cfg, &new_text, path)?;
    let masked_old = parse_doc(&text, path)
        .map(|d| mask_all(d, &plan.report.sites))?
        .to_string();
    let mut report = plan.report;
    report.diff = Some(unified_diff(path, &masked_old, &masked.to_string()));
    report.changed = new_text != text;
    finish(
        path,
        Some(&text),
        &new_text,
        backend,
        plan.pending,
        &mut report,
        options,
    )
    .await?;
    Ok(report)
}

/// How `site` gives its password (`env_vars`: the variables its `password` reads).
fn finding_of(site: &SiteConfig, env_vars: &[String]) -> Finding {
    if site.password_in_url() {
        Finding::UrlUserinfo
    } else if site.has_literal_password() {
        Finding::HardCoded
    } else if !env_vars.is_empty() {
        Finding::EnvReference
    } else if !site.credential_names().is_empty() {
        Finding::Referenced
    } else {
        Finding::NoPassword
    }
}

impl Plan {
    /// Plans site `i` of `cfg`: reports it, and when its secret moves, resolves its login
    /// into a pending credential and notes the rewrite.
    async fn site(
        &mut self,
        cfg: &Config,
        i: usize,
        finding: Finding,
        env_vars: &[String],
        backend: &dyn CredentialBackend,
        options: MigrateOptions,
    ) {
        let site = &cfg.sites[i];
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
                        report: self.report.sites.len(),
                        base: if base == "NAME" { "site".into() } else { base },
                        username: r.username,
                        password: r.password,
                        ssh_key: None,
                        host: Some(r.host),
                        port: Some(r.port),
                        name: None,
                        reuse: false,
                    };
                    match p.credential(placeholder()) {
                        Ok(_) => {
                            entry.action = Action::WouldMigrate;
                            self.pending.push(p);
                            self.rewrites.push((i, rw, self.pending.len() - 1));
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
        self.report.sites.push(entry);
    }

    /// The rewritten file must load, and every migrated site must now name its credential.
    fn check_rewritten(
        &self,
        cfg: &Config,
        new_text: &str,
        path: &Path,
    ) -> Result<(), MigrateError> {
        let check = Config::parse(new_text, path, &reference::process_env).map_err(|e| {
            MigrateError::new(
                MigrateErrorKind::Config,
                format!(
                    "the rewritten config would not load ({e}); nothing was changed in {}",
                    path.display()
                ),
            )
            .hint("please report this bug; migrate the site by hand with `siteport credential add`")
        })?;
        for &(i, _, p) in &self.rewrites {
            if check.sites.get(i).and_then(|s| s.credential.as_ref())
                != self.pending[p].name.as_ref()
            {
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
        Ok(())
    }
}

/// A valid name used only to validate a credential's fields before its real name is known.
pub(super) fn placeholder() -> CredentialName {
    CredentialName::new("placeholder").unwrap_or_else(|_| unreachable!("valid literal name"))
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

/// A site name from FileZilla folders + server name: `Clients/Acme Web` → `clients-acme-web`.
pub(super) fn slug(parts: &[&str]) -> String {
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
