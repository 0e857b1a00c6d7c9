//! A download is held to the size its `150` announced: a server that announces more than it
//! sends and then says `226` (what one that took our early `close_notify` for the end of the
//! transfer would do) fails the download with a transient error, so it is fetched again,
//! rather than leaving a short file that looks complete. The server is the in-process one
//! behind a shim that greets as vsftpd (so the early close is in play) and makes every `150`
//! announce [`OVERSTATED`] bytes.

use std::time::Duration;

use siteport_ftp::{ConnectOptions, FtpConnection, FtpErrorKind, TlsMode};
use siteport_testsupport::{Misorder, MisorderingServer, OVERSTATED};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_short_of_its_announced_size_fails() {
    let dir = tempfile::tempdir().unwrap();
    let body = vec![0x5au8; 4096];
    std::fs::write(dir.path().join("f.bin"), &body).unwrap();
    let server = MisorderingServer::start(dir.path(), Misorder::Overstate);
    let mut o = ConnectOptions::new(
        "127.0.0.1".to_owned(),
        server.addr().port(),
        TlsMode::None,
        server.user.clone(),
        server.password.clone(),
    );
    o.timeout = Duration::from_secs(10);
    // libunftp answers a pipelined EPSV before the transfer's 226: one command at a time.
    o.pipelining.turn_off();
    let mut c = FtpConnection::connect(&o).await.expect("connect");

    let e = match c.get_bytes("/f.bin", 1 << 21).await {
        Ok(got) => panic!(
            "{} bytes of an announced 1 MiB taken for the file",
            got.len()
        ),
        Err(e) => e,
    };
    assert_eq!(e.kind(), FtpErrorKind::Transient, "{e}");
    let shown = e.to_string();
    assert!(
        shown.contains(&format!("4096 of the {OVERSTATED} bytes")),
        "{shown}"
    );

    let local = dir.path().join("streamed.bin");
    let e = c
        .get_file("/f.bin", &local)
        .await
        .expect_err("the streamed download is held to it too");
    assert_eq!(e.kind(), FtpErrorKind::Transient, "{e}");

    // The connection stayed in step: the next command is answered as its own.
    c.noop().await.expect("NOOP after the failures");
    assert!(
        c.mdtm("/f.bin")
            .await
            .expect("MDTM after the failures")
            .is_some(),
        "MDTM answered as its own"
    );
}
