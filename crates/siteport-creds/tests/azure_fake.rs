//! The azure backend against the in-process Key Vault + Entra ID fake (HTTPS, challenge auth),
//! through the official SDK and a real `ClientSecretCredential`, plus an opt-in live test.

use std::collections::{BTreeSet, HashMap};

use serde_json::json;
use siteport_creds::Remedy;
use siteport_creds::backends::azure::{AzureBackend, decode_name, encode_name};
use siteport_creds::testkit::{self, assert_no_secret, fixtures};
use siteport_creds::{
    AzureSettings, Credential, CredentialBackend, CredentialName, ErrorKind, ExposeSecret,
    SecretString, StoreMode,
};
use siteport_testsupport::azure_fake::{AzureFake, CLIENT_ID, CLIENT_SECRET, TENANT_ID};

fn name(s: &str) -> CredentialName {
    CredentialName::new(s).unwrap()
}

fn env(secret: &str) -> HashMap<&'static str, String> {
    HashMap::from([
        ("AZURE_TENANT_ID", TENANT_ID.to_owned()),
        ("AZURE_CLIENT_ID", CLIENT_ID.to_owned()),
        ("AZURE_CLIENT_SECRET", secret.to_owned()),
    ])
}

fn settings(fake: &AzureFake) -> AzureSettings {
    AzureSettings {
        vault_url: Some(fake.vault_url()),
        authority_host: Some(fake.authority_host()),
        ca_cert: Some(fake.ca_path()),
        auth: Some("client_secret".into()),
        ..Default::default()
    }
}

fn open(s: &AzureSettings, secret: &str) -> AzureBackend {
    let e = env(secret);
    AzureBackend::open_with_env(s, |k| e.get(k).cloned()).unwrap()
}

fn backend(fake: &AzureFake) -> AzureBackend {
    open(&settings(fake), CLIENT_SECRET)
}

#[tokio::test]
async fn conformance_with_paging() {
    let fake = AzureFake::start().await;
    // Pages of two secrets: listing the four fixtures follows nextLink.
    fake.set_page_size(2);
    let b = backend(&fake);
    testkit::writable_suite(&b).await;
    // The suite deleted everything without purging: all four are recoverable.
    assert!(fake.is_deleted("siteport-acme"));
    assert!(fake.is_deleted("siteport-shop-dexample--com"));
    // One token, reused; the first request was challenged.
    assert_eq!(fake.token_requests(), 1);
}

#[tokio::test]
async fn conformance_with_purge_and_prefix() {
    let fake = AzureFake::start().await;
    let b = open(
        &AzureSettings {
            prefix: Some("Team-A-".into()),
            purge_on_delete: true,
            ..settings(&fake)
        },
        CLIENT_SECRET,
    );
    testkit::writable_suite(&b).await;
    assert!(!fake.exists("team-a-acme"), "purged secrets are gone");
    assert!(!fake.exists("team-a-beta-u2"));
}

#[tokio::test]
async fn secret_layout() {
    let fake = AzureFake::start().await;
    let b = backend(&fake);
    assert!(b.describe().contains(&fake.vault_url()), "{}", b.describe());
    assert!(b.describe().starts_with("azure backend"));
    for f in fixtures() {
        b.store(&f, StoreMode::CreateNew).await.unwrap();
    }
    let (value, ct, tags) = fake.secret("siteport-acme").unwrap();
    let v: serde_json::Value = serde_json::from_str(&value).unwrap();
    assert_eq!(v["username"], "acme-deploy");
    assert_eq!(v["password"], fixtures()[0].password().expose_secret());
    assert_eq!(v["host"], "ftp.acme.example");
    assert_eq!(v["port"], 21);
    assert_eq!(ct.as_deref(), Some("application/json"));
    assert_eq!(tags, Some(json!({"managed-by": "siteport"})));
    // Names with '.', '-' and '_' are escaped.
    for secret in [
        "siteport-shop-dexample--com",
        "siteport-beta-u2",
        "siteport-ci--runner-d9",
    ] {
        assert!(fake.secret(secret).is_some(), "{secret} missing");
    }
    let v: serde_json::Value =
        serde_json::from_str(&fake.secret("siteport-beta-u2").unwrap().0).unwrap();
    assert!(v.get("port").is_none(), "no port stored when there is none");

    // Replace writes a new version.
    assert_eq!(fake.versions("siteport-acme"), 1);
    let r = Credential::new(
        name("acme"),
        "acme-2",
        SecretString::from("Fx-replaced-acme-pw"),
    )
    .unwrap();
    b.store(&r, StoreMode::Replace).await.unwrap();
    assert_eq!(fake.versions("siteport-acme"), 2);
    assert_eq!(b.get(&name("acme")).await.unwrap().username(), "acme-2");
    assert!(b.get(&name("acme")).await.unwrap().created().is_some());
    let h = b.check().await.unwrap();
    assert!(h.notes.iter().any(|n| n.contains("siteport-")), "{h:?}");
}

