//! The remote conformance suite: the same behaviour checks against every real server in the
//! matrix — in-process (plain + TLS), vsftpd (plain + explicit FTPS with require_ssl_reuse),
//! pure-ftpd (plain + explicit FTPS required), proftpd (plain). Every server but the in-process
//! one is recognised as working in order, so these run with pipelining on (and check that it
//! stays on).

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use siteport_ftp::{
    ConnectOptions, EntryKind, FtpConnection, FtpErrorKind, Pool, RemoteEntry, SecretString,
    TlsMode,
};
use siteport_testsupport::{FaultyProxy, FtpServer, ProFtpd, ServerKind};

/// Which server a suite runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    InProcess,
    Vsftpd,
    PureFtpd,
    ProFtpd,
}

/// What the suite needs of a running server, whichever fixture started it.
struct Target {
    host: String,
    port: u16,
    user: String,
    password: SecretString,
    tls: bool,
    ca: Option<std::path::PathBuf>,
    root: std::path::PathBuf,
    kind: Kind,
    label: String,
}

impl Target {
    fn of(server: &FtpServer) -> Target {
        Target {
            host: server.host.clone(),
            port: server.port,
            user: server.user.clone(),
            password: server.password.clone(),
            tls: server.tls,
            ca: server.ca_path(),
            root: server.root().to_path_buf(),
            kind: match server.kind {
                ServerKind::InProcess => Kind::InProcess,
                ServerKind::Vsftpd => Kind::Vsftpd,
                ServerKind::PureFtpd => Kind::PureFtpd,
            },
            label: server.label(),
        }
    }

    fn of_proftpd(server: &ProFtpd) -> Target {
        Target {
            host: server.host.clone(),
            port: server.port,
            user: server.user.clone(),
            password: server.password.clone(),
            tls: false,
            ca: None,
            root: server.root().to_path_buf(),
            kind: Kind::ProFtpd,
            label: "proftpd".to_string(),
        }
    }

    fn root(&self) -> &std::path::Path {
        &self.root
    }
}

fn options(server: &Target) -> ConnectOptions {
    common::options(
        &server.host,
        server.port,
        server.tls,
        &server.user,
        &server.password,
        server.ca.clone(),
    )
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

/// What the checks of one suite run share: the server, a logged-in connection, a local temp
/// directory, and what earlier checks left for later ones.
struct Suite<'a> {
    server: &'a Target,
    label: String,
    opts: ConnectOptions,
    local: tempfile::TempDir,
    /// `None` after a check quit it or panicked with it; the runner reconnects.
    c: Option<FtpConnection>,
    /// The contents of `/site/a/b/big.bin`.
    big: Vec<u8>,
    /// `/site/a` as listed after the odd names were uploaded.
    listing_a: BTreeMap<String, RemoteEntry>,
}

impl Suite<'_> {
    fn c(&mut self) -> &mut FtpConnection {
        self.c
            .as_mut()
            .expect("the runner connects before each check")
    }
}

/// A check: `async fn(&mut Suite)`, failing by panicking (`assert!`, `unwrap`).
type Check = for<'s, 'a> fn(&'s mut Suite<'a>) -> BoxFuture<'s>;
type BoxFuture<'s> = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 's>>;

/// Makes a [`Check`] of an `async fn(&mut Suite)`.
macro_rules! check {
    ($f:ident) => {
        (stringify!($f), (|s| Box::pin($f(s))) as Check)
    };
}

/// Runs every check in order against `server`, each one whatever happened to the ones before
/// (after a failure, on a fresh connection), then fails naming the server and every failed
/// check with its message.
async fn suite(server: &Target) {
    let label = server.label.clone();
    let opts = options(server);
    let c = FtpConnection::connect(&opts)
        .await
        .unwrap_or_else(|e| panic!("{label}: connect: {e}"));
    let mut s = Suite {
        server,
        label: label.clone(),
        opts,
        local: tempfile::tempdir().unwrap(),
        c: Some(c),
        big: Vec::new(),
        listing_a: BTreeMap::new(),
    };
    let checks: [(&str, Check); 15] = [
        check!(connected_as_configured),
        check!(mkdir_nested_and_existing),
        check!(put_atomic_observed_then_listed),
        check!(odd_names_round_trip),
        check!(stat_listing_agrees_with_list),
        check!(get_file_byte_identical),
        check!(mdtm_when_offered),
        check!(rename_delete_remove_dir),
        check!(not_found_errors),
        check!(pipelining_stays_in_step),
        check!(batched_listings_match_single),
        check!(memory_transfers),
        check!(many_files_one_connection),
        check!(wrong_password_is_login),
        check!(pool_reuses_connections),
    ];
    let mut failed = Vec::new();
    for (name, check) in checks {
        if s.c.is_none() {
            match FtpConnection::connect(&s.opts).await {
                Ok(c) => s.c = Some(c),
                Err(e) => {
                    failed.push(format!("{name}: not run, cannot reconnect: {e}"));
                    continue;
                }
            }
        }
        if let Err(panic) = CatchUnwind(check(&mut s)).await {
            failed.push(format!("{name}: {}", panic_message(&*panic)));
            // Its state is unknown now: the next check gets a fresh connection.
            s.c = None;
        }
    }
    assert!(
        failed.is_empty(),
        "{label}: {} of {} checks failed:\n  {}",
        failed.len(),
        checks.len(),
        failed.join("\n  ")
    );
}

