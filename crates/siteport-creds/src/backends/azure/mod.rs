//! Azure Key Vault secrets (feature `azure`), through the official
//! `azure_security_keyvault_secrets` client and `azure_identity` credentials.
//!
//! One secret per credential, named `<prefix><encoded name>` (`siteport-acme` by default), whose
//! value is JSON: `{"username": …, "password": …, "host": …, "port": …}` (host and port
//! optional; a port written as a string is accepted, for secrets made by hand), with content type
//! `application/json` and the tag `managed-by=siteport`.
//!
//! # Name mapping
//!
//! Key Vault names match `^[0-9a-zA-Z-]{1,127}$` and are case-insensitive; credential names are
//! lowercase `[a-z0-9._-]`. Letters and digits stay as they are and the three other characters
//! are escaped with `-`: `-` → `--`, `.` → `-d`, `_` → `-u` (`shop.example-com` →
//! `shop-dexample--com`). Every escape starts with `-` and no plain character is `-`, so the code
//! is prefix-free: decoding is unique and two names never share a secret. A vault name that does
//! not decode (a lone `-`, an unknown escape, or a form that is not the canonical encoding) is
//! not a siteport credential and is ignored by `list`. Since escapes double a character, a name
//! whose secret name would exceed 127 characters is refused with `Invalid`.
//!
//! # Authentication
//!
//! `auth = "default"` takes the first configured of: a client secret (`AZURE_TENANT_ID`,
//! `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET`), workload identity (`AZURE_FEDERATED_TOKEN_FILE`,
//! as AKS injects it), the App Service/Functions managed identity (`IDENTITY_ENDPOINT`), then
//! the developer tools (`az login`, `azd auth login`). A VM's managed identity is used only with
//! `auth = "managed_identity"`: probing the instance metadata endpoint from a laptop only hangs.
//! The vault's 401 challenge names the token audience; the SDK answers it (and refuses a
//! challenge whose resource does not match the vault's domain).
//!
//! # Transport
//!
//! The SDK's own transport is reqwest 0.13 whose `rustls` feature brings aws-lc-rs (a C build);
//! siteport instead hands the SDK a transport over the reqwest 0.12 + rustls (ring) client the
//! vault backend already compiles, with webpki roots plus an optional `ca_cert`. Names under
//! `.localhost` resolve to the loopback address (RFC 6761 §6.3), which local emulators use.
//!
//! # Deletion
//!
//! Key Vault soft-deletes: a deleted secret is recoverable for the vault's retention period
//! (7–90 days). `delete` deletes and, with `purge_on_delete = true`, purges at once. Storing a
//! name whose secret is deleted but recoverable recovers it first (history kept, needs the
//! `recover` permission) and then writes the new version, so `remove` then `add` works.
//!
//! The SDK hands secret values around as plain `String`s; siteport moves them into a
//! [`SecretString`](crate::SecretString) and zeroizes its own copies, but cannot scrub the SDK's buffers.

mod settings;
pub use settings::{AzureSettings, DEFAULT_AZURE_PREFIX};

#[cfg(feature = "azure")]
mod auth;
#[cfg(feature = "azure")]
mod backend;
#[cfg(feature = "azure")]
mod fault;
#[cfg(feature = "azure")]
mod names;
#[cfg(feature = "azure")]
mod transport;
#[cfg(feature = "azure")]
pub use backend::{AzureBackend, MANAGED_BY_TAG};
#[cfg(feature = "azure")]
pub use names::{MAX_SECRET_NAME, decode_name, encode_name};
