//! The site lock around `export` and `import` (taking it, waiting for it, freeing it, also on
//! Ctrl-C and SIGTERM), and `siteport unlock SITE`.

use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use serde_json::json;
use siteport_creds::reference::process_env;
use siteport_sync::{Attempt, Holder, LockOwner, RemoteFactory, SiteLock, lock_with_wait};
use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::commands::site::{endpoint, sync_error};
use crate::config::ResolvedSite;
use crate::context::Context;
use crate::error::{CliError, CliResult};
use crate::exit::Failure;

/// How often a run waiting with `--lock-wait` looks again.
const POLL: Duration = Duration::from_secs(1);

/// The state directory of a site: where the lock (and the deploy state) live. Relative to
/// its remote root (default `.siteport`), or absolute on the server when the site's
/// `state_dir` puts it outside the web root.
pub fn state_dir(site: &ResolvedSite) -> &str {
    &site.state_dir
}

/// Takes the lock of `site` for `owner` before a run changes anything: once, or for up to
/// `wait`. A lock held by another run is exit 7, naming the holder and since when.
pub async fn acquire(
    factory: &Arc<dyn RemoteFactory>,
    site: &ResolvedSite,
    owner: &LockOwner,
    wait: Duration,
) -> CliResult<SiteLock> {
    let mut remote = factory.connect().await.map_err(|e| sync_error(site, &e))?;
    let name = site.name.clone();
    let mut on_wait = |h: &Holder| {
        tracing::warn!(site = %name, "the site is locked by {h}; waiting up to {}", human(wait));
    };
    let attempt = lock_with_wait(
        remote.as_mut(),
        state_dir(site),
        owner,
        site.lock_timeout,
        wait,
        POLL,
        &mut on_wait,
    )
    .await;
    let _ = remote.close().await;
    match attempt.map_err(|e| sync_error(site, &e))? {
        Attempt::Acquired(lock) => Ok(lock),
        Attempt::TakenOver { lock, previous } => {
            tracing::warn!(
                site = %site.name,
                "took over a lock older than lock_timeout ({}), held by {previous}",
                human(site.lock_timeout)
            );
            Ok(lock)
        }
        Attempt::Held(holder) => Err(locked_error(site, &holder, wait)),
    }
}

fn locked_error(site: &ResolvedSite, holder: &Holder, wait: Duration) -> CliError {
    let waited = if wait.is_zero() {
        String::new()
    } else {
        format!(" (waited {})", human(wait))
    };
    CliError::new(
        Failure::Locked,
        "locked",
        format!(
            "site '{}' is locked by another run: {holder}{waited}",
            site.name
        ),
    )
    .with_hint(format!(
        "wait for it with `--lock-wait 10m`; if that run is dead, free the lock with `siteport unlock {}` \
         (a lock older than lock_timeout = {} is taken over by the next run)",
        site.name,
        human(site.lock_timeout)
    ))
}

/// Frees the lock at the end of a run: on the connection the run left (a [`ReusingFactory`]'s
/// spare), or, when that one has timed out meanwhile, on a new one. A failure is a warning:
/// the run's own outcome decides the exit code.
///
/// [`ReusingFactory`]: siteport_sync::ReusingFactory
pub async fn release(factory: &Arc<dyn RemoteFactory>, site: &ResolvedSite, lock: &SiteLock) {
    async fn once(
        factory: &Arc<dyn RemoteFactory>,
        lock: &SiteLock,
    ) -> siteport_sync::Result<bool> {
        let mut r = factory.connect().await?;
        let res = lock.release(r.as_mut()).await;
        // A connection that failed is dropped, not handed back for another try.
        if res.is_ok() {
            let _ = r.close().await;
        }
        res
    }
    let freed = match once(factory, lock).await {
        Err(e) if e.is_retryable() => once(factory, lock).await,
        other => other,
    };
    match freed {
        Ok(true) => tracing::debug!(site = %site.name, "site lock released"),
        Ok(false) => tracing::warn!(
            site = %site.name,
            "the site lock was no longer ours (taken over or freed by `siteport unlock`); left alone"
        ),
        Err(e) => tracing::warn!(
            site = %site.name,
            "could not release the site lock: {e}; free it with `siteport unlock {}`",
            site.name
        ),
    }
}

