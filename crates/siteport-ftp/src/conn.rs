//! One logged-in control connection and its data transfers.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use secrecy::ExposeSecret;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::error::{FtpError, FtpErrorKind};
use crate::list::{RemoteEntry, format_mdtm, parse_list_line, parse_mdtm, parse_mlsd_line};
use crate::options::{ConnectOptions, TlsMode};
use crate::stream::{Control, Reply, Stream};
use crate::tls;

/// Copy buffer for transfers: large enough that a TLS record and a TCP segment are full,
/// small enough that memory stays flat whatever the file size.
const COPY_BUF: usize = 64 * 1024;
/// A directory listing larger than this is refused (millions of entries in one directory).
const MAX_LISTING: usize = 256 * 1024 * 1024;
/// A directory listing over the control connection (RFC 959 `STAT` with an argument).
const STAT_LIST: &str = "STAT -a";

/// The entries of a `STAT` listing reply (`211`/`212`/`213`): the lines between the first
/// ("Status follows") and the last ("End of status"). `None` for any other reply.
fn stat_entries(code: u16, text: &str) -> Option<Vec<RemoteEntry>> {
    if !(211..=213).contains(&code) {
        return None;
    }
    let lines: Vec<&str> = text.split('\n').collect();
    let now = SystemTime::now();
    Some(match lines.len() {
        0..=2 => Vec::new(),
        n => lines[1..n - 1]
            .iter()
            .filter_map(|l| parse_list_line(l, now))
            .collect(),
    })
}

/// Chunk size of an upload from a file: few blocking-pool hand-offs per file (4,096 for 1 GiB).
const READ_CHUNK: usize = 256 * 1024;
/// Chunks [`read_ahead`] may hold ready. With the one being filled and the one being sent,
/// at most six buffers ever exist for an upload (a new one is made only when none is given
/// back): about 1.5 MiB.
const READ_AHEAD: usize = 4;

/// A local file read chunk by chunk for an upload, each chunk shown to the observer.
struct ChunkReader {
    file: std::fs::File,
    observe: Option<ReadObserver>,
    ended: bool,
}

impl ChunkReader {
    fn new(file: std::fs::File, observe: Option<ReadObserver>) -> Self {
        Self {
            file,
            observe,
            ended: false,
        }
    }

