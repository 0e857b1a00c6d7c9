//! The deploy state on the server and exact change detection, at the engine level over a
//! local directory remote (puts counted by the test double): two machines with their own
//! journals and fresh copies of the site, a server-side change by another client, a first
//! export over a tree another tool uploaded (with and without a server hash), a run killed
//! midway and resumed on another machine, and broken or hostile state documents.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use siteport_sync::*;

const FILES: usize = 24;

struct Site {
    _t: tempfile::TempDir,
    a: PathBuf,
    b: PathBuf,
    remote: PathBuf,
    ja: PathBuf,
    jb: PathBuf,
    outside: PathBuf,
}

/// Machine A's site, machine B's fresh copy of it (other mtimes, as a CI checkout has), an
/// empty remote, and one journal per machine.
fn site() -> Site {
    let t = tempfile::tempdir().unwrap();
    let outside = t.path().join("outside");
    let a = outside.join("a");
    let b = t.path().join("b");
    let remote = t.path().join("remote");
    std::fs::create_dir_all(&remote).unwrap();
    for i in 0..FILES {
        let rel = format!("d{}/p{i}.html", i % 3);
        write(&a, &rel, format!("page {i:03} version 1.0.0").as_bytes());
        set_mtime(&a.join(&rel), 1_700_000_000);
    }
    copy_fresh(&a, &b);
    Site {
        ja: t.path().join("journal-a/site.json"),
        jb: t.path().join("journal-b/site.json"),
        _t: t,
        a,
        b,
        remote,
        outside,
    }
}

/// Copies every file of `from` into `to` with a new mtime.
fn copy_fresh(from: &Path, to: &Path) {
    for (rel, data) in files_snapshot(from) {
        write(to, &rel, &data);
        set_mtime(&to.join(&rel), 1_750_000_000);
    }
}

fn puts(k: &Knobs) -> usize {
    k.puts.lock().unwrap().values().sum()
}

fn uploads(plan: &Plan) -> Vec<(&str, Reason)> {
    plan.actions
        .iter()
        .filter(|a| a.op == Op::Upload)
        .map(|a| (a.path.as_str(), a.reason))
        .collect()
}

fn opts(local: &Path) -> SyncOptions {
    let mut o = SyncOptions::new(local);
    o.retry = fast_retry();
    o
}

/// Edits a file keeping its size (and, with `keep_time`, its mtime too, like `touch -r`).
fn same_size_edit(root: &Path, rel: &str, keep_time: bool) {
    let p = root.join(rel);
    let m = std::fs::metadata(&p).unwrap().modified().unwrap();
    let old = std::fs::read(&p).unwrap();
    let new = String::from_utf8(old.clone())
        .unwrap()
        .replace("1.0.0", "1.0.1");
    assert_eq!(new.len(), old.len());
    std::fs::write(&p, new).unwrap();
    if keep_time {
        filetime::set_file_mtime(&p, filetime::FileTime::from_system_time(m)).unwrap();
    }
}

