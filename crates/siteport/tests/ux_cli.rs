//! What a new user meets in the first hour (issue 19), through the real binary and real
//! servers: short passwords masked without garbling, `import --to` / `export --from`,
//! `config check` applying the run's checks, JSON of a partly failed run.

mod common;

use std::path::Path;
use std::process::Output;

use common::{Sandbox, assert_code, json, stderr, stdout};
use siteport_testsupport::{FtpServer, ServerKind};

fn write_config(sb: &Sandbox, text: &str) {
    std::fs::write(sb.workdir().join("siteport.toml"), text).unwrap();
}

fn write_files(root: &Path, files: &[(&str, &str)]) {
    for (rel, text) in files {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
}

fn env_run(sb: &Sandbox, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut all = vec!["--credential-backend", "env"];
    all.extend_from_slice(args);
    sb.run(&all, "", env)
}

/// No line of `all` shows `short` as a token, and no mask stands inside a word.
fn assert_readable(all: &str, short: &str, args: &[&str]) {
    for line in all.lines() {
        let tokens: Vec<&str> = line
            .split(|c: char| !c.is_alphanumeric())
            .filter(|t| !t.is_empty())
            .collect();
        assert!(
            !tokens.contains(&short),
            "{short} {args:?}: printed as a token in `{line}`"
        );
        for (i, _) in line.match_indices("****") {
            let before = line[..i].chars().next_back();
            let after = line[i + 4..].chars().next();
            assert!(
                !before.is_some_and(char::is_alphanumeric)
                    && !after.is_some_and(char::is_alphanumeric),
                "{short} {args:?}: garbled `{line}`"
            );
        }
    }
}

/// A one-character and a three-letter password: the failing run's messages and `config check`
/// stay readable (no mask inside a word), and the password never shows as a token.
#[test]
fn short_passwords_leave_every_message_readable() {
    let server = FtpServer::start(ServerKind::InProcess, false);
    for short in ["e", "the"] {
        let sb = Sandbox::new();
        write_files(&sb.workdir().join("public"), &[("index.html", "hello")]);
        write_config(
            &sb,
            &format!(
                "[[site]]\nname = \"web\"\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\n\
                 user = \"{}\"\npassword = \"${{FTP_PW}}\"\nlocal = \"public\"\nremote = \"/\"\n",
                server.port, server.user
            ),
        );
        let env = [("FTP_PW", short)];
        // A failing run (the server refuses the password), `config check`, and `-vvv`.
        let o = env_run(&sb, &["export", "web"], &env);
        assert_code(&o, 4);
        let err = stderr(&o);
        assert!(
            err.contains("refused") && err.contains("login"),
            "{short}: {err}"
        );
        if short == "e" {
            // Not one letter `e` of the messages is masked.
            assert!(err.contains("check the username and password"), "{err}");
            assert!(err.contains("PASS ****: 530"), "{err}");
            assert_eq!(err.matches("****").count(), 1, "{err}");
        }
        for args in [
            &["export", "web"][..],
            &["config", "check"][..],
            &["-vvv", "export", "web"][..],
        ] {
            let o = env_run(&sb, args, &env);
            let all = format!("{}{}", stdout(&o), stderr(&o));
            assert!(
                all.contains("127.0.0.1") && all.contains("web"),
                "{short} {args:?}: {all}"
            );
            assert_readable(&all, short, args);
        }
    }
}

/// `credential add` warns about a password shorter than 8 characters (and still stores it).
#[test]
fn credential_add_warns_about_a_short_password() {
    let sb = Sandbox::new();
    assert_code(&sb.run(&["credential", "init"], "", &[]), 0);
    let o = sb.run(
        &[
            "credential",
            "add",
            "acme",
            "--username",
            "u",
            "--password-stdin",
        ],
        "the\n",
        &[],
    );
    assert_code(&o, 0);
    let err = stderr(&o);
    assert!(err.contains("short password (3 character(s))"), "{err}");
    assert!(err.contains("fewer than 8"), "{err}");
    let o = sb.run(
        &[
            "credential",
            "add",
            "long",
            "--username",
            "u",
            "--password-stdin",
        ],
        "a-long-enough-password\n",
        &[],
    );
    assert_code(&o, 0);
    assert!(!stderr(&o).contains("character(s)"), "{}", stderr(&o));
}

/// A site whose `key` line is replaced by `line` (or added), for the value checks.
fn site_with(sb: &Sandbox, port: u16, key: &str, line: &str) -> String {
    let mut lines = vec![
        "[[site]]".to_owned(),
        "name = \"web\"".to_owned(),
        "host = \"127.0.0.1\"".to_owned(),
        format!("port = {port}"),
        "tls = \"none\"".to_owned(),
        "user = \"u\"".to_owned(),
        "password = \"${FTP_PW}\"".to_owned(),
        "local = \"public\"".to_owned(),
        "remote = \"/\"".to_owned(),
    ];
    match lines
        .iter()
        .position(|l| l.starts_with(&format!("{key} =")))
    {
        Some(i) => lines[i] = line.to_owned(),
        None => lines.push(line.to_owned()),
    }
    std::fs::create_dir_all(sb.workdir().join("public")).unwrap();
    lines.join("\n") + "\n"
}

/// Every value the run would refuse is refused by `config check` and by the run itself, before
/// any connection, with exit 2 and file:line:column (issue 18 item 5, issue 19 item 7).
#[test]
fn config_check_applies_every_check_the_run_applies() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let long_host = format!("host = \"{}\"", "h".repeat(5000));
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "host",
            r#"host = "ftp\u0007.example""#.into(),
            "invalid host",
        ),
        (
            "host",
            r#"host = "ftp example.com""#.into(),
            "spaces or '/'",
        ),
        (
            "host",
            r#"host = "ftp.example.com/htdocs""#.into(),
            "spaces or '/'",
        ),
        ("host", long_host, "the limit is"),
        ("user", r#"user = "u\u001b[31m""#.into(), "invalid username"),
        ("user", r#"user = "u\u0001""#.into(), "control character"),
        (
            "password",
            r#"password = "p\u0007w-long-enough""#.into(),
            "invalid password",
        ),
        (
            "password",
            r#"password = "p\u001bw-long-enough""#.into(),
            "invalid password",
        ),
        (
            "password",
            r#"password = "p\r\nSITE x""#.into(),
            "invalid password",
        ),
        (
            "remote",
            r#"remote = "/htdocs\u0001""#.into(),
            "invalid remote",
        ),
        (
            "exclude",
            r#"exclude = ["ok/**", "[unclosed"]"#.into(),
            "exclude",
        ),
        (
            "fingerprint",
            r#"fingerprint = "AB:CD""#.into(),
            "fingerprint is not a SHA-256",
        ),
        (
            "ca_file",
            r#"ca_file = "missing-ca.pem""#.into(),
            "cannot read ca_file",
        ),
        (
            "local",
            r#"local = "a-file.txt""#.into(),
            "is not a directory",
        ),
        ("local", r#"local = "no-such-dir""#.into(), "no-such-dir"),
    ];
    let mut failures = Vec::new();
    for (key, line, want) in &cases {
        let sb = Sandbox::new();
        std::fs::write(sb.workdir().join("a-file.txt"), "x").unwrap();
        let text = site_with(&sb, port, key, line);
        write_config(&sb, &text);
        let line_no = text.lines().position(|l| l == line).unwrap() + 1;
        let at = format!("siteport.toml:{line_no}:");
        let env = [("FTP_PW", "pw-long-enough-1")];
        for args in [
            &["config", "check"][..],
            &["export", "web"][..],
            &["plan", "web"][..],
        ] {
            let o = env_run(&sb, args, &env);
            let err = stderr(&o);
            if o.status.code() != Some(2) || !err.contains(&at) || !err.contains(want) {
                failures.push(format!(
                    "{key} {args:?}: exit {:?}, want 2, {at} and {want:?}:\n{}{err}",
                    o.status.code(),
                    stdout(&o)
                ));
            }
            // Never a control character on the terminal.
            assert!(
                !err.contains(['\u{7}', '\u{1b}', '\u{1}']),
                "{key}: {err:?}"
            );
        }
    }
    // Nothing ever reached the "server": every case failed before connecting.
    assert!(listener.accept().is_err(), "a run connected to the server");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// A missing local directory is a config error at the run too (exit 2, not 5); `import`
/// creates it.
#[test]
fn missing_local_dir_exits_2_but_import_creates_it() {
    let server = FtpServer::start(ServerKind::InProcess, false);
    std::fs::write(server.root().join("index.html"), "remote").unwrap();
    let sb = Sandbox::new();
    let mut text = site_with(
        &sb,
        server.port,
        "user",
        &format!("user = \"{}\"", server.user),
    );
    text = text.replace("local = \"public\"", "local = \"fresh\"");
    write_config(&sb, &text);
    let pw = secrecy::ExposeSecret::expose_secret(&server.password).to_owned();
    let env = [("FTP_PW", pw.as_str())];
    let o = env_run(&sb, &["export", "web"], &env);
    assert_code(&o, 2);
    assert!(stderr(&o).contains("siteport.toml:8:"), "{}", stderr(&o));
    let o = env_run(&sb, &["import", "web"], &env);
    assert_code(&o, 0);
    assert_eq!(
        std::fs::read_to_string(sb.workdir().join("fresh/index.html")).unwrap(),
        "remote"
    );
}

/// The config is found from a subdirectory of the project, and its relative `local` is still
/// relative to the config file.
#[test]
fn config_is_found_from_a_subdirectory() {
    let sb = Sandbox::new();
    write_config(&sb, &site_with(&sb, 21, "host", "host = \"127.0.0.1\""));
    let deep = sb.workdir().join("public/blog/2026");
    std::fs::create_dir_all(&deep).unwrap();
    let o = sb
        .cmd(&["--credential-backend", "env", "config", "check"])
        .current_dir(&deep)
        .env("FTP_PW", "pw-long-enough-1")
        .output()
        .unwrap();
    assert_code(&o, 0);
    let out = stdout(&o);
    assert!(
        out.contains(&format!("{}", sb.workdir().join("siteport.toml").display())),
        "{out}"
    );
    assert!(
        out.contains(&format!("local={}", sb.workdir().join("public").display())),
        "{out}"
    );
}

/// Every file under `root`, relative, sorted, with its text.
fn tree(root: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.push((rel, std::fs::read_to_string(&p).unwrap_or_default()));
            }
        }
    }
    out.sort();
    out
}

