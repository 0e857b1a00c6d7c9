//! The seam between the engine and a transport: [`Remote`] (one connection) and
//! [`RemoteFactory`] (opens connections, one per worker).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use async_trait::async_trait;

use crate::error::Result;

/// Called with every chunk an upload reads from its local file, in order.
pub type ReadObserver = Box<dyn FnMut(&[u8]) + Send>;

/// Counts the bytes of one try at one transfer as they go, into the run's total that a
/// progress display reads (see [`Progress::live_bytes`](crate::Progress::live_bytes)). A
/// transport calls [`add`](ByteMeter::add) after each chunk it sends or writes: two relaxed
/// atomic adds, no lock and no allocation. The engine then settles the try: a success
/// counts exactly the bytes the transfer returned, a failure takes back what the try
/// counted, so a retried file is not counted twice.
#[derive(Debug, Default)]
pub struct ByteMeter {
    total: Arc<AtomicU64>,
    this: AtomicU64,
}

impl ByteMeter {
    /// A meter for one try, adding to `total`.
    pub fn new(total: Arc<AtomicU64>) -> Self {
        Self {
            total,
            this: AtomicU64::new(0),
        }
    }

    /// `n` more bytes moved.
    pub fn add(&self, n: u64) {
        self.this.fetch_add(n, Ordering::Relaxed);
        self.total.fetch_add(n, Ordering::Relaxed);
    }

    /// The bytes this try has counted so far.
    pub fn counted(&self) -> u64 {
        self.this.load(Ordering::Relaxed)
    }

    /// Ends the try: on success the total holds exactly the `n` bytes it returned (a
    /// transport that counted nothing, or counted differently, is corrected); on failure
    /// what the try counted is taken back.
    pub fn settle<E>(&self, r: std::result::Result<u64, E>) -> std::result::Result<u64, E> {
        let counted = self.this.swap(0, Ordering::Relaxed);
        let now = *r.as_ref().unwrap_or(&0);
        if now >= counted {
            self.total.fetch_add(now - counted, Ordering::Relaxed);
        } else {
            self.total.fetch_sub(counted - now, Ordering::Relaxed);
        }
        r
    }
}

/// A local file a transfer reads or writes, already open and checked by the engine (a
/// regular file reached from the site root without following links: for an upload the one
/// the scan saw, for a download a new temporary file). An upload reads it from its current
/// offset to its end; a download writes from its current offset.
#[derive(Debug)]
pub struct LocalFile {
    /// The open file.
    pub file: std::fs::File,
    /// Its path, for messages only: never opened again by that name.
    pub shown: PathBuf,
    /// Told the bytes as they are sent or written, for live progress (`None`: nobody asks).
    pub meter: Option<Arc<ByteMeter>>,
}

impl LocalFile {
    /// What a transport's `on_bytes` is given: adds each count to the meter, when there is one.
    pub(crate) fn counter(&self) -> impl Fn(u64) + Sync + use<> {
        let meter = self.meter.clone();
        move |n| {
            if let Some(m) = &meter {
                m.add(n);
            }
        }
    }
}

/// What a listed remote entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link: never followed, never overwritten, never deleted.
    Symlink,
    /// Anything else the server lists (devices, unknown LIST lines).
    Other,
}

/// One entry of a remote directory listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteEntry {
    /// The bare name as the server listed it (not yet checked: see [`check_name`](crate::check_name)).
    pub name: String,
    /// File, directory, link or other.
    pub kind: EntryKind,
    /// Size in bytes (0 for directories).
    pub size: u64,
    /// Modification time, if the listing gives one.
    pub mtime: Option<SystemTime>,
    /// Whether `mtime` is exact to the second and in UTC (MLSD, or a local directory) rather
    /// than a LIST time (minute or year resolution, server timezone).
    pub mtime_precise: bool,
}

/// What a transport can do, so the planner knows which comparisons it can trust.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Capabilities {
    /// Listings carry exact UTC modification times (MLSD, a local directory).
    pub precise_mtime: bool,
    /// `put_atomic` can set the remote modification time (MFMT, a local directory).
    pub set_mtime: bool,
    /// The best content hash the server computes ([`Remote::remote_hash`]): FTP `HASH`,
    /// `XSHA256`, `XSHA1` or `XMD5`. `None`: it cannot.
    pub hash: Option<HashAlg>,
}

/// A content hash a server can compute, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum HashAlg {
    /// SHA-256.
    Sha256,
    /// SHA-1.
    Sha1,
    /// MD5.
    Md5,
}

