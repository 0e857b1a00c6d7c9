//! The cycle every cloud backend goes through from the CLI, parametrised by a [`Cli`] (how to
//! run siteport against the backend, and which secrets must never show) and the per-cloud
//! checks of what landed in the fake. Each cloud's module adds its own failure cases.

use std::path::Path;
use std::process::Output;

use secrecy::ExposeSecret;
use siteport_testsupport::FtpServer;

use crate::common::{Sandbox, assert_code, json, stderr, stdout};

#[cfg(feature = "aws")]
mod aws;
#[cfg(feature = "azure")]
mod azure;
#[cfg(feature = "gcp")]
mod gcp;

/// How the tests of one cloud run the CLI.
pub struct Cli<'a> {
    pub sb: &'a Sandbox,
    /// The backend's name: `--credential-backend` value and message prefix (`aws backend`).
    pub kind: &'static str,
    pub env: Vec<(&'static str, String)>,
    /// Flags before every command (e.g. `--credential-backend aws` when no config selects it).
    pub backend_flags: Vec<&'static str>,
    /// Whether the credential commands run at `-vvv` (the log must stay clean too).
    pub verbose: bool,
    /// Secrets besides the FTP password that must never appear (auth secrets, live tokens).
    pub leaks: Box<dyn Fn() -> Vec<String> + 'a>,
}

impl Cli<'_> {
    fn exec(&self, pre: &[&str], args: &[&str], stdin: &str) -> Output {
        let mut all: Vec<&str> = pre.to_vec();
        all.extend(&self.backend_flags);
        all.extend(args);
        let env: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.sb.run(&all, stdin, &env)
    }

    /// At `-vvv` when the cloud's cases ask for it.
    pub fn run(&self, args: &[&str], stdin: &str) -> Output {
        self.exec(if self.verbose { &["-vvv"] } else { &[] }, args, stdin)
    }

    /// Always at `-vvv`.
    pub fn run_vvv(&self, args: &[&str], stdin: &str) -> Output {
        self.exec(&["-vvv"], args, stdin)
    }

    /// Never verbose.
    pub fn run_quiet(&self, args: &[&str], stdin: &str) -> Output {
        self.exec(&[], args, stdin)
    }

    /// Neither `password` nor any of the cloud's secrets in stdout or stderr.
    pub fn assert_clean(&self, o: &Output, password: &str) {
        let all = format!("{}\n{}", stdout(o), stderr(o));
        assert!(!all.contains(password), "output leaks the password:\n{all}");
        for s in (self.leaks)() {
            assert!(!all.contains(&s), "output leaks a secret ({s}):\n{all}");
        }
    }
}

/// The credential `credential_cycle` stores.
pub struct Added<'a> {
    pub name: &'a str,
    pub username: &'a str,
    pub host: &'a str,
    pub secret: &'a str,
}

/// add → list (JSON) → show → add again without `--force` (exit 3) → [remove] → show of a
/// missing name (exit 3, naming the backend and the command that adds it). `stored` checks
/// the fake after the add; `removed`, when given, checks it after `credential remove`.
pub fn credential_cycle(cli: &Cli, c: &Added, stored: impl FnOnce(), removed: Option<&dyn Fn()>) {
    let o = cli.run(
        &[
            "credential",
            "add",
            c.name,
            "--username",
            c.username,
            "--host",
            c.host,
            "--password-stdin",
        ],
        &format!("{}\n", c.secret),
    );
    assert_code(&o, 0);
    cli.assert_clean(&o, c.secret);
    stored();

    let o = cli.run(&["--json", "credential", "list"], "");
    assert_code(&o, 0);
    cli.assert_clean(&o, c.secret);
    let text = json(&o).to_string();
    assert!(text.contains(&format!("\"{}\"", c.name)), "{text}");
    assert!(text.contains(c.username), "{text}");
    assert!(text.contains(&format!("\"{}\"", cli.kind)), "{text}");
    assert!(!text.contains(c.secret), "list leaks the password");

    let o = cli.run(&["credential", "show", c.name], "");
    assert_code(&o, 0);
    assert!(stdout(&o).contains(c.host), "{}", stdout(&o));
    cli.assert_clean(&o, c.secret);

    // Adding it again without --force: exit 3, already exists, and -vvv shows no password.
    let o = cli.run_vvv(
        &[
            "credential",
            "add",
            c.name,
            "--username",
            "x",
            "--password-stdin",
        ],
        &format!("{}\n", c.secret),
    );
    assert_code(&o, 3);
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
    cli.assert_clean(&o, c.secret);

    let missing = match removed {
        Some(check) => {
            let o = cli.run(&["credential", "remove", c.name], "");
            assert_code(&o, 0);
            cli.assert_clean(&o, c.secret);
            check();
            c.name
        }
        None => "missing",
    };
    let o = cli.run_quiet(&["credential", "show", missing], "");
    assert_code(&o, 3);
    let backend = format!("{} backend", cli.kind);
    assert!(stderr(&o).contains(&backend), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("siteport credential add {missing}")),
        "{}",
        stderr(&o)
    );
}

fn write_site(root: &Path, kind: &str) {
    for (rel, bytes) in [
        ("index.html", format!("<h1>{kind}</h1>\n").into_bytes()),
        ("css/site.css", b"body{}\n".to_vec()),
        ("img/logo.bin", (0..=255u8).cycle().take(9000).collect()),
    ] {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
}

fn read_tree(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = ["index.html", "css/site.css", "img/logo.bin"]
        .iter()
        .map(|r| (r.to_string(), std::fs::read(root.join(r)).unwrap()))
        .collect();
    out.sort();
    out
}

/// Two sites sharing credential `web` in the backend `tables` select (`[credentials]` and its
/// backend's table): `credential add web`, `export web` at `-vvv --json` (three files up, no
/// secret in the output) and `import copy` (the same files down). `stored` checks the fake
/// after the add. The CLI runs without backend flags: the config selects the backend.
pub fn export_import_cycle(cli: &Cli, server: &FtpServer, tables: &str, stored: impl FnOnce()) {
    let sb = cli.sb;
    let site = |name: &str, local: &str| {
        format!(
            "[[site]]\nname = \"{name}\"\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\ncredential = \"web\"\nlocal = \"{local}\"\nremote = \"/htdocs\"\n\n",
            server.port
        )
    };
    std::fs::write(
        sb.workdir().join("siteport.toml"),
        format!(
            "{tables}\n{}{}",
            site("web", "public"),
            site("copy", "copy")
        ),
    )
    .unwrap();
    let password = server.password.expose_secret().to_owned();
    let o = cli.run_quiet(
        &[
            "credential",
            "add",
            "web",
            "--username",
            &server.user,
            "--password-stdin",
        ],
        &format!("{password}\n"),
    );
    assert_code(&o, 0);
    stored();

    let local = sb.workdir().join("public");
    write_site(&local, cli.kind);
    let o = cli.run_vvv(&["--json", "export", "web"], "");
    assert_code(&o, 0);
    assert_eq!(
        json(&o)["sites"][0]["report"]["counts"]["uploaded"].as_u64(),
        Some(3),
        "{}",
        stdout(&o)
    );
    cli.assert_clean(&o, &password);
    assert_eq!(read_tree(&server.root().join("htdocs")), read_tree(&local));

    let o = cli.run_quiet(&["import", "copy"], "");
    assert_code(&o, 0);
    assert_eq!(read_tree(&sb.workdir().join("copy")), read_tree(&local));
}
