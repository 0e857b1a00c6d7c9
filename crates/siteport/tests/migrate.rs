//! `siteport migrate` against real files and the real file backend in a sandboxed HOME.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use common::*;
use siteport::config::Config;
use siteport_creds::reference::NotUnicode;
use siteport_creds::{
    BackendKind, BackendSettings, BackendSpec, CredentialBackend, ExposeSecret, FileSettings,
    NoPrompter, open_backend,
};

const FIVE: &str = include_str!("fixtures/five-sites.toml");
const CI_PW: &str = "Ci-From-Env-77";
const SECRETS: [&str; 5] = [
    "Acme-Hunter2!",
    "Blog$Quote\"Pw",
    "Sh@p-Secret9",
    "Sh%40p-Secret9",
    CI_PW,
];

fn init_store(sb: &Sandbox) {
    assert_code(&sb.run(&["credential", "init"], "", &[]), 0);
    let o = sb.run(
        &[
            "credential",
            "add",
            "done",
            "-u",
            "done-user",
            "--password-stdin",
        ],
        "Done-pw-1\n",
        &[],
    );
    assert_code(&o, 0);
}

fn backend(sb: &Sandbox) -> Box<dyn CredentialBackend> {
    let settings = BackendSettings {
        file: FileSettings {
            path: Some(sb.store()),
            identity: Some(sb.identity()),
            passphrase_command: None,
            ..Default::default()
        },
        ..Default::default()
    };
    open_backend(
        &BackendSpec::Single(BackendKind::File),
        &settings,
        Arc::new(NoPrompter),
    )
    .unwrap()
}

fn env(var: &str) -> Result<Option<String>, NotUnicode> {
    Ok((var == "CI_FTP_PASSWORD").then(|| CI_PW.to_owned()))
}

/// Every site resolved: (host, port, tls, username, password, remote).
fn resolve_all(sb: &Sandbox, path: &Path) -> BTreeMap<String, String> {
    let cfg = Config::load_with_env(path, &env).unwrap();
    let b = backend(sb);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut out = BTreeMap::new();
        for (name, r) in cfg.resolve_all(b.as_ref(), &env).await {
            let r = r.unwrap_or_else(|e| panic!("{name}: {e}"));
            out.insert(
                name,
                format!(
                    "{} {} {} {} {} {}",
                    r.host,
                    r.port,
                    r.tls,
                    r.username,
                    r.password.expose_secret(),
                    r.remote
                ),
            );
        }
        out
    })
}

