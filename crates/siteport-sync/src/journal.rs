//! The per-site journal: what was last transferred, so reruns send only what changed.
//!
//! On disk it is two files: `<path>` (a JSON snapshot, replaced atomically: temp file, fsync,
//! rename, fsync dir) and `<path>.log` (one JSON line appended after every completed file).
//! Opening replays the log over the snapshot and compacts it. A run killed at any instant
//! loses at most the line being written, which the replay ignores: the next run resumes
//! where it stopped. Log lines are not fsynced one by one (that would cost a disk flush per
//! file); they survive the death of the process, and a power cut only costs re-sending the
//! last files. A lock file (`<path>.lock`, see `journal_files.rs`) keeps two runs off one
//! journal; it is removed when the journal is closed.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::journal_files::{JournalLock, guard_error, with_suffix};

/// What the journal knows about one path after a completed transfer: both sides' state at
/// that moment and the content hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalRecord {
    /// Local size in bytes.
    pub size: u64,
    /// Local modification time, nanoseconds since the Unix epoch.
    pub local_mtime_ns: Option<i64>,
    /// Local status-change time (ctime), ns: any write, `touch -r` included, moves it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_ctime_ns: Option<i64>,
    /// Local inode number: a file replaced by another (editor save, checkout) changes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_ino: Option<u64>,
    /// Remote size in bytes.
    pub remote_size: u64,
    /// Remote modification time as listed, nanoseconds since the epoch. `None` right after
    /// an upload (the engine never lists a file just to learn it); filled in from the next
    /// listing.
    pub remote_mtime_ns: Option<i64>,
    /// BLAKE3 hash of the content, lowercase hex.
    pub hash: String,
}

impl JournalRecord {
    /// Whether the remote side is still as this record left it.
    pub fn remote_matches(&self, size: u64, mtime: Option<SystemTime>) -> bool {
        self.remote_size == size
            && match self.remote_mtime_ns {
                None => true,
                Some(ns) => mtime.map(to_ns).is_some_and(|m| listed_same(ns, m)),
            }
    }

    /// Whether the local file is still the one this record hashed, like git's index: size,
    /// mtime, ctime and inode all as recorded. Any difference (or a record without a stat
    /// cache) means the content must be hashed to be known.
    pub fn local_matches(&self, stat: &LocalStat) -> bool {
        self.size == stat.size
            && self.local_mtime_ns.is_some()
            && self.local_mtime_ns == stat.mtime_ns
            && self.local_ctime_ns.is_some()
            && self.local_ctime_ns == stat.ctime_ns
            && self.local_ino.is_some()
            && self.local_ino == stat.ino
    }

    /// Sets the local stat cache.
    pub fn set_local(&mut self, stat: &LocalStat) {
        self.size = stat.size;
        self.local_mtime_ns = stat.mtime_ns;
        self.local_ctime_ns = stat.ctime_ns;
        self.local_ino = stat.ino;
    }
}

/// Whether two listed times of one file are the same listing of the same upload. A LIST
/// line drops the time of day for files older than six months (`Jan  5  2025`), so a time at
/// midnight is the same as any time of that day.
fn listed_same(recorded: i64, listed: i64) -> bool {
    const DAY: i64 = 86_400 * 1_000_000_000;
    recorded == listed
        || (recorded.rem_euclid(DAY) == 0 || listed.rem_euclid(DAY) == 0)
            && recorded.div_euclid(DAY) == listed.div_euclid(DAY)
}

/// A local file's stat cache key: size, mtime, ctime, inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LocalStat {
    /// Size in bytes.
    pub size: u64,
    /// Modification time, ns.
    pub mtime_ns: Option<i64>,
    /// Status-change time, ns.
    pub ctime_ns: Option<i64>,
    /// Inode number.
    pub ino: Option<u64>,
}