#[tokio::test]
async fn two_machines_send_exactly_the_edit() {
    let s = site();
    let (f, k) = WrapFactory::new(&s.remote);
    let (_, r) = run(f.clone(), opts(&s.a), &s.ja, Direction::Export).await;
    assert_eq!(r.counts.uploaded, FILES);
    assert!(s.remote.join(".siteport/state.json").exists());
    assert!(s.remote.join(".siteport/.htaccess").exists());
    let state =
        DeployState::parse(&std::fs::read(s.remote.join(".siteport/state.json")).unwrap()).unwrap();
    assert_eq!(state.files.len(), FILES);
    assert!(state.deploy.complete);
    assert!(
        state.files.values().all(|r| r.remote_mtime_ns.is_some()),
        "listed after upload"
    );

    // B: a fresh copy, no journal: hashes, sends nothing.
    let before = puts(&k);
    let (plan, r) = run(f.clone(), opts(&s.b), &s.jb, Direction::Export).await;
    assert!(plan.is_noop(), "{plan}");
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    assert_eq!(puts(&k), before);

    // B: a same-size edit with a fresh mtime: exactly that file.
    same_size_edit(&s.b, "d1/p7.html", false);
    let (plan, _) = run(f.clone(), opts(&s.b), &s.jb, Direction::Export).await;
    assert_eq!(uploads(&plan), vec![("d1/p7.html", Reason::HashDiffers)]);
    assert_eq!(puts(&k), before + 1);
    assert_eq!(
        std::fs::read(s.remote.join("d1/p7.html")).unwrap(),
        std::fs::read(s.b.join("d1/p7.html")).unwrap()
    );
    // B again: nothing (the stat cache now vouches for every file).
    let (plan, _) = run(f.clone(), opts(&s.b), &s.jb, Direction::Export).await;
    assert!(plan.is_noop(), "{plan}");
    assert_eq!(puts(&k), before + 1);

    // A pulls the same edit; its journal is stale: nothing to send.
    same_size_edit(&s.a, "d1/p7.html", true);
    let (plan, _) = run(f.clone(), opts(&s.a), &s.ja, Direction::Export).await;
    assert!(plan.is_noop(), "{plan}");
    assert_eq!(puts(&k), before + 1);

    // A edits with `touch -r` (same size, same mtime): sent without --checksum.
    same_size_edit(&s.a, "d2/p2.html", true);
    let (plan, _) = run(f.clone(), opts(&s.a), &s.ja, Direction::Export).await;
    assert_eq!(uploads(&plan), vec![("d2/p2.html", Reason::HashDiffers)]);
    assert_eq!(puts(&k), before + 2);
    assert_eq!(files_snapshot(&s.a), files_snapshot(&s.remote));
}

#[tokio::test]
async fn a_file_changed_on_the_server_by_another_client_is_sent_again() {
    let s = site();
    let (f, k) = WrapFactory::new(&s.remote);
    run(f.clone(), opts(&s.a), &s.ja, Direction::Export).await;
    // Another client rewrites a file with the same size.
    let p = s.remote.join("d0/p3.html");
    let len = std::fs::metadata(&p).unwrap().len() as usize;
    std::fs::write(&p, vec![b'x'; len]).unwrap();
    set_mtime(&p, 1_760_000_000);
    let before = puts(&k);
    for local in [&s.a, &s.b] {
        let j = if local == &s.a { &s.ja } else { &s.jb };
        let (plan, _) = run(f.clone(), opts(local), j, Direction::Export).await;
        if local == &s.a {
            assert_eq!(uploads(&plan), vec![("d0/p3.html", Reason::RemoteChanged)]);
        } else {
            assert!(plan.is_noop(), "B sees what A repaired: {plan}");
        }
    }
    assert_eq!(puts(&k), before + 1);
    assert_eq!(files_snapshot(&s.a), files_snapshot(&s.remote));
}

/// The remote as another tool left it: every file, two of them with a same-size edit.
fn uploaded_by_another_tool(s: &Site) {
    for (rel, data) in files_snapshot(&s.a) {
        write(&s.remote, &rel, &data);
    }
    write(&s.remote, "d0/p0.html", b"page 000 version 0.9.9");
    write(&s.remote, "d1/p4.html", b"page 004 version 0.9.9");
}

