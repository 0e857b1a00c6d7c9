//! The aws backend against a real `moto_server` (started per test on 127.0.0.1), through the
//! official SDK, plus an opt-in live test against real AWS.

use siteport_creds::Remedy;
use siteport_creds::backends::aws::{AwsBackend, DeletePolicy};
use siteport_creds::testkit::{self, assert_no_secret, fixtures};
use siteport_creds::{
    AwsSettings, CredentialBackend, CredentialName, ErrorKind, ExposeSecret, StoreMode,
};
use siteport_testsupport::MotoServer;

use aws_sdk_secretsmanager::config::Credentials;

fn name(s: &str) -> CredentialName {
    CredentialName::new(s).unwrap()
}

fn keys() -> Credentials {
    Credentials::new("testing", "testing", None, None, "siteport-test")
}

fn settings(moto: &MotoServer) -> AwsSettings {
    AwsSettings {
        region: Some("us-east-1".into()),
        endpoint_url: Some(moto.endpoint()),
        ..Default::default()
    }
}

fn backend(s: &AwsSettings) -> AwsBackend {
    AwsBackend::open(s)
        .unwrap()
        .with_credentials_provider(keys())
}

/// A raw SDK client on the same moto, to look at what the backend wrote.
async fn raw_client(moto: &MotoServer) -> aws_sdk_secretsmanager::Client {
    let conf = aws_sdk_secretsmanager::Config::builder()
        .behavior_version(aws_sdk_secretsmanager::config::BehaviorVersion::latest())
        .region(aws_sdk_secretsmanager::config::Region::new("us-east-1"))
        .endpoint_url(moto.endpoint())
        .credentials_provider(keys())
        .http_client(
            aws_smithy_http_client::Builder::new()
                .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                    aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
                ))
                .build_https(),
        )
        .build();
    aws_sdk_secretsmanager::Client::from_conf(conf)
}

#[tokio::test]
async fn conformance_with_recovery_window() {
    let moto = MotoServer::start();
    let b = backend(&settings(&moto));
    assert_eq!(b.delete_policy(), DeletePolicy::RecoveryWindow(7));
    testkit::writable_suite(&b).await;
}

#[tokio::test]
async fn conformance_with_force_delete_and_prefix() {
    let moto = MotoServer::start();
    let b = backend(&AwsSettings {
        prefix: Some("team-a/ftp/".into()),
        force_delete: true,
        ..settings(&moto)
    });
    assert_eq!(b.delete_policy(), DeletePolicy::Force);
    testkit::writable_suite(&b).await;
}