    /// The next chunk, read into `buf` (a used chunk, or empty), and empty at the end of the
    /// file. Chunks are read whole (a short read is not the end of a file), so the last one is
    /// the only short one. One `read` per chunk: `read_to_end` into spare capacity avoids
    /// zeroing but starts at 8 KiB a call and doubles, six system calls a chunk. Only a new
    /// buffer is zeroed (a handful per file); a reused one is already initialised.
    fn next(&mut self, mut buf: Vec<u8>) -> io::Result<Vec<u8>> {
        use std::io::Read;
        if self.ended {
            buf.clear();
            return Ok(buf);
        }
        buf.resize(READ_CHUNK, 0);
        let mut filled = 0;
        while filled < READ_CHUNK {
            match self.file.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        buf.truncate(filled);
        self.ended = filled < READ_CHUNK;
        if let Some(f) = self.observe.as_mut() {
            f(&buf);
        }
        Ok(buf)
    }
}

/// Reads on the blocking pool ahead of the network, so that disk reads overlap socket writes
/// instead of alternating with them. Sends chunks up to and including the empty one at the
/// end of the file (the channel closing without it means the reader died); stops at the first
/// error, or early when the receiver is dropped. Chunks given back on the second channel are
/// filled again: a fresh 256 KiB buffer per chunk costs a page fault per 4 KiB sent.
fn read_ahead(
    mut reader: ChunkReader,
) -> (
    tokio::sync::mpsc::Receiver<io::Result<Vec<u8>>>,
    std::sync::mpsc::Sender<Vec<u8>>,
) {
    let (tx, rx) = tokio::sync::mpsc::channel(READ_AHEAD);
    let (give_back, spare) = std::sync::mpsc::channel::<Vec<u8>>();
    tokio::task::spawn_blocking(move || {
        loop {
            let msg = reader.next(spare.try_recv().unwrap_or_default());
            let end = !matches!(&msg, Ok(b) if !b.is_empty());
            if tx.blocking_send(msg).is_err() || end {
                return;
            }
        }
    });
    (rx, give_back)
}

/// Where an upload's chunks come from.
enum Chunks {
    /// Read ahead on the blocking pool ([`read_ahead`]); sent buffers go back to it.
    Ahead(
        tokio::sync::mpsc::Receiver<io::Result<Vec<u8>>>,
        std::sync::mpsc::Sender<Vec<u8>>,
    ),
    /// Read on the sending task itself, between sends: plain connections (see `put`).
    Inline(ChunkReader),
}

impl Chunks {
    /// The next chunk, empty at the end of the file. `used` is the chunk just sent, to be
    /// filled again.
    async fn next(&mut self, used: Vec<u8>) -> io::Result<Vec<u8>> {
        match self {
            Chunks::Ahead(chunks, give_back) => {
                if used.capacity() > 0 {
                    let _ = give_back.send(used);
                }
                chunks.recv().await.unwrap_or_else(|| {
                    Err(io::Error::other(
                        "the local file reader ended before the end",
                    ))
                })
            }
            Chunks::Inline(reader) => reader.next(used),
        }
    }
}

/// Eight random hex digits for one connection's upload temp names.
fn tmp_tag() -> String {
    use std::hash::{BuildHasher, Hasher};
    // RandomState is seeded from the OS and differs on every call: enough to keep two
    // connections (or two runs) off each other's temp files, with no extra dependency.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    format!("{:08x}", h.finish() as u32)
}

/// Largest upload sent without waiting for `150` (see `put_eager`): well inside the receive
/// buffer the kernel gives a connection the server has not accepted yet.
const EAGER_MAX: usize = 64 * 1024;

/// Called with every chunk an upload reads from its local file, in order, on the thread
/// that reads it: lets a caller hash what is sent in the same pass as sending it.
pub type ReadObserver = Box<dyn FnMut(&[u8]) + Send>;

/// What an upload sends.
enum Payload<'a> {
    /// A local file, streamed (and shown to the observer, if any).
    File(&'a Path, Option<ReadObserver>),
    /// Contents already in memory.
    Bytes(&'a [u8]),
}

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

struct TlsCtx {
    connector: TlsConnector,
    name: ServerName<'static>,
}

/// A data connection (plain or TLS).
type Data = Stream;

/// One logged-in control connection: binary type, passive mode (EPSV, falling back to PASV).
/// Paths may be absolute or relative to the login directory; they are always sent absolute, so
/// the `CWD` that listings use never changes what a path means.
pub struct FtpConnection {
    ctrl: Control,
    features: Features,
    tls: Option<TlsCtx>,
    peer: IpAddr,
    home: String,
    epsv: bool,
    list_all: bool,
    /// A server known to work strictly in order (vsftpd, pure-ftpd): several commands may be
    /// sent in one write, and a transfer's `150` comes before the data channel's TLS
    /// handshake. Others (libunftp) run some commands concurrently and answer out of order,
    /// and handshake before `150`.
    pipelining: bool,
    /// Whether `STAT -a` lists a directory over the control connection exactly as `LIST -a`
    /// does (RFC 959 allows it; vsftpd does it): `None` until a non-empty listing was compared.
    stat_listing: Option<bool>,
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

/// Whether the greeting names a server known to read and answer pipelined commands strictly
/// in order (tested in `tests/remote_suite.rs` against the real servers).
fn sequential_server(greeting: &str) -> bool {
    greeting.contains("(vsFTPd ") || greeting.contains("Welcome to Pure-FTPd")
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
                    format!("cannot resolve host '{host}'"),
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
            ));
        }
    };
    // Without it FTPS pays Nagle + delayed ACK on every small command and every file.
    let _ = tcp.set_nodelay(true);
    Ok(tcp)
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
            let is_rustls = e.get_ref().is_some_and(|inner| inner.is::<rustls::Error>());
            let kind = if is_rustls {
                FtpErrorKind::Tls
            } else {
                FtpErrorKind::Transient
            };
            Err(FtpError::new(kind, server, format!("TLS handshake failed on {what}"))
                .with_source(e)
                .with_hint(
                    "for a self-signed server certificate set `ca_file` or `fingerprint` in the site's config",
                ))
        }
        Err(_) => Err(FtpError::new(
            FtpErrorKind::Transient,
            server,
            format!("TLS handshake on {what} timed out"),
        )),
    }
}

