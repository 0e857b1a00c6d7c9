//! Azure Key Vault against the in-process Key Vault + Entra ID fake (HTTPS, challenge auth,
//! client-secret credential): the shared cycles, recovering a soft-deleted secret, and a bad
//! client secret.

use siteport_testsupport::azure_fake::{AzureFake, CLIENT_ID, CLIENT_SECRET, TENANT_ID};
use siteport_testsupport::{FtpServer, ServerKind};

use super::{Added, Cli, credential_cycle, export_import_cycle};
use crate::common::{Sandbox, assert_code, stderr};

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

/// The CLI in `sb` with `client_secret`; neither it, `also`, nor an access token may show.
fn cli<'a>(sb: &'a Sandbox, client_secret: &str, also: &[&str]) -> Cli<'a> {
    let mut leaks: Vec<String> = also.iter().map(|s| s.to_string()).collect();
    leaks.push("eyFake".to_owned());
    Cli {
        sb,
        kind: "azure",
        env: azure_env(client_secret),
        backend_flags: Vec::new(),
        verbose: true,
        leaks: Box::new(move || leaks.clone()),
    }
}

#[test]
fn credential_add_list_show_remove_at_vvv() {
    let (_rt, fake) = start_fake();
    let sb = Sandbox::new();
    std::fs::write(sb.workdir().join("siteport.toml"), azure_table(&fake, "")).unwrap();
    let secret = "Cli-azure-S3cret-pw!";
    let cli = cli(&sb, CLIENT_SECRET, &[CLIENT_SECRET]);
    let c = Added {
        name: "shop.example-com",
        username: "shop-deploy",
        host: "ftp.shop.example",
        secret,
    };
    let stored = || {
        let (value, ct, _) = fake.secret("siteport-shop-dexample--com").unwrap();
        assert!(value.contains(secret));
        assert_eq!(ct.as_deref(), Some("application/json"));
    };
    let removed = || assert!(fake.is_deleted("siteport-shop-dexample--com"));
    credential_cycle(&cli, &c, stored, Some(&removed));

    // Adding the removed name again recovers the soft-deleted secret and writes a new version.
    let o = cli.run_quiet(
        &[
            "credential",
            "add",
            "shop.example-com",
            "--username",
            "shop-2",
            "--password-stdin",
        ],
        &format!("{secret}\n"),
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
    let cli = cli(&sb, wrong, &[wrong]);
    let o = cli.run_vvv(&["credential", "list"], "");
    assert_code(&o, 3);
    let err = stderr(&o);
    assert!(err.contains("azure backend"), "{err}");
    assert!(err.contains(&fake.vault_url()), "{err}");
    assert!(err.contains("AZURE_CLIENT_SECRET"), "{err}");
    cli.assert_clean(&o, wrong);
}

#[test]
fn export_import_cycle_with_password_from_azure() {
    let (_rt, fake) = start_fake();
    let server = FtpServer::start(ServerKind::InProcess, false);
    let sb = Sandbox::new();
    let tables = azure_table(&fake, "prefix = \"ftp-\"\nauth = \"client_secret\"");
    let cli = cli(&sb, CLIENT_SECRET, &[CLIENT_SECRET]);
    export_import_cycle(&cli, &server, &tables, || {
        assert!(fake.secret("ftp-web").is_some())
    });
}
