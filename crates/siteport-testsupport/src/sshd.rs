//! OpenSSH's sshd on a random loopback port, serving only chrooted `internal-sftp`.
//!
//! The chroot must be root-owned and not group/world-writable on every path component, so it
//! is not under `/tmp`: it is `/var/lib/siteport-test/sftp-<random>/`, with a `site/`
//! directory owned by the test user where uploads go. The user is the system user
//! `siteport-ftp` that `scripts/install-test-deps` creates (password in
//! `$SITEPORT_TOOLS/vsftpd-user.password`); its authorized keys are generated per fixture.
//! sshd must run as root (it is started with `-D -E log`, `LogLevel VERBOSE`, so every
//! authentication attempt is in [`SshServer::log`]).

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use secrecy::SecretString;

use crate::{free_port, tools_dir};

/// The test user (created by `scripts/install-test-deps`).
pub const SFTP_SYSTEM_USER: &str = "siteport-ftp";
const INSTALL_HINT: &str =
    "run `scripts/install-test-deps` (as root) to install openssh-server and the test user";
const CHROOT_BASE: &str = "/var/lib/siteport-test";

/// Where sshd is: `SITEPORT_SSHD`, else `/usr/sbin/sshd`.
pub fn sshd_path() -> PathBuf {
    std::env::var_os("SITEPORT_SSHD")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/sbin/sshd"))
}

/// A running sshd. Stopped, and its directories removed, on drop.
pub struct SshServer {
    /// Always `127.0.0.1`.
    pub host: String,
    /// The port sshd listens on.
    pub port: u16,
    /// Login name.
    pub user: String,
    /// The user's password.
    pub password: SecretString,
    /// An authorized ed25519 key without passphrase (OpenSSH private key file).
    pub key_path: PathBuf,
    /// An authorized ed25519 key encrypted with [`key_passphrase`](Self::key_passphrase).
    pub encrypted_key_path: PathBuf,
    /// The passphrase of `encrypted_key_path`.
    pub key_passphrase: SecretString,
    /// A valid key that is NOT authorized (for "wrong key" tests).
    pub unauthorized_key_path: PathBuf,
    /// The public half of `unauthorized_key_path` (`ssh-ed25519 AAAA…`): a host key for
    /// "changed key" tests.
    pub other_public_key: String,
    /// The host key's fingerprint, `SHA256:…`, as `ssh-keygen -l` prints it.
    pub host_key_fingerprint: String,
    /// `[127.0.0.1]:PORT ssh-ed25519 AAAA…`: the known_hosts line that trusts this server.
    pub known_hosts_line: String,
    /// A known_hosts file holding only `known_hosts_line`.
    pub known_hosts_file: PathBuf,
    chroot: PathBuf,
    etc: PathBuf,
    child: Option<Child>,
}

impl std::fmt::Debug for SshServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshServer")
            .field("port", &self.port)
            .field("user", &self.user)
            .field("root", &self.root())
            .finish_non_exhaustive()
    }
}

/// uid and gid of a system user, from /etc/passwd.
fn system_user(name: &str) -> (u32, u32) {
    let passwd = std::fs::read_to_string("/etc/passwd").expect("read /etc/passwd");
    for line in passwd.lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() > 3 && f[0] == name {
            return (f[2].parse().expect("uid"), f[3].parse().expect("gid"));
        }
    }
    panic!("system user {name} does not exist — {INSTALL_HINT}");
}

/// Whether this process runs as root (effective uid 0), from `/proc/self/status`.
fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

fn random_hex() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let n = u64::from(N.fetch_add(1, Ordering::Relaxed));
    format!("{:x}{:x}{n}", nanos & 0xffff_ffff, std::process::id())
}

fn mkdir_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

