//! The one implementation of how siteport writes local files outside the sites it syncs: the
//! sync journal and its lock and log, the credential store's lock, temp files and backups, the
//! identity, `--log-file`, `credential export -o`, `migrate`'s backups.
//!
//! Two rules, as ssh applies them to `~/.ssh`:
//!
//! - **No file is opened through a symbolic link.** Every open adds `O_NOFOLLOW` (a link at the
//!   name fails with a clear error instead of writing to whatever it points at) and
//!   `O_NONBLOCK` (a FIFO planted at the name fails instead of hanging the run), and a file
//!   that is not a regular file after the open is refused. New files are created with
//!   `O_CREAT | O_EXCL` ([`create_new`]); replacements are written to such a new temp file and
//!   renamed over the old name, which replaces a link rather than following it.
//! - **The directory that holds the file must be safe** ([`check_dir`]): owned by the user
//!   running siteport (or by root) and not writable by group or others. Anyone else who can
//!   write there can rename, replace or plant files between siteport's checks and its writes.
//!   A refusal names the directory and the exact `chmod`/`chown` that fixes it. Setting
//!   [`ALLOW_INSECURE_DIRS_ENV`] to `1` accepts such a directory (with a warning); nothing else
//!   does.

use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::OFlags;

/// Set to `1` (or `true`, `yes`, `on`) to let siteport write in a directory owned by another
/// user or writable by group or others. Documented in `docs/security.md`.
pub const ALLOW_INSECURE_DIRS_ENV: &str = "SITEPORT_ALLOW_INSECURE_DIRS";

/// Mode of every private file siteport creates.
pub const PRIVATE_FILE_MODE: u32 = 0o600;
/// Mode of every directory siteport creates for private files.
pub const PRIVATE_DIR_MODE: u32 = 0o700;

/// A directory or file siteport refuses to use, or could not inspect.
#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    /// Owned by another user, or writable by group or others.
    #[error("{what} {} {problem}; siteport does not use what another user can change", path.display())]
    Insecure {
        /// What the path is for (`journal directory`, `store`, …).
        what: &'static str,
        /// The directory or file.
        path: PathBuf,
        /// What is wrong with it, e.g. `is writable by group or others (mode 0777)`.
        problem: String,
        /// The exact shell command that fixes it.
        fix: String,
    },
    /// It could not be inspected.
    #[error("cannot inspect {what} {}: {source}", path.display())]
    Io {
        /// What the path is for.
        what: &'static str,
        /// The directory or file.
        path: PathBuf,
        /// The failure.
        #[source]
        source: io::Error,
    },
}

impl GuardError {
    /// What to do about it: the command that fixes the directory, and the override.
    pub fn hint(&self) -> Option<String> {
        match self {
            GuardError::Insecure { fix, .. } => Some(format!(
                "run `{fix}` (or set {ALLOW_INSECURE_DIRS_ENV}=1 to accept it anyway)"
            )),
            GuardError::Io { .. } => None,
        }
    }

    /// Whether this is a refusal (rather than a failure to look).
    pub fn is_insecure(&self) -> bool {
        matches!(self, GuardError::Insecure { .. })
    }
}

/// Whether [`ALLOW_INSECURE_DIRS_ENV`] asks to accept unsafe directories.
pub fn insecure_dirs_allowed() -> bool {
    std::env::var(ALLOW_INSECURE_DIRS_ENV).is_ok_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "1" | "true" | "yes" | "on"
        )
    })
}

/// The effective uid of this process: the user whose files siteport may trust.
pub fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Checks that `dir` (an existing directory; a missing one passes, there is nothing in it to
/// trust yet) is owned by this user or root and not writable by group or others. `private`
/// picks the fix shown: `chmod 700` for directories siteport keeps to itself (state, data,
/// config), `chmod go-w` for the user's own ones (where an export or a log is written).
pub fn check_dir(what: &'static str, dir: &Path, private: bool) -> Result<(), GuardError> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let meta = match std::fs::metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(GuardError::Io {
                what,
                path: dir.to_path_buf(),
                source,
            });
        }
    };
    let me = euid();
    let problem = if meta.uid() != me && meta.uid() != 0 {
        Some((
            format!(
                "is owned by uid {}, not by the user running siteport (uid {me})",
                meta.uid()
            ),
            format!("chown {me} {}", shell_quote(dir)),
        ))
    } else if meta.mode() & 0o022 != 0 {
        Some((
            format!(
                "is writable by group or others (mode {:04o})",
                meta.mode() & 0o7777
            ),
            if private {
                format!("chmod 700 {}", shell_quote(dir))
            } else {
                format!("chmod go-w {}", shell_quote(dir))
            },
        ))
    } else {
        None
    };
    let Some((problem, fix)) = problem else {
        return Ok(());
    };
    if insecure_dirs_allowed() {
        tracing::warn!(
            dir = %dir.display(),
            "{what} {problem}; accepted because {ALLOW_INSECURE_DIRS_ENV} is set"
        );
        return Ok(());
    }
    Err(GuardError::Insecure {
        what,
        path: dir.to_path_buf(),
        problem,
        fix,
    })
}

