//! The journal's files on disk: which file belongs to which remote, and the lock file that
//! keeps two runs off one journal.
//!
//! A journal describes one remote tree, so its file is named after what identifies that tree
//! (protocol, host, port, user, remote directory), never after the site's name: two projects
//! that each call a site `blog` get two journals, and renaming a site keeps its journal.
//!
//! The lock file (`<journal>.lock`) is removed when the journal is closed. Removing a lock
//! file others may open is safe only because whoever takes the lock then checks that the
//! path still names the file it locked (and starts over when not): a run that opened the old
//! file just before it was removed never believes it holds the lock of the new one.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::endpoint::Endpoint;
use crate::error::{Error, ErrorKind, Result};

/// Suffix of a journal's lock file.
const LOCK_SUFFIX: &str = ".lock";

/// The journal file name of the remote tree `endpoint` points at:
/// `<host>-<16 hex digits>.json`. The digits are a BLAKE3 hash of protocol, host (lowercase),
/// port, user and remote directory (trailing `/` ignored), so names that differ only in
/// characters a file name cannot hold (`a b`, `a_b`) never share a journal. The host part
/// is only there for people looking at the directory.
pub fn journal_file_name(endpoint: &Endpoint) -> String {
    let root = endpoint.root.trim_end_matches('/');
    let root = if root.is_empty() && endpoint.root.starts_with('/') {
        "/"
    } else {
        root
    };
    let host = endpoint.host.to_ascii_lowercase();
    let mut h = blake3::Hasher::new();
    // Each part length-prefixed: no choice of values can make two identities hash alike.
    for part in [
        "siteport journal v1",
        endpoint.protocol.scheme(),
        &host,
        &endpoint.port.to_string(),
        &endpoint.login.username,
        root,
    ] {
        h.update(&(part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    let hex = h.finalize().to_hex();
    let readable: String = host
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let readable = readable.trim_start_matches('.');
    format!("{readable}-{}.json", &hex.as_str()[..16])
}

/// The lock of one journal: held (an advisory `flock`) for as long as this value lives; the
/// lock file is removed when it is dropped.
#[derive(Debug)]
pub(crate) struct JournalLock {
    path: PathBuf,
    _file: File,
}

impl JournalLock {
    /// Takes the lock of the journal at `journal`, or says that another run holds it.
    pub(crate) fn acquire(journal: &Path) -> Result<Self> {
        let path = with_suffix(journal, LOCK_SUFFIX);
        // A few rounds at most: each lost one means a holder removed the file between our
        // open and our lock, which a live run does once, at its end.
        for _ in 0..16 {
            let file = siteport_fsguard::open_lock(&path)
                .map_err(|e| Error::local_io("open journal lock", &path, e))?;
            if file.try_lock().is_err() {
                return Err(Error::new(
                    ErrorKind::Journal,
                    journal.display().to_string(),
                    "another siteport run is using this site's journal",
                )
                .with_hint("wait for the other run to finish"));
            }
            if names_file(&path, &file) {
                return Ok(Self { path, _file: file });
            }
        }
        Err(Error::new(
            ErrorKind::Journal,
            journal.display().to_string(),
            "the journal's lock file keeps being replaced",
        )
        .with_hint("check what else writes in the journal directory"))
    }

    /// Takes the lock of `journal` if nobody holds it; `None` when someone does.
    fn try_acquire(journal: &Path) -> Result<Option<Self>> {
        match Self::acquire(journal) {
            Ok(l) => Ok(Some(l)),
            Err(e) if e.kind() == ErrorKind::Journal => Ok(None),
            Err(e) => Err(e),
        }
    }
}

impl Drop for JournalLock {
    fn drop(&mut self) {
        // Removed while still locked (the file is closed after this body), so nobody can
        // hold a lock on it that this removal would orphan.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Whether `path` still names the open file `file` (not replaced, not removed).
fn names_file(path: &Path, file: &File) -> bool {
    match (std::fs::symlink_metadata(path), file.metadata()) {
        (Ok(p), Ok(f)) => p.dev() == f.dev() && p.ino() == f.ino(),
        _ => false,
    }
}

/// Removes the lock files in the journal directory `dir` that no run holds: left by runs
/// that were killed before they could remove their own. Returns how many went. Best effort:
/// a file that cannot be opened or removed is left as it is.
pub fn sweep_journal_locks(dir: &Path) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for ent in rd.flatten() {
        let name = ent.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.ends_with(".json.lock") || !ent.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let path = ent.path();
        let Ok(file) = siteport_fsguard::open(&siteport_fsguard::private_file(), &path) else {
            continue;
        };
        if file.try_lock().is_ok()
            && names_file(&path, &file)
            && std::fs::remove_file(&path).is_ok()
        {
            removed += 1;
        }
    }
    removed
}

/// Moves the journal at `old` (snapshot and log) to `new`, under `old`'s lock, when `new` has
/// none yet: a journal kept under an earlier naming rule (the site's name) is carried over to
/// this one instead of silently dropped. `Ok(false)` when there is nothing to move, `new`
/// already exists, or another run holds `old`.
pub fn adopt_journal(old: &Path, new: &Path) -> Result<bool> {
    let log = |p: &Path| with_suffix(p, ".log");
    if new.exists() || log(new).exists() || !(old.exists() || log(old).exists()) {
        return Ok(false);
    }
    let Some(_lock) = JournalLock::try_acquire(old)? else {
        return Ok(false);
    };
    let mut moved = false;
    for (from, to) in [(old.to_path_buf(), new.to_path_buf()), (log(old), log(new))] {
        match std::fs::rename(&from, &to) {
            Ok(()) => moved = true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::local_io("move journal", &from, e)),
        }
    }
    Ok(moved)
}

/// A journal directory siteport refuses (another user's, or writable by others), or one it
/// could not inspect: a journal error with the fix.
pub(crate) fn guard_error(e: siteport_fsguard::GuardError) -> Error {
    let hint = e.hint();
    let out = Error::new(ErrorKind::Journal, "journal", e.to_string());
    match hint {
        Some(h) => out.with_hint(h),
        None => out,
    }
}

pub(crate) fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::{FtpSettings, Login, Protocol};
    use secrecy::SecretString;

    fn ep(host: &str, port: u16, user: &str, root: &str) -> Endpoint {
        Endpoint::new(
            host,
            port,
            Protocol::Ftp(FtpSettings::default()),
            root,
            Login::new(user, SecretString::from("pw".to_owned())),
        )
    }

    #[test]
    fn the_name_follows_the_remote_not_the_site() {
        let a = journal_file_name(&ep("Example.COM", 21, "u", "/htdocs/"));
        assert_eq!(a, journal_file_name(&ep("example.com", 21, "u", "/htdocs")));
        assert!(a.starts_with("example.com-") && a.ends_with(".json"), "{a}");
        for other in [
            ep("example.com", 2121, "u", "/htdocs"),
            ep("example.com", 21, "v", "/htdocs"),
            ep("example.com", 21, "u", "/blog"),
            ep("example.org", 21, "u", "/htdocs"),
            ep("example.com", 21, "u", "htdocs"),
        ] {
            assert_ne!(a, journal_file_name(&other), "{other:?}");
        }
        let sftp = Endpoint::new(
            "example.com",
            21,
            Protocol::Sftp(Default::default()),
            "/htdocs",
            Login::new("u", SecretString::from("pw".to_owned())),
        );
        assert_ne!(a, journal_file_name(&sftp));
        assert!(!journal_file_name(&ep("../x", 21, "u", "/")).contains('/'));
        assert!(!journal_file_name(&ep(".hidden", 21, "u", "/")).starts_with('.'));
    }

    #[test]
    fn lock_file_goes_with_its_holder_and_a_stale_one_is_swept() {
        let d = tempfile::tempdir().unwrap();
        let j = d.path().join("x.json");
        let lock_path = with_suffix(&j, LOCK_SUFFIX);
        let held = JournalLock::acquire(&j).unwrap();
        assert!(lock_path.exists());
        assert!(JournalLock::acquire(&j).is_err(), "second holder");
        assert_eq!(sweep_journal_locks(d.path()), 0, "a held lock stays");
        drop(held);
        assert!(!lock_path.exists(), "dropping the lock removes its file");
        // A killed run's lock file: present, held by nobody.
        std::fs::write(&lock_path, b"").unwrap();
        std::fs::write(d.path().join("notes.lock"), b"").unwrap();
        assert_eq!(sweep_journal_locks(d.path()), 1);
        assert!(!lock_path.exists());
        assert!(d.path().join("notes.lock").exists(), "not a journal lock");
    }

    #[test]
    fn an_old_journal_is_adopted_once() {
        let d = tempfile::tempdir().unwrap();
        let old = d.path().join("blog.json");
        let new = d.path().join("h-0123.json");
        std::fs::write(&old, b"{}").unwrap();
        std::fs::write(with_suffix(&old, ".log"), b"line\n").unwrap();
        assert!(adopt_journal(&old, &new).unwrap());
        assert_eq!(std::fs::read(&new).unwrap(), b"{}");
        assert!(with_suffix(&new, ".log").exists());
        assert!(!old.exists() && !with_suffix(&old, LOCK_SUFFIX).exists());
        let other = d.path().join("h-4567.json");
        assert!(!adopt_journal(&old, &other).unwrap(), "already taken");
        std::fs::write(&old, b"{}").unwrap();
        assert!(!adopt_journal(&old, &new).unwrap(), "new exists");
        let _held = JournalLock::acquire(&old).unwrap();
        assert!(!adopt_journal(&old, &other).unwrap(), "old in use");
        assert!(!other.exists());
    }
}
