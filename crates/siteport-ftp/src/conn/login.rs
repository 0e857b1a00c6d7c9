//! Connecting and logging in: TCP (with `TCP_NODELAY`), TLS on the control connection
//! (implicit, or explicit with `AUTH TLS`), `USER`/`PASS`, then the session settings
//! (`PBSZ`/`PROT`, `TYPE I`, `FEAT`, `PWD`).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::ClientConfig;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::upload::tmp_tag;
use super::{Features, FtpConnection, TlsCtx, tls_handshake};
use crate::command::SecretLine;
use crate::error::{FtpError, FtpErrorKind};
use crate::options::{ConnectOptions, TlsMode};
use crate::stream::{Control, Stream};
use crate::tls;

impl FtpConnection {
    /// Connects, negotiates TLS as asked, logs in, switches to binary type, reads `FEAT`.
    ///
    /// TLS 1.2 is offered first: every FTPS server speaks it, and resuming the control
    /// connection's session on each data connection (what vsftpd's `require_ssl_reuse`
    /// demands) is a cheap session-ID lookup under 1.2, while 1.3 does a key exchange and
    /// issues new tickets on every data connection. A server that refuses 1.2 gets a second
    /// connection offering 1.3.
    ///
    /// A login that went wrong while pipelined (a reply that does not answer its command, the
    /// server closing on the batch) turns pipelining off for every connection of these
    /// options and is tried once more, one command at a time.
    pub async fn connect(opts: &ConnectOptions) -> Result<Self, FtpError> {
        let pipelining = opts.pipelining.is_on();
        match Self::connect_tls(opts).await {
            Err(_) if pipelining && !opts.pipelining.is_on() => Self::connect_tls(opts).await,
            r => r,
        }
    }

    async fn connect_tls(opts: &ConnectOptions) -> Result<Self, FtpError> {
        match Self::connect_with(opts, true).await {
            Err(e) if opts.tls != TlsMode::None && tls::is_version_refusal(&e) => {
                tracing::debug!(server = %opts.server(), "the server refused TLS 1.2; connecting again with TLS 1.3");
                Self::connect_with(opts, false).await
            }
            r => r,
        }
    }

    async fn connect_with(opts: &ConnectOptions, tls12_only: bool) -> Result<Self, FtpError> {
        let server = opts.server();
        let tls = match opts.tls {
            TlsMode::None => {
                tracing::warn!(server = %server, "plain FTP: the password and files travel unencrypted (tls = \"none\")");
                None
            }
            _ => {
                let setup = tls::client_config(opts, tls12_only)?;
                let config: Arc<ClientConfig> = setup.config;
                Some(Arc::new(TlsCtx {
                    connector: TlsConnector::from(config),
                    name: tls::server_name(opts)?,
                    host: opts.host.clone(),
                    trust: setup.trust,
                    seen: setup.seen,
                    implicit: opts.tls == TlsMode::Implicit,
                    tls12_only,
                }))
            }
        };
        let tcp = connect_tcp(opts).await?;
        let peer = tcp
            .peer_addr()
            .map_err(|e| FtpError::from_io(&server, None, e))?
            .ip();
        let stream = match (&tls, opts.tls) {
            (Some(t), TlsMode::Implicit) => {
                tls_handshake(t, tcp, opts.timeout, &server, "the control connection").await?
            }
            _ => Stream::Plain(tcp),
        };
        let mut ctrl = Control::new(stream, server.clone(), opts.timeout);
        let banner = ctrl
            .read_reply("(greeting)")
            .await
            .map_err(|e| greeting_error(e, opts))?;
        if banner.code != 220 {
            return Err(FtpError::from_reply(
                &server,
                "(greeting)",
                banner.code,
                &banner.text,
            ));
        }

        let pipelining = sequential_server(&banner.text);
        let early_close = closes_early(&banner.text);
        let deaf_in_transfer = deaf_in_transfer(&banner.text);

        if let (Some(t), TlsMode::Explicit) = (&tls, opts.tls) {
            auth_tls(&mut ctrl, t, opts.timeout, &server).await?;
        }
        // The login goes pipelined only while no connection of these options found the server
        // out of step.
        let pipelined_login = pipelining && opts.pipelining.is_on();
        let setup = async {
            login(&mut ctrl, opts, &server, pipelined_login).await?;
            session_setup(&mut ctrl, tls.is_some(), pipelined_login).await
        };
        let (features, home, round_trip) = match setup.await {
            // A refused login is the server's answer, pipelined or not; anything else may
            // be the server mishandling the batch (see `connect`).
            Err(e) if pipelined_login && e.kind() != FtpErrorKind::Login => {
                if opts.pipelining.turn_off() {
                    tracing::warn!(server = %server, error = %e, "a pipelined login failed: sending one command at a time to this server from now on");
                }
                return Err(e);
            }
            r => r?,
        };
        tracing::debug!(server = %server, tls = %opts.tls, mlsd = features.mlsd, mfmt = features.mfmt, "logged in");
        Ok(Self {
            ctrl,
            features,
            tls,
            peer,
            home,
            epsv: true,
            list_all: true,
            pipelining,
            // Near (loopback, a LAN) the early close costs the server more than the round
            // trip it saves (see `close_early`).
            early_close: early_close && round_trip >= EARLY_CLOSE_FROM,
            arm_behind: !banner.text.contains("ProFTPD"),
            announced: None,
            switch: opts.pipelining.clone(),
            armed: None,
            owe_epsv: false,
            after: None,
            owe_after: None,
            after_reply: None,
            deaf_in_transfer,
            rename_behind: None,
            owe_rename: None,
            stat_listing: opts.listing.get(),
            listing: opts.listing.clone(),
            tmp_tag: tmp_tag(),
        })
    }
}

