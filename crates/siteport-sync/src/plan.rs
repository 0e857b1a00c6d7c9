//! The planner: a pure function from two scanned trees and the journal to a list of actions.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::journal::{JournalRecord, to_ns};
use crate::path::{depth, parent};
use crate::remote::{Capabilities, EntryKind};
use crate::state::StateRecord;
use crate::tree::{ScanProblem, Tree, TreeEntry};

/// Which way files go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Local → remote (`siteport export`).
    Export,
    /// Remote → local (`siteport import`).
    Import,
}

/// What to do with one path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// Create a directory on the target side.
    Mkdir,
    /// Send a file to the remote.
    Upload,
    /// Fetch a file from the remote.
    Download,
    /// Delete a file on the target side (extra: gone from the source).
    Delete,
    /// Remove an emptied directory on the target side.
    RemoveDir,
    /// Nothing to do.
    Skip,
    /// A file on one side and a directory on the other, or a link or unsafe entry in the
    /// way: reported as failed, nothing is changed.
    Conflict,
}

impl Op {
    /// Lowercase label for tables and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Mkdir => "mkdir",
            Op::Upload => "upload",
            Op::Download => "download",
            Op::Delete => "delete",
            Op::RemoveDir => "rmdir",
            Op::Skip => "skip",
            Op::Conflict => "conflict",
        }
    }
}

/// Why an action was planned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Absent on the target side.
    New,
    /// Sizes differ.
    SizeDiffers,
    /// The source is newer (exact times, or times the engine set itself).
    MtimeNewer,
    /// Same size, but the content hash differs from the journal's.
    HashDiffers,
    /// `--checksum`: the content hash differs from (or is missing in) the journal.
    Checksum,
    /// The local file could not be hashed; sent to be safe.
    Unverified,
    /// Same size, but the server's copy changed since the last deploy recorded it (another
    /// client wrote it).
    RemoteChanged,
    /// Same size and nothing records what the server has (no deploy state, no journal) and
    /// the server cannot hash: sent because it cannot be proven equal.
    Unproven,
    /// `--ignore-times`: sizes, times and the journal are not taken as proof of equality.
    IgnoreTimes,
    /// Present on the target side only, and deleting was asked for.
    Extra,
    /// Up to date.
    Unchanged,
    /// File on one side, directory on the other.
    KindConflict,
    /// A link, special file or unsafe name on the target side is in the way.
    Blocked,
}

impl Reason {
    /// Human label.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::New => "new",
            Reason::SizeDiffers => "size differs",
            Reason::MtimeNewer => "newer",
            Reason::HashDiffers => "content differs (hash)",
            Reason::Checksum => "checksum differs",
            Reason::Unverified => "could not hash, sending",
            Reason::RemoteChanged => "changed on the server since the last deploy",
            Reason::Unproven => "same size, content not provable equal",
            Reason::IgnoreTimes => "--ignore-times",
            Reason::Extra => "not in source",
            Reason::Unchanged => "unchanged",
            Reason::KindConflict => "file on one side, directory on the other",
            Reason::Blocked => "link or unsafe entry in the way",
        }
    }
}

/// One planned action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Action {
    /// What to do.
    pub op: Op,
    /// Relative path, `/`-separated.
    pub path: String,
    /// Bytes to transfer (the source size), 0 for directory operations and deletes.
    pub size: u64,
    /// Why.
    pub reason: Reason,
    /// The source's modification time (set on the downloaded file by import).
    #[serde(skip)]
    pub source_mtime: Option<SystemTime>,
}

/// Options that shape a plan.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlanOptions {
    /// Remove target entries that are gone from the source.
    pub delete: bool,
    /// Compare content hashes (against the journal) for every file.
    pub checksum: bool,
    /// What the remote can do.
    pub capabilities: Capabilities,
    /// `--size-only`: compare sizes and times only (today's old behaviour: misses
    /// same-size edits), never hash.
    pub size_only: bool,
}

/// What is known of the last deploy: the local journal (this machine's records, with the
/// stat cache), the server's deploy state, and what the server's hash command proved.
#[derive(Debug, Clone, Copy)]
pub struct Baseline<'a> {
    /// This machine's journal records.
    pub journal: &'a BTreeMap<String, JournalRecord>,
    /// The server's deploy state, when there is a valid one.
    pub state: Option<&'a BTreeMap<String, StateRecord>>,
    /// Files with no record whose server hash was compared with the local file: `true` when
    /// equal.
    pub proven: &'a BTreeMap<String, bool>,
}