#[tokio::test]
async fn secret_layout_prefix_and_foreign_secrets() {
    let moto = MotoServer::start();
    let b = backend(&AwsSettings {
        prefix: Some("web/".into()),
        ..settings(&moto)
    });
    assert!(b.describe().contains(&moto.endpoint()), "{}", b.describe());
    assert!(b.describe().contains("us-east-1"), "{}", b.describe());
    let acme = fixtures().remove(0);
    b.store(&acme, StoreMode::CreateNew).await.unwrap();

    let raw = raw_client(&moto).await;
    let v = raw
        .get_secret_value()
        .secret_id("web/acme")
        .send()
        .await
        .unwrap();
    let json: serde_json::Value = serde_json::from_str(v.secret_string().unwrap()).unwrap();
    assert_eq!(json["username"], "acme-deploy");
    assert_eq!(json["password"], acme.password().expose_secret());
    assert_eq!(json["host"], "ftp.acme.example");
    assert_eq!(json["port"], 21);

    // Secrets outside the prefix, and names that are not credential names, are not listed.
    for (n, body) in [
        ("other/acme", r#"{"username":"x","password":"y"}"#),
        ("web/Not A Name", r#"{"username":"x","password":"y"}"#),
        ("webby/x", r#"{"username":"x","password":"y"}"#),
    ] {
        raw.create_secret()
            .name(n)
            .secret_string(body)
            .send()
            .await
            .unwrap();
    }
    // A hand-made secret with the port as a string is read.
    raw.create_secret()
        .name("web/manual")
        .secret_string(
            r#"{"username":"m","password":"manual-pw","host":"h.example","port":"2121"}"#,
        )
        .send()
        .await
        .unwrap();
    let list = b.list().await.unwrap();
    let names: Vec<&str> = list.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["acme", "manual"]);
    assert!(list[0].created.is_some());
    let m = b.get(&name("manual")).await.unwrap();
    assert_eq!((m.host(), m.port()), (Some("h.example"), Some(2121)));

    // A secret that is not our JSON: Corrupt, without quoting the content.
    raw.create_secret()
        .name("web/broken")
        .secret_string("Fx-acme-S3cret!pw is not json")
        .send()
        .await
        .unwrap();
    let e = b.get(&name("broken")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    assert!(e.to_string().contains("web/broken"), "{e}");
    assert_no_secret("corrupt secret error", &format!("{e} {e:?}"));
}

#[tokio::test]
async fn not_found_and_scheduled_deletion() {
    let moto = MotoServer::start();
    let b = backend(&settings(&moto));
    let e = b.get(&name("nope")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(e.to_string().contains("aws backend"), "{e}");
    assert_eq!(e.remedy(), Some(&Remedy::AddCredential(name("nope"))));

    // Default delete keeps the secret restorable: adding the name again says how to restore or
    // purge it.
    let acme = fixtures().remove(0);
    b.store(&acme, StoreMode::CreateNew).await.unwrap();
    b.delete(acme.name()).await.unwrap();
    assert_eq!(
        b.get(acme.name()).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    let e = b.store(&acme, StoreMode::Replace).await.unwrap_err();
    assert!(e.to_string().contains("scheduled for deletion"), "{e}");
    let hint = e.hint().unwrap();
    assert!(
        hint.contains("aws secretsmanager restore-secret --secret-id siteport/acme"),
        "{hint}"
    );
    assert!(hint.contains("--force-delete-without-recovery"), "{hint}");

    // With force_delete the name is free again at once.
    let f = backend(&AwsSettings {
        force_delete: true,
        prefix: Some("forced/".into()),
        ..settings(&moto)
    });
    f.store(&acme, StoreMode::CreateNew).await.unwrap();
    f.delete(acme.name()).await.unwrap();
    f.store(&acme, StoreMode::CreateNew).await.unwrap();
    assert_eq!(f.get(acme.name()).await.unwrap().username(), "acme-deploy");
}

#[tokio::test]
async fn unreachable_endpoint_is_unavailable() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let b = backend(&AwsSettings {
        region: Some("eu-west-1".into()),
        endpoint_url: Some(endpoint.clone()),
        max_attempts: Some(2),
        timeout_secs: Some(10),
        ..Default::default()
    });
    let started = std::time::Instant::now();
    let e = b.get(&name("acme")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(e.is_retryable());
    let text = e.to_string();
    assert!(text.contains("aws backend"), "{text}");
    assert!(text.contains(&endpoint), "{text}");
    assert!(e.hint().unwrap().contains("endpoint_url"), "{e:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    let e = b.check().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
}

#[tokio::test]
async fn unknown_access_key_is_permission_denied() {
    // With auth checks on, moto refuses keys it did not issue.
    let moto = MotoServer::start_with_env(&[("INITIAL_NO_AUTH_ACTION_COUNT", "0")]);
    let b = backend(&settings(&moto));
    let e = b.get(&name("acme")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    assert!(e.to_string().contains("aws backend"), "{e}");
    assert!(
        e.hint().unwrap().contains("sts get-caller-identity"),
        "{e:?}"
    );
    let e = b
        .store(&fixtures().remove(0), StoreMode::CreateNew)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    assert_no_secret("permission error", &format!("{e} {e:?}"));
}

#[test]
fn bad_settings_are_refused() {
    let e = AwsBackend::open(&AwsSettings {
        recovery_window_days: Some(3),
        region: Some("us-east-1".into()),
        ..Default::default()
    })
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalid);
    assert!(e.to_string().contains("recovery_window_days = 3"), "{e}");
    let e = AwsBackend::open(&AwsSettings {
        max_attempts: Some(0),
        ..Default::default()
    })
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalid);
}

/// Opt-in: `SITEPORT_LIVE_AWS_REGION=eu-west-1` (plus normal AWS credentials) runs the
/// conformance suite against real Secrets Manager under the prefix `siteport-live-test/`.
#[tokio::test]
async fn live_aws() {
    let Some(region) = std::env::var("SITEPORT_LIVE_AWS_REGION")
        .ok()
        .filter(|r| !r.is_empty())
    else {
        siteport_testsupport::report_skip(
            "live_aws",
            "set SITEPORT_LIVE_AWS_REGION to run against real AWS",
        );
        return;
    };
    let b = AwsBackend::open(&AwsSettings {
        region: Some(region),
        prefix: Some("siteport-live-test/".into()),
        force_delete: true,
        ..Default::default()
    })
    .unwrap();
    testkit::writable_suite(&b).await;
}

#[tokio::test]
async fn carries_ssh_keys() {
    let moto = MotoServer::start();
    let b = backend(&settings(&moto));
    testkit::ssh_key_suite(&b, true).await;
}
