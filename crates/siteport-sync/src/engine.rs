//! The engine: scans both sides, plans, and executes the plan over N reused connections.

use std::collections::VecDeque;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::error::{Error, ErrorKind, Result};
use crate::journal::{Journal, JournalRecord, hash_file, to_ns};
use crate::path::{check_name, depth, join, local_path};
use crate::plan::{Action, Direction, Op, Plan, PlanOptions, plan_export, plan_import};
use crate::remote::{Capabilities, EntryKind, Remote, RemoteEntry, RemoteFactory};
use crate::report::{FileOutcome, Progress, Report, Status};
use crate::tree::{Excludes, ProblemKind, ScanProblem, Tree, TreeEntry, scan_local};

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
    /// Connections (and workers) at most; default 4.
    pub max_connections: usize,
    /// Retries of transient errors.
    pub retry: RetryPolicy,
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
        }
    }
}

/// One worker's connection slot.
struct Worker {
    id: usize,
    conn: Option<Box<dyn Remote>>,
    /// Has logged in at least once (the pool opens connections only as work needs them).
    opened: bool,
    /// Counted in `Shared::logging_in` from being spawned to log in until it has.
    counted_login: bool,
}

#[derive(Clone)]
enum Job {
    List(String),
    Act(Action),
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    running: usize,
}

#[derive(Default)]
struct Results {
    listings: Vec<(String, Result<Vec<RemoteEntry>>)>,
    outcomes: Vec<(usize, FileOutcome)>,
    warnings: Vec<String>,
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
    journal: Mutex<Journal>,
    local_root: PathBuf,
    direction: Mutex<Direction>,
    /// What opening a connection costs (the last one measured, ns; 0 = not yet known).
    login_ns: AtomicU64,
    /// Workers logging in right now.
    logging_in: AtomicUsize,
    /// Jobs finished in the current phase and their summed wall time: the cost of one job.
    phase_jobs: AtomicU64,
    phase_busy_ns: AtomicU64,
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
}

