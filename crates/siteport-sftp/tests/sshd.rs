//! siteport-sftp against real SFTP servers started per test: OpenSSH's sshd (chrooted
//! internal-sftp) and proftpd's mod_sftp. The tests that every server must pass run against
//! both (`sshd::…` and `proftpd::…`, from `sftp_server_tests!`); the byte counting and the
//! agent run against sshd only.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use siteport_sftp::{
    Auth, ConnectOptions, EntryKind, HostKeyPolicy, RenameMethod, SecretString, SftpConnection,
    SftpErrorKind,
};
use siteport_testsupport::{SftpServerKind, SshServer};

siteport_testsupport::sftp_server_tests! {
    async:
        round_trip_odd_names_empty_deep_and_large,
        listing_kinds_exact_mtimes_modes_replace_and_removals,
        large_directories_list_every_name_once,
        keys_passphrases_and_refused_logins,
        unknown_and_changed_host_keys_fail_before_authentication;
}

fn opts(s: &SshServer, auth: Auth) -> ConnectOptions {
    let mut o = ConnectOptions::new(
        s.host.clone(),
        s.user.clone(),
        auth,
        HostKeyPolicy::KnownHosts(vec![s.known_hosts_file.clone()]),
    );
    o.port = s.port;
    o.timeout = Duration::from_secs(20);
    o
}

fn password(s: &SshServer) -> Auth {
    Auth::Password(s.password.clone())
}

fn key(path: &Path, passphrase: Option<SecretString>) -> Auth {
    Auth::Key {
        pem: SecretString::from(SshServer::read_key(path)),
        passphrase,
    }
}

async fn connect(s: &SshServer) -> SftpConnection {
    SftpConnection::connect(&opts(s, password(s)))
        .await
        .expect("connect")
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// Pseudo-random bytes (no long runs, so compression or sparse files hide nothing).
fn bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

async fn round_trip_odd_names_empty_deep_and_large(kind: SftpServerKind) {
    let s = SshServer::start_kind(kind);
    let c = connect(&s).await;
    assert!(c.has_posix_rename(), "{kind:?} offers posix-rename");
    let local = tempfile::tempdir().expect("tmp");
    let mut dir = "/site".to_string();
    for d in ["a b", "ünï", "c", "d", "e", "f"] {
        dir = format!("{dir}/{d}");
        c.mkdir(&dir).await.expect("mkdir");
    }
    // mkdir of an existing directory is not an error.
    c.mkdir("/site/a b").await.expect("mkdir again");
    let files: Vec<(String, Vec<u8>)> = vec![
        (format!("{dir}/file with spaces.txt"), b"hello".to_vec()),
        ("/site/empty".into(), Vec::new()),
        ("/site/ünïcødé ✓.html".into(), bytes(100_000, 3)),
        ("/site/big.bin".into(), bytes(50 * 1024 * 1024, 7)),
    ];
    for (i, (remote, data)) in files.iter().enumerate() {
        let src = local.path().join(format!("src{i}"));
        std::fs::write(&src, data).expect("write src");
        let mut seen = 0usize;
        let mut obs = |chunk: &[u8]| seen += chunk.len();
        let out = c
            .put_atomic(
                &src,
                remote,
                Some(at(1_600_000_000 + i as u64)),
                Some(&mut obs),
            )
            .await
            .expect("put");
        assert_eq!(out.bytes, data.len() as u64);
        assert_eq!(seen, data.len());
        assert_eq!(out.rename, RenameMethod::PosixRename);
        let on_disk = s.root().join(remote.trim_start_matches("/site/"));
        assert_eq!(std::fs::read(&on_disk).expect("on disk"), *data, "{remote}");
        let back = local.path().join(format!("back{i}"));
        let got = c.get(remote, &back).await.expect("get");
        assert_eq!(got, data.len() as u64);
        assert!(
            std::fs::read(&back).expect("back") == *data,
            "{remote} round trip"
        );
    }
    // Small files in memory too.
    let out = c
        .put_atomic_bytes(b"in memory", "/site/mem.txt", None)
        .await
        .expect("put bytes");
    assert_eq!(out.bytes, 9);
    assert_eq!(
        c.get_bytes("/site/mem.txt", 100).await.expect("get bytes"),
        b"in memory"
    );
    assert!(
        c.get_bytes("/site/big.bin", 1000).await.is_err(),
        "over max"
    );
    // No temp name remains anywhere.
    for e in walk(&s.root()) {
        assert!(!e.contains("siteport-tmp"), "temp file left: {e}");
    }
    c.quit().await.expect("quit");
}

/// A server without `posix-rename@openssh.com` (proftpd with `SFTPExtensions -posixRename`):
/// an upload over an existing file removes it, then renames the temp file (its RENAME refuses
/// an existing target), and says so in its outcome (a new file is a plain rename: nothing was
/// replaced); the new content is in place and no temp file is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_posix_rename_a_file_is_replaced_by_remove_then_rename() {
    let s = SshServer::start_proftpd_without_posix_rename();
    let c = connect(&s).await;
    assert!(!c.has_posix_rename(), "the extension is still offered");
    let src = tempfile::NamedTempFile::new().expect("tmp");
    for (i, body) in [&b"first version"[..], b"second, longer version"]
        .into_iter()
        .enumerate()
    {
        std::fs::write(src.path(), body).expect("write");
        let out = c
            .put_atomic(src.path(), "/site/page.html", Some(at(1_500_000_000)), None)
            .await
            .unwrap_or_else(|e| panic!("put {i}: {e}"));
        let want = [RenameMethod::Rename, RenameMethod::RemoveThenRename][i];
        assert_eq!(out.rename, want, "put {i}");
        assert_eq!(
            std::fs::read(s.root().join("page.html")).expect("on disk"),
            body
        );
    }
    let l = c.list_dir("/site").await.expect("list");
    let names: Vec<_> = l.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["page.html"], "a temp file was left");
    assert_eq!(l[0].mtime, Some(at(1_500_000_000)));
    c.quit().await.expect("quit");
}

