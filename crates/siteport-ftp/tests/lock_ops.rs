//! The pipelined operations of a run's fixed steps against every real server that pipelines
//! (vsftpd and pure-ftpd plain and over explicit FTPS, proftpd plain), and the in-process
//! server (which does not pipeline) for the one-at-a-time path:
//! - `mkdirs`: a chain of directories (some there already) in one write, the passive port
//!   armed behind it; a chain under a file fails; the connection stays in step;
//! - `put_atomic_bytes` with its rename sent behind the upload: the file lands whole under
//!   its final name, no temp is left; an upload the server refuses renames nothing, a rename
//!   the server refuses leaves no temp, and the connection stays in step;
//! - `delete_then_rmdir`: the owner file and its directory gone; a directory that is not
//!   empty stays and says so; a missing file does not stop the directory's removal.

mod common;

use std::path::Path;

use secrecy::SecretString;
use siteport_ftp::{ConnectOptions, FtpConnection, FtpErrorKind};
use siteport_testsupport::{FtpServer, ProFtpd, ServerKind};

struct Target {
    host: String,
    port: u16,
    user: String,
    password: SecretString,
    tls: bool,
    ca: Option<std::path::PathBuf>,
    label: String,
    pipelines: bool,
}

fn options(t: &Target) -> ConnectOptions {
    common::options(&t.host, t.port, t.tls, &t.user, &t.password, t.ca.clone())
}

fn target(s: &FtpServer) -> Target {
    Target {
        host: s.host.clone(),
        port: s.port,
        user: s.user.clone(),
        password: s.password.clone(),
        tls: s.tls,
        ca: s.ca_path(),
        label: s.label(),
        pipelines: s.kind != ServerKind::InProcess,
    }
}

fn temps(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".siteport-tmp"))
        .collect()
}

