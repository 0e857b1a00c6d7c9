//! SFTP sites through the real binary against OpenSSH's sshd (chrooted internal-sftp, see
//! `siteport_testsupport::SshServer`) and, for the tests every server must pass (`sshd::…`,
//! `proftpd::…`), proftpd's mod_sftp: export, no-change re-export, same-size edit and import
//! with a password from the env backend; an unknown or changed host key refused (exit 6,
//! nothing sent, no authentication) until `site trust`; a wrong password or key (exit 4).
//! Against sshd only: key login with the key (and its passphrase) from the file store, FTPS
//! keys on an SFTP site (exit 2 at their place), and no secret at `-vvv`. And an import from
//! a hostile server (`HostileSftpServer`): its bad names refused and reported, exit 5.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{Sandbox, assert_code, json, mode, stderr, stdout};
use secrecy::ExposeSecret;
use siteport_testsupport::{
    HOSTILE_SFTP_FILES, HOSTILE_SFTP_LINK, HOSTILE_SFTP_NAMES, HostileSftpServer, SftpServerKind,
    SshServer,
};

siteport_testsupport::sftp_server_tests! {
    sync:
        export_reexport_edit_and_import_with_a_password_from_env,
        unknown_host_key_exits_6_until_site_trust_known_hosts,
        a_wrong_password_or_key_exits_4;
}

/// The env backend's variables for credential `web`: the server's user and password.
fn password_env(s: &SshServer) -> Vec<(String, String)> {
    vec![
        ("SITEPORT_CRED_WEB_USERNAME".into(), s.user.clone()),
        (
            "SITEPORT_CRED_WEB_PASSWORD".into(),
            s.password.expose_secret().to_owned(),
        ),
    ]
}

/// A config with SFTP site `web` (`public` → `/site`), the credential backend `backend`, and
/// `extra` keys (host-key settings).
fn write_config(sb: &Sandbox, s: &SshServer, backend: &str, extra: &str) {
    let text = format!(
        "[credentials]\nbackend = \"{backend}\"\n\n[[site]]\nname = \"web\"\nprotocol = \"sftp\"\n\
         host = \"127.0.0.1\"\nport = {}\ncredential = \"web\"\nlocal = \"public\"\n\
         remote = \"{}\"\n{extra}\n",
        s.port,
        s.remote_root()
    );
    std::fs::write(sb.workdir().join("siteport.toml"), text).unwrap();
}

/// `known_hosts = "<the fixture's file>"`: the server is trusted.
fn trusted(s: &SshServer) -> String {
    format!("known_hosts = \"{}\"\n", s.known_hosts_file.display())
}

fn run(sb: &Sandbox, args: &[&str], env: &[(String, String)]) -> Output {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    sb.run(args, "", &env)
}

fn uploaded(o: &Output) -> u64 {
    let v = json(o);
    v["sites"][0]["report"]["counts"]["uploaded"]
        .as_u64()
        .unwrap_or_else(|| panic!("no report in {v}\nstderr: {}", stderr(o)))
}

fn write_site(root: &Path) {
    for (rel, body) in [
        ("index.html", "<h1>home</h1>\n"),
        ("empty.txt", ""),
        ("a/b/c/deep.css", "body { color: red }\n"),
        ("odd name with spaces & ü.html", "odd\n"),
    ] {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    }
}