#[test]
fn name_mapping_round_trips_and_never_collides() {
    // Every credential name of up to three characters over the whole alphabet.
    let alphabet: Vec<char> = ('a'..='z')
        .chain('0'..='9')
        .chain(['.', '_', '-'])
        .collect();
    let mut seen = BTreeSet::new();
    let mut count = 0;
    let mut words: Vec<String> = vec![String::new()];
    for _ in 0..3 {
        let mut next = Vec::new();
        for w in &words {
            for c in &alphabet {
                next.push(format!("{w}{c}"));
            }
        }
        for w in &next {
            let Ok(n) = CredentialName::new(w) else {
                continue;
            };
            if n.as_str() != w {
                continue;
            }
            let e = encode_name(&n);
            assert!(
                e.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'),
                "{w} -> {e}"
            );
            assert_eq!(decode_name(&e).as_ref(), Some(&n), "{w} -> {e}");
            // Key Vault compares case-insensitively: compare lowercase forms.
            assert!(seen.insert(e.to_ascii_lowercase()), "collision on {e}");
            count += 1;
        }
        words = next;
    }
    assert!(count > 50_000, "{count}");
    // Every allowed character round-trips inside a longer name too.
    let all = name("a0123456789bcdefghijklmnopqrstuvwxyz.-_z");
    assert_eq!(decode_name(&encode_name(&all)), Some(all));
    // Vault names that are not canonical encodings decode to nothing.
    for bad in ["-", "a-", "a-x", "a---", "-da", "a b", "ä"] {
        assert_eq!(decode_name(bad), None, "{bad}");
    }
}

#[tokio::test]
async fn list_ignores_foreign_and_undecodable_secrets() {
    let fake = AzureFake::start().await;
    let b = backend(&fake);
    b.store(&fixtures().remove(0), StoreMode::CreateNew)
        .await
        .unwrap();
    let body = r#"{"username":"x","password":"y"}"#;
    fake.put_raw("other-acme", body, None); // outside the prefix
    fake.put_raw("siteport-bad-x", body, None); // unknown escape
    fake.put_raw("siteportx", body, None); // prefix without its dash
    fake.put_raw(
        "siteport-terraform",
        body,
        Some(json!({"managed-by": "terraform"})),
    );
    // Hand-made, upper case, port as a string, no tags: ours.
    fake.put_raw(
        "SITEPORT-Manual-u1",
        r#"{"username":"m","password":"manual-pw","host":"h.example","port":"2121"}"#,
        None,
    );
    let list = b.list().await.unwrap();
    let names: Vec<&str> = list.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["acme", "manual_1"]);
    let m = b.get(&name("manual_1")).await.unwrap();
    assert_eq!((m.host(), m.port()), (Some("h.example"), Some(2121)));

    // A value that is not our JSON: Corrupt, without quoting it.
    fake.put_raw("siteport-broken", "Fx-acme-S3cret!pw is not json", None);
    let e = b.get(&name("broken")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    assert!(e.to_string().contains("siteport-broken"), "{e}");
    assert_no_secret("corrupt secret error", &format!("{e} {e:?}"));
}

