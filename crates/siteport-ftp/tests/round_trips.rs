//! Round trips per file over a distance: vsftpd behind a [`DelayProxy`] (60 ms round trip
//! on the control connection and on every data connection, one more on each new
//! connection), files sent and fetched one after the other on one connection. Pipelining
//! with the next passive port armed saves the EPSV round trip of every transfer, so each
//! kind of transfer must stay clearly below what it costs without. Measured on a loaded
//! 2-core machine (round trips per file, before → with the armed port): plain upload
//! 3.13 → 2.11, download 2.59 → 1.76 (the download's side of the data connection also closed
//! at once: vsftpd sends `226` only once the client closed its side), upload renamed into
//! place 4.16 → 3.12 (then 2.06 with its RNFR/RNTO sent behind its data); FTPS upload
//! 4.19 → 3.24, download 5.24 → 4.21, and 3.12 once the download's `close_notify` goes out
//! as soon as the transfer started (vsftpd waits for it before its `226`). The bounds sit
//! between.

use std::time::{Duration, Instant};

use siteport_ftp::{ConnectOptions, FtpConnection, TlsMode};
use siteport_testsupport::{DELAY_PROXY_IP, DelayProxy, FtpServer, ServerKind};

const RTT: Duration = Duration::from_millis(60);
const FILES: usize = 20;

async fn connect(tls: bool) -> (FtpServer, DelayProxy, FtpConnection) {
    connect_to(ServerKind::Vsftpd, tls).await
}

async fn connect_to(kind: ServerKind, tls: bool) -> (FtpServer, DelayProxy, FtpConnection) {
    let server = FtpServer::start(kind, tls);
    let passive = server
        .passive_ports()
        .expect("the server has a passive range");
    let proxy = DelayProxy::start(server.port, passive, RTT);
    let mut o = ConnectOptions::new(
        DELAY_PROXY_IP.to_string(),
        proxy.addr().port(),
        if tls {
            TlsMode::Explicit
        } else {
            TlsMode::None
        },
        server.user.clone(),
        server.password.clone(),
    );
    // The certificate names 127.0.0.1, not the proxy's address: pinned instead.
    o.fingerprint = server.fingerprint().map(str::to_string);
    o.timeout = Duration::from_secs(20);
    let mut c = FtpConnection::connect(&o)
        .await
        .expect("connect through the proxy");
    c.mkdir("/site").await.unwrap();
    (server, proxy, c)
}

/// Round trips per file of `FILES` runs of `op` (wall time over the RTT).
macro_rules! per_file {
    ($c:ident, $i:ident, $op:expr) => {{
        let started = Instant::now();
        for $i in 0..FILES {
            $op.await.unwrap_or_else(|e| panic!("file {}: {e}", $i));
        }
        started.elapsed().as_secs_f64() / FILES as f64 / RTT.as_secs_f64()
    }};
}

/// Plain FTP. Armed: an upload is the STOR with the data connection opened at once (the
/// proxy's handshake round trip) and the data with its 226 (2 round trips; 3 with the EPSV
/// waited for); a download under 2 (2.5); an upload renamed into place the same 2, its
/// RNFR+RNTO answered behind its 226 (3 when they wait for it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_round_trips_per_file() {
    let (server, _proxy, mut c) = connect(false).await;
    let body = vec![0x5au8; 4096];
    let up = per_file!(c, i, c.put_bytes(&body, &format!("/site/u{i:02}.bin")));
    let down = per_file!(c, i, c.get_bytes(&format!("/site/u{i:02}.bin"), 1 << 20));
    let atomic = per_file!(
        c,
        i,
        c.put_atomic_bytes(&body, &format!("/site/a{i:02}.bin"), None)
    );
    eprintln!(
        "plain: round trips per file: upload {up:.2}, download {down:.2}, atomic upload {atomic:.2}"
    );
    assert_eq!(
        std::fs::read(server.root().join(format!("site/a{:02}.bin", FILES - 1))).unwrap(),
        body
    );
    assert!(c.pipelines());
    assert!(up < 2.65, "upload: {up:.2} round trips per file");
    assert!(down < 2.2, "download: {down:.2} round trips per file");
    assert!(
        atomic < 2.6,
        "atomic upload: {atomic:.2} round trips per file"
    );
}

