//! Private files on disk: permission checks, the advisory lock, atomic replacement, backups.

use std::fs::{self, File, TryLockError};
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{Error, ErrorKind, Result};
use crate::fsutil;

/// I/O failure on `path`, with a kind that fits the cause.
pub(crate) fn io_error(backend: &str, action: &str, path: &Path, e: &io::Error) -> Error {
    let kind = match e.kind() {
        io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => {
            ErrorKind::PermissionDenied
        }
        io::ErrorKind::NotFound => ErrorKind::NotFound,
        _ => ErrorKind::Unavailable,
    };
    let mut err = Error::new(
        kind,
        backend,
        format!("cannot {action} {}: {e}", path.display()),
    );
    if kind == ErrorKind::PermissionDenied {
        err = err.with_hint(format!(
            "check the ownership and permissions of {} and its directory",
            path.display()
        ));
    }
    err
}

/// Creates `dir` and missing parents with mode 0700 (existing directories are left alone),
/// then refuses it if another user owns it or can write in it.
pub(crate) fn ensure_dir(dir: &Path, backend: &str) -> Result<()> {
    if dir.as_os_str().is_empty() {
        return Ok(());
    }
    if !dir.is_dir() {
        fsutil::create_private_dir(dir)
            .map_err(|e| io_error(backend, "create directory", dir, &e))?;
    }
    check_dir(dir, backend)
}

/// Refuses the directory of the store or identity (the data or config dir) when another user
/// owns it or can write in it: they could swap the files siteport reads and writes there.
pub(crate) fn check_dir(dir: &Path, backend: &str) -> Result<()> {
    siteport_fsguard::check_dir("credential directory", dir, true)
        .map_err(|e| guard_error(backend, e))
}

/// A refusal of `siteport_fsguard` as a `PermissionDenied` error with its fix.
fn guard_error(backend: &str, e: siteport_fsguard::GuardError) -> Error {
    let hint = e.hint();
    let err = Error::new(ErrorKind::PermissionDenied, backend, e.to_string());
    match hint {
        Some(h) => err.with_hint(h),
        None => err,
    }
}

/// Refuses a file whose mode gives group or others any access, as ssh does with private keys.
fn check_private(
    meta: &fs::Metadata,
    path: &Path,
    what: &'static str,
    backend: &str,
) -> Result<()> {
    if !meta.is_file() {
        return Err(Error::new(
            ErrorKind::Invalid,
            backend,
            format!("{what} {} is not a regular file", path.display()),
        ));
    }
    let mode = meta.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(Error::new(
            ErrorKind::PermissionDenied,
            backend,
            format!(
                "{what} {} has mode {mode:04o}, readable or writable by other users; refusing to use it",
                path.display()
            ),
        )
        .with_hint(format!("chmod 600 {}", path.display())));
    }
    // Another user's file: they wrote what siteport would trust (a forged store, an identity
    // of their choosing).
    siteport_fsguard::check_file_owner(what, path, meta).map_err(|e| guard_error(backend, e))
}

/// Opens an existing private file for reading: `None` if it does not exist, an error if its
/// permissions or owner are unsafe (checked on the open handle, so a swap after the check is
/// harmless), if it is a link (never followed: the backend resolves links to the store and
/// identity once, when it is opened), or if its directory is unsafe.
pub(crate) fn open_private(path: &Path, what: &'static str, backend: &str) -> Result<Option<File>> {
    check_dir(parent_dir(path), backend)?;
    let file = match siteport_fsguard::open_read(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error(backend, &format!("open {what}"), path, &e)),
    };
    let meta = file
        .metadata()
        .map_err(|e| io_error(backend, &format!("inspect {what}"), path, &e))?;
    check_private(&meta, path, what, backend)?;
    Ok(Some(file))
}

/// The sidecar lock file of `store`: `<store>.lock`.
pub(crate) fn lock_path(store: &Path) -> PathBuf {
    let mut p = store.as_os_str().to_owned();
    p.push(".lock");
    PathBuf::from(p)
}

/// An exclusive advisory lock on `<store>.lock`, released on drop (and by the kernel if the
/// process dies, so a crashed writer never leaves the store locked).
pub(crate) struct StoreLock {
    _file: File,
}

