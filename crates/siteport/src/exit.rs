//! Process exit codes, and the one policy that maps every failure to one. Scripts depend on
//! these numbers: they are documented in the README and in `siteport --help` (the docs test
//! checks that the three agree), and never change meaning.
//!
//! Every [`CliError`](crate::error::CliError) gets its code from [`code`]: commands say *what*
//! failed (a [`Failure`]: a library error kind, or the CLI's own), never a number.

use siteport_creds::ErrorKind as CredentialKind;
use siteport_sync::ErrorKind as SyncKind;

use crate::config::ConfigErrorKind;
use crate::migrate::MigrateErrorKind;

/// Success.
pub const OK: u8 = 0;
/// A bug or an unexpected failure inside siteport (it could not start its runtime, write its
/// output, …). Please report it.
pub const INTERNAL: u8 = 1;
/// The command line, the config file or input given on stdin/at a prompt is wrong: unknown flag,
/// bad credential name, empty password, no terminal to prompt on, unknown backend, …
pub const USAGE: u8 = 2;
/// A credential store failed: not found, already exists, wrong key or passphrase, corrupt or
/// tampered store, locked, unsafe permissions, backend unavailable or unsupported operation.
pub const CREDENTIAL: u8 = 3;
/// An FTP server refused the login (530).
pub const LOGIN_REFUSED: u8 = 4;
/// A transfer ran, but some files failed, or `export --verify` found a file the server does not
/// have as it was sent.
pub const TRANSFERS_FAILED: u8 = 5;
/// A network, TLS or SSH host-key error: connection refused, timeout, certificate rejected,
/// unknown or changed host key.
pub const NETWORK: u8 = 6;
/// Another run holds the site's lock (`export`/`import` without `--lock-wait`, or the wait
/// ran out).
pub const LOCKED: u8 = 7;
/// Stopped by Ctrl-C (SIGINT), after releasing the site lock: 128 + 2, as a shell reports it.
pub const INTERRUPTED: u8 = 130;
/// Stopped by SIGTERM, after releasing the site lock: 128 + 15.
pub const TERMINATED: u8 = 143;

/// Every code, in order, with the constant's name (the docs test checks the README and
/// [`HELP_TABLE`] against it).
pub const ALL: [(u8, &str); 8] = [
    (OK, "OK"),
    (INTERNAL, "INTERNAL"),
    (USAGE, "USAGE"),
    (CREDENTIAL, "CREDENTIAL"),
    (LOGIN_REFUSED, "LOGIN_REFUSED"),
    (TRANSFERS_FAILED, "TRANSFERS_FAILED"),
    (NETWORK, "NETWORK"),
    (LOCKED, "LOCKED"),
];

/// The table shown at the end of `siteport --help`.
pub const HELP_TABLE: &str = "\
Exit codes:
  0  success
  1  internal error (a bug: please report it)
  2  usage or config error (bad flag, bad name or input, no terminal to prompt on, unwritable -o path, delete guard)
  3  credential store error (not found, already exists, wrong key, corrupt, locked, permissions)
  4  login refused (FTP or SFTP)
  5  some transfers failed or verification mismatched
  6  network or TLS error
  7  the site is locked by another run";

/// What failed, as the exit-code policy sees it: each library's error kind, and the CLI's own
/// failures. [`code`] turns it into the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// A wrong command line or state the user must change (bad flag combination, missing site,
    /// no terminal to prompt on): 2.
    Usage,
    /// Input the user typed (a flag, stdin, a prompt) failed validation: 2.
    InvalidInput,
    /// A bug or an unexpected failure inside siteport (no runtime, stdout gone): 1.
    Internal,
    /// A file the command was asked to write (`credential export -o` into a missing or
    /// read-only directory, `site trust`'s config or known_hosts, `$GITHUB_OUTPUT`) could not be
    /// written: 2, the path given needs fixing (1 would call it a bug in siteport).
    LocalWrite,
    /// A config file failure: 3 when a credential could not be had, else 2.
    Config(ConfigErrorKind),
    /// A credential backend failure, whatever its kind (a backend's own `Invalid` included:
    /// the store, not the command line, needs fixing): 3.
    Credential(CredentialKind),
    /// A sync-engine failure that stopped a transfer command.
    Sync(SyncKind),
    /// A sync-engine failure while only testing a login (`credential test`): as [`Sync`](Self::Sync),
    /// except that a failure that would mean "transfers failed" (5) is reported as a
    /// connection problem (6): no transfer ran, and the failure says nothing about the password.
    LoginTest(SyncKind),
    /// A `migrate` failure: 3 for the backend, 2 for the config or the files it writes.
    Migrate(MigrateErrorKind),
    /// A transfer run finished, but some of its actions failed, or `--verify` found a
    /// mismatch: 5.
    TransfersFailed,
    /// The delete guard refused an export plan, or the local root is missing: 2.
    Guard,
    /// Another run holds the site lock: 7.
    Locked,
    /// A signal stopped the run (the lock was released first): 130 for SIGINT, 143 for
    /// SIGTERM.
    Interrupted {
        /// SIGTERM rather than SIGINT.
        sigterm: bool,
    },
}