impl Engine {
    /// A new engine. No connection is opened until [`plan`](Engine::plan).
    pub fn new(
        factory: Arc<dyn RemoteFactory>,
        opts: SyncOptions,
        journal: Journal,
        progress: Arc<dyn Progress>,
    ) -> Self {
        let n = opts.max_connections.max(1);
        let shared = Arc::new(Shared {
            factory,
            queue: Mutex::new(Queue::default()),
            results: Mutex::new(Results::default()),
            stop: Arc::new(AtomicBool::new(false)),
            fatal: Mutex::new(None),
            caps: Mutex::new(None),
            pool_size: AtomicUsize::new(n),
            retry: opts.retry,
            progress,
            journal: Mutex::new(journal),
            local_root: opts.local_root.clone(),
            direction: Mutex::new(Direction::Export),
            login_ns: AtomicU64::new(0),
            logging_in: AtomicUsize::new(0),
            phase_jobs: AtomicU64::new(0),
            phase_busy_ns: AtomicU64::new(0),
        });
        let pool = (0..n)
            .map(|id| Worker {
                id,
                conn: None,
                opened: false,
                counted_login: false,
            })
            .collect();
        Self {
            shared,
            opts,
            pool,
            remote_root_missing: false,
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
        let local_scan = (!local_missing)
            .then(|| tokio::task::spawn_blocking(move || scan_local(&root, &excludes)));
        let remote = self.scan_remote(direction).await;
        let local = match local_scan {
            None => Tree::default(),
            Some(scan) => scan.await.map_err(|e| {
                Error::new(
                    ErrorKind::LocalIo,
                    "local scan",
                    format!("scan failed: {e}"),
                )
            })??,
        };
        self.shared.progress.scanned(true, local.entries.len());
        let remote = remote?;
        self.shared.progress.scanned(false, remote.entries.len());
        let (mut local, mut remote) = (local, remote);
        // Our own temporary files (a crashed run's leftovers) are never a source; on the
        // target side they are extras, which `delete` cleans up.
        match direction {
            Direction::Export => set_aside_temp_files(&mut local),
            Direction::Import => set_aside_temp_files(&mut remote),
        }
        let caps = lock(&self.shared.caps).unwrap_or_default();
        let popts = PlanOptions {
            delete: self.opts.delete,
            checksum: self.opts.checksum,
            capabilities: caps,
        };
        let records = lock(&self.shared.journal).records().clone();
        let root = self.opts.local_root.clone();
        let plan = tokio::task::spawn_blocking(move || {
            let mut hasher = |p: &str| hash_file(&local_path(&root, p)).ok();
            match direction {
                Direction::Export => plan_export(&local, &remote, &records, &popts, &mut hasher),
                Direction::Import => plan_import(&local, &remote, &records, &popts, &mut hasher),
            }
        })
        .await
        .map_err(|e| {
            Error::new(
                ErrorKind::LocalIo,
                "planner",
                format!("planning failed: {e}"),
            )
        })?;
        self.shared.progress.planned(&plan);
        Ok(plan)
    }

    async fn scan_remote(&mut self, direction: Direction) -> Result<Tree> {
        let mut tree = Tree::default();
        let mut level = vec![String::new()];
        self.remote_root_missing = false;
        while !level.is_empty() {
            self.run_phase(level.drain(..).map(Job::List).collect())
                .await;
            self.check_fatal()?;
            let mut listings = std::mem::take(&mut lock(&self.shared.results).listings);
            listings.sort_by(|a, b| a.0.cmp(&b.0));
            for (dir, res) in listings {
                let entries = match res {
                    Ok(e) => e,
                    Err(e) if dir.is_empty() && e.kind() == ErrorKind::NotFound => {
                        if direction == Direction::Import {
                            return Err(Error::new(
                                ErrorKind::NotFound,
                                self.shared.factory.describe(),
                                "the remote directory does not exist",
                            )
                            .with_hint("check `remote` in the site's config"));
                        }
                        self.remote_root_missing = true;
                        continue;
                    }
                    Err(e) if dir.is_empty() => return Err(e),
                    Err(e) => {
                        // Nothing under an unlistable directory is touched.
                        tree.kept.insert(dir.clone());
                        tree.entries.remove(&dir);
                        tree.problems.push(ScanProblem {
                            path: dir,
                            kind: ProblemKind::Unreadable,
                            detail: e.to_string(),
                        });
                        continue;
                    }
                };
                for ent in entries {
                    if ent.name == "." || ent.name == ".." {
                        continue;
                    }
                    if let Err(why) = check_name(&ent.name) {
                        let shown = join(&dir, &ent.name.escape_debug().to_string());
                        tracing::warn!(path = %shown, why, "unsafe remote name refused");
                        tree.kept.insert(shown.clone());
                        tree.problems.push(ScanProblem {
                            path: shown,
                            kind: ProblemKind::UnsafeName,
                            detail: format!("unsafe remote name refused: {why}"),
                        });
                        continue;
                    }
                    let path = join(&dir, &ent.name);
                    match ent.kind {
                        EntryKind::Dir => {
                            if self.opts.excludes.prunes_dir(&path) {
                                tree.kept.insert(path);
                            } else {
                                tree.entries.insert(path.clone(), TreeEntry::dir());
                                level.push(path);
                            }
                        }
                        EntryKind::File => {
                            if self.opts.excludes.is_excluded(&path) {
                                tree.kept.insert(path);
                            } else {
                                tree.entries.insert(
                                    path,
                                    TreeEntry::file(ent.size, ent.mtime, ent.mtime_precise),
                                );
                            }
                        }
                        EntryKind::Symlink | EntryKind::Other => {
                            if !self.opts.excludes.is_excluded(&path) {
                                tree.problems.push(ScanProblem {
                                    path: path.clone(),
                                    kind: if ent.kind == EntryKind::Symlink {
                                        ProblemKind::Symlink
                                    } else {
                                        ProblemKind::Special
                                    },
                                    detail: "remote link or special entry left alone".into(),
                                });
                            }
                            tree.kept.insert(path);
                        }
                    }
                }
            }
        }
        Ok(tree)
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
        {
            let mut j = lock(&self.shared.journal);
            for (p, r) in &plan.journal_updates {
                if let Err(e) = j.record(p, r.clone()) {
                    report.warnings.push(e.to_string());
                    break;
                }
            }
        }
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
                for d in levels(by(Op::Mkdir).collect(), false) {
                    self.run_phase(d.into_iter().map(Job::Act).collect()).await;
                }
                self.run_phase(by(Op::Upload).map(Job::Act).collect()).await;
                self.run_phase(by(Op::Delete).map(Job::Act).collect()).await;
                for d in levels(by(Op::RemoveDir).collect(), true) {
                    self.run_phase(d.into_iter().map(Job::Act).collect()).await;
                }
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
        report.connections = self.pool.iter().filter(|w| w.opened).count();
        report.set_duration(started.elapsed());
        self.check_fatal()?;
        Ok(report)
    }

    /// Plans and executes in one go.
    pub async fn run(&mut self, direction: Direction) -> Result<Report> {
        let plan = self.plan(direction).await?;
        self.execute(&plan).await
    }

    /// Closes the connections politely and compacts the journal. Dropping the engine without
    /// calling it loses nothing (the journal log is replayed on the next open).
    pub async fn finish(mut self) -> Result<()> {
        for w in &mut self.pool {
            if let Some(mut c) = w.conn.take() {
                let _ = c.close().await;
            }
        }
        lock(&self.shared.journal).compact()
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

    /// Runs jobs over the pool's connections and waits for all of them. Workers that retire
    /// (after `421`) leave the pool for the rest of the run.
    ///
    /// Connections already open all start at once. A new one is opened only while the work
    /// left per connection takes longer than a login: a connection costs the server a login
    /// (on vsftpd with PAM, 50 ms of CPU), which a short phase (the listings of a no-change
    /// run) never earns back, while a long one (thousands of uploads) opens them all within
    /// milliseconds.
    async fn run_phase(&mut self, jobs: Vec<Job>) {
        if jobs.is_empty() || self.stopped() {
            return;
        }
        let sh = self.shared.clone();
        {
            let mut q = lock(&sh.queue);
            q.jobs.extend(jobs);
            q.running = 0;
        }
        sh.phase_jobs.store(0, Ordering::SeqCst);
        sh.phase_busy_ns.store(0, Ordering::SeqCst);
        let (mut idle, ready): (Vec<Worker>, Vec<Worker>) =
            self.pool.drain(..).partition(|w| w.conn.is_none());
        idle.reverse(); // popped from the end: lowest id first
        let mut set = tokio::task::JoinSet::new();
        let spawn = |set: &mut tokio::task::JoinSet<Option<Worker>>, w: Worker| {
            lock(&sh.queue).running += 1;
            set.spawn(worker_loop(sh.clone(), w));
        };
        for w in ready {
            spawn(&mut set, w);
        }
        if set.is_empty()
            && let Some(w) = idle.pop()
        {
            spawn(&mut set, w);
        }
        let mut tick = tokio::time::interval(Duration::from_millis(2));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                joined = set.join_next() => match joined {
                    Some(Ok(Some(w))) => self.pool.push(w),
                    Some(Ok(None)) => {}
                    Some(Err(e)) => lock(&sh.results)
                        .warnings
                        .push(format!("a worker ended abnormally: {e}")),
                    None => {
                        // Every worker is done; jobs are left only if they all retired.
                        let left = !lock(&sh.queue).jobs.is_empty();
                        match idle.pop() {
                            Some(w) if left && !self.stopped() => spawn(&mut set, w),
                            Some(w) => {
                                idle.push(w);
                                break;
                            }
                            None => break,
                        }
                    }
                },
                _ = tick.tick(), if !idle.is_empty() => {
                    while !idle.is_empty() && worth_another_connection(&sh) {
                        if let Some(mut w) = idle.pop() {
                            // Counted from now: the next look sees it as logging in.
                            sh.logging_in.fetch_add(1, Ordering::SeqCst);
                            w.counted_login = true;
                            spawn(&mut set, w);
                        }
                    }
                }
            }
        }
        self.pool.extend(idle);
        self.pool.sort_by_key(|w| w.id);
        // Left over only when stopped: the rest is for the next run.
        lock(&sh.queue).jobs.clear();
    }

