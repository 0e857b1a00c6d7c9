//! An in-process fake of GCP Secret Manager's REST API (v1), written from the official REST
//! reference, for the gcp backend's tests. The official Rust client speaks REST/JSON over HTTP
//! (not gRPC), so the backend reaches this fake through the real SDK with an endpoint override.
//!
//! Implemented: `projects.secrets.create` (`POST /v1/projects/P/secrets?secretId=ID`),
//! `.get`, `.delete`, `.list` (`filter`, `pageSize`, `pageToken`), `.addVersion`
//! (`POST …/secrets/ID:addVersion`, `payload.data` base64, `payload.dataCrc32c` checked), and
//! `projects.secrets.versions.access` (`GET …/versions/{N|latest}:access`, which returns the
//! payload with its `dataCrc32c`). Errors use Google's JSON error body
//! `{"error": {"code", "message", "status"}}`.
//!
//! Authentication: an OAuth2 token endpoint at `/token` (the `token_uri` of an
//! `authorized_user` credentials file from [`GcpFake::authorized_user_json`]) issues access
//! tokens for the refresh token [`REFRESH_TOKEN`]; every API call must carry
//! `Authorization: Bearer <issued token>` (401 `UNAUTHENTICATED` otherwise). Test hooks:
//! [`GcpFake::revoke_all`] (tokens become invalid), [`GcpFake::forbid`] (valid tokens get 403
//! `PERMISSION_DENIED`), [`GcpFake::fail_next`] (answer the next API calls with 403, 429, 500,
//! 503 or 504 and the matching status), [`GcpFake::corrupt_crc`], raw secret hooks and
//! counters.
//!
//! Filters: terms joined by `AND` (or a space) of the forms `name:TEXT` (the secret ID contains
//! TEXT), `labels.KEY=VALUE`, `labels.KEY:VALUE` and `labels.KEY:*`; others are refused with
//! `INVALID_ARGUMENT`. Pages hold [`DEFAULT_PAGE_SIZE`] secrets unless `pageSize` says
//! otherwise (small, so that tests exercise paging).

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};

/// OAuth client ID in the `authorized_user` file.
pub const CLIENT_ID: &str = "fake-client-id.apps.googleusercontent.com";
/// OAuth client secret in the `authorized_user` file.
pub const CLIENT_SECRET: &str = "fake-client-secret-d0e1";
/// The refresh token the token endpoint accepts.
pub const REFRESH_TOKEN: &str = "1//fake-refresh-token-7c4f";
/// Secrets per `list` page when the request does not set `pageSize`.
pub const DEFAULT_PAGE_SIZE: usize = 2;

#[derive(Clone)]
struct FakeVersion {
    data: Vec<u8>,
    enabled: bool,
}

#[derive(Clone, Default)]
struct FakeSecret {
    labels: BTreeMap<String, String>,
    created: String,
    versions: Vec<FakeVersion>,
}

#[derive(Default)]
struct State {
    /// (project, secret ID) → secret.
    secrets: BTreeMap<(String, String), FakeSecret>,
    tokens: HashSet<String>,
    issued: usize,
    forbidden: bool,
    fail_next: Vec<u16>,
    corrupt_crc: bool,
    requests: usize,
    filters: Vec<String>,
    bearer_seen: Vec<String>,
}

/// A running fake; stops when dropped.
pub struct GcpFake {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for GcpFake {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn now_rfc3339() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
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
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_micros()
    )
}

fn status_name(code: u16) -> &'static str {
    match code {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ALREADY_EXISTS",
        429 => "RESOURCE_EXHAUSTED",
        500 => "INTERNAL",
        501 => "UNIMPLEMENTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => "UNKNOWN",
    }
}

/// Google's error body.
fn gerror(code: u16, status: &str, message: &str) -> Response {
    let http = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        http,
        axum::Json(json!({"error": {"code": code, "message": message, "status": status}})),
    )
        .into_response()
}

