//! Passive data connections: the address from `EPSV` (falling back to `PASV` for good), the
//! connection with `TCP_NODELAY`, and under TLS its handshake, which resumes the control
//! connection's session (what vsftpd's `require_ssl_reuse` demands); then the transfer's
//! final reply.

use std::io;
use std::net::SocketAddr;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use super::{FtpConnection, tls_handshake};
use crate::error::{FtpError, FtpErrorKind};
use crate::stream::{Reply, Stream};

/// Copy buffer for transfers: large enough that a TLS record and a TCP segment are full,
/// small enough that memory stays flat whatever the file size.
pub(super) const COPY_BUF: usize = 64 * 1024;

/// A data connection (plain or TLS).
pub(super) type Data = Stream;

impl FtpConnection {
    pub(super) async fn passive_addr(&mut self) -> Result<SocketAddr, FtpError> {
        if self.epsv {
            let r = self.ctrl.cmd("EPSV").await?;
            if let Some(addr) = self.epsv_reply(r)? {
                return Ok(addr);
            }
        }
        self.pasv_addr().await
    }

    /// Reads an `EPSV` reply: the data address, or `None` when the server does not do EPSV
    /// (then PASV from now on).
    pub(super) fn epsv_reply(&mut self, r: Reply) -> Result<Option<SocketAddr>, FtpError> {
        if r.code == 229 {
            let port = parse_epsv(&r.text).ok_or_else(|| {
                FtpError::new(
                    FtpErrorKind::Protocol,
                    self.server(),
                    format!("cannot parse EPSV reply {:?}", r.text),
                )
                .with_command("EPSV")
            })?;
            return Ok(Some(SocketAddr::new(self.peer, port)));
        }
        if r.code / 100 == 4 {
            return Err(FtpError::from_reply(self.server(), "EPSV", r.code, &r.text));
        }
        // 500/502 and friends: not supported, use PASV from now on.
        self.epsv = false;
        Ok(None)
    }

    pub(super) async fn pasv_addr(&mut self) -> Result<SocketAddr, FtpError> {
        let r = self.ctrl.expect("PASV", &[227]).await?;
        let port = parse_pasv(&r.text).ok_or_else(|| {
            FtpError::new(
                FtpErrorKind::Protocol,
                self.server(),
                format!("cannot parse PASV reply {:?}", r.text),
            )
            .with_command("PASV")
        })?;
        Ok(SocketAddr::new(self.peer, port))
    }

    /// Opens a data connection and starts `command` on it. `Ok(None)` when the server answered
    /// the command with a final 2xx right away (an empty listing on some servers).
    pub(super) async fn start_transfer(&mut self, command: &str) -> Result<Option<Data>, FtpError> {
        if self.pipelining && self.epsv {
            // EPSV and the transfer command in one write: vsftpd and pure-ftpd open the
            // passive port, answer 229, then wait for the data connection to the command.
            self.ctrl.send_all(&["EPSV", command]).await?;
            let r = self.ctrl.read_reply("EPSV").await?;
            let addr = match self.epsv_reply(r) {
                Ok(Some(addr)) => addr,
                Ok(None) => {
                    // No EPSV here after all: the command failed for want of a data
                    // connection; its reply is read and dropped, and PASV used from now on.
                    self.ctrl.read_reply(command).await?;
                    let addr = self.pasv_addr().await?;
                    return self.start_transfer_at(command, addr, false).await;
                }
                Err(e) => {
                    let _ = self.ctrl.read_reply(command).await;
                    return Err(e);
                }
            };
            return self.start_transfer_at(command, addr, true).await;
        }
        let addr = self.passive_addr().await?;
        self.start_transfer_at(command, addr, false).await
    }