    /// An import's local directory operation, done in place (no connection needed).
    fn local_op(&self, a: &Action) {
        if self.stopped() {
            return;
        }
        let root = &self.opts.local_root;
        let r = local_dir_op(root, a);
        if r.is_ok() && a.op == Op::Delete {
            let mut j = lock(&self.shared.journal);
            if let Err(e) = j.remove(&a.path) {
                lock(&self.shared.results).warnings.push(e.to_string());
            }
        }
        let o = outcome(a, r.map(|()| 0), 1);
        self.shared.progress.finished(0, &o);
        lock(&self.shared.results).outcomes.push((0, o));
    }
}

/// Whether a name is one of siteport's temporary files: `.siteport-*.part` (downloads, and
/// `LocalDirRemote` uploads) or `.NAME.TAG.siteport-tmp` (FTP uploads).
pub(crate) fn is_temp_name(name: &str) -> bool {
    name.starts_with('.')
        && ((name.starts_with(".siteport-") && name.ends_with(".part"))
            || name.ends_with(".siteport-tmp"))
}

fn set_aside_temp_files(tree: &mut Tree) {
    let temps: Vec<String> = tree
        .entries
        .iter()
        .filter(|(p, e)| {
            e.kind == EntryKind::File && is_temp_name(p.rsplit('/').next().unwrap_or(p))
        })
        .map(|(p, _)| p.clone())
        .collect();
    for p in temps {
        tree.entries.remove(&p);
        tree.kept.insert(p);
    }
}

