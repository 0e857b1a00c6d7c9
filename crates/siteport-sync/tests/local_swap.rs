//! Issue 18, defect 1: a site file swapped after the scan (for a link to a file outside the
//! root, a directory on the way swapped for a link, or another regular file put under the
//! name) is never read: its bytes never reach the server, it is reported failed, the run
//! fails (the CLI's exit 5). Against the in-process server, vsftpd and OpenSSH's sshd, small
//! and large files, one connection and four. The swap happens between `plan` (the scan) and `execute`, which
//! is exactly the window an attacker has in a real run.
//!
//! The links planted here are only ever created, renamed or removed by the test, never
//! written through (the tests run as root).

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use siteport_sync::*;
use siteport_testsupport::{FtpServer, ServerKind, SshServer};

const REMOTE: &str = "/site";
/// Larger than the engine's in-memory limit (1 MiB): streamed by the transport.
const LARGE: usize = 3 * 1024 * 1024 / 2;
const MARK: &[u8] = b"CANARY-0600-do-not-publish;";

fn endpoint(server: &FtpServer) -> Endpoint {
    let mut e = Endpoint::new(
        server.host.clone(),
        server.port,
        Protocol::Ftp(FtpSettings {
            tls: TlsMode::None,
            ..FtpSettings::default()
        }),
        REMOTE,
        Login::new(server.user.clone(), server.password.clone()),
    );
    e.timeout = Duration::from_secs(20);
    e
}

/// `len` bytes of the canary mark, repeated.
fn canary_bytes(len: usize) -> Vec<u8> {
    MARK.iter().copied().cycle().take(len).collect()
}

/// A private (0600) file outside the site, like `/etc/shadow`.
fn canary(path: &Path, len: usize) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, canary_bytes(len)).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// Every served file that holds the canary mark.
fn leaked(served: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for (rel, data) in snapshot(served) {
        if let Some(d) = data
            && d.windows(MARK.len()).any(|w| w == MARK)
        {
            out.push(rel);
        }
    }
    out
}

/// The site: `n` small pages, one large file, a page in a subdirectory.
fn make_site(root: &Path, n: usize) {
    for i in 0..n {
        write(
            root,
            &format!("p{i:02}.html"),
            format!("page {i}").as_bytes(),
        );
    }
    write(root, "big.bin", &file_content(7, LARGE));
    write(root, "sub/page.html", b"sub page");
    write(root, "swap.html", b"the scanned one");
}

/// Between scan and upload: small and large files become links to canaries outside the
/// root, the directory `sub` becomes a link to a directory outside holding a canary under
/// the same name, and `swap.html` is replaced by another regular file. Returns the paths
/// that must fail.
fn swap(root: &Path, outside: &Path, small_victims: &[String]) -> BTreeSet<String> {
    use std::os::unix::fs::symlink;
    let small = outside.join("small-canary");
    let large = outside.join("large-canary");
    canary(&small, 4096);
    canary(&large, 2 * LARGE);
    std::fs::create_dir_all(outside.join("dir")).unwrap();
    canary(&outside.join("dir/page.html"), 64);
    let mut failing = BTreeSet::new();
    for v in small_victims {
        std::fs::remove_file(root.join(v)).unwrap();
        symlink(&small, root.join(v)).unwrap();
        failing.insert(v.clone());
    }
    std::fs::remove_file(root.join("big.bin")).unwrap();
    symlink(&large, root.join("big.bin")).unwrap();
    failing.insert("big.bin".to_string());
    std::fs::rename(root.join("sub"), outside.join("old-sub")).unwrap();
    symlink(outside.join("dir"), root.join("sub")).unwrap();
    failing.insert("sub/page.html".to_string());
    // Another regular file, a new inode, put in place by rename (as editors and build steps
    // do): not the file the plan was made from.
    std::fs::write(root.join("swap.new"), b"not the scanned one").unwrap();
    std::fs::rename(root.join("swap.new"), root.join("swap.html")).unwrap();
    failing.insert("swap.html".to_string());
    failing
}

async fn over_ftp(kind: ServerKind, conns: usize) {
    let server = FtpServer::start(kind, false);
    let served = server.root().join(REMOTE.trim_start_matches('/'));
    let f = connect_factory(&endpoint(&server));
    swapped_between_scan_and_upload(f, &served, &server.label(), conns).await;
}

async fn over_sftp(conns: usize) {
    let s = SshServer::start();
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
    swapped_between_scan_and_upload(connect_factory(&e), &s.root(), "sshd", conns).await;
}

