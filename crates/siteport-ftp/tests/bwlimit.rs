//! `set_bandwidth_limit`: uploads and downloads of the process together keep to the limit,
//! against a real server (the in-process one). Its own test binary: the limit is global.

use std::time::{Duration, Instant};

use siteport_ftp::{ConnectOptions, FtpConnection, SecretString, TlsMode, set_bandwidth_limit};
use siteport_ftpd::EmbeddedServer;

#[test]
fn transfers_keep_to_the_limit() {
    const RATE: u64 = 256 * 1024;
    set_bandwidth_limit(RATE);
    let dir = tempfile::tempdir().unwrap();
    let server = EmbeddedServer::start(
        dir.path(),
        "tester",
        SecretString::from("bwlimit-Pa55"),
        None,
    )
    .unwrap();
    let mut o = ConnectOptions::new(
        "127.0.0.1".to_owned(),
        server.port(),
        TlsMode::None,
        "tester".to_owned(),
        SecretString::from("bwlimit-Pa55"),
    );
    o.timeout = Duration::from_secs(10);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let data: Vec<u8> = (0..=255u8).cycle().take(768 * 1024).collect();
    let local = dir.path().join("src.bin");
    std::fs::write(&local, &data).unwrap();
    let (up, down) = rt.block_on(async {
        let mut c = FtpConnection::connect(&o).await.unwrap();
        let t = Instant::now();
        c.put_file(&local, "/up.bin").await.unwrap();
        let up = t.elapsed();
        let t = Instant::now();
        c.get_file("/up.bin", &dir.path().join("down.bin"))
            .await
            .unwrap();
        (up, t.elapsed())
    });
    assert_eq!(std::fs::read(dir.path().join("down.bin")).unwrap(), data);
    // 768 KiB at 256 KiB/s: 3 s, less the 0.2 s burst allowance.
    for (what, took) in [("upload", up), ("download", down)] {
        assert!(
            took >= Duration::from_millis(2500) && took < Duration::from_secs(6),
            "{what} of 768 KiB at 256 KiB/s took {took:?}"
        );
    }
}
