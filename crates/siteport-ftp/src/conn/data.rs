//! Passive data connections: the address from `EPSV` (falling back to `PASV` for good), the
//! connection with `TCP_NODELAY`, and under TLS its handshake, which resumes the control
//! connection's session (what vsftpd's `require_ssl_reuse` demands); then the transfer's
//! final reply.

use std::io;
use std::net::SocketAddr;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use super::pipeline::{Expect, Sent, fits};
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
        if self.pipelines() && self.epsv {
            // The command goes out with an EPSV behind it (see `pipeline.rs`): to the passive
            // port armed by the previous transfer, or behind an EPSV of its own. vsftpd and
            // pure-ftpd open the passive port, answer 229, then wait for the data connection
            // to the command.
            if let Some((addr, sent)) = self.send_pipelined(command).await? {
                return self.start_transfer_at(command, addr, sent).await;
            }
            // No EPSV here after all: PASV from now on (`epsv` is off).
            let addr = self.pasv_addr().await?;
            return self.start_transfer_at(command, addr, Sent::No).await;
        }
        let addr = self.passive_addr().await?;
        self.start_transfer_at(command, addr, Sent::No).await
    }

    /// [`start_transfer`](Self::start_transfer) with the passive address already known.
    /// `sent`: whether (and how) the command went out already.
    pub(super) async fn start_transfer_at(
        &mut self,
        command: &str,
        addr: SocketAddr,
        sent: Sent,
    ) -> Result<Option<Data>, FtpError> {
        let server = self.server().to_string();
        let timeout = self.ctrl.timeout;
        let connected = tokio::time::timeout(timeout, TcpStream::connect(addr)).await;
        let tcp = match connected {
            Ok(Ok(s)) => s,
            Ok(Err(e)) if sent != Sent::No => {
                // A server that refused the command at once may have closed the port before
                // our connection reached it (pure-ftpd; proftpd, where the command went out
                // right behind its own EPSV): its reply says so.
                return Err(self.armed_failed(command, addr, e).await);
            }
            failed => {
                if sent != Sent::No {
                    // The server waits for a data connection that will not come; the control
                    // connection is out of step, so it goes (the engine reconnects).
                    self.owe_epsv = false;
                    self.ctrl.close().await;
                }
                return Err(match failed {
                    Ok(Err(e)) => FtpError::new(
                        FtpErrorKind::Transient,
                        &server,
                        format!("cannot open the data connection to {addr}"),
                    )
                    .with_command(command)
                    .with_source(e),
                    _ => FtpError::new(
                        FtpErrorKind::Transient,
                        &server,
                        format!("opening the data connection to {addr} timed out"),
                    )
                    .with_command(command),
                });
            }
        };
        let _ = tcp.set_nodelay(true);
        if sent == Sent::No {
            if self.pipelines() && self.epsv {
                // The next transfer's passive port, asked for now (see `pipeline.rs`), with
                // the queued command before it.
                let after = self.after.take();
                let mut batch = vec![command];
                batch.extend(after.as_deref());
                if self.arm_behind {
                    batch.push("EPSV");
                }
                self.send_in_step(&batch).await?;
                self.owe_epsv = self.arm_behind;
                self.owe_after = after;
            } else {
                self.ctrl.send(command).await?;
            }
        }

        let early = self.tls.as_ref().is_some_and(|t| t.tls12_only);
        if self.tls.is_none() || (self.pipelining && !early) {
            // Plain: nothing to do before the data flows. TLS 1.3 with vsftpd, pure-ftpd or
            // proftpd: they send `150` first and only then accept the handshake. Waiting for
            // it means a refused command (550) never starts a handshake: an abandoned one
            // would use up a single-use TLS 1.3 ticket, and after two of those vsftpd
            // (require_ssl_reuse) refuses every later transfer on this connection.
            if !self.preliminary(command).await? {
                return Ok(None);
            }
            return self.data_handshake(tcp, command).await.map(Some);
        }
        let Some(tls) = self.tls.clone() else {
            unreachable!("a plain connection returned above")
        };
        // Run the handshake and the wait for `150` side by side: some servers (libunftp) finish
        // the data-channel handshake before they send `150`, others (vsftpd) after. Under
        // TLS 1.2 the servers that send `150` first get the handshake early too (it waits
        // in their socket until they read it): a round trip less per file at a distance,
        // and a refused command's abandoned handshake costs no ticket (1.2 resumes by
        // session ID).
        let mut handshake = Box::pin(tls_handshake(
            &tls,
            tcp,
            timeout,
            &server,
            "the data connection",
        ));
        let mut data: Option<Stream> = None;
        let mut handshake_err: Option<FtpError> = None;
        let reply = {
            // One reply future for the whole wait: dropping a half-read multi-line reply would
            // desynchronise the control channel.
            let reply_fut = self.ctrl.read_reply(command);
            tokio::pin!(reply_fut);
            loop {
                tokio::select! {
                    r = &mut reply_fut => break r,
                    h = &mut handshake, if data.is_none() && handshake_err.is_none() => match h {
                        Ok(s) => data = Some(s),
                        Err(e) => handshake_err = Some(e),
                    },
                }
            }
        };
        if !self.pipelining {
            if !self.check_preliminary(command, reply?)? {
                return Ok(None);
            }
        } else {
            // What `preliminary` does with a reply it reads itself: checked in step when an
            // EPSV rides behind the command, the owed replies read when nothing starts.
            let r = match reply {
                Ok(r) if !self.owe_epsv || fits(Expect::TransferStart, r.code) => r,
                Ok(r) => return Err(self.out_of_step(command, &r).await),
                Err(e) => {
                    if self.owe_epsv && !self.ctrl.is_open() {
                        self.stop_pipelining(
                            "closed the control connection (or went silent) while pipelined replies were owed",
                        );
                    }
                    return Err(e);
                }
            };
            let started = self.check_preliminary(command, r);
            if !matches!(started, Ok(true)) {
                self.settle().await?;
            }
            if !started? {
                return Ok(None);
            }
            if let Some(e) = handshake_err {
                self.abandon().await;
                return Err(e.with_command(command));
            }
            return match data {
                Some(s) => Ok(Some(s)),
                // Not finished yet: it goes on from where it was.
                None => match handshake.await {
                    Ok(s) => Ok(Some(s)),
                    Err(e) => {
                        self.abandon().await;
                        Err(e.with_command(command))
                    }
                },
            };
        }
        if let Some(e) = handshake_err {
            return Err(e.with_command(command));
        }
        match data {
            Some(s) => Ok(Some(s)),
            None => Ok(Some(handshake.await.map_err(|e| e.with_command(command))?)),
        }
    }

    /// The data connection as the transfer uses it: plain, or after the TLS handshake (which
    /// resumes the control connection's session).
    async fn data_handshake(&mut self, tcp: TcpStream, command: &str) -> Result<Data, FtpError> {
        let Some(tls) = &self.tls else {
            return Ok(Stream::Plain(tcp));
        };
        let server = self.server().to_string();
        match tls_handshake(tls, tcp, self.ctrl.timeout, &server, "the data connection").await {
            Ok(s) => Ok(s),
            Err(e) => {
                self.abandon().await;
                Err(e.with_command(command))
            }
        }
    }

    /// Reads and checks a transfer command's first reply: `Ok(true)`, the transfer starts;
    /// `Ok(false)`, already complete. When it does not start, the `EPSV` reply owed behind it
    /// is read too.
    pub(super) async fn preliminary(&mut self, command: &str) -> Result<bool, FtpError> {
        let r = self
            .read_transfer_reply(command, Expect::TransferStart)
            .await?;
        let started = self.check_preliminary(command, r);
        if !matches!(started, Ok(true)) {
            self.settle().await?;
        }
        started
    }

    /// `Ok(true)`: transfer starting; `Ok(false)`: already complete. Keeps the size a
    /// starting transfer announces (see [`announced_size`]).
    pub(super) fn check_preliminary(&mut self, command: &str, r: Reply) -> Result<bool, FtpError> {
        self.announced = None;
        match r.code {
            125 | 150 => {
                self.announced = announced_size(&r.text);
                Ok(true)
            }
            226 | 250 => Ok(false),
            c => Err(FtpError::from_reply(self.server(), command, c, &r.text)),
        }
    }

    /// Reads the transfer's final reply, then the `EPSV` reply owed behind it.
    pub(super) async fn finish_transfer(&mut self, command: &str) -> Result<(), FtpError> {
        let r = self
            .read_transfer_reply(command, Expect::TransferEnd)
            .await?;
        self.settle().await?;
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
        let r = self.read_transfer_reply(command, Expect::TransferEnd).await;
        if r.is_ok()
            && let Err(e) = self.settle().await
        {
            return e;
        }
        match r {
            Ok(r) if r.code >= 400 => FtpError::from_reply(self.server(), command, r.code, &r.text),
            _ => self.data_err(command, e).await,
        }
    }

    /// A broken data connection, its final reply not read: the connection is abandoned when
    /// a pipelined reply is owed behind it.
    pub(super) async fn data_err(&mut self, command: &str, e: io::Error) -> FtpError {
        self.abandon().await;
        FtpError::new(
            FtpErrorKind::Transient,
            self.server(),
            "data connection failed",
        )
        .with_command(command)
        .with_source(e)
    }

    /// A transfer's wait timed out, its final reply not read: abandoned as in
    /// [`data_err`](Self::data_err).
    pub(super) async fn transfer_timed_out(&mut self, command: &str) -> FtpError {
        self.abandon().await;
        self.ctrl.timed_out(command)
    }

    pub(super) async fn read_all_limited(
        &mut self,
        command: &str,
        max: usize,
        what: &str,
    ) -> Result<Vec<u8>, FtpError> {
        self.read_all_at(command, None, max, what).await
    }

    /// `addr`: the passive address if already known (and whether the command went out
    /// already), else the transfer asks for one.
    pub(super) async fn read_all_at(
        &mut self,
        command: &str,
        addr: Option<(SocketAddr, Sent)>,
        max: usize,
        what: &str,
    ) -> Result<Vec<u8>, FtpError> {
        let started = match addr {
            Some((addr, sent)) => self.start_transfer_at(command, addr, sent).await?,
            None => self.start_transfer(command).await?,
        };
        let Some(mut data) = started else {
            return Ok(Vec::new());
        };
        let early = self.close_early();
        data.half_close(early).await;
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
                        self.owe_epsv = false;
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
                Ok(Err(e)) => return Err(self.data_err(command, e).await),
                Err(_) => return Err(self.transfer_timed_out(command).await),
            }
        }
        drop(data);
        self.finish_transfer(command).await?;
        self.check_announced(command, out.len() as u64)?;
        Ok(out)
    }

    /// Whether a download's TLS data connection sends its `close_notify` as soon as the
    /// transfer started, as a plain one sends its FIN (see `Stream::half_close`): with
    /// vsftpd and pure-ftpd, which read nothing on a download's data connection until they
    /// have sent the whole file and then wait for it. Only when the `150` announced the
    /// size, which [`check_announced`](Self::check_announced) holds the transfer to: a
    /// server that took the early close for the end of the transfer (TLS 1.2 has the peer
    /// answer it by closing; even under TLS 1.3, where it closes our direction alone, a
    /// server may misread it) fails the file rather than leaving it short with a `226`.
    pub(super) fn close_early(&self) -> bool {
        self.early_close && self.announced.is_some()
    }

    /// A transfer that brought fewer bytes than its `150` announced did not complete, even
    /// when the server's final reply says it did (a server that took our early
    /// `close_notify` for the end of the transfer would say so): a transient error, so the
    /// file is fetched again.
    pub(super) fn check_announced(&mut self, command: &str, got: u64) -> Result<(), FtpError> {
        match self.announced.take() {
            Some(want) if got < want => Err(FtpError::new(
                FtpErrorKind::Transient,
                self.server(),
                format!("the transfer ended after {got} of the {want} bytes the server announced"),
            )
            .with_command(command)),
            _ => Ok(()),
        }
    }
}

/// The size in a `150` reply's `(N bytes)` (vsftpd, proftpd): `None` when it names none.
fn announced_size(text: &str) -> Option<u64> {
    let line = text.lines().last()?;
    let end = line.rfind(" bytes)")?;
    let start = line[..end].rfind('(')? + 1;
    line[start..end].trim().parse().ok()
}

/// Parses the port of `229 Entering Extended Passive Mode (|||PORT|)`.
pub(super) fn parse_epsv(text: &str) -> Option<u16> {
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

    #[test]
    fn announced_sizes() {
        assert_eq!(
            announced_size("Opening BINARY mode data connection for /d/f.bin (4096 bytes)."),
            Some(4096)
        );
        assert_eq!(
            announced_size("Opening BINARY mode data connection for x (0 bytes)"),
            Some(0)
        );
        assert_eq!(announced_size("Here comes the directory listing."), None);
        assert_eq!(
            announced_size("Accepted data connection\n4.0 kbytes to download"),
            None
        );
        assert_eq!(announced_size("Opening for (weird) (abc bytes)"), None);
    }
}
