//! Issue 18, defects 2 and 3, through the real binary: a store re-encrypted by a third party
//! with an extra recipient (with the real `age` CLI) is refused until the owner says so; a
//! store, identity or data dir of another user, or a data dir others can write, is refused
//! with the fix; a store reached through a symlink stays a link and its target gets the
//! writes; `--log-file` never follows a link and refuses a directory others can write.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use common::*;

fn init_and_add(sb: &Sandbox, name: &str, pw: &str) {
    assert_code(&sb.run(&["credential", "init"], "", &[]), 0);
    add(sb, name, pw, &[]);
}

fn add(sb: &Sandbox, name: &str, pw: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "credential",
        "add",
        name,
        "--username",
        "deploy",
        "--password-stdin",
    ];
    args.extend_from_slice(extra);
    sb.run(&args, &format!("{pw}\n"), &[])
}

/// The `age1…` public key of an identity file (`age-keygen -y`).
fn public_key(identity: &Path) -> String {
    let o = Command::new("age-keygen")
        .arg("-y")
        .arg(identity)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap().trim().to_owned()
}

/// What an attacker who can write the store does: decrypt nothing, just encrypt a document of
/// their own, listing `listed` as its recipients, to the owner's key plus `extra`, with the
/// real `age` CLI, over the store.
fn forge(sb: &Sandbox, extra: &[&str], listed: &[&str]) {
    let owner = public_key(&sb.identity());
    let mut all = vec![owner.as_str()];
    all.extend_from_slice(listed);
    let listed: Vec<String> = all.iter().map(|r| format!("\"{r}\"")).collect();
    let doc = format!(
        r#"{{"version":1,"recipients":[{}],"credentials":{{}}}}"#,
        listed.join(",")
    );
    let plain = sb.path("forged.json");
    std::fs::write(&plain, doc).unwrap();
    let out = sb.path("forged.age");
    let mut c = Command::new("age");
    c.arg("-a").arg("-r").arg(&owner);
    for r in extra {
        c.arg("-r").arg(r);
    }
    let o = c.arg("-o").arg(&out).arg(&plain).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::rename(&out, sb.store()).unwrap();
}

fn new_key(sb: &Sandbox, who: &str) -> String {
    let id = sb.path(&format!("{who}.txt"));
    let o = Command::new("age-keygen")
        .arg("-o")
        .arg(&id)
        .output()
        .unwrap();
    assert!(o.status.success());
    public_key(&id)
}

#[test]
fn a_store_reencrypted_with_an_extra_recipient_is_refused() {
    let sb = Sandbox::new();
    init_and_add(&sb, "web", "first-secret-pw");
    let attacker = new_key(&sb, "attacker");
    forge(&sb, &[&attacker], &[]);
    let forged = std::fs::read(sb.store()).unwrap();

    let o = add(&sb, "second", "second-secret-pw", &[]);
    assert_code(&o, 3);
    let err = stderr(&o);
    assert!(err.contains("other recipients"), "{err}");
    assert!(
        err.contains("1 recipient (X25519) before, 2 recipients (X25519 ×2) now"),
        "{err}"
    );
    assert!(err.contains("--accept-recipients"), "{err}");
    assert_eq!(
        std::fs::read(sb.store()).unwrap(),
        forged,
        "the refused store was rewritten"
    );
    // Reading is refused as well: nothing is decrypted.
    assert_code(&sb.run(&["credential", "list"], "", &[]), 3);

    // The owner accepts (say the teammate was added on purpose): the set is recorded, and
    // later commands go through without the flag.
    let o = add(&sb, "second", "second-secret-pw", &["--accept-recipients"]);
    assert_code(&o, 0);
    assert_code(&sb.run(&["credential", "list"], "", &[]), 0);
}

#[test]
fn a_recipient_swapped_for_the_attackers_own_is_refused() {
    // Same count and kind of stanzas (owner + one X25519), but the document now lists the
    // attacker instead of the teammate: siteport would encrypt every later write to them.
    let sb = Sandbox::new();
    let teammate = new_key(&sb, "teammate");
    assert_code(
        &sb.run(&["credential", "init", "--recipient", &teammate], "", &[]),
        0,
    );
    add(&sb, "web", "first-secret-pw", &[]);
    let attacker = new_key(&sb, "attacker");
    forge(&sb, &[&attacker], &[&attacker]);
    let forged = std::fs::read(sb.store()).unwrap();
    let o = add(&sb, "second", "second-secret-pw", &[]);
    assert_code(&o, 3);
    let err = stderr(&o);
    assert!(err.contains(&format!("it now lists {attacker}")), "{err}");
    assert_eq!(std::fs::read(sb.store()).unwrap(), forged);
}

