//! [`LocalDirRemote`]: a "remote" that is a local directory, like rclone's local backend.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;

use crate::error::{Error, ErrorKind, Result};
use crate::path::{check_remote_path, is_server_absolute, local_path};
use crate::remote::{
    ByteMeter, Capabilities, EntryKind, HashAlg, LocalFile, ReadObserver, Remote, RemoteEntry,
    RemoteFactory,
};

/// A remote tree that is a directory on this machine. Uploads are atomic (temporary file in
/// the target directory, fsync, rename) and keep modification times, so listings are
/// precise. Links inside it are listed as links and never followed.
#[derive(Debug, Clone)]
pub struct LocalDirRemote {
    root: PathBuf,
    hash: Option<HashAlg>,
}

impl LocalDirRemote {
    /// A remote rooted at `root` (which must exist for listings to work).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            hash: None,
        }
    }

    /// Makes it offer [`Remote::remote_hash`] in `alg`, like an FTP server with `HASH`.
    pub fn with_hash(mut self, alg: Option<HashAlg>) -> Self {
        self.hash = alg;
        self
    }

    /// The local path of `path`: under the root when relative; when absolute (the deploy
    /// state dir outside the web root), that path on this machine, which is the "server" a
    /// local directory remote has.
    fn resolve(&self, path: &str) -> Result<PathBuf> {
        if path.is_empty() {
            return Ok(self.root.clone());
        }
        check_remote_path(path)
            .map_err(|why| Error::unsafe_name(format!("{}: {path:?}", self.describe()), why))?;
        Ok(if is_server_absolute(path) {
            local_path(Path::new("/"), path)
        } else {
            local_path(&self.root, path)
        })
    }

    fn err(&self, op: &str, path: &str, e: std::io::Error) -> Error {
        let kind = match e.kind() {
            std::io::ErrorKind::NotFound => ErrorKind::NotFound,
            std::io::ErrorKind::PermissionDenied => ErrorKind::Permission,
            _ => ErrorKind::Transfer,
        };
        Error::new(
            kind,
            format!("{}/{path}", self.root.display()),
            format!("{op}: {e}"),
        )
        .with_source(e)
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)))
}

/// Writes `input` to a temporary name beside `dst`, then renames it over `dst`.
fn write_atomic(
    dst: &Path,
    input: &mut impl std::io::Read,
    mtime: Option<SystemTime>,
) -> std::io::Result<u64> {
    let dir = dst.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".siteport-")
        .suffix(".part")
        .tempfile_in(dir)?;
    let n = std::io::copy(input, tmp.as_file_mut())?;
    tmp.as_file_mut().flush()?;
    if let Some(t) = mtime {
        filetime::set_file_handle_times(
            tmp.as_file(),
            None,
            Some(filetime::FileTime::from_system_time(t)),
        )?;
    }
    tmp.as_file().sync_all()?;
    tmp.persist(dst).map_err(|e| e.error)?;
    Ok(n)
}