impl StoreLock {
    /// Waits for the lock while other writers make progress: `timeout` counts from the last
    /// time the store changed, so a queue of writers that each finish (eight concurrent
    /// `credential add` in passphrase mode, each spending two scrypt derivations of about a
    /// second under the lock) is waited through, and only a holder that changes nothing for
    /// the whole `timeout` (stuck, or a long interactive prompt) makes this give up.
    pub fn acquire(store: &Path, timeout: Duration, backend: &str) -> Result<Self> {
        let path = lock_path(store);
        let file = siteport_fsguard::open_lock(&path)
            .map_err(|e| io_error(backend, "open lock file", &path, &e))?;
        let mut start = Instant::now();
        let mut seen = version(store);
        let mut pause = Duration::from_millis(2);
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(Self { _file: file }),
                Err(TryLockError::WouldBlock) => {}
                Err(TryLockError::Error(e)) => {
                    return Err(io_error(backend, "lock", &path, &e));
                }
            }
            let now = version(store);
            if now != seen {
                // Another writer finished: the queue moves.
                seen = now;
                start = Instant::now();
            }
            if start.elapsed() >= timeout {
                return Err(Error::new(
                    ErrorKind::Locked,
                    backend,
                    format!(
                        "another process has held the lock {} for more than {} s without \
                         changing the store",
                        path.display(),
                        timeout.as_secs_f32()
                    ),
                )
                .with_hint(
                    "wait for the other siteport command to finish, then try again \
                     (`fuser` on the lock file shows who holds it)",
                ));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }
}

/// What identifies one write of the store: every write renames a new file over it.
fn version(store: &Path) -> Option<(u64, u64, i64, i64)> {
    fs::symlink_metadata(store)
        .ok()
        .map(|m| (m.dev(), m.ino(), m.mtime(), m.mtime_nsec()))
}

fn temp_prefix(path: &Path) -> String {
    format!(
        ".{}.",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    )
}

const TEMP_SUFFIX: &str = ".tmp";

/// Replaces `path` with `bytes` so that a crash at any instant leaves either the old or the new
/// file: temp file (0600) in the same directory, write, fsync, rename, fsync the directory.
pub(crate) fn atomic_write(path: &Path, bytes: &[u8], backend: &str) -> Result<()> {
    let dir = parent_dir(path);
    ensure_dir(dir, backend)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(&temp_prefix(path))
        .suffix(TEMP_SUFFIX)
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(
            fsutil::PRIVATE_FILE_MODE,
        ))
        .tempfile_in(dir)
        .map_err(|e| io_error(backend, "create a temporary file in", dir, &e))?;
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| io_error(backend, "write", tmp.path(), &e))?;
    tmp.persist(path)
        .map_err(|e| io_error(backend, "replace", path, &e.error))?;
    sync_dir(dir, backend)
}

use siteport_fsguard::parent_dir;

fn sync_dir(dir: &Path, backend: &str) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error(backend, "sync directory", dir, &e))
}

/// Removes temp files left by writers that were killed mid-write. Call only under the lock:
/// writers create temp files only while holding it, so any that exist then are orphans.
pub(crate) fn remove_stale_temps(path: &Path) {
    let prefix = temp_prefix(path);
    let Ok(entries) = fs::read_dir(parent_dir(path)) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(&prefix) && name.ends_with(TEMP_SUFFIX) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Writes `bytes` to a new 0600 file next to `path` called `<path>.bak-<UTC timestamp>` (with
/// `-N` added if that exists), fsyncs it and its directory, and returns its path.
pub(crate) fn write_backup(path: &Path, bytes: &[u8], backend: &str) -> Result<PathBuf> {
    let stamp = time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))
        .unwrap_or_else(|_| "unknown-time".to_owned());
    for n in 0..1000 {
        let mut name = path.as_os_str().to_owned();
        name.push(format!(".bak-{stamp}"));
        if n > 0 {
            name.push(format!("-{n}"));
        }
        let candidate = PathBuf::from(name);
        match siteport_fsguard::create_new(&candidate) {
            Ok(mut f) => {
                f.write_all(bytes)
                    .and_then(|()| f.sync_all())
                    .map_err(|e| io_error(backend, "write backup", &candidate, &e))?;
                sync_dir(parent_dir(path), backend)?;
                return Ok(candidate);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_error(backend, "create backup", &candidate, &e)),
        }
    }
    Err(Error::new(
        ErrorKind::Unavailable,
        backend,
        format!("too many backups of {} this second", path.display()),
    ))
}
