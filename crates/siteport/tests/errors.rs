//! Every error a user can hit, run for real: each must exit with its documented code and say
//! what failed, where, and the command or change that fixes it (`error:` + `hint:` on stderr).
//! Each scenario is a row of the table in docs/troubleshooting.md; the test fails when a
//! row is missing or its exit code differs. `SITEPORT_PRINT_ERROR_ROWS=1` prints the rows.

mod common;

use std::path::Path;

use common::*;
use secrecy::ExposeSecret;
use siteport_testsupport::{FtpServer, ServerKind};

struct Case {
    id: &'static str,
    code: i32,
    args: Vec<String>,
    stdin: String,
    env: Vec<(String, String)>,
    /// Must appear in the `error:` line (the "where").
    where_: String,
    /// Must appear in the `hint:` line (the fix).
    fix: &'static str,
}

fn case(id: &'static str, code: i32, args: &[&str], where_: &str, fix: &'static str) -> Case {
    Case {
        id,
        code,
        args: args.iter().map(|s| s.to_string()).collect(),
        stdin: String::new(),
        env: Vec::new(),
        where_: where_.to_owned(),
        fix,
    }
}

impl Case {
    fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }
    fn stdin(mut self, s: &str) -> Self {
        self.stdin = s.into();
        self
    }
}

fn site(server_port: u16, cred: &str) -> String {
    format!(
        "[[site]]\nname = \"web\"\nhost = \"127.0.0.1\"\nport = {server_port}\ntls = \"none\"\n\
         credential = \"{cred}\"\nlocal = \"public\"\nremote = \"/\"\n"
    )
}

fn write(p: &Path, text: &str) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// What the rows run against: a real FTP server, sandboxes in the states the rows need, and
/// config files for the site errors.
struct Fixture {
    server: FtpServer,
    /// A HOME without a store.
    fresh: Sandbox,
    /// A store made group-readable.
    loose: Sandbox,
    /// A passphrase store (opened with the wrong passphrase).
    locked: Sandbox,
    /// A store with credentials `web` (right password) and `wrong`.
    sb: Sandbox,
    closed: u16,
    good: String,
    refused: String,
    unreachable: String,
    missing_cred: String,
    broken: String,
    unset_var: String,
    /// `local` names a directory that does not exist.
    no_local: String,
    /// A literal password with CR/LF in the config.
    crlf_password: String,
    /// `ca_file` names a file that does not exist, and one that holds no certificate.
    ca_missing: String,
    ca_garbage: String,
}

fn fixture() -> Fixture {
    let server = FtpServer::start(ServerKind::InProcess, false);
    let fresh = Sandbox::new();
    // A store made group-readable, and one opened with the wrong passphrase.
    let loose = Sandbox::new();
    assert_code(&loose.run(&["credential", "init"], "", &[]), 0);
    std::fs::set_permissions(
        loose.store(),
        std::os::unix::fs::PermissionsExt::from_mode(0o640),
    )
    .unwrap();
    let locked = Sandbox::new();
    let pass = [("SITEPORT_PASSPHRASE", "right-one-77ab")];
    assert_code(
        &locked.run(&["credential", "init", "--passphrase"], "", &pass),
        0,
    );
    let sb = Sandbox::new();
    assert_code(&sb.run(&["credential", "init"], "", &[]), 0);
    let pw = format!("{}\n", server.password.expose_secret());
    assert_code(
        &sb.run(
            &[
                "credential",
                "add",
                "web",
                "-u",
                &server.user,
                "--password-stdin",
            ],
            &pw,
            &[],
        ),
        0,
    );
    assert_code(
        &sb.run(
            &[
                "credential",
                "add",
                "wrong",
                "-u",
                &server.user,
                "--password-stdin",
            ],
            "not-the-password\n",
            &[],
        ),
        0,
    );
    write(&sb.workdir().join("public/index.html"), "hi\n");
    let cfg = |name: &str, text: &str| {
        let p = sb.path(name);
        write(&p, text);
        p.display().to_string()
    };
    let good = cfg("work/good.toml", &site(server.port, "web"));
    let _ = std::fs::copy(&good, sb.workdir().join("siteport.toml"));
    let refused = cfg("work/refused.toml", &site(server.port, "wrong"));
    // A port nothing listens on: bind, note the port, close.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let unreachable = cfg("work/unreachable.toml", &site(closed, "web"));
    let missing_cred = cfg("work/missing-cred.toml", &site(server.port, "nosuch"));
    let broken = cfg("work/broken.toml", "[[site]]\nname = \"web\"\nhost = \n");
    let unset_var = cfg(
        "work/unset.toml",
        &site(server.port, "web").replace("127.0.0.1", "${NO_SUCH_HOST_VAR}"),
    );
    let no_local = cfg(
        "work/no-local.toml",
        &site(server.port, "web").replace("local = \"public\"", "local = \"not-built\""),
    );
    let crlf_password = cfg(
        "work/crlf.toml",
        &site(server.port, "web").replace(
            "credential = \"web\"",
            "username = \"u\"\npassword = \"pw\\r\\nDELE index.html\"",
        ),
    );
    let tls_site = |ca: &str| {
        site(server.port, "web").replace(
            "tls = \"none\"",
            &format!("tls = \"explicit\"\nca_file = \"{ca}\""),
        )
    };
    let ca_missing = cfg("work/ca-missing.toml", &tls_site("/nonexistent/ca.pem"));
    write(&sb.path("work/not-a-cert.pem"), "this is no certificate\n");
    let ca_garbage = cfg("work/ca-garbage.toml", &tls_site("not-a-cert.pem"));
    write(&sb.path("existing.env"), "x\n");
    Fixture {
        server,
        fresh,
        loose,
        locked,
        sb,
        closed,
        good,
        refused,
        unreachable,
        missing_cred,
        broken,
        unset_var,
        no_local,
        crlf_password,
        ca_missing,
        ca_garbage,
    }
}

