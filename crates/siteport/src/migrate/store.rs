//! Storing what was planned: a free name for each credential (reusing identical ones), a
//! read-only backend refused up front, then the writes, the backup and the new config, in that
//! order (see the [module docs](super)).

use std::collections::BTreeSet;
use std::path::Path;

use secrecy::ExposeSecret;
use siteport_creds::{CredentialBackend, CredentialName, ErrorKind, StoreMode};

use super::MigrateOptions;
use super::error::{MigrateError, MigrateErrorKind, unnamed};
use super::files::{write_atomic, write_backup};
use super::plan::Pending;
use super::report::{Action, MigrationReport};

/// Stores, backs up and writes (or, in a dry run, only fills in the report).
pub(super) async fn finish(
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

/// `a, b` (or `none`), for messages.
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

/// Refuses a read-only backend before anything is stored.
pub(super) fn ensure_writable(
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
/// A name already in the backend is reused only if it holds the same username, password and
/// SSH key; a name the config already refers to is never taken for another secret.
pub(super) async fn choose_names(
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
                    let same_key = existing.ssh_key().map(|k| k.expose_secret())
                        == p.ssh_key.as_ref().map(|k| k.expose_secret());
                    if existing.username() == p.username
                        && existing.password().expose_secret() == p.password.expose_secret()
                        && same_key
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
