//! One download: received into memory (small files) or streamed into a temporary file beside
//! its destination, then finished into place (fsync, mode, mtime, rename) and journaled, in
//! one trip to the blocking pool.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use tempfile::NamedTempFile;

use crate::error::{Error, Result};
use crate::journal::{JournalRecord, LocalStat, hash_file, to_ns};
use crate::plan::Action;
use crate::remote::Remote;

use super::Shared;
use super::local::check_local_target;
use super::transfer::{SMALL_FILE, blocking, journal_record};

/// Where a download's bytes are once received.
enum Received {
    /// In memory (a small file): written to a temporary file while finishing.
    Memory(Vec<u8>),
    /// Already in this temporary file, beside the destination (a streamed file).
    File(NamedTempFile),
}

pub(super) async fn download(sh: &Shared, conn: &mut dyn Remote, a: &Action) -> Result<u64> {
    if a.size <= SMALL_FILE {
        // Room for a file that grew a little since it was listed; beyond that it fails and
        // the next run plans it again with its new size.
        let max = (SMALL_FILE * 2) as usize;
        if let Some(data) = conn.get_contents(&a.path, max).await? {
            let n = data.len() as u64;
            return finish_download(sh, a, Received::Memory(data), n).await;
        }
    }
    let root = sh.local_root.clone();
    let rel = a.path.clone();
    let tmp = blocking(move || temp_file_for(&root, &rel)).await?;
    let n = conn.get(&a.path, tmp.path()).await?;
    finish_download(sh, a, Received::File(tmp), n).await
}

/// A temporary file (`.siteport-*.part`) in the directory of `root/rel`, after checking that
/// no link or file stands in the way.
fn temp_file_for(root: &Path, rel: &str) -> Result<NamedTempFile> {
    let dst = check_local_target(root, rel, false)?;
    let dir = dst.parent().unwrap_or(root).to_path_buf();
    tempfile::Builder::new()
        .prefix(".siteport-")
        .suffix(".part")
        .tempfile_in(&dir)
        .map_err(|e| Error::local_io("create temporary file", &dir, e))
}

/// Puts `n` received bytes into place as `a.path` (temporary file, fsync, mode, mtime,
/// rename, all in one trip to the blocking pool) and journals the file.
async fn finish_download(sh: &Shared, a: &Action, got: Received, n: u64) -> Result<u64> {
    let root = sh.local_root.clone();
    let rel = a.path.clone();
    let mtime = a.source_mtime;
    let (hash, local_mtime, stat) = blocking(move || {
        use std::io::Write;
        let (tmp, hash) = match got {
            Received::Memory(data) => {
                let mut tmp = temp_file_for(&root, &rel)?;
                tmp.write_all(&data)
                    .map_err(|e| Error::local_io("write", tmp.path(), e))?;
                (tmp, Some(blake3::hash(&data).to_hex().to_string()))
            }
            Received::File(tmp) => (tmp, None),
        };
        let f = tmp.as_file();
        let tp = tmp.path().to_path_buf();
        f.sync_all().map_err(|e| Error::local_io("fsync", &tp, e))?;
        f.set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(|e| Error::local_io("chmod", &tp, e))?;
        if let Some(t) = mtime {
            filetime::set_file_handle_times(f, None, Some(filetime::FileTime::from_system_time(t)))
                .map_err(|e| Error::local_io("set modification time", &tp, e))?;
        }
        // A streamed file is hashed from disk, once complete: the bytes that stay.
        let hash = match hash {
            Some(h) => h,
            None => hash_file(&tp)?,
        };
        let local_mtime = f.metadata().ok().and_then(|m| m.modified().ok());
        // Checked again just before the rename: a link planted meanwhile is not followed.
        let dst = check_local_target(&root, &rel, false)?;
        tmp.persist(&dst)
            .map_err(|e| Error::local_io("rename into place", &dst, e.error))?;
        // Stat after the rename (which moves the ctime): the stat cache of the next run.
        let stat = std::fs::symlink_metadata(&dst)
            .ok()
            .map(|m| LocalStat::of(&m));
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
