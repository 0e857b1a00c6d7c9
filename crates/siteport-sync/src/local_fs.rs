//! The one way siteport reaches a file of a local site tree, for reading (uploads, hashes)
//! and for writing (import): from a handle on the site root, never following a link at any
//! component, so a name swapped for a link after the scan (by a build step, another user
//! who can write in the site dir) cannot lead outside the root. `openat2` with
//! `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS` where the kernel has it, else a walk by directory
//! handles with `O_NOFOLLOW` at every step. A file opened for reading is then checked to be
//! the regular file (device, inode) the scan saw.

use std::fs::{File, Metadata};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use crate::error::{Error, ErrorKind, Result};
use crate::path::{check_rel_path, local_path};

/// Which file a name led to: the same device and inode is the same file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileId {
    /// Device number.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
}

impl FileId {
    /// The identity of the file behind `m`.
    pub fn of(m: &Metadata) -> Self {
        Self {
            dev: m.dev(),
            ino: m.ino(),
        }
    }
}

/// Set once `openat2` turned out to be missing (kernel before 5.6, or a seccomp filter that
/// refuses it): later opens go straight to the walk.
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

/// A local site root, opened once; every path below it is reached from this handle.
#[derive(Debug)]
pub(crate) struct LocalRoot {
    dir: OwnedFd,
    path: PathBuf,
}

impl LocalRoot {
    /// Opens the root directory. The root itself is the user's choice and may be reached
    /// through a link; nothing below it is.
    pub(crate) fn open(path: &Path) -> Result<Self> {
        let dir = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::local_io("open local root", path, e.into()))?;
        Ok(Self {
            dir,
            path: path.to_path_buf(),
        })
    }

    /// `rel` under the root, for messages only: it is never opened by that name.
    pub(crate) fn shown(&self, rel: &str) -> PathBuf {
        local_path(&self.path, rel)
    }

    /// Opens `rel` with `flags` (`O_NOFOLLOW` and `O_CLOEXEC` added), no link followed at
    /// any component. `rel` is a checked relative path (`""` is the root itself).
    fn open_at(&self, rel: &str, flags: OFlags) -> io::Result<OwnedFd> {
        if rel.is_empty() {
            return rustix::io::fcntl_dupfd_cloexec(&self.dir, 0).map_err(Into::into);
        }
        check_rel_path(rel).map_err(|why| io::Error::new(io::ErrorKind::InvalidInput, why))?;
        let flags = flags | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        if !NO_OPENAT2.load(Ordering::Relaxed) {
            let resolve =
                ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
            match rustix::fs::openat2(&self.dir, rel, flags, Mode::empty(), resolve) {
                Ok(fd) => return Ok(fd),
                Err(Errno::NOSYS) | Err(Errno::PERM) => NO_OPENAT2.store(true, Ordering::Relaxed),
                // EAGAIN: the kernel could not rule out a race on a `..` (we send none).
                // ENOTDIR: a link or a file where a directory should be; the walk tells which.
                Err(Errno::AGAIN) | Err(Errno::NOTDIR) => {}
                Err(e) => return Err(e.into()),
            }
        }
        walk(self.dir.as_fd(), rel, flags)
    }

    /// Opens the directory `rel` (`""`: the root) for `*at` calls.
    fn open_dir(&self, rel: &str) -> io::Result<OwnedFd> {
        self.open_at(rel, OFlags::RDONLY | OFlags::DIRECTORY)
    }

    /// Opens `rel` for reading. `O_NONBLOCK`: a FIFO or device put there since the scan must
    /// not block the open (it is refused right after, by its kind).
    pub(crate) fn open_read(&self, rel: &str) -> io::Result<File> {
        self.open_at(rel, OFlags::RDONLY | OFlags::NONBLOCK)
            .map(File::from)
    }

    /// Opens the regular file the scan saw at `rel`: no link followed at any component, and
    /// when `expect` is given, the same device and inode. Anything else (a link, a directory,
    /// a FIFO, another file under the name) is refused, never read.
    pub(crate) fn open_scanned(
        &self,
        rel: &str,
        expect: Option<FileId>,
    ) -> Result<(File, Metadata)> {
        // The shown path is built only for an error: a run with no journal opens every
        // file of the site here.
        let f = self
            .open_read(rel)
            .map_err(|e| refused(&self.shown(rel), e))?;
        let m = f
            .metadata()
            .map_err(|e| Error::local_io("stat", &self.shown(rel), e))?;
        if !m.is_file() {
            return Err(changed(&self.shown(rel), "is no longer a regular file"));
        }
        if expect.is_some_and(|id| id != FileId::of(&m)) {
            return Err(changed(
                &self.shown(rel),
                "was replaced since the scan (another file now has this name)",
            ));
        }
        Ok((f, m))
    }
}

