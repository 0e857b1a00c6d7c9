//! Exact deploys from any machine, through the real binary against vsftpd over explicit FTPS:
//! two "machines" (two sandboxes: their own HOME, journal and fresh copy of the site), and an
//! export SIGKILLed on machine A then resumed on machine B, which sends only what the deploy
//! state on the server does not already record.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{Sandbox, assert_code, bin, json, stdout};
use secrecy::ExposeSecret;
use siteport_testsupport::{FtpServer, ServerKind};

fn config(sb: &Sandbox, server: &FtpServer) {
    let text = format!(
        "[credentials]\nbackend = \"env\"\n\n[[site]]\nname = \"web\"\nhost = \"127.0.0.1\"\nport = {}\ntls = \"explicit\"\n\
         ca_file = \"{}\"\ncredential = \"web\"\nlocal = \"public\"\nremote = \"/htdocs\"\n\
         max_connections = 2\n",
        server.port,
        server.ca_path().unwrap().display()
    );
    std::fs::write(sb.workdir().join("siteport.toml"), text).unwrap();
}

fn creds(server: &FtpServer) -> Vec<(String, String)> {
    vec![
        ("SITEPORT_CRED_WEB_USERNAME".into(), server.user.clone()),
        (
            "SITEPORT_CRED_WEB_PASSWORD".into(),
            server.password.expose_secret().to_owned(),
        ),
    ]
}

fn export(sb: &Sandbox, server: &FtpServer, extra: &[&str]) -> Output {
    let env = creds(server);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut args = vec!["--json", "export", "web"];
    args.extend_from_slice(extra);
    sb.run(&args, "", &env)
}

fn uploaded(o: &Output) -> u64 {
    let v = json(o);
    v["sites"][0]["report"]["counts"]["uploaded"]
        .as_u64()
        .unwrap_or_else(|| panic!("no report in {v}"))
}

fn write_site(root: &Path, files: usize, mtime: u64) {
    for i in 0..files {
        let p = root.join(format!("s{}/p{i:04}.html", i % 7));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, format!("<p>page {i:04} version 1.0.0</p>\n")).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_modified(std::time::UNIX_EPOCH + Duration::from_secs(mtime))
            .unwrap();
    }
}

fn edit(root: &Path, rel: &str) {
    let p = root.join(rel);
    let s = std::fs::read_to_string(&p)
        .unwrap()
        .replace("1.0.0", "1.0.1");
    std::fs::write(&p, s).unwrap();
}