#[tokio::test]
async fn first_export_over_another_tools_tree() {
    // Without a server hash: every same-size file is sent, with one line saying why.
    let s = site();
    uploaded_by_another_tool(&s);
    let (f, k) = WrapFactory::new(&s.remote);
    let (plan, r) = run(f.clone(), opts(&s.a), &s.ja, Direction::Export).await;
    assert_eq!(uploads(&plan).len(), FILES);
    assert!(uploads(&plan).iter().all(|(_, r)| *r == Reason::Unproven));
    assert_eq!(puts(&k), FILES);
    let notes: Vec<_> = r
        .warnings
        .iter()
        .filter(|w| w.contains("next export is exact"))
        .collect();
    assert_eq!(notes.len(), 1, "{:?}", r.warnings);
    // …and the next run is exact.
    let (plan, _) = run(f, opts(&s.a), &s.ja, Direction::Export).await;
    assert!(plan.is_noop(), "{plan}");

    // --size-only: nothing sent, and a warning that same-size edits are missed.
    let s = site();
    uploaded_by_another_tool(&s);
    let (f, k) = WrapFactory::new(&s.remote);
    let mut o = opts(&s.a);
    o.size_only = true;
    let (plan, r) = run(f, o, &s.ja, Direction::Export).await;
    assert!(plan.is_noop(), "{plan}");
    assert_eq!(puts(&k), 0);
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("--size-only") && w.contains("same-size edit")),
        "{:?}",
        r.warnings
    );

    // A server that hashes (SHA-256, as FTP `HASH`): only the two differing files.
    for alg in [HashAlg::Sha256, HashAlg::Sha1, HashAlg::Md5] {
        let s = site();
        uploaded_by_another_tool(&s);
        let f: Arc<dyn RemoteFactory> =
            Arc::new(LocalDirRemoteFactory::new(&s.remote).with_hash(Some(alg)));
        let (plan, r) = run(f.clone(), opts(&s.a), &s.ja, Direction::Export).await;
        assert_eq!(
            uploads(&plan),
            vec![
                ("d0/p0.html", Reason::HashDiffers),
                ("d1/p4.html", Reason::HashDiffers)
            ],
            "{alg:?}"
        );
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
        assert_eq!(files_snapshot(&s.a), files_snapshot(&s.remote));
        // The proven files are recorded: the next run reads nothing from the server.
        let (plan, _) = run(f, opts(&s.a), &s.ja, Direction::Export).await;
        assert!(plan.is_noop(), "{plan}");
    }
}

#[tokio::test]
async fn killed_on_a_resumed_on_b_sends_only_the_rest() {
    let s = site();
    let (f, k) = WrapFactory::new(&s.remote);
    let mut o = opts(&s.a);
    o.max_connections = 2;
    o.state_save_every = 5;
    let mut e = Engine::new(
        f.clone(),
        o,
        Journal::open(&s.ja).unwrap(),
        Arc::new(NoProgress),
    );
    let plan = e.plan(Direction::Export).await.unwrap();
    {
        let exec = e.execute(&plan);
        let k2 = k.clone();
        let enough = async move {
            while puts(&k2) < 14 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        };
        tokio::select! {
            _ = exec => panic!("the run ended before it was killed"),
            _ = enough => {}
        }
        // Dropped mid-run: no final state write, like SIGKILL.
    }
    drop(e);
    let sent_by_a = puts(&k);
    assert!(sent_by_a < FILES, "{sent_by_a}");
    let state =
        DeployState::parse(&std::fs::read(s.remote.join(".siteport/state.json")).unwrap()).unwrap();
    assert!(!state.deploy.complete);
    let recorded = state.files.len();
    assert!(recorded >= 10, "saved during the run: {recorded}");

    let (plan, r) = run(f, opts(&s.b), &s.jb, Direction::Export).await;
    assert!(r.is_success());
    assert_eq!(plan.summary().transfer, FILES - recorded, "{plan}");
    assert_eq!(files_snapshot(&s.b), files_snapshot(&s.remote));
    let state =
        DeployState::parse(&std::fs::read(s.remote.join(".siteport/state.json")).unwrap()).unwrap();
    assert!(state.deploy.complete);
    assert_eq!(state.files.len(), FILES);
}

