//! siteport's own temporary files on the target side: the partial uploads (or downloads) of a
//! run that is being interrupted, removed before it exits, and the leftovers of earlier runs
//! that died without a chance to clean up (SIGKILL, a power cut, a lost connection), found by
//! the next run's scan, shown in its plan and removed before anything else is done.
//!
//! Only names siteport itself creates count, and only exactly: `.NAME.TAG.siteport-tmp` with
//! TAG eight lowercase hex digits (FTP and SFTP uploads), and `.siteport-XXXXXXXX.part` with
//! eight lowercase hex digits (downloads, `local_fs.rs`) or six letters or digits
//! ([`LocalDirRemote`](crate::LocalDirRemote) uploads: the `tempfile` crate's default). A user's `.draft.siteport-tmp` or `notes.part` is never
//! touched. Every run that removes them holds the site lock, so no other run can be writing
//! one of them at that moment: whatever matches is a leftover, or this run's own.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::error::{ErrorKind, Result};
use crate::local_fs::{LocalRoot, Want};
use crate::path::{join, local_path, parent};
use crate::plan::{Direction, Op, Plan};
use crate::remote::{EntryKind, Remote};
use crate::report::Report;
use crate::tree::Tree;

use super::scan::set_aside_temp_files;
use super::scheduler::Job;
use super::{Engine, lock};

/// Suffix of an upload's temporary name.
const UPLOAD_SUFFIX: &str = ".siteport-tmp";
/// Hex digits in an upload temp name's tag (`{:08x}` in siteport-ftp and siteport-sftp).
const TAG_LEN: usize = 8;
/// Prefix and suffix of a download's temporary name.
const PART_PREFIX: &str = ".siteport-";
const PART_SUFFIX: &str = ".part";
/// Random characters `tempfile` puts between them by default.
const PART_RAND_LEN: usize = 6;

/// Whether `name` (a bare file name) is exactly one of siteport's temporary names.
pub(crate) fn is_own_temp_name(name: &str) -> bool {
    upload_temp_target(name).is_some() || is_part_name(name)
}

/// For `.NAME.TAG.siteport-tmp`, the `NAME` whose upload it was.
fn upload_temp_target(name: &str) -> Option<&str> {
    let rest = name.strip_prefix('.')?.strip_suffix(UPLOAD_SUFFIX)?;
    let (target, tag) = rest.rsplit_once('.')?;
    (!target.is_empty() && tag.len() == TAG_LEN && tag.bytes().all(is_lower_hex)).then_some(target)
}

fn is_part_name(name: &str) -> bool {
    name.strip_prefix(PART_PREFIX)
        .and_then(|r| r.strip_suffix(PART_SUFFIX))
        .is_some_and(|r| {
            (r.len() == PART_RAND_LEN && r.bytes().all(|b| b.is_ascii_alphanumeric()))
                || (r.len() == TAG_LEN && r.bytes().all(is_lower_hex))
        })
}

fn is_lower_hex(b: u8) -> bool {
    b.is_ascii_digit() || (b'a'..=b'f').contains(&b)
}

/// Takes siteport's temporary files out of a scanned local tree (an import's target): they
/// are not the user's files, so they are neither mirrored nor counted as extras. Excluded
/// ones (a `.*` exclude hides them from the mirror) count too: the exclude is about the
/// user's files. Whether each really is a regular file is checked when it is removed.
fn take_local_temps(tree: &mut Tree) -> Vec<String> {
    let base = |p: &str| p.rsplit('/').next().unwrap_or(p).to_owned();
    let found: Vec<String> = tree
        .entries
        .iter()
        .filter(|(p, e)| e.kind == EntryKind::File && is_own_temp_name(&base(p)))
        .map(|(p, _)| p.clone())
        .chain(
            tree.kept
                .iter()
                .filter(|p| is_own_temp_name(&base(p)))
                .cloned(),
        )
        .collect();
    for p in &found {
        tree.entries.remove(p);
    }
    found
}

