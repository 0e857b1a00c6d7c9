//! Servers that claim to work in order (they greet as vsftpd) but answer pipelined commands
//! out of order, or close the connection on them: an export still ends with every file in
//! place and byte-identical, nothing half-written published, and pipelining off for the rest
//! of the run (the server sees no more pipelined commands from that site's connections).

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use siteport_sync::*;
use siteport_testsupport::{Misorder, MisorderingServer};

const FILES: usize = 36;

fn endpoint(server: &MisorderingServer) -> Endpoint {
    let settings = FtpSettings {
        tls: TlsMode::None,
        ..FtpSettings::default()
    };
    let mut e = Endpoint::new(
        "127.0.0.1".to_string(),
        server.addr().port(),
        Protocol::Ftp(settings),
        "/site",
        Login::new(server.user.clone(), server.password.clone()),
    );
    e.timeout = Duration::from_secs(10);
    e
}

fn make_site(root: &Path, version: u32) {
    for i in 0..FILES {
        let body: Vec<u8> = (0..(300 + i * 211))
            .map(|b| (b * 7 + i * 13 + version as usize) as u8)
            .collect();
        write(root, &format!("d{}/f{i:02}.bin", i % 4), &body);
    }
}

/// Every temp name left under `root`.
fn temps(root: &Path) -> Vec<String> {
    snapshot(root).into_keys().filter(|k| is_temp(k)).collect()
}

async fn export_recovers(how: Misorder, after_login: bool) {
    let t = tempfile::tempdir().unwrap();
    let local = t.path().join("local");
    let served = t.path().join("served");
    std::fs::create_dir_all(&served).unwrap();
    make_site(&local, 1);
    let server = if after_login {
        MisorderingServer::start_after_login(&served, how)
    } else {
        MisorderingServer::start(&served, how)
    };
    let f = connect_factory(&endpoint(&server));
    let mut o = SyncOptions::new(&local);
    o.retry = fast_retry();
    o.max_connections = 2;
    let journal = t.path().join("j.json");
    let (_, r) = run(f.clone(), o.clone(), &journal, Direction::Export).await;
    assert!(
        r.is_success(),
        "{how:?}: {:?}",
        r.failures().collect::<Vec<_>>()
    );
    assert_eq!(
        files_snapshot(&local),
        files_snapshot(&served.join("site")),
        "{how:?}"
    );
    assert_eq!(temps(&served), Vec::<String>::new(), "{how:?}");
    let seen = server.batches();
    assert!(seen >= 1, "{how:?}: the client never pipelined");

    // The rest of the run (the same factory): one command at a time.
    make_site(&local, 2);
    let (plan, r) = run(f, o, &journal, Direction::Export).await;
    assert_eq!(
        plan.actions.iter().filter(|a| a.op == Op::Upload).count(),
        FILES,
        "{plan}"
    );
    assert!(
        r.is_success(),
        "{how:?}: {:?}",
        r.failures().collect::<Vec<_>>()
    );
    assert_eq!(
        files_snapshot(&local),
        files_snapshot(&served.join("site")),
        "{how:?}"
    );
    assert_eq!(
        server.batches(),
        seen,
        "{how:?}: pipelined again after the fallback"
    );
}

/// The misbehaviour met at the login (pipelined on a server greeting as vsftpd): the login
/// is tried once more one command at a time, and the run goes on without pipelining.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_order_replies_fall_back_without_losing_a_file() {
    export_recovers(Misorder::Reorder, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_on_pipelined_commands_falls_back_without_losing_a_file() {
    export_recovers(Misorder::Close, false).await;
}

/// The misbehaviour met by the transfers (the login passed in order): listings, armed
/// passive ports, uploads and the rename burst fall back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_order_transfers_fall_back_without_losing_a_file() {
    export_recovers(Misorder::Reorder, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_on_pipelined_transfers_falls_back_without_losing_a_file() {
    export_recovers(Misorder::Close, true).await;
}

/// A login the server mishandles when pipelined still logs in, and the next connection of
/// the same options sends it no pipelined command at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mishandled_login_falls_back_once() {
    for how in [Misorder::Reorder, Misorder::Close] {
        let t = tempfile::tempdir().unwrap();
        let served = t.path().join("served");
        std::fs::create_dir_all(&served).unwrap();
        let server = MisorderingServer::start(&served, how);
        let f: Arc<dyn RemoteFactory> = connect_factory(&endpoint(&server));
        let mut c = f.connect().await.unwrap();
        c.close().await.unwrap();
        let seen = server.batches();
        assert!(seen >= 1, "{how:?}: the login was not pipelined");
        let mut c = f.connect().await.unwrap();
        c.close().await.unwrap();
        assert_eq!(server.batches(), seen, "{how:?}: pipelined again");
    }
}