/// No greeting, or not an FTP one: a server that speaks implicit FTPS waits for the client's
/// TLS hello and never greets a client that expects plain text first.
fn greeting_error(e: FtpError, opts: &ConnectOptions) -> FtpError {
    let silent = e.kind() == FtpErrorKind::Transient && e.code().is_none();
    let garbled = e.kind() == FtpErrorKind::Protocol;
    if opts.tls == TlsMode::Implicit || !(silent || garbled) {
        return e;
    }
    e.with_hint(
        "the server sent no FTP greeting: if it speaks implicit FTPS (usually port 990), set tls = \"implicit\"; otherwise check that this port is an FTP server",
    )
}

/// Upgrades the control connection with `AUTH TLS`. Never falls back to plain text.
async fn auth_tls(
    ctrl: &mut Control,
    t: &TlsCtx,
    timeout: Duration,
    server: &str,
) -> Result<(), FtpError> {
    let r = ctrl.cmd("AUTH TLS").await?;
    if r.code != 234 {
        // Never fall back to plain text: the password would go out in clear.
        return Err(FtpError::new(
            FtpErrorKind::Tls,
            server,
            format!("server refused AUTH TLS: {} {}", r.code, r.text.trim()),
        )
        .with_command("AUTH TLS")
        .with_hint(
            "the server does not offer explicit FTPS; use tls = \"implicit\" if it \
             listens for FTPS on port 990, or tls = \"none\" only on a trusted network",
        ));
    }
    let tcp = ctrl.take_plain()?;
    let s = tls_handshake(t, tcp, timeout, server, "the control connection").await?;
    ctrl.put(s);
    Ok(())
}

