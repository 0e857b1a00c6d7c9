//! The mirror engine over SFTP, against OpenSSH's sshd (chrooted internal-sftp) and proftpd's
//! mod_sftp, each test once per server (`sshd::…`, `proftpd::…`), through `connect_factory` and
//! the real `siteport-sftp` client: export, a no-change re-export that writes nothing (no inode
//! or ctime changes on the server, and none in proftpd's transfer log), same-size edits found
//! by the journal, `--delete`, import round trip; an export SIGKILLed midway and resumed;
//! logins and host keys through `test_login`; and an import from a hostile server (russh)
//! whose listings carry `../x`, an absolute name, `a/x` and a link out of the site.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use secrecy::SecretString;
use siteport_sync::*;
use siteport_testsupport::{
    FaultyProxy, HOSTILE_SFTP_FILES, HOSTILE_SFTP_LINK, HOSTILE_SFTP_NAMES, HostileSftpServer,
    SftpServerKind, SshServer,
};

const REMOTE: &str = "/site";

siteport_testsupport::sftp_server_tests! {
    async: acceptance, logins_keys_and_host_keys;
    sync: kill_and_resume;
}

fn settings(s: &SshServer) -> SftpSettings {
    SftpSettings {
        known_hosts: vec![s.known_hosts_file.clone()],
        no_user_known_hosts: true,
        ..SftpSettings::default()
    }
}

fn endpoint_with(s: &SshServer, settings: SftpSettings, login: Login) -> Endpoint {
    let mut e = Endpoint::new(
        s.host.clone(),
        s.port,
        Protocol::Sftp(settings),
        REMOTE,
        login,
    );
    e.timeout = Duration::from_secs(20);
    e
}

fn endpoint(s: &SshServer) -> Endpoint {
    endpoint_with(
        s,
        settings(s),
        Login::new(s.user.clone(), s.password.clone()),
    )
}

fn sync_options(local: &Path) -> SyncOptions {
    let mut o = SyncOptions::new(local);
    o.delete = true;
    o.retry = fast_retry();
    o
}

/// path -> None for a dir, Some(BLAKE3) for a file, temp names left out.
fn hashes(root: &Path) -> BTreeMap<String, Option<String>> {
    let mut out = BTreeMap::new();
    for e in walkdir::WalkDir::new(root).min_depth(1) {
        let e = e.unwrap();
        let rel = e
            .path()
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if is_temp(&rel) || is_state(&rel) {
            continue;
        }
        let v = (!e.file_type().is_dir()).then(|| hash_file(e.path()).unwrap());
        out.insert(rel, v);
    }
    out
}

#[track_caller]
fn assert_same(what: &str, a: &Path, b: &Path) {
    let (ha, hb) = (hashes(a), hashes(b));
    let only_a: Vec<_> = ha
        .iter()
        .filter(|(k, v)| hb.get(*k) != Some(v))
        .map(|(k, _)| k)
        .collect();
    let only_b: Vec<_> = hb.keys().filter(|k| !ha.contains_key(*k)).collect();
    assert!(
        only_a.is_empty() && only_b.is_empty(),
        "{what}: differ: {only_a:?} / {only_b:?}"
    );
}

async fn run(
    f: Arc<dyn RemoteFactory>,
    o: SyncOptions,
    journal: &Path,
    d: Direction,
) -> (Plan, Report) {
    let j = Journal::open(journal).unwrap();
    let mut e = Engine::new(f, o, j, Arc::new(NoProgress));
    let plan = e.plan(d).await.unwrap_or_else(|err| panic!("plan: {err}"));
    let report = e
        .execute(&plan)
        .await
        .unwrap_or_else(|err| panic!("execute: {err}"));
    e.finish().await.unwrap();
    assert!(
        report.is_success(),
        "{d:?} failed: {:#?}",
        report.failures().collect::<Vec<_>>()
    );
    (plan, report)
}

fn uploaded(r: &Report) -> Vec<&str> {
    let mut v: Vec<&str> = r
        .outcomes
        .iter()
        .filter(|o| o.op == Op::Upload && !o.failed())
        .map(|o| o.path.as_str())
        .collect();
    v.sort();
    v
}