/// Groups directory actions by depth: shallowest first, or deepest first.
fn levels(mut actions: Vec<Action>, deepest_first: bool) -> Vec<Vec<Action>> {
    actions.sort_by_key(|a| depth(&a.path));
    if deepest_first {
        actions.reverse();
    }
    let mut out: Vec<Vec<Action>> = Vec::new();
    for a in actions {
        match out.last_mut() {
            Some(l) if l.first().is_some_and(|f| depth(&f.path) == depth(&a.path)) => l.push(a),
            _ => out.push(vec![a]),
        }
    }
    out
}

fn outcome(a: &Action, r: Result<u64>, attempts: u32) -> FileOutcome {
    match r {
        Ok(bytes) => FileOutcome {
            op: a.op,
            path: a.path.clone(),
            bytes,
            attempts,
            status: Status::Done,
        },
        Err(e) => FileOutcome {
            op: a.op,
            path: a.path.clone(),
            bytes: 0,
            attempts,
            status: Status::Failed {
                kind: e.kind(),
                message: e.to_string(),
                hint: e.hint().map(str::to_string),
            },
        },
    }
}

enum JobEnd {
    Done,
    Retire,
}

async fn worker_loop(sh: Arc<Shared>, mut w: Worker) -> Option<Worker> {
    loop {
        let job = {
            let mut q = lock(&sh.queue);
            let next = if sh.stop.load(Ordering::SeqCst) {
                None
            } else {
                q.jobs.pop_front()
            };
            match next {
                Some(j) => j,
                None => {
                    q.running -= 1;
                    if std::mem::replace(&mut w.counted_login, false) {
                        sh.logging_in.fetch_sub(1, Ordering::SeqCst);
                    }
                    return Some(w);
                }
            }
        };
        if let JobEnd::Retire = run_job(&sh, &mut w, job).await {
            return None;
        }
    }
}

async fn run_job(sh: &Shared, w: &mut Worker, job: Job) -> JobEnd {
    if let Job::Act(a) = &job {
        sh.progress.started(w.id, a);
    }
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let (e, connecting) = match attempt_job(sh, w, &job).await {
            Ok(bytes) => {
                if let Job::Act(a) = &job {
                    finish(sh, w.id, outcome(a, Ok(bytes), attempt));
                }
                return JobEnd::Done;
            }
            Err(x) => x,
        };
        if e.is_retryable() {
            // The connection may be half-broken; the next try opens a fresh one.
            w.conn = None;
        }
        if e.is_fatal() {
            sh.stop.store(true, Ordering::SeqCst);
            fail(sh, w.id, &job, e, attempt, true);
            return JobEnd::Done;
        }
        let exhausted =
            !e.is_retryable() || attempt >= sh.retry.max_attempts || sh.stop.load(Ordering::SeqCst);
        if e.kind() == ErrorKind::TooManyConnections || (connecting && exhausted) {
            let mut q = lock(&sh.queue);
            if q.running > 1 {
                // Others carry on: hand the job back and lower the connection count.
                q.jobs.push_front(job);
                q.running -= 1;
                drop(q);
                let left = sh.pool_size.fetch_sub(1, Ordering::SeqCst) - 1;
                let msg = format!(
                    "{}: {}; continuing with {left} connection(s)",
                    sh.factory.describe(),
                    e.detail()
                );
                sh.progress.notice(&msg);
                lock(&sh.results).warnings.push(msg);
                return JobEnd::Retire;
            }
        }
        if !exhausted {
            let d = sh.retry.delay(attempt);
            tracing::debug!(error = %e, attempt, ?d, "retrying");
            tokio::time::sleep(d).await;
            continue;
        }
        // The last worker cannot connect at all: the whole run is over.
        fail(sh, w.id, &job, e, attempt, connecting);
        if connecting {
            sh.stop.store(true, Ordering::SeqCst);
        }
        return JobEnd::Done;
    }
}