/// Resolves to `Err(payload)` if polling the future panics (a check's failed assertion).
struct CatchUnwind<F>(F);

impl<F: std::future::Future + Unpin> std::future::Future for CatchUnwind<F> {
    type Output = Result<F::Output, Box<dyn std::any::Any + Send>>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let inner = &mut self.0;
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            std::pin::Pin::new(inner).poll(cx)
        })) {
            Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
            Ok(std::task::Poll::Ready(v)) => std::task::Poll::Ready(Ok(v)),
            Err(panic) => std::task::Poll::Ready(Err(panic)),
        }
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else if let Some(s) = panic.downcast_ref::<&str>() {
        s.to_string()
    } else {
        "panicked".to_string()
    }
}

async fn connected_as_configured(s: &mut Suite<'_>) {
    let (label, tls) = (s.label.clone(), s.server.tls);
    assert_eq!(s.c().is_tls(), tls, "{label}");
}

/// mkdir nested, and again (exists: fine)
async fn mkdir_nested_and_existing(s: &mut Suite<'_>) {
    let label = s.label.clone();
    let c = s.c.as_mut().unwrap();
    for d in ["/site", "/site/a", "/site/a/b"] {
        c.mkdir(d)
            .await
            .unwrap_or_else(|e| panic!("{label}: mkdir {d}: {e}"));
    }
    c.mkdir("/site/a")
        .await
        .unwrap_or_else(|e| panic!("{label}: mkdir existing: {e}"));
    assert!(s.server.root().join("site/a/b").is_dir(), "{label}");
}

/// put_atomic + list (size, mtime), no temp file left behind. More 256 KiB chunks than
/// the reader holds ahead, the last one short: buffers given back are filled again, and
/// a stale tail or chunk would show in the bytes stored or in what the observer saw.
async fn put_atomic_observed_then_listed(s: &mut Suite<'_>) {
    let label = s.label.clone();
    let server = s.server;
    let big = content(7, 5 * 256 * 1024 + 17);
    s.big = big.clone();
    let big_path = s.local.path().join("big.bin");
    std::fs::write(&big_path, &big).unwrap();
    let c = s.c.as_mut().unwrap();
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
}