/// path -> (inode, ctime) of every entry under `root`.
fn inodes(root: &Path) -> BTreeMap<String, (u64, i64)> {
    use std::os::unix::fs::MetadataExt;
    walkdir::WalkDir::new(root)
        .min_depth(1)
        .into_iter()
        .map(|e| {
            let e = e.unwrap();
            let m = e.metadata().unwrap();
            (e.path().display().to_string(), (m.ino(), m.ctime()))
        })
        .collect()
}

fn flip_first_byte(local: &Path, rel: &str) {
    let p = local.join(rel);
    let mut v = std::fs::read(&p).unwrap();
    v[0] ^= 0xff;
    std::fs::write(&p, v).unwrap();
}

/// The tree the acceptance tests send to `kind`: the full one (2,000 files and 50 MiB) to
/// sshd; to proftpd the same awkward names in 500 files with a 4 MiB large one, since
/// siteport-sftp's own tests already send it 50 MiB (so the runtime stays modest).
fn spec(kind: SftpServerKind) -> SiteSpec {
    match kind {
        SftpServerKind::OpenSsh => SiteSpec::FULL,
        SftpServerKind::ProFtpd => SiteSpec {
            files: 500,
            big: 4 * 1024 * 1024,
        },
    }
}

/// The files the server logged as stored so far (proftpd's transfer log); 0 for sshd,
/// which logs none (its writes are seen in inodes and ctimes instead).
fn logged_writes(s: &SshServer) -> usize {
    s.writes().map_or(0, |w| w.len())
}

async fn acceptance(kind: SftpServerKind) {
    let s = SshServer::start_kind(kind);
    let t = tempfile::tempdir().unwrap();
    let local = t.path().join("site");
    let paths = generate_tree(&local, spec(kind));
    let served = s.root();
    let f = connect_factory(&endpoint(&s));
    let journal = t.path().join("state/site.json");
    let so = sync_options(&local);

    // 1. First export: byte-identical, exact times (SETSTAT).
    let (_, r) = run(f.clone(), so.clone(), &journal, Direction::Export).await;
    assert_eq!(r.counts.uploaded, paths.len());
    assert_same("after export", &local, &served);
    let m = |root: &Path| {
        std::fs::metadata(root.join("index.html"))
            .unwrap()
            .modified()
            .unwrap()
    };
    assert_eq!(m(&served), m(&local), "SETSTAT carried the exact mtime");
    if let Some(w) = s.writes() {
        // The server's own count: every file once (the deploy state's writes besides).
        let site_writes = w.iter().filter(|p| !p.contains("/.siteport/")).count();
        assert_eq!(site_writes, paths.len(), "{w:?}");
    }

    // 2. Nothing changed: nothing sent. Every upload makes a new inode (temp file, then
    //    rename), so unchanged inodes and ctimes on the server mean zero writes.
    let before = inodes(&served);
    let writes = logged_writes(&s);
    let (plan, r) = run(f.clone(), so.clone(), &journal, Direction::Export).await;
    assert!(plan.is_noop(), "{plan}");
    assert_eq!(r.counts.uploaded, 0);
    assert_eq!(
        inodes(&served),
        before,
        "a no-change export wrote on the server"
    );
    assert_eq!(logged_writes(&s), writes, "the server logged writes");

    // 3. Same-size edits, one with its mtime set far back: only the journal can tell.
    flip_first_byte(&local, "with space.html");
    flip_first_byte(&local, "ünïcödé ñame.txt");
    set_mtime(&local.join("ünïcödé ñame.txt"), 1_000_000_000);
    let writes = logged_writes(&s);
    let (_, r) = run(f.clone(), so.clone(), &journal, Direction::Export).await;
    assert_eq!(uploaded(&r), ["with space.html", "ünïcödé ñame.txt"]);
    if s.writes().is_some() {
        // The two files, and the deploy state's record of the run.
        assert!(logged_writes(&s) >= writes + 2, "{:?}", s.writes());
    }
    assert_same("after edits", &local, &served);

    // 4. --delete: a file and a directory tree removed locally go remotely too.
    std::fs::remove_file(local.join("#hash#.js")).unwrap();
    std::fs::remove_dir_all(local.join("-dash dir")).unwrap();
    let (_, r) = run(f.clone(), so.clone(), &journal, Direction::Export).await;
    assert_eq!(r.counts.deleted, 2, "{:?}", r.outcomes);
    assert_eq!(r.counts.dirs_removed, 2, "{:?}", r.outcomes);
    assert_same("after delete", &local, &served);

    // 5. Import into an empty directory: the same tree; a second import changes nothing.
    let back = t.path().join("back");
    let bj = t.path().join("state/back.json");
    let (_, r) = run(f.clone(), sync_options(&back), &bj, Direction::Import).await;
    assert_eq!(r.counts.downloaded, paths.len() - 2);
    assert_same("after import", &local, &back);
    let (plan, _) = run(f.clone(), sync_options(&back), &bj, Direction::Import).await;
    assert!(plan.is_noop(), "{plan}");
}

