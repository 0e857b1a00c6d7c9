//! A burst switch against real servers (the in-process server, vsftpd plain and FTPS,
//! pure-ftpd, proftpd; over SFTP OpenSSH's sshd and proftpd's mod_sftp, with and without
//! `posix-rename`): an export of new, changed and deleted
//! files gives the exact tree with no temp file left, and while the files are uploaded no
//! final name holds new content. The connections are wrapped by an observer that, when the
//! engine asks for the first rename, looks at the server's directory on disk before letting
//! any rename through: every changed file still holds its old content, no new file is there
//! under its final name, every deleted file is still there, and each file's new content
//! waits under siteport's temp name. `switch = per-file` renames nothing in a burst. And a
//! burst whose answers are lost with the temps gone (renamed by the server, or deleted by
//! something else) sends those files again, so the server ends holding the local tree.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use common::*;
use siteport_sync::*;
use siteport_testsupport::{FtpServer, ProFtpd, ServerKind, SftpServerKind, SshServer};

const REMOTE: &str = "/site";

/// What the observer saw at the first rename: `Ok` or what was wrong.
type Seen = Arc<Mutex<Option<std::result::Result<(), String>>>>;

/// Opens the real connections, wrapped in [`Watched`].
struct Watch {
    inner: Arc<dyn RemoteFactory>,
    gate: Arc<tokio::sync::Mutex<bool>>,
    check: Arc<dyn Fn() -> std::result::Result<(), String> + Send + Sync>,
    seen: Seen,
    /// Staged files handed to `publish`.
    renamed: Arc<AtomicUsize>,
    /// The first `publish` renames on the server, then answers as if the connection had
    /// been lost before the answers came (every entry a retryable network error).
    lose_first: Arc<std::sync::atomic::AtomicBool>,
    /// This file's rename is sent to a directory that does not exist: the server refuses it.
    misdirect: Option<String>,
    /// With `lose_first`: that `publish` deletes the temps instead of renaming them (a temp
    /// that vanished otherwise), then answers as lost.
    vanish: bool,
}

#[async_trait]
impl RemoteFactory for Watch {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    async fn connect(&self) -> Result<Box<dyn Remote>> {
        Ok(Box::new(Watched {
            inner: self.inner.connect().await?,
            gate: self.gate.clone(),
            check: self.check.clone(),
            seen: self.seen.clone(),
            renamed: self.renamed.clone(),
            lose_first: self.lose_first.clone(),
            misdirect: self.misdirect.clone(),
            vanish: self.vanish,
        }))
    }
}

/// A real connection whose `publish` first waits on the shared gate: the first one through
/// runs the check, so no rename of any connection is sent before it has looked.
struct Watched {
    inner: Box<dyn Remote>,
    gate: Arc<tokio::sync::Mutex<bool>>,
    check: Arc<dyn Fn() -> std::result::Result<(), String> + Send + Sync>,
    seen: Seen,
    renamed: Arc<AtomicUsize>,
    lose_first: Arc<std::sync::atomic::AtomicBool>,
    misdirect: Option<String>,
    vanish: bool,
}

