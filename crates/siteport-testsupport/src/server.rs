//! Real FTP servers on loopback: in-process (siteport-ftpd), vsftpd, pure-ftpd.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use secrecy::SecretString;

use crate::certs::TestCerts;
use crate::{free_port, tools_dir};

/// Which server software.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServerKind {
    /// `siteport-ftpd` (libunftp) on its own thread; always available.
    InProcess,
    /// vsftpd (Debian package), local user `siteport-ftp`; FTPS with `require_ssl_reuse=YES`.
    Vsftpd,
    /// pure-ftpd (unpacked Debian package), a puredb virtual user; FTPS with `-Y 2`.
    PureFtpd,
}

impl ServerKind {
    /// Every kind, for suites that run against all of them.
    pub const ALL: [ServerKind; 3] = [
        ServerKind::InProcess,
        ServerKind::Vsftpd,
        ServerKind::PureFtpd,
    ];

    /// Short name for messages.
    pub fn name(self) -> &'static str {
        match self {
            ServerKind::InProcess => "in-process",
            ServerKind::Vsftpd => "vsftpd",
            ServerKind::PureFtpd => "pure-ftpd",
        }
    }
}

/// The system user that owns the temp roots of vsftpd and pure-ftpd (created by
/// `scripts/install-test-deps`).
pub const FTP_SYSTEM_USER: &str = "siteport-ftp";
const INSTALL_HINT: &str =
    "run `scripts/install-test-deps` (as root) to install the test FTP servers";

/// Where vsftpd is: `SITEPORT_VSFTPD`, else `/usr/sbin/vsftpd`.
pub fn vsftpd_path() -> PathBuf {
    std::env::var_os("SITEPORT_VSFTPD")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/sbin/vsftpd"))
}

/// Where pure-ftpd is: `SITEPORT_PUREFTPD`, else `$SITEPORT_TOOLS/pure-ftpd/usr/sbin/pure-ftpd`
/// (`SITEPORT_TOOLS` defaults to `$HOME/.cache/siteport-tools`).
pub fn pureftpd_path() -> PathBuf {
    std::env::var_os("SITEPORT_PUREFTPD")
        .map(PathBuf::from)
        .unwrap_or_else(|| tools_dir().join("pure-ftpd/usr/sbin/pure-ftpd"))
}

/// Where pure-pw is: `SITEPORT_PUREPW`, else next to the unpacked pure-ftpd.
pub fn purepw_path() -> PathBuf {
    std::env::var_os("SITEPORT_PUREPW")
        .map(PathBuf::from)
        .unwrap_or_else(|| tools_dir().join("pure-ftpd/usr/bin/pure-pw"))
}

fn require_binary(path: &Path, what: &str) {
    if !path.is_file() {
        panic!(
            "{what} not found at {} — {INSTALL_HINT} (or point the env variable at it)",
            path.display()
        );
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

/// A random passive range of 100 ports in 10000–29999 (below Linux's ephemeral range).
pub(crate) fn passive_range() -> (u16, u16) {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
        ^ (std::process::id().wrapping_mul(2654435761));
    let start = 10000 + (n % 199) as u16 * 100;
    (start, start + 99)
}

/// Random alphanumeric password for a test user.
fn random_password() -> String {
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
        ^ (u64::from(std::process::id()) << 32);
    const CHARS: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    (0..20)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            CHARS[(seed % CHARS.len() as u64) as usize] as char
        })
        .collect()
}

