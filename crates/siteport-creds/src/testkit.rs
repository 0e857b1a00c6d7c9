//! The one backend conformance suite (feature `testkit`).
//!
//! Every backend's tests call [`writable_suite`] (stores that can write) or
//! [`read_only_suite`] (env, dir: seeded with [`fixtures`] first), so that all backends behave
//! the same way. The suites panic with a message saying which rule was broken.
//!
//! Helpers seed read-only backends with the fixtures: [`fixture_vars`] for the env backend,
//! [`write_dir_tree`] and [`write_k8s_tree`] for the dir backend. [`MemoryBackend`] is a real,
//! conformant in-memory store for tests that need a writable member (chains, config
//! resolution); it is not built into the CLI.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::path::Path;
use std::sync::Mutex;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};

use crate::backend::{BackendKind, CredentialBackend, CredentialInfo, Health, StoreMode};
use crate::backends::env::{EnvVarNames, env_var_names};
use crate::credential::{Credential, CredentialName};
use crate::error::{Error, ErrorKind, Result};

fn pw(s: &str) -> SecretString {
    SecretString::from(s.to_owned())
}

fn name(s: &str) -> CredentialName {
    CredentialName::new(s).expect("fixture names are valid")
}

/// The fixtures: names with `.`, `-` and `_` (valid for every backend), a unicode password,
/// passwords full of shell and TOML metacharacters, with and without host and port.
/// Every password is long and unique, so the suites can search output for it.
pub fn fixtures() -> Vec<Credential> {
    let build = || -> std::result::Result<Vec<Credential>, crate::ValidationError> {
        Ok(vec![
            Credential::new(name("acme"), "acme-deploy", pw("Fx-acme-S3cret!pw"))?
                .with_host("ftp.acme.example")?
                .with_port(21)?,
            Credential::new(
                name("shop.example-com"),
                "shop@example.com",
                pw("Fx-ünïcødé-pässwörd-🔑-日本語"),
            )?,
            Credential::new(name("beta_2"), "beta", pw("Fx beta $HOME ${X} #'\"\\ pw"))?
                .with_host("192.0.2.10")?,
            Credential::new(name("ci-runner.9"), "ci", pw("Fx-ci:p@ss/w%20rd="))?
                .with_port(2121)?,
        ])
    };
    build().expect("fixtures are valid credentials")
}

/// Every fixture password, plus the replacement passwords the writable suite uses.
fn secrets() -> Vec<String> {
    let mut v: Vec<String> = fixtures()
        .iter()
        .map(|c| c.password().expose_secret().to_owned())
        .collect();
    v.extend(fixtures().iter().map(|c| replaced_password(c.name())));
    v
}

fn replaced_password(n: &CredentialName) -> String {
    format!("Fx-replaced-{n}-pw")
}

/// Panics if `text` (an error, a `Debug` dump, a listing) contains any fixture password.
pub fn assert_no_secret(what: &str, text: &str) {
    for s in secrets() {
        assert!(
            !text.contains(&s),
            "{what} leaks a fixture password: {text}"
        );
    }
}

/// Everything an error shows: `Display`, `Debug`, hint and the source chain.
fn error_text(e: &Error) -> String {
    let mut out = format!("{e}\n{e:?}\n{}\n{:?}", e.hint().unwrap_or(""), e.remedy());
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        out.push_str(&format!("\n{s}"));
        src = s.source();
    }
    out
}

fn assert_error_clean(what: &str, b: &dyn CredentialBackend, e: &Error) {
    let text = error_text(e);
    assert_no_secret(what, &text);
    assert!(
        !e.backend().is_empty(),
        "{what}: error does not say which backend: {text}"
    );
    assert!(
        e.backend().contains("backend"),
        "{what}: error's backend '{}' does not name a backend (describe() of {})",
        e.backend(),
        b.describe()
    );
}