impl HashAlg {
    /// Its usual name, for messages (`SHA-256`).
    pub fn name(self) -> &'static str {
        match self {
            HashAlg::Sha256 => "SHA-256",
            HashAlg::Sha1 => "SHA-1",
            HashAlg::Md5 => "MD5",
        }
    }
}

/// One rename of a publish: the index in the batch, the temp's and the final server paths.
pub(crate) type Rename = (usize, String, String);

/// What a staged upload ([`Remote::put_staged`]) left on the server: the file under a
/// temporary name in its target directory, waiting for [`Remote::publish`] to rename it into
/// place, or (a transport that cannot stage) already under its final name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Staged {
    /// The final path (relative to the site's remote root, like every path of [`Remote`]).
    pub path: String,
    /// The temporary path the content waits under (same form as `path`); `None`: it was
    /// published at once, there is nothing left to rename.
    pub temp: Option<String>,
}

impl Staged {
    /// A file the transport put under its final name at once.
    pub fn published(path: &str) -> Self {
        Self {
            path: path.to_owned(),
            temp: None,
        }
    }

    /// A file waiting under `temp` to be renamed to `path`.
    pub fn waiting(path: &str, temp: String) -> Self {
        Self {
            path: path.to_owned(),
            temp: Some(temp),
        }
    }

    /// What a transport's [`Remote::publish`] has to rename: the `(index, temp, final)`
    /// server paths of the batch's waiting files (through `full`), and the results already
    /// known, by index (nothing to rename: published; a path `full` refuses: its error).
    pub(crate) fn renames(
        batch: &[Staged],
        full: impl Fn(&str) -> Result<String>,
    ) -> (Vec<Option<Result<()>>>, Vec<Rename>) {
        let mut out: Vec<Option<Result<()>>> = batch.iter().map(|_| None).collect();
        let mut names = Vec::new();
        for (i, s) in batch.iter().enumerate() {
            let Some(t) = &s.temp else {
                out[i] = Some(Ok(()));
                continue;
            };
            match (full(t), full(&s.path)) {
                (Ok(from), Ok(to)) => names.push((i, from, to)),
                (Err(e), _) | (_, Err(e)) => out[i] = Some(Err(e)),
            }
        }
        (out, names)
    }

    /// A publish's results in batch order: a rename the transport never answered for fails
    /// (`place` names the server in the error).
    pub(crate) fn settled(out: Vec<Option<Result<()>>>, place: &str) -> Vec<Result<()>> {
        out.into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(crate::error::Error::new(
                        crate::error::ErrorKind::Transfer,
                        place.to_string(),
                        "rename: no answer",
                    ))
                })
            })
            .collect()
    }

    /// The file waiting beside `path` under the bare name that ends `server_temp` (the
    /// temp name as the transport's own library gave it, in server form).
    pub(crate) fn beside(path: &str, server_temp: &str) -> Self {
        let name = server_temp.rsplit('/').next().unwrap_or(server_temp);
        Self::waiting(path, crate::path::join(crate::path::parent(path), name))
    }
}

/// One open connection to a remote tree. Paths are relative to the remote root of the site,
/// `/`-separated, without a leading slash; `""` is the root itself. A worker owns its
/// `Remote` and reuses it for many operations.
///
/// Errors must carry a kind and, for transient failures (timeouts, resets, FTP 421/425/426/450),
/// [`Error::is_retryable`](crate::Error::is_retryable) set: the engine then drops the
/// connection, backs off, reconnects and tries again.
#[async_trait]
pub trait Remote: Send {
    /// Where this connection points, for messages (e.g. `ftp://user@host:21/htdocs`).
    fn describe(&self) -> String;

    /// What this transport can do.
    fn capabilities(&self) -> Capabilities;

    /// Lists the directory `path` (one round trip). Does not include `.` and `..`.
    async fn list_dir(&mut self, path: &str) -> Result<Vec<RemoteEntry>>;

    /// Lists several directories, one result per path, in order: in one round trip where
    /// the transport can (FTP over the control connection), else one by one with
    /// [`list_one_by_one`]. A connection that broke during the batch gives the paths it did
    /// not list a retryable error each. No default on purpose: a wrapper that forgot to pass
    /// it on would quietly list one directory per round trip.
    async fn list_dirs(&mut self, paths: &[String]) -> Vec<Result<Vec<RemoteEntry>>>;

