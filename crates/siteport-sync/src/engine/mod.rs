//! The engine: scans both sides, plans, and executes the plan over N reused connections.
//!
//! - this file: the options ([`SyncOptions`], [`RetryPolicy`]), the state the workers share,
//!   and [`Engine`]'s phases (plan, execute, finish);
//! - `scan.rs`: the remote tree, listed level by level over the connections;
//! - `scheduler.rs`: the work queue, the worker pool (how many connections, when to open
//!   another), retries with backoff, reconnects, the lowered count after `421`;
//! - `transfer.rs`: one remote action per job (upload, delete, mkdir) and its journal entry;
//! - `download.rs`: one download, finished into place (temporary file, fsync, mode, mtime,
//!   rename) and journaled;
//! - `local.rs`: an import's local directory operations.
//!
//! Every local file, read or written, goes through the site root's handle
//! (`crate::local_fs`): no link followed at any component, and a file read is the one the
//! scan saw.

mod burst;
mod deploy;
mod download;
mod local;
mod prehash;
mod scan;
mod scheduler;
mod temps;
mod transfer;
mod verify;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::error::{Error, ErrorKind, Result};
use crate::journal::{Journal, hash_reader};
use crate::local_fs::{FileId, LocalRoot};
use crate::plan::{
    Action, Baseline, Direction, Op, Plan, PlanOptions, plan_export_with, plan_import,
};
use crate::remote::{Capabilities, Remote, RemoteFactory};
use crate::report::{FileOutcome, Progress, Report, Status};
use crate::tree::{Excludes, Tree, scan_local};

use crate::state_dir::in_web_root;
use deploy::set_aside_state_dir;
use local::create_local_root;
use scheduler::{Job, Queue, Results, Worker, levels};

pub use burst::Switch;

/// How transient errors are retried: exponential backoff from `base_delay`, doubled each
/// time up to `max_delay`, for at most `max_attempts` tries in all, on a fresh connection
/// each time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries in all (1 = no retry).
    pub max_attempts: u32,
    /// Delay before the first retry.
    pub base_delay: Duration,
    /// Longest delay between tries.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.saturating_sub(1).min(16);
        self.base_delay.saturating_mul(factor).min(self.max_delay)
    }
}

/// What to mirror and how.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// The local site directory.
    pub local_root: PathBuf,
    /// Paths left alone on both sides: never sent, fetched or deleted.
    pub excludes: Excludes,
    /// Delete target entries that are gone from the source.
    pub delete: bool,
    /// Compare content hashes (against the journal) for every file.
    pub checksum: bool,
    /// Connections (logins) at most; default 4. Workers: this many times what one login
    /// serves ([`RemoteFactory::streams_per_login`]: one for FTP, several for SFTP).
    pub max_connections: usize,
    /// Retries of transient errors.
    pub retry: RetryPolicy,
    /// `--size-only`: compare sizes and times only, never hash (misses same-size edits).
    pub size_only: bool,
    /// Where the deploy state (and the lock) is kept: relative to the remote root (default
    /// [`DEFAULT_STATE_DIR`](crate::DEFAULT_STATE_DIR); then it is kept out of every transfer
    /// and gets an `.htaccess`), or absolute on the server, outside the web root (see
    /// [`locate_state_dir`](crate::locate_state_dir)); `None`: no state on the server.
    pub state_dir: Option<String>,
    /// The state is written during the run after this many uploads (default 500) or every
    /// 10 s, whichever comes first.
    pub state_save_every: usize,
    /// When an export's changes go live: all at once after the uploads (the default), or
    /// each file as it arrives (see [`Switch`]).
    pub switch: Switch,
}

impl SyncOptions {
    /// Defaults for the site at `local_root`: no excludes, no deletes, 4 connections.
    pub fn new(local_root: impl Into<PathBuf>) -> Self {
        Self {
            local_root: local_root.into(),
            excludes: Excludes::none(),
            delete: false,
            checksum: false,
            max_connections: 4,
            retry: RetryPolicy::default(),
            size_only: false,
            state_dir: Some(crate::state::DEFAULT_STATE_DIR.to_string()),
            state_save_every: deploy::SAVE_EVERY,
            switch: Switch::default(),
        }
    }
}

