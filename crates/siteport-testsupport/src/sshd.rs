//! Real SFTP servers on a random loopback port ([`SftpServerKind`]): OpenSSH's sshd serving
//! only chrooted `internal-sftp`, or proftpd with mod_sftp (the `mod_sftp.so` of the Debian
//! package `proftpd-core`, loaded with `LoadModule`), both with the same users, keys and
//! directory layout, so one test runs against either.
//!
//! The chroot must be root-owned and not group/world-writable on every path component, so it
//! is not under `/tmp`: it is `/var/lib/siteport-test/sftp-<random>/`, with a `site/`
//! directory owned by the test user where uploads go. The user is the system user
//! `siteport-ftp` that `scripts/install-test-deps` creates (password in
//! `$SITEPORT_TOOLS/vsftpd-user.password`); its authorized keys are generated per fixture.
//! sshd must run as root (it is started with `-D -E log`, `LogLevel VERBOSE`, so every
//! authentication attempt is in [`SshServer::log`]). proftpd runs as root too (it chroots with
//! `DefaultRoot ~` and switches to the test user); it knows the user from an `AuthUserFile`
//! with the same name and password, logs mod_sftp's events to `SFTPLog` and every stored
//! file to a `TransferLog` ([`SshServer::writes`]).

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use secrecy::SecretString;

use crate::{crypt, free_port, proftpd_modules, proftpd_path, system_user, tools_dir};

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

/// Which SFTP server [`SshServer::start_kind`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SftpServerKind {
    /// OpenSSH's sshd, chrooted `internal-sftp`.
    OpenSsh,
    /// proftpd with mod_sftp.
    ProFtpd,
}

impl SftpServerKind {
    /// `sshd` or `proftpd`, for test messages.
    pub fn label(self) -> &'static str {
        match self {
            SftpServerKind::OpenSsh => "sshd",
            SftpServerKind::ProFtpd => "proftpd",
        }
    }
}

/// A running SFTP server (sshd or proftpd's mod_sftp). Stopped, and its directories removed,
/// on drop.
pub struct SshServer {
    /// Which server this is.
    pub kind: SftpServerKind,
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
            .field("kind", &self.kind)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("root", &self.root())
            .finish_non_exhaustive()
    }
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
pub(crate) fn keygen(path: &Path, passphrase: &str) {
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

/// sshd in the foreground (`-D`), logging to `log` (`-E`, `LogLevel VERBOSE`), serving only
/// `internal-sftp` chrooted to `chroot`.
fn openssh_command(
    bin: &Path,
    etc: &Path,
    port: u16,
    host_key: &Path,
    authorized: &[&Path],
    chroot: &Path,
    log: &Path,
) -> Command {
    // sshd refuses to start without its privilege-separation directory.
    let _ = std::fs::create_dir_all("/run/sshd");
    let keys: String = authorized
        .iter()
        .map(|k| public_key(&k.with_extension("pub")) + "\n")
        .collect();
    let auth = etc.join("authorized_keys");
    std::fs::write(&auth, keys).expect("write authorized_keys");
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
            auth = auth.display(),
            root = chroot.display(),
        ),
    )
    .expect("write sshd_config");
    let mut cmd = Command::new(bin);
    cmd.arg("-D").arg("-f").arg(&config).arg("-E").arg(log);
    cmd
}

/// The system user proftpd's virtual user maps to, its password, and extra config lines.
struct ProftpdUsers<'a> {
    uid: u32,
    gid: u32,
    group: &'a str,
    password: &'a str,
    extra_conf: &'a str,
}

