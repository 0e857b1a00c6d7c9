//! `siteport export`, `import` and `plan`: resolve only the named sites, then run the mirror
//! engine over FTP for each, with progress, a summary (or the JSON report) and exit codes.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use futures_util::StreamExt;
use indicatif::MultiProgress;
use serde_json::{Value, json};
use siteport_creds::CredentialBackend;
use siteport_creds::reference::process_env;
use siteport_sync::{
    Direction, Engine, GuardOptions, HashAlg, LockOwner, MaxDelete, Plan, ProblemKind, Refusal,
    RemoteFactory, Report, ScanProblem, SiteLock, Switch, SyncOptions, Verification, check_deletes,
};

use crate::commands::filters::FilterArgs;
use crate::commands::site::{endpoint, sync_error};
use crate::commands::site_lock;
use crate::config::{Config, ResolvedSite, SiteProtocol};
use crate::context::Context;
use crate::error::{CliError, CliResult};
use crate::exit::{self, Failure};
use crate::logging::eprint_redacted;
use crate::progress::{CliProgress, Mode, human_size, outcome_line, stats_interval};

/// Which sites a transfer command works on.
#[derive(Debug, Args)]
pub struct SiteSelection {
    /// Site names (`[[site]]` entries of the config).
    #[arg(value_name = "SITE", required_unless_present = "all")]
    pub sites: Vec<String>,
    /// Every site of the config, in file order.
    #[arg(long, conflicts_with = "sites")]
    pub all: bool,
}

/// Options shared by `export` and `import`.
#[derive(Debug, Args)]
pub struct TransferArgs {
    /// The sites.
    #[command(flatten)]
    pub selection: SiteSelection,
    /// Print the plan (action, path, size, reason) and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Delete what is gone from the source (the site's `delete = true` does the same for export).
    #[arg(long)]
    pub delete: bool,
    /// Parallel FTP connections [default: the site's max_connections, else 4].
    #[arg(long, short = 'j', value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: Option<u16>,
    /// When another run holds the site's lock, wait up to DURATION for it (`90s`, `2m`, `1h`)
    /// instead of failing at once with exit code 7.
    #[arg(long, value_name = "DURATION", value_parser = siteport_sync::parse_duration)]
    pub lock_wait: Option<Duration>,
    /// Filters and comparison.
    #[command(flatten)]
    pub filters: FilterArgs,
    /// Limit the transfer rate of the whole run (every connection together) to RATE bytes
    /// per second: `512K`, `1.5M` (K, M, G are powers of 1024).
    #[arg(long, value_name = "RATE", value_parser = crate::commands::filters::parse_rate)]
    pub bwlimit: Option<u64>,
    /// When stderr is not a terminal (a CI log), print a progress line (actions and bytes
    /// done, rate, time so far) every DURATION (`10s`, `1m`; `0`: never) [default: 30s]. A
    /// terminal shows live bars instead.
    #[arg(long, value_name = "DURATION", value_parser = siteport_sync::parse_duration)]
    pub stats: Option<Duration>,
    /// With several sites (`--all` or several names), run up to N of them at once, each with
    /// its own connections; each site's summary is printed when it ends, and a failing site
    /// never stops the others. `1`: one after another, in config order.
    #[arg(long, value_name = "N", default_value_t = 4,
          value_parser = clap::value_parser!(u16).range(1..=64))]
    pub parallel_sites: u16,
}

