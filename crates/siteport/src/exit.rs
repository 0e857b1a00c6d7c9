//! Process exit codes. Scripts depend on these numbers: they are documented in the README and in
//! `siteport --help`, and never change meaning.

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
/// A transfer ran, but some files failed.
pub const TRANSFERS_FAILED: u8 = 5;
/// A network or TLS error: connection refused, timeout, certificate rejected.
pub const NETWORK: u8 = 6;

/// The table shown at the end of `siteport --help`.
pub const HELP_TABLE: &str = "\
Exit codes:
  0  success
  1  internal error (a bug: please report it)
  2  usage or config error (bad flag, bad name or input, no terminal to prompt on)
  3  credential store error (not found, already exists, wrong key, corrupt, locked, permissions)
  4  FTP login refused
  5  some transfers failed
  6  network or TLS error";