impl<'a> Baseline<'a> {
    /// Only a journal.
    pub fn journal(journal: &'a BTreeMap<String, JournalRecord>) -> Self {
        static EMPTY: BTreeMap<String, bool> = BTreeMap::new();
        Self {
            journal,
            state: None,
            proven: &EMPTY,
        }
    }

    /// Whether anything records `path`.
    pub fn has_record(&self, path: &str) -> bool {
        self.journal.contains_key(path) || self.state.is_some_and(|s| s.contains_key(path))
    }

    /// The record of what the server holds at `path`, if the server still lists it as the
    /// record left it (size and time): the state's, else the journal's. When both match but
    /// disagree (LIST times are minutes: two uploads in one minute look alike), the state
    /// wins: it was written by the last deploy, from whichever machine, while this machine's
    /// journal may predate it.
    pub fn server_record(&self, path: &str, r: &TreeEntry) -> Option<JournalRecord> {
        let s = self
            .state
            .and_then(|s| s.get(path))
            .map(StateRecord::to_journal)
            .filter(|s| s.remote_matches(r.size, r.mtime));
        let j = self
            .journal
            .get(path)
            .filter(|j| j.remote_matches(r.size, r.mtime));
        match (s, j) {
            (Some(s), _) => Some(s),
            (None, j) => j.cloned(),
        }
    }
}

/// Counts per action, for summaries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PlanSummary {
    /// Directories to create.
    pub mkdir: usize,
    /// Files to transfer.
    pub transfer: usize,
    /// Bytes to transfer.
    pub bytes: u64,
    /// Files to delete.
    pub delete: usize,
    /// Directories to remove.
    pub rmdir: usize,
    /// Files already up to date.
    pub skip: usize,
    /// Conflicts.
    pub conflict: usize,
}

/// A plan: ordered so that directories come before what goes in them, transfers next, and
/// deletes last (files before their directories, deepest first).
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// Which way.
    pub direction: Direction,
    /// The actions, in execution order (skips included, for `--dry-run --verbose`).
    pub actions: Vec<Action>,
    /// Entries left out of the local scan (links, unsafe or non-UTF-8 names).
    pub local_problems: Vec<ScanProblem>,
    /// Entries left out of the remote scan (unsafe names, links).
    pub remote_problems: Vec<ScanProblem>,
    /// Journal records to refresh without transferring (e.g. a remote time learnt from this
    /// listing, or a touched but identical file).
    #[serde(skip)]
    pub journal_updates: Vec<(String, JournalRecord)>,
    /// One-line explanations the user must see (more sent than the diff, `--size-only`).
    pub notes: Vec<String>,
    /// siteport's own temporary files left on the target side by runs that died: removed
    /// first when the plan is executed (see `engine/temps.rs`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stale_temps: Vec<String>,
}

impl Plan {
    /// Counts per action.
    pub fn summary(&self) -> PlanSummary {
        let mut s = PlanSummary::default();
        for a in &self.actions {
            match a.op {
                Op::Mkdir => s.mkdir += 1,
                Op::Upload | Op::Download => {
                    s.transfer += 1;
                    s.bytes += a.size;
                }
                Op::Delete => s.delete += 1,
                Op::RemoveDir => s.rmdir += 1,
                Op::Skip => s.skip += 1,
                Op::Conflict => s.conflict += 1,
            }
        }
        s
    }

    /// Whether the plan changes nothing.
    pub fn is_noop(&self) -> bool {
        self.actions.iter().all(|a| a.op == Op::Skip)
    }
}

impl fmt::Display for Plan {
    /// The `--dry-run` table: one line per action except skips, then a summary line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for a in self.actions.iter().filter(|a| a.op != Op::Skip) {
            writeln!(
                f,
                "{:<9} {:>12}  {}  ({})",
                a.op.as_str(),
                a.size,
                a.path,
                a.reason.as_str()
            )?;
        }
        for p in self.local_problems.iter().chain(&self.remote_problems) {
            writeln!(
                f,
                "{:<9} {:>12}  {}  ({})",
                "ignored", "-", p.path, p.detail
            )?;
        }
        for t in &self.stale_temps {
            writeln!(
                f,
                "{:<9} {:>12}  {}  (temporary file left by an interrupted siteport run)",
                "remove", "-", t
            )?;
        }
        for n in &self.notes {
            writeln!(f, "note: {n}")?;
        }
        let s = self.summary();
        write!(
            f,
            "{} to {}: {} files ({} bytes), {} dirs to create, {} files and {} dirs to delete, {} unchanged, {} conflicts",
            match self.direction {
                Direction::Export => "export",
                Direction::Import => "import",
            },
            match self.direction {
                Direction::Export => "send",
                Direction::Import => "fetch",
            },
            s.transfer,
            s.bytes,
            s.mkdir,
            s.delete,
            s.rmdir,
            s.skip,
            s.conflict
        )
    }
}