/// `siteport export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Sites and options.
    #[command(flatten)]
    pub common: TransferArgs,
    /// Compare content hashes for every file instead of trusting size and time.
    #[arg(long)]
    pub checksum: bool,
    /// Compare sizes and times only, never hashes: faster on a first export over a tree
    /// another tool uploaded, but a same-size edit is not sent.
    #[arg(long, conflicts_with = "checksum")]
    pub size_only: bool,
    /// Refuse to delete more than N remote files, or P% of them (`20`, `30%`) [default: the
    /// site's max_delete, else more than 50% when over 10 would go]. `100%` lifts the limit.
    #[arg(long, value_name = "N|P%", value_parser = clap::value_parser!(MaxDelete))]
    pub max_delete: Option<MaxDelete>,
    /// Let an export from an empty local directory delete the remote files.
    #[arg(long)]
    pub allow_empty: bool,
    /// After the run, list the remote again and check that every file sent has the size
    /// that was sent and, where the server offers a hash command (HASH, XSHA256, XSHA1, XMD5),
    /// the local file's content (exit 5 naming the files that differ).
    #[arg(long)]
    pub verify: bool,
    /// Publish DIR instead of the site's `local` directory, for this run only (one site). The
    /// site's sync journal is not used (an in-memory one is): sizes and times decide.
    #[arg(long, value_name = "DIR")]
    pub from: Option<PathBuf>,
    /// When the changes go live, overriding the site's `switch`: `burst` uploads every new
    /// and changed file under a temporary name first, then renames them all into place at
    /// once; `per-file` puts each file live as it arrives [default: the site's switch, else
    /// burst].
    #[arg(long, value_name = "MODE", value_parser = clap::value_parser!(Switch))]
    pub switch: Option<Switch>,
}

/// `siteport import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Sites and options.
    #[command(flatten)]
    pub common: TransferArgs,
    /// Fetch into DIR instead of the site's `local` directory, for this run only (one site;
    /// nothing else is written). The site's sync journal is not used (an in-memory one is), so
    /// it never marks the real local directory as in sync.
    #[arg(long, value_name = "DIR")]
    pub to: Option<PathBuf>,
}

/// One transfer command, whatever spelling it came from.
#[derive(Debug, Clone)]
pub struct Request {
    /// Export or import.
    pub direction: Direction,
    /// Site names; empty with `all`.
    pub sites: Vec<String>,
    /// Every site of the config.
    pub all: bool,
    /// Plan only.
    pub dry_run: bool,
    /// Delete extras on the target side.
    pub delete: bool,
    /// Connections, overriding the site's `max_connections`.
    pub jobs: Option<usize>,
    /// Compare hashes (export).
    pub checksum: bool,
    /// Sizes and times only (export `--size-only`).
    pub size_only: bool,
    /// Wait this long for the site lock.
    pub lock_wait: Option<Duration>,
    /// The delete guard's limit, overriding the site's (export).
    pub max_delete: Option<MaxDelete>,
    /// Let an empty local directory delete (export).
    pub allow_empty: bool,
    /// Check the sent files on the server afterwards (export).
    pub verify: bool,
    /// `import --to DIR` / `export --from DIR`: the local directory of this run.
    pub local: Option<PathBuf>,
    /// `--exclude`, `--include`, `--exclude-from`, `--ignore-times`.
    pub filters: FilterArgs,
    /// `--bwlimit`: bytes per second for the whole run.
    pub bwlimit: Option<u64>,
    /// `--stats`: a progress line this often on a non-terminal (`None`: the default).
    pub stats: Option<Duration>,
    /// Sites run at once (`--parallel-sites`).
    pub parallel_sites: usize,
    /// `--switch`, overriding the site's (export).
    pub switch: Option<Switch>,
}

impl Request {
    /// From `siteport export …`.
    pub fn export(a: ExportArgs) -> Self {
        Self {
            direction: Direction::Export,
            sites: a.common.selection.sites,
            all: a.common.selection.all,
            dry_run: a.common.dry_run,
            delete: a.common.delete,
            jobs: a.common.jobs.map(usize::from),
            checksum: a.checksum,
            size_only: a.size_only,
            lock_wait: a.common.lock_wait,
            max_delete: a.max_delete,
            allow_empty: a.allow_empty,
            verify: a.verify,
            local: a.from,
            filters: a.common.filters,
            bwlimit: a.common.bwlimit,
            stats: a.common.stats,
            parallel_sites: usize::from(a.common.parallel_sites),
            switch: a.switch,
        }
    }