/// `import SITE --to DIR` fetches into DIR only: the site's own directory, its journal and the
/// server stay as they were; `export SITE --from DIR` publishes DIR. One site only.
#[test]
fn import_to_and_export_from_another_directory() {
    let server = FtpServer::start(ServerKind::InProcess, false);
    write_files(
        server.root(),
        &[("index.html", "server"), ("blog/a.html", "post")],
    );
    let sb = Sandbox::new();
    write_config(
        &sb,
        &site_with(
            &sb,
            server.port,
            "user",
            &format!("user = \"{}\"", server.user),
        ),
    );
    write_files(
        &sb.workdir().join("public"),
        &[("index.html", "local edit")],
    );
    let pw = secrecy::ExposeSecret::expose_secret(&server.password).to_owned();
    let env = [("FTP_PW", pw.as_str())];
    let before_local = tree(&sb.workdir().join("public"));
    let before_server = tree(server.root());
    let journal_dir = sb.home().join(".local/state/siteport/journal");

    let o = env_run(&sb, &["import", "web", "--to", "copy"], &env);
    assert_code(&o, 0);
    assert_eq!(tree(&sb.workdir().join("copy")), before_server);
    assert_eq!(tree(&sb.workdir().join("public")), before_local);
    assert_eq!(tree(server.root()), before_server);
    assert_eq!(
        common::journals(&journal_dir),
        Vec::<String>::new(),
        "the site's journal was written"
    );

    // The real local dir is not taken for in sync: a plan still shows the local edit.
    let o = env_run(&sb, &["plan", "web"], &env);
    assert_code(&o, 0);
    assert!(stdout(&o).contains("index.html"), "{}", stdout(&o));

    // export --from publishes that directory, and only it.
    write_files(
        &sb.workdir().join("staging"),
        &[("index.html", "staged page"), ("new.html", "n")],
    );
    let o = env_run(&sb, &["export", "web", "--from", "staging"], &env);
    assert_code(&o, 0);
    assert_eq!(
        std::fs::read_to_string(server.root().join("index.html")).unwrap(),
        "staged page"
    );
    assert_eq!(
        std::fs::read_to_string(server.root().join("new.html")).unwrap(),
        "n"
    );
    assert_eq!(tree(&sb.workdir().join("public")), before_local);
    assert_eq!(common::journals(&journal_dir), Vec::<String>::new());

    // One site only; a --from that does not exist is a usage error (exit 2), nothing sent.
    let o = env_run(&sb, &["export", "--all", "--from", "staging"], &env);
    assert_code(&o, 2);
    assert!(stderr(&o).contains("one site"), "{}", stderr(&o));
    let o = env_run(&sb, &["export", "web", "--from", "nope"], &env);
    assert_code(&o, 2);
    assert!(stderr(&o).contains("nope"), "{}", stderr(&o));
    let o = sb.run(&["import", "--help"], "", &[]);
    assert!(stdout(&o).contains("in-memory"), "{}", stdout(&o));
}

