//! Test fixtures that start REAL servers: the in-process `siteport-ftpd`, vsftpd, pure-ftpd
//! and proftpd (with mod_digest's `HASH`) on loopback with temp roots and real users, TLS
//! certificates made with `rcgen`, a `FaultyProxy` that cuts connections at random, a
//! `DelayProxy` that puts a round trip between client and server, a `MisorderingServer` that
//! greets as vsftpd but answers pipelined commands out of order or closes on them, a
//! `HostileServer` whose listings carry names like `../escape`; OpenSSH's sshd serving
//! chrooted SFTP and proftpd's mod_sftp, a `HostileSftpServer` (russh) listing `../x`, absolute
//! names and a link out of the site; and for the credential backends, fakes of Vault, GCP Secret Manager and
//! Azure Key Vault, and the moto AWS emulator.
//!
//! The servers come from `scripts/install-test-deps`; the fixtures find them at the paths that
//! script prints (overridable with `SITEPORT_VSFTPD`, `SITEPORT_PUREFTPD`, `SITEPORT_PUREPW`,
//! `SITEPORT_PROFTPD`, `SITEPORT_SSHD`, `SITEPORT_MOTO_SERVER`, `SITEPORT_TOOLS`) and panic
//! with that hint when they are missing.
//!
//! Each fixture is behind a cargo feature (`ftp`, `sftp`, `certs`, `vault`, `gcp`, `azure`, `aws`, or
//! `cloud` for the four stores), so a crate's tests compile only what they use.
#![warn(missing_docs)]

#[cfg(feature = "azure")]
pub mod azure_fake;
#[cfg(feature = "certs")]
mod certs;
#[cfg(feature = "ftp")]
mod delay;
#[cfg(feature = "gcp")]
pub mod gcp_fake;
#[cfg(feature = "ftp")]
mod hostile;
#[cfg(feature = "sftp")]
mod hostile_sftp;
#[cfg(feature = "ftp")]
mod misorder;
#[cfg(feature = "aws")]
mod moto;
#[cfg(feature = "ftp")]
mod proftpd;
#[cfg(feature = "ftp")]
mod proxy;
#[cfg(feature = "ftp")]
mod server;
#[cfg(feature = "sftp")]
mod sshd;
#[cfg(feature = "vault")]
pub mod vault_fake;

#[cfg(feature = "certs")]
pub use certs::TestCerts;
#[cfg(feature = "ftp")]
pub use delay::{DELAY_PROXY_IP, DelayProxy};
#[cfg(feature = "ftp")]
pub use hostile::{GHOST_NAME, HOSTILE_NAMES, HOSTILE_REPLY, HostileServer};
#[cfg(feature = "sftp")]
pub use hostile_sftp::{
    HOSTILE_SFTP_CONTENT, HOSTILE_SFTP_FILES, HOSTILE_SFTP_LINK, HOSTILE_SFTP_NAMES,
    HostileSftpServer,
};
#[cfg(feature = "ftp")]
pub use misorder::{Misorder, MisorderingServer, OVERSTATED};
#[cfg(feature = "aws")]
pub use moto::{MotoServer, moto_server_path};
#[cfg(feature = "ftp")]
pub use proftpd::ProFtpd;
#[cfg(feature = "ftp")]
pub use proxy::FaultyProxy;
#[cfg(feature = "ftp")]
pub use server::{FTP_SYSTEM_USER, FtpServer, ServerKind, pureftpd_path, purepw_path, vsftpd_path};
#[cfg(feature = "sftp")]
pub use sshd::{SFTP_SYSTEM_USER, SftpServerKind, SshServer, sshd_path};