/// `USER`, then `PASS` if asked for, sent from a buffer wiped right after (see [`SecretLine`]).
/// A server that reads commands in order gets both at once, one round trip instead of two;
/// its `PASS` reply is read whatever `USER` got (a refused `USER` makes it `503`/`530`).
async fn login(
    ctrl: &mut Control,
    opts: &ConnectOptions,
    server: &str,
    pipelining: bool,
) -> Result<(), FtpError> {
    let user_cmd = format!("USER {}", opts.username);
    let (r, pass_reply) = if pipelining {
        ctrl.send(&user_cmd).await?;
        let pass = SecretLine::pass(&opts.password);
        let sent = ctrl.send(&pass).await;
        // Wiped now, not at the end of the login.
        drop(pass);
        sent?;
        let r = ctrl.read_reply(&user_cmd).await?;
        let p = ctrl.read_reply(SecretLine::PASS_LABEL).await?;
        (r, Some(p))
    } else {
        (ctrl.cmd(&user_cmd).await?, None)
    };
    match r.code {
        // Logged in by USER alone: a pipelined PASS was answered too (and is of no matter).
        230 => {}
        331 => {
            let r = match pass_reply {
                Some(r) => r,
                None => {
                    let pass = SecretLine::pass(&opts.password);
                    let r = ctrl.cmd(&pass).await;
                    drop(pass);
                    r?
                }
            };
            if r.code != 230 && r.code != 202 {
                let label = SecretLine::PASS_LABEL;
                let mut e = FtpError::from_reply(server, label, r.code, &r.text);
                if r.code / 100 == 5 && e.kind() == FtpErrorKind::Protocol {
                    e = FtpError::new(FtpErrorKind::Login, server, e.message().to_string())
                        .with_command(label);
                }
                return Err(e);
            }
        }
        c => {
            let mut e = FtpError::from_reply(server, &user_cmd, c, &r.text);
            if c == 530 || c == 332 {
                e = e.with_hint("check the username");
            }
            return Err(e);
        }
    }
    Ok(())
}

/// After login: protected data channel under TLS, binary type, `FEAT` (and UTF-8 names when
/// offered), and the login directory from `PWD`. A server that reads commands in order gets
/// them all in one write (one round trip instead of five to seven), `OPTS UTF8 ON` included
/// whatever `FEAT` will say (refusing it is harmless).
async fn session_setup(
    ctrl: &mut Control,
    tls: bool,
    pipelining: bool,
) -> Result<(Features, String, Duration), FtpError> {
    // The first answer's wait: a round trip to the server (it answers these at once).
    let asked = Instant::now();
    let mut round_trip = Duration::ZERO;
    let (feat, pwd) = if pipelining {
        let mut lines = Vec::with_capacity(6);
        if tls {
            lines.extend(["PBSZ 0", "PROT P"]);
        }
        lines.extend(["TYPE I", "FEAT", "OPTS UTF8 ON", "PWD"]);
        ctrl.send_all(&lines).await?;
        let mut replies = Vec::with_capacity(lines.len());
        // Every reply is read before any is judged: each is owed.
        for line in &lines {
            replies.push(ctrl.read_reply(line).await?);
            if round_trip.is_zero() {
                round_trip = asked.elapsed();
            }
        }
        // The lines before FEAT (PBSZ, PROT, TYPE) must succeed; OPTS UTF8 may fail.
        let fixed = lines.len() - 3;
        for (line, r) in lines.iter().zip(&replies).take(fixed) {
            if r.code != 200 {
                return Err(FtpError::from_reply(&ctrl.server, line, r.code, &r.text));
            }
        }
        let pwd = replies.swap_remove(fixed + 2);
        (replies.swap_remove(fixed), pwd)
    } else {
        if tls {
            ctrl.expect("PBSZ 0", &[200]).await?;
            round_trip = asked.elapsed();
            ctrl.expect("PROT P", &[200]).await?;
        }
        ctrl.expect("TYPE I", &[200]).await?;
        if round_trip.is_zero() {
            round_trip = asked.elapsed();
        }
        let feat = ctrl.cmd("FEAT").await?;
        if feat.code == 211 && Features::parse(&feat.text).utf8 {
            // Some servers only send UTF-8 names after this; failure is harmless.
            let _ = ctrl.cmd("OPTS UTF8 ON").await?;
        }
        (feat, ctrl.cmd("PWD").await?)
    };
    let features = if feat.code == 211 {
        Features::parse(&feat.text)
    } else {
        Features::default()
    };
    let home = if pwd.code == 257 {
        parse_pwd(&pwd.text).unwrap_or_else(|| "/".to_string())
    } else {
        "/".to_string()
    };
    Ok((features, home, round_trip))
}

