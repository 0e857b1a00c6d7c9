//! Test fixtures that start REAL servers: the in-process `siteport-ftpd`, vsftpd and
//! pure-ftpd on loopback with temp roots and real users, TLS certificates made with `rcgen`,
//! a [`FaultyProxy`] that cuts connections at random, and a [`HostileServer`] whose listings
//! carry names like `../escape`.
//!
//! vsftpd and pure-ftpd come from `scripts/install-test-deps`; the fixtures find them at the
//! paths that script prints (overridable with `SITEPORT_VSFTPD`, `SITEPORT_PUREFTPD`,
//! `SITEPORT_PUREPW`, `SITEPORT_TOOLS`) and panic with that hint when they are missing.
#![warn(missing_docs)]

pub mod azure_fake;
mod certs;
pub mod gcp_fake;
mod hostile;
mod moto;
mod proftpd;
mod proxy;
mod server;
pub mod vault_fake;

pub use certs::TestCerts;
pub use hostile::{HOSTILE_NAMES, HostileServer};
pub use moto::{MotoServer, moto_server_path};
pub use proftpd::{ProFtpd, proftpd_path};
pub use proxy::FaultyProxy;
pub use server::{FTP_SYSTEM_USER, FtpServer, ServerKind, pureftpd_path, purepw_path, vsftpd_path};

/// Reports an opt-in test that did not run. Written to the stderr file descriptor directly:
/// the test harness captures `println!` of passing tests, and a skip must show in the log of
/// every run, not only when something fails.
pub fn report_skip(test: &str, how_to_run: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "{test}: SKIPPED ({how_to_run})");
}

/// Writes a file with mode 0600 (panics on failure: fixture code).
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