struct Shared {
    factory: Arc<dyn RemoteFactory>,
    queue: Mutex<Queue>,
    results: Mutex<Results>,
    stop: Arc<AtomicBool>,
    fatal: Mutex<Option<Error>>,
    caps: Mutex<Option<Capabilities>>,
    pool_size: AtomicUsize,
    retry: RetryPolicy,
    progress: Arc<dyn Progress>,
    /// Bytes of uploads and downloads so far, counted as they go (see
    /// [`Progress::live_bytes`]).
    moved: Arc<AtomicU64>,
    journal: Mutex<Journal>,
    /// The deploy state of the export in progress (`None`: no state kept).
    deploy: Mutex<Option<deploy::Tracker>>,
    local_root: PathBuf,
    /// The local root, opened once per plan: every local file is reached from it.
    root_dir: Mutex<Option<Arc<LocalRoot>>>,
    /// What the last scan saw of each local file: where to read it (a link's target) and
    /// which file it must be.
    sources: Mutex<HashMap<String, (String, Option<FileId>)>>,
    direction: Mutex<Direction>,
    /// What opening a connection costs (the last one measured, ns; 0 = not yet known).
    login_ns: AtomicU64,
    /// Some worker has logged in during this engine's life: the server is up and takes the
    /// login (see `scheduler::login_cut_is_free`).
    logged_in: AtomicBool,
    /// Workers logging in right now.
    logging_in: AtomicUsize,
    /// Logins started ahead of the work (see [`Engine::log_in_ahead`]), for the workers
    /// that need a connection.
    ahead: Mutex<Vec<PendingLogin>>,
    /// Logins to start that way once the run's first login is done.
    ahead_wanted: AtomicUsize,
    /// Jobs finished in the current phase and their summed wall time: the cost of one job.
    phase_jobs: AtomicU64,
    /// Jobs the phases after the current one will bring (an export's uploads while its
    /// directories are made): counted as work left when deciding on another connection, so
    /// that the connections the uploads need log in while the directories are made.
    upcoming: AtomicU64,
    phase_busy_ns: AtomicU64,
    /// Transfers under way (paths): what an interrupted run may have left half-written.
    /// A staged upload stays in it until its rename is answered.
    in_flight: Mutex<BTreeSet<String>>,
    /// Uploads are staged for a burst switch (see `burst.rs`).
    burst: AtomicBool,
    /// The staged uploads waiting for the burst, by path.
    staged: Mutex<BTreeMap<String, burst::Pending>>,
    /// A per-file switch: when the first and the last file went live.
    live_window: Mutex<Option<(Instant, Instant)>>,
}

impl Shared {
    /// The local root's handle, opened on first use (an import creates the root first).
    fn root(&self) -> Result<Arc<LocalRoot>> {
        let mut r = lock(&self.root_dir);
        if let Some(root) = r.as_ref() {
            return Ok(root.clone());
        }
        let root = Arc::new(LocalRoot::open(&self.local_root)?);
        *r = Some(root.clone());
        Ok(root)
    }

    /// Where to read the local file `path` and which file it must be, as the scan saw it.
    /// A plan not made by this engine has no scan: the file is still opened without
    /// following links and must be a regular file, but its identity is not known.
    fn source_of(&self, path: &str) -> (String, Option<FileId>) {
        lock(&self.sources)
            .get(path)
            .cloned()
            .unwrap_or_else(|| (path.to_string(), None))
    }
}

/// A login under way in the background (see [`Engine::log_in_ahead`]).
type PendingLogin = tokio::task::JoinHandle<Result<Box<dyn Remote>>>;

/// Starts `n` logins in the background for the workers to take (see
/// [`Engine::log_in_ahead`]).
fn start_logins(sh: &Shared, n: usize) {
    let mut ahead = lock(&sh.ahead);
    for _ in 0..n {
        let factory = sh.factory.clone();
        ahead.push(tokio::spawn(async move { factory.connect().await }));
    }
}

