//! Each TLS and connection failure says which it is, against real servers: the in-process
//! FTPS server (libunftp) with certificates made here for the case (another CA, another name,
//! expired), a real rustls implicit-FTPS listener, a closed port, a full accept backlog and a
//! server that never greets. Every certificate failure shows the server certificate's SHA-256
//! fingerprint in the form the `fingerprint` setting takes, and its subject.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use siteport_ftp::{
    ConnectOptions, FtpConnection, FtpError, FtpErrorKind, SecretString, TlsMode,
    fingerprint_sha256,
};
use siteport_ftpd::EmbeddedServer;
use tokio::io::AsyncWriteExt;

const PASSWORD: &str = "tls-errors-Pa55";

/// A CA and a leaf it signed for `names` (DNS, or an IP address when it parses as one),
/// valid from `not_before` to `not_after` (years).
struct Made {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
    fingerprint: String,
}

fn make(names: &[&str], not_before: i32, not_after: i32) -> Made {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "tls-errors test CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let mut leaf = CertificateParams::new(Vec::<String>::new()).unwrap();
    for n in names {
        leaf.subject_alt_names.push(match n.parse::<Ipv4Addr>() {
            Ok(ip) => SanType::IpAddress(ip.into()),
            Err(_) => SanType::DnsName((*n).try_into().unwrap()),
        });
    }
    leaf.distinguished_name
        .push(DnType::CommonName, "tls-errors server");
    leaf.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.not_before = rcgen::date_time_ymd(2026 + not_before, 1, 1);
    leaf.not_after = rcgen::date_time_ymd(2026 + not_after, 1, 1);
    let key = KeyPair::generate().unwrap();
    let cert = leaf.signed_by(&key, &issuer).unwrap();
    Made {
        ca_pem: ca_cert.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        fingerprint: fingerprint_sha256(cert.der()),
    }
}

fn good() -> Made {
    make(&["localhost", "127.0.0.1"], -1, 5)
}

/// The in-process FTPS server (explicit) with `m`'s certificate.
fn serve(m: &Made, root: &Path) -> EmbeddedServer {
    EmbeddedServer::start(
        root,
        "tester",
        SecretString::from(PASSWORD),
        Some((m.cert_pem.clone(), m.key_pem.clone())),
    )
    .unwrap()
}

fn opts(port: u16, tls: TlsMode) -> ConnectOptions {
    let mut o = ConnectOptions::new(
        "127.0.0.1".to_owned(),
        port,
        tls,
        "tester".to_owned(),
        SecretString::from(PASSWORD),
    );
    o.timeout = Duration::from_secs(2);
    o
}

fn connect(o: &ConnectOptions) -> Result<FtpConnection, FtpError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(FtpConnection::connect(o))
}

fn fails(o: &ConnectOptions) -> FtpError {
    match connect(o) {
        Ok(_) => panic!("connected to {}", o.server()),
        Err(e) => {
            eprintln!("{e}\n  hint: {}", e.hint().unwrap_or("-"));
            e
        }
    }
}

fn ca_file(dir: &Path, pem: &str) -> std::path::PathBuf {
    let p = dir.join("ca.pem");
    std::fs::write(&p, pem).unwrap();
    p
}

#[track_caller]
fn assert_shows_cert(e: &FtpError, m: &Made) {
    let msg = e.message();
    assert_eq!(e.kind(), FtpErrorKind::Tls, "{e}");
    assert!(msg.contains(&m.fingerprint), "no fingerprint in: {msg}");
    assert!(msg.contains("CN=tls-errors server"), "no subject in: {msg}");
}

#[test]
fn unknown_issuer_says_so_and_offers_the_pin() {
    let dir = tempfile::tempdir().unwrap();
    let m = good();
    let server = serve(&m, dir.path());
    let e = fails(&opts(server.port(), TlsMode::Explicit));
    assert!(e.message().contains("not trusted (unknown issuer)"), "{e}");
    assert_shows_cert(&e, &m);
    let hint = e.hint().unwrap();
    assert!(hint.contains("set ca_file"), "{hint}");
    assert!(
        hint.contains(&format!("fingerprint = \"{}\"", m.fingerprint)),
        "{hint}"
    );

    // With a ca_file of another CA, the hint says that file is the wrong one.
    let other = good();
    let mut o = opts(server.port(), TlsMode::Explicit);
    o.ca_file = Some(ca_file(dir.path(), &other.ca_pem));
    let e = fails(&o);
    assert!(e.message().contains("unknown issuer"), "{e}");
    let hint = e.hint().unwrap();
    assert!(hint.contains("not issued by a CA in ca_file"), "{hint}");
    assert!(!hint.contains("set ca_file"), "{hint}");

    // The pin the hint offers works, and so does the right CA.
    let mut o = opts(server.port(), TlsMode::Explicit);
    o.fingerprint = Some(m.fingerprint.clone());
    connect(&o).unwrap();
    let mut o = opts(server.port(), TlsMode::Explicit);
    o.ca_file = Some(ca_file(dir.path(), &m.ca_pem));
    connect(&o).unwrap();
}

#[test]
fn name_mismatch_names_the_certificate_names() {
    let dir = tempfile::tempdir().unwrap();
    let m = make(&["other.example"], -1, 5);
    let server = serve(&m, dir.path());
    let mut o = opts(server.port(), TlsMode::Explicit);
    o.ca_file = Some(ca_file(dir.path(), &m.ca_pem));
    let e = fails(&o);
    assert!(
        e.message()
            .contains("not valid for '127.0.0.1' (it names other.example)"),
        "{e}"
    );
    assert_shows_cert(&e, &m);
    assert!(
        e.hint()
            .unwrap()
            .contains("set host to a name the certificate holds")
    );
}

