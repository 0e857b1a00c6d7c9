//! The typed bodies of the Vault requests and replies siteport uses. Secret fields are
//! borrowed `&str` on the way out and `SecretString` on the way in: no `serde_json::Value`
//! ever holds a password or a token.

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::backends::payload::{SecretIn, SecretOut};

/// The body of a KV v2 write; `options.cas = 0` makes it create-only.
#[derive(Serialize)]
pub(super) struct KvV2Write<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) options: Option<CasOptions>,
    pub(super) data: SecretOut<'a>,
}

#[derive(Serialize)]
pub(super) struct CasOptions {
    pub(super) cas: u32,
}

/// A KV v2 read: `{"data": {"data": {…}, "metadata": {"created_time": …}}}`.
#[derive(Deserialize)]
pub(super) struct KvV2Read {
    pub(super) data: Option<KvV2Data>,
}

#[derive(Deserialize)]
pub(super) struct KvV2Data {
    pub(super) data: Option<SecretIn>,
    pub(super) metadata: Option<KvV2Metadata>,
}

#[derive(Deserialize)]
pub(super) struct KvV2Metadata {
    pub(super) created_time: Option<String>,
}

/// A KV v1 read: `{"data": {…}}`.
#[derive(Deserialize)]
pub(super) struct KvV1Read {
    pub(super) data: Option<SecretIn>,
}

/// `POST auth/<approle mount>/login`.
#[derive(Serialize)]
pub(super) struct AppRoleLogin<'a> {
    pub(super) role_id: &'a str,
    pub(super) secret_id: &'a str,
}

/// `POST auth/<kubernetes mount>/login`.
#[derive(Serialize)]
pub(super) struct KubernetesLogin<'a> {
    pub(super) role: &'a str,
    pub(super) jwt: &'a str,
}

/// A login reply; the token goes straight into a `SecretString`.
#[derive(Deserialize)]
pub(super) struct LoginReply {
    pub(super) auth: Option<LoginAuth>,
}

#[derive(Deserialize)]
pub(super) struct LoginAuth {
    pub(super) client_token: Option<SecretString>,
    pub(super) lease_duration: Option<u64>,
}