/// The table: one row per error of docs/troubleshooting.md.
fn cases(f: &Fixture) -> Vec<Case> {
    let mut rows = store_cases();
    rows.extend(config_and_site_cases(f));
    rows
}

/// Rows about the credential store and what the user types.
fn store_cases() -> Vec<Case> {
    vec![
        case(
            "no-store",
            3,
            &["credential", "show", "web"],
            "file backend",
            "siteport credential init",
        ),
        case(
            "store-permissions",
            3,
            &["credential", "list"],
            "credentials.age",
            "chmod 600",
        ),
        case(
            "wrong-passphrase",
            3,
            &["credential", "list"],
            "credentials.age",
            "SITEPORT_PASSPHRASE",
        )
        .env("SITEPORT_PASSPHRASE", "not-it-9f2c"),
        case(
            "not-found",
            3,
            &["credential", "show", "nosuch"],
            "file backend",
            "siteport credential add nosuch",
        ),
        case(
            "already-exists",
            3,
            &["credential", "add", "web", "-u", "u", "--password-stdin"],
            "file backend",
            "--force",
        )
        .stdin("x\n"),
        case(
            "no-terminal",
            2,
            &["credential", "add", "new", "-u", "u"],
            "",
            "--password-stdin",
        ),
        case(
            "bad-name",
            2,
            &["credential", "show", "Bad Name"],
            "name",
            "a-z, 0-9",
        ),
        case(
            "control-chars",
            2,
            &[
                "credential",
                "add",
                "crlf",
                "-u",
                "a\r\nDELE x",
                "--password-stdin",
            ],
            "username",
            "siteport credential add crlf --username",
        ),
        case(
            "bad-backend",
            2,
            &["--credential-backend", "nope", "credential", "list"],
            "nope",
            "file, env, dir",
        ),
        case(
            "env-read-only",
            3,
            &[
                "--credential-backend",
                "env",
                "credential",
                "add",
                "web",
                "-u",
                "u",
            ],
            "env backend",
            "SITEPORT_CRED_WEB_PASSWORD",
        ),
        case(
            "env-not-found",
            3,
            &["--credential-backend", "env", "credential", "show", "web"],
            "env backend",
            "SITEPORT_CRED_WEB_PASSWORD",
        ),
        case(
            "env-both-forms",
            3,
            &["--credential-backend", "env", "credential", "show", "web"],
            "SITEPORT_CRED_WEB_PASSWORD",
            "",
        )
        .env("SITEPORT_CRED_WEB_USERNAME", "u")
        .env("SITEPORT_CRED_WEB_PASSWORD", "p")
        .env("SITEPORT_CRED_WEB_PASSWORD_FILE", "/x"),
        case(
            "env-file-missing",
            3,
            &["--credential-backend", "env", "credential", "show", "web"],
            "/nonexistent/pw",
            "SITEPORT_CRED_WEB_PASSWORD_FILE",
        )
        .env("SITEPORT_CRED_WEB_USERNAME", "u")
        .env("SITEPORT_CRED_WEB_PASSWORD_FILE", "/nonexistent/pw"),
        case(
            "dir-missing",
            3,
            &["--credential-backend", "dir", "credential", "list"],
            "/nonexistent/secrets",
            "SITEPORT_SECRETS_DIR",
        )
        .env("SITEPORT_SECRETS_DIR", "/nonexistent/secrets"),
    ]
}

