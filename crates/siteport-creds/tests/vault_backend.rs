//! The vault backend against (1) the in-process Vault fake (KV v2, KV v1, AppRole, Kubernetes,
//! failures), (2) RustyVault, a real Vault-compatible server (KV v1, token auth), installed by
//! `scripts/install-test-deps` into `~/.cargo/bin/rvault`, and (3) an opt-in live Vault.
#![cfg(feature = "vault")]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use siteport_creds::backends::vault::{KvVersion, VaultBackend, VaultEnv, VaultSettings};
use siteport_creds::testkit;
use siteport_creds::{
    Credential, CredentialBackend, CredentialName, ErrorKind, ExposeSecret, SecretString, StoreMode,
};
use siteport_testsupport::vault_fake::{ROOT_TOKEN, VaultFake};

fn name(s: &str) -> CredentialName {
    CredentialName::new(s).unwrap()
}

fn settings(addr: &str, mount: &str) -> VaultSettings {
    VaultSettings {
        address: Some(addr.to_owned()),
        mount: Some(mount.to_owned()),
        ..Default::default()
    }
}

/// An environment with no HOME token file and the given token.
fn env_with_token(token: &str) -> (VaultEnv, tempfile::TempDir) {
    let home = tempfile::tempdir().unwrap();
    let env = VaultEnv::empty()
        .var("HOME", home.path().to_str().unwrap())
        .var("VAULT_TOKEN", token);
    (env, home)
}

fn cred(n: &str, pw: &str) -> Credential {
    Credential::new(name(n), "user", SecretString::from(pw.to_owned()))
        .unwrap()
        .with_host("ftp.example")
        .unwrap()
        .with_port(2121)
        .unwrap()
}

#[tokio::test]
async fn kv2_on_fake_is_conformant_and_lays_out_one_secret_per_credential() {
    let fake = VaultFake::start().await;
    let (env, _home) = env_with_token(ROOT_TOKEN);
    let b = VaultBackend::open_with_env(&settings(&fake.address(), "secret"), &env).unwrap();
    testkit::writable_suite(&b).await;
    assert_eq!(b.kv_version().await.unwrap(), KvVersion::V2, "detected");

    b.store(&cred("layout", "layout-pw-1"), StoreMode::CreateNew)
        .await
        .unwrap();
    let data = fake
        .v2_data("siteport/layout")
        .expect("secret at siteport/layout");
    assert_eq!(data["username"], "user");
    assert_eq!(data["password"], "layout-pw-1");
    assert_eq!(data["host"], "ftp.example");
    // A number since the shared payload codec; string ports are still read (below).
    assert_eq!(data["port"], 2121);
    b.store(&cred("layout", "layout-pw-2"), StoreMode::Replace)
        .await
        .unwrap();
    assert_eq!(fake.v2_versions("siteport/layout"), 2);
    assert!(b.get(&name("layout")).await.unwrap().updated().is_some());
    // Delete removes every version (metadata DELETE), not just the latest.
    b.delete(&name("layout")).await.unwrap();
    assert_eq!(fake.v2_versions("siteport/layout"), 0);

    let dbg = format!("{b:?} {env:?}");
    assert!(!dbg.contains(ROOT_TOKEN), "{dbg}");
    assert!(dbg.contains("****"), "{dbg}");
}