/// Modification times within this window count as equal (MFMT and MLSD keep whole seconds).
const MTIME_WINDOW: Duration = Duration::from_secs(1);

fn newer(a: Option<SystemTime>, b: Option<SystemTime>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a > b + MTIME_WINDOW,
        _ => false,
    }
}

/// Plans an export (local → remote). `hasher` returns the BLAKE3 hex of a local file by
/// relative path; it is called only when sizes and times cannot decide (same size, file
/// touched since the journal's record) or with `--checksum`.
pub fn plan_export(
    local: &Tree,
    remote: &Tree,
    journal: &BTreeMap<String, JournalRecord>,
    opts: &PlanOptions,
    hasher: &mut dyn FnMut(&str) -> Option<String>,
) -> Plan {
    plan(
        Direction::Export,
        local,
        remote,
        &Baseline::journal(journal),
        opts,
        hasher,
    )
}

/// [`plan_export`] with the server's deploy state and hash proofs as well.
pub fn plan_export_with(
    local: &Tree,
    remote: &Tree,
    base: &Baseline<'_>,
    opts: &PlanOptions,
    hasher: &mut dyn FnMut(&str) -> Option<String>,
) -> Plan {
    plan(Direction::Export, local, remote, base, opts, hasher)
}

/// Plans an import (remote → local). `hasher` hashes local files, as for [`plan_export`]; it
/// is needed only when the remote is as the journal left it but the local file was touched.
pub fn plan_import(
    local: &Tree,
    remote: &Tree,
    journal: &BTreeMap<String, JournalRecord>,
    opts: &PlanOptions,
    hasher: &mut dyn FnMut(&str) -> Option<String>,
) -> Plan {
    plan(
        Direction::Import,
        local,
        remote,
        &Baseline::journal(journal),
        opts,
        hasher,
    )
}

fn plan(
    direction: Direction,
    local: &Tree,
    remote: &Tree,
    base: &Baseline<'_>,
    opts: &PlanOptions,
    hasher: &mut dyn FnMut(&str) -> Option<String>,
) -> Plan {
    let (source, target) = match direction {
        Direction::Export => (local, remote),
        Direction::Import => (remote, local),
    };
    let transfer = match direction {
        Direction::Export => Op::Upload,
        Direction::Import => Op::Download,
    };
    let mut mkdirs = Vec::new();
    let mut transfers = Vec::new();
    let mut skips = Vec::new();
    let mut conflicts = Vec::new();
    let mut updates = Vec::new();
    let decide = match direction {
        Direction::Export => decide_export,
        Direction::Import => decide_import,
    };
    // Source directories whose target is unusable: nothing below them is attempted.
    let mut blocked: BTreeSet<&str> = BTreeSet::new();

    for (path, src) in &source.entries {
        let conflict = |reason| Action {
            op: Op::Conflict,
            path: path.clone(),
            size: src.size,
            reason,
            source_mtime: None,
        };
        if ancestors(path).any(|a| blocked.contains(a)) {
            if src.kind == EntryKind::Dir {
                blocked.insert(path);
            }
            conflicts.push(conflict(Reason::Blocked));
            continue;
        }
        if target.kept.contains(path) {
            if src.kind == EntryKind::Dir {
                blocked.insert(path);
            }
            conflicts.push(conflict(Reason::Blocked));
            continue;
        }
        let tgt = target.entries.get(path);
        match (src.kind, tgt.map(|t| t.kind)) {
            (EntryKind::Dir, Some(EntryKind::Dir)) => {}
            (EntryKind::Dir, None) => mkdirs.push(Action {
                op: Op::Mkdir,
                path: path.clone(),
                size: 0,
                reason: Reason::New,
                source_mtime: None,
            }),
            (EntryKind::Dir, Some(_)) => {
                blocked.insert(path);
                conflicts.push(conflict(Reason::KindConflict));
            }
            (_, Some(EntryKind::Dir)) => conflicts.push(conflict(Reason::KindConflict)),
            (_, None) => transfers.push(Action {
                op: transfer,
                path: path.clone(),
                size: src.size,
                reason: Reason::New,
                source_mtime: src.mtime,
            }),
            (_, Some(_)) => {
                let tgt = tgt.cloned().unwrap_or_else(TreeEntry::dir);
                let (l, r) = match direction {
                    Direction::Export => (src, &tgt),
                    Direction::Import => (&tgt, src),
                };
                let decision = decide(path, l, r, base, opts, hasher, &mut updates);
                let action = Action {
                    op: if decision == Reason::Unchanged {
                        Op::Skip
                    } else {
                        transfer
                    },
                    path: path.clone(),
                    size: src.size,
                    reason: decision,
                    source_mtime: src.mtime,
                };
                if action.op == Op::Skip {
                    skips.push(action);
                } else {
                    transfers.push(action);
                }
            }
        }
    }
    mkdirs.sort_by(|a, b| (depth(&a.path), &a.path).cmp(&(depth(&b.path), &b.path)));

    let mut actions = mkdirs;
    actions.append(&mut transfers);
    actions.append(&mut conflicts);
    actions.append(&mut skips);
    if opts.delete {
        actions.extend(plan_deletes(source, target));
    }
    let notes = notes(&actions, opts, direction);
    Plan {
        direction,
        notes,
        actions,
        local_problems: local.problems.clone(),
        remote_problems: remote.problems.clone(),
        journal_updates: updates,
        stale_temps: Vec::new(),
    }
}

