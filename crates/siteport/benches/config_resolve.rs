//! Config cost at scale: parse a config of 500 sites and resolve every one (`siteport config
//! check`), credentials from an identity-mode file store holding the 500 credentials. Run with
//! `cargo bench -p siteport --bench config_resolve`.

use std::fmt::Write as _;
use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use siteport::config::Config;
use siteport_creds::backends::file::{FileBackend, FileEnv, InitOptions};
use siteport_creds::reference::NotUnicode;
use siteport_creds::{
    Credential, CredentialBackend, CredentialName, FileSettings, SecretString, StoreMode,
};

const SITES: usize = 500;

/// Variables come from this function, never from the process environment.
fn vars(var: &str) -> Result<Option<String>, NotUnicode> {
    Ok((var == "DEPLOY_ROOT").then(|| "/srv/www".to_owned()))
}

/// Half the sites use `credential = "…"`, half the legacy references, so both paths are timed.
fn config_text() -> String {
    let mut t = String::from("[credentials]\nbackend = \"file\"\n");
    for i in 0..SITES {
        write!(
            t,
            "\n[[site]]\nname = \"site-{i:04}\"\nhost = \"ftp{i}.example.net\"\ntls = \"explicit\"\n\
             local = \"public/{i}\"\nremote = \"${{DEPLOY_ROOT:-/htdocs}}/{i}\"\n\
             exclude = [\".git/**\", \"*.tmp\"]\nmax_connections = 4\n"
        )
        .expect("write to a String");
        if i % 2 == 0 {
            writeln!(t, "credential = \"site-{i:04}\"").expect("write to a String");
        } else {
            writeln!(
                t,
                "user = \"${{cred:site-{i:04}#username}}\"\npassword = \"${{cred:site-{i:04}}}\""
            )
            .expect("write to a String");
        }
    }
    t
}

fn store(rt: &tokio::runtime::Runtime, dir: &Path) -> FileBackend {
    let settings = FileSettings {
        path: Some(dir.join("data/credentials.age")),
        identity: Some(dir.join("config/identity.txt")),
        passphrase_command: None,
        ..Default::default()
    };
    let env = FileEnv::empty().var("HOME", dir.join("home"));
    FileBackend::builder(&settings)
        .env(env.clone())
        .init(InitOptions::default())
        .expect("init the store");
    let backend = FileBackend::builder(&settings)
        .env(env)
        .open()
        .expect("open the store");
    rt.block_on(async {
        for i in 0..SITES {
            let cred = Credential::new(
                CredentialName::new(&format!("site-{i:04}")).expect("valid name"),
                format!("deploy{i}"),
                SecretString::from(format!("pw-{i}-{}", "y".repeat(24))),
            )
            .expect("valid credential");
            backend
                .store(&cred, StoreMode::CreateNew)
                .await
                .expect("store a credential");
        }
    });
    backend
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let backend = store(&rt, dir.path());
    let text = config_text();
    let path = dir.path().join("siteport.toml");

    // Every site must resolve, or the timing would measure error paths.
    let cfg = Config::parse(&text, &path, &vars).expect("parse the 500-site config");
    let all = rt.block_on(cfg.resolve_all(&backend, &vars));
    assert_eq!(all.len(), SITES);
    for (name, r) in &all {
        assert!(
            r.is_ok(),
            "site {name} did not resolve: {:?}",
            r.as_ref().err()
        );
    }

    let mut group = c.benchmark_group("config_500_sites");
    group.sample_size(20);
    group.bench_function("parse", |b| {
        b.iter(|| black_box(Config::parse(black_box(&text), &path, &vars).expect("parse")))
    });
    group.bench_function("parse_and_resolve_all", |b| {
        b.iter(|| {
            let cfg = Config::parse(black_box(&text), &path, &vars).expect("parse");
            black_box(rt.block_on(cfg.resolve_all(&backend, &vars)))
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
