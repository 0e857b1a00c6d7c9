//! What a new user meets in the first hour (issue 19), through the real binary and real
//! servers: short passwords masked without garbling, `import --to` / `export --from`,
//! `config check` applying the run's checks, JSON of a partly failed run.

mod common;

use std::path::Path;
use std::process::Output;

use common::{Sandbox, assert_code, stderr, stdout};
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
        assert!(err.contains("refused") && err.contains("login"), "{short}: {err}");
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
        &["credential", "add", "acme", "--username", "u", "--password-stdin"],
        "the\n",
        &[],
    );
    assert_code(&o, 0);
    let err = stderr(&o);
    assert!(err.contains("short password (3 character(s))"), "{err}");
    assert!(err.contains("fewer than 8"), "{err}");
    let o = sb.run(
        &["credential", "add", "long", "--username", "u", "--password-stdin"],
        "a-long-enough-password\n",
        &[],
    );
    assert_code(&o, 0);
    assert!(!stderr(&o).contains("character(s)"), "{}", stderr(&o));
}
