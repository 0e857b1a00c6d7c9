//! A server that claims to work in order and does not: the in-process server (libunftp)
//! behind a shim on the control connection that greets as vsftpd (so clients pipeline), and
//! does one of two things to every read from the client that holds more than one command
//! (what only a pipelining client sends): answers them out of the order sent (the last
//! command goes first), or closes the connection. Data connections go to libunftp directly.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use secrecy::SecretString;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

/// What [`MisorderingServer`] does to pipelined commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Misorder {
    /// The last command of a read is passed on first, so its reply comes first.
    Reorder,
    /// The control connection is closed (both ways), nothing of the read passed on.
    Close,
    /// Commands pass in order; every `150` announces a transfer of [`OVERSTATED`] bytes,
    /// worded as vsftpd words it, whatever is sent: a download that brings less must fail.
    Overstate,
}

/// The size every `150` announces under [`Misorder::Overstate`].
pub const OVERSTATED: u64 = 1 << 20;

/// The in-process server on a temp root behind the shim (see the module); stopped on drop.
pub struct MisorderingServer {
    addr: SocketAddr,
    /// Login name.
    pub user: String,
    /// Login password.
    pub password: SecretString,
    batches: Arc<AtomicUsize>,
    _inner: siteport_ftpd::EmbeddedServer,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for MisorderingServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MisorderingServer")
            .field("addr", &self.addr)
            .field("batches", &self.batches())
            .finish_non_exhaustive()
    }
}

impl MisorderingServer {
    /// Serves `root` (which must exist), misbehaving as `how` from the first pipelined read
    /// on (a pipelined login included). Panics on failure (fixture).
    pub fn start(root: &Path, how: Misorder) -> MisorderingServer {
        Self::start_with(root, how, false)
    }

    /// As [`start`](Self::start), but every connection's login and session set-up (up to
    /// and including its `PWD`) pass in order: the misbehaviour meets the client's transfers.
    pub fn start_after_login(root: &Path, how: Misorder) -> MisorderingServer {
        Self::start_with(root, how, true)
    }

    fn start_with(root: &Path, how: Misorder, after_login: bool) -> MisorderingServer {
        let password = format!("pw{}", std::process::id());
        let inner = siteport_ftpd::EmbeddedServer::start(
            root,
            "tester",
            SecretString::from(password.clone()),
            None,
        )
        .expect("start the in-process FTP server");
        let upstream = SocketAddr::from(([127, 0, 0, 1], inner.port()));
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the shim");
        let addr = listener.local_addr().expect("shim address");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let batches = Arc::new(AtomicUsize::new(0));
        let seen = batches.clone();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("tokio runtime for the shim");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                tokio::select! {
                    _ = accept_loop(listener, upstream, how, after_login, seen) => {}
                    _ = stop_rx => {}
                }
            });
        });
        MisorderingServer {
            addr,
            user: "tester".into(),
            password: SecretString::from(password),
            batches,
            _inner: inner,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// The control address (`127.0.0.1:PORT`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Reads from clients that held more than one command, so far.
    pub fn batches(&self) -> usize {
        self.batches.load(Ordering::SeqCst)
    }
}

impl Drop for MisorderingServer {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    upstream: SocketAddr,
    how: Misorder,
    after_login: bool,
    batches: Arc<AtomicUsize>,
) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        let batches = batches.clone();
        tokio::spawn(async move {
            let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
                return;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let (mut cr, mut cw) = client.into_split();
            let (sr, mut sw) = server.into_split();
            let (closed_tx, mut closed_rx) = tokio::sync::watch::channel(false);
            // Server to client, line by line: the greeting says vsFTPd.
            let down = tokio::spawn(async move {
                let mut lines = tokio::io::BufReader::new(sr);
                let mut line = Vec::new();
                loop {
                    line.clear();
                    tokio::select! {
                        r = lines.read_until(b'\n', &mut line) => match r {
                            Ok(0) | Err(_) => break,
                            Ok(_) => {}
                        },
                        _ = closed_rx.changed() => break,
                    }
                    if line.starts_with(b"220 ") {
                        line = b"220 (vsFTPd 3.0.3)\r\n".to_vec();
                    }
                    if how == Misorder::Overstate && line.starts_with(b"150 ") {
                        line = format!(
                            "150 Opening BINARY mode data connection ({OVERSTATED} bytes).\r\n"
                        )
                        .into_bytes();
                    }
                    if cw.write_all(&line).await.is_err() {
                        break;
                    }
                }
                let _ = cw.shutdown().await;
            });
            let mut buf = vec![0u8; 16 * 1024];
            // Whether the connection has sent its PWD (the end of the client's set-up).
            let mut set_up = !after_login;
            loop {
                let n = match cr.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let chunk = &buf[..n];
                let lines: Vec<&[u8]> = chunk
                    .split_inclusive(|&b| b == b'\n')
                    .filter(|l| !l.is_empty())
                    .collect();
                let in_order = !set_up;
                if !set_up && lines.iter().any(|l| l.starts_with(b"PWD")) {
                    set_up = true;
                }
                let out = if lines.len() > 1 && !in_order && how != Misorder::Overstate {
                    batches.fetch_add(1, Ordering::SeqCst);
                    match how {
                        Misorder::Close => {
                            let _ = closed_tx.send(true);
                            break;
                        }
                        Misorder::Reorder | Misorder::Overstate => {
                            let mut v = lines.last().map(|l| l.to_vec()).unwrap_or_default();
                            for l in &lines[..lines.len() - 1] {
                                v.extend_from_slice(l);
                            }
                            v
                        }
                    }
                } else {
                    chunk.to_vec()
                };
                if sw.write_all(&out).await.is_err() {
                    break;
                }
            }
            let _ = sw.shutdown().await;
            let _ = tokio::time::timeout(Duration::from_secs(5), down).await;
        });
    }
}