/// Every file under `root` (the deploy state and temp names left out), sorted, with its bytes.
fn files(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            if rel.starts_with(".siteport") || rel.to_string_lossy().contains("siteport-tmp") {
                continue;
            }
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

fn export_reexport_edit_and_import_with_a_password_from_env(kind: SftpServerKind) {
    let s = SshServer::start_kind(kind);
    let sb = Sandbox::new();
    write_config(&sb, &s, "env", &trusted(&s));
    let public = sb.workdir().join("public");
    write_site(&public);
    let env = password_env(&s);

    let o = run(&sb, &["--json", "export", "web"], &env);
    assert_code(&o, 0);
    assert_eq!(uploaded(&o), 4, "{}", stdout(&o));
    assert_eq!(files(&s.root()), files(&public), "server copy differs");

    // proftpd logs every file stored: none of the site this time (the site lock's owner
    // file under `.siteport/` is written by every run).
    let site_writes = || {
        s.writes()
            .map(|w| w.into_iter().filter(|p| !p.contains("/.siteport/")).count())
    };
    let writes = site_writes();
    let o = run(&sb, &["--json", "export", "web"], &env);
    assert_code(&o, 0);
    assert_eq!(uploaded(&o), 0, "a no-change re-export sent files");
    assert_eq!(
        site_writes(),
        writes,
        "the server logged writes: {:?}",
        s.writes()
    );

    // Same size, new content: caught by content, not by size.
    std::fs::write(public.join("index.html"), "<h1>HOME</h1>\n").unwrap();
    let o = run(&sb, &["--json", "export", "web"], &env);
    assert_code(&o, 0);
    assert_eq!(uploaded(&o), 1, "the same-size edit was not sent");
    assert_eq!(
        std::fs::read(s.root().join("index.html")).unwrap(),
        b"<h1>HOME</h1>\n"
    );

    let back = sb.path("back");
    let back_s = back.to_string_lossy().into_owned();
    let o = run(&sb, &["import", "web", "--to", &back_s], &env);
    assert_code(&o, 0);
    assert_eq!(files(&back), files(&public), "import differs from the site");
}

#[test]
fn key_login_with_the_key_and_passphrase_from_the_file_store() {
    let s = SshServer::start();
    let sb = Sandbox::new();
    write_config(&sb, &s, "file", &trusted(&s));
    write_site(&sb.workdir().join("public"));
    assert_code(&sb.run(&["credential", "init"], "", &[]), 0);
    let key = s.encrypted_key_path.to_string_lossy().into_owned();
    let passphrase = format!("{}\n", s.key_passphrase.expose_secret());
    let o = sb.run(
        &[
            "credential",
            "add",
            "web",
            "--username",
            &s.user,
            "--ssh-key-file",
            &key,
            "--ssh-key-passphrase-stdin",
        ],
        &passphrase,
        &[],
    );
    assert_code(&o, 0);
    // The key is in the store only: `show` and `list` never print it, `show` says it is there.
    let shown = stdout(&sb.run(&["credential", "show", "web", "--reveal"], "", &[]))
        + &stdout(&sb.run(&["credential", "list"], "", &[]));
    assert!(
        shown.contains("stored, with its passphrase (not shown)"),
        "{shown}"
    );
    assert!(!shown.contains(s.key_passphrase.expose_secret()), "{shown}");
    let key_text = SshServer::read_key(&s.encrypted_key_path);
    for line in key_text.lines().filter(|l| !l.starts_with("-----")) {
        assert!(!shown.contains(line), "key line shown: {shown}");
    }

    let o = sb.run(&["config", "check"], "", &[]);
    assert_code(&o, 0);
    assert!(
        stdout(&o).contains("sftp host_key=known_hosts"),
        "{}",
        stdout(&o)
    );
    // `credential test` logs in with the key too.
    let o = sb.run(&["credential", "test", "web"], "", &[]);
    assert_code(&o, 0);

    let o = run(&sb, &["--json", "export", "web"], &[]);
    assert_code(&o, 0);
    assert_eq!(uploaded(&o), 4);
    assert_eq!(files(&s.root()), files(&sb.workdir().join("public")));
    assert!(
        s.accepted_logins().iter().all(|m| m == "publickey") && !s.accepted_logins().is_empty(),
        "not (only) key logins in sshd's log:\n{}",
        s.log()
    );
}

/// `site trust --known-hosts`: the key's line goes to the site's known_hosts file.
fn unknown_host_key_exits_6_until_site_trust_known_hosts(kind: SftpServerKind) {
    let s = SshServer::start_kind(kind);
    let sb = Sandbox::new();
    let kh = sb.path("keys/known_hosts");
    write_config(
        &sb,
        &s,
        "env",
        &format!("known_hosts = \"{}\"\n", kh.display()),
    );
    write_site(&sb.workdir().join("public"));
    let env = password_env(&s);

    let o = run(&sb, &["export", "web"], &env);
    assert_code(&o, 6);
    let err = stderr(&o);
    assert!(err.contains(&s.host_key_fingerprint), "{err}");
    assert!(err.contains("siteport site trust web"), "{err}");
    assert!(
        files(&s.root()).is_empty(),
        "files sent to an untrusted server"
    );
    assert!(
        s.auth_attempts().is_empty(),
        "authentication attempted: {:?}",
        s.auth_attempts()
    );

    // Without a terminal and without --yes, nothing is written.
    let o = run(&sb, &["site", "trust", "web", "--known-hosts"], &env);
    assert_code(&o, 2);
    assert!(!kh.exists(), "trusted without confirmation");

    let config_before = std::fs::read_to_string(sb.workdir().join("siteport.toml")).unwrap();
    let o = run(
        &sb,
        &["site", "trust", "web", "--known-hosts", "--yes"],
        &env,
    );
    assert_code(&o, 0);
    assert!(
        stdout(&o).contains(&s.host_key_fingerprint),
        "{}",
        stdout(&o)
    );
    let recorded = std::fs::read_to_string(&kh).unwrap();
    assert_eq!(recorded.trim(), s.known_hosts_line.trim());
    assert_eq!(mode(&kh), 0o600);
    assert_eq!(mode(kh.parent().unwrap()), 0o700);
    assert!(
        s.auth_attempts().is_empty(),
        "site trust authenticated: {:?}",
        s.auth_attempts()
    );

    assert_eq!(
        std::fs::read_to_string(sb.workdir().join("siteport.toml")).unwrap(),
        config_before,
        "--known-hosts changed the config"
    );

    let o = run(
        &sb,
        &["--json", "site", "trust", "web", "--known-hosts", "--yes"],
        &env,
    );
    assert_code(&o, 0);
    assert_eq!(json(&o)["added"], false, "{}", stdout(&o));
    assert_eq!(std::fs::read_to_string(&kh).unwrap(), recorded);

    let o = run(&sb, &["--json", "export", "web"], &env);
    assert_code(&o, 0);
    assert_eq!(uploaded(&o), 4);

    // A changed key (another key recorded for this host) is refused by `site trust` too, in
    // both modes: pinning must not paper over a changed known_hosts line.
    std::fs::write(
        &kh,
        format!("[127.0.0.1]:{} {}\n", s.port, s.other_public_key),
    )
    .unwrap();
    for mode in [&["--known-hosts"][..], &[]] {
        let mut args = vec!["site", "trust", "web", "--yes"];
        args.extend(mode);
        let o = run(&sb, &args, &env);
        assert_code(&o, 6);
        assert!(stderr(&o).contains("CHANGED"), "{}", stderr(&o));
    }
    assert_eq!(
        std::fs::read_to_string(sb.workdir().join("siteport.toml")).unwrap(),
        config_before,
        "a changed key was pinned"
    );
    // And by export: exit 6, the recorded line named, no login offered.
    let before = s.auth_attempts().len();
    let o = run(&sb, &["export", "web"], &env);
    assert_code(&o, 6);
    let err = stderr(&o);
    assert!(
        err.contains("CHANGED") && err.contains(&format!("{}:1", kh.display())),
        "{err}"
    );
    assert!(err.contains("siteport site trust web"), "{err}");
    assert_eq!(s.auth_attempts().len(), before, "authentication attempted");
}

/// A wrong password, then a key the server does not authorize: refused logins, exit 4,
/// nothing sent; the server logged both refusals.
fn a_wrong_password_or_key_exits_4(kind: SftpServerKind) {
    let s = SshServer::start_kind(kind);
    let sb = Sandbox::new();
    write_config(&sb, &s, "env", &trusted(&s));
    write_site(&sb.workdir().join("public"));
    let user = ("SITEPORT_CRED_WEB_USERNAME".to_owned(), s.user.clone());
    let env = vec![
        user.clone(),
        (
            "SITEPORT_CRED_WEB_PASSWORD".to_owned(),
            "wrong-Password-123".to_owned(),
        ),
    ];
    let o = run(&sb, &["export", "web"], &env);
    assert_code(&o, 4);
    assert!(stderr(&o).contains("refused"), "{}", stderr(&o));
    assert!(files(&s.root()).is_empty());
    let refused = s.failed_logins();
    assert!(refused >= 1, "no refusal in the server's log:\n{}", s.log());

    let key = s.unauthorized_key_path.to_string_lossy().into_owned();
    let env = vec![user, ("SITEPORT_CRED_WEB_SSH_KEY_FILE".to_owned(), key)];
    let o = run(&sb, &["export", "web"], &env);
    assert_code(&o, 4);
    assert!(stderr(&o).contains("refused"), "{}", stderr(&o));
    assert!(files(&s.root()).is_empty());
    assert!(
        s.failed_logins() > refused,
        "the key was not refused by the server:\n{}",
        s.log()
    );
    assert!(s.accepted_logins().is_empty(), "{}", s.log());
}

#[test]
fn keys_of_the_other_protocol_are_config_errors() {
    let sb = Sandbox::new();
    std::fs::create_dir_all(sb.workdir().join("public")).unwrap();
    let cases = [
        ("protocol = \"sftp\"\ntls = \"explicit\"\n", "`tls`", 8),
        ("protocol = \"sftp\"\ninsecure = true\n", "`insecure`", 8),
        (
            "protocol = \"sftp\"\nfingerprint = \"aa\"\n",
            "`fingerprint`",
            8,
        ),
        ("host_key = \"SHA256:x\"\n", "`host_key`", 7),
        ("file_mode = \"0644\"\n", "`file_mode`", 7),
        (
            "protocol = \"ftps\"\ndir_mode = \"0755\"\n",
            "`dir_mode`",
            8,
        ),
        (
            "protocol = \"ftp\"\nknown_hosts = \"k\"\n",
            "`known_hosts`",
            8,
        ),
    ];
    for (keys, named, line) in cases {
        let text = format!(
            "[credentials]\nbackend = \"env\"\n\n[[site]]\nname = \"web\"\nhost = \"h\"\n{keys}\
             credential = \"web\"\nlocal = \"public\"\n"
        );
        std::fs::write(sb.workdir().join("siteport.toml"), text).unwrap();
        let o = sb.run(&["config", "check"], "", &[]);
        assert_code(&o, 2);
        let err = stderr(&o);
        assert!(err.contains(named), "{keys}: {err}");
        assert!(
            err.contains(&format!("siteport.toml:{line}:")),
            "{keys}: {err}"
        );
    }
    // A malformed pin on an SFTP site is refused too.
    let text = "[[site]]\nname = \"web\"\nhost = \"h\"\nprotocol = \"sftp\"\n\
                host_key = \"SHA256:short\"\nlocal = \"public\"\n";
    std::fs::write(sb.workdir().join("siteport.toml"), text).unwrap();
    let o = sb.run(&["config", "check"], "", &[]);
    assert_code(&o, 2);
    assert!(stderr(&o).contains("host_key"), "{}", stderr(&o));
}

#[test]
fn no_secret_at_vvv() {
    let s = SshServer::start();
    let sb = Sandbox::new();
    write_config(&sb, &s, "env", &trusted(&s));
    write_site(&sb.workdir().join("public"));
    let key_path = s.encrypted_key_path.to_string_lossy().into_owned();
    let mut env = password_env(&s);
    env.push(("SITEPORT_CRED_WEB_SSH_KEY_FILE".into(), key_path));
    env.push((
        "SITEPORT_CRED_WEB_SSH_KEY_PASSPHRASE".into(),
        s.key_passphrase.expose_secret().to_owned(),
    ));
    let o = run(&sb, &["-vvv", "export", "web"], &env);
    assert_code(&o, 0);
    let mut out = stdout(&o) + &stderr(&o);
    // A failing run too: a wrong passphrase for the same key.
    env.pop();
    env.push((
        "SITEPORT_CRED_WEB_SSH_KEY_PASSPHRASE".into(),
        "wrong-passphrase-4711".into(),
    ));
    let o = run(&sb, &["-vvv", "export", "web"], &env);
    // An unusable key is a setup error: exit 2, and nothing was offered to the server.
    assert_code(&o, 2);
    out += &(stdout(&o) + &stderr(&o));
    assert!(out.len() > 1000, "-vvv printed almost nothing: {out}");
    assert!(!out.contains(s.password.expose_secret()), "password leaked");
    assert!(
        !out.contains(s.key_passphrase.expose_secret()),
        "passphrase leaked"
    );
    assert!(!out.contains("wrong-passphrase-4711"), "passphrase leaked");
    let key = SshServer::read_key(&s.encrypted_key_path);
    for line in key.lines().filter(|l| !l.starts_with("-----")) {
        assert!(!out.contains(line), "a key line leaked: {line}");
    }
}

/// What `write_site` creates, its directories included (those have no `.`).
const TREE: [&str; 6] = [
    "index.html",
    "empty.txt",
    "a",
    "a/b",
    "a/b/c",
    "a/b/c/deep.css",
];

/// The mode on disk of each path of [`TREE`] under `root`.
fn modes(root: &Path) -> Vec<(&'static str, u32)> {
    TREE.iter()
        .map(|rel| (*rel, mode(&root.join(rel))))
        .collect()
}

/// Uploaded files are 0644 and created directories 0755 by default; `file_mode`/`dir_mode`
/// set them exactly, whatever the server's umask (0775 under sshd's umask 022 would be 0755
/// from MKDIR alone: siteport SETSTATs each directory it creates).
#[test]
fn uploaded_files_and_dirs_get_the_site_modes() {
    let s = SshServer::start();
    let sb = Sandbox::new();
    let text = format!(
        "[credentials]\nbackend = \"env\"\n\n\
         [[site]]\nname = \"plain\"\nprotocol = \"sftp\"\nhost = \"127.0.0.1\"\nport = {port}\n\
         credential = \"web\"\nlocal = \"public\"\nremote = \"/site/plain\"\n{kh}\n\
         [[site]]\nname = \"custom\"\nprotocol = \"sftp\"\nhost = \"127.0.0.1\"\nport = {port}\n\
         credential = \"web\"\nlocal = \"public\"\nremote = \"/site/custom\"\n{kh}\
         file_mode = \"0664\"\ndir_mode = \"0775\"\n",
        port = s.port,
        kh = trusted(&s),
    );
    std::fs::write(sb.workdir().join("siteport.toml"), text).unwrap();
    write_site(&sb.workdir().join("public"));
    let env = password_env(&s);
    for site in ["plain", "custom"] {
        let o = run(&sb, &["export", site], &env);
        assert_code(&o, 0);
    }
    let want = |f: u32, d: u32| -> Vec<(&'static str, u32)> {
        TREE.iter()
            .map(|rel| (*rel, if rel.contains('.') { f } else { d }))
            .collect()
    };
    assert_eq!(modes(&s.root().join("plain")), want(0o644, 0o755));
    assert_eq!(mode(&s.root().join("plain")), 0o755);
    assert_eq!(modes(&s.root().join("custom")), want(0o664, 0o775));
    assert_eq!(mode(&s.root().join("custom")), 0o775);
}

/// `site trust` asks on a terminal: `n` writes nothing (exit 2), `y` pins the key.
#[test]
fn site_trust_asks_on_a_terminal() {
    use rexpect::process::WaitStatus;
    use rexpect::session::spawn_command;

    let s = SshServer::start();
    let sb = Sandbox::new();
    let kh = sb.path("kh/known_hosts");
    write_config(
        &sb,
        &s,
        "env",
        &format!("known_hosts = \"{}\"\n", kh.display()),
    );
    let answer = |reply: &str| -> i32 {
        let mut c = std::process::Command::new(common::bin());
        c.args(["site", "trust", "web"])
            .env_clear()
            .envs(sb.envs())
            .envs(password_env(&s))
            .current_dir(sb.workdir());
        let mut p = spawn_command(c, Some(30_000)).unwrap();
        let (before, _) = p.exp_regex(r"\[y/N\] ").unwrap();
        assert!(before.contains(&s.host_key_fingerprint), "{before}");
        p.send_line(reply).unwrap();
        match p.process().wait().unwrap() {
            WaitStatus::Exited(_, code) => code,
            other => panic!("siteport did not exit normally: {other:?}"),
        }
    };
    let config = sb.workdir().join("siteport.toml");
    let before = std::fs::read_to_string(&config).unwrap();
    assert_eq!(answer("n"), 2);
    assert!(!kh.exists(), "written after `n`");
    assert_eq!(std::fs::read_to_string(&config).unwrap(), before);
    assert_eq!(answer("y"), 0);
    assert!(!kh.exists(), "a pin also wrote known_hosts");
    let after = std::fs::read_to_string(&config).unwrap();
    assert!(
        after.contains(&format!("host_key = \"{}\"", s.host_key_fingerprint)),
        "{after}"
    );
}

/// The default `site trust`: the fingerprint pinned as the site's `host_key` in the config,
/// every other byte (comments, layout) and the file's mode kept; a different pin refused
/// (exit 6) until `--replace`, which warns loudly and replaces the pin in place.
#[test]
fn site_trust_pins_the_host_key_in_the_config() {
    use std::os::unix::fs::PermissionsExt;
    let s = SshServer::start();
    let sb = Sandbox::new();
    let config = sb.workdir().join("siteport.toml");
    let text = format!(
        "# my sites\n[credentials]\nbackend = \"env\"   # from CI\n\n[[site]]\n\
         name = \"web\"\nprotocol = \"sftp\"\nhost = \"127.0.0.1\"\nport = {}\n\
         credential = \"web\"\nlocal = \"public\"\nremote = \"{}\"  # the web root\n\n\
         # the other one\n[[site]]\nname = \"other\"\nprotocol = \"sftp\"\n\
         host = \"127.0.0.1\"\ncredential = \"web\"\nlocal = \"other\"\n",
        s.port,
        s.remote_root()
    );
    std::fs::write(&config, &text).unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o640)).unwrap();
    write_site(&sb.workdir().join("public"));
    let env = password_env(&s);

    let o = run(&sb, &["export", "web"], &env);
    assert_code(&o, 6);
    assert!(
        stderr(&o).contains("siteport site trust web"),
        "{}",
        stderr(&o)
    );
    // No terminal, no --yes: nothing written.
    let o = run(&sb, &["site", "trust", "web"], &env);
    assert_code(&o, 2);
    assert_eq!(std::fs::read_to_string(&config).unwrap(), text);

    let o = run(&sb, &["--json", "site", "trust", "web", "--yes"], &env);
    assert_code(&o, 0);
    let j = json(&o);
    assert_eq!(j["pinned"], true, "{j}");
    assert_eq!(j["fingerprint"], s.host_key_fingerprint.as_str(), "{j}");
    let pinned = std::fs::read_to_string(&config).unwrap();
    let diff = similar::TextDiff::from_lines(text.as_str(), pinned.as_str());
    let changes: Vec<String> = diff
        .iter_all_changes()
        .filter(|c| c.tag() != similar::ChangeTag::Equal)
        .map(|c| format!("{}{}", c.tag(), c.value()))
        .collect();
    assert_eq!(changes.len(), 1, "{changes:?}");
    let added = format!("+host_key = \"{}\"  # pinned by", s.host_key_fingerprint);
    assert!(changes[0].starts_with(&added), "{changes:?}");
    // At the end of web's table, before the other site's comment.
    assert!(pinned.contains("# the web root\nhost_key = "), "{pinned}");
    assert_eq!(mode(&config), 0o640, "the config's mode changed");
    assert!(
        s.auth_attempts().iter().all(|l| !l.contains("Accepted")),
        "site trust logged in: {:?}",
        s.auth_attempts()
    );
    assert!(
        !sb.home().join(".ssh/known_hosts").exists(),
        "a pin also wrote known_hosts"
    );

    let o = run(&sb, &["--json", "export", "web"], &env);
    assert_code(&o, 0);
    assert_eq!(uploaded(&o), 4);
    // Again: already pinned, nothing written.
    let o = run(&sb, &["--json", "site", "trust", "web", "--yes"], &env);
    assert_code(&o, 0);
    assert_eq!(json(&o)["pinned"], false, "{}", stdout(&o));
    assert_eq!(std::fs::read_to_string(&config).unwrap(), pinned);

    // Another pin (the server's key "changed"): refused without --replace, by export too.
    let other_pin = "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU";
    let wrong = pinned.replace(&s.host_key_fingerprint, other_pin);
    std::fs::write(&config, &wrong).unwrap();
    let o = run(&sb, &["site", "trust", "web", "--yes"], &env);
    assert_code(&o, 6);
    let err = stderr(&o);
    assert!(
        err.contains("CHANGED") && err.contains("--replace"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&config).unwrap(), wrong);
    let before = s.auth_attempts().len();
    let o = run(&sb, &["export", "web"], &env);
    assert_code(&o, 6);
    assert!(stderr(&o).contains("--replace"), "{}", stderr(&o));
    assert_eq!(s.auth_attempts().len(), before, "authentication attempted");

    let o = run(&sb, &["site", "trust", "web", "--yes", "--replace"], &env);
    assert_code(&o, 0);
    assert!(stderr(&o).contains("WARNING"), "{}", stderr(&o));
    // Replaced in place: the same text as the first pin.
    assert_eq!(std::fs::read_to_string(&config).unwrap(), pinned);
    assert_eq!(mode(&config), 0o640);
    let o = run(&sb, &["--json", "export", "web"], &env);
    assert_code(&o, 0);
}