/// The exit code of `failure`: the one place the policy is decided.
pub fn code(failure: Failure) -> u8 {
    match failure {
        Failure::Usage | Failure::InvalidInput | Failure::LocalWrite => USAGE,
        Failure::Internal => INTERNAL,
        Failure::Config(kind) => config_code(kind),
        Failure::Credential(kind) => credential_code(kind),
        Failure::Sync(kind) => sync_code(kind),
        Failure::LoginTest(kind) => match sync_code(kind) {
            TRANSFERS_FAILED => NETWORK,
            other => other,
        },
        Failure::Migrate(kind) => migrate_code(kind),
        Failure::TransfersFailed => TRANSFERS_FAILED,
        Failure::Guard => USAGE,
        Failure::Locked => LOCKED,
        Failure::Interrupted { sigterm: false } => INTERRUPTED,
        Failure::Interrupted { sigterm: true } => TERMINATED,
    }
}

/// Every credential-store failure exits 3 (SPEC §5): see [`Failure::Credential`].
fn credential_code(kind: CredentialKind) -> u8 {
    match kind {
        CredentialKind::NotFound
        | CredentialKind::AlreadyExists
        | CredentialKind::Locked
        | CredentialKind::BadKey
        | CredentialKind::PermissionDenied
        | CredentialKind::Corrupt
        | CredentialKind::Unavailable
        | CredentialKind::Invalid
        | CredentialKind::Unsupported => CREDENTIAL,
        // A kind added later is still a store failure.
        _ => CREDENTIAL,
    }
}

/// Engine kinds (SPEC §5): login refused → 4, network/TLS → 6, bad options → 2, anything else
/// that stopped the run → 5.
fn sync_code(kind: SyncKind) -> u8 {
    match kind {
        SyncKind::Login => LOGIN_REFUSED,
        SyncKind::Network | SyncKind::Tls | SyncKind::HostKey | SyncKind::TooManyConnections => {
            NETWORK
        }
        SyncKind::Config => USAGE,
        SyncKind::NotFound
        | SyncKind::Permission
        | SyncKind::Transfer
        | SyncKind::LocalIo
        | SyncKind::UnsafeName
        | SyncKind::Conflict
        | SyncKind::Journal => TRANSFERS_FAILED,
        // A kind added later stopped the run like the others.
        _ => TRANSFERS_FAILED,
    }
}

/// Config kinds: a credential that could not be had → 3, anything else about the file → 2.
fn config_code(kind: ConfigErrorKind) -> u8 {
    match kind {
        ConfigErrorKind::Credential => CREDENTIAL,
        ConfigErrorKind::NotFound
        | ConfigErrorKind::Io
        | ConfigErrorKind::Syntax
        | ConfigErrorKind::Invalid
        | ConfigErrorKind::Reference => USAGE,
    }
}