#[test]
fn the_same_recipients_rewritten_by_someone_else_are_accepted() {
    // A teammate's siteport (or `age`) rewriting the store to the same recipients is normal.
    let sb = Sandbox::new();
    init_and_add(&sb, "web", "first-secret-pw");
    forge(&sb, &[], &[]);
    assert_code(&sb.run(&["credential", "list"], "", &[]), 0);
}

#[test]
fn rekey_accepts_a_changed_set_and_records_it() {
    let sb = Sandbox::new();
    init_and_add(&sb, "web", "first-secret-pw");
    let attacker = new_key(&sb, "attacker");
    forge(&sb, &[&attacker], &[]);
    assert_code(&sb.run(&["credential", "list"], "", &[]), 3);
    // The owner's answer: re-encrypt to their own identity only. The store is rewritten
    // without the intruder's stanza and that set is recorded.
    assert_code(
        &sb.run(&["credential", "rekey", "--clear-recipients"], "", &[]),
        0,
    );
    assert_code(&sb.run(&["credential", "list"], "", &[]), 0);
    let o = add(&sb, "second", "second-secret-pw", &[]);
    assert_code(&o, 0);
}

#[test]
fn a_store_or_identity_of_another_user_is_refused() {
    if unsafe_euid() != 0 {
        return; // Only root can give files away; the suite runs as root.
    }
    let sb = Sandbox::new();
    init_and_add(&sb, "web", "first-secret-pw");
    std::os::unix::fs::chown(sb.store(), Some(65534), None).unwrap();
    let o = sb.run(&["credential", "list"], "", &[]);
    assert_code(&o, 3);
    assert!(stderr(&o).contains("owned by uid 65534"), "{}", stderr(&o));
    assert!(stderr(&o).contains("chown 0"), "{}", stderr(&o));
    std::os::unix::fs::chown(sb.store(), Some(0), None).unwrap();
    assert_code(&sb.run(&["credential", "list"], "", &[]), 0);

    std::os::unix::fs::chown(sb.identity(), Some(65534), None).unwrap();
    let o = sb.run(&["credential", "list"], "", &[]);
    assert_code(&o, 3);
    assert!(stderr(&o).contains("owned by uid 65534"), "{}", stderr(&o));
    std::os::unix::fs::chown(sb.identity(), Some(0), None).unwrap();

    let data = sb.store().parent().unwrap().to_path_buf();
    std::os::unix::fs::chown(&data, Some(65534), None).unwrap();
    let o = sb.run(&["credential", "list"], "", &[]);
    assert_code(&o, 3);
    assert!(stderr(&o).contains("owned by uid 65534"), "{}", stderr(&o));
}

#[test]
fn a_world_writable_data_dir_is_refused_with_the_fix() {
    let sb = Sandbox::new();
    init_and_add(&sb, "web", "first-secret-pw");
    let data = sb.store().parent().unwrap().to_path_buf();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o777)).unwrap();
    let before = std::fs::read(sb.store()).unwrap();
    let o = add(&sb, "second", "second-secret-pw", &[]);
    assert_code(&o, 3);
    let err = stderr(&o);
    assert!(err.contains("writable by group or others"), "{err}");
    assert!(
        err.contains(&format!("chmod 700 {}", data.display())),
        "{err}"
    );
    assert!(err.contains("SITEPORT_ALLOW_INSECURE_DIRS"), "{err}");
    assert_eq!(std::fs::read(sb.store()).unwrap(), before);
    // The documented override, and only it, lets it through.
    let o = sb.run(
        &["credential", "list"],
        "",
        &[("SITEPORT_ALLOW_INSECURE_DIRS", "1")],
    );
    assert_code(&o, 0);
}

