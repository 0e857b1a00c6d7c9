//! Listing and the small operations: `list_dir` (from READDIR's attributes, no STAT per
//! entry), `mkdir`, `remove_file`, `remove_dir`, `rename_replace`.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt as _;
use futures_util::stream::FuturesOrdered;
use russh_sftp::client::RawSftpSession;
use russh_sftp::client::error::Error as SftpRawError;
use russh_sftp::protocol::{FileAttributes, FileType, StatusCode};

use super::SftpConnection;
use crate::error::SftpError;

/// Renames [`SftpConnection::rename_many`] keeps in flight at once: as many requests as an
/// upload keeps WRITEs outstanding.
pub const RENAME_IN_FLIGHT: usize = 64;

/// READDIR requests a listing keeps outstanding (see [`SftpConnection::list_dir`]).
const READDIRS_IN_FLIGHT: usize = 2;

/// What a listed entry is. Symbolic links are reported as such (READDIR's attributes are
/// `lstat`'s): never followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A device, FIFO, socket, or an entry without a type.
    Other,
}

/// One entry of a directory listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteEntry {
    /// The bare name, as the server sent it (not checked: callers refuse unsafe names).
    pub name: String,
    /// File, directory, link or other.
    pub kind: EntryKind,
    /// Size in bytes (as listed; 0 when absent).
    pub size: u64,
    /// Modification time, exact to the second (SFTP's `mtime` is seconds since the epoch).
    pub mtime: Option<SystemTime>,
}

/// How an upload was moved to its final name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenameMethod {
    /// `posix-rename@openssh.com`: atomic, the final name never missing.
    PosixRename,
    /// The server lacks it: the old file was removed, then the new one renamed (the name was
    /// missing for a moment).
    RemoveThenRename,
    /// The server lacks it, and nothing was at the final name: a plain RENAME (nothing was
    /// replaced, so nothing was missing).
    Rename,
}

pub(crate) fn entry_kind(attrs: &FileAttributes) -> EntryKind {
    if attrs.permissions.is_none() {
        return EntryKind::Other;
    }
    match attrs.file_type() {
        FileType::File => EntryKind::File,
        FileType::Dir => EntryKind::Dir,
        FileType::Symlink => EntryKind::Symlink,
        FileType::Other => EntryKind::Other,
    }
}

pub(crate) fn secs(t: SystemTime) -> u32 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
        .unwrap_or(0)
}

fn is_status(e: &SftpRawError, code: StatusCode) -> bool {
    matches!(e, SftpRawError::Status(s) if s.status_code == code)
}

impl SftpConnection {
    /// Lists `path` (without `.` and `..`), from the attributes READDIR returns.
    ///
    /// Round trips are what a listing costs (a no-change run lists every directory): two
    /// READDIRs are kept in flight (a server answers the requests on a handle in order, each
    /// with the next batch, then end-of-directory to every one after the end), and the CLOSE
    /// is sent without waiting for its answer. A directory of up to two batches (OpenSSH
    /// sends 100 names per batch) takes two round trips instead of four or five.
    pub async fn list_dir(&self, path: &str) -> Result<Vec<RemoteEntry>, SftpError> {
        let op = format!("list {path}");
        let handle: Arc<str> = self
            .sftp
            .opendir(path)
            .await
            .map_err(|e| SftpError::from_sftp(&self.server, &op, e))?
            .handle
            .into();
        let readdir = |sftp: Arc<RawSftpSession>, handle: Arc<str>| async move {
            sftp.readdir(&*handle).await
        };
        let mut inflight = FuturesOrdered::new();
        for _ in 0..READDIRS_IN_FLIGHT {
            inflight.push_back(readdir(self.sftp.clone(), handle.clone()));
        }
        let mut out = Vec::new();
        let result = loop {
            let Some(next) = inflight.next().await else {
                break Ok(());
            };
            match next {
                Ok(name) => {
                    inflight.push_back(readdir(self.sftp.clone(), handle.clone()));
                    for f in name.files {
                        if f.filename == "." || f.filename == ".." {
                            continue;
                        }
                        out.push(RemoteEntry {
                            kind: entry_kind(&f.attrs),
                            size: f.attrs.size.unwrap_or(0),
                            mtime: f
                                .attrs
                                .mtime
                                .map(|s| UNIX_EPOCH + Duration::from_secs(u64::from(s))),
                            name: f.filename,
                        });
                    }
                }
                Err(e) if is_status(&e, StatusCode::Eof) => break Ok(()),
                Err(e) => break Err(SftpError::from_sftp(&self.server, &op, e)),
            }
        };
        // The READDIRs still in flight are answered (end of directory) and their answers
        // dropped. The CLOSE goes after them; nothing waits for its answer (a handle the
        // server failed to close costs it a slot, not this listing).
        drop(inflight);
        let sftp = self.sftp.clone();
        tokio::spawn(async move {
            let _ = sftp.close(&*handle).await;
        });
        result.map(|()| out)
    }

    /// Creates the directory `path` (mode `dir_mode`). An existing directory is not an error.
    pub async fn mkdir(&self, path: &str) -> Result<(), SftpError> {
        self.mkdir_new(path).await.map(|_| ())
    }

