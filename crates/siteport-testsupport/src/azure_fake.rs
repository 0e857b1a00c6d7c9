//! An in-process fake of Azure Key Vault's secrets REST API and of the Entra ID token endpoint,
//! written from the official references (Key Vault REST api-version 7.5/7.6, Microsoft identity
//! platform client-credentials flow), for the azure backend's tests.
//!
//! It serves HTTPS (its own [`TestCerts`], with the SAN `siteport-test.vault.localhost`) on
//! 127.0.0.1, because `azure_identity` refuses an authority that is not `https`:
//! - Vault, at [`AzureFake::vault_url`] (`https://siteport-test.vault.localhost:PORT/`):
//!   `PUT /secrets/{name}`, `GET /secrets/{name}[/{version}]`, `DELETE /secrets/{name}`,
//!   `GET /secrets` (paged with `nextLink`, `maxresults`), `GET /deletedsecrets`,
//!   `GET`/`DELETE /deletedsecrets/{name}`, `POST /deletedsecrets/{name}/recover`. Every request
//!   needs `api-version`. Names are case-insensitive and must match `^[0-9a-zA-Z-]{1,127}$`.
//!   Errors are `{"error":{"code","message"[,"innererror"]}}`; soft delete is always on, so
//!   writing a deleted name gives 409 `Conflict` / `ObjectIsDeletedButRecoverable`.
//! - Challenge-based auth: a request without a valid bearer token gets 401 with
//!   `WWW-Authenticate: Bearer authorization="<authority>/<tenant>", resource="https://vault.localhost"`
//!   (the resource is the vault host's DNS suffix, as `https://vault.azure.net` is for
//!   `*.vault.azure.net`).
//! - Entra ID, at [`AzureFake::authority_host`] (`https://localhost:PORT`):
//!   `POST /{tenant}/oauth2/v2.0/token` with `grant_type=client_credentials`, `client_id`,
//!   `client_secret`, `scope`; bad secrets get 401 `invalid_client` (AADSTS7000215), unknown
//!   tenants 400 (AADSTS90002).
//!
//! Test hooks: [`AzureFake::fail_next`] (answer the next authenticated vault requests with a
//! status), [`AzureFake::set_page_size`], [`AzureFake::put_raw`], [`AzureFake::secret`],
//! [`AzureFake::is_deleted`], counters.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::TestCerts;

/// The tenant the fake's Entra ID knows.
pub const TENANT_ID: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
/// The application (client) ID it accepts.
pub const CLIENT_ID: &str = "0b5c7a21-9a3e-4d6c-8d3f-1c2b3a4d5e6f";
/// The client secret it accepts.
pub const CLIENT_SECRET: &str = "Fz-fake-azure-client-secret~value";
/// The vault's host name (resolved to 127.0.0.1: a `.localhost` name).
pub const VAULT_HOST: &str = "siteport-test.vault.localhost";

#[derive(Clone)]
struct Version {
    id: String,
    value: String,
    content_type: Option<String>,
    tags: Option<Value>,
}

#[derive(Clone)]
struct Secret {
    name: String,
    versions: Vec<Version>,
    created: u64,
    updated: u64,
    deleted: Option<u64>,
}

#[derive(Default)]
struct State {
    secrets: BTreeMap<String, Secret>,
    tokens: HashMap<String, ()>,
    fail_next: Vec<u16>,
    page_size: usize,
    vault_requests: usize,
    token_requests: usize,
    counter: u64,
}