impl LocalStat {
    /// The stat cache key of a file's metadata.
    pub fn of(m: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        Self {
            size: m.len(),
            mtime_ns: m.modified().ok().map(to_ns),
            ctime_ns: Some(
                m.ctime()
                    .saturating_mul(1_000_000_000)
                    .saturating_add(m.ctime_nsec()),
            ),
            ino: Some(m.ino()),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Snapshot {
    version: u32,
    records: BTreeMap<String, JournalRecord>,
    /// The server's deploy state these records mirror (see [`StateCache`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    state: Option<StateCache>,
}

#[derive(Serialize, Deserialize)]
struct LogLine {
    p: String,
    r: Option<JournalRecord>,
}

/// The journal of one site.
#[derive(Debug)]
pub struct Journal {
    path: Option<PathBuf>,
    records: BTreeMap<String, JournalRecord>,
    state: Option<StateCache>,
    log: Option<File>,
    /// Records changed since the snapshot was last written.
    dirty: bool,
    /// Dropped last (fields drop in order): the lock file goes once the rest is closed.
    _lock: Option<JournalLock>,
}

const VERSION: u32 = 1;

impl Journal {
    /// A journal that lives only in memory (dry runs, tests, `--no-journal`).
    pub fn in_memory() -> Self {
        Self {
            path: None,
            records: BTreeMap::new(),
            state: None,
            log: None,
            dirty: false,
            _lock: None,
        }
    }

    /// Opens (or creates) the journal at `path`, e.g.
    /// `$XDG_STATE_HOME/siteport/journal/<site>.json`. Missing parent directories are created
    /// (0700). A corrupt snapshot is an [`ErrorKind::Journal`] error with the fix.
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            siteport_fsguard::create_private_dir(dir)
                .map_err(|e| Error::local_io("create journal directory", dir, e))?;
        }
        // Another user who can write in the directory could plant or swap the files below.
        siteport_fsguard::check_parent("journal directory", path, true).map_err(guard_error)?;
        let lock = JournalLock::acquire(path)?;
        let read = siteport_fsguard::open_read(path).and_then(|mut f| {
            let mut bytes = Vec::new();
            f.read_to_end(&mut bytes).map(|_| bytes)
        });
        let (mut records, state) = match read {
            Ok(bytes) => {
                let snap: Snapshot = serde_json::from_slice(&bytes).map_err(|e| {
                    Error::new(
                        ErrorKind::Journal,
                        path.display().to_string(),
                        format!("journal is corrupt: {e}"),
                    )
                    .with_hint(format!(
                        "delete {} (the next run hashes the files against the server's deploy state)",
                        path.display()
                    ))
                })?;
                if snap.version != VERSION {
                    return Err(Error::new(
                        ErrorKind::Journal,
                        path.display().to_string(),
                        format!("journal version {} is not supported", snap.version),
                    )
                    .with_hint(format!("delete {}", path.display())));
                }
                (snap.records, snap.state)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (BTreeMap::new(), None),
            Err(e) => return Err(Error::local_io("read journal", path, e)),
        };
        let log_path = with_suffix(path, ".log");
        let had_log = match siteport_fsguard::open_read(&log_path) {
            Ok(f) => {
                replay(BufReader::new(f), &mut records);
                true
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => return Err(Error::local_io("read journal log", &log_path, e)),
        };
        let mut j = Self {
            path: Some(path.to_path_buf()),
            records,
            state,
            log: None,
            dirty: had_log,
            _lock: Some(lock),
        };
        if had_log {
            // Folding the log in now also drops a torn last line, so appends start clean.
            j.compact()?;
        }
        Ok(j)
    }

    /// The record for `path`, if any.
    pub fn get(&self, path: &str) -> Option<&JournalRecord> {
        self.records.get(path)
    }

    /// Every record, by path.
    pub fn records(&self) -> &BTreeMap<String, JournalRecord> {
        &self.records
    }

    /// The server state these records mirror, as last read or written.
    pub fn state_cache(&self) -> Option<&StateCache> {
        self.state.as_ref()
    }

    /// Sets (or clears) the state cache; written with the next snapshot. Cleared first thing
    /// when a run starts changing the server, so a run killed midway never claims its records
    /// mirror a document it has replaced since.
    pub fn set_state_cache(&mut self, cache: Option<StateCache>) -> Result<()> {
        if self.state != cache {
            self.state = cache;
            self.dirty = true;
            if self.state.is_none() {
                // Made durable at once: the log has no line for it.
                self.compact()?;
            }
        }
        Ok(())
    }

    /// Records a completed transfer (or a refreshed record), appending it to the log at once.
    pub fn record(&mut self, path: &str, rec: JournalRecord) -> Result<()> {
        self.append(&LogLine {
            p: path.to_string(),
            r: Some(rec.clone()),
        })?;
        self.records.insert(path.to_string(), rec);
        self.dirty = true;
        Ok(())
    }

    /// Forgets `path` (deleted on both sides).
    pub fn remove(&mut self, path: &str) -> Result<()> {
        if self.records.remove(path).is_some() {
            self.append(&LogLine {
                p: path.to_string(),
                r: None,
            })?;
            self.dirty = true;
        }
        Ok(())
    }

    /// Records many files at once (what a plan learned): one write to the log for all of
    /// them. A first run on a machine with no journal learns every file of the site.
    pub fn record_many<'a>(
        &mut self,
        recs: impl IntoIterator<Item = (&'a String, &'a JournalRecord)>,
    ) -> Result<()> {
        let recs: Vec<_> = recs.into_iter().collect();
        if recs.len() >= SNAPSHOT_BATCH {
            // As big as a snapshot: write the snapshot (the end of the run then has nothing
            // left to write) rather than the same bytes to the log first.
            for (path, rec) in recs {
                self.records.insert(path.clone(), rec.clone());
            }
            self.dirty = true;
            return self.compact();
        }
        let mut buf = Vec::new();
        for (path, rec) in recs {
            self.line_into(
                &mut buf,
                &LogLine {
                    p: path.clone(),
                    r: Some(rec.clone()),
                },
            )?;
            self.records.insert(path.clone(), rec.clone());
            self.dirty = true;
        }
        if buf.is_empty() {
            return Ok(());
        }
        self.append_bytes(&buf)
    }

    fn line_into(&self, buf: &mut Vec<u8>, line: &LogLine) -> Result<()> {
        serde_json::to_writer(&mut *buf, line).map_err(|e| {
            Error::new(
                ErrorKind::Journal,
                self.path
                    .as_deref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
                e.to_string(),
            )
        })?;
        buf.push(b'\n');
        Ok(())
    }

    fn append(&mut self, line: &LogLine) -> Result<()> {
        if self.path.is_none() {
            return Ok(());
        }
        let mut buf = Vec::new();
        self.line_into(&mut buf, line)?;
        self.append_bytes(&buf)
    }

    fn append_bytes(&mut self, buf: &[u8]) -> Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        if self.log.is_none() {
            let log_path = with_suffix(path, ".log");
            let f = siteport_fsguard::open_append(&log_path)
                .map_err(|e| Error::local_io("open journal log", &log_path, e))?;
            self.log = Some(f);
        }
        if let Some(f) = self.log.as_mut() {
            // One write per call: with O_APPEND a line is never interleaved or split by us.
            f.write_all(buf)
                .map_err(|e| Error::local_io("append to journal log", path, e))?;
        }
        Ok(())
    }

    /// Writes the snapshot atomically and removes the log. The engine calls it at the end of
    /// every run; nothing is written when nothing was recorded since the last snapshot (a
    /// no-change run of a 10,000-file site would rewrite and fsync 1.5 MB for nothing).
    pub fn compact(&mut self) -> Result<()> {
        let Some(path) = self.path.clone() else {
            return Ok(());
        };
        if !self.dirty {
            return Ok(());
        }
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let snap = Snapshot {
            version: VERSION,
            records: std::mem::take(&mut self.records),
            state: self.state.clone(),
        };
        let bytes = serde_json::to_vec(&snap);
        self.records = snap.records;
        let bytes = bytes.map_err(|e| {
            Error::new(
                ErrorKind::Journal,
                path.display().to_string(),
                e.to_string(),
            )
        })?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".journal-")
            .tempfile_in(dir)
            .map_err(|e| Error::local_io("create journal temp file", dir, e))?;
        tmp.write_all(&bytes)
            .and_then(|()| tmp.as_file().sync_all())
            .map_err(|e| Error::local_io("write journal", tmp.path(), e))?;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(|e| Error::local_io("chmod journal", tmp.path(), e))?;
        tmp.persist(&path)
            .map_err(|e| Error::local_io("replace journal", &path, e.error))?;
        if let Ok(d) = File::open(dir) {
            // Makes the rename durable; failure only weakens crash safety, never correctness.
            let _ = d.sync_all();
        }
        self.log = None;
        self.dirty = false;
        let log_path = with_suffix(&path, ".log");
        match std::fs::remove_file(&log_path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::local_io("remove journal log", &log_path, e)),
        }
    }
}

