//! Which TLS version the client offers: 1.2 first (cheap session resumption on every data
//! connection), and 1.3 on a second connection when the server refuses 1.2. Neither vsftpd
//! 3.0.3 nor libunftp can be made to refuse 1.2, so the server here is a real rustls TLS stack
//! behind a minimal FTP control dialogue (enough to log in).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::ProtocolVersion;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use siteport_ftp::{ConnectOptions, FtpConnection, FtpErrorKind, SecretString, TlsMode};
use siteport_testsupport::TestCerts;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// What the server saw: one entry per `AUTH TLS`, the version negotiated or `None` when the
/// handshake failed.
type Handshakes = Arc<Mutex<Vec<Option<ProtocolVersion>>>>;

async fn control_dialogue<S>(stream: S)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut s = BufReader::new(stream);
    let mut line = String::new();
    loop {
        line.clear();
        if s.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let verb = line.split_whitespace().next().unwrap_or("").to_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "USER" => b"331 password please\r\n",
            "PASS" => b"230 logged in\r\n",
            "PBSZ" | "PROT" | "TYPE" => b"200 ok\r\n",
            "FEAT" => b"211-Features:\r\n UTF8\r\n211 End\r\n",
            "OPTS" => b"200 ok\r\n",
            "PWD" => b"257 \"/\" is the current directory\r\n",
            "NOOP" => b"200 ok\r\n",
            "QUIT" => {
                let _ = s.write_all(b"221 bye\r\n").await;
                return;
            }
            _ => b"502 not here\r\n",
        };
        if s.write_all(reply).await.is_err() {
            return;
        }
    }
}

const TLS13_ONLY: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];

/// Starts the server offering `versions`; returns its port and what it saw.
async fn start(
    certs: &TestCerts,
    versions: &'static [&'static rustls::SupportedProtocolVersion],
) -> (u16, Handshakes) {
    let chain = vec![CertificateDer::from_pem_slice(certs.cert_pem.as_bytes()).unwrap()];
    let key = PrivateKeyDer::from_pem_slice(certs.key_pem.as_bytes()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(versions)
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen: Handshakes = Arc::default();
    let seen2 = seen.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let seen = seen2.clone();
            tokio::spawn(async move {
                let mut plain = BufReader::new(tcp);
                if plain.write_all(b"220 tls-version test\r\n").await.is_err() {
                    return;
                }
                let mut line = String::new();
                if plain.read_line(&mut line).await.unwrap_or(0) == 0
                    || !line.eq_ignore_ascii_case("AUTH TLS\r\n")
                {
                    return;
                }
                if plain.write_all(b"234 go ahead\r\n").await.is_err() {
                    return;
                }
                // The client waits for 234 before its ClientHello: nothing is buffered.
                match acceptor.accept(plain.into_inner()).await {
                    Ok(tls) => {
                        seen.lock()
                            .unwrap()
                            .push(tls.get_ref().1.protocol_version());
                        control_dialogue(tls).await;
                    }
                    Err(_) => seen.lock().unwrap().push(None),
                }
            });
        }
    });
    (port, seen)
}

fn options(port: u16, certs: &TestCerts) -> ConnectOptions {
    let mut o = ConnectOptions::new(
        "127.0.0.1",
        port,
        TlsMode::Explicit,
        "user",
        SecretString::from("pw".to_string()),
    );
    o.ca_file = Some(certs.ca_path());
    o.timeout = Duration::from_secs(10);
    o
}

#[tokio::test]
async fn tls12_is_offered_first() {
    let certs = TestCerts::generate();
    let (port, seen) = start(&certs, rustls::DEFAULT_VERSIONS).await;
    let c = FtpConnection::connect(&options(port, &certs))
        .await
        .unwrap();
    assert!(c.is_tls());
    c.quit().await.unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        vec![Some(ProtocolVersion::TLSv1_2)],
        "one handshake, at TLS 1.2, although the server also speaks 1.3"
    );
}

#[tokio::test]
async fn a_tls13_only_server_gets_a_second_connection_offering_tls13() {
    let certs = TestCerts::generate();
    let (port, seen) = start(&certs, TLS13_ONLY).await;
    let c = FtpConnection::connect(&options(port, &certs))
        .await
        .unwrap_or_else(|e| panic!("connect to a TLS 1.3-only server: {e}"));
    assert!(c.is_tls());
    c.quit().await.unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        vec![None, Some(ProtocolVersion::TLSv1_3)],
        "the 1.2-only offer is refused, then 1.3 is negotiated"
    );
}

#[tokio::test]
async fn other_handshake_failures_are_not_retried() {
    let certs = TestCerts::generate();
    let other_ca = TestCerts::generate();
    let (port, seen) = start(&certs, rustls::DEFAULT_VERSIONS).await;
    let e = FtpConnection::connect(&options(port, &other_ca))
        .await
        .expect_err("a certificate from an untrusted CA must fail");
    assert_eq!(e.kind(), FtpErrorKind::Tls, "{e}");
    // The server records the failed handshake once the client has hung up.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(*seen.lock().unwrap(), vec![None], "exactly one attempt");
}
