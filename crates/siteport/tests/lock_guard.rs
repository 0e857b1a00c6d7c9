//! The site lock, the delete guard and verification through the real binary against vsftpd
//! over FTPS: concurrent exports (exit 7 naming the holder, `--lock-wait`), a SIGKILLed holder
//! freed by `unlock` and by `lock_timeout`, `status`, the guard's refusals (nothing deleted on
//! the server), `export --verify` catching a file truncated on the server, and
//! `credential add --verify`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{Sandbox, assert_code, bin, json, stderr, stdout};
use secrecy::ExposeSecret;
use siteport_testsupport::{FtpServer, ServerKind};

/// The env backend's variables for credential `web`.
fn cred_env(server: &FtpServer) -> Vec<(String, String)> {
    vec![
        ("SITEPORT_CRED_WEB_USERNAME".into(), server.user.clone()),
        (
            "SITEPORT_CRED_WEB_PASSWORD".into(),
            server.password.expose_secret().to_owned(),
        ),
    ]
}

/// A config with site `web` (FTPS, `ca_file`) from `public` to `/htdocs`, plus `extra` keys.
fn write_config(sb: &Sandbox, server: &FtpServer, extra: &str) {
    let text = format!(
        "[credentials]\nbackend = \"env\"\n\n[[site]]\nname = \"web\"\nhost = \"127.0.0.1\"\nport = {}\n\
         tls = \"explicit\"\nca_file = \"{}\"\ncredential = \"web\"\nlocal = \"public\"\nremote = \"/htdocs\"\n{extra}\n",
        server.port,
        server.ca_path().unwrap().display()
    );
    std::fs::write(sb.workdir().join("siteport.toml"), text).unwrap();
}

/// `n` small files under `public/<dir>/`.
fn write_files(sb: &Sandbox, dir: &str, n: usize) {
    let d = sb.workdir().join("public").join(dir);
    std::fs::create_dir_all(&d).unwrap();
    for i in 0..n {
        std::fs::write(
            d.join(format!("f{i:04}.html")),
            format!("<p>{dir} {i}</p>\n"),
        )
        .unwrap();
    }
}

/// Runs siteport to completion as machine `machine` (its own journal directory).
fn run(sb: &Sandbox, machine: &str, args: &[&str], env: &[(String, String)]) -> Output {
    spawn(sb, machine, args, env).wait_with_output().unwrap()
}

/// Starts siteport as machine `machine`, output captured.
fn spawn(sb: &Sandbox, machine: &str, args: &[&str], env: &[(String, String)]) -> Child {
    let mut c = Command::new(bin());
    c.env_clear()
        .envs(sb.envs())
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("SITEPORT_STATE_DIR", sb.path(machine))
        .current_dir(sb.workdir())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c.spawn().unwrap()
}