    /// Uploads the local file to `path` so that nobody ever sees it half-written under its
    /// final name (temporary name, then rename), and sets its modification time to `mtime`
    /// when the transport can. Returns the number of bytes sent.
    ///
    /// The file comes already open (see [`LocalFile`]): a transport never opens a local path
    /// itself, so what it sends is the file the engine checked, not whatever the name leads
    /// to by then. `observe`, if given, is shown every chunk read from it, in order: on
    /// success it has seen exactly the bytes sent (the engine hashes a large file in the same
    /// pass that sends it, instead of reading it twice).
    async fn put_atomic(
        &mut self,
        local: LocalFile,
        path: &str,
        mtime: Option<SystemTime>,
        observe: Option<ReadObserver>,
    ) -> Result<u64>;

    /// [`put_atomic`](Remote::put_atomic) of bytes already in memory (a small file the
    /// engine read, the lock owner, the deploy state). Transports that can send from memory
    /// override it. The default goes through an unnamed temporary file: the built-in
    /// transports never take that path, so a read-only file system (a hardened container)
    /// does not stop a deploy.
    async fn put_atomic_contents(
        &mut self,
        contents: &[u8],
        path: &str,
        mtime: Option<SystemTime>,
    ) -> Result<u64> {
        use std::io::{Seek, Write};
        let tmp = std::env::temp_dir();
        let file = tempfile::tempfile()
            .and_then(|mut f| {
                f.write_all(contents)?;
                f.rewind()?;
                Ok(f)
            })
            .map_err(|e| crate::error::Error::local_io("write temp file", &tmp, e))?;
        let local = LocalFile {
            file,
            shown: tmp,
            meter: None,
        };
        self.put_atomic(local, path, mtime, None).await
    }

    /// The first half of [`put_atomic`](Remote::put_atomic): uploads under a temporary name
    /// in the target directory (with its modification time set there) and returns where it
    /// waits, for [`publish`](Remote::publish) to rename into place later (a burst switch:
    /// the live site changes only once every file is on the server). Nobody sees the new
    /// content under `path` until then. The default cannot stage: it uploads with
    /// `put_atomic` and says the file is already published.
    async fn put_staged(
        &mut self,
        local: LocalFile,
        path: &str,
        mtime: Option<SystemTime>,
        observe: Option<ReadObserver>,
    ) -> Result<(u64, Staged)> {
        let n = self.put_atomic(local, path, mtime, observe).await?;
        Ok((n, Staged::published(path)))
    }

    /// [`put_staged`](Remote::put_staged) of bytes already in memory; the default is
    /// [`put_atomic_contents`](Remote::put_atomic_contents), already published.
    async fn put_staged_contents(
        &mut self,
        contents: &[u8],
        path: &str,
        mtime: Option<SystemTime>,
    ) -> Result<(u64, Staged)> {
        let n = self.put_atomic_contents(contents, path, mtime).await?;
        Ok((n, Staged::published(path)))
    }

    /// Renames a batch of staged files into place, replacing what is there, as fast as the
    /// transport can (FTP: every `RNFR`/`RNTO` pair in one write where the server answers in
    /// order; SFTP: the requests all sent before the first answer). One result per entry, in
    /// order; an entry already published is `Ok` at once. A failed rename leaves its temp
    /// file in place (the caller removes it). The default renames nothing: a transport
    /// whose `put_staged` returns temporary names must override it.
    async fn publish(&mut self, batch: &[Staged]) -> Vec<Result<()>> {
        let describe = self.describe();
        batch
            .iter()
            .map(|s| match &s.temp {
                None => Ok(()),
                Some(t) => Err(crate::error::Error::new(
                    crate::error::ErrorKind::Transfer,
                    describe.clone(),
                    format!("{t}: this transport cannot rename staged files"),
                )),
            })
            .collect()
    }

    /// Downloads `path` into `local`, a new empty file the engine created and opened (a
    /// temporary file it renames into place): like an upload's source, it is never opened
    /// by name. Returns the number of bytes received.
    async fn get(&mut self, path: &str, local: LocalFile) -> Result<u64>;

    /// Downloads a small file (the listing said at most about a MiB) into memory, at
    /// most `max` bytes. `Ok(None)`: this transport does not do that; the engine then uses
    /// [`get`](Remote::get).
    async fn get_contents(&mut self, path: &str, max: usize) -> Result<Option<Vec<u8>>> {
        let _ = (path, max);
        Ok(None)
    }

    /// The server's hash of the file `path` with `alg`, lowercase hex. Only called when
    /// [`Capabilities::hash`] says so; the default says the transport cannot.
    async fn remote_hash(&mut self, path: &str, alg: HashAlg) -> Result<String> {
        let _ = alg;
        Err(crate::error::Error::new(
            crate::error::ErrorKind::Transfer,
            self.describe(),
            format!("{path}: this server cannot hash files"),
        ))
    }

