//! The deploy state on the server (see `state.rs` for the document): read before planning
//! (or taken from the journal when the journal mirrors it), kept up to date as files arrive,
//! written during the run (every [`SAVE_EVERY`] files or [`SAVE_INTERVAL`]) and at its end,
//! and mirrored into the journal afterwards.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::error::Result;
use crate::journal::{JournalRecord, StateCache, to_ns};
use crate::path::join;
use crate::plan::{Baseline, Plan};
use crate::remote::{EntryKind, Remote};
use crate::state::{
    DeployInfo, DeployState, HTACCESS, MAX_STATE_BYTES, STATE_FILE, StateRecord, dir_chain,
    in_state_dir, parent_dirs,
};
use crate::state_dir::in_web_root;
use crate::tree::{Tree, TreeEntry};

use super::scheduler::Job;
use super::{Engine, Shared, lock};

/// A state write at least every this many uploaded files…
pub(super) const SAVE_EVERY: usize = 500;
/// …and at least this often while files arrive.
pub(super) const SAVE_INTERVAL: Duration = Duration::from_secs(10);

/// A listing of `state.json`: size, and time (ns) when exact.
type Listed = (u64, Option<i64>);

/// The state of the run in progress, shared by the workers.
pub(super) struct Tracker {
    /// The state dir, relative to the remote root.
    pub(super) dir: String,
    pub(super) info: DeployInfo,
    /// What the server holds now, as far as known.
    pub(super) records: BTreeMap<String, StateRecord>,
    /// The records as read at the start (from the server or the journal's mirror of it).
    loaded: Option<BTreeMap<String, StateRecord>>,
    /// `state.json` as listed by the scan.
    listed: Option<Listed>,
    /// The id of the document read, if any.
    loaded_id: Option<String>,
    dir_ready: bool,
    htaccess: bool,
    /// Files uploaded by this run (their dirs are listed again after the uploads).
    uploaded: Vec<String>,
    changed: bool,
    since_save: usize,
    save_every: usize,
    last_save: Instant,
    saving: bool,
    /// A save during the run failed: no more until the final one (one warning, not one per
    /// 500 files).
    save_failed: bool,
}

impl Tracker {
    fn document(&self, complete: bool) -> Vec<u8> {
        let mut info = self.info.clone();
        info.complete = complete;
        info.files = self.records.len() as u64;
        info.bytes = self.records.values().map(|r| r.size).sum();
        DeployState {
            deploy: info,
            files: self.records.clone(),
        }
        .to_bytes()
    }
}

/// What the scan found of the state dir, taken out of the trees.
pub(super) struct StateListing {
    file: Option<TreeEntry>,
    dir: bool,
    htaccess: bool,
}

/// Takes the state dir out of both trees (it is never uploaded over, deleted, imported or
/// planned) and returns what the remote listing showed of it.
pub(super) fn set_aside_state_dir(dir: &str, local: &mut Tree, remote: &mut Tree) -> StateListing {
    let listing = StateListing {
        file: remote
            .entries
            .get(&join(dir, STATE_FILE))
            .filter(|e| e.kind == EntryKind::File)
            .cloned(),
        dir: remote
            .entries
            .get(dir)
            .is_some_and(|e| e.kind == EntryKind::Dir),
        htaccess: remote.entries.contains_key(&join(dir, ".htaccess")),
    };
    for t in [local, remote] {
        t.entries.retain(|p, _| !in_state_dir(dir, p));
        t.problems.retain(|p| !in_state_dir(dir, &p.path));
        t.kept.retain(|p| !in_state_dir(dir, p));
        t.kept.insert(dir.to_string());
    }
    listing
}

