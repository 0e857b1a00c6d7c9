//! rustls client configuration: web PKI roots plus the system's trust store, a CA file, a
//! fingerprint pin, or no verification. Every verifier is wrapped so that the certificate a
//! failed handshake was shown is kept, for an error that names it (see `tls_diag`).

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{Resumption, WebPkiServerVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};

use crate::error::{FtpError, FtpErrorKind};
use crate::options::ConnectOptions;

/// SHA-256 of a DER certificate as uppercase hex with `:` separators (the `openssl x509
/// -fingerprint -sha256` format).
pub fn fingerprint_sha256(der: &[u8]) -> String {
    let digest = Sha256::digest(der);
    digest
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Parses a fingerprint given as hex, with or without `:` (or spaces), any case; `None` when
/// it is not 32 bytes of hex (what the `fingerprint` setting must be).
pub fn parse_fingerprint(s: &str) -> Option<[u8; 32]> {
    let hex: String = s
        .chars()
        .filter(|c| !matches!(c, ':' | ' ' | '-'))
        .collect();
    let hex = hex.strip_prefix("sha256/").unwrap_or(&hex);
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// What a connection trusts: decides which hint fits a failed verification.
#[derive(Debug, Clone)]
pub(crate) enum Trust {
    /// webpki-roots and the system's trust store.
    Roots,
    /// Only the CAs of this file (`ca_file`).
    CaFile(PathBuf),
    /// Only the certificate with this fingerprint (`fingerprint`).
    Pin,
    /// Anything (`insecure = true`).
    Insecure,
}

/// The DER of the last server certificate that failed verification on a connection.
pub(crate) type SeenCert = Arc<Mutex<Option<Vec<u8>>>>;

/// A connection's TLS client setup: the config, what it trusts, and where a rejected
/// certificate is kept.
pub(crate) struct TlsSetup {
    pub(crate) config: Arc<ClientConfig>,
    pub(crate) trust: Trust,
    pub(crate) seen: SeenCert,
}

/// Delegates to the real verifier and keeps the certificate it rejected.
#[derive(Debug)]
struct Recording {
    inner: Arc<dyn ServerCertVerifier>,
    seen: SeenCert,
}

impl ServerCertVerifier for Recording {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let r = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        );
        if r.is_err() {
            // A poisoned lock only means a panic elsewhere; the slot is still usable.
            *self.seen.lock().unwrap_or_else(|p| p.into_inner()) = Some(end_entity.to_vec());
        }
        r
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The system's trust store (what `update-ca-certificates` installs, `SSL_CERT_FILE`,
/// `SSL_CERT_DIR`), read once per process. Unreadable entries are skipped: the built-in roots
/// still apply.
fn system_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for e in &found.errors {
            tracing::debug!("system trust store: {e}");
        }
        tracing::debug!(
            certificates = found.certs.len(),
            "system trust store loaded"
        );
        found.certs
    })
}