fn write_config(sb: &Sandbox) -> std::path::PathBuf {
    let p = sb.workdir().join("siteport.toml");
    std::fs::write(&p, FIVE).unwrap();
    p
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn five_sites_migrate_only_their_keys_and_resolve_the_same() {
    let sb = Sandbox::new();
    init_store(&sb);
    let cfg = write_config(&sb);
    let before = resolve_all(&sb, &cfg);
    assert_eq!(before.len(), 5);

    let o = sb.run(&["migrate", "--yes"], "", &[("CI_FTP_PASSWORD", CI_PW)]);
    assert_code(&o, 0);
    let out = stdout(&o) + &stderr(&o);
    for s in SECRETS {
        assert!(!out.contains(s), "secret in output:\n{out}");
    }
    assert!(out.contains("stored 3 credential(s)"), "{out}");

    let after_text = std::fs::read_to_string(&cfg).unwrap();
    // Only the migrated keys differ: two password lines and one url line changed, one
    // credential line added after the url.
    let diff = similar::TextDiff::from_lines(FIVE, after_text.as_str());
    let mut removed = Vec::new();
    let mut added = Vec::new();
    for c in diff.iter_all_changes() {
        match c.tag() {
            similar::ChangeTag::Delete => removed.push(c.value().to_owned()),
            similar::ChangeTag::Insert => added.push(c.value().to_owned()),
            similar::ChangeTag::Equal => {}
        }
    }
    assert_eq!(
        removed,
        [
            "password = \"Acme-Hunter2!\"    # TODO: move into the store\n",
            "password = 'Blog$$Quote\"Pw'\n",
            "url = \"ftp://shopper:Sh%40p-Secret9@ftp.shop.example:2100/www/shop\"   # legacy\n",
        ]
    );
    assert_eq!(
        added,
        [
            "credential = \"acme\"    # TODO: move into the store\n",
            "credential = \"blog-site\"\n",
            "url = \"ftp://ftp.shop.example:2100/www/shop\"   # legacy\n",
            "credential = \"shop\"\n",
        ]
    );
    assert_eq!(resolve_all(&sb, &cfg), before);

    let backups: Vec<String> = files_in(&sb.workdir())
        .into_iter()
        .filter(|f| f.ends_with(".bak"))
        .collect();
    assert_eq!(backups.len(), 1, "{backups:?}");
    let backup = sb.workdir().join(&backups[0]);
    assert_eq!(mode(&backup), 0o600);
    assert_eq!(std::fs::read_to_string(&backup).unwrap(), FIVE);
    assert!(out.contains(&backups[0]), "backup path not shown: {out}");

    // A second run has nothing to do and touches nothing.
    let o = sb.run(&["migrate", "--yes", "--json"], "", &[]);
    assert_code(&o, 0);
    let j = json(&o);
    assert_eq!(j["changed"], false);
    assert_eq!(j["stored"].as_array().unwrap().len(), 0);
    assert_eq!(std::fs::read_to_string(&cfg).unwrap(), after_text);
    assert_eq!(files_in(&sb.workdir()).len(), 2);
}

#[test]
fn dry_run_changes_no_byte_and_prints_no_secret() {
    let sb = Sandbox::new();
    init_store(&sb);
    let cfg = write_config(&sb);
    let store_before = std::fs::read(sb.store()).unwrap();
    let o = sb.run(
        &["migrate", "--dry-run", "--from-env", "-vvv"],
        "",
        &[("CI_FTP_PASSWORD", CI_PW)],
    );
    assert_code(&o, 0);
    let out = stdout(&o);
    let all = out.clone() + &stderr(&o);
    for s in SECRETS {
        assert!(!all.contains(s), "secret {s:?} in output:\n{all}");
    }
    assert!(out.contains("-password = \"****\""), "{out}");
    assert!(out.contains("+credential = \"acme\""), "{out}");
    assert!(out.contains("+credential = \"ci\""), "{out}");
    assert!(out.contains("ftp://shopper:****@"), "{out}");
    assert!(out.contains("dry run: nothing was changed"), "{out}");
    assert_eq!(std::fs::read_to_string(&cfg).unwrap(), FIVE);
    assert_eq!(std::fs::read(sb.store()).unwrap(), store_before);
    assert_eq!(files_in(&sb.workdir()), ["siteport.toml"]);
}

#[test]
fn from_env_moves_the_variable_value() {
    let sb = Sandbox::new();
    init_store(&sb);
    let cfg = write_config(&sb);
    let before = resolve_all(&sb, &cfg);
    let o = sb.run(
        &["migrate", "--yes", "--from-env"],
        "",
        &[("CI_FTP_PASSWORD", CI_PW)],
    );
    assert_code(&o, 0);
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(!text.contains("CI_FTP_PASSWORD"), "{text}");
    assert!(text.contains("credential = \"ci\""), "{text}");
    assert_eq!(resolve_all(&sb, &cfg), before);
}

#[test]
fn read_only_env_backend_fails_before_touching_anything() {
    let sb = Sandbox::new();
    init_store(&sb);
    let cfg = write_config(&sb);
    let store_before = std::fs::read(sb.store()).unwrap();
    let o = sb.run(&["migrate", "--yes", "--backend", "env"], "", &[]);
    assert_code(&o, 3);
    let err = stderr(&o);
    assert!(
        err.contains("env backend") && err.contains("read-only"),
        "{err}"
    );
    assert!(err.contains("--backend file"), "{err}");
    assert!(err.contains("nothing was changed"), "{err}");
    assert_eq!(std::fs::read_to_string(&cfg).unwrap(), FIVE);
    assert_eq!(std::fs::read(sb.store()).unwrap(), store_before);
    assert_eq!(files_in(&sb.workdir()), ["siteport.toml"]);
}

#[test]
fn without_a_terminal_it_asks_for_yes() {
    let sb = Sandbox::new();
    init_store(&sb);
    let cfg = write_config(&sb);
    let o = sb.run(&["migrate"], "", &[]);
    assert_code(&o, 2);
    assert!(stderr(&o).contains("--yes"), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&cfg).unwrap(), FIVE);
}