    /// Creates the directory `path` only if it does not exist: `Ok(true)` when this call
    /// created it, `Ok(false)` when a directory was already there. The server's MKDIR is
    /// atomic, so of several racing callers exactly one gets `Ok(true)` (the site lock).
    /// A directory this call created gets `dir_mode` exactly; one already there is left as
    /// it is.
    pub async fn mkdir_new(&self, path: &str) -> Result<bool, SftpError> {
        let mut attrs = FileAttributes::empty();
        attrs.permissions = Some(self.dir_mode);
        match self.sftp.mkdir(path, attrs.clone()).await {
            Ok(_) => {
                // OpenSSH's sftp-server passes MKDIR's mode to mkdir(2), where the server's
                // umask takes bits away (0775 becomes 0755 under umask 022): SETSTAT sets
                // the mode itself, as OPEN's mode for files is followed by an FSETSTAT.
                self.sftp.setstat(path, attrs).await.map_err(|e| {
                    SftpError::from_sftp(&self.server, &format!("setstat {path}"), e)
                })?;
                Ok(true)
            }
            Err(e) => {
                // SFTP v3 has no "already exists" status: OpenSSH answers a generic failure.
                if let Ok(a) = self.sftp.lstat(path).await
                    && entry_kind(&a.attrs) == EntryKind::Dir
                {
                    return Ok(false);
                }
                Err(SftpError::from_sftp(
                    &self.server,
                    &format!("mkdir {path}"),
                    e,
                ))
            }
        }
    }

    /// Deletes the file (or symlink) `path`.
    pub async fn remove_file(&self, path: &str) -> Result<(), SftpError> {
        self.sftp
            .remove(path)
            .await
            .map(|_| ())
            .map_err(|e| SftpError::from_sftp(&self.server, &format!("remove {path}"), e))
    }

    /// Removes the empty directory `path`.
    pub async fn remove_dir(&self, path: &str) -> Result<(), SftpError> {
        self.sftp
            .rmdir(path)
            .await
            .map(|_| ())
            .map_err(|e| SftpError::from_sftp(&self.server, &format!("rmdir {path}"), e))
    }

    /// Sets the modification (and access) time of `path`.
    pub async fn set_mtime(&self, path: &str, mtime: SystemTime) -> Result<(), SftpError> {
        let mut attrs = FileAttributes::empty();
        attrs.mtime = Some(secs(mtime));
        attrs.atime = attrs.mtime;
        self.sftp
            .setstat(path, attrs)
            .await
            .map(|_| ())
            .map_err(|e| SftpError::from_sftp(&self.server, &format!("setstat {path}"), e))
    }

    /// Renames a batch of `(from, to)` pairs as [`rename_replace`](Self::rename_replace)
    /// does, one result per pair in order. The requests are all on their way before the
    /// first answer is awaited (up to [`RENAME_IN_FLIGHT`] at once): SFTP matches answers to
    /// requests by id, so the batch costs about one round trip instead of one per file.
    pub async fn rename_many(
        &self,
        pairs: &[(&str, &str)],
    ) -> Vec<Result<RenameMethod, SftpError>> {
        use futures_util::StreamExt as _;
        // A plain loop, not a stream adapter over a closure: the future stays `Send` for any
        // caller's lifetimes.
        let mut out = Vec::with_capacity(pairs.len());
        let mut running = futures_util::stream::FuturesOrdered::new();
        let mut next = 0;
        loop {
            while running.len() < RENAME_IN_FLIGHT && next < pairs.len() {
                let (from, to) = pairs[next];
                running.push_back(self.rename_replace(from, to));
                next += 1;
            }
            match running.next().await {
                Some(r) => out.push(r),
                None => return out,
            }
        }
    }

    /// Renames `from` to `to`, replacing `to` if it exists: atomically with
    /// `posix-rename@openssh.com` when offered, else remove then rename (the method says
    /// whether something was removed).
    pub async fn rename_replace(&self, from: &str, to: &str) -> Result<RenameMethod, SftpError> {
        let op = format!("rename {from} {to}");
        if self.posix_rename {
            let mut data = Vec::with_capacity(8 + from.len() + to.len());
            for s in [from, to] {
                let len = u32::try_from(s.len()).unwrap_or(u32::MAX);
                data.extend_from_slice(&len.to_be_bytes());
                data.extend_from_slice(s.as_bytes());
            }
            return match self.sftp.extended("posix-rename@openssh.com", data).await {
                Ok(russh_sftp::protocol::Packet::Status(s)) if s.status_code == StatusCode::Ok => {
                    Ok(RenameMethod::PosixRename)
                }
                Ok(russh_sftp::protocol::Packet::Status(s)) => Err(SftpError::from_sftp(
                    &self.server,
                    &op,
                    SftpRawError::Status(s),
                )),
                Ok(_) => Err(SftpError::from_sftp(
                    &self.server,
                    &op,
                    SftpRawError::UnexpectedPacket,
                )),
                Err(e) => Err(SftpError::from_sftp(&self.server, &op, e)),
            };
        }
        let method = match self.sftp.remove(to).await {
            Ok(_) => RenameMethod::RemoveThenRename,
            Err(e) if is_status(&e, StatusCode::NoSuchFile) => RenameMethod::Rename,
            Err(e) => return Err(SftpError::from_sftp(&self.server, &op, e)),
        };
        self.sftp
            .rename(from, to)
            .await
            .map(|_| method)
            .map_err(|e| SftpError::from_sftp(&self.server, &op, e))
    }
}