    /// Creates the directory `path`; its parent exists. An existing directory is not an error.
    async fn mkdir(&mut self, path: &str) -> Result<()>;

    /// Creates the directory `path` only if it does not exist: `Ok(true)` when this call
    /// created it, `Ok(false)` when it was already there. Transports where creating a
    /// directory is atomic (FTP `MKD`, a local `mkdir`) override it; the site lock relies on
    /// exactly one of several racing callers getting `Ok(true)`. The default looks first,
    /// then creates, and is not atomic.
    async fn mkdir_new(&mut self, path: &str) -> Result<bool> {
        let (parent, name) = match path.rsplit_once('/') {
            Some((p, n)) => (p, n),
            None => ("", path),
        };
        if self.list_dir(parent).await?.iter().any(|e| e.name == name) {
            return Ok(false);
        }
        self.mkdir(path).await.map(|()| true)
    }

    /// Creates each directory of `paths` in order, as [`mkdir`](Remote::mkdir) does (each
    /// parent exists or comes earlier). FTP sends them all in one write where the server
    /// reads commands in order; the default makes them one by one.
    async fn mkdirs(&mut self, paths: &[String]) -> Result<()> {
        for p in paths {
            self.mkdir(p).await?;
        }
        Ok(())
    }

    /// Deletes the file `file` (missing, or refused: not an error) and then removes the
    /// directory `dir`, whose result is the answer: the site lock's release. FTP sends both
    /// in one write where the server reads commands in order; the default sends them one
    /// after the other.
    async fn remove_file_and_dir(&mut self, file: &str, dir: &str) -> Result<()> {
        let dele = self.delete_file(file).await;
        file_then_dir(dele, || self.remove_dir(dir)).await
    }

    /// Deletes the file `path`.
    async fn delete_file(&mut self, path: &str) -> Result<()>;

    /// Removes the empty directory `path`.
    async fn remove_dir(&mut self, path: &str) -> Result<()>;

    /// Ends the session politely (FTP `QUIT`). Errors are ignored by the engine.
    async fn close(&mut self) -> Result<()> {
        Ok(())
    }
}

/// What [`Remote::remove_file_and_dir`] makes of its two steps: a file already missing (or
/// refused: some servers say "permission" for a missing file) does not stop the directory's
/// removal, whose result tells the truth; any other failure of the file's does.
pub(crate) async fn file_then_dir<F>(dele: Result<()>, rmd: impl FnOnce() -> F) -> Result<()>
where
    F: std::future::Future<Output = Result<()>>,
{
    use crate::error::ErrorKind;
    match dele {
        Ok(()) => {}
        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::Permission) => {}
        Err(e) => return Err(e),
    }
    rmd().await
}

/// [`Remote::list_dirs`] for a transport that lists one directory per round trip.
pub async fn list_one_by_one<R: Remote + ?Sized>(
    remote: &mut R,
    paths: &[String],
) -> Vec<Result<Vec<RemoteEntry>>> {
    let mut out = Vec::with_capacity(paths.len());
    for p in paths {
        out.push(remote.list_dir(p).await);
    }
    out
}

/// Opens connections. The engine calls [`connect`](RemoteFactory::connect) once per worker,
/// and again after a transient error dropped a connection.
#[async_trait]
pub trait RemoteFactory: Send + Sync {
    /// Where connections go, for messages.
    fn describe(&self) -> String;

    /// Opens and logs in one new connection.
    async fn connect(&self) -> Result<Box<dyn Remote>>;

    /// What a login has cost, when this factory knows better than the time its last
    /// [`connect`](RemoteFactory::connect) took (one that hands out an already logged-in
    /// connection returns at once). The engine weighs opening another connection by it.
    fn login_cost(&self) -> Option<std::time::Duration> {
        None
    }

    /// How many workers one login serves at once: 1 (the default) for a protocol with one
    /// transfer per connection (FTP); more where one login carries several (an SFTP session
    /// answers requests by id, so several uploads share it). The engine runs
    /// `max_connections` × this many workers, so `max_connections` still counts logins.
    fn streams_per_login(&self) -> usize {
        1
    }

    /// What this factory's connections did that the run's report should say once (files
    /// replaced without an atomic rename, say), taken: the next call returns only what
    /// happened since. The engine adds them to the report's warnings.
    fn take_notes(&self) -> Vec<String> {
        Vec::new()
    }
}
