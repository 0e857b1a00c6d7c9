//! AWS Secrets Manager (feature `aws`), through the official `aws-sdk-secretsmanager`.
//!
//! One secret per credential, named `<prefix><name>` (`siteport/acme` by default), whose
//! `SecretString` is JSON: `{"username": …, "password": …, "host": …, "port": …}` (host and
//! port optional; a port written as a string is accepted, for secrets made by hand).
//!
//! Authentication is the SDK's default chain (environment, `~/.aws` profiles, web identity,
//! `credential_process`, ECS and EC2 instance roles); region and endpoint come from
//! [`AwsSettings`] or the SDK's own variables. The HTTPS client is rustls on ring (no aws-lc,
//! no cmake) and the SSO token clients are left out to keep the build small: SSO users run
//! `aws sso login` and point `credential_process` or exported keys at the result.
//!
//! Deleting schedules the secret for deletion with a recovery window (7 days unless
//! configured) so that a mistaken `siteport credential rm` can be undone with
//! `aws secretsmanager restore-secret`; `force_delete = true` deletes immediately. A secret
//! scheduled for deletion reads as not found, and storing over it fails with the restore and
//! purge commands in the hint.

mod settings;
pub use settings::{AwsSettings, DEFAULT_SECRET_PREFIX};

#[cfg(feature = "aws")]
mod backend;
#[cfg(feature = "aws")]
mod client;
#[cfg(feature = "aws")]
pub use backend::{AwsBackend, DeletePolicy};
