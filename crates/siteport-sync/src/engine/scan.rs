//! The remote side of a scan: the tree listed level by level (each level's directories in
//! parallel over the connections), with unsafe names, links and unlistable directories set
//! aside as problems, and siteport's own temporary files kept out of the plan.

use std::collections::BTreeMap;

use crate::digest::hash_reader_with;
use crate::error::{Error, ErrorKind, Result};
use crate::path::{check_name, join};
use crate::plan::Baseline;
use crate::plan::Direction;
use crate::remote::{EntryKind, RemoteEntry};
use crate::state::in_state_dir;
use crate::state_dir::in_web_root;
use crate::tree::{ProblemKind, ScanProblem, Tree, TreeEntry};

use super::scheduler::Job;
use super::temps::is_own_temp_name;
use super::{Engine, lock};

impl Engine {
    pub(super) async fn scan_remote(&mut self, direction: Direction) -> Result<Tree> {
        let mut tree = Tree::default();
        let mut level = vec![String::new()];
        // The deploy state dir is listed whatever the excludes say (`.*`, `*.json`): the
        // engine takes it out of the trees itself.
        let state_dir = self.state_dir()?;
        let ours = |p: &str| {
            state_dir
                .as_deref()
                .filter(|d| in_web_root(d))
                .is_some_and(|d| {
                    in_state_dir(d, p) || d.strip_prefix(p).is_some_and(|r| r.starts_with('/'))
                })
        };
        self.remote_root_missing = false;
        self.remote_temps.clear();
        // The site lock's directory (which this run holds, inside the state dir) is listed
        // with its parent's level rather than in a level of its own: at a distance that
        // level is a round trip for one small directory.
        let lock_dir = state_dir
            .as_deref()
            .filter(|d| in_web_root(d))
            .map(|d| join(d, "lock"));
        let mut prelisted: BTreeMap<String, Result<Vec<RemoteEntry>>> = BTreeMap::new();
        while !level.is_empty() {
            let mut listings = Vec::new();
            level.retain(|d| match prelisted.remove(d) {
                Some(r) => {
                    listings.push((d.clone(), r));
                    false
                }
                None => true,
            });
            let early = lock_dir
                .clone()
                .filter(|l| level.iter().any(|d| d == crate::path::parent(l)));
            let mut jobs: Vec<Job> = level.drain(..).map(Job::List).collect();
            jobs.extend(early.clone().map(Job::List));
            self.run_phase(jobs).await;
            self.check_fatal()?;
            let mut got = std::mem::take(&mut lock(&self.shared.results).listings);
            if let Some(l) = &early
                && let Some(i) = got.iter().position(|(d, _)| d == l)
            {
                // Used when its parent's listing names it (a lock is held), else dropped.
                let (d, r) = got.remove(i);
                prelisted.insert(d, r);
            }
            listings.extend(got);
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
                        // Reported through the plan and the report (the CLI lists them).
                        tracing::debug!(path = %shown, why, "unsafe remote name refused");
                        tree.kept.insert(shown.clone());
                        tree.problems.push(ScanProblem {
                            path: shown,
                            kind: ProblemKind::UnsafeName,
                            detail: format!("unsafe remote name refused: {why}"),
                        });
                        continue;
                    }
                    let path = join(&dir, &ent.name);
                    // Checked before the excludes, which are about the user's files: a
                    // `.*` exclude must not hide a dead run's partial upload. The state dir
                    // counts too (a state or lock owner write cut short): it is only ever
                    // written under the site lock, which the run that removes them holds.
                    if ent.kind == EntryKind::File && is_own_temp_name(&ent.name) {
                        self.remote_temps.push(path);
                        continue;
                    }
                    match ent.kind {
                        EntryKind::Dir => {
                            if self.opts.excludes.prunes_dir(&path) && !ours(&path) {
                                tree.kept.insert(path);
                            } else {
                                tree.entries.insert(path.clone(), TreeEntry::dir());
                                level.push(path);
                            }
                        }
                        EntryKind::File => {
                            if self.opts.excludes.is_excluded(&path) && !ours(&path) {
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
}

impl Engine {
    /// With no record of what the server has (no state, no journal), asks a server that can
    /// hash for the hash of every same-size file and compares it with the local file's: `true`
    /// when equal. Empty when the server cannot hash (those files are then sent).
    pub(super) async fn prove_by_server_hash(
        &mut self,
        local: &Tree,
        remote: &Tree,
        base: &Baseline<'_>,
    ) -> BTreeMap<String, bool> {
        let Some(alg) = lock(&self.shared.caps).and_then(|c| c.hash) else {
            return BTreeMap::new();
        };
        let candidates: Vec<String> = local
            .entries
            .iter()
            .filter(|(p, l)| {
                l.kind == EntryKind::File
                    && !base.has_record(p)
                    && remote
                        .entries
                        .get(*p)
                        .is_some_and(|r| r.kind == EntryKind::File && r.size == l.size)
            })
            .map(|(p, _)| p.clone())
            .collect();
        if candidates.is_empty() {
            return BTreeMap::new();
        }
        self.run_phase(candidates.into_iter().map(|p| Job::Hash(p, alg)).collect())
            .await;
        let got = std::mem::take(&mut lock(&self.shared.results).hashes);
        let Ok(root) = self.shared.root() else {
            return BTreeMap::new();
        };
        // Read as an upload reads: from the root, no link followed, the file the scan saw.
        let got: Vec<_> = got
            .into_iter()
            .filter_map(|(p, r)| {
                let (from, id) = local.entries.get(&p)?.read_from(&p);
                Some((p.clone(), from.to_string(), id, r))
            })
            .collect();
        tokio::task::spawn_blocking(move || {
            got.into_iter()
                .filter_map(|(p, from, id, r)| {
                    let theirs = r.ok()?.to_ascii_lowercase();
                    let (f, _) = root.open_scanned(&from, id).ok()?;
                    let mine = hash_reader_with(f, alg).ok()?;
                    Some((p, mine == theirs))
                })
                .collect()
        })
        .await
        .unwrap_or_default()
    }
}

/// Whether a name is one of siteport's temporary files: `.siteport-*.part` (downloads, and
/// `LocalDirRemote` uploads) or `.NAME.TAG.siteport-tmp` (FTP uploads).
fn is_temp_name(name: &str) -> bool {
    name.starts_with('.')
        && ((name.starts_with(".siteport-") && name.ends_with(".part"))
            || name.ends_with(".siteport-tmp"))
}

pub(super) fn set_aside_temp_files(tree: &mut Tree) {
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