/// Every site file under `root` (the deploy state dir and temp files left out), with its
/// bytes.
fn files(root: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            if rel.starts_with(".siteport") || rel.contains("siteport-tmp") {
                continue;
            }
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

#[test]
fn two_machines_deploy_exactly_the_edit() {
    let server = FtpServer::start(ServerKind::Vsftpd, true);
    let (a, b) = (Sandbox::new(), Sandbox::new());
    config(&a, &server);
    config(&b, &server);
    write_site(&a.workdir().join("public"), 40, 1_700_000_000);
    let o = export(&a, &server, &[]);
    assert_code(&o, 0);
    assert_eq!(uploaded(&o), 40);

    // B: a fresh copy (new mtimes, as a CI checkout has), one same-size edit.
    write_site(&b.workdir().join("public"), 40, 1_750_000_000);
    edit(&b.workdir().join("public"), "s0/p0007.html");
    let o = export(&b, &server, &[]);
    assert_code(&o, 0);
    assert_eq!(uploaded(&o), 1, "{}", stdout(&o));
    let served = server.root().join("htdocs");
    assert_eq!(files(&served), files(&b.workdir().join("public")));
    let o = export(&b, &server, &[]);
    assert_code(&o, 0);
    assert_eq!(uploaded(&o), 0, "B again");
    // A gets the same edit; its journal is stale.
    edit(&a.workdir().join("public"), "s0/p0007.html");
    let o = export(&a, &server, &[]);
    assert_code(&o, 0);
    assert_eq!(uploaded(&o), 0, "A with a stale journal");

    // `--size-only` is accepted, and says what it misses.
    let o = export(&a, &server, &["--size-only"]);
    assert_code(&o, 0);
    let all = format!("{}{}", stdout(&o), common::stderr(&o));
    assert!(all.contains("--size-only"), "{all}");
}

#[test]
fn sigkill_on_a_then_b_sends_only_the_rest() {
    const FILES: usize = 1500;
    let server = FtpServer::start(ServerKind::Vsftpd, true);
    let (a, b) = (Sandbox::new(), Sandbox::new());
    config(&a, &server);
    config(&b, &server);
    write_site(&a.workdir().join("public"), FILES, 1_700_000_000);
    let served = server.root().join("htdocs");
    let state = served.join(".siteport/state.json");

    let mut child = Command::new(bin());
    child
        .env_clear()
        .envs(a.envs())
        .envs(creds(&server))
        .current_dir(a.workdir())
        // Per file: the state is written during the run as files go live (every 500); a
        // burst switch writes it once, after the burst.
        .args(["--quiet", "export", "web", "--switch", "per-file"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = child.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the export ended ({status}) before it could be killed");
        }
        assert!(Instant::now() < deadline, "no state written in 120 s");
        if state.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert_eq!(doc["deploy"]["complete"], false);
    let recorded = doc["files"].as_array().unwrap().len();
    assert!((500..FILES).contains(&recorded), "{recorded} recorded");

    let present = files(&served).len();

    // B: the dead run's lock stops it (exit 7) until `unlock` frees it.
    write_site(&b.workdir().join("public"), FILES, 1_750_000_000);
    let o = export(&b, &server, &[]);
    assert_code(&o, 7);
    let env = creds(&server);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_code(&b.run(&["unlock", "web"], "", &env), 0);
    // A fresh copy, no journal: only what the state does not record goes. A file that landed
    // after the state's last write is not recorded, so it cannot be proven equal: sent again.
    let o = export(&b, &server, &[]);
    assert_code(&o, 0);
    let sent = uploaded(&o) as usize;
    assert!(
        FILES - present <= sent && sent <= FILES - recorded,
        "B sent {sent}: {FILES} files, {present} on the server, {recorded} recorded\n{}",
        stdout(&o)
    );
    assert_eq!(files(&served), files(&b.workdir().join("public")));
    let o = export(&b, &server, &[]);
    assert_eq!(uploaded(&o), 0);
}

/// The site's config with the deploy state dir moved out of the web root: `remote` is
/// `/htdocs`, `state_dir` an absolute path beside it.
fn config_outside(sb: &Sandbox, server: &FtpServer, state_dir: &str) {
    config(sb, server);
    let path = sb.workdir().join("siteport.toml");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&format!("state_dir = \"{state_dir}\"\n"));
    std::fs::write(path, text).unwrap();
}

/// Runs siteport as a machine of its own: the sandbox's HOME and a journal dir of its own.
fn run_as(sb: &Sandbox, server: &FtpServer, args: &[&str]) -> Output {
    let journal = sb.path("journal").to_string_lossy().into_owned();
    let mut env = creds(server);
    env.push(("SITEPORT_STATE_DIR".into(), journal));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    sb.run(args, "", &env)
}

#[test]
fn state_dir_outside_the_web_root_serves_two_machines_and_the_lock() {
    let server = FtpServer::start(ServerKind::Vsftpd, true);
    let (a, b) = (Sandbox::new(), Sandbox::new());
    config_outside(&a, &server, "/deploy-state/web");
    config_outside(&b, &server, "/deploy-state/web");
    let served = server.root().join("htdocs");
    let outside = server.root().join("deploy-state/web");

    write_site(&a.workdir().join("public"), 40, 1_700_000_000);
    let o = run_as(&a, &server, &["--json", "export", "web"]);
    assert_code(&o, 0);
    assert_eq!(uploaded(&o), 40);
    // The state is where the key says, with no .htaccess; nothing of siteport's in the web root.
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(outside.join("state.json")).unwrap()).unwrap();
    assert_eq!(doc["files"].as_array().map(Vec::len), Some(40), "{doc}");
    assert!(
        !outside.join(".htaccess").exists(),
        "an .htaccess outside the web root"
    );
    assert!(!outside.join("lock").exists(), "the lock was not released");
    assert!(
        !served.join(".siteport").exists(),
        "state dir in the web root"
    );
    assert_eq!(files(&served), files(&a.workdir().join("public")));

    // Machine B: a fresh copy (new mtimes), one same-size edit, its own empty journal.
    write_site(&b.workdir().join("public"), 40, 1_750_000_000);
    edit(&b.workdir().join("public"), "s3/p0010.html");
    let o = run_as(&b, &server, &["--json", "export", "web"]);
    assert_code(&o, 0);
    assert_eq!(uploaded(&o), 1, "{}", stdout(&o));
    assert_eq!(files(&served), files(&b.workdir().join("public")));
    let o = run_as(&b, &server, &["--json", "export", "web"]);
    assert_eq!(uploaded(&o), 0, "B again");
    let st = run_as(&b, &server, &["--json", "status", "web"]);
    assert_code(&st, 0);
    let st = json(&st);
    assert_eq!(st["last_deploy"]["files"], 40, "{st}");
    assert!(
        st["state_dir"]
            .as_str()
            .is_some_and(|s| s.starts_with("/deploy-state/web")),
        "{st}"
    );

    // A run on A holds the lock in the moved state dir: B exits 7 at once.
    write_site(&a.workdir().join("public/bulk"), 800, 1_700_000_000);
    let owner = outside.join("lock/owner.json");
    let journal = a.path("journal").to_string_lossy().into_owned();
    let first = Command::new(bin())
        .env_clear()
        .envs(a.envs())
        .envs(creds(&server))
        .env("SITEPORT_STATE_DIR", journal)
        .current_dir(a.workdir())
        .args(["--quiet", "export", "web"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while !owner.exists() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "no lock at {}",
            owner.display()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(!served.join(".siteport").exists(), "lock in the web root");
    let second = run_as(&b, &server, &["export", "web"]);
    assert_code(&second, 7);
    assert!(
        common::stderr(&second).contains("locked by another run"),
        "{}",
        common::stderr(&second)
    );
    let first = first.wait_with_output().unwrap();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(!owner.exists(), "the lock was not released");
    assert!(!served.join(".siteport").exists());
}

#[test]
fn state_dir_climbing_with_dotdot_is_a_config_error() {
    let server = FtpServer::start(ServerKind::InProcess, false);
    let sb = Sandbox::new();
    let text = format!(
        "[[site]]\nname = \"web\"\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\nuser = \"u\"\n\
         local = \"public\"\nremote = \"/htdocs\"\nstate_dir = \"../state\"\n",
        server.port
    );
    std::fs::write(sb.workdir().join("siteport.toml"), text).unwrap();
    std::fs::create_dir_all(sb.workdir().join("public")).unwrap();
    for args in [&["export", "web"][..], &["config", "check"][..]] {
        let o = sb.run(args, "", &[]);
        assert_code(&o, 2);
        let err = common::stderr(&o);
        assert!(err.contains("state_dir"), "{args:?}: {err}");
        assert!(err.contains("`..`"), "{args:?}: {err}");
        assert!(err.contains("siteport.toml:9"), "{args:?}: {err}");
    }
    assert!(!server.root().join("state").exists());
}