    /// From `siteport import …`.
    pub fn import(a: ImportArgs) -> Self {
        Self {
            direction: Direction::Import,
            sites: a.common.selection.sites,
            all: a.common.selection.all,
            dry_run: a.common.dry_run,
            delete: a.common.delete,
            jobs: a.common.jobs.map(usize::from),
            checksum: false,
            size_only: false,
            lock_wait: a.common.lock_wait,
            max_delete: None,
            allow_empty: false,
            verify: false,
            local: a.to,
            filters: a.common.filters,
            bwlimit: a.common.bwlimit,
            stats: a.common.stats,
            parallel_sites: usize::from(a.common.parallel_sites),
            switch: None,
        }
    }

    /// From `siteport plan SITE`: an export dry run of one site.
    pub fn plan(site: String, filters: FilterArgs) -> Self {
        Self {
            direction: Direction::Export,
            sites: vec![site],
            all: false,
            dry_run: true,
            delete: false,
            jobs: None,
            checksum: false,
            size_only: false,
            lock_wait: None,
            max_delete: None,
            allow_empty: false,
            verify: false,
            local: None,
            filters,
            bwlimit: None,
            stats: None,
            parallel_sites: 1,
            switch: None,
        }
    }

    fn verb(&self) -> &'static str {
        match self.direction {
            Direction::Export => "export",
            Direction::Import => "import",
        }
    }
}

/// Runs the request. Each site is resolved (its credentials fetched) only when its turn
/// comes; a failing site does not stop the others, and the exit code is the first failure's.
pub async fn run(ctx: &Context, req: &Request) -> CliResult {
    let cfg = ctx.load_config()?;
    let names: Vec<String> = if req.all {
        cfg.sites.iter().map(|s| s.name.clone()).collect()
    } else {
        req.sites.clone()
    };
    if names.is_empty() {
        return Err(CliError::usage(format!(
            "no sites to {}: {} has no [[site]]",
            req.verb(),
            cfg.path.display()
        ))
        .with_hint("add a [[site]] table (see docs/config.md)"));
    }
    // Unknown names fail before anything is resolved or transferred.
    for n in &names {
        if cfg.site(n).is_none() {
            let known: Vec<&str> = cfg.sites.iter().map(|s| s.name.as_str()).collect();
            return Err(
                CliError::usage(format!("no site named '{n}' in {}", cfg.path.display()))
                    .with_hint(if known.is_empty() {
                        "add a [[site]] table to the config".to_owned()
                    } else {
                        format!("known sites: {}", known.join(", "))
                    }),
            );
        }
    }
    if req.local.is_some() && (req.all || names.len() != 1) {
        let flag = match req.direction {
            Direction::Export => "--from",
            Direction::Import => "--to",
        };
        return Err(
            CliError::usage(format!("{flag} DIR works on one site at a time")).with_hint(format!(
                "name one site: `siteport {} SITE {flag} DIR`",
                req.verb()
            )),
        );
    }
    if let Some(rate) = req.bwlimit {
        siteport_sync::set_bandwidth_limit(rate);
    }
    let backend = ctx.backend()?;
    let started = std::time::Instant::now();
    // A plan is printed whole, site after site: never interleaved.
    let parallel = if req.dry_run {
        1
    } else {
        req.parallel_sites.clamp(1, names.len())
    };
    let together = Together {
        resolving: tokio::sync::Mutex::new(()),
        display: (parallel > 1).then(MultiProgress::new),
    };
    let mut ran: Vec<(usize, CliResult<Value>, Option<Report>)> =
        futures_util::stream::iter(names.iter().enumerate())
            .map(|(i, name)| {
                let (cfg, backend, together) = (&cfg, backend.as_ref(), &together);
                async move {
                    // A partly failed run's report (what was done, every failed file and
                    // why), for --json.
                    let mut partial = None;
                    let r = run_site(ctx, req, cfg, backend, name, &mut partial, together).await;
                    (i, r, partial)
                }
            })
            .buffer_unordered(parallel)
            .collect()
            .await;
    // Results, the JSON and the exit code in config order, whichever site ended first.
    ran.sort_by_key(|(i, ..)| *i);
    let mut results: Vec<Value> = Vec::new();
    let mut failures: Vec<(String, CliError)> = Vec::new();
    for ((_, r, partial), name) in ran.into_iter().zip(&names) {
        match r {
            Ok(v) => results.push(v),
            Err(e) => {
                let mut v = json!({
                    "site": name,
                    "error": {"kind": e.kind, "message": e.message, "hint": e.hint, "exit_code": e.code},
                });
                if let Some(r) = partial {
                    v["failed"] = failed_files(&r);
                    v["report"] = json!(r);
                }
                results.push(v);
                failures.push((name.clone(), e));
            }
        }
    }
    if ctx.output.json {
        ctx.output.json_line(&json!({
            "command": if req.dry_run { "plan" } else { req.verb() },
            "sites": results,
        }))?;
    }
    if failures.len() == 1 && names.len() == 1 {
        return Err(failures.remove(0).1);
    }
    if failures.is_empty() {
        if names.len() > 1 && !ctx.output.json && ctx.verbosity != crate::logging::Verbosity::Quiet
        {
            // Each site printed its own summary as it ended; one line for the whole run.
            crate::output::print_line(&format!(
                "{}: all {} sites done in {:.1} s",
                if req.dry_run { "plan" } else { req.verb() },
                names.len(),
                started.elapsed().as_secs_f64()
            ))?;
        }
        return Ok(());
    }
    // Several sites: each error is shown as it stands, then one summary decides the exit code.
    for (_, e) in &failures {
        ctx.output.error(e);
    }
    let failed: Vec<&str> = failures.iter().map(|(n, _)| n.as_str()).collect();
    Err(CliError {
        code: failures[0].1.code,
        kind: failures[0].1.kind,
        message: format!(
            "{} of {} sites failed: {}",
            failures.len(),
            names.len(),
            failed.join(", ")
        ),
        hint: None,
    })
}