/// proftpd in the foreground (`-n`) with mod_sftp loaded from the package's module dir:
/// password and public-key logins of one `AuthUserFile` user whose home is `chroot`
/// (`DefaultRoot ~`), mod_sftp's events in `SFTPLog` (`etc/server.log`), stored files in the
/// `TransferLog` (`etc/xferlog`).
fn proftpd_command(
    bin: &Path,
    etc: &Path,
    port: u16,
    host_key: &Path,
    authorized: &[&Path],
    chroot: &Path,
    users: &ProftpdUsers<'_>,
) -> Command {
    // mod_sftp reads authorized keys in RFC 4716 format (`ssh-keygen -e`).
    let mut keys = String::new();
    for k in authorized {
        let out = Command::new("ssh-keygen")
            .arg("-e")
            .arg("-f")
            .arg(k.with_extension("pub"))
            .output()
            .expect("ssh-keygen -e");
        assert!(out.status.success(), "ssh-keygen -e failed");
        keys.push_str(&String::from_utf8_lossy(&out.stdout));
    }
    let auth = etc.join("authorized_keys.rfc4716");
    std::fs::write(&auth, keys).expect("write authorized keys");
    let ProftpdUsers {
        uid,
        gid,
        group,
        password,
        extra_conf,
    } = users;
    // mod_auth_file refuses world-readable user files.
    crate::write_private(
        &etc.join("passwd"),
        format!(
            "{SFTP_SYSTEM_USER}:{}:{uid}:{gid}::{}:/bin/false\n",
            crypt(password),
            chroot.display()
        )
        .as_bytes(),
    );
    crate::write_private(&etc.join("group"), format!("{group}:x:{gid}:\n").as_bytes());
    let conf = format!(
        "ServerType standalone\nServerName \"siteport test\"\nDefaultServer on\n\
         Port {port}\nDefaultAddress 127.0.0.1\nSocketBindTight on\nUseIPv6 off\n\
         User {SFTP_SYSTEM_USER}\nGroup {group}\nPidFile {e}/proftpd.pid\n\
         ScoreboardFile {e}/proftpd.scoreboard\nDelayEngine off\nWtmpLog off\n\
         UseReverseDNS off\n<IfModule mod_auth_pam.c>\nAuthPAM off\n</IfModule>\n\
         AuthOrder mod_auth_file.c\nAuthUserFile {e}/passwd\nAuthGroupFile {e}/group\n\
         RequireValidShell off\nDefaultRoot ~\nMaxInstances 100\n\
         TransferLog {e}/xferlog\nSystemLog {e}/proftpd.log\nAllowOverwrite on\nUmask 022\n\
         ModulePath {m}\nLoadModule mod_sftp.c\nSFTPEngine on\nSFTPLog {e}/server.log\n\
         SFTPHostKey {hk}\nSFTPAuthMethods password publickey\n\
         SFTPAuthorizedUserKeys file:{auth}\nSFTPKeyBlacklist none\n{extra_conf}",
        e = etc.display(),
        m = proftpd_modules(bin).display(),
        hk = host_key.display(),
        auth = auth.display(),
    );
    let conf_path = etc.join("proftpd.conf");
    std::fs::write(&conf_path, conf).expect("write proftpd.conf");
    let mut cmd = Command::new(bin);
    cmd.arg("-n").arg("-c").arg(&conf_path);
    cmd
}

impl SshServer {
    /// Starts sshd. Panics with the fix when sshd, ssh-keygen or the test user is missing,
    /// or when not running as root (sshd must be root to chroot and switch users).
    pub fn start() -> SshServer {
        SshServer::start_kind(SftpServerKind::OpenSsh)
    }

    /// Starts the SFTP server `kind`, with the same users, keys and layout whichever it is.
    /// Panics with the fix when the server, ssh-keygen or the test user is missing, or when
    /// not running as root (both servers chroot and switch users).
    pub fn start_kind(kind: SftpServerKind) -> SshServer {
        SshServer::start_with(kind, "")
    }

    /// proftpd's mod_sftp without the `posix-rename@openssh.com` extension
    /// (`SFTPExtensions -posixRename`), as many hosting servers run: a client must replace a
    /// file by remove + rename.
    pub fn start_proftpd_without_posix_rename() -> SshServer {
        SshServer::start_with(SftpServerKind::ProFtpd, "SFTPExtensions -posixRename\n")
    }