/// An `ssh-agent -D` on a socket of its own, killed (by its pid) when dropped.
struct Agent {
    child: std::process::Child,
    socket: PathBuf,
}

impl Agent {
    /// Starts the agent and `ssh-add`s `key` to it.
    fn start(dir: &Path, key: &Path) -> Agent {
        let socket = dir.join("agent.sock");
        let child = std::process::Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("ssh-agent (openssh-client) must be installed");
        let agent = Agent { child, socket };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !agent.socket.exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "ssh-agent did not listen"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let out = std::process::Command::new("ssh-add")
            .arg(key)
            .env("SSH_AUTH_SOCK", &agent.socket)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ssh-add failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        agent
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A site with a user and `password = ""` and no key logs in through the ssh-agent at
/// SSH_AUTH_SOCK; without an agent it fails with exit 4 and says how to give it a key.
#[test]
fn ssh_agent_login() {
    let s = SshServer::start();
    let sb = Sandbox::new();
    let text = format!(
        "[[site]]\nname = \"web\"\nprotocol = \"sftp\"\nhost = \"127.0.0.1\"\nport = {}\n\
         user = \"{}\"\npassword = \"\"\nlocal = \"public\"\nremote = \"{}\"\n{}",
        s.port,
        s.user,
        s.remote_root(),
        trusted(&s)
    );
    std::fs::write(sb.workdir().join("siteport.toml"), text).unwrap();
    write_site(&sb.workdir().join("public"));

    let o = run(&sb, &["export", "web"], &[]);
    assert_code(&o, 4);
    let err = stderr(&o);
    assert!(
        err.contains("SSH_AUTH_SOCK") && err.contains("--ssh-key"),
        "{err}"
    );
    assert!(files(&s.root()).is_empty());

    let agent = Agent::start(&sb.path(""), &s.key_path);
    let sock = agent.socket.to_string_lossy().into_owned();
    let o = run(
        &sb,
        &["--json", "export", "web"],
        &[("SSH_AUTH_SOCK".into(), sock)],
    );
    assert_code(&o, 0);
    assert_eq!(uploaded(&o), 4);
    assert_eq!(files(&s.root()), files(&sb.workdir().join("public")));
    let log = s.auth_attempts().join("\n");
    assert!(log.contains("Accepted publickey"), "{log}");
    drop(agent);
}

/// `credential add --ssh-key` with an encrypted key asks its passphrase on the terminal
/// (hidden, never echoed), stores it beside the key, and the key then logs in.
#[test]
fn an_encrypted_keys_passphrase_is_asked_on_a_terminal() {
    use rexpect::process::WaitStatus;
    use rexpect::session::spawn_command;

    let s = SshServer::start();
    let sb = Sandbox::new();
    write_config(&sb, &s, "file", &trusted(&s));
    write_site(&sb.workdir().join("public"));
    assert_code(&sb.run(&["credential", "init"], "", &[]), 0);
    let key = s.encrypted_key_path.to_string_lossy().into_owned();
    let mut c = std::process::Command::new(common::bin());
    c.args([
        "credential",
        "add",
        "web",
        "--username",
        &s.user,
        "--ssh-key",
        &key,
    ])
    .env_clear()
    .envs(sb.envs())
    .current_dir(sb.workdir());
    let mut p = spawn_command(c, Some(30_000)).unwrap();
    p.exp_regex(r"Passphrase of the SSH key for 'web':")
        .unwrap();
    p.send_line(s.key_passphrase.expose_secret()).unwrap();
    let rest = p.exp_eof().unwrap();
    assert!(
        !rest.contains(s.key_passphrase.expose_secret()),
        "passphrase echoed: {rest}"
    );
    match p.process().wait().unwrap() {
        WaitStatus::Exited(_, code) => assert_eq!(code, 0, "{rest}"),
        other => panic!("siteport did not exit normally: {other:?}"),
    }
    let shown = stdout(&sb.run(&["credential", "show", "web"], "", &[]));
    assert!(
        shown.contains("stored, with its passphrase (not shown)"),
        "{shown}"
    );
    let o = run(&sb, &["--json", "export", "web"], &[]);
    assert_code(&o, 0);
    assert_eq!(uploaded(&o), 4);
}

/// Import from a hostile server whose listings carry `../x`, an absolute name, `a/x`,
/// `back\x` and a link to `/etc`: exit 5 (names on the mirrored-from side were refused), each
/// bad name on a `refused` line, the link reported and not followed, the ordinary files
/// imported, nothing written beside the local root.
#[test]
fn import_from_a_hostile_server_refuses_its_names_and_exits_5() {
    let sb = Sandbox::new();
    let outside = sb.workdir().join("pulled");
    let local = outside.join("site");
    std::fs::create_dir_all(&outside).unwrap();
    let server = HostileSftpServer::start(&outside);
    let text = format!(
        "[credentials]\nbackend = \"env\"\n\n[[site]]\nname = \"web\"\nprotocol = \"sftp\"\n\
         host = \"127.0.0.1\"\nport = {}\ncredential = \"web\"\nlocal = \"pulled/site\"\n\
         remote = \"/site\"\nknown_hosts = \"{}\"\n",
        server.port,
        server.known_hosts_file.display()
    );
    std::fs::write(sb.workdir().join("siteport.toml"), text).unwrap();
    let env = vec![
        ("SITEPORT_CRED_WEB_USERNAME".to_owned(), "anyone".to_owned()),
        (
            "SITEPORT_CRED_WEB_PASSWORD".to_owned(),
            "any-password".to_owned(),
        ),
    ];
    let o = run(&sb, &["-v", "import", "web"], &env);
    assert_code(&o, 5);
    let err = stderr(&o);
    // The server offers no posix-rename, but the site lock's owner file was new: a plain
    // rename replaced nothing, so nothing is reported as replaced non-atomically.
    assert!(!err.contains("remove + rename"), "reported:\n{err}");
    let refused: Vec<&str> = err.lines().filter(|l| l.starts_with("refused")).collect();
    let bad = HOSTILE_SFTP_NAMES
        .iter()
        .map(|n| n.escape_debug().to_string())
        .chain([server.absolute_name().to_string()]);
    for name in bad {
        for dir in ["", "sub/"] {
            let shown = format!("{dir}{name}");
            assert!(
                refused.iter().any(|l| l.contains(&shown)),
                "{shown} not refused:\n{err}"
            );
        }
    }
    // Again in `--json`: the same refusals, and the link among the problems, left alone.
    let o = run(&sb, &["--json", "import", "web"], &env);
    assert_code(&o, 5);
    let doc = json(&o);
    let problems = doc["sites"][0]["report"]["problems"]
        .as_array()
        .unwrap_or_else(|| panic!("no problems in {doc}"));
    let kinds = |kind: &str| -> Vec<&str> {
        problems
            .iter()
            .filter(|p| p["kind"] == kind)
            .filter_map(|p| p["path"].as_str())
            .collect()
    };
    assert_eq!(kinds("symlink"), [HOSTILE_SFTP_LINK.0], "{doc}");
    assert_eq!(
        kinds("unsafe_name").len(),
        2 * (HOSTILE_SFTP_NAMES.len() + 1),
        "{doc}"
    );
    let want: Vec<(PathBuf, Vec<u8>)> = HOSTILE_SFTP_FILES
        .iter()
        .map(|(p, c)| (PathBuf::from(p), c.to_vec()))
        .collect();
    assert_eq!(files(&local), want);
    let beside: Vec<_> = std::fs::read_dir(&outside)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(beside, ["site"], "written beside the local root");
    let through_link: Vec<String> = server
        .requests()
        .into_iter()
        .filter(|q| q.contains(HOSTILE_SFTP_LINK.0))
        .collect();
    assert!(through_link.is_empty(), "{through_link:?}");
}