/// Whether one more connection would finish the phase sooner: the work left per working
/// connection (jobs left × the mean job time so far) exceeds twice what a login costs (the
/// margin is for the server CPU a login takes from the others: on 2 cores a no-change run
/// over FTPS took 245 ms with 2 connections and 315 ms with 4).
///
/// While a login is under way another is started only for a long phase (ten logins' worth
/// of work each): otherwise the estimate is retaken once the new connection works, which
/// keeps a short phase from paying for logins it cannot earn back.
fn worth_another_connection(sh: &Shared) -> bool {
    let login = sh.login_ns.load(Ordering::SeqCst);
    let done = sh.phase_jobs.load(Ordering::SeqCst);
    let logging_in = sh.logging_in.load(Ordering::SeqCst) as u64;
    let (left, running) = {
        let q = lock(&sh.queue);
        (q.jobs.len() as u64, q.running as u64)
    };
    if left == 0 || sh.stop.load(Ordering::SeqCst) {
        return false;
    }
    if login == 0 || done == 0 {
        // Nothing measured yet: wait for the first job (or login) to finish.
        return false;
    }
    let per_job = sh.phase_busy_ns.load(Ordering::SeqCst) / done;
    let working = running.saturating_sub(logging_in).max(1);
    let per_conn = left.saturating_mul(per_job) / working;
    if logging_in > 0 {
        return per_conn > login.saturating_mul(10);
    }
    per_conn > login.saturating_mul(2)
}

fn finish(sh: &Shared, worker: usize, o: FileOutcome) {
    sh.progress.finished(worker, &o);
    lock(&sh.results).outcomes.push((worker, o));
}

fn fail(sh: &Shared, worker: usize, job: &Job, e: Error, attempts: u32, fatal: bool) {
    match job {
        Job::Act(a) => finish(sh, worker, outcome(a, Err(e.duplicate()), attempts)),
        Job::List(dir) => lock(&sh.results)
            .listings
            .push((dir.clone(), Err(e.duplicate()))),
    }
    if fatal {
        let mut f = lock(&sh.fatal);
        if f.is_none() {
            *f = Some(e);
        }
    }
}

async fn attempt_job(sh: &Shared, w: &mut Worker, job: &Job) -> Result<u64, (Error, bool)> {
    let conn = match &mut w.conn {
        Some(c) => c,
        None => {
            let started = Instant::now();
            if !std::mem::replace(&mut w.counted_login, false) {
                sh.logging_in.fetch_add(1, Ordering::SeqCst);
            }
            let c = sh.factory.connect().await;
            sh.logging_in.fetch_sub(1, Ordering::SeqCst);
            let c = c.map_err(|e| (e, true))?;
            sh.login_ns
                .store(started.elapsed().as_nanos() as u64, Ordering::SeqCst);
            let mut caps = lock(&sh.caps);
            if caps.is_none() {
                *caps = Some(c.capabilities());
            }
            drop(caps);
            w.opened = true;
            w.conn.insert(c)
        }
    };
    let started = Instant::now();
    let res = match job {
        Job::List(dir) => {
            let entries = conn.list_dir(dir).await.map_err(|e| (e, false))?;
            lock(&sh.results).listings.push((dir.clone(), Ok(entries)));
            Ok(0)
        }
        Job::Act(a) => {
            let direction = *lock(&sh.direction);
            remote_action(sh, conn.as_mut(), a, direction)
                .await
                .map_err(|e| (e, false))
        }
    };
    if res.is_ok() {
        sh.phase_jobs.fetch_add(1, Ordering::SeqCst);
        sh.phase_busy_ns
            .fetch_add(started.elapsed().as_nanos() as u64, Ordering::SeqCst);
    }
    res
}