/// A real vsftpd over FTPS whose CA the site does not trust: the error says unknown issuer,
/// shows the certificate's fingerprint and subject, and the hint offers the exact
/// `fingerprint = "…"` line, which then works; `-vv` logs the rustls error itself.
#[test]
fn untrusted_vsftpd_certificate_shows_its_fingerprint_and_the_pin_works() {
    let server = FtpServer::start(ServerKind::Vsftpd, true);
    let fp = server.fingerprint().unwrap().to_owned();
    let sb = Sandbox::new();
    let base = site_with(
        &sb,
        server.port,
        "user",
        &format!("user = \"{}\"", server.user),
    )
    .replace("tls = \"none\"", "tls = \"explicit\"");
    write_config(&sb, &base);
    write_files(&sb.workdir().join("public"), &[("index.html", "hello")]);
    let pw = secrecy::ExposeSecret::expose_secret(&server.password).to_owned();
    let env = [("FTP_PW", pw.as_str())];
    let o = env_run(&sb, &["-vv", "plan", "web"], &env);
    assert_ne!(o.status.code(), Some(0));
    let err = stderr(&o);
    assert!(err.contains("not trusted (unknown issuer)"), "{err}");
    assert!(err.contains(&fp), "{err}");
    assert!(err.contains("subject CN="), "{err}");
    assert!(err.contains(&format!("fingerprint = \"{fp}\"")), "{err}");
    assert!(
        err.contains("UnknownIssuer"),
        "the rustls error at -vv: {err}"
    );
    write_config(&sb, &format!("{base}fingerprint = \"{fp}\"\n"));
    let o = env_run(&sb, &["export", "web"], &env);
    assert_code(&o, 0);
}

