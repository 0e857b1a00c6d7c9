//! An in-process fake of HashiCorp Vault's HTTP API, written from the official API docs
//! (KV v2 `/:mount/data/:path` and `/:mount/metadata/:path`, KV v1 `/:mount/:path`,
//! `sys/internal/ui/mounts/:mount`, AppRole and Kubernetes `auth/:mount/login`), for the vault
//! backend's tests. It speaks real HTTP on 127.0.0.1 and answers the way Vault does: JSON bodies,
//! `{"errors": [...]}` on failure, 403 "permission denied" for a missing, unknown or expired
//! `X-Vault-Token`, 400 on a check-and-set mismatch, 404 with an empty `errors` array for a
//! missing secret, 204 for deletes.
//!
//! Mounts: `secret` (KV v2) and `kv` (KV v1). Test hooks: [`VaultFake::add_approle`],
//! [`VaultFake::add_k8s_role`] (login tokens with a TTL), [`VaultFake::revoke_all`],
//! [`VaultFake::fail_next`] (answer the next requests with a status, for retry tests) and
//! counters.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// The root token, valid forever.
pub const ROOT_TOKEN: &str = "fake-root-token";

#[derive(Default)]
struct Version {
    data: Option<Value>,
    created: String,
    destroyed: bool,
}

#[derive(Default)]
struct V2Secret {
    versions: Vec<Version>,
    created: String,
}

#[derive(Default)]
struct State {
    tokens: HashMap<String, Option<Instant>>,
    approles: HashMap<String, (String, Duration)>,
    k8s_roles: HashMap<String, (String, Duration)>,
    v2: BTreeMap<String, V2Secret>,
    v1: BTreeMap<String, Value>,
    fail_next: Vec<u16>,
    logins: usize,
    requests: usize,
    namespaces: Vec<String>,
    counter: u64,
}

/// A running fake; stops when dropped.
pub struct VaultFake {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for VaultFake {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn now_rfc3339() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    // Civil-from-days (Howard Hinnant), to avoid a date dependency in a test fake.
    let secs = d.as_secs() as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_nanos()
    )
}