/// [`check_dir`] on the directory that holds `file`.
pub fn check_parent(what: &'static str, file: &Path, private: bool) -> Result<(), GuardError> {
    check_dir(what, parent_dir(file), private)
}

/// Creates `dir` and its missing parents (mode 0700), then [`check_dir`]s it as private.
pub fn prepare_private_dir(what: &'static str, dir: &Path) -> Result<(), GuardError> {
    create_private_dir(dir).map_err(|source| GuardError::Io {
        what,
        path: dir.to_path_buf(),
        source,
    })?;
    check_dir(what, dir, true)
}

/// Creates `dir` and its missing parents with mode 0700. Existing directories are left alone.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    if dir.as_os_str().is_empty() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(PRIVATE_DIR_MODE)
        .create(dir)
}

/// Refuses a file (already open, `meta` from its handle) that is not owned by this user.
pub fn check_file_owner(
    what: &'static str,
    path: &Path,
    meta: &Metadata,
) -> Result<(), GuardError> {
    let me = euid();
    if meta.uid() == me || insecure_dirs_allowed() {
        return Ok(());
    }
    Err(GuardError::Insecure {
        what,
        path: path.to_path_buf(),
        problem: format!(
            "is owned by uid {}, not by the user running siteport (uid {me})",
            meta.uid()
        ),
        fix: format!("chown {me} {}", shell_quote(path)),
    })
}

/// Refuses a file siteport reads and acts on (the config: hosts, users, where the password
/// goes) that any local user could change: writable by others, or in a directory others can
/// write without the sticky bit (they could replace it). Group write and another owner are
/// allowed here, unlike for the directories siteport writes in: a project's config is often
/// shared with a group, and a CI container runs as root over a checkout its runner owns.
pub fn check_shared_file(what: &'static str, path: &Path) -> Result<(), GuardError> {
    let look = |p: &Path| {
        std::fs::metadata(p).map_err(|source| GuardError::Io {
            what,
            path: p.to_path_buf(),
            source,
        })
    };
    let dir = parent_dir(path);
    let (file_mode, dir_mode) = (look(path)?.mode(), look(dir)?.mode());
    let problem = if file_mode & 0o002 != 0 {
        Some((
            what,
            path,
            format!(
                "is writable by every user (mode {:04o})",
                file_mode & 0o7777
            ),
            format!("chmod o-w {}", shell_quote(path)),
        ))
    } else if dir_mode & 0o002 != 0 && dir_mode & 0o1000 == 0 {
        Some((
            "directory",
            dir,
            format!(
                "is writable by every user (mode {:04o}) and holds the {what}: anyone can replace it",
                dir_mode & 0o7777
            ),
            format!("chmod o-w {}", shell_quote(dir)),
        ))
    } else {
        None
    };
    let Some((what, at, problem, fix)) = problem else {
        return Ok(());
    };
    if insecure_dirs_allowed() {
        tracing::warn!(path = %at.display(), "{what} {problem}; accepted because {ALLOW_INSECURE_DIRS_ENV} is set");
        return Ok(());
    }
    Err(GuardError::Insecure {
        what,
        path: at.to_path_buf(),
        problem,
        fix,
    })
}

/// The directory `path` is in (`.` for a bare name).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// The open flags every open here adds: no link followed at the last component, no hang on a
/// FIFO, not inherited by child processes.
fn guard_flags() -> i32 {
    (OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC).bits() as i32
}

/// Open options for a private file: write access, created with mode 0600, never through a
/// link. Callers add `create_new`, `append`, `read` … and open with [`open`].
pub fn private_file() -> OpenOptions {
    let mut o = OpenOptions::new();
    o.write(true)
        .mode(PRIVATE_FILE_MODE)
        .custom_flags(guard_flags());
    o
}