#[tokio::test]
async fn broken_or_hostile_state_is_no_state() {
    let h = "a".repeat(64);
    let cases: Vec<(&str, String)> = vec![
        ("corrupt", "{not json at all".into()),
        (
            "truncated",
            r#"{"siteport_state":1,"deploy":{"id":"ab","ti"#.into(),
        ),
        (
            "version",
            r#"{"siteport_state":99,"deploy":{},"files":[]}"#.into(),
        ),
        (
            "dotdot",
            format!(
                r#"{{"siteport_state":1,"deploy":{{"id":"ab","time":1,"user":"u","version":"1"}},"files":[["../escape",3,"{h}",3,null]]}}"#
            ),
        ),
        (
            "absolute",
            format!(
                r#"{{"siteport_state":1,"deploy":{{"id":"ab","time":1,"user":"u","version":"1"}},"files":[["/etc/passwd",3,"{h}",3,null]]}}"#
            ),
        ),
        (
            "absurd",
            format!(
                r#"{{"siteport_state":1,"deploy":{{"id":"ab","time":1,"user":"u","version":"1"}},"files":[["d0/p0.html",18446744073709551615,"{h}",3,null]]}}"#
            ),
        ),
    ];
    for (what, doc) in cases {
        let s = site();
        let (f, _) = WrapFactory::new(&s.remote);
        run(f.clone(), opts(&s.a), &s.ja, Direction::Export).await;
        let before: BTreeMap<_, _> = files_snapshot(&s.outside);
        write(&s.remote, ".siteport/state.json", doc.as_bytes());
        // Machine B (no journal) has only the server's word: broken, so no state.
        let (plan, r) = run(f.clone(), opts(&s.b), &s.jb, Direction::Export).await;
        assert!(r.is_success(), "{what}");
        let w: Vec<_> = r
            .warnings
            .iter()
            .filter(|w| w.contains("deploy state") && w.contains(".siteport/state.json"))
            .collect();
        assert_eq!(w.len(), 1, "{what}: {:?}", r.warnings);
        assert!(w[0].contains("as if there was none"), "{what}: {}", w[0]);
        assert_eq!(uploads(&plan).len(), FILES, "{what}: unproven, all sent");
        assert!(!plan.actions.iter().any(|a| a.path.starts_with(".siteport")));
        // Nothing written outside the local root, and the state is valid again.
        assert_eq!(files_snapshot(&s.outside), before, "{what}");
        assert!(!s.a.parent().unwrap().join("escape").exists());
        DeployState::parse(&std::fs::read(s.remote.join(".siteport/state.json")).unwrap()).unwrap();
        // An import never brings the state dir.
        let back = s.b.parent().unwrap().join("back");
        let (_, r) = run(
            f,
            opts(&back),
            &s.b.parent().unwrap().join("jback.json"),
            Direction::Import,
        )
        .await;
        assert!(r.is_success());
        assert!(!back.join(".siteport").exists(), "{what}");
    }
}