/// `OnBytes`: a file of several MiB tells the counter its bytes chunk by chunk as they go,
/// both ways (what the CLI's live progress reads), adding up to the file; an upload counts a
/// chunk once the server acknowledged its WRITE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_and_downloads_count_bytes_chunk_by_chunk() {
    let s = SshServer::start();
    let c = connect(&s).await;
    let local = tempfile::tempdir().expect("tmp");
    let size = 3 * 1024 * 1024 + 5;
    let data = bytes(size, 11);
    let src = local.path().join("src.bin");
    std::fs::write(&src, &data).expect("write src");
    let calls = std::sync::Mutex::new(Vec::new());
    let count = |n: u64| calls.lock().unwrap().push(n);

    let file = std::fs::File::open(&src).expect("open");
    let out = c
        .put_atomic_file(file, &src, "/site/up.bin", None, None, Some(&count))
        .await
        .expect("put");
    let up = std::mem::take(&mut *calls.lock().unwrap());
    assert_eq!(out.bytes, size as u64);
    assert_eq!(up.iter().sum::<u64>(), size as u64);
    assert!(up.len() >= 4, "counted in one go: {up:?}");

    let back = local.path().join("back.bin");
    let file = std::fs::File::create(&back).expect("create");
    let got = c
        .get_into("/site/up.bin", file, &back, Some(&count))
        .await
        .expect("get");
    let down = std::mem::take(&mut *calls.lock().unwrap());
    assert_eq!(got, size as u64);
    assert_eq!(down.iter().sum::<u64>(), size as u64);
    assert!(down.len() >= 4, "counted in one go: {down:?}");
    assert_eq!(std::fs::read(&back).expect("back"), data);
    c.quit().await.expect("quit");
}

fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let p = e.path();
        out.push(p.display().to_string());
        if p.is_dir() {
            out.extend(walk(&p));
        }
    }
    out
}

async fn listing_kinds_exact_mtimes_modes_replace_and_removals(kind: SftpServerKind) {
    let s = SshServer::start_kind(kind);
    let c = connect(&s).await;
    let src = tempfile::NamedTempFile::new().expect("tmp");
    std::fs::write(src.path(), b"v1").expect("write");
    c.put_atomic(src.path(), "/site/a.txt", Some(at(1_234_567_890)), None)
        .await
        .expect("put");
    c.mkdir("/site/dir").await.expect("mkdir");
    std::os::unix::fs::symlink("/etc/passwd", s.root().join("link")).expect("symlink");
    let mut list = c.list_dir("/site").await.expect("list");
    list.sort_by(|a, b| a.name.cmp(&b.name));
    let names: Vec<_> = list.iter().map(|e| (e.name.as_str(), e.kind)).collect();
    assert_eq!(
        names,
        [
            ("a.txt", EntryKind::File),
            ("dir", EntryKind::Dir),
            ("link", EntryKind::Symlink)
        ]
    );
    assert_eq!(list[0].size, 2);
    assert_eq!(list[0].mtime, Some(at(1_234_567_890)));
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &str| {
        std::fs::metadata(s.root().join(p))
            .expect("meta")
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("a.txt"), 0o644);
    assert_eq!(mode("dir"), 0o755);
    // Replacing an existing file: posix-rename over it.
    std::fs::write(src.path(), b"version 2").expect("write");
    c.put_atomic(src.path(), "/site/a.txt", Some(at(1_300_000_000)), None)
        .await
        .expect("replace");
    assert_eq!(
        std::fs::read(s.root().join("a.txt")).expect("read"),
        b"version 2"
    );
    c.set_mtime("/site/a.txt", at(1_000_000_000))
        .await
        .expect("setstat");
    let l = c.list_dir("/site").await.expect("list");
    let a = l.iter().find(|e| e.name == "a.txt").expect("a.txt");
    assert_eq!(a.mtime, Some(at(1_000_000_000)));
    // Errors have kinds.
    let e = c.list_dir("/site/missing").await.unwrap_err();
    assert_eq!(e.kind(), SftpErrorKind::NotFound, "{e}");
    let e = c
        .get("/site/missing", &src.path().with_extension("x"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), SftpErrorKind::NotFound, "{e}");
    let e = c.mkdir("/forbidden").await.unwrap_err();
    assert_eq!(e.kind(), SftpErrorKind::Permission, "{e}");
    c.remove_file("/site/a.txt").await.expect("rm");
    c.remove_file("/site/link").await.expect("rm link");
    c.remove_dir("/site/dir").await.expect("rmdir");
    assert!(c.list_dir("/site").await.expect("list").is_empty());
    assert!(
        std::fs::metadata("/etc/passwd").is_ok(),
        "the link's target is untouched"
    );
    c.quit().await.expect("quit");
}

