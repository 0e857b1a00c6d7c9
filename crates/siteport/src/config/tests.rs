use std::collections::HashMap;
use std::ffi::OsString;

use siteport_creds::backends::env::EnvBackend;
use siteport_creds::testkit::{MemoryBackend, fixture_vars};
use siteport_creds::{BackendKind, Credential, StoreMode};

use secrecy::{ExposeSecret, SecretString};
use siteport_creds::reference::NotUnicode;
use siteport_creds::{CredentialBackend, CredentialName};

use super::*;

/// The exit code the CLI gives `e` (the policy lives in `crate::exit`).
fn exit_code(e: &ConfigError) -> u8 {
    crate::exit::code(crate::exit::Failure::Config(e.kind()))
}

fn env_of(
    pairs: &[(&str, &str)],
) -> impl Fn(&str) -> Result<Option<String>, NotUnicode> + Send + Sync + use<> {
    let m: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |k| Ok(m.get(k).cloned())
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn cred(name: &str, user: &str, pw: &str) -> Credential {
    Credential::new(
        CredentialName::new(name).unwrap(),
        user,
        SecretString::from(pw.to_owned()),
    )
    .unwrap()
}

async fn memory_with(creds: &[Credential]) -> MemoryBackend {
    let b = MemoryBackend::new(BackendKind::File);
    for c in creds {
        b.store(c, StoreMode::CreateNew).await.unwrap();
    }
    b
}

#[test]
fn search_order() {
    let t = tempfile::tempdir().unwrap();
    let cwd = t.path().join("cwd");
    let xdg = t.path().join("xdg");
    std::fs::create_dir_all(&cwd).unwrap();
    std::fs::create_dir_all(xdg.join("siteport")).unwrap();
    let flag = write(t.path(), "flag.toml", "");
    let by_env = write(t.path(), "env.toml", "");
    let xdg_cfg = write(&xdg.join("siteport"), "config.toml", "");
    let vars: HashMap<&str, OsString> = [
        ("SITEPORT_CONFIG", by_env.clone().into_os_string()),
        ("XDG_CONFIG_HOME", xdg.clone().into_os_string()),
    ]
    .into();
    let env = |k: &str| vars.get(k).cloned();
    let no_cfg_env = |k: &str| {
        if k == CONFIG_ENV {
            None
        } else {
            vars.get(k).cloned()
        }
    };

    assert_eq!(find_config(Some(&flag), &env, &cwd).unwrap(), flag);
    assert_eq!(find_config(None, &env, &cwd).unwrap(), by_env);
    assert_eq!(find_config(None, &no_cfg_env, &cwd).unwrap(), xdg_cfg);
    let local = write(&cwd, LOCAL_CONFIG, "");
    assert_eq!(find_config(None, &no_cfg_env, &cwd).unwrap(), local);
    // From a subdirectory of the project: the nearest parent's siteport.toml, as git does.
    let deep = cwd.join("src/pages");
    std::fs::create_dir_all(&deep).unwrap();
    assert_eq!(find_config(None, &no_cfg_env, &deep).unwrap(), local);
    let nearer = write(&cwd.join("src"), LOCAL_CONFIG, "");
    assert_eq!(find_config(None, &no_cfg_env, &deep).unwrap(), nearer);
    std::fs::remove_file(&nearer).unwrap();

    // A named file must exist; it does not fall through to the next place.
    let e = find_config(Some(Path::new("missing.toml")), &env, &cwd).unwrap_err();
    assert_eq!(e.kind(), ConfigErrorKind::NotFound);
    assert!(
        e.to_string().contains("missing.toml") && e.to_string().contains("--config"),
        "{e}"
    );
    let bad_env = |k: &str| (k == CONFIG_ENV).then(|| OsString::from("/nope.toml"));
    let e = find_config(None, &bad_env, &cwd).unwrap_err();
    assert!(e.to_string().contains("SITEPORT_CONFIG"), "{e}");

    // Nothing anywhere: the error lists the places and the hint says what to do.
    std::fs::remove_file(&local).unwrap();
    let home_only = |k: &str| (k == "HOME").then(|| t.path().join("home").into_os_string());
    let e = find_config(None, &home_only, &cwd).unwrap_err();
    assert_eq!(exit_code(&e), crate::exit::USAGE);
    assert!(
        e.to_string().contains("home/.config/siteport/config.toml"),
        "{e}"
    );
    assert!(e.hint_text().unwrap().contains("--config"));
}

const FULL: &str = r#"
[credentials]
backend = ["env", "file"]
[credentials.file]
path = "store/credentials.age"
identity = "${KEYS}/identity.txt"
[credentials.dir]
root = "/run/secrets/siteport"
[credentials.vault]
address = "https://vault.internal:8200"
mount = "secret"

[[site]]
name = "acme"
host = "ftp.acme.example"
tls = "explicit"
credential = "acme"
local = "public"
remote = "/htdocs"
exclude = [".git/**", "*.tmp"]
delete = true
max_connections = 4
switch = "per-file"

[[site]]
name = "shop"
tls = "implicit"
credential = "shop.example-com"
local = "/srv/shop"
ca_file = "certs/ca.pem"
passive = false

[[site]]
name = "mixed"
host = "${cred:acme#host}"
username = "${cred:acme#username}"
password = "${cred:acme}"
port = "${MIXED_PORT:-2121}"
local = "mixed"
"#;

#[tokio::test]
async fn full_config_resolves_lazily() {
    let t = tempfile::tempdir().unwrap();
    let path = write(t.path(), "siteport.toml", FULL);
    let env = env_of(&[("KEYS", "/keys")]);
    let cfg = Config::load_with_env(&path, &env).unwrap();

    assert_eq!(
        cfg.credentials.backend.as_ref().unwrap().kinds(),
        [BackendKind::Env, BackendKind::File]
    );
    let s = &cfg.credentials.settings;
    assert_eq!(
        s.file.path.as_deref(),
        Some(t.path().join("store/credentials.age").as_path())
    );
    assert_eq!(
        s.file.identity.as_deref(),
        Some(Path::new("/keys/identity.txt"))
    );
    assert_eq!(
        s.dir.root.as_deref(),
        Some(Path::new("/run/secrets/siteport"))
    );
    assert_eq!(
        cfg.credentials.other["vault"]["mount"].as_str(),
        Some("secret")
    );
    assert_eq!(cfg.sites.len(), 3);

    let acme = cred("acme", "acme-user", "acme-pw-123")
        .with_host("cred.acme.example")
        .unwrap()
        .with_port(2100)
        .unwrap();
    let shop = cred("shop.example-com", "shop-user", "shop-pw-456")
        .with_host("ftp.shop.example")
        .unwrap();
    let b = memory_with(&[acme, shop]).await;

    let r = cfg.resolve_site("acme", &b, &env).await.unwrap();
    // The site's own host wins over the credential's; so does a missing site port: no,
    // the credential's port fills in because the site has none.
    assert_eq!(r.host, "ftp.acme.example");
    assert_eq!(r.port, 2100);
    assert_eq!(r.username, "acme-user");
    assert_eq!(r.password.expose_secret(), "acme-pw-123");
    assert_eq!(r.switch, siteport_sync::Switch::PerFile);
    assert_eq!(r.tls, TlsMode::Explicit);
    assert_eq!(r.local, t.path().join("public"));
    assert_eq!(r.remote, "/htdocs");
    assert_eq!(r.exclude, [".git/**", "*.tmp"]);
    assert!(r.delete);
    assert!(r.passive);
    assert!(!format!("{r:?}").contains("acme-pw-123"));

    let r = cfg.resolve_site("shop", &b, &env).await.unwrap();
    assert_eq!(r.host, "ftp.shop.example");
    assert_eq!(r.port, 990, "implicit TLS defaults to 990");
    assert_eq!(r.local, Path::new("/srv/shop"));
    assert_eq!(r.remote, "/");
    assert_eq!(
        r.ca_file.as_deref(),
        Some(t.path().join("certs/ca.pem").as_path())
    );
    assert!(!r.passive);
    assert_eq!(r.max_connections, 4);
    assert_eq!(r.switch, siteport_sync::Switch::Burst, "the default");

    let r = cfg.resolve_site("mixed", &b, &env).await.unwrap();
    assert_eq!(r.host, "cred.acme.example");
    assert_eq!(r.username, "acme-user");
    assert_eq!(r.password.expose_secret(), "acme-pw-123");
    assert_eq!(r.port, 2121);
    let r = cfg
        .resolve_site("mixed", &b, &env_of(&[("MIXED_PORT", "2200")]))
        .await
        .unwrap();
    assert_eq!(r.port, 2200);

    assert_eq!(
        cfg.site("mixed").unwrap().credential_names(),
        [CredentialName::new("acme").unwrap()]
    );
    assert!(!format!("{cfg:?}").contains("acme-pw"));

    let e = cfg.resolve_site("nope", &b, &env).await.unwrap_err();
    assert!(
        e.hint_text().unwrap().contains("acme, shop, mixed"),
        "{e:?}"
    );
}

/// A config written for the old Python tool: only `${VAR}` references, the password in a
/// variable, port as a string. It must keep working unchanged.
const OLD_STYLE: &str = r#"# exported by the old tool
[[site]]
name = "legacy"
host = "${FTP_HOST}"
port = "${FTP_PORT:-21}"
user = "${FTP_USER:-deploy}"
password = "${FTP_PASSWORD}"
local = "./site"
remote = "/public_html"
tls = "none"
"#;

#[tokio::test]
async fn old_style_env_config_keeps_working() {
    let t = tempfile::tempdir().unwrap();
    let path = write(t.path(), "old.toml", OLD_STYLE);
    let cfg = Config::load_with_env(&path, &env_of(&[])).unwrap();
    assert!(!cfg.site("legacy").unwrap().has_literal_password());
    let empty = EnvBackend::from_vars(Vec::<(OsString, OsString)>::new());
    let env = env_of(&[
        ("FTP_HOST", "ftp.legacy.example"),
        ("FTP_PASSWORD", "legacy p@ss $x"),
    ]);
    let r = cfg.resolve_site("legacy", &empty, &env).await.unwrap();
    assert_eq!(r.host, "ftp.legacy.example");
    assert_eq!(r.port, 21);
    assert_eq!(r.username, "deploy");
    assert_eq!(r.password.expose_secret(), "legacy p@ss $x");
    assert_eq!(r.tls, TlsMode::None);
    assert_eq!(r.local, t.path().join("./site"));

    // The variable missing: an error at the value's line and column, no secret in it.
    let env = env_of(&[("FTP_HOST", "h")]);
    let e = cfg.resolve_site("legacy", &empty, &env).await.unwrap_err();
    assert_eq!(e.kind(), ConfigErrorKind::Reference);
    assert_eq!(exit_code(&e), crate::exit::USAGE);
    let loc = e.location().unwrap();
    assert_eq!((loc.line, loc.column), (7, 13), "{e}");
    assert!(
        e.to_string()
            .starts_with(&format!("{}:7:13: ", path.display())),
        "{e}"
    );
    assert!(e.to_string().contains("FTP_PASSWORD is not set"), "{e}");
    assert!(
        e.hint_text().unwrap().contains("export FTP_PASSWORD"),
        "{e:?}"
    );
}

#[tokio::test]
async fn credential_from_env_backend() {
    let t = tempfile::tempdir().unwrap();
    let path = write(
        t.path(),
        "c.toml",
        "[[site]]\nname = \"a\"\nhost = \"h\"\ncredential = \"acme-prod\"\nlocal = \"l\"\n",
    );
    let cfg = Config::load_with_env(&path, &env_of(&[])).unwrap();
    let c = cred("acme-prod", "u", "env-pw-789");
    let b = EnvBackend::from_vars(fixture_vars(&[c], None));
    let r = cfg.resolve_site("a", &b, &env_of(&[])).await.unwrap();
    assert_eq!(r.password.expose_secret(), "env-pw-789");
    assert_eq!(r.credential.unwrap().as_str(), "acme-prod");
}

#[tokio::test]
async fn unknown_credential_is_a_credential_error_with_location_and_hint() {
    let t = tempfile::tempdir().unwrap();
    let path = write(
        t.path(),
        "c.toml",
        "[[site]]\nname = \"a\"\nhost = \"h\"\ncredential = \"ghost\"\nlocal = \"l\"\n\n\
         [[site]]\nname = \"b\"\nhost = \"h\"\nuser = \"u\"\npassword = \"x${cred:ghost}\"\nlocal = \"l\"\n",
    );
    let cfg = Config::load_with_env(&path, &env_of(&[])).unwrap();
    let b = memory_with(&[]).await;
    let env = env_of(&[]);
    let e = cfg.resolve_site("a", &b, &env).await.unwrap_err();
    assert_eq!(e.kind(), ConfigErrorKind::Credential);
    assert_eq!(exit_code(&e), crate::exit::CREDENTIAL);
    let loc = e.location().unwrap();
    assert_eq!((loc.line, loc.column), (4, 14), "{e}");
    let hint = e.hint_text().unwrap();
    assert!(hint.contains("siteport credential add ghost"), "{hint}");
    assert!(
        hint.contains("file backend (in-memory test store)"),
        "{hint}"
    );

    let e = cfg.resolve_site("b", &b, &env).await.unwrap_err();
    assert_eq!(exit_code(&e), crate::exit::CREDENTIAL);
    let loc = e.location().unwrap();
    // `password = "x${cred:ghost}"`: the reference starts at column 14.
    assert_eq!((loc.line, loc.column), (11, 14), "{e}");

    // A read-only backend: the hint still names `credential add` and the env variables.
    let env_b = EnvBackend::from_vars(Vec::<(OsString, OsString)>::new());
    let e = cfg.resolve_site("a", &env_b, &env).await.unwrap_err();
    let hint = e.hint_text().unwrap();
    assert!(hint.contains("SITEPORT_CRED_GHOST_PASSWORD"), "{hint}");
    assert!(hint.contains("siteport credential add ghost"), "{hint}");
    assert!(hint.contains("env backend"), "{hint}");
}

fn load_err(text: &str) -> ConfigError {
    let t = tempfile::tempdir().unwrap();
    let path = write(t.path(), "bad.toml", text);
    Config::load_with_env(&path, &env_of(&[])).unwrap_err()
}

fn at(e: &ConfigError) -> (usize, usize) {
    let l = e.location().unwrap_or_else(|| panic!("no location: {e}"));
    (l.line, l.column)
}

#[test]
fn structural_errors_have_locations() {
    let e = load_err("[[site]]\nname = \"a\"\nlocal = \"l\"\nhost = \n");
    assert_eq!(e.kind(), ConfigErrorKind::Syntax);
    assert_eq!(at(&e).0, 4, "{e}");

    let e = load_err("[[site]]\nname = \"a\"\nlocal = \"l\"\nhots = \"x\"\n");
    assert_eq!(e.kind(), ConfigErrorKind::Syntax);
    assert_eq!(at(&e), (4, 1), "{e}");
    assert!(e.to_string().contains("hots"), "{e}");

    let e = load_err("[[site]]\nname = \"a\"\nlocal = \"l\"\ntls = \"maybe\"\n");
    assert_eq!(e.kind(), ConfigErrorKind::Invalid);
    assert_eq!(at(&e), (4, 7), "{e}");

    let e = load_err("[[site]]\nname = \"a\"\nlocal = \"l\"\nport = 70000\n");
    assert_eq!(at(&e), (4, 8), "{e}");

    let e = load_err("[[site]]\nname = \"a\"\nlocal = \"l\"\nmax_connections = 0\n");
    assert_eq!(at(&e), (4, 19), "{e}");

    let e = load_err("[[site]]\nname = \"a\"\nlocal = \"l\"\nswitch = \"sideways\"\n");
    assert_eq!(e.kind(), ConfigErrorKind::Invalid);
    assert_eq!(at(&e), (4, 10), "{e}");
    assert!(e.to_string().contains("switch"), "{e}");
    assert!(e.to_string().contains("bad.toml"), "{e}");
    let e = load_err("[[site]]\nname = \"a\"\nlocal = \"l\"\nswitch = true\n");
    assert_eq!(at(&e), (4, 10), "{e}");

    let e =
        load_err("[[site]]\nname = \"a\"\nlocal = \"l\"\n[[site]]\nname = \"a\"\nlocal = \"m\"\n");
    assert_eq!(e.kind(), ConfigErrorKind::Invalid);
    assert_eq!(at(&e), (5, 8), "{e}");
    assert!(e.to_string().contains("first at"), "{e}");

    let e = load_err("[[site]]\nname = \"a\"\n");
    assert!(e.to_string().contains("no `local`"), "{e}");

    let e = load_err("[[site]]\nname = \"a\"\nlocal = \"l\"\ncredential = \"Bad Name\"\n");
    assert_eq!(at(&e), (4, 14), "{e}");

    let e = load_err("[credentials]\nbackend = \"nope\"\n");
    assert_eq!(e.kind(), ConfigErrorKind::Invalid);
    assert_eq!(at(&e), (2, 11), "{e}");
    assert!(
        e.to_string().contains("unknown credential backend 'nope'"),
        "{e}"
    );
    let e = load_err("[credentials]\nbackend = [\"env\", \"env\"]\n");
    assert!(e.to_string().contains("appears twice"), "{e}");
    let e = load_err("[credentials]\nbackend = 3\n");
    assert!(e.to_string().contains("a backend name or a list"), "{e}");

    let e = load_err("[[site]]\nname = \"a\"\nlocal = \"l\"\nport = \"ftp\"\n");
    assert_eq!(e.kind(), ConfigErrorKind::Invalid);
    assert_eq!(at(&e), (4, 8), "{e}");

    let e = load_err(
        "[[site]]\nname = \"a\"\nlocal = \"l\"\ncredential = \"a\"\npassword = \"literal-secret-pw\"\n",
    );
    assert!(
        e.to_string().contains("both `credential` and `password`"),
        "{e}"
    );
    assert!(!format!("{e:?}").contains("literal-secret-pw"));

    let e = load_err("[[site]]\nname = \"a\"\nlocal = \"l\"\npassword = 987654321\n");
    assert_eq!(at(&e), (4, 12), "{e}");
    assert!(
        e.to_string().contains("must be a string, not integer"),
        "{e}"
    );
    assert!(!format!("{e:?}").contains("987654321"), "{e:?}");
}

#[test]
fn malformed_references_fail_loading_at_their_column() {
    let e = load_err("[[site]]\nname = \"a\"\nlocal = \"l\"\nhost = \"ftp.${HOST\"\n");
    assert_eq!(e.kind(), ConfigErrorKind::Reference);
    assert_eq!(at(&e), (4, 13), "{e}");
    assert!(e.to_string().contains("unterminated"), "{e}");

    let e = load_err("[[site]]\nname = \"a\"\nlocal = \"l\"\nuser = \"${vault:x}\"\n");
    assert!(
        e.to_string().contains("unknown reference kind 'vault'"),
        "{e}"
    );
    assert_eq!(at(&e), (4, 11), "{e}");

    // With escapes in the literal, the location falls back to the start of the value.
    let e =
        load_err("[[site]]\nname = \"a\"\nlocal = \"l\"\nuser = \"\\u0041${cred:acme#nope}\"\n");
    assert_eq!(at(&e), (4, 8), "{e}");

    let e = load_err("[[site]]\nname = \"a\"\nlocal = \"l\"\nhost = \"${cred:acme#password}\"\n");
    assert!(
        e.to_string().contains("may only be used in `password`"),
        "{e}"
    );

    let e = load_err("[credentials.file]\npath = \"${cred:x}\"\n");
    assert!(e.to_string().contains("not allowed here"), "{e}");
    let e = load_err("[credentials.dir]\nroot = \"${NOPE}/x\"\n");
    assert_eq!(at(&e), (2, 9), "{e}");
}

#[tokio::test]
async fn literal_passwords_and_missing_pieces() {
    let t = tempfile::tempdir().unwrap();
    let path = write(
        t.path(),
        "c.toml",
        "[[site]]\nname = \"lit\"\nhost = \"h\"\nuser = \"u\"\npassword = \"pa$$word\"\nlocal = \"l\"\n\n\
         [[site]]\nname = \"nopw\"\nhost = \"h\"\nuser = \"u\"\nlocal = \"l\"\n\n\
         [[site]]\nname = \"nohost\"\ncredential = \"c\"\nlocal = \"l\"\n\n\
         [[site]]\nname = \"noport\"\nhost = \"h\"\nport = \"${cred:c#port}\"\ncredential = \"c\"\nlocal = \"l\"\n",
    );
    let cfg = Config::load_with_env(&path, &env_of(&[])).unwrap();
    assert!(cfg.site("lit").unwrap().has_literal_password());
    assert!(!format!("{:?}", cfg.site("lit").unwrap()).contains("pa$$word"));
    assert!(!format!("{cfg:?}").contains("pa$$word"), "{cfg:?}");
    let b = memory_with(&[cred("c", "u", "c-pw")]).await;
    let env = env_of(&[]);
    let r = cfg.resolve_site("lit", &b, &env).await.unwrap();
    assert_eq!(r.password.expose_secret(), "pa$word");

    let e = cfg.resolve_site("nopw", &b, &env).await.unwrap_err();
    assert_eq!(exit_code(&e), crate::exit::CREDENTIAL);
    assert!(
        e.hint_text()
            .unwrap()
            .contains("siteport credential add nopw"),
        "{e:?}"
    );

    let e = cfg.resolve_site("nohost", &b, &env).await.unwrap_err();
    assert!(e.to_string().contains("has no host"), "{e}");
    assert_eq!(at(&e).0, 15, "{e}");

    let e = cfg.resolve_site("noport", &b, &env).await.unwrap_err();
    assert!(e.to_string().contains("credential 'c' has no port"), "{e}");
    assert_eq!(exit_code(&e), crate::exit::CREDENTIAL);
}

#[tokio::test]
async fn resolution_can_run_on_a_spawned_task() {
    let t = tempfile::tempdir().unwrap();
    let path = write(t.path(), "siteport.toml", FULL);
    let cfg =
        std::sync::Arc::new(Config::load_with_env(&path, &env_of(&[("KEYS", "/k")])).unwrap());
    let b = std::sync::Arc::new(memory_with(&[cred("acme", "u", "spawned-pw")]).await);
    // The CLI resolves sites concurrently on tokio tasks: the future must be Send.
    let task = tokio::spawn(async move {
        let env = env_of(&[]);
        cfg.resolve_site("acme", b.as_ref(), &env)
            .await
            .map(|r| r.username)
    });
    assert_eq!(task.await.unwrap().unwrap(), "u");
}

#[tokio::test]
async fn legacy_url_sites() {
    let t = tempfile::tempdir().unwrap();
    let path = write(
        t.path(),
        "c.toml",
        "[[site]]\nname = \"u\"\nurl = \"ftp://bob:p%40ss:w$$rd@ftp.example:2121/www/html\"\nlocal = \"l\"\n\n\
         [[site]]\nname = \"s\"\nurl = \"ftps://[::1]\"\ncredential = \"c\"\nlocal = \"l\"\n",
    );
    let cfg = Config::load_with_env(&path, &env_of(&[])).unwrap();
    let site = cfg.site("u").unwrap();
    assert!(site.password_in_url());
    assert!(!format!("{cfg:?}").contains("w$rd"), "{cfg:?}");
    assert!(!cfg.site("s").unwrap().password_in_url());
    let b = memory_with(&[cred("c", "cu", "c-pw")]).await;
    let env = env_of(&[]);
    let r = cfg.resolve_site("u", &b, &env).await.unwrap();
    assert_eq!(
        (
            r.host.as_str(),
            r.port,
            r.username.as_str(),
            r.remote.as_str()
        ),
        ("ftp.example", 2121, "bob", "/www/html")
    );
    assert_eq!(r.password.expose_secret(), "p@ss:w$rd");
    assert_eq!(r.tls, TlsMode::Explicit);
    let r = cfg.resolve_site("s", &b, &env).await.unwrap();
    assert_eq!(
        (r.host.as_str(), r.port, r.tls),
        ("::1", 990, TlsMode::Implicit)
    );
    assert_eq!((r.username.as_str(), r.remote.as_str()), ("cu", "/"));

    for (bad, needle) in [
        (
            "url = \"ftp://u:secretpw@h\"\nhost = \"h\"",
            "both `url` and `host`",
        ),
        (
            "url = \"ftp://u:secretpw@h\"\ncredential = \"c\"",
            "both `credential` and a password",
        ),
        ("url = \"http://u:secretpw@h\"", "scheme"),
        ("url = \"ftp://u:secretpw@h:99999\"", "port"),
        (
            "url = \"ftps://u:secretpw@h\"\ntls = \"none\"",
            "implicit TLS",
        ),
    ] {
        let e = load_err(&format!("[[site]]\nname = \"x\"\nlocal = \"l\"\n{bad}\n"));
        assert!(e.to_string().contains(needle), "{bad}: {e}");
        assert!(!format!("{e:?}").contains("secretpw"), "{e:?}");
        assert!(e.location().is_some(), "{e}");
    }
}

#[test]
fn azure_table_is_parsed_into_settings() {
    let t = tempfile::tempdir().unwrap();
    let path = write(
        t.path(),
        "az.toml",
        "[credentials]\nbackend = \"azure\"\n\n[credentials.azure]\nvault_url = \"https://myvault.vault.azure.net/\"\nprefix = \"web-\"\nauth = \"workload_identity\"\npurge_on_delete = true\nca_cert = \"certs/ca.pem\"\nmax_attempts = 5\n",
    );
    let cfg = Config::load_with_env(&path, &env_of(&[])).unwrap();
    let az = &cfg.credentials.settings.azure;
    assert_eq!(
        az.vault_url.as_deref(),
        Some("https://myvault.vault.azure.net/")
    );
    assert_eq!(az.prefix.as_deref(), Some("web-"));
    assert_eq!(az.auth.as_deref(), Some("workload_identity"));
    assert!(az.purge_on_delete);
    assert_eq!(az.max_attempts, Some(5));
    // Relative to the config file, like every path in it.
    assert_eq!(
        az.ca_cert.as_deref(),
        Some(t.path().join("certs/ca.pem").as_path())
    );

    let e = load_err("[credentials.azure]\nvault = \"x\"\n");
    assert!(e.to_string().contains("credentials.azure"), "{e}");
    assert!(e.to_string().contains("vault"), "{e}");
}

/// A backend that counts the `get` calls it answers.
#[derive(Debug)]
struct CountingBackend {
    inner: MemoryBackend,
    gets: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl CredentialBackend for CountingBackend {
    fn kind(&self) -> BackendKind {
        self.inner.kind()
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn is_writable(&self) -> bool {
        false
    }
    async fn get(&self, name: &CredentialName) -> siteport_creds::Result<Credential> {
        self.gets.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.get(name).await
    }
    async fn store(&self, cred: &Credential, mode: StoreMode) -> siteport_creds::Result<()> {
        self.inner.store(cred, mode).await
    }
    async fn delete(&self, name: &CredentialName) -> siteport_creds::Result<()> {
        self.inner.delete(name).await
    }
    async fn list(&self) -> siteport_creds::Result<Vec<siteport_creds::CredentialInfo>> {
        self.inner.list().await
    }
    async fn check(&self) -> siteport_creds::Result<siteport_creds::Health> {
        self.inner.check().await
    }
}

#[tokio::test]
async fn each_credential_is_fetched_once_per_resolution() {
    let text = r#"
[[site]]
name = "one"
host = "${cred:acme#host}"
username = "${cred:acme#username}"
credential = "acme"
local = "."

[[site]]
name = "two"
host = "${cred:acme#host}"
username = "${cred:acme#username}"
password = "${cred:acme}"
local = "."
"#;
    let cfg = Config::parse(text, Path::new("/c/siteport.toml"), &env_of(&[])).unwrap();
    let acme = cred("acme", "acme-user", "acme-pw-123")
        .with_host("cred.acme.example")
        .unwrap();
    let backend = CountingBackend {
        inner: memory_with(&[acme]).await,
        gets: 0.into(),
    };
    let count = || backend.gets.load(std::sync::atomic::Ordering::SeqCst);
    for site in ["one", "two"] {
        let before = count();
        let r = cfg
            .resolve_site(site, &backend, &env_of(&[]))
            .await
            .unwrap();
        assert_eq!(r.host, "cred.acme.example", "site {site}");
        assert_eq!(r.username, "acme-user", "site {site}");
        assert_eq!(r.password.expose_secret(), "acme-pw-123", "site {site}");
        assert_eq!(
            count() - before,
            1,
            "site {site}: three references to one credential, one backend call"
        );
    }
    // Each resolution asks again: nothing outlives it.
    cfg.resolve_site("one", &backend, &env_of(&[]))
        .await
        .unwrap();
    assert_eq!(count(), 3);
}

/// `state_dir`: its form is refused at its own column; once `remote` is known, an absolute
/// one under it is made relative (inside the web root), one beside it stays absolute, and one
/// equal to it is refused at the key.
#[tokio::test]
async fn state_dir_is_checked_and_placed() {
    for (value, why) in [
        ("../state", "`..`"),
        ("", "empty"),
        ("/", "root directory"),
        ("a//b", "empty component"),
    ] {
        let e = load_err(&format!(
            "[[site]]\nname = \"a\"\nlocal = \"l\"\nstate_dir = \"{value}\"\n"
        ));
        assert_eq!(e.kind(), ConfigErrorKind::Invalid, "{e}");
        assert_eq!(exit_code(&e), crate::exit::USAGE, "{e}");
        assert_eq!(at(&e), (4, 13), "{value:?}: {e}");
        assert!(e.to_string().contains("state_dir"), "{e}");
        assert!(e.to_string().contains(why), "{value:?}: {e}");
    }
    let t = tempfile::tempdir().unwrap();
    let b = memory_with(&[]).await;
    let env = env_of(&[]);
    for (remote, value, want) in [
        ("/htdocs", None, Ok(".siteport")),
        ("/htdocs", Some("/private/acme"), Ok("/private/acme")),
        ("/htdocs", Some("/htdocs/.deploy/"), Ok(".deploy")),
        ("/htdocs", Some("meta/state"), Ok("meta/state")),
        ("/htdocs", Some("/htdocs"), Err((7, 13))),
    ] {
        let line = value.map_or(String::new(), |v| format!("state_dir = \"{v}\"\n"));
        let path = write(
            t.path(),
            "c.toml",
            &format!(
                "[[site]]\nname = \"a\"\nhost = \"h\"\nuser = \"u\"\npassword = \"p\"\nremote = \"{remote}\"\n{line}local = \"l\"\n"
            ),
        );
        let cfg = Config::load_with_env(&path, &env).unwrap();
        match (cfg.resolve_site("a", &b, &env).await, want) {
            (Ok(r), Ok(w)) => assert_eq!(r.state_dir, w, "{value:?}"),
            (Err(e), Err(loc)) => {
                assert_eq!(at(&e), loc, "{e}");
                assert!(e.to_string().contains("remote root itself"), "{e}");
            }
            (got, w) => panic!("{value:?}: {:?} wanted {w:?}", got.map(|r| r.state_dir)),
        }
    }
}
