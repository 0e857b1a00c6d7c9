//! A CA installed in the system's trust store is trusted (next to the built-in web PKI
//! roots), without `ca_file`: here the store is `SSL_CERT_FILE`, which rustls-native-certs
//! reads as OpenSSL does. Its own test binary: the store is read once per process.

use std::time::Duration;

use siteport_ftp::{ConnectOptions, FtpConnection, SecretString, TlsMode};
use siteport_ftpd::EmbeddedServer;
use siteport_testsupport::TestCerts;

#[test]
fn a_ca_in_the_system_store_is_trusted() {
    let certs = TestCerts::generate();
    // SAFETY: set before any thread of this process reads the environment (single test).
    unsafe { std::env::set_var("SSL_CERT_FILE", certs.ca_path()) };
    let dir = tempfile::tempdir().unwrap();
    let server = EmbeddedServer::start(
        dir.path(),
        "tester",
        SecretString::from("system-roots-Pa55"),
        Some((certs.cert_pem.clone(), certs.key_pem.clone())),
    )
    .unwrap();
    let mut o = ConnectOptions::new(
        "127.0.0.1".to_owned(),
        server.port(),
        TlsMode::Explicit,
        "tester".to_owned(),
        SecretString::from("system-roots-Pa55"),
    );
    o.timeout = Duration::from_secs(5);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(FtpConnection::connect(&o))
        .expect("the system store's CA is trusted without ca_file");
}
