//! Test fixtures that start REAL servers: the in-process `siteport-ftpd`, vsftpd, pure-ftpd
//! and proftpd (with mod_digest's `HASH`) on loopback with temp roots and real users, TLS
//! certificates made with `rcgen`, a `FaultyProxy` that cuts connections at random, a
//! `HostileServer` whose listings carry names like `../escape`; OpenSSH's sshd serving
//! chrooted SFTP; and for the credential backends, fakes of Vault, GCP Secret Manager and
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
#[cfg(feature = "gcp")]
pub mod gcp_fake;
#[cfg(feature = "ftp")]
mod hostile;
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
pub use hostile::{GHOST_NAME, HOSTILE_NAMES, HOSTILE_REPLY, HostileServer};
#[cfg(feature = "aws")]
pub use moto::{MotoServer, moto_server_path};
#[cfg(feature = "ftp")]
pub use proftpd::{ProFtpd, proftpd_path};
#[cfg(feature = "ftp")]
pub use proxy::FaultyProxy;
#[cfg(feature = "ftp")]
pub use server::{FTP_SYSTEM_USER, FtpServer, ServerKind, pureftpd_path, purepw_path, vsftpd_path};
#[cfg(feature = "sftp")]
pub use sshd::{SFTP_SYSTEM_USER, SshServer, sshd_path};

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
#[cfg(any(feature = "certs", feature = "gcp"))]
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
