//! The remote conformance suite: the same behaviour checks against every real server in the
//! matrix — in-process (plain + TLS), vsftpd (plain + explicit FTPS with require_ssl_reuse),
//! pure-ftpd (plain + explicit FTPS required).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use siteport_ftp::{
    ConnectOptions, EntryKind, FtpConnection, FtpErrorKind, Pool, RemoteEntry, SecretString,
    TlsMode,
};
use siteport_testsupport::{FaultyProxy, FtpServer, ServerKind};

fn options(server: &FtpServer) -> ConnectOptions {
    let mut o = ConnectOptions::new(
        server.host.clone(),
        server.port,
        if server.tls {
            TlsMode::Explicit
        } else {
            TlsMode::None
        },
        server.user.clone(),
        server.password.clone(),
    );
    o.ca_file = server.ca_path();
    o.timeout = Duration::from_secs(15);
    o
}

fn by_name(entries: Vec<RemoteEntry>) -> BTreeMap<String, RemoteEntry> {
    entries.into_iter().map(|e| (e.name.clone(), e)).collect()
}

fn content(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| {
            (i as u32)
                .wrapping_mul(2654435761)
                .rotate_left(seed as u32 % 31) as u8
                ^ seed
        })
        .collect()
}

async fn suite(server: &FtpServer) {
    let label = server.label();
    let opts = options(server);
    let local = tempfile::tempdir().unwrap();
    let mut c = FtpConnection::connect(&opts)
        .await
        .unwrap_or_else(|e| panic!("{label}: connect: {e}"));
    assert_eq!(c.is_tls(), server.tls, "{label}");

    // mkdir nested, and again (exists: fine)
    for d in ["/site", "/site/a", "/site/a/b"] {
        c.mkdir(d)
            .await
            .unwrap_or_else(|e| panic!("{label}: mkdir {d}: {e}"));
    }
    c.mkdir("/site/a")
        .await
        .unwrap_or_else(|e| panic!("{label}: mkdir existing: {e}"));
    assert!(server.root().join("site/a/b").is_dir(), "{label}");

    // put_atomic + list (size, mtime), no temp file left behind. More 256 KiB chunks than
    // the reader holds ahead, the last one short: buffers given back are filled again, and
    // a stale tail or chunk would show in the bytes stored or in what the observer saw.
    let big = content(7, 5 * 256 * 1024 + 17);
    let big_path = local.path().join("big.bin");
    std::fs::write(&big_path, &big).unwrap();
    let when = SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000);
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let feed = seen.clone();
    let sent = c
        .put_atomic_observed(
            &big_path,
            "/site/a/b/big.bin",
            Some(when),
            Box::new(move |chunk: &[u8]| feed.lock().unwrap().extend_from_slice(chunk)),
        )
        .await
        .unwrap_or_else(|e| panic!("{label}: put_atomic: {e}"));
    assert_eq!(sent, big.len() as u64, "{label}");
    assert!(
        *seen.lock().unwrap() == big,
        "{label}: observer saw other bytes"
    );
    assert_eq!(
        std::fs::read(server.root().join("site/a/b/big.bin")).unwrap(),
        big,
        "{label}"
    );
    let listing = by_name(c.list_dir("/site/a/b").await.unwrap());
    let e = listing
        .get("big.bin")
        .unwrap_or_else(|| panic!("{label}: {listing:?}"));
    assert_eq!(
        (e.kind, e.size),
        (EntryKind::File, big.len() as u64),
        "{label}"
    );
    let mtime = e.mtime.unwrap_or_else(|| panic!("{label}: no mtime"));
    if c.features().mfmt {
        assert_eq!(
            mtime, when,
            "{label}: MFMT offered, time must be the one set"
        );
    } else {
        let age = SystemTime::now().duration_since(mtime).unwrap_or_default();
        assert!(
            age < Duration::from_secs(36 * 3600),
            "{label}: mtime {mtime:?}"
        );
    }
    assert!(
        !listing.keys().any(|n| n.contains("siteport-tmp")),
        "{label}: temp file left: {listing:?}"
    );
    assert!(
        !listing.contains_key(".") && !listing.contains_key(".."),
        "{label}"
    );

    // odd names: spaces, unicode, leading dash, '#', dot-file; round trip byte-identical
    let names = [
        "with space.txt",
        "ünïcødé ファイル.html",
        "-dash",
        "#hash#",
        ".htaccess",
    ];
    for (i, name) in names.iter().enumerate() {
        let data = content(i as u8 + 1, 1000 + i);
        let p = local.path().join(format!("odd{i}"));
        std::fs::write(&p, &data).unwrap();
        c.put_atomic(&p, &format!("/site/a/{name}"), None)
            .await
            .unwrap_or_else(|e| panic!("{label}: put {name:?}: {e}"));
        let back = local.path().join(format!("back{i}"));
        let got = c
            .get_file(&format!("/site/a/{name}"), &back)
            .await
            .unwrap_or_else(|e| panic!("{label}: get {name:?}: {e}"));
        assert_eq!(got, data.len() as u64, "{label}: {name:?}");
        assert_eq!(std::fs::read(&back).unwrap(), data, "{label}: {name:?}");
    }
    let listing = by_name(c.list_dir("/site/a").await.unwrap());
    for name in names {
        assert!(
            listing.contains_key(name),
            "{label}: {name:?} missing in {listing:?}"
        );
    }
    assert_eq!(
        listing.get("b").map(|e| e.kind),
        Some(EntryKind::Dir),
        "{label}"
    );
    // Relative path resolves against the login directory (the root here).
    let rel = by_name(c.list_dir("site/a").await.unwrap());
    assert_eq!(rel.len(), listing.len(), "{label}");

    // After its first non-empty listing a connection lists over the control connection
    // (`STAT -a`) where the server gives the same entries there; a fresh connection's first
    // listing goes over a data connection, and both must agree, odd names included.
    let over_control = c.lists_over_control();
    eprintln!("{label}: lists over control: {over_control:?}");
    match server.kind {
        ServerKind::Vsftpd => assert_eq!(over_control, Some(true), "{label}"),
        // MLSD is better still: STAT is never tried.
        ServerKind::InProcess => assert_eq!(over_control, None, "{label}"),
        _ => {}
    }
    let mut fresh = FtpConnection::connect(&opts).await.unwrap();
    let by_data = by_name(fresh.list_dir("/site/a").await.unwrap());
    assert_eq!(by_data, listing, "{label}: STAT and LIST listings differ");
    assert_eq!(
        by_name(fresh.list_dir("/site/a").await.unwrap()),
        by_data,
        "{label}"
    );
    fresh.quit().await.unwrap();

    // get_file byte-identical for the big file
    let back = local.path().join("big.back");
    c.get_file("/site/a/b/big.bin", &back).await.unwrap();
    assert_eq!(std::fs::read(&back).unwrap(), big, "{label}");

    // mdtm
    if c.features().mdtm {
        let t = c.mdtm("/site/a/b/big.bin").await.unwrap();
        assert!(t.is_some(), "{label}: MDTM offered but no time");
    }

    // rename, then delete, then remove_dir
    c.rename("/site/a/b/big.bin", "/site/a/b/renamed.bin")
        .await
        .unwrap();
    let listing = by_name(c.list_dir("/site/a/b").await.unwrap());
    assert!(
        listing.contains_key("renamed.bin") && !listing.contains_key("big.bin"),
        "{label}"
    );
    c.delete_file("/site/a/b/renamed.bin").await.unwrap();
    assert!(c.list_dir("/site/a/b").await.unwrap().is_empty(), "{label}");
    c.remove_dir("/site/a/b").await.unwrap();
    assert!(!server.root().join("site/a/b").exists(), "{label}");

    // not found
    let err = c
        .get_file("/site/nope.txt", &local.path().join("x"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), FtpErrorKind::NotFound, "{label}: {err}");
    let err = c.list_dir("/site/no-such-dir").await.unwrap_err();
    assert_eq!(err.kind(), FtpErrorKind::NotFound, "{label}: {err}");
    assert!(
        err.to_string()
            .contains(&format!("127.0.0.1:{}", server.port)),
        "{err}"
    );
    // the connection is still usable after errors
    c.noop().await.unwrap();

    // Pipelining only with servers known to answer in order (libunftp does not), and a failed
    // pipelined rename (RNFR of a missing file: the server also answers the RNTO, with 503)
    // leaves the connection in step: the next commands get their own replies.
    assert_eq!(
        c.pipelines(),
        server.kind != ServerKind::InProcess,
        "{label}: pipelining"
    );
    let err = c
        .rename("/site/missing.txt", "/site/other.txt")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), FtpErrorKind::NotFound, "{label}: {err}");
    assert!(err.to_string().contains("RNFR"), "{label}: {err}");
    let err = c.list_dir("/site/no-such-dir").await.unwrap_err();
    assert_eq!(err.kind(), FtpErrorKind::NotFound, "{label}: {err}");
    assert!(err.to_string().contains("CWD"), "{label}: {err}");
    assert!(!c.list_dir("/site/a").await.unwrap().is_empty(), "{label}");

    // from memory and into memory (the engine's path for small files)
    let body = content(7, 70_000);
    let sent = c
        .put_atomic_bytes(&body, "/site/mem.bin", None)
        .await
        .unwrap_or_else(|e| panic!("{label}: put_atomic_bytes: {e}"));
    assert_eq!(sent, body.len() as u64, "{label}");
    assert_eq!(
        std::fs::read(server.root().join("site/mem.bin")).unwrap(),
        body,
        "{label}"
    );
    assert_eq!(
        c.get_bytes("/site/mem.bin", 1 << 20).await.unwrap(),
        body,
        "{label}"
    );
    // A small upload (on plain vsftpd/pure-ftpd the one sent without waiting for 150), then
    // one the server refuses: the error is the server's, and the connection stays in step.
    c.put_atomic_bytes(b"tiny", "/site/tiny.txt", None)
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(server.root().join("site/tiny.txt")).unwrap(),
        b"tiny",
        "{label}"
    );
    let err = c
        .put_atomic_bytes(b"tiny", "/site/no-such-dir/tiny.txt", None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.kind(),
            FtpErrorKind::NotFound | FtpErrorKind::Permission
        ),
        "{label}: {err}"
    );
    assert!(err.to_string().contains("STOR"), "{label}: {err}");
    c.noop().await.unwrap();
    c.delete_file("/site/tiny.txt").await.unwrap();
    let err = c.get_bytes("/site/nope.txt", 1000).await.unwrap_err();
    assert_eq!(err.kind(), FtpErrorKind::NotFound, "{label}: {err}");
    c.delete_file("/site/mem.bin").await.unwrap();
    c.put_atomic_bytes(&body, "/site/mem.bin", None)
        .await
        .unwrap();
    // Longer than allowed: the transfer is cut off, and so is the connection (its state is
    // unknown after an aborted transfer).
    let err = c.get_bytes("/site/mem.bin", 1000).await.unwrap_err();
    assert!(
        err.to_string().contains("larger than 1000 bytes"),
        "{label}: {err}"
    );
    assert!(!c.is_open(), "{label}");
    c = FtpConnection::connect(&opts).await.unwrap();
    c.delete_file("/site/mem.bin").await.unwrap();

    // many files over one connection (under TLS every data connection must resume the
    // control connection's session: vsftpd require_ssl_reuse refuses the transfer otherwise)
    c.mkdir("/site/many").await.unwrap();
    let small = local.path().join("small");
    std::fs::write(&small, b"0123456789").unwrap();
    let started = std::time::Instant::now();
    for i in 0..40 {
        c.put_file(&small, &format!("/site/many/f{i:03}.txt"))
            .await
            .unwrap_or_else(|e| panic!("{label}: file {i}: {e}"));
    }
    let per_file = started.elapsed() / 40;
    assert_eq!(c.list_dir("/site/many").await.unwrap().len(), 40, "{label}");
    // Nagle + delayed ACK would cost ~40 ms per file; we expect a few ms on loopback. libunftp
    // itself answers in ~45 ms per file, so the bound is for the C servers only.
    if server.kind != ServerKind::InProcess {
        assert!(
            per_file < Duration::from_millis(35),
            "{label}: {per_file:?} per file"
        );
    }
    c.quit().await.unwrap();

    // wrong password → Login
    let mut bad = opts.clone();
    bad.password = SecretString::from("definitely-wrong".to_string());
    let err = FtpConnection::connect(&bad).await.unwrap_err();
    assert_eq!(err.kind(), FtpErrorKind::Login, "{label}: {err}");
    assert!(!err.to_string().contains("definitely-wrong"), "{err}");
    assert!(!err.retryable());

    // pool reuse: two concurrent, then both idle, then reused without a new login
    let pool = Pool::new(opts.clone(), 2);
    {
        let (a, b) = tokio::join!(pool.get(), pool.get());
        let (mut a, mut b) = (a.unwrap(), b.unwrap());
        a.noop().await.unwrap();
        b.list_dir("/site").await.unwrap();
    }
    assert_eq!(pool.idle_count(), 2, "{label}");
    {
        let mut again = pool.get().await.unwrap();
        assert_eq!(pool.idle_count(), 1, "{label}: reused an idle connection");
        assert_eq!(again.list_dir("/site/many").await.unwrap().len(), 40);
    }
    pool.close().await;
    assert_eq!(pool.idle_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inprocess_plain() {
    suite(&FtpServer::start(ServerKind::InProcess, false)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inprocess_tls() {
    suite(&FtpServer::start(ServerKind::InProcess, true)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vsftpd_plain() {
    suite(&FtpServer::start(ServerKind::Vsftpd, false)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vsftpd_explicit_tls() {
    suite(&FtpServer::start(ServerKind::Vsftpd, true)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pureftpd_plain() {
    suite(&FtpServer::start(ServerKind::PureFtpd, false)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pureftpd_explicit_tls() {
    suite(&FtpServer::start(ServerKind::PureFtpd, true)).await;
}

/// Certificate verification: no CA → refused; the right CA, the leaf pin, or insecure → ok;
/// a wrong pin → refused. Against vsftpd (OpenSSL) and the in-process server (rustls).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_verification_modes() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    for kind in [ServerKind::InProcess, ServerKind::Vsftpd] {
        let server = FtpServer::start(kind, true);
        let label = server.label();
        let base = options(&server);

        let mut no_ca = base.clone();
        no_ca.ca_file = None;
        let err = FtpConnection::connect(&no_ca).await.unwrap_err();
        assert_eq!(err.kind(), FtpErrorKind::Tls, "{label}: {err}");

        let mut pinned = base.clone();
        pinned.ca_file = None;
        pinned.fingerprint = server.fingerprint().map(str::to_string);
        FtpConnection::connect(&pinned)
            .await
            .unwrap_or_else(|e| panic!("{label}: pin: {e}"))
            .quit()
            .await
            .unwrap();

        let mut wrong_pin = pinned.clone();
        wrong_pin.fingerprint = Some(server.certs().unwrap().ca_fingerprint.clone());
        let err = FtpConnection::connect(&wrong_pin).await.unwrap_err();
        assert_eq!(err.kind(), FtpErrorKind::Tls, "{label}: {err}");

        let mut insecure = base.clone();
        insecure.ca_file = None;
        insecure.insecure = true;
        let mut c = FtpConnection::connect(&insecure)
            .await
            .unwrap_or_else(|e| panic!("{label}: insecure: {e} {e:?}"));
        c.list_dir("/").await.unwrap();
        c.quit().await.unwrap();
    }
}

/// `explicit` against a server without TLS must fail, never continue in plain text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explicit_tls_never_falls_back_to_plain() {
    for kind in [ServerKind::Vsftpd, ServerKind::PureFtpd] {
        let server = FtpServer::start(kind, false);
        let mut o = options(&server);
        o.tls = TlsMode::Explicit;
        let err = FtpConnection::connect(&o).await.unwrap_err();
        assert_eq!(err.kind(), FtpErrorKind::Tls, "{}: {err}", server.label());
    }
}

/// Connection refused → Network; a control connection cut by the proxy → Transient.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_failures_have_kinds() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut o = ConnectOptions::new(
        "127.0.0.1",
        port,
        TlsMode::None,
        "u",
        SecretString::from("p".to_string()),
    );
    o.timeout = Duration::from_secs(5);
    let err = FtpConnection::connect(&o).await.unwrap_err();
    assert_eq!(err.kind(), FtpErrorKind::Network, "{err}");

    let server = FtpServer::start(ServerKind::InProcess, false);
    let proxy = FaultyProxy::start(server.addr(), 1.0, 42);
    let mut o = options(&server);
    o.port = proxy.port();
    let mut transient = 0;
    for _ in 0..5 {
        match FtpConnection::connect(&o).await {
            Ok(mut c) => {
                // Each connection is cut after at most 512 bytes from the server.
                let mut failed = None;
                for _ in 0..100 {
                    if let Err(e) = c.list_dir("/").await {
                        failed = Some(e);
                        break;
                    }
                }
                let e = failed.expect("the proxy cuts every connection");
                assert!(e.retryable(), "{e}");
                assert!(!c.is_open(), "a cut connection must report itself broken");
                transient += 1;
            }
            Err(e) => {
                assert!(e.retryable(), "cut connection must be retryable: {e}");
                transient += 1;
            }
        }
    }
    assert_eq!(proxy.cut(), proxy.connections());
    assert_eq!(transient, 5);

    // with probability 0 everything goes through
    let clean = FaultyProxy::start(server.addr(), 0.0, 1);
    o.port = clean.port();
    let mut c = FtpConnection::connect(&o).await.unwrap();
    c.list_dir("/").await.unwrap();
    assert_eq!(clean.cut(), 0);
}