impl Engine {
    /// What the server has of a state dir outside the web root (the scan never sees it): one
    /// listing of the dir itself. A dir that cannot be listed is taken as missing (the export
    /// then works as without state, which is safe: it sends more, never less); the state
    /// write then creates it, or says why it could not.
    pub(super) async fn list_outside_state_dir(&mut self, dir: &str) -> StateListing {
        let listed = match self.any_conn().await {
            Ok(c) => c.list_dir(dir).await,
            Err(e) => Err(e),
        };
        let listed = match listed {
            Ok(entries) => Some(entries),
            Err(e) if e.kind() == crate::error::ErrorKind::NotFound => None,
            Err(e) => {
                tracing::warn!(
                    state_dir = dir,
                    "the deploy state dir could not be listed: {e}"
                );
                None
            }
        };
        let Some(entries) = listed else {
            return StateListing {
                file: None,
                dir: false,
                htaccess: false,
            };
        };
        StateListing {
            file: entries
                .iter()
                .find(|e| e.name == STATE_FILE && e.kind == EntryKind::File)
                .map(|e| TreeEntry::file(e.size, e.mtime, e.mtime_precise)),
            dir: true,
            htaccess: entries.iter().any(|e| e.name == ".htaccess"),
        }
    }

    /// Reads the server's state (or the journal's mirror of it). A missing document is no
    /// state; a broken one is no state plus a note naming it.
    pub(super) async fn load_state(
        &mut self,
        dir: &str,
        listing: &StateListing,
        notes: &mut Vec<String>,
    ) -> Option<DeployState> {
        let entry = listing.file.as_ref()?;
        let listed_ns = entry.mtime.filter(|_| entry.mtime_precise).map(to_ns);
        {
            let j = lock(&self.shared.journal);
            if let Some(c) = j.state_cache()
                && c.size == entry.size
                && Some(c.mtime_ns) == listed_ns
            {
                // The journal mirrors this very document: no download.
                let files = j
                    .records()
                    .iter()
                    .map(|(p, r)| (p.clone(), StateRecord::from_journal(r)))
                    .collect();
                let mut deploy = DeployInfo::new(&self.opts.local_root);
                deploy.id = c.id.clone();
                return Some(DeployState { deploy, files });
            }
        }
        let path = join(dir, STATE_FILE);
        let place = if in_web_root(dir) {
            format!("{}/{path}", self.shared.factory.describe())
        } else {
            format!("{path} on {}", self.shared.factory.describe())
        };
        let bytes = match self.fetch_small(&path).await {
            Ok(b) => b,
            Err(e) => {
                notes.push(format!(
                    "deploy state {place} could not be read ({e}); exporting as if there was none"
                ));
                return None;
            }
        };
        match DeployState::parse(&bytes) {
            Ok(s) => Some(s),
            Err(why) => {
                // One line, through the report (the CLI prints its warnings once).
                notes.push(format!(
                    "deploy state {place} ignored: {why}; exporting as if there was none (the \
                     next export rewrites it)"
                ));
                None
            }
        }
    }

    /// Downloads a small remote file into memory over any open connection.
    async fn fetch_small(&mut self, path: &str) -> Result<Vec<u8>> {
        let conn = self.any_conn().await?;
        if let Some(b) = conn.get_contents(path, MAX_STATE_BYTES).await? {
            return Ok(b);
        }
        crate::lock::get_via_temp(conn.as_mut(), path).await
    }

    /// The connection of the first worker, opened if none is.
    pub(super) async fn any_conn(&mut self) -> Result<&mut Box<dyn Remote>> {
        let i = self.pool.iter().position(|w| w.conn.is_some());
        let i = match i {
            Some(i) => i,
            None => {
                let c = self.shared.factory.connect().await?;
                let w = self.pool.first_mut().ok_or_else(|| {
                    crate::error::Error::new(
                        crate::error::ErrorKind::TooManyConnections,
                        self.shared.factory.describe(),
                        "no connection left",
                    )
                })?;
                w.conn = Some(c);
                w.opened = true;
                0
            }
        };
        self.pool[i].conn.as_mut().ok_or_else(|| {
            crate::error::Error::new(
                crate::error::ErrorKind::Network,
                "engine",
                "connection vanished",
            )
        })
    }