/// Every file under `root` except the state dir, relative and sorted, with its bytes.
fn snapshot(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            if rel.starts_with(".siteport") {
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

/// Waits until `path` exists (the holder's owner file on the server's disk).
fn wait_for(path: &Path, within: Duration) {
    let t = Instant::now();
    while !path.exists() {
        assert!(t.elapsed() < within, "{} did not appear", path.display());
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn concurrent_exports_one_runs_the_other_exits_7_or_waits() {
    let server = FtpServer::start(ServerKind::Vsftpd, true);
    let sb = Sandbox::new();
    write_config(&sb, &server, "max_connections = 1");
    let env = cred_env(&server);
    let htdocs = server.root().join("htdocs");
    let owner = htdocs.join(".siteport/lock/owner.json");

    // A run long enough to be caught holding the lock.
    write_files(&sb, "a", 1000);
    let mut first = spawn(&sb, "m1", &["export", "web"], &env);
    wait_for(&owner, Duration::from_secs(20));
    let t = Instant::now();
    let second = run(&sb, "m2", &["export", "web"], &env);
    let took = t.elapsed();
    assert_code(&second, 7);
    let err = stderr(&second);
    assert!(
        err.contains(&format!("pid {}", first.id())) && err.contains("since 20"),
        "the holder is not named: {err}"
    );
    assert!(err.contains("--lock-wait"), "{err}");
    assert!(took < Duration::from_secs(2), "exit 7 took {took:?}");
    // `status` shows the holder meanwhile.
    let st = run(&sb, "m2", &["--json", "status", "web"], &env);
    assert_code(&st, 0);
    let pid = json(&st)["lock"]["pid"].as_u64();
    assert_eq!(pid, Some(u64::from(first.id())), "{}", stdout(&st));
    let first_out = first.wait().unwrap();
    assert_eq!(first_out.code(), Some(0));
    assert!(!owner.exists(), "the lock was not released");

    // With --lock-wait the second run waits for the first, then runs.
    write_files(&sb, "b", 1000);
    let first = spawn(&sb, "m1", &["export", "web"], &env);
    wait_for(&owner, Duration::from_secs(20));
    std::fs::write(sb.workdir().join("public/late.html"), "late\n").unwrap();
    let second = run(&sb, "m2", &["export", "web", "--lock-wait", "2m"], &env);
    let first = first.wait_with_output().unwrap();
    assert_code(&first, 0);
    assert_code(&second, 0);
    assert!(
        stderr(&second).contains("waiting up to 2m"),
        "{}",
        stderr(&second)
    );
    assert_eq!(snapshot(&htdocs), snapshot(&sb.workdir().join("public")));
    assert!(!owner.exists(), "the lock was not released");

    let st = run(&sb, "m2", &["status", "web"], &env);
    assert_code(&st, 0);
    assert!(stdout(&st).contains("lock: not locked"), "{}", stdout(&st));
    // The last deploy comes from the deploy state on the server: the second run's, complete,
    // with every file of the site.
    let st = run(&sb, "m1", &["--json", "status", "web"], &env);
    assert_code(&st, 0);
    let v = json(&st);
    let deploy = &v["last_deploy"];
    assert_eq!(deploy["complete"], true, "{v}");
    assert_eq!(deploy["files"].as_u64(), Some(2001), "{v}");
    assert!(
        deploy["who"].as_str().is_some_and(|w| w.contains('@')),
        "{v}"
    );
}

#[test]
fn a_killed_holder_is_freed_by_unlock_and_by_lock_timeout() {
    let server = FtpServer::start(ServerKind::Vsftpd, true);
    let sb = Sandbox::new();
    write_config(&sb, &server, "max_connections = 1\nlock_timeout = \"2s\"");
    let env = cred_env(&server);
    let htdocs = server.root().join("htdocs");
    let owner = htdocs.join(".siteport/lock/owner.json");

    write_files(&sb, "a", 1000);
    let mut holder = spawn(&sb, "m1", &["export", "web"], &env);
    wait_for(&owner, Duration::from_secs(20));
    holder.kill().unwrap(); // SIGKILL: no release
    let pid = holder.id();
    holder.wait().unwrap();
    assert!(owner.exists());

    let o = run(&sb, "m2", &["export", "web"], &env);
    assert_code(&o, 7);
    let o = run(&sb, "m2", &["unlock", "web"], &env);
    assert_code(&o, 0);
    assert!(
        stdout(&o).contains("freed the lock held by") && stdout(&o).contains(&format!("pid {pid}")),
        "{}",
        stdout(&o)
    );
    assert!(!htdocs.join(".siteport/lock").exists());
    let o = run(&sb, "m2", &["unlock", "web"], &env);
    assert_code(&o, 0);
    assert!(stdout(&o).contains("was not locked"), "{}", stdout(&o));

    // Killed again; after lock_timeout (2 s) the next run takes the lock over with a warning.
    write_files(&sb, "b", 1000);
    let mut holder = spawn(&sb, "m1", &["export", "web"], &env);
    wait_for(&owner, Duration::from_secs(20));
    holder.kill().unwrap();
    holder.wait().unwrap();
    std::thread::sleep(Duration::from_millis(3200));
    let o = run(&sb, "m2", &["export", "web"], &env);
    assert_code(&o, 0);
    assert!(
        stderr(&o).contains("took over a lock older than lock_timeout (2s)"),
        "{}",
        stderr(&o)
    );
    assert_eq!(snapshot(&htdocs), snapshot(&sb.workdir().join("public")));
    assert!(!owner.exists());
}

#[test]
fn sigterm_and_ctrl_c_release_the_lock_and_exit_143_and_130() {
    let server = FtpServer::start(ServerKind::Vsftpd, true);
    let sb = Sandbox::new();
    write_config(&sb, &server, "max_connections = 1");
    let env = cred_env(&server);
    let owner = server.root().join("htdocs/.siteport/lock/owner.json");
    write_files(&sb, "a", 1000);
    let holder = spawn(&sb, "m1", &["export", "web"], &env);
    wait_for(&owner, Duration::from_secs(20));
    let kill = Command::new("kill")
        .args(["-TERM", &holder.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let o = holder.wait_with_output().unwrap();
    assert_code(&o, 143);
    assert!(stderr(&o).contains("stopped by SIGTERM"), "{}", stderr(&o));
    assert!(!owner.exists(), "SIGTERM left the lock behind");

    // Ctrl-C (SIGINT): the same, exit 130.
    write_files(&sb, "b", 1000);
    let holder = spawn(&sb, "m1", &["export", "web"], &env);
    wait_for(&owner, Duration::from_secs(20));
    let kill = Command::new("kill")
        .args(["-INT", &holder.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let o = holder.wait_with_output().unwrap();
    assert_code(&o, 130);
    assert!(stderr(&o).contains("stopped by Ctrl-C"), "{}", stderr(&o));
    assert!(!owner.exists(), "Ctrl-C left the lock behind");

    let o = run(&sb, "m2", &["export", "web"], &env);
    assert_code(&o, 0);
    assert_eq!(
        snapshot(&server.root().join("htdocs")),
        snapshot(&sb.workdir().join("public"))
    );
}

#[test]
fn delete_guard_refuses_before_changing_anything() {
    let server = FtpServer::start(ServerKind::Vsftpd, true);
    let sb = Sandbox::new();
    write_config(&sb, &server, "delete = true");
    let env = cred_env(&server);
    let htdocs = server.root().join("htdocs");
    let public = sb.workdir().join("public");
    write_files(&sb, "a", 20);
    assert_code(&run(&sb, "m1", &["export", "web"], &env), 0);
    let before = snapshot(&htdocs);
    assert_eq!(before.len(), 20);

    // The build failed: the output directory is empty.
    std::fs::remove_dir_all(public.join("a")).unwrap();
    let o = run(&sb, "m1", &["export", "web"], &env);
    assert_code(&o, 2);
    assert!(stderr(&o).contains("--allow-empty"), "{}", stderr(&o));
    assert_eq!(snapshot(&htdocs), before, "files were deleted");
    // … or does not exist at all: refused before connecting.
    std::fs::remove_dir(&public).unwrap();
    let o = run(&sb, "m1", &["export", "web"], &env);
    assert_code(&o, 2);
    assert!(stderr(&o).contains("does not exist"), "{}", stderr(&o));
    assert_eq!(snapshot(&htdocs), before);

    // 12 of 20 files gone (60 %): refused with the numbers and the flag.
    write_files(&sb, "a", 20);
    for i in 0..12 {
        std::fs::remove_file(public.join(format!("a/f{i:04}.html"))).unwrap();
    }
    let o = run(&sb, "m1", &["export", "web"], &env);
    assert_code(&o, 2);
    let err = stderr(&o);
    assert!(err.contains("delete 12 of 20 remote files (60%)"), "{err}");
    assert!(err.contains("--max-delete"), "{err}");
    assert_eq!(snapshot(&htdocs), before, "files were deleted");
    assert!(
        !htdocs.join(".siteport/lock").exists(),
        "a refusal kept the lock"
    );

    let o = run(&sb, "m1", &["export", "web", "--max-delete", "100%"], &env);
    assert_code(&o, 0);
    assert_eq!(snapshot(&htdocs), snapshot(&public));

    // --allow-empty really empties the site.
    std::fs::remove_dir_all(public.join("a")).unwrap();
    let o = run(
        &sb,
        "m1",
        &["export", "web", "--allow-empty", "--max-delete", "100%"],
        &env,
    );
    assert_code(&o, 0);
    assert!(snapshot(&htdocs).is_empty());
}

#[test]
fn export_verify_catches_a_file_truncated_on_the_server() {
    let server = FtpServer::start(ServerKind::Vsftpd, true);
    let sb = Sandbox::new();
    write_config(&sb, &server, "max_connections = 1");
    let env = cred_env(&server);
    let htdocs = server.root().join("htdocs");
    let public = sb.workdir().join("public");
    std::fs::create_dir_all(&public).unwrap();
    let big: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
    std::fs::write(public.join("a-first.bin"), &big).unwrap();
    write_files(&sb, "z", 300);

    // Another client truncates the file on the server as soon as the run has put it in
    // place, while the run still sends the rest.
    let target = htdocs.join("a-first.bin");
    let watcher = std::thread::spawn(move || {
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(60) {
            if std::fs::metadata(&target).is_ok_and(|m| m.len() == 100_000) {
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&target)
                    .unwrap();
                f.set_len(10).unwrap();
                return true;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        false
    });
    let o = run(&sb, "m1", &["export", "web", "--verify"], &env);
    assert!(watcher.join().unwrap(), "the file never arrived");
    assert_code(&o, 5);
    let err = stderr(&o);
    assert!(
        err.contains("a-first.bin: sent 100000 bytes, the server lists 10"),
        "{err}"
    );
    assert!(err.contains("verification failed: 1 of 301 files"), "{err}");

    // The next run re-sends it (size differs) and verifies clean, by size only: vsftpd offers
    // no hash command.
    let o = run(&sb, "m1", &["--json", "export", "web", "--verify"], &env);
    assert_code(&o, 0);
    assert_eq!(json(&o)["sites"][0]["verified"], 1, "{}", stdout(&o));
    assert_eq!(
        json(&o)["sites"][0]["verified_by"],
        "size",
        "{}",
        stdout(&o)
    );
    assert_eq!(snapshot(&htdocs), snapshot(&public));
    std::fs::write(public.join("z/f0001.html"), "<p>z 1 edited</p>\n").unwrap();
    let o = run(&sb, "m1", &["export", "web", "--verify"], &env);
    assert_code(&o, 0);
    let lines: Vec<String> = stdout(&o)
        .lines()
        .filter(|l| l.contains("verified"))
        .map(str::to_owned)
        .collect();
    assert_eq!(lines.len(), 1, "{}", stdout(&o));
    assert!(
        lines[0].contains("verified 1 file on the server by size only")
            && lines[0].contains("no hash command"),
        "{}",
        lines[0]
    );
}

/// On proftpd with mod_digest, `--verify` compares the server's SHA-256 of every file sent
/// with the local file's: a rewrite by another client that keeps the length is caught (exit
/// 5, naming the file), and the next export sends the file again.
#[test]
fn export_verify_catches_a_same_size_rewrite_by_hash_on_proftpd() {
    let server = siteport_testsupport::ProFtpd::start();
    let sb = Sandbox::new();
    let text = format!(
        "[credentials]\nbackend = \"env\"\n\n[[site]]\nname = \"web\"\nhost = \"127.0.0.1\"\nport = {}\n\
         tls = \"none\"\ncredential = \"web\"\nlocal = \"public\"\nremote = \"/htdocs\"\nmax_connections = 1\n",
        server.port
    );
    std::fs::write(sb.workdir().join("siteport.toml"), text).unwrap();
    let env = vec![
        ("SITEPORT_CRED_WEB_USERNAME".to_owned(), server.user.clone()),
        (
            "SITEPORT_CRED_WEB_PASSWORD".to_owned(),
            server.password.expose_secret().to_owned(),
        ),
    ];
    let htdocs = server.root().join("htdocs");
    let public = sb.workdir().join("public");
    std::fs::create_dir_all(&public).unwrap();
    let big: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
    std::fs::write(public.join("a-first.bin"), &big).unwrap();
    write_files(&sb, "z", 300);

    // Another client rewrites the file with other bytes of the same length as soon as the run
    // has put it in place, while the run still sends the rest.
    let target = htdocs.join("a-first.bin");
    let sent = big.clone();
    let watcher = std::thread::spawn(move || {
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(60) {
            if std::fs::read(&target).is_ok_and(|b| b == sent) {
                let other: Vec<u8> = sent.iter().map(|b| b ^ 0x5a).collect();
                std::fs::write(&target, other).unwrap();
                return true;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        false
    });
    let o = run(&sb, "m1", &["export", "web", "--verify"], &env);
    assert!(watcher.join().unwrap(), "the file never arrived");
    assert_code(&o, 5);
    let err = stderr(&o);
    assert!(
        err.contains("a-first.bin: same size (100000 bytes) but the server's SHA-256 differs"),
        "{err}"
    );
    assert!(err.contains("verification failed: 1 of 301 files"), "{err}");
    assert!(!err.contains(server.password.expose_secret()));
    assert_eq!(
        std::fs::metadata(htdocs.join("a-first.bin")).unwrap().len(),
        100_000
    );

    // The next export sends that file again (it is not remembered as sent) and verifies it
    // by content.
    let o = run(&sb, "m1", &["--json", "export", "web", "--verify"], &env);
    assert_code(&o, 0);
    let v = json(&o);
    assert_eq!(v["sites"][0]["report"]["counts"]["uploaded"], 1, "{v}");
    assert_eq!(v["sites"][0]["verified"], 1, "{v}");
    assert_eq!(v["sites"][0]["verified_by"], "SHA-256", "{v}");
    assert_eq!(std::fs::read(htdocs.join("a-first.bin")).unwrap(), big);
    assert_eq!(
        server
            .stored()
            .iter()
            .filter(|p| p.contains("a-first.bin"))
            .count(),
        2,
        "{:?}",
        server.stored()
    );
    assert_eq!(snapshot(&htdocs), snapshot(&public));
}

#[test]
fn credential_add_verify_stores_nothing_on_a_refused_login() {
    let server = FtpServer::start(ServerKind::InProcess, false);
    let sb = Sandbox::new();
    let cfg = format!(
        "[[site]]\nname = \"web\"\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\ncredential = \"web\"\nlocal = \"public\"\nremote = \"/\"\n",
        server.port
    );
    std::fs::write(sb.workdir().join("siteport.toml"), cfg).unwrap();
    assert_code(&sb.run(&["credential", "init"], "", &[]), 0);
    let add = |password: &str| {
        sb.run(
            &[
                "credential",
                "add",
                "web",
                "--username",
                &server.user,
                "--password-stdin",
                "--verify",
            ],
            &format!("{password}\n"),
            &[],
        )
    };
    let o = add("not-the-password-7");
    assert_code(&o, 4);
    assert!(stderr(&o).contains("not stored"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("not-the-password-7"));
    let list = sb.run(&["credential", "list"], "", &[]);
    assert_code(&list, 0);
    assert!(!stdout(&list).contains("web"), "{}", stdout(&list));

    let o = add(server.password.expose_secret());
    assert_code(&o, 0);
    let list = sb.run(&["credential", "list"], "", &[]);
    assert!(stdout(&list).contains("web"), "{}", stdout(&list));
}

/// The lock's connection is the run's: a no-change export takes the lock, compares and frees
/// the lock over one login (it took three: lock, engine, release), and the lock is gone after.
#[test]
fn a_run_logs_in_once_for_the_lock_and_the_work() {
    let server = FtpServer::start(ServerKind::Vsftpd, true);
    let sb = Sandbox::new();
    write_config(&sb, &server, "max_connections = 4");
    write_files(&sb, "a", 5);
    let env = cred_env(&server);
    assert_code(&run(&sb, "m1", &["export", "web"], &env), 0);
    let o = run(&sb, "m1", &["-vvv", "export", "web"], &env);
    assert_code(&o, 0);
    let err = stderr(&o);
    let logins = err.lines().filter(|l| l.contains("> USER ")).count();
    assert_eq!(logins, 1, "{err}");
    assert!(err.contains("> RMD /htdocs/.siteport/lock"), "{err}");
    assert!(err.contains("site lock released"), "{err}");
    assert!(!server.root().join("htdocs/.siteport/lock").exists());
    assert!(!err.contains(server.password.expose_secret()));
}