async fn remote_action(
    sh: &Shared,
    conn: &mut dyn Remote,
    a: &Action,
    direction: Direction,
) -> Result<u64> {
    let gone_ok = |r: Result<()>| match r {
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e),
        Ok(()) => Ok(0),
    };
    match (direction, a.op) {
        (Direction::Export, Op::Mkdir) => conn.mkdir(&a.path).await.map(|()| 0),
        (Direction::Export, Op::Upload) => upload(sh, conn, a).await,
        (Direction::Export, Op::Delete) => {
            let n = gone_ok(conn.delete_file(&a.path).await)?;
            journal_remove(sh, &a.path);
            Ok(n)
        }
        (Direction::Export, Op::RemoveDir) => gone_ok(conn.remove_dir(&a.path).await),
        (Direction::Import, Op::Download) => download(sh, conn, a).await,
        (_, op) => Err(Error::new(
            ErrorKind::Config,
            a.path.clone(),
            format!("internal: {} is not a remote action here", op.as_str()),
        )),
    }
}

fn journal_record(sh: &Shared, path: &str, rec: JournalRecord) {
    if let Err(e) = lock(&sh.journal).record(path, rec) {
        lock(&sh.results).warnings.push(e.to_string());
    }
}

fn journal_remove(sh: &Shared, path: &str) {
    if let Err(e) = lock(&sh.journal).remove(path) {
        lock(&sh.results).warnings.push(e.to_string());
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(Error::new(
            ErrorKind::LocalIo,
            "worker",
            format!("local task failed: {e}"),
        ))
    })
}

/// Files up to this size are read (upload) or received (download) whole in memory, with one
/// trip to the blocking pool per file for stat, read, hash (and on download write, fsync,
/// rename); larger ones are streamed. Most of a website is small files, and for them those
/// trips cost more than the bytes.
const SMALL_FILE: u64 = 1024 * 1024;

async fn upload(sh: &Shared, conn: &mut dyn Remote, a: &Action) -> Result<u64> {
    let abs = local_path(&sh.local_root, &a.path);
    // A small file is read right here, on the runtime thread: a few KiB from the page cache
    // take microseconds, less than the hand-off to the blocking pool and back (which was the
    // largest cost per file of a first export). Larger files are hashed as they are sent:
    // one pass over the file instead of two, and the hash is of exactly the bytes sent.
    let (hash, size, mtime, n, from_memory) = match read_small(&abs)? {
        Some((m, data)) => {
            let h = blake3::hash(&data).to_hex().to_string();
            let mtime = m.modified().ok();
            let n = conn
                .put_atomic_contents(&abs, &data, &a.path, mtime)
                .await?;
            (h, m.len(), mtime, n, true)
        }
        None => {
            let m = std::fs::metadata(&abs).map_err(|e| Error::local_io("stat", &abs, e))?;
            if !m.is_file() {
                // Replaced by a FIFO or device since the scan: opening it could block forever.
                return Err(Error::new(
                    ErrorKind::LocalIo,
                    abs.display().to_string(),
                    "no longer a regular file; not uploaded",
                ));
            }
            let mtime = m.modified().ok();
            let hasher = Arc::new(Mutex::new(blake3::Hasher::new()));
            let feed = hasher.clone();
            let observe: crate::remote::ReadObserver = Box::new(move |chunk: &[u8]| {
                lock(&feed).update(chunk);
            });
            let n = conn.put_atomic(&abs, &a.path, mtime, Some(observe)).await?;
            let h = lock(&hasher).finalize().to_hex().to_string();
            (h, m.len(), mtime, n, false)
        }
    };
    // Journal only what was actually sent: a file edited during the upload goes again. A
    // file sent from memory needs no second look: its hash is of exactly the bytes sent, so an
    // edit after the stat shows up next run as an mtime that differs, then a hash that
    // matches what the server has.
    let unchanged = n == size
        && (from_memory
            || std::fs::metadata(&abs)
                .is_ok_and(|m| m.len() == size && m.modified().ok() == mtime));
    if unchanged {
        journal_record(
            sh,
            &a.path,
            JournalRecord {
                size,
                local_mtime_ns: mtime.map(to_ns),
                remote_size: n,
                remote_mtime_ns: None,
                hash,
            },
        );
    }
    Ok(n)
}

