//! What the siteport-ftp tests share.

use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;
use siteport_ftp::{ConnectOptions, TlsMode};

/// Options for `user` at `host:port`: explicit FTPS trusting `ca`, or plain; 15 s timeout.
pub fn options(
    host: &str,
    port: u16,
    tls: bool,
    user: &str,
    password: &SecretString,
    ca: Option<PathBuf>,
) -> ConnectOptions {
    let mut o = ConnectOptions::new(
        host.to_owned(),
        port,
        if tls {
            TlsMode::Explicit
        } else {
            TlsMode::None
        },
        user.to_owned(),
        password.clone(),
    );
    o.ca_file = ca;
    o.timeout = Duration::from_secs(15);
    o
}
