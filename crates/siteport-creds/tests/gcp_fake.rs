//! The gcp backend against the in-process Secret Manager fake (`siteport_testsupport::gcp_fake`),
//! through the official SDK (REST with an endpoint override) and google-cloud-auth's real
//! `authorized_user` flow (token refresh against the fake's token endpoint), plus an opt-in
//! live test against real Secret Manager.

use siteport_creds::Remedy;
use siteport_creds::backends::gcp::{GcpBackend, MAX_PREFIX_LEN, decode_name, encode_name};
use siteport_creds::testkit::{self, assert_no_secret, fixtures};
use siteport_creds::{
    Credential, CredentialBackend, CredentialName, ErrorKind, ExposeSecret, GcpSettings,
    SecretString, StoreMode,
};
use siteport_testsupport::gcp_fake::{self, GcpFake};

const PROJECT: &str = "siteport-test";

fn name(s: &str) -> CredentialName {
    CredentialName::new(s).unwrap()
}

struct Env {
    fake: GcpFake,
    _dir: tempfile::TempDir,
    adc: std::path::PathBuf,
}

async fn env() -> Env {
    let fake = GcpFake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let adc = fake.write_adc_file(dir.path());
    Env {
        fake,
        _dir: dir,
        adc,
    }
}

fn settings(e: &Env) -> GcpSettings {
    GcpSettings {
        project: Some(PROJECT.into()),
        endpoint: Some(e.fake.endpoint()),
        credentials_file: Some(e.adc.clone()),
        max_attempts: Some(3),
        timeout_secs: Some(20),
        ..Default::default()
    }
}

fn backend(s: &GcpSettings) -> GcpBackend {
    GcpBackend::open(s).unwrap()
}

/// Everything an error shows, for leak checks.
fn error_text(e: &siteport_creds::Error) -> String {
    let mut out = format!("{e}\n{e:?}\n{}", e.hint().unwrap_or(""));
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        out.push_str(&format!("\n{s}"));
        src = s.source();
    }
    out
}

/// No OAuth secret, refresh token or access token in `text`.
fn assert_no_auth_secret(fake: &GcpFake, text: &str) {
    for s in [gcp_fake::CLIENT_SECRET, gcp_fake::REFRESH_TOKEN, "ya29."] {
        assert!(!text.contains(s), "leaks an auth secret ({s}): {text}");
    }
    for t in fake.bearer_tokens().iter().filter(|t| !t.is_empty()) {
        assert!(!text.contains(t.as_str()), "leaks an access token: {text}");
    }
}

#[tokio::test]
async fn conformance_default_prefix() {
    let e = env().await;
    let b = backend(&settings(&e));
    testkit::writable_suite(&b).await;
    assert_eq!(e.fake.filters().last().unwrap(), "name:siteport-");
    // One token, refreshed once through the token endpoint and cached.
    assert_eq!(e.fake.tokens_issued(), 1);
    assert_no_auth_secret(&e.fake, &format!("{b:?}"));
}

#[tokio::test]
async fn conformance_listing_by_label_with_custom_prefix() {
    let e = env().await;
    let b = backend(&GcpSettings {
        prefix: Some("Team_A-ftp-".into()),
        label: Some("team=web".into()),
        ..settings(&e)
    });
    testkit::writable_suite(&b).await;
    assert_eq!(e.fake.filters().last().unwrap(), "labels.team=web");
}