/// Locks a mutex, recovering the data if a worker panicked while holding it: every critical
/// section here leaves the data consistent.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The mirror engine for one site. Typical use:
///
/// ```no_run
/// # async fn f(factory: std::sync::Arc<dyn siteport_sync::RemoteFactory>) -> siteport_sync::Result<()> {
/// use siteport_sync::*;
/// let journal = Journal::open("/home/me/.local/state/siteport/journal/acme.json".as_ref())?;
/// let mut engine = Engine::new(factory, SyncOptions::new("public"), journal, std::sync::Arc::new(NoProgress));
/// let plan = engine.plan(Direction::Export).await?;
/// let report = engine.execute(&plan).await?;
/// engine.finish().await?;
/// # Ok(()) }
/// ```
pub struct Engine {
    shared: Arc<Shared>,
    opts: SyncOptions,
    pool: Vec<Worker>,
    remote_root_missing: bool,
    /// siteport's temporary files the last remote scan found (see `temps.rs`).
    remote_temps: Vec<String>,
    /// Workers made so far (the pool grows once a login says it carries several).
    workers_made: usize,
}

impl Engine {
    /// A new engine. No connection is opened until [`plan`](Engine::plan).
    pub fn new(
        factory: Arc<dyn RemoteFactory>,
        opts: SyncOptions,
        journal: Journal,
        progress: Arc<dyn Progress>,
    ) -> Self {
        let n = opts.max_connections.max(1) * factory.streams_per_login().max(1);
        let shared = Arc::new(Shared {
            factory,
            queue: Mutex::new(Queue::default()),
            results: Mutex::new(Results::default()),
            stop: Arc::new(AtomicBool::new(false)),
            fatal: Mutex::new(None),
            caps: Mutex::new(None),
            pool_size: AtomicUsize::new(n),
            retry: opts.retry,
            moved: progress.live_bytes().unwrap_or_default(),
            progress,
            journal: Mutex::new(journal),
            deploy: Mutex::new(None),
            local_root: opts.local_root.clone(),
            root_dir: Mutex::new(None),
            sources: Mutex::new(HashMap::new()),
            direction: Mutex::new(Direction::Export),
            login_ns: AtomicU64::new(0),
            logged_in: AtomicBool::new(false),
            logging_in: AtomicUsize::new(0),
            ahead: Mutex::new(Vec::new()),
            ahead_wanted: AtomicUsize::new(0),
            phase_jobs: AtomicU64::new(0),
            upcoming: AtomicU64::new(0),
            phase_busy_ns: AtomicU64::new(0),
            in_flight: Mutex::new(BTreeSet::new()),
            burst: AtomicBool::new(false),
            staged: Mutex::new(BTreeMap::new()),
            live_window: Mutex::new(None),
        });
        let pool = (0..n)
            .map(|id| Worker {
                id,
                conn: None,
                opened: false,
                counted_login: false,
                reconnects: 0,
            })
            .collect();
        Self {
            shared,
            opts,
            pool,
            remote_root_missing: false,
            remote_temps: Vec::new(),
            workers_made: n,
        }
    }

    /// Adds workers up to `max_connections` × [`RemoteFactory::streams_per_login`], which a
    /// factory may raise once its first login has told it what the server takes (between
    /// phases: a phase's workers are all in the pool then). Workers retired since (after
    /// `421`) are not made again.
    pub(super) fn grow_pool(&mut self) {
        let want =
            self.opts.max_connections.max(1) * self.shared.factory.streams_per_login().max(1);
        if want <= self.workers_made {
            return;
        }
        for id in self.workers_made..want {
            self.pool.push(Worker {
                id,
                conn: None,
                opened: false,
                counted_login: false,
                reconnects: 0,
            });
        }
        self.shared
            .pool_size
            .fetch_add(want - self.workers_made, Ordering::SeqCst);
        self.workers_made = want;
    }

    /// Has the pool's other connections log in in the background as soon as the run's
    /// first login is done (see `attempt_job`): the workers then take them instead of
    /// logging in once their work has started. Not before it, so that the first worker
    /// takes the connection the site lock handed on (see `ReusingFactory`).
    fn log_in_ahead(&mut self) {
        let idle = self.pool.iter().filter(|w| w.conn.is_none()).count();
        let connected = self.pool.len() - idle;
        let want = idle.saturating_sub(usize::from(connected == 0));
        if connected > 0 {
            start_logins(&self.shared, want);
        } else {
            self.shared.ahead_wanted.store(want, Ordering::SeqCst);
        }
    }