/// Runs tests against every SFTP server kind: for each `async fn NAME(kind: SftpServerKind)`
/// listed after `async:` (a multi-threaded tokio test) and each `fn NAME(kind)` listed after
/// `sync:`, a test `sshd::NAME` and a test `proftpd::NAME`. The calling crate needs `tokio`
/// (with `macros`) for the async ones.
///
/// ```ignore
/// siteport_testsupport::sftp_server_tests! {
///     async: round_trip, host_keys;
///     sync: kill_and_resume;
/// }
/// ```
#[cfg(feature = "sftp")]
#[macro_export]
macro_rules! sftp_server_tests {
    ($(async: $($a:ident),+ $(,)? ;)? $(sync: $($s:ident),+ $(,)? ;)?) => {
        $crate::sftp_server_tests!(@kind sshd OpenSsh [$($($a)+)?] [$($($s)+)?]);
        $crate::sftp_server_tests!(@kind proftpd ProFtpd [$($($a)+)?] [$($($s)+)?]);
    };
    (@kind $module:ident $kind:ident [$($a:ident)*] [$($s:ident)*]) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $a() {
                    super::$a($crate::SftpServerKind::$kind).await
                }
            )*
            $(
                #[test]
                fn $s() {
                    super::$s($crate::SftpServerKind::$kind)
                }
            )*
        }
    };
}

/// Reports an opt-in test that did not run. Written to the stderr file descriptor directly:
/// the test harness captures `println!` of passing tests, and a skip must show in the log of
/// every run, not only when something fails.
pub fn report_skip(test: &str, how_to_run: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "{test}: SKIPPED ({how_to_run})");
}

/// Where `scripts/install-test-deps` puts its tools: `SITEPORT_TOOLS`, else
/// `$HOME/.cache/siteport-tools`.
#[cfg(any(feature = "ftp", feature = "aws", feature = "sftp"))]
pub(crate) fn tools_dir() -> std::path::PathBuf {
    if let Some(d) = std::env::var_os("SITEPORT_TOOLS") {
        return std::path::PathBuf::from(d);
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    std::path::PathBuf::from(home).join(".cache/siteport-tools")
}

/// A TCP port free on 127.0.0.1 right now.
#[cfg(any(feature = "ftp", feature = "aws", feature = "sftp"))]
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port on 127.0.0.1")
        .port()
}

/// Writes a file with mode 0600 (panics on failure: fixture code).
#[cfg(any(feature = "certs", feature = "gcp", feature = "sftp"))]
pub(crate) fn write_private(path: &std::path::Path, bytes: &[u8]) {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    f.write_all(bytes)
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

/// Where proftpd is: `SITEPORT_PROFTPD`, else `$SITEPORT_TOOLS/proftpd/usr/sbin/proftpd`.
/// The same binary serves FTP ([`ProFtpd`]) and, with mod_sftp, SFTP ([`SshServer`]).
#[cfg(any(feature = "ftp", feature = "sftp"))]
pub fn proftpd_path() -> std::path::PathBuf {
    std::env::var_os("SITEPORT_PROFTPD")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| tools_dir().join("proftpd/usr/sbin/proftpd"))
}

/// proftpd's directory of loadable modules (`mod_digest.so`, `mod_sftp.so`…): the Debian
/// package's `usr/lib/proftpd` beside the unpacked `usr/sbin/proftpd`.
#[cfg(any(feature = "ftp", feature = "sftp"))]
pub(crate) fn proftpd_modules(bin: &std::path::Path) -> std::path::PathBuf {
    bin.parent()
        .and_then(std::path::Path::parent)
        .map(|usr| usr.join("lib/proftpd"))
        .expect("proftpd's module dir")
}

/// uid, gid and group name of a system user (`hint`: how to create it, for the panic).
#[cfg(any(feature = "ftp", feature = "sftp"))]
pub(crate) fn system_user(name: &str, hint: &str) -> (u32, u32, String) {
    let passwd = std::fs::read_to_string("/etc/passwd").expect("read /etc/passwd");
    let (uid, gid) = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() > 3 && f[0] == name)
        .map(|f| (f[2].parse().expect("uid"), f[3].parse().expect("gid")))
        .unwrap_or_else(|| panic!("system user {name} does not exist — {hint}"));
    let groups = std::fs::read_to_string("/etc/group").expect("read /etc/group");
    let group = groups
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() > 2 && f[2].parse::<u32>().ok() == Some(gid))
        .map(|f| f[0].to_string())
        .unwrap_or_else(|| panic!("no group with gid {gid} — {hint}"));
    (uid, gid, group)
}

/// A SHA-512 crypt hash of `password` by `openssl passwd -6` (the password on stdin, never
/// in argv), for proftpd's `AuthUserFile`.
#[cfg(any(feature = "ftp", feature = "sftp"))]
pub(crate) fn crypt(password: &str) -> String {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
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
