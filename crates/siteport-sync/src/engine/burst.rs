//! A burst switch: an export's new and changed files are all uploaded under their temporary
//! names first (the upload phase, over every connection), and only then renamed into place,
//! in one pipelined batch per connection, all connections at once (here). The live site is a
//! mix of old and new files only for that burst, not for the whole upload.
//!
//! A staged file counts as in flight until its rename is answered (an interrupted run
//! removes its temp file); its journal record and deploy-state entry are written only once
//! the rename succeeded. A run killed between the phases leaves complete temp files under
//! siteport's exact temp names: the next run's scan finds them, removes them before anything
//! else, and sends those files again.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::error::{Error, ErrorKind, Result};
use crate::journal::JournalRecord;
use crate::remote::{Remote, Staged};
use crate::report::{FileOutcome, Status};

use super::scheduler::Job;
use super::transfer::journal_record;
use super::{Engine, Shared, lock};
use crate::plan::{Action, Op, Reason};

/// When an export's changes go live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Switch {
    /// Every file uploaded under a temporary name first, then all renamed into place in one
    /// pipelined burst across the connections, then the deletes.
    #[default]
    Burst,
    /// Each file renamed into place as soon as it has arrived (the live site is a mix of old
    /// and new files for the whole upload).
    PerFile,
}

impl Switch {
    /// Its name in the config and in `--json` (`burst`, `per-file`).
    pub fn as_str(self) -> &'static str {
        match self {
            Switch::Burst => "burst",
            Switch::PerFile => "per-file",
        }
    }
}

impl std::str::FromStr for Switch {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s {
            "burst" => Ok(Switch::Burst),
            "per-file" => Ok(Switch::PerFile),
            other => Err(format!(
                "{other:?} is not a switch mode: write \"burst\" or \"per-file\""
            )),
        }
    }
}

/// A file uploaded under its temporary name, waiting for the burst.
pub(super) struct Pending {
    pub(super) staged: Staged,
    /// Its journal record, when what was sent is what the scan saw (else it is published
    /// but not recorded, and goes again next run).
    pub(super) rec: Option<JournalRecord>,
    /// The upload's outcome and the worker that sent it, once its job has ended.
    pub(super) outcome: Option<(usize, FileOutcome)>,
}

/// Holds a finished upload's outcome back when the file is staged (it is reported once the
/// burst has renamed it); `false`: not staged, report it now.
pub(super) fn hold_outcome(sh: &Shared, worker: usize, o: &FileOutcome) -> bool {
    match lock(&sh.staged).get_mut(&o.path) {
        Some(p) => {
            p.outcome = Some((worker, o.clone()));
            true
        }
        None => false,
    }
}

/// Whether `path` is staged and waiting for the burst (still in flight).
pub(super) fn is_staged(sh: &Shared, path: &str) -> bool {
    lock(&sh.staged).contains_key(path)
}

/// Notes that `path` went live now (a per-file switch): the window runs from the first to
/// the last.
pub(super) fn went_live(sh: &Shared) {
    let now = Instant::now();
    let mut w = lock(&sh.live_window);
    *w = Some(match *w {
        Some((first, _)) => (first, now),
        None => (now, now),
    });
}