/// What the sites of one run share when several run at once.
struct Together {
    /// Held while a site's credentials are resolved: one passphrase or keychain prompt at a
    /// time, in config order as far as the sites start in it.
    resolving: tokio::sync::Mutex<()>,
    /// One display for every running site's bars (`None`: one site at a time).
    display: Option<MultiProgress>,
}

async fn run_site(
    ctx: &Context,
    req: &Request,
    cfg: &Config,
    backend: &dyn CredentialBackend,
    name: &str,
    partial: &mut Option<Report>,
    together: &Together,
) -> CliResult<Value> {
    let resolving = together.resolving.lock().await;
    let mut site = cfg.resolve_site(name, backend, &process_env).await?;
    drop(resolving);
    let local = req.local.clone().unwrap_or_else(|| site.local.clone());
    // Import creates a missing local directory; export and plan need it.
    cfg.check_files(&site, &local, req.direction == Direction::Import)?;
    site.local = local;
    let endpoint = endpoint(&site);
    // `tls` means nothing on an SFTP site (SSH encrypts): its protocol is shown instead.
    let wire = match site.protocol {
        SiteProtocol::Ftp => format!("ftp, tls {}", site.tls),
        SiteProtocol::Sftp => "sftp".to_string(),
    };
    tracing::info!(site = %site.name, server = %endpoint.server(), protocol = %wire, remote = %site.remote,
        local = %site.local.display(), "{}", req.verb());
    let sync = sync_options(req, &site)?;
    let (mode, stats) = if req.dry_run {
        (Mode::Silent, None)
    } else {
        (
            Mode::choose(ctx.verbosity, ctx.output.json),
            stats_interval(req.stats, ctx.verbosity),
        )
    };
    let progress = Arc::new(CliProgress::new(mode, &site.name, stats).shared(&together.display));
    let factory = siteport_sync::connect_factory(&endpoint);
    if req.dry_run {
        return dry_run(ctx, req, &site, factory, sync, progress).await;
    }
    // The lock's connection becomes the engine's first, and the engine's last one frees the
    // lock: two logins fewer per run (tens of ms on vsftpd, several round trips far away).
    let reuse = Arc::new(siteport_sync::ReusingFactory::new(factory));
    let factory: Arc<dyn siteport_sync::RemoteFactory> = reuse.clone();
    // The lock comes before the journal: a second run on this machine then hears "locked"
    // (exit 7, naming the holder), not that the journal is busy. Signals are caught from
    // before the lock is taken until it is released.
    let mut signals = site_lock::Signals::install();
    let owner = LockOwner::current(env!("CARGO_PKG_VERSION"));
    let wait = req.lock_wait.unwrap_or_default();
    let lock = tokio::select! {
        l = site_lock::acquire(&factory, &site, &owner, wait) => l?,
        sigterm = signals.recv() => {
            // Cut short: free the lock if the attempt got as far as taking it.
            let lock = SiteLock::for_owner(site_lock::state_dir(&site), owner);
            if let Ok(mut r) = factory.connect().await {
                let _ = lock.release(r.as_mut()).await;
                let _ = r.close().await;
            }
            return Err(site_lock::interrupted_error(&site, sigterm));
        }
    };
    let run = Locked {
        ctx,
        req,
        site: &site,
        factory: &factory,
        progress,
    };
    let outcome = run_locked(&run, sync, partial, &mut signals).await;
    site_lock::release(&factory, &site, &lock).await;
    reuse.close_spare().await;
    outcome
}