/// The walk by directory handles where `openat2` is missing: each directory opened from its
/// parent's handle with `O_NOFOLLOW | O_DIRECTORY`, the last component with `flags`.
fn walk(root: BorrowedFd<'_>, rel: &str, flags: OFlags) -> io::Result<OwnedFd> {
    let comps: Vec<&str> = rel.split('/').collect();
    let mut cur: Option<OwnedFd> = None;
    for (i, c) in comps.iter().enumerate() {
        let at = cur.as_ref().map_or(root, |d| d.as_fd());
        let f = if i + 1 == comps.len() {
            flags
        } else {
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
        };
        match rustix::fs::openat(at, *c, f, Mode::empty()) {
            Ok(fd) => cur = Some(fd),
            // `O_DIRECTORY | O_NOFOLLOW` on a link says ENOTDIR; say ELOOP, so a link is
            // reported as a link wherever it was met.
            Err(Errno::NOTDIR) if is_link(lstat_at(at, c)) => {
                return Err(Errno::LOOP.into());
            }
            Err(e) => return Err(e.into()),
        }
    }
    cur.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty path"))
}

/// The error for an open that failed: a link met on the way is named as such.
fn refused(shown: &Path, e: io::Error) -> Error {
    if e.raw_os_error() == Some(Errno::LOOP.raw_os_error()) {
        Error::unsafe_name(
            shown.display().to_string(),
            "a symbolic link now stands at or above this path; siteport never follows it, so \
             the file was not read",
        )
        .with_hint("see what replaced it (`ls -l`), then run again")
    } else {
        Error::local_io("open", shown, e)
    }
}

fn changed(shown: &Path, what: &str) -> Error {
    Error::new(
        ErrorKind::LocalIo,
        shown.display().to_string(),
        format!("{what}; not read, not sent"),
    )
    .with_hint("run again once the site dir has stopped changing")
}

/// The status of `name` in the directory `dir`, a link's own (not its target's); `None`
/// when nothing has that name.
fn lstat_at(dir: BorrowedFd<'_>, name: &str) -> io::Result<Option<rustix::fs::Stat>> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn is_link(st: io::Result<Option<rustix::fs::Stat>>) -> bool {
    matches!(st, Ok(Some(s)) if rustix::fs::FileType::from_raw_mode(s.st_mode) == rustix::fs::FileType::Symlink)
}

/// What a write at a name expects to find there (if anything).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Want {
    File,
    Dir,
}

/// Where a write lands: the directory that holds it, opened from the root without following
/// links, and the last name.
struct Slot<'a> {
    dir: OwnedFd,
    name: &'a str,
    /// Something of the wanted kind is there already.
    exists: bool,
}