    /// A flag that, once set, makes workers stop taking new actions (actions in flight
    /// finish and are journaled). For Ctrl-C handling, and for tests that simulate a crash.
    pub fn stop_handle(&self) -> Arc<AtomicBool> {
        self.shared.stop.clone()
    }

    /// Connections currently in the pool (lowered after `421` replies).
    pub fn connections(&self) -> usize {
        self.pool.len()
    }

    /// Scans the local tree and lists the remote tree (directories in parallel over the
    /// connections), then plans. Changes nothing: this is `--dry-run` and `siteport plan`.
    pub async fn plan(&mut self, direction: Direction) -> Result<Plan> {
        *lock(&self.shared.direction) = direction;
        let root = self.opts.local_root.clone();
        let excludes = self.opts.excludes.clone();
        let local_missing = direction == Direction::Import
            && matches!(std::fs::symlink_metadata(&root), Err(e) if e.kind() == std::io::ErrorKind::NotFound);
        // The local scan runs while the remote side is logged in to and listed: one waits on
        // the disk, the other on the server.
        *lock(&self.shared.root_dir) = None;
        // Opened before the scan: what the scan sees and what is read later are reached from
        // the same directory. A root that cannot be opened is reported by the scan.
        if !local_missing {
            let _ = self.shared.root();
        }
        let local_scan = (!local_missing)
            .then(|| tokio::task::spawn_blocking(move || scan_local(&root, &excludes)));
        // An export hashes the files the stat cache cannot vouch for while the server is
        // still being listed (see prehash.rs): with no journal that is every file.
        let hash_ahead = direction == Direction::Export && !self.opts.size_only;
        let (shared, checksum) = (self.shared.clone(), self.opts.checksum);
        let local_side = async move {
            let Some(scan) = local_scan else {
                return (Ok(Tree::default()), None);
            };
            let local = scan
                .await
                .map_err(|e| {
                    Error::new(
                        ErrorKind::LocalIo,
                        "local scan",
                        format!("scan failed: {e}"),
                    )
                })
                .and_then(|r| r);
            let ahead = match (&local, shared.root()) {
                (Ok(tree), Ok(root)) if hash_ahead => {
                    let items = prehash::uncached(tree, lock(&shared.journal).records(), checksum);
                    (!items.is_empty()).then(|| prehash::Ahead::start(root, items))
                }
                _ => None,
            };
            (local, ahead)
        };
        // A first run from this machine (no journal: a first export, an import into a new
        // directory, any run on a fresh CI runner) almost always has files to move, and
        // at a distance a login is several round trips: the other connections log in
        // beside the listing of the root (and then list the levels below with it) rather
        // than once the transfers have started. A run with a journal opens them only as
        // the work shows it pays (see `run_phase`).
        if lock(&self.shared.journal).records().is_empty() {
            self.log_in_ahead();
        }
        let (remote, (local, ahead)) = tokio::join!(self.scan_remote(direction), local_side);
        let local = local?;
        self.shared.progress.scanned(true, local.entries.len());
        let remote = remote?;
        self.shared.progress.scanned(false, remote.entries.len());
        let (mut local, mut remote) = (local, remote);
        let stale_temps = self.split_temps(direction, &mut local, &mut remote);
        let state_dir = self.state_dir()?;
        let listing = match state_dir.as_deref() {
            Some(d) if in_web_root(d) => Some(set_aside_state_dir(d, &mut local, &mut remote)),
            // Outside the web root the scan never saw it: one listing of its own.
            Some(d) if direction == Direction::Export => Some(self.list_outside_state_dir(d).await),
            _ => None,
        };
        let caps = lock(&self.shared.caps).unwrap_or_default();
        let popts = PlanOptions {
            delete: self.opts.delete,
            checksum: self.opts.checksum,
            capabilities: caps,
            size_only: self.opts.size_only,
        };
        let mut notes = Vec::new();
        let state = match (&state_dir, &listing) {
            (Some(d), Some(l)) if direction == Direction::Export => {
                self.load_state(d, l, &mut notes).await
            }
            _ => None,
        };
        let records = lock(&self.shared.journal).records().clone();
        let proven = if direction == Direction::Export && !self.opts.size_only {
            let base = Baseline {
                journal: &records,
                state: state.as_ref().map(|s| &s.files),
                proven: &BTreeMap::new(),
            };
            self.prove_by_server_hash(&local, &remote, &base).await
        } else {
            BTreeMap::new()
        };
        let hashed = match ahead {
            Some(ahead) => ahead.finish(&remote).await,
            None => HashMap::new(),
        };
        *lock(&self.shared.sources) = local
            .entries
            .iter()
            .filter(|(_, e)| e.kind == crate::remote::EntryKind::File)
            .map(|(p, e)| {
                let (from, id) = e.read_from(p);
                (p.clone(), (from.to_string(), id))
            })
            .collect();
        let root = self.shared.root().ok();
        let (local, remote, records, state, proven, mut plan) =
            tokio::task::spawn_blocking(move || {
                let mut hasher = |p: &str| {
                    if let Some(h) = hashed.get(p) {
                        return Some(h.clone());
                    }
                    let (from, id) = local.entries.get(p)?.read_from(p);
                    let (f, _) = root.as_ref()?.open_scanned(from, id).ok()?;
                    hash_reader(f).ok()
                };
                let base = Baseline {
                    journal: &records,
                    state: state.as_ref().map(|s| &s.files),
                    proven: &proven,
                };
                let plan = match direction {
                    Direction::Export => {
                        plan_export_with(&local, &remote, &base, &popts, &mut hasher)
                    }
                    Direction::Import => {
                        plan_import(&local, &remote, &records, &popts, &mut hasher)
                    }
                };
                (local, remote, records, state, proven, plan)
            })
            .await
            .map_err(|e| {
                Error::new(
                    ErrorKind::LocalIo,
                    "planner",
                    format!("planning failed: {e}"),
                )
            })?;
        drop(local);
        plan.notes.splice(0..0, notes);
        plan.stale_temps = stale_temps;
        *lock(&self.shared.deploy) = None;
        if let (Some(d), Some(l), Direction::Export) = (&state_dir, &listing, direction) {
            let base = Baseline {
                journal: &records,
                state: state.as_ref().map(|s| &s.files),
                proven: &proven,
            };
            self.start_tracker(d, l, state.as_ref(), &base, &remote, &plan);
        }
        self.shared.progress.planned(&plan);
        Ok(plan)
    }

