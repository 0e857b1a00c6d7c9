//! The release binary run the way the container runs it: an environment of `SITEPORT_*` only
//! (no HOME, no PATH), an unprivileged user (uid 65534), and every filesystem mounted
//! read-only (a private mount namespace, so the kernel refuses any write, even from root), with
//! the env backend fed by variables and `_FILE` secrets. The export to a real FTP server must
//! succeed; the only place that may change is the state volume when one is given.
//!
//! Plus the "container restart" case: two processes, the first SIGKILLed, sharing one file
//! backend volume directory.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::*;
use secrecy::ExposeSecret;
use siteport_testsupport::{FtpServer, ServerKind};

/// The binary `cargo build --release --locked -p siteport` (scripts/test, the Dockerfile)
/// made, next to the debug one this test was built with.
fn release_bin() -> PathBuf {
    let debug = bin();
    let p = debug
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("release/siteport");
    assert!(
        p.is_file(),
        "{} is missing: run `cargo build --release --locked -p siteport` (scripts/test does)",
        p.display()
    );
    p
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Every file under `root` with its bytes and mtime, for before/after comparisons.
fn snapshot(root: &Path) -> Vec<(PathBuf, Vec<u8>, std::time::SystemTime)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p.clone());
            }
            let m = std::fs::metadata(&p).unwrap();
            let bytes = if p.is_file() {
                std::fs::read(&p).unwrap()
            } else {
                Vec::new()
            };
            out.push((p, bytes, m.modified().unwrap()));
        }
    }
    out.sort();
    out
}

/// The layout the container sees: a read-only image with the binary, a config, the site and
/// the secret files; all readable by uid 65534, none writable by it.
struct Image {
    root: tempfile::TempDir,
}