/// The engine's options for `site`.
fn sync_options(req: &Request, site: &ResolvedSite) -> CliResult<SyncOptions> {
    // The engine keeps the state dir (lock included) out of every transfer by itself.
    let excludes = req.filters.excludes(site)?;
    let mut sync = SyncOptions::new(site.local.clone());
    sync.state_dir = Some(site_lock::state_dir(site).to_owned());
    sync.excludes = excludes;
    sync.delete = req.delete || (req.direction == Direction::Export && site.delete);
    sync.checksum = req.checksum;
    sync.size_only = req.size_only;
    sync.max_connections = req.jobs.unwrap_or(site.max_connections).max(1);
    sync.switch = req.switch.unwrap_or(site.switch);
    Ok(sync)
}

/// The journal of this run: the site's own, or an in-memory one when `--to`/`--from` names
/// another directory (the site's journal describes its own tree, not that one).
fn open_journal(
    ctx: &Context,
    req: &Request,
    site: &ResolvedSite,
    dry_run: bool,
) -> CliResult<siteport_sync::Journal> {
    if req.local.is_some() {
        return Ok(siteport_sync::Journal::in_memory());
    }
    crate::commands::journal_place::open_journal(ctx, site, dry_run)
}

/// `--dry-run` and `plan`: plan and print, no lock, nothing changed.
async fn dry_run(
    ctx: &Context,
    req: &Request,
    site: &ResolvedSite,
    factory: Arc<dyn RemoteFactory>,
    sync: SyncOptions,
    progress: Arc<CliProgress>,
) -> CliResult<Value> {
    let journal = open_journal(ctx, req, site, true)?;
    let mut engine = Engine::new(factory, sync, journal, progress.clone());
    let mut plan = engine.plan(req.direction).await.map_err(|e| {
        progress.clear();
        sync_error(site, &e)
    })?;
    req.filters.apply(&mut plan);
    let _ = engine.finish().await;
    if !ctx.output.json {
        print_plan(site, &plan)?;
        if let Err(refusal) = check_deletes(&plan, &guard_options(req, site)) {
            tracing::warn!(site = %site.name, "a real run would refuse: {refusal}");
        }
    }
    // Only `--json` prints the value: a 100,000-file plan as a JSON tree is ~70 MiB.
    Ok(if ctx.output.json {
        json!({ "site": site.name, "plan": plan })
    } else {
        Value::Null
    })
}

fn guard_options(req: &Request, site: &ResolvedSite) -> GuardOptions {
    GuardOptions {
        max_delete: req.max_delete.unwrap_or(site.max_delete),
        allow_empty: req.allow_empty,
    }
}