impl LocalRoot {
    /// The [`Slot`] of `rel`, after checking what stands at its name now: a link is refused
    /// (siteport never writes through one, nor removes one it did not make), and so is the
    /// wrong kind. A missing parent is [`ErrorKind::NotFound`].
    fn slot<'a>(&self, rel: &'a str, want: Want) -> Result<Slot<'a>> {
        check_rel_path(rel).map_err(|why| Error::unsafe_name(rel, why))?;
        let (parent, name) = match rel.rsplit_once('/') {
            Some((p, n)) => (p, n),
            None => ("", rel),
        };
        let shown = self.shown(rel);
        let dir = self.open_dir(parent).map_err(|e| match e.raw_os_error() {
            Some(c) if c == Errno::NOTDIR.raw_os_error() => Error::new(
                ErrorKind::Conflict,
                self.shown(parent).display().to_string(),
                "is not a directory",
            ),
            Some(c) if c == Errno::NOENT.raw_os_error() => Error::new(
                ErrorKind::NotFound,
                self.shown(parent).display().to_string(),
                "no such directory",
            ),
            _ => refused(&self.shown(parent), e),
        })?;
        let st = lstat_at(dir.as_fd(), name).map_err(|e| Error::local_io("check", &shown, e))?;
        let exists = match st.map(|s| rustix::fs::FileType::from_raw_mode(s.st_mode)) {
            None => false,
            Some(rustix::fs::FileType::Symlink) => {
                return Err(Error::unsafe_name(
                    shown.display().to_string(),
                    "is a symbolic link; siteport never writes through one",
                ));
            }
            Some(rustix::fs::FileType::Directory) if want == Want::File => {
                return Err(Error::new(
                    ErrorKind::Conflict,
                    shown.display().to_string(),
                    "is a directory",
                ));
            }
            Some(t) if want == Want::Dir && t != rustix::fs::FileType::Directory => {
                return Err(Error::new(
                    ErrorKind::Conflict,
                    shown.display().to_string(),
                    "is not a directory",
                ));
            }
            Some(_) => true,
        };
        Ok(Slot { dir, name, exists })
    }

    /// Creates the directory `rel` (its parent exists); an existing directory is fine.
    pub(crate) fn mkdir(&self, rel: &str) -> Result<()> {
        let s = self.slot(rel, Want::Dir)?;
        if s.exists {
            return Ok(());
        }
        match rustix::fs::mkdirat(&s.dir, s.name, Mode::from_raw_mode(0o755)) {
            Ok(()) | Err(Errno::EXIST) => Ok(()),
            Err(e) => Err(Error::local_io(
                "create directory",
                &self.shown(rel),
                e.into(),
            )),
        }
    }

    /// Removes the file (`Want::File`) or empty directory (`Want::Dir`) `rel`; gone already
    /// is fine.
    pub(crate) fn remove(&self, rel: &str, want: Want) -> Result<()> {
        let s = match self.slot(rel, want) {
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            r => r?,
        };
        let flags = match want {
            Want::File => AtFlags::empty(),
            Want::Dir => AtFlags::REMOVEDIR,
        };
        match rustix::fs::unlinkat(&s.dir, s.name, flags) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(Error::local_io("remove", &self.shown(rel), e.into())),
        }
    }

    /// A new temporary file (`.siteport-XXXXXXXX.part`, mode 0600, created exclusively and
    /// without following a link) in the directory that will hold `rel`.
    pub(crate) fn temp_for(&self, rel: &str) -> Result<TempAt> {
        let s = self.slot(rel, Want::File)?;
        let shown = self.shown(rel);
        for _ in 0..16 {
            let name = format!(".siteport-{}.part", random_tag());
            let flags =
                OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            match rustix::fs::openat(&s.dir, &name, flags, Mode::from_raw_mode(0o600)) {
                Ok(fd) => {
                    return Ok(TempAt {
                        dir: s.dir,
                        name,
                        file: File::from(fd),
                        target: s.name.to_string(),
                        shown,
                        persisted: false,
                    });
                }
                Err(Errno::EXIST) => continue,
                Err(e) => {
                    let dir = shown.parent().unwrap_or(&self.path).to_path_buf();
                    return Err(Error::local_io("create temporary file", &dir, e.into()));
                }
            }
        }
        Err(Error::new(
            ErrorKind::LocalIo,
            shown.display().to_string(),
            "no free temporary name beside it",
        ))
    }
}

/// Eight hex digits, different on every call (RandomState is seeded per call from the OS).
fn random_tag() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    format!("{:08x}", h.finish() as u32)
}

/// A temporary file beside a download's destination, removed on drop unless
/// [`persist`](TempAt::persist)ed. Everything about it goes through the handles: the
/// directory's and the file's, never a path.
#[derive(Debug)]
pub(crate) struct TempAt {
    dir: OwnedFd,
    name: String,
    file: File,
    target: String,
    shown: PathBuf,
    persisted: bool,
}

impl TempAt {
    /// The open temporary file.
    pub(crate) fn file(&self) -> &File {
        &self.file
    }

    /// The destination, for messages.
    pub(crate) fn shown(&self) -> &Path {
        &self.shown
    }

    /// Renames the file over its destination, in the same directory handle. What stands at
    /// the destination is checked again just before: a link planted meanwhile is refused
    /// (the rename would only replace the link, but a link there is someone else's doing).
    pub(crate) fn persist(mut self) -> Result<()> {
        let st = lstat_at(self.dir.as_fd(), &self.target);
        if let Err(e) = st {
            return Err(Error::local_io("check", &self.shown, e));
        }
        if is_link(st) {
            return Err(Error::unsafe_name(
                self.shown.display().to_string(),
                "is a symbolic link; siteport never writes through one",
            ));
        }
        rustix::fs::renameat(&self.dir, &self.name, &self.dir, &self.target)
            .map_err(|e| Error::local_io("rename into place", &self.shown, e.into()))?;
        self.persisted = true;
        Ok(())
    }
}

