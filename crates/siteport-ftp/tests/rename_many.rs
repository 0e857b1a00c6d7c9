//! `put_staged_bytes` and `rename_many` (the burst switch's two halves) against every real
//! server: the in-process server (plain, TLS), vsftpd and pure-ftpd (plain, explicit FTPS):
//! 150 files staged under temp names with long paths (their final names untouched until the
//! batch), then renamed in one batch with two missing sources among them: every real pair is
//! renamed, each missing one fails as not found without taking its neighbours down, and the
//! connection is still in step afterwards.

mod common;

use siteport_ftp::{ConnectOptions, FtpConnection, FtpErrorKind};
use siteport_testsupport::{FtpServer, ServerKind};

fn options(server: &FtpServer) -> ConnectOptions {
    common::options(
        &server.host,
        server.port,
        server.tls,
        &server.user,
        &server.password,
        server.ca_path(),
    )
}

const FILES: usize = 150;

async fn batch(kind: ServerKind, tls: bool) {
    let server = FtpServer::start(kind, tls);
    let label = server.label();
    let mut c = FtpConnection::connect(&options(&server)).await.unwrap();
    // Long names: a window of pairs is several KiB.
    let dir = "/site/a-rather-long-directory-name/and-another-level-below-it";
    c.mkdir("/site").await.unwrap();
    c.mkdir("/site/a-rather-long-directory-name").await.unwrap();
    c.mkdir(dir).await.unwrap();
    let on_disk = server
        .root()
        .join("site/a-rather-long-directory-name/and-another-level-below-it");
    let mut pairs: Vec<(String, String)> = Vec::new();
    for i in 0..FILES {
        let path = format!("{dir}/page-number-{i:04}-with-a-descriptive-name.html");
        // Half the files replace an older version.
        if i % 2 == 0 {
            c.put_atomic_bytes(b"old", &path, None).await.unwrap();
        }
        let (n, tmp) = c
            .put_staged_bytes(format!("new {i}").as_bytes(), &path, None)
            .await
            .unwrap_or_else(|e| panic!("{label}: stage {i}: {e}"));
        assert_eq!(n, format!("new {i}").len() as u64);
        assert!(tmp.ends_with(".siteport-tmp"), "{label}: {tmp}");
        pairs.push((tmp, path));
        if i == 40 || i == 120 {
            pairs.push((
                format!("{dir}/.missing-{i}.00000000.siteport-tmp"),
                format!("{dir}/missing-{i}.html"),
            ));
        }
    }
    // Staged, not live: the final names hold the old content or nothing.
    for i in 0..FILES {
        let p = on_disk.join(format!("page-number-{i:04}-with-a-descriptive-name.html"));
        let want: Option<&[u8]> = (i % 2 == 0).then_some(b"old");
        assert_eq!(
            std::fs::read(&p).ok().as_deref(),
            want,
            "{label}: {i} before"
        );
    }
    let refs: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let results = c.rename_many(&refs).await;
    assert_eq!(results.len(), pairs.len(), "{label}");
    for ((from, _), r) in pairs.iter().zip(&results) {
        if from.contains(".missing-") {
            let e = r.as_ref().expect_err("a missing source renamed");
            assert_eq!(e.kind(), FtpErrorKind::NotFound, "{label}: {e}");
            assert!(e.to_string().contains("RNFR"), "{label}: {e}");
        } else if let Err(e) = r {
            panic!("{label}: {from}: {e}");
        }
    }
    for i in 0..FILES {
        let p = on_disk.join(format!("page-number-{i:04}-with-a-descriptive-name.html"));
        assert_eq!(
            std::fs::read(&p).unwrap(),
            format!("new {i}").as_bytes(),
            "{label}: {i} after"
        );
    }
    let left: Vec<_> = std::fs::read_dir(&on_disk)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".siteport-tmp"))
        .collect();
    assert!(left.is_empty(), "{label}: temps left: {left:?}");
    // Still in step: the next commands get their own answers.
    c.noop().await.unwrap();
    assert_eq!(c.list_dir(dir).await.unwrap().len(), FILES, "{label}");
    c.quit().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inprocess_plain() {
    batch(ServerKind::InProcess, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inprocess_tls() {
    batch(ServerKind::InProcess, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vsftpd_plain() {
    batch(ServerKind::Vsftpd, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vsftpd_explicit_tls() {
    batch(ServerKind::Vsftpd, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pureftpd_plain() {
    batch(ServerKind::PureFtpd, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pureftpd_explicit_tls() {
    batch(ServerKind::PureFtpd, true).await;
}