async fn swapped_between_scan_and_upload(
    factory: Arc<dyn RemoteFactory>,
    served: &Path,
    server: &str,
    conns: usize,
) {
    let label = format!("{server} x{conns}");
    let t = tempfile::tempdir().unwrap();
    let (local, outside) = (t.path().join("site"), t.path().join("outside"));
    std::fs::create_dir_all(&outside).unwrap();
    let n = if conns > 1 { 24 } else { 4 };
    make_site(&local, n);
    let mut so = SyncOptions::new(&local);
    so.max_connections = conns;
    so.retry = fast_retry();
    let mut e = Engine::new(
        factory,
        so,
        Journal::open(&t.path().join("j.json")).unwrap(),
        Arc::new(NoProgress),
    );
    let plan = e.plan(Direction::Export).await.unwrap();
    assert_eq!(
        plan.actions.iter().filter(|a| a.op == Op::Upload).count(),
        n + 3,
        "{label}: {plan}"
    );
    // Every fourth page: with four connections, victims sit between files that go.
    let victims: Vec<String> = (0..n).step_by(4).map(|i| format!("p{i:02}.html")).collect();
    let failing = swap(&local, &outside, &victims);
    let r = e.execute(&plan).await.unwrap();
    e.finish().await.unwrap();

    assert_eq!(
        leaked(served),
        Vec::<String>::new(),
        "{label}: canary published"
    );
    let failed: BTreeSet<String> = r.failures().map(|o| o.path.clone()).collect();
    assert_eq!(failed, failing, "{label}: {:?}", r.outcomes);
    assert!(!r.is_success(), "{label}: the run must fail (exit 5)");
    assert_eq!(r.counts.failed, failing.len(), "{label}");
    for f in &failing {
        assert!(!served.join(f).exists(), "{label}: {f} reached the server");
    }
    // What was not touched went as usual.
    assert_eq!(r.counts.uploaded, n + 3 - failing.len(), "{label}");
    assert_eq!(
        std::fs::read(served.join("p01.html")).unwrap(),
        b"page 1",
        "{label}"
    );
    // The links themselves are still links: nothing wrote through them.
    assert!(local.join("big.bin").is_symlink() && local.join("sub").is_symlink());
    assert_eq!(
        std::fs::read(outside.join("large-canary")).unwrap(),
        canary_bytes(2 * LARGE)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_one_connection() {
    over_ftp(ServerKind::InProcess, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_four_connections() {
    over_ftp(ServerKind::InProcess, 4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vsftpd_one_connection() {
    over_ftp(ServerKind::Vsftpd, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vsftpd_four_connections() {
    over_ftp(ServerKind::Vsftpd, 4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sshd_one_connection() {
    over_sftp(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sshd_four_connections() {
    over_sftp(4).await;
}

/// A link to a file inside the root is still mirrored as that file (read from its target,
/// by the target's own name, without following the link); the target swapped for a link out
/// of the root after the scan is refused like any other file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_inside_root_is_read_from_its_target() {
    use std::os::unix::fs::symlink;
    let server = FtpServer::start(ServerKind::InProcess, false);
    let t = tempfile::tempdir().unwrap();
    let local = t.path().join("site");
    write(&local, "real/target.html", b"target");
    symlink("real/target.html", local.join("alias.html")).unwrap();
    let served = server.root().join(REMOTE.trim_start_matches('/'));
    let f = connect_factory(&endpoint(&server));
    let (_, r) = run(
        f.clone(),
        SyncOptions::new(&local),
        &t.path().join("j.json"),
        Direction::Export,
    )
    .await;
    assert!(r.is_success(), "{:?}", r.outcomes);
    assert_eq!(std::fs::read(served.join("alias.html")).unwrap(), b"target");

    write(&local, "real/target.html", b"target, edited");
    let mut e = Engine::new(
        f,
        SyncOptions::new(&local),
        Journal::in_memory(),
        Arc::new(NoProgress),
    );
    let plan = e.plan(Direction::Export).await.unwrap();
    canary(&t.path().join("canary"), 100);
    std::fs::rename(local.join("real"), t.path().join("real-away")).unwrap();
    std::fs::create_dir(local.join("real")).unwrap();
    symlink(t.path().join("canary"), local.join("real/target.html")).unwrap();
    let r = e.execute(&plan).await.unwrap();
    assert_eq!(leaked(&served), Vec::<String>::new());
    let failed: BTreeSet<&str> = r.failures().map(|o| o.path.as_str()).collect();
    assert_eq!(
        failed,
        BTreeSet::from(["alias.html", "real/target.html"]),
        "{:?}",
        r.outcomes
    );
}

/// Import writes the same way: a directory of the local tree swapped for a link out of the
/// root after the plan is not written through (the download into it fails and is reported),
/// and the rest lands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_never_writes_through_a_directory_swapped_for_a_link() {
    use std::os::unix::fs::symlink;
    let server = FtpServer::start(ServerKind::InProcess, false);
    let t = tempfile::tempdir().unwrap();
    let served = server.root().join(REMOTE.trim_start_matches('/'));
    write(&served, "top.html", b"top");
    write(&served, "sub/page.html", b"sub page");
    write(&served, "big/large.bin", &file_content(3, LARGE));
    let local = t.path().join("site");
    std::fs::create_dir_all(local.join("sub")).unwrap();
    std::fs::create_dir_all(local.join("big")).unwrap();
    let outside = t.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let mut e = Engine::new(
        connect_factory(&endpoint(&server)),
        SyncOptions::new(&local),
        Journal::in_memory(),
        Arc::new(NoProgress),
    );
    let plan = e.plan(Direction::Import).await.unwrap();
    for d in ["sub", "big"] {
        std::fs::remove_dir(local.join(d)).unwrap();
        symlink(&outside, local.join(d)).unwrap();
    }
    let r = e.execute(&plan).await.unwrap();
    let failed: BTreeSet<&str> = r.failures().map(|o| o.path.as_str()).collect();
    assert_eq!(
        failed,
        BTreeSet::from(["big/large.bin", "sub/page.html"]),
        "{:?}",
        r.outcomes
    );
    assert!(
        r.failures().all(|o| matches!(
            o.status,
            Status::Failed {
                kind: ErrorKind::UnsafeName,
                ..
            }
        )),
        "{:?}",
        r.outcomes
    );
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
    assert_eq!(std::fs::read(local.join("top.html")).unwrap(), b"top");
}