fn reply(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

fn errors(status: StatusCode, msgs: &[&str]) -> Response {
    reply(status, json!({ "errors": msgs }))
}

impl VaultFake {
    /// Starts the fake on 127.0.0.1 with a free port.
    pub async fn start() -> VaultFake {
        let state = Arc::new(Mutex::new(State::default()));
        state
            .lock()
            .unwrap()
            .tokens
            .insert(ROOT_TOKEN.to_owned(), None);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the Vault fake");
        let addr = listener.local_addr().expect("local addr");
        let st = state.clone();
        let app = Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let st = st.clone();
                async move { handle(&st, method, uri, headers, body) }
            },
        );
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        VaultFake { addr, state, task }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn address(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn st(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An AppRole whose logins return tokens valid for `ttl`.
    pub fn add_approle(&self, role_id: &str, secret_id: &str, ttl: Duration) {
        self.st()
            .approles
            .insert(role_id.to_owned(), (secret_id.to_owned(), ttl));
    }

    /// A Kubernetes auth role that accepts `jwt`, returning tokens valid for `ttl`.
    pub fn add_k8s_role(&self, role: &str, jwt: &str, ttl: Duration) {
        self.st()
            .k8s_roles
            .insert(role.to_owned(), (jwt.to_owned(), ttl));
    }

    /// A token that never expires (as `vault token create` would give).
    pub fn add_token(&self, token: &str) {
        self.st().tokens.insert(token.to_owned(), None);
    }

    /// Revokes every token, the root token included.
    pub fn revoke_all(&self) {
        self.st().tokens.clear();
    }

    /// The next requests (one per entry) get these statuses with an `errors` body.
    pub fn fail_next(&self, statuses: &[u16]) {
        self.st().fail_next.extend_from_slice(statuses);
    }

    /// Successful logins so far.
    pub fn logins(&self) -> usize {
        self.st().logins
    }

    /// Requests so far.
    pub fn requests(&self) -> usize {
        self.st().requests
    }

    /// Every `X-Vault-Namespace` header seen.
    pub fn namespaces(&self) -> Vec<String> {
        self.st().namespaces.clone()
    }

    /// The latest live data of a KV v2 secret at `path` (inside the `secret` mount).
    pub fn v2_data(&self, path: &str) -> Option<Value> {
        self.st()
            .v2
            .get(path)
            .and_then(|s| s.versions.last())
            .and_then(|v| v.data.clone())
    }

    /// How many versions a KV v2 secret has.
    pub fn v2_versions(&self, path: &str) -> usize {
        self.st().v2.get(path).map_or(0, |s| s.versions.len())
    }

    /// The data of a KV v1 secret at `path` (inside the `kv` mount).
    pub fn v1_data(&self, path: &str) -> Option<Value> {
        self.st().v1.get(path).cloned()
    }
}

fn handle(
    st: &Arc<Mutex<State>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut s = st.lock().unwrap_or_else(|p| p.into_inner());
    s.requests += 1;
    if let Some(ns) = headers
        .get("x-vault-namespace")
        .and_then(|v| v.to_str().ok())
    {
        s.namespaces.push(ns.to_owned());
    }
    if !s.fail_next.is_empty() {
        let code = s.fail_next.remove(0);
        let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return errors(status, &["injected failure"]);
    }
    let Some(path) = uri.path().strip_prefix("/v1/") else {
        return errors(StatusCode::NOT_FOUND, &[]);
    };
    let path = path.trim_end_matches('/').to_owned();
    let list = method.as_str() == "LIST"
        || (method == Method::GET
            && uri
                .query()
                .is_some_and(|q| q.split('&').any(|kv| kv == "list=true")));
    let json_body: Value = if body.is_empty() {
        Value::Null
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(_) => return errors(StatusCode::BAD_REQUEST, &["failed to parse JSON input"]),
        }
    };

    // Logins need no token.
    if method == Method::POST && (path == "auth/approle/login" || path == "auth/kubernetes/login") {
        let (ok, ttl) = if path == "auth/approle/login" {
            let role = json_body["role_id"].as_str().unwrap_or("");
            let secret = json_body["secret_id"].as_str().unwrap_or("");
            match s.approles.get(role) {
                Some((sid, ttl)) if sid == secret => (true, *ttl),
                _ => (false, Duration::ZERO),
            }
        } else {
            let role = json_body["role"].as_str().unwrap_or("");
            let jwt = json_body["jwt"].as_str().unwrap_or("");
            match s.k8s_roles.get(role) {
                Some((want, ttl)) if want == jwt => (true, *ttl),
                _ => (false, Duration::ZERO),
            }
        };
        if !ok {
            return errors(
                StatusCode::BAD_REQUEST,
                &[if path.contains("approle") {
                    "invalid role or secret ID"
                } else {
                    "permission denied"
                }],
            );
        }
        s.counter += 1;
        s.logins += 1;
        let token = format!("hvs.fake-login-{}", s.counter);
        s.tokens.insert(token.clone(), Some(Instant::now() + ttl));
        return reply(
            StatusCode::OK,
            json!({
                "auth": {
                    "client_token": token,
                    "accessor": format!("accessor-{}", s.counter),
                    "policies": ["default", "siteport"],
                    "lease_duration": ttl.as_secs(),
                    "renewable": true,
                }
            }),
        );
    }

    let token = headers
        .get("x-vault-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let valid = match s.tokens.get(token) {
        Some(None) => true,
        Some(Some(exp)) => Instant::now() < *exp,
        None => false,
    };
    if !valid {
        return errors(StatusCode::FORBIDDEN, &["permission denied"]);
    }

    if let Some(mount) = path.strip_prefix("sys/internal/ui/mounts/") {
        return match mount.trim_matches('/') {
            "secret" => reply(
                StatusCode::OK,
                json!({"data": {"type": "kv", "path": "secret/", "options": {"version": "2"}}}),
            ),
            "kv" => reply(
                StatusCode::OK,
                json!({"data": {"type": "kv", "path": "kv/", "options": null}}),
            ),
            _ => errors(
                StatusCode::FORBIDDEN,
                &[
                    "preflight capability check returned 403, please ensure client's policies grant access to path",
                ],
            ),
        };
    }

    if let Some(rest) = path.strip_prefix("secret/") {
        return kv2(&mut s, &method, rest, list, &json_body);
    }
    if let Some(rest) = path.strip_prefix("kv/") {
        return kv1(&mut s, &method, rest, list, &json_body);
    }
    errors(
        StatusCode::NOT_FOUND,
        &[&format!(
            "no handler for route \"{path}\". route entry not found."
        )],
    )
}

fn keys_under<'a>(names: impl Iterator<Item = &'a String>, prefix: &str) -> Vec<String> {
    let mut keys: Vec<String> = names
        .filter_map(|k| k.strip_prefix(prefix))
        .map(|rest| match rest.find('/') {
            Some(i) => rest[..=i].to_owned(),
            None => rest.to_owned(),
        })
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

fn list_reply(keys: Vec<String>) -> Response {
    if keys.is_empty() {
        errors(StatusCode::NOT_FOUND, &[])
    } else {
        reply(StatusCode::OK, json!({"data": {"keys": keys}}))
    }
}

fn kv2(s: &mut State, method: &Method, rest: &str, list: bool, body: &Value) -> Response {
    let (kind, path) = match rest.split_once('/') {
        Some((k, p)) => (k, p.to_owned()),
        None => (rest, String::new()),
    };
    match (kind, method.as_str(), list) {
        ("metadata", _, true) => {
            let prefix = if path.is_empty() {
                String::new()
            } else {
                format!("{path}/")
            };
            let live =
                s.v2.iter()
                    .filter(|(_, v)| !v.versions.is_empty())
                    .map(|(k, _)| k);
            list_reply(keys_under(live, &prefix))
        }
        ("data", "GET", false) => match s
            .v2
            .get(&path)
            .and_then(|sec| sec.versions.last().map(|v| (sec, v)))
        {
            Some((_, v)) if v.data.is_some() && !v.destroyed => reply(
                StatusCode::OK,
                json!({"data": {
                    "data": v.data,
                    "metadata": {
                        "created_time": v.created,
                        "custom_metadata": null,
                        "deletion_time": "",
                        "destroyed": false,
                        "version": s.v2[&path].versions.len(),
                    }
                }}),
            ),
            _ => errors(StatusCode::NOT_FOUND, &[]),
        },
        ("data", "POST" | "PUT", false) => {
            let Some(data) = body.get("data").filter(|d| d.is_object()) else {
                return errors(StatusCode::BAD_REQUEST, &["no data provided"]);
            };
            let sec = s.v2.entry(path).or_default();
            let current = sec.versions.len() as u64;
            if let Some(cas) = body.pointer("/options/cas").and_then(Value::as_u64)
                && cas != current
            {
                return errors(
                    StatusCode::BAD_REQUEST,
                    &["check-and-set parameter did not match the current version"],
                );
            }
            let created = now_rfc3339();
            if sec.versions.is_empty() {
                sec.created = created.clone();
            }
            sec.versions.push(Version {
                data: Some(data.clone()),
                created: created.clone(),
                destroyed: false,
            });
            reply(
                StatusCode::OK,
                json!({"data": {"created_time": created, "custom_metadata": null,
                    "deletion_time": "", "destroyed": false, "version": sec.versions.len()}}),
            )
        }
        ("data", "DELETE", false) => {
            if let Some(v) = s.v2.get_mut(&path).and_then(|sec| sec.versions.last_mut()) {
                v.data = None;
            }
            StatusCode::NO_CONTENT.into_response()
        }
        ("metadata", "GET", false) => match s.v2.get(&path) {
            Some(sec) if !sec.versions.is_empty() => {
                let versions: serde_json::Map<String, Value> = sec
                    .versions
                    .iter()
                    .enumerate()
                    .map(|(i, v)| {
                        (
                            (i + 1).to_string(),
                            json!({"created_time": v.created, "deletion_time": "",
                                "destroyed": v.destroyed}),
                        )
                    })
                    .collect();
                reply(
                    StatusCode::OK,
                    json!({"data": {
                        "cas_required": false,
                        "created_time": sec.created,
                        "current_version": sec.versions.len(),
                        "max_versions": 0,
                        "oldest_version": 1,
                        "updated_time": sec.versions.last().map(|v| v.created.clone()),
                        "versions": versions,
                    }}),
                )
            }
            _ => errors(StatusCode::NOT_FOUND, &[]),
        },
        ("metadata", "DELETE", false) => {
            s.v2.remove(&path);
            StatusCode::NO_CONTENT.into_response()
        }
        _ => errors(
            StatusCode::METHOD_NOT_ALLOWED,
            &["1 error occurred:\n\t* unsupported operation\n\n"],
        ),
    }
}

fn kv1(s: &mut State, method: &Method, path: &str, list: bool, body: &Value) -> Response {
    if list {
        let prefix = if path.is_empty() {
            String::new()
        } else {
            format!("{path}/")
        };
        return list_reply(keys_under(s.v1.keys(), &prefix));
    }
    match method.as_str() {
        "GET" => match s.v1.get(path) {
            Some(d) => reply(
                StatusCode::OK,
                json!({"auth": null, "data": d, "lease_duration": 2_764_800,
                    "lease_id": "", "renewable": false}),
            ),
            None => errors(StatusCode::NOT_FOUND, &[]),
        },
        "POST" | "PUT" => {
            if !body.is_object() {
                return errors(StatusCode::BAD_REQUEST, &["no data provided"]);
            }
            s.v1.insert(path.to_owned(), body.clone());
            StatusCode::NO_CONTENT.into_response()
        }
        "DELETE" => {
            s.v1.remove(path);
            StatusCode::NO_CONTENT.into_response()
        }
        _ => errors(
            StatusCode::METHOD_NOT_ALLOWED,
            &["1 error occurred:\n\t* unsupported operation\n\n"],
        ),
    }
}
