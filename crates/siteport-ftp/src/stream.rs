//! A TCP stream that is plain or TLS, and the control channel's reply reader.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::command::Command;
use crate::error::{FtpError, FtpErrorKind};

/// Plain TCP or TLS over TCP.
pub(crate) enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Stream {
    pub(crate) fn is_tls(&self) -> bool {
        matches!(self, Stream::Tls(_))
    }

    /// A download's data connection: our side is done at once (nothing is ever sent on it),
    /// so it is closed now rather than after the last byte has come. vsftpd sends a
    /// transfer's `226` only once the client has closed its side (a plain FIN, or under TLS
    /// its `close_notify`): this saves a round trip per download. Under TLS only when
    /// `tls_too` (see `FtpConnection::close_early`). Returns whether it closed.
    pub(crate) async fn half_close(&mut self, tls_too: bool) -> bool {
        match self {
            Stream::Plain(s) => {
                let _ = s.shutdown().await;
                true
            }
            // `close_notify`, then the FIN: tokio-rustls reads on after both.
            Stream::Tls(s) if tls_too => s.shutdown().await.is_ok(),
            Stream::Tls(_) => false,
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    /// For TLS this sends `close_notify` before the TCP FIN; vsftpd answers a bare FIN on an
    /// upload with `426`.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// One server reply: the code and the text of all its lines (joined with `\n`, codes stripped).
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub code: u16,
    pub text: String,
}

/// Longest reply accepted; a server sending more is broken or hostile.
const MAX_REPLY: usize = 256 * 1024;

/// The control channel: a stream, a read buffer, and where it goes (for errors and traces).
pub(crate) struct Control {
    stream: Option<Stream>,
    buf: Vec<u8>,
    pub(crate) server: String,
    pub(crate) timeout: Duration,
}

impl Control {
    pub(crate) fn new(stream: Stream, server: String, timeout: Duration) -> Self {
        Self {
            stream: Some(stream),
            buf: Vec::with_capacity(1024),
            server,
            timeout,
        }
    }

    fn stream(&mut self, what: &str) -> Result<&mut Stream, FtpError> {
        self.stream.as_mut().ok_or_else(|| {
            FtpError::new(
                FtpErrorKind::Transient,
                self.server.clone(),
                "control connection is closed",
            )
            .with_command(what)
        })
    }

    pub(crate) fn timed_out(&self, command: &str) -> FtpError {
        FtpError::new(
            FtpErrorKind::Transient,
            self.server.clone(),
            format!("no answer within {} s", self.timeout.as_secs_f32()),
        )
        .with_command(command)
    }

    /// Takes the plain TCP stream out for the TLS upgrade. Nothing may be buffered: the server
    /// must not send anything between `234` and the handshake.
    pub(crate) fn take_plain(&mut self) -> Result<TcpStream, FtpError> {
        if !self.buf.is_empty() {
            return Err(FtpError::new(
                FtpErrorKind::Protocol,
                self.server.clone(),
                "server sent data before the TLS handshake",
            )
            .with_command("AUTH TLS"));
        }
        match self.stream.take() {
            Some(Stream::Plain(s)) => Ok(s),
            other => {
                self.stream = other;
                Err(FtpError::new(
                    FtpErrorKind::Protocol,
                    self.server.clone(),
                    "control connection is already TLS",
                )
                .with_command("AUTH TLS"))
            }
        }
    }

    pub(crate) fn put(&mut self, stream: Stream) {
        self.stream = Some(stream);
    }

    pub(crate) fn is_tls(&self) -> bool {
        self.stream.as_ref().is_some_and(Stream::is_tls)
    }

    /// Sends one command line. Refuses CR/LF/NUL inside it (command injection). A
    /// [`Command::Secret`] is written straight from its own wiped buffer, never copied into
    /// another one here.
    pub(crate) async fn send<'a>(
        &mut self,
        command: impl Into<Command<'a>>,
    ) -> Result<(), FtpError> {
        let command = command.into();
        self.refuse_line_break(command)?;
        tracing::trace!(target: "siteport_ftp::proto", server = %self.server, "> {command}");
        match command {
            Command::Secret(line) => self.write(line.wire_bytes(), command.label()).await,
            Command::Plain(c) => {
                let mut line = Vec::with_capacity(c.len() + 2);
                line.extend_from_slice(c.as_bytes());
                line.extend_from_slice(b"\r\n");
                self.write(&line, c).await
            }
        }
    }

    /// Sends several plain command lines in one write (pipelining); the caller reads one
    /// reply per command, in order. Refuses CR/LF/NUL inside any of them (command injection).
    /// Takes no secret: a secret line is only ever sent alone, from its own buffer.
    pub(crate) async fn send_all(&mut self, commands: &[&str]) -> Result<(), FtpError> {
        let mut line = Vec::with_capacity(commands.iter().map(|c| c.len() + 2).sum());
        for &command in commands {
            self.refuse_line_break(Command::Plain(command))?;
            tracing::trace!(target: "siteport_ftp::proto", server = %self.server, "> {command}");
            line.extend_from_slice(command.as_bytes());
            line.extend_from_slice(b"\r\n");
        }
        let label = commands.first().copied().unwrap_or_default();
        self.write(&line, label).await
    }

    fn refuse_line_break(&self, command: Command<'_>) -> Result<(), FtpError> {
        if !command.has_line_break() {
            return Ok(());
        }
        Err(FtpError::new(
            FtpErrorKind::Invalid,
            self.server.clone(),
            "refusing to send a command containing CR, LF or NUL",
        )
        .with_command(&command.label().replace(['\r', '\n', '\0'], "?")))
    }

    /// Writes `bytes` (whole command lines) and flushes; `label` names them in errors.
    async fn write(&mut self, bytes: &[u8], label: &str) -> Result<(), FtpError> {
        let timeout = self.timeout;
        let server = self.server.clone();
        let stream = self.stream(label)?;
        let res = tokio::time::timeout(timeout, async {
            stream.write_all(bytes).await?;
            stream.flush().await
        })
        .await;
        match res {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                self.stream = None;
                Err(FtpError::from_io(&server, Some(label), e))
            }
            Err(_) => {
                self.stream = None;
                Err(self.timed_out(label))
            }
        }
    }

    async fn read_line(&mut self, command: &str) -> Result<String, FtpError> {
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let raw: Vec<u8> = self.buf.drain(..=pos).collect();
                let line = String::from_utf8_lossy(&raw);
                return Ok(line.trim_end_matches(['\r', '\n']).to_string());
            }
            if self.buf.len() > MAX_REPLY {
                self.stream = None;
                return Err(FtpError::new(
                    FtpErrorKind::Protocol,
                    self.server.clone(),
                    "reply line too long",
                )
                .with_command(command));
            }
            let timeout = self.timeout;
            let server = self.server.clone();
            let mut chunk = [0u8; 4096];
            let stream = self.stream(command)?;
            match tokio::time::timeout(timeout, stream.read(&mut chunk)).await {
                Ok(Ok(0)) => {
                    self.stream = None;
                    return Err(FtpError::from_io(
                        &server,
                        Some(command),
                        io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "server closed the control connection",
                        ),
                    ));
                }
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
                Ok(Err(e)) => {
                    self.stream = None;
                    return Err(FtpError::from_io(&server, Some(command), e));
                }
                Err(_) => {
                    self.stream = None;
                    return Err(self.timed_out(command));
                }
            }
        }
    }

    /// Reads one complete (possibly multi-line) reply.
    pub(crate) async fn read_reply(&mut self, command: &str) -> Result<Reply, FtpError> {
        self.read_reply_max(command, MAX_REPLY).await
    }

    /// Reads one reply of up to `max` bytes: a listing sent over the control connection
    /// (`STAT`) is as long as the directory is large.
    pub(crate) async fn read_reply_max(
        &mut self,
        command: &str,
        max: usize,
    ) -> Result<Reply, FtpError> {
        let first = self.read_line(command).await?;
        tracing::trace!(target: "siteport_ftp::proto", server = %self.server, "< {first}");
        let bytes = first.as_bytes();
        let code = match first.get(..3).and_then(|c| c.parse::<u16>().ok()) {
            Some(c) if (100..600).contains(&c) => c,
            _ => {
                self.stream = None;
                return Err(FtpError::new(
                    FtpErrorKind::Protocol,
                    self.server.clone(),
                    format!("not an FTP reply: {:?}", truncate(&first, 80)),
                )
                .with_command(command));
            }
        };
        let mut text = first.get(4..).unwrap_or("").to_string();
        if bytes.get(3) == Some(&b'-') {
            let end = format!("{code} ");
            let mut total = text.len();
            loop {
                let line = self.read_line(command).await?;
                tracing::trace!(target: "siteport_ftp::proto", server = %self.server, "< {line}");
                total += line.len();
                if total > max {
                    self.stream = None;
                    return Err(FtpError::new(
                        FtpErrorKind::Protocol,
                        self.server.clone(),
                        "reply too long",
                    )
                    .with_command(command));
                }
                if line.starts_with(&end) || line == end.trim_end() {
                    text.push('\n');
                    text.push_str(line.get(4..).unwrap_or(""));
                    break;
                }
                text.push('\n');
                text.push_str(&line);
            }
        }
        Ok(Reply { code, text })
    }

    /// Sends a command and reads its reply.
    pub(crate) async fn cmd<'a>(
        &mut self,
        command: impl Into<Command<'a>>,
    ) -> Result<Reply, FtpError> {
        let command = command.into();
        self.send(command).await?;
        self.read_reply(command.label()).await
    }

    /// Sends a command and fails unless the reply code is one of `ok`.
    pub(crate) async fn expect<'a>(
        &mut self,
        command: impl Into<Command<'a>>,
        ok: &[u16],
    ) -> Result<Reply, FtpError> {
        let command = command.into();
        let r = self.cmd(command).await?;
        if ok.contains(&r.code) {
            Ok(r)
        } else {
            Err(FtpError::from_reply(
                &self.server,
                command.label(),
                r.code,
                &r.text,
            ))
        }
    }

    pub(crate) fn is_open(&self) -> bool {
        self.stream.is_some()
    }

    /// Closes the stream, with `close_notify` first when it is TLS.
    pub(crate) async fn close(&mut self) {
        if let Some(mut s) = self.stream.take() {
            let _ = tokio::time::timeout(self.timeout, s.shutdown()).await;
        }
    }
}

fn truncate(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}
