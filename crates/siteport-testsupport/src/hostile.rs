//! A real FTP server (libunftp over a directory) whose listings also carry hostile names,
//! and whose replies carry terminal escape sequences.

use std::fmt::Debug;
use std::io::Cursor;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use libunftp::ServerBuilder;
use libunftp::options::{PassiveHost, Shutdown};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use unftp_core::auth::UserDetail;
use unftp_core::storage::{Error, Fileinfo, Metadata, Result, StorageBackend};
use unftp_sbe_fs::{Filesystem, Meta};

/// The names [`HostileServer`] adds to every directory listing: each one, taken as a path
/// component, would escape or break a local mirror, or (ESC, BEL) drive the terminal of
/// whoever prints it.
pub const HOSTILE_NAMES: [&str; 6] = [
    "../escape",
    "a/b",
    "back\\slash",
    "red\u{1b}[31mname",
    "bell\u{7}name",
    "../../outside-dir",
];

/// What the server greets with, and what it puts around the text of every `4xx`/`5xx` reply:
/// escape sequences that would clear the screen, set the window title, recolour and ring.
pub const HOSTILE_REPLY: &str = "\u{1b}]0;pwned\u{7}\u{1b}[2J\u{1b}[31m";

/// With [`HostileServer::start_with_ghost`]: a file the root listing names but the server
/// does not have, so that its download fails with a (decorated) `550`.
pub const GHOST_NAME: &str = "ghost.html";

/// The Unix `LIST` lines for [`HOSTILE_NAMES`] (the last one a directory).
fn hostile_lines() -> String {
    HOSTILE_NAMES
        .iter()
        .map(|n| {
            let t = if n.ends_with("-dir") { 'd' } else { '-' };
            format!("{t}rw-r--r--    1 0        0               6 Jan 01  2024 {n}\r\n")
        })
        .collect()
}

/// Wraps the filesystem backend and appends hostile entries to every `LIST` output (and the
/// ghost file to the root's, when asked).
#[derive(Debug)]
struct HostileFs {
    inner: Filesystem,
    ghost: bool,
}

#[async_trait]
impl<User: UserDetail> StorageBackend<User> for HostileFs {
    type Metadata = Meta;

    fn enter(&mut self, user: &User) -> std::io::Result<()> {
        StorageBackend::<User>::enter(&mut self.inner, user)
    }
    fn supported_features(&self) -> u32 {
        StorageBackend::<User>::supported_features(&self.inner)
    }
    async fn metadata<P: AsRef<Path> + Send + Debug>(&self, u: &User, p: P) -> Result<Meta> {
        self.inner.metadata(u, p).await
    }
    async fn list<P: AsRef<Path> + Send + Debug>(
        &self,
        u: &User,
        p: P,
    ) -> Result<Vec<Fileinfo<PathBuf, Meta>>> {
        self.inner.list(u, p).await
    }
    async fn list_fmt<P>(&self, u: &User, p: P) -> std::result::Result<Cursor<Vec<u8>>, Error>
    where
        P: AsRef<Path> + Send + Debug,
        Meta: Metadata + 'static,
    {
        let top = matches!(
            p.as_ref().to_str(),
            Some("" | "." | "/" | "/site" | "site" | "/site/")
        );
        let mut out = self.inner.list_fmt(u, p).await?.into_inner();
        out.extend_from_slice(hostile_lines().as_bytes());
        if self.ghost && top {
            out.extend_from_slice(
                format!("-rw-r--r--    1 0        0               6 Jan 01  2024 {GHOST_NAME}\r\n")
                    .as_bytes(),
            );
        }
        Ok(Cursor::new(out))
    }
    async fn get<P: AsRef<Path> + Send + Debug>(
        &self,
        u: &User,
        p: P,
        start: u64,
    ) -> Result<Box<dyn tokio::io::AsyncRead + Send + Sync + Unpin>> {
        self.inner.get(u, p, start).await
    }
    async fn put<
        P: AsRef<Path> + Send + Debug,
        R: tokio::io::AsyncRead + Send + Sync + Unpin + 'static,
    >(
        &self,
        u: &User,
        input: R,
        p: P,
        start: u64,
    ) -> Result<u64> {
        self.inner.put(u, input, p, start).await
    }
    async fn del<P: AsRef<Path> + Send + Debug>(&self, u: &User, p: P) -> Result<()> {
        self.inner.del(u, p).await
    }
    async fn mkd<P: AsRef<Path> + Send + Debug>(&self, u: &User, p: P) -> Result<()> {
        self.inner.mkd(u, p).await
    }
    async fn rename<P: AsRef<Path> + Send + Debug>(&self, u: &User, f: P, t: P) -> Result<()> {
        self.inner.rename(u, f, t).await
    }
    async fn rmd<P: AsRef<Path> + Send + Debug>(&self, u: &User, p: P) -> Result<()> {
        self.inner.rmd(u, p).await
    }
    async fn cwd<P: AsRef<Path> + Send + Debug>(&self, u: &User, p: P) -> Result<()> {
        self.inner.cwd(u, p).await
    }
}

