//! A bounded pool of logged-in connections.

use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::conn::FtpConnection;
use crate::error::FtpError;
use crate::options::ConnectOptions;

struct Inner {
    opts: ConnectOptions,
    idle: Mutex<Vec<FtpConnection>>,
    permits: Arc<Semaphore>,
    max: usize,
}

/// At most `max` logged-in connections to one server. [`get`](Pool::get) reuses an idle
/// connection after a `NOOP` check (dropping broken ones) or logs in a new one; the connection
/// goes back to the pool when the [`PooledConnection`] is dropped, unless it broke.
#[derive(Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("server", &self.inner.opts.server())
            .field("max", &self.inner.max)
            .field("idle", &self.idle_count())
            .finish()
    }
}

impl Pool {
    /// A pool of at most `max` (at least 1) connections made with `opts`. Connects lazily.
    pub fn new(opts: ConnectOptions, max: usize) -> Self {
        let max = max.max(1);
        Self {
            inner: Arc::new(Inner {
                opts,
                idle: Mutex::new(Vec::new()),
                permits: Arc::new(Semaphore::new(max)),
                max,
            }),
        }
    }

    /// The most connections this pool opens at once.
    pub fn max(&self) -> usize {
        self.inner.max
    }

    /// Connections currently idle in the pool.
    pub fn idle_count(&self) -> usize {
        self.inner.idle.lock().map(|v| v.len()).unwrap_or(0)
    }

    fn pop_idle(&self) -> Option<FtpConnection> {
        self.inner.idle.lock().ok().and_then(|mut v| v.pop())
    }

    /// Waits for a free slot, then hands out a live connection.
    pub async fn get(&self) -> Result<PooledConnection, FtpError> {
        let permit = self
            .inner
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| {
                FtpError::new(
                    crate::FtpErrorKind::Protocol,
                    self.inner.opts.server(),
                    "connection pool is closed",
                )
            })?;
        while let Some(mut conn) = self.pop_idle() {
            if conn.is_open() && conn.noop().await.is_ok() {
                return Ok(self.wrap(conn, permit));
            }
            tracing::debug!(server = %conn.server(), "dropping a dead pooled connection");
        }
        let conn = FtpConnection::connect(&self.inner.opts).await?;
        Ok(self.wrap(conn, permit))
    }

    fn wrap(&self, conn: FtpConnection, permit: OwnedSemaphorePermit) -> PooledConnection {
        PooledConnection {
            conn: Some(conn),
            pool: self.inner.clone(),
            _permit: permit,
        }
    }

    /// Logs out every idle connection. Connections in use are closed when dropped.
    pub async fn close(&self) {
        let idle: Vec<FtpConnection> = self
            .inner
            .idle
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default();
        self.inner.permits.close();
        for c in idle {
            let _ = c.quit().await;
        }
    }
}

/// A connection borrowed from a [`Pool`]; derefs to [`FtpConnection`].
pub struct PooledConnection {
    conn: Option<FtpConnection>,
    pool: Arc<Inner>,
    _permit: OwnedSemaphorePermit,
}

impl PooledConnection {
    /// Drops the connection instead of returning it to the pool (e.g. after a protocol error
    /// that may have left it in an unknown state).
    pub fn discard(mut self) {
        self.conn = None;
    }
}

impl Deref for PooledConnection {
    type Target = FtpConnection;
    fn deref(&self) -> &FtpConnection {
        // Only `discard` and `drop` take it, and both consume `self`.
        self.conn.as_ref().unwrap_or_else(|| unreachable!())
    }
}

impl DerefMut for PooledConnection {
    fn deref_mut(&mut self) -> &mut FtpConnection {
        self.conn.as_mut().unwrap_or_else(|| unreachable!())
    }
}

impl Drop for PooledConnection {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take()
            && conn.is_open()
            && !self.pool.permits.is_closed()
            && let Ok(mut idle) = self.pool.idle.lock()
        {
            idle.push(conn);
        }
    }
}