    /// Sets up the run's tracker after planning: every remote file whose record still holds,
    /// refreshed by what the plan learnt.
    pub(super) fn start_tracker(
        &mut self,
        dir: &str,
        listing: &StateListing,
        state: Option<&DeployState>,
        base: &Baseline<'_>,
        remote: &Tree,
        plan: &Plan,
    ) {
        let mut records: BTreeMap<String, StateRecord> = remote
            .entries
            .iter()
            .filter(|(_, e)| e.kind == EntryKind::File)
            .filter_map(|(p, e)| {
                base.server_record(p, e)
                    .map(|r| (p.clone(), StateRecord::from_journal(&r)))
            })
            .collect();
        for (p, r) in &plan.journal_updates {
            records.insert(p.clone(), StateRecord::from_journal(r));
        }
        let t = Tracker {
            dir: dir.to_string(),
            info: DeployInfo::new(&self.opts.local_root),
            records,
            loaded: state.map(|s| s.files.clone()),
            listed: listing
                .file
                .as_ref()
                .map(|e| (e.size, e.mtime.filter(|_| e.mtime_precise).map(to_ns))),
            loaded_id: state.map(|s| s.deploy.id.clone()),
            dir_ready: listing.dir,
            htaccess: listing.htaccess,
            uploaded: Vec::new(),
            changed: false,
            since_save: 0,
            save_every: self.opts.state_save_every.max(1),
            last_save: Instant::now(),
            saving: false,
            save_failed: false,
        };
        *lock(&self.shared.deploy) = Some(t);
    }

    /// After the uploads: lists the directories that received files so the state records
    /// what the server listed right after the upload. The directories are split evenly over
    /// the connections already open, each share listed in one batch
    /// ([`Remote::list_dirs`]: one round trip per connection over FTP), all at once; a
    /// directory whose listing failed is listed again as an ordinary job, with the usual
    /// tries and reconnects.
    pub(super) async fn relist_uploaded(&mut self) {
        let dirs: BTreeSet<String> = match lock(&self.shared.deploy).as_ref() {
            Some(t) => parent_dirs(t.uploaded.iter().map(String::as_str)),
            None => return,
        };
        if dirs.is_empty() {
            return;
        }
        let (mut listings, again) = self.list_spread(dirs.into_iter().collect()).await;
        if !again.is_empty() {
            self.run_phase(again.into_iter().map(Job::List).collect())
                .await;
            listings.extend(std::mem::take(&mut lock(&self.shared.results).listings));
        }
        let mut guard = lock(&self.shared.deploy);
        let Some(t) = guard.as_mut() else { return };
        let uploaded: BTreeSet<&str> = t.uploaded.iter().map(String::as_str).collect();
        let mut learnt = Vec::new();
        for (dir, res) in listings {
            let Ok(entries) = res else { continue };
            for e in entries.iter().filter(|e| e.kind == EntryKind::File) {
                let p = join(&dir, &e.name);
                if !uploaded.contains(p.as_str()) {
                    continue;
                }
                if let Some(r) = t.records.get_mut(&p) {
                    r.remote_size = e.size;
                    r.remote_mtime_ns = e.mtime.map(to_ns);
                    learnt.push((p, r.clone()));
                }
            }
        }
        drop(guard);
        let mut j = lock(&self.shared.journal);
        for (p, r) in learnt {
            if let Some(mut jr) = j.get(&p).cloned()
                && jr.hash == r.hash
            {
                jr.remote_size = r.remote_size;
                jr.remote_mtime_ns = r.remote_mtime_ns;
                if let Err(e) = j.record(&p, jr) {
                    lock(&self.shared.results).warnings.push(e.to_string());
                    break;
                }
            }
        }
    }

