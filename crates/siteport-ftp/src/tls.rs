//! rustls client configuration: web PKI roots, a CA file, a fingerprint pin, or no verification.

use std::sync::Arc;

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
pub(crate) fn client_config(
    opts: &ConnectOptions,
    tls12_only: bool,
) -> Result<Arc<ClientConfig>, FtpError> {
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

    let mut config = if let Some(fp) = &opts.fingerprint {
        let pin = parse_fingerprint(fp).ok_or_else(|| {
            tls_err("fingerprint is not a SHA-256 hex digest (64 hex digits, ':' allowed)".into())
                .with_hint(
                    "get it with `openssl s_client -connect HOST:PORT -starttls ftp | \
                     openssl x509 -noout -fingerprint -sha256`",
                )
        })?;
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinVerifier {
                pin: Some(pin),
                provider,
            }))
            .with_no_client_auth()
    } else if opts.insecure {
        tracing::warn!(server = %server, "TLS certificate verification is disabled (insecure = true)");
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinVerifier {
                pin: None,
                provider,
            }))
            .with_no_client_auth()
    } else {
        let mut roots = RootCertStore::empty();
        if let Some(path) = &opts.ca_file {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| {
                    tls_err(format!("cannot read CA file {}: {e}", path.display()))
                        .with_hint("ca_file must be a PEM file with one or more CERTIFICATE blocks")
                })?;
            let (added, _ignored) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(tls_err(format!(
                    "CA file {} holds no usable certificate",
                    path.display()
                )));
            }
        } else {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
        let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| tls_err(format!("TLS setup failed: {e}")))?;
        builder.with_webpki_verifier(verifier).with_no_client_auth()
    };
    config.resumption = Resumption::in_memory_sessions(64);
    Ok(Arc::new(config))
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
