//! The keychain backend on Linux: the kernel keyutils session keyring (directly in the test
//! process) and the Secret Service (a private `dbus-daemon` plus `gnome-keyring-daemon`
//! unlocked with a password; both from `scripts/install-test-deps`).
#![cfg(all(feature = "keychain", target_os = "linux"))]

use std::process::{Command, Stdio};

use siteport_creds::backends::keychain::{KeychainBackend, KeychainStore};
use siteport_creds::testkit;
use siteport_creds::{
    Credential, CredentialBackend, CredentialName, ErrorKind, SecretString, StoreMode,
};

/// A service name of its own per run, so runs never see each other's entries.
fn service(tag: &str) -> String {
    format!("siteport-test-{tag}-{}", std::process::id())
}

/// Runs inside its own session keyring (`keyctl session`): without one, keys land in the
/// per-user fallback session keyring shared by every root process, and were seen to go missing
/// between store and get (2 runs in 3).
#[test]
fn keyutils_is_conformant_and_keeps_an_index() {
    if std::env::var_os("SITEPORT_IN_KEYCTL_SESSION").is_some() {
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(keyutils_suite());
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("keyctl")
        .args(["session", "-"])
        .arg(exe)
        .args([
            "--exact",
            "keyutils_is_conformant_and_keeps_an_index",
            "--nocapture",
        ])
        .env("SITEPORT_IN_KEYCTL_SESSION", "1")
        .output()
        .expect("keyctl is missing: run scripts/install-test-deps");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "keyutils suite in a keyctl session failed:\n{text}"
    );
    assert!(
        text.contains("1 passed"),
        "the inner run did not run the suite:\n{text}"
    );
}

async fn keyutils_suite() {
    let b = KeychainBackend::new(KeychainStore::Keyutils, service("keyutils"));
    assert_eq!(b.keychain_store(), KeychainStore::Keyutils);
    testkit::writable_suite(&b).await;
    testkit::ssh_key_suite(&b, true).await;

    let n = CredentialName::new("indexed").unwrap();
    let c = Credential::new(n.clone(), "u", SecretString::from("keyutils-pw".to_owned())).unwrap();
    b.store(&c, StoreMode::CreateNew).await.unwrap();
    let first = b.get(&n).await.unwrap();
    assert!(first.created().is_some() && first.updated().is_some());
    b.store(&c, StoreMode::Replace).await.unwrap();
    assert_eq!(
        b.get(&n).await.unwrap().created(),
        first.created(),
        "created is kept"
    );
    assert_eq!(b.list().await.unwrap().len(), 1);
    // A fresh backend on the same service finds it through the index.
    let again = KeychainBackend::new(KeychainStore::Keyutils, service("keyutils"));
    assert_eq!(again.list().await.unwrap()[0].name, n);
    b.delete(&n).await.unwrap();
    assert!(again.list().await.unwrap().is_empty());
    assert_eq!(b.delete(&n).await.unwrap_err().kind(), ErrorKind::NotFound);
}

/// A private session bus and an unlocked GNOME Keyring; both killed on drop.
struct SecretService {
    pids: Vec<u32>,
    _dir: tempfile::TempDir,
}

impl Drop for SecretService {
    fn drop(&mut self) {
        for pid in self.pids.iter().rev() {
            let _ = Command::new("kill").arg(pid.to_string()).status();
        }
    }
}

fn start_secret_service() -> (SecretService, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new("dbus-daemon")
        .args(["--session", "--fork", "--print-address=1", "--print-pid=1"])
        .output()
        .expect("dbus-daemon is missing: run scripts/install-test-deps");
    assert!(out.status.success(), "dbus-daemon: {out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    let addr = lines.next().unwrap().to_owned();
    let dbus_pid: u32 = lines.next().unwrap().trim().parse().unwrap();
    let home = dir.path().join("home");
    let run = dir.path().join("run");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&run).unwrap();
    let mut gk = Command::new("gnome-keyring-daemon")
        .args(["--unlock", "--components=secrets"])
        .env("DBUS_SESSION_BUS_ADDRESS", &addr)
        .env("HOME", &home)
        .env("XDG_RUNTIME_DIR", &run)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("gnome-keyring-daemon is missing: run scripts/install-test-deps");
    {
        use std::io::Write;
        let mut stdin = gk.stdin.take().unwrap();
        stdin.write_all(b"keyring-test-unlock").unwrap();
    }
    assert!(
        gk.wait().unwrap().success(),
        "gnome-keyring-daemon failed to start"
    );
    // It daemonises: find the daemon by the bus it registered on.
    let mut pids = vec![dbus_pid];
    let ps = Command::new("pgrep")
        .args(["-x", "gnome-keyring-d"])
        .output()
        .unwrap();
    for p in String::from_utf8_lossy(&ps.stdout).lines() {
        let pid: u32 = p.trim().parse().unwrap();
        let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        if String::from_utf8_lossy(&env).contains(&addr) {
            pids.push(pid);
        }
    }
    (SecretService { pids, _dir: dir }, addr)
}

#[tokio::test]
async fn secret_service_is_conformant() {
    let (_ss, addr) = start_secret_service();
    // SAFETY: the only test in this binary that touches the environment, and it sets the
    // variable before any keyring call reads it.
    unsafe { std::env::set_var("DBUS_SESSION_BUS_ADDRESS", &addr) };
    let b = KeychainBackend::new(KeychainStore::SecretService, service("ss"));
    assert!(b.describe().contains("secret service"), "{}", b.describe());
    testkit::writable_suite(&b).await;
    assert!(b.check().await.unwrap().notes[0].contains("0 credential"));
}
