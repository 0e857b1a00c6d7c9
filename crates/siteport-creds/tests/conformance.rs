//! The shared conformance suite applied to the env and dir backends and to chains of them.

use std::ffi::OsString;

use siteport_creds::Remedy;
use siteport_creds::backends::dir::DirBackend;
use siteport_creds::backends::env::EnvBackend;
use siteport_creds::backends::file::FileBackend;
use siteport_creds::testkit::{
    self, K8sLayout, MemoryBackend, fixture_vars, fixtures, write_dir_tree, write_k8s_tree,
};
use siteport_creds::{
    BackendKind, ChainBackend, Credential, CredentialBackend, CredentialName, ErrorKind,
    ExposeSecret, SecretString, StoreMode,
};

fn name(s: &str) -> CredentialName {
    CredentialName::new(s).unwrap()
}

#[tokio::test]
async fn env_plain_variables() {
    let b = EnvBackend::from_vars(fixture_vars(&fixtures(), None));
    testkit::read_only_suite(&b).await;
}

#[tokio::test]
async fn env_file_variables() {
    let secrets = tempfile::tempdir().unwrap();
    let vars = fixture_vars(&fixtures(), Some(secrets.path()));
    assert!(
        vars.iter()
            .all(|(k, _)| k.to_str().unwrap().ends_with("_FILE")),
        "{vars:?}"
    );
    let b = EnvBackend::from_vars(vars);
    testkit::read_only_suite(&b).await;
}

#[tokio::test]
async fn env_overlay_set() {
    let b = EnvBackend::from_vars(Vec::<(OsString, OsString)>::new());
    for c in fixtures() {
        b.set(&c).unwrap();
    }
    testkit::read_only_suite(&b).await;
    // Set credentials keep their own spelling in `list`.
    let names: Vec<String> = b
        .list()
        .await
        .unwrap()
        .iter()
        .map(|i| i.name.to_string())
        .collect();
    assert!(names.contains(&"shop.example-com".to_owned()), "{names:?}");
}

#[tokio::test]
async fn dir_plain_tree() {
    let root = tempfile::tempdir().unwrap();
    write_dir_tree(root.path(), &fixtures());
    testkit::read_only_suite(&DirBackend::new(root.path().to_owned())).await;
}

#[tokio::test]
async fn dir_kubernetes_projected_volume() {
    let root = tempfile::tempdir().unwrap();
    write_k8s_tree(root.path(), &fixtures(), K8sLayout::Projected);
    assert!(root.path().join("..data").is_symlink());
    let b = DirBackend::new(root.path().to_owned());
    testkit::read_only_suite(&b).await;
    // `..data` and the timestamped directory are not credentials.
    assert_eq!(b.list().await.unwrap().len(), fixtures().len());
}

#[tokio::test]
async fn dir_kubernetes_secret_per_credential() {
    let root = tempfile::tempdir().unwrap();
    write_k8s_tree(root.path(), &fixtures(), K8sLayout::PerSecret);
    assert!(root.path().join("acme/..data").is_symlink());
    testkit::read_only_suite(&DirBackend::new(root.path().to_owned())).await;
}

#[tokio::test]
async fn dir_kubernetes_rotation_is_picked_up() {
    use std::os::unix::fs::symlink;
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    write_k8s_tree(r, &fixtures(), K8sLayout::Projected);
    let b = DirBackend::new(r.to_owned());
    let acme = name("acme");
    assert_eq!(
        b.get(&acme).await.unwrap().password().expose_secret(),
        "Fx-acme-S3cret!pw"
    );
    // The kubelet writes a new timestamped dir and swaps `..data` atomically.
    let rotated = Credential::new(
        acme.clone(),
        "acme-deploy",
        SecretString::from("rotated-pw".to_owned()),
    )
    .unwrap();
    let new_ts = r.join("..2024_06_01_00_00_00.1");
    write_dir_tree(&new_ts, &[rotated]);
    std::fs::remove_file(r.join("..data")).unwrap();
    symlink("..2024_06_01_00_00_00.1", r.join("..data")).unwrap();
    assert_eq!(
        b.get(&acme).await.unwrap().password().expose_secret(),
        "rotated-pw"
    );
}