/// Checks that `got` holds exactly the fields of `want` (name, username, password, host, port).
pub fn assert_same(what: &str, got: &Credential, want: &Credential) {
    assert_eq!(got.name(), want.name(), "{what}: name");
    assert_eq!(got.username(), want.username(), "{what}: username");
    assert!(
        got.password().expose_secret() == want.password().expose_secret(),
        "{what}: password differs from the one stored (not shown)"
    );
    assert_eq!(got.host(), want.host(), "{what}: host");
    assert_eq!(got.port(), want.port(), "{what}: port");
    let same = |a: Option<&SecretString>, b: Option<&SecretString>| {
        a.map(|s| s.expose_secret().to_owned()) == b.map(|s| s.expose_secret().to_owned())
    };
    assert!(
        same(got.ssh_key(), want.ssh_key()),
        "{what}: ssh_key differs from the one stored (not shown)"
    );
    assert!(
        same(got.ssh_key_passphrase(), want.ssh_key_passphrase()),
        "{what}: ssh_key_passphrase differs from the one stored (not shown)"
    );
}

/// A fake but well-formed OpenSSH private key: its body line is unique, so output can be
/// searched for it.
pub const FIXTURE_SSH_KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----\n\
b3BlbnNzaC1rZXktdjEAAAAAFIXTUREKEYBODYFxSshKey0123456789abcdef\n\
-----END OPENSSH PRIVATE KEY-----\n";
/// The passphrase of [`FIXTURE_SSH_KEY`] in [`ssh_key_fixtures`].
pub const FIXTURE_SSH_KEY_PASSPHRASE: &str = "Fx-ssh-key-passphrase-77";

/// Credentials with an SSH key: one with a password, key and passphrase, one key-only.
pub fn ssh_key_fixtures() -> Vec<Credential> {
    let key = || pw(FIXTURE_SSH_KEY);
    let build = || -> std::result::Result<Vec<Credential>, crate::ValidationError> {
        Ok(vec![
            Credential::new(name("sftp-both"), "deploy", pw("Fx-sftp-both-pw"))?
                .with_ssh_key(key(), Some(pw(FIXTURE_SSH_KEY_PASSPHRASE)))?
                .with_host("sftp.example")?
                .with_port(2222)?,
            Credential::with_ssh_key_only(name("sftp.key-only"), "deploy", key(), None)?,
        ])
    };
    build().expect("ssh key fixtures are valid credentials")
}

/// SSH keys round-trip through a backend that carries them (file, env, memory): stored (or,
/// for read-only backends, seeded by the caller) and read back equal, never in `list` or
/// `Debug`. With `writable`, the suite stores and finally deletes the fixtures itself.
pub async fn ssh_key_suite(b: &dyn CredentialBackend, writable: bool) {
    let fx = ssh_key_fixtures();
    for c in &fx {
        if writable {
            b.store(c, StoreMode::CreateNew)
                .await
                .unwrap_or_else(|e| panic!("store {}: {e}", c.name()));
        }
        let got = b
            .get(c.name())
            .await
            .unwrap_or_else(|e| panic!("get {}: {e}", c.name()));
        assert_same(&format!("ssh key of {}", c.name()), &got, c);
        let shown = format!("{got:?}");
        assert!(
            !shown.contains("FIXTUREKEYBODY") && !shown.contains(FIXTURE_SSH_KEY_PASSPHRASE),
            "Debug leaks the ssh key: {shown}"
        );
    }
    let list = b.list().await.expect("list");
    let text = format!(
        "{list:?} {}",
        serde_json::to_string(&list).unwrap_or_default()
    );
    assert!(
        !text.contains("FIXTUREKEYBODY") && !text.contains(FIXTURE_SSH_KEY_PASSPHRASE),
        "list leaks the ssh key: {text}"
    );
    for c in &fx {
        // The env backend lists names recovered from variables (`-` and `.` as `_`).
        let flat = |n: &CredentialName| n.as_str().replace(['-', '.'], "_");
        assert!(
            list.iter().any(|i| flat(&i.name) == flat(c.name())),
            "list misses key credential {}",
            c.name()
        );
        if writable {
            b.delete(c.name()).await.expect("delete");
        }
    }
}

