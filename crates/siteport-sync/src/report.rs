//! What a run did: per-file outcomes, counts, bytes, duration; and the progress callbacks.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use serde::Serialize;

use crate::error::ErrorKind;
use crate::plan::{Action, Direction, Op, Plan};
use crate::tree::ScanProblem;

/// The result of one action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Status {
    /// Done.
    Done,
    /// Failed after `attempts` tries.
    Failed {
        /// The error's kind.
        kind: ErrorKind,
        /// The error message (place and detail; never a secret).
        message: String,
        /// The fix, when known.
        #[serde(skip_serializing_if = "Option::is_none")]
        hint: Option<String>,
    },
}

/// The outcome of one planned action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileOutcome {
    /// What was done.
    pub op: Op,
    /// Relative path.
    pub path: String,
    /// Bytes transferred.
    pub bytes: u64,
    /// How many tries it took (1 when it worked at once).
    pub attempts: u32,
    /// Done or failed.
    #[serde(flatten)]
    pub status: Status,
}

impl FileOutcome {
    /// Whether it failed.
    pub fn failed(&self) -> bool {
        matches!(self.status, Status::Failed { .. })
    }
}

/// Counts per outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Files uploaded.
    pub uploaded: usize,
    /// Files downloaded.
    pub downloaded: usize,
    /// Files deleted.
    pub deleted: usize,
    /// Directories created.
    pub dirs_created: usize,
    /// Directories removed.
    pub dirs_removed: usize,
    /// Files already up to date.
    pub skipped: usize,
    /// Actions that failed (conflicts included).
    pub failed: usize,
}

/// The report of one run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Which way.
    pub direction: Direction,
    /// One outcome per action that was attempted (skips are only counted).
    pub outcomes: Vec<FileOutcome>,
    /// Counts.
    pub counts: Counts,
    /// Bytes transferred.
    pub bytes: u64,
    /// Wall time of the execution, in milliseconds.
    pub duration_ms: u64,
    /// Connections used: at most as many as asked; fewer when the work did not need more
    /// (a short run does not pay for logins it cannot earn back) or after `421` replies.
    pub connections: usize,
    /// Entries left out of the scans.
    pub problems: Vec<ScanProblem>,
    /// Warnings (journal write failures, lowered connection count).
    pub warnings: Vec<String>,
    /// The run was stopped before the end (the stop handle was set).
    pub stopped: bool,
    /// siteport's own temporary files removed on the target side: leftovers of earlier runs
    /// that died, and (when this run was interrupted) its own partial files.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub temps_removed: Vec<String>,
    /// Files that were being transferred when the run was interrupted (not done).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub interrupted: Vec<String>,
    /// An export's switch mode (`burst` or `per-file`); `None` for an import.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub switch: Option<crate::engine::Switch>,
    /// How long the live site was a mix of old and new files, in milliseconds: a burst
    /// switch's first rename sent to its last answered; per file, the first file live to
    /// the last. `None`: no file went live (an import, nothing uploaded).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub switch_window_ms: Option<u64>,
}

impl Report {
    pub(crate) fn new(plan: &Plan) -> Self {
        Self {
            direction: plan.direction,
            outcomes: Vec::new(),
            counts: Counts {
                skipped: plan.actions.iter().filter(|a| a.op == Op::Skip).count(),
                ..Default::default()
            },
            bytes: 0,
            duration_ms: 0,
            connections: 0,
            problems: plan
                .local_problems
                .iter()
                .chain(&plan.remote_problems)
                .cloned()
                .collect(),
            warnings: plan.notes.clone(),
            stopped: false,
            temps_removed: Vec::new(),
            interrupted: Vec::new(),
            switch: None,
            switch_window_ms: None,
        }
    }

    pub(crate) fn add(&mut self, o: FileOutcome) {
        if o.failed() {
            self.counts.failed += 1;
        } else {
            match o.op {
                Op::Upload => self.counts.uploaded += 1,
                Op::Download => self.counts.downloaded += 1,
                Op::Delete => self.counts.deleted += 1,
                Op::Mkdir => self.counts.dirs_created += 1,
                Op::RemoveDir => self.counts.dirs_removed += 1,
                Op::Skip | Op::Conflict => {}
            }
            self.bytes += o.bytes;
        }
        self.outcomes.push(o);
    }

    pub(crate) fn set_duration(&mut self, d: Duration) {
        self.duration_ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    }

    /// Whether every action succeeded and the run was not stopped.
    pub fn is_success(&self) -> bool {
        self.counts.failed == 0 && !self.stopped
    }

    /// The failed outcomes.
    pub fn failures(&self) -> impl Iterator<Item = &FileOutcome> {
        self.outcomes.iter().filter(|o| o.failed())
    }
}

/// Progress callbacks; the CLI draws bars from them. Every method has a no-op default, and
/// all may be called from several workers at once.
pub trait Progress: Send + Sync {
    /// A side was scanned: `local` is true for the local tree; `entries` files and dirs.
    fn scanned(&self, local: bool, entries: usize) {
        let _ = (local, entries);
    }
    /// The plan is ready.
    fn planned(&self, plan: &Plan) {
        let _ = plan;
    }
    /// Worker `worker` starts `action`.
    fn started(&self, worker: usize, action: &Action) {
        let _ = (worker, action);
    }
    /// Worker `worker` finished an action (worker 0 for local operations).
    fn finished(&self, worker: usize, outcome: &FileOutcome) {
        let _ = (worker, outcome);
    }
    /// Something worth telling (a lowered connection count, a retry).
    fn notice(&self, message: &str) {
        let _ = message;
    }
    /// A counter for live byte counts, asked once when the engine is made: the engine adds
    /// the bytes of every upload and download to it as they go (not only when a file ends),
    /// and takes back what a failed try had counted, so a display that reads it whenever it
    /// redraws moves during a long file. `None` (the default): nobody reads it.
    fn live_bytes(&self) -> Option<Arc<AtomicU64>> {
        None
    }
}

/// Progress that shows nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {}