/// Whether the greeting names a server known to read and answer pipelined commands strictly
/// in order (tested in `tests/remote_suite.rs` against the real servers).
fn sequential_server(greeting: &str) -> bool {
    greeting.contains("(vsFTPd ")
        || greeting.contains("Welcome to Pure-FTPd")
        || greeting.contains("ProFTPD")
}

/// The round trip from which a download's TLS data connection closes early (see
/// `FtpConnection::close_early`): on loopback vsftpd's FTPS import of 5,000 small files took
/// 2.75 s with it and 2.0 s without (its SSL process handles the early `close_notify` with
/// more work than the round trip it saves), while at 50 ms it saves a round trip per file
/// (300 files over four connections: 18.4 s -> 13.1 s).
const EARLY_CLOSE_FROM: Duration = Duration::from_millis(2);

/// Whether the greeting names a server that may be sent a download's `close_notify` as soon
/// as the data connection's TLS handshake is over (see `FtpConnection::close_early`): vsftpd
/// and pure-ftpd read nothing on a download's data connection until they have sent the file
/// (tested in `tests/round_trips.rs`). A server that reads while it sends might take it for
/// the end of the transfer.
fn closes_early(greeting: &str) -> bool {
    greeting.contains("(vsFTPd ") || greeting.contains("Welcome to Pure-FTPd")
}

/// Whether the server reads no command while a transfer runs: vsftpd (which looks at the
/// control connection during a transfer only for an urgent `ABOR`, and only when configured
/// to). pure-ftpd answers a command that arrives during a transfer at once (`500`) and
/// proftpd refuses it (`450 data transfer in progress`): a command sent after the data but
/// before the final reply would be lost there.
fn deaf_in_transfer(greeting: &str) -> bool {
    greeting.contains("(vsFTPd ")
}

/// Parses `257 "/path" is the current directory` (with `""` as an escaped quote).
fn parse_pwd(text: &str) -> Option<String> {
    let start = text.find('"')? + 1;
    let mut out = String::new();
    let mut chars = text[start..].chars().peekable();
    while let Some(c) = chars.next() {
        if c == '"' {
            if chars.peek() == Some(&'"') {
                chars.next();
                out.push('"');
            } else {
                return Some(out);
            }
        } else {
            out.push(c);
        }
    }
    None
}

async fn connect_tcp(opts: &ConnectOptions) -> Result<TcpStream, FtpError> {
    let server = opts.server();
    let host = opts.host.trim_start_matches('[').trim_end_matches(']');
    let connect = async {
        // Resolve separately: resolver failures are not connection failures and have no
        // stable io::ErrorKind of their own.
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, opts.port))
            .await
            .map_err(|e| {
                FtpError::new(
                    FtpErrorKind::Network,
                    &server,
                    format!("name not resolved: cannot resolve host '{host}'"),
                )
                .with_source(e)
                .with_hint("check the host name in the site's config")
            })?
            .collect();
        let mut last = None;
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(s) => return Ok(s),
                Err(e) => last = Some(e),
            }
        }
        let e = last.unwrap_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address"));
        Err(FtpError::from_io(&server, None, e)
            .with_hint("check the host and port in the site's config and that the server runs"))
    };
    let tcp = match tokio::time::timeout(opts.timeout, connect).await {
        Ok(r) => r?,
        Err(_) => {
            return Err(FtpError::new(
                FtpErrorKind::Network,
                &server,
                format!(
                    "connecting timed out after {} s",
                    opts.timeout.as_secs_f32()
                ),
            )
            .with_hint("check the host and port, and that no firewall drops the connection"));
        }
    };
    // Without it FTPS pays Nagle + delayed ACK on every small command and every file.
    let _ = tcp.set_nodelay(true);
    Ok(tcp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pwd() {
        assert_eq!(
            parse_pwd("\"/home/a \"\"q\"\"\" is the current directory"),
            Some("/home/a \"q\"".to_string())
        );
    }
}