    /// Lists `dirs` over the pool's open connections at once, each taking an even share in
    /// one [`Remote::list_dirs`] batch. Returns the listings that worked and the directories
    /// to list again (failed, or no connection open).
    async fn list_spread(
        &mut self,
        dirs: Vec<String>,
    ) -> (
        Vec<(String, Result<Vec<crate::remote::RemoteEntry>>)>,
        Vec<String>,
    ) {
        let open: Vec<usize> = (0..self.pool.len())
            .filter(|&i| self.pool[i].conn.is_some())
            .collect();
        if open.is_empty() || self.stopped() {
            return (Vec::new(), dirs);
        }
        let per = dirs.len().div_ceil(open.len());
        let mut tasks = tokio::task::JoinSet::new();
        for (i, share) in open.into_iter().zip(dirs.chunks(per)) {
            let Some(mut conn) = self.pool[i].conn.take() else {
                continue;
            };
            let share = share.to_vec();
            tasks.spawn(async move {
                let listed = conn.list_dirs(&share).await;
                (i, conn, share, listed)
            });
        }
        let mut done = BTreeSet::new();
        let mut listings = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            // A task that panicked took its connection with it: its worker reconnects.
            let Ok((i, conn, share, listed)) = joined else {
                continue;
            };
            self.pool[i].conn = Some(conn);
            for (dir, res) in share.into_iter().zip(listed) {
                if res.is_ok() {
                    done.insert(dir.clone());
                    listings.push((dir, res));
                }
            }
        }
        let again = dirs.into_iter().filter(|d| !done.contains(d)).collect();
        (listings, again)
    }

    /// Writes the final document (when anything differs from what the server has), then
    /// makes the journal mirror it. Failures are warnings: the files are on the server.
    pub(super) async fn finish_state(&mut self, warnings: &mut Vec<String>) {
        // A stopped run (Ctrl-C) records what it did, as not complete.
        let complete = !self.stopped();
        let Some((dir, bytes, must_write)) = lock(&self.shared.deploy).as_ref().map(|t| {
            let same = t.loaded.as_ref() == Some(&t.records);
            (t.dir.clone(), t.document(complete), t.changed || !same)
        }) else {
            return;
        };
        let mut listed = lock(&self.shared.deploy)
            .as_ref()
            .and_then(|t| t.listed.map(|l| (l, t.loaded_id.clone())));
        if must_write {
            let (dir_ready, htaccess) = lock(&self.shared.deploy)
                .as_ref()
                .map_or((false, false), |t| (t.dir_ready, t.htaccess));
            let res = match self.any_conn().await {
                Ok(c) => write_state(c.as_mut(), &dir, &bytes, dir_ready, htaccess)
                    .await
                    .map(|()| c.capabilities().precise_mtime),
                Err(e) => Err(e),
            };
            let precise = match res {
                Ok(p) => p,
                Err(e) => {
                    warnings.push(format!(
                        "the deploy state could not be written ({e}); the next export from \
                         another machine may send more than needed"
                    ));
                    return;
                }
            };
            // The document's listed size and exact time let the next run skip downloading
            // it (the journal's state cache). A listing without exact times (LIST) can make
            // no cache, so it is not asked for: the cache is cleared as it would be then.
            listed = if precise {
                self.list_state_file(&dir).await.map(|l| {
                    (
                        l,
                        lock(&self.shared.deploy)
                            .as_ref()
                            .map(|t| t.info.id.clone()),
                    )
                })
            } else {
                None
            };
        }
        self.mirror_into_journal(listed, warnings);
    }

    async fn list_state_file(&mut self, dir: &str) -> Option<Listed> {
        let c = self.any_conn().await.ok()?;
        let entries = c.list_dir(dir).await.ok()?;
        entries
            .into_iter()
            .find(|e| e.name == STATE_FILE && e.kind == EntryKind::File)
            .map(|e| (e.size, e.mtime.filter(|_| e.mtime_precise).map(to_ns)))
    }

    /// Makes the journal hold the state's records (keeping the stat cache where the content
    /// is the same) and remember which document it mirrors.
    fn mirror_into_journal(
        &mut self,
        listed: Option<(Listed, Option<String>)>,
        warnings: &mut Vec<String>,
    ) {
        let guard = lock(&self.shared.deploy);
        let Some(t) = guard.as_ref() else { return };
        let mut j = lock(&self.shared.journal);
        // An exact mirror: a record the state does not hold (a file another machine deleted)
        // would make the next run think the document differs from what it would write.
        let stale: Vec<String> = j
            .records()
            .keys()
            .filter(|p| !t.records.contains_key(*p))
            .cloned()
            .collect();
        for p in stale {
            if let Err(e) = j.remove(&p) {
                warnings.push(e.to_string());
                return;
            }
        }
        for (p, r) in &t.records {
            let next = match j.get(p) {
                Some(old) if old.hash == r.hash => JournalRecord {
                    remote_size: r.remote_size,
                    remote_mtime_ns: r.remote_mtime_ns,
                    ..old.clone()
                },
                _ => r.to_journal(),
            };
            if j.get(p) != Some(&next)
                && let Err(e) = j.record(p, next)
            {
                warnings.push(e.to_string());
                return;
            }
        }
        let cache = match listed {
            Some(((size, Some(mtime_ns)), Some(id))) => Some(StateCache { id, size, mtime_ns }),
            _ => None,
        };
        if let Err(e) = j.set_state_cache(cache) {
            warnings.push(e.to_string());
        }
    }
}