#[async_trait]
impl Remote for Watched {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn list_dir(&mut self, path: &str) -> Result<Vec<RemoteEntry>> {
        self.inner.list_dir(path).await
    }
    async fn list_dirs(&mut self, paths: &[String]) -> Vec<Result<Vec<RemoteEntry>>> {
        self.inner.list_dirs(paths).await
    }
    async fn put_atomic(
        &mut self,
        local: LocalFile,
        path: &str,
        mtime: Option<SystemTime>,
        observe: Option<ReadObserver>,
    ) -> Result<u64> {
        self.inner.put_atomic(local, path, mtime, observe).await
    }
    async fn put_atomic_contents(
        &mut self,
        contents: &[u8],
        path: &str,
        mtime: Option<SystemTime>,
    ) -> Result<u64> {
        self.inner.put_atomic_contents(contents, path, mtime).await
    }
    async fn put_staged(
        &mut self,
        local: LocalFile,
        path: &str,
        mtime: Option<SystemTime>,
        observe: Option<ReadObserver>,
    ) -> Result<(u64, Staged)> {
        self.inner.put_staged(local, path, mtime, observe).await
    }
    async fn put_staged_contents(
        &mut self,
        contents: &[u8],
        path: &str,
        mtime: Option<SystemTime>,
    ) -> Result<(u64, Staged)> {
        self.inner.put_staged_contents(contents, path, mtime).await
    }
    async fn publish(&mut self, batch: &[Staged]) -> Vec<Result<()>> {
        {
            let mut checked = self.gate.lock().await;
            if !*checked {
                *checked = true;
                let r = (self.check)();
                *self.seen.lock().unwrap() = Some(r);
            }
        }
        let staged = batch.iter().filter(|s| s.temp.is_some()).count();
        self.renamed.fetch_add(staged, Ordering::SeqCst);
        let batch: Vec<Staged> = batch
            .iter()
            .map(|s| match &self.misdirect {
                Some(m) if *m == s.path => Staged {
                    path: format!("no-such-dir/{}", s.path),
                    temp: s.temp.clone(),
                },
                _ => s.clone(),
            })
            .collect();
        let lose = self.lose_first.swap(false, Ordering::SeqCst);
        if lose && self.vanish {
            for t in batch.iter().filter_map(|s| s.temp.as_ref()) {
                self.inner.delete_file(t).await.expect("delete a temp");
            }
        }
        let got = if lose && self.vanish {
            Vec::new()
        } else {
            self.inner.publish(&batch).await
        };
        if lose {
            assert!(got.iter().all(|r| r.is_ok()), "the real renames failed");
            return batch
                .iter()
                .map(|s| {
                    Err(
                        Error::new(ErrorKind::Network, s.path.clone(), "connection lost")
                            .retryable(true),
                    )
                })
                .collect();
        }
        got
    }
    async fn get(&mut self, path: &str, local: LocalFile) -> Result<u64> {
        self.inner.get(path, local).await
    }
    async fn get_contents(&mut self, path: &str, max: usize) -> Result<Option<Vec<u8>>> {
        self.inner.get_contents(path, max).await
    }
    async fn remote_hash(&mut self, path: &str, alg: HashAlg) -> Result<String> {
        self.inner.remote_hash(path, alg).await
    }
    async fn mkdir(&mut self, path: &str) -> Result<()> {
        self.inner.mkdir(path).await
    }
    async fn mkdir_new(&mut self, path: &str) -> Result<bool> {
        self.inner.mkdir_new(path).await
    }
    async fn delete_file(&mut self, path: &str) -> Result<()> {
        self.inner.delete_file(path).await
    }
    async fn remove_dir(&mut self, path: &str) -> Result<()> {
        self.inner.remove_dir(path).await
    }
    async fn close(&mut self) -> Result<()> {
        self.inner.close().await
    }
}

/// Every file under `root` (relative path → bytes), the deploy state dir left out; temp
/// files kept (`is_temp` tells them).
fn files(root: &Path) -> BTreeMap<String, Vec<u8>> {
    snapshot(root)
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .filter(|(k, _)| !k.starts_with(".siteport/") && k != ".siteport")
        .collect()
}

/// For `dir/.NAME.TAG.siteport-tmp`, `dir/NAME`.
fn temp_target(rel: &str) -> Option<String> {
    let (dir, name) = match rel.rsplit_once('/') {
        Some((d, n)) => (format!("{d}/"), n),
        None => (String::new(), rel),
    };
    let rest = name.strip_prefix('.')?.strip_suffix(".siteport-tmp")?;
    let (target, _tag) = rest.rsplit_once('.')?;
    Some(format!("{dir}{target}"))
}