/// What a run under the site lock works with.
struct Locked<'a> {
    ctx: &'a Context,
    req: &'a Request,
    site: &'a ResolvedSite,
    factory: &'a Arc<dyn RemoteFactory>,
    progress: Arc<CliProgress>,
}

/// Under the site lock: plan, check the plan against the delete guard, execute, verify. A
/// signal while planning or verifying drops that step (nothing is being written then); one
/// while executing stops the workers and cleans up after them (see `interrupt.rs`).
async fn run_locked(
    run: &Locked<'_>,
    sync: SyncOptions,
    partial: &mut Option<Report>,
    signals: &mut site_lock::Signals,
) -> CliResult<Value> {
    let Locked {
        ctx,
        req,
        site,
        factory,
        ref progress,
    } = *run;
    let journal = open_journal(ctx, req, site, false)?;
    let max_connections = sync.max_connections;
    let mut engine = Engine::new(factory.clone(), sync, journal, progress.clone());
    let planned = tokio::select! {
        p = engine.plan(req.direction) => p,
        sigterm = signals.recv() => {
            progress.clear();
            return Err(site_lock::interrupted_error(site, sigterm));
        }
    };
    let mut plan = planned.map_err(|e| {
        progress.clear();
        sync_error(site, &e)
    })?;
    req.filters.apply(&mut plan);
    if let Err(refusal) = check_deletes(&plan, &guard_options(req, site)) {
        progress.clear();
        let _ = engine.finish().await;
        return Err(guard_error(site, &refusal));
    }
    let report = tokio::select! {
        r = engine.execute(&plan) => r,
        sigterm = signals.recv() => {
            progress.clear();
            return Err(crate::commands::interrupt::stopped_during_execute(
                engine, &plan, site, sigterm, signals, partial,
            )
            .await);
        }
    };
    progress.clear();
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            let _ = engine.finish().await;
            return Err(sync_error(site, &e));
        }
    };
    // Before `finish`: a file found different is dropped from the journal and the deploy
    // state, so the next export sends it again.
    let verified = if req.verify && req.direction == Direction::Export && report.is_success() {
        // Verifying changes nothing on the server: a signal simply ends it.
        tokio::select! {
            v = verify_with(&mut engine, site, &report) => Some(v),
            sigterm = signals.recv() => {
                let _ = engine.finish().await;
                return Err(site_lock::interrupted_error(site, sigterm));
            }
        }
    } else {
        None
    };
    if let Err(e) = engine.finish().await {
        tracing::warn!(site = %site.name, "could not compact the journal: {e}");
    }
    // One block per site: with other sites' bars still drawing, printed between redraws.
    let printed = progress.suspend(|| -> CliResult<Option<CliError>> {
        if !ctx.output.json && ctx.verbosity != crate::logging::Verbosity::Quiet {
            crate::output::print_line(&summary(req, site, &report, max_connections))?;
        }
        for w in &report.warnings {
            tracing::warn!(site = %site.name, "{w}");
        }
        let refused = refused_names(req, site, &plan);
        if !report.is_success() {
            for o in report.failures() {
                eprint_redacted(&format!("{}\n", outcome_line(o)));
            }
        }
        Ok(refused)
    });
    let refused = printed?;
    if !report.is_success() {
        let (failed, total) = (report.counts.failed, report.outcomes.len());
        *partial = Some(report);
        return Err(CliError {
            code: exit::code(Failure::TransfersFailed),
            kind: "transfers_failed",
            message: format!(
                "site '{}': {} of {} actions failed",
                site.name, failed, total
            ),
            hint: Some(format!(
                "fix the causes above and run `siteport {} {}` again: finished files are not sent again",
                req.verb(),
                site.name
            )),
        });
    }
    let verified = match verified {
        Some(v) => Some(verify(ctx, site, v)?),
        None => None,
    };
    if let Some(e) = refused {
        *partial = Some(report);
        return Err(e);
    }
    Ok(if ctx.output.json {
        let (verified, verified_by) = match verified {
            Some((n, hash)) => (Some(n), Some(hash.map_or("size", |h| h.name()))),
            None => (None, None),
        };
        json!({ "site": site.name, "report": report, "verified": verified,
                "verified_by": verified_by })
    } else {
        Value::Null
    })
}

