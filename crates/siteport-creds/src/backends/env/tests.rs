//! Unit tests of the env backend.

use super::*;

fn vars(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
    pairs
        .iter()
        .map(|(k, v)| (OsString::from(k), OsString::from(v)))
        .collect()
}

fn name(s: &str) -> CredentialName {
    CredentialName::new(s).unwrap()
}

#[test]
fn names_map_to_variables() {
    let n = env_var_names(&name("acme-prod.v2"));
    assert_eq!(n.stem, "ACME_PROD_V2");
    assert_eq!(n.password, "SITEPORT_CRED_ACME_PROD_V2_PASSWORD");
    assert_eq!(n.all().len(), 12);
    assert!(
        n.all()
            .contains(&"SITEPORT_CRED_ACME_PROD_V2_PORT_FILE".to_owned())
    );
}

#[test]
fn variables_parse_back() {
    assert_eq!(
        parse_var("SITEPORT_CRED_A_B_PASSWORD_FILE"),
        Some(("A_B".into(), Field::Password, true))
    );
    assert_eq!(
        parse_var("SITEPORT_CRED_X_HOST_FILE_PORT"),
        Some(("X_HOST_FILE".into(), Field::Port, false))
    );
    assert_eq!(parse_var("SITEPORT_CRED_PASSWORD"), None);
    assert_eq!(parse_var("SITEPORT_CRED_X"), None);
    assert_eq!(parse_var("OTHER_X_PASSWORD"), None);
}

#[tokio::test]
async fn both_forms_set_is_an_error_naming_both() {
    let b = EnvBackend::from_vars(vars(&[
        ("SITEPORT_CRED_A_USERNAME", "u"),
        ("SITEPORT_CRED_A_PASSWORD", "pw-one"),
        ("SITEPORT_CRED_A_PASSWORD_FILE", "/nonexistent"),
    ]));
    let e = b.get(&name("a")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalid);
    let s = e.to_string();
    assert!(
        s.contains("SITEPORT_CRED_A_PASSWORD and SITEPORT_CRED_A_PASSWORD_FILE"),
        "{s}"
    );
    assert!(!s.contains("pw-one"));
    assert!(b.list().await.is_err());
    assert!(b.check().await.is_err());
}

#[tokio::test]
async fn unreadable_file_names_variable_and_path() {
    let b = EnvBackend::from_vars(vars(&[
        ("SITEPORT_CRED_A_USERNAME", "u"),
        ("SITEPORT_CRED_A_PASSWORD_FILE", "/nonexistent/secret"),
    ]));
    let e = b.get(&name("a")).await.unwrap_err();
    let s = e.to_string();
    assert!(s.contains("SITEPORT_CRED_A_PASSWORD_FILE"), "{s}");
    assert!(s.contains("/nonexistent/secret"), "{s}");
}

#[cfg(unix)]
#[tokio::test]
async fn non_utf8_value_names_variable() {
    use std::os::unix::ffi::OsStringExt;
    let b = EnvBackend::from_vars([
        (
            OsString::from("SITEPORT_CRED_A_USERNAME"),
            OsString::from("u"),
        ),
        (
            OsString::from("SITEPORT_CRED_A_PASSWORD"),
            OsString::from_vec(vec![0xff, 0xfe, b'x']),
        ),
    ]);
    let e = b.get(&name("a")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalid);
    assert!(
        e.to_string()
            .contains("SITEPORT_CRED_A_PASSWORD is not valid UTF-8"),
        "{e}"
    );
}

#[tokio::test]
async fn file_form_strips_trailing_newline_and_checks_utf8() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("pw");
    std::fs::write(&p, "file-pw\r\n").unwrap();
    let bad = dir.path().join("bad");
    std::fs::write(&bad, [0xffu8, 0x00]).unwrap();
    let b = EnvBackend::from_vars(vars(&[
        ("SITEPORT_CRED_A_USERNAME", "u"),
        ("SITEPORT_CRED_A_PASSWORD_FILE", p.to_str().unwrap()),
        ("SITEPORT_CRED_B_USERNAME", "u"),
        ("SITEPORT_CRED_B_PASSWORD_FILE", bad.to_str().unwrap()),
    ]));
    let c = b.get(&name("a")).await.unwrap();
    assert_eq!(c.password().expose_secret(), "file-pw");
    let e = b.get(&name("b")).await.unwrap_err();
    assert!(
        e.to_string().contains("SITEPORT_CRED_B_PASSWORD_FILE"),
        "{e}"
    );
    assert!(e.to_string().contains("not valid UTF-8"), "{e}");
}

