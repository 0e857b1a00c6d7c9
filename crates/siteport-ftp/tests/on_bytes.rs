//! `OnBytes`: an upload and a download of a file of several MiB tell the counter their bytes
//! chunk by chunk as they go (what the CLI's live progress reads), adding up to the file,
//! against a real server (the in-process one).

use std::sync::Mutex;
use std::time::Duration;

use siteport_ftp::{ConnectOptions, FtpConnection, SecretString, TlsMode};
use siteport_ftpd::EmbeddedServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_and_downloads_count_bytes_chunk_by_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let server = EmbeddedServer::start(
        dir.path(),
        "tester",
        SecretString::from("onbytes-Pa55"),
        None,
    )
    .unwrap();
    let mut o = ConnectOptions::new(
        "127.0.0.1".to_owned(),
        server.port(),
        TlsMode::None,
        "tester".to_owned(),
        SecretString::from("onbytes-Pa55"),
    );
    o.timeout = Duration::from_secs(10);
    let size = 3 * 1024 * 1024 + 5;
    let data: Vec<u8> = (0..size).map(|i| (i * 31 + i / 977) as u8).collect();
    let src = dir.path().join("src.bin");
    std::fs::write(&src, &data).unwrap();
    let mut c = FtpConnection::connect(&o).await.unwrap();

    let calls = Mutex::new(Vec::new());
    let count = |n: u64| calls.lock().unwrap().push(n);
    let file = std::fs::File::open(&src).unwrap();
    let sent = c
        .put_atomic_file(file, &src, "/up.bin", None, None, Some(&count))
        .await
        .unwrap();
    let up = std::mem::take(&mut *calls.lock().unwrap());
    assert_eq!(sent, size as u64);
    assert_eq!(up.iter().sum::<u64>(), size as u64, "{up:?}");
    assert!(up.len() >= 4, "counted in one go: {up:?}");

    let back = dir.path().join("back.bin");
    let file = std::fs::File::create(&back).unwrap();
    let got = c
        .get_into("/up.bin", file, &back, Some(&count))
        .await
        .unwrap();
    let down = std::mem::take(&mut *calls.lock().unwrap());
    assert_eq!(got, size as u64);
    assert_eq!(down.iter().sum::<u64>(), size as u64, "{down:?}");
    assert!(down.len() >= 4, "counted in one go: {down:?}");
    assert_eq!(std::fs::read(&back).unwrap(), data);
    c.quit().await.unwrap();
}