#[async_trait]
impl Remote for LocalDirRemote {
    fn describe(&self) -> String {
        format!("local:{}", self.root.display())
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            precise_mtime: true,
            set_mtime: true,
            hash: self.hash,
        }
    }

    async fn remote_hash(&mut self, path: &str, alg: HashAlg) -> Result<String> {
        let p = self.resolve(path)?;
        tokio::task::spawn_blocking(move || crate::digest::hash_file_with(&p, alg))
            .await
            .unwrap_or_else(|e| {
                Err(Error::new(
                    ErrorKind::Transfer,
                    "hash",
                    format!("hash failed: {e}"),
                ))
            })
    }

    async fn get_contents(&mut self, path: &str, max: usize) -> Result<Option<Vec<u8>>> {
        use std::io::Read;
        let p = self.resolve(path)?;
        let data = blocking(move || {
            let mut v = Vec::new();
            std::fs::File::open(&p)?
                .take(max as u64)
                .read_to_end(&mut v)?;
            Ok(v)
        })
        .await
        .map_err(|e| self.err("download", path, e))?;
        Ok(Some(data))
    }

    async fn list_dir(&mut self, path: &str) -> Result<Vec<RemoteEntry>> {
        let dir = self.resolve(path)?;
        blocking(move || {
            let mut out = Vec::new();
            for ent in std::fs::read_dir(&dir)? {
                let ent = ent?;
                let m = std::fs::symlink_metadata(ent.path())?;
                let ft = m.file_type();
                let kind = if ft.is_symlink() {
                    EntryKind::Symlink
                } else if ft.is_dir() {
                    EntryKind::Dir
                } else if ft.is_file() {
                    EntryKind::File
                } else {
                    EntryKind::Other
                };
                out.push(RemoteEntry {
                    // A non-UTF-8 name cannot be addressed again; the lossy form (with U+FFFD)
                    // fails later lookups loudly instead of touching another file.
                    name: ent.file_name().to_string_lossy().into_owned(),
                    kind,
                    size: if kind == EntryKind::File { m.len() } else { 0 },
                    mtime: m.modified().ok(),
                    mtime_precise: true,
                });
            }
            Ok(out)
        })
        .await
        .map_err(|e| self.err("list", path, e))
    }

    async fn list_dirs(&mut self, paths: &[String]) -> Vec<Result<Vec<RemoteEntry>>> {
        crate::remote::list_one_by_one(self, paths).await
    }

    async fn put_atomic(
        &mut self,
        local: LocalFile,
        path: &str,
        mtime: Option<SystemTime>,
        observe: Option<ReadObserver>,
    ) -> Result<u64> {
        let dst = self.resolve(path)?;
        blocking(move || {
            write_atomic(
                &dst,
                &mut Observed {
                    inner: local.file,
                    observe,
                    meter: local.meter,
                },
                mtime,
            )
        })
        .await
        .map_err(|e| self.err("upload", path, e))
    }

    async fn put_atomic_contents(
        &mut self,
        contents: &[u8],
        path: &str,
        mtime: Option<SystemTime>,
    ) -> Result<u64> {
        let dst = self.resolve(path)?;
        let data = contents.to_vec();
        blocking(move || write_atomic(&dst, &mut data.as_slice(), mtime))
            .await
            .map_err(|e| self.err("upload", path, e))
    }

    async fn get(&mut self, path: &str, local: LocalFile) -> Result<u64> {
        let src = self.resolve(path)?;
        let mut out = local.file;
        let meter = local.meter;
        blocking(move || {
            use std::io::Read;
            let input = std::fs::File::open(&src)?;
            // In slices, each counted as it lands; `Take<&File>` into a file still goes
            // through copy_file_range, as a plain copy would.
            let mut got = 0u64;
            loop {
                let n = std::io::copy(&mut (&input).take(COPY_SLICE), &mut out)?;
                if n == 0 {
                    return Ok(got);
                }
                got += n;
                if let Some(m) = &meter {
                    m.add(n);
                }
            }
        })
        .await
        .map_err(|e| self.err("download", path, e))
    }

    async fn mkdir(&mut self, path: &str) -> Result<()> {
        let p = self.resolve(path)?;
        blocking(move || match std::fs::create_dir(&p) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && p.is_dir() => Ok(()),
            r => r,
        })
        .await
        .map_err(|e| self.err("mkdir", path, e))
    }

    async fn mkdir_new(&mut self, path: &str) -> Result<bool> {
        let p = self.resolve(path)?;
        blocking(move || match std::fs::create_dir(&p) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && p.is_dir() => Ok(false),
            Err(e) => Err(e),
        })
        .await
        .map_err(|e| self.err("mkdir", path, e))
    }

    async fn delete_file(&mut self, path: &str) -> Result<()> {
        let p = self.resolve(path)?;
        blocking(move || std::fs::remove_file(p))
            .await
            .map_err(|e| self.err("delete", path, e))
    }

    async fn remove_dir(&mut self, path: &str) -> Result<()> {
        let p = self.resolve(path)?;
        blocking(move || std::fs::remove_dir(p))
            .await
            .map_err(|e| self.err("rmdir", path, e))
    }
}

/// Opens [`LocalDirRemote`]s on one directory.
#[derive(Debug, Clone)]
pub struct LocalDirRemoteFactory {
    root: PathBuf,
    hash: Option<HashAlg>,
}

impl LocalDirRemoteFactory {
    /// Connections to the directory `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            hash: None,
        }
    }

    /// Connections that offer [`Remote::remote_hash`] in `alg`.
    pub fn with_hash(mut self, alg: Option<HashAlg>) -> Self {
        self.hash = alg;
        self
    }
}

#[async_trait]
impl RemoteFactory for LocalDirRemoteFactory {
    fn describe(&self) -> String {
        format!("local:{}", self.root.display())
    }

    async fn connect(&self) -> Result<Box<dyn Remote>> {
        Ok(Box::new(
            LocalDirRemote::new(self.root.clone()).with_hash(self.hash),
        ))
    }
}

/// Bytes a download copies between two counts: progress moves several times a second even
/// on a slow disk, and each slice is still one copy_file_range.
const COPY_SLICE: u64 = 4 * 1024 * 1024;

/// A reader that shows what it reads to an observer and counts it on a meter.
struct Observed<R> {
    inner: R,
    observe: Option<ReadObserver>,
    meter: Option<Arc<ByteMeter>>,
}

impl<R: std::io::Read> std::io::Read for Observed<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(f) = self.observe.as_mut() {
            f(&buf[..n]);
        }
        if let Some(m) = &self.meter {
            m.add(n as u64);
        }
        Ok(n)
    }
}