async fn logins_keys_and_host_keys(kind: SftpServerKind) {
    let s = SshServer::start_kind(kind);
    test_login(&endpoint(&s)).await.expect("password login");
    let key = SecretString::from(SshServer::read_key(&s.encrypted_key_path));
    let keyed = Login::new(s.user.clone(), SecretString::from(""))
        .with_ssh_key(key, Some(s.key_passphrase.clone()));
    test_login(&endpoint_with(&s, settings(&s), keyed))
        .await
        .expect("key login");

    let wrong = Login::new(s.user.clone(), SecretString::from("wrong-pass-42"));
    let e = test_login(&endpoint_with(&s, settings(&s), wrong))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Login, "{e}");
    let bad_key = SecretString::from(SshServer::read_key(&s.unauthorized_key_path));
    let wrong = Login::new(s.user.clone(), SecretString::from("")).with_ssh_key(bad_key, None);
    let e = test_login(&endpoint_with(&s, settings(&s), wrong))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Login, "{e}");

    let attempts = s.auth_attempts().len();
    let empty = tempfile::NamedTempFile::new().unwrap();
    let unknown = SftpSettings {
        known_hosts: vec![empty.path().to_path_buf()],
        no_user_known_hosts: true,
        ..SftpSettings::default()
    };
    let login = Login::new(s.user.clone(), s.password.clone());
    let e = test_login(&endpoint_with(&s, unknown, login.clone()))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::HostKey, "{e}");
    assert!(e.is_fatal());
    assert!(
        e.hint().is_some_and(|h| h.contains(&s.known_hosts_line)),
        "{:?}",
        e.hint()
    );
    // The engine stops at once on an untrusted key.
    let pinned_wrong = SftpSettings {
        host_key: Some("SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into()),
        ..SftpSettings::default()
    };
    let t = tempfile::tempdir().unwrap();
    let f = connect_factory(&endpoint_with(&s, pinned_wrong, login.clone()));
    let j = Journal::open(&t.path().join("j.json")).unwrap();
    let mut eng = Engine::new(f, sync_options(t.path()), j, Arc::new(NoProgress));
    let err = eng.plan(Direction::Export).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::HostKey, "{err}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        s.auth_attempts().len(),
        attempts,
        "no authentication was attempted"
    );

    let pinned = SftpSettings {
        host_key: Some(s.host_key_fingerprint.clone()),
        ..SftpSettings::default()
    };
    test_login(&endpoint_with(&s, pinned, login))
        .await
        .expect("pinned");
}