/// Migrate kinds: the backend → 3; the config, the import file or writing the new config → 2.
fn migrate_code(kind: MigrateErrorKind) -> u8 {
    match kind {
        MigrateErrorKind::Credential => CREDENTIAL,
        MigrateErrorKind::Config | MigrateErrorKind::Io => USAGE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Asserts `code(failure) == want`, naming the failure when it is not.
    #[track_caller]
    fn check(failure: Failure, want: u8) {
        assert_eq!(code(failure), want, "exit code of {failure:?}");
    }

    #[test]
    fn cli_failures() {
        check(Failure::Usage, USAGE);
        check(Failure::InvalidInput, USAGE);
        check(Failure::Internal, INTERNAL);
        check(Failure::LocalWrite, USAGE);
        check(Failure::TransfersFailed, TRANSFERS_FAILED);
        check(Failure::Guard, USAGE);
        check(Failure::Locked, 7);
        check(Failure::Interrupted { sigterm: false }, 130);
        check(Failure::Interrupted { sigterm: true }, 143);
    }

    #[test]
    fn every_credential_kind_exits_3() {
        for kind in [
            CredentialKind::NotFound,
            CredentialKind::AlreadyExists,
            CredentialKind::Locked,
            CredentialKind::BadKey,
            CredentialKind::PermissionDenied,
            CredentialKind::Corrupt,
            CredentialKind::Unavailable,
            CredentialKind::Invalid,
            CredentialKind::Unsupported,
        ] {
            check(Failure::Credential(kind), CREDENTIAL);
        }
    }

    #[test]
    fn sync_kinds_follow_the_spec() {
        let table = [
            (SyncKind::Login, LOGIN_REFUSED),
            (SyncKind::Network, NETWORK),
            (SyncKind::Tls, NETWORK),
            (SyncKind::HostKey, NETWORK),
            (SyncKind::TooManyConnections, NETWORK),
            (SyncKind::Config, USAGE),
            (SyncKind::NotFound, TRANSFERS_FAILED),
            (SyncKind::Permission, TRANSFERS_FAILED),
            (SyncKind::Transfer, TRANSFERS_FAILED),
            (SyncKind::LocalIo, TRANSFERS_FAILED),
            (SyncKind::UnsafeName, TRANSFERS_FAILED),
            (SyncKind::Conflict, TRANSFERS_FAILED),
            (SyncKind::Journal, TRANSFERS_FAILED),
        ];
        for (kind, want) in table {
            check(Failure::Sync(kind), want);
        }
        // The numbers themselves, as SPEC §5 writes them.
        check(Failure::Sync(SyncKind::Login), 4);
        check(Failure::Sync(SyncKind::Network), 6);
        check(Failure::Sync(SyncKind::HostKey), 6);
        check(Failure::Sync(SyncKind::Transfer), 5);
        check(Failure::Sync(SyncKind::Config), 2);
    }

    #[test]
    fn a_login_test_never_reports_transfers_failed() {
        let table = [
            (SyncKind::Login, LOGIN_REFUSED),
            (SyncKind::Network, NETWORK),
            (SyncKind::Tls, NETWORK),
            (SyncKind::HostKey, NETWORK),
            (SyncKind::TooManyConnections, NETWORK),
            (SyncKind::Config, USAGE),
            (SyncKind::NotFound, NETWORK),
            (SyncKind::Permission, NETWORK),
            (SyncKind::Transfer, NETWORK),
            (SyncKind::LocalIo, NETWORK),
            (SyncKind::UnsafeName, NETWORK),
            (SyncKind::Conflict, NETWORK),
            (SyncKind::Journal, NETWORK),
        ];
        for (kind, want) in table {
            check(Failure::LoginTest(kind), want);
        }
    }

    #[test]
    fn config_kinds() {
        check(Failure::Config(ConfigErrorKind::NotFound), USAGE);
        check(Failure::Config(ConfigErrorKind::Io), USAGE);
        check(Failure::Config(ConfigErrorKind::Syntax), USAGE);
        check(Failure::Config(ConfigErrorKind::Invalid), USAGE);
        check(Failure::Config(ConfigErrorKind::Reference), USAGE);
        check(Failure::Config(ConfigErrorKind::Credential), CREDENTIAL);
    }

    #[test]
    fn migrate_kinds() {
        check(Failure::Migrate(MigrateErrorKind::Config), USAGE);
        check(Failure::Migrate(MigrateErrorKind::Io), USAGE);
        check(Failure::Migrate(MigrateErrorKind::Credential), CREDENTIAL);
    }

    #[test]
    fn all_lists_every_code_once_in_order() {
        for (i, (code, name)) in ALL.iter().enumerate() {
            assert_eq!(usize::from(*code), i, "{name} is out of order");
        }
    }
}