#[test]
fn expired_certificate_says_expired() {
    let dir = tempfile::tempdir().unwrap();
    let m = make(&["localhost", "127.0.0.1"], -3, -1);
    let server = serve(&m, dir.path());
    let mut o = opts(server.port(), TlsMode::Explicit);
    o.ca_file = Some(ca_file(dir.path(), &m.ca_pem));
    let e = fails(&o);
    assert!(e.message().contains("certificate expired"), "{e}");
    assert!(e.message().contains("2025"), "the expiry date: {e}");
    assert_shows_cert(&e, &m);
    assert!(e.hint().unwrap().contains("must be renewed"));
}

#[test]
fn wrong_pin_says_the_pin_and_shows_the_real_fingerprint() {
    let dir = tempfile::tempdir().unwrap();
    let m = good();
    let server = serve(&m, dir.path());
    let mut o = opts(server.port(), TlsMode::Explicit);
    o.fingerprint = Some(good().fingerprint);
    let e = fails(&o);
    assert!(
        e.message()
            .contains("does not match the pinned `fingerprint`"),
        "{e}"
    );
    assert_shows_cert(&e, &m);
    let hint = e.hint().unwrap();
    assert!(
        hint.contains("renewed") && hint.contains(&m.fingerprint),
        "{hint}"
    );
    assert!(!hint.contains("set ca_file"), "{hint}");
}

#[test]
fn implicit_client_on_an_explicit_server() {
    let dir = tempfile::tempdir().unwrap();
    let m = good();
    let server = serve(&m, dir.path());
    let mut o = opts(server.port(), TlsMode::Implicit);
    o.ca_file = Some(ca_file(dir.path(), &m.ca_pem));
    let e = fails(&o);
    assert_eq!(e.kind(), FtpErrorKind::Tls, "{e}");
    assert!(e.message().contains("did not answer with TLS"), "{e}");
    assert!(
        e.hint().unwrap().contains("tls = \"explicit\""),
        "{:?}",
        e.hint()
    );
}

/// A real implicit-FTPS listener (TLS from the first byte, then a greeting): an explicit
/// client waits for a plain greeting that never comes.
#[test]
fn explicit_client_on_an_implicit_server() {
    let m = good();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let port = rt.block_on(async {
        let chain = vec![CertificateDer::from_pem_slice(m.cert_pem.as_bytes()).unwrap()];
        let key = PrivateKeyDer::from_pem_slice(m.key_pem.as_bytes()).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    if let Ok(mut tls) = acceptor.accept(tcp).await {
                        let _ = tls.write_all(b"220 implicit FTPS\r\n").await;
                        tokio::time::sleep(Duration::from_secs(10)).await;
                    }
                });
            }
        });
        port
    });
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(port, TlsMode::Explicit);
    o.ca_file = Some(ca_file(dir.path(), &m.ca_pem));
    let e = fails(&o);
    assert!(
        e.hint().unwrap().contains("tls = \"implicit\""),
        "{:?}",
        e.hint()
    );
    // And the same listener works as implicit FTPS (the TLS part: the greeting arrives).
    let mut o = opts(port, TlsMode::Implicit);
    o.ca_file = Some(ca_file(dir.path(), &m.ca_pem));
    let e = fails(&o);
    assert!(!e.message().contains("TLS handshake failed"), "{e}");
    drop(rt);
}

#[test]
fn refused_connection_says_refused() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let e = fails(&opts(port, TlsMode::None));
    assert_eq!(e.kind(), FtpErrorKind::Network);
    assert!(e.message().starts_with("connection refused"), "{e}");
}

/// A listener whose accept queue is full (backlog 1, never accepting): the next SYN is
/// dropped and the connection times out, on loopback.
#[test]
fn unanswered_connection_times_out_with_the_time() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (port, _listener, _held) = rt.block_on(async {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .unwrap();
        let listener = sock.listen(0).unwrap();
        let addr = listener.local_addr().unwrap();
        // Fill the queue: these complete the handshake and sit there, never accepted.
        let mut held = Vec::new();
        for _ in 0..4 {
            if let Ok(Ok(s)) = tokio::time::timeout(
                Duration::from_millis(300),
                tokio::net::TcpStream::connect(addr),
            )
            .await
            {
                held.push(s);
            }
        }
        (addr.port(), listener, held)
    });
    let mut o = opts(port, TlsMode::None);
    o.timeout = Duration::from_secs(1);
    let e = fails(&o);
    assert_eq!(e.kind(), FtpErrorKind::Network);
    assert!(e.message().contains("timed out after 1 s"), "{e}");
}

/// A server that accepts and never greets: the wait for the greeting times out, and the hint
/// names implicit FTPS (the usual cause).
#[test]
fn silent_server_times_out_waiting_for_the_greeting() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let t = std::thread::spawn(move || listener.accept().map(|(s, _)| s));
    let mut o = opts(port, TlsMode::Explicit);
    o.timeout = Duration::from_secs(1);
    let e = fails(&o);
    assert!(
        e.to_string().contains("(greeting): no answer within 1 s"),
        "{e}"
    );
    assert!(e.hint().unwrap().contains("implicit"), "{:?}", e.hint());
    drop(t.join());
}

#[test]
fn unresolvable_name_says_not_resolved() {
    let mut o = opts(21, TlsMode::None);
    o.host = "no-such-host.invalid".into();
    let e = fails(&o);
    assert_eq!(e.kind(), FtpErrorKind::Network);
    assert!(e.message().starts_with("name not resolved"), "{e}");
}
