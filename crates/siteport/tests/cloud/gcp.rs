//! GCP Secret Manager against the in-process fake, with Application Default Credentials from
//! `GOOGLE_APPLICATION_CREDENTIALS` (google-cloud-auth's real ADC path): the shared cycles,
//! bad credentials, refused SDK body logging and an unreachable endpoint.

use siteport_testsupport::gcp_fake::{self, GcpFake};
use siteport_testsupport::{FtpServer, ServerKind};

use super::{Added, Cli, credential_cycle, export_import_cycle};
use crate::common::{Sandbox, assert_code, stderr};

const PROJECT: &str = "cli-project";

/// `[credentials]` selecting gcp, with the fake as endpoint.
fn config(fake_endpoint: &str, extra: &str) -> String {
    format!(
        "[credentials]\nbackend = \"gcp\"\n\n[credentials.gcp]\nproject = \"{PROJECT}\"\nendpoint = \"{fake_endpoint}\"\nmax_attempts = 2\ntimeout_secs = 10\n{extra}\n"
    )
}

/// The CLI in `sb`; no OAuth secret or access token the fake handed out may show.
fn cli<'a>(sb: &'a Sandbox, fake: &'a GcpFake, env: Vec<(&'static str, String)>) -> Cli<'a> {
    Cli {
        sb,
        kind: "gcp",
        env,
        backend_flags: Vec::new(),
        verbose: true,
        leaks: Box::new(move || {
            let mut out: Vec<String> = [gcp_fake::CLIENT_SECRET, gcp_fake::REFRESH_TOKEN, "ya29."]
                .iter()
                .map(|s| s.to_string())
                .collect();
            out.extend(fake.bearer_tokens().into_iter().filter(|t| !t.is_empty()));
            out
        }),
    }
}

// Multi-threaded: the fake keeps serving while the test blocks on the child process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credential_add_list_show_remove_at_vvv() {
    let fake = GcpFake::start().await;
    let sb = Sandbox::new();
    let adc = fake.write_adc_file(&sb.home());
    std::fs::write(
        sb.workdir().join("siteport.toml"),
        config(&fake.endpoint(), ""),
    )
    .unwrap();
    let env = vec![(
        "GOOGLE_APPLICATION_CREDENTIALS",
        adc.to_string_lossy().into_owned(),
    )];
    let secret = "Cli-gcp-S3cret-pw!";
    let c = Added {
        name: "shop.example-com",
        username: "deploy",
        host: "ftp.shop.example",
        secret,
    };
    let stored = || {
        let stored = fake
            .latest_payload(PROJECT, "siteport-shop_dexample-com")
            .expect("stored in Secret Manager under the mapped ID");
        let v: serde_json::Value = serde_json::from_slice(&stored).unwrap();
        assert_eq!(v["password"], secret);
        assert!(
            fake.tokens_issued() >= 1,
            "the ADC file's refresh token was used"
        );
    };
    let removed = || assert_eq!(fake.versions(PROJECT, "siteport-shop_dexample-com"), 0);
    credential_cycle(&cli(&sb, &fake, env), &c, stored, Some(&removed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_and_unreachable_endpoint_exit_3() {
    let fake = GcpFake::start().await;
    let sb = Sandbox::new();
    // A refresh token the token endpoint refuses.
    let bad = sb.home().join("bad.json");
    std::fs::write(
        &bad,
        fake.authorized_user_json("1//not-a-valid-refresh-token"),
    )
    .unwrap();
    std::fs::write(
        sb.workdir().join("siteport.toml"),
        config(&fake.endpoint(), ""),
    )
    .unwrap();
    let env = vec![(
        "GOOGLE_APPLICATION_CREDENTIALS",
        bad.to_string_lossy().into_owned(),
    )];
    let c = cli(&sb, &fake, env);
    let o = c.run(&["credential", "list"], "");
    assert_code(&o, 3);
    let err = stderr(&o);
    assert!(err.contains("gcp backend"), "{err}");
    assert!(err.contains(&fake.endpoint()), "{err}");
    assert!(
        err.contains("gcloud auth application-default login"),
        "{err}"
    );
    assert!(!err.contains("not-a-valid-refresh-token"), "{err}");
    c.assert_clean(&o, "unused-password-marker");

    // The SDK's body logging would print passwords: refused before anything is read.
    let good = fake.write_adc_file(&sb.home());
    let adc = (
        "GOOGLE_APPLICATION_CREDENTIALS",
        good.to_string_lossy().into_owned(),
    );
    let env = vec![
        adc.clone(),
        ("GOOGLE_CLOUD_RUST_LOGGING", "true".to_owned()),
    ];
    let o = cli(&sb, &fake, env).run_quiet(&["credential", "list"], "");
    assert_code(&o, 3);
    assert!(
        stderr(&o).contains("GOOGLE_CLOUD_RUST_LOGGING"),
        "{}",
        stderr(&o)
    );

    // Nothing listens on this port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("http://127.0.0.1:{port}");
    std::fs::write(sb.workdir().join("siteport.toml"), config(&endpoint, "")).unwrap();
    let o = cli(&sb, &fake, vec![adc]).run_quiet(&["credential", "list"], "");
    assert_code(&o, 3);
    let err = stderr(&o);
    assert!(err.contains("gcp backend"), "{err}");
    assert!(err.contains(&endpoint), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_import_cycle_with_password_from_gcp() {
    let fake = GcpFake::start().await;
    let server = FtpServer::start(ServerKind::InProcess, false);
    let sb = Sandbox::new();
    // The key file named in the config (relative to it), listing by label.
    fake.write_adc_file(&sb.workdir());
    let tables = config(
        &fake.endpoint(),
        "prefix = \"ftp-\"\nlabel = \"app=siteport\"\ncredentials_file = \"adc.json\"",
    );
    let labelled = || {
        assert_eq!(
            fake.labels(PROJECT, "ftp-web")
                .unwrap()
                .get("app")
                .map(String::as_str),
            Some("siteport")
        );
    };
    export_import_cycle(&cli(&sb, &fake, Vec::new()), &server, &tables, labelled);
}