#[tokio::test]
async fn secret_layout_versions_and_foreign_secrets() {
    let e = env().await;
    let b = backend(&settings(&e));
    assert!(
        b.describe().contains(&e.fake.endpoint()),
        "{}",
        b.describe()
    );
    assert!(b.describe().contains(PROJECT), "{}", b.describe());
    let fx = fixtures();
    let acme = &fx[0];
    b.store(acme, StoreMode::CreateNew).await.unwrap();
    let raw = e.fake.latest_payload(PROJECT, "siteport-acme").unwrap();
    let json: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(json["username"], "acme-deploy");
    assert_eq!(json["password"], acme.password().expose_secret());
    assert_eq!(json["host"], "ftp.acme.example");
    assert_eq!(json["port"], 21);
    let labels = e.fake.labels(PROJECT, "siteport-acme").unwrap();
    assert_eq!(labels.get("siteport").map(String::as_str), Some("managed"));

    // Replace adds a version; the old one stays in Secret Manager's history.
    let r = Credential::new(
        name("acme"),
        "acme-2",
        SecretString::from("Fx-replaced-acme-pw"),
    )
    .unwrap();
    b.store(&r, StoreMode::Replace).await.unwrap();
    assert_eq!(e.fake.versions(PROJECT, "siteport-acme"), 2);
    assert_eq!(b.get(&name("acme")).await.unwrap().username(), "acme-2");

    // '.' and '_' are mapped into the secret ID charset.
    b.store(&fx[1], StoreMode::CreateNew).await.unwrap();
    b.store(&fx[2], StoreMode::CreateNew).await.unwrap();
    let ids = e.fake.secret_ids(PROJECT);
    assert!(
        ids.contains(&"siteport-shop_dexample-com".to_owned()),
        "{ids:?}"
    );
    assert!(ids.contains(&"siteport-beta__2".to_owned()), "{ids:?}");

    // Foreign secrets: outside the prefix, the prefix not at the start, not a mapped name.
    let body = br#"{"username":"x","password":"y"}"#;
    for id in [
        "other-acme",
        "xsiteport-foo",
        "siteport-Bad",
        "siteport-a_x",
    ] {
        e.fake.put_raw(PROJECT, id, &[], Some(body));
    }
    // In another project.
    e.fake.put_raw("elsewhere", "siteport-zed", &[], Some(body));
    // A hand-made secret with the port as a string is read.
    e.fake.put_raw(
        PROJECT,
        "siteport-manual",
        &[],
        Some(br#"{"username":"m","password":"manual-pw","host":"h.example","port":"2121"}"#),
    );
    // More secrets than one page (the fake's pages hold 2): every page is read.
    let list = b.list().await.unwrap();
    let names: Vec<&str> = list.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["acme", "beta_2", "manual", "shop.example-com"]);
    assert!(list.iter().all(|i| i.created.is_some()), "{list:?}");
    let m = b.get(&name("manual")).await.unwrap();
    assert_eq!((m.host(), m.port()), (Some("h.example"), Some(2121)));

    // A payload that is not our JSON: Corrupt, without quoting the content.
    e.fake.put_raw(
        PROJECT,
        "siteport-broken",
        &[],
        Some(b"Fx-acme-S3cret!pw is not json"),
    );
    let err = b.get(&name("broken")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    assert!(err.to_string().contains("siteport-broken"), "{err}");
    assert_no_secret("corrupt secret error", &error_text(&err));

    // A payload damaged in transit (CRC32C mismatch): Corrupt.
    e.fake.corrupt_crc(true);
    let err = b.get(&name("acme")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    assert!(err.to_string().contains("CRC32C"), "{err}");
    assert_no_secret("crc error", &error_text(&err));
    e.fake.corrupt_crc(false);

    // A secret left without a version (a store that died halfway) is finished by CreateNew.
    e.fake.put_raw(PROJECT, "siteport-half", &[], None);
    let half = Credential::new(name("half"), "h", SecretString::from("Fx-half-pw")).unwrap();
    b.store(&half, StoreMode::CreateNew).await.unwrap();
    assert_eq!(b.get(&name("half")).await.unwrap().username(), "h");
}

#[tokio::test]
async fn listing_by_label_ignores_unlabelled_secrets() {
    let e = env().await;
    let b = backend(&GcpSettings {
        label: Some("team=web".into()),
        ..settings(&e)
    });
    assert_eq!(b.label(), ("team", "web"));
    let fx = fixtures();
    b.store(&fx[0], StoreMode::CreateNew).await.unwrap();
    assert_eq!(
        e.fake
            .labels(PROJECT, "siteport-acme")
            .unwrap()
            .get("team")
            .map(String::as_str),
        Some("web")
    );
    let body = br#"{"username":"x","password":"y"}"#;
    // Right prefix, no label: not ours in label mode.
    e.fake.put_raw(PROJECT, "siteport-nolabel", &[], Some(body));
    // Another team's label.
    e.fake
        .put_raw(PROJECT, "siteport-other", &[("team", "ops")], Some(body));
    // Labelled by hand: listed.
    e.fake
        .put_raw(PROJECT, "siteport-byhand", &[("team", "web")], Some(body));
    // Labelled but outside the prefix: cannot be a credential name here.
    e.fake
        .put_raw(PROJECT, "foreign-x", &[("team", "web")], Some(body));
    let names: Vec<String> = b
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.name.to_string())
        .collect();
    assert_eq!(names, ["acme", "byhand"]);
    assert_eq!(e.fake.filters().last().unwrap(), "labels.team=web");
}

#[tokio::test]
async fn name_mapping_round_trips_every_allowed_character() {
    let allowed = "abcdefghijklmnopqrstuvwxyz0123456789._-";
    for c in allowed.chars() {
        for n in [format!("a{c}z"), format!("{c}{c}0{c}")] {
            let Ok(n) = CredentialName::new(&n) else {
                // Names must start with a letter or digit; those are covered by the first form.
                assert!(matches!(c, '.' | '_' | '-'));
                continue;
            };
            let id = encode_name(&n);
            assert!(
                id.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
                "{id}"
            );
            assert_eq!(decode_name(&id).as_ref(), Some(&n), "{n} -> {id}");
        }
    }
    // Distinct names never share an ID.
    let a = encode_name(&name("a._b"));
    let b = encode_name(&name("a_.b"));
    assert_ne!(a, b);

    // Through the service: the longest name, all-escape characters, with the longest prefix.
    let e = env().await;
    let longest = "a.".repeat(31) + "_z";
    assert_eq!(longest.len(), 64);
    let b = backend(&GcpSettings {
        prefix: Some("p".repeat(MAX_PREFIX_LEN)),
        ..settings(&e)
    });
    let cred = Credential::new(name(&longest), "u", SecretString::from("Fx-long-pw")).unwrap();
    b.store(&cred, StoreMode::CreateNew).await.unwrap();
    assert!(b.secret_id(cred.name()).len() <= 255);
    let got = b.get(cred.name()).await.unwrap();
    assert_eq!(got.name(), cred.name());
    let names: Vec<String> = b
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.name.to_string())
        .collect();
    assert_eq!(names, [longest]);
}

