//! Credential store cost with 1,000 credentials stored (file backend, identity mode): what every
//! `siteport` command pays before it touches the network. Run with
//! `cargo bench -p siteport-creds --bench file_backend`.

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use secrecy::SecretString;
use siteport_creds::backends::file::{FileBackend, FileEnv, InitOptions};
use siteport_creds::{Credential, CredentialBackend, CredentialName, FileSettings, StoreMode};

const STORED: usize = 1_000;

fn settings(dir: &Path) -> FileSettings {
    FileSettings {
        path: Some(dir.join("data/credentials.age")),
        identity: Some(dir.join("config/identity.txt")),
        passphrase_command: None,
        ..Default::default()
    }
}

/// The process environment stays out: HOME points into the temp dir.
fn env(dir: &Path) -> FileEnv {
    FileEnv::empty().var("HOME", dir.join("home"))
}

fn name(i: usize) -> CredentialName {
    CredentialName::new(&format!("site-{i:04}")).expect("valid name")
}

/// An identity-mode store holding `STORED` credentials.
fn filled_store(rt: &tokio::runtime::Runtime, dir: &Path) -> FileSettings {
    let settings = settings(dir);
    FileBackend::builder(&settings)
        .env(env(dir))
        .init(InitOptions::default())
        .expect("init the store");
    let backend = FileBackend::builder(&settings)
        .env(env(dir))
        .open()
        .expect("open the store");
    rt.block_on(async {
        for i in 0..STORED {
            let cred = Credential::new(
                name(i),
                format!("user{i}"),
                SecretString::from(format!("password-{i}-{}", "x".repeat(24))),
            )
            .expect("valid credential");
            backend
                .store(&cred, StoreMode::CreateNew)
                .await
                .expect("store a credential");
        }
    });
    settings
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let settings = filled_store(&rt, dir.path());
    let wanted = name(STORED / 2);

    // The measured path must really find the credential: checked once before timing.
    let check = FileBackend::builder(&settings)
        .env(env(dir.path()))
        .open()
        .expect("open");
    let got = rt.block_on(check.get(&wanted)).expect("get");
    assert_eq!(got.username(), format!("user{}", STORED / 2));
    let listed = rt.block_on(check.list()).expect("list");
    assert_eq!(listed.len(), STORED);

    let mut group = c.benchmark_group("file_backend_1000");
    group.sample_size(30);
    // What `siteport credential show NAME` does: open the store (identity file, decryption of the
    // whole document) and look one credential up.
    group.bench_function("open_and_get", |b| {
        b.iter(|| {
            let backend = FileBackend::builder(&settings)
                .env(env(dir.path()))
                .open()
                .expect("open");
            let cred = rt.block_on(backend.get(black_box(&wanted))).expect("get");
            black_box(cred);
        })
    });
    // A second lookup in the same process (the decrypted document is cached).
    group.bench_function("get_warm", |b| {
        b.iter(|| {
            let cred = rt.block_on(check.get(black_box(&wanted))).expect("get");
            black_box(cred);
        })
    });
    group.bench_function("open_and_list", |b| {
        b.iter(|| {
            let backend = FileBackend::builder(&settings)
                .env(env(dir.path()))
                .open()
                .expect("open");
            black_box(rt.block_on(backend.list()).expect("list"));
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
