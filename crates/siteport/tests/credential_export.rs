//! `credential export` round trips, each through the real consumer of its format: the env file
//! sourced by `sh` and read by the env backend, the secrets directory read by the dir backend
//! (and through `_FILE` variables by the env backend), the Kubernetes Secret decoded.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use base64::Engine;
use common::*;

/// Passwords chosen to break naive quoting: shell and Compose metacharacters, quotes, `#`,
/// backslashes, non-ASCII.
/// (name, username, password, host and port).
type Spec = (
    &'static str,
    &'static str,
    &'static str,
    Option<(&'static str, u16)>,
);

const CREDS: [Spec; 3] = [
    (
        "acme-prod",
        "deploy",
        r#"p w$HOME'"`\#=x;é"#,
        Some(("ftp.acme.test", 2121)),
    ),
    ("blog", "blogger", "plain-Pw.123", None),
    (
        "shop.eu",
        "u@shop",
        "  spaces around  ",
        Some(("ftp.shop.test", 21)),
    ),
];

fn seeded() -> Sandbox {
    let sb = Sandbox::new();
    assert_code(&sb.run(&["credential", "init"], "", &[]), 0);
    for (name, user, pw, hp) in CREDS {
        let mut args = vec!["credential", "add", name, "-u", user, "--password-stdin"];
        let port;
        if let Some((h, p)) = hp {
            port = p.to_string();
            args.extend(["--host", h, "--port", &port]);
        }
        assert_code(&sb.run(&args, &format!("{pw}\n"), &[]), 0);
    }
    sb
}

/// `show --reveal --json` of every credential, as (username, password, host, port).
type Seen = BTreeMap<String, (String, String, Option<String>, Option<u64>)>;

fn expected() -> Seen {
    CREDS
        .iter()
        .map(|(n, u, p, hp)| {
            (
                n.to_string(),
                (
                    u.to_string(),
                    p.to_string(),
                    hp.map(|(h, _)| h.to_string()),
                    hp.map(|(_, p)| u64::from(p)),
                ),
            )
        })
        .collect()
}

fn parse_show(o: &std::process::Output) -> (String, String, Option<String>, Option<u64>) {
    assert_code(o, 0);
    let v = json(o);
    (
        v["username"].as_str().unwrap().into(),
        v["password"].as_str().unwrap().into(),
        v["host"].as_str().map(Into::into),
        v["port"].as_u64(),
    )
}

/// Runs `siteport --json ARGS credential show NAME --reveal` for every credential under `sh`,
/// after `set -a; . ENVFILE`, with an otherwise empty environment (no HOME, no store).
fn shown_through_sh(envfile: &Path, backend: &str) -> Seen {
    CREDS
        .iter()
        .map(|(name, ..)| {
            let o = Command::new("sh")
                .env_clear()
                .env("PATH", "/usr/bin:/bin")
                .arg("-c")
                .arg(r#"set -a; . "$1"; exec "$2" --json --credential-backend "$3" credential show "$4" --reveal"#)
                .args(["sh", envfile.to_str().unwrap(), bin().to_str().unwrap(), backend, name])
                .current_dir("/")
                .output()
                .unwrap();
            (name.to_string(), parse_show(&o))
        })
        .collect()
}

#[test]
fn env_file_round_trips_through_sh_and_the_env_backend() {
    let sb = seeded();
    let out = sb.path("creds.env");
    let o = sb.run(
        &[
            "credential",
            "export",
            "--format",
            "env-file",
            "-o",
            out.to_str().unwrap(),
        ],
        "",
        &[],
    );
    assert_code(&o, 0);
    assert!(
        stdout(&o).contains("exported 3 credential(s)"),
        "{}",
        stdout(&o)
    );
    assert_eq!(mode(&out), 0o600);
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(
        text.contains("SITEPORT_CRED_SHOP_EU_HOST=ftp.shop.test\n"),
        "{text}"
    );
    assert_eq!(shown_through_sh(&out, "env"), expected());

    // Exists: refused without --force, replaced with it.
    let again = [
        "credential",
        "export",
        "--format",
        "env-file",
        "-o",
        out.to_str().unwrap(),
    ];
    let o = sb.run(&again, "", &[]);
    assert_code(&o, 2);
    assert!(stderr(&o).contains("--force"), "{}", stderr(&o));
    let mut forced = again.to_vec();
    forced.extend(["--force", "blog"]);
    assert_code(&sb.run(&forced, "", &[]), 0);
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(
        text.contains("SITEPORT_CRED_BLOG_") && !text.contains("ACME"),
        "{text}"
    );
    assert_eq!(mode(&out), 0o600);
}

#[test]
fn stdout_only_with_dash() {
    let sb = seeded();
    let o = sb.run(
        &[
            "credential",
            "export",
            "--format",
            "env-file",
            "-o",
            "-",
            "blog",
        ],
        "",
        &[],
    );
    assert_code(&o, 0);
    assert!(
        stdout(&o).contains("SITEPORT_CRED_BLOG_PASSWORD=plain-Pw.123\n"),
        "{}",
        stdout(&o)
    );
    assert!(
        !stdout(&o).contains("exported"),
        "summary mixed into data: {}",
        stdout(&o)
    );

    // No -o at all is a usage error, not a silent dump to the terminal.
    let o = sb.run(&["credential", "export", "--format", "env-file"], "", &[]);
    assert_code(&o, 2);
    assert!(stdout(&o).is_empty());
    let o = sb.run(
        &[
            "credential",
            "export",
            "--format",
            "docker-secrets",
            "-o",
            "-",
        ],
        "",
        &[],
    );
    assert_code(&o, 2);
    assert!(stderr(&o).contains("cannot go to stdout"), "{}", stderr(&o));
    assert!(stdout(&o).is_empty());
    // Unknown names: the backend's not-found error, exit 3, with the fixing command.
    let o = sb.run(
        &[
            "credential",
            "export",
            "--format",
            "env-file",
            "-o",
            "-",
            "nope",
        ],
        "",
        &[],
    );
    assert_code(&o, 3);
    assert!(
        stderr(&o).contains("siteport credential add nope"),
        "{}",
        stderr(&o)
    );
    assert!(stdout(&o).is_empty());
}

#[test]
fn secrets_dir_round_trips_through_the_dir_backend_and_file_vars() {
    let sb = seeded();
    let dir = sb.path("secrets");
    let o = sb.run(
        &[
            "credential",
            "export",
            "--format",
            "docker-secrets",
            "-o",
            dir.to_str().unwrap(),
            "--mount-root",
            dir.to_str().unwrap(),
        ],
        "",
        &[],
    );
    assert_code(&o, 0);
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("acme-prod")), 0o700);
    for f in ["username", "password", "host", "port"] {
        assert_eq!(mode(&dir.join("acme-prod").join(f)), 0o600, "{f}");
    }
    assert!(!dir.join("blog/host").exists());
    assert_eq!(
        std::fs::read_to_string(dir.join("acme-prod/password")).unwrap(),
        CREDS[0].2
    );

    // The dir backend reads it as is.
    let dir_env = [("SITEPORT_SECRETS_DIR", dir.to_str().unwrap())];
    let seen: Seen = CREDS
        .iter()
        .map(|(name, ..)| {
            let o = sb.run(
                &[
                    "--json",
                    "--credential-backend",
                    "dir",
                    "credential",
                    "show",
                    name,
                    "--reveal",
                ],
                "",
                &dir_env,
            );
            (name.to_string(), parse_show(&o))
        })
        .collect();
    assert_eq!(seen, expected());
    let o = sb.run(
        &[
            "--json",
            "--credential-backend",
            "dir",
            "credential",
            "list",
        ],
        "",
        &dir_env,
    );
    assert_code(&o, 0);
    assert_eq!(json(&o)["credentials"].as_array().unwrap().len(), 3);

    // And the env backend through the `_FILE` variables of file-vars.env.
    let vars = dir.join("file-vars.env");
    assert_eq!(mode(&vars), 0o600);
    let text = std::fs::read_to_string(&vars).unwrap();
    assert!(
        !text.contains(CREDS[0].2),
        "file-vars.env holds a password: {text}"
    );
    assert_eq!(shown_through_sh(&vars, "env"), expected());

    // Not empty: refused without --force; with it, a dropped field does not survive.
    let args = [
        "credential",
        "export",
        "--format",
        "docker-secrets",
        "-o",
        dir.to_str().unwrap(),
    ];
    assert_code(&sb.run(&args, "", &[]), 2);
    assert_code(
        &sb.run(
            &[
                "credential",
                "add",
                "acme-prod",
                "-u",
                "x",
                "--password-stdin",
                "--force",
            ],
            "new\n",
            &[],
        ),
        0,
    );
    let mut forced = args.to_vec();
    forced.push("--force");
    assert_code(&sb.run(&forced, "", &[]), 0);
    assert!(!dir.join("acme-prod/host").exists());
    assert_eq!(
        std::fs::read_to_string(dir.join("acme-prod/password")).unwrap(),
        "new"
    );
}

