//! GCP Secret Manager (feature `gcp`), through the official `google-cloud-secretmanager-v1`.
//!
//! One secret per credential in the configured project, with the ID `<prefix><mapped name>`
//! (`siteport-acme` by default) and a label (`siteport=managed` unless `label` says otherwise).
//! Every [`store`](crate::CredentialBackend::store) adds a new secret version whose payload is JSON:
//! `{"username": …, "password": …, "host": …, "port": …}` (host and port optional; a port
//! written as a string is accepted, for secrets made by hand). [`get`](crate::CredentialBackend::get)
//! reads the `latest` version and checks its CRC32C when the service sends one.
//!
//! **Name mapping.** Secret IDs allow only `[A-Za-z0-9_-]` (at most 255 characters); credential
//! names are `[a-z0-9._-]` (at most 64). Letters, digits and `-` stay as they are; `_` is the
//! escape character: `_` is written `__` and `.` is written `_d`. The mapping is reversible
//! (every `_` in an ID starts a two-character escape), keeps IDs readable (`shop.example-com`
//! is `siteport-shop_dexample-com`) and at most 128 characters, which leaves 127 for the prefix.
//!
//! **Listing** asks the service for `name:<prefix>` (or, when `label` is set, for
//! `labels.<key>=<value>`), reads every page, and keeps only IDs that start with the prefix and
//! decode to a valid credential name: foreign secrets in the same project are ignored.
//!
//! **Transport.** The client speaks REST/JSON over HTTP/1.1 (reqwest + hyper), not gRPC, so an
//! endpoint override to `http://127.0.0.1:PORT` reaches a local fake. The Google crates are
//! built without their default `aws-lc-rs` provider (it needs cmake and a C toolchain); this
//! module installs rustls' `ring` provider as the process default, the one `siteport-ftp`
//! already uses, before it builds a client.
//!
//! **Authentication** is Application Default Credentials from `google-cloud-auth`:
//! `GOOGLE_APPLICATION_CREDENTIALS`, then the file written by `gcloud auth application-default
//! login`, then the metadata server on GCE/GKE/Cloud Run. `credentials_file` in
//! [`GcpSettings`] names a key file instead (same formats as ADC).
//!
//! **Retries**: `UNAVAILABLE`/HTTP 503 and connection failures on idempotent calls,
//! `RESOURCE_EXHAUSTED`/HTTP 429 on every call, up to `max_attempts` within `timeout_secs`, with
//! exponential backoff. Creating a secret and adding a version are marked idempotent: a retry
//! after a lost reply either meets ALREADY_EXISTS (handled) or adds an identical version.
//! Nothing else is retried.
//!
//! **Secrets in memory**: the JSON written and the text read are zeroized; the SDK's own
//! request and response buffers (`bytes::Bytes`) are not under our control and are freed, not
//! wiped. The SDK logs request and response bodies when `GOOGLE_CLOUD_RUST_LOGGING=true`;
//! opening the backend refuses that setting, since those bodies hold the password.

mod settings;
pub use settings::{DEFAULT_GCP_LABEL, DEFAULT_GCP_PREFIX, GcpSettings};

#[cfg(feature = "gcp")]
mod backend;
#[cfg(feature = "gcp")]
mod client;
#[cfg(feature = "gcp")]
mod names;
#[cfg(feature = "gcp")]
pub use backend::GcpBackend;
#[cfg(feature = "gcp")]
pub use names::{MAX_PREFIX_LEN, decode_name, encode_name};