/// Names the scans refused as unsafe (`..`, `/`, `\`, NUL, control characters: a hostile
/// server's listing, or such a local file), each on a `refused` line of stderr (escaped, as
/// everything printed). Those on the side being mirrored from were not mirrored: the run
/// failed in part, exit 5 (the error returned). Those on the other side are only reported.
fn refused_names(req: &Request, site: &ResolvedSite, plan: &Plan) -> Option<CliError> {
    let unsafe_names = |ps: &[ScanProblem]| -> Vec<ScanProblem> {
        ps.iter()
            .filter(|p| p.kind == ProblemKind::UnsafeName)
            .cloned()
            .collect()
    };
    let (local, remote) = (
        unsafe_names(&plan.local_problems),
        unsafe_names(&plan.remote_problems),
    );
    for (side, ps) in [("local", &local), ("remote", &remote)] {
        for p in ps {
            eprint_redacted(&format!("refused   {side} {}: {}\n", p.path, p.detail));
        }
    }
    let (source, side) = match req.direction {
        Direction::Export => (local, "local"),
        Direction::Import => (remote, "remote"),
    };
    if source.is_empty() {
        return None;
    }
    let names: Vec<&str> = source.iter().take(10).map(|p| p.path.as_str()).collect();
    Some(
        CliError::new(
            Failure::TransfersFailed,
            "unsafe_names",
            format!(
                "site '{}': {} {side} name(s) refused as unsafe and not mirrored: {}{}",
                site.name,
                source.len(),
                names.join(", "),
                if source.len() > names.len() {
                    ", …"
                } else {
                    ""
                }
            ),
        )
        .with_hint(
            "siteport never mirrors a name that is `.` or `..` or holds `/`, `\\`, NUL or a \
             control character (ESC, BEL, …): rename them at the source; everything else was \
             mirrored",
        ),
    )
}

fn guard_error(site: &ResolvedSite, refusal: &Refusal) -> CliError {
    let hint = match refusal {
        Refusal::EmptySource(_) => format!(
            "build the site first or fix `local`; to really empty the remote site, run again with {}",
            refusal.override_flag()
        ),
        Refusal::TooManyDeletes { counts, .. } => format!(
            "check `local` and `exclude`; if these deletions are meant, run again with `--max-delete {}` \
             (or {}), or set `max_delete` in the site's config",
            counts.deletes,
            refusal.override_flag()
        ),
    };
    CliError::new(
        Failure::Guard,
        "guard",
        format!("site '{}': {refusal}", site.name),
    )
    .with_hint(hint)
}

/// The engine's check of what the run sent; its warnings (a state that could not be written
/// again) are logged.
async fn verify_with(
    engine: &mut Engine,
    site: &ResolvedSite,
    report: &Report,
) -> Result<Verification, CliError> {
    let v = engine
        .verify(report)
        .await
        .map_err(|e| sync_error(site, &e));
    for w in engine.take_warnings() {
        tracing::warn!(site = %site.name, "{w}");
    }
    v
}