/// Secrets written before the shared payload codec (and by `vault kv put`) carry the port as a
/// string: they still read.
#[tokio::test]
async fn a_string_port_written_by_hand_still_reads() {
    let fake = VaultFake::start().await;
    let (env, _home) = env_with_token(ROOT_TOKEN);
    let b = VaultBackend::open_with_env(&settings(&fake.address(), "secret"), &env).unwrap();
    let body =
        r#"{"data":{"username":"m","password":"manual-pw","host":"h.example","port":"2121"}}"#;
    let r = reqwest::Client::new()
        .post(format!("{}/v1/secret/data/siteport/manual", fake.address()))
        .header("X-Vault-Token", ROOT_TOKEN)
        .body(body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(fake.v2_data("siteport/manual").unwrap()["port"], "2121");
    let c = b.get(&name("manual")).await.unwrap();
    assert_eq!(c.port(), Some(2121));
    assert_eq!(c.host(), Some("h.example"));
    assert_eq!(c.password().expose_secret(), "manual-pw");
}

#[tokio::test]
async fn kv1_on_fake_is_conformant() {
    let fake = VaultFake::start().await;
    let (env, _home) = env_with_token(ROOT_TOKEN);
    let b = VaultBackend::open_with_env(&settings(&fake.address(), "kv"), &env).unwrap();
    testkit::writable_suite(&b).await;
    assert_eq!(b.kv_version().await.unwrap(), KvVersion::V1, "detected");
    b.store(&cred("v1", "v1-pw"), StoreMode::CreateNew)
        .await
        .unwrap();
    assert_eq!(fake.v1_data("siteport/v1").unwrap()["password"], "v1-pw");
}

#[tokio::test]
async fn custom_prefix_and_namespace_header() {
    let fake = VaultFake::start().await;
    let (env, _home) = env_with_token(ROOT_TOKEN);
    let env = env.var("VAULT_NAMESPACE", "team-a/");
    let s = VaultSettings {
        path_prefix: Some("apps/web".into()),
        ..settings(&fake.address(), "secret")
    };
    let b = VaultBackend::open_with_env(&s, &env).unwrap();
    b.store(&cred("site", "prefix-pw"), StoreMode::CreateNew)
        .await
        .unwrap();
    assert!(fake.v2_data("apps/web/site").is_some());
    assert!(
        b.describe().contains("/v1/secret/apps/web/"),
        "{}",
        b.describe()
    );
    let ns = fake.namespaces();
    assert!(!ns.is_empty() && ns.iter().all(|n| n == "team-a"), "{ns:?}");
}

#[tokio::test]
async fn token_file_in_home_is_used_when_vault_token_is_unset() {
    let fake = VaultFake::start().await;
    fake.add_token("hvs.from-file");
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join(".vault-token"), "hvs.from-file\n").unwrap();
    let env = VaultEnv::empty().var("HOME", home.path().to_str().unwrap());
    let b = VaultBackend::open_with_env(&settings(&fake.address(), "secret"), &env).unwrap();
    b.store(&cred("f", "file-token-pw"), StoreMode::CreateNew)
        .await
        .unwrap();
    assert_eq!(b.list().await.unwrap().len(), 1);
}