    /// Executes a plan made by [`plan`](Engine::plan): directories first (parents first),
    /// then transfers over the connections, then deletes (files, then directories deepest
    /// first). Every completed file is journaled at once.
    ///
    /// Per-file failures are in the [`Report`]; an `Err` means the run could not go on at all
    /// (login refused, TLS failure, server unreachable): what completed before is journaled.
    pub async fn execute(&mut self, plan: &Plan) -> Result<Report> {
        let started = Instant::now();
        *lock(&self.shared.direction) = plan.direction;
        let mut report = Report::new(plan);
        let changes = !plan.is_noop();
        {
            let mut j = lock(&self.shared.journal);
            if changes
                && lock(&self.shared.deploy).is_some()
                && let Err(e) = j.set_state_cache(None)
            {
                report.warnings.push(e.to_string());
            }
            if let Err(e) = j.record_many(plan.journal_updates.iter().map(|(p, r)| (p, r))) {
                report.warnings.push(e.to_string());
            }
        }
        self.remove_stale_temps(plan, &mut report).await;
        let by = |op: Op| plan.actions.iter().filter(move |a| a.op == op).cloned();
        for a in by(Op::Conflict) {
            let o = FileOutcome {
                op: a.op,
                path: a.path.clone(),
                bytes: 0,
                attempts: 0,
                status: Status::Failed {
                    kind: ErrorKind::Conflict,
                    message: format!("{}: {}", a.path, a.reason.as_str()),
                    hint: Some("remove or rename one of the two, then run again".into()),
                },
            };
            self.shared.progress.finished(0, &o);
            report.add(o);
        }
        match plan.direction {
            Direction::Export => {
                if self.remote_root_missing {
                    let root = Action {
                        op: Op::Mkdir,
                        path: String::new(),
                        size: 0,
                        reason: crate::plan::Reason::New,
                        source_mtime: None,
                    };
                    self.run_phase(vec![Job::Act(root)]).await;
                }
                let later = by(Op::Upload).count() + by(Op::Delete).count();
                self.shared.upcoming.store(later as u64, Ordering::SeqCst);
                for d in levels(by(Op::Mkdir).collect(), false) {
                    self.run_phase(d.into_iter().map(Job::Act).collect()).await;
                }
                self.shared.upcoming.store(0, Ordering::SeqCst);
                self.set_burst(self.opts.switch == Switch::Burst);
                *lock(&self.shared.live_window) = None;
                self.run_phase(by(Op::Upload).map(Job::Act).collect()).await;
                let window = self.publish_staged(&mut report.interrupted).await;
                // A transport that cannot stage put its files live one by one: that is the
                // switch this run made.
                let per_file = *lock(&self.shared.live_window);
                report.switch = Some(match (window, per_file) {
                    (None, Some(_)) => Switch::PerFile,
                    _ => self.opts.switch,
                });
                report.switch_window_ms = window
                    .or(per_file.map(|(first, last)| last - first))
                    .map(|d| d.as_millis() as u64);
                self.relist_uploaded().await;
                self.run_phase(by(Op::Delete).map(Job::Act).collect()).await;
                for d in levels(by(Op::RemoveDir).collect(), true) {
                    self.run_phase(d.into_iter().map(Job::Act).collect()).await;
                }
                if lock(&self.shared.fatal).is_none() {
                    self.finish_state(&mut report.warnings).await;
                }
                report.warnings.extend(self.shared.factory.take_notes());
            }
            Direction::Import => {
                if !self.stopped() {
                    create_local_root(&self.opts.local_root)?;
                }
                for a in by(Op::Mkdir) {
                    self.local_op(&a);
                }
                self.run_phase(by(Op::Download).map(Job::Act).collect())
                    .await;
                for a in by(Op::Delete).chain(by(Op::RemoveDir)) {
                    self.local_op(&a);
                }
            }
        }
        let results = std::mem::take(&mut *lock(&self.shared.results));
        for (_, o) in results.outcomes {
            report.add(o);
        }
        report.warnings.extend(results.warnings);
        report.stopped = self.stopped();
        report.connections = self.logins_opened();
        report.set_duration(started.elapsed());
        self.check_fatal()?;
        Ok(report)
    }