fn replay(r: impl BufRead, records: &mut BTreeMap<String, JournalRecord>) {
    for line in r.split(b'\n') {
        let Ok(line) = line else { break };
        // A torn or garbled line (the run was killed mid-write) ends the usable log.
        let Ok(l) = serde_json::from_slice::<LogLine>(&line) else {
            break;
        };
        match l.r {
            Some(rec) => {
                records.insert(l.p, rec);
            }
            None => {
                records.remove(&l.p);
            }
        }
    }
}

/// Nanoseconds since the Unix epoch (negative before it), saturating.
pub fn to_ns(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_nanos()).unwrap_or(i64::MAX),
    }
}

/// The inverse of [`to_ns`].
pub fn from_ns(ns: i64) -> SystemTime {
    if ns >= 0 {
        UNIX_EPOCH + Duration::from_nanos(ns.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_nanos(ns.unsigned_abs())
    }
}

/// A batch of [`Journal::record_many`] this large is written as a snapshot, not logged.
const SNAPSHOT_BATCH: usize = 1024;

/// BLAKE3 of a local file, streamed (bounded memory), lowercase hex. Blocking.
pub fn hash_file(path: &Path) -> Result<String> {
    let f = File::open(path).map_err(|e| Error::local_io("open for hashing", path, e))?;
    hash_reader(f).map_err(|e| Error::local_io("read for hashing", path, e))
}

/// The BLAKE3 hash of everything `r` yields, lowercase hex: for a file already opened (and
/// checked) by the caller.
pub(crate) fn hash_reader(r: impl std::io::Read) -> std::io::Result<String> {
    let mut h = blake3::Hasher::new();
    crate::digest::read_chunks(r, |chunk| {
        h.update(chunk);
    })?;
    Ok(h.finalize().to_hex().to_string())
}

/// What the journal remembers of the state it last read or wrote: when the server still
/// lists the document with this size and (exact) time, it is not downloaded again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateCache {
    /// The deploy id in that document.
    pub id: String,
    /// Its listed size.
    pub size: u64,
    /// Its listed time (ns), exact (MLSD or a local directory) only.
    pub mtime_ns: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(size: u64, hash: &str) -> JournalRecord {
        JournalRecord {
            size,
            local_mtime_ns: Some(5),
            local_ctime_ns: Some(6),
            local_ino: Some(7),
            remote_size: size,
            remote_mtime_ns: None,
            hash: hash.into(),
        }
    }

    #[test]
    fn compaction_writes_only_what_changed() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("j.json");
        Journal::open(&p).unwrap().compact().unwrap();
        assert!(!p.exists(), "nothing recorded: nothing written");
        {
            let mut j = Journal::open(&p).unwrap();
            j.record("a", rec(1, "h1")).unwrap();
            j.compact().unwrap();
        }
        let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        filetime::set_file_mtime(&p, filetime::FileTime::from_system_time(old)).unwrap();
        Journal::open(&p).unwrap().compact().unwrap();
        assert_eq!(
            std::fs::metadata(&p).unwrap().modified().unwrap(),
            old,
            "rewritten"
        );
        let mut j = Journal::open(&p).unwrap();
        j.remove("a").unwrap();
        j.compact().unwrap();
        assert_ne!(std::fs::metadata(&p).unwrap().modified().unwrap(), old);
        drop(j);
        assert!(Journal::open(&p).unwrap().records().is_empty());
    }

    #[test]
    fn log_survives_without_compaction_and_torn_line_is_ignored() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("j/site.json");
        {
            let mut j = Journal::open(&p).unwrap();
            j.record("a", rec(1, "aa")).unwrap();
            j.record("b", rec(2, "bb")).unwrap();
            j.remove("a").unwrap();
            // Dropped without compaction: as if the process was killed.
        }
        let mut log = std::fs::OpenOptions::new()
            .append(true)
            .open(with_suffix(&p, ".log"))
            .unwrap();
        log.write_all(b"{\"p\":\"c\",\"r\":{\"si").unwrap();
        drop(log);
        let mut j = Journal::open(&p).unwrap();
        assert!(j.get("a").is_none());
        assert_eq!(j.get("b").unwrap().hash, "bb");
        assert!(j.get("c").is_none());
        assert!(!with_suffix(&p, ".log").exists(), "open compacts the log");
        j.record("d", rec(4, "dd")).unwrap();
        drop(j);
        let j = Journal::open(&p).unwrap();
        assert_eq!(j.records().len(), 2);
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dmode = std::fs::metadata(p.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dmode, 0o700);
    }

    #[test]
    fn a_batch_is_one_log_write_replayed_after_a_kill() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s.json");
        let batch: Vec<(String, JournalRecord)> = (0..300)
            .map(|i| (format!("d/f{i}"), rec(i, &format!("h{i}"))))
            .collect();
        {
            let mut j = Journal::open(&p).unwrap();
            j.record("a", rec(1, "aa")).unwrap();
            j.record_many(batch.iter().map(|(p, r)| (p, r))).unwrap();
            // Dropped without compaction: as if the process was killed.
        }
        let log = std::fs::read_to_string(with_suffix(&p, ".log")).unwrap();
        assert_eq!(log.lines().count(), 301, "one line a record");
        let j = Journal::open(&p).unwrap();
        assert_eq!(j.records().len(), 301);
        assert_eq!(j.records()["d/f299"], rec(299, "h299"));
        assert_eq!(j.records()["a"], rec(1, "aa"));
    }

    #[test]
    fn a_batch_as_big_as_a_site_is_written_as_the_snapshot() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s.json");
        let batch: Vec<(String, JournalRecord)> = (0..SNAPSHOT_BATCH as u64)
            .map(|i| (format!("f{i}"), rec(i, "h")))
            .collect();
        {
            let mut j = Journal::open(&p).unwrap();
            j.record_many(batch.iter().map(|(p, r)| (p, r))).unwrap();
        }
        assert!(!with_suffix(&p, ".log").exists(), "nothing logged");
        assert_eq!(Journal::open(&p).unwrap().records().len(), SNAPSHOT_BATCH);
    }

    #[test]
    fn second_open_is_refused_while_locked() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s.json");
        let _j = Journal::open(&p).unwrap();
        let e = Journal::open(&p).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Journal);
    }

    #[test]
    fn corrupt_snapshot_is_a_journal_error_with_hint() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s.json");
        std::fs::write(&p, b"{not json").unwrap();
        let e = Journal::open(&p).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Journal);
        assert!(e.hint().unwrap().contains("delete"));
    }

    #[test]
    fn ns_round_trip_and_matching() {
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 123);
        assert_eq!(from_ns(to_ns(t)), t);
        let t0 = UNIX_EPOCH - Duration::from_secs(10);
        assert_eq!(from_ns(to_ns(t0)), t0);
        let mut r = rec(3, "x");
        assert!(r.remote_matches(3, None));
        assert!(!r.remote_matches(4, None));
        r.remote_mtime_ns = Some(to_ns(t));
        assert!(r.remote_matches(3, Some(t)));
        assert!(!r.remote_matches(3, Some(t0)));
        let st = LocalStat {
            size: 3,
            mtime_ns: Some(5),
            ctime_ns: Some(6),
            ino: Some(7),
        };
        assert!(r.local_matches(&st));
        assert!(!r.local_matches(&LocalStat {
            mtime_ns: Some(to_ns(t)),
            ..st
        }));
        assert!(
            !r.local_matches(&LocalStat {
                ctime_ns: Some(9),
                ..st
            }),
            "touch -r"
        );
        assert!(!r.local_matches(&LocalStat { ino: Some(9), ..st }));
    }
}
