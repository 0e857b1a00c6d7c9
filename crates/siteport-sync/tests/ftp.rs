//! The engine against a real FTP server: the embedded libunftp server (plain and explicit
//! FTPS), through `connect_factory` and the real `siteport-ftp` client.

mod common;

use std::sync::Arc;

use common::*;
use secrecy::SecretString;
use siteport_ftpd::EmbeddedServer;
use siteport_sync::*;

const USER: &str = "site-user";
const PASS: &str = "correct horse battery staple";

fn opts(server: &EmbeddedServer, tls: TlsMode, pass: &str) -> Endpoint {
    Endpoint::new(
        "127.0.0.1",
        server.port(),
        Protocol::Ftp(FtpSettings {
            tls,
            ..FtpSettings::default()
        }),
        "/htdocs",
        Login::new(USER, SecretString::from(pass.to_string())),
    )
}

async fn cycle(tls: bool) {
    let t = tempfile::tempdir().unwrap();
    let served = t.path().join("served");
    std::fs::create_dir_all(served.join("htdocs")).unwrap();
    let local = t.path().join("site");
    let files = generate_site(&local);
    // Extra on the server: removed by delete.
    write(&served, "htdocs/stale/old.html", b"old");

    let (server, mut o) = if tls {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
            .unwrap();
        let fp = siteport_ftp::fingerprint_sha256(ck.cert.der());
        let s = EmbeddedServer::start(
            &served,
            USER,
            SecretString::from(PASS.to_string()),
            Some((ck.cert.pem(), ck.signing_key.serialize_pem())),
        )
        .unwrap();
        let mut o = opts(&s, TlsMode::Explicit, PASS);
        o.protocol = Protocol::Ftp(FtpSettings {
            tls: TlsMode::Explicit,
            fingerprint: Some(fp),
            ..FtpSettings::default()
        });
        (s, o)
    } else {
        let s = EmbeddedServer::start(&served, USER, SecretString::from(PASS.to_string()), None)
            .unwrap();
        let o = opts(&s, TlsMode::None, PASS);
        (s, o)
    };
    o.timeout = std::time::Duration::from_secs(10);
    let factory: Arc<dyn RemoteFactory> = connect_factory(&o);
    test_login(&o).await.unwrap();
    let journal = t.path().join("state/j.json");

    let mut so = SyncOptions::new(&local);
    so.delete = true;
    so.retry = fast_retry();
    let (plan, r) = run(factory.clone(), so.clone(), &journal, Direction::Export).await;
    assert!(
        r.is_success(),
        "{:?}\n{plan}",
        r.failures().collect::<Vec<_>>()
    );
    assert_eq!(r.counts.uploaded, files);
    assert_eq!(r.counts.deleted, 1);
    assert_eq!(r.counts.dirs_removed, 1);
    assert_eq!(snapshot(&local), snapshot(&served.join("htdocs")));

    // No change: nothing sent.
    let (plan, r) = run(factory.clone(), so.clone(), &journal, Direction::Export).await;
    assert!(plan.is_noop(), "{plan}");
    assert_eq!(r.counts.skipped, files);

    // Same-size edit: caught.
    write(&local, "assets/css/site.css", &{
        let mut v = std::fs::read(local.join("assets/css/site.css")).unwrap();
        v[0] ^= 0xff;
        v
    });
    let (plan, r) = run(factory.clone(), so.clone(), &journal, Direction::Export).await;
    assert_eq!(r.counts.uploaded, 1, "{plan}");
    assert_eq!(snapshot(&local), snapshot(&served.join("htdocs")));

    // Import into a fresh directory.
    let back = t.path().join("back");
    let (_, r) = run(
        factory.clone(),
        SyncOptions::new(&back),
        &t.path().join("state/back.json"),
        Direction::Import,
    )
    .await;
    assert!(r.is_success(), "{:?}", r.failures().collect::<Vec<_>>());
    assert_eq!(r.counts.downloaded, files);
    assert_eq!(snapshot(&back), snapshot(&local));
    // Rerun of the import changes nothing.
    let (plan, _) = run(
        factory,
        SyncOptions::new(&back),
        &t.path().join("state/back.json"),
        Direction::Import,
    )
    .await;
    assert!(plan.is_noop(), "{plan}");

    // A wrong password is a login error for the whole run, without the password in it.
    let mut bad_opts = o.clone();
    bad_opts.login.password = SecretString::from("wrong-password-xyz".to_string());
    let err = test_login(&bad_opts).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Login, "{err}");
    assert!(!format!("{err:?}").contains("wrong-password-xyz"));
    let bad = bad_opts.factory();
    let mut e = Engine::new(
        bad,
        SyncOptions::new(&local),
        Journal::in_memory(),
        Arc::new(NoProgress),
    );
    let err = e.plan(Direction::Export).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Login, "{err}");
    assert!(!format!("{err:?}").contains("wrong-password-xyz"));
    server.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_server_plain_cycle() {
    cycle(false).await;
}

// Explicit FTPS with a pinned self-signed certificate. This used to fail at the first
// connection with `InvalidMessage(InvalidContentType)` (libunftp's AUTH TLS race; closed by the
// control-connection shim in siteport-ftpd).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_server_ftps_cycle() {
    cycle(true).await;
}