#[tokio::test]
async fn state_dir_is_never_uploaded_over_deleted_or_planned() {
    let s = site();
    // A local `.siteport` dir is not the state: never sent.
    write(&s.a, ".siteport/state.json", b"local junk");
    let (f, _) = WrapFactory::new(&s.remote);
    let mut o = opts(&s.a);
    o.delete = true;
    // Excludes that would match it do not hide the state from the engine.
    o.excludes = Excludes::new(&[".*", "*.json"]).unwrap();
    let (plan, r) = run(f.clone(), o.clone(), &s.ja, Direction::Export).await;
    assert!(r.is_success());
    assert!(
        !plan.actions.iter().any(|a| a.path.starts_with(".siteport")),
        "{plan}"
    );
    DeployState::parse(&std::fs::read(s.remote.join(".siteport/state.json")).unwrap()).unwrap();
    // With delete and the local dir gone from under it, the state stays.
    std::fs::remove_dir_all(s.a.join(".siteport")).unwrap();
    let before = std::fs::metadata(s.remote.join(".siteport/state.json"))
        .unwrap()
        .modified()
        .unwrap();
    let (plan, _) = run(f, o, &s.ja, Direction::Export).await;
    assert!(plan.is_noop(), "{plan}");
    let after = std::fs::metadata(s.remote.join(".siteport/state.json"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(before, after, "a no-change run does not rewrite the state");
    assert!(s.remote.join(".siteport/.htaccess").exists());
}

#[tokio::test]
async fn journal_mirrors_the_state_so_it_is_not_downloaded_again() {
    let s = site();
    let (f, _) = WrapFactory::new(&s.remote);
    run(f.clone(), opts(&s.a), &s.ja, Direction::Export).await;
    {
        let j = Journal::open(&s.ja).unwrap();
        let c = j
            .state_cache()
            .expect("the journal names the state it mirrors")
            .clone();
        let state =
            DeployState::parse(&std::fs::read(s.remote.join(".siteport/state.json")).unwrap())
                .unwrap();
        assert_eq!(c.id, state.deploy.id);
    }
    // Make the document unreadable but keep its size and time: a run that downloaded it
    // would warn; the journal's mirror is used instead.
    let p = s.remote.join(".siteport/state.json");
    let m = std::fs::metadata(&p).unwrap();
    std::fs::write(&p, vec![b' '; m.len() as usize]).unwrap();
    filetime::set_file_mtime(
        &p,
        filetime::FileTime::from_system_time(m.modified().unwrap()),
    )
    .unwrap();
    let (plan, r) = run(f, opts(&s.a), &s.ja, Direction::Export).await;
    assert!(plan.is_noop(), "{plan}");
    assert!(r.warnings.is_empty(), "not downloaded: {:?}", r.warnings);
}

#[test]
fn git_commit_of_this_checkout_is_found() {
    // The repository this test runs in is a git checkout (or worktree).
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    if here.ancestors().any(|d| d.join(".git").exists()) {
        let c = git_commit(here).expect("commit");
        assert!(c.len() == 40 || c.len() == 64, "{c}");
    }
}

/// Uploads of site files (not the state document, which goes to an absolute path here).
fn site_puts(k: &Knobs) -> usize {
    k.puts
        .lock()
        .unwrap()
        .iter()
        .filter(|(p, _)| !p.starts_with('/'))
        .map(|(_, n)| n)
        .sum()
}

/// A state dir outside the remote root (an absolute path, reaching the "server" unchanged):
/// the state lives there without an `.htaccess`, nothing of it lands in the remote root, a
/// local `.siteport` dir is then an ordinary part of the site, and a second machine still
/// sends exactly its same-size edit.
#[tokio::test]
async fn state_dir_outside_the_remote_root() {
    let s = site();
    let outside = s.remote.parent().unwrap().join("private/state");
    let abs = outside.to_str().unwrap().to_string();
    let o = |local: &Path| {
        let mut o = opts(local);
        o.state_dir = Some(abs.clone());
        o.delete = true;
        o
    };
    for root in [&s.a, &s.b] {
        write(root, ".siteport/keep.txt", b"mine");
    }
    let (f, k) = WrapFactory::new(&s.remote);
    let (_, r) = run(f.clone(), o(&s.a), &s.ja, Direction::Export).await;
    assert!(r.is_success(), "{:?}", r.failures().collect::<Vec<_>>());
    assert_eq!(r.counts.uploaded, FILES + 1);
    let state = DeployState::parse(&std::fs::read(outside.join("state.json")).unwrap()).unwrap();
    assert_eq!(state.files.len(), FILES + 1);
    assert!(!outside.join(".htaccess").exists());
    assert!(!outside.join("lock").exists());
    assert!(!s.remote.join(".siteport/state.json").exists());
    assert!(!s.remote.join(".siteport/.htaccess").exists());
    assert_eq!(files_snapshot(&s.a), files_snapshot(&s.remote));

    let before = site_puts(&k);
    same_size_edit(&s.b, "d1/p7.html", false);
    let (plan, r) = run(f.clone(), o(&s.b), &s.jb, Direction::Export).await;
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    assert_eq!(uploads(&plan), vec![("d1/p7.html", Reason::HashDiffers)]);
    assert_eq!(site_puts(&k), before + 1);
    assert_eq!(files_snapshot(&s.b), files_snapshot(&s.remote));

    // The lock is taken there too.
    let mut conn = f.connect().await.unwrap();
    let owner = LockOwner::current("test");
    let got = try_lock(conn.as_mut(), &abs, &owner, Duration::from_secs(60))
        .await
        .unwrap();
    assert!(matches!(got, Attempt::Acquired(_)), "{got:?}");
    assert!(outside.join("lock/owner.json").exists());
    assert!(!s.remote.join(".siteport/lock").exists());
    assert!(break_lock(conn.as_mut(), &abs).await.unwrap().is_some());
}
