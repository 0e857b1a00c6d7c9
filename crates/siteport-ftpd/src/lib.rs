//! An embedded FTP/FTPS server for `siteport demo` and for tests, built on `libunftp` with the
//! `unftp-sbe-fs` filesystem backend.
//!
//! [`EmbeddedServer::start`] serves one directory on `127.0.0.1` (a free port, reported by
//! [`EmbeddedServer::port`]) to exactly one user, whose password is checked for real: a wrong
//! password is answered with `530`. Passive data ports are on `127.0.0.1` too. With a certificate
//! and key it offers explicit FTPS (`AUTH TLS`), without requiring it.
//!
//! The server runs on its own thread with its own tokio runtime, so it keeps serving while the
//! caller blocks (for example on a child process in a CLI test).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::fmt;
use std::io::Write as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use libunftp::ServerBuilder;
use libunftp::options::{FtpsRequired, PassiveHost, Shutdown};
use secrecy::{ExposeSecret, SecretString};
use unftp_core::auth::{AuthenticationError, Authenticator, Credentials, Principal};
use unftp_sbe_fs::Filesystem;

/// What went wrong starting the embedded server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FtpdError {
    /// The root directory cannot be served.
    #[error("embedded FTP server: cannot serve root {path}: {source}")]
    Root {
        /// The root directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Writing the TLS certificate and key to a private temp dir failed.
    #[error("embedded FTP server: cannot stage the TLS certificate and key: {0}")]
    Tls(#[source] std::io::Error),
    /// No port could be bound or the server did not come up.
    #[error("embedded FTP server: {0}")]
    Start(String),
}

/// Checks one user and password. The comparison does not stop at the first differing byte.
struct SingleUser {
    username: String,
    password: SecretString,
}

impl fmt::Debug for SingleUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SingleUser")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[async_trait::async_trait]
impl Authenticator for SingleUser {
    async fn authenticate(
        &self,
        username: &str,
        creds: &Credentials,
    ) -> Result<Principal, AuthenticationError> {
        let given = creds.password.as_deref().unwrap_or("");
        // Compare both before deciding, so a wrong user and a wrong password take the same path.
        let user_ok = same_bytes(username.as_bytes(), self.username.as_bytes());
        let pass_ok = same_bytes(given.as_bytes(), self.password.expose_secret().as_bytes());
        if user_ok && pass_ok {
            Ok(Principal {
                username: username.to_string(),
            })
        } else if user_ok {
            Err(AuthenticationError::BadPassword)
        } else {
            Err(AuthenticationError::BadUser)
        }
    }

    fn name(&self) -> &str {
        "siteport-single-user"
    }
}

/// A running embedded FTP server. Dropping it (or [`shutdown`](Self::shutdown)) stops it.
pub struct EmbeddedServer {
    addr: SocketAddr,
    root: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    // Holds the PEM files libunftp reads at start; removed with the server.
    _tls_dir: Option<tempfile::TempDir>,
    _empty_dir: tempfile::TempDir,
}

impl fmt::Debug for EmbeddedServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbeddedServer")
            .field("addr", &self.addr)
            .field("root", &self.root)
            .field("tls", &self._tls_dir.is_some())
            .finish()
    }
}

/// A free passive port range of `len` ports on loopback, chosen at random so that several
/// servers in one test run rarely collide (libunftp skips ports that are busy anyway).
fn passive_range(len: u16) -> std::ops::RangeInclusive<u16> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let seed = nanos ^ (std::process::id() << 8);
    let start = 20000 + (seed % 20000) as u16;
    start..=start + len - 1
}

