//! The scheduler: a phase's jobs go into one queue that a pool of workers drains, each over
//! its own reused connection. It decides how many connections are worth opening, retries
//! transient errors with backoff on a fresh connection, and after `421` (too many
//! connections) hands the job back and carries on with one connection fewer.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::error::{Error, ErrorKind, Result};
use crate::path::depth;
use crate::plan::Action;
use crate::remote::{HashAlg, Remote, RemoteEntry};
use crate::report::{FileOutcome, Status};

use super::temps::writes_temp;
use super::transfer::remote_action;
use super::{Engine, Shared, lock};

/// One worker's connection slot.
pub(super) struct Worker {
    pub(super) id: usize,
    pub(super) conn: Option<Box<dyn Remote>>,
    /// Has logged in at least once (the pool opens connections only as work needs them).
    pub(super) opened: bool,
    /// Counted in `Shared::logging_in` from being spawned to log in until it has.
    pub(super) counted_login: bool,
    /// Logins in a row that reached the server and were cut (see [`RECONNECTS`]); back to 0
    /// when a job succeeds.
    pub(super) reconnects: u32,
}

/// How many logins in a row one worker may see cut before they count against the file it
/// is working on. A login the server accepted and then lost (its session process killed, a
/// `500 OOPS` from vsftpd's privileged helper, a reset) says nothing about the file: spending
/// the file's tries on it let a server that kept dropping sessions end the whole run (the
/// last worker's cut logins exhausted its file and stopped the run with a network error).
/// Bounded, so that a server that cuts every login forever still ends the run.
const RECONNECTS: u32 = 8;

/// The same budget before any login of the run has worked: a server that has never let this
/// login in may be one that cuts every session by design (a vsftpd refusing its own config
/// with `500 OOPS`, a connection limit without `421`), so it gets a few reconnects, then the
/// policy's tries, and fails in a few seconds rather than after every reconnect.
const RECONNECTS_BEFORE_LOGIN: u32 = 3;

/// The longest wait between two such reconnects: the backoff doubles from the retry policy's
/// base delay up to this (0.25 s, 0.5 s, 1 s, 2 s, … with the defaults: about 12 s for all
/// eight).
const RECONNECT_MAX_DELAY: Duration = Duration::from_secs(2);

/// One unit of work: list a directory, or carry out one action of the plan.
#[derive(Clone)]
pub(super) enum Job {
    List(String),
    Act(Action),
    /// The server's hash of a file.
    Hash(String, HashAlg),
    /// Delete one of siteport's stale temporary files (see `temps.rs`).
    RemoveTemp(String),
}

/// The jobs of the current phase, and how many workers are taking from it.
#[derive(Default)]
pub(super) struct Queue {
    jobs: VecDeque<Job>,
    running: usize,
}

/// What the workers produced: listings, outcomes, warnings.
#[derive(Default)]
pub(super) struct Results {
    pub(super) listings: Vec<(String, Result<Vec<RemoteEntry>>)>,
    pub(super) hashes: Vec<(String, Result<String>)>,
    pub(super) outcomes: Vec<(usize, FileOutcome)>,
    pub(super) warnings: Vec<String>,
    /// Stale temporary files and whether each could be deleted.
    pub(super) temps: Vec<(String, Result<()>)>,
}