/// Listings keep two READDIRs in flight and close without waiting: directories of several
/// batches (0, 1, 99, 100, 101, 250 and 777 names; servers send about 100 per batch) list
/// every name exactly once, one after another and several at once on one connection.
async fn large_directories_list_every_name_once(kind: SftpServerKind) {
    let s = SshServer::start_kind(kind);
    let sizes = [0usize, 1, 99, 100, 101, 250, 777];
    for n in sizes {
        let d = s.root().join(format!("d{n}"));
        std::fs::create_dir(&d).expect("mkdir");
        for i in 0..n {
            std::fs::write(d.join(format!("f{i:04}")), b"x").expect("write");
        }
    }
    let c = connect(&s).await;
    let check = |n: usize, l: Vec<siteport_sftp::RemoteEntry>| {
        let mut names: Vec<String> = l.into_iter().map(|e| e.name).collect();
        names.sort();
        let want: Vec<String> = (0..n).map(|i| format!("f{i:04}")).collect();
        assert_eq!(names, want, "d{n}");
    };
    for round in 0..2 {
        for n in sizes {
            check(n, c.list_dir(&format!("/site/d{n}")).await.expect("list"));
        }
        let all = futures_util::future::join_all(sizes.map(|n| {
            let c = &c;
            async move { (n, c.list_dir(&format!("/site/d{n}")).await) }
        }))
        .await;
        for (n, l) in all {
            check(n, l.unwrap_or_else(|e| panic!("round {round} d{n}: {e}")));
        }
    }
    c.quit().await.expect("quit");
}

async fn keys_passphrases_and_refused_logins(kind: SftpServerKind) {
    let s = SshServer::start_kind(kind);
    let c = SftpConnection::connect(&opts(&s, key(&s.key_path, None)))
        .await
        .expect("key login");
    c.quit().await.expect("quit");
    let enc = key(&s.encrypted_key_path, Some(s.key_passphrase.clone()));
    let c = SftpConnection::connect(&opts(&s, enc))
        .await
        .expect("encrypted key login");
    c.quit().await.expect("quit");
    // Without or with a wrong passphrase: the key cannot be read; nothing is sent.
    let e = SftpConnection::connect(&opts(&s, key(&s.encrypted_key_path, None)))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), SftpErrorKind::Invalid, "{e}");
    let wrong = Some(SecretString::from("not-it"));
    let e = SftpConnection::connect(&opts(&s, key(&s.encrypted_key_path, wrong)))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), SftpErrorKind::Invalid, "{e}");
    // A key the server does not authorize, and a wrong password: Login.
    let e = SftpConnection::connect(&opts(&s, key(&s.unauthorized_key_path, None)))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), SftpErrorKind::Login, "{e}");
    let bad = Auth::Password(SecretString::from("wrong-password-123"));
    let e = SftpConnection::connect(&opts(&s, bad)).await.unwrap_err();
    assert_eq!(e.kind(), SftpErrorKind::Login, "{e}");
    let shown = format!("{e} {e:?} {:?}", e.hint());
    assert!(!shown.contains("wrong-password-123"), "{shown}");
    // Both refusals reached the server: it logged the attempts, and accepted only the
    // two key logins.
    assert_eq!(s.failed_logins(), 2, "{}", s.log());
    assert_eq!(
        s.accepted_logins(),
        ["publickey", "publickey"],
        "{}",
        s.log()
    );
}

