//! export / import / plan / config check / credential test / demo through the real binary,
//! against real FTP servers (in-process, vsftpd, pure-ftpd; plain and FTPS with `ca_file`),
//! with the file backend and the env backend.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{Sandbox, assert_code, json, mode, stderr, stdout};
use secrecy::ExposeSecret;
use siteport_testsupport::{FtpServer, ServerKind};

/// A small site: nested dirs, a binary file, a name with a space and a non-ASCII letter.
fn write_site(root: &Path) {
    let files: [(&str, Vec<u8>); 5] = [
        ("index.html", b"<h1>hello</h1>\n".to_vec()),
        ("css/site.css", b"body { color: #333 }\n".to_vec()),
        ("img/logo.bin", (0..=255u8).cycle().take(70_000).collect()),
        ("blog/2026/caf\u{e9} menu.html", "<p>caf\u{e9}</p>".into()),
        ("robots.txt", b"User-agent: *\n".to_vec()),
    ];
    for (rel, bytes) in files {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
}

/// Every file under `root`, relative, sorted, with its bytes; the deploy state dir
/// (`.siteport`, siteport's own) left out.
fn snapshot(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.strip_prefix(root)
                .is_ok_and(|r| r == Path::new(".siteport"))
            {
                continue;
            }
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_path_buf();
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

fn pw(server: &FtpServer) -> String {
    server.password.expose_secret().to_owned()
}

/// A `[[site]]` for `server`, using credential `cred`.
fn site_toml(name: &str, server: &FtpServer, cred: &str, local: &str, remote: &str) -> String {
    let tls = if server.tls {
        format!(
            "tls = \"explicit\"\nca_file = \"{}\"",
            server.ca_path().unwrap().display()
        )
    } else {
        "tls = \"none\"".into()
    };
    format!(
        "[[site]]\nname = \"{name}\"\nhost = \"127.0.0.1\"\nport = {}\n{tls}\ncredential = \"{cred}\"\nlocal = \"{local}\"\nremote = \"{remote}\"\nmax_connections = 2\n\n",
        server.port
    )
}

fn write_config(sb: &Sandbox, text: &str) {
    std::fs::write(sb.workdir().join("siteport.toml"), text).unwrap();
}

/// `credential init` + `credential add` in the sandbox's file store.
fn file_store_add(sb: &Sandbox, name: &str, user: &str, password: &str) {
    assert_code(&sb.run(&["credential", "init"], "", &[]), 0);
    let o = sb.run(
        &[
            "credential",
            "add",
            name,
            "--username",
            user,
            "--password-stdin",
        ],
        &format!("{password}\n"),
        &[],
    );
    assert_code(&o, 0);
}

fn env_cred(name: &str, user: &str, password: &str) -> Vec<(String, String)> {
    let up = name.to_uppercase();
    vec![
        (format!("SITEPORT_CRED_{up}_USERNAME"), user.to_owned()),
        (format!("SITEPORT_CRED_{up}_PASSWORD"), password.to_owned()),
    ]
}

fn run_env(sb: &Sandbox, args: &[&str], env: &[(String, String)]) -> Output {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    sb.run(args, "", &env)
}

fn uploaded(o: &Output) -> u64 {
    let v = json(o);
    v["sites"][0]["report"]["counts"]["uploaded"]
        .as_u64()
        .unwrap_or_else(|| panic!("no report in {v}"))
}

/// The full cycle for one server and backend: dry run changes nothing, export is
/// byte-identical on the server, the second export sends nothing, import is byte-identical.
fn cycle(sb: &Sandbox, server: &FtpServer, env: &[(String, String)]) {
    let local = sb.workdir().join("public");
    write_site(&local);
    let remote_dir = server.root().join("htdocs");

    let o = run_env(sb, &["export", "web", "--dry-run"], env);
    assert_code(&o, 0);
    assert!(stdout(&o).contains("upload"), "{}", stdout(&o));
    assert!(stdout(&o).contains("img/logo.bin"), "{}", stdout(&o));
    assert!(
        !remote_dir.exists(),
        "dry run created {}",
        remote_dir.display()
    );
    let jdir = sb.home().join(".local/state/siteport/journal");
    assert_eq!(
        common::journals(&jdir),
        Vec::<String>::new(),
        "dry run wrote the journal"
    );

    let o = run_env(sb, &["--json", "export", "web"], env);
    assert_code(&o, 0);
    assert_eq!(uploaded(&o), 5, "{}", stdout(&o));
    assert_eq!(
        snapshot(&remote_dir),
        snapshot(&local),
        "{}",
        server.label()
    );
    assert_eq!(mode(&jdir), 0o700);
    let written = common::journals(&jdir);
    assert_eq!(
        written.len(),
        1,
        "one journal, for the one site run: {written:?}"
    );
    assert_eq!(mode(&jdir.join(&written[0])), 0o600);

    let o = run_env(sb, &["--json", "export", "web"], env);
    assert_code(&o, 0);
    assert_eq!(uploaded(&o), 0, "second export sent files: {}", stdout(&o));

    let o = run_env(sb, &["import", "copy"], env);
    assert_code(&o, 0);
    assert!(
        stdout(&o).contains("import copy: 5 downloaded"),
        "{}",
        stdout(&o)
    );
    assert_eq!(snapshot(&sb.workdir().join("copy")), snapshot(&local));
}

#[test]
fn file_backend_cycle_in_process() {
    let server = FtpServer::start(ServerKind::InProcess, false);
    let sb = Sandbox::new();
    file_store_add(&sb, "web", &server.user, &pw(&server));
    write_config(
        &sb,
        &(site_toml("web", &server, "web", "public", "/htdocs")
            + &site_toml("copy", &server, "web", "copy", "/htdocs")),
    );
    cycle(&sb, &server, &[]);
}

#[test]
fn file_backend_cycle_vsftpd_ftps_with_ca_file() {
    let server = FtpServer::start(ServerKind::Vsftpd, true);
    let sb = Sandbox::new();
    file_store_add(&sb, "web", &server.user, &pw(&server));
    write_config(
        &sb,
        &(site_toml("web", &server, "web", "public", "/htdocs")
            + &site_toml("copy", &server, "web", "copy", "/htdocs")),
    );
    cycle(&sb, &server, &[]);
}

#[test]
fn env_backend_cycle_in_process_vsftpd_and_pureftpd() {
    for (kind, tls) in [
        (ServerKind::InProcess, false),
        (ServerKind::Vsftpd, false),
        (ServerKind::PureFtpd, true),
    ] {
        let server = FtpServer::start(kind, tls);
        let sb = Sandbox::new();
        write_config(
            &sb,
            &("[credentials]\nbackend = \"env\"\n\n".to_owned()
                + &site_toml("web", &server, "web", "public", "/htdocs")
                + &site_toml("copy", &server, "web", "copy", "/htdocs")),
        );
        cycle(&sb, &server, &env_cred("web", &server.user, &pw(&server)));
    }
}

#[test]
fn legacy_var_config_works_unchanged() {
    let server = FtpServer::start(ServerKind::InProcess, false);
    let sb = Sandbox::new();
    write_site(&sb.workdir().join("public"));
    write_config(
        &sb,
        &format!(
            "[[site]]\nname = \"old\"\nhost = \"${{FTP_HOST}}\"\nport = {}\ntls = \"none\"\nuser = \"${{FTP_USER}}\"\npassword = \"${{FTP_PASS}}\"\nlocal = \"public\"\nremote = \"/\"\n",
            server.port
        ),
    );
    let env = vec![
        ("FTP_HOST".to_owned(), "127.0.0.1".to_owned()),
        ("FTP_USER".to_owned(), server.user.clone()),
        ("FTP_PASS".to_owned(), pw(&server)),
    ];
    let o = run_env(&sb, &["export", "old"], &env);
    assert_code(&o, 0);
    assert_eq!(
        snapshot(server.root()),
        snapshot(&sb.workdir().join("public"))
    );
}

#[test]
fn wrong_password_exits_4_naming_site_and_credential() {
    let server = FtpServer::start(ServerKind::InProcess, false);
    let sb = Sandbox::new();
    write_site(&sb.workdir().join("public"));
    write_config(&sb, &site_toml("web", &server, "web", "public", "/"));
    let wrong = "Wrong-Pa55word-xyz";
    let o = run_env(
        &sb,
        &["--credential-backend", "env", "export", "web"],
        &env_cred("web", &server.user, wrong),
    );
    assert_code(&o, 4);
    let err = stderr(&o);
    assert!(
        err.contains("site 'web'") && err.contains("credential 'web'"),
        "{err}"
    );
    assert!(err.contains("siteport credential add web --force"), "{err}");
    assert!(!err.contains(wrong) && !stdout(&o).contains(wrong), "{err}");
}

#[test]
fn missing_credential_exits_3_with_backend_hint() {
    let sb = Sandbox::new();
    assert_code(&sb.run(&["credential", "init"], "", &[]), 0);
    write_config(
        &sb,
        "[[site]]\nname = \"acme\"\nhost = \"127.0.0.1\"\ncredential = \"acme\"\nlocal = \"public\"\n",
    );
    let o = sb.run(&["export", "acme"], "", &[]);
    assert_code(&o, 3);
    let err = stderr(&o);
    assert!(err.contains("credential 'acme'"), "{err}");
    assert!(err.contains("file backend"), "{err}");
    assert!(err.contains("siteport credential add acme"), "{err}");
    assert!(err.contains("siteport.toml:4:"), "location missing: {err}");

    let o = sb.run(&["--credential-backend", "env", "export", "acme"], "", &[]);
    assert_code(&o, 3);
    assert!(
        stderr(&o).contains("SITEPORT_CRED_ACME_PASSWORD"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn unreachable_server_exits_6() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    }; // closed again: nobody listens there
    let sb = Sandbox::new();
    write_site(&sb.workdir().join("public"));
    write_config(
        &sb,
        &format!(
            "[[site]]\nname = \"web\"\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\ncredential = \"web\"\nlocal = \"public\"\n"
        ),
    );
    let o = run_env(
        &sb,
        &["--credential-backend", "env", "export", "web"],
        &env_cred("web", "u", "some-password-1"),
    );
    assert_code(&o, 6);
    assert!(
        stderr(&o).contains(&format!("127.0.0.1:{port}")),
        "{}",
        stderr(&o)
    );
}

#[test]
fn bad_config_exits_2_with_location() {
    let sb = Sandbox::new();
    write_config(
        &sb,
        "[[site]]\nname = \"web\"\nhost = \"h\"\nmax_connections = \"four\"\n",
    );
    for args in [
        &["export", "web"][..],
        &["config", "check"],
        &["plan", "web"],
    ] {
        let o = sb.run(args, "", &[]);
        assert_code(&o, 2);
        assert!(
            stderr(&o).contains("siteport.toml:4:"),
            "{args:?}: {}",
            stderr(&o)
        );
    }
}

#[test]
fn unknown_site_and_no_site_are_usage_errors() {
    let sb = Sandbox::new();
    write_config(
        &sb,
        "[[site]]\nname = \"web\"\nhost = \"h\"\nlocal = \"x\"\n",
    );
    let o = sb.run(&["export", "nope"], "", &[]);
    assert_code(&o, 2);
    assert!(stderr(&o).contains("known sites: web"), "{}", stderr(&o));
    assert_code(&sb.run(&["export"], "", &[]), 2);
}

#[test]
fn plan_and_config_check() {
    let server = FtpServer::start(ServerKind::InProcess, false);
    let sb = Sandbox::new();
    write_site(&sb.workdir().join("public"));
    write_config(
        &sb,
        &(site_toml("web", &server, "web", "public", "/")
            + "[[site]]\nname = \"broken\"\nhost = \"h\"\ncredential = \"ghost\"\nlocal = \"x\"\n"),
    );
    let env = env_cred("web", &server.user, &pw(&server));
    let o = run_env(&sb, &["--credential-backend", "env", "plan", "web"], &env);
    assert_code(&o, 0);
    let out = stdout(&o);
    assert!(
        out.contains("ACTION") && out.contains("index.html") && out.contains("new"),
        "{out}"
    );
    assert!(
        snapshot(server.root()).is_empty(),
        "plan uploaded something"
    );

    let o = run_env(
        &sb,
        &["--credential-backend", "env", "config", "check"],
        &env,
    );
    assert_code(&o, 3);
    let out = stdout(&o);
    assert!(out.contains("ok    web"), "{out}");
    assert!(out.contains("FAIL  broken"), "{out}");
    assert!(!out.contains(&pw(&server)));

    let o = run_env(
        &sb,
        &["--credential-backend", "env", "--json", "config", "check"],
        &env,
    );
    assert_eq!(json(&o)["sites"][0]["ok"], true);
    assert_eq!(json(&o)["sites"][1]["ok"], false);
}

#[test]
fn credential_test_success_and_failure() {
    let server = FtpServer::start(ServerKind::InProcess, false);
    let sb = Sandbox::new();
    write_config(
        &sb,
        &(site_toml("web", &server, "good", "public", "/")
            + &site_toml("other", &server, "bad", "public", "/")),
    );
    let mut env = env_cred("good", &server.user, &pw(&server));
    env.extend(env_cred("bad", &server.user, "not-the-password-9"));
    let o = run_env(
        &sb,
        &["--credential-backend", "env", "credential", "test", "good"],
        &env,
    );
    assert_code(&o, 0);
    assert!(stdout(&o).contains("ok    good"), "{}", stdout(&o));

    let o = run_env(
        &sb,
        &["--credential-backend", "env", "credential", "test", "--all"],
        &env,
    );
    assert_code(&o, 4);
    let out = stdout(&o);
    assert!(
        out.contains("ok    good") && out.contains("FAIL  bad"),
        "{out}"
    );
    assert!(
        stderr(&o).contains("1 of 2 login tests failed: bad"),
        "{}",
        stderr(&o)
    );
    assert!(!out.contains("not-the-password-9") && !stderr(&o).contains("not-the-password-9"));
}

#[test]
fn every_command_at_vvv_traces_pass_masked_never_the_password() {
    let server = FtpServer::start(ServerKind::InProcess, false);
    let sb = Sandbox::new();
    let password = pw(&server);
    file_store_add(&sb, "web", &server.user, &password);
    write_site(&sb.workdir().join("public"));
    write_config(
        &sb,
        &(site_toml("web", &server, "web", "public", "/")
            + &site_toml("copy", &server, "web", "copy", "/")),
    );
    let commands: [&[&str]; 6] = [
        &["-vvv", "plan", "web"],
        &["-vvv", "export", "web", "--dry-run"],
        &["-vvv", "export", "web"],
        &["-vvv", "import", "copy"],
        &["-vvv", "credential", "test", "web"],
        &["-vvv", "config", "check"],
    ];
    for args in commands {
        let o = sb.run(args, "", &[]);
        assert_code(&o, 0);
        let all = format!("{}{}", stdout(&o), stderr(&o));
        if args[1] != "config" {
            assert!(
                all.contains("PASS ****"),
                "{args:?}: no masked PASS in:\n{all}"
            );
        }
        assert!(!all.contains(&password), "{args:?} leaked the password");
    }
}

#[test]
fn demo_runs_without_any_ftp_server_on_path() {
    let sb = Sandbox::new();
    let o = sb.run(&["demo"], "", &[("PATH", "")]);
    assert_code(&o, 0);
    let out = stdout(&o);
    assert!(out.contains("byte-identical"), "{out}");
    assert!(out.contains("demo finished: OK"), "{out}");
    assert!(out.contains("export demo: 0 uploaded"), "{out}");
    // Nothing of the user's: no store, no journal in the sandbox's HOME or XDG dirs.
    assert!(!sb.store().exists());
    assert!(!sb.home().join(".local/state").exists());
}

/// Sites named `a b` and `a_b` (a space and an underscore: the same once made a file name)
/// with different remotes keep one journal each: journals are keyed by the remote tree, not
/// the site's name (the issue: both once mapped to `a_b.json`). Second exports still send
/// nothing.
#[test]
fn sites_a_space_b_and_a_underscore_b_keep_separate_journals() {
    let server = FtpServer::start(ServerKind::InProcess, false);
    let sb = Sandbox::new();
    file_store_add(&sb, "web", &server.user, server.password.expose_secret());
    for (dir, body) in [("one", "first"), ("two", "second")] {
        std::fs::create_dir_all(sb.workdir().join(dir)).unwrap();
        std::fs::write(sb.workdir().join(dir).join("index.html"), body).unwrap();
    }
    write_config(
        &sb,
        &format!(
            "{}{}",
            site_toml("a b", &server, "web", "one", "/one"),
            site_toml("a_b", &server, "web", "two", "/two")
        ),
    );
    let jdir = sb.home().join(".local/state/siteport/journal");
    for name in ["a b", "a_b"] {
        let o = sb.run(&["--json", "export", name], "", &[]);
        assert_code(&o, 0);
        assert_eq!(uploaded(&o), 1, "{name}: {}", stdout(&o));
    }
    let written = common::journals(&jdir);
    assert_eq!(written.len(), 2, "one journal per remote: {written:?}");
    for name in ["a b", "a_b"] {
        let o = sb.run(&["--json", "export", name], "", &[]);
        assert_code(&o, 0);
        assert_eq!(uploaded(&o), 0, "{name} sent again: {}", stdout(&o));
    }
}
