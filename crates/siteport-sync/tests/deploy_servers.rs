//! Exact deploys against real servers: vsftpd over explicit FTPS (no hash command: LIST
//! times, no MLSD) and proftpd with mod_digest (`HASH`, `XSHA256`; STORs counted in its
//! xferlog). "Another tool" is played by an export that keeps no state and no journal.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use siteport_sync::*;
use siteport_testsupport::{FtpServer, ProFtpd, ServerKind};

const REMOTE: &str = "/site";
const FILES: usize = 30;

fn ftp_endpoint(
    host: &str,
    port: u16,
    tls: bool,
    ca: Option<std::path::PathBuf>,
    user: &str,
    pw: &secrecy::SecretString,
) -> Endpoint {
    let settings = FtpSettings {
        tls: if tls {
            TlsMode::Explicit
        } else {
            TlsMode::None
        },
        ca_file: ca,
        ..FtpSettings::default()
    };
    let mut e = Endpoint::new(
        host.to_string(),
        port,
        Protocol::Ftp(settings),
        REMOTE,
        Login::new(user.to_string(), pw.clone()),
    );
    e.timeout = Duration::from_secs(20);
    e
}

fn make_site(root: &Path, mtime: i64) {
    for i in 0..FILES {
        let rel = format!("s{}/p{i:02}.html", i % 4);
        write(
            root,
            &rel,
            format!("<p>page {i:02} version 1.0.0</p>").as_bytes(),
        );
        set_mtime(&root.join(&rel), mtime);
    }
}

fn edit(root: &Path, rel: &str) {
    let p = root.join(rel);
    let s = std::fs::read_to_string(&p)
        .unwrap()
        .replace("1.0.0", "1.0.1");
    std::fs::write(&p, s).unwrap();
}

fn opts(local: &Path) -> SyncOptions {
    let mut o = SyncOptions::new(local);
    o.retry = fast_retry();
    o
}

/// An upload by "another tool": no deploy state, no journal.
async fn other_tool(f: Arc<dyn RemoteFactory>, local: &Path) {
    let mut o = opts(local);
    o.state_dir = None;
    let mut e = Engine::new(f, o, Journal::in_memory(), Arc::new(NoProgress));
    let plan = e.plan(Direction::Export).await.unwrap();
    let r = e.execute(&plan).await.unwrap();
    e.finish().await.unwrap();
    assert!(r.is_success(), "{:?}", r.failures().collect::<Vec<_>>());
}

