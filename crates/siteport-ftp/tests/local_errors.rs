//! A transfer's local side failing is [`FtpErrorKind::LocalIo`], whatever the message says:
//! the local file cannot be opened, cannot be read in the middle of an upload (plain: read on
//! the sending task; TLS: read ahead on the blocking pool), or cannot be created for a
//! download. The connection stays usable after each.

use std::time::Duration;

use siteport_ftp::{ConnectOptions, FtpConnection, FtpErrorKind, TlsMode};
use siteport_testsupport::{FtpServer, ServerKind};

fn options(server: &FtpServer) -> ConnectOptions {
    let tls = if server.tls {
        TlsMode::Explicit
    } else {
        TlsMode::None
    };
    let mut o = ConnectOptions::new(
        server.host.clone(),
        server.port,
        tls,
        server.user.clone(),
        server.password.clone(),
    );
    o.ca_file = server.ca_path();
    o.timeout = Duration::from_secs(15);
    o
}

async fn local_failures_are_local_io(tls: bool) {
    let server = FtpServer::start(ServerKind::InProcess, tls);
    let label = server.label();
    let local = tempfile::tempdir().unwrap();
    let mut c = FtpConnection::connect(&options(&server))
        .await
        .unwrap_or_else(|e| panic!("{label}: connect: {e}"));
    std::fs::write(server.root().join("there.txt"), b"remote").unwrap();

    let missing = local.path().join("missing.txt");
    let unreadable = local.path().join("a-directory");
    std::fs::create_dir(&unreadable).unwrap();
    let no_dir = local.path().join("no-such-dir").join("x.txt");
    let mut failed = Vec::new();
    for (case, result) in [
        ("open for upload", c.put_file(&missing, "/up.txt").await),
        (
            "read during upload",
            c.put_file(&unreadable, "/up.txt").await,
        ),
        (
            "create for download",
            c.get_file("/there.txt", &no_dir).await,
        ),
    ] {
        match result {
            Err(e) if e.kind() == FtpErrorKind::LocalIo => {
                assert!(!e.retryable(), "{label}: {case}: {e}");
                assert_eq!(e.kind().as_str(), "local_io");
            }
            Err(e) => failed.push(format!("{case}: kind {:?}: {e}", e.kind())),
            Ok(n) => failed.push(format!("{case}: succeeded ({n} bytes)")),
        }
        if let Err(e) = c.noop().await {
            failed.push(format!("{case}: connection unusable after: {e}"));
            c = FtpConnection::connect(&options(&server)).await.unwrap();
        }
    }
    assert!(failed.is_empty(), "{label}:\n{}", failed.join("\n"));
    c.quit().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_failures_are_local_io_plain() {
    local_failures_are_local_io(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_failures_are_local_io_tls() {
    local_failures_are_local_io(true).await;
}