#[test]
fn a_store_reached_through_a_symlink_stays_a_link() {
    let sb = Sandbox::new();
    init_and_add(&sb, "web", "first-secret-pw");
    // Move the store elsewhere (a private dir) and link to it from the default place.
    let real_dir = sb.path("elsewhere");
    std::fs::create_dir(&real_dir).unwrap();
    std::fs::set_permissions(&real_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let target = real_dir.join("credentials.age");
    std::fs::rename(sb.store(), &target).unwrap();
    std::os::unix::fs::symlink(&target, sb.store()).unwrap();
    let before = std::fs::read(&target).unwrap();

    assert_code(&add(&sb, "second", "second-secret-pw", &[]), 0);
    let link = std::fs::symlink_metadata(sb.store()).unwrap();
    assert!(
        link.file_type().is_symlink(),
        "the link was replaced by a file"
    );
    assert_ne!(
        std::fs::read(&target).unwrap(),
        before,
        "the target got no write"
    );
    let o = sb.run(&["--json", "credential", "list"], "", &[]);
    assert_code(&o, 0);
    assert!(stdout(&o).contains("second"), "{}", stdout(&o));
}

/// A canary file: bytes and an mtime in the past.
fn canary(path: &Path) -> (Vec<u8>, SystemTime) {
    let bytes = b"canary: nobody writes here\n".to_vec();
    std::fs::write(path, &bytes).unwrap();
    let t = SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(t)
        .unwrap();
    (bytes, std::fs::metadata(path).unwrap().modified().unwrap())
}

#[test]
fn the_log_file_is_never_written_through_a_link() {
    let sb = Sandbox::new();
    let target = sb.path("outside-target");
    let (bytes, mtime) = canary(&target);
    let log = sb.workdir().join("run.log");
    std::os::unix::fs::symlink(&target, &log).unwrap();
    let log_arg = log.to_string_lossy().into_owned();
    let o = sb.run(&["--log-file", &log_arg, "credential", "list"], "", &[]);
    assert_code(&o, 2);
    assert!(stderr(&o).contains("symbolic link"), "{}", stderr(&o));
    assert_eq!(std::fs::read(&target).unwrap(), bytes);
    assert_eq!(
        std::fs::metadata(&target).unwrap().modified().unwrap(),
        mtime
    );
    assert!(
        std::fs::symlink_metadata(&log)
            .unwrap()
            .file_type()
            .is_symlink()
    );
}

#[test]
fn a_log_file_in_a_world_writable_dir_is_refused() {
    let sb = Sandbox::new();
    let dir = sb.path("shared");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let log = dir.join("run.log");
    let log_arg = log.to_string_lossy().into_owned();
    let o = sb.run(&["--log-file", &log_arg, "credential", "list"], "", &[]);
    assert_code(&o, 2);
    assert!(
        stderr(&o).contains(&format!("chmod go-w {}", dir.display())),
        "{}",
        stderr(&o)
    );
    assert!(!log.exists());
}

/// A config any local user can change (or replace) could send the next deploy and its
/// password elsewhere: refused before it is read, exit 2, with the fix; group write is fine.
#[test]
fn a_config_any_user_can_change_is_refused_with_the_fix() {
    let sb = Sandbox::new();
    let config = sb.workdir().join("siteport.toml");
    std::fs::write(
        &config,
        "[[site]]\nname = \"web\"\nhost = \"ftp.example.com\"\nlocal = \".\"\nremote = \"/\"\nuser = \"u\"\n",
    )
    .unwrap();
    std::fs::set_permissions(sb.workdir(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o664)).unwrap();
    let o = sb.run(&["config", "check"], "", &[]);
    assert!(
        !stderr(&o).contains("writable by every user"),
        "{}",
        stderr(&o)
    );
    for (file, dir, at) in [(0o666, 0o755, &config), (0o644, 0o777, &sb.workdir())] {
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(file)).unwrap();
        std::fs::set_permissions(sb.workdir(), std::fs::Permissions::from_mode(dir)).unwrap();
        for args in [&["config", "check"][..], &["export", "web"]] {
            let o = sb.run(args, "", &[]);
            assert_code(&o, 2);
            assert!(
                stderr(&o).contains(&format!("chmod o-w {}", at.display())),
                "{args:?}: {}",
                stderr(&o)
            );
        }
        let o = sb.run(
            &["config", "check"],
            "",
            &[("SITEPORT_ALLOW_INSECURE_DIRS", "1")],
        );
        assert!(!stderr(&o).contains("chmod o-w"), "{}", stderr(&o));
    }
    std::fs::set_permissions(sb.workdir(), std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// This process's effective uid: the owner of a file it creates.
fn unsafe_euid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    tempfile::tempfile().unwrap().metadata().unwrap().uid()
}

/// Issue 18: in passphrase mode 4 of 8 concurrent `credential add` failed after the 10 s lock
/// wait (each spends two scrypt derivations under the lock). All 8 must succeed, and all 8
/// credentials must be in the store afterwards.
#[test]
fn eight_concurrent_adds_in_passphrase_mode_all_succeed() {
    let sb = Sandbox::new();
    let pass = [("SITEPORT_PASSPHRASE", "concurrent-pass-91x")];
    assert_code(
        &sb.run(&["credential", "init", "--passphrase"], "", &pass),
        0,
    );
    let children: Vec<_> = (0..8)
        .map(|i| {
            let name = format!("site{i}");
            let mut c = std::process::Command::new(bin());
            c.env_clear()
                .envs(sb.envs())
                .env(pass[0].0, pass[0].1)
                .current_dir(sb.workdir())
                .args(["credential", "add", &name, "--username", "u"])
                .arg("--password-stdin")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped());
            let mut child = c.spawn().unwrap();
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(format!("pw-{i}-secret\n").as_bytes())
                .unwrap();
            child
        })
        .collect();
    let failed: Vec<String> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .filter(|o| !o.status.success())
        .map(|o| stderr(&o))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of 8 failed: {failed:?}",
        failed.len()
    );
    let o = sb.run(&["--json", "credential", "list"], "", &pass);
    assert_code(&o, 0);
    let out = stdout(&o);
    for i in 0..8 {
        assert!(
            out.contains(&format!("\"site{i}\"")),
            "site{i} missing: {out}"
        );
    }
}