#[tokio::test]
async fn chain_of_env_and_dir() {
    // Half the fixtures in env, half in a directory: the chain must look like one store.
    let fx = fixtures();
    let (in_env, in_dir) = fx.split_at(2);
    let root = tempfile::tempdir().unwrap();
    write_dir_tree(root.path(), in_dir);
    let chain = ChainBackend::new(vec![
        Box::new(EnvBackend::from_vars(fixture_vars(in_env, None))),
        Box::new(DirBackend::new(root.path().to_owned())),
    ]);
    testkit::read_only_suite(&chain).await;
}

#[tokio::test]
async fn memory_backend_is_conformant() {
    testkit::writable_suite(&MemoryBackend::new(BackendKind::File)).await;
}

#[tokio::test]
async fn chain_with_writable_member_is_conformant() {
    let chain = ChainBackend::new(vec![
        Box::new(EnvBackend::from_vars(Vec::<(OsString, OsString)>::new())),
        Box::new(MemoryBackend::new(BackendKind::File)),
    ]);
    testkit::writable_suite(&chain).await;
}

#[tokio::test]
async fn chain_semantics() {
    let pw = |s: &str| SecretString::from(s.to_owned());
    let env_acme = Credential::new(name("acme"), "from-env", pw("env-pw")).unwrap();
    let dir_acme = Credential::new(name("acme"), "from-dir", pw("dir-pw")).unwrap();
    let dir_only = Credential::new(name("only-dir"), "d", pw("only-dir-pw")).unwrap();
    let root = tempfile::tempdir().unwrap();
    write_dir_tree(root.path(), &[dir_acme, dir_only]);
    let chain = ChainBackend::new(vec![
        Box::new(EnvBackend::from_vars(fixture_vars(&[env_acme], None))),
        Box::new(DirBackend::new(root.path().to_owned())),
        Box::new(MemoryBackend::new(BackendKind::File)),
    ]);

    // First hit wins.
    assert_eq!(
        chain.get(&name("acme")).await.unwrap().username(),
        "from-env"
    );
    assert_eq!(chain.get(&name("only-dir")).await.unwrap().username(), "d");

    // Store goes to the first writable member, and is then found there.
    let new = Credential::new(name("new"), "n", pw("new-pw")).unwrap();
    chain.store(&new, StoreMode::CreateNew).await.unwrap();
    assert_eq!(
        chain.members()[2]
            .get(&name("new"))
            .await
            .unwrap()
            .username(),
        "n"
    );

    // List merges, shows the source, and the first source wins for a shadowed name.
    let list = chain.list().await.unwrap();
    let src: Vec<(&str, BackendKind)> = list.iter().map(|i| (i.name.as_str(), i.source)).collect();
    assert_eq!(
        src,
        [
            ("acme", BackendKind::Env),
            ("new", BackendKind::File),
            ("only-dir", BackendKind::Dir)
        ]
    );
    assert_eq!(list[0].username.as_deref(), Some("from-env"));

    // A missing name: NotFound naming every member, with a hint.
    let e = chain.get(&name("nowhere")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(e.to_string().contains("env backend"), "{e}");
    assert!(e.to_string().contains("dir backend"), "{e}");
    assert!(
        matches!(
            e.remedy(),
            Some(Remedy::AddCredential(n) | Remedy::AddCredentialInto { name: n, .. })
                if n.as_str() == "nowhere"
        ),
        "{e:?}"
    );

    // A fault in an earlier member is reported, not skipped over.
    let broken = ChainBackend::new(vec![
        Box::new(EnvBackend::from_vars([(
            OsString::from("SITEPORT_CRED_ACME_USERNAME"),
            OsString::from("u"),
        )])),
        Box::new(DirBackend::new(root.path().to_owned())),
    ]);
    let e = broken.get(&name("acme")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalid, "{e}");
}

#[tokio::test]
async fn read_only_chain_explains_how_to_provide() {
    let root = tempfile::tempdir().unwrap();
    let chain = ChainBackend::new(vec![
        Box::new(EnvBackend::from_vars(Vec::<(OsString, OsString)>::new())),
        Box::new(DirBackend::new(root.path().to_owned())),
    ]);
    let e = chain.get(&name("acme")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    let h = e.hint().unwrap();
    assert!(h.contains("SITEPORT_CRED_ACME_PASSWORD"), "{h}");
    assert!(h.contains("acme/password"), "{h}");
    let c = fixtures().remove(0);
    let e = chain.store(&c, StoreMode::Replace).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
}

/// A fresh, initialised file store in a temp dir; nothing touches the real HOME or process env.
fn file_backend(
    dir: &std::path::Path,
    mode: siteport_creds::backends::file::KeyMode,
) -> FileBackend {
    use siteport_creds::backends::file::{FileEnv, InitOptions};
    let settings = siteport_creds::FileSettings {
        path: Some(dir.join("data/credentials.age")),
        identity: Some(dir.join("config/identity.txt")),
        passphrase_command: None,
        ..Default::default()
    };
    let env = FileEnv::empty().var("HOME", dir.join("home")).passphrase(
        siteport_creds::SecretString::from("conformance passphrase".to_owned()),
    );
    FileBackend::builder(&settings)
        .env(env.clone())
        .init(InitOptions {
            mode,
            ..Default::default()
        })
        .expect("init file store");
    FileBackend::builder(&settings)
        .env(env)
        .open()
        .expect("open file store")
}

#[tokio::test]
async fn file_backend_identity_mode_is_conformant() {
    let dir = tempfile::tempdir().unwrap();
    let b = file_backend(
        dir.path(),
        siteport_creds::backends::file::KeyMode::Identity,
    );
    testkit::writable_suite(&b).await;
}

#[tokio::test]
async fn file_backend_passphrase_mode_is_conformant() {
    let dir = tempfile::tempdir().unwrap();
    let b = file_backend(
        dir.path(),
        siteport_creds::backends::file::KeyMode::Passphrase,
    );
    testkit::writable_suite(&b).await;
}

#[tokio::test]
async fn chain_of_env_and_file_is_conformant() {
    let dir = tempfile::tempdir().unwrap();
    let chain = ChainBackend::new(vec![
        Box::new(EnvBackend::from_vars(Vec::<(OsString, OsString)>::new())),
        Box::new(file_backend(
            dir.path(),
            siteport_creds::backends::file::KeyMode::Identity,
        )),
    ]);
    testkit::writable_suite(&chain).await;
}

// SSH keys (SFTP): carried by the env backend (plain and `_FILE` variables) and the file
// backend; the other backends do not carry them yet.
#[tokio::test]
async fn env_carries_ssh_keys() {
    let keys = testkit::ssh_key_fixtures();
    testkit::ssh_key_suite(&EnvBackend::from_vars(fixture_vars(&keys, None)), false).await;
    let secrets = tempfile::tempdir().unwrap();
    let b = EnvBackend::from_vars(fixture_vars(&keys, Some(secrets.path())));
    testkit::ssh_key_suite(&b, false).await;
}

#[tokio::test]
async fn file_backend_carries_ssh_keys() {
    let dir = tempfile::tempdir().unwrap();
    let b = file_backend(
        dir.path(),
        siteport_creds::backends::file::KeyMode::Identity,
    );
    testkit::ssh_key_suite(&b, true).await;
    testkit::ssh_key_suite(&MemoryBackend::new(BackendKind::File), true).await;
}

#[tokio::test]
async fn dir_carries_ssh_keys() {
    let root = tempfile::tempdir().unwrap();
    write_dir_tree(root.path(), &testkit::ssh_key_fixtures());
    testkit::ssh_key_suite(&DirBackend::new(root.path().to_owned()), false).await;
}