/// Explicit FTPS (TLS 1.2 session resumption on every data connection, one round trip):
/// armed, an upload is about 3.25 round trips (4.2 with the EPSV waited for), a download 3.1
/// (4.2 with our `close_notify` sent after the last byte, 5.25 with the EPSV waited for too).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ftps_round_trips_per_file() {
    let (server, _proxy, mut c) = connect(true).await;
    let body = vec![0xa5u8; 4096];
    let up = per_file!(c, i, c.put_bytes(&body, &format!("/site/u{i:02}.bin")));
    let down = per_file!(c, i, c.get_bytes(&format!("/site/u{i:02}.bin"), 1 << 20));
    eprintln!("ftps: round trips per file: upload {up:.2}, download {down:.2}");
    assert_eq!(
        std::fs::read(server.root().join(format!("site/u{:02}.bin", FILES - 1))).unwrap(),
        body
    );
    assert!(c.pipelines());
    assert!(up < 3.7, "upload: {up:.2} round trips per file");
    // 4.15 when our `close_notify` went out only after the last byte came.
    assert!(down < 3.65, "download: {down:.2} round trips per file");
    // Every file came whole (the size vsftpd's `150` announced is checked too).
    for i in 0..FILES {
        let got = c.get_bytes(&format!("/site/u{i:02}.bin"), 1 << 20).await;
        assert_eq!(got.expect("download"), body);
    }
}

/// At a distance a download's TLS data connection sends its `close_notify` as soon as the
/// transfer started (vsftpd, pure-ftpd; on loopback it does not, see `EARLY_CLOSE_FROM`):
/// every file still arrives whole, streamed or in memory, small or over a megabyte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ftps_downloads_at_a_distance_arrive_whole() {
    for kind in [ServerKind::Vsftpd, ServerKind::PureFtpd] {
        let (server, _proxy, mut c) = connect_to(kind, true).await;
        let big: Vec<u8> = (0..1_300_000u32)
            .map(|i| (i * 7 + i / 4099) as u8)
            .collect();
        c.put_bytes(&big, "/site/big.bin").await.expect("upload");
        let small = b"a small page".to_vec();
        c.put_bytes(&small, "/site/small.html")
            .await
            .expect("upload");
        let dir = tempfile::tempdir().unwrap();
        let local = dir.path().join("big.bin");
        for _ in 0..3 {
            let n = c
                .get_file("/site/big.bin", &local)
                .await
                .expect("streamed download");
            assert_eq!(n, big.len() as u64, "{}", server.label());
            assert!(std::fs::read(&local).unwrap() == big, "{}", server.label());
            let got = c
                .get_bytes("/site/big.bin", 1 << 21)
                .await
                .expect("download");
            assert!(got == big, "{}", server.label());
            let got = c
                .get_bytes("/site/small.html", 1 << 20)
                .await
                .expect("download");
            assert_eq!(got, small, "{}", server.label());
        }
    }
}

/// A run's first listing, where `STAT -a` has still to be judged against `LIST -a`: the
/// `STAT` rides with the `CWD`, so the judging costs no round trip of its own (3.9 round
/// trips with the `STAT` sent after the `LIST`, 2.8 now, plain).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_listing_judges_stat_without_a_round_trip_of_its_own() {
    let (server, proxy, mut c) = connect(false).await;
    for i in 0..3 {
        c.put_bytes(b"x", &format!("/site/f{i}.txt")).await.unwrap();
    }
    // A fresh connection with fresh options: nothing judged yet.
    let mut o = ConnectOptions::new(
        DELAY_PROXY_IP.to_string(),
        proxy.addr().port(),
        TlsMode::None,
        server.user.clone(),
        server.password.clone(),
    );
    o.timeout = Duration::from_secs(20);
    let mut fresh = FtpConnection::connect(&o).await.expect("connect");
    let started = Instant::now();
    let listed = fresh.list_dir("/site").await.expect("list");
    let rt = started.elapsed().as_secs_f64() / RTT.as_secs_f64();
    eprintln!("first listing: {rt:.2} round trips");
    assert_eq!(listed.len(), 3);
    assert_eq!(
        o.listing.get(),
        Some(true),
        "vsftpd's STAT -a was judged the same as LIST -a"
    );
    assert!(rt < 3.6, "first listing: {rt:.2} round trips");
    // Judged: the next listing is one round trip over the control connection.
    let started = Instant::now();
    assert_eq!(fresh.list_dir("/site").await.expect("list").len(), 3);
    let rt = started.elapsed().as_secs_f64() / RTT.as_secs_f64();
    assert!(rt < 1.5, "second listing: {rt:.2} round trips");
}