fn ok(body: Value) -> Response {
    (StatusCode::OK, axum::Json(body)).into_response()
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 255
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn crc(data: &[u8]) -> i64 {
    i64::from(crc32c::crc32c(data))
}

impl GcpFake {
    /// Starts the fake on 127.0.0.1 with a free port.
    pub async fn start() -> GcpFake {
        let state = Arc::new(Mutex::new(State::default()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the GCP fake");
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
        GcpFake { addr, state, task }
    }

    /// `http://127.0.0.1:PORT`, for the backend's `endpoint`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The OAuth2 token endpoint.
    pub fn token_uri(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    /// An `authorized_user` credentials file (as `gcloud auth application-default login`
    /// writes) whose `token_uri` is this fake; `refresh_token` decides whether it is accepted.
    pub fn authorized_user_json(&self, refresh_token: &str) -> String {
        json!({
            "type": "authorized_user",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "refresh_token": refresh_token,
            "token_uri": self.token_uri(),
        })
        .to_string()
    }

    /// Writes [`authorized_user_json`](Self::authorized_user_json) with the valid refresh
    /// token to `dir/adc.json` (0600) and returns the path.
    pub fn write_adc_file(&self, dir: &Path) -> PathBuf {
        let p = dir.join("adc.json");
        crate::write_private(&p, self.authorized_user_json(REFRESH_TOKEN).as_bytes());
        p
    }

    fn st(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every issued access token stops being valid (API calls get 401).
    pub fn revoke_all(&self) {
        self.st().tokens.clear();
    }

    /// Valid tokens get 403 `PERMISSION_DENIED` (`on`) or are allowed again.
    pub fn forbid(&self, on: bool) {
        self.st().forbidden = on;
    }

    /// The next API calls (one per entry) get these HTTP statuses with the matching status.
    pub fn fail_next(&self, statuses: &[u16]) {
        self.st().fail_next.extend_from_slice(statuses);
    }

    /// Whether `access` answers with a wrong `dataCrc32c` (damage in transit).
    pub fn corrupt_crc(&self, on: bool) {
        self.st().corrupt_crc = on;
    }

    /// API requests so far (token requests excluded).
    pub fn requests(&self) -> usize {
        self.st().requests
    }

    /// Access tokens issued so far.
    pub fn tokens_issued(&self) -> usize {
        self.st().issued
    }

    /// Every `filter` a list request carried.
    pub fn filters(&self) -> Vec<String> {
        self.st().filters.clone()
    }

    /// Every bearer token an API request carried.
    pub fn bearer_tokens(&self) -> Vec<String> {
        self.st().bearer_seen.clone()
    }

    /// Creates a secret directly (a foreign or hand-made one), with one version holding `data`
    /// when given.
    pub fn put_raw(&self, project: &str, id: &str, labels: &[(&str, &str)], data: Option<&[u8]>) {
        let mut s = self.st();
        let sec = s
            .secrets
            .entry((project.to_owned(), id.to_owned()))
            .or_insert_with(|| FakeSecret {
                created: now_rfc3339(),
                ..Default::default()
            });
        sec.labels = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        if let Some(d) = data {
            sec.versions.push(FakeVersion {
                data: d.to_vec(),
                enabled: true,
            });
        }
    }

    /// Disables the latest version of a secret.
    pub fn disable_latest(&self, project: &str, id: &str) {
        if let Some(v) = self
            .st()
            .secrets
            .get_mut(&(project.to_owned(), id.to_owned()))
            .and_then(|s| s.versions.last_mut())
        {
            v.enabled = false;
        }
    }

    /// The latest version's payload of a secret.
    pub fn latest_payload(&self, project: &str, id: &str) -> Option<Vec<u8>> {
        self.st()
            .secrets
            .get(&(project.to_owned(), id.to_owned()))
            .and_then(|s| s.versions.last())
            .map(|v| v.data.clone())
    }

    /// How many versions a secret has (0 when it does not exist).
    pub fn versions(&self, project: &str, id: &str) -> usize {
        self.st()
            .secrets
            .get(&(project.to_owned(), id.to_owned()))
            .map_or(0, |s| s.versions.len())
    }

    /// A secret's labels.
    pub fn labels(&self, project: &str, id: &str) -> Option<BTreeMap<String, String>> {
        self.st()
            .secrets
            .get(&(project.to_owned(), id.to_owned()))
            .map(|s| s.labels.clone())
    }

    /// Every secret ID in `project`.
    pub fn secret_ids(&self, project: &str) -> Vec<String> {
        self.st()
            .secrets
            .keys()
            .filter(|(p, _)| p == project)
            .map(|(_, id)| id.clone())
            .collect()
    }
}

fn secret_json(project: &str, id: &str, s: &FakeSecret) -> Value {
    json!({
        "name": format!("projects/{project}/secrets/{id}"),
        "replication": {"automatic": {}},
        "createTime": s.created,
        "labels": s.labels,
        "etag": format!("\"{}\"", s.versions.len()),
    })
}

fn query_param(uri: &Uri, key: &str) -> Option<String> {
    uri.query()?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == key).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    // Query strings and forms write a space as '+'; '%2B' is a literal '+'.
    percent_encoding::percent_decode_str(&s.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

/// Whether `s` (ID `id`) matches `filter`; `Err` for a filter the fake does not understand.
fn matches(filter: &str, id: &str, s: &FakeSecret) -> Result<bool, String> {
    for term in filter
        .split(" AND ")
        .flat_map(|t| t.split_whitespace())
        .filter(|t| !t.is_empty())
    {
        let hit = if let Some(text) = term.strip_prefix("name:") {
            id.contains(text)
        } else if let Some(rest) = term.strip_prefix("labels.") {
            if let Some((k, v)) = rest.split_once('=') {
                s.labels.get(k).is_some_and(|x| x == v)
            } else if let Some((k, v)) = rest.split_once(':') {
                match v {
                    "*" => s.labels.contains_key(k),
                    v => s.labels.get(k).is_some_and(|x| x == v),
                }
            } else {
                return Err(format!("Invalid filter term: {term}"));
            }
        } else {
            return Err(format!("Invalid filter term: {term}"));
        };
        if !hit {
            return Ok(false);
        }
    }
    Ok(true)
}

fn token_endpoint(s: &mut State, headers: &HeaderMap, body: &[u8]) -> Response {
    let form = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    let fields: BTreeMap<String, String> = if form {
        String::from_utf8_lossy(body)
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), percent_decode(v)))
            .collect()
    } else {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(m)) => m
                .into_iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k, v.to_owned())))
                .collect(),
            _ => BTreeMap::new(),
        }
    };
    let good = fields.get("grant_type").map(String::as_str) == Some("refresh_token")
        && fields.get("client_id").map(String::as_str) == Some(CLIENT_ID)
        && fields.get("client_secret").map(String::as_str) == Some(CLIENT_SECRET)
        && fields.get("refresh_token").map(String::as_str) == Some(REFRESH_TOKEN);
    if !good {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "invalid_grant", "error_description": "Bad Request"})),
        )
            .into_response();
    }
    s.issued += 1;
    let token = format!("ya29.fake-access-token-{}-a8d3", s.issued);
    s.tokens.insert(token.clone());
    ok(json!({
        "access_token": token,
        "expires_in": 3599,
        "scope": "https://www.googleapis.com/auth/cloud-platform",
        "token_type": "Bearer",
    }))
}

