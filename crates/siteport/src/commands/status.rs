//! `siteport status SITE`: the last deploy, the site lock, and what this machine's journal
//! knows.
//!
//! The last deploy comes from the deploy state document on the server
//! (`<state dir>/state.json`, see docs/deploy-state.md); a site that has none (never exported
//! by this version, or a refused document) says so.

use std::path::PathBuf;
use std::time::SystemTime;

use clap::Args;
use serde_json::{Value, json};
use siteport_sync::{DeployInfo, Holder, Journal, rfc3339};

use crate::commands::journal_place::journal_dir;
use crate::commands::site::{endpoint, journal_path, sync_error};
use crate::commands::site_lock::{holder_json, resolve, state_dir};
use crate::config::ResolvedSite;
use crate::context::Context;
use crate::error::CliResult;

/// `siteport status SITE`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Site name (a `[[site]]` in the config).
    pub site: String,
}

/// What this machine's journal knows about the site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalJournal {
    /// No journal file for the site (never exported from here, or journals are off).
    None,
    /// A run on this machine holds the journal right now.
    InUse(PathBuf),
    /// The journal: files recorded, their bytes, when it was last written.
    Known {
        /// The journal file.
        path: PathBuf,
        /// Files recorded.
        files: usize,
        /// Their remote bytes.
        bytes: u64,
        /// The file's modification time.
        written: Option<SystemTime>,
    },
}

/// Shows the status of one site.
pub async fn run(ctx: &Context, args: StatusArgs) -> CliResult {
    let site = resolve(ctx, &args.site).await?;
    let factory = siteport_sync::connect_factory(&endpoint(&site));
    let mut remote = factory.connect().await.map_err(|e| sync_error(&site, &e))?;
    let lock = siteport_sync::read_lock(remote.as_mut(), state_dir(&site)).await;
    let state = match &lock {
        Ok(_) => siteport_sync::read_deploy_state(remote.as_mut(), state_dir(&site)).await,
        Err(_) => Ok(None),
    };
    let _ = remote.close().await;
    let lock = lock.map_err(|e| sync_error(&site, &e))?;
    let state = state.map_err(|e| sync_error(&site, &e))?;
    let journal = local_journal(ctx, &site);
    let deploy = state.as_ref().map(|s| &s.deploy);
    let (human, value) = report(&site, deploy, lock.as_ref(), &journal);
    ctx.output.result(&human, &value)
}

/// Where the deploy state and the lock are, as a path on the server (relative to `remote`
/// when inside it).
fn state_dir_shown(site: &ResolvedSite) -> String {
    let d = state_dir(site);
    if siteport_sync::in_web_root(d) {
        format!("{}/{d}", site.remote.trim_end_matches('/'))
    } else {
        format!("{d} (outside the web root)")
    }
}

/// The status text and its `--json` form, from what is known: the last deploy (when a deploy
/// state was read), the lock, the local journal.
pub fn report(
    site: &ResolvedSite,
    deploy: Option<&DeployInfo>,
    lock: Option<&Holder>,
    journal: &LocalJournal,
) -> (String, Value) {
    let mut lines = vec![format!(
        "site '{}' ({}:{}{}, local {})",
        site.name,
        site.host,
        site.port,
        site.remote,
        site.local.display()
    )];
    lines.push(match deploy {
        Some(d) => format!(
            "last deploy: {} by {}{}, {} files ({}){}",
            rfc3339(deploy_time(d)),
            d.user,
            d.commit
                .as_ref()
                .map(|c| format!(" at commit {c}"))
                .unwrap_or_default(),
            d.files,
            crate::progress::human_size(d.bytes),
            if d.complete {
                ""
            } else {
                " (did not finish: the next export sends the rest)"
            }
        ),
        None => "last deploy: not recorded on the server".to_owned(),
    });
    lines.push(format!("state dir: {}", state_dir_shown(site)));
    lines.push(match lock {
        Some(h) => format!("lock: held by {h}"),
        None => "lock: not locked".to_owned(),
    });
    lines.push(match journal {
        LocalJournal::None => "this machine: no journal for this site".to_owned(),
        LocalJournal::InUse(p) => format!(
            "this machine: a run here is using the journal {}",
            p.display()
        ),
        LocalJournal::Known {
            path,
            files,
            bytes,
            written,
        } => format!(
            "this machine: {files} files ({}) recorded in {}{}",
            crate::progress::human_size(*bytes),
            path.display(),
            written
                .map(|t| format!(", last written {}", rfc3339(t)))
                .unwrap_or_default()
        ),
    });
    let value = json!({
        "site": site.name,
        "last_deploy": deploy.map(|d| json!({
            "id": d.id,
            "when": rfc3339(deploy_time(d)),
            "who": d.user,
            "version": d.version,
            "commit": d.commit,
            "complete": d.complete,
            "files": d.files,
            "bytes": d.bytes,
        })),
        "state_dir": state_dir_shown(site),
        "lock": lock.map(holder_json),
        "journal": journal_json(journal),
    });
    (lines.join("\n"), value)
}

/// When a deploy started (the document keeps seconds since the epoch).
fn deploy_time(d: &DeployInfo) -> SystemTime {
    SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(u64::try_from(d.time).unwrap_or(0))
}

fn journal_json(j: &LocalJournal) -> Value {
    match j {
        LocalJournal::None => Value::Null,
        LocalJournal::InUse(p) => json!({"path": p, "in_use": true}),
        LocalJournal::Known {
            path,
            files,
            bytes,
            written,
        } => json!({
            "path": path,
            "in_use": false,
            "files": files,
            "bytes": bytes,
            "written": written.map(rfc3339),
        }),
    }
}

/// Reads this machine's journal of `site` without creating one.
fn local_journal(ctx: &Context, site: &ResolvedSite) -> LocalJournal {
    let Some(dir) = journal_dir(ctx) else {
        return LocalJournal::None;
    };
    let mut path = crate::commands::journal_place::site_journal_path(&dir, site);
    if !path.exists() {
        // Not yet moved by a run: the journal from before journals were named after the remote.
        path = journal_path(&dir, &site.name);
    }
    let written = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
    if written.is_none() {
        return LocalJournal::None;
    }
    match Journal::open(&path) {
        Ok(j) => LocalJournal::Known {
            files: j.records().len(),
            bytes: j.records().values().map(|r| r.remote_size).sum(),
            path,
            written,
        },
        Err(_) => LocalJournal::InUse(path),
    }
}
