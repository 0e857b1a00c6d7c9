//! SFTP client for siteport, on russh and russh-sftp (pure Rust, tokio).
//!
//! [`SftpConnection::connect`] opens one SSH connection, checks the server's host key
//! against [`HostKeyPolicy`] *during the key exchange* (an unknown or changed key fails there,
//! before any password or key signature is offered), authenticates with a password, a
//! private key (with its passphrase) or the ssh-agent ([`Auth`]), and starts the `sftp`
//! subsystem. Then: [`list_dir`](SftpConnection::list_dir) from READDIR's attributes (no STAT
//! per entry, symlinks reported, never followed), atomic uploads
//! ([`put_atomic`](SftpConnection::put_atomic): temp name, SETSTAT mode and time, then
//! `posix-rename@openssh.com` or remove + rename), downloads, `mkdir`, removals. Transfers
//! keep many requests in flight, as OpenSSH's `sftp` does.
//!
//! This crate knows no credential store and no sync engine; it never logs or shows a secret
//! (`Debug` of [`Auth`] and [`ConnectOptions`] prints `****`).
//!
//! Layout: `options` (what to connect to), `hostkey` (known_hosts, pins), `conn` (connect
//! and authenticate; `conn/ops` listing and small operations, `conn/transfer` pipelined
//! uploads and downloads), `error`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod conn;
mod error;
mod hostkey;
mod options;

pub use conn::{
    CHUNK, EntryKind, IN_FLIGHT, Observer, OnBytes, PutOutcome, RemoteEntry, RenameMethod,
    SftpConnection,
};
pub use error::{HostKeyInfo, SftpError, SftpErrorKind};
pub use hostkey::{fingerprint, known_hosts_line};
pub use options::{Auth, ConnectOptions, HostKeyPolicy};
pub use secrecy::SecretString;