    /// [`start_transfer`](Self::start_transfer) with the passive address already known.
    /// `sent`: the command went out already (pipelined after EPSV).
    pub(super) async fn start_transfer_at(
        &mut self,
        command: &str,
        addr: SocketAddr,
        sent: bool,
    ) -> Result<Option<Data>, FtpError> {
        let server = self.server().to_string();
        let timeout = self.ctrl.timeout;
        let connected = tokio::time::timeout(timeout, TcpStream::connect(addr)).await;
        if sent && !matches!(connected, Ok(Ok(_))) {
            // The server waits for a data connection that will not come; the control
            // connection is out of step, so it goes (the engine reconnects).
            self.ctrl.close().await;
        }
        let tcp = match connected {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                return Err(FtpError::new(
                    FtpErrorKind::Transient,
                    &server,
                    format!("cannot open the data connection to {addr}"),
                )
                .with_command(command)
                .with_source(e));
            }
            Err(_) => {
                return Err(FtpError::new(
                    FtpErrorKind::Transient,
                    &server,
                    format!("opening the data connection to {addr} timed out"),
                )
                .with_command(command));
            }
        };
        let _ = tcp.set_nodelay(true);
        if !sent {
            self.ctrl.send(command).await?;
        }

        let Some(tls) = &self.tls else {
            let r = self.ctrl.read_reply(command).await?;
            return self
                .check_preliminary(command, r)
                .map(|ok| ok.then_some(Stream::Plain(tcp)));
        };
        if self.pipelining {
            // vsftpd and pure-ftpd send `150` first and only then accept the handshake. Waiting
            // for it means a refused command (550) never starts a handshake: an abandoned one
            // would use up a single-use TLS 1.3 ticket, and after two of those vsftpd
            // (require_ssl_reuse) refuses every later transfer on this connection.
            let r = self.ctrl.read_reply(command).await?;
            if !self.check_preliminary(command, r)? {
                return Ok(None);
            }
            return tls_handshake(tls, tcp, timeout, &server, "the data connection")
                .await
                .map(Some)
                .map_err(|e| e.with_command(command));
        }
        // Run the handshake and the wait for `150` side by side: some servers (libunftp) finish
        // the data-channel handshake before they send `150`, others (vsftpd) after.
        let handshake = tls_handshake(tls, tcp, timeout, &server, "the data connection");
        tokio::pin!(handshake);
        let mut data: Option<Stream> = None;
        let mut handshake_err: Option<FtpError> = None;
        let reply = {
            // One reply future for the whole wait: dropping a half-read multi-line reply would
            // desynchronise the control channel.
            let reply_fut = self.ctrl.read_reply(command);
            tokio::pin!(reply_fut);
            loop {
                tokio::select! {
                    r = &mut reply_fut => break r?,
                    h = &mut handshake, if data.is_none() && handshake_err.is_none() => match h {
                        Ok(s) => data = Some(s),
                        Err(e) => handshake_err = Some(e),
                    },
                }
            }
        };
        if !self.check_preliminary(command, reply)? {
            return Ok(None);
        }
        if let Some(e) = handshake_err {
            return Err(e.with_command(command));
        }
        match data {
            Some(s) => Ok(Some(s)),
            None => Ok(Some(handshake.await.map_err(|e| e.with_command(command))?)),
        }
    }

    /// `Ok(true)`: transfer starting; `Ok(false)`: already complete.
    pub(super) fn check_preliminary(&self, command: &str, r: Reply) -> Result<bool, FtpError> {
        match r.code {
            125 | 150 => Ok(true),
            226 | 250 => Ok(false),
            c => Err(FtpError::from_reply(self.server(), command, c, &r.text)),
        }
    }

    pub(super) async fn finish_transfer(&mut self, command: &str) -> Result<(), FtpError> {
        let r = self.ctrl.read_reply(command).await?;
        if r.code == 226 || r.code == 250 {
            Ok(())
        } else {
            Err(FtpError::from_reply(
                self.server(),
                command,
                r.code,
                &r.text,
            ))
        }
    }

    /// After the data connection of an upload broke: the server's reply (426, 550, 552…)
    /// says more than the reset does. A server that refuses the target after accepting the
    /// data connection (libunftp over TLS) resets it before its reply arrives.
    pub(super) async fn reply_or_data_err(&mut self, command: &str, e: io::Error) -> FtpError {
        match self.ctrl.read_reply(command).await {
            Ok(r) if r.code >= 400 => FtpError::from_reply(self.server(), command, r.code, &r.text),
            _ => self.data_err(command, e),
        }
    }

    pub(super) fn data_err(&self, command: &str, e: io::Error) -> FtpError {
        FtpError::new(
            FtpErrorKind::Transient,
            self.server(),
            "data connection failed",
        )
        .with_command(command)
        .with_source(e)
    }

    pub(super) async fn read_all_limited(
        &mut self,
        command: &str,
        max: usize,
        what: &str,
    ) -> Result<Vec<u8>, FtpError> {
        self.read_all_at(command, None, max, what).await
    }

    /// `addr`: the passive address if already known, else the transfer asks for one.
    pub(super) async fn read_all_at(
        &mut self,
        command: &str,
        addr: Option<SocketAddr>,
        max: usize,
        what: &str,
    ) -> Result<Vec<u8>, FtpError> {
        let started = match addr {
            Some(addr) => self.start_transfer_at(command, addr, false).await?,
            None => self.start_transfer(command).await?,
        };
        let Some(mut data) = started else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        let mut chunk = vec![0u8; COPY_BUF];
        let timeout = self.ctrl.timeout;
        loop {
            match tokio::time::timeout(timeout, data.read(&mut chunk)).await {
                Ok(Ok(0)) => break,
                Ok(Ok(n)) => {
                    out.extend_from_slice(&chunk[..n]);
                    if out.len() > max {
                        // Dropping the data connection aborts the transfer; the control
                        // connection's state is unknown now, so it is closed too.
                        drop(data);
                        self.ctrl.close().await;
                        return Err(FtpError::new(
                            FtpErrorKind::Protocol,
                            self.server(),
                            format!("{what} larger than {max} bytes"),
                        )
                        .with_command(command));
                    }
                }
                // A server that closes a TLS data channel without close_notify: the final
                // reply below says whether the transfer was complete.
                Ok(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => break,
                Ok(Err(e)) => return Err(self.data_err(command, e)),
                Err(_) => return Err(self.ctrl.timed_out(command)),
            }
        }
        drop(data);
        self.finish_transfer(command).await?;
        Ok(out)
    }
}