async fn unknown_and_changed_host_keys_fail_before_authentication(kind: SftpServerKind) {
    let s = SshServer::start_kind(kind);
    let empty = tempfile::NamedTempFile::new().expect("tmp");
    let mut o = opts(&s, password(&s));
    o.host_keys = HostKeyPolicy::KnownHosts(vec![empty.path().to_path_buf()]);
    let e = SftpConnection::connect(&o).await.unwrap_err();
    assert_eq!(e.kind(), SftpErrorKind::HostKeyUnknown, "{e}");
    let hk = e.host_key().expect("host key info");
    assert_eq!(hk.fingerprint, s.host_key_fingerprint);
    assert_eq!(hk.known_hosts_line, s.known_hosts_line);
    assert!(e.hint().is_some_and(|h| h.contains(&s.known_hosts_line)));

    let changed = tempfile::NamedTempFile::new().expect("tmp");
    std::fs::write(
        changed.path(),
        format!("[127.0.0.1]:{} {}\n", s.port, s.other_public_key),
    )
    .expect("write");
    o.host_keys = HostKeyPolicy::KnownHosts(vec![changed.path().to_path_buf()]);
    let e = SftpConnection::connect(&o).await.unwrap_err();
    assert_eq!(e.kind(), SftpErrorKind::HostKeyChanged, "{e}");
    assert!(e.to_string().contains("WARNING"), "{e}");

    let wrong_pin = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    o.host_keys = HostKeyPolicy::Pin(wrong_pin.into());
    let e = SftpConnection::connect(&o).await.unwrap_err();
    assert_eq!(e.kind(), SftpErrorKind::HostKeyChanged, "{e}");

    // Give sshd a moment to log, then: three connections, no authentication attempted.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(s.auth_attempts().is_empty(), "{:?}", s.auth_attempts());
    assert!(!s.log().is_empty(), "the server logged nothing");

    // A known_hosts file hashed by OpenSSH itself (`ssh-keygen -H`) trusts the server too.
    let hashed = tempfile::tempdir().expect("tmp");
    let hashed_file = hashed.path().join("known_hosts");
    std::fs::write(&hashed_file, format!("{}\n", s.known_hosts_line)).expect("write");
    let out = std::process::Command::new("ssh-keygen")
        .arg("-H")
        .arg("-f")
        .arg(&hashed_file)
        .output()
        .expect("ssh-keygen -H");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&hashed_file).expect("read");
    assert!(text.starts_with("|1|"), "{text}");
    o.host_keys = HostKeyPolicy::KnownHosts(vec![empty.path().to_path_buf(), hashed_file]);
    let c = SftpConnection::connect(&o)
        .await
        .expect("hashed known_hosts");
    c.quit().await.expect("quit");

    o.host_keys = HostKeyPolicy::Pin(s.host_key_fingerprint.clone());
    let c = SftpConnection::connect(&o).await.expect("pinned");
    c.quit().await.expect("quit");
    o.host_keys = HostKeyPolicy::Insecure;
    let c = SftpConnection::connect(&o).await.expect("insecure");
    c.quit().await.expect("quit");
    assert!(!s.auth_attempts().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_auth_when_ssh_agent_is_available() {
    let s = SshServer::start();
    let dir = tempfile::tempdir().expect("tmp");
    let sock = dir.path().join("agent.sock");
    let agent = std::process::Command::new("ssh-agent")
        .arg("-D")
        .arg("-a")
        .arg(&sock)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    let Ok(mut agent) = agent else {
        siteport_testsupport::report_skip("agent_auth", "install openssh-client for ssh-agent");
        return;
    };
    for _ in 0..100 {
        if sock.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let added = std::process::Command::new("ssh-add")
        .arg(&s.key_path)
        .env("SSH_AUTH_SOCK", &sock)
        .output()
        .expect("ssh-add");
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let mut o = opts(&s, Auth::Agent);
    o.agent_socket = Some(sock.clone());
    let r = SftpConnection::connect(&o).await;
    let _ = agent.kill();
    let _ = agent.wait();
    let c = r.expect("agent login");
    assert!(c.list_dir("/site").await.is_ok());
    c.quit().await.expect("quit");
}

#[test]
fn debug_and_display_never_show_secrets() {
    let pem = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n";
    let mut o = ConnectOptions::new(
        "h",
        "u",
        Auth::Password(SecretString::from("pw-secret-1")),
        HostKeyPolicy::Insecure,
    );
    let mut shown = format!("{o:?} {o:#?}");
    o.auth = Auth::Key {
        pem: SecretString::from(pem),
        passphrase: Some(SecretString::from("phrase-secret-2")),
    };
    shown += &format!("{o:?} {o:#?}");
    for secret in ["pw-secret-1", "b3BlbnNzaC1rZXktdjEAAAAA", "phrase-secret-2"] {
        assert!(!shown.contains(secret), "{shown}");
    }
}
