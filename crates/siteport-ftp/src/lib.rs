//! FTP/FTPS client for siteport, on tokio and rustls.
//!
//! [`FtpConnection`] is one logged-in control connection (binary type, passive mode: `EPSV`,
//! falling back to `PASV`); [`Pool`] bounds and reuses them. TLS modes are [`TlsMode::None`]
//! (warns), [`TlsMode::Explicit`] (`AUTH TLS`, never a silent fallback to plain text) and
//! [`TlsMode::Implicit`]. Certificates are verified against the web PKI roots plus the
//! system's trust store by default, or against a `ca_file`, or pinned by SHA-256
//! `fingerprint`, or not at all with `insecure`.
//!
//! Why not `suppaftp`: its async data connections do not set `TCP_NODELAY` and give no control
//! over which TLS session a data connection resumes. Both decide FTPS speed (and whether vsftpd
//! with `require_ssl_reuse=YES` accepts the data connection at all), so this crate speaks the
//! protocol itself; the command set a mirror needs is small.
//!
//! The protocol is traced at `trace` level (target `siteport_ftp::proto`), with `PASS ****`:
//! the password is sent from a buffer that is wiped on drop and can only print that label.
//!
//! Layout: `conn/` is [`FtpConnection`], a file per job (`login`, `data` for the passive data
//! channel, `listing`, `upload`, `download`, `file_ops`); `stream` is the control channel and
//! its reply reader; `command` the command lines, with `PASS` in a buffer wiped on drop; `tls`
//! the rustls configuration and `tls_diag` what a failed handshake means; `options` the
//! connection settings; `list` the listing parsers; `hash` the server hash commands (`HASH`,
//! `XSHA256`, ...); `rate` the process-wide bandwidth limit; `pool` and `error` what they say.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod command;
mod conn;
mod error;
mod hash;
mod list;
mod options;
mod pool;
mod rate;
mod stream;
mod tls;
mod tls_diag;

pub use conn::{Features, FtpConnection, OnBytes, ReadObserver};
pub use error::{FtpError, FtpErrorKind, kind_for_reply};
pub use hash::HashAlgorithm;
pub use list::{EntryKind, RemoteEntry, format_mdtm, parse_list_line, parse_mdtm, parse_mlsd_line};
pub use options::{ConnectOptions, ListingVerdict, PipelineSwitch, TlsMode};
pub use pool::{Pool, PooledConnection};
pub use rate::set_bandwidth_limit;
pub use secrecy::SecretString;
pub use tls::{check_ca_file, fingerprint_sha256, parse_fingerprint};