impl Engine {
    /// Renames every staged file into place: the pending files are split between the open
    /// connections (one fresh one when none is open), each connection renames its share as
    /// one pipelined batch, all at once; renames lost with a connection are tried again on a
    /// fresh one. Returns the mixed-state window (first rename sent to last answered, those
    /// retries included); `None` when nothing was staged. A stopped run renames nothing: its
    /// temp files are removed and the files reported as interrupted.
    pub(super) async fn publish_staged(
        &mut self,
        interrupted: &mut Vec<String>,
    ) -> Option<Duration> {
        let pending: Vec<Pending> = std::mem::take(&mut *lock(&self.shared.staged))
            .into_values()
            .collect();
        if pending.is_empty() {
            return None;
        }
        if self.stopped() {
            self.discard(pending, interrupted).await;
            return None;
        }
        let started = Instant::now();
        let batch: Vec<Staged> = pending.iter().map(|p| p.staged.clone()).collect();
        let mut results = self.rename_burst(&batch).await;
        // Files whose rename's answer was lost with its temp gone: sent again (see below).
        let mut resend: Vec<usize> = Vec::new();
        // A lost connection is worth another try on a fresh one, as any transient error.
        let mut attempt = 1;
        while attempt < self.shared.retry.max_attempts && !self.stopped() {
            let again: Vec<usize> = (0..batch.len())
                .filter(|&i| matches!(&results[i], Err(e) if e.is_retryable()))
                .collect();
            if again.is_empty() {
                break;
            }
            tokio::time::sleep(self.shared.retry.delay(attempt)).await;
            attempt += 1;
            // A connection lost before its renames' answers came: where the temp is gone,
            // renaming it again would fail as not found. The rename most likely happened,
            // but a temp that vanished some other way would leave the old file live under
            // a name this run would record as sent: those files are sent again, one by
            // one, straight into place (below), so that what the server holds is known.
            let items: Vec<&Staged> = again.iter().map(|&i| &batch[i]).collect();
            let gone = self.temps_gone(&items).await;
            let again: Vec<usize> = again
                .into_iter()
                .zip(gone)
                .filter_map(|(i, gone)| {
                    if gone {
                        // Settled here: the resend below decides (a file whose upload
                        // never ended has nothing to send again).
                        results[i] = Ok(());
                        if pending[i].outcome.is_some() {
                            resend.push(i);
                        }
                        None
                    } else {
                        Some(i)
                    }
                })
                .collect();
            if again.is_empty() {
                break;
            }
            let retry: Vec<Staged> = again.iter().map(|&i| batch[i].clone()).collect();
            let got = self.rename_burst(&retry).await;
            for (i, r) in again.into_iter().zip(got) {
                results[i] = r;
            }
        }
        if !resend.is_empty() {
            let jobs = resend
                .iter()
                .map(|&i| {
                    Job::Act(Action {
                        op: Op::Upload,
                        path: pending[i].staged.path.clone(),
                        size: pending[i].outcome.as_ref().map_or(0, |(_, o)| o.bytes),
                        reason: Reason::Unproven,
                        source_mtime: None,
                    })
                })
                .collect();
            let burst = self.shared.burst.swap(false, Ordering::SeqCst);
            // Each reports its own outcome and journals what it sent.
            self.run_phase(jobs).await;
            self.shared.burst.store(burst, Ordering::SeqCst);
        }
        // Until the last rename is answered, retries included: the site was mixed that long.
        let window = started.elapsed();
        let sh = self.shared.clone();
        let mut failed_temps = Vec::new();
        let mut outcomes = Vec::with_capacity(pending.len());
        for (i, (p, r)) in pending.into_iter().zip(results).enumerate() {
            if resend.contains(&i) {
                // Its upload again reported, journaled and freed it.
                continue;
            }
            let Some((worker, mut o)) = p.outcome else {
                // Never reported (its job did not end): nothing to say, only its temp to
                // remove if it is still there.
                if r.is_err() {
                    failed_temps.extend(p.staged.temp.clone());
                }
                lock(&sh.in_flight).remove(&p.staged.path);
                continue;
            };
            match r {
                Ok(()) => {
                    if let Some(rec) = &p.rec {
                        super::deploy::uploaded_unsaved(&sh, &p.staged.path, rec);
                        journal_record(&sh, &p.staged.path, rec.clone());
                    }
                }
                Err(e) => {
                    o.bytes = 0;
                    o.status = Status::Failed {
                        kind: e.kind(),
                        message: e.to_string(),
                        hint: e.hint().map(str::to_string),
                    };
                    failed_temps.extend(p.staged.temp.clone());
                }
            }
            outcomes.push((worker, o));
        }
        self.remove_temps(&failed_temps).await;
        let mut in_flight = lock(&sh.in_flight);
        for (_, o) in &outcomes {
            in_flight.remove(&o.path);
        }
        drop(in_flight);
        for (worker, o) in outcomes {
            sh.progress.finished(worker, &o);
            lock(&sh.results).outcomes.push((worker, o));
        }
        Some(window)
    }

    /// One burst: `batch` split between the open connections (or one new one), renamed on
    /// all of them at once. One result per entry, in order. A connection whose batch met a
    /// transient error is dropped (the next use opens a fresh one).
    async fn rename_burst(&mut self, batch: &[Staged]) -> Vec<Result<()>> {
        let mut conns: Vec<(usize, Box<dyn Remote>)> = self
            .pool
            .iter_mut()
            .filter_map(|w| w.conn.take().map(|c| (w.id, c)))
            .collect();
        if conns.is_empty() {
            match self.shared.factory.connect().await {
                Ok(c) => {
                    if let Some(w) = self.pool.first_mut() {
                        w.opened = true;
                        conns.push((w.id, c));
                    }
                }
                Err(e) => return batch.iter().map(|_| Err(e.duplicate())).collect(),
            }
        }
        if conns.is_empty() {
            let e = Error::new(
                ErrorKind::Network,
                self.shared.factory.describe(),
                "rename: no connection left",
            );
            return batch.iter().map(|_| Err(e.duplicate())).collect();
        }
        // Contiguous shares: a directory's files mostly go out on one connection.
        let per_conn = batch.len().div_ceil(conns.len()).max(1);
        let mut set = tokio::task::JoinSet::new();
        let mut shares = 0;
        for (k, chunk) in batch.chunks(per_conn).enumerate() {
            let Some((id, mut conn)) = conns.pop() else {
                break;
            };
            let chunk = chunk.to_vec();
            shares += 1;
            set.spawn(async move {
                let r = conn.publish(&chunk).await;
                (k, id, conn, r)
            });
        }
        // Connections left without a share (fewer files than connections) go back as they are.
        for (id, conn) in conns {
            self.give_back(id, conn);
        }
        let mut by_share: BTreeMap<usize, Vec<Result<()>>> = BTreeMap::new();
        while let Some(joined) = set.join_next().await {
            match joined {
                Ok((k, id, conn, r)) => {
                    if !r.iter().any(|x| matches!(x, Err(e) if e.is_retryable())) {
                        self.give_back(id, conn);
                    }
                    by_share.insert(k, r);
                }
                Err(e) => lock(&self.shared.results)
                    .warnings
                    .push(format!("a rename task ended abnormally: {e}")),
            }
        }
        let mut out = Vec::with_capacity(batch.len());
        for (k, chunk) in batch.chunks(per_conn).enumerate().take(shares) {
            match by_share.remove(&k) {
                Some(r) if r.len() == chunk.len() => out.extend(r),
                _ => out.extend(chunk.iter().map(|s| {
                    Err(Error::new(
                        ErrorKind::Network,
                        s.path.clone(),
                        "rename: the connection's batch ended without an answer",
                    )
                    .retryable(true))
                })),
            }
        }
        out
    }