/// Opens `path` with `opts` (made by [`private_file`] or [`read_only`]) and refuses what is
/// not a regular file. A link at `path` is an error that says so.
pub fn open(opts: &OpenOptions, path: &Path) -> io::Result<File> {
    let f = opts.open(path).map_err(|e| explain(e, path))?;
    if !f.metadata()?.is_file() {
        return Err(io::Error::other(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    Ok(f)
}

/// Options to open an existing file for reading, never through a link.
pub fn read_only() -> OpenOptions {
    let mut o = OpenOptions::new();
    o.read(true).custom_flags(guard_flags());
    o
}

/// Creates `path` as a new private file (`O_CREAT | O_EXCL | O_NOFOLLOW`, 0600): fails with
/// `AlreadyExists` when anything, a link included, is already there.
pub fn create_new(path: &Path) -> io::Result<File> {
    open(private_file().create_new(true), path)
}

/// Opens `path` for appending, creating it (0600) when missing; a link is refused.
pub fn open_append(path: &Path) -> io::Result<File> {
    open(private_file().append(true).create(true), path)
}

/// Opens (or creates, 0600) a lock file at `path` without truncating it; a link is refused.
pub fn open_lock(path: &Path) -> io::Result<File> {
    open(private_file().read(true).create(true).truncate(false), path)
}

/// Opens an existing file for reading; a link is refused.
pub fn open_read(path: &Path) -> io::Result<File> {
    open(&read_only(), path)
}

/// `ELOOP` from `O_NOFOLLOW` says "too many levels of symbolic links": say what happened.
fn explain(e: io::Error, path: &Path) -> io::Error {
    if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
        return io::Error::new(
            e.kind(),
            format!(
                "{} is a symbolic link; siteport never opens its files through one",
                path.display()
            ),
        );
    }
    e
}

/// `path` as one shell word: bare when it is made of safe characters, else single-quoted.
pub fn shell_quote(path: &Path) -> String {
    let s = path.to_string_lossy();
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+,:@%=".contains(c))
    {
        return s.into_owned();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_file_any_user_can_change_is_refused_with_the_fix() {
        let d = tempfile::tempdir().unwrap();
        let cfg = d.path().join("siteport.toml");
        std::fs::write(&cfg, b"x").unwrap();
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o664)).unwrap();
        check_shared_file("config file", &cfg).unwrap();
        std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o666)).unwrap();
        let e = check_shared_file("config file", &cfg).unwrap_err();
        assert!(e.hint().unwrap().contains("chmod o-w"), "{e}");
        std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = check_shared_file("config file", &cfg).unwrap_err();
        assert!(e.to_string().contains("anyone can replace it"), "{e}");
        // Sticky, as /tmp: others cannot replace a file they do not own.
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
        check_shared_file("config file", &cfg).unwrap();
    }

    #[test]
    fn a_link_is_never_opened() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("target");
        std::fs::write(&target, b"keep").unwrap();
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        for r in [
            create_new(&link).map(drop),
            open_append(&link).map(drop),
            open_lock(&link).map(drop),
            open_read(&link).map(drop),
        ] {
            let e = r.unwrap_err();
            assert!(
                e.to_string().contains("symbolic link") || e.kind() == io::ErrorKind::AlreadyExists,
                "{e}"
            );
        }
        assert_eq!(std::fs::read(&target).unwrap(), b"keep");
    }

    #[test]
    fn unsafe_dirs_are_refused_with_the_fix() {
        let d = tempfile::tempdir().unwrap();
        check_dir("state dir", d.path(), true).unwrap();
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = check_dir("state dir", d.path(), true).unwrap_err();
        assert!(e.to_string().contains("writable by group or others"), "{e}");
        let hint = e.hint().unwrap();
        assert!(
            hint.contains(&format!("chmod 700 {}", d.path().display())),
            "{hint}"
        );
        assert!(hint.contains(ALLOW_INSECURE_DIRS_ENV), "{hint}");
        let e = check_dir("export directory", d.path(), false).unwrap_err();
        assert!(e.hint().unwrap().contains("chmod go-w"), "{e}");
        assert!(check_dir("x", &d.path().join("missing"), true).is_ok());
    }

    #[test]
    fn a_dir_or_file_of_another_user_is_refused() {
        if euid() != 0 {
            return; // Only root can give a file away; the tests run as root.
        }
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        std::fs::write(&f, b"x").unwrap();
        std::os::unix::fs::chown(d.path(), Some(65534), None).unwrap();
        std::os::unix::fs::chown(&f, Some(65534), None).unwrap();
        let e = check_dir("data dir", d.path(), true).unwrap_err();
        assert!(e.to_string().contains("owned by uid 65534"), "{e}");
        assert!(
            e.hint()
                .unwrap()
                .contains(&format!("chown 0 {}", d.path().display()))
        );
        let meta = std::fs::metadata(&f).unwrap();
        assert!(check_file_owner("store", &f, &meta).is_err());
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote(Path::new("/a/b.c")), "/a/b.c");
        assert_eq!(shell_quote(Path::new("/a b/it's")), r"'/a b/it'\''s'");
    }
}