/// `--json` of a partly failed site lists every failed file with its reason next to the
/// error, and the counts agree: a real vsftpd refuses writes in a directory its session
/// user does not own.
#[test]
fn json_of_a_partly_failed_run_lists_each_failed_file() {
    let server = FtpServer::start(ServerKind::Vsftpd, false);
    // Owned by root (the tests' user), mode 755: vsftpd's session user cannot write in it.
    std::fs::create_dir(server.root().join("locked")).unwrap();
    let sb = Sandbox::new();
    write_config(
        &sb,
        &site_with(
            &sb,
            server.port,
            "user",
            &format!("user = \"{}\"", server.user),
        ),
    );
    write_files(
        &sb.workdir().join("public"),
        &[
            ("index.html", "ok"),
            ("locked/a.html", "a"),
            ("locked/b.html", "b"),
        ],
    );
    let pw = secrecy::ExposeSecret::expose_secret(&server.password).to_owned();
    let env = [("FTP_PW", pw.as_str())];
    let o = env_run(&sb, &["--json", "export", "web"], &env);
    assert_code(&o, 5);
    let v: serde_json::Value = json(&o);
    let site = &v["sites"][0];
    assert_eq!(site["error"]["kind"], "transfers_failed", "{v}");
    let failed = site["failed"].as_array().unwrap();
    let mut paths: Vec<&str> = failed.iter().map(|f| f["path"].as_str().unwrap()).collect();
    paths.sort();
    assert_eq!(paths, ["locked/a.html", "locked/b.html"], "{v}");
    for f in failed {
        assert_eq!(f["op"], "upload");
        assert!(f["message"].as_str().unwrap().contains("553"), "{f}");
        assert_eq!(f["kind"], "permission", "{f}");
    }
    let counts = &site["report"]["counts"];
    assert_eq!(counts["failed"], 2);
    assert_eq!(counts["uploaded"], 1);
    assert!(
        site["error"]["message"]
            .as_str()
            .unwrap()
            .contains("2 of 3 actions failed"),
        "{v}"
    );
}