/// The source of a listing entry must be a backend named in `describe()` (for a chain, one of
/// its members): every `describe()` starts with `<kind> backend`.
fn assert_source(b: &dyn CredentialBackend, info: &CredentialInfo) {
    let d = b.describe();
    assert!(
        d.contains(&format!("{} backend", info.source)),
        "list entry '{}' has source '{}', which is not part of {d}",
        info.name,
        info.source
    );
}

fn assert_sorted(what: &str, list: &[CredentialInfo]) {
    let names: Vec<&str> = list.iter().map(|i| i.name.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(
        names, sorted,
        "{what}: list must be sorted by name without duplicates"
    );
}

fn assert_listing_clean(what: &str, list: &[CredentialInfo]) {
    assert_no_secret(what, &format!("{list:?}"));
    let json = serde_json::to_string(list).expect("CredentialInfo serializes");
    assert_no_secret(what, &json);
}

fn find<'a>(list: &'a [CredentialInfo], n: &CredentialName) -> Option<&'a CredentialInfo> {
    list.iter().find(|i| &i.name == n)
}

/// A name no suite ever stores.
fn missing_name() -> CredentialName {
    name("siteport-testkit-missing")
}

/// The behaviour every writable backend must have. `b` must not hold any fixture at the start;
/// it holds none of them at the end.
pub async fn writable_suite(b: &dyn CredentialBackend) {
    assert!(
        b.is_writable(),
        "writable_suite on a read-only backend: {}",
        b.describe()
    );
    let d = b.describe();
    // A single backend describes itself as `<kind> backend (…)`; a chain names its members.
    assert!(
        d.starts_with(&format!("{} backend", b.kind())) || d.starts_with("backend chain"),
        "describe() must start with '{} backend', got '{d}'",
        b.kind()
    );
    if let Err(e) = b.check().await {
        panic!(
            "check() failed on a fresh backend: {e} (hint: {:?})",
            e.hint()
        );
    }
    let fx = fixtures();
    expect_absent(b, &fx).await;
    create_and_read_back(b, &fx).await;
    create_new_refuses_an_existing_name(b, &fx[0]).await;
    replace_changes_every_field(b, &fx).await;
    list_is_sorted_complete_and_clean(b, &fx).await;
    let gone = &fx[1];
    delete_removes_only_its_credential(b, &fx, gone).await;
    validation_never_echoes();
    assert_no_secret("Debug of the backend", &format!("{b:?}"));
    assert_no_secret("describe()", &b.describe());
    if let Err(e) = b.check().await {
        panic!("check() failed after use: {e}");
    }
    if let Ok(h) = b.check().await {
        assert_no_secret("check() notes", &format!("{h:?}"));
    }

    for f in fx.iter().filter(|f| f.name() != gone.name()) {
        b.delete(f.name())
            .await
            .unwrap_or_else(|e| panic!("cleanup delete('{}'): {e}", f.name()));
    }
}

/// None of the fixtures exists yet.
async fn expect_absent(b: &dyn CredentialBackend, fx: &[Credential]) {
    for f in fx {
        match b.get(f.name()).await {
            Err(e) => assert_eq!(
                e.kind(),
                ErrorKind::NotFound,
                "get('{}') before any store: expected NotFound, got {e}",
                f.name()
            ),
            Ok(_) => panic!(
                "writable_suite needs a backend without the fixtures; '{}' exists",
                f.name()
            ),
        }
    }
}