async fn download(sh: &Shared, conn: &mut dyn Remote, a: &Action) -> Result<u64> {
    if a.size <= SMALL_FILE {
        // Room for a file that grew a little since it was listed; beyond that it fails and
        // the next run plans it again with its new size.
        let max = (SMALL_FILE * 2) as usize;
        if let Some(data) = conn.get_contents(&a.path, max).await? {
            return download_finish(sh, a, data).await;
        }
    }
    let root = sh.local_root.clone();
    let rel = a.path.clone();
    let tmp = blocking(move || {
        let dst = check_local_target(&root, &rel, false)?;
        let dir = dst.parent().unwrap_or(&root).to_path_buf();
        tempfile::Builder::new()
            .prefix(".siteport-")
            .suffix(".part")
            .tempfile_in(&dir)
            .map_err(|e| Error::local_io("create temporary file", &dir, e))
    })
    .await?;
    let n = conn.get(&a.path, tmp.path()).await?;
    let root = sh.local_root.clone();
    let rel = a.path.clone();
    let mtime = a.source_mtime;
    let (hash, local_mtime) = blocking(move || {
        let f = tmp.as_file();
        let tp = tmp.path().to_path_buf();
        f.sync_all().map_err(|e| Error::local_io("fsync", &tp, e))?;
        f.set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(|e| Error::local_io("chmod", &tp, e))?;
        if let Some(t) = mtime {
            filetime::set_file_handle_times(f, None, Some(filetime::FileTime::from_system_time(t)))
                .map_err(|e| Error::local_io("set modification time", &tp, e))?;
        }
        let hash = hash_file(&tp)?;
        let local_mtime = f.metadata().ok().and_then(|m| m.modified().ok());
        // Checked again just before the rename: a link planted meanwhile is not followed.
        let dst = check_local_target(&root, &rel, false)?;
        tmp.persist(&dst)
            .map_err(|e| Error::local_io("rename into place", &dst, e.error))?;
        Ok((hash, local_mtime))
    })
    .await?;
    let listed_ok = n == a.size;
    journal_record(
        sh,
        &a.path,
        JournalRecord {
            size: n,
            local_mtime_ns: local_mtime.map(to_ns),
            remote_size: n,
            remote_mtime_ns: if listed_ok { mtime.map(to_ns) } else { None },
            hash,
        },
    );
    Ok(n)
}

/// Reads `path` whole if it is a regular file of at most [`SMALL_FILE`] bytes; `None`:
/// larger (or not a regular file: the streaming path reports that).
fn read_small(path: &Path) -> Result<Option<(std::fs::Metadata, Vec<u8>)>> {
    use std::io::Read;
    // stat before open: opening a FIFO put there since the scan would block the runtime.
    let m = std::fs::metadata(path).map_err(|e| Error::local_io("stat", path, e))?;
    if !m.is_file() || m.len() > SMALL_FILE {
        return Ok(None);
    }
    let mut f = std::fs::File::open(path).map_err(|e| Error::local_io("open", path, e))?;
    let mut data = Vec::with_capacity(m.len() as usize + 1);
    f.read_to_end(&mut data)
        .map_err(|e| Error::local_io("read", path, e))?;
    Ok(Some((m, data)))
}

