//! Test doubles around the real `LocalDirRemote`: they inject failures, hostile names and
//! connection limits that a real server produces but a local directory cannot.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use siteport_sync::*;

/// Knobs shared by every connection of a [`Wrap`] factory.
#[derive(Default)]
pub struct Knobs {
    /// Extra entries listed in a directory (by dir path).
    pub inject: Mutex<BTreeMap<String, Vec<RemoteEntry>>>,
    /// Puts per path (counts every try).
    pub puts: Mutex<BTreeMap<String, usize>>,
    /// Gets per path.
    pub gets: Mutex<BTreeMap<String, usize>>,
    /// Paths whose first put fails with a retryable error.
    pub flaky_once: Mutex<Vec<String>>,
    /// Paths whose put always fails with a permission error.
    pub forbidden: Mutex<Vec<String>>,
    /// Connections opened in all.
    pub connects: AtomicUsize,
    /// Connections alive now.
    pub live: AtomicUsize,
    /// Most connections alive at once.
    pub peak: AtomicUsize,
    /// Refuse connections beyond this many alive (421), 0 = no limit.
    pub limit: AtomicUsize,
    /// Refuse every login.
    pub refuse_login: std::sync::atomic::AtomicBool,
    /// Cut this many logins (the next ones) after the server answered: a session that died
    /// during the login, as a killed vsftpd session process does.
    pub cut_logins: AtomicUsize,
    /// Fail this many logins (the next ones) as a server not reached: connection refused.
    pub unreachable_logins: AtomicUsize,
    /// Pretend to be a LIST-only server: imprecise times, shifted by this many seconds.
    pub list_times_skew: Mutex<Option<i64>>,
    /// Milliseconds every login takes.
    pub connect_delay_ms: AtomicU64,
    /// Milliseconds every directory listing takes.
    pub list_delay_ms: AtomicU64,
    /// The directories of each `list_dirs` call, in order.
    pub list_batches: Mutex<Vec<Vec<String>>>,
    /// `connects` when the first site file was put or fetched.
    pub connects_at_first_transfer: Mutex<Option<usize>>,
}

impl Knobs {
    fn first_transfer(&self) {
        self.connects_at_first_transfer
            .lock()
            .unwrap()
            .get_or_insert(self.connects.load(Ordering::SeqCst));
    }
}

pub struct WrapFactory {
    pub root: PathBuf,
    pub knobs: Arc<Knobs>,
}

impl WrapFactory {
    pub fn new(root: &Path) -> (Arc<Self>, Arc<Knobs>) {
        let knobs = Arc::new(Knobs::default());
        (
            Arc::new(Self {
                root: root.to_path_buf(),
                knobs: knobs.clone(),
            }),
            knobs,
        )
    }
}

struct Wrap {
    inner: LocalDirRemote,
    knobs: Arc<Knobs>,
}