async fn create_and_read_back(b: &dyn CredentialBackend, fx: &[Credential]) {
    // Create.
    for f in fx {
        if let Err(e) = b.store(f, StoreMode::CreateNew).await {
            panic!("store('{}', CreateNew) failed: {e}", f.name());
        }
    }
    for f in fx {
        let got = b
            .get(f.name())
            .await
            .unwrap_or_else(|e| panic!("get('{}') after store failed: {e}", f.name()));
        assert_same(&format!("get('{}') after store", f.name()), &got, f);
        assert_no_secret("Debug of a credential", &format!("{got:?}"));
    }
}

/// CreateNew on an existing name refuses and keeps the old value.
async fn create_new_refuses_an_existing_name(b: &dyn CredentialBackend, first: &Credential) {
    let changed = Credential::new(
        first.name().clone(),
        "someone-else",
        pw(&replaced_password(first.name())),
    )
    .expect("valid");
    let e = b
        .store(&changed, StoreMode::CreateNew)
        .await
        .expect_err("store(CreateNew) of an existing name must fail");
    assert_eq!(
        e.kind(),
        ErrorKind::AlreadyExists,
        "store(CreateNew) of an existing name: {e}"
    );
    assert!(
        e.hint().is_some() || e.remedy().is_some(),
        "AlreadyExists must carry a fix (e.g. --force): {e}"
    );
    assert_error_clean("AlreadyExists error", b, &e);
    let got = b.get(first.name()).await.expect("get after refused store");
    assert_same("value after a refused CreateNew", &got, first);
}

async fn replace_changes_every_field(b: &dyn CredentialBackend, fx: &[Credential]) {
    // Replace changes every field, including dropping host and port.
    for f in fx {
        let r = Credential::new(
            f.name().clone(),
            format!("{}-2", f.username()),
            pw(&replaced_password(f.name())),
        )
        .expect("valid");
        let r = match f.host() {
            // Drop the host where there was one; add one where there was none.
            Some(_) => r,
            None => r.with_host("replaced.example").expect("valid host"),
        };
        b.store(&r, StoreMode::Replace)
            .await
            .unwrap_or_else(|e| panic!("store('{}', Replace) failed: {e}", f.name()));
        let got = b.get(f.name()).await.expect("get after replace");
        assert_same(&format!("get('{}') after Replace", f.name()), &got, &r);
    }
}

async fn list_is_sorted_complete_and_clean(b: &dyn CredentialBackend, fx: &[Credential]) {
    // List: sorted, complete, no password, source shown.
    let list = b
        .list()
        .await
        .unwrap_or_else(|e| panic!("list failed: {e}"));
    assert_sorted("list", &list);
    assert_listing_clean("list", &list);
    for f in fx {
        let info = find(&list, f.name())
            .unwrap_or_else(|| panic!("list does not contain '{}': {list:?}", f.name()));
        assert_eq!(
            info.username.as_deref(),
            Some(format!("{}-2", f.username()).as_str()),
            "list username of '{}'",
            f.name()
        );
        assert_source(b, info);
    }
}

async fn delete_removes_only_its_credential(
    b: &dyn CredentialBackend,
    fx: &[Credential],
    gone: &Credential,
) {
    // Delete.
    b.delete(gone.name())
        .await
        .unwrap_or_else(|e| panic!("delete('{}') failed: {e}", gone.name()));
    let e = b
        .get(gone.name())
        .await
        .expect_err("get after delete must fail");
    assert_eq!(e.kind(), ErrorKind::NotFound, "get after delete: {e}");
    assert!(
        e.hint().is_some() || e.remedy().is_some(),
        "NotFound must carry a fix: {e}"
    );
    assert!(
        e.to_string().contains(gone.name().as_str()),
        "NotFound must name the credential: {e}"
    );
    assert_error_clean("NotFound error", b, &e);
    let e = b
        .delete(gone.name())
        .await
        .expect_err("second delete must fail");
    assert_eq!(
        e.kind(),
        ErrorKind::NotFound,
        "delete of a missing name: {e}"
    );
    let list = b.list().await.expect("list after delete");
    assert!(
        find(&list, gone.name()).is_none(),
        "deleted '{}' still listed",
        gone.name()
    );
    assert_eq!(
        list.iter()
            .filter(|i| fx.iter().any(|f| f.name() == &i.name))
            .count(),
        fx.len() - 1
    );

    // The others are untouched by the delete.
    for f in fx.iter().filter(|f| f.name() != gone.name()) {
        assert!(
            b.get(f.name()).await.is_ok(),
            "'{}' lost by deleting '{}'",
            f.name(),
            gone.name()
        );
    }
}