/// Accepts the certificate if its fingerprint matches the pin (or always, when `pin` is None:
/// `insecure`), but still checks the handshake signatures, so the peer must hold the key.
#[derive(Debug)]
struct PinVerifier {
    pin: Option<[u8; 32]>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.pin {
            None => Ok(ServerCertVerified::assertion()),
            Some(pin) => {
                let got: [u8; 32] = Sha256::digest(end_entity.as_ref()).into();
                if got == pin {
                    Ok(ServerCertVerified::assertion())
                } else {
                    Err(rustls::Error::General(format!(
                        "server certificate fingerprint {} does not match the pinned fingerprint",
                        fingerprint_sha256(end_entity.as_ref())
                    )))
                }
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Builds the client config for one control connection. Each connection gets its own session
/// cache, so its data connections resume exactly the session of their own control connection
/// (what vsftpd's `require_ssl_reuse` checks), never one of a sibling connection.
/// `tls12_only`: offer TLS 1.2 alone (see `FtpConnection::connect` for why).
/// Adds the certificates of the PEM file `path` to `roots`; the reason (naming the file)
/// when it cannot be read or holds no usable certificate.
fn ca_roots(path: &std::path::Path, roots: &mut RootCertStore) -> Result<usize, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read CA file {}: {e}", path.display()))?;
    let (added, _ignored) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(format!(
            "CA file {} holds no usable certificate",
            path.display()
        ));
    }
    Ok(added)
}

/// Checks that `path` is a PEM file with at least one certificate a connection could trust,
/// as a connection with `ca_file = path` would load it: how many it holds, or why not (a
/// config checker reports this before any connection is tried).
pub fn check_ca_file(path: &std::path::Path) -> Result<usize, String> {
    ca_roots(path, &mut RootCertStore::empty())
}

pub(crate) fn client_config(opts: &ConnectOptions, tls12_only: bool) -> Result<TlsSetup, FtpError> {
    let server = opts.server();
    let tls_err = |msg: String| FtpError::new(FtpErrorKind::Tls, server.clone(), msg);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] = if tls12_only {
        &[&rustls::version::TLS12]
    } else {
        rustls::DEFAULT_VERSIONS
    };
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| tls_err(format!("TLS setup failed: {e}")))?;

    let seen: SeenCert = Arc::default();
    let recording = |inner: Arc<dyn ServerCertVerifier>| {
        Arc::new(Recording {
            inner,
            seen: seen.clone(),
        })
    };
    let (mut config, trust) = if let Some(fp) = &opts.fingerprint {
        let pin = parse_fingerprint(fp).ok_or_else(|| {
            tls_err("fingerprint is not a SHA-256 hex digest (64 hex digits, ':' allowed)".into())
                .with_hint(
                    "get it with `openssl s_client -connect HOST:PORT -starttls ftp | \
                     openssl x509 -noout -fingerprint -sha256`",
                )
        })?;
        let config = builder
            .dangerous()
            .with_custom_certificate_verifier(recording(Arc::new(PinVerifier {
                pin: Some(pin),
                provider,
            })))
            .with_no_client_auth();
        (config, Trust::Pin)
    } else if opts.insecure {
        tracing::warn!(server = %server, "TLS certificate verification is disabled (insecure = true)");
        let config = builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinVerifier {
                pin: None,
                provider,
            }))
            .with_no_client_auth();
        (config, Trust::Insecure)
    } else {
        let mut roots = RootCertStore::empty();
        if let Some(path) = &opts.ca_file {
            ca_roots(path, &mut roots).map_err(tls_err)?;
        } else {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            // A CA the system trusts (a company CA) is trusted too.
            roots.add_parsable_certificates(system_roots().iter().cloned());
        }
        let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| tls_err(format!("TLS setup failed: {e}")))?;
        let config = builder
            .dangerous()
            .with_custom_certificate_verifier(recording(verifier))
            .with_no_client_auth();
        let trust = match &opts.ca_file {
            Some(p) => Trust::CaFile(p.clone()),
            None => Trust::Roots,
        };
        (config, trust)
    };
    config.resumption = Resumption::in_memory_sessions(64);
    Ok(TlsSetup {
        config: Arc::new(config),
        trust,
        seen,
    })
}

/// Whether a handshake failed because the server would not speak the offered TLS version
/// (an alert `protocol_version`, or a reply rustls cannot use with TLS 1.2 alone).
pub(crate) fn is_version_refusal(e: &FtpError) -> bool {
    use rustls::AlertDescription;
    let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(err) = cur {
        let inner = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|i| i.downcast_ref::<rustls::Error>())
            .or_else(|| err.downcast_ref::<rustls::Error>());
        if let Some(r) = inner {
            return matches!(
                r,
                rustls::Error::AlertReceived(
                    AlertDescription::ProtocolVersion | AlertDescription::HandshakeFailure
                ) | rustls::Error::PeerIncompatible(_)
            );
        }
        cur = err.source();
    }
    false
}

/// The name the certificate is checked against and the session cache is keyed by.
pub(crate) fn server_name(opts: &ConnectOptions) -> Result<ServerName<'static>, FtpError> {
    let host = opts.host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_string()).map_err(|e| {
        FtpError::new(
            FtpErrorKind::Tls,
            opts.server(),
            format!("'{host}' is not a valid TLS server name: {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_formats_and_parses() {
        let fp = fingerprint_sha256(b"abc");
        assert_eq!(fp.len(), 32 * 3 - 1);
        assert!(fp.starts_with("BA:78:16:BF"));
        let raw = parse_fingerprint(&fp).unwrap();
        assert_eq!(
            raw,
            parse_fingerprint(&fp.replace(':', "").to_lowercase()).unwrap()
        );
        assert!(parse_fingerprint("BA:78").is_none());
        assert!(parse_fingerprint(&"zz".repeat(32)).is_none());
    }
}