/// A file larger than the engine's in-memory limit (1 MiB): streamed, hashed as sent.
fn big(seed: u8) -> Vec<u8> {
    (0..(1536 * 1024u32))
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn make_old(local: &Path) {
    for d in ["a", "b", "gone"] {
        for i in 0..10 {
            write(
                local,
                &format!("{d}/{i}.html"),
                format!("old {d} {i}").as_bytes(),
            );
        }
    }
    write(local, "media/big.bin", &big(1));
    write(local, "index.html", b"old index");
}

/// Changes 8 files (the big one among them), adds 5 (two in a new directory), deletes 11
/// (a whole directory and one more): returns (changed, new, deleted) paths.
fn edit(local: &Path) -> (Vec<String>, Vec<String>, Vec<String>) {
    let mut changed = Vec::new();
    for i in 0..6 {
        let p = format!("a/{i}.html");
        write(
            local,
            &p,
            format!("NEW a {i}, longer than before").as_bytes(),
        );
        changed.push(p);
    }
    write(local, "media/big.bin", &big(2));
    changed.push("media/big.bin".into());
    write(local, "index.html", b"new index");
    changed.push("index.html".into());
    let mut new = Vec::new();
    for p in [
        "b/new1.html",
        "b/new2.html",
        "c/x.html",
        "c/y.html",
        "top.txt",
    ] {
        write(local, p, format!("brand new {p}").as_bytes());
        new.push(p.to_owned());
    }
    let mut deleted: Vec<String> = (0..10).map(|i| format!("gone/{i}.html")).collect();
    std::fs::remove_dir_all(local.join("gone")).unwrap();
    std::fs::remove_file(local.join("b/9.html")).unwrap();
    deleted.push("b/9.html".into());
    (changed, new, deleted)
}

/// The observer's check: before any rename, the live names are the old tree and the new
/// contents wait under temp names.
fn phase_one_check(
    served: PathBuf,
    old: BTreeMap<String, Vec<u8>>,
    local: PathBuf,
    (changed, new, deleted): (Vec<String>, Vec<String>, Vec<String>),
) -> impl Fn() -> std::result::Result<(), String> + Send + Sync {
    move || {
        let now = files(&served);
        let want = files(&local);
        let mut problems = Vec::new();
        for p in &changed {
            if now.get(p) != old.get(p) {
                problems.push(format!("{p} changed under its final name before the burst"));
            }
        }
        for p in &new {
            if now.contains_key(p) {
                problems.push(format!("{p} is live before the burst"));
            }
        }
        for p in &deleted {
            if !now.contains_key(p) {
                problems.push(format!("{p} was deleted before the burst"));
            }
        }
        let mut waiting = BTreeMap::new();
        for (p, bytes) in now.iter().filter(|(p, _)| is_temp(p)) {
            match temp_target(p) {
                Some(t) if want.get(&t) == Some(bytes) => {
                    waiting.insert(t, ());
                }
                _ => problems.push(format!("{p}: not a complete temp of a file to send")),
            }
        }
        for p in changed.iter().chain(&new) {
            if !waiting.contains_key(p) {
                problems.push(format!("{p}: no complete temp file waits for the burst"));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("\n"))
        }
    }
}

fn opts(local: &Path, switch: Switch) -> SyncOptions {
    let mut o = SyncOptions::new(local);
    o.delete = true;
    o.retry = fast_retry();
    o.switch = switch;
    o
}

/// The whole scenario on one server: `factory` reaches it, `served` is the site's directory
/// on disk.
async fn scenario(label: &str, factory: Arc<dyn RemoteFactory>, served: PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let local = t.path().join("site");
    let journal = t.path().join("state/j.json");
    make_old(&local);
    // The old site, put in place file by file.
    let (_, r) = run(
        factory.clone(),
        opts(&local, Switch::PerFile),
        &journal,
        Direction::Export,
    )
    .await;
    assert!(
        r.is_success(),
        "{label}: {:?}",
        r.failures().collect::<Vec<_>>()
    );
    assert_eq!(r.switch, Some(Switch::PerFile), "{label}");
    assert_eq!(files(&served), files(&local), "{label}: first export");
    let old = files(&served);

    let edits = edit(&local);
    let (n_changed, n_new, n_deleted) = (edits.0.len(), edits.1.len(), edits.2.len());
    let seen: Seen = Arc::new(Mutex::new(None));
    let renamed = Arc::new(AtomicUsize::new(0));
    let watch = Arc::new(Watch {
        inner: factory.clone(),
        gate: Arc::new(tokio::sync::Mutex::new(false)),
        check: Arc::new(phase_one_check(served.clone(), old, local.clone(), edits)),
        seen: seen.clone(),
        renamed: renamed.clone(),
        lose_first: Arc::default(),
        misdirect: None,
        vanish: false,
    });
    let (_, r) = run(
        watch,
        opts(&local, Switch::Burst),
        &journal,
        Direction::Export,
    )
    .await;
    assert!(
        r.is_success(),
        "{label}: {:?}",
        r.failures().collect::<Vec<_>>()
    );
    assert_eq!(r.counts.uploaded, n_changed + n_new, "{label}");
    assert_eq!(r.counts.deleted, n_deleted, "{label}");
    match seen.lock().unwrap().take() {
        Some(Ok(())) => {}
        Some(Err(e)) => panic!("{label}: before the burst:\n{e}"),
        None => panic!("{label}: no rename burst happened"),
    }
    assert_eq!(renamed.load(Ordering::SeqCst), n_changed + n_new, "{label}");
    assert_eq!(files(&served), files(&local), "{label}: after the burst");
    assert!(
        !files(&served).keys().any(|p| is_temp(p)),
        "{label}: a temp file was left"
    );
    assert_eq!(r.switch, Some(Switch::Burst), "{label}");
    let window = r.switch_window_ms.expect("a burst reports its window");
    assert!(
        window <= r.duration_ms,
        "{label}: window {window} ms, export {} ms",
        r.duration_ms
    );
    eprintln!(
        "{label}: {} files switched in {window} ms of a {} ms export",
        n_changed + n_new,
        r.duration_ms
    );
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["switch"], "burst", "{label}");
    assert_eq!(json["switch_window_ms"], window, "{label}");

    // A no-change rerun sends nothing: what the burst put live was journaled.
    let (plan, _) = run(
        factory.clone(),
        opts(&local, Switch::Burst),
        &journal,
        Direction::Export,
    )
    .await;
    assert!(plan.is_noop(), "{label}: {plan}");

    // Per file: nothing is left for a burst, the files go live one by one.
    write(&local, "a/0.html", b"per-file edit");
    write(&local, "d/late.html", b"per-file new");
    let renamed = Arc::new(AtomicUsize::new(0));
    let watch = Arc::new(Watch {
        inner: factory.clone(),
        gate: Arc::new(tokio::sync::Mutex::new(true)),
        check: Arc::new(|| Ok(())),
        seen: Arc::new(Mutex::new(None)),
        renamed: renamed.clone(),
        lose_first: Arc::default(),
        misdirect: None,
        vanish: false,
    });
    let (_, r) = run(
        watch,
        opts(&local, Switch::PerFile),
        &journal,
        Direction::Export,
    )
    .await;
    assert!(
        r.is_success(),
        "{label}: {:?}",
        r.failures().collect::<Vec<_>>()
    );
    assert_eq!(r.counts.uploaded, 2, "{label}");
    assert_eq!(
        renamed.load(Ordering::SeqCst),
        0,
        "{label}: per-file staged files"
    );
    assert_eq!(r.switch, Some(Switch::PerFile), "{label}");
    assert_eq!(files(&served), files(&local), "{label}: per file");
}