/// `tls = "none"` is warned about once per run, however many times the site is connected.
#[test]
fn each_warning_once() {
    let sb = Sandbox::new();
    let o = sb.run(&["demo"], "", &[]);
    assert_code(&o, 0);
    let err = stderr(&o);
    for site in ["'demo'", "'demo-copy'"] {
        let n = err
            .lines()
            .filter(|l| l.contains(&format!("site {site} uses tls = \"none\"")))
            .count();
        assert_eq!(n, 1, "{err}");
    }
    let out = stdout(&o);
    // The demo site has 4 directories: the export (whose remote root the site lock creates)
    // and the import count the same 4, not 5.
    let dirs: Vec<&str> = out
        .lines()
        .filter_map(|l| l.split(", ").find(|p| p.ends_with("dirs created")))
        .collect();
    assert_eq!(dirs.len(), 3, "{out}");
    assert!(
        dirs.iter()
            .all(|d| *d == "4 dirs created" || *d == "0 dirs created"),
        "{out}"
    );
    assert!(out.contains("of 4 connection(s)"), "{out}");
}

/// A directory that holds only excluded files is not created on the server.
#[test]
fn dirs_of_excluded_files_only_are_not_created() {
    let server = FtpServer::start(ServerKind::InProcess, false);
    let sb = Sandbox::new();
    write_config(
        &sb,
        &site_with(&sb, server.port, "exclude", "exclude = [\"*.tmp\"]")
            .replace("user = \"u\"", &format!("user = \"{}\"", server.user)),
    );
    write_files(
        &sb.workdir().join("public"),
        &[
            ("index.html", "i"),
            ("drafts/a.tmp", "t"),
            ("drafts/old/b.tmp", "t"),
        ],
    );
    let pw = secrecy::ExposeSecret::expose_secret(&server.password).to_owned();
    let o = env_run(&sb, &["export", "web"], &[("FTP_PW", pw.as_str())]);
    assert_code(&o, 0);
    assert!(server.root().join("index.html").is_file());
    assert!(!server.root().join("drafts").exists(), "{}", stdout(&o));
}

/// A site on the in-process server, with its password in the environment.
fn inprocess_site(sb: &Sandbox, server: &FtpServer) -> String {
    let text = site_with(
        sb,
        server.port,
        "user",
        &format!("user = \"{}\"", server.user),
    );
    write_config(sb, &text);
    secrecy::ExposeSecret::expose_secret(&server.password).to_owned()
}

/// `--exclude`, `--exclude-from` and `--include` on export and plan: an include takes back
/// what any exclude took; a bad pattern or an unreadable file is a usage error (exit 2).
#[test]
fn command_line_filters() {
    let server = FtpServer::start(ServerKind::InProcess, false);
    let sb = Sandbox::new();
    let pw = inprocess_site(&sb, &server);
    let env = [("FTP_PW", pw.as_str())];
    write_files(
        &sb.workdir().join("public"),
        &[
            ("index.html", "i"),
            ("a.tmp", "t"),
            ("drafts/x.html", "x"),
            ("drafts/keep.html", "k"),
        ],
    );
    std::fs::write(
        sb.workdir().join("ex.txt"),
        "# drafts stay home\n\ndrafts/**\n",
    )
    .unwrap();
    let filters = [
        "--exclude",
        "*.tmp",
        "--exclude-from",
        "ex.txt",
        "--include",
        "drafts/keep.html",
    ];
    let mut args = vec!["plan", "web"];
    args.extend(filters);
    let o = env_run(&sb, &args, &env);
    assert_code(&o, 0);
    let plan = stdout(&o);
    assert!(
        plan.contains("drafts/keep.html") && plan.contains("index.html"),
        "{plan}"
    );
    assert!(
        !plan.contains("a.tmp") && !plan.contains("drafts/x.html"),
        "{plan}"
    );
    let mut args = vec!["export", "web"];
    args.extend(filters);
    assert_code(&env_run(&sb, &args, &env), 0);
    assert_eq!(
        tree(server.root())
            .into_iter()
            .map(|(p, _)| p)
            // The deploy state is siteport's, not the site's: the filters do not apply to it.
            .filter(|p| !p.starts_with(".siteport/"))
            .collect::<Vec<_>>(),
        ["drafts/keep.html", "index.html"]
    );
    let o = env_run(&sb, &["export", "web", "--exclude", "[unclosed"], &env);
    assert_code(&o, 2);
    assert!(stderr(&o).contains("--exclude"), "{}", stderr(&o));
    let o = env_run(
        &sb,
        &["export", "web", "--exclude-from", "missing.txt"],
        &env,
    );
    assert_code(&o, 2);
}