/// Writes a download received into memory: temp file, fsync, mode, mtime, rename, all in
/// one trip to the blocking pool.
async fn download_finish(sh: &Shared, a: &Action, data: Vec<u8>) -> Result<u64> {
    use std::io::Write;
    let root = sh.local_root.clone();
    let rel = a.path.clone();
    let mtime = a.source_mtime;
    let n = data.len() as u64;
    let (hash, local_mtime) = blocking(move || {
        let dst = check_local_target(&root, &rel, false)?;
        let dir = dst.parent().unwrap_or(&root).to_path_buf();
        let mut tmp = tempfile::Builder::new()
            .prefix(".siteport-")
            .suffix(".part")
            .tempfile_in(&dir)
            .map_err(|e| Error::local_io("create temporary file", &dir, e))?;
        let tp = tmp.path().to_path_buf();
        tmp.write_all(&data)
            .map_err(|e| Error::local_io("write", &tp, e))?;
        let f = tmp.as_file();
        f.sync_all().map_err(|e| Error::local_io("fsync", &tp, e))?;
        f.set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(|e| Error::local_io("chmod", &tp, e))?;
        if let Some(t) = mtime {
            filetime::set_file_handle_times(f, None, Some(filetime::FileTime::from_system_time(t)))
                .map_err(|e| Error::local_io("set modification time", &tp, e))?;
        }
        let hash = blake3::hash(&data).to_hex().to_string();
        let local_mtime = f.metadata().ok().and_then(|m| m.modified().ok());
        // Checked again just before the rename: a link planted meanwhile is not followed.
        let dst = check_local_target(&root, &rel, false)?;
        tmp.persist(&dst)
            .map_err(|e| Error::local_io("rename into place", &dst, e.error))?;
        Ok((hash, local_mtime))
    })
    .await?;
    let listed_ok = n == a.size;
    journal_record(
        sh,
        &a.path,
        JournalRecord {
            size: n,
            local_mtime_ns: local_mtime.map(to_ns),
            remote_size: n,
            remote_mtime_ns: if listed_ok { mtime.map(to_ns) } else { None },
            hash,
        },
    );
    Ok(n)
}

fn create_local_root(root: &Path) -> Result<()> {
    std::fs::create_dir_all(root).map_err(|e| Error::local_io("create local root", root, e))
}

/// Checks that every existing directory between `root` and `root/rel` is a real directory
/// (not a link), and that `root/rel` itself is not a link and, if it exists, is a directory
/// when `want_dir` and not one otherwise. Returns the full path.
fn check_local_target(root: &Path, rel: &str, want_dir: bool) -> Result<PathBuf> {
    crate::path::check_rel_path(rel).map_err(|why| Error::unsafe_name(rel, why))?;
    let mut cur = root.to_path_buf();
    let comps: Vec<&str> = rel.split('/').collect();
    for (i, c) in comps.iter().enumerate() {
        cur.push(c);
        let last = i + 1 == comps.len();
        match std::fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(Error::unsafe_name(
                    cur.display().to_string(),
                    "is a symbolic link; siteport never writes through one",
                ));
            }
            Ok(m) if (!last || want_dir) && !m.is_dir() => {
                return Err(Error::new(
                    ErrorKind::Conflict,
                    cur.display().to_string(),
                    "is not a directory",
                ));
            }
            Ok(m) if last && !want_dir && m.is_dir() => {
                return Err(Error::new(
                    ErrorKind::Conflict,
                    cur.display().to_string(),
                    "is a directory",
                ));
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && last => {}
            Err(e) => return Err(Error::local_io("check", &cur, e)),
        }
    }
    Ok(cur)
}

fn local_dir_op(root: &Path, a: &Action) -> Result<()> {
    match a.op {
        Op::Mkdir => {
            let p = check_local_target(root, &a.path, true)?;
            match std::fs::create_dir(&p) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && p.is_dir() => Ok(()),
                Err(e) => Err(Error::local_io("create directory", &p, e)),
            }
        }
        Op::Delete => {
            let p = check_local_target(root, &a.path, false)?;
            match std::fs::remove_file(&p) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(Error::local_io("delete", &p, e))
                }
                _ => Ok(()),
            }
        }
        Op::RemoveDir => {
            let p = check_local_target(root, &a.path, true)?;
            match std::fs::remove_dir(&p) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(Error::local_io("remove directory", &p, e))
                }
                _ => Ok(()),
            }
        }
        op => Err(Error::new(
            ErrorKind::Config,
            a.path.clone(),
            format!("internal: {} is not a local action", op.as_str()),
        )),
    }
}
