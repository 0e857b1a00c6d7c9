//! [`ReusingFactory`]: one logged-in connection handed on instead of a new login. The site
//! lock is taken on a connection of its own before the engine starts; the engine's first
//! worker then takes that connection over, and the one the engine closes last is kept for the
//! lock's release. On vsftpd a login costs tens of milliseconds (PAM), over a distance several
//! round trips: two logins fewer is a third of a no-change run on loopback.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;

use crate::error::{Error, ErrorKind, Result};
use crate::remote::{
    Capabilities, HashAlg, LocalFile, ReadObserver, Remote, RemoteEntry, RemoteFactory, Staged,
};

type Spare = Arc<Mutex<Option<Box<dyn Remote>>>>;

fn lock(s: &Spare) -> std::sync::MutexGuard<'_, Option<Box<dyn Remote>>> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

/// A factory that hands out a spare logged-in connection before opening new ones, and keeps
/// the first connection closed through it as the next spare (instead of `QUIT`).
pub struct ReusingFactory {
    inner: Arc<dyn RemoteFactory>,
    spare: Spare,
    /// What the last real login took (ns; 0: none yet).
    login_ns: AtomicU64,
}

impl ReusingFactory {
    /// Wraps `inner`, with no spare yet.
    pub fn new(inner: Arc<dyn RemoteFactory>) -> Self {
        Self {
            inner,
            spare: Arc::new(Mutex::new(None)),
            login_ns: AtomicU64::new(0),
        }
    }

    /// Offers `conn` to the next [`connect`](RemoteFactory::connect). A spare already
    /// there is kept and `conn` is closed.
    pub async fn offer(&self, conn: Box<dyn Remote>) {
        let refused = {
            let mut g = lock(&self.spare);
            if g.is_none() {
                *g = Some(conn);
                None
            } else {
                Some(conn)
            }
        };
        if let Some(mut c) = refused {
            let _ = c.close().await;
        }
    }

    /// Takes the spare, if any (it may have timed out since: the caller falls back to
    /// [`connect`](RemoteFactory::connect) when it fails).
    pub fn take_spare(&self) -> Option<Box<dyn Remote>> {
        lock(&self.spare).take()
    }

    /// Closes the spare, if any.
    pub async fn close_spare(&self) {
        if let Some(mut c) = self.take_spare() {
            let _ = c.close().await;
        }
    }
}

#[async_trait]
impl RemoteFactory for ReusingFactory {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    /// The inner factory's word first: one that shares a login between connections (SFTP)
    /// answers some connects at once, which timing them here would take for a free login.
    fn login_cost(&self) -> Option<Duration> {
        self.inner
            .login_cost()
            .or(match self.login_ns.load(Ordering::SeqCst) {
                0 => None,
                ns => Some(Duration::from_nanos(ns)),
            })
    }

    fn take_notes(&self) -> Vec<String> {
        self.inner.take_notes()
    }

    fn streams_per_login(&self) -> usize {
        self.inner.streams_per_login()
    }

    async fn connect(&self) -> Result<Box<dyn Remote>> {
        let conn = match self.take_spare() {
            Some(c) => c,
            None => {
                let started = Instant::now();
                let c = self.inner.connect().await?;
                let took = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
                self.login_ns.store(took, Ordering::SeqCst);
                c
            }
        };
        Ok(Box::new(Returning {
            conn: Some(conn),
            spare: self.spare.clone(),
        }))
    }
}

/// A connection that goes back to the factory's spare slot when closed (if the slot is
/// empty), still logged in. Dropped without `close`, it is simply dropped: the engine does
/// that to a connection a transient error may have broken.
struct Returning {
    conn: Option<Box<dyn Remote>>,
    spare: Spare,
}

impl Returning {
    fn conn(&mut self) -> Result<&mut Box<dyn Remote>> {
        self.conn
            .as_mut()
            .ok_or_else(|| Error::new(ErrorKind::Network, "connection", "already closed"))
    }
}

#[async_trait]
impl Remote for Returning {
    fn describe(&self) -> String {
        self.conn
            .as_ref()
            .map_or_else(|| "closed".to_string(), |c| c.describe())
    }

    fn capabilities(&self) -> Capabilities {
        self.conn
            .as_ref()
            .map(|c| c.capabilities())
            .unwrap_or_default()
    }

    async fn list_dir(&mut self, path: &str) -> Result<Vec<RemoteEntry>> {
        self.conn()?.list_dir(path).await
    }

    async fn list_dirs(&mut self, paths: &[String]) -> Vec<Result<Vec<RemoteEntry>>> {
        match self.conn() {
            Ok(c) => c.list_dirs(paths).await,
            Err(e) => paths.iter().map(|_| Err(e.duplicate())).collect(),
        }
    }