impl EmbeddedServer {
    /// Starts serving `root` on `127.0.0.1` (free port) to `username`/`password`. With `tls =
    /// Some((cert_pem, key_pem))` explicit FTPS is offered (the certificate chain, leaf first,
    /// and its private key, both PEM).
    pub fn start(
        root: &Path,
        username: &str,
        password: SecretString,
        tls: Option<(String, String)>,
    ) -> Result<EmbeddedServer, FtpdError> {
        let root = root.to_path_buf();
        // Fail early and clearly, instead of on the first client command.
        Filesystem::new(root.clone()).map_err(|source| FtpdError::Root {
            path: root.clone(),
            source,
        })?;
        let tls_dir = tls.map(|(cert, key)| tls_files(&cert, &key)).transpose()?;
        let empty_dir = tempfile::Builder::new()
            .prefix("siteport-ftpd-empty")
            .tempdir()
            .map_err(|e| FtpdError::Start(format!("cannot create a temp dir: {e}")))?;
        let auth = Arc::new(SingleUser {
            username: username.to_string(),
            password,
        });

        // libunftp binds by address; pick a free port, then confirm the server took it.
        let mut last_err = String::new();
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map_err(|e| FtpdError::Start(format!("no free port on 127.0.0.1: {e}")))?
                .port();
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let shim_std = TcpListener::bind("127.0.0.1:0")
                .map_err(|e| FtpdError::Start(format!("no free port on 127.0.0.1: {e}")))?;
            let shim_addr = shim_std
                .local_addr()
                .map_err(|e| FtpdError::Start(format!("no free port on 127.0.0.1: {e}")))?;
            drop(shim_std);
            let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
            let (done_tx, done_rx) = std::sync::mpsc::channel::<String>();
            let fs_root = root.clone();
            let empty_path = empty_dir.path().to_path_buf();
            let auth = auth.clone();
            let tls_paths = tls_dir
                .as_ref()
                .map(|d| (d.path().join("cert.pem"), d.path().join("key.pem")));
            let thread = std::thread::Builder::new()
                .name(format!("siteport-ftpd-{port}"))
                .spawn(move || {
                    let rt = match tokio::runtime::Builder::new_multi_thread()
                        .worker_threads(2)
                        .enable_all()
                        .build()
                    {
                        Ok(rt) => rt,
                        Err(e) => {
                            let _ = done_tx.send(format!("cannot start a tokio runtime: {e}"));
                            return;
                        }
                    };
                    rt.block_on(serve(Serve {
                        fs_root,
                        empty_path,
                        auth,
                        tls_paths,
                        stop_rx,
                        shim_addr,
                        addr,
                        done_tx,
                    }));
                })
                .map_err(|e| FtpdError::Start(format!("cannot spawn the server thread: {e}")))?;

            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Ok(msg) = done_rx.try_recv() {
                    last_err = msg;
                    let _ = thread.join();
                    break;
                }
                if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
                    && TcpStream::connect_timeout(&shim_addr, Duration::from_millis(200)).is_ok()
                {
                    return Ok(EmbeddedServer {
                        addr: shim_addr,
                        root,
                        stop: Some(stop_tx),
                        thread: Some(thread),
                        _tls_dir: tls_dir,
                        _empty_dir: empty_dir,
                    });
                }
                if Instant::now() > deadline {
                    let _ = stop_tx.send(());
                    return Err(FtpdError::Start(format!(
                        "server on {addr} did not accept connections within 10 s"
                    )));
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        Err(FtpdError::Start(last_err))
    }

    /// The address the control connection listens on (`127.0.0.1:PORT`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The control port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The directory served.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Stops the server and waits for its thread (open sessions get a short grace period).
    pub fn shutdown(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What the server thread needs (moved into it).
struct Serve {
    fs_root: PathBuf,
    empty_path: PathBuf,
    auth: Arc<SingleUser>,
    tls_paths: Option<(PathBuf, PathBuf)>,
    stop_rx: tokio::sync::oneshot::Receiver<()>,
    shim_addr: SocketAddr,
    addr: SocketAddr,
    done_tx: std::sync::mpsc::Sender<String>,
}

/// Runs libunftp and the AUTH TLS shim until stopped; a failure to start is sent on
/// `done_tx` (which `start` waits on).
async fn serve(a: Serve) {
    let Serve {
        fs_root,
        empty_path,
        auth,
        tls_paths,
        stop_rx,
        shim_addr,
        addr,
        done_tx,
    } = a;
    let gen_root = fs_root.clone();
    let empty_root = empty_path.clone();
    let mut builder = ServerBuilder::with_authenticator(
        Box::new(move || {
            // Checked in start(). libunftp wants an infallible factory: if the
            // root vanished since, serve an empty private dir instead and say so.
            Filesystem::new(gen_root.clone()).unwrap_or_else(|e| {
                tracing::error!(root = %gen_root.display(), error = %e,
                    "embedded FTP server: root directory unusable; serving an empty directory");
                empty_fs(&empty_root)
            })
        }),
        auth,
    )
    .greeting("siteport embedded FTP server")
    .passive_host(PassiveHost::Ip([127, 0, 0, 1].into()))
    .passive_ports(passive_range(200))
    .idle_session_timeout(600)
    .shutdown_indicator(async move {
        let _ = stop_rx.await;
        Shutdown::new().grace_period(Duration::from_millis(500))
    });
    if let Some((cert, key)) = tls_paths {
        builder = builder
            .ftps(cert, key)
            .ftps_required(FtpsRequired::None, FtpsRequired::None);
    }
    let server = match builder.build() {
        Ok(s) => s,
        Err(e) => {
            let _ = done_tx.send(format!("bad server configuration: {e}"));
            return;
        }
    };
    let shim = match tokio::net::TcpListener::bind(shim_addr).await {
        Ok(l) => l,
        Err(e) => {
            let _ = done_tx.send(format!("binding {shim_addr} failed: {e}"));
            return;
        }
    };
    tokio::spawn(auth_tls_shim(shim, addr));
    if let Err(e) = server.listen(addr.to_string()).await {
        let _ = done_tx.send(format!("listening on {addr} failed: {e}"));
    }
}

/// The certificate and key in a private temp dir, where libunftp reads them from.
fn tls_files(cert: &str, key: &str) -> Result<tempfile::TempDir, FtpdError> {
    let dir = tempfile::Builder::new()
        .prefix("siteport-ftpd-tls")
        .tempdir()
        .map_err(FtpdError::Tls)?;
    write_private(&dir.path().join("cert.pem"), cert.as_bytes()).map_err(FtpdError::Tls)?;
    write_private(&dir.path().join("key.pem"), key.as_bytes()).map_err(FtpdError::Tls)?;
    Ok(dir)
}

impl Drop for EmbeddedServer {
    fn drop(&mut self) {
        self.stop_now();
    }
}

/// Forwards control connections from the public port to libunftp.
///
/// libunftp 0.24 sends `234` to `AUTH TLS` and only then swaps its command decoder for a TLS
/// acceptor, dropping whatever the decoder had already read: a client that sends its
/// ClientHello right after `234` (as it should) sometimes loses it and the handshake fails.
/// The shim holds the client's next bytes for a moment after a `234`, which closes that race.
/// Data connections go straight to libunftp's passive ports.
async fn auth_tls_shim(listener: tokio::net::TcpListener, upstream: SocketAddr) {
    use std::sync::atomic::{AtomicBool, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
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
            let (mut sr, mut sw) = server.into_split();
            let upgraded = Arc::new(AtomicBool::new(false));
            let seen = upgraded.clone();
            let down = tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                let mut scanning = true;
                while let Ok(n) = sr.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    let chunk = &buf[..n];
                    if scanning
                        && (chunk.starts_with(b"234 ") || chunk.windows(5).any(|w| w == b"\n234 "))
                    {
                        // Set before the client can see the 234 and answer it.
                        seen.store(true, Ordering::SeqCst);
                        scanning = false;
                    }
                    if cw.write_all(chunk).await.is_err() {
                        break;
                    }
                }
                let _ = cw.shutdown().await;
            });
            let mut buf = vec![0u8; 16 * 1024];
            let mut held = false;
            while let Ok(n) = cr.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                if !held && upgraded.load(Ordering::SeqCst) {
                    held = true;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                if sw.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
            let _ = sw.shutdown().await;
            let _ = down.await;
        });
    }
}

fn empty_fs(path: &Path) -> Filesystem {
    match Filesystem::new(path) {
        Ok(fs) => fs,
        // Both the root and our own fresh temp dir are gone: nothing sensible is left to serve.
        Err(e) => panic!("embedded FTP server: cannot open {}: {e}", path.display()),
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}