/// Validation rejects values that would inject FTP commands, naming the field, not the value.
fn validation_never_echoes() {
    let bad = "Fx-acme-S3cret!pw\r\nDELE index.html";
    let e = Credential::new(name("acme"), "u", pw(bad)).expect_err("CRLF in a password");
    assert_eq!(e.field, "password");
    assert_no_secret("validation error", &format!("{e} {e:?}"));
}

/// The behaviour every read-only backend must have. `b` must hold every [`fixtures`]
/// credential. Read-only backends may list a name in a lossy form (the env backend lists
/// `shop.example-com` as `shop_example_com`), so listing names are compared with `-` and `.`
/// read as `_`.
pub async fn read_only_suite(b: &dyn CredentialBackend) {
    assert!(
        !b.is_writable(),
        "read_only_suite on a writable backend: {}",
        b.describe()
    );
    let fx = fixtures();
    if let Err(e) = b.check().await {
        panic!("check() failed: {e} (hint: {:?})", e.hint());
    }
    for f in &fx {
        let got = b
            .get(f.name())
            .await
            .unwrap_or_else(|e| panic!("get('{}') failed: {e} (hint: {:?})", f.name(), e.hint()));
        assert_same(&format!("get('{}')", f.name()), &got, f);
        assert_no_secret("Debug of a credential", &format!("{got:?}"));
    }

    let list = b
        .list()
        .await
        .unwrap_or_else(|e| panic!("list failed: {e}"));
    assert_sorted("list", &list);
    assert_listing_clean("list", &list);
    let loose = |n: &str| n.replace(['-', '.'], "_");
    for f in &fx {
        let info = list
            .iter()
            .find(|i| loose(i.name.as_str()) == loose(f.name().as_str()))
            .unwrap_or_else(|| panic!("list does not contain '{}': {list:?}", f.name()));
        assert_eq!(
            info.username.as_deref(),
            Some(f.username()),
            "list username of '{}'",
            f.name()
        );
        assert_eq!(
            info.host.as_deref(),
            f.host(),
            "list host of '{}'",
            f.name()
        );
        assert_eq!(info.port, f.port(), "list port of '{}'", f.name());
        assert_source(b, info);
    }

    let missing = missing_name();
    let e = b
        .get(&missing)
        .await
        .expect_err("get of a missing name must fail");
    assert_eq!(e.kind(), ErrorKind::NotFound, "get of a missing name: {e}");
    assert!(
        e.hint().is_some_and(|h| !h.is_empty()) || e.remedy().is_some(),
        "NotFound must say how to provide the credential: {e}"
    );
    assert!(
        e.to_string().contains(missing.as_str()),
        "NotFound must name the credential: {e}"
    );
    assert_error_clean("NotFound error", b, &e);

    for f in &fx {
        let e = b
            .store(f, StoreMode::Replace)
            .await
            .expect_err("store on a read-only backend must fail");
        assert_eq!(
            e.kind(),
            ErrorKind::Unsupported,
            "store on a read-only backend: {e}"
        );
        assert!(
            e.hint().is_some() || e.remedy().is_some(),
            "Unsupported store must explain the alternative: {e}"
        );
        assert_error_clean("Unsupported store error", b, &e);
        let e = b
            .delete(f.name())
            .await
            .expect_err("delete on a read-only backend must fail");
        assert_eq!(
            e.kind(),
            ErrorKind::Unsupported,
            "delete on a read-only backend: {e}"
        );
        assert!(
            e.hint().is_some() || e.remedy().is_some(),
            "Unsupported delete must explain the alternative: {e}"
        );
        assert_error_clean("Unsupported delete error", b, &e);
        // Refused writes change nothing.
        let got = b.get(f.name()).await.expect("get after refused write");
        assert_same("value after a refused write", &got, f);
    }

    validation_never_echoes();
    assert_no_secret("Debug of the backend", &format!("{b:?}"));
    assert_no_secret("describe()", &b.describe());
    if let Ok(h) = b.check().await {
        assert_no_secret("check() notes", &format!("{h:?}"));
    }
}

