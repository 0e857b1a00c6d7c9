//! One remote action per job, on the worker's connection: mkdir, upload, delete, remove
//! directory (downloads are in `download.rs`), and the journal entry each completed file
//! gets at once.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use crate::error::{Error, ErrorKind, Result};
use crate::journal::{JournalRecord, LocalStat, to_ns};
use crate::plan::{Action, Direction, Op};
use crate::remote::{ByteMeter, LocalFile, Remote, Staged};

use super::download::download;
use super::{Shared, lock};

pub(super) async fn remote_action(
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
            super::deploy::deleted(sh, &a.path);
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

pub(super) fn journal_record(sh: &Shared, path: &str, rec: JournalRecord) {
    if let Err(e) = lock(&sh.journal).record(path, rec) {
        lock(&sh.results).warnings.push(e.to_string());
    }
}

fn journal_remove(sh: &Shared, path: &str) {
    if let Err(e) = lock(&sh.journal).remove(path) {
        lock(&sh.results).warnings.push(e.to_string());
    }
}

pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
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
pub(super) const SMALL_FILE: u64 = 1024 * 1024;

async fn upload(sh: &Shared, conn: &mut dyn Remote, a: &Action) -> Result<u64> {
    // Opened once, from the root handle, without following links, and checked to be the
    // file the scan saw: a name swapped for a link (or another file) since the scan is
    // refused here, and the transport is handed this very file, never the name. A small
    // file is read right here, on the runtime thread: a few KiB from the page cache take
    // microseconds, less than the hand-off to the blocking pool and back. Larger files are
    // hashed as they are sent: one pass over the file, and the hash is of exactly the
    // bytes sent.
    let root = sh.root()?;
    let (rel, expect) = sh.source_of(&a.path);
    let (mut file, m) = root.open_scanned(&rel, expect)?;
    let shown = root.shown(&rel);
    let mtime = m.modified().ok();
    let stat = LocalStat::of(&m);
    // A burst switch stages the file under its temporary name; it goes live with the others.
    let burst = sh.burst.load(Ordering::SeqCst);
    let (hash, n, from_memory, after, staged) = if m.len() <= SMALL_FILE {
        let data = read_all(&mut file, m.len(), &shown)?;
        let h = blake3::hash(&data).to_hex().to_string();
        let (n, staged) = if burst {
            conn.put_staged_contents(&data, &a.path, mtime).await?
        } else {
            let n = conn.put_atomic_contents(&data, &a.path, mtime).await?;
            (n, Staged::published(&a.path))
        };
        // A small file is counted whole once sent: it takes a moment.
        sh.moved.fetch_add(n, Ordering::Relaxed);
        (h, n, true, None, staged)
    } else {
        // A second handle on the same open file: its size and time after the upload say
        // whether it was edited meanwhile, without looking the name up again.
        let after = file
            .try_clone()
            .map_err(|e| Error::local_io("duplicate handle", &shown, e))?;
        let hasher = Arc::new(Mutex::new(blake3::Hasher::new()));
        let feed = hasher.clone();
        let observe: crate::remote::ReadObserver = Box::new(move |chunk: &[u8]| {
            lock(&feed).update(chunk);
        });
        // Counted as it is sent: a large file on a slow link takes seconds.
        let meter = Arc::new(ByteMeter::new(sh.moved.clone()));
        let local = LocalFile {
            file,
            shown,
            meter: Some(meter.clone()),
        };
        let sent = if burst {
            conn.put_staged(local, &a.path, mtime, Some(observe)).await
        } else {
            let n = conn.put_atomic(local, &a.path, mtime, Some(observe)).await;
            n.map(|n| (n, Staged::published(&a.path)))
        };
        let (sent, staged) = match sent {
            Ok((n, s)) => (Ok(n), Some(s)),
            Err(e) => (Err(e), None),
        };
        let n = meter.settle(sent)?;
        let staged = staged.unwrap_or_else(|| Staged::published(&a.path));
        let h = lock(&hasher).finalize().to_hex().to_string();
        (h, n, false, Some(after), staged)
    };
    let size = stat.size;
    // Journal only what was actually sent: a file edited during the upload goes again. A
    // file sent from memory needs no second look: its hash is of exactly the bytes sent, so an
    // edit after the stat shows up next run as an mtime that differs, then a hash that
    // matches what the server has.
    let unchanged = n == size
        && (from_memory
            || after
                .and_then(|f| f.metadata().ok())
                .is_some_and(|m| m.len() == size && m.modified().ok() == mtime));
    let rec = unchanged.then(|| JournalRecord {
        size,
        local_mtime_ns: mtime.map(to_ns),
        local_ctime_ns: stat.ctime_ns,
        local_ino: stat.ino,
        remote_size: n,
        remote_mtime_ns: None,
        hash,
    });
    if staged.temp.is_some() {
        // Not live yet: journaled and recorded in the deploy state once renamed.
        let pending = super::burst::Pending {
            staged,
            rec,
            outcome: None,
        };
        lock(&sh.staged).insert(a.path.clone(), pending);
        return Ok(n);
    }
    super::burst::went_live(sh);
    if let Some(rec) = rec {
        super::deploy::uploaded(sh, conn, &a.path, &rec).await;
        journal_record(sh, &a.path, rec);
    }
    Ok(n)
}

/// Reads an open small file whole (`len`: its size when opened; room for a little growth).
fn read_all(file: &mut std::fs::File, len: u64, shown: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut data = Vec::with_capacity(len as usize + 1);
    file.read_to_end(&mut data)
        .map_err(|e| Error::local_io("read", shown, e))?;
    Ok(data)
}
