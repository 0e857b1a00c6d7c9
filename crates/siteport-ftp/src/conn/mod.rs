//! One logged-in control connection and its data transfers, by what they do:
//! [`login`] connects and logs in, [`data`] opens passive data connections (EPSV/PASV, TLS
//! resumption), [`listing`] lists directories (MLSD, LIST, STAT over the control connection),
//! [`upload`] and [`download`] move files, [`file_ops`] runs the single-command operations
//! (MKD, DELE, RMD, RNFR/RNTO, MDTM). This file holds the connection itself, what the server
//! offers, and what the parts share.

mod data;
mod download;
mod file_ops;
mod listing;
mod login;
mod pipeline;
mod upload;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::error::{FtpError, FtpErrorKind};
use crate::options::PipelineSwitch;
use crate::stream::{Control, Stream};

pub use upload::{OnBytes, ReadObserver};

/// What the server offers, from `FEAT` (and what we learned by trying).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Features {
    /// `MLST`/`MLSD` (RFC 3659): machine-readable listings with exact UTC times.
    pub mlsd: bool,
    /// `MFMT`: set a file's modification time.
    pub mfmt: bool,
    /// `MDTM`: read a file's modification time.
    pub mdtm: bool,
    /// `SIZE`.
    pub size: bool,
    /// `UTF8` file names.
    pub utf8: bool,
    /// `REST STREAM`: resume transfers.
    pub rest: bool,
    /// `EPSV` (extended passive mode); tried first even when not advertised.
    pub epsv: bool,
    /// `TVFS`: Unix-like `/` paths.
    pub tvfs: bool,
    /// `AUTH TLS`.
    pub auth_tls: bool,
    /// The raw `FEAT` lines, trimmed.
    pub raw: Vec<String>,
}

impl Features {
    fn parse(text: &str) -> Self {
        let mut f = Features::default();
        // The first and last lines are the reply's own text ("Features:", "End").
        for line in text.lines().filter(|l| l.starts_with(' ')) {
            let line = line.trim();
            let upper = line.to_ascii_uppercase();
            let word = upper.split_whitespace().next().unwrap_or("");
            match word {
                "MLST" | "MLSD" => f.mlsd = true,
                "MFMT" => f.mfmt = true,
                "MDTM" => f.mdtm = true,
                "SIZE" => f.size = true,
                "UTF8" => f.utf8 = true,
                "REST" if upper.contains("STREAM") => f.rest = true,
                "EPSV" => f.epsv = true,
                "TVFS" => f.tvfs = true,
                "AUTH" if upper.contains("TLS") => f.auth_tls = true,
                _ => {}
            }
            f.raw.push(line.to_string());
        }
        f
    }
}

/// What each TLS handshake of a connection needs: one connector, so that its session cache
/// lets every data connection resume the control connection's session, and the server name.
struct TlsCtx {
    connector: TlsConnector,
    name: ServerName<'static>,
    /// The host as configured, for errors.
    host: String,
    /// What the connection trusts and the certificate it rejected, for errors.
    trust: crate::tls::Trust,
    seen: crate::tls::SeenCert,
    /// Implicit FTPS.
    implicit: bool,
    /// Only TLS 1.2 offered: data connections resume by session ID, which an abandoned
    /// handshake does not use up (see `start_transfer_at`).
    tls12_only: bool,
}

/// One logged-in control connection: binary type, passive mode (EPSV, falling back to PASV).
/// Paths may be absolute or relative to the login directory; they are always sent absolute, so
/// the `CWD` that listings use never changes what a path means.
pub struct FtpConnection {
    ctrl: Control,
    features: Features,
    /// Shared so that a data handshake under way borrows no part of the connection.
    tls: Option<std::sync::Arc<TlsCtx>>,
    peer: IpAddr,
    home: String,
    epsv: bool,
    list_all: bool,
    /// A server known to work strictly in order (vsftpd, pure-ftpd): several commands may be
    /// sent in one write, and a transfer's `150` comes before the data channel's TLS
    /// handshake. Others (libunftp) run some commands concurrently and answer out of order,
    /// and handshake before `150`.
    pipelining: bool,
    /// An `EPSV` may ride behind a transfer command to arm the next transfer's port: not
    /// with proftpd, which reads the control connection during a transfer and refuses the
    /// `EPSV` there (`450 data transfer in progress`), its reply then coming before the
    /// transfer's `226` (seen under load: the connection closed as out of step).
    arm_behind: bool,
    /// A download's TLS data connection may send its `close_notify` at once (see
    /// `close_early`): vsftpd and pure-ftpd, at a distance (see `EARLY_CLOSE_FROM`).
    early_close: bool,
    /// The size a transfer's `150` announced (`(N bytes)`, vsftpd and proftpd): a download
    /// that ends short of it failed, whatever its final reply says.
    announced: Option<u64>,
    /// Off for every connection of the run once one saw the server misbehave when pipelined.
    switch: PipelineSwitch,
    /// A passive address the server is listening on, from an `EPSV` sent behind the previous
    /// transfer command (see `pipeline.rs`): the next transfer connects to it at once.
    armed: Option<SocketAddr>,
    /// An `EPSV` went out behind the current transfer command: its reply follows the
    /// transfer's own and is read by `settle`.
    owe_epsv: bool,
    /// A command to send behind the next pipelined transfer command, before its `EPSV` (the
    /// `MFMT` of an upload's temp file, see `put_atomic`); taken by the transfer that sends it.
    after: Option<String>,
    /// That command went out behind the current transfer: `settle` reads its reply first.
    owe_after: Option<String>,
    /// The reply code to it, once read.
    after_reply: Option<u16>,
    /// The server reads no command while a transfer runs (vsftpd): a command written after an
    /// upload's data waits until the upload has ended (see `put_atomic_riding`).
    deaf_in_transfer: bool,
    /// The `RNFR`/`RNTO` lines of an atomic upload, to send once its data is all sent and
    /// closed, before its final reply is read (see `put_atomic_riding`), with the `STOR`
    /// line of that upload: taken by the next upload, and sent only if it is that one (a
    /// call cut short never lends its rename to a later upload).
    rename_behind: Option<(String, String, String)>,
    /// Those lines went out behind the current upload: their replies follow its final reply
    /// (and the `EPSV`'s), and the atomic upload reads them.
    owe_rename: Option<(String, String)>,
    /// Whether `STAT -a` lists a directory over the control connection exactly as `LIST -a`
    /// does (RFC 959 allows it; vsftpd does it): `None` until a non-empty listing was compared.
    stat_listing: Option<bool>,
    /// The same, shared with the other connections of these options (see [`ListingVerdict`]).
    listing: crate::options::ListingVerdict,
    /// Part of this connection's upload temp names (see `put_atomic`).
    tmp_tag: String,
}

