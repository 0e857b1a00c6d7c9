//! The SDK's HTTP transport (reqwest 0.12 on rustls/ring) and the Key Vault client built on it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use azure_core::http::headers::{HeaderName, HeaderValue, Headers};
use azure_core::http::{
    AsyncRawResponse, Body, ClientOptions, ExponentialRetryOptions, HttpClient, Method, Request,
    RetryOptions, Transport, Url,
};
use azure_security_keyvault_secrets::{SecretClient, SecretClientOptions};

use crate::error::{Error, ErrorKind, Result};

use super::backend::AzureBackend;
use super::fault::safe_message;
use super::settings::AzureSettings;

/// The SDK's HTTP transport over reqwest 0.12 with rustls on ring.
#[derive(Debug)]
pub(super) struct RustlsTransport(reqwest::Client);

#[async_trait]
impl HttpClient for RustlsTransport {
    async fn execute_request(&self, request: &Request) -> azure_core::Result<AsyncRawResponse> {
        use azure_core::error::{Error as AzError, ErrorKind as AzKind};
        let method = match request.method() {
            Method::Delete => reqwest::Method::DELETE,
            Method::Get => reqwest::Method::GET,
            Method::Head => reqwest::Method::HEAD,
            Method::Patch => reqwest::Method::PATCH,
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
            other => {
                return Err(AzError::with_message(
                    AzKind::Other,
                    format!("HTTP method {other:?} is not supported by this transport"),
                ));
            }
        };
        let mut req = self.0.request(method, request.url().as_str());
        for (name, value) in request.headers().iter() {
            req = req.header(name.as_str(), value.as_str());
        }
        req = match request.body() {
            Body::Bytes(b) => req.body(b.clone()),
            // Key Vault secrets requests are small JSON documents; streams never occur.
            _ => {
                return Err(AzError::with_message(
                    AzKind::Io,
                    "streaming request bodies are not supported by this transport",
                ));
            }
        };
        let rsp = req.send().await.map_err(|e| {
            let kind = if e.is_connect() || e.is_timeout() {
                AzKind::Connection
            } else {
                AzKind::Io
            };
            // reqwest's message names the URL, never headers or bodies.
            AzError::with_message(kind, format!("request failed: {}", error_chain(&e)))
        })?;
        let status = rsp.status().as_u16();
        let headers: HashMap<HeaderName, HeaderValue> = rsp
            .headers()
            .iter()
            .filter_map(|(k, v)| {
                let v = v.to_str().ok()?;
                Some((
                    HeaderName::from(k.as_str().to_owned()),
                    HeaderValue::from(v.to_owned()),
                ))
            })
            .collect();
        let body = rsp.bytes().await.map_err(|e| {
            AzError::with_message(AzKind::Io, format!("reading the response failed: {e}"))
        })?;
        Ok(AsyncRawResponse::from_bytes(
            status.into(),
            Headers::from(headers),
            body,
        ))
    }
}

pub(super) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = c.source();
    }
    s
}

pub(super) fn host_of(url: &str) -> Option<String> {
    Url::parse(url).ok()?.host_str().map(str::to_owned)
}
impl AzureBackend {
    pub(super) fn client_options(&self) -> ClientOptions {
        let mut o = ClientOptions {
            transport: Some(Transport::new(Arc::new(RustlsTransport(self.http.clone())))),
            retry: RetryOptions::exponential(ExponentialRetryOptions {
                initial_delay: azure_core::time::Duration::milliseconds(200),
                max_retries: self.attempts.saturating_sub(1),
                max_total_elapsed: azure_core::time::Duration::seconds(
                    i64::try_from(self.timeout.as_secs()).unwrap_or(i64::MAX),
                ),
                max_delay: azure_core::time::Duration::seconds(5),
            }),
            ..Default::default()
        };
        if let Some(a) = &self.authority_host {
            let mut custom = azure_core::cloud::CustomConfiguration::default();
            custom.authority_host = a.clone();
            o.cloud = Some(Arc::new(custom.into()));
        }
        o
    }

    pub(super) async fn client(&self) -> Result<&SecretClient> {
        self.client
            .get_or_try_init(|| async {
                let setup = |e: azure_core::Error| {
                    Error::new(
                        ErrorKind::Invalid,
                        &self.describe,
                        format!(
                            "cannot set up {} authentication: {}",
                            self.auth.label(),
                            safe_message(&e)
                        ),
                    )
                    .with_hint(self.auth.hint())
                };
                let credential = self.credential().map_err(setup)?;
                SecretClient::new(
                    &self.vault_url,
                    credential,
                    Some(SecretClientOptions {
                        client_options: self.client_options(),
                        ..Default::default()
                    }),
                )
                .map_err(setup)
            })
            .await
    }
}

/// The HTTPS client under the SDK: timeouts, no redirects, `*.localhost` resolved locally,
/// and the extra CAs of `ca_cert`.
pub(super) fn http_client(
    settings: &AzureSettings,
    vault_url: &str,
    authority_host: Option<&str>,
    timeout: Duration,
    describe: &str,
) -> Result<reqwest::Client> {
    let invalid = |d: &str, detail: String, hint: &str| {
        Error::new(ErrorKind::Invalid, d, detail).with_hint(hint.to_owned())
    };
    let mut builder = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        // Azure REST guidelines: services do not redirect; never follow one with a token.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("siteport/", env!("CARGO_PKG_VERSION")));
    for url in [Some(vault_url), authority_host].into_iter().flatten() {
        if let Some(h) = host_of(url)
            && (h == "localhost" || h.ends_with(".localhost"))
        {
            builder = builder.resolve(&h, (std::net::Ipv4Addr::LOCALHOST, 0).into());
        }
    }
    if let Some(ca) = &settings.ca_cert {
        let hint = "fix `ca_cert` in [credentials.azure] (a PEM file)";
        let pem = std::fs::read(ca).map_err(|e| {
            invalid(
                describe,
                format!("cannot read the CA certificate {}: {e}", ca.display()),
                hint,
            )
        })?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
            invalid(
                describe,
                format!("{} is not a PEM certificate: {e}", ca.display()),
                hint,
            )
        })?;
        for c in certs {
            builder = builder.add_root_certificate(c);
        }
    }
    builder.build().map_err(|e| {
        Error::new(
            ErrorKind::Invalid,
            describe,
            format!("cannot set up the HTTP client: {e}"),
        )
    })
}
