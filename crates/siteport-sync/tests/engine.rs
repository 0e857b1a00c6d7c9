//! The engine end to end through `LocalDirRemote` (a real directory as the "remote"), with
//! wrappers for what only a server can do (421, flaky transfers, hostile names).

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::*;
use siteport_sync::*;

fn dirs() -> (
    tempfile::TempDir,
    std::path::PathBuf,
    std::path::PathBuf,
    std::path::PathBuf,
) {
    let t = tempfile::tempdir().unwrap();
    let local = t.path().join("site");
    let remote = t.path().join("remote");
    let journal = t.path().join("state/journal/site.json");
    std::fs::create_dir_all(&local).unwrap();
    std::fs::create_dir_all(&remote).unwrap();
    (t, local, remote, journal)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_import_cycle_with_awkward_names() {
    let (t, local, remote, journal) = dirs();
    let files = generate_site(&local);
    let (f, knobs) = WrapFactory::new(&remote);
    let (plan, report) = run(
        f.clone(),
        SyncOptions::new(&local),
        &journal,
        Direction::Export,
    )
    .await;
    assert!(
        report.is_success(),
        "{:?}",
        report.failures().collect::<Vec<_>>()
    );
    assert_eq!(report.counts.uploaded, files);
    assert_eq!(plan.summary().transfer, files);
    assert_eq!(snapshot(&local), snapshot(&remote));
    // Each directory created once, parents before children.
    let mkdirs: Vec<&str> = plan
        .actions
        .iter()
        .filter(|a| a.op == Op::Mkdir)
        .map(|a| a.path.as_str())
        .collect();
    assert!(
        mkdirs.iter().position(|d| *d == "assets") < mkdirs.iter().position(|d| *d == "assets/img")
    );
    assert_eq!(report.counts.dirs_created, mkdirs.len());
    // Times carried over (LocalDirRemote can set them).
    let lm = std::fs::metadata(local.join("index.html"))
        .unwrap()
        .modified()
        .unwrap();
    let rm = std::fs::metadata(remote.join("index.html"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(lm, rm);

    // No change: nothing sent, nothing hashed needlessly.
    let puts_before: usize = knobs.puts.lock().unwrap().values().sum();
    let (plan, report) = run(
        f.clone(),
        SyncOptions::new(&local),
        &journal,
        Direction::Export,
    )
    .await;
    assert!(plan.is_noop(), "{plan}");
    assert_eq!(report.counts.uploaded, 0);
    assert_eq!(report.counts.skipped, files);
    assert_eq!(
        knobs.puts.lock().unwrap().values().sum::<usize>(),
        puts_before
    );

    // Import into a directory that does not exist yet.
    let back = t.path().join("back");
    let (_, report) = run(
        f.clone(),
        SyncOptions::new(&back),
        &t.path().join("state/back.json"),
        Direction::Import,
    )
    .await;
    assert!(
        report.is_success(),
        "{:?}",
        report.failures().collect::<Vec<_>>()
    );
    assert_eq!(report.counts.downloaded, files);
    assert_eq!(snapshot(&back), snapshot(&local));
    let bm = std::fs::metadata(back.join("index.html"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(bm, rm, "import sets the remote mtime");
    // No leftovers of temp files.
    assert!(!snapshot(&back).keys().any(|k| k.contains(".siteport-")));
    let (plan, _) = run(
        f,
        SyncOptions::new(&back),
        &t.path().join("state/back.json"),
        Direction::Import,
    )
    .await;
    assert!(plan.is_noop(), "{plan}");
}

#[tokio::test]
async fn same_size_edit_caught_and_server_clock_skew_ignored() {
    let (_t, local, remote, journal) = dirs();
    write(&local, "a.html", b"hello world");
    write(&local, "b.html", b"unchanged");
    let (f, knobs) = WrapFactory::new(&remote);
    // A LIST-only server whose clock is two hours ahead and lists minutes only.
    *knobs.list_times_skew.lock().unwrap() = Some(7200);
    run(
        f.clone(),
        SyncOptions::new(&local),
        &journal,
        Direction::Export,
    )
    .await;
    assert_eq!(knobs.puts.lock().unwrap().len(), 2);

    // Rerun: skew and truncated times do not cause a re-upload.
    let (plan, _) = run(
        f.clone(),
        SyncOptions::new(&local),
        &journal,
        Direction::Export,
    )
    .await;
    assert!(plan.is_noop(), "{plan}");

    // Same-size edit, time moved backwards on purpose: only the hash can tell.
    write(&local, "a.html", b"HELLO WORLD");
    set_mtime(&local.join("a.html"), 1_000_000_000);
    let (plan, report) = run(
        f.clone(),
        SyncOptions::new(&local),
        &journal,
        Direction::Export,
    )
    .await;
    let a: Vec<_> = plan.actions.iter().filter(|a| a.op == Op::Upload).collect();
    assert_eq!(a.len(), 1, "{plan}");
    assert_eq!(a[0].path, "a.html");
    assert_eq!(a[0].reason, Reason::HashDiffers);
    assert_eq!(report.counts.uploaded, 1);
    assert_eq!(
        std::fs::read(remote.join("a.html")).unwrap(),
        b"HELLO WORLD"
    );

    // An edit that restores the exact time too (`touch -r`): the ctime moved, so the stat
    // cache no longer vouches for the content; the hash shows the edit, without --checksum.
    let t0 = std::fs::metadata(local.join("b.html"))
        .unwrap()
        .modified()
        .unwrap();
    write(&local, "b.html", b"UNCHANGED");
    filetime::set_file_mtime(
        local.join("b.html"),
        filetime::FileTime::from_system_time(t0),
    )
    .unwrap();
    let (plan, _) = run(
        f.clone(),
        SyncOptions::new(&local),
        &journal,
        Direction::Export,
    )
    .await;
    let up: Vec<_> = plan
        .actions
        .iter()
        .filter(|a| a.op == Op::Upload)
        .map(|a| (a.path.as_str(), a.reason))
        .collect();
    assert_eq!(up, vec![("b.html", Reason::HashDiffers)]);
    let mut o = SyncOptions::new(&local);
    o.checksum = true;
    let (plan, _) = run(f, o, &journal, Direction::Export).await;
    assert!(plan.is_noop(), "{plan}");
    assert_eq!(std::fs::read(remote.join("b.html")).unwrap(), b"UNCHANGED");
}

#[tokio::test]
async fn excluded_files_neither_sent_nor_deleted_and_delete_removes_extras() {
    let (_t, local, remote, journal) = dirs();
    write(&local, "index.html", b"x");
    write(&local, ".git/config", b"secret-ish");
    write(&local, "notes.tmp", b"t");
    write(&local, "sub/draft.tmp", b"t");
    write(&remote, "remote-only.tmp", b"keep me");
    write(&remote, ".git/HEAD", b"keep me too");
    write(&remote, "old/deep/x.html", b"gone locally");
    write(&remote, "old/y.html", b"gone locally");
    write(&remote, "stale.html", b"gone locally");
    let (f, _) = WrapFactory::new(&remote);
    let mut o = SyncOptions::new(&local);
    o.excludes = Excludes::new(&[".git/**", "*.tmp"]).unwrap();

    // delete = false: extras stay.
    let (_, r) = run(f.clone(), o.clone(), &journal, Direction::Export).await;
    assert_eq!(r.counts.deleted, 0);
    assert!(remote.join("stale.html").exists());

    o.delete = true;
    let (plan, r) = run(f, o, &journal, Direction::Export).await;
    assert!(r.is_success(), "{:?}", r.failures().collect::<Vec<_>>());
    assert_eq!(r.counts.deleted, 3, "{plan}");
    assert_eq!(r.counts.dirs_removed, 2, "{plan}");
    let s = snapshot(&remote);
    let names: Vec<&str> = s.keys().map(String::as_str).collect();
    // `sub` holds only an excluded file: it is not created (issue 19).
    assert_eq!(
        names,
        vec![".git", ".git/HEAD", "index.html", "remote-only.tmp"],
        "excluded files neither sent nor deleted"
    );
}

/// Stops the engine after `k` completed uploads, as a crash would.
struct StopAfter {
    k: usize,
    done: AtomicUsize,
    stop: Mutex<Option<Arc<AtomicBool>>>,
}

impl Progress for StopAfter {
    fn finished(&self, _w: usize, o: &FileOutcome) {
        if o.op == Op::Upload
            && self.done.fetch_add(1, Ordering::SeqCst) + 1 >= self.k
            && let Some(s) = &*self.stop.lock().unwrap()
        {
            s.store(true, Ordering::SeqCst);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_run_resumes_and_sends_only_the_rest() {
    let (_t, local, remote, journal) = dirs();
    for i in 0..40 {
        write(
            &local,
            &format!("d{}/f{i:02}.txt", i % 4),
            format!("file {i}").as_bytes(),
        );
    }
    let (f, knobs) = WrapFactory::new(&remote);
    let progress = Arc::new(StopAfter {
        k: 10,
        done: AtomicUsize::new(0),
        stop: Mutex::new(None),
    });
    let mut o = SyncOptions::new(&local);
    o.max_connections = 2;
    let mut e = Engine::new(
        f.clone(),
        o.clone(),
        Journal::open(&journal).unwrap(),
        progress.clone(),
    );
    *progress.stop.lock().unwrap() = Some(e.stop_handle());
    let plan = e.plan(Direction::Export).await.unwrap();
    let r1 = e.execute(&plan).await.unwrap();
    assert!(r1.stopped);
    assert!(!r1.is_success());
    let first = r1.counts.uploaded;
    assert!((10..40).contains(&first), "stopped after {first}");
    // Killed: no finish(), no compaction; the journal log is all there is.
    drop(e);
    assert!(journal.with_extension("json.log").exists());

    let (plan, r2) = run(f, o, &journal, Direction::Export).await;
    assert_eq!(plan.summary().transfer, 40 - first, "{plan}");
    assert_eq!(r2.counts.uploaded, 40 - first);
    assert_eq!(r2.counts.skipped, first);
    // Every file sent exactly once over both runs.
    let puts = knobs.puts.lock().unwrap();
    assert_eq!(puts.len(), 40);
    assert!(puts.values().all(|&n| n == 1), "{puts:?}");
    assert_eq!(snapshot(&local), snapshot(&remote));
}

#[tokio::test]
async fn unsafe_remote_names_refused_and_nothing_written_outside_root() {
    let (t, _local, remote, journal) = dirs();
    write(&remote, "good.html", b"ok");
    write(&remote, "sub/inner.html", b"ok");
    write(&t.path().join("decoy"), "x", b"remote content outside");
    let (f, knobs) = WrapFactory::new(&remote);
    let hostile = |name: &str| RemoteEntry {
        name: name.into(),
        kind: EntryKind::File,
        size: 3,
        mtime: None,
        mtime_precise: false,
    };
    knobs.inject.lock().unwrap().insert(
        String::new(),
        vec![
            hostile("../escape"),
            hostile(".."),
            hostile("/etc/passwd-abs"),
            hostile("a\\..\\b"),
            hostile("nul\0byte"),
            hostile("cr\r\nDELE x"),
        ],
    );
    knobs
        .inject
        .lock()
        .unwrap()
        .insert("sub".into(), vec![hostile("../../escape2")]);
    // A local link in the import target pointing out of the root must not be followed.
    let target = t.path().join("import");
    let outside = t.path().join("outside");
    std::fs::create_dir_all(&target).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, target.join("sub")).unwrap();

    let (plan, r) = run(f, SyncOptions::new(&target), &journal, Direction::Import).await;
    // `..` (like `.`) is what LIST prints for the parent: skipped silently; the rest refused.
    assert_eq!(
        r.problems
            .iter()
            .filter(|p| p.kind == ProblemKind::UnsafeName)
            .count(),
        6,
        "{:?}",
        r.problems
    );
    assert_eq!(r.counts.downloaded, 1, "{plan}");
    assert_eq!(std::fs::read(target.join("good.html")).unwrap(), b"ok");
    // The link is reported and nothing went through it.
    assert!(r.failures().any(|o| o.path == "sub/inner.html"));
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
    assert!(!t.path().join("escape").exists());
    assert!(!t.path().join("escape2").exists());
    assert!(!r.is_success());
    let json = serde_json::to_string(&r).unwrap();
    assert!(json.contains("unsafe_name"));
}

#[tokio::test]
async fn import_delete_removes_local_extras_but_not_excluded() {
    let (_t, local, remote, journal) = dirs();
    write(&remote, "a.html", b"a");
    write(&local, "a.html", b"a");
    write(&local, "extra.html", b"x");
    write(&local, "olddir/x.html", b"x");
    write(&local, "cache.tmp", b"x");
    let (f, _) = WrapFactory::new(&remote);
    let mut o = SyncOptions::new(&local);
    o.delete = true;
    o.excludes = Excludes::new(&["*.tmp"]).unwrap();
    let (_, r) = run(f, o, &journal, Direction::Import).await;
    assert!(r.is_success(), "{:?}", r.failures().collect::<Vec<_>>());
    let names: Vec<String> = snapshot(&local).into_keys().collect();
    assert_eq!(names, vec!["a.html", "cache.tmp"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_errors_retried_permanent_reported_at_once() {
    let (_t, local, remote, journal) = dirs();
    for i in 0..8 {
        write(&local, &format!("f{i}.txt"), b"data");
    }
    let (f, knobs) = WrapFactory::new(&remote);
    knobs
        .flaky_once
        .lock()
        .unwrap()
        .extend(["f1.txt".to_string(), "f5.txt".to_string()]);
    knobs.forbidden.lock().unwrap().push("f3.txt".into());
    let mut o = SyncOptions::new(&local);
    o.retry = fast_retry();
    let (_, r) = run(f, o, &journal, Direction::Export).await;
    assert_eq!(r.counts.uploaded, 7);
    assert_eq!(r.counts.failed, 1);
    let by: std::collections::BTreeMap<&str, &FileOutcome> =
        r.outcomes.iter().map(|o| (o.path.as_str(), o)).collect();
    assert_eq!(by["f1.txt"].attempts, 2);
    assert_eq!(by["f5.txt"].attempts, 2);
    assert_eq!(by["f3.txt"].attempts, 1, "permanent errors are not retried");
    assert!(matches!(
        &by["f3.txt"].status,
        Status::Failed {
            kind: ErrorKind::Permission,
            ..
        }
    ));
    assert!(!remote.join("f3.txt").exists());
    // Retried after a reconnect: more connections than the 4 workers.
    assert!(knobs.connects.load(Ordering::SeqCst) >= 5);
}

/// A progress that only hands the engine a live byte counter.
struct Live(Arc<AtomicU64>);

impl Progress for Live {
    fn live_bytes(&self) -> Option<Arc<AtomicU64>> {
        Some(self.0.clone())
    }
}

/// The live byte count (what the CLI's bar and stats lines read) ends at exactly the bytes
/// moved, both ways: a large file whose first try failed halfway is not counted one and a
/// half times, and small files (sent whole from memory) are counted too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_byte_count_takes_back_a_failed_try() {
    let (t, local, remote, journal) = dirs();
    let big = 3 * 1024 * 1024 + 17;
    write(&local, "big.bin", &vec![7u8; big]);
    write(&local, "small.txt", b"data");
    let (f, knobs) = WrapFactory::new(&remote);
    knobs.flaky_once.lock().unwrap().push("big.bin".into());
    let mut o = SyncOptions::new(&local);
    o.retry = fast_retry();
    o.state_dir = None;
    let live = Arc::new(AtomicU64::new(0));
    let j = Journal::open(&journal).unwrap();
    let mut e = Engine::new(f, o, j, Arc::new(Live(live.clone())));
    let plan = e.plan(Direction::Export).await.unwrap();
    let r = e.execute(&plan).await.unwrap();
    e.finish().await.unwrap();
    let big_try = r.outcomes.iter().find(|o| o.path == "big.bin").unwrap();
    assert_eq!(big_try.attempts, 2, "{r:?}");
    assert_eq!(r.bytes, big as u64 + 4);
    assert_eq!(live.load(Ordering::SeqCst), r.bytes, "export");

    // And downloads: streamed (the large file) and from memory (the small one).
    let back = t.path().join("back");
    let (f, _) = WrapFactory::new(&remote);
    let mut o = SyncOptions::new(&back);
    o.state_dir = None;
    let live = Arc::new(AtomicU64::new(0));
    let j = Journal::open(&t.path().join("j2.json")).unwrap();
    let mut e = Engine::new(f, o, j, Arc::new(Live(live.clone())));
    let plan = e.plan(Direction::Import).await.unwrap();
    let r = e.execute(&plan).await.unwrap();
    e.finish().await.unwrap();
    assert_eq!(r.counts.downloaded, 2, "{r:?}");
    assert_eq!(live.load(Ordering::SeqCst), big as u64 + 4, "import");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_connections_lowers_the_worker_count() {
    let (_t, local, remote, journal) = dirs();
    for i in 0..30 {
        write(&local, &format!("f{i}.txt"), b"data");
    }
    let (f, knobs) = WrapFactory::new(&remote);
    knobs.limit.store(2, Ordering::SeqCst);
    let mut o = SyncOptions::new(&local);
    o.max_connections = 4;
    o.retry = fast_retry();
    let (_, r) = run(f, o, &journal, Direction::Export).await;
    assert!(r.is_success(), "{:?}", r.failures().collect::<Vec<_>>());
    assert_eq!(r.counts.uploaded, 30);
    assert_eq!(r.connections, 2);
    assert!(knobs.peak.load(Ordering::SeqCst) <= 2);
    assert!(
        r.warnings.iter().any(|w| w.contains("421")),
        "{:?}",
        r.warnings
    );
}

/// One connection, two tries per file; after the plan logged in, `f2.txt`'s first upload
/// drops the connection, and the next `cut` logins are cut by the server (or, with
/// `unreachable`, find no server). Returns the execute's outcome and how many of those
/// logins were tried.
async fn run_with_failing_logins(
    cut: usize,
    unreachable: usize,
) -> (std::result::Result<Report, Error>, usize) {
    let (_t, local, remote, journal) = dirs();
    for i in 0..5 {
        write(&local, &format!("f{i}.txt"), b"data");
    }
    let (f, knobs) = WrapFactory::new(&remote);
    knobs.flaky_once.lock().unwrap().push("f2.txt".into());
    let mut o = SyncOptions::new(&local);
    o.max_connections = 1;
    o.retry = RetryPolicy {
        max_attempts: 2,
        base_delay: std::time::Duration::from_millis(1),
        max_delay: std::time::Duration::from_millis(5),
    };
    let mut e = Engine::new(f, o, Journal::open(&journal).unwrap(), Arc::new(NoProgress));
    let plan = e.plan(Direction::Export).await.unwrap();
    knobs.cut_logins.store(cut, Ordering::SeqCst);
    knobs
        .unreachable_logins
        .store(unreachable, Ordering::SeqCst);
    let r = tokio::time::timeout(std::time::Duration::from_secs(30), e.execute(&plan))
        .await
        .expect("the run ended");
    let _ = e.finish().await;
    let left =
        knobs.cut_logins.load(Ordering::SeqCst) + knobs.unreachable_logins.load(Ordering::SeqCst);
    (r, cut + unreachable - left)
}

/// Logins the server accepted and then cut (a session process killed during USER/PASS) are
/// lost connections, not tries of the file the worker was on: six in a row on the last
/// connection still end with every file sent. Before, they were the file's tries, and the
/// last worker's failure stopped the run with a network error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_cut_by_the_server_spend_no_file_tries() {
    let (r, tried) = run_with_failing_logins(6, 0).await;
    let r = r.unwrap_or_else(|e| panic!("the run stopped: {e}"));
    assert!(r.is_success(), "{:?}", r.failures().collect::<Vec<_>>());
    assert_eq!(r.counts.uploaded, 5);
    assert_eq!(tried, 6);
    let f2 = r.outcomes.iter().find(|o| o.path == "f2.txt").unwrap();
    assert_eq!(f2.attempts, 2, "the cut logins were counted as tries");
}

/// The reconnect budget is bounded: a server that cuts every login from some point on still
/// ends the run (8 reconnects, then the file's last try), as a network failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_cut_forever_still_end_the_run() {
    let (r, tried) = run_with_failing_logins(1000, 0).await;
    match r {
        Ok(r) => assert!(!r.is_success()),
        Err(e) => assert_eq!(e.kind(), ErrorKind::Network, "{e}"),
    }
    assert_eq!(
        tried,
        8 + 1,
        "8 free reconnects, then the file's second try"
    );
}

/// A server not reached at all (connection refused) gets no reconnect budget: the file's
/// tries only, so a run against a server that went away fails fast (exit 6 in the CLI).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_server_gets_only_the_file_tries() {
    let (r, tried) = run_with_failing_logins(0, 1000).await;
    match r {
        Ok(r) => assert!(!r.is_success()),
        Err(e) => assert_eq!(e.kind(), ErrorKind::Network, "{e}"),
    }
    assert_eq!(tried, 1, "only the file's second try");
}

#[tokio::test]
async fn refused_login_ends_the_run_with_a_login_error() {
    let (_t, local, remote, journal) = dirs();
    write(&local, "a", b"a");
    let (f, knobs) = WrapFactory::new(&remote);
    knobs.refuse_login.store(true, Ordering::SeqCst);
    let mut e = Engine::new(
        f,
        SyncOptions::new(&local),
        Journal::open(&journal).unwrap(),
        Arc::new(NoProgress),
    );
    let err = e.plan(Direction::Export).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Login);
    assert!(err.to_string().contains("530"));
}

#[tokio::test]
async fn local_links_out_of_root_reported_links_inside_followed() {
    let (t, local, remote, journal) = dirs();
    write(&local, "real.html", b"real");
    write(&t.path().join("outside"), "secret.txt", b"do not publish");
    std::os::unix::fs::symlink(local.join("real.html"), local.join("alias.html")).unwrap();
    std::os::unix::fs::symlink(t.path().join("outside/secret.txt"), local.join("leak.txt"))
        .unwrap();
    std::os::unix::fs::symlink(t.path().join("outside"), local.join("leakdir")).unwrap();
    let (f, _) = WrapFactory::new(&remote);
    let mut o = SyncOptions::new(&local);
    o.delete = true;
    let (plan, r) = run(f, o, &journal, Direction::Export).await;
    assert_eq!(std::fs::read(remote.join("alias.html")).unwrap(), b"real");
    assert!(!remote.join("leak.txt").exists());
    assert!(!remote.join("leakdir").exists());
    let linked: Vec<&str> = r
        .problems
        .iter()
        .filter(|p| p.kind == ProblemKind::Symlink)
        .map(|p| p.path.as_str())
        .collect();
    assert_eq!(linked, vec!["leak.txt", "leakdir"], "{plan}");
}

#[tokio::test]
async fn dry_run_plan_changes_nothing_and_missing_remote_root_is_created() {
    let (t, local, _remote, journal) = dirs();
    write(&local, "x/y.html", b"y");
    let fresh = t.path().join("new-remote");
    let (f, _) = WrapFactory::new(&fresh);
    let mut e = Engine::new(
        f.clone(),
        SyncOptions::new(&local),
        Journal::open(&journal).unwrap(),
        Arc::new(NoProgress),
    );
    let plan = e.plan(Direction::Export).await.unwrap();
    assert_eq!(plan.summary().transfer, 1);
    assert!(!fresh.exists(), "planning changes nothing");
    let r = e.execute(&plan).await.unwrap();
    e.finish().await.unwrap();
    assert!(r.is_success(), "{:?}", r.failures().collect::<Vec<_>>());
    assert_eq!(std::fs::read(fresh.join("x/y.html")).unwrap(), b"y");
}

/// A first run from this machine (no journal: a fresh CI runner) has the pool's other
/// connections log in while the tree is listed, so that all of them are open when the
/// transfers begin (at a distance a login is several round trips); a run with a journal
/// opens them only as the work shows it pays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_run_logs_in_ahead_of_its_transfers() {
    let (t, site, remote, journal) = dirs();
    for i in 0..40 {
        write(&remote, &format!("d{}/f{i:02}.txt", i % 4), b"x");
    }
    let (f, knobs) = WrapFactory::new(&remote);
    // Listings that take a while, as at a distance: time for the logins to happen.
    knobs.list_delay_ms.store(20, Ordering::SeqCst);
    let mut o = SyncOptions::new(&site);
    o.max_connections = 4;
    let (_, r) = run(f.clone(), o.clone(), &journal, Direction::Import).await;
    assert!(r.is_success(), "{:?}", r.failures().collect::<Vec<_>>());
    assert_eq!(r.counts.downloaded, 40);
    assert_eq!(
        *knobs.connects_at_first_transfer.lock().unwrap(),
        Some(4),
        "every connection logged in before the first download"
    );

    // With a journal: one connection starts the work.
    let (f2, knobs2) = WrapFactory::new(&remote);
    knobs2.list_delay_ms.store(20, Ordering::SeqCst);
    let again = t.path().join("again");
    std::fs::create_dir_all(&again).unwrap();
    for i in 0..40 {
        write(&again, &format!("d{}/f{i:02}.txt", i % 4), b"old");
    }
    let mut o2 = SyncOptions::new(&again);
    o2.max_connections = 4;
    let j2 = t.path().join("state/journal/again.json");
    let (_, r) = run(f2.clone(), o2.clone(), &j2, Direction::Import).await;
    assert!(r.is_success(), "{:?}", r.failures().collect::<Vec<_>>());
    write(&remote, "d0/f00.txt", b"changed");
    *knobs2.connects_at_first_transfer.lock().unwrap() = None;
    let before = knobs2.connects.load(Ordering::SeqCst);
    let (_, r) = run(f2.clone(), o2, &j2, Direction::Import).await;
    assert!(r.is_success(), "{:?}", r.failures().collect::<Vec<_>>());
    assert_eq!(r.counts.downloaded, 1);
    assert_eq!(
        *knobs2.connects_at_first_transfer.lock().unwrap(),
        Some(before + 1),
        "a run with a journal logged in ahead"
    );
}

/// A connected worker lists a whole level in one batch when no other connection is working
/// (one round trip at a distance), rather than a quarter of it at a time for connections
/// that are not open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_connection_lists_a_level_in_one_batch() {
    let (_t, site, remote, journal) = dirs();
    for i in 0..12 {
        write(&site, &format!("d{i:02}/f.txt"), b"x");
    }
    let (f, knobs) = WrapFactory::new(&remote);
    let mut o = SyncOptions::new(&site);
    o.max_connections = 4;
    let (_, r) = run(f.clone(), o.clone(), &journal, Direction::Export).await;
    assert!(r.is_success(), "{:?}", r.failures().collect::<Vec<_>>());
    // Logins slow next to listings, as at a distance: the listings are not worth another.
    knobs.connect_delay_ms.store(200, Ordering::SeqCst);
    // The second run has a journal (no logins ahead) and nothing to do but list.
    knobs.list_batches.lock().unwrap().clear();
    let (plan, _) = run(f.clone(), o, &journal, Direction::Export).await;
    assert!(plan.is_noop(), "{plan}");
    let batches = knobs.list_batches.lock().unwrap().clone();
    assert!(
        batches.iter().any(|b| b.len() >= 12),
        "the twelve directories split into batches {batches:?}"
    );
}

/// The site lock's directory, inside the deploy state dir, is listed in the same batch as
/// the state dir itself, not in a level of its own (a round trip less at a distance).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lock_dir_is_listed_with_its_parent() {
    let (_t, site, remote, journal) = dirs();
    write(&site, "a/index.html", b"x");
    write(&site, "b/index.html", b"y");
    // A lock held: its directory and owner file, as the site lock leaves them.
    write(&remote, ".siteport/lock/owner.json", b"{}");
    let (f, knobs) = WrapFactory::new(&remote);
    let mut o = SyncOptions::new(&site);
    o.max_connections = 1;
    o.state_dir = Some(".siteport".into());
    let mut e = Engine::new(
        f.clone(),
        o,
        Journal::open(&journal).unwrap(),
        Arc::new(NoProgress),
    );
    let plan = e.plan(Direction::Export).await.unwrap();
    e.finish().await.unwrap();
    assert_eq!(plan.summary().transfer, 2, "{plan}");
    let batches = knobs.list_batches.lock().unwrap().clone();
    assert!(
        batches
            .iter()
            .any(|b| b.contains(&".siteport".to_string())
                && b.contains(&".siteport/lock".to_string())),
        "listed in batches {batches:?}"
    );
}