impl Engine {
    /// Takes siteport's own temporary files out of the scanned trees and returns the target
    /// side's, for the plan. On the source side they are never sent (a crashed run's
    /// leftovers, matched loosely: nothing that looks like one is published); on the target
    /// side only exact names count (see the module doc).
    pub(super) fn split_temps(
        &mut self,
        direction: Direction,
        local: &mut Tree,
        remote: &mut Tree,
    ) -> Vec<String> {
        match direction {
            Direction::Export => {
                set_aside_temp_files(local);
                std::mem::take(&mut self.remote_temps)
            }
            Direction::Import => {
                // An import never changes the server: its temp files are only kept out.
                remote.kept.extend(std::mem::take(&mut self.remote_temps));
                set_aside_temp_files(remote);
                take_local_temps(local)
            }
        }
    }

    /// Removes the stale temporary files the plan lists, before anything else runs: on the
    /// server for an export (over the connections), in the local tree for an import. Each
    /// one removed, or the reason it could not be, goes into the report.
    pub(super) async fn remove_stale_temps(&mut self, plan: &Plan, report: &mut Report) {
        if plan.stale_temps.is_empty() {
            return;
        }
        match plan.direction {
            Direction::Export => {
                let jobs = plan.stale_temps.iter().cloned().map(Job::RemoveTemp);
                self.run_phase(jobs.collect()).await;
                let got = std::mem::take(&mut lock(&self.shared.results).temps);
                for (p, r) in got {
                    note_removal(report, &p, r);
                }
            }
            Direction::Import => {
                let root = self.opts.local_root.clone();
                for p in &plan.stale_temps {
                    note_removal(report, p, remove_local_temp(&root, p));
                }
            }
        }
    }

    /// After a run was cut short (its [`execute`](Engine::execute) future dropped, which
    /// aborts the workers mid-transfer): what it did, as a report marked stopped, and its
    /// partial files removed (best effort) on a fresh connection. The file each aborted
    /// worker was sending may sit on the server under its temporary name; only the directories
    /// of those files are listed, so this takes one round trip per file in flight.
    ///
    /// The journal already holds every file that completed; [`finish`](Engine::finish)
    /// compacts it.
    pub async fn stop_and_clean(&mut self, plan: &Plan) -> Report {
        self.shared
            .stop
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let mut report = Report::new(plan);
        let results = std::mem::take(&mut *lock(&self.shared.results));
        for (_, o) in results.outcomes {
            report.add(o);
        }
        report.warnings.extend(results.warnings);
        report.stopped = true;
        report.connections = self.logins_opened();
        let in_flight = std::mem::take(&mut *lock(&self.shared.in_flight));
        report.interrupted = in_flight.iter().cloned().collect();
        if in_flight.is_empty() {
            return report;
        }
        match plan.direction {
            Direction::Export => self.clean_remote_partials(&in_flight, &mut report).await,
            Direction::Import => {
                // A download's temporary file is removed when its aborted task is dropped;
                // this catches one whose task had not been dropped yet.
                let root = self.opts.local_root.clone();
                for (dir, names) in by_dir(&in_flight) {
                    let got = list_local_partials(&root, &dir, &names);
                    for p in got {
                        note_removal(&mut report, &p, remove_local_temp(&root, &p));
                    }
                }
            }
        }
        report
    }

    async fn clean_remote_partials(&mut self, in_flight: &BTreeSet<String>, report: &mut Report) {
        let mut conn = match self.shared.factory.connect().await {
            Ok(c) => c,
            Err(e) => {
                report.warnings.push(format!(
                    "could not reconnect to remove the partial uploads ({e}); the next export \
                     removes them"
                ));
                return;
            }
        };
        for (dir, names) in by_dir(in_flight) {
            match partials_in(conn.as_mut(), &dir, &names).await {
                Ok(found) => {
                    for p in found {
                        let r = conn.delete_file(&p).await;
                        note_removal(report, &p, r);
                    }
                }
                Err(e) => report.warnings.push(format!(
                    "could not list {dir:?} to remove partial uploads ({e}); the next export \
                     removes them"
                )),
            }
        }
        let _ = conn.close().await;
    }
}

/// The in-flight paths grouped by directory: directory → the bare names in it.
fn by_dir(paths: &BTreeSet<String>) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for p in paths {
        let name = p.rsplit('/').next().unwrap_or(p).to_owned();
        out.entry(parent(p).to_owned()).or_default().insert(name);
    }
    out
}

