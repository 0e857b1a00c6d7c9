//! `siteport status SITE`: the last deploy, the site lock, and what this machine's journal
//! knows.
//!
//! The last deploy comes from a [`DeployRecord`]. Today nothing reads one from the server, so
//! [`run`] passes `None` and the report says what it can from the lock and the local journal;
//! the deploy state document on the server (`<state dir>/state.json`) fills it in through
//! [`report`] without changing the output's shape.

use std::path::PathBuf;
use std::time::SystemTime;

use clap::Args;
use serde_json::{Value, json};
use siteport_sync::{Holder, Journal, rfc3339};

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

/// The last deploy of a site, as a deploy state document records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployRecord {
    /// When it finished.
    pub when: SystemTime,
    /// `user@host` of the run.
    pub who: String,
    /// The git commit of the local directory, when it was in a checkout.
    pub commit: Option<String>,
    /// Files on the server after it.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
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
    let _ = remote.close().await;
    let lock = lock.map_err(|e| sync_error(&site, &e))?;
    let journal = local_journal(ctx, &site);
    let (human, value) = report(&site, None, lock.as_ref(), &journal);
    ctx.output.result(&human, &value)
}

/// The status text and its `--json` form, from what is known: the last deploy (when a deploy
/// state was read), the lock, the local journal.
pub fn report(
    site: &ResolvedSite,
    deploy: Option<&DeployRecord>,
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
            "last deploy: {} by {}{}, {} files ({} bytes)",
            rfc3339(d.when),
            d.who,
            d.commit
                .as_ref()
                .map(|c| format!(" at commit {c}"))
                .unwrap_or_default(),
            d.files,
            d.bytes
        ),
        None => "last deploy: not recorded on the server".to_owned(),
    });
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
            "this machine: {files} files ({bytes} bytes) recorded in {}{}",
            path.display(),
            written
                .map(|t| format!(", last written {}", rfc3339(t)))
                .unwrap_or_default()
        ),
    });
    let value = json!({
        "site": site.name,
        "last_deploy": deploy.map(|d| json!({
            "when": rfc3339(d.when),
            "who": d.who,
            "commit": d.commit,
            "files": d.files,
            "bytes": d.bytes,
        })),
        "lock": lock.map(holder_json),
        "journal": journal_json(journal),
    });
    (lines.join("\n"), value)
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
    let path = journal_path(&dir, &site.name);
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