#[tokio::test]
async fn missing_token_names_vault_token() {
    let fake = VaultFake::start().await;
    let home = tempfile::tempdir().unwrap();
    let env = VaultEnv::empty().var("HOME", home.path().to_str().unwrap());
    let b = VaultBackend::open_with_env(&settings(&fake.address(), "secret"), &env).unwrap();
    let e = b.get(&name("acme")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    assert!(e.to_string().contains("VAULT_TOKEN"), "{e}");
    assert!(e.hint().unwrap().contains("VAULT_TOKEN"), "{e:?}");
    assert_eq!(fake.requests(), 0, "nothing sent without a token");
}

#[tokio::test]
async fn bad_token_is_permission_denied_without_the_token() {
    let fake = VaultFake::start().await;
    let (env, _home) = env_with_token("hvs.not-a-real-token-XYZ");
    let b = VaultBackend::open_with_env(&settings(&fake.address(), "secret"), &env).unwrap();
    let e = b.get(&name("acme")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    let text = format!("{e} {e:?} {:?}", e.hint());
    assert!(!text.contains("not-a-real-token"), "{text}");
    assert!(text.contains("403"), "{text}");
    assert!(text.contains(&fake.address()), "names the address: {text}");
    assert!(e.hint().unwrap().contains("policy"), "{text}");
    assert!(!e.is_retryable());
}

#[tokio::test]
async fn approle_logs_in_again_after_revocation_and_on_expiry() {
    let fake = VaultFake::start().await;
    fake.add_approle("role-1", "secret-1", Duration::from_secs(3600));
    let home = tempfile::tempdir().unwrap();
    let sid = home.path().join("secret-id");
    std::fs::write(&sid, "secret-1\n").unwrap();
    let s = VaultSettings {
        auth: Some("approle".into()),
        role_id: Some("role-1".into()),
        secret_id_file: Some(sid),
        ..settings(&fake.address(), "secret")
    };
    let env = VaultEnv::empty().var("HOME", home.path().to_str().unwrap());
    let b = VaultBackend::open_with_env(&s, &env).unwrap();
    testkit::writable_suite(&b).await;
    assert_eq!(fake.logins(), 1, "one login serves the whole suite");

    // A revoked token: 403, then exactly one re-login, and the request succeeds.
    b.store(&cred("a", "approle-pw"), StoreMode::CreateNew)
        .await
        .unwrap();
    fake.revoke_all();
    assert_eq!(b.get(&name("a")).await.unwrap().username(), "user");
    assert_eq!(fake.logins(), 2);

    // Short-lived tokens are renewed by logging in again before they expire.
    fake.add_approle("role-1", "secret-1", Duration::from_secs(1));
    fake.revoke_all();
    b.get(&name("a")).await.unwrap();
    let after = fake.logins();
    b.get(&name("a")).await.unwrap();
    assert!(fake.logins() > after, "an expiring token is replaced");

    // A wrong secret ID: permission denied, with the AppRole hint, no secret in the message.
    fake.add_approle("role-1", "other-secret", Duration::from_secs(60));
    fake.revoke_all();
    let e = b.get(&name("a")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    assert!(e.to_string().contains("approle login"), "{e}");
    assert!(e.hint().unwrap().contains("secret ID"), "{e:?}");
    assert!(!format!("{e:?}").contains("secret-1"), "{e:?}");
}

#[tokio::test]
async fn kubernetes_auth_reads_the_service_account_jwt() {
    let fake = VaultFake::start().await;
    fake.add_k8s_role("siteport", "eyJ.fake.jwt", Duration::from_secs(600));
    let dir = tempfile::tempdir().unwrap();
    let jwt = dir.path().join("token");
    std::fs::write(&jwt, "eyJ.fake.jwt").unwrap();
    let s = VaultSettings {
        auth: Some("kubernetes".into()),
        role: Some("siteport".into()),
        jwt_file: Some(jwt),
        ..settings(&fake.address(), "kv")
    };
    let b = VaultBackend::open_with_env(&s, &VaultEnv::empty()).unwrap();
    testkit::writable_suite(&b).await;
    assert_eq!(fake.logins(), 1);

    let s = VaultSettings {
        role: Some("nobody".into()),
        ..s
    };
    let b = VaultBackend::open_with_env(&s, &VaultEnv::empty()).unwrap();
    let e = b.list().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
}

#[tokio::test]
async fn retries_only_retryable_failures_and_bounds_them() {
    let fake = VaultFake::start().await;
    let (env, _home) = env_with_token(ROOT_TOKEN);
    let s = VaultSettings {
        kv_version: Some(2),
        ..settings(&fake.address(), "secret")
    };
    let b = VaultBackend::open_with_env(&s, &env).unwrap();
    b.store(&cred("r", "retry-pw"), StoreMode::CreateNew)
        .await
        .unwrap();

    // 503 and 502 are retried; the third attempt succeeds.
    let before = fake.requests();
    fake.fail_next(&[503, 502]);
    assert_eq!(b.get(&name("r")).await.unwrap().username(), "user");
    assert_eq!(fake.requests() - before, 3);

    // 500 is not retried.
    let before = fake.requests();
    fake.fail_next(&[500]);
    let e = b.get(&name("r")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(
        e.to_string().contains("injected failure"),
        "Vault's errors array: {e}"
    );
    assert_eq!(fake.requests() - before, 1);

    // Three 429s in a row: rate limited, after exactly three attempts.
    let before = fake.requests();
    fake.fail_next(&[429, 429, 429]);
    let e = b.get(&name("r")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(e.to_string().contains("rate limited"), "{e}");
    assert_eq!(fake.requests() - before, 3);

    // A sealed Vault.
    fake.fail_next(&[503, 503, 503]);
    let e = b.get(&name("r")).await.unwrap_err();
    assert!(e.hint().unwrap().contains("vault status"), "{e:?}");
}

#[tokio::test]
async fn unreachable_vault_is_unavailable_and_names_the_address() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("http://127.0.0.1:{port}");
    let (env, _home) = env_with_token(ROOT_TOKEN);
    let b = VaultBackend::open_with_env(&settings(&addr, "secret"), &env).unwrap();
    let e = b.get(&name("acme")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(e.is_retryable());
    assert!(e.to_string().contains(&addr), "{e}");
    assert!(e.to_string().contains("3 attempt"), "{e}");
    assert!(e.hint().unwrap().contains("VAULT_ADDR"), "{e:?}");
}

#[test]
fn bad_settings_are_invalid_with_a_hint() {
    let env = VaultEnv::empty();
    let mut failures = Vec::new();
    for s in [
        VaultSettings {
            address: Some("vault.example:8200".into()),
            ..Default::default()
        },
        VaultSettings {
            kv_version: Some(3),
            ..Default::default()
        },
        VaultSettings {
            auth: Some("ldap".into()),
            ..Default::default()
        },
        VaultSettings {
            auth: Some("approle".into()),
            role_id: Some("r".into()),
            ..Default::default()
        },
        VaultSettings {
            auth: Some("kubernetes".into()),
            ..Default::default()
        },
    ] {
        // Every row runs; the test fails once, listing each row that did not hold.
        match VaultBackend::open_with_env(&s, &env) {
            Ok(_) => failures.push(format!("{s:?}: accepted")),
            Err(e) if e.kind() != ErrorKind::Invalid || e.hint().is_none() => failures.push(
                format!("{s:?}: {} error without the expected hint: {e}", e.kind()),
            ),
            Err(_) => {}
        }
    }
    assert!(
        failures.is_empty(),
        "bad settings not refused as expected:\n{}",
        failures.join("\n")
    );
    let e = VaultBackend::open_with_env(
        &VaultSettings {
            ca_cert: Some(PathBuf::from("/nonexistent/ca.pem")),
            ..Default::default()
        },
        &env,
    )
    .unwrap_err();
    assert!(e.hint().unwrap().contains("VAULT_CACERT"), "{e:?}");
}

/// A RustyVault server on a free port with a file store in a temp dir, initialised and
/// unsealed; killed on drop.
struct RustyVault {
    child: Child,
    addr: String,
    root_token: String,
    _dir: tempfile::TempDir,
}

impl Drop for RustyVault {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rvault_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("SITEPORT_RVAULT") {
        return PathBuf::from(p);
    }
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cargo"));
    home.join("bin/rvault")
}

async fn start_rusty_vault() -> RustyVault {
    let bin = rvault_binary();
    assert!(
        bin.exists(),
        "{} is missing: run scripts/install-test-deps (it runs `cargo install rusty_vault`)",
        bin.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.path().join("config.hcl");
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(
        &config,
        format!(
            "storage \"file\" {{\n  path = \"{}\"\n}}\nlistener \"tcp\" {{\n  address = \
             \"127.0.0.1:{port}\"\n  tls_disable = true\n}}\napi_addr = \
             \"http://127.0.0.1:{port}\"\nlog_level = \"warn\"\npid_file = \"{}\"\n",
            data.display(),
            dir.path().join("rvault.pid").display()
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.path().join("log")).unwrap();
    let child = Command::new(&bin)
        .arg("server")
        .arg("--config")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
    let addr = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let mut init = None;
    for _ in 0..100 {
        if let Ok(r) = http
            .put(format!("{addr}/v1/sys/init"))
            .body(r#"{"secret_shares":1,"secret_threshold":1}"#)
            .send()
            .await
        {
            init = Some(r.json::<serde_json::Value>().await.unwrap());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let init = init.unwrap_or_else(|| {
        panic!(
            "RustyVault did not start: {}",
            std::fs::read_to_string(dir.path().join("log")).unwrap_or_default()
        )
    });
    let key = init["keys"][0].as_str().expect("unseal key").to_owned();
    let root_token = init["root_token"].as_str().expect("root token").to_owned();
    let r: serde_json::Value = http
        .put(format!("{addr}/v1/sys/unseal"))
        .body(serde_json::json!({ "key": key }).to_string())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["sealed"], false, "unseal: {r}");
    RustyVault {
        child,
        addr,
        root_token,
        _dir: dir,
    }
}

#[tokio::test]
async fn kv1_on_rusty_vault_is_conformant() {
    let rv = start_rusty_vault().await;
    let (env, _home) = env_with_token(&rv.root_token);

    // RustyVault has no sys/internal/ui/mounts: detection fails with the fix in the hint.
    let b = VaultBackend::open_with_env(&settings(&rv.addr, "secret"), &env).unwrap();
    let e = b.list().await.unwrap_err();
    assert!(e.hint().unwrap().contains("kv_version"), "{e:?}");

    let s = VaultSettings {
        kv_version: Some(1),
        ..settings(&rv.addr, "secret")
    };
    let b = VaultBackend::open_with_env(&s, &env).unwrap();
    testkit::writable_suite(&b).await;

    let (bad, _h) = env_with_token("00000000-0000-0000-0000-000000000000");
    let b = VaultBackend::open_with_env(&s, &bad).unwrap();
    let e = b.get(&name("acme")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
}

/// Opt-in: a real Vault at `SITEPORT_LIVE_VAULT_ADDR` with `SITEPORT_LIVE_VAULT_TOKEN`
/// (optionally `SITEPORT_LIVE_VAULT_MOUNT`, default `secret`). Uses the prefix
/// `siteport-live-test/`. The only test allowed to skip; it says so.
#[tokio::test]
async fn live_vault_when_configured() {
    let (Ok(addr), Ok(token)) = (
        std::env::var("SITEPORT_LIVE_VAULT_ADDR"),
        std::env::var("SITEPORT_LIVE_VAULT_TOKEN"),
    ) else {
        siteport_testsupport::report_skip(
            "live_vault_when_configured",
            "set SITEPORT_LIVE_VAULT_ADDR and SITEPORT_LIVE_VAULT_TOKEN to run it against a \
             real Vault",
        );
        return;
    };
    let mut env = VaultEnv::from_process().var("VAULT_TOKEN", token);
    if let Ok(ca) = std::env::var("VAULT_CACERT") {
        env = env.var("VAULT_CACERT", ca);
    }
    let s = VaultSettings {
        address: Some(addr),
        mount: Some(std::env::var("SITEPORT_LIVE_VAULT_MOUNT").unwrap_or_else(|_| "secret".into())),
        path_prefix: Some("siteport-live-test/".into()),
        ..Default::default()
    };
    let b = VaultBackend::open_with_env(&s, &env).unwrap();
    testkit::writable_suite(&b).await;
}

#[tokio::test]
async fn kv2_on_fake_carries_ssh_keys() {
    let fake = VaultFake::start().await;
    let (env, _home) = env_with_token(ROOT_TOKEN);
    let b = VaultBackend::open_with_env(&settings(&fake.address(), "secret"), &env).unwrap();
    testkit::ssh_key_suite(&b, true).await;
}
