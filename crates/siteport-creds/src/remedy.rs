//! Fixes that are actions of the program using this library.
//!
//! The library says what is wrong and which kind of fix applies; it never spells out a command
//! line, because it does not know the program that embeds it. The `siteport` CLI renders each
//! [`Remedy`] as the `siteport …` command that performs it (and [`Error::hint_with`] places it
//! in the error's hint); another program renders its own.
//!
//! [`Error::hint_with`]: crate::Error::hint_with

use std::path::PathBuf;

use crate::credential::CredentialName;

/// A fix the user performs through the program embedding the library.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Remedy {
    /// Store the missing credential (`credential add NAME`).
    AddCredential(CredentialName),
    /// Store the missing credential, which lands in the given writable backend of a chain.
    AddCredentialInto {
        /// The credential.
        name: CredentialName,
        /// The backend that would store it (its `describe()`).
        backend: String,
    },
    /// Replace the existing credential (`credential add NAME --force`).
    ReplaceCredential(CredentialName),
    /// Overwrite a secret that is damaged or not a credential (`credential add NAME --force`).
    /// `None` when the name is not at hand: the renderer shows a placeholder.
    RewriteCredential(Option<CredentialName>),
    /// Store the credential again over an unusable latest version (`credential add NAME --force`).
    AddCredentialAgain(CredentialName),
    /// Create the missing store (`credential init`).
    InitStore,
    /// Create a store together with a new identity (`credential init`).
    InitStoreAndIdentity,
    /// Create the missing store, then add the credential (`credential init`, `credential add`).
    InitStoreThenAdd(CredentialName),
    /// Create an identity file (`credential init`).
    CreateIdentity,
    /// The store exists: change its keys (`credential rekey`) or start over (`credential init
    /// --force`, which keeps the old store as a backup).
    RekeyOrReinit,
    /// Someone who can open the store adds this recipient (`credential rekey --recipient`).
    /// `None` when the recipient is not known: the renderer shows a placeholder.
    AddRecipient(Option<String>),
    /// Rebuild the program with this backend's cargo feature.
    RebuildWithFeature(String),
    /// Store the credential in the file backend instead (`--credential-backend file credential
    /// add NAME`).
    AddToFileBackend(CredentialName),
    /// Create the files of a mounted-secrets directory through an orchestrator (for example
    /// from `credential export --format k8s-secret NAME`), or use the file backend.
    CreateThroughOrchestrator {
        /// The credential's directory.
        dir: PathBuf,
        /// The credential.
        name: CredentialName,
    },
    /// Use the program's own (redacted) verbose logging instead.
    UseVerboseLogging,
}

/// Where a remedy goes relative to the hint text, and what joins them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Join {
    /// `<hint><sep><remedy>`.
    After(&'static str),
    /// `<remedy><sep><hint>`.
    Before(&'static str),
}
