//! Throwaway certificates: a CA and a leaf for `127.0.0.1`/`localhost`.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use sha2::{Digest, Sha256};

/// A test CA and a server certificate it signed, written as PEM files to a temp dir (removed on
/// drop). The leaf has `basicConstraints=critical,CA:FALSE` and SANs `IP:127.0.0.1` and
/// `DNS:localhost` (rustls refuses a self-signed CA:TRUE leaf).
pub struct TestCerts {
    dir: tempfile::TempDir,
    /// PEM of the CA certificate (what a client's `ca_file` holds).
    pub ca_pem: String,
    /// PEM of the server certificate.
    pub cert_pem: String,
    /// PEM of the server's private key.
    pub key_pem: String,
    /// SHA-256 of the server certificate's DER, uppercase hex with `:` (for pin tests).
    pub fingerprint: String,
    /// SHA-256 of the CA certificate (a pin that must NOT match the leaf).
    pub ca_fingerprint: String,
}

impl std::fmt::Debug for TestCerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCerts")
            .field("dir", &self.dir.path())
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

fn sha256_hex(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

impl TestCerts {
    /// Generates a fresh CA and leaf. Panics on failure (test fixture).
    pub fn generate() -> TestCerts {
        TestCerts::generate_for(&[])
    }

    /// As [`generate`](Self::generate), with `extra_dns` names added to the leaf's SANs (e.g.
    /// `myvault.vault.localhost` for a fake cloud endpoint).
    pub fn generate_for(extra_dns: &[&str]) -> TestCerts {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "siteport test CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_key = KeyPair::generate().expect("CA key");
        let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
        let issuer = Issuer::new(ca_params, ca_key);

        let mut names = vec!["localhost".to_string()];
        names.extend(extra_dns.iter().map(|n| (*n).to_owned()));
        let mut leaf = CertificateParams::new(names).expect("leaf params");
        leaf.subject_alt_names
            .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        leaf.distinguished_name
            .push(DnType::CommonName, "siteport test server");
        leaf.is_ca = IsCa::ExplicitNoCa;
        leaf.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let leaf_key = KeyPair::generate().expect("leaf key");
        let leaf_cert = leaf
            .signed_by(&leaf_key, &issuer)
            .expect("leaf certificate");

        let dir = tempfile::Builder::new()
            .prefix("siteport-certs")
            .tempdir()
            .expect("temp dir for certificates");
        let certs = TestCerts {
            ca_pem: ca_cert.pem(),
            cert_pem: leaf_cert.pem(),
            key_pem: leaf_key.serialize_pem(),
            fingerprint: sha256_hex(leaf_cert.der()),
            ca_fingerprint: sha256_hex(ca_cert.der()),
            dir,
        };
        crate::write_private(&certs.ca_path(), certs.ca_pem.as_bytes());
        crate::write_private(&certs.cert_path(), certs.cert_pem.as_bytes());
        crate::write_private(&certs.key_path(), certs.key_pem.as_bytes());
        // pure-ftpd and vsftpd also read key + certificate from one file.
        crate::write_private(
            &certs.combined_path(),
            format!("{}{}", certs.key_pem, certs.cert_pem).as_bytes(),
        );
        certs
    }

    /// The directory holding the PEM files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
    /// `ca.pem`.
    pub fn ca_path(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }
    /// `cert.pem` (leaf).
    pub fn cert_path(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }
    /// `key.pem` (leaf key, 0600).
    pub fn key_path(&self) -> PathBuf {
        self.dir.path().join("key.pem")
    }
    /// `server.pem`: key then certificate (pure-ftpd's format).
    pub fn combined_path(&self) -> PathBuf {
        self.dir.path().join("server.pem")
    }
}