/// The one-line explanations a plan carries: more sent than the diff, `--size-only`.
fn notes(actions: &[Action], opts: &PlanOptions, direction: Direction) -> Vec<String> {
    let mut notes = Vec::new();
    let unproven = actions
        .iter()
        .filter(|a| a.reason == Reason::Unproven)
        .count();
    if unproven > 0 {
        notes.push(format!(
            "sending {unproven} same-size file(s) that may be unchanged: no deploy state or journal \
             records what the server has and it offers no hash command to compare; the next \
             export is exact"
        ));
    }
    if opts.size_only && direction == Direction::Export {
        notes.push(
            "--size-only: files are compared by size and time only; a same-size edit is not sent"
                .to_string(),
        );
    }
    notes
}

/// Decides whether a file present on both sides must be uploaded; [`Reason::Unchanged`]
/// when not. `l` is the local entry, `r` the remote one.
///
/// Unchanged means both: the server still lists the file as a record (state or journal) left
/// it, and the local content is known to equal that record's hash, known from the stat cache
/// (size, mtime, ctime, inode as the journal saw them) or else by hashing the file now. With
/// no record at all, only a server hash proof (`base.proven`) can show a same-size file equal.
fn decide_export(
    path: &str,
    l: &TreeEntry,
    r: &TreeEntry,
    base: &Baseline<'_>,
    opts: &PlanOptions,
    hasher: &mut dyn FnMut(&str) -> Option<String>,
    updates: &mut Vec<(String, JournalRecord)>,
) -> Reason {
    if l.size != r.size {
        return Reason::SizeDiffers;
    }
    if opts.size_only {
        return if opts.capabilities.precise_mtime && r.mtime_precise && newer(l.mtime, r.mtime) {
            Reason::MtimeNewer
        } else {
            Reason::Unchanged
        };
    }
    let mine = base.journal.get(path);
    let remember = |updates: &mut Vec<(String, JournalRecord)>, mut n: JournalRecord| {
        match l.stat {
            Some(st) => n.set_local(&st),
            None => {
                n.size = l.size;
                n.local_mtime_ns = l.mtime.map(to_ns);
            }
        }
        n.remote_mtime_ns = r.mtime.map(to_ns);
        if Some(&n) != mine {
            updates.push((path.to_string(), n));
        }
    };
    let Some(known) = base.server_record(path, r) else {
        if base.has_record(path) {
            return Reason::RemoteChanged;
        }
        return match base.proven.get(path) {
            Some(true) => match hasher(path) {
                Some(hash) => {
                    let rec = JournalRecord {
                        size: l.size,
                        local_mtime_ns: None,
                        local_ctime_ns: None,
                        local_ino: None,
                        remote_size: r.size,
                        remote_mtime_ns: None,
                        hash,
                    };
                    remember(updates, rec);
                    Reason::Unchanged
                }
                None => Reason::Unverified,
            },
            Some(false) => Reason::HashDiffers,
            None => Reason::Unproven,
        };
    };
    // The local content's hash, from the stat cache when the file is untouched.
    let cached = mine
        .filter(|j| !opts.checksum && l.stat.is_some_and(|st| j.local_matches(&st)))
        .map(|j| j.hash.clone());
    let local_hash = match cached {
        Some(h) => Some(h),
        None => hasher(path),
    };
    match local_hash {
        Some(h) if h == known.hash && known.size == l.size => {
            let mut n = known;
            n.hash = h;
            remember(updates, n);
            Reason::Unchanged
        }
        Some(_) if opts.checksum => Reason::Checksum,
        Some(_) => Reason::HashDiffers,
        None => Reason::Unverified,
    }
}