/// Logins cut by the network after the server answered (a proxy that cuts half of the
/// connections within the first 512 bytes the server sends, i.e. during the key exchange; with
/// this seed the first two, so the very first login is cut twice before it works) are
/// reconnects on the engine's budget, not tries of a job: with one try per job the export and
/// a second one after an edit still finish with nothing failed. Before SFTP errors said
/// they reached the server, the first cut login ended the run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_logins_use_the_reconnect_budget_not_the_tries() {
    let s = SshServer::start();
    let target: std::net::SocketAddr = format!("{}:{}", s.host, s.port).parse().unwrap();
    let proxy = FaultyProxy::start(target, 0.5, 4);
    let t = tempfile::tempdir().unwrap();
    let local = t.path().join("site");
    let paths = generate_tree(
        &local,
        SiteSpec {
            files: 300,
            big: 64 * 1024,
        },
    );
    let pinned = SftpSettings {
        host_key: Some(s.host_key_fingerprint.clone()),
        ..SftpSettings::default()
    };
    let mut e = endpoint_with(&s, pinned, Login::new(s.user.clone(), s.password.clone()));
    e.port = proxy.port();
    let f = connect_factory(&e);
    let mut so = sync_options(&local);
    so.retry.max_attempts = 1;
    so.max_connections = 4;
    let journal = t.path().join("state/site.json");
    let deadline = Duration::from_secs(120);
    let (_, r) = tokio::time::timeout(
        deadline,
        run(f.clone(), so.clone(), &journal, Direction::Export),
    )
    .await
    .expect("the export finished in time");
    assert_eq!(r.counts.uploaded, paths.len());
    assert_same("after export", &local, &s.root());
    flip_first_byte(&local, "index.html");
    let (_, r) = tokio::time::timeout(deadline, run(f, so, &journal, Direction::Export))
        .await
        .expect("the second export finished in time");
    assert_eq!(uploaded(&r), ["index.html"]);
    assert!(
        proxy.cut() > 0,
        "the proxy cut nothing ({} connections)",
        proxy.connections()
    );
    eprintln!("{} of {} connections cut", proxy.cut(), proxy.connections());
}

/// A server without `posix-rename@openssh.com` (proftpd with `SFTPExtensions -posixRename`):
/// the first export replaces nothing (every name is new: plain renames) and says nothing; an
/// edited file then goes in by remove + rename, and the report says so in one warning (the
/// CLI prints it and `--json` carries it), counting the files so replaced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_posix_rename_the_report_counts_the_non_atomic_replacements() {
    let s = SshServer::start_proftpd_without_posix_rename();
    let t = tempfile::tempdir().unwrap();
    let local = t.path().join("site");
    let paths = generate_tree(
        &local,
        SiteSpec {
            files: 40,
            big: 64 * 1024,
        },
    );
    let f = connect_factory(&endpoint(&s));
    let mut so = sync_options(&local);
    // No deploy state: only the site's own files are uploaded, so the count is exact.
    so.state_dir = None;
    let journal = t.path().join("state/site.json");
    let note = |r: &Report| -> Vec<String> {
        r.warnings
            .iter()
            .filter(|w| w.contains("remove + rename"))
            .cloned()
            .collect()
    };
    let (_, r) = run(f.clone(), so.clone(), &journal, Direction::Export).await;
    assert_eq!(r.counts.uploaded, paths.len());
    assert_eq!(note(&r), Vec::<String>::new(), "nothing was replaced");
    flip_first_byte(&local, "index.html");
    flip_first_byte(&local, "with space.html");
    let (_, r) = run(f, so, &journal, Direction::Export).await;
    assert_eq!(uploaded(&r), ["index.html", "with space.html"]);
    assert_eq!(
        note(&r),
        [
            "2 files replaced by remove + rename (not atomic: the name was missing for a moment): \
          the server lacks posix-rename@openssh.com"
        ],
        "{:?}",
        r.warnings
    );
    assert_same("after edits", &local, &s.root());
}

/// Counts the workers that started a file and the most files in flight at once.
#[derive(Default)]
struct Concurrency {
    workers: std::sync::Mutex<std::collections::BTreeSet<usize>>,
    now: std::sync::atomic::AtomicUsize,
    most: std::sync::atomic::AtomicUsize,
}

