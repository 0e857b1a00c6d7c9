//! A distance on loopback: [`DelayProxy`] makes every byte between a client and a server
//! arrive half a round trip late, both ways, on the FTP control connection and on every
//! passive data connection, without reading them (TLS passes through). The same model as
//! `bench/delay-proxy`, for tests that count round trips.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

/// The address the proxy listens on: another loopback address than the servers' `127.0.0.1`,
/// so that it can take the same ports. A client that connects to the control connection's
/// peer for its data connections (EPSV gives only a port; siteport ignores PASV's address)
/// goes through the proxy for those too.
pub const DELAY_PROXY_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// Forwards `127.0.0.2:P` to `127.0.0.1:P` for the control port and every port of a passive
/// range, each chunk arriving `rtt / 2` after it was read (in order; bandwidth unlimited).
/// A new connection also waits one round trip before its first byte can cross, standing in
/// for the TCP handshake. Stopped on drop.
pub struct DelayProxy {
    control: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for DelayProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DelayProxy")
            .field("control", &self.control)
            .finish_non_exhaustive()
    }
}

impl DelayProxy {
    /// Starts forwarding `control_port` and `passive` (inclusive range) with round trip
    /// `rtt`. Panics on failure (fixture code).
    pub fn start(control_port: u16, passive: (u16, u16), rtt: Duration) -> DelayProxy {
        let ports: Vec<u16> = std::iter::once(control_port)
            .chain(passive.0..=passive.1)
            .collect();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("tokio runtime for the delay proxy");
            rt.block_on(async move {
                for port in ports {
                    let listener = TcpListener::bind(SocketAddr::new(DELAY_PROXY_IP, port))
                        .await
                        .unwrap_or_else(|e| panic!("delay proxy: bind 127.0.0.2:{port}: {e}"));
                    tokio::spawn(accept_loop(listener, port, rtt));
                }
                let _ = ready_tx.send(());
                let _ = stop_rx.await;
            });
        });
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the delay proxy did not come up");
        DelayProxy {
            control: SocketAddr::new(DELAY_PROXY_IP, control_port),
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// Where clients connect: `127.0.0.2:CONTROL`.
    pub fn addr(&self) -> SocketAddr {
        self.control
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn accept_loop(listener: TcpListener, port: u16, rtt: Duration) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        let accepted = Instant::now();
        tokio::spawn(async move {
            let Ok(server) = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).await else {
                return;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let not_before = accepted + rtt;
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            let up = tokio::spawn(pipe(cr, sw, rtt / 2, not_before));
            pipe(sr, cw, rtt / 2, not_before).await;
            let _ = up.await;
        });
    }
}

/// Copies `from` to `to`, each chunk written `delay` after it was read (and never before
/// `not_before + delay`), in order; the end of `from` is passed on the same way.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
    not_before: Instant,
) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = from.read(&mut buf).await.unwrap_or(0);
            let due = Instant::now().max(not_before) + delay;
            if tx.send((due, buf[..n].to_vec())).is_err() || n == 0 {
                return;
            }
        }
    });
    while let Some((due, chunk)) = rx.recv().await {
        tokio::time::sleep_until(due).await;
        if chunk.is_empty() || to.write_all(&chunk).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
    reader.abort();
}
