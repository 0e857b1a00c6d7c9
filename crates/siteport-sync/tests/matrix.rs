//! The mirror engine's acceptance on every real server of the matrix: the in-process server
//! (plain and explicit FTPS), vsftpd (plain, and explicit FTPS with `require_ssl_reuse`) and
//! pure-ftpd (plain, and explicit FTPS required), through `connect_factory` and the real
//! `siteport-ftp` client.
//!
//! - one test per server config runs the whole sequence on one generated tree: export,
//!   no-change re-export, same-size edits, a delete, excludes, import into an empty dir;
//! - a child process running an export is SIGKILLed midway, and the rerun sends only what
//!   was left (vsftpd and the in-process server);
//! - a proxy that cuts control connections at random: export and import still complete;
//! - a server whose listings carry hostile names (`../escape`, `a/b`, `back\slash`): the
//!   import writes nothing outside the local root and reports them.
//!
//! The in-process server (libunftp) costs ~45 ms per file, so its configs get a smaller tree
//! (300 files, every awkward name, a 5 MiB file); vsftpd and pure-ftpd get the full one
//! (2,000 files, a 50 MiB file).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use secrecy::{ExposeSecret, SecretString};
use siteport_ftp::{ConnectOptions, FtpConnection};
use siteport_sync::*;
use siteport_testsupport::{FaultyProxy, FtpServer, HOSTILE_NAMES, HostileServer, ServerKind};

/// The site's directory on every server.
const REMOTE: &str = "/site";
const EXCLUDES: &[&str] = &["*.tmp", "drafts/**"];

/// The smaller tree for the in-process server (see the module docs).
const SMALL: SiteSpec = SiteSpec {
    files: 300,
    big: 5 * 1024 * 1024,
};

fn spec_for(kind: ServerKind) -> SiteSpec {
    match kind {
        ServerKind::InProcess => SMALL,
        _ => SiteSpec::FULL,
    }
}

fn endpoint(server: &FtpServer, port: u16) -> Endpoint {
    let settings = FtpSettings {
        tls: if server.tls {
            TlsMode::Explicit
        } else {
            TlsMode::None
        },
        ca_file: server.ca_path(),
        ..FtpSettings::default()
    };
    let login = Login::new(server.user.clone(), server.password.clone());
    let mut e = Endpoint::new(
        server.host.clone(),
        port,
        Protocol::Ftp(settings),
        REMOTE,
        login,
    );
    e.timeout = Duration::from_secs(20);
    e
}

/// The same server for the test's own direct `siteport-ftp` connections.
fn connect_options(server: &FtpServer, port: u16) -> ConnectOptions {
    let mut o = ConnectOptions::new(
        server.host.clone(),
        port,
        if server.tls {
            siteport_ftp::TlsMode::Explicit
        } else {
            siteport_ftp::TlsMode::None
        },
        server.user.clone(),
        server.password.clone(),
    );
    o.ca_file = server.ca_path();
    o.timeout = Duration::from_secs(20);
    o
}

fn factory(server: &FtpServer, port: u16) -> Arc<dyn RemoteFactory> {
    connect_factory(&endpoint(server, port))
}

fn sync_options(local: &Path) -> SyncOptions {
    let mut o = SyncOptions::new(local);
    o.delete = true;
    o.excludes = Excludes::new(EXCLUDES).unwrap();
    o.retry = RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(200),
    };
    o
}

/// path -> None for a dir, Some(BLAKE3 of the content) for a file; siteport's temporary
/// files and its deploy state dir (`.siteport`) left out. Hashes, not bytes, so a failing comparison prints something readable.
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
        if is_temp(&rel) || rel == ".siteport" || rel.starts_with(".siteport/") {
            continue;
        }
        if e.file_type().is_dir() {
            out.insert(rel, None);
        } else {
            out.insert(rel, Some(hash_file(e.path()).unwrap()));
        }
    }
    out
}

/// `hashes(local)` without what the excludes keep out.
fn expected(local: &Path) -> BTreeMap<String, Option<String>> {
    let ex = Excludes::new(EXCLUDES).unwrap();
    hashes(local)
        .into_iter()
        .filter(|(p, _)| !ex.is_excluded(p) && !ex.prunes_dir(p) && !p.starts_with("drafts/"))
        .collect()
}