/// A running fake; stops when dropped.
pub struct AzureFake {
    addr: SocketAddr,
    certs: TestCerts,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for AzureFake {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl std::fmt::Debug for AzureFake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureFake")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

fn reply(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

fn kv_error(status: StatusCode, code: &str, message: &str, inner: Option<&str>) -> Response {
    let mut e = json!({"code": code, "message": message});
    if let Some(i) = inner {
        e["innererror"] = json!({"code": i});
    }
    reply(status, json!({ "error": e }))
}

/// TLS in front of a TCP listener, for `axum::serve`.
struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            // A client that does not trust the CA just fails its handshake.
            if let Ok(Ok(tls)) =
                tokio::time::timeout(Duration::from_secs(5), self.acceptor.accept(tcp)).await
            {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

impl AzureFake {
    /// Starts the fake on 127.0.0.1 with a free port (HTTPS, its own CA).
    pub async fn start() -> AzureFake {
        use rustls_pki_types::pem::PemObject;
        let certs = TestCerts::generate_for(&[VAULT_HOST]);
        let chain = vec![
            rustls_pki_types::CertificateDer::from_pem_slice(certs.cert_pem.as_bytes())
                .expect("leaf PEM"),
        ];
        let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(certs.key_pem.as_bytes())
            .expect("key PEM");
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("server certificate");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the Azure fake");
        let addr = tcp.local_addr().expect("local addr");
        let state = Arc::new(Mutex::new(State {
            page_size: 25,
            ..Default::default()
        }));
        let st = state.clone();
        let port = addr.port();
        let app = Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let st = st.clone();
                async move { handle(&st, port, method, uri, headers, body) }
            },
        );
        let listener = TlsListener {
            tcp,
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        };
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        AzureFake {
            addr,
            certs,
            state,
            task,
        }
    }

    /// `https://siteport-test.vault.localhost:PORT/`.
    pub fn vault_url(&self) -> String {
        format!("https://{VAULT_HOST}:{}/", self.addr.port())
    }

    /// `https://localhost:PORT` (the Entra ID authority).
    pub fn authority_host(&self) -> String {
        format!("https://localhost:{}", self.addr.port())
    }

    /// The PEM file of the CA that signed the fake's certificate.
    pub fn ca_path(&self) -> PathBuf {
        self.certs.ca_path()
    }

    fn st(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The next authenticated vault requests (one per entry) get these statuses.
    pub fn fail_next(&self, statuses: &[u16]) {
        self.st().fail_next.extend_from_slice(statuses);
    }

    /// How many secrets a page of `GET /secrets` holds (default 25, as Key Vault).
    pub fn set_page_size(&self, n: usize) {
        self.st().page_size = n.max(1);
    }

    /// Vault requests so far (challenged and failed ones included).
    pub fn vault_requests(&self) -> usize {
        self.st().vault_requests
    }

    /// Token requests so far.
    pub fn token_requests(&self) -> usize {
        self.st().token_requests
    }

    /// Creates or adds a version to a secret directly (no tags, no content type unless given).
    pub fn put_raw(&self, name: &str, value: &str, tags: Option<Value>) {
        let mut s = self.st();
        put(&mut s, "localhost", name, value.to_owned(), None, tags);
    }

    /// The latest live value, content type and tags of `name`.
    pub fn secret(&self, name: &str) -> Option<(String, Option<String>, Option<Value>)> {
        let s = self.st();
        let sec = s.secrets.get(&name.to_ascii_lowercase())?;
        if sec.deleted.is_some() {
            return None;
        }
        let v = sec.versions.last()?;
        Some((v.value.clone(), v.content_type.clone(), v.tags.clone()))
    }

    /// How many versions `name` has (live or deleted).
    pub fn versions(&self, name: &str) -> usize {
        self.st()
            .secrets
            .get(&name.to_ascii_lowercase())
            .map_or(0, |s| s.versions.len())
    }

    /// Whether `name` is in the deleted (recoverable) state.
    pub fn is_deleted(&self, name: &str) -> bool {
        self.st()
            .secrets
            .get(&name.to_ascii_lowercase())
            .is_some_and(|s| s.deleted.is_some())
    }

    /// Whether the vault holds `name` at all, live or deleted (false once purged).
    pub fn exists(&self, name: &str) -> bool {
        self.st().secrets.contains_key(&name.to_ascii_lowercase())
    }
}

fn put(
    s: &mut State,
    host: &str,
    name: &str,
    value: String,
    content_type: Option<String>,
    tags: Option<Value>,
) -> Value {
    s.counter += 1;
    let version = format!("{:032x}", s.counter);
    let t = now();
    let sec = s
        .secrets
        .entry(name.to_ascii_lowercase())
        .or_insert_with(|| Secret {
            name: name.to_owned(),
            versions: Vec::new(),
            created: t,
            updated: t,
            deleted: None,
        });
    sec.updated = t;
    sec.versions.push(Version {
        id: format!("https://{host}/secrets/{}/{version}", sec.name),
        value,
        content_type,
        tags,
    });
    bundle(sec, true)
}

fn attributes(sec: &Secret) -> Value {
    json!({
        "enabled": true,
        "created": sec.created,
        "updated": sec.updated,
        "recoveryLevel": "Recoverable+Purgeable",
        "recoverableDays": 90,
    })
}

/// A SecretBundle (with `value`) or SecretItem (without).
fn bundle(sec: &Secret, with_value: bool) -> Value {
    let v = sec.versions.last();
    let mut out = json!({
        "id": v.map(|v| v.id.clone()).unwrap_or_default(),
        "attributes": attributes(sec),
    });
    if let Some(v) = v {
        if with_value {
            out["value"] = json!(v.value);
        }
        if let Some(ct) = &v.content_type {
            out["contentType"] = json!(ct);
        }
        if let Some(t) = &v.tags {
            out["tags"] = t.clone();
        }
    }
    out
}

fn deleted_bundle(host: &str, sec: &Secret) -> Value {
    let mut b = bundle(sec, false);
    b["recoveryId"] = json!(format!("https://{host}/deletedsecrets/{}", sec.name));
    b["deletedDate"] = json!(sec.deleted.unwrap_or_default());
    b["scheduledPurgeDate"] = json!(sec.deleted.unwrap_or_default() + 90 * 86_400);
    b
}

fn valid_name(n: &str) -> bool {
    !n.is_empty() && n.len() <= 127 && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

fn query_pairs(q: &str) -> HashMap<String, String> {
    q.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (form_decode(k), form_decode(v))
        })
        .collect()
}

/// `application/x-www-form-urlencoded` decoding.
fn form_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz");
                match u8::from_str_radix(hex, 16) {
                    Ok(x) => {
                        out.push(x);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn handle(
    st: &Arc<Mutex<State>>,
    port: u16,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut s = st.lock().unwrap_or_else(|p| p.into_inner());
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost")
        .to_owned();
    let hostname = host.split(':').next().unwrap_or("").to_owned();
    let path = uri.path().to_owned();
    let query = query_pairs(uri.query().unwrap_or(""));

    // Entra ID.
    if hostname == "localhost" || hostname == "127.0.0.1" {
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        if method == Method::POST && parts.len() == 4 && parts[1..] == ["oauth2", "v2.0", "token"] {
            s.token_requests += 1;
            let form = query_pairs(std::str::from_utf8(&body).unwrap_or(""));
            let aad = |status: StatusCode, error: &str, code: u32, desc: &str| {
                reply(
                    status,
                    json!({"error": error, "error_description": format!("AADSTS{code}: {desc}"),
                        "error_codes": [code], "timestamp": "2025-01-01 00:00:00Z",
                        "trace_id": "00000000-0000-0000-0000-000000000000"}),
                )
            };
            if parts[0] != TENANT_ID {
                return aad(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    90002,
                    "Tenant not found.",
                );
            }
            if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
                return aad(
                    StatusCode::BAD_REQUEST,
                    "unsupported_grant_type",
                    70003,
                    "The app requested an unsupported grant type.",
                );
            }
            if form.get("client_id").map(String::as_str) != Some(CLIENT_ID) {
                return aad(
                    StatusCode::BAD_REQUEST,
                    "unauthorized_client",
                    700016,
                    "Application was not found in the directory.",
                );
            }
            if form.get("client_secret").map(String::as_str) != Some(CLIENT_SECRET) {
                return aad(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    7000215,
                    "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.",
                );
            }
            if !form
                .get("scope")
                .is_some_and(|sc| sc.ends_with("/.default"))
            {
                return aad(
                    StatusCode::BAD_REQUEST,
                    "invalid_scope",
                    1002012,
                    "The provided value for scope is not valid.",
                );
            }
            s.counter += 1;
            let token = format!("eyFake.access-token.{}", s.counter);
            s.tokens.insert(token.clone(), ());
            return reply(
                StatusCode::OK,
                json!({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599,
                    "access_token": token}),
            );
        }
        return aad_not_found();
    }

    // Key Vault.
    s.vault_requests += 1;
    let authorized = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| s.tokens.contains_key(t));
    if !authorized {
        let suffix = hostname.split_once('.').map_or("", |(_, rest)| rest);
        let challenge = format!(
            "Bearer authorization=\"https://localhost:{port}/{TENANT_ID}\", resource=\"https://{suffix}\""
        );
        let mut r = kv_error(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "AKV10000: Request is missing a Bearer or PoP token.",
            None,
        );
        if let Ok(v) = HeaderValue::from_str(&challenge) {
            r.headers_mut().insert("www-authenticate", v);
        }
        return r;
    }
    if !s.fail_next.is_empty() {
        let code = s.fail_next.remove(0);
        let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let (c, m) = match code {
            403 => (
                "Forbidden",
                "Caller is not authorized to perform action on resource. Action: 'Microsoft.KeyVault/vaults/secrets/getSecret/action'",
            ),
            429 => (
                "Throttled",
                "Request was not processed because too many requests were received.",
            ),
            _ => (
                "ServiceUnavailable",
                "The service is temporarily unavailable.",
            ),
        };
        return kv_error(
            status,
            c,
            m,
            if code == 403 {
                Some("ForbiddenByRbac")
            } else {
                None
            },
        );
    }
    if !query.contains_key("api-version") {
        return kv_error(
            StatusCode::BAD_REQUEST,
            "BadParameter",
            "The request URI contains an invalid or missing 'api-version' parameter.",
            None,
        );
    }
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let not_found = |name: &str| {
        kv_error(
            StatusCode::NOT_FOUND,
            "SecretNotFound",
            &format!(
                "A secret with (name/id) {name} was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command."
            ),
            None,
        )
    };
    let deleted_not_found = |name: &str| {
        kv_error(
            StatusCode::NOT_FOUND,
            "SecretNotFound",
            &format!("Deleted Secret not found: {name}"),
            None,
        )
    };
    match (method.as_str(), parts.as_slice()) {
        ("GET", ["secrets"]) => {
            let page = query
                .get("maxresults")
                .and_then(|m| m.parse::<usize>().ok())
                .unwrap_or(s.page_size)
                .clamp(1, 25)
                .min(s.page_size);
            let skip = query
                .get("$skiptoken")
                .and_then(|m| m.parse::<usize>().ok())
                .unwrap_or(0);
            let live: Vec<&Secret> = s.secrets.values().filter(|x| x.deleted.is_none()).collect();
            let value: Vec<Value> = live
                .iter()
                .skip(skip)
                .take(page)
                .map(|sec| {
                    let mut b = bundle(sec, false);
                    b["id"] = json!(format!("https://{host}/secrets/{}", sec.name));
                    b
                })
                .collect();
            let next = (skip + page < live.len()).then(|| {
                format!(
                    "https://{host}/secrets?api-version=7.6&$skiptoken={}&maxresults={page}",
                    skip + page
                )
            });
            reply(StatusCode::OK, json!({"value": value, "nextLink": next}))
        }
        ("GET", ["deletedsecrets"]) => {
            let value: Vec<Value> = s
                .secrets
                .values()
                .filter(|x| x.deleted.is_some())
                .map(|sec| deleted_bundle(&host, sec))
                .collect();
            reply(StatusCode::OK, json!({"value": value, "nextLink": null}))
        }
        ("PUT", ["secrets", name]) => {
            if !valid_name(name) {
                return kv_error(
                    StatusCode::BAD_REQUEST,
                    "BadParameter",
                    "The request URI contains an invalid name: secret names may contain only 0-9, a-z, A-Z and -.",
                    None,
                );
            }
            let Ok(b) = serde_json::from_slice::<Value>(&body) else {
                return kv_error(
                    StatusCode::BAD_REQUEST,
                    "BadParameter",
                    "Property has invalid value",
                    None,
                );
            };
            let Some(value) = b.get("value").and_then(Value::as_str) else {
                return kv_error(
                    StatusCode::BAD_REQUEST,
                    "BadParameter",
                    "Property 'value' is required.",
                    None,
                );
            };
            if s.secrets
                .get(&name.to_ascii_lowercase())
                .is_some_and(|x| x.deleted.is_some())
            {
                return kv_error(
                    StatusCode::CONFLICT,
                    "Conflict",
                    &format!(
                        "Secret {name} is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the secret can only be recovered or purged."
                    ),
                    Some("ObjectIsDeletedButRecoverable"),
                );
            }
            let ct = b
                .get("contentType")
                .and_then(Value::as_str)
                .map(str::to_owned);
            let tags = b.get("tags").cloned().filter(|t| !t.is_null());
            let out = put(&mut s, &host, name, value.to_owned(), ct, tags);
            reply(StatusCode::OK, out)
        }
        ("GET", ["secrets", name, rest @ ..]) if rest.len() <= 1 => {
            match s.secrets.get(&name.to_ascii_lowercase()) {
                Some(sec) if sec.deleted.is_none() => {
                    match rest.first().filter(|v| !v.is_empty()) {
                        None => reply(StatusCode::OK, bundle(sec, true)),
                        Some(ver) => match sec
                            .versions
                            .iter()
                            .find(|v| v.id.ends_with(&format!("/{ver}")))
                        {
                            Some(v) => {
                                let mut one = sec.clone();
                                one.versions = vec![v.clone()];
                                reply(StatusCode::OK, bundle(&one, true))
                            }
                            None => not_found(name),
                        },
                    }
                }
                _ => not_found(name),
            }
        }
        ("DELETE", ["secrets", name]) => match s.secrets.get_mut(&name.to_ascii_lowercase()) {
            Some(sec) if sec.deleted.is_none() => {
                sec.deleted = Some(now());
                let sec = sec.clone();
                reply(StatusCode::OK, deleted_bundle(&host, &sec))
            }
            _ => not_found(name),
        },
        ("GET", ["deletedsecrets", name]) => match s.secrets.get(&name.to_ascii_lowercase()) {
            Some(sec) if sec.deleted.is_some() => reply(StatusCode::OK, deleted_bundle(&host, sec)),
            _ => deleted_not_found(name),
        },
        ("DELETE", ["deletedsecrets", name]) => {
            let key = name.to_ascii_lowercase();
            if s.secrets.get(&key).is_some_and(|x| x.deleted.is_some()) {
                s.secrets.remove(&key);
                StatusCode::NO_CONTENT.into_response()
            } else {
                deleted_not_found(name)
            }
        }
        ("POST", ["deletedsecrets", name, "recover"]) => {
            match s.secrets.get_mut(&name.to_ascii_lowercase()) {
                Some(sec) if sec.deleted.is_some() => {
                    sec.deleted = None;
                    let sec = sec.clone();
                    reply(StatusCode::OK, bundle(&sec, false))
                }
                _ => deleted_not_found(name),
            }
        }
        _ => kv_error(
            StatusCode::BAD_REQUEST,
            "BadParameter",
            &format!("The request URI {path} is not supported."),
            None,
        ),
    }
}

fn aad_not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found").into_response()
}

#[cfg(test)]
mod tests {
    use super::form_decode;

    #[test]
    fn form_decoding() {
        assert_eq!(form_decode("a+b%2Fc%3D"), "a b/c=");
        assert_eq!(
            form_decode("https%3A%2F%2Fvault.localhost%2F.default"),
            "https://vault.localhost/.default"
        );
        assert_eq!(form_decode("100%"), "100%");
    }
}