/// Parses the port of `229 Entering Extended Passive Mode (|||PORT|)`.
fn parse_epsv(text: &str) -> Option<u16> {
    let start = text.find('(')?;
    let end = text[start..].find(')')? + start;
    let inner = &text[start + 1..end];
    let delim = inner.chars().next()?;
    inner.split(delim).nth(3)?.parse().ok()
}

/// Parses the port of `227 Entering Passive Mode (h1,h2,h3,h4,p1,p2)`. The address part is
/// ignored: we connect to the control connection's peer (no PASV redirection to other hosts,
/// and NAT-ed servers that announce private addresses still work).
fn parse_pasv(text: &str) -> Option<u16> {
    let digits: Vec<u16> = text
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.parse().ok())
        .collect();
    // The reply code is stripped; take the last six numbers (some servers omit the parens).
    if digits.len() < 6 {
        return None;
    }
    let p = &digits[digits.len() - 6..];
    if p[..4].iter().any(|&x| x > 255) || p[4] > 255 || p[5] > 255 {
        return None;
    }
    Some(p[4] * 256 + p[5])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passive_replies() {
        assert_eq!(
            parse_epsv("Entering Extended Passive Mode (|||40123|)"),
            Some(40123)
        );
        assert_eq!(
            parse_epsv("Entering Extended Passive Mode (!!!21!)"),
            Some(21)
        );
        assert_eq!(parse_epsv("nonsense"), None);
        assert_eq!(
            parse_pasv("Entering Passive Mode (127,0,0,1,156,64)."),
            Some(156 * 256 + 64)
        );
        assert_eq!(parse_pasv("Entering Passive Mode 10,0,0,1,1,2"), Some(258));
        assert_eq!(parse_pasv("Entering Passive Mode (1,2,3)"), None);
    }
}