    /// For each staged file whose rename's answer was lost: whether its temp is gone, judged
    /// from one listing per directory on one connection. Unknown (no connection, a failed
    /// listing) is `false`: the rename is tried again.
    async fn temps_gone(&mut self, items: &[&Staged]) -> Vec<bool> {
        let mut out = vec![false; items.len()];
        let slot = self.pool.iter().position(|w| w.conn.is_some());
        let mut conn = match slot.and_then(|i| self.pool[i].conn.take()) {
            Some(c) => c,
            None => match self.shared.factory.connect().await {
                Ok(c) => c,
                Err(_) => return out,
            },
        };
        let mut listings: BTreeMap<String, Option<Vec<crate::remote::RemoteEntry>>> =
            BTreeMap::new();
        for (k, s) in items.iter().enumerate() {
            let Some(temp) = &s.temp else { continue };
            let dir = crate::path::parent(&s.path).to_owned();
            if !listings.contains_key(&dir) {
                let l = conn.list_dir(&dir).await.ok();
                listings.insert(dir.clone(), l);
            }
            let Some(Some(entries)) = listings.get(&dir) else {
                continue;
            };
            let temp_name = temp.rsplit('/').next().unwrap_or(temp);
            out[k] = !entries.iter().any(|e| e.name == temp_name);
        }
        match slot {
            Some(i) => self.pool[i].conn = Some(conn),
            None => {
                let _ = conn.close().await;
            }
        }
        out
    }

    fn give_back(&mut self, id: usize, conn: Box<dyn Remote>) {
        if let Some(w) = self.pool.iter_mut().find(|w| w.id == id) {
            w.conn = Some(conn);
        }
    }

    /// A stopped run's staged files: their temps removed, the files reported interrupted.
    async fn discard(&mut self, pending: Vec<Pending>, interrupted: &mut Vec<String>) {
        let temps: Vec<String> = pending
            .iter()
            .filter_map(|p| p.staged.temp.clone())
            .collect();
        self.remove_temps(&temps).await;
        let mut in_flight = lock(&self.shared.in_flight);
        for p in pending {
            in_flight.remove(&p.staged.path);
            interrupted.push(p.staged.path);
        }
    }

    /// Removes temp files (best effort, on one connection: the next run removes what is
    /// left); each failure is a warning.
    async fn remove_temps(&mut self, temps: &[String]) {
        if temps.is_empty() {
            return;
        }
        let slot = self.pool.iter().position(|w| w.conn.is_some());
        let mut conn = match slot.and_then(|i| self.pool[i].conn.take()) {
            Some(c) => c,
            None => match self.shared.factory.connect().await {
                Ok(c) => c,
                Err(e) => {
                    lock(&self.shared.results).warnings.push(format!(
                        "could not reconnect to remove {} temporary file(s) ({e}); the next \
                         export removes them",
                        temps.len()
                    ));
                    return;
                }
            },
        };
        for t in temps {
            match conn.delete_file(t).await {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => lock(&self.shared.results)
                    .warnings
                    .push(format!("could not remove the temporary file {t}: {e}")),
            }
        }
        match slot {
            Some(i) => self.pool[i].conn = Some(conn),
            None => {
                let _ = conn.close().await;
            }
        }
    }

    /// Whether this run stages its uploads (a burst switch on an export).
    pub(super) fn set_burst(&self, on: bool) {
        self.shared.burst.store(on, Ordering::SeqCst);
    }
}