#[tokio::test]
async fn incomplete_and_invalid_values() {
    let b = EnvBackend::from_vars(vars(&[
        ("SITEPORT_CRED_A_USERNAME", "u"),
        ("SITEPORT_CRED_B_USERNAME", "u"),
        ("SITEPORT_CRED_B_PASSWORD", "pw-b"),
        ("SITEPORT_CRED_B_PORT", "99999"),
        ("SITEPORT_CRED_C_USERNAME", ""),
    ]));
    let e = b.get(&name("a")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalid);
    assert!(e.to_string().contains("SITEPORT_CRED_A_PASSWORD"), "{e}");
    let e = b.get(&name("b")).await.unwrap_err();
    assert!(
        e.to_string().contains("SITEPORT_CRED_B_PORT: invalid port"),
        "{e}"
    );
    // Empty counts as unset: nothing is set for `c`.
    assert_eq!(
        b.get(&name("c")).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

#[tokio::test]
async fn one_variable_set_serves_every_spelling() {
    let b = EnvBackend::from_vars(vars(&[
        ("SITEPORT_CRED_A_B_USERNAME", "u"),
        ("SITEPORT_CRED_A_B_PASSWORD", "pw"),
    ]));
    for n in ["a-b", "a.b", "a_b"] {
        assert_eq!(b.get(&name(n)).await.unwrap().name().as_str(), n);
    }
    let l = b.list().await.unwrap();
    assert_eq!(l.len(), 1);
    assert_eq!(l[0].name.as_str(), "a_b");
}

#[tokio::test]
async fn set_overlays_and_feeds_children() {
    let b = EnvBackend::from_vars(vars(&[
        ("SITEPORT_CRED_A_B_USERNAME", "old"),
        ("SITEPORT_CRED_A_B_PASSWORD_FILE", "/nonexistent"),
        ("SITEPORT_CRED_A_B_HOST", "old.example"),
    ]));
    let c = Credential::new(
        name("a-b"),
        "new",
        SecretString::from("overlay-pw".to_owned()),
    )
    .unwrap()
    .with_port(2121)
    .unwrap();
    b.set(&c).unwrap();
    let got = b.get(&name("a-b")).await.unwrap();
    assert_eq!(got.username(), "new");
    assert_eq!(got.host(), None);
    assert_eq!(got.port(), Some(2121));
    assert_eq!(b.get(&name("a.b")).await.unwrap().username(), "new");
    let l = b.list().await.unwrap();
    assert_eq!(l.len(), 1, "{l:?}");
    assert_eq!(l[0].name.as_str(), "a-b");

    // Another spelling of the same variables is refused.
    let other = Credential::new(name("a.b"), "x", SecretString::from("p".to_owned())).unwrap();
    let e = b.set(&other).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalid);
    assert!(e.to_string().contains("'a-b' and 'a.b'"), "{e}");

    let env = b.child_env();
    let keys: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "SITEPORT_CRED_A_B_USERNAME",
            "SITEPORT_CRED_A_B_PASSWORD",
            "SITEPORT_CRED_A_B_PORT"
        ]
    );
    assert_eq!(env[1].1.expose_secret(), "overlay-pw");
    let rm = b.child_env_remove();
    assert!(rm.contains(&"SITEPORT_CRED_A_B_PASSWORD_FILE".to_owned()));
    assert!(rm.contains(&"SITEPORT_CRED_A_B_HOST".to_owned()));
    assert!(!format!("{b:?}").contains("overlay-pw"));

    // A child process given exactly these variables reads the same credential back.
    let out = std::process::Command::new("env")
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v.expose_secret())))
        .output()
        .unwrap();
    let child_vars = String::from_utf8(out.stdout).unwrap();
    let child = EnvBackend::from_vars(child_vars.lines().filter_map(|l| {
        l.split_once('=')
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
    }));
    let got = child.get(&name("a-b")).await.unwrap();
    assert_eq!(got.password().expose_secret(), "overlay-pw");
    assert_eq!(got.port(), Some(2121));
}

#[tokio::test]
async fn not_found_hint_names_variables_and_store_explains() {
    let b = EnvBackend::from_vars(Vec::new());
    let e = b.get(&name("shop.v2")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    let h = e.hint().unwrap();
    assert!(h.contains("SITEPORT_CRED_SHOP_V2_USERNAME"), "{h}");
    assert!(h.contains("SITEPORT_CRED_SHOP_V2_PASSWORD_FILE"), "{h}");
    let c = Credential::new(
        name("shop.v2"),
        "u",
        SecretString::from("pw-xyz".to_owned()),
    )
    .unwrap();
    let e = b.store(&c, StoreMode::Replace).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    assert!(
        e.hint()
            .unwrap()
            .contains("export SITEPORT_CRED_SHOP_V2_USERNAME")
    );
    assert!(!format!("{e:?}").contains("pw-xyz"));
    assert_eq!(b.describe(), "env backend (SITEPORT_CRED_* variables)");
    let e = b.delete(&name("shop.v2")).await.unwrap_err();
    assert!(
        e.hint()
            .unwrap()
            .contains("unset SITEPORT_CRED_SHOP_V2_USERNAME")
    );
}

#[tokio::test]
async fn check_reports_bad_names() {
    let b = EnvBackend::from_vars(vars(&[
        ("SITEPORT_CRED__X_PASSWORD", "p"),
        ("SITEPORT_CRED_OK_USERNAME", "u"),
        ("SITEPORT_CRED_OK_PASSWORD", "p"),
    ]));
    let h = b.check().await.unwrap();
    assert!(h.notes[0].starts_with("1 credential(s)"), "{h:?}");
    assert!(
        h.notes.iter().any(|n| n.contains("SITEPORT_CRED__X_*")),
        "{h:?}"
    );
    assert_eq!(b.list().await.unwrap().len(), 1);
}