#[test]
fn a_taken_name_gets_a_suffix_and_an_identical_one_is_reused() {
    let sb = Sandbox::new();
    init_store(&sb);
    let cfg = write_config(&sb);
    // `acme` exists with another password: never overwritten. `shop` holds the same login.
    let o = sb.run(
        &[
            "credential",
            "add",
            "acme",
            "-u",
            "someone",
            "--password-stdin",
        ],
        "Other-pw-5\n",
        &[],
    );
    assert_code(&o, 0);
    let o = sb.run(
        &[
            "credential",
            "add",
            "shop",
            "-u",
            "shopper",
            "--password-stdin",
        ],
        "Sh@p-Secret9\n",
        &[],
    );
    assert_code(&o, 0);
    let before = resolve_all(&sb, &cfg);
    let o = sb.run(&["migrate", "--yes", "--json"], "", &[]);
    assert_code(&o, 0);
    let j = json(&o);
    assert_eq!(j["stored"], serde_json::json!(["acme-2", "blog-site"]));
    assert_eq!(j["reused"], serde_json::json!(["shop"]));
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(text.contains("credential = \"acme-2\""), "{text}");
    assert_eq!(resolve_all(&sb, &cfg), before);
    let o = sb.run(&["credential", "show", "acme"], "", &[]);
    assert!(stdout(&o).contains("someone"), "{}", stdout(&o));
}

#[test]
fn filezilla_sites_are_appended_and_passwords_stored() {
    let sb = Sandbox::new();
    init_store(&sb);
    let cfg = sb.workdir().join("siteport.toml");
    std::fs::write(&cfg, "# my sites\n[credentials]\nbackend = \"file\"\n").unwrap();
    let xml = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sitemanager.xml");
    let xml = xml.to_str().unwrap();
    let o = sb.run(&["migrate", "--from-filezilla", xml, "--dry-run"], "", &[]);
    assert_code(&o, 0);
    assert!(!stdout(&o).contains("plain-Beta-pw"), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("+name = \"clients-acme-corp-acme-web\""),
        "{}",
        stdout(&o)
    );
    let o = sb.run(
        &["migrate", "--from-filezilla", xml, "--yes", "--json"],
        "",
        &[],
    );
    assert_code(&o, 0);
    let j = json(&o);
    assert_eq!(
        j["stored"],
        serde_json::json!(["clients-acme-corp-acme-web", "clients-beta"])
    );
    let sites = j["sites"].as_array().unwrap();
    assert_eq!(sites.len(), 3);
    assert!(
        sites[2]["note"].as_str().unwrap().contains("no password"),
        "{j}"
    );
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(
        text.starts_with("# my sites\n[credentials]\nbackend = \"file\"\n"),
        "{text}"
    );
    let got = resolve_all_partial(&sb, &cfg);
    assert_eq!(
        got["clients-acme-corp-acme-web"],
        "ftp.acme.example 21 explicit acme FZ-Zilla-Acme! /home/www"
    );
    assert_eq!(
        got["clients-beta"],
        "ftp.beta.example 990 implicit beta plain-Beta-pw /"
    );
    assert!(got["no-password"].starts_with("error"), "{got:?}");
    assert!(
        text.contains(
            "host = \"ftp.nopass.example\"\nport = 2121\ntls = \"none\"\nuser = \"guest\""
        ),
        "{text}"
    );
    // Re-import: nothing new.
    let o = sb.run(
        &["migrate", "--from-filezilla", xml, "--yes", "--json"],
        "",
        &[],
    );
    assert_code(&o, 0);
    assert_eq!(json(&o)["changed"], false);
    assert_eq!(std::fs::read_to_string(&cfg).unwrap(), text);
}

/// Like [`resolve_all`], but a site that fails shows `error: …`.
fn resolve_all_partial(sb: &Sandbox, path: &Path) -> BTreeMap<String, String> {
    let cfg = Config::load_with_env(path, &env).unwrap();
    let b = backend(sb);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut out = BTreeMap::new();
        for (name, r) in cfg.resolve_all(b.as_ref(), &env).await {
            let v = match r {
                Ok(r) => format!(
                    "{} {} {} {} {} {}",
                    r.host,
                    r.port,
                    r.tls,
                    r.username,
                    r.password.expose_secret(),
                    r.remote
                ),
                Err(e) => format!("error: {e}"),
            };
            out.insert(name, v);
        }
        out
    })
}