impl std::fmt::Debug for FtpConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FtpConnection")
            .field("server", &self.ctrl.server)
            .field("tls", &self.tls.is_some())
            .field("home", &self.home)
            .finish_non_exhaustive()
    }
}

fn check_path(server: &str, op: &str, path: &str) -> Result<(), FtpError> {
    if path.is_empty() || path.contains(['\r', '\n', '\0']) {
        return Err(FtpError::new(
            FtpErrorKind::Invalid,
            server,
            format!(
                "{op}: path {:?} is empty or contains CR, LF or NUL",
                path.replace(['\r', '\n', '\0'], "?")
            ),
        ));
    }
    Ok(())
}

async fn tls_handshake(
    tls: &TlsCtx,
    tcp: TcpStream,
    timeout: Duration,
    server: &str,
    what: &str,
) -> Result<Stream, FtpError> {
    match tokio::time::timeout(timeout, tls.connector.connect(tls.name.clone(), tcp)).await {
        Ok(Ok(s)) => Ok(Stream::Tls(Box::new(s))),
        Ok(Err(e)) => {
            let cert = tls.seen.lock().unwrap_or_else(|p| p.into_inner()).take();
            let ctx = crate::tls_diag::HandshakeCtx {
                server,
                host: &tls.host,
                what,
                trust: &tls.trust,
                cert,
                implicit: tls.implicit,
            };
            Err(crate::tls_diag::handshake_error(ctx, e))
        }
        Err(_) => Err(FtpError::new(
            FtpErrorKind::Transient,
            server,
            format!("TLS handshake on {what} timed out"),
        )),
    }
}

impl FtpConnection {
    /// What the server offers.
    pub fn features(&self) -> &Features {
        &self.features
    }

    /// `host:port` of the server.
    pub fn server(&self) -> &str {
        &self.ctrl.server
    }

    /// False once the control connection broke (I/O error, timeout); a pool drops such a
    /// connection instead of reusing it.
    pub fn is_open(&self) -> bool {
        self.ctrl.is_open()
    }

    /// Whether the control connection is encrypted.
    pub fn is_tls(&self) -> bool {
        self.ctrl.is_tls()
    }

    /// Whether this connection pipelines commands: only with servers known to answer in order
    /// (vsftpd, pure-ftpd, proftpd), recognised by their greeting, and only until one
    /// connection of the run saw the server answer out of step (see [`PipelineSwitch`]).
    pub fn pipelines(&self) -> bool {
        self.pipelining && self.switch.is_on()
    }

    /// Sends one command on the control connection and returns its reply (code, text), for
    /// the extensions kept in other files (`hash.rs`). Never a secret: the command is plain.
    pub(crate) async fn raw_command(&mut self, command: &str) -> Result<(u16, String), FtpError> {
        let r = self.ctrl.cmd(command).await?;
        Ok((r.code, r.text))
    }

    /// `path` as sent on the wire (absolute), for the extensions kept in other files.
    pub(crate) fn wire_path(&self, path: &str) -> String {
        self.abs(path)
    }

    fn abs(&self, path: &str) -> String {
        if path.starts_with('/') {
            path.to_string()
        } else if self.home.ends_with('/') {
            format!("{}{}", self.home, path)
        } else {
            format!("{}/{}", self.home, path)
        }
    }

    /// `NOOP`: checks that the connection is alive (and keeps it so).
    pub async fn noop(&mut self) -> Result<(), FtpError> {
        self.ctrl.expect("NOOP", &[200]).await.map(drop)
    }

    /// `QUIT`, then closes the connection (with `close_notify` under TLS) without waiting
    /// for the `221`: nothing depends on it, and at a distance it is a round trip at the
    /// end of every run (the server reads the `QUIT` before it sees the connection close).
    pub async fn quit(mut self) -> Result<(), FtpError> {
        let res = self.ctrl.send("QUIT").await;
        self.ctrl.close().await;
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features() {
        let f = Features::parse(
            "Features:\n EPRT\n EPSV\n MDTM\n PASV\n REST STREAM\n SIZE\n TVFS\n UTF8\nEnd",
        );
        assert!(f.epsv && f.mdtm && f.rest && f.size && f.tvfs && f.utf8);
        assert!(!f.mlsd && !f.mfmt);
        let g = Features::parse("Extensions:\n MLST type*;size*;modify*;\n MFMT\n AUTH TLS\nEnd");
        assert!(g.mlsd && g.mfmt && g.auth_tls);
    }
}
