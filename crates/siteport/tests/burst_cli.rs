//! The burst switch through the real binary against vsftpd over explicit FTPS: an export
//! SIGKILLed while the last (large, rate-limited) file is still on its way, with every other
//! new and changed file already waiting under its temp name, has changed nothing live; the
//! rerun removes the leftovers, converges on the exact tree with no temp file left, exits 0
//! and reports the burst (`switch`, `switch_window_ms` in `--json`, the summary line);
//! `--switch per-file` is reported as such.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{Sandbox, assert_code, json, stdout};
use secrecy::ExposeSecret;
use siteport_testsupport::{FtpServer, ServerKind};

fn cred_env(server: &FtpServer) -> Vec<(String, String)> {
    vec![
        ("SITEPORT_CRED_WEB_USERNAME".into(), server.user.clone()),
        (
            "SITEPORT_CRED_WEB_PASSWORD".into(),
            server.password.expose_secret().to_owned(),
        ),
    ]
}

fn write_config(dir: &Path, server: &FtpServer, extra: &str) {
    std::fs::create_dir_all(dir.join("public")).unwrap();
    let text = format!(
        "[credentials]\nbackend = \"env\"\n\n[[site]]\nname = \"web\"\nhost = \"127.0.0.1\"\n\
         port = {}\ntls = \"explicit\"\nca_file = \"{}\"\ncredential = \"web\"\nlocal = \"public\"\n\
         remote = \"/htdocs\"\ndelete = true\n{extra}\n",
        server.port,
        server.ca_path().unwrap().display()
    );
    std::fs::write(dir.join("siteport.toml"), text).unwrap();
}