/// `SITEPORT_CRED_*` variables holding `creds`. With `file_dir`, every value is written to a
/// file there (0600) and the `_FILE` forms are set instead, as Docker secrets do.
pub fn fixture_vars(creds: &[Credential], file_dir: Option<&Path>) -> Vec<(OsString, OsString)> {
    let mut out = Vec::new();
    for c in creds {
        let n = env_var_names(c.name());
        let mut fields = vec![(n.username.clone(), c.username().to_owned())];
        // A key-only credential has an empty password: no variable for it.
        if !c.password().expose_secret().is_empty() {
            fields.push((n.password.clone(), c.password().expose_secret().to_owned()));
        }
        if let Some(k) = c.ssh_key() {
            fields.push((n.ssh_key.clone(), k.expose_secret().to_owned()));
        }
        if let Some(p) = c.ssh_key_passphrase() {
            fields.push((n.ssh_key_passphrase.clone(), p.expose_secret().to_owned()));
        }
        if let Some(h) = c.host() {
            fields.push((n.host.clone(), h.to_owned()));
        }
        if let Some(p) = c.port() {
            fields.push((n.port.clone(), p.to_string()));
        }
        for (var, value) in fields {
            match file_dir {
                None => out.push((var.into(), value.into())),
                Some(dir) => {
                    let path = dir.join(var.to_ascii_lowercase());
                    // A trailing newline, as `echo pw > file` leaves it.
                    write_private(&path, &format!("{value}\n"));
                    out.push((EnvVarNames::file_form(&var).into(), path.into_os_string()));
                }
            }
        }
    }
    out
}

fn write_private(path: &Path, content: &str) {
    crate::fsutil::write_private(path, content.as_bytes())
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

fn write_fields(dir: &Path, c: &Credential) {
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
    write_private(&dir.join("username"), &format!("{}\n", c.username()));
    // A key-only (SFTP) credential has no password file.
    if !c.password().expose_secret().is_empty() {
        write_private(
            &dir.join("password"),
            &format!("{}\n", c.password().expose_secret()),
        );
    }
    if let Some(k) = c.ssh_key() {
        write_private(&dir.join("ssh_key"), k.expose_secret());
    }
    if let Some(p) = c.ssh_key_passphrase() {
        write_private(
            &dir.join("ssh_key_passphrase"),
            &format!("{}\n", p.expose_secret()),
        );
    }
    if let Some(h) = c.host() {
        write_private(&dir.join("host"), &format!("{h}\n"));
    }
    if let Some(p) = c.port() {
        write_private(&dir.join("port"), &format!("{p}\n"));
    }
}

/// A plain secrets tree (Docker secrets style): `<root>/<name>/{username,password,…}`.
pub fn write_dir_tree(root: &Path, creds: &[Credential]) {
    for c in creds {
        write_fields(&root.join(c.name().as_str()), c);
    }
}

/// How a Kubernetes secret volume is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum K8sLayout {
    /// One projected volume at the root: `<root>/..2024_…/<name>/<field>`,
    /// `<root>/..data -> ..2024_…`, `<root>/<name> -> ..data/<name>`.
    Projected,
    /// One Secret mounted per credential at `<root>/<name>`: `<root>/<name>/..2024_…/<field>`,
    /// `<root>/<name>/..data -> ..2024_…`, `<root>/<name>/<field> -> ..data/<field>`.
    PerSecret,
}