fn diff(a: &BTreeMap<String, Option<String>>, b: &BTreeMap<String, Option<String>>) -> String {
    let mut out = String::new();
    for (k, v) in a {
        match b.get(k) {
            None => out.push_str(&format!("  only left: {k}\n")),
            Some(w) if w != v => out.push_str(&format!("  differs: {k}\n")),
            _ => {}
        }
    }
    for k in b.keys().filter(|k| !a.contains_key(*k)) {
        out.push_str(&format!("  only right: {k}\n"));
    }
    out
}

#[track_caller]
fn assert_same(label: &str, what: &str, a: &Path, b: &BTreeMap<String, Option<String>>) {
    let h = hashes(a);
    let d = diff(&h, b);
    assert!(d.is_empty(), "{label}: {what}: trees differ:\n{d}");
}

async fn run_dir(
    factory: Arc<dyn RemoteFactory>,
    opts: SyncOptions,
    journal: &Path,
    direction: Direction,
    label: &str,
) -> (Plan, Report) {
    let j = Journal::open(journal).unwrap();
    let mut e = Engine::new(factory, opts, j, Arc::new(NoProgress));
    let plan = e
        .plan(direction)
        .await
        .unwrap_or_else(|err| panic!("{label}: plan: {err}"));
    let report = e
        .execute(&plan)
        .await
        .unwrap_or_else(|err| panic!("{label}: execute: {err}"));
    e.finish().await.unwrap();
    assert!(
        report.is_success(),
        "{label}: {direction:?} failed: {:#?}",
        report.failures().collect::<Vec<_>>()
    );
    (plan, report)
}

fn uploaded_paths(r: &Report) -> Vec<&str> {
    r.outcomes
        .iter()
        .filter(|o| o.op == Op::Upload && !o.failed())
        .map(|o| o.path.as_str())
        .collect()
}

/// Edits `rel` in place keeping its size (first byte flipped).
fn flip_first_byte(local: &Path, rel: &str) {
    let p = local.join(rel);
    let mut v = std::fs::read(&p).unwrap();
    v[0] ^= 0xff;
    std::fs::write(&p, v).unwrap();
}

