//! proftpd with mod_digest (`HASH`, `XSHA256`, `XSHA1`, `XMD5`) on loopback: the server that
//! can prove a file equal by its hash. Unpacked from the Debian packages `proftpd-core` and
//! `proftpd-mod-crypto` (which holds mod_digest) by `scripts/install-test-deps` into
//! `$SITEPORT_TOOLS/proftpd`; override with `SITEPORT_PROFTPD`. Plain FTP, one virtual user
//! (an `AuthUserFile`) mapped to the system user `siteport-ftp`, a temp root, and a
//! `TransferLog` (xferlog) to count what was stored.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use secrecy::SecretString;

use crate::server::{FTP_SYSTEM_USER, passive_range};
use crate::{free_port, tools_dir};

const INSTALL_HINT: &str = "run `scripts/install-test-deps` (as root) to install proftpd";

/// Where proftpd is: `SITEPORT_PROFTPD`, else `$SITEPORT_TOOLS/proftpd/usr/sbin/proftpd`.
pub fn proftpd_path() -> PathBuf {
    std::env::var_os("SITEPORT_PROFTPD")
        .map(PathBuf::from)
        .unwrap_or_else(|| tools_dir().join("proftpd/usr/sbin/proftpd"))
}

/// A running proftpd; stopped (and its temp dirs removed) on drop.
pub struct ProFtpd {
    /// Always `127.0.0.1`.
    pub host: String,
    /// Control port.
    pub port: u16,
    /// Login name.
    pub user: String,
    /// Login password.
    pub password: SecretString,
    root_dir: tempfile::TempDir,
    work_dir: tempfile::TempDir,
    child: Option<Child>,
}

impl std::fmt::Debug for ProFtpd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProFtpd")
            .field("port", &self.port)
            .field("root", &self.root_dir.path())
            .finish_non_exhaustive()
    }
}

/// uid, gid and group name of a system user.
fn system_user(name: &str) -> (u32, u32, String) {
    let passwd = std::fs::read_to_string("/etc/passwd").expect("read /etc/passwd");
    let (uid, gid) = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() > 3 && f[0] == name)
        .map(|f| (f[2].parse().expect("uid"), f[3].parse().expect("gid")))
        .unwrap_or_else(|| panic!("system user {name} does not exist — {INSTALL_HINT}"));
    let groups = std::fs::read_to_string("/etc/group").expect("read /etc/group");
    let group = groups
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() > 2 && f[2].parse::<u32>().ok() == Some(gid))
        .map(|f| f[0].to_string())
        .unwrap_or_else(|| panic!("no group with gid {gid} — {INSTALL_HINT}"));
    (uid, gid, group)
}

/// A SHA-512 crypt hash of `password` by `openssl passwd -6` (the password on stdin).
fn crypt(password: &str) -> String {
    let mut child = Command::new("openssl")
        .args(["passwd", "-6", "-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run openssl passwd");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(password.as_bytes())
        .expect("write password");
    let out = child.wait_with_output().expect("openssl passwd");
    assert!(out.status.success(), "openssl passwd failed");
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_string()
}

fn random_password() -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(1);
    let h = format!("{:x}", n ^ (u128::from(std::process::id()) << 64));
    format!("pw{h}")
}

