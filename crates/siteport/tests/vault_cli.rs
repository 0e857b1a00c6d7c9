//! `siteport credential …` against the in-process Vault fake through `--credential-backend
//! vault` and a config's `[credentials.vault]` table.
#![cfg(feature = "vault")]

mod common;

use common::{Sandbox, assert_code, stderr, stdout};
use siteport_testsupport::vault_fake::{ROOT_TOKEN, VaultFake};

// Multi-threaded: the fake keeps serving while the test blocks on the child process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credential_add_list_show_against_vault() {
    let fake = VaultFake::start().await;
    let sb = Sandbox::new();
    let addr = fake.address();
    let env = [("VAULT_ADDR", addr.as_str()), ("VAULT_TOKEN", ROOT_TOKEN)];
    let args = |rest: &[&'static str]| -> Vec<&'static str> {
        let mut v = vec!["--credential-backend", "vault"];
        v.extend_from_slice(rest);
        v
    };

    let o = sb.run(
        &args(&[
            "credential",
            "add",
            "acme",
            "-u",
            "deploy",
            "--password-stdin",
        ]),
        "Vault-cli-S3cret!\n",
        &env,
    );
    assert_code(&o, 0);
    let data = fake.v2_data("siteport/acme").expect("stored in Vault");
    assert_eq!(data["username"], "deploy");
    assert_eq!(data["password"], "Vault-cli-S3cret!");

    let o = sb.run(&args(&["credential", "list"]), "", &env);
    assert_code(&o, 0);
    assert!(stdout(&o).contains("acme"), "{}", stdout(&o));
    assert!(stdout(&o).contains("deploy"), "{}", stdout(&o));

    let o = sb.run(&args(&["-vvv", "credential", "show", "acme"]), "", &env);
    assert_code(&o, 0);
    assert!(stdout(&o).contains("deploy"), "{}", stdout(&o));
    let all = format!("{}{}", stdout(&o), stderr(&o));
    assert!(!all.contains("Vault-cli-S3cret!"), "password shown: {all}");
    assert!(!all.contains(ROOT_TOKEN), "token shown at -vvv: {all}");

    // Adding it again without --force: exit 3 (already exists).
    let o = sb.run(
        &args(&["credential", "add", "acme", "-u", "x", "--password-stdin"]),
        "other-pw\n",
        &env,
    );
    assert_code(&o, 3);

    // The same through a config file's [credentials.vault] table (custom prefix).
    let cfg = sb.workdir().join("siteport.toml");
    std::fs::write(
        &cfg,
        format!(
            "[credentials]\nbackend = \"vault\"\n\n[credentials.vault]\naddress = \"{addr}\"\n\
             mount = \"secret\"\npath_prefix = \"team/\"\n"
        ),
    )
    .unwrap();
    let cfg = cfg.to_str().unwrap();
    let o = sb.run(
        &[
            "--config",
            cfg,
            "credential",
            "add",
            "web",
            "-u",
            "w",
            "--password-stdin",
        ],
        "cfg-pw-123\n",
        &[("VAULT_TOKEN", ROOT_TOKEN)],
    );
    assert_code(&o, 0);
    assert!(fake.v2_data("team/web").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_token_exits_3_and_names_vault_token() {
    let fake = VaultFake::start().await;
    let sb = Sandbox::new();
    let addr = fake.address();
    let o = sb.run(
        &["--credential-backend", "vault", "credential", "list"],
        "",
        &[("VAULT_ADDR", addr.as_str())],
    );
    assert_code(&o, 3);
    assert!(stderr(&o).contains("VAULT_TOKEN"), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&addr),
        "names the address: {}",
        stderr(&o)
    );
}

/// Issue 6's acceptance: an export → import cycle whose FTP password comes from Vault.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_import_cycle_with_password_from_vault() {
    use secrecy::ExposeSecret;
    use siteport_testsupport::{FtpServer, ServerKind};

    let fake = VaultFake::start().await;
    let server = FtpServer::start(ServerKind::InProcess, false);
    let sb = Sandbox::new();
    let addr = fake.address();
    let env = [("VAULT_ADDR", addr.as_str()), ("VAULT_TOKEN", ROOT_TOKEN)];
    let site = |name: &str, local: &str| {
        format!(
            "[[site]]\nname = \"{name}\"\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\n\
             credential = \"web\"\nlocal = \"{local}\"\nremote = \"/htdocs\"\n\n",
            server.port
        )
    };
    std::fs::write(
        sb.workdir().join("siteport.toml"),
        format!(
            "[credentials]\nbackend = \"vault\"\n\n{}{}",
            site("web", "public"),
            site("copy", "copy")
        ),
    )
    .unwrap();
    let password = server.password.expose_secret().to_owned();
    let o = sb.run(
        &[
            "credential",
            "add",
            "web",
            "-u",
            &server.user,
            "--password-stdin",
        ],
        &format!("{password}\n"),
        &env,
    );
    assert_code(&o, 0);
    assert_eq!(
        fake.v2_data("siteport/web").expect("stored in Vault")["password"],
        password.as_str()
    );

    let local = sb.workdir().join("public");
    let files: [(&str, Vec<u8>); 3] = [
        ("index.html", b"<h1>vault</h1>\n".to_vec()),
        ("css/site.css", b"body{}\n".to_vec()),
        ("img/logo.bin", (0..=255u8).cycle().take(9000).collect()),
    ];
    for (rel, bytes) in &files {
        let p = local.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
    let o = sb.run(&["-vvv", "export", "web"], "", &env);
    assert_code(&o, 0);
    let all = format!("{}{}", stdout(&o), stderr(&o));
    assert!(
        all.contains("PASS ****"),
        "no masked login in the -vvv trace"
    );
    assert!(
        !all.contains(&password),
        "-vvv output leaks the FTP password"
    );
    assert!(
        !all.contains(ROOT_TOKEN),
        "-vvv output leaks the Vault token"
    );

    let o = sb.run(&["import", "copy"], "", &env);
    assert_code(&o, 0);
    for (rel, bytes) in &files {
        assert_eq!(
            &std::fs::read(server.root().join("htdocs").join(rel)).unwrap(),
            bytes,
            "{rel} on the server"
        );
        assert_eq!(
            &std::fs::read(sb.workdir().join("copy").join(rel)).unwrap(),
            bytes,
            "{rel} imported"
        );
    }
}