/// Rows about the config file, the sites' servers and export targets.
fn config_and_site_cases(f: &Fixture) -> Vec<Case> {
    let Fixture {
        sb,
        closed,
        good,
        refused,
        unreachable,
        missing_cred,
        broken,
        unset_var,
        no_local,
        crlf_password,
        ca_missing,
        ca_garbage,
        ..
    } = f;
    let closed = *closed;
    let dir = |name: &str| sb.path(name).display().to_string();
    vec![
        case(
            "config-missing",
            2,
            &[
                "--config",
                "/nonexistent/siteport.toml",
                "credential",
                "list",
            ],
            "/nonexistent/siteport.toml",
            "--config",
        ),
        case(
            "config-syntax",
            2,
            &["--config", broken.as_str(), "export", "web"],
            "broken.toml:3:",
            "siteport config check",
        ),
        case(
            "config-unset-var",
            2,
            &["--config", unset_var.as_str(), "export", "web"],
            "unset.toml:",
            "NO_SUCH_HOST_VAR",
        ),
        case(
            "unknown-site",
            2,
            &["--config", good.as_str(), "export", "nosuch"],
            "nosuch",
            "web",
        ),
        case(
            "site-credential-missing",
            3,
            &["--config", missing_cred.as_str(), "export", "web"],
            "nosuch",
            "siteport credential add nosuch",
        ),
        case(
            "login-refused",
            4,
            &["--config", refused.as_str(), "export", "web"],
            "127.0.0.1",
            "siteport credential add wrong",
        ),
        case(
            "connection-refused",
            6,
            &["--config", unreachable.as_str(), "export", "web"],
            &format!("127.0.0.1:{closed}"),
            "",
        ),
        case(
            "export-output-exists",
            2,
            &[
                "credential",
                "export",
                "--format",
                "env-file",
                "-o",
                &dir("existing.env"),
            ],
            "existing.env",
            "--force",
        ),
        case(
            "export-dir-missing",
            2,
            &[
                "credential",
                "export",
                "--format",
                "env-file",
                "-o",
                "/nonexistent/dir/web.env",
            ],
            "/nonexistent/dir does not exist",
            "mkdir -p /nonexistent/dir",
        ),
        case(
            "local-missing",
            2,
            &["--config", no_local.as_str(), "export", "web"],
            "no-local.toml:",
            "build the site first",
        ),
        case(
            "config-crlf-password",
            2,
            &["--config", crlf_password.as_str(), "export", "web"],
            "crlf.toml:",
            "control characters",
        ),
        case(
            "tls-ca-missing",
            2,
            &["--config", ca_missing.as_str(), "export", "web"],
            "ca-missing.toml:",
            "ca_file",
        ),
        case(
            "tls-ca-not-pem",
            2,
            &["--config", ca_garbage.as_str(), "export", "web"],
            "holds no usable certificate",
            "BEGIN CERTIFICATE",
        ),
        case(
            "export-secrets-to-stdout",
            2,
            &[
                "credential",
                "export",
                "--format",
                "docker-secrets",
                "-o",
                "-",
            ],
            "docker-secrets",
            "-o ./secrets",
        ),
    ]
}

/// What is wrong with row `c`'s run `o` (empty when nothing is).
fn problems(c: &Case, o: &std::process::Output, doc: &str, password: &str) -> Vec<String> {
    let err = stderr(o);
    let error_line = err.lines().find(|l| l.starts_with("error: ")).unwrap_or("");
    let hint_line = err.lines().find(|l| l.starts_with("hint: ")).unwrap_or("");
    let mut problems = Vec::new();
    if o.status.code() != Some(c.code) {
        problems.push(format!("exit {:?}, expected {}", o.status.code(), c.code));
    }
    if error_line.is_empty() || !error_line.contains(&c.where_) {
        problems.push(format!("error line lacks '{}'", c.where_));
    }
    if c.code != 2 || !c.fix.is_empty() {
        if hint_line.is_empty() {
            problems.push("no hint".into());
        }
        if !hint_line.contains(c.fix) {
            problems.push(format!("hint lacks '{}'", c.fix));
        }
    }
    if !doc.contains(&format!("| `{}` | {} |", c.id, c.code)) {
        problems.push("no row in docs/troubleshooting.md".into());
    }
    if err.contains(password) {
        problems.push("the password leaked".into());
    }
    problems
}

/// Every row runs, whatever the others did; the test fails once, listing each failing row
/// (its id, what went wrong, its stderr).
#[test]
fn every_user_error_says_what_where_and_how_to_fix_it() {
    let f = fixture();
    let cases = cases(&f);
    let print = std::env::var_os("SITEPORT_PRINT_ERROR_ROWS").is_some();
    let doc = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/troubleshooting.md"),
    )
    .unwrap();
    let mut failures = Vec::new();
    for c in &cases {
        // `no-store` needs a HOME without a store.
        let runner = match c.id {
            "no-store" => &f.fresh,
            "store-permissions" => &f.loose,
            "wrong-passphrase" => &f.locked,
            _ => &f.sb,
        };
        let args: Vec<&str> = c.args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = c
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let o = runner.run(&args, &c.stdin, &env);
        let err = stderr(&o);
        if print {
            let line = |prefix: &str| {
                err.lines()
                    .find(|l| l.starts_with(prefix))
                    .unwrap_or("")
                    .trim_start_matches(prefix)
                    .replace('|', "\\|")
            };
            println!(
                "| `{}` | {} | {} | {} |",
                c.id,
                o.status.code().unwrap_or(-1),
                line("error: "),
                line("hint: ")
            );
        }
        let problems = problems(c, &o, &doc, f.server.password.expose_secret());
        if !problems.is_empty() {
            failures.push(format!(
                "{}: {}\n  stderr: {err}",
                c.id,
                problems.join("; ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