async fn acceptance(kind: ServerKind, tls: bool) {
    let started = Instant::now();
    let server = FtpServer::start(kind, tls);
    let label = server.label();
    let t = tempfile::tempdir().unwrap();
    let local = t.path().join("site");
    let paths = generate_tree(&local, spec_for(kind));
    // Excluded locally: never sent.
    write(&local, "notes.tmp", b"scratch");
    write(&local, "drafts/wip.html", b"not yet");
    let served = server.root().join(REMOTE.trim_start_matches('/'));
    let f = factory(&server, server.port);
    let journal = t.path().join("state/site.json");
    let so = sync_options(&local);
    let mut step = Instant::now();
    let mut lap = |what: &str| {
        eprintln!("{label}: {what}: {:?}", step.elapsed());
        step = Instant::now();
    };

    // 1. First export: everything but the excluded, byte-identical.
    let (_, r) = run_dir(f.clone(), so.clone(), &journal, Direction::Export, &label).await;
    assert_eq!(r.counts.uploaded, paths.len(), "{label}");
    assert_same(&label, "after export", &served, &expected(&local));
    assert!(!served.join("notes.tmp").exists() && !served.join("drafts").exists());
    // The journal holds each file's hash: small files hashed from memory, large ones while
    // they were streamed to the server. Both must equal a hash of the file itself.
    {
        let j = Journal::open(&journal).unwrap();
        let mut large = 0;
        for (rel, rec) in j.records() {
            let want = hash_file(&local.join(rel)).unwrap();
            assert_eq!(rec.hash, want, "{label}: journal hash of {rel}");
            if rec.size > 1024 * 1024 {
                large += 1;
            }
        }
        assert_eq!(j.records().len(), paths.len(), "{label}");
        assert!(large > 0, "{label}: no file large enough to be streamed");
    }
    lap("export");

    // Excluded on the server side: must survive a delete run.
    {
        let mut c = FtpConnection::connect(&connect_options(&server, server.port))
            .await
            .unwrap();
        let tmp = t.path().join("upload-me");
        std::fs::write(&tmp, b"server-only").unwrap();
        c.put_file(&tmp, &format!("{REMOTE}/keep.tmp"))
            .await
            .unwrap();
        c.mkdir(&format!("{REMOTE}/drafts")).await.unwrap();
        c.put_file(&tmp, &format!("{REMOTE}/drafts/remote.html"))
            .await
            .unwrap();
        c.quit().await.unwrap();
    }

    // 2. Nothing changed: nothing sent.
    let (plan, r) = run_dir(f.clone(), so.clone(), &journal, Direction::Export, &label).await;
    assert!(plan.is_noop(), "{label}: {plan}");
    assert_eq!(r.counts.uploaded, 0, "{label}");
    assert_eq!(r.counts.skipped, paths.len(), "{label}");
    lap("no-change export");

    // 3. Same-size edits: one with a fresh mtime, one with its mtime set far back (older than
    //    the remote copy: only the journal's hash can tell). Exactly those two go.
    flip_first_byte(&local, "with space.html");
    flip_first_byte(&local, "ünïcödé ñame.txt");
    set_mtime(&local.join("ünïcödé ñame.txt"), 1_000_000_000);
    let (_, r) = run_dir(f.clone(), so.clone(), &journal, Direction::Export, &label).await;
    let mut up = uploaded_paths(&r);
    up.sort();
    assert_eq!(up, ["with space.html", "ünïcödé ñame.txt"], "{label}");
    assert_same(&label, "after same-size edits", &served, &{
        let mut e = expected(&local);
        e.insert(
            "keep.tmp".into(),
            Some(hash_file(&served.join("keep.tmp")).unwrap()),
        );
        e.insert("drafts".into(), None);
        e.insert(
            "drafts/remote.html".into(),
            Some(hash_file(&served.join("drafts/remote.html")).unwrap()),
        );
        e
    });
    // An edit that restores size AND exact mtime is invisible without hashing: --checksum.
    let p = local.join("index.html");
    let t0 = std::fs::metadata(&p).unwrap().modified().unwrap();
    flip_first_byte(&local, "index.html");
    filetime::set_file_mtime(&p, filetime::FileTime::from_system_time(t0)).unwrap();
    let mut cs = so.clone();
    cs.checksum = true;
    let (_, r) = run_dir(f.clone(), cs, &journal, Direction::Export, &label).await;
    assert_eq!(uploaded_paths(&r), ["index.html"], "{label}");
    lap("edits");

    // 4. A local delete with delete = true: removed remotely; excluded files stay.
    std::fs::remove_file(local.join("#hash#.js")).unwrap();
    std::fs::remove_dir_all(local.join("-dash dir")).unwrap();
    let (_, r) = run_dir(f.clone(), so.clone(), &journal, Direction::Export, &label).await;
    assert_eq!(r.counts.uploaded, 0, "{label}");
    assert_eq!(r.counts.deleted, 2, "{label}: {:?}", r.outcomes);
    assert_eq!(r.counts.dirs_removed, 2, "{label}: {:?}", r.outcomes);
    assert!(!served.join("#hash#.js").exists(), "{label}");
    assert!(!served.join("-dash dir").exists(), "{label}");
    assert_eq!(
        std::fs::read(served.join("keep.tmp")).unwrap(),
        b"server-only"
    );
    assert!(served.join("drafts/remote.html").is_file(), "{label}");
    assert!(!served.join("notes.tmp").exists(), "{label}");
    lap("delete");

    // 5. Import into an empty directory: byte-identical to the source (excludes apply too).
    let back = t.path().join("back");
    let (_, r) = run_dir(
        f.clone(),
        sync_options(&back),
        &t.path().join("state/back.json"),
        Direction::Import,
        &label,
    )
    .await;
    assert_eq!(r.counts.downloaded, paths.len() - 2, "{label}");
    assert_same(&label, "after import", &back, &expected(&local));
    // And a second import changes nothing.
    let (plan, _) = run_dir(
        f.clone(),
        sync_options(&back),
        &t.path().join("state/back.json"),
        Direction::Import,
        &label,
    )
    .await;
    assert!(plan.is_noop(), "{label}: {plan}");
    lap("import");
    eprintln!("{label}: acceptance total {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acceptance_inprocess_plain() {
    acceptance(ServerKind::InProcess, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acceptance_inprocess_ftps() {
    acceptance(ServerKind::InProcess, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acceptance_vsftpd_plain() {
    acceptance(ServerKind::Vsftpd, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acceptance_vsftpd_ftps() {
    acceptance(ServerKind::Vsftpd, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acceptance_pureftpd_plain() {
    acceptance(ServerKind::PureFtpd, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acceptance_pureftpd_ftps() {
    acceptance(ServerKind::PureFtpd, true).await;
}

const CHILD_ENV: &str = "SITEPORT_MATRIX_CHILD";

/// Runs only when re-executed by [`kill_and_resume`] with `SITEPORT_MATRIX_CHILD` set: an
/// export from `CHILD_LOCAL` to the server at `CHILD_PORT`, journal `CHILD_JOURNAL`; the
/// password comes from the 0600 file `CHILD_PASSWORD_FILE` (never argv). Otherwise it has
/// nothing to do.
#[test]
fn export_child() {
    let Ok(role) = std::env::var(CHILD_ENV) else {
        return;
    };
    assert_eq!(role, "export");
    let var = |k: &str| std::env::var(k).unwrap();
    let password = std::fs::read_to_string(var("CHILD_PASSWORD_FILE")).unwrap();
    let mut o = Endpoint::new(
        "127.0.0.1",
        var("CHILD_PORT").parse().unwrap(),
        Protocol::Ftp(FtpSettings {
            tls: TlsMode::None,
            ..FtpSettings::default()
        }),
        REMOTE,
        Login::new(var("CHILD_USER"), SecretString::from(password)),
    );
    o.timeout = Duration::from_secs(20);
    let local = PathBuf::from(var("CHILD_LOCAL"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let f: Arc<dyn RemoteFactory> = connect_factory(&o);
        let j = Journal::open(Path::new(&var("CHILD_JOURNAL"))).unwrap();
        // Per file: this test watches files go live (and journaled) one by one and kills the
        // run midway; a burst switch is killed in crates/siteport/tests/burst_cli.rs.
        let mut so = sync_options(&local);
        so.switch = Switch::PerFile;
        let mut e = Engine::new(f, so, j, Arc::new(NoProgress));
        let r = e.run(Direction::Export).await.unwrap();
        eprintln!("child finished: {:?}", r.counts);
    });
}

fn journal_lines(log: &Path) -> usize {
    std::fs::read(log)
        .map(|b| b.iter().filter(|&&c| c == b'\n').count())
        .unwrap_or(0)
}

/// SIGKILLs an export running in a child process midway (while the large file is in flight
/// when possible), checks that no file on the server holds partial content under its final
/// name, then reruns: it completes and sends exactly the files that were not yet in place.
fn kill_and_resume(kind: ServerKind) {
    let server = FtpServer::start(kind, false);
    let label = format!("{} kill", server.label());
    let t = tempfile::tempdir().unwrap();
    let local = t.path().join("site");
    let spec = spec_for(kind);
    let paths = generate_tree(&local, spec);
    let pw_file = t.path().join("password");
    {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&pw_file)
            .unwrap();
        f.write_all(server.password.expose_secret().as_bytes())
            .unwrap();
    }
    let journal = t.path().join("state/site.json");
    let log = t.path().join("state/site.json.log");
    let served = server.root().join(REMOTE.trim_start_matches('/'));
    let child_err = t.path().join("child.stderr");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "export_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "export")
        .env("CHILD_PORT", server.port.to_string())
        .env("CHILD_USER", &server.user)
        .env("CHILD_PASSWORD_FILE", &pw_file)
        .env("CHILD_LOCAL", &local)
        .env("CHILD_JOURNAL", &journal)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&child_err).unwrap())
        .spawn()
        .unwrap();
    let big_partial_len = || {
        std::fs::read_dir(served.join("media"))
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok())
            .filter(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.starts_with(".big video.bin.") && n.ends_with(".siteport-tmp")
            })
            .filter_map(|e| e.metadata().ok().map(|m| m.len()))
            .max()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let saw_big_partial = loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "{label}: the export ended ({status}) before it could be killed:\n{}",
                std::fs::read_to_string(&child_err).unwrap_or_default()
            );
        }
        assert!(Instant::now() < deadline, "{label}: no progress in 60 s");
        let done = journal_lines(&log);
        let big_partial = big_partial_len().is_some_and(|n| n > 0 && n < spec.big as u64);
        if (done >= 20 && big_partial) || done >= paths.len() / 3 {
            break big_partial;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // The server may still be finishing commands the child had already sent.
    std::thread::sleep(Duration::from_millis(300));

    // Nothing half-written under a final name: every file there is the source's bytes.
    let want = hashes(&local);
    let mut present = 0usize;
    let mut temps = 0usize;
    for e in walkdir::WalkDir::new(&served).min_depth(1) {
        let e = e.unwrap();
        if !e.file_type().is_file() {
            continue;
        }
        let rel = e
            .path()
            .strip_prefix(&served)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if is_temp(&rel) {
            temps += 1;
            continue;
        }
        if rel.starts_with(".siteport/") {
            continue;
        }
        present += 1;
        assert_eq!(
            want.get(&rel),
            Some(&Some(hash_file(e.path()).unwrap())),
            "{label}: {rel} on the server is not the source's content"
        );
    }
    let journaled = Journal::open(&journal).unwrap().records().len();
    eprintln!(
        "{label}: killed with {journaled} journaled, {present} in place, {temps} temp files, \
         large file in flight: {saw_big_partial}"
    );
    assert!(journaled > 0 && journaled < paths.len(), "{label}");
    assert!(
        journaled <= present,
        "{label}: journaled files must be in place"
    );
    assert!(present < paths.len(), "{label}: the kill came too late");

    // The rerun completes and sends only what was left, without waiting on anything the
    // killed run left behind (vsftpd keeps a dead client's upload lock for 60 s).
    let rerun_started = Instant::now();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (_, r) = rt.block_on(run_dir(
        factory(&server, server.port),
        sync_options(&local),
        &journal,
        Direction::Export,
        &label,
    ));
    let rerun = rerun_started.elapsed();
    assert!(
        rerun < Duration::from_secs(20),
        "{label}: the rerun took {rerun:?}: it waited on the killed run's leftovers"
    );
    // A file renamed into place just before the kill, but neither journaled nor in the
    // deploy state yet, cannot be proven equal (no record, no server hash): sent again.
    assert!(
        r.counts.uploaded >= paths.len() - present,
        "{label}: {} sent",
        r.counts.uploaded
    );
    assert!(r.counts.uploaded <= paths.len() - journaled, "{label}");
    assert_same(&label, "after the rerun", &served, &expected(&local));
    let left: Vec<_> = walkdir::WalkDir::new(&served)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| is_temp(&e.file_name().to_string_lossy()))
        .map(|e| e.path().display().to_string())
        .collect();
    assert!(left.is_empty(), "{label}: temporary files left: {left:?}");
}

#[test]
fn kill_and_resume_vsftpd() {
    kill_and_resume(ServerKind::Vsftpd);
}

#[test]
fn kill_and_resume_inprocess() {
    kill_and_resume(ServerKind::InProcess);
}

/// Export and import through a proxy that cuts 30 % of the control connections at a random
/// point of the conversation: retries and reconnects carry both runs to a byte-identical end,
/// in bounded time.
async fn through_faulty_proxy(kind: ServerKind, tls: bool, seed: u64) {
    let started = Instant::now();
    let server = FtpServer::start(kind, tls);
    let label = format!("{} faulty", server.label());
    let proxy = FaultyProxy::start(server.addr(), 0.3, seed);
    let t = tempfile::tempdir().unwrap();
    let local = t.path().join("site");
    let paths = generate_tree(
        &local,
        SiteSpec {
            files: 200,
            big: 2 * 1024 * 1024,
        },
    );
    let served = server.root().join(REMOTE.trim_start_matches('/'));
    let f = factory(&server, proxy.port());
    let mut so = sync_options(&local);
    // A cut connection costs one try; ten tries make a run's failure vanishingly unlikely.
    so.retry.max_attempts = 10;
    let deadline = Duration::from_secs(120);

    let journal = t.path().join("state/site.json");
    let (_, r) = tokio::time::timeout(
        deadline,
        run_dir(f.clone(), so.clone(), &journal, Direction::Export, &label),
    )
    .await
    .unwrap_or_else(|_| panic!("{label}: export did not finish in {deadline:?}"));
    assert_eq!(r.counts.uploaded, paths.len(), "{label}");
    assert_same(&label, "after export", &served, &expected(&local));

    let back = t.path().join("back");
    let mut bo = sync_options(&back);
    bo.retry.max_attempts = 10;
    let (_, r) = tokio::time::timeout(
        deadline,
        run_dir(
            f,
            bo,
            &t.path().join("state/back.json"),
            Direction::Import,
            &label,
        ),
    )
    .await
    .unwrap_or_else(|_| panic!("{label}: import did not finish in {deadline:?}"));
    assert_eq!(r.counts.downloaded, paths.len(), "{label}");
    assert_same(&label, "after import", &back, &expected(&local));
    assert!(
        proxy.cut() > 0,
        "{label}: the proxy cut nothing ({} connections)",
        proxy.connections()
    );
    eprintln!(
        "{label}: {} of {} connections cut; {:?}",
        proxy.cut(),
        proxy.connections(),
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faulty_network_inprocess_plain() {
    through_faulty_proxy(ServerKind::InProcess, false, 7).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faulty_network_vsftpd_ftps() {
    through_faulty_proxy(ServerKind::Vsftpd, true, 11).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faulty_network_pureftpd_plain() {
    through_faulty_proxy(ServerKind::PureFtpd, false, 5).await;
}

/// A vsftpd whose sessions are SIGKILLed at random, one every 0.2 to 0.7 s, while an export
/// of 2,000 files runs on four connections (the listener stays up, as on a loaded host whose
/// sessions die):
/// with the default retry policy every file arrives, nothing fails, and the served tree is
/// the local tree. Then an import back, under the same killing, is identical too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vsftpd_sessions_killed_at_random() {
    let server = FtpServer::start(ServerKind::Vsftpd, false);
    let label = server.label();
    let t = tempfile::tempdir().unwrap();
    let local = t.path().join("site");
    let paths = generate_tree(
        &local,
        SiteSpec {
            files: 2000,
            big: 8 * 1024 * 1024,
        },
    );
    let served = server.root().join(REMOTE.trim_start_matches('/'));
    let server = Arc::new(server);
    let killer = |server: Arc<FtpServer>, stop: Arc<std::sync::atomic::AtomicBool>| {
        std::thread::spawn(move || {
            use std::sync::atomic::Ordering;
            // A small xorshift: a different rhythm each kill, the same each run.
            let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
            let mut kills = 0;
            // The first soon after the start: an export whose connections all log in at
            // once can be well on its way before 0.2 s.
            let mut pause = Duration::from_millis(100);
            while !stop.load(Ordering::SeqCst) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                std::thread::sleep(pause);
                pause = Duration::from_millis(200 + x % 500);
                if !stop.load(Ordering::SeqCst) && server.kill_one_session(x >> 32) > 0 {
                    kills += 1;
                }
            }
            kills
        })
    };
    let f = factory(&server, server.port);
    let mut so = sync_options(&local);
    so.retry = RetryPolicy::default();
    so.max_connections = 4;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let k = killer(server.clone(), stop.clone());
    let deadline = Duration::from_secs(300);
    let journal = t.path().join("state/site.json");
    let out = tokio::time::timeout(
        deadline,
        run_dir(f.clone(), so, &journal, Direction::Export, &label),
    )
    .await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let kills = k.join().unwrap();
    let (_, r) = out.unwrap_or_else(|_| panic!("{label}: export did not finish in {deadline:?}"));
    let failed: Vec<_> = r.outcomes.iter().filter(|o| o.failed()).collect();
    assert!(
        failed.is_empty(),
        "{label}: failed after {kills} kills: {failed:?}"
    );
    assert_eq!(r.counts.uploaded, paths.len(), "{label}");
    assert!(kills > 0, "{label}: no session was killed");
    assert_same(&label, "after export", &served, &expected(&local));

    let back = t.path().join("back");
    let mut bo = sync_options(&back);
    bo.retry = RetryPolicy::default();
    bo.max_connections = 4;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let k = killer(server.clone(), stop.clone());
    let out = tokio::time::timeout(
        deadline,
        run_dir(
            f,
            bo,
            &t.path().join("state/back.json"),
            Direction::Import,
            &label,
        ),
    )
    .await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let kills = k.join().unwrap();
    let (_, r) = out.unwrap_or_else(|_| panic!("{label}: import did not finish in {deadline:?}"));
    let failed: Vec<_> = r.outcomes.iter().filter(|o| o.failed()).collect();
    assert!(
        failed.is_empty(),
        "{label}: import failed after {kills} kills: {failed:?}"
    );
    assert_same(&label, "after import", &back, &expected(&local));
}

/// The harsh version of `vsftpd_sessions_killed_at_random`: every session, logins under way
/// included, is SIGKILLed every 0.1 s for the first 3 s of an export of 500 files on 4
/// connections. A login the server accepted and then cut is not the file's fault: it must not
/// spend the file's tries, nor end the run once the pool is down to its last worker (that
/// used to stop the run with a network error). The export converges to the local tree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vsftpd_every_session_killed_repeatedly() {
    let server = FtpServer::start(ServerKind::Vsftpd, false);
    let label = server.label();
    let t = tempfile::tempdir().unwrap();
    let local = t.path().join("site");
    let paths = generate_tree(
        &local,
        SiteSpec {
            files: 500,
            big: 256 * 1024,
        },
    );
    let served = server.root().join(REMOTE.trim_start_matches('/'));
    let server = Arc::new(server);
    let f = factory(&server, server.port);
    let mut so = sync_options(&local);
    so.retry = RetryPolicy::default();
    so.max_connections = 4;
    let j = Journal::open(&t.path().join("state/site.json")).unwrap();
    let mut e = Engine::new(f, so, j, Arc::new(NoProgress));
    let plan = e.plan(Direction::Export).await.unwrap();
    // From the first upload on: every session dies every 0.1 s, for 3 s.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let killer = {
        let (server, stop) = (server.clone(), stop.clone());
        std::thread::spawn(move || {
            use std::sync::atomic::Ordering;
            let until = Instant::now() + Duration::from_secs(3);
            let mut kills = 0;
            while !stop.load(Ordering::SeqCst) && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(100));
                kills += server.kill_all_sessions();
            }
            kills
        })
    };
    let deadline = Duration::from_secs(60);
    let out = tokio::time::timeout(deadline, e.execute(&plan)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let kills = killer.join().unwrap();
    let r = out
        .unwrap_or_else(|_| panic!("{label}: export did not finish in {deadline:?}"))
        .unwrap_or_else(|err| panic!("{label}: the run stopped after {kills} kills: {err}"));
    let _ = e.finish().await;
    let failed: Vec<_> = r.outcomes.iter().filter(|o| o.failed()).collect();
    assert!(
        failed.is_empty(),
        "{label}: {} failed after {kills} kills: {failed:#?}",
        failed.len()
    );
    assert!(kills > 0, "{label}: no session was killed");
    assert_eq!(r.counts.uploaded, paths.len(), "{label}");
    assert_same(&label, "after export", &served, &expected(&local));
}

/// Import from a server whose listings carry `../escape`, `a/b`, `back\slash` and a
/// `../../outside-dir` directory in every directory: nothing is written outside the local
/// root, each hostile entry is reported, and the real files are imported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_from_hostile_listing() {
    let t = tempfile::tempdir().unwrap();
    let served = t.path().join("served");
    write(&served, "site/index.html", b"<h1>hi</h1>");
    write(&served, "site/sub dir/page.html", b"page");
    write(&served, "site/sub dir/deeper/x.css", b"x");
    let server = HostileServer::start(&served);
    // The local root sits three levels down in a directory of its own, so that anything
    // escaping it (`..`, `../..`) lands where this test looks.
    let outer = t.path().join("outer");
    let local = outer.join("one/two/site");
    let o = Endpoint::new(
        "127.0.0.1",
        server.port(),
        Protocol::Ftp(FtpSettings {
            tls: TlsMode::None,
            ..FtpSettings::default()
        }),
        REMOTE,
        Login::new(
            "anonymous",
            SecretString::from("guest@example.invalid".to_string()),
        ),
    );
    let f: Arc<dyn RemoteFactory> = connect_factory(&o);
    let j = Journal::open(&t.path().join("state/j.json")).unwrap();
    let mut e = Engine::new(f, sync_options(&local), j, Arc::new(NoProgress));
    let plan = e.plan(Direction::Import).await.unwrap();
    let r = e.execute(&plan).await.unwrap();
    e.finish().await.unwrap();

    // The real files, and only them.
    assert_eq!(r.counts.downloaded, 3, "{:?}", r.outcomes);
    let mut want = BTreeMap::new();
    for (p, c) in [
        ("index.html", &b"<h1>hi</h1>"[..]),
        ("sub dir/page.html", b"page"),
        ("sub dir/deeper/x.css", b"x"),
    ] {
        want.insert(p.to_string(), Some(c.to_vec()));
    }
    want.insert("sub dir".into(), None);
    want.insert("sub dir/deeper".into(), None);
    assert_eq!(snapshot(&local), want);
    // Nothing anywhere outside the local root.
    let outside: Vec<_> = walkdir::WalkDir::new(&outer)
        .into_iter()
        .filter_map(|e| e.ok())
        .map(|e| e.path().to_path_buf())
        .filter(|p| !p.starts_with(&local) && !local.starts_with(p))
        .collect();
    assert!(outside.is_empty(), "written outside the root: {outside:?}");
    // Every hostile entry of every directory (3 listed) is reported as an unsafe name.
    let unsafe_paths: Vec<&str> = r
        .problems
        .iter()
        .filter(|p| p.kind == ProblemKind::UnsafeName)
        .map(|p| p.path.as_str())
        .collect();
    assert_eq!(
        unsafe_paths.len(),
        3 * HOSTILE_NAMES.len(),
        "{:#?}",
        r.problems
    );
    for n in HOSTILE_NAMES {
        let shown = n.escape_debug().to_string();
        for dir in ["", "sub dir/", "sub dir/deeper/"] {
            let want = format!("{dir}{shown}");
            assert!(
                unsafe_paths.contains(&want.as_str()),
                "{want} not reported: {unsafe_paths:?}"
            );
        }
    }
    assert!(r.is_success(), "{:?}", r.failures().collect::<Vec<_>>());
}

/// libunftp swaps its command decoder for a TLS acceptor only after it sent `234` to
/// `AUTH TLS`; a ClientHello read by the decoder meanwhile was lost and the handshake failed
/// (`InvalidContentType`). siteport-ftpd's control shim closes that race: 120 explicit-TLS
/// logins, 8 at a time while both cores are busy, must all succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inprocess_auth_tls_race_is_closed() {
    let server = FtpServer::start(ServerKind::InProcess, true);
    let o = connect_options(&server, server.port);
    let mut failures = Vec::new();
    for _round in 0..15 {
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let o = o.clone();
                tokio::spawn(async move {
                    let mut c = FtpConnection::connect(&o).await?;
                    c.list_dir("/").await?;
                    c.quit().await
                })
            })
            .collect();
        for t in tasks {
            if let Err(e) = t.await.unwrap() {
                failures.push(e.to_string());
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of 120 failed: {failures:?}",
        failures.len()
    );
}