/// `--ignore-times` sends every file again, even those the journal and sizes call unchanged.
#[test]
fn ignore_times_resends_everything() {
    let server = FtpServer::start(ServerKind::InProcess, false);
    let sb = Sandbox::new();
    let pw = inprocess_site(&sb, &server);
    let env = [("FTP_PW", pw.as_str())];
    write_files(
        &sb.workdir().join("public"),
        &[("a.html", "a"), ("b/c.html", "c")],
    );
    let o = env_run(&sb, &["export", "web"], &env);
    assert!(stdout(&o).contains("2 uploaded"), "{}", stdout(&o));
    let o = env_run(&sb, &["export", "web"], &env);
    assert!(stdout(&o).contains("0 uploaded"), "{}", stdout(&o));
    let o = env_run(&sb, &["plan", "web", "--ignore-times"], &env);
    assert!(stdout(&o).contains("(--ignore-times)"), "{}", stdout(&o));
    let o = env_run(&sb, &["export", "web", "--ignore-times"], &env);
    assert_code(&o, 0);
    assert!(stdout(&o).contains("2 uploaded"), "{}", stdout(&o));
}

/// `--log-file PATH` gets what stderr gets, masked the same way, in a 0600 file; a symlink at
/// PATH is refused and its target left alone.
#[test]
fn log_file_is_private_redacted_and_no_follow() {
    use std::os::unix::fs::PermissionsExt;
    let server = FtpServer::start(ServerKind::InProcess, false);
    let sb = Sandbox::new();
    let pw = inprocess_site(&sb, &server);
    let env = [("FTP_PW", pw.as_str())];
    write_files(&sb.workdir().join("public"), &[("a.html", "a")]);
    let log = sb.workdir().join("run.log");
    let o = env_run(
        &sb,
        &["-vvv", "--log-file", "run.log", "export", "web"],
        &env,
    );
    assert_code(&o, 0);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("PASS ****"), "{text}");
    assert!(text.contains("uses tls = \"none\""), "{text}");
    assert!(!text.contains(&pw), "the password is in the log");
    assert_eq!(
        std::fs::metadata(&log).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let target = sb.workdir().join("victim.txt");
    std::fs::write(&target, "keep").unwrap();
    std::os::unix::fs::symlink(&target, sb.workdir().join("link.log")).unwrap();
    let o = env_run(&sb, &["--log-file", "link.log", "export", "web"], &env);
    assert_code(&o, 2);
    assert!(stderr(&o).contains("--log-file"), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
}

/// `--bwlimit 256K`: 768 KiB take about 3 s (less the short burst); a bad rate is exit 2.
#[test]
fn bwlimit_slows_the_run_to_the_rate() {
    let server = FtpServer::start(ServerKind::InProcess, false);
    let sb = Sandbox::new();
    let pw = inprocess_site(&sb, &server);
    let env = [("FTP_PW", pw.as_str())];
    let big: String = "x".repeat(768 * 1024);
    write_files(&sb.workdir().join("public"), &[("big.bin", &big)]);
    let t = std::time::Instant::now();
    let o = env_run(&sb, &["export", "web", "--bwlimit", "256K"], &env);
    let took = t.elapsed();
    assert_code(&o, 0);
    assert!(took >= std::time::Duration::from_millis(2500), "{took:?}");
    assert_eq!(
        std::fs::read(server.root().join("big.bin")).unwrap().len(),
        big.len()
    );
    let o = env_run(&sb, &["export", "web", "--bwlimit", "fast"], &env);
    assert_code(&o, 2);
    assert!(stderr(&o).contains("512K"), "{}", stderr(&o));
}
