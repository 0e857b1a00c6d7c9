//! proftpd with mod_digest (`HASH`, `XSHA256`, `XSHA1`, `XMD5`) on loopback: the server that
//! can prove a file equal by its hash. Unpacked from the Debian packages `proftpd-core` and
//! `proftpd-mod-crypto` (which holds mod_digest) by `scripts/install-test-deps` into
//! `$SITEPORT_TOOLS/proftpd`; override with `SITEPORT_PROFTPD`. Plain FTP, one virtual user
//! (an `AuthUserFile`) mapped to the system user `siteport-ftp`, a temp root, and a
//! `TransferLog` (xferlog) to count what was stored.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use secrecy::SecretString;

use crate::server::{FTP_SYSTEM_USER, passive_range};
use crate::{crypt, free_port, proftpd_path, system_user};

const INSTALL_HINT: &str = "run `scripts/install-test-deps` (as root) to install proftpd";

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
        let modules = crate::proftpd_modules(&bin);
        let root_dir = tempfile::Builder::new()
            .prefix("siteport-proftpd-root")
            .tempdir()
            .expect("temp root");
        let work_dir = tempfile::Builder::new()
            .prefix("siteport-proftpd-work")
            .tempdir()
            .expect("temp work dir");
        let (uid, gid, group) = system_user(FTP_SYSTEM_USER, INSTALL_HINT);
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