    /// [`start_kind`](Self::start_kind) with `extra_conf` appended to proftpd's config
    /// (ignored for sshd).
    fn start_with(kind: SftpServerKind, extra_conf: &str) -> SshServer {
        let bin = match kind {
            SftpServerKind::OpenSsh => sshd_path(),
            SftpServerKind::ProFtpd => proftpd_path(),
        };
        assert!(
            bin.is_file(),
            "{} not found at {} — {INSTALL_HINT}",
            kind.label(),
            bin.display()
        );
        assert!(
            running_as_root(),
            "the SFTP server fixture must run as root (the server chroots and switches users)"
        );
        let pw_file = tools_dir().join("vsftpd-user.password");
        let password = std::fs::read_to_string(&pw_file)
            .unwrap_or_else(|e| panic!("cannot read {} ({e}) — {INSTALL_HINT}", pw_file.display()))
            .trim()
            .to_string();
        let (uid, gid, group) = system_user(SFTP_SYSTEM_USER, INSTALL_HINT);
        let tag = random_hex();
        mkdir_mode(Path::new(CHROOT_BASE), 0o755);
        let chroot = Path::new(CHROOT_BASE).join(format!("sftp-{tag}"));
        let etc = Path::new(CHROOT_BASE).join(format!("sftp-{tag}.etc"));
        mkdir_mode(&chroot, 0o755);
        mkdir_mode(&etc, 0o755);
        let site = chroot.join("site");
        mkdir_mode(&site, 0o755);
        std::os::unix::fs::chown(&site, Some(uid), Some(gid)).expect("chown site/");

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
        let host_pub = host_key.with_extension("pub");

        let port = free_port();
        let known_hosts_line = format!("[127.0.0.1]:{port} {}", public_key(&host_pub));
        let known_hosts_file = etc.join("known_hosts");
        std::fs::write(&known_hosts_file, format!("{known_hosts_line}\n")).expect("known_hosts");
        let authorized = [key_path.as_path(), encrypted_key_path.as_path()];
        let log = etc.join("server.log");
        let mut cmd = match kind {
            SftpServerKind::OpenSsh => {
                openssh_command(&bin, &etc, port, &host_key, &authorized, &chroot, &log)
            }
            SftpServerKind::ProFtpd => {
                let users = ProftpdUsers {
                    uid,
                    gid,
                    group: &group,
                    password: &password,
                    extra_conf,
                };
                proftpd_command(&bin, &etc, port, &host_key, &authorized, &chroot, &users)
            }
        };
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(etc.join("stderr")).expect("stderr file"))
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e} — {INSTALL_HINT}", bin.display()));
        let mut server = SshServer {
            kind,
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

    /// Waits until the server sends its SSH identification line (`SSH-2.0-…`).
    fn wait_listening(&mut self) {
        use std::io::BufRead as _;
        let deadline = Instant::now() + Duration::from_secs(10);
        let name = self.kind.label();
        loop {
            if let Ok(s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let mut line = String::new();
                if std::io::BufReader::new(&s).read_line(&mut line).is_ok()
                    && line.starts_with("SSH-2.0")
                {
                    return;
                }
            }
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                panic!(
                    "{name} exited ({status}) at start:\n{}\n{}",
                    self.log(),
                    std::fs::read_to_string(self.etc.join("stderr")).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{name} did not listen:\n{}",
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

    /// The server's log so far: sshd's (`LogLevel VERBOSE`: connections and authentication
    /// attempts; internal-sftp's own file operations are not in it: after the chroot it has no
    /// `/dev/log` to write to), or proftpd's `SFTPLog` (key exchange, authentication, SFTP
    /// requests).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.etc.join("server.log")).unwrap_or_default()
    }

    /// The log lines that show an authentication attempt (accepted, failed, invalid user) in
    /// the server's own words; empty when no client got as far as authenticating.
    pub fn auth_attempts(&self) -> Vec<String> {
        let words: &[&str] = match self.kind {
            SftpServerKind::OpenSsh => &[
                "Accepted ",
                "Failed ",
                "Invalid user",
                "Postponed ",
                "authentication",
            ],
            // mod_sftp logs each USERAUTH_REQUEST it handles: the methods it offers, a
            // public key's fingerprint, a success or the reason of a failure.
            SftpServerKind::ProFtpd => &[
                "userauth",
                "authenticated via",
                "public key",
                "password",
                "authentication",
            ],
        };
        self.log()
            .lines()
            .filter(|l| words.iter().any(|w| l.contains(w)))
            .map(str::to_string)
            .collect()
    }

    /// The authentication methods of the logins the server accepted, in order (`password`,
    /// `publickey`).
    pub fn accepted_logins(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter_map(|l| match self.kind {
                // "Accepted publickey for siteport-ftp from …" (not "Accepted key ED25519 …
                // found at …", which is the key check before the signature)
                SftpServerKind::OpenSsh => {
                    let (_, rest) = l.split_once("Accepted ")?;
                    let mut words = rest.split_whitespace();
                    let method = words.next()?;
                    (words.next() == Some("for")).then_some(method)
                }
                // "user 'siteport-ftp' authenticated via 'publickey' method"
                SftpServerKind::ProFtpd => l
                    .split_once("authenticated via '")
                    .and_then(|(_, rest)| rest.split('\'').next()),
            })
            .map(str::to_string)
            .collect()
    }

    /// How many authentication requests the server refused (a wrong password, a key it
    /// does not authorize), by its log.
    pub fn failed_logins(&self) -> usize {
        self.log()
            .lines()
            .filter(|l| match self.kind {
                SftpServerKind::OpenSsh => l.starts_with("Failed "),
                SftpServerKind::ProFtpd => l.contains("sending userauth failure"),
            })
            .count()
    }

    /// The files the server says it stored so far (complete uploads, as paths on disk), when
    /// it logs them: proftpd's `TransferLog`. `None` for sshd: internal-sftp logs nothing
    /// in its chroot; compare inodes and ctimes under [`root`](Self::root) instead.
    pub fn writes(&self) -> Option<Vec<String>> {
        if self.kind != SftpServerKind::ProFtpd {
            return None;
        }
        let log = std::fs::read_to_string(self.etc.join("xferlog")).unwrap_or_default();
        Some(
            log.lines()
                .filter_map(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    // date (5), seconds, host, size, name, type, flag, direction, …, status.
                    (f.len() >= 18 && f[11] == "i").then(|| f[8].to_string())
                })
                .collect(),
        )
    }
}

impl Drop for SshServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Both servers fork a process per connection into their process group: end them
            // all.
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