fn spawn(sb: &Sandbox, dir: &Path, args: &[&str], env: &[(String, String)]) -> Child {
    Command::new(common::bin())
        .env_clear()
        .envs(sb.envs())
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("SITEPORT_STATE_DIR", sb.path("state"))
        .current_dir(dir)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn run(sb: &Sandbox, dir: &Path, args: &[&str], env: &[(String, String)]) -> Output {
    spawn(sb, dir, args, env).wait_with_output().unwrap()
}

/// Every file under `root` (relative → bytes), the deploy state dir left out.
fn files(root: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            if rel == ".siteport" {
                continue;
            }
            if p.is_dir() {
                walk(root, &p, out);
            } else if let Ok(b) = std::fs::read(&p) {
                out.insert(rel, b);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn is_temp(rel: &str) -> bool {
    rel.ends_with(".siteport-tmp")
}

/// For `dir/.NAME.TAG.siteport-tmp`, `dir/NAME`.
fn temp_target(rel: &str) -> Option<String> {
    let (dir, name) = match rel.rsplit_once('/') {
        Some((d, n)) => (format!("{d}/"), n),
        None => (String::new(), rel),
    };
    let rest = name.strip_prefix('.')?.strip_suffix(".siteport-tmp")?;
    Some(format!("{dir}{}", rest.rsplit_once('.')?.0))
}

/// Bytes that do not compress.
fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn a_kill_between_the_uploads_and_the_burst_changes_nothing_live_and_the_rerun_converges() {
    let server = FtpServer::start(ServerKind::Vsftpd, true);
    let sb = Sandbox::new();
    let work = sb.workdir();
    // A killed run leaves its lock: taken over 2 s later.
    write_config(&work, &server, "max_connections = 2\nlock_timeout = \"2s\"");
    let env = cred_env(&server);
    let public = work.join("public");
    let htdocs = server.root().join("htdocs");
    for d in ["a", "b"] {
        for i in 0..10 {
            let p = public.join(d).join(format!("{i}.html"));
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, format!("old {d} {i}")).unwrap();
        }
    }
    assert_code(&run(&sb, &work, &["export", "web"], &env), 0);
    let old = files(&htdocs);
    assert_eq!(old, files(&public));

    // 10 changed, 5 new, 3 deleted, and a large file that sorts last (`zz-`): at 1 MiB/s
    // its upload takes seconds, while the small files are staged at once.
    let mut small = Vec::new();
    for i in 0..10 {
        let p = format!("a/{i}.html");
        std::fs::write(public.join(&p), format!("NEW a {i} content")).unwrap();
        small.push(p);
    }
    for i in 0..5 {
        let p = format!("c/n{i}.html");
        std::fs::create_dir_all(public.join("c")).unwrap();
        std::fs::write(public.join(&p), format!("brand new {i}")).unwrap();
        small.push(p);
    }
    for i in 7..10 {
        std::fs::remove_file(public.join(format!("b/{i}.html"))).unwrap();
    }
    std::fs::write(public.join("zz-big.bin"), noise(6 << 20)).unwrap();
    let want = files(&public);

    let mut child = spawn(&sb, &work, &["export", "web", "--bwlimit", "1M"], &env);
    let t = Instant::now();
    let staged_all = || {
        let now = files(&htdocs);
        let waiting: Vec<String> = now
            .iter()
            .filter(|(p, b)| is_temp(p) && temp_target(p).and_then(|t| want.get(&t)) == Some(b))
            .filter_map(|(p, _)| temp_target(p))
            .collect();
        let big_on_its_way = now
            .keys()
            .any(|p| is_temp(p) && temp_target(p).as_deref() == Some("zz-big.bin"));
        small.iter().all(|p| waiting.contains(p)) && big_on_its_way
    };
    while !staged_all() {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the small files were not all staged while the large one was on its way: {:?}",
            files(&htdocs).keys().collect::<Vec<_>>()
        );
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the export ended ({status}) before it could be killed");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap(); // SIGKILL: no cleanup at all
    child.wait().unwrap();
    std::thread::sleep(Duration::from_millis(300));

    // Nothing live changed: old content under every final name, no new file, no delete.
    let now = files(&htdocs);
    let live: BTreeMap<_, _> = now.iter().filter(|(p, _)| !is_temp(p)).collect();
    let old_ref: BTreeMap<_, _> = old.iter().collect();
    assert_eq!(live, old_ref, "the live site changed before the burst");
    let temps = now.keys().filter(|p| is_temp(p)).count();
    assert!(temps >= small.len(), "{temps} temp files");

    // The rerun, after the dead run's lock has timed out: stale temps removed, the tree
    // exact, no temp left, exit 0, the burst reported.
    std::thread::sleep(Duration::from_millis(2500));
    let o = run(&sb, &work, &["--json", "export", "web"], &env);
    assert_code(&o, 0);
    let v = json(&o);
    let report = &v["sites"][0]["report"];
    assert_eq!(files(&htdocs), want, "the rerun did not converge");
    assert!(
        !files(&htdocs).keys().any(|p| is_temp(p)),
        "a temp file was left"
    );
    assert!(
        report["temps_removed"].as_array().map_or(0, Vec::len) >= small.len(),
        "{report}"
    );
    assert_eq!(report["switch"], "burst", "{report}");
    let window = report["switch_window_ms"].as_u64().expect("window");
    let total = report["duration_ms"].as_u64().unwrap();
    assert!(window <= total, "window {window} ms of {total} ms");
    eprintln!("rerun: switched in {window} ms of {total} ms");

    // Per file on request: reported as such, the summary says so.
    std::fs::write(public.join("a/0.html"), "per-file edit").unwrap();
    let o = run(
        &sb,
        &work,
        &["--json", "export", "web", "--switch", "per-file"],
        &env,
    );
    assert_code(&o, 0);
    assert_eq!(json(&o)["sites"][0]["report"]["switch"], "per-file");
    std::fs::write(public.join("a/1.html"), "burst edit").unwrap();
    let o = run(&sb, &work, &["export", "web"], &env);
    assert_code(&o, 0);
    assert!(
        stdout(&o).contains("switched in one burst in"),
        "{}",
        stdout(&o)
    );
    assert_eq!(files(&htdocs), files(&public));
}

/// SIGTERM while the small files wait under their temp names and the large one is on its
/// way: the staged files count as in flight, so the cleanup removes every temp file, each
/// is reported interrupted, nothing live changed, and the next run finishes the job.
#[test]
fn a_signal_before_the_burst_removes_every_staged_temp() {
    let server = FtpServer::start(ServerKind::Vsftpd, true);
    let sb = Sandbox::new();
    let work = sb.workdir();
    write_config(&work, &server, "max_connections = 2");
    let env = cred_env(&server);
    let public = work.join("public");
    let htdocs = server.root().join("htdocs");
    std::fs::create_dir_all(public.join("a")).unwrap();
    for i in 0..6 {
        std::fs::write(public.join(format!("a/{i}.html")), format!("old {i}")).unwrap();
    }
    assert_code(&run(&sb, &work, &["export", "web"], &env), 0);
    let old = files(&htdocs);
    let mut small = Vec::new();
    for i in 0..6 {
        let p = format!("a/{i}.html");
        std::fs::write(public.join(&p), format!("NEW {i}")).unwrap();
        small.push(p);
    }
    std::fs::write(public.join("zz-big.bin"), noise(6 << 20)).unwrap();
    let want = files(&public);

    let child = spawn(&sb, &work, &["export", "web", "--bwlimit", "1M"], &env);
    let t = Instant::now();
    loop {
        let now = files(&htdocs);
        let staged: Vec<String> = now
            .iter()
            .filter(|(p, b)| is_temp(p) && temp_target(p).and_then(|t| want.get(&t)) == Some(b))
            .filter_map(|(p, _)| temp_target(p))
            .collect();
        let big = now
            .keys()
            .any(|p| temp_target(p).as_deref() == Some("zz-big.bin"));
        if big && small.iter().all(|p| staged.contains(p)) {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(30), "not staged in time");
        std::thread::sleep(Duration::from_millis(10));
    }
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let o = child.wait_with_output().unwrap();
    assert_code(&o, 143);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    for p in &small {
        assert!(err.contains(&format!("interrupted  {p}")), "{p}: {err}");
    }
    let now = files(&htdocs);
    assert!(
        !now.keys().any(|p| is_temp(p)),
        "temp files left: {:?}",
        now.keys().collect::<Vec<_>>()
    );
    assert_eq!(now, old, "the live site changed");
    let o = run(&sb, &work, &["export", "web"], &env);
    assert_code(&o, 0);
    assert!(!stdout(&o).contains("stale"), "{}", stdout(&o));
    assert_eq!(files(&htdocs), want);
}