#[tokio::test]
async fn not_found_and_disabled_version() {
    let e = env().await;
    let b = backend(&settings(&e));
    let err = b.get(&name("nope")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(err.to_string().contains("gcp backend"), "{err}");
    assert_eq!(err.remedy(), Some(&Remedy::AddCredential(name("nope"))));
    let err = b.delete(&name("nope")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");

    let acme = fixtures().remove(0);
    b.store(&acme, StoreMode::CreateNew).await.unwrap();
    e.fake.disable_latest(PROJECT, "siteport-acme");
    let err = b.get(acme.name()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(
        err.hint()
            .unwrap()
            .contains("gcloud secrets versions enable"),
        "{err:?}"
    );
    // Replace writes a new enabled version, which `latest` then reads.
    b.store(&acme, StoreMode::Replace).await.unwrap();
    assert_eq!(b.get(acme.name()).await.unwrap().username(), "acme-deploy");
    b.delete(acme.name()).await.unwrap();
    assert_eq!(e.fake.versions(PROJECT, "siteport-acme"), 0);
}

#[tokio::test]
async fn bad_token_is_permission_denied_naming_backend_address_and_fix() {
    let e = env().await;
    let b = backend(&settings(&e));
    let acme = fixtures().remove(0);
    b.store(&acme, StoreMode::CreateNew).await.unwrap();

    // The cached access token stops being valid: 401 UNAUTHENTICATED, not retried.
    e.fake.revoke_all();
    let before = e.fake.requests();
    let err = b.get(acme.name()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
    assert!(!err.is_retryable());
    assert_eq!(e.fake.requests() - before, 1, "a 401 must not be retried");
    let text = error_text(&err);
    assert!(err.to_string().contains("gcp backend"), "{text}");
    assert!(err.to_string().contains(&e.fake.endpoint()), "{text}");
    assert!(err.to_string().contains("UNAUTHENTICATED"), "{text}");
    assert!(
        err.hint()
            .unwrap()
            .contains("gcloud auth application-default login"),
        "{text}"
    );
    assert!(
        err.hint().unwrap().contains("roles/secretmanager"),
        "{text}"
    );
    assert_no_secret("401 error", &text);
    assert_no_auth_secret(&e.fake, &text);

    // A refresh token the token endpoint refuses.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        e.fake.authorized_user_json("1//revoked-refresh-token"),
    )
    .unwrap();
    let b2 = backend(&GcpSettings {
        credentials_file: Some(bad),
        ..settings(&e)
    });
    let err = b2.list().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
    assert!(err.to_string().contains("access token"), "{err}");
    let text = error_text(&err);
    assert!(
        text.contains("gcloud auth application-default login"),
        "{text}"
    );
    assert!(!text.contains("revoked-refresh-token"), "{text}");
    assert_no_auth_secret(&e.fake, &text);

    // A credentials file that is not JSON: the message never quotes it.
    let junk = dir.path().join("junk.json");
    std::fs::write(&junk, "Fx-acme-S3cret!pw").unwrap();
    let err = backend(&GcpSettings {
        credentials_file: Some(junk),
        ..settings(&e)
    })
    .check()
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
    assert_no_secret("credentials file error", &error_text(&err));

    // Valid token, no IAM permission: 403 PERMISSION_DENIED with the role in the hint.
    let b3 = backend(&settings(&e));
    e.fake.forbid(true);
    let err = b3.check().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
    assert!(err.to_string().contains("PERMISSION_DENIED"), "{err}");
    assert!(
        err.hint().unwrap().contains("roles/secretmanager.admin"),
        "{err:?}"
    );
}

#[tokio::test]
async fn unavailable_and_throttled_are_retried_then_succeed() {
    let e = env().await;
    let b = backend(&settings(&e));
    let acme = fixtures().remove(0);
    b.store(&acme, StoreMode::CreateNew).await.unwrap();

    // GET: 503 then 429, then the real answer.
    e.fake.fail_next(&[503, 429]);
    let before = e.fake.requests();
    let got = b.get(acme.name()).await.unwrap();
    assert_eq!(got.username(), "acme-deploy");
    assert_eq!(e.fake.requests() - before, 3);

    // POST (AddSecretVersion): retried as well.
    e.fake.fail_next(&[503]);
    let before = e.fake.requests();
    b.store(&acme, StoreMode::Replace).await.unwrap();
    assert_eq!(e.fake.requests() - before, 2);
    assert_eq!(e.fake.versions(PROJECT, "siteport-acme"), 2);

    // More failures than attempts: Unavailable, retryable, after exactly max_attempts.
    e.fake.fail_next(&[503, 503, 503]);
    let before = e.fake.requests();
    let err = b.get(acme.name()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.is_retryable());
    assert!(err.to_string().contains("UNAVAILABLE"), "{err}");
    assert_eq!(e.fake.requests() - before, 3);
}

#[tokio::test]
async fn permission_denied_is_not_retried() {
    let e = env().await;
    let b = backend(&settings(&e));
    let acme = fixtures().remove(0);
    b.store(&acme, StoreMode::CreateNew).await.unwrap();
    e.fake.fail_next(&[403]);
    let before = e.fake.requests();
    let err = b.get(acme.name()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
    assert_eq!(e.fake.requests() - before, 1, "403 must not be retried");
    // The next call is fine.
    assert!(b.get(acme.name()).await.is_ok());
}

#[tokio::test]
async fn unreachable_endpoint_is_unavailable() {
    let e = env().await;
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let b = backend(&GcpSettings {
        endpoint: Some(endpoint.clone()),
        max_attempts: Some(2),
        timeout_secs: Some(10),
        ..settings(&e)
    });
    let started = std::time::Instant::now();
    let err = b.get(&name("acme")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.is_retryable());
    assert!(err.to_string().contains("gcp backend"), "{err}");
    assert!(err.to_string().contains(&endpoint), "{err}");
    assert!(err.hint().unwrap().contains("endpoint"), "{err:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert_eq!(b.check().await.unwrap_err().kind(), ErrorKind::Unavailable);
}

#[test]
fn bad_settings_are_refused() {
    let base = GcpSettings {
        project: Some("p".into()),
        ..Default::default()
    };
    let mut failures = Vec::new();
    for (s, needle) in [
        (
            GcpSettings {
                prefix: Some("siteport/".into()),
                ..base.clone()
            },
            "prefix 'siteport/'",
        ),
        (
            GcpSettings {
                prefix: Some("p".repeat(MAX_PREFIX_LEN + 1)),
                ..base.clone()
            },
            "at most 127",
        ),
        (
            GcpSettings {
                label: Some("Team=web".into()),
                ..base.clone()
            },
            "label 'Team=web'",
        ),
        (
            GcpSettings {
                label: Some("novalue".into()),
                ..base.clone()
            },
            "label 'novalue'",
        ),
        (
            GcpSettings {
                max_attempts: Some(0),
                ..base.clone()
            },
            "max_attempts = 0",
        ),
        (
            GcpSettings {
                project: Some("projects/p".into()),
                ..base.clone()
            },
            "not a project ID",
        ),
    ] {
        // Every row runs; the test fails once, listing each row that did not hold.
        match GcpBackend::open(&s) {
            Ok(_) => failures.push(format!("{needle}: accepted")),
            Err(e)
                if e.kind() != ErrorKind::Invalid
                    || !e.to_string().contains(needle)
                    || !e.hint().is_some_and(|h| h.contains("[credentials.gcp]")) =>
            {
                failures.push(format!(
                    "{needle}: {} error: {e} (hint {:?})",
                    e.kind(),
                    e.hint()
                ))
            }
            Err(_) => {}
        }
    }
    assert!(
        failures.is_empty(),
        "bad settings not refused as expected:\n{}",
        failures.join("\n")
    );
    // Without `project`, GOOGLE_CLOUD_PROJECT decides; when neither is set, a clear error.
    if std::env::var_os("GOOGLE_CLOUD_PROJECT").is_none() {
        let e = GcpBackend::open(&GcpSettings::default()).unwrap_err();
        assert!(e.to_string().contains("no GCP project"), "{e}");
        assert!(e.hint().unwrap().contains("GOOGLE_CLOUD_PROJECT"), "{e:?}");
    }
}

/// Opt-in: `SITEPORT_LIVE_GCP_PROJECT=my-project` (plus Application Default Credentials) runs
/// the conformance suite against real Secret Manager under the prefix `siteport-live-test-`.
#[tokio::test]
async fn live_gcp() {
    let Some(project) = std::env::var("SITEPORT_LIVE_GCP_PROJECT")
        .ok()
        .filter(|p| !p.is_empty())
    else {
        siteport_testsupport::report_skip(
            "live_gcp",
            "set SITEPORT_LIVE_GCP_PROJECT and log in with `gcloud auth application-default \
             login` to run against real Secret Manager",
        );
        return;
    };
    let b = GcpBackend::open(&GcpSettings {
        project: Some(project),
        prefix: Some("siteport-live-test-".into()),
        ..Default::default()
    })
    .unwrap();
    testkit::writable_suite(&b).await;
}

#[tokio::test]
async fn carries_ssh_keys() {
    let e = env().await;
    let b = backend(&settings(&e));
    testkit::ssh_key_suite(&b, true).await;
}
