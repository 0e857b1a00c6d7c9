//! A loopback TCP proxy that cuts connections at random.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;

/// A small deterministic PRNG (xorshift64*), so a failing run can be replayed with its seed.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p && p > 0.0
    }
}

/// Forwards `127.0.0.1:PORT` to `target`. Each new connection is, with `drop_probability`,
/// cut (both directions shut down) after the server has sent a random 0–512 bytes,
/// so the client sees a reset mid-conversation; the others are forwarded untouched.
/// Choices come from `seed`, so a run is reproducible. Stops on drop.
pub struct FaultyProxy {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
    cut: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for FaultyProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultyProxy")
            .field("addr", &self.addr)
            .field("accepted", &self.connections())
            .field("cut", &self.cut())
            .finish()
    }
}

impl FaultyProxy {
    /// Starts the proxy on a free loopback port.
    pub fn start(target: SocketAddr, drop_probability: f64, seed: u64) -> FaultyProxy {
        assert!(
            target.ip().is_loopback(),
            "FaultyProxy only forwards to loopback"
        );
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy on 127.0.0.1");
        let addr = listener.local_addr().expect("proxy address");
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let cut = Arc::new(AtomicUsize::new(0));
        let (stop2, accepted2, cut2) = (stop.clone(), accepted.clone(), cut.clone());
        let thread = std::thread::spawn(move || {
            let mut rng = Rng::new(seed);
            for client in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                accepted2.fetch_add(1, Ordering::SeqCst);
                let Ok(server) = TcpStream::connect(target) else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let cut_after = if rng.chance(drop_probability) {
                    cut2.fetch_add(1, Ordering::SeqCst);
                    Some(rng.next() % 513)
                } else {
                    None
                };
                spawn_pipe(client, server, cut_after);
            }
        });
        FaultyProxy {
            addr,
            stop,
            accepted,
            cut,
            thread: Some(thread),
        }
    }

    /// The proxy's address (`127.0.0.1:PORT`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    /// The proxy's port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }
    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
    /// Connections chosen to be cut so far.
    pub fn cut(&self) -> usize {
        self.cut.load(Ordering::SeqCst)
    }
}

impl Drop for FaultyProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn spawn_pipe(client: TcpStream, server: TcpStream, cut_after: Option<u64>) {
    let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    // client -> server
    std::thread::spawn(move || copy(client, server, None));
    // server -> client, possibly cut
    std::thread::spawn(move || copy(s2, c2, cut_after));
}

fn copy(mut from: TcpStream, mut to: TcpStream, cut_after: Option<u64>) {
    let mut buf = [0u8; 16 * 1024];
    let mut sent = 0u64;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut chunk = &buf[..n];
        if let Some(limit) = cut_after {
            let room = limit.saturating_sub(sent) as usize;
            chunk = &chunk[..chunk.len().min(room)];
        }
        if to.write_all(chunk).is_err() {
            break;
        }
        sent += chunk.len() as u64;
        if cut_after.is_some_and(|l| sent >= l) {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}
