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