impl Engine {
    /// Runs jobs over the pool's connections and waits for all of them. Workers that retire
    /// (after `421`) leave the pool for the rest of the run.
    ///
    /// Connections already open all start at once. A new one is opened only while the work
    /// left per connection takes longer than a login: a connection costs the server a login
    /// (on vsftpd with PAM, 50 ms of CPU), which a short phase (the listings of a no-change
    /// run) never earns back, while a long one (thousands of uploads) opens them all within
    /// milliseconds.
    pub(super) async fn run_phase(&mut self, jobs: Vec<Job>) {
        if jobs.is_empty() || self.stopped() {
            return;
        }
        self.grow_pool();
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
        // One more worker for each login started ahead: it takes a job if one is left and
        // waits for that login, else ends at once and leaves the login for a later phase.
        let ahead = lock(&sh.ahead).len();
        for _ in 0..ahead.min(idle.len()) {
            if let Some(mut w) = idle.pop() {
                sh.logging_in.fetch_add(1, Ordering::SeqCst);
                w.counted_login = true;
                spawn(&mut set, w);
            }
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
}

/// Groups directory actions by depth: shallowest first, or deepest first.
pub(super) fn levels(mut actions: Vec<Action>, deepest_first: bool) -> Vec<Vec<Action>> {
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

pub(super) fn outcome(a: &Action, r: Result<u64>, attempts: u32) -> FileOutcome {
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
        let job = match job {
            // A connected worker takes its share of the level's listings at once: shared
            // with the other connected workers of the phase, not with idle ones that may
            // never log in (a whole level in one batch is one round trip; split four ways
            // with one connection working, it was seven for eleven directories).
            Job::List(dir) if w.conn.is_some() => {
                let mut dirs = vec![dir];
                {
                    let mut q = lock(&sh.queue);
                    let connected = q
                        .running
                        .saturating_sub(sh.logging_in.load(Ordering::SeqCst))
                        .max(1);
                    let share = (q.jobs.len() + 1).div_ceil(connected);
                    while dirs.len() < share.clamp(1, LIST_BATCH)
                        && matches!(q.jobs.front(), Some(Job::List(_)))
                    {
                        if let Some(Job::List(d)) = q.jobs.pop_front() {
                            dirs.push(d);
                        }
                    }
                }
                if dirs.len() == 1 {
                    dirs.pop().map(Job::List)
                } else {
                    for dir in list_batch(&sh, &mut w, dirs).await {
                        if let JobEnd::Retire = run_job(&sh, &mut w, Job::List(dir)).await {
                            return None;
                        }
                    }
                    None
                }
            }
            job => Some(job),
        };
        if let Some(job) = job
            && let JobEnd::Retire = run_job(&sh, &mut w, job).await
        {
            return None;
        }
    }
}

/// The most directories one worker lists in one batch ([`Remote::list_dirs`]).
const LIST_BATCH: usize = 64;

/// Lists `dirs` in one batch on the worker's connection. Returns the directories whose
/// listing failed in a way worth retrying (the connection broke): the caller runs each of
/// them as an ordinary job, with the usual tries and reconnects.
async fn list_batch(sh: &Shared, w: &mut Worker, dirs: Vec<String>) -> Vec<String> {
    let Some(conn) = w.conn.as_mut() else {
        return dirs;
    };
    let started = Instant::now();
    let mut listed = conn.list_dirs(&dirs).await.into_iter();
    let mut again = Vec::new();
    let mut done = 0u64;
    for dir in dirs {
        match listed.next() {
            // A transport that answered for fewer directories: the rest are listed again.
            None => again.push(dir),
            Some(Err(e)) if e.is_retryable() => again.push(dir),
            Some(res) => {
                done += 1;
                lock(&sh.results).listings.push((dir, res));
            }
        }
    }
    if !again.is_empty() {
        // The connection may be half-broken; the retries open a fresh one.
        w.conn = None;
    }
    sh.phase_jobs.fetch_add(done, Ordering::SeqCst);
    sh.phase_busy_ns
        .fetch_add(started.elapsed().as_nanos() as u64, Ordering::SeqCst);
    again
}

async fn run_job(sh: &Shared, w: &mut Worker, job: Job) -> JobEnd {
    if let Job::Act(a) = &job {
        sh.progress.started(w.id, a);
        if writes_temp(a.op) {
            // Until it ends: an interrupted run removes what this one left half-written.
            lock(&sh.in_flight).insert(a.path.clone());
        }
    }
    let end = run_job_tries(sh, w, &job).await;
    // A staged upload stays in flight until the burst renames it (see `burst.rs`).
    if let Job::Act(a) = &job
        && !super::burst::is_staged(sh, &a.path)
    {
        lock(&sh.in_flight).remove(&a.path);
    }
    end
}

async fn run_job_tries(sh: &Shared, w: &mut Worker, job: &Job) -> JobEnd {
    let job = job.clone();
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let (e, connecting) = match attempt_job(sh, w, &job).await {
            Ok(bytes) => {
                w.reconnects = 0;
                if let Job::Act(a) = &job {
                    let o = outcome(a, Ok(bytes), attempt);
                    // A staged upload is reported once the burst has renamed it.
                    if !super::burst::hold_outcome(sh, w.id, &o) {
                        finish(sh, w.id, o);
                    }
                }
                return JobEnd::Done;
            }
            Err(x) => x,
        };
        if e.is_retryable() {
            // The connection may be half-broken; the next try opens a fresh one.
            w.conn = None;
        }
        if connecting && login_cut_is_free(sh, w, &e) {
            // Not a try of this job: the login was cut before the job could run.
            attempt -= 1;
            w.reconnects += 1;
            let d = sh.retry.delay(w.reconnects).min(RECONNECT_MAX_DELAY);
            tracing::debug!(error = %e, reconnects = w.reconnects, ?d, "login cut; reconnecting");
            tokio::time::sleep(d).await;
            continue;
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

/// Whether a failed login is a lost connection to retry on the worker's reconnect budget
/// rather than on the job's tries: it reached the server and may work again (not a refused
/// login, not TLS, not `421`, which lowers the pool instead), and the worker's budget is not
/// spent: [`RECONNECTS`] once a login of the run has worked (the server is up and takes this
/// login), [`RECONNECTS_BEFORE_LOGIN`] until then.
fn login_cut_is_free(sh: &Shared, w: &Worker, e: &Error) -> bool {
    let budget = if sh.logged_in.load(Ordering::SeqCst) {
        RECONNECTS
    } else {
        RECONNECTS_BEFORE_LOGIN
    };
    e.is_server_reached()
        && e.is_retryable()
        && !e.is_fatal()
        && e.kind() != ErrorKind::TooManyConnections
        && w.reconnects < budget
        && !sh.stop.load(Ordering::SeqCst)
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
    let (queued, running) = {
        let q = lock(&sh.queue);
        (q.jobs.len() as u64, q.running as u64)
    };
    if queued == 0 || sh.stop.load(Ordering::SeqCst) {
        return false;
    }
    if login == 0 || done == 0 {
        // Nothing measured yet: wait for the first job (or login) to finish.
        return false;
    }
    let left = queued + sh.upcoming.load(Ordering::SeqCst);
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
        Job::Hash(p, _) => lock(&sh.results)
            .hashes
            .push((p.clone(), Err(e.duplicate()))),
        Job::RemoveTemp(p) => lock(&sh.results)
            .temps
            .push((p.clone(), Err(e.duplicate()))),
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
            // A login started ahead of the work (see `Engine::log_in_ahead`) is taken first;
            // one that failed is made again here, where its error counts as usual.
            let ahead = lock(&sh.ahead).pop();
            let c = match ahead {
                Some(h) => match h.await {
                    Ok(Ok(c)) => Ok(c),
                    _ => sh.factory.connect().await,
                },
                None => sh.factory.connect().await,
            };
            sh.logging_in.fetch_sub(1, Ordering::SeqCst);
            let c = c.map_err(|e| (e, true))?;
            // A handed-on connection comes at once: its factory knows what a login costs.
            let took = sh
                .factory
                .login_cost()
                .map_or(started.elapsed(), |c| c.max(started.elapsed()));
            sh.login_ns.store(took.as_nanos() as u64, Ordering::SeqCst);
            let mut caps = lock(&sh.caps);
            if caps.is_none() {
                *caps = Some(c.capabilities());
            }
            drop(caps);
            w.opened = true;
            sh.logged_in.store(true, Ordering::SeqCst);
            super::start_logins(sh, sh.ahead_wanted.swap(0, Ordering::SeqCst));
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
        Job::Hash(p, alg) => {
            let h = conn.remote_hash(p, *alg).await.map_err(|e| (e, false))?;
            lock(&sh.results).hashes.push((p.clone(), Ok(h)));
            Ok(0)
        }
        Job::RemoveTemp(p) => {
            let r = conn.delete_file(p).await;
            if let Err(e) = &r
                && e.is_retryable()
            {
                return Err((e.duplicate(), false));
            }
            lock(&sh.results).temps.push((p.clone(), r));
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