fn handle(
    st: &Arc<Mutex<State>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut s = st.lock().unwrap_or_else(|p| p.into_inner());
    if uri.path() == "/token" && method == Method::POST {
        return token_endpoint(&mut s, &headers, &body);
    }
    s.requests += 1;
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("")
        .to_owned();
    s.bearer_seen.push(bearer.clone());
    if !s.tokens.contains(&bearer) {
        return gerror(
            401,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
        );
    }
    if !s.fail_next.is_empty() {
        let code = s.fail_next.remove(0);
        return gerror(code, status_name(code), "injected failure");
    }
    let Some(path) = uri.path().strip_prefix("/v1/projects/") else {
        return gerror(404, "NOT_FOUND", "unknown path");
    };
    let path = path.to_owned();
    // `P/secrets`, `P/secrets/ID`, `P/secrets/ID:addVersion`, `P/secrets/ID/versions/V:access`.
    let parts: Vec<&str> = path.split('/').collect();
    let project = parts.first().copied().unwrap_or("").to_owned();
    if s.forbidden {
        return gerror(
            403,
            "PERMISSION_DENIED",
            &format!(
                "Permission 'secretmanager.secrets.list' denied for resource 'projects/{project}' (or it may not exist)."
            ),
        );
    }
    let json_body: Value = if body.is_empty() {
        Value::Null
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(_) => return gerror(400, "INVALID_ARGUMENT", "Invalid JSON payload received."),
        }
    };
    match (method.as_str(), parts.as_slice()) {
        ("GET", [_, "secrets"]) => list(&mut s, &project, &uri),
        ("POST", [_, "secrets"]) => {
            let id = query_param(&uri, "secretId").unwrap_or_default();
            if !valid_id(&id) {
                return gerror(
                    400,
                    "INVALID_ARGUMENT",
                    "Secret ID must match [a-zA-Z0-9_-]{1,255}",
                );
            }
            if json_body.pointer("/replication/automatic").is_none()
                && json_body.pointer("/replication/userManaged").is_none()
            {
                return gerror(400, "INVALID_ARGUMENT", "Replication policy is required.");
            }
            let key = (project.clone(), id.clone());
            if s.secrets.contains_key(&key) {
                return gerror(
                    409,
                    "ALREADY_EXISTS",
                    &format!("Secret [projects/{project}/secrets/{id}] already exists."),
                );
            }
            let labels: BTreeMap<String, String> = json_body
                .get("labels")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                        .collect()
                })
                .unwrap_or_default();
            let sec = FakeSecret {
                labels,
                created: now_rfc3339(),
                versions: Vec::new(),
            };
            let out = secret_json(&project, &id, &sec);
            s.secrets.insert(key, sec);
            ok(out)
        }
        ("GET", [_, "secrets", id]) if !id.contains(':') => {
            match s.secrets.get(&(project.clone(), (*id).to_owned())) {
                Some(sec) => ok(secret_json(&project, id, sec)),
                None => not_found(&project, id),
            }
        }
        ("DELETE", [_, "secrets", id]) => {
            match s.secrets.remove(&(project.clone(), (*id).to_owned())) {
                Some(_) => ok(json!({})),
                None => not_found(&project, id),
            }
        }
        ("POST", [_, "secrets", id_verb]) if id_verb.ends_with(":addVersion") => {
            let id = id_verb.trim_end_matches(":addVersion").to_owned();
            let Some(b64) = json_body.pointer("/payload/data").and_then(Value::as_str) else {
                return gerror(400, "INVALID_ARGUMENT", "Payload data is required.");
            };
            let Ok(data) = B64.decode(b64) else {
                return gerror(400, "INVALID_ARGUMENT", "Invalid base64 payload data.");
            };
            if let Some(want) = json_body.pointer("/payload/dataCrc32c") {
                let want = want
                    .as_i64()
                    .or_else(|| want.as_str().and_then(|t| t.parse().ok()));
                if want != Some(crc(&data)) {
                    return gerror(
                        400,
                        "INVALID_ARGUMENT",
                        "Checksum mismatch: the payload's data_crc32c does not match the data.",
                    );
                }
            }
            let Some(sec) = s.secrets.get_mut(&(project.clone(), id.clone())) else {
                return not_found(&project, &id);
            };
            let created = now_rfc3339();
            sec.versions.push(FakeVersion {
                data,
                enabled: true,
            });
            ok(json!({
                "name": format!("projects/{project}/secrets/{id}/versions/{}", sec.versions.len()),
                "createTime": created,
                "state": 1,
                "etag": format!("\"{}\"", sec.versions.len()),
            }))
        }
        ("GET", [_, "secrets", id, "versions", v_verb]) if v_verb.ends_with(":access") => {
            let v = v_verb.trim_end_matches(":access");
            let corrupt = s.corrupt_crc;
            let Some(sec) = s.secrets.get(&(project.clone(), (*id).to_owned())) else {
                return not_found(&project, id);
            };
            let index = match v {
                "latest" => sec.versions.len().checked_sub(1),
                n => n
                    .parse::<usize>()
                    .ok()
                    .and_then(|n| n.checked_sub(1))
                    .filter(|i| *i < sec.versions.len()),
            };
            let name = format!("projects/{project}/secrets/{id}/versions/{v}");
            let Some(i) = index else {
                return gerror(
                    404,
                    "NOT_FOUND",
                    &format!("Secret Version [{name}] not found."),
                );
            };
            let ver = &sec.versions[i];
            if !ver.enabled {
                return gerror(
                    400,
                    "FAILED_PRECONDITION",
                    &format!(
                        "Secret Version [projects/{project}/secrets/{id}/versions/{}] is in DISABLED state.",
                        i + 1
                    ),
                );
            }
            let c = crc(&ver.data) ^ if corrupt { 0x5a5a } else { 0 };
            ok(json!({
                "name": format!("projects/{project}/secrets/{id}/versions/{}", i + 1),
                "payload": {"data": B64.encode(&ver.data), "dataCrc32c": c.to_string()},
            }))
        }
        _ => gerror(
            404,
            "NOT_FOUND",
            &format!(
                "{} /v1/projects/{path} is not a Secret Manager method",
                method
            ),
        ),
    }
}