/// The temporary files in remote `dir` that belong to uploads of `names`.
async fn partials_in(
    conn: &mut dyn Remote,
    dir: &str,
    names: &BTreeSet<String>,
) -> Result<Vec<String>> {
    let entries = conn.list_dir(dir).await?;
    Ok(entries
        .into_iter()
        .filter(|e| e.kind == EntryKind::File)
        .filter(|e| upload_temp_target(&e.name).is_some_and(|t| names.contains(t)))
        .map(|e| join(dir, &e.name))
        .collect())
}

/// siteport's download temp files in local `dir` (relative), if any download was in flight
/// there. Their names do not say which download they were, so any of ours goes: the site lock
/// keeps other runs of this site out of this directory.
fn list_local_partials(root: &Path, dir: &str, names: &BTreeSet<String>) -> Vec<String> {
    if names.is_empty() {
        return Vec::new();
    }
    let full = if dir.is_empty() {
        root.to_path_buf()
    } else {
        local_path(root, dir)
    };
    let Ok(rd) = std::fs::read_dir(&full) else {
        return Vec::new();
    };
    rd.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| is_part_name(n))
        .map(|n| join(dir, &n))
        .collect()
}

/// Removes one local temporary file through the root's handle: never through a link, never
/// a directory (see [`LocalRoot::remove`]).
fn remove_local_temp(root: &Path, rel: &str) -> Result<()> {
    LocalRoot::open(root)?.remove(rel, Want::File)
}

/// Counts a removed temp file, or warns about one that could not be removed (a file already
/// gone counts as removed: something else cleaned it).
fn note_removal(report: &mut Report, path: &str, r: Result<()>) {
    match r {
        Ok(()) => report.temps_removed.push(path.to_owned()),
        Err(e) if e.kind() == ErrorKind::NotFound => report.temps_removed.push(path.to_owned()),
        Err(e) => report
            .warnings
            .push(format!("could not remove the temporary file {path}: {e}")),
    }
}

/// Whether `op` leaves a temporary file behind when it is cut short.
pub(super) fn writes_temp(op: Op) -> bool {
    matches!(op, Op::Upload | Op::Download)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_exact_own_names_count() {
        for own in [
            ".index.html.0123abcd.siteport-tmp",
            ".a.b.c.deadbeef.siteport-tmp",
            "..x.00000000.siteport-tmp",
            ".siteport-AbC123.part",
            ".siteport-0a1b2c3d.part",
        ] {
            assert!(is_own_temp_name(own), "{own}");
        }
        for user in [
            "index.html.0123abcd.siteport-tmp",
            ".index.html.siteport-tmp",
            ".index.html.0123ABCD.siteport-tmp",
            ".index.html.0123abc.siteport-tmp",
            ".index.html.0123abcde.siteport-tmp",
            "..0123abcd.siteport-tmp",
            ".index.html.0123abcd.siteport-tmp.bak",
            ".siteport-abc.part",
            ".siteport-abcdefg.part",
            ".siteport-ab_def.part",
            ".siteport-0A1B2C3D.part",
            ".siteport-0a1b2c3.part",
            "siteport-abcdef.part",
            "notes.part",
        ] {
            assert!(!is_own_temp_name(user), "{user}");
        }
        assert_eq!(
            upload_temp_target(".a.b.c.deadbeef.siteport-tmp"),
            Some("a.b.c")
        );
    }

    #[test]
    fn local_temps_leave_the_tree_and_are_removed_only_as_files() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        std::fs::create_dir(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/.siteport-Ab12cd.part"), b"x").unwrap();
        std::fs::write(root.join("sub/.siteport-draft.part.txt"), b"mine").unwrap();
        std::fs::create_dir(root.join(".siteport-dir123.part")).unwrap();
        let mut tree = crate::tree::scan_local(root, &crate::tree::Excludes::none()).unwrap();
        let got = take_local_temps(&mut tree);
        assert_eq!(got, vec!["sub/.siteport-Ab12cd.part".to_owned()]);
        assert!(tree.entries.contains_key("sub/.siteport-draft.part.txt"));
        remove_local_temp(root, "sub/.siteport-Ab12cd.part").unwrap();
        assert!(!root.join("sub/.siteport-Ab12cd.part").exists());
        assert!(remove_local_temp(root, ".siteport-dir123.part").is_err());
        assert!(root.join(".siteport-dir123.part").is_dir());
    }
}