async fn ops(t: &Target, root: &Path) {
    let label = &t.label;
    let mut c = FtpConnection::connect(&options(t)).await.unwrap();
    assert_eq!(c.pipelines(), t.pipelines, "{label}");

    // mkdirs: the root (there already), a new chain, then the same chain again.
    let chain = ["/", "/site", "/site/.siteport", "/site/.siteport/lock"];
    c.mkdirs(&chain)
        .await
        .unwrap_or_else(|e| panic!("{label}: {e}"));
    assert!(root.join("site/.siteport/lock").is_dir(), "{label}");
    c.mkdirs(&chain)
        .await
        .unwrap_or_else(|e| panic!("{label}: again: {e}"));
    // A chain through a file fails, and every reply of it was read: still in step.
    c.put_bytes(b"x", "/site/plain").await.unwrap();
    let e = c
        .mkdirs(&["/site/plain/below", "/site/plain/below/more"])
        .await
        .expect_err("a directory made under a file");
    assert!(e.to_string().contains("MKD"), "{label}: {e}");
    c.noop().await.unwrap_or_else(|e| panic!("{label}: {e}"));

    // The atomic upload with its rename riding behind it.
    let owner = "/site/.siteport/lock/owner.json";
    c.put_atomic_bytes(b"{\"token\":\"one\"}", owner, None)
        .await
        .unwrap_or_else(|e| panic!("{label}: {e}"));
    let lock = root.join("site/.siteport/lock");
    assert_eq!(
        std::fs::read(lock.join("owner.json")).unwrap(),
        b"{\"token\":\"one\"}",
        "{label}"
    );
    assert_eq!(temps(&lock), Vec::<String>::new(), "{label}");
    // Replacing, several times on one connection (the deploy state's saves).
    for i in 0..3 {
        let body = format!("{{\"token\":\"v{i}\"}}");
        c.put_atomic_bytes(body.as_bytes(), owner, None)
            .await
            .unwrap_or_else(|e| panic!("{label}: {i}: {e}"));
        assert_eq!(
            std::fs::read_to_string(lock.join("owner.json")).unwrap(),
            body,
            "{label}"
        );
    }
    // A larger one (streamed, not sent eagerly).
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    c.put_atomic_bytes(&big, "/site/.siteport/state.json", None)
        .await
        .unwrap_or_else(|e| panic!("{label}: big: {e}"));
    assert_eq!(
        std::fs::read(root.join("site/.siteport/state.json")).unwrap(),
        big,
        "{label}"
    );
    assert_eq!(temps(&root.join("site/.siteport")), Vec::<String>::new());

    // A refused upload renames nothing: into a directory that does not exist.
    let e = c
        .put_atomic_bytes(b"new", "/site/missing-dir/file", None)
        .await
        .expect_err("an upload into a missing directory");
    assert!(
        matches!(e.kind(), FtpErrorKind::NotFound | FtpErrorKind::Permission),
        "{label}: {e}"
    );
    c.noop().await.unwrap_or_else(|e| panic!("{label}: {e}"));
    // A rename the server refuses (the final name is a directory that is not empty).
    std::fs::create_dir_all(root.join("site/adir/sub")).unwrap();
    let before = std::fs::read_dir(root.join("site")).unwrap().count();
    let r = c.put_atomic_bytes(b"over a dir", "/site/adir", None).await;
    assert!(r.is_err(), "{label}: a file renamed over a directory");
    assert!(root.join("site/adir/sub").is_dir(), "{label}");
    c.noop().await.unwrap_or_else(|e| panic!("{label}: {e}"));
    // Its temp is cleaned up after the refused rename.
    assert_eq!(
        std::fs::read_dir(root.join("site")).unwrap().count(),
        before,
        "{label}: {:?}",
        temps(&root.join("site"))
    );

    // delete_then_rmdir: a directory that is not empty stays, and says so.
    std::fs::write(lock.join("other"), b"x").unwrap();
    let (dele, rmd) = c
        .delete_then_rmdir(owner, "/site/.siteport/lock")
        .await
        .unwrap_or_else(|e| panic!("{label}: {e}"));
    dele.unwrap_or_else(|e| panic!("{label}: {e}"));
    assert!(rmd.is_err(), "{label}: a full directory removed");
    assert!(lock.is_dir(), "{label}");
    std::fs::remove_file(lock.join("other")).unwrap();
    // The owner file already gone: the directory still goes.
    let (dele, rmd) = c
        .delete_then_rmdir(owner, "/site/.siteport/lock")
        .await
        .unwrap_or_else(|e| panic!("{label}: {e}"));
    assert!(dele.is_err(), "{label}: a missing file deleted");
    rmd.unwrap_or_else(|e| panic!("{label}: {e}"));
    assert!(!lock.exists(), "{label}");
    // And the ordinary case: both there.
    c.mkdirs(&["/site/.siteport/lock"]).await.unwrap();
    c.put_atomic_bytes(b"{}", owner, None).await.unwrap();
    let (dele, rmd) = c
        .delete_then_rmdir(owner, "/site/.siteport/lock")
        .await
        .unwrap_or_else(|e| panic!("{label}: {e}"));
    dele.unwrap_or_else(|e| panic!("{label}: {e}"));
    rmd.unwrap_or_else(|e| panic!("{label}: {e}"));
    assert!(!lock.exists(), "{label}");

    // Still in step, still pipelining.
    assert_eq!(c.pipelines(), t.pipelines, "{label}");
    assert_eq!(
        c.list_dir("/site/.siteport").await.unwrap().len(),
        1,
        "{label}"
    );
    c.quit().await.unwrap();
}

async fn on(kind: ServerKind, tls: bool) {
    let server = FtpServer::start(kind, tls);
    ops(&target(&server), server.root()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inprocess_plain() {
    on(ServerKind::InProcess, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vsftpd_plain() {
    on(ServerKind::Vsftpd, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vsftpd_explicit_tls() {
    on(ServerKind::Vsftpd, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pureftpd_plain() {
    on(ServerKind::PureFtpd, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pureftpd_explicit_tls() {
    on(ServerKind::PureFtpd, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proftpd_plain() {
    let server = ProFtpd::start();
    let t = Target {
        host: server.host.clone(),
        port: server.port,
        user: server.user.clone(),
        password: server.password.clone(),
        tls: false,
        ca: None,
        label: "proftpd".to_string(),
        pipelines: true,
    };
    ops(&t, server.root()).await;
}