/// Creates the state dir (and, inside the web root, its `.htaccess`) when missing, then
/// replaces the document atomically (temporary name, rename). Outside the web root no HTTP
/// server serves the dir, and an `.htaccess` there could even change how a parent directory
/// that another site uses is served: none is written.
async fn write_state(
    conn: &mut dyn Remote,
    dir: &str,
    bytes: &[u8],
    dir_ready: bool,
    htaccess: bool,
) -> Result<()> {
    if !dir_ready {
        for d in dir_chain(dir) {
            conn.mkdir(&d).await?;
        }
    }
    if !htaccess && in_web_root(dir) {
        put_bytes(conn, &join(dir, ".htaccess"), HTACCESS.as_bytes()).await?;
    }
    put_bytes(conn, &join(dir, STATE_FILE), bytes).await
}

async fn put_bytes(conn: &mut dyn Remote, path: &str, bytes: &[u8]) -> Result<()> {
    conn.put_atomic_contents(bytes, path, None).await.map(drop)
}

/// Called by a worker after each completed upload: records it, and writes the document
/// on this worker's connection when a save is due (so a run killed midway is resumed from
/// any machine without resending what arrived).
/// Records an upload published by a burst switch (see `burst.rs`), without writing the
/// state: the burst's files are recorded one after another, and the state is written once
/// at the end of the run (`finish_state`).
pub(super) fn uploaded_unsaved(sh: &Shared, path: &str, rec: &JournalRecord) {
    let mut g = lock(&sh.deploy);
    let Some(t) = g.as_mut() else { return };
    t.records
        .insert(path.to_string(), StateRecord::from_journal(rec));
    t.uploaded.push(path.to_string());
    t.changed = true;
    t.since_save += 1;
}

pub(super) async fn uploaded(sh: &Shared, conn: &mut dyn Remote, path: &str, rec: &JournalRecord) {
    let due = {
        let mut g = lock(&sh.deploy);
        let Some(t) = g.as_mut() else { return };
        t.records
            .insert(path.to_string(), StateRecord::from_journal(rec));
        t.uploaded.push(path.to_string());
        t.changed = true;
        t.since_save += 1;
        let time_to_save = t.since_save >= t.save_every || t.last_save.elapsed() >= SAVE_INTERVAL;
        if !t.saving && !t.save_failed && time_to_save {
            t.saving = true;
            t.since_save = 0;
            t.last_save = Instant::now();
            Some((t.dir.clone(), t.document(false), t.dir_ready, t.htaccess))
        } else {
            None
        }
    };
    let Some((dir, bytes, dir_ready, htaccess)) = due else {
        return;
    };
    let res = write_state(conn, &dir, &bytes, dir_ready, htaccess).await;
    let mut g = lock(&sh.deploy);
    if let Some(t) = g.as_mut() {
        t.saving = false;
        if res.is_ok() {
            t.dir_ready = true;
            t.htaccess = true;
        } else {
            t.save_failed = true;
        }
    }
    if let Err(e) = res {
        lock(&sh.results).warnings.push(format!(
            "the deploy state could not be saved during the run: {e}"
        ));
    }
}

impl Engine {
    /// Drops `paths` from the deploy state of the run (they are not on the server as sent);
    /// `false` when the run keeps no state.
    pub(super) fn forget(&self, paths: &[&str]) -> bool {
        let mut g = lock(&self.shared.deploy);
        let Some(t) = g.as_mut() else { return false };
        for p in paths {
            t.records.remove(*p);
        }
        t.changed = true;
        true
    }
}

/// Called after a completed delete.
pub(super) fn deleted(sh: &Shared, path: &str) {
    if let Some(t) = lock(&sh.deploy).as_mut() {
        t.records.remove(path);
        t.changed = true;
    }
}
