//! The CLI with `--credential-backend aws` against a real `moto_server`: credential
//! add/list/show, an unreachable endpoint (exit 3), and an export → import cycle whose FTP
//! password comes from Secrets Manager.

mod common;

use std::path::Path;

use common::{Sandbox, assert_code, json, stderr, stdout};
use secrecy::ExposeSecret;
use siteport_testsupport::{FtpServer, MotoServer, ServerKind};

fn aws_env(moto: &MotoServer) -> Vec<(&'static str, String)> {
    moto.aws_env()
}

fn run(sb: &Sandbox, args: &[&str], stdin: &str, env: &[(&str, String)]) -> std::process::Output {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    sb.run(args, stdin, &env)
}

#[test]
fn credential_add_list_show_against_moto() {
    let moto = MotoServer::start();
    let sb = Sandbox::new();
    let env = aws_env(&moto);
    let secret = "Cli-aws-S3cret-pw!";
    let o = run(
        &sb,
        &[
            "--credential-backend",
            "aws",
            "credential",
            "add",
            "acme",
            "--username",
            "acme-deploy",
            "--host",
            "ftp.acme.example",
            "--password-stdin",
        ],
        &format!("{secret}\n"),
        &env,
    );
    assert_code(&o, 0);

    let o = run(
        &sb,
        &[
            "--json",
            "--credential-backend",
            "aws",
            "credential",
            "list",
        ],
        "",
        &env,
    );
    assert_code(&o, 0);
    let v = json(&o);
    let text = v.to_string();
    assert!(text.contains("\"acme\""), "{text}");
    assert!(text.contains("acme-deploy"), "{text}");
    assert!(text.contains("\"aws\""), "{text}");
    assert!(!text.contains(secret), "list leaks the password");

    let o = run(
        &sb,
        &["--credential-backend", "aws", "credential", "show", "acme"],
        "",
        &env,
    );
    assert_code(&o, 0);
    assert!(stdout(&o).contains("ftp.acme.example"), "{}", stdout(&o));
    assert!(!stdout(&o).contains(secret) && !stderr(&o).contains(secret));

    // Adding it again without --force: exit 3, already exists.
    let o = run(
        &sb,
        &[
            "-vvv",
            "--credential-backend",
            "aws",
            "credential",
            "add",
            "acme",
            "--username",
            "x",
            "--password-stdin",
        ],
        &format!("{secret}\n"),
        &env,
    );
    assert_code(&o, 3);
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
    assert!(!stderr(&o).contains(secret), "-vvv leaks the password");

    let o = run(
        &sb,
        &[
            "--credential-backend",
            "aws",
            "credential",
            "show",
            "missing",
        ],
        "",
        &env,
    );
    assert_code(&o, 3);
    assert!(stderr(&o).contains("aws backend"), "{}", stderr(&o));
}

#[test]
fn unreachable_endpoint_exits_3_naming_backend_and_address() {
    let sb = Sandbox::new();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("http://127.0.0.1:{port}");
    std::fs::write(
        sb.workdir().join("siteport.toml"),
        format!(
            "[credentials]\nbackend = \"aws\"\n\n[credentials.aws]\nregion = \"eu-west-1\"\nendpoint_url = \"{endpoint}\"\nmax_attempts = 2\n"
        ),
    )
    .unwrap();
    let env = [
        ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
    ];
    let o = run(&sb, &["credential", "list"], "", &env);
    assert_code(&o, 3);
    let err = stderr(&o);
    assert!(err.contains("aws backend"), "{err}");
    assert!(err.contains(&endpoint), "{err}");
}

fn write_site(root: &Path) {
    for (rel, bytes) in [
        ("index.html", b"<h1>aws</h1>\n".to_vec()),
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

#[test]
fn export_import_cycle_with_password_from_aws() {
    let moto = MotoServer::start();
    let server = FtpServer::start(ServerKind::InProcess, false);
    let sb = Sandbox::new();
    // Region and endpoint from the config, keys from the environment.
    let env = [
        ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
    ];
    let site = |name: &str, local: &str| {
        format!(
            "[[site]]\nname = \"{name}\"\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\ncredential = \"web\"\nlocal = \"{local}\"\nremote = \"/htdocs\"\n\n",
            server.port
        )
    };
    std::fs::write(
        sb.workdir().join("siteport.toml"),
        format!(
            "[credentials]\nbackend = \"aws\"\n\n[credentials.aws]\nregion = \"us-east-1\"\nendpoint_url = \"{}\"\nprefix = \"ftp/\"\n\n{}{}",
            moto.endpoint(),
            site("web", "public"),
            site("copy", "copy")
        ),
    )
    .unwrap();
    let password = server.password.expose_secret().to_owned();
    let o = run(
        &sb,
        &[
            "credential",
            "add",
            "web",
            "--username",
            &server.user,
            "--password-stdin",
        ],
        &format!("{password}\n"),
        &env,
    );
    assert_code(&o, 0);

    let local = sb.workdir().join("public");
    write_site(&local);
    let o = run(&sb, &["-vvv", "--json", "export", "web"], "", &env);
    assert_code(&o, 0);
    assert_eq!(
        json(&o)["sites"][0]["report"]["counts"]["uploaded"].as_u64(),
        Some(3),
        "{}",
        stdout(&o)
    );
    assert!(
        !stdout(&o).contains(&password) && !stderr(&o).contains(&password),
        "-vvv output leaks the FTP password"
    );
    assert_eq!(read_tree(&server.root().join("htdocs")), read_tree(&local));

    let o = run(&sb, &["import", "copy"], "", &env);
    assert_code(&o, 0);
    assert_eq!(read_tree(&sb.workdir().join("copy")), read_tree(&local));
}