impl Progress for Concurrency {
    fn started(&self, worker: usize, _: &Action) {
        use std::sync::atomic::Ordering;
        self.workers.lock().unwrap().insert(worker);
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
    }
    fn finished(&self, _: usize, _: &FileOutcome) {
        self.now.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// One SSH login carries several uploads at once: with `max_connections = 1` an export of
/// 600 files logs in once (by the server's log) and reports one connection, yet more than
/// one worker sends files, several at a time, over that session; the tree arrives intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_login_carries_several_uploads_at_once() {
    let s = SshServer::start();
    let t = tempfile::tempdir().unwrap();
    let local = t.path().join("site");
    let paths = generate_tree(
        &local,
        SiteSpec {
            files: 600,
            big: 256 * 1024,
        },
    );
    let mut so = sync_options(&local);
    so.max_connections = 1;
    let logins = s.accepted_logins().len();
    let seen = Arc::new(Concurrency::default());
    let j = Journal::open(&t.path().join("state/site.json")).unwrap();
    let mut e = Engine::new(connect_factory(&endpoint(&s)), so, j, seen.clone());
    let r = e.run(Direction::Export).await.expect("export");
    e.finish().await.unwrap();
    assert!(r.is_success(), "{:#?}", r.failures().collect::<Vec<_>>());
    assert_eq!(r.counts.uploaded, paths.len());
    assert_same("after export", &local, &s.root());
    assert_eq!(r.connections, 1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(s.accepted_logins().len(), logins + 1, "one login");
    let workers = seen.workers.lock().unwrap().len();
    let most = seen.most.load(std::sync::atomic::Ordering::SeqCst);
    assert!(workers > 1, "one worker sent every file");
    assert!(most > 1, "never more than one file in flight");
    eprintln!("{workers} workers, at most {most} files in flight, one login");
}

const CHILD_ENV: &str = "SITEPORT_SFTP_CHILD";

/// Runs only when re-executed by [`kill_and_resume`] with `SITEPORT_SFTP_CHILD` set: an
/// export to the sshd at `CHILD_PORT`; the password comes from the 0600 file
/// `CHILD_PASSWORD_FILE` (never argv). Otherwise it has nothing to do.
#[test]
fn export_child() {
    let Ok(role) = std::env::var(CHILD_ENV) else {
        return;
    };
    assert_eq!(role, "export");
    let var = |k: &str| std::env::var(k).unwrap();
    let password = std::fs::read_to_string(var("CHILD_PASSWORD_FILE")).unwrap();
    let settings = SftpSettings {
        known_hosts: vec![PathBuf::from(var("CHILD_KNOWN_HOSTS"))],
        no_user_known_hosts: true,
        ..SftpSettings::default()
    };
    let mut e = Endpoint::new(
        "127.0.0.1",
        var("CHILD_PORT").parse().unwrap(),
        Protocol::Sftp(settings),
        REMOTE,
        Login::new(var("CHILD_USER"), SecretString::from(password)),
    );
    e.timeout = Duration::from_secs(20);
    let local = PathBuf::from(var("CHILD_LOCAL"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let j = Journal::open(Path::new(&var("CHILD_JOURNAL"))).unwrap();
        // Per file: this test watches files go live (and journaled) one by one and kills the
        // run midway; a burst switch is killed in crates/siteport/tests/burst_cli.rs.
        let mut so = sync_options(&local);
        so.switch = Switch::PerFile;
        let mut eng = Engine::new(connect_factory(&e), so, j, Arc::new(NoProgress));
        let r = eng.run(Direction::Export).await.unwrap();
        eprintln!("child finished: {:?}", r.counts);
    });
}

fn journal_lines(log: &Path) -> usize {
    std::fs::read(log)
        .map(|b| b.iter().filter(|&&c| c == b'\n').count())
        .unwrap_or(0)
}

/// SIGKILLs an export running in a child process midway, checks that no file on the server
/// holds partial content under its final name, then reruns: it completes and sends exactly
/// the files that were not yet in place, and leaves no temp file.
fn kill_and_resume(kind: SftpServerKind) {
    use secrecy::ExposeSecret;
    use std::os::unix::fs::OpenOptionsExt as _;
    let s = SshServer::start_kind(kind);
    let t = tempfile::tempdir().unwrap();
    let local = t.path().join("site");
    let paths = generate_tree(&local, spec(kind));
    let pw_file = t.path().join("password");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&pw_file)
        .unwrap();
    std::io::Write::write_all(&mut f, s.password.expose_secret().as_bytes()).unwrap();
    drop(f);
    let journal = t.path().join("state/site.json");
    let log = t.path().join("state/site.json.log");
    let served = s.root();
    let child_err = t.path().join("child.stderr");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "export_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "export")
        .env("CHILD_PORT", s.port.to_string())
        .env("CHILD_USER", &s.user)
        .env("CHILD_PASSWORD_FILE", &pw_file)
        .env("CHILD_KNOWN_HOSTS", &s.known_hosts_file)
        .env("CHILD_LOCAL", &local)
        .env("CHILD_JOURNAL", &journal)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&child_err).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "the export ended ({status}) before it could be killed:\n{}",
                std::fs::read_to_string(&child_err).unwrap_or_default()
            );
        }
        assert!(Instant::now() < deadline, "no progress in 60 s");
        if journal_lines(&log) >= paths.len() / 4 {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    std::thread::sleep(Duration::from_millis(300));

    // Nothing half-written under a final name.
    let want = hashes(&local);
    let mut present = 0usize;
    for e in walkdir::WalkDir::new(&served).min_depth(1) {
        let e = e.unwrap();
        let rel = e
            .path()
            .strip_prefix(&served)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if !e.file_type().is_file() || is_temp(&rel) || is_state(&rel) {
            continue;
        }
        present += 1;
        assert_eq!(
            want.get(&rel),
            Some(&Some(hash_file(e.path()).unwrap())),
            "{rel} on the server is not the source's content"
        );
    }
    let journaled = Journal::open(&journal).unwrap().records().len();
    assert!(
        journaled > 0 && journaled <= present,
        "{journaled} journaled, {present} present"
    );
    assert!(present < paths.len(), "the kill came too late");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let f = connect_factory(&endpoint(&s));
    let site_writes = || {
        s.writes()
            .map(|w| w.iter().filter(|p| !p.contains("/.siteport/")).count())
    };
    // The killed client's sessions may log their last (cut) write only as they end: wait
    // until the server's log stops growing before counting the rerun's writes from it.
    let mut writes_before = site_writes();
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(250));
        let now = site_writes();
        if now == writes_before {
            break;
        }
        writes_before = now;
    }
    let (_, r) = rt.block_on(run(f, sync_options(&local), &journal, Direction::Export));
    // A file that landed just before the kill but was neither journaled nor in the server's
    // state cannot be proven equal (same size, no record), so it may be sent again.
    let sent = r.counts.uploaded;
    assert!(
        paths.len() - present <= sent && sent <= paths.len() - journaled,
        "rerun sent {sent}: {} files, {present} present, {journaled} journaled",
        paths.len()
    );
    assert_same("after the rerun", &local, &served);
    if let (Some(before), Some(after)) = (writes_before, site_writes()) {
        // The server's own count of the rerun's writes: exactly the files it reported sent.
        assert_eq!(after - before, sent, "{:?}", s.writes());
    }
    let left: Vec<_> = walkdir::WalkDir::new(&served)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| is_temp(&e.file_name().to_string_lossy()))
        .map(|e| e.path().display().to_string())
        .collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");
}