impl ProFtpd {
    /// Starts proftpd on a free port. Panics with the fix when it is not installed.
    pub fn start() -> ProFtpd {
        let bin = proftpd_path();
        if !bin.is_file() {
            panic!("proftpd not found at {} — {INSTALL_HINT}", bin.display());
        }
        let modules = bin
            .parent()
            .and_then(Path::parent)
            .map(|usr| usr.join("lib/proftpd"))
            .expect("proftpd's module dir");
        let root_dir = tempfile::Builder::new()
            .prefix("siteport-proftpd-root")
            .tempdir()
            .expect("temp root");
        let work_dir = tempfile::Builder::new()
            .prefix("siteport-proftpd-work")
            .tempdir()
            .expect("temp work dir");
        let (uid, gid, group) = system_user(FTP_SYSTEM_USER);
        std::os::unix::fs::chown(root_dir.path(), Some(uid), Some(gid))
            .expect("chown the FTP root to the test user");
        let password = random_password();
        let w = work_dir.path();
        // mod_auth_file refuses world-readable user files.
        crate::write_private(
            &w.join("passwd"),
            format!(
                "tester:{}:{uid}:{gid}::{}:/bin/false\n",
                crypt(&password),
                root_dir.path().display()
            )
            .as_bytes(),
        );
        crate::write_private(&w.join("group"), format!("{group}:x:{gid}:\n").as_bytes());
        let port = free_port();
        let (pmin, pmax) = passive_range();
        let conf = format!(
            "ServerType standalone\nServerName \"siteport test\"\nDefaultServer on\n\
             Port {port}\nDefaultAddress 127.0.0.1\nSocketBindTight on\nUseIPv6 off\n\
             User {FTP_SYSTEM_USER}\nGroup {group}\nPidFile {w}/proftpd.pid\n\
             ScoreboardFile {w}/proftpd.scoreboard\nDelayEngine off\nWtmpLog off\n\
             UseReverseDNS off\n<IfModule mod_auth_pam.c>\nAuthPAM off\n</IfModule>\n\
             AuthOrder mod_auth_file.c\nAuthUserFile {w}/passwd\nAuthGroupFile {w}/group\n\
             RequireValidShell off\nDefaultRoot ~\nPassivePorts {pmin} {pmax}\n\
             MaxInstances 60\nTransferLog {w}/xferlog\nSystemLog {w}/proftpd.log\n\
             AllowOverwrite on\nUmask 022\nTimesGMT on\nModulePath {m}\n\
             LoadModule mod_digest.c\nDigestEngine on\nDigestCache off\n",
            w = w.display(),
            m = modules.display(),
        );
        // `DigestCache off`: mod_digest otherwise answers HASH from a cache filled by earlier
        // HASH commands and transfers, which a file the tests rewrite behind the server's back
        // (another client's edit) would outlive: a test of siteport would measure that cache.
        let conf_path = w.join("proftpd.conf");
        std::fs::write(&conf_path, conf).expect("write proftpd.conf");
        let log = w.join("proftpd.stderr");
        let child = Command::new(&bin)
            .arg("-n")
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"))
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e} — {INSTALL_HINT}", bin.display()));
        let mut s = ProFtpd {
            host: "127.0.0.1".into(),
            port,
            user: "tester".into(),
            password: SecretString::from(password),
            root_dir,
            work_dir,
            child: Some(child),
        };
        s.wait_for_banner(&log);
        s
    }

    fn wait_for_banner(&mut self, log: &Path) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let addr = self.addr();
        loop {
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                panic!(
                    "proftpd exited at start ({status}):\n{}",
                    std::fs::read_to_string(log).unwrap_or_default()
                );
            }
            if let Ok(s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let mut line = String::new();
                if BufReader::new(&s).read_line(&mut line).is_ok() && line.starts_with("220") {
                    let _ = (&s).write_all(b"QUIT\r\n");
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "proftpd on {addr} did not greet within 10 s:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The directory the user sees as `/`.
    pub fn root(&self) -> &Path {
        self.root_dir.path()
    }

    /// The files stored so far (incoming, complete transfers in the xferlog), as logged
    /// (absolute paths in the server's view; proftpd writes spaces as `_`).
    pub fn stored(&self) -> Vec<String> {
        let log = std::fs::read_to_string(self.work_dir.path().join("xferlog")).unwrap_or_default();
        log.lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                // date (5), seconds, host, size, name, type, flag, direction, …, status last.
                (f.len() >= 18 && f[11] == "i" && f.last() == Some(&"c")).then(|| f[8].to_string())
            })
            .collect()
    }
}

impl Drop for ProFtpd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // One process per session in the daemon's process group: end them all.
            let pgid = child.id();
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{pgid}")])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
