//! The CLI with the azure backend against the in-process Key Vault + Entra ID fake (HTTPS,
//! challenge auth, client-secret credential): credential add/list/show/remove at `-vvv`
//! without a password, client secret or token in the output, a bad client secret (exit 3), and
//! an export → import cycle whose FTP password comes from Key Vault.

mod common;

use std::path::Path;

use common::{Sandbox, assert_code, json, stderr, stdout};
use secrecy::ExposeSecret;
use siteport_testsupport::azure_fake::{AzureFake, CLIENT_ID, CLIENT_SECRET, TENANT_ID};
use siteport_testsupport::{FtpServer, ServerKind};

/// The fake runs on this runtime's worker threads while the test waits on the CLI.
fn start_fake() -> (tokio::runtime::Runtime, AzureFake) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let fake = rt.block_on(AzureFake::start());
    (rt, fake)
}

fn azure_env(secret: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AZURE_TENANT_ID", TENANT_ID.to_owned()),
        ("AZURE_CLIENT_ID", CLIENT_ID.to_owned()),
        ("AZURE_CLIENT_SECRET", secret.to_owned()),
    ]
}

fn azure_table(fake: &AzureFake, extra: &str) -> String {
    format!(
        "[credentials]\nbackend = \"azure\"\n\n[credentials.azure]\nvault_url = \"{}\"\nauthority_host = \"{}\"\nca_cert = \"{}\"\n{extra}\n",
        fake.vault_url(),
        fake.authority_host(),
        fake.ca_path().display()
    )
}

fn run(sb: &Sandbox, args: &[&str], stdin: &str, env: &[(&str, String)]) -> std::process::Output {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    sb.run(args, stdin, &env)
}

fn assert_clean(o: &std::process::Output, secrets: &[&str]) {
    let all = format!("{}{}", stdout(o), stderr(o));
    for s in secrets {
        assert!(!all.contains(s), "output leaks '{s}': {all}");
    }
    assert!(
        !all.contains("eyFake"),
        "output leaks an access token: {all}"
    );
}

#[test]
fn credential_add_list_show_remove_at_vvv() {
    let (_rt, fake) = start_fake();
    let sb = Sandbox::new();
    std::fs::write(sb.workdir().join("siteport.toml"), azure_table(&fake, "")).unwrap();
    let env = azure_env(CLIENT_SECRET);
    let secret = "Cli-azure-S3cret-pw!";
    let o = run(
        &sb,
        &[
            "-vvv",
            "credential",
            "add",
            "shop.example-com",
            "--username",
            "shop-deploy",
            "--host",
            "ftp.shop.example",
            "--password-stdin",
        ],
        &format!("{secret}\n"),
        &env,
    );
    assert_code(&o, 0);
    assert_clean(&o, &[secret, CLIENT_SECRET]);
    let (value, ct, _) = fake.secret("siteport-shop-dexample--com").unwrap();
    assert!(value.contains(secret));
    assert_eq!(ct.as_deref(), Some("application/json"));

    let o = run(&sb, &["-vvv", "--json", "credential", "list"], "", &env);
    assert_code(&o, 0);
    assert_clean(&o, &[secret, CLIENT_SECRET]);
    let text = json(&o).to_string();
    assert!(text.contains("\"shop.example-com\""), "{text}");
    assert!(text.contains("shop-deploy"), "{text}");
    assert!(text.contains("\"azure\""), "{text}");

    let o = run(
        &sb,
        &["-vvv", "credential", "show", "shop.example-com"],
        "",
        &env,
    );
    assert_code(&o, 0);
    assert!(stdout(&o).contains("ftp.shop.example"), "{}", stdout(&o));
    assert_clean(&o, &[secret, CLIENT_SECRET]);

    // Adding it again without --force: exit 3, already exists.
    let o = run(
        &sb,
        &[
            "-vvv",
            "credential",
            "add",
            "shop.example-com",
            "--username",
            "x",
            "--password-stdin",
        ],
        &format!("{secret}\n"),
        &env,
    );
    assert_code(&o, 3);
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
    assert_clean(&o, &[secret, CLIENT_SECRET]);

    let o = run(
        &sb,
        &["-vvv", "credential", "remove", "shop.example-com"],
        "",
        &env,
    );
    assert_code(&o, 0);
    assert_clean(&o, &[secret, CLIENT_SECRET]);
    assert!(fake.is_deleted("siteport-shop-dexample--com"));

    let o = run(&sb, &["credential", "show", "shop.example-com"], "", &env);
    assert_code(&o, 3);
    assert!(stderr(&o).contains("azure backend"), "{}", stderr(&o));

    // Adding the removed name again recovers the soft-deleted secret and writes a new version.
    let o = run(
        &sb,
        &[
            "credential",
            "add",
            "shop.example-com",
            "--username",
            "shop-2",
            "--password-stdin",
        ],
        &format!("{secret}\n"),
        &env,
    );
    assert_code(&o, 0);
    assert_eq!(fake.versions("siteport-shop-dexample--com"), 2);
}

#[test]
fn bad_client_secret_exits_3_with_the_fix() {
    let (_rt, fake) = start_fake();
    let sb = Sandbox::new();
    std::fs::write(sb.workdir().join("siteport.toml"), azure_table(&fake, "")).unwrap();
    let wrong = "Fx-wrong-azure-client-secret";
    let o = run(&sb, &["-vvv", "credential", "list"], "", &azure_env(wrong));
    assert_code(&o, 3);
    let err = stderr(&o);
    assert!(err.contains("azure backend"), "{err}");
    assert!(err.contains(&fake.vault_url()), "{err}");
    assert!(err.contains("AZURE_CLIENT_SECRET"), "{err}");
    assert_clean(&o, &[wrong]);
}

fn write_site(root: &Path) {
    for (rel, bytes) in [
        ("index.html", b"<h1>azure</h1>\n".to_vec()),
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
fn export_import_cycle_with_password_from_azure() {
    let (_rt, fake) = start_fake();
    let server = FtpServer::start(ServerKind::InProcess, false);
    let sb = Sandbox::new();
    let env = azure_env(CLIENT_SECRET);
    let site = |name: &str, local: &str| {
        format!(
            "[[site]]\nname = \"{name}\"\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\ncredential = \"web\"\nlocal = \"{local}\"\nremote = \"/htdocs\"\n\n",
            server.port
        )
    };
    std::fs::write(
        sb.workdir().join("siteport.toml"),
        format!(
            "{}\n{}{}",
            azure_table(&fake, "prefix = \"ftp-\"\nauth = \"client_secret\""),
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
    assert!(fake.secret("ftp-web").is_some());

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
    assert_clean(&o, &[&password, CLIENT_SECRET]);
    assert_eq!(read_tree(&server.root().join("htdocs")), read_tree(&local));

    let o = run(&sb, &["import", "copy"], "", &env);
    assert_code(&o, 0);
    assert_eq!(read_tree(&sb.workdir().join("copy")), read_tree(&local));
}