/// The deploy state dir (`.siteport`) the export keeps on the server: not part of the site.
fn is_state(rel: &str) -> bool {
    rel == ".siteport" || rel.starts_with(".siteport/")
}

/// Import from a hostile SFTP server whose `/site` and `/site/sub` list `../x`, `../../x`,
/// `a/x`, `back\x` and the absolute `<parent of the local root>/x`, and whose `/site` lists a
/// link to `/etc`, all of which it would serve: nothing is written outside the local root
/// (its parent holds only the root, no `x` anywhere), every bad name is reported as unsafe,
/// the link as a link, and never followed (the server saw no request through it), and the
/// ordinary files are imported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_from_a_hostile_server() {
    let t = tempfile::tempdir().unwrap();
    let outer = t.path().join("outer");
    let parent = outer.join("one/two");
    let local = parent.join("site");
    std::fs::create_dir_all(&parent).unwrap();
    let server = HostileSftpServer::start(&parent);
    let settings = SftpSettings {
        known_hosts: vec![server.known_hosts_file.clone()],
        no_user_known_hosts: true,
        ..SftpSettings::default()
    };
    let mut ep = Endpoint::new(
        "127.0.0.1",
        server.port,
        Protocol::Sftp(settings),
        REMOTE,
        Login::new("anyone", SecretString::from("any-password")),
    );
    ep.timeout = Duration::from_secs(20);
    let f = connect_factory(&ep);
    let j = Journal::open(&t.path().join("state/j.json")).unwrap();
    let mut e = Engine::new(f, sync_options(&local), j, Arc::new(NoProgress));
    let plan = e.plan(Direction::Import).await.unwrap();
    let r = e.execute(&plan).await.unwrap();
    e.finish().await.unwrap();

    // The ordinary files, and only them.
    let mut want: BTreeMap<String, Option<Vec<u8>>> = HOSTILE_SFTP_FILES
        .iter()
        .map(|(p, c)| (p.to_string(), Some(c.to_vec())))
        .collect();
    want.insert("sub".into(), None);
    assert_eq!(snapshot(&local), want);
    assert_eq!(
        r.counts.downloaded,
        HOSTILE_SFTP_FILES.len(),
        "{:?}",
        r.outcomes
    );
    // The parent of the local root holds the root only; nothing named x anywhere.
    let beside: Vec<_> = std::fs::read_dir(&parent)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(beside, ["site"], "written beside the local root");
    let outside: Vec<_> = walkdir::WalkDir::new(t.path())
        .into_iter()
        .filter_map(|e| e.ok())
        .map(|e| e.path().to_path_buf())
        .filter(|p| !p.starts_with(&local) && !local.starts_with(p))
        .filter(|p| !p.starts_with(t.path().join("state")))
        .collect();
    assert!(outside.is_empty(), "written outside the root: {outside:?}");
    let xs: Vec<_> = walkdir::WalkDir::new(t.path())
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name() == "x")
        .map(|e| e.path().to_path_buf())
        .collect();
    assert!(xs.is_empty(), "{xs:?}");

    // Every bad name of both directories reported, the link as a link.
    let unsafe_paths: Vec<&str> = r
        .problems
        .iter()
        .filter(|p| p.kind == ProblemKind::UnsafeName)
        .map(|p| p.path.as_str())
        .collect();
    let bad: Vec<String> = HOSTILE_SFTP_NAMES
        .iter()
        .map(|n| n.to_string())
        .chain([server.absolute_name().to_string()])
        .collect();
    assert_eq!(unsafe_paths.len(), 2 * bad.len(), "{:#?}", r.problems);
    for n in &bad {
        for dir in ["", "sub/"] {
            let shown = format!("{dir}{}", n.escape_debug());
            assert!(
                unsafe_paths.contains(&shown.as_str()),
                "{shown} not reported: {unsafe_paths:?}"
            );
        }
    }
    let links: Vec<&str> = r
        .problems
        .iter()
        .filter(|p| p.kind == ProblemKind::Symlink)
        .map(|p| p.path.as_str())
        .collect();
    assert_eq!(links, [HOSTILE_SFTP_LINK.0], "{:#?}", r.problems);
    // The server was never asked for anything through the link, nor for a bad name.
    let asked = server.requests();
    let strays: Vec<&String> = asked
        .iter()
        .filter(|q| q.contains(HOSTILE_SFTP_LINK.0) || q.contains("..") || q.ends_with("/x"))
        .collect();
    assert!(strays.is_empty(), "{strays:?} in {asked:?}");
    assert!(r.is_success(), "{:?}", r.failures().collect::<Vec<_>>());
}