/// `export --verify`: list the remote again and compare every sent file's size, and its hash
/// when the server offers one (exit 5 on a mismatch, naming the files). Returns how many files
/// were checked and the hash used (`None`: sizes only, said in one line).
fn verify(
    ctx: &Context,
    site: &ResolvedSite,
    v: Result<Verification, CliError>,
) -> CliResult<(usize, Option<HashAlg>)> {
    let v = v?;
    let (bad, checked) = (&v.mismatches, v.checked);
    if bad.is_empty() {
        let how = match v.hash {
            Some(h) => format!("by size and {} (the server's hash)", h.name()),
            None => "by size only: the server offers no hash command (HASH, XSHA256, XSHA1, \
                     XMD5), so a same-size change by another client would not show"
                .to_owned(),
        };
        let files = if checked == 1 { "file" } else { "files" };
        let line = format!("verified {checked} {files} on the server {how}");
        if !ctx.output.json && ctx.verbosity != crate::logging::Verbosity::Quiet {
            crate::output::print_line(&format!("{}: {line}", site.name))?;
        } else {
            tracing::info!(site = %site.name, "{line}");
        }
        return Ok((checked, v.hash));
    }
    for m in bad {
        eprint_redacted(&format!("mismatch  {m}\n"));
    }
    let names: Vec<&str> = bad.iter().take(10).map(|m| m.path.as_str()).collect();
    Err(CliError::new(
        Failure::TransfersFailed,
        "verify_failed",
        format!(
            "site '{}': verification failed: {} of {checked} files sent differ on the server: {}{}",
            site.name,
            bad.len(),
            names.join(", "),
            if bad.len() > names.len() { ", …" } else { "" }
        ),
    )
    .with_hint(format!(
        "another client or the server changed them after the upload (quota, filter?); run `siteport export {} --verify` again",
        site.name
    )))
}

/// `[{"op", "path", "kind", "message", "hint"}]` of every failed file of `r`.
fn failed_files(r: &Report) -> Value {
    let v: Vec<Value> = r
        .failures()
        .filter_map(|o| match &o.status {
            siteport_sync::Status::Failed {
                kind,
                message,
                hint,
            } => Some(json!({
                "op": o.op, "path": o.path, "kind": kind, "message": message, "hint": hint,
            })),
            siteport_sync::Status::Done => None,
        })
        .collect();
    Value::Array(v)
}

fn print_plan(site: &ResolvedSite, plan: &Plan) -> CliResult {
    let header = format!(
        "plan for site '{}' ({} {}:{}{}, local {}):\n{:<9} {:>12}  PATH  (REASON)",
        site.name,
        match plan.direction {
            Direction::Export => "to",
            Direction::Import => "from",
        },
        site.host,
        site.port,
        site.remote,
        site.local.display(),
        "ACTION",
        "SIZE"
    );
    crate::output::print_line(&format!("{header}\n{plan}"))
}

/// The summary line. Its counts are the plan's: directories as the plan listed them (the
/// site's remote root, created when missing, is named apart), skipped files under the JSON's
/// name, and the connections used out of those allowed (only as many open as the work needs).
fn summary(req: &Request, site: &ResolvedSite, r: &Report, max_connections: usize) -> String {
    let c = &r.counts;
    let moved = match req.direction {
        Direction::Export => format!("{} uploaded", c.uploaded),
        Direction::Import => format!("{} downloaded", c.downloaded),
    };
    let made_root = r
        .outcomes
        .iter()
        .any(|o| o.op == siteport_sync::Op::Mkdir && o.path.is_empty() && !o.failed());
    let dirs = if made_root {
        format!("{} dirs created (and the remote root)", c.dirs_created - 1)
    } else {
        format!("{} dirs created", c.dirs_created)
    };
    // Only when there were any: the leftovers of a run that died, removed before this one.
    let temps = match r.temps_removed.len() {
        0 => String::new(),
        n => format!(", {n} stale temporary file(s) removed"),
    };
    // How long the live site mixed old and new files, when any file went live.
    let switched = match (r.switch, r.switch_window_ms) {
        (Some(siteport_sync::Switch::Burst), Some(ms)) => {
            format!("; switched in one burst in {:.3} s", ms as f64 / 1000.0)
        }
        (Some(siteport_sync::Switch::PerFile), Some(ms)) => {
            format!("; switched file by file over {:.1} s", ms as f64 / 1000.0)
        }
        _ => String::new(),
    };
    format!(
        "{} {}: {moved} ({}), {dirs}, {} deleted{temps}, {} skipped as unchanged, {} failed in {:.1} s over {} of {} connection(s){switched}",
        req.verb(),
        site.name,
        human_size(r.bytes),
        c.deleted + c.dirs_removed,
        c.skipped,
        c.failed,
        r.duration_ms as f64 / 1000.0,
        r.connections,
        max_connections
    )
}