impl Drop for Wrap {
    fn drop(&mut self) {
        self.knobs.live.fetch_sub(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl RemoteFactory for WrapFactory {
    fn describe(&self) -> String {
        format!("wrap:{}", self.root.display())
    }
    async fn connect(&self) -> Result<Box<dyn Remote>> {
        if self.knobs.refuse_login.load(Ordering::SeqCst) {
            return Err(Error::new(
                ErrorKind::Login,
                self.describe(),
                "530 Login incorrect",
            ));
        }
        let take = |n: &AtomicUsize| {
            n.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_sub(1))
                .is_ok()
        };
        if take(&self.knobs.unreachable_logins) {
            return Err(Error::new(
                ErrorKind::Network,
                self.describe(),
                "connection refused (nothing listens on that port)",
            ));
        }
        if take(&self.knobs.cut_logins) {
            return Err(Error::new(
                ErrorKind::Network,
                self.describe(),
                "PASS ****: connection lost",
            )
            .reached_server(true));
        }
        let delay = self.knobs.connect_delay_ms.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        let live = self.knobs.live.fetch_add(1, Ordering::SeqCst) + 1;
        let limit = self.knobs.limit.load(Ordering::SeqCst);
        if limit > 0 && live > limit {
            self.knobs.live.fetch_sub(1, Ordering::SeqCst);
            return Err(Error::new(
                ErrorKind::TooManyConnections,
                self.describe(),
                "421 Too many connections",
            ));
        }
        self.knobs.peak.fetch_max(live, Ordering::SeqCst);
        self.knobs.connects.fetch_add(1, Ordering::SeqCst);
        Ok(Box::new(Wrap {
            inner: LocalDirRemote::new(self.root.clone()),
            knobs: self.knobs.clone(),
        }))
    }
}

#[async_trait]
impl Remote for Wrap {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn capabilities(&self) -> Capabilities {
        if self.knobs.list_times_skew.lock().unwrap().is_some() {
            Capabilities::default()
        } else {
            self.inner.capabilities()
        }
    }
    async fn list_dir(&mut self, path: &str) -> Result<Vec<RemoteEntry>> {
        let delay = self.knobs.list_delay_ms.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        let mut v = self.inner.list_dir(path).await?;
        if let Some(skew) = *self.knobs.list_times_skew.lock().unwrap() {
            for e in &mut v {
                e.mtime_precise = false;
                e.mtime = e.mtime.map(|t| {
                    let s = t.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
                    let s = (s / 60) * 60 + skew;
                    UNIX_EPOCH + Duration::from_secs(s as u64)
                });
            }
        }
        if let Some(extra) = self.knobs.inject.lock().unwrap().get(path) {
            v.extend(extra.iter().cloned());
        }
        Ok(v)
    }
    async fn list_dirs(&mut self, paths: &[String]) -> Vec<Result<Vec<RemoteEntry>>> {
        // One by one through list_dir above, so its knobs apply to every listing.
        self.knobs.list_batches.lock().unwrap().push(paths.to_vec());
        siteport_sync::list_one_by_one(self, paths).await
    }
    async fn put_atomic(
        &mut self,
        local: LocalFile,
        path: &str,
        mtime: Option<SystemTime>,
        observe: Option<ReadObserver>,
    ) -> Result<u64> {
        if path.starts_with(".siteport/") {
            // The deploy state, not a site file: not counted.
            return self.inner.put_atomic(local, path, mtime, observe).await;
        }
        self.knobs.first_transfer();
        let n = {
            let mut puts = self.knobs.puts.lock().unwrap();
            let c = puts.entry(path.to_string()).or_default();
            *c += 1;
            *c
        };
        if self
            .knobs
            .forbidden
            .lock()
            .unwrap()
            .iter()
            .any(|p| p == path)
        {
            return Err(Error::new(
                ErrorKind::Permission,
                path,
                "553 Permission denied",
            ));
        }
        if n == 1
            && self
                .knobs
                .flaky_once
                .lock()
                .unwrap()
                .iter()
                .any(|p| p == path)
        {
            // Half the file counted before the connection dropped, as a real transport
            // that lost it midway would have.
            if let (Some(m), Ok(meta)) = (&local.meter, local.file.metadata()) {
                m.add(meta.len() / 2);
            }
            return Err(Error::new(
                ErrorKind::Transfer,
                path,
                "426 Connection closed; transfer aborted",
            )
            .retryable(true));
        }
        // Slow enough that parallel workers overlap.
        tokio::time::sleep(Duration::from_millis(2)).await;
        self.inner.put_atomic(local, path, mtime, observe).await
    }
    async fn get(&mut self, path: &str, local: LocalFile) -> Result<u64> {
        self.knobs.first_transfer();
        *self
            .knobs
            .gets
            .lock()
            .unwrap()
            .entry(path.to_string())
            .or_default() += 1;
        self.inner.get(path, local).await
    }
    async fn mkdir(&mut self, path: &str) -> Result<()> {
        self.inner.mkdir(path).await
    }
    async fn delete_file(&mut self, path: &str) -> Result<()> {
        self.inner.delete_file(path).await
    }
    async fn remove_dir(&mut self, path: &str) -> Result<()> {
        self.inner.remove_dir(path).await
    }
}

/// Writes `content` at `root/rel`, creating parents.
pub fn write(root: &Path, rel: &str, content: &[u8]) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, content).unwrap();
}

/// A generated site: nested dirs, empty files, awkward names, an empty dir.
pub fn generate_site(root: &Path) -> usize {
    let names = [
        "index.html",
        "empty.txt",
        "with space.html",
        "-leading-dash.css",
        "#hash#.js",
        "ünïcödé ñame.txt",
        "a..b.txt",
        "assets/img/logo.svg",
        "assets/img/deep/er/still/file.bin",
        "assets/css/site.css",
        "docs/ä ö/readme.md",
        "docs/-dash dir/#x",
    ];
    for (i, n) in names.iter().enumerate() {
        let content: Vec<u8> = if n.contains("empty") {
            Vec::new()
        } else {
            (0..(i * 997 % 5000)).map(|b| (b * 31 + i) as u8).collect()
        };
        write(root, n, &content);
    }
    std::fs::create_dir_all(root.join("empty dir")).unwrap();
    names.len()
}

/// Every file and dir under `root` with its content (None for dirs), for comparisons; the
/// deploy state dir (`.siteport`) left out.
pub fn snapshot(root: &Path) -> BTreeMap<String, Option<Vec<u8>>> {
    let mut out = BTreeMap::new();
    for e in walkdir(root) {
        let rel = e.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        if rel == ".siteport" || rel.starts_with(".siteport/") {
            continue;
        }
        if e.is_dir() {
            out.insert(rel, None);
        } else {
            out.insert(rel, Some(std::fs::read(&e).unwrap()));
        }
    }
    out
}

