//! One download: received into memory (small files) or streamed into a temporary file beside
//! its destination, then finished into place (fsync, mode, mtime, rename) and journaled, in
//! one trip to the blocking pool.

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::error::{Error, Result};
use crate::journal::{JournalRecord, LocalStat, hash_reader, to_ns};
use crate::local_fs::TempAt;
use crate::plan::Action;
use crate::remote::{ByteMeter, LocalFile, Remote};

use super::Shared;
use super::transfer::{SMALL_FILE, blocking, journal_record};

/// Where a download's bytes are once received.
enum Received {
    /// In memory (a small file): written to a temporary file while finishing.
    Memory(Vec<u8>),
    /// Already in this temporary file, beside the destination (a streamed file).
    File(TempAt),
}

pub(super) async fn download(sh: &Shared, conn: &mut dyn Remote, a: &Action) -> Result<u64> {
    if a.size <= SMALL_FILE {
        // Room for a file that grew a little since it was listed; beyond that it fails and
        // the next run plans it again with its new size.
        let max = (SMALL_FILE * 2) as usize;
        if let Some(data) = conn.get_contents(&a.path, max).await? {
            let n = data.len() as u64;
            sh.moved.fetch_add(n, Ordering::Relaxed);
            let done = finish_download(sh, a, Received::Memory(data), n).await;
            return uncount_failed(sh, done, n);
        }
    }
    let root = sh.root()?;
    let rel = a.path.clone();
    let tmp = blocking(move || root.temp_for(&rel)).await?;
    let file = tmp
        .file()
        .try_clone()
        .map_err(|e| Error::local_io("duplicate handle", tmp.shown(), e))?;
    // Counted as it arrives: a large file on a slow link takes seconds.
    let meter = Arc::new(ByteMeter::new(sh.moved.clone()));
    let local = LocalFile {
        file,
        shown: tmp.shown().to_path_buf(),
        meter: Some(meter.clone()),
    };
    let got = conn.get(&a.path, local).await;
    let n = meter.settle(got)?;
    let done = finish_download(sh, a, Received::File(tmp), n).await;
    uncount_failed(sh, done, n)
}

/// A download received whole but not put into place is tried again or failed: its `n`
/// bytes come off the run's count, which then holds only what a try completed.
fn uncount_failed(sh: &Shared, done: Result<u64>, n: u64) -> Result<u64> {
    if done.is_err() {
        sh.moved.fetch_sub(n, Ordering::Relaxed);
    }
    done
}

/// Puts `n` received bytes into place as `a.path` (temporary file, fsync, mode, mtime,
/// rename, all in one trip to the blocking pool, all through handles) and journals the file.
async fn finish_download(sh: &Shared, a: &Action, got: Received, n: u64) -> Result<u64> {
    let root = sh.root()?;
    let rel = a.path.clone();
    let mtime = a.source_mtime;
    let (hash, local_mtime, stat) = blocking(move || {
        use std::io::{Seek, Write};
        let (tmp, hash) = match got {
            Received::Memory(data) => {
                let tmp = root.temp_for(&rel)?;
                tmp.file()
                    .write_all(&data)
                    .map_err(|e| Error::local_io("write", tmp.shown(), e))?;
                (tmp, Some(blake3::hash(&data).to_hex().to_string()))
            }
            Received::File(tmp) => (tmp, None),
        };
        let tp = tmp.shown().to_path_buf();
        let mut f = tmp
            .file()
            .try_clone()
            .map_err(|e| Error::local_io("duplicate handle", &tp, e))?;
        f.sync_all().map_err(|e| Error::local_io("fsync", &tp, e))?;
        f.set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(|e| Error::local_io("chmod", &tp, e))?;
        if let Some(t) = mtime {
            filetime::set_file_handle_times(
                &f,
                None,
                Some(filetime::FileTime::from_system_time(t)),
            )
            .map_err(|e| Error::local_io("set modification time", &tp, e))?;
        }
        // A streamed file is hashed from disk, once complete: the bytes that stay.
        let hash = match hash {
            Some(h) => h,
            None => f
                .rewind()
                .and_then(|()| hash_reader(&f))
                .map_err(|e| Error::local_io("read for hashing", &tp, e))?,
        };
        let local_mtime = f.metadata().ok().and_then(|m| m.modified().ok());
        tmp.persist()?;
        // Stat after the rename (which moves the ctime): the stat cache of the next run.
        let stat = f.metadata().ok().map(|m| LocalStat::of(&m));
        Ok((hash, local_mtime, stat))
    })
    .await?;
    let listed_ok = n == a.size;
    journal_record(
        sh,
        &a.path,
        JournalRecord {
            size: n,
            local_mtime_ns: local_mtime.map(to_ns),
            local_ctime_ns: stat.and_then(|s| s.ctime_ns),
            local_ino: stat.and_then(|s| s.ino),
            remote_size: n,
            remote_mtime_ns: if listed_ok { mtime.map(to_ns) } else { None },
            hash,
        },
    );
    Ok(n)
}
