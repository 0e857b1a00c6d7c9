//! Credential store for siteport: validated FTP credentials behind pluggable backends.
//!
//! A [`Credential`] is a name, a username, a password (a [`secrecy::SecretString`]) and an
//! optional host and port. Backends implement [`CredentialBackend`]; [`open_backend`] builds one
//! (or a [`ChainBackend`]) from a [`BackendSpec`] and [`BackendSettings`]. The library never
//! touches the terminal: anything interactive comes in through [`Prompter`], and it never
//! spells out a command line: a fix that is an action of the embedding program is a [`Remedy`]
//! the program renders.
//!
//! Layout: `backend` (the [`CredentialBackend`] trait), `testkit` (the conformance suite every
//! backend runs), `spec` (which backends: [`BackendSpec`] and its precedence), `settings` (every
//! backend's settings gathered into [`BackendSettings`]), `open` ([`open_backend`]), `prompt`
//! ([`Prompter`]), `error` and `remedy`, `credential` (the validated value), `reference`
//! (`${cred:…}` / `${env:…}` expansion), `chain`, `fsutil` (every 0600 file and 0700
//! directory). `backends/` holds one module per backend, a folder where it is big
//! (`vault/`, `aws/`, `gcp/`, `azure/`, `file/`, `env/`: its settings, builder, client or
//! transport, codec and the backend itself), and `payload` (the JSON codec the remote
//! backends share).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod backend;
pub mod backends;
mod chain;
mod credential;
mod error;
mod fsutil;
mod open;
mod prompt;
pub mod reference;
mod remedy;
mod settings;
mod spec;
#[cfg(feature = "testkit")]
pub mod testkit;

pub use backend::{BackendKind, CredentialBackend, CredentialInfo, Health, StoreMode};
pub use backends::aws::{AwsSettings, DEFAULT_SECRET_PREFIX};
pub use backends::azure::{AzureSettings, DEFAULT_AZURE_PREFIX};
pub use backends::gcp::{DEFAULT_GCP_LABEL, DEFAULT_GCP_PREFIX, GcpSettings};
pub use chain::ChainBackend;
pub use credential::{
    Credential, CredentialName, MAX_FIELD_LEN, MAX_NAME_LEN, MAX_SSH_KEY_LEN, ValidationError,
    parse_port,
};
pub use error::{Error, ErrorKind, Result};
pub use open::open_backend;
pub use prompt::{NoPrompter, Prompter};
pub use remedy::Remedy;
pub use settings::{BackendSettings, DirSettings, FileSettings, KeychainSettings, VaultSettings};
pub use spec::BackendSpec;

pub use secrecy::{ExposeSecret, SecretString};