/// A tree laid out the way the kubelet writes secret volumes (timestamped dir + `..data`
/// symlink + per-key symlinks).
pub fn write_k8s_tree(root: &Path, creds: &[Credential], layout: K8sLayout) {
    use std::os::unix::fs::symlink;
    let ts = "..2024_05_01_12_00_00.123456789";
    let link = |target: &Path, at: &Path| {
        symlink(target, at).unwrap_or_else(|e| panic!("symlink {}: {e}", at.display()))
    };
    match layout {
        K8sLayout::Projected => {
            for c in creds {
                write_fields(&root.join(ts).join(c.name().as_str()), c);
                link(
                    &Path::new("..data").join(c.name().as_str()),
                    &root.join(c.name().as_str()),
                );
            }
            link(Path::new(ts), &root.join("..data"));
        }
        K8sLayout::PerSecret => {
            for c in creds {
                let mount = root.join(c.name().as_str());
                write_fields(&mount.join(ts), c);
                link(Path::new(ts), &mount.join("..data"));
                for field in ["username", "password", "host", "port"] {
                    if mount.join(ts).join(field).exists() {
                        link(&Path::new("..data").join(field), &mount.join(field));
                    }
                }
            }
        }
    }
}

/// A conformant in-memory store, for tests that need a writable backend. It reports the
/// `kind` it is given (so a chain test can put a "file" member in front) and describes itself
/// as `<kind> backend (in-memory test store)`.
pub struct MemoryBackend {
    kind: BackendKind,
    creds: Mutex<BTreeMap<CredentialName, Credential>>,
}

impl MemoryBackend {
    /// An empty store reporting `kind`.
    pub fn new(kind: BackendKind) -> Self {
        Self {
            kind,
            creds: Mutex::new(BTreeMap::new()),
        }
    }

    fn creds(&self) -> std::sync::MutexGuard<'_, BTreeMap<CredentialName, Credential>> {
        self.creds.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl fmt::Debug for MemoryBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryBackend")
            .field("kind", &self.kind)
            .field("names", &self.creds().keys().collect::<Vec<_>>())
            .finish()
    }
}

#[async_trait]
impl CredentialBackend for MemoryBackend {
    fn kind(&self) -> BackendKind {
        self.kind
    }
    fn describe(&self) -> String {
        format!("{} backend (in-memory test store)", self.kind)
    }
    fn is_writable(&self) -> bool {
        true
    }
    async fn get(&self, name: &CredentialName) -> Result<Credential> {
        self.creds()
            .get(name)
            .cloned()
            .ok_or_else(|| Error::not_found(self.describe(), name))
    }
    async fn store(&self, cred: &Credential, mode: StoreMode) -> Result<()> {
        let mut m = self.creds();
        if mode == StoreMode::CreateNew && m.contains_key(cred.name()) {
            return Err(Error::already_exists(self.describe(), cred.name()));
        }
        m.insert(cred.name().clone(), cred.clone());
        Ok(())
    }
    async fn delete(&self, name: &CredentialName) -> Result<()> {
        self.creds()
            .remove(name)
            .map(|_| ())
            .ok_or_else(|| Error::not_found(self.describe(), name))
    }
    async fn list(&self) -> Result<Vec<CredentialInfo>> {
        Ok(self
            .creds()
            .values()
            .map(|c| CredentialInfo::of(c, self.kind))
            .collect())
    }
    async fn check(&self) -> Result<Health> {
        Ok(Health {
            notes: vec![format!("{} credential(s) in memory", self.creds().len())],
        })
    }
}