impl FtpConnection {
    /// Connects, negotiates TLS as asked, logs in, switches to binary type, reads `FEAT`.
    ///
    /// TLS 1.2 is offered first: every FTPS server speaks it, and resuming the control
    /// connection's session on each data connection (what vsftpd's `require_ssl_reuse`
    /// demands) is a cheap session-ID lookup under 1.2, while 1.3 does a key exchange and
    /// issues new tickets on every data connection. A server that refuses 1.2 gets a second
    /// connection offering 1.3.
    pub async fn connect(opts: &ConnectOptions) -> Result<Self, FtpError> {
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
                let config: Arc<ClientConfig> = tls::client_config(opts, tls12_only)?;
                Some(TlsCtx {
                    connector: TlsConnector::from(config),
                    name: tls::server_name(opts)?,
                })
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
        let banner = ctrl.read_reply("(greeting)").await?;
        if banner.code != 220 {
            return Err(FtpError::from_reply(
                &server,
                "(greeting)",
                banner.code,
                &banner.text,
            ));
        }

        let pipelining = sequential_server(&banner.text);

        if let (Some(t), TlsMode::Explicit) = (&tls, opts.tls) {
            let r = ctrl.cmd("AUTH TLS").await?;
            if r.code != 234 {
                // Never fall back to plain text: the password would go out in clear.
                return Err(FtpError::new(
                    FtpErrorKind::Tls,
                    &server,
                    format!("server refused AUTH TLS: {} {}", r.code, r.text.trim()),
                )
                .with_command("AUTH TLS")
                .with_hint(
                    "the server does not offer explicit FTPS; use tls = \"implicit\" if it \
                     listens for FTPS on port 990, or tls = \"none\" only on a trusted network",
                ));
            }
            let tcp = ctrl.take_plain()?;
            let s = tls_handshake(t, tcp, opts.timeout, &server, "the control connection").await?;
            ctrl.put(s);
        }

        let user_cmd = format!("USER {}", opts.username);
        let r = ctrl.cmd(&user_cmd).await?;
        match r.code {
            230 => {}
            331 => {
                let pass_cmd = format!("PASS {}", opts.password.expose_secret());
                let r = ctrl.cmd(&pass_cmd).await;
                drop(pass_cmd);
                let r = r?;
                if r.code != 230 && r.code != 202 {
                    let mut e = FtpError::from_reply(&server, "PASS ****", r.code, &r.text);
                    if r.code / 100 == 5 && e.kind() == FtpErrorKind::Protocol {
                        e = FtpError::new(FtpErrorKind::Login, &server, e.message().to_string())
                            .with_command("PASS ****");
                    }
                    return Err(e);
                }
            }
            c => {
                let mut e = FtpError::from_reply(&server, &user_cmd, c, &r.text);
                if c == 530 || c == 332 {
                    e = e.with_hint("check the username: `siteport credential show NAME`");
                }
                return Err(e);
            }
        }

        if tls.is_some() {
            ctrl.expect("PBSZ 0", &[200]).await?;
            ctrl.expect("PROT P", &[200]).await?;
        }
        ctrl.expect("TYPE I", &[200]).await?;
        let feat = ctrl.cmd("FEAT").await?;
        let features = if feat.code == 211 {
            Features::parse(&feat.text)
        } else {
            Features::default()
        };
        if features.utf8 {
            // Some servers only send UTF-8 names after this; failure is harmless.
            let _ = ctrl.cmd("OPTS UTF8 ON").await?;
        }
        let pwd = ctrl.cmd("PWD").await?;
        let home = if pwd.code == 257 {
            parse_pwd(&pwd.text).unwrap_or_else(|| "/".to_string())
        } else {
            "/".to_string()
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
            stat_listing: None,
            tmp_tag: tmp_tag(),
        })
    }

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

    /// Sends one command on the control connection and returns its reply (code, text), for
    /// the extensions kept in other files (`hash.rs`).
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

    async fn passive_addr(&mut self) -> Result<SocketAddr, FtpError> {
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
    fn epsv_reply(&mut self, r: Reply) -> Result<Option<SocketAddr>, FtpError> {
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

    async fn pasv_addr(&mut self) -> Result<SocketAddr, FtpError> {
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
    async fn start_transfer(&mut self, command: &str) -> Result<Option<Data>, FtpError> {
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
    async fn start_transfer_at(
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
    fn check_preliminary(&self, command: &str, r: Reply) -> Result<bool, FtpError> {
        match r.code {
            125 | 150 => Ok(true),
            226 | 250 => Ok(false),
            c => Err(FtpError::from_reply(self.server(), command, c, &r.text)),
        }
    }

    async fn finish_transfer(&mut self, command: &str) -> Result<(), FtpError> {
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
    async fn reply_or_data_err(&mut self, command: &str, e: io::Error) -> FtpError {
        match self.ctrl.read_reply(command).await {
            Ok(r) if r.code >= 400 => FtpError::from_reply(self.server(), command, r.code, &r.text),
            _ => self.data_err(command, e),
        }
    }

    fn data_err(&self, command: &str, e: io::Error) -> FtpError {
        FtpError::new(
            FtpErrorKind::Transient,
            self.server(),
            "data connection failed",
        )
        .with_command(command)
        .with_source(e)
    }

    /// Reads a whole data connection into memory (listings).
    async fn read_all(&mut self, command: &str) -> Result<Vec<u8>, FtpError> {
        self.read_all_limited(command, MAX_LISTING, "directory listing")
            .await
    }

    async fn read_all_limited(
        &mut self,
        command: &str,
        max: usize,
        what: &str,
    ) -> Result<Vec<u8>, FtpError> {
        self.read_all_at(command, None, max, what).await
    }

    /// `addr`: the passive address if already known, else the transfer asks for one.
    async fn read_all_at(
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

    /// Lists a directory: MLSD when the server offers it, else `LIST -a` (then plain `LIST`)
    /// parsed as Unix or DOS format. Never includes `.` and `..`.
    pub async fn list_dir(&mut self, path: &str) -> Result<Vec<RemoteEntry>, FtpError> {
        check_path(self.server(), "list", path)?;
        let dir = self.abs(path);
        // CWD, then list without an argument: a name starting with '-' would otherwise be read
        // as `ls` options by vsftpd and pure-ftpd.
        let cwd = format!("CWD {dir}");
        if !self.features.mlsd && self.list_all && self.stat_listing == Some(true) {
            return self.list_over_control(&cwd).await;
        }
        // CWD and EPSV in one write, one round trip instead of two (a no-change run is mostly
        // listings). A failed CWD leaves an unused passive port, which the next EPSV replaces.
        let addr = if self.epsv && self.pipelining {
            self.ctrl.send_all(&[&cwd, "EPSV"]).await?;
            let c = self.ctrl.read_reply(&cwd).await?;
            let e = self.ctrl.read_reply("EPSV").await?;
            if c.code != 250 && c.code != 200 {
                return Err(FtpError::from_reply(self.server(), &cwd, c.code, &c.text));
            }
            match self.epsv_reply(e)? {
                Some(a) => a,
                None => self.pasv_addr().await?,
            }
        } else {
            self.ctrl.expect(&cwd, &[250, 200]).await?;
            self.passive_addr().await?
        };
        let entries = if self.features.mlsd {
            let raw = self
                .read_all_at("MLSD", Some(addr), MAX_LISTING, "directory listing")
                .await?;
            String::from_utf8_lossy(&raw)
                .split('\n')
                .filter_map(parse_mlsd_line)
                .collect()
        } else {
            let raw = if self.list_all {
                match self
                    .read_all_at("LIST -a", Some(addr), MAX_LISTING, "directory listing")
                    .await
                {
                    Ok(raw) => raw,
                    Err(e) if e.code().is_some_and(|c| c / 100 == 5) => {
                        self.list_all = false;
                        self.read_all("LIST").await?
                    }
                    Err(e) => return Err(e),
                }
            } else {
                self.read_all_at("LIST", Some(addr), MAX_LISTING, "directory listing")
                    .await?
            };
            let now = SystemTime::now();
            let entries: Vec<RemoteEntry> = String::from_utf8_lossy(&raw)
                .split('\n')
                .filter_map(|l| parse_list_line(l, now))
                .collect();
            if self.stat_listing.is_none() && self.list_all && !entries.is_empty() {
                self.check_stat_listing(&entries).await?;
            }
            entries
        };
        Ok(entries)
    }

    /// Whether this connection lists over the control connection (`STAT -a`) rather than
    /// opening a data connection per directory; `None` until it has been checked.
    pub fn lists_over_control(&self) -> Option<bool> {
        self.stat_listing
    }

    /// Compares `STAT -a` in the current directory with what `LIST -a` just gave there, and
    /// uses it from now on only when both agree: a server that answers `STAT` with its own
    /// status, or lists differently, must never make a directory look empty.
    async fn check_stat_listing(&mut self, listed: &[RemoteEntry]) -> Result<(), FtpError> {
        self.ctrl.send(STAT_LIST).await?;
        let reply = self.ctrl.read_reply_max(STAT_LIST, MAX_LISTING).await?;
        let same = stat_entries(reply.code, &reply.text).is_some_and(|mut got| {
            let mut want = listed.to_vec();
            got.sort_by(|a, b| a.name.cmp(&b.name));
            want.sort_by(|a, b| a.name.cmp(&b.name));
            got == want
        });
        tracing::debug!(server = %self.server(), same, "STAT listing compared with LIST");
        self.stat_listing = Some(same);
        Ok(())
    }

    /// CWD and `STAT -a` in one round trip (when the server works in order); the listing
    /// comes back as the reply, with no data connection, PASV or TLS handshake.
    async fn list_over_control(&mut self, cwd: &str) -> Result<Vec<RemoteEntry>, FtpError> {
        let (c, s) = if self.pipelining {
            self.ctrl.send_all(&[cwd, STAT_LIST]).await?;
            let c = self.ctrl.read_reply(cwd).await?;
            // Read even when CWD failed: the STAT reply (of the previous directory) is
            // owed and would otherwise answer the next command.
            let s = self.ctrl.read_reply_max(STAT_LIST, MAX_LISTING).await?;
            (c, Some(s))
        } else {
            (self.ctrl.cmd(cwd).await?, None)
        };
        if c.code != 250 && c.code != 200 {
            return Err(FtpError::from_reply(self.server(), cwd, c.code, &c.text));
        }
        let s = match s {
            Some(s) => s,
            None => {
                self.ctrl.send(STAT_LIST).await?;
                self.ctrl.read_reply_max(STAT_LIST, MAX_LISTING).await?
            }
        };
        stat_entries(s.code, &s.text)
            .ok_or_else(|| FtpError::from_reply(self.server(), STAT_LIST, s.code, &s.text))
    }

    /// Uploads `local` to `remote_path` (streaming; memory stays flat). Returns the bytes sent.
    pub async fn put_file(&mut self, local: &Path, remote_path: &str) -> Result<u64, FtpError> {
        self.put(Payload::File(local, None), remote_path).await
    }

    /// Uploads `contents` (a small file already read into memory) to `remote_path`. Saves the
    /// blocking-pool round trips of streaming from disk, which cost more than the bytes for
    /// the small files a website is mostly made of. Returns the bytes sent.
    pub async fn put_bytes(&mut self, contents: &[u8], remote_path: &str) -> Result<u64, FtpError> {
        self.put(Payload::Bytes(contents), remote_path).await
    }

    async fn put(&mut self, payload: Payload<'_>, remote_path: &str) -> Result<u64, FtpError> {
        check_path(self.server(), "upload", remote_path)?;
        let (file, mut memory) = match payload {
            Payload::File(local, observe) => {
                let f = std::fs::File::open(local).map_err(|e| {
                    FtpError::new(
                        FtpErrorKind::Invalid,
                        self.server(),
                        format!("cannot read local file {}", local.display()),
                    )
                    .with_source(e)
                })?;
                (Some((local, f, observe)), None)
            }
            Payload::Bytes(b) => (None, Some(b)),
        };
        let command = format!("STOR {}", self.abs(remote_path));
        if let Some(b) = memory
            && b.len() <= EAGER_MAX
            && self.pipelining
            && self.epsv
            && self.tls.is_none()
            && let Some(sent) = self.put_eager(b, &command).await?
        {
            return Ok(sent);
        }
        let Some(mut data) = self.start_transfer(&command).await? else {
            return Ok(0);
        };
        let timeout = self.ctrl.timeout;
        let mut sent = 0u64;
        // Plain: read (and hash) each chunk on this task between sends. Sending it is one copy
        // into the socket, cheaper than handing chunks between threads, and the chunk is still
        // in this core's cache when it is sent (1 GiB to vsftpd, 9 alternating rounds: 803 ms
        // against 881 ms read ahead, lftp 843). Sequential reads are prefetched by the kernel,
        // so the disk still overlaps the network; each read blocks no longer than a small
        // file's whole read does in the engine. TLS: encrypting is a second stage as costly
        // as hashing, and the reader on the blocking pool runs beside it.
        let inline = !data.is_tls();
        let mut reader = file.map(|(local, f, observe)| {
            let reader = ChunkReader::new(f, observe);
            let chunks = if inline {
                Chunks::Inline(reader)
            } else {
                let (chunks, give_back) = read_ahead(reader);
                Chunks::Ahead(chunks, give_back)
            };
            (local, chunks)
        });
        let mut chunk = Vec::new();
        loop {
            let buf: &[u8] = match (&mut reader, memory.take()) {
                (_, Some(b)) => b,
                (Some((local, r)), None) => match r.next(std::mem::take(&mut chunk)).await {
                    Ok(c) => {
                        chunk = c;
                        &chunk
                    }
                    Err(e) => {
                        // The server would keep a truncated file: drop the data connection
                        // without a clean close, so it sees an aborted transfer.
                        drop(data);
                        let _ = self.ctrl.read_reply(&command).await;
                        return Err(FtpError::new(
                            FtpErrorKind::Invalid,
                            self.server(),
                            format!("reading local file {} failed", local.display()),
                        )
                        .with_source(e));
                    }
                },
                (None, None) => &[],
            };
            if buf.is_empty() {
                break;
            }
            let n = buf.len();
            match tokio::time::timeout(timeout, data.write_all(buf)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    drop(data);
                    return Err(self.reply_or_data_err(&command, e).await);
                }
                Err(_) => return Err(self.ctrl.timed_out(&command)),
            }
            sent += n as u64;
        }
        // close_notify, then FIN; then wait for the server to close its side so that nothing is
        // reset under it.
        match tokio::time::timeout(timeout, data.shutdown()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                drop(data);
                return Err(self.reply_or_data_err(&command, e).await);
            }
            Err(_) => return Err(self.ctrl.timed_out(&command)),
        }
        let mut sink = [0u8; 512];
        let _ = tokio::time::timeout(timeout, async {
            while let Ok(n) = data.read(&mut sink).await {
                if n == 0 {
                    break;
                }
            }
        })
        .await;
        drop(data);
        self.finish_transfer(&command).await?;
        Ok(sent)
    }

    /// A small plain upload without waiting on the server between steps: EPSV and STOR in one
    /// write, then the bytes and the end of the data connection, then `150` and `226` read
    /// back. At most [`EAGER_MAX`] bytes, which the kernel buffers whole even if the server
    /// refuses the STOR and never accepts the data connection (then its reply says why).
    /// `Ok(None)`: the server does not do EPSV after all; nothing was stored.
    async fn put_eager(&mut self, contents: &[u8], command: &str) -> Result<Option<u64>, FtpError> {
        self.ctrl.send_all(&["EPSV", command]).await?;
        let r = self.ctrl.read_reply("EPSV").await?;
        let addr = match self.epsv_reply(r) {
            Ok(Some(addr)) => addr,
            Ok(None) => {
                // No EPSV after all: the STOR failed for want of a data connection; the
                // caller goes the ordinary way, with PASV from now on (`epsv` is off).
                self.ctrl.read_reply(command).await?;
                return Ok(None);
            }
            Err(e) => {
                let _ = self.ctrl.read_reply(command).await;
                return Err(e);
            }
        };
        let timeout = self.ctrl.timeout;
        let server = self.server().to_string();
        let sent = tokio::time::timeout(timeout, async {
            let mut tcp = TcpStream::connect(addr).await?;
            let _ = tcp.set_nodelay(true);
            tcp.write_all(contents).await?;
            tcp.shutdown().await?;
            Ok::<_, io::Error>(tcp)
        })
        .await;
        let reply = if matches!(sent, Ok(Ok(_))) {
            self.ctrl.read_reply(command).await
        } else {
            // A refused STOR is answered at once; a server still waiting for the data
            // connection is not worth waiting for (the control connection is closed below).
            match tokio::time::timeout(Duration::from_secs(2), self.ctrl.read_reply(command)).await
            {
                Ok(r) => r,
                Err(_) => Err(self.ctrl.timed_out(command)),
            }
        };
        let data = match sent {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(e)) => {
                // The server's reply (553, 425…) says more than the refused connection.
                if let Ok(r) = reply
                    && r.code >= 400
                {
                    return Err(FtpError::from_reply(&server, command, r.code, &r.text));
                }
                self.ctrl.close().await;
                return Err(FtpError::new(
                    FtpErrorKind::Transient,
                    &server,
                    format!("data connection to {addr} failed"),
                )
                .with_command(command)
                .with_source(e));
            }
            Err(_) => {
                self.ctrl.close().await;
                return Err(self.ctrl.timed_out(command));
            }
        };
        if !self.check_preliminary(command, reply?)? {
            return Ok(Some(contents.len() as u64));
        }
        // No data comes back on an upload's connection and our FIN is already sent, so it can
        // be closed without waiting for the server's: the 226 says the file is complete.
        let done = self.finish_transfer(command).await;
        drop(data);
        done.map(|()| Some(contents.len() as u64))
    }

    /// Whether this connection pipelines commands: only with servers known to answer in order
    /// (vsftpd, pure-ftpd), recognised by their greeting.
    pub fn pipelines(&self) -> bool {
        self.pipelining
    }

    /// Uploads to `.<name>.<tag>.siteport-tmp` in the target directory, then renames it over
    /// `remote_path`, so nobody ever sees a half-written file under the final name. Sets the
    /// modification time with `MFMT` when the server offers it and `mtime` is given.
    ///
    /// The tag is random per connection: after a killed run, vsftpd's session for the dead
    /// client can still hold its upload lock on the old temp file until its accept timeout
    /// (60 s), and a `STOR` to the same name would wait on that lock.
    pub async fn put_atomic(
        &mut self,
        local: &Path,
        remote_path: &str,
        mtime: Option<SystemTime>,
    ) -> Result<u64, FtpError> {
        self.put_atomic_payload(Payload::File(local, None), remote_path, mtime)
            .await
    }

    /// [`put_atomic`](Self::put_atomic) that shows every chunk read from `local` to
    /// `observe` (in order, before it is sent): one pass over the file for both hashing and
    /// sending. On success `observe` has seen exactly the bytes sent.
    pub async fn put_atomic_observed(
        &mut self,
        local: &Path,
        remote_path: &str,
        mtime: Option<SystemTime>,
        observe: ReadObserver,
    ) -> Result<u64, FtpError> {
        self.put_atomic_payload(Payload::File(local, Some(observe)), remote_path, mtime)
            .await
    }

    /// [`put_atomic`](Self::put_atomic) of a small file already read into memory.
    pub async fn put_atomic_bytes(
        &mut self,
        contents: &[u8],
        remote_path: &str,
        mtime: Option<SystemTime>,
    ) -> Result<u64, FtpError> {
        self.put_atomic_payload(Payload::Bytes(contents), remote_path, mtime)
            .await
    }

    async fn put_atomic_payload(
        &mut self,
        payload: Payload<'_>,
        remote_path: &str,
        mtime: Option<SystemTime>,
    ) -> Result<u64, FtpError> {
        check_path(self.server(), "upload", remote_path)?;
        let target = self.abs(remote_path);
        let (dir, name) = match target.rfind('/') {
            Some(i) => (&target[..=i], &target[i + 1..]),
            None => ("", target.as_str()),
        };
        if name.is_empty() {
            return Err(FtpError::new(
                FtpErrorKind::Invalid,
                self.server(),
                format!("upload: {target:?} names a directory, not a file"),
            ));
        }
        let tmp = format!("{dir}.{name}.{}.siteport-tmp", self.tmp_tag);
        let sent = self.put(payload, &tmp).await?;
        if let Err(e) = self.rename(&tmp, &target).await {
            // Do not leave the temp file behind; the rename error is what matters.
            if self.is_open() {
                let _ = self.delete_file(&tmp).await;
            }
            return Err(e);
        }
        if let (Some(t), true) = (mtime, self.features.mfmt) {
            let cmd = format!("MFMT {} {}", format_mdtm(t), target);
            let r = self.ctrl.cmd(&cmd).await?;
            if r.code != 213 {
                tracing::warn!(server = %self.server(), path = %target, code = r.code, "MFMT failed; the remote time stays the upload time");
            }
        }
        Ok(sent)
    }

    /// Downloads `remote_path` into `local` (created or truncated), streaming. The caller
    /// handles the temp name, `fsync` and rename. Returns the bytes received.
    pub async fn get_file(&mut self, remote_path: &str, local: &Path) -> Result<u64, FtpError> {
        check_path(self.server(), "download", remote_path)?;
        let command = format!("RETR {}", self.abs(remote_path));
        let local_err = |server: &str, e: io::Error| {
            FtpError::new(
                FtpErrorKind::Invalid,
                server,
                format!("cannot write local file {}", local.display()),
            )
            .with_source(e)
        };
        let mut file = tokio::fs::File::create(local)
            .await
            .map_err(|e| local_err(self.server(), e))?;
        let Some(mut data) = self.start_transfer(&command).await? else {
            return Ok(0);
        };
        let timeout = self.ctrl.timeout;
        let mut chunk = vec![0u8; COPY_BUF];
        let mut got = 0u64;
        loop {
            match tokio::time::timeout(timeout, data.read(&mut chunk)).await {
                Ok(Ok(0)) => break,
                Ok(Ok(n)) => {
                    if let Err(e) = file.write_all(&chunk[..n]).await {
                        drop(data);
                        let _ = self.ctrl.read_reply(&command).await;
                        return Err(local_err(self.server(), e));
                    }
                    got += n as u64;
                }
                Ok(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => break,
                Ok(Err(e)) => return Err(self.data_err(&command, e)),
                Err(_) => return Err(self.ctrl.timed_out(&command)),
            }
        }
        if data.is_tls() {
            let _ = tokio::time::timeout(timeout, data.shutdown()).await;
        }
        drop(data);
        file.flush()
            .await
            .map_err(|e| local_err(self.server(), e))?;
        self.finish_transfer(&command).await?;
        Ok(got)
    }

    /// Downloads `remote_path` into memory: for small files, where the blocking-pool round
    /// trips of writing through `tokio::fs` cost more than the bytes. Fails (and closes the
    /// connection) if the file is longer than `max` bytes.
    pub async fn get_bytes(&mut self, remote_path: &str, max: usize) -> Result<Vec<u8>, FtpError> {
        check_path(self.server(), "download", remote_path)?;
        let command = format!("RETR {}", self.abs(remote_path));
        self.read_all_limited(&command, max, "remote file").await
    }

    /// Creates a directory; succeeds if it already exists. The parent must exist.
    pub async fn mkdir(&mut self, path: &str) -> Result<(), FtpError> {
        check_path(self.server(), "mkdir", path)?;
        let dir = self.abs(path);
        let cmd = format!("MKD {dir}");
        let r = self.ctrl.cmd(&cmd).await?;
        if r.code == 257 || r.code == 250 {
            return Ok(());
        }
        let err = FtpError::from_reply(self.server(), &cmd, r.code, &r.text);
        if r.code / 100 == 5 {
            let cwd = self.ctrl.cmd(&format!("CWD {dir}")).await?;
            if cwd.code == 250 || cwd.code == 200 {
                return Ok(());
            }
        }
        Err(err)
    }

    /// Deletes a file.
    pub async fn delete_file(&mut self, path: &str) -> Result<(), FtpError> {
        check_path(self.server(), "delete", path)?;
        let cmd = format!("DELE {}", self.abs(path));
        self.ctrl.expect(&cmd, &[250, 200]).await.map(drop)
    }

    /// Removes an empty directory.
    pub async fn remove_dir(&mut self, path: &str) -> Result<(), FtpError> {
        check_path(self.server(), "rmdir", path)?;
        let cmd = format!("RMD {}", self.abs(path));
        self.ctrl.expect(&cmd, &[250, 200]).await.map(drop)
    }

    /// Renames (moves) `from` to `to`; on the servers we test it replaces an existing `to`.
    pub async fn rename(&mut self, from: &str, to: &str) -> Result<(), FtpError> {
        check_path(self.server(), "rename", from)?;
        check_path(self.server(), "rename", to)?;
        let rnfr = format!("RNFR {}", self.abs(from));
        let rnto = format!("RNTO {}", self.abs(to));
        // Both lines in one write: the server reads and answers them in order, and a rename
        // costs one round trip instead of two (it is done once per uploaded file). If RNFR
        // fails, the server answers the RNTO with 503, which is read and dropped.
        if !self.pipelining {
            self.ctrl.expect(&rnfr, &[350]).await?;
            return self.ctrl.expect(&rnto, &[250, 200]).await.map(drop);
        }
        self.ctrl.send_all(&[&rnfr, &rnto]).await?;
        let from_reply = self.ctrl.read_reply(&rnfr).await?;
        let to_reply = self.ctrl.read_reply(&rnto).await?;
        if from_reply.code != 350 {
            return Err(FtpError::from_reply(
                self.server(),
                &rnfr,
                from_reply.code,
                &from_reply.text,
            ));
        }
        if to_reply.code == 250 || to_reply.code == 200 {
            Ok(())
        } else {
            Err(FtpError::from_reply(
                self.server(),
                &rnto,
                to_reply.code,
                &to_reply.text,
            ))
        }
    }

    /// The modification time by `MDTM`; `None` when the server does not support it.
    pub async fn mdtm(&mut self, path: &str) -> Result<Option<SystemTime>, FtpError> {
        check_path(self.server(), "mdtm", path)?;
        let cmd = format!("MDTM {}", self.abs(path));
        let r = self.ctrl.cmd(&cmd).await?;
        match r.code {
            213 => Ok(parse_mdtm(r.text.trim())),
            500 | 502 | 504 => Ok(None),
            c => Err(FtpError::from_reply(self.server(), &cmd, c, &r.text)),
        }
    }

    /// `NOOP`: checks that the connection is alive (and keeps it so).
    pub async fn noop(&mut self) -> Result<(), FtpError> {
        self.ctrl.expect("NOOP", &[200]).await.map(drop)
    }

    /// `QUIT`, then closes the connection (with `close_notify` under TLS).
    pub async fn quit(mut self) -> Result<(), FtpError> {
        let res = self.ctrl.expect("QUIT", &[221]).await.map(drop);
        self.ctrl.close().await;
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EntryKind;

    #[test]
    fn stat_listing_replies() {
        // vsftpd: the lines between "Status follows" and "End of status".
        let text = "Status follows:\n\
            drwxr-xr-x    2 1000     1000         4096 Nov 29 05:00 sub dir\n\
            -rw-r--r--    1 1000     1000           17 Nov 29 05:00 213 file.txt\n\
            End of status";
        let got = stat_entries(213, text).unwrap();
        let names: Vec<_> = got
            .iter()
            .map(|e| (e.name.as_str(), e.kind, e.size))
            .collect();
        assert_eq!(
            names,
            [
                ("sub dir", EntryKind::Dir, 4096),
                ("213 file.txt", EntryKind::File, 17)
            ]
        );
        assert_eq!(
            stat_entries(213, "Status follows:\nEnd of status"),
            Some(vec![])
        );
        // A server that answers with its own status lists nothing, so the comparison with
        // LIST fails and STAT is never used for listings on that connection.
        let status = "FTP server status:\n Connected to 127.0.0.1\n Logged in as u\nEnd of status";
        assert_eq!(stat_entries(211, status), Some(vec![]));
        // Refused or unknown: not a listing at all.
        assert_eq!(stat_entries(500, "Unknown command"), None);
        assert_eq!(stat_entries(200, "-rw-r--r-- 1 u g 1 Nov 29 05:00 x"), None);
    }

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
    fn pwd_and_features() {
        assert_eq!(
            parse_pwd("\"/home/a \"\"q\"\"\" is the current directory"),
            Some("/home/a \"q\"".to_string())
        );
        let f = Features::parse(
            "Features:\n EPRT\n EPSV\n MDTM\n PASV\n REST STREAM\n SIZE\n TVFS\n UTF8\nEnd",
        );
        assert!(f.epsv && f.mdtm && f.rest && f.size && f.tvfs && f.utf8);
        assert!(!f.mlsd && !f.mfmt);
        let g = Features::parse("Extensions:\n MLST type*;size*;modify*;\n MFMT\n AUTH TLS\nEnd");
        assert!(g.mlsd && g.mfmt && g.auth_tls);
    }
}