#[test]
fn k8s_secret_decodes_to_the_credentials() {
    let sb = seeded();
    let out = sb.path("secret.yaml");
    let o = sb.run(
        &[
            "credential",
            "export",
            "--format",
            "k8s-secret",
            "--secret-name",
            "web-creds",
            "--namespace",
            "sites",
            "-o",
            out.to_str().unwrap(),
        ],
        "",
        &[],
    );
    assert_code(&o, 0);
    assert_eq!(mode(&out), 0o600);
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.contains("kind: Secret\n") && text.contains("  name: web-creds\n"));
    assert!(text.contains("  namespace: sites\n"));
    for (_, _, pw, _) in CREDS {
        assert!(
            !text.contains(pw),
            "plain password in the manifest:\n{text}"
        );
    }
    // Decode `data:` and feed it to the env backend as the pod would get it through envFrom.
    let data: Vec<(String, String)> = text
        .split("\ndata:\n")
        .nth(1)
        .unwrap()
        .lines()
        .map(|l| {
            let (k, v) = l.trim().split_once(": ").unwrap();
            let raw = base64::engine::general_purpose::STANDARD.decode(v).unwrap();
            (k.to_owned(), String::from_utf8(raw).unwrap())
        })
        .collect();
    assert_eq!(data.len(), 2 * 3 + 2 + 2, "{data:?}");
    let seen: Seen = CREDS
        .iter()
        .map(|(name, ..)| {
            let mut c = Command::new(bin());
            c.env_clear()
                .current_dir("/")
                .envs(data.iter().cloned())
                .args([
                    "--json",
                    "--credential-backend",
                    "env",
                    "credential",
                    "show",
                    name,
                    "--reveal",
                ]);
            (name.to_string(), parse_show(&c.output().unwrap()))
        })
        .collect();
    assert_eq!(seen, expected());

    let o = sb.run(
        &[
            "credential",
            "export",
            "--format",
            "k8s-secret",
            "--secret-name",
            "Bad_Name",
            "-o",
            "-",
        ],
        "",
        &[],
    );
    assert_code(&o, 2);
    assert!(
        stderr(&o).contains("not a valid Kubernetes name"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn export_reads_any_backend() {
    // From the env backend to a secrets directory: no store, no HOME.
    let sb = Sandbox::new();
    let dir = sb.path("out");
    let o = sb.run(
        &[
            "--credential-backend",
            "env",
            "credential",
            "export",
            "--format",
            "docker-secrets",
            "-o",
            dir.to_str().unwrap(),
        ],
        "",
        &[
            ("SITEPORT_CRED_SITE1_USERNAME", "u1"),
            ("SITEPORT_CRED_SITE1_PASSWORD", "pw-one"),
        ],
    );
    assert_code(&o, 0);
    assert_eq!(
        std::fs::read_to_string(dir.join("site1/password")).unwrap(),
        "pw-one"
    );
    let vars = std::fs::read_to_string(dir.join("file-vars.env")).unwrap();
    assert!(
        vars.contains("SITEPORT_CRED_SITE1_PASSWORD_FILE=/run/secrets/siteport/site1/password\n"),
        "{vars}"
    );
}
