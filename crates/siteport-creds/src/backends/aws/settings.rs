//! `[credentials.aws]`. A plain struct compiled into every build, so that a config naming
//! the aws backend still parses in a build without it and gets the clear "not built into this
//! binary" error.

use serde::{Deserialize, Serialize};

/// Default name prefix of the secrets siteport manages in a cloud secret manager.
pub const DEFAULT_SECRET_PREFIX: &str = "siteport/";

/// Settings of the AWS Secrets Manager backend (`[credentials.aws]`). Unset fields fall back to
/// the AWS SDK's own configuration: `AWS_REGION`/`AWS_PROFILE`/`AWS_ENDPOINT_URL` and the shared
/// `~/.aws/config` and `~/.aws/credentials` files.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsSettings {
    /// Region, e.g. `eu-west-1`; else the SDK's region chain.
    pub region: Option<String>,
    /// Endpoint override (a VPC endpoint, LocalStack, moto); else `AWS_ENDPOINT_URL_SECRETS_MANAGER`
    /// / `AWS_ENDPOINT_URL`, else the public endpoint of the region.
    pub endpoint_url: Option<String>,
    /// Named profile of the shared config files; else `AWS_PROFILE`, else `default`.
    pub profile: Option<String>,
    /// Prefix of every secret name; default `siteport/` (credential `acme` is `siteport/acme`).
    pub prefix: Option<String>,
    /// Delete immediately, without a recovery window. Default `false`.
    #[serde(default)]
    pub force_delete: bool,
    /// Days (7–30) a deleted secret can still be restored; default 7. Ignored with `force_delete`.
    pub recovery_window_days: Option<i64>,
    /// Attempts per request, including the first, for retryable failures; default 3.
    pub max_attempts: Option<u32>,
    /// Per-request timeout in seconds, including retries; default 30.
    pub timeout_secs: Option<u64>,
}