/// A plain-FTP server on `127.0.0.1` serving `root` (any user and password are accepted),
/// whose `LIST` replies carry [`HOSTILE_NAMES`] in every directory besides the real entries,
/// whose greeting is [`HOSTILE_REPLY`] and whose `4xx`/`5xx` replies are wrapped in it.
///
/// libunftp builds `MLSD` names from path components, which cannot hold a `/`; so a shim on
/// the control connection drops `MLSD`/`MLST` from the `FEAT` reply, and clients fall back to
/// `LIST` — as they do with vsftpd. Everything else (commands, passive data connections) is
/// the real server. Stopped on drop.
pub struct HostileServer {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Debug for HostileServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostileServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port on 127.0.0.1")
}

impl HostileServer {
    /// Starts serving `root` (panics on failure: fixture code).
    pub fn start(root: &Path) -> HostileServer {
        Self::start_inner(root, false)
    }

    /// As [`start`](Self::start), and the listing of the site's top directory (`/site`, or
    /// the root) also names [`GHOST_NAME`], which does not exist: downloading it fails with a
    /// `550` wrapped in [`HOSTILE_REPLY`].
    pub fn start_with_ghost(root: &Path) -> HostileServer {
        Self::start_inner(root, true)
    }

    fn start_inner(root: &Path, ghost: bool) -> HostileServer {
        let root = root.to_path_buf();
        Filesystem::new(root.clone()).expect("the hostile server's root must exist");
        let inner_addr = free_addr();
        let addr = free_addr();
        let (pmin, pmax) = crate::server::passive_range();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("tokio runtime for the hostile server");
            rt.block_on(async move {
                let server = ServerBuilder::new(Box::new(move || HostileFs {
                    inner: Filesystem::new(root.clone()).expect("root"),
                    ghost,
                }))
                .passive_host(PassiveHost::Ip([127, 0, 0, 1].into()))
                .passive_ports(pmin..=pmax)
                .shutdown_indicator(async move {
                    let _ = stop_rx.await;
                    Shutdown::new().grace_period(Duration::from_millis(200))
                })
                .build()
                .expect("hostile server configuration");
                let shim = tokio::net::TcpListener::bind(addr)
                    .await
                    .expect("bind the hostile server's port");
                tokio::spawn(feat_shim(shim, inner_addr));
                server
                    .listen(inner_addr.to_string())
                    .await
                    .expect("hostile server listens");
            });
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(inner_addr).is_err() || TcpStream::connect(addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "the hostile server did not come up within 10 s"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        HostileServer {
            addr,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// The control address (`127.0.0.1:PORT`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The control port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

impl Drop for HostileServer {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Forwards control connections to libunftp, dropping the `MLSD` and `MLST` lines of its
/// `FEAT` reply, replacing its greeting with [`HOSTILE_REPLY`] and wrapping the text of its
/// `4xx`/`5xx` replies in it (server→client is handled line by line; client→server is copied
/// as is).
async fn feat_shim(listener: tokio::net::TcpListener, upstream: SocketAddr) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
                return;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let (mut cr, mut cw) = client.into_split();
            let (sr, mut sw) = server.into_split();
            let down = tokio::spawn(async move {
                let mut lines = tokio::io::BufReader::new(sr);
                let mut line = Vec::new();
                loop {
                    line.clear();
                    match lines.read_until(b'\n', &mut line).await {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                    if line.starts_with(b" MLSD") || line.starts_with(b" MLST") {
                        continue;
                    }
                    if line.starts_with(b"220 ") {
                        line = format!("220 {HOSTILE_REPLY}hostile greeting\u{7}\r\n").into_bytes();
                    } else if line.len() > 4
                        && matches!(line[0], b'4' | b'5')
                        && line[1..3].iter().all(u8::is_ascii_digit)
                        && line[3] == b' '
                    {
                        let text = String::from_utf8_lossy(&line[4..]);
                        let text = text.trim_end();
                        let code = String::from_utf8_lossy(&line[..3]).into_owned();
                        line = format!("{code} {HOSTILE_REPLY}{text}\u{7}\r\n").into_bytes();
                    }
                    if cw.write_all(&line).await.is_err() {
                        break;
                    }
                }
                let _ = cw.shutdown().await;
            });
            let mut buf = vec![0u8; 16 * 1024];
            while let Ok(n) = cr.read(&mut buf).await {
                if n == 0 || sw.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
            let _ = sw.shutdown().await;
            let _ = down.await;
        });
    }
}