#[tokio::test]
async fn not_found_and_soft_delete() {
    let fake = AzureFake::start().await;
    let b = backend(&fake);
    let e = b.get(&name("nope")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(e.to_string().contains("azure backend"), "{e}");
    assert_eq!(e.remedy(), Some(&Remedy::AddCredential(name("nope"))));
    assert_eq!(
        b.delete(&name("nope")).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );

    // Deleting keeps the secret recoverable; adding the name again recovers it (history kept)
    // and writes a new version.
    let acme = fixtures().remove(0);
    b.store(&acme, StoreMode::CreateNew).await.unwrap();
    b.delete(acme.name()).await.unwrap();
    assert!(fake.is_deleted("siteport-acme"));
    assert_eq!(
        b.get(acme.name()).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert!(b.list().await.unwrap().is_empty());
    b.store(&acme, StoreMode::CreateNew).await.unwrap();
    assert!(!fake.is_deleted("siteport-acme"));
    assert_eq!(fake.versions("siteport-acme"), 2);
    testkit::assert_same("after recovery", &b.get(acme.name()).await.unwrap(), &acme);

    // With purge_on_delete the name is gone for good.
    let p = open(
        &AzureSettings {
            purge_on_delete: true,
            ..settings(&fake)
        },
        CLIENT_SECRET,
    );
    p.delete(acme.name()).await.unwrap();
    assert!(!fake.exists("siteport-acme"));
    p.store(&acme, StoreMode::CreateNew).await.unwrap();
    assert_eq!(fake.versions("siteport-acme"), 1);
}

#[tokio::test]
async fn bad_client_secret_is_permission_denied() {
    let fake = AzureFake::start().await;
    let wrong = "Fx-wrong-client-secret-value";
    let b = open(&settings(&fake), wrong);
    let e = b.get(&name("acme")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    let text = format!("{e} {e:?} {}", e.hint().unwrap_or(""));
    assert!(text.contains("azure backend"), "{text}");
    assert!(text.contains(&fake.vault_url()), "{text}");
    assert!(text.contains("AZURE_CLIENT_SECRET"), "{text}");
    assert!(!text.contains(wrong), "client secret leaked: {text}");
    assert!(!text.contains(CLIENT_SECRET), "{text}");
    assert!(!text.contains("eyFake"), "token leaked: {text}");
    let e = b
        .store(&fixtures().remove(0), StoreMode::Replace)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    assert_no_secret("permission error", &format!("{e} {e:?}"));
    assert!(!format!("{b:?}").contains(wrong));
}

#[tokio::test]
async fn throttling_is_retried_then_succeeds() {
    let fake = AzureFake::start().await;
    let b = backend(&fake);
    let acme = fixtures().remove(0);
    b.store(&acme, StoreMode::CreateNew).await.unwrap();
    let before = fake.vault_requests();
    fake.fail_next(&[429, 503]);
    let got = b.get(acme.name()).await.unwrap();
    testkit::assert_same("after retries", &got, &acme);
    assert_eq!(
        fake.vault_requests() - before,
        3,
        "two failures, one success"
    );
}

#[tokio::test]
async fn forbidden_is_not_retried() {
    let fake = AzureFake::start().await;
    let b = backend(&fake);
    let acme = fixtures().remove(0);
    b.store(&acme, StoreMode::CreateNew).await.unwrap();
    let before = fake.vault_requests();
    fake.fail_next(&[403]);
    let e = b.get(acme.name()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    assert!(!e.is_retryable());
    assert_eq!(fake.vault_requests() - before, 1, "403 must not be retried");
    assert!(e.to_string().contains("403"), "{e}");
    assert!(e.to_string().contains(&fake.vault_url()), "{e}");
    let hint = e.hint().unwrap();
    assert!(hint.contains("Key Vault Secrets Officer"), "{hint}");
    // The next call works again.
    assert!(b.get(acme.name()).await.is_ok());
}

#[tokio::test]
async fn persistent_503_gives_up_as_unavailable() {
    let fake = AzureFake::start().await;
    let b = open(
        &AzureSettings {
            max_attempts: Some(2),
            ..settings(&fake)
        },
        CLIENT_SECRET,
    );
    b.check().await.unwrap();
    let before = fake.vault_requests();
    fake.fail_next(&[503, 503, 503]);
    let e = b.get(&name("acme")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(e.is_retryable());
    assert_eq!(fake.vault_requests() - before, 2, "max_attempts = 2");
}

#[tokio::test]
async fn unreachable_vault_is_unavailable() {
    let fake = AzureFake::start().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("https://nowhere.vault.localhost:{port}/");
    let b = open(
        &AzureSettings {
            vault_url: Some(url.clone()),
            max_attempts: Some(2),
            timeout_secs: Some(5),
            ..settings(&fake)
        },
        CLIENT_SECRET,
    );
    let started = std::time::Instant::now();
    let e = b.get(&name("acme")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(e.to_string().contains(&url), "{e}");
    assert!(e.hint().unwrap().contains("vault_url"), "{e:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert_eq!(b.check().await.unwrap_err().kind(), ErrorKind::Unavailable);
}

#[test]
fn bad_settings_are_refused() {
    let none = |_: &str| None;
    let e = AzureBackend::open_with_env(&AzureSettings::default(), none).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalid);
    assert!(e.hint().unwrap().contains("AZURE_KEYVAULT_URL"), "{e:?}");
    // AZURE_KEYVAULT_URL is the fallback.
    let b = AzureBackend::open_with_env(&AzureSettings::default(), |k| {
        (k == "AZURE_KEYVAULT_URL").then(|| "https://myvault.vault.azure.net/".to_owned())
    })
    .unwrap();
    assert!(b.describe().contains("https://myvault.vault.azure.net/"));
    let with = |s: AzureSettings| {
        AzureBackend::open_with_env(
            &AzureSettings {
                vault_url: s
                    .vault_url
                    .clone()
                    .or(Some("https://v.vault.azure.net/".into())),
                ..s
            },
            none,
        )
    };
    let mut failures = Vec::new();
    for (s, needle) in [
        (
            AzureSettings {
                vault_url: Some("http://v.vault.azure.net/".into()),
                ..Default::default()
            },
            "https://",
        ),
        (
            AzureSettings {
                prefix: Some("site/port".into()),
                ..Default::default()
            },
            "prefix",
        ),
        (
            AzureSettings {
                auth: Some("client_secret".into()),
                ..Default::default()
            },
            "AZURE_CLIENT_SECRET",
        ),
        (
            AzureSettings {
                auth: Some("magic".into()),
                ..Default::default()
            },
            "unknown auth method 'magic'",
        ),
        (
            AzureSettings {
                max_attempts: Some(0),
                ..Default::default()
            },
            "max_attempts",
        ),
        (
            AzureSettings {
                authority_host: Some("http://login.example".into()),
                ..Default::default()
            },
            "authority_host",
        ),
    ] {
        // Every row runs; the test fails once, listing each row that did not hold.
        match with(s) {
            Ok(_) => failures.push(format!("{needle}: accepted")),
            Err(e) if e.kind() != ErrorKind::Invalid || !e.to_string().contains(needle) => {
                failures.push(format!("{needle}: {} error: {e}", e.kind()))
            }
            Err(_) => {}
        }
    }
    assert!(
        failures.is_empty(),
        "bad settings not refused as expected:\n{}",
        failures.join("\n")
    );
    // A name whose secret name would pass Key Vault's 127-character limit.
    let long = format!("a{}", "-".repeat(63));
    let e = b.secret_name(&name(&long)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalid);
    assert!(e.to_string().contains("127"), "{e}");
    assert!(b.secret_name(&name(&"a".repeat(64))).is_ok());
}

/// Opt-in: `SITEPORT_LIVE_AZURE_VAULT_URL=https://<vault>.vault.azure.net/` (plus `az login`
/// or AZURE_* variables) runs the conformance suite against a real Key Vault under the prefix
/// `siteport-live-test-`, purging what it deletes (needs `Key Vault Secrets Officer`).
#[tokio::test]
async fn live_azure() {
    let Some(url) = std::env::var("SITEPORT_LIVE_AZURE_VAULT_URL")
        .ok()
        .filter(|r| !r.is_empty())
    else {
        siteport_testsupport::report_skip(
            "live_azure",
            "set SITEPORT_LIVE_AZURE_VAULT_URL to run against a real Key Vault",
        );
        return;
    };
    let b = AzureBackend::open(&AzureSettings {
        vault_url: Some(url),
        prefix: Some("siteport-live-test-".into()),
        purge_on_delete: true,
        ..Default::default()
    })
    .unwrap();
    testkit::writable_suite(&b).await;
}

#[tokio::test]
async fn carries_ssh_keys() {
    let fake = AzureFake::start().await;
    let b = backend(&fake);
    testkit::ssh_key_suite(&b, true).await;
}