/// Ctrl-C (SIGINT) and SIGTERM, caught from the moment [`Signals::install`] returns (before
/// the lock is taken, so that no signal can kill a run between taking the lock and watching
/// for signals): a caught signal no longer kills the process, the run frees its lock first.
pub struct Signals {
    int: Option<Signal>,
    term: Option<Signal>,
}

impl Signals {
    /// Installs the handlers. A handler that cannot be installed leaves that signal's default
    /// action (the run is then killed as before, and its lock expires after `lock_timeout`).
    pub fn install() -> Self {
        Self {
            int: signal(SignalKind::interrupt()).ok(),
            term: signal(SignalKind::terminate()).ok(),
        }
    }

    /// Resolves at the next signal: `false` for SIGINT, `true` for SIGTERM.
    pub async fn recv(&mut self) -> bool {
        async fn next(s: &mut Option<Signal>) {
            match s {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            () = next(&mut self.int) => false,
            () = next(&mut self.term) => true,
        }
    }
}

/// The error of a run stopped by a signal (exit 130 or 143).
pub fn interrupted_error(site: &ResolvedSite, sigterm: bool) -> CliError {
    CliError::new(
        Failure::Interrupted { sigterm },
        "interrupted",
        format!(
            "site '{}': stopped by {} (the site lock was released)",
            site.name,
            if sigterm { "SIGTERM" } else { "Ctrl-C" }
        ),
    )
    .with_hint(format!(
        "run `siteport export {}` again: finished files are not sent again",
        site.name
    ))
}

/// `90s`, `2m`, `1h` as the flags take them.
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 && s.is_multiple_of(3600) {
        format!("{}h", s / 3600)
    } else if s >= 60 && s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

/// `siteport unlock SITE`.
#[derive(Debug, Args)]
pub struct UnlockArgs {
    /// Site name (a `[[site]]` in the config).
    pub site: String,
}

/// Frees the lock of a site whoever holds it, and says who did. Asks nothing: the holder may
/// be a run on another machine that died; a live run's own release then finds the lock gone
/// and leaves it alone.
pub async fn unlock(ctx: &Context, args: UnlockArgs) -> CliResult {
    let site = resolve(ctx, &args.site).await?;
    let factory = siteport_sync::connect_factory(&endpoint(&site));
    let mut remote = factory.connect().await.map_err(|e| sync_error(&site, &e))?;
    let freed = siteport_sync::break_lock(remote.as_mut(), state_dir(&site)).await;
    let _ = remote.close().await;
    let freed = freed.map_err(|e| sync_error(&site, &e))?;
    let human = match &freed {
        Some(h) => format!("site '{}': freed the lock held by {h}", site.name),
        None => format!("site '{}' was not locked", site.name),
    };
    ctx.output.result(
        &human,
        &json!({"site": site.name, "freed": freed.is_some(), "holder": freed.as_ref().map(holder_json)}),
    )
}

/// A holder for `--json`.
pub fn holder_json(h: &Holder) -> serde_json::Value {
    json!({
        "user_host": h.owner.as_ref().map(|o| o.user_host.as_str()),
        "pid": h.owner.as_ref().map(|o| o.pid),
        "version": h.owner.as_ref().map(|o| o.version.as_str()),
        "since": h.started_at().map(siteport_sync::rfc3339),
    })
}

/// Resolves one named site (its credential fetched), or says which sites exist.
pub async fn resolve(ctx: &Context, name: &str) -> CliResult<ResolvedSite> {
    let cfg = ctx.load_config()?;
    if cfg.site(name).is_none() {
        let known: Vec<&str> = cfg.sites.iter().map(|s| s.name.as_str()).collect();
        return Err(
            CliError::usage(format!("no site named '{name}' in {}", cfg.path.display())).with_hint(
                if known.is_empty() {
                    "add a [[site]] table to the config".to_owned()
                } else {
                    format!("known sites: {}", known.join(", "))
                },
            ),
        );
    }
    let backend = ctx.backend()?;
    Ok(cfg
        .resolve_site(name, backend.as_ref(), &process_env)
        .await?)
}
