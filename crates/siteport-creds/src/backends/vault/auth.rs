//! Vault authentication: a token (from `VAULT_TOKEN` or a file), AppRole or Kubernetes.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use crate::error::{ErrorKind, Result};

use super::codec::{AppRoleLogin, KubernetesLogin, LoginReply};
use super::{EXPIRY_MARGIN, MAX_SECRET_FILE, VaultBackend};

pub(super) enum SecretSource {
    Value(SecretString),
    File(PathBuf),
}

pub(super) enum Auth {
    /// `VAULT_TOKEN` (fixed) or a token file (re-read on every login).
    Token {
        env: Option<SecretString>,
        file: PathBuf,
    },
    AppRole {
        mount: String,
        role_id: String,
        secret_id: SecretSource,
    },
    Kubernetes {
        mount: String,
        role: String,
        jwt_file: PathBuf,
    },
}

impl Auth {
    pub(super) fn name(&self) -> &'static str {
        match self {
            Auth::Token { .. } => "token",
            Auth::AppRole { .. } => "approle",
            Auth::Kubernetes { .. } => "kubernetes",
        }
    }
}

pub(super) struct Token {
    pub(super) value: SecretString,
    pub(super) expires: Option<Instant>,
}
impl VaultBackend {
    pub(super) async fn token(&self) -> Result<SecretString> {
        let mut guard = self.token.lock().await;
        if let Some(t) = guard.as_ref()
            && t.expires.is_none_or(|e| Instant::now() + EXPIRY_MARGIN < e)
        {
            return Ok(t.value.clone());
        }
        let t = self.login().await?;
        let v = t.value.clone();
        *guard = Some(t);
        Ok(v)
    }

    pub(super) fn read_secret_file(
        &self,
        path: &Path,
        what: &str,
        hint: &str,
    ) -> Result<SecretString> {
        use std::io::Read;
        let f = std::fs::File::open(path).map_err(|e| {
            let kind = match e.kind() {
                std::io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
                _ => ErrorKind::PermissionDenied,
            };
            self.err(
                kind,
                format!("cannot read the {what} {}: {e}", path.display()),
            )
            .with_hint(hint.to_owned())
        })?;
        let mut buf = Zeroizing::new(String::new());
        f.take(MAX_SECRET_FILE)
            .read_to_string(&mut buf)
            .map_err(|e| {
                self.err(
                    ErrorKind::Invalid,
                    format!("cannot read the {what} {}: {e}", path.display()),
                )
            })?;
        let v = buf.trim();
        if v.is_empty() {
            return Err(self
                .err(
                    ErrorKind::PermissionDenied,
                    format!("the {what} {} is empty", path.display()),
                )
                .with_hint(hint.to_owned()));
        }
        Ok(SecretString::from(v.to_owned()))
    }

    pub(super) async fn login(&self) -> Result<Token> {
        let (path, body) = match &self.auth {
            Auth::Token { env: Some(t), .. } => {
                return Ok(Token {
                    value: t.clone(),
                    expires: None,
                });
            }
            Auth::Token { env: None, file } => {
                if !file.exists() {
                    return Err(self
                        .err(
                            ErrorKind::PermissionDenied,
                            format!(
                                "no Vault token: VAULT_TOKEN is not set and {} does not exist",
                                file.display()
                            ),
                        )
                        .with_hint(
                            "export VAULT_TOKEN (or run `vault login`), or configure \
                             [credentials.vault] auth = \"approle\" or \"kubernetes\"",
                        ));
                }
                let value = self.read_secret_file(
                    file,
                    "token file",
                    "run `vault login` or export VAULT_TOKEN",
                )?;
                return Ok(Token {
                    value,
                    expires: None,
                });
            }
            Auth::AppRole {
                mount,
                role_id,
                secret_id,
            } => {
                let secret = match secret_id {
                    SecretSource::Value(v) => v.clone(),
                    SecretSource::File(p) => self.read_secret_file(
                        p,
                        "AppRole secret ID file",
                        "fix [credentials.vault] secret_id_file or set VAULT_SECRET_ID",
                    )?,
                };
                let body = serde_json::to_vec(&AppRoleLogin {
                    role_id,
                    secret_id: secret.expose_secret(),
                });
                (format!("auth/{mount}/login"), body)
            }
            Auth::Kubernetes {
                mount,
                role,
                jwt_file,
            } => {
                let jwt = self.read_secret_file(
                    jwt_file,
                    "service-account token",
                    "run inside a pod with a service account, or set [credentials.vault] jwt_file",
                )?;
                let body = serde_json::to_vec(&KubernetesLogin {
                    role,
                    jwt: jwt.expose_secret(),
                });
                (format!("auth/{mount}/login"), body)
            }
        };
        let body =
            Zeroizing::new(body.map_err(|e| {
                self.err(ErrorKind::Invalid, format!("cannot encode the login: {e}"))
            })?);
        let r = self.send(&Method::POST, &path, Some(&body), None).await?;
        let method = self.auth.name();
        if !r.status.is_success() {
            let errors = r.errors();
            let status = r.status.as_u16();
            let e = if r.status.is_client_error() {
                self.err(
                    ErrorKind::PermissionDenied,
                    format!("{method} login at {path} refused (HTTP {status}){errors}"),
                )
                .with_hint(match self.auth {
                    Auth::AppRole { .. } => {
                        "check role_id and the secret ID (VAULT_SECRET_ID or secret_id_file); \
                         secret IDs expire and may be single-use"
                    }
                    _ => {
                        "check [credentials.vault] role and that the service account is bound to it"
                    }
                })
            } else {
                self.status_error(&r, &format!("{method} login at {path}"))
            };
            return Err(e);
        }
        let no_token = || {
            self.err(
                ErrorKind::Corrupt,
                format!("{method} login at {path} returned no auth.client_token"),
            )
        };
        let reply: LoginReply = r.typed().map_err(|_| no_token())?;
        let auth = reply.auth.ok_or_else(no_token)?;
        let token = auth
            .client_token
            .filter(|t| !t.expose_secret().is_empty())
            .ok_or_else(no_token)?;
        let ttl = auth.lease_duration.unwrap_or(0);
        tracing::debug!(method, ttl, "vault: logged in");
        Ok(Token {
            value: token,
            expires: (ttl > 0).then(|| Instant::now() + Duration::from_secs(ttl)),
        })
    }
}