fn not_found(project: &str, id: &str) -> Response {
    gerror(
        404,
        "NOT_FOUND",
        &format!("Secret [projects/{project}/secrets/{id}] not found or has no versions."),
    )
}

fn list(s: &mut State, project: &str, uri: &Uri) -> Response {
    let filter = query_param(uri, "filter").unwrap_or_default();
    s.filters.push(filter.clone());
    let size = query_param(uri, "pageSize")
        .and_then(|p| p.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(DEFAULT_PAGE_SIZE);
    let start = query_param(uri, "pageToken")
        .filter(|t| !t.is_empty())
        .and_then(|t| {
            t.strip_prefix("page-")
                .and_then(|n| n.parse::<usize>().ok())
        })
        .unwrap_or(0);
    let mut all = Vec::new();
    for ((p, id), sec) in &s.secrets {
        if p != project {
            continue;
        }
        match matches(&filter, id, sec) {
            Ok(true) => all.push(secret_json(p, id, sec)),
            Ok(false) => {}
            Err(msg) => return gerror(400, "INVALID_ARGUMENT", &msg),
        }
    }
    let total = all.len();
    let page: Vec<Value> = all.into_iter().skip(start).take(size).collect();
    let mut out = json!({"secrets": page, "totalSize": total});
    if start + size < total {
        out["nextPageToken"] = json!(format!("page-{}", start + size));
    }
    ok(out)
}