fn walkdir(root: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() && !p.is_symlink() {
                stack.push(p.clone());
            }
            v.push(p);
        }
    }
    v
}

/// Sets a file's mtime to `secs` after the epoch.
pub fn set_mtime(p: &Path, secs: i64) {
    filetime::set_file_mtime(p, filetime::FileTime::from_unix_time(secs, 0)).unwrap();
}

pub fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
    }
}

/// Runs one direction with a fresh engine; returns the report and the plan.
pub async fn run(
    factory: Arc<dyn RemoteFactory>,
    opts: SyncOptions,
    journal: &Path,
    direction: Direction,
) -> (Plan, Report) {
    let j = Journal::open(journal).unwrap();
    let mut e = Engine::new(factory, opts, j, Arc::new(NoProgress));
    let plan = e.plan(direction).await.unwrap();
    let report = e.execute(&plan).await.unwrap();
    e.finish().await.unwrap();
    (plan, report)
}

/// The shape of a generated test site: how many small files, how big the one large file is.
#[derive(Debug, Clone, Copy)]
pub struct SiteSpec {
    /// Small files in all, the awkward names included.
    pub files: usize,
    /// Size of `media/big video.bin`.
    pub big: usize,
}

impl SiteSpec {
    /// The full acceptance tree: 2,000 small files and one 50 MiB file.
    pub const FULL: SiteSpec = SiteSpec {
        files: 2000,
        big: 50 * 1024 * 1024,
    };
}

/// Awkward names every generated site has: spaces, unicode, a leading dash, `#`, dirs six deep,
/// empty files.
pub const ODD_NAMES: &[&str] = &[
    "index.html",
    "empty.txt",
    "with space.html",
    "-leading-dash.css",
    "#hash#.js",
    "ünïcödé ñame.txt",
    "日本語/ファイル.txt",
    "a..b.txt",
    "dir with space/-dash #x.txt",
    "-dash dir/#/file",
    "d1/d2/d3/d4/d5/d6/deep.txt",
    "d1/d2/d3/d4/d5/d6/empty",
    "d1/d2/d3/sibling.txt",
];

/// Deterministic bytes of `len` for file number `i` (different per file, same every run).
pub fn file_content(i: usize, len: usize) -> Vec<u8> {
    let mut x = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let take = (len - v.len()).min(8);
        v.extend_from_slice(&x.to_le_bytes()[..take]);
    }
    v
}

/// Generates a site under `root` (deterministic: the same spec gives the same bytes) and
/// returns the relative paths of its files, sorted. Empty files come from the names above and
/// from every 97th bulk file; the bulk files spread over dirs up to six deep.
pub fn generate_tree(root: &Path, spec: SiteSpec) -> Vec<String> {
    let mut paths: Vec<String> = Vec::with_capacity(spec.files + 1);
    for (i, n) in ODD_NAMES.iter().enumerate() {
        let empty = n.ends_with("empty") || n.contains("empty.");
        let len = if empty { 0 } else { 100 + i * 37 };
        write(root, n, &file_content(i, len));
        paths.push(n.to_string());
    }
    for i in ODD_NAMES.len()..spec.files {
        // 60 directories, of depths 1 to 6.
        let d = i % 60;
        let mut dir = format!("s{}", d % 10);
        for k in 0..(d / 10) {
            dir.push_str(&format!("/l{k}"));
        }
        let rel = format!("{dir}/f{i:04}.html");
        let len = if i % 97 == 0 { 0 } else { (i * 131) % 6000 + 1 };
        write(root, &rel, &file_content(i, len));
        paths.push(rel);
    }
    let big = "media/big video.bin".to_string();
    write(root, &big, &file_content(usize::MAX / 3, spec.big));
    paths.push(big);
    std::fs::create_dir_all(root.join("empty dir")).unwrap();
    // A fixed time well in the past: a server's second-resolution upload time is then always
    // later than the local time, whatever the clock did during the test.
    for p in &paths {
        set_mtime(&root.join(p), 1_700_000_000);
    }
    paths.sort();
    paths
}

/// Snapshot of files only (relative path -> bytes), leaving out siteport's temporary files
/// (`.NAME.TAG.siteport-tmp`, `.siteport-*.part`).
pub fn files_snapshot(root: &Path) -> BTreeMap<String, Vec<u8>> {
    snapshot(root)
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .filter(|(k, _)| !is_temp(k))
        .collect()
}

/// Whether the last component of `rel` is one of siteport's temporary names.
pub fn is_temp(rel: &str) -> bool {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    name.starts_with('.') && (name.ends_with(".siteport-tmp") || name.ends_with(".part"))
}