impl Image {
    fn new(server: &FtpServer) -> Self {
        let root = tempfile::Builder::new()
            .prefix("siteport-image")
            .tempdir()
            .unwrap();
        let r = root.path();
        chmod(r, 0o755);
        std::fs::create_dir_all(r.join("usr/local/bin")).unwrap();
        std::fs::copy(release_bin(), r.join("usr/local/bin/siteport")).unwrap();
        for (rel, body) in [
            ("site/index.html", "<h1>container</h1>\n"),
            ("site/css/a.css", "p{}\n"),
            ("site/img/deep/x.txt", "x\n"),
        ] {
            let p = r.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, body).unwrap();
        }
        std::fs::create_dir_all(r.join("etc/siteport")).unwrap();
        std::fs::write(
            r.join("etc/siteport/siteport.toml"),
            format!(
                "[[site]]\nname = \"web\"\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\n\
                 credential = \"web\"\nlocal = \"{}\"\nremote = \"/\"\nmax_connections = 2\n",
                server.port,
                r.join("site").display()
            ),
        )
        .unwrap();
        // Docker secrets: one file per value, owned by the container user, 0400.
        std::fs::create_dir_all(r.join("run/secrets")).unwrap();
        let pw = r.join("run/secrets/web_password");
        std::fs::write(&pw, server.password.expose_secret()).unwrap();
        chmod(&pw, 0o400);
        std::os::unix::fs::chown(&pw, Some(65534), Some(65534)).unwrap();
        for d in [
            "usr",
            "usr/local",
            "usr/local/bin",
            "etc",
            "etc/siteport",
            "run",
            "run/secrets",
        ] {
            chmod(&r.join(d), 0o755);
        }
        Self { root }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.path().join(rel)
    }

    /// Runs `siteport ARGS` in a private mount namespace where every mount except `writable`
    /// is read-only, as uid/gid 65534, with exactly `env` as its environment.
    fn run(&self, args: &[&str], env: &[(String, String)], writable: Option<&Path>) -> Output {
        let script = r#"
set -eu
writable="$1"; shift
bin="$1"; shift
if [ -n "$writable" ]; then mount --bind "$writable" "$writable"; fi
for m in $(awk '{print $2}' /proc/self/mounts | sort -u); do
  case "$m" in /proc|/proc/*) continue ;; esac
  [ "$m" = "$writable" ] && continue
  mount -o remount,bind,ro "$m" 2>/dev/null || true
done
# Prove the lock-down before trusting it: root itself cannot write now.
for probe in /tmp /dev/shm "$(dirname "$bin")" /; do
  if touch "$probe/.siteport-write-probe" 2>/dev/null; then
    echo "PROBE: $probe is still writable" >&2; exit 97
  fi
done
exec setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all --no-new-privs \
  -- /usr/bin/env -u PATH "$bin" "$@"
"#;
        let mut c = Command::new("unshare");
        c.env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .envs(env.iter().cloned())
            .current_dir(self.root.path())
            .args([
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                script,
                "sh",
            ])
            .arg(writable.map_or_else(String::new, |p| p.display().to_string()))
            .arg(self.path("usr/local/bin/siteport"))
            .args(args)
            .stdin(Stdio::null());
        let o = c.output().unwrap();
        assert!(
            !stderr(&o).contains("PROBE:"),
            "the read-only setup failed: {}",
            stderr(&o)
        );
        o
    }

    fn env(&self) -> Vec<(String, String)> {
        let s = |k: &str, v: String| (k.to_owned(), v);
        vec![
            s("SITEPORT_CREDENTIAL_BACKEND", "env".into()),
            s(
                "SITEPORT_CONFIG",
                self.path("etc/siteport/siteport.toml")
                    .display()
                    .to_string(),
            ),
            s("SITEPORT_CRED_WEB_USERNAME", String::new()),
            s(
                "SITEPORT_CRED_WEB_PASSWORD_FILE",
                self.path("run/secrets/web_password").display().to_string(),
            ),
        ]
    }
}

fn uploaded(server: &FtpServer) -> Vec<String> {
    let mut names: Vec<String> = snapshot(server.root())
        .into_iter()
        .filter(|(p, ..)| p.is_file())
        .map(|(p, ..)| p.strip_prefix(server.root()).unwrap().display().to_string())
        .collect();
    names.sort();
    names
}

#[test]
fn export_as_the_container_runs_it_writes_nothing() {
    let server = FtpServer::start(ServerKind::InProcess, false);
    let image = Image::new(&server);
    let mut env = image.env();
    env[2].1 = server.user.clone();
    let before = snapshot(image.root.path());

    // No HOME, no state dir, read-only everywhere: the export works without a journal.
    let o = image.run(&["-v", "export", "--all"], &env, None);
    assert_code(&o, 0);
    assert!(
        stderr(&o).contains("SITEPORT_STATE_DIR"),
        "the missing journal place is not explained: {}",
        stderr(&o)
    );
    // The site, plus the deploy state a later run from another machine trusts; the lock is
    // gone. Nothing of it went through the read-only local disk.
    assert_eq!(
        uploaded(&server),
        [
            ".siteport/.htaccess",
            ".siteport/state.json",
            "css/a.css",
            "img/deep/x.txt",
            "index.html"
        ]
    );
    assert!(!server.root().join(".siteport/lock").exists());
    assert_eq!(
        std::fs::read_to_string(server.root().join("index.html")).unwrap(),
        "<h1>container</h1>\n"
    );
    assert_eq!(snapshot(image.root.path()), before, "the image changed");
    let err = stderr(&o);
    assert!(!err.contains(server.password.expose_secret()), "{err}");

    // With a state volume: the journal goes there and nowhere else, and SITEPORT_NO_JOURNAL
    // silences the warning when no volume is wanted. The server is emptied first so that the
    // run sends (and journals) the files again: a run that records nothing writes no journal.
    for e in std::fs::read_dir(server.root()).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            std::fs::remove_dir_all(&p).unwrap();
        } else {
            std::fs::remove_file(&p).unwrap();
        }
    }
    let state = tempfile::tempdir().unwrap();
    std::os::unix::fs::chown(state.path(), Some(65534), Some(65534)).unwrap();
    let mut with_state = env.clone();
    with_state.push((
        "SITEPORT_STATE_DIR".into(),
        state.path().display().to_string(),
    ));
    let o = image.run(&["export", "--all"], &with_state, Some(state.path()));
    assert_code(&o, 0);
    assert!(!stderr(&o).contains("journal"), "{}", stderr(&o));
    let written: Vec<String> = snapshot(state.path())
        .into_iter()
        .map(|(p, ..)| p.strip_prefix(state.path()).unwrap().display().to_string())
        .collect();
    assert!(
        written
            .iter()
            .any(|p| p.starts_with("journal/") && p.ends_with(".json")),
        "{written:?}"
    );
    assert_eq!(snapshot(image.root.path()), before, "the image changed");

    let mut quiet = env.clone();
    quiet.push(("SITEPORT_NO_JOURNAL".into(), "1".into()));
    let o = image.run(&["export", "--all"], &quiet, None);
    assert_code(&o, 0);
    assert!(!stderr(&o).contains("journal"), "{}", stderr(&o));

    // A wrong secret path fails cleanly (exit 3) and names the variable.
    let mut broken = env.clone();
    broken[3].1 = "/nonexistent/secret".into();
    let o = image.run(&["export", "--all"], &broken, None);
    assert_code(&o, 3);
    assert!(
        stderr(&o).contains("SITEPORT_CRED_WEB_PASSWORD_FILE"),
        "{}",
        stderr(&o)
    );
}

/// Two processes on one file-backend "volume": the first stores a credential and is then
/// SIGKILLed while it sits in a long-running command; the second, a fresh process, sees the
/// credential and can add another; a third sees both.
#[test]
fn file_store_volume_survives_a_killed_container() {
    let volume = tempfile::tempdir().unwrap();
    let env: Vec<(String, String)> = vec![
        (
            "SITEPORT_CREDENTIALS_FILE".into(),
            volume.path().join("credentials.age").display().to_string(),
        ),
        (
            "SITEPORT_IDENTITY_FILE".into(),
            volume.path().join("identity.txt").display().to_string(),
        ),
        ("SITEPORT_CREDENTIAL_BACKEND".into(), "file".into()),
    ];
    let cmd = |args: &[&str]| {
        let mut c = Command::new(release_bin());
        c.env_clear()
            .envs(env.iter().cloned())
            .current_dir("/")
            .args(args);
        c
    };
    let ok = |args: &[&str], stdin: &str| {
        let mut c = cmd(args);
        c.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let o = child.wait_with_output().unwrap();
        assert_code(&o, 0);
        o
    };
    ok(&["credential", "init"], "");
    ok(
        &["credential", "add", "one", "-u", "u1", "--password-stdin"],
        "pw-one\n",
    );

    // The first "container" is still running (waiting for a password on stdin that never
    // comes) when it is killed.
    let mut first = cmd(&["credential", "add", "two", "-u", "u2", "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let pid = first.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-KILL", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = first.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(9), "{status:?}");

    // A second process sees what the first stored, and can write.
    let o = ok(&["--json", "credential", "show", "one", "--reveal"], "");
    assert_eq!(json(&o)["password"], "pw-one");
    ok(
        &["credential", "add", "two", "-u", "u2", "--password-stdin"],
        "pw-two\n",
    );
    let o = ok(&["--json", "credential", "list"], "");
    let listed = json(&o);
    let names: Vec<&str> = listed["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["one", "two"]);
    assert_eq!(mode(&volume.path().join("credentials.age")), 0o600);
    assert_eq!(mode(&volume.path().join("identity.txt")), 0o600);
}