fn ftp_endpoint(host: &str, port: u16, tls: bool, ca: Option<PathBuf>, login: Login) -> Endpoint {
    let settings = FtpSettings {
        tls: if tls {
            TlsMode::Explicit
        } else {
            TlsMode::None
        },
        ca_file: ca,
        ..FtpSettings::default()
    };
    let mut e = Endpoint::new(
        host.to_owned(),
        port,
        Protocol::Ftp(settings),
        REMOTE,
        login,
    );
    e.timeout = Duration::from_secs(20);
    e
}

async fn on_ftp(kind: ServerKind, tls: bool) {
    let server = FtpServer::start(kind, tls);
    let e = ftp_endpoint(
        &server.host,
        server.port,
        server.tls,
        server.ca_path(),
        Login::new(server.user.clone(), server.password.clone()),
    );
    let served = server.root().join(REMOTE.trim_start_matches('/'));
    scenario(&server.label(), connect_factory(&e), served).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_inprocess_plain() {
    on_ftp(ServerKind::InProcess, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_vsftpd_plain() {
    on_ftp(ServerKind::Vsftpd, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_vsftpd_ftps() {
    on_ftp(ServerKind::Vsftpd, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_pureftpd_plain() {
    on_ftp(ServerKind::PureFtpd, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_proftpd_plain() {
    let server = ProFtpd::start();
    let e = ftp_endpoint(
        &server.host,
        server.port,
        false,
        None,
        Login::new(server.user.clone(), server.password.clone()),
    );
    let served = server.root().join(REMOTE.trim_start_matches('/'));
    scenario("proftpd", connect_factory(&e), served).await;
}

async fn on_sftp(s: SshServer, label: &str) {
    let settings = SftpSettings {
        known_hosts: vec![s.known_hosts_file.clone()],
        no_user_known_hosts: true,
        ..SftpSettings::default()
    };
    let mut e = Endpoint::new(
        s.host.clone(),
        s.port,
        Protocol::Sftp(settings),
        s.remote_root(),
        Login::new(s.user.clone(), s.password.clone()),
    );
    e.timeout = Duration::from_secs(20);
    scenario(label, connect_factory(&e), s.root()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_sftp_sshd() {
    on_sftp(SshServer::start_kind(SftpServerKind::OpenSsh), "sshd").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_sftp_proftpd() {
    on_sftp(
        SshServer::start_kind(SftpServerKind::ProFtpd),
        "proftpd sftp",
    )
    .await;
}

/// Without `posix-rename@openssh.com` each rename of the burst is a remove, then a rename.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_sftp_proftpd_without_posix_rename() {
    on_sftp(
        SshServer::start_proftpd_without_posix_rename(),
        "proftpd sftp, no posix-rename",
    )
    .await;
}

/// vsftpd (plain), an endpoint to it, and the site's directory on its disk.
fn plain_vsftpd() -> (FtpServer, Endpoint, PathBuf) {
    let server = FtpServer::start(ServerKind::Vsftpd, false);
    let e = ftp_endpoint(
        &server.host,
        server.port,
        false,
        None,
        Login::new(server.user.clone(), server.password.clone()),
    );
    let served = server.root().join(REMOTE.trim_start_matches('/'));
    (server, e, served)
}

/// Connections whose first burst's answers are lost: after the server renamed, or (with
/// `vanish`) after the temps were deleted instead.
fn losing_watch(e: &Endpoint, vanish: bool) -> Arc<Watch> {
    Arc::new(Watch {
        inner: connect_factory(e),
        gate: Arc::new(tokio::sync::Mutex::new(true)),
        check: Arc::new(|| Ok(())),
        seen: Arc::new(Mutex::new(None)),
        renamed: Arc::new(AtomicUsize::new(0)),
        lose_first: Arc::new(std::sync::atomic::AtomicBool::new(true)),
        misdirect: None,
        vanish,
    })
}

/// The connection is lost after the server renamed the files but before its answers came
/// back (a session killed mid-burst): the engine finds the temps gone and the final names
/// holding what was sent; it sends those files again, one by one, rather than failing them
/// on a second `RNFR` of a temp that no longer exists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_answers_lost_after_the_renames_vsftpd() {
    let (_server, e, served) = plain_vsftpd();
    let t = tempfile::tempdir().unwrap();
    let local = t.path().join("site");
    make_old(&local);
    let mut o = opts(&local, Switch::Burst);
    // One connection: the whole burst is one batch, all of it "lost".
    o.max_connections = 1;
    let watch = losing_watch(&e, false);
    let (_, r) = run(
        watch.clone(),
        o,
        &t.path().join("j.json"),
        Direction::Export,
    )
    .await;
    assert!(r.is_success(), "{:?}", r.failures().collect::<Vec<_>>());
    assert!(
        !watch.lose_first.load(Ordering::SeqCst),
        "no burst happened"
    );
    assert_eq!(files(&served), files(&local));
    assert!(!files(&served).keys().any(|p| is_temp(p)));
}

/// The burst's answers are lost and the temps are gone, but not because the server renamed
/// them (something else deleted them): every final name still holds its old content, of
/// the same size as the new. Taking "temp gone, final name of the size sent" for a rename
/// done would end the run with exit 0 and a stale site; the files are sent again instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_answers_lost_with_the_temps_gone_resends_vsftpd() {
    let (_server, e, served) = plain_vsftpd();
    let t = tempfile::tempdir().unwrap();
    let local = t.path().join("site");
    let journal = t.path().join("j.json");
    make_old(&local);
    let mut o = opts(&local, Switch::Burst);
    o.max_connections = 1;
    let (_, r) = run(connect_factory(&e), o.clone(), &journal, Direction::Export).await;
    assert!(r.is_success(), "{:?}", r.failures().collect::<Vec<_>>());
    // Same sizes, new content.
    let changed: Vec<String> = (0..10).map(|i| format!("a/{i}.html")).collect();
    for p in &changed {
        let old = std::fs::read(local.join(p)).unwrap();
        let new: Vec<u8> = old.iter().map(|b| b.to_ascii_uppercase()).collect();
        assert_ne!(old, new);
        write(&local, p, &new);
    }
    let watch = losing_watch(&e, true);
    let (_, r) = run(watch.clone(), o, &journal, Direction::Export).await;
    assert!(r.is_success(), "{:?}", r.failures().collect::<Vec<_>>());
    assert!(
        !watch.lose_first.load(Ordering::SeqCst),
        "no burst happened"
    );
    assert_eq!(r.counts.uploaded, changed.len());
    for p in &changed {
        assert_eq!(
            String::from_utf8_lossy(&std::fs::read(served.join(p)).unwrap()),
            String::from_utf8_lossy(&std::fs::read(local.join(p)).unwrap()),
            "{p} on the server"
        );
    }
    assert!(
        files(&served) == files(&local),
        "the server holds the local tree"
    );
    assert!(!files(&served).keys().any(|p| is_temp(p)));
}

/// A rename the server refuses: that file is reported failed, its temp removed, it is not
/// journaled (the rerun sends it), and every other file of the burst goes live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_a_refused_rename_fails_that_file_only_vsftpd() {
    let (_server, e, served) = plain_vsftpd();
    let t = tempfile::tempdir().unwrap();
    let local = t.path().join("site");
    let journal = t.path().join("j.json");
    make_old(&local);
    let watch = Arc::new(Watch {
        inner: connect_factory(&e),
        gate: Arc::new(tokio::sync::Mutex::new(true)),
        check: Arc::new(|| Ok(())),
        seen: Arc::new(Mutex::new(None)),
        renamed: Arc::new(AtomicUsize::new(0)),
        lose_first: Arc::default(),
        misdirect: Some("b/3.html".into()),
        vanish: false,
    });
    let (_, r) = run(
        watch,
        opts(&local, Switch::Burst),
        &journal,
        Direction::Export,
    )
    .await;
    let failed: Vec<&FileOutcome> = r.failures().collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].path, "b/3.html");
    assert!(
        failed[0].failed() && format!("{:?}", failed[0].status).contains("RNTO"),
        "{failed:?}"
    );
    let mut want = files(&local);
    want.remove("b/3.html");
    assert_eq!(
        files(&served),
        want,
        "everything else went live, no temp left"
    );
    assert!(
        !Journal::open(&journal)
            .unwrap()
            .records()
            .contains_key("b/3.html")
    );
    // The rerun sends exactly that file.
    let (_, r) = run(
        connect_factory(&e),
        opts(&local, Switch::Burst),
        &journal,
        Direction::Export,
    )
    .await;
    assert!(r.is_success(), "{:?}", r.failures().collect::<Vec<_>>());
    assert_eq!(r.counts.uploaded, 1);
    assert_eq!(files(&served), files(&local));
}