    /// The connections (logins) the workers opened: workers fill one login's streams before
    /// the next login, so that is the workers that opened one over the streams per login.
    pub(super) fn logins_opened(&self) -> usize {
        let opened = self.pool.iter().filter(|w| w.opened).count();
        opened.div_ceil(self.shared.factory.streams_per_login().max(1))
    }

    /// Plans and executes in one go.
    pub async fn run(&mut self, direction: Direction) -> Result<Report> {
        let plan = self.plan(direction).await?;
        self.execute(&plan).await
    }

    /// Closes the connections politely and compacts the journal. Dropping the engine without
    /// calling it loses nothing (the journal log is replayed on the next open).
    pub async fn finish(mut self) -> Result<()> {
        // All at once: one after another, each QUIT's answer cost a round trip.
        let mut closing = tokio::task::JoinSet::new();
        for w in &mut self.pool {
            if let Some(mut c) = w.conn.take() {
                closing.spawn(async move {
                    let _ = c.close().await;
                });
            }
        }
        for h in std::mem::take(&mut *lock(&self.shared.ahead)) {
            closing.spawn(async move {
                if let Ok(Ok(mut c)) = h.await {
                    let _ = c.close().await;
                }
            });
        }
        while closing.join_next().await.is_some() {}
        lock(&self.shared.journal).compact()
    }

    /// The state dir option, checked: relative to the remote root, or absolute on the server
    /// (outside the web root).
    pub(super) fn state_dir(&self) -> Result<Option<String>> {
        match &self.opts.state_dir {
            None => Ok(None),
            Some(d) => {
                let d = match d.strip_prefix('/') {
                    Some(abs) => format!("/{}", abs.trim_end_matches('/')),
                    None => d.trim_end_matches('/').to_string(),
                };
                crate::path::check_remote_path(&d).map_err(|why| {
                    Error::new(
                        ErrorKind::Config,
                        "state dir",
                        format!("the deploy state dir {d:?} is refused: {why}"),
                    )
                })?;
                Ok(Some(d))
            }
        }
    }

    fn stopped(&self) -> bool {
        self.shared.stop.load(Ordering::SeqCst)
    }

    fn check_fatal(&self) -> Result<()> {
        match lock(&self.shared.fatal).take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}