fn uploaded(plan: &Plan) -> Vec<&str> {
    plan.actions
        .iter()
        .filter(|a| a.op == Op::Upload)
        .map(|a| a.path.as_str())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vsftpd_ftps_two_machines_and_first_export() {
    let server = FtpServer::start(ServerKind::Vsftpd, true);
    let t = tempfile::tempdir().unwrap();
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    make_site(&a, 1_700_000_000);
    let f = connect_factory(&ftp_endpoint(
        &server.host,
        server.port,
        true,
        server.ca_path(),
        &server.user,
        &server.password,
    ));
    let (ja, jb) = (t.path().join("ja.json"), t.path().join("jb.json"));

    // A tree another tool uploaded, two files edited since: vsftpd cannot hash, so every
    // same-size file goes, with one line saying why; --size-only sends none and warns.
    other_tool(f.clone(), &a).await;
    edit(&a, "s1/p05.html");
    edit(&a, "s2/p10.html");
    let mut so = opts(&a);
    so.size_only = true;
    let mut e = Engine::new(f.clone(), so, Journal::in_memory(), Arc::new(NoProgress));
    let plan = e.plan(Direction::Export).await.unwrap();
    assert!(plan.is_noop(), "{plan}");
    assert!(
        plan.notes
            .iter()
            .any(|n| n.contains("same-size edit is not sent"))
    );
    drop(e);
    let (plan, r) = run(f.clone(), opts(&a), &ja, Direction::Export).await;
    assert_eq!(r.counts.uploaded, FILES, "{plan}");
    let why: Vec<_> = r
        .warnings
        .iter()
        .filter(|w| w.contains("next export is exact"))
        .collect();
    assert_eq!(why.len(), 1, "{:?}", r.warnings);
    let served = server.root().join("site");
    assert_eq!(files_snapshot(&a), files_snapshot(&served));
    let (plan, _) = run(f.clone(), opts(&a), &ja, Direction::Export).await;
    assert!(plan.is_noop(), "A again: {plan}");

    // Machine B: a fresh copy (new mtimes), no journal: nothing to send…
    for (rel, data) in files_snapshot(&a) {
        write(&b, &rel, &data);
        set_mtime(&b.join(&rel), 1_750_000_000);
    }
    let (plan, _) = run(f.clone(), opts(&b), &jb, Direction::Export).await;
    assert!(plan.is_noop(), "B fresh copy: {plan}");
    // …then a same-size edit on B: exactly that file.
    edit(&b, "s3/p07.html");
    let (plan, r) = run(f.clone(), opts(&b), &jb, Direction::Export).await;
    assert_eq!(uploaded(&plan), vec!["s3/p07.html"]);
    assert_eq!(r.counts.uploaded, 1);
    let (plan, _) = run(f.clone(), opts(&b), &jb, Direction::Export).await;
    assert!(plan.is_noop(), "B again: {plan}");
    // A pulls the edit; its journal is stale: nothing.
    edit(&a, "s3/p07.html");
    let (plan, _) = run(f.clone(), opts(&a), &ja, Direction::Export).await;
    assert!(plan.is_noop(), "A with a stale journal: {plan}");

    // Another client rewrites a file with the same size (in place on the server's disk, so
    // the owner stays; its time as that client's upload left it): sent again.
    let p = served.join("s0/p04.html");
    std::fs::write(&p, b"<p>page 04 VERSION 1.0.0</p>").unwrap();
    set_mtime(&p, 1_720_000_000);
    let (plan, r) = run(f.clone(), opts(&a), &ja, Direction::Export).await;
    assert_eq!(uploaded(&plan), vec!["s0/p04.html"], "{plan}");
    assert!(r.is_success());
    assert_eq!(files_snapshot(&a), files_snapshot(&served));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proftpd_hash_sends_only_the_differing_files() {
    let server = ProFtpd::start();
    let t = tempfile::tempdir().unwrap();
    let a = t.path().join("a");
    make_site(&a, 1_700_000_000);
    let f = connect_factory(&ftp_endpoint(
        &server.host,
        server.port,
        false,
        None,
        &server.user,
        &server.password,
    ));
    other_tool(f.clone(), &a).await;
    let stored_before = server.stored().len();
    assert_eq!(stored_before, FILES);
    edit(&a, "s1/p05.html");
    edit(&a, "s2/p10.html");
    // A fresh checkout: new mtimes everywhere, no state, no journal.
    for i in 0..FILES {
        set_mtime(&a.join(format!("s{}/p{i:02}.html", i % 4)), 1_760_000_000);
    }
    let journal = t.path().join("j.json");
    let (plan, r) = run(f.clone(), opts(&a), &journal, Direction::Export).await;
    assert_eq!(
        uploaded(&plan),
        vec!["s1/p05.html", "s2/p10.html"],
        "{plan}"
    );
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    let site_stores: Vec<String> = server
        .stored()
        .into_iter()
        .skip(stored_before)
        .filter(|p| !p.contains("/.siteport/"))
        .collect();
    assert_eq!(site_stores.len(), 2, "{site_stores:?}");
    assert_eq!(
        files_snapshot(&a),
        files_snapshot(&server.root().join("site"))
    );
    // The next export is exact and sends nothing.
    let before = server.stored().len();
    let (plan, _) = run(f, opts(&a), &journal, Direction::Export).await;
    assert!(plan.is_noop(), "{plan}");
    assert_eq!(server.stored().len(), before);
}