/// Decides whether a file present on both sides must be downloaded; `l` is the local
/// entry, `r` the remote one.
fn decide_import(
    path: &str,
    l: &TreeEntry,
    r: &TreeEntry,
    base: &Baseline<'_>,
    opts: &PlanOptions,
    hasher: &mut dyn FnMut(&str) -> Option<String>,
    updates: &mut Vec<(String, JournalRecord)>,
) -> Reason {
    let remote_as_left = base
        .journal
        .get(path)
        .filter(|j| j.remote_matches(r.size, r.mtime));
    // Fills in what this listing taught us (the remote time after an upload, a new local
    // time of identical content) so the next run decides without hashing.
    let mut refresh = |j: &JournalRecord| {
        let mut n = j.clone();
        match l.stat {
            Some(st) => n.set_local(&st),
            None => {
                n.size = l.size;
                n.local_mtime_ns = l.mtime.map(to_ns);
            }
        }
        n.remote_mtime_ns = r.mtime.map(to_ns);
        if &n != j {
            updates.push((path.to_string(), n));
        }
    };
    if l.size != r.size {
        return Reason::SizeDiffers;
    }
    if let Some(j) = remote_as_left {
        if !opts.checksum && l.stat.is_some_and(|st| j.local_matches(&st)) {
            refresh(j);
            return Reason::Unchanged;
        }
        return match hasher(path) {
            Some(h) if h == j.hash && j.size == l.size => {
                refresh(j);
                Reason::Unchanged
            }
            Some(_) if opts.checksum => Reason::Checksum,
            Some(_) => Reason::HashDiffers,
            None => Reason::Unverified,
        };
    }
    if opts.checksum {
        return Reason::Checksum;
    }
    // Import sets each local file's time to the listed remote time, so even LIST times
    // compare consistently from one run to the next.
    if newer(r.mtime, l.mtime) {
        Reason::MtimeNewer
    } else {
        Reason::Unchanged
    }
}

/// Deletes on the target side: files first, then emptied directories deepest first. Never
/// deletes what the source keeps aside (excluded, links, unsafe names) nor anything under
/// it, and never removes a directory that still holds something kept.
fn plan_deletes(source: &Tree, target: &Tree) -> Vec<Action> {
    let protected = |p: &str| {
        source.kept.contains(p)
            || ancestors(p).any(|a| {
                source.kept.contains(a)
                    || source
                        .entries
                        .get(a)
                        .is_some_and(|e| e.kind != EntryKind::Dir)
            })
    };
    let doomed: BTreeSet<&str> = target
        .entries
        .keys()
        .filter(|p| !source.entries.contains_key(p.as_str()) && !protected(p))
        .map(String::as_str)
        .collect();
    // A directory stays if anything below it stays.
    let mut stays: BTreeSet<&str> = BTreeSet::new();
    for p in target
        .entries
        .keys()
        .map(String::as_str)
        .filter(|p| !doomed.contains(p))
        .chain(target.kept.iter().map(String::as_str))
    {
        stays.extend(ancestors(p));
    }
    let mut files = Vec::new();
    let mut dirs = Vec::new();
    for p in doomed {
        let e = &target.entries[p];
        if e.kind == EntryKind::Dir {
            if !stays.contains(p) {
                dirs.push(Action {
                    op: Op::RemoveDir,
                    path: p.to_string(),
                    size: 0,
                    reason: Reason::Extra,
                    source_mtime: None,
                });
            }
        } else {
            files.push(Action {
                op: Op::Delete,
                path: p.to_string(),
                size: 0,
                reason: Reason::Extra,
                source_mtime: None,
            });
        }
    }
    dirs.sort_by(|a, b| (depth(&b.path), &a.path).cmp(&(depth(&a.path), &b.path)));
    files.extend(dirs);
    files
}

/// Proper ancestors of a relative path, nearest first (`a/b/c` → `a/b`, `a`).
fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    let mut cur = path;
    std::iter::from_fn(move || {
        if cur.is_empty() {
            return None;
        }
        cur = parent(cur);
        if cur.is_empty() { None } else { Some(cur) }
    })
}

#[cfg(test)]
mod tests;