/// `ssh-keygen -t ed25519` into `path` (with `passphrase`, may be empty).
fn keygen(path: &Path, passphrase: &str) {
    let out = Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-C",
            "siteport-test",
            "-N",
            passphrase,
            "-f",
        ])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run ssh-keygen: {e} — {INSTALL_HINT}"));
    assert!(
        out.status.success(),
        "ssh-keygen failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `ssh-ed25519 AAAA…` of a `.pub` file (without its comment).
fn public_key(pub_path: &Path) -> String {
    let text = std::fs::read_to_string(pub_path).expect("read public key");
    text.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

fn fingerprint(pub_path: &Path) -> String {
    let out = Command::new("ssh-keygen")
        .args(["-l", "-E", "sha256", "-f"])
        .arg(pub_path)
        .output()
        .expect("ssh-keygen -l");
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .find(|w| w.starts_with("SHA256:"))
        .unwrap_or_else(|| panic!("no fingerprint in {text:?}"))
        .to_string()
}

impl SshServer {
    /// Starts sshd. Panics with the fix when sshd, ssh-keygen or the test user is missing,
    /// or when not running as root (sshd must be root to chroot and switch users).
    pub fn start() -> SshServer {
        let bin = sshd_path();
        assert!(
            bin.is_file(),
            "sshd not found at {} — {INSTALL_HINT}",
            bin.display()
        );
        assert!(
            running_as_root(),
            "the sshd fixture must run as root (sshd chroots and switches users)"
        );
        let pw_file = tools_dir().join("vsftpd-user.password");
        let password = std::fs::read_to_string(&pw_file)
            .unwrap_or_else(|e| panic!("cannot read {} ({e}) — {INSTALL_HINT}", pw_file.display()))
            .trim()
            .to_string();
        let (uid, gid) = system_user(SFTP_SYSTEM_USER);
        let tag = random_hex();
        mkdir_mode(Path::new(CHROOT_BASE), 0o755);
        let chroot = Path::new(CHROOT_BASE).join(format!("sftp-{tag}"));
        let etc = Path::new(CHROOT_BASE).join(format!("sftp-{tag}.etc"));
        mkdir_mode(&chroot, 0o755);
        mkdir_mode(&etc, 0o755);
        let site = chroot.join("site");
        mkdir_mode(&site, 0o755);
        std::os::unix::fs::chown(&site, Some(uid), Some(gid)).expect("chown site/");
        // sshd refuses to start without its privilege-separation directory.
        let _ = std::fs::create_dir_all("/run/sshd");

        let host_key = etc.join("host_ed25519");
        keygen(&host_key, "");
        let key_path = etc.join("user_ed25519");
        keygen(&key_path, "");
        let encrypted_key_path = etc.join("user_encrypted_ed25519");
        let passphrase = format!("pass-{tag}");
        keygen(&encrypted_key_path, &passphrase);
        let unauthorized_key_path = etc.join("unauthorized_ed25519");
        keygen(&unauthorized_key_path, "");
        let pubs = |p: &Path| public_key(&p.with_extension("pub"));
        let authorized = etc.join("authorized_keys");
        std::fs::write(
            &authorized,
            format!("{}\n{}\n", pubs(&key_path), pubs(&encrypted_key_path)),
        )
        .expect("write authorized_keys");
        let host_pub = host_key.with_extension("pub");

        let port = free_port();
        let known_hosts_line = format!("[127.0.0.1]:{port} {}", public_key(&host_pub));
        let known_hosts_file = etc.join("known_hosts");
        std::fs::write(&known_hosts_file, format!("{known_hosts_line}\n")).expect("known_hosts");
        let config = etc.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "ListenAddress 127.0.0.1:{port}\nHostKey {hk}\nPidFile none\nUsePAM no\n\
                 LogLevel VERBOSE\nStrictModes no\nPermitRootLogin no\n\
                 AllowUsers {SFTP_SYSTEM_USER}\nPasswordAuthentication yes\n\
                 KbdInteractiveAuthentication no\nPubkeyAuthentication yes\n\
                 AuthorizedKeysFile {auth}\nSubsystem sftp internal-sftp\n\
                 ForceCommand internal-sftp\nChrootDirectory {root}\n\
                 AllowTcpForwarding no\nX11Forwarding no\nMaxStartups 100\nMaxSessions 100\n\
                 LoginGraceTime 30\n",
                hk = host_key.display(),
                auth = authorized.display(),
                root = chroot.display(),
            ),
        )
        .expect("write sshd_config");
        let log = etc.join("sshd.log");
        let child = Command::new(&bin)
            .arg("-D")
            .arg("-f")
            .arg(&config)
            .arg("-E")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e} — {INSTALL_HINT}", bin.display()));
        let mut server = SshServer {
            host: "127.0.0.1".into(),
            port,
            user: SFTP_SYSTEM_USER.into(),
            password: SecretString::from(password),
            key_path,
            encrypted_key_path,
            key_passphrase: SecretString::from(passphrase),
            other_public_key: pubs(&unauthorized_key_path),
            unauthorized_key_path,
            host_key_fingerprint: fingerprint(&host_pub),
            known_hosts_line,
            known_hosts_file,
            chroot,
            etc,
            child: Some(child),
        };
        server.wait_listening();
        server
    }

    fn wait_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                panic!("sshd exited ({status}) at start:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "sshd did not listen:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The directory uploads go to, on disk (`<chroot>/site`).
    pub fn root(&self) -> PathBuf {
        self.chroot.join("site")
    }

    /// The same directory as the SFTP client sees it: `/site`.
    pub fn remote_root(&self) -> &'static str {
        "/site"
    }

    /// The contents of a private key file (for `Auth::Key`).
    pub fn read_key(path: &Path) -> String {
        std::fs::read_to_string(path).expect("read key")
    }

    /// sshd's log so far (`LogLevel VERBOSE`: connections and authentication attempts).
    /// internal-sftp's own file operations are not in it: after the chroot it has no
    /// `/dev/log` to write to; check the files on disk under [`root`](Self::root) instead.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.etc.join("sshd.log")).unwrap_or_default()
    }

    /// The log lines that show an authentication attempt (accepted, failed, invalid user).
    pub fn auth_attempts(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter(|l| {
                l.contains("Accepted ")
                    || l.contains("Failed ")
                    || l.contains("Invalid user")
                    || l.contains("Postponed ")
                    || l.contains("authentication")
            })
            .map(str::to_string)
            .collect()
    }
}

impl Drop for SshServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // sshd forks a process per connection into its process group: end them all.
            let pgid = child.id();
            let _ = Command::new("kill")
                .args(["-TERM", "--", &format!("-{pgid}")])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.chroot);
        let _ = std::fs::remove_dir_all(&self.etc);
    }
}