/// A site on an in-process FTP server, its password in the env backend, and a state dir of
/// the test's choosing.
struct SiteRun {
    sb: Sandbox,
    server: siteport_testsupport::FtpServer,
    state: std::path::PathBuf,
}

impl SiteRun {
    fn new() -> Self {
        let sb = Sandbox::new();
        let server = siteport_testsupport::FtpServer::start(
            siteport_testsupport::ServerKind::InProcess,
            false,
        );
        std::fs::create_dir_all(sb.workdir().join("public")).unwrap();
        std::fs::write(sb.workdir().join("public/index.html"), "hi\n").unwrap();
        std::fs::write(
            sb.workdir().join("siteport.toml"),
            format!(
                "[[site]]\nname = \"web\"\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\n\
                 credential = \"web\"\nlocal = \"public\"\nremote = \"/\"\n",
                server.port
            ),
        )
        .unwrap();
        let state = sb.path("state");
        std::fs::create_dir(&state).unwrap();
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
        Self { sb, server, state }
    }

    fn export(&self) -> std::process::Output {
        use secrecy::ExposeSecret;
        let state = self.state.to_string_lossy().into_owned();
        self.sb.run(
            &["--credential-backend", "env", "export", "web"],
            "",
            &[
                ("SITEPORT_STATE_DIR", state.as_str()),
                ("SITEPORT_CRED_WEB_USERNAME", self.server.user.as_str()),
                (
                    "SITEPORT_CRED_WEB_PASSWORD",
                    self.server.password.expose_secret(),
                ),
            ],
        )
    }
}

#[test]
fn an_export_refuses_a_state_dir_others_can_write() {
    let run = SiteRun::new();
    std::fs::set_permissions(&run.state, std::fs::Permissions::from_mode(0o777)).unwrap();
    let o = run.export();
    assert_code(&o, 2);
    let err = stderr(&o);
    assert!(err.contains("writable by group or others"), "{err}");
    assert!(
        err.contains(&format!("chmod 700 {}", run.state.display())),
        "{err}"
    );
    assert!(
        !run.state.join("journal").exists(),
        "nothing is created in a refused dir"
    );
}

#[test]
fn an_export_never_writes_through_a_link_at_a_journal_name() {
    // The journal's name follows the remote: learn it from a first run, then plant a link at
    // each name the run writes (the journal, its lock, its log), one at a time.
    let run = SiteRun::new();
    assert_code(&run.export(), 0);
    let jdir = run.state.join("journal");
    let names = journals(&jdir);
    assert_eq!(names.len(), 1, "{names:?}");
    for suffix in ["", ".lock", ".log"] {
        let planted = jdir.join(format!("{}{suffix}", names[0]));
        let _ = std::fs::remove_file(&planted);
        let target = run.sb.path(&format!("canary{suffix}"));
        let (bytes, mtime) = canary(&target);
        std::os::unix::fs::symlink(&target, &planted).unwrap();
        std::fs::write(run.sb.workdir().join("public/index.html"), suffix).unwrap();
        let o = run.export();
        let err = stderr(&o);
        assert_eq!(std::fs::read(&target).unwrap(), bytes, "{suffix}: {err}");
        assert_eq!(
            std::fs::metadata(&target).unwrap().modified().unwrap(),
            mtime,
            "{suffix}"
        );
        // Refused (the link is left, the message says why), or a regular file in its place.
        let m = std::fs::symlink_metadata(&planted).unwrap();
        if m.file_type().is_symlink() {
            assert_code(&o, 2);
            assert!(err.contains("symbolic link"), "{suffix}: {err}");
        } else {
            assert!(m.file_type().is_file(), "{suffix}");
        }
        std::fs::remove_file(&planted).unwrap();
    }
}