/// pure-pw stores an argon2id hash that costs pure-ftpd ~3.5 s of CPU per login on a 2-core
/// test machine, which dominates every test that opens a few connections (and serialises
/// them). Test users get a SHA-512 crypt hash instead (what `openssl passwd -6` makes,
/// password on stdin), which pure-ftpd checks through crypt(3) in microseconds.
fn cheap_password_hash(pure_pw: &Path, passwd: &Path, pdb: &Path, password: &str) {
    let mut child = Command::new("openssl")
        .args(["passwd", "-6", "-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run openssl: {e} — {INSTALL_HINT}"));
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{password}\n").as_bytes())
        .expect("write password to openssl");
    let out = child.wait_with_output().expect("openssl passwd");
    assert!(
        out.status.success(),
        "openssl passwd failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hash = String::from_utf8(out.stdout).expect("hash is ASCII");
    let hash = hash.trim();
    assert!(hash.starts_with("$6$"), "unexpected openssl passwd output");
    let text = std::fs::read_to_string(passwd).expect("read the pure-ftpd passwd file");
    let rewritten: String = text
        .lines()
        .map(|line| {
            let mut f: Vec<&str> = line.splitn(3, ':').collect();
            if f.len() == 3 {
                f[1] = hash;
            }
            format!("{}\n", f.join(":"))
        })
        .collect();
    crate::write_private(passwd, rewritten.as_bytes());
    let out = Command::new(pure_pw)
        .arg("mkdb")
        .arg(pdb)
        .arg("-f")
        .arg(passwd)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", pure_pw.display()));
    assert!(
        out.status.success(),
        "pure-pw mkdb failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Waits until `addr` greets with `220`.
fn wait_for_banner(addr: SocketAddr, what: &str, child: &mut Option<Child>, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(c) = child
            && let Ok(Some(status)) = c.try_wait()
        {
            panic!(
                "{what} exited at start ({status}); its log {}:\n{}",
                log.display(),
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
        if Instant::now() > deadline {
            panic!(
                "{what} on {addr} did not greet within 10 s; its log {}:\n{}",
                log.display(),
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A real FTP server on `127.0.0.1` with a temp root, one user, and optional explicit FTPS.
/// Stopped (and its temp dirs removed) on drop.
pub struct FtpServer {
    /// Which server.
    pub kind: ServerKind,
    /// Whether explicit FTPS is on (required by vsftpd and pure-ftpd when on).
    pub tls: bool,
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
    certs: Option<TestCerts>,
    child: Option<Child>,
    embedded: Option<siteport_ftpd::EmbeddedServer>,
    passive: Option<(u16, u16)>,
}

impl std::fmt::Debug for FtpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FtpServer")
            .field("kind", &self.kind)
            .field("tls", &self.tls)
            .field("addr", &self.addr())
            .field("user", &self.user)
            .field("root", &self.root())
            .finish_non_exhaustive()
    }
}

impl FtpServer {
    /// Starts a server of `kind`, with explicit FTPS when `tls`. Panics with the fix if the
    /// server binary or the test user is missing (never a silent skip).
    pub fn start(kind: ServerKind, tls: bool) -> FtpServer {
        Self::start_with_rate(kind, tls, None)
    }

    /// [`start`](Self::start) with every transfer of a session held to `max_rate` bytes per
    /// second, each way (vsftpd's `local_max_rate`): a slow server, for tests that watch a
    /// transfer while it runs. Only vsftpd takes a rate.
    pub fn start_with_rate(kind: ServerKind, tls: bool, max_rate: Option<u64>) -> FtpServer {
        assert!(
            max_rate.is_none() || kind == ServerKind::Vsftpd,
            "only the vsftpd fixture can limit the transfer rate"
        );
        let root_dir = tempfile::Builder::new()
            .prefix("siteport-ftproot")
            .tempdir()
            .expect("temp root");
        let work_dir = tempfile::Builder::new()
            .prefix("siteport-ftpwork")
            .tempdir()
            .expect("temp work dir");
        let certs = tls.then(TestCerts::generate);
        let mut server = FtpServer {
            kind,
            tls,
            host: "127.0.0.1".to_string(),
            port: 0,
            user: String::new(),
            password: SecretString::from(String::new()),
            root_dir,
            work_dir,
            certs,
            child: None,
            embedded: None,
            passive: None,
        };
        match kind {
            ServerKind::InProcess => server.start_inprocess(),
            ServerKind::Vsftpd => server.start_vsftpd(max_rate),
            ServerKind::PureFtpd => server.start_pureftpd(),
        }
        server
    }

    fn start_inprocess(&mut self) {
        let password = random_password();
        let tls = self
            .certs
            .as_ref()
            .map(|c| (c.cert_pem.clone(), c.key_pem.clone()));
        let server = siteport_ftpd::EmbeddedServer::start(
            self.root_dir.path(),
            "tester",
            SecretString::from(password.clone()),
            tls,
        )
        .expect("start the in-process FTP server");
        self.port = server.port();
        self.user = "tester".into();
        self.password = SecretString::from(password);
        self.embedded = Some(server);
    }

    fn start_vsftpd(&mut self, max_rate: Option<u64>) {
        let bin = vsftpd_path();
        require_binary(&bin, "vsftpd");
        let pw_file = tools_dir().join("vsftpd-user.password");
        let password = std::fs::read_to_string(&pw_file)
            .unwrap_or_else(|e| panic!("cannot read {} ({e}) — {INSTALL_HINT}", pw_file.display()))
            .trim()
            .to_string();
        let (uid, gid) = system_user(FTP_SYSTEM_USER);
        std::os::unix::fs::chown(self.root_dir.path(), Some(uid), Some(gid))
            .expect("chown the FTP root to the test user");
        let port = free_port();
        let (pmin, pmax) = passive_range();
        self.passive = Some((pmin, pmax));
        let log = self.work_dir.path().join("vsftpd.log");
        let mut conf = format!(
            "listen=YES\nlisten_ipv6=NO\nlisten_address=127.0.0.1\nlisten_port={port}\n\
             background=NO\nanonymous_enable=NO\nlocal_enable=YES\nwrite_enable=YES\n\
             local_umask=022\npam_service_name=siteport-vsftpd\nuserlist_enable=NO\n\
             chroot_local_user=YES\nallow_writeable_chroot=YES\nlocal_root={root}\n\
             pasv_enable=YES\npasv_min_port={pmin}\npasv_max_port={pmax}\npasv_address=127.0.0.1\n\
             seccomp_sandbox=NO\nisolate=NO\nisolate_network=NO\ndelay_failed_login=0\n\
             max_per_ip=0\nmax_clients=0\nxferlog_enable=NO\ndual_log_enable=NO\n\
             vsftpd_log_file={log}\nsecure_chroot_dir=/var/run/vsftpd/empty\n\
             hide_ids=NO\n",
            root = self.root_dir.path().display(),
            log = log.display(),
        );
        if let Some(rate) = max_rate {
            conf.push_str(&format!("local_max_rate={rate}\n"));
        }
        if let Some(c) = &self.certs {
            conf.push_str(&format!(
                "ssl_enable=YES\nrsa_cert_file={cert}\nrsa_private_key_file={key}\n\
                 ssl_ciphers=HIGH\nrequire_ssl_reuse=YES\nforce_local_data_ssl=YES\n\
                 force_local_logins_ssl=YES\nssl_tlsv1=YES\nssl_sslv2=NO\nssl_sslv3=NO\n",
                cert = c.cert_path().display(),
                key = c.key_path().display(),
            ));
        } else {
            conf.push_str("ssl_enable=NO\n");
        }
        let conf_path = self.work_dir.path().join("vsftpd.conf");
        crate::write_private(&conf_path, conf.as_bytes());
        let _ = std::fs::create_dir_all("/var/run/vsftpd/empty");
        let child = Command::new(&bin)
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.work_dir.path().join("vsftpd.stderr")).expect("log"))
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e} — {INSTALL_HINT}", bin.display()));
        self.child = Some(child);
        self.port = port;
        self.user = FTP_SYSTEM_USER.into();
        self.password = SecretString::from(password);
        wait_for_banner(
            self.addr(),
            "vsftpd",
            &mut self.child,
            &self.work_dir.path().join("vsftpd.stderr"),
        );
    }

    fn start_pureftpd(&mut self) {
        let bin = pureftpd_path();
        let pw = purepw_path();
        require_binary(&bin, "pure-ftpd");
        require_binary(&pw, "pure-pw");
        let (uid, gid) = system_user(FTP_SYSTEM_USER);
        std::os::unix::fs::chown(self.root_dir.path(), Some(uid), Some(gid))
            .expect("chown the FTP root to the test user");
        let password = random_password();
        let passwd = self.work_dir.path().join("pureftpd.passwd");
        let pdb = self.work_dir.path().join("pureftpd.pdb");
        let mut child = Command::new(&pw)
            .args(["useradd", "tester", "-u"])
            .arg(uid.to_string())
            .arg("-g")
            .arg(gid.to_string())
            .arg("-d")
            .arg(self.root_dir.path())
            .arg("-f")
            .arg(&passwd)
            .arg("-m")
            .arg("-F")
            .arg(&pdb)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e} — {INSTALL_HINT}", pw.display()));
        // pure-pw asks twice; the password goes through stdin, never argv.
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(format!("{password}\n{password}\n").as_bytes())
            .expect("write password to pure-pw");
        let out = child.wait_with_output().expect("pure-pw");
        assert!(
            out.status.success(),
            "pure-pw useradd failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        cheap_password_hash(&pw, &passwd, &pdb, &password);

        let port = free_port();
        let (pmin, pmax) = passive_range();
        self.passive = Some((pmin, pmax));
        let mut cmd = Command::new(&bin);
        cmd.arg("-S")
            .arg(format!("127.0.0.1,{port}"))
            .arg("-l")
            .arg(format!("puredb:{}", pdb.display()))
            .args(["-E", "-A", "-H", "-4"])
            .arg("-p")
            .arg(format!("{pmin}:{pmax}"))
            .args(["-P", "127.0.0.1", "-c", "50", "-C", "50"]);
        if let Some(c) = &self.certs {
            cmd.args(["-Y", "2", "-2"]).arg(format!(
                "{},{}",
                c.cert_path().display(),
                c.key_path().display()
            ));
        }
        let stderr = self.work_dir.path().join("pure-ftpd.stderr");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).expect("log"))
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e} — {INSTALL_HINT}", bin.display()));
        self.child = Some(child);
        self.port = port;
        self.user = "tester".into();
        self.password = SecretString::from(password);
        wait_for_banner(self.addr(), "pure-ftpd", &mut self.child, &stderr);
    }

    /// The passive port range (inclusive) of vsftpd and pure-ftpd; `None` for the
    /// in-process server.
    pub fn passive_ports(&self) -> Option<(u16, u16)> {
        self.passive
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The directory the user sees as `/`.
    pub fn root(&self) -> &Path {
        self.root_dir.path()
    }

    /// The CA file that verifies the server certificate (None without TLS).
    pub fn ca_path(&self) -> Option<PathBuf> {
        self.certs.as_ref().map(TestCerts::ca_path)
    }

    /// SHA-256 fingerprint of the server certificate (None without TLS).
    pub fn fingerprint(&self) -> Option<&str> {
        self.certs.as_ref().map(|c| c.fingerprint.as_str())
    }

    /// SIGKILLs one session of a forking daemon (vsftpd, pure-ftpd), chosen by `pick` among
    /// those running, with every process under it; never the listener: a session dies the
    /// way one does on a loaded host (an OOM kill, a crashed helper) while new connections
    /// are still accepted. Returns how many processes were killed (0 when no session runs,
    /// and always for the in-process server, which forks none).
    pub fn kill_one_session(&self, pick: u64) -> usize {
        self.kill_sessions(Some(pick))
    }

    /// SIGKILLs every session running (each with every process under it), never the
    /// listener: the harshest version of [`kill_one_session`](Self::kill_one_session), for
    /// tests where every connection dies at once, logins under way included. Returns how many
    /// processes were killed.
    pub fn kill_all_sessions(&self) -> usize {
        self.kill_sessions(None)
    }

    /// The sessions of the listener: the one `pick` chooses, or all of them (`None`).
    fn kill_sessions(&self, pick: Option<u64>) -> usize {
        let Some(listener) = self.child.as_ref().map(Child::id) else {
            return 0;
        };
        // Parent pids, not process groups: vsftpd makes each session a session leader.
        let mut parents: Vec<(u32, u32)> = Vec::new();
        let Ok(procs) = std::fs::read_dir("/proc") else {
            return 0;
        };
        for p in procs.flatten() {
            let Some(pid) = p.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            // `pid (comm) state ppid …`: comm may hold spaces and parentheses.
            let Ok(stat) = std::fs::read_to_string(p.path().join("stat")) else {
                continue;
            };
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|g| g.parse::<u32>().ok());
            if let Some(ppid) = ppid {
                parents.push((pid, ppid));
            }
        }
        let mut sessions: Vec<u32> = parents
            .iter()
            .filter(|(_, pp)| *pp == listener)
            .map(|(p, _)| *p)
            .collect();
        if sessions.is_empty() {
            return 0;
        }
        sessions.sort_unstable();
        let mut doomed = match pick {
            Some(pick) => vec![sessions[(pick % sessions.len() as u64) as usize]],
            None => sessions,
        };
        let mut i = 0;
        while i < doomed.len() {
            let parent = doomed[i];
            doomed.extend(
                parents
                    .iter()
                    .filter(|(_, pp)| *pp == parent)
                    .map(|(p, _)| *p),
            );
            i += 1;
        }
        let mut killed = 0;
        for pid in doomed {
            if Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
            {
                killed += 1;
            }
        }
        killed
    }

    /// The generated certificates (None without TLS).
    pub fn certs(&self) -> Option<&TestCerts> {
        self.certs.as_ref()
    }

    /// A label like `vsftpd+tls` for assertion messages.
    pub fn label(&self) -> String {
        format!("{}{}", self.kind.name(), if self.tls { "+tls" } else { "" })
    }
}

impl Drop for FtpServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // The daemon forks one process per session into its process group: end them all.
            let pgid = child.id();
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{pgid}")])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(e) = self.embedded.take() {
            e.shutdown();
        }
    }
}
