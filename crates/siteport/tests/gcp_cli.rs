//! The CLI with the gcp backend against the in-process Secret Manager fake: credential
//! add/list/show/remove at `-vvv` with Application Default Credentials taken from
//! `GOOGLE_APPLICATION_CREDENTIALS` (google-cloud-auth's real ADC path), bad credentials and an
//! unreachable endpoint (exit 3), and an export → import cycle whose FTP password comes from
//! Secret Manager.

mod common;

use std::path::Path;

use common::{Sandbox, assert_code, json, stderr, stdout};
use secrecy::ExposeSecret;
use siteport_testsupport::gcp_fake::{self, GcpFake};
use siteport_testsupport::{FtpServer, ServerKind};

const PROJECT: &str = "cli-project";

/// `[credentials]` selecting gcp, with the fake as endpoint.
fn config(fake_endpoint: &str, extra: &str) -> String {
    format!(
        "[credentials]\nbackend = \"gcp\"\n\n[credentials.gcp]\nproject = \"{PROJECT}\"\nendpoint = \"{fake_endpoint}\"\nmax_attempts = 2\ntimeout_secs = 10\n{extra}\n"
    )
}

fn run(sb: &Sandbox, args: &[&str], stdin: &str, env: &[(&str, String)]) -> std::process::Output {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    sb.run(args, stdin, &env)
}

/// Neither the FTP password nor any OAuth secret or access token in the output.
fn assert_clean(o: &std::process::Output, fake: &GcpFake, password: &str) {
    let all = format!("{}\n{}", stdout(o), stderr(o));
    assert!(!all.contains(password), "output leaks the password:\n{all}");
    for s in [gcp_fake::CLIENT_SECRET, gcp_fake::REFRESH_TOKEN, "ya29."] {
        assert!(
            !all.contains(s),
            "output leaks an auth secret ({s}):\n{all}"
        );
    }
    for t in fake.bearer_tokens().iter().filter(|t| !t.is_empty()) {
        assert!(!all.contains(t.as_str()), "output leaks an access token");
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
    let env = [(
        "GOOGLE_APPLICATION_CREDENTIALS",
        adc.to_string_lossy().into_owned(),
    )];
    let secret = "Cli-gcp-S3cret-pw!";

    let o = run(
        &sb,
        &[
            "-vvv",
            "credential",
            "add",
            "shop.example-com",
            "--username",
            "deploy",
            "--host",
            "ftp.shop.example",
            "--password-stdin",
        ],
        &format!("{secret}\n"),
        &env,
    );
    assert_code(&o, 0);
    assert_clean(&o, &fake, secret);
    let stored = fake
        .latest_payload(PROJECT, "siteport-shop_dexample-com")
        .expect("stored in Secret Manager under the mapped ID");
    let v: serde_json::Value = serde_json::from_slice(&stored).unwrap();
    assert_eq!(v["password"], secret);
    assert!(
        fake.tokens_issued() >= 1,
        "the ADC file's refresh token was used"
    );

    let o = run(&sb, &["-vvv", "--json", "credential", "list"], "", &env);
    assert_code(&o, 0);
    assert_clean(&o, &fake, secret);
    let text = json(&o).to_string();
    assert!(text.contains("\"shop.example-com\""), "{text}");
    assert!(text.contains("deploy"), "{text}");
    assert!(text.contains("\"gcp\""), "{text}");

    let o = run(
        &sb,
        &["-vvv", "credential", "show", "shop.example-com"],
        "",
        &env,
    );
    assert_code(&o, 0);
    assert!(stdout(&o).contains("ftp.shop.example"), "{}", stdout(&o));
    assert_clean(&o, &fake, secret);

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
    assert_clean(&o, &fake, secret);

    let o = run(
        &sb,
        &["-vvv", "credential", "remove", "shop.example-com"],
        "",
        &env,
    );
    assert_code(&o, 0);
    assert_clean(&o, &fake, secret);
    assert_eq!(fake.versions(PROJECT, "siteport-shop_dexample-com"), 0);

    let o = run(&sb, &["credential", "show", "shop.example-com"], "", &env);
    assert_code(&o, 3);
    assert!(stderr(&o).contains("gcp backend"), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("siteport credential add shop.example-com"),
        "{}",
        stderr(&o)
    );
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
    let env = [(
        "GOOGLE_APPLICATION_CREDENTIALS",
        bad.to_string_lossy().into_owned(),
    )];
    let o = run(&sb, &["-vvv", "credential", "list"], "", &env);
    assert_code(&o, 3);
    let err = stderr(&o);
    assert!(err.contains("gcp backend"), "{err}");
    assert!(err.contains(&fake.endpoint()), "{err}");
    assert!(
        err.contains("gcloud auth application-default login"),
        "{err}"
    );
    assert!(!err.contains("not-a-valid-refresh-token"), "{err}");
    assert_clean(&o, &fake, "unused-password-marker");

    // The SDK's body logging would print passwords: refused before anything is read.
    let good = fake.write_adc_file(&sb.home());
    let env = [
        (
            "GOOGLE_APPLICATION_CREDENTIALS",
            good.to_string_lossy().into_owned(),
        ),
        ("GOOGLE_CLOUD_RUST_LOGGING", "true".to_owned()),
    ];
    let o = run(&sb, &["credential", "list"], "", &env);
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
    let o = run(&sb, &["credential", "list"], "", &env[..1]);
    assert_code(&o, 3);
    let err = stderr(&o);
    assert!(err.contains("gcp backend"), "{err}");
    assert!(err.contains(&endpoint), "{err}");
}

fn write_site(root: &Path) {
    for (rel, bytes) in [
        ("index.html", b"<h1>gcp</h1>\n".to_vec()),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_import_cycle_with_password_from_gcp() {
    let fake = GcpFake::start().await;
    let server = FtpServer::start(ServerKind::InProcess, false);
    let sb = Sandbox::new();
    // The key file named in the config (relative to it), listing by label.
    fake.write_adc_file(&sb.workdir());
    let site = |name: &str, local: &str| {
        format!(
            "[[site]]\nname = \"{name}\"\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\ncredential = \"web\"\nlocal = \"{local}\"\nremote = \"/htdocs\"\n\n",
            server.port
        )
    };
    std::fs::write(
        sb.workdir().join("siteport.toml"),
        format!(
            "{}{}{}",
            config(
                &fake.endpoint(),
                "prefix = \"ftp-\"\nlabel = \"app=siteport\"\ncredentials_file = \"adc.json\""
            ),
            site("web", "public"),
            site("copy", "copy")
        ),
    )
    .unwrap();
    let env: [(&str, String); 0] = [];
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
    assert_eq!(
        fake.labels(PROJECT, "ftp-web")
            .unwrap()
            .get("app")
            .map(String::as_str),
        Some("siteport")
    );

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
    assert_clean(&o, &fake, &password);
    assert_eq!(read_tree(&server.root().join("htdocs")), read_tree(&local));

    let o = run(&sb, &["import", "copy"], "", &env);
    assert_code(&o, 0);
    assert_eq!(read_tree(&sb.workdir().join("copy")), read_tree(&local));
}
