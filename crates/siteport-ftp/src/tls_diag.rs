//! Why a TLS handshake failed, in words a user can act on: which check failed (unknown
//! issuer, another name, expired, the pin, plain text where TLS was expected), the server
//! certificate's SHA-256 fingerprint (in the form the `fingerprint` setting takes) and
//! subject, and the hint that fits what the connection trusted. The rustls error itself goes
//! to the debug log and stays the error's source.

use std::io;

use rustls::CertificateError;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use crate::error::{FtpError, FtpErrorKind};
use crate::tls::{Trust, fingerprint_sha256};

/// What the handshake needs to explain itself.
pub(crate) struct HandshakeCtx<'a> {
    /// `host:port`.
    pub(crate) server: &'a str,
    /// The host name the certificate was checked against.
    pub(crate) host: &'a str,
    /// "the control connection" or "the data connection".
    pub(crate) what: &'a str,
    /// What the connection trusted.
    pub(crate) trust: &'a Trust,
    /// The certificate the verifier rejected, if it got that far.
    pub(crate) cert: Option<Vec<u8>>,
    /// Implicit FTPS (TLS from the first byte).
    pub(crate) implicit: bool,
}

/// The server certificate, as shown to the user.
struct CertInfo {
    fingerprint: String,
    subject: String,
    names: Vec<String>,
    not_after: String,
}

fn cert_info(der: &[u8]) -> CertInfo {
    let fingerprint = fingerprint_sha256(der);
    match X509Certificate::from_der(der) {
        Ok((_, c)) => {
            let names = c
                .subject_alternative_name()
                .ok()
                .flatten()
                .map(|san| {
                    san.value
                        .general_names
                        .iter()
                        .filter_map(|n| match n {
                            GeneralName::DNSName(d) => Some((*d).to_owned()),
                            GeneralName::IPAddress(b) => ip_text(b),
                            _ => None,
                        })
                        .collect()
                })
                .unwrap_or_default();
            CertInfo {
                fingerprint,
                subject: printable(&c.subject().to_string()),
                names,
                not_after: c.validity().not_after.to_string(),
            }
        }
        Err(_) => CertInfo {
            fingerprint,
            subject: "(unreadable)".into(),
            names: Vec::new(),
            not_after: "?".into(),
        },
    }
}

fn ip_text(b: &[u8]) -> Option<String> {
    match b.len() {
        4 => Some(std::net::Ipv4Addr::from(<[u8; 4]>::try_from(b).ok()?).to_string()),
        16 => Some(std::net::Ipv6Addr::from(<[u8; 16]>::try_from(b).ok()?).to_string()),
        _ => None,
    }
}

/// A certificate comes from the server: never print its control characters.
fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// The rustls error inside an I/O error from the handshake, if that is what it is.
fn rustls_error(e: &io::Error) -> Option<&rustls::Error> {
    e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>())
}

/// The error for a failed handshake.
pub(crate) fn handshake_error(ctx: HandshakeCtx<'_>, e: io::Error) -> FtpError {
    tracing::debug!(server = %ctx.server, error = ?e, "TLS handshake failed on {}", ctx.what);
    let Some(r) = rustls_error(&e) else {
        // Not TLS at all: the connection broke during the handshake.
        return FtpError::new(
            FtpErrorKind::Transient,
            ctx.server,
            format!("connection lost during the TLS handshake on {}", ctx.what),
        )
        .with_source(e);
    };
    let info = ctx.cert.as_deref().map(cert_info);
    let (what, hint) = explain(&ctx, r, info.as_ref());
    let mut message = format!("TLS handshake failed on {}: {what}", ctx.what);
    if let Some(i) = &info {
        message.push_str(&format!(
            "; server certificate: subject {}, SHA-256 fingerprint {}",
            i.subject, i.fingerprint
        ));
    }
    FtpError::new(FtpErrorKind::Tls, ctx.server, message)
        .with_hint(hint)
        .with_source(e)
}

/// What failed and what fixes it.
fn explain(ctx: &HandshakeCtx<'_>, r: &rustls::Error, info: Option<&CertInfo>) -> (String, String) {
    let pin = |i: Option<&CertInfo>| {
        i.map(|i| format!("fingerprint = \"{}\"", i.fingerprint))
            .unwrap_or_else(|| "fingerprint = \"…\"".into())
    };
    match (ctx.trust, r) {
        (Trust::Pin, rustls::Error::InvalidCertificate(_) | rustls::Error::General(_)) => (
            "the server certificate does not match the pinned `fingerprint`".into(),
            format!(
                "if the server's certificate was renewed, check the new one out of band and \
                 pin it: {}",
                pin(info)
            ),
        ),
        (_, rustls::Error::InvalidCertificate(c)) => explain_cert(ctx, c, info, &pin(info)),
        (_, rustls::Error::InvalidMessage(_)) if ctx.implicit => (
            format!("the server did not answer with TLS ({r})"),
            "the server speaks plain text on this port: it expects explicit FTPS (`AUTH TLS`, \
             usually port 21): set tls = \"explicit\""
                .into(),
        ),
        (_, rustls::Error::AlertReceived(a)) => (
            format!("the server refused the handshake (alert: {a:?})"),
            "the server accepts no TLS version or cipher siteport offers (TLS 1.2 and 1.3), \
             or it wants a client certificate; check its TLS settings"
                .into(),
        ),
        _ => (
            r.to_string(),
            "run with -vv to see the TLS error in full".into(),
        ),
    }
}

fn explain_cert(
    ctx: &HandshakeCtx<'_>,
    c: &CertificateError,
    info: Option<&CertInfo>,
    pin: &str,
) -> (String, String) {
    let trust_fix = match ctx.trust {
        Trust::CaFile(p) => format!(
            "the certificate was not issued by a CA in ca_file {}: point ca_file at the CA \
             that issued it, or pin the certificate: {pin}",
            p.display()
        ),
        _ => format!(
            "the certificate is self-signed or from a private CA: set ca_file to that CA's \
             PEM file (or install it in the system trust store), or pin the certificate: {pin}"
        ),
    };
    match c {
        CertificateError::UnknownIssuer | CertificateError::BadSignature => (
            "the server certificate is not trusted (unknown issuer)".into(),
            trust_fix,
        ),
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            let names = info
                .map(|i| i.names.join(", "))
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| "other names".into());
            (
                format!(
                    "the server certificate is not valid for '{}' (it names {names})",
                    ctx.host
                ),
                format!(
                    "set host to a name the certificate holds ({names}), or pin the \
                     certificate: {pin}"
                ),
            )
        }
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => (
            format!(
                "the server certificate expired ({})",
                info.map_or("?", |i| i.not_after.as_str())
            ),
            format!(
                "the server's certificate must be renewed; until then, pin it only if you \
                 trust this server: {pin}"
            ),
        ),
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => (
            "the server certificate is not valid yet (check this machine's clock)".into(),
            "check the clock of this machine and of the server".into(),
        ),
        other => (
            format!("the server certificate was rejected ({other:?})"),
            trust_fix,
        ),
    }
}