    async fn put_atomic(
        &mut self,
        local: LocalFile,
        path: &str,
        mtime: Option<SystemTime>,
        observe: Option<ReadObserver>,
    ) -> Result<u64> {
        self.conn()?.put_atomic(local, path, mtime, observe).await
    }

    async fn put_atomic_contents(
        &mut self,
        contents: &[u8],
        path: &str,
        mtime: Option<SystemTime>,
    ) -> Result<u64> {
        self.conn()?
            .put_atomic_contents(contents, path, mtime)
            .await
    }

    async fn put_staged(
        &mut self,
        local: LocalFile,
        path: &str,
        mtime: Option<SystemTime>,
        observe: Option<ReadObserver>,
    ) -> Result<(u64, Staged)> {
        self.conn()?.put_staged(local, path, mtime, observe).await
    }

    async fn put_staged_contents(
        &mut self,
        contents: &[u8],
        path: &str,
        mtime: Option<SystemTime>,
    ) -> Result<(u64, Staged)> {
        self.conn()?
            .put_staged_contents(contents, path, mtime)
            .await
    }

    async fn publish(&mut self, batch: &[Staged]) -> Vec<Result<()>> {
        match self.conn() {
            Ok(c) => c.publish(batch).await,
            Err(e) => batch.iter().map(|_| Err(e.duplicate())).collect(),
        }
    }

    async fn get(&mut self, path: &str, local: LocalFile) -> Result<u64> {
        self.conn()?.get(path, local).await
    }

    async fn get_contents(&mut self, path: &str, max: usize) -> Result<Option<Vec<u8>>> {
        self.conn()?.get_contents(path, max).await
    }

    async fn remote_hash(&mut self, path: &str, alg: HashAlg) -> Result<String> {
        self.conn()?.remote_hash(path, alg).await
    }

    async fn mkdir(&mut self, path: &str) -> Result<()> {
        self.conn()?.mkdir(path).await
    }

    async fn mkdir_new(&mut self, path: &str) -> Result<bool> {
        self.conn()?.mkdir_new(path).await
    }

    async fn mkdirs(&mut self, paths: &[String]) -> Result<()> {
        self.conn()?.mkdirs(paths).await
    }

    async fn remove_file_and_dir(&mut self, file: &str, dir: &str) -> Result<()> {
        self.conn()?.remove_file_and_dir(file, dir).await
    }

    async fn delete_file(&mut self, path: &str) -> Result<()> {
        self.conn()?.delete_file(path).await
    }

    async fn remove_dir(&mut self, path: &str) -> Result<()> {
        self.conn()?.remove_dir(path).await
    }

    async fn close(&mut self) -> Result<()> {
        let Some(mut c) = self.conn.take() else {
            return Ok(());
        };
        {
            let mut g = lock(&self.spare);
            if g.is_none() {
                *g = Some(c);
                return Ok(());
            }
        }
        c.close().await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;
    use crate::local_remote::LocalDirRemoteFactory;

    /// Counts the logins of a local directory "server".
    struct Counting {
        inner: LocalDirRemoteFactory,
        logins: AtomicUsize,
    }

    #[async_trait]
    impl RemoteFactory for Counting {
        fn describe(&self) -> String {
            self.inner.describe()
        }
        async fn connect(&self) -> Result<Box<dyn Remote>> {
            self.logins.fetch_add(1, Ordering::SeqCst);
            self.inner.connect().await
        }
    }

    #[tokio::test]
    async fn a_closed_connection_is_handed_on_and_a_dropped_one_is_not() {
        let d = tempfile::tempdir().unwrap();
        let counting = Arc::new(Counting {
            inner: LocalDirRemoteFactory::new(d.path()),
            logins: AtomicUsize::new(0),
        });
        let f = ReusingFactory::new(counting.clone());
        let logins = || counting.logins.load(Ordering::SeqCst);

        let mut a = f.connect().await.unwrap();
        a.mkdir("x").await.unwrap();
        a.close().await.unwrap();
        assert_eq!(logins(), 1);
        assert!(f.login_cost().is_some());

        // The closed one is handed on; the next needs a login of its own.
        let mut b = f.connect().await.unwrap();
        assert_eq!(logins(), 1);
        assert_eq!(b.list_dir("").await.unwrap()[0].name, "x");
        let c = f.connect().await.unwrap();
        assert_eq!(logins(), 2);
        // Dropped (the engine does that to a connection an error may have broken): not kept.
        drop(c);
        let c = f.connect().await.unwrap();
        assert_eq!(logins(), 3);
        drop(c);

        // Closing two: the first becomes the spare, the second really closes.
        b.close().await.unwrap();
        assert!(f.take_spare().is_some());
        assert!(f.take_spare().is_none());
        f.close_spare().await;
    }
}