#[test]
fn netrc_logins_become_credentials() {
    let sb = Sandbox::new();
    init_store(&sb);
    let netrc = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/netrc");
    let netrc = netrc.to_str().unwrap();
    let o = sb.run(
        &["migrate", "--from-netrc", netrc, "--yes", "--json"],
        "",
        &[],
    );
    assert_code(&o, 0);
    let j = json(&o);
    assert_eq!(
        j["stored"],
        serde_json::json!(["ftp.one.example", "ftp.two.example"])
    );
    let actions: Vec<&str> = j["sites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["migrated", "migrated", "skipped", "skipped"]);
    let o = sb.run(
        &["credential", "show", "ftp.two.example", "--reveal"],
        "",
        &[],
    );
    assert_code(&o, 0);
    let out = stdout(&o);
    assert!(out.contains("Netrc-Two-pw") && out.contains("two"), "{out}");
    assert!(out.contains("ftp.two.example"), "{out}");
    // Again: identical logins are recognised, nothing stored.
    let o = sb.run(
        &["migrate", "--from-netrc", netrc, "--yes", "--json"],
        "",
        &[],
    );
    assert_code(&o, 0);
    assert_eq!(json(&o)["stored"], serde_json::json!([]));
}

/// A hard-coded password and a url with userinfo, migrated, then a real export/import cycle
/// against the in-process FTP server with the rewritten config.
#[test]
fn export_import_cycle_on_a_migrated_config() {
    use siteport_testsupport::{FtpServer, ServerKind};
    let server = FtpServer::start(ServerKind::InProcess, false);
    let sb = Sandbox::new();
    assert_code(&sb.run(&["credential", "init"], "", &[]), 0);
    let pw = server.password.expose_secret().to_owned();
    let enc: String = pw
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let toml_pw = pw
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('$', "$$");
    let text = format!(
        "# cycle\n[[site]]\nname = \"web\"\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\n\
         user = \"{user}\"\npassword = \"{toml_pw}\"\nlocal = \"public\"\nremote = \"/htdocs\"\n\n\
         [[site]]\nname = \"copy\"\nurl = \"ftp://{user}:{enc}@127.0.0.1:{port}/htdocs\"\n\
         tls = \"none\"\nlocal = \"copy\"\n",
        port = server.port,
        user = server.user,
    );
    let cfg = sb.workdir().join("siteport.toml");
    std::fs::write(&cfg, &text).unwrap();
    let o = sb.run(&["migrate", "--yes"], "", &[]);
    assert_code(&o, 0);
    let migrated = std::fs::read_to_string(&cfg).unwrap();
    assert!(
        !migrated.contains(&toml_pw) && !migrated.contains(&enc),
        "{migrated}"
    );
    assert!(migrated.contains("credential = \"web\""), "{migrated}");

    let local = sb.workdir().join("public");
    std::fs::create_dir_all(local.join("css")).unwrap();
    std::fs::write(local.join("index.html"), "<h1>migrated</h1>\n").unwrap();
    std::fs::write(local.join("css/site.css"), "body{}\n").unwrap();
    let o = sb.run(&["export", "web"], "", &[]);
    assert_code(&o, 0);
    assert_eq!(
        std::fs::read(server.root().join("htdocs/css/site.css")).unwrap(),
        b"body{}\n"
    );
    let o = sb.run(&["import", "copy"], "", &[]);
    assert_code(&o, 0);
    assert_eq!(
        std::fs::read(sb.workdir().join("copy/index.html")).unwrap(),
        b"<h1>migrated</h1>\n"
    );
    let all = stdout(&o) + &stderr(&o);
    assert!(!all.contains(&pw), "{all}");
}

/// FileZilla SFTP servers (protocol 1): a password site and a key file site become
/// `protocol = "sftp"` sites, the password and the key itself go into the store; an encrypted
/// key (FileZilla keeps no passphrase) is imported without a credential and a missing key file
/// skips its site, both said. Then both sites export to a real sshd with the migrated config.
#[test]
fn filezilla_sftp_sites_import_with_password_and_key_and_export() {
    use base64::Engine as _;
    use siteport_testsupport::SshServer;
    let s = SshServer::start();
    let sb = Sandbox::new();
    init_store(&sb);
    let pw = s.password.expose_secret().to_owned();
    let xml = include_str!("fixtures/sitemanager-sftp.xml")
        .replace("@PORT@", &s.port.to_string())
        .replace("@USER@", &s.user)
        .replace(
            "@PASS64@",
            &base64::engine::general_purpose::STANDARD.encode(&pw),
        )
        .replace("@KEYFILE@", &s.key_path.to_string_lossy())
        .replace(
            "@ENCRYPTEDKEYFILE@",
            &s.encrypted_key_path.to_string_lossy(),
        );
    let xml_path = sb.path("sitemanager.xml");
    std::fs::write(&xml_path, xml).unwrap();
    let xml_path = xml_path.to_str().unwrap();
    let cfg = sb.workdir().join("siteport.toml");

    let o = sb.run(
        &[
            "migrate",
            "--from-filezilla",
            xml_path,
            "--yes",
            "--json",
            "-vvv",
        ],
        "",
        &[],
    );
    assert_code(&o, 0);
    let all = stdout(&o) + &stderr(&o);
    assert!(!all.contains(&pw), "password in output");
    let key_text = std::fs::read_to_string(&s.key_path).unwrap();
    for line in key_text.lines().filter(|l| !l.starts_with("-----")) {
        assert!(!all.contains(line), "a key line in output: {line}");
    }
    let j = json(&o);
    assert_eq!(
        j["stored"],
        serde_json::json!(["ssh-pw-site", "ssh-key-site"])
    );
    let by_name = |n: &str| {
        j["sites"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["site"] == n)
            .unwrap_or_else(|| panic!("no {n} in {j}"))
            .clone()
    };
    assert_eq!(by_name("ssh-pw-site")["action"], "migrated", "{j}");
    assert_eq!(by_name("ssh-key-site")["action"], "migrated", "{j}");
    assert!(
        by_name("ssh-key-site")["note"]
            .as_str()
            .unwrap()
            .contains("siteport site trust ssh-key-site"),
        "{j}"
    );
    let locked = by_name("locked-key");
    assert_eq!(locked["action"], "migrated", "{j}");
    let note = locked["note"].as_str().unwrap();
    assert!(
        note.contains("encrypted") && note.contains("--ssh-key"),
        "{note}"
    );
    let gone = by_name("gone-key");
    assert_eq!(gone["action"], "skipped", "{j}");
    let note = gone["note"].as_str().unwrap();
    assert!(
        note.contains("/nonexistent/siteport-test/id_ed25519") && note.contains("cannot open"),
        "{note}"
    );

    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(
        text.contains(&format!(
            "name = \"ssh-key-site\"\nhost = \"127.0.0.1\"\nport = {}\nprotocol = \"sftp\"\n\
             credential = \"ssh-key-site\"\n",
            s.port
        )),
        "{text}"
    );
    assert!(
        text.contains("host = \"sftp.locked.example\"\nprotocol = \"sftp\"\nuser = \"locked\""),
        "{text}"
    );
    assert!(!text.contains("tls"), "{text}");
    assert!(!text.contains("gone"), "{text}");
    let o = sb.run(&["credential", "show", "ssh-key-site"], "", &[]);
    assert_code(&o, 0);
    assert!(stdout(&o).contains("ssh key:  stored"), "{}", stdout(&o));

    // The migrated sites work: trust the host key, then export with the password and the key.
    for site in ["ssh-pw-site", "ssh-key-site"] {
        let local = sb.workdir().join(format!("sites/{site}"));
        std::fs::create_dir_all(&local).unwrap();
        std::fs::write(local.join(format!("{site}.html")), site).unwrap();
        assert_code(&sb.run(&["site", "trust", site, "--yes"], "", &[]), 0);
        let o = sb.run(&["export", site], "", &[]);
        assert_code(&o, 0);
        assert_eq!(
            std::fs::read(s.root().join(format!("{site}.html"))).unwrap(),
            site.as_bytes()
        );
    }
    let log = s.auth_attempts().join("\n");
    assert!(log.contains("Accepted password"), "{log}");
    assert!(log.contains("Accepted publickey"), "{log}");
}