impl Drop for TempAt {
    fn drop(&mut self) {
        if !self.persisted {
            let _ = rustix::fs::unlinkat(&self.dir, &self.name, AtFlags::empty());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn site() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("site");
        std::fs::create_dir_all(root.join("d/e")).unwrap();
        std::fs::write(root.join("d/e/f.txt"), b"inside").unwrap();
        let canary = t.path().join("canary");
        std::fs::write(&canary, b"SECRET").unwrap();
        (t, root, canary)
    }

    fn read(f: File) -> Vec<u8> {
        let mut v = Vec::new();
        (&f).read_to_end(&mut v).unwrap();
        v
    }

    /// Both ways of opening (openat2 and the walk) read a plain file and refuse a link at
    /// the last component and at a directory component, even one that stays in the root.
    #[test]
    fn links_at_any_component_are_refused_by_both_ways() {
        let (_t, root, canary) = site();
        let r = LocalRoot::open(&root).unwrap();
        assert_eq!(read(r.open_read("d/e/f.txt").unwrap()), b"inside");
        let w = walk(r.dir.as_fd(), "d/e/f.txt", OFlags::RDONLY).unwrap();
        assert_eq!(read(File::from(w)), b"inside");

        std::os::unix::fs::symlink(&canary, root.join("leak")).unwrap();
        std::os::unix::fs::symlink(root.join("d/e"), root.join("alias")).unwrap();
        for rel in ["leak", "alias/f.txt"] {
            let e = r.open_read(rel).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(Errno::LOOP.raw_os_error()), "{rel}");
            let e = walk(r.dir.as_fd(), rel, OFlags::RDONLY | OFlags::NOFOLLOW).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(Errno::LOOP.raw_os_error()), "{rel}");
            let e = r.open_scanned(rel, None).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::UnsafeName, "{rel}: {e}");
        }
        assert!(r.open_read("../canary").is_err());
    }

    #[test]
    fn identity_and_kind_are_checked() {
        let (_t, root, _) = site();
        let r = LocalRoot::open(&root).unwrap();
        let id = FileId::of(&std::fs::metadata(root.join("d/e/f.txt")).unwrap());
        assert!(r.open_scanned("d/e/f.txt", Some(id)).is_ok());
        // Replaced by another regular file: a new inode.
        std::fs::write(root.join("other"), b"other").unwrap();
        std::fs::rename(root.join("other"), root.join("d/e/f.txt")).unwrap();
        let e = r.open_scanned("d/e/f.txt", Some(id)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::LocalIo);
        assert!(e.detail().contains("replaced"), "{e}");
        // A directory is not a file.
        let e = r.open_scanned("d/e", None).unwrap_err();
        assert!(e.detail().contains("no longer a regular file"), "{e}");
    }

    /// Writes go through handles: a temporary file lands under its name by rename in the
    /// same directory, and a link at the name, or at a directory on the way, is refused for
    /// every kind of write, with nothing created or removed beyond it.
    #[test]
    fn writes_refuse_links_and_land_by_rename() {
        use std::io::Write;
        let (t, root, canary) = site();
        let r = LocalRoot::open(&root).unwrap();
        let tmp = r.temp_for("d/e/new.txt").unwrap();
        tmp.file().write_all(b"fresh").unwrap();
        tmp.persist().unwrap();
        assert_eq!(std::fs::read(root.join("d/e/new.txt")).unwrap(), b"fresh");
        // Dropped without persist: no temp file left.
        drop(r.temp_for("d/e/gone.txt").unwrap());
        let names: Vec<_> = std::fs::read_dir(root.join("d/e")).unwrap().collect();
        assert_eq!(names.len(), 2, "{names:?}");

        let out = t.path().join("out");
        std::fs::create_dir(&out).unwrap();
        std::os::unix::fs::symlink(&out, root.join("ln")).unwrap();
        std::os::unix::fs::symlink(&canary, root.join("f-ln")).unwrap();
        for (what, e) in [
            ("temp", r.temp_for("ln/x").map(drop).unwrap_err()),
            ("temp at link", r.temp_for("f-ln").map(drop).unwrap_err()),
            ("mkdir", r.mkdir("ln/x").unwrap_err()),
            ("rm", r.remove("f-ln", Want::File).unwrap_err()),
            ("rmdir", r.remove("ln", Want::Dir).unwrap_err()),
        ] {
            assert_eq!(e.kind(), ErrorKind::UnsafeName, "{what}: {e}");
        }
        // A link planted at the name after the temp file was made: refused at the rename.
        let tmp = r.temp_for("late.txt").unwrap();
        std::os::unix::fs::symlink(&canary, root.join("late.txt")).unwrap();
        assert_eq!(tmp.persist().unwrap_err().kind(), ErrorKind::UnsafeName);
        assert_eq!(std::fs::read_dir(&out).unwrap().count(), 0);
        assert_eq!(std::fs::read(&canary).unwrap(), b"SECRET");
        assert!(root.join("f-ln").is_symlink() && root.join("ln").is_symlink());
        // Plain writes work, and gone is fine for removal.
        r.mkdir("d/new").unwrap();
        r.mkdir("d/new").unwrap();
        r.remove("d/new", Want::Dir).unwrap();
        r.remove("d/e/new.txt", Want::File).unwrap();
        r.remove("nowhere/x", Want::File).unwrap();
        assert!(!root.join("d/new").exists() && !root.join("d/e/new.txt").exists());
    }
}