/// odd names: spaces, unicode, leading dash, '#', dot-file; round trip byte-identical
async fn odd_names_round_trip(s: &mut Suite<'_>) {
    let label = s.label.clone();
    let local = s.local.path().to_path_buf();
    let c = s.c.as_mut().unwrap();
    let names = [
        "with space.txt",
        "ünïcødé ファイル.html",
        "-dash",
        "#hash#",
        ".htaccess",
    ];
    for (i, name) in names.iter().enumerate() {
        let data = content(i as u8 + 1, 1000 + i);
        let p = local.join(format!("odd{i}"));
        std::fs::write(&p, &data).unwrap();
        c.put_atomic(&p, &format!("/site/a/{name}"), None)
            .await
            .unwrap_or_else(|e| panic!("{label}: put {name:?}: {e}"));
        let back = local.join(format!("back{i}"));
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
    s.listing_a = listing;
}

/// After its first non-empty listing a connection lists over the control connection
/// (`STAT -a`) where the server gives the same entries there; a fresh connection's first
/// listing goes over a data connection, and both must agree, odd names included.
async fn stat_listing_agrees_with_list(s: &mut Suite<'_>) {
    let label = s.label.clone();
    let over_control = s.c().lists_over_control();
    eprintln!("{label}: lists over control: {over_control:?}");
    match s.server.kind {
        Kind::Vsftpd => assert_eq!(over_control, Some(true), "{label}"),
        // MLSD is better still: STAT is never tried.
        Kind::InProcess | Kind::ProFtpd => assert_eq!(over_control, None, "{label}"),
        _ => {}
    }
    // Options of their own: clones of `s.opts` share what the first connection learnt.
    let mut fresh = FtpConnection::connect(&options(s.server)).await.unwrap();
    assert_eq!(fresh.lists_over_control(), None, "{label}");
    let by_data = by_name(fresh.list_dir("/site/a").await.unwrap());
    assert_eq!(
        by_data, s.listing_a,
        "{label}: STAT and LIST listings differ"
    );
    assert_eq!(
        by_name(fresh.list_dir("/site/a").await.unwrap()),
        by_data,
        "{label}"
    );
    fresh.quit().await.unwrap();
    // A connection of the same options knows the verdict from its first listing on.
    let shared = FtpConnection::connect(&s.opts).await.unwrap();
    assert_eq!(shared.lists_over_control(), over_control, "{label}");
    shared.quit().await.unwrap();
}

/// get_file byte-identical for the big file
async fn get_file_byte_identical(s: &mut Suite<'_>) {
    let label = s.label.clone();
    let back = s.local.path().join("big.back");
    s.c().get_file("/site/a/b/big.bin", &back).await.unwrap();
    assert_eq!(std::fs::read(&back).unwrap(), s.big, "{label}");
}

async fn mdtm_when_offered(s: &mut Suite<'_>) {
    let label = s.label.clone();
    let c = s.c();
    if c.features().mdtm {
        let t = c.mdtm("/site/a/b/big.bin").await.unwrap();
        assert!(t.is_some(), "{label}: MDTM offered but no time");
    }
}

/// rename, then delete, then remove_dir
async fn rename_delete_remove_dir(s: &mut Suite<'_>) {
    let label = s.label.clone();
    let root = s.server.root().to_path_buf();
    let c = s.c();
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
    assert!(!root.join("site/a/b").exists(), "{label}");
}

async fn not_found_errors(s: &mut Suite<'_>) {
    let label = s.label.clone();
    let port = s.server.port;
    let x = s.local.path().join("x");
    let c = s.c();
    let err = c.get_file("/site/nope.txt", &x).await.unwrap_err();
    assert_eq!(err.kind(), FtpErrorKind::NotFound, "{label}: {err}");
    let err = c.list_dir("/site/no-such-dir").await.unwrap_err();
    assert_eq!(err.kind(), FtpErrorKind::NotFound, "{label}: {err}");
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
    // the connection is still usable after errors
    c.noop().await.unwrap();
}

/// Pipelining only with servers known to answer in order (libunftp does not), and a failed
/// pipelined rename (RNFR of a missing file: the server also answers the RNTO, with 503)
/// leaves the connection in step: the next commands get their own replies.
async fn pipelining_stays_in_step(s: &mut Suite<'_>) {
    let label = s.label.clone();
    let kind = s.server.kind;
    let c = s.c();
    assert_eq!(
        c.pipelines(),
        kind != Kind::InProcess,
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
}

/// `list_dirs` gives, for each directory in order, what `list_dir` gives it alone: with a
/// directory that does not exist in the middle of the batch (its own not-found error, the
/// ones after it still right) and odd names; the connection stays in step afterwards. On
/// vsftpd the batch goes out in windows of pipelined commands (it lists over control by now).
async fn batched_listings_match_single(s: &mut Suite<'_>) {
    let label = s.label.clone();
    let c = s.c();
    let mut dirs = Vec::new();
    c.mkdir("/site/batch").await.unwrap();
    // Long names: the batch spans several windows of pipelined commands.
    let pad = "a-directory-name-long-enough-to-fill-a-window-".repeat(2);
    for i in 0..40 {
        let d = format!("/site/batch/{pad}d{i:02} x");
        c.mkdir(&d).await.unwrap();
        for j in 0..i % 4 {
            c.put_bytes(format!("{i}-{j}").as_bytes(), &format!("{d}/f{j}.txt"))
                .await
                .unwrap();
        }
        dirs.push(d);
    }
    dirs.insert(5, "/site/batch/missing".to_string());
    dirs.insert(30, "/site/batch/missing".to_string());
    let paths: Vec<&str> = dirs.iter().map(String::as_str).collect();
    let batched = c.list_dirs(&paths).await;
    assert_eq!(batched.len(), paths.len(), "{label}");
    for (path, got) in paths.iter().zip(batched) {
        if path.ends_with("missing") {
            let err = got.unwrap_err();
            assert_eq!(err.kind(), FtpErrorKind::NotFound, "{label}: {err}");
            continue;
        }
        let got = by_name(got.unwrap_or_else(|e| panic!("{label}: {path}: {e}")));
        let alone = by_name(c.list_dir(path).await.unwrap());
        assert_eq!(got, alone, "{label}: {path}");
        let n: usize = path[path.len() - 4..path.len() - 2].parse().unwrap();
        assert_eq!(got.len(), n % 4, "{label}: {path}: {got:?}");
    }
    if s.server.kind == Kind::Vsftpd {
        assert_eq!(s.c().lists_over_control(), Some(true), "{label}");
    }
    assert!(
        !s.c().list_dir("/site/a").await.unwrap().is_empty(),
        "{label}"
    );
}

/// from memory and into memory (the engine's path for small files)
async fn memory_transfers(s: &mut Suite<'_>) {
    let label = s.label.clone();
    let root = s.server.root().to_path_buf();
    let c = s.c();
    let body = content(7, 70_000);
    let sent = c
        .put_atomic_bytes(&body, "/site/mem.bin", None)
        .await
        .unwrap_or_else(|e| panic!("{label}: put_atomic_bytes: {e}"));
    assert_eq!(sent, body.len() as u64, "{label}");
    assert_eq!(
        std::fs::read(root.join("site/mem.bin")).unwrap(),
        body,
        "{label}"
    );
    assert_eq!(
        c.get_bytes("/site/mem.bin", 1 << 20).await.unwrap(),
        body,
        "{label}"
    );
    // A small upload (on plain vsftpd/pure-ftpd the one sent without waiting for 150, to the
    // passive port armed by the download before; its MFMT sent behind the STOR), then one the
    // server refuses: the error is the server's, and the connection stays in step.
    let when = SystemTime::UNIX_EPOCH + Duration::from_secs(1_500_000_000);
    c.put_atomic_bytes(b"tiny", "/site/tiny.txt", Some(when))
        .await
        .unwrap();
    if c.features().mfmt {
        let listed = by_name(c.list_dir("/site").await.unwrap());
        let mtime = listed.get("tiny.txt").and_then(|e| e.mtime);
        assert_eq!(mtime, Some(when), "{label}: MFMT behind the STOR");
    }
    assert_eq!(
        std::fs::read(root.join("site/tiny.txt")).unwrap(),
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
    let c = s.c.insert(FtpConnection::connect(&s.opts).await.unwrap());
    c.delete_file("/site/mem.bin").await.unwrap();
}

/// many files over one connection (under TLS every data connection must resume the
/// control connection's session: vsftpd require_ssl_reuse refuses the transfer otherwise)
async fn many_files_one_connection(s: &mut Suite<'_>) {
    let label = s.label.clone();
    let kind = s.server.kind;
    let small = s.local.path().join("small");
    let c = s.c();
    c.mkdir("/site/many").await.unwrap();
    std::fs::write(&small, b"0123456789").unwrap();
    let started = std::time::Instant::now();
    for i in 0..40 {
        c.put_file(&small, &format!("/site/many/f{i:03}.txt"))
            .await
            .unwrap_or_else(|e| panic!("{label}: file {i}: {e}"));
    }
    let per_file = started.elapsed() / 40;
    assert_eq!(c.list_dir("/site/many").await.unwrap().len(), 40, "{label}");
    // Every earlier check ran on this connection or the run's others: nothing the server
    // answered turned pipelining off.
    assert_eq!(
        c.pipelines(),
        kind != Kind::InProcess,
        "{label}: still pipelining"
    );
    // Nagle + delayed ACK would cost ~40 ms per file; we expect a few ms on loopback. libunftp
    // itself answers in ~45 ms per file, so the bound is for the C servers only.
    if kind != Kind::InProcess {
        assert!(
            per_file < Duration::from_millis(35),
            "{label}: {per_file:?} per file"
        );
    }
    s.c.take().unwrap().quit().await.unwrap();
}

/// wrong password → Login
async fn wrong_password_is_login(s: &mut Suite<'_>) {
    let label = s.label.clone();
    let mut bad = s.opts.clone();
    bad.password = SecretString::from("definitely-wrong".to_string());
    let err = FtpConnection::connect(&bad).await.unwrap_err();
    assert_eq!(err.kind(), FtpErrorKind::Login, "{label}: {err}");
    assert!(!err.to_string().contains("definitely-wrong"), "{err}");
    assert!(!err.retryable());
}

/// pool reuse: two concurrent, then both idle, then reused without a new login
async fn pool_reuses_connections(s: &mut Suite<'_>) {
    let label = s.label.clone();
    let pool = Pool::new(s.opts.clone(), 2);
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
async fn proftpd_plain() {
    suite(&Target::of_proftpd(&ProFtpd::start())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inprocess_plain() {
    suite(&Target::of(&FtpServer::start(ServerKind::InProcess, false))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inprocess_tls() {
    suite(&Target::of(&FtpServer::start(ServerKind::InProcess, true))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vsftpd_plain() {
    suite(&Target::of(&FtpServer::start(ServerKind::Vsftpd, false))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vsftpd_explicit_tls() {
    suite(&Target::of(&FtpServer::start(ServerKind::Vsftpd, true))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pureftpd_plain() {
    suite(&Target::of(&FtpServer::start(ServerKind::PureFtpd, false))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pureftpd_explicit_tls() {
    suite(&Target::of(&FtpServer::start(ServerKind::PureFtpd, true))).await;
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
        let base = options(&Target::of(&server));

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
        let mut o = options(&Target::of(&server));
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
    let mut o = options(&Target::of(&server));
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
